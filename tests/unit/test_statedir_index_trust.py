"""The journal index (journal-index.json) is believed only where it matches the
journal: an offset within the file with exactly the bytes before it, and start
records that are where it says. Anything else is rebuilt from the journal, and
the index written next is right again."""

import json
import os

import pytest

from toolkit.state.journal import INDEX, Journal
from toolkit.state.statedir import StateDir


@pytest.fixture
def state(tmp_path):
    state = StateDir(tmp_path / "state")
    state.ensure()
    return state


@pytest.fixture
def journal(state):
    return Journal(state)


def start(tx, instance="lab", op="apply"):
    return {"event": "start", "tx": tx, "op": op, "instance": instance, "snapshot": f"s-{tx}", "ts": "t"}


def append_by_hand(journal, record):
    """A record appended without updating the index: what a kill leaves."""
    with open(journal.path, "a") as f:
        f.write(json.dumps(record) + "\n")


def index(state) -> dict:
    return json.loads(state.path(INDEX).read_text())


def doctor(state, **changes):
    state.path(INDEX).write_text(json.dumps({**index(state), **changes}))


def finished(journal, tx, instance="lab"):
    journal.append({k: v for k, v in start(tx, instance).items() if k != "ts"})
    journal.append({"event": "end", "tx": tx, "outcome": "ok"})


# -- the reviewer's repro: offset past the end, empty check -------------------------------

def test_an_offset_past_the_end_with_an_empty_check_is_not_believed(state, journal):
    finished(journal, "a")
    doctor(state, offset=1_000_000_000_000, check="")
    append_by_hand(journal, start("b"))  # an apply killed half way
    assert [r["tx"] for r in journal.interrupted()] == ["b"]
    assert journal.last_apply_snapshot() == "s-b"
    assert journal.pinned() == {"s-b"}  # guarded from pruning


def test_the_index_heals_after_it_was_not_believed(state, journal):
    finished(journal, "a")
    doctor(state, offset=1_000_000_000_000, check="")
    journal.append({"event": "start", "tx": "b", "op": "apply", "instance": "lab", "snapshot": "s-b"})
    healed = index(state)
    assert healed["offset"] == journal.path.stat().st_size
    assert bytes.fromhex(healed["check"]) == journal.path.read_bytes()[-32:]
    append_by_hand(journal, start("c", instance="other"))
    assert [r["tx"] for r in journal.interrupted()] == ["b", "c"]


@pytest.mark.parametrize("changes", [
    {"offset": 1_000_000_000_000},                       # past the end, the check of the real end kept
    {"check": ""},                                       # a check shorter than the bytes before the offset
    {"check": "00" * 32},                                # the wrong bytes
    {"offset": 0, "check": ""},                          # nothing read: every record is folded again
    {"inode": 1},                                        # another file's
], ids=["offset past the end", "empty check", "wrong check", "offset 0", "another inode"])
def test_an_index_that_does_not_match_the_journal_is_rebuilt(state, journal, changes):
    finished(journal, "a")
    journal.append({"event": "start", "tx": "b", "op": "apply", "instance": "lab", "snapshot": "s-b"})
    doctor(state, **changes)
    append_by_hand(journal, start("c", instance="other"))
    assert [r["tx"] for r in journal.interrupted()] == ["b", "c"]
    assert journal.pinned() == {"s-b", "s-c"}
    assert journal.last_apply_snapshot() == "s-c"


def test_an_empty_check_does_not_hide_a_journal_rewritten_in_place(state, journal):
    journal.append({"event": "start", "tx": "a", "op": "apply", "instance": "lab", "snapshot": "s-a"})
    doctor(state, check="")
    content = journal.path.read_bytes()
    with open(journal.path, "r+b") as f:  # same inode, same size, another tx
        f.write(content.replace(b'"a"', b'"z"'))
    assert [r["tx"] for r in journal.interrupted()] == ["z"]


@pytest.mark.parametrize("changes", [
    {"offset": 12.0}, {"inode": "1"}, {"check": 5}, {"offset": True}, {"open": "x"}, {"open": [1.5]},
    {"last_apply": []}, {"last_start": "a"}, {"offset": -1},
])
def test_an_index_of_the_wrong_types_is_rebuilt_without_a_traceback(state, journal, changes):
    journal.append({"event": "start", "tx": "a", "op": "apply", "instance": "lab", "snapshot": "s-a"})
    doctor(state, **changes)
    append_by_hand(journal, start("b", instance="other"))
    assert [r["tx"] for r in journal.interrupted()] == ["a", "b"]
    assert journal.pinned() == {"s-a", "s-b"}


# -- what the index says is read back from the journal ------------------------------------

def test_an_unfinished_change_no_longer_in_the_journal_is_not_reported(state, journal):
    """b's start record overwritten in place (same size, the last bytes untouched):
    the index still says b is unfinished, the journal no longer does."""
    journal.append({"event": "start", "tx": "b", "op": "apply", "instance": "other", "snapshot": "s-b"})
    finished(journal, "a")
    assert [r["tx"] for r in journal.interrupted()] == ["b"]
    content = journal.path.read_bytes()
    with open(journal.path, "r+b") as f:
        f.write(content.replace(b'"event": "start"', b'"event": "xtart"', 1))
    assert journal.interrupted() == []
    assert journal.pinned() == {"s-a"}
    assert journal.last_apply_snapshot() == "s-a"


def positions(journal) -> list:
    """The byte position of each line of the journal."""
    out, at = [], 0
    for line in journal.path.read_bytes().split(b"\n")[:-1]:
        out.append(at)
        at += len(line) + 1
    return out


@pytest.mark.parametrize("doctored", [
    lambda p: {"open": [p[0] + 3]},                          # inside a line, not at its start
    lambda p: {"open": [p[1]]},                              # a's end record, not a start
    lambda p: {"open": [p[3]]},                              # past the offset the index has read to
    lambda p: {"open": [p[0], p[0]]},                        # the same record twice
    lambda p: {"open": [p[2], p[0]], "last_start": p[2]},    # out of journal order
    lambda p: {"last_apply": {"lab": p[1]}},                 # not a start record
    lambda p: {"last_apply": {"other": p[0]}},               # another instance's apply
    lambda p: {"last_apply": {"lab": p[0]}, "last_start": p[0]},  # not the latest start
], ids=["inside a line", "an end record", "past the offset", "twice", "out of order", "apply at an end",
        "another instance", "latest start too early"])
def test_positions_that_do_not_lead_to_the_right_records_are_not_believed(state, journal, doctored):
    finished(journal, "a")                                   # lines 0 (start) and 1 (end)
    journal.append({"event": "start", "tx": "b", "op": "apply", "instance": "lab", "snapshot": "s-b"})
    # line 2: b's start, the last line the index has read
    append_by_hand(journal, start("c", instance="other"))    # line 3: not indexed yet
    doctor(state, **doctored(positions(journal)))
    assert [r["tx"] for r in journal.interrupted()] == ["b", "c"]
    assert journal.pinned() == {"s-b", "s-c"}
    assert journal.last_apply_snapshot() == "s-c"


def test_an_index_of_an_older_format_is_rebuilt(state, journal):
    finished(journal, "a")
    state.path(INDEX).write_text(json.dumps({
        "format": 1, "inode": os.stat(journal.path).st_ino, "offset": journal.path.stat().st_size,
        "check": journal.path.read_bytes()[-32:].hex(), "last_start": "a", "last_apply": {"lab": "s-a"},
        "last_apply_any": "s-a", "open": [start("ghost")]}))
    assert journal.interrupted() == []
    assert journal.pinned() == {"s-a"}
