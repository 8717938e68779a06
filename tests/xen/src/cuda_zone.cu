/* cuda_zone.cu - the CUDA program a guest domain runs in the Xen test (static libcudart, our
 * libcuda.so.1, gpu_proxy in dom0 over the Xen transport): memory round trips with checksums,
 * streams and events, a kernel launch. With `hold`, it then keeps a secret allocation and a stream
 * alive, writes their values to PROBE_FILE for another guest to try, waits for RELEASE_FILE and
 * checks that both are untouched. Prints `XENTEST CASE <name>-<what> PASS|FAIL ...` lines.
 * Usage: cuda_zone NAME [hold PROBE_FILE RELEASE_FILE] */
#include <cuda_runtime.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *name = "cuda";
static int failures;

static void verdict(const char *what, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verdict(const char *what, int ok, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    printf("XENTEST CASE %s-%s %s %s\n", name, what, ok ? "PASS" : "FAIL", msg);
    fflush(stdout);
    failures += !ok;
}

/* Records the first failing call of a case in `why`. */
#define TRY(call)                                                                               \
    do {                                                                                        \
        cudaError_t e_ = (call);                                                                \
        if (e_ != cudaSuccess && err == cudaSuccess) {                                          \
            err = e_;                                                                           \
            snprintf(why, sizeof(why), "%s failed: %s", #call, cudaGetErrorString(e_));         \
        }                                                                                       \
    } while (0)

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (uint8_t)(x >> 24);
    }
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

__global__ void vec_add(const float *a, const float *b, float *c, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        c[i] = a[i] + b[i];
}

static void case_memcpy(void)
{
    cudaError_t err = cudaSuccess;
    char why[256] = "";
    const size_t sizes[] = {1, 4093, 1 << 20, (8 << 20) + 3};
    int bad = 0;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]) && err == cudaSuccess; k++) {
        size_t n = sizes[k];
        uint8_t *h = (uint8_t *)malloc(n), *back = (uint8_t *)malloc(n);
        void *d1 = NULL, *d2 = NULL;
        fill(h, n, (uint32_t)k + 1);
        memset(back, 0, n);
        TRY(cudaMalloc(&d1, n));
        TRY(cudaMalloc(&d2, n));
        TRY(cudaMemcpy(d1, h, n, cudaMemcpyHostToDevice));
        TRY(cudaMemcpy(d2, d1, n, cudaMemcpyDeviceToDevice));
        TRY(cudaMemcpy(back, d2, n, cudaMemcpyDeviceToHost));
        if (err == cudaSuccess && fnv1a(back, n) != fnv1a(h, n)) {
            bad++;
            snprintf(why, sizeof(why), "%zu bytes came back with checksum %016llx, sent %016llx",
                     n, (unsigned long long)fnv1a(back, n), (unsigned long long)fnv1a(h, n));
        }
        if (d1)
            TRY(cudaFree(d1));
        if (d2)
            TRY(cudaFree(d2));
        free(h);
        free(back);
    }
    verdict("memcpy", err == cudaSuccess && !bad, "%s",
            err == cudaSuccess && !bad ? "HtoD, DtoD, DtoH of 1 B to 8 MiB+3: checksums match"
                                       : why);
}

static void case_streams(void)
{
    cudaError_t err = cudaSuccess;
    char why[256] = "";
    const size_t n = 3 << 20;
    uint8_t *h = (uint8_t *)malloc(n), *back = (uint8_t *)malloc(n);
    void *d = NULL;
    cudaStream_t s1 = NULL, s2 = NULL;
    cudaEvent_t e1 = NULL, e2 = NULL;
    float ms = -1;
    fill(h, n, 77);
    memset(back, 0, n);
    TRY(cudaMalloc(&d, n));
    TRY(cudaStreamCreate(&s1));
    TRY(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    TRY(cudaEventCreate(&e1));
    TRY(cudaEventCreate(&e2));
    TRY(cudaEventRecord(e1, s1));
    TRY(cudaMemcpyAsync(d, h, n, cudaMemcpyHostToDevice, s1));
    TRY(cudaMemsetAsync(d, 0x5A, 4096, s1));
    TRY(cudaEventRecord(e2, s1));
    TRY(cudaStreamWaitEvent(s2, e2, 0));
    TRY(cudaMemcpyAsync(back, d, n, cudaMemcpyDeviceToHost, s2));
    TRY(cudaStreamSynchronize(s2));
    TRY(cudaEventSynchronize(e2));
    TRY(cudaEventElapsedTime(&ms, e1, e2));
    TRY(cudaEventQuery(e2));
    TRY(cudaStreamQuery(s1));
    memset(h, 0x5A, 4096);
    int ok = err == cudaSuccess && fnv1a(back, n) == fnv1a(h, n) && ms >= 0;
    if (err == cudaSuccess && !ok)
        snprintf(why, sizeof(why), "data through two streams differs or elapsed time %f < 0",
                 (double)ms);
    if (e1)
        TRY(cudaEventDestroy(e1));
    if (e2)
        TRY(cudaEventDestroy(e2));
    if (s1)
        TRY(cudaStreamDestroy(s1));
    if (s2)
        TRY(cudaStreamDestroy(s2));
    if (d)
        TRY(cudaFree(d));
    free(h);
    free(back);
    verdict("streams", ok && err == cudaSuccess, "%s",
            ok && err == cudaSuccess ? "async copies, memset, events and a cross-stream wait: "
                                       "data intact"
                                     : why);
}

static void case_kernel(void)
{
    cudaError_t err = cudaSuccess;
    char why[256] = "";
    const int n = 5000;
    float *ha = (float *)malloc(n * sizeof(float)), *hb = (float *)malloc(n * sizeof(float));
    float *hc = (float *)malloc(n * sizeof(float));
    float *da = NULL, *db = NULL, *dc = NULL;
    for (int i = 0; i < n; i++) {
        ha[i] = (float)i;
        hb[i] = 0.5f * (float)i;
        hc[i] = -1;
    }
    TRY(cudaMalloc(&da, n * sizeof(float)));
    TRY(cudaMalloc(&db, n * sizeof(float)));
    TRY(cudaMalloc(&dc, n * sizeof(float)));
    TRY(cudaMemcpy(da, ha, n * sizeof(float), cudaMemcpyHostToDevice));
    TRY(cudaMemcpy(db, hb, n * sizeof(float), cudaMemcpyHostToDevice));
    TRY(cudaMemset(dc, 0xA7, n * sizeof(float)));
    if (err == cudaSuccess) {
        vec_add<<<(n + 127) / 128, 128>>>(da, db, dc, n);
        TRY(cudaGetLastError());
        TRY(cudaDeviceSynchronize());
    }
    TRY(cudaMemcpy(hc, dc, n * sizeof(float), cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (int i = 0; i < n && err == cudaSuccess; i++)
        wrong += hc[i] != 1.5f * (float)i;
    if (da)
        TRY(cudaFree(da));
    if (db)
        TRY(cudaFree(db));
    if (dc)
        TRY(cudaFree(dc));
    free(ha);
    free(hb);
    free(hc);
    if (err == cudaSuccess && wrong)
        snprintf(why, sizeof(why), "%d of %d sums wrong", wrong, n);
    verdict("kernel", err == cudaSuccess && !wrong, "%s",
            err == cudaSuccess && !wrong ? "vec_add<<<40,128>>> over 5000 floats: all sums right"
                                         : why);
}

/* Keeps a secret allocation and a stream for another guest to try, then checks them. */
static void case_hold(const char *probe_file, const char *release_file)
{
    cudaError_t err = cudaSuccess;
    char why[256] = "";
    const size_t n = 65536;
    uint8_t *h = (uint8_t *)malloc(n), *back = (uint8_t *)malloc(n);
    void *d = NULL;
    cudaStream_t s = NULL;
    fill(h, n, 4242);
    TRY(cudaMalloc(&d, n));
    TRY(cudaStreamCreate(&s));
    TRY(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
    if (err != cudaSuccess) {
        verdict("held-intact", 0, "%s", why);
        return;
    }
    FILE *f = fopen(probe_file, "w");
    if (!f || fprintf(f, "0x%llx 0x%llx\n", (unsigned long long)(uintptr_t)d,
                      (unsigned long long)(uintptr_t)s) < 0 || fclose(f) != 0) {
        verdict("held-intact", 0, "cannot write %s", probe_file);
        return;
    }
    printf("%s: holding dptr 0x%llx and stream 0x%llx for the other guest to try\n", name,
           (unsigned long long)(uintptr_t)d, (unsigned long long)(uintptr_t)s);
    fflush(stdout);
    int waited = 0;
    while (access(release_file, F_OK) != 0 && waited < 2400) {
        usleep(100000);
        waited++;
    }
    memset(back, 0, n);
    TRY(cudaMemcpyAsync(back, d, n, cudaMemcpyDeviceToHost, s));
    TRY(cudaStreamSynchronize(s));
    TRY(cudaStreamDestroy(s));
    TRY(cudaFree(d));
    int ok = err == cudaSuccess && fnv1a(back, n) == fnv1a(h, n) && waited < 2400;
    if (err == cudaSuccess && !ok)
        snprintf(why, sizeof(why), "%s", waited >= 2400 ? "never released" : "secret changed");
    verdict("held-intact", ok, "%s",
            ok ? "after the other guest's attempts our allocation and stream are untouched" : why);
    free(h);
    free(back);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1)
        name = argv[1];
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    verdict("device", e == cudaSuccess && ndev > 0, "cudaGetDeviceCount: %s, %d device(s)",
            cudaGetErrorString(e), ndev);
    if (e != cudaSuccess || ndev == 0)
        return 1;
    case_memcpy();
    case_streams();
    case_kernel();
    if (argc > 4 && strcmp(argv[2], "hold") == 0)
        case_hold(argv[3], argv[4]);
    return failures ? 1 : 0;
}
