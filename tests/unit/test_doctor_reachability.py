"""The reachability and routing checks' pure parts: the routing walk over a fake
network (where it goes, where and why it stops), the link layer (veth pairs,
bridges, EUI-64 link-local gateways), the manifest's intent for the shipped
two-clients lab, rp_filter's verdict on a return path, and the icmp_sweep
agent spec."""

from __future__ import annotations

import errno
import ipaddress
import json
import textwrap
from pathlib import Path

import pytest

from toolkit.doctor.checks import reachability as R
from toolkit.doctor.checks import routing
from toolkit.doctor.checks.reachability import Fabric, Port, walk
from toolkit.experiment import agent
from toolkit.manifest import load_topology

REPO = Path(__file__).resolve().parents[2]


def port(node, name, peer=None, addresses=(), up=True, kind="veth", master=None, mac=None):
    return Port(node, name, kind, peer, master, up, tuple(ipaddress.ip_interface(a) for a in addresses), mac)


def pair(a, a_if, a_addr, b, b_if, b_addr, up=(True, True)):
    """The two ends of a veth, with their addresses."""
    return [port(a, a_if, (b, b_if), a_addr, up[0]), port(b, b_if, (a, a_if), b_addr, up[1])]


class FakeNet:
    """A network for the walk: routes by (node, dst), forwarding off by node,
    kernel refusals by (node, iif) for strict lookups; local addresses from the ports."""

    def __init__(self, ports, routes, off=None, refuse=None):
        self.fabric = Fabric(ports)
        self.routes = routes
        self.off = off or {}
        self.refuse = refuse or {}
        self.calls = []

    def route(self, node, dst, src=None, iif=None):
        self.calls.append((node, dst, src, iif))
        if iif is not None and (node, iif) in self.refuse:
            return self.refuse[(node, iif)]
        if self.local(node, dst):
            return {"dev": "lo", "gateway": None, "src": dst, "type": "local"}
        return self.routes.get((node, dst))

    def forwarding(self, node, family, iif):
        return self.off.get(node, "")

    def local(self, node, address):
        return any(n == node for n, _ in self.fabric.owners(address))


def via(dev, gateway=None, src=None):
    return {"dev": dev, "gateway": gateway, "src": src, "type": "unicast"}


# a -- r -- b, each link a /24
LINE = pair("a", "eth0", ["10.0.1.2/24"], "r", "r_a", ["10.0.1.1/24"]) + \
    pair("r", "r_b", ["10.0.2.1/24"], "b", "eth0", ["10.0.2.2/24"])
LINE_ROUTES = {("a", "10.0.2.2"): via("eth0", "10.0.1.1", "10.0.1.2"),
               ("r", "10.0.2.2"): via("r_b"),
               ("b", "10.0.1.2"): via("eth0", "10.0.2.1", "10.0.2.2"),
               ("r", "10.0.1.2"): via("r_a")}


def test_walk_through_a_router_arrives_with_hops_and_source():
    w = walk(FakeNet(LINE, LINE_ROUTES), "a", "10.0.2.2")
    assert w.reached and w.src == "10.0.1.2"
    assert [(h.node, h.iif, h.oif) for h in w.hops] == [("a", None, "eth0"), ("r", "r_a", "r_b"), ("b", "eth0", None)]
    assert w.text() == "a[eth0] -> [r_a]r[r_b] -> [eth0]b"


def test_forwarding_off_stops_at_the_router_naming_the_sysctl():
    w = walk(FakeNet(LINE, LINE_ROUTES, off={"r": "net.ipv4.ip_forward = 0"}), "a", "10.0.2.2")
    assert not w.reached
    assert (w.cause, w.node, w.iface, w.detail) == ("forwarding", "r", "r_a", "net.ipv4.ip_forward = 0")
    assert w.text().endswith("[r_a]r stops (forwarding: net.ipv4.ip_forward = 0)")


def test_no_route_at_the_router():
    routes = {k: v for k, v in LINE_ROUTES.items() if k != ("r", "10.0.2.2")}
    w = walk(FakeNet(LINE, routes), "a", "10.0.2.2")
    assert (w.reached, w.cause, w.node) == (False, "no-route", "r")


def test_a_gateway_nobody_on_the_segment_has():
    routes = dict(LINE_ROUTES)
    routes[("a", "10.0.2.2")] = via("eth0", "10.0.1.99", "10.0.1.2")
    w = walk(FakeNet(LINE, routes), "a", "10.0.2.2")
    assert (w.cause, w.node, w.iface, w.nexthop) == ("no-neighbour", "a", "eth0", "10.0.1.99")
    assert w.hops == ()


def test_a_down_peer_is_a_down_link():
    ports = pair("a", "eth0", ["10.0.1.2/24"], "r", "r_a", ["10.0.1.1/24"], up=(True, False)) + LINE[2:]
    w = walk(FakeNet(ports, LINE_ROUTES), "a", "10.0.2.2")
    assert (w.cause, w.node) == ("link-down", "a")
    assert "r/r_a" in w.detail


def test_a_routing_loop_is_found():
    ports = pair("a", "eth0", ["10.0.1.2/24"], "r", "r_a", ["10.0.1.1/24"]) + \
        pair("r", "r_s", ["10.0.9.1/30"], "s", "s_r", ["10.0.9.2/30"])
    routes = {("a", "192.0.2.1"): via("eth0", "10.0.1.1"), ("r", "192.0.2.1"): via("r_s", "10.0.9.2"),
              ("s", "192.0.2.1"): via("s_r", "10.0.9.1")}
    w = walk(FakeNet(ports, routes), "a", "192.0.2.1")
    assert w.cause == "loop"
    assert "r -> s -> r" in w.detail


def test_too_many_hops():
    ports, routes = [], {}
    for i in range(R.MAX_HOPS + 5):
        ports += pair(f"n{i}", "right", [f"10.{i}.0.1/30"], f"n{i + 1}", "left", [f"10.{i}.0.2/30"])
        routes[(f"n{i}", "192.0.2.1")] = via("right", f"10.{i}.0.2")
    w = walk(FakeNet(ports, routes), "n0", "192.0.2.1")
    assert (w.reached, w.cause, len(w.hops)) == (False, "too-long", R.MAX_HOPS)


def test_strict_walk_names_rp_filter_where_the_kernel_refuses_the_source():
    refused = {"error": "Invalid argument", "errno": errno.EINVAL, "errno_name": "EINVAL"}
    net = FakeNet(LINE, LINE_ROUTES, refuse={("b", "eth0"): refused})
    assert walk(net, "a", "10.0.2.2").reached  # without the packet's source and interface, it arrives
    w = walk(net, "a", "10.0.2.2", strict=True)
    assert (w.cause, w.node, w.iface) == ("rp_filter", "b", "eth0")
    assert ("b", "10.0.2.2", "10.0.1.2", "eth0") in net.calls  # asked with the packet's source and interface


def test_strict_walk_reads_ehostunreach_as_forwarding_when_the_sysctl_says_so():
    refused = {"error": "No route to host", "errno": errno.EHOSTUNREACH, "errno_name": "EHOSTUNREACH"}
    net = FakeNet(LINE, LINE_ROUTES, refuse={("r", "r_a"): refused})
    w = walk(net, "a", "10.0.2.2", strict=True)
    assert (w.cause, w.node) == ("route-type", "r")  # forwarding on: an unreachable route


def test_bridge_segment_leads_to_the_node_holding_the_gateway():
    ports = [port("h", "eth0", ("sw", "p_h"), ["192.168.1.10/24"]),
             port("sw", "p_h", ("h", "eth0"), master="br0"),
             port("sw", "br0", kind="bridge"),
             port("sw", "p_x", ("x", "eth0"), master="br0"),
             port("x", "eth0", ("sw", "p_x"), ["192.168.1.20/24"]),
             port("sw", "p_g", ("g", "lan"), master="br0"),
             port("g", "lan", ("sw", "p_g"), ["192.168.1.1/24"])]
    fabric = Fabric(ports)
    endpoints, down = fabric.segment("h", "eth0")
    assert endpoints == [("g", "lan"), ("sw", "br0"), ("x", "eth0")] and down == []
    assert fabric.next_hop("h", "eth0", "192.168.1.1") == (("g", "lan"), [])
    net = FakeNet(ports, {("h", "10.9.9.9"): via("eth0", "192.168.1.1"), ("g", "10.9.9.9"): None})
    w = walk(net, "h", "10.9.9.9")
    assert (w.cause, w.node, [h.node for h in w.hops]) == ("no-route", "g", ["h"])


def test_ipv6_link_local_gateway_found_by_its_eui64_mac():
    ports = [port("h", "eth0", ("g", "lan"), ["fd00::10/64"], mac="02:00:00:00:00:10"),
             port("g", "lan", ("h", "eth0"), ["fd00::1/64"], mac="52:54:00:12:34:56")]
    fabric = Fabric(ports)
    assert fabric.next_hop("h", "eth0", "fe80::5054:ff:fe12:3456")[0] == ("g", "lan")


def test_a_masqueraded_reply_goes_to_the_nat_node_and_on_to_the_client():
    net = FakeNet(LINE, {**LINE_ROUTES, ("b", "10.0.2.1"): via("eth0")})
    back = walk(net, "b", "10.0.2.1", src="10.0.2.2", rewrite={"r": "10.0.1.2"})
    assert back.reached
    assert [(h.node, h.dst) for h in back.hops] == [("b", "10.0.2.1"), ("r", "10.0.1.2"), ("a", "10.0.1.2")]


# --- the manifest's intent -----------------------------------------------------------------

@pytest.fixture(scope="module")
def two_clients():
    return load_topology(REPO / "topologies" / "two-clients.yaml")


def test_intent_of_the_two_clients_lab(two_clients):
    net = R.ManifestNetwork(two_clients)
    found = {(p.source, p.target): R.intend(net, p) for p in R.pairs_of(two_clients)}
    verdicts = {k: i.verdict for k, i in found.items()}
    assert verdicts == {
        ("ns_client1", "10.0.1.1"): R.REACHABLE, ("ns_client1", "10.0.2.1"): R.REACHABLE,
        ("ns_client1", "10.0.2.2"): R.REACHABLE,
        ("ns_server", "10.0.1.2"): R.REACHABLE, ("ns_server", "10.0.2.2"): R.REACHABLE,
        ("ns_client2", "10.0.1.1"): R.REACHABLE, ("ns_client2", "10.0.2.1"): R.REACHABLE,
        ("ns_client2", "10.0.1.2"): R.POLICY}
    blocked = found[("ns_client2", "10.0.1.2")]
    assert (blocked.blocked.node, blocked.blocked.result.chain, blocked.direction) == ("ns_server", "forward", "there")
    masqueraded = found[("ns_client1", "10.0.2.2")]
    assert masqueraded.reply_to == "10.0.2.1" and masqueraded.rewrite == (("ns_server", "10.0.1.2"),)
    assert masqueraded.back.text() == "ns_client2[veth_c2] -> [veth_srv_c2]ns_server[veth_srv_c1] -> [veth_c1]ns_client1"


def test_forwarding_off_in_the_manifest_makes_the_pair_unrouted(tmp_path):
    text = (REPO / "topologies" / "two-clients-plain.yaml").read_text().replace(
        "net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 0")
    (tmp_path / "t.yaml").write_text(text)
    topology = load_topology(tmp_path / "t.yaml")
    net = R.ManifestNetwork(topology)
    pairs = {(p.source, p.target): p for p in R.pairs_of(topology)}
    intent = R.intend(net, pairs[("ns_client1", "10.0.2.2")])
    assert intent.verdict == R.ROUTING and intent.forward.cause == "forwarding"
    assert R.intend(net, pairs[("ns_client1", "10.0.2.1")]).verdict == R.REACHABLE  # the router itself


STATEFUL = """\
    description: forwards new connections from b's side, and established traffic
    tables:
      filter:
        family: inet
        chains:
          forward:
            hook: forward
            policy: drop
            rules:
              - {ct_state: [established, related], action: accept}
              - {ct_state: [invalid], action: drop}
              - {saddr: 10.0.4.0/24, ct_state: [new], action: accept}
"""

# a and b, each on both routers; a's default is r1, b's is r2 (stateful)
SQUARE = """\
    name: square
    nodes:
      a:
        routes: [{to: default, via: 10.0.1.1}]
      b:
        routes: [{to: default, via: 10.0.4.1}]
      r1:
        sysctls: {net.ipv4.ip_forward: 1}
        routes: [{to: 10.0.4.0/24, via: 10.0.2.2}]
      r2:
        sysctls: {net.ipv4.ip_forward: 1}
        policies: [stateful.yaml]
        routes: [{to: 10.0.1.0/24, via: 10.0.3.2}]
    links:
      - endpoints: [{node: a, interface: eth0, addresses: [10.0.1.2/24]}, {node: r1, interface: a0, addresses: [10.0.1.1/24]}]
      - endpoints: [{node: b, interface: eth0, addresses: [10.0.2.2/24]}, {node: r1, interface: b0, addresses: [10.0.2.1/24]}]
      - endpoints: [{node: a, interface: eth1, addresses: [10.0.3.2/24]}, {node: r2, interface: a0, addresses: [10.0.3.1/24]}]
      - endpoints: [{node: b, interface: eth1, addresses: [10.0.4.2/24]}, {node: r2, interface: b0, addresses: [10.0.4.1/24]}]
"""


def test_a_reply_through_a_stateful_router_that_never_saw_the_request_is_invalid_there(tmp_path):
    (tmp_path / "stateful.yaml").write_text(textwrap.dedent(STATEFUL))
    (tmp_path / "square.yaml").write_text(textwrap.dedent(SQUARE))
    topology = load_topology(tmp_path / "square.yaml")
    net = R.ManifestNetwork(topology)
    pairs = {(p.source, p.target): p for p in R.pairs_of(topology)}
    # a -> b: the request goes by r1, b's reply by r2, which never saw the request: invalid there, dropped
    intent = R.intend(net, pairs[("a", "10.0.2.2")])
    assert (intent.verdict, intent.direction, intent.blocked.node) == (R.POLICY, "back", "r2")
    assert intent.blocked.result.index == 1  # ct state invalid drop
    assert intent.back.text() == "b[eth1] -> [b0]r2[a0] -> [eth1]a"
    # b -> a: the request passes r2 as new from 10.0.4.0/24; the reply goes by r1 (no firewall)
    assert R.intend(net, pairs[("b", "10.0.1.2")]).verdict == R.REACHABLE


# --- firewalls along a path and rp_filter ------------------------------------------------------

class FakeLive:
    def __init__(self, local=(), modes=None, routes=None):
        self._local, self.modes, self.routes = set(local), modes or {}, routes or {}

    def local(self, node, address):
        return (node, address) in self._local

    def rp_filter(self, node, iif):
        return self.modes.get((node, iif), 0)

    def route(self, node, dst, src=None, iif=None):
        return self.routes.get((node, dst))


def test_rp_filter_strict_drops_what_comes_in_where_the_route_back_does_not_leave():
    live = FakeLive(modes={("a", "bk"): 1, ("a", "eth0"): 1}, routes={("a", "10.0.2.2"): via("eth0", "10.0.1.1")})
    problem = routing.rp_problem(live, "a", "bk", "10.0.2.2")
    assert problem["mode"] == 1 and problem["back"]["dev"] == "eth0"
    assert routing.rp_problem(live, "a", "eth0", "10.0.2.2") is None     # arrives where the route leaves
    assert routing.rp_problem(FakeLive(), "a", "bk", "10.0.2.2") is None  # rp_filter off


def test_rp_filter_loose_needs_only_some_route_back():
    live = FakeLive(modes={("a", "bk"): 2}, routes={("a", "10.0.2.2"): via("eth0")})
    assert routing.rp_problem(live, "a", "bk", "10.0.2.2") is None
    assert routing.rp_problem(live, "a", "bk", "192.0.2.9")["back"] is None


def test_symmetric_paths_compare_interface_for_interface():
    net = FakeNet(LINE, LINE_ROUTES)
    there, back = walk(net, "a", "10.0.2.2"), walk(net, "b", "10.0.1.2")
    assert routing.symmetric(there, back)
    ports = LINE + pair("a", "bk", ["10.0.5.1/30"], "b", "bk", ["10.0.5.2/30"])
    net = FakeNet(ports, {**LINE_ROUTES, ("b", "10.0.1.2"): via("bk", "10.0.5.1")})
    assert not routing.symmetric(walk(net, "a", "10.0.2.2"), walk(net, "b", "10.0.1.2"))


def test_pairs_are_every_other_nodes_addresses_loopbacks_included(tmp_path):
    text = textwrap.dedent("""\
        name: pairs
        nodes:
          a: {}
          b:
            loopback: {addresses: [192.0.2.1/32, "2001:db8::1/128"]}
          c: {}
        links:
          - endpoints: [{node: a, interface: e0, addresses: [10.0.0.1/24]}, {node: b, interface: e0, addresses: [10.0.0.2/24]}]
          - endpoints: [{node: b, interface: e1, addresses: [10.0.9.1/24]}, {node: c, interface: e0, addresses: [10.0.9.2/24]}]
        """)
    (tmp_path / "pairs.yaml").write_text(text)
    topology = load_topology(tmp_path / "pairs.yaml")
    found = {(p.source, p.target, p.owner, p.iface) for p in R.pairs_of(topology)}
    assert ("a", "192.0.2.1", "b", "lo") in found and ("c", "2001:db8::1", "b", "lo") in found
    assert not any(source == owner for source, _, owner, _ in found)
    assert len(found) == 5 + 2 + 5  # a: b's four and c's one; b: a's and c's; c: b's four and a's


# --- the agent's icmp_sweep spec ----------------------------------------------------------------

def spec(**fields):
    base = {"mode": "icmp_sweep", "targets": ["10.0.0.1", "fd00::1"], "count": 3, "interval_ms": 0.5,
            "timeout_ms": 500, "deadline": 1e10}
    return [json.dumps({**base, **fields})]


def test_icmp_sweep_spec_accepted_and_refused():
    assert agent.parse(spec())["targets"] == ["10.0.0.1", "fd00::1"]
    for bad in ({"targets": []}, {"targets": ["10.0.0.300"]}, {"targets": "10.0.0.1"}, {"count": 0},
                {"timeout_ms": 0}, {"targets": ["10.0.0.1"] * (agent.MAX_TARGETS + 1)}):
        with pytest.raises(agent.SpecError):
            agent.parse(spec(**bad))


def test_sweep_median():
    assert agent.median([3.0, 1.0, 2.0]) == 2.0
    assert agent.median([4.0, 1.0, 2.0, 3.0]) == 2.5
