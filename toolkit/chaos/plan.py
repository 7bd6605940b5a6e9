"""From a fault to kernel operations: which backend does each impairment, and
what exactly it sets up. Pure: the same fault, capabilities and lab give the
same operations, so plans are tested without root.

An operation is a JSON-able dict, kept in the lease so that a revert (by the
keeper, by `chaos revert`, or by any later netkeel command after expiry) knows
exactly what to undo:

    {"op": "nft",   "ns", "family", "table", "text"}        an nftables table (its own)
                    (+ "slot": [ns, dev, what]: loss or duplication on a device, held
                    exclusively, as netem's root qdisc holds them: engine._check_conflicts)
    {"op": "netem", "ns", "dev", "args"}                      root netem qdisc (tc arguments)
    {"op": "tbf",   "ns", "dev", "args"}                      root tbf qdisc
    {"op": "ifb",   "ns", "dev", "ifb"}                       ingress of dev redirected to ifb
    {"op": "device", "ns", "dev", "set", "before"}           mtu / state of a device
    {"op": "flap",  "ns", "dev", "period_ms", "down_ms", "cycles", "before"}
    {"op": "nfqueue", "ns", "dev", "directions", "queue", "tag", "params", "maxlen", "expires_in_ms"}
                                                              NFQUEUE rules and the userspace
                                                              worker holding the verdicts (pid)
    {"op": "speaker", "ns", "group", "signal", "pid", "config"}
                                                              a VIP group's speaker signalled;
                                                              started again with `config` at the revert

nftables objects expire in the kernel by themselves (set elements with
timeouts): the fault stops at its time even if every netkeel process is dead.
Qdiscs and device settings have no such timeout: the keeper reverts them.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field

from ..errors import FaultError
from ..model.fault import BACKENDS, DEVICE_KINDS, VIP_KINDS, Fault, Target
from ..model.shaping import queue_limit, tbf_args as rate_args

CHAOS_TABLE_PREFIX = "netkeel_chaos_"
DUP_MARK = 0x4E4B0D00  # marks duplicates so that they are not duplicated again
# What each backend needs of the kernel (capability names, see kernel/chaos.probe).
NEEDS = {"netem": ("netem",), "nft": ("nft",), "tbf": ("tbf",), "link": (), "userspace": ("nfqueue",), "process": ()}
INGRESS_NEEDS = ("ifb", "mirred")
MISSING_TEXT = {"netem": "the sch_netem qdisc", "tbf": "the sch_tbf qdisc", "nft": "nftables",
                "ifb": "ifb devices", "mirred": "the mirred action (act_mirred)", "dup": "nftables dup",
                "gemodel": "a Gilbert-Elliott loss model, which nftables does not have",
                "egress only": "an egress target (nftables duplicates only on the way out)",
                "nfqueue": "iptables-nft's NFQUEUE target and nfnetlink_queue"}
NETEM_KINDS = ("loss", "delay", "reorder", "duplicate", "corrupt", "rate")


@dataclass(frozen=True)
class Lab:
    """What the running lab says: the namespace of each node, the interfaces of
    each namespace, and the addresses of each namespace (for partitions)."""

    namespaces: dict          # node -> namespace
    interfaces: dict          # namespace -> set of interface names
    addresses: dict           # namespace -> list of addresses ("10.0.1.2")
    peers: dict = field(default_factory=dict)  # (ns, ifname) -> (ns, ifname) at a veth's other end
    # VIP group -> {ns: {"config": the speaker's configuration, "status": what it says, or None
    # when it is not running}}, for the VIP groups' faults.
    speakers: dict = field(default_factory=dict)
    # (ns, ifname) -> IPv6 state the kernel deletes when the device's MTU goes under
    # 1280 ("address fd00::1/64", "route default", "sysctl net.ipv6.conf.eth0.X")
    ipv6: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FaultPlan:
    operations: tuple         # op dicts, in the order they are set up
    backends: tuple           # (kind, backend) for each impairment
    table: str                # the nft table name of this lease

    def text(self) -> list:
        return [describe(op) for op in self.operations]


def table_name(lease_id: str) -> str:
    """The lease's nft table: netkeel_chaos_ and a short digest (table names stay short)."""
    return CHAOS_TABLE_PREFIX + hashlib.sha256(lease_id.encode()).hexdigest()[:10]


def choose(fault: Fault, capabilities) -> tuple:
    """(kind, backend) for each impairment. Raises FaultError naming what the
    kernel lacks when a kind has no backend here (nothing is changed then)."""
    caps = set(capabilities)
    chosen, missing = [], []
    narrowed = fault.target is not None and fault.target.narrowed
    ingress = fault.target is not None and fault.target.direction in ("ingress", "both")
    for kind in fault.kinds:
        candidates = (fault.backend,) if fault.backend else BACKENDS[kind]
        usable = []
        for backend in candidates:
            if backend not in BACKENDS[kind]:
                continue
            needs = set(NEEDS[backend])
            if backend in ("netem", "tbf") and ingress:
                needs |= set(INGRESS_NEEDS)
            if backend == "nft" and kind == "duplicate":
                needs.add("dup")
            if backend in ("netem", "userspace") and narrowed and kind in ("loss", "duplicate"):
                continue  # netem cannot narrow; nftables can
            if backend == "userspace" and kind == "loss" and fault.impairment("loss").get("gilbert"):
                continue
            if backend == "nft" and kind == "loss" and fault.impairment("loss").get("gilbert"):
                missing.append((kind, backend, ["gemodel"]))  # not a uniform loss in its stead
                continue
            if needs <= caps:
                usable.append(backend)
            else:
                missing.append((kind, backend, sorted(needs - caps)))
        if usable[:1] == ["nft"] and len(usable) > 1 and kind in ("loss", "duplicate") and \
                fault.impairment(kind).get("percent") * 100 < 0.5:
            usable = usable[1:]  # below what nftables draws: the userspace worker draws any share
        if usable == ["nft"] and kind in ("loss", "duplicate") and \
                fault.impairment(kind).get("percent") * 100 < 0.5:
            raise FaultError(fault.name, kind, f"{kind} {fault.impairment(kind).get('percent'):g}% is below what "
                                               "nftables can draw (0.01%): use netem, or a larger share")
        if kind == "duplicate" and ingress and usable == ["nft"]:
            usable = []  # nftables duplicates on the way out only
            missing.append((kind, "nft", ["egress only"]))
        if not usable:
            raise FaultError(fault.name, kind, _refusal(kind, fault.backend, missing))
        chosen.append((kind, usable[0]))
    return tuple(chosen)


def _refusal(kind: str, forced, missing) -> str:
    reasons = [f"{backend} needs " + " and ".join(MISSING_TEXT.get(m, m) for m in needs)
               for k, backend, needs in missing if k == kind]
    if forced and forced not in BACKENDS[kind]:
        return f"backend {forced} cannot do {kind} (only {', '.join(BACKENDS[kind])})"
    if kind in ("delay", "reorder", "corrupt") and not reasons:
        reasons = ["netem is needed"]
    return f"this kernel cannot do {kind}: " + "; ".join(reasons or ["no backend"])


def plan(fault: Fault, capabilities, lab: Lab, lease_id: str, expires_in_ms: int) -> FaultPlan:
    """The operations that put `fault` in place. Raises FaultError (a node or
    interface the lab does not have, a kind the kernel cannot do)."""
    backends = choose(fault, capabilities)
    by_backend: dict = {}
    for kind, backend in backends:
        by_backend.setdefault(backend, []).append(kind)
    table = table_name(lease_id)
    ops = []
    vip = next((i for i in fault.impairments if i.kind in VIP_KINDS), None)
    if vip is not None:
        return FaultPlan(tuple(_vip_ops(fault, vip, lab, table, expires_in_ms)), backends, table)
    if fault.partition is not None:
        ops += _partition_ops(fault, lab, table, expires_in_ms)
    if fault.target is not None:
        ns, dev = _resolve(fault, lab)
        directions = ("egress", "ingress") if fault.target.direction == "both" else (fault.target.direction,)
        if by_backend.get("nft"):
            ops += _nft_ops(fault, ns, dev, [k for k in by_backend["nft"] if k != "partition"], directions,
                            table, expires_in_ms, lab.peers)
        for backend in ("netem", "tbf"):
            if by_backend.get(backend):
                ops += _qdisc_ops(fault, backend, ns, dev, by_backend[backend], directions, lease_id)
        if by_backend.get("userspace"):
            ops.append(nfqueue_op(fault, ns, dev, by_backend["userspace"], directions, lease_id, expires_in_ms))
        ops += _device_ops(fault, ns, dev, lab.ipv6.get((ns, dev), ()))
    return FaultPlan(tuple(ops), backends, table)


def _resolve(fault: Fault, lab: Lab) -> tuple:
    target: Target = fault.target
    ns = lab.namespaces.get(target.node)
    if ns is None:
        raise FaultError(fault.name, "target", f"node {target.node} is not in the running lab "
                                               f"(its nodes: {', '.join(sorted(lab.namespaces))})")
    if target.interface not in lab.interfaces.get(ns, set()):
        known = ", ".join(sorted(lab.interfaces.get(ns, set()) - {"lo"})) or "none"
        raise FaultError(fault.name, "target", f"node {target.node} has no interface {target.interface} "
                                               f"(it has: {known})")
    return ns, target.interface


def nft_time(ms: int) -> str:
    """A time as nft reads it: `60000ms`, and from 10^8 ms (28 hours) unit by unit
    (`1d6h0ms`): nft refuses a number of milliseconds that large ("value too
    large"), and faults may last 7 days."""
    ms = int(ms)
    if ms < 10 ** 8:
        return f"{ms}ms"
    days, ms = divmod(ms, 86_400_000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))
                   if n) + f"{ms}ms"


def _armed(name: str, expires_in_ms: int) -> str:
    """A set whose one element expires with the lease: rules match only while it is there."""
    return (f"  set armed {{ type ifname; flags timeout; "
            f"elements = {{ \"{name}\" timeout {nft_time(expires_in_ms)} }} }}\n")


def _narrowing(target: Target, direction: str) -> str:
    out = []
    if target.peer:
        family = "ip6" if ":" in target.peer else "ip"
        side = "daddr" if direction == "egress" else "saddr"
        out.append(f"{family} {side} {target.peer}")
    if target.protocol:
        out.append(f"meta l4proto {target.protocol}")
    if target.port:
        side = "dport" if direction == "egress" else "sport"
        out.append(f"th {side} {target.port}")
    return " ".join(out) + " " if out else ""


def _chance(percent: float) -> str:
    """`numgen random mod 10000 < N`: a share of packets, to a hundredth of a percent
    (a smaller share was refused by choose()); every packet (no match at all) for
    100%, since nft refuses `< 10000` as outside numgen's range 0-9999."""
    share = max(1, round(percent * 100))
    return f"numgen random mod 10000 < {share}" if share < 10000 else ""


def _loss_op(fault: Fault, loss: float, ns: str, dev: str, direction: str, peer, table: str,
             expires_in_ms: int) -> dict:
    """Loss as a link loses packets: on the way in, where nobody sent them from.
    Egress loss is dropped where the packets arrive, at the veth's other end: a
    drop on the way out (postrouting) fails the sender's own send() with EPERM,
    which no lossy link does (and a netdev egress drop does not drop on a veth).
    Without a known other end, postrouting it is."""
    where, hook, match, device = ns, "prerouting", "iifname", dev
    if direction == "egress":
        if peer is not None:
            where, device = peer
        else:
            hook, match = "postrouting", "oifname"
    chain = (f"  chain {direction} {{ type filter hook {hook} priority -150; policy accept;\n"
             f"    {match} @armed {_narrowing(fault.target, direction)}{_chance(loss)} drop\n  }}\n")
    family_table = table
    return {"op": "nft", "ns": where, "family": "inet", "table": family_table,
            "text": f"table inet {family_table} {{\n{_armed(device, expires_in_ms)}{chain}}}\n",
            "slot": [ns, dev, f"{direction} loss"]}


def _nft_ops(fault: Fault, ns: str, dev: str, kinds, directions, table: str, expires_in_ms: int,
             peers=None) -> list:
    peers = peers or {}
    ops = []
    if "loss" in kinds:
        loss = fault.impairment("loss").get("percent")
        for direction in directions:
            ops.append(_loss_op(fault, loss, ns, dev, direction, peers.get((ns, dev)), table, expires_in_ms))
    if "duplicate" in kinds:
        share = fault.impairment("duplicate").get("percent")
        # Copies pass the egress hook again: the mark keeps them from being copied in turn.
        ops.append({"op": "nft", "ns": ns, "family": "netdev", "table": table,
                    "text": f"table netdev {table} {{\n{_armed(dev, expires_in_ms)}"
                            f"  chain egress {{ type filter hook egress device \"{dev}\" priority 0; policy accept;\n"
                            f"    meta mark {DUP_MARK:#x} accept\n"
                            f"    oifname @armed {_narrowing(fault.target, 'egress')}{_chance(share)} "
                            f"meta mark set {DUP_MARK:#x} dup to \"{dev}\"\n  }}\n}}\n",
                    "slot": [ns, dev, "duplication"]})
    return ops


def _partition_ops(fault: Fault, lab: Lab, table: str, expires_in_ms: int) -> list:
    """Rules on both sides: each node drops what it sends to, and what it gets
    from, the other side's addresses (as the direction says). Both sides, so that
    a side cannot be reached under an address translated on the way (a NAT)."""
    part = fault.partition
    unknown = [n for n in part.a + part.b if n not in lab.namespaces]
    if unknown:
        raise FaultError(fault.name, "partition", f"node(s) not in the running lab: {', '.join(unknown)} "
                                                  f"(its nodes: {', '.join(sorted(lab.namespaces))})")
    a_to_b, b_to_a = part.direction in ("both", "a-to-b"), part.direction in ("both", "b-to-a")
    ops = []
    for side, other, send, get in ((part.a, part.b, a_to_b, b_to_a), (part.b, part.a, b_to_a, a_to_b)):
        addresses = [a for node in other for a in lab.addresses.get(lab.namespaces[node], [])]
        if not addresses:
            raise FaultError(fault.name, "partition", f"{', '.join(other)} has no addresses: nothing to cut")
        text = _cut_table(table, addresses, send, get, expires_in_ms)
        ops += [{"op": "nft", "ns": lab.namespaces[node], "family": "inet", "table": table, "text": text}
                for node in side]
    return ops


def _cut_table(table: str, addresses, send: bool, get: bool, expires_in_ms: int) -> str:
    """A table that drops what goes to (`send`) and comes from (`get`) `addresses`
    until its set elements time out."""
    sets, out_rules, in_rules = "", [], []
    for family, kind, name in (("ip", "ipv4_addr", "far4"), ("ip6", "ipv6_addr", "far6")):
        addrs = sorted({a for a in addresses if (":" in a) == (family == "ip6")}, key=ipaddress.ip_address)
        if not addrs:
            continue
        elements = ", ".join(f"{a} timeout {nft_time(expires_in_ms)}" for a in addrs)
        sets += f"  set {name} {{ type {kind}; flags timeout; elements = {{ {elements} }} }}\n"
        out_rules.append(f"    {family} daddr @{name} drop\n")
        in_rules.append(f"    {family} saddr @{name} drop\n")
    chains = ""
    if send:
        chains += f"  chain out {{ type filter hook output priority -150; policy accept;\n{''.join(out_rules)}  }}\n"
    if get:
        chains += f"  chain in {{ type filter hook input priority -150; policy accept;\n{''.join(in_rules)}  }}\n"
    return f"table inet {table} {{\n{sets}{chains}}}\n"


def _qdisc_ops(fault: Fault, backend: str, ns: str, dev: str, kinds, directions, lease_id: str) -> list:
    ops = []
    args = netem_args(fault, kinds) if backend == "netem" else tbf_args(fault)
    for direction in directions:
        where = dev
        if direction == "ingress":
            where = ifb_name(lease_id)
            ops.append({"op": "ifb", "ns": ns, "dev": dev, "ifb": where})
        ops.append({"op": backend, "ns": ns, "dev": where, "args": args})
    return ops


def queue_number(lease_id: str) -> int:
    """The lease's nfnetlink queue (1024-65535; queues are per namespace)."""
    return 1024 + int(hashlib.sha256(lease_id.encode()).hexdigest()[:8], 16) % (65536 - 1024)


def nfqueue_op(fault: Fault, ns: str, dev: str, kinds, directions, lease_id: str, expires_in_ms: int) -> dict:
    """The userspace backend: the target's packets queued (NFQUEUE, bypassed
    while no worker is bound) to a worker that holds each verdict for its delay."""
    params = {}
    delay = fault.impairment("delay") if "delay" in kinds else None
    if delay:
        params["delay_ms"] = delay.get("time_ms")
        if delay.get("jitter_ms"):
            params["jitter_ms"] = delay.get("jitter_ms")
            params["distribution"] = delay.get("distribution", "uniform")
    for kind in ("reorder", "corrupt", "loss"):
        if kind in kinds:
            params[kind] = fault.impairment(kind).get("percent")
    return {"op": "nfqueue", "ns": ns, "dev": dev, "directions": list(directions), "queue": queue_number(lease_id),
            "tag": table_name(lease_id), "params": params, "maxlen": netem_limit(fault, kinds),
            "expires_in_ms": expires_in_ms}


def ifb_name(lease_id: str) -> str:
    return "nkifb" + hashlib.sha256(lease_id.encode()).hexdigest()[:8]


def netem_args(fault: Fault, kinds) -> list:
    """tc-netem(8) arguments, composing every kind netem does here into one qdisc."""
    args = []
    delay = fault.impairment("delay") if "delay" in kinds else None
    if delay:
        args += ["delay", f"{delay.get('time_ms'):g}ms"]
        if delay.get("jitter_ms"):
            args += [f"{delay.get('jitter_ms'):g}ms"]
            if delay.get("distribution", "uniform") != "uniform":
                args += ["distribution", delay.get("distribution")]
    for kind in ("reorder", "duplicate", "corrupt"):
        if kind in kinds:
            args += [kind, f"{fault.impairment(kind).get('percent'):g}%"]
    if "loss" in kinds:
        loss = fault.impairment("loss")
        gilbert = dict(loss.get("gilbert") or ())
        if gilbert:
            # tc takes `gemodel p r 1-h 1-k`: the loss rates in the bad and the good state,
            # where the file says h and k (the chances of no loss there). An h is written
            # whenever a k follows it (positional); left out, they keep tc's defaults
            # (h 0: every packet lost in the bad state; k 100%: none in the good one).
            args += ["loss", "gemodel", f"{gilbert['p']:g}%", f"{gilbert['r']:g}%"]
            if "h" in gilbert or "k" in gilbert:
                args.append(f"{100 - gilbert.get('h', 0):g}%")
            if "k" in gilbert:
                args.append(f"{100 - gilbert['k']:g}%")
        else:
            args += ["loss", f"{loss.get('percent'):g}%"]
    if "rate" in kinds:
        args += ["rate", f"{fault.impairment('rate').get('bits')}bit"]
    args += ["limit", str(netem_limit(fault, kinds))]
    return args


def netem_limit(fault: Fault, kinds) -> int:
    """A queue long enough for what the fault's delay holds (model.shaping.queue_limit)."""
    delay = fault.impairment("delay") if "delay" in kinds else None
    return queue_limit(delay.get("time_ms"), delay.get("jitter_ms", 0)) if delay else queue_limit(0)


def tbf_args(fault: Fault) -> list:
    """tc-tbf(8) arguments for the fault's rate (model.shaping.tbf_args)."""
    return rate_args(fault.impairment("rate").get("bits"))


def _vip_ops(fault: Fault, vip, lab: Lab, table: str, expires_in_ms: int) -> list:
    """A VIP group's fault, aimed at the member active now (found in its speakers'
    status): its speaker signalled (and started again at the revert), VRRP dropped
    between all members, or the active member's switch port taken down."""
    group = vip.get("group")
    members = lab.speakers.get(group) or {}
    if not members:
        raise FaultError(fault.name, vip.kind, f"no VIP group {group} runs in this lab (see `vip status`)")
    if vip.kind == "vrrp_partition":
        ops = []
        for ns in sorted(members):
            others = [m["config"]["source"] for other, m in sorted(members.items()) if other != ns
                      and m["config"].get("source")]
            if others:
                ops.append({"op": "nft", "ns": ns, "family": "inet", "table": table,
                            "text": _vrrp_cut_table(table, others, expires_in_ms)})
        if not ops:
            raise FaultError(fault.name, vip.kind, f"group {group} has one member: nothing to cut it from")
        return ops
    active = sorted(ns for ns, m in members.items() if (m.get("status") or {}).get("state") == "active")
    if len(active) != 1:
        raise FaultError(fault.name, vip.kind, f"group {group} has {len(active) or 'no'} active member"
                                               f"{'s' if len(active) > 1 else ''} now ({', '.join(active) or 'none'}): "
                                               "the fault is aimed at exactly one")
    ns = active[0]
    config, status = members[ns]["config"], members[ns]["status"]
    if vip.kind in ("speaker_kill", "speaker_stop"):
        return [{"op": "speaker", "ns": ns, "dev": config.get("interface"), "group": group,
                 "signal": "KILL" if vip.kind == "speaker_kill" else "TERM",
                 "pid": status.get("pid"), "config": config}]
    dev = config.get("interface")
    where, port = lab.peers.get((ns, dev), (ns, dev))
    return [{"op": "device", "ns": where, "dev": port, "set": {"state": "down"}}]


def _vrrp_cut_table(table: str, sources, expires_in_ms: int) -> str:
    """A table that drops VRRP (IP protocol 112) from `sources` until its set elements time out."""
    elements = ", ".join(f"{a} timeout {nft_time(expires_in_ms)}" for a in sorted(set(sources),
                                                                                key=ipaddress.ip_address))
    return (f"table inet {table} {{\n  set peers {{ type ipv4_addr; flags timeout; elements = {{ {elements} }} }}\n"
            f"  chain in {{ type filter hook input priority -150; policy accept;\n"
            f"    ip protocol 112 ip saddr @peers drop\n  }}\n}}\n")


IPV6_MIN_MTU = 1280


def _device_ops(fault: Fault, ns: str, dev: str, ipv6=()) -> list:
    ops = []
    for impairment in fault.impairments:
        if impairment.kind == "mtu":
            mtu = impairment.get("mtu")
            if mtu < IPV6_MIN_MTU and ipv6:
                # The kernel takes IPv6 off a device under 1280 bytes: its
                # addresses, routes and settings are deleted, and setting the MTU
                # back brings only a link-local address back.
                held = ", ".join(sorted(ipv6)[:3]) + (f" and {len(ipv6) - 3} more" if len(ipv6) > 3 else "")
                raise FaultError(fault.name, "mtu", f"an MTU of {mtu} takes IPv6 off {dev} in {ns}: the kernel "
                                                    f"deletes its {held} for good, which no revert brings back; "
                                                    f"use {IPV6_MIN_MTU} or more on this device")
            ops.append({"op": "device", "ns": ns, "dev": dev, "set": {"mtu": mtu}})
        elif impairment.kind == "link_down":
            ops.append({"op": "device", "ns": ns, "dev": dev, "set": {"state": "down"}})
        elif impairment.kind == "flap":
            ops.append({"op": "flap", "ns": ns, "dev": dev, "period_ms": impairment.get("period_ms"),
                        "down_ms": impairment.get("down_ms"), "cycles": impairment.get("cycles")})
    return ops


def describe(op: dict) -> str:
    """An operation as the command a person would type for it."""
    where = f"ip netns exec {op['ns']}"
    if op["op"] == "nft":
        return f"{where} nft -f - <<< '{op['text'].strip()}'"
    if op["op"] in ("netem", "tbf"):
        return f"tc -n {op['ns']} qdisc add dev {op['dev']} root {op['op']} {' '.join(op['args'])}"
    if op["op"] == "ifb":
        return (f"ip -n {op['ns']} link add {op['ifb']} type ifb; ip -n {op['ns']} link set {op['ifb']} up; "
                f"tc -n {op['ns']} qdisc add dev {op['dev']} handle ffff: ingress; "
                f"tc -n {op['ns']} filter add dev {op['dev']} parent ffff: protocol all u32 match u32 0 0 "
                f"action mirred egress redirect dev {op['ifb']}")
    if op["op"] == "device":
        settings = " ".join(f"{k} {v}" for k, v in op["set"].items()).replace("state ", "")
        return f"ip -n {op['ns']} link set {op['dev']} {settings}"
    if op["op"] == "nfqueue":
        chains = {"egress": "POSTROUTING -o", "ingress": "PREROUTING -i"}
        rules = "; ".join(f"ip netns exec {op['ns']} {tool} -t mangle -A {chains[d]} {op['dev']} -j NFQUEUE "
                          f"--queue-num {op['queue']} --queue-bypass"
                          for d in op["directions"] for tool in ("iptables", "ip6tables"))
        what = " ".join(f"{k} {v:g}" if not isinstance(v, str) else f"{k} {v}" for k, v in op["params"].items())
        return f"(worker in {op['ns']}, holds queue {op['queue']}: {what}); {rules}"
    if op["op"] == "speaker":
        return f"kill -{op['signal']} {op.get('pid')}  # the VRRP speaker of group {op['group']} in {op['ns']}"
    if op["op"] == "flap":
        cycles = f" {op['cycles']} times" if op.get("cycles") else " until expiry"
        return f"(keeper) ip -n {op['ns']} link set {op['dev']} down/up: every {op['period_ms']:g}ms, " \
               f"down {op['down_ms']:g}ms,{cycles}"
    return str(op)


def kinds_on(fault: Fault) -> set:
    """(namespace-free) what the fault holds on its target: for conflict checks."""
    return set(fault.kinds) & (set(NETEM_KINDS) | set(DEVICE_KINDS))
