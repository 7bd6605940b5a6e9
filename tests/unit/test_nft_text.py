"""nft text for canonical tables (kinds/nft_text.py): every rule form the
compiler writes renders to the nft statement that means it; anything the
renderer does not know renders to None (the transaction then goes as JSON)."""

from __future__ import annotations

import json
import textwrap

import pytest

from toolkit.kinds.nft_canon import desired_table_spec
from toolkit.kinds.nft_text import (contents, keys_of_listed, listed_key, listed_table, listed_text, rule_text,
                                    sent_rules, table_script)
from toolkit.manifest.policy import load_policy_text


def rendered(rule: str, family: str = "inet", chain: str = "input", hook: str = "input", extra: str = "") -> str:
    """The text of one structured rule, compiled as a policy would compile it."""
    text = textwrap.dedent(f"""\
        tables:
          t:
            family: {family}
            {extra}
            chains:
              other: {{}}
              {chain}:
                hook: {hook}
                {"type: nat" if hook in ("prerouting", "postrouting") else ""}
                rules:
                  - {rule}
        """)
    tables, problems = load_policy_text(text, "p.yaml")
    assert problems == []
    spec = desired_table_spec(tables[0])
    (rule_key,) = spec[f"rules {chain}"]
    return rule_text(rule_key)


@pytest.mark.parametrize("rule, text", [
    ("{iif: lo, action: accept}", 'iifname "lo" accept'),
    ("{oif: [eth0, eth1], action: drop}", 'oifname { "eth0", "eth1" } drop'),
    ("{saddr: 10.0.1.2, action: accept}", "ip saddr 10.0.1.2 accept"),
    ("{saddr: 10.0.1.0/24, daddr: [10.0.2.0/24, 10.0.3.1], action: accept}",
     "ip saddr 10.0.1.0/24 ip daddr { 10.0.3.1, 10.0.2.0/24 } accept"),  # canonical order
    ("{daddr: 2001:db8::/64, action: drop}", "ip6 daddr 2001:db8::/64 drop"),
    ("{protocol: tcp, dport: 22, action: accept}", "tcp dport 22 accept"),
    ("{protocol: udp, sport: '1000-2000', action: accept}", "udp sport 1000-2000 accept"),
    ("{protocol: [tcp, udp], dport: [53, 80], action: accept}",
     "meta l4proto { tcp, udp } th dport { 53, 80 } accept"),
    ("{protocol: icmp, icmp_type: echo-request, action: accept}", "icmp type echo-request accept"),
    ("{protocol: icmpv6, icmpv6_type: [nd-neighbor-solicit, echo-request], action: accept}",
     "icmpv6 type { echo-request, nd-neighbor-solicit } accept"),
    ("{protocol: gre, action: accept}", "meta l4proto gre accept"),
    ("{ct_state: [related, established], action: accept}", "ct state established,related accept"),
    ("{ct_state: new, action: accept}", "ct state new accept"),
    ("{ct_status: dnat, action: accept}", "ct status dnat accept"),
    ("{mark: 7, action: accept}", "meta mark 7 accept"),
    ("{limit: 10/second, action: accept}", "limit rate 10/second burst 5 packets accept"),
    ("{counter: true, action: drop}", "counter drop"),
    ("{log: true, action: drop}", "log drop"),
    ("{log: {prefix: 'dropped: ', level: info}, action: drop}", 'log prefix "dropped: " level info drop'),
    ("{action: {jump: other}}", "jump other"),
    ("{action: {goto: other}}", "goto other"),
    ("{action: return}", "return"),
    ("{action: reject}", "reject with icmpx port-unreachable"),
    ("{protocol: tcp, action: {reject: tcp-reset}}", "meta l4proto tcp reject with tcp reset"),
    ("{action: drop, comment: time server}", 'drop comment "time server"'),
])
def test_each_rule_form_renders_as_nft_writes_it(rule, text):
    assert rendered(rule) == text


def test_nat_statements_name_their_family_in_an_inet_table():
    assert rendered('{protocol: tcp, dport: 8022, action: {dnat: "10.0.1.2:8022"}}', chain="pre",
                    hook="prerouting") == "tcp dport 8022 dnat ip to 10.0.1.2:8022"
    assert rendered('{protocol: tcp, dport: 80, action: {dnat: "[2001:db8::1]:8080"}}', chain="pre",
                    hook="prerouting") == "tcp dport 80 dnat ip6 to [2001:db8::1]:8080"
    assert rendered("{action: masquerade}", chain="post", hook="postrouting") == "masquerade"
    assert rendered('{action: {snat: "10.0.2.1"}}', family="ip", chain="post", hook="postrouting") == \
        "snat to 10.0.2.1"


def test_a_whole_table_renders_sets_then_chains_then_rules():
    spec = desired_table_spec(_table("""\
        tables:
          filter:
            family: inet
            sets:
              clients: {type: ipv4_addr, flags: [interval], elements: [10.0.1.0/24, 10.0.2.0/24]}
              ports: {type: inet_service, elements: [22, 80]}
            chains:
              input:
                hook: input
                policy: drop
                rules:
                  - {saddr: "@clients", protocol: tcp, dport: 22, action: accept}
              helper: {}
        """))
    body = spec["_nft"]
    assert body == contents("inet", "netkeel_filter", sorted(spec.items()))
    assert body.splitlines() == [
        "add set inet netkeel_filter clients { type ipv4_addr; flags interval; "
        "elements = { 10.0.1.0/24, 10.0.2.0/24 }; }",
        "add set inet netkeel_filter ports { type inet_service; elements = { 22, 80 }; }",
        "add chain inet netkeel_filter helper",
        "add chain inet netkeel_filter input { type filter hook input priority 0; policy drop; }",
        "add rule inet netkeel_filter input ip saddr @clients tcp dport 22 accept",
    ]
    script = table_script("modify", "inet", "netkeel_filter", sorted(spec.items()))
    assert script.splitlines()[:3] == ["add table inet netkeel_filter", "delete table inet netkeel_filter",
                                       "add table inet netkeel_filter"]
    assert table_script("delete", "inet", "netkeel_filter", ()) == "delete table inet netkeel_filter\n"


def _table(text):
    tables, problems = load_policy_text(textwrap.dedent(text), "p.yaml")
    assert problems == []
    return tables[0]


def canonical(expr, comment=None) -> str:
    body = {"expr": expr}
    if comment is not None:
        body["comment"] = comment
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("expr, comment", [
    ([{"accept": None}], 'say "hi"'),                 # a quote would end nft's string early
    ([{"accept": None}], "back\\slash"),
    ([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": 'e"th0'}}, {"accept": None}], None),
    ([{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                 "right": "10.0.0.1; flush ruleset"}}], None),  # not an address: never spliced in
    ([{"match": {"op": "<", "left": {"meta": {"key": "mark"}}, "right": 5}}], None),
    ([{"queue": {"num": 1}}], None),
    ([{"counter": {"packets": 3, "bytes": 9}}], None),
    ([{"jump": {"target": "a b"}}], None),
    ([{"xt": {"type": "target", "name": "NFQUEUE"}}], None),
    ([], None),
])
def test_what_it_does_not_know_is_none_so_the_transaction_goes_as_json(expr, comment):
    spec = [("chain input", json.dumps({"type": None, "hook": None, "prio": None, "policy": None})),
            ("rules input", (canonical(expr, comment),))]
    assert contents("inet", "netkeel_t", spec) is None
    assert table_script("create", "inet", "netkeel_t", spec) is None


@pytest.mark.parametrize("family, name, spec", [
    ("netdev", "netkeel_t", ()),
    ("inet", "netkeel_t; flush ruleset", ()),
    ("inet", "netkeel_t", (("map m", "{}"),)),
    ("inet", "netkeel_t", (("set s", json.dumps({"type": ["ipv4_addr", "inet_service"], "flags": [],
                                                  "elements": []})),)),
])
def test_unknown_families_names_objects_and_set_types_are_none(family, name, spec):
    assert table_script("create", family, name, spec) is None


LISTED = """\
table inet netkeel_f { # handle 7
	set clients { # handle 1
		type ifname
		elements = { "a{", "b}",
			     "c" }
	}
	chain helper { # handle 2
	}
	chain input { # handle 3
		type filter hook input priority filter; policy drop;
		tcp dport 22 counter packets 12 bytes 3400 accept # handle 4
		drop # handle 5
	}
}
"""


def test_a_text_listing_reads_as_each_chains_rules_with_their_handles():
    chains, sets = listed_table(LISTED, "inet", "netkeel_f")
    assert sets == ["clients"]  # braces in quoted elements are not the set's
    assert chains == {"helper": [], "input": [("tcp dport 22 counter accept", 4), ("drop", 5)]}  # no values


def test_a_rule_printing_strings_reads_with_them_whole():
    """Strings whole on their line (the caller checks in the kernel's own form
    of the rule that none holds a quote): counter values outside them dropped,
    what reads as a handle inside them left alone."""
    listing = LISTED.replace("drop # handle 5", 'iifname "p0" counter packets 3 bytes 9 drop comment '
                                                '"counter packets 1 bytes 2 # handle 6" # handle 5')
    chains, _ = listed_table(listing, "inet", "netkeel_f")
    assert chains["input"][1] == ('iifname "p0" counter drop comment "counter packets 1 bytes 2 # handle 6"', 5)


@pytest.mark.parametrize("listing", [
    LISTED.replace("netkeel_f", "netkeel_g", 1),                        # another table
    LISTED.replace("\tchain helper { # handle 2\n\t}\n", "\tflowtable ft { # handle 2\n\t}\n"),
    LISTED.replace("drop # handle 5", "drop"),                            # a line that is no rule
    LISTED.replace("drop # handle 5", 'drop comment "x # handle 5'),      # a string broken across lines
    LISTED.replace('"a{", "b}",', '"a{\n}\n\tchain x { # handle 9",'),    # a newline in an element
    LISTED.replace("\t\tdrop #", "\t\ttype filter hook input priority 0;\n\t\tdrop #"),
    LISTED + "table ip other { # handle 8\n}\n",
    LISTED.replace("\t\t\t     \"c\" }\n", ""),                      # a set never closed
    LISTED.replace("chain helper", "chain input"),                         # a chain twice
    "",
])
def test_a_listing_that_is_not_one_table_of_sets_chains_and_rules_is_no_answer(listing):
    assert listed_table(listing, "inet", "netkeel_f") is None


def test_the_rules_a_script_sent_are_read_per_table_and_chain():
    script = ("add table inet netkeel_f\nadd chain inet netkeel_f input\n"
              "add rule inet netkeel_f input tcp dport 22 accept\nadd rule inet netkeel_g input drop\n"
              "add rule inet netkeel_f input drop comment \"a b\"\n")
    assert sent_rules(script, "inet", "netkeel_f") == {"input": ["tcp dport 22 accept", 'drop comment "a b"']}


def test_rules_listed_are_the_desired_ones_they_print_as_and_the_rest_known_by_text():
    texts, keys = ["a", "b", "c"], ["K1", "K2", "K3"]
    assert keys_of_listed(texts, keys, ["a", "x", "b", "c", "b"]) == ["K1", listed_key("x"), "K2", "K3", "K2"]
    assert keys_of_listed(texts, keys, ["a", "c"]) == ["K1", "K3"]          # one missing, nothing unknown
    assert keys_of_listed(texts, keys, ["a", "c", "x"]) is None             # missing, and an unknown one: b?
    assert keys_of_listed(texts, keys, ["a", "y", "c"]) is None             # b printed otherwise, maybe
    assert listed_text(listed_key('drop comment "{x}"')) == 'drop comment "{x}"'
    assert listed_text('{"expr": [{"drop": null}]}') is None and listed_text('{"listed": 1}') is None


def test_counter_values_are_dropped_outside_strings_only():
    from toolkit.kinds.nft_text import without_counter_values

    assert without_counter_values('counter packets 1 bytes 2 log prefix "counter packets 3 bytes 4" drop') == \
        'counter log prefix "counter packets 3 bytes 4" drop'


def test_a_one_element_set_is_sent_with_its_element_twice_and_shown_once():
    from toolkit.kinds.nft_text import as_sent
    one = '{"expr":[{"match":{"left":{"payload":{"field":"dport","protocol":"tcp"}},"op":"==","right":{"set":[22]}}},' \
          '{"accept":null}]}'
    assert json.loads(as_sent(one))["expr"][0]["match"]["right"] == {"set": [22, 22]}
    assert rule_text(as_sent(one)) == "tcp dport { 22, 22 } accept"
    assert rule_text(one) == "tcp dport { 22 } accept"      # reports show what is held
    two = one.replace("[22]", "[22,23]")
    plain = '{"expr":[{"accept":null}]}'
    assert as_sent(two) == two and as_sent(plain) == plain


def test_the_scratch_namespace_reads_rules_not_blocks_from_a_listing():
    from toolkit.kernel.nft_scratch import _printed_rules
    listing = ("table inet t { # handle 1\n\tset s { # handle 2\n\t\ttype ipv4_addr\n\t}\n"
               "\tchain c { # handle 3\n\t\ttcp dport { 22 } counter packets 0 bytes 0 accept # handle 4\n\t}\n}\n")
    assert _printed_rules(listing) == {4: "tcp dport { 22 } counter packets 0 bytes 0 accept"}


def test_a_rule_with_an_anonymous_set_replaced_by_another_replaces_the_table():
    """libnftables 1.0.6 echoes such a rule, added where another with an
    anonymous set is deleted, holding both sets' elements (found by review: the
    apply failed, and so did its restore); adding one alone is a delta."""
    from toolkit.kinds.nft_delta import delta

    def rule(*addresses):
        right = {"set": list(addresses)} if len(addresses) > 1 else addresses[0]
        return json.dumps({"expr": [{"match": {"left": {"payload": {"field": "saddr", "protocol": "ip"}},
                                                "op": "==", "right": right}}, {"drop": None}]},
                          sort_keys=True, separators=(",", ":"))

    header = '{"hook": "input", "policy": "accept", "prio": 0, "type": "filter"}'
    live = {"chain input": header, "rules input": (rule("192.0.2.1", "192.0.2.2"), rule("192.0.2.9")),
            "_handles": (("input", "x", 4), ("input", "y", 5))}
    changed = {"chain input": header, "rules input": (rule("192.0.2.1", "192.0.2.3"), rule("192.0.2.9"))}
    added = {"chain input": header,
             "rules input": (rule("192.0.2.1", "192.0.2.2"), rule("192.0.2.9"), rule("192.0.2.7", "192.0.2.8"))}
    plain = {"chain input": header, "rules input": (rule("192.0.2.1", "192.0.2.2"), rule("192.0.2.10"))}
    assert delta("inet", "netkeel_filter", changed, live) is None
    assert delta("inet", "netkeel_filter", added, live) is not None
    assert delta("inet", "netkeel_filter", plain, live) is not None


def test_a_set_with_a_size_timeouts_a_policy_and_a_comment_renders_them():
    spec = {"type": "ipv4_addr", "flags": ["timeout"], "elements": ['"192.0.2.1"'], "size": 64, "timeout": 3600,
            "gc-interval": 30, "policy": "memory", "comment": "by hand"}
    script = table_script("create", "inet", "netkeel_t", (("set s", json.dumps(spec)),))
    assert ("add set inet netkeel_t s { type ipv4_addr; flags timeout; policy memory; size 64; timeout 3600s; "
            'gc-interval 30s; comment "by hand"; elements = { 192.0.2.1 }; }') in script, script


@pytest.mark.parametrize("option", [{"policy": "fast"}, {"size": "64"}, {"size": True}, {"timeout": 1.5},
                                    {"comment": 'a"; flush ruleset; "'}, {"comment": "two\nlines"}, {"hash": 1}])
def test_a_set_option_that_does_not_render_is_no_script(option):
    spec = {"type": "ipv4_addr", "flags": [], "elements": [], **option}
    assert table_script("create", "inet", "netkeel_t", (("set s", json.dumps(spec)),)) is None


def test_an_element_with_its_own_timeout_and_comment_renders_them_and_is_deleted_by_its_key():
    from toolkit.kinds.nft_delta import delta

    timed = '{"elem": {"comment": "a\\\\b", "timeout": 600, "val": {"prefix": {"addr": "10.0.1.0", "len": 24}}}}'
    spec = {"type": "ipv4_addr", "flags": ["interval", "timeout"], "elements": [timed, '"192.0.2.1"']}
    script = table_script("create", "inet", "netkeel_t", (("set s", json.dumps(spec)),))
    assert 'elements = { 10.0.1.0/24 timeout 600s comment "a\\b", 192.0.2.1 };' in script, script
    plain = {**spec, "flags": ["timeout"], "elements": ['"192.0.2.1"', '"192.0.2.2"']}
    live = {**plain, "elements": ['"192.0.2.1"', '{"elem": {"timeout": 2, "val": "192.0.2.2"}}']}
    found = delta("inet", "netkeel_t", {"set s": json.dumps(plain)}, {"set s": json.dumps(live), "_handles": ()})
    assert found.script == ("delete element inet netkeel_t s { 192.0.2.2 }\n"
                            "add element inet netkeel_t s { 192.0.2.2 }\n"), found.script


@pytest.mark.parametrize("comment, renders", [("a\\b\tc", True), ("zero\u200bwidth", True), ("ünï€", True),
                                              ('a"b', False), ("a\nb", False), ("a\u2028b", False),
                                              ("a\x0bb", False), ("a\x00b", False)])
def test_a_set_comment_renders_unless_it_would_end_the_string_or_the_line(comment, renders):
    spec = {"type": "ipv4_addr", "flags": [], "elements": [], "comment": comment}
    script = table_script("create", "inet", "netkeel_t", (("set s", json.dumps(spec)),))
    assert (script is not None) == renders, script


def test_one_run_inserted_or_removed_is_taken_and_difflib_decides_the_rest():
    """keys_of_listed's shortcut takes a listing that is the desired one with one
    run of rules inserted or removed in one place (difflib may align repeated
    rules otherwise, and give up: slower, never wrong); anything else is
    decided by difflib as before, on random edits of a listing."""
    import difflib
    import random

    from toolkit.kinds import nft_text

    def by_difflib(texts, found):
        ops = {op for op, *_ in difflib.SequenceMatcher(a=texts, b=found, autojunk=False).get_opcodes()}
        return not ("replace" in ops or {"insert", "delete"} <= ops)

    pick = random.Random(13)
    for _ in range(2000):
        texts = [pick.choice("abcde") for _ in range(pick.randrange(0, 9))]
        found = list(texts)
        for _ in range(pick.randrange(0, 3)):
            at = pick.randrange(0, len(found) + 1)
            if found and pick.random() < 0.5:
                del found[at:at + pick.randrange(1, 3)]
            else:
                found[at:at] = [pick.choice("abcxy") for _ in range(pick.randrange(1, 3))]
        one_run = any(found == texts[:at] + run + texts[at + cut:] for at in range(len(texts) + 1)
                      for cut in range(len(texts) - at + 1) for run in ([], found[at:len(found) - len(texts) + at + cut])
                      if cut == 0 or not run)
        keys = [f"k{i}" for i in range(len(texts))]
        decided = nft_text.keys_of_listed(texts, keys, found)
        assert (decided is not None) == (one_run or by_difflib(texts, found)), (texts, found)


def test_opcodes_with_the_common_head_and_tail_set_aside_take_one_sequence_to_the_other():
    import difflib
    import random

    from toolkit.kinds.nft_text import opcodes

    generator = random.Random(11)
    for _ in range(3000):
        a = [generator.randrange(4) for _ in range(generator.randrange(12))]
        b = list(a)
        for _ in range(generator.randrange(4)):
            roll = generator.random()
            if roll < 0.4 and b:
                b[generator.randrange(len(b))] = generator.randrange(6)
            elif roll < 0.7:
                b.insert(generator.randrange(len(b) + 1), generator.randrange(6))
            elif b:
                del b[generator.randrange(len(b))]
        ops = opcodes(a, b)
        made, at, to = [], 0, 0
        for op, i1, i2, j1, j2 in ops:
            assert (i1, j1) == (at, to)  # contiguous, in order
            if op == "equal":
                assert a[i1:i2] == b[j1:j2]
            made += b[j1:j2]
            at, to = i2, j2
        assert (at, to) == (len(a), len(b)) and made == b
        kept = sum(i2 - i1 for op, i1, i2, _, _ in ops if op == "equal")
        plain = sum(i2 - i1 for op, i1, i2, _, _ in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
                    if op == "equal")
        assert kept >= plain  # never fewer rules kept than difflib alone kept
