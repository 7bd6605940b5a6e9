"""Manifests as of a git revision, and where a manifest's repository stands.

Everything goes through git itself (`git show REV:path`), so the working tree
is never touched: applying the previous commit is how a config change is rolled
back.
"""

from __future__ import annotations

import errno
import os
import subprocess

from ..errors import NetkeelError


class GitError(NetkeelError):
    pass


def _real(path: str) -> str:
    """`path` with its directories' symlinks resolved, as git reports the work tree
    (the file itself is kept: git stores a symlinked file as the link)."""
    absolute = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))


def _git(cwd: str, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", cwd, *args], capture_output=True, timeout=30)
    except FileNotFoundError:
        raise GitError("git is not installed") from None


def toplevel(path: str) -> str | None:
    """The root of the git work tree holding `path`, or None."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    while not os.path.isdir(directory):  # a file not written yet: its nearest existing directory
        directory = os.path.dirname(directory)
    result = _git(directory, "rev-parse", "--show-toplevel")
    return result.stdout.decode().strip() if result.returncode == 0 else None


class RevisionReader:
    """read(path) -> bytes of `path` as of git revision `rev` (a callable for
    load_topology). Paths are as the manifest names them, relative to the cwd."""

    def __init__(self, rev: str, manifest: str):
        self.root = toplevel(manifest)
        if self.root is None:
            raise GitError(f"{manifest} is not in a git repository, so --rev cannot apply")
        result = _git(self.root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if result.returncode != 0:
            raise GitError(f"unknown git revision {rev!r} in {self.root}")
        self.rev = rev
        self.commit = result.stdout.decode().strip()

    def __call__(self, path: str) -> bytes:
        relative = os.path.relpath(_real(path), self.root)
        result = _git(self.root, "show", f"{self.commit}:{relative}")
        if result.returncode != 0:
            raise OSError(errno.ENOENT, f"not in revision {self.rev} ({self.commit[:12]})")
        return result.stdout

    def info(self) -> dict:
        return {"root": self.root, "commit": self.commit, "rev": self.rev, "dirty": False}


def repo_info(paths) -> dict:
    """{"root", "commit", "dirty"} for the repository holding the first path, or {}
    outside git. dirty: any of `paths` differs from HEAD."""
    paths = [p for p in paths if p]
    if not paths:
        return {}
    root = toplevel(paths[0])
    if root is None:
        return {}
    head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD")
    relative = [os.path.relpath(_real(p), root) for p in paths]
    status = _git(root, "status", "--porcelain", "--", *relative)
    return {"root": root, "commit": head.stdout.decode().strip() or None,
            "dirty": bool(status.stdout.strip())}
