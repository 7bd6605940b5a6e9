"""Where the items of a YAML block sequence sit in a policy file's text, by line.

A policy file read whole gives, for each rule item and set element item, the
lines it spans (item_spans); an edit of the file may then be read item by item
(policy_edit.py) only where these lines can be trusted to be the items' own:
the text's lines are YAML's (lines_agree), and the lines read alone hold only
items, blank lines and comments (items_alone).
"""

from __future__ import annotations

import re

from .loader import Document, mapping, sequence

DASH = re.compile(r"( *)-(?: |$)")  # an item's first line: its dash, at a column


def item_spans(text: str, doc: Document) -> tuple:
    """The spans of the rule items and set element items of a policy document
    read whole from `text`: (kind, table, chain or set, index, first, end,
    column), kind "rules" or "elements". A chain or set whose items cannot all
    be placed so gets none (they are then never read alone), nor does a text
    whose lines YAML counts otherwise, nor one where a node stands at two
    places (an alias, a merge key)."""
    if not lines_agree(text) or doc.shared:
        return ()  # (shared: an item written once may stand in two sets or chains)
    lines = text.split("\n")
    out = []
    for table, spec in mapping(mapping(doc.data).get("tables")).items():
        for kind, holders in (("elements", "sets"), ("rules", "chains")):
            for holder, holder_spec in mapping(mapping(spec).get(holders)).items():
                items = sequence(mapping(holder_spec).get(kind))
                spans = [_span(lines, doc.lines.get(("tables", table, holders, holder, kind, k)))
                         for k in range(len(items))]
                if any(s is None for s in spans) or any(a[1] != b[0] for a, b in zip(spans, spans[1:])):
                    continue  # an item not begun by its dash line, or items that do not meet
                out += [(kind, table, holder, k, first, end, column) for k, (first, end, column) in enumerate(spans)]
    return tuple(out)


# Line breaks to YAML that str.split("\n") does not split at (a lone carriage
# return, NEL, the Unicode line and paragraph separators): with one, a line
# number YAML gives is not an index into the split text.
_OTHER_BREAKS = re.compile("\r(?!\n)|[\x85\u2028\u2029]")


def lines_agree(text: str) -> bool:
    """Whether YAML's lines of `text` are its "\n"-split lines, and no directive
    (`%TAG`, which changes how every item reads) stands before the document.
    (Searched at C speed: the patterns' own scans took 20-26 ms of a 1 MB policy,
    twice for each edit read.)"""
    if ("\r" in text or not text.isascii()) and _OTHER_BREAKS.search(text) is not None:
        return False
    return not (text.startswith("%") or "\n%" in text)  # a line starting with %: re's ^ in MULTILINE


def _span(lines: list, line):
    if not isinstance(line, int) or not 1 <= line <= len(lines):
        return None
    found = DASH.match(lines[line - 1])
    if found is None:
        return None
    column = len(found.group(1))
    end = line
    while end < len(lines) and within(lines[end], column):
        end += 1
    return line - 1, end, column


def within(line: str, column: int) -> bool:
    """Whether a line after an item's dash line (at `column`) may be part of it."""
    return blank(line) or len(line) - len(line.lstrip(" ")) > column


def items_alone(lines: list, column: int) -> bool:
    """Lines of items that the file's parser reads as those items wherever they
    stand: blank lines and comments, then, if any, a dash at `column` and only
    dashes at `column`, lines further in, blank lines and comments; no tab."""
    if "\t" in "".join(lines):
        return False
    seen_dash = False
    for line in lines:
        dash = DASH.match(line)
        if dash and len(dash.group(1)) == column:
            seen_dash = True
        elif not (blank(line) or seen_dash and within(line, column)):
            return False
    return True


def blank(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")
