#!/usr/bin/env python3
"""Benchmark: VRRP failover seen from a client, netkeel's speakers against keepalived.

On topologies/vrrp-pair.yaml (r1 priority 200, r2 priority 100, VIP 10.0.3.254,
adverts every 100 ms), under a prefix of its own and with its state directory in
a temporary directory, three instruments watch:

- a pinger of its own in the client's namespace: a raw ICMP socket sending an
  echo to the VIP every 10 ms on a fixed schedule (each echo carries its
  sequence number and send time; echoes sent late are counted);
- a netlink socket in r1's and in r2's namespace hearing the kernel's address
  events: who holds the VIP, and since when;
- a raw VRRP socket in the client's namespace (224.0.0.18 joined, a bystander
  that sends nothing): when each router's adverts arrive.

netkeel (its speakers as `netkeel apply` starts them), N trials each:
  sigkill    SIGKILL to r1's speaker (the `pid` of its status file): its guardian
             withdraws the VIP and sends priority 0 in its name; also timed:
             until exactly one router (r2) holds the VIP; `netkeel apply`
             starts it again and it preempts
  graceful   SIGTERM to r1's speaker: priority 0, r2 takes over after
             Skew_Time; `netkeel apply` starts it again
  cut        r1's switch port (sw_r1, in sw) set down with one rtnetlink
             request from this process; r2 takes over Master_Down_Interval
             after r1's last advert; the port is set up again

keepalived 2.2.7 (after a manifest copy without the `vips:` section stopped
netkeel's speakers): one instance in r1 and one in r2 with identical settings
(vrrp_version 3, advert_int 0.1, the same VIP; priorities 200 and 100, default
scheduling like netkeel's speakers), the same cuts, and graceful handovers
(SIGTERM to r1's keepalived, started again).

Trial k of every scenario fires the same phase after one of r1's adverts
(seeded, uniform over the interval): a cut's downtime depends mostly on how
long before it r1's last advert went, so both implementations meet the same
cuts. A trial starts once r1 alone holds the VIP, the client's neighbour
entry names r1 and echoes are answered. Downtime: the time between the sends
of the last answered echo before the outage and the first answered one after
it, minus one period (with the schedule kept: unanswered echoes x 10 ms). After
each trial r1 comes back (port up, `netkeel apply`, keepalived started) and
the outage of that return, if any, is reported too. Whole processes
throughout (netkeel's CLI, its speakers, keepalived). Last line:

    trials=N cut_p50_ms=A cut_p99_ms=B graceful_p50_ms=C sigkill_p50_ms=K keepalived_cut_p50_ms=D ratio=R

with R = A / D (C and K: the client's downtime). Percentiles are nearest-rank.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import remove_all  # noqa: E402
from toolkit.core.processes import alive, parent_of  # noqa: E402
from toolkit.kernel import netns, speakers  # noqa: E402
from toolkit.vrrp.config import master_down_interval_ms, skew_time_ms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "topologies" / "vrrp-pair.yaml"
NETKEEL = str(Path(sys.executable).with_name("netkeel"))
VIP = "10.0.3.254"
R1, R2 = "10.0.3.2", "10.0.3.3"
GROUP = "gw"
INTERVAL_CS = 10
PRIORITY = {"r1": 200, "r2": 100}
PERIOD_S = 0.010                 # one echo every 10 ms
LATE_S = 0.002                   # an echo sent later than this after its slot is reported
STEADY_S = 0.2                   # answered without a gap this long before a trial starts
AFTER_S = 0.2                    # answered without a gap this long after an outage ends it
TRIAL_TIMEOUT_S = 5.0            # any one wait
RESTORE = {"netkeel sigkill": "netkeel apply", "netkeel graceful": "netkeel apply", "netkeel cut": "port up",
           "keepalived cut": "port up", "keepalived graceful": "keepalived started"}


# -- the pinger (runs in the client's namespace) -----------------------------------------------

def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def pinger(target: str, seconds: float) -> int:
    """Echo requests to `target` every PERIOD_S on a fixed schedule, for at most
    `seconds` or until stdin closes. Prints READY, then for each reply
    `R seq t_send t_recv`, for each echo sent late `L seq lateness` (monotonic
    seconds; CLOCK_MONOTONIC is the same clock in every namespace)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.setblocking(False)
    ident = os.getpid() & 0xFFFF
    out = sys.stdout
    out.write("READY\n")
    out.flush()
    start = time.monotonic()
    end = start + seconds
    slot = start
    seq = 0
    stdin = sys.stdin.fileno()
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now >= slot:
            payload = struct.pack("!Qd", seq, now)
            header = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
            packet = header[:2] + struct.pack("!H", _checksum(header + payload)) + header[4:] + payload
            try:
                sock.sendto(packet, (target, 0))
            except OSError:
                pass        # no route / neighbour yet: counted as unanswered
            if now - slot > LATE_S:
                out.write(f"L {seq} {now - slot:.6f}\n")
            seq += 1
            slot += PERIOD_S
            while slot <= now:      # a slot missed altogether is skipped, not made up
                slot += PERIOD_S
            continue
        readable, _, _ = select.select([sock, stdin], [], [], slot - now)
        if sock in readable:
            while True:
                try:
                    data, (src, _port) = sock.recvfrom(2048)
                except (BlockingIOError, InterruptedError):
                    break
                t_recv = time.monotonic()
                ihl = (data[0] & 0x0F) * 4
                icmp = data[ihl:]
                if len(icmp) < 24 or icmp[0] != 0 or src != target:
                    continue
                if struct.unpack_from("!H", icmp, 4)[0] != ident:
                    continue
                rseq, t_send = struct.unpack_from("!Qd", icmp, 8)
                out.write(f"R {rseq} {t_send:.6f} {t_recv:.6f}\n")
            out.flush()
        if stdin in readable and not os.read(stdin, 4096):
            break
    out.flush()
    return 0


class Pinger:
    """The pinger in the client's namespace, its lines collected by a thread."""

    def __init__(self, ns: str, seconds: float):
        self.replies: list = []         # (seq, t_send, t_recv), in arrival order
        self.late: list = []            # (seq, lateness_s)
        self.proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "TERM", "ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__),
             "--pinger", VIP, "--seconds", str(seconds)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        if self.proc.stdout.readline().strip() != "READY":
            raise RuntimeError("the pinger did not start")
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            parts = line.split()
            if parts and parts[0] == "R" and len(parts) == 4:
                self.replies.append((int(parts[1]), float(parts[2]), float(parts[3])))
            elif parts and parts[0] == "L" and len(parts) == 3:
                self.late.append((int(parts[1]), float(parts[2])))

    def answered_since(self, t: float) -> list:
        """Replies to echoes sent at or after `t`, by sequence."""
        out = []
        for r in reversed(self.replies):
            if r[1] < t - 1.0:      # replies arrive in about send order; 1 s of slack
                break
            if r[1] >= t:
                out.append(r)
        return sorted(out)

    def flowing(self, seconds: float) -> bool:
        """Every echo of the last `seconds` (but the last 30 ms, in flight) answered."""
        now = time.monotonic()
        got = self.answered_since(now - seconds)
        if not got or now - got[-1][1] > 0.03 or got[0][1] - (now - seconds) > PERIOD_S * 1.5:
            return False
        return all(b[0] - a[0] == 1 for a, b in zip(got, got[1:]))

    def outage(self, t_from: float, t_to: float) -> tuple:
        """(downtime ms, unanswered echoes) of the longest gap between answered
        echoes sent in [t_from, t_to]."""
        got = sorted(r for r in self.replies if t_from <= r[1] <= t_to)
        if len(got) < 2:
            raise RuntimeError("no answered echoes around the trial: the measurement is void")
        worst = max(zip(got, got[1:]), key=lambda p: p[1][1] - p[0][1])
        return max(0.0, (worst[1][1] - worst[0][1] - PERIOD_S) * 1000), worst[1][0] - worst[0][0] - 1

    def late_since(self, first_seq: int) -> int:
        """Echoes from `first_seq` on sent more than LATE_S after their slot."""
        return sum(1 for seq, _ in self.late if seq >= first_seq)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.thread.join(timeout=5)


# -- who holds the VIP: rtnetlink address events ------------------------------------------------

RTMGRP_IPV4_IFADDR = 0x10
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_DONE = 3
IFA_ADDRESS, IFA_LOCAL = 1, 2
_NLMSG = struct.Struct("=LHHLL")
_IFADDR = struct.Struct("=BBBBI")
_NLA = struct.Struct("=HH")


def _vip_events(data: bytes):
    """(present?, done?) for each RTM_NEWADDR/DELADDR of the VIP in a netlink read."""
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length, mtype, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
        if length < _NLMSG.size:
            return
        body = data[offset + _NLMSG.size:offset + length]
        offset += (length + 3) & ~3
        if mtype == NLMSG_DONE:
            yield None, True
            continue
        if mtype not in (RTM_NEWADDR, RTM_DELADDR) or len(body) < _IFADDR.size:
            continue
        attrs, at = {}, _IFADDR.size
        while at + _NLA.size <= len(body):
            alen, akind = _NLA.unpack_from(body, at)
            if alen < _NLA.size:
                break
            attrs[akind & 0x3FFF] = body[at + _NLA.size:at + alen]
            at += (alen + 3) & ~3
        raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
        if raw is not None and len(raw) == 4 and socket.inet_ntoa(raw) == VIP:
            yield mtype == RTM_NEWADDR, False


class Holders:
    """Which of r1 and r2 hold the VIP, from the address events of a netlink
    socket opened inside each namespace; every change with its time."""

    def __init__(self, prefix: str, nodes=("r1", "r2")):
        self.socks = {}
        self.state = {n: False for n in nodes}
        self.history: list = []          # (t, frozenset of holders) after each change
        self.lock = threading.Lock()
        for node in nodes:
            fd = netns.open_fd(prefix + node)
            try:
                with netns.entered(fd):
                    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            finally:
                os.close(fd)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((0, RTMGRP_IPV4_IFADDR))
            # The current state: one dump (events that race it are read after it).
            sock.send(_NLMSG.pack(_NLMSG.size + _IFADDR.size, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
                      + _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0))
            done = False
            while not done:
                for present, end in _vip_events(sock.recv(1 << 16)):
                    done = done or end
                    if present is not None:
                        self.state[node] = present
            self.socks[node] = sock
        self.history.append((time.monotonic(), self.now()))
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def now(self) -> frozenset:
        return frozenset(n for n, held in self.state.items() if held)

    def _run(self) -> None:
        by_fd = {s.fileno(): n for n, s in self.socks.items()}
        while True:
            readable, _, _ = select.select([*self.socks.values(), self.wake_r], [], [])
            t = time.monotonic()
            if self.wake_r in readable:
                return
            for sock in readable:
                node = by_fd[sock.fileno()]
                try:
                    data = sock.recv(1 << 16)
                except OSError:     # ENOBUFS (1 MiB of events unread): a change may be missed
                    continue
                for present, _end in _vip_events(data):
                    if present is not None and self.state[node] != present:
                        with self.lock:
                            self.state[node] = present
                            self.history.append((t, self.now()))

    def first(self, since: float, wanted) -> float | None:
        """The first time at or after `since` when the holders were exactly `wanted`."""
        wanted = frozenset(wanted)
        with self.lock:
            history = list(self.history)
        before = [h for h in history if h[0] < since]
        if before and before[-1][1] == wanted:
            return since
        return next((t for t, held in history if t >= since and held == wanted), None)

    def close(self) -> None:
        os.write(self.wake_w, b"x")
        self.thread.join(timeout=5)
        for s in self.socks.values():
            s.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


class Adverts:
    """The VRRP adverts the client sees on the segment (its namespace joins
    224.0.0.18 on eth0; a bystander, it sends nothing): their arrival times by
    source, to time each trial from the master's last advert."""

    def __init__(self, ns: str):
        fd = netns.open_fd(ns)
        try:
            with netns.entered(fd):
                self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
                index = socket.if_nametoindex("eth0")
        finally:
            os.close(fd)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                             socket.inet_aton("224.0.0.18") + socket.inet_aton("0.0.0.0") + struct.pack("=i", index))
        self.seen: dict = {}        # source -> [(t, priority)]
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            readable, _, _ = select.select([self.sock, self.wake_r], [], [])
            t = time.monotonic()
            if self.wake_r in readable:
                return
            data, (src, _port) = self.sock.recvfrom(2048)
            ihl = (data[0] & 0x0F) * 4
            if len(data) >= ihl + 8 and data[ihl] >> 4 == 3 and data[ihl + 1] == 51:
                self.seen.setdefault(src, []).append((t, data[ihl + 2]))

    def last(self, src: str, before: float):
        """The arrival time of the last advert (priority > 0) from `src` before `before`, or None."""
        for t, priority in reversed(self.seen.get(src, [])):
            if t <= before and priority:
                return t
        return None

    def close(self) -> None:
        os.write(self.wake_w, b"x")
        self.thread.join(timeout=5)
        self.sock.close()
        os.close(self.wake_r)
        os.close(self.wake_w)


RTM_NEWLINK = 16
NLM_F_ACK = 0x4
NLMSG_ERROR = 2
IFF_UP = 0x1
_IFINFO = struct.Struct("=BxHiII")


class LinkSwitch:
    """Sets one interface of one namespace up or down with one rtnetlink
    request from this process (no `ip` to fork): the moment of a cut is known
    to a fraction of a millisecond."""

    def __init__(self, ns: str, ifname: str):
        fd = netns.open_fd(ns)
        try:
            with netns.entered(fd):
                self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
                self.index = socket.if_nametoindex(ifname)
        finally:
            os.close(fd)
        self.sock.bind((0, 0))
        self.sock.settimeout(5)
        self.seq = 0

    def set(self, up: bool) -> float:
        """Returns the time just before the request was sent."""
        self.seq += 1
        body = _IFINFO.pack(socket.AF_UNSPEC, 0, self.index, IFF_UP if up else 0, IFF_UP)
        message = _NLMSG.pack(_NLMSG.size + len(body), RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, self.seq, 0) + body
        t = time.monotonic()
        self.sock.send(message)
        while True:
            data = self.sock.recv(65536)
            _length, mtype, _flags, seq, _pid = _NLMSG.unpack_from(data)
            if seq == self.seq and mtype == NLMSG_ERROR:
                code = struct.unpack_from("=i", data, _NLMSG.size)[0]
                if code:
                    raise OSError(-code, f"set link {'up' if up else 'down'}: {os.strerror(-code)}")
                return t

    def close(self) -> None:
        self.sock.close()


# -- keepalived ---------------------------------------------------------------------------------

def _cmdline(pid: int) -> list:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []






class Keepalived:
    """keepalived (VRRP only, in the foreground, no respawn) in one namespace,
    with its configuration, pid files and log in a directory of its own; it gets
    SIGTERM should this process die (setpriv --pdeathsig)."""

    def __init__(self, ns: str, node: str, directory: Path):
        self.ns, self.node = ns, node
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "keepalived.conf"
        self.vrrp_pidfile = self.dir / "vrrp.pid"
        self.log = self.dir / "keepalived.log"
        self.proc = None
        self.vrrp_pid = None
        self.conf.write_text("\n".join([
            "global_defs {", f"  router_id {ns}", "  vrrp_version 3", "}",
            f"vrrp_instance {GROUP} {{", "  state BACKUP", "  interface eth0", "  virtual_router_id 51",
            f"  priority {PRIORITY[node]}", f"  advert_int {INTERVAL_CS / 100:g}",
            "  virtual_ipaddress {", f"    {VIP}/24 dev eth0", "  }", "}", ""]))

    def start(self) -> None:
        self.vrrp_pidfile.unlink(missing_ok=True)
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                ["setpriv", "--pdeathsig", "TERM", "ip", "netns", "exec", self.ns, "keepalived", "--vrrp",
                 "--dont-fork", "--log-console", "--no-syslog", "--dont-respawn", "--use-file", str(self.conf),
                 "--pid", str(self.dir / "keepalived.pid"), "--vrrp_pid", str(self.vrrp_pidfile),
                 "--checkers_pid", str(self.dir / "checkers.pid"), "--bfd_pid", str(self.dir / "bfd.pid")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                pid = int(self.vrrp_pidfile.read_text().strip())
                if parent_of(pid) == self.proc.pid:
                    self.vrrp_pid = pid
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.01)
        raise RuntimeError(f"keepalived in {self.node} did not start (see {self.log})")

    def _vrrp_ours(self) -> bool:
        return (self.vrrp_pid is not None and alive(self.vrrp_pid)
                and str(self.conf).encode() in _cmdline(self.vrrp_pid))

    def terminate(self) -> None:
        """SIGTERM to the parent: the VRRP process sends priority 0 and removes the VIP."""
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, seconds: float = 10) -> None:
        self.proc.wait(timeout=seconds)

    def cleanup(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
        if self._vrrp_ours():
            os.kill(self.vrrp_pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


# -- the bench ----------------------------------------------------------------------------------

def percentile(values, q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def wait_for(condition, what: str, seconds: float = TRIAL_TIMEOUT_S, step: float = 0.005) -> float:
    deadline = time.monotonic() + seconds
    while True:
        if condition():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {seconds} s: {what}")
        time.sleep(step)


class Bench:
    def __init__(self, trials: int, workdir: Path):
        self.trials = trials
        self.prefix = f"nkvb{os.getpid()}-"
        self.workdir = workdir
        self.env = dict(os.environ, NETKEEL_STATE_DIR=str(workdir / "state"))
        self.manifest = LAB
        self.pinger = None
        self.holders = None
        self.keepalived: dict = {}
        self.r1_mac = None
        self.results: dict = {}         # scenario -> list of dicts
        self.adverts = None
        self.switch = None
        # Each scenario's k-th trial starts this long after one of r1's adverts
        # (uniform over the interval, the same phases for every scenario): the
        # implementations meet the same cuts.
        rng = random.Random(20260511)
        self.phases = [rng.uniform(0, INTERVAL_CS / 100) for _ in range(trials)]

    def ns(self, node: str) -> str:
        return self.prefix + node

    def netkeel(self, command: str, manifest, *args: str) -> None:
        argv = [NETKEEL, command, str(manifest), "--ns-prefix", self.prefix, *args]
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"netkeel {command} failed: {result.stderr.strip() or result.stdout.strip()}")

    def ip(self, node: str, *args: str) -> str:
        return subprocess.run(["ip", "-n", self.ns(node), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout

    def client_entry_is_r1(self) -> bool:
        return self.r1_mac in self.ip("client", "neigh", "show", VIP)

    # -- setup / teardown ---------------------------------------------------------------------

    def setup(self) -> None:
        self.netkeel("apply", LAB)
        self.r1_mac = json.loads(self.ip("r1", "-j", "link", "show", "eth0"))[0]["address"]
        self.holders = Holders(self.prefix)
        self.adverts = Adverts(self.ns("client"))
        self.switch = LinkSwitch(self.ns("sw"), "sw_r1")
        budget = 120 + self.trials * 30
        self.pinger = Pinger(self.ns("client"), budget)

    def teardown(self) -> None:
        for ka in self.keepalived.values():
            try:
                ka.cleanup()
            except Exception as exc:  # noqa: BLE001 - keep cleaning up
                print(f"cleanup: keepalived in {ka.node}: {exc}", file=sys.stderr)
        if self.pinger is not None:
            self.pinger.stop()
        for part in (self.holders, self.adverts, self.switch):
            if part is not None:
                part.close()
        try:
            self.netkeel("destroy", self.manifest)
        except Exception as exc:  # noqa: BLE001
            print(f"cleanup: {exc}", file=sys.stderr)
        remove_all(self.prefix)

    # -- trials -------------------------------------------------------------------------------

    def steady(self) -> None:
        """r1 alone holds the VIP, the client's entry names r1, echoes answered."""
        wait_for(lambda: self.holders.now() == {"r1"}, "r1 the one holder of the VIP", 10)
        wait_for(self.client_entry_is_r1, "the client's neighbour entry naming r1", 10, step=0.02)
        wait_for(lambda: self.pinger.flowing(STEADY_S), "echoes answered", 10)

    def at_phase(self, phase: float, fire) -> float:
        """fire() `phase` seconds after r1's next advert; returns fire()'s time."""
        now = time.monotonic()
        wait_for(lambda: (self.adverts.last(R1, time.monotonic()) or 0) > now, "an advert from r1", 2, step=0.001)
        target = self.adverts.last(R1, time.monotonic()) + phase
        while True:
            left = target - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.002) if left < 0.004 else left - 0.002)
        return fire()

    def measure(self, scenario: str, t0: float) -> dict:
        """After the event at t0: r2 holds the VIP, echoes flow again; the figures."""
        took = wait_for(lambda: "r2" in self.holders.now(), f"{scenario}: r2 did not take the VIP")
        wait_for(lambda: self.pinger.flowing(AFTER_S) and self.pinger.answered_since(took),
                 f"{scenario}: the client's echoes were not answered again")
        downtime, lost = self.pinger.outage(t0 - STEADY_S, time.monotonic())
        first_r2 = next(t for t, held in self.holders.history if t >= t0 and "r2" in held)
        exactly_one = self.holders.first(t0, {"r2"})
        without_r1 = next((t for t, held in self.holders.history if t >= t0 and "r1" not in held), None)
        last_advert = self.adverts.last(R1, t0)
        # The last of r1's adverts that got through (one sent just as the port went down may arrive after t0).
        got_through = self.adverts.last(R1, first_r2)
        return {"downtime_ms": downtime, "lost": lost, "takeover_ms": (first_r2 - t0) * 1000,
                "phase_ms": (t0 - last_advert) * 1000, "after_advert_ms": (first_r2 - got_through) * 1000,
                "r2_advert_ms": (next((x for x, p in self.adverts.seen.get(R2, []) if x >= t0 and p), t0) - t0) * 1000,
                "one_holder_ms": (exactly_one - t0) * 1000 if exactly_one is not None else None,
                "r1_withdrawn_ms": (without_r1 - t0) * 1000 if without_r1 is not None else None}

    def run_trials(self, scenario: str, prepare, restore) -> None:
        """`prepare()` returns the event: a callable that makes it happen and
        returns the time it did."""
        rows = self.results.setdefault(scenario, [])
        for k in range(self.trials):
            self.steady()
            first_seq = self.pinger.replies[-1][0] if self.pinger.replies else 0
            t0 = self.at_phase(self.phases[k], prepare())
            row = self.measure(scenario, t0)
            row["late_echoes"] = self.pinger.late_since(first_seq)
            rows.append(row)
            # r1 back: the one holder, named by the client, echoes answered; the
            # outage this return caused, if any (a client left pointing at r2
            # after r2 gave the VIP up waits for its neighbour entry to fail: ~8 s).
            start = time.monotonic()
            restore()
            wait_for(lambda: self.holders.now() == {"r1"}, f"{scenario}: r1 the one holder again", 10)
            wait_for(self.client_entry_is_r1, f"{scenario}: the client's neighbour entry naming r1 again", 15,
                     step=0.01)
            wait_for(lambda: self.pinger.flowing(AFTER_S), f"{scenario}: echoes answered again", 15)
            row["restored_ms"] = (time.monotonic() - start) * 1000
            row["return_outage_ms"], _ = self.pinger.outage(start - STEADY_S, time.monotonic())
            print(f"  {scenario} {k + 1}/{self.trials}: at {row['phase_ms']:.0f} ms after an advert of r1; "
                  f"downtime {row['downtime_ms']:.0f} ms ({row['lost']} echoes lost); r2 holds the VIP after "
                  f"{row['takeover_ms']:.0f} ms, its first advert after {row['r2_advert_ms']:.0f} ms "
                  f"({row['after_advert_ms']:.0f} ms after r1's last); r1 back: {row['return_outage_ms']:.0f} ms "
                  f"downtime, named by the client after {row['restored_ms']:.0f} ms", flush=True)

    def r1_speaker_pid(self) -> int:
        ns = self.ns("r1")
        said = speakers.running(ns, GROUP)
        if said is None:
            raise RuntimeError("r1's speaker is not running")
        pid = said["pid"]
        argv = _cmdline(pid)
        if b"toolkit.vrrp.speaker" not in argv or speakers.config_path(ns, GROUP).encode() not in argv:
            raise RuntimeError(f"pid {pid} is not r1's speaker")
        return pid

    def cut(self):
        return lambda: self.switch.set(False)

    def uncut(self) -> None:
        self.switch.set(True)

    def signal_speaker(self, signum):
        def prepare():
            pid = self.r1_speaker_pid()

            def fire():
                t = time.monotonic()
                os.kill(pid, signum)
                return t
            return fire
        return prepare

    def reapply(self) -> None:
        self.netkeel("apply", self.manifest)

    def run(self) -> None:
        self.setup()
        print(f"lab {LAB.name} under prefix {self.prefix}; {self.trials} trials per scenario", flush=True)
        self.run_trials("netkeel sigkill", self.signal_speaker(signal.SIGKILL), self.reapply)
        self.run_trials("netkeel graceful", self.signal_speaker(signal.SIGTERM), self.reapply)
        self.run_trials("netkeel cut", self.cut, self.uncut)

        # keepalived: netkeel's speakers stopped by a manifest without VIP groups.
        text = LAB.read_text()
        plain = self.workdir / "vrrp-pair-plain.yaml"
        plain.write_text(text[:text.index("\nvips:")] + "\n")
        self.manifest = plain
        self.netkeel("apply", plain)
        wait_for(lambda: not self.holders.now() and not speakers.groups(self.ns("r1"))
                 and not speakers.groups(self.ns("r2")), "netkeel's speakers stopped")
        for node in ("r1", "r2"):
            self.keepalived[node] = Keepalived(self.ns(node), node, self.workdir / f"keepalived-{node}")
            self.keepalived[node].start()

        def ka_stop():
            def fire():
                t = time.monotonic()
                self.keepalived["r1"].terminate()
                return t
            return fire

        def ka_restart():
            self.keepalived["r1"].wait()
            self.keepalived["r1"].start()

        self.run_trials("keepalived cut", self.cut, self.uncut)
        self.run_trials("keepalived graceful", ka_stop, ka_restart)


def report(bench: Bench) -> str:
    r = bench.results
    skew_r2 = skew_time_ms(PRIORITY["r2"], INTERVAL_CS)
    mdi_r2 = master_down_interval_ms(PRIORITY["r2"], INTERVAL_CS)
    print()
    print(f"RFC 9568 for r2 (priority {PRIORITY['r2']}) as backup, adverts every {INTERVAL_CS * 10} ms: "
          f"Skew_Time {skew_r2:.1f} ms, Master_Down_Interval {mdi_r2:.1f} ms")
    print(f"  a cut: r2 takes over {mdi_r2 - INTERVAL_CS * 10:.0f}-{mdi_r2:.0f} ms after it (Master_Down_Interval "
          f"after r1's last advert); a graceful stop or a SIGKILL (priority 0): Skew_Time after it")
    print(f"downtime = time between the sends of the last answered echo before the outage and the first after, "
          f"minus {PERIOD_S * 1000:.0f} ms (percentiles nearest-rank)")
    print(f"each trial k of every scenario starts the same phase after one of r1's adverts "
          f"(uniform 0-{INTERVAL_CS * 10} ms, seeded); for a cut, r2 should hold the VIP Master_Down_Interval after "
          f"r1's last advert")
    for scenario, rows in r.items():
        d = [x["downtime_ms"] for x in rows]
        t = [x["takeover_ms"] for x in rows]
        a = [x["after_advert_ms"] for x in rows]
        back = [x["restored_ms"] for x in rows]
        gap = [x["return_outage_ms"] for x in rows]
        print(f"{scenario:20s} downtime p50 {percentile(d, 50):6.1f}  p99 {percentile(d, 99):6.1f}  "
              f"max {max(d):6.1f} ms | r2 holds after p50 {percentile(t, 50):6.1f}  p99 {percentile(t, 99):6.1f}  "
              f"max {max(t):6.1f} ms" + (f"; after r1's last advert p50 {percentile(a, 50):6.1f}  max {max(a):6.1f} ms"
                                        if scenario.endswith("cut") else ""))
        print(f"{'':20s} r1 back ({RESTORE[scenario]}): downtime p50 {percentile(gap, 50):.0f}  "
              f"max {max(gap):.0f} ms ({sum(1 for g in gap if g > 1000)} over 1 s); the client's entry names r1 "
              f"after p50 {percentile(back, 50):.0f}  max {max(back):.0f} ms")
        if scenario == "netkeel sigkill":
            one = [x["one_holder_ms"] for x in rows]
            gone = [x["r1_withdrawn_ms"] for x in rows]
            print(f"{'':20s} exactly one holder after p50 {percentile(one, 50):.1f}  p99 {percentile(one, 99):.1f}  "
                  f"max {max(one):.1f} ms; r1's VIP withdrawn after p50 {percentile(gone, 50):.1f}  "
                  f"max {max(gone):.1f} ms")
    late = sum(x["late_echoes"] for rows in r.values() for x in rows)
    worst_late = max((s for _, s in bench.pinger.late), default=0.0) * 1000
    print(f"pinger: {late} echoes sent more than {LATE_S * 1000:.0f} ms after their slot during the trials "
          f"(worst {worst_late:.1f} ms over the whole run)")
    cut = [x["downtime_ms"] for x in r["netkeel cut"]]
    ka_cut = [x["downtime_ms"] for x in r["keepalived cut"]]
    sigkill_heal = [x["one_holder_ms"] for x in r["netkeel sigkill"]]
    a, b, d = percentile(cut, 50), percentile(cut, 99), percentile(ka_cut, 50)
    graceful = [x["downtime_ms"] for x in r["netkeel graceful"]]
    print(f"targets: ratio <= 1.0: {a / d:.2f}; cut p99 {b:.0f} <= {mdi_r2 + 100:.0f} ms: {b <= mdi_r2 + 100}; "
          f"sigkill healed p99 {percentile(sigkill_heal, 99):.0f} <= {mdi_r2 + 100:.0f} ms: "
          f"{percentile(sigkill_heal, 99) <= mdi_r2 + 100}; graceful p99 {percentile(graceful, 99):.0f} <= "
          f"{skew_r2 + 100:.0f} ms: {percentile(graceful, 99) <= skew_r2 + 100}")
    return (f"trials={bench.trials} cut_p50_ms={a:.0f} cut_p99_ms={b:.0f} "
            f"graceful_p50_ms={percentile(graceful, 50):.0f} "
            f"sigkill_p50_ms={percentile([x['downtime_ms'] for x in r['netkeel sigkill']], 50):.0f} "
            f"keepalived_cut_p50_ms={d:.0f} ratio={a / d:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per scenario (default 20)")
    parser.add_argument("--pinger", metavar="ADDRESS", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=60, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pinger:
        return pinger(args.pinger, args.seconds)
    if os.geteuid() != 0:
        print("vrrp_failover: needs root (it builds network namespaces)", file=sys.stderr)
        return 1
    if not 1 <= args.trials <= 1000:
        print("vrrp_failover: --trials 1-1000", file=sys.stderr)
        return 1
    for tool in ("keepalived", "setpriv", "ip"):
        if shutil.which(tool) is None:
            print(f"vrrp_failover: {tool} is not installed (scripts/setup installs keepalived)", file=sys.stderr)
            return 1

    def terminated(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    workdir = Path(tempfile.mkdtemp(prefix="netkeel-vrrp-bench-"))
    bench = Bench(args.trials, workdir)
    try:
        bench.run()
        last = report(bench)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # a second Ctrl-C does not cut the cleanup short
        try:
            bench.teardown()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            shutil.rmtree(workdir, ignore_errors=True)
    print(last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
