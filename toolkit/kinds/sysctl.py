"""Kind "sysctl": a per-namespace net.* sysctl, key (ns, name), spec {value}.

A sysctl cannot be removed: one no longer declared is left at its value.
Per-interface sysctls (net.ipv4.conf.<if>.*) go with their device, which comes
back with the defaults.
"""

from __future__ import annotations

from ..core.resource import Resource
from . import link, netns
from .base import Kind, check_fields, is_text


class Sysctl(Kind):
    name = "sysctl"
    forward_phases = ("set",)
    delete_phase = None
    key_arity = 2

    def check_spec(self, spec) -> str:
        return super().check_spec(spec) or check_fields(spec, value=(is_text, "a string"))

    def compile(self, topology, prefix):
        return [Resource.make(self.name, (netns.namespace_name(prefix, node.name), name), value=value)
                for node in topology.nodes for name, value in node.sysctls]

    def read_hints(self, resources) -> dict:
        names: dict = {}
        for r in resources:
            if r.kind == self.name:
                names.setdefault(r.ns, set()).add(r.key[1])
        return {"sysctls": names}

    def parents(self, resource) -> tuple:
        device = interface_of(resource.key[1])
        return ((link.device_ident(resource.ns, device), "with its device"),) if device else ()

    def label(self, resource) -> str:
        return f"sysctl {resource.key[1]}"

    def describe(self, resource) -> str:
        return f"= {resource.get('value')}"

    def show_rows(self, resources, addresses_of) -> list:
        return [(r.label, str(r.get("value"))) for r in sorted(resources)]

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            backend.sysctl_write(action.ns, action.key[1], action.desired.get("value"))


def interface_of(name: str) -> str | None:
    """The interface of a per-interface sysctl (net.ipv4.conf.eth0.forwarding)."""
    parts = name.split(".")
    if len(parts) >= 5 and parts[1] in ("ipv4", "ipv6") and parts[2] in ("conf", "neigh") \
            and parts[3] not in ("all", "default"):
        return parts[3].replace("/", ".")
    return None


KIND = Sysctl()
