"""The userspace impairment backend without root: the worker's verdict schedule
(delays as netem draws them, reorder and corrupt as netem means them), its
nfnetlink_queue messages against a fake socket and clock, the keeper's check
of a worker, and the plan that chooses the backend."""

from __future__ import annotations

import os
import random
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolkit.chaos import keeper
from toolkit.chaos.plan import Lab, choose, plan, queue_number
from toolkit.kernel import nfqworker as w
from toolkit.manifest.fault import load_fault_text

HERE = frozenset({"dup", "ifb", "mirred", "nft", "tbf", "nfqueue"})
DISTRO = HERE | {"netem"}
ON_A = "target: {node: a, interface: e0}\n"
LAB = Lab(namespaces={"a": "p-a"}, interfaces={"p-a": {"lo", "e0"}}, addresses={"p-a": ["10.0.0.1"]})


def fault(text: str):
    return load_fault_text(text, "f.yaml")


# -- delays ------------------------------------------------------------------------------

def draws(distribution: str, n: int = 20_000, mu: float = 100.0, sigma: float = 20.0) -> list:
    rng = random.Random(7)
    return [w.draw_delay(rng, mu, sigma, distribution) for _ in range(n)]


def test_no_jitter_is_exactly_the_delay():
    assert w.draw_delay(random.Random(1), 0.05, 0.0, "normal") == 0.05


def test_uniform_spreads_evenly_over_delay_plus_minus_jitter():
    x = draws("uniform")
    assert 80 <= min(x) < 81 and 119 < max(x) <= 120
    assert abs(statistics.mean(x) - 100) < 0.5


def test_normal_has_the_jitter_as_its_standard_deviation():
    x = draws("normal")
    assert abs(statistics.mean(x) - 100) < 0.5 and abs(statistics.stdev(x) - 20) < 0.5


def test_pareto_keeps_the_mean_and_has_a_long_tail():
    x = draws("pareto", n=200_000)
    assert abs(statistics.mean(x) - 100) < 1.5
    assert statistics.median(x) < 100 and max(x) > 100 + 5 * 20  # skewed: most below, a few far above


def test_paretonormal_keeps_the_mean():
    assert abs(statistics.mean(draws("paretonormal")) - 100) < 1


def test_a_delay_is_never_negative():
    assert min(draws("normal", mu=5.0, sigma=50.0)) == 0.0


def test_an_unknown_distribution_is_refused():
    with pytest.raises(ValueError):
        w.Schedule(10, 5, "cauchy")


# -- the schedule ------------------------------------------------------------------------

def test_a_constant_delay_releases_each_packet_after_it_in_order():
    s = w.Schedule(delay_ms=50)
    for i in range(5):
        s.arrive(i, None, now=i * 0.01)
    assert s.due(0.0499) == []
    assert s.due(0.05) == [(0, w.NF_ACCEPT, None)]
    assert [pid for pid, _, _ in s.due(0.0901)] == [1, 2, 3, 4]
    assert len(s) == 0 and s.next_due() is None


def test_jitter_reorders_as_netem_does_without_rate():
    s = w.Schedule(delay_ms=100, jitter_ms=90, distribution="uniform", rng=random.Random(3))
    for i in range(200):
        s.arrive(i, None, now=i * 0.001)
    order = [pid for pid, _, _ in s.due(10.0)]
    assert sorted(order) == list(range(200)) and order != sorted(order)


def test_reorder_sends_its_share_at_once_and_the_rest_waits():
    s = w.Schedule(delay_ms=100, reorder=25, rng=random.Random(5))
    for i in range(4000):
        s.arrive(i, None, now=1.0)
    at_once = s.due(1.0)
    assert 0.22 <= len(at_once) / 4000 <= 0.28
    assert s.counts["reordered"] == len(at_once)
    assert len(s.due(1.0999)) == 0 and len(s.due(1.1)) == 4000 - len(at_once)


def test_reorder_puts_a_packet_ahead_of_those_waiting():
    s = w.Schedule(delay_ms=100, reorder=100)
    s.reorder = 0.0
    s.arrive(1, None, now=0.0)
    s.reorder = 1.0
    s.arrive(2, None, now=0.01)
    assert [pid for pid, _, _ in s.due(1.0)] == [2, 1]


def ipv4_udp(payload: bytes) -> bytes:
    return bytes([0x45]) + bytes(19) + bytes(8) + payload


def test_corrupt_flips_exactly_one_bit_past_the_ip_header():
    rng = random.Random(11)
    packet = ipv4_udp(bytes(100))
    for _ in range(500):
        out = w.flip_bit(packet, rng)
        diff = [(i, a ^ b) for i, (a, b) in enumerate(zip(packet, out)) if a != b]
        assert len(out) == len(packet) and len(diff) == 1
        at, bits = diff[0]
        assert at >= 20 and bin(bits).count("1") == 1


def test_corrupt_hands_its_share_back_with_a_new_payload():
    s = w.Schedule(corrupt=10, rng=random.Random(2))
    packet = ipv4_udp(bytes(64))
    for i in range(5000):
        s.arrive(i, packet, now=0.0)
    changed = [p for _, _, p in s.due(0.0) if p is not None]
    assert 0.085 <= len(changed) / 5000 <= 0.115 and all(p != packet for p in changed)


def test_loss_drops_its_share_at_once():
    s = w.Schedule(delay_ms=10, loss=20, rng=random.Random(4))
    for i in range(5000):
        s.arrive(i, None, now=0.0)
    dropped = [v for _, v, _ in s.due(0.0)]
    assert set(dropped) == {w.NF_DROP} and 0.18 <= len(dropped) / 5000 <= 0.22


def test_leaving_releases_everything_held_in_order():
    s = w.Schedule(delay_ms=1000)
    for i in range(3):
        s.arrive(i, None, now=float(i))
    assert [pid for pid, _, _ in s.everything()] == [0, 1, 2] and len(s) == 0


# -- the netlink messages, against a fake socket ------------------------------------------

def packet_message(queue: int, packet_id: int, payload: bytes | None = None) -> bytes:
    attrs = w._attr(w.NFQA_PACKET_HDR, struct.pack(">IHB", packet_id, 0x0800, 4) + b"\0")
    if payload is not None:
        attrs += w._attr(w.NFQA_PAYLOAD, payload)
    return w._message(w.NFQNL_MSG_PACKET, queue, attrs, flags=0)


def ack(seq: int, code: int = 0) -> bytes:
    return struct.pack("=IHHII", 36, w.NLMSG_ERROR, 0, seq, 0) + struct.pack("=i", -code) + bytes(16)


class FakeSocket:
    def __init__(self, fail_step: int | None = None):
        self.sent, self.inbox, self.fail_step = [], [], fail_step
        self.blocking = True

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        if self.blocking:  # configuration: acknowledge each step
            seq = struct.unpack_from("=I", data, 8)[0]
            self.inbox.append(ack(seq, 1 if seq == self.fail_step else 0))
        return len(data)

    def recv(self, size: int) -> bytes:
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.pop(0)

    def setblocking(self, flag: bool) -> None:
        self.blocking = flag

    def fileno(self) -> int:
        return -1


def messages(data: bytes) -> list:
    out, at = [], 0
    while at < len(data):
        length, kind = struct.unpack_from("=IH", data, at)
        out.append((kind, data[at:at + length]))
        at += (length + 3) & ~3
    return out


def test_binding_configures_the_queue_fail_open_and_sized():
    sock = FakeSocket()
    w.Queue(321, copy_packet=True, maxlen=5000, sock=sock)
    assert len(sock.sent) == 4
    kinds = {struct.unpack_from("=H", m, 4)[0] for m in sock.sent}
    assert kinds == {(w.NFNL_SUBSYS_QUEUE << 8) | w.NFQNL_MSG_CONFIG}
    assert all(struct.unpack_from(">H", m, 18)[0] == 321 for m in sock.sent)  # res_id: the queue
    assert struct.pack(">IB", w.COPY_RANGE, w.NFQNL_COPY_PACKET) in sock.sent[1]
    assert struct.pack(">I", 5000) in sock.sent[2]
    fail_open = struct.pack(">I", w.NFQA_CFG_F_FAIL_OPEN)
    assert w._attr(w.NFQA_CFG_FLAGS, fail_open) in sock.sent[3] and w._attr(w.NFQA_CFG_MASK, fail_open) in sock.sent[3]


def test_a_refused_configuration_step_is_an_error():
    with pytest.raises(OSError, match="queue 9"):
        w.Queue(9, sock=FakeSocket(fail_step=1))


def test_packets_are_read_and_verdicts_sent_in_one_batch():
    sock = FakeSocket()
    queue = w.Queue(5, sock=sock)
    sock.sent.clear()
    sock.inbox += [packet_message(5, 10) + packet_message(5, 11, b"abc"), packet_message(5, 12)]
    assert queue.receive() == [(10, None), (11, b"abc"), (12, None)]
    queue.release([(10, w.NF_ACCEPT, None), (11, w.NF_ACCEPT, b"abd"), (12, w.NF_DROP, None)])
    assert len(sock.sent) == 1
    sent = messages(sock.sent[0])
    assert [k for k, _ in sent] == [(w.NFNL_SUBSYS_QUEUE << 8) | w.NFQNL_MSG_VERDICT] * 3
    assert struct.pack(">II", w.NF_ACCEPT, 10) in sent[0][1]
    assert struct.pack(">II", w.NF_ACCEPT, 11) in sent[1][1] and b"abd" in sent[1][1]
    assert struct.pack(">II", w.NF_DROP, 12) in sent[2][1]


def test_run_holds_each_verdict_for_its_delay_and_releases_all_when_stopped(monkeypatch):
    sock = FakeSocket()
    queue = w.Queue(5, sock=sock)
    sock.sent.clear()
    clock = [0.0]
    arrivals = {0.0: [1, 2], 0.02: [3]}
    released = []

    def fake_select(r, wr, x, timeout):
        if sock.inbox:  # readable: no waiting
            return r, [], []
        clock[0] = round(clock[0] + min(timeout, 0.01), 6)
        for t in list(arrivals):
            if t <= clock[0]:
                sock.inbox.extend(packet_message(5, pid) for pid in arrivals.pop(t))
        return r, [], []

    def release(verdicts):
        released.extend((clock[0], pid) for pid, _, _ in verdicts)

    monkeypatch.setattr(w.select, "select", fake_select)
    monkeypatch.setattr(queue, "release", release)
    sock.inbox.extend(packet_message(5, pid) for pid in arrivals.pop(0.0))
    why = w.run(queue, w.Schedule(delay_ms=50), clock=lambda: clock[0], wall=lambda: 0.0,
                stop=lambda: clock[0] >= 0.06)
    assert why == "stopped"
    assert [(round(t, 3), pid) for t, pid in released] == [(0.05, 1), (0.05, 2), (0.06, 3)]  # 3 left at stop


# -- the keeper's check of a worker --------------------------------------------------------

@pytest.fixture
def fake_worker(tmp_path):
    """A process whose command line looks like a worker's (queue 4242, lease tag t1)."""
    beat = tmp_path / "beat"
    beat.write_text("")
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "toolkit.kernel.nfqworker",
                             "--queue", "4242", "--lease", "netkeel_chaos_t1"])
    # Until it has exec'd, its command line is still its parent's (bounded wait).
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and b"nfqworker" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
        time.sleep(0.005)
    os.utime(beat)  # fresh now, however long the wait took on a busy machine
    yield {"op": "nfqueue", "pid": proc.pid, "queue": 4242, "tag": "netkeel_chaos_t1", "heartbeat": str(beat)}
    proc.kill()
    proc.wait()


def test_a_worker_with_a_fresh_heartbeat_is_healthy(fake_worker):
    assert keeper.worker_health(fake_worker, time.time()) == ""


def test_a_worker_without_heartbeats_hangs(fake_worker):
    assert "hangs" in keeper.worker_health(fake_worker, time.time() + 2)


def test_a_dead_worker_or_another_process_under_its_pid_is_gone(fake_worker):
    assert "gone" in keeper.worker_health({**fake_worker, "queue": 4243}, time.time())
    assert "gone" in keeper.worker_health({**fake_worker, "pid": os.getpid()}, time.time())
    assert "gone" in keeper.worker_health({**fake_worker, "pid": 0}, time.time())


# -- choosing the backend ------------------------------------------------------------------

@pytest.mark.parametrize("text, caps, chosen", [
    (f"{ON_A}delay: 50ms", HERE, [("delay", "userspace")]),
    (f"{ON_A}delay: 50ms", DISTRO, [("delay", "netem")]),
    (f"backend: userspace\n{ON_A}delay: 50ms", DISTRO, [("delay", "userspace")]),
    (f"{ON_A}delay: 10ms\nreorder: 5%\ncorrupt: 1%", HERE,
     [("delay", "userspace"), ("reorder", "userspace"), ("corrupt", "userspace")]),
    (f"{ON_A}delay: 10ms\nloss: 5%", HERE, [("loss", "nft"), ("delay", "userspace")]),
    (f"{ON_A}loss: 0.001%", HERE, [("loss", "userspace")]),  # below what nftables draws
])
def test_choose_takes_the_userspace_backend_where_netem_is_missing(text, caps, chosen):
    assert list(choose(fault(text), caps)) == chosen


def test_the_plan_holds_the_worker_parameters_and_a_queue_of_the_lease():
    f = fault("target: {node: a, interface: e0, direction: both}\n"
              "delay: {time: 500ms, jitter: 400ms, distribution: normal}\nreorder: 50%")
    ops = plan(f, HERE, LAB, "f-0123abcd", 60_000).operations
    assert ops == ({"op": "nfqueue", "ns": "p-a", "dev": "e0", "directions": ["egress", "ingress"],
                    "queue": queue_number("f-0123abcd"), "tag": "netkeel_chaos_82382b2b75",
                    "params": {"delay_ms": 500.0, "jitter_ms": 400.0, "distribution": "normal", "reorder": 50.0},
                    "maxlen": 170_000, "expires_in_ms": 60_000},)
    assert 1024 <= queue_number("f-0123abcd") <= 65535


def test_the_worker_command_line_carries_the_parameters():
    from toolkit.kernel import nfqueue

    op = {"ns": "p-a", "dev": "e0", "queue": 2000, "tag": "netkeel_chaos_x", "maxlen": 1000,
          "params": {"delay_ms": 50.0, "jitter_ms": 10.0, "distribution": "pareto", "corrupt": 5.0}}
    argv = nfqueue.worker_argv(op, 1234.5)
    assert argv[1:3] == ["-m", "toolkit.kernel.nfqworker"]
    text = " ".join(argv)
    for part in ("--netns p-a", "--queue 2000", "--delay-ms 50", "--jitter-ms 10", "--distribution pareto",
                 "--corrupt 5", "--until 1234.500", "--lease netkeel_chaos_x"):
        assert part in text
    assert nfqueue.rule({**op, "directions": ["egress"]}, "egress") == [
        "-t", "mangle", "POSTROUTING", "-o", "e0", "-m", "comment", "--comment", "netkeel_chaos_x",
        "-j", "NFQUEUE", "--queue-num", "2000", "--queue-bypass"]
