#!/usr/bin/env python3
"""Benchmark: a 10,000-rule policy (plus a 10,000-element set) on one node.

Every figure is a whole process, as a user meets it (the interpreter's start-up
and imports included), as the baseline `nft -f` is: that loads the equivalent
ruleset text into a namespace of its own, in the same run (the median of three
loads, each into an empty ruleset). netkeel is
byte-compiled first (untimed), as scripts/setup does for users. Timed, in order:

    cold_apply_s      `netkeel apply` with an empty state directory (nothing
                      cached): load and check the topology and policy, plan, one
                      libnftables transaction, read it back as text to verify
    plan_s            `netkeel plan` (exit 2: changes pending), in namespaces and
                      a state directory of their own; it compiles the manifest
                      and caches it, and proves the new table in a throwaway
                      namespace (kernel/nft_proof.py: the apply's transaction,
                      read back as sent)
    apply_s           `netkeel apply` right after that plan: the usual
                      plan-then-apply flow, and the figure the last line reports
                      (the plan's own time not included; cold_apply_s is printed
                      beside it, so nothing is hidden); its content proven by the
                      plan, its commit is followed by the generation alone (the
                      cold apply, with no plan before it, reads its commit back
                      as text: every rule printed as sent)
    noop_apply_s      `netkeel apply` again: nothing to change; answered from
                      the in-sync verdict the apply kept (state/verdicts.py:
                      the files' digests, the state directory's stamp, each
                      namespace's read with nftables known by cookie and
                      generation), before the CLI framework is even imported
    drift_s           `netkeel drift` (exit 0): nothing changed; the same way
    drift_compared_s  `netkeel drift --json` (exit 0): never answered from a
                      verdict, so it compares every resource (the compile cache
                      and the ruleset memo serve it)
    foreign_drift_s   `netkeel drift` (exit 2) after another tool committed in
                      the namespace (`nft add rule ... ip saddr 192.0.2.1 drop`),
                      so the full comparison must run; then `netkeel apply`
                      repairs it (repair_apply_s) and `netkeel drift` exits 0;
                      both the median of three such rounds. The rules the
                      drift reads are known by their kernel form (the plan's
                      proof noted the text of each: kernel/nft_forms.py), so
                      it reads them from their dump, not a listing, and makes
                      the foreign one again in a throwaway namespace for its
                      text
    foreign_apply_s   `netkeel apply` right after such a commit, no drift
                      check before it (as a CI job applies): it reads the
                      table as the drift check does, and repairs it (median
                      of three)
    one_rule_apply_s  `netkeel apply` after the policy file was rewritten with
                      one rule's dport changed (the file read again as that
                      rule alone: state/policy_loads.py); then the kernel holds
                      the new rule and `netkeel drift` exits 0; changed, back,
                      changed again (median of three)
    one_element_apply_s  `netkeel apply` after one element of the set was
                      replaced (read alone as well); then the kernel's set holds
                      it and `netkeel drift` exits 0 (median of three, as above)
    rebuild_apply_s   `netkeel destroy`, then `netkeel apply` of the same files:
                      content listed back before, so its commit is followed by
                      its generation alone (a lab rebuilt, as a teacher does)

With NFT_BENCH_COMMENTS=1 in the environment every rule has a comment (`rule
N`), in the policy and in the `nft -f` text alike: a policy whose rules print
strings, as most real ones do (kernel/nftgen.prints_plain).

Each is printed with its ratio to nft_f_s (issue 13's targets: first apply
<= 1.5x, no-op and drift <= 0.2x, foreign drift <= 1.0x, one-rule change
<= 0.1x). The peak RSS is the largest of the netkeel processes' (from wait4,
each process alone). All namespaces (prefix nkf<pid>-) and the temporary
directory are removed at the end, even on failure or Ctrl-C. Last line:

    rules=N apply_s=A nft_f_s=B apply_vs_nft_f=R noop_apply_s=C drift_s=D peak_rss_mb=M

With --sweep, the whole measurement runs once per size (--sizes, default
10000,50000), each in a child process of its own (fresh namespaces, state
directory and peak RSS); then a line per size and, for each larger size, a
linearity line: each figure at that size over its value at the first size,
within 1.2x of linear (6x for 50,000 against 10,000 rules) or not:

    linear: apply_s_50k/10k=R ... peak_rss_mb_50k/10k=R limit=6.00 over=none
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (byte_compile, Netkeel, print_peak_rss, remove_all, run, run_sizes, RUNS,
                    sizes_from_arguments, time_noop_and_drift, write_figures)  # noqa: E402
from toolkit.kernel import netns  # noqa: E402

TABLE = "inet netkeel_bench"  # the policy's table `bench`, as netkeel names it in the kernel
FOREIGN_RULE = "ip saddr 192.0.2.1 drop"
CHANGED_PORT = 60000  # above every rule's own port (1000 + i % 50000)
# The timed figures, in the order printed; each is also divided by nft_f_s.
TIMES = ["apply_s", "cold_apply_s", "plan_s", "noop_apply_s", "drift_s", "drift_compared_s", "foreign_drift_s",
         "foreign_apply_s", "one_rule_apply_s", "one_element_apply_s", "rebuild_apply_s"]
NEW_ELEMENT = "198.51.100.77"  # replaces one element of the set (TEST-NET-2: no rule's address)
COMMENTS = os.environ.get("NFT_BENCH_COMMENTS") == "1"  # a comment on every rule (see the docstring)


def prefix_of(pid: int) -> str:
    return f"nkf{pid}-"


def address(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def rule(i: int, changed: int | None = None) -> tuple:
    """(source address, destination port) of rule i; rule `changed` gets CHANGED_PORT."""
    return address(i + 1), CHANGED_PORT if i == changed else 1000 + i % 50000


def policy_yaml(n: int, changed: int | None = None, element: int | None = None) -> str:
    """The policy: rule `changed` gets CHANGED_PORT, element `element` is NEW_ELEMENT."""
    lines = ["tables:", "  bench:", "    family: inet", "    sets:", "      blocked:",
             "        type: ipv4_addr", "        elements:"]
    lines += [f"          - {NEW_ELEMENT if i == element else address(0x200000 + i)}" for i in range(n)]
    lines += ["    chains:", "      input:", "        hook: input", "        policy: accept", "        rules:",
              '          - {saddr: "@blocked", action: drop}']
    comment = ", comment: rule {}" if COMMENTS else ""
    lines += [f"          - {{saddr: {a}, protocol: tcp, dport: {p}, counter: true, action: accept"
              f"{comment.format(i)}}}" for i, (a, p) in enumerate(rule(i, changed) for i in range(n - 1))]
    return "\n".join(lines) + "\n"


def nft_text(n: int) -> str:
    elements = ", ".join(address(0x200000 + i) for i in range(n))
    lines = ["table inet netkeel_bench {", f"  set blocked {{ type ipv4_addr; elements = {{ {elements} }} }}",
             "  chain input {", "    type filter hook input priority 0; policy accept;",
             "    ip saddr @blocked drop"]
    comment = ' comment "rule {}"' if COMMENTS else ""
    lines += [f"    ip saddr {a} tcp dport {p} counter accept{comment.format(i)}"
              for i, (a, p) in enumerate(map(rule, range(n - 1)))]
    return "\n".join(lines + ["  }", "}"]) + "\n"


def nft(namespace: str, *args: str) -> str:
    """Run `nft ARGS` inside the namespace (untimed), return its output."""
    result = run(["ip", "netns", "exec", namespace, "nft", *args])
    assert result.returncode == 0, f"nft {' '.join(args)}: {result.returncode} {result.stderr[-2000:]}"
    return result.stdout


def measure(n: int) -> dict:
    """One run at n rules; prints as it goes and returns the figures."""
    byte_compile()
    prefix = prefix_of(os.getpid())
    work = Path(tempfile.mkdtemp(prefix="netkeel-nft-bench-"))
    policy, topology = work / "policy.yaml", work / "topology.yaml"
    policy.write_text(policy_yaml(n))
    topology.write_text("name: nftbench\nnodes:\n  fw:\n    policies: [policy.yaml]\n")
    (work / "ruleset.nft").write_text(nft_text(n))
    baseline_ns = f"{prefix}nft-f"
    # Two copies side by side, each with namespaces and a state directory of its own.
    cold = Netkeel(topology, f"{prefix}c-", work / "state-cold")
    warm = Netkeel(topology, f"{prefix}w-", work / "state")
    fw = f"{warm.prefix}fw"
    f = {"rules": n}
    try:
        netns.create(baseline_ns)
        loads = []
        for _ in range(RUNS):  # each into an empty ruleset; the median (one run moved 0.45-0.61 s)
            nft(baseline_ns, "flush", "ruleset")
            baseline = run(["ip", "netns", "exec", baseline_ns, "nft", "-f", str(work / "ruleset.nft")])
            assert baseline.returncode == 0, f"nft -f: {baseline.returncode} {baseline.stderr[-2000:]}"
            loads.append(baseline.seconds)
        f["nft_f_s"] = statistics.median(loads)
        print(f"nft -f: {f['nft_f_s']:.2f} s (median of {', '.join(f'{s:.2f}' for s in loads)})", flush=True)

        f["cold_apply_s"] = cold("apply").seconds
        print(f"netkeel apply, empty state directory: {f['cold_apply_s']:.2f} s", flush=True)
        f["plan_s"] = warm("plan", expect=2).seconds
        f["apply_s"] = warm("apply").seconds
        print(f"netkeel plan: {f['plan_s']:.2f} s; apply after it: {f['apply_s']:.2f} s", flush=True)

        time_noop_and_drift(warm, f)

        foreign, repairs = [], []
        for _ in range(RUNS):  # the median: one run moved 0.5-1.0 s with the machine
            nft(fw, "add", "rule", *TABLE.split(), "input", *FOREIGN_RULE.split())
            foreign.append(warm("drift", expect=2).seconds)
            repairs.append(warm("apply").seconds)
            warm("drift")  # exit 0: repaired (and the verdict kept again, as before the first)
        f["foreign_drift_s"], f["repair_apply_s"] = statistics.median(foreign), statistics.median(repairs)
        print(f"drift after a foreign rule: {f['foreign_drift_s']:.2f} s; "
              f"apply repairing it: {f['repair_apply_s']:.2f} s (medians of {RUNS})", flush=True)
        applies = []
        for _ in range(RUNS):
            nft(fw, "add", "rule", *TABLE.split(), "input", *FOREIGN_RULE.split())
            applies.append(warm("apply").seconds)
            warm("drift")  # exit 0: repaired
        f["foreign_apply_s"] = statistics.median(applies)
        print(f"apply right after a foreign rule: {f['foreign_apply_s']:.2f} s (median of {RUNS})", flush=True)

        # Each edit a one-rule (then one-element) change of the file before it:
        # changed, back, changed again (the median of RUNS).
        changed = (n - 1) // 2
        edits = []
        for k in range(RUNS):
            edited = k % 2 == 0
            policy.write_text(policy_yaml(n, changed if edited else None))
            one = warm("apply")
            assert "already in sync" not in one.stdout, f"the one-rule change was not applied: {one.stdout[-2000:]}"
            edits.append(one.seconds)
            saddr, port = rule(changed, changed if edited else None)
            assert f"ip saddr {saddr} tcp dport {port} " in nft(fw, "list", "chain", *TABLE.split(), "input"), \
                "the changed rule is not in the kernel"
            warm("drift")  # exit 0: in sync with the changed policy
        f["one_rule_apply_s"] = statistics.median(edits)
        print(f"apply of a one-rule change: {f['one_rule_apply_s']:.2f} s (median of {RUNS})", flush=True)

        edits = []
        for k in range(RUNS):
            edited = k % 2 == 0
            policy.write_text(policy_yaml(n, changed, element=n // 2 if edited else None))
            one = warm("apply")
            assert "already in sync" not in one.stdout, f"the one-element change was not applied: {one.stdout[-2000:]}"
            edits.append(one.seconds)
            held = nft(fw, "list", "set", *TABLE.split(), "blocked")
            gone = re.search(rf"(?<![0-9.]){re.escape(address(0x200000 + n // 2))}(?![0-9.])", held) is None
            assert (NEW_ELEMENT in held and gone) == edited and (NEW_ELEMENT in held) == edited, \
                "the set was not changed"
            warm("drift")  # exit 0
        f["one_element_apply_s"] = statistics.median(edits)
        print(f"apply of a one-element change of the set: {f['one_element_apply_s']:.2f} s (median of {RUNS})",
              flush=True)

        warm("destroy")
        f["rebuild_apply_s"] = warm("apply").seconds
        warm("drift")  # exit 0
        print(f"apply after destroy, the same files: {f['rebuild_apply_s']:.2f} s", flush=True)
    finally:
        remove_all(prefix)
        shutil.rmtree(work, ignore_errors=True)
    f["peak_rss_mb"] = max(cold.peak_rss_mb, warm.peak_rss_mb)
    for key in TIMES:
        f[f"{key[:-2]}_vs_nft_f"] = f[key] / f["nft_f_s"]
    print(f"cold_apply_s={f['cold_apply_s']:.3f} cold_apply_vs_nft_f={f['cold_apply_vs_nft_f']:.3f}")
    print(f"plan_s={f['plan_s']:.3f} repair_apply_s={f['repair_apply_s']:.3f}")
    print(f"noop_apply_vs_nft_f={f['noop_apply_vs_nft_f']:.3f} drift_vs_nft_f={f['drift_vs_nft_f']:.3f}")
    print(f"drift_compared_s={f['drift_compared_s']:.3f} drift_compared_vs_nft_f={f['drift_compared_vs_nft_f']:.3f}")
    print(f"foreign_drift_s={f['foreign_drift_s']:.3f} foreign_drift_vs_nft_f={f['foreign_drift_vs_nft_f']:.3f}")
    print(f"foreign_apply_s={f['foreign_apply_s']:.3f} foreign_apply_vs_nft_f={f['foreign_apply_vs_nft_f']:.3f}")
    print(f"rebuild_apply_s={f['rebuild_apply_s']:.3f} rebuild_apply_vs_nft_f={f['rebuild_apply_vs_nft_f']:.3f}")
    print(f"one_rule_apply_s={f['one_rule_apply_s']:.3f} "
          f"one_rule_apply_vs_nft_f={f['one_rule_apply_vs_nft_f']:.3f}")
    print(f"one_element_apply_s={f['one_element_apply_s']:.3f} "
          f"one_element_apply_vs_nft_f={f['one_element_apply_vs_nft_f']:.3f}")
    print_peak_rss(f["peak_rss_mb"])
    print(f"rules={n} apply_s={f['apply_s']:.2f} nft_f_s={f['nft_f_s']:.2f} "
          f"apply_vs_nft_f={f['apply_vs_nft_f']:.2f} "
          f"noop_apply_s={f['noop_apply_s']:.2f} drift_s={f['drift_s']:.2f} peak_rss_mb={f['peak_rss_mb']:.0f}")
    return f


def label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def sweep(sizes: list[int]) -> None:
    """The whole measurement per size, each in a child process; then the lines per size and linearity."""
    results = run_sizes(__file__, "--rules", sizes, prefix_of)
    print("sweep:")
    for f in results:
        print(f"rules={f['rules']} " + " ".join(f"{k}={f[k]:.3f}" for k in TIMES) + f" nft_f_s={f['nft_f_s']:.3f} "
              + " ".join(f"{k[:-2]}_vs_nft_f={f[k[:-2] + '_vs_nft_f']:.3f}" for k in TIMES)
              + f" peak_rss_mb={f['peak_rss_mb']:.0f}")
    first = results[0]
    for f in results[1:]:
        limit = 1.2 * f["rules"] / first["rules"]
        ratios = {k: f[k] / first[k] for k in TIMES + ["peak_rss_mb"]}
        over = [k for k, r in ratios.items() if r > limit]
        suffix = f"_{label(f['rules'])}/{label(first['rules'])}"
        print("linear: " + " ".join(f"{k}{suffix}={r:.2f}" for k, r in ratios.items())
              + f" limit={limit:.2f} over={','.join(over) or 'none'}")


def main() -> int:
    sizes, one, figures = sizes_from_arguments("rules", 10_000, "10000,50000", 2, __doc__.splitlines()[0])
    if sizes:
        sweep(sizes)
    else:
        write_figures(figures, measure(one))
    return 0


if __name__ == "__main__":
    sys.exit(main())
