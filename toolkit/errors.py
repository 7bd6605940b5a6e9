"""Exceptions that carry data; only the CLI turns them into messages and exit codes."""

from __future__ import annotations

from collections import namedtuple


# A named tuple, not a dataclass: every command imports this module, and a quick
# answer (cli/quick.py) never needs `dataclasses` (its import, with `inspect`'s,
# and its class making were a fifth of that answer's time). Ordered as a tuple:
# by file, line, field path, message. Being a tuple, it equals a plain tuple of
# its fields and json would write it as a list: reports name its fields
# (report/machine.error_document).
class Problem(namedtuple("Problem", "file line path message")):
    """One thing wrong with a manifest, pinned to a file, a line and a field path."""

    __slots__ = ()

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class NetkeelError(Exception):
    """Base of every error netkeel raises on purpose."""


class ManifestError(NetkeelError):
    """The manifest (or a fault or experiment file: `what`) is invalid. Carries
    every problem found, sorted by file and line."""

    def __init__(self, problems, what: str = "manifest"):
        self.problems = tuple(sorted(problems))
        self.what = what
        super().__init__("\n".join(str(p) for p in self.problems))


class OwnershipError(NetkeelError):
    """An object the manifest wants to manage exists but is not netkeel's (or
    not this topology instance's).

    `problems` lists (namespace, owner, what): the namespace concerned, who owns
    it or the object in it ("another instance 'x'", "hand-made", ...), and a
    sentence saying what was found and what to do.
    """

    def __init__(self, problems, prefix: str = ""):
        if isinstance(problems, str):
            problems = [("", "", problems)]
        self.problems = tuple(problems)
        super().__init__(prefix + "; ".join(what for _, _, what in self.problems))


class KernelError(NetkeelError):
    """The kernel refused a request.

    `action` names what was being done (a human string), `errno` is the kernel's
    error number when known, `detail` the kernel's message.
    """

    def __init__(self, action: str, detail: str, errno: int | None = None):
        self.action = action
        self.detail = detail
        self.errno = errno
        super().__init__(f"{action}: {detail}")


class StepError(NetkeelError):
    """A step of a plan failed. `what` names it ("create link veth_c1 in ns_a"),
    `action` is the plan's Action, `cause` the exception (often a KernelError),
    `done` how many steps had completed before it."""

    def __init__(self, what: str, action, cause: BaseException, done: int):
        self.what, self.action, self.cause, self.done = what, action, cause, done
        super().__init__(f"{what}: {cause}")


class ApplyError(NetkeelError):
    """An apply failed part way and was rolled back (or the rollback failed too).

    `failed` names what failed (a step, "interrupted", "verification after the
    change"), `action` is the plan's Action that failed (None when no single
    action did), `cause` the underlying exception, `restored` whether the
    pre-apply state was restored and verified, `restore_error` what went wrong
    while restoring, if anything.
    """

    def __init__(self, failed, cause, restored: bool, restore_error: str | None = None, action=None):
        self.failed = failed
        self.action = action
        self.cause = cause
        self.restored = restored
        self.restore_error = restore_error
        outcome = "pre-apply state restored" if restored else f"restore FAILED: {restore_error}"
        super().__init__(f"{failed}: {cause}; {outcome}")


class VerifyError(NetkeelError):
    """After apply, the live state still differs from the desired state."""

    def __init__(self, differences):
        self.differences = tuple(differences)
        shown = "; ".join(str(d) for d in self.differences[:5])
        more = f" (and {len(self.differences) - 5} more)" if len(self.differences) > 5 else ""
        super().__init__(f"{len(self.differences)} difference(s) remain after the change: {shown}{more}")


class StateDirError(NetkeelError):
    """The state directory, or a file in it, is not safe to use: a symlink, not a
    directory or regular file, owned by another user, or writable by group/others."""


class LockHeld(NetkeelError):
    """Another netkeel holds the state lock. `holder` is what it wrote there:
    {"pid", "command", "since"} (any may be missing)."""

    def __init__(self, holder: dict):
        self.holder = holder
        who = f"pid {holder.get('pid', '?')} ({holder.get('command', 'unknown command')}, since " \
              f"{holder.get('since', '?')})"
        super().__init__(f"another netkeel is changing the kernel: {who}; "
                         "wait for it, or run again with --wait")


class SnapshotError(NetkeelError):
    """A snapshot is missing, unreadable or not a netkeel snapshot."""


class InventoryError(NetkeelError):
    """The inventory file is unreadable or not a netkeel inventory."""


class GitError(NetkeelError):
    """git could not give the manifest as of a revision (no repository, no such
    revision or file)."""


class FailpointHit(NetkeelError):
    """A failpoint (NETKEEL_FAILPOINT) fired on purpose."""


class FaultError(NetkeelError):
    """A fault cannot be injected as declared: `fault` names it, `what` is the
    kind or part concerned ("delay", "target", "partition", "conflict"), and the
    message says why (what the kernel lacks, which active fault holds the target)."""

    def __init__(self, fault: str, what: str, message: str):
        self.fault, self.what = fault, what
        super().__init__(f"fault {fault}: {message}")


class ExperimentError(NetkeelError):
    """An experiment cannot run as declared (a node the lab does not have, a
    service that would not start): nothing was injected."""

    def __init__(self, experiment: str, message: str):
        self.experiment = experiment
        super().__init__(f"experiment {experiment}: {message}")
