#!/bin/sh
# tests/xen/scenario-lib.sh - helpers the dom0 scenarios source: create a guest running a role,
# wait for it or for a xenstore key (polling xenstore, cheap under TCG), print its console.
# guest_start NAME ROLE [ARGS]: creates a PV guest running ROLE; ARGS: more vgpu.* settings.
guest_start() {
    name=$1; role=$2; shift 2
    cat > /run/$name.cfg <<CFG
name = "$name"
type = "pv"
kernel = "/opt/vgpu/guest/kernel"
ramdisk = "/opt/vgpu/guest/initrd"
extra = "console=hvc0 rdinit=/init loglevel=${GUEST_LOGLEVEL:-4} mitigations=off vgpu.role=$role $*"
memory = ${GUEST_MEM:-192}
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
on_reboot = "destroy"
CFG
    if ! timeout 60 xl create ${XL_CREATE_FLAGS:-} -q /run/$name.cfg > /run/$name.create.log 2>&1; then
        cat /run/$name.create.log
        echo "XENTEST CASE create-$name FAIL xl create failed"
        return 1
    fi
    xl domid $name > /run/$name.domid
    echo "XENTEST guest $name (role $role) is domain $(cat /run/$name.domid) at $(cut -d' ' -f1 /proc/uptime)s"
}

# domid_of NAME: the domain id the guest had when it was created (it may be gone since).
domid_of() {
    cat /run/$1.domid 2>/dev/null
}

# guest_wait NAME SECS: waits until the domain is gone; destroys it after SECS seconds.
# (Polls xenstore, which xl cleans up when the domain dies: `xl domid` costs far more CPU.)
guest_wait() {
    i=0
    id=$(domid_of "$1")
    while xenstore-exists /local/domain/$id 2>/dev/null; do
        if [ $i -ge $(($2 * 4)) ]; then
            echo "XENTEST CASE wait-$1 FAIL guest $1 still running after $2 s: destroyed"
            xl destroy "$1"
            break
        fi
        sleep 0.25; i=$((i + 1))
    done
}

# guest_log NAME: prints the guest's console, each line prefixed with its name.
guest_log() {
    sleep 0.5
    sed "s/^/[$1] /" /var/log/xen/console/guest-$1.log 2>/dev/null \
        || echo "XENTEST CASE console-$1 FAIL no console log for $1"
}

# wait_key PATH SECS: waits until a xenstore key exists; prints its value. Gives up early when
# the domain whose directory holds PATH is gone.
wait_key() {
    i=0
    dom=$(echo "$1" | sed -n 's|^\(/local/domain/[0-9]*\)/.*|\1|p')
    while ! xenstore-read "$1" 2>/dev/null; do
        [ $i -ge $(($2 * 4)) ] && return 1
        [ -n "$dom" ] && ! xenstore-exists "$dom" 2>/dev/null && return 1
        sleep 0.25; i=$((i + 1))
    done
}
