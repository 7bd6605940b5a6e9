"""This process as the state files record it: when (UTC, to the millisecond) and
which command line. The lock names its holder with these, the journal its
records; one source, so both read alike."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def command_line() -> str:
    return " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
