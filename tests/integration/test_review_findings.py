"""Defects a hostile review of the sixth session found, each shown fixed with
real namespaces."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

SPREAD = """name: spread
nodes:
  a:
    sysctls:
      net.ipv4.conf.all.forwarding: 1
      net.ipv4.conf.{ifname}.forwarding: 0
  b: {{}}
links:
  - endpoints:
      - {{node: a, interface: {ifname}, addresses: [10.0.1.1/24]}}
      - {{node: b, interface: {ifname}, addresses: [10.0.1.2/24]}}
"""


def mark_vip(lab, node: str, ifname: str, address: str, prefixlen: int) -> None:
    """Add an address marked as a VIP's (IFA_PROTO 145: iproute2 6.1 cannot), from a
    process inside the namespace (pyroute2's own netns= handling moves threads)."""
    code = ("import sys; from pyroute2 import IPRoute\n"
            "with IPRoute() as ipr:\n"
            "    ipr.addr('add', index=ipr.link_lookup(ifname=sys.argv[1])[0], address=sys.argv[2],"
            " prefixlen=int(sys.argv[3]), proto=145)\n")
    subprocess.run(["ip", "netns", "exec", lab.ns(node), sys.executable, "-c", code, ifname, address,
                    str(prefixlen)], check=True, capture_output=True, timeout=30)


def _sysctl(lab, node: str, name: str) -> str:
    return lab.exec(node, ["sysctl", "-n", name], check=True).stdout.strip()


@pytest.mark.parametrize("ifname", ["a0", "e0"])  # sorting before `all`, and after it
def test_forwarding_on_all_interfaces_and_off_on_one_applies_whatever_the_interface_is_called(
        lab, tmp_path, ifname):
    """Writing conf.all.forwarding sets every interface's forwarding: it is written
    first, and the interface's own value after it, whatever their names' order."""
    manifest = tmp_path / "spread.yaml"
    manifest.write_text(SPREAD.format(ifname=ifname))
    lab.applied(manifest)
    assert _sysctl(lab, "a", f"net.ipv4.conf.{ifname}.forwarding") == "0"
    assert _sysctl(lab, "a", "net.ipv4.conf.all.forwarding") == "1"
    assert lab.run("drift", manifest).returncode == 0


def test_a_hand_change_to_all_forwarding_is_repaired_without_losing_the_interfaces_own_value(lab, tmp_path):
    """Repairing conf.all.forwarding resets the interface's forwarding, in sync until
    then: the apply writes it again, and the lab converges."""
    manifest = tmp_path / "spread.yaml"
    manifest.write_text(SPREAD.format(ifname="e0"))
    lab.applied(manifest)
    lab.exec("a", ["sysctl", "-qw", "net.ipv4.conf.all.forwarding=0"], check=True)
    code, doc = lab.json("drift", manifest)
    assert code == 2 and [d["object"] for d in doc["differences"]] == ["sysctl net.ipv4.conf.all.forwarding"], doc
    repaired = lab.run("apply", manifest)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert _sysctl(lab, "a", "net.ipv4.conf.e0.forwarding") == "0"
    assert _sysctl(lab, "a", "net.ipv4.conf.all.forwarding") == "1"
    assert lab.run("drift", manifest).returncode == 0


def test_drift_that_cannot_run_replaces_an_older_junit_report_with_one_in_error(lab, tmp_path):
    manifest = tmp_path / "spread.yaml"
    manifest.write_text(SPREAD.format(ifname="e0"))
    lab.applied(manifest)
    report = tmp_path / "drift.xml"
    assert lab.run("drift", manifest, "--junit", str(report)).returncode == 0
    assert 'failures="0" errors="0"' in report.read_text()
    manifest.write_text("name: spread\nnodes: [a]\n")  # invalid now
    failed = lab.run("drift", manifest, "--junit", str(report))
    assert failed.returncode == 1, failed.stdout
    assert 'errors="1"' in report.read_text() and "ManifestError" in report.read_text()


def test_a_route_and_a_vip_address_marked_145_by_hand_are_drift_that_apply_removes(lab, tmp_path):
    """Protocol 145 marks a VIP's address; no overlay makes routes. Made by hand,
    neither has an owner that will ever take it away: the topology's drift."""
    manifest = tmp_path / "spread.yaml"
    manifest.write_text(SPREAD.format(ifname="e0"))
    lab.applied(manifest)
    lab.ip("a", "route add blackhole 10.9.0.0/24 proto 145")
    mark_vip(lab, "a", "e0", "10.0.1.2", 24)  # b's address, as a stray VIP
    code, doc = lab.json("drift", manifest)
    assert code == 2, doc
    assert sorted(d["object"] for d in doc["differences"]) == ["addr 10.0.1.2/24 on e0", "route 10.9.0.0/24"], doc
    assert lab.run("apply", manifest).returncode == 0
    assert "10.9.0.0" not in lab.ip("a", "route show").stdout
    assert "10.0.1.2" not in lab.ip("a", "address show dev e0").stdout
    assert lab.run("drift", manifest).returncode == 0


def test_arp_turned_off_by_hand_is_drift_and_apply_turns_it_back_on(lab, tmp_path):
    """A device with ARP off neither asks nor answers: its neighbours cannot reach it."""
    manifest = tmp_path / "spread.yaml"
    manifest.write_text(SPREAD.format(ifname="e0"))
    lab.applied(manifest)
    lab.ip("a", "link set e0 arp off")
    code, doc = lab.json("drift", manifest)
    assert code == 2 and [(d["object"], d["changes"]) for d in doc["differences"]] == [
        ("link e0", [{"field": "arp", "desired": "on", "live": "off"}])], doc
    assert lab.run("apply", manifest).returncode == 0
    assert "NOARP" not in lab.ip("a", "link show e0").stdout
    assert lab.run("drift", manifest).returncode == 0


IMPAIRED = """name: slow
nodes:
  a: {{}}
  b: {{}}
links:
  - impair: {{rate: {rate}}}
    endpoints:
      - {{node: a, interface: up, addresses: [10.0.7.2/24]}}
      - {{node: b, interface: down, addresses: [10.0.7.1/24]}}
"""


@pytest.mark.parametrize("rate", ["1mbit", "10mbit", "123456789bit", "10gbit"])
def test_a_tbf_burst_shrunk_by_hand_is_drift_and_the_burst_as_set_is_not(lab, tmp_path, rate):
    """The kernel keeps tbf's burst as a time (ticks of 64 ns): read back, it is the
    burst set give or take a tick's worth of bytes, at any rate; one changed by
    hand (`tc qdisc change ... burst 1600b`) drops what a burst of traffic brings."""
    manifest = tmp_path / "slow.yaml"
    manifest.write_text(IMPAIRED.format(rate=rate))
    lab.applied(manifest)
    assert lab.run("drift", manifest).returncode == 0
    lab.exec("a", ["tc", "qdisc", "change", "dev", "up", "root", "handle", "4e4b:", "tbf", "rate", rate,
                   "burst", "1500b", "limit", "1500b"], check=True)
    code, doc = lab.json("drift", manifest)
    assert code == 2 and {c["field"] for d in doc["differences"] for c in d["changes"]} == {"burst", "limit"}, doc
    assert lab.run("apply", manifest).returncode == 0
    assert lab.run("drift", manifest).returncode == 0


def test_an_empty_snapshot_id_is_refused_not_read_as_the_default(lab):
    result = lab.run("rollback", None, "--snapshot", "")
    assert result.returncode == 1 and "--snapshot needs a snapshot id" in result.stderr, result.stderr


def test_diff_of_one_revision_with_itself_says_nothing_would_change_without_naming_the_kernel(lab):
    result = lab.run("diff", "topologies/two-clients.yaml", "HEAD", "HEAD")
    assert result.returncode == 0, result.stderr
    assert "nothing would change" in result.stdout and "kernel" not in result.stdout, result.stdout


def test_a_fault_table_no_lease_holds_says_what_it_is_and_apply_removes_it(lab, tmp_path):
    manifest = tmp_path / "spread.yaml"
    manifest.write_text(SPREAD.format(ifname="e0"))
    lab.applied(manifest)
    lab.exec("a", ["nft", "add table inet netkeel_chaos_left { chain c { type filter hook input priority 0; }; }"],
             check=True)
    drift = lab.run("drift", manifest)
    assert drift.returncode == 2 and "a fault's table that no active lease holds" in drift.stdout, drift.stdout
    assert lab.run("apply", manifest).returncode == 0
    assert "netkeel_chaos_left" not in lab.exec("a", ["nft", "list", "tables"], check=True).stdout


def test_bridge_and_port_switches_set_by_hand_are_drift_that_apply_undoes(lab):
    """An isolated port, one that stops learning or flooding, or STP turned on (which
    holds every port back for tens of seconds): each cuts a LAN, each is drift."""
    manifest = "topologies/bridged-lan.yaml"
    lab.applied(manifest)
    lab.ip("sw", "link set dev sw_h1 type bridge_slave isolated on")
    lab.ip("sw", "link set dev sw_h2 type bridge_slave learning off flood off bcast_flood off")
    lab.ip("sw", "link set br0 type bridge stp_state 1")
    code, doc = lab.json("drift", manifest)
    assert code == 2
    found = sorted((d["object"], c["field"], c["live"]) for d in doc["differences"] for c in d["changes"])
    assert found == [("link br0", "stp", "on"), ("link sw_h1", "isolated", "on"), ("link sw_h2", "bcast_flood", "off"),
                     ("link sw_h2", "flood", "off"), ("link sw_h2", "learning", "off")], found
    assert lab.run("apply", manifest).returncode == 0
    assert lab.run("drift", manifest).returncode == 0
    assert "isolated off" in lab.ip("sw", "-d link show sw_h1").stdout


def test_an_apply_or_rollback_that_would_remove_a_device_a_fault_acts_on_is_refused_until_it_ends(lab, tmp_path):
    """Else the fault would go on showing as active, on a device that is gone,
    until its lease ran out."""
    with_extra = tmp_path / "spread.yaml"
    with_extra.write_text(SPREAD.format(ifname="e0") + "  - endpoints:\n      - {node: a, interface: x0}\n"
                                                       "      - {node: b, interface: x1}\n")
    lab.applied(with_extra)
    fault = tmp_path / "shrink.yaml"
    fault.write_text("topology: spread\ntarget: {node: a, interface: x0}\nmtu: 1280\nduration: 2m\n")
    try:
        assert lab.run("chaos", None, str(fault), "--ns-prefix", lab.prefix).returncode == 0
        without = tmp_path / "without.yaml"
        without.write_text(SPREAD.format(ifname="e0"))
        refused = lab.run("apply", without)
        assert refused.returncode == 1, refused.stdout
        assert "link x0" in refused.stderr and "revert that fault first" in refused.stderr, refused.stderr
        assert "x0" in lab.ip("a", "link show").stdout  # nothing changed
        rolled = lab.run("rollback", None)  # back to before the lab: x0 would go too
        assert rolled.returncode == 1 and "revert that fault first" in rolled.stderr, rolled.stdout + rolled.stderr
        assert "x0" in lab.ip("a", "link show").stdout
    finally:
        assert lab.run("chaos", None, "revert", "--all").returncode == 0
    assert lab.run("apply", without).returncode == 0


def test_an_ipv6_all_setting_that_spreads_is_repaired_without_losing_the_interfaces_own(lab, tmp_path):
    """On recent kernels IPv6's conf.all.X spreads to every interface for more
    fields than forwarding (ignore_routes_with_linkdown here): repairing `all`
    writes the interface's declared value again."""
    manifest = tmp_path / "v6.yaml"
    manifest.write_text(SPREAD.format(ifname="e0").replace(
        "net.ipv4.conf.all.forwarding: 1\n      net.ipv4.conf.e0.forwarding: 0",
        "net.ipv6.conf.all.ignore_routes_with_linkdown: 1\n      net.ipv6.conf.e0.ignore_routes_with_linkdown: 0"))
    lab.applied(manifest)
    lab.exec("a", ["sysctl", "-qw", "net.ipv6.conf.all.ignore_routes_with_linkdown=0"], check=True)
    repaired = lab.run("apply", manifest)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert _sysctl(lab, "a", "net.ipv6.conf.e0.ignore_routes_with_linkdown") == "0"
    assert lab.run("drift", manifest).returncode == 0


TWO_BRIDGES = """name: lan
nodes:
  sw: {{bridges: {{br0: {{ports: [{br0}], addresses: [10.7.0.254/24]}}, {br1}}}}}
  h1: {{}}
  h2: {{}}
links:
  - endpoints: [{{node: h1, interface: eth0, addresses: [10.7.0.1/24]}}, {{node: sw, interface: p1}}]
  - endpoints: [{{node: h2, interface: eth0, addresses: [10.7.0.2/24]}}, {{node: sw, interface: p2}}]
"""


def test_rollback_brings_back_switches_set_by_hand_on_a_port_moved_and_a_bridge_removed(lab, tmp_path):
    """A snapshot holds what was there, hand-set switches too: a rollback that
    enslaves a port again, or makes a bridge again, sets them after."""
    before = tmp_path / "before.yaml"
    before.write_text(TWO_BRIDGES.format(br0="p1, p2", br1="br1: {}"))
    lab.applied(before)
    lab.ip("sw", "link set dev p1 type bridge_slave isolated on learning off bcast_flood off")
    lab.ip("sw", "link set br1 type bridge stp_state 1")
    assert lab.run("rollback", None).returncode in (0, 1)  # (nothing to roll back to yet: the empty lab)
    lab.applied(before)  # again: the snapshot before this apply holds the hand-set switches
    lab.ip("sw", "link set dev p1 type bridge_slave isolated on learning off bcast_flood off")
    lab.ip("sw", "link set br1 type bridge stp_state 1")
    after = tmp_path / "after.yaml"
    after.write_text(TWO_BRIDGES.format(br0="p2", br1=""))  # p1 released, br1 gone
    lab.applied(after)
    rolled = lab.run("rollback", None)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    details = lab.ip("sw", "-d link show p1").stdout
    assert "isolated on" in details and "learning off" in details and "bcast_flood off" in details, details
    assert "stp_state 1" in lab.ip("sw", "-d link show br1").stdout


def test_rollback_brings_back_a_tbf_burst_set_by_hand_and_huge_rates_apply(lab, tmp_path):
    manifest = tmp_path / "slow.yaml"
    manifest.write_text(IMPAIRED.format(rate="12345kbit"))
    lab.applied(manifest)
    lab.exec("a", ["tc", "qdisc", "change", "dev", "up", "root", "handle", "4e4b:", "tbf", "rate", "12345kbit",
                   "burst", "3000", "latency", "50ms"], check=True)
    lab.applied(manifest)  # repairs it; its snapshot holds the hand-set burst
    rolled = lab.run("rollback", None)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    shown = lab.exec("a", ["tc", "qdisc", "show", "dev", "up"], check=True).stdout
    assert int(re.search(r"burst (\d+)b", shown)[1]) in range(2998, 3003), shown  # kept as a time: a tick's bytes
    manifest.write_text(IMPAIRED.format(rate="800gbit"))  # 50 ms of it would overflow 32 bits of queue
    lab.applied(manifest)
    assert lab.run("drift", manifest).returncode == 0


def test_ipv6_off_everywhere_but_on_one_interface_with_an_ipv6_address_applies(lab, tmp_path):
    manifest = tmp_path / "v6only.yaml"
    manifest.write_text("name: v6\nnodes:\n  a:\n    sysctls: {net.ipv6.conf.all.disable_ipv6: 1, "
                        "net.ipv6.conf.e0.disable_ipv6: 0}\n  b: {}\nlinks:\n  - endpoints:\n"
                        "      - {node: a, interface: e0, addresses: ['fd00:7::1/64']}\n"
                        "      - {node: b, interface: e0, addresses: ['fd00:7::2/64']}\n")
    lab.applied(manifest)
    assert "fd00:7::1" in lab.ip("a", "-6 addr show dev e0").stdout
    assert lab.run("drift", manifest).returncode == 0


def test_rollback_with_a_state_directory_that_does_not_exist_says_so_and_makes_none(lab, tmp_path):
    missing = tmp_path / "20261130T212148.533Z-8f7d"  # a snapshot id given as -s, the old short flag
    result = subprocess.run([*lab.argv("rollback", None), "-s", str(missing)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1 and "did you mean --snapshot" in result.stderr, result.stderr
    assert not missing.exists()


def test_a_sysctl_value_the_kernel_does_not_know_is_named_as_the_value_not_the_sysctl(lab, tmp_path):
    """Writing an unknown congestion control fails with ENOENT from the write: the
    value is what the kernel does not know, the sysctl exists."""
    manifest = tmp_path / "bbr9.yaml"
    manifest.write_text("name: cc\nnodes:\n  a:\n    sysctls: {net.ipv4.tcp_congestion_control: bbr9}\n")
    result = lab.run("apply", manifest)
    assert result.returncode == 1
    assert "the kernel knows no value 'bbr9' for it" in result.stderr and "no such sysctl" not in result.stderr
    assert "the pre-apply state was restored and verified" in result.stderr


@pytest.mark.parametrize("command", ["plan", "drift", "show"])
def test_a_read_only_command_given_a_state_directory_that_does_not_exist_makes_none(lab, tmp_path, command):
    """A mistyped `-s` made a whole state directory of caches (and drift said every
    object was missing without a word about why)."""
    missing = tmp_path / "no" / "such" / "state"
    result = lab.run(command, "topologies/two-clients.yaml", "-s", str(missing))
    assert result.returncode in (0, 2), result.stderr
    assert f"note: state directory {missing} does not exist" in " ".join(result.stderr.split())
    assert not (tmp_path / "no").exists()


def test_a_route_added_by_hand_on_a_device_is_removed_by_apply(lab):
    """`ip route add X dev Y` makes a route of scope link; the delete asked for scope
    universe, the kernel found none ("No such process"), and every apply failed and
    restored (from a hostile review)."""
    lab.applied("topologies/two-clients.yaml")
    lab.ip("ns_server", "route add 10.50.0.0/16 dev veth_srv_c1")
    lab.ip("ns_server", "-6 route add fd00:77::/64 dev veth_srv_c1")
    assert lab.run("drift", "topologies/two-clients.yaml").returncode == 2
    repaired = lab.run("apply", "topologies/two-clients.yaml")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "10.50.0.0" not in lab.ip("ns_server", "route").stdout
    assert "fd00:77::" not in lab.ip("ns_server", "-6 route").stdout
    assert lab.run("drift", "topologies/two-clients.yaml").returncode == 0


def test_a_junit_report_path_that_is_a_symlink_is_refused_never_written_through(lab, tmp_path):
    """`drift --junit /tmp/x.xml` runs as root: a symlink someone left there was
    followed, and its target overwritten."""
    lab.applied("topologies/two-clients.yaml")
    target = tmp_path / "precious"
    target.write_text("keep")
    report = tmp_path / "drift.xml"
    report.symlink_to(target)
    result = lab.run("drift", "topologies/two-clients.yaml", "--junit", str(report))
    assert result.returncode == 1 and "it exists and is a symlink" in result.stderr, result.stderr
    assert target.read_text() == "keep" and report.is_symlink()
    report.unlink()
    assert lab.run("drift", "topologies/two-clients.yaml", "--junit", str(report)).returncode == 0
    assert 'failures="0"' in report.read_text() and not report.is_symlink()


def test_a_route_removed_by_apply_is_that_route_not_a_multipath_one_of_the_same_prefix(lab):
    """The kernel deletes the first route matching what a delete sends: deleting a
    hand-made device route took the multipath route of the same prefix and metric
    (which netkeel reports and never changes) instead, and the restore could not
    bring it back (from a review). A route with a TOS selector is left alone too."""
    lab.applied("topologies/two-clients.yaml")
    lab.ip("ns_server", "route add 192.168.70.0/24 nexthop via 10.0.1.2 nexthop via 10.0.2.2")
    lab.ip("ns_server", "route append 192.168.70.0/24 dev veth_srv_c1")
    lab.ip("ns_server", "route add 192.168.71.0/24 tos 0x10 via 10.0.1.2")
    repaired = lab.run("apply", "topologies/two-clients.yaml")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    routes = lab.ip("ns_server", "route").stdout
    assert "nexthop via 10.0.1.2" in routes and "nexthop via 10.0.2.2" in routes, routes
    assert "192.168.70.0/24 dev veth_srv_c1" not in routes and "192.168.71.0/24 tos 0x10" in routes, routes
    drift = lab.run("drift", "topologies/two-clients.yaml")
    assert drift.returncode == 2 and "a multipath route" in drift.stdout and "TOS selector" in drift.stdout


DEFAULTS = """name: defaults
nodes:
  p: {sysctls: {net.ipv6.conf.default.hop_limit: 7, net.ipv4.conf.default.rp_filter: 2}}
  q: {}
links:
  - endpoints:
      - {node: p, interface: pe, addresses: [10.7.0.1/24, "fd07::1/64"]}
      - {node: q, interface: qe, addresses: [10.7.0.2/24]}
"""


def test_a_device_gets_its_nodes_defaults_whether_the_lab_is_built_at_once_or_its_peer_made_again(lab, tmp_path):
    """conf.default is what a device takes as it is made: written before the
    node's devices are. The first build gave pe hop_limit 64 (made before the
    default was written), an apply after q's namespace was deleted gave the new
    pe 7, and drift saw neither (found by review)."""
    manifest = tmp_path / "defaults.yaml"
    manifest.write_text(DEFAULTS)
    lab.applied(manifest)
    assert _sysctl(lab, "p", "net.ipv6.conf.pe.hop_limit") == "7"
    assert _sysctl(lab, "p", "net.ipv4.conf.pe.rp_filter") == "2"
    subprocess.run(["ip", "netns", "del", lab.ns("q")], check=True, timeout=10)
    assert lab.run("apply", manifest).returncode == 0
    assert _sysctl(lab, "p", "net.ipv6.conf.pe.hop_limit") == "7"
    assert _sysctl(lab, "p", "net.ipv4.conf.pe.rp_filter") == "2"
    assert lab.run("drift", manifest).returncode == 0


ROUTED = """name: routed
nodes:
  a: {routes: [{to: default, via: 10.1.1.1}]}
  r: {sysctls: {net.ipv4.ip_forward: 1}}
  b: {routes: [{to: default, via: 10.1.2.1}]}
links:
  - endpoints:
      - {node: a, interface: va, addresses: [10.1.1.2/24]}
      - {node: r, interface: ra, addresses: [10.1.1.1/24]}
  - endpoints:
      - {node: r, interface: rb, addresses: [10.1.2.1/24]}
      - {node: b, interface: vb, addresses: [10.1.2.2/24]}
"""


def test_forwarding_turned_off_on_one_device_of_a_router_is_drift_that_apply_repairs(lab, tmp_path):
    """IPv4 forwards by the input device's own `forwarding`: one turned off by hand
    cut the router while ip_forward read 1, and drift said in sync (found by review)."""
    manifest = tmp_path / "routed.yaml"
    manifest.write_text(ROUTED)
    lab.applied(manifest)
    ping = ["ping", "-n", "-c", "1", "-W", "1", "10.1.2.2"]
    assert lab.exec("a", ping, timeout=10).returncode == 0
    lab.exec("r", ["sysctl", "-qw", "net.ipv4.conf.ra.forwarding=0"], check=True)
    assert lab.exec("a", ping, timeout=10).returncode != 0
    drift = lab.run("drift", manifest)
    assert drift.returncode == 2 and "net.ipv4.conf.ra.forwarding" in drift.stdout, drift.stdout
    assert lab.run("apply", manifest).returncode == 0
    assert _sysctl(lab, "r", "net.ipv4.conf.ra.forwarding") == "1"
    assert lab.exec("a", ping, timeout=10).returncode == 0
    assert lab.run("drift", manifest).returncode == 0


SEEN_POLICY = """tables:
  f:
    family: inet
    sets:
      seen: {type: ipv4_addr, flags: [timeout], elements: [192.0.2.7]}
    chains:
      input:
        hook: input
        policy: accept
        rules:
          - {nft: "update @seen { ip saddr timeout 1h }"}
"""


def test_a_set_the_packet_path_fills_is_in_sync_and_kept_by_apply(lab, tmp_path):
    """Drift found each address that had sent a packet, and each apply deleted
    them (found by review)."""
    (tmp_path / "seen.yaml").write_text(SEEN_POLICY)
    manifest = tmp_path / "lab.yaml"
    manifest.write_text(SPREAD.format(ifname="e0").replace("  a:\n", "  a:\n    policies: [seen.yaml]\n", 1))
    lab.applied(manifest)
    assert lab.exec("b", ["ping", "-n", "-c", "1", "-W", "1", "10.0.1.1"], timeout=10).returncode == 0
    listed = lambda: lab.exec("a", ["nft", "list", "set", "inet", "netkeel_f", "seen"], check=True).stdout
    assert "10.0.1.2" in listed() and "192.0.2.7" in listed()  # the traffic's, and the declared one
    assert lab.run("drift", manifest).returncode == 0 and lab.run("drift", manifest, "--full").returncode == 0
    assert "already in sync" in lab.run("apply", manifest).stdout
    assert "10.0.1.2" in listed()
    # A declared element is compared: gone, it is drift, and apply adds it back, keeping the traffic's.
    lab.exec("a", ["nft", "delete", "element", "inet", "netkeel_f", "seen", "{ 192.0.2.7 }"], check=True)
    assert lab.run("drift", manifest).returncode == 2
    assert lab.run("apply", manifest).returncode == 0
    assert "10.0.1.2" in listed() and "192.0.2.7" in listed()
    (tmp_path / "seen.yaml").write_text(SEEN_POLICY.replace("[192.0.2.7]", "[192.0.2.7, 192.0.2.8]"))
    assert lab.run("apply", manifest).returncode == 0
    assert "10.0.1.2" in listed() and "192.0.2.8" in listed()
    lab.exec("a", ["nft", "add", "set", "inet", "netkeel_f", "extra", "{ type ipv4_addr; }"], check=True)
    assert lab.run("drift", manifest).returncode == 2  # anything else is still compared


def test_a_route_replaced_by_hand_with_another_protocol_is_drift_and_a_rollback_gives_a_hand_routes_back(
        lab, tmp_path):
    """`ip route replace ... proto static` of a declared route kept drift quiet, and
    netkeel's mark was lost; a rollback made a hand route again as netkeel's
    (found by review)."""
    manifest = tmp_path / "spread.yaml"
    manifest.write_text(SPREAD.format(ifname="e0").replace("  b: {}", "  b: {routes: [{to: default, via: 10.0.1.1}]}"))
    lab.applied(manifest)
    for proto in ("static", "0", "kernel"):  # (a kernel's own route has no gateway: this one is a hand's)
        lab.ip("b", f"route replace default via 10.0.1.1 dev e0 proto {proto}")
        code, doc = lab.json("drift", manifest)
        assert code == 2 and any(c["field"] == "proto" for c in doc["differences"][0]["changes"]), (proto, doc)
        assert lab.run("apply", manifest).returncode == 0
        assert "proto 144" in lab.ip("b", "route show default").stdout
    for proto in ("static", "0"):
        lab.ip("b", f"route add 10.50.0.0/16 via 10.0.1.1 dev e0 proto {proto}")
        assert lab.run("apply", manifest).returncode == 0  # removes it, after a snapshot with it
        assert "10.50.0.0/16" not in lab.ip("b", "route").stdout
        assert lab.run("rollback", None).returncode == 0
        shown = lab.ip("b", "route").stdout
        assert "10.50.0.0/16 via 10.0.1.1 dev e0" + (" proto static" if proto == "static" else "") in shown, shown
        lab.ip("b", "route del 10.50.0.0/16")
