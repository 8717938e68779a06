#!/usr/bin/python3
# test_podman_cdi.py - the device plugin's CDI answer consumed by a real container runtime:
# the plugin (registered with the kubelet stand-in, backed by a real gpu_proxy_stub) allocates N
# slices; podman starts a busybox container with `--device <kind>=<zone>`; inside, a CUDA
# program (static cudart, built by nvcc) reaches the host's gpu_proxy_stub through the mounted
# libcuda.so.1 and the zone's socket, and hits its quota at exactly N slices. Also checks the
# container's view: VGPU_SOCKET, read-only mounts, no admin.sock, the ld.so.cache hook, no
# /dev/nvidia*. Needs root, podman, runc, libvgpu/libcuda.so.1; a missing piece is a FAILURE
# (printed with the reason), never a silent pass.
# Usage: test_podman_cdi.py --cuda-prog PATH [--proxy PATH]; prints `N passed, N failed` last.
import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubelet_standin import (TOP, Kubelet, PodResources, Proxy, admin_zones,  # noqa: E402
                             compile_protos, wait_for)

PLUGIN = os.path.join(TOP, "k8s", "vgpu-device-plugin")
HOOK = os.path.join(TOP, "k8s", "vgpu-cdi-hook")
LIBCUDA_DEFAULT = os.path.join(TOP, "libvgpu", "libcuda.so.1")
LIBCUDA = LIBCUDA_DEFAULT
RESOURCE = "vgpu.dev/memory-slice"
SLICE = 64 << 20
N_SLICES = 8
GRANTED = 3
PODMAN = ["podman", "run", "--rm", "--runtime", "runc", "--ulimit", "nofile=1024:1024",
          "--ulimit", "nproc=1024:1024", "--network", "none"]


def ldd_libs(binary):
    """Absolute paths of the shared libraries binary needs (loader included)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        if "=>" in parts:
            p = parts[parts.index("=>") + 1]
            if p.startswith("/"):
                libs.append(p)
        elif parts and parts[0].startswith("/"):
            libs.append(parts[0])
    return libs


def build_rootfs(root, cuda_prog):
    """busybox-static, the CUDA program, the C libraries it needs, and a static ldconfig for the
    hook to run. No libcuda.so.1 of its own: the device brings it. libcuda.so.1's own
    dependencies are deliberately not copied: the mounted library must load in an image that has
    only what an ordinary CUDA program needs (libc; no Xen libraries: the Xen transport is the
    plugin libvgpu-xen.so.1, which this image lacks)."""
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "run",
              "usr/lib/x86_64-linux-gnu", "lib64"]:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    for applet in ["sh", "ls", "cat", "grep", "test", "cmp", "echo", "stat", "wc", "timeout"]:
        os.symlink("busybox", os.path.join(root, "bin", applet))
    shutil.copy2("/sbin/ldconfig", os.path.join(root, "sbin", "ldconfig"))
    shutil.copy2(cuda_prog, os.path.join(root, "bin", "cuda_quota"))
    libs = set(ldd_libs(cuda_prog))
    for lib in sorted(libs):
        if os.path.basename(lib).startswith("libcuda.so"):
            continue
        real = os.path.realpath(lib)
        # Keep the loader at its canonical path; everything else goes to the multiarch dir.
        dst = lib if lib.startswith("/lib64/") else \
            os.path.join("/usr/lib/x86_64-linux-gnu", os.path.basename(lib))
        shutil.copy2(real, root + dst)
    with open(os.path.join(root, "etc", "ld.so.conf"), "w") as f:
        f.write("/usr/lib/x86_64-linux-gnu\n")


INSIDE = r"""
fail=0
say() { echo "CHECK $1 $2"; }
[ "$VGPU_SOCKET" = /run/vgpu/gpu.sock ] && say ok env || { say bad "env VGPU_SOCKET=$VGPU_SOCKET"; }
test -S /run/vgpu/gpu.sock && say ok zone-socket || say bad zone-socket
[ "$(ls /run/vgpu)" = gpu.sock ] && say ok zone-dir-only-socket || say bad "zone dir holds: $(ls /run/vgpu)"
cmp -s /usr/lib/x86_64-linux-gnu/libcuda.so.1 /host-libcuda-copy && say ok libcuda-mounted || say bad libcuda-mounted
( echo x >> /usr/lib/x86_64-linux-gnu/libcuda.so.1 ) 2>/dev/null && say bad libcuda-writable || say ok libcuda-read-only
( echo x > /run/vgpu/new-file ) 2>/dev/null && say bad zone-dir-writable || say ok zone-dir-read-only
grep -q libcuda.so.1 /etc/ld.so.cache 2>/dev/null && say ok ldcache-hook || say bad ldcache-hook
ls /dev/nvidia* >/dev/null 2>&1 && say bad dev-nvidia-present || say ok no-dev-nvidia
ls /usr/lib/x86_64-linux-gnu | grep -q '^libxen' && say bad xen-libs-present || say ok no-xen-libs
timeout 120 /bin/cuda_quota "$1" "$2"
echo "CUDA_EXIT $?"
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", default=os.path.join(TOP, "gpu-proxy", "gpu_proxy_stub"))
    ap.add_argument("--cuda-prog", required=True)
    ap.add_argument("--libcuda", default=LIBCUDA_DEFAULT)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    global LIBCUDA
    LIBCUDA = args.libcuda
    passed = failed = 0

    def result(ok, name, why=""):
        nonlocal passed, failed
        print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + why) if why else ""))
        sys.stdout.flush()
        if ok:
            passed += 1
        else:
            failed += 1

    missing = []
    if os.geteuid() != 0:
        missing.append("root (podman with --device needs it here)")
    if not shutil.which("podman"):
        missing.append("podman")
    if not shutil.which("runc"):
        missing.append("runc (crun fails on this machine's hybrid cgroups)")
    for path, what in [(LIBCUDA, "libvgpu/libcuda.so.1 (build libvgpu first)"),
                       (args.proxy, "gpu_proxy_stub"), (PLUGIN, "k8s/vgpu-device-plugin"),
                       (HOOK, "k8s/vgpu-cdi-hook"), (args.cuda_prog, "the nvcc-built cuda_quota"),
                       ("/bin/busybox", "busybox-static")]:
        if not os.path.exists(path):
            missing.append(what)
    if missing:
        result(False, "podman_cdi_container", "cannot run, missing: " + "; ".join(missing))
        print("%d passed, %d failed" % (passed, failed))
        return 1
    probe = subprocess.run(["podman", "--version"], capture_output=True, text=True)
    if probe.returncode != 0:
        result(False, "podman_cdi_container", "podman does not run: " + probe.stderr.strip())
        print("%d passed, %d failed" % (passed, failed))
        return 1

    tmp = tempfile.mkdtemp(prefix="vgpu-podman-")
    kind = "vgpu-test-%d.dev/zone" % os.getpid()    # never collides with a real deployment
    cdi_dir = "/var/run/cdi"                          # where podman 4.3 looks
    plugin_dir = os.path.join(tmp, "device-plugins")
    os.makedirs(plugin_dir)
    m = compile_protos(os.path.join(tmp, "gen"))
    proxy = Proxy(args.proxy, os.path.join(tmp, "proxy"), open(os.path.join(tmp, "proxy.log"), "w"))
    kubelet = Kubelet(m, plugin_dir)
    podres = PodResources(m, os.path.join(tmp, "podres.sock"))
    plugin_log = open(os.path.join(tmp, "plugin.log"), "w")
    plugin = None
    try:
        proxy.start()
        kubelet.start()
        podres.start()
        plugin = subprocess.Popen(
            [PLUGIN, "--kubelet-dir", plugin_dir, "--proxy-admin", proxy.admin_sock,
             "--pod-resources", podres.sock, "--state-file", os.path.join(tmp, "zones.state"),
             "--cdi-dir", cdi_dir, "--cdi-kind", kind, "--libcuda", LIBCUDA, "--cdi-hook", HOOK,
             "--slice-size", str(SLICE), "--total-memory", str(SLICE * N_SLICES),
             "--health-interval", "1", "--log-level", "debug"],
            stdout=plugin_log, stderr=subprocess.STDOUT)
        kubelet.registrations.get(timeout=30)
        pb = m["deviceplugin_pb2"]
        import grpc
        ch = grpc.insecure_channel("unix://" + os.path.join(plugin_dir, "vgpu-memory-slice.sock"))
        dp = m["deviceplugin_service_pb2_grpc"].DevicePluginStub(ch)
        req = pb.AllocateRequest()
        ids = ["slice-%04d" % i for i in range(2, 2 + GRANTED)]
        req.container_requests.add(devices_ids=ids)
        resp = dp.Allocate(req, timeout=20)
        ch.close()
        podres.add_pod("cuda-pod", [("main", RESOURCE, ids)])
        cdi_name = resp.container_responses[0].cdi_devices[0].name
        zone = cdi_name.split("=", 1)[1]
        quota = admin_zones(proxy.admin_sock)[zone][0]
        result(quota == GRANTED * SLICE, "zone_quota", "zone %s quota %d" % (zone, quota))

        root = os.path.join(tmp, "rootfs")
        build_rootfs(root, args.cuda_prog)
        shutil.copy2(LIBCUDA, os.path.join(root, "host-libcuda-copy"))
        with open(os.path.join(root, "inside.sh"), "w") as f:
            f.write(INSIDE)
        cname = "vgpu-test-%d" % os.getpid()
        cmd = PODMAN + ["--name", cname, "--device", cdi_name, "--rootfs", root, "/bin/sh", "/inside.sh",
                        str(GRANTED * SLICE), str(SLICE)]
        print("running: " + " ".join(cmd))
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            subprocess.run(["podman", "rm", "-f", cname], capture_output=True)
            raise
        out = run.stdout + run.stderr
        print("--- container output ---\n" + out.rstrip() + "\n---")
        if run.returncode != 0 and "CUDA_EXIT" not in out:
            result(False, "podman_cdi_container", "podman run failed (exit %d)" % run.returncode)
        else:
            for line in out.splitlines():
                if line.startswith("CHECK "):
                    _, verdict, what = line.split(" ", 2)
                    result(verdict == "ok", "container_" + what.split()[0], what)
            result("QUOTA_OK %d" % (GRANTED * SLICE) in out and "CUDA_EXIT 0" in out,
                   "cuda_hits_quota_at_granted_size",
                   "CUDA program in the container through the zone socket")
    except Exception as ex:                      # noqa: BLE001
        traceback.print_exc(limit=4)
        result(False, "podman_cdi_container", "%s: %s" % (type(ex).__name__, ex))
    finally:
        if plugin and plugin.poll() is None:
            plugin.send_signal(signal.SIGTERM)
            try:
                plugin.wait(timeout=20)
            except subprocess.TimeoutExpired:
                plugin.kill()
        kubelet.stop()
        podres.stop()
        proxy.stop()
        plugin_log.close()
        for spec in glob.glob(os.path.join(cdi_dir, kind.replace("/", "-") + "_*.json")):
            os.unlink(spec)
        if failed or args.keep:
            print("logs kept in %s (plugin.log, proxy.log)" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
