"""Kind "route" in the kernel: main-table routes, key (ns, prefix, metric).

Routes the kernel makes itself (connected prefixes, IPv6 link-local and
multicast, router advertisements) are not read: they are not the manifest's.
"""

from __future__ import annotations

import ipaddress
import socket

from ..core.owners import FOREIGN, RT_PROTO
from ..core.resource import Resource
from . import rtnl_requests as rq

KIND = "route"
MAIN_TABLE = 254
LOCAL_TABLE = 255
RTPROT_KERNEL, RTPROT_RA = 2, 9
# Route types that live in the main table and a person may add by hand.
_TYPES = {1: None, 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw"}


def to_resources(ns: str, routes, by_index: dict) -> list:
    out = []
    for r in routes:
        # The kernel's own: connected prefixes (proto kernel, no gateway: one with a
        # gateway is a route replaced by hand `proto kernel`), router advertisements.
        if r.table == LOCAL_TABLE or (r.proto == RTPROT_KERNEL and not r.gateway) or r.proto == RTPROT_RA \
                or r.type not in _TYPES:
            continue
        dst = r.dst or ("0.0.0.0" if r.family == socket.AF_INET else "::")
        prefix = ipaddress.ip_network(f"{dst}/{r.dst_len}").with_prefixlen
        if r.table != MAIN_TABLE:
            # netkeel manages the main table only: a route in another table (policy
            # routing made by hand) is reported, and never changed.
            out.append(Resource.make(KIND, (ns, f"{prefix} table {r.table}", r.priority), owner=FOREIGN,
                                     reason=f"a route in table {r.table}: netkeel manages the main table only"))
            continue
        if r.multipath or r.tos:
            what = "a multipath route" if r.multipath else f"a route with a TOS selector ({r.tos:#x})"
            out.append(Resource.make(KIND, (ns, prefix, r.priority), owner=FOREIGN,
                                     reason=f"{what}: netkeel does not manage those"))
            continue
        out.append(Resource.make(
            KIND, (ns, prefix, r.priority),
            owner="topology",  # hand-made (whatever its protocol): the topology's drift
            via=r.gateway or "",
            dev=by_index.get(r.oif, f"#{r.oif}") if r.oif else None,
            type=_TYPES[r.type],
            src=r.src,
            metrics=r.metrics or None,
            # Another protocol than netkeel's (a route replaced by hand `proto static`):
            # a difference, and what a restore of this route gives it back.
            proto=r.proto if r.proto != RT_PROTO else None,
            _proto=r.proto,
            _scope=r.scope,  # what a delete sends, to take this route and no other of its key
        ))
    return out


def set_route(kernel, ns_name: str, prefix: str, metric: int, replace=False, via=None, dev=None,
              type=None, src=None, metrics=None, proto=None, scope=None) -> None:
    """Add (or with `replace` replace) the route, of netkeel's protocol and scope
    universe unless `proto` and `scope` say otherwise (a restore makes a
    hand-made route again as it was read)."""
    ns = kernel.ns(ns_name)
    where = f"route {prefix} metric {metric}"
    if type:  # blackhole, unreachable, prohibit, throw: no next hop
        where += f" type {type}"
    if via:
        where += f" via {via}"
    if dev:
        where += f" dev {dev}"
    if src:
        where += f" src {src}"
    if metrics:
        where += f" {metrics}"
    command = "replace" if replace else "add"
    kernel.request(ns_name, f"{where} {command}", ns.dump.send,
                   rq.route, command, prefix, metric, MAIN_TABLE, proto=RT_PROTO if proto is None else proto,
                   type=type, via=via, oif=ns.index(dev) if dev else None, src=src, metrics=metrics, scope=scope or 0)


RT_SCOPE_NOWHERE = 255  # in a delete: any scope, as `ip route del` asks


def delete(kernel, ns_name: str, prefix: str, metric: int, via=None, dev=None, type=None, scope=None,
           proto=None) -> None:
    """Delete the route of this prefix and metric that goes `via` / `dev` / is of
    `type` (as read): the kernel deletes the first route that matches what is
    sent, and another of the same prefix and metric (a multipath one netkeel
    leaves alone) must not be that one."""
    ns = kernel.ns(ns_name)
    index = ns.index(dev) if dev and not str(dev).startswith("#") else None
    # The route's own scope, else any: 0 (universe) would find no route of scope
    # link (`ip route add X dev Y` by hand); the scope also tells a device route
    # from a multipath one through that device.
    kernel.request(ns_name, f"route {prefix} metric {metric} del", ns.dump.send,
                   rq.route, "del", prefix, metric, MAIN_TABLE, proto=proto or 0, type=type, via=via, oif=index,
                   scope=RT_SCOPE_NOWHERE if scope is None else scope)
