"""What the benchmarks share: timing and cleaning up their namespaces."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.kernel import netns  # noqa: E402


def timed(fn):
    """(seconds, result) of calling fn()."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def peak_rss_mb() -> float:
    """The largest peak resident memory of the child processes waited for so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def remove_all(prefix: str) -> None:
    """Remove every namespace whose name starts with `prefix` (one `ip -batch`)."""
    names = [name for name in netns.list_names() if name.startswith(prefix)]
    if names:
        subprocess.run(["ip", "-batch", "-"], input="".join(f"netns del {x}\n" for x in names),
                       text=True, check=True)
