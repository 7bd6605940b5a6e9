"""The reconciler: plan, apply (as a transaction), drift and destroy for one topology.

    desired = compile(topology)            live = read(kernel, scope)
    plan    = diff(desired, live)
    apply   = execute(plan) -> verify -> on any failure: restore the pre-apply live
              state (reconcile toward it) and verify that too

The scope of a topology instance is the namespaces it declares plus those the
inventory says it owns: nothing outside it is read, changed or removed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ApplyError, KernelError, ManifestError, OwnershipError, Problem, VerifyError
from ..kernel import nft_scratch, nftables
from ..kernel.reader import read_live
from ..model.topology import Topology
from ..state.inventory import Inventory, instance_id
from ..state.statedir import StateDir
from .apply import StepError, execute, verify
from .compile import desired_resources
from .plan import Plan, diff
from .resources import UNMANAGED_KINDS


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    steps: int


@dataclass(frozen=True)
class Drift:
    """What differs from the manifest (`plan`, what apply would do), and what is in
    a managed namespace but not netkeel's to change (`unmanaged`, left alone)."""

    plan: Plan
    unmanaged: tuple = ()

    @property
    def clean(self) -> bool:
        return self.plan.empty and not self.unmanaged


class Reconciler:
    def __init__(self, topology: Topology, kernel, state: StateDir, prefix: str = ""):
        """`topology` must have its native firewall rules resolved: load it with
        natives=native_resolver (ManifestError otherwise, if it has any)."""
        self.topology = topology
        self.kernel = kernel
        self.state = state
        self.prefix = prefix
        self.instance = instance_id(topology.name, prefix)
        unresolved = [r.source for n in topology.nodes for t in n.tables for c in t.chains
                      for r in c.rules if r.expr is None]
        if unresolved:
            raise ManifestError([Problem(src.rpartition(":")[0], int(src.rpartition(":")[2]), "",
                                         "native rule not checked by libnftables") for src in unresolved])
        self.desired = desired_resources(self.topology, prefix)
        self.inventory = Inventory(state)

    # -- scope and reading ----------------------------------------------------
    @property
    def desired_namespaces(self) -> set:
        return {r.ns for r in self.desired if r.kind == "netns"}

    def scope(self) -> set:
        return self.desired_namespaces | self.inventory.namespaces(self.instance)

    def check_ownership(self) -> None:
        """Raise OwnershipError if a namespace we would manage exists and is not ours."""
        owned = self.inventory.namespaces(self.instance)
        problems = []
        for name in sorted(self.desired_namespaces - owned):
            owner = self.inventory.owner_of(name)
            if owner is not None:
                problems.append(f"namespace {name} belongs to topology instance '{owner}'")
            elif self.kernel.exists(name):
                problems.append(f"namespace {name} exists and was not created by netkeel "
                                f"(remove it, or use another --ns-prefix)")
        if problems:
            raise OwnershipError("; ".join(problems))

    def read(self, resources=None, names=None) -> list:
        """Live resources in scope; sysctls and veth peers as `resources` name them."""
        resources = self.desired if resources is None else resources
        sysctls, hints = {}, {}
        for r in resources:
            if r.kind == "sysctl":
                sysctls.setdefault(r.ns, set()).add(r.key[1])
            elif r.kind == "link" and r.get("peer"):
                hints[r.key] = r.get("peer").partition("/")[0]
        return read_live(self.kernel, self.scope() if names is None else names, sysctls, hints)

    # -- operations -----------------------------------------------------------
    def plan(self) -> tuple:
        """(plan, live). Raises OwnershipError."""
        self.check_ownership()
        live = self.read()
        return self.explained(diff(self.desired, live)), live

    def explained(self, plan: Plan) -> Plan:
        """The plan with what reports need to show changed firewall rules as text
        (fetched only for tables that differ: listing text costs time)."""
        actions = []
        for action in plan.actions:
            if action.kind == "nft_table" and action.live is not None and not action.implicit:
                action = replace(action, live=nftables.with_display(self.kernel, action.live))
            actions.append(action)
        return Plan(tuple(actions))

    def drift(self) -> Drift:
        plan, live = self.plan()
        return Drift(plan, tuple(sorted(r for r in live if r.kind in UNMANAGED_KINDS)))

    def apply(self, on_step=None, planned=None) -> ApplyResult:
        """Converge the kernel to the topology, verify, or restore and raise ApplyError.
        `planned` is a (plan, live) pair from plan() just made, to avoid reading twice."""
        plan, live = planned or self.plan()
        if plan.empty:
            return ApplyResult(plan, 0)
        return ApplyResult(plan, self.transact(plan, self.desired, live, on_step))

    def destroy(self, on_step=None) -> ApplyResult:
        """Remove every namespace this instance owns (and so everything in them)."""
        names = self.inventory.namespaces(self.instance)
        live = self.read(names=names)
        plan = diff((), live)
        if plan.empty:
            self.inventory.record(self.instance, ())
            return ApplyResult(plan, 0)
        return ApplyResult(plan, self.transact(plan, frozenset(), live, on_step, names))

    # -- the transaction --------------------------------------------------------
    def transact(self, plan: Plan, desired, before: list, on_step, names=None) -> int:
        owned_before = self.inventory.namespaces(self.instance)
        target = {r.ns for r in desired if r.kind == "netns"}
        # Own what we are about to create before creating it, so a crash in the
        # middle leaves nothing we made unaccounted for.
        self.inventory.record(self.instance, owned_before | target,
                              topology=self.topology.name, prefix=self.prefix,
                              manifest=self.topology.source)
        names = self.scope() if names is None else set(names)
        try:
            done = execute(self.kernel, plan, on_step)
            remaining = verify(lambda: self.read(desired, names), desired)
            if not remaining.empty:
                raise VerifyError(remaining.actions)
        except Exception as exc:
            restored, restore_error = self.restore(before, names | target)
            self.inventory.record(self.instance, owned_before if restored else owned_before | target)
            failed = exc.what if isinstance(exc, StepError) else "verification after apply"
            cause = exc.cause if isinstance(exc, StepError) else exc
            raise ApplyError(failed, cause, restored, restore_error) from exc
        self.inventory.record(self.instance, target)
        return done

    def restore(self, snapshot: list, names: set) -> tuple:
        """Reconcile toward `snapshot` (live resources read earlier). Returns
        (restored and verified, error text or None); never raises."""
        names = set(names) | {r.ns for r in snapshot}
        read = lambda: self.read(snapshot, names)  # noqa: E731
        try:
            execute(self.kernel, diff(snapshot, read()))
            remaining = verify(read, snapshot)
        except Exception as exc:  # the report must still reach the user
            return False, str(exc)
        if not remaining.empty:
            return False, "; ".join(str(a) for a in remaining.actions[:5])
        return True, None


def native_resolver(jobs):
    """Resolve native nft rules in a scratch namespace (see kernel/nft_scratch)."""
    try:
        return nft_scratch.resolve(jobs)
    except nft_scratch.ScratchUnavailable as exc:
        raise KernelError("check native nft rules in a scratch namespace", str(exc)) from None
