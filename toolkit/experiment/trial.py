"""`apply --try`: a change that stays only if its probes pass (and, with
--confirm, a person says so) within a time; otherwise it is rolled back to the
snapshot taken before it, and the rollback verified.

    applying  the trial file and its guard exist before anything is changed
    trying    the change is applied; the file names the snapshot before it and
              the deadline
    kept      the probes passed (and it was confirmed) in time
    rolled back
              by the command itself (a probe failed, no confirmation, Ctrl-C),
              or by the guard: at once when the command dies (SIGKILL, a lost
              session), or past the deadline if the command overstays it
    superseded
              another change of the instance (an apply, a rollback, a destroy)
              came after it: that one is not undone behind its author's back
    not applied
              the command died before its change began

The command and the guard decide under the trial's own lock, and only from
"applying" or "trying": whichever comes second finds the trial settled and
says so, never overwrites it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from ..core.processes import alive
from ..state.journal import Journal
from ..state.statedir import StateDir

DIRECTORY = "trials"
ID = re.compile(r"try-[0-9a-f]{8}")
POLL_S = 0.1
GRACE_S = 5.0        # past the deadline, the command's own rollback is waited for this long
OPEN = ("applying", "trying")


@dataclass
class Trial:
    id: str
    instance: str
    pid: int                   # the command that applies it
    window_s: float            # how long the change has to prove itself, once applied
    snapshot: str | None = None  # taken before the change: where a rollback returns
    deadline: float | None = None  # epoch seconds; set once applied
    guard: int = 0             # the guard process
    state: str = "applying"
    note: str = ""


def new(instance: str, window_s: float) -> Trial:
    return Trial(f"try-{secrets.token_hex(4)}", instance, os.getpid(), window_s)


def save(state: StateDir, trial: Trial) -> None:
    _check(trial.id)
    state.write_json(f"{DIRECTORY}/{trial.id}.json", asdict(trial), durable=True)


def load(state: StateDir, trial_id: str) -> Trial | None:
    _check(trial_id)
    try:
        data = state.read_json(f"{DIRECTORY}/{trial_id}.json")
        return None if data is None else Trial(**data)
    except (TypeError, ValueError, OSError):
        return None  # damaged: nothing can be decided from it, so nothing is rolled back


def all_trials(state: StateDir) -> list:
    out = []
    for name in sorted(state.regular_files(DIRECTORY)):
        if name.endswith(".json") and ID.fullmatch(name[:-5]):
            trial = load(state, name[:-5])
            if trial is not None:
                out.append(trial)
    return out


def pending(state: StateDir, instance: str) -> list:
    """Open trials of `instance` whose command or guard still runs."""
    return [t for t in all_trials(state) if t.instance == instance and t.state in OPEN
            and (alive(t.pid) or alive(t.guard))]


def abandoned(state: StateDir) -> list:
    """Open trials nobody will settle: their command and their guard are gone."""
    return [t for t in all_trials(state) if t.state in OPEN and not alive(t.pid) and not alive(t.guard)]


@contextmanager
def locked(state: StateDir, trial_id: str):
    """The trial's own lock: who decides its fate holds it."""
    _check(trial_id)
    fd = state.open(f"{DIRECTORY}/{trial_id}.lock", os.O_RDWR | os.O_CREAT, create_dirs=True)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def applied(state: StateDir, trial: Trial, snapshot: str) -> bool:
    """The change is in: its time starts now. False if the trial was settled meanwhile."""
    with locked(state, trial.id):
        current = load(state, trial.id)
        if current is None or current.state != "applying":
            return False
        trial.snapshot, trial.deadline, trial.state = snapshot, time.time() + trial.window_s, "trying"
        save(state, trial)
        return True


def keep(state: StateDir, trial: Trial) -> Trial:
    """Keep the change if it is still on trial and in time; returns the trial as it is then."""
    with locked(state, trial.id):
        current = load(state, trial.id) or trial
        if current.state == "trying" and time.time() <= current.deadline:
            current.state, current.note = "kept", "its probes passed in time"
            save(state, current)
        return current


def roll_back(backend, state: StateDir, trial: Trial, why: str, claims=None) -> Trial:
    """Return to the snapshot before the change (the rollback verifies), unless the
    trial was settled already or a later change of the instance came first.
    Returns the trial as it is then."""
    from ..runtime.engine import rollback

    with locked(state, trial.id):
        current = load(state, trial.id) or trial
        if current.state not in OPEN:
            return current
        if current.snapshot is None:
            current.snapshot = _snapshot_of(state, current)
            if current.snapshot is None:
                return _settle(state, current, "not applied", "its command died before the change began")
        if not _still_latest(state, current):
            return _settle(state, current, "superseded", "another change of this instance came after it: "
                                                         "not rolled back")
        rollback(backend, state, current.snapshot, wait=True, claims=claims)
        return _settle(state, current, "rolled back", why)


def guard(backend, state: StateDir, trial_id: str, claims=None, clock=time.time, sleep=time.sleep) -> str:
    """Watch the trial: roll it back as soon as its command dies unsettled, or once
    past its deadline (and a grace period for the command's own rollback).
    Returns its final state."""
    while True:
        trial = load(state, trial_id)
        if trial is None or trial.state not in OPEN:
            return trial.state if trial else "gone"
        if not alive(trial.pid):
            return roll_back(backend, state, trial, "rolled back by its guard: the command trying it died "
                                                    "before it was settled", claims).state
        if trial.deadline is not None and clock() > trial.deadline + GRACE_S:
            return roll_back(backend, state, trial, "rolled back by its guard: its time ran out and the command "
                                                    "did not settle it", claims).state
        sleep(POLL_S)


def _settle(state: StateDir, trial: Trial, outcome: str, note: str) -> Trial:
    trial.state, trial.note = outcome, note
    save(state, trial)
    return trial


def _starts(state: StateDir, instance: str) -> list:
    records, _ = Journal(state).records()
    return [r for r in records if r.get("event") == "start" and r.get("instance") == instance]


def _snapshot_of(state: StateDir, trial: Trial) -> str | None:
    """The snapshot of the apply the trial's command began, if it began one."""
    mine = [r for r in _starts(state, trial.instance) if r.get("op") == "apply" and r.get("pid") == trial.pid]
    return mine[-1].get("snapshot") if mine else None


def _still_latest(state: StateDir, trial: Trial) -> bool:
    """Whether the instance's latest change of any kind is the apply on trial. A
    rollback to the trial's own snapshot that began after it is this trial's own
    attempt to roll back (cut off, it restored the change): not a later change."""
    starts = [r for r in _starts(state, trial.instance)
              if not (r.get("op") == "rollback" and isinstance(r.get("git"), dict)
                      and r["git"].get("rollback_to") == trial.snapshot)]
    return bool(starts) and starts[-1].get("op") == "apply" and starts[-1].get("snapshot") == trial.snapshot


def _check(trial_id: str) -> None:
    if not ID.fullmatch(trial_id):
        raise ValueError(f"not a trial id: {json.dumps(trial_id)}")
