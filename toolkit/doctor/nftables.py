"""A static evaluator of nftables rulesets: what the rules do to one packet.

Pure: it reads model.firewall Tables (rules compiled to nftables JSON, as the
kernel lists them) and a Packet, and says what the node's firewall does to it
at each hook it passes. The packet is IPv4 or IPv6 with an l4 protocol,
addresses, ports or an ICMP type, its input and output interfaces and its
conntrack state ("new" for a connection's first packet, "established" for its
replies) and status bits ("dnat", ...).

At a hook, the base chains of every table whose family sees the packet run in
priority order (nat chains only for a connection's first packet). In a chain
the first rule whose matches all hold decides: accept (on to the next chain),
drop, reject, jump / goto / return, a NAT statement (accept, with the
translation recorded); a chain that ends without a verdict applies its policy.

It understands: payload ip / ip6 saddr and daddr (address, prefix, range,
anonymous set, named set @x from the table's NamedSet elements), ip protocol /
ip6 nexthdr, tcp / udp / sctp / dccp / udplite / th sport and dport, icmp /
icmpv6 type, meta l4proto / nfproto / protocol / iifname / oifname / iif / oif,
ct state and ct status; counter, log and limit statements pass (a limit is
taken to let a probe's handful of packets through). Anything else makes the
answer "unknown: <the expression>": never a guess.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

ACCEPT, DROP, REJECT, UNKNOWN = "accept", "drop", "reject", "unknown"
NAT_TYPE = "nat"
MAX_DEPTH = 16          # jumps deep (the kernel allows 16 too)

# Where a packet passes through a node, by its role there.
HOOKS = {"output": ("output", "postrouting"),            # the node sends it
         "forward": ("prerouting", "forward", "postrouting"),
         "input": ("prerouting", "input")}                 # the node receives it

PRIORITY_NAMES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100,
                  "out": 100, "in": -100}   # (out/in: the bridge family's names for the same numbers)
FAMILIES = {"inet": (4, 6), "ip": (4,), "ip6": (6,)}
L4_NUMBERS = {"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17, "dccp": 33, "gre": 47, "esp": 50, "ah": 51,
              "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132, "udplite": 136}
PORT_PROTOCOLS = ("tcp", "udp", "sctp", "dccp", "udplite")
ICMP_TYPES = {"echo-reply": 0, "destination-unreachable": 3, "source-quench": 4, "redirect": 5,
              "echo-request": 8, "router-advertisement": 9, "router-solicitation": 10, "time-exceeded": 11,
              "parameter-problem": 12, "timestamp-request": 13, "timestamp-reply": 14, "info-request": 15,
              "info-reply": 16, "address-mask-request": 17, "address-mask-reply": 18}
ICMPV6_TYPES = {"destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
                "echo-request": 128, "echo-reply": 129, "mld-listener-query": 130, "mld-listener-report": 131,
                "mld-listener-done": 132, "mld-listener-reduction": 132, "nd-router-solicit": 133,
                "nd-router-advert": 134, "nd-neighbor-solicit": 135, "nd-neighbor-advert": 136, "nd-redirect": 137,
                "router-renumbering": 138, "ind-neighbor-solicit": 141, "ind-neighbor-advert": 142,
                "mld2-listener-report": 143}
NFPROTO = {"ipv4": 4, "ipv6": 6, 2: 4, 10: 6}
ETHERTYPE = {"ip": 4, "ip6": 6, 0x0800: 4, 0x86DD: 6}
PASS_STATEMENTS = ("counter", "log", "limit")
NAT_STATEMENTS = ("snat", "dnat", "masquerade", "redirect")


class Unknown(Exception):
    """An expression the evaluator does not understand (its text is the message)."""


@dataclass(frozen=True)
class Packet:
    family: int                     # 4 or 6
    l4proto: str                    # tcp, udp, icmp, icmpv6, ...
    saddr: str
    daddr: str
    sport: int | None = None
    dport: int | None = None
    icmp_type: str | None = None    # echo-request, ... (icmp or icmpv6 by the family)
    iif: str = ""                   # "" where there is none (a packet the node sends)
    oif: str = ""                   # "" where there is none (a packet the node receives)
    ct_state: str = "new"
    ct_status: frozenset = frozenset()

    def replace(self, **changes) -> "Packet":
        return Packet(**{**self.__dict__, **changes})


@dataclass(frozen=True)
class Nat:
    """A NAT statement the packet met: kind snat / dnat / masquerade / redirect."""
    hook: str
    table: str
    chain: str
    kind: str
    addr: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class Result:
    """What a node's firewall does to a packet: accept, drop, reject or unknown;
    for a drop, reject or unknown, where (table, chain, the rule or None for the
    chain's policy) and why."""
    verdict: str
    hook: str = ""
    table: object = None            # model.firewall.Table
    chain: str = ""
    rule: object = None             # model.firewall.Rule; None: the chain's policy
    index: int | None = None        # the rule's position in its chain, from 0
    reason: str = ""                # "policy drop", "unknown: meta mark == 1", ...
    nat: tuple = ()                 # Nat, in the order met

    @property
    def decided(self) -> bool:
        return self.verdict != UNKNOWN

    def where(self) -> str:
        """table inet netkeel_filter chain forward rule 3 (policies/x.yaml:36): <text>"""
        if self.table is None:
            return self.reason
        place = f"table {self.table.family} {self.table.kernel_name} chain {self.chain}"
        if self.rule is None:
            return f"{place}: {self.reason}" + (f" ({self.table.source})" if self.table.source else "")
        source = f" ({self.rule.source})" if self.rule.source else ""
        return f"{place} rule {self.index + 1}{source}: {self.rule.text}"


# --- hooks and chains -----------------------------------------------------------------

def evaluate(tables, packet: Packet, role: str) -> Result:
    """What the firewall (`tables`, a node's) does to `packet` passing through the
    node as `role` (output, forward, input): the first hook that does not accept
    decides; NAT met on the way is recorded on the result."""
    nat: list = []
    for hook in HOOKS[role]:
        result = evaluate_hook(tables, packet, hook)
        nat.extend(result.nat)
        if result.verdict != ACCEPT:
            return _with_nat(result, nat)
        for n in result.nat:   # a dnat changes what the rest of the node sees
            if n.kind == "dnat" and n.addr:
                packet = packet.replace(daddr=n.addr, dport=n.port or packet.dport,
                                        ct_status=packet.ct_status | {"dnat"})
    return Result(ACCEPT, nat=tuple(nat))


def _with_nat(result: Result, nat: list) -> Result:
    return Result(result.verdict, result.hook, result.table, result.chain, result.rule, result.index, result.reason,
                  tuple(nat))


def base_chains(tables, family: int, hook: str) -> list:
    """(priority, table, chain) of every base chain at `hook` that sees `family`, in
    the order the kernel runs them. Raises Unknown for a priority it cannot read."""
    out = []
    for table in tables:
        if family not in FAMILIES.get(table.family, ()):
            continue
        for chain in table.chains:
            if chain.hook == hook:
                out.append((_priority(chain.priority, table, chain), table.family, table.name, table, chain))
    out.sort(key=lambda item: item[:3])
    return [(prio, table, chain) for prio, _, _, table, chain in out]


def _priority(value, table, chain) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.replace(" ", "")
        for sign in ("+", "-"):
            name, found, offset = text.partition(sign)
            if found and name in PRIORITY_NAMES and offset.isdigit():
                return PRIORITY_NAMES[name] + (int(offset) if sign == "+" else -int(offset))
        if text in PRIORITY_NAMES:
            return PRIORITY_NAMES[text]
        try:
            return int(text)
        except ValueError:
            pass
    raise Unknown(f"priority {value!r} of chain {chain.name} in table {table.family} {table.name}")


def unevaluated(tables) -> list:
    """Tables with base chains this evaluator does not run (families other than
    inet, ip and ip6: bridge, netdev, arp), as "family name"."""
    return [f"{t.family} {t.kernel_name}" for t in tables
            if t.family not in FAMILIES and any(c.hook for c in t.chains)]


def evaluate_hook(tables, packet: Packet, hook: str) -> Result:
    try:
        chains = base_chains(tables, packet.family, hook)
    except Unknown as exc:
        return Result(UNKNOWN, hook, reason=f"unknown: {exc}")
    nat = []
    for _, table, chain in chains:
        if chain.type == NAT_TYPE and packet.ct_state != "new":
            continue  # NAT chains see only a connection's first packet
        outcome = _run(table, chain, packet, hook, 0)
        if outcome.nat:
            nat.extend(outcome.nat)
        verdict = outcome.verdict
        if verdict in ("return", "end"):
            policy = chain.policy or ACCEPT
            if policy != ACCEPT:
                return Result(policy, hook, table, chain.name, None, None, f"policy {policy}", tuple(nat))
            continue
        if verdict == ACCEPT:
            continue
        return Result(verdict, hook, table, outcome.chain, outcome.rule, outcome.index, outcome.reason, tuple(nat))
    return Result(ACCEPT, hook, nat=tuple(nat))


@dataclass
class _Outcome:
    verdict: str                    # accept, drop, reject, unknown, return, end
    chain: str = ""
    rule: object = None
    index: int | None = None
    reason: str = ""
    nat: list = field(default_factory=list)


def _run(table, chain, packet: Packet, hook: str, depth: int) -> _Outcome:
    """One chain: the first rule that gives a verdict decides; "end" when none does."""
    nat: list = []
    for index, rule in enumerate(chain.rules):
        try:
            if rule.expr is None:
                raise Unknown(f"native rule not resolved: {rule.native}")
            statements = json.loads(rule.expr)
            verdict, target, translation = _rule(statements, packet, table)
        except Unknown as exc:
            return _Outcome(UNKNOWN, chain.name, rule, index, f"unknown: {exc}", nat)
        if translation is not None:
            nat.append(Nat(hook, table.kernel_name, chain.name, *translation))
        if verdict is None or verdict == "continue":
            continue
        if verdict in ("jump", "goto"):
            sub = _chain_named(table, target)
            if sub is None or depth >= MAX_DEPTH:
                why = f"no chain {target}" if sub is None else f"more than {MAX_DEPTH} jumps deep"
                return _Outcome(UNKNOWN, chain.name, rule, index, f"unknown: {verdict} {target}: {why}", nat)
            inner = _run(table, sub, packet, hook, depth + 1)
            nat.extend(inner.nat)
            if inner.verdict in ("return", "end"):
                if verdict == "goto":
                    return _Outcome("return", chain.name, nat=nat)
                continue
            inner.nat = nat
            return inner
        if verdict == "return":
            return _Outcome("return", chain.name, nat=nat)
        return _Outcome(verdict, chain.name, rule, index, verdict, nat)
    return _Outcome("end", chain.name, nat=nat)


def _chain_named(table, name):
    return next((c for c in table.chains if c.name == name), None)


def _rule(statements: list, packet: Packet, table):
    """(verdict or None, jump target, NAT translation or None) of one rule; verdict
    None when a match fails or the rule has no verdict. Raises Unknown."""
    translation = None
    for statement in statements:
        if not isinstance(statement, dict) or len(statement) != 1:
            raise Unknown(_text(statement))
        (key, body), = statement.items()
        if key == "match":
            if not _match(body, packet, table):
                return None, None, None
        elif key in PASS_STATEMENTS:
            continue
        elif key in ("accept", "drop", "continue", "return"):
            return key, None, translation
        elif key == "reject":
            return REJECT, None, translation
        elif key in ("jump", "goto"):
            return key, (body or {}).get("target"), translation
        elif key in NAT_STATEMENTS:
            body = body or {}
            addr = body.get("addr")
            if addr is not None and not isinstance(addr, str):
                raise Unknown(_text(statement))
            port = body.get("port")
            if port is not None and not isinstance(port, int):
                raise Unknown(_text(statement))
            return ACCEPT, None, (key, addr, port)   # a NAT statement ends the chain (accept)
        else:
            raise Unknown(_text(statement))
    return None, None, translation


# --- matches -----------------------------------------------------------------------------

def _match(body: dict, packet: Packet, table) -> bool:
    op, left, right = body.get("op"), body.get("left"), body.get("right")
    what = _text({"match": body})
    value = _field(left, packet, what)
    if value is _ABSENT:        # the packet has no such header: the match fails
        return False
    if isinstance(left, dict) and "ct" in left:
        return _ct_match(left["ct"]["key"], op, value, right, what)
    kind = _kind_of(left)
    if op in ("==", "in"):
        return _member(value, right, kind, table, what)
    if op == "!=":
        return not _member(value, right, kind, table, what)
    if op in ("<", ">", "<=", ">="):
        if not isinstance(value, int) or not isinstance(right, int):
            raise Unknown(what)
        return {"<": value < right, ">": value > right, "<=": value <= right, ">=": value >= right}[op]
    raise Unknown(what)


_ABSENT = object()


def _kind_of(left) -> str:
    if "payload" in left:
        field_name = left["payload"].get("field")
        if field_name in ("saddr", "daddr"):
            return "address"
        if field_name in ("sport", "dport"):
            return "port"
        if field_name == "type":
            return "icmpv6" if left["payload"].get("protocol") == "icmpv6" else "icmp"
        return "l4proto"   # ip protocol / ip6 nexthdr
    key = left["meta"]["key"]
    return {"l4proto": "l4proto", "nfproto": "nfproto", "protocol": "ethertype"}.get(key, "ifname")


def _field(left, packet: Packet, what: str):
    """The packet's value for the left side of a match; _ABSENT when the packet
    lacks the header (an IPv6 packet and `ip saddr`, a UDP one and `tcp dport`)."""
    if not isinstance(left, dict) or len(left) != 1:
        raise Unknown(what)
    (key, body), = left.items()
    if not isinstance(body, dict):
        raise Unknown(what)
    if key == "payload":
        proto, name = body.get("protocol"), body.get("field")
        if proto in ("ip", "ip6"):
            if packet.family != (4 if proto == "ip" else 6):
                return _ABSENT
            if name in ("saddr", "daddr"):
                return ipaddress.ip_address(getattr(packet, name))
            if (proto, name) in (("ip", "protocol"), ("ip6", "nexthdr")):
                return packet.l4proto
            raise Unknown(what)
        if proto in PORT_PROTOCOLS or proto == "th":
            if name not in ("sport", "dport"):
                raise Unknown(what)
            if proto == "th":
                if packet.l4proto not in PORT_PROTOCOLS:
                    raise Unknown(what)   # th reads raw bytes: not a port in this packet
            elif packet.l4proto != proto:
                return _ABSENT
            value = getattr(packet, name)
            if value is None:
                raise Unknown(f"{what} (the packet has no {name})")
            return value
        if proto in ("icmp", "icmpv6"):
            if packet.l4proto != proto or packet.family != (4 if proto == "icmp" else 6):
                return _ABSENT
            if name != "type" or packet.icmp_type is None:
                raise Unknown(what)
            return packet.icmp_type
        raise Unknown(what)
    if key == "meta":
        name = body.get("key")
        if name == "l4proto":
            return packet.l4proto
        if name == "nfproto":
            return packet.family
        if name == "protocol":
            return packet.family
        if name in ("iifname", "iif"):
            return packet.iif
        if name in ("oifname", "oif"):
            return packet.oif
        raise Unknown(what)
    if key == "ct":
        if body.get("key") not in ("state", "status") or "dir" in body or "family" in body:
            raise Unknown(what)
        return packet.ct_state if body["key"] == "state" else packet.ct_status
    raise Unknown(what)


def _ct_match(key: str, op, value, right, what: str) -> bool:
    wanted = _flags(right, what)
    if key == "state":
        found = value in wanted
    else:  # status bits: "in" tests for any of them, "==" for all of them
        found = bool(value & wanted) if op == "in" else (wanted <= value if op == "==" else None)
    if op in ("in", "=="):
        return found
    if op == "!=":
        return not found
    raise Unknown(what)


def _flags(right, what: str) -> set:
    if isinstance(right, str):
        return {right}
    if isinstance(right, list) and all(isinstance(v, str) for v in right):
        return set(right)
    if isinstance(right, dict) and "set" in right and all(isinstance(v, str) for v in right["set"]):
        return set(right["set"])
    raise Unknown(what)


def _member(value, right, kind: str, table, what: str) -> bool:
    """Whether `value` is `right` or one of its elements."""
    if isinstance(right, str) and right.startswith("@"):
        named = next((s for s in table.sets if s.name == right[1:]), None)
        if named is None:
            raise Unknown(f"{what} (no set {right} in table {table.family} {table.name})")
        elements = []
        for text in named.elements:
            try:
                element = json.loads(text)
            except ValueError:
                raise Unknown(f"{what} (set element {text})") from None
            if isinstance(element, dict) and "elem" in element:
                element = element["elem"].get("val")
            elements.append(element)
        return any(_equal(value, e, kind, what) for e in elements)
    if isinstance(right, dict) and "set" in right:
        return any(_equal(value, e, kind, what) for e in right["set"])
    if isinstance(right, list):
        return any(_equal(value, e, kind, what) for e in right)
    return _equal(value, right, kind, what)


def _equal(value, element, kind: str, what: str) -> bool:
    if kind == "address":
        if isinstance(element, str):
            try:
                return value == ipaddress.ip_address(element)
            except ValueError:
                raise Unknown(what) from None
        if isinstance(element, dict) and "prefix" in element:
            prefix = element["prefix"]
            try:
                net = ipaddress.ip_network(f"{prefix['addr']}/{prefix['len']}", strict=False)
            except (KeyError, ValueError, TypeError):
                raise Unknown(what) from None
            return net.version == value.version and value in net
        if isinstance(element, dict) and "range" in element:
            try:
                low, high = (ipaddress.ip_address(v) for v in element["range"])
            except (ValueError, TypeError):
                raise Unknown(what) from None
            return low.version == value.version and low <= value <= high
        raise Unknown(what)
    if kind == "port":
        if isinstance(element, int) and not isinstance(element, bool):
            return value == element
        if isinstance(element, dict) and "range" in element:
            low, high = element["range"]
            if isinstance(low, int) and isinstance(high, int):
                return low <= value <= high
        raise Unknown(what)
    if kind in ("icmp", "icmpv6"):
        names = ICMP_TYPES if kind == "icmp" else ICMPV6_TYPES
        mine = names.get(value)
        if mine is None:
            raise Unknown(f"{what} (the packet's type {value})")
        theirs = element if isinstance(element, int) else names.get(element)
        if theirs is None:
            raise Unknown(what)
        return mine == theirs
    if kind == "l4proto":
        theirs = element if isinstance(element, int) else L4_NUMBERS.get(element)
        mine = L4_NUMBERS.get(value)
        if theirs is None or mine is None:
            raise Unknown(what)
        return mine == theirs
    if kind == "nfproto":
        theirs = NFPROTO.get(element)
        if theirs is None:
            raise Unknown(what)
        return value == theirs
    if kind == "ethertype":
        theirs = ETHERTYPE.get(element)
        if theirs is None:
            raise Unknown(what)
        return value == theirs
    # interface names: a trailing * is a wildcard (nft's "eth*")
    if not isinstance(element, str):
        raise Unknown(what)
    if element.endswith("*") and not element.endswith("\\*"):
        return value.startswith(element[:-1])
    return value == element.replace("\\*", "*")


def _text(node) -> str:
    """An expression as compact JSON, for an "unknown: ..." answer."""
    return json.dumps(node, separators=(",", ":"), sort_keys=True)
