"""The schema validators' compiled code, kept beside the schemas
(manifest/schema._fast_validator): the same answers as made in memory,
made again when damaged, made in memory where it cannot be kept."""

import os

import fastjsonschema
import pytest

from toolkit.manifest import schema


def _fresh(monkeypatch, tmp_path):
    """The validators kept under tmp_path instead of the package."""
    schema._fast_validator.cache_clear()
    real_join = os.path.join

    def join(first, *rest):
        if rest[:2] == ("schemas", "__pycache__"):
            return real_join(str(tmp_path), *rest)
        return real_join(first, *rest)

    monkeypatch.setattr(os.path, "join", join)
    return tmp_path / "schemas" / "__pycache__"


DOCUMENTS = [{"tables": {"t": {}}}, {"tables": 5}, {"tables": {"t": {"chains": {"c": {"rules": [{"dport": "x"}]}}}}},
             {}, {"tables": {"1bad": {}}}]


def _answer(validate, document):
    try:
        validate(document)
        return "valid"
    except fastjsonschema.JsonSchemaException as exc:
        return str(exc)


def test_a_kept_validator_answers_as_one_made_in_memory(monkeypatch, tmp_path):
    kept_dir = _fresh(monkeypatch, tmp_path)
    made = fastjsonschema.compile(schema.load_schema("policy"))
    first = schema._fast_validator("policy")
    assert len(list(kept_dir.iterdir())) == 1
    schema._fast_validator.cache_clear()
    again = schema._fast_validator("policy")  # loaded from what was kept
    for document in DOCUMENTS:
        assert _answer(first, document) == _answer(again, document) == _answer(made, document)


def test_a_damaged_kept_validator_is_made_again(monkeypatch, tmp_path):
    kept_dir = _fresh(monkeypatch, tmp_path)
    schema._fast_validator("policy")
    kept, = kept_dir.iterdir()
    kept.write_bytes(kept.read_bytes()[:100])
    schema._fast_validator.cache_clear()
    validate = schema._fast_validator("policy")
    assert _answer(validate, {"tables": 5}) != "valid" and _answer(validate, DOCUMENTS[0]) == "valid"
    assert len(kept.read_bytes()) > 100  # whole again


def test_where_nothing_can_be_kept_the_validator_is_made_in_memory(monkeypatch, tmp_path):
    kept_dir = _fresh(monkeypatch, tmp_path)
    kept_dir.parent.mkdir()
    kept_dir.write_text("a file where the directory would be")
    validate = schema._fast_validator("topology")
    assert _answer(validate, {"name": "x", "nodes": {}}) == _answer(
        fastjsonschema.compile(schema.load_schema("topology")), {"name": "x", "nodes": {}})
    schema._fast_validator.cache_clear()


def test_a_kept_file_that_is_no_validator_is_made_again(monkeypatch, tmp_path):
    import marshal

    kept_dir = _fresh(monkeypatch, tmp_path)
    schema._fast_validator("policy")
    kept, = kept_dir.iterdir()
    kept.write_bytes(marshal.dumps(compile("validate = 5", "x", "exec")))  # loads, but validates nothing
    schema._fast_validator.cache_clear()
    validate = schema._fast_validator("policy")
    assert _answer(validate, {"tables": 5}) != "valid"
    assert callable(schema._validator_of(marshal.loads(kept.read_bytes()), "policy"))  # made again


def test_a_validator_of_an_edited_schema_replaces_the_old_one(monkeypatch, tmp_path):
    kept_dir = _fresh(monkeypatch, tmp_path)
    schema._fast_validator("policy")
    old, = kept_dir.iterdir()
    monkeypatch.setattr(schema, "load_schema", lambda name: {"type": "object"})
    schema._fast_validator.cache_clear()
    schema._fast_validator("policy")
    assert [p.name for p in kept_dir.iterdir()] != [old.name] and len(list(kept_dir.iterdir())) == 1
    schema._fast_validator.cache_clear()
