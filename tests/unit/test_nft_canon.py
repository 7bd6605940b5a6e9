"""Canonical nftables forms, the same for desired tables (policy files) and live
ones (`nft -j list ruleset`): equal rulesets must give equal specs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from toolkit.manifest.policy import load_policy_text
from toolkit.kinds.nft_canon import (canonical_expr, canonical_rule, chain_header, desired_table_spec,
                                         live_table_specs, set_spec, shown_desired)
from toolkit.core.resource import Resource, changed_fields

ROOT = Path(__file__).resolve().parents[2]
SERVER = "policies/two-clients-server.yaml"


def match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol, field):
    return {"payload": {"protocol": protocol, "field": field}}


def table(text: str, file: str = "p.yaml", name: str | None = None):
    tables, problems = load_policy_text(textwrap.dedent(text), file)
    assert problems == []
    return next(t for t in tables if name in (None, t.name))


# -- canonical_expr --------------------------------------------------------------

@pytest.mark.parametrize("counter", [None, {"packets": 12, "bytes": 3400}])
def test_counters_are_zeroed(counter):
    assert canonical_expr({"counter": counter}, "inet") == {"counter": {"packets": 0, "bytes": 0}}


@pytest.mark.parametrize("limit, canonical", [
    ({"rate": 10, "per": "second"}, {"rate": 10, "per": "second", "burst": 5}),
    ({"rate": 10, "per": "second", "burst": 10}, {"rate": 10, "per": "second", "burst": 10}),
    ({"rate": 10, "per": "second", "rate_unit": "packets"}, {"rate": 10, "per": "second", "burst": 5}),
    ({"rate": 1, "per": "second", "rate_unit": "mbytes"}, {"rate": 1, "per": "second", "rate_unit": "mbytes"}),
])
def test_limit_spells_out_the_packet_burst(limit, canonical):
    assert canonical_expr({"limit": limit}, "inet") == {"limit": canonical}


@pytest.mark.parametrize("log, canonical", [
    (None, None),
    ({}, None),
    ({"level": "warn"}, None),
    ({"prefix": "x ", "level": "warn"}, {"prefix": "x "}),
    ({"prefix": "x ", "level": "info"}, {"prefix": "x ", "level": "info"}),
])
def test_log_level_warn_is_the_default(log, canonical):
    assert canonical_expr({"log": log}, "inet") == {"log": canonical}


@pytest.mark.parametrize("family, default", [
    ("inet", {"type": "icmpx", "expr": "port-unreachable"}),
    ("ip", {"type": "icmp", "expr": "port-unreachable"}),
    ("ip6", {"type": "icmpv6", "expr": "port-unreachable"}),
])
def test_a_bare_reject_is_the_familys_default(family, default):
    assert canonical_expr({"reject": None}, family) == {"reject": default}
    assert canonical_expr({"reject": {"type": "tcp reset"}}, family) == {"reject": {"type": "tcp reset"}}


def test_anonymous_sets_are_sorted_at_any_depth():
    expr = [match(payload("tcp", "dport"), {"set": [8080, {"range": [1000, 2000]}, 22]})]
    assert canonical_expr(expr, "inet") == [match(payload("tcp", "dport"), {"set": [22, 8080, {"range": [1000, 2000]}]})]
    assert canonical_expr({"set": ["veth_a", "eth0"]}, "inet") == {"set": ["eth0", "veth_a"]}


@pytest.mark.parametrize("prefix, canonical", [
    ({"addr": "10.0.0.1", "len": 32}, "10.0.0.1"),
    ({"addr": "2001:db8::1", "len": 128}, "2001:db8::1"),
    ({"addr": "10.0.0.0", "len": 24}, {"prefix": {"addr": "10.0.0.0", "len": 24}}),
    ({"addr": "fd00::", "len": 64}, {"prefix": {"addr": "fd00::", "len": 64}}),
])
def test_host_prefixes_are_addresses(prefix, canonical):
    assert canonical_expr(match(payload("ip", "saddr"), {"prefix": prefix}), "inet") == \
        match(payload("ip", "saddr"), canonical)


def test_other_values_pass_through():
    expr = [match({"meta": {"key": "iifname"}}, "lo"), {"jump": {"target": "audit"}}, {"accept": None}]
    assert canonical_expr(expr, "inet") == expr


# -- canonical_rule, chain_header, set_spec ------------------------------------

def test_canonical_rule_is_compact_sorted_json():
    expr = [{"counter": {"packets": 1, "bytes": 2}}, {"accept": None}]
    assert canonical_rule(expr, None, "inet") == '{"expr":[{"counter":{"bytes":0,"packets":0}},{"accept":null}]}'
    assert canonical_rule(expr, "", "inet") == canonical_rule(expr, None, "inet")
    assert canonical_rule(expr, "ssh", "inet") == \
        '{"comment":"ssh","expr":[{"counter":{"bytes":0,"packets":0}},{"accept":null}]}'


def test_chain_header():
    assert chain_header("filter", "input", 0, "drop") == \
        '{"hook": "input", "policy": "drop", "prio": 0, "type": "filter"}'
    assert json.loads(chain_header(None, None, None, None)) == {"type": None, "hook": None, "prio": None,
                                                                "policy": None}


def test_set_spec_is_the_same_from_declared_values_and_from_a_listing():
    desired = set_spec("ipv4_addr", ("interval",), ("192.0.2.1", {"prefix": {"addr": "10.0.0.0", "len": 8}}))
    live = set_spec("ipv4_addr", ["interval"], [{"prefix": {"len": 8, "addr": "10.0.0.0"}}, "192.0.2.1"])
    assert desired == live
    assert json.loads(desired) == {"type": "ipv4_addr", "flags": ["interval"],
                                   "elements": ['"192.0.2.1"', '{"prefix": {"addr": "10.0.0.0", "len": 8}}']}


def test_set_spec_ignores_the_time_left_and_host_prefixes_but_keeps_an_elements_own_timeout_and_comment():
    live = [{"elem": {"val": "10.0.0.1", "expires": 42}}, {"prefix": {"addr": "10.0.0.2", "len": 32}}]
    assert set_spec("ipv4_addr", ["timeout"], live) == set_spec("ipv4_addr", ["timeout"], ["10.0.0.1", "10.0.0.2"])
    timed = [{"elem": {"val": {"prefix": {"addr": "10.0.0.2", "len": 32}}, "timeout": 60, "expires": 42,
                       "comment": "lab"}}]
    assert json.loads(set_spec("ipv4_addr", ["timeout"], timed))["elements"] == [
        '{"elem": {"comment": "lab", "timeout": 60, "val": "10.0.0.2"}}']  # will go: not the declared element


def test_set_spec_without_flags_or_elements():
    assert set_spec("inet_service", None, None) == set_spec("inet_service", (), ()) == \
        '{"elements": [], "flags": [], "type": "inet_service"}'
    assert set_spec("inet_service", None, [22, {"range": [8000, 8100]}]) == \
        set_spec("inet_service", (), [22, {"range": [8000, 8100]}])


def test_a_single_flag_listed_as_a_string():
    assert set_spec("ipv4_addr", "interval", []) == set_spec("ipv4_addr", ("interval",), [])


def test_an_ifname_element_that_looks_like_json():
    assert set_spec("ifname", None, ["123"]) != set_spec("ifname", (), [123])  # a name is not a number


# -- desired_table_spec -------------------------------------------------------------

def server_table(name: str):
    return table((ROOT / SERVER).read_text(), SERVER, name)


def test_desired_spec_of_the_two_clients_filter_table():
    spec = desired_table_spec(server_table("filter"))
    assert sorted(spec) == ["_nft", "_shown", "chain forward", "chain input", "rules forward", "rules input",
                            "set clients"]
    assert json.loads(spec["chain input"]) == {"type": "filter", "hook": "input", "prio": 0, "policy": "drop"}
    assert [json.loads(r).get("comment") for r in spec["rules input"]] == [None, None, None, "time server"]
    assert json.loads(spec["rules forward"][0]) == {"expr": [
        match({"ct": {"key": "state"}}, ["established", "related"], "in"), {"accept": None}]}
    assert json.loads(spec["set clients"]) == {"type": "ipv4_addr", "flags": ["interval"], "elements": [
        '{"prefix": {"addr": "10.0.1.0", "len": 24}}', '{"prefix": {"addr": "10.0.2.0", "len": 24}}']}
    display = shown_desired(spec)
    assert display[("input", spec["rules input"][3])] == \
        f'saddr @clients protocol udp dport 8080 accept comment "time server"  ({SERVER}:29)'
    assert set(display) == {("input", r) for r in spec["rules input"]} | \
        {("forward", r) for r in spec["rules forward"]}


def test_desired_spec_of_the_two_clients_nat_table():
    spec = desired_table_spec(server_table("nat"))
    assert json.loads(spec["chain prerouting"]) == {"type": "nat", "hook": "prerouting", "prio": -100,
                                                    "policy": "accept"}
    assert json.loads(spec["chain postrouting"])["prio"] == 100
    (dnat,) = spec["rules prerouting"]
    assert json.loads(dnat)["expr"][-1] == {"dnat": {"addr": "10.0.1.2", "port": 8022}}
    assert json.loads(dnat)["comment"] == "port forward to client1"


# -- live_table_specs ---------------------------------------------------------------

def item(kind, **body):
    return {kind: body}


LISTING = [
    {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
    item("table", family="inet", name="netkeel_filter", handle=1),
    item("chain", family="inet", table="netkeel_filter", name="input", handle=1,
         type="filter", hook="input", prio=0, policy="drop"),
    item("chain", family="inet", table="netkeel_filter", name="audit", handle=2),
    item("chain", family="inet", table="netkeel_filter", name="empty", handle=3),
    item("rule", family="inet", table="netkeel_filter", chain="input", handle=4,
         expr=[match({"meta": {"key": "iifname"}}, "lo"), {"accept": None}]),
    item("rule", family="inet", table="netkeel_filter", chain="audit", handle=5, expr=[{"return": None}]),
    item("rule", family="inet", table="netkeel_filter", chain="input", handle=6, comment="to audit",
         expr=[{"counter": {"packets": 9, "bytes": 900}}, {"jump": {"target": "audit"}}]),
    item("table", family="ip", name="filter", handle=2),                       # someone else's
    item("chain", family="ip", table="filter", name="input", handle=1, type="filter", hook="input", prio=0,
         policy="accept"),
    item("rule", family="ip", table="filter", chain="input", handle=2, expr=[{"drop": None}]),
    item("table", family="ip6", name="netkeel_nat", handle=3),
]


def test_live_specs_split_owned_and_foreign_tables():
    owned, foreign = live_table_specs(LISTING, "netkeel_")
    assert foreign == [("ip", "filter")]
    assert sorted(owned) == [("inet", "netkeel_filter"), ("ip6", "netkeel_nat")]
    assert owned[("ip6", "netkeel_nat")] == {}


def test_live_rules_are_grouped_per_chain_in_order():
    spec = live_table_specs(LISTING, "netkeel_")[0][("inet", "netkeel_filter")]
    lo = canonical_rule([match({"meta": {"key": "iifname"}}, "lo"), {"accept": None}], None, "inet")
    audit = canonical_rule([{"counter": None}, {"jump": {"target": "audit"}}], "to audit", "inet")
    back = canonical_rule([{"return": None}], None, "inet")
    assert tuple(spec.pop("_handles")) == (("input", lo, 4), ("audit", back, 5), ("input", audit, 6))
    assert spec == {
        "chain input": chain_header("filter", "input", 0, "drop"),
        "chain audit": chain_header(None, None, None, None),
        "chain empty": chain_header(None, None, None, None),
        "rules input": (lo, audit),
        "rules audit": (back,),
        "rules empty": (),
    }


# -- desired == live for the same objects -------------------------------------------

SMALL = """\
tables:
  small:
    sets:
      admins: {type: ipv4_addr, flags: [interval], elements: [192.0.2.1, 10.0.0.0/24]}
      ports: {type: inet_service, elements: [443, 22]}
    chains:
      input:
        hook: input
        policy: drop
        rules:
          - {ct_state: [related, established], action: accept}
          - {saddr: "@admins", protocol: tcp, dport: [80, 22], counter: true, action: accept, comment: admin}
          - {limit: 10/second, log: {prefix: "in ", level: warn}, action: {reject: port-unreachable}}
          - {saddr: 10.0.0.1/32, action: {jump: audit}}
      audit:
        rules:
          - {action: return}
"""


def small_listing():
    """What `nft -j list ruleset` shows once SMALL is applied (handles, counters and all)."""
    where = {"family": "inet", "table": "netkeel_small"}
    return [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        item("table", family="inet", name="netkeel_small", handle=7),
        item("set", **where, name="admins", type="ipv4_addr", handle=1, flags=["interval"],
             elem=[{"prefix": {"addr": "10.0.0.0", "len": 24}}, "192.0.2.1"]),
        item("set", **where, name="ports", type="inet_service", handle=2, elem=[22, 443]),
        item("chain", **where, name="input", handle=3, type="filter", hook="input", prio=0, policy="drop"),
        item("chain", **where, name="audit", handle=4),
        item("rule", **where, chain="input", handle=5,
             expr=[match({"ct": {"key": "state"}}, ["established", "related"], "in"), {"accept": None}]),
        item("rule", **where, chain="input", handle=6, comment="admin",
             expr=[match(payload("ip", "saddr"), "@admins"), match(payload("tcp", "dport"), {"set": [22, 80]}),
                   {"counter": {"packets": 3, "bytes": 180}}, {"accept": None}]),
        item("rule", **where, chain="input", handle=7,
             expr=[{"limit": {"rate": 10, "per": "second"}}, {"log": {"prefix": "in "}}, {"reject": None}]),
        item("rule", **where, chain="input", handle=8,
             expr=[match(payload("ip", "saddr"), "10.0.0.1"), {"jump": {"target": "audit"}}]),
        item("rule", **where, chain="audit", handle=9, expr=[{"return": None}]),
    ]


def test_the_desired_spec_equals_the_live_spec_of_the_same_table():
    desired = desired_table_spec(table(SMALL))
    (live,) = live_table_specs(small_listing(), "netkeel_")[0].values()
    assert {k: v for k, v in desired.items() if k not in ("_shown", "_nft")} == \
        {k: v for k, v in live.items() if k != "_handles"}
    key = ("ns", "inet", "netkeel_small")
    assert changed_fields(Resource.make("nft_table", key, **desired),
                          Resource.make("nft_table", key, **{k: v for k, v in live.items() if k != "_handles"})) == ()


def test_a_changed_live_object_is_a_difference():
    listing = small_listing()
    listing[4]["chain"]["policy"] = "accept"
    listing[9]["rule"]["expr"][0] = match(payload("ip", "saddr"), "10.0.0.2")
    desired = desired_table_spec(table(SMALL))
    live = live_table_specs(listing, "netkeel_")[0][("inet", "netkeel_small")]
    assert [k for k in desired if k[0] != "_" and desired[k] != live[k]] == ["chain input", "rules input"]


# -- what changes without a commit, what is content --------------------------------

@pytest.mark.parametrize("fields, by_itself", [
    ({"set s": set_spec("ipv4_addr", ["timeout"], [])}, True),
    ({"set s": set_spec("ipv4_addr", ["dynamic"], [])}, True),
    ({"set s": set_spec("ipv4_addr", ["interval"], ["10.0.0.1"])}, False),
    ({"rules c": (canonical_rule([{"set": {"op": "update", "elem": {"payload": {"protocol": "ip", "field": "saddr"}},
                                           "set": "@seen"}}], None, "inet"),)}, True),
    ({"rules c": (canonical_rule([{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}},
                                  {"accept": None}], None, "inet"),)}, False),
])
def test_a_table_that_can_change_without_a_commit_is_known(fields, by_itself):
    from toolkit.kinds.nft_canon import changes_by_itself

    assert changes_by_itself(fields) is by_itself


def test_a_quota_object_keeps_its_limit_and_drops_what_it_used():
    listing = [{"table": {"family": "inet", "name": "netkeel_q", "handle": 1}},
               {"quota": {"family": "inet", "table": "netkeel_q", "name": "q1", "handle": 2, "bytes": 104857600,
                          "used": 5000, "inv": True}},
               {"counter": {"family": "inet", "table": "netkeel_q", "name": "c1", "handle": 3, "packets": 9,
                            "bytes": 900}}]
    (fields,) = live_table_specs(listing, "netkeel_")[0].values()
    assert json.loads(fields["quota q1"]) == {"bytes": 104857600, "inv": True}
    assert json.loads(fields["counter c1"]) == {}


def test_a_dormant_table_says_so():
    listing = [{"table": {"family": "inet", "name": "netkeel_d", "handle": 1, "flags": ["dormant"]}}]
    (fields,) = live_table_specs(listing, "netkeel_")[0].values()
    assert json.loads(fields["table flags"]) == ["dormant"]


def test_inline_quota_and_last_drop_what_traffic_moves():
    assert canonical_expr({"quota": {"val": 10, "val_unit": "mbytes", "used": 77, "used_unit": "bytes"}}, "inet") \
        == {"quota": {"val": 10, "val_unit": "mbytes"}}  # nor the unit of its use: there only once it used any
    assert canonical_expr({"last": {"used": 1234}}, "inet") == {"last": {}}


def test_set_spec_keeps_what_a_listed_set_says_of_itself():
    body = {"type": "ipv4_addr", "flags": ["timeout"], "size": 64, "timeout": 3600, "gc-interval": 30,
            "policy": "memory", "comment": "by hand", "handle": 7, "name": "s"}
    spec = json.loads(set_spec("ipv4_addr", ["timeout"], [], False, body))
    assert spec == {"type": "ipv4_addr", "flags": ["timeout"], "elements": [], "size": 64, "timeout": 3600,
                    "gc-interval": 30, "policy": "memory", "comment": "by hand"}  # never the handle or name
    assert set_spec("ipv4_addr", [], [], False, {"name": "s", "handle": 1}) == set_spec("ipv4_addr", (), ())


def test_the_size_the_kernel_gives_a_set_a_rule_fills_is_no_option():
    listed = {"type": "ipv4_addr", "flags": ["timeout"], "size": 65535}
    assert set_spec("ipv4_addr", ["timeout"], [], False, listed) == set_spec("ipv4_addr", ["timeout"], [])
    assert '"size": 64' in set_spec("ipv4_addr", [], [], False, {"size": 64})


def test_an_element_going_within_the_second_is_not_in_the_set():
    """Listed with "timeout": 0 (whole seconds), which sent back would make it permanent."""
    listed = [{"elem": {"val": "10.0.0.1", "timeout": 0, "expires": 0}}, "10.0.0.2"]
    assert set_spec("ipv4_addr", ["timeout"], listed) == set_spec("ipv4_addr", ["timeout"], ["10.0.0.2"])


def test_a_declared_set_made_element_by_element_is_the_set_made_whole():
    """declared_set_spec assembles a set from each element's remembered canonical
    form (and set_text from each one's text): the same spec and text as making
    the whole set from its decoded values, for every kind of element."""
    import random

    from toolkit.kinds import nft_canon, nft_text
    from toolkit.kinds.nft_canon import declared_set_spec, set_spec

    kinds = [lambda r: json.dumps(f"10.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(256)}"),
             lambda r: json.dumps({"prefix": {"addr": f"10.{r.randrange(256)}.0.0", "len": 16}}),
             lambda r: json.dumps({"range": [f"10.0.0.{r.randrange(100)}", f"10.0.1.{r.randrange(100)}"]}),
             lambda r: json.dumps({"elem": {"val": f"192.0.2.{r.randrange(256)}", "timeout": r.choice([0, 30]),
                                            "comment": "c"}}),
             lambda r: json.dumps(f"192.0.2.{r.randrange(256)}", indent=1)]
    rng = random.Random(3)
    for _ in range(300):
        elements = tuple({rng.choice(kinds)(rng) for _ in range(rng.randrange(12))})
        flags = rng.choice([(), ("interval",), ("timeout",), ("interval", "timeout")])
        nft_canon.canonical_element.forget()
        nft_text.element_text_of.forget()
        whole = set_spec("ipv4_addr", list(flags), [json.loads(e) for e in elements])
        assert declared_set_spec("ipv4_addr", flags, elements) == whole
        declared_set_spec.forget()
        assert declared_set_spec("ipv4_addr", flags, elements) == whole  # from the remembered elements
        try:
            listed = [nft_text.element_text(json.loads(e), False) for e in json.loads(whole)["elements"]]
        except nft_text.Unrenderable:
            continue
        nft_text.set_text.forget()
        text = nft_text.set_text(whole)
        assert (f"elements = {{ {', '.join(listed)} }};" in text) == bool(listed)


def test_the_elements_a_set_the_packet_path_fills_holds_beyond_the_declared_ones_are_no_difference():
    """`update @ports { tcp dport }`: the live set holds what traffic put there too; a
    drift check found each, and each apply deleted them (found by review). Every
    declared element, its type and flags are still compared, and another set's
    elements as before."""
    from toolkit.kinds.nft_table import KIND as TABLE

    dynset = {"set": {"op": "update", "elem": {"payload": {"protocol": "tcp", "field": "dport"}}, "set": "@ports"}}
    key = ("ns", "inet", "netkeel_small")
    desired_fields = desired_table_spec(table(SMALL))
    desired_fields["rules audit"] = (canonical_rule([dynset], None, "inet"), *desired_fields["rules audit"])

    def changed(edit) -> list:
        listing = small_listing()
        listing.insert(9, item("rule", family="inet", table="netkeel_small", chain="audit", handle=10, expr=[dynset]))
        edit(listing)
        (live,) = live_table_specs(listing, "netkeel_")[0].values()
        desired = Resource.make("nft_table", key, **{k: v for k, v in desired_fields.items() if k[0] != "_"})
        return [c[0] for c in TABLE.changes(desired, Resource.make("nft_table", key, **{
            k: v for k, v in live.items() if k != "_handles"}))]

    assert changed(lambda listing: None) == []
    assert changed(lambda listing: listing[3]["set"].update(elem=[22, 443, 8080])) == []  # the traffic's 8080
    assert changed(lambda listing: listing[3]["set"].update(elem=[22, 8080])) == ["set ports"]  # 443 is declared
    assert changed(lambda listing: listing[3]["set"].update(type="ipv4_addr")) == ["set ports"]
    assert changed(lambda listing: listing[2]["set"]["elem"].append("192.0.2.9")) == ["set admins"]  # not filled
