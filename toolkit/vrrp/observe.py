"""A bystander's view of a VIP group, from a node on its segment that is not a member:

    ip netns exec NS python -m toolkit.vrrp.observe IFACE VRID VIP[,VIP...] MS

For MS milliseconds it listens to VRRP adverts on IFACE (who advertises this
vrid, with which priority, how often) and asks, by ARP, who has each VIP
(every MAC that answers). Two advertising sources, or two MACs answering for
one VIP, is a split brain as the clients see it. Prints one JSON document:

    {"adverts": {"10.0.3.2": {"priority": 200, "count": 3}}, "arp": {"10.0.3.254": ["02:..", ..]}}

Bounded by MS (at most 10 s); standard library only, like the speaker.
"""

from __future__ import annotations

import ipaddress
import json
import select
import socket
import struct
import sys
import time

from .packet import ETH_P_ARP, PacketError, arp_answer, decode_ipv4, who_has

VRRP_GROUP = "224.0.0.18"
IPPROTO_VRRP = 112
MAX_MS = 10_000


def observe(ifname: str, vrid: int, vips: list, ms: float) -> dict:
    ms = max(50.0, min(float(ms), MAX_MS))
    adverts: dict = {}
    answers: dict = {vip: [] for vip in vips}
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP) as vrrp, \
            socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as arp:
        vrrp.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
        index = socket.if_nametoindex(ifname)
        vrrp.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        socket.inet_aton(VRRP_GROUP) + struct.pack("=II", 0, index))
        arp.bind((ifname, ETH_P_ARP))
        mac = arp.getsockname()[4]
        source = _ipv4_of(ifname)
        for vip in vips:  # asked at once; the answers are read with the adverts
            arp.send(who_has(mac, source, vip))
        deadline = time.monotonic() + ms / 1000
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([vrrp, arp], [], [], left)
            for sock in ready:
                data = sock.recv(4096)
                if sock is vrrp:
                    _advert(data, vrid, adverts)
                else:
                    arp_answer(data, answers)
    return {"adverts": adverts, "arp": answers}


def _advert(datagram: bytes, vrid: int, adverts: dict) -> None:
    try:
        received = decode_ipv4(datagram)
    except PacketError:
        return
    if received.advert.vrid != vrid:
        return
    seen = adverts.setdefault(received.src, {"priority": received.advert.priority, "count": 0})
    seen["priority"] = received.advert.priority
    seen["count"] += 1


def _ipv4_of(ifname: str) -> str:
    """The interface's first IPv4 address (SIOCGIFADDR), the ARP request's sender."""
    import fcntl

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", ifname.encode()[:15]))
    return socket.inet_ntoa(packed[20:24])


def main(argv: list) -> int:
    if len(argv) != 4:
        print("usage: observe IFACE VRID VIP[,VIP...] MS", file=sys.stderr)
        return 2
    try:
        vips = [str(ipaddress.IPv4Address(v)) for v in argv[2].split(",")]
        result = observe(argv[0], int(argv[1]), vips, float(argv[3]))
    except (ValueError, OSError) as exc:
        print(f"observe: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
