"""Manifest changes whose kernel side effects the planner must foresee: a subnet's
primary address going (its secondaries go too), a veth re-created under a
per-interface sysctl, a device set down (its IPv6 addresses go), and hand-made
stateful nft objects that rollback must bring back."""

from __future__ import annotations

import subprocess

import pytest

BASE = """\
name: transitions
nodes:
  a:
    sysctls: {net.ipv4.conf.va.forwarding: 1}
  b: {}
  c: {}
links:
  - endpoints:
      - {node: a, interface: va, addresses: [10.0.1.2/24, 10.0.1.3/24, "fd00::2/64"]}
      - {node: b, interface: vb, addresses: [10.0.1.1/24]}
"""
VARIANTS = {
    "base": BASE,
    "primary removed": BASE.replace('[10.0.1.2/24, 10.0.1.3/24, "fd00::2/64"]', '[10.0.1.3/24, "fd00::2/64"]'),
    "peer moved": BASE.replace("node: b, interface: vb", "node: c, interface: vb"),
    "set down": BASE.replace('"fd00::2/64"]}', '"fd00::2/64"], state: down}'),
}


@pytest.mark.parametrize("change", ["primary removed", "peer moved", "set down"])
def test_each_change_applies_converges_and_goes_back(lab, tmp_path, change):
    files = {}
    for name, text in VARIANTS.items():
        files[name] = tmp_path / f"{name.replace(' ', '-')}.yaml"
        files[name].write_text(text)
    for step in ("base", change, "base"):
        result = lab.run("apply", files[step])
        assert result.returncode == 0, f"{step}: {result.stderr}"
        assert lab.run("plan", files[step]).returncode == 0, f"second apply of {step} would change things"


def test_hand_made_maps_and_named_counters_come_back_with_rollback(lab):
    lab.applied("topologies/two-clients.yaml")

    def nft(*args):
        return subprocess.run(["ip", "netns", "exec", lab.ns("ns_server"), "nft", *args], capture_output=True,
                              text=True, check=True, timeout=10).stdout

    nft("add", "map", "inet", "netkeel_filter", "m", "{ type ipv4_addr : verdict; elements = { 10.9.9.9 : drop } }")
    nft("add", "counter", "inet", "netkeel_filter", "cnt")
    nft("insert", "rule", "inet", "netkeel_filter", "input", "ip", "saddr", "vmap", "@m")
    nft("add", "rule", "inet", "netkeel_filter", "input", "counter", "name", "cnt")
    code, doc = lab.json("drift", "topologies/two-clients.yaml")
    assert code == 2
    whats = {d["what"] for diff in doc["differences"] for d in diff["details"]}
    assert {"map m", "counter cnt"} <= whats
    before = nft("list", "table", "inet", "netkeel_filter")
    assert lab.run("apply", "topologies/two-clients.yaml").returncode == 0
    assert "map m" not in nft("list", "table", "inet", "netkeel_filter")
    assert lab.run("rollback", None).returncode == 0
    after = nft("list", "table", "inet", "netkeel_filter")
    # The map, the counter and both rules, as they were (objects may be listed in another order).
    assert sorted(after.splitlines()) == sorted(before.splitlines())
    assert [line for line in after.splitlines() if "saddr vmap" in line or "name" in line] == \
        [line for line in before.splitlines() if "saddr vmap" in line or "name" in line]


def test_a_hand_made_point_to_point_address_is_removed(lab, tmp_path):
    """Found by review: an address added by hand with a peer (`ip addr add A peer
    B`) could never be removed: the delete named its local address as the one to
    match, where the kernel finds such an address by its peer."""
    manifest = tmp_path / "base.yaml"
    manifest.write_text(BASE)
    lab.applied(manifest)
    lab.ip("a", "addr add 10.88.0.1 peer 10.88.0.2/32 dev va")
    lab.ip("a", "addr add fd88::1 peer fd88::2/128 dev va")
    assert lab.run("drift", manifest).returncode == 2
    applied = lab.run("apply", manifest)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    shown = lab.ip("a", "addr show dev va").stdout
    assert "10.0.1.2/24" in shown and "10.88.0.1" not in shown and "fd88::1" not in shown
    assert lab.run("drift", manifest).returncode == 0


def test_a_hand_made_route_with_a_source_and_metrics_comes_back_with_a_restore(lab, tmp_path):
    """Found by review: a failed apply that had removed a hand-made route with
    metrics made it again without them, and the restore failed its verification
    (`metrics: None -> 'mtu 1000'`); its source address was lost alike."""
    manifest, changed = tmp_path / "base.yaml", tmp_path / "changed.yaml"
    manifest.write_text(BASE)
    changed.write_text(BASE.replace('"fd00::2/64"]', '"fd00::2/64", 10.0.1.4/24]'))
    lab.applied(manifest)
    lab.ip("a", "route add 10.78.0.0/16 dev va src 10.0.1.2 mtu lock 1000 advmss 500")
    before = lab.ip("a", "route show 10.78.0.0/16").stdout
    failed = lab.run("apply", changed, env={"NETKEEL_FAILPOINT": "apply.after:2"})
    assert failed.returncode == 1 and "restored and verified" in failed.stderr, failed.stdout + failed.stderr
    assert lab.ip("a", "route show 10.78.0.0/16").stdout == before
    assert "src 10.0.1.2" in before and "mtu lock 1000" in before and "advmss 500" in before
