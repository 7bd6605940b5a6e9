"""`apply --try`: a change that stays only if its probes pass (and, with
--confirm, a person says so) within a time; otherwise it is rolled back to the
snapshot taken before it, and the rollback verified.

    trying   the change is applied; its trial file (trials/ID.json) names the
             snapshot before it and the deadline; a guard process is started
    kept     the probes passed (and it was confirmed): the guard stands down
    rolled back
             by the command itself (a probe failed, no confirmation, Ctrl-C),
             or by the guard at the deadline if the command died (SIGKILL)

The guard rolls back only while the change is still the instance's latest
apply: a later apply by someone else is not undone behind their back (the
trial is then marked superseded).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass

from ..state.journal import Journal
from ..state.statedir import StateDir

DIRECTORY = "trials"
ID = re.compile(r"try-[0-9a-f]{8}")
POLL_S = 0.2


@dataclass
class Trial:
    id: str
    instance: str
    snapshot: str          # taken before the change: where a rollback returns
    deadline: float        # epoch seconds
    pid: int               # the command that applied it
    guard: int = 0         # the guard process
    state: str = "trying"  # trying, kept, rolled back, superseded, failed
    note: str = ""


def new(instance: str, snapshot: str, window_s: float) -> Trial:
    return Trial(f"try-{secrets.token_hex(4)}", instance, snapshot, time.time() + window_s, os.getpid())


def save(state: StateDir, trial: Trial) -> None:
    _check(trial.id)
    state.write_json(f"{DIRECTORY}/{trial.id}.json", asdict(trial), durable=True)


def load(state: StateDir, trial_id: str) -> Trial | None:
    _check(trial_id)
    try:
        data = state.read_json(f"{DIRECTORY}/{trial_id}.json")
        return None if data is None else Trial(**data)
    except (TypeError, ValueError):
        return None  # damaged: nothing can be decided from it, so nothing is rolled back


def settle(state: StateDir, trial: Trial, outcome: str, note: str = "") -> None:
    trial.state, trial.note = outcome, note
    save(state, trial)


def still_latest(state: StateDir, trial: Trial) -> bool:
    """Whether the instance's latest apply is still the one on trial (its snapshot)."""
    return Journal(state).summary().last_apply.get(trial.instance) == trial.snapshot


def roll_back(backend, state: StateDir, trial: Trial, why: str, claims=None):
    """Return to the snapshot before the change (verified by the rollback), unless a
    later apply superseded it. Returns the rollback's result, or None if superseded."""
    if not still_latest(state, trial):
        settle(state, trial, "superseded", "a later apply of this instance came first: not rolled back")
        return None
    from ..runtime.engine import rollback

    result = rollback(backend, state, trial.snapshot, wait=True, claims=claims)
    settle(state, trial, "rolled back", why)
    return result


def guard(backend, state: StateDir, trial_id: str, claims=None, clock=time.time, sleep=time.sleep) -> str:
    """Wait for the trial's deadline; roll it back then unless it was settled. Returns
    its final state. Bounded: it waits at most until the deadline (plus a grace
    period for the command's own rollback, which is checked for)."""
    grace = 5.0
    while True:
        trial = load(state, trial_id)
        if trial is None or trial.state != "trying":
            return trial.state if trial else "gone"
        left = trial.deadline - clock()
        alive = _alive(trial.pid)
        # The command settles its own trial while it lives (its rollback included);
        # once it is gone unsettled (killed), or past the deadline and a grace
        # period, the guard decides: nobody is left to confirm the change.
        if not alive or left <= -grace:
            roll_back(backend, state, trial, "rolled back by the guard at the deadline: the trying command "
                                             + ("did not settle it in time" if alive else "died"), claims)
            return "rolled back"
        sleep(POLL_S)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _check(trial_id: str) -> None:
    if not ID.fullmatch(trial_id):
        raise ValueError(f"not a trial id: {json.dumps(trial_id)}")
