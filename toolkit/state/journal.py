"""The journal: one JSON record per line, appended and fsynced, never rewritten.

Every apply, rollback and destroy writes a `start` record, `progress` records as
it goes, and an `end` record with its outcome. A `start` without an `end` is an
unfinished transaction: running if the state lock is held right now, interrupted
otherwise; the next command says so and what to run.

`history` reads every record. What each change needs (the unfinished
transactions, each instance's last apply snapshot) comes from a small index,
journal-index.json, so that it costs the same with 100,000 records as with none.
The index is a cache, never the truth: it records how far into the journal it
has read (and the bytes just before that point), the records after that point
are folded in on every read, and an index that does not match the journal (or
is missing or damaged) is rebuilt from the whole journal. A crash between
appending a record and updating the index loses nothing.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import NetkeelError
from . import validation
from .statedir import StateDir, read_from, write_all

FILE = "journal.jsonl"
INDEX = "journal-index.json"
_CHECK_BYTES = 32  # the journal bytes just before the index's offset, to notice a rewritten journal


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def parse_record(line: bytes) -> tuple:
    """(record, None) for a valid journal line, (None, why not) for a damaged one."""
    try:
        record = json.loads(line)
    except ValueError:  # UnicodeDecodeError included
        return None, "not JSON: cut short or overwritten"
    problem = validation.problem("journal-record", record)
    return (None, problem) if problem else (record, None)


def parse_lines(data: bytes):
    """Yield (line number from 1, record or None, problem or None) for each non-blank line."""
    for number, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            yield (number, *parse_record(line))


@dataclass
class Summary:
    """What every change needs to know from the journal, folded record by record."""

    last_start: str | None = None                   # tx of the latest start record
    last_apply: dict = field(default_factory=dict)  # instance -> snapshot before its last apply
    last_apply_any: str | None = None               # snapshot before the latest apply of any instance
    open: list = field(default_factory=list)        # start records with no end yet, oldest first

    def fold(self, record: dict) -> None:
        if record["event"] == "start":
            self._started(record)
        elif record["event"] == "end":
            self._ended(record)

    def _started(self, record: dict) -> None:
        self.open = [r for r in self.open if r["tx"] != record["tx"]] + [record]
        self.last_start = record["tx"]
        if record["op"] == "apply" and record.get("snapshot"):
            self.last_apply[record["instance"]] = record["snapshot"]
            self.last_apply_any = record["snapshot"]

    def _ended(self, record: dict) -> None:
        position = next((i for i, r in enumerate(self.open) if r["tx"] == record["tx"]), None)
        if position is None:
            return
        start = self.open.pop(position)
        if record.get("outcome") == "ok":
            # A change that finished settles the earlier unfinished ones of its instance:
            # the kernel is as that change left it.
            self.open = [r for i, r in enumerate(self.open)
                         if i >= position or r["instance"] != start["instance"]]

    def to_index(self) -> dict:
        return {"last_start": self.last_start, "last_apply": self.last_apply,
                "last_apply_any": self.last_apply_any, "open": self.open}

    @classmethod
    def from_index(cls, index: dict) -> "Summary | None":
        """None if the index's open records are not valid journal records."""
        if any(validation.problem("journal-record", r) or r["event"] != "start" for r in index["open"]):
            return None
        return cls(index["last_start"], dict(index["last_apply"]), index["last_apply_any"], list(index["open"]))


class Journal:
    def __init__(self, state: StateDir):
        self.state = state
        self.path = state.path(FILE)

    # -- writing (always under the state lock) ------------------------------------
    def append(self, record: dict) -> None:
        """Append one record and fsync. A journal that does not end in a newline (a line
        cut short by a crash) gets one first: the damaged line stays alone, reported and
        skipped, and never swallows this record."""
        line = json.dumps({"ts": now(), **record}, sort_keys=True).encode() + b"\n"
        fd = self.state.open(FILE, os.O_RDWR | os.O_APPEND | os.O_CREAT, create_dirs=True)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        if record.get("event") in ("start", "end"):  # progress records change nothing indexed
            self._write_index()

    def _write_index(self) -> None:
        summary, position = self._summary()
        if position is None:
            return
        try:
            # Not fsynced: after a power cut a lost or stale index is rebuilt from the journal.
            self.state.write_json(INDEX, {"format": 1, **position, **summary.to_index()}, durable=False)
        except (OSError, NetkeelError):
            pass  # the record is in the journal; without an index, reads are only slower

    # -- reading ------------------------------------------------------------------
    def records(self) -> tuple:
        """(records, problems): every valid record in order, and a note for each line
        that is not (a line cut short by a crash, a record of the wrong shape)."""
        try:
            data = self.state.read_bytes(FILE)
        except OSError as exc:
            return [], [f"{self.path}: cannot read the journal: {exc.strerror or exc}"]
        records, problems = [], []
        for number, record, problem in parse_lines(data or b""):
            if record is None:
                problems.append(f"{self.path}:{number}: damaged journal record skipped ({problem})")
            else:
                records.append(record)
        return records, problems

    def summary(self) -> Summary:
        """The unfinished transactions and last apply snapshots, from the index and the
        records appended after it: no whole-journal read unless the index is unusable."""
        return self._summary()[0]

    def interrupted(self) -> list:
        """Start records of transactions that never ended and are not running now,
        unless a later transaction of the same instance finished. Only the latest start
        can be running (every change holds the state lock), and only while the lock is
        held: unlike a pid, which the system reuses, an flock dies with its holder."""
        summary = self.summary()
        running = self._running(summary)
        return [r for r in summary.open if r["tx"] != running]

    def running(self) -> str | None:
        """The tx of the change running right now, if any."""
        return self._running(self.summary())

    def _running(self, summary: Summary) -> str | None:
        from .lock import held  # lock.py uses this module's clock

        latest_is_open = any(r["tx"] == summary.last_start for r in summary.open)
        return summary.last_start if latest_is_open and held(self.state) else None

    def pinned(self) -> set:
        """Snapshots that must not be pruned: each instance's last apply's (what a
        rollback returns to) and those of unfinished transactions (what their warning
        offers to roll back to)."""
        summary = self.summary()
        return set(summary.last_apply.values()) | {r["snapshot"] for r in summary.open if r.get("snapshot")}

    def last_apply_snapshot(self) -> str | None:
        """The snapshot taken before the most recent apply of any instance."""
        return self.summary().last_apply_any

    def _summary(self) -> tuple:
        """(Summary, the index position to record, or None without a journal)."""
        index = self._read_index()  # before the journal: the journal is then at least as new
        try:
            fd = self.state.open(FILE, os.O_RDONLY)
        except FileNotFoundError:
            return Summary(), None
        try:
            inode = os.fstat(fd).st_ino
            summary, offset = self._resume(index, fd, inode)
            tail = read_from(fd, offset)
            complete = tail.rfind(b"\n") + 1  # a line still unterminated is folded, not indexed
            for _, record, _ in parse_lines(tail):
                if record is not None:
                    summary.fold(record)
            end = offset + complete
            check = os.pread(fd, _CHECK_BYTES, max(0, end - _CHECK_BYTES)) if end else b""
        finally:
            os.close(fd)
        return summary, {"inode": inode, "offset": end, "check": check[-_CHECK_BYTES:].hex()}

    @staticmethod
    def _resume(index: dict | None, fd: int, inode: int) -> tuple:
        """(Summary, offset) to continue from: the index's if it still describes the
        start of this very journal, else an empty summary from offset 0."""
        if index is None or index["inode"] != inode:
            return Summary(), 0
        check = bytes.fromhex(index["check"])
        offset = index["offset"]
        if offset < len(check) or os.pread(fd, len(check), offset - len(check)) != check:
            return Summary(), 0  # truncated, rewritten or replaced since
        summary = Summary.from_index(index)
        return (summary, offset) if summary else (Summary(), 0)

    def _read_index(self) -> dict | None:
        try:
            index = self.state.read_json(INDEX)
        except (ValueError, OSError, NetkeelError):
            return None  # a damaged index is rebuilt, never an error: it is only a cache
        if index is None or validation.problem("journal-index", index):
            return None
        return index


def command_line() -> str:
    return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
