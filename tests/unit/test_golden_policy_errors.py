"""Golden error output for bad policy files.

Each tests/golden/policy_errors/CASE.yaml is a bad policy file and CASE.txt the
exact text of the ManifestError its problems make (one `FILE:LINE: path: message`
per line, FILE relative to the repository root). After an intended change to the
messages, rewrite the goldens and review the diff:

    NETKEEL_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/unit/test_golden_policy_errors.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
from golden import UPDATE, check_golden

from toolkit.errors import ManifestError
from toolkit.manifest.policy import load_policy_text

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "golden" / "policy_errors"

REQUIRED = {
    "unknown_field", "bad_address", "port_without_ports", "jump_to_missing_chain",
    "nat_in_filter_chain", "set_elements", "everything",
}


def cases() -> list[str]:
    return sorted(p.stem for p in CASES.glob("*.yaml"))


@pytest.mark.parametrize("case", cases())
def test_policy_errors_match_golden(case):
    policy = (CASES / f"{case}.yaml").relative_to(ROOT).as_posix()
    tables, problems = load_policy_text((ROOT / policy).read_text(), policy)
    assert problems, f"{policy} is valid; a golden case must have problems"
    text = f"{ManifestError(problems)}\n"
    check_golden(CASES / f"{case}.txt", text)


def test_every_golden_has_its_policy_and_the_required_cases_exist():
    goldens = {p.stem for p in CASES.glob("*.txt")}
    assert goldens == set(cases()) or UPDATE
    assert REQUIRED <= set(cases())
