"""MTU: a veth pair whose two ends disagree on the MTU (the smaller end silently
drops frames larger than its MTU that the other end sends), and path MTU
discovery black holes.

The path MTU of each pair of nodes on a routed path (each node towards the
first IPv4 and first IPv6 address of every other node its routes lead to
through at least one router) is
measured with a DF size sweep from inside the source namespace
(toolkit/doctor/probe.py: one process per source, its destinations swept
together, at most 10 probes each, the lab's link MTUs tried first). A path
narrower than both ends' interfaces is fine as long as the router at the
narrow link tells the sender so ("fragmentation needed", ICMPv6 "packet too
big") and the sender hears it; when no such message came back while bigger
probes were lost without a word, PMTUD is a black hole there: TCP connections
open, then hang as soon as a full-size segment is sent. The router that should
have spoken is found by walking the route hop by hop, and the firewall rule
that drops its message by evaluating its way back (output at the router,
forward at each hop, input at the sender: toolkit/doctor/nftables.py) with the
manifest's policies.
"""

from __future__ import annotations

import ipaddress

from .. import probe
from ..finding import Finding

NAME = "mtu"
DOC = "MTU mismatches on links, path MTU per pair, PMTUD black holes"

FORWARDING = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}
FIRST_MS = 1000          # the first round of probes (reachability) waits this long
MAX_HOPS = 16


def run(ctx) -> list:
    return mismatched_links(ctx) + black_holes(ctx)


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
            fix=_mtu_fix(ctx, (node, ifname, mine), (other[0], other[1], theirs)),
            nodes=(node, other[0])))
    return found


def _mtu_fix(ctx, *ends) -> str:
    """Whose the mismatch is: a fault's (it ends with the fault), a hand change
    (apply puts the manifest's MTU back), or the manifest's own."""
    for node, ifname, _ in ends:
        for lease in ctx.faults:
            if any(op.get("op") == "device" and "mtu" in op.get("set", {}) and op.get("ns") == ctx.ns(node)
                   and op.get("dev") == ifname for op in lease.operations):
                return (f"fault {lease.fault} set the MTU of {node}/{ifname}: it ends with the fault "
                        f"(`netkeel chaos revert --fault {lease.fault}`)")
    drifted = []
    for node, ifname, live in ends:
        declared = ctx.topology.node(node).interface(ifname) if ctx.topology.node(node) else None
        if declared is not None and declared.mtu is not None and declared.mtu != live:
            drifted.append(f"{node}/{ifname} to {declared.mtu}")
    if drifted:
        return f"`netkeel apply` sets the manifest's MTU back ({', '.join(drifted)}; see `netkeel drift`)"
    return "give both ends the same MTU (the link's `mtu:` in the manifest, not each endpoint's own)"


# -- routes, hop by hop -------------------------------------------------------------------
class Router:
    """Route lookups in the lab's namespaces, cached: the kernel's (`ip route get`, through
    the backend) where it answers, else a longest-prefix match over the live routes and
    the connected prefixes of the live addresses."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.cache: dict = {}
        self.forwards: dict = {}  # (node, family) -> whether it forwards
        self.links, self.addrs = ctx.links(), ctx.addresses()  # read once: a walk asks them often
        self.local: dict = {}     # ip -> [(node, ifname)] holding it live
        for (node, ifname), addrs in self.addrs.items():
            for a in addrs:
                self.local.setdefault(a.ip, []).append((node, ifname))

    def lookup(self, node: str, dst) -> dict | None:
        """{"dev", "gateway"} of `node`'s route to `dst`; None: no route."""
        key = (node, str(dst))
        if key not in self.cache:
            self.cache[key] = self._kernel(node, dst)
        return self.cache[key]

    def _kernel(self, node, dst):
        try:
            found = self.ctx.kernel.route_get(self.ctx.ns(node), str(dst))
        except Exception:  # no lookup in this backend, or the namespace went: the static answer
            return self._static(node, dst)
        if found is None or "error" in found or found.get("type") not in (None, "unicast", "local"):
            return None
        return {"dev": found.get("dev"), "gateway": found.get("gateway"), "type": found.get("type")}

    def forwarding(self, node: str, family: int) -> bool:
        """Whether `node` forwards packets of the family: the live sysctl, else the manifest's."""
        key = (node, family)
        if key not in self.forwards:
            name = FORWARDING[family]
            value = None
            try:
                value = self.ctx.kernel.sysctl_value(self.ctx.ns(node), name)
            except Exception:
                model = self.ctx.topology.node(node)
                value = dict(model.sysctls).get(name) if model else None
            self.forwards[key] = str(value).strip() == "1"
        return self.forwards[key]

    def _static(self, node, dst):
        from ...kinds.route import KIND as ROUTE

        dst = ipaddress.ip_address(dst)
        best = None
        for (n, ifname), addrs in self.addrs.items():
            for a in addrs:
                if n == node and a.version == dst.version and dst in a.network:
                    if best is None or a.network.prefixlen > best[0]:
                        best = (a.network.prefixlen, ifname, None)
        for r in self.ctx.live:
            if r.kind == ROUTE.name and self.ctx.node_of(r.ns) == node:
                net = ipaddress.ip_network(r.key[1])
                if net.version == dst.version and dst in net and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, r.get("dev"), r.get("via") or None)
        if best is None:
            return None
        dev, gateway = best[1], best[2]
        if dev is None and gateway:  # a route read without its device: the one the gateway is on
            via = ipaddress.ip_address(gateway)
            dev = next((ifname for (n, ifname), addrs in self.addrs.items() if n == node
                        for a in addrs if a.version == via.version and via in a.network), None)
        return {"dev": dev, "gateway": gateway, "type": "unicast"}

    def walk(self, node: str, dst) -> dict:
        """The path a packet from `node` to `dst` takes: {"hops": [(node, dev, next ip)],
        "to": the node holding dst or None, "stop": why it ends}."""
        dst = ipaddress.ip_address(dst)
        hops, seen, here = [], set(), node
        while len(hops) < MAX_HOPS:
            if any(n == here for n, _ in self.local.get(dst, ())):
                return {"hops": hops, "to": here, "stop": "arrived"}
            if here in seen:
                return {"hops": hops, "to": None, "stop": f"a routing loop through {here}"}
            if hops and not self.forwarding(here, dst.version):
                return {"hops": hops, "to": None, "stop": f"{here} does not forward"}
            seen.add(here)
            route = self.lookup(here, dst)
            if route is None or not route.get("dev"):
                return {"hops": hops, "to": None, "stop": f"{here} has no route to {dst}"}
            nxt = ipaddress.ip_address(route["gateway"]) if route.get("gateway") else dst
            hops.append((here, route["dev"], nxt))
            holders = [n for n, _ in self.local.get(nxt, ())]
            if not holders:
                return {"hops": hops, "to": None, "stop": f"nobody holds {nxt}, {here}'s next hop"}
            here = holders[0]
        return {"hops": hops, "to": None, "stop": f"more than {MAX_HOPS} hops"}


# -- path MTU and black holes -----------------------------------------------------------
def first_addresses(ctx) -> dict:
    """node -> [its first IPv4 and first IPv6 address], from the manifest (loopbacks too:
    a router's service address is a destination like any other)."""
    out = {}
    for n in ctx.topology.nodes:
        picked = {}
        for i in n.interfaces:
            for a in i.addresses:
                ip = ipaddress.ip_interface(a).ip
                if not ip.is_loopback and not ip.is_link_local:
                    picked.setdefault(ip.version, ip)
        out[n.name] = [picked[v] for v in sorted(picked)]
    return out


def pairs(ctx, router: Router) -> list:
    """[(src node, dst ip, dst node, path)] of the pairs whose routes lead there through
    at least one router: only a router can narrow a path and owe the sender an ICMP
    error (on one segment a narrower end is a mismatched link, found without a probe)."""
    out = []
    firsts = first_addresses(ctx)
    for src in sorted(firsts):
        for dst_node, ips in sorted(firsts.items()):
            if dst_node == src:
                continue
            for ip in ips:
                path = router.walk(src, ip)
                if path["to"] == dst_node and len(path["hops"]) >= 2:
                    out.append((src, ip, dst_node, path))
    return out


def sweep(ctx, jobs, most: int = probe.MAX_PROBES) -> dict:
    """(src, dst ip) -> the probe's result for it; one probe process per source, at most
    `most` probes per destination."""
    links = ctx.links()
    candidates = sorted({l.get("mtu") for l in links.values() if l.get("mtu")})
    by_src: dict = {}
    for src, ip, _, path in jobs:
        node, dev, _ = path["hops"][0]
        top = links.get((node, dev), {}).get("mtu") if (node, dev) in links else None
        if top:
            by_src.setdefault(src, []).append(f"{ip}={top}")

    def ask(item):
        src, targets = item
        args = ["pmtu", str(FIRST_MS), ",".join(targets), ",".join(map(str, candidates)), str(most)]
        return src, probe.run(ctx.ns(src), args, timeout=FIRST_MS / 1000 + probe.MAX_PROBES * 1.1 + 10)

    out = {}
    for src, found in ctx.parallel(ask, sorted(by_src.items())):
        for ip, result in (found.get("pmtu") or {}).items():
            out[(src, ipaddress.ip_address(ip))] = result
    return out


def black_holes(ctx, router: Router | None = None, results: dict | None = None) -> list:
    router = router or Router(ctx)
    jobs = pairs(ctx, router)
    results = sweep(ctx, jobs) if results is None else results
    links = router.links
    found = []
    for src, ip, dst_node, path in jobs:
        result = results.get((src, ip))
        if not result or not result.get("reachable") or not result.get("path_mtu"):
            continue
        pmtu, top = result["path_mtu"], result["top"]
        src_addr = _source_address(router.addrs, path)
        back = router.walk(dst_node, src_addr) if src_addr is not None else {"hops": []}
        dst_end = (back["hops"][0][0], back["hops"][0][1]) if back["hops"] else None
        dst_mtu = links[dst_end].get("mtu") if dst_end in links else top
        if pmtu >= min(top, dst_mtu) or result.get("ptb"):
            continue  # as wide as an end, or the narrow hop said so: PMTUD works
        narrow = _narrow_hop(ctx, path, router.links)
        if narrow is None or narrow[0] == "mismatch":
            continue  # a veth that drops silently: mismatched_links names it
        found.append(_black_hole(ctx, router, src, ip, dst_node, path, result, narrow[1], src_addr, dst_mtu))
    return found


def _source_address(addresses, path):
    """The address the path's source sends from on its first hop (that device's first
    address of the family)."""
    node, dev, nxt = path["hops"][0]
    for a in addresses.get((node, dev), ()):
        if a.version == nxt.version:
            return a.ip
    return None


def _narrow_hop(ctx, path, links):
    """("router", (node, dev, mtu)) for the first node after the source that forwards onto
    a device narrower than the source's, ("mismatch", (node, dev, mtu)) when a veth whose
    far end is narrower than its near end comes first (it drops without a word, by
    design: mismatched_links reports it), None if neither."""
    top = None
    for i, (node, dev, _) in enumerate(path["hops"]):
        link = links.get((node, dev))
        mtu = link.get("mtu") if link is not None else None
        if mtu is None:
            continue
        top = mtu if top is None else top
        if i > 0 and mtu < top:
            return ("router", (node, dev, mtu))
        peer = link.get("peer") or ""
        if "/" in peer:
            peer_ns, _, peer_if = peer.partition("/")
            far = links.get((ctx.node_of(peer_ns), peer_if))
            if far is not None and far.get("mtu") and far.get("mtu") < mtu:
                return ("mismatch", (node, dev, far.get("mtu")))
    return None


def _black_hole(ctx, router, src, ip, dst_node, path, result, narrow, src_addr, dst_mtu) -> Finding:
    hop_node, hop_dev, hop_mtu = narrow
    family = ip.version
    message = "ICMP fragmentation needed (type 3 code 4)" if family == 4 else "ICMPv6 packet too big (type 2)"
    route = " -> ".join([f"{n}/{d}" for n, d, _ in path["hops"]] + [dst_node])
    evidence = [f"path {src} -> {ip} ({dst_node}): {route}",
                f"DF probes from {src}: {_probes(result)}",
                f"path MTU {result['path_mtu']}{'' if result.get('exact') else ' or a little more'}; "
                f"{src}'s interface MTU {result['top']}, {dst_node}'s {dst_mtu}",
                f"{hop_node}/{hop_dev} has MTU {hop_mtu}: {hop_node} must answer larger packets with {message}, "
                f"and no such message came back"]
    blame = _dropper(ctx, router, hop_node, hop_dev, src, src_addr, family)
    if blame:
        evidence.append(blame[1])
        fix = (f"let {message.split(' (')[0]} through: {blame[0]} drops it; accept it before that rule "
               f"(e.g. `ct state related accept`, or icmp type "
               f"{'destination-unreachable' if family == 4 else 'packet-too-big'} accept) in the policy")
        nodes = (src, dst_node, hop_node, blame[2])
    else:
        evidence.append("no rule of the manifest's policies on the way back drops it (a rule made by hand, "
                        "or a tunnel hop?)")
        fix = (f"find what drops {message.split(' (')[0]} between {hop_node} and {src}, or give the link at "
               f"{hop_node}/{hop_dev} the MTU of the ends")
        nodes = (src, dst_node, hop_node)
    return Finding(
        check=NAME, title=f"PMTUD black hole from {src} to {dst_node}: path MTU {result['path_mtu']}, "
                          f"{message.split(' (')[0]} never arrives",
        where=f"{src} -> {dst_node} ({ip}), at {hop_node}/{hop_dev}",
        evidence=tuple(evidence),
        why=(f"{src} sends full-size packets with Don't Fragment set (TCP does); {hop_node} cannot forward them "
             f"onto {hop_dev} and its {message} is lost, so {src} never learns to send smaller ones: connections "
             f"open, then hang on the first full-size segment"),
        fix=fix, nodes=tuple(sorted(set(nodes))))


def _probes(result) -> str:
    return ", ".join(f"{size} {outcome}" for size, outcome in result.get("probes", []))


def _dropper(ctx, router, hop_node, hop_dev, src, src_addr, family):
    """(where, evidence line, node) of the firewall rule that drops the router's ICMP
    error on its way back to the source, by the manifest's policies; None if none does."""
    try:
        from ..nftables import Packet, evaluate
    except ImportError:
        return None
    if src_addr is None:
        return None
    back = router.walk(hop_node, src_addr)
    if not back["hops"]:
        return None
    first_dev = back["hops"][0][1]
    from_addr = next((a.ip for a in ctx.addresses().get((hop_node, first_dev), ()) if a.version == family), None)
    if from_addr is None:
        return None
    kind = "destination-unreachable" if family == 4 else "packet-too-big"
    packet = Packet(family=family, l4proto="icmp" if family == 4 else "icmpv6", saddr=str(from_addr),
                    daddr=str(src_addr), icmp_type=kind, ct_state="related")
    steps = [(hop_node, "output", "", first_dev)]
    for i, (node, dev, _) in enumerate(back["hops"][1:], start=1):
        steps.append((node, "forward", _ingress(ctx, back["hops"][i - 1]), dev))
    steps.append((src, "input", _ingress(ctx, back["hops"][-1]), ""))
    for node, role, iif, oif in steps:
        model = ctx.topology.node(node)
        if model is None or not model.tables:
            continue
        result = evaluate(model.tables, packet.replace(iif=iif or "", oif=oif or ""), role)
        if result.verdict in ("drop", "reject"):
            return (f"{node}'s {result.where()}",
                    f"{node}'s firewall ({role}) drops {packet.icmp_type} from {from_addr} to {src_addr}: "
                    f"{result.where()}", node)
    return None


def _ingress(ctx, hop) -> str:
    """The device a hop's packet arrives on at the next node (the holder of its next ip
    on the hop's segment: the veth peer, or any holder)."""
    node, dev, nxt = hop
    link = ctx.links().get((node, dev), {})
    peer = link.get("peer") or ""
    for (n, ifname), addrs in ctx.addresses().items():
        if any(a.ip == nxt for a in addrs):
            if "/" not in peer or ctx.node_of(peer.partition("/")[0]) == n:
                return ifname
    return ""
