"""The doctor's probes, run inside a lab namespace (never the root one):

    ip netns exec NS python -m toolkit.doctor.probe arp IFACE MS TARGET[,TARGET...]
    ip netns exec NS python -m toolkit.doctor.probe pmtu MS DST=TOP[,DST=TOP...] [MTU,...] [MAX]

arp: asks by ARP who has each IPv4 TARGET, from IFACE, twice, and collects
every answer for MS milliseconds: {"arp": {target: [mac, ...]}, "mac": IFACE's}.
The requests are RFC 5227 probes (sender address 0.0.0.0): every holder of
the address answers, and none of them learns a neighbour entry from it, so
the probe leaves the lab's ARP caches as they were. Two MACs for one address
is a duplicate address as the segment sees it.

pmtu: the path MTU towards each DST by a DF size sweep: ICMP echo requests
with the Don't Fragment bit (IP_PMTUDISC_PROBE: the kernel's cached path MTU
is not used, each probe goes out at its size) from a raw socket with
IP_RECVERR, so that a "fragmentation needed" (ICMPv6 "packet too big") that
comes back is seen, with the router that sent it and the MTU it names.
Destinations are swept together in rounds: first a small probe (reachable?),
then TOP (the size of the source's egress MTU), then the likely MTUs given
(the lab's link MTUs) below it, then bisection; at most
MAX_PROBES (or MAX) per destination, each round bounded by a timeout (1 s for the
first, a few round trips after). Prints one JSON document:

    {"pmtu": {dst: {"reachable": bool, "rtt_ms": float, "path_mtu": int, "exact": bool,
                    "top": int, "ptb": [{"from": ip, "mtu": int}], "silent": [sizes lost without a word],
                    "probes": [[size, "ok" | "lost" | "ptb" | "error:..."], ...]}}}

Standard library only; bounded in time (MS, at most 10 s per round).
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time

from ..vrrp.packet import ETH_P_ARP, arp_answer, who_has

MAX_MS = 10_000
MAX_PROBES = 10
PACE_AFTER, PACE_S = 16, 0.0005     # past 16 probes in a round, half a millisecond between sends
SMALL = {4: 576, 6: 1280}           # sizes every IPv4 / IPv6 path carries
HEADER = {4: 20 + 8, 6: 40 + 8}     # IP + ICMP echo headers

IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, IP_RECVERR = 10, 3, 11
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, IPV6_RECVERR = 23, 3, 25
SO_EE_ORIGIN_LOCAL, SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 1, 2, 3
MSG_ERRQUEUE = 0x2000
_EE = struct.Struct("=IBBBBII")     # struct sock_extended_err


# -- ARP -----------------------------------------------------------------------------------
def arp(ifname: str, targets: list, ms: float) -> dict:
    ms = max(50.0, min(float(ms), MAX_MS))
    answers: dict = {t: [] for t in targets}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((ifname, ETH_P_ARP))
        mac = sock.getsockname()[4]
        source = "0.0.0.0"
        start = time.monotonic()
        deadline, resent = start + ms / 1000, False
        for target in targets:
            sock.send(who_has(mac, source, target))
        while (left := deadline - time.monotonic()) > 0:
            if not resent and time.monotonic() - start >= ms / 3000:
                resent = True  # a second request each, in case one was lost
                for target in targets:
                    sock.send(who_has(mac, source, target))
            ready, _, _ = select.select([sock], [], [], min(left, 0.02) if not resent else left)
            if ready:
                arp_answer(sock.recv(4096), answers)
    return {"arp": answers, "mac": mac.hex(":")}


# -- path MTU ------------------------------------------------------------------------------
class Sweep:
    """The bisection for one destination (pure: the prober feeds it outcomes)."""

    def __init__(self, dst: str, top: int, max_probes: int = MAX_PROBES, candidates=()):
        self.dst, self.family = dst, ipaddress.ip_address(dst).version
        self.top, self.max_probes = int(top), max_probes
        # MTUs the path is likely to have (the lab's link MTUs): tried before bisecting
        self.candidates = sorted({int(c) for c in candidates}, reverse=True)
        self.small = min(SMALL[self.family], self.top)
        self.lo = self.hi = None          # largest size that passed, smallest that did not
        self.reachable: bool | None = None
        self.rtt_ms: float | None = None
        self.probes: list = []
        self.ptb: list = []
        self.silent: list = []
        self.hint: int | None = None      # the MTU a "too big" named

    def next_size(self) -> int | None:
        """The next size to probe, None when done."""
        if len(self.probes) >= self.max_probes or self.reachable is False:
            return None
        if not self.probes:
            return self.small
        if self.lo is None:
            return None
        if self.hi is None:
            return self.top if self.top > self.lo else None
        if self.hi - self.lo <= 1:
            return None
        for size in (self.hint, *self.candidates):
            if size is not None and self.lo < size < self.hi:
                return size
        if self.lo == self.hint or self.lo in self.candidates:
            return self.lo + 1  # a likely MTU passed: one more byte must not
        return (self.lo + self.hi) // 2

    def outcome(self, size: int, result: str, rtt_ms: float | None = None, ptb_from=None, ptb_mtu=None) -> None:
        self.probes.append([size, result])
        if result == "ok":
            if not self.reachable:
                self.reachable, self.rtt_ms = True, rtt_ms
            self.lo = max(self.lo or 0, size)
            if self.hint is not None and size >= self.hint:
                if size == self.hint and self.hi is not None:
                    self.hi = min(self.hi, size + 1)  # the MTU a router named passed: that is it
                self.hint = None
            return
        if self.lo is None:  # the small probe itself got nowhere
            self.reachable = False
            return
        self.hi = size if self.hi is None else min(self.hi, size)
        if result == "ptb":
            self.ptb.append({"from": ptb_from, "mtu": ptb_mtu})
            if ptb_mtu and self.lo < ptb_mtu < self.hi:
                self.hint = ptb_mtu
        elif result == "lost":
            self.silent.append(size)

    def result(self) -> dict:
        done = self.lo is not None and (self.hi is None or self.hi - self.lo <= 1)
        return {"reachable": bool(self.reachable), "rtt_ms": self.rtt_ms, "top": self.top,
                "path_mtu": self.lo, "exact": done, "upper": (self.hi - 1) if self.hi else self.lo,
                "ptb": self.ptb, "silent": self.silent, "probes": self.probes}


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(family: int, ident: int, seq: int, size: int) -> bytes:
    """An ICMP(v6) echo request making an IP packet of `size` bytes."""
    payload = bytes((i & 0xFF) for i in range(max(0, size - HEADER[family])))
    kind = 8 if family == 4 else 128
    head = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    if family == 6:
        return head + payload  # the kernel fills in the ICMPv6 checksum
    return struct.pack("!BBHHH", kind, 0, _checksum(head + payload), ident, seq) + payload


def _socket(family: int):
    if family == 4:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    else:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    sock.setblocking(False)
    return sock


def pmtu(tops: dict, first_ms: float = 1000, max_probes: int = MAX_PROBES, candidates=()) -> dict:
    """{dst: result} for {dst: top}; every destination swept at once."""
    first_ms = max(50.0, min(float(first_ms), MAX_MS))
    sweeps = {dst: Sweep(dst, top, max_probes, candidates) for dst, top in tops.items()}
    socks = {}
    try:
        for family in {s.family for s in sweeps.values()}:
            socks[family] = _socket(family)
        ident = (os.getpid() ^ int(time.monotonic() * 1000)) & 0xFFFF
        seq = 0
        round_ms = first_ms
        while True:
            pending = {}  # seq -> (sweep, size, sent at)
            for sweep in sweeps.values():
                size = sweep.next_size()
                if size is None:
                    continue
                seq = (seq + 1) & 0xFFFF
                try:
                    socks[sweep.family].sendto(echo_request(sweep.family, ident, seq, size), (sweep.dst, 0))
                except OSError as exc:
                    sweep.outcome(size, f"error:{exc.strerror or exc}")
                    continue
                pending[seq] = (sweep, size, time.monotonic())
                if len(pending) > PACE_AFTER:
                    time.sleep(PACE_S)  # a burst to many new neighbours floods the segment with ARP
            if not pending:
                break
            rtts = _collect(socks, ident, pending, round_ms / 1000)
            for sweep, size, _ in pending.values():
                sweep.outcome(size, "lost")
            if rtts:
                round_ms = min(1000.0, max(150.0, 4 * max(rtts) + 50))
    finally:
        for sock in socks.values():
            sock.close()
    return {dst: s.result() for dst, s in sweeps.items()}


def _collect(socks: dict, ident: int, pending: dict, seconds: float) -> list:
    """Read replies and errors until every pending probe has one or time is up;
    feeds each answered probe's sweep and removes it from `pending`."""
    rtts = []
    deadline = time.monotonic() + seconds
    by_fd = {s.fileno(): (family, s) for family, s in socks.items()}
    while pending and (left := deadline - time.monotonic()) > 0:
        ready, _, errs = select.select(list(by_fd), [], list(by_fd), left)
        for fd in set(ready) | set(errs):
            family, sock = by_fd[fd]
            _drain_errors(sock, family, ident, pending)
            while True:
                try:
                    data, _ = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                except OSError:
                    _drain_errors(sock, family, ident, pending)
                    continue
                reply = _echo_reply(data, family)
                if reply is None or reply[0] != ident or reply[1] not in pending:
                    continue
                sweep, size, sent = pending.pop(reply[1])
                rtt = (time.monotonic() - sent) * 1000
                rtts.append(rtt)
                sweep.outcome(size, "ok", rtt_ms=round(rtt, 3))
    return rtts


def _echo_reply(data: bytes, family: int):
    if family == 4:
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4:]
    if len(data) < 8:
        return None
    kind, _, _, ident, seq = struct.unpack("!BBHHH", data[:8])
    return (ident, seq) if kind == (0 if family == 4 else 129) else None


def _drain_errors(sock, family: int, ident: int, pending: dict) -> None:
    """ICMP errors about our probes, from the socket's error queue."""
    while True:
        try:
            data, ancillary, _, _ = sock.recvmsg(65535, 512, MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if len(data) < 8:
            continue
        _, _, _, err_ident, seq = struct.unpack("!BBHHH", data[:8])
        if err_ident != ident or seq not in pending:
            continue
        for level, kind, cdata in ancillary:
            if kind not in (IP_RECVERR, IPV6_RECVERR) or len(cdata) < _EE.size:
                continue
            errno_, origin, etype, code, _, info, _ = _EE.unpack_from(cdata)
            offender = _offender(cdata[_EE.size:], family)
            sweep, size, _ = pending.pop(seq)
            too_big = (origin == SO_EE_ORIGIN_ICMP and etype == 3 and code == 4) or \
                      (origin == SO_EE_ORIGIN_ICMP6 and etype == 2)
            if too_big:
                sweep.outcome(size, "ptb", ptb_from=offender, ptb_mtu=info)
            elif origin == SO_EE_ORIGIN_LOCAL and errno_ == 90:  # EMSGSIZE, said by our own kernel
                sweep.outcome(size, "ptb", ptb_from="local", ptb_mtu=info)
            else:
                sweep.outcome(size, f"error:icmp type {etype} code {code} from {offender}")
            break


def _offender(raw: bytes, family: int) -> str | None:
    try:
        if family == 4 and len(raw) >= 8:
            return socket.inet_ntop(socket.AF_INET, raw[4:8])
        if family == 6 and len(raw) >= 24:
            return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    except (OSError, ValueError):
        pass
    return None


def run(ns: str, args: list, timeout: float) -> dict:
    """This program run in namespace `ns` (ip netns exec), bounded by `timeout`
    seconds: its JSON document, or {"error": why}."""
    import subprocess

    try:
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "toolkit.doctor.probe", *args],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"the probe took longer than {timeout:.0f} s"}
    except OSError as exc:
        return {"error": str(exc)}
    if done.returncode != 0:
        return {"error": done.stderr.strip() or f"exit {done.returncode}"}
    try:
        return json.loads(done.stdout)
    except ValueError:
        return {"error": f"unreadable output: {done.stdout[:200]!r}"}


def main(argv: list) -> int:
    try:
        if len(argv) == 4 and argv[0] == "arp":
            targets = [str(ipaddress.IPv4Address(t)) for t in argv[3].split(",") if t]
            print(json.dumps(arp(argv[1], targets, float(argv[2])), sort_keys=True))
            return 0
        if len(argv) in (3, 4, 5) and argv[0] == "pmtu":
            tops = {}
            for item in argv[2].split(","):
                dst, _, top = item.partition("=")
                tops[str(ipaddress.ip_address(dst))] = int(top)
            candidates = [int(c) for c in argv[3].split(",") if c] if len(argv) >= 4 else []
            most = max(1, min(MAX_PROBES, int(argv[4]))) if len(argv) == 5 else MAX_PROBES
            print(json.dumps({"pmtu": pmtu(tops, float(argv[1]), most, candidates)}, sort_keys=True))
            return 0
    except (ValueError, OSError) as exc:
        print(f"probe: {exc}", file=sys.stderr)
        return 1
    print("usage: probe arp IFACE MS TARGET[,...] | probe pmtu MS DST=TOP[,...] [MTU,...] [MAX]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
