"""The journal: appended JSON lines, damaged lines, interrupted transactions, and
what the journal says about snapshots (pinned ones, the last apply's)."""

import json
import os
import stat

import pytest

from toolkit.state.journal import Journal
from toolkit.state.lock import StateLock
from toolkit.state.statedir import StateDir


@pytest.fixture
def state(tmp_path):
    return StateDir(tmp_path / "state")


@pytest.fixture
def journal(state):
    return Journal(state)


def start(tx, instance="t_lab", pid=None, op="apply", snapshot=None):
    return {"event": "start", "tx": tx, "op": op, "instance": instance, "pid": pid,
            "snapshot": snapshot or tx}


def end(tx, outcome="ok"):
    return {"event": "end", "tx": tx, "outcome": outcome}


def txs(records):
    return [r["tx"] for r in records]


def write(journal, *records):
    for record in records:
        journal.append(record)


# -- appending and reading -------------------------------------------------------------

def test_append_writes_one_json_line_per_record_with_mode_0600(journal):
    write(journal, start("a"), end("a"))
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
    write(journal, start("a"))
    with open(journal.path, "a") as f:
        f.write('[1, 2]\n"text"\nnull\n\n')
    journal.append(end("a"))
    with open(journal.path, "a") as f:
        f.write('{"event": "progress", "tx": "a", "do')  # cut short by a crash
    records, problems = journal.records()
    assert [r["event"] for r in records] == ["start", "end"]
    assert [p.partition(" (")[0] for p in problems] == \
        [f"{journal.path}:{n}: damaged journal record skipped" for n in (2, 3, 4, 7)]


# -- interrupted transactions -----------------------------------------------------------

def test_a_start_without_end_is_interrupted_when_nobody_holds_the_lock(journal):
    write(journal, start("a"), end("a"), start("b"))
    assert txs(journal.interrupted()) == ["b"]


def test_a_start_without_end_is_running_while_the_lock_is_held(state, journal):
    write(journal, start("a"))
    with StateLock(state):
        assert journal.interrupted() == []
    assert txs(journal.interrupted()) == ["a"]


def test_a_reused_pid_does_not_hide_an_interruption(journal):
    """The pid in the record is alive (it is ours), but no netkeel holds the lock."""
    write(journal, start("a", pid=os.getpid()))
    assert txs(journal.interrupted()) == ["a"]


def test_only_the_latest_start_can_be_running(state, journal):
    """Every change holds the lock, so an unfinished start followed by another start died."""
    write(journal, start("a", "t_lab"), start("b", "u_lab"))
    with StateLock(state):
        assert txs(journal.interrupted()) == ["a"]


def test_a_later_successful_transaction_of_the_instance_settles_an_interrupted_one(journal):
    write(journal, start("a"), start("b", op="rollback"), end("b", "ok"))
    assert journal.interrupted() == []


@pytest.mark.parametrize("outcome", ["restored", "restore-failed"])
def test_a_later_failed_transaction_does_not_settle_an_interrupted_one(journal, outcome):
    write(journal, start("a"), start("b"), end("b", outcome))
    assert txs(journal.interrupted()) == ["a"]


def test_another_instances_success_does_not_settle_an_interrupted_one(journal):
    write(journal, start("a", "t_lab"), start("b", "u_lab"), end("b"))
    assert txs(journal.interrupted()) == ["a"]


def test_an_earlier_success_does_not_settle_a_later_interruption(journal):
    write(journal, start("a"), end("a"), start("b"))
    assert txs(journal.interrupted()) == ["b"]


# -- snapshots the journal refers to ---------------------------------------------------

def test_pinned_is_each_instances_last_apply_snapshot(journal):
    write(journal,
          start("a1", "t_lab", snapshot="s1"), end("a1"),
          start("b1", "u_lab", snapshot="s2"), end("b1", "restored"),
          start("a2", "t_lab", snapshot="s3"), end("a2"),
          start("a3", "t_lab", op="rollback", snapshot="s4"), end("a3"))
    assert journal.pinned() == {"s2", "s3"}


def test_pinned_includes_what_interruption_warnings_point_to(journal):
    write(journal, start("a1", "t_lab", snapshot="s1"), end("a1"),
          start("d1", "t_lab", op="destroy", snapshot="s2"))
    assert journal.pinned() == {"s1", "s2"}


def test_pinned_of_an_empty_journal(journal):
    assert journal.pinned() == set()


def test_last_apply_snapshot_is_the_most_recent_apply(journal):
    write(journal,
          start("a1", "t_lab", snapshot="s1"), end("a1"),
          start("b1", "u_lab", snapshot="s2"), end("b1"),
          start("r1", "t_lab", op="rollback", snapshot="s3"), end("r1"))
    assert journal.last_apply_snapshot() == "s2"


def test_last_apply_snapshot_without_an_apply_is_none(journal):
    assert journal.last_apply_snapshot() is None
    write(journal, start("r1", op="rollback", snapshot="s1"), end("r1"))
    assert journal.last_apply_snapshot() is None


def test_the_last_changes_are_read_from_the_end_as_the_whole_journal_gives_them(journal, state):
    """`history` shows the last 20 changes: it parsed all 100,000 records for them
    (1.6 s, 246 MB in a review); it reads from the end now, with the same result."""
    for i in range(200):
        write(journal, start(f"S{i:03d}"), end(f"S{i:03d}"))
    with open(state.path("journal.jsonl"), "ab") as f:
        f.write(b'{"event": "start", "tx": "cut sh\n')  # a crash's half line, among the last
    write(journal, start("S200"))  # under way
    records, problems = journal.records()
    recent, recent_problems = journal.recent(20)
    assert txs(recent) == txs(records)[-len(recent):] and txs(recent)[0] == "S181" and txs(recent)[-1] == "S200"
    assert recent_problems == problems and len(problems) == 1 and ":401: damaged journal record skipped" in problems[0]
    assert journal.recent(10_000) == (records, problems)


def test_an_experiment_is_one_change_of_the_last_ones_however_many_records_it_has(journal):
    """An experiment writes a record as it starts and one with its outcome (same
    tx): `history --limit 2` showed one row for two runs (found by review)."""
    write(journal, start("S1"), end("S1"))
    for tx in ("x-a", "x-b"):
        journal.append({"event": "experiment", "tx": tx, "outcome": "running"})
        journal.append({"event": "experiment", "tx": tx, "outcome": "held"})
    recent, _ = journal.recent(2)
    assert {r["tx"] for r in recent} == {"x-a", "x-b"}  # (each with its last record: what history shows)
    assert [r["outcome"] for r in recent][-1] == "held" and recent[0]["outcome"] == "held"


def test_a_fault_is_one_change_counted_where_it_began_its_revert_coming_after_others(journal):
    """A fault's inject and revert records (same tx, its lease) may have changes
    between them: `history --limit 2` read back to the revert, counted it, and
    showed the fault as "injected (not recorded)" (found by review)."""
    fault = {"event": "fault", "tx": "loss-40-0001", "fault": "loss-40", "instance": "lab@p-"}
    write(journal, start("S1"), end("S1"))
    journal.append({**fault, "action": "inject", "outcome": "injected for 60 s"})
    write(journal, start("S2"), end("S2"))
    journal.append({**fault, "action": "revert", "outcome": "`chaos revert`"})
    recent, _ = journal.recent(2)
    assert [(r["tx"], r.get("action")) for r in recent] == [
        ("loss-40-0001", "inject"), ("S2", None), ("S2", None), ("loss-40-0001", "revert")]
    recent, _ = journal.recent(1)
    assert [(r["tx"], r.get("action")) for r in recent] == [("S2", None), ("S2", None), ("loss-40-0001", "revert")]


def test_a_reader_that_rebuilds_the_index_keeps_it_for_the_next(journal, state):
    """`history` after records another writer appended rebuilt the index from the
    whole journal at every run (1.6 s at 100,000 records): the first reader keeps it."""
    write(journal, start("S1"), end("S1"))
    with open(state.path("journal.jsonl"), "a") as f:
        for i in range(2, 50):
            f.write(json.dumps({"ts": "2026-12-01T00:00:00+00:00", **start(f"S{i}")}) + "\n")
            f.write(json.dumps({"ts": "2026-12-01T00:00:00+00:00", **end(f"S{i}")}) + "\n")
    before = json.loads(state.path("journal-index.json").read_text())
    assert journal.unfinished() == ([], None)
    after = json.loads(state.path("journal-index.json").read_text())
    assert after["offset"] == os.path.getsize(state.path("journal.jsonl")) > before["offset"]
