"""Defects an adversarial user found (issue 8), each shown fixed with real
namespaces: restores that remove only what they made, veths whose far end is
not netkeel's, addresses restored in their primary/secondary roles."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from labkit import Lab, namespaces_with

TWO = "name: two\nnodes:\n  a: {}\n  b: {}\nlinks:\n  - endpoints:\n      - {node: a, interface: ab}\n" \
      "      - {node: b, interface: ba}\n"


def _links(namespace: str) -> str:
    return subprocess.run(["ip", "-n", namespace, "-br", "link"], capture_output=True, text=True,
                          check=True, timeout=10).stdout


def test_removing_a_node_never_deletes_the_far_end_of_a_veth_netkeel_did_not_make(lab, prefix, tmp_path):
    manifest = tmp_path / "two.yaml"
    manifest.write_text(TWO)
    lab.applied(manifest)
    victim = f"{prefix}victim"
    lab.add_foreign_namespace(victim)
    subprocess.run(["ip", "-n", lab.ns("a"), "link", "add", "hx", "type", "veth", "peer", "name", "hy",
                    "netns", victim], check=True, timeout=10)
    code, doc = lab.json("drift", manifest)
    assert code == 2 and [u["object"] for u in doc["unmanaged"]] == ["link hx"]

    without_a = tmp_path / "one.yaml"
    without_a.write_text("name: two\nnodes:\n  b: {}\n")
    for attempt in (lab.run("destroy", manifest), lab.run("plan", without_a), lab.run("apply", without_a)):
        assert attempt.returncode == 1, attempt.stdout
        assert "link hx" in attempt.stderr and f"{victim}/hy" in attempt.stderr, attempt.stderr
    assert "hy" in _links(victim) and lab.ns("a") in namespaces_with(prefix)

    lab.ip("a", "link del hx")  # as the message says; then the node can go
    assert lab.run("destroy", manifest).returncode == 0
    assert namespaces_with(prefix) == {victim}


def test_a_failed_create_never_removes_a_namespace_someone_else_made(lab, prefix, tmp_path):
    nodes = 150
    manifest = tmp_path / "many.yaml"
    manifest.write_text("name: many\nnodes:\n" + "".join(f"  n{i:03d}: {{}}\n" for i in range(nodes)))
    last = lab.ns(f"n{nodes - 1:03d}")
    proc = lab.start("apply", manifest)
    try:
        deadline = time.monotonic() + 30
        while not namespaces_with(prefix) and time.monotonic() < deadline:
            time.sleep(0.002)
        subprocess.run(["ip", "netns", "add", last], check=False, timeout=10)  # someone else, mid-apply
        assert proc.wait(timeout=120) in (0, 1)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode == 1:  # it lost the race: its restore removed its own namespaces only
        assert namespaces_with(prefix) == {last}
    else:  # it won (made the last one first): then `ip netns add` failed, and all are netkeel's
        assert len(namespaces_with(prefix)) == nodes


def test_two_state_directories_applying_one_manifest_at_once_keep_each_others_namespaces(prefix, tmp_path):
    manifest = tmp_path / "many.yaml"
    manifest.write_text("name: many\nnodes:\n" + "".join(f"  n{i:03d}: {{}}\n" for i in range(100)))
    one, two = Lab(prefix, tmp_path / "state1"), Lab(prefix, tmp_path / "state2")
    first, second = one.start("apply", manifest), two.start("apply", manifest)
    codes = sorted((first.wait(timeout=120), second.wait(timeout=120)))
    assert codes == [0, 1]  # one builds the lab; the other is refused (or fails and restores)
    assert len(namespaces_with(prefix)) == 100
    winner = one if first.returncode == 0 else two
    assert winner.run("drift", manifest).returncode == 0


def test_rollback_restores_a_secondary_address_that_sorts_before_its_primary(lab, tmp_path):
    one = TWO.replace("{node: a, interface: ab}", "{node: a, interface: ab, addresses: [%s]}")
    files = {}
    for name, addrs in (("v1", "10.0.0.9/24"), ("v2", "10.0.0.9/24, 10.0.0.10/24"), ("v3", "")):
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(one % addrs)
    lab.applied(files["v1"])
    lab.applied(files["v2"])
    before = lab.ip("a", "-4 -br addr show dev ab").stdout
    lab.applied(files["v3"])
    result = lab.run("rollback", None)
    assert result.returncode == 0, result.stderr
    assert lab.ip("a", "-4 -br addr show dev ab").stdout == before
    assert lab.run("drift", files["v2"]).returncode == 0


def test_a_namespace_deleted_and_made_again_by_hand_is_refused_not_adopted(lab, prefix, tmp_path):
    manifest = tmp_path / "two.yaml"
    manifest.write_text(TWO)
    lab.applied(manifest)
    b = lab.ns("b")
    subprocess.run(["ip", "netns", "del", b], check=True, timeout=10)
    subprocess.run(["ip", "netns", "add", b], check=True, timeout=10)
    lab.ip("b", "link add hand0 type bridge")
    lab.ip("b", "addr add 192.0.2.1/24 dev lo")
    for command in ("apply", "destroy"):
        refused = lab.run(command, manifest)
        assert refused.returncode == 1 and f"namespace {b} exists but is not the namespace netkeel" in refused.stderr
    assert "hand0" in _links(b) and "192.0.2.1" in lab.ip("b", "addr show dev lo").stdout
    assert lab.run("rollback", None).returncode == 1


def test_destroy_leaves_a_namespace_an_inventory_entry_names_but_netkeel_never_made(lab, prefix, tmp_path):
    import json

    manifest = tmp_path / "two.yaml"
    manifest.write_text(TWO)
    lab.applied(manifest)
    stranger = f"{prefix}stranger"
    lab.add_foreign_namespace(stranger)
    inventory = json.loads((lab.state / "inventory.json").read_text())
    [entry] = inventory["instances"].values()
    entry["namespaces"].append(stranger)
    (lab.state / "inventory.json").write_text(json.dumps(inventory))
    refused = lab.run("destroy", manifest)
    assert refused.returncode == 1 and stranger in refused.stderr
    assert stranger in namespaces_with(prefix)


def test_rollback_brings_back_the_sysctls_of_a_removed_namespace(lab, tmp_path):
    lab.applied("topologies/two-clients-plain.yaml")
    assert lab.ping("ns_client1", "10.0.2.2", count=1)
    text = open("topologies/two-clients-plain.yaml").read()
    no_server = tmp_path / "no-server.yaml"
    no_server.write_text("name: two-clients-plain\nnodes:\n  ns_client1: {}\n  ns_client2: {}\n")
    assert "ns_server" in text and lab.run("apply", no_server).returncode == 0
    result = lab.run("rollback", None)
    assert result.returncode == 0, result.stderr
    forward = lab.exec("ns_server", ["sysctl", "-n", "net.ipv4.ip_forward"], check=True).stdout.strip()
    assert forward == "1"
    assert lab.ping("ns_client1", "10.0.2.2", count=2)


def test_a_namespace_replaced_during_a_command_is_never_touched(prefix):
    """The name of a namespace read earlier in the same command now leads to
    another one: no request reaches either, and removal is refused."""
    from toolkit.errors import KernelError
    from toolkit.kernel import Kernel

    name = f"{prefix}swap"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    with Kernel() as kernel:
        kernel.ns(name).links()  # opened and read: this command knows it
        subprocess.run(["ip", "netns", "del", name], check=True, timeout=10)
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
        subprocess.run(["ip", "-n", name, "link", "add", "theirs", "type", "bridge"], check=True, timeout=10)
        with pytest.raises(KernelError, match="deleted or replaced"):
            kernel.ns(name)
        with pytest.raises(KernelError, match="deleted or replaced"):
            kernel.remove_namespace(name)
    assert "theirs" in _links(name)


def test_sigterm_during_an_apply_restores_and_exits_1(lab, prefix, tmp_path):
    import signal as signals

    manifest = tmp_path / "many.yaml"
    manifest.write_text("name: many\nnodes:\n" + "".join(f"  n{i:03d}: {{}}\n" for i in range(300)))
    proc = subprocess.Popen(lab.argv("apply", manifest), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=lab.env)
    deadline = time.monotonic() + 30
    while not namespaces_with(prefix) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signals.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the apply finished before the signal arrived")
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr
    assert "restored" in stderr
    assert namespaces_with(prefix) == set()
    assert lab.run("plan", manifest).returncode == 2 and "was interrupted" not in lab.run("plan", manifest).stderr


def test_policy_routing_made_by_hand_is_reported_and_left_alone(lab, tmp_path):
    manifest = tmp_path / "two.yaml"
    manifest.write_text(TWO)
    lab.applied(manifest)
    lab.ip("a", "rule add to 10.0.2.0/24 table 100")
    lab.ip("a", "route add blackhole 10.0.2.0/24 table 100")
    code, doc = lab.json("drift", manifest)
    assert code == 2 and doc["differences"] == []
    assert sorted(u["object"] for u in doc["unmanaged"]) == ["route 10.0.2.0/24 table 100", "rule 32765: to 10.0.2.0/24 (inet)"]
    assert lab.run("apply", manifest).returncode == 0
    assert "10.0.2.0/24" in lab.ip("a", "rule show").stdout  # reported, never changed


def test_a_lifetime_or_route_attributes_set_by_hand_are_drift_and_repaired(lab):
    lab.applied("topologies/two-clients-plain.yaml")
    lab.ip("ns_client1", "addr change 10.0.1.2/24 dev veth_c1 valid_lft 300 preferred_lft 100")
    lab.ip("ns_client1", "route replace default via 10.0.1.1 dev veth_c1 proto 144 mtu lock 1000 src 10.0.1.2 "
                         "advmss 500")
    code, doc = lab.json("drift", "topologies/two-clients-plain.yaml")
    assert code == 2
    changed = {(d["object"], c["field"]) for d in doc["differences"] for c in d["changes"]}
    assert changed == {("addr 10.0.1.2/24 on veth_c1", "expires"), ("route default", "src"),
                       ("route default", "metrics")}
    assert lab.run("apply", "topologies/two-clients-plain.yaml").returncode == 0
    assert lab.run("drift", "topologies/two-clients-plain.yaml").returncode == 0
    assert "forever" in lab.ip("ns_client1", "addr show dev veth_c1").stdout
    assert "advmss" not in lab.ip("ns_client1", "route show default").stdout


def test_a_change_takes_away_the_placeholder_a_killed_create_left(lab, prefix, tmp_path):
    manifest = tmp_path / "two.yaml"
    manifest.write_text(TWO)
    lab.applied(manifest)
    subprocess.run(["ip", "netns", "del", lab.ns("b")], check=True, timeout=10)
    placeholder = f"/run/netns/{lab.ns('b')}"
    open(placeholder, "w").close()  # what a kill between the mount point and the mount leaves
    assert lab.run("destroy", manifest).returncode == 0
    assert not os.path.exists(placeholder) and namespaces_with(prefix) == set()


class _MountThenCtrlC:
    """libc, whose mount succeeds and is then cut off by a Ctrl-C."""

    def __init__(self, libc):
        self.libc = libc

    def mount(self, *args):
        result = self.libc.mount(*args)
        if args[0] != b"/proc/thread-self/ns/net":
            return result  # (the run directory made shared first)
        raise KeyboardInterrupt

    def __getattr__(self, name):
        return getattr(self.libc, name)


def test_a_namespace_create_cut_off_after_its_mount_says_interrupted_and_leaves_nothing(prefix, monkeypatch):
    """Found by review: a Ctrl-C just after a namespace's bind mount was reported
    as `netns add: Device or resource busy` (the cleanup's unlink of the mount
    point), not as an interruption, and the mount stayed."""
    from toolkit.kernel import netns

    name = f"{prefix}cut"
    real_unlink = os.unlink

    def busy_once(path, *args, **kwargs):  # as the review met it: the path still a mount point
        monkeypatch.setattr(netns.os, "unlink", real_unlink)
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(netns, "_libc", _MountThenCtrlC(netns._libc))
    monkeypatch.setattr(netns.os, "unlink", busy_once)
    with pytest.raises(KeyboardInterrupt):
        netns.create(name)
    monkeypatch.undo()
    assert not netns.exists(name)  # its mount detached (a placeholder file may stay: the next create takes it)
    netns.create(name)  # and the name can be made
    assert netns.exists(name)
