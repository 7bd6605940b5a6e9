"""The speaker's config and status formats, the config hash, and RFC 9568's
timer formulas. Pure: dataclasses and JSON text, no files, no sockets.

Config (written by the caller, read by the speaker at start)::

    {"group": "gw", "vrid": 51, "namespace": "p-r1", "interface": "eth0",
     "priority": 200, "addresses": ["10.0.3.254/24"], "interval_cs": 10,
     "preempt": true, "preempt_delay_ms": 0, "unicast_peers": [],
     "virtual_mac": false, "checksum": "rfc9568",
     "status": "/run/netkeel/vrrp/p-r1/gw.status.json"}

Status (written by the speaker atomically at start, on each transition and at
least every STATUS_PERIOD_S; by the guardian when the speaker died)::

    {"group", "vrid", "config_hash", "guardian", "pid", "state", "since",
     "transitions", "priority", "holding", "master", "peers", "adverts_sent",
     "skew_ms", "master_down_interval_ms", "updated", "error"}

Timers (RFC 9568 section 6.1, in centiseconds there, in milliseconds here)::

    Skew_Time            = ((256 - Priority) * Master_Adver_Interval) / 256
    Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field

# Every VIP address the speaker adds carries this IFA_PROTO; netkeel's own
# topology addresses carry 144 (toolkit.core.owners.IFA_PROTO).
VIP_ADDR_PROTO = 145

MULTICAST_V4 = "224.0.0.18"
MULTICAST_V6 = "ff02::12"
CHECKSUM_MODES = ("rfc9568", "pseudo-header")
STATES = ("initialize", "backup", "active", "stopped", "dead")
STATUS_PERIOD_S = 0.5       # the status file is rewritten at least this often
MAX_INTERVAL_CS = 4095      # 12 bits
MAX_PREEMPT_DELAY_MS = 1_000_000
OWNER_PRIORITY = 255        # the address owner: not supported


class ConfigError(ValueError):
    """A config the speaker refuses, with every reason in the message."""


# -- timers ------------------------------------------------------------------------------

def skew_time_ms(priority: int, interval_cs: int) -> float:
    """Skew_Time for `priority` under a Master_Adver_Interval of `interval_cs`."""
    return (256 - priority) * interval_cs * 10.0 / 256


def master_down_interval_ms(priority: int, interval_cs: int) -> float:
    """Master_Down_Interval = 3 * Master_Adver_Interval + Skew_Time."""
    return 3 * interval_cs * 10.0 + skew_time_ms(priority, interval_cs)


# Sub-second adverts leave a backup only 3 intervals (and a skew) of slack: at
# 10 ms, a speaker kept off the CPU for ~35 ms by an ordinary busy machine
# makes its backup take over. Such speakers ask for SCHED_RR, as keepalived
# does when given vrrp_rt_priority; one-second adverts do not need it.
REALTIME_BELOW_CS = 100
REALTIME_PRIORITY = 10      # above ordinary tasks, well below the kernel's own threads
# RLIMIT_RTTIME: a speaker kept busy this long without blocking (a runaway
# loop, or a flood of packets keeping its socket readable) gets SIGXCPU and
# goes back to ordinary scheduling, so it cannot hold a CPU from the machine;
# it asks for realtime again after REALTIME_RETRY_S.
REALTIME_CPU_LIMIT_US = 200_000
REALTIME_RETRY_S = 5.0


def realtime_priority(interval_cs: int) -> int:
    """The SCHED_RR priority a speaker advertising every `interval_cs` asks
    for; 0: ordinary scheduling."""
    return REALTIME_PRIORITY if interval_cs < REALTIME_BELOW_CS else 0


# -- config ------------------------------------------------------------------------------

_REQUIRED = ("group", "vrid", "interface", "priority", "addresses", "status")
_FIELDS = ("group", "vrid", "namespace", "interface", "priority", "addresses", "interval_cs", "preempt",
           "preempt_delay_ms", "unicast_peers", "virtual_mac", "checksum", "status")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class SpeakerConfig:
    """One member's speaker. Addresses are kept normalised ("10.0.3.254/24";
    a bare address gets its full-length prefix), so equal configs hash alike."""

    group: str
    vrid: int
    interface: str
    priority: int
    addresses: tuple
    status: str
    namespace: str = ""
    interval_cs: int = 100
    preempt: bool = True
    preempt_delay_ms: int = 0
    unicast_peers: tuple = ()
    virtual_mac: bool = False
    checksum: str = "rfc9568"

    def __post_init__(self):
        errors = []

        def need(ok, text):
            if not ok:
                errors.append(text)

        need(isinstance(self.group, str) and self.group != "", "group: a non-empty string")
        need(isinstance(self.namespace, str), "namespace: a string")
        need(isinstance(self.interface, str) and 0 < len(self.interface) < 16 and "/" not in self.interface
             and not any(c.isspace() for c in self.interface), "interface: an interface name (1-15 characters)")
        need(isinstance(self.status, str) and self.status != "", "status: a file path")
        need(_is_int(self.vrid) and 1 <= self.vrid <= 255, "vrid: an integer 1-255")
        if _is_int(self.priority) and self.priority == OWNER_PRIORITY:
            errors.append("priority: 255 (the address owner) is not supported; use 1-254")
        else:
            need(_is_int(self.priority) and 1 <= self.priority <= 254, "priority: an integer 1-254")
        need(_is_int(self.interval_cs) and 1 <= self.interval_cs <= MAX_INTERVAL_CS,
             f"interval_cs: an integer 1-{MAX_INTERVAL_CS} (centiseconds)")
        need(isinstance(self.preempt, bool), "preempt: true or false")
        need(_is_int(self.preempt_delay_ms) and 0 <= self.preempt_delay_ms <= MAX_PREEMPT_DELAY_MS,
             f"preempt_delay_ms: an integer 0-{MAX_PREEMPT_DELAY_MS}")
        need(isinstance(self.virtual_mac, bool), "virtual_mac: true or false")
        need(self.checksum in CHECKSUM_MODES, f"checksum: one of {', '.join(CHECKSUM_MODES)}")

        addresses, families = [], set()
        raw = self.addresses
        if isinstance(raw, (list, tuple)) and raw and len(raw) <= 255:
            for text in raw:
                try:
                    iface = ipaddress.ip_interface(text) if isinstance(text, str) else None
                except ValueError:
                    iface = None
                if iface is None:
                    errors.append(f"addresses: {text!r} is not an address (with an optional /prefix)")
                    continue
                if iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip.is_loopback:
                    errors.append(f"addresses: {text} cannot be a virtual address")
                families.add(iface.version)
                addresses.append(str(iface))
            if len(set(addresses)) != len(addresses):
                errors.append("addresses: listed twice")
        else:
            errors.append("addresses: a list of 1-255 addresses")
        if len(families) > 1:
            errors.append("addresses: one family per group (all IPv4 or all IPv6)")
        object.__setattr__(self, "addresses", tuple(addresses))

        peers = []
        if isinstance(self.unicast_peers, (list, tuple)):
            for text in self.unicast_peers:
                try:
                    ip = ipaddress.ip_address(text) if isinstance(text, str) else None
                except ValueError:
                    ip = None
                if ip is None or ip.is_multicast or ip.is_unspecified:
                    errors.append(f"unicast_peers: {text!r} is not a unicast address")
                    continue
                if families and ip.version not in families:
                    errors.append(f"unicast_peers: {text} is not of the addresses' family")
                peers.append(str(ip))
        else:
            errors.append("unicast_peers: a list of addresses")
        object.__setattr__(self, "unicast_peers", tuple(peers))
        if errors:
            raise ConfigError("; ".join(errors))

    # -- derived ----------------------------------------------------------------------

    @property
    def family(self) -> int:
        """4 or 6."""
        return ipaddress.ip_interface(self.addresses[0]).version

    @property
    def vips(self) -> tuple:
        """(address, prefix length) of each virtual address, in order."""
        return tuple((str(i.ip), i.network.prefixlen) for i in map(ipaddress.ip_interface, self.addresses))

    @property
    def skew_ms(self) -> float:
        return skew_time_ms(self.priority, self.interval_cs)

    @property
    def master_down_interval_ms(self) -> float:
        return master_down_interval_ms(self.priority, self.interval_cs)

    # -- JSON -------------------------------------------------------------------------

    def to_dict(self) -> dict:
        out = {name: getattr(self, name) for name in _FIELDS}
        out["addresses"] = list(self.addresses)
        out["unicast_peers"] = list(self.unicast_peers)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """sha256 of the canonical JSON (sorted keys, no spaces), first 16 hex digits."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data) -> "SpeakerConfig":
        if not isinstance(data, dict):
            raise ConfigError("a speaker config is a JSON object")
        unknown = sorted(set(data) - set(_FIELDS))
        missing = [k for k in _REQUIRED if k not in data]
        if unknown or missing:
            raise ConfigError("; ".join(([f"unknown keys: {', '.join(unknown)}"] if unknown else [])
                                        + ([f"missing keys: {', '.join(missing)}"] if missing else [])))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "SpeakerConfig":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"not JSON: {exc}") from None
        return cls.from_dict(data)


def unsupported(config: SpeakerConfig) -> list:
    """What this speaker version refuses to run although the config is valid
    (it starts, writes state "dead" with the reason, and exits 2)."""
    out = []
    if config.virtual_mac:
        out.append("virtual_mac: not supported by this speaker (the VIPs use the interface's own MAC)")
    return out


def config_hash(config: SpeakerConfig) -> str:
    """The config's hash (as SpeakerConfig.config_hash)."""
    return config.config_hash()


# -- status ------------------------------------------------------------------------------

@dataclass
class MasterStatus:
    """Who a speaker believes is active (itself when it is)."""
    address: str
    priority: int
    interval_cs: int

    def to_dict(self) -> dict:
        return {"address": self.address, "priority": self.priority, "interval_cs": self.interval_cs}


@dataclass
class PeerStatus:
    """What a speaker heard from one other router (by its source address)."""
    adverts: int = 0
    last: float = 0.0
    priority: int = 0
    interval_cs: int = 0
    checksum: str = "rfc9568"

    def to_dict(self) -> dict:
        return {"adverts": self.adverts, "last": self.last, "priority": self.priority,
                "interval_cs": self.interval_cs, "checksum": self.checksum}


@dataclass
class SpeakerStatus:
    group: str
    vrid: int
    config_hash: str
    guardian: int
    pid: int
    state: str = "initialize"
    since: float = 0.0
    transitions: int = 0
    priority: int = 0
    holding: bool = False
    master: MasterStatus | None = None
    peers: dict = field(default_factory=dict)   # source address -> PeerStatus
    adverts_sent: int = 0
    skew_ms: float = 0.0
    master_down_interval_ms: float = 0.0
    updated: float = 0.0
    error: str | None = None                    # why a speaker is dead (or could not start)

    @classmethod
    def initial(cls, config: SpeakerConfig, guardian: int, pid: int, now: float) -> "SpeakerStatus":
        return cls(group=config.group, vrid=config.vrid, config_hash=config.config_hash(), guardian=guardian,
                   pid=pid, since=now, priority=config.priority, skew_ms=config.skew_ms,
                   master_down_interval_ms=config.master_down_interval_ms, updated=now)

    def to_dict(self) -> dict:
        return {"group": self.group, "vrid": self.vrid, "config_hash": self.config_hash,
                "guardian": self.guardian, "pid": self.pid, "state": self.state, "since": self.since,
                "transitions": self.transitions, "priority": self.priority, "holding": self.holding,
                "master": self.master.to_dict() if self.master else None,
                "peers": {a: p.to_dict() for a, p in sorted(self.peers.items())},
                "adverts_sent": self.adverts_sent, "skew_ms": self.skew_ms,
                "master_down_interval_ms": self.master_down_interval_ms, "updated": self.updated,
                "error": self.error}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: dict) -> "SpeakerStatus":
        """Keys this version does not know are ignored (a newer writer)."""
        if not isinstance(data, dict):
            raise ValueError("a speaker status is a JSON object")
        master = data.get("master")
        return cls(group=data["group"], vrid=data["vrid"], config_hash=data["config_hash"],
                   guardian=data["guardian"], pid=data["pid"], state=data["state"], since=data["since"],
                   transitions=data["transitions"], priority=data["priority"], holding=data["holding"],
                   master=MasterStatus(**master) if master else None,
                   peers={a: PeerStatus(**p) for a, p in (data.get("peers") or {}).items()},
                   adverts_sent=data["adverts_sent"], skew_ms=data["skew_ms"],
                   master_down_interval_ms=data["master_down_interval_ms"], updated=data["updated"],
                   error=data.get("error"))

    @classmethod
    def from_json(cls, text: str) -> "SpeakerStatus":
        return cls.from_dict(json.loads(text))
