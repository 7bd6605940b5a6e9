"""The VRRPv3 codec against bytes written out by hand (RFC 9568 section 5),
both checksum modes, and the packets a receiver must drop; the config format
and the RFC timer formulas."""

from __future__ import annotations

import json

import pytest

from toolkit.vrrp import config as c
from toolkit.vrrp import packet as p

# vrid 51, priority 200, one address, 10 cs: the message words, with their
# one's complement sums worked out by hand:
#   3133 + c801 + 000a + 0000 + 0a00 + 03fe = 1073c -> 073d; ~073d = f8c2
# pseudo-header 10.0.3.2 -> 224.0.0.18, protocol 112, length 12:
#   0a00 + 0302 + e000 + 0012 + 0070 + 000c = ed90; ed90 + 073d = f4cd; ~f4cd = 0b32
ADVERT = p.Advert(vrid=51, priority=200, interval_cs=10, addresses=("10.0.3.254",))
RFC9568 = bytes.fromhex("31 33 c8 01 00 0a f8 c2 0a 00 03 fe")
PSEUDO = bytes.fromhex("31 33 c8 01 00 0a 0b 32 0a 00 03 fe")
SRC, GROUP = "10.0.3.2", "224.0.0.18"

# Two addresses, priority 100, interval 4095 cs (the 12-bit maximum):
#   3105 + 6402 + 0fff + 0000 + c0a8 + 0001 + c0a8 + 0002 = 22659 -> 265b; ~265b = d9a4
TWO = p.Advert(vrid=5, priority=100, interval_cs=4095, addresses=("192.168.0.1", "192.168.0.2"))
TWO_BYTES = bytes.fromhex("31 05 64 02 0f ff d9 a4 c0 a8 00 01 c0 a8 00 02")


def ip_header(payload: bytes, src=SRC, dst=GROUP, ttl=255, proto=112) -> bytes:
    """An IPv4 header written field by field (its checksum left 0: receivers
    of raw sockets get it checked by the kernel, the codec ignores it)."""
    import socket
    import struct
    return struct.pack("!BBHHHBBH", 0x45, 0xC0, 20 + len(payload), 1, 0, ttl, proto, 0) \
        + socket.inet_aton(src) + socket.inet_aton(dst) + payload


# -- golden packets ------------------------------------------------------------------------

def test_encode_rfc9568_mode_is_the_message_alone():
    assert p.encode(ADVERT) == RFC9568
    assert p.encode(TWO) == TWO_BYTES


def test_encode_pseudo_header_mode_includes_the_ipv4_pseudo_header():
    assert p.encode(ADVERT, "pseudo-header", SRC, GROUP) == PSEUDO


def test_pseudo_header_mode_depends_on_the_destination():
    unicast = p.encode(ADVERT, "pseudo-header", SRC, "10.0.3.3")
    assert unicast != PSEUDO and unicast[:6] == PSEUDO[:6] and unicast[8:] == PSEUDO[8:]


def test_decode_golden_packets_in_both_modes_and_encode_back_identical():
    got = p.decode(RFC9568, 4, SRC, GROUP)
    assert got == p.Decoded(ADVERT, "rfc9568")
    assert p.encode(got.advert) == RFC9568
    got = p.decode(PSEUDO, 4, SRC, GROUP)
    assert got == p.Decoded(ADVERT, "pseudo-header")
    assert p.encode(got.advert, "pseudo-header", SRC, GROUP) == PSEUDO
    got = p.decode(TWO_BYTES)
    assert got.advert == TWO and p.encode(got.advert) == TWO_BYTES


def test_keepalived_unicast_compat_pseudo_header_with_the_group_address_is_accepted():
    # an advert sent to a unicast peer whose pseudo-header still names 224.0.0.18
    got = p.decode(PSEUDO, 4, SRC, "10.0.3.3")
    assert got.checksum == "pseudo-header"


def test_a_whole_datagram_is_checked_and_decoded():
    got = p.decode_ipv4(ip_header(PSEUDO))
    assert (got.src, got.dst, got.ttl, got.advert, got.checksum) == (SRC, GROUP, 255, ADVERT, "pseudo-header")
    assert p.decode_ipv4(p.encode_ipv4(ADVERT, SRC, GROUP)).advert == ADVERT


def test_reserved_bits_are_ignored_on_receive():
    data = bytearray(RFC9568)
    data[4] |= 0xF0         # reserved nibble set: the checksum must cover it
    data[6:8] = (int.from_bytes(RFC9568[6:8], "big") - 0xF000).to_bytes(2, "big")
    assert p.decode(bytes(data)).advert == ADVERT


def test_trailing_bytes_after_the_addresses_are_ignored():
    assert p.decode(RFC9568 + b"\0\0\0\0").advert == ADVERT


def test_ipv6_always_includes_its_pseudo_header():
    v6 = p.Advert(1, 100, 100, ("fe80::1", "2001:db8::1"))
    data = p.encode(v6, "rfc9568", "fe80::2", "ff02::12")
    assert p.decode(data, 6, "fe80::2", "ff02::12") == p.Decoded(v6, "rfc9568")
    with pytest.raises(p.PacketError):
        p.decode(data, 6, "fe80::3", "ff02::12")


def test_ipv6_adverts_need_hop_limit_255():
    v6 = p.Advert(52, 200, 10, ("fe80::254", "2001:db8:3::254"))
    data = p.encode(v6, "rfc9568", "fe80::2", "ff02::12")
    got = p.decode_ipv6(data, "fe80::2", "ff02::12", 255)
    assert (got.src, got.advert, got.checksum) == ("fe80::2", v6, "rfc9568")
    for hops in (1, 64, None):
        with pytest.raises(p.PacketError, match="hop limit"):
            p.decode_ipv6(data, "fe80::2", "ff02::12", hops)


# -- announcements -------------------------------------------------------------------------

MAC = bytes.fromhex("02 00 00 00 00 01")


def test_gratuitous_arp_request_and_reply_golden():
    request, reply = p.garp_frames(MAC, "10.0.3.254")
    assert request == bytes.fromhex(
        "ffffffffffff 020000000001 0806"        # broadcast, from MAC, ARP
        "0001 0800 06 04 0001"                  # Ethernet/IPv4, request
        "020000000001 0a0003fe"                 # sender: MAC, VIP
        "000000000000 0a0003fe") + bytes(18)    # target: zero, VIP; padded to 60
    assert reply == bytes.fromhex(
        "ffffffffffff 020000000001 0806 0001 0800 06 04 0002"
        "020000000001 0a0003fe 020000000001 0a0003fe") + bytes(18)   # target MAC = sender's


def test_unsolicited_neighbour_advert_frame():
    frame = p.unsolicited_na_frame(MAC, "2001:db8:3::254", "fe80::1", router=True)
    eth, ip6, icmp = frame[:14], frame[14:54], frame[54:]
    assert eth == bytes.fromhex("333300000001 020000000001 86dd")
    assert ip6[:8] == bytes.fromhex("60000000 0020 3a ff")       # payload 32, ICMPv6, hop limit 255
    assert ip6[8:24] == bytes.fromhex("fe800000000000000000000000000001")
    assert ip6[24:40] == bytes.fromhex("ff020000000000000000000000000001")
    assert icmp[0] == 136 and icmp[1] == 0 and icmp[4] == 0xA0    # Router and Override, not Solicited
    assert icmp[8:24] == bytes.fromhex("20010db8000300000000000000000254")
    assert icmp[24:] == bytes.fromhex("0201") + MAC                 # target link-layer address option
    pseudo = ip6[8:40] + len(icmp).to_bytes(4, "big") + bytes(3) + bytes([58])
    assert p.ones_sum(icmp, p.ones_sum(pseudo)) == 0xFFFF            # the checksum holds
    host = p.unsolicited_na_frame(MAC, "2001:db8:3::254", "fe80::1", router=False)
    assert host[54 + 4] == 0x20


# -- dropped -------------------------------------------------------------------------------

def test_bad_checksum_is_refused():
    for i in (1, 2, 7, 11):
        data = bytearray(RFC9568)
        data[i] ^= 0x01
        with pytest.raises(p.PacketError, match="checksum"):
            p.decode(bytes(data), 4, SRC, GROUP)


def test_pseudo_header_checksum_from_another_source_is_refused():
    with pytest.raises(p.PacketError, match="checksum"):
        p.decode(PSEUDO, 4, "10.0.3.9", GROUP)


def test_wrong_ttl_is_refused():
    for ttl in (1, 64, 254):
        with pytest.raises(p.PacketError, match="TTL"):
            p.decode_ipv4(ip_header(RFC9568, ttl=ttl))


def test_other_protocols_are_refused():
    with pytest.raises(p.PacketError, match="protocol"):
        p.decode_ipv4(ip_header(RFC9568, proto=17))


def test_short_packets_are_refused():
    for n in range(0, len(RFC9568)):
        with pytest.raises(p.PacketError):
            p.decode(RFC9568[:n])
    with pytest.raises(p.PacketError, match="short"):
        p.decode_ipv4(ip_header(RFC9568)[:19])
    with pytest.raises(p.PacketError, match="short"):
        p.decode(TWO_BYTES[:12])   # says two addresses, carries one


def test_wrong_version_and_type_are_refused():
    v2 = bytes([0x21]) + RFC9568[1:]
    with pytest.raises(p.PacketError, match="version"):
        p.decode(v2)
    other_type = bytes([0x32]) + RFC9568[1:]
    with pytest.raises(p.PacketError, match="type"):
        p.decode(other_type)


def test_no_addresses_and_zero_interval_are_refused():
    with pytest.raises(p.PacketError, match="no addresses"):
        p.decode(bytes.fromhex("31 33 c8 00 00 0a 00 00"))
    zero = bytes.fromhex("31 33 c8 01 00 00 00 00 0a 00 03 fe")
    zero = zero[:6] + p.internet_checksum(zero).to_bytes(2, "big") + zero[8:]
    with pytest.raises(p.PacketError, match="interval 0"):
        p.decode(zero)


def test_fragments_are_refused():
    data = bytearray(ip_header(RFC9568))
    data[6] = 0x20      # more fragments
    with pytest.raises(p.PacketError, match="fragment"):
        p.decode_ipv4(bytes(data))


def test_encode_refuses_what_cannot_be_sent():
    with pytest.raises(p.PacketError):
        p.encode(p.Advert(51, 200, 4096, ("10.0.3.254",)))
    with pytest.raises(p.PacketError):
        p.encode(p.Advert(51, 200, 10, ()))
    with pytest.raises(p.PacketError):
        p.encode(ADVERT, "pseudo-header")       # no source and destination
    with pytest.raises(p.PacketError):
        p.encode(p.Advert(51, 200, 10, ("10.0.3.254", "2001:db8::1")))


def test_internet_checksum_of_odd_length_pads_with_zero():
    assert p.internet_checksum(b"\x01") == p.internet_checksum(b"\x01\x00") == 0xFEFF


# -- config and timers ---------------------------------------------------------------------

CONFIG = {"group": "gw", "vrid": 51, "namespace": "p-r1", "interface": "eth0", "priority": 200,
          "addresses": ["10.0.3.254/24"], "interval_cs": 10, "preempt": True, "preempt_delay_ms": 0,
          "unicast_peers": [], "virtual_mac": False, "checksum": "rfc9568",
          "status": "/run/netkeel/vrrp/p-r1/gw.status.json"}


def test_config_round_trips_and_hashes_canonically():
    cfg = c.SpeakerConfig.from_json(json.dumps(CONFIG))
    assert json.loads(cfg.to_json()) == CONFIG
    again = c.SpeakerConfig.from_json(json.dumps(dict(reversed(list(CONFIG.items())))))
    assert again == cfg and again.config_hash() == cfg.config_hash() == c.config_hash(cfg)
    assert len(cfg.config_hash()) == 16 and int(cfg.config_hash(), 16) >= 0
    import hashlib
    canonical = json.dumps(CONFIG, sort_keys=True, separators=(",", ":"))
    assert cfg.config_hash() == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert c.SpeakerConfig.from_dict({**CONFIG, "priority": 199}).config_hash() != cfg.config_hash()


def test_config_defaults_and_normalised_addresses():
    cfg = c.SpeakerConfig.from_dict({"group": "g", "vrid": 1, "interface": "e0", "priority": 100,
                                     "addresses": ["10.0.0.1"], "status": "/tmp/s.json"})
    assert (cfg.interval_cs, cfg.preempt, cfg.checksum, cfg.addresses) == (100, True, "rfc9568", ("10.0.0.1/32",))
    assert cfg.vips == (("10.0.0.1", 32),) and cfg.family == 4


@pytest.mark.parametrize("change, words", [
    ({"priority": 255}, "owner"), ({"priority": 0}, "priority"), ({"vrid": 0}, "vrid"), ({"vrid": 256}, "vrid"),
    ({"interval_cs": 0}, "interval_cs"), ({"interval_cs": 4096}, "interval_cs"), ({"checksum": "v2"}, "checksum"),
    ({"addresses": []}, "addresses"), ({"addresses": ["10.0.3.254/24", "2001:db8::1/64"]}, "one family"),
    ({"addresses": ["nope"]}, "not an address"), ({"unicast_peers": ["2001:db8::2"]}, "family"),
    ({"preempt": 1}, "preempt"), ({"vrid": True}, "vrid"), ({"surprise": 1}, "unknown keys"),
])
def test_config_refusals_say_why(change, words):
    with pytest.raises(c.ConfigError, match=words):
        c.SpeakerConfig.from_dict({**CONFIG, **change})


def test_missing_keys_are_named():
    with pytest.raises(c.ConfigError, match="missing keys: vrid"):
        c.SpeakerConfig.from_dict({k: v for k, v in CONFIG.items() if k != "vrid"})


def test_unsupported_features_are_named():
    cfg = c.SpeakerConfig.from_dict(CONFIG)
    assert c.unsupported(cfg) == []
    assert "virtual_mac" in c.unsupported(c.SpeakerConfig.from_dict({**CONFIG, "virtual_mac": True}))[0]
    assert c.unsupported(c.SpeakerConfig.from_dict({**CONFIG, "addresses": ["fe80::1/64", "2001:db8::1/64"]})) == []


@pytest.mark.parametrize("priority, interval_cs, skew, down", [
    (200, 10, 21.875, 321.875),        # 56 * 100 ms / 256
    (100, 10, 60.9375, 360.9375),      # 156 * 100 ms / 256
    (100, 100, 609.375, 3609.375),     # the 1 s default
    (254, 1, 0.078125, 30.078125),     # 10 ms adverts
    (1, 1, 9.9609375, 39.9609375),
    (1, 4095, 40790.0390625, 163640.0390625),
])
def test_skew_time_and_master_down_interval(priority, interval_cs, skew, down):
    assert c.skew_time_ms(priority, interval_cs) == skew
    assert c.master_down_interval_ms(priority, interval_cs) == down


def test_status_round_trips():
    cfg = c.SpeakerConfig.from_dict(CONFIG)
    st = c.SpeakerStatus.initial(cfg, guardian=10, pid=11, now=1000.0)
    st.master = c.MasterStatus("10.0.3.2", 200, 10)
    st.peers["10.0.3.3"] = c.PeerStatus(3, 999.5, 100, 10, "pseudo-header")
    data = json.loads(st.to_json())
    assert set(data) == {"group", "vrid", "config_hash", "guardian", "pid", "state", "since", "transitions",
                         "priority", "holding", "master", "peers", "adverts_sent", "skew_ms",
                         "master_down_interval_ms", "updated", "error"}
    assert data["master"] == {"address": "10.0.3.2", "priority": 200, "interval_cs": 10}
    assert data["peers"]["10.0.3.3"]["checksum"] == "pseudo-header"
    assert (data["skew_ms"], data["master_down_interval_ms"], data["config_hash"]) == (21.875, 321.875,
                                                                                       cfg.config_hash())
    assert c.SpeakerStatus.from_json(st.to_json()) == st
