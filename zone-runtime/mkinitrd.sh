#!/bin/sh
# zone-runtime/mkinitrd.sh - builds the base initramfs of zone guests: zone-init as /init and the
# kernel modules it loads (block front end, ext4 and its helpers, the Xen devices the GPU
# transport uses) from MODULES_DIR (a kernel's /lib/modules/<version>/kernel). A kernel with
# those drivers built in (kernel/, make kernel) needs none: pass "-" as MODULES_DIR.
# Usage: mkinitrd.sh ZONE_INIT MODULES_DIR OUT
set -eu
init=${1:?usage: mkinitrd.sh ZONE_INIT MODULES_DIR OUT}
mods=${2:?usage: mkinitrd.sh ZONE_INIT MODULES_DIR OUT}
out=${3:?usage: mkinitrd.sh ZONE_INIT MODULES_DIR OUT}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/proc" "$tmp/sys" "$tmp/dev" "$tmp/lib/modules/vgpu"
install -m 0755 "$init" "$tmp/init"
if [ "$mods" != - ]; then
    for m in lib/crc16 crypto/crc32c_generic lib/libcrc32c fs/mbcache fs/jbd2/jbd2 fs/ext4/ext4 \
             drivers/block/xen-blkfront drivers/xen/xen-evtchn drivers/xen/xen-gntdev \
             drivers/xen/xen-gntalloc; do
        f=$(ls "$mods/$m.ko"* 2>/dev/null | head -n1)
        [ -n "$f" ] || { echo "mkinitrd: $mods/$m.ko is missing" >&2; exit 1; }
        case "$f" in
        *.ko.xz) xz -dc "$f" > "$tmp/lib/modules/vgpu/$(basename "$m").ko" ;;
        *.ko.zst) zstd -dqc "$f" > "$tmp/lib/modules/vgpu/$(basename "$m").ko" ;;
        *) cp "$f" "$tmp/lib/modules/vgpu/" ;;
        esac
    done
fi
(cd "$tmp" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 > "$out.tmp"
mv "$out.tmp" "$out"
