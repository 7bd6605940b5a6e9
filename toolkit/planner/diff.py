"""diff(desired, live) -> Plan. Pure, ordered, immutable, printable.

Kernel semantics the kinds teach the planner, so that a plan is exact:
- deleting a namespace removes everything in it, and the far end of every veth
  that crossed into it;
- deleting a veth end removes its peer;
- deleting (or re-creating) a device removes its addresses, routes and
  neighbour entries, and releases its bridge ports;
- a new namespace comes with a loopback device, down;
- a device that loses its last IPv4 address loses its IPv4 routes;
- a subnet's primary IPv4 address takes its secondaries along;
- a device set down loses its IPv6 addresses and its routes;
- a re-created device comes back with default per-interface sysctls.
Such removals appear in the plan as implicit actions (no kernel request), and
anything that must come back afterwards is planned as a create.

Only what the topology owns is planned: live objects of an overlay (a fault, a
VIP group) or foreign ones are never changed (see core/owners.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.action import Action, Plan
from ..core.owners import is_managed
from ..kinds import KINDS, kind
from ..kinds import link as link_kind
from ..kinds import netns


@dataclass
class Planner:
    """The working state of one diff, handed to each kind's plan() in turn."""

    want: dict
    have: dict
    actions: list = field(default_factory=list)
    gone: dict = field(default_factory=dict)  # ident -> why it disappears with something else

    def run(self) -> Plan:
        for k in KINDS:
            k.plan(self)
        return Plan(tuple(sorted(self.actions, key=Action.sort_key)))

    @staticmethod
    def of_kind(table: dict, name: str) -> dict:
        return {i: r for i, r in table.items() if r.kind == name}

    def born(self, ns: str) -> None:
        """Namespace `ns` is about to be created: what the kernel puts in it is there."""
        lo = link_kind.KIND.born_in(ns)
        self.have[lo.ident] = lo

    def vanishing(self, resource) -> str:
        """Why `resource` disappears with something else in this plan ("" if it does not)."""
        parents = ((netns.ident(resource.ns), "with its namespace"),) + kind(resource.kind).parents(resource)
        for parent, why in parents:
            if parent in self.gone:
                return why or self.gone[parent]
        return ""


def diff(desired, live) -> Plan:
    """The plan that turns `live` into `desired` (both iterables of Resource).
    Each side is put in its kind's canonical form first; objects the topology
    does not own are left out of both (a snapshot holds foreign objects too, as
    they were: a restore must neither remove nor make them)."""
    want = {r.ident: kind(r.kind).canonical(r) for r in desired if is_managed(r.owner)}
    have = {r.ident: kind(r.kind).canonical(r) for r in live if is_managed(r.owner)}
    return Planner(want, have).run()
