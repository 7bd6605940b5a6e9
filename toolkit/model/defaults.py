"""What the kernel and nft assume when something is left out.

Both sides of a comparison need these: the manifest's compilers (which leave
them out, as the kernel never lists them back) and the kinds' readers (which
fill them in). They live apart from the models so that a command that only
reads the kernel (a quick drift) does not build the models' dataclasses.
"""

from __future__ import annotations

# Interfaces and routes.
DEFAULT_MTU = 1500
# What the kernel uses when a route names no metric.
DEFAULT_METRIC = {4: 0, 6: 1024}

# What nftables assumes when a rule leaves it out, and so never lists back:
# the policy compiler leaves these out too, and the canonical form fills them
# in on both sides, so that a rule compares equal however it was written.
LIMIT_BURST = 5                 # packets, for a packet-rate limit
LOG_LEVEL = "warn"
REJECT_CODE = "port-unreachable"
REJECT_TYPE = {"inet": "icmpx", "ip": "icmp", "ip6": "icmpv6", "bridge": "icmpx"}

