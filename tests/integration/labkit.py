"""Helpers for integration tests: run the real CLI in a lab, probe namespaces.

Safety rules (DESIGN.md): tests act only inside namespaces they create, named
with a prefix unique to this run and test; they never change the root
namespace, and every probe is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from toolkit.kernel import netns

ROOT = Path(__file__).resolve().parents[2]
NETKEEL = str(Path(sys.executable).with_name("netkeel"))


PROBE = str(Path(__file__).with_name("netprobe.py"))


def remove_prefixed(prefix: str) -> None:
    """Every namespace under `prefix`, and every placeholder file a create that a
    test killed left there (not a mount, so not in list_names); first the VRRP
    speakers netkeel started in them (a process keeps its namespace alive) and
    their files."""
    _stop_speakers(prefix)
    try:
        entries = os.listdir(netns.NETNS_RUN_DIR)
    except FileNotFoundError:
        return
    for name in entries:
        if name.startswith(prefix):
            netns.remove(name)


def _stop_speakers(prefix: str) -> None:
    run_dir = Path("/run/netkeel/vrrp")
    mine = [d for d in run_dir.glob(f"{prefix}*") if d.is_dir()] if run_dir.is_dir() else []
    if not mine:
        return
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"toolkit.vrrp.speaker" in argv and any(str(d).encode() + b"/" in a for d in mine for a in argv):
            try:
                os.kill(int(proc.name), 9)
            except ProcessLookupError:
                pass
    for d in mine:
        shutil.rmtree(d, ignore_errors=True)


def namespaces_with(prefix: str) -> set:
    return {name for name in netns.list_names() if name.startswith(prefix)}


class Lab:
    """Runs the real `netkeel` CLI against one prefix and state directory."""

    def __init__(self, prefix: str, state_dir: Path):
        self.prefix = prefix
        self.state = Path(state_dir)
        self.env = dict(os.environ, NETKEEL_STATE_DIR=str(state_dir))

    def applied(self, manifest) -> "Lab":
        """This lab with `manifest` applied (asserting that it applied)."""
        result = self.run("apply", manifest)
        assert result.returncode == 0, result.stderr
        return self

    def add_foreign_namespace(self, name: str) -> None:
        """A namespace netkeel did not make (as `ip netns add` would), under our prefix."""
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)

    def ns(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def argv(self, command: str, manifest, *args: str) -> list:
        """netkeel COMMAND [MANIFEST --ns-prefix P] ARGS; manifest None for commands without one."""
        where = [str(manifest), "--ns-prefix", self.prefix] if manifest is not None else []
        return [NETKEEL, command, *where, *args]

    def run(self, command: str, manifest, *args: str, timeout: float = 120, env=None) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(command, manifest, *args), capture_output=True, text=True,
                              env={**self.env, **(env or {})}, cwd=ROOT, timeout=timeout)

    def start(self, command: str, manifest, *args: str) -> subprocess.Popen:
        """The CLI started in the background (the caller waits for it, bounded)."""
        return subprocess.Popen(self.argv(command, manifest, *args), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=self.env, cwd=ROOT)

    def json(self, command: str, manifest, *args: str) -> tuple[int, dict]:
        result = self.run(command, manifest, "--json", *args)
        return result.returncode, json.loads(result.stdout)

    def ip(self, node: str, args: str) -> subprocess.CompletedProcess:
        """`ip -n <ns> ...` inside one of this lab's namespaces (never the root one)."""
        return subprocess.run(["ip", "-n", self.ns(node), *args.split()], capture_output=True,
                              text=True, timeout=10, check=True)

    def exec(self, node: str, argv: list, timeout: float = 15, check: bool = False):
        """Run a command inside one of this lab's namespaces, bounded in time."""
        return subprocess.run(["ip", "netns", "exec", self.ns(node), *argv], capture_output=True,
                              text=True, timeout=timeout, check=check)

    @contextmanager
    def server(self, node: str, proto: str, port: int, seconds: float = 20):
        """A UDP or TCP server in `node` that answers with the client's address,
        for at most `seconds`; stopped when the block ends."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(node), sys.executable, PROBE,
                                 f"serve-{proto}", str(port), str(seconds)],
                                stdout=subprocess.PIPE, text=True)
        try:
            ready = proc.stdout.readline().strip()
            assert ready == "READY", f"the {proto} server in {node} did not start"
            yield proc
        finally:
            proc.kill()
            proc.wait(timeout=10)

    def connect(self, node: str, proto: str, host: str, port: int, seconds: float = 2) -> str:
        """From `node`, reach host:port; the server's answer (the address it saw
        us come from), or TIMEOUT / REFUSED."""
        result = self.exec(node, [sys.executable, PROBE, proto, host, str(port), str(seconds)],
                           timeout=seconds + 10, check=True)
        return result.stdout.strip()

    def throughput(self, src: str, dst: str, address: str, seconds: float = 2, port: int = 9100) -> float:
        """Bits/s of a bounded TCP transfer from `src` to a sink in `dst` reached at
        `address`, counted by the receiver."""
        sink = subprocess.Popen(["ip", "netns", "exec", self.ns(dst), sys.executable, PROBE, "sink-tcp", str(port),
                                 str(seconds + 10)], stdout=subprocess.PIPE, text=True)
        try:
            assert sink.stdout.readline().strip() == "READY"
            self.exec(src, [sys.executable, PROBE, "send-tcp", address, str(port), str(seconds)],
                      timeout=seconds + 15, check=True)
            return float(sink.stdout.readline().strip() or 0)
        finally:
            sink.kill()
            sink.wait(timeout=10)

    def ping(self, node: str, address: str, count: int = 3) -> bool:
        """True if `address` answers from `node`: at most `count` probes within 5 s."""
        family = "-6" if ":" in address else "-4"
        result = self.exec(node, ["ping", family, "-n", "-c", str(count), "-i", "0.2", "-w", "5", address])
        return result.returncode == 0


def kernel_view(namespace: str) -> dict:
    """What `ip -j` and `nft -j` say of a namespace, volatile fields left out
    (ifindex, peer index and netns id, counters, handles, link-local addresses)."""
    def run(*argv):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout
        return json.loads(out or "[]")

    # Carrier flags and the routes IPv6 adds once a carrier is seen come a moment
    # after a link is set up: operational timing, not configuration.
    operational = {"NO-CARRIER", "LOWER_UP", "M-DOWN"}
    links = sorted((l["ifname"], l.get("mtu"), l.get("address"),
                    tuple(sorted(set(l.get("flags", [])) - operational)),
                    l.get("master"), l.get("ifalias"), (l.get("linkinfo") or {}).get("info_kind"))
                   for l in run("ip", "-n", namespace, "-j", "-d", "link", "show"))
    addrs = sorted((a["ifname"], i["family"], i["local"], i["prefixlen"])
                   for a in run("ip", "-n", namespace, "-j", "addr", "show") for i in a.get("addr_info", [])
                   if not i["local"].startswith("fe80:"))
    routes = sorted(json.dumps(r, sort_keys=True) for r in run("ip", "-n", namespace, "-j", "route", "show", "table",
                                                               "all")
                    if not r.get("dst", "").startswith(("fe80:", "ff00:")))
    ruleset = run("ip", "netns", "exec", namespace, "nft", "-j", "list", "ruleset").get("nftables", [])
    nft = sorted(json.dumps(_without(item, ("handle", "packets", "bytes")), sort_keys=True)
                 for item in ruleset if "metainfo" not in item)
    return {"links": links, "addrs": addrs, "routes": routes, "nft": nft}


def _without(value, keys):
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def lab_view(prefix: str) -> dict:
    """kernel_view of every namespace under `prefix`."""
    return {name: kernel_view(name) for name in sorted(namespaces_with(prefix))}


# The namespace this test process started in: the root one (tests run as root from it).
# Its views are read from inside it explicitly, whatever namespace a failed test may
# have left the calling thread in.
ROOT_NETNS_FD = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def in_root_namespace() -> bool:
    return os.stat("/proc/thread-self/ns/net").st_ino == os.fstat(ROOT_NETNS_FD).st_ino


def root_namespace_view() -> dict:
    """What tests promise never to change: the root namespace's links, addresses,
    routes, qdiscs and nftables ruleset (volatile counters left out)."""
    def ip_json(*args):
        out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, timeout=10, check=True)
        return json.loads(out.stdout or "[]")

    with netns.entered(ROOT_NETNS_FD):
        return {**_root_links_addrs_routes(ip_json), **root_firewall_and_qdiscs()}


def root_firewall_and_qdiscs() -> dict:
    """The root namespace's nftables ruleset and tc qdiscs, without counters."""
    with netns.entered(ROOT_NETNS_FD):
        nft = subprocess.run(["nft", "-j", "list", "ruleset"], capture_output=True, text=True, timeout=10,
                             check=True)
        tc = subprocess.run(["tc", "-j", "qdisc", "show"], capture_output=True, text=True, timeout=10, check=True)
    ruleset = _without(json.loads(nft.stdout or "{}").get("nftables", []), {"handle", "packets", "bytes"})
    qdiscs = sorted((q.get("dev"), q.get("kind"), q.get("handle"), q.get("parent", "root"))
                    for q in json.loads(tc.stdout or "[]"))
    return {"nft": ruleset, "qdiscs": qdiscs}


def _root_links_addrs_routes(ip_json) -> dict:
    links = sorted((l["ifname"], l.get("mtu"), tuple(l.get("flags", [])), l.get("master"))
                   for l in ip_json("link", "show"))
    addrs = sorted((a["ifname"], i["local"], i["prefixlen"])
                   for a in ip_json("addr", "show") for i in a.get("addr_info", []))
    routes = sorted(json.dumps(r, sort_keys=True) for r in ip_json("route", "show", "table", "all"))
    return {"links": links, "addrs": addrs, "routes": routes}
