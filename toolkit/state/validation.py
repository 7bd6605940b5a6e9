"""JSON Schemas for the state files (schemas/*.schema.json), checked on every read:
a state file edited by hand or damaged must give a message naming it, never a traceback."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ..core.kept_validators import fast_validator

SCHEMAS = Path(__file__).parent / "schemas"


@functools.lru_cache(maxsize=None)
def _validator(name: str):
    # Made once per process: fastjsonschema turns a schema into plain Python, cheap
    # enough to check each of 100,000 journal lines; its compiled code is kept beside
    # the schemas (a command reading three state files paid 25-70 ms to make them).
    return fast_validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()), str(SCHEMAS), name)


def problem(name: str, document) -> str | None:
    """What is wrong with `document` according to schema `name` ("data.tx must be string"), or None."""
    validate = _validator(name)
    from fastjsonschema import JsonSchemaException

    try:
        validate(document)
    except JsonSchemaException as exc:
        return exc.message
    return None
