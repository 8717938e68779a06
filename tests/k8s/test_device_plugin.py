#!/usr/bin/python3
# test_device_plugin.py - integration tests of k8s/vgpu-device-plugin against real peers: a
# kubelet stand-in on python3-grpcio (Registration with the dial-back, ListAndWatch, Allocate,
# PodResources List), a real gpu_proxy_stub behind the admin socket, and the CDI JSON schema
# shipped by Debian. No cluster: each piece of the kubelet's behaviour is played by the stand-in.
# Usage: test_device_plugin.py [--proxy PATH]; prints `N passed, N failed` last.
import argparse
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import traceback

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kubelet_standin import (TOP, Kubelet, PodResources, Proxy, admin, admin_zone_keys,  # noqa
                             admin_zones, compile_protos, stat_is_socket, wait_for)

PLUGIN = os.path.join(TOP, "k8s", "vgpu-device-plugin")
HOOK = os.path.join(TOP, "k8s", "vgpu-cdi-hook")
CDI_SCHEMA_DIR = ("/usr/share/gocode/src/github.com/container-orchestrated-devices/"
                  "container-device-interface/schema")
RESOURCE = "vgpu.dev/memory-slice"
KIND = "vgpu.dev/zone"
SLICE = 64 << 20
N_SLICES = 16
CTR_LIBCUDA = ["/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1"]


class Env:
    pass


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def rpc_error(fn):
    """Runs fn, returns the grpc.StatusCode it failed with (AssertionError if it succeeded)."""
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    raise AssertionError("the call succeeded but should have failed")


def start_plugin(e, extra=(), total=True, base=None):
    stop_plugin(e)                      # never two instances on one endpoint
    e.kubelet.drain()                   # updates from an earlier instance do not count
    args = [PLUGIN] + list(base or []) + [
        "--kubelet-dir", e.plugin_dir, "--proxy-admin", e.proxy.admin_sock,
        "--pod-resources", e.podres_sock, "--state-file", e.state_file,
        "--cdi-dir", e.cdi_dir, "--libcuda", e.libcuda, "--cdi-hook", HOOK]
    if base is None:
        args += ["--slice-size", str(SLICE), "--health-interval", "1",
                 "--pod-poll-interval", "1", "--release-grace", "2", "--log-level", "debug"]
        if total:
            args += ["--total-memory", str(SLICE * N_SLICES)]
    args += list(extra)
    e.plugin = subprocess.Popen(args, stdout=e.plugin_log, stderr=subprocess.STDOUT)


def stop_plugin(e):
    if e.plugin and e.plugin.poll() is None:
        e.plugin.send_signal(signal.SIGTERM)
        try:
            return e.plugin.wait(timeout=20)
        except subprocess.TimeoutExpired:
            e.plugin.kill()
            e.plugin.wait()
            return None
    return e.plugin.returncode if e.plugin else None


def plugin_log_has(e, text):
    e.plugin_log.flush()
    with open(e.plugin_log.name) as f:
        return text in f.read()


def stub(e):
    ch = grpc.insecure_channel("unix://" + os.path.join(e.plugin_dir, "vgpu-memory-slice.sock"))
    e.channels.append(ch)
    return e.m["deviceplugin_service_pb2_grpc"].DevicePluginStub(ch)


def allocate(e, *containers, timeout=20):
    """Allocate, then (as the kubelet would) list the devices in PodResources."""
    pb = e.m["deviceplugin_pb2"]
    req = pb.AllocateRequest()
    for ids in containers:
        req.container_requests.add(devices_ids=list(ids))
    resp = stub(e).Allocate(req, timeout=timeout)
    e.podres.add_pod("pod-%s" % "-".join(containers[0]),
                     [("c%d" % i, RESOURCE, list(ids)) for i, ids in enumerate(containers)])
    return resp


def sid(i):
    return "slice-%04d" % i


def validate_cdi(path):
    import jsonschema
    with open(os.path.join(CDI_SCHEMA_DIR, "schema.json")) as f:
        schema = json.load(f)
    resolver = jsonschema.RefResolver(base_uri="file://" + CDI_SCHEMA_DIR + "/", referrer=schema)
    with open(path) as f:
        spec = json.load(f)
    jsonschema.validate(spec, schema, resolver=resolver)
    return spec


def check_zone_allocation(e, resp_ctr, ids):
    """One container's answer: zone in gpu_proxy with quota, CDI spec, mounts, envs."""
    first = min(int(i.split("-")[1]) for i in ids)
    zone = "k8s-s%d-n%d" % (first, len(ids))
    zones = admin_zones(e.proxy.admin_sock)
    check(zone in zones, "zone %s not in gpu_proxy LIST: %s" % (zone, zones))
    check(zones[zone][0] == len(ids) * SLICE,
          "zone %s quota %d, want %d" % (zone, zones[zone][0], len(ids) * SLICE))
    check([d.name for d in resp_ctr.cdi_devices] == ["%s=%s" % (KIND, zone)],
          "cdi_devices %s" % list(resp_ctr.cdi_devices))
    check(dict(resp_ctr.envs) == {"VGPU_SOCKET": "/run/vgpu/gpu.sock", "VGPU_ZONE": zone},
          "envs %s" % dict(resp_ctr.envs))
    check(len(resp_ctr.devices) == 0, "device nodes were handed out: %s" % resp_ctr.devices)
    zone_dir = os.path.join(e.proxy.dir, "zones", zone)
    mounts = {m.container_path: (m.host_path, m.read_only) for m in resp_ctr.mounts}
    want = {p: (e.libcuda, True) for p in CTR_LIBCUDA}
    want["/run/vgpu"] = (zone_dir, True)
    check(mounts == want, "mounts %s, want %s" % (mounts, want))
    # The zone's directory holds the proxy's zone socket (same inode) and nothing else: no
    # admin.sock reachable from the pod.
    check(os.listdir(zone_dir) == ["gpu.sock"], "zone dir holds %s" % os.listdir(zone_dir))
    check(os.path.samefile(os.path.join(zone_dir, "gpu.sock"),
                           os.path.join(e.proxy.dir, zone + ".sock")),
          "gpu.sock is not the proxy's socket of zone %s" % zone)
    spec_path = os.path.join(e.cdi_dir, "vgpu.dev-zone_%s.json" % zone)
    spec = validate_cdi(spec_path)
    check(spec["kind"] == KIND and spec["cdiVersion"] == "0.3.0", "spec header %s" % spec)
    dev = spec["devices"][0]
    check(dev["name"] == zone, "spec device name %s" % dev["name"])
    edits = dev["containerEdits"]
    check(edits["env"] == ["VGPU_SOCKET=/run/vgpu/gpu.sock", "VGPU_ZONE=" + zone],
          "spec env %s" % edits["env"])
    smounts = {m["containerPath"]: m["hostPath"] for m in edits["mounts"]}
    check(smounts == {k: v[0] for k, v in want.items()}, "spec mounts %s" % smounts)
    check(all("ro" in m["options"] for m in edits["mounts"]), "spec mounts not read-only")
    check(edits["hooks"][0]["hookName"] == "createContainer" and
          edits["hooks"][0]["path"] == HOOK, "spec hooks %s" % edits.get("hooks"))
    check("deviceNodes" not in edits, "spec hands out device nodes")
    return zone


# ---- the tests, in order (each builds on the state the previous ones left) ----------------

def test_registration(e):
    req, opts = e.kubelet.registrations.get(timeout=30)
    check(req.version == "v1beta1", "version %r" % req.version)
    check(req.endpoint == "vgpu-memory-slice.sock", "endpoint %r" % req.endpoint)
    check(req.resource_name == RESOURCE, "resource %r" % req.resource_name)
    check(opts.get_preferred_allocation_available and not opts.pre_start_required,
          "options from the dial-back: %s" % opts)
    check(not e.kubelet.callback_errors, "dial-back errors %s" % e.kubelet.callback_errors)
    # The plugin must have taken the kubelet's answer as success (else it keeps retrying).
    wait_for(lambda: plugin_log_has(e, "registered %s with the kubelet" % RESOURCE), 30,
             "the plugin to log its successful registration")
    check(not plugin_log_has(e, "kubelet refused"), "the plugin saw Register fail")


def test_list_and_watch_initial(e):
    r = e.kubelet.next_update()
    ids = [d.ID for d in r.devices]
    check(ids == [sid(i) for i in range(N_SLICES)], "device ids %s" % ids)
    check(all(d.health == "Healthy" for d in r.devices), "health %s" % r.devices)


def test_options_and_prestart(e):
    pb = e.m["deviceplugin_pb2"]
    o = stub(e).GetDevicePluginOptions(pb.Empty(), timeout=10)
    check(o.get_preferred_allocation_available, "options %s" % o)
    stub(e).PreStartContainer(pb.PreStartContainerRequest(devices_ids=[sid(0)]), timeout=10)


def test_preferred_allocation(e):
    pb = e.m["deviceplugin_pb2"]
    req = pb.PreferredAllocationRequest()
    req.container_requests.add(available_deviceIDs=[sid(9), sid(3), sid(4), sid(7)],
                               must_include_deviceIDs=[sid(7)], allocation_size=3)
    r = stub(e).GetPreferredAllocation(req, timeout=10)
    got = list(r.container_responses[0].deviceIDs)
    check(got == [sid(7), sid(3), sid(4)], "preferred %s" % got)


def test_allocate_one(e):
    r = allocate(e, [sid(0)])
    check(len(r.container_responses) == 1, "responses %d" % len(r.container_responses))
    check_zone_allocation(e, r.container_responses[0], [sid(0)])


def test_allocate_n(e):
    ids = [sid(3), sid(1), sid(2)]
    r = allocate(e, ids)
    check_zone_allocation(e, r.container_responses[0], ids)


def test_allocate_two_containers(e):
    r = allocate(e, [sid(4)], [sid(5), sid(6)])
    check(len(r.container_responses) == 2, "responses %d" % len(r.container_responses))
    check_zone_allocation(e, r.container_responses[0], [sid(4)])
    check_zone_allocation(e, r.container_responses[1], [sid(5), sid(6)])


def test_invalid_requests(e):
    pb = e.m["deviceplugin_pb2"]
    before = admin_zones(e.proxy.admin_sock)
    bad = [
        ("unknown id", lambda: allocate(e, [sid(N_SLICES)])),
        ("malformed id", lambda: allocate(e, ["gpu0"])),
        ("zero devices", lambda: allocate(e, [])),
        ("duplicate id", lambda: allocate(e, [sid(8), sid(8)])),
        ("no containers", lambda: stub(e).Allocate(pb.AllocateRequest(), timeout=10)),
        ("second container bad", lambda: allocate(e, [sid(8)], ["slice-x"])),
    ]
    for what, fn in bad:
        code, details = rpc_error(fn)
        check(code == grpc.StatusCode.INVALID_ARGUMENT, "%s: %s %s" % (what, code, details))
    # Undecodable bytes and an unknown method, through a raw channel.
    ch = grpc.insecure_channel("unix://" + os.path.join(e.plugin_dir, "vgpu-memory-slice.sock"))
    e.channels.append(ch)
    raw = ch.unary_unary("/v1beta1.DevicePlugin/Allocate")
    code, _ = rpc_error(lambda: raw(b"\xff\xff\xff", timeout=10))
    check(code == grpc.StatusCode.INVALID_ARGUMENT, "garbage Allocate: %s" % code)
    nope = ch.unary_unary("/v1beta1.DevicePlugin/Frobnicate")
    code, _ = rpc_error(lambda: nope(b"", timeout=10))
    check(code == grpc.StatusCode.UNIMPLEMENTED, "unknown method: %s" % code)
    after = admin_zones(e.proxy.admin_sock)
    check(after == before, "invalid requests changed the zones: %s -> %s" % (before, after))


def test_authority_is_a_socket_path(e):
    # Regression: grpc-go clients dialling a Unix socket send its path as :authority; nghttp2's
    # HTTP checks reset such streams with PROTOCOL_ERROR, so the kubelet could not register us.
    pb = e.m["deviceplugin_pb2"]
    path = os.path.join(e.plugin_dir, "vgpu-memory-slice.sock")
    ch = grpc.insecure_channel("unix://" + path, options=[("grpc.default_authority", path)])
    e.channels.append(ch)
    o = e.m["deviceplugin_service_pb2_grpc"].DevicePluginStub(ch).GetDevicePluginOptions(
        pb.Empty(), timeout=10)
    check(o.get_preferred_allocation_available, "options %s" % o)


def test_concurrent_calls(e):
    pb = e.m["deviceplugin_pb2"]
    errors = []
    free = list(range(8, N_SLICES))      # 8 slices nobody holds yet

    def options_worker():
        try:
            s = stub(e)
            for _ in range(25):
                s.GetDevicePluginOptions(pb.Empty(), timeout=20)
        except Exception as ex:          # noqa: BLE001 - reported below
            errors.append(ex)

    def alloc_worker(i):
        try:
            r = allocate(e, [sid(i)], timeout=30)
            check(r.container_responses[0].cdi_devices[0].name == "%s=k8s-s%d-n1" % (KIND, i),
                  "slice %d got %s" % (i, r.container_responses[0].cdi_devices))
        except Exception as ex:          # noqa: BLE001
            errors.append(ex)

    threads = [threading.Thread(target=options_worker) for _ in range(16)]
    threads += [threading.Thread(target=alloc_worker, args=(i,)) for i in free]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "concurrent calls failed: %s" % errors[:3])
    zones = admin_zones(e.proxy.admin_sock)
    for i in free:
        check(zones.get("k8s-s%d-n1" % i, (0,))[0] == SLICE, "zone of slice %d: %s" % (i, zones))


def test_reallocate_released_slice(e):
    # slice 0 is held by zone k8s-s0-n1 from test_allocate_one; the kubelet giving it out again
    # means that container is gone: the old zone goes, a new one (2 slices) comes.
    zones_before = admin_zones(e.proxy.admin_sock)
    check("k8s-s0-n1" in zones_before, "precondition: k8s-s0-n1 exists")
    r = allocate(e, [sid(0), sid(1), sid(2), sid(3)])
    check_zone_allocation(e, r.container_responses[0], [sid(0), sid(1), sid(2), sid(3)])
    zones = admin_zones(e.proxy.admin_sock)
    check("k8s-s0-n1" not in zones and "k8s-s1-n3" not in zones,
          "stale zones kept: %s" % sorted(zones))
    check(not os.path.exists(os.path.join(e.cdi_dir, "vgpu.dev-zone_k8s-s0-n1.json")),
          "stale CDI spec kept")


def test_health_follows_proxy(e):
    zones_before = admin_zones(e.proxy.admin_sock)
    e.proxy.stop()
    r = e.kubelet.next_update(lambda r: all(d.health == "Unhealthy" for d in r.devices))
    check(len(r.devices) == N_SLICES, "unhealthy list has %d devices" % len(r.devices))
    code, _ = rpc_error(lambda: allocate(e, [sid(15)]))
    check(code == grpc.StatusCode.UNAVAILABLE, "Allocate with proxy down: %s" % code)
    e.proxy.start()
    r = e.kubelet.next_update(lambda r: all(d.health == "Healthy" for d in r.devices))
    check(len(r.devices) == N_SLICES, "healthy list has %d devices" % len(r.devices))
    # The plugin re-creates its zones in the restarted proxy, with their quotas.
    want = {n: v[0] for n, v in zones_before.items() if n.startswith("k8s-")}
    wait_for(lambda: {n: v[0] for n, v in admin_zones(e.proxy.admin_sock).items()
                      if n.startswith("k8s-")} == want, 30, "zones restored after proxy restart")
    for n in want:
        check(os.path.samefile(os.path.join(e.proxy.dir, "zones", n, "gpu.sock"),
                               os.path.join(e.proxy.dir, n + ".sock")),
              "zone %s socket not re-linked" % n)


def test_podresources_release(e):
    # Only the pod holding slices 0-3 and the one holding slice 4 are still running.
    keep = {"k8s-s0-n4", "k8s-s4-n1"}
    calls = e.podres.set_pods([
        ("pod-a", [("main", RESOURCE, [sid(0), sid(1), sid(2), sid(3)])]),
        ("pod-b", [("main", RESOURCE, [sid(4)]), ("other", "example.com/foo", [sid(9)])]),
    ])
    # Several List polls later, everything else is gone (grace is 2 s).
    wait_for(lambda: set(n for n in admin_zones(e.proxy.admin_sock) if n.startswith("k8s-"))
             == keep, 60, "zones not in PodResources to be released")
    check(e.podres.calls > calls, "PodResources List was never called")
    check(sorted(os.listdir(e.cdi_dir)) == sorted("vgpu.dev-zone_%s.json" % z for z in keep),
          "CDI specs left: %s" % os.listdir(e.cdi_dir))
    check(sorted(os.listdir(os.path.join(e.proxy.dir, "zones"))) == sorted(keep),
          "zone dirs left: %s" % os.listdir(os.path.join(e.proxy.dir, "zones")))


def test_kubelet_restart(e):
    while not e.kubelet.registrations.empty():
        e.kubelet.registrations.get()
    e.kubelet.restart()
    req, opts = e.kubelet.registrations.get(timeout=60)
    check(req.resource_name == RESOURCE, "re-registration resource %r" % req.resource_name)
    r = e.kubelet.next_update(lambda r: len(r.devices) == N_SLICES)
    check(all(d.health == "Healthy" for d in r.devices), "after restart: %s" % r.devices[:2])
    r = allocate(e, [sid(15)])
    check_zone_allocation(e, r.container_responses[0], [sid(15)])


def test_health_follows_worker(e):
    # The worker of the zone holding slice 4 is killed: gpu_proxy restarts it (LIST restarts=
    # grows), the plugin reports that zone's slice Unhealthy, the others stay Healthy, and the
    # slice is Healthy again once the zone is serving.
    zone = "k8s-s4-n1"
    keys = admin_zone_keys(e.proxy.admin_sock, zone)
    check(keys.get("state") == "ready" and int(keys.get("pid", "0")) > 0, "LIST %s" % keys)
    e.kubelet.drain()
    os.kill(int(keys["pid"]), signal.SIGKILL)
    r = e.kubelet.next_update(lambda r: any(d.health == "Unhealthy" for d in r.devices))
    bad = sorted(d.ID for d in r.devices if d.health == "Unhealthy")
    check(bad == [sid(4)], "Unhealthy after killing %s's worker: %s" % (zone, bad))
    r = e.kubelet.next_update(lambda r: all(d.health == "Healthy" for d in r.devices))
    check(len(r.devices) == N_SLICES, "healthy list has %d devices" % len(r.devices))
    after = admin_zone_keys(e.proxy.admin_sock, zone)
    check(after.get("state") == "ready" and after.get("pid") != keys["pid"] and
          int(after.get("restarts", "0")) == int(keys.get("restarts", "0")) + 1,
          "LIST after the restart: %s (before %s)" % (after, keys))
    check(plugin_log_has(e, "zone %s: state=" % zone), "the plugin did not log the zone's state")


def test_restart_keeps_zones(e):
    rc = stop_plugin(e)
    check(rc == 0, "SIGTERM exit status %s" % rc)
    check(not os.path.exists(os.path.join(e.plugin_dir, "vgpu-memory-slice.sock")),
          "socket left behind after SIGTERM")
    zones = admin_zones(e.proxy.admin_sock)
    check({"k8s-s0-n4", "k8s-s4-n1", "k8s-s15-n1"} <= set(zones),
          "zones must outlive the plugin: %s" % sorted(zones))
    # A zone named like ours that the state file does not know gets reported, not touched.
    check(admin(e.proxy.admin_sock, "ADD k8s-orphan 1M").startswith("OK"), "ADD k8s-orphan")
    # Restart: the zones come back from the state file and are released once unlisted.
    start_plugin(e)
    e.kubelet.registrations.get(timeout=60)
    wait_for(lambda: plugin_log_has(e, "zone k8s-orphan (quota 1048576 bytes, 0 clients) is in "
                                       "gpu_proxy but not in"), 30, "the orphan zone warning")
    check("k8s-orphan" in admin_zones(e.proxy.admin_sock), "the orphan zone was touched")
    check(admin(e.proxy.admin_sock, "REMOVE k8s-orphan").startswith("OK"), "REMOVE k8s-orphan")
    e.podres.set_pods([("pod-a", [("main", RESOURCE, [sid(0), sid(1), sid(2), sid(3)])])])
    wait_for(lambda: set(n for n in admin_zones(e.proxy.admin_sock) if n.startswith("k8s-"))
             == {"k8s-s0-n4"}, 60, "zones of the previous run to be released")


def test_sigterm_cleanup(e):
    rc = stop_plugin(e)
    check(rc == 0, "exit status %s" % rc)
    check(not os.path.exists(os.path.join(e.plugin_dir, "vgpu-memory-slice.sock")),
          "socket left behind")


def test_capacity_from_proxy(e):
    # Without --total-memory the slice count comes from gpu_proxy: total_bytes= in its PING
    # (or STATS) reply. A proxy that reports none gets no devices advertised and a warning.
    ping = admin(e.proxy.admin_sock, "PING") + admin(e.proxy.admin_sock, "STATS")
    total = 0
    for tok in ping.split():
        if tok.startswith("total_bytes="):
            total = int(tok.split("=", 1)[1])
    start_plugin(e, total=False)
    e.kubelet.registrations.get(timeout=60)
    r = e.kubelet.next_update()
    if total:
        check(len(r.devices) == min(total // SLICE, 4096),
              "%d devices for total_bytes=%d" % (len(r.devices), total))
    else:
        check(len(r.devices) == 0, "%d devices without a known total" % len(r.devices))
        wait_for(lambda: plugin_log_has(e, "reports no total memory; pass --total-memory"), 30,
                 "the warning about the missing total")
    check(stop_plugin(e) == 0, "exit status")


def test_daemonset_args(e):
    # The device-plugin container's arguments from the DaemonSet, with only the host paths
    # pointed at this test's directories: the plugin accepts them, registers, and advertises
    # --total-memory / --slice-size devices.
    import yaml
    with open(os.path.join(TOP, "k8s", "manifests", "daemonset.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    ds = [d for d in docs if d["kind"] == "DaemonSet"][0]
    pod = ds["spec"]["template"]["spec"]
    check(pod["priorityClassName"] == "system-node-critical", "priorityClassName")
    check(pod["nodeSelector"], "no node selector")
    ctr = [c for c in pod["containers"] if c["name"] == "device-plugin"][0]
    args = ctr["args"]
    total = [a.split("=", 1)[1] for a in args if a.startswith("--total-memory=")][0]
    slice_ = [a.split("=", 1)[1] for a in args if a.startswith("--slice-size=")][0]
    units = {"G": 30, "M": 20}
    want = (int(total[:-1]) << units[total[-1]]) // (int(slice_[:-1]) << units[slice_[-1]])
    hostpaths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    for m in ctr["volumeMounts"]:
        check(hostpaths[m["name"]] == m["mountPath"],
              "mount %s: container path must equal the host path" % m["name"])
    start_plugin(e, base=args)
    e.kubelet.registrations.get(timeout=60)
    r = e.kubelet.next_update(lambda r: len(r.devices) == want)
    check(all(d.health == "Healthy" for d in r.devices), "health")
    check(stop_plugin(e) == 0, "exit status")
    with open(os.path.join(TOP, "k8s", "manifests", "example-pod.yaml")) as f:
        ex = yaml.safe_load(f)
    lim = ex["spec"]["containers"][0]["resources"]["limits"]
    check(RESOURCE in lim, "example pod does not ask for %s" % RESOURCE)
    with open(os.path.join(TOP, "k8s", "manifests", "runtimeclass-xen.yaml")) as f:
        rc = yaml.safe_load(f)
    check(rc["kind"] == "RuntimeClass" and rc["handler"], "RuntimeClass manifest")
    # Prometheus' scrape annotations name the port gpu_proxy's --metrics listens on.
    ann = ds["spec"]["template"]["metadata"]["annotations"]
    proxy = [c for c in pod["containers"] if c["name"] == "gpu-proxy"][0]
    listen = proxy["args"][proxy["args"].index("--metrics") + 1]
    check(ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/path"] == "/metrics",
          "scrape annotations")
    check(listen.rsplit(":", 1)[1] == ann["prometheus.io/port"], "--metrics port vs annotation")
    check([p["containerPort"] for p in proxy["ports"] if p["name"] == "metrics"] ==
          [int(ann["prometheus.io/port"])], "metrics containerPort")


TESTS = [test_registration, test_list_and_watch_initial, test_options_and_prestart,
         test_preferred_allocation, test_allocate_one, test_allocate_n,
         test_allocate_two_containers, test_invalid_requests, test_authority_is_a_socket_path,
         test_concurrent_calls,
         test_reallocate_released_slice, test_health_follows_proxy, test_podresources_release,
         test_kubelet_restart, test_health_follows_worker, test_restart_keeps_zones, test_sigterm_cleanup,
         test_capacity_from_proxy, test_daemonset_args]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", default=os.path.join(TOP, "gpu-proxy", "gpu_proxy_stub"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    for path in (PLUGIN, HOOK, args.proxy):
        if not os.access(path, os.X_OK):
            print("FAIL: %s is missing (build it first)" % path)
            print("0 passed, 1 failed")
            return 1

    e = Env()
    e.tmp = tempfile.mkdtemp(prefix="vgpu-k8s-")
    e.plugin_dir = os.path.join(e.tmp, "device-plugins")
    e.podres_sock = os.path.join(e.tmp, "pod-resources.sock")
    e.state_file = os.path.join(e.tmp, "zones.state")
    e.cdi_dir = os.path.join(e.tmp, "cdi")
    e.libcuda = os.path.join(e.tmp, "libcuda.so.1")
    e.channels = []
    e.plugin = None
    os.makedirs(e.plugin_dir)
    with open(e.libcuda, "wb") as f:
        f.write(b"placeholder: the gRPC tests never load it\n")
    e.m = compile_protos(os.path.join(e.tmp, "gen"))
    e.plugin_log = open(os.path.join(e.tmp, "plugin.log"), "w")
    e.proxy = Proxy(args.proxy, os.path.join(e.tmp, "proxy"),
                    open(os.path.join(e.tmp, "proxy.log"), "w"))
    e.kubelet = Kubelet(e.m, e.plugin_dir)
    e.podres = PodResources(e.m, e.podres_sock)
    passed = failed = 0
    try:
        e.proxy.start()
        e.kubelet.start()
        e.podres.start()
        start_plugin(e)
        for t in TESTS:
            try:
                t(e)
                print("PASS %s" % t.__name__)
                passed += 1
            except Exception as ex:      # noqa: BLE001 - every failure is reported and counted
                print("FAIL %s: %s: %s" % (t.__name__, type(ex).__name__, ex))
                traceback.print_exc(limit=3)
                failed += 1
            sys.stdout.flush()
    finally:
        stop_plugin(e)
        for ch in e.channels:
            ch.close()
        e.kubelet.stop()
        e.podres.stop()
        e.proxy.stop()
        e.plugin_log.close()
        if failed or args.keep:
            print("logs kept in %s (plugin.log, proxy.log)" % e.tmp)
            if failed:
                with open(os.path.join(e.tmp, "plugin.log")) as f:
                    lines = f.readlines()
                print("--- last lines of plugin.log ---")
                sys.stdout.writelines(lines[-40:])
        else:
            subprocess.run(["rm", "-rf", e.tmp], check=False)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
