"""The JSON a state file is written with: digests are taken of canonical_json's
bytes (a snapshot's seal, a table's content in the ruleset memo), so they must
be json.dumps' bytes whichever library wrote them; readable_json reads back
as the document."""

from __future__ import annotations

import hashlib
import json
import random

import pytest

from toolkit.state import statedir
from toolkit.state.snapshots import content_digest

# Every ASCII character (controls, quote, backslash, DEL), some beyond.
ALPHABET = [chr(c) for c in range(128)] + ["é", "€", "\u2028", "\U0001f600", "\ud800"]


def document(rng: random.Random, depth: int = 0):
    kinds = ["str", "int", "none", "bool", "float", "big"] + (["list", "tuple", "dict"] * 2 if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(rng.choice(ALPHABET if rng.random() < 0.3 else ALPHABET[32:127])
                       for _ in range(rng.randrange(6)))
    if kind == "int":
        return rng.randrange(-2 ** 63, 2 ** 63)
    if kind == "big":
        return rng.choice([2 ** 64, -2 ** 64 - 1, 10 ** 30])
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "float":
        return rng.choice([0.1, 1e16, 1e-05, 100.0, -0.0, float("nan"), float("inf"), 2.5e-300])
    items = [document(rng, depth + 1) for _ in range(rng.randrange(5))]
    if kind == "list":
        return items
    if kind == "tuple":
        return tuple(items)
    return {document(rng, 9) if rng.random() < 0.1 else str(rng.randrange(100)): item for item in items}


def test_canonical_json_is_json_dumps_byte_for_byte():
    rng = random.Random(20261203)
    by_orjson = 0
    for _ in range(20_000):
        data = document(rng)
        for sort_keys in (False, True):
            try:
                expected = json.dumps(data, separators=(",", ":"), sort_keys=sort_keys).encode()
            except TypeError:  # json cannot sort mixed keys; neither is asked of it
                continue
            assert statedir.canonical_json(data, sort_keys=sort_keys) == expected, data
        by_orjson += statedir._plain(data)
    assert by_orjson > 5_000  # the fast path was taken, not only the fallback


@pytest.mark.parametrize("data", [
    {"rules": ["ip saddr 10.0.0.1 drop"] * 3, "n": 1}, ["\x7f"], ["é"], [1.5], [2 ** 70], {"a": {1: 2}},
    ("a", ["b", None, True]), "\x00\x1f\"\\"])
def test_canonical_json_of_chosen_documents(data):
    assert statedir.canonical_json(data, sort_keys=True) == json.dumps(data, separators=(",", ":"),
                                                                         sort_keys=True).encode()


def test_readable_json_reads_back_as_written():
    rng = random.Random(7)
    for _ in range(3_000):
        data = document(rng)
        try:
            json.dumps(data, sort_keys=True)
        except TypeError:  # json cannot sort mixed keys: write_json never could either
            with pytest.raises(TypeError):
                statedir.readable_json(data)
            continue
        expected = json.dumps(json.loads(json.dumps(data)), sort_keys=True)
        assert json.dumps(json.loads(statedir.readable_json(data)), sort_keys=True) == expected


def test_a_snapshot_seal_is_what_it_was_before_the_writer_changed():
    # The digest older netkeel wrote into its snapshots: they must still verify.
    data = {"format": 2, "id": "x", "resources": [{"kind": "nft_table", "spec": [["rules input", ["a", "b"]]]}],
            "sha256": "ignored", "note": "naïve"}
    content = {k: v for k, v in data.items() if k != "sha256"}
    assert content_digest(data) == hashlib.sha256(json.dumps(content, sort_keys=True,
                                                             separators=(",", ":")).encode()).hexdigest()


def test_a_sealed_file_too_large_to_be_read_is_not_written(tmp_path, monkeypatch):
    """Past SEALED_LIMIT a sealed file is a miss, unread: writing one would only
    cost its time at every command."""
    state = statedir.StateDir(tmp_path / "state")
    state.ensure()
    monkeypatch.setattr(statedir, "SEALED_LIMIT", 200)
    with pytest.raises(ValueError, match="more than a sealed file may hold"):
        state.write_sealed("cache/x.json", ["x" * 150])
    assert not state.path("cache/x.json").exists()
    state.write_sealed("cache/x.json", ["x" * 50])
    assert state.read_sealed("cache/x.json") == [b"x" * 50]


def test_a_verdict_of_a_large_lab_is_read_without_importing_orjson():
    """orjson imports dataclasses, inspect and ast (19 ms): a quick answer
    reading a 1,000-node lab's verdict (125 KB) paid that for a 2 ms read."""
    import subprocess
    import sys

    code = ("import sys\nfrom toolkit.state.statedir import parse_sealed_json\n"
            "document = {'names': [f'lab-n{i}' for i in range(10_000)], 'marks': {str(i): i for i in range(5_000)}}\n"
            "import json\ntext = json.dumps(document).encode()\nassert len(text) > 130_000\n"
            "assert parse_sealed_json(text) == document\n"
            "print(sorted(m for m in ('orjson', 'dataclasses', 'inspect') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert found.stdout.strip() == "[]"
    document = {"names": [f"lab-n{i}" for i in range(10_000)], "marks": {str(i): i for i in range(5_000)}}
    # Once orjson is imported (a command reading megabytes), it reads what is past SMALL.
    big = json.dumps(document).encode()
    assert statedir.parse_sealed_json(big) == document
