"""The VRRPv3 speaker process.

    ip netns exec NS python -m toolkit.vrrp.speaker --config PATH

The process started is the GUARDIAN: it forks the SPEAKER and waits for it.

- The speaker sets PR_SET_PDEATHSIG (SIGTERM): a killed guardian makes it shut
  down gracefully.
- SIGTERM (or SIGINT) to the speaker, or to the guardian (which forwards it):
  the speaker, if active, sends one advert with priority 0 and removes its
  VIPs, writes state "stopped", and both exit 0. A speaker that has not gone
  STOP_GRACE_S after a forwarded SIGTERM is killed (and handled as below).
- Any other end of the speaker (SIGKILL, a crash, an error): the guardian at
  once (about 2 ms: it learns of the death from the speaker's end of a
  heartbeat pipe closing) removes the configured VIPs from the interface (only
  addresses carrying IFA_PROTO VIP_ADDR_PROTO), and if there were any sends one
  advert with priority 0 in the speaker's name (a backup takes over after
  Skew_Time rather than Master_Down_Interval), writes state "dead" with the
  reason in "error", and exits 1. A speaker that stops beating for HANG_S
  (hung, SIGSTOPped) is killed first.
- SIGKILL to both at once (the whole process group) leaves no one to clean up:
  don't; kill the speaker, or the guardian, not both.

The speaker itself is one thread and one loop: select() on the VRRP raw socket
and a signal pipe, with a timeout computed from the state machine's next
deadline, the status period and pending gratuitous ARP (monotonic clock). It
keeps the kernel in line with its state every RECONCILE_S: an active speaker
re-adds a VIP someone removed (and announces it again), a backup removes a
marked VIP it finds. It touches nothing but its interface's VIPs.

IPv4 groups advertise to 224.0.0.18 from the interface's primary address and
announce with gratuitous ARP; IPv6 groups to ff02::12 from its link-local
address, with unsolicited neighbour advertisements. Unicast peers replace the
group address when configured.

Exit codes: 0 clean stop; 1 the speaker died or failed; 2 a config refused
(the status file, when its path is known, says why: state "dead", "error").
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import ipaddress
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
import traceback

from . import machine as m
from .config import (MULTICAST_V4, MULTICAST_V6, REALTIME_CPU_LIMIT_US, REALTIME_RETRY_S, STATUS_PERIOD_S,
                     VIP_ADDR_PROTO, ConfigError, MasterStatus, PeerStatus, SpeakerConfig, SpeakerStatus,
                     realtime_priority, unsupported)
from .packet import (IPPROTO_VRRP, TTL, Advert, PacketError, decode_ipv4, decode_ipv6, encode, garp_frames,
                     unsolicited_na_frame)

STATUS_WRITE_S = STATUS_PERIOD_S / 2    # comfortably "at least every 500 ms"
RECONCILE_S = STATUS_PERIOD_S           # VIPs and the primary address checked against the kernel
GARP_SCHEDULE_S = (0.0, 0.1, 0.3)       # one burst at once, two repeats
STOP_GRACE_S = 3.0                      # a forwarded SIGTERM: the speaker has this long to stop
HANG_S = 1.0                            # no heartbeat (one per status write) this long: it is killed
GOODBYE = b"Q"                          # the speaker's last word to the guardian on a clean stop
INTERFACE_WAIT_S = 5.0                  # at start, for the interface to appear
MAX_PACKETS_PER_WAKE = 256
LOG_EVERY_S = 10.0                      # the same complaint at most this often

PR_SET_PDEATHSIG = 1
IP_PKTINFO = 8
IP_MULTICAST_ALL = 49
SIOCGIFHWADDR = 0x8927


# -- logging -----------------------------------------------------------------------------

class Log:
    def __init__(self, tag: str, stream=None):
        self.tag = tag
        self.stream = stream or sys.stderr
        self._last: dict = {}

    def __call__(self, text: str) -> None:
        t = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"
        try:
            self.stream.write(f"{stamp} {self.tag}[{os.getpid()}]: {text}\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def limited(self, key, text: str) -> None:
        """Log `text` unless the same `key` was logged in the last LOG_EVERY_S."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is None or now - last >= LOG_EVERY_S:
            self._last[key] = now
            self(text)


# -- rtnetlink: addresses only -----------------------------------------------------------

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS, IFA_PROTO = 1, 2, 8, 11
IFA_F_SECONDARY, IFA_F_NODAD, IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x01, 0x02, 0x08, 0x40
_NLMSG = struct.Struct("=LHHLL")
_IFADDR = struct.Struct("=BBBBI")
_NLA = struct.Struct("=HH")


class Addr:
    __slots__ = ("address", "prefixlen", "proto", "flags", "scope")

    def __init__(self, address, prefixlen, proto, flags, scope):
        self.address, self.prefixlen, self.proto, self.flags, self.scope = address, prefixlen, proto, flags, scope

    def __repr__(self):
        return f"Addr({self.address}/{self.prefixlen} proto {self.proto} flags {self.flags:#x})"


def _nla(kind: int, data: bytes) -> bytes:
    return _NLA.pack(_NLA.size + len(data), kind) + data + b"\0" * (-len(data) % 4)


class Rtnl:
    """Just enough rtnetlink for VIPs: list, add (with IFA_PROTO) and delete
    addresses of one interface. Blocking, one request at a time."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = int(time.monotonic() * 1000) & 0xFFFFFF

    def close(self) -> None:
        self.sock.close()

    def _request(self, kind: int, flags: int, payload: bytes) -> list:
        self.seq += 1
        seq = self.seq
        self.sock.send(_NLMSG.pack(_NLMSG.size + len(payload), kind, flags, seq, 0) + payload)
        out = []
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSG.size <= len(data):
                length, mtype, _flags, mseq, _pid = _NLMSG.unpack_from(data, offset)
                if length < _NLMSG.size:
                    return out
                body = data[offset + _NLMSG.size:offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_DONE:
                    return out
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return out      # the ACK
                out.append((mtype, body))

    def addresses(self, ifindex: int, family: int = socket.AF_INET) -> list:
        """The addresses on interface `ifindex`, in the kernel's order."""
        out = []
        for mtype, body in self._request(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, _IFADDR.pack(family, 0, 0, 0, 0)):
            if mtype != RTM_NEWADDR or len(body) < _IFADDR.size:
                continue
            fam, plen, flags, scope, index = _IFADDR.unpack_from(body)
            if index != ifindex or fam != family:
                continue
            attrs, offset = {}, _IFADDR.size
            while offset + _NLA.size <= len(body):
                alen, akind = _NLA.unpack_from(body, offset)
                if alen < _NLA.size:
                    break
                attrs[akind & 0x3FFF] = body[offset + _NLA.size:offset + alen]
                offset += (alen + 3) & ~3
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw is None:
                continue
            if IFA_FLAGS in attrs:
                flags = struct.unpack("=I", attrs[IFA_FLAGS][:4])[0]
            proto = attrs[IFA_PROTO][0] if IFA_PROTO in attrs else 0
            out.append(Addr(socket.inet_ntop(family, raw), plen, proto, flags, scope))
        return out

    def add(self, ifindex: int, address: str, prefixlen: int, proto: int) -> None:
        """Add an address carrying IFA_PROTO `proto` (IPv6: without duplicate
        address detection, usable at once)."""
        family, raw = _family_raw(address)
        flags = IFA_F_NODAD if family == socket.AF_INET6 else 0
        payload = (_IFADDR.pack(family, prefixlen, flags, 0, ifindex) + _nla(IFA_LOCAL, raw)
                   + _nla(IFA_ADDRESS, raw) + _nla(IFA_PROTO, bytes([proto])))
        if flags:
            payload += _nla(IFA_FLAGS, struct.pack("=I", flags))
        self._request(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, payload)

    def delete(self, ifindex: int, address: str, prefixlen: int) -> None:
        family, raw = _family_raw(address)
        payload = _IFADDR.pack(family, prefixlen, 0, 0, ifindex) + _nla(IFA_LOCAL, raw) + _nla(IFA_ADDRESS, raw)
        self._request(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, payload)


def _family_raw(address: str):
    ip = ipaddress.ip_address(address)
    return (socket.AF_INET if ip.version == 4 else socket.AF_INET6), ip.packed


def family_of(vips) -> int:
    return socket.AF_INET6 if ":" in vips[0][0] else socket.AF_INET


def held_vips(rtnl: Rtnl, ifindex: int, vips) -> list:
    """Which of `vips` ((address, prefixlen)) are on the interface carrying the VIP marker."""
    marked = {(a.address, a.prefixlen) for a in rtnl.addresses(ifindex, family_of(vips))
              if a.proto == VIP_ADDR_PROTO}
    return [v for v in vips if v in marked]


def remove_vips(rtnl: Rtnl, ifindex: int, vips, log=None) -> list:
    """Remove those of `vips` that carry the marker; returns the ones removed."""
    removed = []
    for address, plen in held_vips(rtnl, ifindex, vips):
        try:
            rtnl.delete(ifindex, address, plen)
            removed.append((address, plen))
        except OSError as exc:
            if exc.errno not in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ENODEV):
                if log:
                    log(f"removing {address}/{plen}: {exc}")
    return removed


def primary_address(addresses, vips) -> str | None:
    """The address adverts are sent from, never a VIP (by address or marker).
    IPv4: the interface's first primary (not secondary) address. IPv6 (RFC 9568
    5.1.2.1): its link-local address, once duplicate address detection is done."""
    vip_ips = {a for a, _ in vips}
    candidates = [a for a in addresses if a.proto != VIP_ADDR_PROTO and a.address not in vip_ips
                  and not a.address.startswith("127.")]
    if ":" in (vips[0][0] if vips else ""):
        for a in candidates:
            if a.address.startswith("fe80:") and not a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED):
                return a.address
        return None
    for a in candidates:
        if not a.flags & IFA_F_SECONDARY:
            return a.address
    return candidates[0].address if candidates else None


# -- sockets -----------------------------------------------------------------------------

class Channel:
    """The raw IPPROTO_VRRP socket of one family on one interface: bound to the
    device, the group (224.0.0.18 or ff02::12) joined there unless adverts go to
    unicast peers, TTL / hop limit 255 sent, our own multicast not looped, the
    source of each advert set per packet (IP_PKTINFO / IPV6_PKTINFO)."""

    def __init__(self, family: int, ifname: str, ifindex: int, multicast: bool):
        self.family, self.ifindex = family, ifindex
        self.v6 = family == socket.AF_INET6
        self.sock = sock = socket.socket(family, socket.SOCK_RAW, IPPROTO_VRRP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
            if self.v6:
                v6 = socket.IPPROTO_IPV6
                sock.setsockopt(v6, socket.IPV6_MULTICAST_IF, ifindex)
                sock.setsockopt(v6, socket.IPV6_MULTICAST_HOPS, TTL)
                sock.setsockopt(v6, socket.IPV6_UNICAST_HOPS, TTL)
                sock.setsockopt(v6, socket.IPV6_MULTICAST_LOOP, 0)
                sock.setsockopt(v6, socket.IPV6_TCLASS, 0xC0)
                sock.setsockopt(v6, socket.IPV6_RECVPKTINFO, 1)
                sock.setsockopt(v6, socket.IPV6_RECVHOPLIMIT, 1)
                if multicast:
                    mreq = socket.inet_pton(socket.AF_INET6, MULTICAST_V6) + struct.pack("=I", ifindex)
                    sock.setsockopt(v6, socket.IPV6_JOIN_GROUP, mreq)
            else:
                mreqn = socket.inet_aton(MULTICAST_V4) + socket.inet_aton("0.0.0.0") + struct.pack("=i", ifindex)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, TTL)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TTL)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0xC0)    # internetwork control
                try:
                    sock.setsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL, 0)
                except OSError:
                    pass
                if multicast:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def send(self, message: bytes, source: str, dst: str) -> None:
        """One VRRP message from `source` (an address of the interface) to `dst`."""
        if self.v6:
            info = (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO,
                    socket.inet_pton(socket.AF_INET6, source) + struct.pack("=I", self.ifindex))
            self.sock.sendmsg([message], [info], 0, (dst, 0, 0, self.ifindex))
        else:
            info = (socket.IPPROTO_IP, IP_PKTINFO,
                    struct.pack("=i4s4s", self.ifindex, socket.inet_aton(source), b"\0" * 4))
            self.sock.sendmsg([message], [info], 0, (dst, 0))

    def receive(self):
        """The next advertisement (a packet.Received). Raises BlockingIOError
        when there is none, PacketError for one to drop."""
        if not self.v6:
            return decode_ipv4(self.sock.recv(65535))
        data, ancillary, _flags, address = self.sock.recvmsg(65535, 256)
        dst, hoplimit = None, None
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 16:
                dst = socket.inet_ntop(socket.AF_INET6, value[:16])
            elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                hoplimit = struct.unpack("=i", value[:4])[0]
        if dst is None:
            raise PacketError("no destination address")
        return decode_ipv6(data, address[0].split("%")[0], dst, hoplimit)


def open_arp_socket(ifname: str) -> socket.socket:
    """A packet socket on `ifname` to send gratuitous ARP and unsolicited
    neighbour advertisements from (protocol 0: it receives nothing). The guardian opens it before it forks the speaker and
    keeps it: a packet socket's last close waits for an RCU grace period
    (10-20 ms), which would otherwise delay the speaker's death, and with it
    the guardian's cleanup."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.bind((ifname, 0))
    except BaseException:
        sock.close()
        raise
    return sock


def interface_mac(ifname: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        raw = fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", ifname.encode()[:15]))
    return raw[18:24]


def _forwarding(ifname: str) -> bool:
    """Whether the interface forwards IPv6 (a router: NAs carry the Router flag)."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{ifname}/forwarding") as f:
            return f.read().strip() == "1"
    except OSError:
        return True


def _set_pdeathsig(sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


# -- status file -------------------------------------------------------------------------

def ask_realtime(priority: int, log) -> bool:
    """Run this process under SCHED_RR at `priority`, with RLIMIT_RTTIME so that
    being kept busy without blocking ends in SIGXCPU (the caller handles it:
    ordinary_scheduling) rather than a CPU taken for good. True if it runs so
    now. A kernel or container that refuses leaves ordinary scheduling, said
    in the log."""
    if priority <= 0:
        return False
    try:
        # Within the hard limit inherited (lowering needs no privilege), with the
        # soft one well below it: the kernel checks the hard limit first, and
        # reaching it is SIGKILL, with no SIGXCPU before.
        _, hard = resource.getrlimit(resource.RLIMIT_RTTIME)
        wanted = REALTIME_CPU_LIMIT_US * 2 if hard == resource.RLIM_INFINITY else min(hard, REALTIME_CPU_LIMIT_US * 2)
        soft = min(REALTIME_CPU_LIMIT_US, wanted // 2)
        if soft < REALTIME_CPU_LIMIT_US // 20:
            log(f"no realtime scheduling: the inherited RLIMIT_RTTIME ({hard} us) leaves no room to give it up "
                "before the kernel's SIGKILL; adverts may come late on a busy machine")
            return False
        resource.setrlimit(resource.RLIMIT_RTTIME, (soft, wanted))
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (OSError, ValueError) as exc:
        log(f"no realtime scheduling ({exc.strerror if isinstance(exc, OSError) else exc}): "
            "adverts may come late on a busy machine")
        return False
    # The kernel counts realtime CPU time without blocking from the last wakeup
    # as realtime: a count left from an earlier spell (one SIGXCPU ended) would
    # go on growing to the hard limit, and SIGKILL. A short sleep starts it again.
    time.sleep(0.001)
    if os.sched_getscheduler(0) != os.SCHED_RR:
        return False    # SIGXCPU came first: the caller's handler asks again later
    log(f"realtime scheduling: SCHED_RR priority {priority}")
    return True


def ordinary_scheduling() -> None:
    """Back to SCHED_OTHER (from a SIGXCPU handler: the hard limit's SIGKILL
    comes if the process goes on running as realtime)."""
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except OSError:
        pass


def node_gone(namespace: str) -> bool:
    """Whether the network namespace this process runs in no longer goes by
    `namespace` (`ip netns del`, or another made under the name): its node was
    removed. The speaker then stops as on SIGTERM: run on, it kept the removed
    namespace alive and its VIP held there, its veth peer unremovable (the lab
    could not be destroyed: that end was in an unknown namespace), and `vip
    status` named it not running (found by review)."""
    if not namespace:
        return False
    try:
        named = os.stat(f"/run/netns/{namespace}")
        own = os.stat("/proc/self/ns/net")
    except FileNotFoundError:
        return True
    except OSError:
        return False  # (unreadable: not known to be gone)
    return (named.st_dev, named.st_ino) != (own.st_dev, own.st_ino)


def write_status(path: str, status: SpeakerStatus) -> None:
    """Atomically: a temporary file in the same directory, then rename."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(status.to_json())
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)  # (a directory where the status should be: nothing left behind)
        except OSError:
            pass
        raise


def read_status(path: str) -> SpeakerStatus | None:
    try:
        with open(path) as f:
            return SpeakerStatus.from_json(f.read())
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- the speaker -------------------------------------------------------------------------

class Stop(Exception):
    pass


class Speaker:
    """The speaker process's state: config, sockets, machine, status."""

    def __init__(self, config: SpeakerConfig, guardian: int, log: Log, clock=time.monotonic, wall=time.time,
                 beat_fd: int = -1, arp: socket.socket | None = None):
        self.config = config
        self.beat_fd = beat_fd
        self.inherited_arp = arp
        self.guardian = guardian
        self.log = log
        self.clock = clock
        self.wall = wall
        self.vips = config.vips
        self.vip_ips = tuple(a for a, _ in self.vips)
        self.ifindex = 0
        self.sock = None
        self.arp = None
        self.rtnl = None
        self.primary = None
        self.local = set()
        self.machine = m.Machine(config.priority, config.interval_cs, None, config.preempt, config.preempt_delay_ms)
        self.status = SpeakerStatus.initial(config, guardian, os.getpid(), wall())
        self.garp_at: list = []
        self.stop_requested = False
        self.wake_r = self.wake_w = -1
        self.next_status = 0.0
        self.next_reconcile = 0.0
        self.realtime_priority = realtime_priority(config.interval_cs)
        self.realtime_lost_at = None    # when SIGXCPU took realtime scheduling away (clock())
        self.realtime_loss_said = False
        self.family = family_of(self.vips)
        self.destinations = config.unicast_peers or ((MULTICAST_V6,) if self.family == socket.AF_INET6
                                                     else (MULTICAST_V4,))

    # -- setup ------------------------------------------------------------------------

    def _on_signal(self, signum, frame):
        self.stop_requested = True

    def _on_cpu_limit(self, signum, frame):
        # SIGXCPU: busy past RLIMIT_RTTIME without blocking. Its default action
        # ends the process, and a neighbour flooding the segment could do that.
        ordinary_scheduling()
        if self.realtime_priority and self.realtime_lost_at is None:
            self.realtime_lost_at = self.clock()

    def setup(self) -> None:
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        _set_pdeathsig(signal.SIGTERM)      # a killed guardian: a graceful stop
        if os.getppid() != self.guardian:   # it went before the line above
            raise Stop()
        self.write_status()
        deadline = self.clock() + INTERFACE_WAIT_S
        while True:
            try:
                self.ifindex = socket.if_nametoindex(self.config.interface)
                break
            except OSError:
                if self.clock() >= deadline:
                    raise RuntimeError(f"no interface {self.config.interface}") from None
                self.beat()
                self._nap(0.1)
        self.rtnl = Rtnl()
        signal.signal(signal.SIGXCPU, self._on_cpu_limit)
        ask_realtime(self.realtime_priority, self.log)
        self.sock = Channel(self.family, self.config.interface, self.ifindex, not self.config.unicast_peers)
        self.arp = self.inherited_arp if self.inherited_arp is not None else open_arp_socket(self.config.interface)
        self.refresh_addresses()

    def _nap(self, seconds: float) -> None:
        """Wait, but not through a stop request."""
        select.select([self.wake_r], [], [], seconds)
        self._drain_wakeups()
        if self.stop_requested:
            raise Stop()

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def refresh_addresses(self) -> list:
        """Re-read the interface: its index (a new device: new sockets), its
        addresses, the primary one, ours, whether the VIPs are held."""
        try:
            index = socket.if_nametoindex(self.config.interface)
        except OSError:
            raise RuntimeError(f"interface {self.config.interface} is gone") from None
        if index != self.ifindex:       # deleted and made again: a new device, new sockets
            self.log(f"{self.config.interface} changed index {self.ifindex} -> {index}: reopening sockets")
            self.ifindex = index
            self.sock.close()
            self.arp.close()
            self.sock = Channel(self.family, self.config.interface, index, not self.config.unicast_peers)
            self.arp = open_arp_socket(self.config.interface)
        addresses = self.rtnl.addresses(self.ifindex, self.family)
        primary = primary_address(addresses, self.vips)
        if primary != self.primary:
            self.log(f"primary address on {self.config.interface}: {primary}")
            self.primary = primary
            self.machine.set_primary(primary)
        self.local = {a.address for a in addresses if a.address not in self.vip_ips}
        if primary:
            self.local.add(primary)
        marked = {(a.address, a.prefixlen) for a in addresses if a.proto == VIP_ADDR_PROTO}
        self.status.holding = any(v in marked for v in self.vips)
        return addresses

    # -- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.setup()
            while self.primary is None:     # nothing to send adverts from yet
                what = "an IPv6 link-local" if self.family == socket.AF_INET6 else "an IPv4"
                self.log.limited("noprimary", f"waiting for {what} address on {self.config.interface}")
                self.write_status()
                self._nap(RECONCILE_S)
                self.refresh_addresses()
            self.execute(self.machine.start(self.clock()))
            self.loop()
        except Stop:
            pass
        self.execute(self.machine.shutdown(self.clock()))
        self.reconcile_vips()       # whatever the state said, no VIP is left behind
        self.status.master = None
        self.write_status()
        return 0

    def loop(self) -> None:
        now = self.clock()
        self.next_status = now + STATUS_WRITE_S
        self.next_reconcile = now + RECONCILE_S
        while not self.stop_requested:
            now = self.clock()
            wake = [self.next_status, self.next_reconcile]
            deadline = self.machine.next_deadline()
            if deadline is not None:
                wake.append(deadline)
            if self.garp_at:
                wake.append(self.garp_at[0])
            timeout = max(0.0, min(wake) - now)
            readable, _, _ = select.select([self.sock, self.wake_r], [], [], timeout)
            if self.wake_r in readable:
                self._drain_wakeups()
            if self.stop_requested:
                break
            if self.sock in readable:
                self.receive_all()
            now = self.clock()
            for _ in range(8):      # every timer due, bounded
                deadline = self.machine.next_deadline()
                if deadline is None or deadline > now:
                    break
                self.execute(self.machine.tick(now))
            while self.garp_at and self.garp_at[0] <= now:
                self.garp_at.pop(0)
                self.send_garp()
            if now >= self.next_reconcile:
                self.next_reconcile = now + RECONCILE_S
                self.reconcile()
            if now >= self.next_status:
                self.write_status()

    def receive_all(self) -> None:
        for _ in range(MAX_PACKETS_PER_WAKE):
            try:
                got = self.sock.receive()
            except (BlockingIOError, InterruptedError):
                return
            except PacketError as exc:
                self.log.limited(("drop", str(exc)), f"dropped a packet: {exc}")
                continue
            except OSError as exc:
                self.log.limited("recv", f"receive: {exc}")
                return
            self.handle(got, self.clock())

    def handle(self, got, now: float) -> None:
        """A valid advertisement (packet.Received) for any VRID."""
        if got.src in self.local:
            return      # our own
        advert = got.advert
        if advert.vrid != self.config.vrid:
            return      # another virtual router's
        peer = self.status.peers.get(got.src)
        if peer is None:
            peer = self.status.peers[got.src] = PeerStatus()
            self.log(f"first advert from {got.src}: priority {advert.priority}, interval {advert.interval_cs} cs, "
                     f"checksum {got.checksum}")
        peer.adverts += 1
        peer.last = self.wall()
        peer.priority = advert.priority
        peer.interval_cs = advert.interval_cs
        peer.checksum = got.checksum
        if tuple(sorted(advert.addresses)) != tuple(sorted(self.vip_ips)):
            self.log.limited(("mismatch", got.src), f"{got.src} advertises {', '.join(advert.addresses)}, "
                             f"we have {', '.join(self.vip_ips)} (processed anyway)")
        self.execute(self.machine.receive(now, got.src, advert.priority, advert.interval_cs))

    # -- actions ----------------------------------------------------------------------

    def execute(self, actions) -> None:
        changed = False
        for action in actions:
            if isinstance(action, m.Send):
                self.send_advert(action.priority)
            elif isinstance(action, m.AddVips):
                self.add_vips()
            elif isinstance(action, m.RemoveVips):
                self.garp_at = []
                self.remove_vips()
            elif isinstance(action, m.Garp):
                self.garp(action.reason)
            elif isinstance(action, m.Transition):
                changed = True
                self.log(f"{action.old} -> {action.new} ({action.reason})")
                self.status.state = action.new
                self.status.since = self.wall()
                self.status.transitions = self.machine.transitions
        if changed:
            self.write_status()

    def garp(self, reason: str) -> None:
        """A burst of gratuitous ARP (IPv6: unsolicited neighbour
        advertisements) now, and the repeats scheduled."""
        if reason != "became active":
            self.log(f"{'unsolicited NA' if self.family == socket.AF_INET6 else 'gratuitous ARP'}: {reason}")
        now = self.clock()
        self.send_garp()
        self.garp_at = [now + d for d in GARP_SCHEDULE_S if d > 0]

    def send_advert(self, priority: int) -> None:
        if not self.primary:
            return
        advert = Advert(self.config.vrid, priority, self.config.interval_cs, self.vip_ips)
        sent = False
        for dst in self.destinations:
            message = encode(advert, self.config.checksum, self.primary, dst)
            try:
                self.sock.send(message, self.primary, dst)
                sent = True
            except OSError as exc:
                self.log.limited(("send", dst, exc.errno), f"sending an advert to {dst}: {exc}")
        if sent:
            self.status.adverts_sent += 1

    def add_vips(self) -> None:
        for address, plen in self.vips:
            try:
                self.rtnl.add(self.ifindex, address, plen, VIP_ADDR_PROTO)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    self.log(f"adding {address}/{plen}: {exc}")
        self.status.holding = True

    def remove_vips(self) -> None:
        try:
            remove_vips(self.rtnl, self.ifindex, self.vips, self.log)
        except OSError as exc:
            self.log(f"removing the VIPs: {exc}")
        self.status.holding = False

    def send_garp(self) -> None:
        try:
            mac = interface_mac(self.config.interface)
            if self.family == socket.AF_INET6:
                if not self.primary:
                    return
                router = _forwarding(self.config.interface)
                frames = [unsolicited_na_frame(mac, a, self.primary, router) for a in self.vip_ips]
            else:
                frames = [f for a in self.vip_ips for f in garp_frames(mac, a)]
            for frame in frames:
                self.arp.send(frame)
        except OSError as exc:
            self.log.limited(("garp", exc.errno), f"announcing the VIPs: {exc}")

    def reconcile(self) -> None:
        """The kernel as the state says: an active speaker holds every VIP, a
        backup none; the primary address and our own addresses re-read. A
        speaker whose node was removed stops (node_gone)."""
        if node_gone(self.config.namespace):
            self.log(f"namespace {self.config.namespace} is gone (removed by hand, or made again): stopping")
            self.stop_requested = True
            return
        self.regain_realtime()
        try:
            addresses = self.refresh_addresses()
        except OSError as exc:
            self.log.limited("reconcile", f"reading addresses: {exc}")
            return
        marked = {(a.address, a.prefixlen) for a in addresses if a.proto == VIP_ADDR_PROTO}
        if self.machine.state == m.ACTIVE:
            missing = [v for v in self.vips if v not in marked]
            if missing:
                self.log(f"active but {', '.join(f'{a}/{p}' for a, p in missing)} missing: adding again")
                self.add_vips()
                self.garp("VIPs added again")
        else:
            self.reconcile_vips()

    def regain_realtime(self) -> None:
        """Say that SIGXCPU took realtime scheduling away (not from the handler:
        it may have interrupted a write to the log), and ask for it again
        REALTIME_RETRY_S later."""
        if self.realtime_lost_at is None:
            return
        if not self.realtime_loss_said:
            self.realtime_loss_said = True
            self.log(f"busy past the realtime CPU limit ({REALTIME_CPU_LIMIT_US // 1000} ms without blocking: "
                     "a flood of packets?): ordinary scheduling for a while")
        if self.clock() - self.realtime_lost_at >= REALTIME_RETRY_S:
            self.realtime_lost_at, self.realtime_loss_said = None, False
            ask_realtime(self.realtime_priority, self.log)

    def reconcile_vips(self) -> None:
        """Not active: no marked VIP on the interface."""
        if self.rtnl is None or self.machine.state == m.ACTIVE:
            return
        try:
            removed = remove_vips(self.rtnl, self.ifindex, self.vips, self.log)
        except OSError as exc:
            self.log.limited("reconcile", f"removing VIPs: {exc}")
            return
        if removed:
            self.log(f"{self.machine.state}: removed {', '.join(f'{a}/{p}' for a, p in removed)}")
        self.status.holding = False

    def write_status(self) -> None:
        mc = self.machine
        st = self.status
        st.master = MasterStatus(mc.master.address, mc.master.priority, mc.master.interval_cs) \
            if mc.master and mc.master.address else None
        st.skew_ms = mc.skew_ms
        st.master_down_interval_ms = mc.master_down_interval_ms
        st.updated = self.wall()
        self.next_status = self.clock() + STATUS_WRITE_S
        self.beat()
        try:
            write_status(self.config.status, st)
        except OSError as exc:
            self.log.limited("status", f"writing {self.config.status}: {exc}")

    def beat(self) -> None:
        """Tell the guardian this speaker is alive (it kills one silent for HANG_S)."""
        if self.beat_fd >= 0:
            try:
                os.write(self.beat_fd, b".")
            except OSError:     # a full pipe (the guardian is slow) or no guardian
                pass

    def close(self) -> None:
        for s in (self.sock, self.arp, self.rtnl):
            if s is not None:
                s.close()


# -- the processes -----------------------------------------------------------------------

def speaker_main(config: SpeakerConfig, guardian: int, beat_fd: int = -1, arp: socket.socket | None = None) -> int:
    """The speaker child: returns its exit code."""
    log = Log(f"vrrp-speaker {config.group}/{config.vrid}")
    speaker = Speaker(config, guardian, log, beat_fd=beat_fd, arp=arp)
    try:
        code = speaker.run()
        log("stopped")
        return code
    except Exception as exc:  # noqa: BLE001 - a crash: the guardian cleans up after the exit
        log("failed: " + "".join(traceback.format_exception_only(type(exc), exc)).strip())
        speaker.status.error = f"{type(exc).__name__}: {exc}"
        try:
            write_status(config.status, speaker.status)
        except OSError:
            pass
        return 1
    finally:
        speaker.close()


def guardian_main(config: SpeakerConfig) -> int:
    """Fork the speaker, forward SIGTERM/SIGINT to it, watch its heartbeat,
    and clean up after it when it did not stop cleanly."""
    log = Log(f"vrrp-guardian {config.group}/{config.vrid}")
    guardian = os.getpid()
    beat_r, beat_w = os.pipe()
    try:
        arp = open_arp_socket(config.interface)
    except OSError:     # no such interface yet: the speaker waits for it and opens its own
        arp = None
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        code = 1
        try:
            os.close(beat_r)
            os.set_blocking(beat_w, False)
            code = speaker_main(config, guardian, beat_w, arp)
            if code == 0:
                os.write(beat_w, GOODBYE)
        finally:
            try:
                sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(beat_w)
    rtnl = Rtnl()   # ready before it is needed
    asked = {"at": None, "why": None}

    def kill(sig):
        try:
            os.kill(child, sig)
        except ProcessLookupError:
            pass

    def forward(signum, frame):
        if asked["at"] is None:
            asked["at"] = time.monotonic()
        kill(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        clean = _watch(child, beat_r, asked, kill, log)
        buried = None
        if not clean:   # gone without a goodbye: clean up now, the exit status comes later
            buried = bury(config, guardian, child, f"speaker {child} ended without a clean stop", rtnl, log)
        try:
            status = os.waitpid(child, 0)[1]
        except ChildProcessError:
            status = 1 << 8
        if clean and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return 0
        why = (f"speaker {child} killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"speaker {child} exited with code {os.WEXITSTATUS(status)}")
        if asked["why"]:
            why = f"{why} ({asked['why']})"
        if buried is None:
            bury(config, guardian, child, why, rtnl, log)
        else:           # the exact cause, now known
            status, speaker_error = buried
            log(why)
            status.error = f"{why}: {speaker_error}" if speaker_error else why
            try:
                write_status(config.status, status)
            except OSError:
                pass
        return 1
    finally:
        os.close(beat_r)
        rtnl.close()
        if arp is not None:
            arp.close()


def _watch(child: int, beat_r: int, asked: dict, kill, log) -> bool:
    """Wait until the speaker is gone; whether it said goodbye (a clean stop).

    Its end of the heartbeat pipe closes the moment it dies, well before the
    process is reaped (closing a packet socket waits for an RCU grace period,
    10-20 ms): that end of file without a goodbye is its death. A speaker whose
    heartbeat stops for HANG_S (hung, or stopped with SIGSTOP) is killed, and so
    is one still there STOP_GRACE_S after a SIGTERM."""
    pidfd = os.pidfd_open(child)
    last_beat = time.monotonic()
    killed = goodbye = False
    try:
        while True:
            now = time.monotonic()
            wait = last_beat + HANG_S - now
            if asked["at"] is not None:
                wait = min(wait, asked["at"] + STOP_GRACE_S - now)
            readable, _, _ = select.select([pidfd, beat_r], [], [], None if killed else max(0.0, wait))
            if beat_r in readable:
                try:
                    beat = os.read(beat_r, 4096)
                except OSError:
                    beat = b""
                if not beat:
                    return goodbye
                goodbye = goodbye or GOODBYE in beat
                last_beat = time.monotonic()
            if pidfd in readable:       # (its pipe end would have closed first)
                return goodbye
            if killed:
                continue
            now = time.monotonic()
            if asked["at"] is not None and now >= asked["at"] + STOP_GRACE_S:
                asked["why"] = f"still there {STOP_GRACE_S} s after SIGTERM"
            elif now >= last_beat + HANG_S:
                asked["why"] = f"no heartbeat for {HANG_S} s"
            else:
                continue
            log(f"speaker {child}: {asked['why']}: killing it")
            kill(signal.SIGKILL)
            killed = True
    finally:
        os.close(pidfd)


def bury(config: SpeakerConfig, guardian: int, child: int, why: str, rtnl: Rtnl, log: Log):
    """After a speaker's death: its VIPs off the interface; if it held them, one
    advert with priority 0 in its name (a backup takes over after Skew_Time
    instead of Master_Down_Interval); its status "dead" with `why` (and the
    error the speaker wrote itself, if any). Returns that status and the
    speaker's own error."""
    holding = resigned = False
    removed = []
    try:
        ifindex = socket.if_nametoindex(config.interface)
    except OSError:
        ifindex = 0     # the interface is gone, and its addresses with it
    if ifindex:
        try:
            removed = remove_vips(rtnl, ifindex, config.vips, log)
            holding = bool(held_vips(rtnl, ifindex, config.vips))
        except OSError as exc:
            holding = True
            log(f"{why}; removing its VIPs failed: {exc}")
        if removed:
            resigned = resign(config, ifindex, rtnl, log)
        log(f"{why}; removed {', '.join(f'{a}/{p}' for a, p in removed) or 'no VIP'}"
            + ("; sent priority 0" if removed and resigned else ""))
    now = time.time()
    status = read_status(config.status)
    if status is None or status.pid != child:
        status = SpeakerStatus.initial(config, guardian, child, now)
    speaker_error = status.error
    if speaker_error:
        why = f"{why}: {speaker_error}"
    status.state = "dead"
    status.since = now
    status.transitions += 1
    status.holding = holding
    status.master = None
    status.updated = now
    status.error = why
    try:
        write_status(config.status, status)
    except OSError as exc:
        log(f"writing {config.status}: {exc}")
    return status, speaker_error


def resign(config: SpeakerConfig, ifindex: int, rtnl: Rtnl, log: Log) -> bool:
    """One advert with priority 0 from the interface's primary address, as the
    speaker's shutdown would have sent."""
    family = family_of(config.vips)
    try:
        primary = primary_address(rtnl.addresses(ifindex, family), config.vips)
        if primary is None:
            return False
        channel = Channel(family, config.interface, ifindex, multicast=False)
    except OSError as exc:
        log(f"priority 0 not sent: {exc}")
        return False
    sent = False
    try:
        advert = Advert(config.vrid, 0, config.interval_cs, tuple(a for a, _ in config.vips))
        group = MULTICAST_V6 if family == socket.AF_INET6 else MULTICAST_V4
        for dst in config.unicast_peers or (group,):
            try:
                channel.send(encode(advert, config.checksum, primary, dst), primary, dst)
                sent = True
            except OSError as exc:
                log(f"priority 0 to {dst}: {exc}")
    finally:
        channel.close()
    return sent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m toolkit.vrrp.speaker", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the speaker's JSON config file")
    args = parser.parse_args(argv)
    # Started again by a fault's revert or a restore, which hold these off while
    # they work, it inherited them blocked and ignored SIGTERM for good (found by
    # review; core/interrupts.let_in, which this standard-library-only program
    # does not import).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        with open(args.config) as f:
            config = SpeakerConfig.from_json(f.read())
    except (OSError, ConfigError) as exc:
        print(f"vrrp speaker: {args.config}: {exc}", file=sys.stderr)
        return 2
    refused = unsupported(config)
    if refused:
        text = "; ".join(refused)
        print(f"vrrp speaker: {args.config}: {text}", file=sys.stderr)
        status = SpeakerStatus.initial(config, os.getpid(), os.getpid(), time.time())
        status.state, status.error = "dead", text
        try:
            write_status(config.status, status)
        except OSError:
            pass
        return 2
    return guardian_main(config)


if __name__ == "__main__":
    sys.exit(main())
