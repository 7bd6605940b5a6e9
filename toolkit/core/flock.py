"""An exclusive flock taken with a bounded wait: the state lock, a lease's lock,
the userspace backend's hold on the mangle tables. flock is released when the
holder closes the file or dies, so a killed netkeel never leaves one held."""

from __future__ import annotations

import fcntl
import time


def take(fd: int, timeout_s: float | None, poll_s: float = 0.02) -> bool:
    """Take an exclusive flock on `fd`, trying again every `poll_s` for up to
    `timeout_s` seconds (None: as long as it takes; 0: once). Whether it was taken."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
