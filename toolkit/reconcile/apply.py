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
    ("create", "addr"), ("create", "route"), ("nft", "nft_table"),
)


def phases_of(action: Action) -> tuple:
    """The phases in which `action` needs a kernel request (none if implicit)."""
    kind, op = action.kind, action.op
    if op == DELETE:
        if kind == "nft_table":
            return () if action.implicit else ("nft",)
        return () if action.implicit else ("delete",)
    if kind == "link":
        if op == CREATE:
            return ("configure",) if action.implicit else ("create", "configure")
        return ("configure",)
    if kind == "sysctl":
        return ("set",)
    if kind == "nft_table":
        return ("nft",)
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
    done = 0
    for batch in _batches(todo):
        adapter = ADAPTERS[batch[0].action.kind]
        try:
            if hasattr(adapter, "run_batch"):
                adapter.run_batch(kernel, batch[0].phase, [s.action for s in batch])
            else:
                adapter.run(kernel, batch[0].phase, batch[0].action)
            for step in batch:
                done += 1
                if on_step:
                    on_step(done, len(todo), step)
        except Exception as exc:
            raise StepError(batch[0], exc, done) from exc
    return len(todo)


def _batches(todo) -> list:
    """Steps grouped for adapters that take one transaction per namespace
    (run_batch); every other step on its own."""
    out, open_batches = [], {}
    for step in todo:
        kind = step.action.kind
        if hasattr(ADAPTERS[kind], "run_batch"):
            key = (step.phase, kind, step.action.ns)
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
        time.sleep(pause * (attempt + 1) / 2)
    return remaining
