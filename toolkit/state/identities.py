"""Identities: which namespace netkeel created, by its cookie, not only its name.

A name can be reused: a namespace deleted by hand and made again (`ip netns
del x; ip netns add x`) has the same name and may get the same inode number,
but its cookie (SO_NETNS_COOKIE) is new for every namespace. netkeel records
the cookie of each namespace it creates *before* the namespace becomes visible
under its name, so there is no moment in which a namespace of ours exists
without its identity on record, whatever kills the process.

Records are appended to identities.log (one `COOKIE NAME` line each: a single
write, which survives the death of the process; namespaces themselves do not
survive a power cut, so neither needs an fsync), and folded into
identities.json under the state lock at the end of each change.

A damaged identities.json is an error, never read around: without it netkeel
cannot tell the namespaces it made from anyone else's, so it must neither adopt
one nor quietly forget its own. A log line that is not a record (cut short by a
kill) is skipped: the namespace it was about was never made visible.
"""

from __future__ import annotations

import json
import os
import re

from ..errors import InventoryError
from .statedir import StateDir, read_from, write_all

LOG = "identities.log"
FOLDED = "identities.json"
# A log record: a cookie (a 64-bit number, so at most 20 digits), a space, the name.
_RECORD = re.compile(r"([0-9]{1,20}) (.+)")
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


class Identities:
    def __init__(self, state: StateDir):
        self.state = state
        self._fd: int | None = None

    def load(self) -> dict:
        """name -> cookie of every namespace netkeel recorded creating (the latest wins).
        Log lines that are not a record (cut short, damaged) are ignored. Raises
        InventoryError, saying what to do, if identities.json is damaged."""
        return _logged(self._folded(), self.state.read_bytes(LOG))

    def _folded(self) -> dict:
        path = self.state.path(FOLDED)
        try:
            folded = self.state.read_json(FOLDED, default={})
        except ValueError as exc:
            problem = f"it is not JSON ({exc})"
        else:
            if not isinstance(folded, dict):
                problem = f"it holds {_JSON_TYPES.get(type(folded), 'something')}, not an object of namespace names"
            else:
                wrong = next((name for name, cookie in folded.items() if not is_cookie(cookie)), None)
                if wrong is None:
                    return folded
                problem = f"the cookie of namespace {wrong!r} is {json.dumps(folded[wrong])}, not a 64-bit number"
        raise InventoryError(
            f"{path} is damaged: {problem}. It records which namespaces netkeel created, so "
            f"without it netkeel cannot tell them from anyone else's and changes none. Fix: restore "
            f"it from a backup; or move it aside (mv {path} {path}.damaged): netkeel then refuses "
            f"every namespace it made before as not its own, until you delete them by hand "
            f"(ip netns del NAME) and apply again")

    def record(self, name: str, cookie: int) -> None:
        """Append one identity (the backend calls this before the namespace is visible)."""
        if "\n" in name:
            raise ValueError(f"namespace name {name!r} has a newline")
        if self._fd is None:
            # Read-write: the last byte of what a killed change left is read (pread fails
            # on a write-only fd, and the log is non-empty after every kill that made a namespace).
            self._fd = self.state.open(LOG, os.O_RDWR | os.O_APPEND | os.O_CREAT, create_dirs=True)
            if _ends_without_newline(self._fd):
                write_all(self._fd, b"\n")  # a record cut short stays alone on its line
        write_all(self._fd, f"{cookie} {name}\n".encode())

    def fold(self, keep) -> None:
        """Keep only the identities of the namespaces in `keep` (what the inventory
        owns now), in identities.json; empty the log. Call under the state lock."""
        folded, logged = self._folded(), self.state.read_bytes(LOG)
        known = _logged(folded, logged)
        kept = {name: known[name] for name in sorted(set(keep)) if name in known}
        if kept == folded and not logged:
            self.close()  # as it is (a change that made no namespace): no durable write for nothing
            return
        self.state.write_json(FOLDED, kept)
        self.close()
        fd = self.state.open(LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, create_dirs=True)
        os.close(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def is_cookie(value) -> bool:
    """A network namespace cookie: a 64-bit number, never 0."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**64


def _ends_without_newline(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and read_from(fd, size - 1) != b"\n"


def _logged(folded: dict, log: bytes | None) -> dict:
    """`folded` with the log's records over it (the latest wins)."""
    out = dict(folded)
    for line in (log or b"").decode(errors="replace").split("\n"):
        record = _RECORD.fullmatch(line)
        if record and is_cookie(cookie := int(record[1])):
            out[record[2]] = cookie
    return out
