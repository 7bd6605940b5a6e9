"""Read the live state of namespaces into resources.

Six dumps per namespace (links, addresses, routes of every table, neighbours,
qdiscs, policy rules), the sysctls asked
for and the nftables ruleset.
A veth's peer is reported by the kernel as (peer namespace id, peer ifindex),
where the id is local to the namespace looking; we resolve it to a name by
asking for the id of the namespace we expect (`hints`), falling back to every
namespace read, and each answer resolves both ends of the pair.

A long list of namespaces is read partly by forked helper processes
(kernel/fanout.py): the dumps, the nftables generation and the peer ids each
helper reads come back to be made into resources here, as this process's own.
"""

from __future__ import annotations

import itertools

from ..core.owners import FOREIGN
from . import (addresses, fanout, fdb, impairments, links, namespaces, neighbours, netns, nftables, routes, rules,
               speakers, sysctls)
from .rtnl import DumpSocket


def read_live(kernel, names, hints=None) -> list:
    """Live resources of the namespaces `names` that exist, each with its owner.

    `hints["sysctls"]` maps a namespace to the sysctls to read there;
    `hints["veth_peers"]` maps a veth end (ns, ifname) to the namespace its
    peer is expected in (kinds.read_hints makes these).
    """
    hints = hints or {}
    sysctl_names = hints.get("sysctls", {})
    present = [name for name in sorted(set(names)) if kernel.exists(name)]
    # Opened first: a helper process reads the very namespaces these are. The
    # read goes on with these handles (kernel.ns() checks each name still leads
    # to its namespace, two system calls a time: a thousand namespaces asked it
    # five times each spent 30 ms), and checks each name once more at its end.
    opened = {name: kernel.ns(name) for name in present}
    fds = {name: handle.fd for name, handle in opened.items()}
    peer_hints = hints.get("veth_peers", {})
    dumps, by_helper = fanout.read_all(present, lambda name: _read_here(kernel, opened[name]),
                                       lambda name: _read_alone(fds, name, peer_hints),
                                       fanout.helpers_for(len(present)))
    seen = {}
    for name in present:
        *dumps[name], seen[name], nsids = dumps[name]
        if name in by_helper:
            kernel.log(name, "link, address, rule, route, neighbour and qdisc dumps, nftables generation "
                       "(read by a helper process)")
            opened[name].note_read(dumps[name][0], nsids)

    peers = _resolve_peers(kernel, dumps, peer_hints, opened)
    out = []
    for name, (link_msgs, addr_msgs, route_msgs, neigh_msgs, qdisc_msgs, rule_msgs) in dumps.items():
        link_resources = links.to_resources(name, link_msgs, peers, dumps)
        # Addresses, routes and neighbours of a device netkeel does not manage are part of it.
        foreign = {r.key[1] for r in link_resources if r.owner == FOREIGN}
        by_index = {link.index: link.ifname for link in link_msgs}
        out.extend(namespaces.read(kernel, name))
        out.extend(link_resources)
        out.extend(r for r in addresses.to_resources(name, addr_msgs, by_index) if r.key[1] not in foreign)
        out.extend(r for r in routes.to_resources(name, route_msgs, by_index) if r.get("dev") not in foreign)
        out.extend(r for r in neighbours.to_resources(name, neigh_msgs, by_index) if r.key[1] not in foreign)
        out.extend(r for r in fdb.to_resources(name, neigh_msgs, link_msgs) if r.key[1] not in foreign)
        out.extend(r for r in impairments.to_resources(name, qdisc_msgs, by_index)
                   if r.key[1] not in foreign)
        out.extend(rules.to_resources(name, rule_msgs))
        out.extend(sysctls.read(kernel, name, sysctl_names.get(name, ())))
        out.extend(nftables.read(kernel, name, [(link.ifname, link.index) for link in link_msgs], seen[name],
                                 opened[name]))
        out.extend(speakers.read(name))
    for name in present:
        kernel.ns(name)  # each name still leads to the namespace read (KernelError otherwise)
    return out


def _read_here(kernel, ns) -> tuple:
    """One open namespace's (links, addresses, routes, neighbours, qdiscs,
    rules, (cookie, nftables generation), {}), the last two read right after
    the dumps."""
    ns.open_reading_sockets()
    dumps = _dumps(ns.dump, lambda what, call, *args: kernel.request(ns.name, what, call, *args), links=ns.links)
    return (*dumps, (ns.cookie(), ns.generation()), {})


def _read_alone(fds: dict, name: str, peer_hints: dict) -> tuple:
    """The same, in a helper process (kernel/fanout.py), with sockets of its own
    made in the namespace (the caller's left alone), and, last, the id this
    namespace has for the namespace each of its veths' peers is expected in
    (`peer_hints`, the caller's to check): {namespace: nsid}."""
    from . import nftgen

    netns.setns(fds[name])  # for good: a helper goes from namespace to namespace, never back
    dump = DumpSocket()
    nfgen = nftgen.open_socket()
    try:
        dumps = _dumps(dump, lambda what, call, *args: call(*args))
        try:
            generation = nftgen.generation(nfgen)
        except OSError:
            generation = None
        nsids = {}
        for link in dumps[0]:
            other = peer_hints.get((name, link.ifname))
            if link.kind == "veth" and link.link_netnsid is not None and other in fds and other not in nsids:
                nsids[other] = dump.nsid_of(fds[other])
        return (*dumps, (dump.cookie(), generation), nsids)
    finally:
        dump.close()
        nfgen.close()


def _dumps(dump, request, links=None) -> tuple:
    link_msgs = request("link dump", links or dump.links)
    addr_msgs = request("addr dump", dump.addrs)
    rule_msgs = request("rule dump", dump.rules)
    # Other routing tables matter only through a rule made by hand: read them
    # then (every table), else the main table alone, as the kernel filters it.
    hand_rules = any(r.proto != rules.RTPROT_KERNEL for r in rule_msgs)
    route_msgs = request("route dump", dump.routes, None if hand_rules else routes.MAIN_TABLE)
    neigh_msgs = request("neighbour dump", dump.neighbours)
    if any(link.kind == "bridge" for link in link_msgs):  # a bridge's forwarding entries, with the neighbours
        neigh_msgs = neigh_msgs + request("bridge forwarding dump", dump.fdb)
    qdisc_msgs = request("qdisc dump", dump.qdiscs)
    return link_msgs, addr_msgs, route_msgs, neigh_msgs, qdisc_msgs, rule_msgs


def _resolve_peers(kernel, dumps: dict, hints: dict, opened: dict) -> dict:
    """(ns, ifname) -> "peer_ns/peer_ifname" for every veth end read (`opened`:
    the namespaces read, by name)."""
    index = {name: {link.index: link for link in d[0]} for name, d in dumps.items()}
    resolved: dict = {}
    for name, (link_msgs, *_) in dumps.items():
        for m in link_msgs:
            ifname = m.ifname
            if (name, ifname) in resolved or m.kind != "veth":
                continue
            peer_index = m.link
            nsid = m.link_netnsid
            if nsid is None:
                # Peer in the same namespace.
                candidates = [name]
            else:
                hinted = hints.get((name, ifname))
                # The hinted namespace first; the others only if it is not there
                # (lazily: a thousand namespaces would make this quadratic).
                candidates = itertools.chain([hinted] if hinted in dumps else [],
                                             (other for other in dumps if other not in (hinted, name)))
            peer = _find_peer(kernel, opened, name, m, nsid, candidates, index) or \
                _find_peer(kernel, opened, name, m, nsid, _outsiders(kernel, index, dumps), index)
            if peer is None:
                where = f"nsid {nsid}" if nsid is not None else "this namespace"
                resolved[(name, ifname)] = f"?/index {peer_index} in {where}"
                continue
            resolved[(name, ifname)] = f"{peer[0]}/{peer[1]}"
            resolved[peer] = f"{name}/{ifname}"
    return resolved


def _find_peer(kernel, opened, name, m, nsid, candidates, index):
    for other in candidates:
        peer_msg = index[other].get(m.link)
        if peer_msg is None or peer_msg.link != m.index:
            continue
        if nsid is not None and opened[name].nsid_of(opened.get(other) or kernel.ns(other)) != nsid:
            continue
        return (other, peer_msg.ifname)
    return None


def _outsiders(kernel, index: dict, read_set):
    """Namespaces outside the read set, their links dumped on first need (read
    only): a veth moved elsewhere by hand is then named, not just "unknown"."""
    for other in kernel.list_namespaces():
        if other in read_set:
            continue
        if other not in index:
            try:
                index[other] = {link.index: link for link in kernel.ns(other).links()}
            except Exception:  # it went away, or is not readable: skip it
                index[other] = {}
        yield other
