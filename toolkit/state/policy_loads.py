"""The last good read of each policy file, for reading an edit of it item by item.

The compile cache (compiled.py) answers for files that did not change at all.
When one did, the topology is loaded again; this gives its policy reader
(manifest/policy_edit.PolicyReader) the policy files it read before: a file
whose text is the same is not read again, and a file edited within one run of
one chain's rules or one set's elements has those items read alone (anything
else is read whole). With the tables come the canonical forms and nft text of
their rules and sets (kinds/nft_canon.declared_rule_key and declared_set_spec,
kinds/nft_text.sent_text and set_text) and of each set's elements
(nft_canon.canonical_element, nft_text.element_text_of), so compiling a table
with one rule or one element edited costs that one's work.

An entry is kept per policy file path (with netkeel's code fingerprint: an
entry of other code is a miss), written after a compile that succeeded, in
netkeel's own state directory (0700, checked by statedir.py), sealed by its
SHA-256, as the compile cache's are. Reading one checks the seal and its
shape; anything unexpected is a miss, and the file is read whole.
"""

from __future__ import annotations

import hashlib
import json
from itertools import repeat

from ..kinds import nft_canon, nft_text
from ..model.firewall import Chain, NamedSet, PolicyLoad, Rule, Table
from .compiled import fingerprint
from .statedir import plain_json_bytes

DIRECTORY = "cache/policies"
FORMAT = 7  # 6: each set's elements' canonical forms and texts; 7: spans by chain and set
KEEP = 64  # entries; the oldest beyond this are removed on writing


class PolicyLoads:
    """The kept reads of policy files, for manifest.policy_edit.PolicyReader:
    `kept(path)` (a PolicyLoad, or None), `used(path)` (its rules' forms are
    then remembered for the compile), `keep({path: PolicyLoad})`."""

    def __init__(self, state):
        self.state = state
        self._forms: dict = {}  # path -> the kept rules' forms, remembered if used

    def kept(self, path: str):
        try:
            data = self.state.read_sealed_json(_entry_name(path))  # a flipped bit would be compiled: sealed
            if data is None:
                return None
            load, self._forms[path] = _decoded(path, data)
            return load
        except Exception:  # noqa: BLE001 - unreadable, unsafe, malformed: the file is read whole
            return None

    def used(self, path: str) -> None:
        """A kept read stands for the file: the compile of its tables finds its
        rules' forms (an unused entry teaches nothing)."""
        forms = self._forms.get(path, ())
        rules = [form for form in forms if form[0] is not None]
        if rules:  # (10,000 of them: remembered at once)
            exprs, comments, families, keys, sents = zip(*rules)
            nft_canon.declared_rule_key.remember_all(keys, zip(exprs, comments, families))
            nft_text.sent_text.remember_all(sents, zip(keys))
        for _, set_type, flags, elements, spec, text, canonical, texts in (f for f in forms if f[0] is None):
            nft_canon.declared_set_spec.remember(spec, set_type, flags, elements)
            nft_text.set_text.remember(text, spec)
            if canonical is not None:  # each element's: an edit of one makes the set from the rest's
                canonical = [e if c is None else c for c, e in zip(canonical, elements)]
                nft_canon.canonical_element.remember_all(canonical, zip(elements))
                texts = [c[1:-1] if t is None else t for c, t in zip(canonical, texts)]
                nft_text.element_text_of.remember_all(texts, zip(canonical, repeat(nft_text.quoted_type(set_type))))

    def keep(self, loads: dict) -> None:
        """Write `loads` ({path: PolicyLoad}, after the compile succeeded). Never
        raises: a cache that cannot be written is only slower next time."""
        if not loads or not self.state.root.is_dir():
            return
        for path, load in loads.items():
            try:
                # Text, integers and None only (what _decoded checks each field for): written fast.
                self.state.write_sealed(_entry_name(path), [plain_json_bytes(_encoded(path, load))], durable=False)
            except Exception:  # noqa: BLE001
                pass
        try:
            self.state.keep_newest(DIRECTORY, KEEP)
        except Exception:  # noqa: BLE001
            pass


def _entry_name(path: str) -> str:
    """One entry per file: another netkeel's (its code fingerprint inside) is a
    miss, and overwritten by the next read kept."""
    key = json.dumps([FORMAT, str(path)])
    return f"{DIRECTORY}/{hashlib.sha256(key.encode()).hexdigest()[:40]}.json"


def _encoded(path: str, load) -> dict:
    tables = []
    for table in load.tables:
        chains = []
        for chain in table.chains:
            rules = []
            for r in chain.rules:
                key = nft_canon.declared_rule_key.known(r.expr, r.comment, table.family) if r.expr is not None else None
                sent = nft_text.sent_text.known(key) if key is not None else None
                rules.append([r.expr, r.native, r.comment, r.source, r.text, r.path, key, sent])
            chains.append([chain.name, chain.type, chain.hook, chain.priority, chain.policy, rules])
        sets = []
        for named in table.sets:
            spec = nft_canon.declared_set_spec.known(named.type, named.flags, named.elements)
            text = nft_text.set_text.known(spec) if spec is not None else None
            canonical, texts = _element_forms(named)
            sets.append([named.name, named.type, list(named.flags), list(named.elements), spec, text, canonical,
                         texts])
        tables.append([table.name, table.family, table.source, chains, sets])
    return {"format": FORMAT, "code": fingerprint(), "path": str(path), "text": load.text, "tables": tables,
            "spans": _spans_kept(load.spans), "repeated": sorted(list(r) for r in load.repeated)}


def _decoded(path: str, data) -> tuple:
    """(the PolicyLoad an entry holds, the forms of its rules and sets:
    (expr, comment, family, key, sent text) and (None, type, flags, elements,
    spec, set text)); raises on any damage."""
    if not (isinstance(data, dict) and data.get("format") == FORMAT and data.get("path") == str(path)
            and data.get("code") == fingerprint() and isinstance(data.get("text"), str)):
        raise ValueError("not an entry for this file")
    tables, known = [], []
    for name, family, source, chains, sets in data["tables"]:
        _text(name, family, source)
        built = []
        for chain_name, type_, hook, priority, policy, rules in chains:
            _text(chain_name, type_, hook, policy, optional=True)
            if priority is not None and type(priority) is not int:
                raise ValueError("priority")
            made = []
            for expr, native, comment, rule_source, text, rule_path, key, sent in rules:
                # A structured rule's fields checked in one test (each of 10,000 rules); any other as below.
                if not (type(expr) is str and native is None and type(key) is str and type(sent) is str
                        and type(rule_source) is str and type(text) is str and type(rule_path) is str
                        and (comment is None or type(comment) is str)):
                    _text(expr, native, comment, key, sent, optional=True)
                    _text(rule_source, text, rule_path)
                    if expr is not None:
                        _text(key, sent)  # a compiled rule's forms, as keep() writes them: never computed from it
                made.append(Rule(expr, native, comment, rule_source, text, rule_path))
                if expr is not None:
                    known.append((expr, comment, family, key, sent))
            built.append(Chain(name=chain_name, type=type_, hook=hook, priority=priority, policy=policy,
                               rules=tuple(made)))
        named = []
        for set_name, set_type, flags, elements, spec, text, canonical, texts in sets:
            _text(set_name, set_type, *flags, *elements)
            _text(spec, text)  # as for rules: never computed from what the entry says
            if canonical is not None and not (
                    type(canonical) is list and type(texts) is list and len(canonical) == len(texts) == len(elements)
                    and set(map(type, canonical)) <= _TEXT_OR_NONE and set(map(type, texts)) <= _TEXT_OR_NONE
                    # a text left to be made (null) is the inside of a JSON string
                    and all(len(c or e) > 1 and (c or e)[0] == (c or e)[-1] == '"'
                            for c, t, e in zip(canonical, texts, elements) if t is None)):
                raise ValueError("element forms")
            named.append(NamedSet(name=set_name, type=set_type, flags=tuple(flags), elements=tuple(elements)))
            known.append((None, set_type, tuple(flags), tuple(elements), spec, text, canonical, texts))
        tables.append(Table(name=name, family=family, chains=tuple(built), sets=tuple(named), source=source))
    spans = []
    for kind, table, holder, column, bounds in data["spans"]:
        _text(table, holder)
        if kind not in ("rules", "elements") or type(column) is not int or column < 0 or type(bounds) is not list \
                or len(bounds) < 2 or not all(type(n) is int for n in bounds) or bounds[0] < 0 \
                or any(a >= b for a, b in zip(bounds, bounds[1:])):
            raise ValueError("span")
        spans += [(kind, table, holder, index, first, end, column)
                  for index, (first, end) in enumerate(zip(bounds, bounds[1:]))]
    repeated = set()
    for table, holder in data["repeated"]:
        _text(table, holder)
        repeated.add((table, holder))
    return PolicyLoad(text=data["text"], tables=tuple(tables), spans=tuple(spans), repeated=frozenset(repeated)), known


_TEXT_OR_NONE = {str, type(None)}


def _spans_kept(spans) -> list:
    """The spans (item_lines.item_spans') as kept: one row per chain's rules or
    set's elements, [kind, table, holder, column, [each item's first line, ...,
    the last one's end]], its items numbered from 0 and each ending where the
    next begins, as a whole read and a splice make them (20,000 spans read as
    20,000 lists took a 10,000-rule policy's kept read 15 ms more). A run of
    spans that is not so is left out: its items are then read whole, never
    alone, as for a chain whose items a whole read could not place."""
    groups: dict = {}
    for kind, table, holder, index, first, end, column in spans:
        groups.setdefault((kind, table, holder), []).append((index, first, end, column))
    kept = []
    for (kind, table, holder), items in groups.items():
        if all(index == n and column == items[0][3] and (n == 0 or first == items[n - 1][2])
               for n, (index, first, end, column) in enumerate(items)):
            kept.append([kind, table, holder, items[0][3], [first for _, first, _, _ in items] + [items[-1][2]]])
    return kept


def _element_forms(named) -> tuple:
    """([canonical form of each element], [its text]) as this process knows
    them, aligned with the set's elements ("" for one that is going now, and
    its text); (None, None) if any is not known."""
    canonical = nft_canon.canonical_element.known_all(zip(named.elements))
    if None in canonical:
        return None, None
    texts = nft_text.element_text_of.known_all(zip(canonical, repeat(nft_text.quoted_type(named.type))))
    if "" in canonical:  # going now: no text
        texts = ["" if not c else t for c, t in zip(canonical, texts)]
    if None in texts:
        return None, None
    # Most elements are their own canonical form, and their text its inside
    # (`"192.0.2.1"`: 192.0.2.1): said as null, the kept read is a fifth smaller
    # and the next process makes no new text for them.
    return ([None if c == e else c for c, e in zip(canonical, named.elements)],
            [None if c == f'"{t}"' else t for c, t in zip(canonical, texts)])


def _text(*values, optional: bool = False) -> None:
    for value in values:
        if not (isinstance(value, str) or optional and value is None):
            raise ValueError("a field of the wrong type")
