"""Adapter for kind "route": main-table routes, key (ns, prefix, metric).

Routes the kernel makes itself (connected prefixes, IPv6 link-local and
multicast, router advertisements) are not read: they are not the manifest's.
"""

from __future__ import annotations

import ipaddress
import socket

from ..reconcile.resources import Resource
from .session import RT_PROTO

MAIN_TABLE = 254
RTPROT_KERNEL, RTPROT_RA = 2, 9
RTN_UNICAST = 1
# Route types that live in the main table and a person may add by hand.
_TYPES = {1: None, 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw"}


def to_resources(ns: str, routes, by_index: dict) -> list:
    out = []
    for r in routes:
        if r.table != MAIN_TABLE or r.proto in (RTPROT_KERNEL, RTPROT_RA) or r.type not in _TYPES:
            continue
        dst = r.dst or ("0.0.0.0" if r.family == socket.AF_INET else "::")
        prefix = ipaddress.ip_network(f"{dst}/{r.dst_len}").with_prefixlen
        if r.multipath:
            out.append(Resource.make("route_foreign", (ns, prefix, r.priority),
                                     reason="a multipath route: netkeel does not manage those"))
            continue
        out.append(Resource.make(
            "route", (ns, prefix, r.priority),
            via=r.gateway or "",
            dev=by_index.get(r.oif, f"#{r.oif}") if r.oif else None,
            type=_TYPES[r.type],
        ))
    return out


def run(kernel, phase: str, action) -> None:
    ns_name, prefix, metric = action.key
    ns = kernel.ns(ns_name)
    net = ipaddress.ip_network(prefix)
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    args = dict(dst=str(net.network_address), dst_len=net.prefixlen, family=family,
                priority=metric, table=MAIN_TABLE)
    where = f"route {prefix} metric {metric}"
    if phase == "delete":
        kernel.request(ns_name, f"{where} del", ns.ipr.route, "del", **args)
        return
    desired = action.desired
    if desired.get("type"):  # blackhole, unreachable, prohibit, throw: no next hop
        args["type"] = desired.get("type")
        where += f" type {args['type']}"
    if desired.get("via"):
        args["gateway"] = desired.get("via")
        where += f" via {args['gateway']}"
    if desired.get("dev"):
        args["oif"] = ns.index(desired.get("dev"))
        where += f" dev {desired.get('dev')}"
    command = "replace" if action.op == "modify" else "add"
    kernel.request(ns_name, f"{where} {command}", ns.ipr.route, command, proto=RT_PROTO, **args)
