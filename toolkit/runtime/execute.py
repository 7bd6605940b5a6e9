"""Running a plan against a backend: ordered phases, then verification.

A link is created bare in one phase and configured (mtu, mac, master, state) in
a later one, so that every bridge exists before its ports are enslaved and every
device exists before addresses and routes refer to it. The phases and their
order come from the kinds (kinds.PHASES).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..core.action import Plan
from ..errors import StepError
from ..kinds import PHASES, kind
from ..planner import diff


@dataclass(frozen=True)
class Step:
    phase: str
    action: object  # core.action.Action

    @property
    def what(self) -> str:
        return f"{self.phase} {self.action.resource.label} in {self.action.ns}"


def phases_of(action) -> tuple:
    """The phases in which `action` needs a request (none if implicit)."""
    return kind(action.kind).phases_of(action)


def steps(plan: Plan) -> tuple:
    """The requests a plan makes, in execution order."""
    by_phase = {p: [] for p in PHASES}
    for action in plan.actions:
        for phase in phases_of(action):
            by_phase[(phase, action.kind)].append(Step(phase, action))
    return tuple(step for p in PHASES for step in _ordered(p, by_phase[p]))


def _ordered(phase: tuple, todo: list) -> list:
    """A kind may need its creations in an order of its own (addresses: each
    device's primaries before its secondaries)."""
    order = getattr(kind(phase[1]), "restore_order", None)
    if order is None or phase[0] == "delete":
        return todo
    by_resource = {s.action.resource: s for s in todo}
    return [by_resource[r] for r in order(list(by_resource))] if len(by_resource) == len(todo) else todo


def execute(backend, plan: Plan, on_step=None) -> int:
    """Run every step of `plan` against `backend`; returns how many ran.

    Raises StepError for the first step that fails (the rest stay undone).
    `on_step(done, total, step)` is called after each step; whatever it raises
    is wrapped the same way (failpoints use that)."""
    todo = steps(plan)
    done = 0
    for batch in _batches(todo):
        first = batch[0]
        try:
            kind(first.action.kind).run(backend, first.phase, [s.action for s in batch])
            for step in batch:
                done += 1
                if on_step:
                    on_step(done, len(todo), step)
        except Exception as exc:
            raise StepError(first.what, first.action, exc, done) from exc
    return len(todo)


def _batches(todo) -> list:
    """Steps grouped for kinds that take one call per (phase, namespace)
    (batched); every other step on its own."""
    out, open_batches = [], {}
    for step in todo:
        if kind(step.action.kind).batched:
            key = (step.phase, step.action.kind, step.action.ns)
            if key in open_batches:
                open_batches[key].append(step)
                continue
            open_batches[key] = [step]
            out.append(open_batches[key])
        else:
            out.append([step])
    return out


def verify(read, desired, attempts: int = 20, pause: float = 0.05) -> Plan:
    """Re-read and compare until in sync or out of attempts; returns what remains.

    Retries because some kernel work finishes after the request returns (a
    removed namespace's devices go away in a workqueue)."""
    remaining = Plan()
    for attempt in range(attempts):
        remaining = diff(desired, read())
        if remaining.empty:
            return remaining
        if attempt + 1 < attempts:
            time.sleep(pause * (attempt + 1) / 2)
    return remaining
