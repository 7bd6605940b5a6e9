"""Model -> desired resources. Pure: the same topology always gives the same set."""

from __future__ import annotations

from ..model.topology import Topology
from .resources import Resource

# What the kernel uses when a route names no metric; the desired side spells it
# out so it compares equal to what the reader sees.
DEFAULT_METRIC = {4: 0, 6: 1024}


def namespace_name(prefix: str, node: str) -> str:
    return f"{prefix}{node}"


def desired_resources(topology: Topology, prefix: str = "") -> frozenset:
    """Every resource `topology` declares, with namespaces named `prefix + node`."""
    out = []
    for node in topology.nodes:
        ns = namespace_name(prefix, node.name)
        out.append(Resource.make("netns", (ns,)))
        for iface in node.interfaces:
            peer = f"{namespace_name(prefix, iface.peer[0])}/{iface.peer[1]}" if iface.peer else None
            # "" means "managed, and none": a port enslaved by hand is drift.
            master = None if iface.kind == "loopback" else (iface.master or "")
            out.append(Resource.make("link", (ns, iface.name), kind=iface.kind, peer=peer,
                                     mtu=iface.mtu, state=iface.state, mac=iface.mac,
                                     master=master))
            for address in iface.addresses:
                out.append(Resource.make("addr", (ns, iface.name, address)))
        for route in node.routes:
            metric = route.metric if route.metric is not None else DEFAULT_METRIC[route.family]
            out.append(Resource.make("route", (ns, route.dst, metric), via=route.via or "",
                                     dev=route.dev))
        for name, value in node.sysctls:
            out.append(Resource.make("sysctl", (ns, name), value=value))
    return frozenset(out)
