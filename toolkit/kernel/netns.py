"""Network namespaces the way `ip netns` keeps them: bind mounts under /run/netns.

Creating one is unshare(CLONE_NEWNET) on the calling thread, a bind mount of the
thread's namespace file, and setns back home: well under a millisecond, where a
fork per namespace (pyroute2's netns.create) costs about 7 ms. Everything here
runs on the calling thread and always returns it to the namespace it was in.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
from contextlib import contextmanager

NETNS_RUN_DIR = os.environ.get("NETKEEL_NETNS_DIR", "/run/netns")
LOCK_DIR = "/run/netkeel"  # netkeel's own run directory (the VRRP speakers' is below it)
_lock_fd: int | None = None

CLONE_NEWNET = 0x40000000
MS_REC = 0x4000
MS_BIND = 0x1000
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def path_of(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def exists(name: str) -> bool:
    """Whether a namespace is mounted under the name (not just a placeholder file,
    which a create cut short leaves): a namespace file lives on nsfs, whose device
    differs from the run directory's. Two stats, where os.path.ismount resolves
    the whole path first (a drift of a thousand namespaces asks this thousands of times)."""
    try:
        return os.stat(path_of(name)).st_dev != os.stat(NETNS_RUN_DIR).st_dev
    except OSError:
        return False


def list_names() -> list[str]:
    """Names of the namespaces under the run directory that are real mounts."""
    try:
        entries = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(e for e in entries if os.path.ismount(path_of(e)))


def open_fd(name: str) -> int:
    return kept_high(os.open(path_of(name), os.O_RDONLY | os.O_CLOEXEC))


# libnftables 1.0.6 waits on its netlink socket with select(), and glibc aborts
# the whole process for an fd of FD_SETSIZE (1024) or more ("bit out of range 0
# - FD_SETSIZE on fd_set"): an apply of 300 namespaces with firewalls died so,
# half done (found by review). Its socket takes the lowest free fd, so the fds a
# session keeps per namespace (its fd, dump and nfnetlink sockets) move above
# that range once they climb past LOW_FDS, leaving it to libnftables.
FD_SETSIZE = 1024
LOW_FDS = 256


def kept_high(fd: int) -> int:
    """`fd`, or past LOW_FDS a copy of it numbered FD_SETSIZE or more (the
    original closed); as it is where the fd limit allows no such number."""
    high = _high_copy(fd)
    if high is None:
        return fd
    os.close(fd)
    return high


def socket_kept_high(sock: socket.socket) -> socket.socket:
    """kept_high() for a socket: the same socket (bound, in its namespace), renumbered."""
    high = _high_copy(sock.fileno())
    if high is None:
        return sock
    moved = socket.socket(sock.family, sock.type, sock.proto, fileno=high)  # (given: not asked of the kernel)
    if sock.gettimeout() is not None:
        moved.settimeout(sock.gettimeout())
    sock.close()
    return moved


def _high_copy(fd: int) -> int | None:
    if fd < LOW_FDS:
        return None
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, FD_SETSIZE)
    except OSError:
        return None


def setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


@contextmanager
def entered(fd: int):
    """Run the body with the calling thread inside the namespace `fd`, then
    return it to the namespace it was in (so these nest)."""
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
        try:
            yield
        finally:
            setns(previous)
    finally:
        os.close(previous)


_run_dir_ready = False


def _prepare_run_dir() -> None:
    """Make the run directory a shared mount, as iproute2 does, so namespace
    mounts made here are visible in other mount namespaces."""
    global _run_dir_ready
    if _run_dir_ready:
        return
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    target = NETNS_RUN_DIR.encode()
    if _libc.mount(b"none", target, None, MS_SHARED | MS_REC, None) != 0:
        if ctypes.get_errno() != errno.EINVAL:
            _check(-1, f"mount --make-rshared {NETNS_RUN_DIR}")
        _check(_libc.mount(target, target, b"none", MS_BIND | MS_REC, None),
               f"bind mount {NETNS_RUN_DIR}")
        _check(_libc.mount(b"none", target, None, MS_SHARED | MS_REC, None),
               f"mount --make-rshared {NETNS_RUN_DIR}")
    _run_dir_ready = True


def create(name: str, announce=None) -> None:
    """Create the named namespace. `announce(name, cookie)` is called with its
    cookie before it becomes visible under its name (a failure there creates
    nothing). Raises FileExistsError if the name is taken."""
    _prepare_run_dir()
    path = path_of(name)
    with _creating():
        _create_locked(name, path, announce)


@contextmanager
def _creating():
    """Creates of namespaces, one at a time on this machine (netkeel's, whatever
    their state directory): a create removes the placeholder a create cut short
    left, and must never take it for another's that is about to be mounted
    (two mounts would stack on one name). The kernel drops the lock of a killed
    process, whose placeholder the next create then removes."""
    global _lock_fd
    if _lock_fd is None:
        os.makedirs(LOCK_DIR, mode=0o700, exist_ok=True)
        _lock_fd = os.open(os.path.join(LOCK_DIR, "netns-create.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                           0o600)
    fcntl.flock(_lock_fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(_lock_fd, fcntl.LOCK_UN)


def _create_locked(name: str, path: str, announce) -> None:
    if os.path.lexists(path) and not os.path.ismount(path):
        os.unlink(path)  # a mount point left by a create cut short: no namespace behind it
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            if announce is not None:
                announce(name, _own_cookie())
            _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
                   f"bind mount {path}")
        finally:
            setns(previous)  # back where the thread was, whatever happened
    except BaseException:
        _undo_create(path)
        raise
    finally:
        os.close(previous)


def _undo_create(path: str) -> None:
    """Take away what a create cut short made at `path`, its bind mount too if
    it was made: a Ctrl-C just after the mount was reported as the kernel's
    refusal to unlink a mount point (EBUSY) instead (found by review). What
    fails here never hides why the create stopped; a placeholder left is
    removed by the next create of the name."""
    _libc.umount2(path.encode(), MNT_DETACH)  # (EINVAL where nothing was mounted yet)
    try:
        os.unlink(path)
    except OSError:
        pass


def remove(name: str) -> None:
    """Detach and remove the named namespace's mount(s). The kernel frees the
    namespace once nothing else (sockets, processes) holds it."""
    path = path_of(name)
    for _ in range(4):  # mounts stacked on one name (an old race) come off one by one
        if _libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
            _check(-1, f"umount {path}")
        try:
            os.unlink(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
    os.unlink(path)


SO_NETNS_COOKIE = 71  # <asm-generic/socket.h>, Linux 5.14+


def socket_cookie(sock) -> int:
    """The cookie of the namespace the socket `sock` was made in."""
    import socket
    import struct

    return struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]


def _own_cookie() -> int:
    """The cookie of the namespace the calling thread is in."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        return socket_cookie(sock)


def cookie(name: str) -> int | None:
    """The named namespace's cookie: a 64-bit id the kernel gives every network
    namespace, never reused while the system runs (inode numbers are). Read from
    a socket made inside it. None if there is no such namespace."""
    if not exists(name):  # a mount point left by a create cut short (a kill) has no namespace
        return None
    try:
        fd = open_fd(name)
    except OSError:
        return None
    try:
        with entered(fd):
            return _own_cookie()
    finally:
        os.close(fd)


def remove_placeholder(name: str) -> bool:
    """Remove the file a namespace create cut short (a kill between creating the
    mount point and mounting) left under the name, if nothing is mounted there.
    Returns whether there was one."""
    path = path_of(name)
    if exists(name) or not os.path.isfile(path) or os.path.islink(path):
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
