#!/usr/bin/env python3
"""Benchmark: do faults do what they declare, and how fast do they come and go?

On a two-node lab built with `netkeel apply` (unique namespace prefix, a state
directory in a temporary directory, both removed at the end even on failure or
Ctrl-C), for each fault backend this kernel has (the capability probe of
toolkit/kernel/chaos.py), the fault on node a's egress:

    nft    loss 10% and 40%, duplicate 10%: a paced, sequence-numbered UDP
           stream of --packets datagrams from node a to node b (10,000/s);
           lost and duplicated sequence numbers are counted at b
    tbf    rate 10 Mbit/s: fixed-size UDP frames sent as fast as the socket
           lets for a few seconds; the frame rate at b, in bits per second of
           Ethernet frames (what tc's rates count), after a warm-up
    netem  all of the above, plus delay 50 ms and 50 ms with 10 ms jitter
           (median ping RTT minus the median RTT without the fault; 500
           pings 10 ms apart, 1,500 with the jitter: the median of a uniform
           50 +- 10 ms varies by 0.45 ms (one standard deviation) over 500
           samples, 0.26 ms over 1,500, against a 2 ms tolerance)
    userspace (NFQUEUE through iptables-nft and the worker of
           toolkit/kernel/nfqworker.py; measured where iptables is installed
           and the probe finds `nfqueue`, else the output says why not):
           delay 50 ms and 50 ms with 10 ms jitter, as netem's; loss 10% and
           40%, as nft's; and
           reorder-25   `delay: 10ms, reorder: 25%`: the share of the delivered
                        datagrams that went at once, which is what the worker
                        promises (netem's meaning: each packet goes at once with
                        the reorder probability, the others wait the delay). The
                        stream's datagrams carry their send time; b takes the
                        kernel's receive time (SO_TIMESTAMPNS), one clock on one
                        machine: "at once" is a one-way time under half the
                        delay (the held ones take at least the delay, as there
                        is no jitter; those at once take a fraction of a ms).
                        Also printed: how many arrived before one sent earlier
           corrupt-5    `corrupt: 5%`: the share of datagrams not delivered
                        intact: those b's kernel dropped (the worker flips one
                        bit past the IP header, so the UDP checksum fails) plus
                        those delivered damaged (each datagram carries a CRC-32).
                        A damaged datagram handed to the application is not what
                        netem does (its receiver's checksum drops it too): any
                        makes the row's ratio infinite
           worker-10kpps  `delay: 1ms` (the smallest delay used here) and a
                        stream of 10,000 datagrams/s for 3 s: the share lost
                        enters T; the one-way time minus the 1 ms delay (p50,
                        p99, max) is printed beside the same stream's without a
                        fault, and is not in T

Every fault is injected with the real CLI (`netkeel chaos FILE`, with a fault
file written here naming the backend), and its traffic runs inside the lab's
namespaces (`ip netns exec`); nothing is sent from the root namespace, and
every probe is bounded in count and time. The lab has static neighbour
entries, so no fault ever meets an ARP exchange. After each revert, both
nodes are checked for what a fault could leave: chaos nft tables, mangle
tables and NFQUEUE rules, netem/tbf qdiscs, a worker serving the lab.

netem: where this kernel lacks sch_netem and the kernel test tier is installed
(tests/vm: Debian's kernel under qemu), the netem measurements run in that VM
(this script, with --backends netem, inside the guest); otherwise the output
says that netem was not measured, and why.

Time to inject and revert: the wall time of the whole `netkeel chaos FILE`
process (it returns only after it checked that the kernel objects are in
place, so this is an upper bound of the time to effect) and of `netkeel chaos
revert --fault NAME`, each checked afterwards from here; medians over
--rounds injections per backend (nft loss-40, tbf rate-10mbit, userspace
delay-50: starting the worker and waiting for its heartbeat, then the
iptables rules; the revert removes the rules, stops the worker and removes
the mangle tables), printed per backend, after one untimed injection that
pays for the capability probe. Not timed: netem in the VM (its times under
software emulation say nothing of a real machine). The revert waits until
the fault's keeper has started (its start-up would otherwise compete with
it), and the next round until the keeper has exited. Beside them: their CPU
time, and the wall time of a process that only imports what every netkeel
command imports (invoke, rich, yaml, fastjsonschema), the floor under both on
this machine at that moment.

Tolerances: loss and duplicate within 2 points; reorder within 2 points (a
share of 10,000 draws: the binomial standard deviation at 25% is 0.43 points,
so 2 points is over 4.5 of them, and the at-once/held split has a 5 ms margin
on either side); corrupt within 1 point (binomial deviation at 5% over 10,000:
0.22 points, so 1 point is 4.5 of them); worker delivery: at most 0.5% of the
datagrams lost; delay within 1 ms + 2% of the declared delay; rate within 5%.
The ratio of a measurement is |measured - declared| / tolerance; T is the
worst over every backend's rows (the VM's netem rows too). The last line:

    faults=N worst_tolerance_ratio=T inject_ms_p50=I revert_ms_p50=V

N counts the rows; I and V are the medians over all the timed rounds of all
the backends timed here (nft, tbf and userspace where present), together.

    .venv/bin/python bench/chaos_fidelity.py [--packets 10000] [--rounds 7] [--no-vm]
        [--backends nft,tbf,netem,userspace]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
NETKEEL = str(Path(sys.executable).with_name("netkeel"))
TOPOLOGY = "chaosfid"
A, B = "a", "b"
DEV = "eth0"
ADDR_A, ADDR_B = "10.77.0.1", "10.77.0.2"
MAC_A, MAC_B = "02:00:00:00:77:01", "02:00:00:00:77:02"
UDP_PORT, RATE_PORT = 47001, 47002
FRAME_OVERHEAD = 8 + 20 + 14      # UDP, IPv4 and Ethernet headers: what tc's rates count
RATE_PAYLOAD = 1400
LOSS_PPS = 10_000                 # pacing of the loss/duplicate stream (no queue ever fills)
FAULT_DURATION = "300s"           # reverted explicitly long before; the keeper's backstop
LAB = f"""\
name: {TOPOLOGY}
description: chaos fidelity benchmark (bench/chaos_fidelity.py)
nodes:
  {A}:
    neighbours: [{{address: {ADDR_B}, mac: "{MAC_B}", interface: {DEV}}}]
  {B}:
    neighbours: [{{address: {ADDR_A}, mac: "{MAC_A}", interface: {DEV}}}]
links:
  - endpoints:
      - {{node: {A}, interface: {DEV}, mac: "{MAC_A}", addresses: [{ADDR_A}/24]}}
      - {{node: {B}, interface: {DEV}, mac: "{MAC_B}", addresses: [{ADDR_B}/24]}}
"""

# (name, kind, declared value, unit, fault file body)
LOSS_FAULTS = [
    ("loss-10", "loss", 10.0, "%", "loss: 10%"),
    ("loss-40", "loss", 40.0, "%", "loss: 40%"),
    ("duplicate-10", "duplicate", 10.0, "%", "duplicate: 10%"),
]
RATE_FAULT = ("rate-10mbit", "rate", 10e6, "bit/s", "rate: 10mbit")
DELAY_FAULTS = [
    ("delay-50", "delay", 50.0, "ms", "delay: 50ms"),
    ("delay-50-jitter-10", "delay", 50.0, "ms", "delay: {time: 50ms, jitter: 10ms}"),
]
REORDER_DELAY_MS = 10.0
USERSPACE_ONLY = [
    # the share of datagrams sent at once (one-way time under half the delay), of those delivered
    ("reorder-25", "reorder", 25.0, "%", f"delay: {REORDER_DELAY_MS:g}ms\nreorder: 25%"),
    # the share of datagrams that never arrived intact (the receiver's UDP checksum drops them)
    ("corrupt-5", "corrupt", 5.0, "%", "corrupt: 5%"),
    # the worker at THROUGHPUT_PPS through its smallest delay: the share of datagrams lost
    ("worker-10kpps", "delivery", 0.0, "%", "delay: 1ms"),
]
THROUGHPUT_PPS, THROUGHPUT_S, THROUGHPUT_DELAY_MS = 10_000, 3.0, 1.0
# What each backend is asked to do here.
PLAN = {
    "nft": [f for f in LOSS_FAULTS],
    "tbf": [RATE_FAULT],
    "netem": LOSS_FAULTS + [RATE_FAULT] + DELAY_FAULTS,
    "userspace": DELAY_FAULTS + LOSS_FAULTS[:2] + USERSPACE_ONLY,
}
# The capability of toolkit/kernel/chaos.py's probe each backend needs.
CAPABILITY = {"nft": "nft", "tbf": "tbf", "netem": "netem", "userspace": "nfqueue"}
TIMED = {"nft": "loss-40", "tbf": "rate-10mbit", "netem": "delay-50", "userspace": "delay-50"}


def tolerance(kind: str, declared: float) -> float:
    if kind in ("loss", "duplicate", "reorder"):
        return 2.0                       # points, over 10,000 packets
    if kind == "corrupt":
        return 1.0                       # points, over 10,000 packets
    if kind == "delivery":
        return 0.5                       # points of datagrams lost
    if kind == "delay":
        return 1.0 + 0.02 * declared     # ms
    return 0.05 * declared               # rate


# -- probes: this file run inside a namespace (`--probe MODE ...`), standard library only ---------

STAMP = struct.Struct("!IQ")      # sequence number, the sender's CLOCK_REALTIME in ns
END_SEQ = 0xFFFFFFFF
SO_TIMESTAMPNS = 35               # Linux (asm-generic/socket.h); SCM_TIMESTAMPNS is the same number


def datagram(seq: int, sent_ns: int) -> bytes:
    """64 bytes: sequence number, send time, a filler, a CRC-32 of all that (so a
    datagram damaged on the way and yet delivered is seen as damaged)."""
    body = STAMP.pack(seq, sent_ns) + bytes([seq % 251]) * (60 - STAMP.size)
    return body + struct.pack("!I", zlib.crc32(body))


def probe_udp_recv(port: int, count: int, seconds: float, detail: int = 0) -> dict:
    """Count sequence numbers 0..count-1 delivered intact: unique, duplicated,
    damaged (CRC-32 wrong). With `detail`, also [seq, one-way us] of each intact
    arrival in arrival order: the kernel's receive time of the datagram
    (SO_TIMESTAMPNS, so not this process's scheduling) minus its send time (one
    clock: sender and receiver are on this machine). Ends after an end marker,
    after 1 s without traffic once traffic came, or at the deadline."""
    seen = bytearray(count)
    duplicates = datagrams = strays = damaged = 0
    arrivals = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:  # room for every datagram even if this process is slow to read (root: FORCE)
            s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(("0.0.0.0", port))
        print("READY", flush=True)
        deadline = time.monotonic() + seconds
        idle = seconds
        while (left := min(deadline - time.monotonic(), idle)) > 0:
            s.settimeout(left)
            try:
                data, ancillary, _, _ = s.recvmsg(2048, 64)
            except socket.timeout:
                break
            idle = 1.0
            if len(data) != 64:
                strays += 1
                continue
            if zlib.crc32(data[:60]) != struct.unpack_from("!I", data, 60)[0]:
                damaged += 1
                continue
            seq, sent_ns = STAMP.unpack_from(data)
            if seq == END_SEQ:
                break
            if seq >= count:
                strays += 1
                continue
            datagrams += 1
            if seen[seq]:
                duplicates += 1
            else:
                seen[seq] = 1
            if detail:
                received_ns = next((sec * 1_000_000_000 + nsec for level, kind, raw in ancillary
                                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS
                                    for sec, nsec in [struct.unpack("=qq", raw[:16])]), time.time_ns())
                arrivals.append([seq, (received_ns - sent_ns) // 1000])
    out = {"unique": sum(seen), "duplicates": duplicates, "datagrams": datagrams, "strays": strays,
           "damaged": damaged}
    if detail:
        out["arrivals"] = arrivals
    return out


def probe_udp_send(host: str, port: int, count: int, pps: int) -> dict:
    """Send sequence numbers 0..count-1 at `pps` (bursts of 50, then a sleep:
    a spinning sender would take a CPU the userspace worker needs), then end
    markers."""
    errors = sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        start = time.monotonic()
        for seq in range(count):
            if seq % 50 == 0:
                ahead = start + seq / pps - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            sent += 1
            try:
                s.sendto(datagram(seq, time.time_ns()), (host, port))
            except OSError:  # a drop in this namespace's own output path says so (EPERM)
                errors += 1
        elapsed = time.monotonic() - start
        time.sleep(0.3)  # let a delayed or queued tail arrive before the markers
        for _ in range(20):
            try:
                s.sendto(datagram(END_SEQ, 0), (host, port))
            except OSError:
                pass
            time.sleep(0.01)
    return {"sent": sent, "errors": errors, "seconds": elapsed}


def probe_rate_recv(port: int, seconds: float, warmup: float) -> dict:
    """Arrival times of fixed-size frames; the rate from `warmup` after the
    first one to the last one (the token bucket's initial burst left out)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", port))
        print("READY", flush=True)
        deadline = time.monotonic() + seconds
        first = window_start = last = None
        frames = in_window = size = 0
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(min(left, 2.0) if first is not None else left)
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            now = time.monotonic()
            if data[:1] == b"E":
                break
            frames += 1
            size = len(data)
            if first is None:
                first = now
            if now - first >= warmup:
                if window_start is None:
                    window_start = now   # this frame starts the clock; those after it count
                else:
                    in_window += 1
                last = now
    span = (last - window_start) if window_start is not None and last is not None else 0.0
    bits = in_window * (size + FRAME_OVERHEAD) * 8
    return {"frames": frames, "in_window": in_window, "window_s": span,
            "bits_per_s": bits / span if span > 0 else 0.0, "frame_bytes": size + FRAME_OVERHEAD}


def probe_rate_send(host: str, port: int, seconds: float, payload: int) -> dict:
    """Send frames of `payload` bytes as fast as the socket takes them, for `seconds`."""
    block = b"x" * payload
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                s.sendto(block, (host, port))
                sent += 1
            except OSError:
                time.sleep(0.001)
        time.sleep(0.2)
        for _ in range(10):
            try:
                s.sendto(b"E", (host, port))
            except OSError:
                pass
            time.sleep(0.01)
    return {"sent": sent}


PROBES = {"udp-recv": (probe_udp_recv, (int, int, float, int)), "udp-send": (probe_udp_send, (str, int, int, int)),
          "rate-recv": (probe_rate_recv, (int, float, float)), "rate-send": (probe_rate_send, (str, int, float, int))}


def run_probe(argv: list) -> int:
    fn, types = PROBES[argv[0]]
    print(json.dumps(fn(*(t(a) for t, a in zip(types, argv[1:])))), flush=True)
    return 0


# -- the lab ---------------------------------------------------------------------------------

class Bench:
    """One lab under a unique prefix and a temporary state directory; `close()`
    reverts every fault, stops keepers, destroys the lab and removes the files."""

    def __init__(self, workdir: Path, slow: bool = False):
        self.workdir = workdir
        self.prefix = f"nkcf{os.getpid() % 100000}-"
        self.state = workdir / "state"
        self.env = dict(os.environ, NETKEEL_STATE_DIR=str(self.state))
        self.lab = workdir / "lab.yaml"
        self.lab.write_text(LAB)
        self.children: list = []
        self.keepers: set = set()
        self.slow = slow  # inside the VM: Python takes seconds to start
        self.built = False
        self.last_cpu = 0.0

    def ns(self, node: str) -> str:
        return self.prefix + node

    def netkeel(self, *args: str, timeout: float = 120) -> tuple:
        """(wall seconds, CompletedProcess) of one netkeel command, as a user runs it."""
        before = _children_cpu()
        start = time.perf_counter()
        result = subprocess.run([NETKEEL, *args], capture_output=True, text=True, env=self.env, cwd=ROOT,
                                timeout=timeout * (5 if self.slow else 1))
        seconds = time.perf_counter() - start
        self.last_cpu = _children_cpu() - before  # its CPU time and its children's (tc), not the keeper's
        return seconds, result

    def must(self, *args: str) -> tuple:
        seconds, result = self.netkeel(*args)
        if result.returncode != 0:
            raise RuntimeError(f"netkeel {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return seconds, result

    def build(self) -> None:
        self.built = True  # from here on, close() destroys whatever part of it exists
        self.must("apply", str(self.lab), "--ns-prefix", self.prefix)
        ping = self.exec(A, ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", ADDR_B], timeout=30)
        if ping.returncode != 0:
            raise RuntimeError(f"the bench lab does not pass traffic:\n{ping.stdout}{ping.stderr}")

    def exec(self, node: str, argv: list, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns(node), *argv], capture_output=True, text=True,
                              timeout=timeout * (5 if self.slow else 1))

    def start_probe(self, node: str, *args) -> subprocess.Popen:
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(node), sys.executable, str(HERE), "--probe",
                                 *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.children.append(proc)
        return proc

    def wait_ready(self, proc: subprocess.Popen) -> None:
        line = proc.stdout.readline()  # bounded: the probe's own deadline ends it
        if line.strip() != "READY":
            raise RuntimeError(f"probe did not start: {line!r} {proc.stderr.read()}")

    def finish(self, proc: subprocess.Popen, timeout: float) -> dict:
        try:
            out, err = proc.communicate(timeout=timeout * (5 if self.slow else 1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError("probe overran its time") from None
        lines = [l for l in out.splitlines() if l.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"probe failed ({proc.returncode}): {err.strip()[-500:]}")
        return json.loads(lines[-1])

    # -- faults --------------------------------------------------------------------------------
    def fault_file(self, name: str, backend: str, body: str) -> Path:
        path = self.workdir / "faults" / f"{backend}-{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"description: bench {name} by {backend}\ntopology: {TOPOLOGY}\nbackend: {backend}\n"
                        f"duration: {FAULT_DURATION}\ntarget: {{node: {A}, interface: {DEV}, direction: egress}}\n"
                        f"{body}\n")
        return path

    def inject(self, path: Path) -> float:
        seconds, _ = self.must("chaos", str(path), "--ns-prefix", self.prefix)
        self.keepers |= self.lease_keepers()
        return seconds

    def revert(self, path: Path) -> float:
        seconds, _ = self.must("chaos", "revert", "--fault", path.stem)
        return seconds

    def lease_keepers(self) -> set:
        found = set()
        for lease in (self.state / "leases").glob("*.json"):
            try:
                found.add(int(json.loads(lease.read_text()).get("keeper") or 0))
            except (OSError, ValueError):
                continue
        return found - {0}

    def wait_keeper_idle(self, timeout: float = 5.0) -> None:
        """Until the keepers of the active leases have started and sleep (their CPU time
        stops growing for 0.2 s), bounded."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            now = sum(_cpu_ticks(pid) for pid in self.lease_keepers())
            if now == last:
                return
            last = now
            time.sleep(0.2)

    def wait_keepers(self, timeout: float = 10.0) -> None:
        """Until the keepers this bench caused have exited (bounded)."""
        deadline = time.monotonic() + timeout * (5 if self.slow else 1)
        while self.keepers and time.monotonic() < deadline:
            self.keepers = {pid for pid in self.keepers if _is_keeper(pid, self.state)}
            time.sleep(0.02)

    def residue(self) -> str:
        """What faults left in either node (egress loss drops at the far end): chaos
        nft tables, the mangle tables iptables made for the userspace backend (the
        lab has none of its own) and their NFQUEUE rules, qdiscs other than the
        default, and userspace workers serving a namespace of this lab."""
        left = []
        for node in (A, B):
            tables = self.exec(node, ["nft", "list", "tables"], timeout=10).stdout
            left += [f"{node}: {t}" for t in tables.splitlines()
                     if "netkeel_chaos_" in t or t.split()[2:3] == ["mangle"]]
            for tool in ("iptables", "ip6tables") if shutil.which("iptables") else ():
                rules = self.exec(node, [tool, "-w", "5", "-t", "mangle", "-S"], timeout=10).stdout
                left += [f"{node}: {r}" for r in rules.splitlines() if "NFQUEUE" in r]
            qdisc = subprocess.run(["tc", "-n", self.ns(node), "qdisc", "show", "dev", DEV], capture_output=True,
                                   text=True, timeout=10).stdout
            left += [f"{node}: {q}" for q in qdisc.splitlines() if q.split()[1:2] and q.split()[1] in ("netem", "tbf")]
        left += [f"worker pid {pid}" for pid in self.workers()]
        return "; ".join(left)

    def workers(self) -> list:
        """Userspace workers (toolkit.kernel.nfqworker) serving this lab's namespaces."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
                with open(f"/proc/{entry}/stat") as f:
                    zombie = f.read().rpartition(")")[2].split()[0] == "Z"
            except OSError:
                continue
            if not zombie and b"toolkit.kernel.nfqworker" in argv and b"--netns" in argv and \
                    argv[argv.index(b"--netns") + 1:][:1] in ([self.ns(A).encode()], [self.ns(B).encode()]):
                found.append(int(entry))
        return found

    def close(self) -> None:
        for proc in self.children:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        try:
            if self.state.exists():
                self.netkeel("chaos", "revert", "--all", timeout=60)
                self.keepers |= self.lease_keepers()
                self.wait_keepers(5)
        finally:
            for pid in self.keepers:  # still running after the revert: ours, ended by pid
                if _is_keeper(pid, self.state):
                    os.kill(pid, signal.SIGKILL)
            for pid in self.workers():  # a userspace worker the revert missed: this lab's, ended by pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self.built:
                self.netkeel("destroy", str(self.lab), "--ns-prefix", self.prefix, timeout=120)
            _remove_namespaces(self.prefix)


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def _is_keeper(pid: int, state: Path) -> bool:
    """Whether `pid` is still a keeper of this bench's state directory (not a reused pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"toolkit.cli.keeper" in argv and str(state).encode() in argv


def _remove_namespaces(prefix: str) -> None:
    """Whatever namespaces under our prefix survived `destroy` (a run cut short)."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        if name.startswith(prefix):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


# -- measurements ------------------------------------------------------------------------------

def measure_stream(bench: Bench, packets: int, pps: int = LOSS_PPS, detail: bool = False) -> dict:
    """Lost, duplicated and damaged sequence numbers of one paced stream from a
    to b; with `detail`, each intact arrival's [seq, one-way us] in arrival order."""
    span = packets / pps
    recv = bench.start_probe(B, "udp-recv", UDP_PORT, packets, span + 60, int(detail))
    bench.wait_ready(recv)
    sent = bench.finish(bench.start_probe(A, "udp-send", ADDR_B, UDP_PORT, packets, pps), span + 60)
    got = bench.finish(recv, span + 70)
    return {"n": packets, "lost": packets - got["unique"], "duplicates": got["duplicates"],
            "damaged": got["damaged"], "send_errors": sent["errors"], "strays": got["strays"],
            "send_s": sent["seconds"], "loss_pct": 100 * (packets - got["unique"]) / packets,
            "duplicate_pct": 100 * got["duplicates"] / packets, "arrivals": got.get("arrivals", [])}


def overtakers(order: list) -> int:
    """How many datagrams arrived before one sent earlier than them."""
    count, lowest_after = 0, float("inf")
    for seq in reversed(order):
        if seq > lowest_after:
            count += 1
        lowest_after = min(lowest_after, seq)
    return count


def measure_reorder(bench: Bench, packets: int, delay_ms: float) -> dict:
    """netem's reorder as the worker promises it (nfqworker.Schedule.arrive): a
    share of the packets goes at once, the others wait the delay. A datagram
    went at once when its one-way time is under half the delay (the others take
    at least the delay: no jitter here). The share is of the datagrams delivered."""
    m = measure_stream(bench, packets, detail=True)
    arrivals = m.pop("arrivals")
    ms = [us / 1000 for _, us in arrivals]
    at_once = [t for t in ms if t < delay_ms / 2]
    held = [t for t in ms if t >= delay_ms / 2]
    return {**m, "delivered": len(ms), "at_once": len(at_once),
            "at_once_pct": 100 * len(at_once) / len(ms) if ms else 0.0,
            "overtakers": overtakers([seq for seq, _ in arrivals]),
            "at_once_p50": statistics.median(at_once) if at_once else float("nan"),
            "held_p50": statistics.median(held) if held else float("nan")}


def measure_corrupt(bench: Bench, packets: int) -> dict:
    """netem's corrupt: one flipped bit in a share of the packets. Measured as
    the share of datagrams not delivered intact: those the receiving kernel
    dropped (UDP checksum) and those delivered damaged (CRC-32 of the datagram,
    which must be none)."""
    m = measure_stream(bench, packets)
    bad = m["lost"] + m["damaged"]
    return {**m, "corrupt_pct": 100 * bad / packets}


def percentile(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def measure_latency(bench: Bench, pps: int, seconds: float) -> dict:
    """A stream of pps x seconds datagrams: lost share, one-way times (ms)."""
    packets = int(pps * seconds)
    m = measure_stream(bench, packets, pps=pps, detail=True)
    ms = [us / 1000 for _, us in m.pop("arrivals")]
    return {**m, "delivered": len(ms), "p50": statistics.median(ms) if ms else float("nan"),
            "p99": percentile(ms, 0.99), "max": max(ms, default=float("nan")), "pps": packets / m["send_s"]}


def measure_rate(bench: Bench, seconds: float = 4.0, warmup: float = 0.5) -> dict:
    recv = bench.start_probe(B, "rate-recv", RATE_PORT, seconds + 60, warmup)
    bench.wait_ready(recv)
    bench.finish(bench.start_probe(A, "rate-send", ADDR_B, RATE_PORT, seconds, RATE_PAYLOAD), seconds + 60)
    return bench.finish(recv, 70)


def measure_rtt(bench: Bench, count: int) -> dict:
    """Median RTT of `count` pings a -> b, 10 ms apart."""
    result = bench.exec(A, ["ping", "-n", "-c", str(count), "-i", "0.01", "-W", "2", ADDR_B],
                        timeout=count * 0.01 + 60)
    rtts = [float(part.split("=")[1]) for line in result.stdout.splitlines() for part in line.split()
            if part.startswith("time=")]
    if len(rtts) < count * 0.9:
        raise RuntimeError(f"only {len(rtts)} of {count} pings answered:\n{result.stdout[-400:]}")
    return {"n": len(rtts), "median": statistics.median(rtts),
            "p10": statistics.quantiles(rtts, n=10)[0], "p90": statistics.quantiles(rtts, n=10)[-1]}


def fidelity(bench: Bench, backends: list, packets: int, say) -> list:
    """One row per (backend, fault): declared, measured, sample size, tolerance ratio."""
    rows = []
    base_rtt = base_oneway = None
    for backend in backends:
        for name, kind, declared, unit, body in PLAN[backend]:
            path = bench.fault_file(name, backend, body)
            if kind == "delay" and base_rtt is None:
                base_rtt = measure_rtt(bench, 200)
                say(f"  baseline RTT a->b: median {base_rtt['median']:.3f} ms over {base_rtt['n']} pings")
            if kind == "delivery" and base_oneway is None:
                base_oneway = measure_latency(bench, THROUGHPUT_PPS, THROUGHPUT_S)
                say(f"  baseline one-way a->b at {base_oneway['pps']:.0f} datagrams/s: p50 {base_oneway['p50']:.3f} "
                    f"ms, p99 {base_oneway['p99']:.3f} ms, {base_oneway['lost']} of {base_oneway['n']} lost")
            bench.inject(path)
            extra = {}
            try:
                if kind in ("loss", "duplicate"):
                    m = measure_stream(bench, packets)
                    measured, n = m[f"{kind}_pct"], f"{m['n']} pkts"
                    note = f"lost {m['lost']}, duplicated {m['duplicates']}, sendto errors {m['send_errors']}"
                    if m["send_errors"]:
                        extra["send_errors"] = m["send_errors"]
                elif kind == "reorder":
                    m = measure_reorder(bench, packets, REORDER_DELAY_MS)
                    measured, n = m["at_once_pct"], f"{m['delivered']} pkts"
                    note = (f"{m['at_once']} at once (one-way p50 {m['at_once_p50']:.2f} ms), the others p50 "
                            f"{m['held_p50']:.2f} ms; {m['overtakers']} overtook an earlier one; lost {m['lost']}")
                elif kind == "corrupt":
                    m = measure_corrupt(bench, packets)
                    measured, n = m["corrupt_pct"], f"{m['n']} pkts"
                    note = f"not delivered {m['lost']}, delivered damaged {m['damaged']}"
                    if m["damaged"]:
                        extra["damaged"] = m["damaged"]
                elif kind == "delivery":
                    m = measure_latency(bench, THROUGHPUT_PPS, THROUGHPUT_S)
                    measured, n = m["loss_pct"], f"{m['n']} pkts"
                    added = {"p50": m["p50"] - THROUGHPUT_DELAY_MS, "p99": m["p99"] - THROUGHPUT_DELAY_MS,
                             "max": m["max"] - THROUGHPUT_DELAY_MS}
                    extra["latency"] = {"pps": m["pps"], "delay_ms": THROUGHPUT_DELAY_MS, "delivered": m["delivered"],
                                        "added": added, "base": {k: base_oneway[k] for k in ("p50", "p99", "max")}}
                    note = (f"{m['delivered']} of {m['n']} delivered at {m['pps']:.0f}/s; one-way minus the "
                            f"{THROUGHPUT_DELAY_MS:g} ms delay: p50 {added['p50']:.2f} ms, p99 {added['p99']:.2f} ms "
                            f"(no fault: p50 {base_oneway['p50']:.2f}, p99 {base_oneway['p99']:.2f})")
                elif kind == "rate":
                    m = measure_rate(bench)
                    measured, n = m["bits_per_s"], f"{m['in_window']} frames"
                    note = f"{m['frame_bytes']}-byte frames over {m['window_s']:.2f} s"
                else:  # the median of a jittered delay varies more: a larger sample (see the docstring)
                    m = measure_rtt(bench, 1500 if "jitter" in body else 500)
                    measured, n = m["median"] - base_rtt["median"], f"{m['n']} pings"
                    note = f"RTT p10/p50/p90 {m['p10']:.1f}/{m['median']:.1f}/{m['p90']:.1f} ms"
            finally:
                bench.revert(path)
                bench.wait_keepers()
            left = bench.residue()
            if left:
                raise RuntimeError(f"after reverting {name}: still in the kernel: {left}")
            ratio = abs(measured - declared) / tolerance(kind, declared)
            if extra.get("damaged"):
                ratio = float("inf")  # a damaged datagram handed to the application: not what netem does
            rows.append({"backend": backend, "fault": name, "kind": kind, "declared": declared,
                         "measured": measured, "unit": unit, "n": n, "ratio": ratio, "note": note, **extra})
            say(f"  {backend:9s} {name:20s} {_value(declared, unit):>14s} -> {_value(measured, unit):>14s}  "
                f"ratio {ratio:.2f}  ({note})")
    return rows


FLOOR = [sys.executable, "-c", "import invoke, rich.console, yaml, fastjsonschema"]


def timing(bench: Bench, backends: list, rounds: int, say) -> dict:
    """Per backend: wall times of `netkeel chaos FILE` and `chaos revert --fault NAME`,
    and of a process that only imports what any `netkeel` command imports before it
    starts (the floor under these times, measured alongside them, under the same load)."""
    out = {}
    for backend in backends:
        name = TIMED[backend]
        body = next(f[4] for f in PLAN[backend] if f[0] == name)
        path = bench.fault_file(name, backend, body)
        injects, reverts, floors, cpu = [], [], [], []
        for i in range(rounds + 1):
            started = time.perf_counter()
            subprocess.run(FLOOR, check=True, timeout=60)
            floors.append((time.perf_counter() - started) * 1000)
            inject_s = bench.inject(path)
            inject_cpu = bench.last_cpu
            if not bench.residue():
                raise RuntimeError(f"`netkeel chaos {path.name}` returned but nothing is in the kernel")
            bench.wait_keeper_idle()  # its start-up would compete with the revert; a user reverts later
            revert_s = bench.revert(path)
            left = bench.residue()
            if left:
                raise RuntimeError(f"`chaos revert` returned but this is still in the kernel: {left}")
            bench.wait_keepers()
            if i == 0:
                say(f"  {backend}: first injection (pays for the capability probe): {inject_s * 1000:.0f} ms")
                continue
            injects.append(inject_s * 1000)
            reverts.append(revert_s * 1000)
            cpu.append((inject_cpu * 1000, bench.last_cpu * 1000))
        out[backend] = {"fault": name, "inject_ms": injects, "revert_ms": reverts, "floor_ms": floors[1:],
                        "inject_cpu_ms": [c[0] for c in cpu], "revert_cpu_ms": [c[1] for c in cpu],
                        "load": os.getloadavg()[0]}
        say(f"  {backend}: inject p50 {statistics.median(injects):.0f} ms (min {min(injects):.0f}), "
            f"revert p50 {statistics.median(reverts):.0f} ms (min {min(reverts):.0f}) over {rounds}; "
            f"floor p50 {statistics.median(floors[1:]):.0f} ms; load average {os.getloadavg()[0]:.2f}")
    return out


def _value(value: float, unit: str) -> str:
    if unit == "bit/s":
        return f"{value / 1e6:.3f} Mbit/s"
    return f"{value:.2f} {unit if unit != '%' else '%'}"


# -- the VM (netem on Debian's kernel) -------------------------------------------------------

def netem_in_vm(args, say) -> tuple:
    """(rows, note): the netem rows measured inside the kernel test tier, or no rows
    and why not."""
    run_py = ROOT / "tests" / "vm" / "run.py"
    if not run_py.is_file():
        return [], "no kernel test tier here (tests/vm/run.py is missing)"
    import importlib.util

    spec = importlib.util.spec_from_file_location("netkeel_vm_tier", run_py)
    vm = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(vm)
        kernel = vm.installed_kernel()  # raises VMError without qemu or the unpacked kernel
        initrd = vm.initramfs(kernel)
    except Exception as exc:  # whatever the tier lacks here, said as it says it
        return [], f"the kernel test tier is not usable here: {exc} (scripts/setup --kernel-vm)"
    with tempfile.TemporaryDirectory(prefix="netkeel-chaosfid-vm-") as job:
        job = Path(job)
        guest_dir = getattr(vm, "GUEST_DIR", "/tmp/netkeel-vm")
        # As tests/vm/run.py's write_job: init.sh mounts the repository at REPO_DIR (without it, over
        # the guest's whole root).
        config = {"MODULES_DIR": str(kernel.modules), "MODULES": " ".join(vm.GUEST_MODULES), "REPO_DIR": str(ROOT)}
        (job / "config").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in config.items()))
        command = [str(ROOT / ".venv" / "bin" / "python"), str(HERE), "--backends", "netem", "--no-vm",
                   "--no-timing", "--in-vm", "--packets", str(args.packets), "--result", f"{guest_dir}/result.json"]
        # As tests/vm/run.py's jobs: the repository is read-only there, /tmp a tmpfs.
        (job / "job.sh").write_text(
            f"cd {shlex.quote(str(ROOT))}\n"
            "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/home TERM=dumb\n"
            "export PYTHONDONTWRITEBYTECODE=1 NETKEEL_STATE_DIR=/tmp/netkeel-state\n"
            "mkdir -p \"$HOME\"\n"
            f"{shlex.join(command)} > {guest_dir}/guest.log 2>&1\n"
            f"echo $? > {guest_dir}/status\n")
        say(f"  booting Debian {kernel.release} under qemu (software emulation) for netem; a few minutes")
        started = time.monotonic()
        log = open(job / "console.log", "wb")
        qemu = subprocess.Popen(vm.qemu_argv(kernel, initrd, job, 2048, 2), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            qemu.wait(args.vm_timeout)
        except subprocess.TimeoutExpired:
            qemu.kill()
            qemu.wait()
            return [], f"the VM did not finish in {args.vm_timeout:.0f} s (qemu killed)"
        finally:
            if qemu.poll() is None:
                qemu.kill()
                qemu.wait()
            log.close()
        say(f"  VM: boot to power-off {time.monotonic() - started:.0f} s")
        guest_log = (job / "guest.log").read_text(errors="replace") if (job / "guest.log").exists() else ""
        status = (job / "status").read_text().strip() if (job / "status").exists() else None
        if status != "0" or not (job / "result.json").exists():
            tail = (guest_log or (job / "console.log").read_text(errors="replace"))[-1500:]
            return [], f"the netem run in the VM failed (status {status}):\n{tail}"
        for line in guest_log.splitlines():
            if line.startswith("  "):
                say(f"  vm|{line}")
        result = json.loads((job / "result.json").read_text())
        return result["rows"], f"netem measured in Debian {kernel.release} under qemu (TCG)"


# -- main -----------------------------------------------------------------------------------------

class _Nothing(Exception):
    """No backend to measure on this kernel (netem alone, and it is missing here)."""


def main() -> int:
    if sys.argv[1:2] == ["--probe"]:
        return run_probe(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=10_000, help="datagrams per loss/duplicate fault")
    parser.add_argument("--rounds", type=int, default=7, help="timed injections per backend")
    parser.add_argument("--backends", help="only these (comma-separated: nft, tbf, netem, userspace)")
    parser.add_argument("--no-vm", action="store_true", help="never run netem in the kernel test tier")
    parser.add_argument("--no-timing", action="store_true", help="fidelity only")
    parser.add_argument("--vm-timeout", type=float, default=1200)
    parser.add_argument("--result", help="also write the rows as JSON here")
    parser.add_argument("--in-vm", action="store_true", help=argparse.SUPPRESS)  # slow: longer timeouts
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("chaos_fidelity: needs root (it builds network namespaces)")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # cleaned up like Ctrl-C
    say = lambda text: print(text, flush=True)  # noqa: E731

    sys.path.insert(0, str(ROOT))
    from toolkit.kernel.chaos import probe

    can = probe()
    say(f"this kernel ({os.uname().release}) can do: {', '.join(can)}; load average {os.getloadavg()[0]:.2f}")
    wanted = args.backends.split(",") if args.backends else list(PLAN)
    backends = [b for b in PLAN if b in wanted and CAPABILITY[b] in can]
    if "dup" not in can and "nft" in backends:
        PLAN["nft"] = [f for f in PLAN["nft"] if f[1] != "duplicate"]
    notes = []
    if "userspace" in wanted and "userspace" not in backends:
        why = ("iptables (iptables-nft) is not installed" if not shutil.which("iptables") else
               "the capability probe found no NFQUEUE target or nfnetlink_queue here")
        notes.append(f"the userspace backend was not measured: {why}")
    workdir = Path(tempfile.mkdtemp(prefix="netkeel-chaosfid-"))
    bench = Bench(workdir, slow=args.in_vm)
    rows, timings = [], {}
    try:
        if not backends:
            raise _Nothing
        say(f"lab: 2 nodes under prefix {bench.prefix}, state in {bench.state}")
        bench.build()
        rows = fidelity(bench, backends, args.packets, say)
        if not args.no_timing:
            timings = timing(bench, [b for b in backends if b in TIMED], args.rounds, say)
    except _Nothing:
        pass
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        raise
    finally:
        # A second Ctrl-C must not cut the clean-up short (netkeel's own commands in it inherit this).
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            bench.close()
            subprocess.run(["rm", "-rf", str(workdir)], timeout=60)
        finally:
            signal.signal(signal.SIGINT, previous[0])
            signal.signal(signal.SIGTERM, previous[1])
    if "netem" in wanted and "netem" not in can:
        if args.no_vm:
            notes.append("netem was not measured: no sch_netem here and --no-vm")
        else:
            vm_rows, note = netem_in_vm(args, say)
            rows += vm_rows
            notes.append(note if vm_rows else f"netem was not measured: {note}")
    if args.result:
        Path(args.result).write_text(json.dumps({"rows": rows, "timings": timings}))
    report(rows, timings, notes, can, say)
    return 0


def report(rows, timings, notes, can, say) -> None:
    say("\nfidelity (declared vs measured; tolerance: loss/duplicate/reorder 2 points, corrupt 1 point, "
        "worker delivery 0.5 points lost, delay 1 ms + 2%, rate 5%)")
    say(f"{'backend':9s} {'fault':20s} {'declared':>14s} {'measured':>14s} {'sample':>14s} {'tolerance':>12s} "
        f"{'ratio':>6s}")
    for r in rows:
        tol = tolerance(r["kind"], r["declared"])
        say(f"{r['backend']:9s} {r['fault']:20s} {_value(r['declared'], r['unit']):>14s} "
            f"{_value(r['measured'], r['unit']):>14s} {r['n']:>14s} {_value(tol, r['unit']):>12s} "
            f"{r['ratio']:6.2f}")
    if not any(r["kind"] == "delay" for r in rows):
        say(f"{'-':9s} {'delay-50, -jitter-10':20s} not measured: neither netem nor the userspace backend here")
    for r in rows:
        if r.get("latency"):
            lat = r["latency"]
            say(f"note: {r['backend']} {r['fault']}: {lat['delivered']} datagrams delivered at {lat['pps']:.0f}/s "
                f"through a {lat['delay_ms']:g} ms delay; the one-way time minus that delay: p50 "
                f"{lat['added']['p50']:.2f} ms, p99 {lat['added']['p99']:.2f} ms, max {lat['added']['max']:.2f} ms "
                f"(the same stream without a fault: p50 {lat['base']['p50']:.2f} ms, p99 {lat['base']['p99']:.2f} ms); "
                f"printed, not in T: only the lost share is")
        if r.get("damaged"):
            say(f"note: {r['backend']} {r['fault']}: {r['damaged']} datagrams were handed to the receiver damaged "
                f"(netem's are dropped by the receiver's checksum): ratio inf")
    for r in rows:
        if r.get("send_errors"):
            say(f"note: {r['backend']} {r['fault']}: the sender's sendto() failed (EPERM) for {r['send_errors']} "
                f"of its datagrams, each one dropped: the drop is in the sender's own output path, so the "
                f"application is told, unlike on a lossy link")
    for note in notes:
        say(f"note: {note}")
    injects = [t for v in timings.values() for t in v["inject_ms"]]
    reverts = [t for v in timings.values() for t in v["revert_ms"]]
    if timings:
        say("\nwhole-process wall time (ms): `netkeel chaos FILE` / `netkeel chaos revert --fault NAME`")
        say(f"{'backend':9s} {'fault':14s} {'n':>3s} {'inject p50':>11s} {'min':>6s} {'max':>6s} "
            f"{'revert p50':>11s} {'min':>6s} {'max':>6s} {'floor p50':>10s} {'cpu inj/rev':>12s} {'load':>5s}")
        for backend, t in timings.items():
            i, v = t["inject_ms"], t["revert_ms"]
            cpu = f"{statistics.median(t['inject_cpu_ms']):.0f}/{statistics.median(t['revert_cpu_ms']):.0f}"
            say(f"{backend:9s} {t['fault']:14s} {len(i):3d} {statistics.median(i):11.0f} {min(i):6.0f} "
                f"{max(i):6.0f} {statistics.median(v):11.0f} {min(v):6.0f} {max(v):6.0f} "
                f"{statistics.median(t['floor_ms']):10.0f} {cpu:>12s} {t['load']:5.2f}")
        say("floor: wall time of a process that only imports invoke, rich, yaml and fastjsonschema, as every "
            "netkeel command does before its task runs; cpu: user+sys ms of the command (p50)")
    worst = max((r["ratio"] for r in rows), default=float("nan"))
    inject = statistics.median(injects) if injects else float("nan")
    revert = statistics.median(reverts) if reverts else float("nan")
    say(f"faults={len(rows)} worst_tolerance_ratio={worst:.2f} inject_ms_p50={inject:.0f} "
        f"revert_ms_p50={revert:.0f}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # cleaned up already (main's finally)
        sys.exit(130)
