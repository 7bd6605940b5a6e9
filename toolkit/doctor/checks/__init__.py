"""The doctor's checks, in the order they run and are reported. Each module has
NAME, a one-line DOC, and run(ctx) -> [Finding]."""

from __future__ import annotations

from . import conntrack, duplicates, faults, gateways, mtu, reachability, routing

CHECKS: tuple = (faults, mtu, reachability, routing, duplicates, gateways, conntrack)
BY_NAME = {c.NAME: c for c in CHECKS}


def run(ctx) -> list:
    """Every check's findings (only ctx.only's, when given)."""
    found = []
    for check in CHECKS:
        if ctx.only is None or check.NAME == ctx.only:
            found.extend(check.run(ctx))
    return found
