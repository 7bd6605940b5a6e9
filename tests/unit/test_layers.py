"""The package's imports flow one way:

    cli -> runtime (engine, transaction) -> planner and kinds -> model

with the bottom layer (errors, core, kinds) importing nothing above it, and
the backends (kernel) and the state directory (state) importing only the
bottom layer. Every import in toolkit/, at module level or inside a function,
is checked, so the rule stays true as the code grows.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "toolkit"
BOTTOM = {"errors", "core", "kinds", "model"}

# package -> what it may import (besides itself)
ALLOWED = {
    "errors": set(),
    "core": {"errors", "kinds"},
    "kinds": {"errors", "core", "model"},
    "model": {"errors", "core"},
    "kernel": BOTTOM,
    "state": BOTTOM,
    "manifest": {"errors", "core", "model"},
    "planner": BOTTOM,
    "runtime": BOTTOM | {"planner", "state"},
    "report": BOTTOM | {"planner"},
    "chaos": BOTTOM | {"planner", "state", "runtime"},
    "experiment": BOTTOM | {"planner", "state", "runtime", "chaos"},
    "doctor": BOTTOM | {"planner", "state", "runtime", "chaos", "experiment", "vrrp"},
    "cli": BOTTOM | {"planner", "state", "runtime", "chaos", "experiment", "doctor", "report", "manifest", "kernel",
            "vrrp", "__version__"},
    "vrrp": set(),  # the speaker runs alone in its namespace: the standard library only
    "__init__": set(),
}


def _layer(relative: Path) -> str:
    first = relative.parts[0]
    return first[:-3] if first.endswith(".py") else first


def _imports(path: Path, package: tuple):
    """(line, top-level toolkit package) for each import of toolkit code in
    `path`, whose own package (below toolkit/) is `package`."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                name = node.module or ""
                if name == "toolkit" or name.startswith("toolkit."):
                    parts = name.split(".")[1:] or [alias.name for alias in node.names]
                    yield node.lineno, parts[0]
                continue
            base = list(package[:len(package) - (node.level - 1)])
            target = base + (node.module.split(".") if node.module else [])
            if target:
                yield node.lineno, target[0]
            else:  # `from .. import x` at the top: x is a package
                for alias in node.names:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("toolkit."):
                    yield node.lineno, alias.name.split(".")[1]


def test_imports_flow_one_way():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        layer = _layer(relative)
        package = relative.parts[:-1]  # what relative imports resolve against
        for line, target in _imports(path, package):
            if target != layer and target not in ALLOWED.get(layer, set()):
                wrong.append(f"toolkit/{relative}:{line}: {layer} imports {target}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path):
    """The walk must find relative imports, or the test above could never fail."""
    sample = tmp_path / "x.py"
    sample.write_text("from ..runtime.engine import Reconciler\n\ndef f():\n    from ...cli import tasks\n")
    found = list(_imports(sample, ("state",)))
    assert (1, "runtime") in found


def test_no_code_branches_on_a_kind_name_outside_the_kinds():
    """Kind names appear as strings only in the kind's own module (and its
    kernel side, kernel/<kind>.py); everything else asks the registry."""
    from toolkit.kinds import NAMES

    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("kinds", "kernel", "manifest"):
            continue  # manifest: nft JSON keys ("addr") share some of these words
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in NAMES:
                        offenders.append(f"toolkit/{relative}:{node.lineno}: compares with {side.value!r}")
    assert not offenders, "\n".join(offenders)


def test_test_file_names_are_unique_across_tiers():
    """`invoke test` collects both tiers in one pytest run, which refuses two test
    modules of the same name (rootdir-relative imports)."""
    tests = Path(__file__).resolve().parents[1]
    names = [p.name for tier in ("unit", "integration") for p in (tests / tier).glob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
