#!/usr/bin/env bash
# tests/zone-runtime/test_podman.sh - a real engine drives the runtime's command line: podman
# (with conmon) runs, lists, stops and removes a container through vgpu-zone-runtime. Without a
# hypervisor here the container is a pod sandbox (annotated as containerd marks one), which gets
# no guest; the guests themselves run under podman's OCI commands in tests/xen. Exit 77 (skip)
# when not root or without podman. Usage: test_podman.sh RUNTIME
set -uo pipefail
rt=$(realpath "${1:?usage: test_podman.sh RUNTIME}")
if [[ $(id -u) -ne 0 ]] || ! command -v podman >/dev/null; then
    echo "SKIP: needs root and podman (mk/deps.txt)"; exit 77
fi
tmp=$(mktemp -d)
# The runtime's default state directory: podman hands `--runtime-flag`s to the commands it runs
# itself but not to `podman container cleanup`, which conmon starts when the container exits and
# which may be the one that deletes it (a runtime root of our own would then be left behind).
root=/run/vgpu-zone-runtime
export VGPU_ZONE_RUNTIME_CONFIG=$tmp/runtime.conf
: > "$VGPU_ZONE_RUNTIME_CONFIG"
mkdir -p "$tmp/rootfs/bin"
cp "$(command -v busybox)" "$tmp/rootfs/bin/"
P=(podman --runtime "$rt")
id=
cleanup() { [[ -n "$id" ]] && timeout 60 "${P[@]}" rm -f "$id" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "PASS  $1"; }
ko() { fail=$((fail + 1)); echo "FAIL  $1"; }

id=$(timeout 120 "${P[@]}" run -d --network none --annotation io.kubernetes.cri.container-type=sandbox \
     --rootfs "$tmp/rootfs" /bin/busybox true 2>"$tmp/err") && [[ -n "$id" ]] \
    && ok "podman run -d: container $id" || ko "podman run -d: $(cat "$tmp/err")"
if [[ -n "$id" ]]; then
    st=$(timeout 60 "${P[@]}" inspect --format '{{.State.Status}} {{.State.Pid}}' "$id")
    pid=${st#* }
    [[ "$st" == running* && -f "$root/$id/state" ]] && grep -q "^pid=$pid$" "$root/$id/state" \
        && ok "running, its pid $pid is the runtime's monitor" || ko "inspect: '$st'"
    timeout 60 "${P[@]}" stop -t 2 "$id" >/dev/null 2>"$tmp/err" && ok "podman stop" \
        || ko "podman stop: $(cat "$tmp/err")"
    st=$(timeout 60 "${P[@]}" inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$id")
    [[ "$st" == "exited 143" ]] && ok "exited with 143 (SIGTERM)" || ko "after stop: '$st'"
    timeout 60 "${P[@]}" rm "$id" >/dev/null 2>"$tmp/err" && ok "podman rm" \
        || ko "podman rm: $(cat "$tmp/err")"
    [[ ! -e "$root/$id" ]] && ok "no state left" || ko "state left in $root/$id: $(ls -A "$root/$id" 2>&1 | tr "\n" " ")"
    id=
fi
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
