"""A change to the kernel as a transaction: snapshot, journal, execute, verify,
and on any failure restore the snapshot and verify that.

    snapshot the live state (a file in the state directory)
    journal: start
    own the namespaces about to be created (inventory), before creating them
    execute the plan (failpoints may fire here), journaling progress per phase
    re-read and verify, with a bounded retry
    on failure: reconcile toward the snapshot, verify, journal the outcome,
                raise ApplyError naming the failed action and the restore's outcome
    journal: end

The restore touches only what the snapshot saw and what this transaction
created itself (namespaces by identity, their cookie): a namespace of the same
name that someone else made meanwhile is never removed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..core.action import Plan
from ..core.interrupts import hold, uninterrupted
from ..core.owners import TOPOLOGY, UNCLAIMED_FAULT, assign
from ..errors import ApplyError, StepError, VerifyError
from ..core.resource import Resource
from ..kinds import kind as kind_of
from ..kinds import read_hints, settle_owners
from ..kinds.netns import names as namespace_names
from ..planner import diff
from ..state.identities import Identities
from ..state.inventory import Inventory
from ..state.journal import Journal
from ..state.process import command_line, now
from ..state.snapshots import Snapshot, Snapshots, keep_setting, new_id
from . import failpoints
from .execute import execute, verify


def read_scope(backend, names, resources, claims=()) -> list:
    """Live resources of the namespaces `names`, each with its owner; sysctls and
    veth peers as `resources` (desired state, a snapshot, what is remembered) name them.

    An object marked as a fault's that no active lease claims (its lease file was
    lost, or its revert cut short) is nobody's overlay: it is the topology's
    drift then, which apply removes, so that no fault outlives its lease."""
    live = assign(backend.read(names, read_hints(resources)), claims)
    live = [r.owned_by(TOPOLOGY) if r.owner == UNCLAIMED_FAULT else r for r in live]
    return settle_owners(resources, live)


def remembered(inventory: Inventory, instance: str) -> frozenset:
    """Stand-ins for what the instance set and no manifest can remove (sysctls):
    reading them too, a snapshot holds every one of them."""
    return frozenset(Resource.make(kind, key) for kind, key in inventory.remembered(instance))


def _to_remember(inventory: Inventory, instance: str, desired) -> list:
    """The inventory's `remember` list after `desired` is in place."""
    items = {(kind, *key) for kind, key in inventory.remembered(instance)}
    items |= {(r.kind, *r.key) for r in desired if kind_of(r.kind).delete_phase is None}
    return sorted([list(item) for item in items], key=lambda item: [str(x) for x in item])


@dataclass
class Change:
    """Everything a transaction needs to know about the change it makes."""

    op: str                  # apply, rollback, destroy
    instance: str
    topology: str
    prefix: str
    plan: Plan
    desired: frozenset       # the target state, as resources
    before: list             # the live state read for the plan: the snapshot
    names: set               # the namespaces in scope
    owned_after: set         # what the instance owns once this succeeds
    manifests: tuple = ()    # ({"path", "sha256"}, ...)
    git: dict = None
    claims: tuple = field(default=())  # overlay claims (core.owners.Claim) on live objects


def run(backend, state, change: Change, on_step=None) -> tuple:
    """Carry out `change` (the caller holds the state lock). Returns (steps, snapshot id).
    Raises ApplyError after restoring (or failing to restore) the snapshot."""
    keep = keep_setting()  # a bad setting is refused before anything is written or changed
    inventory = Inventory(state)
    owned_before = inventory.namespaces(change.instance)
    snapshot = Snapshot(
        id=new_id(), time=now(), instance=change.instance, topology=change.topology, prefix=change.prefix,
        reason=f"before {change.op}", resources=tuple(change.before), namespaces=tuple(sorted(change.names)),
        owned=tuple(sorted(owned_before)), manifests=change.manifests, git=change.git or {})
    snapshots = Snapshots(state)
    snapshots.save(snapshot)
    journal = Journal(state)
    tx = snapshot.id
    # From the journal's start record to the try that restores: a Ctrl-C in
    # between would leave a change recorded as begun and never ended (the next
    # command warns of an interrupted change that changed nothing). Held here, it
    # is raised inside that try, and the change ends "restored".
    release = hold()
    journal.append({"event": "start", "tx": tx, "op": change.op, "instance": change.instance,
                    "snapshot": snapshot.id, "manifests": list(change.manifests), "git": change.git or {},
                    "actions": len(change.plan.actions), "pid": os.getpid(), "command": command_line()})
    snapshots.prune(keep)  # never a snapshot the journal still points to
    target = namespace_names(change.desired)
    # Own what is about to be created before creating it: a crash in the middle
    # leaves nothing netkeel made unaccounted for.
    inventory.record(change.instance, owned_before | target | change.owned_after, unless_same=True,
                     topology=change.topology, prefix=change.prefix,
                     manifest=change.manifests[0]["path"] if change.manifests else "")
    names = set(change.names) | target
    created: dict = {}  # namespace -> cookie, of those this transaction created
    identities = Identities(state)

    def announce(name, cookie):  # before the namespace is visible: recorded first, then made
        identities.record(name, cookie)
        created[name] = cookie
    previous, backend.announce = backend.announce, announce
    try:
        return _carry_out(backend, change, snapshot, journal, inventory, owned_before, target, names,
                          created, on_step, release)
    finally:
        release()  # (if _carry_out never ran)
        backend.announce = previous
        inventory = Inventory(state)
        identities.fold(set().union(*(inventory.namespaces(i) for i in inventory.instances)))


def _carry_out(backend, change, snapshot, journal, inventory, owned_before, target, names, created,
               on_step, release=lambda: None) -> tuple:
    tx = snapshot.id
    progress = _progress(journal, tx, on_step)
    try:
        release()  # a signal held since the start record is raised here, and restored from
        done = execute(backend, change.plan, failpoints.wrap(progress))
        remaining = verify(lambda: read_scope(backend, names, change.desired, change.claims), change.desired)
        if not remaining.empty:
            raise VerifyError(remaining.actions)
    except BaseException as exc:  # interrupted too: the snapshot goes back before we leave
        # A second Ctrl-C (or a SIGTERM after it) waits until the restore is
        # done and recorded: cut off, it would leave the kernel half restored.
        with uninterrupted():
            failpoints.restore_begins()
            restorable = _restorable(backend, snapshot, names, created)
            restored, restore_error = restore(backend, snapshot, restorable, change.claims)
            # After a failed restore, what this transaction created is still ours.
            inventory.record(change.instance, owned_before if restored else owned_before | set(created))
            failed = exc.what if isinstance(exc, StepError) else \
                "interrupted" if isinstance(exc, KeyboardInterrupt) else "verification after the change"
            cause = exc.cause if isinstance(exc, StepError) else exc
            journal.append({"event": "end", "tx": tx, "outcome": "restored" if restored else "restore-failed",
                            "failed": failed, "error": str(cause), "restore_error": restore_error,
                            "steps": getattr(exc, "done", None)})
        raise ApplyError(failed, cause, restored, restore_error,
                         action=exc.action if isinstance(exc, StepError) else None) from exc
    inventory.record(change.instance, change.owned_after, topology=change.topology, prefix=change.prefix,
                     remember=_to_remember(inventory, change.instance, change.desired))
    for name in names:  # names this change left without a namespace: no placeholder of a killed create either
        if not backend.exists(name):
            backend.tidy(name)
    journal.append({"event": "end", "tx": tx, "outcome": "ok", "steps": done})
    return done, snapshot.id


def _restorable(backend, snapshot: Snapshot, names: set, created: dict) -> set:
    """The namespaces a restore may touch: those the snapshot saw, and those this
    transaction created, if they are still the very namespace it created. A
    namespace of the same name made by another party meanwhile is left alone."""
    out = set(snapshot.present)
    for name in names - out:
        if name in created and backend.cookie(name) == created[name]:
            out.add(name)
    return out


def restore(backend, snapshot: Snapshot, names: set, claims=()) -> tuple:
    """Reconcile the kernel toward `snapshot` over `names`, then verify.
    Returns (restored and verified, error text); never raises."""
    wanted = frozenset(snapshot.resources)
    read = lambda: read_scope(backend, names, wanted, claims)  # noqa: E731
    try:
        execute(backend, diff(wanted, read()))
        remaining = verify(read, wanted)
    except Exception as exc:  # the report must still reach the user
        return False, str(exc)
    if not remaining.empty:
        return False, "; ".join(str(a) for a in remaining.actions[:5])
    return True, None


def _progress(journal: Journal, tx: str, on_step):
    """on_step that journals progress once per phase (not per step: fsyncs cost)."""
    seen = set()

    def step(done, total, current):
        phase = (current.phase, current.action.kind)
        if phase not in seen:
            seen.add(phase)
            journal.append({"event": "progress", "tx": tx, "phase": " ".join(phase), "done": done,
                            "total": total})
        if on_step:
            on_step(done, total, current)
    return step
