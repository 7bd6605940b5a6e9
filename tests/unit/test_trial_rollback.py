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
