#!/bin/sh
# tests/xen/boottime.sh - the boot-time scenario (make -C tests/xen boot-time): creates one
# guest at a time, three times, with nothing else running, and reports how long `xl create`
# took, when the guest's /init reached xenstore and when the domain was gone. Figures only.
. /opt/vgpu/scenario-lib.sh

now() { cut -d' ' -f1 /proc/uptime; }
GUEST_LOGLEVEL=7 # the guest's kernel log, with its time stamps, ends up in its console
sum=""
for run in 1 2 3; do
    t0=$(now)
    guest_start boot$run hello || continue
    t1=$(now)
    id=$(domid_of boot$run)
    if v=$(wait_key /local/domain/$id/data/hello 120); then
        t2=$(now)
        xenstore-write /local/domain/$id/data/answer "answer-for-$id"
    else
        t2=""
    fi
    guest_wait boot$run 60
    t3=$(now)
    guest_log boot$run
    line=$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
        if (c == "") { printf "xl-create %.2fs, never reached userspace", b - a; exit }
        printf "xl-create %.2fs, create-to-userspace %.2fs, create-to-gone %.2fs", b - a, c - a, d - a }')
    echo "XENTEST BOOT run $run: $line"
    [ -n "$t2" ] || echo "XENTEST CASE boottime FAIL run $run: the guest never reached userspace"
    sum="$sum; $line"
done
echo "XENTEST CASE boottime PASS guest kernel $(cat /opt/vgpu/guest/kernel.name)$sum"
