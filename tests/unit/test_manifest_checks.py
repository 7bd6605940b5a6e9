"""The small validators in toolkit.manifest.checks: each returns a canonical value
or raises ValueError with a message for a person."""

from __future__ import annotations

import ipaddress
import os
import re

import pytest

from toolkit.manifest import checks


def rejects(fn, value, *args, message: str):
    """`fn(value, *args)` raises ValueError whose text contains `message`."""
    with pytest.raises(ValueError, match=re.escape(message)):
        fn(value, *args)


# -- interface names -----------------------------------------------------------

@pytest.mark.parametrize("name", [
    "eth0", "veth_srv-c1", "br.100", "a" * 15, "all0", "defaults",
])
def test_interface_name_accepted(name):
    assert checks.interface_name(name) == name


@pytest.mark.parametrize("name, message", [
    ("", "interface name is empty"),
    ("a" * 16, f"interface name '{'a' * 16}' is 16 bytes; the kernel allows 15"),
    ("é" * 8, "interface name 'éééééééé' is 16 bytes; the kernel allows 15"),   # 8 characters
    ("x" * 13 + "€", "is 16 bytes; the kernel allows 15"),
    ("a/b", "interface name 'a/b' contains illegal character(s) '/'"),
    ("a:b", "interface name 'a:b' contains illegal character(s) ':'"),
    ("eth 0", "contains illegal character(s) ' '"),
    ("eth\t0", r"contains illegal character(s) '\t'"),
    ("a/b:c d", r"contains illegal character(s) ' ', '/', ':'"),
    (".", "interface name '.' is not allowed"),
    ("..", "interface name '..' is not allowed"),
    # Reserved by the kernel's per-interface settings (/proc/sys/net/ipv4/conf/all).
    ("all", "interface name 'all' is reserved"),
    ("default", "interface name 'default' is reserved"),
    ("e\x00", "contains control characters"),
    ("e\x1b[0m", "contains control characters"),
    ("e\u200b", "contains control characters"),   # a zero-width space: invisible
    # Confusables: a Cyrillic 'е' reads as 'e' but names another interface.
    ("\u0435th0", "is not ASCII"),
    ("é" * 7 + "a", "is not ASCII"),   # 15 bytes: the byte count is not what refuses it
])
def test_interface_name_rejected(name, message):
    rejects(checks.interface_name, name, message=message)


def test_interface_name_with_a_kernel_space_byte_is_rejected():
    rejects(checks.interface_name, "lan-à", message="a byte the kernel treats as whitespace")


def test_interface_name_with_percent_is_rejected():
    rejects(checks.interface_name, "veth%d", message="'%'")


# -- interface addresses -------------------------------------------------------

@pytest.mark.parametrize("text, canonical", [
    ("10.0.1.2/24", "10.0.1.2/24"),
    ("10.0.2.0/31", "10.0.2.0/31"),          # /31: both addresses are hosts (RFC 3021)
    ("10.0.2.1/31", "10.0.2.1/31"),
    ("10.0.3.0/32", "10.0.3.0/32"),
    ("10.0.3.255/32", "10.0.3.255/32"),
    ("10.0.1.2/255.255.255.0", "10.0.1.2/24"),
    ("2001:DB8:0::1/64", "2001:db8::1/64"),
    ("fd00:0:0:0:0:0:0:1/128", "fd00::1/128"),
    ("fd00::ffff:ffff:ffff:ffff/64", "fd00::ffff:ffff:ffff:ffff/64"),  # IPv6 has no broadcast
    # IPv4-compatible: written as the kernel's readers (inet_ntop) write it, or apply never verified
    ("::a00:1/96", "::10.0.0.1/96"),
    ("::10.1.1.1/128", "::10.1.1.1/128"),
])
def test_interface_address_canonical(text, canonical):
    assert checks.interface_address(text) == canonical


def test_an_ipv4_compatible_neighbour_is_written_as_the_kernel_lists_it():
    assert checks.neighbour_address("::a00:9") == "::10.0.0.9"


@pytest.mark.parametrize("text, message", [
    ("10.0.1.2", "address '10.0.1.2' needs a prefix length, e.g. 10.0.1.2/24"),
    ("10.0.1.0/24", "10.0.1.0/24 is the network address of 10.0.1.0/24, not a host address"),
    ("10.0.1.255/24", "10.0.1.255/24 is the broadcast address of 10.0.1.0/24, not a host address"),
    ("10.0.0.4/30", "10.0.0.4/30 is the network address of 10.0.0.4/30"),
    ("10.0.0.7/30", "10.0.0.7/30 is the broadcast address of 10.0.0.4/30"),
    ("10.0.0.300/24", "invalid address '10.0.0.300/24'"),
    ("10.0.0.1/33", "invalid address '10.0.0.1/33'"),
    ("224.0.0.1/24", "224.0.0.1/24 is not a unicast host address"),
    ("ff02::1/64", "ff02::1/64 is not a unicast host address"),
    ("::/64", "::/64 is not a unicast host address"),
    (5, "address must be a string like 10.0.1.2/24, got 5"),
    # What the kernel makes itself, or refuses (issue 8, item 19).
    ("127.0.0.1/8", "127.0.0.1/8 is a loopback address"),
    ("127.0.0.2/32", "127.0.0.2/32 is a loopback address"),
    ("::1/128", "::1/128 is a loopback address"),
    ("fe80::1/64", "fe80::1/64 is an IPv6 link-local address"),
    ("10.0.0.1/0", "10.0.0.1/0 has prefix length 0"),
    ("::ffff:10.0.0.1/96", "IPv4-mapped"),
    ("255.255.255.255/32", "is not a unicast host address"),
])
def test_interface_address_rejected(text, message):
    rejects(checks.interface_address, text, message=message)


def test_ipv6_address_without_prefix_suggests_a_v6_prefix():
    rejects(checks.interface_address, "fd00::1", message="e.g. fd00::1/64")


# -- route destinations --------------------------------------------------------

@pytest.mark.parametrize("text, hint, result", [
    ("10.0.0.0/8", None, ("10.0.0.0/8", 4)),
    ("10.0.0.1", None, ("10.0.0.1/32", 4)),
    ("0.0.0.0/0", None, ("0.0.0.0/0", 4)),
    ("2001:DB8::/32", None, ("2001:db8::/32", 6)),
    ("fd00::1", None, ("fd00::1/128", 6)),
    ("::/0", None, ("::/0", 6)),
    ("default", None, ("0.0.0.0/0", 4)),   # no gateway to say otherwise: IPv4
    ("default", 4, ("0.0.0.0/0", 4)),
    ("default", 6, ("::/0", 6)),
])
def test_route_destination(text, hint, result):
    assert checks.route_destination(text, hint) == result


@pytest.mark.parametrize("text, message", [
    ("10.7.0.1/16", "route destination 10.7.0.1/16 has host bits set (did you mean 10.7.0.0/16?)"),
    ("fd00::1/64", "route destination fd00::1/64 has host bits set (did you mean fd00::/64?)"),
    ("nope", "invalid route destination 'nope'"),
    ("Default", "invalid route destination 'Default'"),
    (5, "route destination must be a string, got 5"),
])
def test_route_destination_rejected(text, message):
    rejects(checks.route_destination, text, None, message=message)


# -- gateways ------------------------------------------------------------------

@pytest.mark.parametrize("text, address", [
    ("10.0.0.1", ipaddress.IPv4Address("10.0.0.1")),
    ("FD00::1", ipaddress.IPv6Address("fd00::1")),
])
def test_gateway(text, address):
    assert checks.gateway(text) == address


@pytest.mark.parametrize("text, message", [
    ("10.0.0.1/24", "invalid gateway address '10.0.0.1/24'"),
    ("router", "invalid gateway address 'router'"),
    (6, "gateway must be an address string, got 6"),
])
def test_gateway_rejected(text, message):
    rejects(checks.gateway, text, message=message)


# -- sysctls -------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.ipv4.conf.veth-c1.rp_filter",
    "net.ipv4.conf.eth0/100.forwarding",   # sysctl(8) writes a dotted ifname with '/'
    "net.core.somaxconn",
])
def test_sysctl_name_accepted(name):
    assert checks.sysctl_name(name) == name


@pytest.mark.parametrize("name", [
    "kernel.hostname", "net", "net.", ".net.ipv4", "net..ipv4", "net.ipv4.",
    "net.ipv4.ip forward", "Net.ipv4.ip_forward", "net.ipv4.ip_forward=1", "",
])
def test_sysctl_name_rejected(name):
    rejects(checks.sysctl_name, name,
            message=f"malformed sysctl name {name!r}: expected a dotted net.* name such as "
                    "net.ipv4.ip_forward (only net.* sysctls belong to a namespace)")


@pytest.mark.parametrize("value, text", [
    (True, "1"), (False, "0"), (1, "1"), (0, "0"), ("1", "1"),
    ("  4096   87380\t6291456 ", "4096 87380 6291456"),
    ("reno", "reno"),
])
def test_sysctl_value_canonical(value, text):
    assert checks.sysctl_value(value) == text


def test_multiline_sysctl_value_rejected():
    rejects(checks.sysctl_value, "1\n2", message="sysctl value must be a single line")


def test_mac_address_is_lowercased():
    assert checks.mac_address("02:AB:cd:00:00:0F") == "02:ab:cd:00:00:0f"


@pytest.mark.parametrize("name", ["net.//.kernel.core_pattern", "net./.x", "net.ipv4.conf.//.forwarding"])
def test_sysctl_names_cannot_leave_proc_sys_net(name):
    with pytest.raises(ValueError, match="malformed sysctl name"):
        checks.sysctl_name(name)


def test_multicast_macs_and_ipv4_mapped_addresses_are_refused():
    with pytest.raises(ValueError, match="multicast MAC"):
        checks.mac_address("01:00:5e:00:00:01")
    assert checks.mac_address("02:AA:00:00:00:01") == "02:aa:00:00:00:01"
    with pytest.raises(ValueError, match="IPv4-mapped"):
        checks.interface_address("::ffff:10.0.0.1/128")


# -- sysctls the kernel has (compared with /proc/sys/net, read only) -------------

@pytest.mark.parametrize("name", [
    "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.default.rp_filter",
    "net.ipv4.conf.e0.rp_filter", "net.ipv6.neigh.e0.base_reachable_time_ms", "net.ipv4.conf.lo.forwarding",
    "net.ipv4.conf.veth/1.forwarding",   # a '/' stands for the '.' in the interface name
])
def test_known_sysctls_pass(name):
    assert checks.sysctl_exists(name, "a", {"lo", "e0", "veth.1"}) == name


@pytest.mark.parametrize("name, message", [
    ("net.ipv4.ip_froward", "unknown sysctl 'net.ipv4.ip_froward' (did you mean 'net.ipv4.ip_forward'?)"),
    ("net.ipv4.conf", "'net.ipv4.conf' is a directory of sysctls, not a sysctl"),
    ("net.ipv4.conf.e9.rp_filter", "is about interface 'e9', which node 'a' does not have (all, default, e0, lo)"),
    ("net.ipv4.neigh.all.gc_stale_time", "is about interface 'all', which node 'a' does not have"),
    ("net.ipv4.conf.e0.rp_fliter", "did you mean 'net.ipv4.conf.default.rp_filter'?"),
])
def test_unknown_sysctls_are_rejected(name, message):
    rejects(checks.sysctl_exists, name, "a", {"lo", "e0"}, message=message)


def test_sysctl_names_are_not_checked_without_proc_sys(monkeypatch, tmp_path):
    monkeypatch.setattr(checks, "PROC_SYS", str(tmp_path / "nothing"))
    assert checks.sysctl_exists("net.ipv4.ip_froward", "a", set()) == "net.ipv4.ip_froward"


def test_a_route_to_a_connected_prefix_clashes_only_at_its_metric():
    import ipaddress
    connected = {"e0": [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("2001:db8::/64")]}
    assert "connected route" in checks.connected_clash("10.0.0.0/24", 0, connected)
    assert "connected route" in checks.connected_clash("2001:db8::/64", 256, connected)
    assert checks.connected_clash("10.0.0.0/24", 10, connected) is None
    assert checks.connected_clash("2001:db8::/64", 1024, connected) is None
    assert checks.connected_clash("10.0.1.0/24", 0, connected) is None


@pytest.mark.parametrize("written, reads_back", [("01", "1"), ("010", "8"), ("0x10", "16"), ("-0", "-0"),
                                                 ("4096 087380", "4096 087380"), ("cubic", "cubic")])
def test_sysctl_numbers_are_kept_as_the_kernel_reads_them_back(written, reads_back):
    """The kernel parses with base 0; "087380" is no number of any base and stays as written."""
    assert checks.sysctl_value(written) == reads_back


def test_a_write_only_sysctl_is_refused():
    if not os.path.exists("/proc/sys/net/ipv4/route/flush"):
        pytest.skip("no /proc/sys/net/ipv4/route/flush here")
    with pytest.raises(ValueError, match="write-only"):
        checks.sysctl_exists("net.ipv4.route.flush", "a", set())


def test_an_ipv4_mapped_neighbour_is_refused():
    with pytest.raises(ValueError, match="IPv4-mapped"):
        checks.neighbour_address("::ffff:10.0.9.2")
