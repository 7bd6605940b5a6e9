"""The two-clients lab end to end: apply, traffic, idempotence, drift, repair, destroy."""

from __future__ import annotations

import pytest

from labkit import Lab, namespaces_with, root_namespace_view

# The lab without its firewall: these tests are about the reconciler core
# (test_firewall.py covers the firewalled two-clients.yaml).
LAB = "topologies/two-clients-plain.yaml"
NODES = ("ns_client1", "ns_server", "ns_client2")


@pytest.fixture
def built(lab):
    return lab.applied(LAB)


def test_apply_builds_the_lab_and_traffic_flows_through_the_server(built, prefix):
    assert namespaces_with(prefix) == {prefix + n for n in NODES}
    assert "10.0.1.2/24" in built.ip("ns_client1", "-br addr show dev veth_c1").stdout
    assert "default via 10.0.1.1" in built.ip("ns_client1", "route show").stdout
    forwarding = built.exec("ns_server", ["cat", "/proc/sys/net/ipv4/ip_forward"], check=True)
    assert forwarding.stdout.strip() == "1"
    assert built.ping("ns_client1", "10.0.2.2")
    assert built.ping("ns_client2", "10.0.1.2")


def test_second_apply_changes_nothing(built):
    code, doc = built.json("plan", LAB)
    assert code == 0 and doc["outcome"] == "in_sync" and doc["counts"]["total"] == 0
    code, doc = built.json("apply", LAB)
    assert code == 0 and doc["outcome"] == "in_sync" and doc["steps"] == 0
    result = built.run("drift", LAB)
    assert result.returncode == 0 and "in sync" in result.stdout


# Each manual change, and how drift must name it: (kind, object, difference, field).
MANUAL_CHANGES = {
    "address added": (["ip", "-n", "{ns_client1}", "addr", "add", "10.0.1.50/24", "dev", "veth_c1"],
                      ("addr", "addr 10.0.1.50/24 on veth_c1", "unexpected", None)),
    "address removed": (["ip", "-n", "{ns_server}", "addr", "del", "10.0.2.1/24", "dev", "veth_srv_c2"],
                        ("addr", "addr 10.0.2.1/24 on veth_srv_c2", "missing", None)),
    "route added": (["ip", "-n", "{ns_client2}", "route", "add", "192.0.2.0/24", "via", "10.0.2.1"],
                    ("route", "route 192.0.2.0/24", "unexpected", None)),
    "route removed": (["ip", "-n", "{ns_client1}", "route", "del", "default"],
                      ("route", "route default", "missing", None)),
    "link set down": (["ip", "-n", "{ns_server}", "link", "set", "veth_srv_c1", "down"],
                      ("link", "link veth_srv_c1", "changed", "state")),
    "mtu changed": (["ip", "-n", "{ns_client2}", "link", "set", "veth_c2", "mtu", "1400"],
                    ("link", "link veth_c2", "changed", "mtu")),
    "sysctl changed": (["ip", "netns", "exec", "{ns_server}", "sysctl", "-qw", "net.ipv4.ip_forward=0"],
                       ("sysctl", "sysctl net.ipv4.ip_forward", "changed", "value")),
    "interface deleted": (["ip", "-n", "{ns_server}", "link", "del", "veth_srv_c2"],
                          ("link", "link veth_srv_c2", "missing", None)),
    "namespace deleted": (["ip", "netns", "del", "{ns_client2}"],
                          ("netns", "namespace", "missing", None)),
}


@pytest.mark.parametrize("change", sorted(MANUAL_CHANGES))
def test_drift_names_each_manual_change_and_apply_repairs_it(built, change):
    import subprocess

    argv, (kind, obj, difference, field) = MANUAL_CHANGES[change]
    argv = [a.format(**{n: built.ns(n) for n in NODES}) for a in argv]
    subprocess.run(argv, check=True, timeout=10, capture_output=True)

    code, doc = built.json("drift", LAB)
    assert code == 2, doc
    assert doc["outcome"] == "drift"
    matches = [d for d in doc["differences"]
               if d["kind"] == kind and d["object"] == obj and d["difference"] == difference]
    assert matches, f"drift did not name {kind} {obj!r} as {difference}: {doc['differences']}"
    if field:
        assert field in {c["field"] for c in matches[0]["changes"]}
        assert all({"desired", "live"} <= set(c) for c in matches[0]["changes"])
    human = built.run("drift", LAB)
    assert human.returncode == 2 and obj in human.stdout

    repaired = built.run("apply", LAB)
    assert repaired.returncode == 0, repaired.stderr
    assert built.run("drift", LAB).returncode == 0
    assert built.ping("ns_client1", "10.0.2.2")


def test_destroy_removes_only_the_topology(lab, prefix):
    root_before = root_namespace_view()
    foreign = f"{prefix}foreign"
    lab.add_foreign_namespace(foreign)
    assert lab.run("apply", LAB).returncode == 0
    result = lab.run("destroy", LAB)
    assert result.returncode == 0, result.stderr
    left = namespaces_with(prefix)
    assert left == {foreign}
    assert root_namespace_view() == root_before
    again = lab.run("destroy", LAB)
    assert again.returncode == 0 and "nothing to remove" in again.stdout


def test_bad_manifest_changes_nothing(lab, prefix, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((lab_text := open(LAB).read()).replace("10.0.1.2/24", "10.0.1.300/24")
                   .replace("via: 10.0.2.1", "via: 10.9.9.9"))
    assert lab_text != bad.read_text()
    for command in ("plan", "apply", "drift"):
        result = lab.run(command, bad)
        assert result.returncode == 1
        assert f"{bad}:" in result.stderr and "10.0.1.300/24" in result.stderr
        assert "10.9.9.9 is not in any connected prefix" in result.stderr
    assert not namespaces_with(prefix)


def test_a_namespace_that_is_not_ours_is_refused_and_left_alone(lab, prefix):
    lab.add_foreign_namespace(f"{prefix}ns_server")
    result = lab.run("apply", LAB)
    assert result.returncode == 1
    assert "was not created by netkeel" in result.stderr
    assert namespaces_with(prefix) == {f"{prefix}ns_server"}


def test_a_kernel_refusal_mid_apply_restores_the_previous_state(lab, prefix, tmp_path):
    assert lab.run("apply", LAB).returncode == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(open(LAB).read().replace(
        "      net.ipv4.ip_forward: 1",
        "      net.ipv4.ip_forward: 1\n      net.ipv4.ip_default_ttl: 0")
        .replace("10.0.2.2/24", "10.0.2.3/24"))
    result = lab.run("apply", changed)
    assert result.returncode == 1
    # Only the kernel knows the range (1-255): the manifest checks cannot refuse it.
    assert "net.ipv4.ip_default_ttl" in result.stderr
    assert "Invalid argument" in result.stderr
    assert "restored" in result.stderr
    # Back to exactly the first manifest: in sync, the old address in place.
    assert lab.run("drift", LAB).returncode == 0
    assert "10.0.2.2/24" in lab.ip("ns_client2", "-br addr show dev veth_c2").stdout
    assert namespaces_with(prefix) == {prefix + n for n in NODES}


def test_a_failed_first_apply_leaves_no_namespace(lab, prefix, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(open(LAB).read().replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_default_ttl: 0"))
    code, doc = lab.json("apply", broken)
    assert code == 1 and doc["outcome"] == "error"
    assert doc["error"]["restored"] is True and "ip_default_ttl" in doc["error"]["failed_action"]
    assert not namespaces_with(prefix)
    assert lab.run("plan", LAB).returncode == 2  # nothing is owned or left half-built


def test_prefixes_let_the_same_file_run_side_by_side(lab, state_dir, prefix):
    other = Lab(prefix + "b-", state_dir)
    assert lab.run("apply", LAB).returncode == 0
    assert other.run("apply", LAB).returncode == 0
    assert lab.ping("ns_client1", "10.0.2.2") and other.ping("ns_client1", "10.0.2.2")
    assert other.run("destroy", LAB).returncode == 0
    assert lab.run("drift", LAB).returncode == 0


def test_plan_json_and_verbose_output(lab):
    code, doc = lab.json("plan", LAB)
    assert code == 2 and doc["format"] == 1 and doc["outcome"] == "changes"
    # (ip_forward's per-device forwarding on the server's two veths among the creates)
    assert doc["counts"] == {"create": 16, "modify": 3, "delete": 0, "total": 19}
    first = doc["actions"][0]
    assert {"op", "kind", "node", "namespace", "object", "desired", "live", "changes", "implicit"} <= set(first)
    verbose = lab.run("apply", LAB, "--verbose")
    assert verbose.returncode == 0
    assert "link add veth_c1 type veth peer veth_srv_c1" in verbose.stderr
    assert "route 0.0.0.0/0 metric 0 via 10.0.1.1 add" in verbose.stderr


def test_manifest_changes_converge(lab, prefix, tmp_path):
    """Renumber an interface (its device loses its last IPv4 address, and the
    kernel flushes the routes through it), drop a node, add one."""
    assert lab.run("apply", LAB).returncode == 0
    v2 = tmp_path / "v2.yaml"
    text = open(LAB).read().replace("10.0.1.2/24", "10.0.1.3/24")
    text = text[:text.index("  ns_client2:")] + "  ns_extra: {}\n" + text[text.index("\nlinks:"):]
    text = text[:text.index("  - endpoints:\n      - node: ns_client2")]
    v2.write_text(text)
    result = lab.run("apply", v2)
    assert result.returncode == 0, result.stderr
    assert namespaces_with(prefix) == {prefix + n for n in ("ns_client1", "ns_server", "ns_extra")}
    assert lab.run("drift", v2).returncode == 0
    assert "default via 10.0.1.1" in lab.ip("ns_client1", "route show").stdout
    assert lab.ping("ns_client1", "10.0.1.1")
