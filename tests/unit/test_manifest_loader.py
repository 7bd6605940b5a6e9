"""The YAML layer: paths, line marks, duplicate keys, syntax errors, merge keys."""

from __future__ import annotations

import textwrap

import pytest

from toolkit.errors import ManifestError
from toolkit.manifest import load_topology
from toolkit.manifest.loader import format_path, load_document

EMPTY = "the manifest is empty; a topology needs `name` and `nodes`"


def doc(text: str):
    return load_document(textwrap.dedent(text), "f.yaml")


# -- format_path -------------------------------------------------------------

@pytest.mark.parametrize("path, text", [
    ((), ""),
    (("name",), "name"),
    (("links", 1, "endpoints", 0), "links[1].endpoints[0]"),
    (("links", 0, "endpoints", 1, "interface"), "links[0].endpoints[1].interface"),
    (("nodes", "ns_client-1", "routes", 2, "via"), "nodes.ns_client-1.routes[2].via"),
    (("nodes", "gw", "sysctls", "net.ipv4.ip_forward"), 'nodes.gw.sysctls["net.ipv4.ip_forward"]'),
    (("nodes", "bad name"), 'nodes["bad name"]'),
    (("nodes", "a", "bridges", "a/b"), 'nodes.a.bridges["a/b"]'),
    ((0, "a"), "[0].a"),
])
def test_format_path(path, text):
    assert format_path(path) == text


def test_format_path_escapes_quotes_in_keys():
    assert format_path(("x", 'say "hi"')) == r'x["say \"hi\""]'


# -- line marks --------------------------------------------------------------

NESTED = """\
name: x
nodes:
  a:
    routes:
      - to: default
        via:
          10.0.0.1
"""


def test_every_value_has_the_line_of_its_key():
    lines = doc(NESTED).lines
    assert lines[("name",)] == 1
    assert lines[("nodes", "a")] == 3
    assert lines[("nodes", "a", "routes", 0)] == 5
    assert lines[("nodes", "a", "routes", 0, "to")] == 5
    assert lines[("nodes", "a", "routes", 0, "via")] == 6  # the key, not the value on line 7


def test_line_of_falls_back_to_the_nearest_known_ancestor():
    d = doc(NESTED)
    assert d.line_of(("nodes", "a", "routes", 0, "via", "x", 3)) == 6
    assert d.line_of(("nowhere",)) == 1  # the root's line


def test_a_problem_in_a_nested_field_is_reported_on_the_line_of_its_key(errors):
    assert errors("""\
        name: x
        nodes:
          a:
            description: a

            sysctls:
              net.ipv4.ip_forward:
                - 1
    """) == ['7: nodes.a.sysctls["net.ipv4.ip_forward"]: expected an integer or a string or a boolean, got a list']


def test_root_line_is_the_first_content_line(errors):
    assert errors("# comment\n\nnodes: {a: }\n") == ["3: missing required field 'name'"]


# -- duplicate keys ----------------------------------------------------------

def test_duplicate_key_names_the_first_line_and_keeps_the_first_value():
    d = doc("""\
        a: 1
        b:
          c: 2
          d: 3
          c: 4
        a: 5
    """)
    assert d.data == {"a": 1, "b": {"c": 2, "d": 3}}
    assert [str(p) for p in d.problems] == [
        "f.yaml:5: b.c: duplicate key 'c' (first at line 3)",
        "f.yaml:6: a: duplicate key 'a' (first at line 1)",
    ]


def test_duplicate_key_is_reported_with_the_other_problems(errors):
    assert errors("""\
        name: x
        nodes:
          a:
          a:
        colour: red
    """) == [
        "4: nodes.a: duplicate key 'a' (first at line 3)",
        "5: colour: unknown field 'colour'; expected one of: description, links, name, nodes, vips",
    ]


def test_non_scalar_key_is_a_problem():
    d = doc("? [a, b]\n: 1\n")
    assert [p.message for p in d.problems] == ["mapping keys must be scalars"]


# -- syntax errors, empty and non-mapping documents ----------------------------

@pytest.mark.parametrize("text, line", [
    ("name: x\nnodes:\n  a: {b: 1\n  c: 2\n", 4),          # unclosed flow mapping
    ("name: x\nnodes:\n\ta: 1\n", 3),                      # tab indentation
    ("name: x\nnodes:\n  a:\n   b: 1\n  c: [\n", 6),        # unclosed flow sequence at EOF
    ("name: x\n---\nname: y\n", 2),                        # two documents
])
def test_yaml_syntax_error_is_the_only_problem_and_has_a_line(text, line):
    d = load_document(text, "f.yaml")
    assert d.data is None
    [problem] = d.problems
    assert (problem.line, problem.path) == (line, "")
    assert problem.message.startswith("YAML syntax error: ")


def test_yaml_syntax_error_hides_nothing_but_reports_nothing_else(errors):
    # A duplicate key and an unknown field precede the syntax error: not reported.
    [only] = errors("name: x\nname: y\ncolour: red\nnodes: [\n")
    assert only.startswith("5: YAML syntax error: ")


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n", "~\n", "---\n"])
def test_empty_manifest(errors, text):
    assert errors(text) == [f"1: {EMPTY}"]


# The kind of value only: the file may be any file at all (/etc/passwd), and its
# content is never echoed.
@pytest.mark.parametrize("text, message", [
    ("- a\n- b\n", "expected a mapping at the top level, got a list"),
    ("hello\n", "expected a mapping at the top level, got a string"),
    ("42\n", "expected a mapping at the top level, got an integer"),
    ("root:x:0:0:root:/root:/bin/bash\n", "expected a mapping at the top level, got a string"),
])
def test_top_level_must_be_a_mapping(errors, text, message):
    assert errors(text) == [f"1: {message}"]


@pytest.mark.parametrize("text", [
    "name: x\ndescription: 2024-13-45\nnodes: {a: }\n",   # implicit timestamp, month 13
    "name: x\ndescription: !!int abc\nnodes: {a: }\n",    # explicit tag, bad value
])
def test_unconstructible_scalar_is_a_problem_not_a_crash(errors, text):
    [only] = errors(text)
    assert only.startswith("2: ")


# -- merge keys --------------------------------------------------------------

def test_merge_keys_are_resolved(load):
    topology = load("""\
        name: x
        nodes:
          a: &router
            sysctls: {net.ipv4.ip_forward: 1}
          b:
            <<: *router
            description: merged
    """)
    assert topology.node("b").sysctls == (("net.ipv4.ip_forward", "1"),)
    assert topology.node("a").sysctls == topology.node("b").sysctls


def test_merged_fields_carry_the_line_of_their_definition():
    d = doc("""\
        x: &a {p: 1, q: 2}
        y:
          <<: *a
          r: 3
    """)
    assert d.data["y"] == {"p": 1, "q": 2, "r": 3}
    assert d.problems == []
    assert (d.lines[("y", "p")], d.lines[("y", "r")]) == (1, 4)


def test_explicit_keys_override_merged_ones():
    d = doc("""\
        x: &a {p: 1, q: 2}
        y:
          <<: *a
          q: 3
    """)
    assert (d.data["y"], d.problems) == ({"p": 1, "q": 3}, [])


def test_endpoint_template_with_override(load):
    topology = load("""\
        name: x
        nodes: {a: , b: }
        links:
          - endpoints:
              - &end {node: a, interface: e0, mtu: 9000}
              - <<: *end
                node: b
    """)
    assert topology.node("b").interface("e0").mtu == 9000


# -- YAML 1.1 scalars used as names ------------------------------------------

def test_node_names_are_kept_as_written(load):
    topology = load("""\
        name: x
        nodes:
          on:
          no:
          0x10:
          010:
    """)
    assert [n.name for n in topology.nodes] == ["on", "no", "0x10", "010"]


# -- reading files -----------------------------------------------------------

def test_unreadable_file_is_a_manifest_error(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ManifestError) as caught:
        load_topology(missing)
    assert str(caught.value) == f"{missing}:1: cannot read manifest: No such file or directory"


def test_non_utf8_file_is_a_manifest_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: x\nnodes: {a: }\ndescription: caf\xe9\n")
    with pytest.raises(ManifestError, match="cannot read manifest"):
        load_topology(path)


def test_syntax_error_names_the_line_where_the_construct_started():
    [problem] = load_document("a:\n  - {b: 1\n  - c\n", "f.yaml").problems
    assert "line 2" in problem.message


def test_an_alias_to_its_own_ancestor_is_a_problem_not_a_crash(errors):
    assert errors("name: x\nnodes: &a\n  b: *a\n") == ["2: nodes.b: a YAML alias refers to a node that contains it"]


def test_an_alias_bomb_is_stopped(errors):
    lines = ["name: x", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines.append("nodes: {n: {}}")
    [only] = errors("\n".join(lines) + "\n")
    assert "expands to more than 1,000,000 values" in only


def test_a_field_path_cuts_a_long_key_as_messages_cut_values():
    assert format_path(("nodes", "n" * 240, "sysctls")) == f'nodes["{"n" * 64}..."].sysctls'
    assert format_path(("nodes", "n" * 64)) == f"nodes.{'n' * 64}"


@pytest.mark.parametrize("written, value", [("1:30", "1:30"), ("12:34:56:00:00:01", "12:34:56:00:00:01"),
                                            ("-1:30", "-1:30"), ("1:30.5", "1:30.5"), ("010", 10), ("-010", -10),
                                            ("01400", 1400),
                                            ("0", 0), ("10", 10), ("0x10", 16), ("1_000", 1000), ("1.5", 1.5),
                                            ("0b101", 5), ("1_6", 16), ("'010'", "010"), ("on", True)])
def test_numbers_yaml_1_1_reads_otherwise_are_read_as_yaml_1_2_reads_them(written, value):
    """`1:30` (base 60 to YAML 1.1: 90) is text and `010` (octal to YAML 1.1: 8) is
    10, as YAML 1.2 reads them: a port range typed with a colon, or a zero-padded
    number, must not pass the checks as another number. YAML 1.1's other forms
    (digit separators, binary, `on`) stand, as the README says."""
    document = doc(f"x: {written}\n")
    assert document.problems == [] and document.data == {"x": value}
