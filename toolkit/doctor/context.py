"""What every check reads once, and the bounded probes they run.

A Context holds the manifest's model, the live state of the lab's namespaces
(read once, owners settled as drift would), and helpers: which namespace a
node is, the links and addresses of each, and `parallel(fn, items)` to run
probes at once (at most WORKERS at a time, each bounded by its own timeout).
Probes run inside the namespaces (the experiment agent, toolkit/experiment),
never from the root namespace.
"""

from __future__ import annotations

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..kinds.addr import KIND as ADDR
from ..kinds.link import KIND as LINK
from ..kinds.netns import namespace_name

WORKERS = 8


@dataclass
class Context:
    topology: object            # model.topology.Topology
    prefix: str
    kernel: object              # the backend (core/backend.py)
    live: list = field(default_factory=list)   # Resource, as read
    only: str | None = None     # --only CHECK
    faults: tuple = ()          # the chaos leases active on this lab (state.leases.Lease)
    missing: tuple = ()         # the nodes whose namespace is gone (checks/nodes.py)

    def ns(self, node: str) -> str:
        return namespace_name(self.prefix, node)

    def node_of(self, ns: str) -> str:
        return ns[len(self.prefix):] if ns.startswith(self.prefix) else ns

    # -- the live state ---------------------------------------------------------------
    def links(self) -> dict:
        """(node, ifname) -> the live link resource."""
        return {(self.node_of(r.ns), r.key[1]): r for r in self.live if r.kind == LINK.name}

    def addresses(self) -> dict:
        """(node, ifname) -> [ip_interface] live on it."""
        out: dict = {}
        for r in self.live:
            if r.kind == ADDR.name:
                out.setdefault((self.node_of(r.ns), r.key[1]), []).append(ipaddress.ip_interface(r.key[2]))
        return out

    def owner_of_address(self) -> dict:
        """ip -> (node, ifname) as the manifest declares it."""
        return {ipaddress.ip_interface(a).ip: (n.name, i.name) for n in self.topology.nodes for i in n.interfaces
                for a in i.addresses}

    def of_kind(self, kind: str) -> list:
        return [r for r in self.live if r.kind == kind]

    # -- probes -------------------------------------------------------------------------------
    def parallel(self, fn, items) -> list:
        """fn(item) for every item, at most WORKERS at a time; results in item order."""
        items = list(items)
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(items))) as pool:
            return list(pool.map(fn, items))
