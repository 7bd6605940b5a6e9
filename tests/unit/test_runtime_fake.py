"""The runtime against the in-memory fake kernel (fakekernel.py): transactions,
restores after a failure at every step, verification retries, batching, the
state lock's re-entrancy, restores that leave other parties' namespaces alone.
No root needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakekernel import FakeKernel

from toolkit.errors import ApplyError, OwnershipError
from toolkit.manifest import load_topology, load_topology_text
from toolkit.planner import diff
from toolkit.runtime.engine import Reconciler, rollback
from toolkit.runtime.execute import steps
from toolkit.state.lock import LockHeld, StateLock
from toolkit.state.statedir import StateDir

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ["two-clients-plain", "two-clients", "bridged-lan", "static-neighbours"]


def example(name: str):
    return load_topology(ROOT / "topologies" / f"{name}.yaml")


def text_topology(text: str):
    return load_topology_text(text, "lab.yaml")


@pytest.fixture
def state(tmp_path):
    return StateDir(tmp_path / "state")


def reconciler(topology, kernel, state, prefix="t-"):
    return Reconciler(topology, kernel, state, prefix=prefix, git={})


def in_sync(rec) -> bool:
    return diff(rec.desired, rec.read()).empty


@pytest.mark.parametrize("name", EXAMPLES)
def test_apply_converges_and_a_second_apply_changes_nothing(name, state):
    kernel = FakeKernel()
    rec = reconciler(example(name), kernel, state)
    result = rec.apply()
    assert result.steps > 0 and result.snapshot
    assert in_sync(rec) and rec.drift().clean
    calls = len(kernel.calls)
    assert rec.apply().plan.empty and len(kernel.calls) == calls


@pytest.mark.parametrize("name", EXAMPLES)
def test_destroy_removes_every_namespace_it_owns(name, state):
    kernel = FakeKernel()
    rec = reconciler(example(name), kernel, state)
    rec.apply()
    rec.destroy()
    assert kernel.list_namespaces() == []


def _fail_at(kernel, k: int):
    """Make the k-th request from now on refuse."""
    count = {"n": 0}

    def predicate(method, args):
        count["n"] += 1
        return count["n"] == k
    kernel.fail(predicate)


V1 = """
name: lab
nodes:
  a: {sysctls: {net.ipv4.ip_forward: 1}, routes: [{to: 10.9.0.0/16, via: 10.0.0.2}]}
  b: {neighbours: [{address: 10.0.0.1, mac: "02:00:00:00:00:01", interface: eth0}]}
links:
  - endpoints:
      - {node: a, interface: eth0, mac: "02:00:00:00:00:01", addresses: [10.0.0.1/24, 10.0.0.9/24]}
      - {node: b, interface: eth0, addresses: [10.0.0.2/24]}
"""
V2 = """
name: lab
nodes:
  a: {sysctls: {net.ipv4.ip_forward: 0}}
  c: {bridges: {br0: {ports: [p1], addresses: [10.1.0.1/24]}}}
  b: {}
links:
  - endpoints:
      - {node: a, interface: eth0, mtu: 1400, addresses: [10.0.0.1/24]}
      - {node: b, interface: eth0, mtu: 1400, addresses: [10.0.0.2/24, "fd00::2/64"]}
  - endpoints:
      - {node: a, interface: eth1, addresses: [10.1.0.2/24]}
      - {node: c, interface: p1}
"""

UNLINKED = "name: lab\nnodes: {a: {}, b: {}}\n"


def test_a_failure_at_every_step_restores_the_state_before(state):
    kernel = FakeKernel()
    reconciler(text_topology(V1), kernel, state).apply()
    before = kernel.state()
    total = len(steps(reconciler(text_topology(V2), kernel, state).plan()[0]))
    assert total > 10
    for k in range(1, total + 1):
        _fail_at(kernel, k)
        with pytest.raises(ApplyError) as caught:
            reconciler(text_topology(V2), kernel, state).apply()
        assert caught.value.restored, (k, caught.value.restore_error)
        assert caught.value.action is not None
        assert kernel.state() == before, k
        kernel._failures.clear()
    assert reconciler(text_topology(V2), kernel, state).apply().steps == total


def test_verification_retries_until_the_kernel_settles(state):
    kernel = FakeKernel()
    reconciler(text_topology(V1), kernel, state).apply()
    kernel.settle_after(3)  # deleted devices show gone only after three reads
    rec = reconciler(text_topology(UNLINKED), kernel, state)
    reads = kernel.reads
    rec.apply()
    assert kernel.reads - reads >= 3 and in_sync(rec)


def test_verification_that_never_settles_fails_and_restores(state, monkeypatch):
    monkeypatch.setattr("toolkit.runtime.execute.time.sleep", lambda s: None)
    kernel = FakeKernel()
    reconciler(text_topology(V1), kernel, state).apply()
    kernel.settle_after(1000)
    with pytest.raises(ApplyError) as caught:
        reconciler(text_topology(UNLINKED), kernel, state).apply()
    assert caught.value.failed == "verification after the change"


def test_firewall_tables_of_a_namespace_go_in_one_transaction(state):
    kernel = FakeKernel()
    reconciler(example("two-clients"), kernel, state).apply()
    nft_calls = [c for c in kernel.calls if c[0] == "nft_transaction"]
    assert len(nft_calls) == 1 and "netkeel_filter" in nft_calls[0][2] and "netkeel_nat" in nft_calls[0][2]


def test_the_state_lock_is_reentrant_within_one_reconciler_and_held_against_others(state):
    kernel = FakeKernel()
    rec = reconciler(example("two-clients-plain"), kernel, state)
    with rec.locked():
        with rec.locked():
            planned = rec.plan()
            rec.apply(planned=planned)
        with pytest.raises(LockHeld):
            with StateLock(state):
                pass
    with StateLock(state):  # released afterwards
        pass


def test_a_restore_never_removes_a_namespace_another_party_made_meanwhile(state):
    kernel = FakeKernel()
    topology = text_topology("name: lab\nnodes: {a: {}, b: {}, c: {}}\n")
    rec = reconciler(topology, kernel, state)

    def someone_else_first(method, args):
        if method == "create_namespace" and args == ("t-c",) and not kernel.exists("t-c"):
            kernel.intruder("t-c")
        return False
    kernel.fail(someone_else_first)
    theirs = None
    with pytest.raises(ApplyError) as caught:
        planned = rec.plan()
        theirs = kernel  # the intruder strikes between plan and execution
        rec.apply(planned=planned)
    assert theirs is not None and caught.value.restored
    assert kernel.list_namespaces() == ["t-c"], "the restore removed the other party's namespace"
    with pytest.raises(OwnershipError):
        reconciler(topology, kernel, state).plan()


def test_rollback_gives_back_primary_and_secondary_addresses_in_their_roles(state):
    kernel = FakeKernel()
    one = "name: lab\nnodes: {a: {}, b: {}}\nlinks:\n  - endpoints:\n" \
          "      - {node: a, interface: va, addresses: [%s]}\n      - {node: b, interface: vb}\n"
    reconciler(text_topology(one % "10.0.0.9/24"), kernel, state).apply()
    reconciler(text_topology(one % "10.0.0.9/24, 10.0.0.10/24"), kernel, state).apply()
    wanted = kernel.state()
    reconciler(text_topology(one % ""), kernel, state).apply()
    rollback(kernel, state)
    assert kernel.state() == wanted


def test_an_overlays_objects_are_reported_by_owner_and_never_removed_by_apply(state):
    from toolkit.core.owners import Claim, overlay
    from toolkit.core.resource import Resource

    kernel = FakeKernel()
    topology = text_topology(V1)
    reconciler(topology, kernel, state).apply()
    vip = Resource.make("addr", ("t-a", "eth0", "10.0.0.254/24"), secondary=True)
    marked = Resource.make("route", ("t-b", "10.8.0.0/16", 0), owner=overlay("fault-1"), via="10.0.0.1")
    kernel.objects[vip.ident] = vip        # as a VIP speaker would add it: no mark of its own here
    kernel.objects[marked.ident] = marked  # read with an overlay's marker
    claims = [Claim(overlay("vip-group"), "addr", lambda r: r.key[2] == "10.0.0.254/24")]

    rec = Reconciler(topology, kernel, state, prefix="t-", git={}, claims=claims)
    found = rec.drift()
    assert found.plan.empty and not found.clean
    assert {(r.label, r.owner) for r in found.unmanaged} == {
        ("addr 10.0.0.254/24 on eth0", "overlay:vip-group"), ("route 10.8.0.0/16", "overlay:fault-1")}
    assert rec.apply().plan.empty
    assert vip.ident in kernel.objects and marked.ident in kernel.objects

    # Without the claim the address is hand-made drift in a namespace the topology owns.
    plain = reconciler(topology, kernel, state)
    assert [str(a) for a in plain.drift().plan.actions] == ["delete addr 10.0.0.254/24 on eth0 in t-a"]


def test_a_declared_object_that_an_overlay_holds_is_refused_not_taken(state):
    from toolkit.core.owners import overlay
    from toolkit.core.resource import Resource

    kernel = FakeKernel()
    reconciler(text_topology(UNLINKED), kernel, state).apply()
    held = Resource.make("sysctl", ("t-a", "net.ipv4.ip_forward"), owner=overlay("fault-2"), value="1")
    kernel.read = (lambda read: lambda names, hints: read(names, hints) + [held])(kernel.read)
    with pytest.raises(OwnershipError) as caught:
        reconciler(text_topology("name: lab\nnodes: {a: {sysctls: {net.ipv4.ip_forward: 1}}, b: {}}\n"),
                   kernel, state).plan()
    assert caught.value.problems[0][:2] == ("t-a", "overlay:fault-2")


def test_a_namespace_made_again_by_someone_else_is_refused_not_adopted(state):
    kernel = FakeKernel()
    topology = text_topology(UNLINKED)
    reconciler(topology, kernel, state).apply()
    kernel.remove_namespace("t-b")
    kernel.intruder("t-b")  # same name, another namespace
    for attempt in (lambda r: r.plan(), lambda r: r.apply(), lambda r: r.destroy()):
        with pytest.raises(OwnershipError) as caught:
            attempt(reconciler(topology, kernel, state))
        assert caught.value.problems[0][0] == "t-b"
    assert kernel.list_namespaces() == ["t-a", "t-b"]
    with pytest.raises(OwnershipError):
        rollback(kernel, state)


def test_destroy_never_deletes_a_namespace_the_inventory_names_but_netkeel_never_made(state):
    from toolkit.state.inventory import Inventory

    kernel = FakeKernel()
    topology = text_topology(UNLINKED)
    reconciler(topology, kernel, state).apply()
    kernel.intruder("victim")
    inventory = Inventory(state)
    inventory.record("lab@t-", inventory.namespaces("lab@t-") | {"victim"})
    with pytest.raises(OwnershipError) as caught:
        reconciler(topology, kernel, state).destroy()
    assert [p[0] for p in caught.value.problems] == ["victim"]
    assert "victim" in kernel.list_namespaces()


def test_identities_are_recorded_before_a_namespace_is_visible(state):
    kernel = FakeKernel()
    seen = []

    def watch(method, args):
        if method == "create_namespace":
            from toolkit.state.identities import Identities
            seen.append((args[0], args[0] in Identities(state).load()))
        return False
    kernel.fail(watch)
    original = kernel.intruder

    def visible(name, cookie=None):
        from toolkit.state.identities import Identities
        assert Identities(state).load().get(name) == cookie  # on record before it exists
        original(name, cookie)
    kernel.intruder = visible
    reconciler(text_topology(UNLINKED), kernel, state).apply()
    assert [name for name, _ in seen] == ["t-a", "t-b"]


def test_rollback_restores_the_sysctls_of_a_namespace_the_change_removed(state):
    kernel = FakeKernel()
    with_a = text_topology("name: lab\nnodes: {a: {sysctls: {net.ipv4.ip_forward: 1}}, b: {}}\n")
    without_a = text_topology("name: lab\nnodes: {b: {}}\n")
    reconciler(with_a, kernel, state).apply()
    reconciler(without_a, kernel, state).apply()
    assert "t-a" not in kernel.list_namespaces()
    rollback(kernel, state)
    assert kernel.sysctls[("t-a", "net.ipv4.ip_forward")] == "1"
    assert reconciler(with_a, kernel, state).drift().clean


def test_a_sysctl_no_longer_declared_is_still_read_for_snapshots_but_never_drift(state):
    kernel = FakeKernel()
    reconciler(text_topology("name: lab\nnodes: {a: {sysctls: {net.ipv4.ip_forward: 1}}}\n"), kernel, state).apply()
    plain = reconciler(text_topology("name: lab\nnodes: {a: {}}\n"), kernel, state)
    assert plain.drift().clean
    assert ("sysctl", ("t-a", "net.ipv4.ip_forward")) in {r.ident for r in plain.read()}


class Killed(BaseException):
    """Stands for a SIGKILL: raised where nothing of netkeel's own handling runs after it."""


def _killed_after_the_last_request(monkeypatch):
    """The change's end record is never written: the process dies after its last kernel request."""
    from toolkit.state.journal import Journal

    append = Journal.append

    def dying(self, record):
        if record.get("event") == "end":
            raise Killed()
        append(self, record)
    monkeypatch.setattr(Journal, "append", dying)


def _killed_before_the_first_request(monkeypatch):
    """The process dies once its start record is written and its namespaces owned, before any request."""
    from toolkit.runtime import transaction

    def dying(*args, **kwargs):
        raise Killed()
    monkeypatch.setattr(transaction, "_carry_out", dying)


def _interrupted(state) -> list:
    from toolkit.state.journal import Journal

    return [r["op"] for r in Journal(state).interrupted()]


def test_an_apply_finding_nothing_left_to_do_still_settles_the_interrupted_apply(state, monkeypatch):
    kernel = FakeKernel()
    with monkeypatch.context() as patch:
        _killed_after_the_last_request(patch)
        with pytest.raises(Killed):
            reconciler(text_topology(V1), kernel, state).apply()
    assert _interrupted(state) == ["apply"]
    calls = len(kernel.calls)
    result = reconciler(text_topology(V1), kernel, state).apply()
    assert result.plan.empty and len(kernel.calls) == calls  # the kernel was already converged
    assert _interrupted(state) == []  # followed, the advice makes the warning go


def test_a_rollback_finding_nothing_to_undo_still_settles_the_interrupted_apply(state, monkeypatch):
    kernel = FakeKernel()
    reconciler(text_topology(V1), kernel, state).apply()
    before = kernel.state()
    with monkeypatch.context() as patch:
        _killed_before_the_first_request(patch)
        with pytest.raises(Killed):
            reconciler(text_topology(V2), kernel, state).apply()
    assert kernel.state() == before and _interrupted(state) == ["apply"]
    from toolkit.state.journal import Journal

    snapshot = Journal(state).summary().open[0]["snapshot"]
    assert rollback(kernel, state, snapshot).plan.empty
    assert kernel.state() == before and _interrupted(state) == []
    assert reconciler(text_topology(V1), kernel, state).drift().clean


def test_a_destroy_finding_nothing_left_to_remove_still_settles_the_interrupted_destroy(state, monkeypatch):
    kernel = FakeKernel()
    reconciler(text_topology(V1), kernel, state).apply()
    with monkeypatch.context() as patch:
        _killed_after_the_last_request(patch)
        with pytest.raises(Killed):
            reconciler(text_topology(V1), kernel, state).destroy()
    assert kernel.list_namespaces() == [] and _interrupted(state) == ["destroy"]
    assert reconciler(text_topology(V1), kernel, state).destroy().plan.empty
    assert _interrupted(state) == []


def test_a_ctrl_c_between_the_start_record_and_the_first_step_ends_the_change_restored(state, monkeypatch):
    """A signal while the change is being recorded (after the journal's start, before
    the try that restores) left a change begun and never ended: the next command
    warned of an interruption. It is held until the change can restore, and ends so."""
    import os
    import signal

    from toolkit.state.journal import Journal
    from toolkit.state.snapshots import Snapshots

    kernel = FakeKernel()
    rec = reconciler(example("two-clients-plain"), kernel, state)
    prune = Snapshots.prune

    def pressed(self, keep):  # Ctrl-C, in the window
        os.kill(os.getpid(), signal.SIGINT)
        return prune(self, keep)

    monkeypatch.setattr(Snapshots, "prune", pressed)
    with pytest.raises(ApplyError) as caught:
        rec.apply()
    assert caught.value.failed == "interrupted" and caught.value.restored
    assert Journal(state).interrupted() == []
    assert kernel.cookies == {}  # nothing was made
