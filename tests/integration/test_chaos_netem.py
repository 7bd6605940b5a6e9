"""Chaos through netem, on a kernel that has it: these run in Debian's kernel
under qemu (tests/vm) where this one lacks sch_netem, and skip elsewhere.

The shipped faults that need a delay line (delay-50, reorder), netem's
duplicate and corrupt, a fault on ingress (an ifb redirect), and a declared
impairment with a delay, each measured with real traffic and reverted."""

from __future__ import annotations

import re
import statistics
import subprocess
import time

import pytest
from test_netem_kernel import kernel_has_netem

pytestmark = pytest.mark.netem

LAB = "topologies/two-clients.yaml"


@pytest.fixture(scope="module", autouse=True)
def _needs_netem():
    if not kernel_has_netem():
        pytest.skip("this kernel has no sch_netem: `invoke test` runs these in Debian's kernel under qemu (tests/vm)")


@pytest.fixture
def built(lab):
    lab.applied(LAB)
    assert lab.ping("ns_client1", "10.0.1.1") and lab.ping("ns_client2", "10.0.2.1")  # ARP resolved first
    yield lab
    lab.run("chaos", None, "revert", "--all")


def rtts(lab, node: str, address: str, count: int) -> list:
    result = lab.exec(node, ["ping", "-n", "-c", str(count), "-i", "0.02", "-W", "2", address], timeout=count + 30)
    return [float(x) for x in re.findall(r"time=([0-9.]+) ms", result.stdout)]


def test_delay_50_adds_50_ms_through_netem(built):
    result = built.run("chaos", None, "delay-50", "--json")
    assert result.returncode == 0, result.stderr
    assert '"delay": "netem"' in result.stdout
    median = statistics.median(rtts(built, "ns_client1", "10.0.1.1", 50))
    assert 49 <= median <= 56, median
    assert built.run("chaos", None, "revert", "--fault", "delay-50").returncode == 0
    assert statistics.median(rtts(built, "ns_client1", "10.0.1.1", 20)) < 5
    tc = subprocess.run(["tc", "-n", built.ns("ns_client1"), "qdisc", "show", "dev", "veth_c1"],
                        capture_output=True, text=True, check=True).stdout
    assert "netem" not in tc


def test_the_lab_notes_reorder_fault_reorders(built):
    assert built.run("chaos", None, "reorder", "--duration", "20s").returncode == 0
    # -w, not -W: after its 40th echo ping lingers only twice the longest round trip it
    # has seen, and the replies sent at once (reorder 50%) may be all it has seen by
    # then: the delayed half was cut off and what was left came in order (a CI run, on a
    # faster machine). With a deadline it goes on until 40 replies came (500 ms +- 400
    # ms late, or at once): in qemu here 10 inversions in each of three runs.
    result = built.exec("ns_client2", ["ping", "-n", "-c", "40", "-i", "0.01", "-w", "8", "10.0.2.1"], timeout=60)
    seqs = [int(s) for s in re.findall(r"icmp_seq=(\d+)", result.stdout)]
    # With a deadline ping keeps sending until 40 replies came, and prints every reply
    # queued when the 40th does: a burst of late ones can add one or two more.
    assert len(set(seqs)) >= 40, seqs
    inversions = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
    assert inversions >= 3, seqs  # replies arrive out of order: about half go at once, the rest 0.1-0.9 s late


def test_ingress_delay_goes_through_an_ifb_and_leaves_nothing(built, tmp_path):
    fault = tmp_path / "in.yaml"
    fault.write_text("topology: two-clients\ntarget: {node: ns_client1, interface: veth_c1, direction: ingress}\n"
                     "delay: 30ms\n")
    assert built.run("chaos", None, str(fault)).returncode == 0
    assert 29 <= statistics.median(rtts(built, "ns_client1", "10.0.1.1", 30)) <= 36
    assert built.run("chaos", None, "revert", "--all").returncode == 0
    links = built.ip("ns_client1", "-br link").stdout
    assert "nkifb" not in links
    assert "ingress" not in subprocess.run(["tc", "-n", built.ns("ns_client1"), "qdisc", "show"],
                                           capture_output=True, text=True, check=True).stdout


def test_a_declared_delay_impairment_applies_and_drifts(lab, tmp_path):
    manifest = tmp_path / "slow.yaml"
    manifest.write_text(open("topologies/impaired-link.yaml").read().replace(
        "impair: {rate: 10mbit}", "impair: {rate: 10mbit, delay: 20ms, loss: 1%}"))
    lab.applied(manifest)
    assert lab.run("drift", manifest).returncode == 0
    assert lab.ping("office", "10.0.7.1")
    median = statistics.median(rtts(lab, "office", "10.0.7.1", 30))
    assert 39 <= median <= 46, median  # 20 ms each way
    subprocess.run(["tc", "-n", lab.ns("office"), "qdisc", "change", "dev", "uplink", "root", "handle", "4e4b:",
                    "netem", "delay", "5ms"], check=True, timeout=10)
    code, doc = lab.json("drift", manifest)
    assert code == 2 and any(c["field"] == "delay_us" for d in doc["differences"] for c in d["changes"])
    assert lab.run("apply", manifest).returncode == 0
    assert lab.run("drift", manifest).returncode == 0
    time.sleep(0.1)
