"""The userspace impairment backend (NFQUEUE + a worker process) on the
two-clients lab, forced with `backend: userspace` so that it is tested on
kernels with netem too: delay as asked, reorder and corrupt as netem means
them, fail-open when the worker dies or hangs, and nothing left after a revert
(no rule, no worker, no table iptables made)."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labkit import kernel_view

LAB = "topologies/two-clients.yaml"
ROOT = Path(__file__).resolve().parents[2]
NODES = ("ns_client1", "ns_client2", "ns_server")

pytestmark = pytest.mark.skipif(
    subprocess.run(["sh", "-c", "command -v iptables"], capture_output=True).returncode != 0,
    reason="iptables (iptables-nft) is not installed: scripts/setup installs it")


@pytest.fixture
def built(lab):
    lab.applied(LAB)
    yield lab
    lab.run("chaos", None, "revert", "--all")


def forced(tmp_path, name: str) -> str:
    """faults/NAME.yaml with `backend: userspace`, as a file of its own (same name)."""
    path = tmp_path / f"{name}.yaml"
    path.write_text("backend: userspace\n" + (ROOT / "faults" / f"{name}.yaml").read_text())
    return str(path)


def inject(lab, path: str, *args) -> dict:
    result = lab.run("chaos", None, path, *args, "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc["backends"].values()) == {"userspace"}, doc["backends"]
    return doc


def lease_ops(lab) -> list:
    leases = sorted((lab.state / "leases").glob("*.json"))
    assert len(leases) == 1, leases
    return [op for op in json.loads(leases[0].read_text())["operations"] if op["op"] == "nfqueue"]


def status(lab) -> list:
    return json.loads(lab.run("chaos", None, "status", "--json").stdout)["faults"]


def rtts(lab, node: str, address: str, count: int, interval: float = 0.01, wait: float = 1) -> list:
    """RTTs (ms) of the answered pings, bounded in count and time."""
    result = lab.exec(node, ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait), address],
                      timeout=count * (interval + 0.05) + 15)
    return [float(l.split("time=")[1].split()[0]) for l in result.stdout.splitlines() if "time=" in l]


UDP = r"""
import socket, sys, time
mode, seconds = sys.argv[1], float(sys.argv[2])
if mode == "recv":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", 8080)); s.settimeout(seconds)
    print("ready", flush=True)
    out = []
    try:
        while True:
            data = s.recv(2048)
            out.append((time.time(), data))
    except socket.timeout:
        pass
    for arrived, data in out:
        n, ms = int(data[:8]), (arrived - float(data[8:26])) * 1000
        ok = data[26:] == bytes([n % 251]) * (len(data) - 26)
        print(n, f"{ms:.3f}", int(ok))
else:
    address, count, rate, size = sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    start = time.monotonic()
    for n in range(count):  # paced by sleeping (a spinning sender takes a CPU the worker needs)
        ahead = start + n / rate - time.monotonic()
        if ahead > 0.0005:
            time.sleep(ahead)
        s.sendto(b"%08d%18.6f" % (n, time.time()) + bytes([n % 251]) * size, (address, 8080))
"""


def udp_burst(lab, count: int, rate: float, size: int = 32, quiet_s: float = 2.5) -> list:
    """Send `count` numbered UDP datagrams at `rate`/s from client2 to the server's
    time-server port; [(number, one-way ms, intact)] in arrival order. Bounded:
    the receiver stops after `quiet_s` without a datagram."""
    receiver = subprocess.Popen(["ip", "netns", "exec", lab.ns("ns_server"), sys.executable, "-c", UDP, "recv",
                                 str(quiet_s)], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline().strip() == "ready"
        lab.exec("ns_client2", [sys.executable, "-c", UDP, "send", "0", "10.0.2.1", str(count), str(rate),
                                str(size)], timeout=count / rate + 20, check=True)
        out, _ = receiver.communicate(timeout=count / rate + quiet_s + 30)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    return [(int(n), float(ms), ok == "1") for n, ms, ok in (l.split() for l in out.splitlines())]


def nfqueue_rules(lab) -> list:
    out = []
    for node in NODES:
        for tool in ("iptables", "ip6tables"):
            listing = lab.exec(node, [tool, "-w", "5", "-t", "mangle", "-S"]).stdout
            out += [f"{node}: {l}" for l in listing.splitlines() if "NFQUEUE" in l]
    return out


def workers(ops) -> list:
    """The workers of `ops` that still run (zombies are not running)."""
    alive = []
    for op in ops:
        try:
            with open(f"/proc/{op['pid']}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] != "Z":
                    alive.append(op["pid"])
        except OSError:
            pass
    return alive


def test_delay_50_through_the_worker_and_nothing_left_after_revert(built, tmp_path):
    before = {node: kernel_view(built.ns(node)) for node in NODES}
    doc = inject(built, forced(tmp_path, "delay-50"))
    assert doc["outcome"] == "injected"
    ops = lease_ops(built)
    assert len(ops) == 1 and workers(ops) and nfqueue_rules(built)
    times = rtts(built, "ns_client1", "10.0.1.1", 100)
    assert len(times) >= 98, times
    assert 45 <= statistics.median(times) <= 55, statistics.median(times)
    assert built.run("chaos", None, "revert", "--all").returncode == 0
    assert nfqueue_rules(built) == [] and workers(ops) == []
    assert not os.path.exists(ops[0]["heartbeat"])
    assert {node: kernel_view(built.ns(node)) for node in NODES} == before  # the mangle tables went too
    assert statistics.median(rtts(built, "ns_client1", "10.0.1.1", 20)) < 5


def test_a_fault_whose_namespace_was_removed_by_hand_leaves_no_worker_and_no_files(built, tmp_path):
    """Its rules went with the namespace; its worker and its heartbeat and log
    files did not (the files stayed in /run, found by review)."""
    doc = inject(built, forced(tmp_path, "delay-50"))
    assert doc["outcome"] == "injected"
    ops = lease_ops(built)
    assert workers(ops) and os.path.exists(ops[0]["heartbeat"])
    subprocess.run(["ip", "netns", "del", built.ns(ops[0]["ns"][len(built.prefix):])], check=True)
    assert built.run("chaos", None, "revert", "--all").returncode == 0
    assert workers(ops) == []
    assert not os.path.exists(ops[0]["heartbeat"]) and not os.path.exists(ops[0]["heartbeat"] + ".log")


def test_the_next_apply_ends_a_fault_whose_namespace_was_removed_by_hand_and_builds_the_node_again(built, tmp_path):
    """Its worker kept the removed namespace alive, with the far ends of its veths:
    `chaos status` said the fault was in place, and apply failed ("remove or rename
    it by hand") until `chaos revert` (found by review)."""
    inject(built, forced(tmp_path, "delay-50"))
    ops = lease_ops(built)
    subprocess.run(["ip", "netns", "del", built.ns(ops[0]["ns"][len(built.prefix):])], check=True)
    applied = built.run("apply", LAB)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "reverted now" in " ".join(applied.stderr.split()), applied.stderr
    assert workers(ops) == [] and not list((built.state / "leases").glob("*.json"))
    assert built.run("drift", LAB).returncode == 0


def test_a_fault_whose_namespace_was_made_again_by_hand_is_ended_without_touching_the_new_one(built, tmp_path):
    """`ip netns del x; ip netns add x`: the fault stayed "active", and its revert
    took the hand-made namespace's mangle tables (found by review)."""
    inject(built, forced(tmp_path, "delay-50"))
    ops = lease_ops(built)
    name = ops[0]["ns"]
    subprocess.run(["ip", "netns", "del", name], check=True)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "nft", "add", "table", "ip", "mangle"], check=True)
        shown = built.run("chaos", None, "status")
        assert shown.returncode == 0 and "reverted now" in " ".join(shown.stderr.split()), shown.stderr
        assert workers(ops) == [] and not list((built.state / "leases").glob("*.json"))
        tables = subprocess.run(["ip", "netns", "exec", name, "nft", "list", "tables"], capture_output=True,
                                text=True, check=True).stdout
        assert "table ip mangle" in tables, tables
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_reorder_sends_a_share_at_once_and_the_burst_arrives_out_of_order(built, tmp_path):
    inject(built, forced(tmp_path, "reorder"))  # delay 500ms 400ms normal, reorder 50%
    got = udp_burst(built, 100, rate=500)
    numbers = [n for n, _, _ in got]
    assert len(numbers) >= 95, numbers  # a delay loses nothing
    inversions = sum(1 for a, b in zip(numbers, numbers[1:]) if b < a)
    assert inversions >= 10, numbers
    at_once = sum(1 for _, ms, _ in got if ms < 20)
    # reorder 50%: about half go at once, and a few delayed ones draw under 20 ms
    # (p = 0.557: 30..75 holds but for ~2e-5 of runs)
    assert 30 <= at_once <= 75, at_once


def test_corrupt_flips_bits_that_the_receiver_catches(built, tmp_path):
    inject(built, forced(tmp_path, "corrupt-5"))
    got = udp_burst(built, 2000, rate=2000, size=500, quiet_s=1.5)
    delivered = len(got)
    assert all(ok for _, _, ok in got)  # no corrupted payload handed to the application
    lost = 1 - delivered / 2000
    assert 0.03 <= lost <= 0.075, lost  # 5% +- the binomial bound over 2,000 (checksums drop them)


def test_a_killed_worker_lets_traffic_through_within_a_second(built, tmp_path):
    inject(built, forced(tmp_path, "delay-50"))
    ops = lease_ops(built)
    pinger = subprocess.Popen(["ip", "netns", "exec", built.ns("ns_client1"), "ping", "-n", "-c", "300", "-i", "0.01",
                               "-W", "1", "10.0.1.1"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        os.kill(ops[0]["pid"], signal.SIGKILL)
        out, _ = pinger.communicate(timeout=30)
    finally:
        if pinger.poll() is None:
            pinger.kill()
            pinger.wait()
    times = [float(l.split("time=")[1].split()[0]) for l in out.splitlines() if "time=" in l]
    assert times[0] > 45 and times[-1] < 5
    lost = 300 - len(times)
    assert lost <= 100, lost  # 10 ms apart: at most a second's worth lost (in fact only those held)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and status(built)[0]["state"] != "broken":
        time.sleep(0.1)
    fault = status(built)[0]
    assert fault["state"] == "broken" and "BROKEN" in fault["what"]
    assert nfqueue_rules(built) == []


def test_a_hung_worker_is_taken_out_promptly(built, tmp_path):
    inject(built, forced(tmp_path, "delay-50"))
    ops = lease_ops(built)
    os.kill(ops[0]["pid"], signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        answered = None
        while time.monotonic() < stopped + 5:
            if rtts(built, "ns_client1", "10.0.1.1", 1, wait=0.1) and answered is None:
                answered = time.monotonic() - stopped
                break
        # About 0.5-0.7 s here: stale after 0.5 s, the keeper looks every 0.2 s, then
        # iptables, whose lock is the host's (another user of it delayed one run to 1.8 s).
        assert answered is not None and answered <= 2.5, answered
    finally:
        try:
            os.kill(ops[0]["pid"], signal.SIGCONT)
        except ProcessLookupError:
            pass
    # The keeper records the fault broken, then lets traffic through: wait (bounded).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and status(built)[0]["state"] != "broken":
        time.sleep(0.1)
    assert status(built)[0]["state"] == "broken"
    assert built.run("chaos", None, "revert", "--all").returncode == 0
    assert nfqueue_rules(built) == [] and workers(ops) == []


def test_throughput_and_added_latency_at_10k_packets_per_second(built, tmp_path):
    """delay-50 at 10,000 datagrams/s for 2 s: every datagram delivered, the
    delay it adds beyond 50 ms small (the numbers go to the README)."""
    inject(built, forced(tmp_path, "delay-50"))
    # delay-50 is on client1's uplink: send from client1 instead of client2.
    receiver = subprocess.Popen(["ip", "netns", "exec", built.ns("ns_server"), sys.executable, "-c", UDP, "recv",
                                 "1.5"], stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout.readline().strip() == "ready"
        built.exec("ns_client1", [sys.executable, "-c", UDP, "send", "0", "10.0.1.1", "20000", "10000", "32"],
                   timeout=40, check=True)
        out, _ = receiver.communicate(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    extra = sorted(float(ms) - 50 for _, ms, _ in (l.split() for l in out.splitlines()))
    delivered = len(extra)
    p50, p99 = extra[len(extra) // 2], extra[int(len(extra) * 0.99)]
    print(f"\n10k pps through the worker: {delivered}/20000 delivered, added p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    assert delivered >= 19_800, delivered
    # Measured here (2 CPUs, sender and receiver on them too): 1.6-2.2 ms, 5-7 ms; with
    # the CPU shared, 6-8 and 27-69 ms. Only a worker that does not keep up fails this
    # (its queue grows: hundreds of ms); the figures are printed, not held to a machine.
    assert p50 < 25 and p99 < 250, (p50, p99)


@pytest.mark.parametrize("order", ["oldest first", "newest first"])
def test_two_faults_in_one_namespace_leave_no_mangle_table_whichever_goes_first(built, tmp_path, order):
    """Found by review: the second fault found the mangle tables the first had
    made and did not count them; the first, reverted while the second's rules
    were there, left them; the second then did not own them: left for good."""
    before = kernel_view(built.ns("ns_server"))
    names = []
    for number, dev in enumerate(("veth_srv_c1", "veth_srv_c2")):
        fault = tmp_path / f"slow-{number}.yaml"
        fault.write_text("backend: userspace\ntopology: two-clients\n"
                         f"target: {{node: ns_server, interface: {dev}, direction: egress}}\ndelay: 20ms\n")
        inject(built, str(fault))
        names.append(f"slow-{number}")
    assert nfqueue_rules(built)
    for name in names if order == "oldest first" else reversed(names):
        result = built.run("chaos", None, "revert", "--fault", name)
        assert result.returncode == 0, result.stdout + result.stderr
    assert nfqueue_rules(built) == []
    assert kernel_view(built.ns("ns_server")) == before  # no mangle table left behind
    assert built.run("drift", LAB).returncode == 0


def test_a_mangle_table_holding_someone_elses_chain_or_set_is_never_removed(built, tmp_path):
    """Found by review: the revert removed the ip mangle table it had made though a
    user had put a chain and a set in it since (iptables -S shows neither)."""
    fault = tmp_path / "slow.yaml"
    fault.write_text("backend: userspace\ntopology: two-clients\n"
                     "target: {node: ns_server, interface: veth_srv_c1, direction: egress}\ndelay: 20ms\n")
    inject(built, str(fault))
    server = built.ns("ns_server")
    subprocess.run(["ip", "netns", "exec", server, "nft", "add", "chain", "ip", "mangle", "userchain"], check=True,
                   timeout=10)
    subprocess.run(["ip", "netns", "exec", server, "nft", "add", "set", "ip", "mangle", "userset",
                    "{ type ipv4_addr; }"], check=True, timeout=10)
    assert built.run("chaos", None, "revert", "--fault", "slow").returncode == 0
    assert nfqueue_rules(built) == []
    listing = subprocess.run(["ip", "netns", "exec", server, "nft", "list", "table", "ip", "mangle"],
                             capture_output=True, text=True, timeout=10)
    assert listing.returncode == 0 and "userchain" in listing.stdout and "userset" in listing.stdout
    assert "ip6 mangle" not in subprocess.run(["ip", "netns", "exec", server, "nft", "list", "tables"],
                                              capture_output=True, text=True, timeout=10).stdout  # empty: gone


def test_a_users_policy_on_a_mangle_chain_keeps_the_table(built, tmp_path):
    """Found by review: `iptables -t mangle -P FORWARD DROP` set during the fault was
    lost with the table the revert removed (a base chain's policy is someone's too)."""
    fault = tmp_path / "slow.yaml"
    fault.write_text("backend: userspace\ntopology: two-clients\n"
                     "target: {node: ns_server, interface: veth_srv_c1, direction: egress}\ndelay: 20ms\n")
    inject(built, str(fault))
    built.exec("ns_server", ["iptables", "-w", "5", "-t", "mangle", "-P", "FORWARD", "DROP"], check=True)
    assert built.run("chaos", None, "revert", "--fault", "slow").returncode == 0
    assert "-P FORWARD DROP" in built.exec("ns_server", ["iptables", "-w", "5", "-t", "mangle", "-S"]).stdout


def test_an_injection_that_cannot_hold_the_tables_leaves_no_worker(built, tmp_path):
    """Found by review: the worker started, the tables' lock could not be had, and
    the worker ran on with no lease to end it (for the fault's whole duration)."""
    run_dir = tmp_path / "nfq"
    (run_dir / "tables.lock").mkdir(parents=True)  # a directory where the lock file should be
    before = subprocess.run(["pgrep", "-f", "toolkit.kernel.nfqworker"], capture_output=True, text=True).stdout
    result = built.run("chaos", None, forced(tmp_path, "delay-50"), "--duration", "120s",
                       env={"NETKEEL_NFQUEUE_DIR": str(run_dir)})
    assert result.returncode == 1 and "tables.lock" in result.stderr, result.stdout + result.stderr
    after = subprocess.run(["pgrep", "-f", "toolkit.kernel.nfqworker"], capture_output=True, text=True).stdout
    assert set(after.split()) <= set(before.split()), (before, after)
    assert nfqueue_rules(built) == [] and status(built) == []
    assert sorted(p.name for p in run_dir.iterdir()) == ["tables.lock"]  # no heartbeat or log left
