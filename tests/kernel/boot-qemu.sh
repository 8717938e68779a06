#!/usr/bin/env bash
# tests/kernel/boot-qemu.sh - boots the built guest kernel directly under QEMU (no Xen) with a
# busybox initramfs whose /init exercises what the config fragments promise (devtmpfs, proc,
# sysfs, tmpfs, cgroup v2 controllers, namespaces, seccomp, no modules; the Xen drivers only
# register under Xen, which tests/xen covers) and reports on the
# serial line. Two boot paths: the bzImage (native 64-bit entry) and vmlinux through the PVH
# entry point (the one a Xen PVH domain uses). Kernel messages reach the serial port through
# earlyprintk=serial,keep, so no 8250 driver is needed in the kernel.
# Usage: boot-qemu.sh [KERNEL_BUILD_DIR]   (default: kernel/build; needs bzImage-vgpu-guest and
# obj/vmlinux there, i.e. `make -C kernel` done). Exit 0 all passed, 1 failures, 77 skipped.
# Prints one line per check and finally `N passed, N failed`.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kbuild=$(realpath "${1:-$here/../../kernel/build}")
image="$kbuild/bzImage-vgpu-guest"
vmlinux="$kbuild/obj/vmlinux"
QEMU=${QEMU:-qemu-system-x86_64}
# Only a guard against a hung guest; the verdict never depends on how long a boot took.
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}

skip() { echo "boot-qemu: SKIPPED: $*"; exit 77; }
[[ -f "$image" ]] || skip "$image not built (run: make -C kernel)"
[[ -f "$vmlinux" ]] || skip "$vmlinux not built (run: make -C kernel)"
command -v "$QEMU" >/dev/null || skip "$QEMU not found (install qemu-system-x86)"
busybox=$(command -v busybox || true)
[[ -n "$busybox" ]] || skip "busybox not found (install busybox-static)"
[[ "$(file -L "$busybox")" == *"statically linked"* ]] || skip "$busybox is not static (install busybox-static)"
command -v cpio >/dev/null || skip "cpio not found (install cpio)"

work=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-kboot.XXXXXX") || { echo "boot-qemu: mktemp failed" >&2; exit 1; }
trap 'rm -rf "$work"' EXIT

# The initramfs: static busybox and an /init that prints `vgpu-kcheck: ok|FAIL <what>` lines to
# /dev/kmsg (the only output without a console driver), then `vgpu-kcheck: done`, then reboots
# (QEMU runs with -no-reboot, so that ends it).
root="$work/root"
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" || exit 1
cp "$busybox" "$root/bin/busybox" || exit 1
cat > "$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs devtmpfs /dev || /bin/busybox reboot -f
exec >/dev/kmsg 2>&1
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
check() {
    what=$1; shift
    if "$@" >/dev/null 2>&1; then echo "vgpu-kcheck: ok $what"; else echo "vgpu-kcheck: FAIL $what"; fi
}
echo "vgpu-kcheck: start"
check "proc mounted" test -r /proc/self/status
check "sysfs mounted" mount -t sysfs sysfs /sys
check "devtmpfs has /dev/null" test -c /dev/null
mkdir -p /dev/shm /sys/fs/cgroup
check "tmpfs on /dev/shm (POSIX shared memory)" mount -t tmpfs tmpfs /dev/shm
check "write to /dev/shm" sh -c 'echo x > /dev/shm/probe && test -s /dev/shm/probe'
check "cgroup2 mounted" mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in cpu cpuset memory pids; do
    check "cgroup2 controller $c" grep -qw "$c" /sys/fs/cgroup/cgroup.controllers
done
for fs in devtmpfs tmpfs cgroup2 proc sysfs; do
    check "filesystem $fs" grep -qw "$fs" /proc/filesystems
done
check "namespaces uts ipc pid net mount" unshare -u -i -p -n -m -f true
check "user namespace" unshare -U true
check "seccomp (Seccomp: in /proc/self/status)" grep -q '^Seccomp:' /proc/self/status
check "no loadable modules (/proc/modules absent)" test ! -e /proc/modules
check "unix sockets" grep -q '^Num' /proc/net/unix
check "cmdline reached init" grep -q 'rdinit=/init' /proc/cmdline
echo "vgpu-kcheck: done"
reboot -f
EOF
chmod +x "$root/init" || exit 1
initrd="$work/initrd.cpio.gz"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$initrd" || {
    echo "boot-qemu: building the initramfs failed" >&2; exit 1; }

passed=0
failed=0
# boot NAME KERNEL: boots it, then counts the guest's check lines; a boot that never reaches
# `vgpu-kcheck: done` is one failure.
boot() {
    local name=$1 kernel=$2 log="$work/$1.log" line
    timeout "$BOOT_TIMEOUT" "$QEMU" -accel tcg -cpu qemu64 -m 256 -smp 2 -nographic -no-reboot \
        -monitor none -serial stdio -net none -kernel "$kernel" -initrd "$initrd" \
        -append "earlyprintk=serial,ttyS0,115200,keep printk.devkmsg=on rdinit=/init panic=-1 loglevel=5" \
        > "$log" 2>&1 < /dev/null
    local rc=$?
    while IFS= read -r line; do
        case "$line" in
            *"vgpu-kcheck: ok "*) echo "ok   $name: ${line#*vgpu-kcheck: ok }"; passed=$((passed + 1)) ;;
            *"vgpu-kcheck: FAIL "*) echo "FAIL $name: ${line#*vgpu-kcheck: FAIL }"; failed=$((failed + 1)) ;;
        esac
    done < <(tr -d '\r' < "$log")
    if grep -q 'vgpu-kcheck: done' "$log"; then
        echo "ok   $name: booted to /init and finished (qemu exit $rc)"
        passed=$((passed + 1))
    else
        echo "FAIL $name: never finished /init (qemu exit $rc); last console lines:"
        tr -d '\r' < "$log" | tail -n 20 | sed 's/^/    /'
        failed=$((failed + 1))
    fi
}

boot bzImage "$image"
boot pvh-vmlinux "$vmlinux"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
