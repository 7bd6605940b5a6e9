"""The kind registry: every resource kind netkeel manages, in creation order.

Deletion runs in reverse. Links come before sysctls because per-interface
sysctls (net.ipv4.conf.<if>.*) need their interface; neighbour entries after
addresses (an IPv6 entry wants its device configured), then the bridges'
forwarding entries (foreign only: read, never made), impairments;
firewall tables: they match interfaces by name, so nothing depends on them; VRRP
speakers last (they need their device and its address; stopped first of all).

Adding a kind: write its module here (a `Kind` subclass and `KIND`, see
base.py), list it below, implement its backend calls in core/backend.py's
protocol, in kernel/ and in the fake kernel of the unit tests. README's
"Adding a resource kind" has the recipe.
"""

from __future__ import annotations

from . import addr, fdb, impair, link, neigh, netns, nft_table, route, rule, sysctl, vrrp
from .base import Kind

KINDS: tuple = (netns.KIND, link.KIND, sysctl.KIND, addr.KIND, route.KIND, rule.KIND, neigh.KIND, fdb.KIND,
                impair.KIND, nft_table.KIND, vrrp.KIND)
BY_NAME = {k.name: k for k in KINDS}
NAMES = tuple(BY_NAME)
RANK = {name: i for i, name in enumerate(NAMES)}
NAMESPACE = netns.KIND
# What JSON format 1 (and snapshots before owners) call foreign objects, by kind.
FOREIGN_NAMES = {k.foreign_name: k.name for k in KINDS}

# (phase, kind name) in execution order: deletions first, deepest kind first;
# then the namespaces, every kind's phases that come before any device is made,
# and every other kind's forward phases in creation order.
PHASES = tuple([(k.delete_phase, k.name) for k in reversed(KINDS) if k.delete_phase == "delete"]
               + [(phase, NAMESPACE.name) for phase in NAMESPACE.forward_phases]
               + [(phase, k.name) for k in KINDS for phase in k.before_devices]
               + [(phase, k.name) for k in KINDS if k is not NAMESPACE for phase in k.forward_phases])


def kind(name: str) -> Kind:
    """The kind called `name`. Raises KeyError for an unknown kind."""
    return BY_NAME[name]


def compile_all(topology, prefix: str = "") -> frozenset:
    """Every resource `topology` declares, with namespaces named `prefix + node`.
    Pure: the same topology always gives the same set. Native firewall rules
    must have been resolved (manifest.policy.resolve_native_rules)."""
    return frozenset(r for k in KINDS for r in k.compile(topology, prefix))


def compile_topology(topology, prefix: str = ""):
    """The topology compiled for `prefix` (model.compiled.Compiled): its resources
    and what the reconciler reports it by."""
    from ..model.compiled import Compiled

    return Compiled(name=topology.name, source=topology.source, prefix=prefix,
                    node_names=tuple(n.name for n in topology.nodes), desired=compile_all(topology, prefix),
                    files=topology.files)


def read_hints(resources) -> dict:
    """What the backend must know to read live state for `resources` (desired
    state or a snapshot): each kind's hints, merged."""
    resources = list(resources)
    hints: dict = {}
    for k in KINDS:
        hints.update(k.read_hints(resources))
    return hints


def settle_owners(resources, live) -> list:
    """`live` with the owners each kind finds only by looking at the whole of it
    (the address a VRRP speaker holds: rightly, or orphaned, or twice), given
    `resources` (the desired state or a snapshot)."""
    resources = list(resources)
    for k in KINDS:
        live = k.settle_owners(resources, live)
    return live


__all__ = ["KINDS", "BY_NAME", "NAMES", "RANK", "PHASES", "NAMESPACE", "Kind", "kind", "compile_all", "read_hints", "settle_owners"]
