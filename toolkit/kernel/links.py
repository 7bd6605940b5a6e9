"""Adapter for kind "link": network devices (veth ends, bridges, loopback).

Live spec fields: kind, peer ("ns/ifname" for a veth), mtu, state, mac, master.
"""

from __future__ import annotations

from ..reconcile.resources import Resource
from .session import ALIAS_TAG

IFF_UP = 0x1
IFF_LOOPBACK = 0x8

# Fallback devices the kernel adds to every namespace when a tunnel module is
# loaded; they are not ours to manage, nor drift.
KERNEL_DEVICES = {"tunl0", "sit0", "ip6tnl0", "gre0", "gretap0", "erspan0", "ip6gre0",
                  "ip6gretap0", "ip6erspan0", "ip_vti0", "ip6_vti0"}


def device_kind(link) -> str:
    if link.flags & IFF_LOOPBACK:
        return "loopback"
    return link.kind or "unknown"


# What netkeel can create, and so may delete: anything else in a managed
# namespace is reported as unmanaged, since a rollback could not bring it back.
CREATABLE = ("veth", "bridge", "loopback")


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
        reason = unmanaged_reason(kind, peer, scope)
        if reason:
            out.append(Resource.make("link_foreign", (ns, link.ifname), reason=reason))
            continue
        out.append(Resource.make(
            "link", (ns, link.ifname),
            kind=kind,
            peer=peer,
            mtu=link.mtu,
            state="up" if link.flags & IFF_UP else "down",
            mac=link.mac,
            master=by_index.get(link.master, f"#{link.master}") if link.master else "",
        ))
    return out


def unmanaged_reason(kind: str, peer: str | None, scope) -> str:
    if kind not in CREATABLE:
        return f"a {kind} device: netkeel manages veth and bridge devices only"
    if kind == "veth":
        peer_ns = (peer or "?").partition("/")[0]
        if peer_ns not in scope:
            where = "an unknown namespace" if peer_ns == "?" else f"namespace {peer_ns}"
            return f"a veth whose other end is in {where}, which netkeel does not manage here"
    return ""


def run(kernel, phase: str, action) -> None:
    ns_name, ifname = action.key
    ns = kernel.ns(ns_name)
    if phase == "delete":
        index = ns.index(ifname)
        kernel.request(ns_name, f"link del {ifname}", ns.ipr.link, "del", index=index)
        ns.forget_links()
        peer = action.live.get("peer")
        if peer and "/" in peer and kernel.exists(peer.partition("/")[0]):
            kernel.ns(peer.partition("/")[0]).forget_links()
    elif phase == "create":
        _create(kernel, ns, action.desired)
    elif phase == "configure":
        # A new device gets every managed field; a changed one only what differs.
        fields = None if action.op == "create" else {f for f, _, _ in action.changes}
        _configure(kernel, ns, action.desired, fields)


def _create(kernel, ns, desired: Resource) -> None:
    ifname, kind = desired.key[1], desired.get("kind")
    if kind == "veth":
        peer_ns_name, _, peer_if = desired.get("peer").partition("/")
        peer_ns = kernel.ns(peer_ns_name)
        kernel.request(ns.name, f"link add {ifname} type veth peer {peer_if} netns {peer_ns_name}",
                       ns.ipr.link, "add", ifname=ifname, kind="veth",
                       peer={"ifname": peer_if, "net_ns_fd": peer_ns.fd})
        peer_ns.forget_links()
    elif kind == "bridge":
        kernel.request(ns.name, f"link add {ifname} type bridge", ns.ipr.link, "add",
                       ifname=ifname, kind="bridge")
    else:
        raise ValueError(f"netkeel cannot create a {kind} device ({ifname})")
    ns.forget_links()


def _configure(kernel, ns, desired: Resource, fields: set | None) -> None:
    """Set the device's attributes in one request: all managed ones (fields None)
    or just `fields`."""
    ifname = desired.key[1]
    index = ns.index(ifname)
    wanted = {f: v for f, v in desired.spec if fields is None or f in fields}
    attrs = {}
    text = []
    if wanted.get("mtu") is not None:
        attrs["mtu"] = wanted["mtu"]
        text.append(f"mtu {attrs['mtu']}")
    if wanted.get("mac"):
        attrs["address"] = wanted["mac"]
        text.append(f"address {attrs['address']}")
    if wanted.get("master") is not None:
        master = wanted["master"]
        attrs["master"] = ns.index(master) if master else 0
        text.append(f"master {master}" if master else "nomaster")
    if fields is None and desired.get("kind") != "loopback":
        attrs["ifalias"] = ALIAS_TAG
        text.append(f"alias {ALIAS_TAG}")
    if wanted.get("state"):
        attrs["state"] = wanted["state"]
        text.append(wanted["state"])
    if not attrs:
        return
    kernel.request(ns.name, f"link set {ifname} {' '.join(text)}", ns.ipr.link, "set",
                   index=index, **attrs)
