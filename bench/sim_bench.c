/* sim_bench.c - figure 9: the simulated GPU (gpu-proxy/ptx) against the same algorithms in
 * plain C compiled with this program (cc -O2), on one host thread each, in one run: vector add
 * 1M, saxpy 1M, tiled matmul 512x512, shared-memory reduction 1M, byte histogram 1M with
 * atomics, warp-shuffle scan 1M; each kernel through the translator and through the
 * interpreter. Every GPU result is checked against the C result before it is timed.
 * Usage: sim_bench KERNELS.ptx (nvcc -ptx of sim_kernels.cu); SIM_BENCH_ONLY=kernel measures
 * one, SIM_BENCH_JIT_ONLY=1 leaves out the interpreter. The translator is loaded from
 * PTX_JIT_SO_PATH (gpu-proxy/ptx/libvgpu-ptxjit.so). */
#include "bench_mem.h"
#include "harness.h"
#include "ptx.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n)
{
    return bmem_calloc("sim_bench", n);
}

/* A device buffer of the simulated zone; returns its device address, *host its bytes. */
static uint64_t balloc(struct bmem *m, size_t size, void **host)
{
    return bmem_alloc(m, "sim_bench", size, host);
}

/* One workload: its launch, and the C version that computes the same output. */
struct work {
    const char *name, *label;
    const struct ptx_kernel *k;
    uint32_t grid[2], block[2];
    uint8_t params[64];
    struct bmem mem;
    void (*c_run)(struct work *w);
    void (*reset)(struct work *w); /* before each run: inputs the run changes */
    int (*check)(struct work *w);  /* GPU output == C output */
    void *in[3], *out, *ref;       /* host views */
    size_t out_bytes;
    int n;
    float a;
};

static void param(struct work *w, unsigned i, const void *v, size_t n)
{
    memcpy(w->params + ptx_kernel_params(w->k)[i].offset, v, n);
}

static int gpu_run(struct work *w)
{
    struct ptx_memory mem = {.ctx = &w->mem, .resolve = bresolve};
    struct ptx_launch l = {
        .grid = {w->grid[0], w->grid[1], 1}, .block = {w->block[0], w->block[1], 1},
        .params = w->params, .params_size = ptx_kernel_param_bytes(w->k), .mem = &mem,
        .host_threads = 1,
    };
    char err[320];
    int rc = ptx_launch(w->k, &l, err, sizeof(err));
    if (rc)
        fprintf(stderr, "sim_bench: %s: %d %s\n", w->name, rc, err);
    return rc;
}

/* ---- the C versions ------------------------------------------------------------------- */

static void c_vec_add(struct work *w)
{
    const float *a = w->in[0], *b = w->in[1];
    float *c = w->ref;
    for (int i = 0; i < w->n; i++)
        c[i] = a[i] + b[i];
}

static void c_saxpy(struct work *w)
{
    const float *x = w->in[0];
    float *y = w->ref;
    for (int i = 0; i < w->n; i++)
        y[i] = w->a * x[i] + y[i];
}

static void c_matmul(struct work *w)
{
    const float *A = w->in[0], *B = w->in[1];
    float *C = w->ref;
    int n = w->n;
    memset(C, 0, (size_t)n * n * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            float a = A[i * n + k];
            for (int j = 0; j < n; j++)
                C[i * n + j] += a * B[k * n + j];
        }
}

static void c_reduce(struct work *w)
{
    const float *in = w->in[0];
    float *out = w->ref;
    for (int b = 0; b < w->n / 512; b++) {
        float s = 0;
        for (int i = 0; i < 512; i++)
            s += in[b * 512 + i];
        out[b] = s;
    }
}

static void c_histogram(struct work *w)
{
    const unsigned char *in = w->in[0];
    unsigned *bins = w->ref;
    memset(bins, 0, 256 * sizeof(unsigned));
    for (int i = 0; i < w->n; i++)
        bins[in[i]]++;
}

static void c_scan(struct work *w)
{
    const int *in = w->in[0];
    int *out = w->ref;
    for (int i = 0; i < w->n; i += 32) {
        int s = 0;
        for (int j = 0; j < 32; j++)
            out[i + j] = s += in[i + j];
    }
}

/* ---- resets and checks ---------------------------------------------------------------- */

static void reset_saxpy(struct work *w)
{
    float *y = w->out, *yr = w->ref;
    for (int i = 0; i < w->n; i++)
        y[i] = yr[i] = (float)(i % 1000) * 0.5f;
}

static void reset_bins(struct work *w)
{
    memset(w->out, 0, 256 * sizeof(unsigned));
}

static int check_exact(struct work *w)
{
    return memcmp(w->out, w->ref, w->out_bytes) == 0;
}

/* float results whose summation order or fma contraction differ from C's */
static int check_close(struct work *w)
{
    const float *g = w->out, *r = w->ref;
    for (size_t i = 0; i < w->out_bytes / sizeof(float); i++)
        if (fabsf(g[i] - r[i]) > 1e-3f * (1.0f + fabsf(r[i]))) {
            fprintf(stderr, "sim_bench: %s: element %zu is %g, C says %g\n", w->name, i,
                    (double)g[i], (double)r[i]);
            return 0;
        }
    return 1;
}

/* ---- set-up --------------------------------------------------------------------------- */

static void fill_floats(float *p, int n, unsigned seed)
{
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (float)((seed >> 16) % 1000) / 100.0f;
    }
}

static void setup_binary(struct work *w, int n, size_t out_bytes)
{
    void *ha, *hb;
    uint64_t a = balloc(&w->mem, (size_t)n * 4, &ha), b = balloc(&w->mem, (size_t)n * 4, &hb);
    uint64_t c = balloc(&w->mem, out_bytes, &w->out);
    fill_floats(ha, n, 1);
    fill_floats(hb, n, 2);
    w->in[0] = ha;
    w->in[1] = hb;
    w->ref = xcalloc(out_bytes);
    w->out_bytes = out_bytes;
    param(w, 0, &a, 8);
    param(w, 1, &b, 8);
    param(w, 2, &c, 8);
}

static int setup(struct work *w, const struct ptx_program *p)
{
    w->k = ptx_program_kernel(p, w->name);
    if (!w->k) {
        fprintf(stderr, "sim_bench: kernel %s is not in the PTX\n", w->name);
        return -1;
    }
    int n = 1 << 20;
    w->n = n;
    w->grid[1] = w->block[1] = 1;
    if (strcmp(w->name, "vec_add") == 0) {
        setup_binary(w, n, (size_t)n * 4);
        param(w, 3, &n, 4);
        w->grid[0] = (uint32_t)n / 256, w->block[0] = 256;
    } else if (strcmp(w->name, "saxpy") == 0) {
        void *hx;
        uint64_t x = balloc(&w->mem, (size_t)n * 4, &hx), y = balloc(&w->mem, (size_t)n * 4,
                                                                      &w->out);
        fill_floats(hx, n, 3);
        w->in[0] = hx;
        w->ref = xcalloc((size_t)n * 4);
        w->out_bytes = (size_t)n * 4;
        w->a = 2.5f;
        param(w, 0, &n, 4);
        param(w, 1, &w->a, 4);
        param(w, 2, &x, 8);
        param(w, 3, &y, 8);
        w->grid[0] = (uint32_t)n / 256, w->block[0] = 256;
    } else if (strcmp(w->name, "matmul_tiled") == 0) {
        int m = 512;
        w->n = m;
        setup_binary(w, m * m, (size_t)m * m * 4);
        param(w, 3, &m, 4);
        w->grid[0] = w->grid[1] = (uint32_t)m / 16, w->block[0] = w->block[1] = 16;
    } else if (strcmp(w->name, "reduce_shared") == 0) {
        void *hi;
        uint64_t in = balloc(&w->mem, (size_t)n * 4, &hi);
        uint64_t out = balloc(&w->mem, (size_t)n / 512 * 4, &w->out);
        fill_floats(hi, n, 4);
        w->in[0] = hi;
        w->ref = xcalloc((size_t)n / 512 * 4);
        w->out_bytes = (size_t)n / 512 * 4;
        param(w, 0, &in, 8);
        param(w, 1, &out, 8);
        w->grid[0] = (uint32_t)n / 512, w->block[0] = 256;
    } else if (strcmp(w->name, "histogram") == 0) {
        void *hi;
        uint64_t in = balloc(&w->mem, (size_t)n, &hi), bins = balloc(&w->mem, 1024, &w->out);
        unsigned char *b = hi;
        for (int i = 0; i < n; i++)
            b[i] = (unsigned char)((i * 2654435761u) >> 13);
        w->in[0] = hi;
        w->ref = xcalloc(1024);
        w->out_bytes = 1024;
        param(w, 0, &in, 8);
        param(w, 1, &n, 4);
        param(w, 2, &bins, 8);
        w->grid[0] = 64, w->block[0] = 256;
    } else { /* warp_scan */
        void *hi;
        uint64_t in = balloc(&w->mem, (size_t)n * 4, &hi), out = balloc(&w->mem, (size_t)n * 4,
                                                                       &w->out);
        int *v = hi;
        for (int i = 0; i < n; i++)
            v[i] = (i * 7) % 13 - 6;
        w->in[0] = hi;
        w->ref = xcalloc((size_t)n * 4);
        w->out_bytes = (size_t)n * 4;
        param(w, 0, &in, 8);
        param(w, 1, &out, 8);
        w->grid[0] = (uint32_t)n / 256, w->block[0] = 256;
    }
    return 0;
}

/* ---- measuring ------------------------------------------------------------------------ */

/* Median-friendly per-repetition times in ms; -1 on a failed launch. */
static int time_reps(struct work *w, int gpu, double *ms, int reps)
{
    for (int r = 0; r < reps; r++) {
        if (w->reset)
            w->reset(w);
        uint64_t t0 = bh_now_ns();
        if (gpu) {
            if (gpu_run(w))
                return -1;
        } else {
            w->c_run(w);
        }
        ms[r] = (double)(bh_now_ns() - t0) / 1e6;
    }
    return 0;
}

static void emit(struct work *w, const char *what, const double *ms, int reps, int is_ref,
                 const char *detail)
{
    char id[64], label[128];
    struct bh_row r = {0};
    snprintf(id, sizeof(id), "sim.%s.%s", w->name, what);
    snprintf(label, sizeof(label), "%s: %s", w->label,
             is_ref ? "plain C, cc -O2" : strcmp(what, "jit") == 0 ? "translated PTX"
                                                                    : "interpreted PTX");
    r.id = id;
    r.fig = "9";
    r.label = label;
    r.cpus = "1 thread";
    r.unit = "ms";
    bh_row_reps(&r, ms, (size_t)reps);
    char ref[64];
    snprintf(ref, sizeof(ref), "sim.%s.c", w->name);
    if (!is_ref) {
        r.ref = ref;
        r.ref_what = "plain C";
        r.goal = strcmp(what, "jit") == 0 ? "ratio<=5" : NULL;
    }
    r.detail = detail;
    bh_emit(&r);
}

/* Translator, then interpreter: each checked once against C, then timed. */
static int measure(struct work *w)
{
    int reps = bh_reps(), ireps = reps < 2 ? reps : 2; /* the interpreter is slow */
    double *ms = xcalloc(sizeof(double) * (size_t)(reps + 1));
    char detail[96] = "";
    int rc = time_reps(w, 0, ms, reps);
    emit(w, "c", ms, reps, 1, NULL);
    int last = getenv("SIM_BENCH_JIT_ONLY") ? 1 : 0;
    for (int jit = 1; jit >= last && rc == 0; jit--) {
        ptx_set_translator(jit);
        if (w->reset)
            w->reset(w);
        uint64_t t0 = bh_now_ns(), tr0 = ptx_launches_translated();
        if (gpu_run(w) || (w->c_run(w), !w->check(w))) {
            fprintf(stderr, "sim_bench: %s (%s) differs from the C result\n", w->name,
                    jit ? "translated" : "interpreted");
            rc = -1;
            break;
        }
        if (jit && ptx_launches_translated() == tr0)
            snprintf(detail, sizeof(detail), "kernel not translated (interpreter)");
        else if (jit)
            snprintf(detail, sizeof(detail), "first launch (with translation) %.1f ms",
                     (double)(bh_now_ns() - t0) / 1e6);
        if (time_reps(w, 1, ms, jit ? reps : ireps))
            rc = -1;
        else
            emit(w, jit ? "jit" : "interp", ms, jit ? reps : ireps, 0, jit ? detail : NULL);
    }
    ptx_set_translator(1);
    free(ms);
    return rc;
}

static void *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "sim_bench: cannot open %s\n", path);
        return NULL;
    }
    size_t cap = 1 << 20;
    char *buf = xcalloc(cap + 1);
    *n = fread(buf, 1, cap, f);
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    size_t n;
    char *text = argc > 1 ? read_file(argv[1], &n) : NULL;
    if (!text) {
        fprintf(stderr, "usage: sim_bench KERNELS.ptx\n");
        return 2;
    }
    struct ptx_program *p;
    char err[PATH_MAX + 256];
    if (ptx_translator_load(PTX_JIT_SO_PATH, err, sizeof(err)) != 0)
        fprintf(stderr, "sim_bench: the translator is off: %s\n", err);
    if (ptx_program_load(text, n + 1, &p, err, sizeof(err))) {
        fprintf(stderr, "sim_bench: %s: %s\n", argv[1], err);
        return 1;
    }
    struct work ws[] = {
        {.name = "vec_add", .label = "vector add 1M", .c_run = c_vec_add,
         .check = check_exact},
        {.name = "saxpy", .label = "saxpy 1M", .c_run = c_saxpy, .reset = reset_saxpy,
         .check = check_close},
        {.name = "matmul_tiled", .label = "tiled matmul 512x512", .c_run = c_matmul,
         .check = check_close},
        {.name = "reduce_shared", .label = "shared-memory reduction 1M", .c_run = c_reduce,
         .check = check_close},
        {.name = "histogram", .label = "byte histogram 1M, atomics", .c_run = c_histogram,
         .reset = reset_bins, .check = check_exact},
        {.name = "warp_scan", .label = "warp-shuffle scan 1M", .c_run = c_scan,
         .check = check_exact},
    };
    int status = 0;
    for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
        struct work *w = &ws[i];
        const char *only = getenv("SIM_BENCH_ONLY");
        if (only && strcmp(only, w->name) != 0)
            continue;
        if (setup(w, p) || measure(w)) {
            bh_emit_missing(w->name, "9", w->label, "unavailable", "failed (see stderr)");
            status = 1;
        }
        bmem_free(&w->mem);
        free(w->ref);
    }
    ptx_program_free(p);
    free(text);
    return status;
}
