"""compile_rule: structured firewall rules -> nftables JSON, and the errors it gives.

The expected JSON is what libnftables lists back from the kernel (see
tests/integration/data/everything-policy.yaml, which proves it on a real kernel).
"""

from __future__ import annotations

import pytest

from toolkit.manifest.nft_rules import RuleContext, RuleError, compile_rule, describe

SETS = {"v4": "ipv4_addr", "v6": "ipv6_addr", "ports": "inet_service", "names": "ifname"}
ACCEPT = {"accept": None}


def ctx(family="inet", type_="filter", hook="input", sets=None, chains=("audit",)):
    return RuleContext(family, type_, hook, dict(SETS if sets is None else sets), set(chains))


def compile_(rule, **context):
    return compile_rule(rule, ctx(**context))


def error(rule, **context) -> tuple:
    """(field, message) of the RuleError the rule raises."""
    with pytest.raises(RuleError) as caught:
        compile_(rule, **context)
    return caught.value.field, str(caught.value)


def match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def meta(key):
    return {"meta": {"key": key}}


def payload(protocol, field):
    return {"payload": {"protocol": protocol, "field": field}}


def prefix(addr, length):
    return {"prefix": {"addr": addr, "len": length}}


# -- interfaces ----------------------------------------------------------------

def test_one_interface_is_a_plain_name():
    assert compile_({"iif": "lo", "action": "accept"}) == [match(meta("iifname"), "lo"), ACCEPT]


def test_several_interfaces_are_an_anonymous_set():
    assert compile_({"oif": ["eth0", "veth_a"]}) == [match(meta("oifname"), {"set": ["eth0", "veth_a"]})]


def test_iif_comes_before_oif():
    assert compile_({"oif": "b", "iif": "a"}) == [match(meta("iifname"), "a"), match(meta("oifname"), "b")]


def test_a_one_item_list_is_a_plain_name():
    assert compile_({"iif": ["lo"]}) == [match(meta("iifname"), "lo")]


# -- addresses -----------------------------------------------------------------

@pytest.mark.parametrize("value, protocol, right", [
    ("10.0.0.1", "ip", "10.0.0.1"),
    ("10.0.0.1/32", "ip", "10.0.0.1"),                      # the kernel lists /32 as the address
    ("10.0.0.0/8", "ip", prefix("10.0.0.0", 8)),
    ("2001:db8::1/128", "ip6", "2001:db8::1"),
    ("fd00::/64", "ip6", prefix("fd00::", 64)),
    (["10.1.0.0/16", "192.0.2.7"], "ip", {"set": [prefix("10.1.0.0", 16), "192.0.2.7"]}),
    (["10.0.0.1"], "ip", "10.0.0.1"),
    ("@v4", "ip", "@v4"),
    (["@v4"], "ip", "@v4"),
    ("@v6", "ip6", "@v6"),
])
def test_addresses(value, protocol, right):
    assert compile_({"saddr": value}) == [match(payload(protocol, "saddr"), right)]
    assert compile_({"daddr": value}) == [match(payload(protocol, "daddr"), right)]


def test_saddr_comes_before_daddr():
    assert compile_({"daddr": "10.0.0.2", "saddr": "10.0.0.1"}) == [
        match(payload("ip", "saddr"), "10.0.0.1"), match(payload("ip", "daddr"), "10.0.0.2")]


@pytest.mark.parametrize("value, message", [
    ("10.0.0.1/8", "prefix 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)"),
    ("fd00::1/64", "prefix fd00::1/64 has host bits set (did you mean fd00::/64?)"),
    ("10.0.0.300", "invalid address or prefix '10.0.0.300'"),
    ("host.example", "invalid address or prefix 'host.example'"),
    (["10.0.0.1", "fd00::1"], "a rule cannot match IPv4 and IPv6 addresses at once: write two rules"),
    ("@nope", "unknown set '@nope' (sets of this table: names, ports, v4, v6)"),
    ("@ports", "set '@ports' holds inet_service, not addresses"),
    ("@names", "set '@names' holds ifname, not addresses"),
    (["@v4", "10.0.0.1"], "a set reference cannot be mixed with addresses"),
    (["10.0.0.1", "@v4"], "a set reference cannot be mixed with addresses"),
])
def test_address_errors_name_the_field(value, message):
    assert error({"daddr": value, "action": "accept"}) == ("daddr", message)


@pytest.mark.parametrize("rule, field, message", [
    ({"saddr": "10.0.0.0/8", "daddr": "fd00::1"}, "daddr",
     "saddr is IPv4 and daddr IPv6: a packet is one or the other; write two rules"),
    ({"saddr": "@v6", "daddr": "@v4"}, "daddr", "saddr is IPv6 and daddr IPv4: a packet is one or the other; "
                                                "write two rules"),
    ({"saddr": "10.0.0.0/8", "protocol": "icmpv6"}, "protocol",
     "icmpv6 is never in IPv4 packets, and saddr is IPv4: the rule would never match"),
    ({"daddr": "10.0.0.1", "protocol": ["icmpv6"]}, "protocol",
     "icmpv6 is never in IPv4 packets, and daddr is IPv4: the rule would never match"),
    ({"daddr": "fd00::1", "protocol": "icmp"}, "protocol",
     "icmp is never in IPv6 packets, and daddr is IPv6: the rule would never match"),
    ({"saddr": "fd00::1", "icmp_type": "echo-request"}, "icmp_type",
     "icmp is never in IPv6 packets, and saddr is IPv6: the rule would never match"),
    ({"saddr": "10.0.0.1", "icmpv6_type": "echo-request"}, "icmpv6_type",
     "icmpv6 is never in IPv4 packets, and saddr is IPv4: the rule would never match"),
])
def test_a_rule_no_packet_can_match_is_refused(rule, field, message):
    """nft refuses the first at apply time ("conflicting protocols"), and takes the others."""
    assert error({**rule, "action": "accept"}) == (field, message)


def test_addresses_and_the_icmp_of_their_version_go_together():
    compile_({"saddr": "10.0.0.0/8", "daddr": "10.1.0.1", "protocol": "icmp", "action": "accept"})
    compile_({"saddr": "fd00::/8", "icmpv6_type": "echo-request", "action": "accept"})
    compile_({"saddr": "10.0.0.0/8", "protocol": ["icmp", "icmpv6"], "action": "accept"})  # the icmp ones match


def test_an_unknown_set_in_a_table_without_sets():
    assert error({"saddr": "@x"}, sets={}) == ("saddr", "unknown set '@x' (sets of this table: none)")


@pytest.mark.parametrize("family, value, message", [
    ("ip", "fd00::1", "IPv6 addresses cannot match in a table of family ip"),
    ("ip", "@v6", "IPv6 addresses cannot match in a table of family ip"),
    ("ip6", "10.0.0.0/8", "IPv4 addresses cannot match in a table of family ip6"),
    ("ip6", "@v4", "IPv4 addresses cannot match in a table of family ip6"),
])
def test_address_family_must_fit_the_table(family, value, message):
    assert error({"saddr": value}, family=family) == ("saddr", message)


def test_both_families_fit_an_inet_table():
    assert compile_({"saddr": "fd00::1"}, family="inet")
    assert compile_({"saddr": "10.0.0.1"}, family="ip") == [match(payload("ip", "saddr"), "10.0.0.1")]
    assert compile_({"saddr": "fd00::1"}, family="ip6") == [match(payload("ip6", "saddr"), "fd00::1")]


# -- protocols and ports -------------------------------------------------------

def test_a_protocol_alone_is_meta_l4proto():
    assert compile_({"protocol": "gre", "action": "drop"}) == [match(meta("l4proto"), "gre"), {"drop": None}]
    assert compile_({"protocol": ["esp", "ah"]}) == [match(meta("l4proto"), {"set": ["esp", "ah"]})]


def test_unknown_protocol():
    field, message = error({"protocol": ["tcp", "http"]})
    assert field == "protocol"
    assert message.startswith("unknown protocol 'http' (known: tcp, udp, sctp, dccp, udplite, icmp, icmpv6")


def test_one_protocol_with_ports_matches_its_header():
    assert compile_({"protocol": "tcp", "dport": 22}) == [match(payload("tcp", "dport"), 22)]
    assert compile_({"protocol": ["udp"], "sport": 53, "dport": 53}) == [
        match(payload("udp", "sport"), 53), match(payload("udp", "dport"), 53)]


def test_several_port_protocols_match_the_transport_header():
    assert compile_({"protocol": ["tcp", "udp"], "dport": 53}) == [
        match(meta("l4proto"), {"set": ["tcp", "udp"]}), match(payload("th", "dport"), 53)]


@pytest.mark.parametrize("value, right", [
    (22, 22),
    ("22", 22),
    (" 443 ", 443),
    (0, 0),
    (65535, 65535),
    ("1000-2000", {"range": [1000, 2000]}),
    ("1000 - 2000", {"range": [1000, 2000]}),
    ([22, 80, "1000-2000"], {"set": [22, 80, {"range": [1000, 2000]}]}),
    ([8080], 8080),
])
def test_port_forms(value, right):
    assert compile_({"protocol": "tcp", "dport": value}) == [match(payload("tcp", "dport"), right)]


@pytest.mark.parametrize("value, message", [
    (70000, "port 70000 is out of range 0-65535"),
    (-1, "port -1 is out of range 0-65535"),
    ("70000", "port 70000 is out of range 0-65535"),
    ([22, 70000], "port 70000 is out of range 0-65535"),
    ("2000-1000", "port range '2000-1000' must be low-high within 0-65535"),
    ("80-80", "port range '80-80' must be low-high within 0-65535"),
    ("1-70000", "port range '1-70000' must be low-high within 0-65535"),
    ("http", "invalid port 'http': a number or a range like 1000-2000"),
    ("1000:2000", "invalid port '1000:2000': a number or a range like 1000-2000"),
    (True, "invalid port True: a number or a range like 1000-2000"),
])
def test_port_errors(value, message):
    assert error({"protocol": "udp", "sport": value}) == ("sport", message)


def test_a_port_needs_a_protocol():
    message = "a port needs a protocol: tcp, udp, sctp, dccp, udplite"
    assert error({"dport": 22, "action": "accept"}) == ("dport", message)
    assert error({"sport": 22}) == ("sport", message)
    assert error({"sport": 1, "dport": 2})[0] == "sport"


@pytest.mark.parametrize("protocol, without", [("icmp", "icmp"), (["tcp", "icmp"], "icmp"), ("esp", "esp")])
def test_a_port_on_a_protocol_without_ports(protocol, without):
    assert error({"protocol": protocol, "dport": 1}) == ("dport", f"protocol {without} has no ports")


# -- icmp types ----------------------------------------------------------------

def test_icmp_type_is_a_payload_match_without_l4proto():
    expected = [match(payload("icmp", "type"), "echo-request"), ACCEPT]
    assert compile_({"protocol": "icmp", "icmp_type": "echo-request", "action": "accept"}) == expected
    assert compile_({"icmp_type": "echo-request", "action": "accept"}) == expected


def test_icmp_types_list_and_icmpv6():
    assert compile_({"icmp_type": ["echo-request", "echo-reply"]}) == [
        match(payload("icmp", "type"), {"set": ["echo-request", "echo-reply"]})]
    assert compile_({"icmpv6_type": "nd-neighbor-solicit"}, family="ip6") == [
        match(payload("icmpv6", "type"), "nd-neighbor-solicit")]


@pytest.mark.parametrize("rule, family, field, message", [
    ({"icmp_type": "echo-request"}, "ip6", "icmp_type", "icmp does not exist in a table of family ip6"),
    ({"icmpv6_type": "echo-request"}, "ip", "icmpv6_type", "icmpv6 does not exist in a table of family ip"),
    ({"protocol": "tcp", "icmp_type": "echo-request"}, "inet", "icmp_type", "icmp type needs protocol icmp, not tcp"),
    ({"protocol": "icmp", "icmpv6_type": "echo-request"}, "inet", "icmpv6_type",
     "icmpv6 type needs protocol icmpv6, not icmp"),
    ({"protocol": "tcp", "dport": 22, "icmp_type": "echo-request"}, "inet", "icmp_type",
     "icmp type cannot be combined with ports"),
])
def test_icmp_type_errors(rule, family, field, message):
    assert error(rule, family=family) == (field, message)


def test_unknown_icmp_type_lists_the_known_ones():
    field, message = error({"icmp_type": "ping"})
    assert field == "icmp_type"
    assert message.startswith("unknown icmp type 'ping' (known: echo-reply, destination-unreachable,")
    field, message = error({"icmpv6_type": ["echo-request", "router-advertisement"]})
    assert (field, message.split(" (")[0]) == ("icmpv6_type", "unknown icmpv6 type 'router-advertisement'")


def test_icmp_type_and_icmpv6_type_together_are_an_error():
    with pytest.raises(RuleError):
        compile_({"icmp_type": "echo-request", "icmpv6_type": "echo-request", "action": "accept"})


# -- conntrack, mark -----------------------------------------------------------

def test_ct_state_is_in_bit_order_with_op_in():
    assert compile_({"ct_state": ["related", "established"]}) == [
        match({"ct": {"key": "state"}}, ["established", "related"], "in")]
    assert compile_({"ct_state": ["new", "invalid", "untracked"]}) == [
        match({"ct": {"key": "state"}}, ["invalid", "new", "untracked"], "in")]


def test_one_ct_value_is_a_scalar_still_with_op_in():
    assert compile_({"ct_state": "new"}) == [match({"ct": {"key": "state"}}, "new", "in")]
    assert compile_({"ct_state": ["new"]}) == [match({"ct": {"key": "state"}}, "new", "in")]
    assert compile_({"ct_status": "dnat"}) == [match({"ct": {"key": "status"}}, "dnat", "in")]


def test_ct_status_is_in_bit_order():
    assert compile_({"ct_status": ["dnat", "snat", "expected"]}) == [
        match({"ct": {"key": "status"}}, ["expected", "snat", "dnat"], "in")]


def test_unknown_ct_names():
    assert error({"ct_state": ["new", "bogus"]}) == (
        "ct_state", "unknown ct state 'bogus' (known: invalid, established, related, new, untracked)")
    assert error({"ct_status": "established"}) == (
        "ct_status", "unknown ct status 'established' "
                     "(known: expected, seen-reply, assured, confirmed, snat, dnat, dying)")


def test_mark():
    assert compile_({"mark": 16, "action": "drop"}) == [match(meta("mark"), 16), {"drop": None}]
    assert compile_({"mark": 0}) == [match(meta("mark"), 0)]


# -- statements ----------------------------------------------------------------

@pytest.mark.parametrize("value, limit", [
    ("10/second", {"rate": 10, "burst": 5, "per": "second"}),
    (" 3 / minute ", {"rate": 3, "burst": 5, "per": "minute"}),
    ({"rate": 5, "per": "hour", "burst": 10}, {"rate": 5, "burst": 10, "per": "hour"}),
    ({"rate": 5}, {"rate": 5, "burst": 5, "per": "second"}),
    ({"rate": 1, "burst": 0, "per": "day"}, {"rate": 1, "burst": 0, "per": "day"}),
])
def test_limit(value, limit):
    assert compile_({"limit": value}) == [{"limit": limit}]


@pytest.mark.parametrize("value", ["10 per second", "10/week", "fast", "/second"])
def test_bad_limit(value):
    assert error({"limit": value}) == ("limit", f"invalid rate {value!r}: write it like 10/second")


@pytest.mark.parametrize("value, log", [
    (True, None),
    ("dropped: ", {"prefix": "dropped: "}),
    ({"prefix": "lim ", "level": "info"}, {"prefix": "lim ", "level": "info"}),
    ({"prefix": "x", "level": "warn"}, {"prefix": "x"}),   # warn is nft's default, never listed
    ({"level": "warn"}, None),
    ({"level": "debug"}, {"level": "debug"}),
])
def test_log(value, log):
    assert compile_({"log": value}) == [{"log": log}]


def test_log_with_an_empty_mapping_still_logs():
    assert compile_({"log": {}, "action": "drop"}) == [{"log": None}, {"drop": None}]


def test_counter_and_false_statements():
    assert compile_({"counter": True, "action": "drop"}) == [{"counter": None}, {"drop": None}]
    assert compile_({"counter": False, "log": False, "action": "drop"}) == [{"drop": None}]


def test_matches_then_statements_in_a_fixed_order():
    rule = {"action": "drop", "log": True, "counter": True, "limit": "1/second", "mark": 1,
            "ct_state": "new", "protocol": "tcp", "dport": 22, "daddr": "10.0.0.2", "saddr": "10.0.0.1",
            "oif": "b", "iif": "a"}
    assert compile_(rule) == [
        match(meta("iifname"), "a"), match(meta("oifname"), "b"),
        match(payload("ip", "saddr"), "10.0.0.1"), match(payload("ip", "daddr"), "10.0.0.2"),
        match(payload("tcp", "dport"), 22), match({"ct": {"key": "state"}}, "new", "in"), match(meta("mark"), 1),
        {"limit": {"rate": 1, "burst": 5, "per": "second"}}, {"counter": None}, {"log": None}, {"drop": None}]


@pytest.mark.parametrize("rule", [{}, {"comment": "nothing"}, {"counter": False}])
def test_an_empty_rule_is_an_error(rule):
    assert error(rule) == (None, "the rule is empty: give matches and an action, or `nft`")


# -- verdicts ------------------------------------------------------------------

@pytest.mark.parametrize("action", ["accept", "drop", "return"])
def test_plain_verdicts(action):
    assert compile_({"action": action}) == [{action: None}]


@pytest.mark.parametrize("verdict", ["jump", "goto"])
def test_jump_and_goto(verdict):
    assert compile_({"action": {verdict: "audit"}}) == [{verdict: {"target": "audit"}}]
    assert error({"action": {verdict: "nope"}}) == (
        "action", f"{verdict} to unknown chain 'nope' (regular chains of this table: audit)")
    assert error({"action": {verdict: "x"}}, chains=()) == (
        "action", f"{verdict} to unknown chain 'x' (regular chains of this table: none)")


@pytest.mark.parametrize("family, code, kind, expr", [
    ("inet", None, "icmpx", "port-unreachable"),
    ("ip", None, "icmp", "port-unreachable"),
    ("ip6", None, "icmpv6", "port-unreachable"),
    ("inet", "host-unreachable", "icmpx", "host-unreachable"),
    ("ip", "host-unreachable", "icmp", "host-unreachable"),
    ("ip6", "host-unreachable", "icmpv6", "addr-unreachable"),   # ICMPv6 calls it so
    ("inet", "admin-prohibited", "icmpx", "admin-prohibited"),
    ("ip6", "admin-prohibited", "icmpv6", "admin-prohibited"),
    ("ip", "port-unreachable", "icmp", "port-unreachable"),
])
def test_reject_per_family(family, code, kind, expr):
    action = "reject" if code is None else {"reject": code}
    assert compile_({"action": action}, family=family) == [{"reject": {"type": kind, "expr": expr}}]


def test_reject_with_tcp_reset_needs_protocol_tcp():
    for protocol in ("tcp", ["tcp"]):
        assert compile_({"protocol": protocol, "dport": 23, "action": {"reject": "tcp-reset"}})[-1] == \
            {"reject": {"type": "tcp reset"}}
    for rule in ({}, {"protocol": "udp"}, {"protocol": ["tcp", "udp"]}):
        assert error({**rule, "action": {"reject": "tcp-reset"}}) == (
            "action", "reject with tcp-reset needs protocol: tcp")


# -- NAT -----------------------------------------------------------------------

def nat(rule, family="ip", hook="postrouting"):
    return compile_(rule, family=family, type_="nat", hook=hook)


def test_masquerade_and_snat():
    assert nat({"saddr": "10.9.0.0/24", "action": "masquerade"})[-1] == {"masquerade": None}
    assert nat({"action": {"snat": "10.9.9.9"}}) == [{"snat": {"addr": "10.9.9.9"}}]
    assert nat({"action": {"snat": "fd00::1"}}, family="ip6") == [{"snat": {"addr": "fd00::1"}}]
    assert nat({"action": {"snat": "10.9.9.9"}}, hook="input") == [{"snat": {"addr": "10.9.9.9"}}]


@pytest.mark.parametrize("family, target, expected", [
    ("ip", "10.9.0.4", {"addr": "10.9.0.4"}),
    ("ip", "10.9.0.2:8080", {"addr": "10.9.0.2", "port": 8080}),
    ("ip", "10.9.0.2:8000-8100", {"addr": "10.9.0.2", "port": {"range": [8000, 8100]}}),
    ("ip6", "2001:db8::11", {"addr": "2001:db8::11"}),
    ("ip6", "[2001:db8::11]:8443", {"addr": "2001:db8::11", "port": 8443}),
    ("ip6", "[2001:db8::11]", {"addr": "2001:db8::11"}),
    ("inet", "10.7.0.2:5353", {"family": "ip", "addr": "10.7.0.2", "port": 5353}),
    ("inet", "[2001:db8::11]:8443", {"family": "ip6", "addr": "2001:db8::11", "port": 8443}),
    ("inet", "2001:db8::11", {"family": "ip6", "addr": "2001:db8::11"}),
])
def test_dnat_targets(family, target, expected):
    rule = {"protocol": "tcp", "action": {"dnat": target}} if "port" in expected else {"action": {"dnat": target}}
    assert nat(rule, family=family, hook="prerouting")[-1] == {"dnat": expected}
    assert nat(rule, family=family, hook="output")[-1] == {"dnat": expected}


@pytest.mark.parametrize("rule", [
    {"action": {"dnat": "10.9.0.2:8080"}},
    {"protocol": "icmp", "action": {"dnat": "10.9.0.2:8080"}},
    {"protocol": ["tcp", "icmp"], "action": {"dnat": "10.9.0.2:8080"}},
])
def test_a_nat_port_needs_a_transport_protocol(rule):
    # nft: "transport protocol mapping is only valid after transport protocol match"
    assert error(rule, family="ip", type_="nat", hook="prerouting") == (
        "action", "dnat to a port needs the rule to match protocol tcp, udp or sctp")


@pytest.mark.parametrize("family, target, message", [
    ("ip", "gateway.example", "invalid dnat target 'gateway.example': an address, address:port or [v6]:port"),
    ("ip", "10.0.0.0/24", "invalid dnat target '10.0.0.0/24': an address, address:port or [v6]:port"),
    ("ip", "10.0.0.2:", "invalid port '': a number or a range like 1000-2000"),
    ("ip", "10.0.0.2:99999", "port 99999 is out of range 0-65535"),
    ("ip", "fd00::1", "dnat to an IPv6 address in a table of family ip"),
    ("ip6", "10.0.0.2", "dnat to an IPv4 address in a table of family ip6"),
])
def test_bad_dnat_targets(family, target, message):
    assert error({"action": {"dnat": target}}, family=family, type_="nat", hook="prerouting") == ("action", message)


def test_a_v6_target_with_garbage_after_the_bracket_is_an_error():
    with pytest.raises(RuleError):
        nat({"action": {"dnat": "[2001:db8::1]80"}}, family="ip6", hook="prerouting")


@pytest.mark.parametrize("type_, hook, action, message", [
    ("filter", "input", "masquerade", "masquerade needs a chain of type nat (this one is filter)"),
    (None, None, {"snat": "10.0.0.1"}, "snat needs a chain of type nat (this one is a regular chain)"),
    ("route", "output", {"dnat": "10.0.0.1"}, "dnat needs a chain of type nat (this one is route)"),
    ("nat", "prerouting", "masquerade", "masquerade belongs in a postrouting chain, not prerouting"),
    # The kernel refuses masquerade at input (nft_masq_validate: postrouting only).
    ("nat", "input", "masquerade", "masquerade belongs in a postrouting chain, not input"),
    ("nat", "output", {"snat": "10.0.0.1"}, "snat belongs in a postrouting or input chain, not output"),
    ("nat", "postrouting", {"dnat": "10.0.0.1"}, "dnat belongs in a prerouting or output chain, not postrouting"),
    ("nat", "input", {"dnat": "10.0.0.1"}, "dnat belongs in a prerouting or output chain, not input"),
])
def test_nat_only_in_nat_chains_on_the_right_hook(type_, hook, action, message):
    assert error({"action": action}, family="ip", type_=type_, hook=hook) == ("action", message)


def test_reject_not_at_postrouting():
    assert error({"action": "reject"}, type_="filter", hook="postrouting") == (
        "action", "reject belongs in a prerouting, input, forward, output chain, not postrouting")
    assert compile_({"action": "reject"}, hook="prerouting")


@pytest.mark.parametrize("rule, field, message", [
    ({"log": "x" * 128, "action": "drop"}, "log", "the log prefix is 128 bytes; nftables allows 127"),
    ({"log": {"prefix": "é" * 64}, "action": "drop"}, "log", "the log prefix is 128 bytes; nftables allows 127"),
    ({"log": "a\x00b", "action": "drop"}, "log", "the log prefix 'a\\x00b' holds control characters"),
    ({"action": "drop", "comment": "c" * 129}, "comment", "a comment is 129 bytes; nftables allows 128"),
    ({"iif": "i" * 16, "action": "drop"}, "iif", "interface name 'iiiiiiiiiiiiiiii' is 16 bytes; nftables allows 15"),
    ({"oif": ["ok", ""], "action": "drop"}, "oif", "interface name is empty"),
])
def test_lengths_nftables_enforces(rule, field, message):
    # Past these, libnftables' JSON path crashed the process (a 160-byte log prefix:
    # "stack smashing detected"; a 300-byte comment: "Memory allocation failure").
    assert error(rule) == (field, message)


def test_the_longest_allowed_strings_compile():
    assert compile_({"log": "x" * 127, "iif": "i" * 15, "action": "drop", "comment": "c" * 128})


# -- describe ------------------------------------------------------------------

@pytest.mark.parametrize("rule, text", [
    ({"saddr": "@clients", "protocol": "udp", "dport": 8080, "action": "accept", "comment": "time server"},
     'saddr @clients protocol udp dport 8080 accept comment "time server"'),
    ({"ct_state": ["established", "related"], "action": "accept"}, "ct state established,related accept"),
    ({"iif": "veth_srv_c2", "daddr": "10.0.2.1", "protocol": "tcp", "dport": 8022,
      "action": {"dnat": "10.0.1.2:8022"}}, "iif veth_srv_c2 daddr 10.0.2.1 protocol tcp dport 8022 dnat 10.0.1.2:8022"),
    ({"action": "drop", "counter": True}, "counter drop"),
    ({"counter": False, "action": "drop"}, "drop"),
    ({"limit": {"rate": 5, "per": "minute"}, "action": "accept"}, 'limit {"rate": 5, "per": "minute"} accept'),
    ({"log": "in: ", "limit": "10/second"}, "limit 10/second log in: "),
    ({"icmpv6_type": ["echo-request", "packet-too-big"], "mark": 3}, "icmpv6 type echo-request,packet-too-big mark 3"),
    ({"action": {"jump": "audit"}, "comment": ""}, "jump audit"),
    ({"nft": "tcp flags syn accept", "comment": "ignored"}, "tcp flags syn accept"),
])
def test_describe(rule, text):
    assert describe(rule) == text


def test_describe_log_true_reads_like_nft():
    assert describe({"log": True, "action": "drop"}) == "log drop"


# -- what the kernel lists back ----------------------------------------------------

@pytest.mark.parametrize("value, right", [
    ("::1.2.3.4", "::1.2.3.4"),                     # Python writes ::102:304; the kernel lists this
    ("2001:db8::/64", prefix("2001:db8::", 64)),
    ("2001:DB8:0:0:1::1", "2001:db8::1:0:0:1"),
])
def test_ipv6_addresses_are_written_as_the_kernel_lists_them(value, right):
    assert compile_({"saddr": value, "action": "drop"})[0] == match(payload("ip6", "saddr"), right)


@pytest.mark.parametrize("rule, message", [
    ({"saddr": ["10.0.0.0/8", "10.1.0.0/16"]}, "10.0.0.0/8 and 10.1.0.0/16 overlap"),
    ({"saddr": ["10.0.0.0/24", "10.0.1.0/24"]}, "10.0.0.0/24 and 10.0.1.0/24 touch"),
    ({"saddr": ["10.0.0.1", "10.0.0.1"]}, "10.0.0.1 and 10.0.0.1 overlap"),
    ({"protocol": "tcp", "dport": [22, "80-90", 85]}, "80-90 and 85 overlap"),
    ({"protocol": "tcp", "dport": [22, 23, "80-90"]}, "22 and 23 touch"),
    ({"protocol": "tcp", "dport": ["80-90", "91-95"]}, "80-90 and 91-95 touch"),
])
def test_what_nftables_would_merge_is_refused_with_what_to_write(rule, message):
    field, text = error({**rule, "action": "drop"})
    assert field == next(k for k in ("saddr", "dport") if k in rule) and message in text


@pytest.mark.parametrize("rule, field", [
    ({"protocol": ["tcp", "tcp"]}, "protocol"),
    ({"protocol": ["tcp", "udp", "tcp"], "dport": 53}, "protocol"),
    ({"protocol": "icmp", "icmp_type": ["echo-request", "echo-request"]}, "icmp_type"),
    ({"iif": ["va", "va"]}, "iif"),
])
def test_a_name_listed_twice_is_refused_as_nftables_would_keep_it_once(rule, field):
    assert error({**rule, "action": "drop"}) == (field, f"'{rule[field][-1]}' is listed twice")


def test_single_values_side_by_side_are_not_merged():
    assert compile_({"saddr": ["10.0.0.1", "10.0.0.2"], "action": "drop"})[0]["match"]["right"] == \
        {"set": ["10.0.0.1", "10.0.0.2"]}
    assert compile_({"protocol": "tcp", "dport": [22, 23], "action": "drop"})[0]["match"]["right"] == \
        {"set": [22, 23]}
