"""The installed `netkeel` console script: the same invoke tasks, as a Program."""

from invoke import Program

from .. import __version__
from .history import user


def main() -> None:
    Program(namespace=user, name="netkeel", binary="netkeel", version=__version__).run()
