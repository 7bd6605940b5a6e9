"""Typed, frozen descriptions of what a manifest declares (topology, firewall,
faults, VIPs, experiments), and the defaults they leave out (defaults.py)."""
