"""The requests netkeel encodes itself (kernel/rtnl_requests.py): their layout,
read back with the same struct formats the kernel's headers give. What the
kernel makes of them is compared with pyroute2's in
tests/integration/test_rtnl_requests.py."""

from __future__ import annotations

import socket
import struct

import pytest

from toolkit.kernel import rtnl_requests as rq
from toolkit.kernel.rtnl import _IFADDR, _IFINFO, _RTMSG, _attrs


def attributes(body: bytes, header) -> dict:
    return dict(_attrs(body, header.size))


def test_attributes_are_padded_to_four_bytes():
    assert rq.attr(3, b"ab\0") == struct.pack("=HH", 7, 3) + b"ab\0" + b"\0"
    assert rq.attr(4, b"\1\0\0\0") == struct.pack("=HH", 8, 4) + b"\1\0\0\0"
    assert len(rq.attr(20, b"x" * 5)) == 12


def test_a_veth_pair_names_its_peer_and_the_peers_namespace():
    mtype, flags, body = rq.new_veth("up0", "d1", 42)
    assert mtype == 16 and flags == rq.CREATE  # RTM_NEWLINK, refused if it exists
    top = attributes(body, _IFINFO)
    assert top[3] == b"up0\0"
    info = dict(_attrs(top[18], 0))
    assert info[1] == b"veth\0"
    peer = dict(_attrs(dict(_attrs(info[2], 0))[rq.VETH_INFO_PEER], _IFINFO.size))
    assert peer[3] == b"d1\0" and struct.unpack("=I", peer[rq.IFLA_NET_NS_FD]) == (42,)


def test_link_settings_only_what_is_asked():
    _, _, body = rq.set_link(7, up=True)
    family, _, index, flags, change = _IFINFO.unpack_from(body)
    assert (index, flags, change) == (7, 1, 1) and attributes(body, _IFINFO) == {}
    _, _, body = rq.set_link(7, up=False, arp=False, mtu=1400, mac="02:00:00:00:00:0a", master=0, alias="netkeel")
    _, _, _, flags, change = _IFINFO.unpack_from(body)
    assert (flags, change) == (0x80, 0x81)  # down, NOARP set
    found = attributes(body, _IFINFO)
    assert found == {4: struct.pack("=I", 1400), 1: bytes.fromhex("02000000000a"), 10: b"\0\0\0\0",
                     20: b"netkeel\0"}


def test_a_device_not_found_is_enodev():
    with pytest.raises(OSError) as no_device:
        rq.set_link(None, up=True)
    assert no_device.value.errno == 19
    with pytest.raises(OSError):
        rq.address("add", None, "10.0.0.1/24")


def test_an_ipv4_address_has_its_local_an_ipv6_one_its_flags():
    mtype, flags, body = rq.address("add", 3, "10.0.0.1/30", proto=144)
    family, prefixlen, ifa_flags, scope, index = _IFADDR.unpack_from(body)
    assert (mtype, flags, family, prefixlen, ifa_flags, scope, index) == (20, rq.CREATE, socket.AF_INET, 30, 0, 0, 3)
    assert attributes(body, _IFADDR) == {1: bytes([10, 0, 0, 1]), 2: bytes([10, 0, 0, 1]), 11: b"\x90"}
    mtype, flags, body = rq.address("replace", 3, "2001:db8::1/64", proto=144, flags=2)
    assert (mtype, flags) == (20, rq.REPLACE)
    found = attributes(body, _IFADDR)
    assert sorted(found) == [1, 8, 11] and found[8] == struct.pack("=I", 2)
    mtype, flags, body = rq.address("del", 3, "2001:db8::1/64")
    assert (mtype, flags) == (21, 0x4) and sorted(attributes(body, _IFADDR)) == [1]


def test_routes_of_each_kind():
    mtype, flags, body = rq.route("add", "0.0.0.0/0", 0, 254, proto=144, via="10.0.0.1")
    fields = _RTMSG.unpack_from(body)
    assert (mtype, flags) == (24, rq.CREATE)
    assert fields == (socket.AF_INET, 0, 0, 0, 254, 144, 0, 1, 0)  # universe, unicast
    assert attributes(body, _RTMSG) == {6: b"\0\0\0\0", 15: struct.pack("=I", 254), 5: bytes([10, 0, 0, 1])}
    _, _, body = rq.route("replace", "2001:db8::/48", 5, 254, proto=144, type="unreachable")
    fields, found = _RTMSG.unpack_from(body), attributes(body, _RTMSG)
    assert fields[1] == 48 and fields[7] == 7 and found[1] == bytes.fromhex("20010db8") + bytes(12)
    mtype, flags, body = rq.route("del", "192.0.2.0/24", 0, 254, oif=4, scope=255)
    fields, found = _RTMSG.unpack_from(body), attributes(body, _RTMSG)
    assert (mtype, flags) == (25, 0x4) and fields[5:8] == (0, 255, 0)  # any protocol, any scope, any type
    assert found[4] == struct.pack("=I", 4)
    _, _, body = rq.route("add", "10.0.0.0/8", 0, 1000)
    assert _RTMSG.unpack_from(body)[4] == 252 and attributes(body, _RTMSG)[15] == struct.pack("=I", 1000)
    with pytest.raises(ValueError):
        rq.route("append", "10.0.0.0/8", 0, 254)


def test_a_point_to_point_address_is_deleted_by_its_peer():
    _, _, body = rq.address("del", 3, "10.88.0.1/32", peer="10.88.0.2")
    assert attributes(body, _IFADDR) == {1: bytes([10, 88, 0, 2]), 2: bytes([10, 88, 0, 1])}
    _, _, body = rq.address("del", 3, "fd88::1/128", peer="fd88::2")
    found = attributes(body, _IFADDR)
    assert found[1][-1] == 2 and found[2][-1] == 1  # IFA_ADDRESS the peer, IFA_LOCAL the address


@pytest.mark.parametrize("text", ["mtu 1000", "mtu lock 600 advmss 500", "hoplimit 5 initcwnd 10 mtu lock 1400"])
def test_route_metrics_read_back_as_the_reader_wrote_them(text):
    from toolkit.kernel.rtnl import _metrics

    assert _metrics(rq.route_metrics(text)) == text


def test_route_metrics_it_could_not_have_written_are_refused():
    for text in ("mtu", "lock 5", "nosuch 5", "mtu lock", "mtu x", "mtu 4294967296", "1 5", "99 5"):
        with pytest.raises(ValueError):
            rq.route_metrics(text)
    _, _, body = rq.route("add", "10.78.0.0/16", 0, 254, oif=2, src="10.0.1.2", metrics="mtu 1000")
    found = attributes(body, _RTMSG)
    assert found[7] == bytes([10, 0, 1, 2]) and found[8] == rq.attr(2, struct.pack("=I", 1000))
