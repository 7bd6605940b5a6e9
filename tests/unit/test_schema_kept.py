"""Schema validators whose compiled code is kept beside the schemas
(core/kept_validators.py, for manifest/schema.py and state/validation.py):
the same answers as made in memory, made again when damaged or not a
validator, made in memory where nothing can be kept, an edited schema's
replacing the old one."""

import json
import marshal

import fastjsonschema

from toolkit.core import kept_validators
from toolkit.manifest import schema
from toolkit.state import validation

POLICY = schema.load_schema("policy")
DOCUMENTS = [{"tables": {"t": {}}}, {"tables": 5}, {"tables": {"t": {"chains": {"c": {"rules": [{"dport": "x"}]}}}}},
             {}, {"tables": {"1bad": {}}}]


def _answer(validate, document):
    try:
        validate(document)
        return "valid"
    except fastjsonschema.JsonSchemaException as exc:
        return str(exc)


def test_a_kept_validator_answers_as_one_made_in_memory(tmp_path):
    made = fastjsonschema.compile(POLICY)
    first = kept_validators.fast_validator(POLICY, str(tmp_path), "policy")
    assert len(list((tmp_path / "__pycache__").iterdir())) == 1
    again = kept_validators.fast_validator(POLICY, str(tmp_path), "policy")  # loaded from what was kept
    for document in DOCUMENTS:
        assert _answer(first, document) == _answer(again, document) == _answer(made, document)


def test_a_damaged_kept_validator_is_made_again(tmp_path):
    kept_validators.fast_validator(POLICY, str(tmp_path), "policy")
    kept, = (tmp_path / "__pycache__").iterdir()
    kept.write_bytes(kept.read_bytes()[:100])
    validate = kept_validators.fast_validator(POLICY, str(tmp_path), "policy")
    assert _answer(validate, {"tables": 5}) != "valid" and _answer(validate, DOCUMENTS[0]) == "valid"
    assert len(kept.read_bytes()) > 100  # whole again


def test_where_nothing_can_be_kept_the_validator_is_made_in_memory(tmp_path):
    (tmp_path / "__pycache__").write_text("a file where the directory would be")
    topology = schema.load_schema("topology")
    validate = kept_validators.fast_validator(topology, str(tmp_path), "topology")
    good = {"name": "x", "nodes": {"a": {}}}
    assert _answer(validate, good) == _answer(fastjsonschema.compile(topology), good) == "valid"
    assert _answer(validate, {"nodes": 3}) != "valid"


def test_a_kept_file_that_is_no_validator_is_made_again(tmp_path):
    kept_validators.fast_validator(POLICY, str(tmp_path), "policy")
    kept, = (tmp_path / "__pycache__").iterdir()
    kept.write_bytes(marshal.dumps(compile("validate = 5", "x", "exec")))  # loads, but validates nothing
    validate = kept_validators.fast_validator(POLICY, str(tmp_path), "policy")
    assert _answer(validate, {"tables": 5}) != "valid"
    assert callable(kept_validators.validator_of(marshal.loads(kept.read_bytes()), "policy"))  # made again


def test_a_validator_of_an_edited_schema_replaces_the_old_one(tmp_path):
    kept_validators.fast_validator(POLICY, str(tmp_path), "policy")
    old, = (tmp_path / "__pycache__").iterdir()
    validate = kept_validators.fast_validator({"type": "object"}, str(tmp_path), "policy")
    assert _answer(validate, {"tables": 5}) == "valid"
    now = list((tmp_path / "__pycache__").iterdir())
    assert len(now) == 1 and now[0].name != old.name


def test_the_manifest_and_state_schemas_are_checked_by_kept_validators():
    schema._fast_validator.cache_clear()
    validation._validator.cache_clear()
    assert _answer(schema._fast_validator("policy"), {"tables": 5}) != "valid"
    assert validation.problem("lease", {"not": "a lease"}) is not None
    kept = {p.name.split("_")[1] for p in (validation.SCHEMAS / "__pycache__").glob("validate_*.bin")}
    assert "lease" in kept
    made = fastjsonschema.compile(json.loads((validation.SCHEMAS / "lease.schema.json").read_text()))
    assert _answer(made, {"not": "a lease"}) != "valid"
