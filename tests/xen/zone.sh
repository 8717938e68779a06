#!/bin/sh
# tests/xen/zone.sh - the container runtime's cases (issue 15), run in dom0 after scenario.sh's
# (or alone with XEN_SCENARIO=zone): zone_engine, which does what conmon does for podman, runs
# OCI bundles (made from `runc spec`) with vgpu-zone-runtime, each container in its own Xen
# guest; gpu_proxy_stub serves zones ra and rb, bound to the guests at run time by the runtime.
# Two zone containers run at once, one is killed mid-run; a container without a zone brings
# its own libcuda.so.1 and still finds no device; the same program under runc gives the
# start-up figure to compare with.
. /opt/vgpu/scenario-lib.sh
. /opt/vgpu/zone-lib.sh

if [ -n "$zone_missing" ]; then
    for c in zone-runtime-features zone-attach zone-kill zone-released zone-exit-status \
             zone-stdout zone-nogpu-refused zone-cleanup; do
        verdict $c FAIL "not built: $zone_missing"
    done
    return 0 2>/dev/null || exit 0
fi

if $rt features | grep -q '"ociVersionMax"'; then
    verdict zone-runtime-features PASS "vgpu-zone-runtime features answers an OCI features document"
else
    verdict zone-runtime-features FAIL "vgpu-zone-runtime features gave no OCI features document"
fi

mkdir -p /etc/vgpu-zone /run/gpu-proxy
cat > /etc/vgpu-zone/runtime.conf <<CONF
kernel = /opt/vgpu/guest/kernel
initrd = /opt/vgpu/zone/initrd
gpu_lib_dir = /opt/vgpu/zone/gpu
hotplug = /opt/vgpu/zone/vgpu-zone-block
proxy_admin = $admin
default_memory_mb = 192
CONF
IDM_LOG=info gpu_proxy_stub --listen /run/gpu-proxy --log-level info --xen \
    --zone ra:64M --zone rb:64M > /run/zproxy.log 2>&1 &
proxy_pid=$!
for _ in $(seq 1 600); do
    xen_admin $admin PING >/dev/null 2>&1 && break
    sleep 0.1
done

lib=/opt/vgpu/zone/rootfs/opt/own-lib
mkbundle ra ', "VGPU_ZONE=ra"' '"/bin/zone_app", "rt-a", "compute", "64", "3"'
mkbundle rb ', "VGPU_ZONE=rb"' '"/bin/zone_app", "rt-b", "spin"'
mkbundle rn ', "VGPU_TRANSPORT=xen", "VGPU_SOCKET=0:data/vgpu", "LD_LIBRARY_PATH=/opt/own-lib", "IDM_XEN_CONNECT_TIMEOUT_MS=5000"' \
    '"/bin/zone_app", "rt-nogpu", "nodevice"'
mkbundle rc '' '"/bin/zone_app", "rt-runc", "nodevice"'
[ -d $lib ] || verdict zone-nogpu-refused FAIL "the image has no libcuda.so.1 of its own in $lib"

echo "XENTEST zone: two zone containers at $(cut -d' ' -f1 /proc/uptime)s"
heartbeat &
hb_pid=$!
zone_engine $rt $root /run/bundles/ra ra > /run/eng-ra.log 2>&1 &
zone_engine $rt $root /run/bundles/rb rb > /run/eng-rb.log 2>&1 &
i=0
while ! grep -q 'rt-b: spinning\|XENTEST ENGINE rb \(exit\|.*failed\)' /run/eng-rb.log && [ $i -lt 300 ]; do
    sleep 0.5; i=$((i + 1))
done
rb_dom=$(sed -n 's/^domid=//p' $root/rb/state 2>/dev/null)
if grep -q 'rt-b: spinning' /run/eng-rb.log &&
   xen_admin $admin LIST | grep -q "^rb .* xen=$rb_dom\b"; then
    verdict zone-attach PASS "container rb runs CUDA in domain $rb_dom, zone rb bound to it (LIST)"
    rb_bound=1
else
    verdict zone-attach FAIL "container rb never ran its kernels in zone rb (domain '$rb_dom')"
    zone_diag
fi
$rt --root $root kill rb KILL || echo "XENTEST zone: vgpu-zone-runtime kill rb KILL failed"
engine_wait rb 60
if [ "$(engine_exit rb)" = 137 ] && grep -q 'XENTEST ENGINE rb deleted' /run/eng-rb.log &&
   ! xl list vz-rb >/dev/null 2>&1; then
    verdict zone-kill PASS "killed mid-run: exit status 137 to the engine, domain $rb_dom gone, deleted"
else
    verdict zone-kill FAIL "after kill: exit '$(engine_exit rb)' (want 137), domain vz-rb $(xl list vz-rb >/dev/null 2>&1 && echo still there || echo gone)"
fi
if [ -n "${rb_bound:-}" ] && xen_admin $admin LIST | grep -q "^rb .* xen=-1\b"; then
    verdict zone-released PASS "zone rb unbound (LIST xen=-1) once its container was deleted"
else
    verdict zone-released FAIL "zone rb still bound: $(xen_admin $admin LIST | grep '^rb ')"
fi
engine_wait ra 240
if [ "$(engine_exit ra)" = 3 ]; then
    verdict zone-exit-status PASS "container ra's exit status 3 came back through the monitor"
else
    verdict zone-exit-status FAIL "container ra's exit status: '$(engine_exit ra)' (want 3)"
fi
if grep -q '^\[ra\] zone_app rt-a: started' /run/eng-ra.log &&
   grep -q '^\[ra\] XENTEST CASE rt-a-compute' /run/eng-ra.log; then
    verdict zone-stdout PASS "container ra's stdout reached the engine ($(first_ms ra) ms to its first line)"
else
    verdict zone-stdout FAIL "container ra's output did not reach the engine"
fi

echo "XENTEST zone: a container without a zone at $(cut -d' ' -f1 /proc/uptime)s"
zone_engine $rt $root /run/bundles/rn rn > /run/eng-rn.log 2>&1
others=$(grep 'guest accepted' /run/zproxy.log | grep -cv 'zone=r[ab] ')
if [ "$(engine_exit rn)" = 0 ] && grep -q 'XENTEST CASE rt-nogpu-nodevice PASS' /run/eng-rn.log &&
   [ "$others" = 0 ]; then
    verdict zone-nogpu-refused PASS "no device without a zone, even with the image's own libcuda.so.1 and VGPU_TRANSPORT=xen; gpu_proxy accepted no guest outside zones ra and rb"
else
    verdict zone-nogpu-refused FAIL "the zone-less container: exit '$(engine_exit rn)', $others guests accepted outside ra/rb"
fi

echo "XENTEST zone: the same program under runc at $(cut -d' ' -f1 /proc/uptime)s"
mkdir -p /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
zone_engine --no-pivot runc /run/runc-root /run/bundles/rc rc > /run/eng-rc.log 2>&1
echo "XENTEST FIGURE first-line-ms zone(alone)=$(first_ms rn) zone(two at once)=$(first_ms ra) runc=$(first_ms rc) (runc exit '$(engine_exit rc)')"

kill $hb_pid 2>/dev/null
left=$(ls $root 2>/dev/null | tr '\n' ' ')
doms=$(xl list | grep -c '^vz-')
if [ -z "$left" ] && [ "$doms" = 0 ]; then
    verdict zone-cleanup PASS "no container state and no zone domain left"
else
    verdict zone-cleanup FAIL "left behind: state '$left', $doms vz- domains"
    zone_diag
fi
kill $proxy_pid; wait $proxy_pid 2>/dev/null
# The containers' own lines carry their verdicts (rt-a-*, rt-nogpu-*); runc's container is
# only the figure.
for c in ra rb rn; do sed "s/^/[eng-$c] /" /run/eng-$c.log; done
grep '^XENTEST ENGINE' /run/eng-rc.log | sed 's/^/[eng-rc] /'

grep -a 'zone=r[ab]\|domid' /run/zproxy.log | sed 's/^/[zproxy] /' | tail -n 30
