"""The doctor on the labs that break on purpose (topologies/broken/): each is
applied and `doctor` must find exactly its failure story, with a golden text
of the report (MAC addresses, which the kernel draws at random, written as
<mac>); the healthy labs give nothing; and a chaos fault that causes a story
(mtu-1280, a partition) is diagnosed while it is active.

NETKEEL_UPDATE_GOLDENS=1 rewrites the goldens (read the diff before committing)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from golden import check_golden  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "doctor"
# lab -> the checks whose findings tell its story (each finding's `check`)
BROKEN = {
    "mtu-mismatch": {"mtu"},
    "pmtud-blackhole": {"mtu"},
    "asymmetric-route": {"routing", "reachability"},
    "conntrack-asymmetry": {"conntrack", "routing", "reachability"},
    "duplicate-ip": {"duplicates"},
    "wrong-gateway": {"gateways"},
}
HEALTHY = ["two-clients", "bridged-lan", "vrrp-pair", "static-neighbours"]
MAC = re.compile(r"\b[0-9a-f]{2}(:[0-9a-f]{2}){5}\b")


def doctor(lab, manifest, *args) -> tuple:
    result = lab.run("doctor", manifest, *args, timeout=180)
    assert result.returncode in (0, 2), result.stderr
    return result.returncode, result.stdout


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_lab_gives_exactly_its_story(lab, name):
    manifest = f"topologies/broken/{name}.yaml"
    lab.applied(manifest)
    code, doc = lab.json("doctor", manifest)
    assert code == 2, doc
    found = {f["check"] for f in doc["findings"]}
    assert found and found <= BROKEN[name], [(f["check"], f["title"]) for f in doc["findings"]]
    assert all(f["why"] and f["fix"] and f["evidence"] for f in doc["findings"] if f["severity"] == "error")
    _, text = doctor(lab, manifest)
    check_golden(GOLDEN / f"{name}.txt", MAC.sub("<mac>", text.replace(lab.prefix, "")))


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_labs_give_nothing(lab, name):
    manifest = f"topologies/{name}.yaml"
    lab.applied(manifest)
    code, doc = lab.json("doctor", manifest)
    assert code == 0 and doc["healthy"], [(f["check"], f["title"]) for f in doc["findings"]]


def test_an_active_mtu_fault_is_diagnosed_and_gone_with_it(lab):
    manifest = "topologies/two-clients.yaml"
    lab.applied(manifest)
    assert lab.run("chaos", None, "mtu-1280", "--ns-prefix", lab.prefix, "--duration", "60s").returncode == 0
    code, doc = lab.json("doctor", manifest, "--only", "mtu")
    assert code == 2 and any("1280" in " ".join(f["evidence"]) for f in doc["findings"]), doc
    assert lab.run("chaos", None, "revert", "--all").returncode == 0
    assert lab.json("doctor", manifest, "--only", "mtu")[0] == 0


def test_an_active_partition_is_diagnosed_as_unreachable_pairs_naming_the_fault(lab):
    manifest = "topologies/two-clients.yaml"
    lab.applied(manifest)
    assert lab.run("chaos", None, "partition-client2", "--ns-prefix", lab.prefix, "--duration", "60s").returncode == 0
    try:
        code, doc = lab.json("doctor", manifest, "--only", "reachability")
        assert code == 2, doc
        text = json.dumps(doc["findings"])
        assert "ns_client2" in text and ("partition" in text or "netkeel_chaos" in text), text[:2000]
    finally:
        lab.run("chaos", None, "revert", "--all")


def test_doctor_refuses_a_lab_that_is_not_running(lab):
    result = lab.run("doctor", "topologies/two-clients.yaml")
    assert result.returncode == 1 and "not running" in result.stderr


def test_a_node_removed_by_hand_is_a_finding_not_a_refusal(lab):
    """A half-broken lab is what the doctor is for: a node whose namespace was
    removed by hand is found (it refused the whole lab as not running, found by
    review), and the probing checks, which need every node, do not run."""
    manifest = "topologies/two-clients.yaml"
    lab.applied(manifest)
    subprocess.run(["ip", "netns", "del", lab.ns("ns_client1")], check=True)
    code, doc = lab.json("doctor", manifest)
    assert code == 2, doc
    assert doc["checks"] == ["nodes"]
    [finding] = doc["findings"]
    assert finding["check"] == "nodes" and finding["nodes"] == ["ns_client1"] and finding["fix"]
    code, only = lab.json("doctor", manifest, "--only", "mtu")  # the nodes check, --only or not
    assert code == 2 and only["checks"] == ["nodes"] and only["findings"] == doc["findings"], only
    result = lab.run("graph", manifest, "--live")
    assert result.returncode == 2 and "is gone" in result.stdout, result.stderr
    assert lab.run("apply", manifest).returncode == 0
    assert doctor(lab, manifest)[0] == 0


def test_graph_live_marks_the_broken_node(lab, tmp_path):
    manifest = "topologies/broken/mtu-mismatch.yaml"
    lab.applied(manifest)
    result = lab.run("graph", manifest, "--live")
    assert result.returncode == 2, result.stderr
    assert "style" in result.stdout and "ns_server" in result.stdout
    png = tmp_path / "lab.png"
    result = lab.run("graph", manifest, "--format", "png", "--output", str(png))
    assert result.returncode == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(png) > 5000


def test_doctor_never_probes_namespaces_netkeel_did_not_make(lab):
    for node in ("ns_client1", "ns_client2", "ns_server"):
        lab.add_foreign_namespace(lab.ns(node))
    result = lab.run("doctor", "topologies/two-clients.yaml")
    assert result.returncode == 1 and "not applied" in result.stderr


def test_an_active_loss_fault_is_reported_even_when_pings_get_through(lab):
    manifest = "topologies/two-clients.yaml"
    lab.applied(manifest)
    assert lab.run("chaos", None, "loss-40", "--ns-prefix", lab.prefix, "--duration", "60s").returncode == 0
    try:
        code, doc = lab.json("doctor", manifest)
        assert code == 2
        assert any(f["check"] == "faults" and "loss-40" in f["title"] for f in doc["findings"]), doc["findings"]
    finally:
        lab.run("chaos", None, "revert", "--all")
