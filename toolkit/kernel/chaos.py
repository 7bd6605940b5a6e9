"""Faults in the kernel: what this kernel can do, and putting fault operations
(chaos/plan.py) in place, checking them, and taking them away.

Traffic control goes through iproute2's `tc` inside the namespace (`tc -n`):
netem's delay distributions and its Gilbert-Elliott loss model are encoded by
tc (pyroute2 0.9.7 sends neither), and a fault is set up once, so one process
per qdisc costs nothing that matters. nftables tables go through the
namespace's libnftables context; device settings through netlink (Kernel).

Every revert is idempotent: what is already gone is fine, and only what the
lease made is removed (a root qdisc is deleted only while it carries netkeel's
chaos handle).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager

from ..core.owners import CHAOS_QDISC_HANDLE
from ..errors import KernelError
from . import addresses, nfqueue, routes, speakers

PROBE_TIMEOUT_S = 20
# Each capability, as a shell test run in a throwaway network namespace.
_PROBES = {
    "netem": "tc qdisc add dev lo root netem delay 1ms",
    "tbf": "tc qdisc add dev lo root tbf rate 1mbit burst 1600 latency 50ms",
    "ifb": "ip link add nkprobe0 type ifb",
    "mirred": "ip link add nkprobe1 type ifb && tc qdisc add dev lo handle ffff: ingress && "
              "tc filter add dev lo parent ffff: protocol all u32 match u32 0 0 action mirred egress "
              "redirect dev nkprobe1",
    "nft": "printf 'table inet p {\\n set s { type ifname; flags timeout; }\\n chain c { type filter hook "
           "postrouting priority 0; oifname @s numgen random mod 100 < 1 drop\\n }\\n}\\n' | nft -f -",
    "dup": "printf 'table netdev d {\\n chain c { type filter hook egress device \"lo\" priority 0;\\n "
           "meta mark 0x1 accept\\n dup to \"lo\"\\n }\\n}\\n' | nft -f -",
    # The userspace backend: iptables-nft takes an NFQUEUE rule, and nfnetlink_queue binds a queue.
    "nfqueue": "iptables -w 5 -t mangle -A POSTROUTING -o lo -j NFQUEUE --queue-num 7 --queue-bypass && "
               f"{sys.executable} -c 'import socket; s = socket.socket(16, 3, 12); s.bind((0, 0)); "
               "from toolkit.kernel.nfqworker import Queue; Queue(7, sock=s)'",
}


def probe() -> list:
    """The fault capabilities of this kernel, tried in a throwaway network
    namespace (`unshare -n`; the machine's own are never touched)."""
    script = "ip link set lo up\n" + "".join(
        f"if ( {test} ) >/dev/null 2>&1; then echo {name}; fi\n"
        f"tc qdisc del dev lo root >/dev/null 2>&1; tc qdisc del dev lo ingress >/dev/null 2>&1\n"
        for name, test in _PROBES.items())
    try:
        result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True,
                                timeout=PROBE_TIMEOUT_S, cwd=nfqueue.project_root())
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError("probe what this kernel can do for faults", str(exc)) from None
    return sorted(line.strip() for line in result.stdout.splitlines() if line.strip() in _PROBES)


def kernel_identity() -> str:
    """Changes when the kernel does (a reboot, another kernel), when the probes
    change or iptables comes or goes: what a cached probe is valid for."""
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    # The probes asked, and whether iptables is there (installed later: the userspace backend may work now).
    tools = "iptables" if shutil.which("iptables") else "no-iptables"
    return f"{os.uname().release}/{boot}/{','.join(sorted(_PROBES))}/{tools}"


# -- operations --------------------------------------------------------------------------

def apply(kernel, op: dict) -> dict:
    """Put one operation in place; returns it with what must be restored later
    (a device's settings before). Raises KernelError."""
    kind, ns = op["op"], op["ns"]
    if kind == "nft":
        _nft(kernel, ns, op["text"], f"add table {op['family']} {op['table']}")
    elif kind in ("netem", "tbf"):
        current = root_qdisc(ns, op["dev"])
        if current is not None:
            raise KernelError(f"add {kind} on {op['dev']} in {ns}",
                              f"it has a root qdisc already ({current.get('kind')} {current.get('handle')}); "
                              "netkeel never replaces a root qdisc it did not make")
        _tc(ns, ["qdisc", "add", "dev", op["dev"], "root", "handle", CHAOS_QDISC_HANDLE, kind, *op["args"]])
    elif kind == "ifb":
        if _qdiscs(ns, op["dev"], "ingress"):
            raise KernelError(f"redirect the ingress of {op['dev']} in {ns}",
                              "it has an ingress or clsact qdisc already, which netkeel did not make")
        kernel.request(ns, f"link add {op['ifb']} type ifb", kernel.ns(ns).ipr.link, "add",
                       ifname=op["ifb"], kind="ifb")
        kernel.ns(ns).forget_links()
        try:
            kernel.link_set(ns, op["ifb"], state="up")
            _tc(ns, ["qdisc", "add", "dev", op["dev"], "handle", "ffff:", "ingress"])
            _tc(ns, ["filter", "add", "dev", op["dev"], "parent", "ffff:", "protocol", "all", "u32", "match",
                     "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", op["ifb"]])
        except KernelError:
            revert(kernel, op)  # all of it or nothing: the ingress qdisc was not there before
            raise
    elif kind == "device":
        before = device_settings(kernel, ns, op["dev"], op["set"])
        op = {**op, "before": before, **_what_down_takes(kernel, ns, op["dev"], op["set"])}
        kernel.link_set(ns, op["dev"], **op["set"])
    elif kind == "flap":
        op = {**op, "before": device_settings(kernel, ns, op["dev"], {"state": None}),
              **_what_down_takes(kernel, ns, op["dev"], {"state": "down"})}
    elif kind == "nfqueue":
        op = nfqueue.apply(op)
    elif kind == "speaker":
        speakers.signal_speaker(ns, op["group"], op["pid"], op["signal"])
    return op


def _what_down_takes(kernel, ns: str, dev: str, settings: dict) -> dict:
    """What the kernel removes when a device goes down, so that it can come back
    with the device: its routes and its IPv6 addresses (recorded, as a person
    would type them back)."""
    if settings.get("state") != "down":
        return {}
    handle = kernel.ns(ns)
    index = handle.index(dev)
    addrs = [f"{a.address}/{a.prefixlen}" for a in handle.dump.addrs()
             if a.index == index and ":" in a.address and not a.address.startswith("fe80:")]
    routes = []
    for r in handle.dump.routes(254):
        if r.oif == index and r.proto not in (2, 9) and not r.multipath:
            dst = r.dst or ("::" if r.family == 10 else "0.0.0.0")
            routes.append([f"{dst}/{r.dst_len}", r.priority, r.gateway or "", {6: "blackhole"}.get(r.type)])
    return {"restore": {"addrs": addrs, "routes": routes}}


def device_up(kernel, op: dict) -> None:
    """Bring a device a fault took down back up, with the IPv6 addresses and the
    routes that went with it (those still missing)."""
    ns, dev = op["ns"], op["dev"]
    kernel.link_set(ns, dev, state="up")
    restore = op.get("restore") or {}
    handle = kernel.ns(ns)
    index = handle.index(dev)
    have = {f"{a.address}/{a.prefixlen}" for a in handle.dump.addrs() if a.index == index}
    refused = []  # each one tried: an address the kernel refuses must not keep the routes away
    for address in restore.get("addrs", []):
        if address not in have:
            try:
                addresses.add(kernel, ns, dev, address)
            except KernelError as exc:
                refused.append(exc)
    present = {(f"{r.dst or ('::' if r.family == 10 else '0.0.0.0')}/{r.dst_len}", r.priority)
               for r in handle.dump.routes(254)}
    for prefix, metric, via, type_ in restore.get("routes", []):
        if (prefix, metric) not in present:
            try:
                routes.set_route(kernel, ns, prefix, metric, via=via or None, dev=dev, type=type_)
            except KernelError as exc:
                refused.append(exc)
    if refused:
        raise refused[0]


def revert(kernel, op: dict) -> None:
    """Take one operation away again (what is already gone is fine). Raises KernelError."""
    kind, ns = op["op"], op["ns"]
    # `gone`: the namespace under that name is another one, made by hand (chaos/engine.py)
    gone = op.get("gone") is True or not kernel.exists(ns)
    if kind == "nfqueue" and gone:
        nfqueue.namespace_gone(op)  # its rules went with the namespace; the worker is a process
        return
    if gone:
        return  # the namespace went, and the fault's objects with it
    if kind == "nfqueue":
        nfqueue.revert(op)  # the rules first (traffic flows at once), then the worker
    if kind == "speaker":
        # Started again, as apply would, unless an apply removed the group meanwhile.
        if os.path.exists(speakers.config_path(ns, op["group"])) and speakers.running(ns, op["group"]) is None:
            speakers.start(kernel, ns, op["group"], op["config"])
    if kind == "nft":
        if _has_table(kernel, ns, op["family"], op["table"]):
            _nft(kernel, ns, f"delete table {op['family']} {op['table']}", f"delete table {op['table']}")
    elif kind in ("netem", "tbf"):
        with _unless_gone(kernel, ns, op["dev"]):
            current = root_qdisc(ns, op["dev"])
            if current is not None and current.get("handle") == CHAOS_QDISC_HANDLE:
                _tc(ns, ["qdisc", "del", "dev", op["dev"], "root"])
    elif kind == "ifb":
        with _unless_gone(kernel, ns, op["dev"]):
            if _qdiscs(ns, op["dev"], "ingress"):
                _tc(ns, ["qdisc", "del", "dev", op["dev"], "ingress"])
        kernel.ns(ns).forget_links()
        if kernel.ns(ns).index(op["ifb"]) is not None:
            kernel.request(ns, f"link del {op['ifb']}", kernel.ns(ns).ipr.link, "del",
                           index=kernel.ns(ns).index(op["ifb"]))
            kernel.ns(ns).forget_links()
    elif kind in ("device", "flap"):
        before = op.get("before") or {}
        if before and kernel.ns(ns).index(op["dev"]) is not None:
            kernel.link_set(ns, op["dev"], **{k: v for k, v in before.items() if k != "state"})
            if before.get("state") == "up":
                device_up(kernel, op)
            elif before.get("state"):
                kernel.link_set(ns, op["dev"], state=before["state"])


@contextmanager
def _unless_gone(kernel, ns: str, dev: str):
    """A qdisc goes with its device: a device that is gone (removed by hand, or an
    ifb a revert killed half way had deleted) is reverted already. tc only says
    "Cannot find device", so a refusal is taken for that when the device is gone."""
    try:
        yield
    except KernelError:
        if any(link.ifname == dev for link in kernel.ns(ns).links()):
            raise


def in_place(kernel, op: dict) -> str:
    """"" when the operation is in effect in the kernel, else what is missing."""
    kind, ns = op["op"], op["ns"]
    if not kernel.exists(ns):
        return f"namespace {ns} is gone"
    if kind == "nft":
        return "" if _has_table(kernel, ns, op["family"], op["table"]) else f"nft table {op['table']} is missing"
    if kind in ("netem", "tbf"):
        current = root_qdisc(ns, op["dev"]) or {}
        ok = current.get("kind") == kind and current.get("handle") == CHAOS_QDISC_HANDLE
        return "" if ok else f"no {kind} root qdisc on {op['dev']}"
    if kind == "ifb":
        return "" if kernel.ns(ns).index(op["ifb"]) is not None else f"ifb device {op['ifb']} is missing"
    if kind == "nfqueue":
        return nfqueue.in_place(op)
    if kind == "device":
        now = device_settings(kernel, ns, op["dev"], op["set"])
        return "" if now == op["set"] else f"{op['dev']} has {now}, not {op['set']}"
    if kind == "speaker":
        return "" if not speakers.alive(op["pid"]) else f"the speaker (pid {op['pid']}) still runs"
    return ""


def device_settings(kernel, ns: str, dev: str, wanted: dict) -> dict:
    """The current values of the fields named in `wanted` (mtu, state) of a device."""
    link = next((l for l in kernel.ns(ns).links() if l.ifname == dev), None)
    if link is None:
        raise KernelError(f"read {dev} in {ns}", "no such device")
    out = {}
    if "mtu" in wanted:
        out["mtu"] = link.mtu
    if "state" in wanted:
        out["state"] = "up" if link.flags & 1 else "down"
    return out


# -- helpers -------------------------------------------------------------------------------

def root_qdisc(ns: str, dev: str) -> dict | None:
    """The device's root qdisc, unless it is the kernel's default (noqueue, or a
    default mq/pfifo_fast with no handle of its own)."""
    for q in _qdiscs(ns, dev, None):
        if q.get("root") and q.get("kind") not in ("noqueue",) and q.get("handle") not in ("0:", None):
            return q
    return None


def _qdiscs(ns: str, dev: str | None, kind: str | None) -> list:
    argv = ["-j", "qdisc", "show"] + (["dev", dev] if dev else [])
    out = json.loads(_tc(ns, argv) or "[]")
    return [q for q in out if kind is None or q.get("kind") in ((kind, "clsact") if kind == "ingress" else (kind,))]


def _tc(ns: str, argv: list) -> str:
    try:
        result = subprocess.run(["tc", "-n", ns, *argv], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError(f"tc {' '.join(argv)} in {ns}", str(exc)) from None
    if result.returncode != 0:
        raise KernelError(f"tc {' '.join(argv)} in {ns}", (result.stderr or result.stdout).strip() or
                          f"exit {result.returncode}")
    return result.stdout


def _nft(kernel, ns: str, text: str, what: str) -> str:
    from .nftables import run_cmd

    return kernel.request(ns, f"nft {what}", run_cmd, kernel, kernel.ns(ns), text)


def _has_table(kernel, ns: str, family: str, table: str) -> bool:
    try:
        _nft(kernel, ns, f"list table {family} {table}", f"list table {table}")
        return True
    except KernelError:
        return False
