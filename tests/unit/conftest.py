"""Shared helpers for the manifest unit tests (no root, no kernel).

`load(text)` builds a Topology from inline YAML (dedented, named "test.yaml").
`errors(text)` loads text that must be invalid and returns its problems as
"LINE: path: message" strings (the `test.yaml:` prefix dropped), in report order.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from toolkit.errors import ManifestError
from toolkit.manifest import load_topology_text

REPO = Path(__file__).resolve().parents[2]
FILE = "test.yaml"


def _load(text: str):
    return load_topology_text(textwrap.dedent(text), FILE)


def _errors(text: str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        _load(text)
    return [str(p).removeprefix(f"{FILE}:") for p in caught.value.problems]


@pytest.fixture
def load():
    return _load


@pytest.fixture
def errors():
    return _errors


@pytest.fixture
def repo() -> Path:
    return REPO
