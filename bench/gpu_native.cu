/* gpu_native.cu - figure 7's workload, a CUDA runtime program (nvcc, static cudart, cuBLAS):
 * kernel launch rate, cudaMemcpy 1 MiB and 64 MiB with pinned and pageable host memory, and a
 * cuBLAS sgemm loop. gpu_compare runs it twice: against NVIDIA's libcuda.so.1 ("native") and
 * against libvgpu's through `gpu_proxy --backend cuda` ("remoted", rows refer to the native ones).
 * Usage: gpu_native native|remoted CPUS_DESCRIPTION */
#include "harness.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_err[256];

static int rt_check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return 0;
    snprintf(g_err, sizeof(g_err), "%s failed: %s (%d)", what, cudaGetErrorString(e), (int)e);
    fprintf(stderr, "bench: %s\n", g_err);
    return -1;
}
#define RT(call) rt_check((call), #call)

__global__ void empty_kernel(void)
{
}

static const char *g_mode;
static const char *g_cpus;

static void emit(const char *what, const char *label, const char *unit, double *v, int reps)
{
    char id[96], ref[96];
    struct bh_row row;

    memset(&row, 0, sizeof(row));
    snprintf(id, sizeof(id), "gpu.%s.%s", g_mode, what);
    snprintf(ref, sizeof(ref), "gpu.native.%s", what);
    bh_stats(v, (size_t)reps, &row.rep);
    row.id = id;
    row.fig = "7";
    row.label = label;
    row.cpus = g_cpus;
    row.unit = unit;
    if (strcmp(g_mode, "native") != 0) {
        row.ref = ref;
        row.ref_what = "native";
    }
    bh_emit(&row);
}

static void missing(const char *what, const char *label)
{
    char id[96];
    snprintf(id, sizeof(id), "gpu.%s.%s", g_mode, what);
    bh_emit_missing(id, "7", label, "unavailable", g_err);
}

static int launch_rate(int reps, uint64_t rep_ns)
{
    double rate[1000];
    char label[96];

    snprintf(label, sizeof(label), "%s: empty kernel launches/s (incl. sync)", g_mode);
    for (int r = -1; r < reps; r++) {
        uint64_t start = bh_now_ns(), now = start, n = 0;
        while (now - start < (r < 0 ? rep_ns / 4 : rep_ns)) {
            for (int b = 0; b < 64; b++)
                empty_kernel<<<1, 1>>>();
            if (RT(cudaGetLastError()))
                goto fail;
            n += 64;
            now = bh_now_ns();
        }
        if (RT(cudaDeviceSynchronize()))
            goto fail;
        now = bh_now_ns();
        if (r >= 0)
            rate[r] = (double)n * 1e9 / (double)(now - start);
    }
    emit("launch", label, "calls/s", rate, reps);
    return 0;
fail:
    missing("launch", label);
    return -1;
}

static int copies(int reps, uint64_t rep_ns)
{
    static const size_t sizes[] = {1u << 20, 64u << 20};
    const size_t maxsz = 64u << 20;
    void *dev = NULL, *pinned = NULL, *pageable = NULL;
    char all_label[64];
    int fails = 0;

    snprintf(all_label, sizeof(all_label), "%s: cudaMemcpy set-up", g_mode);

    if (RT(cudaMalloc(&dev, maxsz)) || RT(cudaMallocHost(&pinned, maxsz))) {
        missing("memcpy", all_label);
        return -1;
    }
    pageable = malloc(maxsz);
    if (!pageable) {
        snprintf(g_err, sizeof(g_err), "out of host memory");
        missing("memcpy", all_label);
        return -1;
    }
    memset(pageable, 1, maxsz);
    memset(pinned, 1, maxsz);
    for (int kind = 0; kind < 2; kind++) {
        void *host = kind ? pageable : pinned;
        const char *kname = kind ? "pageable" : "pinned";
        for (size_t s = 0; s < 2; s++) {
            for (int dir = 0; dir < 2; dir++) {
                double g[1000];
                char what[64], label[96];
                int bad = 0;
                snprintf(what, sizeof(what), "memcpy.%s.%zuM.%s", kname, sizes[s] >> 20,
                         dir ? "d2h" : "h2d");
                snprintf(label, sizeof(label), "%s: cudaMemcpy %s %zu MiB %s, GB/s", g_mode,
                         dir ? "DtoH" : "HtoD", sizes[s] >> 20, kname);
                for (int r = -1; r < reps && !bad; r++) {
                    uint64_t start = bh_now_ns(), now = start, bytes = 0;
                    while (now - start < (r < 0 ? rep_ns / 4 : rep_ns)) {
                        if (RT(cudaMemcpy(dir ? host : dev, dir ? dev : host, sizes[s],
                                          dir ? cudaMemcpyDeviceToHost
                                              : cudaMemcpyHostToDevice))) {
                            bad = 1;
                            break;
                        }
                        bytes += sizes[s];
                        now = bh_now_ns();
                    }
                    if (r >= 0)
                        g[r] = (double)bytes / (double)(now - start);
                }
                if (bad) {
                    missing(what, label);
                    fails++;
                } else {
                    emit(what, label, "GB/s", g, reps);
                }
            }
        }
    }
    free(pageable);
    RT(cudaFreeHost(pinned));
    RT(cudaFree(dev));
    return fails ? -1 : 0;
}

static int sgemm(int reps, uint64_t rep_ns)
{
    const int n = 1024;
    const float alpha = 1.0f, beta = 0.0f;
    float *a = NULL, *b = NULL, *c = NULL;
    double gflops[1000];
    cublasHandle_t h;
    char label[96];
    int rc = 0;

    snprintf(label, sizeof(label), "%s: cuBLAS sgemm 1024^3 loop, GFLOP/s", g_mode);
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        snprintf(g_err, sizeof(g_err), "cublasCreate failed");
        missing("sgemm", label);
        return -1;
    }
    if (RT(cudaMalloc((void **)&a, sizeof(float) * n * n)) ||
        RT(cudaMalloc((void **)&b, sizeof(float) * n * n)) ||
        RT(cudaMalloc((void **)&c, sizeof(float) * n * n)) ||
        RT(cudaMemset(a, 0, sizeof(float) * n * n)) ||
        RT(cudaMemset(b, 0, sizeof(float) * n * n))) {
        rc = -1;
        goto out;
    }
    for (int r = -1; r < reps && rc == 0; r++) {
        uint64_t start = bh_now_ns(), now = start, iters = 0;
        while (now - start < (r < 0 ? rep_ns / 4 : rep_ns)) {
            for (int k = 0; k < 8; k++) {
                if (cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, n, b, n, &beta,
                                c, n) != CUBLAS_STATUS_SUCCESS) {
                    snprintf(g_err, sizeof(g_err), "cublasSgemm failed");
                    rc = -1;
                    break;
                }
            }
            if (rc || RT(cudaDeviceSynchronize())) {
                rc = -1;
                break;
            }
            iters += 8;
            now = bh_now_ns();
        }
        if (r >= 0 && rc == 0)
            gflops[r] = 2.0 * n * (double)n * n * (double)iters / (double)(now - start);
    }
out:
    if (rc == 0)
        emit("sgemm", label, "GFLOP/s", gflops, reps);
    else
        missing("sgemm", label);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cublasDestroy(h);
    return rc;
}

int main(int argc, char **argv)
{
    int reps = bh_reps();
    uint64_t rep_ns = bh_rep_ns();
    int fails = 0;

    if (argc != 3 || (strcmp(argv[1], "native") != 0 && strcmp(argv[1], "remoted") != 0)) {
        fprintf(stderr, "usage: %s native|remoted CPUS\n", argv[0]);
        return 2;
    }
    g_mode = argv[1];
    g_cpus = argv[2];
    if (RT(cudaFree(0))) {
        char label[64];
        snprintf(label, sizeof(label), "%s: CUDA runtime start-up", g_mode);
        missing("init", label);
        return 1;
    }
    fails += launch_rate(reps, rep_ns) != 0;
    fails += copies(reps, rep_ns) != 0;
    fails += sgemm(reps, rep_ns) != 0;
    return fails ? 1 : 0;
}
