"""The journal survives a line cut short, and its index (journal-index.json)
answers what every change asks without reading the whole journal, and without
ever losing a record appended after it."""

import json
import os

import pytest

from toolkit.state import journal as journal_module
from toolkit.state.journal import INDEX, Journal
from toolkit.state.statedir import StateDir


@pytest.fixture
def state(tmp_path):
    return StateDir(tmp_path / "state")


@pytest.fixture
def journal(state):
    return Journal(state)


def change(journal, tx, op="apply", instance="lab", outcome="ok"):
    journal.append({"event": "start", "tx": tx, "op": op, "instance": instance, "snapshot": f"s-{tx}"})
    journal.append({"event": "progress", "tx": tx, "phase": "create netns", "done": 1, "total": 2})
    if outcome:
        journal.append({"event": "end", "tx": tx, "outcome": outcome})


def cut(journal, count):
    os.truncate(journal.path, journal.path.stat().st_size - count)


# -- a line cut short (power loss) -------------------------------------------------------

def test_a_line_cut_short_does_not_swallow_the_next_record(journal):
    """apply a; apply b; truncate -s -10 journal.jsonl; apply c"""
    change(journal, "a")
    change(journal, "b")
    cut(journal, 10)
    change(journal, "c")
    records, problems = journal.records()
    assert [(r["tx"], r["event"]) for r in records if r["event"] != "progress"] == \
        [("a", "start"), ("a", "end"), ("b", "start"), ("c", "start"), ("c", "end")]
    assert len(problems) == 1 and ":6: damaged journal record skipped" in problems[0]
    assert journal.last_apply_snapshot() == "s-c"  # rollback undoes c only
    assert journal.interrupted() == []  # c finished, settling b: no false warning


def test_a_new_record_starts_on_a_new_line_only_when_needed(journal):
    change(journal, "a")
    assert b"\n\n" not in journal.path.read_bytes()
    cut(journal, 1)  # just the newline: the record itself is whole
    change(journal, "b")
    records, problems = journal.records()
    assert problems == [] and [r["tx"] for r in records if r["event"] == "end"] == ["a", "b"]


# -- the index ---------------------------------------------------------------------------

def test_the_index_is_written_on_start_and_end(state, journal):
    change(journal, "a", outcome=None)
    index = json.loads(state.path(INDEX).read_text())
    start = journal.path.read_bytes().index(b'{"event": "start"')
    assert index["open"] == [start] and index["last_apply"] == {"lab": start} and index["last_start"] == start
    assert index["offset"] == journal.path.read_bytes().index(b"\n") + 1  # progress records are not indexed


def test_a_record_appended_after_the_index_is_not_lost(state, journal):
    """A kill between appending and updating the index."""
    change(journal, "a")
    with open(journal.path, "a") as f:
        f.write(json.dumps({"event": "start", "tx": "b", "op": "destroy", "instance": "lab",
                            "snapshot": "s-b", "ts": "x"}) + "\n")
    assert [r["tx"] for r in journal.interrupted()] == ["b"]
    assert journal.pinned() == {"s-a", "s-b"}


@pytest.mark.parametrize("damage", ["", "{", "[]", '{"format": 1}'])
def test_a_damaged_index_is_rebuilt_from_the_journal(state, journal, damage):
    change(journal, "a")
    change(journal, "b", instance="other", outcome=None)
    state.path(INDEX).write_text(damage)
    assert [r["tx"] for r in journal.interrupted()] == ["b"]
    assert journal.pinned() == {"s-a", "s-b"}


def test_an_index_of_a_journal_since_truncated_or_replaced_is_not_trusted(state, journal):
    change(journal, "a", outcome=None)
    index = state.path(INDEX).read_text()
    journal.path.unlink()
    change(journal, "b")
    state.path(INDEX).write_text(index)  # describes the old journal
    assert journal.interrupted() == []
    assert journal.last_apply_snapshot() == "s-b"


def test_an_index_of_a_rewritten_journal_of_the_same_size_is_not_trusted(state, journal):
    change(journal, "a", outcome=None)
    content = journal.path.read_bytes()
    with open(journal.path, "r+b") as f:  # same inode, same size, another tx
        f.write(content.replace(b'"a"', b'"z"'))
    assert [r["tx"] for r in journal.interrupted()] == ["z"]


def test_with_an_index_only_the_records_after_it_are_parsed(state, journal, monkeypatch):
    for n in range(50):
        change(journal, f"t{n}")
    parsed = []
    real = journal_module.parse_record
    monkeypatch.setattr(journal_module, "parse_record", lambda line: (parsed.append(line), real(line))[1])
    journal_module._parsed_start.cache_clear()
    assert journal.pinned() == {"s-t49"}
    assert journal.interrupted() == [] and journal.last_apply_snapshot() == "s-t49"
    # Only the start record the index points to (read back on every call, parsed once).
    assert [json.loads(line)["tx"] for line in parsed] == ["t49"]
    journal.append({"event": "progress", "tx": "t49", "phase": "x", "done": 1, "total": 1})
    journal.interrupted()
    assert len(parsed) == 2 and json.loads(parsed[-1])["event"] == "progress"


def test_progress_records_do_not_rewrite_the_index(state, journal):
    change(journal, "a", outcome=None)
    before = state.path(INDEX).stat().st_ino
    journal.append({"event": "progress", "tx": "a", "phase": "x", "done": 1, "total": 1})
    assert state.path(INDEX).stat().st_ino == before
