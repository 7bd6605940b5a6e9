"""Model -> desired resources."""

from pathlib import Path

from toolkit.manifest.topology import load_topology, load_topology_text
from toolkit.kinds import compile_all as desired_resources
from toolkit.core.resource import Resource

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"
R = Resource.make


def two_clients(prefix=""):
    return desired_resources(load_topology(TOPOLOGIES / "two-clients-plain.yaml"), prefix)


def veth(ns, name, peer):
    return R("link", (ns, name), kind="veth", peer=peer, mtu=1500, state="up", master="", arp="on")


def lo(ns):
    return R("link", (ns, "lo"), kind="loopback", state="up")


def test_two_clients_exact_set():
    assert two_clients() == {
        R("netns", ("ns_client1",)),
        R("netns", ("ns_client2",)),
        R("netns", ("ns_server",)),
        lo("ns_client1"),
        lo("ns_client2"),
        lo("ns_server"),
        veth("ns_client1", "veth_c1", "ns_server/veth_srv_c1"),
        veth("ns_server", "veth_srv_c1", "ns_client1/veth_c1"),
        veth("ns_client2", "veth_c2", "ns_server/veth_srv_c2"),
        veth("ns_server", "veth_srv_c2", "ns_client2/veth_c2"),
        R("addr", ("ns_client1", "veth_c1", "10.0.1.2/24")),
        R("addr", ("ns_server", "veth_srv_c1", "10.0.1.1/24")),
        R("addr", ("ns_client2", "veth_c2", "10.0.2.2/24")),
        R("addr", ("ns_server", "veth_srv_c2", "10.0.2.1/24")),
        R("route", ("ns_client1", "0.0.0.0/0", 0), via="10.0.1.1"),
        R("route", ("ns_client2", "0.0.0.0/0", 0), via="10.0.2.1"),
        R("sysctl", ("ns_server", "net.ipv4.ip_forward"), value="1"),
        # ip_forward sets each device's forwarding: compared as declared (kinds/sysctl.forwarding_of_devices)
        R("sysctl", ("ns_server", "net.ipv4.conf.veth_srv_c1.forwarding"), value="1"),
        R("sysctl", ("ns_server", "net.ipv4.conf.veth_srv_c2.forwarding"), value="1"),
    }


def test_loopback_manages_neither_mtu_nor_master():
    lo_fields = {r.ns: r.fields() for r in two_clients() if r.kind == "link" and r.key[1] == "lo"}
    assert lo_fields == {ns: {"kind": "loopback", "state": "up"}
                         for ns in ("ns_client1", "ns_client2", "ns_server")}


def test_compiling_twice_gives_the_same_set():
    assert two_clients() == two_clients()


def test_ns_prefix_applies_to_every_namespace_and_peer():
    plain, prefixed = two_clients(), two_clients("t1-")
    assert {r.ns for r in prefixed} == {"t1-ns_client1", "t1-ns_client2", "t1-ns_server"}
    peers = {r.get("peer") for r in prefixed if r.get("peer")}
    assert peers == {"t1-ns_server/veth_srv_c1", "t1-ns_client1/veth_c1",
                     "t1-ns_server/veth_srv_c2", "t1-ns_client2/veth_c2"}

    def unprefixed(r):
        fields = r.fields()
        if fields.get("peer"):
            fields["peer"] = fields["peer"].removeprefix("t1-")
        return Resource.make(r.kind, (r.ns.removeprefix("t1-"),) + r.key[1:], **fields)

    assert {unprefixed(r) for r in prefixed} == plain


DUAL_STACK = """
name: dual
nodes:
  a:
    bridges:
      br0:
        mtu: 9000
        addresses: [10.0.0.1/24, "fd00::1/64"]
        ports: [p0]
    routes:
      - {to: default, via: 10.0.0.2}
      - {to: default, via: "fd00::2"}
      - {to: 10.9.0.0/16, dev: br0, metric: 50}
      - {to: "2001:db8::/48", via: "fd00::2", metric: 7}
  b:
    sysctls:
      net.ipv6.conf.all.forwarding: 1
links:
  - endpoints:
      - {node: a, interface: p0}
      - {node: b, interface: eth0, addresses: [10.0.0.2/24], mac: "AA:BB:CC:DD:EE:01", state: down}
"""


def test_routes_are_keyed_by_metric_with_the_kernel_default():
    routes = {r for r in desired_resources(load_topology_text(DUAL_STACK, "dual.yaml"))
              if r.kind == "route"}
    assert routes == {
        R("route", ("a", "0.0.0.0/0", 0), via="10.0.0.2"),
        R("route", ("a", "::/0", 1024), via="fd00::2"),
        R("route", ("a", "10.9.0.0/16", 50), via="", dev="br0"),
        R("route", ("a", "2001:db8::/48", 7), via="fd00::2"),
    }


def test_bridges_ports_and_endpoint_settings():
    links = {r.key: r.fields() for r in desired_resources(load_topology_text(DUAL_STACK, "dual.yaml"))
             if r.kind == "link" and r.key[1] != "lo"}
    assert links == {
        ("a", "br0"): {"kind": "bridge", "mtu": 9000, "state": "up", "master": "", "arp": "on", "stp": "off"},
        ("a", "p0"): {"kind": "veth", "peer": "b/eth0", "mtu": 1500, "state": "up", "master": "br0", "arp": "on",
                       "isolated": "off", "learning": "on", "flood": "on", "bcast_flood": "on"},
        ("b", "eth0"): {"kind": "veth", "peer": "a/p0", "mtu": 1500, "state": "down", "master": "",
                        "mac": "aa:bb:cc:dd:ee:01", "arp": "on"},
    }
