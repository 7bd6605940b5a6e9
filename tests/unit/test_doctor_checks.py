"""The doctor's checks (mtu, duplicates, gateways, conntrack), their probe program
and the kernel decoders they read through, without root: labs are the
manifests' desired state read as if live (MACs made up), probes and kernel
reads replaced by canned answers."""

from __future__ import annotations

import ipaddress
import socket
import struct
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from toolkit.core.owners import FOREIGN
from toolkit.core.resource import Resource
from toolkit.doctor import probe
from toolkit.doctor.checks import conntrack, duplicates, gateways, mtu
from toolkit.doctor.context import Context
from toolkit.kernel import inspect
from toolkit.vrrp import packet
from toolkit.kinds.addr import KIND as ADDR
from toolkit.kinds.link import KIND as LINK
from toolkit.kinds.nft_table import KIND as NFT_TABLE
from toolkit.kinds.route import KIND as ROUTE
from toolkit.manifest import load_topology
from toolkit.runtime.engine import Reconciler
from toolkit.state import StateDir

PREFIX = "t-"


class FakeKernel:
    """What the checks ask the backend: canned tables; no route lookups (the checks
    fall back to the live routes)."""

    def __init__(self, neighbours=None, flags=None, conntrack_reads=None, forwarding=None):
        self.neighbours, self.flags = neighbours or {}, flags or {}
        self.conntrack_reads = conntrack_reads or {}
        self.forwarding = forwarding

    def route_get(self, ns, dst, src=None, iif=None):
        raise NotImplementedError

    def sysctl_value(self, ns, name):
        if self.forwarding is None:
            raise NotImplementedError
        return "1" if ns[len(PREFIX):] in self.forwarding else "0"

    def neighbour_entries(self, ns):
        return self.neighbours.get(ns[len(PREFIX):], [])

    def address_flags(self, ns):
        return self.flags.get(ns[len(PREFIX):], [])

    def conntrack_entries(self, ns):
        reads = self.conntrack_reads.get(ns[len(PREFIX):], [[]])
        return reads.pop(0) if len(reads) > 1 else reads[0]


def mac_of(ns, ifname) -> str:
    digest = abs(hash((ns, ifname))) % (1 << 40)
    return "02:" + ":".join(f"{(digest >> (8 * i)) & 0xFF:02x}" for i in range(5))


def lab(path, kernel=None, extra=(), drop=(), change=None) -> Context:
    """The manifest's desired state as the live state (links with MACs), plus `extra`
    resources, less those whose key is in `drop`; `change(resource)` may rewrite one."""
    topology = load_topology(str(path))
    rec = Reconciler(topology, None, StateDir("/nonexistent-doctor-test"), prefix=PREFIX)
    live = []
    for r in sorted(rec.desired):
        if r.key in drop:
            continue
        if r.kind == LINK.name and r.get("kind") != "loopback":
            r = r.with_fields(mac=mac_of(*r.key))
        if change is not None:
            r = change(r)
        live.append(r)
    live.extend(extra)
    return Context(topology, PREFIX, kernel or FakeKernel(), live=live)


def write(tmp_path, name, text) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# -- the probe program's pure parts ------------------------------------------------------
def test_sweep_finds_a_path_mtu_the_lab_has_in_few_probes():
    s = probe.Sweep("10.0.2.2", 1500, candidates=[1500, 1400, 9000])
    outcomes = {576: "ok", 1500: "lost", 1400: "ok", 1401: "lost"}
    while (size := s.next_size()) is not None:
        s.outcome(size, outcomes[size])
    r = s.result()
    assert (r["path_mtu"], r["exact"], r["reachable"]) == (1400, True, True)
    assert [p[0] for p in r["probes"]] == [576, 1500, 1400, 1401]
    assert r["silent"] == [1500, 1401] and r["ptb"] == []


def test_sweep_trusts_the_mtu_a_router_names():
    s = probe.Sweep("10.0.2.2", 1500)
    s.outcome(s.next_size(), "ok", rtt_ms=0.1)
    s.outcome(s.next_size(), "ptb", ptb_from="10.0.1.1", ptb_mtu=1280)
    assert s.next_size() == 1280
    s.outcome(1280, "ok")
    assert s.next_size() is None
    assert s.result()["path_mtu"] == 1280 and s.result()["ptb"] == [{"from": "10.0.1.1", "mtu": 1280}]


@pytest.mark.parametrize("pmtu", [577, 1000, 1234, 1499])
def test_sweep_bisects_within_its_bound(pmtu):
    s = probe.Sweep("10.0.2.2", 1500)
    while (size := s.next_size()) is not None:
        s.outcome(size, "ok" if size <= pmtu else "lost")
    r = s.result()
    assert len(r["probes"]) <= probe.MAX_PROBES
    assert r["path_mtu"] <= pmtu <= r["upper"] and r["upper"] - r["path_mtu"] <= 8


def test_sweep_of_an_unreachable_destination_stops_at_once():
    s = probe.Sweep("fd00::2", 1500)
    assert s.next_size() == 1280  # the IPv6 minimum
    s.outcome(1280, "lost")
    assert s.next_size() is None and s.result()["reachable"] is False


def test_echo_request_is_the_size_asked_with_a_valid_checksum():
    packet = probe.echo_request(4, 0x1234, 7, 1400)
    assert len(packet) == 1400 - 20
    assert probe._checksum(packet) == 0
    assert struct.unpack("!BBHHH", packet[:8])[3:] == (0x1234, 7)
    assert len(probe.echo_request(6, 1, 1, 1280)) == 1280 - 40


def test_arp_request_and_answers():
    mac = bytes.fromhex("020000000001")
    frame = packet.who_has(mac, "0.0.0.0", "10.0.3.2")
    assert len(frame) == 60 and frame[:6] == b"\xff" * 6 and frame[38:42] == socket.inet_aton("10.0.3.2")
    assert frame[28:32] == b"\0\0\0\0"  # an RFC 5227 probe: nobody learns an entry from it
    answers = {"10.0.3.2": []}
    reply = bytearray(frame)
    reply[20:22] = struct.pack("!H", 2)
    reply[22:28] = bytes.fromhex("02000000aaaa")
    reply[28:32] = socket.inet_aton("10.0.3.2")
    packet.arp_answer(bytes(reply), answers)
    packet.arp_answer(bytes(reply), answers)
    packet.arp_answer(frame, answers)  # a request is no answer
    assert answers == {"10.0.3.2": ["02:00:00:00:aa:aa"]}


# -- kernel decoders ----------------------------------------------------------------------
def test_address_flags_are_decoded_from_ifa_flags():
    def nla(kind, value):
        return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)

    body = struct.pack("=BBBBI", socket.AF_INET6, 64, 0x40, 0, 3) \
        + nla(inspect.IFA_ADDRESS, socket.inet_pton(socket.AF_INET6, "fd00::1")) \
        + nla(inspect.IFA_FLAGS, struct.pack("=I", 0x08 | 0x40 | 0x80))
    entry = inspect.decode_address(body, {3: "eth0"})
    assert entry == {"dev": "eth0", "address": "fd00::1", "prefixlen": 64, "family": 6,
                     "flags": ["dadfailed", "tentative", "permanent"]}
    assert inspect.state_name(0x04) == "stale" and inspect.state_name(0) == "none"


def test_conntrack_entry_as_a_plain_dict():
    tup = SimpleNamespace
    entry = SimpleNamespace(
        tuple_orig=tup(proto=6, saddr="10.1.1.2", daddr="10.2.1.2", sport=40000, dport=22, icmp_type=None,
                       icmp_id=None),
        tuple_reply=tup(proto=6, saddr="10.2.1.2", daddr="10.1.1.2", sport=22, dport=40000),
        status=inspect.IPS_ASSURED | 8, protoinfo=SimpleNamespace(state=1), id=7, timeout=100)
    d = inspect.conntrack_entry(entry, socket.AF_INET)
    assert (d["proto"], d["src"], d["dport"], d["seen_reply"], d["assured"], d["state"]) == \
        ("tcp", "10.1.1.2", 22, False, True, "syn_sent")


# -- MTU ----------------------------------------------------------------------------------
CHAIN = """\
    name: chain
    nodes:
      a: {routes: [{to: default, via: 10.1.0.1}]}
      r1:
        sysctls: {net.ipv4.ip_forward: 1}
        routes: [{to: 10.3.0.0/24, via: 10.2.0.2}]
        policies: [r1.yaml]
      r2:
        sysctls: {net.ipv4.ip_forward: 1}
        routes: [{to: 10.1.0.0/24, via: 10.2.0.1}]
      b: {routes: [{to: default, via: 10.3.0.1}]}
    links:
      - endpoints:
          - {node: a, interface: eth0, addresses: [10.1.0.2/24]}
          - {node: r1, interface: eth0, addresses: [10.1.0.1/24]}
      - mtu: 1400
        endpoints:
          - {node: r1, interface: eth1, addresses: [10.2.0.1/24]}
          - {node: r2, interface: eth0, addresses: [10.2.0.2/24]}
      - endpoints:
          - {node: r2, interface: eth1, addresses: [10.3.0.1/24]}
          - {node: b, interface: eth0, addresses: [10.3.0.2/24]}
    """
R1_POLICY = """\
    tables:
      filter:
        family: inet
        chains:
          output:
            hook: output
            policy: accept
            rules:
              - {protocol: icmp, icmp_type: destination-unreachable, action: drop, comment: no ICMP errors}
    """


@pytest.fixture
def chain(tmp_path):
    write(tmp_path, "r1.yaml", R1_POLICY)
    return write(tmp_path, "chain.yaml", CHAIN)


def _sweep(pmtu, ptb=()):
    return {"reachable": True, "path_mtu": pmtu, "top": 1500, "exact": True, "ptb": list(ptb),
            "probes": [[576, "ok"], [1500, "lost"], [pmtu, "ok"], [pmtu + 1, "lost"]]}


def test_walk_follows_the_live_routes_hop_by_hop(chain):
    ctx = lab(chain)
    path = mtu.Router(ctx).walk("a", "10.3.0.2")
    assert path["to"] == "b" and [(n, d) for n, d, _ in path["hops"]] == [("a", "eth0"), ("r1", "eth1"),
                                                                           ("r2", "eth1")]
    assert mtu.Router(lab(chain, FakeKernel(forwarding={"r2"}))).walk("a", "10.3.0.2")["stop"] == \
        "r1 does not forward"


def test_pairs_are_those_the_routes_lead_to(chain):
    ctx = lab(chain)
    found = {(src, str(ip)) for src, ip, _, _ in mtu.pairs(ctx, mtu.Router(ctx))}
    assert ("a", "10.3.0.2") in found and ("b", "10.1.0.2") in found and ("r1", "10.3.0.2") in found
    assert ("a", "10.1.0.1") not in found and ("r1", "10.2.0.2") not in found  # neighbours: no router between


def test_a_black_hole_is_named_with_the_rule_that_drops_the_icmp_error(chain):
    pytest.importorskip("toolkit.doctor.nftables")
    ctx = lab(chain)
    router = mtu.Router(ctx)
    # r1's "fragmentation needed" is dropped by its own output chain; r2's (for b) arrives
    results = {(src, ip): _sweep(1400, [] if src == "a" else [{"from": "10.3.0.1", "mtu": 1400}])
               for src, ip, _, _ in mtu.pairs(ctx, router)}
    found = mtu.black_holes(ctx, router, results)
    # a -> r2 ends on the narrow link itself (r2's end is as narrow): only a -> b
    assert {f.where for f in found} == {"a -> b (10.3.0.2), at r1/eth1"}
    (f,) = found
    assert "r1.yaml:" in f.fix and "no ICMP errors" in f.fix and "destination-unreachable" in " ".join(f.evidence)
    assert set(f.nodes) == {"a", "b", "r1"}


def test_no_black_hole_when_the_router_says_so_or_the_path_is_as_wide_as_an_end(chain):
    ctx = lab(chain)
    router = mtu.Router(ctx)
    jobs = mtu.pairs(ctx, router)
    told = {(src, ip): _sweep(1400, [{"from": "10.1.0.1", "mtu": 1400}]) for src, ip, _, _ in jobs}
    assert mtu.black_holes(ctx, router, told) == []
    wide = {(src, ip): _sweep(1500) for src, ip, _, _ in jobs}
    assert mtu.black_holes(ctx, router, wide) == []


def test_a_veth_mismatch_is_the_mismatch_finding_not_a_black_hole(chain):
    def narrow(r):
        return r.with_fields(mtu=1400) if r.key == (PREFIX + "b", "eth0") else r
    ctx = lab(chain, change=narrow)
    router = mtu.Router(ctx)
    found = mtu.black_holes(ctx, router, {(s, ip): _sweep(1400) for s, ip, _, _ in mtu.pairs(ctx, router)})
    assert all("at r1/eth1" in f.where for f in found)  # only the black hole of r1's own narrow link
    assert [f.where for f in mtu.mismatched_links(ctx)] == ["b/eth0 - r2/eth1"]


# -- duplicates ---------------------------------------------------------------------------
VRRP = "topologies/vrrp-pair.yaml"


def test_segments_join_veth_pairs_and_bridge_ports():
    ctx = lab(VRRP)
    (seg,) = [s for s in duplicates.segments(ctx) if ("client", "eth0") in s]
    assert {("r1", "eth0"), ("r2", "eth0"), ("sw", "br0"), ("sw", "sw_r1")} <= set(seg)
    assert duplicates.prober(ctx, seg) == ("client", "eth0")  # not a bridge port


def test_an_address_answered_by_two_macs_is_a_duplicate():
    extra = [Resource.make(ADDR.name, (PREFIX + "client", "eth0", "10.0.3.3/24"))]
    ctx = lab(VRRP, extra=extra)
    seg = duplicates.segment_of(ctx)[("client", "eth0")]
    r2 = mac_of(PREFIX + "r2", "eth0")
    answers = [(seg, ("client", "eth0"), {"10.0.3.2": [mac_of(PREFIX + "r1", "eth0")], "10.0.3.3": [r2],
                                          "10.0.3.10": []})]
    (f,) = duplicates.duplicate_ipv4(ctx, answers)
    assert f.title == "10.0.3.3 is answered by 2 MACs" and set(f.nodes) == {"client", "r2"}
    assert "remove 10.0.3.3 from client/eth0" in f.fix
    assert duplicates.duplicate_ipv4(lab(VRRP), answers) == []  # the client does not hold it: one MAC


def test_dad_failures_and_split_vips():
    flags = {"r2": [{"dev": "eth0", "address": "fd00:3::3", "prefixlen": 64, "flags": ["dadfailed", "tentative"]},
                    {"dev": "eth0", "address": "fd00:3::4", "prefixlen": 64, "flags": ["permanent"]}]}
    ctx = lab(VRRP, FakeKernel(flags=flags))
    (f,) = duplicates.dad_failures(ctx)
    assert f.where == "r2/eth0" and "fd00:3::3" in f.title
    reason = "VIP 10.0.3.254 of group gw is held by t-r1 and t-r2 at once (split brain)"
    held = [Resource.make(ADDR.name, (PREFIX + n, "eth0", "10.0.3.254/24"), owner="overlay:vip:gw", reason=reason)
            for n in ("r1", "r2")]
    (vip,) = duplicates.split_vips(lab(VRRP, extra=held))
    assert vip.where == "VIP 10.0.3.254" and set(vip.nodes) == {"r1", "r2"} and "split brain" in vip.evidence[0]
    assert duplicates.split_vips(lab(VRRP)) == []


def test_neighbour_entries_pointing_off_the_segment_are_stale():
    r1 = mac_of(PREFIX + "r1", "eth0")
    tables = {"client": [{"dev": "eth0", "address": "10.0.3.2", "mac": r1, "state": "reachable"},
                         {"dev": "eth0", "address": "10.0.3.3", "mac": "02:de:ad:00:00:01", "state": "stale"},
                         {"dev": "eth0", "address": "10.0.3.9", "mac": None, "state": "failed"},
                         {"dev": "eth0", "address": "224.0.0.18", "mac": "01:00:5e:00:00:12", "state": "noarp"}]}
    (f,) = duplicates.stale_neighbours(lab(VRRP), tables)
    assert f.where == "client/eth0" and "10.0.3.3" in f.title and f.severity == "warning"
    assert "02:de:ad:00:00:01" in f.title


# -- gateways -----------------------------------------------------------------------------
TWO = "topologies/two-clients.yaml"


def _default_via(node, via, dev):
    def change(r):
        if r.kind == ROUTE.name and r.key[:2] == (PREFIX + node, "0.0.0.0/0"):
            return r.with_fields(via=via, dev=dev)
        return r
    return change


def test_a_gateway_changed_by_hand_is_put_back_by_apply():
    ctx = lab(TWO, change=_default_via("ns_client1", "10.0.1.9", "veth_c1"))
    routes = gateways.default_routes(ctx)
    (f,) = gateways.judge(ctx, routes, {})
    assert f.title == "ns_client1's default gateway 10.0.1.9 is no address on its segment"
    assert "netkeel apply" in f.fix and "10.0.1.1" in f.fix and f.diff == ""


def test_a_manifest_with_a_wrong_gateway_gets_a_diff(tmp_path):
    text = open(TWO).read().replace("via: 10.0.1.1", "via: 10.0.1.9").replace("../policies/", "")
    path = write(tmp_path, "wrong.yaml", text)
    (tmp_path / "two-clients-server.yaml").write_text(open("policies/two-clients-server.yaml").read())
    ctx = lab(path, change=_default_via("ns_client1", "10.0.1.9", "veth_c1"))
    (f,) = gateways.judge(ctx, gateways.default_routes(ctx), {})
    assert "-        via: 10.0.1.9\n+        via: 10.0.1.1\n" in f.diff
    assert f.fix.startswith("route through ns_server")


def test_a_silent_gateway_and_one_that_answers_from_another_mac():
    ctx = lab(TWO)
    routes = gateways.default_routes(ctx)
    key = ("ns_client1", "veth_c1", ipaddress.ip_address("10.0.1.1"))
    assert gateways.judge(ctx, routes, {key: [mac_of(PREFIX + "ns_server", "veth_srv_c1")]}) == []
    (silent,) = gateways.judge(ctx, routes, {key: []})
    assert silent.title == "ns_client1's default gateway 10.0.1.1 does not answer"
    (other,) = gateways.judge(ctx, routes, {key: [mac_of(PREFIX + "ns_client2", "veth_c2")]})
    assert "unexpected MAC" in other.title and "ns_client2/veth_c2" in other.why


def test_a_vip_gateway_is_answered_by_its_members():
    ctx = lab(VRRP)
    routes = gateways.default_routes(ctx)
    key = ("client", "eth0", ipaddress.ip_address("10.0.3.254"))
    assert gateways.judge(ctx, routes, {key: [mac_of(PREFIX + "r2", "eth0")]}) == []


@pytest.mark.parametrize("text,line", [
    ("nodes:\n  a:\n    routes:\n      - to: default\n        via: 10.0.0.1\n  b:\n    routes:\n"
     "      - {to: default, via: 10.0.0.1}\n", 7),
    ("nodes:\n  b: {routes: [{to: default, via: '10.0.0.1'}]}\n", 1),
    ("links: []\nnodes:\n  a: {}\n", None),
])
def test_the_via_line_is_found_in_the_nodes_block(text, line):
    assert gateways.via_line(text.splitlines(keepends=True), "b", "10.0.0.1") == line


def test_a_gateway_that_does_not_forward_matters_only_with_something_beyond_it(tmp_path, monkeypatch):
    key = ("ns_client1", "veth_c1", ipaddress.ip_address("10.0.1.1"))
    answer = {key: [mac_of(PREFIX + "ns_server", "veth_srv_c1")]}
    ctx = lab(TWO, FakeKernel(forwarding=set()))
    found = gateways.judge(ctx, gateways.default_routes(ctx), answer)
    assert [f.title for f in found] == ["ns_client1's default gateway 10.0.1.1 is ns_server, which does not forward",
                                        "ns_client2's default gateway 10.0.2.1 is ns_server, which does not forward"]
    assert "10.0.2.1, 10.0.2.2" in " ".join(found[0].evidence)
    # The manifest turns forwarding on there: turned off by hand, and apply is the fix
    # (found by review: the finding said to point the route elsewhere).
    assert all(f.fix.startswith("`netkeel apply` turns forwarding back on on ns_server") for f in found), found
    monkeypatch.setenv("NETKEEL_ALLOW_OUTSIDE_POLICIES", "1")  # its policies stay where they are
    undeclared = tmp_path / "two.yaml"  # never turned on: the route is what to change
    undeclared.write_text(open(TWO).read().replace("net.ipv4.ip_forward: 1", "net.ipv4.ip_forward: 0")
                          .replace("../policies/", f"{Path('policies').resolve()}/"))
    ctx = lab(undeclared, FakeKernel(forwarding=set()))
    fixes = [f.fix for f in gateways.judge(ctx, gateways.default_routes(ctx), answer)]
    assert fixes and not any("turns forwarding back on" in fix for fix in fixes), fixes
    ctx = lab(TWO, FakeKernel(forwarding={"ns_server"}))
    assert gateways.judge(ctx, gateways.default_routes(ctx), answer) == []
    ctx = lab(VRRP, FakeKernel(forwarding=set()))  # nothing beyond the segment needs a router
    vip = {("client", "eth0", ipaddress.ip_address("10.0.3.254")): [mac_of(PREFIX + "r1", "eth0")]}
    assert gateways.judge(ctx, gateways.default_routes(ctx), vip) == []


# -- conntrack ----------------------------------------------------------------------------
TRIANGLE = """\
    name: triangle
    nodes:
      a: {routes: [{to: 10.2.0.0/16, via: 10.1.1.1}]}
      r1: {sysctls: {net.ipv4.ip_forward: 1}}
      r2: {sysctls: {net.ipv4.ip_forward: 1}, routes: [{to: 10.1.1.2/32, via: 10.1.2.2}]}
      b: {routes: [{to: 10.1.0.0/16, via: 10.2.2.1}]}
    links:
      - endpoints:
          - {node: a, interface: eth1, addresses: [10.1.1.2/24]}
          - {node: r1, interface: eth0, addresses: [10.1.1.1/24]}
      - endpoints:
          - {node: a, interface: eth2, addresses: [10.1.2.2/24]}
          - {node: r2, interface: eth0, addresses: [10.1.2.1/24]}
      - endpoints:
          - {node: r1, interface: eth1, addresses: [10.2.1.1/24]}
          - {node: b, interface: eth1, addresses: [10.2.1.2/24]}
      - endpoints:
          - {node: r2, interface: eth1, addresses: [10.2.2.1/24]}
          - {node: b, interface: eth2, addresses: [10.2.2.2/24]}
    """


def _ct(id, src, dst, seen_reply=False):
    return {"id": id, "proto": "udp", "src": src, "dst": dst, "sport": 5000 + id, "dport": 53, "reply_src": dst,
            "reply_dst": src, "seen_reply": seen_reply, "assured": False, "state": "", "icmp_id": None}


def test_an_unreplied_flow_whose_reply_goes_another_way_is_named_with_the_route(tmp_path):
    path = write(tmp_path, "triangle.yaml", TRIANGLE)
    young = _ct(3, "10.1.1.2", "10.2.1.2")
    reads = {"r1": [[_ct(1, "10.1.1.2", "10.2.1.2"), _ct(2, "10.1.1.2", "10.2.1.2"), young,
                     _ct(4, "10.1.1.2", "10.2.1.2", seen_reply=True), _ct(5, "10.1.1.1", "10.2.1.2")],
                    [_ct(1, "10.1.1.2", "10.2.1.2"), _ct(2, "10.1.1.2", "10.2.1.2")]]}
    slept = []
    ctx = lab(path, FakeKernel(conntrack_reads=reads))
    (f,) = conntrack.run(ctx, sleep=slept.append, clock=lambda: 0.0)
    assert slept == [conntrack.SETTLE_S]
    assert f.where == "r1: from 10.1.1.2" and "tracks 2 " in f.evidence[0] and "2 x udp:53" in f.evidence[0]
    assert f.title == "r1 never sees the replies to 10.1.1.2 (a) from 10.2.1.2"
    assert "b/eth2 -> r2/eth0 -> a" in f.evidence[2] and "b answers 10.1.1.2 through r2" in f.why
    assert "via 10.2.1.1 (r1/eth1)" in f.fix
    assert "\n-  b: {routes: [{to: 10.1.0.0/16, via: 10.2.2.1}]}\n" in f.diff
    assert "\n+  b: {routes: [{to: 10.1.0.0/16, via: 10.2.1.1}]}\n" in f.diff


def test_nothing_unreplied_means_no_wait_and_no_finding(tmp_path):
    path = write(tmp_path, "triangle.yaml", TRIANGLE.replace("via: 10.2.2.1", "via: 10.2.1.1"))
    slept = []
    ctx = lab(path, FakeKernel(conntrack_reads={"r1": [[_ct(4, "10.1.1.2", "10.2.1.2", seen_reply=True)]]}))
    assert conntrack.run(ctx, sleep=slept.append) == [] and slept == []
    # unreplied, but the reply does come back through r1 (the far end is silent): not this story
    ctx = lab(path, FakeKernel(conntrack_reads={"r1": [[_ct(1, "10.1.1.2", "10.2.1.2")]]}))
    assert conntrack.run(ctx, sleep=slept.append, clock=lambda: 0.0) == []


def test_a_vip_left_on_a_dead_speakers_node_is_named_as_that_not_a_partition():
    """Both r1's processes killed: r1 keeps the VIP (orphaned), r2 takes it (split
    brain). Doctor said "held by 1 nodes at once" with a fix about adverts, and
    never named the dead speaker (from a hostile review)."""
    held = [Resource.make(ADDR.name, (PREFIX + "r1", "eth0", "10.0.3.254/24"), owner="overlay:vip:gw",
                          reason="VIP 10.0.3.254 of group gw is orphaned on t-r1: its speaker is not running"),
            Resource.make(ADDR.name, (PREFIX + "r2", "eth0", "10.0.3.254/24"), owner="overlay:vip:gw",
                          reason="VIP 10.0.3.254 of group gw is held by t-r1 and t-r2 at once (split brain)")]
    (vip,) = duplicates.split_vips(lab(VRRP, extra=held))
    assert vip.title == "VIP 10.0.3.254 of group gw is left on r1, whose speaker is not running"
    assert set(vip.nodes) == {"r1", "r2"} and len(vip.evidence) == 2
    assert vip.fix.startswith("`netkeel apply` starts the speaker of group gw on r1 again")
    (alone,) = duplicates.split_vips(lab(VRRP, extra=held[:1]))  # the other member has not taken over
    assert alone.title == "VIP 10.0.3.254 of group gw is left on r1, whose speaker is not running"


def test_a_healthy_gateway_unheard_behind_the_nodes_own_foreign_table_names_that_table():
    """client1's own hand-made tables drop everything: doctor blamed the gateway
    and offered `netkeel apply` to restore it, which changes nothing (from a review)."""
    ctx = lab(TWO, extra=[Resource.make(NFT_TABLE.name, (PREFIX + "ns_client1", "inet", "block"), owner=FOREIGN)])
    key = ("ns_client1", "veth_c1", ipaddress.ip_address("10.0.1.1"))
    (f,) = gateways.judge(ctx, gateways.default_routes(ctx), {key: []})
    assert f.title == "ns_client1 hears nothing from its gateway 10.0.1.1, which is up and holds it"
    assert f.evidence[-1] == "tables netkeel does not own: ns_client1: inet block" and f.nodes == ("ns_client1",)
    assert "ip netns exec t-ns_client1 nft list ruleset" in f.fix
    # A harmless table on the client and an ARP filter on the gateway: both named (review).
    gateway = Resource.make(NFT_TABLE.name, (PREFIX + "ns_server", "arp", "srvarp"), owner=FOREIGN)
    ctx = lab(TWO, extra=[Resource.make(NFT_TABLE.name, (PREFIX + "ns_client1", "inet", "mine"), owner=FOREIGN),
                          gateway])
    (f,) = gateways.judge(ctx, gateways.default_routes(ctx), {key: []})
    assert f.evidence[-1] == "tables netkeel does not own: ns_client1: inet mine; ns_server: arp srvarp"
    assert f.nodes == ("ns_client1", "ns_server")


def test_a_copy_on_a_routers_lo_answered_on_another_interface_is_named_where_it_lives():
    """A node answers ARP on any interface for an address on its lo: the fix named
    the interface that answered (r1/eth0), not where the copy is (r1/lo)."""
    extra = [Resource.make(ADDR.name, (PREFIX + "r1", "lo", "10.0.3.3/32"))]
    ctx = lab(VRRP, extra=extra)
    seg = duplicates.segment_of(ctx)[("client", "eth0")]
    answers = [(seg, ("client", "eth0"), {"10.0.3.3": [mac_of(PREFIX + "r1", "eth0"), mac_of(PREFIX + "r2", "eth0")]})]
    (f,) = duplicates.duplicate_ipv4(ctx, answers)
    assert "remove 10.0.3.3 from r1/lo" in f.fix, f.fix


def test_a_blocked_pair_answered_by_another_holder_of_the_address_is_not_a_firewall_leak():
    """10.0.1.2 copied onto ns_server's lo: ns_server answered client2's pings for
    client1's address, and doctor said the firewall let through what the policy
    drops (from a review)."""
    from types import SimpleNamespace

    from toolkit.doctor.checks import reachability

    ctx = SimpleNamespace(topology=load_topology(TWO))
    pair = SimpleNamespace(source="ns_client2", owner="ns_client1", target="10.0.1.2")
    held = SimpleNamespace(local=lambda node, address: node in ("ns_client1", "ns_server"))
    cause = reachability.answered_elsewhere(ctx, held, pair)
    assert cause.title == "10.0.1.2 is held by ns_server too, which answers for ns_client1"
    assert cause.fix.startswith("remove 10.0.1.2 from ns_server") and cause.nodes == ("ns_client1", "ns_server")
    alone = SimpleNamespace(local=lambda node, address: node == "ns_client1")
    assert reachability.answered_elsewhere(ctx, alone, pair) is None
