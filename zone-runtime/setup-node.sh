#!/bin/sh
# zone-runtime/setup-node.sh - sets a Debian 12 node up for Xen mode (docs/DEPLOYMENT.md, "Xen
# mode"): the Xen hypervisor and dom0 toolstack from Debian, the drivers zone guests need in
# dom0 (loop, blkback, gntdev, gntalloc, evtchn) loaded at boot, vgpu-zone-runtime with the
# guest kernel, the zone guests' base initramfs and the GPU libraries under /usr/lib/vgpu-zone,
# its settings in /etc/vgpu-zone/runtime.conf, and the driver domain's xl configuration.
# Run as root from a built tree (make, make -C zone-runtime; optionally make kernel):
#   zone-runtime/setup-node.sh [--no-packages] [--destdir DIR] [--proxy-domid N] [--gpu BDF]
#                              [--guest-kernel FILE --guest-modules DIR]
# --no-packages skips apt-get and GRUB (files only); --destdir installs the files under DIR
# (for checking or packaging); --gpu BDF writes /etc/xen/vgpu-driver.cfg passing that GPU
# through to the driver domain. Reboot into Xen afterwards.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
packages=1 dest='' proxy_domid=0 gpu='' gkernel='' gmods=''
while [ $# -gt 0 ]; do
    case "$1" in
    --no-packages) packages=0 ;;
    --destdir) dest=$2; shift ;;
    --proxy-domid) proxy_domid=$2; shift ;;
    --gpu) gpu=$2; shift ;;
    --guest-kernel) gkernel=$2; shift ;;
    --guest-modules) gmods=$2; shift ;;
    *) echo "setup-node: unknown option $1 (see the header of $0)" >&2; exit 1 ;;
    esac
    shift
done
die() { echo "setup-node: $*" >&2; exit 1; }
if [ ! -x "$top/zone-runtime/vgpu-zone-runtime" ] || [ ! -x "$top/zone-runtime/zone-init" ]; then
    die "build first: make -C zone-runtime (in $top)"
fi
if [ ! -f "$top/libvgpu/libcuda.so.1" ] || [ ! -f "$top/libvgpu/libvgpu-xen.so.1" ]; then
    die "build first: make -C libvgpu (in $top)"
fi

if [ $packages = 1 ]; then
    [ "$(id -u)" = 0 ] || die "run as root (or with --no-packages --destdir DIR)"
    apt-get install -y xen-hypervisor-4.17-amd64 xen-utils-4.17 xenstore-utils e2fsprogs \
        libjansson4 cpio gzip
    # dom0 keeps a fixed share of memory; the rest is for the zone guests and the driver domain.
    printf 'GRUB_CMDLINE_XEN_DEFAULT="dom0_mem=4096M,max:4096M"\n' > /etc/default/grub.d/vgpu-zone.cfg
    update-grub
fi

lib=$dest/usr/lib/vgpu-zone
mkdir -p "$lib/gpu" "$dest/usr/local/bin" "$dest/etc/vgpu-zone" "$dest/etc/modules-load.d" \
    "$dest/etc/xen"
install -m 0755 "$top/zone-runtime/vgpu-zone-runtime" "$dest/usr/local/bin/"
install -m 0755 "$top/zone-runtime/vgpu-zone-block" "$lib/"
printf 'loop\nxen-blkback\nxen-gntdev\nxen-gntalloc\nxen-evtchn\n' > "$dest/etc/modules-load.d/vgpu-zone.conf"

# The guest kernel: the one given, else ours (make kernel: the drivers built in, no modules),
# else this node's own Debian kernel; its modules go into the guests' initramfs.
if [ -n "$gkernel" ]; then
    [ -n "$gmods" ] || die "--guest-kernel needs --guest-modules DIR (its /lib/modules/VER/kernel, or -)"
    install -m 0644 "$gkernel" "$lib/kernel"
    "$top/zone-runtime/mkinitrd.sh" "$top/zone-runtime/zone-init" "$gmods" "$lib/initrd"
elif [ -f "$top/kernel/build/bzImage-vgpu-guest" ]; then
    install -m 0644 "$top/kernel/build/bzImage-vgpu-guest" "$lib/kernel"
    "$top/zone-runtime/mkinitrd.sh" "$top/zone-runtime/zone-init" - "$lib/initrd"
else
    kver=$(uname -r)
    [ -f "/boot/vmlinuz-$kver" ] || die "no guest kernel: make kernel, or --guest-kernel/--guest-modules"
    install -m 0644 "/boot/vmlinuz-$kver" "$lib/kernel"
    "$top/zone-runtime/mkinitrd.sh" "$top/zone-runtime/zone-init" "/lib/modules/$kver/kernel" \
        "$lib/initrd"
fi

# Our libcuda.so.1 and its Xen transport plugin with the libraries it loads, glibc's excepted
# (the container's image brings glibc).
for l in "$top/libvgpu/libcuda.so.1" "$top/libvgpu/libvgpu-xen.so.1"; do
    cp -L "$l" "$lib/gpu/"
    ldd "$l" | awk '/=> \// { print $3 }' | grep -v '/\(libc\|libm\|libdl\|libpthread\|librt\)\.so' |
        while read -r dep; do cp -L "$dep" "$lib/gpu/"; done
done

conf=$dest/etc/vgpu-zone/runtime.conf
[ -f "$conf" ] || cat > "$conf" <<CONF
# vgpu-zone-runtime's settings (zone-runtime/conf.h lists every key)
kernel = /usr/lib/vgpu-zone/kernel
initrd = /usr/lib/vgpu-zone/initrd
gpu_lib_dir = /usr/lib/vgpu-zone/gpu
hotplug = /usr/lib/vgpu-zone/vgpu-zone-block
# gpu_proxy's admin socket and the domain it runs in (0: dom0). With gpu_proxy in a driver
# domain the admin socket is not reachable from dom0 yet (docs/DEPLOYMENT.md).
proxy_admin = /run/gpu-proxy/admin.sock
proxy_domid = $proxy_domid
# guest memory: the container's limit + overhead_mb, or default_memory_mb without a limit
default_memory_mb = 256
overhead_mb = 64
CONF

if [ -n "$gpu" ]; then
    cat > "$dest/etc/xen/vgpu-driver.cfg" <<CFG
# The GPU driver domain: gpu_proxy with the NVIDIA driver, the GPU passed through.
# Before: xl pci-assignable-add $gpu   Then: xl create /etc/xen/vgpu-driver.cfg
name = "vgpu-driver"
type = "pvh"
kernel = "/usr/lib/vgpu-zone/driver-kernel"
ramdisk = "/usr/lib/vgpu-zone/driver-initrd"
memory = 8192
vcpus = 4
pci = [ "$gpu" ]
on_crash = "restart"
CFG
fi
echo "setup-node: installed under ${dest:-/}; reboot into Xen, then add the vgpu-zone handler" \
     "(k8s/runtime/containerd.toml or crio.conf) and label the node vgpu.dev/xen=true"
