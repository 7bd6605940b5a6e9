"""The VRRPv3 state machine (RFC 9568 section 6.4), pure: events in, actions out.

The caller feeds it events with the time they happened (a monotonic clock in
seconds) and carries out the actions it returns, in order:

    start(now)                      Startup: Initialize -> Backup
    receive(now, src, prio, intv)   a valid advertisement from another router
    tick(now)                       timers: call it at next_deadline() or later
    shutdown(now)                   Shutdown: -> stopped

    Send(priority)     send an advertisement now (priority 0 on shutdown)
    AddVips()          add the virtual addresses (then Garp follows)
    RemoveVips()       remove them
    Garp(reason)       send gratuitous ARP for them (the caller repeats a few times)
    Transition(old, new, reason)

Backup: the Master_Down_Timer runs for Master_Down_Interval; an advert of
priority 0 sets it to Skew_Time; an advert of higher or equal priority (or any,
with preemption off) adopts the advertised interval as Master_Adver_Interval,
recomputes Skew_Time and Master_Down_Interval and restarts the timer; one of
lower priority is ignored (so the timer runs out and this router preempts),
except during a preempt delay, which counts from the first lower priority
advert and ends in taking over at once. Active: an advert every
Advertisement_Interval; priority 0 from another is answered at once; a higher
priority (or an equal one from a higher primary address) makes this router
Backup, after one last advert of its own; a lower one is answered at once with
an advert and (at most once a second) gratuitous ARP so clients point here
again. Between them, the last advert and the answer heal a split brain
whichever side hears the other first.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .config import master_down_interval_ms, skew_time_ms

INITIALIZE, BACKUP, ACTIVE, STOPPED = "initialize", "backup", "active", "stopped"
HEAL_GARP_HOLDOFF_S = 1.0   # gratuitous ARP after a lower priority active is heard: at most this often


@dataclass(frozen=True)
class Send:
    priority: int


@dataclass(frozen=True)
class AddVips:
    pass


@dataclass(frozen=True)
class RemoveVips:
    pass


@dataclass(frozen=True)
class Garp:
    reason: str


@dataclass(frozen=True)
class Transition:
    old: str
    new: str
    reason: str


@dataclass(frozen=True)
class Master:
    """Who is believed to be active."""
    address: str | None
    priority: int
    interval_cs: int


def _as_int(address) -> int:
    """An address as an unsigned integer in network byte order (0 for none)."""
    return int(ipaddress.ip_address(address)) if address else 0


def wins_tie(their_address, our_address) -> bool:
    """With equal priorities, the higher primary address wins (unsigned compare)."""
    return _as_int(their_address) > _as_int(our_address)


class Machine:
    """One virtual router's state. `primary` is this router's primary address
    on the interface (the adverts' source): the tie-break compares it."""

    def __init__(self, priority: int, interval_cs: int, primary: str | None = None, preempt: bool = True,
                 preempt_delay_ms: int = 0):
        if not 1 <= priority <= 254:
            raise ValueError("priority 1-254 (255, the address owner, is not supported)")
        if not 1 <= interval_cs <= 4095:
            raise ValueError("interval 1-4095 centiseconds")
        self.priority = priority
        self.interval_cs = interval_cs              # Advertisement_Interval
        self.master_adver_interval_cs = interval_cs  # Master_Adver_Interval
        self.primary = primary
        self.preempt = preempt
        self.preempt_delay_s = preempt_delay_ms / 1000.0
        self.state = INITIALIZE
        self.transitions = 0
        self.since = None               # when the last transition happened (the caller's clock)
        self.master: Master | None = None
        self.master_down_at = None      # Master_Down_Timer (Backup)
        self.adver_at = None            # Adver_Timer (Active)
        self.preempt_at = None          # end of a running preempt delay (Backup)
        self.last_heal_garp = None
        self.last_lower_at = None   # when a lower-priority active was last heard (a split brain)

    # -- derived ----------------------------------------------------------------------

    @property
    def skew_ms(self) -> float:
        return skew_time_ms(self.priority, self.master_adver_interval_cs)

    @property
    def master_down_interval_ms(self) -> float:
        return master_down_interval_ms(self.priority, self.master_adver_interval_cs)

    def next_deadline(self) -> float | None:
        """The earliest time tick() has something to do, or None."""
        times = [t for t in (self.master_down_at, self.adver_at, self.preempt_at) if t is not None]
        return min(times) if times else None

    def set_primary(self, address: str | None) -> None:
        self.primary = address
        if self.state == ACTIVE:
            self.master = self._self_master()

    # -- events -----------------------------------------------------------------------

    def start(self, now: float) -> list:
        """Startup: Initialize -> Backup with the timer at Master_Down_Interval
        (priority 255 would go Active at once: refused)."""
        if self.state != INITIALIZE:
            return []
        self.master_adver_interval_cs = self.interval_cs
        return self._to_backup(now, "startup", None)

    def shutdown(self, now: float) -> list:
        """Shutdown: an active router sends priority 0 and drops its addresses."""
        old = self.state
        if old == STOPPED:
            return []
        actions = [Send(0), RemoveVips()] if old == ACTIVE else []
        self._cancel_timers()
        self.master = None
        return actions + [self._transition(now, STOPPED, "shutdown")]

    def receive(self, now: float, src: str, priority: int, interval_cs: int) -> list:
        """A valid advertisement for this VRID from another router."""
        if self.state == BACKUP:
            return self._backup_receive(now, src, priority, interval_cs)
        if self.state == ACTIVE:
            return self._active_receive(now, src, priority, interval_cs)
        return []

    def tick(self, now: float) -> list:
        """Fire the timers that are due."""
        if self.state == BACKUP:
            if self.preempt_at is not None and now >= self.preempt_at:
                return self._to_active(now, "preempt delay over")
            if self.master_down_at is not None and now >= self.master_down_at:
                return self._to_active(now, "master down timer")
        elif self.state == ACTIVE and self.adver_at is not None and now >= self.adver_at:
            self.adver_at += self.interval_cs / 100.0
            if self.adver_at <= now:    # late by more than an interval: no burst to catch up
                self.adver_at = now + self.interval_cs / 100.0
            return [Send(self.priority)]
        return []

    # -- Backup -----------------------------------------------------------------------

    def _backup_receive(self, now, src, priority, interval_cs) -> list:
        if priority == 0:
            self.master = None
            self.master_down_at = now + self.skew_ms / 1000.0
            return []
        lower = priority < self.priority
        if not lower or not self.preempt:
            self.preempt_at = None
            self._adopt(now, src, priority, interval_cs)
            return []
        # lower priority, preemption on
        self.master = Master(src, priority, interval_cs)
        if self.preempt_delay_s > 0:
            if self.preempt_at is None:
                self.preempt_at = now + self.preempt_delay_s
            if now < self.preempt_at:   # accepted as active until the delay is over
                self._adopt(now, src, priority, interval_cs)
        return []  # else ignored: the Master_Down_Timer runs out and this router takes over

    def _adopt(self, now, src, priority, interval_cs) -> None:
        """Accept the sender as active: its interval becomes Master_Adver_Interval,
        Skew_Time and Master_Down_Interval follow, the timer restarts."""
        self.master = Master(src, priority, interval_cs)
        self.master_adver_interval_cs = interval_cs
        self.master_down_at = now + self.master_down_interval_ms / 1000.0

    # -- Active -----------------------------------------------------------------------

    def _active_receive(self, now, src, priority, interval_cs) -> list:
        if priority == 0:
            self.adver_at = now + self.interval_cs / 100.0
            return [Send(self.priority)]
        if priority > self.priority or (priority == self.priority and wins_tie(src, self.primary)):
            self.master_adver_interval_cs = interval_cs
            reason = (f"higher priority {priority} from {src}" if priority > self.priority
                      else f"equal priority from higher address {src}")
            # One last advert before yielding: after a split brain the winner may
            # never have heard this router (this one heard it first), and it is
            # this advert that tells it to point the clients back with GARP.
            return [Send(self.priority), RemoveVips()] + self._to_backup(now, reason,
                                                                          Master(src, priority, interval_cs))
        # Lower priority (or equal from a lower address): another router thinks it is
        # active. Answer at once so it yields, and point the clients back here.
        self.adver_at = now + self.interval_cs / 100.0
        actions = [Send(self.priority)]
        # The holdoff spaces the GARPs of one split brain that goes on (the other keeps
        # advertising); a split brain heard again after a silence longer than
        # Master_Down_Interval is a new one, whose heal the clients must hear of at once.
        continuing = self.last_lower_at is not None and \
            now - self.last_lower_at < self.master_down_interval_ms / 1000.0
        self.last_lower_at = now
        if not continuing or self.last_heal_garp is None or now - self.last_heal_garp >= HEAL_GARP_HOLDOFF_S:
            self.last_heal_garp = now
            actions.append(Garp(f"another active router {src} (priority {priority})"))
        return actions

    # -- transitions ------------------------------------------------------------------

    def _to_backup(self, now, reason, master) -> list:
        self._cancel_timers()
        self.master = master
        self.master_down_at = now + self.master_down_interval_ms / 1000.0
        return [self._transition(now, BACKUP, reason)]

    def _to_active(self, now, reason) -> list:
        self._cancel_timers()
        self.master_adver_interval_cs = self.interval_cs
        self.master = self._self_master()
        self.adver_at = now + self.interval_cs / 100.0
        self.last_heal_garp = None  # another active heard from now on: its GARP may have been the later one
        return [self._transition(now, ACTIVE, reason), AddVips(), Garp("became active"), Send(self.priority)]

    def _self_master(self) -> Master:
        return Master(self.primary, self.priority, self.interval_cs)

    def _cancel_timers(self) -> None:
        self.master_down_at = self.adver_at = self.preempt_at = None

    def _transition(self, now, new, reason) -> Transition:
        old, self.state = self.state, new
        self.transitions += 1
        self.since = now
        return Transition(old, new, reason)
