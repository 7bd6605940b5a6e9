"""The topology as a diagram: the shapes (`diagram`), and Mermaid text (`mermaid`).

    diagram(topology, findings=(), prefix="") -> Diagram    shapes and edges, sorted
    mermaid(topology, findings=(), prefix="") -> str        `graph LR` text

Pure: the model in, text out; no kernel, no files. render.py draws the same
Diagram as SVG or PNG.

What is drawn, as the lab notes draw their labs in Mermaid:

- a node per namespace: its name, loopback addresses, key sysctls (forwarding,
  rp_filter, proxy ARP, ...), its firewall tables and static neighbours;
- a bridge as its own shape inside its namespace (a namespace with bridges is a
  subgraph), with its addresses; a bridge port's link ends at the bridge;
- an edge per veth link, labelled with both ends' interface names and addresses
  (the end written first in the edge is the first line), the MTU when not 1500
  (per end when the ends differ), a declared MAC, a down state, an impairment;
- a VIP group as a dashed box joined by dashed edges to its members (interface
  and priority), with its addresses and vrid;
- a node's routes (default routes first) as a note joined to it by a dotted edge;
- with findings (the doctor's): each finding as a red note joined to the nodes
  it concerns, and those nodes styled red.

Output is sorted (nodes, links, groups by name), so it can be golden-tested.
Mermaid ids are derived from names (letters, digits and '_' kept, anything else
'_', clashes numbered); labels are quoted, with Mermaid's entity codes for the
characters that would end or change them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..model.defaults import DEFAULT_MTU

# Sysctls worth showing on a node: how it forwards, filters by source, answers
# ARP, discovers path MTU, tracks connections. Matched on the last component.
KEY_SYSCTLS = frozenset({
    "ip_forward", "forwarding", "mc_forwarding", "rp_filter", "src_valid_mark", "accept_local",
    "proxy_arp", "proxy_ndp", "arp_ignore", "arp_announce", "arp_filter", "arp_accept",
    "accept_redirects", "send_redirects", "accept_source_route", "disable_ipv6", "accept_dad",
    "ip_no_pmtu_disc", "tcp_mtu_probing", "ip_nonlocal_bind",
    "nf_conntrack_tcp_loose", "nf_conntrack_tcp_be_liberal",
})

NOTE_MAX = 160  # characters of a finding's title shown in its note


@dataclass(frozen=True)
class Shape:
    """Something drawn: a namespace ("node"), a "bridge" (inside `parent`), a "vip"
    group, a node's "routes" note or a "finding" note. `lines[0]` is its title."""

    id: str
    kind: str
    lines: tuple
    parent: str | None = None
    marked: bool = False
    name: str = ""             # the node, bridge, group or finding it stands for


@dataclass(frozen=True)
class Edge:
    """A veth pair, a "wire" (lines: the ends, first `a`'s), a VIP "member" edge, or a
    "note" edge from a routes or finding note to its node."""

    a: str
    b: str
    kind: str
    lines: tuple = ()


@dataclass(frozen=True)
class Diagram:
    title: str
    prefix: str
    shapes: tuple      # namespaces, then bridges, VIP groups, route notes, findings
    edges: tuple       # links, then VIP members, then notes

    def shape(self, shape_id: str) -> Shape | None:
        return next((s for s in self.shapes if s.id == shape_id), None)


# -- the shapes ------------------------------------------------------------------------

class _Ids:
    """Mermaid ids from names: stable, unique, safe (never a keyword, never starting
    with the 'o' or 'x' that would change an edge)."""

    def __init__(self):
        self.taken: set = set()

    def claim(self, prefix: str, *parts: str) -> str:
        base = prefix + "_" + "__".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in parts)
        candidate, n = base, 1
        while candidate in self.taken:
            n += 1
            candidate = f"{base}_{n}"
        self.taken.add(candidate)
        return candidate


def diagram(topology, findings=(), prefix: str = "") -> Diagram:
    """The shapes and edges of `topology`, with `findings` (objects with check,
    title, severity, where and nodes, as toolkit.doctor.finding.Finding) marked."""
    from .finding import ordered

    findings = ordered(findings)
    marked = {n for f in findings for n in f.nodes}
    ids = _Ids()
    nodes = sorted(topology.nodes, key=lambda n: n.name)
    node_id = {n.name: ids.claim("n", n.name) for n in nodes}
    bridge_id = {(n.name, i.name): ids.claim("b", n.name, i.name)
                 for n in nodes for i in sorted(n.interfaces, key=lambda i: i.name) if i.kind == "bridge"}

    shapes, edges = [], []
    for node in nodes:
        shapes.append(Shape(node_id[node.name], "node", _node_lines(node), marked=node.name in marked,
                            name=node.name))
    for node in nodes:
        for iface in sorted(node.interfaces, key=lambda i: i.name):
            if iface.kind == "bridge":
                shapes.append(Shape(bridge_id[node.name, iface.name], "bridge", _bridge_lines(iface),
                                    parent=node_id[node.name], name=iface.name))

    def end_of(node, iface) -> str:
        if iface.master and (node.name, iface.master) in bridge_id:
            return bridge_id[node.name, iface.master]
        return node_id[node.name]

    by_name = {n.name: n for n in nodes}
    for a_node, a, b_node, b in _links(nodes, by_name):
        edges.append(Edge(end_of(a_node, a), end_of(b_node, b), "wire", _link_lines(a, b)))

    for group in sorted(topology.vips, key=lambda g: g.name):
        vip = ids.claim("v", group.name)
        lines = (f"VIP {group.name}",) + tuple(group.addresses) + (f"vrid {group.vrid}",)
        shapes.append(Shape(vip, "vip", lines, name=group.name))
        for member in sorted(group.members, key=lambda m: m.node):
            if member.node in node_id:
                edges.append(Edge(vip, node_id[member.node], "member",
                                  (f"{member.interface} priority {member.priority}",)))

    for node in nodes:
        if node.routes:
            note = ids.claim("r", node.name)
            shapes.append(Shape(note, "routes", tuple(_route_line(r) for r in _sorted_routes(node.routes)),
                                name=node.name))
            edges.append(Edge(note, node_id[node.name], "note"))

    for k, finding in enumerate(findings, 1):
        note = ids.claim("f", str(k))
        title = finding.title if len(finding.title) <= NOTE_MAX else finding.title[:NOTE_MAX - 3] + "..."
        lines = (f"{finding.severity} [{finding.check}]", title) + ((f"at {finding.where}",) if finding.where else ())
        shapes.append(Shape(note, "finding", lines, marked=True, name=finding.check))
        for name in sorted(set(finding.nodes)):
            if name in node_id:
                edges.append(Edge(note, node_id[name], "note"))

    return Diagram(topology.name, prefix, tuple(shapes), tuple(edges))


def _links(nodes, by_name) -> list:
    """Each veth pair once, as (a_node, a, b_node, b), the ends and the pairs sorted."""
    seen, out = set(), []
    for node in nodes:
        for iface in node.interfaces:
            if iface.kind != "veth" or not iface.peer:
                continue
            other_node = by_name.get(iface.peer[0])
            other = other_node.interface(iface.peer[1]) if other_node else None
            if other is None:
                continue
            pair = tuple(sorted([(node.name, iface.name), (other_node.name, other.name)]))
            if pair in seen:
                continue
            seen.add(pair)
            ends = sorted([(node, iface), (other_node, other)], key=lambda e: (e[0].name, e[1].name))
            out.append((ends[0][0], ends[0][1], ends[1][0], ends[1][1]))
    return sorted(out, key=lambda e: (e[0].name, e[1].name, e[2].name, e[3].name))


def _node_lines(node) -> tuple:
    lines = [node.name]
    lo = next((i for i in node.interfaces if i.kind == "loopback"), None)
    if lo is not None and lo.addresses:
        lines.append("lo " + " ".join(_sorted_addresses(lo.addresses)))
    for name, value in sorted(node.sysctls):
        if name.rsplit(".", 1)[-1] in KEY_SYSCTLS:
            lines.append(f"{name.removeprefix('net.')}={value}")
    if node.tables:
        lines.append("nft " + ", ".join(f"{t.family} {t.name}" for t in sorted(node.tables,
                                                                                 key=lambda t: (t.name, t.family))))
    for n in sorted(node.neighbours, key=lambda n: (n.interface, _addr_key(n.address))):
        lines.append(f"neigh {n.address} at {n.mac} on {n.interface}")
    return tuple(lines)


def _bridge_lines(iface) -> tuple:
    lines = [f"bridge {iface.name}"]
    if iface.addresses:
        lines.append(" ".join(_sorted_addresses(iface.addresses)))
    extra = []
    if iface.mtu is not None and iface.mtu != DEFAULT_MTU:
        extra.append(f"mtu {iface.mtu}")
    if iface.mac:
        extra.append(f"mac {iface.mac}")
    if iface.state != "up":
        extra.append(iface.state)
    if extra:
        lines.append(" ".join(extra))
    return tuple(lines)


def _link_lines(a, b) -> tuple:
    same_mtu = a.mtu == b.mtu

    def end(iface) -> str:
        parts = [iface.name] + _sorted_addresses(iface.addresses)
        if not same_mtu and iface.mtu is not None:
            parts.append(f"mtu {iface.mtu}")
        if iface.mac:
            parts.append(f"mac {iface.mac}")
        if iface.state != "up":
            parts.append(iface.state)
        if iface.impair:
            parts.append(f"({_impairment(dict(iface.impair))})")
        return " ".join(parts)

    lines = [end(a), end(b)]
    if same_mtu and a.mtu is not None and a.mtu != DEFAULT_MTU:
        lines.append(f"mtu {a.mtu}")
    return tuple(lines)


def _impairment(p: dict) -> str:
    parts = []
    if "rate" in p:
        parts.append(f"rate {_rate(p['rate'])}")
    if "delay_us" in p:
        delay = f"delay {p['delay_us'] / 1000:g}ms"
        if "jitter_us" in p:
            delay += f" +-{p['jitter_us'] / 1000:g}ms"
        if "distribution" in p:
            delay += f" {p['distribution']}"
        parts.append(delay)
    if "loss" in p:
        parts.append(f"loss {p['loss']:g}%")
    return ", ".join(parts)


def _rate(bits) -> str:
    for unit, size in (("Gbit/s", 10**9), ("Mbit/s", 10**6), ("kbit/s", 10**3)):
        if bits >= size and bits % size == 0:
            return f"{bits // size}{unit}"
    return f"{bits}bit/s"


def _addr_key(text: str):
    ip = ipaddress.ip_interface(text)
    return (ip.version, ip)


def _sorted_addresses(addresses) -> list:
    return sorted(addresses, key=_addr_key)


def _sorted_routes(routes) -> list:
    return sorted(routes, key=lambda r: (ipaddress.ip_network(r.dst).prefixlen != 0, r.family,
                                         ipaddress.ip_network(r.dst), r.metric or 0, r.via or "", r.dev or ""))


def _route_line(route) -> str:
    dst = "default" if ipaddress.ip_network(route.dst).prefixlen == 0 else route.dst
    parts = [dst]
    if route.via:
        parts.append(f"via {route.via}")
    if route.dev:
        parts.append(f"dev {route.dev}")
    if route.metric is not None:
        parts.append(f"metric {route.metric}")
    return " ".join(parts)


# -- Mermaid -------------------------------------------------------------------------------

STYLES = {
    "bridge": "fill:#eaf6ea,stroke:#2a7a2a",
    "vip": "fill:#ffffff,stroke:#1f5fa8,stroke-dasharray:5 5",
    "routes": "fill:#fffbe6,stroke:#b59b00",
    "finding": "fill:#ffe0e0,stroke:#c00000,color:#600000",
}
MARKED = "fill:#ffe0e0,stroke:#c00000,stroke-width:3px,color:#600000"

# Characters a quoted Mermaid label cannot hold as they are: the quote ends it,
# '#' starts an entity code, '<', '>' and '&' are HTML, '|' ends an edge label,
# a backquote starts a markdown string. Written as Mermaid's decimal entity codes.
_ESCAPE = re.compile(r'["#<>&|`\\]')


def label(lines) -> str:
    """Label lines as a quoted Mermaid string, a line break between them."""
    return '"' + "<br/>".join(_ESCAPE.sub(lambda m: f"#{ord(m.group())};", _printable(line))
                              for line in lines) + '"'


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in str(text))


def _shape(shape: Shape) -> str:
    text = label(shape.lines)
    if shape.kind == "bridge":
        return f"{shape.id}{{{{{text}}}}}"          # hexagon
    if shape.kind == "vip":
        return f"{shape.id}([{text}])"              # stadium, dashed by its class
    if shape.kind in ("routes", "finding"):
        return f"{shape.id}>{text}]"                # a flag: a note
    return f"{shape.id}[{text}]"


def to_mermaid(d: Diagram) -> str:
    out = [f"%% netkeel graph: {_printable(d.title)}"
           + (f" (namespaces prefixed {_printable(d.prefix)!r})" if d.prefix else ""), "graph LR"]
    children: dict = {}
    for s in d.shapes:
        if s.parent:
            children.setdefault(s.parent, []).append(s)
    for s in d.shapes:
        if s.parent:
            continue
        if s.id in children:
            out.append(f"  subgraph {s.id} [{label(s.lines)}]")
            out += [f"    {_shape(c)}" for c in children[s.id]]
            out.append("  end")
        else:
            out.append(f"  {_shape(s)}")
    for e in d.edges:
        if e.kind == "wire":
            out.append(f"  {e.a} ---|{label(e.lines)}| {e.b}")
        elif e.kind == "member":
            out.append(f"  {e.a} -.-|{label(e.lines)}| {e.b}")
        else:
            out.append(f"  {e.a} -.- {e.b}")
    for kind, style in STYLES.items():
        members = [s.id for s in d.shapes if s.kind == kind]
        if members:
            out.append(f"  classDef {kind} {style}")
            out.append(f"  class {','.join(members)} {kind}")
    for s in d.shapes:
        if s.marked and s.kind == "node":
            out.append(f"  style {s.id} {MARKED}")
    return "\n".join(out) + "\n"


def mermaid(topology, findings=(), prefix: str = "") -> str:
    """`topology` as Mermaid `graph LR` text, with `findings` marked red."""
    return to_mermaid(diagram(topology, findings, prefix))
