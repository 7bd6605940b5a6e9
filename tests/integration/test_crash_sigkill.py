"""Crash safety under SIGKILLs at random moments, not only at failpoints.

A 40-node apply is started as a real process and killed after a random delay
drawn over the whole life of such a process (interpreter start, manifest, plan,
snapshot, journal, kernel requests, verification, bookkeeping, exit). Wherever
the kill lands, netkeel must say exactly what happened, and both ways out (finish
the change, or undo it) must work:

- killed before the change started (no journal start record): nothing changed,
  and nothing is reported as interrupted;
- killed while it ran (a start record without an end): the next command reports
  the interruption with the snapshot from before it; `apply` converges, `drift` is
  clean, and `rollback --snapshot ID` gives back the kernel state from before the
  interrupted apply exactly (`ip -j` and `nft -j` views, and the set of namespaces);
- killed after it ended (or once it had exited): the change is complete, and
  reported as nothing else.

The delays come from a seeded random.Random: NETKEEL_CRASH_SEED=N replays a run's
draws (the moments themselves depend on the machine's timing). The seed, the
delays and each trial's outcome are printed; pytest shows them when the test fails.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time

import pytest
from labkit import lab_view, namespaces_with
from test_transactions import big_lab

from toolkit.kernel import netns

TRIALS = 20
NODES = 40
SEED_ENV = "NETKEEL_CRASH_SEED"
REAP_TIMEOUT_S = 60  # a killed (or finishing) apply is reaped within this
ADVICE = re.compile(r"`rollback --snapshot (\S+) --state-dir \S+` returns to the state before it")


@pytest.fixture
def no_stray_mount_points(prefix):
    """A kill between creating a namespace's mount point and mounting the namespace
    on it leaves an empty file in the run directory, which netkeel ignores (and
    replaces when it creates that namespace) but the prefix fixture, which removes
    namespaces, does not see: removed here, only under this test's prefix."""
    yield
    for name in os.listdir(netns.NETNS_RUN_DIR):
        if name.startswith(prefix) and not netns.exists(name):
            os.unlink(netns.path_of(name))


def journal_records(lab) -> list:
    """The lab's journal records, in order (a line that is not JSON is skipped,
    as netkeel skips it)."""
    path = lab.state / "journal.jsonl"
    records = []
    for line in (path.read_bytes() if path.exists() else b"").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def inventory_bytes(lab) -> bytes | None:
    path = lab.state / "inventory.json"
    return path.read_bytes() if path.exists() else None


def checked(result, *codes):
    """`result`, if it exited with one of `codes` and printed no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in codes, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    return result


def warnings_of(result) -> list:
    """The snapshot ids that the interruption warnings on stderr offer to roll back to."""
    assert "Traceback" not in result.stderr, result.stderr
    offered = ADVICE.findall(result.stderr)
    assert len(offered) == result.stderr.count("was interrupted"), result.stderr  # each says how to undo it
    return offered


def test_sigkill_at_random_moments_is_reported_converged_and_rolled_back(lab, prefix, tmp_path,
                                                                          no_stray_mount_points):
    small, large = big_lab(tmp_path, 10), big_lab(tmp_path, NODES, extra=1)
    checked(lab.run("apply", small), 0)
    before = lab_view(prefix)
    assert set(before) == {f"{prefix}n{i}" for i in range(10)}

    # A whole apply of the change, process start to exit, so that the kills cover
    # all of it; the rollback puts the state back for the trials.
    started = time.monotonic()
    checked(lab.run("apply", large), 0)
    duration = time.monotonic() - started
    checked(lab.run("rollback", None), 0)
    assert lab_view(prefix) == before

    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1 << 32))
    rng = random.Random(seed)
    delays = [rng.uniform(0, 1.1 * duration) for _ in range(TRIALS)]
    print(f"{SEED_ENV}={seed}: a full apply took {duration:.3f} s; kill delays (s): "
          + " ".join(f"{d:.3f}" for d in delays))

    interrupted = 0
    for trial, delay in enumerate(delays):
        where = f"{SEED_ENV}={seed}, trial {trial}, killed after {delay:.3f} s"
        known = len(journal_records(lab))
        inventory = inventory_bytes(lab)

        launched = time.monotonic()
        proc = lab.start("apply", large)
        time.sleep(max(0.0, launched + delay - time.monotonic()))
        proc.send_signal(signal.SIGKILL)  # nothing, if it has already exited
        code = proc.wait(timeout=REAP_TIMEOUT_S)

        new = journal_records(lab)[known:]
        starts = [r for r in new if r["event"] == "start"]
        ends = [r for r in new if r["event"] == "end"]
        assert len(starts) <= 1 and all(r["op"] == "apply" for r in starts), (where, new)
        notice = lab.run("plan", large)
        offered = warnings_of(notice)

        if not starts:
            outcome = "before the change"
            assert code == -signal.SIGKILL, (where, code)
            assert offered == [], (where, notice.stderr)
            assert notice.returncode == 2, (where, notice.returncode)  # the whole change is still to do
            assert lab_view(prefix) == before, f"{where}: the kernel changed before the journal's start record"
            assert inventory_bytes(lab) == inventory, f"{where}: the inventory changed before the start record"
            # Then the change itself, to go back from as from the others.
            checked(lab.run("apply", large), 0)
            last = journal_records(lab)
            assert last[-1]["event"] == "end" and last[-1]["outcome"] == "ok", (where, last[-1])
            snapshot = next(r["snapshot"] for r in last if r["event"] == "start" and r["tx"] == last[-1]["tx"])
        elif not ends:
            interrupted += 1
            assert code == -signal.SIGKILL, (where, code)
            snapshot = starts[0]["snapshot"]
            assert offered == [snapshot], (where, notice.stderr)
            if interrupted % 2 == 1:
                outcome = "during the change: converged, then rolled back"
                checked(lab.run("apply", large), 0)
                checked(lab.run("drift", large), 0)
                assert warnings_of(lab.run("plan", large)) == [], f"{where}: still reported after apply finished it"
            else:
                outcome = "during the change: rolled back from the half state"
        else:
            outcome = "after the change"
            assert code in (0, -signal.SIGKILL), (where, code)
            assert [e["tx"] for e in ends] == [starts[0]["tx"]] and ends[0]["outcome"] == "ok", (where, new)
            assert offered == [], (where, notice.stderr)
            assert notice.returncode == 0, (where, notice.stdout[-2000:])
            checked(lab.run("apply", large), 0)
            checked(lab.run("drift", large), 0)
            snapshot = starts[0]["snapshot"]
        print(f"trial {trial}: killed after {delay:.3f} s (exit {code}), {outcome}")

        checked(lab.run("rollback", None, "--snapshot", snapshot), 0)
        assert namespaces_with(prefix) == set(before), where
        assert lab_view(prefix) == before, f"{where}: rollback --snapshot {snapshot} is not exact"
        back = checked(lab.run("drift", small), 0)
        assert warnings_of(back) == [], f"{where}: still reported after the rollback undid it"
