"""What a change costs in journal work, with an empty journal and with 100,000 records.

Times the state-directory path every apply runs besides the kernel work: the
interruption check (warn_interrupted), taking the lock, the inventory, the start
record, pruning snapshots (with the journal's pins), the pins and the last apply
snapshot, progress and end records. No root, no namespaces: a temporary state
directory only. The last line gives both figures and their ratio.

    .venv/bin/python bench/journal_scale.py [RECORDS]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.state.inventory import Inventory  # noqa: E402
from toolkit.state.journal import Journal  # noqa: E402
from toolkit.state.process import now  # noqa: E402
from toolkit.state.lock import StateLock  # noqa: E402
from toolkit.state.snapshots import Snapshot, Snapshots, new_id  # noqa: E402
from toolkit.state.statedir import StateDir  # noqa: E402

RUNS = 20


def fill(state: StateDir, records: int) -> None:
    """`records` journal lines of finished applies of 50 instances, written in one go
    (as years of use would leave them), then one real append to index them."""
    lines = []
    for n in range(records // 3):
        tx, instance = f"{n:08d}", f"lab{n % 50}"
        lines.append({"event": "start", "tx": tx, "op": "apply", "instance": instance, "snapshot": tx,
                      "manifests": [{"path": "lab.yaml", "sha256": "0" * 64}], "git": {}, "actions": 9,
                      "pid": 1, "command": "netkeel apply lab.yaml", "ts": now()})
        lines.append({"event": "progress", "tx": tx, "phase": "create netns", "done": 1, "total": 9, "ts": now()})
        lines.append({"event": "end", "tx": tx, "outcome": "ok", "steps": 9, "ts": now()})
    state.ensure()
    state.path("journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    state.path("journal.jsonl").chmod(0o600)
    change(state)  # the first change after an upgrade builds the index once


def change(state: StateDir) -> None:
    """The state work of one apply (runtime/transaction.run and the CLI around it)."""
    journal = Journal(state)
    journal.interrupted()                                   # warn_interrupted
    with StateLock(state):
        inventory = Inventory(state)
        snapshot = Snapshot(id=new_id(), time=now(), instance="lab0", topology="lab", prefix="",
                            reason="before apply", resources=(), namespaces=(), owned=())
        snapshots = Snapshots(state)
        snapshots.save(snapshot)
        journal.append({"event": "start", "tx": snapshot.id, "op": "apply", "instance": "lab0",
                        "snapshot": snapshot.id, "pid": 1, "command": "bench"})
        snapshots.prune(5, pinned=journal.pinned())
        journal.last_apply_snapshot()
        inventory.record("lab0", ["lab0_a"], topology="lab", prefix="")
        journal.append({"event": "progress", "tx": snapshot.id, "phase": "create netns", "done": 1, "total": 1})
        journal.append({"event": "end", "tx": snapshot.id, "outcome": "ok", "steps": 1})


def median_ms(records: int) -> float:
    with tempfile.TemporaryDirectory() as work:
        state = StateDir(Path(work) / "state")
        fill(state, records) if records else state.ensure()
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            change(state)
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1000


def main() -> None:
    records = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    median_ms(0)  # warm up: imports, schema compilation, the file system's first fsyncs
    empty, full = median_ms(0), median_ms(records)
    print(f"state work per apply (median of {RUNS}): empty journal {empty:.2f} ms, "
          f"{records:,} records {full:.2f} ms, ratio {full / empty:.2f}")


if __name__ == "__main__":
    main()
