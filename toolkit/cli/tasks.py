"""The netkeel tasks. The same collection runs as `invoke <task>` from the repo
root and as the installed `netkeel <task>` script (see program.py); the
reconcile commands' bodies are in reconcile.py."""

from __future__ import annotations

from . import reconcile
from .common import HELP, HELP_REV, HELP_WAIT
from .invoking import task

HELP_TRY = ("keep the change only if it proves itself within this time (60s, 2m): "
            "the probes of --probe pass (and, with --confirm, you confirm); else roll back")
HELP_PROBE = "an experiment (experiments/NAME.yaml or a path) whose steady-state probes decide a --try"
HELP_CONFIRM = "with --try: also ask for a confirmation before the time is up"
HELP_JUNIT = "also write the result as a JUnit XML report to this file (for CI)"
HELP_FULL = ("load the manifest and list every nftables ruleset afresh, trusting nothing remembered "
             "(the compile cache, unchanged-ruleset generations)")

validate = task(help={"file": HELP["file"]})(reconcile.validate)
plan = task(help=dict(HELP, rev=HELP_REV))(reconcile.plan)
apply = task(help=dict(HELP, rev=HELP_REV, wait=HELP_WAIT, try_=HELP_TRY, probe=HELP_PROBE,
                       confirm=HELP_CONFIRM))(reconcile.apply)
drift = task(help=dict(HELP, rev=HELP_REV, junit=HELP_JUNIT, full=HELP_FULL))(reconcile.drift)
show = task(help={k: HELP[k] for k in ("file", "ns_prefix", "state_dir", "verbose")})(reconcile.show)
destroy = task(help=dict(HELP, wait=HELP_WAIT, rev=HELP_REV))(reconcile.destroy)
