"""`apply --try`: which journal records make a trial's change superseded (never
rolled back), and which are its own attempts to roll it back."""

from __future__ import annotations

import pytest

from toolkit.experiment import trial as trials
from toolkit.state.journal import Journal
from toolkit.state.statedir import StateDir


@pytest.fixture
def state(tmp_path):
    return StateDir(tmp_path / "state")


def start(journal: Journal, tx: str, op: str, snapshot: str, **git) -> None:
    journal.append({"event": "start", "tx": tx, "op": op, "instance": "lab@p-", "snapshot": snapshot,
                    "manifests": [], "git": git, "actions": 1, "pid": 1, "command": "netkeel"})


def test_the_trials_own_cut_off_rollback_does_not_supersede_it_a_later_change_does(state):
    """A second Ctrl-C cut the trial's own rollback off (its restore put the change
    back); the guard then took that rollback for a later change and left the
    change in place, "superseded" (from a race review)."""
    journal = Journal(state)
    trial = trials.Trial("try-0000abcd", "lab@p-", 1, 30.0, snapshot="S1", state="trying")
    start(journal, "S1", "apply", "S1")
    assert trials._still_latest(state, trial)
    start(journal, "S2", "rollback", "S2", rollback_to="S1")  # its own attempt, cut off
    assert trials._still_latest(state, trial)
    start(journal, "S3", "rollback", "S3", rollback_to="S0")  # a rollback elsewhere: a later change
    assert not trials._still_latest(state, trial)
    start(journal, "S4", "apply", "S4")
    assert not trials._still_latest(state, trial)


def test_a_trial_whose_command_and_guard_died_is_said_once_and_marked_abandoned(state, capsys):
    """Every command warns of a trial nobody will settle, once, naming the
    snapshot before it. (An import taken away from the trial module made every
    command after a trial killed with its guard end in a traceback, the change
    left with no way back but removing the trial file by hand: found by review.)"""
    from toolkit.cli.common import err, warn_interrupted

    dead = _a_dead_pid()
    trial = trials.Trial("try-0000abce", "lab@p-", dead, 30.0, snapshot="S1", deadline=1.0, guard=dead,
                         state="trying")
    trials.save(state, trial)
    with err.capture() as said:
        warn_interrupted(state)
    assert "was never settled" in said.get() and "rollback --snapshot S1" in said.get()
    assert trials.load(state, trial.id).state == "abandoned"
    with err.capture() as said:
        warn_interrupted(state)
    assert "never settled" not in said.get()  # said once


def _a_dead_pid() -> int:
    import os

    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


@pytest.mark.parametrize("typed, why", [("yes\n", None), ("Y\n", None), ("no\n", "answered 'no', not yes"),
                                        ("", "no answer could come: standard input was closed (not a terminal?)")])
def test_a_confirmation_says_why_it_did_not_keep_the_change(monkeypatch, typed, why):
    """`apply --try --confirm` with standard input closed (a background job) rolled
    back at once and said "not confirmed in time" (found by review)."""
    import io
    import os
    import sys
    import time

    from toolkit.cli import reconcile

    ready, writer = os.pipe()
    os.close(writer)  # readable at once, as a terminal with a line typed (or at its end) is

    class Typed(io.StringIO):
        def fileno(self):
            return ready

    monkeypatch.setattr(sys, "stdin", Typed(typed))
    try:
        assert reconcile._unconfirmed(time.time() + 5) == why
    finally:
        os.close(ready)


def test_no_answer_in_time_is_said_so(monkeypatch):
    import os
    import sys
    import time

    from toolkit.cli import reconcile

    r, w = os.pipe()
    monkeypatch.setattr(sys, "stdin", os.fdopen(r))
    try:
        assert reconcile._unconfirmed(time.time() + 0.2) == "not confirmed in time"
    finally:
        os.close(w)
