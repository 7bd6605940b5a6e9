"""Policy files: load_policy_text (chains, sets, rules, problems), native rule
resolution with a fake resolver, and policy files named by a topology."""

from __future__ import annotations

import hashlib
import json
import textwrap

import pytest

from toolkit.errors import ManifestError, Problem
from toolkit.manifest import load_topology
from toolkit.manifest.nft_rules import RuleContext, compile_rule
from toolkit.manifest.policy import load_policy_text, resolve_native_rules
from toolkit.model.firewall import Chain, NamedSet, Rule
from toolkit.model.topology import Interface, Node, Topology

FILE = "p.yaml"


def load(text: str) -> tuple:
    return load_policy_text(textwrap.dedent(text), FILE)


def tables(text: str) -> dict:
    """{name: Table} of a valid policy."""
    found, problems = load(text)
    assert problems == []
    return {t.name: t for t in found}


def chains(text: str) -> dict:
    """{name: Chain} of the only table of a valid policy."""
    (table,) = tables(text).values()
    return {c.name: c for c in table.chains}


def problems(text: str) -> list[str]:
    """The problems of an invalid policy as sorted "LINE: path: message" strings."""
    found = load(text)[1]
    assert found, "expected problems"
    return [str(p).removeprefix(f"{FILE}:") for p in sorted(found)]


def chain_policy(body: str) -> str:
    return "tables:\n  t:\n    chains:\n" + textwrap.indent(textwrap.dedent(body), "      ")


# -- tables and chains ---------------------------------------------------------

def test_a_base_chain_gets_filter_priority_0_and_policy_accept():
    assert chains(chain_policy("input: {hook: input}"))["input"] == Chain(
        name="input", type="filter", hook="input", priority=0, policy="accept")


@pytest.mark.parametrize("priority, number", [
    ("raw", -300), ("mangle", -150), ("dstnat", -100), ("filter", 0), ("security", 50), ("srcnat", 100),
    (110, 110), (-5, -5),
])
def test_priority_names_become_numbers(priority, number):
    assert chains(chain_policy(f"c: {{hook: forward, priority: {priority}}}"))["c"].priority == number


@pytest.mark.parametrize("hook, priority", [
    ("prerouting", -100), ("output", -100), ("postrouting", 100), ("input", 100)])
def test_nat_chains_default_to_dstnat_or_srcnat_by_hook(hook, priority):
    chain = chains(chain_policy(f"c: {{type: nat, hook: {hook}}}"))["c"]
    assert (chain.type, chain.priority, chain.policy) == ("nat", priority, "accept")


def test_a_route_chain_on_output_defaults_to_mangle():
    assert chains(chain_policy("c: {type: route, hook: output, policy: drop}"))["c"] == Chain(
        name="c", type="route", hook="output", priority=-150, policy="drop")


def test_regular_chains_have_no_header():
    found = chains(chain_policy("""\
        empty:
        audit:
          description: logged then back
          rules: [{action: return}]
    """))
    assert found["empty"] == Chain(name="empty")
    assert (found["audit"].type, found["audit"].hook, found["audit"].priority, found["audit"].policy) == (None,) * 4
    assert len(found["audit"].rules) == 1


def test_header_fields_without_a_hook():
    assert problems(chain_policy("""\
        c:
          type: filter
          priority: 10
          policy: drop
    """)) == [
        "5: tables.t.chains.c.type: `type` needs a `hook`: only base chains have one",
        "6: tables.t.chains.c.priority: `priority` needs a `hook`: only base chains have one",
        "7: tables.t.chains.c.policy: `policy` needs a `hook`: only base chains have one",
    ]


def test_chain_types_on_the_wrong_hook():
    assert problems(chain_policy("""\
        n: {type: nat, hook: forward}
        r: {type: route, hook: input}
    """)) == [
        "4: tables.t.chains.n.hook: a nat chain cannot hook forward (hooks: prerouting, input, output, postrouting)",
        "5: tables.t.chains.r.hook: a route chain hooks output only",
    ]


def test_table_family_source_and_kernel_name():
    found = tables("""\
        tables:
          filter: {}
          nat:
            family: ip
    """)
    assert (found["filter"].family, found["filter"].source, found["filter"].kernel_name) == (
        "inet", "p.yaml:2", "netkeel_filter")
    assert (found["nat"].family, found["nat"].source) == ("ip", "p.yaml:3")


def test_a_priority_of_the_wrong_type_is_a_problem_not_a_crash():
    assert problems(chain_policy("c: {hook: input, priority: [1]}"))


# -- sets ------------------------------------------------------------------------

def named_set(body: str) -> NamedSet:
    (table,) = tables("tables:\n  t:\n    sets:\n      s: " + body).values()
    return table.sets[0]


@pytest.mark.parametrize("body, elements", [
    ("{type: ipv4_addr, elements: [10.0.0.2, 10.0.0.1/32, 10.0.0.1]}", ['"10.0.0.1"', '"10.0.0.2"']),
    ("{type: ipv4_addr, flags: [interval], elements: [10.0.0.0/8, 192.0.2.1]}",
     ['"192.0.2.1"', '{"prefix": {"addr": "10.0.0.0", "len": 8}}']),
    ("{type: ipv6_addr, elements: ['2001:db8::1', '2001:DB8::2/128']}", ['"2001:db8::1"', '"2001:db8::2"']),
    ("{type: inet_service, flags: [interval], elements: [80, '22', 8000-8100, 80]}",
     ["22", "80", '{"range": [8000, 8100]}']),
    ("{type: ifname, elements: [veth_a, eth0]}", ['"eth0"', '"veth_a"']),
    ("{type: mark, elements: [2, 1]}", ["1", "2"]),
    ("{type: ether_addr, elements: ['02:AA:00:00:00:01']}", ['"02:aa:00:00:00:01"']),
    ("{type: ipv4_addr}", []),
])
def test_set_elements_are_sorted_unique_json_text(body, elements):
    assert named_set(body).elements == tuple(elements)
    assert all(json.loads(e) is not None for e in elements)


def test_set_flags_are_sorted():
    assert named_set("{type: ipv4_addr, flags: [timeout, interval]}") == NamedSet(
        name="s", type="ipv4_addr", flags=("interval", "timeout"))


def test_set_element_problems():
    assert problems("""\
        tables:
          t:
            sets:
              a: {type: ipv4_addr, elements: [10.0.0.0/8, fd00::1, x]}
              b:
                type: inet_service
                elements:
                  - 8000-8100
                  - 70000
                  - http
              c: {type: ipv6_addr, elements: [10.0.0.1]}
              d: {type: mark, elements: [one]}
              e: {type: ether_addr, elements: ["02:00:00:00:01"]}
              f: {type: ifname, elements: ["eth*"]}
              g: {type: ifname, flags: [interval], elements: ["eth*"]}
    """) == [
        "4: tables.t.sets.a.elements[0]: prefix 10.0.0.0/8 needs the set to have flags: [interval]",
        "4: tables.t.sets.a.elements[1]: fd00::1 is IPv6, the set holds ipv4_addr",
        "4: tables.t.sets.a.elements[2]: invalid element 'x' for a set of ipv4_addr",
        "8: tables.t.sets.b.elements[0]: range 8000-8100 needs the set to have flags: [interval]",
        "9: tables.t.sets.b.elements[1]: port 70000 is out of range 0-65535",
        "10: tables.t.sets.b.elements[2]: invalid port 'http': a number or a range like 1000-2000",
        "11: tables.t.sets.c.elements[0]: 10.0.0.1 is IPv4, the set holds ipv6_addr",
        "12: tables.t.sets.d.elements[0]: invalid mark 'one': a number from 0 to 4294967295",
        "13: tables.t.sets.e.elements[0]: invalid MAC address '02:00:00:00:01': six hex pairs like 02:00:00:00:00:01",
        "14: tables.t.sets.f.elements[0]: wildcard 'eth*' needs the set to have flags: [interval]",
    ]


def set_problems(body: str) -> list[str]:
    return load("tables:\n  t:\n    sets:\n      s: " + body)[1]


def test_a_set_element_with_host_bits_says_so():
    assert "host bits" in set_problems("{type: ipv4_addr, flags: [interval], elements: [10.0.0.1/8]}")[0].message


def test_elements_as_a_string_give_one_problem():
    assert len(set_problems("{type: ipv4_addr, elements: 10.0.0.1}")) == 1


def test_a_mac_element_must_be_hex():
    assert set_problems("{type: ether_addr, elements: ['zz:zz:zz:zz:zz:zz']}")


def test_a_mac_element_is_canonical():
    assert named_set("{type: ether_addr, elements: ['2:0:0:0:0:1']}").elements == ('"02:00:00:00:00:01"',)


def test_a_mark_element_must_fit_32_bits():
    assert len(set_problems("{type: mark, elements: [-1, 4294967296]}")) == 2


def test_overlapping_interval_elements_are_a_problem():
    assert set_problems("{type: ipv4_addr, flags: [interval], elements: [10.0.0.0/8, 10.1.0.0/16]}")


# -- rules -----------------------------------------------------------------------

RULES = chain_policy("""\
    input:
      hook: input
      rules:
        - {saddr: 10.0.1.0/24, protocol: udp, dport: 8080, action: accept, comment: time server}
        - nft: "  tcp dport 22 accept  "
          comment: ssh
    audit:
      rules: [{action: return}]
""")


def test_a_structured_rule_carries_its_json_text_and_where_it_was_written():
    rule = chains(RULES)["input"].rules[0]
    ctx = RuleContext("inet", "filter", "input", {}, {"audit"})
    expected = compile_rule({"saddr": "10.0.1.0/24", "protocol": "udp", "dport": 8080, "action": "accept"}, ctx)
    assert rule == Rule(expr=json.dumps(expected), native=None, comment="time server", source="p.yaml:7",
                        text='saddr 10.0.1.0/24 protocol udp dport 8080 accept comment "time server"',
                        path="tables.t.chains.input.rules[0]")


def test_a_native_rule_waits_for_libnftables():
    assert chains(RULES)["input"].rules[1] == Rule(
        expr=None, native="tcp dport 22 accept", comment="ssh", source="p.yaml:8",
        text="tcp dport 22 accept", path="tables.t.chains.input.rules[1]")


def test_native_rule_problems():
    assert problems(chain_policy("""\
        c:
          rules:
            - {nft: "tcp dport 22 accept", counter: true, action: accept}
            - {nft: "accept; drop"}
            - {nft: "   "}
            - nft: |
                accept
    """)) == [
        "6: tables.t.chains.c.rules[0].action: a native rule (`nft`) stands alone; only `comment` may go with it",
        "7: tables.t.chains.c.rules[1].nft: a native rule is one rule's statements: not empty, no ';' or newlines",
        "8: tables.t.chains.c.rules[2].nft: a native rule is one rule's statements: not empty, no ';' or newlines",
        "9: tables.t.chains.c.rules[3].nft: a native rule is one rule's statements: not empty, no ';' or newlines",
    ]


def test_rule_errors_point_at_the_field():
    assert problems(chain_policy("""\
        c:
          rules:
            - {comment: nothing}
            - {dport: 22, action: accept}
            - saddr: 10.0.0.1/8
              action: drop
            - {action: {jump: nowhere}}
    """)) == [
        "6: tables.t.chains.c.rules[0]: the rule is empty: give matches and an action, or `nft`",
        "7: tables.t.chains.c.rules[1].dport: a port needs a protocol: tcp, udp, sctp, dccp, udplite",
        "8: tables.t.chains.c.rules[2].saddr: prefix 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)",
        "10: tables.t.chains.c.rules[3].action: jump to unknown chain 'nowhere' (regular chains of this table: none)",
    ]


def test_rules_see_their_tables_sets_family_and_chain():
    found = problems("""\
        tables:
          t:
            family: ip
            sets:
              ports: {type: inet_service}
            chains:
              post:
                type: nat
                hook: postrouting
                rules:
                  - {saddr: "@ports", action: masquerade}
                  - {saddr: "fd00::1", action: masquerade}
                  - {action: {dnat: 10.0.0.1}}
    """)
    assert found == [
        "11: tables.t.chains.post.rules[0].saddr: set '@ports' holds inet_service, not addresses",
        "12: tables.t.chains.post.rules[1].saddr: IPv6 addresses cannot match in a table of family ip",
        "13: tables.t.chains.post.rules[2].action: dnat belongs in a prerouting or output chain, not postrouting",
    ]


def test_a_chain_cannot_jump_to_itself():
    (found,) = problems(chain_policy("c: {rules: [{action: {jump: c}}]}"))
    assert found == "4: tables.t.chains.c.rules[0].action: a chain cannot jump to itself"


def test_jump_to_a_base_chain_is_a_problem():
    assert problems(chain_policy("""\
        input: {hook: input, rules: [{action: {jump: forward}}]}
        forward: {hook: forward}
    """))


def test_every_problem_is_reported_at_once():
    found = problems("""\
        tables:
          t:
            colour: blue
            sets:
              s: {type: ipv4_addr, elements: [10.0.0.0/8]}
            chains:
              c:
                priority: 5
                rules:
                  - {dport: 22, action: accept}
                  - {nft: "accept; accept"}
          bad-name: {}
    """)
    assert found == [
        "3: tables.t.colour: unknown field 'colour'; expected one of: chains, description, family, sets",
        "5: tables.t.sets.s.elements[0]: prefix 10.0.0.0/8 needs the set to have flags: [interval]",
        "8: tables.t.chains.c.priority: `priority` needs a `hook`: only base chains have one",
        "10: tables.t.chains.c.rules[0].dport: a port needs a protocol: tcp, udp, sctp, dccp, udplite",
        "11: tables.t.chains.c.rules[1].nft: a native rule is one rule's statements: not empty, no ';' or newlines",
        "12: tables.bad-name: invalid name 'bad-name': use letters, digits and '_', starting with a letter, "
        "at most 32 characters",
    ]


@pytest.mark.parametrize("text, message", [
    ("", "1: the policy file is empty; it needs `tables`"),
    ("# nothing\n", "1: the policy file is empty; it needs `tables`"),
    ("description: x\n", "1: missing required field 'tables'"),
])
def test_empty_policies(text, message):
    assert problems(text) == [message]


def test_a_policy_without_tables():
    (found,) = problems("tables: {}\n")
    assert found.startswith("1: tables: ")  # jsonschema's own wording: "{} should be non-empty"


def test_a_yaml_syntax_error_is_the_only_problem():
    (found,) = problems("tables:\n  t: [\n")
    assert "YAML syntax error" in found


# -- native rules, resolved by a fake libnftables ------------------------------

NATIVES = chain_policy("""\
    input:
      hook: input
      policy: drop
      rules:
        - {iif: lo, action: accept}
        - {nft: "tcp dport 22 accept"}
        - {nft: "tcp dport 80 frobnicate", comment: web}
    audit:
""")
EXPR = [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
        {"accept": None}]


def topology_of(text: str, nodes=("a",)) -> Topology:
    found, problems_ = load(text)
    assert problems_ == []
    return Topology(name="t", source="t.yaml", nodes=tuple(Node(n, tables=tuple(found)) for n in nodes))


class FakeResolver:
    """Answers like kernel/nft_scratch.resolve: {"expr", "comment"} or {"error"} per rule id."""

    def __init__(self, answer=None):
        self.answer = answer or (lambda text: {"error": "syntax error, unexpected string"} if "frob" in text
                                 else {"expr": EXPR, "comment": None})
        self.jobs = []

    def __call__(self, jobs):
        self.jobs.append(jobs)
        return {rid: self.answer(text) for job in jobs for rid, _, text in job["rules"]}


def native_rules(topology) -> list:
    return [r for n in topology.nodes for t in n.tables for c in t.chains for r in c.rules if r.native]


def test_a_resolved_native_rule_gets_its_json():
    topology, found = resolve_native_rules(topology_of(NATIVES), FakeResolver(lambda _: {"expr": EXPR}))
    assert found == []
    assert [r.expr for r in native_rules(topology)] == [json.dumps(EXPR)] * 2
    assert topology.nodes[0].tables[0].chains[0].rules[0].expr == '[{"match": {"op": "==", "left": ' \
        '{"meta": {"key": "iifname"}}, "right": "lo"}}, {"accept": null}]'  # structured rules stay


def test_the_resolver_gets_one_job_per_table_with_its_skeleton():
    resolver = FakeResolver()
    resolve_native_rules(topology_of(NATIVES), resolver)
    ((job,),) = resolver.jobs
    assert {k: v for k, v in job.items() if k != "rules"} == {
        "family": "inet", "table": "netkeel_t", "sets": [], "devices": [],
        "chains": {"input": {"type": "filter", "hook": "input", "prio": 0, "policy": "drop"}, "audit": {}}}
    assert [(chain, text) for _, chain, text in job["rules"]] == [
        ("input", "tcp dport 22 accept"), ("input", "tcp dport 80 frobnicate")]
    assert len({rid for rid, _, _ in job["rules"]}) == 2


def two_nodes_sharing(found):
    return Topology(name="t", source="t.yaml", nodes=(
        Node("a", interfaces=(Interface("lo", "loopback"), Interface("eth1", "veth")), tables=tuple(found)),
        Node("b", interfaces=(Interface("eth0", "veth"),), tables=tuple(found))))


def test_each_node_using_the_table_is_checked_with_its_own_interfaces():
    # A rule naming eth0 must not pass on node a because node b has an eth0 (issue 8, item 19).
    found, _ = load(NATIVES)
    resolver = FakeResolver()
    resolve_native_rules(two_nodes_sharing(found), resolver)
    assert [job["devices"] for job in resolver.jobs[0]] == [["eth1"], ["eth0"]]


def test_a_rule_refused_on_one_node_only_names_it():
    found, _ = load(chain_policy('c: {rules: [{nft: "iifname \\"eth0\\" accept"}]}'))
    answers = iter([{"error": "Interface does not exist"}, {"expr": EXPR}])
    topology, problems = resolve_native_rules(two_nodes_sharing(found), FakeResolver(lambda _: next(answers)))
    assert [p.message for p in problems] == ['libnftables refused `iifname "eth0" accept` on node a: '
                                             "Interface does not exist"]
    assert [r.expr for r in native_rules(topology)] == [None, json.dumps(EXPR)]


def test_sets_go_to_the_resolver_with_flags_only_when_they_have_some():
    topology = topology_of("""\
        tables:
          t:
            sets:
              a: {type: ipv4_addr, flags: [interval], elements: [10.0.0.0/8]}
              b: {type: inet_service}
            chains:
              c: {rules: [{nft: "ip saddr @a accept"}]}
    """)
    resolver = FakeResolver()
    resolve_native_rules(topology, resolver)
    assert resolver.jobs[0][0]["sets"] == [{"name": "a", "type": "ipv4_addr", "flags": ["interval"]},
                                           {"name": "b", "type": "inet_service"}]


def test_a_refused_native_rule_is_a_problem_at_its_line():
    topology, found = resolve_native_rules(topology_of(NATIVES), FakeResolver())
    assert found == [Problem("p.yaml", 10, "tables.t.chains.input.rules[2].nft",
                             "libnftables refused `tcp dport 80 frobnicate`: syntax error, unexpected string")]
    assert [r.expr for r in native_rules(topology)] == [json.dumps(EXPR), None]


def test_without_native_rules_the_resolver_is_never_called():
    def resolver(jobs):
        raise AssertionError("called")
    topology = topology_of(chain_policy("c: {rules: [{action: accept}]}"))
    assert resolve_native_rules(topology, resolver) == (topology, [])


def test_a_table_shared_by_two_nodes_is_resolved_once():
    resolver = FakeResolver(lambda _: {"expr": EXPR})
    topology, found = resolve_native_rules(topology_of(NATIVES, nodes=("a", "b")), resolver)
    assert len(resolver.jobs) == 1 and len(resolver.jobs[0]) == 1
    assert [r.expr for r in native_rules(topology)] == [json.dumps(EXPR)] * 4


def test_rules_the_resolver_did_not_answer_stay_unresolved_without_problems():
    topology, found = resolve_native_rules(topology_of(NATIVES), lambda jobs: {})
    assert found == []
    assert [r.expr for r in native_rules(topology)] == [None, None]


def test_a_comment_inside_native_text_is_kept():
    topology = topology_of(chain_policy('c: {rules: [{nft: "accept comment \\"hi\\""}]}'))
    topology, _ = resolve_native_rules(topology, FakeResolver(lambda _: {"expr": [{"accept": None}],
                                                                         "comment": "hi"}))
    assert native_rules(topology)[0].comment == "hi"


# -- policy files named by a topology ------------------------------------------

POLICY = "tables:\n  filter:\n    chains:\n      input: {hook: input, rules: [{nft: \"tcp dport 22 accept\"}]}\n"
TOPOLOGY = """\
name: t
nodes:
  a:
    policies: [../policies/p.yaml]
  b:
    policies: [../policies/p.yaml]
"""


class Files:
    """A `read` for load_topology over a dict of path -> text, counting reads.
    Its files all sit under the working directory, the root policy paths must stay in."""

    root = "."

    def __init__(self, files: dict):
        self.files = files
        self.reads = []

    def __call__(self, path):
        self.reads.append(path)
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path].encode()


def test_policies_are_relative_to_the_topology_and_loaded_once():
    read = Files({"lab/t.yaml": TOPOLOGY, "policies/p.yaml": POLICY})
    topology = load_topology("lab/t.yaml", read=read)
    assert read.reads == ["lab/t.yaml", "policies/p.yaml"]
    a, b = topology.nodes
    assert a.tables == b.tables and a.tables[0].source == "policies/p.yaml:2"
    assert a.tables[0].chains[0].rules[0].expr is None  # no resolver: native rules stay unresolved
    assert topology.files == (("lab/t.yaml", hashlib.sha256(TOPOLOGY.encode()).hexdigest()),
                              ("policies/p.yaml", hashlib.sha256(POLICY.encode()).hexdigest()))


def test_load_topology_resolves_native_rules_with_natives():
    resolver = FakeResolver(lambda _: {"expr": EXPR})
    topology = load_topology("lab/t.yaml", read=Files({"lab/t.yaml": TOPOLOGY, "policies/p.yaml": POLICY}),
                             natives=resolver)
    assert len(resolver.jobs) == 1
    assert {r.expr for r in native_rules(topology)} == {json.dumps(EXPR)}


def load_errors(files: dict, natives=None) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_topology("lab/t.yaml", read=Files(files), natives=natives)
    return [str(p) for p in caught.value.problems]


def test_a_refused_native_rule_fails_load_topology():
    policy = POLICY.replace("22 accept", "22 frobnicate")
    assert load_errors({"lab/t.yaml": TOPOLOGY, "policies/p.yaml": policy}, natives=FakeResolver()) == [
        "policies/p.yaml:4: tables.filter.chains.input.rules[0].nft: "
        "libnftables refused `tcp dport 22 frobnicate`: syntax error, unexpected string"]


def test_a_missing_policy_file():
    assert load_errors({"lab/t.yaml": TOPOLOGY}) == [
        "lab/t.yaml:4: nodes.a.policies[0]: cannot read policy file policies/p.yaml: No such file or directory"]  # once


def test_policy_problems_name_the_policy_file_once():
    policy = "tables:\n  filter:\n    chains:\n      input: {rules: [{dport: 22}]}\n"
    assert load_errors({"lab/t.yaml": TOPOLOGY, "policies/p.yaml": policy}) == [
        "policies/p.yaml:4: tables.filter.chains.input.rules[0].dport: "
        "a port needs a protocol: tcp, udp, sctp, dccp, udplite"]


def test_two_policy_files_with_the_same_table_on_one_node():
    topology = "name: t\nnodes:\n  a:\n    policies: [../policies/p.yaml, ../policies/q.yaml]\n"
    assert load_errors({"lab/t.yaml": topology, "policies/p.yaml": POLICY,
                        "policies/q.yaml": "tables:\n  filter: {family: inet}\n"}) == [
        "lab/t.yaml:4: nodes.a.policies[1]: table inet filter of policies/q.yaml is also in policies/p.yaml"]


def test_the_same_table_name_in_two_families_is_fine():
    topology = "name: t\nnodes:\n  a:\n    policies: [../policies/p.yaml, ../policies/q.yaml]\n"
    loaded = load_topology("lab/t.yaml", read=Files({"lab/t.yaml": topology, "policies/p.yaml": POLICY,
                                                     "policies/q.yaml": "tables:\n  filter: {family: ip}\n"}))
    assert [(t.family, t.name) for t in loaded.nodes[0].tables] == [("inet", "filter"), ("ip", "filter")]


def test_a_table_named_like_a_faults_is_refused():
    """A policy table `chaos_x` would be netkeel_chaos_x in the kernel, which the
    reader takes for a fault's overlay: every apply would fail its verification."""
    assert problems("tables:\n  chaos_x:\n    chains: {input: {hook: input}}\n") == [
        "2: tables.chaos_x: table names starting with 'chaos_' are netkeel's faults' (in the kernel "
        "netkeel_chaos_x): choose another name"]
    assert "chaosx" in tables("tables:\n  chaosx:\n    chains: {input: {hook: input}}\n")
