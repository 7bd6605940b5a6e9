"""Experiment files: YAML with line marks -> schema -> semantic checks -> model.Experiment.

Every problem is reported at once as FILE:LINE: path: message, before anything
touches the kernel. A fault named by file is loaded with its own checks (its
problems name its own file and lines); an inline fault is checked like a fault
file, its problems pinned to the experiment's lines. What only the running lab
can tell (does the node exist, which address a node name means) is checked
when the experiment starts.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import shlex
import unicodedata
from dataclasses import replace

from ..errors import ManifestError, Problem
from ..model.experiment import METRICS, PROBE_KINDS, SERVICE_KINDS, Bound, Experiment, Probe, \
    ScheduledFault, Service, unit_of
from .fault import _Checker as FaultChecker
from .fault import duration_ms, load_fault
from .files import nearest_holding, outside_problem, read_file, read_text
from .loader import Document, format_path, load_document, mapping, sequence
from .schema import problems_of, schema_problems
from .text import clean_problem, quote

MAX_PROBE_MS = 10 * 60_000          # one probe: ten minutes at most
MAX_DURING_MS = 60 * 60_000         # the fault phase: an hour at most
MIN_INTERVAL_MS, MAX_TIMEOUT_MS = 1, 60_000
DEFAULTS = {"count": 10, "interval": 100, "timeout": 1000}  # ms where a time
TRANSFER_MS = 3000                  # a tcp_transfer's default length
_BOUND = re.compile(r"\s*(<=|>=|<|>|==)\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z/%]*)\s*")
_TIME = {"us": 0.001, "ms": 1, "s": 1000}
_RATE = {"bit/s": 1e-6, "kbit/s": 1e-3, "mbit/s": 1, "gbit/s": 1e3, "bit": 1e-6, "kbit": 1e-3, "mbit": 1,
         "gbit": 1e3}


def experiment_name(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def load_experiment(path, read=read_file) -> Experiment:
    """Load and check the experiment file at `path`, and the fault files it names.
    Raises ManifestError listing every problem."""
    path = str(path)
    text, problem = read_text(path, read, "experiment file")
    if problem is not None:
        raise ManifestError([problem], what="experiment file")
    return load_experiment_text(text, path, read)


def load_experiment_text(text: str, file: str, read=read_file) -> Experiment:
    doc = load_document(text, file)
    if doc.data is None and not doc.problems:
        doc.problems.append(Problem(file, 1, "", "the experiment file is empty: it needs a topology and "
                                                 "a steady_state"))
    if doc.data is None:
        raise ManifestError([clean_problem(p) for p in doc.problems], what="experiment file")
    problems = problems_of(doc, "experiment")
    if not isinstance(doc.data, dict):
        raise ManifestError(_ordered(problems), what="experiment file")
    checker = _Checker(doc, read)
    experiment = checker.build(experiment_name(file))
    problems += checker.problems
    if problems:
        raise ManifestError(_ordered(problems), what="experiment file")
    return experiment


def _ordered(problems) -> list:
    unique = {clean_problem(p) for p in problems}
    return sorted(unique, key=lambda p: (p.file, p.line, p.path, p.message))


class _Checker:
    def __init__(self, doc: Document, read):
        self.doc = doc
        self.read = read
        self.data = mapping(doc.data)
        self.problems: list = []

    def fail(self, path, message: str) -> None:
        self.problems.append(self.doc.problem(tuple(path), message))

    def build(self, name: str) -> Experiment:
        d = self.data
        topology = d.get("topology")
        services = tuple(s for s in (self.service(i, s) for i, s in enumerate(sequence(d.get("services"))))
                         if s is not None)
        for i, service in enumerate(services):
            if services.index(service) < i:
                self.fail(("services", i), f"a second {service.kind} on {service.node} port {service.port}: "
                                           "one server per port")
        steady = tuple(p for p in (self.probe(("steady_state", i), p)
                                   for i, p in enumerate(sequence(d.get("steady_state")))) if p is not None)
        if "steady_state" not in d:
            self.fail((), "an experiment needs a steady_state: the probes that must hold before and after "
                          "the faults")
        faults = tuple(f for f in (self.fault(i, f, topology) for i, f in enumerate(sequence(d.get("faults"))))
                       if f is not None)
        during_spec = mapping(d.get("during"))
        during = tuple(p for p in (self.probe(("during", "probes", i), p)
                                   for i, p in enumerate(sequence(during_spec.get("probes")))) if p is not None)
        last_end = max((f.end_ms for f in faults), default=0.0)
        during_ms = last_end
        if "duration" in during_spec:
            during_ms = duration_ms(during_spec["duration"])
            if not 0 < during_ms <= MAX_DURING_MS:
                self.fail(("during", "duration"), "the fault phase lasts more than 0 and at most an hour")
            elif during_ms < last_end:
                self.fail(("during", "duration"), f"the fault phase ({during_spec['duration']}) ends before its "
                                                  f"last fault does ({last_end / 1000:g} s from its start)")
        if during_ms > MAX_DURING_MS:
            self.fail(("faults",), "the faults' schedule runs past an hour")
        self.unique_names(steady, "steady_state")
        self.unique_names(during, "during", "probes")
        names = [f.fault.name for f in faults]
        for i, f in enumerate(faults):
            if names.count(f.fault.name) > 1 and names.index(f.fault.name) < i:
                self.fail(("faults", i), f"fault {f.fault.name} is scheduled twice: give the second a `name`")
        for i, probe in enumerate(during):
            if probe.within is not None and probe.within not in names:
                self.fail(("during", "probes", i, "within"), f"no scheduled fault is named {quote(probe.within)} "
                                                             f"(there are: {', '.join(names) or 'none'})")
            if probe.start_ms + probe.budget_ms() > max(during_ms, 1) + MAX_PROBE_MS:
                self.fail(("during", "probes", i), "this probe would run long past the fault phase")
        return Experiment(name=name, source=self.doc.file, description=d.get("description", ""),
                          topology=topology, services=services, steady_state=steady, faults=faults,
                          during=during, during_ms=during_ms)

    def unique_names(self, probes, *where) -> None:
        seen = set()
        for i, probe in enumerate(probes):
            if probe.name in seen:
                self.fail((*where, i, "name"), f"a second probe named {quote(probe.name)}: names tell the "
                                               "probes apart in the report")
            seen.add(probe.name)

    # -- services -------------------------------------------------------------------
    def service(self, index: int, spec) -> Service | None:
        spec = mapping(spec)
        kinds = [k for k in SERVICE_KINDS if k in spec]
        if "node" not in spec or len(kinds) != 1:
            return None  # the schema said what is missing
        return Service(spec["node"], kinds[0], spec[kinds[0]], self.doc.line_of(("services", index)))

    # -- probes ---------------------------------------------------------------------
    def probe(self, path: tuple, spec) -> Probe | None:
        spec = mapping(spec)
        kinds = [k for k in PROBE_KINDS if k in spec]
        if len(kinds) != 1:
            if "name" in spec and "node" in spec:
                self.fail(path, f"a probe is one of {', '.join(PROBE_KINDS)}"
                          + (f", not {' and '.join(kinds)} at once" if kinds else ""))
            return None
        if "name" not in spec or "node" not in spec:
            return None
        kind = kinds[0]
        if any(unicodedata.category(ch)[0] == "C" for ch in spec["name"]):
            self.fail((*path, "name"), "a probe name is shown on terminals and in plots: no control characters")
        times = {}
        for key in ("interval", "timeout"):
            ms = duration_ms(spec[key]) if key in spec else DEFAULTS[key]
            if key == "interval" and not MIN_INTERVAL_MS <= ms <= MAX_TIMEOUT_MS:
                self.fail((*path, key), "an interval is from 1ms to 60s")
            if key == "timeout" and not 0 < ms <= MAX_TIMEOUT_MS:
                self.fail((*path, key), "a timeout is more than 0 and at most 60s")
            times[key] = ms
        target, port, transfer_ms, command = None, None, 0.0, ()
        if kind == "command":
            command = self.command((*path, "command"), spec["command"])
        else:
            end = mapping(spec[kind])
            target, port = end.get("to"), end.get("port")
            if target is not None:
                self.target((*path, kind, "to"), target)
            if kind == "icmp" and port is not None:
                self.fail((*path, kind, "port"), "ICMP has no ports")
            if kind != "icmp" and port is None and target is not None:
                self.fail((*path, kind), f"a {kind} probe needs a port: {{to: {target}, port: PORT}}")
            if "duration" in end:
                if kind != "tcp_transfer":
                    self.fail((*path, kind, "duration"), "only a tcp_transfer has a duration (others: count "
                                                         "and interval)")
                else:
                    transfer_ms = duration_ms(end["duration"])
                    if not 0 < transfer_ms <= MAX_PROBE_MS:  # also NaN and infinity
                        self.fail((*path, kind, "duration"), "a transfer lasts more than 0 and at most ten minutes")
                        transfer_ms = TRANSFER_MS
            elif kind == "tcp_transfer":
                transfer_ms = TRANSFER_MS
            if kind == "tcp_transfer" and "count" in spec:
                self.fail((*path, "count"), "a tcp_transfer is one transfer: give its duration instead")
        expect = self.expect(path, kind, mapping(spec.get("expect")))
        probe = Probe(name=spec["name"], kind=kind, node=spec["node"], target=target, port=port,
                      count=1 if kind == "tcp_transfer" else spec.get("count", DEFAULTS["count"]),
                      interval_ms=times["interval"], timeout_ms=times["timeout"], duration_ms=transfer_ms,
                      command=command, expect=expect, halt=bool(spec.get("halt")),
                      start_ms=self.offset((*path, "start"), spec.get("start")),
                      within=spec.get("within"), line=self.doc.line_of(path))
        if MAX_PROBE_MS < probe.budget_ms() < math.inf:  # an infinite time is refused at its own field
            self.fail(path, f"this probe could take {probe.budget_ms() / 1000:.0f} s: at most "
                            f"{MAX_PROBE_MS // 60_000} minutes (fewer samples, a shorter interval or timeout)")
        if path[0] != "during":
            for key, why in (("halt", "halt stops the faults when this probe fails"),
                             ("start", "start schedules a probe in the fault phase"),
                             ("within", "within judges a probe by one fault's window")):
                if key in spec:
                    self.fail((*path, key), f"{why}: it belongs to during.probes")
        return probe

    def offset(self, path: tuple, value) -> float:
        """A start offset in ms: from 0 to an hour (0 when not given or refused)."""
        if value is None:
            return 0.0
        ms = duration_ms(value)
        if not 0 <= ms <= MAX_DURING_MS:  # also NaN and infinity
            self.fail(path, "a start is from 0 to an hour into the fault phase")
            return 0.0
        return ms

    def command(self, path: tuple, value) -> tuple:
        if isinstance(value, list):
            argv = tuple(value)
        else:
            try:
                argv = tuple(shlex.split(value))
            except ValueError as exc:
                self.fail(path, f"cannot split this command into words: {exc}")
                return ()
        if not argv or not argv[0]:
            self.fail(path, "the command is empty" if not argv else "the command's program (its first word) is empty")
            return ()
        for k, word in enumerate(argv):
            if isinstance(word, str) and not word.isprintable():  # a NUL cannot even reach exec
                self.fail((*path, k) if isinstance(value, list) else path,
                          f"word {quote(word)} holds control characters")
                return ()
        return argv

    def target(self, path: tuple, value: str) -> None:
        if "%" in value:
            self.fail(path, f"{quote(value)} has a scope id: probe a node by name, or an address without one")
            return
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,47}", value):
                self.fail(path, f"{quote(value)} is neither an address nor a node name")
            return
        if address.is_unspecified or address.is_multicast or value == "255.255.255.255":
            # 0.0.0.0 answers from the probing node itself: a probe that always holds
            self.fail(path, f"{value} is no one node's address: probe a node by name or one of its addresses")

    def expect(self, path: tuple, kind: str, spec: dict) -> tuple:
        bounds = []
        for metric, value in spec.items():
            where = (*path, "expect", metric)
            if metric not in METRICS[kind]:
                self.fail(where, f"a {kind} probe measures {', '.join(METRICS[kind])}; not {quote(metric)}")
                continue
            found = [b for b in (self.bound(where, metric, text)
                                 for text in (value if isinstance(value, list) else [value])) if b is not None]
            if found and not _satisfiable(found):
                self.fail(where, f"no value meets {' and '.join(b.text for b in found)}: the probe could never hold")
            bounds += found
        return tuple(bounds)

    def bound(self, path: tuple, metric: str, text: str) -> Bound | None:
        found = _BOUND.fullmatch(text)
        if not found:
            return None  # the schema said so
        op, number, unit = found.group(1), float(found.group(2)), found.group(3)
        want = unit_of(metric)
        if want == "%":
            if unit not in ("", "%"):
                self.fail(path, f"{metric} is a percentage: write {op} {found.group(2)}%")
                return None
            if number > 100:
                self.fail(path, f"{metric} is a percentage, at most 100%, not {number:g}%")
                return None
            value = number
        elif want == "ms":
            if unit not in _TIME:
                self.fail(path, f"{metric} is a time: write it in us, ms or s (e.g. {op} {found.group(2)}ms)")
                return None
            value = number * _TIME[unit]
        else:
            if unit not in _RATE:
                self.fail(path, f"{metric} is a rate: write it in bit/s, kbit/s, mbit/s or gbit/s")
                return None
            value = number * _RATE[unit]
        return Bound(metric, op, value, text.strip())

    # -- faults ---------------------------------------------------------------------
    def fault(self, index: int, spec, topology) -> ScheduledFault | None:
        spec = mapping(spec)
        path = ("faults", index)
        if ("fault" in spec) == ("inline" in spec):
            self.fail(path, "a scheduled fault is either `fault: NAME` (a fault file) or `inline: {...}`")
            return None
        if "fault" in spec:
            fault = self.fault_file((*path, "fault"), spec["fault"])
        else:
            fault = self.inline((*path, "inline"), spec["inline"], spec.get("name") or f"fault-{index + 1}")
        if fault is None:
            return None
        if "name" in spec:
            fault = replace(fault, name=spec["name"])
        if fault.topology and topology and fault.topology != topology:
            self.fail(path, f"fault {fault.name} is meant for topology {fault.topology}, "
                            f"this experiment runs on {topology}")
        start = self.offset((*path, "start"), spec.get("start"))
        length = duration_ms(spec["duration"]) if "duration" in spec else float(fault.duration_ms)
        if not 100 <= length <= MAX_DURING_MS:  # also NaN
            self.fail((*path, "duration"), "a scheduled fault lasts from 100ms to an hour")
            length = 100.0
        return ScheduledFault(fault, start, length, self.doc.line_of(path))

    def fault_file(self, path: tuple, name: str):
        here = os.path.dirname(self.doc.file) or "."
        project = _project_of(here)
        if "/" in name or name.endswith((".yaml", ".yml")):
            file = os.path.normpath(os.path.join(here, name))
        else:
            file = os.path.normpath(os.path.join(project, "faults", f"{name}.yaml"))
        # The experiment file is input (a pull request's): the fault files it names
        # are read only inside its git repository (outside git: its project), so
        # /etc/shadow, or a link to it, never reaches a CI log.
        why = outside_problem(file, name, os.path.join(project, "experiment"), self.read, what="fault file",
                              within="the experiment's project")
        if why:
            self.fail(path, why)
            return None
        try:
            return load_fault(file, read=self.read)
        except ManifestError as exc:
            self.fail(path, f"fault file {file} is not usable ({len(exc.problems)} problem"
                            f"{'s' if len(exc.problems) != 1 else ''} below)")
            self.problems.extend(exc.problems)
            return None

    def inline(self, path: tuple, spec: dict, name: str):
        """Checked as a fault file would be; its problems pinned to this file's lines."""
        prefix = len(path)
        sub = Document(self.doc.file, spec,
                       lines={p[prefix:]: line for p, line in self.doc.lines.items() if p[:prefix] == path},
                       written={p[prefix:]: w for p, w in self.doc.written.items() if p[:prefix] == path},
                       has_floats=self.doc.has_floats)
        found = schema_problems(sub, "fault")
        checker = FaultChecker(sub, set(spec))
        fault = checker.build(name)
        here = format_path(path)
        for problem in found + checker.problems:
            inner = problem.path
            joined = here + (inner if inner.startswith("[") else f".{inner}" if inner else "")
            self.problems.append(Problem(problem.file, problem.line, joined, problem.message))
        return None if found or checker.problems else fault


def _satisfiable(bounds) -> bool:
    """Whether some value meets every bound of one metric (`>= 50%` and `<= 10%`: none)."""
    low, low_open, high, high_open = -math.inf, False, math.inf, False
    for b in bounds:
        if b.op in (">", ">=") and (b.value > low or b.value == low and b.op == ">"):
            low, low_open = b.value, b.op == ">"
        elif b.op in ("<", "<=") and (b.value < high or b.value == high and b.op == "<"):
            high, high_open = b.value, b.op == "<"
        elif b.op == "==":
            if not all(o.holds(b.value) for o in bounds):
                return False
    return low < high or low == high and not (low_open or high_open)


def _project_of(here: str) -> str:
    """The lab's project directory for an experiment in `here`: the nearest
    directory at or above it that holds faults/ (experiments/sub/x.yaml: the one
    holding experiments/), else the one above `here`."""
    return nearest_holding(os.path.abspath(here), "faults", is_dir=True) or os.path.dirname(os.path.abspath(here))
