"""JSON Schema (draft 2020-12) validation with messages a person can act on.

jsonschema's own messages are precise but read like a validator's; we rewrite the
common ones and pin each to the line of the offending field.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources

from jsonschema import Draft202012Validator

from .loader import Document


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The packaged schema `name` (e.g. "topology"), as a dict."""
    text = resources.files(__package__).joinpath(f"schemas/{name}.schema.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_problems(doc: Document, name: str) -> list:
    """Every schema violation in `doc`, as Problems (empty when valid)."""
    validator = _validator(name)
    problems = []
    for error in validator.iter_errors(doc.data):
        path = tuple(error.absolute_path)
        for sub_path, message in _explain(error, validator.schema):
            problems.append(doc.problem(path + sub_path, message))
    return problems


_QUOTED = re.compile(r"'([^']*)'")


def _explain(error, root: dict):
    """Yield (extra path, message) pairs for one jsonschema error."""
    kind = error.validator
    if kind in ("additionalProperties", "unevaluatedProperties"):
        allowed = sorted(_declared_fields(error.schema, root))
        head = error.message.split(" was unexpected")[0].split(" were unexpected")[0]
        for key in _QUOTED.findall(head):
            if key in allowed:
                continue  # "unevaluated" only because a sibling schema failed: reported there
            hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
            yield (key,), f"unknown field '{key}'{hint}"
        return
    if kind == "required":
        missing = _QUOTED.findall(error.message)[:1]
        yield (), f"missing required field '{missing[0] if missing else '?'}'"
        return
    if kind == "anyOf" and all(set(s) == {"required"} for s in error.validator_value):
        options = " or ".join(f"'{s['required'][0]}'" for s in error.validator_value)
        yield (), f"needs {options}"
        return
    if kind == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        if error.instance is None and "object" in str(wanted):
            return  # an empty mapping written as `key:` is fine where objects are allowed
        yield (), f"expected {wanted}, got {_describe(error.instance)}"
        return
    if kind == "pattern" and "x-message" in error.schema:
        # Under propertyNames the error sits on the mapping; point at the key itself.
        at = (error.instance,) if "propertyNames" in error.schema_path else ()
        yield at, error.schema["x-message"].format(value=error.instance)
        return
    if kind == "enum":
        choices = ", ".join(str(c) for c in error.validator_value)
        yield (), f"{_describe(error.instance)} is not one of: {choices}"
        return
    if kind == "propertyNames":
        yield (), error.message
        return
    yield (), error.message


def _describe(value) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__.replace('str', 'string')} {value!r}"


def _declared_fields(schema: dict, root: dict) -> set:
    """Property names a (sub)schema declares, following local $refs and allOf."""
    fields = set(schema.get("properties", {}))
    for sub in schema.get("allOf", []):
        ref = sub.get("$ref", "")
        if ref.startswith("#/$defs/"):
            sub = root["$defs"][ref.split("/")[-1]]
        fields |= _declared_fields(sub, root)
    return fields
