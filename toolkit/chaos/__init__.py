"""Chaos: declared, time-boxed faults that cannot outlive their lease.

    plan.py     fault + what the kernel can do + the running lab -> kernel operations (pure)
    engine.py   inject (lease, operations, verification, keeper), revert, status, expiry
    keeper.py   the small process that holds a lease, runs a flap schedule, and reverts at expiry

A fault's kernel objects carry their own markers (nft tables named
netkeel_chaos_*, qdiscs and ifb devices netkeel made for a lease), so the
topology's apply never takes them for drift to remove; `drift` reports active
faults by name, target and time left.
"""
