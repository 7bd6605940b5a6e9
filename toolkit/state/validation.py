"""JSON Schemas for the state files (schemas/*.schema.json), checked on every read:
a state file edited by hand or damaged must give a message naming it, never a traceback."""

from __future__ import annotations

import functools
import json
from pathlib import Path

SCHEMAS = Path(__file__).parent / "schemas"


@functools.lru_cache(maxsize=None)
def _validator(name: str):
    import fastjsonschema  # here: a command that checks no state file (a quick drift) never loads it

    # Compiled once per process: fastjsonschema turns a schema into plain Python,
    # cheap enough to check each of 100,000 journal lines.
    return fastjsonschema.compile(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


def problem(name: str, document) -> str | None:
    """What is wrong with `document` according to schema `name` ("data.tx must be string"), or None."""
    validate = _validator(name)
    from fastjsonschema import JsonSchemaException

    try:
        validate(document)
    except JsonSchemaException as exc:
        return exc.message
    return None
