"""Kind "vrrp": the VRRPv3 speaker of one member of a VIP group, key (ns, group),
spec: the speaker's configuration (interface, vrid, priority, addresses,
interval_cs, preempt, preempt_delay_ms, unicast_peers, virtual_mac, checksum).

A speaker is a process (toolkit/vrrp/speaker.py, with a guardian that takes
the VIP away if the speaker dies), not a kernel object: it is live while it
runs in its namespace with this configuration. Creating one starts it, a
modify restarts it with the new configuration, deleting one stops it
gracefully (priority 0: the backup takes over within Skew_Time). It goes with
its device (a new device needs a new socket) and, unlike kernel objects, is not
taken away by deleting its namespace: a process keeps its namespace alive, so
a speaker is always stopped by a request of its own, even when its namespace
goes too.

The VIP addresses a speaker adds are not this kind's resources: they carry
their own marker (IFA_PROTO 145) and are claimed by the group while its
speakers say who holds them (toolkit/vip.py); drift reports a VIP held where
it should not be.
"""

from __future__ import annotations

import ipaddress

from ..core.action import DELETE
from ..core.owners import SPEAKER, TOPOLOGY, overlay
from ..core.resource import Resource
from . import link, netns
from .addr import KIND as ADDR
from .base import Kind, check_fields, is_integer, is_text, shown

CHECKSUMS = ("rfc9568", "pseudo-header")


class Speaker(Kind):
    name = "vrrp"
    key_arity = 2
    # After everything it needs (its device up, its address), deleted before them.
    forward_phases = ("create",)
    delete_phase = "delete"

    def check_spec(self, spec) -> str:
        problem = super().check_spec(spec) or check_fields(
            spec, interface=(is_text, "an interface name"), vrid=(lambda v: is_integer(v, 1, 255), "1-255"),
            priority=(lambda v: is_integer(v, 1, 254), "1-254"),
            interval_cs=(lambda v: is_integer(v, 1, 4095), "1-4095 centiseconds"),
            preempt=(lambda v: isinstance(v, bool), "true or false"),
            preempt_delay_ms=(lambda v: is_integer(v, 0, 3_600_000), "0 to an hour in ms"),
            virtual_mac=(lambda v: isinstance(v, bool), "true or false"),
            running=(lambda v: isinstance(v, bool), "true or false"),
            checksum=(lambda v: v in CHECKSUMS, " or ".join(CHECKSUMS)))
        if problem:
            return problem
        for field in ("addresses", "unicast_peers"):
            for value in spec.get(field) or ():
                try:
                    ipaddress.ip_interface(value) if field == "addresses" else ipaddress.ip_address(value)
                except ValueError:
                    return f"{field} must be addresses, not {shown(value)}"
        return ""

    def compile(self, topology, prefix):
        out = []
        for group in getattr(topology, "vips", ()):
            for member in group.members:
                peers = [_first_ipv4(topology, m) for m in group.members if m.node != member.node] \
                    if group.unicast else []
                out.append(Resource.make(
                    self.name, (netns.namespace_name(prefix, member.node), group.name),
                    interface=member.interface, vrid=group.vrid, priority=member.priority,
                    addresses=tuple(group.addresses), interval_cs=group.interval_cs, preempt=group.preempt,
                    preempt_delay_ms=group.preempt_delay_ms, unicast_peers=tuple(peers),
                    virtual_mac=group.virtual_mac, checksum=group.checksum, running=True))
        return out

    def settle_owners(self, resources, live) -> list:
        """Whose each VIP address is (the addresses speakers add carry their own
        marker and read as an unclaimed overlay's): the group's, rightly held,
        when exactly one node holds it, a member on its speaker's interface,
        whose running speaker says it is active and holds it; otherwise an
        overlay of the group that drift reports, saying why (split brain,
        orphaned by a dead speaker, a node that is not a member)."""
        groups = {}  # VIP address (no prefix) -> group name
        members = {}  # group -> {ns: interface}
        for r in resources:
            if r.kind == self.name and r.get("addresses"):
                members.setdefault(r.key[1], {})[r.ns] = r.get("interface")
                for address in r.get("addresses"):
                    groups[address.split("/")[0]] = r.key[1]
        unclaimed = overlay("unclaimed")
        held = [r for r in live if r.kind == ADDR.name and r.owner == unclaimed]
        if not held:
            return live
        speakers = {(r.ns, r.key[1]): r for r in live if r.kind == self.name}
        # Addresses of every speaker configured (running or not), declared or not.
        listed = {(r.ns, a.split("/")[0]) for r in speakers.values() for a in r.get("addresses") or ()}
        settled = {}
        for r in held:
            ip = r.key[2].split("/")[0]
            group = groups.get(ip)
            if (r.ns, ip) not in listed and (group is None or r.ns not in members.get(group, {})):
                # No speaker here was configured with it, and none will be (no declared
                # group has this node as a member with it): a VIP nothing will ever
                # take away (made by hand, or left by a speaker that died with its
                # files): the topology's drift, which apply removes (and not a
                # second holder of a rightly held VIP).
                settled[r.ident] = (TOPOLOGY, "")
        holders = {}  # address -> namespaces holding it (strays aside)
        for r in held:
            if r.ident not in settled:
                holders.setdefault(r.key[2].split("/")[0], set()).add(r.ns)
        for r in held:
            if r.ident not in settled:
                ip = r.key[2].split("/")[0]
                group = groups.get(ip)
                settled[r.ident] = _owner_of_vip(r, ip, group, members.get(group, {}), speakers, holders[ip])
        out = []
        for r in live:
            found = settled.get(r.ident) if r.owner == unclaimed and r.kind == ADDR.name else None
            if found is None:
                out.append(r)
            else:
                owner, why = found
                out.append(r.owned_by(owner) if not why else Resource.make(r.kind, r.key, owner=owner, reason=why))
        return out

    def parents(self, resource) -> tuple:
        ns, _ = resource.key
        return ((link.device_ident(ns, resource.get("interface")), "with its device"),)

    def phases_of(self, action) -> tuple:
        # A process does not vanish with its namespace or device: stop it always.
        if action.op == DELETE:
            return (self.delete_phase,)
        return self.forward_phases

    def label(self, resource) -> str:
        return f"VRRP speaker of group {resource.key[1]}"

    def describe(self, resource) -> str:
        return (f"vrid {resource.get('vrid')} on {resource.get('interface')} priority {resource.get('priority')} "
                f"for {', '.join(resource.get('addresses') or ())}, adverts every "
                f"{(resource.get('interval_cs') or 0) * 10} ms")

    def run(self, backend, phase, actions) -> None:
        for action in actions:
            ns, group = action.key
            if action.op == DELETE:
                backend.speaker_stop(ns, group)
            else:
                if action.live is not None:
                    backend.speaker_stop(ns, group)  # a new configuration, or a dead one: a new speaker
                if action.desired.get("running") is not False:
                    backend.speaker_start(ns, group, {k: v for k, v in action.desired.fields().items()
                                                      if k != "running"})


def _owner_of_vip(address, ip: str, group, members: dict, speakers: dict, holders: set) -> tuple:
    """(owner, why) of one VIP address read live: why is "" when it is rightly held."""
    if group is None:
        return overlay("vip"), f"a VIP address ({ip}) of no group this topology declares: orphaned"
    owner = overlay(f"vip:{group}")
    if address.ns not in members:
        return owner, f"VIP {ip} of group {group} is held by {address.ns}, which is not a member"
    speaker = speakers.get((address.ns, group))
    if speaker is None or not speaker.get("running"):
        return owner, (f"VIP {ip} of group {group} is orphaned on {address.ns}: its speaker is not running")
    if address.key[1] != members[address.ns] or not speaker.get("_holding"):
        return owner, f"VIP {ip} of group {group} is held by {address.ns}, whose speaker is {speaker.get('_state')}"
    if len(holders) > 1:
        return owner, f"VIP {ip} of group {group} is held by {' and '.join(sorted(holders))} at once (split brain)"
    return SPEAKER, ""


def _first_ipv4(topology, member) -> str:
    iface = topology.node(member.node).interface(member.interface)
    return next(str(ipaddress.ip_interface(a).ip) for a in iface.addresses if ":" not in a)


KIND = Speaker()
