"""JSON Schema (draft 2020-12) validation with messages a person can act on.

jsonschema's own messages are precise but read like a validator's; we rewrite the
common ones and pin each to the line of the offending field.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from functools import lru_cache
from importlib import resources

import fastjsonschema
from jsonschema import Draft202012Validator, validators

from .loader import Document


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The packaged schema `name` (e.g. "topology"), as a dict."""
    text = resources.files(__package__).joinpath(f"schemas/{name}.schema.json").read_text()
    return json.loads(text)


def _is_integer(checker, value) -> bool:
    # jsonschema counts 9000.0 as an integer; a manifest that says `mtu: 9000.0`
    # almost certainly did not mean a float, but netkeel should not guess.
    return isinstance(value, int) and not isinstance(value, bool)


_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


@lru_cache(maxsize=None)
def _validator(name: str):
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return _Validator(schema)


@lru_cache(maxsize=None)
def _fast_validator(name: str):
    return fastjsonschema.compile(load_schema(name))


def schema_problems(doc: Document, name: str) -> list:
    """Every schema violation in `doc`, as Problems (empty when valid).

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
    problems = []
    for error in validator.iter_errors(doc.data):
        path = tuple(error.absolute_path)
        for sub_path, message in _explain(error, validator.schema, doc.written.get(path)):
            problems.append(doc.problem(path + sub_path, message))
    return problems


_QUOTED = re.compile(r"'([^']*)'")
_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "boolean": "a boolean", "null": "nothing", "number": "a number"}


def _explain(error, root: dict, written: str | None):
    """Yield (extra path, message) pairs for one jsonschema error. `written` is the
    scalar's text as typed, when YAML made something else of it."""
    kind = error.validator
    custom = error.schema.get("x-messages", {}).get(kind)
    if custom:
        # Under propertyNames the error sits on the mapping; point at the key itself.
        at = (error.instance,) if "propertyNames" in error.schema_path else ()
        count = len(error.instance) if isinstance(error.instance, (list, dict, str)) else None
        yield at, custom.format(value=written or error.instance, count=count)
        return
    if kind in ("additionalProperties", "unevaluatedProperties"):
        allowed = _declared_fields(error.schema, root)
        hint = f"; expected one of: {', '.join(sorted(allowed))}" if allowed else ""
        for key in sorted(set(error.instance) - allowed):
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            guess = f" (did you mean '{close[0]}'?)" if close else ""
            yield (key,), f"unknown field '{key}'{guess}{hint}"
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
        yield (), f"expected {words}, got {_describe(error.instance, written)}"
        return
    if kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        yield (), f"{_describe(error.instance, written)} is not one of: {choices}"
        return
    yield (), error.message


def _describe(value, written: str | None = None) -> str:
    plain = isinstance(value, (int, float)) and written is not None and written.lower() == str(value).lower()
    if written is not None and value is not None and not plain:
        # YAML 1.1 reads `off`, `12:34:56` or `2024-01-01` as non-strings.
        return f"{written!r}, which YAML reads as {_kind_of(value)} (quote it to make it a string)"
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{_kind_of(value)} {value!r}"


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
