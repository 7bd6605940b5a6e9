#!/usr/bin/env python3
"""Benchmark: build an N-node topology with netkeel and with `ip -batch`.

The topology is a binary tree of namespaces: node i links to node (i-1)//2 with
a veth pair, a /30 on each link (parent .1, child .2), every device and lo up,
and a route per node (children: default via the parent; the root: a prefix via
its first child). The baseline builds the same thing with one `ip -batch` for
namespaces and veth pairs, then one `ip -n NS -batch` per namespace for
addresses, link state and routes (ip's batch mode cannot switch namespaces).

Both run from this script, one after the other, with the namespaces removed and
the kernel given time to settle in between; netkeel is byte-compiled first
(untimed), as scripts/setup does for users. Then a no-op re-apply and a drift
check are timed on the netkeel build, as users run them (answered from the
in-sync verdict the apply kept: every namespace read again, nftables by cookie
and generation, nothing loaded or compared), and a drift that compares the
whole state (`drift --json`, never answered from a verdict). Every netkeel figure is a whole `netkeel`
process (start-up and imports included), as the `ip` baseline is; the peak RSS is
the largest of the netkeel processes' (from wait4, each process alone). All
namespaces (prefix nkb<pid>-) and the temporary directory are removed at the
end, even on failure or Ctrl-C. Last line:

    nodes=N apply_s=A ip_batch_s=B apply_vs_ip_batch=R noop_apply_s=C drift_s=D peak_rss_mb=M

With --sweep, that runs once per size (--sizes, default 250,500,1000,2000), each
in a child process of its own (fresh namespaces, state directory and peak RSS).
Issue 13's targets: seconds per node of apply, no-op and drift within 1.3x of
the first size's at every size, peak RSS at the largest size <= 200 MB, and the
1,000-node apply <= 1.2x `ip -batch`. It prints per size each figure in ms per
node and its ratio to the first size's, the peak RSS, and the verdicts; last line:

    sweep sizes=250,500,1000,2000 worst_per_node_ratio=R peak_rss_mb_at_max=M
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (byte_compile, Netkeel, print_peak_rss, remove_all,
                    run_sizes, sizes_from_arguments, time_noop_and_drift, timed, write_figures)  # noqa: E402

PER_NODE = ["apply_s", "noop_apply_s", "drift_s", "drift_compared_s"]  # should grow linearly with the nodes
PER_NODE_LIMIT = 1.3  # times the first size's seconds per node
RSS_LIMIT_MB = 200  # at the largest size
IP_BATCH_LIMIT = (1000, 1.2)  # apply_vs_ip_batch at this many nodes


def prefix_of(pid: int) -> str:
    return f"nkb{pid}-"


def link_net(i: int) -> tuple[str, str]:
    """Parent and child address of link i (1-based), a /30 each."""
    base = (10 << 24) | (i << 2)
    a, b = base + 1, base + 2
    fmt = lambda n: f"{n >> 24}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"  # noqa: E731
    return fmt(a), fmt(b)


def manifest(n: int) -> str:
    lines = ["name: scale", "nodes:"]
    for i in range(n):
        lines.append(f"  n{i}:")
        if i == 0 and n > 1:
            lines.append(f"    routes: [{{to: 192.0.2.0/24, via: {link_net(1)[1]}}}]")
        elif i > 0:
            lines.append(f"    routes: [{{to: default, via: {link_net(i)[0]}}}]")
    lines.append("links:")
    for i in range(1, n):
        parent, child = link_net(i)
        lines.append(f"  - endpoints:\n"
                     f"      - {{node: n{i}, interface: up0, addresses: [{child}/30]}}\n"
                     f"      - {{node: n{(i - 1) // 2}, interface: d{i}, addresses: [{parent}/30]}}")
    return "\n".join(lines) + "\n"


def ip_batch_build(n: int, prefix: str) -> None:
    ns = [f"{prefix}n{i}" for i in range(n)]
    first = [f"netns add {name}" for name in ns]
    for i in range(1, n):
        first.append(f"link add up0 netns {ns[i]} type veth peer name d{i} netns {ns[(i - 1) // 2]}")
    subprocess.run(["ip", "-batch", "-"], input="\n".join(first) + "\n", text=True, check=True)
    for i in range(n):
        cmds = ["link set lo up"]
        if i > 0:
            parent, child = link_net(i)
            cmds += [f"addr add {child}/30 dev up0", "link set up0 up", f"route add default via {parent}"]
        for k in (2 * i + 1, 2 * i + 2):
            if k < n:
                cmds += [f"addr add {link_net(k)[0]}/30 dev d{k}", f"link set d{k} up"]
        if i == 0 and n > 1:
            cmds.append(f"route add 192.0.2.0/24 via {link_net(1)[1]}")
        subprocess.run(["ip", "-n", ns[i], "-batch", "-"], input="\n".join(cmds) + "\n",
                       text=True, check=True)


def settle(seconds: float) -> None:
    """Let the kernel finish tearing down namespaces (a workqueue) before timing more."""
    time.sleep(seconds)


def measure(n: int) -> dict:
    """One run at n nodes; prints as it goes and returns the figures."""
    byte_compile()
    prefix = prefix_of(os.getpid())
    workdir = Path(tempfile.mkdtemp(prefix="netkeel-bench-"))
    manifest_path = workdir / "scale.yaml"
    manifest_path.write_text(manifest(n))
    netkeel = Netkeel(manifest_path, prefix, workdir / "state")
    f = {"nodes": n}
    try:
        f["ip_batch_s"], _ = timed(lambda: ip_batch_build(n, prefix))
        print(f"ip -batch build: {f['ip_batch_s']:.2f} s", flush=True)
        remove_all(prefix)
        settle(2 + n / 250)
        f["apply_s"] = netkeel("apply").seconds
        print(f"netkeel apply: {f['apply_s']:.2f} s", flush=True)
        time_noop_and_drift(netkeel, f)
    finally:
        remove_all(prefix)
        shutil.rmtree(workdir, ignore_errors=True)
    f["apply_vs_ip_batch"] = f["apply_s"] / f["ip_batch_s"]
    f["peak_rss_mb"] = netkeel.peak_rss_mb
    print_peak_rss(f["peak_rss_mb"])
    print(f"drift_compared_s={f['drift_compared_s']:.3f}")
    print(f"nodes={n} apply_s={f['apply_s']:.2f} ip_batch_s={f['ip_batch_s']:.2f} "
          f"apply_vs_ip_batch={f['apply_vs_ip_batch']:.2f} noop_apply_s={f['noop_apply_s']:.2f} "
          f"drift_s={f['drift_s']:.2f} peak_rss_mb={f['peak_rss_mb']:.0f}")
    return f


def sweep(sizes: list[int]) -> None:
    """The whole measurement per size, each in a child process; then per size the
    figures per node against the first size's, and the verdicts."""
    results = run_sizes(__file__, "--nodes", sizes, prefix_of)
    first = results[0]
    worst = 0.0
    print(f"sweep (ms per node; ratio to the {first['nodes']}-node value, limit {PER_NODE_LIMIT}x):")
    for f in results:
        per_node = {k: f[k] / f["nodes"] for k in PER_NODE}
        ratios = {k: per_node[k] / (first[k] / first["nodes"]) for k in PER_NODE}
        worst = max(worst, *ratios.values())
        within = all(r <= PER_NODE_LIMIT for r in ratios.values())
        print(f"nodes={f['nodes']} "
              + " ".join(f"{k[:-2]}_ms_per_node={1000 * per_node[k]:.3f} {k[:-2]}_ratio={ratios[k]:.2f}"
                         for k in PER_NODE)
              + f" within_{PER_NODE_LIMIT}x={'yes' if within else 'no'}"
              + f" apply_vs_ip_batch={f['apply_vs_ip_batch']:.2f} peak_rss_mb={f['peak_rss_mb']:.0f}")
    largest = max(results, key=lambda f: f["nodes"])
    print(f"peak RSS at {largest['nodes']} nodes: {largest['peak_rss_mb']:.0f} MB "
          f"({'within' if largest['peak_rss_mb'] <= RSS_LIMIT_MB else 'over'} {RSS_LIMIT_MB} MB)")
    nodes, limit = IP_BATCH_LIMIT
    for f in results:
        if f["nodes"] == nodes:
            print(f"apply at {nodes} nodes: {f['apply_vs_ip_batch']:.2f}x ip -batch "
                  f"({'within' if f['apply_vs_ip_batch'] <= limit else 'over'} {limit}x)")
    print(f"sweep sizes={','.join(str(f['nodes']) for f in results)} worst_per_node_ratio={worst:.2f} "
          f"peak_rss_mb_at_max={largest['peak_rss_mb']:.0f}")


def main() -> int:
    sizes, one, figures = sizes_from_arguments("nodes", 1000, "250,500,1000,2000", 1, __doc__.splitlines()[0])
    if sizes:
        sweep(sizes)
    else:
        write_figures(figures, measure(one))
    return 0


if __name__ == "__main__":
    sys.exit(main())
