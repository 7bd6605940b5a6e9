"""Routing: forward and return paths per pair, and the return paths the
reverse-path filter drops.

For every pair the manifest means to reach each other (reachability.intents:
an echo request there, its reply back, after the manifest's NAT), the routing
walk (reachability.walk) runs on the live lab both ways, with the kernel's
route lookups (no rp_filter check on the way: these are the paths the routes
give). Then, at each node a path enters on interface IIF with source S:

- rp_filter strict (1: the larger of net.ipv4.conf.all.rp_filter and
  net.ipv4.conf.IIF.rp_filter): the node's own route to S must leave by IIF;
  when it leaves by another interface, the node drops the packet (an error
  finding per node and interface, naming the sysctl, both interfaces, the
  pairs and both paths);
- rp_filter loose (2): the node must have some route to S.

Asymmetric routing by itself is not a finding here (labs route asymmetrically
on purpose); it shows in the evidence of each rp_filter finding, both paths
side by side. What else it breaks is told elsewhere, once per story: a
stateful firewall that sees one direction only (the reachability check's
intent evaluates a reply as ct state invalid on a node the request did not
pass; checks/conntrack.py reads the conntrack tables), and default routes
whose gateway is no address on their segment (checks/gateways.py, which asks
ARP too). IPv6 has no rp_filter (only nftables' fib expression, which the
firewall evaluation reports as unknown).
"""

from __future__ import annotations

import ipaddress

from ..finding import Finding
from .reachability import REACHABLE, live_network, intents, rp_problem, walk

NAME = "routing"
DOC = "return paths that rp_filter drops (asymmetric routing, return-path mismatch)"

MAX_SHOWN = 6


def run(ctx) -> list:
    live = live_network(ctx)
    drops: dict = {}        # (node, iif) -> {"problem", "pairs": [], "paths": []}
    for pair, intent in sorted(intents(ctx).items(), key=lambda kv: (kv[0].source, kv[0].owner, kv[0].target)):
        if intent.verdict != REACHABLE:
            continue
        there = walk(live, pair.source, pair.target)
        if not there.reached or there.src is None:
            continue  # reachability says why
        back = walk(live, there.hops[-1].node, intent.reply_to or there.src, src=pair.target,
                    rewrite=dict(intent.rewrite))
        label = f"{pair.source} -> {pair.owner} {pair.target} (from {there.src})"
        paths = (f"there: {there.text()}", f"back: {back.text()}")
        for w, source in ((there, there.src), (back, pair.target)):
            if ipaddress.ip_address(source).version != 4:
                continue
            for hop in w.hops:
                if hop.iif is None:
                    continue
                problem = rp_problem(live, hop.node, hop.iif, source)
                if problem is None:
                    continue
                entry = drops.setdefault((hop.node, hop.iif), {"problem": problem, "pairs": [], "paths": []})
                entry["pairs"].append(f"{label}: {'the request' if w is there else 'the reply'} from {source}")
                entry["paths"].extend(p for p in paths if p not in entry["paths"])
                if not symmetric(there, back) and "asymmetric" not in entry:
                    entry["asymmetric"] = True
                break
    return [rp_finding(ctx, live, node, iif, entry) for (node, iif), entry in sorted(drops.items())]


def symmetric(there, back) -> bool:
    """Whether the return path is the forward path reversed, interface for interface."""
    forward = [(h.node, h.iif, h.oif) for h in there.hops]
    reverse = [(h.node, h.oif, h.iif) for h in reversed(back.hops)]
    return forward == reverse


def rp_finding(ctx, live, node: str, iif: str, entry: dict) -> Finding:
    problem, pairs = entry["problem"], entry["pairs"]
    mode, route = problem["mode"], problem["back"]
    dev = iif.replace(".", "/")
    settings = (f"net.ipv4.conf.all.rp_filter = {live.sysctl(node, 'net.ipv4.conf.all.rp_filter')}, "
                f"net.ipv4.conf.{iif}.rp_filter = {live.sysctl(node, f'net.ipv4.conf.{dev}.rp_filter')}")
    if route is None:
        back = "it has no route back to the source"
    else:
        back = f"its route back leaves by {route.get('dev')}" + (f" via {route['gateway']}" if route.get("gateway")
                                                                 else "")
    strictness = "strict" if mode == 1 else "loose"
    evidence = (f"{ctx.ns(node)}: {settings} ({strictness})",
                f"packets arrive on {node}/{iif}; {back}",
                f"{len(pairs)} flow(s) dropped:", *_capped(sorted(pairs)),
                *(("the paths there and back differ (asymmetric routing):",) if entry.get("asymmetric") else ()),
                *_capped(entry["paths"]))
    if mode == 1:
        fix = (f"make the return path symmetric (the route back to these sources on {node} by {iif}, or the "
               f"other end's route towards {node} through the interface its replies leave by), or set "
               f"net.ipv4.conf.all.rp_filter and net.ipv4.conf.{iif}.rp_filter to 2 (loose) on {node}")
    else:
        fix = f"give {node} a route back to these sources, or set rp_filter to 0 on {node}"
    return Finding(
        check=NAME, title=f"rp_filter on {node} drops what comes in on {iif}: the route back leaves "
                          f"{'by another interface' if route is not None else 'nowhere'}",
        where=f"{node}/{iif}", evidence=evidence,
        why=(f"{node} filters by reverse path ({strictness}): a packet arriving on {iif} is dropped "
             + ("unless the route back to its source leaves by the same interface" if mode == 1 else
                "unless it has a route back to its source") + "; the path there and the path back differ"),
        fix=fix, nodes=(node,))


def _capped(lines) -> list:
    lines = list(lines)
    if len(lines) <= MAX_SHOWN:
        return lines
    return lines[:MAX_SHOWN] + [f"... and {len(lines) - MAX_SHOWN} more"]
