"""Development tasks (demo, test, bench) on top of the user tasks; tasks.py loads this."""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from invoke import Collection
from invoke.exceptions import Exit

from .invoking import task
from .history import user

ROOT = Path(__file__).resolve().parents[2]
DEMO_PREFIX = "demo-"


def _say(text: str) -> None:
    print(f"\n\033[1m# {text}\033[0m" if sys.stdout.isatty() else f"\n# {text}", flush=True)


def _run(c, cmd: str, expect=(0,)):
    print(f"$ {cmd}", flush=True)
    result = c.run(cmd, warn=True, pty=sys.stdout.isatty())
    if result.exited not in expect:
        raise Exit(f"demo: `{cmd}` exited {result.exited}, expected {' or '.join(map(str, expect))}", code=1)
    return result


@task
def demo(c):
    """Build the two-clients lab (prefix demo-): plan, apply, ping, drift, repair, a fault, destroy."""
    netkeel = shlex.quote(str(Path(sys.executable).with_name("netkeel")))
    lab = "topologies/two-clients.yaml"
    opts = f"--ns-prefix {DEMO_PREFIX}"
    with c.cd(str(ROOT)):
        _run(c, f"{netkeel} destroy {lab} {opts}")  # a clean start, should a demo have been cut short
        _say("1. Validate the manifest (no kernel access)")
        _run(c, f"{netkeel} validate {lab}")
        _say("2. Plan: what apply would do (exit 2 = changes pending)")
        _run(c, f"{netkeel} plan {lab} {opts}", expect=(2,))
        _say("3. Apply: build the namespaces, veth pairs, addresses, routes, sysctls; then verify")
        _run(c, f"{netkeel} apply {lab} {opts}")
        _say("4. The lab works: ping client2 from client1, through ns_server")
        _run(c, f"ip netns exec {DEMO_PREFIX}ns_client1 ping -c 3 -i 0.2 -W 1 10.0.2.2")
        _say("   ...and the server's firewall works: client2 may not open connections to client1")
        _run(c, f"ip netns exec {DEMO_PREFIX}ns_client2 ping -c 2 -i 0.2 -W 1 10.0.1.2", expect=(1,))
        _say("5. Live state")
        _run(c, f"{netkeel} show {lab} {opts}")
        _say("6. Change the lab by hand, behind netkeel's back")
        _run(c, f"ip -n {DEMO_PREFIX}ns_server link set veth_srv_c2 mtu 1400")
        _run(c, f"ip -n {DEMO_PREFIX}ns_client1 address add 10.0.1.99/24 dev veth_c1")
        _run(c, f"ip netns exec {DEMO_PREFIX}ns_server sysctl -qw net.ipv4.ip_forward=0")
        _run(c, f"ip netns exec {DEMO_PREFIX}ns_server nft add rule inet netkeel_filter input tcp dport 22 accept")
        _say("7. Drift names each difference (exit 2 = drifted)")
        _run(c, f"{netkeel} drift {lab} {opts}", expect=(2,))
        _say("8. Apply repairs it; a second apply changes nothing")
        _run(c, f"{netkeel} apply {lab} {opts}")
        _run(c, f"{netkeel} apply {lab} {opts}")
        _run(c, f"{netkeel} drift {lab} {opts}")
        _say("9. Chaos: the lab notes' 40% loss on client2's uplink, for 6 s")
        _run(c, f"{netkeel} chaos loss-40 --duration 6s {opts}")
        _run(c, f"ip netns exec {DEMO_PREFIX}ns_client2 ping -q -c 50 -i 0.05 -W 1 10.0.2.1", expect=(0, 1))
        _run(c, f"{netkeel} chaos status")
        _say("   drift names the active fault (exit 2); it ends by itself, on time")
        _run(c, f"{netkeel} drift {lab} {opts}", expect=(2,))
        _run(c, "sleep 6.5")
        _run(c, f"{netkeel} drift {lab} {opts}")
        _say("10. An experiment: does the lab's UDP time server hold up under 40% loss, then reordering? "
             "(about 15 s; a timeline plot in reports/)")
        _run(c, f"{netkeel} experiment loss-vs-timeserver {opts} --plot reports/demo-loss-vs-timeserver.png",
             expect=(0, 2))
        _say("11. The doctor looks for the lab notes' failure stories: none here")
        _run(c, f"{netkeel} doctor {lab} {opts}", expect=(0, 2))
        _say("12. Every change and experiment is in the journal, each change with a snapshot before it")
        _run(c, f"{netkeel} history")
        _say("13. Destroy removes the lab's namespaces, and nothing else")
        _run(c, f"{netkeel} destroy {lab} {opts}")


# The kernel tier (tests/vm/run.py): tests marked netem, in Debian's kernel under qemu.
VM_RUNNER = "tests/vm/run.py"
VM_STATUS_RUN, VM_STATUS_NOT_INSTALLED = 0, 4  # run.py --status: run it / needed but not installed


@task(help={"unit": "only the unit tests (no root needed)",
            "integration": "only the integration tests (root, real namespaces)",
            "k": "pytest -k expression",
            "kernel": "debian: only the tests marked netem, in Debian's kernel under qemu; "
                      "host: never the VM. Default: the VM runs them when this kernel lacks netem"})
def test(c, unit=False, integration=False, k=None, kernel=None):
    """Run the test suite: unit and integration tiers, and the kernel tier where this kernel lacks netem."""
    if kernel not in (None, "debian", "host"):
        raise Exit(f"test: --kernel is debian or host, not {kernel!r}", code=1)
    select = f" -k {shlex.quote(k)}" if k else ""
    codes = []
    with c.cd(str(ROOT)):
        if kernel != "debian":
            paths = []
            if unit or not integration:
                paths.append("tests/unit")
            if integration or not unit:
                paths.append("tests/integration")
            codes.append(_pytest(c, f"{' '.join(paths)}{select}"))
        # Like the integration tier, the kernel tier needs root (qemu shares the host's / with it).
        if kernel == "debian" or (kernel is None and not unit and os.geteuid() == 0 and _kernel_tier_needed(c)):
            codes.append(_kernel_tier(c, select, explicit=kernel == "debian"))
    failed = next((code for code in codes if code), 0)
    if failed:
        raise Exit(code=failed)


def _pytest(c, args: str) -> int:
    return c.run(f"{shlex.quote(sys.executable)} -m pytest {args}", warn=True, pty=sys.stdout.isatty()).exited


def _kernel_tier_needed(c) -> bool:
    """Whether this kernel lacks netem and the kernel tier is installed (said when it is not)."""
    probe = c.run(f"{shlex.quote(sys.executable)} {VM_RUNNER} --status", warn=True, hide=True)
    if probe.exited == VM_STATUS_NOT_INSTALLED:
        _say(f"kernel tier: {probe.stdout.strip()}; the netem tests were skipped (scripts/setup --kernel-vm)")
    return probe.exited == VM_STATUS_RUN


def _kernel_tier(c, select: str, explicit: bool) -> int:
    """The netem tests in Debian's kernel under qemu; pytest's exit status. Only the files
    that hold selected tests go to the VM: collecting the others there costs seconds."""
    python = shlex.quote(sys.executable)
    listing = c.run(f"{python} -m pytest --collect-only -qq -p no:cacheprovider -m netem tests/integration{select}",
                    warn=True, hide=True)
    if listing.exited not in (0, 5):
        print(listing.stdout + listing.stderr, flush=True)
        return listing.exited
    files = [line.rpartition(":")[0] for line in listing.stdout.splitlines() if re.fullmatch(r"\S+\.py: \d+", line)]
    if not files:
        _say("kernel tier: no netem test selected")
        return 5 if explicit else 0  # pytest's own status for "no tests collected"
    _say("kernel tier: the netem tests in Debian's kernel under qemu")
    return c.run(f"{python} {VM_RUNNER} -- -m netem {' '.join(files)}{select}", warn=True,
                 pty=sys.stdout.isatty()).exited


@task(help={"nodes": "how many nodes to build (default 1000)",
            "nft": "the firewall benchmark instead: a policy of --rules rules against nft -f",
            "rules": "how many rules for --nft (default 10000)",
            "chaos": "the chaos benchmark instead: declared vs measured loss, duplicate, rate and delay per "
                     "backend (netem in the kernel tier's VM where this kernel lacks it), inject and revert times",
            "packets": "datagrams per loss or duplicate fault for --chaos (default 10000)",
            "doctor": "the doctor on a 100-node lab instead (bench/doctor_scale.py)",
            "vrrp": "VIP failover instead: netkeel's speaker against keepalived (bench/vrrp_failover.py)",
            "sweep": "the node (or --nft rule) benchmark at several sizes, each in a process of its own"})
def bench(c, nodes=1000, nft=False, rules=10000, chaos=False, packets=10000, doctor=False, vrrp=False,
          sweep=False):
    """Benchmark: netkeel vs `ip -batch` at N nodes, (--nft) vs `nft -f` at N rules, (--chaos) faults,
    (--doctor) the doctor on 100 nodes, or (--vrrp) VIP failover against keepalived; --sweep: the
    node or rule benchmark at several sizes (250-2,000 nodes; 10,000 and 50,000 rules)."""
    if doctor:
        script = "bench/doctor_scale.py"
    elif vrrp:
        script = "bench/vrrp_failover.py"
    elif chaos:
        script = f"bench/chaos_fidelity.py --packets {int(packets)}"
    elif nft:
        script = "bench/nft_scale.py --sweep" if sweep else f"bench/nft_scale.py --rules {int(rules)}"
    else:
        script = "bench/scale.py --sweep" if sweep else f"bench/scale.py --nodes {int(nodes)}"
    with c.cd(str(ROOT)):
        c.run(f"{shlex.quote(sys.executable)} {script}", pty=sys.stdout.isatty())


ns = Collection(*user.tasks.values(), demo, test, bench)
