"""Kind "sysctl": a per-namespace net.* sysctl, key (ns, name), spec {value}.

A sysctl cannot be removed: one no longer declared is left at its value.
Per-interface sysctls (net.ipv4.conf.<if>.*) go with their device, which comes
back with the defaults.

Some writes spread: net.ipv4.ip_forward and net.ipv{4,6}.conf.all.forwarding
set `forwarding` on every interface (and `default`); IPv6's conf.all.X does so
for more and more fields as kernels go (disable_ipv6, addr_gen_mode,
ignore_routes_with_linkdown, force_forwarding on 6.18), and an IPv4
conf.default.X sets every interface's X not set explicitly. So `default` is
written first, as soon as the namespaces exist and before any device is made
(a device takes it as it is made: otherwise the first build and a rebuild of a
node's devices gave them different values), then all-wide, the rest, per
interface last; and after any conf.all.X (or IPv4 conf.default.X) write, the
declared values of X under it that are not written after it (in sync until
then, or a `default` written earlier) are written again: needless where the
kernel did not spread it, harmless, and right on kernels to come.
"""

from __future__ import annotations

from dataclasses import replace

from ..core.action import CREATE, DELETE, MODIFY
from ..core.resource import Resource
from . import link, netns
from .base import Kind, check_fields, is_text, short


class Sysctl(Kind):
    name = "sysctl"
    forward_phases = ("set",)
    # conf.default.* is what a device gets as it is made: written before the
    # node's devices are, a lab built at once and one whose node was made again
    # (a peer's namespace deleted) give their devices the same values.
    before_devices = ("defaults",)
    delete_phase = None
    key_arity = 2

    def check_spec(self, spec) -> str:
        return super().check_spec(spec) or check_fields(spec, value=(is_text, "a string"))

    def compile(self, topology, prefix):
        return [Resource.make(self.name, (netns.namespace_name(prefix, node.name), name), value=value)
                for node in topology.nodes for name, value in (*node.sysctls, *forwarding_of_devices(node))]

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
        return f"= {short(str(resource.get('value')))}"

    def show_rows(self, resources, addresses_of) -> list:
        return [(r.label, short(str(r.get("value")))) for r in sorted(resources)]

    def phases_of(self, action) -> tuple:
        if action.op == DELETE or action.implicit:
            return ()
        return self.before_devices if _conf(action.key[1]) and _conf(action.key[1])[1] == "default" \
            else self.forward_phases

    def after_plan(self, planner, have: dict, want: dict) -> None:
        """A write that spreads carries (`_then`) the declared values it would
        overwrite and nothing written after it in the plan writes: run() writes
        them again (a conf.default.X is written before conf.all.X, in its own phase)."""
        later = {a.key for a in planner.actions if a.kind == self.name and a.op != DELETE and not a.implicit
                 and self.phases_of(a) == self.forward_phases}
        planned = {a.key for a in planner.actions if a.kind == self.name}
        for i, action in enumerate(planner.actions):
            if action.kind != self.name or action.op not in (CREATE, MODIFY) or action.implicit:
                continue
            ns, name = action.key
            written_after = later if self.phases_of(action) == self.forward_phases else planned
            under = [(r.key[1], r.get("value")) for r in want.values()
                     if r.ns == ns and r.key not in written_after and overwrites(name, r.key[1])]
            if under:
                desired = action.desired.with_fields(_then=tuple(sorted(under)))
                planner.actions[i] = replace(action, desired=desired)

    def restore_order(self, resources) -> list:
        return sorted(resources, key=lambda r: (r.ns, write_rank(r.key[1]), r.key[1]))

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            backend.sysctl_write(action.ns, action.key[1], action.desired.get("value"))
            for name, value in action.desired.get("_then") or ():
                backend.sysctl_write(action.ns, name, value)


# The all-wide forwarding settings, and the family each sets on every device.
FORWARDING = {"net.ipv4.ip_forward": "ipv4", "net.ipv4.conf.all.forwarding": "ipv4",
              "net.ipv6.conf.all.forwarding": "ipv6"}


def forwarding_of_devices(node) -> list:
    """(name, value) of each of the node's devices' `forwarding` that a declared
    all-wide forwarding sets and the node does not declare itself: IPv4 forwards
    by the input device's own value, so one turned off by hand cuts the node's
    routing while its ip_forward reads 1. Compared as declared: drift sees it,
    and apply writes it again."""
    declared = dict(node.sysctls)
    out = {}
    for name, family in FORWARDING.items():
        if name not in declared:
            continue
        for interface in node.interfaces:
            if interface.name == "lo":  # what it carries is the node's own
                continue
            own = f"net.{family}.conf.{interface.name.replace('.', '/')}.forwarding"
            if own not in declared:
                out[own] = declared[name]
    return sorted(out.items())


def _conf(name: str):
    """(family, scope, field) of net.ipv{4,6}.conf.SCOPE.FIELD (ip_forward as
    ipv4's all.forwarding, which it is), else None."""
    if name == "net.ipv4.ip_forward":
        return "ipv4", "all", "forwarding"
    parts = name.split(".")
    if len(parts) == 5 and parts[0] == "net" and parts[1] in ("ipv4", "ipv6") and parts[2] == "conf":
        return parts[1], parts[3], parts[4]
    return None


def overwrites(written: str, other: str) -> bool:
    """Whether writing sysctl `written` may change sysctl `other` (see the module's docstring)."""
    a, b = _conf(written), _conf(other)
    if a is None or b is None or written == other or a[0] != b[0] or a[2] != b[2] or b[1] == "all":
        return False
    family, scope, _ = a
    return scope == "all" or (scope == "default" and family == "ipv4" and b[1] != "default")


def write_rank(name: str) -> int:
    """0 all-wide, 1 default, 2 the rest, 3 per interface: the order of writing."""
    conf = _conf(name)
    if conf is not None and conf[1] in ("all", "default"):
        return 0 if conf[1] == "all" else 1
    return 3 if interface_of(name) else 2


def interface_of(name: str) -> str | None:
    """The interface of a per-interface sysctl (net.ipv4.conf.eth0.forwarding)."""
    parts = name.split(".")
    if len(parts) >= 5 and parts[1] in ("ipv4", "ipv6") and parts[2] in ("conf", "neigh") \
            and parts[3] not in ("all", "default"):
        return parts[3].replace("/", ".")
    return None


KIND = Sysctl()
