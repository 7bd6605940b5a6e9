"""The two-clients firewall and NAT (policies/two-clients-server.yaml), proven
with real traffic; drift and repair of rules, sets, policies; foreign tables."""

from __future__ import annotations

import subprocess

import pytest

LAB = "topologies/two-clients.yaml"


@pytest.fixture
def built(lab):
    return lab.applied(LAB)


def test_input_accepts_ping_and_the_time_server_and_drops_the_rest(built):
    assert built.ping("ns_client1", "10.0.1.1")
    assert built.ping("ns_client2", "10.0.2.1")
    with built.server("ns_server", "udp", 8080):
        assert built.connect("ns_client1", "udp", "10.0.1.1", 8080) == "10.0.1.2"
        assert built.connect("ns_client2", "udp", "10.0.2.1", 8080) == "10.0.2.2"
    with built.server("ns_server", "udp", 8081), built.server("ns_server", "tcp", 22):
        assert built.connect("ns_client1", "udp", "10.0.1.1", 8081) == "TIMEOUT"
        assert built.connect("ns_client1", "tcp", "10.0.1.1", 22) == "TIMEOUT"


def test_client1_reaches_client2_masqueraded_but_not_the_other_way(built):
    with built.server("ns_client2", "tcp", 9000), built.server("ns_client1", "tcp", 9000):
        # client2 sees client1's connection come from the server's address.
        assert built.connect("ns_client1", "tcp", "10.0.2.2", 9000) == "10.0.2.1"
        assert built.connect("ns_client2", "tcp", "10.0.1.2", 9000) == "TIMEOUT"
    assert built.ping("ns_client1", "10.0.2.2")
    assert not built.ping("ns_client2", "10.0.1.2", count=2)


def test_the_port_forward_reaches_the_listener_in_client1(built):
    with built.server("ns_client1", "tcp", 8022):
        # The listener sees client2 itself: the forward is DNAT only.
        assert built.connect("ns_client2", "tcp", "10.0.2.1", 8022) == "10.0.2.2"
        # Straight to client1's port is a new connection from client2: blocked.
        assert built.connect("ns_client2", "tcp", "10.0.1.2", 8022) == "TIMEOUT"


def nft(lab, *args):
    return subprocess.run(["ip", "netns", "exec", lab.ns("ns_server"), "nft", *args],
                          capture_output=True, text=True, timeout=10, check=True).stdout


def test_hand_edits_are_drift_and_apply_repairs_them(built):
    nft(built, "add", "rule", "inet", "netkeel_filter", "input", "tcp", "dport", "22", "accept")
    nft(built, "add", "element", "inet", "netkeel_filter", "clients", "{ 192.0.2.0/24 }")
    nft(built, "chain", "inet", "netkeel_filter", "forward", "{ policy accept; }")
    handle = [line.split("# handle ")[1] for line in nft(built, "-a", "list", "chain", "ip", "netkeel_nat",
                                                         "postrouting").splitlines() if "masquerade" in line][0]
    nft(built, "delete", "rule", "ip", "netkeel_nat", "postrouting", "handle", handle)

    code, doc = built.json("drift", LAB)
    assert code == 2
    seen = {(d["object"], item["what"], item["desired"], item["live"])
            for d in doc["differences"] for item in d["details"]}
    assert ("nft table inet netkeel_filter", "rule not in the manifest, in input (#5)",
            "(absent)", "tcp dport 22 accept") in seen
    assert ("nft table inet netkeel_filter", "set clients element", "(absent)", "192.0.2.0/24") in seen
    assert ("nft table inet netkeel_filter", "chain forward policy", "drop", "accept") in seen
    assert any(what == "rule missing from postrouting (#1)" and "masquerade" in desired
               for obj, what, desired, live in seen)

    assert built.run("apply", LAB).returncode == 0
    assert built.run("drift", LAB).returncode == 0
    assert "tcp dport 22" not in nft(built, "list", "table", "inet", "netkeel_filter")
    with built.server("ns_client2", "tcp", 9000):
        assert built.connect("ns_client1", "tcp", "10.0.2.2", 9000) == "10.0.2.1"  # masquerade is back


def test_a_foreign_table_is_reported_as_unmanaged_and_survives_apply(built):
    nft(built, "add", "table", "ip", "theirs")
    nft(built, "add", "chain", "ip", "theirs", "c")
    code, doc = built.json("drift", LAB)
    assert code == 2 and doc["differences"] == []
    assert doc["unmanaged"] == [{"kind": "nft_foreign", "node": "ns_server", "namespace": built.ns("ns_server"),
                                 "object": "nft table ip theirs"}]
    assert "unmanaged" in built.run("drift", LAB).stdout
    assert built.run("apply", LAB).returncode == 0
    assert "table ip theirs" in nft(built, "list", "tables")
    assert built.run("plan", LAB).returncode == 0  # nothing netkeel would change


def test_removing_the_policy_removes_only_netkeels_tables(built, tmp_path):
    nft(built, "add", "table", "inet", "theirs")
    bare = tmp_path / "bare.yaml"
    bare.write_text(open(LAB).read().replace("    policies:\n      - ../policies/two-clients-server.yaml", ""))
    assert "policies" not in bare.read_text().split("nodes:")[1]
    result = built.run("apply", bare)
    assert result.returncode == 0, result.stderr
    tables = nft(built, "list", "tables")
    assert "netkeel_" not in tables and "table inet theirs" in tables
    assert built.ping("ns_client2", "10.0.1.2")  # no firewall any more
