#!/usr/bin/env bash
# tests/libvgpu/run-e2e.sh - end-to-end tests of libvgpu: CUDA programs (tests/libvgpu/cuda),
# each built with -cudart static and -cudart shared, run through the real libcudart 13 ->
# libvgpu -> gpu_proxy_stub via bin/vgpu-run. Every program carries a RUNPATH to the toolkit's
# libraries (libcudart.so.13, libcublas.so.13), so it runs without an ld.so.conf entry for them.
# Prints one line per run (a failing program's own output first, then the proxy's log) and
# "N passed, N failed". Exit 77 (skipped) only when nvcc is missing.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
src="$top/tests/libvgpu/cuda"
build="$top/libvgpu/build/e2e"
cuda_home="${CUDA_HOME:-/usr/local/cuda}"
nvcc="${NVCC:-$cuda_home/bin/nvcc}"
run="$top/bin/vgpu-run"
# VGPU_RUN_FLAGS (e.g. "--proxy PATH") go to every vgpu-run, as in tests/kernels.
read -r -a run_flags <<<"${VGPU_RUN_FLAGS:-}"
mkdir -p "$build"

if [[ ! -x "$nvcc" ]]; then
    echo "libvgpu e2e: skipped: nvcc not found at $nvcc"
    exit 77
fi
# The proxy is only the test fixture here: always its plain build (SANITIZE= on the command
# line, since a SANITIZE given to the top-level make reaches sub-makes through MAKEFLAGS; the
# proxy's own suite runs it sanitized).
if ! make --no-print-directory -C "$top/gpu-proxy" SANITIZE= gpu_proxy_stub >"$build/proxy-build.log" 2>&1; then
    echo "libvgpu e2e: building gpu-proxy/gpu_proxy_stub failed:"; tail -20 "$build/proxy-build.log"
    echo "libvgpu e2e: 0 passed, 1 failed"; exit 1
fi

# A SANITIZE= build of libcuda.so.1 needs the sanitizer runtimes loaded first into programs that
# were not built with them (gcc's runtimes; other compilers' builds are not run end to end).
if [[ -n "${SANITIZE:-}" ]]; then
    pre=""
    for rt in asan ubsan; do
        [[ $rt == asan && $SANITIZE != *address* ]] && continue
        [[ $rt == ubsan && $SANITIZE != *undefined* ]] && continue
        f=$(${CC:-cc} -print-file-name=lib$rt.so 2>/dev/null)
        if [[ "$f" != /* || ! -e "$f" ]]; then
            echo "libvgpu e2e: skipped: no lib$rt.so from ${CC:-cc} to preload for SANITIZE=$SANITIZE"
            exit 77
        fi
        pre="$pre $f"
    done
    san_preload="${pre# }"
    san_asan_options="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
fi

pass=0; fail=0
ok() { pass=$((pass + 1)); echo "PASS  $1"; }
ko() { fail=$((fail + 1)); echo "FAIL  $1: $2"; [[ -z "${3:-}" ]] || "$top/tests/show-failure.sh" "$3"; }

# build: t_NAME.cu -> $build/t_NAME-{static,shared}
progs=()
for f in "$src"/t_*.cu; do
    p=$(basename "$f" .cu)
    libs=""
    [[ $p == t_cublas ]] && libs="-lcublas"
    [[ $p == t_cufft ]] && libs="-lcufft"
    [[ $p == t_mathlibs ]] && libs="-lcusparse -lcurand -lcusolver -lcublas"
    [[ $p == t_driver || $p == t_vmm ]] && libs="-L$cuda_home/lib64/stubs -lcuda"
    arch=""
    # SASS for sm_75 and PTX for compute_90 (the simulated device's): CUB's policy choice
    [[ $p == t_cub_sort ]] && arch="-gencode arch=compute_75,code=sm_75 -gencode arch=compute_90,code=compute_90"
    # the per-thread default stream: the runtime calls the _ptds/_ptsz forms
    [[ $p == t_per_thread ]] && arch="--default-stream per-thread"
    for rt in static shared; do
        out="$build/$p-$rt"
        if [[ ! -x "$out" || "$f" -nt "$out" || "$src/check.h" -nt "$out" || "$0" -nt "$out" ||
              ( $p == t_per_thread && "$src/t_streams.cu" -nt "$out" ) ]]; then
            if ! "$nvcc" -O1 $arch -cudart "$rt" -Xlinker -rpath="$cuda_home/lib64" -o "$out" "$f" $libs \
                    >"$out.build.log" 2>&1; then
                ko "$p-$rt" "nvcc failed" "$out.build.log"; continue
            fi
        fi
        progs+=("$p-$rt")
    done
done

# only the programs run with the sanitizer runtimes, never nvcc
if [[ -n "${san_preload:-}" ]]; then
    export LD_PRELOAD="$san_preload" ASAN_OPTIONS="$san_asan_options"
fi
for t in "${progs[@]}"; do
    bin="$build/$t"; log="$build/$t.log"; plog="$build/$t.proxy.log"
    rm -f "$plog"
    case "$t" in
    t_noproxy-*)
        # no socket at all, then a socket nobody listens on (connection refused)
        sock="$build/no-such-proxy.sock"; stale="$build/stale-proxy.sock"
        rm -f "$sock" "$stale"
        python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$stale"
        if LD_LIBRARY_PATH="$top/libvgpu" VGPU_SOCKET="$sock" timeout 300 "$bin" >"$log" 2>&1 &&
           grep -q "libvgpu: cannot connect to gpu proxy at $sock .*No such file" "$log" &&
           LD_LIBRARY_PATH="$top/libvgpu" VGPU_SOCKET="$stale" timeout 300 "$bin" >>"$log" 2>&1 &&
           grep -q "libvgpu: cannot connect to gpu proxy at $stale .*Connection refused" "$log"
        then ok "$t"
        else ko "$t" "no clear 'cannot connect' message or wrong error" "$log"; fi
        rm -f "$stale"
        ;;
    t_errors-*)
        if timeout 600 "$run" "${run_flags[@]}" --quota 64M --keep-log "$plog" -- "$bin" >"$log" 2>&1; then ok "$t"
        else ko "$t" "program failed" "$log"; fi
        ;;
    t_stress-*)
        if timeout 900 "$run" "${run_flags[@]}" --keep-log "$plog" -- "$bin" >"$log" 2>&1; then
            ok "$t ($(sed -n 's/^t_stress: //p' "$log" | head -1))"
        else ko "$t" "program failed" "$log"; fi
        ;;
    t_props-*)
        if ! timeout 600 "$run" "${run_flags[@]}" --keep-log "$plog" -- "$bin" >"$log" 2>&1; then
            ko "$t" "program failed" "$log"; continue
        fi
        # the proxy says: device 0 is "NAME", N MiB, compute capability X.Y
        adv=$(sed -n 's/.*device 0 is "\(.*\)", \([0-9]*\) MiB, compute capability \([0-9.]*\).*/name=\1 mem_mib=\2 cc=\3/p' "$plog" | head -1)
        got=$(sed -n 's/^PROPS \(name=.* mem_mib=[0-9]* cc=[0-9.]*\) .*/\1/p' "$log")
        if [[ -n "$adv" && "$adv" == "$got" ]]; then ok "$t ($got)"
        else ko "$t" "program saw '$got', proxy advertises '$adv'" "$log"; fi
        ;;
    t_cublas-*)
        if ! timeout 600 "$run" "${run_flags[@]}" --keep-log "$plog" -- "$bin" >"$log" 2>&1; then
            ko "$t" "program failed" "$log"; continue
        fi
        if grep -q '^SGEMM-RAN' "$log"; then ok "$t (sgemm ran, results checked)"
        elif grep -q '^SGEMM-LAUNCH-ERROR' "$log" &&
             grep -Eq 'launch of kernel .* refused|kernel .* failed' "$plog" &&
             { ! grep -q 'has no PTX' "$plog" ||
               grep -q '^SGEMM-LAUNCH-ERROR cudaErrorNotSupported$' "$log"; }; then
            ok "$t ($(grep '^SGEMM-LAUNCH-ERROR' "$log"); proxy: $(grep -Eo 'launch of kernel [^ ]* refused|kernel [^ ]* failed' "$plog" | head -1 | cut -c1-80))"
        else ko "$t" "sgemm neither ran nor failed at the proxy's launch (a kernel without PTX must give cudaErrorNotSupported)" "$log"; fi
        ;;
    t_cufft-*)
        if timeout 600 "$run" "${run_flags[@]}" --keep-log "$plog" -- "$bin" >"$log" 2>&1 &&
           grep -q '^CUFFT-RAN' "$log"; then ok "$t (C2C 256, R2C 1000, C2C 48x64 checked against a DFT)"
        else ko "$t" "program failed" "$log"; fi
        ;;
    *)
        if timeout 900 "$run" "${run_flags[@]}" --keep-log "$plog" -- "$bin" >"$log" 2>&1; then ok "$t"
        else ko "$t" "program failed" "$log"; fi
        ;;
    esac
done
echo "libvgpu e2e: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
