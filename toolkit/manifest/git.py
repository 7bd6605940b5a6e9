"""Manifests as of a git revision, and where a manifest's repository stands.

Everything goes through git itself (`git show REV:path`), so the working tree
is never touched: applying the previous commit is how a config change is rolled
back.
"""

from __future__ import annotations

import errno
import os

from ..errors import GitError
from .files import MAX_BYTES, git_said, run_git as _git, too_big, toplevel


def _real(path: str) -> str:
    """`path` with its directories' symlinks resolved, as git reports the work tree
    (the file itself is kept: git stores a symlinked file as the link)."""
    absolute = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))


def _in_repository(path: str, root: str) -> str:
    """`path` relative to the repository's `root`, as written: the working tree's
    own symlinks are not followed (a local `policies -> other` must not make a
    revision's `policies/x.yaml` read as its `other/x.yaml`). A path that reaches
    the repository only through a link (a symlinked checkout) is resolved."""
    lexical = os.path.relpath(os.path.normpath(os.path.join(os.getcwd(), path)), root)
    if lexical != ".." and not lexical.startswith("../"):
        return lexical
    return os.path.relpath(_real(path), root)


class RevisionReader:
    """read(path) -> bytes of `path` as of git revision `rev` (a callable for
    load_topology). Paths are as the manifest names them, relative to the cwd."""

    def __init__(self, rev: str, manifest: str):
        self.root = toplevel(manifest)
        if self.root is None:
            raise GitError(f"{manifest} is not in a git repository, so --rev cannot apply")
        result = _git(self.root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if b"dubious ownership" in result.stderr:
            raise GitError(f"git refuses to read the repository at {self.root}: it belongs to another user "
                           f"(`git config --global --add safe.directory {self.root}` trusts it)")
        if result.returncode != 0:
            said = git_said(result) if result.stderr.strip() else ""  # --quiet: silent when only unknown
            raise GitError(f"unknown git revision {rev!r} in {self.root}" + (f" (git said: {said})" if said else ""))
        self.rev = rev
        self.commit = result.stdout.decode().strip()

    def __call__(self, path: str) -> bytes:
        """The bytes of `path` in the revision. Symlinks are followed inside the
        repository, as the working tree would; a path or link leaving it, a
        directory, a submodule or a file over files.MAX_BYTES raise OSError."""
        relative = _in_repository(path, self.root)
        if relative == ".." or relative.startswith("../"):
            raise OSError(errno.EXDEV, "it is outside the repository")
        sha = self._blob(relative)
        size = _git(self.root, "cat-file", "-s", sha)
        if size.returncode != 0:  # a partial clone without the blob, a damaged object store
            raise OSError(errno.EIO, f"git could not read it: {git_said(size)}")
        if int(size.stdout or 0) > MAX_BYTES:
            raise too_big(int(size.stdout))
        blob = _git(self.root, "cat-file", "blob", sha)
        if blob.returncode != 0:
            raise OSError(errno.EIO, f"git could not read it: {git_said(blob)}")
        return blob.stdout

    def _blob(self, relative: str) -> str:
        """The blob id of `relative` in the commit, symlinks resolved component by component."""
        parts, done, hops = relative.split("/"), [], 0
        while parts:
            entry = self._entry("/".join(done + parts[:1]))
            if entry is None:
                raise OSError(errno.ENOENT, f"not in revision {self.rev} ({self.commit[:12]})")
            mode, sha = entry
            if mode == "120000":  # a symlink: a blob holding its target
                hops += 1
                if hops > 40:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links")
                target = _git(self.root, "cat-file", "blob", sha).stdout.decode(errors="replace")
                joined = os.path.normpath(os.path.join(*done, target)) if not target.startswith("/") \
                    else os.path.relpath(target, self.root)
                if joined == ".." or joined.startswith("../"):
                    raise OSError(errno.EXDEV, f"it is a symbolic link to {target!r}, outside the repository")
                parts, done = ([] if joined == "." else joined.split("/")) + parts[1:], []
                continue
            done.append(parts.pop(0))
            if parts and mode != "040000":
                raise OSError(errno.ENOTDIR, f"{'/'.join(done)} is not a directory in revision {self.rev}")
        if mode == "040000":
            raise OSError(errno.EISDIR, "it is a directory, not a regular file")
        if mode == "160000":
            raise OSError(errno.EINVAL, "it is a submodule, not a regular file")
        return sha

    def _entry(self, relative: str):
        """(mode, object id) of `relative` in the commit, or None."""
        if not relative or relative == ".":
            return "040000", self.commit
        listed = _git(self.root, "ls-tree", "-z", self.commit, "--", relative).stdout.split(b"\0")[0]
        if not listed:
            return None
        mode, _, sha = listed.split(b"\t", 1)[0].decode().split(" ")
        return mode, sha

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
    # Paths outside the repository (a policy allowed outside it) are no pathspec
    # git takes: the whole status would fail, the commit with it (found by review).
    relative = [r for r in (_in_repository(p, root) for p in paths) if r != ".." and not r.startswith("../")]
    if not relative:  # (the manifest, first, is in it: toplevel() found the repository by it)
        return {"root": root, "commit": None, "dirty": False}
    # One process for both: the header names HEAD's commit ("(initial)" before the
    # first), then a line for each of the paths that differs from it. Not how far
    # the branch is from its upstream: counting that took 0.5 s behind 100,000 commits.
    status = _git(root, "status", "--porcelain=v2", "--branch", "--no-ahead-behind", "--", *relative)
    lines = status.stdout.decode(errors="replace").splitlines() if status.returncode == 0 else []
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ") and len(line.split()) == 3), None)
    return {"root": root, "commit": commit if commit != "(initial)" else None,
            "dirty": any(line and not line.startswith("#") for line in lines)}
