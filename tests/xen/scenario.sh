#!/bin/sh
# tests/xen/scenario.sh - the test cases, run by dom0's /init once the toolstack is up: starts
# the servers in dom0, creates the guest domains (each runs the role given on its command line,
# see guest-init.sh), waits for them under timeouts and prints their consoles and the verdicts.
# Every verdict is one line `XENTEST CASE <name> PASS|FAIL <why>` (run.sh counts them).

. /opt/vgpu/scenario-lib.sh

# ---- transport cases: dom0 echo server, three guests at once ----
# A is served while S scribbles on its rings (the server must cut S off and keep serving A);
# B pings, measures, then asks dom0 to kill the server and reconnects to a new one.
IDM_LOG=info xen_echo > /run/echo.log 2>&1 &
echo_pid=$!
guest_start ta transport-a
guest_start ts scribbler
guest_start tb transport-b
ta=$(domid_of ta); ts=$(domid_of ts); tb=$(domid_of tb)
# S ends connected and idle; destroying its domain must be noticed by the server on its own.
if wait_key /local/domain/$ts/data/test/holding 150 >/dev/null; then
    before=$(wc -l < /run/echo.log)
    xl destroy ts
    i=0
    cut="cut-off domid $ts: gone: guest domain $ts was destroyed"
    while ! tail -n +$((before + 1)) /run/echo.log | grep -q "$cut" && [ $i -lt 120 ]; do
        sleep 0.25; i=$((i + 1))
    done
    if tail -n +$((before + 1)) /run/echo.log | grep -q "$cut"; then
        echo "XENTEST CASE guest-destroyed PASS the server dropped domain $ts's connection when xl destroyed it"
    else
        echo "XENTEST CASE guest-destroyed FAIL the server still holds domain $ts's connection 30 s after xl destroy"
    fi
else
    echo "XENTEST CASE guest-destroyed FAIL guest ts never reached its holding state"
fi
guest_wait ts 30
# A's normal end comes after this line of the server's log; a cut-off before it is harm.
lines_at_stop=$(wc -l < /run/echo.log)
xenstore-write /local/domain/$ta/data/test/stop 1
guest_wait ta 60
xenstore-write /local/domain/$tb/data/test/bench-go 1
wait_key /local/domain/$tb/data/test/kill-echo 150 >/dev/null \
    || echo "XENTEST CASE transport-kill-request FAIL guest tb never asked for the restart"
if kill -0 $echo_pid 2>/dev/null; then
    echo "XENTEST CASE echo-survives PASS the echo server outlived the scribbler"
else
    echo "XENTEST CASE echo-survives FAIL the echo server died"
fi
kill -9 $echo_pid
wait $echo_pid 2>/dev/null
echo "XENTEST dom0 killed the echo server at $(cut -d' ' -f1 /proc/uptime)s"
cat /run/echo.log > /run/echo1.log
IDM_LOG=info xen_echo > /run/echo.log 2>&1 &
echo_pid=$!
guest_wait tb 120
kill $echo_pid; wait $echo_pid 2>/dev/null
sed 's/^/[echo-1] /' /run/echo1.log
sed 's/^/[echo-2] /' /run/echo.log
n=$(grep -c "cut-off domid $ts: protocol error" /run/echo1.log)
g=$(grep -c "cut-off domid $ts: gone: guest domain $ts let go" /run/echo1.log)
if [ "$n" -ge 2 ] && [ "$g" -ge 1 ]; then
    echo "XENTEST CASE scribbler-cut-off PASS domain $ts cut off $n times for protocol errors, $g times gone"
else
    echo "XENTEST CASE scribbler-cut-off FAIL domain $ts: $n protocol cut-offs (want 2), $g gone (want 1)"
fi
harm=$(head -n "$lines_at_stop" /run/echo1.log | grep "cut-off domid $ta:" | head -n 1)
if [ -n "$harm" ]; then
    echo "XENTEST CASE others-unharmed FAIL domain $ta was cut off: $harm"
elif ! grep -q "accepted domid $ta" /run/echo1.log; then
    echo "XENTEST CASE others-unharmed FAIL domain $ta never connected"
else
    echo "XENTEST CASE others-unharmed PASS domain $ta was served without a cut-off while $ts misbehaved"
fi
if grep -q "accepted domid $tb" /run/echo.log; then
    echo "XENTEST CASE driver-restart PASS the restarted server accepted domain $tb again"
else
    echo "XENTEST CASE driver-restart FAIL the restarted server never saw domain $tb"
fi
for g in ta ts tb; do guest_log $g; done

# ---- CUDA cases: gpu_proxy (stub backend) serves two CUDA guests and a scribbler ----
# The guests are created paused so that their domain ids can be mapped to zones first.
missing=$(cat /opt/vgpu/missing 2>/dev/null | tr '\n' ' ')
if [ -n "$missing" ]; then
    echo "XENTEST CASE proxy-serves FAIL not built, so gpu_proxy cannot run: $missing"
else
    XL_CREATE_FLAGS=-p guest_start ca cuda-a vgpu.zone=za
    XL_CREATE_FLAGS=-p guest_start cb cuda-b vgpu.zone=zb
    XL_CREATE_FLAGS=-p guest_start cs proxy-scribbler
    ca=$(domid_of ca); cb=$(domid_of cb); cs=$(domid_of cs)
    mkdir -p /run/gpu-proxy
    # za and zs are bound at start-up; zb is an ordinary zone bound to its guest at run time
    # through the admin socket, as a container runtime does once the domain exists.
    IDM_LOG=info gpu_proxy_stub --listen /run/gpu-proxy --log-level info --xen \
        --xen-zone $ca:za:256M --zone zb:256M --xen-zone $cs:zs:64M \
        > /run/proxy.log 2>&1 &
    proxy_pid=$!
    for _ in $(seq 1 600); do # emulated CPUs: its start may take many seconds
        xen_admin /run/gpu-proxy/admin.sock PING >/dev/null 2>&1 && break
        sleep 0.1
    done
    if out=$(xen_admin /run/gpu-proxy/admin.sock "ATTACH zb xen=$cb") &&
       xen_admin /run/gpu-proxy/admin.sock LIST | grep -q "^zb .* xen=$cb\b"; then
        echo "XENTEST CASE proxy-attach PASS zone zb bound to domain $cb at run time (ATTACH)"
    else
        echo "XENTEST CASE proxy-attach FAIL ATTACH zb xen=$cb answered: $out"
    fi
    for g in ca cb cs; do xl unpause $g; done
    # B tries A's values once A holds them; A checks them after B is done.
    if probe=$(wait_key /local/domain/$ca/data/test/probe 200); then
        xenstore-write /local/domain/$cb/data/test/probe "$probe"
    else
        echo "XENTEST CASE proxy-handover FAIL guest ca never published its values"
    fi
    wait_key /local/domain/$cb/data/test/probed 200 >/dev/null
    guest_wait cs 100
    xenstore-write /local/domain/$ca/data/test/release 1
    guest_wait cb 100
    guest_wait ca 100
    if kill -0 $proxy_pid 2>/dev/null; then
        echo "XENTEST CASE proxy-serves PASS gpu_proxy served every guest and is still running"
    else
        echo "XENTEST CASE proxy-serves FAIL gpu_proxy died"
    fi
    if out=$(xen_admin /run/gpu-proxy/admin.sock "DETACH zb") &&
       xen_admin /run/gpu-proxy/admin.sock LIST | grep -q "^zb .* xen=-1\b"; then
        echo "XENTEST CASE proxy-detach PASS zone zb unbound from domain $cb (DETACH)"
    else
        echo "XENTEST CASE proxy-detach FAIL DETACH zb answered: $out"
    fi
    kill $proxy_pid; wait $proxy_pid 2>/dev/null
    sed 's/^/[proxy] /' /run/proxy.log
    n=$(grep -c "xen server domid $cs\b.*disconnecting" /run/proxy.log)
    if [ "$n" -ge 2 ]; then
        echo "XENTEST CASE proxy-cut-off PASS gpu_proxy cut domain $cs off $n times for corrupting its ring"
    else
        echo "XENTEST CASE proxy-cut-off FAIL gpu_proxy cut domain $cs off $n times (want 2)"
    fi
    for z in "za $ca" "zb $cb"; do
        set -- $z
        if grep -q "zone=$1 domid=$2: guest accepted" /run/proxy.log; then
            echo "XENTEST CASE proxy-zone-$1 PASS domain $2 was served as zone $1 (its domid, from xenstore)"
        else
            echo "XENTEST CASE proxy-zone-$1 FAIL gpu_proxy never accepted domain $2 as zone $1"
        fi
    done
    for g in ca cb cs; do guest_log $g; done
fi

# ---- the container runtime: containers in zone guests (zone.sh) ----
. /opt/vgpu/zone.sh
