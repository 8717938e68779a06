// isolation.cu - zone isolation checks run through libvgpu against a running gpu_proxy (one
// zone per process, chosen by VGPU_SOCKET); gpu-check.sh combines the modes across zones.
// Each mode prints JSON result lines (gpucheck.h) and exits 0 when its check passed.
//   owner FILE GOFILE   allocate (after a pad), fill with a pattern, write the pointer to
//                       FILE, wait for GOFILE, then check the data is intact and the zone works
//   probe ADDR          another zone's pointer: cudaMemcpy and cudaMemset from/to it must fail,
//                       a kernel reading it must not see the owner's data
//   probe-write ADDR    a kernel writing to another zone's pointer (the owner checks its data)
//   quota               the zone's quota (cudaMemGetInfo total): allocations fill it and the
//                       next one fails with cudaErrorMemoryAllocation; freeing makes room
//   dirty MIB [fault]   allocate, fill with 0xA5 and free (or, with "fault", fault instead of
//                       freeing: the poisoned context cannot scrub; the memory must never come
//                       back dirty)
//   zero MIB ROUNDS     fresh allocations must read as zero (counted on the GPU)
//   steady SECONDS      vector additions checked on the host, until SECONDS have passed: the
//                       zone that keeps computing while another zone faults
#include "gpucheck.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATTERN 0x5A17C0DEu

__global__ void fill_u32(uint32_t *p, size_t n, uint32_t v)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        p[i] = v;
}

__global__ void count_nonzero(const uint32_t *p, size_t n, unsigned long long *out)
{
    unsigned long long c = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        c += p[i] != 0;
    if (c)
        atomicAdd(out, c);
}

__global__ void read_one(const uint32_t *src, uint32_t *dst)
{
    *dst = *src;
}

__global__ void write_one(uint32_t *dst, uint32_t v)
{
    *dst = v;
}

__global__ void vadd(const float *a, const float *b, float *c, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        c[i] = a[i] + b[i];
}

__global__ void write_far(uint32_t *p, long long offset)
{
    p[threadIdx.x + offset] = 1234;
}

static int wait_file(const char *path, int seconds)
{
    struct stat st;
    for (int i = 0; i < seconds * 20; i++) {
        if (stat(path, &st) == 0)
            return 0;
        usleep(50000);
    }
    return -1;
}

static int mode_owner(const char *file, const char *gofile)
{
    g_test = "isolation.owner";
    uint32_t *pad = NULL, *buf = NULL, v = 0;
    const size_t n = (4u << 20) / 4;
    RT(cudaMalloc(&pad, 64u << 20));
    RT(cudaMalloc(&buf, n * 4));
    fill_u32<<<256, 256>>>(buf, n, PATTERN);
    RT(cudaGetLastError());
    RT(cudaDeviceSynchronize());
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%p\n", (void *)buf) < 0 || fclose(f) != 0 || rename(tmp, file) != 0) {
        gc_emit(g_test, "fail", "error", gc_fmt("cannot write %s", file), NULL);
        return 1;
    }
    gc_emit("isolation.owner.pointer", "info", "pointer", gc_fmt("%p", (void *)buf), "libcuda",
            gc_libcuda(), NULL);
    if (wait_file(gofile, 120) != 0) {
        gc_emit(g_test, "fail", "error", "timed out waiting for the probes", NULL);
        return 1;
    }
    // The zone still launches kernels, and the whole buffer must still hold the pattern.
    unsigned long long bad = 0;
    fill_u32<<<1, 1>>>(pad, 1, 0);
    RT(cudaGetLastError());
    RT(cudaMemcpy(&v, buf, 4, cudaMemcpyDeviceToHost));
    uint32_t *host = (uint32_t *)malloc(n * 4);
    if (!host) {
        gc_emit(g_test, "fail", "error", "out of host memory", NULL);
        return 1;
    }
    RT(cudaMemcpy(host, buf, n * 4, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++)
        bad += host[i] != PATTERN;
    free(host);
    RT(cudaDeviceSynchronize());
    int ok = bad == 0;
    gc_emit("isolation.owner_data_intact", ok ? "pass" : "fail", "detail",
            ok ? "all 1M words still hold the pattern, the zone still works"
               : gc_fmt("%llu of %zu words changed (first word 0x%08x)", bad, n, v),
            NULL);
    return ok ? 0 : 1;
}

static int mode_probe(const char *addr_s, int write)
{
    uint32_t *addr = (uint32_t *)(uintptr_t)strtoull(addr_s, NULL, 0);
    uint32_t *out = NULL, v = 0;
    int bad = 0;
    char host[64];
    g_test = write ? "isolation.probe_write" : "isolation.probe";
    RT(cudaMalloc(&out, 4096));
    RT(cudaMemset(out, 0, 4096));
    if (!write) {
        cudaError_t e = cudaMemcpy(host, addr, sizeof(host), cudaMemcpyDeviceToHost);
        gc_emit("isolation.foreign_pointer.memcpy_from", e != cudaSuccess ? "pass" : "fail",
                "result", gc_cuda_err(e), "libcuda", gc_libcuda(), NULL);
        bad += e == cudaSuccess;
        cudaGetLastError();
        e = cudaMemcpy(addr, host, sizeof(host), cudaMemcpyHostToDevice);
        gc_emit("isolation.foreign_pointer.memcpy_to", e != cudaSuccess ? "pass" : "fail",
                "result", gc_cuda_err(e), NULL);
        bad += e == cudaSuccess;
        cudaGetLastError();
        e = cudaMemset(addr, 0, 64);
        gc_emit("isolation.foreign_pointer.memset", e != cudaSuccess ? "pass" : "fail", "result",
                gc_cuda_err(e), NULL);
        bad += e == cudaSuccess;
        cudaGetLastError();
        // Last: a kernel may fault, which ends this process's use of CUDA.
        read_one<<<1, 1>>>(addr, out);
        e = cudaGetLastError();
        if (e == cudaSuccess)
            e = cudaDeviceSynchronize();
        if (e == cudaSuccess) {
            RT(cudaMemcpy(&v, out, 4, cudaMemcpyDeviceToHost));
            gc_emit("isolation.foreign_pointer.kernel_read", v != PATTERN ? "pass" : "fail",
                    "result", v == PATTERN ? "the kernel read the other zone's data"
                                           : gc_fmt("no fault, read 0x%08x (not the owner's data)", v),
                    NULL);
            bad += v == PATTERN;
        } else {
            gc_emit("isolation.foreign_pointer.kernel_read", "pass", "result",
                    gc_fmt("kernel failed: %s", gc_cuda_err(e)), NULL);
        }
    } else {
        write_one<<<1, 1>>>(addr, 0xBADC0DEu);
        cudaError_t e = cudaGetLastError();
        if (e == cudaSuccess)
            e = cudaDeviceSynchronize();
        // Whether the owner's data changed is checked by the owner.
        gc_emit("isolation.foreign_pointer.kernel_write", "info", "result",
                e == cudaSuccess ? "the kernel completed (the owner checks its data)"
                                 : gc_fmt("kernel failed: %s", gc_cuda_err(e)),
                NULL);
    }
    return bad ? 1 : 0;
}

static int mode_quota(void)
{
    g_test = "isolation.quota";
    size_t freeb = 0, total = 0;
    RT(cudaMemGetInfo(&freeb, &total));
    const size_t chunk = 64u << 20;
    size_t nchunks = total / chunk;
    if (total == 0 || total > (64ull << 30)) {
        gc_emit(g_test, "fail", "error",
                gc_fmt("cudaMemGetInfo total %zu bytes: not a zone quota (expected 1 GiB)", total),
                NULL);
        return 1;
    }
    void **p = (void **)calloc(nchunks + 1, sizeof(void *));
    size_t got = 0;
    // The runtime's own allocations may take a little of the quota: fill all but the last chunk.
    for (; got + 1 < nchunks; got++)
        RT(cudaMalloc(&p[got], chunk));
    void *extra = NULL;
    cudaError_t over = cudaMalloc(&extra, 2 * chunk);
    cudaGetLastError();
    RT(cudaFree(p[0]));
    void *again = NULL;
    cudaError_t after = cudaMalloc(&again, chunk);
    cudaGetLastError();
    int ok = over == cudaErrorMemoryAllocation && after == cudaSuccess;
    gc_emit(g_test, ok ? "pass" : "fail", "total", gc_fmt("%zu", total),
            "allocated", gc_fmt("%zu x 64 MiB", got),
            "over_quota", gc_cuda_err(over), "after_free", gc_cuda_err(after), NULL);
    return ok ? 0 : 1;
}

static int mode_dirty(size_t mib, int fault)
{
    g_test = fault ? "isolation.dirty_fault" : "isolation.dirty";
    uint32_t *p = NULL;
    size_t n = (mib << 20) / 4;
    RT(cudaMalloc(&p, mib << 20));
    fill_u32<<<1024, 256>>>(p, n, 0xA5A5A5A5u);
    RT(cudaGetLastError());
    RT(cudaDeviceSynchronize());
    if (!fault) {
        RT(cudaFree(p));
        gc_emit(g_test, "pass", "detail", gc_fmt("%zu MiB filled with 0xA5 and freed", mib), NULL);
        return 0;
    }
    write_far<<<1, 32>>>(p, 2ll << 30); // 8 GiB past the start
    cudaError_t e = cudaDeviceSynchronize();
    gc_emit(g_test, e == cudaErrorIllegalAddress ? "pass" : "fail", "detail",
            gc_fmt("%zu MiB filled with 0xA5, then a fault: %s (expected "
                   "cudaErrorIllegalAddress); exiting without cudaFree",
                   mib, gc_cuda_err(e)),
            NULL);
    return e == cudaErrorIllegalAddress ? 0 : 1;
}

static int mode_zero(size_t mib, int rounds)
{
    g_test = "isolation.zero_on_alloc";
    unsigned long long *cnt = NULL, total_bad = 0;
    RT(cudaMalloc(&cnt, sizeof(*cnt)));
    for (int r = 0; r < rounds; r++) {
        uint32_t *p = NULL;
        unsigned long long c = 0;
        RT(cudaMalloc(&p, mib << 20));
        RT(cudaMemset(cnt, 0, sizeof(*cnt)));
        count_nonzero<<<1024, 256>>>(p, (mib << 20) / 4, cnt);
        RT(cudaGetLastError());
        RT(cudaMemcpy(&c, cnt, sizeof(c), cudaMemcpyDeviceToHost));
        total_bad += c;
        // dirty it before freeing, so the next round sees scrubbed or new memory only
        fill_u32<<<1024, 256>>>(p, (mib << 20) / 4, 0xA5A5A5A5u);
        RT(cudaGetLastError());
        RT(cudaDeviceSynchronize());
        RT(cudaFree(p));
    }
    gc_emit(g_test, total_bad == 0 ? "pass" : "fail", "detail",
            gc_fmt("%d allocations of %zu MiB: %llu non-zero 32-bit words", rounds, mib, total_bad),
            "libcuda", gc_libcuda(), NULL);
    return total_bad == 0 ? 0 : 1;
}

static int mode_steady(double seconds)
{
    g_test = "isolation.steady";
    const size_t n = 4u << 20;
    float *a, *b, *c;
    float *ha = (float *)malloc(n * 4), *hb = (float *)malloc(n * 4), *hc = (float *)malloc(n * 4);
    if (!ha || !hb || !hc) {
        gc_emit(g_test, "fail", "error", "out of host memory", NULL);
        return 1;
    }
    RT(cudaMalloc(&a, n * 4));
    RT(cudaMalloc(&b, n * 4));
    RT(cudaMalloc(&c, n * 4));
    long iters = 0, bad_iters = 0;
    double t0 = gc_now();
    printf("steady: started\n");
    fflush(stdout);
    while (gc_now() - t0 < seconds) {
        for (size_t i = 0; i < n; i++) {
            ha[i] = (float)((i + iters) % 1000);
            hb[i] = (float)(i % 7) * 0.5f;
        }
        RT(cudaMemcpy(a, ha, n * 4, cudaMemcpyHostToDevice));
        RT(cudaMemcpy(b, hb, n * 4, cudaMemcpyHostToDevice));
        RT(cudaMemset(c, 0xFF, n * 4));
        vadd<<<512, 256>>>(a, b, c, n);
        RT(cudaGetLastError());
        RT(cudaMemcpy(hc, c, n * 4, cudaMemcpyDeviceToHost));
        long bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += hc[i] != ha[i] + hb[i];
        bad_iters += bad != 0;
        iters++;
    }
    int ok = iters > 0 && bad_iters == 0;
    gc_emit(g_test, ok ? "pass" : "fail", "detail",
            gc_fmt("%ld vector additions of 4M floats in %.0f s, %ld with wrong results", iters,
                   seconds, bad_iters),
            NULL);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 4 && strcmp(argv[1], "owner") == 0)
        return mode_owner(argv[2], argv[3]);
    if (argc >= 3 && strcmp(argv[1], "probe") == 0)
        return mode_probe(argv[2], 0);
    if (argc >= 3 && strcmp(argv[1], "probe-write") == 0)
        return mode_probe(argv[2], 1);
    if (argc >= 2 && strcmp(argv[1], "quota") == 0)
        return mode_quota();
    if (argc >= 3 && strcmp(argv[1], "dirty") == 0)
        return mode_dirty(strtoull(argv[2], NULL, 0), argc >= 4 && strcmp(argv[3], "fault") == 0);
    if (argc >= 4 && strcmp(argv[1], "zero") == 0)
        return mode_zero(strtoull(argv[2], NULL, 0), atoi(argv[3]));
    if (argc >= 3 && strcmp(argv[1], "steady") == 0)
        return mode_steady(atof(argv[2]));
    fprintf(stderr, "usage: %s owner FILE GOFILE | probe ADDR | probe-write ADDR | quota | "
                    "dirty MIB [fault] | zero MIB ROUNDS | steady SECONDS\n", argv[0]);
    return 2;
}
