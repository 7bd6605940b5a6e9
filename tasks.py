"""invoke entry point: `invoke --list` shows the tasks. They live in the package
(toolkit/cli), so the installed `netkeel` script runs the very same ones."""

import sys

from toolkit.cli.program import answer_early, quiet_collector

quiet_collector()  # as the `netkeel` script does (see program.py)
answer_early(sys.argv)  # `invoke drift FILE` that a verdict answers: said, and out (program.py)

from toolkit.cli.dev import ns  # noqa: E402,F401
