"""Chaos on the two-clients lab, with real traffic: each shipped fault does what
it says, ends on time (even when the process that injected it is killed), leaves
no residue, composes or is refused, and is never taken for drift to repair."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from labkit import ROOT, kernel_view

LAB = "topologies/two-clients.yaml"


@pytest.fixture
def built(lab):
    lab.applied(LAB)
    yield lab
    lab.run("chaos", None, "revert", "--all")  # a failed test must not leave a keeper behind


def chaos(lab, *args, timeout: float = 60):
    """`netkeel chaos ARGS` for this lab's state directory (no --ns-prefix: the
    only applied instance of the fault's topology is found by itself)."""
    return lab.run("chaos", None, *args, timeout=timeout)


def ping_loss(lab, node: str, address: str, count: int, size: int | None = None, df: bool = False) -> float:
    """Lost share (0-1) of `count` pings, bounded: 2 ms apart, 1 s wait at the end."""
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.002", "-W", "1"]
    if size is not None:
        argv += ["-s", str(size)]
    if df:
        argv += ["-M", "do"]
    result = lab.exec(node, argv + [address], timeout=count * 0.01 + 15)
    line = next((l for l in result.stdout.splitlines() if "packets transmitted" in l), "")
    if not line:
        return 1.0
    sent, received = int(line.split()[0]), int(line.split()[3])
    return 1 - received / sent


def residue(lab, nodes) -> list:
    """Fault objects left in the lab: chaos nft tables, chaos qdiscs, chaos ifb devices."""
    left = []
    for node in nodes:
        nft = lab.exec(node, ["nft", "list", "tables"], check=True).stdout
        left += [f"{node}: {l}" for l in nft.splitlines() if "netkeel_chaos_" in l]
        tc = subprocess.run(["tc", "-n", lab.ns(node), "qdisc", "show"], capture_output=True, text=True,
                            check=True, timeout=10).stdout
        left += [f"{node}: {l}" for l in tc.splitlines() if "8e4b:" in l]
        links = lab.ip(node, "-br link").stdout
        left += [f"{node}: {l}" for l in links.splitlines() if l.startswith("nkifb")]
    return left


NODES = ("ns_client1", "ns_client2", "ns_server")


def leases(lab) -> list:
    code, doc = chaos_json(lab, "status")
    return doc["faults"]


def chaos_json(lab, *args):
    result = chaos(lab, *args, "--json")
    return result.returncode, json.loads(result.stdout or "{}")


def test_loss_40_drops_about_40_percent_and_nothing_after_revert(built):
    assert ping_loss(built, "ns_client2", "10.0.2.1", 50) == 0
    code, doc = chaos_json(built, "loss-40")
    assert code == 0 and doc["outcome"] == "injected" and doc["backends"]["loss"] in ("nft", "netem")
    lost = ping_loss(built, "ns_client2", "10.0.2.1", 2000)
    assert 0.35 <= lost <= 0.45, lost  # 40% +- 5 points: 4.6 standard deviations over 2,000 (~4e-6)
    assert chaos(built, "revert", "--fault", "loss-40").returncode == 0
    assert ping_loss(built, "ns_client2", "10.0.2.1", 300) == 0
    assert residue(built, NODES) == [] and leases(built) == []


def test_a_partition_holds_through_nat(built, tmp_path):
    """client1 reaches client2 as 10.0.2.1 (the server masquerades it): the cut must hold all the same."""
    fault = tmp_path / "c1c2.yaml"
    fault.write_text("topology: two-clients\npartition: {between: [[ns_client2], [ns_client1]]}\n")
    assert chaos(built, str(fault)).returncode == 0
    assert ping_loss(built, "ns_client1", "10.0.2.2", 10) == 1.0
    assert ping_loss(built, "ns_client1", "10.0.1.1", 10) == 0  # the server is not part of it


def test_partition_cuts_both_ways_and_heals(built):
    assert chaos(built, "partition-client2").returncode == 0
    assert ping_loss(built, "ns_client2", "10.0.2.1", 20) == 1.0
    assert ping_loss(built, "ns_client2", "10.0.1.2", 20) == 1.0
    assert ping_loss(built, "ns_server", "10.0.2.2", 20) == 1.0
    assert ping_loss(built, "ns_client1", "10.0.1.1", 20) == 0  # not part of it
    assert chaos(built, "revert", "--all").returncode == 0
    assert ping_loss(built, "ns_client2", "10.0.2.1", 20) == 0
    assert ping_loss(built, "ns_server", "10.0.2.2", 20) == 0


def _throughput(lab, seconds: float = 3) -> float:
    """Bits/s of a bounded TCP transfer from client1 to client2 (through the server)."""
    return lab.throughput("ns_client1", "ns_client2", "10.0.2.2", seconds)


def test_rate_1mbit_holds_a_transfer_to_about_1_mbit(built):
    assert chaos(built, "rate-1mbit").returncode == 0
    shaped = _throughput(built)
    assert 0.8e6 <= shaped <= 1.1e6, shaped  # TCP/IP headers take a few percent of the rate
    assert chaos(built, "revert", "--fault", "rate-1mbit").returncode == 0
    assert _throughput(built, 1) > 20e6
    assert residue(built, NODES) == []


def test_flap_takes_the_link_down_and_up_on_schedule(built, tmp_path):
    fault = tmp_path / "flap.yaml"
    fault.write_text("topology: two-clients\ntarget: {node: ns_client1, interface: veth_c1}\n"
                     "flap: {period: 1s, down: 400ms, cycles: 3}\nduration: 10s\n")
    # Sampled from before the command starts, whatever its own start-up costs:
    # three cycles of 1 s, and some after (bounded at 12 s).
    start = time.monotonic()
    injector = built.start("chaos", None, str(fault))
    samples = []
    while time.monotonic() - start < 12:
        state = "UP" if ",UP" in built.ip("ns_client1", "link show veth_c1").stdout.split(">")[0] else "DOWN"
        samples.append((time.monotonic() - start, state))
        ups = sum(1 for (_, s), (_, b) in zip(samples[1:], samples) if s == "UP" and b == "DOWN")
        if ups == 3 and time.monotonic() - start > 1:
            break
        time.sleep(0.05)
    assert injector.wait(timeout=30) == 0
    changes = [(round(t, 2), s) for (t, s), (_, before) in zip(samples[1:], samples) if s != before]
    downs = [t for t, s in changes if s == "DOWN"]
    ups = [t for t, s in changes if s == "UP"]
    assert len(downs) == 3 and len(ups) == 3, changes
    for a, b in zip(ups, ups[1:]):
        assert 0.8 <= b - a <= 1.2, changes  # a period apart
    for down, up in zip(downs, [u for u in ups if u > downs[0]]):
        assert 0.25 <= up - down <= 0.6, changes  # down for 400 ms
    time.sleep(1)
    assert samples[-1][1] == "UP" and leases(built) == []  # cycles done: the lease ended by itself
    # Each time the link went down the kernel dropped its routes; they came back with it.
    assert "default via 10.0.1.1" in built.ip("ns_client1", "route show").stdout
    assert built.run("drift", LAB).returncode == 0 and ping_loss(built, "ns_client1", "10.0.2.2", 3) == 0


def test_mtu_1280_makes_a_path_mtu_black_hole(built):
    assert ping_loss(built, "ns_client2", "10.0.2.1", 3, size=1400, df=True) == 0
    assert chaos(built, "mtu-1280").returncode == 0
    assert ping_loss(built, "ns_client2", "10.0.2.1", 3, size=1400, df=True) == 1.0
    assert ping_loss(built, "ns_client2", "10.0.2.1", 3, size=1200, df=True) == 0
    drift = built.json("drift", LAB)
    assert drift[0] == 2 and drift[1]["differences"] == [] and any("mtu-1280" in o for o in drift[1]["overlays"])
    assert built.run("apply", LAB).returncode == 0  # the topology's apply leaves the fault alone
    assert ping_loss(built, "ns_client2", "10.0.2.1", 3, size=1400, df=True) == 1.0
    assert chaos(built, "revert", "--fault", "mtu-1280").returncode == 0
    assert ping_loss(built, "ns_client2", "10.0.2.1", 3, size=1400, df=True) == 0
    assert built.run("drift", LAB).returncode == 0


def test_a_short_fault_is_gone_on_time_with_no_residue(built):
    before = {node: kernel_view(built.ns(node)) for node in NODES}
    assert chaos(built, "loss-40", "--duration", "2s").returncode == 0
    assert chaos(built, "rate-1mbit", "--duration", "2s").returncode == 0
    time.sleep(4)
    assert residue(built, NODES) == [] and leases(built) == []
    assert {node: kernel_view(built.ns(node)) for node in NODES} == before
    assert ping_loss(built, "ns_client2", "10.0.2.1", 200) == 0


def test_sigkill_of_the_injector_or_the_keeper_still_ends_the_fault_on_time(built):
    # The injector: killed once it has started; the keeper (started first) ends the fault.
    injector = built.start("chaos", None, "rate-1mbit", "--duration", "2s")
    time.sleep(0.6)
    injector.send_signal(signal.SIGKILL)
    injector.wait(timeout=10)
    # The keeper: killed while the fault is active; nftables expires the fault by
    # itself, and the next netkeel command takes the residue away.
    assert chaos(built, "loss-40", "--duration", "2s").returncode == 0
    [lease] = [l for l in leases(built) if l["fault"] == "loss-40"]
    subprocess.run(["kill", "-9", str(lease["keeper"])], check=True, timeout=10)
    time.sleep(3)
    assert ping_loss(built, "ns_client2", "10.0.2.1", 300) == 0  # ended in the kernel, on time
    assert built.run("drift", LAB).returncode == 0  # any command reverts expired leases
    assert residue(built, NODES) == [] and leases(built) == []


def test_two_faults_on_one_interface_compose_or_are_refused_naming_the_first(built):
    assert chaos(built, "loss-40").returncode == 0
    assert chaos(built, "duplicate-10").returncode == 0  # nftables faults compose: each has its table
    assert {l["fault"] for l in leases(built)} == {"loss-40", "duplicate-10"}
    again = chaos(built, "loss-40")  # 40% twice would lose 64%, by netem or by nftables
    assert again.returncode == 1 and "already has fault loss-40 on its" in again.stderr, again.stderr
    assert [l["fault"] for l in leases(built)].count("loss-40") == 1
    assert chaos(built, "rate-1mbit").returncode == 0
    second = chaos(built, "rate-1mbit")
    assert second.returncode == 1 and "already has fault rate-1mbit" in second.stderr
    assert chaos(built, "revert", "--all").returncode == 0
    assert residue(built, NODES) == []


def test_a_fault_this_kernel_cannot_do_is_refused_before_anything_changes(built):
    can = json.loads(chaos(built, "list", "--json").stdout)["capabilities"]
    if "netem" in can or "nfqueue" in can:
        pytest.skip("this kernel has netem or the userspace backend (NFQUEUE): delay is possible here")
    before = {node: kernel_view(built.ns(node)) for node in NODES}
    refused = chaos(built, "delay-50")
    assert refused.returncode == 1 and "netem" in refused.stderr
    assert {node: kernel_view(built.ns(node)) for node in NODES} == before and leases(built) == []


def test_dry_run_shows_the_changes_and_makes_none(built):
    before = {node: kernel_view(built.ns(node)) for node in NODES}
    code, doc = chaos_json(built, "loss-40", "--dry-run")
    assert code == 0 and doc["outcome"] == "planned" and any("numgen random" in op for op in doc["operations"])
    assert {node: kernel_view(built.ns(node)) for node in NODES} == before and leases(built) == []


def test_drift_names_an_active_fault_and_apply_leaves_it(built):
    assert chaos(built, "loss-40").returncode == 0
    code, doc = built.json("drift", LAB)
    assert code == 2 and doc["differences"] == []
    assert any(o.startswith("fault loss-40: loss 40%") for o in doc["overlays"])
    assert built.run("apply", LAB).returncode == 0
    lost = ping_loss(built, "ns_client2", "10.0.2.1", 500)
    assert lost > 0.3  # still in place after the apply


def test_follow_shows_live_loss_until_the_fault_ends(built):
    # (5 s: a line a second, counted from when the fault is in place, after the ping starts)
    result = chaos(built, "loss-40", "--duration", "5s", "--follow", timeout=30)
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stdout.splitlines() if " lost " in l]
    assert len(lines) >= 2 and "following: ping 10.0.2.1 from" in result.stdout
    time.sleep(0.5)
    assert leases(built) == [] and residue(built, NODES) == []


def test_a_relative_state_dir_still_gets_its_fault_ended(built, tmp_path):
    relative = subprocess.run(built.argv("chaos", None, os.path.abspath("faults/rate-1mbit.yaml"), "--state-dir",
                                         os.path.relpath(built.state, tmp_path), "--duration", "2s"),
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert relative.returncode == 0, relative.stderr
    time.sleep(3.5)
    assert residue(built, NODES) == []  # the keeper found its lease (it runs from /)


def test_a_killed_keeper_is_noticed_by_the_next_command(built):
    assert chaos(built, "mtu-1280", "--duration", "30s").returncode == 0
    [lease] = leases(built)
    subprocess.run(["kill", "-9", str(lease["keeper"])], check=True, timeout=10)
    time.sleep(0.5)
    assert chaos(built, "status").returncode == 0  # a fault nobody keeps would outlive its time: it ends
    assert "mtu 1500" in built.ip("ns_server", "link show veth_srv_c2").stdout
    assert leases(built) == []


@pytest.mark.parametrize("command", ["drift", "chaos status"])
def test_a_command_that_ends_a_fault_whose_keeper_was_killed_says_so(built, command):
    assert chaos(built, "mtu-1280", "--duration", "30s").returncode == 0
    [lease] = leases(built)
    subprocess.run(["kill", "-9", str(lease["keeper"])], check=True, timeout=10)
    time.sleep(0.5)
    result = built.run("drift", LAB) if command == "drift" else built.run("chaos", None, "status")
    assert result.returncode == 0 and f"fault lease {lease['lease']} was past its time, or had lost its keeper " \
        "or a namespace: reverted now" in " ".join(result.stderr.split()), result.stderr
    assert "mtu 1500" in built.ip("ns_server", "link show veth_srv_c2").stdout


def test_a_lost_lease_leaves_no_fault_behind(built):
    assert chaos(built, "rate-1mbit", "--duration", "30s").returncode == 0
    [lease] = leases(built)
    subprocess.run(["kill", "-9", str(lease["keeper"])], check=True, timeout=10)
    (built.state / "leases" / f"{lease['lease']}.json").unlink()
    code, doc = built.json("drift", LAB)
    assert code == 2 and [d["object"] for d in doc["differences"]] == ["impairment on veth_c1"]
    assert built.run("apply", LAB).returncode == 0  # an orphan is nobody's overlay: apply removes it
    assert residue(built, NODES) == [] and built.run("drift", LAB).returncode == 0


def test_two_injections_at_once_never_take_one_device_twice(built):
    first, second = (built.start("chaos", None, "rate-1mbit") for _ in range(2))
    codes = sorted((first.wait(timeout=60), second.wait(timeout=60)))
    assert codes == [0, 1]
    assert len(leases(built)) == 1
    tc = subprocess.run(["tc", "-n", built.ns("ns_client1"), "qdisc", "show", "dev", "veth_c1"],
                        capture_output=True, text=True, check=True).stdout
    assert "tbf 8e4b:" in tc  # the winner's fault is in place


def test_apply_refuses_to_change_what_a_fault_holds_and_destroy_ends_faults(built, tmp_path):
    assert chaos(built, "mtu-1280").returncode == 0
    bigger = tmp_path / "mtu9000.yaml"
    bigger.write_text(open(LAB).read().replace(
        "        interface: veth_srv_c2\n", "        interface: veth_srv_c2\n        mtu: 9000\n").replace(
        "../policies/", os.path.abspath("policies") + "/"))
    refused = built.run("apply", bigger, env={"NETKEEL_ALLOW_OUTSIDE_POLICIES": "1"})
    assert refused.returncode == 1 and "held by fault mtu-1280" in refused.stderr, refused.stderr
    assert "mtu 1280" in built.ip("ns_server", "link show veth_srv_c2").stdout
    assert built.run("destroy", LAB).returncode == 0
    assert leases(built) == []


def test_a_fault_file_name_with_odd_characters_works(built, tmp_path):
    odd = tmp_path / "loss 40 ö.yaml"
    odd.write_text(open("faults/loss-40.yaml").read())
    assert chaos(built, str(odd), "--duration", "2s").returncode == 0
    assert chaos(built, "revert", "--all").returncode == 0


def test_loss_is_silent_to_the_sender_as_on_a_lossy_link(built):
    assert chaos(built, "loss-40").returncode == 0
    sender = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nerrors = 0\n"
              "for _ in range(300):\n    try:\n        s.sendto(b'x', ('10.0.2.1', 9))\n"
              "    except OSError:\n        errors += 1\nprint(errors)\n")
    result = built.exec("ns_client2", [sys.executable, "-c", sender], check=True)
    assert result.stdout.strip() == "0"  # dropped on the way, not refused to the sender (EPERM)


def test_a_fault_waits_for_a_change_under_way_and_takes_the_value_it_left(built):
    """A fault injected in the middle of an apply took the value from before the
    apply as the one to put back, and its revert undid the verified apply: it
    now waits for the state lock, as a second apply does."""
    from toolkit.state.lock import StateLock
    from toolkit.state.statedir import StateDir

    with StateLock(StateDir(built.state)):  # an apply under way
        started = subprocess.Popen(built.argv("chaos", None, "mtu-1280", "--duration", "30s"),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=built.env,
                                   cwd=ROOT)
        try:
            time.sleep(1.5)
            assert started.poll() is None  # waiting for the lock, nothing done
            assert "mtu 1500" in built.ip("ns_server", "link show veth_srv_c2").stdout and leases(built) == []
            built.ip("ns_server", "link set veth_srv_c2 mtu 1400")  # what the apply under way sets
        except BaseException:
            started.kill()
            started.wait(10)
            raise
    out, err = started.communicate(timeout=60)
    assert started.returncode == 0, err
    assert "mtu 1280" in built.ip("ns_server", "link show veth_srv_c2").stdout
    assert chaos(built, "revert", "--fault", "mtu-1280").returncode == 0
    assert "mtu 1400" in built.ip("ns_server", "link show veth_srv_c2").stdout  # the apply's value, not 1500


def test_routes_a_downed_link_took_along_are_the_faults_not_drift_nor_a_snapshots_absence(built, tmp_path):
    """The kernel drops a link's routes when a fault takes it down. They read as
    present while the fault holds the link: no drift, an apply of another change
    does not try to add them back (the kernel refused: "Network is unreachable"),
    and the snapshot it takes keeps them, so a rollback after the fault does not
    delete the default route (from a race review)."""
    down = tmp_path / "down-c1.yaml"
    down.write_text("topology: two-clients\ntarget: {node: ns_client1, interface: veth_c1}\nlink_down: true\n"
                    "duration: 60s\n")
    more = tmp_path / "two-clients.yaml"
    more.write_text((ROOT / LAB).read_text().replace("[10.0.1.2/24]", "[10.0.1.2/24, 10.0.1.5/24]")
                    .replace("../policies/", f"{ROOT}/policies/"))
    outside = {"NETKEEL_ALLOW_OUTSIDE_POLICIES": "1"}
    assert chaos(built, str(down)).returncode == 0
    assert "default" not in built.ip("ns_client1", "route").stdout  # the kernel took it with the link
    code, doc = built.json("drift", LAB)
    assert code == 2 and doc["differences"] == [] and any("down-c1" in o for o in doc["overlays"]), doc
    changed = built.run("apply", more, env=outside)
    assert changed.returncode == 0 and "route" not in changed.stdout, changed.stdout + changed.stderr
    assert chaos(built, "revert", "--all").returncode == 0
    assert "default via 10.0.1.1" in built.ip("ns_client1", "route").stdout
    rolled = built.run("rollback", None)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "default via 10.0.1.1" in built.ip("ns_client1", "route").stdout
    assert "10.0.1.5" not in built.ip("ns_client1", "addr").stdout
    assert built.run("drift", LAB).returncode == 0


def test_a_damaged_lease_is_never_said_to_be_no_fault(built, tmp_path):
    """Found by review: a lease file cut short made `chaos status` say "no
    active fault" and `revert --all` "nothing to revert", both exit 0, while the
    link it took down stayed down."""
    fault = tmp_path / "down.yaml"
    fault.write_text("topology: two-clients\ntarget: {node: ns_client1, interface: veth_c1}\nlink_down: true\n")
    assert chaos(built, str(fault), "--duration", "30s").returncode == 0
    [lease] = leases(built)
    path = built.state / "leases" / f"{lease['lease']}.json"
    path.write_bytes(path.read_bytes()[:100])
    status = built.run("chaos", None, "status")
    assert status.returncode == 1 and str(path) in status.stderr, status.stdout + status.stderr
    as_json = built.run("chaos", None, "status", "--json")
    doc = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and doc["faults"] == [] and len(doc["damaged"]) == 1
    reverted = built.run("chaos", None, "revert", "--all")
    assert reverted.returncode == 1 and str(path) in reverted.stderr
    assert "state DOWN" in built.ip("ns_client1", "link show veth_c1").stdout  # never acted on
    path.unlink()  # as the message says, once the lab is checked
    assert built.run("apply", LAB).returncode == 0
    assert built.run("chaos", None, "status").returncode == 0


@pytest.mark.parametrize("remove", ["the ifb", "the target device"])
def test_a_fault_whose_devices_are_gone_is_reverted_and_leaves_the_lab_free(built, tmp_path, remove):
    """Its qdiscs went with the device: nothing is left to take away. The revert
    failed on `tc qdisc show` of the gone device for good, and the lease then
    held the lab (no destroy, no rollback, no new fault on it: found by review);
    a revert killed after it deleted the ifb left the same."""
    fault = tmp_path / "shaped.yaml"
    fault.write_text("topology: two-clients\ntarget: {node: ns_client1, interface: veth_c1, direction: both}\n"
                     "rate: 1mbit\nloss: 5%\n")
    assert chaos(built, str(fault), "--duration", "60s").returncode == 0
    ifb = [l.split()[0] for l in built.ip("ns_client1", "-br link").stdout.splitlines() if l.startswith("nkifb")]
    assert len(ifb) == 1, ifb
    gone = ifb[0] if remove == "the ifb" else "veth_c1"
    built.ip("ns_client1", f"link del {gone}")
    reverted = chaos(built, "revert", "--all")
    assert reverted.returncode == 0, reverted.stdout + reverted.stderr
    assert leases(built) == [] and residue(built, NODES) == []
    assert built.run("apply", LAB).returncode == 0  # the veth made again where it went
    assert built.run("destroy", LAB).returncode == 0


def test_each_fault_is_journaled_as_it_is_put_in_place_and_taken_away(built):
    """`history` says who injected which fault, and when and why it ended (it named
    applies and experiments alone: found by review)."""
    assert chaos(built, "loss-40").returncode == 0
    assert chaos(built, "revert", "--fault", "loss-40").returncode == 0
    assert chaos(built, "duplicate-10", "--duration", "500ms").returncode == 0
    deadline = time.monotonic() + 10
    while leases(built) and time.monotonic() < deadline:  # its keeper ends it
        time.sleep(0.1)
    records = [json.loads(line) for line in (built.state / "journal.jsonl").read_text().splitlines()
               if '"fault"' in line]
    assert [(r["fault"], r["action"], r["outcome"]) for r in records] == [
        ("loss-40", "inject", "injected for 60 s"), ("loss-40", "revert", "`chaos revert`"),
        ("duplicate-10", "inject", "injected for 0.5 s"), ("duplicate-10", "revert", "its time ran out")]
    shown = built.run("history", None, "--limit", "2")
    said = " ".join(shown.stdout.split())
    assert shown.returncode == 0 and "chaos loss-40" in said and "chaos duplicate-10" in said, shown.stdout
    assert "reverted after" in said and "its time ran out" in said, shown.stdout
