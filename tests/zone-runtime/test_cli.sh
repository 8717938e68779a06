#!/usr/bin/env bash
# tests/zone-runtime/test_cli.sh - the runtime's command line without a hypervisor: --version,
# features, the errors an engine must get for missing containers, bad ids, bad bundles and
# signals, a terminal without a console socket, and a create that fails half way leaving no
# state and no loop device behind. (Guests themselves run in tests/xen.) Usage: test_cli.sh RUNTIME
set -uo pipefail
rt=$(realpath "${1:?usage: test_cli.sh RUNTIME}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
check() { # NAME WANT_STATUS WANT_OUTPUT_REGEX CMD...
    local name=$1 want=$2 re=$3 out rc; shift 3
    out=$("$@" 2>&1); rc=$?
    if [[ $rc -eq $want && "$out" =~ $re ]]; then
        pass=$((pass + 1)); echo "PASS  $name"
    else
        fail=$((fail + 1)); echo "FAIL  $name: status $rc (want $want), output: $out"
    fi
}
export VGPU_ZONE_RUNTIME_CONFIG=$tmp/runtime.conf
printf 'mkfs = /bin/false\nkernel = %s/kernel\n' "$tmp" > "$tmp/runtime.conf"
R=(--root "$tmp/state" --log "$tmp/log.json" --log-format json --systemd-cgroup)

check version 0 'vgpu-zone-runtime version [0-9.]+.*spec: 1\.' "$rt" --version
if "$rt" features | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["ociVersionMax"].startswith("1.")'; then
    pass=$((pass + 1)); echo "PASS  features-json"
else
    fail=$((fail + 1)); echo "FAIL  features-json: not valid JSON with ociVersionMax"
fi
check state-missing 1 'container nope does not exist' "$rt" "${R[@]}" state nope
check kill-missing 1 'does not exist' "$rt" "${R[@]}" kill nope KILL
check delete-missing 1 'does not exist' "$rt" "${R[@]}" delete nope
check delete-force-missing 0 '^$' "$rt" "${R[@]}" delete --force nope
check bad-id 1 'container id' "$rt" "${R[@]}" state '../etc'
check bad-signal 1 'unknown signal' "$rt" "${R[@]}" kill c1 SIGNOPE
check unknown-command 1 'unknown command' "$rt" "${R[@]}" frobnicate
check unknown-global 1 'unknown global option' "$rt" --bogus state c1
check no-bundle 1 'bundle .*/none: No such file' "$rt" "${R[@]}" create --bundle "$tmp/none" c1

b=$tmp/bundle
mkdir -p "$b/rootfs/bin"
echo '{"ociVersion":"1.0.2","process":{"terminal":true,"args":["/bin/sh"],"cwd":"/"},"root":{"path":"rootfs"}}' > "$b/config.json"
check terminal-needs-socket 1 'console-socket' "$rt" "${R[@]}" create --bundle "$b" c1
echo '{"ociVersion":"1.0.2","process":{"args":["/bin/sh"],"cwd":"/","env":["VGPU_ZONE=za"]},"root":{"path":"rootfs"}}' > "$b/config.json"
check create-fails-cleanly 1 'making its root image failed: /bin/false exit status 1' \
    "$rt" "${R[@]}" create --bundle "$b" --pid-file "$tmp/pid" c1
if [[ ! -e "$tmp/state/c1" && ! -e "$tmp/pid" ]]; then
    pass=$((pass + 1)); echo "PASS  create-leaves-nothing"
else
    fail=$((fail + 1)); echo "FAIL  create-leaves-nothing: $(ls -R "$tmp/state" 2>&1)"
fi
if grep -q '"level":"error","msg":"container c1: making its root image failed' "$tmp/log.json"; then
    pass=$((pass + 1)); echo "PASS  log-json"
else
    fail=$((fail + 1)); echo "FAIL  log-json: $(cat "$tmp/log.json")"
fi
check create-again-after-failure 1 'making its root image failed' \
    "$rt" "${R[@]}" create --bundle "$b" c1
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
