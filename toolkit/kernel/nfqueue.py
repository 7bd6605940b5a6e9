"""The userspace backend's kernel side: NFQUEUE rules (iptables-nft, in the
target namespace) and the worker process (toolkit/kernel/nfqworker.py) that
holds the queued packets' verdicts.

    apply:   start the worker (it binds the queue inside the namespace, then
             writes its heartbeat file), then add the rules: egress
             `mangle POSTROUTING -o DEV`, ingress `mangle PREROUTING -i DEV`,
             IPv4 and IPv6, each `-j NFQUEUE --queue-num N --queue-bypass`
             (no bound worker: packets pass) with a comment naming the lease.
    revert:  the rules first (traffic flows at once), then the worker
             (SIGTERM: it releases what it holds; SIGKILL after a second), then
             the mangle tables iptables made, when they were not there before
             (or another fault's op made them: `tables_of_faults`) and are
             empty now.
    health:  "" while the worker runs and its heartbeat is fresh; the keeper
             reverts a worker that died or hung (within a second).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

from ..core import flock, processes
from ..errors import KernelError

RUN_DIR = os.environ.get("NETKEEL_NFQUEUE_DIR", "/run/netkeel/nfqueue")
STALE_S = 0.5            # a heartbeat older than this: the worker hangs
START_TIMEOUT_S = 5.0
TOOLS = (("iptables", "ip"), ("ip6tables", "ip6"))


def rule(op: dict, direction: str) -> list:
    chain, io = ("POSTROUTING", "-o") if direction == "egress" else ("PREROUTING", "-i")
    return ["-t", "mangle", chain, io, op["dev"], "-m", "comment", "--comment", op["tag"],
            "-j", "NFQUEUE", "--queue-num", str(op["queue"]), "--queue-bypass"]


def _xt(ns: str, tool: str, action: str, spec: list, check: bool = True) -> subprocess.CompletedProcess:
    argv = ["ip", "netns", "exec", ns, tool, "-w", "5", spec[0], spec[1], action, *spec[2:]]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KernelError(f"{tool} {action} in {ns}", str(exc)) from None
    if check and result.returncode != 0:
        raise KernelError(f"{tool} {action} {' '.join(spec)} in {ns}",
                          (result.stderr or result.stdout).strip() or f"exit {result.returncode}")
    return result


def _tables(ns: str) -> set:
    try:
        out = subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "tables"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {tuple(line.split()[1:3]) for line in out.splitlines() if line.startswith("table ")}


# The chains iptables-nft makes in its mangle table: a table holding these alone,
# empty, is what it made and nothing of anyone's.
_IPTABLES_CHAINS = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}


def _only_iptables_shell(ns: str, family: str) -> bool:
    """Whether `family mangle` in `ns` holds nothing but iptables' own empty base
    chains: no rule, set, map or other chain of anyone's (a revert removed a
    table with a user's chain and set in it, iptables -S shows neither: found by
    review)."""
    try:
        out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", family, "mangle"],
                             capture_output=True, text=True, timeout=10)
        items = json.loads(out.stdout)["nftables"] if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
        return False
    if not isinstance(items, list):
        return False
    for item in items:
        (kind, body), = item.items() if isinstance(item, dict) and len(item) == 1 else (("?", None),)
        if kind in ("metainfo", "table"):
            continue
        if kind != "chain" or not isinstance(body, dict) or body.get("name") not in _IPTABLES_CHAINS \
                or "hook" not in body or body.get("policy", "accept") != "accept":
            return False  # a chain of anyone's, or a policy someone set (`iptables -P FORWARD DROP`)
    return True


@contextlib.contextmanager
def _tables_held(ns: str, timeout_s: float = 15.0):
    """Held while a fault adds its rules to the mangle tables of `ns`, or a revert
    decides whether to remove them: an injection and a revert in one namespace
    raced (the revert found them empty and removed them under the new rules,
    found by review). One lock file for all namespaces (a few ms held, and none
    left behind per namespace) under RUN_DIR; bounded wait."""
    path = os.path.join(RUN_DIR, "tables.lock")
    try:
        os.makedirs(RUN_DIR, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as exc:  # a directory, a link where the lock file should be
        raise KernelError(f"hold the mangle tables of {ns}", f"cannot open {path}: {exc.strerror}") from None
    try:
        if not flock.take(fd, timeout_s):
            raise KernelError(f"hold the mangle tables of {ns}", f"another netkeel held them for {timeout_s:.0f} s")
        yield
    finally:
        os.close(fd)  # releases the lock


def heartbeat_path(op: dict) -> str:
    return os.path.join(RUN_DIR, f"{op['ns']}.{op['queue']}")


def worker_argv(op: dict, until: float) -> list:
    p = op["params"]
    argv = [sys.executable, "-m", "toolkit.kernel.nfqworker", "--netns", op["ns"], "--queue", str(op["queue"]),
            "--heartbeat", heartbeat_path(op), "--maxlen", str(op["maxlen"]), "--until", f"{until:.3f}",
            "--lease", op["tag"]]
    for name in ("delay_ms", "jitter_ms", "reorder", "corrupt", "loss"):
        if p.get(name):
            argv += [f"--{name.replace('_', '-')}", f"{p[name]:g}"]
    if p.get("distribution"):
        argv += ["--distribution", p["distribution"]]
    return argv


def apply(op: dict) -> dict:
    """Start the worker, then queue the target's packets to it. Returns the op
    with the worker's pid and the tables iptables made. Raises KernelError
    (and leaves nothing behind then)."""
    ns = op["ns"]
    os.makedirs(RUN_DIR, exist_ok=True)
    beat = heartbeat_path(op)
    try:
        os.unlink(beat)
    except FileNotFoundError:
        pass
    # The worker leaves by itself a little after the lease ends, even if no keeper is left to stop it.
    until = time.time() + op["expires_in_ms"] / 1000 + 2
    log = open(beat + ".log", "w+")
    try:
        worker = subprocess.Popen(worker_argv(op, until), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  start_new_session=True, cwd=project_root(), close_fds=True)
    except OSError as exc:
        log.close()
        raise KernelError(f"start the nfqueue worker for {op['dev']} in {ns}", str(exc)) from None
    op = {**op, "pid": worker.pid, "heartbeat": beat}
    deadline = time.monotonic() + START_TIMEOUT_S
    while not os.path.exists(beat):
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            worker.wait()
            log.seek(0)
            why = log.read().strip() or f"exit {worker.returncode}"
            log.close()
            raise KernelError(f"start the nfqueue worker for {op['dev']} in {ns}", why)
        time.sleep(0.01)
    log.close()
    refused = None
    try:
        with _tables_held(ns):  # another fault's revert must not remove the tables under our rules
            before = _tables(ns)
            # Made by this op, or by another fault's there (it may go first): the last removes them.
            ours = set(op.get("tables_of_faults") or ())
            made = sorted(f"{f} mangle" for _, f in TOOLS if (f, "mangle") not in before or f"{f} mangle" in ours)
            op["made_tables"] = made
            try:
                for direction in op["directions"]:
                    for tool, family in TOOLS:
                        _xt(ns, tool, "-A", rule(op, direction))
            except KernelError as exc:
                refused = exc
    except BaseException:
        # The tables could not be held (or an interrupt): nothing may be left running
        # with no lease to end it (a worker outlived a failed injection, found by review).
        try:
            revert(op)
        except KernelError:
            stop_worker(op)
            _remove_files(op)
        raise
    if refused is not None:
        revert(op)  # outside the hold: it takes it again to remove the tables
        raise refused
    return op


def project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def remove_rules(op: dict) -> None:
    """Every rule of this op (what is gone already is fine)."""
    ns = op["ns"]
    for direction in op["directions"]:
        for tool, _ in TOOLS:
            for _ in range(8):  # bounded: one rule each, unless added twice by a retry
                if _xt(ns, tool, "-C", rule(op, direction), check=False).returncode != 0:
                    break
                _xt(ns, tool, "-D", rule(op, direction))


def revert(op: dict) -> None:
    ns = op["ns"]
    remove_rules(op)
    stop_worker(op)
    with _tables_held(ns):  # a fault being injected there may be adding its rules now
        for table in op.get("made_tables") or []:
            family = table.split()[0]
            if _only_iptables_shell(ns, family):
                subprocess.run(["ip", "netns", "exec", ns, "nft", "delete", "table", family, "mangle"],
                               capture_output=True, timeout=10)
    _remove_files(op)


def namespace_gone(op: dict) -> None:
    """Take away what is left of an op whose namespace's name went (`ip netns
    del`; its rules go with the namespace): the namespace's veths, the worker,
    a process, and its heartbeat and log files (they stayed in RUN_DIR, found
    by review)."""
    _delete_veths(op)
    stop_worker(op)
    _remove_files(op)


def _delete_veths(op: dict) -> None:
    """Delete the veths of the namespace the worker alone holds alive (its name
    removed by hand), while it does: a veth goes with its other end at once,
    where the namespace goes a moment after its last process, asynchronously,
    and the far ends it took along were still in the lab's other namespaces when
    the next apply read them (found by review). Best effort: whatever is left
    goes with the namespace."""
    if not is_worker(op):
        return
    enter = ["nsenter", f"--net=/proc/{op['pid']}/ns/net", "ip"]
    try:
        shown = subprocess.run([*enter, "-j", "link", "show", "type", "veth"], capture_output=True, text=True,
                               timeout=10)
        for link in json.loads(shown.stdout or "[]"):
            subprocess.run([*enter, "link", "del", link["ifname"]], capture_output=True, timeout=10)
    except (OSError, ValueError, KeyError, TypeError, subprocess.TimeoutExpired):
        pass


def _remove_files(op: dict) -> None:
    for path in (heartbeat_path(op), heartbeat_path(op) + ".log"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def is_worker(op: dict) -> bool:
    """Whether op's pid is still its worker (alive, not a zombie, not a reused pid)."""
    return bool(op.get("pid")) and processes.running(op["pid"], b"toolkit.kernel.nfqworker", op["tag"].encode(),
                                                     str(op["queue"]).encode())


def _find_worker(op: dict) -> int | None:
    """The op's worker found by its command line (an injector killed before it
    recorded the pid leaves one behind)."""
    found = processes.find(b"toolkit.kernel.nfqworker", op["tag"].encode(), str(op["queue"]).encode())
    return found[0] if found else None


def stop_worker(op: dict, grace_s: float = 1.0) -> None:
    if not op.get("pid"):
        op = {**op, "pid": _find_worker(op)}
    if not is_worker(op):
        _reap(op)
        return
    pid = op["pid"]
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(op)
            if not is_worker(op):
                return
            time.sleep(0.01)


def _reap(op: dict) -> None:
    """Collect the worker if it is this process's child (an injector that stops it)."""
    try:
        os.waitpid(op.get("pid") or -1, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def health(op: dict, now=time.time) -> str:
    """"" while the worker serves the queue; else what is wrong with it."""
    if not is_worker(op):
        return f"the nfqueue worker (pid {op.get('pid')}) is gone"
    try:
        age = now() - os.stat(heartbeat_path(op)).st_mtime
    except OSError:
        return f"the nfqueue worker (pid {op.get('pid')}) has no heartbeat file"
    if age > STALE_S:
        return f"the nfqueue worker (pid {op.get('pid')}) hangs: no heartbeat for {age:.1f} s"
    return ""


def in_place(op: dict) -> str:
    why = health(op)
    if why:
        return why
    for direction in op["directions"]:
        for tool, _ in TOOLS:
            if _xt(op["ns"], tool, "-C", rule(op, direction), check=False).returncode != 0:
                return f"no {tool} NFQUEUE rule for {op['dev']} {direction}"
    return ""
