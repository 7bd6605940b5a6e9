"""Every rule form netkeel compiles, and native rules, round-trip through the
kernel without drift; refused native rules stop everything before any change."""

from __future__ import annotations

import shutil
from pathlib import Path

from labkit import namespaces_with

DATA = Path(__file__).with_name("data")


def test_every_rule_form_applies_without_drift(lab):
    result = lab.run("apply", DATA / "everything.yaml")
    assert result.returncode == 0, result.stderr
    code, doc = lab.json("plan", DATA / "everything.yaml")
    assert code == 0 and doc["counts"]["total"] == 0, doc
    assert lab.run("drift", DATA / "everything.yaml").returncode == 0
    # Compared with the kernel's own listing, not with what the apply remembered it sent.
    assert lab.run("drift", DATA / "everything.yaml", "--full").returncode == 0


def test_a_native_rule_may_name_the_nodes_interfaces(lab, tmp_path):
    shutil.copy("topologies/two-clients-plain.yaml", tmp_path / "lab.yaml")
    text = (tmp_path / "lab.yaml").read_text().replace(
        "      net.ipv4.ip_forward: 1", "      net.ipv4.ip_forward: 1\n    policies: [fw.yaml]")
    (tmp_path / "lab.yaml").write_text(text)
    (tmp_path / "fw.yaml").write_text(
        "tables:\n  f:\n    chains:\n      fwd:\n        hook: forward\n        rules:\n"
        '          - {nft: "iif \\"veth_srv_c2\\" oif \\"veth_srv_c1\\" ct state new drop"}\n')
    result = lab.run("apply", tmp_path / "lab.yaml")
    assert result.returncode == 0, result.stderr
    assert lab.run("drift", tmp_path / "lab.yaml").returncode == 0
    assert lab.ping("ns_client1", "10.0.2.2")
    assert not lab.ping("ns_client2", "10.0.1.2", count=2)


def test_a_refused_native_rule_changes_nothing(lab, prefix, tmp_path):
    (tmp_path / "fw.yaml").write_text(
        "tables:\n  f:\n    chains:\n      in:\n        hook: input\n        rules:\n"
        '          - {protocol: tcp, dport: 22, action: accept}\n'
        '          - {nft: "tcp dport 22 acept"}\n')
    (tmp_path / "lab.yaml").write_text("name: refused\nnodes:\n  a:\n    policies: [fw.yaml]\n")
    for command in ("plan", "apply"):
        result = lab.run(command, tmp_path / "lab.yaml")
        assert result.returncode == 1
        assert f"{tmp_path}/fw.yaml:8: tables.f.chains.in.rules[1].nft: libnftables refused " \
               "`tcp dport 22 acept`" in result.stderr
    assert not namespaces_with(prefix)
