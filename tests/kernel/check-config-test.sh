#!/usr/bin/env bash
# tests/kernel/check-config-test.sh - tests kernel/scripts/check-config.sh (the checker behind
# `make -C kernel check`) on hand-written final configurations and fragments: kept, dropped and
# changed options must be told apart and named, and bad input must fail.
# Prints a line per case and `N passed, N failed` last; exit 0 only when every case passed.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
checker="$here/../../kernel/scripts/check-config.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/vgpu-kcheck.XXXXXX") || { echo "check-config-test: mktemp failed" >&2; exit 1; }
trap 'rm -rf "$work"' EXIT

passed=0
failed=0

# expect NAME WANT_STATUS PATTERN... -- ARGS...: runs the checker on ARGS; passes when its exit
# status is WANT_STATUS and its output holds every PATTERN (fixed strings).
expect() {
    local name=$1 want=$2; shift 2
    local patterns=()
    while [[ $1 != -- ]]; do patterns+=("$1"); shift; done
    shift
    local out status p why=""
    out=$(sh "$checker" "$@" 2>&1); status=$?
    [[ $status -eq $want ]] || why="exit status $status, wanted $want"
    for p in "${patterns[@]}"; do
        grep -qF -- "$p" <<< "$out" || why="${why:+$why; }output lacks '$p'"
    done
    if [[ -z "$why" ]]; then
        echo "ok   $name"; passed=$((passed + 1))
    else
        echo "FAIL $name: $why"; sed 's/^/    /' <<< "$out"; failed=$((failed + 1))
    fi
}

cat > "$work/final.config" <<'EOF'
CONFIG_A=y
# CONFIG_B is not set
CONFIG_STR="hello world"
CONFIG_NUM=250
CONFIG_M=y
EOF

printf '# kept options\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_STR="hello world"\n\nCONFIG_NUM=250\n' > "$work/good.config"
printf '# CONFIG_ABSENT is not set\n' > "$work/absent-off.config"
printf 'CONFIG_DROPPED=y\n' > "$work/dropped.config"
printf 'CONFIG_B=y\n' > "$work/turned-off.config"
printf '# CONFIG_M is not set\n' > "$work/turned-on.config"
printf 'CONFIG_NUM=1000\nCONFIG_STR="other"\n' > "$work/changed.config"
printf 'CONFIG_A=y\nnot a config line\n' > "$work/bogus.config"

expect "kept values pass" 0 "good.config: 4 passed, 0 failed" "4 passed, 0 failed" \
    -- "$work/final.config" "$work/good.config"
expect "'is not set' for an absent symbol passes" 0 "1 passed, 0 failed" \
    -- "$work/final.config" "$work/absent-off.config"
expect "dropped option is named" 1 "FAIL dropped.config: CONFIG_DROPPED: requested y, dropped" \
    "0 passed, 1 failed" -- "$work/final.config" "$work/dropped.config"
expect "y that ended 'not set' is named" 1 \
    "FAIL turned-off.config: CONFIG_B: requested y, final .config has is not set" \
    -- "$work/final.config" "$work/turned-off.config"
expect "'not set' that ended y is named" 1 \
    "FAIL turned-on.config: CONFIG_M: requested is not set, final .config has y" \
    -- "$work/final.config" "$work/turned-on.config"
expect "changed values are named" 1 "CONFIG_NUM: requested 1000, final .config has 250" \
    "CONFIG_STR: requested \"other\", final .config has \"hello world\"" "0 passed, 2 failed" \
    -- "$work/final.config" "$work/changed.config"
expect "a line that is neither request nor comment fails" 1 "bogus.config:2: not a config request" \
    "1 passed, 1 failed" -- "$work/final.config" "$work/bogus.config"
expect "totals add up over fragments" 1 "5 passed, 1 failed" \
    -- "$work/final.config" "$work/good.config" "$work/absent-off.config" "$work/dropped.config"
expect "missing final .config is a usage error" 2 "cannot read the merged configuration" \
    -- "$work/nonexistent.config" "$work/good.config"
expect "missing fragment is a usage error" 2 "cannot read fragment" \
    -- "$work/final.config" "$work/nonexistent.config"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
