"""Kind "vrrp" on this machine: VRRPv3 speaker processes, one per (namespace, group).

Each runs `python -m toolkit.vrrp.speaker --config FILE` inside its namespace
(a guardian process and the speaker it forks; see toolkit/vrrp/speaker.py),
with its files under /run/netkeel/vrrp/NAMESPACE/: GROUP.json (its
configuration, written here) and GROUP.status.json (what it says of itself).

A speaker is live when its guardian and speaker processes run, inside that
very namespace (their network namespace is the one the name leads to), and
say they are running: then the configuration file is its live spec.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

from ..core import processes
from ..core.owners import OVERLAY_IFA_PROTO as VIP_ADDR_PROTO
from ..core.resource import Resource
from ..errors import KernelError

KIND = "vrrp"
SPEAKER_MODULE = b"toolkit.vrrp.speaker"
RUN_DIR = "/run/netkeel/vrrp"
START_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 3.0
FRESH_S = 2.0   # a status older than this is a stopped or hung speaker's (it writes every 125 ms)
SPEC_FIELDS = ("interface", "vrid", "priority", "addresses", "interval_cs", "preempt", "preempt_delay_ms",
               "unicast_peers", "virtual_mac", "checksum")  # its configuration; `running` besides
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")  # no dots: GROUP.status.json is never a group's


def directory(ns: str) -> str:
    return os.path.join(RUN_DIR, ns)


def config_path(ns: str, group: str) -> str:
    return os.path.join(directory(ns), f"{group}.json")


def status_path(ns: str, group: str) -> str:
    return os.path.join(directory(ns), f"{group}.status.json")


def status(ns: str, group: str) -> dict | None:
    """The speaker's own status file, or None (missing, unreadable, damaged: a
    field of the wrong type, which readers would trip over)."""
    try:
        with open(status_path(ns, group)) as f:
            data = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) and _well_formed(data) else None


# The status fields readers use, and their types (the speaker writes them so).
_FIELDS = {"state": str, "since": (int, float), "updated": (int, float), "pid": int, "guardian": int,
           "adverts_sent": (int, type(None)), "priority": (int, type(None)), "holding": (bool, type(None)),
           "master": (dict, type(None)), "peers": (dict, type(None)), "error": (str, type(None))}


def _well_formed(data: dict) -> bool:
    if any(key in data and not isinstance(data[key], kind) for key, kind in _FIELDS.items()):
        return False
    return all(isinstance(k, str) and isinstance(v, dict) for k, v in (data.get("peers") or {}).items())


def running(ns: str, group: str, netns_inode=None) -> dict | None:
    """The status of a speaker that runs now in namespace `ns`: both its processes
    alive, in that namespace, running this group's configuration, and its status
    fresh (a stopped or hung speaker stops writing it). Else None."""
    found = status(ns, group)
    if not found or found.get("state") in ("stopped", "dead"):
        return None
    updated = found.get("updated")
    if not isinstance(updated, (int, float)) or not time.time() - FRESH_S <= updated <= time.time() + FRESH_S:
        return None
    inode = netns_inode if netns_inode is not None else _netns_inode_of_name(ns)
    config = config_path(ns, group)
    for pid in (found.get("guardian"), found.get("pid")):
        if inode is None or not isinstance(pid, int) or pid <= 1 or _netns_inode_of_pid(pid) != inode \
                or not _is_speaker(pid, config):
            return None
    return found


def read(ns: str) -> list:
    """A resource per group configured in `ns`, with its configuration and
    whether its speaker runs (`running`: a dead, hung or unverifiable one is
    not, and apply starts it again)."""
    found = groups(ns)
    if not found:
        return []  # (most namespaces: one look at a directory that is not there)
    inode = _netns_inode_of_name(ns)
    out = []
    for group in found:
        try:
            with open(config_path(ns, group)) as f:
                config = json.load(f)
        except (OSError, ValueError):
            config = None
        if not isinstance(config, dict):
            config = {}
        said = running(ns, group, inode)
        spec = {k: tuple(v) if isinstance(v, list) else v for k, v in ((k, config.get(k)) for k in SPEC_FIELDS)}
        out.append(Resource.make(KIND, (ns, group), **spec, running=said is not None,
                                 _state=(said or {}).get("state") or "not running",
                                 _holding=bool((said or {}).get("holding"))))
    return out


def start(kernel, ns: str, group: str, spec: dict) -> None:
    """Start the speaker and wait until it says it runs (bounded). Raises KernelError."""
    kernel.ns(ns)  # still the namespace this command read (KernelError otherwise)
    if not _GROUP.fullmatch(group):
        raise KernelError(f"start VRRP speaker {group!r} in {ns}", "not a group name")
    os.makedirs(directory(ns), mode=0o700, exist_ok=True)
    # A speaker of this group whose status file was lost or damaged, or one still
    # leaving after a stop cut short (a signal), still runs: one speaker per group
    # and namespace, so it goes, and is gone, before a new one starts; its last
    # status ("stopped") written after the new one's would read as not running.
    olds = _speakers_of(config_path(ns, group))
    for pid in olds:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and any(processes.alive(p) for p in olds):
        time.sleep(0.01)
    _unlink(status_path(ns, group))
    withdraw_vips(kernel, ns, spec.get("addresses") or ())  # an orphan a killed speaker left: not ours to keep
    config = {"group": group, "namespace": ns, "status": status_path(ns, group),
              **{k: list(v) if isinstance(v, tuple) else v for k, v in ((k, spec.get(k)) for k in SPEC_FIELDS)}}
    config["unicast_peers"] = config.get("unicast_peers") or []
    _write(config_path(ns, group), config)
    kernel.log(ns, f"start VRRP speaker {group} (vrid {spec.get('vrid')}, priority {spec.get('priority')})")
    import subprocess  # here: reading speakers (every drift) starts none

    # Its log (transitions, dropped packets) goes to a file beside its status: a pipe
    # closed once it runs would lose every line after.
    with open(log_path(ns, group), "w") as log:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "toolkit.vrrp.speaker",
                                 "--config", config_path(ns, group)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True, cwd="/")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if running(ns, group) is not None:
            return
        if proc.poll() is not None:
            raise KernelError(f"start VRRP speaker {group} in {ns}", _tail(log_path(ns, group))
                              or f"exited with {proc.returncode}")
        time.sleep(0.02)
    proc.kill()
    raise KernelError(f"start VRRP speaker {group} in {ns}", f"not running after {START_TIMEOUT_S:g} s")


def log_path(ns: str, group: str) -> str:
    return os.path.join(directory(ns), f"{group}.log")


def _tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-limit:].strip()
    except OSError:
        return ""


def stop(kernel, ns: str, group: str) -> None:
    """Stop the speaker gracefully (SIGTERM to its guardian: priority 0, VIPs
    removed), SIGKILL after a timeout; its files go. Idempotent."""
    kernel.log(ns, f"stop VRRP speaker {group}")
    found = status(ns, group)
    try:
        with open(config_path(ns, group)) as f:
            addresses = (json.load(f) or {}).get("addresses") or ()
    except (OSError, ValueError, AttributeError):
        addresses = ()
    pids = [p for p in ((found or {}).get("guardian"), (found or {}).get("pid")) if isinstance(p, int) and p > 1]
    # Only processes that are this speaker's: a pid the system reused is someone else.
    # Those the status file no longer names (lost, damaged) are found by their configuration.
    ours = list(dict.fromkeys([p for p in pids if _is_speaker(p, config_path(ns, group))]
                              + _speakers_of(config_path(ns, group))))
    if ours:
        _signal(ours[0], signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and any(processes.alive(p) for p in ours):
            time.sleep(0.02)
        for pid in ours:
            if processes.alive(pid):
                _signal(pid, signal.SIGKILL)
    if kernel.exists(ns):
        # Both processes killed at once leave the VIP behind: nobody else will take it away.
        withdraw_vips(kernel, ns, [a for a in addresses if isinstance(a, str)])
    _unlink(status_path(ns, group))
    _unlink(config_path(ns, group))
    _unlink(log_path(ns, group))
    for name in _listing(ns):  # half-written status files of a speaker killed while writing one
        if name.startswith(f".{group}.status.json.") and name.endswith(".tmp"):
            _unlink(os.path.join(directory(ns), name))
    try:
        os.rmdir(directory(ns))
    except OSError:
        pass


def _listing(ns: str) -> list:
    try:
        return os.listdir(directory(ns))
    except OSError:
        return []


def stop_all(kernel, ns: str) -> None:
    """Stop every speaker configured in `ns`, and remove its files: before the
    namespace goes (a process keeps its namespace alive, unnamed)."""
    for group in groups(ns):
        stop(kernel, ns, group)
    try:
        os.rmdir(directory(ns))
    except OSError:
        pass


def withdraw_vips(kernel, ns: str, addresses) -> None:
    """Remove the VIP addresses (with a speaker's marker) among `addresses` from `ns`."""
    wanted = {a.split("/")[0] for a in addresses}
    if not wanted:
        return
    handle = kernel.ns(ns)
    for a in kernel.request(ns, "addr dump", handle.dump.addrs):
        if a.proto == VIP_ADDR_PROTO and a.address in wanted:
            kernel.request(ns, f"addr del {a.address}/{a.prefixlen} (an orphaned VIP)", handle.ipr.addr, "del",
                           index=a.index, address=a.address, prefixlen=a.prefixlen)


def found(ns: str) -> dict:
    """group -> {"config", "status"} of each speaker with a configuration in `ns`
    (status None when it does not run)."""
    out = {}
    for group in groups(ns):
        try:
            with open(config_path(ns, group)) as f:
                config = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(config, dict):
            out[group] = {"config": config, "status": running(ns, group)}
    return out


def groups(ns: str) -> list:
    """The groups with files under `ns` (running or not)."""
    try:
        return sorted(n[:-5] for n in os.listdir(directory(ns)) if n.endswith(".json")
                      and not n.endswith(".status.json") and _GROUP.fullmatch(n[:-5]))
    except OSError:
        return []


def signal_speaker(ns: str, group: str, pid, signame: str) -> None:
    """Send the speaker process of `group` in `ns` (not its guardian) SIGKILL or
    SIGTERM, and wait (bounded) until it is gone. Raises KernelError if `pid` is
    not that speaker (it died, and the system may have reused its pid)."""
    if not isinstance(pid, int) or pid <= 1 or not _is_speaker(pid, config_path(ns, group)) \
            or _netns_inode_of_pid(pid) != _netns_inode_of_name(ns):
        raise KernelError(f"signal the VRRP speaker of {group} in {ns}", f"pid {pid} is not that speaker")
    _signal(pid, signal.SIGKILL if signame == "KILL" else signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and processes.alive(pid):
        time.sleep(0.005)


def alive(pid) -> bool:
    return processes.alive(pid)


def _speakers_of(config: str) -> list:
    """The processes (guardians and speakers) running with this configuration file."""
    return processes.find(SPEAKER_MODULE, config.encode())


def _is_speaker(pid: int, config: str) -> bool:
    return processes.running(pid, SPEAKER_MODULE, config.encode())


def _netns_inode_of_pid(pid: int):
    try:
        info = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _netns_inode_of_name(ns: str):
    try:
        info = os.stat(os.path.join("/run/netns", ns))
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _signal(pid: int, signum) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _write(path: str, data: dict) -> None:
    temp = f"{path}.{os.getpid()}.tmp"
    with open(temp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(temp, path)


def _unlink(path: str) -> None:
    """Remove what is at `path` (in netkeel's own run directory): a file, a link
    (never followed), or a directory someone put there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        import shutil  # a rare case: kept off every drift's imports

        shutil.rmtree(path, ignore_errors=True)
