"""Kind "nft_table": an nftables table netkeel owns, key (ns, family, kernel name).

Spec fields (canonical forms in nft_canon.py, the same for desired and live):
`chain NAME` (its header as JSON), `rules NAME` (canonical rule strings, in
order), `set NAME`, stateful objects (`map NAME`, `counter NAME`, ...), `table
flags` (a live table's, such as dormant), and the information fields `_shown`
(desired: its rules' text in the policy files), `_display` (live: rules not in
the manifest as text), `_handles` (live) and `_nft` (desired: the contents as
nft text). Compared whole: a chain added by hand is a difference. Each namespace's
changed tables change in ONE libnftables transaction (replaced whole, or rule
by rule: nft_delta.py), so traffic never meets a half-applied ruleset.
"""

from __future__ import annotations

import json

from ..core.owners import CHAOS_TABLE_PREFIX, is_managed
from ..core.resource import Resource
from . import netns
from .base import Kind, show, shown
from ..errors import KernelError
from .nft_canon import (canonical_rule, desired_table_spec, object_field, packet_filled, same_but_traffic,
                        shown_desired)
from .nft_delta import delta
from .nft_text import (SET_OPTIONS, Unrenderable, as_sent, flags_to_make, opcodes, rule_text, table_script,
                       without_counter_values)

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
            elif name == "table flags":
                flags = _json_list(value)
                ok = flags is not None and all(isinstance(f, str) for f in flags)
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
        """The live side as reports and a rule-by-rule change need it: its rules'
        handles if the read did not give them (a ruleset followed after our own
        commit: backend.nft_rule_handles, a short dump), and the text of each
        rule that is not in the manifest, rendered from its JSON (nft_text.py)
        or, where that does not render, as `nft list` prints it (a listing)."""
        if action.live is None or action.implicit or not is_managed(action.live.owner):
            return action.live
        _, family, table = action.key
        live = action.live.fields()
        if "_handles" not in live and action.op == "modify":
            found = backend.nft_rule_handles(action.ns, family, table)
            if found is not None:
                live["_handles"] = _aligned(live, found)
        wanted = {(chain, key) for name, rules in (action.desired.fields() if action.desired else {}).items()
                  if name.startswith("rules ") for chain, key in ((name[6:], r) for r in rules)}
        shown, unrendered = {}, False
        for chain, key, handle in live.get("_handles") or ():
            if (chain, key) in wanted:
                continue
            try:
                shown[(chain, key)] = rule_text(key)
            except (Unrenderable, ValueError, KeyError, TypeError):
                unrendered = True
        if unrendered:  # listing text costs time: only for what does not render
            texts = backend.nft_rule_texts(action.ns, family, table)
            shown.update({(chain, key): without_counter_values(texts[handle])
                          for chain, key, handle in live.get("_handles") or ()
                          if handle in texts and (chain, key) not in wanted})
        live["_display"] = tuple(sorted(shown.items()))
        return Resource.make(action.live.kind, action.live.key, owner=action.live.owner, **live)

    def changes(self, desired, live) -> tuple:
        """As any kind's, but for a set the table's rules fill from the packet path:
        what the traffic added is no difference; each declared element, its type,
        flags and options are (nft_canon.packet_filled)."""
        out = super().changes(desired, live)
        if not any(field.startswith("set ") for field, _, _ in out):
            return out
        filled = {f"set {name}" for name in packet_filled(dict(desired.spec))}
        return tuple(c for c in out if not (c[0] in filled and c[2] is not None and same_but_traffic(c[1], c[2])))

    def label(self, resource) -> str:
        return f"nft table {resource.key[1]} {resource.key[2]}"

    def describe(self, resource) -> str:
        f = resource.fields()
        if resource.key[2].startswith(CHAOS_TABLE_PREFIX):  # read by its name alone (kernel/nftables.py)
            return "a fault's table that no active lease holds"
        chains = sum(1 for name in f if name.startswith("chain "))
        rules = sum(len(v) for name, v in f.items() if name.startswith("rules "))
        sets = sum(1 for name in f if name.startswith("set "))
        return f"{chains} chain(s), {rules} rule(s), {sets} set(s)"

    def details(self, action) -> list:
        """Per chain, rule and set element: which rule was added by hand, which
        is missing, which element is new, which policy changed."""
        shown_manifest = shown_desired(action.desired.fields())
        shown_live = dict(action.live.get("_display", ()))
        flags = _json_list(action.live.get("table flags"))
        said = bool(flags) and not action.desired.get("table flags")
        out = []
        filled = packet_filled(dict(action.desired.spec)) if any(
            field.startswith("set ") for field, _, _ in action.changes) else set()
        if said:
            if not any(f.startswith(("chain ", "set ", "map ")) for f in action.live.fields()):
                # Read by its name and flags alone (one with stateful objects, see
                # kernel/nftables.py): what its chains hold is not known, not absent.
                return [("table", "active", f"{', '.join(map(str, flags))} (its chains and sets not read; "
                                            "apply replaces it whole)")]
            out.append(("table", "active", ", ".join(map(str, flags))))
        for field, desired, live in action.changes:
            kind, _, name = field.partition(" ")
            if field == "table flags" and said:
                continue  # said above
            if desired is None or live is None:
                out.append((f"{kind} {name}", ABSENT if desired is None else "present",
                            ABSENT if live is None else "present"))
            elif kind == "chain":
                d, l = json.loads(desired), json.loads(live)
                out += [(f"chain {name} {k}", show(d.get(k)), show(l.get(k))) for k in d if d.get(k) != l.get(k)]
            elif kind == "rules":
                out += _rule_lines(name, desired, live, shown_manifest, shown_live)
            elif kind == "set":
                out += _set_lines(name, json.loads(desired), json.loads(live),
                                  traffic=name in filled)
        return out

    def run(self, backend, phase, actions) -> None:
        """Every action of one namespace in one transaction. As nft text when every
        table renders (nft_text.py: libnftables parses text faster), else JSON;
        changed tables by their changed rules and elements alone (nft_delta.py)
        when nothing in the namespace is created or replaced whole. The backend
        is told what the tables hold once it commits (`tables`)."""
        ns = actions[0].ns
        names = ", ".join(f"{a.op} table {a.key[1]} {a.key[2]}" for a in actions)

        def as_json(shells_made=()) -> str:
            # JSON input, written as text: the rules are JSON text already, and parsing
            # them only to serialise them again cost more than libnftables' own work.
            commands = [command for action in actions
                        for command in table_commands(action, contents_only=action.key in shells_made)]
            return '{"nftables":[' + ",".join(commands) + "]}"

        tables = {a.key: None if a.desired is None else committed(a.desired) for a in actions}
        if any(a.desired is not None and a.desired.get("_nft") is None for a in actions):
            # A table this command did not compile (a snapshot's, which holds what
            # was listed, hand-made parts too): whether what is sent for it makes
            # it again is not known, so the verification lists it back.
            tables = None
        deltas = _deltas(actions)
        # The tables to delete go in the same transaction as the changes rule by
        # rule (they were left out, and the verification believed them gone:
        # found by review); one that does not render as text: all as below.
        deletes = [table_script("delete", a.key[1], a.key[2], ()) for a in actions if a.op == "delete"]
        if deltas is not None and None not in deletes:
            script = "".join(deletes) + "".join(d.script for d in deltas.values())
            # Text nft refuses (a chain named like a keyword) goes as the JSON
            # commands, which make the tables whole: then `json_tables` holds.
            # Echoed rules verify those added; asking libnftables to echo makes it
            # list the whole ruleset first (0.3 s at 10,000 rules), so only then.
            # Rules alone changed (no element, no table deleted): the same
            # commands may go as raw requests (kernel/nft_rule_requests.py).
            rule_changes = None
            if not deletes and all(d.rule_commands is not None for d in deltas.values()):
                rule_changes = [(a.key[1], a.key[2], a.desired.fields(), deltas[a.key].rule_commands)
                                for a in actions if a.key in deltas and deltas[a.key].rule_commands]
            backend.nft_transaction(ns, as_json, f"{names} (changed rules and elements only)", script=script,
                                    tables=lambda echoed: _after_deltas(actions, deltas, echoed),
                                    echo=any(d.added for d in deltas.values()), json_tables=tables,
                                    rule_changes=rule_changes)
            return
        scripts = [table_script(a.op, a.key[1], a.key[2], a.desired.spec if a.desired is not None else ())
                   for a in actions]
        script = "".join(scripts) if all(part is not None for part in scripts) else None
        flagged = [a for a in actions if _needs_text(a)]
        if not flagged:
            backend.nft_transaction(ns, as_json, names, script=script, tables=tables)
            return
        # A snapshot's flagged (dormant) table, or one holding a set that merges
        # its elements or has a comment. libnftables 1.0.6's JSON input drops
        # table flags (and its `add table` clears them), a set's auto-merge and
        # its comment, without a word: as JSON the table would come back
        # active, the set not merging, uncommented. Text carries them; where
        # the text does not render or nft refuses it (a chain named like a
        # keyword), two transactions: the tables made empty and flagged, with
        # those sets empty, as text; then their contents as JSON without any
        # table command (adding a set that exists adds only its elements).
        # Between the two a dormant table is empty, which no packet can tell
        # from a dormant full one.
        if script is not None:
            try:
                backend.nft_transaction(ns, _refuse_json, names, script=script, tables=tables)
                return
            except _FlagsNeedText:
                pass    # the text was refused before anything was committed
        shells = [table_script(a.op, a.key[1], a.key[2], _shell_spec(a.desired)) for a in flagged]
        if None in shells:
            # What only text carries does not render either (a quote or a line break
            # in a set's comment): as JSON, which drops it, and the verification says
            # what was not made (it met None here before, found by review).
            backend.nft_transaction(ns, as_json, names, tables=tables)
            return
        made = {a.key for a in flagged}
        backend.nft_transaction(ns, lambda: _shells_as_json(flagged), f"{names} (flagged tables first, as text)",
                                script="".join(shells))
        backend.nft_transaction(ns, lambda: as_json(made), f"{names} (contents, as JSON)")


def table_head_commands(action) -> list:
    """The JSON commands that delete the table, or make it (again, empty)."""
    _, family, name = action.key
    ident = json.dumps({"family": family, "name": name})
    if action.op == "delete":
        return [f'{{"delete":{{"table":{ident}}}}}']
    flags = flags_to_make(json.loads(action.desired.get("table flags", "[]")))  # a snapshot's dormant table
    created = json.dumps({"family": family, "name": name, **({"flags": flags} if flags else {})})
    if action.op == "modify":
        # add (a no-op if it exists), delete, add: the table is replaced whole,
        # inside the same transaction.
        return [f'{{"add":{{"table":{ident}}}}}', f'{{"delete":{{"table":{ident}}}}}', f'{{"add":{{"table":{created}}}}}']
    return [f'{{"add":{{"table":{created}}}}}']


def _needs_text(action) -> bool:
    """A table that JSON cannot make as it is: flagged (dormant), or holding a
    set that merges its elements or has a comment (all a snapshot's: declared
    tables never do)."""
    return action.desired is not None and bool(_json_list(action.desired.get("table flags"))
                                               or _text_only_sets(action.desired.spec))


def _text_only_sets(spec) -> list:
    """The sets that merge their elements or have a comment (libnftables 1.0.6's
    JSON input drops both)."""
    # The text looked at first: a 10,000-element set's spec is not parsed at every apply.
    return [(field, value) for field, value in spec
            if field.startswith("set ") and ('"auto-merge"' in value or '"comment"' in value)
            and any(json.loads(value).get(key) for key in ("auto-merge", "comment"))]


def _shell_spec(desired) -> tuple:
    """A table's flags and its sets only text makes whole, empty."""
    empty = tuple((field, json.dumps({**json.loads(value), "elements": []}, sort_keys=True))
                  for field, value in _text_only_sets(desired.spec))
    return (("table flags", desired.get("table flags")),) + empty


class _FlagsNeedText(Exception):
    """The text of a transaction with a flagged table, or a set JSON cannot make whole, was
    refused: JSON would lose the flags."""


def _refuse_json():
    raise _FlagsNeedText()


def _shells_as_json(actions) -> str:
    """The flagged tables' shells as JSON (all JSON can say of them: no flags),
    for a backend that takes only JSON."""
    return '{"nftables":[' + ",".join(c for a in actions for c in table_head_commands(a)) + "]}"


def _deltas(actions) -> dict | None:
    """{table key: Delta} if every action is a delete or a change nft_delta can
    make rule by rule, and at least one is such a change; else None."""
    out = {}
    for a in actions:
        if a.op == "delete":
            continue
        if a.op != "modify" or a.live is None:
            return None
        found = delta(a.key[1], a.key[2], a.desired.fields(), a.live.fields())
        if found is None:
            return None
        out[a.key] = found
    return out or None


def _after_deltas(actions, deltas: dict, echoed) -> dict:
    """What the tables hold after a rule-by-rule change, with the handles the
    kernel gave: each added rule, as libnftables echoed it back from the kernel,
    must be the desired rule (KernelError otherwise: the change is undone)."""
    out = {a.key: None for a in actions if a.op == "delete"}
    echoed = list(echoed or ())
    for a in actions:
        if a.key not in deltas:
            continue
        d, want = deltas[a.key], a.desired.fields()
        handles = {chain: dict(kept) for chain, kept in d.kept.items()}
        for chain, j in d.added:
            if not echoed:
                raise KernelError(f"verify nft table {a.key[2]} in {a.ns}",
                                  "libnftables echoed fewer rules than were added")
            got_chain, handle, rule = echoed.pop(0)
            expected = want[f"rules {chain}"][j]
            if got_chain != chain or canonical_rule(rule.get("expr", []), rule.get("comment"), a.key[1]) != expected:
                raise KernelError(f"verify nft table {a.key[2]} in {a.ns}",
                                  f"the kernel took rule #{j + 1} of chain {chain} otherwise than sent: "
                                  f"{json.dumps(rule.get('expr'))} for {expected}")
            handles.setdefault(chain, {})[j] = handle
        ordered = tuple((chain, rule, handles[chain][j]) for chain in sorted(handles)
                        for j, rule in enumerate(want.get(f"rules {chain}", ())))
        out[a.key] = Resource(a.kind, a.key, tuple(sorted(dict(committed(a.desired).spec, _handles=ordered).items())),
                              a.desired.owner)
    return out


def _aligned(live: dict, found: list):
    """`_handles` ((chain, rule, handle), ...) from the handles a dump found in
    order, if they match the rules read chain by chain; else None."""
    per_chain: dict = {}
    for chain, handle in found:
        per_chain.setdefault(chain, []).append(handle)
    out = []
    for name, rules in live.items():
        if name.startswith("rules "):
            handles = per_chain.pop(name[6:], [])
            if len(handles) != len(rules):
                return None
            out.extend((name[6:], rule, handle) for rule, handle in zip(rules, handles))
    return tuple(out) if not per_chain else None


def committed(desired: Resource) -> Resource:
    """The table a transaction that created or replaced it from `desired` leaves,
    as the reader would read it back: the compared fields, none of the desired
    side's information fields (the rules' handles are the kernel's to give)."""
    return Resource(desired.kind, desired.key, tuple((k, v) for k, v in desired.spec if not k.startswith("_")),
                    desired.owner)


def _json_list(text):
    """The list `text` holds as JSON, or None."""
    return _json_of(text, list)


def _json_object(text):
    """The dict `text` holds as JSON, or None."""
    return _json_of(text, dict)


def _json_of(text, kind):
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


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
    for op, a1, a2, b1, b2 in opcodes(desired, live):
        if op in ("delete", "replace"):
            out += [(f"rule missing from {chain} (#{i + 1})",
                     shown_desired.get((chain, desired[i])) or _rendered(desired[i]), ABSENT) for i in range(a1, a2)]
        if op in ("insert", "replace"):
            # A rule the manifest has once, found once more: shown as the manifest writes it.
            out += [(f"rule not in the manifest, in {chain} (#{i + 1})", ABSENT,
                     shown_live.get((chain, live[i])) or shown_desired.get((chain, live[i])) or _rendered(live[i]))
                    for i in range(b1, b2)]
    return out


def _rendered(key: str) -> str:
    """A rule no display text was given for (a snapshot's, being restored) as
    nft text where it renders, else as its JSON."""
    try:
        return rule_text(key)
    except (Unrenderable, ValueError, KeyError, TypeError):
        return key


def _set_lines(name, desired: dict, live: dict, traffic: bool = False) -> list:
    """A set's differences; with `traffic` (the packet path fills it), its live
    elements beyond the declared ones are the traffic's: not shown."""
    out = [(f"set {name} {k}", show(desired.get(k)), show(live.get(k))) for k in ("type", "flags", *SET_OPTIONS)
           if desired.get(k) != live.get(k)]  # flags are lists: show joins them
    if bool(desired.get("auto-merge")) != bool(live.get("auto-merge")):  # another tool made it merge its elements
        out.append((f"set {name} auto-merge", "on" if desired.get("auto-merge") else "off",
                    "on" if live.get("auto-merge") else "off"))
    want, have = set(desired["elements"]), set(live.get("elements", []))
    out += [(f"set {name} element", element_text(e), ABSENT) for e in sorted(want - have)]
    out += [(f"set {name} element", ABSENT, element_text(e)) for e in sorted(have - want) if not traffic]
    return out


def element_text(element: str) -> str:
    """A set element (JSON text) as nft writes it: 10.0.0.0/8, 1000-2000, 22,
    10.0.1.0/24 timeout 600s comment "lab"."""
    value = json.loads(element)
    if isinstance(value, dict) and isinstance(value.get("elem"), dict):
        body = value["elem"]
        own = [f"timeout {body['timeout']}s"] if "timeout" in body else []
        own += [f"comment {json.dumps(body['comment'], ensure_ascii=False)}"] if "comment" in body else []
        return " ".join([element_text(json.dumps(body.get("val")))] + own)
    if isinstance(value, dict) and "prefix" in value:
        return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    if isinstance(value, dict) and "range" in value:
        return "-".join(str(v) for v in value["range"])
    return str(value)


def table_commands(action, contents_only: bool = False) -> list:
    """The libnftables JSON commands (as JSON text) that take one table from live
    to desired; with `contents_only`, its sets, chains and rules alone (the
    table exists, empty: see NftTable.run)."""
    _, family, name = action.key
    if action.op == "delete":
        return table_head_commands(action)
    commands = [] if contents_only else table_head_commands(action)
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
            if spec.get("auto-merge"):
                body["auto-merge"] = True
            body.update((option, spec[option]) for option in SET_OPTIONS if option in spec)
            sets.append(json.dumps({"add": {"set": body}}))
        elif kind == "chain":
            header = {k: v for k, v in json.loads(value).items() if v is not None}
            chains.append(json.dumps({"add": {"chain": {**where, "name": item, **header}}}))
        elif kind == "rules":
            # Each rule is canonical JSON text {"comment":..,"expr":[..]}: splice it in.
            head = json.dumps({**where, "chain": item})[:-1] + ","
            rules.extend(f'{{"add":{{"rule":{head}{as_sent(rule)[1:]}}}}}' for rule in value)
    return commands + sets + chains + rules


KIND = NftTable()


def proof_jobs(plan, desired) -> list:
    """[(namespace, interface names, create actions)]: the namespaces whose
    tables the plan's apply will make whole by a text transaction (not rule by
    rule: libnftables' echo verifies those), each with the interfaces the
    topology gives it and its tables to make, for a proof in a throwaway
    namespace (kernel/nft_proof.py); a content already in an earlier job is
    left out. A table that carries flags, has no text, or can change by itself
    would not be followed after its commit anyway."""
    from ..core.action import CREATE, Action
    from .nft_canon import changes_by_itself

    by_ns: dict = {}
    for action in plan.requests():
        if action.kind == NftTable.name:
            by_ns.setdefault(action.ns, []).append(action)
    jobs, seen = [], set()
    for ns, actions in sorted(by_ns.items()):
        made = [a.desired for a in actions if a.desired is not None]
        if not made or _deltas(actions) is not None:
            continue
        if any(t.get("_nft") is None or t.get("table flags") or changes_by_itself(t.fields()) for t in made):
            continue
        # A proof is of content, whatever the namespace (the same policy on a
        # hundred nodes is proven once).
        made = [t for t in made if committed(t).spec not in seen]
        seen.update(committed(t).spec for t in made)
        if made:
            devices = sorted({r.key[1] for r in desired if r.kind == "link" and r.key[0] == ns and r.key[1] != "lo"})
            jobs.append((ns, devices, [Action(CREATE, desired=t) for t in made]))
    return jobs


def namespaces_read_as_json(resources) -> set:
    """The namespaces where a desired table of ours is read as JSON, never by
    its text listing (it has no text to send: nft_text.Unrenderable)."""
    return {r.key[0] for r in resources if r.kind == NftTable.name and r.get("_nft") is None}
