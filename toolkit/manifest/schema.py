"""JSON Schema (draft 2020-12) validation with messages a person can act on.

jsonschema's own messages are precise but read like a validator's; we rewrite the
common ones and pin each to the line of the offending field.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import re
from functools import lru_cache

import fastjsonschema

from ..core.kept_validators import fast_validator
from .loader import Document
from .text import SHOWN_CHARS, quote, shorten


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The packaged schema `name` (e.g. "topology"), as a dict: read beside this
    module, as its kept validators are (importlib.resources costs 6-10 ms of
    imports: tempfile, shutil, bz2, zipfile)."""
    with open(os.path.join(os.path.dirname(__file__), "schemas", f"{name}.schema.json"), encoding="utf-8") as f:
        return json.load(f)


def _is_integer(checker, value) -> bool:
    # jsonschema counts 9000.0 as an integer; a manifest that says `mtu: 9000.0`
    # almost certainly did not mean a float, but netkeel should not guess.
    return isinstance(value, int) and not isinstance(value, bool)


@lru_cache(maxsize=None)
def _validator(name: str):
    # jsonschema is imported only for a document fastjsonschema refused: importing
    # it costs more than checking a small valid document (a fault file) does.
    from jsonschema import Draft202012Validator, validators

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    extended = validators.extend(
        Draft202012Validator,
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
    )
    return extended(schema)


@lru_cache(maxsize=None)
def _fast_validator(name: str):
    """fastjsonschema's validator for schema `name`, its compiled code kept
    beside the schemas (core/kept_validators.py)."""
    return fast_validator(load_schema(name), os.path.join(os.path.dirname(__file__), "schemas"), name)


def problems_of(doc: Document, name: str) -> list:
    """The loader's problems, then the schema's. When the document is not one of
    netkeel's at all (see _not_ours), the loader's that name a field of it (a
    duplicate key) are left out: they would quote its content."""
    found = schema_problems(doc, name)
    return [p for p in doc.problems if not (doc.not_ours and p.path)] + found


def schema_problems(doc: Document, name: str) -> list:
    """Every schema violation in `doc`, as Problems (empty when valid).

    Each value holding a violation is then taken out of `doc.data` (see
    `_take_out`), so that the semantic checks that follow only ever see values
    of the types the schema promises and cannot trip over them.

    A valid document is confirmed by fastjsonschema (compiled to Python: ten
    times faster on a 10,000-rule policy); only an invalid one goes through
    jsonschema, which lists every violation at once. fastjsonschema takes 9000.0
    for an integer, so documents with floats skip the fast path."""
    if not doc.has_floats:
        try:
            _fast_validator(name)(doc.data)
            return []
        except fastjsonschema.JsonSchemaException:
            pass
    validator = _validator(name)
    problems, invalid = [], []
    for error in validator.iter_errors(doc.data):
        path = tuple(error.absolute_path)
        said = any(path[:len(refused)] == refused for refused in doc.refused)  # the loader said why
        if not said and _not_ours(error, validator.schema):
            doc.not_ours = True
            allowed = ", ".join(sorted(_declared_fields(error.schema, validator.schema)))
            problems.append(doc.problem((), f"none of its {len(error.instance)} top-level field(s) is one a "
                                            f"{_WHAT.get(name, name)} has (expected: {allowed}): is it one? "
                                            "(its fields are not quoted: it may hold anything)"))
            said = True
        for sub_path, message in () if said else _explain(error, validator.schema, doc.written.get(path)):
            problems.append(doc.problem(path + sub_path, message))
        if not _is_shape_only(error):
            invalid.append(_item_of(path, _ATOMIC.get(name, ())))
    for path in sorted(invalid, key=len, reverse=True):
        _take_out(doc.data, path)
    return problems


def _not_ours(error, root: dict) -> bool:
    """Whether the document's top-level mapping has no field its kind knows: a
    file that is not netkeel's at all (/etc/shadow named by mistake), whose keys
    are its content and are never quoted in a message."""
    return (not error.absolute_path and error.validator in ("additionalProperties", "unevaluatedProperties")
            and isinstance(error.instance, dict) and bool(error.instance)
            and not set(error.instance) & _declared_fields(error.schema, root))


_WHAT = {"topology": "manifest", "policy": "policy", "fault": "fault file", "experiment": "experiment file"}


# Items whose parts only make sense together: a rule without its `protocol`
# would be checked as a rule without one ("a port needs a protocol"), a chain
# without its `hook` as a regular chain. A violation anywhere inside one takes
# out the whole item; elsewhere only the offending value goes. "*" is any key
# or index.
_ATOMIC = {
    "policy": (("tables", "*", "chains", "*"), ("tables", "*", "sets", "*"),
               ("tables", "*", "chains", "*", "rules", "*")),
}
# Violations that say what a mapping lacks or has too much of, or that a key is
# badly named, rather than that a value is of the wrong kind: the checks handle
# a missing field, never read an unknown one, and take names as text, so these
# take nothing out.
_SHAPE_ONLY = {"required", "additionalProperties", "unevaluatedProperties", "minProperties",
               "maxProperties", "minItems", "maxItems"}


def _is_shape_only(error) -> bool:
    if "propertyNames" in error.schema_path:
        return True
    if error.validator == "anyOf":  # "needs 'via' or 'dev'"
        return all(set(s) == {"required"} for s in error.validator_value)
    return error.validator in _SHAPE_ONLY


def _item_of(path: tuple, atomic) -> tuple:
    """The innermost atomic item holding `path`, else `path` itself."""
    for end in range(len(path), 0, -1):
        if any(_matches(path[:end], pattern) for pattern in atomic):
            return path[:end]
    return path


def _matches(path: tuple, pattern: tuple) -> bool:
    return len(path) == len(pattern) and all(p in ("*", k) for k, p in zip(path, pattern))


def _take_out(data, path: tuple) -> None:
    """Remove the value at `path` from `data`: a mapping loses the key, a list
    element becomes None (so the indexes, and the paths in messages, stay). The
    document itself stays: the checks look at nothing inside a non-mapping."""
    if not path:
        return
    parent = data
    for key in path[:-1]:
        try:
            parent = parent[key]
        except (KeyError, IndexError, TypeError):
            return  # an ancestor was already taken out
    last = path[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        parent[last] = None


_QUOTED = re.compile(r"'([^']*)'")
_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "boolean": "a boolean", "null": "nothing", "number": "a number"}


def _explain(error, root: dict, written: str | None):
    """Yield (extra path, message) pairs for one jsonschema error. `written` is the
    scalar's text as typed, when YAML made something else of it."""
    kind = error.validator
    custom = error.schema.get("x-messages", {}).get(kind)
    if kind == "oneOf" and isinstance(error.instance, dict):
        # A mapping where a value or a mapping may be: what is wrong inside the
        # mapping's own form, field by field ("got a mapping" named no field).
        inner = [e for e in error.context if e.schema_path and isinstance(e.schema_path[0], int)
                 and (error.validator_value[e.schema_path[0]] or {}).get("type") == "object"]
        # How many fields the mapping has is said by what is wrong with them (an
        # unknown one); an empty mapping is better told what the whole may be.
        inner = [e for e in inner if e.validator not in ("minProperties", "maxProperties")]
        if inner:
            for sub in inner:
                for at, message in _explain(sub, root, None):
                    yield tuple(sub.relative_path) + at, message
            return
    if custom:
        # Under propertyNames the error sits on the mapping; point at the key itself.
        at = (error.instance,) if "propertyNames" in error.schema_path else ()
        count = len(error.instance) if isinstance(error.instance, (list, dict, str)) else None
        # What was typed when YAML made something else of it (`on`, `1:30`), else the value.
        plain = written is None or str(error.instance).lower() == written.lower()
        value = error.instance if plain else written
        yield at, custom.format(value=_plain(value), quoted=quote(value), count=count)
        return
    if kind in ("additionalProperties", "unevaluatedProperties"):
        allowed = _declared_fields(error.schema, root)
        hint = f"; expected one of: {', '.join(sorted(allowed))}" if allowed else ""
        for key in sorted(set(error.instance) - allowed):
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            guess = f" (did you mean '{close[0]}'?)" if close else ""
            yield (key,), f"unknown field {quote(key)}{guess}{hint}"
        return
    if kind == "required":
        # jsonschema reports each missing property as its own error: "'x' is a required property".
        missing = error.message.rsplit(" is a required property", 1)[0]
        try:
            missing = ast.literal_eval(missing)
        except (ValueError, SyntaxError):
            pass
        yield (), f"missing required field '{missing}'"
        return
    if kind == "anyOf" and all(set(s) == {"required"} for s in error.validator_value):
        options = " or ".join(f"'{s['required'][0]}'" for s in error.validator_value)
        yield (), f"needs {options}"
        return
    if kind == "type":
        wanted = error.validator_value
        wanted = wanted if isinstance(wanted, list) else [wanted]
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted if w != "null")
        if not error.absolute_path:  # the whole file: say what it is, never echo its content
            yield (), f"expected {words} at the top level, got {_a_kind(error.instance)}"
            return
        yield (), f"expected {words}, got {_describe(error.instance, written)}"
        return
    if kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)  # from the schema: short
        yield (), f"{_describe(error.instance, written)} is not one of: {choices}"
        return
    # jsonschema's own wording ("-1 is less than the minimum of 0") starts with the
    # value's repr, which may be long: show it as every message shows a value.
    message, shown = error.message, repr(error.instance)
    if message.startswith(shown):
        message = quote(error.instance) + message[len(shown):]
    yield (), message


def _plain(value) -> str:
    """A value in a message without quotes (`got highest`), still short and on one line."""
    return shorten(value, SHOWN_CHARS) if isinstance(value, str) and len(value) <= SHOWN_CHARS else quote(value)


def _describe(value, written: str | None = None) -> str:
    plain = isinstance(value, (int, float)) and written is not None and written.lower() == str(value).lower()
    if written is not None and value is not None and not plain:
        # YAML 1.1 reads `off`, `12:34:56` or `2024-01-01` as non-strings.
        return f"{quote(written)}, which YAML reads as {_kind_of(value)} (quote it to make it a string)"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{_kind_of(value)} {quote(value)}"


def _a_kind(value) -> str:
    """'a list', 'an integer': what kind of value, without the value."""
    names = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a float",
             bool: "a boolean"}
    return names.get(type(value), "a value")


def _kind_of(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {int: "integer", float: "float", str: "string"}
    return names.get(type(value), f"a {type(value).__name__}")

def _declared_fields(schema: dict, root: dict) -> set:
    """Property names a (sub)schema declares, following local $refs and allOf."""
    fields = set(schema.get("properties", {}))
    for sub in schema.get("allOf", []):
        ref = sub.get("$ref", "")
        if ref.startswith("#/$defs/"):
            sub = root["$defs"][ref.split("/")[-1]]
        fields |= _declared_fields(sub, root)
    return fields
