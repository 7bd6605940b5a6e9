"""What the doctor reads of a namespace besides its configuration: the neighbour
table with its states, every address with its flags (DAD failed, tentative...),
and the connection tracking table.

Neighbours and addresses come from the namespace's dump socket (rtnl.py) and
are decoded here (rtnl.Addr keeps no flags); the conntrack table from a
NETLINK_NETFILTER socket made inside the namespace and read with pyroute2's
conntrack support. Nothing here changes the namespace.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct

from . import netns
from .rtnl import NLM_F_DUMP, RTM_GETADDR, RTM_NEWADDR, _attrs

# <linux/neighbour.h>: NUD_* bits, one set at a time (in practice).
NUD_STATES = {0x01: "incomplete", 0x02: "reachable", 0x04: "stale", 0x08: "delay", 0x10: "probe",
              0x20: "failed", 0x40: "noarp", 0x80: "permanent"}

# <linux/if_addr.h>: IFA_F_* (the low 8 in ifa_flags, all 32 in IFA_FLAGS).
IFA_FLAG_NAMES = {0x01: "secondary", 0x02: "nodad", 0x04: "optimistic", 0x08: "dadfailed", 0x10: "homeaddress",
                  0x20: "deprecated", 0x40: "tentative", 0x80: "permanent", 0x100: "managetempaddr",
                  0x200: "noprefixroute", 0x400: "mcautojoin", 0x800: "stable-privacy"}
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
_IFADDR = struct.Struct("=BBBBI")
_U32 = struct.Struct("=I")

NETLINK_NETFILTER = 12
PROTO_NAMES = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", socket.IPPROTO_ICMP: "icmp",
               socket.IPPROTO_ICMPV6: "icmpv6", 132: "sctp", 33: "dccp", 136: "udplite", 47: "gre"}
IPS_SEEN_REPLY, IPS_ASSURED, IPS_SRC_NAT, IPS_DST_NAT = 1 << 1, 1 << 2, 1 << 4, 1 << 5
TCP_STATES = {0: "none", 1: "syn_sent", 2: "syn_recv", 3: "established", 4: "fin_wait", 5: "close_wait",
              6: "last_ack", 7: "time_wait", 8: "close", 9: "syn_sent2"}


def state_name(nud: int) -> str:
    """The NUD state's name ("reachable"), or the bits joined by "+" when several are set."""
    names = [name for bit, name in NUD_STATES.items() if nud & bit]
    return "+".join(names) if names else "none"


def flag_names(flags: int) -> list:
    return [name for bit, name in IFA_FLAG_NAMES.items() if flags & bit]


def neighbour_entries(kernel, ns: str) -> list:
    """[{"dev", "address", "mac", "state", "family"}] for every neighbour entry (ARP
    and NDP) of every device, in the kernel's order."""
    handle = kernel.ns(ns)
    names = {link.index: link.ifname for link in kernel.request(ns, "link dump", handle.links)}
    out = []
    for n in kernel.request(ns, "neighbour dump", handle.dump.neighbours):
        out.append({"dev": names.get(n.index, f"#{n.index}"), "address": n.address, "mac": n.mac,
                    "state": state_name(n.state), "family": 6 if n.family == socket.AF_INET6 else 4})
    return out


def address_flags(kernel, ns: str) -> list:
    """[{"dev", "address", "prefixlen", "family", "flags"}] for every address, link-local
    ones too; flags are names (dadfailed, tentative, deprecated, permanent, ...)."""
    handle = kernel.ns(ns)
    names = {link.index: link.ifname for link in kernel.request(ns, "link dump", handle.links)}
    replies = kernel.request(ns, "addr dump", handle.dump.request, RTM_GETADDR, NLM_F_DUMP,
                             _IFADDR.pack(0, 0, 0, 0, 0))
    return [entry for mtype, _, payload in replies if mtype == RTM_NEWADDR
            for entry in [decode_address(payload, names)] if entry is not None]


def decode_address(payload: bytes, names: dict) -> dict | None:
    """One RTM_NEWADDR message's address and flags (None without an address)."""
    family, prefixlen, flags, _, index = _IFADDR.unpack_from(payload)
    attrs = dict(_attrs(payload, _IFADDR.size))
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    if IFA_FLAGS in attrs and len(attrs[IFA_FLAGS]) >= 4:
        flags = _U32.unpack_from(attrs[IFA_FLAGS])[0]  # all 32 bits; ifa_flags has the low 8
    return {"dev": names.get(index, f"#{index}"), "address": socket.inet_ntop(family, raw), "prefixlen": prefixlen,
            "family": 6 if family == socket.AF_INET6 else 4, "flags": flag_names(flags)}


def conntrack_entries(kernel, ns: str) -> list:
    """The namespace's connection tracking table, both families: [{"proto", "src",
    "dst", "sport", "dport", "reply_src", "reply_dst", "seen_reply", "assured",
    "state", ...}] (also "family", "id", "timeout", "icmp_type", "snat", "dnat").
    [] when the kernel keeps no conntrack table there (nothing in the namespace
    uses connection tracking, or the module is not loaded)."""
    handle = kernel.ns(ns)
    kernel.log(ns, "conntrack dump")
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            out.extend(_dump_conntrack(handle.fd, family))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EOPNOTSUPP, errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT,
                             errno.ENOTSUP):
                continue  # no conntrack (module, or family) here
            raise
        except Exception as exc:  # pyroute2's NetlinkError carries the errno as .code
            if getattr(exc, "code", None) in (errno.ENOENT, errno.EOPNOTSUPP, errno.EPROTONOSUPPORT):
                continue
            raise
    return out


def _dump_conntrack(fd: int, family: int) -> list:
    from pyroute2.conntrack import Conntrack

    with netns.entered(fd):
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_NETFILTER)
    loop = asyncio.new_event_loop()
    try:
        ct = Conntrack(use_socket=sock, use_event_loop=loop, nfgen_family=family)
        try:
            return [conntrack_entry(e, family) for e in ct.dump_entries()]
        finally:
            ct.close()
    finally:
        sock.close()
        if not loop.is_closed():
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def conntrack_entry(e, family: int) -> dict:
    """One pyroute2 ConntrackEntry as the backend's plain dict."""
    orig, reply = e.tuple_orig, e.tuple_reply
    status = e.status or 0
    tcp_state = e.protoinfo.state if getattr(e, "protoinfo", None) is not None else None
    icmp = orig.proto in (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6)
    return {
        "family": 6 if family == socket.AF_INET6 else 4,
        "proto": PROTO_NAMES.get(orig.proto, str(orig.proto)),
        "src": orig.saddr, "dst": orig.daddr,
        "sport": None if icmp else orig.sport, "dport": None if icmp else orig.dport,
        "icmp_type": orig.icmp_type if icmp else None, "icmp_id": orig.icmp_id if icmp else None,
        "reply_src": reply.saddr, "reply_dst": reply.daddr,
        "seen_reply": bool(status & IPS_SEEN_REPLY), "assured": bool(status & IPS_ASSURED),
        "snat": bool(status & IPS_SRC_NAT), "dnat": bool(status & IPS_DST_NAT),
        "state": TCP_STATES.get(tcp_state, str(tcp_state)) if tcp_state is not None else "",
        "id": e.id, "timeout": e.timeout,
    }
