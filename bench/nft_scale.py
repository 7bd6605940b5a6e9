#!/usr/bin/env python3
"""Benchmark: a 10,000-rule policy (plus a 10,000-element set) on one node.

netkeel applies it (load and check the topology and policy, plan, one
libnftables JSON transaction, re-read and verify) and, in the same run, `nft -f`
loads the equivalent ruleset text into a namespace of its own. Then a no-op
re-apply and a drift check are timed, each with a fresh kernel session as the
CLI would have. Last line:

    rules=N apply_s=A nft_f_s=B apply_vs_nft_f=R noop_apply_s=C drift_s=D
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import remove_all, timed  # noqa: E402
from toolkit.kernel import Kernel  # noqa: E402
from toolkit.kernel import netns  # noqa: E402
from toolkit.manifest import load_topology  # noqa: E402
from toolkit.runtime.engine import Reconciler
from toolkit.cli.tasks import native_resolver  # noqa: E402
from toolkit.state import StateDir  # noqa: E402


def address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def rule(i: int) -> tuple:
    """(source address, destination port) of rule i."""
    return address(i + 1), 1000 + i % 50000


def policy_yaml(n: int) -> str:
    lines = ["tables:", "  bench:", "    family: inet", "    sets:", "      blocked:",
             "        type: ipv4_addr", "        elements:"]
    lines += [f"          - {address(0x200000 + i)}" for i in range(n)]
    lines += ["    chains:", "      input:", "        hook: input", "        policy: accept", "        rules:",
              '          - {saddr: "@blocked", action: drop}']
    lines += [f"          - {{saddr: {a}, protocol: tcp, dport: {p}, counter: true, action: accept}}"
              for a, p in map(rule, range(n - 1))]
    return "\n".join(lines) + "\n"


def nft_text(n: int) -> str:
    elements = ", ".join(address(0x200000 + i) for i in range(n))
    lines = ["table inet netkeel_bench {", f"  set blocked {{ type ipv4_addr; elements = {{ {elements} }} }}",
             "  chain input {", "    type filter hook input priority 0; policy accept;",
             "    ip saddr @blocked drop"]
    lines += [f"    ip saddr {a} tcp dport {p} counter accept" for a, p in map(rule, range(n - 1))]
    return "\n".join(lines + ["  }", "}"]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=10_000)
    n = parser.parse_args().rules
    prefix = f"nkf{os.getpid()}-"
    work = Path(tempfile.mkdtemp(prefix="netkeel-nft-bench-"))
    (work / "policy.yaml").write_text(policy_yaml(n))
    (work / "topology.yaml").write_text("name: nftbench\nnodes:\n  fw:\n    policies: [policy.yaml]\n")
    (work / "ruleset.nft").write_text(nft_text(n))
    state = StateDir(work / "state")
    baseline_ns = f"{prefix}nft-f"

    def netkeel(operation: str):
        def run():
            with Kernel() as kernel:
                topology = load_topology(work / "topology.yaml", natives=native_resolver)
                return getattr(Reconciler(topology, kernel, state, prefix=prefix), operation)()
        return run

    try:
        netns.create(baseline_ns)
        nft_s, _ = timed(lambda: subprocess.run(["ip", "netns", "exec", baseline_ns, "nft", "-f",
                                                 str(work / "ruleset.nft")], check=True))
        print(f"nft -f: {nft_s:.2f} s", flush=True)
        apply_s, result = timed(netkeel("apply"))
        print(f"netkeel apply: {apply_s:.2f} s ({result.steps} kernel requests)", flush=True)
        noop_s, noop = timed(netkeel("apply"))
        assert noop.plan.empty, f"re-apply planned {len(noop.plan.actions)} changes"
        drift_s, found = timed(netkeel("drift"))
        assert found.clean, "drift found differences right after apply"
        print(f"no-op apply: {noop_s:.2f} s; drift: {drift_s:.2f} s", flush=True)
    finally:
        remove_all(prefix)
    print(f"rules={n} apply_s={apply_s:.2f} nft_f_s={nft_s:.2f} apply_vs_nft_f={apply_s / nft_s:.2f} "
          f"noop_apply_s={noop_s:.2f} drift_s={drift_s:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
