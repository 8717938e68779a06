#!/usr/bin/env bash
# tests/k8s/run-integration.sh - the device plugin's integration tests against real peers (run
# by `make -C k8s test` after building gpu_proxy_stub, libvgpu and the CUDA test program):
# test_device_plugin.py (kubelet stand-in on python3-grpcio, gpu_proxy_stub, CDI schema),
# test_grpcgo.py (kubelet stand-in on grpc-go) and test_podman_cdi.py (podman + CDI + CUDA in a container). Prints `N passed, N failed` last.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export PYTHONDONTWRITEBYTECODE=1
py=/usr/bin/python3                 # Debian's python3 has python3-grpcio and grpc_tools
cuda_prog=${CUDA_QUOTA_PROG:-$top/k8s/build/cuda_quota}
pass=0; fail=0

run() {
    local log rc p f
    log=$(mktemp)
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    read -r p f < <(sed -n 's/^\([0-9]\+\) passed, \([0-9]\+\) failed$/\1 \2/p' "$log" | tail -1)
    rm -f "$log"
    if [[ -z "${p:-}" ]]; then
        echo "FAIL $1 ${2:-}: ended without a summary (exit $rc)"
        p=0; f=1
    elif [[ $rc -ne 0 && $f -eq 0 ]]; then
        echo "FAIL $2: exit $rc despite no failed test"
        f=1
    fi
    pass=$((pass + p)); fail=$((fail + f))
}

echo "=== k8s: device plugin against the kubelet stand-in and gpu_proxy_stub"
run "$py" "$here/test_device_plugin.py"
echo "=== k8s: device plugin against grpc-go (the kubelet's gRPC stack)"
run "$py" "$here/test_grpcgo.py"
echo "=== k8s: CDI device in a podman container, CUDA through the zone"
if [[ -n "${SANITIZE:-}" ]]; then
    # A sanitizer-built libcuda.so.1 cannot be loaded by the static-cudart program in the
    # container (the sanitizer runtime must come first); this part runs in plain `make test`.
    echo "SKIP test_podman_cdi.py: not part of the SANITIZE=$SANITIZE pass (runs in plain make test)"
else
    run "$py" "$here/test_podman_cdi.py" --cuda-prog "$cuda_prog"
fi
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
