"""The journal: appended JSON lines, damaged lines, interrupted transactions, and
what the journal says about snapshots (pinned ones, the last apply's)."""

import json
import os
import stat
import subprocess

import pytest

from toolkit.reconcile.engine import last_apply_snapshot
from toolkit.reconcile.transaction import _pinned
from toolkit.state.journal import Journal
from toolkit.state.snapshots import SnapshotError
from toolkit.state.statedir import StateDir


@pytest.fixture
def state(tmp_path):
    return StateDir(tmp_path / "state")


@pytest.fixture
def journal(state):
    return Journal(state)


@pytest.fixture(scope="module")
def dead_pid():
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def start(tx, instance="t_lab", pid=None, op="apply", snapshot=None):
    return {"event": "start", "tx": tx, "op": op, "instance": instance, "pid": pid,
            "snapshot": snapshot or tx}


def end(tx, outcome="ok"):
    return {"event": "end", "tx": tx, "outcome": outcome}


def write(journal, *records):
    for record in records:
        journal.append(record)


# -- appending and reading -------------------------------------------------------------

def test_append_writes_one_json_line_per_record_with_mode_0600(journal):
    write(journal, {"event": "start", "tx": "a"}, {"event": "end", "tx": "a", "outcome": "ok"})
    lines = journal.path.read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["event"] == "start" and first["tx"] == "a" and "ts" in first
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    records, problems = journal.records()
    assert [r["event"] for r in records] == ["start", "end"] and problems == []


def test_append_fsyncs_the_file(journal, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    journal.append({"event": "start"})
    assert len(synced) == 1


def test_records_of_a_missing_journal(journal):
    assert journal.records() == ([], [])


def test_records_skip_and_report_damaged_lines(journal):
    write(journal, {"event": "start", "tx": "a"})
    with open(journal.path, "a") as f:
        f.write('[1, 2]\n"text"\nnull\n\n')
    journal.append({"event": "end", "tx": "a"})
    with open(journal.path, "a") as f:
        f.write('{"event": "progress", "tx": "a", "do')  # cut short by a crash
    records, problems = journal.records()
    assert [r["event"] for r in records] == ["start", "end"]
    assert problems == [f"{journal.path}:{n}: unreadable journal line skipped" for n in (2, 3, 4, 7)]


# -- interrupted transactions -----------------------------------------------------------

def test_a_start_without_end_of_a_dead_process_is_interrupted(journal, dead_pid):
    write(journal, start("a", pid=dead_pid), end("a"), start("b", pid=dead_pid))
    assert [r["tx"] for r in journal.interrupted()] == ["b"]


def test_a_start_without_end_of_a_live_process_is_not_interrupted(journal):
    write(journal, start("a", pid=os.getpid()))
    assert journal.interrupted() == []


def test_a_start_without_a_pid_is_interrupted(journal):
    write(journal, start("a", pid=None))
    assert [r["tx"] for r in journal.interrupted()] == ["a"]


def test_a_later_successful_transaction_of_the_instance_settles_an_interrupted_one(journal, dead_pid):
    write(journal, start("a", pid=dead_pid), start("b", pid=dead_pid, op="rollback"), end("b", "ok"))
    assert journal.interrupted() == []


@pytest.mark.parametrize("outcome", ["restored", "restore-failed"])
def test_a_later_failed_transaction_does_not_settle_an_interrupted_one(journal, dead_pid, outcome):
    write(journal, start("a", pid=dead_pid), start("b", pid=dead_pid), end("b", outcome))
    assert [r["tx"] for r in journal.interrupted()] == ["a"]


def test_another_instances_success_does_not_settle_an_interrupted_one(journal, dead_pid):
    write(journal, start("a", "t_lab", pid=dead_pid), start("b", "u_lab", pid=dead_pid), end("b"))
    assert [r["tx"] for r in journal.interrupted()] == ["a"]


def test_an_earlier_success_does_not_settle_a_later_interruption(journal, dead_pid):
    write(journal, start("a", pid=dead_pid), end("a"), start("b", pid=dead_pid))
    assert [r["tx"] for r in journal.interrupted()] == ["b"]


# -- snapshots the journal refers to ---------------------------------------------------

def test_pinned_is_each_instances_last_apply_snapshot(journal):
    write(journal,
          start("a1", "t_lab", snapshot="s1"), end("a1"),
          start("b1", "u_lab", snapshot="s2"), end("b1", "restored"),
          start("a2", "t_lab", snapshot="s3"), end("a2"),
          start("a3", "t_lab", op="rollback", snapshot="s4"), end("a3"))
    assert _pinned(journal) == {"s2", "s3"}


def test_pinned_of_an_empty_journal(journal):
    assert _pinned(journal) == set()


def test_last_apply_snapshot_is_the_most_recent_apply(state, journal):
    write(journal,
          start("a1", "t_lab", snapshot="s1"), end("a1"),
          start("b1", "u_lab", snapshot="s2"), end("b1"),
          start("r1", "t_lab", op="rollback", snapshot="s3"), end("r1"))
    assert last_apply_snapshot(state) == "s2"


def test_last_apply_snapshot_without_an_apply_raises(state, journal):
    with pytest.raises(SnapshotError, match="records no apply"):
        last_apply_snapshot(state)
    write(journal, start("r1", op="rollback", snapshot="s1"), end("r1"))
    with pytest.raises(SnapshotError, match=str(state.root)):
        last_apply_snapshot(state)
