/* bench_ptx.c - benchmark of the PTX interpreter: interpreted instructions per second, the
 * time of a 1M-element vector add and of a 256x256 tiled matrix multiply. Usage:
 * bench_ptx [image] [host_threads] (image: the kernels.fatbin that `make test` builds). The
 * translator is loaded from PTX_JIT_SO_PATH (PTX_JIT=0: the interpreter only). */
#include "bench_mem.h"
#include "ptx.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t balloc(struct bmem *m, size_t size)
{
    return bmem_alloc(m, "bench_ptx", size, NULL);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void put(uint8_t *pb, const struct ptx_kernel *k, unsigned i, const void *v, size_t n)
{
    memcpy(pb + ptx_kernel_params(k)[i].offset, v, n);
}

static int launch(const struct ptx_kernel *k, uint32_t gx, uint32_t gy, uint32_t bx,
                  uint32_t by, const uint8_t *pb, struct bmem *m, unsigned threads,
                  double *secs, uint64_t *instr)
{
    struct ptx_memory mem = {.ctx = m, .resolve = bresolve};
    struct ptx_launch l = {
        .grid = {gx, gy, 1}, .block = {bx, by, 1}, .params = pb,
        .params_size = ptx_kernel_param_bytes(k), .mem = &mem, .host_threads = threads,
    };
    char err[320];
    uint64_t i0 = ptx_instructions_executed();
    double t0 = now();
    int rc = ptx_launch(k, &l, err, sizeof(err));
    *secs = now() - t0;
    *instr = ptx_instructions_executed() - i0;
    if (rc)
        fprintf(stderr, "bench_ptx: %s failed: %d %s\n", ptx_kernel_name(k), rc, err);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "../../tests/ptx/build/kernels.fatbin";
    unsigned threads = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_ptx: cannot open %s (run `make test` first)\n", path);
        return 1;
    }
    static uint8_t img[8 << 20];
    size_t n = fread(img, 1, sizeof(img), f);
    fclose(f);
    struct ptx_program *p;
    char err[PATH_MAX + 256];
    if (ptx_translator_load(PTX_JIT_SO_PATH, err, sizeof(err)) != 0)
        fprintf(stderr, "bench_ptx: the translator is off: %s\n", err);
    int rc = ptx_program_load(img, n, &p, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "bench_ptx: loading %s: %s\n", path, err);
        return 1;
    }
    for (unsigned i = 0; i < ptx_program_global_count(p); i++)
        ptx_program_bind_global(p, i, 0x7f0000000000ull + i * 0x1000); /* unused here */
    const struct ptx_kernel *va = ptx_program_kernel(p, "vec_add");
    const struct ptx_kernel *mm = ptx_program_kernel(p, "matmul_tiled");
    if (!va || !mm) {
        fprintf(stderr, "bench_ptx: kernels vec_add/matmul_tiled not in %s\n", path);
        return 1;
    }
    uint8_t pb[64];
    double s;
    uint64_t ins;

    struct bmem m1 = {0};
    int nv = 1 << 20;
    uint64_t a = balloc(&m1, nv * 4ul), b = balloc(&m1, nv * 4ul), c = balloc(&m1, nv * 4ul);
    put(pb, va, 0, &a, 8);
    put(pb, va, 1, &b, 8);
    put(pb, va, 2, &c, 8);
    put(pb, va, 3, &nv, 4);
    if (launch(va, (uint32_t)(nv / 256), 1, 256, 1, pb, &m1, threads, &s, &ins))
        return 1;
    printf("vector add 1M elements: %.3f s, %llu instructions, %.1f M instr/s\n", s,
           (unsigned long long)ins, (double)ins / s / 1e6);
    if (launch(va, (uint32_t)(nv / 256), 1, 256, 1, pb, &m1, 1, &s, &ins))
        return 1;
    printf("vector add 1M elements, 1 host thread: %.3f s, %.1f M instr/s\n", s,
           (double)ins / s / 1e6);

    struct bmem m2 = {0};
    int nm = 256;
    uint64_t A = balloc(&m2, nm * nm * 4ul), B = balloc(&m2, nm * nm * 4ul),
             C = balloc(&m2, nm * nm * 4ul);
    put(pb, mm, 0, &A, 8);
    put(pb, mm, 1, &B, 8);
    put(pb, mm, 2, &C, 8);
    put(pb, mm, 3, &nm, 4);
    if (launch(mm, nm / 16, nm / 16, 16, 16, pb, &m2, threads, &s, &ins))
        return 1;
    printf("matmul 256x256 (16x16 tiles, shared memory): %.3f s, %llu instructions, "
           "%.1f M instr/s\n", s, (unsigned long long)ins, (double)ins / s / 1e6);
    if (launch(mm, nm / 16, nm / 16, 16, 16, pb, &m2, 1, &s, &ins))
        return 1;
    printf("matmul 256x256, 1 host thread: %.3f s, %.1f M instr/s\n", s,
           (double)ins / s / 1e6);
    bmem_free(&m1);
    bmem_free(&m2);
    ptx_program_free(p);
    return 0;
}
