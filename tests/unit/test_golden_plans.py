"""Golden plans: the plan for applying an example topology to an empty machine.

One line per action, in plan order: `str(action)`, plus ` [implicit: why]` when
the kernel does it as a side effect. Rewrite the goldens after an intended change:

    NETKEEL_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/unit/test_golden_plans.py
"""

from pathlib import Path

import pytest
from golden import check_golden

from toolkit.manifest.topology import load_topology
from toolkit.kinds import compile_all as desired_resources
from toolkit.planner import diff

ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ROOT / "tests" / "golden" / "plans"


def render(plan) -> str:
    return "".join(str(a) + (f" [implicit: {a.implicit}]" if a.implicit else "") + "\n"
                   for a in plan.actions)


@pytest.mark.parametrize("name", ["two-clients-plain", "two-clients", "bridged-lan"])
def test_plan_from_empty_matches_golden(name):
    topology = load_topology(ROOT / "topologies" / f"{name}.yaml")
    text = render(diff(desired_resources(topology), ()))
    check_golden(GOLDENS / f"{name}.txt", text)
