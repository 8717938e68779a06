#!/usr/bin/env bash
# tests/run-all.sh - runs every test suite of the project (what `make test` does), each in turn
# even when an earlier one fails, and prints a summary. A suite's exit status 77 means skipped
# (it printed why); any other non-zero status is a failure. Exit status: 0 only if none failed.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
logdir="$top/tests/logs"
mkdir -p "$logdir"

# name | command. Suites that cannot run under sanitizers say so via SANITIZE_SKIP below.
suites=(
    "idm-protocol|make --no-print-directory -C idm-protocol test"
    "ptx|make --no-print-directory -C gpu-proxy/ptx test"
    "gpu-proxy|make --no-print-directory -C gpu-proxy test"
    "metrics|make --no-print-directory -C tests/metrics test"
    "libvgpu|make --no-print-directory -C libvgpu test"
    "kernels|make --no-print-directory -C tests/kernels test"
    "chain|tests/chain/run.sh"
    "k8s|make --no-print-directory -C k8s test"
    "zone-runtime|make --no-print-directory -C zone-runtime test"
    "kernel-config|make --no-print-directory -C kernel check"
    "xen|make --no-print-directory -C tests/xen test"
)
# Suites that are not part of the sanitizer pass (they run in the plain `make test`).
sanitize_skip="kernel-config xen chain metrics"

pass=0; fail=0; skip=0; summary=()
for entry in "${suites[@]}"; do
    name=${entry%%|*}; cmd=${entry#*|}
    if [[ -n "${SANITIZE:-}" && " $sanitize_skip " == *" $name "* ]]; then
        summary+=("SKIP  $name (not part of the SANITIZE=$SANITIZE pass; runs in plain make test)")
        skip=$((skip + 1)); continue
    fi
    echo "=== suite $name: $cmd"
    start=$(date +%s)
    bash -c "$cmd" 2>&1 | tee "$logdir/$name.log"
    rc=${PIPESTATUS[0]}
    secs=$(( $(date +%s) - start ))
    if [[ $rc -eq 0 ]]; then
        pass=$((pass + 1)); summary+=("PASS  $name (${secs}s)")
    elif [[ $rc -eq 77 ]]; then
        skip=$((skip + 1)); summary+=("SKIP  $name (${secs}s; see $logdir/$name.log)")
    else
        fail=$((fail + 1)); summary+=("FAIL  $name (exit $rc, ${secs}s; log: $logdir/$name.log)")
    fi
done
echo
echo "=== test summary${SANITIZE:+ (SANITIZE=$SANITIZE)}"
printf '%s\n' "${summary[@]}"
echo "suites: $pass passed, $fail failed, $skip skipped"
[[ $fail -eq 0 ]]
