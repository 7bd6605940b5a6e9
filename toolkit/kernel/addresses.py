"""Adapter for kind "addr": interface addresses, key (ns, ifname, "ip/prefix")."""

from __future__ import annotations

import ipaddress
import socket

from ..reconcile.resources import Resource
from .session import IFA_PROTO

IFA_F_NODAD = 0x02

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
        out.append(Resource.make("addr", (ns, ifname, text), secondary=True if a.secondary else None))
    return out


def run(kernel, phase: str, action) -> None:
    ns_name, ifname, text = action.key
    ns = kernel.ns(ns_name)
    iface = ipaddress.ip_interface(text)
    args = dict(index=ns.index(ifname), address=str(iface.ip), prefixlen=iface.network.prefixlen)
    if phase == "delete":
        kernel.request(ns_name, f"addr del {text} dev {ifname}", ns.ipr.addr, "del", **args)
    elif phase == "create":
        if iface.version == 6:
            # Skip duplicate address detection: a lab link is usable at once
            # instead of after DAD's second or two of "tentative".
            args["flags"] = IFA_F_NODAD
        kernel.request(ns_name, f"addr add {text} dev {ifname}", ns.ipr.addr, "add",
                       proto=IFA_PROTO, **args)
