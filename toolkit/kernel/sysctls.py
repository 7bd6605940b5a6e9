"""Kind "sysctl" in the kernel: per-namespace net.* sysctls under /proc/sys.

/proc/sys/net shows the namespace of the thread that looks, so reads and writes
run with the calling thread inside the namespace.
"""

from __future__ import annotations

import os

from ..core.resource import Resource
from ..errors import KernelError

KIND = "sysctl"


def proc_path(name: str) -> str:
    """The /proc/sys file of a net.* sysctl. Raises KernelError for a name that
    would lead anywhere else (the manifest checks refuse those already)."""
    # In dotted sysctl names a '/' stands for a '.' inside one component
    # (net.ipv4.conf.eth0/100.forwarding is .../conf/eth0.100/forwarding).
    path = "/proc/sys/" + "/".join(part.replace("/", ".") for part in name.split("."))
    if not os.path.normpath(path).startswith("/proc/sys/net/") or path != os.path.normpath(path):
        raise KernelError(f"sysctl {name}", "not a per-namespace net.* sysctl")
    return path


def read(kernel, ns: str, names) -> list:
    out = []
    if not names:
        return out
    with kernel.in_namespace(ns):
        for name in sorted(names):
            try:
                with open(proc_path(name)) as f:
                    value = " ".join(f.read().split())
            except OSError:
                continue  # absent here: the plan will try to set it and say why it cannot
            out.append(Resource.make(KIND, (ns, name), value=value))
    return out


def write(kernel, ns: str, name: str, value: str) -> None:
    from ..kinds.base import short  # here: reading, as a quick answer does, needs no kinds

    kernel.log(ns, f"sysctl {name}={short(str(value))}")
    opened = False
    try:
        with kernel.in_namespace(ns):
            fd = os.open(proc_path(name), os.O_WRONLY)
            opened = True
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
    except OSError as exc:
        # ENOENT from the write itself is the value the kernel does not know
        # (tcp_congestion_control: bbr9, or a module not loaded), not the file.
        detail = (f"the kernel knows no value {short(str(value), 40)!r} for it" if opened else
                  "no such sysctl in this kernel") if exc.errno == 2 else (exc.strerror or str(exc))
        raise KernelError(f"sysctl {name}={short(str(value))} in {ns}", detail, exc.errno) from None
