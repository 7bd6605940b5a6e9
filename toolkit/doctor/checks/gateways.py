"""Gateways: each node's default route, checked where it leads.

- a gateway that is no address of any node on the route's segment (declared,
  live, or a VIP of a group there): every packet for the default route is sent
  to a neighbour that does not exist;
- an IPv4 gateway that does not answer ARP from the node's interface (its
  holder is down, or lost the address);
- one that answers from a MAC that is not the MAC of the node the manifest
  gives the address to (another node holds it too, or instead);
- one held by a node that does not forward (ip_forward 0), while the lab has
  addresses only the default route reaches: the gateway answers, and drops
  everything beyond the segment without a word.

The fix is the manifest change, as a diff of the manifest's text (the model
keeps no line numbers: the line is found by its text, the `via:` of that
node's default route), or `netkeel apply` when the manifest is right and the
live route was changed by hand.
"""

from __future__ import annotations

import difflib
import ipaddress
import re

from ...core.owners import FOREIGN
from ...kinds.nft_table import KIND as NFT_TABLE
from ...kinds.route import KIND as ROUTE
from .. import probe
from ..finding import Finding
from .duplicates import macs_of, segment_addresses, segment_of, vip_addresses, _name

NAME = "gateways"
DOC = "default routes whose gateway is missing, silent, or answers from an unexpected MAC"

ARP_MS = 300
DEFAULTS = ("0.0.0.0/0", "::/0")
FORWARDING = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}


def run(ctx) -> list:
    routes = default_routes(ctx)
    answers = arp_gateways(ctx, routes)
    return judge(ctx, routes, answers)


def default_routes(ctx) -> list:
    """[(node, family, via, dev)] of the live default routes with a gateway."""
    out = []
    addresses = ctx.addresses()
    for r in ctx.live:
        if r.kind == ROUTE.name and r.key[1] in DEFAULTS and r.get("via"):
            via, node = ipaddress.ip_address(r.get("via")), ctx.node_of(r.ns)
            dev = r.get("dev") or next((i for (n, i), addrs in sorted(addresses.items()) if n == node
                                        for a in addrs if a.version == via.version and via in a.network), None)
            out.append((node, via.version, via, dev))
    return sorted(out, key=lambda x: (x[0], x[1], str(x[2])))


def arp_gateways(ctx, routes) -> dict:
    """(node, dev, via) -> the MACs that answered ARP for it (or {"error"}), for IPv4
    gateways that are addresses on their segment. One probe per segment and gateway,
    from the first node that routes through it (every node of a segment hears the
    same answers), the probes in parallel."""
    seg_of = segment_of(ctx)
    groups: dict = {}
    for node, family, via, dev in routes:
        seg = seg_of.get((node, dev))
        if family == 4 and seg is not None and via in segment_addresses(ctx, seg):
            groups.setdefault((seg, via), []).append((node, dev, via))
    jobs = [(users[0], users) for users in groups.values()]

    def ask(job):
        (node, dev, via), _ = job
        found = probe.run(ctx.ns(node), ["arp", dev, str(ARP_MS), str(via)], timeout=ARP_MS / 1000 + 10)
        return found if "error" in found else found.get("arp", {}).get(str(via), [])

    return {user: answer for (_, users), answer in zip(jobs, ctx.parallel(ask, jobs)) for user in users}


def expected_macs(ctx, via, segment) -> dict:
    """MAC -> (node, ifname) of who should answer for `via`: the node the manifest gives
    it to, or for a VIP the members on the segment (the active one answers)."""
    links = ctx.links()
    owner = ctx.owner_of_address().get(via)
    ends = [owner] if owner else [e for e in vip_addresses(ctx).get(via, (None, []))[1] if e in segment]
    return {links[e].get("mac"): e for e in ends if e in links and links[e].get("mac")}


def judge(ctx, routes, answers) -> list:
    seg_of, by_mac, links = segment_of(ctx), macs_of(ctx), ctx.links()
    found = []
    for node, family, via, dev in routes:
        end = (node, dev)
        seg = seg_of.get(end)
        if seg is None:
            continue  # a device on no segment: the routing check's story
        on_segment = segment_addresses(ctx, seg)
        where = f"{node}: default via {via} dev {dev}"
        if via not in on_segment:
            found.append(_not_on_segment(ctx, node, family, via, dev, seg, on_segment))
            continue
        seen = answers.get((node, dev, via))
        expected = expected_macs(ctx, via, seg)
        if seen is None or (isinstance(seen, dict) and "error" in seen):
            # IPv6, or the probe could not run: what the manifest and sysctls say
            found.extend(_not_forwarding(ctx, node, family, via, dev, seg, on_segment, expected, None))
            continue
        holders = sorted(e for e, addrs in ctx.addresses().items() if any(a.ip == via for a in addrs))
        if not seen:
            evidence = [f"ARP who-has {via} from {node}/{dev}: no answer in {ARP_MS} ms"]
            for mac, e in sorted(expected.items(), key=lambda x: x[1]):
                state = links[e].get("state")
                has = e in holders
                evidence.append(f"{e[0]}/{e[1]} ({mac}) is {state}{'' if has else f' and does not hold {via}'}")
            healthy = bool(expected) and all(links[e].get("state") == "up" and e in holders for e in expected.values())
            # Tables no manifest declares, on the asking node and on the gateway's:
            # known by name only, any of them may drop the ARP exchange.
            suspects = {n: t for n in dict.fromkeys([node, *(e[0] for e in expected.values())])
                        if (t := _foreign_tables(ctx, n))}
            if healthy and suspects:
                # The gateway is up and holds the address: what is left is a firewall
                # netkeel does not own, which apply never touches.
                named = "; ".join(f"{n}: {', '.join(t)}" for n, t in suspects.items())
                found.append(Finding(
                    check=NAME, title=f"{node} hears nothing from its gateway {via}, which is up and holds it",
                    where=where, evidence=tuple(evidence + [f"tables netkeel does not own: {named}"]),
                    why=(f"a firewall netkeel does not own ({' or '.join(suspects)}) drops what {node} and its "
                         f"gateway send each other: the gateway is fine, and {node} reaches nothing beyond its "
                         "segment"),
                    fix=("look at the table(s) made by hand and remove the one that drops it (`ip netns exec "
                         f"{ctx.ns(next(iter(suspects)))} nft list ruleset`); `netkeel apply` never touches tables it "
                         "does not own"),
                    nodes=tuple(sorted({node, *suspects}))))
                continue
            found.append(Finding(
                check=NAME, title=f"{node}'s default gateway {via} does not answer", where=where,
                evidence=tuple(evidence),
                why=(f"{node} cannot resolve its gateway's MAC: every packet for a destination without a more "
                     f"specific route is dropped (host unreachable)"),
                fix=(f"bring the gateway back: `netkeel apply` restores {_name(expected.values())} as the manifest "
                     "declares it" if expected else "point the default route at a router on the segment"),
                nodes=tuple(sorted({node, *(e[0] for e in expected.values())}))))
            continue
        wrong = [mac for mac in seen if mac not in expected]
        if not wrong:
            found.extend(_not_forwarding(ctx, node, family, via, dev, seg, on_segment, expected, seen))
            continue
        evidence = [f"ARP who-has {via} from {node}/{dev}: answered by "
                    + " and ".join(f"{mac} ({_name(by_mac.get(mac, []))})" for mac in seen)]
        if expected:
            evidence.append(f"{via} should be answered by {' or '.join(f'{m} ({e[0]}/{e[1]})' for m, e in sorted(expected.items()))}")
        else:
            evidence.append(f"the manifest gives {via} to no node")
        impostors = sorted({e for mac in wrong for e in by_mac.get(mac, [])})
        found.append(Finding(
            check=NAME, title=f"{node}'s default gateway {via} answers from an unexpected MAC", where=where,
            evidence=tuple(evidence),
            why=(f"{node} sends its default traffic to {_name(impostors) if impostors else 'an unknown MAC'}, not to "
                 f"the router the manifest means: it is dropped there or takes another path"),
            fix=(f"remove {via} from {_name(impostors)} (`netkeel apply` removes what the manifest does not "
                 f"declare)" if impostors else f"find who holds {via}: `ip -n {ctx.ns(node)} neigh show {via}`"),
            nodes=tuple(sorted({node, *(e[0] for e in impostors)}))))
    return found


def _not_on_segment(ctx, node, family, via, dev, seg, on_segment) -> Finding:
    fix, diff, right, evidence = _manifest_fix(ctx, node, family, via, dev, seg, on_segment)
    evidence = [f"{node}: default via {via} dev {dev}",
                f"the addresses on that segment ({_name(seg)}) are "
                + (", ".join(str(a) for a in sorted(on_segment, key=str) if a.version == family) or "none")] + evidence
    return Finding(
        check=NAME, title=f"{node}'s default gateway {via} is no address on its segment",
        where=f"{node}: default via {via} dev {dev}", evidence=tuple(evidence),
        why=(f"{node} asks by ARP for {via} and nobody answers: everything routed by default (every "
             f"destination without a more specific route) is dropped"),
        fix=fix, diff=diff, nodes=(node,) + ((right[0],) if right else ()))


def _manifest_fix(ctx, node, family, via, dev, seg, on_segment, avoid=()) -> tuple:
    """(fix, diff, (router, address) or None, evidence lines) for a default route via the
    wrong address: `netkeel apply` when the manifest says otherwise (changed by hand),
    else the manifest diff to the segment's router."""
    declared = next((r.via for r in (ctx.topology.node(node).routes if ctx.topology.node(node) else ())
                     if r.dst in DEFAULTS and r.family == family and r.via), None)
    right = right_router(ctx, node, family, dev, seg, on_segment, avoid)
    if declared and ipaddress.ip_address(declared) != via:
        return (f"`netkeel apply` puts back the manifest's default route via {declared}", "", right,
                [f"the manifest says default via {declared}: the live route was changed by hand"])
    if right is not None:
        router, address = right
        return (f"route through {router}, the router on the segment: `via: {address}` in {node}'s default route",
                via_diff(ctx.topology.source, node, str(via), str(address)), right, [])
    return f"point {node}'s default route at a router on the segment of {node}/{dev}", "", None, []


def forwards(ctx, node: str, family: int) -> bool | None:
    """Whether `node` forwards the family: the live sysctl, else the manifest's; None
    when neither says."""
    name = FORWARDING[family]
    try:
        value = ctx.kernel.sysctl_value(ctx.ns(node), name)
    except Exception:
        model = ctx.topology.node(node)
        value = dict(model.sysctls).get(name) if model else None
    return None if value is None else str(value).strip() == "1"


def _not_forwarding(ctx, node, family, via, dev, seg, on_segment, expected, seen) -> list:
    """A gateway held by a node that does not forward, while the lab has addresses that
    only the default route reaches."""
    owners = sorted({e[0] for e in expected.values()} | {e[0] for e in on_segment.get(via, ())} - {node})
    if not owners or any(forwards(ctx, o, family) is not False for o in owners):
        return []
    own_nets = [a.network for (n, _), addrs in ctx.addresses().items() if n == node for a in addrs]
    beyond = sorted((ip for ip, (n, _) in ctx.owner_of_address().items()
                     if ip.version == family and n != node and not any(ip in net for net in own_nets)), key=str)
    if not beyond:
        return []  # nothing in the lab needs the default route
    declared = [o for o in owners if _declared_forwarding(ctx, o, family)]
    if declared:
        # The manifest is right and the kernel is not: turning forwarding back on is
        # the fix, not another route (found by review: the two findings disagreed).
        fix, diff, right = (f"`netkeel apply` turns forwarding back on on {' and '.join(declared)}, as the "
                            f"manifest declares ({FORWARDING[family]} = 1; it was changed by hand)"), "", None
        evidence = [f"the manifest declares {FORWARDING[family]} = 1 on {' and '.join(declared)}"]
    else:
        fix, diff, right, evidence = _manifest_fix(ctx, node, family, via, dev, seg, on_segment, avoid=owners)
    heard = (f"ARP who-has {via} from {node}/{dev}: answered by {', '.join(seen)} ({_name(expected.values())})"
             if seen else f"{via} is {_name(sorted(on_segment.get(via, ())))}'s")
    evidence = [heard] + [f"{o}: {FORWARDING[family]} = 0" for o in owners] +         [f"{len(beyond)} address{'es' if len(beyond) > 1 else ''} of the lab only the default route reaches: "
         + ", ".join(map(str, beyond[:4])) + (", ..." if len(beyond) > 4 else "")] + evidence
    return [Finding(
        check=NAME, title=f"{node}'s default gateway {via} is {' and '.join(owners)}, which does not forward",
        where=f"{node}: default via {via} dev {dev}", evidence=tuple(evidence),
        why=(f"the gateway answers (the segment looks fine from {node}), but {' and '.join(owners)} drops every "
             f"packet not addressed to itself, without an ICMP error: everything beyond the segment is lost"),
        fix=fix, diff=diff, nodes=tuple(sorted({node, *owners} | ({right[0]} if right else set()))))]


def _declared_forwarding(ctx, node: str, family: int) -> bool:
    """Whether the manifest turns forwarding on for `node` (the family's sysctl = 1)."""
    model = ctx.topology.node(node)
    value = dict(model.sysctls).get(FORWARDING[family]) if model else None
    return value is not None and str(value).strip() == "1"


def right_router(ctx, node, family, dev, seg, on_segment, avoid=()) -> tuple | None:
    """(node, address) of the router `node` should use on this segment: a VIP of a group
    whose members are there, else a node there that forwards and has an address in the
    subnet of `node`'s own address on `dev`."""
    mine = [a for a in ctx.addresses().get((node, dev), ()) if a.version == family]
    nets = [a.network for a in mine] or [ipaddress.ip_interface(a).network for n in ctx.topology.nodes
                                         if n.name == node for i in n.interfaces if i.name == dev
                                         for a in i.addresses if ipaddress.ip_interface(a).version == family]
    for ip, (group, ends) in sorted(vip_addresses(ctx).items(), key=lambda x: str(x[0])):
        if ip.version == family and any(e in seg for e in ends) and any(ip in n for n in nets):
            return (group, ip)
    for ip, ends in sorted(on_segment.items(), key=lambda x: str(x[0])):
        for other, _ in ends:
            if other != node and other not in avoid and ip.version == family and any(ip in n for n in nets) \
                    and forwards(ctx, other, family):
                return (other, ip)
    return None


def via_diff(path: str, node: str, old: str, new: str) -> str:
    """The unified diff of the manifest at `path` with the `via: OLD` of `node`'s
    default route made `via: NEW`; "" when the line cannot be found."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    lines = text.splitlines(keepends=True)
    index = via_line(lines, node, old)
    if index is None:
        return ""
    changed = list(lines)
    changed[index] = re.sub(r"(via:\s*[\"']?)" + re.escape(old) + r"([\"']?)", lambda m: m.group(1) + new + m.group(2),
                            lines[index], count=1)
    absolute = path.startswith("/")
    return "".join(difflib.unified_diff(lines, changed, fromfile=path if absolute else f"a/{path}",
                                        tofile=path if absolute else f"b/{path}"))


def via_line(lines: list, node: str, via: str) -> int | None:
    """The index of the line holding `via: VIA` in `node`'s block of the manifest's
    `nodes:` mapping (block or flow style), None if there is none."""
    in_nodes, key_indent, current = False, None, None
    pattern = re.compile(r"\bvia:\s*[\"']?" + re.escape(via) + r"[\"']?\s*(?:[,}#]|$)")
    for i, line in enumerate(lines):
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        indent = len(stripped) - len(stripped.lstrip())
        if indent == 0:
            in_nodes, key_indent, current = stripped.startswith("nodes:"), None, None
            continue
        if not in_nodes:
            continue
        if key_indent is None or indent <= key_indent:
            key_indent = indent
            current = stripped.strip().split(":", 1)[0].strip("\"'")
            if current == node and pattern.search(stripped):
                return i  # the whole node on one line
            continue
        if current == node and pattern.search(stripped):
            return i
    return None


def _foreign_tables(ctx, node: str) -> list:
    """"family name" of the nftables tables on `node` that netkeel does not own."""
    ns = ctx.ns(node)
    return sorted(f"{r.key[1]} {r.key[2]}" for r in ctx.live
                  if r.kind == NFT_TABLE.name and r.ns == ns and r.owner == FOREIGN)
