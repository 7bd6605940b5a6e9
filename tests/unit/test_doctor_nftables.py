"""The doctor's static nftables evaluator (toolkit/doctor/nftables.py): what the
shipped two-clients policy does to packets, and the evaluation rules (hooks by
priority, jump / goto / return, NAT only for new connections, sets, unknowns)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.doctor import nftables as nft
from toolkit.doctor.nftables import Packet
from toolkit.manifest import load_topology
from toolkit.model.firewall import Chain, NamedSet, Rule, Table

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server():
    """ns_server's tables in topologies/two-clients.yaml (policies/two-clients-server.yaml)."""
    topology = load_topology(REPO / "topologies" / "two-clients.yaml")
    return topology.node("ns_server").tables


def ping(src, dst, iif="", oif="", reply=False, family=4):
    proto = "icmpv6" if family == 6 else "icmp"
    return Packet(family, proto, src, dst, icmp_type="echo-reply" if reply else "echo-request", iif=iif, oif=oif,
                  ct_state="established" if reply else "new")


def tcp(src, dst, dport, iif="", oif="", state="new"):
    return Packet(4, "tcp", src, dst, sport=40000, dport=dport, iif=iif, oif=oif, ct_state=state)


def udp(src, dst, dport, iif=""):
    return Packet(4, "udp", src, dst, sport=40000, dport=dport, iif=iif)


C1, C2 = ("veth_srv_c1", "veth_srv_c2")


# --- the shipped policy -----------------------------------------------------------------

def test_client1_pings_client2_through_forward_and_is_masqueraded(server):
    result = nft.evaluate(server, ping("10.0.1.2", "10.0.2.2", C1, C2), "forward")
    assert result.verdict == nft.ACCEPT
    assert [(n.hook, n.kind) for n in result.nat] == [("postrouting", "masquerade")]


def test_client2_pinging_client1_meets_the_forward_policy_drop(server):
    result = nft.evaluate(server, ping("10.0.2.2", "10.0.1.2", C2, C1), "forward")
    assert result.verdict == nft.DROP
    assert (result.hook, result.chain, result.rule, result.reason) == ("forward", "forward", None, "policy drop")
    assert result.table.kernel_name == "netkeel_filter"
    assert "policies/two-clients-server.yaml" in result.where()


def test_new_tcp_from_client2_to_client1_dropped_and_its_replies_pass(server):
    assert nft.evaluate(server, tcp("10.0.2.2", "10.0.1.2", 22, C2, C1), "forward").verdict == nft.DROP
    reply = tcp("10.0.2.2", "10.0.1.2", 22, C2, C1, state="established")
    assert nft.evaluate(server, reply, "forward").verdict == nft.ACCEPT


def test_udp_8080_to_the_server_accepted_8081_dropped(server):
    assert nft.evaluate(server, udp("10.0.1.2", "10.0.1.1", 8080, C1), "input").verdict == nft.ACCEPT
    assert nft.evaluate(server, udp("10.0.2.2", "10.0.2.1", 8080, C2), "input").verdict == nft.ACCEPT
    result = nft.evaluate(server, udp("10.0.1.2", "10.0.1.1", 8081, C1), "input")
    assert (result.verdict, result.chain, result.reason) == (nft.DROP, "input", "policy drop")


def test_ping_to_the_server_only_from_the_clients_set(server):
    assert nft.evaluate(server, ping("10.0.1.2", "10.0.1.1", C1), "input").verdict == nft.ACCEPT
    assert nft.evaluate(server, ping("192.0.2.7", "10.0.1.1", C1), "input").verdict == nft.DROP
    # echo replies are not echo requests: new ones are not accepted
    assert nft.evaluate(server, ping("10.0.1.2", "10.0.1.1", C1).replace(icmp_type="echo-reply"),
                        "input").verdict == nft.DROP


def test_ipv6_does_not_match_ipv4_address_rules(server):
    # @clients holds IPv4 prefixes (ip saddr): an IPv6 ping falls through to the policy
    result = nft.evaluate(server, ping("fd00::2", "fd00::1", C1, family=6), "input")
    assert (result.verdict, result.reason) == (nft.DROP, "policy drop")


def test_port_forward_dnat_then_forward_accepts_it(server):
    result = nft.evaluate(server, tcp("10.0.2.2", "10.0.2.1", 8022, C2, C1), "forward")
    assert result.verdict == nft.ACCEPT
    assert [(n.kind, n.addr, n.port) for n in result.nat][0] == ("dnat", "10.0.1.2", 8022)
    # the same packet coming in on client1's side is not translated, and not let through
    result = nft.evaluate(server, tcp("10.0.2.2", "10.0.2.1", 8022, C1, C2), "forward")
    assert (result.verdict, result.nat) == (nft.DROP, ())


def test_nat_chains_see_only_new_connections(server):
    reply = ping("10.0.1.2", "10.0.2.2", C1, C2, reply=True)
    assert nft.evaluate(server, reply, "forward").nat == ()


def test_loopback_input_accepted_by_the_iif_rule(server):
    result = nft.evaluate(server, tcp("10.0.1.1", "10.0.1.1", 9999, "lo"), "input")
    assert result.verdict == nft.ACCEPT


# --- evaluation rules --------------------------------------------------------------------

def rule(expr, text="", source="test.yaml:1"):
    return Rule(json.dumps(expr), None, None, source, text or json.dumps(expr))


def match(left, right, op="=="):
    return {"match": {"op": op, "left": left, "right": right}}


def payload(proto, field):
    return {"payload": {"protocol": proto, "field": field}}


def meta(key):
    return {"meta": {"key": key}}


def table(*chains, family="inet", name="t", sets=()):
    return Table(name, family, tuple(chains), tuple(sets), "test.yaml:1")


def test_first_matching_rule_decides_and_its_position_is_reported():
    chain = Chain("input", "filter", "input", 0, "accept", (
        rule([match(payload("tcp", "dport"), 22), {"accept": None}]),
        rule([match(payload("ip", "saddr"), {"prefix": {"addr": "10.0.0.0", "len": 8}}), {"drop": None}],
             "saddr 10.0.0.0/8 drop", "policy.yaml:9"),
        rule([{"drop": None}]),
    ))
    tables = [table(chain)]
    assert nft.evaluate(tables, tcp("10.1.1.1", "10.0.0.1", 22), "input").verdict == nft.ACCEPT
    result = nft.evaluate(tables, tcp("10.1.1.1", "10.0.0.1", 80), "input")
    assert (result.verdict, result.index) == (nft.DROP, 1)
    assert result.where() == "table inet netkeel_t chain input rule 2 (policy.yaml:9): saddr 10.0.0.0/8 drop"


def test_chains_run_by_priority_across_tables_and_a_drop_anywhere_wins():
    early = table(Chain("a", "filter", "input", -10, "accept", (rule([{"accept": None}]),)), name="early")
    late = table(Chain("b", "filter", "input", 10, "drop", ()), name="late")
    result = nft.evaluate([late, early], tcp("10.0.0.2", "10.0.0.1", 80), "input")
    assert (result.verdict, result.table.name, result.reason) == (nft.DROP, "late", "policy drop")


def test_family_ip6_table_does_not_see_ipv4():
    only6 = table(Chain("b", "filter", "input", 0, "drop", ()), family="ip6")
    assert nft.evaluate([only6], tcp("10.0.0.2", "10.0.0.1", 80), "input").verdict == nft.ACCEPT


def test_jump_return_and_goto():
    sub = Chain("sub", rules=(rule([match(payload("tcp", "dport"), 80), {"return": None}]),
                              rule([{"drop": None}])))
    base_jump = Chain("input", "filter", "input", 0, "accept", (rule([{"jump": {"target": "sub"}}]),
                                                                rule([{"reject": None}])))
    tables = [table(base_jump, sub)]
    # return from sub: on to the base chain's next rule (reject)
    assert nft.evaluate(tables, tcp("10.0.0.2", "10.0.0.1", 80), "input").verdict == nft.REJECT
    result = nft.evaluate(tables, tcp("10.0.0.2", "10.0.0.1", 81), "input")
    assert (result.verdict, result.chain) == (nft.DROP, "sub")
    # goto: a return from the target ends the base chain (its policy: accept)
    base_goto = Chain("input", "filter", "input", 0, "accept", (rule([{"goto": {"target": "sub"}}]),
                                                                rule([{"reject": None}])))
    assert nft.evaluate([table(base_goto, sub)], tcp("10.0.0.2", "10.0.0.1", 80), "input").verdict == nft.ACCEPT


def test_named_sets_anonymous_sets_ranges_and_negation():
    ports = NamedSet("web", "inet_service", ("interval",), (json.dumps({"range": [8000, 8100]}), json.dumps(443)))
    chain = Chain("input", "filter", "input", 0, "drop", (
        rule([match(payload("tcp", "dport"), "@web"), {"accept": None}]),
        rule([match(payload("udp", "dport"), {"set": [53, {"range": [5000, 5010]}]}), {"accept": None}]),
        rule([match(payload("ip", "saddr"), "10.9.9.9", "!="), match(payload("tcp", "dport"), 22),
              {"accept": None}]),
    ))
    tables = [table(chain, sets=(ports,))]
    verdict = lambda p: nft.evaluate(tables, p, "input").verdict  # noqa: E731
    assert verdict(tcp("10.0.0.2", "10.0.0.1", 8050)) == nft.ACCEPT
    assert verdict(tcp("10.0.0.2", "10.0.0.1", 443)) == nft.ACCEPT
    assert verdict(tcp("10.0.0.2", "10.0.0.1", 8101)) == nft.DROP
    assert verdict(udp("10.0.0.2", "10.0.0.1", 5005)) == nft.ACCEPT
    assert verdict(udp("10.0.0.2", "10.0.0.1", 54)) == nft.DROP
    assert verdict(tcp("10.0.0.2", "10.0.0.1", 22)) == nft.ACCEPT
    assert verdict(tcp("10.9.9.9", "10.0.0.1", 22)) == nft.DROP


def test_interface_wildcard_l4proto_and_nfproto():
    chain = Chain("forward", "filter", "forward", 0, "drop", (
        rule([match(meta("iifname"), "veth*"), match(meta("l4proto"), {"set": ["tcp", "udp"]}),
              match(meta("nfproto"), "ipv4"), {"accept": None}]),
        rule([match(meta("l4proto"), "ipv6-icmp"), {"accept": None}]),
    ))
    tables = [table(chain)]
    assert nft.evaluate(tables, tcp("10.0.0.2", "10.0.1.2", 80, "veth0", "eth1"), "forward").verdict == nft.ACCEPT
    assert nft.evaluate(tables, tcp("10.0.0.2", "10.0.1.2", 80, "eth0", "eth1"), "forward").verdict == nft.DROP
    assert nft.evaluate(tables, ping("fd00::2", "fd01::2", "eth0", "eth1", family=6), "forward").verdict == nft.ACCEPT


def test_what_it_cannot_read_is_unknown_never_a_guess():
    chain = Chain("input", "filter", "input", 0, "accept", (
        rule([match(payload("tcp", "dport"), 22), match(meta("mark"), 1), {"drop": None}]),
    ))
    tables = [table(chain)]
    # the rule's first match fails: the unknown expression is never reached
    assert nft.evaluate(tables, tcp("10.0.0.2", "10.0.0.1", 80), "input").verdict == nft.ACCEPT
    result = nft.evaluate(tables, tcp("10.0.0.2", "10.0.0.1", 22), "input")
    assert result.verdict == nft.UNKNOWN and not result.decided
    assert result.reason.startswith("unknown: ") and '"mark"' in result.reason


def test_unknown_statements_and_unresolved_native_rules():
    queue = Chain("input", "filter", "input", 0, "accept", (rule([{"queue": {"num": 1}}]),))
    assert nft.evaluate([table(queue)], tcp("10.0.0.2", "10.0.0.1", 1), "input").verdict == nft.UNKNOWN
    native = Chain("input", "filter", "input", 0, "accept", (Rule(None, "fib saddr . iif oif missing drop", None,
                                                                  "x.yaml:3", "nft ..."),))
    result = nft.evaluate([table(native)], tcp("10.0.0.2", "10.0.0.1", 1), "input")
    assert result.verdict == nft.UNKNOWN and "fib saddr" in result.reason


def test_ct_state_invalid_and_status_bits():
    chain = Chain("forward", "filter", "forward", 0, "drop", (
        rule([match({"ct": {"key": "state"}}, ["established", "related"], "in"), {"accept": None}]),
        rule([match({"ct": {"key": "state"}}, "invalid", "in"), {"drop": None}], "ct state invalid drop"),
        rule([match({"ct": {"key": "status"}}, "dnat", "in"), {"accept": None}]),
    ))
    tables = [table(chain)]
    invalid = ping("10.0.0.2", "10.0.1.2", reply=True).replace(ct_state="invalid")
    result = nft.evaluate(tables, invalid, "forward")
    assert (result.verdict, result.index) == (nft.DROP, 1)
    dnatted = tcp("10.0.0.2", "10.0.1.2", 80).replace(ct_status=frozenset({"dnat"}))
    assert nft.evaluate(tables, dnatted, "forward").verdict == nft.ACCEPT
    assert nft.evaluate(tables, tcp("10.0.0.2", "10.0.1.2", 80), "forward").verdict == nft.DROP


def test_named_priorities_and_hooks_by_role():
    raw = table(Chain("pre", "filter", "prerouting", "raw", "drop", ()), name="raw")
    assert nft.evaluate([raw], tcp("10.0.0.2", "10.0.1.2", 80, "eth0", "eth1"), "forward").hook == "prerouting"
    assert nft.evaluate([raw], tcp("10.0.0.1", "10.0.1.2", 80, "", "eth1"), "output").verdict == nft.ACCEPT
    odd = table(Chain("x", "filter", "input", "sideways", "drop", ()))
    assert nft.evaluate([odd], tcp("10.0.0.2", "10.0.0.1", 80, "eth0"), "input").verdict == nft.UNKNOWN
