#!/usr/bin/env bash
# gpu-check.sh - the one-go check on a machine with an NVIDIA GPU (issue 14; README.md beside
# this file explains each step and the JSON). In one run, under GPU_CHECK_BUDGET_S (default 450 s):
#   1 driver facts (driver_facts)            4 PyTorch and CuPy through libvgpu
#   2 the project's suites against the real  5 the worker sandbox (when gpu_proxy offers one)
#     driver, two zones at once, isolation   6 cost of isolation: native vs remoted, ratios
#   3 cuBLAS / cuFFT / cuRAND, native and remoted
# Writes gpu-check.log, gpu-check.json and gpu-check-logs.tar.gz (every program's and proxy's
# log) to GPU_CHECK_OUT (default: $OUT if set, else tests/gpu/out). Without a GPU it prints
# "gpu-check: SKIP: <why>", writes {"skipped": "<why>"} and exits 77. Exit 0 when nothing
# failed, 1 otherwise. Each step and each program has its own time limit; a failure is recorded
# and the run goes on.
#
# Settings: GPU_CHECK_CHAIN=1 (no GPU: the "native driver" is libvgpu in front of a
# gpu_proxy_stub this script starts, to test the script end to end), GPU_CHECK_BUILD (bundle
# directory, default tests/gpu/build), GPU_CHECK_REBUILD=1, GPU_CHECK_JOBS (programs at once per
# zone, default 4), GPU_CHECK_VGPU_LOG (libvgpu's log level in remoted runs, default debug),
# GPU_CHECK_LIBCUDA (NVIDIA's libcuda.so.1 to use), GPU_CHECK_PYTHON (default python3),
# GPU_CHECK_SANDBOX_ARGS (gpu_proxy options that turn the worker sandbox on), GPU_CHECK_KEEP=1
# (keep the work directory).
# Arrays of environment settings are passed to runp/start_proxy by name (namerefs), and
# start_proxy sets the pid variable it is given with printf -v: shellcheck sees neither use.
# shellcheck disable=SC2034,SC2154
set -uo pipefail
shopt -s nullglob

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
B=${GPU_CHECK_BUILD:-$here/build}
out=${GPU_CHECK_OUT:-${OUT:-$here/out}}
budget=${GPU_CHECK_BUDGET_S:-450}
chain=${GPU_CHECK_CHAIN:-0}
jobs=${GPU_CHECK_JOBS:-4}
vlog=${GPU_CHECK_VGPU_LOG:-debug}
py=${GPU_CHECK_PYTHON:-python3}
t0=$SECONDS
deadline=$((t0 + budget))
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)

mkdir -p "$out" || { echo "gpu-check: cannot create the output directory $out" >&2; exit 1; }
out=$(cd "$out" && pwd)
log=$out/gpu-check.log
json=$out/gpu-check.json
rm -f "$log" "$json" "$out/gpu-check-logs.tar.gz"
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || { echo "gpu-check: mktemp failed" >&2; exit 1; }
L=$work/logs
mkdir -p "$L"
rec=$work/records.jsonl
: > "$rec"

exec > >(tee -a "$log") 2>&1
tee_pid=$!

proxies=()
say() { echo "gpu-check: $*"; }

# ---- records: one JSON object per line in $rec; report.py turns them into gpu-check.json ----
jesc() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/ }
    s=${s//$'\r'/}
    printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037'
}
# record STEP NAME STATUS [KEY VALUE]...   (STATUS: pass fail skip info answer error)
record() {
    local line
    line="{\"step\":\"$1\",\"name\":\"$(jesc "$2")\",\"status\":\"$3\""
    shift 3
    while (($# >= 2)); do
        line+=",\"$(jesc "$1")\":\"$(jesc "$2")\""
        shift 2
    done
    echo "$line}" >> "$rec"
}
# import_json STEP MODE FILE: the JSON lines a program printed, tagged with step and mode.
# Returns 1 when the file holds none.
import_json() {
    local n
    n=$(grep -c '^{"name":' "$3" 2>/dev/null)
    [[ ${n:-0} -gt 0 ]] || return 1
    grep '^{"name":' "$3" | sed "s/^{/{\"step\":\"$1\",\"mode\":\"$2\",/" >> "$rec"
}
tailof() { # last lines of a file, on one line (without libvgpu's debug chatter)
    [[ -f $1 ]] || { echo "(no output)"; return; }
    grep -Ev '^\{"name":|^libvgpu: (debug|trace):' "$1" | tail -n "${2:-6}" | tr '\n' '|' | cut -c1-900
}
# What libvgpu and the proxy said about a failure: unsupported calls, unknown export tables,
# failed operations (VGPU_LOG=debug).
diag() {
    [[ -f $1 ]] || return 0
    grep -E 'not supported by libvgpu|unknown table|-> [0-9]+$|failed|refused|cannot|error' "$1" |
        grep -v '^{"name":' | awk '!seen[$0]++' | head -n 12 | tr '\n' '|' | cut -c1-1500
}
first_match() { # first_match FILE REGEX
    [[ -f $1 ]] && grep -m1 -E "$2" "$1" | cut -c1-300
}

remaining() { echo $((deadline - SECONDS)); }
# tmo WANT: a time limit of at most WANT seconds that ends before the step's end and leaves
# 20 s of the whole budget for the report.
step_end=$deadline
tmo() {
    local want=$1 a=$((step_end - SECONDS)) b=$((deadline - 20 - SECONDS))
    ((a < want)) && want=$a
    ((b < want)) && want=$b
    ((want < 1)) && want=1
    echo "$want"
}
# begin_step STEP SECONDS: 0 if the step may run (and sets its end), else records a skip.
begin_step() {
    local left=$(($(remaining) - 20))
    if ((left < 15)); then
        record "$1" "$1" skip reason "out of time: ${left}s of the budget left"
        say "step $1: skipped (out of time)"
        return 1
    fi
    step_end=$((SECONDS + ($2 < left ? $2 : left)))
    say "step $1 (at most $((step_end - SECONDS)) s; $(remaining) s of the budget left)"
    return 0
}

# ---- processes ----
# runp LOGBASE SECONDS ENVARRAY CMD...: runs CMD with the environment ENVARRAY adds, stdout to
# LOGBASE.out and stderr to LOGBASE.err; returns its status (124/137: time limit).
runp() {
    local lb=$1 t=$2
    local -n _env=$3
    shift 3
    env -u LD_PRELOAD "${_env[@]}" timeout -k 5 "$t" "$@" > "$lb.out" 2> "$lb.err"
}
# start_proxy VAR NAME DIR ENVARRAY BIN ARGS...: starts a proxy, waits for DIR/admin.sock.
start_proxy() {
    local var=$1 name=$2 dir=$3
    local -n _penv=$4
    local bin=$5
    shift 5
    mkdir -p "$dir"
    env -u LD_PRELOAD "${_penv[@]}" "$bin" --listen "$dir" "$@" > "$L/$name.log" 2>&1 &
    local pid=$! i
    proxies+=("$pid")
    for ((i = 0; i < 400; i++)); do
        [[ -S $dir/admin.sock ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ ! -S $dir/admin.sock ]]; then
        record proxy "$name.start" fail cmd "$bin --listen $dir $*" \
            detail "no admin socket within 40 s: $(tailof "$L/$name.log" 8)"
        say "proxy $name did not start: $(tailof "$L/$name.log" 4)"
        kill -KILL "$pid" 2>/dev/null
        return 1
    fi
    sleep 0.2
    record proxy "$name.start" pass cmd "$bin --listen $dir $*" \
        backend "$(first_match "$L/$name.log" 'cuda backend: |backend [a-z]+: device 0')"
    printf -v "$var" '%s' "$pid"
}
# stop_proxy PID NAME: SIGTERM, up to 20 s, then SIGKILL; records the exit status.
stop_proxy() {
    local pid=$1 name=$2 i rc
    [[ -n $pid ]] || return 0
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null
        rc=$?
        record proxy "$name.exit" fail detail "had already exited with status $rc: $(tailof "$L/$name.log" 8)"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        record proxy "$name.exit" fail detail "did not stop within 20 s of SIGTERM (killed)"
        return 0
    fi
    wait "$pid" 2>/dev/null
    rc=$?
    record proxy "$name.exit" "$([[ $rc -eq 0 ]] && echo pass || echo fail)" \
        detail "exit status $rc after SIGTERM" \
        errors "$(grep -E '^<[0-3]>' "$L/$name.log" | awk '!seen[$0]++' | head -n 8 | tr '\n' '|' | cut -c1-1500)"
}
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

finish() {
    local rc=$1
    for p in "${proxies[@]}"; do kill -TERM "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${proxies[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    exit "$rc"
}
trap 'say "interrupted"; finish 130' INT TERM
# whatever ends the script, no proxy it started outlives it
trap 'for p in "${proxies[@]}"; do kill -KILL "$p" 2>/dev/null; done' EXIT

skip() {
    say "SKIP: $1"
    for p in "${proxies[@]}"; do kill -TERM "$p" 2>/dev/null; done
    printf '{"skipped": "%s", "started": "%s", "host": "%s"}\n' "$(jesc "$1")" "$started" \
        "$(jesc "$(uname -n)")" > "$json"
    rm -rf "$work"
    exec >&- 2>&-
    wait "$tee_pid" 2>/dev/null
    exit 77
}

say "started $started on $(uname -n), $(nproc) CPUs; output in $out"

# ---- step 0: find a GPU (or set up the chain) ----
# a copy that lost the executable bits (a carried bundle) still runs
[[ -d $B ]] && chmod -f +x "$B"/bin/* "$B"/kernels/* "$B"/e2e/* 2>/dev/null
probe=$B/bin/gpu_probe
if [[ ! -x $probe ]]; then
    probe=$work/gpu_probe
    if ! ${CC:-cc} -std=gnu11 -D_GNU_SOURCE -I"${CUDA_HOME:-/usr/local/cuda}/include" \
            -o "$probe" "$here/gpu_probe.c" -ldl > "$L/probe-build.log" 2>&1; then
        skip "cannot build the GPU probe ($here/gpu_probe.c: $(tailof "$L/probe-build.log" 2)); is the CUDA toolkit (cuda.h) or a C compiler missing?"
    fi
fi
outer_dir=$work/outer
if [[ $chain == 1 ]]; then
    [[ -x $B/bin/gpu_proxy_stub && -e $B/vgpu/libcuda.so.1 ]] ||
        skip "GPU_CHECK_CHAIN=1 needs $B/bin/gpu_proxy_stub and $B/vgpu/libcuda.so.1 (make -C $here build)"
    noenv=()
    start_proxy outer_pid outer "$outer_dir" noenv "$B/bin/gpu_proxy_stub" --backend stub \
        --zone native --zone backend || skip "the chain's gpu_proxy_stub did not start"
    nv_libdir=$B/vgpu
    probe_env=(LD_LIBRARY_PATH="$nv_libdir" VGPU_SOCKET="$outer_dir/native.sock")
    runp "$L/probe" 60 probe_env "$probe"
    [[ $? -eq 0 ]] || skip "the chain's driver (libvgpu -> gpu_proxy_stub) does not answer: $(tailof "$L/probe.out" 3)"
    say "CHAIN MODE: the \"native driver\" is libvgpu in front of gpu_proxy_stub (a simulated GPU); results are the simulation's"
else
    cands=()
    [[ -n ${GPU_CHECK_LIBCUDA:-} ]] && cands+=("$GPU_CHECK_LIBCUDA")
    while read -r p; do cands+=("$p"); done < <(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 .*x86-64/{print $NF}')
    IFS=: read -ra lddirs <<< "${LD_LIBRARY_PATH:-}"
    for d in "${lddirs[@]}" /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu \
             /usr/lib64 /usr/lib /usr/local/cuda/compat; do
        [[ -n $d && -e $d/libcuda.so.1 ]] && cands+=("$d/libcuda.so.1")
    done
    found=""; why=(); seen=" "
    for c in "${cands[@]}"; do
        r=$(readlink -f "$c" 2>/dev/null || echo "$c")
        [[ $seen == *" $r "* ]] && continue
        seen+="$r "
        probe_env=(LD_LIBRARY_PATH="$(dirname "$c")")
        runp "$L/probe" 60 probe_env "$probe" --refuse "$top/libvgpu" --refuse "$B/vgpu" "$c"
        if [[ $? -eq 0 ]]; then found=$c; break; fi
        why+=("$c: $(sed -n 's/^error=//p' "$L/probe.out" | head -1)")
    done
    if [[ -z $found ]]; then
        smi="nvidia-smi: not installed"
        command -v nvidia-smi > /dev/null && smi="nvidia-smi -L: $(timeout 20 nvidia-smi -L 2>&1 | head -2 | tr '\n' ' ')"
        if [[ ${#cands[@]} -eq 0 ]]; then
            skip "no NVIDIA driver: no libcuda.so.1 in ldconfig -p, LD_LIBRARY_PATH, /usr/local/nvidia/lib64, /usr/lib/x86_64-linux-gnu, /usr/lib64 ($smi)"
        fi
        skip "no usable NVIDIA GPU: $(IFS=';'; echo "${why[*]}") ($smi)"
    fi
    nv_libdir=$(dirname "$found")
fi
kv() { sed -n "s/^$1=//p" "$L/probe.out" | head -1; }
gpu_name=$(kv name)
record machine gpu info libcuda "$(kv libcuda)" driver "$(kv driver)" device "$gpu_name" cc "$(kv cc)" \
    mem_mib "$(kv mem_mib)" mode "$([[ $chain == 1 ]] && echo chain || echo gpu)"
say "driver: $(kv libcuda) (version $(kv driver)); device 0: $gpu_name, cc $(kv cc), $(kv mem_mib) MiB"
if command -v nvidia-smi > /dev/null; then
    record machine nvidia_smi info value "$(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader 2>&1 | head -2 | tr '\n' ' ')"
fi
record machine host info hostname "$(uname -n)" cpus "$(nproc)" kernel "$(uname -r)" \
    os "$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null)" user "$(id -un)" \
    python "$($py -c 'import sys; print(sys.version.split()[0])' 2>&1 | head -1)"

# ---- the bundle: carried from the CPU machine, or built here ----
if [[ ! -f $B/MANIFEST || ${GPU_CHECK_REBUILD:-0} == 1 ]]; then
    say "no bundle at $B (MANIFEST missing): building it (make -C $here build), log $L/build.log"
    timeout -k 5 "$(tmo 300)" make -C "$here" -j"$(nproc)" build > "$L/build.log" 2>&1
    brc=$?
    record build make "$([[ $brc -eq 0 ]] && echo pass || echo fail)" \
        detail "make -C tests/gpu build: status $brc: $(tailof "$L/build.log" 4)"
fi
[[ -f $B/MANIFEST ]] && record build manifest info value "$(tr '\n' '|' < "$B/MANIFEST")"
chmod -f +x "$B"/bin/* "$B"/kernels/* "$B"/e2e/* 2>/dev/null
say "bundle: $(tr '\n' ';' < "$B/MANIFEST" 2>/dev/null)"

# Where programs find libcudart.so.13 (shared-cudart builds), cuBLAS, cuFFT, cuRAND: the
# bundle's libcudart, then the toolkit's, then the pip wheels' (nvidia/*/lib). A directory
# with a libcuda.so.1 in it is never used.
libdirs=("$B/cudalib")
cand_dirs=("${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/targets/x86_64-linux/lib)
while read -r d; do [[ -n $d ]] && cand_dirs+=("$d"); done < <(timeout 30 "$py" -c '
import os
try:
    import nvidia
    for p in nvidia.__path__:
        for d in sorted(os.listdir(p)):
            if os.path.isdir(os.path.join(p, d, "lib")):
                print(os.path.join(p, d, "lib"))
except Exception:
    pass' 2>/dev/null)
libs_missing=""
for lib in libcublas.so.13 libcublasLt.so.13 libcufft.so.12 libcurand.so.10; do
    hit=""
    for d in "${libdirs[@]}" "${cand_dirs[@]}"; do
        if [[ -e $d/$lib && ! -e $d/libcuda.so.1 ]]; then hit=$d; break; fi
    done
    if [[ -z $hit ]]; then libs_missing+=" $lib"; continue; fi
    [[ " ${libdirs[*]} " == *" $hit "* ]] || libdirs+=("$hit")
done
applibs=$(IFS=:; echo "${libdirs[*]}")
record machine cuda_libraries "$([[ -z $libs_missing ]] && echo info || echo fail)" \
    dirs "$applibs" missing "${libs_missing:-none}"

# Environments. native: the driver under test first; proxyenv: what gpu_proxy --backend cuda
# runs with (the driver's directory only, plus the bundle's system libraries); shim: libvgpu
# first, talking to zone $1 of the proxy whose sockets are in $2.
if [[ $chain == 1 ]]; then
    native=(LD_LIBRARY_PATH="$nv_libdir:$applibs" VGPU_SOCKET="$outer_dir/native.sock" VGPU_LOG="$vlog")
    proxyenv=(LD_LIBRARY_PATH="$nv_libdir:$B/syslib" VGPU_SOCKET="$outer_dir/backend.sock")
else
    native=(LD_LIBRARY_PATH="$nv_libdir:$applibs")
    proxyenv=(LD_LIBRARY_PATH="$nv_libdir:$B/syslib")
fi
shim_env() { # shim_env ARRAYNAME ZONE DIR
    local -n _s=$1
    _s=(LD_LIBRARY_PATH="$B/vgpu:$applibs" VGPU_SOCKET="$3/$2.sock" VGPU_TRANSPORT=posix VGPU_LOG="$vlog")
}
proxy_bin=$B/bin/gpu_proxy
if ! runp "$L/proxy-help" 20 proxyenv "$proxy_bin" --help; then
    record proxy help fail detail "$proxy_bin --help failed: $(tailof "$L/proxy-help.err" 3)"
fi

# ---- step 1: driver facts ----
step_facts() {
    begin_step driver_facts 60 || return
    runp "$L/driver_facts" "$(tmo 55)" native "$B/bin/driver_facts"
    local rc=$?
    import_json driver_facts native "$L/driver_facts.out" ||
        record driver_facts run error detail "driver_facts printed nothing (status $rc): $(tailof "$L/driver_facts.err")"
    [[ $rc -eq 124 || $rc -eq 137 ]] && record driver_facts run error detail "stopped at its time limit"
    grep '^{"name"' "$L/driver_facts.out" | sed 's/^/  /'
}

# ---- step 2: the suites against the real driver, two zones at once; isolation ----
p1=""; p1dir=$work/p1
# MiB per allocation in the isolation checks: a GPU fills and counts 1 GiB in milliseconds, the
# simulated GPU of chain mode interprets every instruction
mib=1024; [[ $chain == 1 ]] && mib=64
# a, b: the two zones under test; t_errors needs a 64M quota (one zone per run, they run at
# once), t_props none (it compares cudaMemGetInfo with the device); quota: the quota check.
zones1=(--zone a:8G --zone b:8G --zone qas:64M --zone qad:64M --zone qbs:64M --zone qbd:64M
        --zone noquota --zone quota:1G)
run_one() { # run_one ZONE PROG
    local zone=$1 p=$2 env=() lb sock status detail rc s
    lb=$L/suites/$zone-${p//\//_}
    sock=$zone
    case $p in
    e2e/t_errors-static) sock=q${zone}s ;;
    e2e/t_errors-shared) sock=q${zone}d ;;
    e2e/t_props-*) sock=noquota ;;
    esac
    shim_env env "$sock" "$p1dir"
    [[ $p == e2e/t_noproxy-* ]] && env[1]=VGPU_SOCKET="$work/no-such-proxy.sock"
    s=$SECONDS
    runp "$lb" "$(tmo 120)" env "$B/$p"
    rc=$?
    status=fail; detail="exit status $rc"
    if [[ $rc -eq 124 || $rc -eq 137 ]]; then
        detail="stopped at its time limit"
    elif [[ $p == e2e/t_noproxy-* ]]; then
        if [[ $rc -eq 0 ]] && grep -q 'cannot connect to gpu proxy at' "$lb.err"; then status=pass; detail=""
        else detail="status $rc, or no 'cannot connect' message"; fi
    elif [[ $p == e2e/t_props-* && $rc -eq 0 ]]; then
        local adv got
        adv=$(sed -n 's/.*device 0 is "\(.*\)", \([0-9]*\) MiB, compute capability \([0-9.]*\).*/name=\1 mem_mib=\2 cc=\3/p' "$L/p1.log" | head -1)
        got=$(sed -n 's/^PROPS \(name=.* mem_mib=[0-9]* cc=[0-9.]*\) .*/\1/p' "$lb.out")
        if [[ -n $adv && $adv == "$got" ]]; then status=pass; detail="$got"
        else detail="program saw '$got', proxy advertises '$adv'"; fi
    elif [[ $p == e2e/t_cublas-* && $rc -eq 0 ]]; then
        if grep -q '^SGEMM-RAN' "$lb.out"; then status=pass; detail="sgemm ran, results checked"
        else detail="sgemm did not run: $(grep '^SGEMM' "$lb.out" | head -1)"; fi
    elif [[ $rc -eq 0 ]]; then
        status=pass; detail=""
    fi
    if [[ $status == fail ]]; then
        record suites "$zone/$p" fail secs "$((SECONDS - s))" detail "$detail" \
            output "$(tailof "$lb.err" 5) $(tailof "$lb.out" 3)" shim_log "$(diag "$lb.err")"
        say "FAIL  zone $zone: $p ($detail)"
    else
        record suites "$zone/$p" pass secs "$((SECONDS - s))" detail "$detail"
    fi
}
run_zone() { # run_zone ZONE PROGS...: at most $jobs at once
    local zone=$1 n=0
    shift
    for p in "$@"; do
        run_one "$zone" "$p" &
        n=$((n + 1))
        if ((n >= jobs)); then wait -n; n=$((n - 1)); fi
    done
    wait
}
iso() { # iso NAME ZONE SECONDS ARGS...: isolation ARGS in ZONE of p1; imports its JSON
    local name=$1 zone=$2 t=$3 env=() rc
    shift 3
    shim_env env "$zone" "$p1dir"
    runp "$L/iso-$name" "$(tmo "$t")" env "$B/bin/isolation" "$@"
    rc=$?
    import_json isolation shim "$L/iso-$name.out" ||
        record isolation "$name" fail detail "printed no result (status $rc): $(tailof "$L/iso-$name.err")" \
            shim_log "$(diag "$L/iso-$name.err")"
    return $rc
}
# fresh_p1 PHASE: a new proxy for the next phase (the previous one stopped and its exit
# recorded), so that a fault in one phase (a poisoned process, if the driver works that way)
# cannot fail the next. The suites' proxy log is p1.log, later phases' p1-PHASE.log.
p1name=p1
fresh_p1() {
    if [[ -n $p1 ]]; then
        alive "$p1" || record proxy "$p1name.alive" fail detail "gpu_proxy had died before phase $1: $(tailof "$L/$p1name.log" 8)"
        stop_proxy "$p1" "$p1name"
    fi
    p1=""
    p1name=p1-$1
    start_proxy p1 "$p1name" "$p1dir" proxyenv "$proxy_bin" --backend cuda --log-level debug "${zones1[@]}"
}
# The GPU's own figures (NVML, read by the proxy's workers) as vgpu-smi shows them against
# nvidia-smi's, read right after; the tolerances allow for what moves between two reads.
check_nvml() {
    local skipwhy="" rc
    [[ $chain == 1 ]] && skipwhy="chain mode: no NVML"
    command -v nvidia-smi > /dev/null || skipwhy="nvidia-smi is not installed"
    [[ -x $B/bin/vgpu-smi ]] || skipwhy="vgpu-smi is not in the bundle"
    if [[ -n $skipwhy ]]; then record nvml vgpu_smi_vs_nvidia_smi skip reason "$skipwhy"; return; fi
    runp "$L/nvml-vgpu-smi" 20 proxyenv "$B/bin/vgpu-smi" --admin "$p1dir/admin.sock" --json
    timeout 20 nvidia-smi --query-gpu=name,uuid,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw \
        --format=csv,noheader,nounits > "$L/nvml-nvidia-smi.out" 2>&1
    "$py" - "$L/nvml-vgpu-smi.out" "$L/nvml-nvidia-smi.out" > "$L/nvml-compare.out" 2>&1 <<'PY'
import json, sys
try:
    g = json.load(open(sys.argv[1]))["gpu"]
except (OSError, ValueError, KeyError) as e:
    sys.exit("vgpu-smi gave no JSON (%s): see nvml-vgpu-smi.err" % e)
if g.get("nvml") != 1:
    sys.exit("vgpu-smi shows nvml=%s (see the proxy log's 'GPU figures' line)" % g.get("nvml"))
rows = [[c.strip() for c in l.split(",")] for l in open(sys.argv[2]) if l.count(",") >= 6]
row = next((r for r in rows if r[0] == g.get("device")), rows[0] if rows else None)
if row is None:
    sys.exit("nvidia-smi gave no GPU: " + open(sys.argv[2]).read()[:300])
MiB = 1 << 20
def num(s):
    try: return float(s)
    except ValueError: return None  # "[N/A]"
checks = [  # figure, vgpu-smi's, nvidia-smi's, tolerance
    ("utilisation %", g.get("util_pct"), num(row[2]), 30),
    ("memory used MiB", g.get("mem_used_bytes", 0) / MiB if "mem_used_bytes" in g else None, num(row[3]), 1024),
    ("memory total MiB", g.get("mem_total_bytes", 0) / MiB if "mem_total_bytes" in g else None, num(row[4]), 2),
    ("temperature C", g.get("temp_c"), num(row[5]), 3),
    ("power W", g["power_mw"] / 1000 if "power_mw" in g else None, num(row[6]), 60),
]
bad, seen = [], []
for col, (name, ours, theirs, tol) in enumerate(checks, start=2):
    seen.append("%s %s vs %s" % (name, "-" if ours is None else round(ours, 1), row[col]))
    if (ours is None) != (theirs is None) or (ours is not None and abs(ours - theirs) > tol):
        bad.append("%s: vgpu-smi %s, nvidia-smi %s (tolerance %s)" % (name, ours, theirs, tol))
print("%s (%s), sample age %s ms: %s" % (row[0], row[1], g.get("age_ms"), "; ".join(seen)))
if bad:
    sys.exit("; ".join(bad))
PY
    rc=$?
    record nvml vgpu_smi_vs_nvidia_smi "$([[ $rc -eq 0 ]] && echo pass || echo fail)" \
        detail "$(tailof "$L/nvml-compare.out" 2)" \
        proxy_log "$(grep -m1 'GPU figures' "$L/p1.log")"
    say "nvml: $(tailof "$L/nvml-compare.out" 2)"
}
step_suites() {
    begin_step suites 190 || return
    start_proxy p1 p1 "$p1dir" proxyenv "$proxy_bin" --backend cuda --log-level debug "${zones1[@]}" || return
    local progs=() f n
    for f in "$B"/kernels/*; do
        n=${f#"$B"/}
        [[ $n == kernels/out_of_bounds* || $n == *.d ]] && continue
        progs+=("$n")
    done
    for f in "$B"/e2e/t_*-static "$B"/e2e/t_*-shared; do progs+=("${f#"$B"/}"); done
    mkdir -p "$L/suites"
    say "suites: ${#progs[@]} programs in zone a and the same in zone b, at once ($jobs at a time per zone)"
    run_zone a "${progs[@]}" &
    local za=$!
    run_zone b "${progs[@]}" &
    local zb=$!
    wait "$za" "$zb" # never a bare wait: the proxies are children of this shell too
    local np nf
    np=$(grep -c '"step":"suites".*"status":"pass"' "$rec")
    nf=$(grep -c '"step":"suites".*"status":"fail"' "$rec")
    say "suites: $np passed, $nf failed"
    check_nvml

    # what must not fault: quota, zero on allocation (within and across zones)
    fresh_p1 memory || return
    say "isolation: quota, zero on allocation"
    iso quota quota 60 quota
    iso dirty a 60 dirty "$mib"
    iso zero-b b 60 zero "$mib" 2
    iso zero-a a 60 zero $((mib / 4)) 2

    # cross-zone pointers: zone b tries zone a's live allocation (zone b's kernel may fault)
    fresh_p1 pointers || return
    say "isolation: cross-zone pointers"
    rm -f "$work/addr" "$work/go"
    iso owner a 90 owner "$work/addr" "$work/go" &
    local owner=$! i
    for ((i = 0; i < 600; i++)); do
        [[ -s $work/addr ]] && break
        kill -0 "$owner" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -s $work/addr ]]; then
        local addr
        addr=$(head -1 "$work/addr")
        iso probe b 40 probe "$addr"
        iso probe-write b 40 probe-write "$addr"
    else
        record isolation pointers fail detail "zone a's owner never published its pointer"
    fi
    touch "$work/go"
    wait "$owner"

    # a fault in zone a while zone b keeps computing
    fresh_p1 fault || return
    say "fault containment: out_of_bounds in zone a while zone b computes"
    iso steady b 60 steady 15 &
    local steady=$! env=()
    for ((i = 0; i < 300; i++)); do
        grep -q 'steady: started' "$L/iso-steady.out" 2>/dev/null && break
        sleep 0.1
    done
    sleep 2
    shim_env env a "$p1dir"
    runp "$L/fault-oob" "$(tmo 60)" env "$B/kernels/out_of_bounds"
    local rc=$?
    record fault out_of_bounds_in_a "$([[ $rc -eq 0 ]] && echo pass || echo fail)" \
        detail "tests/kernels/out_of_bounds in zone a: status $rc (0 = it saw cudaErrorIllegalAddress): $(tailof "$L/fault-oob.out" 2)" \
        shim_log "$(diag "$L/fault-oob.err")"
    iso dirty-fault a 60 dirty "$mib" fault
    runp "$L/fault-a-after" "$(tmo 60)" env "$B/kernels/vector_add"
    rc=$?
    record fault zone_a_after_its_fault "$([[ $rc -eq 0 ]] && echo pass || echo fail)" \
        detail "a new vector_add client in zone a after the faults: status $rc: $(tailof "$L/fault-a-after.out" 2) $(tailof "$L/fault-a-after.err" 2)"
    wait "$steady"
    rc=$?
    record fault zone_b_kept_computing "$([[ $rc -eq 0 ]] && echo pass || echo fail)" \
        detail "zone b's vector additions during zone a's faults: status $rc: $(grep -h '^{"name"' "$L/iso-steady.out" | tail -1 | cut -c1-300)"
    if alive "$p1"; then
        record fault proxy_survived pass
        iso zero-after-fault b 60 zero "$mib" 2
    else
        record fault proxy_survived fail detail "gpu_proxy died: $(tailof "$L/$p1name.log" 8)"
    fi
    record fault proxy_log info lines "$(grep -E 'zone=a.*(fault|illegal|ILLEGAL|sticky|error|failed)' "$L/$p1name.log" | awk '!seen[$0]++' | head -n 8 | tr '\n' '|' | cut -c1-1500)"
    stop_proxy "$p1" "$p1name"
    p1=""

    # gpu-proxy's own integration tests, with PROXY_BACKEND=cuda (each starts its own proxy)
    local t
    for t in test_cuda test_proxy; do
        [[ -x $B/bin/$t ]] || { record proxy_tests "$t" skip reason "not built"; continue; }
        local tenv=("${proxyenv[@]}" PROXY_BACKEND=cuda PROXY_LOG_LEVEL=info)
        runp "$L/$t" "$(tmo 90)" tenv "$B/bin/$t" "$proxy_bin"
        rc=$?
        record proxy_tests "$t" "$([[ $rc -eq 0 ]] && echo pass || echo fail)" \
            detail "status $rc (test_proxy is written for the stub: its props and kernel cases expect the simulated GPU)" \
            cases "$(grep -hE '^\[ *(OK|FAILED|ERROR|SKIPPED) *\]' "$L/$t.out" "$L/$t.err" | tr -s ' ' | tr '\n' '|' | cut -c1-1500)" \
            failures "$(grep -hE 'FAILED|ERROR|Failure|failed' "$L/$t.out" "$L/$t.err" | head -n 8 | tr '\n' '|' | cut -c1-1500)"
    done
}

# ---- steps 3, 4, 6: each remoted run gets a fresh proxy (p2-STEP-NAME.log) ----
p2=""; p2dir=$work/p2
fresh_p2() { # fresh_p2 NAME
    [[ -n $p2 ]] && stop_proxy "$p2" "$p2name"
    p2=""
    p2name=p2-$1
    start_proxy p2 "$p2name" "$p2dir" proxyenv "$proxy_bin" --backend cuda --log-level debug \
        --zone a:24G --zone b:8G
}
# both STEP NAME SECONDS CMD...: CMD natively, then remoted (zone a of p2). Python gets only
# the driver's directory (NVIDIA's or libvgpu's) on LD_LIBRARY_PATH: its wheels bring their own
# CUDA libraries, which the bundle's libcudart must not replace.
both() {
    local step=$1 name=$2 t=$3 mode env=() rc lb
    shift 3
    for mode in native remoted; do
        lb=$L/$step-$name-$mode
        if [[ $mode == native ]]; then
            env=("${native[@]}")
            [[ $1 == "$py" ]] && env[0]=LD_LIBRARY_PATH="$nv_libdir"
        else
            fresh_p2 "$step-$name" || { record "$step" "$name" fail mode remoted detail "no proxy"; continue; }
            shim_env env a "$p2dir"
            [[ $1 == "$py" ]] && env[0]=LD_LIBRARY_PATH="$B/vgpu"
        fi
        env+=(PYTHONUNBUFFERED=1)
        runp "$lb" "$(tmo "$t")" env "$@"
        rc=$?
        if ! import_json "$step" "$mode" "$lb.out"; then
            record "$step" "$name" fail mode "$mode" \
                detail "printed no result (status $rc$([[ $rc -eq 124 || $rc -eq 137 ]] && echo ', time limit')): $(tailof "$lb.err")" \
                shim_log "$(diag "$lb.err")"
        elif [[ $rc -ne 0 ]]; then
            # the program's own records say what failed; add what libvgpu logged
            record "$step" "$name.exit" info mode "$mode" status_code "$rc" \
                first_unsupported "$(first_match "$lb.err" 'not supported by libvgpu')" \
                first_unknown_table "$(first_match "$lb.err" 'unknown table')" \
                first_failed_op "$(first_match "$lb.err" ' -> [0-9]+$')" shim_log "$(diag "$lb.err")"
        fi
        grep -h '^{"name"' "$lb.out" 2>/dev/null | sed "s/^/  $mode: /" | cut -c1-400
    done
}
step_libs() {
    begin_step libs 60 || return
    local t
    for t in sgemm gemmex_bf16 sgemm_batched fft_c2c rand_uniform; do
        both libs "$t" 25 "$B/bin/libs" "$t"
    done
}
step_torch() {
    begin_step torch 140 || return
    if ! timeout 60 "$py" -c 'import torch' > "$L/torch-import.log" 2>&1; then
        record torch torch skip reason "$py cannot import torch: $(tailof "$L/torch-import.log" 2)"
    else
        both torch torch 70 "$py" "$here/torch_check.py" torch
    fi
    if ! timeout 60 "$py" -c 'import cupy' > "$L/cupy-import.log" 2>&1; then
        record torch cupy skip reason "$py cannot import cupy: $(tailof "$L/cupy-import.log" 2)"
    else
        both torch cupy 50 "$py" "$here/torch_check.py" cupy
    fi
}
step_bench() {
    begin_step bench 100 || return
    local scale=1
    [[ $chain == 1 ]] && scale=0.2
    both bench bench_gpu 40 "$B/bin/bench_gpu" "$scale"
    if grep -q '"name": "torch.mlp_training", "status": "pass"' "$L"/torch-torch-*.out 2>/dev/null; then
        both bench torch_step 45 "$py" "$here/torch_check.py" bench
    else
        record bench torch_step skip reason "PyTorch training did not pass in step 4 (natively or remoted)"
    fi
}

# ---- step 5: the worker sandbox ----
step_sandbox() {
    begin_step sandbox 80 || return
    local help=$L/proxy-help.out args=()
    if [[ -n ${GPU_CHECK_SANDBOX_ARGS:-} ]]; then
        read -ra args <<< "$GPU_CHECK_SANDBOX_ARGS"
    else
        grep -q -- '--worker-user' "$help" && args+=(--worker-user nobody)
        grep -q -- '--seccomp\b' "$help" && args+=(--seccomp)
    fi
    record sandbox options info help "$(grep -iE 'worker|seccomp|sandbox|user' "$help" | tr -s ' ' | tr '\n' '|' | cut -c1-1000)" \
        args "${args[*]:-none}"
    if [[ ${#args[@]} -eq 0 ]]; then
        record sandbox sandbox skip reason "gpu_proxy --help lists no worker sandbox option (looked for --worker-user and --seccomp); set GPU_CHECK_SANDBOX_ARGS to name them"
        say "sandbox: not tested (gpu_proxy offers no worker sandbox option)"
        return
    fi
    local p3="" p3dir=$work/p3 p env=() rc
    start_proxy p3 p3 "$p3dir" proxyenv "$proxy_bin" --backend cuda --log-level debug \
        --zone a:8G "${args[@]}" || return
    for p in kernels/vector_add kernels/matmul_shared.shared e2e/t_memory-static \
             e2e/t_streams-shared e2e/t_cublas-static e2e/t_driver-static bin/libs; do
        shim_env env a "$p3dir"
        local lb=$L/sandbox-${p//\//_} a2=()
        [[ $p == bin/libs ]] && a2=(sgemm)
        runp "$lb" "$(tmo 60)" env "$B/$p" "${a2[@]}"
        rc=$?
        if [[ $rc -eq 0 ]]; then record sandbox "$p" pass
        else record sandbox "$p" fail detail "status $rc: $(tailof "$lb.err" 4)" shim_log "$(diag "$lb.err")"; fi
    done
    if timeout 30 "$py" -c 'import torch' > /dev/null 2>&1; then
        shim_env env a "$p3dir"
        env[0]=LD_LIBRARY_PATH="$B/vgpu"
        env+=(PYTHONUNBUFFERED=1)
        runp "$L/sandbox-torch" "$(tmo 60)" env "$py" "$here/torch_check.py" torch
        import_json sandbox remoted "$L/sandbox-torch.out" ||
            record sandbox torch fail detail "$(tailof "$L/sandbox-torch.err" 4)"
    fi
    alive "$p3" && record sandbox proxy_alive pass || record sandbox proxy_alive fail detail "$(tailof "$L/p3.log" 8)"
    stop_proxy "$p3" p3
    local denials
    denials=$(grep -iE 'seccomp|sigsys|denied|not permitted|EPERM' "$L/p3.log" | awk '!seen[$0]++' | head -n 12 | tr '\n' '|' | cut -c1-2000)
    record sandbox denials "$([[ -z $denials ]] && echo pass || echo fail)" \
        lines "${denials:-none logged}" \
        workers "$(grep -iE 'worker' "$L/p3.log" | head -n 4 | tr '\n' '|' | cut -c1-600)"
    # the kernel's audit log, where readable, names a seccomp kill with the system call number
    dmesg 2>/dev/null | grep -iE 'audit.*(seccomp|syscall=)' | tail -n 8 > "$L/dmesg-seccomp.log"
    [[ -s $L/dmesg-seccomp.log ]] && record sandbox kernel_audit info lines "$(tr '\n' '|' < "$L/dmesg-seccomp.log" | cut -c1-1500)"
}

step_facts
step_suites
step_libs
step_torch
step_bench
[[ -n $p2 ]] && stop_proxy "$p2" "$p2name"
p2=""
step_sandbox

# the GPU still answers after everything (a wedged GPU would make later runs meaningless)
end_env=("${native[@]}")
if runp "$L/probe-end" 60 end_env "$probe"; then record machine gpu_at_end pass
else record machine gpu_at_end fail detail "$(tailof "$L/probe-end.out" 3)"; fi
[[ $chain == 1 ]] && stop_proxy "$outer_pid" outer

# ---- report ----
finished=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for f in "$L"/*.log "$L"/*.out "$L"/*.err "$L"/suites/*; do
    [[ -f $f && $(stat -c %s "$f") -gt 2097152 ]] && { tail -c 2097152 "$f" > "$f.tail" && mv "$f.tail" "$f"; }
done
cp "$rec" "$L/records.jsonl"
tar -czf "$out/gpu-check-logs.tar.gz" -C "$work" logs 2>/dev/null ||
    say "could not write $out/gpu-check-logs.tar.gz"
if ! "$py" "$here/report.py" --records "$rec" --out "$json" --started "$started" \
        --finished "$finished" --seconds "$((SECONDS - t0))"; then
    say "report.py failed: the JSON holds the raw records"
    { printf '{"started": "%s", "finished": "%s", "records": [\n' "$started" "$finished"
      sed '$!s/$/,/' "$rec"; printf ']}\n'; } > "$json"
fi
nfail=$(grep -cE '"status":"(fail|error)"' "$rec")
[[ ${GPU_CHECK_KEEP:-0} == 1 ]] && say "work directory kept: $work" || rm -rf "$work"
say "wrote $json, $log and $out/gpu-check-logs.tar.gz in $((SECONDS - t0)) s"
exec >&- 2>&-
wait "$tee_pid" 2>/dev/null
[[ $nfail -eq 0 ]] && exit 0 || exit 1
