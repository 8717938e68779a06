#!/usr/bin/env bash
# bundle.sh - completes tests/gpu/build/ (called by `make bundle`; settings come from the
# Makefile through the environment): copies the project's gpu_proxy, gpu_proxy_stub, vgpu-smi, libvgpu's
# libcuda.so.1 and gpu-proxy's test programs into it, the shared libraries those need beyond
# glibc (a GPU machine may lack libxen*, libzstd, libcmocka) and libcudart.so.13, then writes
# MANIFEST (commit, date, machine, what is missing). Exit 1 when a REQUIRED file is missing.
set -uo pipefail
: "${B:?} ${TOP:?} ${PROXY_TESTS:?} ${CUDA_LIB:?} ${NVCC:?} ${REQUIRED:?}"
mkdir -p "$B/bin" "$B/vgpu" "$B/cudalib" "$B/syslib"
cp -f "$TOP/gpu-proxy/gpu_proxy" "$TOP/gpu-proxy/gpu_proxy_stub" "$TOP/gpu-proxy/vgpu-smi" "$B/bin/" 2>/dev/null
for t in test_cuda test_proxy; do
    [[ -x "$PROXY_TESTS/$t" ]] && cp -f "$PROXY_TESTS/$t" "$B/bin/"
done
if [[ -e "$TOP/libvgpu/libcuda.so.1" ]]; then
    cp -fL "$TOP/libvgpu/libcuda.so.1" "$B/vgpu/libcuda.so.1" && ln -sf libcuda.so.1 "$B/vgpu/libcuda.so"
fi
[[ -e "$CUDA_LIB/libcudart.so.13" ]] && cp -fL "$CUDA_LIB/libcudart.so.13" "$B/cudalib/"
rm -f "$B/syslib/"*
for f in "$B/bin/gpu_proxy" "$B/bin/gpu_proxy_stub" "$B/bin/test_cuda" "$B/bin/test_proxy"; do
    [[ -x "$f" ]] && ldd "$f" 2>/dev/null
done | awk '/=> \//{print $3}' | sort -u |
    grep -Ev '/(libc|libm|libdl|libpthread|librt|libresolv|libgcc_s|ld-linux[^/]*)\.so' |
    while read -r lib; do cp -fL "$lib" "$B/syslib/"; done

missing=(); opt_missing=()
for f in $REQUIRED; do [[ -e "$f" ]] || missing+=("${f#"$B"/}"); done
for f in ${OPTIONAL:-}; do [[ -e "$f" ]] || opt_missing+=("${f#"$B"/}"); done
commit=$(git -C "$TOP" rev-parse HEAD 2>/dev/null || echo unknown)
git -C "$TOP" diff --quiet HEAD 2>/dev/null || commit="$commit (+ uncommitted changes)"
{
    echo "commit $commit"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n) ($( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null))"
    echo "nvcc $("$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
    echo "missing ${missing[*]:-none}"
    echo "optional-missing ${opt_missing[*]:-none}"
    echo "syslib $(ls "$B/syslib" | tr '\n' ' ')"
} > "$B/MANIFEST"
echo "gpu-check bundle: $B/ ($(du -sh "$B" | cut -f1)); missing: ${missing[*]:-none}; optional missing: ${opt_missing[*]:-none}"
[[ ${#missing[@]} -eq 0 ]]
