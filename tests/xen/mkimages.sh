#!/usr/bin/env bash
# tests/xen/mkimages.sh - builds the two initramfs images the Xen test boots: the guest domain's
# (busybox, Xen modules, xenstore tools, the guest test programs and every library they load)
# and dom0's (the same plus the Xen toolstack, the guest kernel, the guest image and xl configs).
# Usage: mkimages.sh CACHE_ROOT BUILD_DIR   (CACHE_ROOT: the packages unpacked by fetch.sh)
# Environment: GUEST_KERNEL (default: the Debian kernel), DOM0_PROGS / GUEST_PROGS (programs put
# in /opt/vgpu/bin), OPT_DOM0_PROGS / OPT_GUEST_PROGS / OPT_GUEST_LIBS (the same, and dlopen()ed
# libraries put in /opt/vgpu/lib, that may be missing: each missing one is named in the image's
# /opt/vgpu/missing, and the cases needing it fail saying so), SCRIPTS_DIR, ZONE_RUNTIME_DIR
# (zone-runtime/, built) and ZONE_APP (the CUDA program its containers run; see zone.sh).
set -euo pipefail
croot=$(realpath "${1:?usage: mkimages.sh CACHE_ROOT BUILD_DIR}")
build=$(realpath "${2:?usage: mkimages.sh CACHE_ROOT BUILD_DIR}")
here=$(cd "$(dirname "$0")" && pwd)
scripts=${SCRIPTS_DIR:-$here}

die() { echo "mkimages: FAILED: $*" >&2; exit 1; }

busybox=$(command -v busybox || true)
[[ -n "$busybox" ]] || die "busybox not found (install busybox-static; it is in mk/deps.txt)"
[[ "$(file -L "$busybox")" == *"statically linked"* ]] || die "$busybox is not static (install busybox-static)"
command -v cpio >/dev/null || die "cpio not found (install cpio)"

kernels=("$croot"/boot/vmlinuz-*-amd64)
[[ -f "${kernels[0]}" ]] || die "no kernel in $croot/boot (did fetch.sh run?)"
dom0_kernel=${kernels[0]}
kver=$(basename "$dom0_kernel"); kver=${kver#vmlinuz-}
moddir="$croot/lib/modules/$kver/kernel/drivers/xen"
guest_kernel=${GUEST_KERNEL:-$dom0_kernel}
[[ -f "$guest_kernel" ]] || die "GUEST_KERNEL=$guest_kernel does not exist"

# Libraries resolve from the unpacked packages first, then from the host.
export LD_LIBRARY_PATH="$croot/usr/lib/x86_64-linux-gnu:$croot/usr/lib/xen-4.17/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# put DEST SRC TARGET: copies file SRC (links followed) to DEST/TARGET.
put() {
    local dest=$1 src=$2 target=$3
    mkdir -p "$dest/$(dirname "$target")"
    cp -L "$src" "$dest/$target"
}

# add_libs DEST FILE...: copies every library ldd names for FILE (and the loader) into DEST.
add_libs() {
    local dest=$1; shift
    local f lib
    for f in "$@"; do
        case "$(file -L "$f")" in *"dynamically linked"*|*"shared object"*) ;; *) continue ;; esac
        while read -r lib; do
            [[ -n "$lib" ]] || continue
            # Libraries from the unpacked packages go where Debian installs them.
            [[ -f "$dest/${lib#"$croot"}" ]] || put "$dest" "$lib" "${lib#"$croot"}"
        done < <(ldd "$f" 2>/dev/null | awk '
            /not found/ { print "MISSING " $1; next }
            /=> \// { print $3; next }
            /^[[:space:]]*\// { print $1 }' | sed 's/^MISSING /\/MISSING\//')
    done
    if [[ -d "$dest/MISSING" ]]; then
        die "libraries not found for $*: $(ls "$dest/MISSING" | tr '\n' ' ')"
    fi
}

# base_tree DEST: busybox with its applets, the Xen modules, the xenstore tools.
base_tree() {
    local dest=$1 a m
    rm -rf "$dest"
    mkdir -p "$dest"/{bin,sbin,dev,proc,sys,run,tmp,etc,lib/modules/xen,opt/vgpu/bin,opt/vgpu/lib}
    mkdir -p "$dest"/{usr/bin,usr/sbin,var/log,var/lib,root}
    cp "$busybox" "$dest/bin/busybox"
    for a in $("$busybox" --list); do
        [[ -e "$dest/bin/$a" ]] || ln -s busybox "$dest/bin/$a"
    done
    for m in xen-privcmd xen-evtchn xen-gntdev xen-gntalloc xenfs/xenfs; do
        [[ -f "$moddir/$m.ko" ]] || die "kernel module $moddir/$m.ko missing"
        cp "$moddir/$m.ko" "$dest/lib/modules/xen/"
    done
    put "$dest" "$croot/usr/bin/xenstore" usr/bin/xenstore
    for a in read write exists list ls rm chmod watch; do
        ln -sf xenstore "$dest/usr/bin/xenstore-$a"
    done
    add_libs "$dest" "$dest/usr/bin/xenstore"
    # nobody: what gpu_proxy's workers of non-Xen zones run as (Xen zones' workers keep root)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        > "$dest/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' > "$dest/etc/group"
}

# add_progs DEST PROG...: test programs into /opt/vgpu/bin, with their libraries.
add_progs() {
    local dest=$1 p; shift
    for p in "$@"; do
        [[ -f "$p" ]] || die "program $p was not built"
        cp "$p" "$dest/opt/vgpu/bin/"
        add_libs "$dest" "$p"
    done
}

pack() {
    local dir=$1 out=$2
    (cd "$dir" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) \
        | gzip -1 > "$out.tmp"
    mv "$out.tmp" "$out"
}

# ---- guest image ----
g="$build/guest-root"
base_tree "$g"
# The guest kernel may be a different one (GUEST_KERNEL) with the Xen drivers built in; the
# modules above match the Debian kernel only, and /init loads them only when they load.
install -m 0755 "$scripts/guest-init.sh" "$g/init"
# shellcheck disable=SC2086
add_progs "$g" ${GUEST_PROGS:-}
# Components whose build failed (listed by the Makefile) count as missing, stale binaries or not.
if [[ -s "$build/failed" ]]; then cp "$build/failed" "$build/missing"; else : > "$build/missing"; fi
is_failed() { grep -q "^$1 " "$build/missing"; }
for p in ${OPT_GUEST_PROGS:-}; do
    if [[ -f "$p" ]]; then add_progs "$g" "$p"; else echo "$p (not built)" >> "$build/missing"; fi
done
for l in ${OPT_GUEST_LIBS:-}; do
    if is_failed "$l"; then
        :
    elif [[ -f "$l" ]]; then
        cp -L "$l" "$g/opt/vgpu/lib/"
        add_libs "$g" "$l"
    else
        echo "$l (not built)" >> "$build/missing"
    fi
done
for p in ${OPT_DOM0_PROGS:-}; do
    is_failed "$p" || [[ -f "$p" ]] || echo "$p (not built)" >> "$build/missing"
done
if [[ -s "$build/missing" ]]; then
    echo "mkimages: WARNING: not built, their cases will fail: $(tr '\n' ' ' < "$build/missing")"
fi
cp "$build/missing" "$g/opt/vgpu/missing"
# libgcc_s is loaded with dlopen by glibc's pthread_cancel (seen with xl); keep it everywhere.
libgcc=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ && !f { f = $NF } END { print f }')
[[ -n "$libgcc" ]] || die "libgcc_s.so.1 not found on the host"
put "$g" "$libgcc" "$libgcc"
pack "$g" "$build/guest.cpio.gz"

# ---- dom0 image ----
d="$build/dom0-root"
base_tree "$d"
install -m 0755 "$scripts/dom0-init.sh" "$d/init"
for f in scenario.sh scenario-lib.sh boottime.sh zone.sh zone-lib.sh podman.sh; do
    install -m 0755 "$scripts/$f" "$d/opt/vgpu/$f"
done
for b in xl xenstored xenconsoled xen-init-dom0 libxl-save-helper xenconsole; do
    put "$d" "$croot/usr/lib/xen-4.17/bin/$b" "usr/lib/xen-4.17/bin/$b"
    add_libs "$d" "$croot/usr/lib/xen-4.17/bin/$b"
done
cp -r "$croot/etc/xen" "$d/etc/xen"
put "$d" "$libgcc" "$libgcc"
# shellcheck disable=SC2086
add_progs "$d" ${DOM0_PROGS:-}
for p in ${OPT_DOM0_PROGS:-}; do
    if [[ -f "$p" ]] && ! is_failed "$p"; then add_progs "$d" "$p"; fi
done
cp "$build/missing" "$d/opt/vgpu/missing"

# ---- the container runtime's cases (zone.sh) ----
# vgpu-zone-runtime and the base initramfs of zone guests (zone-init + the guest's modules),
# the GPU libraries the runtime puts into zone guests, mkfs.ext4 for the root images, runc for
# the comparison, the loop and block back-end drivers, and one container root filesystem.
z="$d/opt/vgpu/zone"
mkdir -p "$z/gpu" "$z/rootfs/bin" "$z/rootfs/opt/own-lib"
: > "$z/missing"
zr=${ZONE_RUNTIME_DIR:-}
if [[ -n "$zr" && -x "$zr/vgpu-zone-runtime" && -x "$zr/zone-init" ]] && ! is_failed "$zr/vgpu-zone-runtime"; then
    add_progs "$d" "$zr/vgpu-zone-runtime"
    install -m 0755 "$zr/vgpu-zone-block" "$z/vgpu-zone-block"
    "$zr/mkinitrd.sh" "$zr/zone-init" "$croot/lib/modules/$kver/kernel" "$z/initrd" \
        || die "zone-runtime/mkinitrd.sh failed"
else
    echo "${zr:-zone-runtime}/vgpu-zone-runtime (not built)" >> "$z/missing"
fi
for p in mke2fs runc; do
    pp=$(command -v "$p" || PATH=$PATH:/usr/sbin:/sbin command -v "$p") || die "$p not found (e2fsprogs, runc: mk/deps.txt)"
    put "$d" "$pp" "usr/sbin/$p"
    add_libs "$d" "$pp"
done
ln -sf mke2fs "$d/usr/sbin/mkfs.ext4"
# podman and conmon, the engine of podman.sh (make test-podman): vfs storage and cgroupfs in tmpfs.
for p in podman conmon; do
    pp=$(command -v "$p") || die "$p not found (podman: mk/deps.txt)"
    put "$d" "$pp" "usr/bin/$p"
    add_libs "$d" "$pp"
done
mkdir -p "$d/etc/containers"
printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/run"\ngraphroot = "/run/containers/storage"\n' \
    > "$d/etc/containers/storage.conf"
printf '[containers]\nlog_driver = "k8s-file"\n[engine]\ncgroup_manager = "cgroupfs"\nno_pivot_root = true\nevents_logger = "file"\nconmon_path = ["/usr/bin/conmon"]\n' \
    > "$d/etc/containers/containers.conf"
printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' > "$d/etc/containers/policy.json"
[[ -f /etc/mke2fs.conf ]] && cp /etc/mke2fs.conf "$d/etc/"
for m in block/loop block/xen-blkback/xen-blkback; do
    cp "$croot/lib/modules/$kver/kernel/drivers/$m.ko" "$d/lib/modules/xen/" || die "module $m missing"
done
# Our libraries and the ones they load that are not glibc's (the container brings glibc).
gpu_libs() {
    local dest=$1 l
    for l in ${OPT_GUEST_LIBS:-}; do
        if [[ -f "$l" ]] && ! is_failed "$l"; then cp -L "$l" "$dest/"; else return 1; fi
        ldd "$l" | awk '/=> \// { print $3 }' | grep -v '/\(libc\|libm\|libdl\|libpthread\|librt\)\.so' |
            while read -r dep; do cp -L "$dep" "$dest/"; done
    done
}
gpu_libs "$z/gpu" || echo "libcuda.so.1/libvgpu-xen.so.1 (not built)" >> "$z/missing"
r="$z/rootfs"
cp "$busybox" "$r/bin/busybox"
for a in sh cat ls echo sleep; do ln -s busybox "$r/bin/$a"; done
if [[ -n "${ZONE_APP:-}" && -f "$ZONE_APP" ]]; then
    cp "$ZONE_APP" "$r/bin/zone_app"
    add_libs "$r" "$ZONE_APP"
    # The zone-less container's image brings its own copy of our library (zone.sh).
    gpu_libs "$r/opt/own-lib" || true
else
    echo "${ZONE_APP:-zone_app} (not built)" >> "$z/missing"
fi
mkdir -p "$d/opt/vgpu/guest"
basename "$guest_kernel" > "$d/opt/vgpu/guest/kernel.name"
# The ELF inside the bzImage: xl then copies instead of decompressing it for every guest.
if ! "$here/extract-vmlinux.py" "$guest_kernel" "$d/opt/vgpu/guest/kernel"; then
    echo "mkimages: using $guest_kernel as it is (xl decompresses it for every guest)"
    cp "$guest_kernel" "$d/opt/vgpu/guest/kernel"
fi
cp "$build/guest.cpio.gz" "$d/opt/vgpu/guest/initrd"
pack "$d" "$build/dom0.cpio.gz"
cp "$dom0_kernel" "$build/vmlinuz"
zcat "$croot/boot/xen-4.17-amd64.gz" > "$build/xen"
echo "mkimages: $(du -h "$build/guest.cpio.gz" | cut -f1) guest image, $(du -h "$build/dom0.cpio.gz" | cut -f1) dom0 image, guest kernel $guest_kernel"
