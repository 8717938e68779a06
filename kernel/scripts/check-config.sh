#!/bin/sh
# check-config.sh - verifies that a merged kernel .config holds every value the config fragments
# ask for (merge_config.sh + olddefconfig silently drop options whose dependencies are unmet).
# Usage: check-config.sh FINAL_CONFIG FRAGMENT...
# One check per requested option; prints each failure, a line per fragment, and finally
# `N passed, N failed`. Exit status 0 when nothing failed, 1 otherwise, 2 on usage errors.

set -u

if [ "$#" -lt 2 ]; then
    echo "usage: $0 FINAL_CONFIG FRAGMENT..." >&2
    exit 2
fi

final=$1
shift
if [ ! -r "$final" ]; then
    echo "check-config: cannot read the merged configuration $final" >&2
    exit 2
fi

total_pass=0
total_fail=0

for frag in "$@"; do
    if [ ! -r "$frag" ]; then
        echo "check-config: cannot read fragment $frag" >&2
        exit 2
    fi
    # awk prints the fragment's failures, then "pass fail" counts on the last line.
    # A request is `CONFIG_X=value` or `# CONFIG_X is not set`; any other line must be a comment
    # or blank. In the final .config an absent symbol is one whose dependencies are unmet: its
    # value is n, which satisfies `is not set` and fails any other request.
    result=$(awk -v frag="$(basename "$frag")" '
        FNR == NR {
            if ($0 ~ /^CONFIG_[A-Za-z0-9_]+=/) {
                eq = index($0, "=")
                have[substr($0, 1, eq - 1)] = substr($0, eq + 1)
            } else if ($0 ~ /^# CONFIG_[A-Za-z0-9_]+ is not set$/) {
                have[$2] = "n"
            }
            next
        }
        /^CONFIG_[A-Za-z0-9_]+=/ {
            eq = index($0, "=")
            sym = substr($0, 1, eq - 1); want = substr($0, eq + 1)
            sub(/[ \t]+$/, "", want)
        }
        /^# CONFIG_[A-Za-z0-9_]+ is not set[ \t]*$/ { sym = $2; want = "n" }
        /^CONFIG_[A-Za-z0-9_]+=/ || /^# CONFIG_[A-Za-z0-9_]+ is not set[ \t]*$/ {
            if (sym in have) {
                got = have[sym]
                if (got == want) {
                    pass++
                } else {
                    fail++
                    printf "FAIL %s: %s: requested %s, final .config has %s\n", frag, sym, \
                        (want == "n" ? "is not set" : want), (got == "n" ? "is not set" : got)
                }
            } else if (want == "n") {
                pass++
            } else {
                fail++
                printf "FAIL %s: %s: requested %s, dropped from the final .config (unmet dependencies or unknown symbol)\n", \
                    frag, sym, want
            }
            next
        }
        /^[ \t]*(#.*)?$/ { next }
        {
            fail++
            printf "FAIL %s:%d: not a config request or comment: %s\n", frag, FNR, $0
        }
        END { printf "%d %d\n", pass + 0, fail + 0 }
    ' "$final" "$frag")
    if [ $? -ne 0 ]; then
        echo "check-config: awk failed on $frag" >&2
        exit 2
    fi
    counts=$(printf '%s\n' "$result" | tail -n 1)
    printf '%s\n' "$result" | sed '$d'
    pass=${counts% *}
    fail=${counts#* }
    echo "$(basename "$frag"): $pass passed, $fail failed"
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
done

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
