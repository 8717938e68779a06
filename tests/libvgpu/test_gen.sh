#!/bin/sh
# tests/libvgpu/test_gen.sh - the implemented/unsupported split is enforced: gen_libvgpu.py
# --check-defined, run over libvgpu's hand-written objects, passes for libvgpu/implemented.txt
# as committed and fails, naming the symbol, for a list that leaves out a defined name, lists a
# name nobody defines, lists a per-thread form, is unsorted, or for gen/ files out of date.
# Usage: test_gen.sh CUDA_INCLUDE OBJ... (run in libvgpu/).
set -u
inc=$1; shift
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
gen="python3 ../tools/gen_libvgpu.py --cuda-include $inc --symbols driver_symbols.txt"
pass=0; fail=0

# expect NAME WANT(0|1) PATTERN LIST: checks LIST (with its own regenerated gen/ unless the
# name says stale) and wants that exit status and PATTERN in the output
expect() {
    name=$1 want=$2 pat=$3 list=$4 out=$tmp/gen-$1
    shift 4
    if [ "$name" = stale ]; then out=gen; else
        $gen --implemented "$list" --out "$out" --map "$tmp/map" >/dev/null 2>&1; fi
    $gen --implemented "$list" --out "$out" --check-defined "$@" >"$tmp/log" 2>&1
    rc=$?
    if { [ "$want" = 0 ] && [ $rc -eq 0 ]; } || { [ "$want" = 1 ] && [ $rc -ne 0 ] &&
            grep -q "$pat" "$tmp/log"; }; then
        pass=$((pass + 1)); echo "PASS  $name"
    else fail=$((fail + 1)); echo "FAIL  $name (exit $rc):"; cat "$tmp/log"; fi
}
sorted() { LC_ALL=C sort "$@"; }

cp implemented.txt "$tmp/ok"
grep -vx cuMemcpyHtoD_v2 implemented.txt >"$tmp/missing"
{ cat implemented.txt; echo cuLinkCreate_v2; } | sorted >"$tmp/extra"
{ cat implemented.txt; echo cuMemcpy_ptds; } | sorted >"$tmp/per_thread"
{ cat implemented.txt; echo cuArrayCreate; } >"$tmp/unsorted"

expect committed 0 "" "$tmp/ok" "$@"
expect unlisted 1 "cuMemcpyHtoD_v2 is defined in .*api_mem.o but not listed" "$tmp/missing" "$@"
expect undefined 1 "cuLinkCreate_v2 is listed in implemented.txt but no source" "$tmp/extra" "$@"
expect per_thread 1 "cuMemcpy_ptds is a per-thread form, generated from cuMemcpy" \
    "$tmp/per_thread" "$@"
expect unsorted 1 "not sorted or not unique" "$tmp/unsorted" "$@"
expect stale 1 "gen/vgpu_stubs.h is out of date" "$tmp/extra" "$@"
echo "gen checks: $pass passed, $fail failed"
[ $fail -eq 0 ]
