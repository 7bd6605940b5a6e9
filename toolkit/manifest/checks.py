"""Small validators shared by the semantic checks: names, addresses, prefixes.

Each returns the canonical value, or raises ValueError with a message meant for
a person (it ends up after `FILE:LINE: path:`).
"""

from __future__ import annotations

import ipaddress
import re

from .text import quote

IFNAMSIZ = 16  # the kernel's limit includes the trailing NUL: 15 usable bytes
_KERNEL_SPACE = set(b"\t\n\v\f\r \xa0")  # isspace() of the kernel's lib/ctype.c
# Used with fullmatch: `$` would also match before a final newline ("net.x\n").
_SYSCTL_NAME = re.compile(r"net(\.[A-Za-z0-9_\-/]+)+")
MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")


def interface_name(name: str) -> str:
    """Linux's dev_valid_name(): 1-15 bytes, not . or .., no '/', ':' or whitespace."""
    raw = name.encode()
    if not raw:
        raise ValueError("interface name is empty")
    if len(raw) >= IFNAMSIZ:
        raise ValueError(f"interface name {quote(name)} is {len(raw)} bytes; the kernel allows 15")
    if name in (".", ".."):
        raise ValueError(f"interface name {quote(name)} is not allowed")
    bad = sorted({c for c in name if c in "/:%" or c.isspace()})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        why = " ('%' makes the kernel treat the name as a template)" if "%" in bad else ""
        raise ValueError(f"interface name {quote(name)} contains illegal character(s) {shown}{why}")
    if any(b in _KERNEL_SPACE for b in raw):
        # The kernel tests bytes, and counts 0xA0 as a space: 'à' in UTF-8 holds one.
        raise ValueError(f"interface name {quote(name)} contains a byte the kernel treats as whitespace")
    return name


def interface_address(text) -> str:
    """'10.0.1.2/24' -> canonical text. Requires a prefix length and a host address."""
    if not isinstance(text, str):
        raise ValueError(f"address must be a string like 10.0.1.2/24, got {quote(text)}")
    if not text:
        raise ValueError("address is empty")
    if "%" in text:
        raise ValueError(f"address {quote(text)} has a scope id; the interface it sits on is the scope")
    if "/" not in text:
        example = "64" if ":" in text else "24"
        hint = f", e.g. {text}/{example}" if len(text) <= 45 else ""
        raise ValueError(f"address {quote(text)} needs a prefix length{hint}")
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError:
        raise ValueError(f"invalid address {quote(text)}") from None
    net = iface.network
    if iface.version == 4 and net.prefixlen < 31:
        if iface.ip == net.network_address:
            raise ValueError(f"{text} is the network address of {net}, not a host address")
        if iface.ip == net.broadcast_address:
            raise ValueError(f"{text} is the broadcast address of {net}, not a host address")
    if iface.ip.is_multicast or iface.ip.is_unspecified:
        raise ValueError(f"{text} is not a unicast host address")
    if iface.version == 6 and iface.ip.ipv4_mapped is not None:
        raise ValueError(f"{text} is an IPv4-mapped IPv6 address: give the IPv4 address itself")
    return iface.with_prefixlen


def route_destination(text, family_hint: int | None) -> tuple[str, int]:
    """'default' or a prefix -> (canonical prefix, family). Host bits must be clear."""
    if not isinstance(text, str):
        raise ValueError(f"route destination must be a string, got {quote(text)}")
    if text == "default":
        family = family_hint or 4
        return ("0.0.0.0/0" if family == 4 else "::/0"), family
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"invalid route destination {quote(text)}") from None
    if "/" in text and net.network_address != ipaddress.ip_interface(text).ip:
        raise ValueError(f"route destination {text} has host bits set (did you mean {net}?)")
    return net.with_prefixlen, net.version


def gateway(text) -> ipaddress._BaseAddress:
    if not isinstance(text, str):
        raise ValueError(f"gateway must be an address string, got {quote(text)}")
    if "%" in text:
        raise ValueError(f"gateway {quote(text)} has a scope id; name the interface with `dev` instead")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"invalid gateway address {quote(text)}") from None


def sysctl_name(name: str) -> str:
    # A '/' stands for a '.' inside a component, so a component must not become
    # "", "." or "..": that would walk out of /proc/sys/net (net.//.kernel.x).
    parts = [part.replace("/", ".") for part in name.split(".")]
    if not _SYSCTL_NAME.fullmatch(name) or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"malformed sysctl name {quote(name)}: expected a dotted net.* name such as "
            "net.ipv4.ip_forward (only net.* sysctls belong to a namespace)"
        )
    return name


def sysctl_value(value) -> str:
    """Canonical text of a sysctl value, as the kernel prints it (whitespace folded)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)
    if "\n" in text:
        raise ValueError("sysctl value must be a single line")
    if not text.strip():
        raise ValueError("sysctl value is empty")
    return " ".join(text.split())


def mac_address(text: str) -> str:
    if int(text.split(":")[0], 16) & 1:
        raise ValueError(f"{text} is a multicast MAC address: an interface needs a unicast one "
                         "(the first byte's lowest bit clear, e.g. 02:...)")
    return text.lower()


def neighbour_address(text: str) -> str:
    """A static neighbour's address: one unicast host address, canonical text."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"invalid neighbour address {quote(text)} (an IPv4 or IPv6 address, no prefix length)") from None
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or (ip.version == 4 and ip == ipaddress.ip_address("255.255.255.255")):
        raise ValueError(f"{ip} is not a unicast host address: a neighbour entry needs one")
    return str(ip)


def neighbour_mac(text: str) -> str:
    """A static neighbour's MAC: unicast and not all zeros."""
    if int(text.replace(":", ""), 16) == 0:
        raise ValueError("00:00:00:00:00:00 is not a usable link-layer address")
    return mac_address(text)
