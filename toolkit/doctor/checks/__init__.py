"""The doctor's checks, in the order they run and are reported. Each module has
NAME, a one-line DOC, and run(ctx) -> [Finding]."""

from __future__ import annotations

from . import conntrack, duplicates, faults, gateways, mtu, nodes, reachability, routing

CHECKS: tuple = (nodes, faults, mtu, reachability, routing, duplicates, gateways, conntrack)
BY_NAME = {c.NAME: c for c in CHECKS}


def to_run(ctx) -> list:
    """The checks that run: every one (only ctx.only, when given); where a
    node's namespace is missing, the nodes check alone, --only or not: the
    others probe every node (`--only mtu` said "healthy" of such a lab, running
    nothing: found by review)."""
    if ctx.missing:
        return [nodes]
    return [check for check in CHECKS if ctx.only is None or check.NAME == ctx.only]


def run(ctx) -> list:
    """The findings of the checks to_run(ctx)."""
    return [finding for check in to_run(ctx) for finding in check.run(ctx)]
