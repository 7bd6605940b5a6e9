"""Files netkeel writes where the user says (a drift's JUnit report, a graph, an
experiment's plot): as root, often in /tmp, where anyone may have put a symlink
or a FIFO under the name first.

A path that exists as anything but a regular file is refused; the content goes
to a new file beside it (a name nobody can guess), renamed over the path: a
reader never sees half a file, and a symlink put there meanwhile is replaced,
never written through."""

from __future__ import annotations

import os
import stat
import sys
import tempfile

from ..errors import NetkeelError


# Standard output, named as people name it: written to directly.
STDOUT = ("-", "/dev/stdout")


def refuse_output(path, option: str = "--output") -> None:
    """NetkeelError when `path` exists and is not a regular file (lstat: a symlink
    is refused, not followed), or its directory does not exist. `-` and
    /dev/stdout are standard output."""
    if str(path) in STDOUT:
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise NetkeelError(f"{option} {path}: no directory {parent}") from None
        return
    if not stat.S_ISREG(st.st_mode):
        raise NetkeelError(f"{option} {path}: it exists and is {_kind(st.st_mode)}, not a regular file; "
                           "not written (give a new path or a regular file, or - for standard output)")


def write_output(path, data: bytes, option: str = "--output") -> None:
    """Write `data` to `path`: to a new file beside it, then renamed over it, so a
    reader never sees half a file and a symlink or device put there meanwhile is
    replaced, not written through. An existing file's permissions and owner are
    kept (root replacing a user's report must not take it from them)."""
    refuse_output(path, option)
    if str(path) in STDOUT:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    owner = None
    try:
        st = os.lstat(path)
        mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    directory = os.path.dirname(os.path.abspath(path))
    fd, partial = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if owner is not None and owner != (os.geteuid(), os.getegid()):
                os.fchown(f.fileno(), *owner)
            os.fchmod(f.fileno(), mode)  # after the owner: fchown clears set-id bits
        os.replace(partial, path)
    except BaseException:
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        raise


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"
