"""Kind "nft_table": an nftables table netkeel owns, key (ns, family, kernel name).

Spec fields (canonical forms in nft_canon.py, the same for desired and live):
`chain NAME` (its header as JSON), `rules NAME` (canonical rule strings, in
order), `set NAME`, stateful objects (`map NAME`, `counter NAME`, ...), and the
information fields `_display` (rules as text) and `_handles`. Compared whole:
a chain added by hand is a difference. Each namespace's changed tables are
replaced in ONE libnftables transaction, so traffic never meets a half-applied
ruleset.
"""

from __future__ import annotations

import difflib
import json

from ..core.owners import is_managed
from ..core.resource import Resource
from . import netns
from .base import Kind, show, shown
from .nft_canon import desired_table_spec, object_field
from .nft_text import table_script

ABSENT = "(absent)"


class NftTable(Kind):
    name = "nft_table"
    closed = True
    forward_phases = ("nft",)
    delete_phase = "nft"
    batched = True
    foreign_name = "nft_foreign"
    key_arity = 3

    def check_spec(self, spec) -> str:
        """Every field one table_commands() and details() can use: `chain NAME` and
        stateful objects are JSON objects as text, `rules NAME` a list of those,
        `set NAME` a JSON object with its type, flags and elements (JSON texts)."""
        if problem := super().check_spec(spec):
            return problem
        for name, value in spec.items():
            kind, _, item = name.partition(" ")
            if name == "reason":
                ok = isinstance(value, str)
            elif not item or not (kind in ("chain", "rules", "set") or object_field(name)):
                return f"{shown(name)} is not a field of a table (chain, rules, set or a stateful object NAME)"
            elif kind == "rules":
                ok = isinstance(value, list) and all(_json_object(rule) is not None and rule.startswith("{")
                                                     for rule in value)
            elif kind == "set":
                ok = _is_set(_json_object(value))
            else:
                ok = _json_object(value) is not None
            if not ok:
                return f"{name} is not as netkeel writes it: {shown(value)}"
        return ""

    def compile(self, topology, prefix):
        return [Resource.make(self.name, (netns.namespace_name(prefix, node.name), table.family, table.kernel_name),
                              **desired_table_spec(table))
                for node in topology.nodes for table in node.tables]

    def explain(self, backend, action):
        """The live side with its rules as `nft list` prints them (fetched only
        for tables that differ: listing text costs time)."""
        if action.live is None or action.implicit or not is_managed(action.live.owner):
            return action.live
        _, family, table = action.key
        texts = backend.nft_rule_texts(action.ns, family, table)
        shown = tuple(sorted({((chain, key), texts.get(handle, key))
                              for chain, key, handle in action.live.get("_handles", ())}))
        return action.live.with_fields(_display=shown)

    def label(self, resource) -> str:
        return f"nft table {resource.key[1]} {resource.key[2]}"

    def describe(self, resource) -> str:
        f = resource.fields()
        chains = sum(1 for name in f if name.startswith("chain "))
        rules = sum(len(v) for name, v in f.items() if name.startswith("rules "))
        sets = sum(1 for name in f if name.startswith("set "))
        return f"{chains} chain(s), {rules} rule(s), {sets} set(s)"

    def details(self, action) -> list:
        """Per chain, rule and set element: which rule was added by hand, which
        is missing, which element is new, which policy changed."""
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
                out += [(f"chain {name} {k}", show(d.get(k)), show(l.get(k))) for k in d if d.get(k) != l.get(k)]
            elif kind == "rules":
                out += _rule_lines(name, desired, live, shown_desired, shown_live)
            elif kind == "set":
                out += _set_lines(name, json.loads(desired), json.loads(live))
        return out

    def run(self, backend, phase, actions) -> None:
        """Every action of one namespace in one transaction: nft text when every
        table renders (nft_text.py: libnftables parses text faster), else JSON.
        `tables` tells the backend what the changed tables hold once it commits."""
        ns = actions[0].ns
        scripts = [table_script(a.op, a.key[1], a.key[2], a.desired.spec if a.desired is not None else ())
                   for a in actions]
        script = "".join(scripts) if all(part is not None for part in scripts) else None
        names = ", ".join(f"{a.op} table {a.key[1]} {a.key[2]}" for a in actions)

        def as_json() -> str:
            # JSON input, written as text: the rules are JSON text already, and parsing
            # them only to serialise them again cost more than libnftables' own work.
            commands = [command for action in actions for command in table_commands(action)]
            return '{"nftables":[' + ",".join(commands) + "]}"

        tables = {a.key: None if a.desired is None else committed(a.desired) for a in actions}
        backend.nft_transaction(ns, as_json, names, script=script, tables=tables)


def committed(desired: Resource) -> Resource:
    """The table a transaction that created or replaced it from `desired` leaves,
    as the reader would read it back: the compared fields, none of the desired
    side's information fields (the rules' handles are the kernel's to give)."""
    return Resource(desired.kind, desired.key, tuple((k, v) for k, v in desired.spec if not k.startswith("_")),
                    desired.owner)


def _json_object(text):
    """The dict `text` holds as JSON, or None."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _is_set(spec) -> bool:
    def texts(value) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    if spec is None or not texts(spec.get("flags")) or not texts(spec.get("elements")):
        return False
    if not (isinstance(spec.get("type"), str) or texts(spec.get("type"))):
        return False
    try:
        [json.loads(e) for e in spec["elements"]]
    except ValueError:
        return False
    return True


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
    out = [(f"set {name} {k}", show(desired[k]), show(live.get(k))) for k in ("type", "flags")
           if desired[k] != live.get(k)]  # flags are lists: show joins them
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


def table_commands(action) -> list:
    """The libnftables JSON commands (as JSON text) that take one table from live
    to desired."""
    _, family, name = action.key
    ident = json.dumps({"family": family, "name": name})
    if action.op == "delete":
        return [f'{{"delete":{{"table":{ident}}}}}']
    commands = [f'{{"add":{{"table":{ident}}}}}']
    if action.op == "modify":
        # add (a no-op if it exists), delete, add: the table is replaced whole,
        # inside the same transaction.
        commands += [f'{{"delete":{{"table":{ident}}}}}', f'{{"add":{{"table":{ident}}}}}']
    where = {"family": family, "table": name}
    sets, chains, rules = [], [], []
    for field, value in action.desired.spec:
        kind, _, item = field.partition(" ")
        if stateful := object_field(field):  # maps, named counters, ...: before the rules using them
            sets.append(json.dumps({"add": {stateful[0]: {**where, "name": stateful[1], **json.loads(value)}}}))
        elif kind == "set":
            spec = json.loads(value)
            body = {**where, "name": item, "type": spec["type"]}
            if spec["flags"]:
                body["flags"] = spec["flags"]
            if spec["elements"]:
                body["elem"] = [json.loads(e) for e in spec["elements"]]
            sets.append(json.dumps({"add": {"set": body}}))
        elif kind == "chain":
            header = {k: v for k, v in json.loads(value).items() if v is not None}
            chains.append(json.dumps({"add": {"chain": {**where, "name": item, **header}}}))
        elif kind == "rules":
            # Each rule is canonical JSON text {"comment":..,"expr":[..]}: splice it in.
            head = json.dumps({**where, "chain": item})[:-1] + ","
            rules.extend(f'{{"add":{{"rule":{head}{rule[1:]}}}}}' for rule in value)
    return commands + sets + chains + rules


KIND = NftTable()
