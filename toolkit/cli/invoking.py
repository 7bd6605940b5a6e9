"""How netkeel's commands become invoke tasks (the one module of cli/ that
the reconcile commands' bodies do not import: program.py runs a plain
command line without loading invoke)."""

from __future__ import annotations

import functools

import invoke

from .common import SHORT_FLAGS


class Task(invoke.Task):
    def arg_opts(self, name, default, taken_names):
        fixed = SHORT_FLAGS.get(name)
        reserved = set(SHORT_FLAGS.values()) - {fixed}
        opts = super().arg_opts(name, default, taken_names | reserved | ({fixed} if fixed else set()))
        if fixed:
            opts["names"] = [opts["names"][0], fixed]
        return opts


task = functools.partial(invoke.task, klass=Task)
