"""Experiment files (toolkit/manifest/experiment.py): the shipped ones load and
fit the lab they name; hostile ones give FILE:LINE: path: message problems,
every one at once (their inline faults' too), and never a traceback. No root,
no kernel."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from toolkit.errors import ManifestError
from toolkit.manifest import load_topology
from toolkit.manifest.experiment import load_experiment, load_experiment_text

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))

GOOD = """\
topology: two-clients
steady_state:
  - name: ping
    node: ns_client1
    icmp: {to: 10.0.1.1}
    count: 5
    interval: 20ms
    expect: {loss: "<= 5%", rtt_p99: "< 50ms"}
faults:
  - fault: loss-40
    start: 1s
    duration: 2s
during:
  probes:
    - name: under loss
      node: ns_client2
      udp: {to: ns_server, port: 8080}
      within: loss-40
      expect: {loss: [">= 20%", "<= 60%"]}
"""


def load(text: str, tmp_path: Path):
    """Load `text` as experiments/x.yaml beside a copy of the shipped faults."""
    (tmp_path / "experiments").mkdir(exist_ok=True)
    (tmp_path / "faults").mkdir(exist_ok=True)
    for fault in (REPO / "faults").glob("*.yaml"):
        (tmp_path / "faults" / fault.name).write_text(fault.read_text())
    path = tmp_path / "experiments" / "x.yaml"
    path.write_text(textwrap.dedent(text))
    return load_experiment(path)


def problems(text: str, tmp_path: Path) -> list:
    with pytest.raises(ManifestError) as caught:
        load(text, tmp_path)
    file = str(tmp_path / "experiments" / "x.yaml")
    return [str(p).replace(f"{file}:", "") for p in caught.value.problems]


def test_there_are_the_two_shipped_experiments():
    assert {p.stem for p in EXPERIMENTS} >= {"loss-vs-timeserver", "reorder-vs-tcp"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_shipped_experiment_fits_its_lab(path):
    x = load_experiment(path)
    lab = load_topology(REPO / "topologies" / f"{x.topology}.yaml")
    nodes = {n.name for n in lab.nodes}
    for probe in x.steady_state + x.during:
        assert probe.node in nodes, probe
        assert probe.expect, f"{probe.name} declares nothing to check"
    for service in x.services:
        assert service.node in nodes
    for scheduled in x.faults:
        assert scheduled.fault.topology in (None, x.topology)
        assert scheduled.end_ms <= x.during_ms
        assert scheduled.fault.target is None or scheduled.fault.target.node in nodes


def test_a_good_file_gives_the_model(tmp_path):
    x = load(GOOD, tmp_path)
    assert x.name == "x" and x.topology == "two-clients"
    (probe,) = x.steady_state
    assert (probe.kind, probe.count, probe.interval_ms, probe.timeout_ms) == ("icmp", 5, 20, 1000)
    assert [(b.metric, b.op, b.value) for b in probe.expect] == [("loss", "<=", 5), ("rtt_p99", "<", 50)]
    (scheduled,) = x.faults
    assert (scheduled.fault.name, scheduled.start_ms, scheduled.duration_ms) == ("loss-40", 1000, 2000)
    assert x.during_ms == 3000  # the last fault's end, when not given
    (during,) = x.during
    assert during.within == "loss-40" and during.target == "ns_server" and during.port == 8080
    assert [b.text for b in during.expect] == [">= 20%", "<= 60%"]


def test_units_of_bounds_are_converted(tmp_path):
    x = load(GOOD.replace('rtt_p99: "< 50ms"', 'rtt_p99: "< 0.05s"'), tmp_path)
    assert x.steady_state[0].expect[1].value == pytest.approx(50)
    x = load(GOOD.replace('icmp: {to: 10.0.1.1}', 'tcp_transfer: {to: 10.0.1.1, port: 9}')
             .replace('    count: 5\n', '').replace('expect: {loss: "<= 5%", rtt_p99: "< 50ms"}',
                                                'expect: {goodput: ">= 500kbit/s"}'), tmp_path)
    assert x.steady_state[0].expect[0].value == pytest.approx(0.5)


def test_every_problem_at_once_with_its_line(tmp_path):
    found = problems("""\
        topology: two-clients
        surprise: 1
        steady_state:
          - name: ping
            node: ns_client1
            icmp: {to: 10.0.1.1, port: 7}
            expect: {goodput: ">= 1mbit/s", loss: "<= 5ms"}
          - name: ping
            node: ns_client1
            udp: {to: "not an address!"}
            halt: true
        faults:
          - fault: no-such-fault
          - inline: {target: {node: ns_client2, interface: veth_c2}, loss: 140%}
            start: 1s
        during:
          duration: 500ms
          probes:
            - name: p
              node: ns_client1
              command: "false"
              within: nothing
        """, tmp_path)
    text = "\n".join(found)
    assert "2: " in text and "surprise" in text
    assert "6: steady_state[0].icmp.port: ICMP has no ports" in text
    assert "7: steady_state[0].expect.goodput: a icmp probe measures" in text
    assert "7: steady_state[0].expect.loss: loss is a percentage" in text
    assert "8: steady_state[1].name: a second probe named 'ping'" in text
    assert "10: steady_state[1].udp.to: 'not an address!' is neither an address nor a node name" in text
    assert "steady_state[1].halt: halt stops the faults when this probe fails: it belongs to during.probes" in text
    assert "13: faults[0].fault: fault file" in text and "no-such-fault.yaml" in text
    assert "14: faults[1].inline.loss: loss must be more than 0% and at most 100%, not 140%" in text
    assert "within: no scheduled fault is named 'nothing'" in text
    assert len(found) >= 10


def test_a_fault_phase_shorter_than_its_faults_is_refused(tmp_path):
    found = problems(GOOD + "  duration: 2s\n", tmp_path)
    assert any("during.duration: the fault phase (2s) ends before its last fault does (3 s" in p for p in found)


def test_a_probe_that_could_run_for_hours_is_refused(tmp_path):
    found = problems(GOOD.replace("count: 5", "count: 100000").replace("interval: 20ms", "interval: 10s"),
                     tmp_path)
    assert any("steady_state[0]: this probe could take" in p for p in found)


def test_a_fault_for_another_topology_is_refused(tmp_path):
    found = problems(GOOD.replace("topology: two-clients", "topology: bridged-lan"), tmp_path)
    assert any("faults[0]: fault loss-40 is meant for topology two-clients" in p for p in found)


def test_a_fault_scheduled_twice_needs_a_second_name(tmp_path):
    twice = GOOD.replace("faults:\n", "faults:\n  - {fault: loss-40, start: 0s, duration: 500ms}\n")
    assert any("is scheduled twice" in p for p in problems(twice, tmp_path))
    named = GOOD.replace("faults:\n", "faults:\n  - {fault: loss-40, name: early, start: 0s, duration: 500ms}\n")
    assert [f.fault.name for f in load(named, tmp_path).faults] == ["early", "loss-40"]


@pytest.mark.parametrize("text", ["", "[]", "just a string", "topology: [1]", ": :", "\x00",
                                  "topology: two-clients\nsteady_state: {}\n",
                                  "topology: two-clients\nsteady_state: [{name: a, node: b, icmp: 5}]\n",
                                  "topology: two-clients\nsteady_state: [{name: a, node: b, command: []}]\n",
                                  "topology: two-clients\nsteady_state: [{name: a, node: b, command: 'a \"b'}]\n",
                                  "topology: two-clients\nfaults: [{inline: 3}]\nsteady_state: []\n",
                                  "topology: two-clients\nfaults: [{inline: {}}]\n"])
def test_hostile_files_give_problems_not_tracebacks(text, tmp_path):
    with pytest.raises(ManifestError) as caught:
        load_experiment_text(text, "h.yaml")
    assert caught.value.problems and all(str(p).startswith("h.yaml:") for p in caught.value.problems)


def test_the_readme_example_loads(tmp_path):
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Experiments"):]
    example = section[section.index("```yaml\n") + 8:section.index("```\n", section.index("```yaml\n"))]
    x = load(example, tmp_path)
    assert [f.fault.name for f in x.faults] == ["loss-40", "slow"] and x.during[0].halt


def test_starts_that_are_not_times_are_refused(tmp_path):
    found = problems(GOOD.replace("start: 1s", "start: .nan").replace("within: loss-40", "within: loss-40\n"
                                                                      "      start: .inf"), tmp_path)
    assert any("faults[0].start: a start is from 0 to an hour" in p for p in found), found
    assert any("during.probes[0].start: a start is from 0 to an hour" in p for p in found), found


def test_two_servers_on_one_port_and_control_characters_in_names_are_refused(tmp_path):
    found = problems("services:\n  - {node: a, udp_time: 8080}\n  - {node: a, udp_time: 8080}\n"
                     + GOOD.replace("name: ping", 'name: "ping\\e[31m"'), tmp_path)
    assert any("services[1]: a second udp_time on a port 8080" in p for p in found), found
    assert any("steady_state[0].name: a probe name is shown on terminals" in p for p in found), found


def test_a_fault_named_out_of_the_project_is_refused_unread(tmp_path, tmp_path_factory):
    """An experiment file is input too (a pull request's): a fault path to
    /etc/shadow had its lines echoed as unknown keys. Paths stay inside the
    project (outside git: the directory holding experiments/ and faults/); a
    fault of faults/ that is a link out of it is refused alike."""
    secret = tmp_path_factory.mktemp("elsewhere") / "secret"
    secret.write_text("root-password-line: x\n")
    (tmp_path / "faults").mkdir()
    (tmp_path / "faults" / "evil.yaml").symlink_to(secret)
    for name in (str(secret), "../../" + secret.parent.name + "/secret", "evil"):
        found = problems(GOOD.replace("fault: loss-40", f"fault: {name}"), tmp_path)
        assert any(f"faults[0].fault: fault file '{name}' is outside the experiment's project directory "
                   f"('{tmp_path}')" in p for p in found), found
        assert not any("root-password-line" in p for p in found), found
    assert load(GOOD.replace("fault: loss-40", "fault: ../faults/loss-40.yaml"), tmp_path).faults


def test_times_a_float_cannot_hold_or_not_a_number_are_refused_not_tracebacks(tmp_path):
    huge = "1" + "0" * 400
    text = GOOD.replace("interval: 20ms", f"interval: {huge}").replace(
        "      udp: {to: ns_server, port: 8080}", "      tcp_transfer: {to: ns_server, port: 8080, duration: .nan}")
    found = problems(text, tmp_path)
    assert "7: steady_state[0].interval: an interval is from 1ms to 60s" in found, found
    assert "17: during.probes[0].tcp_transfer.duration: a transfer lasts more than 0 and at most ten minutes" \
        in found, found
    assert not any("could take inf" in p for p in found), found


@pytest.mark.parametrize("probe, message", [
    ('command: ["a\\0b"]', "steady_state[0].command[0]: word 'a\\x00b' holds control characters"),
    ('command: [""]', "steady_state[0].command: the command's program (its first word) is empty"),
    ("icmp: {to: 'fe80::1%veth_c1'}", "steady_state[0].icmp.to: 'fe80::1%veth_c1' has a scope id"),
    ("icmp: {to: 0.0.0.0}", "steady_state[0].icmp.to: 0.0.0.0 is no one node's address"),
    ("icmp: {to: 255.255.255.255}", "steady_state[0].icmp.to: 255.255.255.255 is no one node's address"),
    ("icmp: {to: 10.0.1.1}\n    expect: {loss: ['>= 50%', '<= 10%']}",
     "steady_state[0].expect.loss: no value meets >= 50% and <= 10%: the probe could never hold"),
    ("icmp: {to: 10.0.1.1}\n    expect: {loss: ['> 10%', '< 10%']}",
     "steady_state[0].expect.loss: no value meets > 10% and < 10%"),
])
def test_probes_that_could_never_run_or_never_hold_are_refused(tmp_path, probe, message):
    text = GOOD.replace("    icmp: {to: 10.0.1.1}\n    count: 5\n    interval: 20ms\n"
                        "    expect: {loss: \"<= 5%\", rtt_p99: \"< 50ms\"}\n", f"    {probe}\n")
    assert any(message in p for p in problems(text, tmp_path)), problems(text, tmp_path)


def test_bounds_some_value_meets_are_kept(tmp_path):
    text = GOOD.replace('expect: {loss: "<= 5%", rtt_p99: "< 50ms"}', "expect: {loss: ['>= 10%', '<= 10%']}")
    assert load(text, tmp_path).steady_state[0].expect


def test_an_experiment_in_a_subdirectory_finds_its_projects_faults(tmp_path):
    """Outside git, experiments/sub/e.yaml could not use ../../faults/ (its parent
    was taken for the project) nor `fault: NAME`."""
    load(GOOD, tmp_path)  # the project: experiments/ beside a copy of the shipped faults/
    sub = tmp_path / "experiments" / "sub"
    sub.mkdir()
    for name in ("loss-40", "../../faults/loss-40.yaml"):
        (sub / "e.yaml").write_text(textwrap.dedent(GOOD).replace("fault: loss-40", f"fault: {name}"))
        assert load_experiment(sub / "e.yaml").faults[0].fault.name == "loss-40"
