"""The `vips:` section of a topology: VRRPv3 groups, checked against the nodes.

    vips:
      gw:
        vrid: 51
        addresses: [10.0.3.254/24]
        interval: 100ms          # 10ms to 40.95s in steps of 10ms; default 1s
        preempt: true            # default
        preempt_delay: 0s
        unicast: false           # adverts to the other members instead of 224.0.0.18
        virtual_mac: false
        checksum: rfc9568        # or pseudo-header (keepalived's default)
        members:
          - {node: r1, interface: eth0, priority: 200}
          - {node: r2, interface: eth0, priority: 100}

Every problem is reported with its line; what only the schema can say (types,
ranges of plain numbers) the schema says.
"""

from __future__ import annotations

import ipaddress
import math
import re

from ..model.topology import Node, VipGroup, VipMember
from .text import quote

MIN_INTERVAL_CS, MAX_INTERVAL_CS = 1, 4095   # 12 bits of centiseconds
MAX_PREEMPT_DELAY_MS = 3_600_000


def time_ms(value) -> float:
    """`100ms`, `2.01s` or a number of seconds, in ms (rounded to a microsecond:
    2.01 * 1000 is 2009.9999999999998 in floating point)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return round(float(value) * 1000, 3)
        except OverflowError:  # an integer of hundreds of digits: refused as out of range
            return math.inf
    number, unit = re.fullmatch(r"([0-9.]+)(ms|s)", value).groups()
    return round(float(number) * (1 if unit == "ms" else 1000), 3)


def segment(nodes: dict, node: str, ifname: str):
    """Which layer-2 segment an interface is on: its bridge, or the bridge its veth
    peer is a port of, or the veth pair itself; None for a loopback."""
    iface = nodes[node].interface(ifname)
    if iface is None or iface.kind == "loopback":
        return None
    if iface.kind == "bridge":
        return ("bridge", node, ifname)
    if iface.master:
        return ("bridge", node, iface.master)
    if iface.peer:
        peer_node, peer_if = iface.peer
        peer = nodes[peer_node].interface(peer_if) if peer_node in nodes else None
        if peer is not None and peer.master:
            return ("bridge", peer_node, peer.master)
        return ("link",) + tuple(sorted([(node, ifname), (peer_node, peer_if)]))
    return ("device", node, ifname)


def build_vips(builder, spec: dict, nodes: tuple) -> tuple:
    """The VipGroups of the `vips:` mapping; problems go to builder.fail(path, message)."""
    by_name = {n.name: n for n in nodes}
    groups, owners = [], {}  # owners: (node, interface, vrid) -> group, to find a vrid used twice on a segment
    declared = {ipaddress.ip_interface(a).ip: (n.name, i.name) for n in nodes for i in n.interfaces
                for a in i.addresses}
    for name, group in spec.items():
        if not isinstance(group, dict) or not {"vrid", "addresses", "members"} <= set(group):
            continue  # the schema said what is missing
        path = ("vips", name)
        built = _group(builder, path, name, group, by_name, declared, owners)
        if built is not None:
            groups.append(built)
    _shared_addresses(builder, groups)
    return tuple(groups)


def _group(builder, path, name, group, nodes, declared, owners) -> VipGroup | None:
    ok = True
    interval_cs = 100
    if "interval" in group:
        ms = time_ms(group["interval"])
        if not math.isfinite(ms) or ms % 10 or not MIN_INTERVAL_CS <= ms / 10 <= MAX_INTERVAL_CS:
            builder.fail(path + ("interval",), f"interval {quote(group['interval'])}: from 10ms to 40.95s in steps "
                                               "of 10ms (adverts carry it in centiseconds)")
            ok = False
        else:
            interval_cs = int(ms // 10)
    delay_ms = 0
    if "preempt_delay" in group:
        delay = time_ms(group["preempt_delay"])
        if not math.isfinite(delay) or delay > MAX_PREEMPT_DELAY_MS:
            builder.fail(path + ("preempt_delay",), "a preempt delay is at most an hour")
            ok = False
        else:
            delay_ms = int(delay)
    addresses = []
    for k, text in enumerate(group["addresses"]):
        where = path + ("addresses", k)
        try:
            address = ipaddress.ip_interface(text)
        except ValueError:
            builder.fail(where, f"{quote(text)} is not an address with its prefix length (10.0.3.254/24)")
            ok = False
            continue
        if address.version != 4:
            builder.fail(where, "only IPv4 virtual addresses are supported (VRRPv3 for IPv6 is not built yet)")
            ok = False
            continue
        if address.ip in {ipaddress.ip_interface(a).ip for a in addresses}:
            builder.fail(where, f"{address.ip} is listed twice")
            ok = False
            continue
        if address.ip == address.network.network_address and address.network.prefixlen < 31:
            builder.fail(where, f"{address.ip} is the network's own address ({address.network}), not a host's")
            ok = False
        if address.ip in declared:
            node, ifname = declared[address.ip]
            builder.fail(where, f"{address.ip} is also an address of {node}/{ifname}: a virtual address belongs to "
                                "the group alone")
            ok = False
        if address.ip.is_multicast or address.ip.is_loopback or address.ip.is_unspecified \
                or address.ip == address.network.broadcast_address and address.network.prefixlen < 31:
            builder.fail(where, f"{address.ip} cannot be a virtual address")
            ok = False
        addresses.append(address.with_prefixlen)
    if group.get("virtual_mac"):
        builder.fail(path + ("virtual_mac",), "a virtual MAC is not supported yet: the member's own interface would "
                                              "answer ARP for the VIP too (it needs arp_ignore and arp_filter there)")
        ok = False
    members, seen, segments = [], {}, set()
    for k, member in enumerate(group["members"]):
        where = path + ("members", k)
        if not isinstance(member, dict) or not {"node", "interface", "priority"} <= set(member):
            ok = False
            continue
        node = nodes.get(member["node"])
        if node is None:
            builder.fail(where + ("node",), f"no node {quote(member['node'])} in this topology")
            ok = False
            continue
        if member["node"] in seen:
            builder.fail(where + ("node",), f"{member['node']} is a member twice (also members[{seen[member['node']]}])")
            ok = False
            continue
        seen[member["node"]] = k
        if not _member_interface(builder, where, node, member["interface"], addresses):
            ok = False
            continue
        where_on = segment(nodes, member["node"], member["interface"])
        if where_on is None:
            builder.fail(where + ("interface",), f"{member['node']}/{member['interface']} is a loopback: adverts "
                                                 "and ARP need a segment shared with the other members")
            ok = False
            continue
        segments.add(where_on)
        key = (where_on, group["vrid"])
        if owners.get(key, name) != name:
            builder.fail(path + ("vrid",), f"vrid {group['vrid']} is already group {owners[key]}'s on the segment "
                                           f"of {member['node']}/{member['interface']}: one virtual router per vrid "
                                           "on a segment")
            ok = False
        owners[key] = name
        members.append(VipMember(member["node"], member["interface"], member["priority"]))
    if len(segments) > 1:
        builder.fail(path + ("members",), "the members are not on one segment: they would never hear each "
                                          "other's adverts (every member's interface must reach the same bridge "
                                          "or link)")
        ok = False
    if not ok:
        return None
    return VipGroup(name=name, vrid=group["vrid"], addresses=tuple(addresses), members=tuple(members),
                    interval_cs=interval_cs, preempt=group.get("preempt", True), preempt_delay_ms=delay_ms,
                    unicast=group.get("unicast", False), virtual_mac=group.get("virtual_mac", False),
                    checksum=group.get("checksum", "rfc9568"))


def _member_interface(builder, where, node: Node, ifname: str, addresses: list) -> bool:
    """The member's interface must exist and have an IPv4 address (adverts come
    from it) in the subnet of every virtual address."""
    iface = node.interface(ifname)
    if iface is None:
        names = ", ".join(i.name for i in node.interfaces if i.kind != "loopback") or "none"
        builder.fail(where + ("interface",), f"{node.name} has no interface {quote(ifname)} (it has: {names})")
        return False
    own = [ipaddress.ip_interface(a) for a in iface.addresses if ipaddress.ip_interface(a).version == 4]
    if not own:
        builder.fail(where + ("interface",), f"{node.name}/{ifname} has no IPv4 address to send adverts from")
        return False
    for text in addresses:
        vip = ipaddress.ip_interface(text)
        if not any(vip.ip in a.network for a in own):
            builder.fail(where + ("interface",), f"{vip.ip} is not in a subnet of {node.name}/{ifname} "
                                                 f"({', '.join(a.with_prefixlen for a in own)})")
            return False
    return True


def _shared_addresses(builder, groups: list) -> None:
    seen = {}
    for group in groups:
        for k, text in enumerate(group.addresses):
            ip = ipaddress.ip_interface(text).ip
            if ip in seen and seen[ip] != group.name:
                builder.fail(("vips", group.name, "addresses", k), f"{ip} is also a virtual address of group "
                                                                   f"{seen[ip]}")
            seen.setdefault(ip, group.name)
