"""The topology model: nodes (network namespaces) with interfaces, routes, sysctls.

Everything here is frozen and already validated: addresses and prefixes are in
canonical text form (what `ipaddress` prints), so equal things compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .defaults import DEFAULT_MTU



@dataclass(frozen=True)
class Interface:
    """A network interface inside a node.

    kind is "veth", "bridge" or "loopback". `peer` is the (node, interface) at the
    other end of a veth; `master` the bridge this interface is a port of.
    `mac` is None when the manifest leaves it to the kernel.
    """

    name: str
    kind: str
    addresses: tuple = ()
    mtu: int | None = DEFAULT_MTU
    state: str = "up"
    mac: str | None = None
    master: str | None = None
    peer: tuple | None = None
    # A permanent impairment of its egress: sorted (field, value) pairs of
    # rate (bits/s), delay_us, jitter_us, distribution, loss (percent).
    impair: tuple = ()


@dataclass(frozen=True)
class Route:
    """A route in a node's main table. `dst` is a canonical prefix (0.0.0.0/0 for default)."""

    dst: str
    family: int  # 4 or 6
    via: str | None = None
    dev: str | None = None
    metric: int | None = None


@dataclass(frozen=True)
class Neighbour:
    """A static ARP (IPv4) or NDP (IPv6) entry: `address` reached at `mac` on `interface`."""

    address: str
    mac: str
    interface: str


@dataclass(frozen=True)
class VipMember:
    """A node that may hold a VIP group's addresses: its speaker runs on `interface`."""

    node: str
    interface: str
    priority: int  # 1-254


@dataclass(frozen=True)
class VipGroup:
    """A VRRPv3 virtual router (RFC 9568): `addresses` held by one member at a time,
    the active one, elected by priority; adverts every `interval_cs` centiseconds."""

    name: str
    vrid: int
    addresses: tuple            # canonical interface form, "10.0.3.254/24"
    members: tuple              # VipMember
    interval_cs: int = 100      # 1 s
    preempt: bool = True
    preempt_delay_ms: int = 0
    unicast: bool = False       # adverts to the other members' addresses, not 224.0.0.18
    virtual_mac: bool = False
    checksum: str = "rfc9568"   # or "pseudo-header" (keepalived's default)


@dataclass(frozen=True)
class Node:
    """A network namespace and everything declared inside it."""

    name: str
    interfaces: tuple = ()
    routes: tuple = ()
    sysctls: tuple = ()  # of (name, canonical value) pairs, sorted
    tables: tuple = ()   # firewall.Table, from the node's policy files
    neighbours: tuple = ()  # Neighbour, static entries

    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)


@dataclass(frozen=True)
class Topology:
    """A whole topology manifest, validated."""

    name: str
    source: str
    nodes: tuple = ()
    vips: tuple = ()  # VipGroup
    # Every file it was built from, (path, sha256), the manifest first: provenance, not content.
    files: tuple = field(default=(), compare=False)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)
