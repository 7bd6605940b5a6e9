"""Kind "addr": an interface address, key (ns, ifname, "ip/prefix").

Live spec: `secondary` (True for an IPv4 secondary of its subnet), `_proto`
(the address protocol mark, information). The kernel's side effects the
planner must know: a subnet's primary IPv4 address takes its secondaries
along; a device that loses its last IPv4 address loses its IPv4 routes.
"""

from __future__ import annotations

import ipaddress

from ..core.resource import Resource
from . import link, netns
from .base import CREATE, DELETE, MODIFY, Action, Kind, check_fields, is_text, shown


class Address(Kind):
    name = "addr"
    key_arity = 3

    def check_key(self, key) -> str:
        if problem := super().check_key(key):
            return problem
        try:
            ipaddress.ip_interface(key[2])
        except ValueError:
            return f"key part 3 must be an address with its prefix length (10.0.0.1/24), not {shown(key[2])}"
        return ""

    def check_spec(self, spec) -> str:
        return super().check_spec(spec) or check_fields(
            spec, secondary=(lambda v: isinstance(v, bool), "true or false"), reason=(is_text, "a string"))

    def compile(self, topology, prefix):
        return [Resource.make(self.name, (netns.namespace_name(prefix, node.name), iface.name, address))
                for node in topology.nodes for iface in node.interfaces for address in iface.addresses]

    def parents(self, resource) -> tuple:
        ns, ifname, text = resource.key
        out = [(link.device_ident(ns, ifname), "with its device")]
        if ":" in text:
            out.append((link.down_ident((ns, ifname)), None))
        return tuple(out)

    def after_plan(self, planner, have, want) -> None:
        self._secondaries_lost(planner, have, want)
        self._note_ipv4_loss(planner, have)

    def _secondaries_lost(self, planner, have: dict, want: dict) -> None:
        """Deleting a subnet's primary IPv4 address deletes its secondaries too (the
        kernel does, unless promote_secondaries is set): those still wanted come back."""
        deleted = [a.live for a in planner.actions if a.op == DELETE and a.kind == self.name
                   and not a.implicit and ":" not in a.key[2] and not a.live.get("secondary")]
        for primary in deleted:
            subnet = ipaddress.ip_interface(primary.key[2]).network
            for ident, live in list(have.items()):
                if live is not None and live.get("secondary") and live.key[:2] == primary.key[:2] \
                        and ipaddress.ip_interface(live.key[2]).network == subnet:
                    have[ident] = None
                    if ident in want:
                        planner.actions.append(Action(CREATE, desired=want[ident]))
                    else:  # unwanted anyway: it goes with its primary
                        planner.actions = [a for a in planner.actions if a.resource.ident != ident]
                        planner.actions.append(Action(DELETE, live=live,
                                                      implicit="with its subnet's primary address"))

    def _note_ipv4_loss(self, planner, have: dict) -> None:
        """A device whose IPv4 addresses are all deleted loses its IPv4 routes too
        (the kernel flushes them when the last one goes), even if new addresses
        come back later in the same apply."""
        deleted = {a.key for a in planner.actions if a.op == DELETE and a.kind == self.name and not a.implicit}
        v4: dict = {}
        for live in have.values():
            # lo keeps 127.0.0.1, which the kernel makes and netkeel never reads:
            # it never loses its last IPv4 address.
            if live is not None and ":" not in live.key[2] and live.key[1] != "lo":
                v4.setdefault(live.key[:2], set()).add(live.key)
        for device, keys in v4.items():
            if keys <= deleted:
                planner.gone[link.ipv4_lost_ident(device)] = "with its device's last IPv4 address"

    def restore_order(self, resources) -> list:
        """Creation order that gives back each address its primary/secondary
        role: within a device, primaries before secondaries."""
        return sorted(resources, key=lambda r: (r.key[:2], bool(r.get("secondary")), r.key))

    def changes(self, desired, live) -> tuple:
        """Declared addresses are permanent: one given a lifetime by hand (it would
        vanish when it runs out) differs; apply makes it permanent again."""
        extra = (("expires", "never", live.get("expires")),) if live.get("expires") else ()
        return super().changes(desired, live) + extra

    def label(self, resource) -> str:
        return f"addr {resource.key[2]} on {resource.key[1]}"

    def show_rows(self, resources, addresses_of) -> list:
        return []  # shown with their interface

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            ns, ifname, text = action.key
            if phase == "delete":
                backend.addr_delete(ns, ifname, text, peer=action.live.get("_peer") if action.live else None)
            else:
                backend.addr_add(ns, ifname, text, replace=action.op == MODIFY)


KIND = Address()


def addresses_by_device(resources) -> dict:
    """ifname -> [address text] of the addr resources among `resources`."""
    out: dict = {}
    for r in resources:
        if r.kind == KIND.name:
            out.setdefault(r.key[1], []).append(r.key[2])
    return out
