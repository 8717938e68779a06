#!/bin/sh
# tests/xen/dom0-init.sh - /init of the test's dom0: mounts the pseudo file systems, loads the
# Xen drivers, starts xenstored and xenconsoled, runs /opt/vgpu/scenario.sh (or the one named by
# vgpu.scenario= on its command line) under a timeout and powers off. Everything it prints goes
# to Xen's console, i.e. QEMU's serial port.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen-4.17/bin:/opt/vgpu/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/log
mkdir -p /var/run/xen /var/lib/xen /var/lib/xenstored /run/xen /run/xenstored /var/log/xen/console
echo "XENTEST dom0 up $(cut -d' ' -f1 /proc/uptime)s"

fail_boot() {
    echo "XENTEST CASE boot FAIL $*"
    echo "XENTEST END"
    poweroff -f
}

for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
    insmod /lib/modules/xen/$m.ko || fail_boot "insmod $m failed"
done
mount -t xenfs xenfs /proc/xen || fail_boot "mount xenfs failed"
# The container runtime's root disks (zone.sh): loop devices served by blkback.
for m in loop xen-blkback; do
    insmod /lib/modules/xen/$m.ko || echo "XENTEST dom0: insmod $m failed (zone cases will fail)"
done
xenstored --pid-file /run/xenstored.pid || fail_boot "xenstored did not start"
timeout 30 xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || { cat /tmp/xen-init-dom0.log; fail_boot "xen-init-dom0 failed"; }
xenconsoled --log=guest --log-dir=/var/log/xen/console --pid-file=/run/xenconsoled.pid \
    || fail_boot "xenconsoled did not start"
echo "XENTEST CASE boot PASS dom0 toolstack up at $(cut -d' ' -f1 /proc/uptime)s"

limit=$(sed -n 's/.*vgpu.timeout=\([0-9]*\).*/\1/p' /proc/cmdline)
scenario=$(sed -n 's/.*vgpu.scenario=\([a-z]*\).*/\1/p' /proc/cmdline)
timeout "${limit:-240}" sh /opt/vgpu/${scenario:-scenario}.sh
rc=$?
if [ $rc -ne 0 ]; then
    echo "XENTEST CASE scenario FAIL scenario.sh exited with status $rc (143: timed out after ${limit:-240}s)"
    # What the guests and servers said so far, for the diagnosis.
    xl list
    for f in /var/log/xen/console/guest-*.log /run/*.log; do
        [ -f "$f" ] || continue
        echo "XENTEST --- $f (last 60 lines)"
        tail -n 60 "$f" | sed "s|^|[$(basename "$f" .log)] |"
    done
fi
echo "XENTEST END at $(cut -d' ' -f1 /proc/uptime)s"
sync
poweroff -f
