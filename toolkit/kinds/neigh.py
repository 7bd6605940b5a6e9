"""Kind "neigh": a static neighbour entry (ARP for IPv4, NDP for IPv6), NUD
permanent, key (ns, ifname, address), spec {mac}.

Only permanent entries are read: the kernel's own (reachable, stale, ...) come
and go with traffic and are nobody's drift. An entry goes with its device.
"""

from __future__ import annotations

import ipaddress

from ..core.resource import Resource
from . import link, netns
from .base import Kind, check_fields, is_text, shown


class Neighbour(Kind):
    name = "neigh"
    key_arity = 3

    def check_key(self, key) -> str:
        if problem := super().check_key(key):
            return problem
        try:
            ipaddress.ip_address(key[2])
        except ValueError:
            return f"key part 3 must be an IP address, not {shown(key[2])}"
        return ""

    def check_spec(self, spec) -> str:
        return super().check_spec(spec) or check_fields(spec, mac=(is_text, "a string"),
                                                        reason=(is_text, "a string"))

    def compile(self, topology, prefix):
        return [Resource.make(self.name, (netns.namespace_name(prefix, node.name), n.interface, n.address),
                              mac=n.mac)
                for node in topology.nodes for n in node.neighbours]

    def parents(self, resource) -> tuple:
        ns, ifname, _ = resource.key
        return ((link.device_ident(ns, ifname), "with its device"),)

    def label(self, resource) -> str:
        return f"neighbour {resource.key[2]} on {resource.key[1]}"

    def describe(self, resource) -> str:
        return f"lladdr {resource.get('mac')} permanent"

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            ns, ifname, address = action.key
            if phase == "delete":
                backend.neigh_delete(ns, ifname, address)
            else:
                backend.neigh_set(ns, ifname, address, action.desired.get("mac"))


KIND = Neighbour()
