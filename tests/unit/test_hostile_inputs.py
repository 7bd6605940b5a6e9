"""Hostile input, table-driven: every case must be refused at validate time with
`FILE:LINE: path: message` lines, every problem at once, no traceback, bounded
messages on one line each, and nothing read beyond what the manifest may name.

Each case is a set of files written to a fresh directory (the manifest is
m.yaml, its policy, when it has one, p.yaml) and a fragment the report must
contain, with the location it must be reported at.
"""

from __future__ import annotations

import re
import textwrap

import pytest

from toolkit.errors import ManifestError
from toolkit.manifest import load_topology

LINE = re.compile(r"\A(?P<file>[^\n]+?):(?P<line>[1-9][0-9]*): (?:(?P<path>[^ \n]+): )?(?P<message>[^\n]+)\Z")
MAX_LINE = 700

LINK = """\
links:
  - endpoints:
      - {node: a, interface: e0, addresses: [10.0.0.1/24]}
      - {node: b, interface: e0, addresses: [10.0.0.2/24]}
"""


def manifest(nodes: str = "a:\nb:\n", links: str = LINK, name: str = "t") -> str:
    """A two-node manifest with `nodes` (YAML, indented under `nodes:`) and `links`."""
    return f"name: {name}\nnodes:\n  " + textwrap.indent(textwrap.dedent(nodes), "  ").lstrip() + links


def with_policy(policy: str, nodes: str = "a:\n  policies: [p.yaml]\nb:\n") -> dict:
    return {"m.yaml": manifest(nodes), "p.yaml": textwrap.dedent(policy)}


def rules(*lines: str, hook: str = "input", ctype: str = "filter", family: str = "inet") -> dict:
    """A policy with one base chain holding `lines` (YAML flow mappings)."""
    body = "".join(f"          - {line}\n" for line in lines)
    return with_policy(f"tables:\n  f:\n    family: {family}\n    chains:\n      c:\n"
                       f"        type: {ctype}\n        hook: {hook}\n        rules:\n{body}")


def write(tmp_path, files: dict) -> None:
    for name, content in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)


def report(tmp_path, monkeypatch, files: dict) -> list[str]:
    """The problem lines validating m.yaml gives (it must be invalid)."""
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ManifestError) as caught:
        load_topology("m.yaml")
    lines = str(caught.value).split("\n")
    assert len(lines) == len(caught.value.problems), "a message broke onto another line"
    for line in lines:
        assert LINE.match(line), f"not FILE:LINE: path: message: {line!r}"
        assert len(line) <= MAX_LINE, f"message too long ({len(line)} characters)"
        assert line.isprintable(), f"control characters in {line!r}"
        assert "Traceback" not in line
    return lines


def assert_reported(lines: list[str], where: str, fragment: str) -> None:
    """Some line is at `where` ("m.yaml:3: nodes.a") and contains `fragment`."""
    hits = [line for line in lines if line.startswith(where) and fragment in line]
    assert hits, f"no {where!r} line with {fragment!r} in:\n" + "\n".join(lines)


CASES = [
    # -- 17: values the schema refused never reach the semantic checks ----------
    ("endpoint node is a list",
     {"m.yaml": manifest(links="links:\n  - endpoints:\n      - {node: [a], interface: e0}\n"
                                "      - {node: b, interface: e0}\n")},
     "m.yaml:7: links[0].endpoints[0].node", "expected a string, got a list"),
    ("limit is a number", rules("{limit: 10, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].limit", "got 10"),
    ("action is an empty mapping", rules("{action: {}}"),
     "p.yaml:9: tables.f.chains.c.rules[0].action", "got a mapping"),
    ("action is an unknown word", rules("{action: allow}"),
     "p.yaml:9: tables.f.chains.c.rules[0].action", "got 'allow'"),
    ("protocol is a number", rules("{protocol: 6, dport: 22, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].protocol", "got 6"),
    ("icmp type is a number", rules("{icmp_type: 8, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].icmp_type", "got 8"),
    ("log prefix is a number", rules("{log: {prefix: 5}, action: accept}"),
     "p.yaml:9: tables.f.chains.c.rules[0].log", "got a mapping"),
    ("set element is a mapping",
     with_policy("tables:\n  f:\n    sets:\n      s: {type: ipv4_addr, elements: [{a: 1}]}\n"),
     "p.yaml:4: tables.f.sets.s.elements[0]", "expected a string or an integer"),
    ("sysctl value is a mapping", {"m.yaml": manifest("a:\n  sysctls: {net.ipv4.ip_forward: {a: 1}}\nb:\n")},
     'm.yaml:4: nodes.a.sysctls["net.ipv4.ip_forward"]', "got a mapping"),
    ("route via is a number", {"m.yaml": manifest("a:\n  routes: [{to: default, via: 5}]\nb:\n")},
     "m.yaml:4: nodes.a.routes[0].via", "expected a string, got integer 5"),
]


@pytest.mark.parametrize("files, where, fragment",
                         [pytest.param(files, where, fragment, id=name) for name, files, where, fragment in CASES])
def test_hostile_input_is_refused_with_file_line_path_and_message(tmp_path, monkeypatch, files, where, fragment):
    assert_reported(report(tmp_path, monkeypatch, files), where, fragment)


def test_the_cases_build_a_valid_lab_without_their_defect(tmp_path, monkeypatch):
    """The scaffolding itself is valid: each case fails for its defect alone."""
    write(tmp_path, {"m.yaml": manifest()} | rules("{protocol: tcp, dport: 22, action: accept}"))
    monkeypatch.chdir(tmp_path)
    load_topology("m.yaml")
