"""VIP groups on topologies/vrrp-pair.yaml: speakers as managed resources, the
VIP held by exactly one router, failover measured from the client, and the
VIP groups' chaos faults (kill, graceful stop, split brain, switch port cut).

Every probe runs inside the lab's namespaces and is bounded; the lab is
destroyed (speakers stopped first) by the fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

LAB = "topologies/vrrp-pair.yaml"
ROOT = Path(__file__).resolve().parents[2]
VIP = "10.0.3.254"
INTERVAL_MS = 100
SKEW_R2_MS = (256 - 100) * INTERVAL_MS / 256          # r2 (priority 100) as backup
MASTER_DOWN_R2_MS = 3 * INTERVAL_MS + SKEW_R2_MS      # 361 ms


@pytest.fixture
def pair(lab):
    lab.applied(LAB)
    _wait(lambda: holders(lab) == ["r1"], 5, "r1 did not become the one holder of the VIP")
    yield lab
    lab.run("chaos", None, "revert", "--all")
    lab.run("destroy", LAB)
    leftovers = subprocess.run(["pgrep", "-f", f"toolkit.vrrp.speaker.*{lab.prefix}"], capture_output=True)
    assert leftovers.returncode == 1, f"speakers left running: {leftovers.stdout}"


def holders(lab) -> list:
    """The routers that hold the VIP now."""
    out = []
    for node in ("r1", "r2"):
        if f" {VIP}/" in lab.ip(node, "-4 addr show dev eth0").stdout:
            out.append(node)
    return out


def status(lab) -> dict:
    result = lab.run("vip", None, "status", "--file", LAB, "--ns-prefix", lab.prefix, "--json")
    assert result.returncode == 0, result.stderr
    return {m["node"]: m for m in json.loads(result.stdout)["members"]}


def drift(lab) -> tuple:
    code, doc = lab.json("drift", LAB)
    return code, doc


def _wait(condition, seconds: float, message: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(message)


class Pinger:
    """A ping every 10 ms from the client to the VIP, bounded; the longest run of
    unanswered pings, in ms, is the downtime the client saw."""

    def __init__(self, lab, seconds: float):
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.ns("client"), "ping", "-n", "-O", "-D", "-i",
                                      "0.01", "-W", "0.5", "-w", str(seconds), VIP],
                                     stdout=subprocess.PIPE, text=True)

    def downtime_ms(self) -> float:
        out, _ = self.proc.communicate(timeout=120)
        answered = [int(line.split("icmp_seq=")[1].split()[0]) for line in out.splitlines() if "bytes from" in line]
        assert answered, out[-500:]
        gaps = [b - a - 1 for a, b in zip(answered, answered[1:])]
        return max(gaps, default=0) * 10


# -- the resource ---------------------------------------------------------------------------------

def test_apply_starts_one_speaker_per_member_and_r1_holds_the_vip(pair):
    _wait(lambda: status(pair)["r2"]["peers"], 3, "r2 has seen no advert")
    members = status(pair)
    assert members["r1"]["state"] == "active" and members["r2"]["state"] == "backup"
    assert members["r2"]["master_down_interval_ms"] == pytest.approx(MASTER_DOWN_R2_MS, abs=0.01)
    assert members["r2"]["peers"]["10.0.3.2"]["priority"] == 200
    assert pair.ping("client", VIP)
    code, doc = drift(pair)
    assert code == 0, doc
    assert pair.run("apply", LAB).returncode == 0 and "already in sync" in pair.run("apply", LAB).stdout


def test_drift_reports_a_speaker_that_is_not_running_and_apply_starts_it(pair):
    r2 = status(pair)["r2"]
    subprocess.run(["kill", "-TERM", str(r2["pid"])], check=True)
    _wait(lambda: status(pair)["r2"]["state"] != "backup", 5, "r2's speaker did not stop")
    code, doc = drift(pair)
    assert code == 2 and any(a["kind"] == "vrrp" and a["difference"] == "changed" and
                             [c["field"] for c in a["changes"]] == ["running"] for a in doc["differences"]), doc
    assert pair.run("apply", LAB).returncode == 0
    _wait(lambda: status(pair)["r2"]["state"] == "backup", 5, "apply did not start r2's speaker again")
    assert drift(pair)[0] == 0


def test_a_changed_priority_restarts_the_speaker_with_it(pair, tmp_path):
    changed = tmp_path / "vrrp-pair.yaml"
    changed.write_text((ROOT / LAB).read_text().replace("priority: 100", "priority: 250"))
    result = pair.run("apply", changed)
    assert result.returncode == 0, result.stderr
    _wait(lambda: holders(pair) == ["r2"], 5, "r2 with the higher priority did not take over")
    assert pair.run("rollback", None).returncode == 0
    _wait(lambda: holders(pair) == ["r1"], 5, "the rollback did not give the VIP back to r1")
    assert drift(pair)[0] == 0


def test_destroy_stops_the_speakers(lab):
    lab.applied(LAB)
    _wait(lambda: holders(lab) == ["r1"], 5, "r1 did not become active")
    assert lab.run("destroy", LAB).returncode == 0
    left = subprocess.run(["pgrep", "-f", f"toolkit.vrrp.speaker.*{lab.prefix}"], capture_output=True)
    assert left.returncode == 1, left.stdout


# -- failover, measured from the client ---------------------------------------------------------------

def test_cutting_the_masters_switch_port_fails_over_within_master_down_interval(pair):
    pinger = Pinger(pair, 4)
    time.sleep(1)
    assert pair.run("chaos", None, "vip-cut-master", "--ns-prefix", pair.prefix, "--duration", "2s").returncode == 0
    downtime = pinger.downtime_ms()
    assert downtime <= MASTER_DOWN_R2_MS + 100, f"{downtime} ms without answers"
    assert holders(pair)  # somebody holds it


def test_a_graceful_stop_fails_over_within_skew_time_and_r1_preempts_on_return(pair):
    pinger = Pinger(pair, 3)
    time.sleep(0.5)
    result = pair.run("chaos", None, "vip-stop-master", "--ns-prefix", pair.prefix, "--duration", "1500ms")
    assert result.returncode == 0, result.stderr
    downtime = pinger.downtime_ms()
    assert downtime <= SKEW_R2_MS + 100, f"{downtime} ms without answers"
    _wait(lambda: holders(pair) == ["r1"], 10, "r1 did not preempt when its speaker returned")


def test_a_sigkilled_master_has_its_vip_withdrawn_and_r2_takes_over(pair):
    result = pair.run("chaos", None, "vip-kill-master", "--ns-prefix", pair.prefix, "--duration", "3s")
    assert result.returncode == 0, result.stderr
    killed = time.monotonic()
    _wait(lambda: holders(pair) == ["r2"], MASTER_DOWN_R2_MS / 1000 + 1, "r2 did not become the only holder")
    assert time.monotonic() - killed <= MASTER_DOWN_R2_MS / 1000 + 0.5
    assert "r1" not in holders(pair)
    _wait(lambda: holders(pair) == ["r1"], 15, "r1 did not come back when the fault ended")


def test_an_apply_during_a_speaker_fault_leaves_the_killed_speaker_to_the_fault(pair):
    """The speaker a fault killed reads as running while the fault holds it: an
    apply does not start it again behind the fault's back (it cut the fault short,
    from a race review); the revert does."""
    result = pair.run("chaos", None, "vip-kill-master", "--ns-prefix", pair.prefix, "--duration", "30s")
    assert result.returncode == 0, result.stderr
    _wait(lambda: holders(pair) == ["r2"], MASTER_DOWN_R2_MS / 1000 + 1, "r2 did not become the only holder")
    applied = pair.run("apply", LAB)
    assert applied.returncode == 0 and "already in sync" in applied.stdout, applied.stdout + applied.stderr
    assert status(pair)["r1"]["state"] in ("dead", "not running") and holders(pair) == ["r2"]
    code, doc = drift(pair)
    assert code == 2 and doc["differences"] == [] and any("vip-kill-master" in o for o in doc["overlays"]), doc
    assert pair.run("chaos", None, "revert", "--all").returncode == 0
    _wait(lambda: holders(pair) == ["r1"], 15, "r1 did not come back when the fault ended")


def test_split_brain_is_reported_and_heals_to_one_holder(pair):
    # Long enough for the checks below on a slow machine (with 3 s they ran past the
    # fault's end when the CPU was shared); ended by hand after them, the heal still timed.
    result = pair.run("chaos", None, "vip-split-brain", "--ns-prefix", pair.prefix, "--duration", "30s")
    assert result.returncode == 0, result.stderr
    _wait(lambda: holders(pair) == ["r1", "r2"], 3, "the partition did not make both active")
    code, doc = drift(pair)
    assert code == 2
    reasons = " ".join(u.get("reason") or "" for u in doc["unmanaged"])
    assert "split brain" in reasons, doc["unmanaged"]
    members = status(pair)
    assert members["r1"]["state"] == members["r2"]["state"] == "active"
    # As the client sees it: two advertising sources, two MACs answering ARP for the VIP.
    result = pair.run("vip", None, "status", "--file", LAB, "--ns-prefix", pair.prefix, "--json")
    (seen,) = json.loads(result.stdout)["observed"]
    assert set(seen["adverts"]) == {"10.0.3.2", "10.0.3.3"}, seen
    assert sorted(seen["macs"][m] for m in seen["arp"][VIP]) == ["r1", "r2"], seen
    assert pair.run("chaos", None, "revert", "--fault", "vip-split-brain").returncode == 0
    _wait(lambda: holders(pair) == ["r1"], MASTER_DOWN_R2_MS / 1000 + 2, "the split brain did not heal")
    # The client's neighbour entry for the VIP points at the survivor (gratuitous ARP).
    assert pair.ping("client", VIP)
    r1_mac = json.loads(pair.ip("r1", "-j link show eth0").stdout)[0]["address"]
    neigh = pair.ip("client", f"neigh show {VIP}").stdout
    assert r1_mac in neigh, neigh
    _wait(lambda: drift(pair)[0] == 0, 5, "drift did not come back clean")


def test_a_damaged_status_file_never_leads_to_two_speakers(pair):
    # A directory where the status file was: the speaker cannot say it runs any more.
    status_file = Path(f"/run/netkeel/vrrp/{pair.ns('r2')}/gw.status.json")
    status_file.unlink()
    status_file.mkdir()
    _wait(lambda: status(pair)["r2"]["state"] == "not running", 5, "a speaker without status still reads as running")
    code, doc = drift(pair)
    assert code == 2  # the speaker cannot be seen running: reported missing
    assert pair.run("apply", LAB).returncode == 0
    running = subprocess.run(["pgrep", "-f", f"toolkit.vrrp.speaker --config /run/netkeel/vrrp/{pair.ns('r2')}/"],
                             capture_output=True, text=True)
    assert len(running.stdout.split()) == 2, running.stdout  # one guardian and its speaker
    _wait(lambda: status(pair)["r2"]["state"] == "backup", 5, "r2 is not backup again")
    assert holders(pair) == ["r1"] and drift(pair)[0] == 0


def test_destroy_stops_speakers_it_cannot_read_and_leaves_no_files(lab):
    lab.applied(LAB)
    _wait(lambda: holders(lab) == ["r1"], 5, "r1 did not become active")
    status_file = Path(f"/run/netkeel/vrrp/{lab.ns('r1')}/gw.status.json")
    status_file.unlink()
    status_file.mkdir()
    subprocess.run(["kill", "-9", str(json.loads(Path(f"/run/netkeel/vrrp/{lab.ns('r2')}/gw.status.json")
                                                 .read_text())["pid"])], check=True)  # r2's speaker dies
    assert lab.run("destroy", LAB).returncode == 0
    left = subprocess.run(["pgrep", "-f", f"toolkit.vrrp.speaker.*{lab.prefix}"], capture_output=True)
    assert left.returncode == 1, left.stdout
    assert not list(Path("/run/netkeel/vrrp").glob(f"{lab.prefix}*"))


def test_a_vip_marked_address_on_a_node_no_speaker_runs_on_is_drift_that_apply_removes(pair):
    """Marked as the group's VIP, on the client (not a member, no speaker there):
    nothing would ever take it away, so it is the topology's drift."""
    code = ("import sys; from pyroute2 import IPRoute\n"
            "with IPRoute() as ipr:\n"
            "    ipr.addr('add', index=ipr.link_lookup(ifname='lo')[0], address=sys.argv[1], prefixlen=32, proto=145)\n")
    subprocess.run(["ip", "netns", "exec", pair.ns("client"), sys.executable, "-c", code, VIP], check=True,
                   capture_output=True, timeout=30)
    drift, doc = pair.json("drift", LAB)
    assert drift == 2 and [d["object"] for d in doc["differences"]] == [f"addr {VIP}/32 on lo"], doc
    assert not doc["unmanaged"] and not doc.get("overlays"), doc  # r1's VIP is no split brain for it
    assert pair.run("apply", LAB).returncode == 0
    assert f" {VIP}/" not in pair.ip("client", "-4 addr show dev lo").stdout
    assert holders(pair) == ["r1"]
    assert pair.run("drift", LAB).returncode == 0



def test_a_member_whose_namespace_is_removed_by_hand_stops_and_the_lab_can_be_destroyed(pair):
    """`ip netns del` of a member: its speaker stops (it would keep the removed
    namespace alive, the VIP held there and the switch's veth end unremovable:
    destroy refused the lab, found by review), the backup takes the VIP over,
    and destroy removes the rest."""
    r1 = status(pair)["r1"]["pid"]
    subprocess.run(["ip", "netns", "del", pair.ns("r1")], check=True)
    _wait(lambda: subprocess.run(["kill", "-0", str(r1)], capture_output=True).returncode != 0, 5,
          "r1's speaker went on in its removed namespace")
    _wait(lambda: holders_of(pair, ["r2"]) == ["r2"], 5, "r2 did not take the VIP over")
    assert pair.run("destroy", LAB).returncode == 0
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
                if n.startswith(pair.prefix)]


def holders_of(lab, nodes) -> list:
    return [n for n in nodes if f" {VIP}/" in lab.ip(n, "-4 addr show dev eth0").stdout]


def test_a_speaker_a_fault_started_again_can_be_stopped_again(pair):
    """The revert starts r1's speaker again while it holds SIGTERM off; the new
    speaker inherited that and ignored SIGTERM for good, so a second
    vip-stop-master failed ("the speaker still runs": found by review)."""
    for _ in range(2):
        result = pair.run("chaos", None, "vip-stop-master", "--ns-prefix", pair.prefix, "--duration", "1s")
        assert result.returncode == 0, result.stdout + result.stderr
        _wait(lambda: holders(pair) == ["r2"], 3, "r2 did not take over")
        _wait(lambda: holders(pair) == ["r1"] and status(pair)["r1"]["state"] == "active", 15,
              "r1 did not come back when the fault ended")
        _wait(lambda: not list((pair.state / "leases").glob("*.json")), 10, "the fault's lease stayed")
    with open(f"/proc/{status(pair)['r1']['pid']}/status") as f:
        blocked = int(next(line for line in f if line.startswith("SigBlk:")).split()[1], 16)
    assert not blocked & (1 << (15 - 1)), "r1's speaker holds SIGTERM off"


def test_vip_status_ends_a_fault_that_lost_its_keeper_before_it_shows_the_members(pair):
    """As every command that reads the kernel does: the killed speaker is started
    again by the revert, and is not shown dead beside it."""
    import os
    import signal

    result = pair.run("chaos", None, "vip-kill-master", "--ns-prefix", pair.prefix, "--duration", "60s")
    assert result.returncode == 0, result.stderr
    _wait(lambda: holders(pair) == ["r2"], MASTER_DOWN_R2_MS / 1000 + 1, "r2 did not become the only holder")
    [lease] = [json.loads(p.read_text()) for p in (pair.state / "leases").glob("*.json")]
    os.kill(lease["keeper"], signal.SIGKILL)
    _wait(lambda: not Path(f"/proc/{lease['keeper']}").exists(), 5, "the keeper did not die")
    shown = pair.run("vip", None, "status", "--file", LAB, "--ns-prefix", pair.prefix, "--json")
    assert shown.returncode == 0 and "lost its keeper or a namespace: reverted now" in " ".join(shown.stderr.split()), shown.stderr
    assert {m["node"]: m["state"] for m in json.loads(shown.stdout)["members"]}["r1"] not in ("dead", "not running")
    assert not list((pair.state / "leases").glob("*.json"))
    _wait(lambda: holders(pair) == ["r1"], 15, "r1 did not come back when the fault ended")
