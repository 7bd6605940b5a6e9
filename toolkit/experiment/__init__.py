"""Experiments: a steady-state hypothesis checked around a schedule of faults."""
