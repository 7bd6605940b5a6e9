#!/usr/bin/env python3
"""Benchmark: `netkeel doctor` on a lab of about N nodes (default 100).

The lab: a core router, R routers each linked to the core on a /30, and behind
each router a switch node (a bridge) with H hosts on a /24; N = 1 + 2R + R*H
(R = 9, H = 9: 100 nodes). Every host can reach every other host through two or
three routers, so the doctor's reachability matrix has about N^2 pairs to
probe and trace. It is applied with netkeel (unique namespace prefix, a state
directory in a temporary directory, both removed at the end, even on failure
or Ctrl-C), then timed as whole processes, the way a user meets them:

    doctor     `netkeel doctor FILE --ns-prefix P --json` (every check)
    drift      `netkeel drift FILE --ns-prefix P` on the same lab: a whole read
               of the lab, the floor under any look at it

Last line:

    nodes=N checks=C doctor_s=S

    .venv/bin/python bench/doctor_scale.py [--routers R] [--hosts H] [--rounds K]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import remove_all  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NETKEEL = str(Path(sys.executable).with_name("netkeel"))


def manifest(routers: int, hosts: int) -> str:
    lines = ["name: doctor-scale", "nodes:", "  core:", "    sysctls: {net.ipv4.ip_forward: 1}", "    routes:"]
    for r in range(1, routers + 1):
        lines.append(f"      - {{to: 10.{r}.0.0/24, via: 10.100.{r}.2}}")
    for r in range(1, routers + 1):
        lines += [f"  r{r}:", "    sysctls: {net.ipv4.ip_forward: 1}",
                  f"    routes: [{{to: default, via: 10.100.{r}.1}}]",
                  f"  s{r}:", "    bridges:", "      br0:",
                  f"        ports: [up, {', '.join(f'h{h}' for h in range(1, hosts + 1))}]"]
        for h in range(1, hosts + 1):
            lines += [f"  h{r}x{h}:", f"    routes: [{{to: default, via: 10.{r}.0.1}}]"]
    lines.append("links:")
    for r in range(1, routers + 1):
        lines += ["  - endpoints:", f"      - {{node: core, interface: c{r}, addresses: [10.100.{r}.1/30]}}",
                  f"      - {{node: r{r}, interface: up, addresses: [10.100.{r}.2/30]}}",
                  "  - endpoints:", f"      - {{node: r{r}, interface: lan, addresses: [10.{r}.0.1/24]}}",
                  f"      - {{node: s{r}, interface: up}}"]
        for h in range(1, hosts + 1):
            lines += ["  - endpoints:",
                      f"      - {{node: h{r}x{h}, interface: eth0, addresses: [10.{r}.0.{10 + h}/24]}}",
                      f"      - {{node: s{r}, interface: h{h}}}"]
    return "\n".join(lines) + "\n"


def run(argv, env, timeout=600) -> tuple:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routers", type=int, default=9)
    parser.add_argument("--hosts", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    nodes = 1 + 2 * args.routers + args.routers * args.hosts
    prefix = f"nkds{os.getpid() % 100000}-"
    with tempfile.TemporaryDirectory(prefix="netkeel-doctor-scale-") as tmp:
        env = dict(os.environ, NETKEEL_STATE_DIR=str(Path(tmp) / "state"))
        path = Path(tmp) / "lab.yaml"
        path.write_text(manifest(args.routers, args.hosts))
        try:
            seconds, result = run([NETKEEL, "apply", str(path), "--ns-prefix", prefix], env)
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                return 1
            print(f"lab: {nodes} nodes under prefix {prefix}, applied in {seconds:.2f} s")
            doctor, drift, checks, findings = [], [], [], None
            for _ in range(args.rounds):
                seconds, result = run([NETKEEL, "doctor", str(path), "--ns-prefix", prefix, "--json"], env)
                if result.returncode not in (0, 2):
                    print(result.stderr, file=sys.stderr)
                    return 1
                doc = json.loads(result.stdout)
                checks, findings = doc["checks"], doc["findings"]
                doctor.append(seconds)
                seconds, _ = run([NETKEEL, "drift", str(path), "--ns-prefix", prefix], env)
                drift.append(seconds)
            print(f"doctor: median {statistics.median(doctor):.2f} s (min {min(doctor):.2f}, max {max(doctor):.2f}) "
                  f"over {len(doctor)} runs; checks {', '.join(checks)}; {len(findings)} finding(s)")
            for f in findings:
                print(f"  finding: [{f['check']}] {f['title']}")
            print(f"drift (a whole read of the lab): median {statistics.median(drift):.2f} s; "
                  f"doctor/drift {statistics.median(doctor) / statistics.median(drift):.1f}x")
            print(f"nodes={nodes} checks={len(checks)} doctor_s={statistics.median(doctor):.2f}")
        finally:
            subprocess.run([NETKEEL, "destroy", str(path), "--ns-prefix", prefix], capture_output=True, env=env,
                           cwd=ROOT, timeout=600)
            remove_all(prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
