#!/usr/bin/env python3
"""The kernel test tier: pytest inside Debian's kernel, booted under qemu.

This machine's kernel has no sch_netem and cannot load modules. scripts/setup unpacks
Debian's kernel into .cache/vm/kernel/RELEASE; this script boots it under qemu with a
small initramfs (static busybox, the 9p modules and init.sh beside this file). The guest
mounts the host's / read-only over 9p and chroots into it with tmpfs on /tmp, /run and
/var/tmp, so it runs this checkout's .venv and tests as they are. A second 9p share, a
fresh host directory, brings the job in and pytest's exit status out; the serial console
brings the output. No network device, no disk.

    tests/vm/run.py [--timeout S] [--memory MIB] [--cpus N] [--] PYTEST_ARGS...
    tests/vm/run.py --status

Exits with pytest's exit status, or 1 when the VM did not run the job to its end (boot
failure, timeout: qemu is killed). --status says whether this host needs and has the
tier: exit 0 run it (no netem here, the tier installed), 3 not needed (netem here),
4 needed but not installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "vm"
KERNELS = CACHE / "kernel"
INIT = Path(__file__).with_name("init.sh")
QEMU = "qemu-system-x86_64"
BUSYBOX = Path("/bin/busybox")  # from busybox-static: nothing else is in the initramfs

# What the initramfs loads to reach the host's / (with their dependencies).
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
# Loaded in the guest before the job; anything else a test asks for (an nft expression,
# another qdisc) the kernel loads on demand through the initramfs's modprobe.
GUEST_MODULES = ("veth", "bridge", "8021q", "ifb", "sch_netem", "sch_tbf", "sch_htb", "sch_ingress",
                 "cls_u32", "act_mirred", "nf_tables")
GUEST_DIR = "/tmp/netkeel-vm"  # where init.sh binds the job share inside the guest's root

STATUS_RUN, STATUS_NOT_NEEDED, STATUS_NOT_INSTALLED = 0, 3, 4


class VMError(Exception):
    """The tier cannot run here: a missing piece, named with what to do."""


def host_has_netem() -> bool:
    """Whether this kernel makes a netem qdisc: tried in a throwaway network namespace
    (unshare), never in the root one."""
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--map-root-user", "--net"]
    try:
        probe = subprocess.run([*unshare, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
                               capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


class Kernel:
    """A Debian kernel unpacked by scripts/setup: its image and its module tree."""

    def __init__(self, directory: Path):
        self.release = directory.name
        self.image = directory / "boot" / f"vmlinuz-{self.release}"
        self.modules = directory / "lib" / "modules"  # holds RELEASE/, as /lib/modules does

    @classmethod
    def find(cls) -> "Kernel":
        """The kernel scripts/setup left. Raises VMError when there is none."""
        found = sorted(d for d in KERNELS.glob("*") if (d / ".complete").is_file()) if KERNELS.is_dir() else []
        if not found:
            raise VMError(f"no Debian kernel in {KERNELS}: run scripts/setup --kernel-vm")
        return cls(found[-1])

    def closure(self, names) -> list:
        """The module files (relative to the module tree) that loading `names` takes,
        each after the ones it depends on."""
        deps = {}
        for line in (self.modules / self.release / "modules.dep").read_text().splitlines():
            path, _, needs = line.partition(":")
            deps[Path(path).name.removesuffix(".ko")] = (path, [Path(n).name.removesuffix(".ko")
                                                                 for n in needs.split()])
        ordered = []

        def visit(name):
            path, needs = deps[name.replace("-", "_")]
            for need in needs:
                visit(need)
            if path not in ordered:
                ordered.append(path)

        for name in names:
            visit(name)
        return ordered


def installed_kernel() -> Kernel:
    """The kernel the tier boots. Raises VMError when it or qemu is missing."""
    if shutil.which(QEMU) is None:
        raise VMError(f"{QEMU} is not installed: run scripts/setup --kernel-vm")
    return Kernel.find()


def _is_static(binary: Path) -> bool:
    """True when an ELF64 executable has no program interpreter (PT_INTERP)."""
    with binary.open("rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:
            return False
        phoff, = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != 3 for i in range(phnum))


def _cpio(entries) -> bytes:
    """A newc cpio archive, as the kernel unpacks an initramfs, of (name, mode, data,
    (rdev major, minor)) entries, each directory before what it holds."""
    out = bytearray()
    for ino, (name, mode, data, rdev) in enumerate([*entries, ("TRAILER!!!", 0, b"", (0, 0))], start=1):
        raw = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(raw), 0)
        out += b"070701" + "".join(f"{v:08x}" for v in fields).encode() + raw
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def initramfs(kernel: Kernel) -> Path:
    """The initramfs for `kernel`, built into .cache/vm once per distinct set of inputs
    (init.sh, busybox, the boot modules, this script). Raises VMError without a static
    busybox."""
    if not BUSYBOX.is_file() or not _is_static(BUSYBOX):
        raise VMError(f"{BUSYBOX} is not a static busybox: run scripts/setup --kernel-vm (busybox-static)")
    modules = [f"{kernel.release}/{path}" for path in kernel.closure(BOOT_MODULES)]
    files = {"init": INIT.read_bytes(), "bin/busybox": BUSYBOX.read_bytes(),
             "modules.load": "".join(f"{m}\n" for m in modules).encode()}
    files.update({f"lib/modules/{m}": (kernel.modules / m).read_bytes() for m in modules})
    digest = hashlib.sha256(Path(__file__).read_bytes())  # this builder is an input too
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    target = CACHE / f"initramfs-{digest.hexdigest()[:16]}.cpio"
    if target.is_file():
        return target

    # busybox --install links its applets into bin, sbin, usr/bin and usr/sbin.
    directories = set()
    for name in [*files, "dev/", "proc/", "sys/", "sbin/", "usr/bin/", "usr/sbin/"]:
        parts = name.split("/")[:-1]
        directories.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    entries = [(d, 0o040755, b"", (0, 0)) for d in sorted(directories)]
    entries.append(("dev/console", 0o020600, b"", (5, 1)))  # init's stdio, before devtmpfs is up
    entries += [(name, 0o100755, data, (0, 0)) for name, data in sorted(files.items())]
    for old in CACHE.glob("initramfs-*.cpio"):
        old.unlink()
    partial = target.with_suffix(f".{os.getpid()}.partial")  # a concurrent run builds its own
    partial.write_bytes(_cpio(entries))
    partial.rename(target)
    return target


def write_job(directory: Path, kernel: Kernel, pytest_args) -> None:
    """The job share's files: init.sh's config, and the script it runs in the guest's root."""
    config = {"MODULES_DIR": str(kernel.modules), "MODULES": " ".join(GUEST_MODULES), "REPO_DIR": str(ROOT)}
    (directory / "config").write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in config.items()))
    python = ROOT / ".venv" / "bin" / "python"
    color = ["--color=yes"] if sys.stdout.isatty() else []
    # The repository is read-only in the guest: no cache, no bytecode; a state dir in tmpfs.
    command = [str(python), "-m", "pytest", "-p", "no:cacheprovider", *color, *pytest_args]
    (directory / "job.sh").write_text(f"""\
cd {shlex.quote(str(ROOT))}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/home TERM=dumb
export PYTHONDONTWRITEBYTECODE=1 NETKEEL_STATE_DIR=/tmp/netkeel-state
mkdir -p "$HOME"
echo "netkeel-vm: kernel $(uname -r): {shlex.join(command[1:])}"
# Through a pipe: on the console, a terminal, pytest would redraw its progress with \\r.
{{ {shlex.join(command)}; echo $? > {GUEST_DIR}/status; }} 2>&1 | cat
""")


def qemu_argv(kernel: Kernel, initrd: Path, job: Path, memory: int, cpus: int) -> list:
    virtfs = "local,security_model=passthrough,multidevs=remap"
    return [
        QEMU, "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none", "-nic", "none",
        # Software emulation: this machine's /dev/kvm aborts qemu on -cpu host or max
        # ("failed to set MSR 0x10a") and hangs a guest on older CPU models.
        "-accel", "tcg",
        "-cpu", "max", "-smp", str(cpus), "-m", str(memory),
        "-kernel", str(kernel.image), "-initrd", str(initrd),
        "-append", "console=ttyS0 quiet loglevel=3 panic=-1",
        "-serial", "stdio",
        "-virtfs", f"{virtfs},path=/,mount_tag=hostroot,readonly=on",
        "-virtfs", f"{virtfs},path={job},mount_tag=job",
        # The repository once more, on its own: it may live where the guest puts a
        # tmpfs (a clone under /tmp, as CI may make), which would hide it.
        "-virtfs", f"{virtfs},path={ROOT},mount_tag=repo,readonly=on",
    ]


def boot(argv: list, timeout: float) -> bool:
    """Runs qemu, echoing the guest's console; kills it after `timeout` seconds.
    Returns whether it powered off by itself in time."""
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def echo():
        for line in qemu.stdout:
            sys.stdout.buffer.write(line.replace(b"\r", b""))
            sys.stdout.flush()

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    try:
        qemu.wait(timeout)
        return True
    except subprocess.TimeoutExpired:
        print(f"netkeel-vm: no power-off after {timeout:.0f} s: killing qemu", flush=True)
        return False
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
        reader.join(5)


def run(pytest_args, timeout: float, memory: int, cpus: int) -> int:
    """Boots the VM, runs pytest with `pytest_args` in it; pytest's exit status, or 1.
    Raises VMError when a piece of the tier is missing."""
    kernel = installed_kernel()
    initrd = initramfs(kernel)
    with tempfile.TemporaryDirectory(prefix="netkeel-vm-") as job:
        write_job(Path(job), kernel, pytest_args)
        started = time.monotonic()
        finished = boot(qemu_argv(kernel, initrd, Path(job), memory, cpus), timeout)
        elapsed = time.monotonic() - started
        status_file = Path(job) / "status"
        status = int(status_file.read_text()) if finished and status_file.is_file() else None
    if finished:
        print(f"netkeel-vm: boot to power-off {elapsed:.1f} s", flush=True)
    if status is None:
        print("netkeel-vm: the VM did not finish the job (its console is above)", file=sys.stderr)
        return 1
    return status


def status() -> int:
    """Prints whether this host needs the tier and has it; the --status exit code."""
    if host_has_netem():
        print("this kernel has netem: no kernel tier needed")
        return STATUS_NOT_NEEDED
    try:
        kernel = installed_kernel()
    except VMError as error:
        print(f"this kernel has no netem and the kernel tier is not installed ({error})")
        return STATUS_NOT_INSTALLED
    print(f"this kernel has no netem: the kernel tier runs Debian {kernel.release} under qemu")
    return STATUS_RUN


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status", action="store_true", help="does this host need and have the tier")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before qemu is killed (900)")
    parser.add_argument("--memory", type=int, default=2048, help="guest memory in MiB (2048)")
    # One vCPU: on this 2-core machine a second one made the netem tier 1.6 times slower
    # (the vCPU threads and qemu's 9p server compete for the cores).
    parser.add_argument("--cpus", type=int, default=1, help="guest vCPUs (1)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed to pytest in the guest")
    args = parser.parse_args(argv)
    if args.status:
        return status()
    pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    try:
        return run(pytest_args, args.timeout, args.memory, args.cpus)
    except VMError as error:
        print(f"netkeel-vm: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
