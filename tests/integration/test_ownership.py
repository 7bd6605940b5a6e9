"""netkeel never changes what is not its own: foreign veths, other instances'
namespaces, and the namespace the process itself runs in."""

from __future__ import annotations

import os
import subprocess

from labkit import namespaces_with

LAB = "topologies/two-clients-plain.yaml"


def test_creating_namespaces_leaves_the_thread_where_it_was(prefix):
    from toolkit.kernel import netns

    before = os.readlink("/proc/thread-self/ns/net")
    netns.create(f"{prefix}a")
    netns.create(f"{prefix}b")
    assert os.readlink("/proc/thread-self/ns/net") == before


def test_a_veth_into_a_foreign_namespace_is_reported_and_never_deleted(lab, prefix):
    lab.applied(LAB)
    foreign = f"{prefix}foreign"
    lab.add_foreign_namespace(foreign)
    subprocess.run(["ip", "-n", foreign, "link", "add", "hostside", "type", "veth", "peer", "name", "intolab",
                    "netns", lab.ns("ns_server")], check=True, timeout=10)
    code, doc = lab.json("drift", LAB)
    assert code == 2 and doc["differences"] == []
    [unmanaged] = doc["unmanaged"]
    assert (unmanaged["kind"], unmanaged["node"], unmanaged["object"]) == ("link_foreign", "ns_server", "link intolab")
    assert lab.run("apply", LAB).returncode == 0
    assert "hostside" in subprocess.run(["ip", "-n", foreign, "-br", "link"], capture_output=True, text=True,
                                        check=True, timeout=10).stdout


def test_instances_with_look_alike_names_keep_apart(lab, prefix, tmp_path):
    (tmp_path / "lab.yaml").write_text("name: lab\nnodes:\n  a: {}\n")
    (tmp_path / "xlab.yaml").write_text("name: xlab\nnodes:\n  a: {}\n")
    from labkit import Lab

    Lab(f"{prefix}x", lab.state).applied(tmp_path / "lab.yaml")  # prefix + "x", topology lab
    other = lab.run("apply", tmp_path / "xlab.yaml")  # prefix, topology xlab: once the same inventory key
    assert other.returncode == 0, other.stderr
    assert namespaces_with(prefix) == {f"{prefix}xa", f"{prefix}a"}


def test_rollback_refuses_namespaces_that_are_not_its_own(lab, prefix, tmp_path):
    (tmp_path / "t1.yaml").write_text("name: t1\nnodes:\n  a: {}\n")
    (tmp_path / "t2.yaml").write_text("name: t2\nnodes:\n  a: {}\n")
    lab.applied(tmp_path / "t1.yaml")
    first = sorted((lab.state / "snapshots").iterdir())[0].stem
    assert lab.run("destroy", tmp_path / "t1.yaml").returncode == 0
    lab.applied(tmp_path / "t2.yaml")  # t2 now owns the namespace <prefix>a
    refused = lab.run("rollback", None, "--snapshot", first)
    assert refused.returncode == 1
    assert f"namespace {prefix}a belongs to topology instance 't2@{prefix}'" in refused.stderr
    assert lab.run("drift", tmp_path / "t2.yaml").returncode == 0
