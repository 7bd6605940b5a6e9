#!/usr/bin/env python3
"""Benchmark: build an N-node topology with netkeel and with `ip -batch`.

The topology is a binary tree of namespaces: node i links to node (i-1)//2 with
a veth pair, a /30 on each link (parent .1, child .2), every device and lo up,
and a route per node (children: default via the parent; the root: a prefix via
its first child). The baseline builds the same thing with one `ip -batch` for
namespaces and veth pairs, then one `ip -n NS -batch` per namespace for
addresses, link state and routes (ip's batch mode cannot switch namespaces).

Both run from this script, one after the other, with the namespaces removed and
the kernel given time to settle in between. Then a no-op re-apply and a drift
check are timed on the netkeel build. Every netkeel figure is a whole `netkeel`
process (start-up and imports included), as the `ip` baseline is; the peak RSS is
the largest of the child processes'. Last line:

    nodes=N apply_s=A ip_batch_s=B apply_vs_ip_batch=R noop_apply_s=C drift_s=D peak_rss_mb=M
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import peak_rss_mb, remove_all, timed  # noqa: E402

NETKEEL = str(Path(sys.executable).with_name("netkeel"))


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    args = parser.parse_args()
    n = args.nodes
    prefix = f"nkb{os.getpid()}-"
    workdir = Path(tempfile.mkdtemp(prefix="netkeel-bench-"))
    manifest_path = workdir / "scale.yaml"
    manifest_path.write_text(manifest(n))
    env = dict(os.environ, NETKEEL_STATE_DIR=str(workdir / "state"))

    def netkeel(command: str):
        def run():
            result = subprocess.run([NETKEEL, command, str(manifest_path), "--ns-prefix", prefix],
                                    capture_output=True, text=True, env=env)
            assert result.returncode == 0, f"netkeel {command}: {result.returncode} {result.stderr[-2000:]}"
            return result
        return run

    try:
        ip_s, _ = timed(lambda: ip_batch_build(n, prefix))
        print(f"ip -batch build: {ip_s:.2f} s", flush=True)
        remove_all(prefix)
        settle(2 + n / 250)
        apply_s, _ = timed(netkeel("apply"))
        print(f"netkeel apply: {apply_s:.2f} s", flush=True)
        noop_s, noop = timed(netkeel("apply"))
        assert "already in sync" in noop.stdout, f"re-apply changed something: {noop.stdout[-2000:]}"
        drift_s, _ = timed(netkeel("drift"))  # exit 0: in sync
        print(f"no-op apply: {noop_s:.2f} s; drift: {drift_s:.2f} s", flush=True)
    finally:
        remove_all(prefix)
    print(f"nodes={n} apply_s={apply_s:.2f} ip_batch_s={ip_s:.2f} "
          f"apply_vs_ip_batch={apply_s / ip_s:.2f} noop_apply_s={noop_s:.2f} drift_s={drift_s:.2f} "
          f"peak_rss_mb={peak_rss_mb():.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
