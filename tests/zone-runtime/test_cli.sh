#!/usr/bin/env bash
# tests/zone-runtime/test_cli.sh - the runtime's command line without a hypervisor: --version,
# features, the errors an engine must get for missing containers, bad ids, bad bundles and
# signals, a terminal without a console socket, and a create that fails half way leaving no
# state and no loop device behind. (Guests themselves run in tests/xen.) Usage: test_cli.sh RUNTIME
set -uo pipefail
rt=$(realpath "${1:?usage: test_cli.sh RUNTIME}")
tmp=$(mktemp -d)
# A failed run must not leave a sandbox's monitor behind.
trap '[[ -s "$tmp/pid" ]] && kill "$(cat "$tmp/pid")" 2>/dev/null; rm -rf "$tmp"' EXIT
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

# A pod's sandbox (pause) container gets no guest: the whole life cycle runs without Xen.
echo '{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"sandbox"},"process":{"args":["/pause"],"cwd":"/"},"root":{"path":"rootfs"}}' > "$b/config.json"
# The monitor keeps create's stdout, as an engine's container output: give it a file.
if "$rt" "${R[@]}" create --bundle "$b" --pid-file "$tmp/pid" s1 > "$tmp/s1.out" 2>&1 &&
   [[ -s "$tmp/pid" ]]; then
    pass=$((pass + 1)); echo "PASS  sandbox-create"
else
    fail=$((fail + 1)); echo "FAIL  sandbox-create: $(cat "$tmp/s1.out")"
fi
check sandbox-created 0 '"status": "created"' "$rt" "${R[@]}" state s1
check sandbox-exists 1 'container exists' "$rt" "${R[@]}" create --bundle "$b" s1
check sandbox-start 0 '^$' "$rt" "${R[@]}" start s1
check sandbox-running 0 "\"status\": \"running\".*\"pid\": $(cat "$tmp/pid" 2>/dev/null)," "$rt" "${R[@]}" state s1
check sandbox-start-twice 1 'running, not created' "$rt" "${R[@]}" start s1
check sandbox-delete-running 1 'is running' "$rt" "${R[@]}" delete s1
check sandbox-kill 0 '^$' "$rt" "${R[@]}" kill s1 KILL
for _ in $(seq 1 50); do "$rt" "${R[@]}" state s1 | grep -q stopped && break; sleep 0.1; done
check sandbox-stopped 0 '"status": "stopped"' "$rt" "${R[@]}" state s1
check sandbox-kill-stopped 1 'not running' "$rt" "${R[@]}" kill s1 TERM
check sandbox-delete 0 '^$' "$rt" "${R[@]}" delete s1
check sandbox-gone 1 'does not exist' "$rt" "${R[@]}" state s1
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
