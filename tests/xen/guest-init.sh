#!/bin/sh
# tests/xen/guest-init.sh - /init of the test's guest domains: mounts the pseudo file systems,
# loads the Xen drivers the transport needs, runs the role named by vgpu.role= on the kernel
# command line (see scenario.sh) and powers off, which destroys the domain.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/opt/vgpu/bin
export LD_LIBRARY_PATH=/opt/vgpu/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
# gntalloc's default limit (1024 grants in all) is below one connection's 2565 pages.
insmod /lib/modules/xen/xen-evtchn.ko 2>/dev/null
insmod /lib/modules/xen/xen-gntdev.ko 2>/dev/null
insmod /lib/modules/xen/xen-gntalloc.ko limit=65536 2>/dev/null
# A GUEST_KERNEL with the drivers built in ignores the modules above; raise its limit here.
[ -w /sys/module/xen_gntalloc/parameters/limit ] && echo 65536 > /sys/module/xen_gntalloc/parameters/limit
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^vgpu\.$1=//p" | head -n1; }
role=$(arg role)
domid=$(xenstore-read domid 2>/dev/null)
echo "XENTEST guest role=$role domid=$domid up $(cut -d' ' -f1 /proc/uptime)s"
for d in evtchn gntalloc gntdev; do
    [ -e /dev/xen/$d ] || echo "XENTEST guest: /dev/xen/$d is missing"
done
case "$role" in
hello)
    # Phase-1 smoke test: a value goes guest -> dom0 and an answer comes back, via xenstore.
    xenstore-write data/hello "hello-from-$domid"
    i=0
    while [ $i -lt 80 ]; do
        ans=$(xenstore-read data/answer 2>/dev/null) && break
        sleep 0.25; i=$((i + 1))
    done
    if [ "$ans" = "answer-for-$domid" ]; then
        echo "XENTEST CASE hello-guest PASS got '$ans' from dom0"
    else
        echo "XENTEST CASE hello-guest FAIL no answer from dom0 (got '$ans')"
    fi
    ;;
transport-a)
    # Kept busy while the scribbler misbehaves; dom0 writes data/test/stop afterwards.
    timeout 200 xen_guest serve-until transport-served
    ;;
transport-b)
    timeout 60 xen_guest ping 200
    # The measurement waits until the other transport guests are done (dom0 says so).
    i=0
    while ! xenstore-read data/test/bench-go >/dev/null 2>&1 && [ $i -lt 800 ]; do
        sleep 0.25; i=$((i + 1))
    done
    timeout 60 xen_guest bench
    timeout 300 xen_guest reconnect
    ;;
scribbler)
    timeout 120 xen_guest scribble
    timeout 150 xen_guest hostile-offers
    # Stays connected; dom0 destroys this domain under the open connection.
    timeout 150 xen_guest hold
    ;;
cuda-a|cuda-b)
    # CUDA through libcuda.so.1 (libvgpu) to gpu_proxy in dom0 over the Xen transport.
    zone=$(arg zone)
    if [ -s /opt/vgpu/missing ]; then
        echo "XENTEST CASE $zone-device FAIL not built: $(tr '\n' ' ' < /opt/vgpu/missing)"
    elif [ "$role" = cuda-a ]; then
        # Holds a secret allocation and a stream; dom0 hands their values to the other guest.
        VGPU_TRANSPORT=xen VGPU_SOCKET=0:data/vgpu timeout 280 \
            cuda_zone "$zone" hold /tmp/probe /tmp/release &
        pid=$!
        i=0
        while [ ! -s /tmp/probe ] && [ $i -lt 480 ] && kill -0 $pid 2>/dev/null; do
            sleep 0.25; i=$((i + 1))
        done
        [ -s /tmp/probe ] && xenstore-write data/test/probe "$(cat /tmp/probe)"
        i=0
        while ! xenstore-read data/test/release >/dev/null 2>&1 && [ $i -lt 600 ] \
              && kill -0 $pid 2>/dev/null; do
            sleep 0.25; i=$((i + 1))
        done
        touch /tmp/release
        wait $pid
    else
        VGPU_TRANSPORT=xen VGPU_SOCKET=0:data/vgpu timeout 200 cuda_zone "$zone"
        i=0
        while ! probe=$(xenstore-read data/test/probe 2>/dev/null) && [ $i -lt 600 ]; do
            sleep 0.25; i=$((i + 1))
        done
        if [ -n "$probe" ]; then
            VGPU_SOCKET=0:data/vgpu timeout 120 xen_probe "$zone" $probe
        else
            echo "XENTEST CASE $zone-probe-control FAIL dom0 never passed the other guest's values"
        fi
        xenstore-write data/test/probed 1
    fi
    ;;
proxy-scribbler)
    if [ -s /opt/vgpu/missing ]; then
        echo "XENTEST CASE proxy-scribble-ring-index FAIL not built: $(tr '\n' ' ' < /opt/vgpu/missing)"
    else
        VGPU_SOCKET=0:data/vgpu timeout 150 xen_guest scribble-proxy proxy-scribble
    fi
    ;;
*)
    echo "XENTEST CASE guest-$role FAIL unknown role '$role'"
    ;;
esac
echo "XENTEST guest done $(cut -d' ' -f1 /proc/uptime)s"
sync
poweroff -f
