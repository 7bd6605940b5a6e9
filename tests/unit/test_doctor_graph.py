"""`graph FILE`: the topology as Mermaid text (golden files), as SVG and PNG, and
the task's output rules. No root, no kernel: the --live path runs on a fake
doctor.

Rewrite the goldens after an intended change (then read the diff):

    NETKEEL_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/unit/test_doctor_graph.py
"""

from __future__ import annotations

import os
import re
import stat
import struct
import sys
import types
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path

import pytest
from golden import check_golden
from invoke import Context

from toolkit.doctor.finding import Finding
from toolkit.doctor.graph import diagram, label, mermaid, to_mermaid
from toolkit.manifest import load_topology, load_topology_text

ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ROOT / "tests" / "golden" / "graph"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}svg"


def topology(name: str):
    return load_topology(ROOT / "topologies" / f"{name}.yaml")


def lab(text: str):
    return load_topology_text(text, "test.yaml")


# -- Mermaid text ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["two-clients", "vrrp-pair"])
def test_golden_mermaid(name):
    check_golden(GOLDENS / f"{name}.mmd", mermaid(topology(name)))


def test_golden_mermaid_with_findings_marked():
    t = topology("vrrp-pair")
    findings = [Finding("duplicates", "10.0.3.254 is held by r1 and r2", "10.0.3.254", nodes=("r2", "r1")),
                Finding("gateways", "default gateway 10.0.3.254 answers from two MACs", "client", severity="warning",
                        nodes=("client",))]
    check_golden(GOLDENS / "vrrp-pair-findings.mmd", mermaid(t, findings, prefix="lab1-"))


def test_same_lab_written_in_another_order_gives_the_same_text():
    a = lab("""
name: order
nodes:
  b: {routes: [{to: default, via: 10.0.1.1}, {to: 10.9.0.0/16, via: 10.0.1.1}]}
  a: {sysctls: {net.ipv4.ip_forward: 1}}
  c: {}
links:
  - endpoints: [{node: b, interface: e0, addresses: [10.0.1.2/24]}, {node: a, interface: e1, addresses: [10.0.1.1/24]}]
  - endpoints: [{node: c, interface: e0, addresses: [10.0.2.2/24]}, {node: a, interface: e2, addresses: [10.0.2.1/24]}]
""")
    b = lab("""
name: order
nodes:
  c: {}
  a: {sysctls: {net.ipv4.ip_forward: 1}}
  b: {routes: [{to: 10.9.0.0/16, via: 10.0.1.1}, {to: default, via: 10.0.1.1}]}
links:
  - endpoints: [{node: a, interface: e2, addresses: [10.0.2.1/24]}, {node: c, interface: e0, addresses: [10.0.2.2/24]}]
  - endpoints: [{node: a, interface: e1, addresses: [10.0.1.1/24]}, {node: b, interface: e0, addresses: [10.0.1.2/24]}]
""")
    assert mermaid(a) == mermaid(b)
    text = mermaid(a)
    assert text.startswith("%% netkeel graph: order\ngraph LR\n")
    # The default route first in the note; the link's first line is its first node's end.
    assert 'r_b>"default via 10.0.1.1<br/>10.9.0.0/16 via 10.0.1.1"]' in text
    assert 'n_a ---|"e1 10.0.1.1/24<br/>e0 10.0.1.2/24"| n_b' in text
    assert 'n_a["a<br/>ipv4.ip_forward=1"]' in text


def test_node_label_shows_loopback_key_sysctls_firewall_and_neighbours_only():
    t = lab("""
name: labels
nodes:
  r:
    loopback: {addresses: ["2001:db8::1/128", 198.51.100.1/32]}
    sysctls:
      net.ipv4.ip_forward: 1
      net.ipv4.conf.all.rp_filter: 1
      net.core.somaxconn: 4096
    neighbours: [{address: 10.0.1.2, mac: "02:00:00:00:00:02", interface: e0}]
  h: {}
links:
  - endpoints: [{node: r, interface: e0, addresses: [10.0.1.1/24]}, {node: h, interface: e0, addresses: [10.0.1.2/24]}]
""")
    node = diagram(t).shape("n_r")
    assert node.lines == ("r", "lo 198.51.100.1/32 2001:db8::1/128", "ipv4.conf.all.rp_filter=1",
                          "ipv4.ip_forward=1", "neigh 10.0.1.2 at 02:00:00:00:00:02 on e0")


def test_mtu_shown_once_when_both_ends_agree_and_per_end_when_they_differ():
    t = lab("""
name: mtus
nodes: {a: {}, b: {}, c: {}}
links:
  - mtu: 9000
    endpoints: [{node: a, interface: j0, addresses: [10.0.1.1/24]}, {node: b, interface: j0, addresses: [10.0.1.2/24]}]
  - endpoints:
      - {node: a, interface: m0, addresses: [10.0.2.1/24]}
      - {node: c, interface: m0, addresses: [10.0.2.2/24], mtu: 1400}
  - endpoints: [{node: b, interface: p0, state: down}, {node: c, interface: p0, mac: "02:00:00:00:00:0c"}]
  - impair: {rate: 10mbit, delay: 20ms, jitter: 5ms}
    endpoints: [{node: b, interface: s0}, {node: c, interface: s0}]
""")
    links = {e.lines[0].split()[0] + "-" + e.b: e.lines for e in diagram(t).edges if e.kind == "wire"}
    assert links["j0-n_b"] == ("j0 10.0.1.1/24", "j0 10.0.1.2/24", "mtu 9000")
    assert links["m0-n_c"] == ("m0 10.0.2.1/24 mtu 1500", "m0 10.0.2.2/24 mtu 1400")
    assert links["p0-n_c"] == ("p0 down", "p0 mac 02:00:00:00:00:0c")
    assert links["s0-n_c"] == ("s0 (rate 10Mbit/s, delay 20ms +-5ms)", "s0 (rate 10Mbit/s, delay 20ms +-5ms)")


def test_a_bridge_is_a_shape_inside_its_node_and_its_ports_links_end_at_it():
    text = mermaid(topology("vrrp-pair"))
    assert '  subgraph n_sw ["sw"]\n    b_sw__br0{{"bridge br0"}}\n  end\n' in text
    assert 'n_client ---|"eth0 10.0.3.10/24<br/>sw_client"| b_sw__br0' in text
    d = diagram(topology("bridged-lan"))
    assert d.shape("b_sw__br0").parent == "n_sw"
    assert [e.b for e in d.edges if e.kind == "wire" and e.a == "n_gw"] == ["b_sw__br0", "n_upstream"]


def test_vip_group_is_a_dashed_box_with_dashed_edges_to_its_members():
    text = mermaid(topology("vrrp-pair"))
    assert 'v_gw(["VIP gw<br/>10.0.3.254/24<br/>vrid 51"])' in text
    assert 'v_gw -.-|"eth0 priority 200"| n_r1' in text
    assert 'v_gw -.-|"eth0 priority 100"| n_r2' in text
    assert re.search(r"classDef vip [^\n]*stroke-dasharray", text)
    assert "  class v_gw vip\n" in text


def test_findings_mark_their_nodes_red_with_a_note_each():
    t = topology("two-clients")
    findings = [Finding("mtu", "MTU mismatch on the link ns_client2/veth_c2 - ns_server/veth_srv_c2",
                        "ns_client2/veth_c2 - ns_server/veth_srv_c2", nodes=("ns_server", "ns_client2")),
                Finding("mtu", "MTU mismatch on the link ns_client2/veth_c2 - ns_server/veth_srv_c2",
                        "ns_client2/veth_c2 - ns_server/veth_srv_c2", nodes=("ns_server", "ns_client2")),
                Finding("gateways", "nowhere", "", severity="warning", nodes=("no_such_node",))]
    d = diagram(t, findings)
    assert [s.name for s in d.shapes if s.marked and s.kind == "node"] == ["ns_client2", "ns_server"]
    notes = [s for s in d.shapes if s.kind == "finding"]
    assert [n.lines[0] for n in notes] == ["error [mtu]", "warning [gateways]"]  # duplicates once, errors first
    assert [(e.a, e.b) for e in d.edges if e.a == "f_1"] == [("f_1", "n_ns_client2"), ("f_1", "n_ns_server")]
    assert not [e for e in d.edges if e.a == "f_2"]  # a node the lab does not have: the note alone
    text = to_mermaid(d)
    assert "  style n_ns_client2 fill:#ffe0e0" in text and "  style n_ns_server fill:#ffe0e0" in text
    assert "style n_ns_client1" not in text
    assert "  class f_1,f_2 finding\n" in text
    assert "style" not in mermaid(t)  # nothing marked without findings


def test_a_long_finding_title_is_cut_in_its_note():
    f = Finding("x", "y" * 500, "here", nodes=("ns_server",))
    note = diagram(topology("two-clients"), [f]).shape("f_1")
    assert len(note.lines[1]) == 160 and note.lines[1].endswith("...")


def test_hostile_names_are_escaped_and_ids_stay_safe_and_unique():
    t = lab("""
name: hostile
nodes:
  a.b-c:
    bridges:
      'b|r"<x>':
        ports: ['p#1&`']
  a_b_c: {}
  end: {}
links:
  - endpoints: [{node: a.b-c, interface: 'p#1&`'}, {node: end, interface: 'e"0<b>', addresses: [10.9.0.2/24]}]
  - endpoints: [{node: a.b-c, interface: x1}, {node: a_b_c, interface: x2}]
""")
    d = diagram(t)
    ids = [s.id for s in d.shapes]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[nbvrf]_[A-Za-z0-9_]+", i) for i in ids)
    text = to_mermaid(d)
    for line in text.splitlines()[2:]:
        # Every label is one quoted string: no quote, pipe, angle bracket or backquote of a name inside it.
        for quoted in re.findall(r'"((?:[^"])*)"', line):
            assert not re.search(r'[|`&]|<(?!br/>)|(?<!br/)>', quoted), line
    assert '"bridge b#124;r#34;#60;x#62;"' in text
    assert 'p#35;1#38;#96;<br/>e#34;0#60;b#62; 10.9.0.2/24' in text
    assert label(["a\x07b"]) == '"a b"'


# -- SVG and PNG ----------------------------------------------------------------------------

def _png_size(data: bytes) -> tuple:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_png_is_written_and_marked_nodes_are_red():
    from matplotlib.image import imread
    import io

    from toolkit.doctor.render import MARKED, render

    t = topology("vrrp-pair")
    plain = render(diagram(t), "png")
    marked = render(diagram(t, [Finding("duplicates", "dup", "r1", nodes=("r1", "r2"))]), "png")
    width, height = _png_size(plain)
    assert width > 200 and height > 200
    _png_size(marked)

    def reddish(data):
        pixels = imread(io.BytesIO(data), format="png")
        face = tuple(int(MARKED[0][i:i + 2], 16) / 255 for i in (1, 3, 5))
        close = (abs(pixels[..., 0] - face[0]) < 0.02) & (abs(pixels[..., 1] - face[1]) < 0.02) \
            & (abs(pixels[..., 2] - face[2]) < 0.02)
        return int(close.sum())

    assert reddish(plain) == 0
    assert reddish(marked) > 100


def test_svg_is_xml_with_the_labels_and_the_same_each_time():
    from toolkit.doctor.render import render

    t = topology("two-clients")
    data = render(diagram(t), "svg")
    root = ET.fromstring(data)
    assert root.tag == SVG
    assert render(diagram(t), "svg") == data  # seeded layout, fixed ids, no date


def test_render_refuses_an_unknown_format_and_draws_hostile_text():
    from toolkit.doctor.render import render, text

    with pytest.raises(ValueError):
        render(diagram(topology("two-clients")), "gif")
    assert text("$x$ \x1b") == r"\$x\$  "
    t = lab("""
name: money
nodes: {"a": {}, "b": {}}
links:
  - endpoints: [{node: a, interface: '$1$'}, {node: b, interface: '$2'}]
""")
    assert render(diagram(t), "png")[:8] == PNG_SIGNATURE


# -- the task ---------------------------------------------------------------------------------

def _run(**kwargs) -> int:
    from toolkit.cli.graph import graph

    try:
        graph(Context(), **kwargs)
    except SystemExit as exc:  # a command's exit status (cli/common.command)
        return exc.code
    return 0


def test_task_writes_mermaid_to_stdout_by_default(capfd):
    assert _run(file=str(ROOT / "topologies" / "vrrp-pair.yaml")) == 0
    assert capfd.readouterr().out == (GOLDENS / "vrrp-pair.mmd").read_text()


@pytest.mark.parametrize("fmt,check", [("png", lambda b: _png_size(b)),
                                       ("svg", lambda b: ET.fromstring(b).tag == SVG or pytest.fail("not svg")),
                                       ("mermaid", lambda b: b.startswith(b"%% netkeel graph"))])
def test_task_writes_each_format_to_output(tmp_path, fmt, check):
    out = tmp_path / f"lab.{fmt}"
    assert _run(file=str(ROOT / "topologies" / "two-clients.yaml"), format=fmt, output=str(out)) == 0
    assert check(out.read_bytes()) is not False
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # nothing left aside


def test_task_refuses_outputs_that_are_not_regular_files(tmp_path, capfd):
    target = tmp_path / "target"
    target.write_text("keep")
    link = tmp_path / "link.mmd"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (link, fifo, tmp_path, Path("/dev/null"), tmp_path / "no" / "dir.mmd"):
        assert _run(file=str(ROOT / "topologies" / "two-clients.yaml"), output=str(path)) == 1, path
    assert target.read_text() == "keep" and link.is_symlink()
    errors = capfd.readouterr().err
    assert "is a symlink" in errors and "is a FIFO" in errors and "is a directory" in errors
    assert "is a character device" in errors and "no directory" in errors


def test_task_replaces_a_regular_file_keeping_its_mode(tmp_path):
    out = tmp_path / "lab.mmd"
    out.write_text("old")
    out.chmod(0o640)
    assert _run(file=str(ROOT / "topologies" / "two-clients.yaml"), output=str(out)) == 0
    assert out.read_text() == (GOLDENS / "two-clients.mmd").read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_task_refuses_an_unknown_format_and_png_on_a_terminal(monkeypatch, capfd):
    assert _run(file=str(ROOT / "topologies" / "two-clients.yaml"), format="dot") == 1
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert _run(file=str(ROOT / "topologies" / "two-clients.yaml"), format="png") == 1
    assert "not for a terminal" in capfd.readouterr().err


def test_live_marks_the_doctors_findings_and_exits_2(monkeypatch, capfd):
    """--live: the doctor's context and checks (faked here), the findings on the graph."""
    import toolkit.cli.doctor as cli_doctor
    import toolkit.doctor as doctor_pkg

    t = topology("two-clients")
    seen = {}

    @contextmanager
    def diagnosed(file, prefix, state_dir, verbose, only=None):
        seen["args"] = (file, prefix, state_dir, verbose)
        yield types.SimpleNamespace(topology=t, prefix=prefix)

    found = [Finding("mtu", "MTU mismatch", "ns_client2/veth_c2 - ns_server/veth_srv_c2",
                     nodes=("ns_client2", "ns_server"))]
    checks = types.SimpleNamespace(run=lambda ctx: found)
    monkeypatch.setattr(cli_doctor, "diagnosed", diagnosed)
    monkeypatch.setitem(sys.modules, "toolkit.doctor.checks", checks)
    monkeypatch.setattr(doctor_pkg, "checks", checks, raising=False)

    assert _run(file="lab.yaml", ns_prefix="p1-", live=True) == 2
    assert seen["args"] == ("lab.yaml", "p1-", None, False)
    text = capfd.readouterr().out
    assert text.startswith("%% netkeel graph: two-clients (namespaces prefixed 'p1-')\n")
    assert "style n_ns_client2 fill:#ffe0e0" in text and 'f_1>"error [mtu]<br/>MTU mismatch' in text

    found.clear()  # a healthy lab: exit 0, nothing marked
    assert _run(file="lab.yaml", live=True) == 0
    assert "style" not in capfd.readouterr().out


def test_graph_is_a_user_task():
    from toolkit.cli.history import user

    assert "graph" in user.task_names


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a file to another user")
def test_a_replaced_output_keeps_its_owner(tmp_path):
    """Root replacing a user's report made it root's (mode 640: the user could not read it)."""
    from toolkit.core.output import write_output

    out = tmp_path / "drift.xml"
    out.write_text("old")
    out.chmod(0o640)
    os.chown(out, 65534, 65534)
    write_output(str(out), b"new", "--junit")
    st = out.stat()
    assert out.read_bytes() == b"new" and (st.st_uid, st.st_gid) == (65534, 65534) and st.st_mode & 0o777 == 0o640


def test_a_dash_or_dev_stdout_is_standard_output(capfdbinary):
    from toolkit.core.output import write_output

    write_output("-", b"one ", "--junit")
    write_output("/dev/stdout", b"two", "--output")
    assert capfdbinary.readouterr().out == b"one two"
