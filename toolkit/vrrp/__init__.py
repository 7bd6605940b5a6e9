"""A VRRPv3 speaker (RFC 9568) for netkeel's VIP groups, in pure Python.

    config   the speaker's config and status file formats, the config hash,
             the RFC timer formulas (Skew_Time, Master_Down_Interval) and the
             VIP address marker (IFA_PROTO 145): pure, what callers import
    packet   the advertisement codec: both checksum modes, IPv4 datagram
             checks (TTL 255): pure
    machine  the Initialize / Backup / Active state machine, driven by events
             and a clock given to it: pure
    speaker  the process: `python -m toolkit.vrrp.speaker --config PATH`, a
             guardian that forks the speaker and withdraws its VIPs if it dies

Nothing here imports the rest of netkeel (and this file imports nothing): the
speaker starts in a few tens of milliseconds.
"""
