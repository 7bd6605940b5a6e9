"""Golden files: expected output kept next to its input. NETKEEL_UPDATE_GOLDENS=1
rewrites them instead of comparing (then read the diff before committing it)."""

from __future__ import annotations

import os
from pathlib import Path

UPDATE = os.environ.get("NETKEEL_UPDATE_GOLDENS") == "1"


def check_golden(golden: Path, text: str) -> None:
    if UPDATE:
        golden.write_text(text)
    assert golden.exists(), f"no golden {golden}; run with NETKEEL_UPDATE_GOLDENS=1 to write it"
    assert text == golden.read_text()
