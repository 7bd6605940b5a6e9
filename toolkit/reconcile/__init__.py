"""Reconciliation: desired resources vs live resources -> Plan -> apply -> verify.

Pure code (resources, compile, diff) is separate from the code that runs a plan
against the kernel (apply), so the planner is tested without root.
"""
