"""Duplicate addresses and VIPs, and neighbour entries that point nowhere:

- the same IPv4 address answered by two MACs: an ARP probe (toolkit/doctor/probe.py,
  RFC 5227, sender 0.0.0.0: it teaches nobody a neighbour entry) from one node of
  each segment, for every address declared or live on that segment, every answer
  collected for a short, bounded time;
- IPv6 duplicate address detection failures (an address flagged dadfailed);
- a VIP held by two nodes at once (split brain, as drift's reading of the
  speakers says: kinds/vrrp.py settle_owners);
- ARP/NDP entries pointing at a MAC that no interface of the segment has (a
  node whose device was replaced or moved: traffic to that address goes to a
  MAC nobody has until the entry times out; a permanent entry never does).

A segment is what one frame can reach: a veth pair, or a bridge with its ports
and what is at their other ends (from the live links).
"""

from __future__ import annotations

import ipaddress

from ...kinds.addr import KIND as ADDR
from .. import probe
from ..finding import Finding

NAME = "duplicates"
DOC = "duplicate IPv4 addresses (ARP), IPv6 DAD failures, VIPs held twice, stale ARP/NDP entries"

ARP_MS = 250                 # how long each segment's answers are collected
LIVE_STATES = ("reachable", "stale", "delay", "probe", "permanent", "noarp")


def run(ctx) -> list:
    return duplicate_ipv4(ctx) + dad_failures(ctx) + split_vips(ctx) + stale_neighbours(ctx)


# -- segments ---------------------------------------------------------------------------
def segments(ctx) -> list:
    """The lab's segments: sorted lists of (node, ifname), from the live links (veth
    pairs joined to their peers, bridge ports to their bridge), largest first."""
    links = ctx.links()
    parent = {end: end for end in links}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def join(a, b):
        if a in parent and b in parent:
            parent[find(a)] = find(b)

    for (node, ifname), link in links.items():
        peer = link.get("peer") or ""
        if "/" in peer and not peer.startswith("?"):
            peer_ns, _, peer_if = peer.partition("/")
            join((node, ifname), (ctx.node_of(peer_ns), peer_if))
        master = link.get("master") or ""
        if master and not master.startswith("#"):
            join((node, ifname), (node, master))
    groups: dict = {}
    for end in links:
        groups.setdefault(find(end), []).append(end)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1 or _addressed(ctx, g)),
                  key=lambda g: (-len(g), g))


def _addressed(ctx, group) -> bool:
    addresses = ctx.addresses()
    return any(addresses.get(end) for end in group)


def segment_of(ctx) -> dict:
    """(node, ifname) -> its segment (a tuple of (node, ifname))."""
    return {end: tuple(seg) for seg in segments(ctx) for end in seg}


def prober(ctx, segment) -> tuple | None:
    """The end to send a segment's probes from: not a bridge port (a frame sent on a
    port reaches only that port's wire), one that holds an IPv4 address if any does."""
    links, addresses = ctx.links(), ctx.addresses()
    usable = [end for end in segment if not (links[end].get("master") or "") and links[end].get("state") == "up"
              and end[1] != "lo"]
    with_v4 = [end for end in usable if any(a.version == 4 for a in addresses.get(end, ()))]
    return (with_v4 or usable or [None])[0]


def macs_of(ctx) -> dict:
    """MAC -> [(node, ifname)] of every live link."""
    out: dict = {}
    for end, link in ctx.links().items():
        mac = link.get("mac")
        if mac and mac != "00:00:00:00:00:00":
            out.setdefault(mac, []).append(end)
    return out


def vip_addresses(ctx) -> dict:
    """VIP ip -> (group name, [member (node, ifname)])."""
    return {ipaddress.ip_interface(a).ip: (g.name, [(m.node, m.interface) for m in g.members])
            for g in ctx.topology.vips for a in g.addresses}


def segment_addresses(ctx, segment) -> dict:
    """ip -> [(node, ifname)] that should or do hold it on this segment: declared by
    the manifest, live on an end of the segment, and VIPs whose members are on it."""
    members = set(segment)
    out: dict = {}
    for ip, end in ctx.owner_of_address().items():
        if end in members:
            out.setdefault(ip, []).append(end)
    for end, addrs in ctx.addresses().items():
        if end in members:
            for a in addrs:
                if end not in out.setdefault(a.ip, []):
                    out[a.ip].append(end)
    for ip, (_, ends) in vip_addresses(ctx).items():
        if any(e in members for e in ends):
            out.setdefault(ip, [])
    return out


def _name(ends) -> str:
    return ", ".join(f"{n}/{i}" for n, i in ends) or "no interface of the lab"


# -- the same IPv4 address answered by two MACs -------------------------------------------
def arp_answers(ctx) -> list:
    """[(segment, prober end, {ip: [mac, ...]} or {"error": ...})], one ARP probe per
    segment with IPv4 addresses, the probes in parallel."""
    jobs = []
    for seg in segments(ctx):
        targets = sorted(ip for ip in segment_addresses(ctx, seg) if ip.version == 4 and not ip.is_loopback)
        end = prober(ctx, seg)
        if targets and end is not None:
            jobs.append((seg, end, targets))

    def ask(job):
        seg, (node, ifname), targets = job
        found = probe.run(ctx.ns(node), ["arp", ifname, str(ARP_MS), ",".join(map(str, targets))],
                          timeout=ARP_MS / 1000 + 10)
        return (seg, (node, ifname), found.get("arp", {}) if "error" not in found else found)

    return ctx.parallel(ask, jobs)


def duplicate_ipv4(ctx, answers=None) -> list:
    answers = arp_answers(ctx) if answers is None else answers
    links, live, declared = ctx.links(), ctx.addresses(), ctx.owner_of_address()
    by_mac, vips = macs_of(ctx), vip_addresses(ctx)
    split = {ip for ip, _ in _split_reasons(ctx).items()}
    found = []
    for seg, end, seen in answers:
        if "error" in seen:
            continue
        my_mac = links[end].get("mac")
        mine = {a.ip for a in live.get(end, ())}
        for text, macs in sorted(seen.items()):
            ip = ipaddress.ip_address(text)
            macs = list(macs) + ([my_mac] if ip in mine and my_mac not in macs else [])
            if len(set(macs)) < 2 or ip in split:
                continue  # a VIP held twice is reported once, by split_vips
            holders = [(mac, by_mac.get(mac, [])) for mac in sorted(set(macs))]
            owner = declared.get(ip)
            extra = [e for _, ends in holders for e in ends if e != owner]
            evidence = [f"ARP who-has {ip} from {end[0]}/{end[1]}: answered by "
                        + " and ".join(f"{mac} ({_name(ends)})" for mac, ends in holders)]
            if ip in mine:
                evidence.append(f"{end[0]}/{end[1]} holds {ip} itself ({my_mac})")
            if owner:
                evidence.append(f"the manifest gives {ip} to {owner[0]}/{owner[1]}")
            elif ip in vips:
                evidence.append(f"{ip} is a VIP of group {vips[ip][0]}: one member holds it at a time")
            holding = sorted(e for e, addrs in live.items() if any(a.ip == ip for a in addrs))
            if holding:
                evidence.append(f"live on {_name(holding)}")
            # Where the extra copy lives, which may not be the interface that answered:
            # a node answers ARP on any interface for an address on its lo.
            undeclared = [e for e in holding if e != owner and e[0] in {x[0] for x in extra}] \
                or [e for e in extra if e in holding]
            fix = (f"remove {ip} from {_name(undeclared)} (the manifest does not give it there: `netkeel apply` "
                   f"removes it), or give that node its own address" if undeclared else
                   f"give each of {_name([e for _, ends in holders for e in ends])} an address of its own")
            found.append(Finding(
                check=NAME, title=f"{ip} is answered by {len(holders)} MACs", where=f"{ip} on {_name(seg[:1])}'s segment",
                evidence=tuple(evidence),
                why=(f"hosts on the segment cache whichever answer came last: traffic for {ip} goes to one "
                     f"holder or the other and flips, so connections break at random"),
                fix=fix, nodes=tuple(sorted({e[0] for _, ends in holders for e in ends}))))
    return found


# -- IPv6 DAD failures ------------------------------------------------------------------
def dad_failures(ctx, flags=None) -> list:
    """Addresses the kernel flagged dadfailed: another node on the segment has it."""
    nodes = [n.name for n in ctx.topology.nodes]
    flags = {node: ctx.kernel.address_flags(ctx.ns(node)) for node in nodes} if flags is None else flags
    by_ip: dict = {}
    for node, entries in flags.items():
        for e in entries:
            by_ip.setdefault(e["address"], []).append((node, e["dev"]))
    found = []
    for node, entries in sorted(flags.items()):
        for e in entries:
            if "dadfailed" not in e.get("flags", ()):
                continue
            others = [x for x in by_ip.get(e["address"], []) if x != (node, e["dev"])]
            evidence = [f"{node}/{e['dev']} {e['address']}/{e.get('prefixlen', '?')} flags "
                        f"{' '.join(e.get('flags', ()))}"]
            if others:
                evidence.append(f"{e['address']} is also on {_name(others)}")
            link_local = e["address"].lower().startswith("fe80:")
            owner = ctx.owner_of_address().get(ipaddress.ip_address(e["address"]))
            if link_local:
                fix = "give the interfaces distinct MACs (the manifest's `mac:`)"
            elif owner is not None and owner != (node, e["dev"]):
                fix = (f"the manifest gives {e['address']} to {owner[0]}/{owner[1]}: remove it from {node}/{e['dev']} "
                       f"(`netkeel apply` removes what the manifest does not declare)")
            else:
                fix = (f"remove the duplicate ({_name(others) if others else 'the other holder'}) or choose another "
                       f"address; then remove and add {e['address']} on {node}/{e['dev']} again (DAD runs once)")
            found.append(Finding(
                check=NAME, title=f"IPv6 duplicate address detection failed for {e['address']}",
                where=f"{node}/{e['dev']}", evidence=tuple(evidence),
                why=("the kernel found another node answering for the address and will not use it: "
                     + ("the link-local address is derived from the MAC, so two interfaces share a MAC on the "
                        "segment; neighbour discovery and routing over it fail" if link_local else
                        "traffic to and from it fails on this node")),
                fix=fix,
                nodes=tuple(sorted({node, *(o[0] for o in others)}))))
    return found


# -- a VIP held by two nodes ------------------------------------------------------------
def _split_reasons(ctx) -> dict:
    """VIP ip -> [(node, ifname, reason)] of every address drift reads as a VIP
    wrongly held (twice, on a dead speaker's node, on a backup), for the VIPs held
    twice or left behind by a speaker that is not running."""
    out: dict = {}
    for r in ctx.live:
        reason = r.get("reason") or ""
        if r.kind == ADDR.name and reason.startswith("VIP "):
            out.setdefault(ipaddress.ip_interface(r.key[2]).ip, []).append((ctx.node_of(r.ns), r.key[1], reason))
    return {ip: holders for ip, holders in out.items()
            if any("split brain" in why or "speaker is not running" in why for _, _, why in holders)}


def split_vips(ctx) -> list:
    vips = vip_addresses(ctx)
    found = []
    for ip, holders in sorted(_split_reasons(ctx).items()):
        group = vips.get(ip, ("?", []))[0]
        nodes = tuple(sorted({n for n, _, _ in holders}))
        evidence = tuple(sorted({f"{n}/{i} holds {ip}: {why}" for n, i, why in holders}))
        dead = sorted({n for n, _, why in holders if "speaker is not running" in why})
        if dead:
            # Not a partition between live speakers: one died (killed, hung and
            # put down) and left its address; apply starts it again.
            found.append(Finding(
                check=NAME, title=f"VIP {ip} of group {group} is left on {', '.join(dead)}, whose speaker is not "
                                  "running",
                where=f"VIP {ip}", evidence=evidence,
                why=("a speaker that dies leaves the VIP address on its interface: that node still answers ARP "
                     "for it" + (" while another member holds it too, so clients' caches flip between their "
                                 "MACs" if len(nodes) > 1 else "") + ", and nothing advertises for it there"),
                fix=(f"`netkeel apply` starts the speaker of group {group} on {', '.join(dead)} again (it takes "
                     "the VIP back or lets it go by the adverts it hears); `netkeel vip status` shows who "
                     "advertises"),
                nodes=nodes))
            continue
        found.append(Finding(
            check=NAME, title=f"VIP {ip} of group {group} is held by {len(nodes)} nodes at once",
            where=f"VIP {ip}", evidence=evidence,
            why=("split brain: both holders answer ARP for the VIP, clients' caches flip between their MACs and "
                 "connections through the virtual gateway break"),
            fix=(f"the members of group {group} must hear each other's adverts (VRRP, IP protocol 112, to "
                 f"224.0.0.18 on their segment): mend the link or firewall between them; `netkeel vip status` "
                 f"shows who advertises"),
            nodes=nodes))
    return found


# -- stale neighbour entries ------------------------------------------------------------
def stale_neighbours(ctx, tables=None) -> list:
    """Neighbour entries with a MAC that no interface of their segment has."""
    nodes = [n.name for n in ctx.topology.nodes]
    tables = {node: ctx.kernel.neighbour_entries(ctx.ns(node)) for node in nodes} if tables is None else tables
    links, seg_of, by_mac = ctx.links(), segment_of(ctx), macs_of(ctx)
    static = {(n.name, s.interface, str(ipaddress.ip_address(s.address))) for n in ctx.topology.nodes
              for s in n.neighbours}
    found = []
    for node, entries in sorted(tables.items()):
        for e in entries:
            end = (node, e["dev"])
            mac = (e.get("mac") or "").lower()
            if end not in seg_of or e.get("state") not in LIVE_STATES or not mac or mac == "00:00:00:00:00:00":
                continue
            if mac.startswith(("01:00:5e", "33:33", "ff:ff:ff")):
                continue  # multicast and broadcast mappings
            on_segment = {links[e2].get("mac") for e2 in seg_of[end]}
            if mac in on_segment:
                continue
            elsewhere = [x for x in by_mac.get(mac, []) if x not in seg_of[end]]
            declared = (node, e["dev"], e["address"]) in static
            evidence = [f"{node}/{e['dev']}: {e['address']} lladdr {mac} {e['state']}",
                        f"no interface on the segment ({_name(seg_of[end])}) has {mac}"]
            if elsewhere:
                evidence.append(f"{mac} is {_name(elsewhere)}, on another segment")
            owner = ctx.owner_of_address().get(ipaddress.ip_address(e["address"]))
            if owner and owner in links:
                evidence.append(f"{e['address']} belongs to {owner[0]}/{owner[1]}, whose MAC is "
                                f"{links[owner].get('mac')}")
            found.append(Finding(
                check=NAME, title=f"{node} sends {e['address']}'s traffic to {mac}, which is not on the segment",
                where=f"{node}/{e['dev']}", evidence=tuple(evidence),
                why=("frames for the address go to a MAC nobody on the segment has: they are lost "
                     + ("for good: a permanent entry never expires" if e["state"] == "permanent" else
                        "until the entry ages out and is resolved again")),
                fix=(f"correct the static entry's `mac:` in the manifest (the neighbours of {node})" if declared else
                     f"flush it: `ip -n {ctx.ns(node)} neigh del {e['address']} dev {e['dev']}` (it is resolved again "
                     f"on the next packet)"),
                severity="error" if e["state"] == "permanent" else "warning",
                nodes=(node,)))
    return found
