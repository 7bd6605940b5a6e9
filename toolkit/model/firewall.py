"""The firewall model: nftables tables, chains, rules and named sets, per node.

Rules are already compiled: each carries its nftables JSON expression list
(`expr`) in the form the kernel lists it back, or, for a native rule, the nft
statement text to be turned into JSON by libnftables itself. `source` says
where the rule was written, for messages and reports.
"""

from __future__ import annotations

from dataclasses import dataclass

# Tables netkeel manages carry this prefix in the kernel: `filter` in a policy
# is `netkeel_filter` in `nft list ruleset`. Anything else is not netkeel's.
TABLE_PREFIX = "netkeel_"


@dataclass(frozen=True)
class Rule:
    expr: str | None        # the JSON expression list (as JSON text), None for native rules
    native: str | None      # nft statement text, None for structured rules
    comment: str | None
    source: str             # "policies/x.yaml:12"
    text: str               # a one-line human form of the rule as written
    path: str = ""          # its field path in the policy file: tables.filter.chains.input.rules[3]


@dataclass(frozen=True)
class Chain:
    name: str
    type: str | None = None      # filter / nat / route; None for a regular chain
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None    # accept / drop (base chains)
    rules: tuple = ()


@dataclass(frozen=True)
class NamedSet:
    name: str
    type: str
    flags: tuple = ()
    elements: tuple = ()         # JSON strings of the elements


@dataclass(frozen=True)
class Table:
    name: str                    # as declared; the kernel name adds TABLE_PREFIX
    family: str
    chains: tuple = ()
    sets: tuple = ()
    source: str = ""

    @property
    def kernel_name(self) -> str:
        return TABLE_PREFIX + self.name


@dataclass(frozen=True)
class PolicyLoad:
    """A policy file's text, the tables a read of it made with no problem, and
    where its rule and set element items are: (kind, table, chain or set,
    index, first, end, column) per item, kind "rules" or "elements", lines
    [first, end) counted from 0, its dash at `column`; `repeated`, the (table,
    set) that hold an element written twice. For reading an edit of it item by
    item: manifest/policy_edit.py."""

    text: str
    tables: tuple
    spans: tuple = ()
    repeated: frozenset = frozenset()
