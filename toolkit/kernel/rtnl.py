"""Fast rtnetlink reads: dump requests decoded with struct, only what netkeel reads.

Why not pyroute2 here: it decodes every attribute of every message into objects.
Measured on this machine, a namespace's link dump costs the kernel about 0.02 ms
and pyroute2's decoding about 0.4 ms; for a thousand namespaces (links, addresses
and routes) that was 4 s of a 5 s drift check. The requests an apply makes by
the thousand are encoded in rtnl_requests.py and sent with `request` here.
Attribute numbers are from <linux/rtnetlink.h>, <linux/if_link.h>,
<linux/if_addr.h> and <linux/net_namespace.h>.
"""

from __future__ import annotations

import errno as _errno
import socket
import struct
from operator import attrgetter

from .netns import socket_cookie, socket_kept_high

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x10, 0x300
IFF_UP, IFF_NOARP = 0x1, 0x80
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
RTM_NEWQDISC, RTM_GETQDISC = 36, 38
RTM_NEWRULE, RTM_GETRULE = 32, 34
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_PRIORITY, FRA_FWMARK, FRA_TABLE, FRA_OIFNAME, FRA_PROTOCOL = 1, 2, 3, 6, 10, 15, 17, 21
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_TBF_PARMS, TCA_TBF_RATE64, TCA_TBF_PRATE64 = 1, 4, 5
TCA_NETEM_REORDER, TCA_NETEM_CORRUPT = 3, 4
TCA_NETEM_RATE, TCA_NETEM_RATE64, TCA_NETEM_LATENCY64, TCA_NETEM_JITTER64 = 6, 8, 10, 11
TC_H_ROOT = 0xFFFFFFFF
RTM_NEWNSID, RTM_GETNSID = 88, 90
SOL_NETLINK, NETLINK_GET_STRICT_CHK = 270, 12
NLA_TYPE_MASK = 0x3FFF

IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_LINK_NETNSID, IFLA_EXT_MASK = 18, 20, 37, 29
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_DATA = 1, 2, 5
IFLA_BR_STP_STATE = 5
# Bridge port options read back, by attribute (IFLA_BRPORT_*, one byte each).
BRPORT_OPTIONS = {8: "learning", 9: "flood", 30: "bcast_flood", 33: "isolated"}
_LINK_ATTRS = frozenset((IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS,
                         IFLA_LINK_NETNSID))
IFA_ADDRESS, IFA_LOCAL, IFA_CACHEINFO, IFA_PROTO = 1, 2, 6, 11
INFINITY_LIFE_TIME = 0xFFFFFFFF
NDA_DST, NDA_LLADDR, NDA_VLAN, NDA_MASTER, NDA_PROTOCOL = 1, 2, 5, 9, 12
AF_BRIDGE = 7
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_METRICS, RTA_MULTIPATH, RTA_TABLE = \
    1, 4, 5, 6, 7, 8, 9, 15
RTAX_LOCK = 1
RTAX_NAMES = {2: "mtu", 3: "window", 4: "rtt", 5: "rttvar", 6: "ssthresh", 7: "cwnd", 8: "advmss",
              9: "reordering", 10: "hoplimit", 11: "initcwnd", 12: "features", 13: "rto_min", 14: "initrwnd",
              15: "quickack", 16: "congctl", 17: "fastopen_no_cookie"}
NETNSA_NSID, NETNSA_FD = 1, 3

_HDR = struct.Struct("=LHHLL")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_NDMSG = struct.Struct("=BxxxiHBB")
_TCMSG = struct.Struct("=BxxxiIII")
_TBF_QOPT = struct.Struct("=BBHhHIBBHhHIIII")  # rate (tc_ratespec), peakrate (one too), limit, buffer, mtu
_NETEM_QOPT = struct.Struct("=IIIIII")       # latency, limit, loss, gap, duplicate, jitter
_U64 = struct.Struct("=Q")
_FIB_RULE = struct.Struct("=BBBBBBBBI")   # family, dst_len, src_len, tos, table, res1, res2, action, flags
_S64 = struct.Struct("=q")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_U16 = struct.Struct("=H")
_S32 = struct.Struct("=i")


class _Record:
    """A record read from a dump: its fields are its slots (each class's
    `__init__` takes them in order, with their defaults); equal by value, shown
    by value, and pickled as its class and a tuple of its values: a helper
    process sends a thousand namespaces' messages through a pipe
    (kernel/fanout.py), and pickle's default for a slotted class (a state dict
    per object) took five times as long and twice the bytes (0.04 s against
    0.008 for 444 namespaces).

    Plain classes, not dataclasses: a quick answer (cli/quick.py) reads the
    kernel with these, and `dataclasses` (its import, with `inspect`'s, and its
    class making) was a fifth of that answer's time."""

    __slots__ = ()
    __hash__ = None  # mutable: filled in as the dump's attributes are read

    _fields: tuple = ()

    def __init_subclass__(cls):
        # Its fields: the slots of its classes, the base's first (as a dataclass inherits fields).
        cls._fields = tuple(name for klass in reversed(cls.__mro__) for name in klass.__dict__.get("__slots__", ()))
        if not cls._fields:
            return
        values = attrgetter(*cls._fields) if len(cls._fields) > 1 else (lambda record: (getattr(record, cls._fields[0]),))
        cls._values = staticmethod(values)
        cls.__reduce__ = lambda self: (cls, values(self))

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values(self) == other._values(other)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self._values(self)))
        return f"{self.__class__.__name__}({shown})"


class Link(_Record):
    """A network device as RTM_NEWLINK dumps it."""

    __slots__ = ("index", "flags", "ifname", "mtu", "mac", "master", "link", "link_netnsid", "kind", "alias",
                 "stp", "port")

    def __init__(self, index: int, flags: int, ifname: str = "", mtu: int | None = None, mac: str | None = None,
                 master: int | None = None, link: int | None = None, link_netnsid: int | None = None,
                 kind: str | None = None, alias: str | None = None, stp: int | None = None,
                 port: dict | None = None):
        self.index = index
        self.flags = flags
        self.ifname = ifname
        self.mtu = mtu
        self.mac = mac
        self.master = master
        self.link = link                  # peer ifindex (veth)
        self.link_netnsid = link_netnsid  # peer namespace id, as this namespace knows it
        self.kind = kind
        self.alias = alias
        self.stp = stp                    # a bridge's STP state (IFLA_BR_STP_STATE)
        self.port = port                  # a bridge port's options: BRPORT_OPTIONS name -> bool


IFA_F_SECONDARY = 0x01


class Addr(_Record):
    """An address as RTM_NEWADDR dumps it."""

    __slots__ = ("index", "family", "prefixlen", "address", "secondary", "proto", "valid_lft", "peer")

    def __init__(self, index: int, family: int, prefixlen: int, address: str, secondary: bool = False,
                 proto: int = 0, valid_lft: int | None = None, peer: str | None = None):
        self.index = index
        self.family = family
        self.prefixlen = prefixlen
        self.address = address
        self.secondary = secondary  # an IPv4 address after the first in its subnet
        self.proto = proto          # IFA_PROTO: who added it (0: unknown, or an old kernel)
        self.valid_lft = valid_lft  # seconds left; None: forever
        self.peer = peer            # a point-to-point address's other end (IFA_ADDRESS, where not the local one)


class Qdisc(_Record):
    """A queueing discipline as RTM_NEWQDISC dumps it (the fields netkeel reads)."""

    __slots__ = ("index", "handle", "parent", "kind", "rate", "burst", "limit", "peakrate", "delay_ns",
                 "jitter_ns", "loss", "duplicate", "corrupt", "reorder")

    def __init__(self, index: int, handle: int, parent: int, kind: str = "", rate: int | None = None,
                 burst: int | None = None, limit: int | None = None, peakrate: int | None = None,
                 delay_ns: int | None = None, jitter_ns: int | None = None, loss: int | None = None,
                 duplicate: int | None = None, corrupt: int | None = None, reorder: int | None = None):
        self.index = index
        self.handle = handle
        self.parent = parent
        self.kind = kind
        self.rate = rate            # bytes/s (tbf, netem rate)
        self.burst = burst          # tbf buffer (ticks of 64 ns, as the kernel keeps it)
        self.limit = limit
        self.peakrate = peakrate    # tbf, bytes/s
        self.delay_ns = delay_ns    # netem
        self.jitter_ns = jitter_ns
        self.loss = loss            # netem, out of 2**32 - 1
        self.duplicate = duplicate  # netem, out of 2**32 - 1
        self.corrupt = corrupt      # netem, out of 2**32 - 1
        self.reorder = reorder      # netem, out of 2**32 - 1


class Rule(_Record):
    """A policy-routing rule as RTM_NEWRULE dumps it."""

    __slots__ = ("family", "priority", "table", "action", "proto", "selector")

    def __init__(self, family: int, priority: int = 0, table: int = 0, action: int = 0, proto: int = 0,
                 selector: str = ""):
        self.family = family
        self.priority = priority
        self.table = table
        self.action = action
        self.proto = proto
        self.selector = selector  # from/to/iif/oif/fwmark, as `ip rule` writes them


class Neigh(_Record):
    """A neighbour (ARP or NDP) entry as RTM_NEWNEIGH dumps it."""

    __slots__ = ("index", "family", "state", "address", "mac", "proto")

    def __init__(self, index: int, family: int, state: int, address: str, mac: str | None = None, proto: int = 0):
        self.index = index
        self.family = family
        self.state = state
        self.address = address
        self.mac = mac
        self.proto = proto


class Fdb(_Record):
    """A bridge forwarding entry as RTM_NEWNEIGH dumps it (family AF_BRIDGE)."""

    __slots__ = ("index", "state", "flags", "mac", "master", "vlan")

    def __init__(self, index: int, state: int, flags: int, mac: str, master: int | None = None, vlan: int = 0):
        self.index = index    # the port (or the bridge itself)
        self.state = state    # NUD_*: permanent (local), noarp (static), reachable or stale (learned)
        self.flags = flags    # NTF_*: master (the bridge's table), self (the device's own)
        self.mac = mac
        self.master = master  # the bridge's index
        self.vlan = vlan


class Route(_Record):
    """A route as RTM_NEWROUTE dumps it."""

    __slots__ = ("family", "dst_len", "table", "proto", "type", "dst", "gateway", "oif", "priority", "multipath",
                 "src", "metrics", "tos", "scope", "extra")

    def __init__(self, family: int, dst_len: int, table: int, proto: int, type: int, dst: str | None = None,
                 gateway: str | None = None, oif: int | None = None, priority: int = 0, multipath: bool = False,
                 src: str | None = None, metrics: str | None = None, tos: int = 0, scope: int = 0,
                 extra: dict | None = None):
        self.family = family
        self.dst_len = dst_len
        self.table = table
        self.proto = proto
        self.type = type
        self.dst = dst
        self.gateway = gateway
        self.oif = oif
        self.priority = priority
        self.multipath = multipath
        self.src = src          # RTA_PREFSRC
        self.metrics = metrics  # RTA_METRICS, as `ip route` writes them ("mtu 1000 advmss 500")
        self.tos = tos          # a TOS selector (`ip route add ... tos 0x10`): another route of the key
        self.scope = scope      # RT_SCOPE_*: link for `ip route add X dev Y`
        self.extra = {} if extra is None else extra


class DumpSocket:
    """A plain rtnetlink socket for dumps and small queries, made by the caller
    inside the namespace it should read."""

    def __init__(self):
        self.sock = socket_kept_high(socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE))
        self.sock.bind((0, 0))
        self.seq = 0
        # True from a request's send until its last reply is read: a request cut
        # off between (a Ctrl-C in the middle of a dump) leaves the rest of its
        # dump queued for this socket, and the kernel refuses it another dump
        # (EBUSY) until that is read; its owner makes a fresh socket instead.
        self.unsettled = False
        try:  # let the kernel filter route dumps by table (Linux 4.20+)
            self.sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
            self.strict = True
        except OSError:
            self.strict = False

    def close(self) -> None:
        self.sock.close()

    def cookie(self) -> int:
        """The cookie (SO_NETNS_COOKIE) of the namespace this socket was made in."""
        return socket_cookie(self.sock)

    def request(self, msg_type: int, flags: int, body: bytes) -> list:
        """Send one request; return [(type, flags, payload)] of every reply message.
        Raises OSError with the kernel's errno on an error reply; retries a dump
        the kernel marks as interrupted (it changed while we read)."""
        for _ in range(5):
            self.seq += 1
            self.unsettled = True
            self.sock.send(_HDR.pack(_HDR.size + len(body), msg_type, NLM_F_REQUEST | flags, self.seq, 0) + body)
            replies, interrupted = self._collect(multi=bool(flags & NLM_F_DUMP))
            self.unsettled = False
            if not interrupted:
                return replies
        raise OSError(_errno.EAGAIN, "netlink dump kept being interrupted")

    def send(self, build, *args, **kwargs) -> None:
        """Send the request `build(*args, **kwargs)` makes (kernel/rtnl_requests.py),
        acknowledged; built here, so that its OSError (a device not found) is the
        request's as the kernel's own refusals are."""
        self.request(*build(*args, **kwargs))

    def _collect(self, multi: bool):
        replies, interrupted = [], False
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset < len(data):
                length, mtype, mflags, seq, _ = _HDR.unpack_from(data, offset)
                if length < _HDR.size:
                    raise OSError(_errno.EPROTO, "short netlink message")
                payload = data[offset + _HDR.size: offset + length]
                offset += (length + 3) & ~3
                if seq != self.seq:
                    continue  # a late reply to an earlier request
                interrupted |= bool(mflags & NLM_F_DUMP_INTR)
                if mtype == NLMSG_DONE:
                    return replies, interrupted
                if mtype == NLMSG_ERROR:
                    code = -_S32.unpack_from(payload)[0]
                    if code:
                        self.unsettled = False  # the refusal ends the exchange
                        raise OSError(code, _errno_text(code))
                    return replies, interrupted  # an ack
                replies.append((mtype, mflags, payload))
                if not multi and not mflags & NLM_F_MULTI:
                    return replies, interrupted

    # -- the three dumps ------------------------------------------------------
    def links(self) -> list:
        # Statistics are most of a link message and netkeel reads none: the kernel
        # leaves them out (RTEXT_FILTER_SKIP_STATS; older kernels ignore the mask).
        request = _IFINFO.pack(0, 0, 0, 0, 0) + _NLA.pack(8, IFLA_EXT_MASK) + _U32.pack(RTEXT_FILTER_SKIP_STATS)
        out = []
        unpack_nla = _NLA.unpack_from
        for mtype, _, p in self.request(RTM_GETLINK, NLM_F_DUMP, request):
            if mtype != RTM_NEWLINK:
                continue
            _, _, index, flags, _ = _IFINFO.unpack_from(p)
            link = Link(index=index, flags=flags)
            offset, end = _IFINFO.size, len(p)
            while offset + 4 <= end:  # inline: a link has some thirty attributes, netkeel reads eight
                length, kind = unpack_nla(p, offset)
                if length < 4:
                    break
                kind &= NLA_TYPE_MASK
                if kind in _LINK_ATTRS:
                    value = p[offset + 4: offset + length]
                    if kind == IFLA_IFNAME:
                        link.ifname = _text(value)
                    elif kind == IFLA_MTU:
                        link.mtu = _U32.unpack_from(value)[0]
                    elif kind == IFLA_ADDRESS:
                        link.mac = ":".join(f"{b:02x}" for b in value)
                    elif kind == IFLA_MASTER:
                        link.master = _U32.unpack_from(value)[0]
                    elif kind == IFLA_LINK:
                        link.link = _U32.unpack_from(value)[0]
                    elif kind == IFLA_LINK_NETNSID:
                        link.link_netnsid = _S32.unpack_from(value)[0]
                    elif kind == IFLA_IFALIAS:
                        link.alias = _text(value)
                    elif kind == IFLA_LINKINFO:
                        for sub, subvalue in _attrs(value, 0):
                            if sub == IFLA_INFO_KIND:
                                link.kind = _text(subvalue)
                            elif sub == IFLA_INFO_DATA:
                                _info_data(link, subvalue)
                            elif sub == IFLA_INFO_SLAVE_DATA:
                                _slave_data(link, subvalue)
                offset += (length + 3) & ~3
            out.append(link)
        return out

    def addrs(self) -> list:
        out = []
        for mtype, _, p in self.request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(0, 0, 0, 0, 0)):
            if mtype != RTM_NEWADDR:
                continue
            family, prefixlen, flags, _, index = _IFADDR.unpack_from(p)
            attrs = dict(_attrs(p, _IFADDR.size))
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is not None:
                proto = attrs.get(IFA_PROTO)
                cache = attrs.get(IFA_CACHEINFO)
                valid = _U32.unpack_from(cache, 4)[0] if cache and len(cache) >= 8 else INFINITY_LIFE_TIME
                peer = attrs.get(IFA_ADDRESS)
                out.append(Addr(index, family, prefixlen, socket.inet_ntop(family, raw),
                                bool(flags & IFA_F_SECONDARY), proto[0] if proto else 0,
                                None if valid == INFINITY_LIFE_TIME else valid,
                                socket.inet_ntop(family, peer) if peer is not None and peer != raw else None))
        return out

    def neighbours(self) -> list:
        out = []
        for mtype, _, p in self.request(RTM_GETNEIGH, NLM_F_DUMP, _NDMSG.pack(0, 0, 0, 0, 0)):
            if mtype != RTM_NEWNEIGH:
                continue
            family, index, state, _, _ = _NDMSG.unpack_from(p)
            attrs = dict(_attrs(p, _NDMSG.size))
            raw = attrs.get(NDA_DST)
            if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
                continue
            mac = attrs.get(NDA_LLADDR)
            proto = attrs.get(NDA_PROTOCOL)
            out.append(Neigh(index, family, state, socket.inet_ntop(family, raw),
                             ":".join(f"{b:02x}" for b in mac) if mac else None, proto[0] if proto else 0))
        return out

    def fdb(self) -> list:
        """Every bridge forwarding entry of the namespace (Fdb)."""
        out = []
        for mtype, _, p in self.request(RTM_GETNEIGH, NLM_F_DUMP, _NDMSG.pack(AF_BRIDGE, 0, 0, 0, 0)):
            if mtype != RTM_NEWNEIGH:
                continue
            family, index, state, flags, _ = _NDMSG.unpack_from(p)
            attrs = dict(_attrs(p, _NDMSG.size))
            mac, master, vlan = attrs.get(NDA_LLADDR), attrs.get(NDA_MASTER), attrs.get(NDA_VLAN)
            if family != AF_BRIDGE or mac is None:
                continue
            out.append(Fdb(index, state, flags, ":".join(f"{b:02x}" for b in mac),
                           _U32.unpack_from(master)[0] if master and len(master) >= 4 else None,
                           _U16.unpack_from(vlan)[0] if vlan and len(vlan) >= 2 else 0))
        return out

    def rules(self) -> list:
        """Policy routing rules, both families."""
        out = []
        for mtype, _, p in self.request(RTM_GETRULE, NLM_F_DUMP, _FIB_RULE.pack(0, 0, 0, 0, 0, 0, 0, 0, 0)):
            if mtype != RTM_NEWRULE:
                continue
            family, dst_len, src_len, _, table, _, _, action, _ = _FIB_RULE.unpack_from(p)
            rule, words = Rule(family, table=table, action=action), []
            for kind, value in _attrs(p, _FIB_RULE.size):
                if kind == FRA_PRIORITY:
                    rule.priority = _U32.unpack_from(value)[0]
                elif kind == FRA_TABLE:
                    rule.table = _U32.unpack_from(value)[0]
                elif kind == FRA_PROTOCOL:
                    rule.proto = value[0]
                elif kind in (FRA_SRC, FRA_DST):
                    length = src_len if kind == FRA_SRC else dst_len
                    words.append(f"{'from' if kind == FRA_SRC else 'to'} {socket.inet_ntop(family, value)}/{length}")
                elif kind in (FRA_IIFNAME, FRA_OIFNAME):
                    words.append(f"{'iif' if kind == FRA_IIFNAME else 'oif'} {_text(value)}")
                elif kind == FRA_FWMARK:
                    words.append(f"fwmark {_U32.unpack_from(value)[0]:#x}")
            rule.selector = " ".join(sorted(words)) or "all"
            out.append(rule)
        return out

    def qdiscs(self) -> list:
        """Every qdisc, with the options netkeel reads of tbf and netem."""
        out = []
        for mtype, _, p in self.request(RTM_GETQDISC, NLM_F_DUMP, _TCMSG.pack(0, 0, 0, 0, 0)):
            if mtype != RTM_NEWQDISC:
                continue
            _, index, handle, parent, _ = _TCMSG.unpack_from(p)
            q, options = Qdisc(index, handle, parent), b""
            for kind, value in _attrs(p, _TCMSG.size):
                if kind == TCA_KIND:
                    q.kind = _text(value)
                elif kind == TCA_OPTIONS:
                    options = value
            if q.kind == "tbf":
                _tbf_options(q, options)
            elif q.kind == "netem":
                _netem_options(q, options)
            out.append(q)
        return out

    def routes(self, table: int | None) -> list:
        """Routes of `table` (filtered by the kernel when it can, here always), or of
        every table (None)."""
        out = []
        header = _RTMSG.pack(0, 0, 0, 0, table if self.strict and table is not None else 0, 0, 0, 0, 0)
        for mtype, _, p in self.request(RTM_GETROUTE, NLM_F_DUMP, header):
            if mtype != RTM_NEWROUTE:
                continue
            family, dst_len, _, tos, rtm_table, proto, scope, rtype, _ = _RTMSG.unpack_from(p)
            route = Route(family=family, dst_len=dst_len, table=rtm_table, proto=proto, type=rtype, tos=tos,
                          scope=scope)
            for kind, value in _attrs(p, _RTMSG.size):
                if kind == RTA_DST:
                    route.dst = socket.inet_ntop(family, value)
                elif kind == RTA_GATEWAY:
                    route.gateway = socket.inet_ntop(family, value)
                elif kind == RTA_OIF:
                    route.oif = _U32.unpack_from(value)[0]
                elif kind == RTA_PRIORITY:
                    route.priority = _U32.unpack_from(value)[0]
                elif kind == RTA_TABLE:
                    route.table = _U32.unpack_from(value)[0]
                elif kind == RTA_PREFSRC:
                    route.src = socket.inet_ntop(family, value)
                elif kind == RTA_METRICS:
                    route.metrics = _metrics(value)
                elif kind == RTA_MULTIPATH:
                    route.multipath = True
            if table is None or route.table == table:
                out.append(route)
        return out

    def nsid_of(self, fd: int) -> int | None:
        """The id this namespace has for the namespace `fd` (None if it has none)."""
        body = struct.pack("=B3x", socket.AF_UNSPEC) + _NLA.pack(8, NETNSA_FD) + _U32.pack(fd)
        for mtype, _, p in self.request(RTM_GETNSID, 0, body):
            if mtype == RTM_NEWNSID:
                for kind, value in _attrs(p, 4):
                    if kind == NETNSA_NSID:
                        nsid = _S32.unpack_from(value)[0]
                        return None if nsid < 0 else nsid
        return None


def _attrs(data: bytes, offset: int):
    end = len(data)
    while offset + 4 <= end:
        length, kind = _NLA.unpack_from(data, offset)
        if length < 4:
            break
        yield kind & NLA_TYPE_MASK, data[offset + 4: offset + length]
        offset += (length + 3) & ~3


def _info_data(link: Link, data: bytes) -> None:
    """A bridge's own options (the kind attribute comes first, so it is known here)."""
    if link.kind == "bridge":
        for kind, value in _attrs(data, 0):
            if kind == IFLA_BR_STP_STATE and len(value) >= 4:
                link.stp = _U32.unpack_from(value)[0]


def _slave_data(link: Link, data: bytes) -> None:
    """A bridge port's options (a port of another kind of master has others: kept
    only when every one of ours is there)."""
    found = {BRPORT_OPTIONS[kind]: bool(value[0]) for kind, value in _attrs(data, 0)
             if kind in BRPORT_OPTIONS and value}
    if len(found) == len(BRPORT_OPTIONS):
        link.port = found


def _metrics(value: bytes) -> str:
    """RTA_METRICS as `ip route` writes them: "mtu lock 600 advmss 500" (RTAX_LOCK,
    1, is a bitmask of the metrics locked, not one of its own)."""
    found = {k: _U32.unpack_from(v)[0] for k, v in _attrs(value, 0) if len(v) >= 4}
    locked = found.pop(RTAX_LOCK, 0)
    return " ".join(f"{RTAX_NAMES.get(k, k)}{' lock' if locked & (1 << k) else ''} {v}" for k, v in found.items())


def _tbf_options(q: Qdisc, options: bytes) -> None:
    for kind, value in _attrs(options, 0):
        if kind == TCA_TBF_PARMS and len(value) >= _TBF_QOPT.size:
            fields = _TBF_QOPT.unpack_from(value)
            rate, peakrate, q.limit, q.burst = fields[5], fields[11], fields[12], fields[13]
            q.rate = q.rate or rate
            q.peakrate = q.peakrate or peakrate
        elif kind == TCA_TBF_RATE64:
            q.rate = _U64.unpack_from(value)[0]
        elif kind == TCA_TBF_PRATE64:
            q.peakrate = _U64.unpack_from(value)[0]


def _netem_options(q: Qdisc, options: bytes) -> None:
    """netem's options: a struct, then (aligned) attributes."""
    if len(options) < _NETEM_QOPT.size:
        return
    latency, q.limit, q.loss, _, q.duplicate, jitter = _NETEM_QOPT.unpack_from(options)
    for kind, value in _attrs(options, (_NETEM_QOPT.size + 3) & ~3):
        if kind == TCA_NETEM_CORRUPT and len(value) >= 4:
            q.corrupt = _U32.unpack_from(value)[0]
        elif kind == TCA_NETEM_REORDER and len(value) >= 4:
            q.reorder = _U32.unpack_from(value)[0]
        elif kind == TCA_NETEM_LATENCY64:
            q.delay_ns = _S64.unpack_from(value)[0]
        elif kind == TCA_NETEM_JITTER64:
            q.jitter_ns = _S64.unpack_from(value)[0]
        elif kind == TCA_NETEM_RATE and q.rate is None:
            q.rate = _U32.unpack_from(value)[0] or None
        elif kind == TCA_NETEM_RATE64:
            q.rate = _U64.unpack_from(value)[0]


def _text(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode(errors="replace")


def _errno_text(code: int) -> str:
    import os
    return os.strerror(code)
