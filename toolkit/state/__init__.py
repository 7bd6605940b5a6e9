"""The state directory: what netkeel owns (inventory), snapshots, the journal
and its index, and the lock; every file in it opened safely (statedir.py) and
checked against its JSON Schema (schemas/) when read."""

from .inventory import Inventory
from .statedir import StateDir, default_state_dir

__all__ = ["Inventory", "StateDir", "default_state_dir"]
