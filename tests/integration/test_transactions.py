"""Snapshots and rollback, transactional apply under failpoints, crash safety,
the state lock, damaged state files, and manifests read from git revisions."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from labkit import lab_view, namespaces_with

VERSIONS = Path(__file__).with_name("data") / "versions"
V1, V2 = VERSIONS / "v1.yaml", VERSIONS / "v2.yaml"


def test_apply_v1_apply_v2_rollback_gives_back_v1_exactly(lab, prefix):
    assert lab.run("apply", V1).returncode == 0
    after_v1 = lab_view(prefix)
    result = lab.run("apply", V2)
    assert result.returncode == 0, result.stderr
    assert lab_view(prefix) != after_v1
    assert namespaces_with(prefix) == {prefix + n for n in ("ns_client1", "ns_server", "ns_client3")}

    rolled = lab.run("rollback", None)
    assert rolled.returncode == 0, rolled.stderr
    assert lab_view(prefix) == after_v1  # ip -j link/addr/route and nft -j, volatile fields aside
    assert lab.run("drift", V1).returncode == 0
    assert lab.ping("ns_client1", "10.0.2.2")


def test_snapshots_record_where_each_change_came_from(lab):
    assert lab.run("apply", V1).returncode == 0
    assert lab.run("apply", V2).returncode == 0
    files = sorted((lab.state / "snapshots").iterdir())
    assert len(files) == 2 and all(oct(f.stat().st_mode & 0o777) == "0o600" for f in files)
    data = json.loads(files[-1].read_text())
    assert data["reason"] == "before apply" and data["instance"] == f"versioned@{lab.prefix}"
    assert [m["path"] for m in data["manifests"]][0].endswith("versions/v2.yaml")
    assert all(len(m["sha256"]) == 64 for m in data["manifests"])
    assert len(data["manifests"]) == 2  # the manifest and the policy file it names
    assert re.fullmatch(r"[0-9a-f]{40}", data["git"]["commit"]) and data["git"]["dirty"] in (True, False)
    assert {r["kind"] for r in data["resources"]} >= {"netns", "link", "addr", "route", "sysctl"}
    listing = lab.run("snapshots", None).stdout
    assert data["id"] in listing and "before apply" in listing


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
def test_a_failure_after_k_requests_leaves_the_state_as_before(lab, prefix, fraction):
    assert lab.run("apply", V1).returncode == 0
    before = lab_view(prefix)
    requests = lab.json("plan", V2)[1]["requests"]
    after = max(1, round(fraction * requests))  # from the first request to the last one
    result = lab.run("apply", V2, env={"NETKEEL_FAILPOINT": f"apply.after:{after}"})
    assert result.returncode == 1
    assert f"failpoint apply.after:{after}" in result.stderr
    assert "the pre-apply state was restored and verified" in result.stderr
    assert lab_view(prefix) == before
    assert lab.run("drift", V1).returncode == 0


@pytest.mark.parametrize("fraction", [0.0, 0.5, 1.0])
def test_ctrl_c_twice_waits_for_the_restore_to_finish(lab, prefix, fraction):
    """Ctrl-C during an apply, then again as its snapshot is being restored (the
    failpoint sends both): the second waits; the kernel is as before, no traceback."""
    assert lab.run("apply", V1).returncode == 0
    before = lab_view(prefix)
    requests = lab.json("plan", V2)[1]["requests"]
    after = max(1, round(fraction * requests))
    result = lab.run("apply", V2, env={"NETKEEL_FAILPOINT": f"apply.interrupt:{after}"})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "interrupted" in result.stderr, result.stderr
    assert lab_view(prefix) == before
    assert lab.run("drift", V1).returncode == 0
    ends = [json.loads(line) for line in (lab.state / "journal.jsonl").read_text().splitlines()
            if '"end"' in line]
    assert ends[-1]["outcome"] == "restored" and ends[-1]["failed"] == "interrupted", ends[-1]


def big_lab(tmp_path: Path, nodes: int, extra: int = 0) -> Path:
    """A chain of `nodes` namespaces: hundreds of objects (veth pairs, addresses,
    routes both ways, sysctls); `extra` changes every address on the way."""
    lines = ["name: crashtest", "nodes:"]
    for i in range(nodes):
        lines.append(f"  n{i}:")
        lines.append("    sysctls: {net.ipv4.ip_forward: 1}")
        routes = []
        if i > 0:
            routes.append(f"{{to: 10.200.0.0/16, via: 10.{100 + extra}.{i - 1}.1}}")
        if i < nodes - 1:
            routes.append(f"{{to: 10.201.0.0/16, via: 10.{100 + extra}.{i}.2}}")
        lines.append(f"    routes: [{', '.join(routes)}]")
    lines.append("links:")
    for i in range(nodes - 1):
        lines += ["  - endpoints:",
                  f"      - {{node: n{i}, interface: right, addresses: [10.{100 + extra}.{i}.1/24]}}",
                  f"      - {{node: n{i + 1}, interface: left, addresses: [10.{100 + extra}.{i}.2/24]}}"]
    path = tmp_path / f"big{nodes}-{extra}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_crashes_at_any_point_are_reported_converged_and_rolled_back(lab, prefix, tmp_path):
    small, large = big_lab(tmp_path, 10), big_lab(tmp_path, 40, extra=1)
    assert lab.run("apply", small).returncode == 0
    plan = lab.json("plan", large)[1]
    assert plan["counts"]["total"] > 300  # hundreds of objects
    requests = plan["requests"]
    for run, kill_at in enumerate(sorted({1, requests - 1} | {requests * k // 9 for k in range(1, 9)})):
        killed = lab.run("apply", large, env={"NETKEEL_FAILPOINT": f"apply.kill:{kill_at}"})
        assert killed.returncode == -9, (kill_at, killed.stderr)
        noticed = lab.run("plan", large)
        assert "was interrupted" in noticed.stderr, noticed.stderr
        advised = re.search(r"rollback --snapshot (\S+) --state-dir (\S+)` returns to the state before it",
                            noticed.stderr)
        snapshot = advised[1]
        assert advised[2] == str(lab.state)  # the journal it speaks of is there
        if run % 2 == 0:  # converge from the half state, then go back before it
            converged = lab.run("apply", large)
            assert converged.returncode == 0, converged.stderr
            assert lab.run("drift", large).returncode == 0
            assert "was interrupted" not in lab.run("plan", large).stderr
        rolled = lab.run("rollback", None, "--snapshot", snapshot)
        assert rolled.returncode == 0, rolled.stderr
        assert lab.run("drift", small).returncode == 0, f"not back to the pre-apply state (kill at {kill_at})"
        assert namespaces_with(prefix) == {f"{prefix}n{i}" for i in range(10)}


def test_a_second_apply_is_refused_while_one_holds_the_lock_and_waits_with_wait(lab):
    from toolkit.state.lock import StateLock
    from toolkit.state.statedir import StateDir

    with StateLock(StateDir(lab.state)):
        refused = lab.run("apply", V1)
        assert refused.returncode == 1
        assert f"another netkeel is changing the kernel: pid {os.getpid()}" in refused.stderr
        waiting = lab.start("apply", V1, "--wait")
        with pytest.raises(subprocess.TimeoutExpired):
            waiting.wait(timeout=1.5)  # still waiting while the lock is held
    assert waiting.wait(timeout=60) == 0
    assert lab.run("drift", V1).returncode == 0


def test_two_applies_started_together_leave_a_consistent_state(lab, tmp_path):
    large = big_lab(tmp_path, 30)
    first, second = lab.start("apply", large), lab.start("apply", large)
    codes = sorted([first.wait(timeout=120), second.wait(timeout=120)])
    assert codes in ([0, 0], [0, 1])  # the loser was refused (1) or came second and found nothing to do
    assert lab.run("drift", large).returncode == 0


def test_damaged_snapshot_and_journal_files_are_reported_not_fatal(lab):
    assert lab.run("apply", V1).returncode == 0
    assert lab.run("apply", V2).returncode == 0
    first, second = sorted((lab.state / "snapshots").iterdir())
    first.write_text('{"id": "truncat')  # cut short
    with open(lab.state / "journal.jsonl", "a") as journal:
        journal.write('{"event": "start", "tx": "half')  # a line a crash cut off
    listing = lab.run("snapshots", None)
    assert listing.returncode == 0 and "unreadable" in listing.stdout and second.stem in listing.stdout
    history = lab.run("history", None)
    assert history.returncode == 0 and "damaged journal record skipped" in history.stderr
    bad = lab.run("rollback", None, "--snapshot", first.stem)
    assert bad.returncode == 1 and f"snapshot {first.stem} is unreadable or corrupt" in bad.stderr
    good = lab.run("rollback", None)  # the snapshot before the last apply is intact
    assert good.returncode == 0, good.stderr
    assert lab.run("drift", V1).returncode == 0


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          timeout=30, env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout


def test_plan_apply_and_diff_from_git_revisions(lab, tmp_path):
    repo = tmp_path / "configs"
    (repo / "topologies").mkdir(parents=True)
    (repo / "policies").mkdir()
    git(repo, "init", "-q")
    lab_file = repo / "topologies" / "lab.yaml"
    lab_file.write_text(V1.read_text())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    v1_commit = git(repo, "rev-parse", "HEAD").strip()
    (repo / "policies" / "two-clients-server.yaml").write_text(Path("policies/two-clients-server.yaml").read_text())
    lab_file.write_text(V2.read_text().replace("../../../../policies/", "../policies/"))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v2")
    lab_file.write_text("this working tree is broken on purpose: --rev must not read it\n")
    status = git(repo, "status", "--porcelain")

    code, doc = lab.json("plan", lab_file, "--rev", "HEAD~1")
    assert code == 2 and {a["node"] for a in doc["actions"]} == {"ns_client1", "ns_server", "ns_client2"}
    assert lab.run("apply", lab_file, "--rev", "HEAD~1").returncode == 0
    assert lab.run("drift", V1).returncode == 0
    assert lab.run("apply", lab_file, "--rev", "HEAD").returncode == 0
    code, doc = lab.json("plan", lab_file, "--rev", v1_commit)  # rolling back = applying the old commit
    assert code == 2
    assert git(repo, "status", "--porcelain") == status  # the working tree was never touched
    snapshot = json.loads(sorted((lab.state / "snapshots").iterdir())[-1].read_text())
    assert snapshot["git"]["rev"] == "HEAD" and snapshot["git"]["dirty"] is False

    code, doc = lab.json("diff", lab_file, "HEAD~1", "HEAD")
    assert code == 2 and doc["command"] == "diff"
    changed = {(a["op"], a["node"], a["object"]) for a in doc["actions"]}
    assert ("delete", "ns_client2", "namespace") in changed
    assert ("create", "ns_client3", "namespace") in changed
    assert ("create", "ns_server", "nft table inet netkeel_filter") in changed
    assert lab.run("diff", lab_file, "HEAD", "HEAD").returncode == 0
    bad = lab.run("plan", lab_file, "--rev", "no-such-rev")
    assert bad.returncode == 1 and "unknown git revision 'no-such-rev'" in bad.stderr
    # drift and destroy at a revision too: the working tree's manifest is broken (found
    # by review: a lab applied from a revision could not be destroyed then).
    assert lab.run("drift", lab_file, "--rev", "HEAD").returncode == 0
    assert lab.run("drift", lab_file, "--rev", "HEAD~1").returncode == 2
    assert lab.run("drift", lab_file).returncode == 1  # the working tree's, as before
    destroyed = lab.run("destroy", lab_file, "--rev", "HEAD")
    assert destroyed.returncode == 0 and "removed 3 namespace(s)" in destroyed.stdout, destroyed.stdout
    assert git(repo, "status", "--porcelain") == status


def test_drift_writes_a_junit_report(lab, tmp_path):
    assert lab.run("apply", V1).returncode == 0
    lab.ip("ns_server", "link set veth_srv_c2 mtu 1300")
    report = tmp_path / "drift.xml"
    assert lab.run("drift", V1, "--junit", str(report)).returncode == 2
    import xml.etree.ElementTree as ET

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["node ns_server"]
    assert "link veth_srv_c2: changed (mtu: desired 1500, live 1300)" in failed[0].find("failure").text
