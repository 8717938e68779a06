#!/bin/sh
# bench/run.sh - runs every benchmark figure in order (called by `make -C bench bench` after the
# build), collects their records and prints the one table; the same figures go to
# bench/results/latest.json. Figures whose programs could not be built are recorded as
# unavailable with the reason. Settings: BENCH_REPS, BENCH_REP_MS, IDM_SPIN_US (see README.md).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
results="$here/results"
mkdir -p "$results" || exit 1
records="$results/records.txt"
: > "$records" || exit 1
export BENCH_RECORDS="$records"
status=0

missing() { # id fig label reason
    printf 'ROW\tid=%s\tfig=%s\tstatus=unavailable\tlabel=%s\tnote=%s\n' "$1" "$2" "$3" "$4" \
        >> "$records"
}

# Runs one benchmark program under a time limit (BENCH_TIMEOUT_S, default 600 s). Each of its
# figures that recorded nothing (cut off, crashed, or failed at start-up) gets an "unavailable"
# row saying why, so that every figure appears in the table.
limit=${BENCH_TIMEOUT_S:-600}
tab=$(printf '\t')
timed() { # "figs" name program args...
    figs=$1; name=$2; shift 2
    timeout -k 10 "$limit" "$@"
    rc=$?
    case $rc in
    0) why="" ;;
    124|137) why="did not finish within ${limit} s"
             echo "bench: $name ran past ${limit} s and was stopped" >&2 ;;
    *) why="exited with status $rc before recording this figure (its messages are above)" ;;
    esac
    for f in $figs; do
        grep -q "${tab}fig=$f${tab}" "$records" \
            || missing "exit.$f" "$f" "$name" "${why:-recorded nothing}"
    done
    return $rc
}

read -r load1 _ < /proc/loadavg
echo "bench: figures 1-2: IDM ring and window (machine: $(nproc) CPUs, load average $load1)" >&2
case $load1 in
0.*) ;;
*) echo "bench: warning: the machine is busy (load average $load1): every figure will be" \
        "slower and noisier than on an idle machine" >&2 ;;
esac
timed "1 2" ring_bench "$here/ring_bench" || { echo "bench: ring_bench failed" >&2; status=1; }

echo "bench: figures 3-6: remoted calls through libvgpu -> gpu_proxy_stub" >&2
if [ -x "$here/cuda_bench" ] && [ ! -e "$results/cuda_bench.why" ]; then
    timed "3 4 5 6" cuda_bench "$here/cuda_bench" "$top/gpu-proxy/gpu_proxy_stub" \
        || echo "bench: cuda_bench reported incomplete figures (see above)" >&2
else
    why=$(cat "$results/cuda_bench.why" 2>/dev/null || echo "cuda_bench is not built")
    missing sync 3 "synchronous remoted calls" "$why"
    missing async 4 "asynchronous enqueue" "$why"
    missing copy 5 "bulk copies" "$why"
    missing scale 6 "scaling over zones" "$why"
fi

echo "bench: figure 8: worker start and restart (gpu_proxy_stub)" >&2
if [ -x "$here/worker_bench" ] && [ ! -e "$results/cuda_bench.why" ]; then
    timed 8 worker_bench "$here/worker_bench" "$top/gpu-proxy/gpu_proxy_stub" \
        || echo "bench: worker_bench reported an incomplete figure (see above)" >&2
else
    why=$(cat "$results/cuda_bench.why" 2>/dev/null || echo "worker_bench is not built")
    missing wstart 8 "worker start and restart" "$why"
fi

echo "bench: figure 7: real GPU" >&2
if [ -x "$here/gpu_native" ]; then
    # NVIDIA's libcuda.so.1 must come from the system, never from LD_LIBRARY_PATH leftovers.
    timed 7 gpu_compare env -u LD_LIBRARY_PATH "$here/gpu_compare" "$top/gpu-proxy/gpu_proxy" \
        "$here/gpu_native" "$top/libvgpu" || echo "bench: gpu_compare failed" >&2
else
    why=$(cat "$results/gpu_native.why" 2>/dev/null || echo "gpu_native is not built")
    printf 'ROW\tid=gpu\tfig=7\tstatus=skipped\tlabel=real GPU: remoted/native ratios\tnote=%s\n' \
        "$why" >> "$records"
fi

echo "bench: figure 9: the simulated GPU (PTX translated and interpreted) vs plain C" >&2
if make --no-print-directory -C "$here" -f sim.mk > "$results/build-sim.log" 2>&1; then
    timed 9 sim_bench "$here/sim_bench" "$here/sim_kernels.ptx" \
        || echo "bench: sim_bench reported incomplete figures (see above)" >&2
else
    missing sim 9 "simulated GPU vs plain C" "sim_bench did not build (log: bench/results/build-sim.log)"
fi

"$here/bench_report" "$records" "$results/latest.json" || status=1
exit $status
