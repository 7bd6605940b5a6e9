"""`experiment` and `apply --try` on the two-clients lab: real namespaces, real
faults, real traffic from probes inside the namespaces.

The shipped experiments run as written and hold; a steady state that does not
hold before injects nothing; a halt probe stops the faults mid-way and they
are reverted; so does Ctrl-C; a SIGKILLed run's faults still end on time; and
`apply --try` keeps a change whose probes pass and rolls back one whose probes
fail (or whose command is killed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from labkit import lab_view

LAB = "topologies/two-clients.yaml"
ROOT = Path(__file__).resolve().parents[2]

ICMP_STEADY = """\
steady_state:
  - name: server answers client1
    node: ns_client1
    icmp: {to: 10.0.1.1}
    count: 10
    interval: 20ms
    timeout: 300ms
    expect: {loss: "<= 10%"}
"""


@pytest.fixture
def built(lab):
    lab.applied(LAB)
    yield lab
    lab.run("chaos", None, "revert", "--all")


def write(tmp_path: Path, name: str, text: str) -> str:
    """An experiment file in tmp_path/experiments, beside a copy of the shipped faults."""
    (tmp_path / "experiments").mkdir(exist_ok=True)
    (tmp_path / "faults").mkdir(exist_ok=True)
    for fault in (ROOT / "faults").glob("*.yaml"):
        (tmp_path / "faults" / fault.name).write_text(fault.read_text())
    path = tmp_path / "experiments" / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def experiment(lab, name: str, tmp_path: Path, *args, timeout: float = 120) -> tuple:
    result = lab.run("experiment", None, name, "--ns-prefix", lab.prefix, "--json",
                     "--plot", str(tmp_path / "timeline.png"), *args, timeout=timeout)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def probe(doc: dict, phase: str, name: str) -> dict:
    return next(p for p in doc["probes"] if p["phase"] == phase and p["probe"] == name)


def measured(doc: dict, phase: str, name: str, metric: str) -> float:
    return probe(doc, phase, name)["measured"][metric]


def no_fault_left(lab) -> None:
    """No lease, no chaos table, no NFQUEUE rule, no qdisc of a fault in the lab."""
    assert not list((lab.state / "leases").glob("*.json")), "a lease is left"
    for node in ("ns_client1", "ns_client2", "ns_server"):
        tables = lab.exec(node, ["nft", "list", "tables"]).stdout
        assert "netkeel_chaos" not in tables, tables
        assert "8e4b:" not in lab.exec(node, ["tc", "qdisc", "show"]).stdout
        if _has_iptables():
            assert "NFQUEUE" not in lab.exec(node, ["iptables", "-S"]).stdout


def _has_iptables() -> bool:
    return subprocess.run(["sh", "-c", "command -v iptables"], capture_output=True).returncode == 0


def journal(lab) -> list:
    """Each run's last experiment record (its outcome; the one before, "running",
    says it started)."""
    lines = (lab.state / "journal.jsonl").read_text().splitlines()
    runs: dict = {}
    for record in (json.loads(line) for line in lines if '"experiment"' in line):
        runs.pop(record["tx"], None)
        runs[record["tx"]] = record
    return list(runs.values())


# -- the shipped experiments ---------------------------------------------------------------

@pytest.mark.skipif(not _has_iptables(), reason="the reorder fault needs netem or the userspace backend")
def test_loss_vs_timeserver_holds_and_shows_loss_then_stale_answers(built, tmp_path):
    code, doc = experiment(built, "loss-vs-timeserver", tmp_path)
    assert code == 0 and doc["outcome"] == "held", doc["reasons"]
    assert 15 <= measured(doc, "during", "time client under loss", "loss") <= 65  # binomial: ~1e-5 outside
    assert measured(doc, "during", "time client under loss", "stale") == 0
    assert measured(doc, "during", "time client under reordering", "stale") >= 10
    assert measured(doc, "during", "time client under reordering", "out_of_order") >= 10
    assert measured(doc, "after", "time server answers client2", "loss") <= 2.5
    faults = {f["fault"]: f for f in doc["faults"]}
    assert set(faults) == {"loss-40", "reorder"}
    for fault in faults.values():  # in place about when declared, for about as long
        assert fault["in_place"]["from_s"] >= fault["declared"]["from_s"] - 0.05
        assert fault["in_place"]["from_s"] - fault["declared"]["from_s"] < 1.5
        assert abs((fault["in_place"]["to_s"] - fault["in_place"]["from_s"]) - fault["declared"]["duration_s"]) < 1.5
    assert Path(doc["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (record,) = journal(built)
    assert record["outcome"] == "held" and record["experiment"] == "loss-vs-timeserver"
    assert {p["probe"] for p in record["probes"]} >= {"time client under loss", "time client under reordering"}
    no_fault_left(built)
    history = built.run("history", None)
    assert "loss-vs-timeserver" in history.stdout and "held (7/7 probes" in history.stdout


@pytest.mark.skipif(not _has_iptables(), reason="the reorder fault needs netem or the userspace backend")
def test_reorder_vs_tcp_holds_and_costs_goodput(built, tmp_path):
    code, doc = experiment(built, "reorder-vs-tcp", tmp_path)
    assert code == 0 and doc["outcome"] == "held", doc["reasons"]
    before = measured(doc, "before", "transfer through the port forward", "goodput")
    during = measured(doc, "during", "transfer under reordering", "goodput")
    assert 1 <= during < before / 2
    # the 20 ms delay (the 90th percentile: the median of 20 falls below it ~5% of runs)
    assert measured(doc, "during", "connect under reordering", "connect_p90") >= 15
    no_fault_left(built)


# -- what stops an experiment ------------------------------------------------------------------

def test_a_steady_state_that_does_not_hold_before_injects_nothing(built, tmp_path):
    path = write(tmp_path, "broken-before", f"""\
topology: two-clients
steady_state:
  - name: nobody at .99
    node: ns_client1
    icmp: {{to: 10.0.1.99}}
    count: 3
    interval: 20ms
    timeout: 200ms
    expect: {{loss: "<= 10%"}}
faults:
  - {{fault: loss-40, start: 0s, duration: 3s}}
""")
    started = time.monotonic()
    code, doc = experiment(built, path, tmp_path)
    assert code == 2 and doc["outcome"] == "not held before"
    assert time.monotonic() - started < 15
    assert doc["faults"] == [] or all(f["in_place"]["from_s"] is None for f in doc["faults"])
    assert doc["probes"][0]["measured"]["loss"] == 100
    assert journal(built)[0]["outcome"] == "not held before"
    no_fault_left(built)


def test_nodes_the_lab_lacks_are_named_with_their_file_and_line_and_nothing_runs(built, tmp_path):
    path = write(tmp_path, "ghosts", """\
topology: two-clients
services:
  - {node: ns_ghost, udp_time: 8080}
steady_state:
  - name: to nowhere
    node: ns_client1
    icmp: {to: ns_phantom}
    count: 3
faults:
  - {fault: loss-40, start: 0s, duration: 3s}
""")
    result = built.run("experiment", None, path, "--ns-prefix", built.prefix)
    assert result.returncode == 1, result.stdout + result.stderr
    said = " ".join(result.stderr.split())  # as rich wrapped it
    assert f"{path}:3: service udp_time: no node 'ns_ghost'" in said, result.stderr
    assert f"{path}:5: probe 'to nowhere': no node 'ns_phantom' to probe" in said, result.stderr
    assert "Traceback" not in result.stderr
    no_fault_left(built)


def test_scheduled_faults_that_would_take_one_device_at_once_are_refused_before_anything_changes(built, tmp_path):
    """The second was refused half-way, after the first changed the MTU, with
    advice (`chaos revert --fault m1`) that does not fit an experiment's own fault
    (found by review)."""
    path = write(tmp_path, "overlap", f"""\
topology: two-clients
{ICMP_STEADY}faults:
  - {{name: m1, inline: {{target: {{node: ns_server, interface: veth_srv_c2}}, mtu: 1300}}, start: 0s, duration: 2s}}
  - {{name: m2, inline: {{target: {{node: ns_server, interface: veth_srv_c2}}, mtu: 1290}}, start: 1s, duration: 2s}}
  - {{name: m3, inline: {{target: {{node: ns_server, interface: veth_srv_c2}}, mtu: 1280}}, start: 3s, duration: 1s}}
""")
    mtu = built.ip("ns_server", "link show dev veth_srv_c2").stdout
    result = built.run("experiment", None, path, "--ns-prefix", built.prefix)
    assert result.returncode == 1, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert f"{path}:12: faults[1]: fault m2 would take the mtu of veth_srv_c2 in {built.ns('ns_server')}, which " \
           "fault m1 (line 11) holds from 0 s to 2 s" in said, result.stderr
    assert "m3" not in said  # it starts when m2 ends
    assert built.ip("ns_server", "link show dev veth_srv_c2").stdout == mtu
    no_fault_left(built)


def test_one_experiment_at_a_time_on_a_lab_and_faults_it_did_not_inject_are_named(built, tmp_path):
    """A second experiment started 0.3 s after the first measured the first's
    loss-40 with its own (58.7% loss "within loss-40", and "held"), and the first
    refused its own reorder half-way (found by review)."""
    path = write(tmp_path, "longer", f"""\
topology: two-clients
{ICMP_STEADY}faults:
  - {{fault: loss-40, start: 0s, duration: 4s}}
during:
  duration: 4s
""")
    first = subprocess.Popen(built.argv("experiment", None, path, "--ns-prefix", built.prefix, "--json"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=built.env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while not list((built.state / "leases").glob("loss-40*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = built.run("experiment", None, path, "--ns-prefix", built.prefix)
        assert second.returncode == 1, second.stdout + second.stderr
        assert "another experiment is running on two-clients" in " ".join(second.stderr.split()), second.stderr
        assert built.run("chaos", None, "duplicate-10", "--duration", "2s").returncode == 0  # by hand, meanwhile
        out, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    doc = json.loads(out)
    assert [f["fault"].split()[0] for f in doc["other_faults"]] == ["duplicate-10"], doc["other_faults"]
    assert any("did not inject" in r and "duplicate-10" in r for r in doc["reasons"]), doc["reasons"]
    no_fault_left(built)


def test_a_halt_probe_stops_the_faults_mid_way_and_they_are_reverted(built, tmp_path):
    path = write(tmp_path, "halting", f"""\
topology: two-clients
{ICMP_STEADY}
faults:
  - {{fault: partition-client2, start: 500ms, duration: 30s}}
during:
  probes:
    - name: client2 reaches the server
      node: ns_client2
      icmp: {{to: 10.0.2.1}}
      count: 300
      interval: 50ms
      timeout: 300ms
      halt: true
      expect: {{loss: "<= 10%"}}
""")
    started = time.monotonic()
    code, doc = experiment(built, path, tmp_path)
    elapsed = time.monotonic() - started
    assert code == 2 and doc["outcome"] == "halted", doc
    assert elapsed < 15, f"a halt should end a 30 s fault within seconds, took {elapsed:.1f} s"
    (fault,) = doc["faults"]
    assert fault["in_place"]["to_s"] - fault["in_place"]["from_s"] < 5
    assert probe(doc, "after", "server answers client1")["passed"]
    no_fault_left(built)
    assert built.ping("ns_client2", "10.0.2.1")


def test_ctrl_c_reverts_the_faults_and_is_recorded(built, tmp_path):
    path = write(tmp_path, "long", f"""\
topology: two-clients
{ICMP_STEADY}
faults:
  - {{fault: loss-40, start: 0s, duration: 60s}}
""")
    proc = subprocess.Popen(built.argv("experiment", None, path, "--ns-prefix", built.prefix, "--no-plot"),
                            env=built.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: list((built.state / "leases").glob("*.json")), 20, "the fault was not injected")
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    no_fault_left(built)
    assert journal(built)[0]["outcome"] == "interrupted"


def test_a_sigkilled_experiment_still_ends_its_faults_on_time(built, tmp_path):
    path = write(tmp_path, "killed", f"""\
topology: two-clients
services:
  - {{node: ns_server, udp_time: 8080}}
{ICMP_STEADY}
faults:
  - {{fault: loss-40, start: 0s, duration: 3s}}
during:
  duration: 30s
""")
    proc = subprocess.Popen(built.argv("experiment", None, path, "--ns-prefix", built.prefix, "--no-plot"),
                            env=built.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: list((built.state / "leases").glob("*.json")), 20, "the fault was not injected")
        os.killpg(os.getpgid(proc.pid), 0)  # it runs
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    # The lease's keeper ends the fault at its time (3 s), with nobody left to ask it.
    _wait_for(lambda: not list((built.state / "leases").glob("*.json")), 15, "the fault outlived its lease")
    no_fault_left(built)
    # And the run is in the history, said killed (it was in no journal at all: found by review).
    history = " ".join(built.run("history", None).stdout.split())
    assert "experiment killed" in history and "killed: no outcome" in history, history
    assert [r["outcome"] for r in journal(built)] == ["running"]


def _wait_for(condition, seconds: float, message: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(message)


# -- apply --try ---------------------------------------------------------------------------------

def test_apply_try_keeps_a_change_whose_probes_pass(built, tmp_path):
    probes = write(tmp_path, "reach", f"topology: two-clients\n{ICMP_STEADY}faults: []\nduring: {{duration: 1s}}\n")
    changed = manifest(tmp_path, "net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 1\n      net.ipv4.ip_default_ttl: 60")
    result = built.run("apply", changed, "--try", "20s", "--probe", probes)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kept" in result.stdout
    assert built.run("drift", changed).returncode == 0


def test_apply_try_rolls_back_a_change_whose_probes_fail(built, tmp_path):
    probes = write(tmp_path, "reach", f"topology: two-clients\n{ICMP_STEADY}faults: []\nduring: {{duration: 1s}}\n")
    before = lab_view(built.prefix)
    broken = manifest(tmp_path, "10.0.1.1/24", "10.0.1.5/24")  # the server moves away from client1
    result = built.run("apply", broken, "--try", "20s", "--probe", probes)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "rolled back" in result.stdout
    assert lab_view(built.prefix) == before
    assert built.run("drift", LAB).returncode == 0
    assert built.ping("ns_client1", "10.0.1.1")


def test_apply_try_confirm_says_what_was_answered_markup_and_all(built, tmp_path):
    """An answer is the user's text: `[/]` typed at the prompt ended the command
    in a traceback as rich markup (found by review); a closed input is said so."""
    before = lab_view(built.prefix)
    changed = manifest(tmp_path, "net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 1\n      net.ipv4.ip_default_ttl: 61")
    for typed, said in (("[/]\n", "answered '[/]', not yes"), ("", "standard input was closed")):
        result = subprocess.run(built.argv("apply", changed, "--try", "20s", "--confirm"), input=typed,
                                capture_output=True, text=True, env=built.env, cwd=ROOT, timeout=120)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "rolled back" in result.stdout and said in " ".join(result.stdout.split()), result.stdout
        assert lab_view(built.prefix) == before


def test_apply_try_whose_command_is_killed_is_rolled_back_by_its_guard(built, tmp_path):
    # A probe that takes long: the command is killed while it runs.
    probes = write(tmp_path, "slow", f"""\
topology: two-clients
steady_state:
  - name: slow
    node: ns_client1
    icmp: {{to: 10.0.1.1}}
    count: 100
    interval: 100ms
    timeout: 300ms
    expect: {{loss: "<= 10%"}}
faults: []
during: {{duration: 1s}}
""")
    before = lab_view(built.prefix)
    changed = manifest(tmp_path, "10.0.2.2/24", "10.0.2.3/24")
    proc = built.start("apply", changed, "--try", "60s", "--probe", probes)
    try:
        _wait_for(lambda: list((built.state / "trials").glob("*.json")) if (built.state / "trials").exists()
                  else [], 30, "the trial did not start")
        time.sleep(0.5)
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    _wait_for(lambda: lab_view(built.prefix) == before, 30, "the guard did not roll the change back")
    (trial,) = [json.loads(p.read_text()) for p in (built.state / "trials").glob("*.json")]
    assert trial["state"] == "rolled back" and "died" in trial["note"]


def test_apply_try_needs_a_decider_and_checks_it_before_changing_anything(built, tmp_path):
    before = lab_view(built.prefix)
    result = built.run("apply", LAB, "--try", "20s")
    assert result.returncode == 1 and "--try needs something to decide" in result.stderr
    bad = write(tmp_path, "bad", "topology: two-clients\nsteady_state: [{name: x, node: y}]\n")
    result = built.run("apply", LAB, "--try", "20s", "--probe", bad)
    assert result.returncode == 1 and "bad.yaml" in result.stderr
    assert lab_view(built.prefix) == before


def manifest(tmp_path: Path, old: str, new: str) -> Path:
    """The lab's manifest with `old` replaced by `new`, with a copy of its policies
    under it (a manifest may only name policy files below its own directory)."""
    (tmp_path / "policies").mkdir(exist_ok=True)
    for policy in (ROOT / "policies").glob("*.yaml"):
        (tmp_path / "policies" / policy.name).write_text(policy.read_text())
    text = (ROOT / LAB).read_text().replace("../policies/", "policies/")
    assert old in text
    path = tmp_path / "two-clients.yaml"
    path.write_text(text.replace(old, new))
    return path


# -- what a hostile run found ----------------------------------------------------------------------

def test_the_plot_never_replaces_a_device_node(built, tmp_path):
    """A --plot path that is a device (or a symlink, a FIFO) is refused before the
    experiment runs: bad input first, nothing done."""
    device = tmp_path / "null"
    os.mknod(device, 0o666 | __import__("stat").S_IFCHR, os.makedev(1, 3))
    path = write(tmp_path, "quick", f"topology: two-clients\n{ICMP_STEADY}")
    result = built.run("experiment", None, path, "--ns-prefix", built.prefix, "--plot", str(device))
    assert result.returncode == 1, result.stderr
    assert f"--plot {device}: it exists and is a character device" in " ".join(result.stderr.split())
    assert __import__("stat").S_ISCHR(os.lstat(device).st_mode)
    assert "experiment" not in built.run("history", None).stdout  # it never ran


def test_a_halt_probe_within_a_later_fault_waits_for_it(built, tmp_path):
    path = write(tmp_path, "later", f"""\
topology: two-clients
{ICMP_STEADY}
faults:
  - {{fault: loss-40, start: 1500ms, duration: 2s}}
during:
  probes:
    - name: lossy while the fault is on
      node: ns_client2
      icmp: {{to: 10.0.2.1}}
      within: loss-40
      count: 70
      interval: 50ms
      timeout: 300ms
      halt: true
      # checked at every sample from the 20th on: ">= 10%" fell short by chance
      # about once in 400 runs (1 lost of 20); any loss shows the fault is on
      expect: {{loss: ">= 2.5%"}}
""")
    code, doc = experiment(built, path, tmp_path)
    assert doc["outcome"] == "held", doc["reasons"]
    assert doc["faults"][0]["in_place"]["from_s"] is not None


def test_apply_try_never_recreates_a_lab_destroyed_during_the_trial(built, tmp_path):
    changed = manifest(tmp_path, "10.0.2.2/24", "10.0.2.3/24")
    proc = subprocess.Popen(built.argv("apply", changed, "--try", "30s", "--confirm"), env=built.env, cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: any(json.loads(p.read_text())["state"] == "trying"
                              for p in (built.state / "trials").glob("*.json")), 30, "the trial did not start")
        assert built.run("destroy", changed).returncode == 0
        proc.kill()
        proc.wait(timeout=10)
    finally:
        proc.kill()
    _wait_for(lambda: json.loads(next((built.state / "trials").glob("*.json")).read_text())["state"] != "trying",
              15, "the guard did not settle the trial")
    (trial,) = [json.loads(p.read_text()) for p in (built.state / "trials").glob("*.json")]
    assert trial["state"] == "superseded", trial
    assert not lab_view(built.prefix), "the destroyed lab came back"


def test_apply_try_killed_while_applying_is_rolled_back_by_its_guard(built, tmp_path):
    before = lab_view(built.prefix)
    changed = manifest(tmp_path, "10.0.2.2/24", "10.0.2.3/24")
    # The apply SIGKILLs itself half-way (after 3 kernel requests): a kill mid-apply.
    result = built.run("apply", changed, "--try", "30s", "--confirm", env={"NETKEEL_FAILPOINT": "apply.kill:3"})
    assert result.returncode == -9, result.stderr
    _wait_for(lambda: lab_view(built.prefix) == before, 30, "the guard did not roll the half-made change back")
    (trial,) = [json.loads(p.read_text()) for p in (built.state / "trials").glob("*.json")]
    assert trial["state"] == "rolled back" and "died" in trial["note"], trial
