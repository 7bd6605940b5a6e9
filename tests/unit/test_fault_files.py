"""Fault files (toolkit/manifest/fault.py): the shipped ones load and fit the lab
they name; hostile ones give FILE:LINE: path: message problems, every one at
once, and never a traceback. No root, no kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from toolkit.errors import ManifestError
from toolkit.manifest import load_topology
from toolkit.manifest.fault import load_fault, load_fault_text
from toolkit.model.fault import DEFAULT_DURATION_MS, Impairment, Partition, Target

REPO = Path(__file__).resolve().parents[2]
FAULTS = sorted((REPO / "faults").glob("*.yaml"))
FILE = "f.yaml"
T = "target: {node: a, interface: e0}\n"


def problems(text: str) -> list:
    """The problems of an invalid fault file, as 'LINE: path: message' (file name dropped)."""
    with pytest.raises(ManifestError) as caught:
        load_fault_text(textwrap.dedent(text), FILE)
    return [str(p).removeprefix(f"{FILE}:") for p in caught.value.problems]


# -- the shipped fault files -----------------------------------------------------------------

def test_there_are_shipped_fault_files():
    assert len(FAULTS) >= 9


@pytest.mark.parametrize("path", FAULTS, ids=lambda p: p.name)
def test_every_shipped_fault_file_loads(path):
    fault = load_fault(path)
    assert fault.name == path.stem
    assert fault.source == str(path)
    assert fault.kinds, "a fault without an impairment"
    assert fault.text()
    assert 100 <= fault.duration_ms <= 7 * 24 * 3_600_000


@pytest.mark.parametrize("path", FAULTS, ids=lambda p: p.name)
def test_every_shipped_fault_fits_the_topology_it_names(path):
    """Its nodes and interfaces exist in topologies/NAME.yaml: a shipped example
    that could never be injected would be a broken example."""
    fault = load_fault(path)
    assert fault.topology, "shipped faults say which topology they are for"
    topology = load_topology(REPO / "topologies" / f"{fault.topology}.yaml")
    interfaces = {n.name: {i.name for i in n.interfaces} for n in topology.nodes}
    if fault.target is not None:
        assert fault.target.interface in interfaces[fault.target.node]
    if fault.partition is not None:
        assert set(fault.partition.a + fault.partition.b) <= set(interfaces)


def test_shipped_faults_model_exactly():
    by_name = {p.stem: load_fault(p) for p in FAULTS}
    assert by_name["loss-40"].impairments == (Impairment("loss", (("percent", 40.0),)),)
    assert by_name["loss-40"].target == Target("ns_client2", "veth_c2", "egress")
    reorder = by_name["reorder"]
    assert reorder.impairment("delay").params == (("distribution", "normal"), ("jitter_ms", 400.0),
                                                  ("time_ms", 500.0))
    assert reorder.impairment("reorder").get("percent") == 50.0
    assert by_name["rate-1mbit"].impairment("rate").get("bits") == 10**6
    assert by_name["flap-c1"].impairment("flap").params == (("down_ms", 1000.0), ("period_ms", 3000.0),
                                                            ("cycles", 3))
    assert by_name["flap-c1"].duration_ms == 10_000
    assert by_name["partition-client2"].partition == Partition(("ns_client2",), ("ns_server", "ns_client1"))
    assert by_name["mtu-1280"].impairment("mtu").get("mtu") == 1280
    assert by_name["delay-50"].duration_ms == DEFAULT_DURATION_MS


# -- what valid files mean ---------------------------------------------------------------------

@pytest.mark.parametrize("written, ms", [
    ("500ms", 500), ("2s", 2000), ("1.5m", 90_000), ("1h", 3_600_000), ("100000us", 100), ("30", 30_000),
    ("0.5", 500), ("7d", 7 * 86_400_000), ("0.5d", 43_200_000),
])
def test_durations(written, ms):
    assert load_fault_text(f"duration: {written}\n{T}loss: 5%\n", FILE).duration_ms == ms


@pytest.mark.parametrize("written, bits", [
    ("8000bit", 8000), ("500kbit", 500_000), ("1.5mbit", 1_500_000), ("10gbit", 10**10), ("1000gbit", 10**12),
])
def test_rates(written, bits):
    assert load_fault_text(f"{T}rate: {written}\n", FILE).impairment("rate").get("bits") == bits


@pytest.mark.parametrize("written, value", [("40%", 40.0), ("40", 40.0), ("0.01%", 0.01), ("100%", 100.0),
                                            ("12.5", 12.5)])
def test_percentages(written, value):
    assert load_fault_text(f"{T}loss: {written}\n", FILE).impairment("loss").get("percent") == value


def test_a_narrowed_target_and_a_gilbert_elliott_loss():
    fault = load_fault_text("target: {node: a, interface: e0, direction: both, peer: 10.0.1.7, protocol: udp, "
                            "port: 53}\nloss: {percent: 5%, gilbert: {p: 1%, r: 20%, h: 70%}}\n", FILE)
    assert fault.target == Target("a", "e0", "both", "10.0.1.7/32", "udp", 53)
    assert fault.impairment("loss").get("gilbert") == (("h", 70.0), ("p", 1.0), ("r", 20.0))
    assert fault.text() == "loss 5% gemodel h 70% p 1% r 20% on a/e0 both peer 10.0.1.7/32 protocol udp port 53"


def test_the_name_is_the_file_name(tmp_path):
    path = tmp_path / "slow-uplink.yaml"
    path.write_text(f"{T}delay: 20ms\n")
    assert load_fault(path).name == "slow-uplink"


# -- hostile files: every problem, at its line, at once -----------------------------------------

HOSTILE = [
    # bad percentages
    ("over 100%", f"{T}loss: 140%\n", ["2: loss: loss must be more than 0% and at most 100%, not 140%"]),
    ("zero", f"{T}duplicate: 0%\n", ["2: duplicate: duplicate must be more than 0% and at most 100%, not 0%"]),
    ("negative", f"{T}corrupt: -5\n",
     ["2: corrupt: expected a percentage such as 40% (or a number from 0 to 100), got -5"]),
    ("not a number", f"{T}loss: lots%\n",
     ["2: loss: expected a percentage such as 40%, or {percent: 40%, gilbert: {p: 5%, r: 50%}} (p and r "
      "required; h and k optional; each from 0% to 100%), got 'lots%'"]),
    ("NaN", f"{T}loss: .nan\n", ["2: loss: loss must be more than 0% and at most 100%, not nan%"]),
    ("gilbert over 100%", f"{T}loss: {{percent: 5%, gilbert: {{p: 1%, r: 200%}}}}\n",
     ["2: loss.gilbert.r: r is a probability: from 0% to 100%, not 200%"]),
    # bad durations
    ("duration too short", f"duration: 5ms\n{T}loss: 5%\n",
     ["1: duration: duration '5ms' is out of range: from 100ms to 7 days"]),
    ("duration too long", f"duration: 8000h\n{T}loss: 5%\n",
     ["1: duration: duration '8000h' is out of range: from 100ms to 7 days"]),
    ("duration of 8 days", f"duration: 8d\n{T}loss: 5%\n",
     ["1: duration: duration '8d' is out of range: from 100ms to 7 days"]),
    ("duration infinite", f"duration: .inf\n{T}loss: 5%\n",
     ["1: duration: duration inf is out of range: from 100ms to 7 days"]),
    ("duration NaN", f"duration: .nan\n{T}loss: 5%\n",
     ["1: duration: duration nan is out of range: from 100ms to 7 days"]),
    ("duration in parsecs", f"duration: 5 parsecs\n{T}loss: 5%\n",
     ["1: duration: expected a time such as 500ms, 2s or 1.5m (us, ms, s, m, h, d), or a number of seconds, "
      "got '5 parsecs'"]),
    ("negative duration", f"duration: -5\n{T}loss: 5%\n",
     ["1: duration: expected a time such as 500ms, 2s or 1.5m (us, ms, s, m, h, d), or a number of seconds, got -5"]),
    ("delay of 0", f"{T}delay: 0ms\n",
     ["2: delay: a delay must be more than 0 and, with its jitter, at most an hour (more is not a lab fault)"]),
    ("delay of a day", f"{T}delay: {{time: 50ms, jitter: 24h}}\n",
     ["2: delay: a delay must be more than 0 and, with its jitter, at most an hour (more is not a lab fault)"]),
    ("distribution without jitter", f"{T}delay: {{time: 50ms, distribution: normal}}\n",
     ["2: delay.distribution: a distribution needs a jitter to spread the delay over"]),
    ("unknown distribution", f"{T}delay: {{time: 50ms, jitter: 5ms, distribution: gauss}}\n",
     ["2: delay.distribution: string 'gauss' is not one of: uniform, normal, pareto, paretonormal"]),
    ("flap down longer than its period", f"{T}flap: {{period: 1s, down: 2s}}\n",
     ["2: flap.down: down (2s) must be shorter than the period (1s)"]),
    ("flap too fast", f"{T}flap: {{period: 50ms, down: 10ms}}\n",
     ["2: flap.period: a flap period under 100ms is not one a keeper can keep"]),
    ("flap down not a time", f"{T}flap: {{period: 3s, down: soon}}\n",
     ["2: flap.down: expected a time such as 500ms, 2s or 1.5m (us, ms, s, m, h, d), or a number of seconds, "
      "got 'soon'"]),
    ("flap period infinite", f"{T}flap: {{period: .inf, down: 1s}}\n",
     ["2: flap: a flap's period and down time must be finite"]),
    # numbers of hundreds of digits: a float cannot hold them (OverflowError tracebacks)
    ("duration of 401 digits", f"{T}loss: 5%\nduration: 1{'0' * 400}\n",
     ["3: duration: duration a 1329-bit integer is out of range: from 100ms to 7 days"]),
    ("delay of 401 digits", f"{T}delay: 1{'0' * 400}\n",
     ["2: delay: a delay must be more than 0 and, with its jitter, at most an hour (more is not a lab fault)"]),
    ("rate of 401 digits", f"{T}rate: 1{'0' * 400}gbit\n",
     [f"2: rate: rate '1{'0' * 63}'... (405 characters) is above 1000gbit, more than tc can shape"]),
    # bad rates
    ("rate below 8kbit", f"{T}rate: 1kbit\n", ["2: rate: rate '1kbit' is below 8kbit: nothing usable would pass"]),
    ("rate beyond tc", f"{T}rate: 99999999gbit\n",
     ["2: rate: rate '99999999gbit' is above 1000gbit, more than tc can shape"]),
    ("rate with a space", f"{T}rate: 10 mbit\n",
     ["2: rate: invalid rate '10 mbit': write it like 10mbit, 500kbit, 1.5gbit or 8000bit"]),
    ("rate as a number", f"{T}rate: 1000\n", ["2: rate: expected a string, got integer 1000"]),
    # combinations netem refuses or that mean nothing
    ("reorder without delay", f"{T}reorder: 25%\n",
     ["2: reorder: reorder needs a delay: reordered packets are sent at once while the others wait "
      "(netem's rule); add delay: 10ms or more"]),
    ("link_down and flap", f"{T}link_down: true\nflap: {{period: 3s, down: 1s}}\n",
     ["3: flap: link_down and flap both decide the link's state: choose one"]),
    ("direction on a device fault", "target: {node: a, interface: e0, direction: ingress}\nmtu: 1280\n",
     ["1: target.direction: mtu changes the device itself: a direction does not apply"]),
    # partitions
    ("partition sides overlap", "partition: {between: [[a, b], [b, c]]}\n",
     ["1: partition.between: node(s) on both sides: b"]),
    ("partition with a target", f"{T}partition: {{between: [[a], [b]]}}\n",
     ["2: partition: a partition is a fault of its own: no target and no other impairment"]),
    ("partition with loss", "partition: {between: [[a], [b]]}\nloss: 5%\n",
     ["1: loss needs a target: target: {node: NODE, interface: IFNAME, direction: egress}",
      "1: partition: a partition is a fault of its own: no target and no other impairment"]),
    ("partition side not a list", "partition: {between: [[a], 5]}\n",
     ["1: partition.between[1]: expected a list, got integer 5"]),
    ("partition side empty", "partition: {between: [[], [b]]}\n",
     ["1: partition.between[0]: a list should be non-empty"]),
    ("partition of one side", "partition: {between: [[a]]}\n",
     ["1: partition.between: a partition is between two sets of nodes: between: [[A, ...], [B, ...]]"]),
    ("partition of three sides", "partition: {between: [[a], [b], [c]]}\n",
     ["1: partition.between: a partition is between two sets of nodes: between: [[A, ...], [B, ...]]"]),
    # targets
    ("port without protocol", "target: {node: a, interface: e0, port: 80}\nloss: 5%\n",
     ["1: target.port: a port needs protocol: tcp or udp"]),
    ("port with icmp", "target: {node: a, interface: e0, protocol: icmp, port: 80}\nloss: 5%\n",
     ["1: target.port: a port needs protocol: tcp or udp"]),
    ("narrowing a delay", "target: {node: a, interface: e0, peer: 10.0.0.0/24}\ndelay: 50ms\n",
     ["1: target: delay cannot be narrowed by peer, protocol or port here (only loss, duplicate and "
      "partitions can)"]),
    ("narrowing a rate", "target: {node: a, interface: e0, protocol: tcp}\nrate: 1mbit\n",
     ["1: target: rate cannot be narrowed by peer, protocol or port here (only loss, duplicate and "
      "partitions can)"]),
    ("peer with host bits", "target: {node: a, interface: e0, peer: 10.0.0.1/24}\nloss: 5%\n",
     ["1: target.peer: peer '10.0.0.1/24' has host bits set: the prefix is 10.0.0.0/24, the address 10.0.0.1"]),
    ("peer that is no address", "target: {node: a, interface: e0, peer: ten}\nloss: 5%\n",
     ["1: target.peer: peer 'ten' is not an address or a prefix, such as 10.0.1.0/24 or 10.0.1.7"]),
    ("interface with a newline", 'target: {node: a, interface: "e\\n0"}\nloss: 5%\n',
     ["1: target.interface: interface name 'e\\n0' contains illegal character(s) '\\n'"]),
    ("interface with a quote", 'target: {node: a, interface: "e0\\""}\nloss: 5%\n',
     ["1: target.interface: interface name 'e0\"' has a quote or a backslash, which nftables cannot quote"]),
    ("interface too long", "target: {node: a, interface: averyveryverylongname}\nloss: 5%\n",
     ["1: target.interface: interface name 'averyveryverylongname' is too long: the kernel allows 15 bytes"]),
    ("node with a control character", 'target: {node: "a\\x01", interface: e0}\nloss: 5%\n',
     ["1: target.node: invalid node name 'a\\x01': use letters, digits, '_', '.', '-', starting with a letter "
      "or digit, at most 48 characters"]),
    ("no target", "loss: 5%\n", ["1: loss needs a target: target: {node: NODE, interface: IFNAME, direction: egress}"]),
    ("target without a node", "target: {interface: e0}\nloss: 5%\n", ["1: target: missing required field 'node'"]),
    ("unknown direction", "target: {node: a, interface: e0, direction: up}\nloss: 5%\n",
     ["1: target.direction: string 'up' is not one of: egress, ingress, both"]),
    # unknown kinds and fields
    ("unknown kind", f"{T}jitter: 5ms\n",
     ["1: a fault needs at least one of: loss, delay, reorder, duplicate, corrupt, rate, partition, link_down, "
      "flap, mtu, speaker_kill, speaker_stop, vrrp_partition, master_cut",
      "2: jitter: unknown field 'jitter'; expected one of: backend, corrupt, delay, description, duplicate, "
      "duration, flap, link_down, loss, master_cut, mtu, partition, rate, reorder, speaker_kill, speaker_stop, "
      "target, topology, vrrp_partition"]),
    ("misspelt kind", f"{T}los: 5%\n",
     ["1: a fault needs at least one of: loss, delay, reorder, duplicate, corrupt, rate, partition, link_down, "
      "flap, mtu, speaker_kill, speaker_stop, vrrp_partition, master_cut",
      "2: los: unknown field 'los' (did you mean 'loss'?); expected one of: backend, corrupt, delay, description, "
      "duplicate, duration, flap, link_down, loss, master_cut, mtu, partition, rate, reorder, speaker_kill, "
      "speaker_stop, target, topology, vrrp_partition"]),
    ("unknown backend", f"backend: tc\n{T}loss: 5%\n", ["1: backend: string 'tc' is not one of: netem, nft, tbf, userspace"]),
    ("nothing to do", "description: calm\n",
     ["1: a fault needs at least one of: loss, delay, reorder, duplicate, corrupt, rate, partition, link_down, "
      "flap, mtu, speaker_kill, speaker_stop, vrrp_partition, master_cut"]),
    ("empty file", "", ["1: the fault file is empty: it needs a target and an impairment"]),
    # wrong types
    ("a list", "- loss\n- 5%\n", ["1: expected a mapping at the top level, got a list"]),
    ("a string", "loss 5%\n", ["1: expected a mapping at the top level, got a string"]),
    ("types everywhere", "target: {node: 5, interface: [e0]}\nloss: [5]\nmtu: big\nlink_down: false\n",
     ["1: target.interface: expected a string, got a list",
      "1: target.node: expected a string, got integer 5",
      "2: loss: expected a percentage such as 40%, or {percent: 40%, gilbert: {p: 5%, r: 50%}} (p and r "
      "required; h and k optional; each from 0% to 100%), got a list",
      "3: mtu: expected an integer, got string 'big'",
      "4: link_down: True was expected"]),
    ("mtu too small", f"{T}mtu: 20\n", ["2: mtu: 20 is less than the minimum of 68"]),
    ("description a list", f"description: [x]\n{T}loss: 5%\n", ["1: description: expected a string, got a list"]),
    ("topology name", f"topology: 'bad name!'\n{T}loss: 5%\n",
     ["1: topology: invalid topology name 'bad name!': use letters, digits, '_', '.', '-', starting with a "
      "letter or digit, at most 63 characters"]),
    ("duplicate key", f"{T}loss: 5%\nloss: 6%\n", ["3: loss: duplicate key 'loss' (first at line 2)"]),
    ("a python tag", f"{T}loss: !!python/object:os.system ls\n", None),  # refused, whatever the words
]
@pytest.mark.parametrize("name, text, expected", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_fault_files(name, text, expected):
    found = problems(text)
    if expected is None:
        assert found and all(":" in p for p in found)
    else:
        assert found == expected


def test_every_problem_at_once_in_line_order():
    found = problems("""\
        duration: 1ms
        target: {node: a, interface: e0, port: 80}
        loss: 140%
        reorder: 5%
        rate: 3bit
        """)
    assert found == [
        "1: duration: duration '1ms' is out of range: from 100ms to 7 days",
        "2: target: rate cannot be narrowed by peer, protocol or port here (only loss, duplicate and "
        "partitions can)",
        "2: target.port: a port needs protocol: tcp or udp",
        "3: loss: loss must be more than 0% and at most 100%, not 140%",
        "4: reorder: reorder needs a delay: reordered packets are sent at once while the others wait "
        "(netem's rule); add delay: 10ms or more",
        "5: rate: rate '3bit' is below 8kbit: nothing usable would pass",
    ]


def test_problems_name_the_file_and_stay_on_one_line():
    with pytest.raises(ManifestError) as caught:
        load_fault_text(f'target: {{node: a, interface: "e\\n0\\r{"x" * 200}"}}\nloss: 5%\n', "dir/x.yaml")
    for problem in caught.value.problems:
        text = str(problem)
        assert text.startswith("dir/x.yaml:1: ")
        assert "\n" not in text and "\r" not in text
        assert len(text) < 300


# Values of every type in every field: a ManifestError or a fault, never another exception.
ODD_VALUES = ["null", "true", "0", "-1", "1e308", ".inf", "-.inf", ".nan", "''", "'x'", "'%'", "'0%'",
              "'100000000000000000000%'", "'1e5ms'", "[]", "[1, 2]", "{}", "{a: 1}", "'\\0'", "'a\\x01b'",
              "2024-01-01", "'9' ", "999999999999999999999999999999"]
FIELDS = ["duration", "loss", "delay", "reorder", "duplicate", "corrupt", "rate", "mtu", "link_down", "flap",
          "partition", "target", "backend", "topology", "description"]
# Each nested mapping, as field -> its YAML text, valid as given; the sweep replaces one field at a time.
NESTED = {"target": {"node": "a", "interface": "e0", "direction": "egress", "peer": "10.0.0.0/24",
                     "protocol": "tcp", "port": "80"},
          "flap": {"period": "3s", "down": "1s", "cycles": "3"},
          "delay": {"time": "50ms", "jitter": "5ms", "distribution": "normal"},
          "loss": {"percent": "5%", "gilbert": "{p: 1%, r: 5%, h: 10%, k: 100%}"},
          "partition": {"between": "[[a], [b]]", "direction": "both"}}


def _flow(mapping: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"


def _never_a_traceback(text: str) -> None:
    try:
        load_fault_text(text, FILE)
    except ManifestError as exc:
        assert exc.problems
        assert all(str(p).startswith(f"{FILE}:") for p in exc.problems)


@pytest.mark.parametrize("field", FIELDS)
def test_odd_values_in_every_field(field):
    for value in ODD_VALUES:
        rest = "" if field == "target" else T
        other = "loss: 5%\n" if field not in ("loss", "partition") else ""
        if field == "partition":
            rest = ""
        _never_a_traceback(f"{rest}{other}{field}: {value}\n")


@pytest.mark.parametrize("field", sorted(NESTED))
def test_odd_values_in_every_nested_field(field):
    for key in NESTED[field]:
        for value in ODD_VALUES:
            inner = _flow({**NESTED[field], key: value})
            if field == "target":
                _never_a_traceback(f"target: {inner}\nloss: 5%\n")
            elif field == "partition":
                _never_a_traceback(f"partition: {inner}\n")
            else:
                _never_a_traceback(f"{T}{field}: {inner}\n")


def test_the_nested_bases_are_valid():
    for field, mapping in NESTED.items():
        if field == "partition":
            load_fault_text(f"partition: {_flow(mapping)}\n", FILE)
        elif field == "target":
            load_fault_text(f"target: {_flow({**mapping, 'peer': '10.0.0.0/24'})}\nloss: 5%\n", FILE)
        else:
            load_fault_text(f"{T}{field}: {_flow(mapping)}\n", FILE)


@pytest.mark.parametrize("what, make, message", [
    ("missing", lambda p: None, "cannot read fault file: No such file or directory"),
    ("a directory", lambda p: p.mkdir(), "cannot read fault file: it is a directory, not a regular file"),
    ("a FIFO", lambda p: os.mkfifo(p), "cannot read fault file: it is a FIFO, not a regular file"),
    ("not UTF-8", lambda p: p.write_bytes(b'loss: "\xff"\n'), "cannot read fault file: it is not UTF-8 text"),
])
def test_unreadable_fault_files(tmp_path, what, make, message):
    path = tmp_path / "bad.yaml"
    make(path)
    with pytest.raises(ManifestError) as caught:
        load_fault(path)
    assert [str(p) for p in caught.value.problems] == [f"{path}:1: {message}"]


def test_the_cli_reports_a_hostile_fault_file_before_anything_else(tmp_path):
    """`netkeel chaos FILE` checks the file first (root or not, no state, no kernel):
    every problem on stderr, exit 1, no traceback."""
    path = tmp_path / "hostile.yaml"
    path.write_text("duration: 1ms\ntarget: {node: a, interface: e0, port: 80}\nloss: 140%\n")
    netkeel = Path(sys.executable).with_name("netkeel")
    result = subprocess.run([str(netkeel), "chaos", str(path)], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, NETKEEL_STATE_DIR=str(tmp_path / "state")), cwd=REPO)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(path))]
    assert lines == [f"{path}:1: duration: duration '1ms' is out of range: from 100ms to 7 days",
                     f"{path}:2: target.port: a port needs protocol: tcp or udp",
                     f"{path}:3: loss: loss must be more than 0% and at most 100%, not 140%"]
    assert not (tmp_path / "state").exists()
