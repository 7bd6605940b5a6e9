"""The reconciler: plan, apply, drift, destroy for one topology; rollback to a snapshot.

    desired = compile(topology)            live = read(backend, scope)
    plan    = diff(desired, live)
    apply   = a transaction (transaction.py): snapshot, execute, verify, and on
              any failure restore the snapshot and verify that too
    rollback = the same transaction, toward a snapshot instead of a manifest

The scope of a topology instance is the namespaces it declares plus those the
inventory says it owns: nothing outside it is read, changed or removed. The
backend (the kernel, or a fake in unit tests) is handed in; nothing here
imports one.
"""

from __future__ import annotations

import re
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace

from ..core.action import Plan
from ..core.owners import is_managed, is_reported
from ..errors import ManifestError, NetkeelError, OwnershipError, Problem
from ..kinds import NAMESPACE, compile_topology, kind
from ..kinds.netns import names as namespace_names
from ..kinds.nft_table import namespaces_read_as_json
from ..model.topology import Topology
from ..planner import diff
from ..state.identities import Identities
from ..state.inventory import Inventory, instance_id
from ..state.journal import Journal
from ..state.lock import StateLock
from ..state.snapshots import SnapshotError, Snapshots
from ..state.statedir import StateDir
from . import failpoints, transaction
from .transaction import Change, read_scope, remembered

PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    steps: int
    snapshot: str | None = None  # the snapshot taken before the change


@dataclass(frozen=True)
class Drift:
    """What differs from the manifest (`plan`, what apply would do), and what is in
    a managed namespace but not the topology's to change (`unmanaged`: foreign
    objects and overlays' objects, each with its owner, left alone)."""

    plan: Plan
    unmanaged: tuple = ()
    overlays: tuple = ()  # what the active overlays (faults, VIP groups) say they hold

    @property
    def clean(self) -> bool:
        return self.plan.empty and not self.unmanaged and not self.overlays


class Reconciler:
    def __init__(self, topology, backend, state: StateDir, prefix: str = "",
                 git=None, wait: bool = False, claims=()):
        """`topology` is a model.topology.Topology, which must have its native
        firewall rules resolved (ManifestError otherwise, if it has any), or a
        model.compiled.Compiled for this prefix (from the compile cache). `git`
        says where the manifest came from: a dict, or a function returning one,
        called only when a change records it; `wait` makes a change wait for the
        state lock instead of failing; `claims` are overlays' claims on live
        objects (core.owners.Claim), or a function that gives them."""
        if prefix and not PREFIX.fullmatch(prefix):
            shown = repr(prefix) if len(prefix) <= 40 else f"{prefix[:40]!r}... ({len(prefix)} characters)"
            raise NetkeelError(f"invalid namespace prefix {shown}: use letters, digits, '_', '.', '-', "
                               "starting with a letter or digit, at most 32 characters")
        if isinstance(topology, Topology):
            unresolved = [r.source for n in topology.nodes for t in n.tables for c in t.chains
                          for r in c.rules if r.expr is None]
            if unresolved:
                raise ManifestError([Problem(src.rpartition(":")[0], int(src.rpartition(":")[2]), "",
                                             "native rule not checked by libnftables") for src in unresolved])
            topology = compile_topology(topology, prefix)
        elif topology.prefix != prefix:
            raise NetkeelError(f"{topology.source} was compiled for prefix {topology.prefix!r}, not {prefix!r}")
        self.topology = topology  # model.compiled.Compiled
        self.kernel = backend
        self.state = state
        self.prefix = prefix
        self._git = git
        self.wait = wait
        self._claims = claims
        self._held = ()
        self._lock = None
        self._last_plan = None  # (plan, live, raw read) of the last plan(): see keep_verdict
        self.instance = instance_id(topology.name, prefix)
        self.desired = topology.desired
        self.inventory = Inventory(state)

    @property
    def claims(self) -> tuple:
        """The overlays' claims, as they are now: `claims` may be a function, asked
        at each read, so that an overlay made meanwhile (a fault injected by another
        process) is seen as its own and not as an orphan to remove."""
        return tuple(self._claims() if callable(self._claims) else self._claims)

    @property
    def git(self) -> dict:
        """Where the manifest came from; asked only when a change records it."""
        if callable(self._git):
            self._git = self._git()
        return self._git or {}

    # -- scope and reading ----------------------------------------------------
    @property
    def desired_namespaces(self) -> set:
        return namespace_names(self.desired)

    def scope(self) -> set:
        return self.desired_namespaces | self.inventory.namespaces(self.instance)

    def check_ownership(self) -> None:
        """Raise OwnershipError if a namespace we would manage exists and is not ours:
        another instance's, one netkeel did not create, or one the inventory names
        whose identity is not the one netkeel created (made again by someone else)."""
        owned = self.inventory.namespaces(self.instance)
        problems = check_identities(self.kernel, self.state, owned)
        for name in sorted(self.desired_namespaces - owned):
            owner = self.inventory.owner_of(name)
            if owner is not None:
                problems.append((name, owner, f"namespace {name} belongs to topology instance '{owner}'"))
            elif self.kernel.exists(name):
                problems.append((name, "", f"namespace {name} exists and was not created by netkeel "
                                           f"(remove it, or use another --ns-prefix)"))
        if problems:
            raise OwnershipError(problems)

    def read(self, resources=None, names=None) -> list:
        """Live resources in scope, with their owners; sysctls and veth peers as
        `resources` name them."""
        wanted = self.desired if resources is None else resources
        self._held = self.claims  # the claims this read saw: checks and reports use the same
        return read_scope(self.kernel, self.scope() if names is None else names,
                          wanted | remembered(self.inventory, self.instance), self._held)

    # -- operations -----------------------------------------------------------
    @contextmanager
    def locked(self):
        """Hold the state lock (re-entrant): for plan-then-apply, or one change.
        The inventory is re-read under it: another netkeel may have just changed it."""
        if self._lock is None:
            self._lock = StateLock(self.state, wait=self.wait)
        with nullcontext() if self._lock.fd is not None else self._lock:
            self.inventory = Inventory(self.state)
            yield

    def plan(self, strict: bool = True, by_text: bool = True) -> tuple:
        """(plan, live). Raises OwnershipError; with strict False, a declared object
        that exists as someone else's is not an error (drift reports it, with the
        declared one missing). With `by_text`, firewall tables of ours may be read
        by their text listings (or their rules' dump) against the desired ones
        (kernel/nftables._listed_by_text): each rule printed as sent is the
        desired rule, any other gets its canonical form from a throwaway
        namespace, so the read is what the JSON listing gives, at a fraction of
        its cost (a table read otherwise is listed as JSON)."""
        if self._lock is None or self._lock.fd is None:
            self.inventory = Inventory(self.state)  # not under the lock: read it as it is now
        self.check_ownership()
        expect = by_text and hasattr(self.kernel, "nft_expected")
        if expect:
            self.kernel.nft_expected = {r.key: r for r in self.desired}  # the reader takes its kind's
        try:
            live = self.read()
        finally:
            if expect:
                self.kernel.nft_expected = None
        if strict:
            self.check_collisions(live)
        plan = diff(self.desired, live)
        check_harm_outside(plan, live)
        if strict:
            self.check_held_fields(plan)
        last_read = getattr(self.kernel, "last_read", None)
        self._last_plan = (plan, live, last_read[2] if last_read else None)
        return self.explained(plan), live

    def prove_firewall(self, plan: Plan) -> list:
        """Make the tables `plan` would make whole in a throwaway namespace, as
        the apply will, so that the apply need not list them back to verify
        them (kernel/nft_proof.py). [(namespace, why)] of those the kernel
        refused there: the apply would meet the same refusal."""
        from ..kinds.nft_table import proof_jobs

        prove = getattr(self.kernel, "nft_prove", None)
        jobs = proof_jobs(plan, self.desired) if prove is not None else []
        return prove(jobs) if jobs else []

    def check_held_fields(self, plan: Plan) -> None:
        """Raise OwnershipError if the plan would undo or orphan a fault (check_held)."""
        check_held(plan, self._held)

    def check_collisions(self, live) -> None:
        """Raise OwnershipError if something the manifest declares already exists
        as an object the topology does not own (a veth into a foreign namespace,
        an overlay's address)."""
        others = {r.ident: r for r in live if not is_managed(r.owner)}
        clashes = [(u.ns, u.owner, f"{u.label} in {u.ns} is {u.describe() or 'owned by ' + u.owner}; "
                                   "remove or rename it by hand")
                   for r in sorted(self.desired) if (u := others.get(r.ident))]
        if clashes:
            raise OwnershipError(clashes)

    def explained(self, plan: Plan) -> Plan:
        """The plan with what reports need to show changes readably (a kind may
        fetch more from the backend, only for what differs)."""
        actions = []
        for action in plan.actions:
            explain = getattr(kind(action.kind), "explain", None)
            if explain is not None:
                action = replace(action, live=explain(self.kernel, action))
            actions.append(action)
        return Plan(tuple(actions))

    def drift(self, by_text: bool = False) -> Drift:
        """What differs; `by_text` as for plan()."""
        plan, live = self.plan(strict=False, by_text=by_text)
        return Drift(plan, _unmanaged(live), tuple(dict.fromkeys(c.text for c in self._held if c.text)))

    def keep_verdict(self, trials_open=lambda: False) -> bool:
        """After the last read found the instance in sync with nothing else to
        report (a clean drift, an apply with nothing to do or one verified):
        keep what lets the next drift or no-op apply of the same files say so
        without loading or listing them (state/verdicts.py). Only when nothing
        but the live state and the files could change that answer: the manifest
        read from files (not --rev), that read what a drift would read, no fault
        active, no change open or cut off, no trial open (`trials_open()`, asked
        after the state's stamp is taken), and every namespace read known by its
        nftables marks. Returns whether it was kept; never raises (a verdict not
        kept only costs the next command a whole comparison)."""
        try:
            return self._keep_verdict(trials_open)
        except Exception:  # noqa: BLE001
            return False

    def forget_verdict(self) -> None:
        """After a whole comparison found differences: no verdict kept before
        may answer for these files again, whatever it rests on (a verdict
        resting on a damaged cache said "in sync" after `drift --full` had
        found the change, found by review)."""
        from ..state.verdicts import Verdicts

        Verdicts(self.state).forget(self.topology.source, self.prefix)

    def _keep_verdict(self, trials_open) -> bool:
        from ..kinds import read_hints
        from ..state.leases import Leases
        from ..state.verdicts import state_stamp, Verdicts

        # The stamp first, the checks after: whatever starts after this point
        # changes the stamp, and what started before is seen by the checks.
        stamp = state_stamp(self.state)
        last_read = getattr(self.kernel, "last_read", None)
        if last_read is None or not self.topology.reads or self._held:
            return False
        names, hints, raw = last_read
        # The state as the next command finds it (an apply changed it), read after
        # the stamp: ownership and identities checked again on it.
        self.inventory = inventory = Inventory(self.state)
        try:
            self.check_ownership()
        except OwnershipError:
            return False
        wanted = self.desired | remembered(inventory, self.instance)
        if hints != read_hints(wanted) or not set(names) >= self.desired_namespaces | inventory.namespaces(
                self.instance):
            return False  # not the read a drift makes
        if self._last_plan is not None and self._last_plan[2] is raw:
            plan, live = self._last_plan[:2]
        else:  # an apply's verification was the last read: compared here as a drift compares
            live = read_scope(_Replay(raw), names, wanted)
            plan = diff(self.desired, live)
        settled = getattr(self.kernel, "nft_settled", {})
        present = {r.key[0] for r in raw}
        if not plan.empty or _unmanaged(live) or not present <= set(settled):
            return False
        try:  # what plan (and apply) would refuse, a verdict must not answer either
            self.check_collisions(live)
        except OwnershipError:
            return False
        if Journal(self.state).summary().open or any(Leases(self.state).all()) or trials_open():
            return False
        return Verdicts(self.state).record(self.topology.source, self.prefix, self.topology.name,
                                           self.topology.reads, names, hints,
                                           {ns: settled[ns] for ns in present}, raw, stamp,
                                           namespaces_read_as_json(self.desired) & present)

    def apply(self, on_step=None, planned=None) -> ApplyResult:
        """Converge the kernel to the topology as a transaction (transaction.run).
        `planned` is a (plan, live) pair from plan() made under locked(), to avoid
        reading twice. Raises ApplyError, LockHeld, OwnershipError."""
        failpoints.active()  # a bad NETKEEL_FAILPOINT is refused before anything happens
        with self.locked():
            plan, live = planned or self.plan()
            if plan.empty and not unsettled(self.state, self.instance):
                return ApplyResult(plan, 0)
            return self._run("apply", plan, self.desired, live, self.scope(), self.desired_namespaces, on_step)

    def destroy(self, on_step=None) -> ApplyResult:
        """Remove every namespace this instance owns (and so everything in them)."""
        with self.locked():
            names = self.inventory.namespaces(self.instance)
            if problems := check_identities(self.kernel, self.state, names):
                raise OwnershipError(problems)
            live = self.read(names=names)
            plan = diff((), live)
            check_harm_outside(plan, live)
            if plan.empty and not unsettled(self.state, self.instance):
                self.inventory.record(self.instance, ())
                return ApplyResult(plan, 0)
            return self._run("destroy", plan, frozenset(), live, names, set(), on_step)

    def _run(self, op, plan, desired, live, names, owned_after, on_step) -> ApplyResult:
        change = Change(op=op, instance=self.instance, topology=self.topology.name, prefix=self.prefix,
                        plan=plan, desired=frozenset(desired), before=live, names=set(names),
                        owned_after=set(owned_after), git=self.git, claims=self._held,
                        manifests=tuple({"path": p, "sha256": h} for p, h in self.topology.files))
        steps, snapshot = transaction.run(self.kernel, self.state, change, on_step)
        return ApplyResult(plan, steps, snapshot)


def check_held(plan: Plan, held) -> None:
    """Raise OwnershipError if the plan would change a field an overlay holds
    (a fault that shrank an MTU): the change would undo the fault behind its
    back, and could never verify; or remove a device or namespace a fault acts
    on: the fault would go on being reported as active on nothing until its
    lease ends. Revert the fault first. `held`: the overlays' claims."""
    problems = []
    supplied = {(r.kind, r.key): claim for claim in held for r in claim.supplies}
    for action in plan.actions:
        claim = supplied.get((action.kind, action.resource.key))
        if claim is not None and action.op in ("delete", "modify"):
            # Gone from the kernel with a device the fault holds down: neither
            # removable nor changeable until it comes back.
            problems.append((action.ns, claim.owner, f"{action.resource.label} in {action.ns} went away with a "
                                                     f"device a fault holds down ({claim.text or claim.owner}); "
                                                     "revert that fault first"))
            continue
        place = kind(action.kind).place(action.resource) if action.op == "delete" else None
        if place is not None:
            ns, device = place
            for claim in held:
                if any(at == ns and device in (None, dev) for at, dev in claim.targets):
                    problems.append((action.ns, claim.owner,
                                     f"{action.resource.label} in {action.ns} would be removed under "
                                     f"{claim.text or claim.owner}; revert that fault first"))
                    break
            continue
        if action.op != "modify":
            continue
        for claim in held:
            fields = {f for f, _ in claim.mask} & {f for f, _, _ in action.changes}
            if claim.kind == action.kind and fields and claim.matches(action.live):
                problems.append((action.ns, claim.owner,
                                 f"{action.resource.label} in {action.ns}: {', '.join(sorted(fields))} is held by "
                                 f"{claim.text or claim.owner}; revert that fault first"))
    if problems:
        raise OwnershipError(problems)


def rollback(backend, state: StateDir, snapshot_id: str | None = None, wait: bool = False,
             on_step=None, claims=None) -> ApplyResult:
    """Reconcile the kernel back to a snapshot (default: the one taken before the
    last apply): namespaces created since are removed, removed ones recreated.
    `claims(instance)` gives the active overlays' claims on an instance (their
    objects are left alone). Raises SnapshotError, ApplyError, LockHeld, OwnershipError."""
    failpoints.active()
    with StateLock(state, wait=wait):
        snapshot = Snapshots(state).load(snapshot_id or last_apply_snapshot(state))
        held = tuple(claims(snapshot.instance)) if claims else ()
        inventory = Inventory(state)
        names = set(snapshot.namespaces) | inventory.namespaces(snapshot.instance)
        _check_rollback_ownership(backend, state, inventory, snapshot, names)
        wanted = frozenset(snapshot.resources)
        live = read_scope(backend, names, wanted | remembered(inventory, snapshot.instance), held)
        plan = diff(wanted, live)
        check_harm_outside(plan, live)
        check_held(plan, held)
        if plan.empty and not unsettled(state, snapshot.instance):
            inventory.record(snapshot.instance, snapshot.owned)
            return ApplyResult(plan, 0, None)
        change = Change(op="rollback", instance=snapshot.instance, topology=snapshot.topology,
                        prefix=snapshot.prefix, plan=plan, desired=wanted, before=live, names=names,
                        owned_after=set(snapshot.owned), manifests=snapshot.manifests,
                        git={**snapshot.git, "rollback_to": snapshot.id}, claims=held)
        steps, taken = transaction.run(backend, state, change, on_step)
        return ApplyResult(plan, steps, taken)


class _Replay:
    """A backend whose read gives what was read before (see keep_verdict)."""

    def __init__(self, raw):
        self.raw = raw

    def read(self, names, hints) -> list:
        return list(self.raw)


def _unmanaged(live) -> tuple:
    """What drift reports as not the topology's to change: foreign objects and overlays'."""
    return tuple(sorted(r for r in live if not is_managed(r.owner) and is_reported(r.owner)))


def unsettled(state: StateDir, instance: str) -> bool:
    """Whether a change of `instance` was cut off (killed) and nothing has ended since.
    Then even a change with nothing left to do runs as a transaction: only a change
    that ends settles the interrupted one (its warning, and the inventory it left,
    which owns every namespace it meant to make). Call under the state lock: every
    start record without an end is then an interrupted change, none is running."""
    return any(record["instance"] == instance for record in Journal(state).summary().open)


def check_harm_outside(plan: Plan, live) -> None:
    """Raise OwnershipError if removing a namespace in `plan` would destroy
    something outside it that is not netkeel's (the far end of a veth someone
    made into another namespace): nothing is removed then; the message names
    each such object and what to do."""
    removed = {a.ns for a in plan.actions if a.kind == NAMESPACE.name and a.op == "delete"}
    problems = [(r.ns, r.owner, f"removing namespace {r.ns} would destroy more than it: {r.label} in it "
                                f"is not netkeel's, and {why}; delete or move it by hand first "
                                f"(ip -n {r.ns} link del {r.key[1]}, or ... link set {r.key[1]} netns NS)")
                for r in sorted(live) if r.ns in removed and (why := kind(r.kind).harm_outside(r))]
    if problems:
        raise OwnershipError(problems)


def check_identities(backend, state: StateDir, names) -> list:
    """Problems (namespace, owner, what) for each of `names` (namespaces netkeel
    owns by name) that exists but is not the very namespace netkeel created: its
    cookie differs from the one recorded at creation, or none was recorded."""
    recorded = Identities(state).load()
    problems = []
    for name in sorted(names):
        live = backend.cookie(name)
        if live is not None and recorded.get(name) != live:
            # No record at all may also be a damaged or replaced identities file: said (found by review).
            why = ("it was deleted and made again, or netkeel never made it" if name in recorded else
                   f"{state.path('identities.json')} and identities.log hold no record of it: netkeel never "
                   "made it, or they were damaged or replaced")
            problems.append((name, "not netkeel's", f"namespace {name} exists but is not the namespace netkeel "
                             f"created under that name ({why}): netkeel will not adopt, change or delete it; "
                             f"remove it by hand (ip netns del {name}) or use another --ns-prefix"))
    return problems


def _check_rollback_ownership(backend, state, inventory, snapshot, names) -> None:
    """A rollback touches only namespaces its instance owns now or owned then:
    never another instance's, never one made by hand since."""
    mine = inventory.namespaces(snapshot.instance) | set(snapshot.owned)
    problems = check_identities(backend, state, names & mine)
    for name in sorted(names):
        owner = inventory.owner_of(name)
        if owner is not None and owner != snapshot.instance:
            problems.append((name, owner, f"namespace {name} belongs to topology instance '{owner}' now"))
        elif owner is None and name not in mine and backend.exists(name):
            problems.append((name, "", f"namespace {name} exists and was not created by netkeel"))
    if problems:
        raise OwnershipError(problems, prefix=f"cannot roll back to {snapshot.id}: ")


def last_apply_snapshot(state: StateDir) -> str:
    """The snapshot taken before the most recent apply. Raises SnapshotError."""
    snapshot = Journal(state).last_apply_snapshot()
    if snapshot is None:
        raise SnapshotError(f"the journal in {state.root} records no apply to roll back")
    return snapshot
