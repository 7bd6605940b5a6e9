"""The userspace impairment worker: delay (with jitter and netem's
distributions), reorder, corrupt and loss for kernels without sch_netem,
through nfnetlink_queue (an iptables-nft NFQUEUE rule sends the target's
packets here; this process holds each packet's verdict until its time).

Pure Python, no C library: one raw NETLINK_NETFILTER socket, created inside
the target namespace (setns first: a queue is per namespace).

    Schedule     what happens to each packet (pure: tested with a fake clock and
                 random source): its release time, drawn as netem draws it; a
                 share sent at once (reorder, netem's meaning: the others wait);
                 one flipped bit (corrupt); a drop (loss).
    Queue        the nfnetlink_queue client: bind, read packets, send verdicts
                 (many in one send when many are due).
    run()        the loop: read what arrived, release what is due, touch the
                 heartbeat file (the keeper's sign of life), leave at --until.

Fail-open: the rule carries --queue-bypass (no bound worker: packets pass) and
the queue NFQA_CFG_F_FAIL_OPEN (a full queue: packets pass). On SIGTERM every
held packet is released at once before the socket closes.

    python -m toolkit.kernel.nfqworker --netns NS --queue N --heartbeat FILE
        [--delay-ms D] [--jitter-ms J] [--distribution uniform|normal|pareto|paretonormal]
        [--reorder P] [--corrupt P] [--loss P] [--until EPOCH] [--maxlen N]
"""

from __future__ import annotations

import argparse
import errno
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

# -- netlink / nfnetlink_queue constants (linux/netfilter/nfnetlink_queue.h) ---------------
NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META, NFQNL_COPY_PACKET = 1, 2
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NF_DROP, NF_ACCEPT = 0, 1
COPY_RANGE = 0xFFFF
_HDR = struct.Struct("=IHHII")

DISTRIBUTIONS = ("uniform", "normal", "pareto", "paretonormal")


# -- what happens to each packet ---------------------------------------------------------

def draw_delay(rng: random.Random, mu: float, sigma: float, distribution: str) -> float:
    """A delay as netem draws it (tc-netem(8), sch_netem.c tabledist): uniform in
    [mu - sigma, mu + sigma] without a table; otherwise mu + sigma * x with x
    from the distribution's table (normal: N(0, 1); pareto: iproute2's table,
    (u^(-1/3) - 1.5) * 4/3, Pareto a=3 shifted to mean 0; paretonormal: a quarter
    pareto, three quarters normal, as iproute2's paretonormal table mixes
    them). Never below zero (netem sends a negative one at once)."""
    if not sigma:
        return max(0.0, mu)
    if distribution == "uniform":
        x = rng.uniform(-1.0, 1.0)
    elif distribution == "normal":
        x = rng.gauss(0.0, 1.0)
    elif distribution == "pareto":
        x = pareto(rng)
    elif distribution == "paretonormal":
        x = 0.25 * pareto(rng) + 0.75 * rng.gauss(0.0, 1.0)
    else:
        raise ValueError(f"unknown distribution {distribution!r}")
    return max(0.0, mu + sigma * x)


def pareto(rng: random.Random) -> float:
    u = 1.0 - rng.random()  # (0, 1]
    return (u ** (-1.0 / 3.0) - 1.5) * (4.0 / 3.0)


def flip_bit(payload: bytes, rng: random.Random) -> bytes:
    """One random bit flipped, past the IP header (the packet still routes; the
    receiver's checksum catches it, as with netem: the kernel completes a
    partial checksum before it copies a packet to the queue)."""
    data = bytearray(payload)
    start = ip_header_length(data)
    if len(data) <= start:
        start = 0 if data else None
    if start is None:
        return payload
    at = rng.randrange(start, len(data))
    data[at] ^= 1 << rng.randrange(8)
    return bytes(data)


def ip_header_length(data) -> int:
    if not data:
        return 0
    version = data[0] >> 4
    if version == 4:
        return (data[0] & 0x0F) * 4
    if version == 6:
        return 40
    return 0


class Schedule:
    """Held verdicts, due first: (due, seq, packet id, verdict, payload or None).

    Times are seconds on the clock handed in (monotonic). Percentages 0-100."""

    def __init__(self, delay_ms: float = 0.0, jitter_ms: float = 0.0, distribution: str = "uniform",
                 reorder: float = 0.0, corrupt: float = 0.0, loss: float = 0.0, rng=None):
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown distribution {distribution!r}")
        self.mu, self.sigma = delay_ms / 1000.0, jitter_ms / 1000.0
        self.distribution = distribution
        self.reorder, self.corrupt, self.loss = reorder / 100.0, corrupt / 100.0, loss / 100.0
        self.rng = rng or random.Random()
        self.heap: list = []
        self.seq = 0
        self.counts = {"packets": 0, "reordered": 0, "corrupted": 0, "dropped": 0}

    def arrive(self, packet_id: int, payload: bytes | None, now: float) -> None:
        """Decide the packet's fate and when it is released."""
        rng = self.rng
        self.counts["packets"] += 1
        if self.loss and rng.random() < self.loss:
            self.counts["dropped"] += 1
            self._push(now, packet_id, NF_DROP, None)
            return
        new = None
        if self.corrupt and payload and rng.random() < self.corrupt:
            new = flip_bit(payload, rng)
            self.counts["corrupted"] += 1
        if self.reorder and rng.random() < self.reorder:
            self.counts["reordered"] += 1
            due = now  # netem: a reordered packet goes at once, ahead of those waiting
        else:
            due = now + draw_delay(rng, self.mu, self.sigma, self.distribution)
        self._push(due, packet_id, NF_ACCEPT, new)

    def _push(self, due: float, packet_id: int, verdict: int, payload) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, packet_id, verdict, payload))

    def due(self, now: float, limit: int = 1 << 30) -> list:
        """(packet id, verdict, payload or None) of every packet due by `now`, in order."""
        out = []
        heap = self.heap
        while heap and heap[0][0] <= now and len(out) < limit:
            _, _, pid, verdict, payload = heapq.heappop(heap)
            out.append((pid, verdict, payload))
        return out

    def everything(self) -> list:
        """Every held packet, in release order (for leaving: all go now)."""
        out = [(pid, v, p) for _, _, pid, v, p in sorted(self.heap)]
        self.heap.clear()
        return out

    def next_due(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def __len__(self) -> int:
        return len(self.heap)


# -- the netlink client -------------------------------------------------------------------

def _attr(kind: int, data: bytes) -> bytes:
    length = 4 + len(data)
    return struct.pack("=HH", length, kind) + data + b"\0" * (-length % 4)


def _message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack(">H", queue) + attrs
    return _HDR.pack(16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body


def verdict_message(queue: int, packet_id: int, verdict: int, payload: bytes | None = None) -> bytes:
    attrs = _attr(NFQA_VERDICT_HDR, struct.pack(">II", verdict, packet_id))
    if payload is not None:
        attrs += _attr(NFQA_PAYLOAD, payload)
    return _message(NFQNL_MSG_VERDICT, queue, attrs)


def config_messages(queue: int, copy_packet: bool, maxlen: int) -> list:
    mode = NFQNL_COPY_PACKET if copy_packet else NFQNL_COPY_META
    flags = NLM_F_REQUEST | NLM_F_ACK
    return [
        _message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_BIND, 0)),
                 flags, 1),
        _message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_PARAMS, struct.pack(">IB", COPY_RANGE, mode) + b"\0" * 3),
                 flags, 2),
        _message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", maxlen)), flags, 3),
        _message(NFQNL_MSG_CONFIG, queue, _attr(NFQA_CFG_FLAGS, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN)) +
                 _attr(NFQA_CFG_MASK, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN)), flags, 4),
    ]


def parse(buffer: bytes) -> tuple:
    """([(packet id, payload or None)], [netlink errors (seq, errno)]) in a received buffer."""
    packets, errors = [], []
    offset, end = 0, len(buffer)
    while offset + 16 <= end:
        length, kind, _flags, seq, _pid = _HDR.unpack_from(buffer, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR:
            code = struct.unpack_from("=i", buffer, offset + 16)[0]
            if code:
                errors.append((seq, -code))
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            at, stop = offset + 20, offset + length
            pid, payload = None, None
            while at + 4 <= stop:
                alen, atype = struct.unpack_from("=HH", buffer, at)
                if alen < 4:
                    break
                atype &= 0x3FFF
                if atype == NFQA_PACKET_HDR:
                    pid = struct.unpack_from(">I", buffer, at + 4)[0]
                elif atype == NFQA_PAYLOAD:
                    payload = bytes(buffer[at + 4:at + alen])
                at += (alen + 3) & ~3
            if pid is not None:
                packets.append((pid, payload))
        offset += (length + 3) & ~3
    return packets, errors


class Queue:
    """One bound nfnetlink queue. `sock` may be a fake (send, recv, fileno, setblocking)."""

    def __init__(self, number: int, copy_packet: bool = False, maxlen: int = 10_000, sock=None):
        self.number = number
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            for option in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (root), else the capped one
                try:
                    sock.setsockopt(socket.SOL_SOCKET, option, 32 << 20)
                    break
                except OSError:
                    continue
            sock.bind((0, 0))
        self.sock = sock
        for message in config_messages(number, copy_packet, maxlen):
            self.sock.send(message)
            _, errors = parse(self.sock.recv(65536))
            if errors:
                seq, code = errors[0]
                raise OSError(code, f"nfnetlink_queue config step {seq} of queue {number}: {os.strerror(code)}")
        self.sock.setblocking(False)

    def receive(self, limit: int = 512) -> list:
        """Whatever arrived (not waiting): [(packet id, payload or None)]."""
        out = []
        for _ in range(limit):
            try:
                data = self.sock.recv(COPY_RANGE + 4096)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # the socket overflowed: what was lost stays queued
                    continue
                raise
            out.extend(parse(data)[0])
        return out

    def release(self, verdicts) -> None:
        """Send verdicts, many per send (netlink takes concatenated messages)."""
        batch, size = [], 0
        for pid, verdict, payload in verdicts:
            message = verdict_message(self.number, pid, verdict, payload)
            batch.append(message)
            size += len(message)
            if size > 200_000:
                self._send(b"".join(batch))
                batch, size = [], 0
        if batch:
            self._send(b"".join(batch))

    def _send(self, data: bytes) -> None:
        while True:
            try:
                self.sock.send(data)
                return
            except BlockingIOError:
                select.select([], [self.sock], [], 0.01)


# -- the process --------------------------------------------------------------------------

HEARTBEAT_S = 0.1


def run(queue: Queue, schedule: Schedule, heartbeat: str | None = None, until: float | None = None,
        clock=time.monotonic, wall=time.time, stop=lambda: False) -> str:
    """Serve the queue until `until` (wall-clock epoch) or stop(); returns why it ended.
    Every held packet is released on the way out."""
    fd = queue.sock.fileno()
    beat = 0.0
    try:
        while True:
            now = clock()
            if now - beat >= HEARTBEAT_S:
                beat = now
                if heartbeat:
                    os.utime(heartbeat)
                if until is not None and wall() >= until:
                    return "expired"
            if stop():
                return "stopped"
            next_due = schedule.next_due()
            wait = HEARTBEAT_S if next_due is None else min(HEARTBEAT_S, max(0.0, next_due - now))
            if wait > 0:
                select.select([fd], [], [], wait)  # microseconds (poll and epoll round up to a millisecond)
            for pid, payload in queue.receive():
                schedule.arrive(pid, payload, clock())
            due = schedule.due(clock() + 0.0001)
            if due:
                queue.release(due)
    finally:
        try:
            queue.release(schedule.everything())
        except OSError:
            pass


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m toolkit.kernel.nfqworker")
    p.add_argument("--netns", required=True)
    p.add_argument("--queue", type=int, required=True)
    p.add_argument("--heartbeat", required=True)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--jitter-ms", type=float, default=0.0)
    p.add_argument("--distribution", default="uniform", choices=DISTRIBUTIONS)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--corrupt", type=float, default=0.0)
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--maxlen", type=int, default=10_000)
    p.add_argument("--until", type=float, default=None)
    p.add_argument("--lease", default="")  # for people reading `ps`, and for telling our workers apart
    args = p.parse_args(argv)

    from ..core.interrupts import let_in
    from . import netns

    fd = netns.open_fd(args.netns)
    netns.setns(fd)  # the socket is the namespace's queue: made after this
    os.close(fd)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    let_in()  # (started under a held SIGTERM, it would never stop but by SIGKILL)
    try:
        queue = Queue(args.queue, copy_packet=args.corrupt > 0, maxlen=args.maxlen)
    except OSError as exc:
        print(f"nfqueue worker: cannot bind queue {args.queue} in {args.netns}: {exc}", file=sys.stderr)
        return 1
    schedule = Schedule(args.delay_ms, args.jitter_ms, args.distribution, args.reorder, args.corrupt, args.loss)
    with open(args.heartbeat, "w") as f:  # ready: the queue is bound
        f.write(f"{os.getpid()}\n")
    run(queue, schedule, args.heartbeat, args.until, stop=lambda: bool(stopping))
    return 0


if __name__ == "__main__":
    sys.exit(main())
