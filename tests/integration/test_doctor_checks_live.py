"""`netkeel doctor` in real labs: the mtu, duplicates, gateways and conntrack checks
find nothing on healthy labs, and name exactly the failure each test makes (by
hand, inside the lab's own namespaces, or with a small lab of its own).

Other checks (reachability, routing) may run too: the assertions are about
these four checks' findings."""

from __future__ import annotations

import importlib.util
import subprocess
import textwrap
import time

import pytest

MINE = ("mtu", "duplicates", "gateways", "conntrack")
TWO = "topologies/two-clients.yaml"
VRRP = "topologies/vrrp-pair.yaml"
LAN = "topologies/bridged-lan.yaml"


def doctor(lab, manifest) -> tuple:
    """(exit code, this suite's checks' findings, seconds) of `netkeel doctor --json`."""
    started = time.monotonic()
    code, doc = lab.json("doctor", manifest)
    seconds = time.monotonic() - started
    assert code in (0, 2), doc
    return code, [f for f in doc["findings"] if f["check"] in MINE], seconds


def ip(lab, node, *args):
    subprocess.run(["ip", "-n", lab.ns(node), *args], check=True, timeout=10, capture_output=True)


@pytest.fixture
def two(lab):
    return lab.applied(TWO)


@pytest.fixture
def pair(lab):
    """vrrp-pair with r1 holding the VIP; destroyed afterwards (its speakers with it)."""
    lab.applied(VRRP)
    deadline = time.monotonic() + 5
    while " 10.0.3.254/" not in lab.ip("r1", "-4 addr show dev eth0").stdout:
        assert time.monotonic() < deadline, "r1 did not take the VIP"
        time.sleep(0.05)
    yield lab
    lab.run("chaos", None, "revert", "--all")
    lab.run("destroy", VRRP)


def test_two_clients_is_healthy(two):
    code, found, seconds = doctor(two, TWO)
    assert found == [], found
    print(f"doctor on two-clients: {seconds:.2f} s (timed in bench/doctor_scale.py, never asserted here)")


def test_a_mismatched_mtu_is_named_and_nothing_else(two):
    ip(two, "ns_client2", "link", "set", "veth_c2", "mtu", "1400")
    code, found, _ = doctor(two, TWO)
    assert code == 2
    assert [(f["check"], f["where"]) for f in found] == [("mtu", "ns_client2/veth_c2 - ns_server/veth_srv_c2")]
    assert "MTU 1400" in " ".join(found[0]["evidence"])


def test_a_default_route_via_a_wrong_gateway(two):
    ip(two, "ns_client1", "route", "replace", "default", "via", "10.0.1.9")
    code, found, _ = doctor(two, TWO)
    assert code == 2
    assert [(f["check"], f["title"]) for f in found] == \
        [("gateways", "ns_client1's default gateway 10.0.1.9 is no address on its segment")]
    assert "netkeel apply" in found[0]["fix"] and "10.0.1.1" in found[0]["fix"]


def test_a_gateway_that_does_not_answer(two):
    ip(two, "ns_server", "link", "set", "veth_srv_c2", "down")
    code, found, _ = doctor(two, TWO)
    assert ("gateways", "ns_client2's default gateway 10.0.2.1 does not answer") in \
        [(f["check"], f["title"]) for f in found], found
    assert {f["check"] for f in found} == {"gateways"}


def test_a_gateway_that_does_not_forward(two):
    two.exec("ns_server", ["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=True)
    code, found, _ = doctor(two, TWO)
    assert sorted(f["title"] for f in found) == [
        "ns_client1's default gateway 10.0.1.1 is ns_server, which does not forward",
        "ns_client2's default gateway 10.0.2.1 is ns_server, which does not forward"], found
    assert all("`netkeel apply` turns forwarding back on on ns_server" in f["fix"] for f in found), found


def test_the_wrong_gateway_in_the_manifest_gets_a_diff(lab, tmp_path):
    text = open("topologies/two-clients-plain.yaml").read()
    healthy = tmp_path / "two.yaml"
    healthy.write_text(text)
    lab.applied(healthy)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(text.replace("via: 10.0.2.1", "via: 10.0.2.7"))
    lab.applied(wrong)
    code, found, _ = doctor(lab, wrong)
    assert [(f["check"], f["where"]) for f in found] == [("gateways", "ns_client2: default via 10.0.2.7 dev veth_c2")]
    assert "-        via: 10.0.2.7\n+        via: 10.0.2.1\n" in found[0]["diff"]


def test_vrrp_pair_is_healthy_and_a_duplicate_address_is_named(pair):
    code, found, _ = doctor(pair, VRRP)
    assert found == [], found
    ip(pair, "client", "addr", "add", "10.0.3.3/24", "dev", "eth0")  # r2's address
    code, found, _ = doctor(pair, VRRP)
    assert code == 2
    assert [(f["check"], f["title"]) for f in found] == [("duplicates", "10.0.3.3 is answered by 2 MACs")]
    assert set(found[0]["nodes"]) == {"client", "r2"}
    assert "remove 10.0.3.3 from client/eth0" in found[0]["fix"]


def test_a_split_brain_vip_is_named_once(pair):
    # Long enough for a whole doctor on a slow machine; the fixture's revert ends it.
    result = pair.run("chaos", None, "vip-split-brain", "--ns-prefix", pair.prefix, "--duration", "60s")
    assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 3
    while " 10.0.3.254/" not in pair.ip("r2", "-4 addr show dev eth0").stdout:
        assert time.monotonic() < deadline, "the partition did not make r2 active"
        time.sleep(0.05)
    code, found, _ = doctor(pair, VRRP)
    vips = [f for f in found if f["check"] == "duplicates"]
    assert [f["title"] for f in vips] == ["VIP 10.0.3.254 of group gw is held by 2 nodes at once"], found
    assert set(vips[0]["nodes"]) == {"r1", "r2"}


def test_a_dad_failure_and_a_stale_neighbour_on_the_lan(lab):
    lab.applied(LAN)
    code, found, _ = doctor(lab, LAN)
    assert found == [], found
    ip(lab, "h2", "addr", "add", "fd00:50::11/64", "dev", "eth0")  # h1's, with DAD
    ip(lab, "h1", "neigh", "replace", "192.168.50.13", "lladdr", "02:de:ad:be:ef:01", "dev", "eth0", "nud",
       "permanent")
    time.sleep(2.5)  # DAD: one probe a second
    code, found, _ = doctor(lab, LAN)
    assert sorted((f["check"], f["where"], f["severity"]) for f in found) == \
        [("duplicates", "h1/eth0", "error"), ("duplicates", "h2/eth0", "error")], found
    titles = " ".join(f["title"] for f in found)
    assert "duplicate address detection failed for fd00:50::11" in titles and "02:de:ad:be:ef:01" in titles


CHAIN = """\
    name: chain
    description: a - r1 - r2 - b; the r1-r2 link narrower than the ends
    nodes:
      a: {routes: [{to: default, via: 10.1.0.1}]}
      r1:
        sysctls: {net.ipv4.ip_forward: 1}
        routes: [{to: 10.3.0.0/24, via: 10.2.0.2}]
        policies: [r1.yaml]
      r2:
        sysctls: {net.ipv4.ip_forward: 1}
        routes: [{to: 10.1.0.0/24, via: 10.2.0.1}]
      b: {routes: [{to: default, via: 10.3.0.1}]}
    links:
      - endpoints:
          - {node: a, interface: eth0, addresses: [10.1.0.2/24]}
          - {node: r1, interface: eth0, addresses: [10.1.0.1/24]}
      - mtu: 1400
        endpoints:
          - {node: r1, interface: eth1, addresses: [10.2.0.1/24]}
          - {node: r2, interface: eth0, addresses: [10.2.0.2/24]}
      - endpoints:
          - {node: r2, interface: eth1, addresses: [10.3.0.1/24]}
          - {node: b, interface: eth0, addresses: [10.3.0.2/24]}
    """
R1_POLICY = """\
    tables:
      filter:
        family: inet
        chains:
          output:
            hook: output
            policy: accept
            rules:
              - {protocol: icmp, icmp_type: %s, action: drop, comment: no ICMP errors}
    """


def test_a_pmtud_black_hole_is_named_with_the_rule(lab, tmp_path):
    manifest = tmp_path / "chain.yaml"
    manifest.write_text(textwrap.dedent(CHAIN))
    policy = tmp_path / "r1.yaml"
    policy.write_text(textwrap.dedent(R1_POLICY % "timestamp-reply"))  # harmless: r1 tells a the path MTU
    lab.applied(manifest)
    code, found, _ = doctor(lab, manifest)
    assert found == [], found
    policy.write_text(textwrap.dedent(R1_POLICY % "destination-unreachable"))
    lab.applied(manifest)
    code, found, _ = doctor(lab, manifest)
    assert code == 2
    assert [(f["check"], f["where"]) for f in found] == [("mtu", "a -> b (10.3.0.2), at r1/eth1")], found
    f = found[0]
    assert "path MTU 1400" in " ".join(f["evidence"])
    if importlib.util.find_spec("toolkit.doctor.nftables") is not None:  # the static evaluator names the rule
        assert "r1.yaml:" in f["fix"] and "chain output rule 1" in f["fix"]


TRIANGLE = """\
    name: triangle
    description: a and b joined through r1 and through r2; both ways through r1
    nodes:
      a: {routes: [{to: 10.2.0.0/16, via: 10.1.1.1}]}
      r1:
        sysctls: {net.ipv4.ip_forward: 1}
        routes: [{to: 10.1.2.2/32, via: 10.1.1.2}, {to: 10.2.2.2/32, via: 10.2.1.2}]
        policies: [stateful.yaml]
      r2:
        sysctls: {net.ipv4.ip_forward: 1}
        routes: [{to: 10.1.1.2/32, via: 10.1.2.2}, {to: 10.2.1.2/32, via: 10.2.2.2}]
        policies: [stateful.yaml]
      b: {routes: [{to: 10.1.0.0/16, via: 10.2.1.1}]}
    links:
      - endpoints:
          - {node: a, interface: eth1, addresses: [10.1.1.2/24]}
          - {node: r1, interface: eth0, addresses: [10.1.1.1/24]}
      - endpoints:
          - {node: a, interface: eth2, addresses: [10.1.2.2/24]}
          - {node: r2, interface: eth0, addresses: [10.1.2.1/24]}
      - endpoints:
          - {node: r1, interface: eth1, addresses: [10.2.1.1/24]}
          - {node: b, interface: eth1, addresses: [10.2.1.2/24]}
      - endpoints:
          - {node: r2, interface: eth1, addresses: [10.2.2.1/24]}
          - {node: b, interface: eth2, addresses: [10.2.2.2/24]}
    """
STATEFUL = """\
    tables:
      filter:
        family: inet
        chains:
          forward:
            hook: forward
            policy: accept
            rules:
              - {ct_state: [established, related], action: accept}
    """


def test_a_conntrack_asymmetry_is_named_with_the_route(lab, tmp_path):
    manifest = tmp_path / "triangle.yaml"
    manifest.write_text(textwrap.dedent(TRIANGLE))
    (tmp_path / "stateful.yaml").write_text(textwrap.dedent(STATEFUL))
    lab.applied(manifest)
    assert lab.ping("a", "10.2.1.2")
    code, found, _ = doctor(lab, manifest)
    assert found == [], found
    ip(lab, "b", "route", "replace", "10.1.0.0/16", "via", "10.2.2.1")  # b answers through r2
    assert lab.ping("a", "10.2.1.2")
    code, found, _ = doctor(lab, manifest)
    assert code == 2
    assert {f["check"] for f in found} == {"conntrack"}, found
    flows = {f["where"] for f in found}
    assert "r1: from 10.1.1.2" in flows, flows
    assert flows <= {"r1: from 10.1.1.2", "r2: from 10.2.2.2"}, flows  # (r2: the doctor's own probes from b)
    f = next(f for f in found if f["where"] == "r1: from 10.1.1.2")
    assert f["title"].startswith("r1 never sees the replies to 10.1.1.2 (a) from 10.2.1.2")  # (and b's other address)
    assert "icmp (type 8)" in f["evidence"][0]
    assert "reply path: b/eth2 -> r2/eth0 -> a" in " ".join(f["evidence"])
    assert "b's route to 10.1.0.0/16 via 10.2.1.1 (live: via 10.2.2.1)" in f["fix"]
