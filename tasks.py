"""invoke entry point: `invoke --list` shows the tasks. They live in the package
(toolkit/cli), so the installed `netkeel` script runs the very same ones."""

from toolkit.cli.dev import ns  # noqa: F401
from toolkit.cli.program import quiet_collector

quiet_collector()  # as the `netkeel` script does (see program.py)
