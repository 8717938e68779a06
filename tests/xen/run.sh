#!/usr/bin/env bash
# tests/xen/run.sh - boots Xen under QEMU (TCG, qemu64,+svm,+npt; see
# docs/XEN.md) with the dom0 kernel and image built by mkimages.sh, under a timeout, and reads
# the verdict from the serial console: every `XENTEST CASE <name> PASS|FAIL` line (and those of
# the host-side unit test in BUILD_DIR/host-verdicts), plus a FAIL for each expected case that
# never reported. Usage: run.sh BUILD_DIR LOG "CASE..."; XEN_SCENARIO=boottime runs
# boottime.sh in dom0 instead of scenario.sh.
# Prints a summary ending in `N passed, N failed`; exit status 0 only when nothing failed.
set -uo pipefail
build=${1:?usage: run.sh BUILD_DIR LOG CASES}
log=${2:?usage: run.sh BUILD_DIR LOG CASES}
expected=${3:-}
qemu_timeout=${XEN_QEMU_TIMEOUT:-600}
scenario_timeout=${XEN_SCENARIO_TIMEOUT:-500}

for f in xen vmlinuz dom0.cpio.gz; do
    [[ -f "$build/$f" ]] || { echo "run: $build/$f is missing (make -C tests/xen images)"; echo "0 passed, 1 failed"; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || {
    echo "run: qemu-system-x86_64 not found (install qemu-system-x86; it is in mk/deps.txt)"
    echo "0 passed, 1 failed"; exit 1; }

mkdir -p "$(dirname "$log")"
start=$(date +%s.%N)
echo "run: booting Xen under QEMU (TCG), serial console in $log, limit ${qemu_timeout}s"
# A comma inside a multiboot module's arguments would be written ",,"; none here.
timeout --kill-after=10 "$qemu_timeout" qemu-system-x86_64 \
    -accel tcg,thread=multi -cpu qemu64,+svm,+npt -m 3072 -smp 2 \
    -display none -no-reboot -monitor none -serial "file:$log" -net none \
    -kernel "$build/xen" \
    -append "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 loglvl=warning guest_loglvl=warning bootscrub=0 spec-ctrl=no" \
    -initrd "$build/vmlinuz console=hvc0 earlyprintk=xen rdinit=/init loglevel=4 mitigations=off vgpu.timeout=$scenario_timeout${XEN_SCENARIO:+ vgpu.scenario=$XEN_SCENARIO},$build/dom0.cpio.gz" \
    < /dev/null
qrc=$?
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "run: QEMU exited with status $qrc after ${secs}s"

tr -d '\r' < "$log" > "$log.txt"
# Show what the test printed (the guests' consoles come through dom0, prefixed by their name).
grep -a 'XENTEST\|^\[' "$log.txt" | grep -av '^\[ *[0-9]*\.[0-9]*\]' || true

pass=0; fail=0; declare -A seen=()
while read -r name verdict why; do
    seen[$name]=1
    if [[ "$verdict" == PASS ]]; then
        pass=$((pass + 1)); echo "PASS  $name: $why"
    else
        fail=$((fail + 1)); echo "FAIL  $name: $why"
    fi
done < <(cat "$build/host-verdicts" "$log.txt" 2>/dev/null | grep -ao 'XENTEST CASE .*' |
         sed 's/^XENTEST CASE //')
for name in $expected; do
    if [[ -z "${seen[$name]:-}" ]]; then
        fail=$((fail + 1)); echo "FAIL  $name: never reported a verdict (see $log.txt)"
    fi
done
if ! grep -aq 'XENTEST END' "$log.txt"; then
    fail=$((fail + 1))
    if [[ $qrc -eq 124 || $qrc -eq 137 ]]; then
        echo "FAIL  run: QEMU killed after ${qemu_timeout}s, dom0 never finished (see $log.txt)"
    else
        echo "FAIL  run: dom0 never finished its scenario (QEMU status $qrc; see $log.txt)"
    fi
fi
echo "xen: boot-to-poweroff ${secs}s wall time under TCG"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
