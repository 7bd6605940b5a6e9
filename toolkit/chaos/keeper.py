"""The keeper: a small process per lease that outlives the netkeel that injected
the fault. It runs the flap schedule, notices a revert made by someone else,
watches the userspace impairment worker (a dead or hung one is taken out of
the path within a second, and the lease marked broken), and reverts the fault
when its time is up (or its flap cycles are done), then exits. It wakes at
least twice a second (five times with a worker to watch), and exactly at each
flap transition.

It is started detached (its own session) by `chaos`, as
`python -m toolkit.cli.keeper --state-dir DIR LEASE_ID`; a SIGTERM or SIGINT
makes it revert and leave too.
"""

from __future__ import annotations

import os
import time

from ..core import processes
from ..errors import KernelError
from ..state.leases import Leases
from .engine import injection_abandoned, revert

NAP_S = 0.5
WATCH_S = 0.2  # how often a userspace worker is checked: a dead or hung one is out within a second


def keep(backend, state, lease_id: str, now=time.time, sleep=time.sleep) -> str:
    """Keep the lease until it ends; returns why it ended."""
    leases = Leases(state)
    current: dict = {}  # (ns, dev) -> the state the flap schedule last set
    origin = None       # when this keeper first saw the fault in effect: its flap schedule starts there
    try:
        while True:
            lease = leases.load(lease_id)
            if lease is None:
                return "reverted elsewhere"
            t = now()
            if t >= lease.expires:
                revert(backend, state, lease_id, why="its time ran out")
                return "expired"
            if lease.state == "injecting":
                if injection_abandoned(leases, lease):  # it died half way: undo what it made
                    revert(backend, state, lease_id, why="its injector died half way")
                    return "injector died"
                sleep(0.05)
                continue
            if lease.state == "reverting":  # someone is taking it away: hands off its devices
                if leases.abandoned(lease_id):  # ... unless that one died half way: finish it
                    revert(backend, state, lease_id, why="its reverter died half way")
                    return "its reverter died"
                sleep(0.05)
                continue
            served = [op for op in lease.operations if op["op"] == "nfqueue"]
            if served and lease.state == "active":
                why = _broken(backend, leases, lease_id, served)
                if why is None:
                    return "reverted elsewhere"
            wake, flapping, finished = lease.expires, False, True
            for op in lease.operations:
                if op["op"] != "flap":
                    continue
                flapping = True
                if origin is None:
                    origin = t  # not the lease's start: this process may have started after it
                want, next_at = flap_state(op, origin, t)
                if next_at is not None:
                    finished = False
                    wake = min(wake, next_at)
                key = (op["ns"], op["dev"])
                if current.get(key) != want:
                    # Under the lease's lock, which a revert holds while it restores the
                    # device: a transition never lands after the restore.
                    with leases.locked(lease_id):
                        held = leases.load(lease_id)
                        if held is None:
                            return "reverted elsewhere"
                        if held.state != "reverting":
                            if want == "up":  # with what going down took along (routes)
                                backend.fault_device_up(op)
                            else:
                                backend.link_set(op["ns"], op["dev"], state=want)
                            current[key] = want
            if flapping and finished:
                revert(backend, state, lease_id, why="its flap cycles were done")
                return "flap cycles done"
            sleep(max(0.0, min(wake - now(), WATCH_S if served else NAP_S)))
    except (KernelError, OSError) as exc:  # the device or namespace went: nothing more to keep
        _revert_quietly(backend, state, lease_id, f"its keeper could not keep it: {exc}")
        return f"stopped: {exc}"
    except BaseException:  # SIGTERM (SystemExit), Ctrl-C: revert before leaving
        _revert_quietly(backend, state, lease_id, "its keeper was stopped")
        raise


def _broken(backend, leases: Leases, lease_id: str, served) -> str | None:
    """Check the processes serving the lease (the userspace worker). One that
    died or hangs is taken out of the path (its rules removed, it is killed) and
    the lease is marked broken: it shows in `chaos status` until it ends.
    Returns what is wrong ("" nothing), None when the lease is gone."""
    why = "; ".join(w for w in (worker_health(op, time.time()) for op in served) if w)
    if not why:
        return ""
    with leases.locked(lease_id):
        held = leases.load(lease_id)
        if held is None:
            return None
        if held.state != "active":
            return why
        # Said first: taking a hung worker out waits a second for it to go, while
        # `chaos status` went on saying "active" of a fault no packet met (found by review).
        held.state = "broken"
        held.text = f"{held.text} (BROKEN: {why}; traffic passes unimpaired)"
        leases.save(held)
        for op in served:
            backend.fault_revert(op)  # the rules first, then the worker: traffic flows again
    return why


STALE_S = 0.5  # a worker that has not touched its heartbeat file for this long hangs


def worker_health(op: dict, now: float) -> str:
    """"" while the op's worker process runs (its pid, not a zombie, not a reused
    pid: its command line names the op's queue and lease) and touches its
    heartbeat file; else what is wrong. Processes and files only: no kernel call."""
    pid = op.get("pid")
    if not processes.running(pid, op.get("tag", "").encode(), str(op.get("queue")).encode()):
        return f"its userspace worker (pid {pid}) is gone"
    try:
        age = now - os.stat(op.get("heartbeat") or "").st_mtime
    except OSError:
        return f"its userspace worker (pid {pid}) has no heartbeat file"
    if age > STALE_S:
        return f"its userspace worker (pid {pid}) hangs (no heartbeat for {age:.1f} s)"
    return ""


def _revert_quietly(backend, state, lease_id: str, why: str) -> None:
    """Revert what is left of the lease (revert is idempotent; a revert made
    by someone else meanwhile leaves nothing to do)."""
    try:
        revert(backend, state, lease_id, why=why)
    except (KernelError, OSError, TimeoutError, ValueError):
        pass  # the next netkeel command expires it


def flap_state(op: dict, started: float, t: float) -> tuple:
    """(state the device should have at time t, when that changes next or None
    when the schedule is over)."""
    period, down = op["period_ms"] / 1000, op["down_ms"] / 1000
    cycle, phase = divmod(t - started, period)
    if op.get("cycles") and cycle >= op["cycles"]:
        return "up", None
    if phase < down:
        return "down", started + cycle * period + down
    return "up", started + (cycle + 1) * period
