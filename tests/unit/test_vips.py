"""VIP groups without root: the `vips:` section's checks (every problem with its
line), the speakers compiled from it, whose each live VIP address is (rightly
held, split, orphaned, a non-member's), the VIP faults' plans, and a runtime
round trip against the fake kernel."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from fakekernel import FakeKernel

from toolkit.chaos.plan import Lab, plan
from toolkit.core.owners import SPEAKER, TOPOLOGY, overlay
from toolkit.core.resource import Resource
from toolkit.errors import FaultError, ManifestError
from toolkit.kinds import compile_all, settle_owners
from toolkit.kinds.vrrp import KIND as VRRP
from toolkit.manifest import load_topology
from toolkit.manifest.fault import load_fault_text
from toolkit.manifest.topology import load_topology_text
from toolkit.runtime.engine import Reconciler
from toolkit.state.statedir import StateDir

REPO = Path(__file__).resolve().parents[2]
PAIR = (REPO / "topologies" / "vrrp-pair.yaml").read_text()


def problems(text: str) -> list:
    with pytest.raises(ManifestError) as caught:
        load_topology_text(text, "t.yaml")
    return [str(p).removeprefix("t.yaml:") for p in caught.value.problems]


def with_vips(vips: str) -> str:
    return PAIR[:PAIR.index("vips:")] + textwrap.dedent(vips)


# -- the manifest --------------------------------------------------------------------------------

def test_the_shipped_pair_gives_one_speaker_per_member():
    topology = load_topology(REPO / "topologies" / "vrrp-pair.yaml")
    (group,) = topology.vips
    assert (group.vrid, group.addresses, group.interval_cs, group.preempt) == (51, ("10.0.3.254/24",), 10, True)
    speakers = sorted(r for r in compile_all(topology, "p-") if r.kind == VRRP.name)
    assert [r.key for r in speakers] == [("p-r1", "gw"), ("p-r2", "gw")]
    assert [r.get("priority") for r in speakers] == [200, 100]
    assert speakers[0].get("unicast_peers") == ()


def test_unicast_peers_are_the_other_members_addresses():
    topology = load_topology_text(PAIR.replace("interval: 100ms", "interval: 100ms\n    unicast: true"), "t.yaml")
    speakers = {r.key[0]: r for r in compile_all(topology, "") if r.kind == VRRP.name}
    assert speakers["r1"].get("unicast_peers") == ("10.0.3.3",)
    assert speakers["r2"].get("unicast_peers") == ("10.0.3.2",)


def test_every_problem_of_a_vip_group_with_its_line():
    found = problems(with_vips("""\
        vips:
          gw:
            vrid: 51
            addresses: [10.0.3.10/24, 10.9.9.9/24, "fd00::1/64", nonsense]
            interval: 15ms
            virtual_mac: true
            members:
              - {node: r1, interface: eth9, priority: 200}
              - {node: r1, interface: eth0, priority: 100}
              - {node: ghost, interface: eth0, priority: 100}
          other:
            vrid: 51
            addresses: [10.0.3.253/24]
            members:
              - {node: r2, interface: eth0, priority: 255}
        """))
    text = "\n".join(found)
    assert "vips.gw.addresses[0]: 10.0.3.10 is also an address of client/eth0" in text
    assert "vips.gw.addresses[2]: only IPv4 virtual addresses are supported" in text
    assert "vips.gw.addresses[3]: 'nonsense' is not an address with its prefix length" in text
    assert "vips.gw.interval: interval '15ms': from 10ms to 40.95s in steps of 10ms" in text
    assert "vips.gw.virtual_mac: a virtual MAC is not supported yet" in text
    assert "vips.gw.members[0].interface: r1 has no interface 'eth9' (it has: eth0)" in text
    assert "vips.gw.members[1].node: r1 is a member twice" in text
    assert "vips.gw.members[2].node: no node 'ghost' in this topology" in text
    assert "vips.other.members[0].priority" in text  # 255 (the address owner) is refused by the schema
    assert all(p.split(":")[0].isdigit() for p in found), found


def test_a_vip_outside_the_members_subnet_and_a_vrid_twice_on_a_segment():
    found = problems(with_vips("""\
        vips:
          gw:
            vrid: 51
            addresses: [10.0.3.254/24]
            members:
              - {node: r1, interface: eth0, priority: 200}
          far:
            vrid: 52
            addresses: [10.0.4.254/24]
            members:
              - {node: r2, interface: eth0, priority: 200}
          again:
            vrid: 51
            addresses: [10.0.3.253/24]
            members:
              - {node: r2, interface: eth0, priority: 200}
              - {node: r1, interface: eth0, priority: 100}
        """))
    text = "\n".join(found)
    assert "vips.far.members[0].interface: 10.0.4.254 is not in a subnet of r2/eth0 (10.0.3.3/24)" in text
    assert "vips.again.vrid: vrid 51 is already group gw's on the segment of r2/eth0" in text


# -- whose a live VIP address is ------------------------------------------------------------------

def _live(holders: dict, speakers: dict) -> list:
    """Live state: the VIP on each holder (ns -> ifname), the speakers running (ns -> holding)."""
    out = [Resource.make("addr", (ns, ifname, "10.0.3.254/24"), owner=overlay("unclaimed"))
           for ns, ifname in holders.items()]
    out += [Resource.make(VRRP.name, (ns, "gw"), running=True, _holding=holding,
                          _state="active" if holding else "backup")
            for ns, holding in speakers.items()]
    return out


DESIRED = compile_all(load_topology_text(PAIR, "t.yaml"), "")


def owners(live) -> dict:
    return {(r.ns, r.key[2]): (r.owner, r.get("reason")) for r in settle_owners(DESIRED, live) if r.kind == "addr"}


def test_a_vip_rightly_held_is_the_speakers_and_not_reported():
    found = owners(_live({"r1": "eth0"}, {"r1": True, "r2": False}))
    assert found == {("r1", "10.0.3.254/24"): (SPEAKER, None)}


def test_a_vip_held_twice_is_a_split_brain_on_both():
    found = owners(_live({"r1": "eth0", "r2": "eth0"}, {"r1": True, "r2": True}))
    assert {o for o, _ in found.values()} == {overlay("vip:gw")}
    assert all("held by r1 and r2 at once (split brain)" in why for _, why in found.values())


@pytest.mark.parametrize("holders, speakers, why", [
    ({"r1": "eth0"}, {"r2": False}, "orphaned on r1: its speaker is not running"),
    ({"r2": "eth0"}, {"r1": True, "r2": False}, "held by r2, whose speaker is backup"),
])
def test_a_vip_where_it_should_not_be_says_why(holders, speakers, why):
    (owner, reason), = owners(_live(holders, speakers)).values()
    assert owner == overlay("vip:gw") and why in reason


def test_a_vip_of_no_declared_group_that_a_configured_speaker_holds_is_an_orphan_left_to_it():
    """A group taken out of the manifest, its speaker still configured there: the
    apply stops that speaker, which withdraws its VIPs itself."""
    live = [Resource.make("addr", ("r1", "eth0", "10.0.3.200/24"), owner=overlay("unclaimed")),
            Resource.make(VRRP.name, ("r1", "old"), running=True, addresses=("10.0.3.200/24",))]
    r = next(r for r in settle_owners(DESIRED, live) if r.kind == "addr")
    assert r.owner == overlay("vip") and "of no group" in r.get("reason")


def test_a_vip_on_a_node_no_speaker_of_its_group_runs_on_is_the_topologys_drift():
    """Not a member, and no speaker configured with it there: nothing would ever
    take it away but an apply."""
    found = owners(_live({"client": "eth0", "r1": "eth0"}, {"r1": True, "r2": False}))
    assert found[("client", "10.0.3.254/24")] == (TOPOLOGY, None)


def test_a_vip_no_group_declares_and_no_speaker_holds_is_the_topologys_drift():
    """Marked as a VIP (by hand, or left by a speaker that died with its files):
    nothing will ever take it away, so apply does."""
    live = [Resource.make("addr", ("r1", "eth0", "10.0.3.200/24"), owner=overlay("unclaimed"))]
    (r,) = settle_owners(DESIRED, live)
    assert r.owner == TOPOLOGY and r.get("reason") is None


# -- the VIP groups' faults --------------------------------------------------------------------------

def _lab(r1_state="active", r2_state="backup") -> Lab:
    members = {}
    for ns, state, source in (("p-r1", r1_state, "10.0.3.2"), ("p-r2", r2_state, "10.0.3.3")):
        members[ns] = {"config": {"interface": "eth0", "source": source, "priority": 1},
                       "status": {"state": state, "pid": 4242} if state else None}
    return Lab(namespaces={"r1": "p-r1", "r2": "p-r2", "sw": "p-sw"},
               interfaces={"p-r1": {"eth0"}, "p-r2": {"eth0"}, "p-sw": {"sw_r1", "sw_r2", "br0"}},
               addresses={}, peers={("p-r1", "eth0"): ("p-sw", "sw_r1"), ("p-r2", "eth0"): ("p-sw", "sw_r2")},
               speakers={"gw": members})


def _plan(kind: str, lab: Lab):
    return plan(load_fault_text(f"{kind}: gw\n", "f.yaml"), ["nft"], lab, "f-0123abcd", 5000)


def test_kill_and_stop_aim_at_the_active_speaker():
    (op,) = _plan("speaker_kill", _lab(r1_state="backup", r2_state="active")).operations
    assert (op["op"], op["ns"], op["signal"], op["pid"]) == ("speaker", "p-r2", "KILL", 4242)
    (op,) = _plan("speaker_stop", _lab()).operations
    assert (op["ns"], op["signal"]) == ("p-r1", "TERM")


def test_a_cut_takes_the_active_members_switch_port_down():
    (op,) = _plan("master_cut", _lab()).operations
    assert (op["op"], op["ns"], op["dev"], op["set"]) == ("device", "p-sw", "sw_r1", {"state": "down"})


def test_a_vrrp_partition_drops_vrrp_from_the_other_members_on_each():
    ops = _plan("vrrp_partition", _lab()).operations
    assert [op["ns"] for op in ops] == ["p-r1", "p-r2"]
    assert "ip protocol 112 ip saddr @peers drop" in ops[0]["text"] and "10.0.3.3 timeout 5000ms" in ops[0]["text"]
    assert "10.0.3.2 timeout 5000ms" in ops[1]["text"]


@pytest.mark.parametrize("states", [("active", "active"), ("backup", "backup")])
def test_a_fault_aimed_at_the_master_is_refused_without_exactly_one(states):
    with pytest.raises(FaultError, match="active member"):
        _plan("speaker_kill", _lab(*states))


def test_vip_faults_take_no_target_and_nothing_else():
    with pytest.raises(ManifestError, match="a fault of its own"):
        load_fault_text("speaker_kill: gw\nloss: 5%\ntarget: {node: a, interface: e0}\n", "f.yaml")


# -- the runtime, against the fake kernel -------------------------------------------------------------------

def test_apply_starts_speakers_last_and_destroy_stops_them_first(tmp_path):
    topology = load_topology_text(PAIR, str(tmp_path / "t.yaml"))
    kernel, state = FakeKernel(), StateDir(tmp_path / "state")
    Reconciler(topology, kernel, state, prefix="p-").apply()
    starts = [c for c in kernel.calls if c[0] == "speaker_start"]
    assert [c[1] for c in starts] == ["p-r1", "p-r2"]
    assert kernel.calls.index(starts[0]) > max(i for i, c in enumerate(kernel.calls) if c[0] == "addr_add")
    assert Reconciler(topology, kernel, state, prefix="p-").drift().clean
    kernel.calls.clear()
    Reconciler(topology, kernel, state, prefix="p-").destroy()
    stops = [i for i, c in enumerate(kernel.calls) if c[0] == "speaker_stop"]
    removals = [i for i, c in enumerate(kernel.calls) if c[0] == "remove_namespace"]
    assert len(stops) == 2 and max(stops) < min(removals)


def test_members_must_share_a_segment_and_group_names_cannot_hold_dots():
    found = problems(with_vips("""\
        vips:
          x.status:
            vrid: 51
            addresses: [10.0.3.254/24, 10.0.3.254/25, 10.0.3.0/24]
            interval: 2.01s
            members:
              - {node: r1, interface: eth0, priority: 200}
        """))
    text = "\n".join(found)
    assert "invalid VIP group name 'x.status'" in text
    found = problems(with_vips("""\
        vips:
          gw:
            vrid: 51
            addresses: [10.0.3.254/24, 10.0.3.254/25, 10.0.3.0/24]
            interval: 2.01s
            members:
              - {node: r1, interface: eth0, priority: 200}
              - {node: client, interface: lo, priority: 100}
        """))
    text = "\n".join(found)
    assert "vips.gw.addresses[1]: 10.0.3.254 is listed twice" in text
    assert "vips.gw.addresses[2]: 10.0.3.0 is the network's own address" in text
    assert "interval" not in text  # 2.01s is 201 centiseconds
    assert "vips.gw.members[1].interface: client/lo has no IPv4 address to send adverts from" in text


@pytest.mark.parametrize("change", [{"peers": ["x"]}, {"peers": {"10.0.0.1": 5}}, {"state": 3}, {"since": "now"},
                                    {"master": "r1"}, {"pid": "1"}])
def test_a_status_file_with_a_field_of_the_wrong_type_is_damaged_not_read(tmp_path, monkeypatch, change):
    """`vip status` tripped over `"peers": ["x"]` (a traceback); such a file is
    read as no status at all, as a missing or unparsable one is."""
    import json

    from toolkit.kernel import speakers

    monkeypatch.setattr(speakers, "RUN_DIR", str(tmp_path))
    good = {"group": "gw", "state": "active", "since": 1.0, "updated": 2.0, "pid": 10, "guardian": 9,
            "peers": {"10.0.0.1": {"adverts": 3}}, "master": None, "adverts_sent": 4, "priority": 100,
            "holding": True, "error": None}
    path = tmp_path / "ns" / "gw.status.json"
    path.parent.mkdir()
    path.write_text(json.dumps(good))
    assert speakers.status("ns", "gw") == good
    path.write_text(json.dumps({**good, **change}))
    assert speakers.status("ns", "gw") is None
