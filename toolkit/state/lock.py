"""One netkeel at a time changes the kernel: an flock on a file in the state directory.

The holder writes its pid and command line into the lock file, so a second
netkeel can say who holds it. Without `wait` the second one fails at once.
The lock is also how the journal knows whether an unfinished change is still
running (see held()): unlike a pid, an flock dies with its process.
"""

from __future__ import annotations

import fcntl
import json
import os

from ..core import flock
from ..errors import LockHeld
from .process import command_line, now
from .statedir import StateDir, parse_json

FILE = "lock"


class StateLock:
    def __init__(self, state: StateDir, wait: bool = False, timeout: float | None = None):
        self.state = state
        self.wait = wait
        self.timeout = timeout
        self.fd: int | None = None

    def __enter__(self) -> "StateLock":
        fd = self.state.open(FILE, os.O_RDWR | os.O_CREAT, create_dirs=True)
        if not flock.take(fd, self.timeout if self.wait else 0, poll_s=0.05):
            holder = _holder(fd)
            os.close(fd)
            raise LockHeld(holder)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command_line(), "since": now()}).encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def held(state: StateDir) -> bool:
    """Whether some netkeel holds the state lock right now. A non-blocking shared
    flock on a fresh open file description conflicts with a holder's exclusive one,
    in this process as in any other; taken, it is released at once."""
    try:
        fd = state.open(FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases a shared lock we took
    return False


def _holder(fd: int) -> dict:
    try:
        holder = parse_json(os.pread(fd, 4096, 0).decode() or "{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
