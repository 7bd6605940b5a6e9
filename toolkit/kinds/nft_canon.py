"""Canonical forms of nftables objects, the same for desired and live.

Desired tables come from policy files (rules compiled to JSON), live ones from
`nft list ruleset` as JSON. Both pass through the functions here, which remove
what varies without meaning (handles, counter values, element timeouts) and
spell out what the kernel leaves implicit (limit burst, reject code, log level),
so that equal rulesets give equal resources.

An nft_table resource spec has, per chain, a `chain NAME` field (its header as
JSON: type, hook, priority, policy) and a `rules NAME` field (a tuple of
canonical rule strings, in order); per named set a `set NAME` field; and an
informational `_shown` field: per chain, each rule's text in the policy file and
where it is, in the rules' order (shown_desired reads it by rule), and
`_nft`: the contents as nft text (nft_text.py), which an apply sends.
"""

from __future__ import annotations

import ipaddress
import json

from ..core.memo import Remembered
from ..model.defaults import LIMIT_BURST, LOG_LEVEL, REJECT_CODE, REJECT_TYPE
from .nft_text import ELEMENT_OPTIONS, PROCESS_BOUND_FLAGS, SET_OPTIONS, contents

REJECT_DEFAULT = {family: {"type": kind, "expr": REJECT_CODE} for family, kind in REJECT_TYPE.items()}


_SCALARS = (str, int, float, bool, type(None))
# Keys whose values canonical_expr rewrites; any other key with a scalar value is
# copied as it is (most of a listing: a rule's matches), without a call per value.
_SPECIAL = frozenset({"counter", "limit", "log", "quota", "last", "reject", "set", "prefix"})


def canonical_expr(node, family: str):
    """One JSON expression (or statement), canonicalised recursively."""
    if isinstance(node, list):
        return [canonical_expr(item, family) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if type(value) in _SCALARS and key not in _SPECIAL:
            out[key] = value
            continue
        if key == "counter" and (value is None or isinstance(value, dict)):
            value = {"packets": 0, "bytes": 0}  # an anonymous counter: its values are not content
        elif key == "limit" and isinstance(value, dict):
            value = dict(value)
            if value.get("rate_unit", "packets") == "packets":
                value.setdefault("burst", LIMIT_BURST)
                value.pop("rate_unit", None)
        elif key == "log":
            value = {k: v for k, v in (value or {}).items() if not (k == "level" and v == LOG_LEVEL)} or None
        elif key in ("quota", "last") and isinstance(value, dict) and ("used" in value or "used_unit" in value):
            # Traffic, not content: what a quota used (and the unit it is printed in, there once it used any).
            value = {k: canonical_expr(v, family) for k, v in value.items() if k not in ("used", "used_unit")}
        elif key == "reject" and value is None:
            value = REJECT_DEFAULT.get(family)
        elif key == "set" and isinstance(value, list):
            value = sorted((canonical_expr(v, family) for v in value), key=_sort_key)
        elif key == "prefix" and isinstance(value, dict) and _is_host(value):
            return value["addr"]
        else:
            value = canonical_expr(value, family)
        out[key] = value
    return out


def _is_host(prefix: dict) -> bool:
    try:
        return prefix["len"] == ipaddress.ip_address(prefix["addr"]).max_prefixlen
    except (KeyError, ValueError, TypeError):
        return False


def _sort_key(value) -> str:
    return json.dumps(value, sort_keys=True)


def canonical_rule(expr: list, comment: str | None, family: str) -> str:
    body = {"expr": canonical_expr(expr, family)}
    if comment:
        body["comment"] = comment
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


# A declared rule's canonical form, by (expression JSON, comment, family), and a
# declared set's spec, by (type, flags, elements as JSON texts): pure, so
# remembered for the process, and filled from the last read of a policy file
# (state/policy_loads.py) so that compiling a table with one rule or element
# edited costs that item's work (a 10,000-element set costs as much as 10,000
# rules).
declared_rule_key = Remembered(lambda expr, comment, family: canonical_rule(json.loads(expr), comment, family),
                               500_000)
declared_set_spec = Remembered(lambda set_type, flags, elements: _spec_text(
    set_type, flags, [c for c in map(canonical_element, elements) if c]), 1000)
# One declared element's canonical form (JSON text; "" for one going now), by
# its declared JSON text: a set with one element edited is assembled from the
# others' (state/policy_loads.py keeps them with the set), not made again.
canonical_element = Remembered(lambda element: "" if _going_now(value := json.loads(element)) else _element(value),
                               500_000)


def chain_header(type_, hook, priority, policy) -> str:
    return json.dumps({"type": type_, "hook": hook, "prio": priority, "policy": policy}, sort_keys=True)


# The size the kernel gives a set that a rule adds elements to (nft_dynset) when
# it has none: listed so, never declared. One another tool gave exactly this is
# not told from it (a cap no declared set comes near).
DYNAMIC_SET_SIZE = 65535


def set_spec(set_type, flags, elements, auto_merge: bool = False, options=None) -> str:
    """A named set; `elements` as JSON values (decoded), as listed or declared.
    `auto_merge`: the kernel merges its adjacent and overlapping intervals (a
    set another tool made so; declared sets never are), which must show as a
    difference, since its elements are then not the ones sent. `options`: the
    listed body, whose SET_OPTIONS are kept as listed."""
    return _spec_text(set_type, flags, [_element(e) for e in elements or () if not _going_now(e)], auto_merge,
                      options)


def _spec_text(set_type, flags, elements: list, auto_merge: bool = False, options=None) -> str:
    """set_spec() of the elements' canonical forms (_element's)."""
    if isinstance(flags, str):
        flags = [flags]  # newer nft lists a single flag as a plain string
    spec = {"type": set_type, "flags": sorted(flags or ()), "elements": sorted(elements)}
    if auto_merge:
        spec["auto-merge"] = True
    for option in SET_OPTIONS:
        if options and options.get(option) is not None:
            spec[option] = options[option]
    if spec.get("size") == DYNAMIC_SET_SIZE:
        del spec["size"]  # the kernel's, for a set a rule adds to (`update @s`) given none
    return json.dumps(spec, sort_keys=True)


_JSON_STRING = json.encoder.encode_basestring_ascii  # (what json.dumps gives a str, ensure_ascii)


def _going_now(value) -> bool:
    """An element whose own timeout is under a second: libnftables lists it as
    `"timeout": 0` (whole seconds), which sent back means no timeout at all, a
    permanent element (found by review). It is gone within the second: neither
    drift nor something to give back."""
    return isinstance(value, dict) and isinstance(value.get("elem"), dict) and value["elem"].get("timeout") == 0


def _element(value) -> str:
    if type(value) is str:  # most elements (an address, a name): json.dumps' own answer, at C speed
        return _JSON_STRING(value)
    if isinstance(value, dict) and "elem" in value:
        body = value["elem"]
        # Its own timeout (it will go) and comment are the element's, as listed
        # (found by review: a rollback gave back for good elements due to expire);
        # the time left (`expires`) is not.
        own = {key: body[key] for key in ELEMENT_OPTIONS if body.get(key) is not None}
        value = body.get("val")
        if own:
            return json.dumps({"elem": {"val": canonical_expr(value, ""), **own}}, sort_keys=True)
    return json.dumps(canonical_expr(value, ""), sort_keys=True)


def desired_table_spec(table) -> dict:
    """The spec fields of a declared table, a model.firewall.Table (native rules
    must be resolved: rule.expr set). The model is not imported here: reading
    the kernel needs none of it."""
    fields, shown = {}, []
    for chain in table.chains:
        fields[f"chain {chain.name}"] = chain_header(chain.type, chain.hook, chain.priority, chain.policy)
        fields[f"rules {chain.name}"] = tuple(declared_rule_key(rule.expr, rule.comment, table.family)
                                              for rule in chain.rules)
        # By position, not by rule: a rule's canonical form is most of a large
        # table's bytes, and the compile cache would hold each twice.
        shown.append((chain.name, tuple(f"{rule.text}  ({rule.source})" for rule in chain.rules)))
    for named in table.sets:
        fields[f"set {named.name}"] = declared_set_spec(named.type, named.flags, named.elements)
    fields["_shown"] = tuple(sorted(shown))
    # Rendered once here, kept with the compiled topology: an apply sends it as is
    # (a set the packet path fills, with the elements declared to begin with).
    fields["_nft"] = contents(table.family, table.kernel_name, sorted(fields.items()))
    return fields


def packet_filled(fields: dict) -> set:
    """The names of the sets a table's own rules add to or update from the packet
    path (`update @seen { ip saddr timeout 1h }`): their elements beyond the
    declared ones are the traffic's, not the manifest's (a drift check found
    every address that had sent a packet, and each apply deleted them). See
    same_but_traffic()."""
    filled = set()
    for name, value in fields.items():
        if name.startswith("rules ") and not isinstance(value, str) and \
                any('"op":"add"' in r or '"op":"update"' in r for r in value):
            for rule in value:
                if '"op":"add"' in rule or '"op":"update"' in rule:
                    filled.update(_dynset_targets(json.loads(rule)))
    return filled


def same_but_traffic(desired: str, live: str) -> bool:
    """Whether a live set (spec text) is the desired one but for elements the
    traffic added: the same type, flags and options, every declared element."""
    try:
        want, have = json.loads(desired), json.loads(live)
    except (TypeError, ValueError):
        return False
    if not (isinstance(want, dict) and isinstance(have, dict)):
        return False
    rest = lambda spec: {k: v for k, v in spec.items() if k != "elements"}  # noqa: E731
    return rest(want) == rest(have) and set(want.get("elements") or ()) <= set(have.get("elements") or ())


def _dynset_targets(node) -> set:
    """Names of the sets a rule's statements add to or update (nft's dynset)."""
    found = set()
    if isinstance(node, dict):
        body = node.get("set")
        if isinstance(body, dict) and body.get("op") in ("add", "update") and isinstance(body.get("set"), str):
            found.add(body["set"].removeprefix("@"))
        for value in node.values():
            found |= _dynset_targets(value)
    elif isinstance(node, list):
        for value in node:
            found |= _dynset_targets(value)
    return found


def shown_desired(fields: dict) -> dict:
    """{(chain, canonical rule): the policy's text of it and where it is} of a
    desired table's fields (its `_shown`)."""
    out = {}
    for chain, texts in fields.get("_shown") or ():
        out.update(zip(((chain, key) for key in fields.get(f"rules {chain}", ())), texts))
    return out


# Stateful objects a table may hold besides chains and sets. Policies do not
# declare them, but one added by hand must show up as drift, and a snapshot must
# hold it whole so that rollback can bring it (and the rules using it) back.
OBJECT_KINDS = ("map", "counter", "quota", "limit", "flowtable", "ct helper", "ct timeout",
                "ct expectation", "secmark", "synproxy")
# What identifies an object or changes with traffic, not content: a counter's
# packets and bytes, a quota's `used` (its `bytes` is its limit: content).
_IDENTITY = ("handle", "family", "table", "name")
_STATE = {"counter": ("packets", "bytes"), "quota": ("used",)}


def changes_by_itself(fields: dict) -> bool:
    """Whether a table's content can change without a commit: a set with timeouts
    (elements expire) or one the packet path adds to (`update @set`, a meter),
    or a table bound to a process (PROCESS_BOUND_FLAGS). Such a table is listed
    at every read, never taken as unchanged from its ruleset generation
    (state/rulesets.py). Errs on the side of True."""
    flags = fields.get("table flags")
    if isinstance(flags, str) and any(f'"{flag}"' in flags for flag in PROCESS_BOUND_FLAGS):
        return True
    for name, value in fields.items():
        if name.startswith(("set ", "map ")) and isinstance(value, str) and \
                ('"timeout"' in value or '"dynamic"' in value or '"elem":' in value and '"timeout":' in value):
            return True
        if name.startswith("rules ") and any('"op":"add"' in r or '"op":"update"' in r or '"op":"delete"' in r
                                             or '"meter"' in r for r in value):
            return True
    return False


def object_field(field: str):
    """(kind, name) when a spec field holds a stateful object, else None."""
    for kind in OBJECT_KINDS:
        if field.startswith(kind + " "):
            return kind, field[len(kind) + 1:]
    return None


def live_table_specs(listing: list, prefix: str) -> tuple:
    """From `list ruleset` JSON items: ({(family, name): spec fields} of tables whose
    name starts with `prefix`, [(family, name) of every other table])."""
    owned, foreign = {}, []
    for item in listing:
        if len(item) != 1:
            continue
        (kind, body), = item.items()
        if kind not in ("table", "chain", "rule", "set") + OBJECT_KINDS:
            continue
        family = body.get("family")
        table = body.get("name") if kind == "table" else body.get("table")
        if not table.startswith(prefix):
            if kind == "table":
                foreign.append((family, table))
            continue
        fields = owned.setdefault((family, table), {})
        if kind == "table":
            flags = body.get("flags")
            if flags:  # a dormant table: off, whatever its chains say
                fields["table flags"] = json.dumps(sorted([flags] if isinstance(flags, str) else flags))
        elif kind == "chain":
            fields[f"chain {body['name']}"] = chain_header(body.get("type"), body.get("hook"),
                                                           body.get("prio"), body.get("policy"))
            fields.setdefault(f"rules {body['name']}", [])
        elif kind == "rule":
            key = canonical_rule(body.get("expr", []), body.get("comment"), family)
            fields.setdefault(f"rules {body['chain']}", []).append(key)
            fields.setdefault("_handles", []).append((body["chain"], key, body.get("handle")))
        elif kind == "set":
            fields[f"set {body['name']}"] = set_spec(body.get("type"), body.get("flags"), body.get("elem"),
                                                     body.get("auto-merge") is True, body)
        elif kind in OBJECT_KINDS:
            content = {k: v for k, v in body.items() if k not in _IDENTITY and k not in _STATE.get(kind, ())}
            fields[f"{kind} {body['name']}"] = json.dumps(canonical_expr(content, family), sort_keys=True)
    for fields in owned.values():  # specs hold tuples: resources are hashable
        for name, value in fields.items():
            if isinstance(value, list):
                fields[name] = tuple(value)
    return owned, foreign
