"""Model -> desired resources. Pure: the same topology always gives the same set."""

from __future__ import annotations

from ..model.topology import DEFAULT_METRIC, Topology
from .nft_canon import desired_table_spec
from .resources import Resource



def namespace_name(prefix: str, node: str) -> str:
    return f"{prefix}{node}"


def desired_resources(topology: Topology, prefix: str = "") -> frozenset:
    """Every resource `topology` declares, with namespaces named `prefix + node`.
    Native firewall rules must have been resolved (manifest.policy.resolve_native_rules)."""
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
            # Spell out the kernel's default metric so it compares equal to what is read.
            metric = route.metric if route.metric is not None else DEFAULT_METRIC[route.family]
            out.append(Resource.make("route", (ns, route.dst, metric), via=route.via or "",
                                     dev=route.dev))
        for name, value in node.sysctls:
            out.append(Resource.make("sysctl", (ns, name), value=value))
        for table in node.tables:
            out.append(Resource.make("nft_table", (ns, table.family, table.kernel_name),
                                     **desired_table_spec(table)))
    return frozenset(out)
