#!/usr/bin/env bash
# mkguest.sh - puts a zone's guest image together: a gzip cpio initramfs with static busybox, the
# application and every shared library it loads, our libcuda.so.1 (libvgpu) and its libraries,
# and an /init that mounts the kernel filesystems and runs the application once.
# The kernel needs no modules (kernel/config/: the Xen drivers are built in).
# Usage: mkguest.sh -o OUT.cpio.gz [-c LIBCUDA] [-l LIB]... [-f FILE:DEST]... [-e VAR=VALUE]...
#                   -- PROGRAM [ARG...]
#   -o  output image                 -c  our libcuda.so.1 (default: libvgpu/libcuda.so.1)
#   -l  extra library to ship (a dlopen()ed one ldd cannot see), goes to /opt/vgpu/lib
#   -f  extra file, copied to DEST inside the image  -e  environment for the application
# Prints the xl configuration lines that boot the image.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
die() { echo "mkguest: FAILED: $*" >&2; exit 1; }
usage() { sed -n '6,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

out=""
libcuda="$top/libvgpu/libcuda.so.1"
extra_libs=()
extra_files=()
envs=()
while getopts "o:c:l:f:e:h" opt; do
    case $opt in
        o) out=$OPTARG ;;
        c) libcuda=$OPTARG ;;
        l) extra_libs+=("$OPTARG") ;;
        f) extra_files+=("$OPTARG") ;;
        e) [[ "$OPTARG" == [A-Za-z_]*=* ]] || die "-e wants VAR=VALUE, got '$OPTARG'"
           envs+=("$OPTARG") ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ -n "$out" && $# -ge 1 ]] || usage
program=$1; shift

[[ -f "$program" && -x "$program" ]] || die "program $program is not an executable file"
[[ -f "$libcuda" ]] || die "$libcuda not found (build it: make -C $top/libvgpu)"
busybox=$(command -v busybox || true)
[[ -n "$busybox" ]] || die "busybox not found (install busybox-static)"
[[ "$(file -L "$busybox")" == *"statically linked"* ]] || die "$busybox is not static (install busybox-static)"
command -v cpio >/dev/null || die "cpio not found (install cpio)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mkguest.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,etc/vgpu,opt/vgpu/bin,opt/vgpu/lib} || die "mkdir in $root"

# put SRC TARGET: copies file SRC (links followed) to TARGET inside the image.
put() {
    mkdir -p "$root/$(dirname "$2")" && cp -L "$1" "$root/$2" || die "copying $1 to $2"
}

# add_libs FILE...: copies every library ldd names for FILE, and the loader, to the path where
# the host has it, so the loader finds them the same way in the guest.
add_libs() {
    local f lib missing=""
    for f in "$@"; do
        case "$(file -L "$f")" in *"dynamically linked"*|*"shared object"*) ;; *) continue ;; esac
        while read -r kind lib; do
            if [[ "$kind" == missing ]]; then missing+=" $lib"; continue; fi
            [[ -f "$root/$lib" ]] || put "$lib" "$lib"
        done < <(ldd "$f" 2>/dev/null | awk '
            /not found/ { print "missing " $1; next }
            /=> \// { print "lib " $3; next }
            /^[[:space:]]*\// { print "lib " $1 }')
    done
    [[ -z "$missing" ]] || die "libraries not found for $*:$missing"
}

put "$busybox" /bin/busybox
ln -s busybox "$root/bin/sh"
put "$program" "/opt/vgpu/bin/$(basename "$program")"
put "$libcuda" /opt/vgpu/lib/libcuda.so.1
ln -s libcuda.so.1 "$root/opt/vgpu/lib/libcuda.so"
add_libs "$program" "$libcuda"
# The Xen transport is a plugin libcuda.so.1 loads from its own directory when
# VGPU_TRANSPORT=xen (so libcuda.so.1 itself needs no Xen library): ship it with its libraries.
xen_plugin="$(dirname "$libcuda")/libvgpu-xen.so.1"
[[ -f "$xen_plugin" ]] || die "$xen_plugin not found (build it: make -C $top/libvgpu)"
put "$xen_plugin" /opt/vgpu/lib/libvgpu-xen.so.1
add_libs "$xen_plugin"
# glibc dlopen()s libgcc_s.so.1 for pthread_cancel and C++ unwinding; ldd cannot see that.
libgcc=$(ldconfig -p | awk '/libgcc_s.so.1 .*x86-64/ && !f { f = $NF } END { print f }')
[[ -n "$libgcc" ]] || die "libgcc_s.so.1 not found on the host (ldconfig -p)"
[[ -f "$root/$libgcc" ]] || put "$libgcc" "$libgcc"
for l in "${extra_libs[@]}"; do
    [[ -f "$l" ]] || die "library $l not found"
    put "$l" "/opt/vgpu/lib/$(basename "$l")"
    add_libs "$l"
done
for f in "${extra_files[@]}"; do
    src=${f%%:*}; dest=${f#*:}
    [[ -f "$src" && "$dest" == /* && "$f" == *:* ]] || die "-f wants FILE:/DEST with an existing FILE, got '$f'"
    put "$src" "$dest"
done

# The application's command line and environment, one entry per line, read by /init.
{
    echo "/opt/vgpu/bin/$(basename "$program")"
    for a in "$@"; do
        [[ "$a" != *$'\n'* ]] || die "arguments may not contain newlines"
        echo "$a"
    done
} > "$root/etc/vgpu/argv"
: > "$root/etc/vgpu/env"
for e in "LD_LIBRARY_PATH=/opt/vgpu/lib" "${envs[@]}"; do
    [[ "$e" != *$'\n'* ]] || die "environment values may not contain newlines"
    echo "$e" >> "$root/etc/vgpu/env"
done

cat > "$root/init" <<'EOF'
#!/bin/busybox sh
# /init of a vgpu zone: kernel filesystems, then the application once, then power off.
/bin/busybox mount -t devtmpfs devtmpfs /dev || /bin/busybox poweroff -f
/bin/busybox mount -t proc proc /proc || /bin/busybox poweroff -f
# Without a console (e.g. no hvc0 outside Xen) fd 1 is closed: write to the kernel log instead.
[ -e /proc/self/fd/1 ] || exec >/dev/kmsg 2>&1
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys
mkdir -p /dev/shm /dev/pts /sys/fs/cgroup
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t devpts devpts /dev/pts
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# /proc/xen and /dev/xen/* exist only under Xen.
if [ -d /proc/xen ]; then mount -t xenfs xenfs /proc/xen; fi
while IFS= read -r kv; do export "$kv"; done < /etc/vgpu/env
set --
while IFS= read -r a; do set -- "$@" "$a"; done < /etc/vgpu/argv
echo "vgpu-guest: running $*"
"$@"
echo "vgpu-guest: exit status $?"
sync
# Power off ends the Xen domain (on_poweroff = "destroy"); vgpu.end=reboot on the kernel command
# line reboots instead, for QEMU without Xen (-no-reboot), where power off only halts.
if grep -qw 'vgpu.end=reboot' /proc/cmdline; then reboot -f; fi
poweroff -f
EOF
chmod +x "$root/init" || die "chmod $root/init"

mkdir -p "$(dirname "$out")" || die "mkdir for $out"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -9) > "$out.tmp" \
    || die "writing $out"
mv "$out.tmp" "$out" || die "renaming $out.tmp"
echo "mkguest: $out ($(stat -c %s "$out") bytes): $(find "$root" -type f | wc -l) files"
echo "mkguest: xl configuration for it:"
echo "  type = \"pv\"            # or \"pvh\""
echo "  kernel = \"$top/kernel/build/bzImage-vgpu-guest\""
echo "  ramdisk = \"$(realpath "$out")\""
echo "  extra = \"console=hvc0 rdinit=/init\""
echo "  memory = 256"
echo "  vcpus = 1"
