# kubelet_standin.py - a stand-in for the kubelet's side of the device-plugin and PodResources
# APIs, on python3-grpcio (Debian): serves Registration on kubelet.sock and dials the plugin back
# inside Register (GetDevicePluginOptions, then ListAndWatch), as the kubelet does; serves
# PodResourcesLister.List from a table the tests fill; talks to gpu_proxy's admin socket.
import importlib
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
PROTO_DIR = os.path.join(TOP, "k8s", "proto")


def compile_protos(outdir):
    """Compiles the project's .proto files with grpc_tools into outdir; returns the modules."""
    os.makedirs(outdir, exist_ok=True)
    from grpc_tools import protoc
    import grpc_tools
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    files = ["deviceplugin.proto", "deviceplugin_service.proto", "podresources.proto",
             "podresources_service.proto"]
    args = ["protoc", "-I" + PROTO_DIR, "-I" + include, "--python_out=" + outdir,
            "--grpc_python_out=" + outdir] + files
    if protoc.main(args) != 0:
        raise RuntimeError("grpc_tools.protoc failed on " + " ".join(files))
    sys.path.insert(0, outdir)
    mods = {}
    for name in ["deviceplugin_pb2", "deviceplugin_service_pb2_grpc", "podresources_pb2",
                 "podresources_service_pb2_grpc"]:
        mods[name] = importlib.import_module(name)
    return mods


def wait_for(pred, timeout=30.0, what="condition"):
    """Waits for an event (never a pass/fail on timing: the limit only bounds a hang)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError("gave up waiting for " + what)


def admin(sock_path, line, timeout=5.0):
    """One admin-socket request; returns the whole reply text."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        s.sendall((line + "\n").encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode()
    finally:
        s.close()


def admin_zones(sock_path):
    """LIST as {name: (quota, used, clients)}."""
    reply = admin(sock_path, "LIST").splitlines()
    if not reply or not reply[0].startswith("OK"):
        raise RuntimeError("LIST failed: %r" % reply)
    zones = {}
    for line in reply[1:]:
        # The first four fields are the contract; key=value fields may follow (CONTRACTS.md).
        name, quota, used, clients = line.split()[:4]
        zones[name] = (int(quota), int(used), int(clients))
    return zones


def admin_zone_keys(sock_path, zone):
    """The key=value fields after the first four of zone's LIST line ({} if not listed)."""
    for line in admin(sock_path, "LIST").splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == zone:
            return dict(f.split("=", 1) for f in fields[4:] if "=" in f)
    return {}


class Kubelet:
    """Registration server on <dir>/kubelet.sock plus the plugin connections it dials back."""

    def __init__(self, mods, plugin_dir):
        self.m = mods
        self.dir = plugin_dir
        self.registrations = queue.Queue()
        self.updates = queue.Queue()          # ListAndWatchResponse messages, in order
        self.callback_errors = []
        self.server = None
        self.channels = []

    def start(self):
        pb = self.m["deviceplugin_pb2"]
        svc = self.m["deviceplugin_service_pb2_grpc"]
        kubelet = self

        class Registration(svc.RegistrationServicer):
            def Register(self, request, context):
                # Like the kubelet: dial the plugin back before answering.
                try:
                    ch = grpc.insecure_channel("unix://" + os.path.join(kubelet.dir,
                                                                         request.endpoint))
                    kubelet.channels.append(ch)
                    stub = svc.DevicePluginStub(ch)
                    opts = stub.GetDevicePluginOptions(pb.Empty(), timeout=10)
                    kubelet.registrations.put((request, opts))
                    stream = stub.ListAndWatch(pb.Empty())
                    t = threading.Thread(target=kubelet._watch, args=(stream,), daemon=True)
                    t.start()
                except grpc.RpcError as e:
                    kubelet.callback_errors.append(e)
                    context.abort(grpc.StatusCode.UNAVAILABLE, "dial-back failed: %s" % e)
                return pb.Empty()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        svc.add_RegistrationServicer_to_server(Registration(), self.server)
        sock = os.path.join(self.dir, "kubelet.sock")
        if os.path.exists(sock):
            os.unlink(sock)
        self.server.add_insecure_port("unix://" + sock)
        self.server.start()

    def _watch(self, stream):
        try:
            for resp in stream:
                self.updates.put(resp)
        except grpc.RpcError:
            pass                                # the plugin went away; tests look at updates

    def stop(self):
        if self.server:
            self.server.stop(grace=None).wait()
            self.server = None
        for ch in self.channels:
            ch.close()
        self.channels = []

    def restart(self):
        """What a kubelet restart does to the plugin directory: its own socket is recreated
        and every other socket in the directory is deleted."""
        self.stop()
        for name in os.listdir(self.dir):
            path = os.path.join(self.dir, name)
            if name != "kubelet.sock" and stat_is_socket(path):
                os.unlink(path)
        self.start()

    def drain(self):
        while not self.updates.empty():
            self.updates.get()
        while not self.registrations.empty():
            self.registrations.get()

    def next_update(self, pred=lambda r: True, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching ListAndWatch update")
            try:
                r = self.updates.get(timeout=left)
            except queue.Empty:
                raise TimeoutError("no matching ListAndWatch update")
            if pred(r):
                return r


def stat_is_socket(path):
    import stat
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


class PodResources:
    """PodResourcesLister.List serving self.pods: [(pod, [(container, resource, [ids])])]."""

    def __init__(self, mods, sock_path):
        self.m = mods
        self.sock = sock_path
        self.pods = []
        self.calls = 0
        self.lock = threading.Lock()
        self.server = None

    def start(self):
        pb = self.m["podresources_pb2"]
        svc = self.m["podresources_service_pb2_grpc"]
        outer = self

        class Lister(svc.PodResourcesListerServicer):
            def List(self, request, context):
                with outer.lock:
                    outer.calls += 1
                    resp = pb.ListPodResourcesResponse()
                    for pod, containers in outer.pods:
                        pr = resp.pod_resources.add(name=pod, namespace="default")
                        for cname, resource, ids in containers:
                            cr = pr.containers.add(name=cname)
                            cr.devices.add(resource_name=resource, device_ids=ids)
                    return resp

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        svc.add_PodResourcesListerServicer_to_server(Lister(), self.server)
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.server.add_insecure_port("unix://" + self.sock)
        self.server.start()

    def add_pod(self, name, containers):
        """A pod now holds devices; pods holding any of the same ids are gone (the kubelet
        only hands out free devices)."""
        ids = set(i for _, _, d in containers for i in d)
        with self.lock:
            self.pods = [(n, c) for n, c in self.pods
                         if not ids & set(i for _, _, d in c for i in d)]
            self.pods.append((name, containers))

    def set_pods(self, pods):
        with self.lock:
            self.pods = pods
            start = self.calls
        return start

    def stop(self):
        if self.server:
            self.server.stop(grace=None).wait()
            self.server = None


class Proxy:
    """A real gpu_proxy_stub serving <dir>/admin.sock."""

    def __init__(self, binary, listen_dir, log):
        self.binary = binary
        self.dir = listen_dir
        self.log = log
        self.proc = None

    @property
    def admin_sock(self):
        return os.path.join(self.dir, "admin.sock")

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.proc = subprocess.Popen([self.binary, "--listen", self.dir, "--log-level", "info"],
                                     stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("gpu_proxy_stub exited with %d" % self.proc.returncode)
            try:
                return admin(self.admin_sock, "PING").startswith("OK")
            except OSError:
                return False
        wait_for(up, 30, "gpu_proxy_stub to answer PING")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
