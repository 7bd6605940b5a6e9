"""The state directory: what netkeel owns (inventory), and later snapshots and the journal."""

from .inventory import Inventory
from .statedir import StateDir, default_state_dir

__all__ = ["Inventory", "StateDir", "default_state_dir"]
