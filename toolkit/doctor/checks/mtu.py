"""MTU: a veth pair whose two ends disagree on the MTU (the smaller end silently
drops frames larger than its MTU that the other end sends)."""

from __future__ import annotations

from ..finding import Finding

NAME = "mtu"
DOC = "MTU mismatches on links, path MTU per pair, PMTUD black holes"


def run(ctx) -> list:
    return mismatched_links(ctx)


def mismatched_links(ctx) -> list:
    links = ctx.links()
    found, seen = [], set()
    for (node, ifname), link in sorted(links.items()):
        peer = link.get("peer")
        if link.get("kind") != "veth" or not peer or "/" not in peer:
            continue
        peer_ns, _, peer_if = peer.partition("/")
        other = (ctx.node_of(peer_ns), peer_if)
        if other not in links or frozenset({(node, ifname), other}) in seen:
            continue
        seen.add(frozenset({(node, ifname), other}))
        mine, theirs = link.get("mtu"), links[other].get("mtu")
        if mine == theirs or mine is None or theirs is None:
            continue
        small, big = sorted([((node, ifname), mine), (other, theirs)], key=lambda x: x[1])
        found.append(Finding(
            check=NAME, title=f"MTU mismatch on the link {node}/{ifname} - {other[0]}/{other[1]}",
            where=f"{node}/{ifname} - {other[0]}/{other[1]}",
            evidence=(f"{node}/{ifname} has MTU {mine}", f"{other[0]}/{other[1]} has MTU {theirs}"),
            why=(f"{big[0][0]}/{big[0][1]} sends frames of up to {big[1]} bytes; {small[0][0]}/{small[0][1]} "
                 f"drops every frame over {small[1]} without a word (no ICMP: a veth is not a router)"),
            fix=f"give both ends the same MTU (the link's `mtu:` in the manifest)",
            nodes=(node, other[0])))
    return found
