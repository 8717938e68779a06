#!/bin/sh
# tests/xen/podman.sh - the container runtime driven by podman (issue 15), run alone in dom0 by
# `make -C tests/xen test-podman` (XEN_SCENARIO=podman; too slow under TCG for make test-xen): zone_engine (what conmon does for podman, with its own
# timing) runs OCI bundles made from `runc spec` with vgpu-zone-runtime, each container in its
# own Xen guest; gpu_proxy_stub serves zones ra and rb, bound to the guests at run time by the
# runtime. Two zone containers run at once, one is killed mid-run; a container without a zone
# brings its own libcuda.so.1 and still finds no device. Then podman 4.3 (with conmon) does the
# same with --runtime vgpu-zone-runtime: run attached (CUDA, quota, stdout, exit status), run
# -d + kill + wait + rm; podman --runtime runc and zone_engine with runc give the start-up
# figures to compare with.
. /opt/vgpu/scenario-lib.sh
. /opt/vgpu/zone-lib.sh

if [ -n "$zone_missing" ]; then
    for c in zone-runtime-features zone-attach podman-kill zone-released podman-zone-run \
             zone-nogpu-refused zone-cleanup; do
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
mkbundle rn ', "VGPU_TRANSPORT=xen", "VGPU_SOCKET=0:data/vgpu", "LD_LIBRARY_PATH=/opt/own-lib", "IDM_XEN_CONNECT_TIMEOUT_MS=5000"' \
    '"/bin/zone_app", "rt-nogpu", "nodevice"'
[ -d $lib ] || verdict zone-nogpu-refused FAIL "the image has no libcuda.so.1 of its own in $lib"

heartbeat &
hb_pid=$!
echo "XENTEST zone: a container without a zone at $(cut -d' ' -f1 /proc/uptime)s"
zone_engine $rt $root /run/bundles/rn rn > /run/eng-rn.log 2>&1
others=$(grep 'guest accepted' /run/zproxy.log | grep -cv 'zone=r[ab] ')
if [ "$(engine_exit rn)" = 0 ] && grep -q 'XENTEST CASE rt-nogpu-nodevice PASS' /run/eng-rn.log &&
   [ "$others" = 0 ]; then
    verdict zone-nogpu-refused PASS "no device without a zone, even with the image's own libcuda.so.1 and VGPU_TRANSPORT=xen; gpu_proxy accepted no guest outside zones ra and rb"
else
    verdict zone-nogpu-refused FAIL "the zone-less container: exit '$(engine_exit rn)', $others guests accepted outside ra/rb"
fi

mkdir -p /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null

# ---- podman (with conmon) as the engine: --runtime vgpu-zone-runtime ----
# pod_run NAME RUNTIME ENV ARGS...: podman run, attached (ENV: "-e K=V" or ""; podman's
# options come before --rootfs's directory); its stdout to /run/pod-NAME.log, the uptime of its
# first line to /run/pod-NAME.first, its exit status as the log's last line.
pod_run() {
    n=$1; r=$2; e=$3; shift 3
    cut -d' ' -f1 /proc/uptime > /run/pod-$n.t0
    # shellcheck disable=SC2086
    { podman --runtime $r run --name $n --network none $e --rootfs /opt/vgpu/zone/rootfs "$@" \
          2>/run/pod-$n.err; echo "PODMAN-EXIT $?"; } |
        while IFS= read -r l; do
            [ -f /run/pod-$n.first ] || cut -d' ' -f1 /proc/uptime > /run/pod-$n.first
            echo "$l"
        done > /run/pod-$n.log
}
pod_ms() { awk -v a="$(cat /run/pod-$1.t0)" -v b="$(cat /run/pod-$1.first 2>/dev/null)" 'BEGIN { if (b) printf "%d", (b - a) * 1000 }'; }
prt=/opt/vgpu/bin/vgpu-zone-runtime
echo "XENTEST zone: podman, two zone containers at $(cut -d' ' -f1 /proc/uptime)s"
podman --runtime $prt run -d --name pb --network none -e VGPU_ZONE=rb \
    --rootfs /opt/vgpu/zone/rootfs /bin/zone_app rt-pb spin > /run/pod-pb.id 2>/run/pod-pb.err
pod_run pa $prt "-e VGPU_ZONE=ra" /bin/zone_app rt-pa compute 64 4 &
pa_job=$!
# conmon's log of pb (k8s-file); read directly: each podman command costs seconds under TCG.
pb_id=$(cat /run/pod-pb.id)
pb_log=/run/containers/storage/vfs-containers/$pb_id/userdata/ctr.log
i=0
while [ -n "$pb_id" ] && ! grep -q 'rt-pb: spinning' "$pb_log" 2>/dev/null && [ $i -lt 480 ]; do
    sleep 0.5; i=$((i + 1))
done
pb_dom=$(xl domid "vz-$pb_id" 2>/dev/null)
if grep -q 'rt-pb: spinning' "$pb_log" 2>/dev/null &&
   xen_admin $admin LIST | grep -q "^rb .* xen=$pb_dom\b"; then
    verdict zone-attach PASS "podman's container pb runs CUDA kernels in domain $pb_dom, zone rb bound to it (LIST)"
else
    verdict zone-attach FAIL "podman's container pb never ran its kernels in zone rb (domain '$pb_dom'; $(tail -n 2 /run/pod-pb.err | tr '\n' ' '))"
    zone_diag
fi
podman kill pb > /dev/null 2>>/run/pod-pb.err
code=$(podman wait pb 2>>/run/pod-pb.err)
if [ "$code" = 137 ] && [ -n "$pb_dom" ] && ! xl list "$pb_dom" >/dev/null 2>&1; then
    verdict podman-kill PASS "podman kill of the running zone container pb (while pa runs): podman wait gives 137, domain $pb_dom gone"
else
    verdict podman-kill FAIL "podman kill/wait: exit '$code', domain '$pb_dom'; $(tail -n 3 /run/pod-pb.err | tr '\n' ' ')"
fi
podman rm pb > /dev/null 2>>/run/pod-pb.err
if [ -n "$pb_dom" ] && xen_admin $admin LIST | grep -q "^rb .* xen=-1\b"; then
    verdict zone-released PASS "zone rb unbound (LIST xen=-1) after podman rm"
else
    verdict zone-released FAIL "zone rb after podman rm: $(xen_admin $admin LIST | grep '^rb ')"
fi
wait $pa_job
if grep -q '^PODMAN-EXIT 4$' /run/pod-pa.log && grep -q 'XENTEST CASE rt-pa-compute' /run/pod-pa.log; then
    verdict podman-zone-run PASS "podman run --runtime vgpu-zone-runtime: CUDA in zone ra finished while pb was killed, stdout and exit status 4 back through conmon ($(pod_ms pa) ms to the first line)"
else
    verdict podman-zone-run FAIL "podman run: $(tail -n 3 /run/pod-pa.log | tr '\n' ' ') $(tail -n 3 /run/pod-pa.err | tr '\n' ' ')"
fi
echo "XENTEST zone: podman with runc at $(cut -d' ' -f1 /proc/uptime)s"
pod_run pr runc "" /bin/zone_app rt-runc nodevice
echo "XENTEST FIGURE first-line-ms podman+vgpu-zone-runtime=$(pod_ms pa) (beside another zone guest) podman+runc=$(pod_ms pr) zone_engine+vgpu-zone-runtime=$(first_ms rn) (alone; create $(sed -n 's/^XENTEST ENGINE rn created-ms=\([0-9]*\).*/\1/p' /run/eng-rn.log) ms)"
grep -v 'rt-runc' /run/pod-pa.log | sed 's/^/[pod-pa] /'
tail -n 5 /run/pod-pa.err /run/pod-pb.err /run/pod-pr.err 2>/dev/null | sed 's/^/[pod-err] /'

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
sed "s/^/[eng-rn] /" /run/eng-rn.log

grep -a 'zone=r[ab]\|domid' /run/zproxy.log | sed 's/^/[zproxy] /' | tail -n 30
