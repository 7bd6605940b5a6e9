"""Conntrack asymmetry: flows a forwarding node tracks that never see their
reply direction, because the reply comes back another way.

The traffic is the doctor's own probes (the mtu check's, or with --only
conntrack one echo request along each routed pair) and whatever the lab carries.
Each forwarding node's connection tracking table is read (netlink,
kernel/inspect.py);
an entry is forwarded when neither end of it is the node's own address. Those
without a reply (not seen_reply) are read again SETTLE_S later: one still
unreplied then is older than that, not a flow that just started. Each is
grouped per flow (source and destination addresses, the protocols and ports
between them listed) and reported once per node and source, and the reply's path
is walked from the replying node back to the source (the routes, hop by hop):
when it does not pass the node, that is the asymmetry. A stateful firewall
there drops the flow's later packets as invalid (or never lets replies it
never saw open anything); NAT there is never undone. The fix is the route
that would bring the reply back through the node: the first node on the
reply's path that shares a segment with it, routed through it (a manifest
diff where the route's line is found).
"""

from __future__ import annotations

import ipaddress
import time

from ..finding import Finding
from .gateways import forwards, via_diff
from .mtu import Router, pairs, sweep

NAME = "conntrack"
DOC = "forwarded flows whose replies never pass the node that tracks them (asymmetric routing)"

SETTLE_S = 1.5


def run(ctx, sleep=time.sleep, clock=time.monotonic) -> list:
    nodes = [n.name for n in ctx.topology.nodes if any(forwards(ctx, n.name, f) is not False for f in (4, 6))]
    if ctx.only == NAME and nodes:
        provoke(ctx)
    first = {node: _read(ctx, node) for node in nodes}
    started = clock()
    suspects = {node: unreplied(ctx, node, entries) for node, entries in first.items()}
    suspects = {node: found for node, found in suspects.items() if found}
    if not suspects:
        return []
    left = SETTLE_S - (clock() - started)
    if left > 0:
        sleep(left)
    still = {}
    for node, entries in suspects.items():
        again = {_ident(e): e for e in unreplied(ctx, node, _read(ctx, node))}
        kept = [e for e in entries if _ident(e) in again]
        if kept:
            still[node] = kept
    return judge(ctx, still, Router(ctx))


def provoke(ctx) -> None:
    """Run alone (--only conntrack), the check makes its own traffic: one echo request
    along each routed pair (the mtu check's sweep, cut to its first probe), so that
    a forwarding node has flows to show. In a whole doctor run the mtu check's probes
    have done that."""
    router = Router(ctx)
    sweep(ctx, pairs(ctx, router), most=1)


def _read(ctx, node):
    try:
        return ctx.kernel.conntrack_entries(ctx.ns(node))
    except Exception:  # a namespace that went away, a kernel without conntrack netlink
        return []


def _ident(e) -> tuple:
    return (e.get("id"), e.get("proto"), e.get("src"), e.get("dst"), e.get("sport"), e.get("dport"),
            e.get("icmp_id"))


def unreplied(ctx, node, entries) -> list:
    """The entries `node` forwards (neither end is its own address) that saw no reply."""
    own = {a.ip for (n, _), addrs in ctx.addresses().items() if n == node for a in addrs}
    out = []
    for e in entries:
        if e.get("seen_reply"):
            continue
        try:
            ends = {ipaddress.ip_address(e[k]) for k in ("src", "dst", "reply_src", "reply_dst") if e.get(k)}
        except ValueError:
            continue
        if ends & own or any(ip.is_loopback or ip.is_multicast for ip in ends):
            continue
        out.append(e)
    return out


def flow_of(e) -> tuple:
    """A flow: (src, dst, reply_src, reply_dst); its connections may differ in protocol and port."""
    return (e.get("src"), e.get("dst"), e.get("reply_src"), e.get("reply_dst"))


def service_of(e) -> str:
    """tcp:22, udp:53, icmp (type 8)."""
    if e.get("dport") is not None:
        return f"{e.get('proto')}:{e.get('dport')}"
    return f"{e.get('proto')}" + (f" (type {e.get('icmp_type')})" if e.get("icmp_type") is not None else "")


def _flow_text(flow) -> str:
    src, dst, reply_src, _ = flow
    nat = f" (answered by {reply_src})" if reply_src and reply_src != dst else ""
    return f"{src} -> {dst}{nat}"


def _services(group) -> str:
    counts: dict = {}
    for e in group:
        counts[service_of(e)] = counts.get(service_of(e), 0) + 1
    return ", ".join(f"{n} x {svc}" if n > 1 else svc for svc, n in sorted(counts.items()))


def judge(ctx, still: dict, router) -> list:
    """Findings for {node: [entries older than SETTLE_S without a reply]}: one per node
    and source address, each asymmetric flow from that source (per destination) named
    in its evidence."""
    holders = {}
    for (n, ifname), addrs in ctx.addresses().items():
        for a in addrs:
            holders.setdefault(a.ip, (n, ifname))
    found = []
    for node, entries in sorted(still.items()):
        flows: dict = {}
        for e in entries:
            flows.setdefault(flow_of(e), []).append(e)
        stories: dict = {}  # source address -> [(flow, group, forward, back, replier)]
        for flow, group in sorted(flows.items(), key=lambda x: tuple(str(v) for v in x[0])):
            src, dst, reply_src, reply_dst = flow
            replier = holders.get(ipaddress.ip_address(reply_src)) if reply_src else None
            sender = holders.get(ipaddress.ip_address(src)) if src else None
            if replier is None or sender is None or not reply_dst:
                continue  # an end outside the lab: nothing to walk
            forward = router.walk(sender[0], dst)
            back = router.walk(replier[0], reply_dst)
            if node not in [n for n, _, _ in forward["hops"]] or forward["to"] is None:
                continue  # the flow does not get through this node to its end: not this story
            if node in [n for n, _, _ in back["hops"]] or back["to"] is None:
                continue  # the reply does come this way (or goes nowhere): another story
            stories.setdefault(src, []).append((flow, group, forward, back, replier[0]))
        for src, told in stories.items():
            found.append(_finding(ctx, router, node, src, holders[ipaddress.ip_address(src)][0], told))
    return found


def _finding(ctx, router, node, src, sender, told) -> Finding:
    evidence, fixes, diff, nodes, ways = [], [], "", {node, sender}, []
    for flow, group, forward, back, replier in told:
        _, dst, _, reply_dst = flow
        states = sorted({e.get("state") for e in group if e.get("state")})
        evidence += [f"{node} tracks {len(group)} connection{'s' if len(group) > 1 else ''} {_flow_text(flow)} "
                     f"without a reply for over {SETTLE_S:g} s: {_services(group)}"
                     + (f" (tcp state {', '.join(states)})" if states else ""),
                     f"  forward path: {_path_text(forward)}",
                     f"  reply path: {_path_text(back)} (does not pass {node})"]
        between = [n for n, _, _ in back["hops"][1:]]
        ways.append(f"{replier} answers {reply_dst} " + (f"through {', '.join(between)}" if between else
                                                         f"directly (it is on {sender}'s segment)"))
        fix, one_diff = _drifted(ctx, forward, back) or _direct(ctx, sender, dst, back) or \
            _symmetric_route(ctx, router, node, back, reply_dst)
        if fix not in fixes:
            fixes.append(fix)
        diff = diff or one_diff
        nodes |= {replier, *(n for n, _, _ in back["hops"])}
    dsts = ", ".join(flow[1] for flow, *_ in told)
    return Finding(
        check=NAME, title=f"{node} never sees the replies to {src} ({sender}) from {dsts}",
        where=f"{node}: from {src}", evidence=tuple(evidence),
        why=(f"{'; '.join(ways)}: not through {node}, whose conntrack never sees the reply direction, so "
             f"these flows stay unreplied there; a stateful firewall on {node} drops their later packets as "
             f"invalid (a TCP connection opens, then hangs), and NAT made there is never undone"),
        fix="; ".join(fixes), diff=diff, nodes=tuple(sorted(nodes)))


def _path_text(path) -> str:
    hops = [f"{n}/{d}" for n, d, _ in path["hops"]]
    return " -> ".join(hops + [path["to"]] if path.get("to") else hops + [f"({path.get('stop')})"])


def _symmetric_route(ctx, router, node, back, reply_dst) -> tuple:
    """(fix text, diff) for the route that would bring the reply through `node`: the first
    node on the reply's path that shares a subnet with `node`, routed via `node`'s address
    there."""
    mine = {(n, i): addrs for (n, i), addrs in ctx.addresses().items() if n == node}
    target = ipaddress.ip_address(reply_dst)
    for here, dev, nxt in back["hops"]:
        theirs = [a for (n, _), addrs in ctx.addresses().items() if n == here for a in addrs]
        for (_, ifname), addrs in sorted(mine.items()):
            for a in addrs:
                if a.version != target.version or not any(a.ip in t.network for t in theirs):
                    continue
                prefix = _covering_route(ctx, here, target)
                if prefix is not None and str(a.ip) == _manifest_via(ctx, here, prefix):
                    continue
                what = "default route" if prefix is not None and prefix.prefixlen == 0 else \
                    f"route to {prefix or target}"
                text = f"{here}'s {what} via {a.ip} ({node}/{ifname}) instead of {nxt}: the replies then pass {node}"
                diff = via_diff(ctx.topology.source, here, str(nxt), str(a.ip)) if prefix else ""
                return text, diff
    return (f"make the return route from {back['hops'][0][0]} to {reply_dst} pass {node}, or the forward route "
            f"avoid it", "")


def _drifted(ctx, *paths) -> tuple | None:
    """(fix, "") when a node on the paths routes otherwise than the manifest says (a
    route changed by hand): putting the manifest back is the fix."""
    from ...kinds.route import KIND as ROUTE

    changed = []
    for node in dict.fromkeys(n for p in paths for n, _, _ in p["hops"]):
        model = ctx.topology.node(node)
        live = {r.key[1]: r.get("via") or "" for r in ctx.live if r.kind == ROUTE.name and ctx.node_of(r.ns) == node}
        for route in (model.routes if model else ()):
            if route.via and route.dst in live and live[route.dst] != route.via:
                to = "default" if ipaddress.ip_network(route.dst).prefixlen == 0 else route.dst
                changed.append(f"{node}'s route to {to} via {route.via} (live: via {live[route.dst] or 'no gateway'})")
    if not changed:
        return None
    return (f"`netkeel apply` puts back {', '.join(changed)}: the manifest's routes take both directions through "
            f"the same routers", "")


def _direct(ctx, sender, dst, back) -> tuple | None:
    """When the replier is on the sender's segment (its reply needs no router), the
    forward route is the one to change: to the replier's address there."""
    if len(back["hops"]) != 1:
        return None
    replier, _, _ = back["hops"][0]
    mine = [a for (n, _), addrs in ctx.addresses().items() if n == sender for a in addrs]
    theirs = [a.ip for (n, _), addrs in sorted(ctx.addresses().items()) if n == replier for a in addrs
              if any(a.ip in m.network for m in mine)]
    if not theirs:
        return None
    return (f"{replier} is on {sender}'s segment and answers directly: route {sender}'s traffic for {dst} via "
            f"{theirs[0]} ({replier}) rather than through another router", "")


def _manifest_via(ctx, node, prefix) -> str | None:
    model = ctx.topology.node(node)
    return next((r.via for r in (model.routes if model else ()) if ipaddress.ip_network(r.dst) == prefix), None)


def _covering_route(ctx, node, target):
    """The manifest's route of `node` that carries `target` (its `to:`), None if none."""
    model = ctx.topology.node(node)
    best = None
    for r in (model.routes if model else ()):
        net = ipaddress.ip_network(r.dst)
        if net.version == target.version and target in net and (best is None or net.prefixlen > best.prefixlen):
            best = net
    return best
