#!/usr/bin/env bash
# tests/xen/fetch.sh - fetches the Debian packages the Xen test boots (Xen hypervisor and tools,
# their libraries, the Linux 6.1 kernel image) with `apt-get download` into a cache folder and
# unpacks them with `dpkg -x`; nothing is installed on the host. Usage: fetch.sh CACHE_DIR
# Exits non-zero, saying why, when a package cannot be fetched (the test then fails).
set -euo pipefail
cache=${1:?usage: fetch.sh CACHE_DIR}
debs="$cache/debs"
root="$cache/root"
mkdir -p "$debs"

kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
             sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
if [[ -z "$kernel_pkg" ]]; then
    echo "fetch: FAILED: cannot tell which kernel linux-image-amd64 depends on (apt-cache depends" \
         "linux-image-amd64 gave nothing; is the apt index present? try apt-get update)" >&2
    exit 1
fi
pkgs=(xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common xenstore-utils libxenmisc4.17
      libxenstore4 libxengnttab1 libxenevtchn1 libxentoollog1 libxencall1 libxenforeignmemory1
      libxendevicemodel1 libxentoolcore1 libxenhypfs1 libyajl2 "$kernel_pkg")

stamp="$root/.fetched"
want="${pkgs[*]}"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
    compgen -G "$debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    echo "fetch: apt-get download ${missing[*]}"
    # apt-get download writes into the current folder; as root it warns that the _apt sandbox
    # user cannot write there, which is harmless.
    download() { (cd "$debs" && apt-get download -q "$@" 2>&1 | grep -v 'unsandboxed as root'); }
    if ! download "${missing[@]}"; then
        # A stale package index names versions the mirror no longer has: refresh it once.
        if [[ $(id -u) -eq 0 ]]; then
            echo "fetch: apt-get download failed; running apt-get update and trying again"
            apt-get update -q >/dev/null 2>&1 || true
            download "${missing[@]}" || true
        fi
    fi
    for p in "${missing[@]}"; do
        if ! compgen -G "$debs/${p}_*.deb" >/dev/null; then
            echo "fetch: FAILED: could not download Debian package $p (apt-get download failed;" \
                 "check the network/apt sources, or run apt-get update)" >&2
            exit 1
        fi
    done
fi

rm -rf "$root"
mkdir -p "$root"
for p in "${pkgs[@]}"; do
    for f in "$debs/${p}"_*.deb; do
        dpkg -x "$f" "$root" || { echo "fetch: FAILED: dpkg -x $f" >&2; exit 1; }
    done
done
echo "$want" > "$stamp"
echo "fetch: unpacked ${#pkgs[@]} packages into $root"
