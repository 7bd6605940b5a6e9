#!/usr/bin/env python3
"""Benchmark: a 10,000-rule policy (plus a 10,000-element set) on one node.

`netkeel apply` applies it (load and check the topology and policy, plan, one
libnftables JSON transaction, re-read and verify) and, in the same run, `nft -f`
loads the equivalent ruleset text into a namespace of its own. Then a no-op
re-apply and a drift check. Each is a whole process, as a user meets it (the
interpreter's start-up and imports included), as `nft -f` is; the peak RSS is
the largest of the netkeel processes'. Last line:

    rules=N apply_s=A nft_f_s=B apply_vs_nft_f=R noop_apply_s=C drift_s=D peak_rss_mb=M
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import peak_rss_mb, remove_all, timed  # noqa: E402
from toolkit.kernel import netns  # noqa: E402

NETKEEL = str(Path(sys.executable).with_name("netkeel"))


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
    env = dict(os.environ, NETKEEL_STATE_DIR=str(work / "state"))
    baseline_ns = f"{prefix}nft-f"

    def netkeel(command: str, expect: int = 0):
        def run():
            result = subprocess.run([NETKEEL, command, str(work / "topology.yaml"), "--ns-prefix", prefix],
                                    capture_output=True, text=True, env=env)
            assert result.returncode == expect, f"netkeel {command}: {result.returncode} {result.stderr[-2000:]}"
            return result
        return run

    try:
        netns.create(baseline_ns)
        nft_s, _ = timed(lambda: subprocess.run(["ip", "netns", "exec", baseline_ns, "nft", "-f",
                                                 str(work / "ruleset.nft")], check=True))
        print(f"nft -f: {nft_s:.2f} s", flush=True)
        apply_s, _ = timed(netkeel("apply"))
        print(f"netkeel apply: {apply_s:.2f} s", flush=True)
        noop_s, noop = timed(netkeel("apply"))
        assert "already in sync" in noop.stdout, f"re-apply changed something: {noop.stdout[-2000:]}"
        drift_s, _ = timed(netkeel("drift"))  # exit 0: in sync
        print(f"no-op apply: {noop_s:.2f} s; drift: {drift_s:.2f} s", flush=True)
    finally:
        remove_all(prefix)
    print(f"rules={n} apply_s={apply_s:.2f} nft_f_s={nft_s:.2f} apply_vs_nft_f={apply_s / nft_s:.2f} "
          f"noop_apply_s={noop_s:.2f} drift_s={drift_s:.2f} peak_rss_mb={peak_rss_mb():.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
