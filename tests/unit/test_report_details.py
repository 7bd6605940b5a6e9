"""details(): readable differences of a modify action, per chain, rule and set
element for a firewall table, per field for anything else."""

from __future__ import annotations

import json
import textwrap

import pytest

from toolkit.manifest.policy import load_policy_text
from toolkit.kinds.nft_canon import canonical_rule, desired_table_spec, live_table_specs
from toolkit.core.action import MODIFY, Action
from toolkit.core.resource import Resource, changed_fields
from toolkit.report.details import ABSENT, details, element_text

KEY = ("ns_server", "inet", "netkeel_t")
POLICY = """\
tables:
  t:
    sets:
      admins: {type: ipv4_addr, flags: [interval], elements: [192.0.2.1, 10.0.0.0/24]}
      ports: {type: inet_service, flags: [interval], elements: [22, 8000-8100]}
    chains:
      input:
        hook: input
        policy: drop
        rules:
          - {ct_state: [established, related], action: accept}
          - {saddr: "@admins", protocol: tcp, dport: 22, action: accept}
          - {iif: lo, action: accept, comment: loopback}
"""


def desired() -> Resource:
    tables, problems = load_policy_text(textwrap.dedent(POLICY), "p.yaml")
    assert problems == []
    return Resource.make("nft_table", KEY, **desired_table_spec(tables[0]))


def live(**changes) -> Resource:
    """The desired table as the reader would see it, with `changes` to its fields."""
    fields = {k: v for k, v in desired().fields().items() if k != "_shown"}
    fields.update(changes)
    return Resource.make("nft_table", KEY, **fields)


def rules() -> tuple:
    return desired().get("rules input")


def action(live_: Resource, desired_: Resource | None = None) -> Action:
    desired_ = desired_ or desired()
    return Action(MODIFY, desired=desired_, live=live_, changes=changed_fields(desired_, live_))


def test_no_difference_no_details():
    assert details(action(live())) == []


def test_a_policy_change():
    header = json.loads(desired().get("chain input"))
    changed = live(**{"chain input": json.dumps({**header, "policy": "accept"}, sort_keys=True)})
    assert details(action(changed)) == [("chain input policy", "drop", "accept")]


def test_a_priority_change_shows_numbers():
    header = json.loads(desired().get("chain input"))
    changed = live(**{"chain input": json.dumps({**header, "prio": 10}, sort_keys=True)})
    assert details(action(changed)) == [("chain input prio", "0", "10")]


def test_a_rule_added_by_hand_shows_the_live_text():
    extra = canonical_rule([{"drop": None}], None, "inet")
    changed = live(**{"rules input": rules()[:2] + (extra,) + rules()[2:]},
                   _display=((("input", extra), 'tcp dport 23 drop'),))
    assert details(action(changed)) == [("rule not in the manifest, in input (#3)", ABSENT, "tcp dport 23 drop")]


def test_a_rule_without_display_text_shows_as_nft_text_or_else_its_json():
    extra = canonical_rule([{"drop": None}], None, "inet")
    changed = live(**{"rules input": rules() + (extra,)})
    assert details(action(changed)) == [("rule not in the manifest, in input (#4)", ABSENT, "drop")]
    odd = canonical_rule([{"xt": {"type": "match", "name": "conntrack"}}, {"drop": None}], None, "inet")
    changed = live(**{"rules input": rules() + (odd,)})
    assert details(action(changed)) == [("rule not in the manifest, in input (#4)", ABSENT, odd)]


def test_a_missing_rule_shows_the_manifest_text_and_source():
    changed = live(**{"rules input": rules()[1:]})
    assert details(action(changed)) == [
        ("rule missing from input (#1)", "ct state established,related accept  (p.yaml:11)", ABSENT)]


def test_a_changed_rule_is_missing_then_added():
    other = canonical_rule([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}},
                            {"accept": None}], None, "inet")    # the comment was lost
    changed = live(**{"rules input": rules()[:2] + (other,)}, _display=((("input", other), 'iifname "lo" accept'),))
    assert details(action(changed)) == [
        ("rule missing from input (#3)", 'iif lo accept comment "loopback"  (p.yaml:13)', ABSENT),
        ("rule not in the manifest, in input (#3)", ABSENT, 'iifname "lo" accept'),
    ]


def test_a_missing_rule_shows_its_own_source_line():
    policy = POLICY + "      forward:\n        hook: forward\n        rules:\n" \
                      "          - {ct_state: [established, related], action: accept}\n"
    tables, _ = load_policy_text(textwrap.dedent(policy), "p.yaml")
    wanted = Resource.make("nft_table", KEY, **desired_table_spec(tables[0]))
    changed = live(**{"rules input": rules()[1:], "chain forward": wanted.get("chain forward"),
                      "rules forward": wanted.get("rules forward")})
    assert details(action(changed, wanted))[0][1].endswith("(p.yaml:11)")


def set_with(elements: list, name="admins", flags=("interval",), type_="ipv4_addr") -> dict:
    return {f"set {name}": json.dumps({"type": type_, "flags": list(flags), "elements": sorted(elements)},
                                      sort_keys=True)}


def element(value) -> str:
    return json.dumps(value, sort_keys=True)


def test_set_elements_added_and_removed():
    changed = live(**set_with([element({"prefix": {"addr": "10.0.0.0", "len": 24}}),
                               element({"prefix": {"addr": "198.51.100.0", "len": 24}})]))
    assert details(action(changed)) == [
        ("set admins element", "192.0.2.1", ABSENT),
        ("set admins element", ABSENT, "198.51.100.0/24"),
    ]


def test_set_ranges_and_flags():
    changed = live(**set_with([element(22), element({"range": [8000, 8200]})], name="ports", flags=(),
                              type_="inet_service"))
    assert details(action(changed)) == [
        ("set ports flags", "interval", "(none)"),
        ("set ports element", "8000-8100", ABSENT),
        ("set ports element", ABSENT, "8000-8200"),
    ]


def test_a_chain_only_live_has():
    changed = live(**{"chain extra": json.dumps({"type": None, "hook": None, "prio": None, "policy": None}),
                      "rules extra": ()})
    assert details(action(changed)) == [("chain extra", ABSENT, "present"), ("rules extra", ABSENT, "present")]


def test_a_chain_the_kernel_lacks():
    fields = {k: v for k, v in live().fields().items() if not k.endswith(" input")}
    assert details(action(Resource.make("nft_table", KEY, **fields))) == [
        ("chain input", "present", ABSENT), ("rules input", "present", ABSENT)]


@pytest.mark.parametrize("value, text", [
    ("10.0.0.1", "10.0.0.1"),
    ({"prefix": {"addr": "10.0.0.0", "len": 8}}, "10.0.0.0/8"),
    ({"prefix": {"addr": "fd00::", "len": 64}}, "fd00::/64"),
    ({"range": [1000, 2000]}, "1000-2000"),
    ({"range": ["10.0.0.1", "10.0.0.9"]}, "10.0.0.1-10.0.0.9"),
    (22, "22"),
    ("eth0", "eth0"),
])
def test_element_text(value, text):
    assert element_text(json.dumps(value)) == text


def test_details_of_a_table_read_back_from_a_listing():
    """The live side as live_table_specs builds it from `nft -j list ruleset`."""
    where = {"family": "inet", "table": "netkeel_t"}
    listing = [
        {"table": {"family": "inet", "name": "netkeel_t", "handle": 1}},
        {"set": {**where, "name": "admins", "type": "ipv4_addr", "flags": ["interval"],
                 "elem": ["192.0.2.1", {"prefix": {"addr": "10.0.0.0", "len": 24}}]}},
        {"set": {**where, "name": "ports", "type": "inet_service", "flags": ["interval"],
                 "elem": [22, {"range": [8000, 8100]}]}},
        {"chain": {**where, "name": "input", "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
        {"rule": {**where, "chain": "input", "handle": 3, "expr": [
            {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
            {"accept": None}]}},
    ]
    fields = live_table_specs(listing, "netkeel_")[0][KEY[1:]]
    fields.pop("_handles")
    assert details(action(Resource.make("nft_table", KEY, **fields))) == [
        ("rule missing from input (#2)", "saddr @admins protocol tcp dport 22 accept  (p.yaml:12)", ABSENT),
        ("rule missing from input (#3)", 'iif lo accept comment "loopback"  (p.yaml:13)', ABSENT),
    ]


# -- anything else ---------------------------------------------------------------

def test_a_link_modify_lists_each_field():
    wanted = Resource.make("link", ("ns_a", "veth_a"), kind="veth", mtu=1500, state="up", master="br0")
    found = Resource.make("link", ("ns_a", "veth_a"), kind="veth", mtu=9000, state="down", master="")
    assert details(action(found, wanted)) == [
        ("master", "br0", "(none)"), ("mtu", "1500", "9000"), ("state", "up", "down")]


def test_a_sysctl_modify():
    wanted = Resource.make("sysctl", ("ns_a", "net.ipv4.ip_forward"), value="1")
    found = Resource.make("sysctl", ("ns_a", "net.ipv4.ip_forward"), value="0")
    assert details(action(found, wanted)) == [("value", "1", "0")]
