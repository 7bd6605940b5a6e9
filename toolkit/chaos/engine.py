"""Injecting, reverting and expiring faults: leases that a fault cannot outlive.

    inject: revert what has expired; resolve the running lab (the instance of the
            fault's topology, by --ns-prefix or the only one applied); choose a
            backend per impairment from what this kernel can do; refuse a
            conflict with an active fault on the same target; write the lease
            (each operation before it is made, so a crash leaves nothing that
            the lease does not know how to undo); make the operations; check
            each is in place; start the keeper.
    revert: under the lease's lock, undo its operations (last first), remove it.
    expire: revert every lease whose time is up, and every lease an injector
            died while making.

The backend is handed in (the kernel; see core/backend.py: fault_* methods).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace

from ..core import processes
from ..core.interrupts import uninterrupted
from ..core.owners import TOPOLOGY, Claim, overlay
from ..core.resource import Resource
from ..errors import FaultError, KernelError, NetkeelError, OwnershipError
from ..kinds.addr import KIND as ADDR
from ..kinds.impair import KIND as IMPAIR
from ..kinds.link import KIND as LINK
from ..kinds.nft_table import KIND as NFT_TABLE
from ..kinds.route import KIND as ROUTE
from ..kinds.sysctl import KIND as SYSCTL
from ..kinds.vrrp import KIND as VRRP
from ..model.fault import Fault
from ..runtime.engine import check_identities
from ..state.inventory import Inventory
from ..state.leases import Lease, Leases, new_id
from ..state.lock import StateLock
from ..state.statedir import StateDir
from .plan import FaultPlan, Lab, plan

CAPABILITIES = "capabilities.json"


@dataclass(frozen=True)
class Instance:
    id: str
    prefix: str
    topology: str


# How long a fault waits for a change under way (an apply, a rollback) to end.
LOCK_WAIT_S = 60


def owner_of(lease: Lease) -> str:
    return overlay(f"fault:{lease.fault}")


# -- what the kernel can do ------------------------------------------------------------

def capabilities(backend, state: StateDir) -> list:
    """What this kernel can do for faults: probed once in a throwaway namespace,
    then cached in the state directory until the kernel changes (a reboot)."""
    identity = backend.fault_kernel_identity()
    try:
        cached = state.read_json(CAPABILITIES) or {}
    except (ValueError, OSError):
        cached = {}
    if isinstance(cached, dict) and cached.get("kernel") == identity and isinstance(cached.get("can"), list) \
            and all(isinstance(c, str) for c in cached["can"]):
        return cached["can"]
    found = backend.fault_capabilities()
    state.write_json(CAPABILITIES, {"kernel": identity, "can": found}, durable=False)
    return found


# -- the running lab -----------------------------------------------------------------------

def resolve_instance(state: StateDir, fault: Fault, prefix: str | None) -> Instance:
    """The applied instance the fault acts on. Raises FaultError when there is
    none, or more than one and no --ns-prefix says which (listing them)."""
    return find_instance(state, fault.topology, prefix, lambda message: FaultError(fault.name, "target", message))


def find_instance(state: StateDir, topology: str | None, prefix: str | None, error) -> Instance:
    """The applied instance of `topology` (any, if None) with namespace prefix
    `prefix` (any, if None); raises error(message) unless there is exactly one."""
    inventory = Inventory(state)
    found = []
    for instance, entry in sorted(inventory.instances.items()):
        if topology and entry.get("topology") != topology:
            continue
        if prefix is not None and entry.get("prefix", "") != prefix:
            continue
        found.append(Instance(instance, entry.get("prefix", ""), entry.get("topology", "?")))
    what = f"topology {topology}" if topology else "any topology"
    if not found:
        where = f" with --ns-prefix {prefix!r}" if prefix is not None else ""
        raise error(f"no applied instance of {what}{where} in {state.root}; apply it first")
    if len(found) > 1:
        names = ", ".join(f"{i.id} (--ns-prefix {i.prefix!r})" for i in found)
        raise error(f"{len(found)} applied instances of {what}: {names}; say which with --ns-prefix")
    return found[0]


def lab_of(backend, state: StateDir, instance: Instance) -> Lab:
    """The namespaces, interfaces and addresses of the instance, as they are now.
    Raises OwnershipError if a namespace is not the one netkeel made."""
    names = Inventory(state).namespaces(instance.id)
    problems = check_identities(backend, state, names)
    if problems:
        raise OwnershipError(problems)
    live = backend.read(names, {})
    namespaces = {ns[len(instance.prefix):]: ns for ns in names if backend.exists(ns)}
    interfaces: dict = {ns: set() for ns in namespaces.values()}
    addresses: dict = {ns: [] for ns in namespaces.values()}
    on_device: dict = {}  # (ns, ifname) -> its IPv4 addresses, the topology's (a VIP is not a source)
    ipv6: dict = {}  # (ns, ifname) -> what the kernel drops with IPv6 there (an MTU under 1280)
    peers = {}
    for r in live:
        if r.kind in (ADDR.name, ROUTE.name, SYSCTL.name) and r.ns in interfaces:
            held = _ipv6_held(r)
            if held:
                ipv6.setdefault((r.ns, held[0]), []).append(held[1])
        if r.kind == LINK.name and r.ns in interfaces:
            interfaces[r.ns].add(r.key[1])
            other = (r.get("peer") or "").partition("/")
            if other[2] and other[0] in interfaces:
                peers[r.key] = (other[0], other[2])
        elif r.kind == ADDR.name and r.ns in addresses:
            addresses[r.ns].append(r.key[2].split("/")[0])
            if r.owner == TOPOLOGY and ":" not in r.key[2]:
                on_device.setdefault((r.ns, r.key[1]), []).append(r.key[2].split("/")[0])
    speakers: dict = {}
    for ns in namespaces.values():
        for group, found in backend.speakers_in(ns).items():
            source = (on_device.get((ns, found["config"].get("interface"))) or [None])[0]
            speakers.setdefault(group, {})[ns] = {"config": {**found["config"], "source": source},
                                                  "status": found["status"]}
    return Lab(namespaces, interfaces, addresses, peers, speakers, _with_held_away(ipv6, live, state, instance))


def _with_held_away(ipv6: dict, live, state: StateDir, instance: Instance) -> dict:
    """`ipv6` ((ns, ifname) -> IPv6 state an MTU under 1280 would delete) with what
    an active fault took away with a device it holds down (it comes back with the
    device, and could not under 1280), and, for a bridge's port, the bridge's own:
    a bridge's MTU follows its smallest port down."""
    out = {k: list(v) for k, v in ipv6.items()}
    for lease in active(state, instance.id):
        for op in lease.operations:
            if isinstance(op.get("restore"), dict):
                for r in _taken_down(lease, op["ns"], op["dev"]):
                    held = _ipv6_held(r)
                    if held:
                        out.setdefault((op["ns"], held[0]), []).append(f"{held[1]} (held away by fault {lease.fault})")
    for r in live:
        master = r.get("master") if r.kind == LINK.name else None
        if master and (r.ns, master) in out:
            out.setdefault(r.key, []).extend(f"{what} on bridge {master}" for what in out[(r.ns, master)])
    return out


def _taken_down(lease: Lease, ns: str, dev: str) -> tuple:
    """The routes and IPv6 addresses the kernel removed when the lease took `dev`
    down (recorded at injection: kernel/chaos.py), as the readers would read them
    back; they come back with the device."""
    out = []
    for op in lease.operations:
        restore = op.get("restore") if (op.get("ns"), op.get("dev")) == (ns, dev) else None
        if not isinstance(restore, dict):
            continue
        for address in restore.get("addrs") or ():
            out.append(Resource.make(ADDR.name, (ns, dev, address)))
        for prefix, metric, via, type_ in restore.get("routes") or ():
            try:
                prefix = ipaddress.ip_network(prefix).with_prefixlen
            except ValueError:
                continue
            out.append(Resource.make(ROUTE.name, (ns, prefix, metric), via=via or "", dev=dev, type=type_))
    return tuple(out)


def _ipv6_held(r):
    """(device, description) when resource `r` is IPv6 state of one device that the
    kernel deletes for good when the device's MTU goes under 1280 (its global
    addresses, routes through it, its conf.DEV settings); else None."""
    if r.kind == ADDR.name:
        address = r.key[2]
        return (r.key[1], f"address {address}") if ":" in address and not address.startswith("fe80") else None
    if r.kind == ROUTE.name:
        if ":" in r.key[1] or ":" in (r.get("via") or ""):
            return (r.get("dev"), f"route {r.key[1]}") if r.get("dev") else None
        return None
    parts = r.key[1].split(".")
    if parts[:3] == ["net", "ipv6", "conf"] and len(parts) > 4 and parts[3] not in ("all", "default"):
        return parts[3], f"sysctl {r.key[1]}"
    return None


# -- inject ----------------------------------------------------------------------------------

def inject(backend, state: StateDir, fault: Fault, prefix: str | None = None, duration_ms: int | None = None,
           dry_run: bool = False, start_keeper=None, now=time.time) -> tuple:
    """Put `fault` in place. Returns (lease, plan); with dry_run (lease None, plan)
    and nothing changed. Raises FaultError, OwnershipError, KernelError, LockHeld;
    on any failure what was made is taken away again."""
    arguments = (backend, state, fault, prefix, duration_ms, dry_run, start_keeper, now)
    if dry_run:
        return _inject(*arguments)
    # Under the state lock, from the read of the lab on, as apply, destroy and
    # rollback change the kernel: a fault put in place in the middle of an apply
    # took the value from before the apply as the one to put back, and its revert
    # undid what the apply had verified (found by racing the two). A fault waits
    # for a change under way; an apply started after it sees its claims.
    with StateLock(state, wait=True, timeout=LOCK_WAIT_S):
        return _inject(*arguments)


def _inject(backend, state: StateDir, fault: Fault, prefix, duration_ms, dry_run, start_keeper, now) -> tuple:
    leases = Leases(state)
    expire(backend, state, now=now)
    instance = resolve_instance(state, fault, prefix)
    lab = lab_of(backend, state, instance)
    duration = int(duration_ms or fault.duration_ms)
    lease_id = new_id(fault.name)
    fault_plan = plan(fault, capabilities(backend, state), lab, lease_id, duration)
    if dry_run:
        _check_conflicts(fault, fault_plan, leases)
        return None, fault_plan
    # One injection at a time: checking for a conflict and claiming the target
    # are one step, or two faults could both take one device.
    with leases.injecting():
        _check_conflicts(fault, fault_plan, leases)
        started = now()
        lease = Lease(id=lease_id, fault=fault.name, file=fault.source, instance=instance.id,
                      prefix=instance.prefix, text=fault.text(), kinds=list(fault.kinds),
                      backends=[list(b) for b in fault_plan.backends], operations=[], started=started,
                      expires=started + duration / 1000, injector=os.getpid())
        leases.save(lease)
        try:
            if start_keeper is not None:
                # The keeper first: from here on, whatever happens to this process,
                # someone ends the fault on time.
                lease.keeper = start_keeper(lease.id)
                leases.save(lease)
            for op in fault_plan.operations:
                _still_mine(leases, lease, now)
                op = _with_tables_of_faults(op, leases, lease_id)
                lease.operations.append(op)  # on record before it is made: a crash leaves nothing unknown
                leases.save(lease)
                lease.operations[-1] = {**backend.fault_apply(op), "made": True}
                leases.save(lease)
            missing = [m for m in (backend.fault_in_place(op) for op in lease.operations) if m]
            if missing:
                raise FaultError(fault.name, "verify", "not in place after injecting: " + "; ".join(missing))
            _still_mine(leases, lease, now)
            # Its time counts from now, when it is in effect (and a flap schedule with it).
            lease.started, lease.expires = now(), now() + duration / 1000
            lease.state = "active"
            lease.claims = [[op["ns"], op["dev"], op["before"]] for op in lease.operations
                            if op.get("before") and op["op"] in ("device", "flap")]
            leases.save(lease)
            _journal(state, lease, "inject", f"injected for {duration / 1000:g} s")
            if start_keeper is not None and not keeper_alive(lease):
                lease.keeper = start_keeper(lease.id)  # the first one died (killed): another keeps it
                leases.save(lease)
        except BaseException as exc:
            # Only what this injection made: a refused step made nothing, and a
            # qdisc of the same handle on that device would be someone else's.
            # A step cut short by a signal (Ctrl-C, SIGTERM) may have made part of
            # itself (a worker started, one of its rules added): it goes too (every
            # revert takes away only what is there).
            made = [o for o in lease.operations if o.get("made")]
            cut = [o for o in lease.operations[len(made):] if not isinstance(exc, Exception)]
            with uninterrupted():
                _undo(backend, replace(lease, operations=made + cut))
                leases.remove(lease.id)
            raise
    return lease, fault_plan


def _still_mine(leases: Leases, lease: Lease, now) -> None:
    """Raise FaultError if the lease ended while this injection was under way (it
    was stopped past its time, and its keeper reverted it): nothing more is made."""
    on_file = leases.load(lease.id)
    if on_file is None or lease.expired(now()):
        raise FaultError(lease.fault, "expired", "the fault's time ran out while it was being injected "
                                                 "(was this process stopped?); what was made is taken away")


def _check_conflicts(fault: Fault, fault_plan: FaultPlan, leases: Leases) -> None:
    """A fault never silently replaces another: a root qdisc or a device setting
    that an active fault holds on the same device is refused, naming it. So is
    loss or duplication on a device and direction another fault drops or copies
    on with nftables: two would compound (40% and 40% lose 64%) where the output
    says 40%, and with netem the second is refused for its root qdisc anyway.
    Other nftables faults compose (each lease has its own table)."""
    exclusive = holds(fault_plan)
    active, _ = leases.all()
    for lease in active:
        held = holds(lease)
        clash = sorted(exclusive & held)
        if clash:
            ns, dev, slot = clash[0]
            raise FaultError(fault.name, "conflict",
                             f"{dev} in {ns} already has fault {lease.fault} on its {slot} "
                             f"({lease.text}, {lease.left():.0f} s left): revert it first "
                             f"(chaos revert --fault {lease.fault}), or declare both in one fault file")


def holds(fault) -> set:
    """(namespace, device, slot) a fault plan or a lease holds exclusively (their
    operations'): two faults holding one cannot be in place at once."""
    return {held for held in map(_held, fault.operations) if held}


def _held(op: dict) -> tuple | None:
    """(namespace, device, slot) an operation holds exclusively, or None."""
    if isinstance(op.get("slot"), list) and len(op["slot"]) == 3:  # an nftables one (plan._loss_op)
        return tuple(op["slot"])
    slot = _slot(op)
    return (op["ns"], op["dev"], slot) if slot else None


def _slot(op: dict) -> str | None:
    """What an operation takes exclusively on its device."""
    if op["op"] in ("netem", "tbf"):
        return "root qdisc" if not op["dev"].startswith("nkifb") else None
    if op["op"] == "ifb":
        return "ingress"
    if op["op"] in ("device", "flap"):
        return "state" if op["op"] == "flap" or "state" in op.get("set", {}) else "mtu"
    if op["op"] == "speaker":
        return "speaker"
    if op["op"] == "nfqueue":
        return "userspace queue"  # two workers on one device would not add up: one sees the other's verdicts
    return None


# -- revert and expire ----------------------------------------------------------------------------

def revert(backend, state: StateDir, lease_id: str, why: str = "reverted") -> Lease | None:
    """Undo a lease's operations, last first, and remove it; stop its keeper;
    journal it (`why`: what ended it). Returns the lease (None if it was gone
    already). Raises KernelError (the lease is kept then, to try again).

    The kernel comes first: a state directory that cannot be written any more
    (full, read-only) must not keep a fault in place. The lease's lock is taken
    when it can be; revert is idempotent, so two that meet do no harm."""
    leases = Leases(state)
    if leases.load(lease_id) is None:
        return None  # gone already (and no lock file made again for it)
    with ExitStack() as held:
        try:
            held.enter_context(leases.locked(lease_id))
        except OSError:
            pass  # the directory is not writable: undo all the same
        lease = leases.load(lease_id)
        if lease is None:
            return None
        # A second Ctrl-C waits until the fault is taken away whole: cut off, it
        # left a flapping link down, or a worker running with its rules gone.
        with uninterrupted():
            _mark(leases, lease, "reverting")
            _undo(backend, lease, strict=True, gone=_strangers(backend, state, lease))
            try:
                leases.remove(lease_id)
            except OSError:
                pass  # the kernel is clean; the stale lease is reverted (a no-op) by the next command
            else:
                _journal(state, lease, "revert", why)
    _stop_keeper(lease)
    return lease


def _journal(state: StateDir, lease: Lease, action: str, outcome: str) -> None:
    """A journal record of a fault put in place or taken away (`history` shows a
    fault's two as one change: their tx is the lease's id). Never in the way of
    the fault: a state directory that cannot take it is passed over."""
    from ..state.journal import Journal

    try:
        Journal(state).append({"event": "fault", "tx": lease.id, "action": action, "fault": lease.fault,
                               "file": lease.file, "instance": lease.instance, "what": lease.text,
                               "outcome": outcome, "pid": os.getpid(), "expires": lease.expires})
    except (OSError, NetkeelError):
        pass


def _with_tables_of_faults(op: dict, leases: Leases, lease_id: str) -> dict:
    """A userspace op with the mangle tables other faults' ops made in its
    namespace (`tables_of_faults`): it finds them there and would not count them
    its own, and whichever fault goes last removes them (two faults in one
    namespace left both behind, found by review)."""
    if op.get("op") != "nfqueue":
        return op
    made = sorted({table for other in leases.all()[0] if other.id != lease_id for o in other.operations
                   if o.get("op") == "nfqueue" and o.get("ns") == op["ns"] for table in o.get("made_tables") or ()})
    return {**op, "tables_of_faults": made}


def _mark(leases: Leases, lease: Lease, state: str) -> None:
    lease.state = state
    try:
        leases.save(lease)
    except OSError:
        pass


def _undo(backend, lease: Lease, strict: bool = False, gone: set = frozenset()) -> None:
    """Revert each operation, last first; those in the namespaces `gone` (made
    again by hand under their names) as if their namespace were gone."""
    errors = []
    for op in reversed(lease.operations):
        try:
            backend.fault_revert({**op, "gone": True} if op["ns"] in gone else op)
        except KernelError as exc:
            errors.append(str(exc))
    if errors and strict:
        raise KernelError(f"revert fault {lease.fault}", "; ".join(errors))


def _stop_keeper(lease: Lease) -> None:
    if lease.keeper and lease.keeper != os.getpid() and keeper_alive(lease):
        try:
            os.kill(lease.keeper, signal.SIGTERM)
        except ProcessLookupError:
            pass


def keeper_alive(lease: Lease) -> bool:
    """Whether the lease's keeper still runs: its pid, running the keeper for this
    very lease (a reused pid is someone else)."""
    return bool(lease.keeper) and processes.running(lease.keeper, lease.id.encode())


def injector_alive(lease: Lease) -> bool:
    try:
        os.kill(lease.injector, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def injection_abandoned(leases: Leases, lease: Lease) -> bool:
    """Whether the lease's injector died before it marked the fault in effect.
    Its death is seen first and the lease read again after: an injector that
    marked it active and then left (its normal end) between a reader's load and
    its look at the pid is not taken for one that died half way (found under
    load: a keeper read "injecting", the injector finished and exited, and the
    keeper reverted a fault in effect)."""
    if lease.state != "injecting" or injector_alive(lease):
        return False
    try:
        again = leases.load(lease.id)
    except (ValueError, OSError):
        return False  # unreadable now: nothing to decide from here
    return again is not None and again.state == "injecting"


def expire(backend, state: StateDir, now=time.time, failures: list | None = None) -> list:
    """Revert every lease whose time is up, every lease whose injector died while
    making it, every active lease whose keeper is gone (killed), and every lease
    whose reverter died half way: its fault would outlive its time otherwise;
    returns their ids. A revert the kernel refuses is left for the next command,
    and (lease id, error) appended to `failures`, for the command to say."""
    leases = Leases(state)
    found, _ = leases.all()
    done = []
    for lease in found:
        stale = injection_abandoned(leases, lease)
        unkept = lease.state in ("active", "broken") and lease.keeper and not keeper_alive(lease)
        halted = lease.state == "reverting" and leases.abandoned(lease.id)  # its reverter was killed
        # A node's namespace removed by hand (`ip netns del`) while the fault held it:
        # a userspace worker in it kept it alive, with its veths' ends, and the lab
        # could not be applied again until the fault was reverted by hand.
        orphaned = lease.state in ("active", "broken") and _namespace_gone(backend, lease, state)
        if lease.expired(now()) or stale or unkept or halted or orphaned:
            why = ("its time ran out" if lease.expired(now()) else "its injector died half way" if stale
                   else "its keeper was gone" if unkept else "its reverter died half way" if halted
                   else f"its namespace {orphaned} was removed")
            try:
                if revert(backend, state, lease.id, why=f"{why}: reverted by the next command") is not None:
                    done.append(lease.id)
            except TimeoutError:
                continue  # held by another command now: the next one tries again
            except KernelError as exc:
                if failures is not None:
                    failures.append((lease.id, str(exc)))
    return done


def _namespace_gone(backend, lease: Lease, state: StateDir) -> str:
    """The first namespace a lease's operations act in that is gone, or made
    again by hand under its name ("" if none)."""
    exists = getattr(backend, "exists", None)
    if exists is None:
        return ""
    strangers = _strangers(backend, state, lease)
    return next((op["ns"] for op in lease.operations if op["ns"] in strangers or not exists(op["ns"])), "")


def _strangers(backend, state: StateDir, lease: Lease) -> set:
    """The namespaces a lease's operations act in that exist under their names but
    are not the ones netkeel made (`ip netns del x; ip netns add x`: another
    cookie than the one recorded): what the fault made went with the one it was
    made in, and nothing may be taken from this one."""
    from ..state.identities import Identities

    cookie = getattr(backend, "cookie", None)
    if cookie is None:
        return set()
    try:
        recorded = Identities(state).load()
    except (NetkeelError, OSError, ValueError):
        return set()  # unreadable: every command says so; not decided here
    names = {op["ns"] for op in lease.operations}
    return {name for name in names if recorded.get(name) is not None
            and (live := cookie(name)) is not None and live != recorded[name]}


def damaged(state: StateDir) -> list:
    """What is wrong with each lease file that cannot be read (one line each)."""
    return Leases(state).all()[1]


def active(state: StateDir, instance: str | None = None) -> list:
    leases, _ = Leases(state).all()
    return [l for l in leases if instance is None or l.instance == instance]


def find(state: StateDir, name: str) -> list:
    """Active leases of fault `name` (or with lease id `name`)."""
    return [l for l in active(state) if name in (l.fault, l.id)]


def claims(state: StateDir, instance: str) -> list:
    """The active faults' claims on the instance's live objects (core.owners.Claim):
    their nft tables, their ifb devices, and device fields they hold."""
    out = []
    for lease in active(state, instance):
        owner = owner_of(lease)
        text = f"fault {lease.fault}: {lease.text}, {lease.left():.0f} s left"
        targets = tuple(sorted({(op.get("ns"), op.get("dev")) for op in lease.operations if op.get("ns")}
                               | {(ns, dev) for ns, dev, _ in lease.claims}, key=str))
        tables = {(op["ns"], op["family"], op["table"]) for op in lease.operations if op["op"] == "nft"}
        if tables:
            out.append(Claim(owner, NFT_TABLE.name, lambda r, t=frozenset(tables): r.key in t, text=text,
                             targets=targets))
        ifbs = {(op["ns"], op["ifb"]) for op in lease.operations if op["op"] == "ifb"}
        if ifbs:
            out.append(Claim(owner, LINK.name, lambda r, t=frozenset(ifbs): r.key in t, text=text, targets=targets))
        qdiscs = {(op["ns"], op["dev"]) for op in lease.operations if op["op"] in ("netem", "tbf")}
        if qdiscs:
            out.append(Claim(owner, IMPAIR.name, lambda r, t=frozenset(qdiscs): r.key in t, text=text,
                             targets=targets))
        for op in lease.operations:
            if op["op"] == "speaker":  # the speaker it killed or stopped reads as running: apply leaves it so
                out.append(Claim(owner, VRRP.name, lambda r, k=(op["ns"], op["group"]): r.key == k,
                                 mask=(("running", True),), text=text, targets=targets))
        for ns, dev, before in lease.claims:
            out.append(Claim(owner, LINK.name, lambda r, k=(ns, dev): r.key == k, mask=tuple(before.items()),
                             text=text, targets=targets, supplies=_taken_down(lease, ns, dev),
                             supplies_while=lambda r: r.get("state") == "down"))
        if not (tables or ifbs or qdiscs or lease.claims or any(op["op"] == "speaker" for op in lease.operations)):
            out.append(Claim(owner, "", lambda r: False, text=text, targets=targets))  # reported all the same
    return out
