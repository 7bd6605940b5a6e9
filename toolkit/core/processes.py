"""Processes netkeel started and must recognise later (keepers, workers, speakers,
guards): by pid, alive (a zombie is not), and by their command line (a pid the
system reused is someone else). Reads /proc only."""

from __future__ import annotations

import os

# Whether this process leaves by os._exit (the `netkeel` script: cli/program.console):
# what it would free one by one on its way out is then left to the kernel, which
# frees a process's memory at once (kernel/session.py: libnftables contexts).
leaves_by_exit = False


def argv_of(pid) -> list:
    """The process's command line as bytes words ([] if it is gone)."""
    if not isinstance(pid, int) or pid <= 0:
        return []
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def alive(pid) -> bool:
    """Whether `pid` runs (exists and is not a zombie waiting to be reaped)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def parent_of(pid) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def running(pid, *words: bytes) -> bool:
    """Whether `pid` is alive and its command line holds every one of `words`."""
    if not alive(pid):
        return False
    argv = argv_of(pid)
    return all(word in argv for word in words)


def find(*words: bytes) -> list:
    """Every live process (but this one) whose command line holds all `words`."""
    return [int(entry) for entry in os.listdir("/proc")
            if entry.isdigit() and int(entry) != os.getpid() and running(int(entry), *words)]
