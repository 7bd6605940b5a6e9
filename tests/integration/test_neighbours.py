"""The static-neighbours kind end to end: apply, traffic that never asks ARP,
drift after `ip neigh replace`, repair, an entry made by hand, rollback."""

from __future__ import annotations

LAB = "topologies/static-neighbours.yaml"


def permanent(lab, node: str) -> set:
    out = lab.ip(node, "neigh show nud permanent").stdout
    return {(f[0], f[2], f[4]) for f in (line.split() for line in out.splitlines()) if len(f) >= 5}


def test_static_entries_apply_drift_repair_and_roll_back(lab, tmp_path):
    lab.applied(LAB)
    assert permanent(lab, "host_a") == {("10.0.9.2", "eth0", "02:00:00:00:09:02"),
                                        ("fd00:9::2", "eth0", "02:00:00:00:09:02")}
    assert "proto 144" in lab.ip("host_a", "neigh show nud permanent").stdout  # netkeel's mark
    # Traffic uses the entry: no ARP request is ever needed, yet it gets through.
    assert lab.ping("host_a", "10.0.9.2", count=2)
    assert lab.run("drift", LAB).returncode == 0

    lab.ip("host_a", "neigh replace 10.0.9.2 lladdr 02:00:00:00:09:99 dev eth0 nud permanent")
    lab.ip("host_b", "neigh add 10.0.9.77 lladdr 02:00:00:00:09:77 dev eth0 nud permanent")
    code, doc = lab.json("drift", LAB)
    assert code == 2
    seen = {(d["node"], d["object"], d["difference"]) for d in doc["differences"]}
    assert seen == {("host_a", "neighbour 10.0.9.2 on eth0", "changed"),
                    ("host_b", "neighbour 10.0.9.77 on eth0", "unexpected")}
    [changed] = [d for d in doc["differences"] if d["difference"] == "changed"]
    assert changed["changes"] == [{"field": "mac", "desired": "02:00:00:00:09:02", "live": "02:00:00:00:09:99"}]

    assert lab.run("apply", LAB).returncode == 0
    assert lab.run("drift", LAB).returncode == 0
    assert ("10.0.9.77", "eth0", "02:00:00:00:09:77") not in permanent(lab, "host_b")

    # A version without host_a's entries; rollback brings them back exactly.
    before = permanent(lab, "host_a")
    fewer = tmp_path / "fewer.yaml"
    text = open(LAB).read()
    fewer.write_text(text.replace('      - {address: 10.0.9.2, mac: "02:00:00:00:09:02", interface: eth0}\n', "")
                         .replace('      - {address: "fd00:9::2", mac: "02:00:00:00:09:02", interface: eth0}\n', "")
                         .replace("  host_a:\n    neighbours:\n", "  host_a: {}\n"))
    assert lab.run("apply", fewer).returncode == 0
    assert permanent(lab, "host_a") == set()
    assert lab.run("rollback", None).returncode == 0
    assert permanent(lab, "host_a") == before
    assert lab.run("drift", LAB).returncode == 0
