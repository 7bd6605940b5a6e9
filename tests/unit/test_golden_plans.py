"""Golden plans: the plan for applying an example topology to an empty machine.

One line per action, in plan order: `str(action)`, plus ` [implicit: why]` when
the kernel does it as a side effect; then, indented, the compiled spec the
action carries (each field as JSON), so a change in what the compiler produces
shows here too, not only a change in which actions there are. Rewrite the goldens after an intended change:

    NETKEEL_UPDATE_GOLDENS=1 .venv/bin/python -m pytest tests/unit/test_golden_plans.py
"""

import json
from pathlib import Path

import pytest
from golden import check_golden

from toolkit.manifest.topology import load_topology
from toolkit.kinds import compile_all as desired_resources
from toolkit.planner import diff

ROOT = Path(__file__).resolve().parents[2]
GOLDENS = ROOT / "tests" / "golden" / "plans"


def render(plan) -> str:
    out = []
    for a in plan.actions:
        out.append(str(a) + (f" [implicit: {a.implicit}]" if a.implicit else "") + "\n")
        spec = a.desired.spec if a.desired is not None else ()
        for name, value in spec:
            if name.startswith("_"):
                continue
            if isinstance(value, tuple):  # a chain's rules: one per line
                out.append(f"    {name}:\n")
                out += [f"      - {_plain(item)}\n" for item in value]
            else:
                out.append(f"    {name} = {_plain(value)}\n")
    return "".join(out)


def _plain(value) -> str:
    """A spec value as JSON, with JSON held in strings (rules, chain headers) unwrapped."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            pass  # text that only starts like JSON
    return json.dumps(value, sort_keys=True)


@pytest.mark.parametrize("name", ["two-clients-plain", "two-clients", "bridged-lan", "static-neighbours", "impaired-link"])
def test_plan_from_empty_matches_golden(name):
    topology = load_topology(ROOT / "topologies" / f"{name}.yaml")
    text = render(diff(desired_resources(topology), ()))
    check_golden(GOLDENS / f"{name}.txt", text)
