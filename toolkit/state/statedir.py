"""Where netkeel keeps its state, and how it reads and writes files there safely.

netkeel runs as root, so its state directory must not be a lever for anyone
else. Every directory on the way down from the state directory is opened
without following symlinks and refused unless it belongs to the user running
netkeel and only that user may write to it. Files are then opened relative to
that checked directory with O_NOFOLLOW (a planted symlink fails instead of
being followed) and must be regular files of ours with a single link (a planted
hard link to /etc/shadow is refused too).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from ..errors import StateDirError

DEFAULT = "/var/lib/netkeel"
ENV = "NETKEEL_STATE_DIR"

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted under a state file's name must not hang us on open.
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def default_state_dir() -> str:
    """$NETKEEL_STATE_DIR, else /var/lib/netkeel."""
    return os.environ.get(ENV) or DEFAULT


def json_line(data) -> str:
    """`data` as one line of compact JSON (write_sealed)."""
    return json.dumps(data, separators=(",", ":"))


def _orjson():
    """The orjson module, or None where it is not installed (a dependency, but
    state written by either reads alike: the standard library serves then)."""
    try:
        import orjson
    except ImportError:
        return None
    return orjson


def plain_json_line(data) -> str:
    """json_line() of a document of text, integers, None, booleans, lists and
    mappings only (no floats: orjson writes NaN as null where json writes NaN),
    with orjson where installed: a 10,000-rule policy's kept read (10 MB) in 16
    ms against 69. The caller vouches for the document's types."""
    return plain_json_bytes(data).decode()


def plain_json_bytes(data) -> bytes:
    """plain_json_line(), encoded (what a sealed file holds: no round trip
    through text for megabytes)."""
    orjson = _orjson()
    if orjson is not None:
        try:
            return orjson.dumps(data)
        except TypeError:  # an integer beyond 64 bits, a key not text: as json writes it
            pass
    return json_line(data).encode()


def canonical_json(data, sort_keys: bool = False) -> bytes:
    """Exactly json.dumps(data, separators=(",", ":"), sort_keys=sort_keys),
    encoded: the bytes a digest is taken of (a snapshot's seal, a table's
    content in the ruleset memo), so they must never change with the writer.
    orjson writes them where it writes the same bytes: text, integers within
    64 bits, None, booleans, lists, tuples and text-keyed mappings (no float:
    it spells exponents otherwise), all of it printable ASCII (json escapes
    DEL and beyond, orjson does not). Anything else goes through json. A
    10,000-rule table's content: 12 -> 3 ms."""
    orjson = _orjson()
    if orjson is not None and _plain(data):
        try:
            out = orjson.dumps(data, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
        except TypeError:
            out = None
        if out is not None and out.isascii() and b"\x7f" not in out:
            return out
    return json.dumps(data, separators=(",", ":"), sort_keys=sort_keys).encode()


def readable_json(data) -> bytes:
    """`data` indented by two, keys sorted (a state file someone may read: a
    snapshot of 10,000 rules, 3.5 MB, in 6 ms against 28), by orjson where it
    writes what json would (see canonical_json), else by json."""
    orjson = _orjson()
    if orjson is not None and _plain(data):
        try:
            return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        except TypeError:
            pass
    return json.dumps(data, indent=2, sort_keys=True).encode()


def _plain(data) -> bool:
    """Whether `data` holds only text, integers, None, booleans, lists, tuples
    and mappings with text keys (orjson and json write those alike)."""
    pending = [data]
    while pending:
        value = pending.pop()
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            continue
        if kind is list or kind is tuple:
            # Most of a large document is lists of text (a chain's rules): checked in one pass.
            if not all(type(item) is str for item in value):
                pending.extend(value)
        elif kind is dict:
            if not all(type(key) is str for key in value):
                return False
            pending.extend(value.values())
        else:
            return False
    return True


def parse_json(content):
    """json.loads, with a document nested too deep for the parser (a few
    kilobytes of brackets raise RecursionError) refused as damaged, ValueError,
    as every other damage of a state file is."""
    try:
        return json.loads(bytes(content) if isinstance(content, memoryview) else content)
    except RecursionError:
        raise ValueError("nested too deeply to be a state file") from None


# Below this many bytes json.loads is as fast, and importing orjson (it imports
# uuid and platform) costs more than it saves: 3 ms of a quick answer's 50.
SMALL = 64 * 1024
# Where nothing has imported orjson yet, below this many: importing it costs
# 19 ms in a process that has not imported dataclasses (orjson imports it, with
# inspect and ast), as a quick answer has not; json reads a 1,000-node lab's
# verdict (125 KB) in 2 ms.
SMALL_UNIMPORTED = 1024 * 1024


def parse_sealed_json(content):
    """parse_json for a document netkeel wrote and sealed (its caches, ruleset
    memo, verdicts: state/compiled.py, rulesets.py, verdicts.py): with orjson,
    three times as fast on their megabytes (a 10,000-rule policy's kept read is
    10 MB: 105 -> 34 ms); with the standard library where orjson is missing or
    refuses the text (NaN, a lone surrogate, deep nesting), so the answer is
    json.loads'. One difference: orjson reads an integer beyond 64 bits as a
    float. netkeel never writes one into these (plain_json_line falls back to
    json for them, and what it caches holds none); a document someone forged
    with one reads with a float there, as a forged document may hold any value
    (the state directory is root's alone: 0700, checked)."""
    if len(content) < SMALL or len(content) < SMALL_UNIMPORTED and "orjson" not in sys.modules:
        return parse_json(content)
    orjson = _orjson()
    if orjson is None:
        return parse_json(content)
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return parse_json(content)


# What an entry of the state directory that is not a regular file is, for messages.
_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory",
          stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}


class StateDir:
    def __init__(self, root: str | os.PathLike | None = None):
        if isinstance(root, str) and not root.strip():
            # `-s ""` (a variable left unset in a script): never read as "the default",
            # which would act on every lab the machine-wide state directory holds.
            raise StateDirError(f"--state-dir is empty ({root!r}): name a directory, or leave the option out "
                                f"for ${ENV} or {DEFAULT}")
        self.root = Path(root or default_state_dir())

    def path(self, *parts: str) -> Path:
        """Where a state file is, for messages: all I/O goes through the checked directory."""
        return self.root.joinpath(*parts)

    def ensure(self) -> None:
        """Create the state directory (mode 0700) if needed; raise StateDirError if it is unsafe."""
        with self.directory(create=True):
            pass

    # -- directories ------------------------------------------------------------
    @contextmanager
    def directory(self, relative: str = "", create: bool = False):
        """An fd of the checked state directory or of a subdirectory of it.
        Raises FileNotFoundError if it is missing (and not `create`), StateDirError if unsafe."""
        if create:
            self._create_root()
        fd = _open_directory(self.root, str(self.root))
        try:
            for part in _parts(relative):
                child = _open_directory(part, str(self.path(relative)), dir_fd=fd, create=create)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _create_root(self) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(self.root, 0o700)
        except FileExistsError:
            pass  # checked when opened, whatever it is

    # -- files --------------------------------------------------------------------
    def open(self, relative: str, flags: int, mode: int = 0o600, create_dirs: bool = False) -> int:
        """os.open of a state file, never through a symlink; the file must be a regular
        file of ours. The caller closes the fd. Raises FileNotFoundError, StateDirError."""
        directory, _, name = relative.rpartition("/")
        with self.directory(directory, create=create_dirs) as dir_fd:
            try:
                fd = os.open(name, flags | _FILE_FLAGS, mode, dir_fd=dir_fd)
            except OSError as exc:
                raise _unsafe_file_error(exc, self.path(relative)) from None
        try:
            _check_file(os.fstat(fd), self.path(relative))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_bytes(self, relative: str, offset: int = 0, limit: int | None = None) -> bytes | None:
        """The file's content from `offset` on; None if it (or its directory) does
        not exist. Raises ValueError if it holds more than `limit` bytes (read
        no further: a cache file netkeel never wrote so large, not to be held
        in memory twice over)."""
        try:
            fd = self.open(relative, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            return read_from(fd, offset, limit)
        finally:
            os.close(fd)

    def read_json(self, relative: str, default=None):
        """Parsed JSON; `default` if the file is missing. Raises ValueError, StateDirError."""
        content = self.read_bytes(relative)
        return default if content is None else parse_json(content)

    def write_json(self, relative: str, data, durable: bool = True, compact: bool = False):
        """Write atomically: a fresh temp file (O_EXCL, never through a link) in the checked
        directory, fsync, rename over the target, fsync the directory. `compact`: one
        line, for caches no one reads by eye."""
        content = json_line(data).encode() if compact else readable_json(data)
        return self._write(relative, content + b"\n", durable)  # encoded before any I/O

    def write_bytes(self, relative: str, content: bytes, durable: bool = True):
        """Write `content` as write_json writes its text (a document encoded by
        the caller, who names the file by its digest)."""
        return self._write(relative, content, durable)

    def write_sealed(self, relative: str, lines: list, durable: bool = True):
        """Write `lines` (JSON texts, one line each: json_line(), or their bytes) as write_json
        does, under a first line holding their SHA-256. What netkeel believes
        without asking the kernel again (its caches, its in-sync verdicts) is
        sealed so: one flipped bit in a cached ruleset made drift say "in sync"
        of a changed firewall (found by review)."""
        body = b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
        seal = json_line({"sha256": hashlib.sha256(body).hexdigest()}).encode()
        content = seal + b"\n" + body
        if len(content) > SEALED_LIMIT:  # never to be read (read_sealed): not written either
            raise ValueError(f"{len(content)} bytes: more than a sealed file may hold ({SEALED_LIMIT})")
        return self._write(relative, content, durable)

    def read_sealed(self, relative: str, limit: int | None = None):
        """The lines write_sealed wrote, as bytes-like views of what was read (the
        caller parses each when it needs it: parse_sealed_json), or None if the file is missing. Raises ValueError
        if they are not the bytes sealed (damaged, cut short, edited) or the file
        holds more than `limit` bytes (SEALED_LIMIT unless given), StateDirError."""
        content = self.read_bytes(relative, limit=SEALED_LIMIT if limit is None else limit)
        if content is None:
            return None
        start = content.find(b"\n") + 1 or len(content)
        expected = parse_json(content[:start])
        # Hashed and cut where they lie: each line copied once (megabytes, for a cache).
        if not (isinstance(expected, dict)
                and expected.get("sha256") == hashlib.sha256(memoryview(content)[start:]).hexdigest()):
            raise ValueError(f"{self.path(relative)} is not what was written (its seal does not match)")
        if start == len(content) or not content.endswith(b"\n"):
            raise ValueError(f"{self.path(relative)} is not lines")
        # Views of the bytes read, not copies: a 10 MB line copied took 7 ms.
        view, lines = memoryview(content), []
        while start < len(content):
            end = content.index(b"\n", start)
            lines.append(view[start:end])
            start = end + 1
        return lines

    def read_sealed_head(self, relative: str, count: int, limit: int = 1 << 18):
        """The first `count` lines write_sealed wrote, as bytes, read from the
        file's first `limit` bytes and NOT checked against the seal: enough to
        tell that an entry does not answer (its header names other inputs), never
        to believe one (read_sealed then). None if the file is missing or those
        lines are not all within `limit`. Raises StateDirError."""
        try:
            fd = self.open(relative, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            head = os.pread(fd, limit, 0)
        finally:
            os.close(fd)
        lines = head.split(b"\n", count + 1)
        if len(lines) < count + 2:
            return None  # a line runs past the bytes read (or the file ends first)
        return lines[1:count + 1]

    def write_sealed_json(self, relative: str, data, durable: bool = True):
        """`data` as one sealed line (write_sealed)."""
        return self.write_sealed(relative, [json_line(data)], durable)

    def read_sealed_json(self, relative: str, limit: int | None = None):
        """The document write_sealed_json wrote, or None if the file is missing.
        Raises ValueError if it is not that (read_sealed), StateDirError."""
        lines = self.read_sealed(relative, limit)
        if lines is None:
            return None
        if len(lines) != 1:
            raise ValueError(f"{self.path(relative)} is not one document")
        return parse_sealed_json(lines[0])

    def _write(self, relative: str, content: bytes, durable: bool):
        directory, _, name = relative.rpartition("/")
        with self.directory(directory, create=True) as dir_fd:
            temp = f".{name}.{os.urandom(6).hex()}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                try:
                    write_all(fd, content)
                    if durable:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                # Renaming over a symlink replaces the link itself, never its target.
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                _unlink_quietly(temp, dir_fd)
                raise
            if durable:
                os.fsync(dir_fd)
            _sweep_stale_temps(dir_fd)
        return self.path(relative)

    def entries(self, relative: str) -> dict:
        """{name: None for a regular file, else what it is ("a symbolic link", "a
        FIFO", "a directory" ...: never read as state)} of a subdirectory's
        entries; {} if it does not exist."""
        found = {}
        try:
            with self.directory(relative) as dir_fd:
                with os.scandir(dir_fd) as listing:
                    for entry in listing:
                        if entry.is_file(follow_symlinks=False):
                            found[entry.name] = None
                            continue
                        try:
                            mode = entry.stat(follow_symlinks=False).st_mode
                        except FileNotFoundError:
                            continue  # gone meanwhile
                        found[entry.name] = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        except FileNotFoundError:
            return {}
        return found

    def regular_files(self, relative: str) -> list:
        """Names of the regular files in a subdirectory (links and anything else left out);
        [] if it does not exist."""
        return [name for name, kind in self.entries(relative).items() if kind is None]

    def keep_newest(self, relative: str, keep: int) -> None:
        """Remove the oldest .json files of a subdirectory beyond `keep` (a cache's
        bound), by modification time."""
        names = [n for n in self.regular_files(relative) if n.endswith(".json")]
        if len(names) <= keep:
            return
        with self.directory(relative) as fd:
            aged = sorted(names, key=lambda n: os.stat(n, dir_fd=fd, follow_symlinks=False).st_mtime_ns)
        for name in aged[:len(names) - keep]:
            self.unlink(f"{relative}/{name}")

    def unlink(self, relative: str) -> None:
        """Remove a state file (a link is removed itself, never followed); missing is fine."""
        directory, _, name = relative.rpartition("/")
        try:
            with self.directory(directory) as dir_fd:
                os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass


STALE_TEMP_S = 600  # a write takes well under a second; an older temp file's writer was killed


def _sweep_stale_temps(dir_fd: int) -> None:
    """Remove the temp files killed writers left in a directory (SIGKILL between
    creating one and renaming it): each is a whole copy of a state file, and a
    cache rewritten at every command would gather them without end. Only those
    older than STALE_TEMP_S: a younger one may be another command's, mid-write."""
    try:
        with os.scandir(dir_fd) as entries:
            stale = [e.name for e in entries if e.name.startswith(".") and e.name.endswith(".tmp")
                     and e.is_file(follow_symlinks=False)
                     and time.time() - e.stat(follow_symlinks=False).st_mtime > STALE_TEMP_S]
    except OSError:
        return
    for temp in stale:
        _unlink_quietly(temp, dir_fd)


# The most a sealed file (a cache, a verdict) may hold: a 50,000-rule policy's
# kept read is 50 MB. Past it a file is a miss unread (found by review: a 400 MB
# one took 5-7 s and twice its size in memory to be found damaged).
SEALED_LIMIT = 256 * 1024 * 1024


def read_from(fd: int, offset: int = 0, limit: int | None = None) -> bytes:
    """The file's content from `offset` on: what its size says in one read (a
    10 MB cache read in chunks and joined cost twice the copying), then on
    until the end (it may have grown). Raises ValueError past `limit` bytes."""
    chunks, start = [], offset
    want = max(os.fstat(fd).st_size - offset, 0) + 1
    while True:
        if limit is not None and (want - 1 if offset == start else offset - start) > limit:
            raise ValueError(f"larger than {limit} bytes: not a file netkeel wrote")
        chunk = os.pread(fd, min(max(want, 1 << 16), 1 << 28), offset)
        if not chunk:
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.append(chunk)
        offset += len(chunk)
        want = 1 << 20


def write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view):]


def _parts(relative: str) -> list:
    parts = [p for p in relative.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"not a path inside the state directory: {relative!r}")
    return parts


def _open_directory(name, shown: str, dir_fd: int | None = None, create: bool = False) -> int:
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            pass
    try:
        fd = os.open(name, _DIRECTORY_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise _unsafe_directory_error(exc, shown, _is_symlink(name, dir_fd)) from None
    try:
        _check_directory(os.fstat(fd), shown)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_symlink(name, dir_fd: int | None) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _unsafe_directory_error(exc: OSError, shown: str, symlink: bool) -> OSError:
    """A symlink (O_DIRECTORY|O_NOFOLLOW fails on it) or a non-directory as StateDirError;
    anything else (missing, say) as is."""
    fix = f"point --state-dir (or ${ENV}) at a real directory, or replace {shown} with one (mode 0700)"
    if symlink:
        return StateDirError(f"refusing state directory {shown}: it is a symbolic link, and netkeel "
                             f"follows no links in its state directory. Fix: {fix}")
    if exc.errno in (errno.ENOTDIR, errno.ELOOP):
        return StateDirError(f"refusing state directory {shown}: it is not a directory. Fix: {fix}")
    return exc


def _check_directory(info: os.stat_result, shown: str) -> None:
    uid = os.geteuid()
    fix = f"`chown {uid} {shown} && chmod 700 {shown}`, or use another --state-dir"
    if info.st_uid != uid:
        raise StateDirError(f"refusing state directory {shown}: it is owned by uid {info.st_uid}, not by "
                            f"uid {uid} who runs netkeel, so its owner could make netkeel write "
                            f"anywhere. Fix: {fix}")
    if info.st_mode & 0o022:
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if info.st_mode & bit)
        raise StateDirError(f"refusing state directory {shown}: it is writable by {who} (mode "
                            f"{stat.S_IMODE(info.st_mode):04o}), so any of them could make netkeel "
                            f"overwrite files through it. Fix: {fix}")


def _unsafe_file_error(exc: OSError, path: Path) -> OSError:
    if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
        return StateDirError(f"refusing state file {path}: it is a symbolic link, and netkeel follows "
                             f"no links in its state directory. Fix: remove the link ({path})")
    return exc


def _check_file(info: os.stat_result, path: Path) -> None:
    if not stat.S_ISREG(info.st_mode):
        problem = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
    elif info.st_uid != os.geteuid():
        problem = f"owned by uid {info.st_uid}, not by uid {os.geteuid()} who runs netkeel"
    elif info.st_nlink > 1:
        problem = f"a hard link ({info.st_nlink} names), possibly to a file outside the state directory"
    else:
        return
    raise StateDirError(f"refusing state file {path}: it is {problem}. Fix: move it out of the way")


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
