"""Leases: every active fault, as a file in the state directory.

A lease says what was done, where, with which backend, which kernel objects
exist because of it (the operations, enough to undo them), when it ends, and
which processes hold it (the injector, the keeper). The keeper reverts the
fault at expiry; any later netkeel command reverts expired leases it finds; a
revert takes the lease's own lock, so two reverts never interleave.

    leases/NAME-XXXXXXXX.json    the lease (written atomically)
    leases/NAME-XXXXXXXX.lock    its flock, held by whoever reverts it
"""

from __future__ import annotations

import math
import os
import re
import secrets
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from ..core import flock
from . import validation
from .statedir import StateDir

DIRECTORY = "leases"
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}-[0-9a-f]{8}")


@dataclass
class Lease:
    id: str
    fault: str                 # its name (the file's name without .yaml)
    file: str                  # the fault file
    instance: str              # the topology instance it acts on
    prefix: str
    text: str                  # what it does, for people ("loss 40% on ns_client2/veth_c2 egress")
    kinds: list                # impairment kinds
    backends: list             # [kind, backend] pairs
    operations: list           # chaos/plan.py operations, with what to restore
    started: float             # epoch seconds
    expires: float
    injector: int = 0          # pid of the netkeel that injected it
    keeper: int = 0            # pid of its keeper process (0: none yet)
    state: str = "injecting"   # injecting, active, broken (its userspace worker failed), reverting
    claims: list = field(default_factory=list)  # [ns, dev, {field: value before}] the fault holds

    def left(self, now: float | None = None) -> float:
        return max(0.0, self.expires - (time.time() if now is None else now))

    def expired(self, now: float | None = None) -> bool:
        return self.left(now) <= 0


def new_id(fault: str) -> str:
    """A lease id from the fault's name (made safe: a file name may hold anything)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", fault).lstrip("._-")[:47] or "fault"
    return f"{name}-{secrets.token_hex(4)}"


class Leases:
    def __init__(self, state: StateDir):
        self.state = state

    def save(self, lease: Lease) -> None:
        _check_id(lease.id)
        self.state.write_json(f"{DIRECTORY}/{lease.id}.json", asdict(lease), durable=False)

    def load(self, lease_id: str) -> Lease | None:
        """The lease, or None if it is gone. Raises ValueError for a damaged one."""
        _check_id(lease_id)
        data = self.state.read_json(f"{DIRECTORY}/{lease_id}.json")
        if data is None:
            return None
        # Checked whole before use: a revert that met a field missing in the
        # middle of its undo would leave the fault half in place (and a traceback).
        problem = validation.problem("lease", data) or \
            (not all(math.isfinite(data[k]) for k in ("started", "expires")) and "its times are not finite")
        if problem:
            raise ValueError(f"lease {lease_id} is damaged: {problem}")
        return Lease(**data)

    def all(self) -> tuple:
        """(leases, problems): every readable lease, oldest first, and what was unreadable."""
        leases, problems = [], []
        for name in sorted(self.state.regular_files(DIRECTORY)):
            if not name.endswith(".json") or not ID.fullmatch(name[:-5]):
                continue
            try:
                lease = self.load(name[:-5])
            except (ValueError, OSError) as exc:
                problems.append(f"{self.state.path(DIRECTORY, name)}: {exc}")
                continue
            if lease is not None:
                leases.append(lease)
        return sorted(leases, key=lambda l: l.started), problems

    def remove(self, lease_id: str) -> None:
        _check_id(lease_id)
        self.state.unlink(f"{DIRECTORY}/{lease_id}.json")
        self.state.unlink(f"{DIRECTORY}/{lease_id}.lock")

    @contextmanager
    def injecting(self, timeout: float = 30.0):
        """Hold the injection lock: one injection at a time checks for conflicts
        with the active leases and claims its target."""
        with self._flock("inject.lock", timeout):
            yield

    @contextmanager
    def locked(self, lease_id: str, timeout: float = 30.0):
        """Hold the lease's own lock (whoever reverts it holds this)."""
        _check_id(lease_id)
        with self._flock(f"{lease_id}.lock", timeout):
            yield

    def abandoned(self, lease_id: str) -> bool:
        """Whether nobody holds the lease's lock now. A lease marked "reverting"
        whose lock is free lost its reverter half way (a Ctrl-C, a kill): the
        marking and the whole revert happen under that lock."""
        try:
            with self.locked(lease_id, timeout=0):
                return True
        except TimeoutError:
            return False
        except OSError:
            return False  # the directory cannot be written: nothing to decide from here

    @contextmanager
    def _flock(self, name: str, timeout: float):
        fd = self.state.open(f"{DIRECTORY}/{name}", os.O_RDWR | os.O_CREAT, create_dirs=True)
        try:
            if not flock.take(fd, timeout):
                raise TimeoutError(f"{self.state.path(DIRECTORY, name)} stayed locked for {timeout:g} s")
            yield
        finally:
            os.close(fd)


def _check_id(lease_id: str) -> None:
    if not ID.fullmatch(lease_id):
        raise ValueError(f"not a lease id: {lease_id!r}")
