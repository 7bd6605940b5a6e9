"""The installed `netkeel` console script: the same invoke tasks, as a Program."""

import sys

from invoke import Program

from .. import __version__
from .history import user


def main() -> None:
    try:
        Program(namespace=user, name="netkeel", binary="netkeel", version=__version__).run(chaos_words(sys.argv))
    except KeyboardInterrupt:  # before a task started (while loading): nothing was changed
        print("interrupted", file=sys.stderr)
        sys.exit(1)


def chaos_words(argv: list) -> list:
    """`netkeel chaos --list` and `netkeel chaos revert NAME` as users write them,
    in the forms invoke parses (`chaos list`, `chaos revert --fault NAME`):
    invoke has no optional positional arguments."""
    argv = list(argv)
    if "chaos" not in argv:
        return argv
    at = argv.index("chaos")
    rest = argv[at + 1:]
    if "--list" in rest and not [a for a in rest if not a.startswith("-")]:
        rest = ["list"] + [a for a in rest if a != "--list"]
    elif len(rest) >= 2 and rest[0] == "revert" and not rest[1].startswith("-"):
        rest = ["revert", "--fault", rest[1]] + rest[2:]
    return argv[:at + 1] + rest
