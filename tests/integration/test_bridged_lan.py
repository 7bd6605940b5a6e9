"""A bridged, dual-stack segment of four nodes, a routed uplink, IPv6 routes."""

from __future__ import annotations

import pytest

LAB = "topologies/bridged-lan.yaml"


@pytest.fixture
def built(lab):
    return lab.applied(LAB)


@pytest.mark.parametrize("source, target", [
    ("h1", "192.168.50.13"), ("h1", "fd00:50::13"),          # across the bridge
    ("h2", "10.60.0.2"), ("h2", "fd00:60::2"),               # routed through gw
    ("upstream", "192.168.50.11"), ("upstream", "fd00:50::12"),
])
def test_traffic_crosses_the_bridge_and_the_router(built, source, target):
    assert built.ping(source, target)


def test_ports_are_enslaved_and_reapply_is_a_no_op(built):
    ports = built.ip("sw", "-br link show master br0").stdout
    assert {line.split("@")[0] for line in ports.splitlines()} == {"sw_h1", "sw_h2", "sw_h3", "sw_gw"}
    assert "mtu 9000" in built.ip("gw", "link show dev up0").stdout
    code, doc = built.json("plan", LAB)
    assert code == 0 and doc["counts"]["total"] == 0


def test_a_port_released_by_hand_is_drift_and_is_enslaved_again(built):
    built.ip("sw", "link set sw_h2 nomaster")
    code, doc = built.json("drift", LAB)
    assert code == 2
    [difference] = doc["differences"]
    assert difference["object"] == "link sw_h2"
    assert difference["changes"] == [{"field": "master", "desired": "br0", "live": ""}]
    assert built.run("apply", LAB).returncode == 0
    assert built.ping("h2", "192.168.50.11")


def test_an_ipv6_route_changed_by_hand_is_repaired(built):
    built.ip("upstream", "-6 route replace fd00:50::/64 via fe80::1 dev up0 metric 100")
    code, doc = built.json("drift", LAB)
    assert code == 2
    assert [(d["object"], [c["field"] for c in d["changes"]]) for d in doc["differences"]] == \
        [("route fd00:50::/64 metric 100", ["via", "proto"])]  # (`ip route replace` makes it proto boot)
    assert built.run("apply", LAB).returncode == 0
    assert built.ping("upstream", "fd00:50::11")


def test_a_forwarding_entry_added_by_hand_to_the_bridge_is_reported_and_left_alone(built):
    """A static entry that sends h2's frames to h1's port, and drift said in sync
    (found by review). It is foreign: reported, never changed;
    the bridge's own entries (its ports' addresses, learned ones) are not read."""
    mac = json_link(built, "h2", "eth0")["address"]
    built.exec("sw", ["bridge", "fdb", "replace", mac, "dev", "sw_h1", "master", "static"], check=True)
    code, doc = built.json("drift", LAB)
    assert code == 2 and doc["differences"] == [], doc
    [entry] = [u for u in doc["unmanaged"] if u["kind"] == "fdb_foreign"]
    # (on sw_h1, or on sw_h2 once h2 has sent a frame: the bridge moves a static entry it learns elsewhere)
    port = entry["object"].rpartition(" on ")[2]
    assert (entry["node"], entry["object"]) == ("sw", f"forwarding entry {mac} on {port}") and \
        port in ("sw_h1", "sw_h2"), entry
    assert entry["reason"].startswith("a static forwarding entry in bridge br0's table, added by hand"), entry
    assert built.run("apply", LAB).returncode == 0  # left alone
    for either in ("sw_h1", "sw_h2"):  # where it is now: the bridge may have moved it again meanwhile
        built.exec("sw", ["bridge", "fdb", "del", mac, "dev", either, "master"])
    assert f"{mac} dev" not in built.exec("sw", ["bridge", "fdb", "show", "static"], check=True).stdout
    assert built.run("drift", LAB).returncode == 0
    assert built.ping("h1", "192.168.50.12")


def json_link(lab, node: str, ifname: str) -> dict:
    import json

    return json.loads(lab.ip(node, f"-j link show dev {ifname}").stdout)[0]
