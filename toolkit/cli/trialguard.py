"""The guard of an `apply --try`: `python -m toolkit.cli.trialguard --state-dir DIR TRIAL_ID`.

Started detached by `apply --try` once the change is applied; rolls the change
back if the command dies or the deadline passes unsettled (see
toolkit/experiment/trial.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from ..core.interrupts import let_in


def start(state_root: str, trial_id: str) -> int:
    from .keeper import detached

    return detached("toolkit.cli.trialguard", state_root, trial_id)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="netkeel-trial-guard")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("trial")
    args = parser.parse_args(argv)
    let_in()  # (started under a restore, it would ignore SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the terminal that ran the apply may close
    from ..chaos import engine as chaos
    from ..experiment.trial import guard
    from ..kernel import Kernel
    from ..state import StateDir

    state = StateDir(args.state_dir)
    with Kernel() as kernel:
        guard(kernel, state, args.trial, claims=lambda instance: chaos.claims(state, instance))
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
