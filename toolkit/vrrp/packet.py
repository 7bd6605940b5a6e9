"""VRRPv3 advertisements (RFC 9568 section 5): encode, decode, check. Pure.

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |(rsvd) |     Max Adver Int     |          Checksum             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                       IPvX Address(es)                        |

Checksum modes for IPv4:

    rfc9568        the message alone (RFC 9568 5.2.8: no pseudo-header for IPv4)
    pseudo-header  the message after an IPv4 pseudo-header (source, destination,
                   zero, protocol 112, VRRP length): RFC 5798's reading, and
                   keepalived's default (its `v3_checksum_as_v2` turns it off)

On receive either is accepted and the one that matched is reported (keepalived
in unicast mode may also put 224.0.0.18 in the pseudo-header's destination:
accepted too). IPv6 always includes its pseudo-header (RFC 8200 8.1), in both
modes.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

IPPROTO_VRRP = 112
VERSION = 3
TYPE_ADVERTISEMENT = 1
HEADER_LEN = 8
TTL = 255
MULTICAST_V4 = "224.0.0.18"
MAX_INTERVAL_CS = 0x0FFF

_HEADER = struct.Struct("!BBBBHH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")


class PacketError(ValueError):
    """A packet the speaker drops; the message says why."""


@dataclass(frozen=True)
class Advert:
    """An advertisement: version 3, type 1, and these fields."""
    vrid: int
    priority: int
    interval_cs: int
    addresses: tuple            # str addresses, one family

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.addresses[0]).version if self.addresses else 4


@dataclass(frozen=True)
class Decoded:
    advert: Advert
    checksum: str               # the mode that matched: "rfc9568" or "pseudo-header"


@dataclass(frozen=True)
class IPv4Datagram:
    src: str
    dst: str
    ttl: int
    protocol: int
    payload: bytes


@dataclass(frozen=True)
class Received:
    """A valid advertisement out of an IPv4 datagram, with where it came from."""
    src: str
    dst: str
    ttl: int
    advert: Advert
    checksum: str


def internet_checksum(data: bytes, start: int = 0) -> int:
    """RFC 1071: the one's complement of the one's complement sum of 16-bit words."""
    return ~ones_sum(data, start) & 0xFFFF


def ones_sum(data: bytes, start: int = 0) -> int:
    """The folded one's complement sum of `data` (padded to even length) plus `start`."""
    if len(data) % 2:
        data += b"\0"
    total = start + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def pseudo_header(src: str, dst: str, length: int) -> bytes:
    """The pseudo-header for a VRRP message of `length` bytes from src to dst:
    IPv4 (source, destination, zero, protocol, length) or IPv6 (RFC 8200 8.1)."""
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version != d.version:
        raise PacketError(f"pseudo-header of mixed families: {src} -> {dst}")
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, IPPROTO_VRRP, length)
    return s.packed + d.packed + struct.pack("!I3xB", length, IPPROTO_VRRP)


def _packed_addresses(advert: Advert) -> bytes:
    try:
        ips = [ipaddress.ip_address(a) for a in advert.addresses]
    except ValueError as exc:
        raise PacketError(str(exc)) from None
    if not ips or len(ips) > 255 or len({ip.version for ip in ips}) != 1:
        raise PacketError("an advert has 1-255 addresses of one family")
    return b"".join(ip.packed for ip in ips)


def encode(advert: Advert, checksum: str = "rfc9568", src: str | None = None, dst: str | None = None) -> bytes:
    """The VRRP message (no IP header). The pseudo-header mode (and IPv6
    always) needs the IP source and destination the message will carry."""
    if not (1 <= advert.vrid <= 255 and 0 <= advert.priority <= 255 and 1 <= advert.interval_cs <= MAX_INTERVAL_CS):
        raise PacketError(f"fields out of range: {advert}")
    if checksum not in ("rfc9568", "pseudo-header"):
        raise PacketError(f"unknown checksum mode {checksum!r}")
    body = _packed_addresses(advert)
    header = _HEADER.pack(VERSION << 4 | TYPE_ADVERTISEMENT, advert.vrid, advert.priority, len(advert.addresses),
                          advert.interval_cs, 0)
    message = header + body
    start = 0
    if checksum == "pseudo-header" or advert.family == 6:
        if src is None or dst is None:
            raise PacketError("the pseudo-header checksum needs the source and destination")
        start = ones_sum(pseudo_header(src, dst, len(message)))
    value = internet_checksum(message, start)
    return message[:6] + struct.pack("!H", value) + message[8:]


def decode(message: bytes, family: int = 4, src: str | None = None, dst: str | None = None) -> Decoded:
    """Check and decode a VRRP message (no IP header): version 3, type 1, a
    complete address list, a non-zero interval, a checksum valid in either mode
    (IPv6: with its pseudo-header). Bytes after the last address are ignored.
    Raises PacketError."""
    if len(message) < HEADER_LEN:
        raise PacketError(f"short packet: {len(message)} bytes")
    vt, vrid, priority, count, word, _ = _HEADER.unpack_from(message)
    if vt >> 4 != VERSION:
        raise PacketError(f"version {vt >> 4}, not {VERSION}")
    if vt & 0x0F != TYPE_ADVERTISEMENT:
        raise PacketError(f"type {vt & 0x0F}, not an advertisement")
    if count == 0:
        raise PacketError("no addresses")
    alen = 4 if family == 4 else 16
    length = HEADER_LEN + count * alen
    if len(message) < length:
        raise PacketError(f"short packet: {len(message)} bytes for {count} addresses")
    interval = word & MAX_INTERVAL_CS   # the 4 reserved bits are ignored on receive
    if interval == 0:
        raise PacketError("advertisement interval 0")
    message = message[:length]
    mode = checksum_mode(message, family, src, dst)
    if mode is None:
        raise PacketError("bad checksum")
    make = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    addresses = tuple(str(make(message[i:i + alen])) for i in range(HEADER_LEN, length, alen))
    return Decoded(Advert(vrid, priority, interval, addresses), mode)


def checksum_mode(message: bytes, family: int = 4, src: str | None = None, dst: str | None = None) -> str | None:
    """Which checksum mode `message` (exactly the VRRP message) is valid in, or None."""
    if family == 6:
        if src is None or dst is None:
            return None
        return "rfc9568" if ones_sum(message, ones_sum(pseudo_header(src, dst, len(message)))) == 0xFFFF else None
    if ones_sum(message) == 0xFFFF:
        return "rfc9568"
    if src is not None:
        destinations = [dst] if dst else []
        if MULTICAST_V4 not in destinations:
            destinations.append(MULTICAST_V4)
        for d in destinations:
            if ones_sum(message, ones_sum(pseudo_header(src, d, len(message)))) == 0xFFFF:
                return "pseudo-header"
    return None


def parse_ipv4(datagram: bytes) -> IPv4Datagram:
    """The IPv4 header's fields and the payload (as a raw socket returns it).
    Fragments and malformed headers raise PacketError."""
    if len(datagram) < _IPV4.size:
        raise PacketError(f"short IPv4 datagram: {len(datagram)} bytes")
    vihl, _tos, total, _ident, frag, ttl, proto, _sum, src, dst = _IPV4.unpack_from(datagram)
    ihl = (vihl & 0x0F) * 4
    if vihl >> 4 != 4 or ihl < 20 or len(datagram) < ihl:
        raise PacketError("not an IPv4 header")
    if frag & 0x3FFF:
        raise PacketError("a fragment")
    end = min(len(datagram), total) if total >= ihl else len(datagram)
    return IPv4Datagram(str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)), ttl, proto,
                        datagram[ihl:end])


def decode_ipv4(datagram: bytes) -> Received:
    """A received IPv4 datagram checked as RFC 9568 7.1 asks: protocol 112,
    TTL 255, then the message (decode). Raises PacketError."""
    ip = parse_ipv4(datagram)
    if ip.protocol != IPPROTO_VRRP:
        raise PacketError(f"protocol {ip.protocol}, not VRRP")
    if ip.ttl != TTL:
        raise PacketError(f"TTL {ip.ttl}, not {TTL}")
    decoded = decode(ip.payload, 4, ip.src, ip.dst)
    return Received(ip.src, ip.dst, ip.ttl, decoded.advert, decoded.checksum)


def decode_ipv6(payload: bytes, src: str, dst: str, hoplimit: int | None) -> Received:
    """An advertisement received on an IPv6 raw socket (which gives no IPv6
    header: the source, destination and hop limit come from recvmsg): the hop
    limit must be 255, the checksum include the IPv6 pseudo-header."""
    if hoplimit != TTL:
        raise PacketError(f"hop limit {hoplimit}, not {TTL}")
    decoded = decode(payload, 6, src, dst)
    return Received(src, dst, hoplimit, decoded.advert, decoded.checksum)


# -- announcements ----------------------------------------------------------------------

BROADCAST_MAC = b"\xff" * 6
ETH_P_ARP, ETH_P_IPV6 = 0x0806, 0x86DD
ALL_NODES = "ff02::1"
ND_NEIGHBOR_ADVERT = 136
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80, 0x40, 0x20


def garp_frames(mac: bytes, address: str) -> list:
    """Gratuitous ARP for `address` from `mac`, Ethernet frames to broadcast: a
    request (target hardware address zero) and a reply (target hardware address
    the sender's: Linux takes a reply as gratuitous only so); sender = target =
    address; padded to the Ethernet minimum."""
    ip = ipaddress.IPv4Address(address).packed
    eth = BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP)
    frames = []
    for op, target_mac in ((1, b"\0" * 6), (2, mac)):
        arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + mac + ip + target_mac + ip
        frames.append((eth + arp).ljust(60, b"\0"))
    return frames


def who_has(mac: bytes, source: str, target: str) -> bytes:
    """An ARP request for `target` from `mac`/`source` (0.0.0.0 for an RFC 5227
    probe, which no host learns a neighbour entry from), to broadcast."""
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + socket.inet_aton(source) + b"\0" * 6 \
        + socket.inet_aton(target)
    return (BROADCAST_MAC + mac + struct.pack("!H", ETH_P_ARP) + body).ljust(60, b"\0")


def arp_answer(frame: bytes, answers: dict) -> None:
    """Add the sender MAC of an ARP reply to answers[its sender address], for the
    addresses `answers` asks about."""
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_ARP:
        return
    op = struct.unpack("!H", frame[20:22])[0]
    sender_mac, sender_ip = frame[22:28], socket.inet_ntoa(frame[28:32])
    if op == 2 and sender_ip in answers:
        text = sender_mac.hex(":")
        if text not in answers[sender_ip]:
            answers[sender_ip].append(text)


def unsolicited_na_frame(mac: bytes, target: str, source: str, router: bool = True) -> bytes:
    """An unsolicited Neighbor Advertisement (RFC 4861 7.2.6) for `target` from
    `mac`, as an Ethernet frame to all nodes (ff02::1): Override set, Solicited
    clear, Router as asked, the target link-layer address option, hop limit
    255, sent from `source` (an address of the interface)."""
    src, dst = ipaddress.IPv6Address(source), ipaddress.IPv6Address(ALL_NODES)
    flags = NA_OVERRIDE | (NA_ROUTER if router else 0)
    body = struct.pack("!BBHB3x", ND_NEIGHBOR_ADVERT, 0, 0, flags) + ipaddress.IPv6Address(target).packed \
        + struct.pack("!BB", 2, 1) + mac
    start = ones_sum(src.packed + dst.packed + struct.pack("!I3xB", len(body), 58))
    body = body[:2] + struct.pack("!H", internet_checksum(body, start)) + body[4:]
    ipv6 = struct.pack("!IHBB", 6 << 28, len(body), 58, 255) + src.packed + dst.packed
    eth = b"\x33\x33" + dst.packed[-4:] + mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ipv6 + body


def encode_ipv4(advert: Advert, src: str, dst: str, checksum: str = "rfc9568", ttl: int = TTL,
                ident: int = 0) -> bytes:
    """A whole IPv4 datagram (header checksum included): for tests and captures."""
    payload = encode(advert, checksum, src, dst)
    header = _IPV4.pack(0x45, 0xC0, 20 + len(payload), ident, 0, ttl, IPPROTO_VRRP, 0,
                        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
    return header + payload
