"""Golden error output for bad manifests.

Each tests/golden/manifest_errors/CASE.yaml is a bad manifest and CASE.txt the
exact text of the ManifestError it raises (one `FILE:LINE: path: message` per
line, FILE relative to the repository root). After an intended change to the
messages, rewrite the goldens and review the diff:

    NETKEEL_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/unit/test_golden_manifest_errors.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
from golden import UPDATE, check_golden
import yaml

from toolkit.errors import ManifestError
from toolkit.manifest import load_topology

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "golden" / "manifest_errors"
LIBYAML_WORDING = {"yaml_syntax"}  # the loader uses libyaml when present; pure PyYAML words it differently

REQUIRED = {
    "yaml_syntax", "schema_violations", "bad_addresses", "host_bits", "duplicates",
    "unknown_node", "long_and_illegal_ifnames", "unreachable_gateway", "bad_sysctls",
    "everything",
}


def cases() -> list[str]:
    return sorted(p.stem for p in CASES.glob("*.yaml"))


@pytest.mark.parametrize("case", cases())
def test_manifest_errors_match_golden(case, monkeypatch):
    if case in LIBYAML_WORDING and not hasattr(yaml, "CSafeLoader"):
        pytest.skip("YAML syntax messages are libyaml's wording; this PyYAML has no libyaml")
    monkeypatch.chdir(ROOT)  # so that messages name the file relative to the repository
    manifest = (CASES / f"{case}.yaml").relative_to(ROOT).as_posix()
    with pytest.raises(ManifestError) as caught:
        load_topology(manifest)
    text = f"{caught.value}\n"
    check_golden(CASES / f"{case}.txt", text)


def test_every_golden_has_its_manifest_and_the_required_cases_exist():
    goldens = {p.stem for p in CASES.glob("*.txt")}
    assert goldens == set(cases()) or UPDATE
    assert REQUIRED <= set(cases())
