"""`netkeel doctor` on the firewalled two-clients lab: healthy, then broken by
hand one way at a time; the reachability and routing checks must name exactly
that cause and that hop. And the icmp_sweep agent in a namespace."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

LAB = "topologies/two-clients.yaml"
MINE = ("reachability", "routing")


@pytest.fixture
def built(lab):
    return lab.applied(LAB)


def doctor(lab, *args):
    """(exit code, the JSON report, seconds) of the whole doctor."""
    began = time.monotonic()
    result = lab.run("doctor", LAB, "--json", *args, timeout=120)
    seconds = time.monotonic() - began
    assert result.returncode in (0, 2), result.stderr
    return result.returncode, json.loads(result.stdout), seconds


def mine(doc) -> list:
    return [f for f in doc["findings"] if f["check"] in MINE]


def run(lab, node, *argv):
    subprocess.run(["ip", "netns", "exec", lab.ns(node), *argv], check=True, timeout=10, capture_output=True)


def test_the_healthy_lab_has_no_findings(built):
    code, doc, seconds = doctor(built)
    print(f"doctor on two-clients: {seconds:.2f} s (timed in bench/doctor_scale.py, never asserted here)")
    assert (code, doc["healthy"], doc["findings"]) == (0, True, [])
    assert {"reachability", "routing"} <= set(doc["checks"])


def test_forwarding_off_on_the_server_is_named_at_the_server(built):
    run(built, "ns_server", "sysctl", "-qw", "net.ipv4.ip_forward=0")
    code, doc, _ = doctor(built)
    assert code == 2
    found = mine(doc)
    assert len(found) == 1, found
    (f,) = found
    assert (f["check"], f["where"], f["nodes"]) == ("reachability", "ns_server", ["ns_server"])
    assert "net.ipv4.ip_forward = 0" in f["title"]
    assert any(line.startswith("ns_client1 -> ns_client2 10.0.2.2: 0/3 answered") for line in f["evidence"])
    assert "netkeel apply" in f["fix"]  # the manifest has it as 1


def test_client2_without_its_default_route_is_named_at_client2(built):
    built.ip("ns_client2", "route del default")
    code, doc, _ = doctor(built)
    found = mine(doc)
    assert code == 2 and len(found) == 1, found
    (f,) = found
    assert (f["check"], f["where"]) == ("reachability", "ns_client2")
    assert "to default via 10.0.2.1" in f["title"]
    # client2 still reaches client1's side through the masquerade (its replies go to 10.0.2.1);
    # what it cannot reach is the server's other address
    assert any(line.startswith("ns_client2 -> ns_server 10.0.1.1: 0/3") for line in f["evidence"])


def asymmetric_route_on_client1(lab):
    """A second link client1 - client2 (bk1 10.0.5.1/30, bk2 10.0.5.2/30); client1
    sends to 10.0.2.2 through it, keeping 10.0.1.2 as the source; client2 filters
    by reverse path, strictly, and its way back to 10.0.1.2 is its default route."""
    lab.ip("ns_client1", f"link add bk1 type veth peer name bk2 netns {lab.ns('ns_client2')}")
    lab.ip("ns_client1", "addr add 10.0.5.1/30 dev bk1")
    lab.ip("ns_client2", "addr add 10.0.5.2/30 dev bk2")
    lab.ip("ns_client1", "link set bk1 up")
    lab.ip("ns_client2", "link set bk2 up")
    lab.ip("ns_client1", "route add 10.0.2.2/32 via 10.0.5.2 src 10.0.1.2")
    for name in ("all", "bk2"):
        run(lab, "ns_client2", "sysctl", "-qw", f"net.ipv4.conf.{name}.rp_filter=1")


def test_rp_filter_on_an_asymmetric_path_is_named_at_the_interface(built):
    asymmetric_route_on_client1(built)
    code, doc, _ = doctor(built)
    found = mine(doc)
    assert code == 2 and len(found) == 1, found
    (f,) = found
    assert (f["check"], f["where"]) == ("routing", "ns_client2/bk2")
    assert "rp_filter" in f["title"]
    text = "\n".join(f["evidence"])
    assert "net.ipv4.conf.all.rp_filter = 1" in text and "route back leaves by veth_c2 via 10.0.2.1" in text
    assert "ns_client1 -> ns_client2 10.0.2.2 (from 10.0.1.2): the request from 10.0.1.2" in text
    assert "there: ns_client1[bk1] -> [bk2]ns_client2" in text
    # alone, the reachability check traces the lost pings to the same place
    code, doc, _ = doctor(built, "--only", "reachability")
    (f,) = mine(doc)
    assert (f["where"], code) == ("ns_client2/bk2", 2)
    assert "rp_filter" in f["title"] and "on the way there" in f["title"]


def test_a_drop_rule_added_by_hand_is_named_with_its_table_chain_and_text(built):
    run(built, "ns_server", "nft", "insert", "rule", "inet", "netkeel_filter", "forward", "ip", "daddr", "10.0.2.2",
        "icmp", "type", "echo-request", "drop")
    code, doc, _ = doctor(built)
    found = mine(doc)
    assert code == 2 and len(found) == 1, found
    (f,) = found
    assert (f["check"], f["where"]) == ("reachability", "ns_server")
    assert "not the manifest's" in f["title"]
    live = next(line for line in f["evidence"] if line.startswith("live: "))
    assert "table inet netkeel_filter chain forward rule 1" in live and "drop" in live
    assert "not in the manifest" in live
    assert any("differs from the manifest" in line for line in f["evidence"])


def test_a_policy_the_kernel_does_not_enforce_is_a_finding(built):
    run(built, "ns_server", "nft", "chain", "inet", "netkeel_filter", "forward", "{ policy accept; }")
    code, doc, _ = doctor(built)
    found = mine(doc)
    assert code == 2 and len(found) == 1, found
    (f,) = found
    assert (f["check"], f["where"]) == ("reachability", "ns_server")
    assert "lets through what its policy drops" in f["title"]
    text = "\n".join(f["evidence"])
    assert "the policy: table inet netkeel_filter chain forward: policy drop" in text
    assert "ns_client2 -> ns_client1 10.0.1.2: 3/3 answered" in text


def test_a_down_interface_is_one_finding_at_that_interface(built):
    built.ip("ns_client2", "link set veth_c2 down")
    code, doc, _ = doctor(built, "--only", "reachability")
    found = mine(doc)
    assert code == 2 and len(found) == 1, found
    (f,) = found
    assert (f["where"], f["title"], f["nodes"]) == ("ns_client2/veth_c2", "ns_client2/veth_c2 is down", ["ns_client2"])
    # from the server and client1 the segment is cut; from client2 its routes went with the device
    text = "\n".join(f["evidence"])
    assert "ns_server -> ns_client2 10.0.2.2: 0/3" in text and "ns_client2 -> ns_server 10.0.1.1: 0/3" in text


def test_an_active_partition_fault_is_named(built):
    result = built.run("chaos", "partition-client2", "--duration", "30s")
    assert result.returncode == 0, result.stderr
    try:
        code, doc, _ = doctor(built, "--only", "reachability")
    finally:
        built.run("chaos", None, "revert", "--all", "--ns-prefix", built.prefix)
    found = mine(doc)
    assert code == 2 and len(found) == 1, found
    (f,) = found
    assert f["title"].startswith("a chaos fault is active: inet netkeel_chaos_")
    assert set(f["nodes"]) == {"ns_client1", "ns_server", "ns_client2"}
    assert any(line.startswith("ns_client1 -> ns_client2 10.0.2.2: 0/3") for line in f["evidence"])
    assert not any(line.startswith("ns_client2 -> ns_client1") for line in f["evidence"])  # the policy's own drop


def test_icmp_sweep_agent_pings_every_target_and_writes_a_line_each(built):
    spec = {"mode": "icmp_sweep", "targets": ["10.0.2.2", "10.0.1.1", "192.0.2.1"], "count": 3,
            "interval_ms": 1, "timeout_ms": 300, "deadline": time.time() + 10}
    result = built.exec("ns_client1", [sys.executable, "-m", "toolkit.experiment.agent", json.dumps(spec)])
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["target"] for line in lines] == spec["targets"]
    assert [(line["sent"], line["answered"]) for line in lines] == [(3, 3), (3, 3), (3, 0)]
    assert lines[0]["rtt_ms"] > 0 and lines[2]["rtt_ms"] is None
