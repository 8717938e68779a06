#!/bin/sh
# run_tests.sh - runs gpu_proxy's test programs: run_tests.sh BINDIR TEST...
# Integration tests (test_proxy*, test_workers*, test_bounds*, test_admin*, test_cgroup*, test_metrics_live*,
# fuzz_worker*) get BINDIR/gpu_proxy_stub as their argument; test_cuda gets BINDIR/gpu_proxy.
# Exit status 77 counts as skipped. Prints "N passed, N failed" last.
bindir=$1
shift
pass=0; fail=0; skip=0
for t in "$@"; do
    name=$(basename "$t")
    case "$name" in
        test_proxy*|test_workers*|test_bounds*|test_admin*|test_cgroup*|test_metrics_live*|fuzz_worker*) arg="$bindir/gpu_proxy_stub" ;;
        test_cuda*) arg="$bindir/gpu_proxy" ;;
        *) arg="" ;;
    esac
    echo "== $name"
    if [ -n "$arg" ]; then "$t" "$arg"; else "$t"; fi
    rc=$?
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
    elif [ $rc -eq 77 ]; then
        skip=$((skip + 1)); echo "   ($name skipped)"
    else
        fail=$((fail + 1)); echo "   ($name FAILED, exit status $rc)"
    fi
done
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
