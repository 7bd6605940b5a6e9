"""An edited policy file read again from its last good read: the items it changed.

Reading a 10,000-rule policy (YAML with line marks, the schema, the checks, the
rule compiler) takes seconds; a change of one rule in it should cost what the
change costs. So a good read is kept with the lines each rule item and each
set element item spans (`PolicyLoad.spans`), and a new text of the file that
differs from it only within one run of one chain's rules or one set's
elements (changed, added or removed there) has those lines read alone, and
what they make put in place of the old:

* the lines that differ (between the common first and last lines of the two
  texts) lie within consecutive items of one chain or set, [first, end): each
  item's dash line, the lines under it, and the blank and comment lines after;
* the new lines are blank lines and comments, then none or items that begin
  with a dash at the same column and hold only dashes at that column, lines
  further in, blank lines and comments (so the file's parser, at the same
  place in the same text before and after, reads exactly these lines as these
  items); no tab, anchor or alias, and each scalar sits on one line;
* each item begins on its dash line (as the spans of a whole read require);
* rules: the old and new ones are structured rules with no jump or goto (a
  native rule is compiled by libnftables, a jump takes part in the loop
  checks of the whole table), and each new one passes the schema and the rule
  checks with no problem at all;
* elements: the set has no intervals (the overlap checks are the set's) and
  held no element twice (what taking one out leaves would not be known), and
  each new element passes the schema and the element checks;
* the text's lines are YAML's (no line break that a split at newlines does
  not see) and no directive stands before the document.

Anything else returns None, and the caller reads the whole file, as always: so
an edit read here gives exactly the tables the whole read would (a rule's
`source` line and field path included: the later rules' lines and indexes move
with the edit), and a problem is always reported by the whole read, with
everything around it. Pure: no files, no state; state/policy_loads.py keeps
the reads.
"""

from __future__ import annotations

import json
from dataclasses import replace

from ..model.firewall import PolicyLoad, Table
from .item_lines import DASH, blank, items_alone, lines_agree
from .loader import Document, format_path, load_sequence_items
from .nft_rules import RuleContext
from .policy import PolicyBuilder, load_policy, set_element
from .schema import schema_problems

class PolicyReader:
    """Reads policy files for the topology loader (`load`, as
    policy.load_policy_text does) from their last good reads where it can:
    `kept(path)` gives one (a PolicyLoad) or None. A file with the same text
    is not read again; one edited within one run of one chain's rules or one
    set's elements is read as those items (splice); any other is read whole.
    `used(path)` is told of each kept read used; `made` holds the reads made
    here ({path: PolicyLoad}), to be kept."""

    def __init__(self, kept=lambda path: None, used=lambda path: None):
        self.kept, self.used = kept, used
        self.made: dict = {}

    def load(self, text: str, path: str) -> tuple:
        kept = self.kept(path)
        if kept is not None and kept.text == text:
            self.used(path)
            return kept.tables, []
        edited = splice(kept, text, path) if kept is not None else None
        if edited is not None:
            self.used(path)
            self.made[path] = edited
            return edited.tables, []
        load, problems = load_policy(text, path)
        if not problems:
            self.made[path] = load
        return load.tables, problems


def splice(old: PolicyLoad, text: str, file: str) -> PolicyLoad | None:
    """`text` read from `old` (the last good read of the same file) by reading
    only the items it changed, added or removed, all in one run of one chain's
    rules or one set's elements; None where that cannot be done exactly (see
    the module's docstring): read the whole file."""
    before, after = old.text.split("\n"), text.split("\n")
    if before == after or not lines_agree(text):
        return None
    same_head = 0
    shortest = min(len(before), len(after))
    while same_head < shortest and before[same_head] == after[same_head]:
        same_head += 1
    same_tail = 0
    while same_tail < shortest - same_head and before[-1 - same_tail] == after[-1 - same_tail]:
        same_tail += 1
    run = _run(old.spans, same_head, len(before) - same_tail)
    if run is None:
        return None
    kind, table_name, holder, k, first, _, column = run[0]
    m, end = run[-1][3], run[-1][5]
    shift = len(after) - len(before)
    if k > 0 and first < end + shift and blank(after[first]):
        # Blank and comment lines before the first new dash follow the item
        # before the run: were it to end in a block scalar, they would be its
        # text (found by review). That item is read again with them.
        previous = next((s for s in old.spans if s[:4] == (kind, table_name, holder, k - 1)), None)
        if previous is None or previous[5] != first:
            return None
        run = [previous] + run
        k, first = previous[3], previous[4]
    if not items_alone(before[first:end], column) or not items_alone(after[first:end + shift], column):
        return None
    table = next((t for t in old.tables if t.name == table_name), None)
    if table is None:
        return None
    base = ("tables", table_name, "chains" if kind == "rules" else "sets", holder, kind)
    was = load_sequence_items("\n" * first + "\n".join(before[first:end]) + "\n", file, base, k)
    if was is None or len(was) != m + 1 - k:
        return None  # the old items were not sound alone: their lines may not be all of them
    docs = load_sequence_items("\n" * first + "\n".join(after[first:end + shift]) + "\n", file, base, k)
    if docs is None:
        return None
    starts = []
    for i, doc in enumerate(docs):
        line = doc.lines.get(base + (k + i,))
        found = DASH.match(after[line - 1]) if isinstance(line, int) and first < line <= end + shift else None
        if found is None or len(found.group(1)) != column:
            return None  # the item begins below its dash: the whole read gives its chain or set no spans
        starts.append(line - 1)
    # Blank and comment lines before the first new item are outside every span
    # only before a chain's or set's first item (any other run begins with a
    # dash: see above).
    lead = next((n for n, line in enumerate(after[first:end + shift]) if DASH.match(line)), end + shift - first)
    if docs and starts[0] != first + lead:
        return None
    renumber = len(docs) - len(run)
    if kind == "rules":
        edited = _rules_edited(table, holder, k, m, docs, base, renumber, (file, end, shift))
    else:
        edited = _elements_edited(table, holder, old.repeated, was, docs)
    if edited is None:
        return None
    tables = tuple(_moved(t, end, shift, file, (kind, holder, edited[0]) if t is table else None) for t in old.tables)
    repeated = old.repeated | ({(table_name, holder)} if kind == "elements" and edited[1] else set())
    made = [(kind, table_name, holder, k + i, start, stop, column)
            for i, (start, stop) in enumerate(zip(starts, starts[1:] + [end + shift]))]
    spans, in_run = [], set(run)
    for s in old.spans:
        if s in in_run:
            if s is run[0]:
                spans += made
        elif s[4] < end:
            spans.append(s)
        elif s[:3] == (kind, table_name, holder):
            spans.append((*s[:3], s[3] + renumber, s[4] + shift, s[5] + shift, s[6]))
        else:
            spans.append((*s[:4], s[4] + shift, s[5] + shift, s[6]))
    return PolicyLoad(text=text, tables=tables, spans=tuple(spans), repeated=frozenset(repeated))


def _rules_edited(table: Table, chain_name: str, k: int, m: int, docs: list, base: tuple, renumber: int,
                  moving: tuple):
    """(the chain's rules with rules k..m made from `docs`, None), or None if an
    old or new rule is not a plain structured one or a new one has a problem."""
    chain = next((c for c in table.chains if c.name == chain_name), None)
    if chain is None or m >= len(chain.rules) or not all(_plain(r) for r in chain.rules[k:m + 1]):
        return None
    rules = []
    for i, doc in enumerate(docs):
        rule = _checked_rule(doc, table, chain, base + (k + i,))
        if rule is None:
            return None
        rules.append(rule)
    kept = chain.rules[m + 1:]
    shift = moving[2]
    if renumber or shift:  # (an item edited in place moves nothing below it: 5,000 rules were made again for none)
        kept = tuple(replace(r, source=_moved_source(r.source, *moving),
                             path=format_path(base + (m + 1 + renumber + j,)) if renumber else r.path)
                     for j, r in enumerate(kept))
    return chain.rules[:k] + tuple(rules) + kept, None  # each in its place: moved no more


def _elements_edited(table: Table, set_name: str, repeated, was: list, docs: list):
    """(the set with elements `was` replaced by `docs`, whether it now holds an
    element twice), or None: a set with intervals (the overlap checks are the
    set's), one that held an element twice (what taking one out leaves is not
    known here), or a new element with a problem."""
    named = next((n for n in table.sets if n.name == set_name), None)
    if named is None or "interval" in named.flags or (table.name, set_name) in repeated:
        return None
    if any(doc.has_floats for doc in docs):
        return None
    spec = {"type": named.type, "elements": [doc.data for doc in docs]}
    if named.flags:
        spec["flags"] = list(named.flags)
    if docs and schema_problems(Document(file="", data={"tables": {table.name: {"sets": {set_name: spec}}}}), "policy"):
        return None
    try:
        gone = [_element_json(named.type, doc.data) for doc in was]
        new = [_element_json(named.type, doc.data) for doc in docs]
    except (ValueError, TypeError):
        return None
    left = set(named.elements) - set(gone)  # each held once (no repeats): taking it out leaves none
    twice = len(set(new)) < len(new) or any(e in left for e in new)
    return replace(named, elements=tuple(sorted(left | set(new)))), twice


def _element_json(set_type: str, value) -> str:
    """An element of a set without intervals as the whole read keeps it. Raises ValueError."""
    return json.dumps(set_element(set_type, value, False), sort_keys=True)


def _run(spans: tuple, first: int, end: int):
    """The consecutive spans of one chain's or set's items that hold lines
    [first, end) (an empty range: an insertion at `first`), or None."""
    start = next((n for n, s in enumerate(spans) if s[4] <= first <= s[5] and (first < s[5] or first == end)), None)
    if start is None:
        return None
    run = [spans[start]]
    while run[-1][5] < end:
        following = spans[start + len(run)] if start + len(run) < len(spans) else None
        if following is None or following[:3] != run[-1][:3] or following[3] != run[-1][3] + 1 \
                or following[4] != run[-1][5]:
            return None
        run.append(following)
    return run


def _plain(rule) -> bool:
    """A structured rule that jumps nowhere (as compiled: JSON text)."""
    return rule.native is None and isinstance(rule.expr, str) and '"jump":' not in rule.expr \
        and '"goto":' not in rule.expr


def _checked_rule(doc: Document, table: Table, chain, path: tuple):
    """The rule the item makes, if it is a plain structured rule with no problem."""
    data = doc.data
    if not isinstance(data, dict) or "nft" in data or doc.has_floats:
        return None
    action = data.get("action")
    if isinstance(action, dict) and ({"jump", "goto"} & set(action)):
        return None
    alone = Document(file=doc.file, data={"tables": {table.name: {"chains": {chain.name: {"rules": [dict(data)]}}}}})
    if schema_problems(alone, "policy"):
        return None
    regular = {c.name for c in table.chains if c.hook is None}
    base = {c.name for c in table.chains if c.hook is not None}
    context = RuleContext(table.family, chain.type, chain.hook, {s.name: s.type for s in table.sets},
                          regular - {chain.name}, chain.name, base)
    builder = PolicyBuilder(doc)
    rule = builder.build_rule(path, data, context)
    return rule if rule is not None and not builder.problems else None


def _moved_source(source: str, file: str, end: int, shift: int) -> str:
    """A "file:line" source written below line `end` of the old text, moved by `shift` lines."""
    where, _, line = source.rpartition(":")
    return f"{where}:{int(line) + shift}" if where == file and line.isdigit() and int(line) > end else source


def _moved(table: Table, end: int, shift: int, file: str, edit) -> Table:
    """`table` with the sources of what was written below line `end` moved by
    `shift` lines, and the edit in place if given: ("rules", chain, its rules
    as they now stand) or ("elements", set, the set)."""
    chains = []
    for chain in table.chains:
        if edit is not None and edit[:2] == ("rules", chain.name):
            chains.append(replace(chain, rules=edit[2]))
        elif shift:
            chains.append(replace(chain, rules=tuple(replace(r, source=_moved_source(r.source, file, end, shift))
                                                    for r in chain.rules)))
        else:
            chains.append(chain)
    sets = table.sets
    if edit is not None and edit[0] == "elements":
        sets = tuple(edit[2] if s.name == edit[1] else s for s in sets)
    return replace(table, chains=tuple(chains), sets=sets, source=_moved_source(table.source, file, end, shift))
