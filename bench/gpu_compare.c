/* gpu_compare.c - figure 7: when NVIDIA's libcuda.so.1 loads and a GPU answers, runs
 * gpu_native against it ("native") and then through libvgpu and a private `gpu_proxy --backend
 * cuda` ("remoted"), so the report can print remoted/native ratios; otherwise records why the
 * section was skipped.
 * Usage: gpu_compare GPU_PROXY GPU_NATIVE LIBVGPU_DIR */
#include "harness.h"
#include "proxy_ctl.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void skipped(const char *reason)
{
    bh_emit_missing("gpu", "7", "real GPU: remoted/native ratios", "skipped", reason);
}

/* 0 if NVIDIA's driver library loads and reports at least one GPU; reason otherwise. */
static int probe(const char *libvgpu_dir, char *reason, size_t len)
{
    typedef int (*init_fn)(unsigned);
    typedef int (*count_fn)(int *);
    char ours[PATH_MAX], theirs[PATH_MAX];
    void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    init_fn init;
    count_fn count;
    Dl_info info;
    int n = 0, rc;

    if (!h) {
        snprintf(reason, len, "NVIDIA's libcuda.so.1 is not loadable here (%s)", dlerror());
        return -ENOENT;
    }
    init = (init_fn)dlsym(h, "cuInit");
    count = (count_fn)dlsym(h, "cuDeviceGetCount");
    if (!init || !count) {
        snprintf(reason, len, "libcuda.so.1 lacks cuInit/cuDeviceGetCount");
        return -ENOENT;
    }
    if (dladdr((void *)init, &info) && info.dli_fname && realpath(info.dli_fname, theirs) &&
        realpath(libvgpu_dir, ours) && strncmp(theirs, ours, strlen(ours)) == 0) {
        snprintf(reason, len, "libcuda.so.1 resolves to libvgpu's (%.300s), not NVIDIA's; unset "
                 "LD_LIBRARY_PATH", theirs);
        return -EINVAL;
    }
    rc = init(0);
    if (rc != 0) {
        snprintf(reason, len, "NVIDIA's cuInit failed with CUresult %d (no usable GPU)", rc);
        return -ENODEV;
    }
    rc = count(&n);
    if (rc != 0 || n <= 0) {
        snprintf(reason, len, "cuDeviceGetCount reports %d GPUs (CUresult %d)", n, rc);
        return -ENODEV;
    }
    return 0;
}

static int run(char *const argv[], const char *vgpu_socket, const char *ld_path, int cpu)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || bh_pin(cpu) != 0)
            _exit(126);
        if (vgpu_socket)
            setenv("VGPU_SOCKET", vgpu_socket, 1);
        if (ld_path)
            setenv("LD_LIBRARY_PATH", ld_path, 1);
        execv(argv[0], argv);
        fprintf(stderr, "bench: exec %s failed: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return bh_wait(pid);
}

int main(int argc, char **argv)
{
    char reason[512], cpus[96], sock[256];
    struct proxy px;
    int rc;

    if (argc != 4) {
        fprintf(stderr, "usage: %s GPU_PROXY GPU_NATIVE LIBVGPU_DIR\n", argv[0]);
        return 2;
    }
    if (access(argv[2], X_OK) != 0) {
        snprintf(reason, sizeof(reason), "%s is not built (needs nvcc and cuBLAS)", argv[2]);
        skipped(reason);
        return 0;
    }
    if (probe(argv[3], reason, sizeof(reason)) != 0) {
        skipped(reason);
        return 0;
    }
    if (access(argv[1], X_OK) != 0) {
        snprintf(reason, sizeof(reason), "%s is not built", argv[1]);
        skipped(reason);
        return 0;
    }
    snprintf(cpus, sizeof(cpus), "cpu%d", bh_cpu_a());
    {
        char *nargv[] = {argv[2], (char *)"native", cpus, NULL};
        rc = run(nargv, NULL, NULL, bh_cpu_a());
        if (rc != 0)
            bh_log("native GPU run exited with status %d", rc);
    }
    if (proxy_start(&px, argv[1], "--backend cuda", bh_cpu_b()) != 0) {
        bh_emit_missing("gpu.remoted", "7", "remoted runs", "unavailable",
                        "gpu_proxy --backend cuda did not start");
        return 1;
    }
    if (proxy_add_zone(&px, "gpucmp", "16G", sock, sizeof(sock)) != 0) {
        bh_emit_missing("gpu.remoted", "7", "remoted runs", "unavailable",
                        "gpu_proxy refused ADD gpucmp 16G");
        proxy_stop(&px);
        return 1;
    }
    snprintf(cpus, sizeof(cpus), "client cpu%d, server cpu%d", bh_cpu_a(), bh_cpu_b());
    {
        char *rargv[] = {argv[2], (char *)"remoted", cpus, NULL};
        rc = run(rargv, sock, argv[3], bh_cpu_a());
        if (rc != 0)
            bh_log("remoted GPU run exited with status %d", rc);
    }
    proxy_stop(&px);
    return 0;
}
