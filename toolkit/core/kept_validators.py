"""fastjsonschema validators whose compiled code is kept beside their schemas,
as Python keeps bytecode.

Generating a validator's Python from a schema and compiling it costs a command
20-70 ms per schema (the manifest's and the state files' alike); loading the
compiled code kept in SCHEMA_DIRECTORY/__pycache__/ (named by a digest of the
schema, fastjsonschema's version and the bytecode's magic number) costs about
a millisecond. Where that cannot be written or read (a read-only install, a
damaged file) the validator is made in memory, as it always was.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import marshal
import os
import re
import sys


def fast_validator(schema: dict, schema_directory: str, name: str):
    """fastjsonschema's validator for `schema` (the file `name`.schema.json in
    `schema_directory`): a function raising JsonSchemaException."""
    import fastjsonschema  # here: a command that validates nothing never loads it

    try:
        return _kept(fastjsonschema, schema, schema_directory, name)
    except Exception:  # noqa: BLE001 - a read-only install, a damaged file: generate it here
        return fastjsonschema.compile(schema)


def _kept(fastjsonschema, schema: dict, schema_directory: str, name: str):
    key = json.dumps([schema, fastjsonschema.VERSION, importlib.util.MAGIC_NUMBER.hex()], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    directory = os.path.join(schema_directory, "__pycache__")
    stem = f"validate_{name}_"
    path = os.path.join(directory, f"{stem}{digest}.{sys.implementation.cache_tag}.bin")
    try:
        with open(path, "rb") as kept:
            return validator_of(marshal.loads(kept.read()), name)
    except Exception:  # noqa: BLE001 - none yet, or damaged (not code, no validator): made again
        pass
    source = fastjsonschema.compile_to_code(schema)
    entry = re.search(r"^def (\w+)", source, re.MULTILINE).group(1)  # the schema's own: the first
    code = compile(f"{source}\n\nvalidate = {entry}\n", f"<validator of {name}.schema.json>", "exec")
    try:
        os.makedirs(directory, exist_ok=True)
        temp = f"{path}.{os.getpid()}.tmp"
        with open(temp, "wb") as out:
            out.write(marshal.dumps(code))
        os.replace(temp, path)  # whole or not at all, whoever writes it at the same time
        for other in os.listdir(directory):  # an edited schema's, or another Python's: never read again
            if other.startswith(stem) and other != os.path.basename(path) and not other.endswith(".tmp"):
                os.unlink(os.path.join(directory, other))
    except OSError:
        pass  # a read-only install: the code made here serves this command
    return validator_of(code, name)


def validator_of(code, name: str):
    """The validator a kept code object defines; TypeError if it defines none."""
    namespace = {"__name__": f"{__package__}._validate_{name}"}
    exec(code, namespace)  # noqa: S102 - code generated from our own schema, kept as Python keeps bytecode
    validate = namespace["validate"]
    if not callable(validate):
        raise TypeError("not a validator")
    return validate
