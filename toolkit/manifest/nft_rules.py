"""Structured firewall rules -> nftables JSON expressions.

The expressions are written the way libnftables lists them back from the
kernel (`ip saddr 10.0.0.1/32` as a plain address, `ct state` as an "in" match
in bit order, a port list as an anonymous set, ...), so that drift compares
like with like; reconcile/nft_canon.py evens out the rest on both sides.

`compile_rule` raises RuleError with the field that is wrong and why.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re

from ..model.defaults import LIMIT_BURST, LOG_LEVEL, REJECT_CODE
from .checks import kernel_text
from .text import listing, quote

PORT_PROTOCOLS = ("tcp", "udp", "sctp", "dccp", "udplite")
CT_STATES = ("invalid", "established", "related", "new", "untracked")   # bit order
CT_STATUSES = ("expected", "seen-reply", "assured", "confirmed", "snat", "dnat", "dying")
ICMP_TYPES = ("echo-reply", "destination-unreachable", "source-quench", "redirect", "echo-request",
              "router-advertisement", "router-solicitation", "time-exceeded", "parameter-problem",
              "timestamp-request", "timestamp-reply", "info-request", "info-reply",
              "address-mask-request", "address-mask-reply")
ICMPV6_TYPES = ("destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem",
                "echo-request", "echo-reply", "mld-listener-query", "mld-listener-report",
                "mld-listener-done", "nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit",
                "nd-neighbor-advert", "nd-redirect", "router-renumbering", "ind-neighbor-solicit",
                "ind-neighbor-advert", "mld2-listener-report")
PROTOCOLS = PORT_PROTOCOLS + ("icmp", "icmpv6", "esp", "ah", "gre", "igmp", "ipip")
NAT_ACTIONS = ("masquerade", "snat", "dnat")
# The hooks the kernel accepts each statement in, as measured with libnftables 1.0.6
# on Linux 6.1 in a throwaway namespace (nft_masq, nft_nat and nft_reject validate
# the hook): masquerade only at postrouting, snat at postrouting and input, dnat
# at prerouting and output; reject anywhere but postrouting.
NAT_HOOKS = {"masquerade": ("postrouting",), "snat": ("postrouting", "input"), "dnat": ("prerouting", "output")}
REJECT_HOOKS = ("prerouting", "input", "forward", "output")
# Limits libnftables and the kernel enforce; beyond some of them libnftables' JSON
# path does not refuse but crashes (a 160-byte log prefix smashes its stack).
MAX_LOG_PREFIX = 127     # bytes; NF_LOG_PREFIXLEN is 128 with the NUL
MAX_COMMENT = 128        # bytes; nft: "comment too long, 128 characters maximum allowed"
IFNAME_BYTES = 15        # IFNAMSIZ less the NUL
REJECT_CODES = {  # what `reject with ...` is called in each family
    "inet": {"port-unreachable": ("icmpx", "port-unreachable"), "host-unreachable": ("icmpx", "host-unreachable"),
             "admin-prohibited": ("icmpx", "admin-prohibited")},
    "ip": {"port-unreachable": ("icmp", "port-unreachable"), "host-unreachable": ("icmp", "host-unreachable"),
           "admin-prohibited": ("icmp", "admin-prohibited")},
    "ip6": {"port-unreachable": ("icmpv6", "port-unreachable"), "host-unreachable": ("icmpv6", "addr-unreachable"),
            "admin-prohibited": ("icmpv6", "admin-prohibited")},
}
MATCH_KEYS = ("iif", "oif", "saddr", "daddr", "protocol", "sport", "dport", "icmp_type", "icmpv6_type",
              "ct_state", "ct_status", "mark")
STATEMENT_KEYS = ("limit", "counter", "log", "action")


class RuleError(ValueError):
    def __init__(self, field: str | None, message: str):
        self.field = field
        super().__init__(message)


class RuleContext:
    """What a rule may refer to: its table's family and sets, its chain, and the
    table's regular chains (jump targets) and base chains (not jump targets)."""

    def __init__(self, family: str, chain_type: str | None, hook: str | None, set_types: dict,
                 chains: set, chain: str = "", base_chains: set = frozenset()):
        self.family = family
        self.chain_type = chain_type
        self.hook = hook
        self.set_types = set_types
        self.chains = chains
        self.chain = chain
        self.base_chains = base_chains


def _match(left: dict, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _one_or_set(values: list):
    return values[0] if len(values) == 1 else {"set": values}


def _names(value, key: str | None = None) -> list:
    """A name or a list of names. With `key`, a name listed twice is refused:
    nftables keeps a set's element once, so the rule would never list back as
    written (and apply could never verify it)."""
    names = [value] if isinstance(value, str) else list(value)
    if key is not None:
        twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if twice is not None:
            raise RuleError(key, f"{quote(twice)} is listed twice")
    return names


def _byte_length(key: str, what: str, text: str, limit: int) -> None:
    size = len(text.encode())
    if size > limit:
        raise RuleError(key, f"{what} is {size} bytes; nftables allows {limit}")
    if not text.isprintable():
        raise RuleError(key, f"{what} {quote(text)} holds control characters")


def check_comment(key: str, text: str) -> None:
    """A rule comment nftables accepts (RuleError otherwise)."""
    _byte_length(key, "a comment", text, MAX_COMMENT)


# The quoted strings of a native rule whose lengths nftables limits: checked here
# because past them libnftables may abort the process rather than refuse.
_NATIVE_STRINGS = re.compile(r'\b(prefix|comment)\s+"([^"]*)"')


def check_native_strings(text: str) -> None:
    """RuleError when a native rule holds control characters (a NUL would cut it short
    on its way to libnftables), or a log prefix or comment longer than nftables allows."""
    if not text.isprintable():
        raise RuleError("nft", f"native rule {quote(text)} holds control characters")
    for keyword, value in _NATIVE_STRINGS.findall(text):
        if keyword == "prefix":
            _byte_length("nft", "the log prefix", value, MAX_LOG_PREFIX)
        else:
            _byte_length("nft", "a comment", value, MAX_COMMENT)


def interface_match(key: str, name: str) -> str:
    """An interface name to match (iif, oif, an ifname set element), or RuleError."""
    if not name:
        raise RuleError(key, "interface name is empty")
    if not name.isprintable():
        raise RuleError(key, f"interface name {quote(name)} holds control characters")
    size = len(name.encode())
    if size > IFNAME_BYTES:
        raise RuleError(key, f"interface name {quote(name)} is {size} bytes; nftables allows {IFNAME_BYTES}")
    return name


def compile_rule(rule: dict, ctx: RuleContext) -> list:
    """The JSON expression list of a structured rule. Raises RuleError."""
    expr = []
    for key, meta in (("iif", "iifname"), ("oif", "oifname")):
        if key in rule:
            names = [interface_match(key, name) for name in _names(rule[key], key)]
            expr.append(_match({"meta": {"key": meta}}, _one_or_set(names)))
    versions = {}  # key -> "ip" or "ip6": the packets the rule's addresses are in
    for key in ("saddr", "daddr"):
        if key in rule:
            expr.append(_address_match(key, rule[key], ctx))
            versions[key] = expr[-1]["match"]["left"]["payload"]["protocol"]
    _one_ip_version(rule, versions)
    expr.extend(_protocol_matches(rule, ctx))
    for key, allowed, ct_key in (("ct_state", CT_STATES, "state"), ("ct_status", CT_STATUSES, "status")):
        if key in rule:
            values = _names(rule[key])
            bad = [v for v in values if v not in allowed]
            if bad:
                raise RuleError(key, f"unknown {key.replace('_', ' ')} {quote(bad[0])} (known: {', '.join(allowed)})")
            ordered = [v for v in allowed if v in values]
            expr.append(_match({"ct": {"key": ct_key}}, ordered[0] if len(ordered) == 1 else ordered, "in"))
    if "mark" in rule:
        expr.append(_match({"meta": {"key": "mark"}}, rule["mark"]))
    if "limit" in rule:
        expr.append({"limit": _limit(rule["limit"])})
    if rule.get("counter"):
        expr.append({"counter": None})
    if "log" in rule and rule["log"] is not False:
        expr.append({"log": _log(rule["log"])})
    if "action" in rule:
        expr.append(_action(rule["action"], rule, ctx))
    if isinstance(rule.get("comment"), str):
        check_comment("comment", rule["comment"])
    if not expr:
        raise RuleError(None, "the rule is empty: give matches and an action, or `nft`")
    return expr


def _one_ip_version(rule: dict, versions: dict) -> None:
    """RuleError for a rule no packet can match: IPv4 and IPv6 addresses (nft
    refuses it: "conflicting protocols"), or addresses of one version and an ICMP
    of the other (nft takes it, and it never matches)."""
    if len(set(versions.values())) > 1:
        raise RuleError("daddr", f"saddr is {_VERSION[versions['saddr']]} and daddr {_VERSION[versions['daddr']]}: "
                                 "a packet is one or the other; write two rules")
    if not versions:
        return
    key, version = next(iter(versions.items()))
    other = {"ip": ("icmpv6", "icmpv6_type"), "ip6": ("icmp", "icmp_type")}[version]
    protocols = _names(rule["protocol"], "protocol") if "protocol" in rule else []
    # (a list with another protocol in it matches that one: nft takes it, and so does netkeel)
    for field, wrong in (("protocol", protocols == [other[0]]), (other[1], other[1] in rule)):
        if wrong:
            raise RuleError(field, f"{other[0]} is never in {_VERSION[version]} packets, and {key} is "
                                   f"{_VERSION[version]}: the rule would never match")


_VERSION = {"ip": "IPv4", "ip6": "IPv6"}


def _address_match(key: str, value, ctx: RuleContext) -> dict:
    values = _names(value)
    if len(values) == 1 and values[0].startswith("@"):
        name = values[0][1:]
        set_type = ctx.set_types.get(name)
        if set_type is None:
            known = listing(sorted(ctx.set_types)) or "none"
            raise RuleError(key, f"unknown set {quote('@' + name)} (sets of this table: {known})")
        if set_type not in ("ipv4_addr", "ipv6_addr"):
            raise RuleError(key, f"set '@{name}' holds {set_type}, not addresses")
        proto = "ip" if set_type == "ipv4_addr" else "ip6"
        _check_family(key, proto, ctx)
        return _match({"payload": {"protocol": proto, "field": key}}, values[0])
    elements, versions = [], set()
    for text in values:
        if text.startswith("@"):
            raise RuleError(key, "a set reference cannot be mixed with addresses")
        if "%" in text:  # Python keeps a scope; nftables has none and would match every link's
            raise RuleError(key, f"address {quote(text)} has a scope id, which nftables cannot match: "
                                 "write the address alone and match the interface with iif or oif")
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise RuleError(key, f"invalid address or prefix {quote(text)}") from None
            fixed = ipaddress.ip_network(text, strict=False)
            raise RuleError(key, f"prefix {text} has host bits set (did you mean {fixed}?)") from None
        if net.version == 6 and net.network_address.ipv4_mapped is not None:
            raise RuleError(key, f"{text} is an IPv4-mapped IPv6 address: match the IPv4 address instead")
        versions.add(net.version)
        host = net.prefixlen == net.max_prefixlen
        elements.append(kernel_text(net.network_address) if host else
                        {"prefix": {"addr": kernel_text(net.network_address), "len": net.prefixlen}})
    if len(versions) > 1:
        raise RuleError(key, "a rule cannot match IPv4 and IPv6 addresses at once: write two rules")
    proto = "ip" if versions == {4} else "ip6"
    _check_family(key, proto, ctx)
    _unmerged(key, elements)
    return _match({"payload": {"protocol": proto, "field": key}}, _one_or_set(elements))


def element_span(element):
    """(low, high) integers an interval element covers (a port, a range, a prefix,
    an address), to find overlaps; None for anything else."""
    if isinstance(element, int):
        return (element, element)
    if isinstance(element, dict) and "range" in element:
        return tuple(element["range"])
    if isinstance(element, dict) and "prefix" in element:
        net = ipaddress.ip_network(f"{element['prefix']['addr']}/{element['prefix']['len']}")
        return (int(net.network_address), int(net.broadcast_address))
    try:
        address = int(ipaddress.ip_address(element))
        return (address, address)
    except ValueError:
        return None


def _shown(element) -> str:
    if isinstance(element, dict) and "range" in element:
        return f"{element['range'][0]}-{element['range'][1]}"
    if isinstance(element, dict):
        return f"{element['prefix']['addr']}/{element['prefix']['len']}"
    return str(element)


def _unmerged(key: str, elements: list) -> None:
    """RuleError when a rule's list of addresses or ports holds elements that
    nftables would merge: the same one twice, overlapping ones, or (in a list
    with a prefix or range, which nftables makes an interval set) ones that
    touch. It would list them back merged, so the rule would never match its
    manifest; the message says what to write instead."""
    if len(elements) < 2:
        return
    interval = any(isinstance(e, dict) for e in elements)
    spans = sorted((span, e) for e in elements if (span := element_span(e)) is not None)
    for ((low_a, high_a), a), ((low_b, high_b), b) in zip(spans, spans[1:]):
        if low_b <= high_a:
            raise RuleError(key, f"{_shown(a)} and {_shown(b)} overlap: nftables keeps them as one "
                                 "interval and lists that back; write each address or port once")
        if interval and low_b == high_a + 1:
            raise RuleError(key, f"{_shown(a)} and {_shown(b)} touch: in a list with a prefix or range "
                                 "nftables merges them into one interval and lists that back; write the "
                                 "merged prefix or range instead")


def _check_family(key: str, proto: str, ctx: RuleContext) -> None:
    if ctx.family == "ip" and proto == "ip6" or ctx.family == "ip6" and proto == "ip":
        version = "IPv6" if proto == "ip6" else "IPv4"
        raise RuleError(key, f"{version} addresses cannot match in a table of family {ctx.family}")


def _protocol_matches(rule: dict, ctx: RuleContext) -> list:
    protocols = _names(rule["protocol"], "protocol") if "protocol" in rule else []
    for p in protocols:
        if p not in PROTOCOLS:
            raise RuleError("protocol", f"unknown protocol {quote(p)} (known: {', '.join(PROTOCOLS)})")
    ports = [k for k in ("sport", "dport") if k in rule]
    out = []
    if ports:
        if not protocols:
            raise RuleError(ports[0], f"a port needs a protocol: {', '.join(PORT_PROTOCOLS)}")
        without = [p for p in protocols if p not in PORT_PROTOCOLS]
        if without:
            raise RuleError(ports[0], f"protocol {without[0]} has no ports")
        if len(protocols) == 1:
            header = protocols[0]
        else:  # several transport protocols share the ports: match the transport header
            out.append(_match({"meta": {"key": "l4proto"}}, {"set": protocols}))
            header = "th"
        for key in ports:
            out.append(_match({"payload": {"protocol": header, "field": key}}, _ports(key, rule[key])))
        _no_icmp_types(rule)
        return out
    if "icmp_type" in rule and "icmpv6_type" in rule:
        raise RuleError("icmpv6_type", "icmp type and icmpv6 type cannot meet in one packet: write two rules")
    for key, proto, names, family in (("icmp_type", "icmp", ICMP_TYPES, "ip6"),
                                      ("icmpv6_type", "icmpv6", ICMPV6_TYPES, "ip")):
        if key in rule:
            if protocols and protocols != [proto]:
                raise RuleError(key, f"{key.replace('_', ' ')} needs protocol {proto}, not {', '.join(protocols)}")
            if ctx.family == family:
                raise RuleError(key, f"{proto} does not exist in a table of family {family}")
            values = _names(rule[key], key)
            bad = [v for v in values if v not in names]
            if bad:
                raise RuleError(key, f"unknown {proto} type {quote(bad[0])} (known: {', '.join(names)})")
            out.append(_match({"payload": {"protocol": proto, "field": "type"}}, _one_or_set(values)))
            return out
    if protocols:
        # nft knows ICMPv6 as "ipv6-icmp" (its name in /etc/protocols) and lists
        # it so whatever it was given: the desired rule says what the kernel lists
        # (found by review: `protocol: icmpv6` failed its verification, always).
        named = [L4_NAMES.get(p, p) for p in protocols]
        out.append(_match({"meta": {"key": "l4proto"}}, _one_or_set(named)))
    return out


L4_NAMES = {"icmpv6": "ipv6-icmp"}


def _no_icmp_types(rule: dict) -> None:
    for key in ("icmp_type", "icmpv6_type"):
        if key in rule:
            raise RuleError(key, f"{key.replace('_', ' ')} cannot be combined with ports")


# fullmatch, [0-9] and spaces only: `\d` would take "٢٢" for 22, and `$` a trailing newline; the
# digit counts keep int() away from numbers too long to convert.
_PORT = re.compile(r" *([0-9]{1,6}) *")
_RANGE = re.compile(r" *([0-9]{1,6}) *- *([0-9]{1,6}) *")


def port_value(key: str, value):
    """A port (int) or a range ("1000-2000") as nftables JSON."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 65535:
            raise RuleError(key, f"port {value} is out of range 0-65535")
        return value
    if isinstance(value, str):
        if found := _PORT.fullmatch(value):
            return port_value(key, int(found[1]))
        found = _RANGE.fullmatch(value)
        if found:
            low, high = int(found[1]), int(found[2])
            if not 0 <= low < high <= 65535:
                raise RuleError(key, f"port range {quote(value)} must be low-high within 0-65535")
            return {"range": [low, high]}
    raise RuleError(key, f"invalid port {quote(value)}: a number or a range like 1000-2000")


def _ports(key: str, value):
    values = value if isinstance(value, list) else [value]
    ports = [port_value(key, v) for v in values]
    _unmerged(key, ports)
    return _one_or_set(ports)


_RATE = re.compile(r" *([0-9]{1,11}) */ *(second|minute|hour|day) *")


MAX_RATE = 2 ** 32 - 1


def _limit(value) -> dict:
    if isinstance(value, str):
        found = _RATE.fullmatch(value)
        if not found:
            raise RuleError("limit", f"invalid rate {quote(value)}: write it like 10/second")
        value = {"rate": int(found[1]), "per": found[2]}
    if not 1 <= value["rate"] <= MAX_RATE:
        raise RuleError("limit", f"a rate of {value['rate']} per {value.get('per', 'second')}: "
                                 f"it must be from 1 to {MAX_RATE}")
    per, burst = value.get("per", "second"), value.get("burst", LIMIT_BURST)
    # The kernel's token bucket holds (unit in ns // rate) * burst in 64 bits, and
    # refuses more at commit (EOVERFLOW: "Value too large for defined data type").
    step = _UNIT_NS[per] // value["rate"]
    if step * burst >= 2 ** 64:
        raise RuleError("limit", f"a burst of {burst} at {value['rate']} per {per} is more than the kernel's "
                                 f"token bucket holds: at most {(2 ** 64 - 1) // step} at this rate")
    return {"rate": value["rate"], "burst": burst, "per": per}


_UNIT_NS = {"second": 10 ** 9, "minute": 60 * 10 ** 9, "hour": 3600 * 10 ** 9, "day": 86400 * 10 ** 9}


def _log(value):
    if value is True:
        return None
    if isinstance(value, str):
        value = {"prefix": value}
    out = {}
    if "prefix" in value:
        _byte_length("log", "the log prefix", value["prefix"], MAX_LOG_PREFIX)
        out["prefix"] = value["prefix"]
    if value.get("level", LOG_LEVEL) != LOG_LEVEL:  # nft's default, never listed
        out["level"] = value["level"]
    return out or None


def _action(action, rule: dict, ctx: RuleContext) -> dict:
    name, arg = (action, None) if isinstance(action, str) else next(iter(action.items()))
    if name in NAT_ACTIONS:
        _check_nat(name, ctx)
    if name in ("accept", "drop", "return"):
        return {name: None}
    if name in ("jump", "goto"):
        if arg == ctx.chain:
            raise RuleError("action", f"a chain cannot {name} to itself")
        if arg in ctx.base_chains:
            raise RuleError("action", f"{name} to {quote(arg)}: only regular chains (without a hook) can be jumped to")
        if arg not in ctx.chains:
            close = difflib.get_close_matches(arg, sorted(ctx.chains), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            known = listing(sorted(ctx.chains)) or "none"
            raise RuleError("action", f"{name} to unknown chain {quote(arg)} ({hint}regular chains of this table: "
                                      f"{known})")
        return {name: {"target": arg}}
    if name == "reject":
        if ctx.hook is not None and ctx.hook not in REJECT_HOOKS:
            raise RuleError("action", f"reject belongs in a {', '.join(REJECT_HOOKS)} chain, not {ctx.hook}")
        if arg == "tcp-reset":
            if _names(rule.get("protocol", [])) != ["tcp"]:
                raise RuleError("action", "reject with tcp-reset needs protocol: tcp")
            return {"reject": {"type": "tcp reset"}}
        kind, code = REJECT_CODES[ctx.family][arg or REJECT_CODE]
        return {"reject": {"type": kind, "expr": code}}
    if name == "masquerade":
        return {"masquerade": None}
    target = _nat_target(name, arg, ctx)
    if "port" in target:
        _needs_port_protocol(name, rule)
    return {name: target}


def _needs_port_protocol(name: str, rule: dict) -> None:
    # nft: "transport protocol mapping is only valid after transport protocol match"
    protocols = _names(rule.get("protocol", []))
    if not protocols or any(p not in ("tcp", "udp", "sctp") for p in protocols):
        raise RuleError("action", f"{name} to a port needs the rule to match protocol tcp, udp or sctp")


def _check_nat(name: str, ctx: RuleContext) -> None:
    if ctx.chain_type != "nat":
        raise RuleError("action", f"{name} needs a chain of type nat (this one is "
                                  f"{ctx.chain_type or 'a regular chain'})")
    allowed = NAT_HOOKS[name]
    if ctx.hook not in allowed:
        raise RuleError("action", f"{name} belongs in a {' or '.join(allowed)} chain, not {ctx.hook}")


def _nat_target(name: str, text: str, ctx: RuleContext) -> dict:
    host, port = text, None
    if text.startswith("["):  # [2001:db8::1]:80
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise RuleError("action", f"invalid {name} target {quote(text)}: write [address]:port")
        port = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise RuleError("action", f"invalid {name} target {quote(text)}: an address, address:port or [v6]:port") from None
    proto = "ip" if addr.version == 4 else "ip6"
    if ctx.family in ("ip", "ip6") and proto != ctx.family:
        raise RuleError("action", f"{name} to an IPv{addr.version} address in a table of family {ctx.family}")
    target = {"addr": kernel_text(addr)}
    if ctx.family == "inet":
        target = {"family": proto, **target}
    if port is not None:
        target["port"] = port_value("action", port)
    return target


def describe(rule: dict) -> str:
    """A one-line human form of a rule as written: `saddr 10.0.1.0/24 dport 8080 accept`."""
    if "nft" in rule:
        return rule["nft"]
    parts = []
    for key in MATCH_KEYS + STATEMENT_KEYS:
        if key not in rule:
            continue
        value = rule[key]
        if key == "counter":
            parts.append("counter") if value else None
            continue
        if key == "log" and isinstance(value, bool):
            parts.append("log") if value else None
            continue
        if key == "action":
            parts.append(value if isinstance(value, str) else " ".join(f"{k} {v}" for k, v in value.items()))
            continue
        shown = ",".join(map(str, value)) if isinstance(value, list) else \
            json.dumps(value) if isinstance(value, dict) else str(value)
        parts.append(f"{key.replace('_', ' ')} {shown}")
    if rule.get("comment"):
        parts.append(f'comment "{rule["comment"]}"')
    return " ".join(parts)
