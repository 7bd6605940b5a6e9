"""Readable details of a change, shared by the human, JSON and JUnit views.

Most changes are a field with a desired and a live value; a kind may spell its
changes out further (a firewall table per chain, rule and set element): each
kind's `details` says how.
"""

from __future__ import annotations

from ..kinds import kind
from ..kinds.nft_table import ABSENT, element_text

__all__ = ["ABSENT", "details", "element_text"]


def details(action) -> list:
    """[(what, desired, live)] for a modify action."""
    return kind(action.kind).details(action)
