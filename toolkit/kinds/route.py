"""Kind "route": a main-table route, key (ns, prefix, metric).

Spec: via ("" for none), dev, type (blackhole, unreachable, prohibit, throw;
absent for unicast). Routes the kernel makes itself (connected prefixes, IPv6
link-local and multicast, router advertisements) are not read.
"""

from __future__ import annotations

from ..core.resource import Resource
from ..model.topology import DEFAULT_METRIC
from . import link, netns
from .base import Kind


class Route(Kind):
    name = "route"

    def compile(self, topology, prefix):
        out = []
        for node in topology.nodes:
            ns = netns.namespace_name(prefix, node.name)
            for route in node.routes:
                # Spell out the kernel's default metric so it compares equal to what is read.
                metric = route.metric if route.metric is not None else DEFAULT_METRIC[route.family]
                out.append(Resource.make(self.name, (ns, route.dst, metric), via=route.via or "", dev=route.dev))
        return out

    def parents(self, resource) -> tuple:
        dev = resource.get("dev")
        if not dev:
            return ()
        ns = resource.ns
        out = [(link.device_ident(ns, dev), "with its device"), (link.down_ident((ns, dev)), None)]
        if ":" not in resource.key[1]:
            out.append((link.ipv4_lost_ident((ns, dev)), None))
        return tuple(out)

    def label(self, resource) -> str:
        _, prefix, metric = resource.key
        default_metric = 1024 if ":" in prefix else 0
        shown = f" metric {metric}" if metric != default_metric else ""
        return f"route {destination(prefix)}{shown}"

    def describe(self, resource) -> str:
        if resource.owner != "topology":
            return resource.get("reason", "")
        parts = []
        if resource.get("via"):
            parts.append(f"via {resource.get('via')}")
        if resource.get("dev"):
            parts.append(f"dev {resource.get('dev')}")
        return " ".join(parts)

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            ns, prefix, metric = action.key
            if phase == "delete":
                backend.route_delete(ns, prefix, metric)
            else:
                d = action.desired
                backend.route_set(ns, prefix, metric, replace=action.op == "modify",
                                  via=d.get("via") or None, dev=d.get("dev"), type=d.get("type"))


def destination(prefix: str) -> str:
    return "default" if prefix in ("0.0.0.0/0", "::/0") else prefix


KIND = Route()
