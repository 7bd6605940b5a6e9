"""The journal: one JSON record per line, appended and fsynced, never rewritten.

Every apply, rollback and destroy writes a `start` record, `progress` records as
it goes, and an `end` record with its outcome. A `start` without an `end` is an
unfinished transaction: running if the state lock is held right now, interrupted
otherwise; the next command says so and what to run.

Experiments write their own records (event "experiment"), and faults one as
they are put in place and one as they are taken away (event "fault", the lease's
id as tx: chaos/engine.py).

`history` reads every record. What each change needs (the unfinished
transactions, each instance's last apply snapshot) comes from a small index,
journal-index.json, so that it costs the same with 100,000 records as with none.
The index is a cache, never the truth: it records how far into the journal it
has read (and the bytes just before that point), the records after that point
are folded in on every read, and an index that does not match the journal (or
is missing or damaged) is rebuilt from the whole journal. A crash between
appending a record and updating the index loses nothing. The index holds no
copy of any record, only where in the journal the start records it needs are:
each is read back from the journal (a handful of lines) and must be there.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field

from ..errors import NetkeelError
from . import validation
from .lock import held
from .process import now
from .statedir import StateDir, parse_json, read_from, write_all

FILE = "journal.jsonl"
INDEX = "journal-index.json"
_CHECK_BYTES = 32  # the journal bytes just before the index's offset, to notice a rewritten journal
FORMAT = 2  # of the index: 1 held copies of records, 2 only where they are in the journal


def parse_record(line: bytes) -> tuple:
    """(record, None) for a valid journal line, (None, why not) for a damaged one."""
    try:
        record = parse_json(line)
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
    """What every change needs to know from the journal, folded record by record.

    It keeps the start records it needs with their byte position in the journal,
    so that the index can hold positions only: whatever it says is read back from
    the journal itself, never taken on its word."""

    latest: tuple | None = None                       # (position, record) of the latest start record
    applies: dict = field(default_factory=dict)       # instance -> (position, record) of its last apply
    unfinished: list = field(default_factory=list)    # (position, record) of starts with no end, oldest first

    # -- what every change asks ----------------------------------------------------
    @property
    def last_start(self) -> str | None:
        """The tx of the latest start record."""
        return self.latest[1]["tx"] if self.latest else None

    @property
    def last_apply(self) -> dict:
        """instance -> the snapshot taken before its last apply."""
        return {instance: record["snapshot"] for instance, (_, record) in self.applies.items()}

    @property
    def last_apply_any(self) -> str | None:
        """The snapshot taken before the latest apply of any instance."""
        latest = max(self.applies.values(), key=lambda item: item[0], default=None)
        return latest[1]["snapshot"] if latest else None

    @property
    def open(self) -> list:
        """Start records with no end yet, oldest first."""
        return [record for _, record in self.unfinished]

    # -- folding -------------------------------------------------------------------
    def fold(self, record: dict, position: int) -> None:
        if record["event"] == "start":
            self._started(record, position)
        elif record["event"] == "end":
            self._ended(record)

    def _started(self, record: dict, position: int) -> None:
        self.unfinished = [(p, r) for p, r in self.unfinished if r["tx"] != record["tx"]] + [(position, record)]
        self.latest = (position, record)
        if _is_apply(record):
            self.applies[record["instance"]] = (position, record)

    def _ended(self, record: dict) -> None:
        index = next((i for i, (_, r) in enumerate(self.unfinished) if r["tx"] == record["tx"]), None)
        if index is None:
            return
        _, start = self.unfinished.pop(index)
        if record.get("outcome") == "ok":
            # A change that finished settles the earlier unfinished ones of its instance:
            # the kernel is as that change left it.
            self.unfinished = [(p, r) for i, (p, r) in enumerate(self.unfinished)
                               if i >= index or r["instance"] != start["instance"]]

    # -- the index -----------------------------------------------------------------
    def to_index(self) -> dict:
        return {"last_start": self.latest[0] if self.latest else None,
                "last_apply": {instance: position for instance, (position, _) in self.applies.items()},
                "open": [position for position, _ in self.unfinished]}

    @classmethod
    def from_index(cls, index: dict, start_at) -> "Summary | None":
        """The summary an index describes, each start record it points to read back
        with `start_at(position)` (the valid start record that begins there, or
        None); None unless every position leads to a record that fits: the open
        ones in journal order with distinct transactions, each instance's last
        apply an apply of that instance with a snapshot, the latest start after
        all of them."""
        latest, applies, unfinished = index["last_start"], index["last_apply"], index["open"]
        if not (latest is None or _is_int(latest)) or not isinstance(applies, dict) or \
                not isinstance(unfinished, list) or not all(map(_is_int, [*applies.values(), *unfinished])):
            return None
        if unfinished != sorted(set(unfinished)):
            return None
        positions = [*applies.values(), *unfinished]
        if positions and (latest is None or latest < max(positions)):
            return None
        summary = cls()
        if latest is not None:
            if (record := start_at(latest)) is None:
                return None
            summary.latest = (latest, record)
        for instance, position in applies.items():
            record = start_at(position)
            if record is None or not _is_apply(record) or record["instance"] != instance:
                return None
            summary.applies[instance] = (position, record)
        for position in unfinished:
            if (record := start_at(position)) is None:
                return None
            summary.unfinished.append((position, record))
        if len({r["tx"] for r in summary.open}) != len(unfinished):
            return None
        return summary


def _is_apply(record: dict) -> bool:
    return record["op"] == "apply" and bool(record.get("snapshot"))


def _is_int(value) -> bool:
    return type(value) is int  # not a bool, not a float: JSON Schema's "integer" lets 1.0 through


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
        index = self._summary()[1]
        if index is None:
            return
        try:
            # Not fsynced: after a power cut a lost or stale index is rebuilt from the journal.
            self.state.write_json(INDEX, {"format": FORMAT, **index}, durable=False)
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

    def recent(self, changes: int) -> tuple:
        """(records, problems) as records() gives them, of the last `changes` changes
        only (their start records and every record after the oldest of them), read
        from the journal's end: `history` shows 20 of 100,000 without parsing all."""
        try:
            data = self.state.read_bytes(FILE) or b""
        except OSError as exc:
            return [], [f"{self.path}: cannot read the journal: {exc.strerror or exc}"]
        lines = data.split(b"\n")
        records, problems, starts = [], [], set()
        for number in range(len(lines) - 1, -1, -1):
            if not lines[number].strip():
                continue
            record, problem = parse_record(lines[number])
            if record is None:
                problems.append(f"{self.path}:{number + 1}: damaged journal record skipped ({problem})")
                continue
            records.append(record)
            if record.get("event") in ("start", "experiment") or \
                    (record.get("event") == "fault" and record.get("action") == "inject"):
                # (an experiment has two records, its start's and its outcome's, and a fault
                # two, its inject's and its revert's, which may come after other changes:
                # one change each, counted at its start)
                starts.add(record.get("tx"))
                if len(starts) >= changes:
                    break
        return records[::-1], problems[::-1]

    def summary(self) -> Summary:
        """The unfinished transactions and last apply snapshots, from the index and the
        records appended after it: no whole-journal read unless the index is unusable."""
        return self._summary()[0]

    def interrupted(self) -> list:
        """Start records of transactions that never ended and are not running now,
        unless a later transaction of the same instance finished. Only the latest start
        can be running (every change holds the state lock), and only while the lock is
        held: unlike a pid, which the system reuses, an flock dies with its holder."""
        return self.unfinished()[0]

    def unfinished(self) -> tuple:
        """(interrupted(), running()) from one read of the journal. An index that had
        to be rebuilt (missing, or behind records another writer appended) is kept
        again, so that the next reader does not rebuild it too."""
        stored = self._read_index()
        summary, index = self._summary()
        if index is not None and (stored is None or (stored.get("inode"), stored.get("offset"))
                                  != (index["inode"], index["offset"])):
            try:
                self.state.write_json(INDEX, {"format": FORMAT, **index}, durable=False)
            except (OSError, NetkeelError):
                pass  # only slower next time
        running = self._running(summary)
        return [r for r in summary.open if r["tx"] != running], running

    def running(self) -> str | None:
        """The tx of the change running right now, if any."""
        return self._running(self.summary())

    def _running(self, summary: Summary) -> str | None:

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
        """(Summary, the index to record, or None without a journal)."""
        index = self._read_index()  # before the journal: the journal is then at least as new
        try:
            fd = self.state.open(FILE, os.O_RDONLY)
        except FileNotFoundError:
            return Summary(), None
        try:
            info = os.fstat(fd)
            summary, offset = self._resume(index, fd, info.st_ino, info.st_size)
            tail = read_from(fd, offset)
            complete = tail.rfind(b"\n") + 1
            for position, line in _lines(tail[:complete], offset):
                if (record := parse_record(line)[0]) is not None:
                    summary.fold(record, position)
            end = offset + complete
            check = os.pread(fd, _CHECK_BYTES, max(0, end - _CHECK_BYTES)) if end else b""
            index = {"inode": info.st_ino, "offset": end, "check": check[-_CHECK_BYTES:].hex(),
                     **summary.to_index()}
            # A line still unterminated (being written, or cut short) is folded, never indexed.
            for position, line in _lines(tail[complete:], end):
                if (record := parse_record(line)[0]) is not None:
                    summary.fold(record, position)
        finally:
            os.close(fd)
        return summary, index

    @staticmethod
    def _resume(index: dict | None, fd: int, inode: int, size: int) -> tuple:
        """(Summary, offset) to continue from: the index's if it still describes the
        start of this very journal, else an empty summary from offset 0 (the whole
        journal is read, and the index rewritten). The index must name this file
        (its inode), a point no further than its end with exactly the bytes just
        before it, and records that are there (Summary.from_index)."""
        if index is None or not _is_int(index["inode"]) or index["inode"] != inode:
            return Summary(), 0  # none, or of a journal since replaced
        offset, check = index["offset"], index["check"]
        if not _is_int(offset) or not 0 <= offset <= size or not isinstance(check, str) \
                or len(check) != 2 * min(_CHECK_BYTES, offset):
            return Summary(), 0  # truncated since, or not an index netkeel wrote
        try:
            expected = bytes.fromhex(check)
        except ValueError:
            return Summary(), 0
        if os.pread(fd, len(expected), offset - len(expected)) != expected:
            return Summary(), 0  # rewritten since
        summary = Summary.from_index(index, functools.lru_cache(maxsize=None)(
            lambda position: _start_at(fd, position, offset)))
        return (summary, offset) if summary else (Summary(), 0)

    def _read_index(self) -> dict | None:
        try:
            index = self.state.read_json(INDEX)
        except (ValueError, OSError, NetkeelError):
            return None  # a damaged index is rebuilt, never an error: it is only a cache
        if index is None or validation.problem("journal-index", index):
            return None
        return index


def _lines(data: bytes, base: int):
    """(position in the journal, line) for each non-blank line of `data`, which starts at `base`."""
    position = base
    for line in data.split(b"\n"):
        if line.strip():
            yield position, line
        position += len(line) + 1


def _start_at(fd: int, position: int, limit: int) -> dict | None:
    """The valid start record on the journal line that begins at `position` and ends
    (its newline) before `limit`; None if there is none."""
    if not 0 <= position < limit or (position and os.pread(fd, 1, position - 1) != b"\n"):
        return None
    size = 1024
    while True:
        data = os.pread(fd, min(size, limit - position), position)
        end = data.find(b"\n")
        if end >= 0:
            break
        if len(data) < size:
            return None  # no newline before `limit`: not a line the index read
        size *= 4
    record = _parsed_start(data[:end])
    return dict(record) if record is not None else None


@functools.lru_cache(maxsize=1024)
def _parsed_start(line: bytes) -> dict | None:
    """The start record `line` holds, or None. Cached by the line's bytes (the same
    bytes always hold the same record): every change reads the lines the index
    points to several times, one per instance, and validating them is most of
    the cost. Callers get a copy."""
    record = parse_record(line)[0]
    return record if record is not None and record["event"] == "start" else None
