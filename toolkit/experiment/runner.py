"""Running an experiment on a lab: hypothesis before, faults with probes during, hypothesis after.

    resolve     the lab instance, each probe's namespace and target address, and
                a dry run of every fault (a fault this kernel cannot do, or a
                node the lab lacks, stops the experiment before anything runs)
    services    the experiment's servers, bounded by the experiment's budget
    before      the steady-state probes, at once; if one fails, nothing is injected
    faults      each fault injected at its offset and reverted at its end, each
                probe started at its offset; a failing `halt` probe stops the phase
    revert      whatever is still in place: always (a halt, an error, Ctrl-C)
    after       the steady-state probes again

A SIGKILL of this process leaves faults whose leases end them on time (their
keepers) and agents that stop at their own deadlines. The kernel backend is
handed in (chaos.engine does the injecting).
"""

from __future__ import annotations

import time
from contextlib import contextmanager, ExitStack
from dataclasses import dataclass, field

from ..chaos import engine
from ..core.interrupts import uninterrupted
from ..errors import ExperimentError, NetkeelError
from ..model.experiment import Experiment, Probe, ScheduledFault, format_value
from ..state.statedir import StateDir
from . import measure
from .probes import AgentProcess, service_spec, spec_of

READY_S = 5.0          # a service that is not listening by then failed to start
OTHERS_S = 0.25        # how often the fault phase looks for faults it did not inject
EXPERIMENT_LOCKS = "experiments"  # in the state directory: one lock file per lab
TICK_S = 0.05          # how often the fault phase looks at its schedule and its halt probes
HALT_MIN_SAMPLES = 20  # a halt probe is judged once it has this many settled samples (or all it will have):
                       # fewer would halt on chance (5 pings through 40% loss all arrive 8% of the time)


@dataclass
class ProbeRun:
    phase: str                    # before, during, after
    probe: Probe
    namespace: str
    address: str | None
    samples: list = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    window: tuple | None = None   # (start, end) the probe was judged over (its `within` fault)
    measured: dict = field(default_factory=dict)
    results: list = field(default_factory=list)  # (Bound, value, ok)

    @property
    def passed(self) -> bool:
        return self.error is None and measure.passed(self.results)

    def judge(self) -> None:
        samples = self.samples if self.window is None else measure.within(self.samples, *self.window)
        self.measured = measure.measure(self.probe, samples)
        self.results = measure.check(self.probe, self.measured)


@dataclass
class FaultRun:
    scheduled: ScheduledFault
    lease: str | None = None
    backends: list = field(default_factory=list)
    operations: list = field(default_factory=list)
    injected: float | None = None   # in place (checked in the kernel) from
    reverted: float | None = None
    error: str | None = None
    effects: dict = field(default_factory=dict)  # probe name -> metrics over this fault's window

    @property
    def name(self) -> str:
        return self.scheduled.fault.name


@dataclass
class Outcome:
    experiment: Experiment
    instance: str = ""
    prefix: str = ""
    started: float = 0.0
    ended: float = 0.0
    phases: list = field(default_factory=list)   # (label, start, end)
    before: list = field(default_factory=list)   # ProbeRun
    during: list = field(default_factory=list)
    after: list = field(default_factory=list)
    faults: list = field(default_factory=list)   # FaultRun
    verdict: str = "running"   # held, not held, not held before, halted, interrupted, error
    reasons: list = field(default_factory=list)
    others: dict = field(default_factory=dict)   # lease id -> "fault (what)": not this run's, seen in place

    @property
    def held(self) -> bool:
        return self.verdict == "held"

    def probes(self) -> list:
        return self.before + self.during + self.after


class Runner:
    def __init__(self, kernel, state: StateDir, experiment: Experiment, prefix: str | None = None,
                 start_keeper=None, say=lambda text: None, clock=time.time, on_start=lambda outcome: None):
        """`on_start(outcome)` is told once the run is resolved, before anything
        is started or injected (the journal's record of a run under way)."""
        self.kernel, self.state, self.experiment = kernel, state, experiment
        self.prefix, self.start_keeper, self.say, self.clock = prefix, start_keeper, say, clock
        self.on_start = on_start
        self.namespaces: dict = {}
        self.addresses: dict = {}

    # -- the whole run ----------------------------------------------------------------
    def run(self) -> Outcome:
        """Run the experiment. Raises ExperimentError / FaultError / OwnershipError
        when it cannot start (nothing was injected then); once started, every
        failure, a halt and Ctrl-C end in an Outcome saying so, with whatever was
        injected reverted."""
        outcome = Outcome(self.experiment)
        with ExitStack() as held:
            self.resolve(outcome, held=held)
            return self._run(outcome)

    def _run(self, outcome: Outcome) -> Outcome:
        outcome.started = self.clock()
        self.on_start(outcome)
        self.deadline = outcome.started + self.experiment.budget_ms() / 1000
        try:
            with ExitStack() as services:
                self.start_services(services)
                outcome.before = self.steady("before", outcome)
                failing = [r.probe.name for r in outcome.before if not r.passed]
                if failing:
                    outcome.verdict = "not held before"
                    outcome.reasons.append("the steady state did not hold before the faults ("
                                           + ", ".join(failing) + "): nothing was injected")
                    return outcome
                try:
                    self.fault_phase(outcome)
                finally:
                    self.revert_all(outcome)
                outcome.after = self.steady("after", outcome)
        except KeyboardInterrupt:
            outcome.verdict = "interrupted"
            left = [f.name for f in outcome.faults if f.lease and f.reverted is None]
            outcome.reasons.append("interrupted (Ctrl-C or SIGTERM); " + (
                f"fault(s) {', '.join(left)} could not be reverted now: their leases end them on time "
                "(`chaos status`)" if left else "every fault it injected was reverted"))
        except NetkeelError as exc:
            outcome.verdict = "error"
            outcome.reasons.append(str(exc))
        finally:
            outcome.ended = self.clock()
        if outcome.verdict in ("running", "halted"):
            self.conclude(outcome)
        return outcome

    def check(self, phase: str, deadline: float) -> list:
        """The steady-state probes alone, once (with the services they need), all
        stopped by `deadline`: what `apply --try` asks of a change. Returns the
        ProbeRuns; raises ExperimentError if they cannot run."""
        outcome = Outcome(self.experiment)
        self.resolve(outcome, faults=False)
        self.deadline = deadline
        with ExitStack() as services:
            self.start_services(services)
            return self.steady(phase, outcome)

    # -- before anything runs ---------------------------------------------------------
    def resolve(self, outcome: Outcome, faults: bool = True, held: ExitStack | None = None) -> None:
        """Find the lab and check the experiment against it; with `held`, take the
        lab's experiment lock into it first. Raises ExperimentError."""
        x = self.experiment
        engine.expire(self.kernel, self.state)
        instance = engine.find_instance(self.state, x.topology, self.prefix,
                                        lambda message: ExperimentError(x.name, message))
        outcome.instance, outcome.prefix = instance.id, instance.prefix
        if held is not None:
            held.enter_context(_one_experiment_at_a_time(self.state, instance.id, x.name))
        others = engine.active(self.state, instance.id)
        if others:  # they would be measured as this experiment's, or mask its faults
            raise ExperimentError(x.name, "faults are active on " + instance.id + ": " + ", ".join(
                f"{l.fault} ({l.text}, {l.left():.0f} s left)" for l in others) + "; an experiment measures its "
                "own faults alone: wait for them to end, or `chaos revert --all`")
        lab = engine.lab_of(self.kernel, self.state, instance)
        self.namespaces = lab.namespaces
        problems = []
        nodes = sorted(lab.namespaces)
        for thing in (*x.services, *x.steady_state, *x.during):
            if thing.node not in lab.namespaces:
                what = f"probe {thing.name!r}" if isinstance(thing, Probe) else f"service {thing.kind}"
                problems.append(f"{_at(x.source, thing.line)}{what}: no node {thing.node!r} in {instance.id} "
                                f"(nodes: {', '.join(nodes)})")
        for probe in (*x.steady_state, *x.during):
            if probe.target is None or probe.target in self.addresses:
                continue
            if probe.target in lab.namespaces:
                own = lab.addresses.get(lab.namespaces[probe.target]) or []
                first = next((a for a in own if ":" not in a), own[0] if own else None)
                if first is None:
                    problems.append(f"{_at(x.source, probe.line)}probe {probe.name!r}: node {probe.target} has no "
                                    "address to probe")
                self.addresses[probe.target] = first
            elif _is_address(probe.target):
                self.addresses[probe.target] = probe.target
            else:  # refused here, as an unknown probe node is, not by the agent once probing
                problems.append(f"{_at(x.source, probe.line)}probe {probe.name!r}: no node {probe.target!r} to "
                                f"probe in {instance.id} (nodes: {', '.join(nodes)})")
        if problems:  # each on a line of its own, as a manifest's problems are
            raise ExperimentError(x.name, problems[0] if len(problems) == 1 else
                                  "".join(f"\n  {problem}" for problem in problems))
        held = []  # (scheduled fault, what it holds)
        for scheduled in x.faults if faults else ():  # one this kernel cannot do stops it now, not half-way
            _, fault_plan = engine.inject(self.kernel, self.state, scheduled.fault, prefix=instance.prefix,
                                          duration_ms=scheduled.duration_ms, dry_run=True)
            held.append((scheduled, engine.holds(fault_plan)))
        clashes = _clashes(x.source, held)
        if clashes:
            raise ExperimentError(x.name, clashes[0] if len(clashes) == 1 else
                                  "".join(f"\n  {clash}" for clash in clashes))

    def start_services(self, stack: ExitStack) -> None:
        for service in self.experiment.services:
            agent = stack.enter_context(AgentProcess())
            agent.start(self.namespaces[service.node], service_spec(service, self.deadline))
            if not agent.wait_ready(READY_S):
                agent.wait(0.5)  # exited (its error is read then), or still not listening
                raise ExperimentError(self.experiment.name, f"service {service.kind} on {service.node} port "
                                                            f"{service.port} did not start: "
                                      + (agent.error or "not listening after 5 s"))
            self.say(f"service {service.kind} listening on {service.node} port {service.port}")

    # -- steady state -----------------------------------------------------------------
    def steady(self, phase: str, outcome: Outcome) -> list:
        probes = self.experiment.steady_state
        self.say(f"steady state {phase}: {len(probes)} probe{'s' if len(probes) != 1 else ''}")
        start = self.clock()
        with ExitStack() as stack:
            runs = [self.launch(stack, phase, probe) for probe in probes]
            longest = max(p.budget_ms() for p in probes) / 1000 + 2
            for run, agent in runs:
                self.finish(run, agent, min(start + longest, self.deadline))
        outcome.phases.append((f"steady state {phase}", start, self.clock()))
        for run, _ in runs:
            run.judge()
        return [run for run, _ in runs]

    def launch(self, stack: ExitStack, phase: str, probe: Probe) -> tuple:
        run = ProbeRun(phase, probe, self.namespaces[probe.node], self.addresses.get(probe.target))
        agent = stack.enter_context(AgentProcess())
        run.started = self.clock()
        deadline = min(self.deadline, run.started + probe.budget_ms() / 1000 + 1)
        agent.start(run.namespace, spec_of(probe, run.address, deadline))
        return run, agent

    def finish(self, run: ProbeRun, agent: AgentProcess, deadline: float) -> None:
        if not agent.wait(max(0.0, deadline - self.clock())):
            run.error = "did not finish in its time; stopped"
        agent.stop()
        run.ended = self.clock()
        run.samples = list(agent.samples)
        if agent.error and run.error is None:
            run.error = agent.error

    # -- the fault phase ----------------------------------------------------------------
    def fault_phase(self, outcome: Outcome) -> None:
        x = self.experiment
        start = self.clock()
        outcome.faults = [FaultRun(s) for s in x.faults]
        # Ends before starts at the same moment: back-to-back faults on one device
        # must not meet.
        schedule = sorted([(f.scheduled.end_ms, 0, i, "revert") for i, f in enumerate(outcome.faults)]
                          + [(f.scheduled.start_ms, 1, i, "inject") for i, f in enumerate(outcome.faults)]
                          + [(p.start_ms, 2, i, "probe") for i, p in enumerate(x.during)])
        running: list = []   # (ProbeRun, AgentProcess)
        self.say(f"fault phase: {len(x.faults)} fault{'s' if len(x.faults) != 1 else ''} over "
                 f"{x.during_ms / 1000:g} s")
        with ExitStack() as stack:
            try:
                while True:
                    now_ms = (self.clock() - start) * 1000
                    while schedule and schedule[0][0] <= now_ms:
                        _, _, index, what = schedule.pop(0)
                        if what == "inject":
                            self.inject(outcome.faults[index], outcome)
                        elif what == "revert":
                            self.revert(outcome.faults[index])
                        else:
                            running.append(self.launch(stack, "during", x.during[index]))
                    self.note_others(outcome)
                    halted = self.halting(running, outcome.faults)
                    if halted is not None:
                        outcome.verdict = "halted"
                        outcome.reasons.append(f"probe {halted.probe.name!r} failed during the faults "
                                               f"({_failures(halted)}): the experiment was halted and its "
                                               "faults reverted")
                        break
                    done = all(agent.wait(0) for _, agent in running)
                    if not schedule and done and now_ms >= x.during_ms:
                        break
                    if self.clock() > self.deadline:
                        outcome.reasons.append("the fault phase ran past the experiment's time; stopped")
                        break
                    wait = (schedule[0][0] - now_ms) / 1000 if schedule else TICK_S
                    time.sleep(max(0.0, min(TICK_S, wait)))
            finally:
                ended = self.clock()
                for run, agent in running:
                    self.finish(run, agent, ended + (0 if outcome.verdict == "halted" else 0.5))
                outcome.phases.append(("faults", start, ended))
        outcome.during = [run for run, _ in running]

    def note_others(self, outcome: Outcome) -> None:
        """Note the faults in place on the lab that this run did not inject (another
        user's `chaos`): what it measures includes them. Looked at every OTHERS_S."""
        now = self.clock()
        if now < getattr(self, "_others_at", 0.0):
            return
        self._others_at = now + OTHERS_S
        own = {f.lease for f in outcome.faults}
        for lease in engine.active(self.state, outcome.instance):
            if lease.id not in own:
                outcome.others.setdefault(lease.id, f"{lease.fault} ({lease.text})")

    def inject(self, fault: FaultRun, outcome: Outcome) -> None:
        scheduled = fault.scheduled
        try:
            lease, plan = engine.inject(self.kernel, self.state, scheduled.fault, prefix=outcome.prefix,
                                        duration_ms=scheduled.duration_ms, start_keeper=self.start_keeper)
        except NetkeelError as exc:
            fault.error = str(exc)
            raise
        fault.lease, fault.injected = lease.id, lease.started
        fault.backends = [list(b) for b in plan.backends]
        fault.operations = plan.text()
        self.say(f"injected {fault.name}: {scheduled.fault.text()} "
                 f"({', '.join(f'{k} by {b}' for k, b in plan.backends)})")

    def revert(self, fault: FaultRun) -> None:
        if fault.lease is None or fault.reverted is not None:
            return
        lease = engine.revert(self.kernel, self.state, fault.lease,
                              why=f"experiment {self.experiment.name}: its scheduled end, or the run's")
        # Gone already: its keeper ended it at its expiry, a moment before.
        fault.reverted = self.clock() if lease is not None else min(self.clock(), fault.injected
                                                                     + fault.scheduled.duration_ms / 1000)
        self.say(f"reverted {fault.name}")

    def revert_all(self, outcome: Outcome) -> None:
        errors = []
        with uninterrupted():  # a second Ctrl-C waits until every fault is reverted
            for fault in outcome.faults:
                try:
                    self.revert(fault)
                except NetkeelError as exc:
                    errors.append(f"{fault.name}: {exc}")
        if errors:
            raise NetkeelError("reverting the experiment's faults failed (their leases end them at their "
                               "expiry): " + "; ".join(errors))

    def halting(self, running: list, faults: list):
        """The first `halt` probe whose samples so far break one of its bounds."""
        for run, agent in running:
            if not run.probe.halt:
                continue
            window = _window_of(run.probe, faults)
            # Only requests whose fate is known: answers come back before losses time out,
            # so the newest ones would make any loss look smaller than it is.
            settled_before = self.clock() - run.probe.timeout_ms / 1000
            samples = [s for s in list(agent.samples) if s.get("t", 0) <= settled_before or s.get("done")]
            if run.probe.within is not None:
                if window is None:
                    continue  # judged within a fault that is not in place yet
                samples = measure.within(samples, *window)
            enough = min(HALT_MIN_SAMPLES, run.probe.count)
            if len([s for s in samples if "seq" in s]) < enough:
                continue
            results = measure.check(run.probe, measure.measure(run.probe, samples))
            # A bound that needs the whole probe (a transfer's goodput) is judged at the end.
            if any(not ok and value is not None for _, value, ok in results):
                run.samples = samples
                run.results = results
                return run
        return None

    # -- the verdict --------------------------------------------------------------------------
    def conclude(self, outcome: Outcome) -> None:
        if outcome.others:
            outcome.reasons.append("fault(s) this experiment did not inject were in place on the lab during its "
                                   "faults: " + ", ".join(outcome.others.values()) + "; what it measured "
                                   "includes them")
        for fault in outcome.faults:
            window = (fault.injected, fault.reverted or outcome.ended)
            if fault.injected is None:
                continue
            for run in outcome.during:
                inside = measure.within(run.samples, *window)
                if inside:
                    fault.effects[run.probe.name] = measure.measure(run.probe, inside)
        for run in outcome.during:
            if run.probe.within is not None:
                window = _window_of(run.probe, outcome.faults)
                if window is None:
                    run.error = f"fault {run.probe.within} was never in place"
                run.window = window
            run.judge()
        failing = [f"{r.phase}: {r.probe.name} ({_failures(r)})" for r in outcome.probes() if not r.passed]
        if outcome.verdict == "running":
            outcome.reasons.extend(failing)
            outcome.verdict = "not held" if failing else "held"


def _window_of(probe: Probe, faults: list):
    """(in place from, reverted at) of the fault a probe is judged within (None: all its samples)."""
    if probe.within is None:
        return None
    fault = next((f for f in faults if f.name == probe.within), None)
    if fault is None or fault.injected is None:
        return None
    return fault.injected, fault.reverted or float("inf")


def _failures(run: ProbeRun) -> str:
    if run.error:
        return run.error
    return ", ".join(f"{bound.metric} {format_value(value, bound.metric)} is not {bound.text}"
                     for bound, value, ok in run.results if not ok)


def _is_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@contextmanager
def _one_experiment_at_a_time(state: StateDir, instance: str, name: str):
    """Hold the lab's experiment lock (an flock: it dies with its holder) for the
    run: a second experiment on one lab would measure the first's faults as its
    own, and refuse its own halfway for the first's. Raises ExperimentError."""
    import hashlib
    import os

    from ..core.flock import take

    path = f"{EXPERIMENT_LOCKS}/{hashlib.sha256(instance.encode()).hexdigest()[:16]}.lock"
    fd = state.open(path, os.O_RDWR | os.O_CREAT, create_dirs=True)
    try:
        if not take(fd, 0):
            raise ExperimentError(name, f"another experiment is running on {instance}: one at a time on a lab "
                                        "(its faults would be measured as this one's)")
        yield
    finally:
        os.close(fd)


def _clashes(source: str, held: list) -> list:
    """A problem for each scheduled fault that holds what one scheduled before it
    holds while both are in place (the MTU of one device, its root qdisc): the
    second would be refused half-way through the run, after the first changed the lab."""
    out = []
    for j, (later, later_holds) in enumerate(held):
        for earlier, earlier_holds in held[:j]:
            both = sorted(earlier_holds & later_holds)
            if both and later.start_ms < earlier.end_ms and earlier.start_ms < later.end_ms:
                ns, dev, slot = both[0]
                out.append(f"{_at(source, later.line)}faults[{j}]: fault {later.fault.name} would take the {slot} "
                           f"of {dev} in {ns}, which fault {earlier.fault.name} (line {earlier.line}) holds from "
                           f"{earlier.start_ms / 1000:g} s to {earlier.end_ms / 1000:g} s: start it after that, "
                           "or declare both in one fault")
                break
    return out


def _at(source: str, line: int) -> str:
    """Where a probe or service was declared, as manifest problems name it
    (file:line: ), so a node the running lab lacks is found in the file."""
    return f"{source}:{line}: " if source and line else ""
