"""The journal: one JSON record per line, appended and fsynced, never rewritten.

Every apply, rollback and destroy (and, later, fault) writes a `start` record,
`progress` records as it goes, and an `end` record with its outcome. A `start`
without an `end` whose process is gone is an interrupted transaction: the next
command says so and what to run.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone

from .statedir import StateDir

FILE = "journal.jsonl"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Journal:
    def __init__(self, state: StateDir):
        self.state = state
        self.path = state.path(FILE)

    def append(self, record: dict) -> None:
        self.state.ensure()
        line = json.dumps({"ts": now(), **record}, sort_keys=True) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self) -> tuple:
        """(records, problems): every readable record in order, and a note for
        each line that is not (a line cut short by a crash, say)."""
        try:
            text = self.path.read_text(errors="replace")
        except FileNotFoundError:
            return [], []
        except OSError as exc:
            return [], [f"{self.path}: cannot read the journal: {exc.strerror or exc}"]
        records, problems = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a record")
                records.append(record)
            except ValueError:
                problems.append(f"{self.path}:{number}: unreadable journal line skipped")
        return records, problems

    def interrupted(self) -> list:
        """Start records of transactions that never ended and whose process is gone,
        unless a later transaction of the same instance finished."""
        records, _ = self.records()
        open_tx, order = {}, []
        for record in records:
            tx = record.get("tx")
            if record.get("event") == "start":
                open_tx[tx] = record
                order.append(tx)
            elif record.get("event") == "end":
                start = open_tx.pop(tx, None)
                if start and record.get("outcome") == "ok":
                    # A finished transaction settles earlier interrupted ones of its instance.
                    for other in list(open_tx):
                        if open_tx[other].get("instance") == start.get("instance") and \
                                order.index(other) < order.index(tx):
                            open_tx.pop(other)
        return [r for tx, r in open_tx.items() if not _alive(r.get("pid"))]


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def command_line() -> str:
    return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
