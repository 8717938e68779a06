#!/bin/sh
# tests/xen/zone-lib.sh - what the container runtime's cases share (zone.sh, podman.sh): the
# runtime's paths, verdict lines, bundles made from runc's default spec, waiting for and reading
# zone_engine's log, diagnostics and a heartbeat. Sourced in dom0 after scenario-lib.sh.
rt=vgpu-zone-runtime
root=/run/vgpu-zone-runtime
admin=/run/gpu-proxy/admin.sock
zone_missing=$(cat /opt/vgpu/zone/missing 2>/dev/null | tr '\n' ' ')

verdict() { echo "XENTEST CASE $1 $2 $3"; }

# mkbundle NAME ENV_JSON ARGS_JSON: a bundle from runc's default spec, with our args and env,
# the shared root filesystem, no terminal.
mkbundle() {
    mkdir -p /run/bundles/$1
    runc spec --bundle /run/bundles/$1 || return 1
    sed -i -e 's|"terminal": true|"terminal": false|' \
        -e "s|^\(\t*\)\"sh\"$|\1$3|" \
        -e "s|\"TERM=xterm\"|\"TERM=xterm\"$2|" \
        -e 's|"path": "rootfs"|"path": "/opt/vgpu/zone/rootfs"|' /run/bundles/$1/config.json
}

# engine_wait ID SECS: waits for zone_engine's last line in /run/eng-ID.log.
engine_wait() {
    i=0
    while ! grep -q "XENTEST ENGINE $1 \(deleted\|.*failed\|no pid\)" /run/eng-$1.log 2>/dev/null \
          && [ $i -lt $(($2 * 4)) ]; do
        sleep 0.25; i=$((i + 1))
    done
}

# zone_diag: what the engines, xl, the guests' consoles and dom0's kernel said (on failure).
zone_diag() {
    xl list
    for f in /run/eng-*.log /var/log/xen/xl-vz-*.log /var/log/xen/console/guest-vz-*.log \
             /var/log/xen/xen-hotplug.log; do
        [ -f "$f" ] && tail -n 25 "$f" | sed "s|^|[diag $(basename "$f")] |"
    done
    dmesg | tail -n 20 | sed 's/^/[diag dmesg] /'
}

# A line every 20 s while the containers run, so a stall shows where it is.
heartbeat() {
    while sleep 20; do
        echo "XENTEST zone: $(cut -d' ' -f1 /proc/uptime)s: $(xl list | grep -c '^vz-') guests;" \
             "$(for c in ra rb rn; do [ -f /run/eng-$c.log ] && printf '%s: %s; ' $c "$(tail -n 1 /run/eng-$c.log)"; done)"
    done
}

engine_exit() { sed -n "s/^XENTEST ENGINE $1 exit=\([0-9]*\)$/\1/p" /run/eng-$1.log; }
first_ms() { sed -n "s/^XENTEST ENGINE $1 first-line-ms=\([0-9]*\)$/\1/p" /run/eng-$1.log; }
