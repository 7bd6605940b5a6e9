"""Kind "neigh" in the kernel: permanent ARP/NDP entries, key (ns, ifname, address)."""

from __future__ import annotations

import socket

from ..core.owners import IFA_PROTO
from ..core.resource import Resource
from .rtnl import Neigh

KIND = "neigh"
NUD_PERMANENT = 0x80
# The mark on entries netkeel makes (NDA_PROTOCOL), as on its addresses.
NEIGH_PROTO = IFA_PROTO


def to_resources(ns: str, neighbours, by_index: dict) -> list:
    """Permanent entries only: the kernel's own come and go with traffic."""
    return [Resource.make(KIND, (ns, by_index.get(n.index, f"#{n.index}"), n.address), mac=n.mac,
                          _proto=n.proto or None)
            for n in neighbours if isinstance(n, Neigh) and n.state & NUD_PERMANENT]  # (a bridge's entries: fdb.py)


def set_entry(kernel, ns_name: str, ifname: str, address: str, mac: str) -> None:
    ns = kernel.ns(ns_name)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kernel.request(ns_name, f"neigh replace {address} lladdr {mac} dev {ifname} nud permanent",
                   ns.ipr.neigh, "replace", family=family, dst=address, lladdr=mac,
                   ifindex=ns.index(ifname), state=NUD_PERMANENT, NDA_PROTOCOL=NEIGH_PROTO)


def delete(kernel, ns_name: str, ifname: str, address: str) -> None:
    ns = kernel.ns(ns_name)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kernel.request(ns_name, f"neigh del {address} dev {ifname}", ns.ipr.neigh, "del",
                   family=family, dst=address, ifindex=ns.index(ifname))
