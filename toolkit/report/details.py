"""Readable details of a change, shared by the human and JSON views.

Most changes are a field with a desired and a live value. A firewall table's
change is spelled out per chain, rule and set element: which rule was added by
hand, which is missing, which element is new, which policy changed.
"""

from __future__ import annotations

import difflib
import json

ABSENT = "(absent)"


def details(action) -> list:
    """[(what, desired, live)] for a modify action."""
    if action.kind != "nft_table":
        return [(field, _show(d), _show(l)) for field, d, l in action.changes]
    shown_desired = dict(action.desired.get("_display", ()))
    shown_live = dict(action.live.get("_display", ()))
    out = []
    for field, desired, live in action.changes:
        kind, _, name = field.partition(" ")
        if desired is None or live is None:
            out.append((f"{kind} {name}", ABSENT if desired is None else "present",
                        ABSENT if live is None else "present"))
        elif kind == "chain":
            d, l = json.loads(desired), json.loads(live)
            out += [(f"chain {name} {k}", _show(d.get(k)), _show(l.get(k))) for k in d if d.get(k) != l.get(k)]
        elif kind == "rules":
            out += _rule_lines(name, desired, live, shown_desired, shown_live)
        elif kind == "set":
            out += _set_lines(name, json.loads(desired), json.loads(live))
    return out


def _rule_lines(chain, desired, live, shown_desired, shown_live) -> list:
    out = []
    matcher = difflib.SequenceMatcher(a=desired, b=live, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op in ("delete", "replace"):
            out += [(f"rule missing from {chain} (#{i + 1})",
                     shown_desired.get((chain, desired[i]), desired[i]), ABSENT) for i in range(a1, a2)]
        if op in ("insert", "replace"):
            out += [(f"rule not in the manifest, in {chain} (#{i + 1})", ABSENT,
                     shown_live.get((chain, live[i]), live[i])) for i in range(b1, b2)]
    return out


def _set_lines(name, desired: dict, live: dict) -> list:
    out = [(f"set {name} {k}", _show(desired[k]), _show(live.get(k))) for k in ("type", "flags")
           if desired[k] != live.get(k)]  # flags are lists: _show joins them
    want, have = set(desired["elements"]), set(live.get("elements", []))
    out += [(f"set {name} element", element_text(e), ABSENT) for e in sorted(want - have)]
    out += [(f"set {name} element", ABSENT, element_text(e)) for e in sorted(have - want)]
    return out


def element_text(element: str) -> str:
    """A set element (JSON text) as nft writes it: 10.0.0.0/8, 1000-2000, 22."""
    value = json.loads(element)
    if isinstance(value, dict) and "prefix" in value:
        return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    if isinstance(value, dict) and "range" in value:
        return "-".join(str(v) for v in value["range"])
    return str(value)


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "(none)"
    return "(none)" if value in (None, "") else str(value)
