#!/usr/bin/env bash
# mk/deps.sh - makes sure every Debian package named in mk/deps.txt is installed: installs the
# missing ones with one apt-get install when running as root, otherwise stops and prints the
# exact command to run. Called by the top-level Makefile before anything is built.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t want < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/deps.txt" | grep -v '^$' | sort -u)
missing=()
for p in "${want[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]]; then
    echo "deps: installing missing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
        apt-get update -q >&2 || { echo "deps: apt-get update failed" >&2; exit 1; }
        apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
            || { echo "deps: apt-get install failed for: ${missing[*]}" >&2; exit 1; }
    fi
else
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run as root:  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
fi
