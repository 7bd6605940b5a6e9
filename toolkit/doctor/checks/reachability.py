"""Reachability: which nodes answer which, against what the manifest intends; each
unexpected failure traced to its hop and its cause.

1. Intent, from the manifest alone. For every node and every address of every
   other node (IPv4 and IPv6, a router's loopback addresses too; link-local
   ones and addresses declared twice skipped) the routing walk below runs over
   the manifest's network (its addresses, connected prefixes and routes; a
   node forwards unless the manifest turns forwarding off), there and back,
   and the node firewalls on both paths are evaluated statically
   (doctor/nftables.py: the echo request as a new connection, the echo reply
   as an established one, a masquerade sending the reply to the NAT node). A
   pair is intended reachable when both walks arrive and nothing drops;
   blocked by policy when a rule or chain policy drops or rejects it; blocked
   by routing when the manifest's routes do not lead there (not probed, never
   a finding); unknown when a rule holds something the evaluator cannot read.
2. Probes: one icmp_sweep agent per source namespace (toolkit/experiment/agent.py)
   pings all its targets at once, PINGS each; the agents run at the same time,
   at most MAX_AGENTS together, each bounded by its deadline.
3. Judgement. An intended-reachable pair that does not answer is traced on the
   live lab: the same walk with the kernel's own lookups (route_get with the
   packet's source and input interface, so that forwarding and rp_filter are
   checked as for the real packet), the live links, addresses and sysctls, then
   the live rulesets; the first hop that stops it names the cause: no route,
   a route of type blackhole/unreachable/prohibit, a down link, no neighbour
   owning the next hop, forwarding off, rp_filter, a routing loop, a firewall
   rule (the live one, with the manifest's rule and file:line, and whether the
   live table differs from the manifest), a table of a chaos fault, a table
   netkeel does not own. Failures with one cause make one finding that lists
   the pairs. A pair the policy blocks that answers is a finding too: the
   firewall does not do what the policy says.

Only ICMP echo is probed: the TCP and UDP ports a policy opens are not (a
closed port and a reject rule answer alike; that needs listeners in the lab).

The walk (`walk`) is pure: it runs over a Network, which answers route
lookups, forwarding, local addresses and the link layer (`Fabric`), and is
tested with a fake one. ManifestNetwork is the manifest's; LiveNetwork reads
the kernel (memoised, in the calling thread only: the kernel session is not
thread-safe; only the agents run in parallel).
"""

from __future__ import annotations

import errno as errnos
import functools
import ipaddress
import json
import math
import time
from dataclasses import dataclass, field

from ...core.owners import CHAOS_TABLE_PREFIX, FOREIGN, TABLE_PREFIX, is_managed
from ...errors import NetkeelError
from ...kinds.nft_canon import canonical_rule, desired_table_spec
from ...kinds.nft_table import KIND as NFT_TABLE
from ...model.firewall import Chain, NamedSet, Rule, Table
from ...model.defaults import DEFAULT_METRIC
from .. import nftables
from ..finding import Finding

NAME = "reachability"
DOC = "which node pairs answer pings, against what the manifest and its policies intend; each failure traced"

MAX_HOPS = 32
PINGS = 3                 # echo requests per pair
INTERVAL_MS = 0.5         # between two sends of one agent
TIMEOUT_MS = 600          # an echo request is lost after this long
MAX_AGENTS = 32           # agents running at once (ctx.parallel's workers times the group size)
AGENT_GRACE_S = 5.0       # past its expected end, an agent is stopped
MAX_PAIRS_SHOWN = 8       # pairs listed in a finding's evidence
RETRY_AFTER_S = 1.0       # before the lost pairs are probed again
DIAGNOSE_BUDGET_S = 20.0  # live tracing stops after this long (the rest is reported untraced)

REACHABLE, POLICY, ROUTING, UNKNOWN = "reachable", "policy", "routing", "unknown"

# Addresses are parsed once: a 100-node lab asks for hundreds of thousands of them.
_ip = functools.lru_cache(maxsize=1 << 16)(ipaddress.ip_address)


# --- the link layer -------------------------------------------------------------------------

@dataclass(frozen=True)
class Port:
    """One interface, as the walk sees it: `peer` (node, ifname) of a veth,
    `master` the bridge it is a port of, `addresses` ip_interface."""
    node: str
    name: str
    kind: str = "veth"
    peer: tuple | None = None
    master: str | None = None
    up: bool = True
    addresses: tuple = ()
    mac: str | None = None


class Fabric:
    """The link layer of a set of ports: which interfaces share a segment (veth
    pairs, bridges and their ports, across namespaces), who owns which address."""

    def __init__(self, ports):
        self.ports = {(p.node, p.name): p for p in ports}
        self._ports_of: dict = {}
        for p in self.ports.values():
            if p.master:
                self._ports_of.setdefault((p.node, p.master), []).append(p)
        self._segments: dict = {}
        self._next: dict = {}
        self._owners: dict = {}

    def segment(self, node: str, name: str) -> tuple:
        """(endpoints, down) of the segment `node/name` is on: endpoints are the
        other L3 interfaces (not bridge ports) it reaches, as (node, ifname);
        down the interfaces that are down and so cut it off from what lies behind."""
        key = (node, name)
        if key not in self._segments:
            seen, down, endpoints = {key}, [], []
            todo = [key]
            while todo:
                current = todo.pop()
                for nxt in self._neighbours(current):
                    if nxt in seen:
                        continue
                    seen.add(nxt)
                    port = self.ports[nxt]
                    if not port.up:
                        down.append(nxt)
                        continue
                    if not port.master:
                        endpoints.append(nxt)
                    todo.append(nxt)
            self._segments[key] = (sorted(endpoints), sorted(down))
        return self._segments[key]

    def _neighbours(self, key):
        port = self.ports.get(key)
        if port is None:
            return []
        out = []
        if port.peer and port.peer in self.ports:
            out.append(port.peer)
        if port.master and (port.node, port.master) in self.ports:
            out.append((port.node, port.master))
        if port.kind == "bridge":
            out.extend((p.node, p.name) for p in self._ports_of.get(key, ()))
        return out

    def owners(self, address) -> list:
        """(node, ifname) of the up interfaces holding `address`."""
        if not self._owners:
            for key, p in sorted(self.ports.items()):
                if p.up:
                    for a in p.addresses:
                        self._owners.setdefault(a.ip, []).append(key)
            self._owners[None] = []
        return list(self._owners.get(_ip(address), ()))

    def next_hop(self, node: str, dev: str, address) -> tuple:
        """((node, ifname) on the segment of node/dev that answers for `address`, or
        None; the down interfaces of the segment). IPv4: any interface of the
        node may hold it (Linux answers ARP for all its addresses); IPv6: the
        interface itself (neighbour solicitations are answered per interface);
        an IPv6 link-local address by its EUI-64 form of the interface's MAC."""
        key = (node, dev, address)
        if key not in self._next:
            self._next[key] = self._next_hop(node, dev, _ip(address))
        return self._next[key]

    def _next_hop(self, node: str, dev: str, address) -> tuple:
        endpoints, down = self.segment(node, dev)
        if address.version == 6 and address.is_link_local:
            found = [e for e in endpoints if _eui64(self.ports[e].mac) == address]
            if not found and len(endpoints) == 1:
                found = endpoints
            return (found[0] if found else None), down
        on_interface = [e for e in endpoints if any(a.ip == address for a in self.ports[e].addresses)]
        if on_interface:
            return on_interface[0], down
        if address.version == 4:
            holders = {n for n, _ in self.owners(address)}
            for e in endpoints:
                if e[0] in holders:
                    return e, down
        return None, down

    def address_on(self, node: str, dev: str, family: int, near=None) -> str | None:
        """An address of node/dev in `family` (the one on `near`'s subnet first)."""
        port = self.ports.get((node, dev))
        mine = [a for a in (port.addresses if port else ()) if a.version == family and not a.ip.is_link_local]
        if near is not None:
            near = _ip(near)
            for a in mine:
                if near in a.network:
                    return str(a.ip)
        return str(mine[0].ip) if mine else None


def _eui64(mac: str | None):
    if not mac:
        return None
    try:
        octets = [int(x, 16) for x in mac.split(":")]
    except ValueError:
        return None
    if len(octets) != 6:
        return None
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return ipaddress.ip_address("fe80::" + ":".join(f"{eui[i]:02x}{eui[i + 1]:02x}" for i in range(0, 8, 2)))


# --- networks: what a walk asks -----------------------------------------------------------------

class ManifestNetwork:
    """The network as the manifest declares it: connected prefixes of the
    declared addresses on interfaces that are up, the declared routes (longest
    prefix, then lowest metric), forwarding as the declared sysctls set it
    (a node forwards unless the manifest turns it off: the other nodes' routes
    through it say it is meant to)."""

    def __init__(self, topology):
        self.topology = topology
        ports, self.tables, self.sysctls, self.routes, self.local_addrs = [], {}, {}, {}, {}
        for node in topology.nodes:
            self.tables[node.name] = node.tables
            self.sysctls[node.name] = dict(node.sysctls)
            for i in node.interfaces:
                ports.append(Port(node.name, i.name, i.kind, tuple(i.peer) if i.peer else None, i.master or None,
                                  i.state != "down", tuple(ipaddress.ip_interface(a) for a in i.addresses), i.mac))
        self.fabric = Fabric(self._with_vips(topology, ports))
        for node in topology.nodes:
            table = []
            for i in node.interfaces:
                port = self.fabric.ports[(node.name, i.name)]
                if not port.up:
                    continue
                for a in port.addresses:
                    self.local_addrs.setdefault(node.name, set()).add(a.ip)
                    if i.kind != "loopback" and a.network.prefixlen < a.max_prefixlen:
                        metric = 256 if a.version == 6 else 0
                        table.append((a.network, metric, i.name, None, "connected"))
            for r in node.routes:
                net = ipaddress.ip_network(r.dst)
                dev = r.dev
                if dev is None and r.via:
                    via = ipaddress.ip_address(r.via)
                    dev = next((d for n, _, d, _, k in table if k == "connected" and via in n), None)
                if dev is None or not self.fabric.ports.get((node.name, dev), Port("", "")).up:
                    continue  # the kernel would refuse it: no way to its gateway
                metric = r.metric if r.metric is not None else DEFAULT_METRIC[r.family]
                table.append((net, metric, dev, r.via, f"to {r.dst}" + (f" via {r.via}" if r.via else "")
                              + (f" dev {r.dev}" if r.dev else "")))
            self.routes[node.name] = table
        self._cache: dict = {}

    @staticmethod
    def _with_vips(topology, ports) -> list:
        """A VIP group's addresses on its highest-priority member's interface (where
        they are meant to be while all is well)."""
        extra: dict = {}
        for group in getattr(topology, "vips", ()):
            if group.members:
                top = max(group.members, key=lambda m: m.priority)
                extra.setdefault((top.node, top.interface), []).extend(
                    ipaddress.ip_interface(a) for a in group.addresses)
        return [Port(p.node, p.name, p.kind, p.peer, p.master, p.up, p.addresses + tuple(extra[(p.node, p.name)]),
                     p.mac) if (p.node, p.name) in extra else p for p in ports]

    def route(self, node, dst, src=None, iif=None):
        key = (node, dst)
        if key not in self._cache:
            self._cache[key] = self._lookup(node, dst)
        return self._cache[key]

    def _lookup(self, node, dst):
        address = _ip(dst)
        if self.local(node, address):
            return {"dev": "lo", "gateway": None, "src": str(address), "type": "local"}
        best = self.declared_route(node, address)
        if best is None:
            return None
        net, metric, dev, via, _ = best
        return {"dev": dev, "gateway": via, "src": self.fabric.address_on(node, dev, address.version, via or address)
                or self._any_address(node, address.version), "type": "unicast"}

    def declared_route(self, node, address):
        """(network, metric, dev, via, text) of the manifest's route for `address` in `node`."""
        address = _ip(address)
        best = None
        for entry in self.routes.get(node, ()):
            net, metric = entry[0], entry[1]
            if net.version != address.version or address not in net:
                continue
            if best is None or (net.prefixlen, -metric) > (best[0].prefixlen, -best[1]):
                best = entry
        return best

    def _any_address(self, node, family):
        found = sorted(str(a) for a in self.local_addrs.get(node, ()) if a.version == family and not a.is_loopback)
        return found[0] if found else None

    def forwarding(self, node, family, iif) -> str:
        values = self.sysctls.get(node, {})
        if family == 4:
            for name in ("net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding",
                         f"net.ipv4.conf.{iif.replace('.', '/')}.forwarding"):
                if values.get(name) == "0":
                    return f"{name} = 0 in the manifest"
            return ""
        if values.get("net.ipv6.conf.all.forwarding") == "0":
            return "net.ipv6.conf.all.forwarding = 0 in the manifest"
        return ""

    def local(self, node, address) -> bool:
        address = _ip(address)
        return address.is_loopback or address in self.local_addrs.get(node, ())


class LiveNetwork:
    """The running lab: the kernel's route lookups and sysctls (memoised), the
    live links and addresses as the doctor's context read them."""

    def __init__(self, ctx):
        self.ctx = ctx
        links, addresses = ctx.links(), ctx.addresses()
        ports = []
        for (node, ifname), r in links.items():
            peer = r.get("peer")
            peer_key = None
            if peer and "/" in peer:
                peer_ns, _, peer_if = peer.partition("/")
                peer_key = (ctx.node_of(peer_ns), peer_if)
            ports.append(Port(node, ifname, r.get("kind") or "", peer_key, r.get("master") or None,
                              r.get("state") != "down", tuple(addresses.get((node, ifname), ())), r.get("mac")))
        self.fabric = Fabric(ports)
        self.local_addrs: dict = {}
        for p in ports:
            if p.up:
                self.local_addrs.setdefault(p.node, set()).update(a.ip for a in p.addresses)
        self._routes: dict = {}
        self._sysctls: dict = {}
        self._tables: dict = {}

    def route(self, node, dst, src=None, iif=None):
        key = (node, dst, src, iif)
        if key not in self._routes:
            self._routes[key] = self.ctx.kernel.route_get(self.ctx.ns(node), dst, src=src, iif=iif)
        return self._routes[key]

    def sysctl(self, node, name):
        key = (node, name)
        if key not in self._sysctls:
            self._sysctls[key] = self.ctx.kernel.sysctl_value(self.ctx.ns(node), name)
        return self._sysctls[key]

    def forwarding(self, node, family, iif) -> str:
        dev = iif.replace(".", "/")
        if family == 4:
            if self.sysctl(node, f"net.ipv4.conf.{dev}.forwarding") != "0":
                return ""  # (None: no such device here, so nothing arrives on it)
            if self.sysctl(node, "net.ipv4.ip_forward") == "0":
                return "net.ipv4.ip_forward = 0"
            return f"net.ipv4.conf.{iif}.forwarding = 0"
        if self.sysctl(node, "net.ipv6.conf.all.forwarding") != "0":
            return ""
        if self.sysctl(node, f"net.ipv6.conf.{dev}.force_forwarding") == "1":
            return ""
        return "net.ipv6.conf.all.forwarding = 0"

    def rp_filter(self, node, iif) -> int:
        """The reverse-path filter the kernel applies on node/iif: the larger of
        net.ipv4.conf.all.rp_filter and net.ipv4.conf.IIF.rp_filter."""
        values = [self.sysctl(node, "net.ipv4.conf.all.rp_filter"),
                  self.sysctl(node, f"net.ipv4.conf.{iif.replace('.', '/')}.rp_filter")]
        return max((int(v) for v in values if v and v.isdigit()), default=0)

    def local(self, node, address) -> bool:
        address = _ip(address)
        return address.is_loopback or address in self.local_addrs.get(node, ())

    def tables(self, node) -> "LiveTables":
        if node not in self._tables:
            self._tables[node] = live_tables(self.ctx, node)
        return self._tables[node]


def live_network(ctx) -> LiveNetwork:
    """The context's live network, made once per doctor run (routing reads it too)."""
    found = getattr(ctx, "_doctor_live_network", None)
    if found is None:
        found = LiveNetwork(ctx)
        ctx._doctor_live_network = found
    return found


def manifest_network(ctx) -> ManifestNetwork:
    found = getattr(ctx, "_doctor_manifest_network", None)
    if found is None:
        found = ManifestNetwork(ctx.topology)
        ctx._doctor_manifest_network = found
    return found


# --- the walk ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hop:
    node: str
    iif: str | None             # where the packet came in (None where it starts)
    oif: str | None = None      # where it leaves (None where it arrives)
    gateway: str | None = None
    dst: str = ""               # the destination it is routed towards here (a NAT changes it)


@dataclass(frozen=True)
class Walk:
    """A packet's way through the network: its hops; reached, or where and why it stopped."""
    hops: tuple
    reached: bool
    src: str | None = None      # the source address the first hop chose
    cause: str = ""             # no-route, route-type, forwarding, rp_filter, link-down, no-neighbour, loop,
                                # too-long, error
    node: str = ""              # where it stopped
    iface: str = ""             # the interface concerned there
    detail: str = ""            # what the lookup said
    nexthop: str = ""           # the address it was looking for (no-neighbour)
    entry: str = ""             # the interface it came in by where it stopped ("" where it started)
    down: tuple = ()            # link-down: the (node, ifname) that are down

    @property
    def nodes(self) -> tuple:
        return tuple(h.node for h in self.hops)

    def text(self) -> str:
        """ns_client1[veth_c1] -> [veth_srv_c1]ns_server[veth_srv_c2] -> [veth_c2]ns_client2"""
        parts = []
        for h in self.hops:
            parts.append((f"[{h.iif}]" if h.iif else "") + h.node + (f"[{h.oif}]" if h.oif else ""))
        out = " -> ".join(parts)
        if not self.reached:
            stop = (f"[{self.entry}]" if self.entry else "") + self.node
            out = f"{out} -> {stop}" if parts else stop
            out += f" stops ({self.cause}: {self.detail})" if self.detail else f" stops ({self.cause})"
        return out


def walk(net, source: str, dst: str, *, strict: bool = False, src: str | None = None, start_iif: str | None = None,
         rewrite: dict | None = None) -> Walk:
    """Follow a packet from node `source` to address `dst` over `net`, at most
    MAX_HOPS nodes. `strict`: transit and arrival lookups carry the packet's
    source and input interface (the kernel then checks forwarding and rp_filter
    as for the real packet). `start_iif`: the packet came into `source` there
    (a walk resumed halfway). `rewrite` {node: address}: arriving at `node`,
    the packet goes on to `address` instead (the reply of a masqueraded flow,
    translated back at the NAT node)."""
    family = _ip(dst).version
    node, iif = source, start_iif
    hops: list = []
    seen = set()
    rewrite = dict(rewrite or {})

    def stop(cause, detail="", iface="", nexthop="", down=()):
        return Walk(tuple(hops), False, src, cause, node, iface, detail, nexthop, iif or "", tuple(down))

    for _ in range(MAX_HOPS):
        if (node, iif, dst) in seen:
            loop = " -> ".join([h.node for h in hops] + [node])
            return stop("loop", f"the packet comes back: {loop}")
        seen.add((node, iif, dst))
        if iif is not None and net.local(node, dst):
            if node in rewrite:
                dst = rewrite.pop(node)   # translated back here: on to the real destination
                family = _ip(dst).version
                if net.local(node, dst):
                    hops.append(Hop(node, iif, None, None, dst))
                    return Walk(tuple(hops), True, src)
            else:
                if strict:
                    answer = net.route(node, dst, src=src, iif=iif)
                    if answer is None or "error" in answer:
                        return stop(*_refusal(net, node, family, iif, answer, transit=False))
                hops.append(Hop(node, iif, None, None, dst))
                return Walk(tuple(hops), True, src)
        if iif is not None:
            off = net.forwarding(node, family, iif)
            if off:
                return stop("forwarding", off, iif)
            answer = net.route(node, dst, src=src, iif=iif) if strict else net.route(node, dst)
        else:
            answer = net.route(node, dst, src=src)
        if answer is None or "error" in answer:
            return stop(*_refusal(net, node, family, iif, answer, transit=iif is not None))
        kind = answer.get("type")
        if kind == "local":
            hops.append(Hop(node, iif, None, None, dst))
            return Walk(tuple(hops), True, src or answer.get("src"))
        if kind != "unicast":
            return stop("route-type", f"{node} routes {dst} to a route of type {kind}", answer.get("dev") or "")
        if src is None:
            src = answer.get("src")
        dev, gateway = answer.get("dev"), answer.get("gateway")
        port = net.fabric.ports.get((node, dev))
        if port is not None and not port.up:
            return stop("link-down", f"{node}/{dev} is down", dev, down=[(node, dev)])
        nexthop = gateway or dst
        hops.append(Hop(node, iif, dev, gateway, dst))
        found, down = net.fabric.next_hop(node, dev, nexthop)
        if found is None:
            hops.pop()
            if down:
                behind = ", ".join(f"{n}/{i}" for n, i in down)
                return stop("link-down", f"{behind} down on the segment of {node}/{dev}", dev, nexthop, down)
            return stop("no-neighbour", f"nobody on the segment of {node}/{dev} has {nexthop}", dev, nexthop)
        node, iif = found
    return stop("too-long", f"more than {MAX_HOPS} hops")


def _rp_filter_on(net, node, iif) -> bool:
    """Whether reverse-path filtering applies on `iif` (the kernel uses the larger
    of conf.all and conf.IFACE); without live sysctls, assume it does."""
    read = getattr(net, "sysctl", None)
    if read is None:
        return True
    values = [read(node, f"net.ipv4.conf.{name.replace('.', '/')}.rp_filter") for name in ("all", iif)]
    return any(v not in (None, "0") for v in values)


def _refusal(net, node, family, iif, answer, transit: bool) -> tuple:
    """(cause, detail, iface) of a route lookup that gave no route."""
    if answer is None:
        return "no-route", f"{node} has no route", ""
    code = answer.get("errno")
    text = f"{answer.get('errno_name') or code}: {answer.get('error')}"
    if iif is not None and code in (errnos.EINVAL, errnos.EXDEV):
        if _rp_filter_on(net, node, iif):
            return "rp_filter", f"the kernel refuses the source on {iif} ({text})", iif
        # rp_filter is off: the kernel calls the source martian (one of this node's own
        # addresses, or not a valid source at all).
        return "martian", f"the kernel refuses what arrives on {iif} as martian ({text}), with rp_filter off", iif
    if iif is not None and code == errnos.EHOSTUNREACH and transit:
        off = net.forwarding(node, family, iif)
        if off:
            return "forwarding", off, iif
    if code == errnos.EHOSTUNREACH:
        return "route-type", f"a route of type unreachable ({text})", ""
    if code == errnos.EACCES:
        return "route-type", f"a route of type prohibit ({text})", ""
    return "error", text, iif or ""


# --- firewalls along a walk --------------------------------------------------------------------

@dataclass(frozen=True)
class Blocked:
    """A node's firewall's answer that stops the packet (drop, reject) or that
    the evaluator cannot give (unknown)."""
    node: str
    result: object              # nftables.Result
    live: bool = False


def along(tables_of, w: Walk, packet, seen=None) -> tuple:
    """(Blocked or None, [(node, oif, Nat)]) for `packet` along walk `w`: each
    hop's firewall in its role there (output where it starts, input where it
    arrives, forward between). `seen`: for a reply, the nodes the request
    passed; elsewhere the reply has no connection (ct state invalid: an echo
    reply nobody asked for)."""
    nat = []
    for h in w.hops:
        role = "output" if h.iif is None else "input" if h.oif is None else "forward"
        daddr = h.dst or packet.daddr
        here = packet.replace(iif=h.iif or "", oif=h.oif or "", daddr=daddr)
        if seen is not None and h.node not in seen:
            here = here.replace(ct_state="invalid", ct_status=frozenset())
        result = nftables.evaluate(tables_of(h.node), here, role)
        for n in result.nat:
            nat.append((h.node, h.oif, n))
        if result.verdict != nftables.ACCEPT:
            return Blocked(h.node, result), nat
    return None, nat


def echo(family: int, src: str, dst: str, reply: bool = False):
    proto = "icmpv6" if family == 6 else "icmp"
    return nftables.Packet(family, proto, src, dst, icmp_type="echo-reply" if reply else "echo-request",
                           ct_state="established" if reply else "new",
                           ct_status=frozenset({"seen-reply", "confirmed"}) if reply else frozenset())


def reply_plan(net, fwd: Walk, nat: list, src: str) -> tuple:
    """(address the reply goes to, rewrite) after the forward path's NAT: a
    masquerade or snat at node H makes the reply go to H's address, and H
    sends it on to `src`."""
    for node, oif, n in nat:
        if n.kind in ("masquerade", "snat"):
            address = n.addr
            if address is None:
                nexthop = next((h.gateway or h.dst for h in fwd.hops if h.node == node), None)
                address = net.fabric.address_on(node, oif, ipaddress.ip_address(src).version, nexthop)
            if address:
                return address, {node: src}
    return src, {}


# --- intent ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    source: str                 # node
    target: str                 # address
    owner: str                  # the node that holds it
    iface: str                  # ... on this interface


@dataclass(frozen=True)
class Intent:
    verdict: str                # reachable, policy, routing, unknown
    forward: Walk | None = None
    back: Walk | None = None
    blocked: Blocked | None = None
    direction: str = ""         # where the policy blocks it: "there" or "back"
    reply_to: str = ""          # where the reply goes (the NAT node's address after a masquerade)
    rewrite: tuple = ()         # ((node, address),): where the reply is translated back


def pairs_of(topology) -> list:
    """Every (node, address of another node) to probe: link-local addresses and
    addresses declared on more than one node left out."""
    holders: dict = {}
    for node in topology.nodes:
        for i in node.interfaces:
            if i.state == "down":
                continue
            for a in i.addresses:
                ip = ipaddress.ip_interface(a).ip
                if not ip.is_link_local:
                    holders.setdefault(ip, []).append((node.name, i.name))
    out = []
    for node in topology.nodes:
        for ip, where in sorted(holders.items(), key=lambda kv: (kv[0].version, kv[0])):
            if len({n for n, _ in where}) != 1 or where[0][0] == node.name:
                continue
            out.append(Pair(node.name, str(ip), where[0][0], where[0][1]))
    return out


def intend(net: ManifestNetwork, pair: Pair) -> Intent:
    """What the manifest intends for an echo request from pair.source to pair.target."""
    fwd = walk(net, pair.source, pair.target)
    if not fwd.reached:
        return Intent(ROUTING, fwd)
    family = ipaddress.ip_address(pair.target).version
    src = fwd.src
    if src is None:
        return Intent(ROUTING, fwd)
    blocked, nat = along(lambda n: net.tables.get(n, ()), fwd, echo(family, src, pair.target))
    if blocked is not None:
        return Intent(POLICY if blocked.result.decided else UNKNOWN, fwd, None, blocked, "there")
    reply_to, rewrite = reply_plan(net, fwd, nat, src)
    back = walk(net, fwd.hops[-1].node, reply_to, src=pair.target, rewrite=rewrite)
    nat_back = (reply_to, tuple(sorted(rewrite.items())))
    if not back.reached:
        return Intent(ROUTING, fwd, back, None, "", *nat_back)
    blocked, _ = along(lambda n: net.tables.get(n, ()), back, echo(family, pair.target, reply_to, reply=True),
                       set(fwd.nodes))
    if blocked is not None:
        return Intent(POLICY if blocked.result.decided else UNKNOWN, fwd, back, blocked, "back", *nat_back)
    return Intent(REACHABLE, fwd, back, None, "", *nat_back)


def intents(ctx) -> dict:
    """Pair -> Intent, for the context's manifest (made once per doctor run)."""
    found = getattr(ctx, "_doctor_intents", None)
    if found is None:
        net = manifest_network(ctx)
        found = {pair: intend(net, pair) for pair in pairs_of(ctx.topology)}
        ctx._doctor_intents = found
    return found


# --- probes ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    sent: int
    answered: int
    rtt_ms: float | None = None


def sweep(ctx, targets: dict) -> dict:
    """node -> {address: Answer}: one icmp_sweep agent per node, all at once (at
    most MAX_AGENTS together), each bounded by its deadline. Raises NetkeelError
    when an agent cannot run (a probe that did not run is not a lost one)."""
    from ...experiment.probes import AgentProcess

    nodes = sorted(n for n in targets if targets[n])
    if not nodes:
        return {}
    workers = min(8, len(nodes))
    group_size = max(1, min(MAX_AGENTS // workers, math.ceil(len(nodes) / workers)))
    groups = [nodes[i:i + group_size] for i in range(0, len(nodes), group_size)]

    def run_group(group):
        agents = []
        try:
            for node in group:
                wanted = targets[node]
                expected = len(wanted) * PINGS * INTERVAL_MS / 1000 + TIMEOUT_MS / 1000
                spec = {"mode": "icmp_sweep", "targets": wanted, "count": PINGS, "interval_ms": INTERVAL_MS,
                        "timeout_ms": TIMEOUT_MS, "deadline": time.time() + expected + AGENT_GRACE_S}
                agents.append((node, AgentProcess().start(ctx.ns(node), spec), expected))
            out = {}
            for node, agent, expected in agents:
                if not agent.wait(expected + AGENT_GRACE_S + 2):
                    agent.stop()
                answers = {s["target"]: Answer(s["sent"], s["answered"], s.get("rtt_ms"))
                           for s in agent.samples if "target" in s}
                if agent.error and not answers:
                    raise NetkeelError(f"the ping agent in {ctx.ns(node)} failed: {agent.error}")
                out[node] = answers
            return out
        finally:
            for _, agent, _ in agents:
                agent.stop()

    results = {}
    for part in ctx.parallel(run_group, groups):
        results.update(part)
    return results


# --- live firewalls ----------------------------------------------------------------------------

@dataclass
class LiveTables:
    """A node's live rulesets: the tables netkeel owns (as model Tables, their
    rules matched to the manifest's where they are the same), whether each
    differs from the manifest, and the tables it cannot evaluate."""
    tables: tuple = ()
    drift: dict = field(default_factory=dict)      # kernel name -> what differs, "" when nothing
    faults: tuple = ()          # "family name" of chaos fault tables
    foreign: tuple = ()         # "family name" of tables netkeel does not own


def live_tables(ctx, node: str) -> LiveTables:
    ns = ctx.ns(node)
    declared = {(t.family, t.kernel_name): t for t in ctx.topology.node(node).tables} \
        if ctx.topology.node(node) else {}
    out = LiveTables()
    tables, faults, foreign = [], [], []
    for r in ctx.live:
        if r.kind != NFT_TABLE.name or r.ns != ns:
            continue
        family, name = r.key[1], r.key[2]
        if name.startswith(CHAOS_TABLE_PREFIX):
            faults.append(f"{family} {name}")
            continue
        if not is_managed(r.owner):
            (foreign if r.owner == FOREIGN else faults).append(f"{family} {name}")
            continue
        table = _table_of(r, declared.get((family, name)))
        tables.append(table)
        want = declared.get((family, name))
        out.drift[name] = _differs(want, r)
    for (family, name), t in declared.items():
        if name not in out.drift:
            out.drift[name] = "missing from the kernel"
    out.tables, out.faults, out.foreign = tuple(tables), tuple(sorted(faults)), tuple(sorted(foreign))
    return out


def _differs(want, live) -> str:
    if want is None:
        return "not in the manifest"
    desired = {k: v for k, v in desired_table_spec(want).items() if not k.startswith("_")}
    have = {k: v for k, v in live.fields().items() if not k.startswith("_") and k != "reason"}
    changed = sorted(k for k in set(desired) | set(have) if desired.get(k) != have.get(k))
    return ", ".join(changed)


def _table_of(resource, declared) -> Table:
    """A model Table from a live nft_table resource; rules the manifest has carry
    its source and text, others `(not in the manifest)`."""
    family, kernel_name = resource.key[1], resource.key[2]
    known = {}
    if declared is not None:
        for chain in declared.chains:
            for rule in chain.rules:
                if rule.expr is not None:
                    known[(chain.name, canonical_rule(json.loads(rule.expr), rule.comment, family))] = rule
    fields = resource.fields()
    chains, sets = [], []
    for key, value in sorted(fields.items()):
        what, _, name = key.partition(" ")
        if what == "chain":
            header = json.loads(value)
            rules = []
            for text in fields.get(f"rules {name}", ()):
                rule = known.get((name, text))
                if rule is None:
                    body = json.loads(text)
                    rule = Rule(json.dumps(body.get("expr", [])), None, body.get("comment"), "",
                                f"{_short(body.get('expr', []))} (not in the manifest)")
                rules.append(rule)
            chains.append(Chain(name, header.get("type"), header.get("hook"), header.get("prio"),
                                header.get("policy"), tuple(rules)))
        elif what == "set":
            spec = json.loads(value)
            sets.append(NamedSet(name, spec.get("type"), tuple(spec.get("flags", ())), tuple(spec.get("elements", ()))))
    source = declared.source if declared is not None else ""
    return Table(kernel_name[len(TABLE_PREFIX):] if kernel_name.startswith(TABLE_PREFIX) else kernel_name, family,
                 tuple(chains), tuple(sets), source)


def _short(expr) -> str:
    text = json.dumps(expr, separators=(",", ":"))
    return text if len(text) <= 160 else text[:157] + "..."


# --- tracing failures ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Cause:
    """Why a pair does not answer: the hop and the reason. `key` groups the
    pairs one cause breaks into one finding."""
    key: tuple
    title: str
    where: str
    node: str
    evidence: tuple = ()
    why: str = ""
    fix: str = ""
    source: str = ""            # the packet's source address, where it matters (rp_filter)
    nodes: tuple = ()           # the nodes it concerns, when more than `node`


def trace(ctx, live: LiveNetwork, plan: ManifestNetwork, pair: Pair, intent: Intent) -> tuple:
    """(Cause, the live walks as text) of a pair that does not answer."""
    fwd = walk(live, pair.source, pair.target, strict=True)
    shown = [f"there: {fwd.text()}"]
    if not fwd.reached:
        return walk_cause(ctx, live, plan, fwd, pair.target, "there"), shown
    family = ipaddress.ip_address(pair.target).version
    src = fwd.src or (intent.forward.src if intent.forward else None)
    live_tables_of = lambda n: live.tables(n).tables  # noqa: E731
    blocked, nat = along(live_tables_of, fwd, echo(family, src, pair.target))
    if blocked is not None:
        return firewall_cause(ctx, live, plan, blocked, "there", intent), shown
    reply_to, rewrite = reply_plan(live, fwd, nat, src)
    back = walk(live, fwd.hops[-1].node, reply_to, strict=True, src=pair.target, rewrite=rewrite)
    shown.append(f"back: {back.text()}")
    if not back.reached:
        return walk_cause(ctx, live, plan, back, reply_to, "back"), shown
    blocked, _ = along(live_tables_of, back, echo(family, pair.target, reply_to, reply=True), set(fwd.nodes))
    if blocked is not None:
        return firewall_cause(ctx, live, plan, blocked, "back", intent), shown
    for node in dict.fromkeys(fwd.nodes + back.nodes):
        tables = live.tables(node)
        if tables.faults:
            holders = [n.name for n in ctx.topology.nodes if set(live.tables(n.name).faults) & set(tables.faults)]
            return Cause(("fault", tables.faults), f"a chaos fault is active: {', '.join(tables.faults)}",
                         ", ".join(holders), node,
                         (f"its tables are in {', '.join(holders)}",),
                         "a fault's nftables table sits on the path: the routes and the lab's own rules pass the "
                         "packet, the fault's table is what is left",
                         "`netkeel chaos status` names the fault, `netkeel chaos revert --fault NAME` ends it (or "
                         "wait for its lease to expire)", nodes=tuple(holders)), shown
        if tables.foreign:
            return Cause(("foreign", node, tables.foreign), f"a firewall table netkeel does not own is on {node}",
                         node, node, (f"tables: {', '.join(tables.foreign)}",),
                         "the routes and the lab's own rules pass the packet; this table was not evaluated",
                         f"look at it: ip netns exec {ctx.ns(node)} nft list ruleset"), shown
    return Cause(("unexplained", pair.source, pair.owner), f"{pair.source} -> {pair.owner}: no answer, no cause found",
                 f"{pair.source} -> {pair.owner}", pair.source,
                 ("the live routes, forwarding, rp_filter and firewalls all pass it both ways",),
                 "the echo requests or replies are lost somewhere the doctor does not look (a neighbour entry, "
                 "a qdisc, an MTU, a process)",
                 "see the other checks' findings; capture on the path (tcpdump in the namespaces)"), shown


def walk_cause(ctx, live: LiveNetwork, plan: ManifestNetwork, w: Walk, dst: str, direction: str) -> Cause:
    node, iface = w.node, w.iface
    way = "on the way back" if direction == "back" else "on the way there"
    where = f"{node}/{iface}" if iface else node
    if w.cause == "forwarding":
        family = ipaddress.ip_address(dst).version
        sysctl = w.detail.split(" = ")[0]
        declared = plan.sysctls.get(node, {}).get(sysctl)
        fix = ("`netkeel apply` sets it back: the manifest has it as 1" if declared == "1" else
               f"set `{sysctl}: 1` in the sysctls of {node} in the manifest, and apply")
        return Cause(("forwarding", node, family, sysctl), f"{node} does not forward IPv{family}: {w.detail}", node,
                     node, (f"{ctx.ns(node)}: {w.detail}",),
                     f"a packet routed through {node} arrives on {iface} and is dropped there: the node is a router "
                     f"on this path and does not forward", fix)
    if w.cause == "rp_filter":
        return rp_cause(ctx, live, node, iface, w.detail, way, w.src)
    if w.cause == "no-route":
        evidence = [f"{ctx.ns(node)}: route get {dst}: no route"]
        declared = plan.declared_route(node, dst)
        port = live.fabric.ports.get((node, declared[2])) if declared is not None else None
        if port is not None and not port.up:  # the route went with its device
            return link_down_cause([(node, declared[2])], way, f"{node}/{declared[2]} is down: {node} has no route "
                                                               f"to {dst} without it")
        if declared is not None and declared[4] != "connected":
            route = declared[4].replace("to 0.0.0.0/0 ", "to default ").replace("to ::/0 ", "to default ")
            evidence.append(f"the manifest has the route `{route}` on {node}: it is not in the kernel")
            title = f"{node} lacks its route `{route}`"
            fix = "`netkeel apply` puts the manifest's route back (see `netkeel drift`)"
        elif declared is not None:
            evidence.append(f"the manifest has {declared[0]} connected on {node}/{declared[2]}: it is not in the "
                            "kernel (the address or the device is gone)")
            title = f"{node} lacks the connected prefix {declared[0]} on {declared[2]}"
            fix = "`netkeel apply` puts the address back (see `netkeel drift`)"
        else:
            title = f"{node} has no route to {dst}"
            fix = f"add a route to {dst} (or a default route) to {node} in the manifest"
        return Cause(("no-route", node, title), title, node, node, tuple(evidence),
                     f"{node} drops what it has no route for {way} (and answers ICMP network unreachable)", fix)
    if w.cause == "link-down":
        return link_down_cause(w.down, way, w.detail)
    if w.cause == "no-neighbour":
        nexthop = w.nexthop
        holders = plan.fabric.owners(nexthop)
        evidence = [w.detail]
        if holders:
            evidence.append(f"the manifest puts {nexthop} on {', '.join(f'{n}/{i}' for n, i in holders)}")
            live_holders = live.fabric.owners(nexthop)
            if not live_holders:
                evidence.append(f"{nexthop} is on no live interface")
        return Cause(("no-neighbour", node, iface, nexthop), f"{node} cannot reach its next hop {nexthop} {way}",
                     where, node, tuple(evidence),
                     f"{node} sends to {nexthop} through {iface}, and no interface on that segment answers for it "
                     "(ARP / neighbour discovery fails)",
                     f"route through an address on the segment of {node}/{iface}, or put {nexthop} back where the "
                     "manifest has it (`netkeel apply`)")
    if w.cause == "martian":
        return Cause(("martian", node, iface), f"{node} drops what arrives on {iface} {way} as martian", where, node,
                     (f"{ctx.ns(node)}: {w.detail}",),
                     f"{node} refuses a packet whose source is one of its own addresses (or no valid source): the "
                     "address is on two nodes, or a route sent the packet back to where it came from",
                     "look for a duplicate of the source address (`netkeel doctor --only duplicates`) and for a "
                     "route that sends it back (`netkeel drift` shows hand-made routes)")
    if w.cause == "loop":
        ring = tuple(sorted(set(w.nodes)))
        return Cause(("loop", ring), f"routing loop {way}: {w.detail.split(': ', 1)[-1]}", node, node, (w.detail,),
                     "each node routes the packet to the next one and it comes back: it circles until its TTL "
                     "runs out", "fix the routes of the nodes in the loop")
    return Cause((w.cause, node, iface), f"{node} drops it {way}: {w.detail}", where, node, (w.detail,),
                 "the kernel refuses to route it", "")


def link_down_cause(down, way: str, detail: str) -> Cause:
    names = ", ".join(f"{n}/{i}" for n, i in down)
    return Cause(("link-down", tuple(down)), f"{names} {'is' if len(down) == 1 else 'are'} down", names,
                 down[0][0], (detail,), f"a down interface passes nothing ({way}); the routes through it are gone",
                 "bring it up (`netkeel apply` does, when the manifest has it up)",
                 nodes=tuple(dict.fromkeys(n for n, _ in down)))


def rp_cause(ctx, live: LiveNetwork, node: str, iif: str, detail: str, way: str, source: str | None) -> Cause:
    dev = iif.replace(".", "/")
    values = [f"net.ipv4.conf.all.rp_filter = {live.sysctl(node, 'net.ipv4.conf.all.rp_filter')}",
              f"net.ipv4.conf.{iif}.rp_filter = {live.sysctl(node, f'net.ipv4.conf.{dev}.rp_filter')}"]
    evidence = [f"{ctx.ns(node)}: {', '.join(values)}", detail]
    if source:
        back = live.route(node, source)
        evidence.append(f"{ctx.ns(node)}: route get {source}: " +
                        (f"leaves by {back['dev']}" + (f" via {back['gateway']}" if back.get("gateway") else "")
                         if back and "error" not in back and back.get("dev") else "no route"))
    return Cause(("rp_filter", node, iif), f"rp_filter on {node} drops what arrives on {iif} {way}",
                 f"{node}/{iif}", node, tuple(evidence),
                 f"with reverse-path filtering, {node} drops a packet arriving on {iif} unless its route back to "
                 "the packet's source leaves by that interface (strict, 1) or exists at all (loose, 2)",
                 f"route the sources back through {iif}, or make rp_filter loose (2) or off (0) on {node}",
                 source or "")


def firewall_cause(ctx, live: LiveNetwork, plan: ManifestNetwork, blocked: Blocked, direction: str,
                   intent: Intent) -> Cause:
    node, result = blocked.node, blocked.result
    way = "on the way back" if direction == "back" else "on the way there"
    tables = live.tables(node)
    table = result.table.kernel_name if result.table is not None else ""
    drift = tables.drift.get(table, "")
    evidence = [f"live: {_rule_text(ctx, node, result)}"]
    if drift:
        evidence.append(f"the live table {table} differs from the manifest ({drift})")
    if not result.decided:
        return Cause(("firewall-unknown", node, table, result.chain, result.index),
                     f"the firewall of {node} may drop it {way}", node, node, tuple(evidence),
                     f"a rule the doctor cannot evaluate: {result.reason}", "")
    source = result.rule.source if result.rule is not None else result.table.source
    fix = ("`netkeel apply` puts the manifest's ruleset back (see `netkeel drift`)" if drift else
           f"change the policy ({source})" if source else "")
    verdict = "rejects" if result.verdict == nftables.REJECT else "drops"
    return Cause(("firewall", node, table, result.chain, result.index, drift != ""),
                 f"the firewall of {node} {verdict} it {way}" + (" (the live ruleset is not the manifest's)" if drift
                                                                  else ""),
                 node, node, tuple(evidence),
                 f"{result.hook} hook: {result.reason}", fix)


def _rule_text(ctx, node: str, result) -> str:
    text = result.where()
    if result.rule is not None and not result.rule.source:
        # a rule the manifest does not have: as nft lists it, when the kernel says
        try:
            texts = ctx.kernel.nft_rule_texts(ctx.ns(node), result.table.family, result.table.kernel_name)
        except Exception:  # noqa: BLE001 - the rule's JSON form is shown instead
            texts = {}
        handles = _handles_of(ctx, node, result)
        if handles and handles[0] in texts:
            text = (f"table {result.table.family} {result.table.kernel_name} chain {result.chain} "
                    f"rule {result.index + 1}: {texts[handles[0]]} (not in the manifest)")
    return text


def _handles_of(ctx, node, result) -> list:
    ns = ctx.ns(node)
    for r in ctx.live:
        if r.kind == NFT_TABLE.name and r.ns == ns and r.key[2] == result.table.kernel_name:
            rules = r.get(f"rules {result.chain}", ())
            if result.index is not None and result.index < len(rules):
                key = rules[result.index]
                return [h for chain, k, h in r.get("_handles", ()) if chain == result.chain and k == key]
    return []


# --- the check ------------------------------------------------------------------------------------

def run(ctx) -> list:
    plan = manifest_network(ctx)
    wanted = intents(ctx)
    probed = {p: i for p, i in wanted.items() if i.verdict != ROUTING}
    targets: dict = {}
    for pair in probed:
        targets.setdefault(pair.source, []).append(pair.target)
    answers = sweep(ctx, targets)
    # Lost ones are asked again once, a little later: a link that has just come up
    # passes nothing until the kernel has processed its carrier (up to a second).
    again: dict = {}
    for pair, intent in probed.items():
        answer = answers.get(pair.source, {}).get(pair.target)
        if intent.verdict != POLICY and (answer is None or not answer.answered):
            again.setdefault(pair.source, []).append(pair.target)
    if again:
        time.sleep(RETRY_AFTER_S)
        for node, found in sweep(ctx, again).items():
            answers.setdefault(node, {}).update({t: a for t, a in found.items() if a.answered})
    live = live_network(ctx)
    causes: dict = {}
    began = time.monotonic()
    untraced = []
    for pair, intent in sorted(probed.items(), key=lambda kv: (kv[0].source, kv[0].owner, kv[0].target)):
        answer = answers.get(pair.source, {}).get(pair.target, Answer(0, 0))
        line = f"{pair.source} -> {pair.owner} {pair.target}: {answer.answered}/{answer.sent} answered"
        if intent.verdict == POLICY and answer.answered:
            cause = answered_elsewhere(ctx, live, pair) or unenforced(ctx, live, intent)
            causes.setdefault(cause.key, (cause, []))[1].append(
                f"{line}; live path: {walk(live, pair.source, pair.target).text()}")
        elif intent.verdict in (REACHABLE, UNKNOWN) and not answer.answered:
            if time.monotonic() - began > DIAGNOSE_BUDGET_S:
                untraced.append(line)
                continue
            cause, paths = trace(ctx, live, plan, pair, intent)
            if cause.key[0] == "rp_filter" and ctx.only is None and told_by_routing(live, cause):
                continue  # the routing check tells this story, with both paths
            if intent.verdict == UNKNOWN and cause.key[0] in ("firewall", "firewall-unknown", "unexplained",
                                                               "foreign"):
                continue  # the manifest's own rules may drop it: not known to be wrong
            causes.setdefault(cause.key, (cause, []))[1].append(f"{line}; " + "; ".join(paths))
    findings = [finding_of(cause, lines) for cause, lines in causes.values()]
    if untraced:
        findings.append(Finding(
            check=NAME, title=f"{len(untraced)} more pairs do not answer (not traced: time budget)", where="lab",
            evidence=tuple(_capped(untraced)), why="they are meant to answer and do not",
            fix=f"run `doctor --only {NAME}` again once the findings above are fixed"))
    return findings


def told_by_routing(live: LiveNetwork, cause: Cause) -> bool:
    """Whether the routing check reports this rp_filter drop too (it runs after
    this one in a whole doctor run, and finds the same drop from the routes)."""
    _, node, iif = cause.key
    return bool(cause.source) and rp_problem(live, node, iif, cause.source) is not None


def rp_problem(live, node: str, iif: str, source: str) -> dict | None:
    """What rp_filter on node/iif does to a packet from `source`: None when it
    passes; else {"mode", "back": the node's route to source (None: none)}."""
    if live.local(node, source):
        return None
    mode = live.rp_filter(node, iif)
    if mode not in (1, 2):
        return None
    route = live.route(node, source)
    if route is not None and "error" in route:
        route = None
    if mode == 1 and route is not None and route.get("dev") == iif:
        return None
    if mode == 2 and route is not None:
        return None
    return {"mode": mode, "back": route}


def answered_elsewhere(ctx, live: LiveNetwork, pair) -> Cause | None:
    """When another node holds the target address too (on its lo, say), the packet
    the policy blocks on its way to the owner is delivered there and answered: not
    a firewall letting it through. None when no other node holds it."""
    others = sorted(n.name for n in ctx.topology.nodes if n.name != pair.owner and live.local(n.name, pair.target))
    if not others:
        return None
    return Cause(("elsewhere", pair.target, tuple(others)),
                 f"{pair.target} is held by {' and '.join(others)} too, which answer{'s' if len(others) == 1 else ''} "
                 f"for {pair.owner}", others[0], others[0],
                 (f"the manifest gives {pair.target} to {pair.owner}; live, {', '.join(others)} hold"
                  f"{'s' if len(others) == 1 else ''} it as well",),
                 "a packet for the address is delivered at the first node on its way that holds it, and answered "
                 "there: what the policy blocks on the way to its owner seems to pass",
                 f"remove {pair.target} from {', '.join(others)} (`netkeel apply` removes addresses the manifest does "
                 "not declare)", nodes=tuple(sorted({pair.owner, *others})))


def unenforced(ctx, live: LiveNetwork, intent: Intent) -> Cause:
    blocked = intent.blocked
    node, result = blocked.node, blocked.result
    tables = live.tables(node)
    table = result.table.kernel_name if result.table is not None else ""
    drift = tables.drift.get(table, "")
    evidence = [f"the policy: {result.where()}"]
    evidence.append(f"the live table {table} differs from the manifest ({drift})" if drift else
                    f"the live table {table} is the manifest's")
    return Cause(("unenforced", node, table, result.chain, result.index),
                 f"the firewall of {node} lets through what its policy {result.verdict}s", node, node,
                 tuple(evidence),
                 "the policy says this traffic must not pass, and it answers: the firewall does not do what the "
                 "policy says",
                 "`netkeel apply` puts the policy's ruleset back" if drift else
                 "the traffic does not cross this node's firewall as the manifest's routes say (see the paths)")


def finding_of(cause: Cause, lines: list) -> Finding:
    pairs = sorted(lines)
    return Finding(check=NAME, title=cause.title, where=cause.where,
                   evidence=tuple(cause.evidence) + (f"{len(pairs)} pair(s) affected:",) + tuple(_capped(pairs)),
                   why=cause.why, fix=cause.fix, nodes=cause.nodes or (cause.node,))


def _capped(lines: list) -> list:
    if len(lines) <= MAX_PAIRS_SHOWN:
        return list(lines)
    return list(lines[:MAX_PAIRS_SHOWN]) + [f"... and {len(lines) - MAX_PAIRS_SHOWN} more"]
