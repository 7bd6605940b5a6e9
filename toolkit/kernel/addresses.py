"""Kind "addr" in the kernel: interface addresses, key (ns, ifname, "ip/prefix")."""

from __future__ import annotations

import ipaddress
import socket

from ..core.owners import IFA_PROTO, OVERLAY_IFA_PROTO, overlay
from ..core.resource import Resource
from . import rtnl_requests as rq

IFA_F_NODAD = 0x02
KIND = "addr"
_LOOPBACK = {"127.0.0.1/8", "::1/128"}


def to_resources(ns: str, addrs, by_index: dict) -> list:
    out = []
    for a in addrs:
        ifname = by_index.get(a.index, f"#{a.index}")
        text = f"{a.address}/{a.prefixlen}"
        if a.family == socket.AF_INET6 and a.address.startswith("fe80:"):
            continue  # link-local: the kernel makes these itself
        if ifname == "lo" and text in _LOOPBACK:
            continue
        owner = overlay("unclaimed") if a.proto == OVERLAY_IFA_PROTO else "topology"
        out.append(Resource.make(KIND, (ns, ifname, text), owner=owner,
                                 secondary=True if a.secondary else None, _proto=a.proto or None,
                                 expires=f"in {a.valid_lft} s" if a.valid_lft is not None else None,
                                 _peer=a.peer))
    return out


def add(kernel, ns_name: str, ifname: str, text: str, replace: bool = False) -> None:
    """Add the address (permanent), or with `replace` make an existing one permanent again."""
    ns = kernel.ns(ns_name)
    # An IPv6 one skips duplicate address detection: a lab link is usable at
    # once instead of after DAD's second or two of "tentative".
    flags = IFA_F_NODAD if ipaddress.ip_interface(text).version == 6 else 0
    command = "replace" if replace else "add"
    kernel.request(ns_name, f"addr {command} {text} dev {ifname}", ns.dump.send,
                   rq.address, command, ns.index(ifname), text, proto=IFA_PROTO, flags=flags)


def delete(kernel, ns_name: str, ifname: str, text: str, peer: str | None = None) -> None:
    """Delete the address; `peer`: a point-to-point one's other end, as read (the
    kernel finds such an address by its peer: by its local one alone, never)."""
    ns = kernel.ns(ns_name)
    kernel.request(ns_name, f"addr del {text}{f' peer {peer}' if peer else ''} dev {ifname}", ns.dump.send,
                   rq.address, "del", ns.index(ifname), text, peer=peer)
