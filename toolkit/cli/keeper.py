"""The keeper process's entry point: `python -m toolkit.cli.keeper --state-dir DIR LEASE_ID`.

Started detached by `chaos` (see toolkit/chaos/keeper.py for what it does).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from ..core.interrupts import let_in


def start(state_root: str, lease_id: str) -> int:
    """Start a keeper for the lease, detached from this process; returns its pid."""
    return detached("toolkit.cli.keeper", state_root, lease_id)


def detached(module: str, state_root: str, what: str) -> int:
    """Run `python -m MODULE --state-dir ROOT WHAT` detached from this process (own
    session, no terminal, no inherited descriptors): it outlives a killed caller."""
    # Absolute: it runs from / (it must not hold the caller's directory).
    root = os.path.abspath(str(state_root))
    # A failpoint is meant for the command it was set for, not for the process that cleans up after it.
    env = {k: v for k, v in os.environ.items() if k != "NETKEEL_FAILPOINT"}
    proc = subprocess.Popen([sys.executable, "-m", module, "--state-dir", root, what], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True, cwd="/")
    return proc.pid


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="netkeel-keeper")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("lease")
    args = parser.parse_args(argv)
    let_in()  # (started under a restore, it would ignore SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal that started the fault may close
    from ..chaos.keeper import keep
    from ..kernel import Kernel
    from ..state import StateDir

    with Kernel() as kernel:
        keep(kernel, StateDir(args.state_dir), args.lease)
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
