"""Chaos without root: which backend does what on which kernel (and what a refusal
says), the exact kernel operations of representative faults (nft text, tc
arguments, ifb redirects, device settings), conflicts between leases
(chaos/engine.py), and the keeper's schedule against a fake backend, a fake
clock and a fake sleep (chaos/keeper.py)."""

from __future__ import annotations

import textwrap
from contextlib import ExitStack

import pytest

from toolkit.chaos import engine as engine_module
from toolkit.chaos import keeper as keeper_module
from toolkit.chaos.engine import _check_conflicts, expire
from toolkit.chaos.keeper import flap_state, keep
from toolkit.chaos.plan import (DUP_MARK, Lab, choose, describe, ifb_name, kinds_on, netem_args, netem_limit,
                                plan, table_name, tbf_args)
from toolkit.errors import FaultError, KernelError
from toolkit.manifest.fault import load_fault_text
from toolkit.state.leases import Lease, Leases
from toolkit.state.statedir import StateDir

# This project's development and CI kernel, as probed: no netem.
HERE = frozenset({"dup", "ifb", "mirred", "nft", "tbf"})
# A Debian or Ubuntu kernel.
DISTRO = HERE | {"netem"}
LEASE = "f-0123abcd"
TABLE = "netkeel_chaos_82382b2b75"   # table_name(LEASE): sha256 of the lease id, 10 hex digits
IFB = "nkifb82382b2b"                # ifb_name(LEASE)
LAB = Lab(namespaces={"a": "p-a", "b": "p-b", "c": "p-c"},
          interfaces={"p-a": {"lo", "e0"}, "p-b": {"lo", "e0", "e1"}, "p-c": {"lo", "e1"}},
          addresses={"p-a": ["10.0.0.1"], "p-b": ["10.0.0.2", "10.0.1.2", "fd00::2"], "p-c": ["10.0.1.3"]})
ON_A = "target: {node: a, interface: e0}\n"


def fault(text: str, name: str = "f"):
    return load_fault_text(textwrap.dedent(text), f"{name}.yaml")


def ops(text: str, caps=HERE, expires_ms: int = 60_000) -> list:
    return list(plan(fault(text), caps, LAB, LEASE, expires_ms).operations)


def test_names_derive_from_the_lease():
    assert table_name(LEASE) == TABLE
    assert ifb_name(LEASE) == IFB
    assert len(IFB) <= 15  # an interface name
    assert table_name("g-0123abcd") != TABLE


# -- backends: chosen from what the kernel can do ------------------------------------------------

@pytest.mark.parametrize("text, caps, chosen", [
    (f"{ON_A}loss: 5%", DISTRO, [("loss", "netem")]),
    (f"{ON_A}loss: 5%", HERE, [("loss", "nft")]),
    (f"{ON_A}duplicate: 5%", DISTRO, [("duplicate", "netem")]),
    (f"{ON_A}duplicate: 5%", HERE, [("duplicate", "nft")]),
    (f"{ON_A}rate: 1mbit", DISTRO, [("rate", "netem")]),
    (f"{ON_A}rate: 1mbit", HERE, [("rate", "tbf")]),
    (f"{ON_A}delay: 50ms\nloss: 1%", DISTRO, [("loss", "netem"), ("delay", "netem")]),
    (f"{ON_A}loss: 1%\nrate: 1mbit", HERE, [("loss", "nft"), ("rate", "tbf")]),
    # netem cannot narrow by peer, protocol or port: nftables can
    ("target: {node: a, interface: e0, protocol: udp}\nloss: 5%", DISTRO, [("loss", "nft")]),
    ("target: {node: a, interface: e0, peer: 10.0.0.0/24}\nduplicate: 5%", DISTRO, [("duplicate", "nft")]),
    # the ingress of a device goes through an ifb for qdiscs
    ("target: {node: a, interface: e0, direction: ingress}\nrate: 1mbit", HERE, [("rate", "tbf")]),
    ("target: {node: a, interface: e0, direction: ingress}\nduplicate: 5%", DISTRO, [("duplicate", "netem")]),
    # a backend forced by the file
    (f"backend: nft\n{ON_A}loss: 5%", DISTRO, [("loss", "nft")]),
    (f"backend: tbf\n{ON_A}rate: 1mbit", DISTRO, [("rate", "tbf")]),
    # partitions and device faults need nothing special
    ("partition: {between: [[a], [b]]}", HERE, [("partition", "nft")]),
    (f"{ON_A}mtu: 1280", frozenset(), [("mtu", "link")]),
    (f"{ON_A}link_down: true", frozenset(), [("link_down", "link")]),
    (f"{ON_A}flap: {{period: 3s, down: 1s}}", frozenset(), [("flap", "link")]),
    # Gilbert-Elliott loss: netem only
    (f"{ON_A}loss: {{percent: 5%, gilbert: {{p: 1%, r: 20%}}}}", DISTRO, [("loss", "netem")]),
])
def test_backend_choice(text, caps, chosen):
    assert list(choose(fault(text), caps)) == chosen


@pytest.mark.parametrize("text, caps, message", [
    # what this kernel lacks, by name
    (f"{ON_A}delay: 50ms", HERE, "fault f: this kernel cannot do delay: netem needs the sch_netem qdisc; "
                                 "userspace needs iptables-nft's NFQUEUE target and nfnetlink_queue"),
    (f"{ON_A}corrupt: 1%", HERE, "fault f: this kernel cannot do corrupt: netem needs the sch_netem qdisc"),
    (f"{ON_A}delay: 10ms\nreorder: 5%", HERE, "this kernel cannot do delay: netem needs the sch_netem qdisc"),
    (f"{ON_A}duplicate: 5%", HERE - {"dup"},
     "fault f: this kernel cannot do duplicate: netem needs the sch_netem qdisc; nft needs nftables dup"),
    (f"{ON_A}loss: 5%", frozenset(),
     "fault f: this kernel cannot do loss: netem needs the sch_netem qdisc; nft needs nftables"),
    (f"{ON_A}rate: 1mbit", HERE - {"tbf"},
     "fault f: this kernel cannot do rate: netem needs the sch_netem qdisc; tbf needs the sch_tbf qdisc"),
    ("target: {node: a, interface: e0, direction: ingress}\nrate: 1mbit", HERE - {"ifb"},
     "this kernel cannot do rate: netem needs ifb devices and the sch_netem qdisc; tbf needs ifb devices"),
    ("target: {node: a, interface: e0, direction: both}\nrate: 1mbit", HERE - {"mirred"},
     "tbf needs the mirred action (act_mirred)"),
    ("target: {node: a, interface: e0, direction: ingress}\nduplicate: 5%", HERE,
     "this kernel cannot do duplicate: netem needs the sch_netem qdisc; nft needs an egress target (nftables "
     "duplicates only on the way out)"),
    ("target: {node: a, interface: e0, direction: ingress}\nduplicate: 5%", HERE - {"ifb", "mirred"},
     "netem needs ifb devices and the mirred action (act_mirred) and the sch_netem qdisc; nft needs an egress "
     "target"),
    ("partition: {between: [[a], [b]]}", frozenset(), "this kernel cannot do partition: nft needs nftables"),
    # what a backend cannot do at all
    (f"backend: nft\n{ON_A}rate: 1mbit", DISTRO, "fault f: backend nft cannot do rate (only netem, tbf)"),
    (f"backend: tbf\n{ON_A}delay: 5ms", DISTRO, "backend tbf cannot do delay (only netem, userspace)"),
    (f"backend: netem\n{ON_A}loss: 5%", HERE, "this kernel cannot do loss: netem needs the sch_netem qdisc"),
    # never a uniform loss in place of the declared bursts
    (f"{ON_A}loss: {{percent: 5%, gilbert: {{p: 1%, r: 20%}}}}", HERE,
     "this kernel cannot do loss: netem needs the sch_netem qdisc; nft needs a Gilbert-Elliott loss model, "
     "which nftables does not have"),
])
def test_refusals_name_what_the_kernel_lacks(text, caps, message):
    with pytest.raises(FaultError) as caught:
        choose(fault(text), caps)
    assert message in str(caught.value)
    assert caught.value.fault == "f"


def test_a_refusal_plans_nothing():
    with pytest.raises(FaultError):
        plan(fault(f"{ON_A}delay: 50ms\nloss: 5%"), HERE, LAB, LEASE, 60_000)


# -- nftables operations ---------------------------------------------------------------------------

def test_loss_by_nftables_exactly():
    assert ops(f"{ON_A}loss: 40%") == [{
        "op": "nft", "ns": "p-a", "family": "inet", "table": TABLE,
        "text": f"table inet {TABLE} {{\n"
                '  set armed { type ifname; flags timeout; elements = { "e0" timeout 60000ms } }\n'
                "  chain egress { type filter hook postrouting priority -150; policy accept;\n"
                "    oifname @armed numgen random mod 10000 < 4000 drop\n"
                "  }\n"
                "}\n",
        "slot": ["p-a", "e0", "egress loss"]}]


def test_narrowed_loss_both_ways_exactly():
    """Egress matches the peer as destination and its port as dport; ingress as source and sport.
    Without a known other end of the device, egress loss drops on the way out."""
    egress, ingress = ops("target: {node: a, interface: e0, direction: both, peer: 10.0.1.0/24, protocol: udp, "
                          "port: 53}\nloss: 12.5%", DISTRO)
    armed = '  set armed { type ifname; flags timeout; elements = { "e0" timeout 60000ms } }\n'
    assert egress == {"op": "nft", "ns": "p-a", "family": "inet", "table": TABLE, "text": (
        f"table inet {TABLE} {{\n{armed}"
        "  chain egress { type filter hook postrouting priority -150; policy accept;\n"
        "    oifname @armed ip daddr 10.0.1.0/24 meta l4proto udp th dport 53 numgen random mod 10000 < 1250 drop\n"
        "  }\n}\n"), "slot": ["p-a", "e0", "egress loss"]}
    assert ingress == {"op": "nft", "ns": "p-a", "family": "inet", "table": TABLE, "text": (
        f"table inet {TABLE} {{\n{armed}"
        "  chain ingress { type filter hook prerouting priority -150; policy accept;\n"
        "    iifname @armed ip saddr 10.0.1.0/24 meta l4proto udp th sport 53 numgen random mod 10000 < 1250 drop\n"
        "  }\n}\n"), "slot": ["p-a", "e0", "ingress loss"]}


def test_egress_loss_drops_where_the_packets_arrive():
    """At the veth's other end, on the way in: the sender's send() never fails (as
    on a lossy link), unlike a drop in its own postrouting."""
    lab = Lab(LAB.namespaces, LAB.interfaces, LAB.addresses, peers={("p-a", "e0"): ("p-b", "e0")})
    [op] = plan(fault(f"{ON_A}loss: 40%"), HERE, lab, LEASE, 60_000).operations
    assert op["ns"] == "p-b" and 'elements = { "e0" timeout' in op["text"]
    assert op["slot"] == ["p-a", "e0", "egress loss"]  # held on the device the fault names
    assert "hook prerouting" in op["text"] and "iifname @armed numgen random mod 10000 < 4000 drop" in op["text"]


def test_loss_of_every_packet_drops_without_a_chance_nft_would_refuse():
    [op] = ops("target: {node: a, interface: e0}\nloss: 100%")
    assert "numgen" not in op["text"] and "@armed  drop\n" in op["text"]  # `< 10000`: outside numgen's 0-9999


def test_an_ipv6_peer_and_hundredths_of_a_percent():
    [op] = ops("target: {node: a, interface: e0, peer: 'fd00::/64', protocol: tcp}\nloss: 0.01%")
    assert "oifname @armed ip6 daddr fd00::/64 meta l4proto tcp numgen random mod 10000 < 1 drop\n" in op["text"]


def test_the_lease_expires_in_the_kernel():
    """The set element times out with the lease: the rules stop matching even if
    every netkeel process is dead."""
    [op] = ops(f"{ON_A}loss: 5%", expires_ms=1234)
    assert 'elements = { "e0" timeout 1234ms }' in op["text"]


def test_duplicate_by_nftables_marks_its_copies():
    assert ops(f"{ON_A}duplicate: 10%\nloss: 5%") == [
        {"op": "nft", "ns": "p-a", "family": "inet", "table": TABLE,
         "text": f"table inet {TABLE} {{\n"
                 '  set armed { type ifname; flags timeout; elements = { "e0" timeout 60000ms } }\n'
                 "  chain egress { type filter hook postrouting priority -150; policy accept;\n"
                 "    oifname @armed numgen random mod 10000 < 500 drop\n"
                 "  }\n"
                 "}\n",
         "slot": ["p-a", "e0", "egress loss"]},
        {"op": "nft", "ns": "p-a", "family": "netdev", "table": TABLE,
         "text": f"table netdev {TABLE} {{\n"
                 '  set armed { type ifname; flags timeout; elements = { "e0" timeout 60000ms } }\n'
                 '  chain egress { type filter hook egress device "e0" priority 0; policy accept;\n'
                 f"    meta mark {DUP_MARK:#x} accept\n"
                 f'    oifname @armed numgen random mod 10000 < 1000 meta mark set {DUP_MARK:#x} dup to "e0"\n'
                 "  }\n"
                 "}\n",
         "slot": ["p-a", "e0", "duplication"]}]
    assert f"{DUP_MARK:#x}" == "0x4e4b0d00"


def test_a_partition_cuts_both_sides_from_each_other_both_ways():
    """Rules on both sides: a side reached under a translated address (a NAT on
    the way) is still cut."""
    both = ops("partition: {between: [[a, c], [b]]}")

    def table(v4, v6=""):
        sets = f"  set far4 {{ type ipv4_addr; flags timeout; elements = {{ {v4} }} }}\n"
        rules_out, rules_in = "    ip daddr @far4 drop\n", "    ip saddr @far4 drop\n"
        if v6:
            sets += f"  set far6 {{ type ipv6_addr; flags timeout; elements = {{ {v6} }} }}\n"
            rules_out, rules_in = rules_out + "    ip6 daddr @far6 drop\n", rules_in + "    ip6 saddr @far6 drop\n"
        return (f"table inet {TABLE} {{\n{sets}"
                f"  chain out {{ type filter hook output priority -150; policy accept;\n{rules_out}  }}\n"
                f"  chain in {{ type filter hook input priority -150; policy accept;\n{rules_in}  }}\n}}\n")
    side_a = table("10.0.0.2 timeout 60000ms, 10.0.1.2 timeout 60000ms", "fd00::2 timeout 60000ms")
    side_b = table("10.0.0.1 timeout 60000ms, 10.0.1.3 timeout 60000ms")
    assert both == [{"op": "nft", "ns": "p-a", "family": "inet", "table": TABLE, "text": side_a},
                    {"op": "nft", "ns": "p-c", "family": "inet", "table": TABLE, "text": side_a},
                    {"op": "nft", "ns": "p-b", "family": "inet", "table": TABLE, "text": side_b}]


@pytest.mark.parametrize("direction, a_chains, c_chains", [
    ("a-to-b", ["chain out"], ["chain in"]), ("b-to-a", ["chain in"], ["chain out"]),
    ("both", ["chain out", "chain in"], ["chain out", "chain in"])])
def test_a_partition_in_one_direction(direction, a_chains, c_chains):
    op_a, op_c = ops(f"partition: {{between: [[a], [c]], direction: {direction}}}")
    assert [c for c in ("chain out", "chain in") if c in op_a["text"]] == a_chains
    assert [c for c in ("chain out", "chain in") if c in op_c["text"]] == c_chains
    assert "set far4 { type ipv4_addr; flags timeout; elements = { 10.0.1.3 timeout 60000ms } }" in op_a["text"]
    assert "far6" not in op_a["text"]  # side B has no IPv6 address


@pytest.mark.parametrize("text, message", [
    ("target: {node: z, interface: e0}\nloss: 5%", "node z is not in the running lab (its nodes: a, b, c)"),
    ("target: {node: a, interface: e9}\nloss: 5%", "node a has no interface e9 (it has: e0)"),
    ("partition: {between: [[a], [z, y]]}", "node(s) not in the running lab: z, y (its nodes: a, b, c)"),
])
def test_what_the_lab_lacks(text, message):
    with pytest.raises(FaultError) as caught:
        ops(text)
    assert message in str(caught.value)


def test_a_partition_from_a_side_without_addresses():
    lab = Lab({"a": "p-a", "b": "p-b"}, {"p-a": {"lo"}, "p-b": {"lo"}}, {"p-a": [], "p-b": []})
    with pytest.raises(FaultError, match="b has no addresses: nothing to cut"):
        plan(fault("partition: {between: [[a], [b]]}"), HERE, lab, LEASE, 60_000)


# -- tc operations -----------------------------------------------------------------------------

def test_netem_composes_every_kind_into_one_qdisc():
    f = fault(f"{ON_A}delay: {{time: 500ms, jitter: 400ms, distribution: normal}}\nreorder: 50%\n"
              "duplicate: 1%\ncorrupt: 0.5%\nloss: 2%\nrate: 10mbit")
    assert ops(f"{ON_A}delay: {{time: 500ms, jitter: 400ms, distribution: normal}}\nreorder: 50%\n"
               "duplicate: 1%\ncorrupt: 0.5%\nloss: 2%\nrate: 10mbit", DISTRO) == [
        {"op": "netem", "ns": "p-a", "dev": "e0",
         "args": ["delay", "500ms", "400ms", "distribution", "normal", "reorder", "50%", "duplicate", "1%",
                  "corrupt", "0.5%", "loss", "2%", "rate", "10000000bit", "limit", "170000"]}]
    assert netem_args(f, ("delay",)) == ["delay", "500ms", "400ms", "distribution", "normal", "limit", "170000"]


def test_uniform_jitter_is_netems_default():
    assert netem_args(fault(f"{ON_A}delay: {{time: 50ms, jitter: 10ms}}"), ("delay",)) == [
        "delay", "50ms", "10ms", "limit", "8000"]


@pytest.mark.parametrize("delay, limit", [
    (None, 1000),                              # netem's own default, at least
    ("5ms", 1000),                             # 100,000 packets/s x 5 ms = 500: still 1000
    ("50ms", 5000),                            # 100,000 packets/s x 50 ms
    ("{time: 50ms, jitter: 10ms}", 8000),      # a packet may wait delay + 3 jitters
    ("{time: 500ms, jitter: 400ms}", 170_000),
    ("2s", 200_000),
])
def test_netem_limit_holds_what_the_delay_holds(delay, limit):
    f = fault(f"{ON_A}delay: {delay}" if delay else f"{ON_A}loss: 5%")
    kinds = ("delay",) if delay else ("loss",)
    assert netem_limit(f, kinds) == limit
    assert netem_args(f, kinds)[-2:] == ["limit", str(limit)]


@pytest.mark.parametrize("model, args", [
    ("{p: 1%, r: 10%}", ["1%", "10%"]),
    ("{p: 1%, r: 10%, h: 70%}", ["1%", "10%", "30%"]),
    ("{p: 1%, r: 10%, h: 70%, k: 99.9%}", ["1%", "10%", "30%", "0.1%"]),
    ("{p: 1%, r: 10%, k: 99%}", ["1%", "10%", "100%", "1%"]),   # h's default (0) written: positional
    ("{p: 0.5, r: 50, h: 0, k: 100}", ["0.5%", "50%", "100%", "0%"]),
])
def test_gilbert_elliott_arguments(model, args):
    """tc takes `gemodel p r 1-h 1-k` (tc-netem(8)); the file gives h and k, the
    chances of no loss in the bad and the good state."""
    f = fault(f"{ON_A}loss: {{percent: 5%, gilbert: {model}}}")
    assert netem_args(f, ("loss",)) == ["loss", "gemodel", *args, "limit", "1000"]


@pytest.mark.parametrize("rate, burst", [
    ("8kbit", 1600),           # at least one full frame
    ("1mbit", 1600),           # 10 ms is 1250 bytes: a frame is more
    ("10mbit", 12500),         # 10 ms worth of tokens
    ("1gbit", 1_250_000),
])
def test_tbf_arguments(rate, burst):
    f = fault(f"{ON_A}rate: {rate}")
    bits = f.impairment("rate").get("bits")
    assert tbf_args(f) == ["rate", f"{bits}bit", "burst", str(burst), "latency", "50ms"]


def test_rate_by_tbf_exactly():
    assert ops(f"{ON_A}rate: 10mbit") == [
        {"op": "tbf", "ns": "p-a", "dev": "e0", "args": ["rate", "10000000bit", "burst", "12500", "latency", "50ms"]}]


def test_ingress_goes_through_an_ifb():
    assert ops("target: {node: a, interface: e0, direction: ingress}\nrate: 10mbit") == [
        {"op": "ifb", "ns": "p-a", "dev": "e0", "ifb": IFB},
        {"op": "tbf", "ns": "p-a", "dev": IFB, "args": ["rate", "10000000bit", "burst", "12500", "latency", "50ms"]}]


def test_both_directions_shape_the_device_and_its_ifb():
    args = ["delay", "50ms", "10ms", "loss", "1%", "limit", "8000"]
    found = ops("target: {node: a, interface: e0, direction: both}\ndelay: {time: 50ms, jitter: 10ms}\nloss: 1%",
                DISTRO)
    assert found == [{"op": "netem", "ns": "p-a", "dev": "e0", "args": args},
                     {"op": "ifb", "ns": "p-a", "dev": "e0", "ifb": IFB},
                     {"op": "netem", "ns": "p-a", "dev": IFB, "args": args}]
    assert [describe(op) for op in found] == [
        "tc -n p-a qdisc add dev e0 root netem delay 50ms 10ms loss 1% limit 8000",
        f"ip -n p-a link add {IFB} type ifb; ip -n p-a link set {IFB} up; "
        "tc -n p-a qdisc add dev e0 handle ffff: ingress; tc -n p-a filter add dev e0 parent ffff: protocol all "
        f"u32 match u32 0 0 action mirred egress redirect dev {IFB}",
        f"tc -n p-a qdisc add dev {IFB} root netem delay 50ms 10ms loss 1% limit 8000"]


def test_nftables_and_a_qdisc_in_one_fault():
    found = ops(f"{ON_A}loss: 5%\nrate: 1mbit")
    assert [(op["op"], op.get("family")) for op in found] == [("nft", "inet"), ("tbf", None)]


# -- device operations ------------------------------------------------------------------------

@pytest.mark.parametrize("text, op", [
    ("mtu: 1280", {"op": "device", "ns": "p-a", "dev": "e0", "set": {"mtu": 1280}}),
    ("link_down: true", {"op": "device", "ns": "p-a", "dev": "e0", "set": {"state": "down"}}),
    ("flap: {period: 3s, down: 1s, cycles: 3}",
     {"op": "flap", "ns": "p-a", "dev": "e0", "period_ms": 3000.0, "down_ms": 1000.0, "cycles": 3}),
    ("flap: {period: 500ms, down: 100ms}",
     {"op": "flap", "ns": "p-a", "dev": "e0", "period_ms": 500.0, "down_ms": 100.0, "cycles": None}),
])
def test_device_operations(text, op):
    assert ops(f"{ON_A}{text}", frozenset()) == [op]


def test_an_mtu_under_1280_on_a_device_with_ipv6_state_is_refused():
    """The kernel takes IPv6 off a device under 1280 bytes and deletes its
    addresses, routes and conf settings: no revert brings them back (measured by
    a hostile review: drift after the fault's end). On a device without any, and at
    1280, the fault is planned."""
    held = Lab(LAB.namespaces, LAB.interfaces, LAB.addresses,
               ipv6={("p-a", "e0"): ["address fd00::1/64", "route ::/0"]})
    with pytest.raises(FaultError, match=r"an MTU of 1279 takes IPv6 off e0 in p-a: the kernel deletes its "
                                         r"address fd00::1/64, route ::/0 for good.*use 1280 or more"):
        plan(fault(f"{ON_A}mtu: 1279"), frozenset(), held, LEASE, 60_000)
    assert list(plan(fault(f"{ON_A}mtu: 1280"), frozenset(), held, LEASE, 60_000).operations) == [
        {"op": "device", "ns": "p-a", "dev": "e0", "set": {"mtu": 1280}}]
    assert ops(f"{ON_A}mtu: 1000", frozenset()) == [{"op": "device", "ns": "p-a", "dev": "e0", "set": {"mtu": 1000}}]


def test_descriptions_of_device_operations():
    device = {"op": "device", "ns": "p-a", "dev": "e0"}
    assert describe({**device, "set": {"mtu": 1280}}) == "ip -n p-a link set e0 mtu 1280"
    assert describe({**device, "set": {"state": "down"}}) == "ip -n p-a link set e0 down"
    assert describe({"op": "flap", "ns": "p-a", "dev": "e0", "period_ms": 3000.0, "down_ms": 1000.0,
                     "cycles": None}) == ("(keeper) ip -n p-a link set e0 down/up: every 3000ms, down 1000ms, "
                                          "until expiry")


def test_kinds_on_a_target():
    assert kinds_on(fault(f"{ON_A}loss: 5%\nmtu: 1280")) == {"loss", "mtu"}
    assert kinds_on(fault("partition: {between: [[a], [b]]}")) == set()


# -- conflicts between leases (chaos/engine.py) ---------------------------------------------------

@pytest.fixture
def leases(tmp_path):
    return Leases(StateDir(tmp_path / "state"))


def _lease(leases: Leases, name: str, operations: list, state: str = "active", **extra) -> Lease:
    lease = Lease(id=f"{name}-0000abcd", fault=name, file=f"faults/{name}.yaml", instance="lab@p-", prefix="p-",
                  text=f"{name} on a/e0", kinds=[], backends=[], operations=operations, started=1000.0,
                  expires=4e9, injector=1, keeper=0, state=state, **extra)
    leases.save(lease)
    return lease


def _conflict(leases, text, caps=DISTRO):
    f = fault(text, name="new")
    _check_conflicts(f, plan(f, caps, LAB, "new-0000beef", 60_000), leases)


@pytest.mark.parametrize("held, text, slot", [
    ({"op": "netem", "ns": "p-a", "dev": "e0", "args": []}, f"{ON_A}rate: 1mbit", "root qdisc"),
    ({"op": "tbf", "ns": "p-a", "dev": "e0", "args": []}, f"{ON_A}delay: 5ms", "root qdisc"),
    ({"op": "ifb", "ns": "p-a", "dev": "e0", "ifb": "nkifb00000000"},
     "target: {node: a, interface: e0, direction: ingress}\ndelay: 5ms", "ingress"),
    ({"op": "device", "ns": "p-a", "dev": "e0", "set": {"mtu": 1280}, "before": {"mtu": 1500}},
     f"{ON_A}mtu: 1400", "mtu"),
    ({"op": "device", "ns": "p-a", "dev": "e0", "set": {"state": "down"}, "before": {"state": "up"}},
     f"{ON_A}flap: {{period: 3s, down: 1s}}", "state"),
    ({"op": "flap", "ns": "p-a", "dev": "e0", "period_ms": 3000, "down_ms": 1000, "cycles": None},
     f"{ON_A}link_down: true", "state"),
])
def test_a_fault_never_silently_replaces_another(leases, held, text, slot):
    _refused(leases, held, text, slot, DISTRO)


@pytest.mark.parametrize("held, text, slot", [
    ({"op": "nft", "ns": "p-a", "family": "inet", "table": "netkeel_chaos_0000000000", "text": "",
      "slot": ["p-a", "e0", "egress loss"]}, f"{ON_A}loss: 5%", "egress loss"),
    ({"op": "nft", "ns": "p-a", "family": "netdev", "table": "netkeel_chaos_0000000000", "text": "",
      "slot": ["p-a", "e0", "duplication"]}, f"{ON_A}duplicate: 5%", "duplication"),
])
def test_loss_by_nftables_is_held_as_a_root_qdisc_would_be(leases, held, text, slot):
    """Two would compound (40% and 40% lose 64%) where each says 40%; with netem
    the second is refused for its root qdisc: without it, for its loss."""
    _refused(leases, held, text, slot, HERE)


def _refused(leases, held, text, slot, caps):
    _lease(leases, "old", [held])
    with pytest.raises(FaultError) as caught:
        _conflict(leases, text, caps)
    message = str(caught.value)
    assert caught.value.what == "conflict"
    assert f"fault new: e0 in p-a already has fault old on its {slot} (old on a/e0, " in message
    assert "s left): revert it first (chaos revert --fault old), or declare both in one fault file" in message


@pytest.mark.parametrize("held, text", [
    # nftables faults compose: each lease has its own table (a lease from before
    # loss held its device: none is held)
    ({"op": "nft", "ns": "p-a", "family": "inet", "table": "netkeel_chaos_0000000000", "text": ""},
     f"{ON_A}loss: 5%"),

    ({"op": "nft", "ns": "p-a", "family": "inet", "table": "netkeel_chaos_0000000000", "text": ""},
     "partition: {between: [[a], [b]]}"),
    # another device, another namespace
    ({"op": "netem", "ns": "p-b", "dev": "e0", "args": []}, f"{ON_A}delay: 5ms"),
    ({"op": "netem", "ns": "p-a", "dev": "e1", "args": []}, f"{ON_A}delay: 5ms"),
    # the MTU and the state of one device are separate
    ({"op": "device", "ns": "p-a", "dev": "e0", "set": {"mtu": 1280}, "before": {"mtu": 1500}},
     f"{ON_A}link_down: true"),
    # a qdisc on an ingress ifb is the ifb's, not the device's root
    ({"op": "netem", "ns": "p-a", "dev": "nkifb00000000", "args": []}, f"{ON_A}delay: 5ms"),
    # an egress qdisc and an ingress redirect share a device without sharing a slot
    ({"op": "netem", "ns": "p-a", "dev": "e0", "args": []},
     "target: {node: a, interface: e0, direction: ingress}\nrate: 1mbit"),
])
def test_faults_that_compose(leases, held, text):
    _lease(leases, "old", [held])
    _conflict(leases, text)


@pytest.mark.parametrize("slot, text", [
    (["p-a", "e0", "ingress loss"], f"{ON_A}loss: 5%"),  # loss one way and the other
    (["p-a", "e0", "duplication"], f"{ON_A}loss: 5%"),  # loss and duplication
    (["p-a", "e1", "egress loss"], f"{ON_A}loss: 5%"),  # another device
    (["p-a", "e0", "egress loss"], "partition: {between: [[a], [b]]}"),
])
def test_loss_by_nftables_composes_with_what_it_does_not_compound(leases, slot, text):
    _lease(leases, "old", [{"op": "nft", "ns": "p-a", "family": "inet", "table": "netkeel_chaos_0000000000",
                            "text": "", "slot": slot}])
    _conflict(leases, text, HERE)


def test_a_lease_still_injecting_holds_what_it_recorded(leases):
    """Operations are recorded before they are made: a half-made lease holds them too."""
    _lease(leases, "old", [{"op": "tbf", "ns": "p-a", "dev": "e0", "args": []}], state="injecting")
    with pytest.raises(FaultError, match="already has fault old on its root qdisc"):
        _conflict(leases, f"{ON_A}rate: 1mbit", HERE)


def test_the_first_conflict_is_named_among_several(leases):
    _lease(leases, "quiet", [{"op": "netem", "ns": "p-b", "dev": "e0", "args": []}])
    _lease(leases, "loud", [{"op": "device", "ns": "p-a", "dev": "e0", "set": {"mtu": 1280},
                             "before": {"mtu": 1500}}])
    with pytest.raises(FaultError, match="already has fault loud on its mtu"):
        _conflict(leases, f"{ON_A}mtu: 1400")


# -- the keeper's schedule (chaos/keeper.py) -------------------------------------------------------

FLAP = {"op": "flap", "ns": "p-a", "dev": "e0", "period_ms": 3000.0, "down_ms": 1000.0, "cycles": 3,
        "before": {"state": "up"}}


@pytest.mark.parametrize("t, expected", [
    (100.0, ("down", 101.0)),     # a flap starts with the link going down
    (100.999, ("down", 101.0)),
    (101.0, ("up", 103.0)),
    (102.5, ("up", 103.0)),
    (103.0, ("down", 104.0)),
    (106.5, ("down", 107.0)),
    (108.999, ("up", 109.0)),
    (109.0, ("up", None)),        # three cycles done: up, and nothing more to do
    (500.0, ("up", None)),
])
def test_flap_state(t, expected):
    state, next_at = flap_state(FLAP, 100.0, t)
    assert state == expected[0]
    assert next_at == pytest.approx(expected[1]) if expected[1] is not None else next_at is None


def test_flap_state_without_cycles_goes_on():
    op = {**FLAP, "cycles": None}
    assert flap_state(op, 100.0, 100_000.5) == ("down", pytest.approx(100_001.0))


class Clock:
    """Fake time: `sleep` moves it on (and may run a hook at a moment)."""

    def __init__(self, t: float):
        self.t = t
        self.hooks: list = []  # (at, fn), run once when time reaches `at`

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert 0 <= seconds <= keeper_module.NAP_S + 1e-9, f"a nap of {seconds} s"
        self.t += max(seconds, 1e-6)  # a real sleep takes a little time, however short
        for hook in [h for h in self.hooks if h[0] <= self.t]:
            self.hooks.remove(hook)
            hook[1]()


class FakeBackend:
    """Records device state changes and reverts, with the clock's time."""

    def __init__(self, clock: Clock, fail_at: float | None = None):
        self.clock = clock
        self.calls: list = []
        self.fail_at = fail_at

    def link_set(self, ns, dev, state=None, **_):
        if self.fail_at is not None and self.clock.t >= self.fail_at:
            raise KernelError(f"link set {dev} in {ns}", "No such device")
        self.calls.append((round(self.clock.t, 6), "link_set", ns, dev, state))

    def fault_revert(self, op):
        self.calls.append((round(self.clock.t, 6), "revert", op["op"], op.get("dev")))

    def fault_device_up(self, op):
        """Up, with what going down took along: the schedule sees a state change."""
        self.link_set(op["ns"], op["dev"], state="up")


@pytest.fixture
def state(tmp_path):
    return StateDir(tmp_path / "state")


def _keep_lease(state, operations, started=1000.0, duration=60.0, lease_state="active", injector=None):
    import os

    lease = Lease(id="flap-0000abcd", fault="flap", file="faults/flap.yaml", instance="lab@p-", prefix="p-",
                  text="flap", kinds=["flap"], backends=[["flap", "link"]], operations=operations,
                  started=started, expires=started + duration, injector=injector or os.getpid(),
                  keeper=os.getpid(), state=lease_state)
    Leases(state).save(lease)
    return lease


def test_keep_runs_the_flap_schedule_then_reverts(state):
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    _keep_lease(state, [FLAP], duration=10.0)
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "flap cycles done"
    assert backend.calls == [
        (1000.0, "link_set", "p-a", "e0", "down"),
        (1001.0, "link_set", "p-a", "e0", "up"),
        (1003.0, "link_set", "p-a", "e0", "down"),
        (1004.0, "link_set", "p-a", "e0", "up"),
        (1006.0, "link_set", "p-a", "e0", "down"),
        (1007.0, "link_set", "p-a", "e0", "up"),
        (1009.0, "revert", "flap", "e0"),          # cycles done (before the lease's 10 s): reverted
    ]
    assert Leases(state).load("flap-0000abcd") is None


def test_keep_wakes_exactly_at_each_transition_and_at_least_twice_a_second(state):
    clock = Clock(1000.0)
    naps: list = []
    real_sleep = clock.sleep

    def sleep(seconds):
        naps.append(seconds)
        real_sleep(seconds)

    _keep_lease(state, [{**FLAP, "period_ms": 700.0, "down_ms": 300.0, "cycles": 2}], duration=10.0)
    backend = FakeBackend(clock)
    keep(backend, state, "flap-0000abcd", now=clock.now, sleep=sleep)
    assert max(naps) <= 0.5
    assert [c[0] for c in backend.calls] == pytest.approx([1000.0, 1000.3, 1000.7, 1001.0, 1001.4])


def test_keep_reverts_at_expiry(state):
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    _keep_lease(state, [{**FLAP, "cycles": None}, {"op": "tbf", "ns": "p-a", "dev": "e1", "args": []}],
                duration=5.0)
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "expired"
    assert backend.calls == [
        (1000.0, "link_set", "p-a", "e0", "down"),
        (1001.0, "link_set", "p-a", "e0", "up"),
        (1003.0, "link_set", "p-a", "e0", "down"),
        (1004.0, "link_set", "p-a", "e0", "up"),
        (1005.0, "revert", "tbf", "e1"),           # last made, first undone
        (1005.0, "revert", "flap", "e0"),
    ]
    assert Leases(state).load("flap-0000abcd") is None


def test_keep_reverts_a_fault_without_a_schedule_at_expiry(state):
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    _keep_lease(state, [{"op": "netem", "ns": "p-a", "dev": "e0", "args": []}], duration=2.25)
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "expired"
    assert backend.calls == [(1002.25, "revert", "netem", "e0")]


def test_keep_leaves_when_the_lease_is_removed(state):
    """`chaos revert` (another process) took it away: the keeper touches nothing more."""
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    _keep_lease(state, [{**FLAP, "cycles": None}])
    clock.hooks.append((1002.2, lambda: Leases(state).remove("flap-0000abcd")))
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "reverted elsewhere"
    assert [c[1] for c in backend.calls] == ["link_set", "link_set"]  # down at 1000, up at 1001; no revert
    assert clock.t < 1003.0


def test_keep_keeps_its_hands_off_a_lease_being_reverted_and_finishes_one_whose_reverter_died(state):
    """While a revert holds the lease's lock, the keeper leaves the devices alone;
    a lease left "reverting" with its lock free lost its reverter half way (a
    second Ctrl-C, a kill): the keeper finishes it then, not at expiry (a flapping
    link stayed down for the fault's whole hour)."""
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    lease = _keep_lease(state, [{**FLAP, "cycles": None}], duration=60.0)
    reverter = ExitStack()

    def reverting():
        reverter.enter_context(Leases(state).locked(lease.id))
        lease.state = "reverting"
        Leases(state).save(lease)

    clock.hooks.append((1001.5, reverting))
    clock.hooks.append((1003.0, reverter.close))  # the reverter dies, its lock with it
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "its reverter died"
    assert backend.calls == [(1000.0, "link_set", "p-a", "e0", "down"), (1001.0, "link_set", "p-a", "e0", "up"),
                             (pytest.approx(1003.0, abs=0.051), "revert", "flap", "e0")]
    assert Leases(state).load(lease.id) is None


def test_keep_reverts_when_the_injector_died_while_injecting(state, monkeypatch):
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    _keep_lease(state, [{"op": "nft", "ns": "p-a", "family": "inet", "table": "t", "text": ""},
                        {"op": "tbf", "ns": "p-a", "dev": "e0", "args": []}], lease_state="injecting")
    monkeypatch.setattr(engine_module, "injector_alive", lambda lease: False)
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "injector died"
    assert backend.calls == [(1000.0, "revert", "tbf", "e0"), (1000.0, "revert", "nft", None)]
    assert Leases(state).load("flap-0000abcd") is None


def _finishes_then_exits(state, lease):
    """An injector_alive that sees the injector mark the lease active and exit
    between the reader's load of the lease and its look at the pid."""
    def injector_alive(seen):
        lease.state = "active"
        Leases(state).save(lease)
        return False
    return injector_alive


def test_keep_does_not_revert_a_fault_its_injector_finished_just_before_exiting(state, monkeypatch):
    """Found in CI under load: the keeper read "injecting", the injector marked the
    fault active and exited, and the keeper took its death for a half-made
    injection and reverted a fault in effect (`chaos revert` then found none)."""
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    lease = _keep_lease(state, [{"op": "tbf", "ns": "p-a", "dev": "e0", "args": []}], duration=5.0,
                        lease_state="injecting")
    monkeypatch.setattr(engine_module, "injector_alive", _finishes_then_exits(state, lease))
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "expired"
    assert backend.calls == [(1005.0, "revert", "tbf", "e0")]  # at its time, not at once


def test_expire_does_not_revert_a_fault_its_injector_finished_just_before_exiting(state, monkeypatch):
    """The same race met by another command's expiry pass."""
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    lease = _keep_lease(state, [{"op": "tbf", "ns": "p-a", "dev": "e0", "args": []}], duration=5.0,
                        lease_state="injecting")
    monkeypatch.setattr(engine_module, "injector_alive", _finishes_then_exits(state, lease))
    assert expire(backend, state, now=clock.now) == [] and backend.calls == []
    assert Leases(state).load(lease.id).state == "active"


def test_expire_names_a_revert_the_kernel_refuses_and_keeps_its_lease(state):
    """Each command tries again, and says so: it gave up without a word, and the
    fault seemed to hold the lab for no reason."""
    clock = Clock(1100.0)
    backend = FakeBackend(clock)

    def refuses(op):
        raise KernelError("tc qdisc del dev e0 root in p-a", "Operation not permitted")

    backend.fault_revert = refuses
    lease = _keep_lease(state, [{"op": "tbf", "ns": "p-a", "dev": "e0", "args": []}], duration=5.0)
    failures = []
    assert expire(backend, state, now=clock.now, failures=failures) == []
    assert failures == [(lease.id, "revert fault flap: tc qdisc del dev e0 root in p-a: Operation not permitted")]
    assert Leases(state).load(lease.id) is not None


def test_keep_waits_for_a_live_injector_then_keeps_the_schedule(state):
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    lease = _keep_lease(state, [FLAP], duration=10.0, lease_state="injecting")  # the injector: this process

    def injected():
        lease.state = "active"
        Leases(state).save(lease)

    clock.hooks.append((1000.2, injected))
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "flap cycles done"
    assert backend.calls[0][:2] == (pytest.approx(1000.2, abs=0.051), "link_set")
    assert [c[4] for c in backend.calls[:6]] == ["down", "up"] * 3


def test_keep_reverts_an_injection_that_never_finishes_at_expiry(state):
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    _keep_lease(state, [{"op": "tbf", "ns": "p-a", "dev": "e0", "args": []}], duration=1.0, lease_state="injecting")
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "expired"
    assert backend.calls == [(pytest.approx(1001.0, abs=0.051), "revert", "tbf", "e0")]


def test_keep_reverts_when_its_device_goes(state):
    clock = Clock(1000.0)
    backend = FakeBackend(clock, fail_at=1001.0)
    _keep_lease(state, [{**FLAP, "cycles": None}])
    why = keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep)
    assert why.startswith("stopped: ") and "No such device" in why
    assert backend.calls == [(1000.0, "link_set", "p-a", "e0", "down"), (1001.0, "revert", "flap", "e0")]
    assert Leases(state).load("flap-0000abcd") is None


def test_keep_reverts_on_sigterm(state):
    """The keeper's SIGTERM handler raises SystemExit: the fault goes with it."""
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    _keep_lease(state, [{**FLAP, "cycles": None}])

    def terminated():
        raise SystemExit(143)

    clock.hooks.append((1001.5, terminated))
    with pytest.raises(SystemExit):
        keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep)
    assert backend.calls[-1] == (1001.5, "revert", "flap", "e0")
    assert Leases(state).load("flap-0000abcd") is None


def test_keep_with_no_lease_at_all(state):
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    assert keep(backend, state, "flap-0000abcd", now=clock.now, sleep=clock.sleep) == "reverted elsewhere"
    assert backend.calls == []


def test_the_ipv6_state_an_mtu_under_1280_would_delete_is_found_per_device():
    from toolkit.chaos.engine import _ipv6_held
    from toolkit.core.resource import Resource

    assert _ipv6_held(Resource.make("addr", ("p-a", "e0", "fd00::1/64"))) == ("e0", "address fd00::1/64")
    assert _ipv6_held(Resource.make("addr", ("p-a", "e0", "fe80::1/64"))) is None  # comes back by itself
    assert _ipv6_held(Resource.make("addr", ("p-a", "e0", "10.0.0.1/24"))) is None
    assert _ipv6_held(Resource.make("route", ("p-a", "::/0", 1024), via="fd00::2", dev="e0")) == ("e0", "route ::/0")
    assert _ipv6_held(Resource.make("route", ("p-a", "0.0.0.0/0", 0), via="10.0.0.2", dev="e0")) is None
    assert _ipv6_held(Resource.make("sysctl", ("p-a", "net.ipv6.conf.e0.forwarding"), value="1")) == (
        "e0", "sysctl net.ipv6.conf.e0.forwarding")
    assert _ipv6_held(Resource.make("sysctl", ("p-a", "net.ipv6.conf.all.forwarding"), value="1")) is None


@pytest.mark.parametrize("ms, text", [(60_000, "60000ms"), (99_999_999, "99999999ms"), (10 ** 8, "1d3h46m40s0ms"),
                                      (7 * 86_400_000, "7d0ms"), (108_000_000, "1d6h0ms")])
def test_long_timeouts_are_written_unit_by_unit_as_nft_reads_them(ms, text):
    """nft refuses 100000000ms ("value too large"; a 30-hour fault failed to inject)."""
    from toolkit.chaos.plan import nft_time
    assert nft_time(ms) == text


def test_any_command_finishes_a_revert_whose_reverter_died_and_leaves_one_under_way_alone(state, monkeypatch):
    from toolkit.chaos import engine

    monkeypatch.setattr(engine, "_stop_keeper", lambda lease: None)
    clock = Clock(1000.0)
    backend = FakeBackend(clock)
    lease = _keep_lease(state, [{**FLAP, "cycles": None}], duration=3600.0, lease_state="reverting")
    with Leases(state).locked(lease.id):  # a revert under way (another process, in life)
        assert engine.expire(backend, state, now=clock.now) == [] and backend.calls == []
    assert engine.expire(backend, state, now=clock.now) == [lease.id]  # its lock is free: it died half way
    assert backend.calls == [(1000.0, "revert", "flap", "e0")] and Leases(state).load(lease.id) is None


@pytest.mark.parametrize("change", [
    {"operations": [{"op": "nft"}]},              # a revert met KeyError 'ns' half way (a traceback in every command)
    {"operations": [{"op": "nft", "ns": "p-a"}]},
    {"operations": [{"op": "tbf", "ns": "p-a"}]},
    {"operations": "x"},
    {"expires": "soon"},                          # TypeError in status, drift and doctor
    {"expires": float("nan")},                    # taken as no lease at all, silently
    {"state": "sleeping"},
    {"claims": [["p-a"]]},
    {"surprise": 1},
])
def test_a_damaged_lease_is_reported_with_its_file_never_used(state, change):
    import json

    lease = _keep_lease(state, [{**FLAP}])
    path = state.path("leases", f"{lease.id}.json")
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(ValueError, match=f"lease {lease.id} is damaged: "):
        Leases(state).load(lease.id)
    found, problems = Leases(state).all()
    assert found == [] and len(problems) == 1 and problems[0].startswith(f"{path}: lease {lease.id} is damaged")


@pytest.mark.parametrize("restore", [{"routes": [["x"]]}, {"addrs": [5]}, {"routes": [["10.0.0.0/8", "1", "", None]]},
                                     "everything"])
def test_a_lease_whose_record_of_what_went_down_is_damaged_is_damaged(state, restore):
    """A route record that cannot be unpacked passed the schema, then every command
    raised a traceback reading the fault's claims, and a revert stopped half way."""
    import json

    lease = _keep_lease(state, [{**FLAP, "restore": {"addrs": [], "routes": []}}])
    assert Leases(state).load(lease.id) is not None  # the shape the code writes
    path = state.path("leases", f"{lease.id}.json")
    data = json.loads(path.read_text())
    data["operations"][0]["restore"] = restore
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="is damaged"):
        Leases(state).load(lease.id)


def test_ipv6_state_another_fault_holds_away_and_a_bridges_own_count_for_an_mtu_under_1280(state):
    """From a review: with a link_down holding up0's IPv6 away, an MTU fault of 1279
    on up0 passed (nothing IPv6 was there to see) and the link_down's revert then
    failed; a port's MTU under 1280 took its bridge's IPv6 address for good."""
    from toolkit.chaos.engine import Instance, _with_held_away
    from toolkit.core.resource import Resource

    _keep_lease(state, [{"op": "device", "ns": "p-a", "dev": "e0", "set": {"state": "down"},
                         "before": {"state": "up"},
                         "restore": {"addrs": ["fd00::1/64"], "routes": [["fd00:9::/64", 1024, "fd00::9", None]]}}])
    live = [Resource.make("link", ("p-b", "port1"), master="br0"), Resource.make("link", ("p-b", "br0"))]
    held = _with_held_away({("p-b", "br0"): ["address fd00:50::99/64"]}, live, state,
                           Instance(id="lab@p-", topology="lab", prefix="p-"))
    assert held[("p-a", "e0")] == ["address fd00::1/64 (held away by fault flap)",
                                   "route fd00:9::/64 (held away by fault flap)"]
    assert held[("p-b", "port1")] == ["address fd00:50::99/64 on bridge br0"]
