"""The planner: desired and live resources -> an ordered Plan. Pure code.

    diff.py   diff(desired, live) -> Plan, with the kernel's side effects known

Compiling the model into desired resources is each kind's own work
(kinds.compile_all).
"""

from .diff import diff

__all__ = ["diff"]
