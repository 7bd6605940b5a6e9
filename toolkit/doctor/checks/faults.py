"""Faults: a chaos fault active on the lab is a story of its own (loss, delay or
reordering that a few probes may not even notice): each is reported, with its
time left, so that nothing it causes is taken for the lab's own failure."""

from __future__ import annotations

from ..finding import Finding

NAME = "faults"
DOC = "chaos faults active on the lab"


def run(ctx) -> list:
    out = []
    for lease in ctx.faults:
        out.append(Finding(
            check=NAME, title=f"fault {lease.fault} is active: {lease.text}", where=lease.instance,
            evidence=(f"lease {lease.id}, {lease.state}, {lease.left():.0f} s left, backends "
                      + ", ".join(f"{k} by {b}" for k, b in lease.backends),),
            why="it degrades the lab on purpose: what it causes shows in the other checks' findings too",
            fix=f"wait for it to end, or `netkeel chaos revert --fault {lease.fault}`", severity="warning",
            nodes=tuple(sorted({ctx.node_of(op["ns"]) for op in lease.operations if op.get("ns")}))))
    return out
