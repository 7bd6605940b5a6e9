"""How values from a manifest are shown in messages: short, on one line, escaped.

A message ends up on a terminal or in a CI log as `FILE:LINE: path: message`. A
value echoed into it comes from the input, so it may be a whole file (a policy
that is /etc/passwd), hold a newline or an escape sequence, or be a key of ten
thousand characters. `quote` is the one way a value is echoed; `clean_problem`
is the last line of defence for every Problem that leaves the manifest package.
"""

from __future__ import annotations

import unicodedata

from ..core.escapes import escape_controls
from ..errors import Problem

SHOWN_CHARS = 64         # of a value echoed in a message
MAX_MESSAGE_CHARS = 400  # of a whole message
MAX_PATH_CHARS = 200


def quote(value, limit: int = SHOWN_CHARS) -> str:
    """`value` as a message shows it: repr-quoted (control characters escaped) and,
    when long, cut to its first `limit` characters with its length said."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** limit:
        return f"a {value.bit_length()}-bit integer"  # str() of a huge int is slow, or refused
    return _cut(repr(value), limit)


def shorten(text: str, limit: int = 200) -> str:
    """`text` (a message from elsewhere, such as libnftables') on one line, cut to `limit`."""
    return _cut(escape_controls(text), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def clean_problem(problem: Problem) -> Problem:
    """`problem` made safe to print: control characters escaped, lengths bounded."""
    message = _cut(escape_controls(problem.message), MAX_MESSAGE_CHARS)
    path = _cut(escape_controls(problem.path), MAX_PATH_CHARS)
    file = escape_controls(problem.file)
    if (message, path, file) == (problem.message, problem.path, problem.file):
        return problem
    return Problem(file, problem.line, path, message)


def is_confusable_name(name: str) -> bool:
    """True when `name` is not plain ASCII: a Cyrillic 'а' looks like 'a' in a
    terminal but names another interface or namespace."""
    return not name.isascii() or unicodedata.normalize("NFKC", name) != name


def listing(names, limit: int = 12) -> str:
    """`a, b, c` for a message, the first `limit` only: a manifest may declare thousands."""
    names = [escape_controls(str(n))[:SHOWN_CHARS] for n in names]
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"
