"""Failpoints: make apply fail on purpose, to test (and show) what netkeel does then.

    NETKEEL_FAILPOINT=apply.after:K   raise after K kernel requests (K >= 1; 0 acts as 1)
    NETKEEL_FAILPOINT=apply.kill:K    SIGKILL this process after K kernel requests
    NETKEEL_FAILPOINT=apply.interrupt:K
                                      SIGINT this process after K kernel requests,
                                      and again as the restore begins (Ctrl-C twice)
    NETKEEL_FAILPOINT=checker.unlisted:1
                                      the native-rule checker does not make each rule
                                      again from its listing (kernel/nft_scratch.py)

`apply.after` exercises the restore path (the pre-apply snapshot is restored and
verified, exit 1); `apply.kill` leaves a half-applied state and an unfinished
journal record behind, as a crash or a power cut would; `apply.interrupt` is a
user pressing Ctrl-C, then again while the snapshot is being restored: the
restore must finish first (the second signal waits for it). `checker.unlisted`
lets a rule through that nft lists otherwise than it lists its own listing, as a
kernel that lists a rule otherwise in a node than in the throwaway namespace
would: what stands behind the checker (the plan's proof, the apply's
verification and its restore) is then tested.
"""

from __future__ import annotations

import os
import signal

from ..errors import FailpointHit, NetkeelError

ENV = "NETKEEL_FAILPOINT"
NAMES = ("apply.after", "apply.kill", "apply.interrupt", "checker.unlisted")


def active() -> tuple | None:
    """(kind, K) from the environment, or None. Bad settings are ignored loudly."""
    value = os.environ.get(ENV, "")
    if not value:
        return None
    name, _, count = value.partition(":")
    if name not in NAMES or not (count.isascii() and count.isdigit()):
        raise NetkeelError(f"{ENV}={value!r}: expected apply.after:K, apply.kill:K, apply.interrupt:K or "
                           "checker.unlisted:1")
    return name, int(count)


def wrap(on_step):
    """An on_step callback that also fires the active failpoint."""
    point = active()
    if point is None or not point[0].startswith("apply."):
        return on_step
    name, limit = point

    def step(done, total, current):
        if on_step:
            on_step(done, total, current)
        if done >= limit:
            if name == "apply.kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if name == "apply.interrupt":
                os.kill(os.getpid(), signal.SIGINT)  # raised as KeyboardInterrupt on its way back
                return
            raise FailpointHit(f"failpoint {name}:{limit} after {done} of {total} kernel requests")
    return step


def restore_begins() -> None:
    """Called as a failed or interrupted change starts restoring its snapshot."""
    point = active()
    if point is not None and point[0] == "apply.interrupt":
        os.kill(os.getpid(), signal.SIGINT)  # the second Ctrl-C
