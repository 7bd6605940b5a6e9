"""An edited policy file read again from its last good read: one rule at a time.

Reading a 10,000-rule policy (YAML with line marks, the schema, the checks, the
rule compiler) takes seconds; a change of one rule in it should cost what the
change costs. So a good read is kept with the lines each rule item spans
(`PolicyLoad.spans`), and a new text of the file that differs from it only
inside one rule item's lines is read as that item alone and put in its place:

* the lines that differ (between the common first and last lines of the two
  texts) lie within one rule item's lines [first, end): its dash line, the
  lines under it, and the blank and comment lines after it;
* the new item begins with its dash at the same column, every other line of
  it is blank, a comment, or further in (so the file's parser, at the same
  place in the same text before and after, reads exactly these lines as this
  item), it has no tab, anchor or alias, and each scalar sits on one line;
* the old item and the new one are structured rules with no jump or goto (a
  native rule is compiled by libnftables, a jump takes part in the loop
  checks of the whole table);
* the new item passes the schema and the rule checks with no problem at all.

Anything else returns None, and the caller reads the whole file, as always: so
an edit read here gives exactly the tables the whole read would (a rule's
`source` line included; the later rules' lines move with the edit), and a
problem is always reported by the whole read, with everything around it.
Pure: no files, no state; state/policy_loads.py keeps the reads.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..model.firewall import PolicyLoad, Table
from .loader import Document, load_sequence_item, mapping, sequence

_DASH = re.compile(r"( *)-(?: |$)")


class PolicyReader:
    """Reads policy files for the topology loader (`load`, as
    policy.load_policy_text does) from their last good reads where it can:
    `kept(path)` gives one (a PolicyLoad) or None. A file with the same text
    is not read again; one edited inside one rule item is read as that item
    (splice); any other is read whole. `used(path)` is told of each kept read
    used; `made` holds the reads made here ({path: PolicyLoad}), to be kept."""

    def __init__(self, kept=lambda path: None, used=lambda path: None):
        self.kept, self.used = kept, used
        self.made: dict = {}

    def load(self, text: str, path: str) -> tuple:
        from .policy import load_policy

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


def rule_spans(text: str, doc: Document) -> tuple:
    """The spans of the rule items of a policy document read whole from `text`.
    A chain whose items cannot all be placed so gets none (its rules are then
    never read alone), nor does a text whose lines YAML counts otherwise."""
    if not lines_agree(text):
        return ()
    lines = text.split("\n")
    out = []
    for table, spec in mapping(mapping(doc.data).get("tables")).items():
        for chain, chain_spec in mapping(mapping(spec).get("chains")).items():
            items = sequence(mapping(chain_spec).get("rules"))
            spans = [_span(lines, doc.lines.get(("tables", table, "chains", chain, "rules", k)))
                     for k in range(len(items))]
            if any(s is None for s in spans) or any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
                continue  # an item not begun by its dash line, or items that do not meet
            out += [(table, chain, k, first, end, column) for k, (first, end, column) in enumerate(spans)]
    return tuple(out)


# Line breaks to YAML that str.split("\n") does not split at (a lone carriage
# return, NEL, the Unicode line and paragraph separators): with one, a line
# number YAML gives is not an index into the split text.
_OTHER_BREAKS = re.compile("\r(?!\n)|[\x85\u2028\u2029]")
_DIRECTIVE = re.compile(r"^%", re.MULTILINE)


def lines_agree(text: str) -> bool:
    """Whether YAML's lines of `text` are its "\n"-split lines, and no directive
    (`%TAG`, which changes how every item reads) stands before the document."""
    return _OTHER_BREAKS.search(text) is None and _DIRECTIVE.search(text) is None


def _span(lines: list, line):
    if not isinstance(line, int) or not 1 <= line <= len(lines):
        return None
    found = _DASH.match(lines[line - 1])
    if found is None:
        return None
    column = len(found.group(1))
    end = line
    while end < len(lines) and _within(lines[end], column):
        end += 1
    return line - 1, end, column


def _within(line: str, column: int) -> bool:
    """Whether a line after an item's dash line (at `column`) may be part of it."""
    stripped = line.strip()
    return not stripped or stripped.startswith("#") or len(line) - len(line.lstrip(" ")) > column


def splice(old: PolicyLoad, text: str, file: str) -> PolicyLoad | None:
    """`text` read from `old` (the last good read of the same file) by reading
    the one rule item it changed; None where that cannot be done exactly (see
    the module's docstring): read the whole file."""
    before, after = old.text.split("\n"), text.split("\n")
    same_head = 0
    shortest = min(len(before), len(after))
    while same_head < shortest and before[same_head] == after[same_head]:
        same_head += 1
    same_tail = 0
    while same_tail < shortest - same_head and before[-1 - same_tail] == after[-1 - same_tail]:
        same_tail += 1
    changed_end = len(before) - same_tail
    span = next((s for s in old.spans if s[3] <= same_head and changed_end <= s[4]), None)
    if span is None or before == after or not lines_agree(text):
        return None
    table_name, chain_name, index, first, end, column = span
    shift = len(after) - len(before)
    new_item = after[first:end + shift]
    if not _alone(new_item, column) or not _alone(before[first:end], column):
        return None
    table = next((t for t in old.tables if t.name == table_name), None)
    chain = next((c for c in table.chains if c.name == chain_name), None) if table else None
    if chain is None or index >= len(chain.rules) or not _plain(chain.rules[index]):
        return None
    path = ("tables", table_name, "chains", chain_name, "rules", index)
    if load_sequence_item("\n" * first + "\n".join(before[first:end]) + "\n", file, path) is None:
        return None  # the old item was not sound alone either: its lines may not be all of it
    doc = load_sequence_item("\n" * first + "\n".join(new_item) + "\n", file, path)
    if doc is None or doc.lines.get(path) != first + 1:
        return None  # the item's mapping begins below its dash: the whole read gives its chain no spans
    rule = _checked_rule(doc, table, chain, path)
    if rule is None:
        return None
    tables = tuple(_moved(t, end, shift, file, (chain_name, index, rule) if t is table else None)
                   for t in old.tables)
    spans = tuple(s if s[3] < end else (*s[:3], s[3] + shift, s[4] + shift, s[5]) for s in old.spans)
    spans = tuple((*s[:4], s[4] + shift, s[5]) if s == span else s for s in spans)
    return PolicyLoad(text=text, tables=tables, spans=spans)


def _alone(lines: list, column: int) -> bool:
    """An item's lines that the file's parser reads as that item wherever they stand."""
    if not lines or "\t" in "".join(lines):
        return False
    found = _DASH.match(lines[0])
    return found is not None and len(found.group(1)) == column and all(_within(line, column) for line in lines[1:])


def _plain(rule) -> bool:
    """A structured rule that jumps nowhere (as compiled: JSON text)."""
    return rule.native is None and isinstance(rule.expr, str) and '"jump":' not in rule.expr \
        and '"goto":' not in rule.expr


def _checked_rule(doc: Document, table: Table, chain, path: tuple):
    """The rule the item makes, if it is a plain structured rule with no problem."""
    from .nft_rules import RuleContext
    from .policy import _PolicyBuilder
    from .schema import schema_problems

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
    builder = _PolicyBuilder(doc)
    rule = builder.build_rule(path, data, context)
    return rule if rule is not None and not builder.problems else None


def _moved(table: Table, end: int, shift: int, file: str, edit) -> Table:
    """`table` with the sources of what was written below line `end` moved by
    `shift` lines, and the edited rule (chain, index, rule) in place if given."""
    def moved(source: str) -> str:
        where, _, line = source.rpartition(":")
        return f"{where}:{int(line) + shift}" if where == file and line.isdigit() and int(line) > end else source

    chains = []
    for chain in table.chains:
        rules = [replace(r, source=moved(r.source)) if shift else r for r in chain.rules]
        if edit is not None and edit[0] == chain.name:
            rules[edit[1]] = edit[2]
        chains.append(replace(chain, rules=tuple(rules)) if shift or edit and edit[0] == chain.name else chain)
    return replace(table, chains=tuple(chains), source=moved(table.source))
