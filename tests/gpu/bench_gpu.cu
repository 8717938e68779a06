// bench_gpu.cu - the cost of isolation: the same measurements run natively (NVIDIA's
// libcuda.so.1) and remoted (libvgpu -> gpu_proxy --backend cuda) in one gpu-check run; the
// report divides them. One JSON line per figure (gpucheck.h, status "value"):
//   sync latency: cudaDeviceSynchronize on an idle device, cudaMemGetInfo, a 4-byte cudaMemcpy
//                 host-to-device (median of single calls, microseconds)
//   launch rate:  empty kernel launches per second, the final synchronisation included
//   copies:       cudaMemcpy 1 MiB and 256 MiB, pinned and pageable host memory, both
//                 directions, GB/s (median of time-bounded repetitions; data checked once)
//   sgemm loop:   cublasSgemm 4096^3 in a loop, GFLOP/s (result checked)
// Usage: bench_gpu [SCALE]  (SCALE < 1 shortens every repetition, for slow simulated GPUs)
#include "gpucheck.h"

#include <cublas_v2.h>
#include <stdint.h>

static double g_scale = 1.0;

__global__ void empty_kernel(void) {}

__global__ void fill_f(float *p, size_t n, float v)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = v;
}

static int lat(const char *name, const char *what, int which, int calls)
{
    g_test = name;
    double *t = (double *)malloc(sizeof(double) * calls);
    void *d = NULL;
    uint32_t h = 1;
    size_t f, tot;
    RT(cudaMalloc(&d, 4096));
    for (int i = -calls / 10; i < calls; i++) {
        double t0 = gc_now();
        cudaError_t e = which == 0 ? cudaDeviceSynchronize()
                        : which == 1 ? cudaMemGetInfo(&f, &tot)
                                     : cudaMemcpy(d, &h, 4, cudaMemcpyHostToDevice);
        double t1 = gc_now();
        if (e != cudaSuccess) {
            gc_emit(name, "fail", "call", what, "error", gc_cuda_err(e), "libcuda", gc_libcuda(),
                    NULL);
            return 1;
        }
        if (i >= 0)
            t[i] = (t1 - t0) * 1e6;
    }
    gc_value(name, gc_median(t, calls), "us", "lower", gc_fmt("%s, median of %d calls", what, calls));
    RT(cudaFree(d));
    free(t);
    return 0;
}

static int launch_rate(void)
{
    g_test = "bench.launch_rate";
    double r[3];
    for (int rep = -1; rep < 3; rep++) {
        double t0 = gc_now(), now = t0;
        long n = 0;
        while (now - t0 < 0.3 * g_scale) {
            for (int b = 0; b < 64; b++)
                empty_kernel<<<1, 1>>>();
            RT(cudaGetLastError());
            n += 64;
            now = gc_now();
        }
        RT(cudaDeviceSynchronize());
        now = gc_now();
        if (rep >= 0)
            r[rep] = (double)n / (now - t0);
    }
    gc_value("bench.launch_rate", gc_median(r, 3), "launches/s", "higher",
             "empty kernel <<<1,1>>>, batches of 64, final cudaDeviceSynchronize included");
    return 0;
}

static int copies(void)
{
    static const size_t sizes[] = {1u << 20, 256u << 20};
    const size_t maxsz = 256u << 20;
    void *dev = NULL, *pinned = NULL;
    void *pageable = malloc(maxsz), *check = malloc(1u << 20);
    g_test = "bench.memcpy";
    if (!pageable || !check) {
        gc_emit(g_test, "fail", "error", "out of host memory", NULL);
        return 1;
    }
    RT(cudaMalloc(&dev, maxsz));
    RT(cudaMallocHost(&pinned, maxsz));
    for (size_t i = 0; i < maxsz; i++)
        ((unsigned char *)pageable)[i] = (unsigned char)(i * 7 + 3);
    memcpy(pinned, pageable, maxsz);
    // correctness once: 1 MiB there and back
    RT(cudaMemcpy(dev, pageable, 1u << 20, cudaMemcpyHostToDevice));
    RT(cudaMemcpy(check, dev, 1u << 20, cudaMemcpyDeviceToHost));
    if (memcmp(check, pageable, 1u << 20) != 0) {
        gc_emit(g_test, "fail", "error", "1 MiB round trip returned different bytes", NULL);
        return 1;
    }
    for (int kind = 0; kind < 2; kind++)
        for (size_t s = 0; s < 2; s++)
            for (int dir = 0; dir < 2; dir++) {
                void *host = kind ? pageable : pinned;
                const char *name = gc_fmt("bench.memcpy_%s_%s_%s", s ? "256MiB" : "1MiB",
                                          kind ? "pageable" : "pinned", dir ? "d2h" : "h2d");
                double g[3];
                g_test = name;
                for (int rep = -1; rep < 3; rep++) {
                    double t0 = gc_now(), now = t0;
                    size_t bytes = 0;
                    int n = 0;
                    while (n < 3 || now - t0 < 0.15 * g_scale) {
                        RT(cudaMemcpy(dir ? host : dev, dir ? dev : host, sizes[s],
                                      dir ? cudaMemcpyDeviceToHost : cudaMemcpyHostToDevice));
                        bytes += sizes[s];
                        n++;
                        now = gc_now();
                    }
                    if (rep >= 0)
                        g[rep] = (double)bytes / (now - t0) / 1e9;
                }
                gc_value(name, gc_median(g, 3), "GB/s", "higher",
                         gc_fmt("cudaMemcpy %s %s MiB %s", dir ? "DtoH" : "HtoD",
                                s ? "256" : "1", kind ? "pageable" : "pinned"));
            }
    RT(cudaFreeHost(pinned));
    RT(cudaFree(dev));
    free(pageable);
    free(check);
    return 0;
}

static int sgemm(void)
{
    g_test = "bench.sgemm";
    const int n = 4096;
    const float alpha = 1.0f, beta = 0.0f;
    float *a, *b, *c, c0 = 0;
    cublasHandle_t h;
    cublasStatus_t st = cublasCreate(&h);
    if (st != CUBLAS_STATUS_SUCCESS) {
        gc_emit(g_test, "fail", "call", "cublasCreate", "error",
                gc_fmt("%s (%d)", cublasGetStatusName(st), (int)st), NULL);
        return 1;
    }
    RT(cudaMalloc(&a, sizeof(float) * n * n));
    RT(cudaMalloc(&b, sizeof(float) * n * n));
    RT(cudaMalloc(&c, sizeof(float) * n * n));
    fill_f<<<1024, 256>>>(a, (size_t)n * n, 0.5f);
    fill_f<<<1024, 256>>>(b, (size_t)n * n, 0.5f);
    RT(cudaGetLastError());
    double r[3];
    for (int rep = -1; rep < 3; rep++) {
        double t0 = gc_now(), now = t0;
        long it = 0;
        while (it < 2 || now - t0 < 0.2 * g_scale) {
            st = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, n, b, n, &beta, c, n);
            if (st != CUBLAS_STATUS_SUCCESS) {
                gc_emit(g_test, "fail", "call", "cublasSgemm", "error",
                        gc_fmt("%s (%d)", cublasGetStatusName(st), (int)st), NULL);
                return 1;
            }
            it++;
            if (it % 4 == 0) {
                RT(cudaDeviceSynchronize());
                now = gc_now();
            }
        }
        RT(cudaDeviceSynchronize());
        now = gc_now();
        if (rep >= 0)
            r[rep] = 2.0 * n * (double)n * n * (double)it / (now - t0) / 1e9;
    }
    RT(cudaMemcpy(&c0, c, sizeof(float), cudaMemcpyDeviceToHost));
    if (c0 != 0.25f * n) {
        gc_emit(g_test, "fail", "error", gc_fmt("C[0] = %g, expected %g", c0, 0.25 * n), NULL);
        return 1;
    }
    gc_value("bench.sgemm_4096", gc_median(r, 3), "GFLOP/s", "higher",
             "cublasSgemm 4096^3 fp32 loop, result checked");
    cublasDestroy(h);
    return 0;
}

int main(int argc, char **argv)
{
    int fails = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1)
        g_scale = atof(argv[1]) > 0 ? atof(argv[1]) : 1.0;
    g_test = "bench.init";
    double t0 = gc_now();
    cudaError_t e = cudaFree(0);
    if (e != cudaSuccess) {
        gc_emit("bench.init", "fail", "call", "cudaFree(0)", "error", gc_cuda_err(e), "libcuda",
                gc_libcuda(), NULL);
        return 1;
    }
    gc_value("bench.init_s", gc_now() - t0, "s", "lower", "first runtime call (context creation)");
    gc_emit("bench.libcuda", "info", "libcuda", gc_libcuda(), NULL);
    int calls = g_scale < 1 ? 200 : 2000;
    fails += lat("bench.sync_device_us", "cudaDeviceSynchronize, idle", 0, calls);
    fails += lat("bench.memgetinfo_us", "cudaMemGetInfo", 1, calls);
    fails += lat("bench.memcpy_4B_h2d_us", "cudaMemcpy 4 bytes host-to-device", 2, calls);
    fails += launch_rate();
    fails += copies();
    fails += sgemm();
    return fails ? 1 : 0;
}
