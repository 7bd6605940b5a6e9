#!/bin/busybox sh
# PID 1 of the kernel-test VM (tests/vm/run.py builds it into the initramfs as /init).
#
# Mounts the host's / (9p tag "hostroot", read-only) at /newroot and the job share
# (tag "job", writable) at /job; loads the guest kernel's modules from the host's cache;
# gives the read-only root writable tmpfs where tests write; runs /job/job.sh chrooted
# into it; powers off. The job writes its exit status into /job. Any failure powers off
# too: run.py reads a missing status as a failed boot.
/bin/busybox --install -s
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

say() { echo "netkeel-vm: $*"; }
die() { say "$*"; poweroff -f; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo 1 > /proc/sys/kernel/printk   # kernel messages would interleave with the tests' output

# The 9p transport, from the initramfs (/modules.load lists them in load order).
while read -r module; do
  insmod "/lib/modules/$module" || die "insmod $module failed"
done < /modules.load

p9="trans=virtio,version=9p2000.L,msize=1048576"
mkdir -p /newroot /job
mount -t 9p -o "$p9,ro,cache=loose" hostroot /newroot || die "cannot mount the host's / over 9p"
mount -t 9p -o "$p9" job /job || die "cannot mount the job share"
. /job/config   # MODULES_DIR (the guest kernel's modules, as a host path), MODULES, REPO_DIR

# The whole module tree, for the modules below and for the kernel's own requests
# (an nft expression, a qdisc kind...): its usermode helper runs this initramfs's
# /sbin/modprobe, since only the job, not PID 1, changes its root.
release=$(uname -r)
mount --bind "/newroot$MODULES_DIR/$release" "/lib/modules/$release" || die "no modules for $release"
modprobe -a $MODULES || die "modprobe failed: $MODULES"

# The host's / is read-only: mount points there already exist; what tests write goes
# to tmpfs. /run/netns lives under /run.
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /newroot/dev/shm
mount -t tmpfs -o mode=1777 tmpfs /newroot/tmp
mount -t tmpfs -o mode=1777 tmpfs /newroot/var/tmp
mount -t tmpfs -o mode=755 tmpfs /newroot/run
mkdir -p /newroot/tmp/netkeel-vm
mount --bind /job /newroot/tmp/netkeel-vm
# The repository at its own path, even under one of those tmpfs (a clone in /tmp).
mkdir -p "/newroot$REPO_DIR"
mount -t 9p -o "$p9,ro,cache=loose" repo "/newroot$REPO_DIR" || die "cannot mount the repository over 9p"

say "booted in $(cut -d' ' -f1 /proc/uptime) s; running the job"
chroot /newroot /bin/sh /tmp/netkeel-vm/job.sh
say "job ended at $(cut -d' ' -f1 /proc/uptime) s"
umount /newroot/tmp/netkeel-vm /job
poweroff -f
