"""Running a plan against the kernel: ordered phases, then verification.

A link is created bare in one phase and configured (mtu, mac, master, state) in
a later one, so that every bridge exists before its ports are enslaved and every
device exists before addresses and routes refer to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import NetkeelError
from ..kernel.adapters import ADAPTERS
from .plan import CREATE, DELETE, MODIFY, Action, Plan, diff

# (phase, kind) in execution order.
PHASES = (
    ("delete", "route"), ("delete", "addr"), ("delete", "link"), ("delete", "netns"),
    ("create", "netns"), ("create", "link"), ("configure", "link"), ("set", "sysctl"),
    ("create", "addr"), ("create", "route"),
)


def phases_of(action: Action) -> tuple:
    """The phases in which `action` needs a kernel request (none if implicit)."""
    kind, op = action.kind, action.op
    if op == DELETE:
        return () if action.implicit else ("delete",)
    if kind == "link":
        if op == CREATE:
            return ("configure",) if action.implicit else ("create", "configure")
        return ("configure",)
    if kind == "sysctl":
        return ("set",)
    if op in (CREATE, MODIFY):
        return ("create",)
    return ()


@dataclass(frozen=True)
class Step:
    phase: str
    action: Action


def steps(plan: Plan) -> tuple:
    """The kernel requests a plan makes, in execution order."""
    by_phase = {p: [] for p in PHASES}
    for action in plan.actions:
        for phase in phases_of(action):
            by_phase[(phase, action.kind)].append(Step(phase, action))
    return tuple(step for p in PHASES for step in by_phase[p])


class StepError(NetkeelError):
    """A step failed. `step` is the Step, `cause` the exception (often a
    KernelError), `done` how many steps had completed before it."""

    def __init__(self, step: Step, cause: BaseException, done: int):
        self.step, self.cause, self.done = step, cause, done
        self.what = f"{step.phase} {step.action.resource.label} in {step.action.ns}"
        super().__init__(f"{self.what}: {cause}")


def execute(kernel, plan: Plan, on_step=None) -> int:
    """Run every step of `plan`; returns how many ran.

    Raises StepError for the first step that fails (the rest stay undone).
    `on_step(done, total, step)` is called after each step; whatever it raises
    is wrapped the same way (failpoints use that)."""
    todo = steps(plan)
    for done, step in enumerate(todo, 1):
        try:
            ADAPTERS[step.action.kind].run(kernel, step.phase, step.action)
            if on_step:
                on_step(done, len(todo), step)
        except Exception as exc:
            raise StepError(step, exc, done - 1) from exc
    return len(todo)


def verify(read, desired, attempts: int = 20, pause: float = 0.05) -> Plan:
    """Re-read and compare until in sync or out of attempts; returns what remains.

    Retries because some kernel work finishes after the request returns (a
    removed namespace's devices go away in a workqueue)."""
    remaining = Plan()
    for attempt in range(attempts):
        remaining = diff(desired, read())
        if remaining.empty:
            return remaining
        time.sleep(pause * (attempt + 1) / 2)
    return remaining
