"""Small validators shared by the semantic checks: names, addresses, prefixes.

Each returns the canonical value, or raises ValueError with a message meant for
a person (it ends up after `FILE:LINE: path:`).
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import os
import re
import socket

from .text import quote

IFNAMSIZ = 16  # the kernel's limit includes the trailing NUL: 15 usable bytes
# /proc/sys/net/ipv4/conf/{all,default}: the kernel refuses devices of these names.
RESERVED_IFNAMES = ("all", "default")
_LIMITED_BROADCAST = ipaddress.ip_address("255.255.255.255")
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
    if not name.isprintable():
        raise ValueError(f"interface name {quote(name)} contains control characters")
    if not name.isascii():
        # The kernel takes any bytes, but a Cyrillic 'е' looks like 'e': two names that
        # read the same would name different interfaces.
        raise ValueError(f"interface name {quote(name)} is not ASCII: use letters, digits, '-', '_' and '.'")
    if name in RESERVED_IFNAMES:
        raise ValueError(f"interface name {quote(name)} is reserved: the kernel's per-interface settings "
                         f"use it (net.ipv4.conf.{name})")
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
    if iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip == _LIMITED_BROADCAST:
        raise ValueError(f"{text} is not a unicast host address")
    if iface.ip.is_loopback:
        raise ValueError(f"{text} is a loopback address: the kernel puts 127.0.0.1/8 and ::1 on lo itself, "
                         "and refuses or ignores others")
    if iface.version == 6 and iface.ip.is_link_local:
        raise ValueError(f"{text} is an IPv6 link-local address: the kernel makes each interface's own")
    if net.prefixlen == 0:
        raise ValueError(f"{text} has prefix length 0: it would make every address connected")
    if iface.version == 6 and iface.ip.ipv4_mapped is not None:
        raise ValueError(f"{text} is an IPv4-mapped IPv6 address: give the IPv4 address itself")
    return f"{kernel_text(iface.ip)}/{iface.network.prefixlen}"


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


# The longest net.* values are lists (tcp_allowed_congestion_control, a few
# names); the kernel reads one page at most and cuts string sysctls at their size.
MAX_SYSCTL_VALUE = 1024


def sysctl_value(value) -> str:
    """Canonical text of a sysctl value, as the kernel prints it (whitespace folded)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value)  # integers arrive as written (topology.build_sysctls), never huge ints
    if len(text) > MAX_SYSCTL_VALUE:
        raise ValueError(f"sysctl value {quote(text, 20)} is too long: a net.* sysctl holds a few numbers or a "
                         f"short name (at most {MAX_SYSCTL_VALUE:,} characters here)")
    for word in text.split():  # vector sysctls (tcp_rmem) hold several numbers
        if re.fullmatch(r"-?[0-9]+", word) and (len(word) > 21 or not -2 ** 63 <= int(word) < 2 ** 64):
            raise ValueError(f"sysctl value {quote(value)} is out of range: a sysctl holds 64-bit numbers at most")
    if "\n" in text:
        raise ValueError("sysctl value must be a single line")
    if not text.replace("\t", " ").isprintable():
        raise ValueError(f"sysctl value {quote(text)} holds control characters")
    if not text.strip():
        raise ValueError("sysctl value is empty")
    return " ".join(_as_kernel_reads(w) for w in text.split())


def _as_kernel_reads(word: str) -> str:
    """A number as the kernel reads it back: it parses with base 0, so "01" is 1,
    "010" is 8 and "0x10" is 16; anything else as written."""
    found = re.fullmatch(r"(-?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", word)
    if not found:
        return word
    sign, digits = found.groups()
    return sign + str(int(digits, 16 if digits[:2].lower() == "0x" else 8 if digits.startswith("0") else 10))


def mac_address(text: str) -> str:
    if int(text.replace(":", ""), 16) == 0:
        raise ValueError(f"{text} is the all-zero MAC address: the kernel refuses it for an interface")
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
    if ip.version == 6 and ip.ipv4_mapped is not None:
        raise ValueError(f"{text} is an IPv4-mapped IPv6 address: write the IPv4 address {ip.ipv4_mapped} "
                         "for an ARP entry")
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or (ip.version == 4 and ip == ipaddress.ip_address("255.255.255.255")):
        raise ValueError(f"{ip} is not a unicast host address: a neighbour entry needs one")
    return kernel_text(ip)


def kernel_text(ip) -> str:
    """An address (ipaddress) as the kernel's readers and nftables write it: IPv6
    through inet_ntop, which writes an IPv4-compatible address as `::10.0.0.1`
    where Python writes `::a00:1` (so that what is declared and what is read
    compare equal)."""
    return socket.inet_ntop(socket.AF_INET6, ip.packed) if ip.version == 6 else str(ip)


def neighbour_mac(text: str) -> str:
    """A static neighbour's MAC: unicast and not all zeros."""
    if int(text.replace(":", ""), 16) == 0:
        raise ValueError("00:00:00:00:00:00 is not a usable link-layer address")
    return mac_address(text)


PROC_SYS = "/proc/sys"
# Directories with one entry per interface (plus all/default): a name in them is
# checked against the node's interfaces and looked up under `default`.
_PER_INTERFACE = {("ipv4", "conf"), ("ipv6", "conf"), ("ipv4", "neigh"), ("ipv6", "neigh")}
_NOT_INTERFACES = {"conf": ("all", "default"), "neigh": ("default",)}


def sysctl_exists(name: str, node: str, interfaces) -> str:
    """`name` (already well formed) if the kernel has such a sysctl for a node with
    `interfaces`. Compared with /proc/sys/net of this process, read only; the
    per-interface part (net.ipv4.conf.IF.x) against the node's own interfaces.
    Skipped when /proc/sys/net cannot be read. Raises ValueError."""
    if not os.access(os.path.join(PROC_SYS, "net"), os.R_OK | os.X_OK):
        return name
    parts = [part.replace("/", ".") for part in name.split(".")]
    if len(parts) >= 4 and tuple(parts[1:3]) in _PER_INTERFACE:
        ifname = parts[3]
        if ifname not in _NOT_INTERFACES[parts[2]] and ifname not in interfaces:
            known = ", ".join(sorted({*_NOT_INTERFACES[parts[2]], *interfaces}))
            raise ValueError(f"sysctl {quote(name)} is about interface {quote(ifname)}, which node '{node}' "
                             f"does not have ({known})")
        parts[3] = "default"  # the template every interface's directory is made from
    path = os.path.join(PROC_SYS, *parts)
    if os.path.isdir(path):
        raise ValueError(f"{quote(name)} is a directory of sysctls, not a sysctl")
    if not os.path.isfile(path):
        close = difflib.get_close_matches(".".join(parts), _known_sysctls(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown sysctl {quote(name)}{hint}: the kernel has no /proc/sys/{'/'.join(parts)}")
    if not os.stat(path).st_mode & 0o444:
        raise ValueError(f"sysctl {quote(name)} is write-only (an action, such as a flush, not a setting): "
                         "netkeel keeps settings, which it reads back to verify")
    return name


@functools.lru_cache(maxsize=1)
def _known_sysctls() -> tuple:
    """Every net.* sysctl name, per-interface directories seen through `default`."""
    names = []
    for directory, subdirs, files in os.walk(os.path.join(PROC_SYS, "net")):
        relative = os.path.relpath(directory, PROC_SYS).split(os.sep)
        if len(relative) == 3 and tuple(relative[1:]) in _PER_INTERFACE:
            subdirs[:] = [d for d in subdirs if d == "default"]
        names.extend(".".join(relative + [f]) for f in files)
    return tuple(names)


CONNECTED_METRIC = {4: 0, 6: 256}  # of the prefix route the kernel adds with an address


def connected_clash(prefix: str, metric: int, connected: dict) -> str | None:
    """Why a route to `prefix` with `metric` clashes with a connected route of the
    node (`connected`: interface -> networks of its addresses), or None: the kernel
    already has that route and refuses a second one (EEXIST)."""
    network = ipaddress.ip_network(prefix)
    for ifname, networks in connected.items():
        for net in networks:
            if net == network and net.prefixlen < net.max_prefixlen and metric == CONNECTED_METRIC[net.version]:
                return (f"route to {prefix} is the connected route the kernel makes for the addresses of "
                        f"{quote(ifname)} (metric {metric}): drop it, or give it another metric")
    return None
