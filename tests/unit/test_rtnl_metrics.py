"""Route metrics read from RTA_METRICS as `ip route` writes them."""

import struct

from toolkit.kernel.rtnl import _metrics


def _attr(kind: int, value: int) -> bytes:
    return struct.pack("=HHI", 8, kind, value)


def test_a_locked_mtu_reads_as_ip_route_writes_it():
    # RTAX_LOCK (1) is the bitmask of locked metrics: bit 2 is RTAX_MTU.
    assert _metrics(_attr(1, 1 << 2) + _attr(2, 600)) == "mtu lock 600"


def test_metrics_without_locks_and_unknown_ones():
    assert _metrics(_attr(2, 1400) + _attr(8, 500) + _attr(99, 7)) == "mtu 1400 advmss 500 99 7"
