"""The queues netkeel sizes for a delay or a rate: netem's packet limit and
tbf's burst and queue. A declared impairment, a fault and the kind that reads
them back all use these; they live apart from the fault model so that reading
the kernel does not build its dataclasses.
"""

from __future__ import annotations


def queue_limit(delay_ms: float, jitter_ms: float = 0) -> int:
    """Packets a delay line must be able to hold: netem's default of 1000 drops
    silently once packets/s x delay exceeds it. Sized for 100,000 packets/s (a
    fast veth) over the delay and three jitters, at least netem's default."""
    return max(1000, int(100_000 * (delay_ms + 3 * jitter_ms) / 1000))


TBF_LATENCY_US = 50_000


def tbf_burst(bits: int) -> int:
    """The tbf burst (bytes) for a rate: at least one MTU-sized frame, or 10 ms worth of tokens."""
    return max(1600, bits // 8 // 100)


def tbf_limit(bits: int) -> int:
    """The queue (bytes) for that burst and 50 ms of the rate (as tc-tbf(8)'s
    latency gives it), within the kernel's 32 bits (above ~570 Gbit/s)."""
    return min(int(bits // 8 * TBF_LATENCY_US / 1_000_000 + tbf_burst(bits)), 2**32 - 1)


def tbf_args(bits: int, burst: int | None = None, limit: int | None = None, peakrate: int = 0) -> list:
    """tc-tbf(8) arguments for a rate: tbf_burst's burst and a 50 ms queue; or
    the burst, queue limit (bytes) and peak rate given (a declared impairment's,
    a snapshot's, within the kernel's 32 bits where 50 ms of the rate is not)."""
    args = ["rate", f"{bits}bit", "burst", str(burst or tbf_burst(bits))]
    if limit is None and burst is None and tbf_limit(bits) < 2**32 - 1:
        args += ["latency", f"{TBF_LATENCY_US // 1000}ms"]
    else:
        args += ["limit", str(limit or tbf_limit(bits))]
    return args + (["peakrate", f"{peakrate}bit", "mtu", "1600"] if peakrate else [])
