"""Where netkeel keeps its state, and how it writes files there safely."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

DEFAULT = "/var/lib/netkeel"
ENV = "NETKEEL_STATE_DIR"


def default_state_dir() -> str:
    """$NETKEEL_STATE_DIR, else /var/lib/netkeel."""
    return os.environ.get(ENV) or DEFAULT


class StateDir:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root or default_state_dir())

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def ensure(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write_json(self, relative: str, data) -> Path:
        """Write atomically: temp file in the same directory, fsync, rename, fsync dir."""
        target = self.path(relative)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target

    def read_json(self, relative: str, default=None):
        try:
            return json.loads(self.path(relative).read_text())
        except FileNotFoundError:
            return default
