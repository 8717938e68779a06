#!/usr/bin/env bash
# tests/chain/run.sh - gpu_proxy's real CUDA backend (the worker that forwards to NVIDIA's
# driver) tested without a GPU: tests/chain/chain-proxy puts this repository's libcuda.so.1 in
# the driver's place, in front of a gpu_proxy_stub. Runs (1) the kernels suite and (2) the
# libvgpu end-to-end suite through the chain, (3) every kernel and libvgpu e2e program in two
# zones at once, (4) fault containment: an out-of-bounds kernel in zone a while zone b
# computes; a's worker (whose context is lost) is replaced, b finishes correctly, a's next
# program works; zone a's kernel on zone b's address; a killed client's never-ending kernel;
# LLVM mapped by the stub's workers only; a stub without its translator; module globals
# against the quota; (5) gpu_proxy's test_cuda with the chain's driver; (6) the
# GPU's own figures with a stand-in for NVIDIA's libnvidia-ml.so.1, and without one.
# Prints "N passed, N failed" last.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
chain="$top/tests/chain/chain-proxy"
kbuild="$top/tests/kernels/build"
work=$(mktemp -d "${TMPDIR:-/tmp}/chain-test.XXXXXX") || exit 1
pass=0; fail=0; proxy=""
ok() { pass=$((pass + 1)); echo "PASS  $1"; }
ko() { fail=$((fail + 1)); echo "FAIL  $1: $2"; [[ -n "${3:-}" && -f "$3" ]] && tail -30 "$3" | sed 's/^/      | /'; }
cleanup() {
    [[ -n "$proxy" ]] && kill -TERM "$proxy" 2>/dev/null && wait "$proxy" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# Fixtures: always the plain builds (a SANITIZE from the top-level make is overridden).
for c in gpu-proxy libvgpu tests/kernels; do
    if ! make --no-print-directory -C "$top/$c" SANITIZE= all >"$work/build.log" 2>&1; then
        echo "chain: building $c failed:"; tail -20 "$work/build.log"
        echo "chain: 0 passed, 1 failed"; exit 1
    fi
done

# (1) and (2): the suites, each program with a chain of its own through bin/vgpu-run.
if make --no-print-directory -C "$top/tests/kernels" SANITIZE= test \
        VGPU_RUN_FLAGS="--proxy $chain" >"$work/kernels.log" 2>&1; then
    ok "kernels suite through the chain ($(tail -1 "$work/kernels.log"))"
else
    ko "kernels suite through the chain" "$(tail -1 "$work/kernels.log")" "$work/kernels.log"
fi
if SANITIZE= VGPU_RUN_FLAGS="--proxy $chain" "$top/tests/libvgpu/run-e2e.sh" >"$work/e2e.log" 2>&1; then
    ok "libvgpu e2e suite through the chain ($(tail -1 "$work/e2e.log"))"
else
    ko "libvgpu e2e suite through the chain" "$(tail -1 "$work/e2e.log")" "$work/e2e.log"
fi

# One chain with two zones for (3) and (4).
dir="$work/proxy"
mkdir -p "$dir"
"$chain" --backend stub --listen "$dir" --zone a:1G --zone b:1G --log-level info \
    --metrics "$dir/metrics.sock" >"$work/proxy.log" 2>&1 &
proxy=$!
admin_at() { # socket request -> the whole answer
    printf '%s\n' "$2" | python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
out=b""
while True:
    d=s.recv(65536)
    if not d: break
    out+=d
print(out.decode(), end="")' "$1"
}
for _ in $(seq 1 200); do
    [[ $(admin_at "$dir/admin.sock" PING 2>/dev/null) == OK* ]] && break
    sleep 0.05
done
admin() { admin_at "$dir/admin.sock" "$1"; }
scrape() { # metrics socket -> the body of GET /metrics
    admin_at "$1" $'GET /metrics HTTP/1.0\r\n\r' | sed '1,/^\r$/d'
}
in_zone() { # zone program log
    LD_LIBRARY_PATH="$top/libvgpu" VGPU_SOCKET="$dir/$1.sock" VGPU_TRANSPORT=posix \
        timeout 300 "$2" >"$3" 2>&1
}
field() { # zone key -> value from LIST
    admin LIST | awk -v z="$1" -v k="$2" '$1 == z { for (i = 5; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == k) print kv[2] } }'
}

both_zones() { # label program: runs it in zones a and b at the same time
    local n ia ra rb
    n=$(basename "$2")
    in_zone a "$2" "$work/$n.a.log" & ia=$!
    in_zone b "$2" "$work/$n.b.log"; rb=$?
    wait $ia; ra=$?
    if [[ $ra -eq 0 && $rb -eq 0 ]]; then ok "$1 in zones a and b at once"
    else ko "$1 in zones a and b at once" "zone a exit $ra, zone b exit $rb" \
        "$work/$n.$([[ $ra -ne 0 ]] && echo a || echo b).log"; fi
}

# (3) every kernel program in zones a and b at the same time
for p in "$kbuild"/*; do
    [[ -x "$p" && "$p" != *.log ]] || continue
    n=$(basename "$p")
    [[ $n == out_of_bounds* ]] && continue # (4) runs it
    both_zones "$n" "$p"
done

# (3b) the libvgpu e2e programs (built by (2)) in zones a and b at the same time; those that
# need a special set-up (no proxy, a quota, the advertised properties, cuBLAS's outcome) ran in (2)
for p in "$top"/libvgpu/build/e2e/t_*-static "$top"/libvgpu/build/e2e/t_*-shared; do
    n=$(basename "$p")
    [[ -x "$p" ]] || continue
    case "$n" in t_noproxy-*|t_errors-*|t_props-*|t_cublas-*) continue ;; esac
    both_zones "libvgpu e2e $n" "$p"
done

# (4) fault containment
restarts0=$(field a restarts); pid0=$(field a pid)
in_zone a "$kbuild/out_of_bounds" "$work/oob.a.log" & ia=$!
in_zone b "$kbuild/matmul_shared" "$work/mm.b.log"; rb=$?
wait $ia; ra=$?
if [[ $ra -eq 0 ]] && grep -q cudaErrorIllegalAddress "$work/oob.a.log"; then
    ok "zone a's out-of-bounds kernel gets cudaErrorIllegalAddress"
else ko "zone a's out-of-bounds kernel" "exit $ra" "$work/oob.a.log"; fi
if [[ $rb -eq 0 ]]; then ok "zone b's matmul meanwhile: correct results"
else ko "zone b's matmul meanwhile" "exit $rb" "$work/mm.b.log"; fi
for _ in $(seq 1 100); do
    [[ "$(field a state)" == ready && "$(field a pid)" != "$pid0" ]] && break
    sleep 0.1
done
if [[ "$(field a restarts)" == $((restarts0 + 1)) && "$(field a pid)" != "$pid0" ]]; then
    ok "zone a's worker retired and was replaced (LIST: pid $pid0 -> $(field a pid), restarts=$(field a restarts))"
else ko "zone a's worker replaced" "LIST: $(admin LIST | grep '^a ')" "$work/proxy.log"; fi
if in_zone a "$kbuild/vector_add" "$work/va.a.log"; then ok "zone a's next program works"
else ko "zone a's next program" "failed" "$work/va.a.log"; fi

# (4b) the cross-zone attack: zone b holds data, zone a's kernel reads and writes b's address
# (learned out of band). Each worker has its own context, so a's kernel faults; b's data stays.
peek="$work/peek"
if "${NVCC:-/usr/local/cuda/bin/nvcc}" -O2 -o "$peek" "$top/tests/chain/peek.cu" >"$work/peek.build.log" 2>&1; then
    mkfifo "$work/hold.in"
    LD_LIBRARY_PATH="$top/libvgpu" VGPU_SOCKET="$dir/b.sock" VGPU_TRANSPORT=posix \
        timeout 300 "$peek" hold <"$work/hold.in" >"$work/hold.log" 2>&1 & hold=$!
    exec 7>"$work/hold.in"
    addr=""
    for _ in $(seq 1 300); do
        addr=$(awk '$1 == "ADDR" { print $2 }' "$work/hold.log")
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    if [[ -n "$addr" ]] && LD_LIBRARY_PATH="$top/libvgpu" VGPU_SOCKET="$dir/a.sock" \
            VGPU_TRANSPORT=posix timeout 300 "$peek" read "$addr" >"$work/peek.a.log" 2>&1; then
        ok "zone a's kernel on zone b's address $addr: cudaErrorIllegalAddress"
    else ko "zone a's kernel on zone b's address '$addr'" "it was not stopped" "$work/peek.a.log"; fi
    echo go >&7; exec 7>&-
    if wait $hold; then ok "zone b's data intact after zone a's attempt"
    else ko "zone b's data after zone a's attempt" "changed or unreadable" "$work/hold.log"; fi
    # (4c) a never-ending kernel whose client is killed: a real GPU cannot cancel it, so a's
    # worker must end (and its context with it); a's next program works.
    restarts0=$(field a restarts)
    LD_LIBRARY_PATH="$top/libvgpu" VGPU_SOCKET="$dir/a.sock" VGPU_TRANSPORT=posix \
        "$peek" spin >"$work/spin.log" 2>&1 & spinner=$!
    for _ in $(seq 1 300); do grep -q LAUNCHED "$work/spin.log" && break; sleep 0.1; done
    sleep 0.5
    kill -KILL $spinner; wait $spinner 2>/dev/null
    t0=$(date +%s%N)
    for _ in $(seq 1 150); do
        [[ "$(field a restarts)" == $((restarts0 + 1)) && "$(field a state)" == ready ]] && break
        sleep 0.1
    done
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    if [[ "$(field a restarts)" == $((restarts0 + 1)) ]] &&
            grep -q "left with work still running" "$work/proxy.log"; then
        ok "zone a's client killed with a kernel running: the worker ended it ($ms ms)"
    else ko "zone a's orphaned kernel" "LIST: $(admin LIST | grep '^a ')" "$work/proxy.log"; fi
    if in_zone a "$kbuild/vector_add" "$work/va2.a.log"; then ok "zone a's next program works"
    else ko "zone a's program after the orphaned kernel" "failed" "$work/va2.a.log"; fi
else ko "building tests/chain/peek.cu" "nvcc failed" "$work/peek.build.log"; fi

if grep -q "seccomp denied" "$work/proxy.log"; then
    ko "no system call denied to the cuda workers" "$(grep -m1 'seccomp denied' "$work/proxy.log")"
else ok "no system call denied to the cuda workers' sandbox"; fi

# (4e) LLVM (the PTX translator, libvgpu-ptxjit.so) is mapped by the stub's workers only: not by
# a supervisor, nor by the cuda workers (the outer proxy), which run no PTX.
maps_has() { grep -q "$2" "/proc/$1/maps"; }
parent_of() { awk '{ print $4 }' "/proc/$1/stat" 2>/dev/null; }
cpid=$(field a pid); csup=$(parent_of "$cpid")
ipid=$(admin_at "$dir/inner/admin.sock" LIST | awk '$1 == "chain" { for (i = 5; i <= NF; i++) if ($i ~ /^pid=/) print substr($i, 5) }')
isup=$(parent_of "$ipid")
readable=1
for p in "$cpid" "$csup" "$ipid" "$isup"; do [[ -n "$p" && -r /proc/$p/maps ]] || readable=0; done
if [[ $readable == 1 ]] && maps_has "$ipid" libLLVM && maps_has "$ipid" libvgpu-ptxjit &&
        ! maps_has "$cpid" libLLVM && ! maps_has "$csup" libLLVM && ! maps_has "$isup" libLLVM; then
    ok "LLVM is mapped by the stub's worker (pid $ipid) only: not by the cuda worker ($cpid) nor the supervisors ($csup, $isup)"
else ko "who maps LLVM" "stub worker '$ipid', cuda worker '$cpid', supervisors '$csup' '$isup'"; fi

# (4f) without the translator beside it, a gpu_proxy_stub says so once and interprets
bare="$work/bare"
mkdir -p "$bare/p"
cp "$top/gpu-proxy/gpu_proxy_stub" "$bare/"
"$bare/gpu_proxy_stub" --listen "$bare/p" --zone a:1G --log-level info >"$bare/proxy.log" 2>&1 &
bpid=$!
for _ in $(seq 1 200); do [[ -S "$bare/p/a.sock" ]] && break; sleep 0.05; done
if LD_LIBRARY_PATH="$top/libvgpu" VGPU_SOCKET="$bare/p/a.sock" VGPU_TRANSPORT=posix         timeout 300 "$kbuild/vector_add" >"$bare/va.log" 2>&1 &&
        [[ $(grep -c 'translator=off, kernels run in the interpreter: no libvgpu-ptxjit.so' "$bare/proxy.log") == 1 ]]; then
    ok "without libvgpu-ptxjit.so: translator=off logged once with why, kernels interpreted"
else ko "gpu_proxy_stub without its translator" "$(grep -m1 translator "$bare/proxy.log")" "$bare/va.log"; fi
kill -TERM "$bpid" 2>/dev/null; wait "$bpid" 2>/dev/null

# (4d) module globals are charged to the quota: a 512 MiB __device__ array in a 256 MiB zone.
if "${NVCC:-/usr/local/cuda/bin/nvcc}" -O2 -o "$work/globals" "$top/tests/chain/globals.cu" \
        >"$work/globals.build.log" 2>&1; then
    if "$top/bin/vgpu-run" --quota 256M --proxy "$chain" --keep-log "$work/globals.proxy.log" \
            -- "$work/globals" >"$work/globals.log" 2>&1 &&
            grep -q "module globals" "$work/globals.proxy.log"; then
        ok "a module with a 512 MiB global in a 256 MiB zone is refused; the zone still works"
    else ko "module globals against the quota" "not refused by the worker" "$work/globals.log"; fi
else ko "building tests/chain/globals.cu" "nvcc failed" "$work/globals.build.log"; fi

# (5) gpu_proxy's own real-backend test (tests/proxy/test_cuda.c, which skips where no driver
# loads) with this repository's libcuda.so.1 as the driver, in front of an inner stub.
tc="$top/gpu-proxy/build/cc/tests/test_cuda"
if make --no-print-directory -C "$top/gpu-proxy" SANITIZE= build/cc/tests/test_cuda >"$work/tc.build.log" 2>&1; then
    mkdir -p "$work/inner"
    "$top/gpu-proxy/gpu_proxy_stub" --backend stub --listen "$work/inner" --zone chain \
        --log-level warn >"$work/inner.log" 2>&1 & inner=$!
    for _ in $(seq 1 200); do [[ -S "$work/inner/chain.sock" ]] && break; sleep 0.05; done
    if LD_LIBRARY_PATH="$top/libvgpu" VGPU_SOCKET="$work/inner/chain.sock" VGPU_TRANSPORT=posix \
            timeout 300 "$tc" "$top/gpu-proxy/gpu_proxy" >"$work/tc.log" 2>&1; then
        ok "test_cuda through the chain ($(grep -c '^\[       OK' "$work/tc.log") cases)"
    else ko "test_cuda through the chain" "exit status $?" "$work/tc.log"; fi
    kill -TERM "$inner" 2>/dev/null; wait "$inner" 2>/dev/null
else ko "building test_cuda" "failed" "$work/tc.build.log"; fi

# (6) the GPU's own figures. Without NVML (the chain above): nvml=0, no NVML series, one log
# line saying why. With tests/chain/nvml_fixture.c as libnvidia-ml.so.1: exactly its figures
# in METRICS, vgpu-smi and Prometheus, sampled again every second, and the supervisor never
# loads the library (only the workers do).
gpu_line() { admin_at "$1" METRICS | grep '^gpu '; }
nvml_series='^vgpu_gpu_(utilization_ratio|memory_used_bytes|temperature_celsius|power_watts) '
body=$(scrape "$dir/metrics.sock"); zones=$(admin_at "$dir/admin.sock" METRICS | grep '^zone ')
if gpu_line "$dir/admin.sock" | grep -q ' nvml=0$' &&
        ! grep -Eq "$nvml_series|^vgpu_zone_gpu_busy_seconds_total" <<<"$body" &&
        [[ -n "$zones" ]] && ! grep -q ' busy_ns=' <<<"$zones" &&
        [[ $(grep -c 'GPU figures: NVML is not used: ' "$work/proxy.log") == 1 ]]; then
    ok "without NVML: nvml=0, no NVML series and no GPU busy time (unknown, not 0), the reason logged once"
else ko "without NVML" "$(gpu_line "$dir/admin.sock"); $(grep -m1 'NVML' "$work/proxy.log")" "$work/proxy.log"; fi
kill -TERM "$proxy" 2>/dev/null; wait "$proxy" 2>/dev/null; proxy=""
nv="$work/nvml"
mkdir -p "$nv/p"
if ${CC:-cc} -shared -fPIC -O2 -Wall -Wextra -Werror -o "$nv/libnvidia-ml.so.1" \
        "$top/tests/chain/nvml_fixture.c" >"$nv/build.log" 2>&1; then
    LD_LIBRARY_PATH="$nv" "$chain" --backend stub --listen "$nv/p" --zone a:1G --zone b:1G \
        --log-level info --metrics "$nv/p/metrics.sock" >"$work/nvml.proxy.log" 2>&1 &
    proxy=$!
    line=""
    for _ in $(seq 1 100); do
        line=$(gpu_line "$nv/p/admin.sock" 2>/dev/null)
        [[ $line == *" nvml=1 "* ]] && break
        sleep 0.1
    done
    want="util_pct=37 mem_used_bytes=1293942784 mem_total_bytes=85899345920 temp_c=51 power_mw=123456"
    if [[ $line == *" nvml=1 age_ms="*" $want" ]]; then ok "METRICS: the fixture's figures ($want)"
    else ko "METRICS with NVML" "gpu line: $line" "$work/nvml.proxy.log"; fi
    smi=$("$top/gpu-proxy/vgpu-smi" --admin "$nv/p/admin.sock" 2>&1)
    if grep -q 'utilisation 37%, memory 1234 / 81920 MiB, 51 C, 123.5 W (NVML)' <<<"$smi"; then
        ok "vgpu-smi shows the fixture's figures"
    else ko "vgpu-smi with NVML" "$(head -3 <<<"$smi")"; fi
    body=$(scrape "$nv/p/metrics.sock")
    got=$(grep -E "$nvml_series" <<<"$body" | tr '\n' ' ')
    if [[ $got == "vgpu_gpu_utilization_ratio 0.37 vgpu_gpu_memory_used_bytes 1293942784 vgpu_gpu_temperature_celsius 51 vgpu_gpu_power_watts 123.456 " ]]; then
        ok "Prometheus: the four NVML gauges with the fixture's figures"
    else ko "Prometheus with NVML" "got: $got"; fi
    sleep 2.5
    age=$(gpu_line "$nv/p/admin.sock" | sed -n 's/.* age_ms=\([0-9]*\).*/\1/p')
    if [[ -n "$age" && $age -lt 1600 ]] && ! grep -q "seccomp denied" "$work/nvml.proxy.log"; then
        ok "the sandboxed workers sample again every second (age_ms=$age after 2.5 s)"
    else ko "NVML sampling" "age_ms='$age' 2.5 s later" "$work/nvml.proxy.log"; fi
    busy=$(admin_at "$nv/p/admin.sock" METRICS | awk '$1 == "zone" && / name=a / { for (i = 2; i <= NF; i++) if ($i ~ /^busy_ns=/) print substr($i, 9) }')
    body=$(scrape "$nv/p/metrics.sock") # (a grep -q in the pipe would end it with SIGPIPE)
    if [[ -n "$busy" && $busy -gt 500000000 && $busy -lt 5000000000 ]] &&
            grep -q '^vgpu_zone_gpu_busy_seconds_total{zone="a"}' <<<"$body"; then
        ok "GPU busy time from NVML's per-process utilisation (zone a: ${busy} ns at 50% for ~2.5 s)"
    else ko "GPU busy time from NVML" "busy_ns='$busy'" "$work/nvml.proxy.log"; fi
    wpid=$(admin_at "$nv/p/admin.sock" LIST | awk '$1 == "a" { for (i = 5; i <= NF; i++) if ($i ~ /^pid=/) print substr($i, 5) }')
    spid=$(awk '{ print $4 }' "/proc/$wpid/stat" 2>/dev/null)
    if [[ -n "$spid" ]] && grep -q libnvidia-ml "/proc/$wpid/maps" 2>/dev/null &&
            ! grep -q libnvidia-ml "/proc/$spid/maps"; then
        ok "NVML is loaded by the workers (pid $wpid), never by the supervisor (pid $spid)"
    else ko "who loads NVML" "worker '$wpid', supervisor '$spid'"; fi
    kill -TERM "$proxy" 2>/dev/null; wait "$proxy" 2>/dev/null; proxy=""
else ko "building tests/chain/nvml_fixture.c" "cc failed" "$nv/build.log"; fi

echo "chain: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
