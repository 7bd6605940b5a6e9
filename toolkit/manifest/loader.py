"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with marks; we build plain Python values from them
and keep a side table `path -> line` so that later checks (schema, semantics) can
say `FILE:LINE: path.to.field: message`. Duplicate mapping keys, which PyYAML
silently collapses, are reported as problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import json
import re

import yaml

from ..errors import Problem
from .text import SHOWN_CHARS, quote

Path = tuple  # of str (mapping keys) and int (sequence indexes)


def format_path(path: Path) -> str:
    """`("links", 1, "endpoints", 0)` -> `links[1].endpoints[0]`.

    Keys that are not plain identifiers (sysctl names have dots) are quoted; a
    key longer than SHOWN_CHARS is cut there (the message quotes it, with its length).
    """
    out = ""
    for part in path:
        if isinstance(part, str) and len(part) > SHOWN_CHARS:
            part = part[:SHOWN_CHARS] + "..."
        if isinstance(part, int):
            out += f"[{part}]"
        elif part and part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out


def mapping(value) -> dict:
    """`value` if it is a mapping, else {}: checks go on past a value the schema rejects."""
    return value if isinstance(value, dict) else {}


def sequence(value) -> list:
    """`value` if it is a list, else []."""
    return value if isinstance(value, list) else []


@dataclass
class Document:
    """A loaded YAML document: its data, where each value sits, and load problems."""

    file: str
    data: object
    lines: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    not_ours: bool = False  # no top-level field of its kind: its keys are never quoted (schema.problems_of)
    # The text as written of scalars YAML turned into something other than a
    # string (`off` -> False, `12:34` -> 754), so messages can show what the
    # person typed rather than what YAML 1.1 made of it.
    written: dict = field(default_factory=dict)
    has_floats: bool = False
    # Paths whose value the loader refused, and said why (a tag, an alias loop,
    # too deep): what the schema would add about the gap is left unsaid.
    refused: set = field(default_factory=set)
    # Whether a node stands at more than one place (a YAML alias, a merge key
    # naming an anchor): an edit of its lines changes every place it stands.
    shared: bool = False
    _built: set = field(default_factory=set, repr=False)

    def line_of(self, path: Path) -> int:
        """The line of the value at `path`, or of its nearest ancestor we know."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def problem(self, path: Path, message: str) -> Problem:
        return Problem(self.file, self.line_of(path), format_path(tuple(path)), message)


# libyaml's parser is about five times faster than the pure-Python one on large
# manifests, and gives the same nodes and marks.
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_STR = "tag:yaml.org,2002:str"


class _Constructor(_Base):
    """The safe loader, used to compose nodes and to turn scalars into values."""

    _resolved: dict = {}

    def resolve(self, kind, value, implicit):
        # PyYAML resolves every plain scalar's tag with regexes, in Python; large
        # policies repeat the same words (accept, tcp, saddr) thousands of times.
        if kind is yaml.ScalarNode and implicit == (True, False):
            key = value
            tag = self._resolved.get(key)
            if tag is None:
                tag = self._resolved[key] = super().resolve(kind, value, implicit)
                if len(self._resolved) > 100_000:
                    self._resolved.clear()
            return tag
        return super().resolve(kind, value, implicit)


def load_document(text: str, file: str) -> Document:
    """Parse `text` (named `file` in messages). Never raises for bad YAML: a
    syntax error becomes the document's only problem, with `data` None."""
    doc = Document(file=file, data=None)
    loader = _Constructor(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            doc.data = _build(node, (), loader, doc)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{exc.context}, {what}"
        if exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            what += f" (started at line {exc.context_mark.line + 1})"
        doc.problems.append(Problem(file, line, "", f"YAML syntax error: {what}"))
        doc.data = None
    except yaml.reader.ReaderError as exc:
        doc.problems.append(_reader_problem(exc, text, file))
        doc.data = None
    except yaml.YAMLError as exc:  # pragma: no cover - other unmarked errors are rare
        doc.problems.append(Problem(file, 1, "", f"YAML error: {exc}"))
        doc.data = None
    except RecursionError:
        doc.problems.append(Problem(file, 1, "", "YAML aliases or merge keys refer to themselves"))
        doc.data = None
    except _TooBig:
        doc.problems.append(Problem(file, 1, "", f"the document expands to more than {MAX_VALUES:,} values "
                                                 "(YAML aliases nested too deep?)"))
        doc.data = None
    finally:
        loader.dispose()
    return doc


MAX_VALUES = 1_000_000  # far beyond any real manifest; stops "billion laughs" alias bombs
MAX_DEPTH = 64  # a manifest nests about ten levels; deeper would exhaust Python's stack
# The tags YAML gives mappings and sequences itself; others (!!python/object, !!set)
# ask for a construction the safe loader does not do.
_COLLECTION_TAGS = {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}


def _reader_problem(exc, text: str, file: str) -> Problem:
    """A character YAML does not allow in a stream (a NUL, an escape), at its line."""
    position = exc.position if isinstance(exc.position, int) else 0
    line = text.count("\n", 0, position) + 1
    char = exc.character  # a str from PyYAML's reader, an int from libyaml's
    code = ord(char) if isinstance(char, str) and len(char) == 1 else char
    code = f"U+{code:04X} " if isinstance(code, int) else ""
    return Problem(file, line, "", f"character {code}is not allowed in YAML: a file holds "
                                    "printable text, tabs and newlines only")


class _TooBig(Exception):
    pass


def _build(node, path: Path, loader: _Constructor, doc: Document, within=frozenset()):
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in doc._built:  # libyaml gives an alias the very node its anchor made
        doc.shared = True
    doc._built.add(id(node))
    doc.count = getattr(doc, "count", 0) + 1
    if doc.count > MAX_VALUES:
        raise _TooBig()
    if len(path) > MAX_DEPTH:
        if not getattr(doc, "too_deep", False):
            doc.too_deep = True
            # Named by its first levels: the full path would be a line of brackets.
            doc.problems.append(Problem(doc.file, node.start_mark.line + 1, format_path(path[:4]),
                                        f"nesting too deep: more than {MAX_DEPTH} levels"))
        doc.refused.add(path)
        return None
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        if node.tag not in _COLLECTION_TAGS:
            doc.problems.append(doc.problem(path, f"YAML tag {quote(node.tag)} is not allowed here"))
            doc.refused.add(path)
            return None
        if id(node) in within:  # an alias to one of its own ancestors
            doc.problems.append(doc.problem(path, "a YAML alias refers to a node that contains it"))
            doc.refused.add(path)
            return None
        within = within | {id(node)}
    if isinstance(node, yaml.MappingNode):
        return _build_mapping(node, path, loader, doc, within)
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), loader, doc, within) for i, item in enumerate(node.value)]
    if node.tag == _STR:
        return node.value  # most scalars: no need for the constructor's machinery
    try:
        value = loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        doc.problems.append(doc.problem(path, f"cannot read value {quote(node.value)}: {problem}"))
        return node.value  # as text, so the later checks do not report it twice
    if _yaml11_only_number(node.value, value):
        # As YAML 1.2 reads it: a number written with leading zeros is decimal
        # (`010` is 10, not octal 8); a base-60 one (`1:30`) is text.
        return int(node.value.replace("_", ""), 10) if _OCTAL.fullmatch(node.value) else node.value
    if value is not None and not isinstance(value, str) and isinstance(node, yaml.ScalarNode):
        doc.written[path] = node.value
        doc.has_floats |= isinstance(value, float)
    return value


_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_OCTAL = re.compile(r"[-+]?0[0-7_]+")


def _yaml11_only_number(written: str, value) -> bool:
    """A plain scalar that YAML 1.1 reads as another number than YAML 1.2 does:
    `1:30` is 90 (base 60; text to YAML 1.2), `010` is 8 (octal; 10 to YAML 1.2).
    A port range typed with a colon, or a zero-padded number, would otherwise
    pass the checks silently as another value (and an unquoted MAC is text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return bool(_SEXAGESIMAL.fullmatch(written) or isinstance(value, int) and _OCTAL.fullmatch(written))


def _build_mapping(node, path: Path, loader: _Constructor, doc: Document, within) -> dict:
    # Keys written in this mapping override keys merged in with `<<`; among
    # merged keys, the first source wins (YAML's merge semantics).
    explicit = {id(k) for k, _ in node.value
                if not (isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:merge")}
    loader.flatten_mapping(node)
    out, merged = {}, set()
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            doc.problems.append(doc.problem(path, "mapping keys must be scalars"))
            continue
        key = key_node.value  # as written: a node called `on` stays "on"
        is_explicit = id(key_node) in explicit
        if key in out:
            if key in merged and is_explicit:
                merged.discard(key)  # an explicit key overrides a merged one
            elif not is_explicit:
                continue  # an earlier merge source (or an explicit key) already set it
            else:
                first = doc.lines[path + (key,)]
                doc.problems.append(Problem(doc.file, key_node.start_mark.line + 1,
                                            format_path(path + (key,)),
                                            f"duplicate key {quote(key)} (first at line {first})"))
                continue
        elif not is_explicit:
            merged.add(key)
        out[key] = _build(value_node, path + (key,), loader, doc, within)
        # Report a field on the line of its key, which is where the eye looks.
        doc.lines[path + (key,)] = key_node.start_mark.line + 1
    return out


_SEQ = "tag:yaml.org,2002:seq"


def load_sequence_items(text: str, file: str, base: Path, start: int) -> list | None:
    """The items of a block sequence written alone in `text`, each built as the
    value at `base + (start + i,)` of a document of `file` (`text` starts with
    a newline per line before the items' in the file, so lines are the file's):
    a Document per item; [] for a text with no node.

    None unless sound on its own: no problem, no anchor or alias (an alias may
    name an anchor elsewhere in the file; an anchor may be named from
    elsewhere) and every scalar on one line (a scalar running on past the last
    line would be read so only by the whole file). Used to read again the
    edited rules of a file read before (manifest/policy_edit.py); None sends
    the caller to the whole file."""
    loader = _Constructor(text)
    events = []  # libyaml's events: anchors and aliases show only there
    try:
        while loader.check_event():
            events.append(loader.get_event())
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    if any(isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None) is not None for e in events):
        return None
    docs = []
    loader = _Constructor(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return []
        if not (isinstance(node, yaml.SequenceNode) and node.tag == _SEQ and _one_line_scalars(node)):
            return None
        for i, item in enumerate(node.value):
            doc = Document(file=file, data=None)
            doc.data = _build(item, tuple(base) + (start + i,), loader, doc)
            if doc.problems or doc.refused or doc.data is None:
                return None
            docs.append(doc)
    except (yaml.YAMLError, RecursionError, _TooBig):
        return None
    finally:
        loader.dispose()
    return docs


def _one_line_scalars(node) -> bool:
    if isinstance(node, yaml.ScalarNode):
        return node.start_mark.line == node.end_mark.line
    if isinstance(node, yaml.MappingNode):
        return all(_one_line_scalars(k) and _one_line_scalars(v) for k, v in node.value)
    return all(_one_line_scalars(item) for item in node.value)
