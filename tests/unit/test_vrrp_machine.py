"""The VRRPv3 state machine (RFC 9568 6.4) on a clock the test moves: timers,
the interval a backup adopts, preemption on and off, priority 0, the preempt
delay, and the tie-break on the higher primary address."""

from __future__ import annotations

import pytest

from toolkit.vrrp import machine as m

ME, PEER, LOWER_PEER = "10.0.3.2", "10.0.3.3", "10.0.3.1"


def started(priority=200, interval_cs=10, preempt=True, delay_ms=0, primary=ME, at=0.0) -> m.Machine:
    mc = m.Machine(priority, interval_cs, primary, preempt, delay_ms)
    assert mc.start(at) == [m.Transition(m.INITIALIZE, m.BACKUP, "startup")]
    return mc


def active(priority=200, interval_cs=10, **kw) -> m.Machine:
    mc = started(priority, interval_cs, **kw)
    mc.tick(mc.next_deadline())
    assert mc.state == m.ACTIVE
    return mc


def kinds(actions) -> list:
    return [type(a).__name__ for a in actions]


# -- timers --------------------------------------------------------------------------------

def test_backup_waits_master_down_interval_then_becomes_active_adds_vips_garps_and_advertises():
    mc = started(priority=200, interval_cs=10)
    assert mc.state == m.BACKUP and mc.master is None
    assert mc.next_deadline() == pytest.approx(0.321875)            # 3 * 100 ms + 56/256 * 100 ms
    assert mc.tick(0.3218) == []                                     # not yet
    actions = mc.tick(0.321875)
    assert kinds(actions) == ["Transition", "AddVips", "Garp", "Send"]
    assert actions[-1] == m.Send(200)
    assert mc.state == m.ACTIVE and mc.master == m.Master(ME, 200, 10) and mc.transitions == 2


def test_active_advertises_every_interval_without_drift_or_bursts():
    mc = active(interval_cs=10)
    t0 = mc.next_deadline()
    sent = []
    for i in range(5):
        now = mc.next_deadline() + 0.002         # woken 2 ms late each time
        sent.append((now, mc.tick(now)))
    assert all(a == [m.Send(200)] for _, a in sent)
    assert mc.next_deadline() == pytest.approx(t0 + 0.5)             # the schedule does not slip
    late = mc.next_deadline() + 0.35                                 # asleep for 3.5 intervals
    assert mc.tick(late) == [m.Send(200)]                            # one advert, not four
    assert mc.next_deadline() == pytest.approx(late + 0.1)


@pytest.mark.parametrize("priority, interval_cs, skew_ms, down_ms", [
    (200, 10, 21.875, 321.875), (100, 10, 60.9375, 360.9375), (100, 100, 609.375, 3609.375),
    (254, 1, 0.078125, 30.078125), (1, 4095, 40790.0390625, 163640.0390625),
])
def test_skew_and_master_down_interval_at_start(priority, interval_cs, skew_ms, down_ms):
    mc = started(priority, interval_cs)
    assert (mc.skew_ms, mc.master_down_interval_ms) == (skew_ms, down_ms)
    assert mc.next_deadline() == pytest.approx(down_ms / 1000)


@pytest.mark.parametrize("interval_cs, rt", [(1, 10), (10, 10), (99, 10), (100, 0), (4095, 0)])
def test_only_sub_second_adverts_ask_for_realtime_scheduling(interval_cs, rt):
    from toolkit.vrrp.config import realtime_priority
    assert realtime_priority(interval_cs) == rt


def test_backup_adopts_the_advertised_interval_and_recomputes_skew_and_master_down_interval():
    mc = started(priority=100, interval_cs=100)           # own: 1 s adverts
    assert mc.master_down_interval_ms == 3609.375
    assert mc.receive(1.0, PEER, 200, 10) == []           # the active one sends every 100 ms
    assert mc.master_adver_interval_cs == 10
    assert mc.skew_ms == 60.9375                          # (256 - 100) * 10 cs / 256, not with 100 cs
    assert mc.master_down_interval_ms == 360.9375
    assert mc.next_deadline() == pytest.approx(1.0 + 0.3609375)
    assert mc.master == m.Master(PEER, 200, 10)
    assert mc.receive(1.2, PEER, 200, 50) == []           # it slows down: adopted again
    assert mc.master_down_interval_ms == 3 * 500 + 156 * 500 / 256
    assert mc.next_deadline() == pytest.approx(1.2 + mc.master_down_interval_ms / 1000)


def test_adverts_keep_a_backup_backup():
    mc = started(priority=100)
    t = 0.0
    for _ in range(50):
        t += 0.1
        mc.receive(t, PEER, 200, 10)
        assert mc.tick(t) == [] and mc.state == m.BACKUP
    assert mc.tick(t + 0.36) == []
    assert kinds(mc.tick(t + 0.3609375)) == ["Transition", "AddVips", "Garp", "Send"]


def test_becoming_active_takes_back_its_own_interval():
    mc = started(priority=100, interval_cs=100)
    mc.receive(0.5, PEER, 200, 10)
    mc.tick(mc.next_deadline())
    assert mc.state == m.ACTIVE and mc.master_adver_interval_cs == 100
    assert mc.master == m.Master(ME, 100, 100)


# -- preemption ----------------------------------------------------------------------------

def test_preempt_on_a_lower_priority_active_is_ignored_and_the_timer_runs_out():
    mc = started(priority=200, interval_cs=10)
    deadline = mc.next_deadline()
    for t in (0.05, 0.15, 0.25):
        assert mc.receive(t, PEER, 100, 10) == []
    assert mc.next_deadline() == deadline                 # not restarted by lower priority adverts
    assert mc.master == m.Master(PEER, 100, 10)           # but known as the active one
    assert mc.tick(deadline)[0] == m.Transition(m.BACKUP, m.ACTIVE, "master down timer")


def test_preempt_off_a_lower_priority_active_is_kept():
    mc = started(priority=200, interval_cs=10, preempt=False)
    t = 0.0
    for _ in range(20):
        t += 0.1
        assert mc.receive(t, PEER, 100, 10) == []
        assert mc.tick(t) == []
    assert mc.state == m.BACKUP
    assert mc.next_deadline() == pytest.approx(t + mc.master_down_interval_ms / 1000)


def test_preempt_off_still_yields_when_active_to_a_higher_priority():
    mc = active(priority=100, preempt=False)
    actions = mc.receive(1.0, PEER, 200, 10)
    assert kinds(actions) == ["Send", "RemoveVips", "Transition"] and mc.state == m.BACKUP


def test_equal_priority_is_accepted_by_a_backup():
    mc = started(priority=100)
    deadline = mc.next_deadline()
    mc.receive(0.2, LOWER_PEER, 100, 10)
    assert mc.next_deadline() > deadline and mc.master.address == LOWER_PEER


def test_preempt_delay_accepts_a_lower_active_for_the_delay_then_takes_over_at_once():
    mc = started(priority=200, interval_cs=10, delay_ms=1000)
    t = 0.0
    while t < 0.95:
        t += 0.1
        assert mc.receive(t, PEER, 100, 10) == []
        assert mc.tick(t) == [] and mc.state == m.BACKUP
    assert mc.next_deadline() == pytest.approx(1.1)       # the first lower advert at 0.1 + 1 s
    actions = mc.tick(1.1)
    assert actions[0] == m.Transition(m.BACKUP, m.ACTIVE, "preempt delay over")


def test_preempt_delay_does_not_hold_back_a_takeover_when_the_lower_active_dies():
    mc = started(priority=200, interval_cs=10, delay_ms=5000)
    mc.receive(0.1, PEER, 100, 10)
    down = mc.next_deadline()
    assert down == pytest.approx(0.1 + 0.321875)
    assert mc.tick(down)[0].reason == "master down timer"


def test_preempt_delay_restarts_after_a_higher_priority_active_was_accepted():
    mc = started(priority=150, interval_cs=10, delay_ms=1000)
    mc.receive(0.1, PEER, 100, 10)                        # delay until 1.1
    mc.receive(0.2, "10.0.3.9", 200, 10)                  # a higher one: delay cancelled
    assert mc.preempt_at is None
    mc.receive(0.3, PEER, 100, 10)                        # lower again: a new delay
    assert mc.preempt_at == pytest.approx(1.3)


# -- priority 0 ----------------------------------------------------------------------------

def test_priority_zero_sets_the_backup_timer_to_skew_time():
    mc = started(priority=100, interval_cs=10)
    mc.receive(1.0, PEER, 200, 10)
    assert mc.receive(1.05, PEER, 0, 10) == []
    assert mc.next_deadline() == pytest.approx(1.05 + 0.0609375)
    assert mc.master is None
    assert mc.tick(1.05 + 0.0609375)[0].reason == "master down timer"


def test_priority_zero_uses_the_skew_of_the_adopted_interval():
    mc = started(priority=100, interval_cs=100)           # 1 s own interval
    mc.receive(1.0, PEER, 200, 10)                        # adopts 100 ms
    mc.receive(1.05, PEER, 0, 10)
    assert mc.next_deadline() == pytest.approx(1.05 + 0.0609375)   # not 609 ms


def test_active_answers_priority_zero_with_an_advert_at_once():
    mc = active()
    assert mc.receive(5.0, PEER, 0, 10) == [m.Send(200)]
    assert mc.state == m.ACTIVE and mc.next_deadline() == pytest.approx(5.1)


def test_shutdown_when_active_sends_priority_zero_and_removes_the_vips():
    mc = active()
    assert mc.shutdown(2.0) == [m.Send(0), m.RemoveVips(), m.Transition(m.ACTIVE, m.STOPPED, "shutdown")]
    assert mc.next_deadline() is None and mc.shutdown(2.1) == []
    assert mc.receive(2.2, PEER, 100, 10) == [] and mc.tick(9.0) == []


def test_shutdown_when_backup_sends_nothing():
    mc = started()
    assert mc.shutdown(0.1) == [m.Transition(m.BACKUP, m.STOPPED, "shutdown")]


# -- active meets another active -----------------------------------------------------------

def test_active_yields_to_a_higher_priority_adopting_its_interval():
    mc = active(priority=100, interval_cs=100)
    actions = mc.receive(3.0, PEER, 200, 10)
    assert actions[:2] == [m.Send(100), m.RemoveVips()] and actions[2].new == m.BACKUP
    assert mc.master == m.Master(PEER, 200, 10)
    assert mc.master_down_interval_ms == 360.9375
    assert mc.next_deadline() == pytest.approx(3.0 + 0.3609375)


def test_tie_break_on_equal_priority_the_higher_primary_address_wins():
    mc = active(priority=100, primary="10.0.3.2")
    assert kinds(mc.receive(1.0, "10.0.3.10", 100, 10)) == ["Send", "RemoveVips", "Transition"]  # 10 > 2
    mc = active(priority=100, primary="10.0.3.10")
    assert kinds(mc.receive(1.0, "10.0.3.9", 100, 10)) == ["Send", "Garp"]               # 9 < 10: stays
    assert mc.state == m.ACTIVE


def test_tie_break_compares_unsigned_integers_not_strings_or_signed():
    assert m.wins_tie("10.0.3.10", "10.0.3.9")             # as strings "10.0.3.10" < "10.0.3.9"
    assert m.wins_tie("200.0.0.1", "100.0.0.1")            # signed 32-bit would make 200.x negative
    assert not m.wins_tie("10.0.3.2", "10.0.3.2")
    assert m.wins_tie("2001:db8::10", "2001:db8::9")


def test_lower_priority_active_is_answered_at_once_and_garp_is_rate_limited():
    mc = active(priority=200)
    first = mc.receive(10.0, PEER, 100, 10)
    assert first[0] == m.Send(200) and isinstance(first[1], m.Garp) and mc.state == m.ACTIVE
    assert mc.next_deadline() == pytest.approx(10.1)
    assert mc.receive(10.3, PEER, 100, 10) == [m.Send(200)]          # no second GARP within a second
    assert kinds(mc.receive(11.1, PEER, 100, 10)) == ["Send", "Garp"]


def heal(first_heard: str):
    """Two actives after a partition; the one named hears the other first, and
    each then hears what the other sent in answer. Returns the actions of each."""
    routers = {"r1": active(priority=200, primary="10.0.3.2"), "r2": active(priority=100, primary="10.0.3.3")}
    prio = {"r1": 200, "r2": 100}
    addr = {"r1": "10.0.3.2", "r2": "10.0.3.3"}
    done = {"r1": [], "r2": []}
    inbox = [(first_heard, "r2" if first_heard == "r1" else "r1", m.Send(prio["r2" if first_heard == "r1" else "r1"]))]
    t = 1.0
    for _ in range(10):
        if not inbox:
            break
        to, frm, send = inbox.pop(0)
        t += 0.001
        actions = routers[to].receive(t, addr[frm], send.priority, 10)
        done[to] += actions
        inbox += [(frm, to, a) for a in actions if isinstance(a, m.Send)]
    return routers, done


@pytest.mark.parametrize("first_heard", ["r1", "r2"])
def test_split_brain_heals_to_the_higher_priority_with_garp_whoever_hears_first(first_heard):
    routers, done = heal(first_heard)
    assert (routers["r1"].state, routers["r2"].state) == (m.ACTIVE, m.BACKUP)
    assert any(isinstance(a, m.Garp) for a in done["r1"])         # the clients are pointed at r1
    assert any(isinstance(a, m.RemoveVips) for a in done["r2"])


def test_refuses_the_owner_priority():
    with pytest.raises(ValueError, match="255"):
        m.Machine(255, 10)


def test_a_new_split_brain_healed_within_the_holdoff_still_gets_its_gratuitous_arp():
    # Two heals 0.8 s apart with silence between them (a flapping port): each tells
    # the clients, or they keep talking to the router that just stepped back.
    from toolkit.vrrp.machine import Garp, Machine

    mc = Machine(200, 10, "10.0.3.2")
    mc.start(0)
    mc.tick(0.4)
    assert any(isinstance(a, Garp) for a in mc.receive(10.0, "10.0.3.3", 100, 10))
    assert any(isinstance(a, Garp) for a in mc.receive(10.8, "10.0.3.3", 100, 10))
    # Within one continuing split brain (adverts every 100 ms), one GARP a second.
    assert not any(isinstance(a, Garp) for a in mc.receive(10.9, "10.0.3.3", 100, 10))
