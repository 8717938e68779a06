#!/usr/bin/python3
# test_grpcgo.py - the device plugin against grpc-go, the kubelet's own gRPC stack: builds
# grpcgo_kubelet.go (message code generated from k8s/proto by protoc-gen-go; Debian's Go
# packages, offline GOPATH build), starts a real gpu_proxy_stub and the plugin, and lets the
# grpc-go kubelet stand-in register it, dial back, list, allocate and check error statuses.
# Prints the stand-in's PASS/FAIL lines and `N passed, N failed` last.
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubelet_standin import TOP, Proxy  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = os.path.join(TOP, "k8s", "vgpu-device-plugin")


def fail(why):
    print("FAIL grpcgo_kubelet: " + why)
    print("0 passed, 1 failed")
    return 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", default=os.path.join(TOP, "gpu-proxy", "gpu_proxy_stub"))
    ap.add_argument("--gocache", default=os.path.join(TOP, "k8s", "build", "gocache"))
    args = ap.parse_args()
    for tool in ("go", "protoc", "protoc-gen-go"):
        if not shutil.which(tool):
            return fail("%s is missing (Debian: golang-go, protobuf-compiler, "
                        "golang-goprotobuf-dev, golang-google-grpc-dev)" % tool)
    for path in (PLUGIN, args.proxy):
        if not os.access(path, os.X_OK):
            return fail("%s is missing (build it first)" % path)
    tmp = tempfile.mkdtemp(prefix="vgpu-grpcgo-")
    gopath = os.path.join(tmp, "go")
    pkg = os.path.join(gopath, "src", "vgpu.test", "v1beta1")
    main_dir = os.path.join(gopath, "src", "vgpu.test", "kubelet")
    os.makedirs(pkg)
    os.makedirs(main_dir)
    shutil.copy(os.path.join(HERE, "grpcgo_kubelet.go"), os.path.join(main_dir, "main.go"))
    r = subprocess.run(["protoc", "-I", os.path.join(TOP, "k8s", "proto"),
                        "--go_out=plugins=grpc:" + pkg, "deviceplugin.proto",
                        "deviceplugin_service.proto"], capture_output=True, text=True)
    if r.returncode != 0:
        return fail("protoc-gen-go: " + r.stderr.strip())
    env = dict(os.environ, GO111MODULE="off", GOPATH=gopath + ":/usr/share/gocode",
               GOCACHE=args.gocache, GOFLAGS="")
    binary = os.path.join(tmp, "grpcgo_kubelet")
    r = subprocess.run(["go", "build", "-o", binary, "vgpu.test/kubelet"], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return fail("go build: " + r.stderr.strip()[-2000:])

    plugin_dir = os.path.join(tmp, "device-plugins")
    os.makedirs(plugin_dir)
    libcuda = os.path.join(tmp, "libcuda.so.1")
    with open(libcuda, "w") as f:
        f.write("placeholder: never loaded by this test\n")
    proxy = Proxy(args.proxy, os.path.join(tmp, "proxy"), open(os.path.join(tmp, "proxy.log"), "w"))
    plugin_log = open(os.path.join(tmp, "plugin.log"), "w")
    plugin = None
    rc = 1
    try:
        proxy.start()
        # The stand-in creates kubelet.sock; the plugin retries Register until it is there.
        kubelet = subprocess.Popen([binary, plugin_dir, "vgpu.dev/memory-slice"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        plugin = subprocess.Popen(
            [PLUGIN, "--kubelet-dir", plugin_dir, "--proxy-admin", proxy.admin_sock,
             "--pod-resources", os.path.join(tmp, "none.sock"),
             "--state-file", os.path.join(tmp, "zones.state"),
             "--cdi-dir", os.path.join(tmp, "cdi"), "--libcuda", libcuda,
             "--slice-size", "64M", "--total-memory", "1G", "--log-level", "debug"],
            stdout=plugin_log, stderr=subprocess.STDOUT)
        try:
            out, _ = kubelet.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            kubelet.kill()
            out, _ = kubelet.communicate()
            out += "\nFAIL grpcgo_kubelet: timed out\n"
        sys.stdout.write(out)
        rc = kubelet.returncode
        if "passed," not in out:
            print("0 passed, 1 failed")
            rc = 1
    finally:
        if plugin and plugin.poll() is None:
            plugin.send_signal(signal.SIGTERM)
            plugin.wait(timeout=20)
        proxy.stop()
        plugin_log.close()
        if rc != 0:
            print("logs kept in %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
