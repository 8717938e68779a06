#!/usr/bin/env bash
# tests/kernel/guest-image.sh - end-to-end check of a zone's guest image: builds guest_app.c,
# puts it together with our libcuda.so.1 into an initramfs with kernel/scripts/mkguest.sh, boots
# it on the built guest kernel directly under QEMU (no Xen; output through earlyprintk=serial,keep
# and /dev/kmsg) and reads the application's report from the serial line.
# Usage: guest-image.sh [KERNEL_BUILD_DIR]   Environment: LIBCUDA (default libvgpu/libcuda.so.1).
# Exit 0 all passed, 1 failures, 77 skipped. Prints `N passed, N failed` last.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
kbuild=$(realpath "${1:-$top/kernel/build}")
image="$kbuild/bzImage-vgpu-guest"
libcuda=${LIBCUDA:-$top/libvgpu/libcuda.so.1}
QEMU=${QEMU:-qemu-system-x86_64}
CC=${CC:-cc}
# Only a guard against a hung guest; the verdict never depends on how long a boot took.
BOOT_TIMEOUT=${BOOT_TIMEOUT:-300}

skip() { echo "guest-image: SKIPPED: $*"; exit 77; }
[[ -f "$image" ]] || skip "$image not built (run: make -C kernel)"
[[ -f "$libcuda" ]] || skip "$libcuda not built (run: make -C libvgpu, or set LIBCUDA)"
command -v "$QEMU" >/dev/null || skip "$QEMU not found (install qemu-system-x86)"

work=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-kguest.XXXXXX") || { echo "guest-image: mktemp failed" >&2; exit 1; }
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
finish() { echo "$passed passed, $failed failed"; [[ $failed -eq 0 ]]; exit; }

if "$CC" -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -o "$work/guest_app" \
        "$here/guest_app.c" -ldl; then
    ok "guest_app built"
else
    fail "guest_app did not build"; finish
fi

if "$top/kernel/scripts/mkguest.sh" -o "$work/guest.cpio.gz" -c "$libcuda" \
        -e VGPU_LOG=warn -- "$work/guest_app" > "$work/mkguest.log" 2>&1; then
    ok "mkguest.sh built the image"
else
    fail "mkguest.sh failed:"; sed 's/^/    /' "$work/mkguest.log"; finish
fi

# What the image must hold: /init, busybox, the program, libcuda.so.1, the dynamic loader.
listing=$(zcat "$work/guest.cpio.gz" | cpio -t --quiet 2>/dev/null)
loader=$(readelf -l "$work/guest_app" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
for f in init bin/busybox opt/vgpu/bin/guest_app opt/vgpu/lib/libcuda.so.1 "${loader#/}"; do
    if grep -qx "$f" <<< "$listing"; then ok "image holds /$f"; else fail "image lacks /$f"; fi
done

log="$work/console.log"
timeout "$BOOT_TIMEOUT" "$QEMU" -accel tcg -cpu qemu64 -m 256 -smp 1 -nographic -no-reboot \
    -monitor none -serial stdio -net none -kernel "$image" -initrd "$work/guest.cpio.gz" \
    -append "earlyprintk=serial,ttyS0,115200,keep printk.devkmsg=on rdinit=/init panic=-1 loglevel=5 vgpu.end=reboot" \
    > "$log" 2>&1 < /dev/null
qrc=$?
tr -d '\r' < "$log" > "$log.txt"
while IFS= read -r line; do
    case "$line" in
        *"vgpu-guest-app: ok "*) ok "in guest: ${line#*vgpu-guest-app: ok }" ;;
        *"vgpu-guest-app: FAIL "*) fail "in guest: ${line#*vgpu-guest-app: FAIL }" ;;
    esac
done < "$log.txt"
if grep -q 'vgpu-guest: exit status 0' "$log.txt"; then
    ok "application ran in the guest and exited 0 (qemu exit $qrc)"
else
    fail "application did not exit 0 in the guest (qemu exit $qrc); last console lines:"
    tail -n 25 "$log.txt" | sed 's/^/    /'
fi
finish
