"""Reading manifest and policy files from the working tree, safely.

A manifest names its policy files, so what is read is input too: it may be a
symlink to /dev/zero (read to the end: MemoryError), a FIFO (read: a hang), or
a path out of the repository (`../../etc/passwd`). Only regular files are read,
at most MAX_BYTES of them, and policy files only inside the manifest's git
repository (outside git: its directory) unless NETKEEL_ALLOW_OUTSIDE_POLICIES=1;
a manifest, fault or experiment file that is a symlink out of its repository is
refused alike.
"""

from __future__ import annotations

import errno
import functools
import os
import stat

from ..errors import GitError, Problem
from .text import quote, shorten

MAX_BYTES = 16 * 1024 * 1024
ALLOW_OUTSIDE = "NETKEEL_ALLOW_OUTSIDE_POLICIES"

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}


def too_big(size: int) -> OSError:
    return OSError(errno.EFBIG, f"it is larger than {MAX_BYTES // (1024 * 1024)} MiB")


def not_a_file(mode: int) -> OSError:
    kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
    return OSError(errno.EINVAL, f"it is {kind}, not a regular file")


def read_file(path: str) -> bytes:
    """The bytes of the regular file at `path` (symlinks followed). Raises OSError,
    whose strerror says why in words, for anything else or anything too big."""
    if "\0" in str(path):
        raise OSError(errno.EINVAL, "the path holds a NUL byte")
    # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat on the open
    # file then tells what it really is, with no race against a rename.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise not_a_file(info.st_mode)
        if info.st_size > MAX_BYTES:
            raise too_big(info.st_size)
        chunks, total = [], 0
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
            if total > MAX_BYTES:  # a file growing while read
                raise too_big(total)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def outside_problem(path: str, relative: str, manifest: str, read, what: str = "policy file",
                    within: str = "the manifest's") -> str | None:
    """Why the policy (or fault) file at `path` (`relative` as the manifest writes
    it) may not be read, or None: it must be inside the manifest's git repository
    (the revision reader's, for --rev), else inside the manifest's directory."""
    if not relative.isprintable():  # a NUL would not even reach the kernel
        return f"{what.split()[0]} path {quote(relative)} holds control characters"
    if os.environ.get(ALLOW_OUTSIDE) == "1":
        return None
    revision = getattr(read, "root", None)
    directory = os.path.dirname(os.path.abspath(manifest))
    if revision is None:
        # Inside the manifest's own directory is inside its repository too (which
        # holds that directory): no need to ask git where that begins (a process:
        # 5 ms of a quick answer's 50).
        real, here = os.path.realpath(path), os.path.realpath(directory)
        if os.path.commonpath([real, here]) == here:
            return None
    root = _root(directory, revision)
    if revision:
        # From a git revision the path is the revision's, not the working tree's: its
        # links are followed (and kept inside) by the reader, in the revision's tree.
        real = os.path.normpath(os.path.join(os.getcwd(), path))
        if os.path.commonpath([real, root]) != root:  # named through a link to the repository
            real = os.path.join(os.path.realpath(os.path.dirname(real)), os.path.basename(real))
    if os.path.commonpath([real, root]) == root:
        return None
    where = "repository" if _in_git(root) else "directory"
    return (f"{what} {quote(relative, 200)} is outside {within} {where} ({quote(root, 200)}); "
            f"set {ALLOW_OUTSIDE}=1 to allow it")


@functools.lru_cache(maxsize=64)
def _root(directory: str, git_root: str | None) -> str:
    return os.path.realpath(git_root or toplevel(os.path.join(directory, "x")) or directory)


GIT_TIMEOUT_S = 30
# Variables that point git at another repository than the one holding the file
# (a git hook sets GIT_DIR and GIT_INDEX_FILE): netkeel finds the repository by
# the manifest's own path.
_RELOCATING = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
               "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE")


def run_git(cwd: str, *args: str):
    """`git ARGS` in `cwd`, paths taken literally (a file named `:(top)x.yaml` is
    that file); its CompletedProcess. Raises GitError without git, or when it
    does not answer in GIT_TIMEOUT_S (a slow remote for a partial clone)."""
    import subprocess  # here, not at the top: the modules that read the kernel import this one

    env = {k: v for k, v in os.environ.items() if k not in _RELOCATING}
    try:
        return subprocess.run(["git", "--literal-pathspecs", "-C", cwd, *args], capture_output=True,
                              timeout=GIT_TIMEOUT_S, env=env)
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0] if args else ''} in {cwd} did not answer in {GIT_TIMEOUT_S} s") from None


def git_said(result) -> str:
    """git's own words from a failed run, one line."""
    lines = [" ".join(line.split()) for line in result.stderr.decode(errors="replace").splitlines() if line.strip()]
    return shorten(" ".join(lines), 300) if lines else f"exit {result.returncode}"


def toplevel(path: str) -> str | None:
    """The root of the git work tree holding `path`, or None. Raises GitError without
    git. A work tree git refuses to read (another user's: "dubious ownership") is
    still found, by its .git: what lies inside it is decided by where it is."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    while not os.path.isdir(directory):  # a file not written yet: its nearest existing directory
        directory = os.path.dirname(directory)
    if nearest_holding(os.path.realpath(directory), ".git") is None:
        return None  # no .git at or above it: git would find no work tree either (and a process costs 5 ms)
    result = run_git(directory, "rev-parse", "--show-toplevel")
    if result.returncode == 0:
        return result.stdout.decode().strip()
    if b"not a git repository" in result.stderr:
        return None
    return nearest_holding(os.path.realpath(directory), ".git")


def nearest_holding(directory: str, name: str, is_dir: bool = False) -> str | None:
    """The nearest directory at or above `directory` that holds `name` (a
    directory, with `is_dir`), or None."""
    exists = os.path.isdir if is_dir else os.path.exists
    while True:
        if exists(os.path.join(directory, name)):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _in_git(root: str) -> bool:
    return os.path.exists(os.path.join(root, ".git"))


def link_out_problem(path: str, what: str) -> str | None:
    """Why the file named at `path` may not be read, or None: a symlink (or a path
    through one) to a file outside the repository holding the link (outside git:
    its directory). A repository's files are input that others write: a link in
    a pull request to /etc/shadow must not have its lines echoed into a CI log
    as unknown keys. A path named without links is the caller's own choice."""
    if os.environ.get(ALLOW_OUTSIDE) == "1":
        return None
    here = os.path.abspath(path)
    real = os.path.realpath(path)
    if real == here:
        return None
    root = _root(os.path.dirname(here), None)
    if os.path.commonpath([real, root]) == root:
        return None
    where = "repository" if _in_git(root) else "directory"
    return (f"{what} {quote(path)} is a symlink to a file outside its {where} ({quote(root, 200)}); "
            f"name the file itself, or set {ALLOW_OUTSIDE}=1 to allow it")


def no_longer_readable(path: str, manifest: str) -> str | None:
    """Why a file a load of `manifest` read (the manifest itself, or a policy
    file) may not be read now, as a load would say it, or None: what a compiled
    manifest or an in-sync verdict is taken for must pass the checks a load makes
    (state/compiled.unchanged). The manifest made a symlink to a file outside its
    directory, with the same bytes, made the cached answers say "in sync" where
    a load refused it (found by review)."""
    if path == manifest:
        return link_out_problem(path, "manifest")
    return outside_problem(path, path, manifest, read_file)


def read_text(path: str, read, what: str) -> tuple:
    """(text, problem): the file as UTF-8 text, or why it cannot be read."""
    if what != "policy file" and getattr(read, "root", None) is None:  # policies: outside_problem
        why = link_out_problem(path, what)
        if why:
            return None, Problem(path, 1, "", why)
    try:
        raw = read(path)
    except OSError as exc:
        # A policy file's problem is reported at the manifest's line naming it: say which file.
        name = f" {path}" if what == "policy file" else ""
        return None, Problem(path, 1, "", f"cannot read {what}{name}: {exc.strerror or exc}")
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        return None, Problem(path, line, "", f"cannot read {what}: it is not UTF-8 text")
