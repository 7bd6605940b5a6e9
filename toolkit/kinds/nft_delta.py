"""A changed table changed in proportion to the change: single rules and elements.

Replacing a 10,000-rule table to change one rule costs as much as loading it.
When a table keeps its chains, sets and objects and only rules or set elements
differ, the transaction instead deletes the rules that went (by handle), adds
the new ones next to a rule that stays (`add ... position H` puts a rule after
H, `insert ... position H` before it), and adds or deletes the elements. It
still runs as one transaction, so traffic never meets half of it; libnftables
echoes each rule it added with its handle and expressions as the kernel took
them, which are compared with the desired rules (kinds/nft_table.py), and the
handles kept for the next change.

Anything else (a chain header, a set's type or flags, an object, a rule that
does not render as text, a live table whose rule handles are unknown) gives
None, and the table is replaced whole, as before.

Pure: text in, text out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .nft_canon import packet_filled
from .nft_text import Unrenderable, element_text, name_text, opcodes, sent_text


@dataclass(frozen=True)
class Delta:
    script: str                 # nft commands, one per line
    added: tuple                # (chain, index in the desired chain) of each rule added, in command order
    kept: dict                  # chain -> {index in the desired chain: live handle} of the rules that stay
    # The same rule commands, each a tuple, in the script's order (kernel/nft_rule_requests.py
    # sends them without libnftables): ("delete", chain, handle) and ("add", chain,
    # anchor handle or None, whether it lands after the anchor, the rule's nft text).
    # None when the script changes set elements too.
    rule_commands: tuple | None = None


def delta(family: str, table: str, desired: dict, live: dict) -> Delta | None:
    """The commands taking the live table (fields, with `_handles`) to the desired
    one (fields), or None if it must be replaced whole."""
    handles = live.get("_handles")
    compared = lambda fields: {k: v for k, v in fields.items() if not k.startswith("_")}  # noqa: E731
    want, have = compared(desired), compared(live)
    if handles is None or set(want) != set(have):
        return None
    try:
        where = f"{family} {name_text(table)}"
        lines, added, kept, removed, commands = [], [], {}, [], []
        elements_changed = False
        filled = None  # the sets the traffic fills: their elements beyond the declared ones are kept
        for field in sorted(want):
            kind, _, item = field.partition(" ")
            if kind == "rules":
                per_chain = [h for c, _, h in handles if c == item]
                if len(per_chain) != len(have[field]) or not all(isinstance(h, int) for h in per_chain):
                    return None  # handles that do not match the rules read: replace
                kept[item] = _rules(where, item, want[field], have[field], per_chain, lines, added, removed, commands)
            elif want[field] == have[field]:
                continue
            elif kind == "set":
                if filled is None:  # (read from every rule: only once a set differs, not on each edit)
                    filled = packet_filled(want)
                if not _elements(where, item, json.loads(want[field]), json.loads(have[field]), lines,
                                 keep=item in filled):
                    return None
                elements_changed = True
            else:
                return None  # a chain header or an object changed
        if any(map(_anonymous, removed)) and any(_anonymous(want[f"rules {c}"][j]) for c, j in added):
            # libnftables 1.0.6 echoes a rule added with an anonymous set, in a
            # transaction that deletes another with one, holding both sets'
            # elements (the kernel holds the right ones): the echo could not
            # verify it, found by review. The table is replaced whole.
            return None
        return Delta("".join(line + "\n" for line in lines), tuple(added), kept,
                     None if elements_changed else tuple(commands))
    except (Unrenderable, ValueError, KeyError, TypeError):
        return None


def _anonymous(rule: str) -> bool:
    """Whether a canonical rule holds an anonymous set or map (`{ a, b }`, a vmap)."""
    return '"set":[' in rule or '"map"' in rule or '"vmap"' in rule


def _rules(where: str, chain: str, want: tuple, have: tuple, handles: list, lines: list, added: list,
           removed: list, commands: list) -> dict:
    """Commands for one chain's rules, as text (`lines`) and as tuples
    (`commands`, Delta.rule_commands); returns {desired index: live handle} of
    those kept. The rules deleted go into `removed`."""
    kept = {}
    if want == have:
        return {j: handles[j] for j in range(len(want))}
    ops = opcodes(have, want)
    stays = [False] * len(have)
    for op, i1, i2, j1, j2 in ops:
        if op == "equal":
            for k in range(i2 - i1):
                stays[i1 + k] = True
                kept[j1 + k] = handles[i1 + k]
    head = f"{where} {name_text(chain)}"
    for op, i1, i2, j1, j2 in ops:
        if op in ("delete", "replace"):
            lines.extend(f"delete rule {head} handle {handles[i]}" for i in range(i1, i2))
            commands.extend(("delete", chain, handles[i]) for i in range(i1, i2))
            removed.extend(have[i1:i2])
    for op, i1, i2, j1, j2 in ops:
        if op not in ("insert", "replace"):
            continue
        before = next((handles[i] for i in range(i1 - 1, -1, -1) if stays[i]), None)
        after = next((handles[i] for i in range(i2, len(have)) if stays[i]), None)
        texts = [sent_text(want[j]) for j in range(j1, j2)]
        if before is not None:   # each lands right after the anchor: the last one first
            order = list(range(j2 - 1, j1 - 1, -1))
            lines.extend(f"add rule {head} position {before} {texts[j - j1]}" for j in order)
            commands.extend(("add", chain, before, True, texts[j - j1]) for j in order)
        elif after is not None:  # each lands right before the anchor: in order
            order = list(range(j1, j2))
            lines.extend(f"insert rule {head} position {after} {texts[j - j1]}" for j in order)
            commands.extend(("add", chain, after, False, texts[j - j1]) for j in order)
        else:                    # nothing stays in the chain: appended in order
            order = list(range(j1, j2))
            lines.extend(f"add rule {head} {texts[j - j1]}" for j in order)
            commands.extend(("add", chain, None, True, texts[j - j1]) for j in order)
        added.extend((chain, j) for j in order)
    return kept


def _elements(where: str, name: str, want: dict, have: dict, lines: list, keep: bool = False) -> bool:
    """Add and delete elements to take the set from `have` to `want` (with `keep`:
    add only, the others being the traffic's); False if it must be made again."""
    if {k: v for k, v in want.items() if k != "elements"} != {k: v for k, v in have.items() if k != "elements"}:
        return False  # type, flags, auto-merge: the set is made again
    quoted = want["type"] == "ifname"
    gone = [] if keep else sorted(set(have.get("elements", ())) - set(want["elements"]))
    new = sorted(set(want["elements"]) - set(have.get("elements", ())))
    for verb, elements in (("delete", gone), ("add", new)):
        if elements:
            shown = ", ".join(element_text(json.loads(e), quoted, key_only=verb == "delete") for e in elements)
            lines.append(f"{verb} element {where} {name_text(name)} {{ {shown} }}")
    return True
