/* zone_app.cu - the CUDA program the runtime test runs as a container in a zone guest (static
 * libcudart; our libcuda.so.1 comes from the runtime): prints a first line at once (the
 * start-up figure), then `XENTEST CASE <name>-<what>` verdicts. Modes:
 *   zone_app NAME compute QUOTA_MIB EXIT   vector add on the GPU checked on the host, then an
 *                                          allocation past the zone's quota must fail with
 *                                          out-of-memory; exits with EXIT when all passed
 *   zone_app NAME spin                     launches kernels until it is killed
 *   zone_app NAME nodevice                 cudaGetDeviceCount must find no device */
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void verdict(const char *name, const char *what, int ok, const char *why)
{
    printf("XENTEST CASE %s-%s %s %s\n", name, what, ok ? "PASS" : "FAIL", why);
    fflush(stdout);
    failures += !ok;
}

__global__ void vec_add(const float *a, const float *b, float *c, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        c[i] = a[i] + b[i];
}

static int compute(const char *name, int quiet)
{
    const int n = 1 << 16;
    size_t bytes = n * sizeof(float);
    float *a = (float *)malloc(bytes), *b = (float *)malloc(bytes), *c = (float *)malloc(bytes);
    float *da = NULL, *db = NULL, *dc = NULL;
    char why[256];
    int wrong = 0;
    for (int i = 0; i < n; i++)
        a[i] = (float)i, b[i] = 2.0f * (float)i;
    cudaError_t e = cudaMalloc(&da, bytes);
    if (e == cudaSuccess) e = cudaMalloc(&db, bytes);
    if (e == cudaSuccess) e = cudaMalloc(&dc, bytes);
    if (e == cudaSuccess) e = cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) e = cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice);
    if (e == cudaSuccess) {
        vec_add<<<(n + 255) / 256, 256>>>(da, db, dc, n);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost);
    for (int i = 0; e == cudaSuccess && i < n; i++)
        wrong += c[i] != 3.0f * (float)i;
    snprintf(why, sizeof(why), "vector add of %d floats: %s, %d wrong", n, cudaGetErrorString(e),
             wrong);
    if (!quiet)
        verdict(name, "compute", e == cudaSuccess && wrong == 0, why);
    cudaFree(da), cudaFree(db), cudaFree(dc);
    free(a), free(b), free(c);
    return e == cudaSuccess && wrong == 0;
}

/* Half the quota fits; a second allocation of the same size plus the first cannot. */
static void quota(const char *name, size_t quota_mib)
{
    size_t chunk = (quota_mib / 2 + 1) << 20;
    void *p1 = NULL, *p2 = NULL;
    char why[256];
    cudaError_t e1 = cudaMalloc(&p1, chunk), e2 = cudaMalloc(&p2, chunk);
    snprintf(why, sizeof(why), "2 x %zu MiB in a %zu MiB zone: first %s, second %s",
             chunk >> 20, quota_mib, cudaGetErrorString(e1), cudaGetErrorString(e2));
    verdict(name, "quota-oom", e1 == cudaSuccess && e2 == cudaErrorMemoryAllocation, why);
    cudaFree(p1);
    cudaGetLastError();
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "app", *mode = argc > 2 ? argv[2] : "compute";
    int ndev = -1;
    printf("zone_app %s: started\n", name);
    fflush(stdout);
    cudaError_t e = cudaGetDeviceCount(&ndev);
    if (strcmp(mode, "nodevice") == 0) {
        char why[128];
        snprintf(why, sizeof(why), "cudaGetDeviceCount: %s, %d device(s)", cudaGetErrorString(e),
                 e == cudaSuccess ? ndev : 0);
        verdict(name, "nodevice", e != cudaSuccess || ndev == 0, why);
        return failures ? 1 : 0;
    }
    if (e != cudaSuccess || ndev < 1) {
        verdict(name, "compute", 0, cudaGetErrorString(e));
        return 1;
    }
    if (strcmp(mode, "spin") == 0) {
        for (unsigned long i = 0;; i++) {
            compute(name, 1);
            if (i == 0)
                printf("zone_app %s: spinning\n", name), fflush(stdout);
        }
    }
    compute(name, 0);
    quota(name, argc > 3 ? strtoul(argv[3], NULL, 10) : 64);
    return failures ? 1 : (argc > 4 ? atoi(argv[4]) : 0);
}
