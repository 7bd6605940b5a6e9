"""The link, address and route requests netkeel encodes itself
(kernel/rtnl_requests.py) make in the kernel exactly what pyroute2's made for
the same calls: the same changes done both ways, each in a pair of namespaces of
its own, and the two compared as `ip -d -j` shows them (links with their kind,
MTU, MAC, flags, master and alias; addresses with their flags and protocol;
routes with their protocol, scope, type, metric and next hop). And a namespace's
netlink sockets after a request on them was cut off (a Ctrl-C in a dump)."""

from __future__ import annotations

import json
import subprocess

import pytest

from toolkit.core.owners import ALIAS_TAG, IFA_PROTO, RT_PROTO
from toolkit.kernel import Kernel, addresses, links, netns, routes
from toolkit.kernel.rtnl import DumpSocket

MACS = {"v0": "02:00:00:00:00:01", "v1": "02:00:00:00:00:02", "v2": "02:00:00:00:00:03",
        "v3": "02:00:00:00:00:04", "m0": "02:00:00:00:00:05", "m1": "02:00:00:00:00:06"}
ADDRS = [("a", "v0", "10.9.0.1/24"), ("a", "v0", "2001:db8::1/64"), ("a", "br0", "10.9.1.1/24"),
         ("b", "v1", "10.9.0.2/24"), ("b", "v1", "10.9.0.3/24"), ("b", "v1", "2001:db8::2/64"),
         ("b", "v1", "10.9.5.1/24")]
ROUTES = [  # prefix, metric, via, dev, type
    ("default", 0, "10.9.0.1", None, None), ("192.0.2.0/24", 100, "10.9.0.1", None, None),
    ("198.51.100.0/24", 0, None, "v1", None), ("192.0.2.128/25", 3, None, "v1", None),
    ("203.0.113.0/24", 0, None, None, "blackhole"),
    ("203.0.113.128/25", 5, None, None, "unreachable"), ("100.64.0.0/10", 0, None, None, "prohibit"),
    ("2001:db8:1::/48", 0, None, None, "unreachable"), ("::/0", 0, "2001:db8::1", "v1", None),
    ("2001:db8:2::/48", 7, "2001:db8::1", None, None)]
GONE = [("192.0.2.0/24", 100, "10.9.0.1", None, None), ("203.0.113.0/24", 0, None, None, "blackhole"),
        ("2001:db8:1::/48", 0, None, None, "unreachable")]


def by_pyroute2(kernel: Kernel, ns: dict) -> None:
    """The changes, as netkeel made them with pyroute2 (its calls as they were)."""
    a, b = kernel.ns(ns["a"]), kernel.ns(ns["b"])
    a.ipr.link("add", ifname="v0", kind="veth", peer={"ifname": "v1", "net_ns_fd": b.fd})
    a.ipr.link("add", ifname="v2", kind="veth", peer={"ifname": "v3"})
    a.ipr.link("add", ifname="m0", kind="veth", peer={"ifname": "m1"})
    a.ipr.link("add", ifname="br0", kind="bridge")
    for handle in (a, b):
        handle.forget_links()
    for handle, dev in ((a, "v0"), (b, "v1"), (a, "v2"), (a, "v3"), (a, "m0"), (a, "m1")):
        handle.ipr.link("set", index=handle.index(dev), address=MACS[dev])
    a.ipr.link("set", index=a.index("v0"), ifalias=ALIAS_TAG, mtu=1400, state="up")
    a.ipr.link("set", index=a.index("v2"), master=a.index("br0"), state="up")
    a.ipr.link("set", index=a.index("br0"), ifalias=ALIAS_TAG, state="up")
    b.ipr.link("set", index=b.index("v1"), ifalias=ALIAS_TAG, state="up")
    a.ipr.link("set", index=a.index("m1"), net_ns_fd=b.fd)
    for handle in (a, b):
        handle.forget_links()
    for node, dev, text in ADDRS:
        handle = kernel.ns(ns[node])
        address, _, length = text.partition("/")
        extra = {"flags": addresses.IFA_F_NODAD} if ":" in address else {}
        handle.ipr.addr("add", index=handle.index(dev), address=address, prefixlen=int(length), proto=IFA_PROTO,
                        **extra)
    b.ipr.addr("replace", index=b.index("v1"), address="10.9.0.3", prefixlen=24, proto=IFA_PROTO)
    b.ipr.addr("del", index=b.index("v1"), address="10.9.5.1", prefixlen=24)
    for prefix, metric, via, dev, type_ in ROUTES:
        b.ipr.route("add", proto=RT_PROTO, table=254, priority=metric, **_route_args(b, prefix, via, dev, type_))
    b.ipr.route("replace", proto=RT_PROTO, table=254, priority=0,
                **_route_args(b, "198.51.100.0/24", "10.9.0.1", None, None))
    for prefix, metric, via, dev, type_ in GONE:
        b.ipr.route("del", table=254, priority=metric, scope=routes.RT_SCOPE_NOWHERE,
                    **_route_args(b, prefix, via, dev, type_))
    a.ipr.link("del", index=a.index("v2"))
    a.forget_links()


def _route_args(handle, prefix, via, dev, type_) -> dict:
    import ipaddress
    import socket

    net = ipaddress.ip_network("0.0.0.0/0" if prefix == "default" else prefix)
    args = dict(dst=str(net.network_address), dst_len=net.prefixlen,
                family=socket.AF_INET if net.version == 4 else socket.AF_INET6)
    if type_:
        args["type"] = type_
    if via:
        args["gateway"] = via
    if dev:
        args["oif"] = handle.index(dev)
    return args


def by_netkeel(kernel: Kernel, ns: dict) -> None:
    """The same changes through netkeel's kernel modules (its own requests)."""
    links.add_veth(kernel, ns["a"], "v0", ns["b"], "v1")
    links.add_veth(kernel, ns["a"], "v2", ns["a"], "v3")
    links.add_veth(kernel, ns["a"], "m0", ns["a"], "m1")
    links.add_bridge(kernel, ns["a"], "br0")
    for node, dev in (("a", "v0"), ("b", "v1"), ("a", "v2"), ("a", "v3"), ("a", "m0"), ("a", "m1")):
        links.configure(kernel, ns[node], dev, mac=MACS[dev])
    links.configure(kernel, ns["a"], "v0", mark=True, mtu=1400, state="up")
    links.configure(kernel, ns["a"], "v2", master="br0", state="up")
    links.configure(kernel, ns["a"], "br0", mark=True, state="up")
    links.configure(kernel, ns["b"], "v1", mark=True, state="up")
    links.move(kernel, ns["a"], "m1", ns["b"])
    for node, dev, text in ADDRS:
        addresses.add(kernel, ns[node], dev, text)
    addresses.add(kernel, ns["b"], "v1", "10.9.0.3/24", replace=True)
    addresses.delete(kernel, ns["b"], "v1", "10.9.5.1/24")
    for prefix, metric, via, dev, type_ in ROUTES:
        routes.set_route(kernel, ns["b"], _prefix(prefix), metric, via=via, dev=dev, type=type_)
    routes.set_route(kernel, ns["b"], "198.51.100.0/24", 0, replace=True, via="10.9.0.1")
    for prefix, metric, via, dev, type_ in GONE:
        routes.delete(kernel, ns["b"], _prefix(prefix), metric, via=via, dev=dev, type=type_)
    links.delete(kernel, ns["a"], "v2", f"{ns['a']}/v3")


def _prefix(prefix: str) -> str:
    return "0.0.0.0/0" if prefix == "default" else prefix


def view(namespace: str) -> dict:
    def ip(*args):
        out = subprocess.run(["ip", "-n", namespace, "-d", "-j", *args], capture_output=True, text=True,
                             timeout=10, check=True).stdout
        return json.loads(out or "[]")

    volatile = {"ifindex", "link_index", "link_netnsid", "stats", "stats64", "operstate", "flags",
                "linkinfo", "inet6_addr_gen_mode", "num_tx_queues", "num_rx_queues", "preferred_life_time",
                "valid_life_time", "promiscuity", "allmulti", "min_mtu", "max_mtu", "addr_info", "parentbus",
                "parentdev", "gso_max_size", "gso_max_segs", "gro_max_size", "tso_max_size", "tso_max_segs",
                "gso_ipv4_max_size", "gro_ipv4_max_size", "group", "txqlen", "qdisc", "linkmode"}
    link_view = sorted(
        (json.dumps({k: v for k, v in l.items() if k not in volatile}, sort_keys=True),
         sorted(set(l.get("flags", [])) - {"NO-CARRIER", "LOWER_UP", "M-DOWN"}),
         (l.get("linkinfo") or {}).get("info_kind"), (l.get("linkinfo") or {}).get("info_slave_kind"))
        for l in ip("link", "show"))
    addr_view = sorted(
        (a["ifname"], json.dumps({k: v for k, v in i.items() if k not in volatile}, sort_keys=True))
        for a in ip("addr", "show") for i in a.get("addr_info", []) if not i["local"].startswith("fe80:"))
    # A route's "linkdown" follows its device's carrier, which comes and goes a
    # moment after the device changes: operational timing, not configuration
    # (CI met a bridge's routes one way in one pair and the other in the other).
    route_view = sorted(json.dumps({**r, "flags": sorted(set(r.get("flags", [])) - {"linkdown"})}, sort_keys=True)
                        for family in ("-4", "-6") for r in ip(family, "route", "show", "table", "all")
                        if not r.get("dst", "").startswith(("fe80:", "ff00:", "ff02:")))
    return {"links": link_view, "addrs": addr_view, "routes": route_view}


@pytest.fixture
def pairs(prefix):
    with Kernel() as kernel:
        names = {side: {node: f"{prefix}{side}{node}" for node in "ab"} for side in ("p", "n")}
        for side in names.values():
            for name in side.values():
                kernel.create_namespace(name)
        yield kernel, names


def test_netkeels_requests_make_what_pyroute2s_made(pairs):
    kernel, names = pairs
    by_pyroute2(kernel, names["p"])
    by_netkeel(kernel, names["n"])
    ours = {node: view(names["n"][node]) for node in "ab"}
    for node in "ab":
        assert ours[node] == view(names["p"][node]), node
    # The views hold what was made (a view that saw nothing would compare equal too).
    assert sorted(str(link[2]) for link in ours["a"]["links"]) == ["None", "bridge", "veth", "veth"]  # lo br0 m0 v0
    assert sum(name == "v1" for name, _ in ours["b"]["addrs"]) == 3
    assert any('"unreachable"' in r and "203.0.113.128/25" in r for r in ours["b"]["routes"])
    assert not any("192.0.2.0/24" in r for r in ours["b"]["routes"])


def test_a_refusal_is_a_kernel_error_with_the_kernels_errno(pairs):
    from toolkit.errors import KernelError

    kernel, names = pairs
    ns = names["n"]
    links.add_veth(kernel, ns["a"], "v0", ns["b"], "v1")
    with pytest.raises(KernelError) as exists:
        links.add_veth(kernel, ns["a"], "v0", ns["b"], "v9")
    assert exists.value.errno == 17 and "link add v0" in str(exists.value)  # EEXIST
    with pytest.raises(KernelError) as no_device:
        addresses.add(kernel, ns["a"], "nosuch", "10.0.0.1/24")
    assert no_device.value.errno == 19  # ENODEV
    with pytest.raises(KernelError) as unreachable_gateway:
        routes.set_route(kernel, ns["a"], "192.0.2.0/24", 0, via="10.77.0.1")
    assert unreachable_gateway.value.errno == 101  # ENETUNREACH
    with pytest.raises(KernelError) as no_master:
        links.configure(kernel, ns["a"], "v0", master="br9")
    assert "br9" in str(no_master.value)


class _CutOff:
    """A socket whose next recv is cut off by a Ctrl-C (the rest delegated)."""

    def __init__(self, sock):
        self.sock, self.cut = sock, True

    def recv(self, size):
        if self.cut:
            self.cut = False
            raise KeyboardInterrupt
        return self.sock.recv(size)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_a_dump_cut_off_by_ctrl_c_leaves_the_next_read_a_fresh_socket(prefix):
    """Found by review: a Ctrl-C in the middle of a link dump left the rest of it
    queued for the namespace's socket, and the kernel refused every later dump
    on it (EBUSY): the restore that followed the Ctrl-C failed."""
    name = f"{prefix}many"
    with Kernel() as kernel:
        kernel.create_namespace(name)
        subprocess.run(["ip", "-n", name, "-batch", "-"], check=True, text=True, timeout=60,
                       input="".join(f"link add a{i} type veth peer name b{i}\n" for i in range(150)))
        handle = kernel.ns(name)
        first = handle.dump
        first.sock = _CutOff(first.sock)
        with pytest.raises(KeyboardInterrupt):
            first.links()
        assert first.unsettled
        assert len(handle.dump.links()) == 301 and handle.dump is not first  # lo and 150 pairs
        # Why: a socket cut off so, kept, is refused every later dump.
        with netns.entered(handle.fd):
            kept = DumpSocket()
        kept.sock = _CutOff(kept.sock)
        with pytest.raises(KeyboardInterrupt):
            kept.links()
        with pytest.raises(OSError) as busy:
            kept.links()
        assert busy.value.errno == 16  # EBUSY
        kept.close()


def test_an_nftables_dump_cut_off_leaves_the_next_read_a_fresh_socket(prefix):
    """The same for the namespace's nfnetlink socket (a rule dump of a large table)."""
    from toolkit.kernel import nftgen

    name = f"{prefix}fw"
    rules = "".join(f"add rule inet t c ip saddr 10.0.{i // 250}.{i % 250} accept\n" for i in range(3000))
    with Kernel() as kernel:
        kernel.create_namespace(name)
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], check=True, text=True, timeout=60,
                       input="add table inet t\nadd chain inet t c\n" + rules)
        handle = kernel.ns(name)
        handle._nfgen = cut = _CutOff(handle.nfgen_socket())
        with pytest.raises(KeyboardInterrupt):
            nftgen.rule_handles(handle.nfgen_socket(), "inet", "t")
        assert cut.fileno() == -1  # closed: its dump was left unread
        assert len(nftgen.rule_handles(handle.nfgen_socket(), "inet", "t")) == 3000
        assert nftgen.generation(handle.nfgen_socket()) >= 1


def test_a_removed_namespace_is_not_held_by_a_libnftables_context_kept_for_the_exit(pairs, monkeypatch):
    """A command that leaves by os._exit keeps one released libnftables context
    unfreed (kernel/session.py); one of a namespace it then removes would hold
    that namespace, and the veth peer it has in another, until the exit. Both
    ways a context waits are tried: kept for the exit (released earlier in the
    command) and parked (a read ahead's)."""
    import time

    from toolkit.core import processes
    from toolkit.kernel import session

    kernel, names = pairs
    ns = names["n"]
    monkeypatch.setattr(processes, "leaves_by_exit", True)
    monkeypatch.setattr(session, "_UNFREED", [])
    links.add_veth(kernel, ns["a"], "v0", ns["b"], "v1")
    first = kernel.ns(ns["a"])
    first.nft.cmd("list ruleset")  # a context, with its socket in the namespace
    kernel.release(ns["a"])
    assert [owner for owner, _ in session._UNFREED] == [ns["a"]]  # kept for the exit, as before
    again = kernel.ns(ns["a"])
    again.parked = []
    again.nft.cmd("list ruleset")
    again.release_nft()
    assert len(again.parked) == 1
    kernel.remove_namespace(ns["a"])
    assert session._UNFREED == []
    peer = kernel.ns(ns["b"])
    for _ in range(100):  # bounded: the kernel frees a namespace nothing holds within moments
        if "v1" not in {link.ifname for link in peer.links()}:
            break
        time.sleep(0.02)
    else:
        raise AssertionError("the removed namespace's veth peer lives on: something still holds the namespace")
