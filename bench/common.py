"""What the benchmarks share: timing whole processes and their peak memory,
byte-compiling netkeel first, sweeping sizes in child processes, and cleaning up
their namespaces."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.kernel import netns  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NETKEEL = str(Path(sys.executable).with_name("netkeel"))
RUNS = 3  # of each no-op and drift figure, the median reported


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


def byte_compile() -> None:
    """Byte-compile the netkeel package, as scripts/setup does for users
    (`python -m compileall -q toolkit`; untimed).

    netkeel runs under invoke, which turns off writing .pyc files (its
    --write-pyc), and PYTHONDONTWRITEBYTECODE may be set too: without this every
    timed process would compile netkeel's modules from source again. compileall
    writes them regardless of both; files already up to date are skipped."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "toolkit"], cwd=ROOT, check=True)


@dataclass
class Run:
    """A child process that ran to its end: exit code, output, wall time and peak RSS."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    rss_mb: float


def run(argv: list[str], env: dict | None = None) -> Run:
    """Run argv to its end and measure that process alone: the wall time from
    start to exit, and its peak resident memory (its own children's included)
    from wait4 (RUSAGE_CHILDREN is one high-water mark over every child so far,
    `nft` and `ip` included). Output goes to temporary files, never a pipe that
    could fill. If this is interrupted (Ctrl-C), the process is killed and reaped
    before the exception goes on."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Run(proc.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
                   seconds, usage.ru_maxrss / 1024)


class Netkeel:
    """`netkeel COMMAND MANIFEST --ns-prefix PREFIX`, each a whole process as a
    user meets it (start-up and imports included), with a state directory of its
    own; checks each exit code and keeps the largest peak RSS of its processes."""

    def __init__(self, manifest: Path, prefix: str, state_dir: Path):
        self.manifest, self.prefix = manifest, prefix
        # Made empty, as a user's is after any first apply: a plan keeps its caches only
        # in a state directory that exists (it never makes one).
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = dict(os.environ, NETKEEL_STATE_DIR=str(state_dir))
        self.peak_rss_mb = 0.0

    def __call__(self, command: str, *args: str, expect: int = 0) -> Run:
        result = run([NETKEEL, command, str(self.manifest), "--ns-prefix", self.prefix, *args], self.env)
        self.peak_rss_mb = max(self.peak_rss_mb, result.rss_mb)
        if result.returncode != expect:
            raise AssertionError(f"netkeel {command}: exit {result.returncode}, expected {expect}\n"
                                 f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
        return result


def time_noop_and_drift(netkeel: Netkeel, figures: dict) -> None:
    """Time a no-op re-apply (which must change nothing) and a drift check (exit 0)
    of a built lab, into figures["noop_apply_s"] and figures["drift_s"] (each the
    median of RUNS runs: a figure of a few tens of ms moves with the machine): both as
    users run them, so answered from the in-sync verdict the apply kept
    (state/verdicts.py). Then figures["drift_compared_s"]: a drift that compares
    the whole state (`--json` output is never answered from a verdict; the
    compile cache and the ruleset memo still serve it)."""
    noops = [netkeel("apply") for _ in range(RUNS)]
    for noop in noops:
        assert "already in sync" in noop.stdout, f"re-apply changed something: {noop.stdout[-2000:]}"
    figures["noop_apply_s"] = statistics.median(r.seconds for r in noops)
    figures["drift_s"] = statistics.median(netkeel("drift").seconds for _ in range(RUNS))  # exit 0: in sync
    compared = [netkeel("drift", "--json") for _ in range(RUNS)]
    for result in compared:
        assert '"outcome": "in_sync"' in result.stdout, result.stdout[-2000:]
    figures["drift_compared_s"] = statistics.median(r.seconds for r in compared)
    print(f"no-op apply: {figures['noop_apply_s']:.2f} s; drift: {figures['drift_s']:.2f} s "
          f"(both from the verdict the apply kept); drift comparing everything (--json): "
          f"{figures['drift_compared_s']:.2f} s", flush=True)


def print_peak_rss(netkeel_mb: float) -> None:
    """One line: the largest netkeel process (what the scripts report) and, for
    comparison, the largest child process of any kind (`nft -f`, `ip`, compileall)."""
    print(f"peak RSS: largest netkeel process {netkeel_mb:.0f} MB; "
          f"largest child process of any kind {peak_rss_mb():.0f} MB", flush=True)


def write_figures(path: str | None, figures: dict) -> None:
    """Write a run's figures (full precision) as JSON where a --sweep parent reads them."""
    if path:
        Path(path).write_text(json.dumps(figures))


def run_sizes(script: str, option: str, sizes: list[int], prefix_of) -> list[dict]:
    """Run `script OPTION SIZE --figures FILE` once per size, one after the
    other, each in a child process of its own: fresh namespaces and state
    directory, and a peak RSS of that size alone. The child prints to this
    terminal as it goes; its figures come back through FILE, at full precision.

    Each child is waited for, whatever happens. On Ctrl-C (which the child gets
    too) it is given time to remove its namespaces itself, then interrupted,
    then killed; in any case, namespaces starting with prefix_of(child's pid)
    are removed here afterwards too. Returns each size's figures, in order."""
    results = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="netkeel-sweep-") as tmp:
            path = Path(tmp) / "figures.json"
            print(f"== {Path(script).name} {option} {size} (a child process of its own)", flush=True)
            proc = subprocess.Popen([sys.executable, script, option, str(size), "--figures", str(path)])
            try:
                proc.wait()
            except BaseException as error:
                _end(proc, interrupted=isinstance(error, KeyboardInterrupt))
                raise
            finally:
                remove_all(prefix_of(proc.pid))
            if proc.returncode != 0:
                raise SystemExit(f"{Path(script).name} {option} {size}: exit {proc.returncode}")
            results.append(json.loads(path.read_text()))
    return results


def _end(proc: subprocess.Popen, interrupted: bool, grace: float = 60) -> None:
    """Wait for proc to end: first on its own if it got the same Ctrl-C, then
    after SIGINT (its `finally` removes its namespaces), then after SIGKILL."""
    steps = ([None] if interrupted else []) + [signal.SIGINT, signal.SIGKILL]
    for sig in steps:
        if sig is not None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def sizes_from_arguments(option: str, default: int, sweep_sizes: str, minimum: int, description: str):
    """Parse `--OPTION N | --sweep [--sizes A,B,...] [--figures FILE]`, the command
    line both scaling benchmarks take: (sizes to sweep or None, the one size, --figures)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(f"--{option}", type=int, default=default)
    parser.add_argument("--sweep", action="store_true", help="run the whole measurement once per --sizes")
    parser.add_argument("--sizes", default=sweep_sizes, help=f"{option} for --sweep (default {sweep_sizes})")
    parser.add_argument("--figures", help="also write the figures as JSON to this file (for --sweep)")
    args = parser.parse_args()
    if args.sweep:
        sizes = [int(x) for x in args.sizes.split(",")]
        if len(sizes) < 2 or min(sizes) < minimum:
            parser.error(f"--sizes: at least two sizes, each of at least {minimum} {option}")
        return sizes, None, args.figures
    one = getattr(args, option)
    if one < minimum:
        parser.error(f"--{option}: at least {minimum}")
    return None, one, args.figures
