"""Kind "route": a main-table route, key (ns, prefix, metric).

Spec: via ("" for none), dev, type (blackhole, unreachable, prohibit, throw;
absent for unicast), and as read, proto: its protocol when it is not netkeel's
(144). Routes the kernel makes itself (connected prefixes, IPv6 link-local and
multicast, router advertisements) are not read.
"""

from __future__ import annotations

import ipaddress

from ..core.resource import Resource
from ..model.defaults import DEFAULT_METRIC
from . import link, netns
from .base import Kind, check_fields, is_integer, is_text, shown


# Route types besides unicast (absent), as the kernel reader names them.
TYPES = ("blackhole", "unreachable", "prohibit", "throw")


class Route(Kind):
    name = "route"
    key_arity = 3
    key_integers = (2,)  # the metric

    def check_key(self, key) -> str:
        if problem := super().check_key(key):
            return problem
        try:
            ipaddress.ip_network(key[1])
        except ValueError:
            return f"key part 2 must be a network prefix (10.0.0.0/24), not {shown(key[1])}"
        return "" if is_integer(key[2]) else f"key part 3 (the metric) must be a 32-bit number, not {shown(key[2])}"

    def check_spec(self, spec) -> str:
        return super().check_spec(spec) or check_fields(
            spec, via=(lambda v: v == "" or _is_address(v), 'an IP address or ""'), dev=(is_text, "a string"),
            type=(lambda v: v in TYPES, " or ".join(TYPES)), reason=(is_text, "a string"),
            proto=(lambda v: is_integer(v) and 0 <= v < 256, "a route protocol, 0 to 255"))

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

    def changes(self, desired, live) -> tuple:
        """netkeel declares no source address, metrics or protocol (its own): a live
        route that has them (set by hand, `ip route replace ... proto static`)
        differs; apply replaces it as declared."""
        extra = tuple((f, None, live.get(f)) for f in ("src", "metrics") if live.get(f) and desired.get(f) is None)
        if live.get("proto") is not None and desired.get("proto") is None:  # (0 too: unspecified)
            extra += (("proto", None, live.get("proto")),)
        return super().changes(desired, live) + extra

    def label(self, resource) -> str:
        _, prefix, metric = resource.key
        default_metric = 1024 if ":" in prefix else 0
        shown = f" metric {metric}" if metric != default_metric else ""
        return f"route {destination(prefix)}{shown}"

    def describe(self, resource) -> str:
        parts = []
        if resource.get("via"):
            parts.append(f"via {resource.get('via')}")
        if resource.get("dev"):
            parts.append(f"dev {resource.get('dev')}")
        return " ".join(parts)

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            ns, prefix, metric = action.key
            if phase == "delete":  # exactly the route read: another of this key may be there too
                live = action.live
                read = (lambda f: live.get(f) or None) if live is not None else (lambda f: None)
                backend.route_delete(ns, prefix, metric, via=read("via"), dev=read("dev"), type=read("type"),
                                     scope=live.get("_scope") if live is not None else None, proto=read("_proto"))
            else:
                d = action.desired
                # (a source address, metrics, a protocol and a scope of its own only
                # where a restore makes a hand-made route again, as it was read)
                backend.route_set(ns, prefix, metric, replace=action.op == "modify",
                                  via=d.get("via") or None, dev=d.get("dev"), type=d.get("type"),
                                  src=d.get("src"), metrics=d.get("metrics"),
                                  proto=d.get("proto") if d.get("proto") is not None else d.get("_proto"),
                                  scope=d.get("_scope"))


def _is_address(value) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def destination(prefix: str) -> str:
    return "default" if prefix in ("0.0.0.0/0", "::/0") else prefix


KIND = Route()
