"""Kind "link" in the kernel: network devices (veth ends, bridges, loopback).

Live spec fields: kind, peer ("ns/ifname" for a veth), mtu, state, mac, master;
`_alias` (the ownership mark netkeel writes) as information.
"""

from __future__ import annotations

from ..core.owners import ALIAS_TAG, CHAOS_IFB_PREFIX, FOREIGN, overlay
from ..core.resource import Resource
from ..errors import KernelError
from . import rtnl_requests as rq

KIND = "link"
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_NOARP = 0x80

# Fallback devices the kernel adds to every namespace when a tunnel module is
# loaded; they are not ours to manage, nor drift.
KERNEL_DEVICES = {"tunl0", "sit0", "ip6tnl0", "gre0", "gretap0", "erspan0", "ip6gre0",
                  "ip6gretap0", "ip6erspan0", "ip_vti0", "ip6_vti0"}
# What netkeel can create, and so may delete: anything else in a managed
# namespace is foreign, since a rollback could not bring it back.
CREATABLE = ("veth", "bridge", "loopback")


def device_kind(link) -> str:
    if link.flags & IFF_LOOPBACK:
        return "loopback"
    return link.kind or "unknown"


def to_resources(ns: str, links, peers: dict, scope) -> list:
    """Link resources from one namespace's link dump (rtnl.Link). `peers` maps a
    veth's (ns, ifname) to its resolved peer "ns/ifname" (or what is known of it);
    a veth whose peer is outside `scope` (the namespaces being read) is not
    netkeel's to delete: deleting it would delete its other end too."""
    by_index = {link.index: link.ifname for link in links}
    out = []
    for link in links:
        kind = device_kind(link)
        if link.ifname in KERNEL_DEVICES and kind != "veth":
            continue
        peer = peers.get((ns, link.ifname)) if kind == "veth" else None
        if kind == "ifb" and link.ifname.startswith(CHAOS_IFB_PREFIX):
            # A fault's ingress redirect: netkeel's, but an overlay's, never the topology's.
            out.append(Resource.make(KIND, (ns, link.ifname), owner=overlay("fault"), kind=kind))
            continue
        reason = unmanaged_reason(kind, peer, scope)
        if reason:
            out.append(Resource.make(KIND, (ns, link.ifname), owner=FOREIGN, reason=reason, peer=peer))
            continue
        out.append(Resource.make(
            KIND, (ns, link.ifname),
            kind=kind,
            peer=peer,
            mtu=link.mtu,
            state="up" if link.flags & IFF_UP else "down",
            arp="off" if link.flags & IFF_NOARP else "on",
            stp=None if link.stp is None else ("on" if link.stp else "off"),
            **{option: "on" if value else "off" for option, value in (link.port or {}).items()},
            mac=link.mac,
            master=by_index.get(link.master, f"#{link.master}") if link.master else "",
            _alias=link.alias,
        ))
    return out


def unmanaged_reason(kind: str, peer: str | None, scope) -> str:
    if kind not in CREATABLE:
        return f"a {kind} device: netkeel manages veth and bridge devices only"
    if kind == "veth":
        peer_ns = (peer or "?").partition("/")[0]
        if peer_ns not in scope:
            # (A namespace removed by hand that a process still holds is unknown so
            # until the process ends: a VRRP speaker notices within half a second.)
            where = ("an unknown namespace (one removed by hand, while a process in it lives on)"
                     if peer_ns == "?" else f"namespace {peer_ns}")
            return f"a veth whose other end is in {where}, which netkeel does not manage here"
    return ""


def add_veth(kernel, ns_name: str, ifname: str, peer_ns_name: str, peer_if: str) -> None:
    ns, peer_ns = kernel.ns(ns_name), kernel.ns(peer_ns_name)
    kernel.request(ns_name, f"link add {ifname} type veth peer {peer_if} netns {peer_ns_name}",
                   ns.dump.send, rq.new_veth, ifname, peer_if, peer_ns.fd)
    peer_ns.forget_links()
    ns.forget_links()


def add_bridge(kernel, ns_name: str, ifname: str) -> None:
    ns = kernel.ns(ns_name)
    kernel.request(ns_name, f"link add {ifname} type bridge", ns.dump.send, rq.new_link, ifname, "bridge")
    ns.forget_links()


def delete(kernel, ns_name: str, ifname: str, peer: str | None) -> None:
    ns = kernel.ns(ns_name)
    kernel.request(ns_name, f"link del {ifname}", ns.dump.send, rq.delete_link, ns.index(ifname))
    ns.forget_links()
    if peer and "/" in peer and kernel.exists(peer.partition("/")[0]):
        kernel.ns(peer.partition("/")[0]).forget_links()


def move(kernel, ns_name: str, ifname: str, to_ns: str) -> None:
    ns, target = kernel.ns(ns_name), kernel.ns(to_ns)
    kernel.request(ns_name, f"link set {ifname} netns {to_ns}", ns.dump.send,
                   rq.set_link, ns.index(ifname), netns_fd=target.fd)
    ns.forget_links()
    target.forget_links()


# Bridge port options netkeel keeps as the kernel makes them (iproute2's words):
# an isolated port, or one that does not learn or flood, cuts a LAN in pieces.
PORT_OPTIONS = ("isolated", "learning", "flood", "bcast_flood")


def _ip(kernel, ns_name: str, argv: list) -> None:
    """iproute2's `ip` in the namespace, for what it says best (bridge options)."""
    import subprocess

    what = f"ip {' '.join(argv)}"
    kernel.log(ns_name, what)
    try:
        result = subprocess.run(["ip", "-n", ns_name, *argv], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError(f"{what} in {ns_name}", str(exc)) from None
    if result.returncode != 0:
        raise KernelError(f"{what} in {ns_name}", (result.stderr or result.stdout).strip() or
                          f"exit {result.returncode}")


def configure(kernel, ns_name: str, ifname: str, mark=False, mtu=None, mac=None, master=None,
              state=None, arp=None, stp=None, **port) -> None:
    """Set the device's attributes in one request; `mark` writes the ownership
    alias; `port`: bridge port options (PORT_OPTIONS), `stp` a bridge's."""
    ns = kernel.ns(ns_name)
    if arp is not None:  # a flag pyroute2's link set does not take by name
        kernel.request(ns_name, f"link set {ifname} arp {arp}", ns.dump.send,
                       rq.set_link, ns.index(ifname), arp=arp == "on")
    if set(port) - set(PORT_OPTIONS):
        raise ValueError(f"unknown link settings {sorted(set(port) - set(PORT_OPTIONS))}")
    text = []
    if mtu is not None:
        text.append(f"mtu {mtu}")
    if mac:
        text.append(f"address {mac}")
    if master is not None:
        text.append(f"master {master}" if master else "nomaster")
    if mark:
        text.append(f"alias {ALIAS_TAG}")
    if state:
        text.append(state)
    if state not in (None, "up", "down"):
        raise ValueError(f"not a link state: {state!r}")
    if text:
        what = f"link set {ifname} {' '.join(text)}"
        master_index = ns.index(master) if master else 0
        if master_index is None:
            raise KernelError(f"{what} in {ns_name}", f"no device {master} to be its master")
        kernel.request(ns_name, what, ns.dump.send, rq.set_link, ns.index(ifname),
                       up=None if state is None else state == "up", mtu=mtu, mac=mac or None,
                       alias=ALIAS_TAG if mark else None, master=None if master is None else master_index)
    # After the master is set: these are options of the port it makes.
    if stp is not None:
        _ip(kernel, ns_name, ["link", "set", "dev", ifname, "type", "bridge", "stp_state",
                              "1" if stp == "on" else "0"])
    if port:
        _ip(kernel, ns_name, ["link", "set", "dev", ifname, "type", "bridge_slave",
                              *[word for option, value in sorted(port.items()) for word in (option, value)]])
