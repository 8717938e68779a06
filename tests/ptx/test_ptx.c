/* test_ptx.c - unit tests of the PTX engine (gpu-proxy/ptx): loads images that nvcc built from
 * kernels.cu at build time (PTX text, fatbin, cubin), runs kernels through ptx_launch with a
 * small table of malloc'd buffers as device memory, and checks every output element against a
 * CPU reference. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fenv.h>
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ptx.h"
#include "ptx_jit.h"

#ifndef KERNELS_DIR
#error "KERNELS_DIR must name the directory holding the nvcc outputs"
#endif

/* ---- test memory: a table of host buffers at distinctive device addresses ---- */

#define TM_MAX 256
#define TM_BASE 0x700000000000ull
#define TM_STRIDE 0x100000000ull

struct tbuf {
    uint64_t dev;
    size_t size;
    uint8_t *host;
};

struct tmem {
    struct tbuf b[TM_MAX];
    int n;
    struct ptx_memory mem;
};

static void *tm_resolve(void *ctx, uint64_t addr, uint64_t len, uint64_t *base, uint64_t *size)
{
    struct tmem *m = ctx;
    for (int i = 0; i < m->n; i++) {
        const struct tbuf *b = &m->b[i];
        if (addr >= b->dev && addr - b->dev <= b->size && len <= b->size - (addr - b->dev)) {
            *base = b->dev;
            *size = b->size;
            return b->host + (addr - b->dev);
        }
    }
    return NULL;
}

static void tm_init(struct tmem *m)
{
    memset(m, 0, sizeof(*m));
    m->mem.ctx = m;
    m->mem.resolve = tm_resolve;
}

static uint64_t tm_alloc(struct tmem *m, size_t size)
{
    assert_true(m->n < TM_MAX);
    struct tbuf *b = &m->b[m->n];
    b->dev = TM_BASE + (uint64_t)m->n * TM_STRIDE;
    b->size = size;
    b->host = malloc(size ? size : 1);
    assert_non_null(b->host);
    memset(b->host, 0xA5, size); /* poison */
    m->n++;
    return b->dev;
}

static void *tm_host(struct tmem *m, uint64_t dev)
{
    for (int i = 0; i < m->n; i++)
        if (dev >= m->b[i].dev && dev - m->b[i].dev < m->b[i].size)
            return m->b[i].host + (dev - m->b[i].dev);
    fail_msg("no buffer at 0x%llx", (unsigned long long)dev);
    return NULL;
}

static void tm_free(struct tmem *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->b[i].host);
    m->n = 0;
}

/* ---- images ---- */

static void *read_file(const char *name, size_t *size)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", KERNELS_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    *size = (size_t)n;
    return b;
}

static struct ptx_program *load(const char *name)
{
    size_t n;
    void *img = read_file(name, &n);
    struct ptx_program *p = NULL;
    char err[256];
    int rc = ptx_program_load(img, n, &p, err, sizeof(err));
    if (rc)
        fail_msg("loading %s: %d %s", name, rc, err);
    free(img);
    return p;
}

/* Allocates and binds every module variable, copying its initial bytes. */
static void bind_globals(struct ptx_program *p, struct tmem *m)
{
    for (unsigned i = 0; i < ptx_program_global_count(p); i++) {
        struct ptx_global_info g;
        assert_int_equal(ptx_program_global(p, i, &g), PTX_OK);
        uint64_t dev = tm_alloc(m, g.size);
        uint8_t *h = tm_host(m, dev);
        memset(h, 0, g.size);
        if (g.init)
            memcpy(h, g.init, g.init_size);
        assert_int_equal(ptx_program_bind_global(p, i, dev), PTX_OK);
    }
}

struct pbuf {
    uint8_t b[256];
    const struct ptx_kernel *k;
    unsigned next;
};

static void pb_init(struct pbuf *pb, const struct ptx_kernel *k)
{
    memset(pb, 0, sizeof(*pb));
    pb->k = k;
    assert_true(ptx_kernel_param_bytes(k) <= sizeof(pb->b));
}

static void pb_put(struct pbuf *pb, const void *v, size_t size)
{
    assert_true(pb->next < ptx_kernel_param_count(pb->k));
    const struct ptx_param *pp = &ptx_kernel_params(pb->k)[pb->next++];
    assert_int_equal(pp->size, size);
    memcpy(pb->b + pp->offset, v, size);
}
#define PB(pb, v) do { __typeof__(v) _v = (v); pb_put((pb), &_v, sizeof(_v)); } while (0)

/* The texture and surface objects launches see (the texture tests set it; NULL: none). */
static const struct ptx_textures *run_tex;

static int run(const struct ptx_kernel *k, uint32_t gx, uint32_t gy, uint32_t bx, uint32_t by,
               uint32_t dyn, const struct pbuf *pb, struct tmem *m, unsigned threads,
               char *err, size_t errlen)
{
    struct ptx_launch l = {
        .grid = {gx, gy, 1},
        .block = {bx, by, 1},
        .dynamic_shared = dyn,
        .params = pb->b,
        .params_size = ptx_kernel_param_bytes(k),
        .mem = &m->mem,
        .tex = run_tex,
        .host_threads = threads,
    };
    return ptx_launch(k, &l, err, errlen);
}

#define RUN_OK(...) do { char _e[320]; int _rc = run(__VA_ARGS__, _e, sizeof(_e)); \
                         if (_rc) fail_msg("launch failed: %d %s", _rc, _e); } while (0)

/* Launches k on one block of bx threads with the n device addresses args as its parameters
 * (one host thread); fails the test if the launch fails. */
static void run_bufs(const struct ptx_kernel *k, uint32_t bx, struct tmem *m, const uint64_t *args,
                     size_t n)
{
    struct pbuf pb;
    pb_init(&pb, k);
    for (size_t i = 0; i < n; i++)
        PB(&pb, args[i]);
    RUN_OK(k, 1, 1, bx, 1, 0, &pb, m, 1);
}
/* RUN_BUFS(k, bx, m, dev0, dev1, ...): run_bufs with the device addresses listed. */
#define RUN_BUFS(k, bx, m, ...) \
    run_bufs((k), (bx), (m), (const uint64_t[]){__VA_ARGS__}, \
             sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))

static const struct ptx_kernel *kern(const struct ptx_program *p, const char *name)
{
    const struct ptx_kernel *k = ptx_program_kernel(p, name);
    if (!k)
        fail_msg("kernel %s not found", name);
    assert_true(ptx_kernel_executable(k));
    return k;
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) ^ (rnd_state << 13);
}

static int close_f(double got, double want, double rel)
{
    if (isnan(want))
        return isnan(got);
    if (got == want)
        return 1;
    return fabs(got - want) <= rel * (fabs(want) + 1e-30) || fabs(got - want) <= rel;
}

/* ---- tests ---- */

/* What a real GPU's driver allocates for module globals (the real backend charges it): the
 * same figure whether read from the PTX text, from the fatbin's cubin or from the cubin alone,
 * holding at least `__device__ int counter` (and device printf's format strings, which are
 * global data too); the 96 bytes of __constant__ data are not counted. */
static void test_ptx_image_global_bytes(void **state)
{
    static const char *names[] = {"kernels.ptx", "kernels.fatbin", "kernels.cubin"};
    uint64_t got[3];
    (void)state;
    for (unsigned i = 0; i < 3; i++) {
        size_t n;
        void *img = read_file(names[i], &n);
        char err[256] = "";
        int rc = ptx_image_global_bytes(img, n, &got[i], err, sizeof(err));
        if (rc != PTX_OK)
            fail_msg("%s: %d %s", names[i], rc, err);
        free(img);
    }
    assert_true(got[0] >= 4);
    if (got[1] != got[0] || got[2] != got[0])
        fail_msg("globals: PTX %llu bytes, fatbin %llu, cubin %llu (want equal)",
                 (unsigned long long)got[0], (unsigned long long)got[1],
                 (unsigned long long)got[2]);
    {
        static const char bad[] = "not an image at all";
        uint64_t bytes = 0;
        assert_int_not_equal(ptx_image_global_bytes(bad, sizeof(bad), &bytes, NULL, 0), PTX_OK);
    }
}

static void vector_add(const char *image)
{
    struct ptx_program *p = load(image);
    const struct ptx_kernel *k = kern(p, "vec_add");
    struct tmem m;
    tm_init(&m);
    int n = 10007;
    uint64_t a = tm_alloc(&m, n * 4), b = tm_alloc(&m, n * 4), c = tm_alloc(&m, n * 4);
    float *ha = tm_host(&m, a), *hb = tm_host(&m, b), *hc = tm_host(&m, c);
    for (int i = 0; i < n; i++) {
        ha[i] = (float)(rnd() % 10000) / 7.0f;
        hb[i] = (float)(rnd() % 10000) / 3.0f;
    }
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, a);
    PB(&pb, b);
    PB(&pb, c);
    PB(&pb, n);
    RUN_OK(k, (n + 255) / 256, 1, 256, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++)
        if (hc[i] != ha[i] + hb[i])
            fail_msg("c[%d] = %g, want %g", i, hc[i], ha[i] + hb[i]);
    assert_true(ptx_instructions_executed() > (uint64_t)n * 10);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_vector_add_fatbin(void **state)
{
    (void)state;
    vector_add("kernels.fatbin");
}

/* The same fatbin with every entry LZ4-compressed (nvcc --compress-mode=speed), as cuFFT's are;
 * its cubin is read too (params_mix's layout from .nv.info). */
static void test_ptx_lz4_fatbin(void **state)
{
    (void)state;
    vector_add("kernels_lz4.fatbin");
    struct ptx_program *p = load("kernels_lz4.fatbin");
    unsigned n = ptx_program_kernel_count(p);
    struct ptx_program *plain = load("kernels.fatbin");
    assert_int_equal(n, ptx_program_kernel_count(plain));
    assert_int_equal(ptx_kernel_param_bytes(kern(p, "params_mix")),
                     ptx_kernel_param_bytes(kern(plain, "params_mix")));
    ptx_program_free(plain);
    ptx_program_free(p);
}

static void test_ptx_saxpy_ptx_text(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.ptx");
    const struct ptx_kernel *k = kern(p, "saxpy");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 5000;
    float alpha = 2.5f;
    uint64_t x = tm_alloc(&m, n * 4), y = tm_alloc(&m, n * 4);
    float *hx = tm_host(&m, x), *hy = tm_host(&m, y);
    float *want = malloc(n * sizeof(float));
    assert_non_null(want);
    for (int i = 0; i < n; i++) {
        hx[i] = (float)(rnd() % 1000) / 10.0f;
        hy[i] = (float)(rnd() % 1000) / 100.0f;
        want[i] = fmaf(alpha, hx[i], hy[i]);
    }
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, n);
    PB(&pb, alpha);
    PB(&pb, x);
    PB(&pb, y);
    RUN_OK(k, (n + 127) / 128, 1, 128, 1, 0, &pb, &m, 1);
    for (int i = 0; i < n; i++)
        if (!close_f(hy[i], want[i], 1e-6))
            fail_msg("y[%d] = %g, want %g", i, hy[i], want[i]);
    free(want);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_matmul_shared(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "matmul_tiled");
    assert_int_equal(ptx_kernel_static_shared(k), 2 * 16 * 16 * 4);
    assert_int_equal(ptx_kernel_static_shared(kern(p, "block_reduce")), 256 * 8);
    assert_int_equal(ptx_kernel_static_shared(kern(p, "vec_add")), 0);
    struct tmem m;
    tm_init(&m);
    int n = 70;
    uint64_t A = tm_alloc(&m, n * n * 4), B = tm_alloc(&m, n * n * 4), C = tm_alloc(&m, n * n * 4);
    float *ha = tm_host(&m, A), *hb = tm_host(&m, B), *hc = tm_host(&m, C);
    for (int i = 0; i < n * n; i++) {
        ha[i] = (float)((int)(rnd() % 200) - 100) / 16.0f;
        hb[i] = (float)((int)(rnd() % 200) - 100) / 32.0f;
    }
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, A);
    PB(&pb, B);
    PB(&pb, C);
    PB(&pb, n);
    RUN_OK(k, (n + 15) / 16, (n + 15) / 16, 16, 16, 0, &pb, &m, 2);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < n; c++) {
            double want = 0;
            for (int i = 0; i < n; i++)
                want += (double)ha[r * n + i] * hb[i * n + c];
            if (!close_f(hc[r * n + c], want, 1e-5))
                fail_msg("C[%d][%d] = %g, want %g", r, c, hc[r * n + c], want);
        }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_block_reduce(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "block_reduce");
    struct tmem m;
    tm_init(&m);
    int n = 256 * 9 + 17, blocks = (n + 255) / 256;
    uint64_t in = tm_alloc(&m, n * 4), out = tm_alloc(&m, blocks * 8);
    int *hi = tm_host(&m, in);
    long long *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++)
        hi[i] = (int)(rnd() % 2000001) - 1000000;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    PB(&pb, n);
    RUN_OK(k, blocks, 1, 256, 1, 0, &pb, &m, 3);
    for (int b = 0; b < blocks; b++) {
        long long want = 0;
        for (int i = b * 256; i < (b + 1) * 256 && i < n; i++)
            want += hi[i];
        if (ho[b] != want)
            fail_msg("block %d sum %lld, want %lld", b, ho[b], want);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_histogram_atomics(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "histogram");
    struct tmem m;
    tm_init(&m);
    int n = 100003;
    uint64_t data = tm_alloc(&m, n), bins = tm_alloc(&m, 64 * 4);
    unsigned char *hd = tm_host(&m, data);
    unsigned *hb = tm_host(&m, bins);
    unsigned want[64] = {0};
    for (int i = 0; i < n; i++) {
        hd[i] = (unsigned char)rnd();
        want[hd[i] % 64]++;
    }
    memset(hb, 0, 64 * 4);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, data);
    PB(&pb, n);
    PB(&pb, bins);
    RUN_OK(k, 13, 1, 96, 1, 0, &pb, &m, 4);
    for (int i = 0; i < 64; i++)
        if (hb[i] != want[i])
            fail_msg("bin %d = %u, want %u", i, hb[i], want[i]);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_warp_shuffle_reduce(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "warp_reduce");
    struct tmem m;
    tm_init(&m);
    int n = 4000;
    uint64_t in = tm_alloc(&m, n * 4), out = tm_alloc(&m, 4);
    float *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    double want = 0;
    for (int i = 0; i < n; i++) {
        hi[i] = (float)(rnd() % 100);
        want += hi[i];
    }
    *ho = 0.0f;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    PB(&pb, n);
    RUN_OK(k, (n + 127) / 128, 1, 128, 1, 0, &pb, &m, 2);
    if (*ho != (float)want)
        fail_msg("sum %g, want %g", *ho, want);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_warp_shfl_vote(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.ptx");
    const struct ptx_kernel *k = kern(p, "warp_ops");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int nthreads = 2 * 96;
    uint64_t in = tm_alloc(&m, nthreads * 4), out = tm_alloc(&m, nthreads * 8 * 4);
    int *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    for (int i = 0; i < nthreads; i++)
        hi[i] = (int)(rnd() % 1000);
    hi[40] = -5; /* warp 1 is not all non-negative */
    hi[70] = 17; /* warp 2 has a 17 */
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    RUN_OK(k, 2, 1, 96, 1, 0, &pb, &m, 2);
    for (int g = 0; g < nthreads; g++) {
        int w0 = g / 32 * 32, lane = g % 32;
        int *o = ho + g * 8;
        unsigned ballot = 0;
        int all = 1, any = 0, pre = 0;
        for (int l = 0; l < 32; l++) {
            ballot |= (unsigned)(hi[w0 + l] & 1) << l;
            all &= hi[w0 + l] >= 0;
            any |= hi[w0 + l] == 17;
            if (l <= lane)
                pre += hi[w0 + l];
        }
        int want[8] = {
            hi[w0 + ((lane * 7) & 31)],
            lane >= 3 ? hi[g - 3] : hi[g],
            hi[w0 + (lane ^ 5)],
            (lane % 8) + 2 < 8 ? hi[g + 2] : hi[g],
            (int)ballot, all, any, pre,
        };
        for (int j = 0; j < 8; j++)
            if (o[j] != want[j])
                fail_msg("thread %d result %d = %d, want %d", g, j, o[j], want[j]);
    }
    tm_free(&m);
    ptx_program_free(p);
}

/* warp_diverge's results for thread t of a 48-thread block (lane delta `delta`), with the
 * engine's group rule: the lanes that wait at the same instruction; a shuffle from a lane
 * outside it (another branch, or past the block's end) reads the lane's own value. */
static void warp_diverge_want(const int *v, int blk, int t, int delta, int want[7])
{
    int wt = t / 32 * 32, lane = t % 32, present = 48 - wt < 32 ? 48 - wt : 32;
    const int *w = v + blk * 48 + wt;
    unsigned ballot = 0;
    int any = 0, all = 1;
    for (int l = 0; l < present; l++) {
        if ((l & 1) && w[l] > 500)
            ballot |= 1u << l;
        if (!(l & 1) && w[l] > 900)
            any = 1;
        if (l < 16 && w[l] < 0)
            all = 0;
    }
    int x = lane ^ 2, dn = lane + 2;
    want[0] = (lane & 1) ? (x < present ? w[x] : w[lane])
                         : (dn < present ? w[dn] : w[lane]);
    want[1] = (lane & 1) ? (int)ballot : any;
    want[2] = lane < 16 ? (15 - lane < present ? w[15 - lane] : w[lane]) : 0;
    want[3] = lane < 16 ? all : 0;
    want[4] = lane > 0 ? w[lane - 1] : w[lane];
    want[5] = lane + 1 < present ? w[lane + 1] : w[lane];
    want[6] = lane + delta < present ? w[lane + delta] : w[lane];
}

/* Divergent shuffles and votes, masks of 16 lanes, partial warps (translated: phase mode,
 * resolved on the lanes' records); then an input read past its allocation still faults. */
static void test_ptx_warp_divergent_partial(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.ptx");
    const struct ptx_kernel *k = kern(p, "warp_diverge");
    struct tmem m;
    tm_init(&m);
    int blocks = 3, nthreads = blocks * 48, n = 130;
    uint64_t in = tm_alloc(&m, (size_t)n * 4), out = tm_alloc(&m, (size_t)nthreads * 7 * 4);
    int *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    int v[3 * 48];
    for (int i = 0; i < nthreads; i++)
        v[i] = i < n ? (int)(rnd() % 1000) : -1;
    memcpy(hi, v, (size_t)n * 4);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    PB(&pb, n);
    PB(&pb, 3);
    uint64_t before = ptx_launches_translated();
    RUN_OK(k, blocks, 1, 48, 1, 0, &pb, &m, 2);
    const char *env = getenv("PTX_JIT");
    if (!(env && strcmp(env, "0") == 0))
        assert_true(ptx_launches_translated() > before);
    for (int g = 0; g < nthreads; g++) {
        int want[7];
        warp_diverge_want(v, g / 48, g % 48, 3, want);
        for (int j = 0; j < 7; j++)
            if (ho[g * 7 + j] != want[j])
                fail_msg("thread %d result %d = %d, want %d", g, j, ho[g * 7 + j], want[j]);
    }
    struct pbuf bad;
    pb_init(&bad, k);
    PB(&bad, in);
    PB(&bad, out);
    PB(&bad, nthreads); /* reads in[130..143], past its 520 bytes */
    PB(&bad, 3);
    char err[320];
    assert_int_equal(run(k, blocks, 1, 48, 1, 0, &bad, &m, 1, err, sizeof(err)),
                     PTX_ERR_ILLEGAL_ADDRESS);
    tm_free(&m);
    ptx_program_free(p);
}

/* Shared accesses whose checks the translator merges: right when the dynamic area holds them
 * all; one element short, the last thread's last access faults (the merged check fails and
 * each access is checked alone). */
static void test_ptx_merged_shared_checks(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.ptx");
    const struct ptx_kernel *k = kern(p, "merged_span");
    struct tmem m;
    tm_init(&m);
    int bs = 64, blocks = 3;
    uint64_t out = tm_alloc(&m, (size_t)bs * blocks * 4);
    int *ho = tm_host(&m, out);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    uint32_t need = (uint32_t)((bs - 1) * 5 + 4) * 4;
    RUN_OK(k, blocks, 1, bs, 1, need, &pb, &m, 2);
    for (int i = 0; i < bs * blocks; i++) {
        int u = bs - 1 - i % bs;
        if (ho[i] != u + (u + 1) * 10 + (u + 2) * 100 + (u + 3) * 1000)
            fail_msg("out[%d] = %d", i, ho[i]);
    }
    char err[320];
    assert_int_equal(run(k, blocks, 1, bs, 1, need - 4, &pb, &m, 1, err, sizeof(err)),
                     PTX_ERR_ILLEGAL_ADDRESS);
    tm_free(&m);
    ptx_program_free(p);
}

/* Atomics on shared memory, every operation the translator does natively (as plain
 * read-modify-writes there), against the same reductions in C. */
static void test_ptx_shared_atomics(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.ptx");
    const struct ptx_kernel *k = kern(p, "shared_atomics");
    struct tmem m;
    tm_init(&m);
    int bs = 96, blocks = 3;
    uint64_t in = tm_alloc(&m, (size_t)bs * blocks * 4), out = tm_alloc(&m, (size_t)blocks * 48);
    uint64_t fout = tm_alloc(&m, (size_t)blocks * 4);
    int *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    float *hf = tm_host(&m, fout);
    for (int i = 0; i < bs * blocks; i++)
        hi[i] = (int)(rnd() % 20001) - 10000;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    PB(&pb, fout);
    RUN_OK(k, blocks, 1, bs, 1, 0, &pb, &m, 2);
    for (int b = 0; b < blocks; b++) {
        const int *v = hi + b * bs, *o = ho + b * 12;
        int sum = 0, mn = 1000000, mx = -1000000, x = 0;
        unsigned umn = 0xffffffffu, umx = 0;
        for (int t = 0; t < bs; t++) {
            sum += v[t];
            mn = v[t] < mn ? v[t] : mn;
            mx = v[t] > mx ? v[t] : mx;
            x ^= v[t];
            umn = (unsigned)v[t] < umn ? (unsigned)v[t] : umn;
            umx = (unsigned)v[t] > umx ? (unsigned)v[t] : umx;
        }
        int want[12] = {sum, mn, mx, -1, x, 0, (int)0xffff0000u, bs, bs, (int)umn, (int)umx, 0};
        for (int j = 0; j < 12; j++)
            if (j != 5 && o[j] != want[j])
                fail_msg("block %d value %d = %d, want %d", b, j, o[j], want[j]);
        if (o[5] < 0 || o[5] >= bs)
            fail_msg("block %d: exchanged value %d is no thread's index", b, o[5]);
        if (hf[b] != 0.5f * (float)bs)
            fail_msg("block %d: float sum %g", b, hf[b]);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_double_math(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "dmath");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 3000;
    uint64_t x = tm_alloc(&m, n * 8), y = tm_alloc(&m, n * 8);
    double *hx = tm_host(&m, x), *hy = tm_host(&m, y);
    for (int i = 0; i < n; i++)
        hx[i] = i < 2000 ? (double)(rnd() % 100000) / 997.0
              : i < 2500 ? (double)(rnd() % 1000000) * 3.7 : (double)rnd() * (double)rnd();
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, x);
    PB(&pb, y);
    PB(&pb, n);
    RUN_OK(k, (n + 255) / 256, 1, 256, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        double v = hx[i];
        double want = sqrt(v) + exp(fmod(v, 600.0) * 0.25) + sin(v) * cos(v * 0.5) + log(v + 1.0) + v / 3.0;
        if (!close_f(hy[i], want, 1e-12))
            fail_msg("y[%d] = %.17g, want %.17g (x = %.17g)", i, hy[i], want, v);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_float_math(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "fmath");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 3000;
    uint64_t x = tm_alloc(&m, n * 4), y = tm_alloc(&m, n * 4);
    float *hx = tm_host(&m, x), *hy = tm_host(&m, y);
    for (int i = 0; i < n; i++)
        hx[i] = i < 2000 ? (float)(rnd() % 100000) / 9970.0f : (float)(rnd() % 100000) * 0.37f;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, x);
    PB(&pb, y);
    PB(&pb, n);
    RUN_OK(k, (n + 255) / 256, 1, 256, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        double v = hx[i];
        if (v * 0.25 > 80)
            continue; /* expf overflows to inf in both; compared below separately */
        double want = sqrt(v) + exp(fmod(v, 600.0) * 0.25) + sin(v) * cos(v * 0.5) + log(v + 1.0) + v / 3.0
                    + 1.0 / sqrt(v + 1.0) + pow(v + 0.5, 1.5) + tanh(v - 4.0);
        if (!close_f(hy[i], want, 2e-5))
            fail_msg("y[%d] = %.9g, want %.9g (x = %.9g)", i, hy[i], want, v);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_grid_stride(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "grid_stride");
    struct tmem m;
    tm_init(&m);
    size_t n = (1u << 20) + 333;
    uint64_t in = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 4);
    unsigned *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    for (size_t i = 0; i < n; i++)
        hi[i] = rnd();
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    PB(&pb, n);
    RUN_OK(k, 24, 1, 256, 1, 0, &pb, &m, 0);
    for (size_t i = 0; i < n; i++)
        if (ho[i] != hi[i] * 2654435761u + (unsigned)(i >> 3))
            fail_msg("out[%zu] = %u, want %u", i, ho[i], hi[i] * 2654435761u + (unsigned)(i >> 3));
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_constant_data(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "const_poly");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int ci = ptx_program_global_find(p, "coeffs");
    assert_true(ci >= 0);
    struct ptx_global_info g;
    assert_int_equal(ptx_program_global(p, (unsigned)ci, &g), PTX_OK);
    assert_int_equal(g.space, PTX_SPACE_CONST);
    assert_int_equal(g.size, 64);
    int ti = ptx_program_global_find(p, "table");
    assert_true(ti >= 0);
    assert_int_equal(ptx_program_global(p, (unsigned)ti, &g), PTX_OK);
    assert_non_null(g.init);
    assert_int_equal(((const int *)g.init)[5], 9);
    int cnt = ptx_program_global_find(p, "counter");
    assert_true(cnt >= 0);
    assert_int_equal(ptx_program_global(p, (unsigned)cnt, &g), PTX_OK);
    assert_int_equal(g.space, PTX_SPACE_GLOBAL);
    assert_int_equal(*(const int *)g.init, 42);
    /* fill the coefficients as cudaMemcpyToSymbol would */
    float coeffs[16];
    for (int i = 0; i < 16; i++)
        coeffs[i] = 1.0f / (float)(i + 1);
    struct tbuf *cb = &m.b[ci];
    memcpy(cb->host, coeffs, sizeof(coeffs));
    int n = 1000;
    uint64_t x = tm_alloc(&m, n * 4), y = tm_alloc(&m, n * 4);
    float *hx = tm_host(&m, x), *hy = tm_host(&m, y);
    static const int table[8] = {3, 1, 4, 1, 5, 9, 2, 6};
    for (int i = 0; i < n; i++)
        hx[i] = (float)(rnd() % 1000) / 1000.0f;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, x);
    PB(&pb, y);
    PB(&pb, n);
    RUN_OK(k, (n + 127) / 128, 1, 128, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        float acc = 0.0f;
        for (int j = 15; j >= 0; j--)
            acc = fmaf(acc, hx[i], coeffs[j]);
        float want = acc + (float)table[i & 7] + 42.0f;
        if (!close_f(hy[i], want, 1e-6))
            fail_msg("y[%d] = %g, want %g", i, hy[i], want);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_dynamic_shared(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "dyn_shared");
    struct tmem m;
    tm_init(&m);
    int n = 1000, bs = 200;
    uint64_t in = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 4);
    int *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++)
        hi[i] = (int)rnd();
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    PB(&pb, n);
    RUN_OK(k, (n + bs - 1) / bs, 1, bs, 1, bs * 4, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        int b = i / bs, t = i % bs;
        int src = b * bs + (bs - 1 - t);
        int want = src < n ? hi[src] : 0;
        if (ho[i] != want)
            fail_msg("out[%d] = %d, want %d", i, ho[i], want);
    }
    /* too little dynamic shared memory: the access past it is refused */
    char err[320];
    int rc = run(k, 1, 1, bs, 1, 16, &pb, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_ILLEGAL_ADDRESS);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_out_of_bounds(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "oob_write");
    struct tmem m;
    tm_init(&m);
    int n = 256;
    uint64_t a = tm_alloc(&m, n * 4);
    uint64_t guard = tm_alloc(&m, 64); /* a neighbour that must stay untouched */
    uint8_t *hg = tm_host(&m, guard);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, a);
    PB(&pb, n / 2); /* threads n/2.. write past the end */
    char err[320];
    int rc = run(k, 1, 1, n, 1, 0, &pb, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_ILLEGAL_ADDRESS);
    assert_non_null(strstr(err, "oob_write"));
    assert_non_null(strstr(err, "illegal address"));
    for (int i = 0; i < 64; i++)
        assert_int_equal(hg[i], 0xA5);
    tm_free(&m);
    ptx_program_free(p);
}

/* Mirror of how CUDA packs params_mix's arguments (natural alignment). */
struct S3 {
    char c;
    double d;
    int i;
};
struct mix_pack {
    char c;
    short s;
    int i;
    double d;
    long long *p;
    struct S3 st;
    float f;
    unsigned char u8;
    long long *out;
};

static void test_ptx_param_layout(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "params_mix");
    assert_int_equal(ptx_kernel_param_count(k), 9);
    static const size_t offs[9] = {
        offsetof(struct mix_pack, c), offsetof(struct mix_pack, s), offsetof(struct mix_pack, i),
        offsetof(struct mix_pack, d), offsetof(struct mix_pack, p), offsetof(struct mix_pack, st),
        offsetof(struct mix_pack, f), offsetof(struct mix_pack, u8),
        offsetof(struct mix_pack, out),
    };
    static const size_t sizes[9] = {1, 2, 4, 8, 8, sizeof(struct S3), 4, 1, 8};
    const struct ptx_param *pp = ptx_kernel_params(k);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(pp[i].offset, offs[i]);
        assert_int_equal(pp[i].size, sizes[i]);
    }
    assert_int_equal(ptx_kernel_param_bytes(k), offsetof(struct mix_pack, out) + 8);
    /* the SASS in the same fatbin, read through .nv.info, agrees */
    struct ptx_program *pc = load("kernels.cubin");
    const struct ptx_kernel *kc = ptx_program_kernel(pc, "params_mix");
    assert_non_null(kc);
    assert_false(ptx_kernel_executable(kc));
    assert_int_equal(ptx_kernel_param_count(kc), 9);
    for (int i = 0; i < 9; i++) {
        assert_int_equal(ptx_kernel_params(kc)[i].offset, offs[i]);
        assert_int_equal(ptx_kernel_params(kc)[i].size, sizes[i]);
    }
    ptx_program_free(pc);

    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 10 * 8);
    long long *ho = tm_host(&m, out);
    struct mix_pack v;
    memset(&v, 0, sizeof(v));
    v.c = -7;
    v.s = -1234;
    v.i = 99999;
    v.d = 3.25;
    v.p = (long long *)(uintptr_t)0x123456789abcull;
    v.st.c = 'A';
    v.st.d = -2.5;
    v.st.i = 31337;
    v.f = 1.5f;
    v.u8 = 200;
    v.out = (long long *)(uintptr_t)out;
    struct pbuf pb;
    pb_init(&pb, k);
    memcpy(pb.b, &v, sizeof(v));
    RUN_OK(k, 1, 1, 1, 1, 0, &pb, &m, 1);
    long long want[10] = {-7, -1234, 99999, 3250, 0x123456789abcll, 'A', -2500, 31337, 1500, 200};
    for (int i = 0; i < 10; i++)
        if (ho[i] != want[i])
            fail_msg("out[%d] = %lld, want %lld", i, ho[i], want[i]);
    tm_free(&m);
    ptx_program_free(p);
}

static int collatz(unsigned long long v, int limit)
{
    int s = 0;
    while (v != 1 && s < limit) {
        v = (v & 1) ? 3 * v + 1 : v / 2;
        s++;
    }
    return s;
}

static void test_ptx_calls_and_local(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.ptx");
    const struct ptx_kernel *k = kern(p, "calls_local");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 700;
    uint64_t in = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 4), fo = tm_alloc(&m, n * 8);
    int *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    float *hf = tm_host(&m, fo);
    for (int i = 0; i < n; i++)
        hi[i] = (int)(rnd() % 100000) - 50000;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    PB(&pb, fo);
    PB(&pb, n);
    RUN_OK(k, (n + 63) / 64, 1, 64, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        int arr[12];
        for (int j = 0; j < 12; j++)
            arr[j] = hi[i] * j + (j ^ i);
        int idx = hi[i] % 12;
        if (idx < 0)
            idx += 12;
        int want = arr[idx] + collatz((unsigned long long)(hi[i] & 0xffff) + 1, 500);
        if (ho[i] != want)
            fail_msg("out[%d] = %d, want %d", i, ho[i], want);
        if (hf[2 * i] != (float)(i + 1) * 0.5f || hf[2 * i + 1] != (float)i * 0.5f)
            fail_msg("fo[%d] = %g,%g", i, hf[2 * i], hf[2 * i + 1]);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static unsigned f2u_sat(float f)
{
    if (isnan(f) || f <= 0.0f)
        return 0;
    if (f >= 4294967296.0f)
        return 0xffffffffu;
    return (unsigned)f;
}

static int f2i_sat(float f)
{
    if (isnan(f))
        return 0;
    if (f >= 2147483648.0f)
        return 0x7fffffff;
    if (f < -2147483648.0f)
        return (int)0x80000000u;
    return (int)f;
}

static void test_ptx_integer_ops(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "int_ops");
    struct tmem m;
    tm_init(&m);
    int n = 512;
    uint64_t a = tm_alloc(&m, n * 4), b = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 64);
    unsigned *ha = tm_host(&m, a), *hb = tm_host(&m, b), *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++) {
        ha[i] = rnd();
        hb[i] = i % 7 == 0 ? 0 : i % 5 == 0 ? (rnd() & 0xff) : rnd();
        if (ha[i] == 0x80000000u)
            ha[i] = 1;
        if (hb[i] == 0x80000000u || hb[i] == 0xffffffffu)
            hb[i] = 3;
    }
    ha[1] = 0;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, a);
    PB(&pb, b);
    PB(&pb, out);
    PB(&pb, n);
    RUN_OK(k, n / 128, 1, 128, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        unsigned x = ha[i], y = hb[i];
        int sx = (int)x, sy = (int)y;
        unsigned w[16];
        w[0] = (unsigned)__builtin_popcount(x);
        w[1] = x ? (unsigned)__builtin_clz(x) : 32;
        unsigned r = 0;
        for (int j = 0; j < 32; j++)
            r |= ((x >> j) & 1u) << (31 - j);
        w[2] = r;
        w[3] = (unsigned)(((unsigned long long)x * y) >> 32);
        w[4] = (unsigned)(((long long)sx * sy) >> 32);
        w[5] = y ? x / y : 0;
        w[6] = sy ? (unsigned)(sx / sy) : 0;
        w[7] = sy ? (unsigned)(sx % sy) : 0;
        w[8] = (unsigned)(((((unsigned long long)y << 32) | x) << (i & 31)) >> 32);
        unsigned long long bytes = ((unsigned long long)y << 32) | x;
        unsigned s = (unsigned)(0x5140 + i), bp = 0;
        for (int j = 0; j < 4; j++)
            bp |= (unsigned)((bytes >> (8 * ((s >> (4 * j)) & 7))) & 0xff) << (8 * j);
        w[9] = bp;
        w[10] = (x >> (i & 31)) | (y << ((i + 3) & 31));
        w[11] = (unsigned)(sx > sy ? sx : sy) ^ (x < y ? x : y);
        w[12] = (unsigned)(sx >> (i & 31));
        w[13] = (unsigned)__builtin_ffs((int)x) +
                (unsigned)__builtin_popcountll(((unsigned long long)x << 32) | y);
        w[14] = (unsigned)(((unsigned long long)x * y) >> 7);
        w[15] = (sx < 0 ? 0u - (unsigned)sx : (unsigned)sx) + f2u_sat((float)sx) +
                (unsigned)f2i_sat((float)y * 0.5f);
        for (int j = 0; j < 16; j++)
            if (ho[i * 16 + j] != w[j])
                fail_msg("i=%d op %d: got 0x%x want 0x%x (x=0x%x y=0x%x)", i, j,
                         ho[i * 16 + j], w[j], x, y);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_elf_only_not_executable(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels.cubin");
    const struct ptx_kernel *k = ptx_program_kernel(p, "vec_add");
    assert_non_null(k);
    assert_false(ptx_kernel_executable(k));
    assert_int_equal(ptx_kernel_param_count(k), 4);
    assert_int_equal(ptx_kernel_param_bytes(k), 28);
    struct tmem m;
    tm_init(&m);
    struct pbuf pb;
    pb_init(&pb, k);
    char err[320];
    int rc = run(k, 1, 1, 32, 1, 0, &pb, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_NOT_SUPPORTED);
    assert_non_null(strstr(err, "no PTX for kernel vec_add"));
    ptx_program_free(p);
}

static void test_ptx_fatbin_wrapper(void **state)
{
    (void)state;
    size_t n;
    uint8_t *fb = read_file("kernels.fatbin", &n);
    uint8_t *img = malloc(n + 24);
    assert_non_null(img);
    uint32_t magic = 0x466243B1u, ver = 1;
    uint64_t ptr = 0xdeadbeef, zero = 0;
    memcpy(img, &magic, 4);
    memcpy(img + 4, &ver, 4);
    memcpy(img + 8, &ptr, 8);
    memcpy(img + 16, &zero, 8);
    memcpy(img + 24, fb, n);
    struct ptx_program *p = NULL;
    char err[256];
    assert_int_equal(ptx_program_load(img, n + 24, &p, err, sizeof(err)), PTX_OK);
    assert_non_null(ptx_program_kernel(p, "matmul_tiled"));
    ptx_program_free(p);
    /* a wrapper alone cannot be followed */
    assert_int_equal(ptx_program_load(img, 24, &p, err, sizeof(err)), PTX_ERR_INVALID_IMAGE);
    assert_null(p);
    /* truncated fatbins are refused, never read past the end */
    for (size_t cut = 1; cut < n; cut += n / 37 + 1) {
        int rc = ptx_program_load(fb, cut, &p, err, sizeof(err));
        if (rc == PTX_OK)
            ptx_program_free(p);
        else
            assert_null(p);
    }
    free(img);
    free(fb);
}

static void test_ptx_unsupported_instruction(void **state)
{
    (void)state;
    static const char src[] =
        ".version 9.0\n.target sm_75\n.address_size 64\n"
        ".visible .entry weird(.param .u64 p)\n{\n"
        "  .reg .b32 %r<4>;\n  .reg .b64 %rd<3>;\n"
        "  ld.param.u64 %rd1, [p];\n"
        "  mov.u32 %r1, %tid.x;\n"
        "  setp.gt.u32 %p1, %r1, 1000;\n"
        "  mul24.lo.u32 %r2, %r1, %r1;\n"
        "  ret;\n}\n";
    /* %p1 is undeclared: a parse error naming the line */
    struct ptx_program *p = NULL;
    char err[256];
    assert_int_equal(ptx_program_load(src, sizeof(src), &p, err, sizeof(err)),
                     PTX_ERR_INVALID_PTX);
    assert_non_null(strstr(err, "line 10"));
    static const char src2[] =
        ".version 9.0\n.target sm_75\n.address_size 64\n"
        ".visible .entry weird(.param .u64 p)\n{\n"
        "  .reg .b32 %r<4>;\n  .reg .b64 %rd<3>;\n  .reg .pred %p<2>;\n"
        "  ld.param.u64 %rd1, [p];\n"
        "  mov.u32 %r1, %tid.x;\n"
        "  setp.gt.u32 %p1, %r1, 1000;\n"
        "  @%p1 bra DONE;\n"
        "  frobnicate.u32 %r2, %r1, %r1;\n"
        "DONE:\n  ret;\n}\n";
    assert_int_equal(ptx_program_load(src2, sizeof(src2), &p, err, sizeof(err)), PTX_OK);
    const struct ptx_kernel *k = ptx_program_kernel(p, "weird");
    assert_non_null(k);
    struct tmem m;
    tm_init(&m);
    struct pbuf pb;
    pb_init(&pb, k);
    int rc = run(k, 1, 1, 4, 1, 0, &pb, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_NOT_SUPPORTED);
    assert_non_null(strstr(err, "frobnicate"));
    assert_non_null(strstr(err, "weird"));
    ptx_program_free(p);
}


/* ---- kernels2.cu ---- */

static void test_ptx_atomics_all(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "atomics_all");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int nb = 4, bs = 64, nt = nb * bs;
    uint64_t ib = tm_alloc(&m, 6 * 4), ub = tm_alloc(&m, 6 * 4), lb = tm_alloc(&m, 3 * 8);
    uint64_t fb = tm_alloc(&m, 2 * 4), db = tm_alloc(&m, 8), co = tm_alloc(&m, nt * 4);
    int *hi = tm_host(&m, ib), *hco = tm_host(&m, co);
    unsigned *hu = tm_host(&m, ub);
    unsigned long long *hl = tm_host(&m, lb);
    float *hf = tm_host(&m, fb);
    double *hd = tm_host(&m, db);
    int i0[6] = {0, 0, -1000000, 1000000, -1, 0};
    unsigned u0[6] = {0xffffffffu, 0, 0, 0, 500, 0};
    memcpy(hi, i0, sizeof(i0));
    memcpy(hu, u0, sizeof(u0));
    memset(hl, 0, 24);
    memset(hf, 0, 8);
    *hd = 0;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, ib);
    PB(&pb, ub);
    PB(&pb, lb);
    PB(&pb, fb);
    PB(&pb, db);
    PB(&pb, co);
    RUN_OK(k, nb, 1, bs, 1, 0, &pb, &m, 3);
    int sum = 0, mx = -1000000, mn = 1000000;
    unsigned x = 0, umx = 0;
    unsigned long long lsum = 0, lmx = 0;
    for (int t = 0; t < nt; t++) {
        sum += t;
        mx = t * 7 % 1001 > mx ? t * 7 % 1001 : mx;
        mn = -(t * 13 % 997) < mn ? -(t * 13 % 997) : mn;
        x ^= (unsigned)t * 2654435761u;
        umx = (unsigned)t * 3u > umx ? (unsigned)t * 3u : umx;
        lsum += (unsigned long long)t << 33;
        lmx = (unsigned long long)t * 1000000007ull > lmx ? (unsigned long long)t * 1000000007ull
                                                          : lmx;
    }
    assert_int_equal(hi[0], sum);
    assert_int_equal(hi[1], -sum);
    assert_int_equal(hi[2], mx);
    assert_int_equal(hi[3], mn);
    assert_true(hi[4] >= 0 && hi[4] < nt);
    assert_int_equal(hi[5], nt);
    assert_int_equal(hu[0], 0);
    assert_int_equal(hu[1], 0x1fffffffu);
    assert_int_equal(hu[2], x);
    assert_int_equal(hu[3], nt % 101);
    assert_int_equal(hu[4], 500 - nt);
    assert_int_equal(hu[5], umx);
    assert_true(hl[0] == lsum);
    assert_true(hl[1] == lmx);
    assert_true(hl[2] == (unsigned long long)nb * (bs * (bs - 1) / 2));
    assert_true(hf[0] == 0.5f * nt);
    assert_true(hf[1] == (float)nt);
    assert_true(*hd == 0.25 * nt);
    /* the CAS tickets are a permutation */
    char *seen = calloc(nt, 1);
    assert_non_null(seen);
    for (int t = 0; t < nt; t++) {
        assert_true(hco[t] >= 0 && hco[t] < nt);
        assert_false(seen[hco[t]]);
        seen[hco[t]] = 1;
    }
    free(seen);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_barrier_reductions(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "barrier_reduce");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int nb = 6, bs = 128;
    uint64_t in = tm_alloc(&m, nb * bs * 4), out = tm_alloc(&m, nb * 3 * 4);
    int *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    for (int i = 0; i < nb * bs; i++) {
        hi[i] = (int)(rnd() % 160) - 60;
        if (hi[i] == 42)
            hi[i] = 43;
    }
    hi[2 * bs + 5] = 42;
    for (int i = 0; i < bs; i++)
        hi[3 * bs + i] = (int)(rnd() % 100); /* block 3: all > -50 */
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    RUN_OK(k, nb, 1, bs, 1, 0, &pb, &m, 2);
    for (int b = 0; b < nb; b++) {
        int c = 0, a = 1, o = 0;
        for (int i = b * bs; i < (b + 1) * bs; i++) {
            c += hi[i] > 0;
            a &= hi[i] > -50;
            o |= hi[i] == 42;
        }
        assert_int_equal(ho[b * 3], c);
        assert_int_equal(ho[b * 3 + 1] != 0, a);
        assert_int_equal(ho[b * 3 + 2] != 0, o);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_warp_match_activemask(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "warp_match");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 128;
    uint64_t in = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 8);
    int *hi = tm_host(&m, in);
    unsigned *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++)
        hi[i] = (int)(rnd() % 5);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    RUN_OK(k, 2, 1, 64, 1, 0, &pb, &m, 1);
    for (int i = 0; i < n; i++) {
        int w0 = i / 32 * 32;
        unsigned match = 0, odd = 0;
        for (int l = 0; l < 32; l++) {
            if (hi[w0 + l] == hi[i])
                match |= 1u << l;
            if (hi[w0 + l] & 1)
                odd |= 1u << l;
        }
        assert_int_equal(ho[2 * i], match);
        assert_int_equal(ho[2 * i + 1], (hi[i] & 1) ? odd : 0);
    }
    tm_free(&m);
    ptx_program_free(p);
}

/* Rounds a float to the nearest half-precision value (normal range only, as the test uses). */
static float to_half(float x)
{
    if (x == 0.0f)
        return x;
    int e;
    frexpf(x, &e); /* |x| = f * 2^e, f in [0.5, 1) */
    float q = ldexpf(1.0f, e - 11);
    return nearbyintf(x / q) * q;
}

static void test_ptx_half_precision(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "halfs");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 600;
    uint64_t x = tm_alloc(&m, n * 4), y = tm_alloc(&m, n * 4);
    float *hx = tm_host(&m, x), *hy = tm_host(&m, y);
    for (int i = 0; i < n; i++)
        hx[i] = 0.5f + (float)(rnd() % 95000) / 10000.0f;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, x);
    PB(&pb, y);
    PB(&pb, n);
    RUN_OK(k, (n + 127) / 128, 1, 128, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        float a = to_half(hx[i]), b = to_half(to_half(0.5f * hx[i] + 1.0f));
        float c = to_half(to_half(a * b) + to_half(b - a));
        float want = c + to_half(a * a) + to_half(b * b);
        if (hy[i] != want)
            fail_msg("y[%d] = %.9g, want %.9g (x = %.9g)", i, hy[i], want, hx[i]);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static float rnd_op(int mode, float a, float b, char op)
{
    fesetround(mode);
    volatile float x = a, y = b, r;
    switch (op) {
    case '+': r = x + y; break;
    case '*': r = x * y; break;
    case '/': r = x / y; break;
    case 's': r = sqrtf(x); break;
    default: r = fmaf(x, y, 1.0f); break;
    }
    fesetround(FE_TONEAREST);
    return r;
}

static void test_ptx_rounding_modes(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "rounding");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 128;
    uint64_t x = tm_alloc(&m, n * 4), xd = tm_alloc(&m, n * 8), y = tm_alloc(&m, n * 48);
    uint64_t yi = tm_alloc(&m, n * 24), yd = tm_alloc(&m, n * 32);
    float *hx = tm_host(&m, x), *hy = tm_host(&m, y);
    double *hxd = tm_host(&m, xd), *hyd = tm_host(&m, yd);
    int *hyi = tm_host(&m, yi);
    for (int i = 0; i < n; i++) {
        hx[i] = i % 4 == 0 ? (float)((int)(rnd() % 4000) - 2000) / 2.0f /* ties */
                           : (float)((int)(rnd() % 2000000) - 1000000) / 997.0f;
        if (hx[i] == 0.0f)
            hx[i] = 1.5f;
        hxd[i] = (double)((int)(rnd() % 2000000) - 1000000) / 1013.0 + (i % 3 ? 0.5 : 0.0);
    }
    hx[5] = 3e9f; /* saturating conversions */
    hx[6] = -2.5f;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, x);
    PB(&pb, xd);
    PB(&pb, y);
    PB(&pb, yi);
    PB(&pb, yd);
    PB(&pb, n);
    RUN_OK(k, 1, 1, 128, 1, 0, &pb, &m, 1);
    for (int i = 0; i < n; i++) {
        float v = hx[i], w = hx[(i + 1) % n];
        double d = hxd[i];
        float wf[12];
        wf[0] = rnd_op(FE_TOWARDZERO, v, w, '+');
        wf[1] = rnd_op(FE_DOWNWARD, v, w, '*');
        wf[2] = rnd_op(FE_UPWARD, v, w, '/');
        wf[3] = rnd_op(FE_DOWNWARD, fabsf(v), 0, 's');
        wf[4] = rintf(v);
        wf[5] = roundf(v);
        wf[6] = truncf(v) + floorf(w) + ceilf(v);
        wf[7] = fminf(v, w) - fmaxf(v, w) + fabsf(v);
        wf[8] = v < 0 ? 0.0f : v > 1 ? 1.0f : v;
        fesetround(FE_TOWARDZERO);
        volatile double vd = d;
        volatile float dz = (float)vd;
        volatile int iv = (int)((unsigned)i * 16777219u);
        fesetround(FE_DOWNWARD);
        volatile float idn = (float)iv;
        fesetround(FE_TONEAREST);
        wf[9] = dz;
        wf[10] = idn;
        wf[11] = rnd_op(FE_TOWARDZERO, v, w, 'f');
        for (int j = 0; j < 12; j++)
            if (memcmp(&hy[i * 12 + j], &wf[j], 4) != 0)
                fail_msg("i=%d float op %d: got %.9g want %.9g (v=%.9g w=%.9g d=%.17g)", i, j,
                         hy[i * 12 + j], wf[j], v, w, d);
        int wi[6];
        float v1000 = v * 1000.0f, v1e9 = v * 1e9f;
        wi[0] = f2i_sat(nearbyintf(v1000));
        wi[1] = (int)(v1e9 <= 0 ? 0u : v1e9 >= 4294967296.0f ? 0xffffffffu : (unsigned)v1e9);
        wi[2] = (int)floor(d);
        wi[3] = (int)(long long)(d * 1e12);
        wi[4] = (int)(signed char)(unsigned char)(i * 37);
        wi[5] = (int)(short)(unsigned short)(i * 4099);
        for (int j = 0; j < 6; j++)
            if (hyi[i * 6 + j] != wi[j])
                fail_msg("i=%d int op %d: got %d want %d (v=%.9g d=%.17g)", i, j, hyi[i * 6 + j],
                         wi[j], v, d);
        double wd[4];
        fesetround(FE_TOWARDZERO);
        volatile double s1 = vd + (double)v;
        fesetround(FE_TONEAREST);
        wd[0] = s1;
        wd[1] = fma(d, d, -1.0);
        wd[2] = (double)(unsigned long long)(d * d * 1e6);
        wd[3] = rint(d) + trunc(d) + floor(d) + ceil(d);
        for (int j = 0; j < 4; j++)
            if (memcmp(&hyd[i * 4 + j], &wd[j], 8) != 0)
                fail_msg("i=%d double op %d: got %.17g want %.17g (d=%.17g)", i, j,
                         hyd[i * 4 + j], wd[j], d);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static unsigned long long fib(int n)
{
    return n < 2 ? (unsigned long long)n : fib(n - 1) + fib(n - 2);
}

static void test_ptx_recursion_3d_grid(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "recursion3d");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    uint32_t g[3] = {2, 3, 2}, b[3] = {4, 3, 2};
    int total = 2 * 3 * 2 * 4 * 3 * 2;
    uint64_t out = tm_alloc(&m, total * 8);
    unsigned long long *ho = tm_host(&m, out);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    struct ptx_launch l = {
        .grid = {g[0], g[1], g[2]}, .block = {b[0], b[1], b[2]}, .params = pb.b,
        .params_size = ptx_kernel_param_bytes(k), .mem = &m.mem, .host_threads = 2,
    };
    char err[320];
    int rc = ptx_launch(k, &l, err, sizeof(err));
    if (rc)
        fail_msg("launch: %s", err);
    for (uint32_t bz = 0; bz < g[2]; bz++)
        for (uint32_t by = 0; by < g[1]; by++)
            for (uint32_t bx = 0; bx < g[0]; bx++)
                for (uint32_t tz = 0; tz < b[2]; tz++)
                    for (uint32_t ty = 0; ty < b[1]; ty++)
                        for (uint32_t tx = 0; tx < b[0]; tx++) {
                            uint32_t blk = bx + g[0] * (by + g[1] * bz);
                            uint32_t th = tx + b[0] * (ty + b[1] * tz);
                            uint32_t gi = blk * 24 + th;
                            unsigned long long want = fib((int)(th % 15)) * 1000000ull +
                                (unsigned long long)(bz * 10000 + by * 100 + bx) * 1000 +
                                tz * 100 + ty * 10 + tx;
                            assert_true(ho[gi] == want);
                        }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_int64_ops(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "int64_ops");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 256;
    uint64_t a = tm_alloc(&m, n * 8), b = tm_alloc(&m, n * 8), out = tm_alloc(&m, n * 64);
    long long *ha = tm_host(&m, a), *hb = tm_host(&m, b), *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++) {
        ha[i] = (long long)(((unsigned long long)rnd() << 40) ^ ((unsigned long long)rnd() << 12) ^ rnd());
        hb[i] = i % 9 == 0 ? 0 : i % 4 == 0 ? (long long)(rnd() % 1000) - 500
                                            : (long long)(((unsigned long long)rnd() << 32) | rnd());
        if (hb[i] == -1)
            hb[i] = 7;
    }
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, a);
    PB(&pb, b);
    PB(&pb, out);
    PB(&pb, n);
    RUN_OK(k, 2, 1, 128, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        long long x = ha[i], y = hb[i];
        unsigned long long ux = (unsigned long long)x, uy = (unsigned long long)y;
        unsigned long long br = 0;
        for (int j = 0; j < 64; j++)
            br |= ((ux >> j) & 1ull) << (63 - j);
        long long w[8] = {
            y ? x / y : 0,
            y ? x % y : 0,
            uy ? (long long)(ux / uy) : 0,
            (long long)(unsigned long long)(((unsigned __int128)ux * uy) >> 64),
            (long long)(((__int128)x * y) >> 64),
            (long long)br ^ (long long)(ux ? __builtin_clzll(ux) : 64) ^
                ((long long)__builtin_ffsll(y) << 40),
            x >> (i & 63),
            (long long)((ux >> (i & 63)) + (unsigned long long)((unsigned long long)x << (i & 31))),
        };
        for (int j = 0; j < 8; j++)
            if (ho[i * 8 + j] != w[j])
                fail_msg("i=%d op %d: got %lld want %lld", i, j, ho[i * 8 + j], w[j]);
    }
    tm_free(&m);
    ptx_program_free(p);
}

struct sink {
    char text[1024];
    size_t len;
    int calls;
};

static void sink_fn(void *ctx, const char *kernel, const char *text)
{
    struct sink *s = ctx;
    assert_string_equal(kernel, "printf_mix");
    size_t n = strlen(text);
    if (s->len + n < sizeof(s->text)) {
        memcpy(s->text + s->len, text, n + 1);
        s->len += n;
    }
    s->calls++;
}

static void test_ptx_printf_and_assert(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "printf_mix");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    uint64_t str = tm_alloc(&m, 8);
    memcpy(tm_host(&m, str), "zone", 5);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, -3);
    PB(&pb, 0.5);
    PB(&pb, str);
    struct sink sk = {{0}, 0, 0};
    ptx_set_printf_sink(sink_fn, &sk);
    char err[320];
    int rc = run(k, 1, 1, 2, 1, 0, &pb, &m, 1, err, sizeof(err));
    ptx_set_printf_sink(NULL, NULL);
    if (rc)
        fail_msg("printf_mix: %s", err);
    assert_int_equal(sk.calls, 2);
    assert_string_equal(sk.text,
                        "t0 v=-3 d=0.000 s=zone c=A ll=-25769803776 x=000000ff%\n"
                        "t1 v=-3 d=0.500 s=zone c=B ll=-25769803776 x=000000ff%\n");
    /* assert(): the failing thread ends the launch with PTX_ERR_ASSERT */
    const struct ptx_kernel *kc = kern(p, "checked");
    uint64_t vals = tm_alloc(&m, 32 * 4);
    int *hv = tm_host(&m, vals);
    for (int i = 0; i < 32; i++)
        hv[i] = i;
    struct pbuf pc;
    pb_init(&pc, kc);
    PB(&pc, vals);
    PB(&pc, 40);
    RUN_OK(kc, 1, 1, 32, 1, 0, &pc, &m, 1);
    pb_init(&pc, kc);
    PB(&pc, vals);
    PB(&pc, 20);
    rc = run(kc, 1, 1, 32, 1, 0, &pc, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_ASSERT);
    assert_non_null(strstr(err, "p[threadIdx.x] < limit"));
    assert_non_null(strstr(err, "kernels2.cu"));
    tm_free(&m);
    ptx_program_free(p);
}

static int switchy(int kk, int v)
{
    switch (kk) {
    case 0: return v + 1;
    case 1: return v * 3;
    case 2: return v ^ 0x55;
    case 3: return v - 100;
    case 4: return (int)((unsigned)v << 2);
    case 5: return v / 7;
    case 6: return -v;
    case 7: return v & 0xf0;
    default: return 0;
    }
}

static void test_ptx_switch(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.ptx");
    const struct ptx_kernel *k = kern(p, "switch_kernel");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 1000;
    uint64_t in = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 4);
    int *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++)
        hi[i] = (int)(rnd() % 100000) - 50000;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    PB(&pb, n);
    RUN_OK(k, 4, 1, 256, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        int want = switchy(hi[i] & 7, hi[i]) + switchy((hi[i] >> 3) & 15, i);
        if (ho[i] != want)
            fail_msg("out[%d] = %d, want %d", i, ho[i], want);
    }
    tm_free(&m);
    ptx_program_free(p);
}

/* ---- textures and surfaces (tex.ptx) ---- */

/* Objects by value: TOBJ_BASE + index into tobj (surfaces flagged); anything else is forged. */
#define TOBJ_BASE 0x7000u
#define TOBJ_MAX 8
static struct ptx_texref tobj[TOBJ_MAX];
static int tobj_surface[TOBJ_MAX];

static int tobj_resolve(void *ctx, uint64_t value, int surface, struct ptx_texref *out)
{
    (void)ctx;
    if (value < TOBJ_BASE || value >= TOBJ_BASE + TOBJ_MAX ||
        tobj_surface[value - TOBJ_BASE] != surface || tobj[value - TOBJ_BASE].data == NULL)
        return -1;
    *out = tobj[value - TOBJ_BASE];
    return 0;
}
static const struct ptx_textures tobj_tex = {.resolve = tobj_resolve};

/* Object i over host data: w x h x d texels of elem bytes (rows packed). */
static uint64_t tobj_set(int i, void *data, uint64_t w, uint64_t h, uint64_t d, uint32_t format,
                         uint32_t channels, uint32_t elem, int surface)
{
    struct ptx_texref *t = &tobj[i];
    memset(t, 0, sizeof(*t));
    t->data = data;
    t->width = w;
    t->height = h;
    t->depth = d;
    t->pitch = w * elem;
    t->slice = t->pitch * h;
    t->bytes = t->slice * d;
    t->format = format;
    t->channels = channels;
    t->elem = elem;
    t->address_mode[0] = t->address_mode[1] = t->address_mode[2] = 1; /* clamp */
    tobj_surface[i] = surface;
    return TOBJ_BASE + (uint64_t)i;
}

/* Runs tex2d at (x, y) on object value v; the four components in got. */
static void fetch2d(const struct ptx_kernel *k, struct tmem *m, uint64_t out, uint64_t v,
                    float x, float y, float got[4])
{
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    PB(&pb, v);
    PB(&pb, x);
    PB(&pb, y);
    RUN_OK(k, 1, 1, 1, 1, 0, &pb, m, 1);
    memcpy(got, tm_host(m, out), 4 * sizeof(float));
}

/* The 8-bit fixed-point weight of the Programming Guide's linear filtering. */
static float w8(float frac)
{
    return floorf(frac * 256.0f + 0.5f) / 256.0f;
}

static void test_ptx_tex_fetch_modes(void **state)
{
    (void)state;
    struct ptx_program *p = load("tex.ptx");
    const struct ptx_kernel *k = kern(p, "tex2d");
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 16);
    float t[3][4], t2[3][4][2], got[4];
    unsigned char t8[3][4];
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++) {
            t[y][x] = (float)(10 * y + x);
            t2[y][x][0] = t[y][x];
            t2[y][x][1] = -t[y][x];
            t8[y][x] = (unsigned char)(40 * y + 60 * x);
        }
    uint64_t v = tobj_set(0, t, 4, 3, 1, 0x20, 1, 4, 0);
    run_tex = &tobj_tex;
    /* point, clamp, unnormalised: texel (1, 2); beyond the edge: the edge */
    fetch2d(k, &m, out, v, 1.5f, 2.5f, got);
    assert_true(got[0] == t[2][1] && got[1] == 0.0f && got[2] == 0.0f && got[3] == 1.0f);
    fetch2d(k, &m, out, v, 9.0f, -3.0f, got);
    assert_true(got[0] == t[0][3]);
    /* linear: weights 0.75 and 0.25 from texel (0, 0) */
    tobj[0].filter_mode = 1;
    fetch2d(k, &m, out, v, 1.25f, 0.75f, got);
    float want = 0.25f * 0.75f * t[0][0] + 0.75f * 0.75f * t[0][1] + 0.25f * 0.25f * t[1][0] +
                 0.75f * 0.25f * t[1][1];
    assert_true(fabsf(got[0] - want) < 1e-5f);
    /* a fraction that 8 bits do not hold: x 1.3 (0.8 past texel 0) weighs 205/256 */
    fetch2d(k, &m, out, v, 1.3f, 0.5f, got);
    float a = w8(1.3f - 0.5f - 0.0f);
    assert_true(a == 205.0f / 256.0f);
    assert_true(fabsf(got[0] - ((1 - a) * t[0][0] + a * t[0][1])) < 1e-6f);
    assert_true(fabsf(got[0] - (0.2f * t[0][0] + 0.8f * t[0][1])) > 1e-4f);
    /* border: the texel left of 0 is the border colour */
    tobj[0].address_mode[0] = tobj[0].address_mode[1] = 3;
    tobj[0].border[0] = 9.0f;
    fetch2d(k, &m, out, v, 0.25f, 0.5f, got);
    assert_true(fabsf(got[0] - (0.25f * 9.0f + 0.75f * t[0][0])) < 1e-5f);
    /* wrap and mirror with normalised coordinates, point sampling */
    tobj[0].filter_mode = 0;
    tobj[0].flags = 2;
    tobj[0].address_mode[0] = tobj[0].address_mode[1] = 0;
    fetch2d(k, &m, out, v, 1.125f, 0.5f, got); /* x 4.5: texel 4 wraps to 0 */
    assert_true(got[0] == t[1][0]);
    tobj[0].address_mode[0] = tobj[0].address_mode[1] = 2;
    fetch2d(k, &m, out, v, 1.375f, -0.1f, got); /* x 5.5: 5 mirrors to 2; y -0.3: to 0 */
    assert_true(got[0] == t[0][2]);
    /* without normalised coordinates wrap reads as clamp */
    tobj[0].flags = 0;
    fetch2d(k, &m, out, v, 4.5f, 1.5f, got);
    assert_true(got[0] == t[1][3]);
    /* two channels: the missing blue reads 0, the missing alpha 1 */
    v = tobj_set(1, t2, 4, 3, 1, 0x20, 2, 8, 0);
    fetch2d(k, &m, out, v, 2.5f, 1.5f, got);
    assert_true(got[0] == t[1][2] && got[1] == -t[1][2] && got[2] == 0.0f && got[3] == 1.0f);
    /* u8 read as normalised floats */
    v = tobj_set(2, t8, 4, 3, 1, 0x01, 1, 1, 0);
    fetch2d(k, &m, out, v, 3.5f, 2.5f, got);
    assert_true(fabsf(got[0] - t8[2][3] / 255.0f) < 1e-7f);
    run_tex = NULL;
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_tex_layered_3d_gather(void **state)
{
    (void)state;
    struct ptx_program *p = load("tex.ptx");
    const struct ptx_kernel *k = kern(p, "tex_forms");
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 32);
    float t[2][3][4];
    for (int z = 0; z < 2; z++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++)
                t[z][y][x] = (float)(100 * z + 10 * y + x);
    uint64_t vl = tobj_set(0, t, 4, 3, 2, 0x20, 1, 4, 0);
    tobj[0].layered = 1;
    uint64_t v3 = tobj_set(1, t, 4, 3, 2, 0x20, 1, 4, 0);
    run_tex = &tobj_tex;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    PB(&pb, vl);
    PB(&pb, v3);
    PB(&pb, (uint32_t)1);
    PB(&pb, 2.5f);
    PB(&pb, 1.5f);
    RUN_OK(k, 1, 1, 1, 1, 0, &pb, &m, 1);
    float *o = tm_host(&m, out);
    assert_true(o[0] == t[1][1][2]); /* layer 1 */
    assert_true(o[1] == t[1][1][2]); /* z 1.0: slice 1 */
    /* tld4 at (2.5, 1.5) of slice 0: the footprint of texels 2..3 x 1..2, red, in the PTX
     * ISA's order (i, j+1), (i+1, j+1), (i+1, j), (i, j) */
    assert_true(o[4] == t[0][2][2] && o[5] == t[0][2][3] && o[6] == t[0][1][3] &&
                o[7] == t[0][1][2]);
    run_tex = NULL;
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_tex_integer_reads_and_queries(void **state)
{
    (void)state;
    struct ptx_program *p = load("tex.ptx");
    const struct ptx_kernel *k = kern(p, "tex_int");
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 32);
    int8_t t[5][4];
    for (int i = 0; i < 5; i++)
        for (int c = 0; c < 4; c++)
            t[i][c] = (int8_t)(i * 30 - c * 50);
    uint64_t v = tobj_set(0, t, 5, 1, 1, 0x08, 4, 4, 0);
    tobj[0].flags = 1; /* read as integer */
    tobj[0].address_mode[0] = 3;
    uint64_t sv = tobj_set(1, t, 5, 1, 1, 0x08, 4, 4, 1);
    run_tex = &tobj_tex;
    for (int i = -1; i <= 4; i += 5) {
        struct pbuf pb;
        pb_init(&pb, k);
        PB(&pb, out);
        PB(&pb, v);
        PB(&pb, sv);
        PB(&pb, (int32_t)i);
        RUN_OK(k, 1, 1, 1, 1, 0, &pb, &m, 1);
        int32_t *o = tm_host(&m, out);
        for (int c = 0; c < 4; c++)
            assert_int_equal(o[c], i < 0 ? 0 : t[i][c]); /* out of range: zero */
        assert_int_equal(o[4], 5);
        assert_int_equal(o[5], 1);
        assert_int_equal(o[6], 5);
        assert_int_equal(o[7], 3);
    }
    run_tex = NULL;
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_surface_access(void **state)
{
    (void)state;
    struct ptx_program *p = load("tex.ptx");
    const struct ptx_kernel *k = kern(p, "surf");
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 16);
    uint32_t s[3][8];
    uint16_t s16[2][3][5];
    memset(s, 0, sizeof(s));
    memset(s16, 0, sizeof(s16));
    uint64_t sv = tobj_set(0, s, 8, 3, 1, 0x03, 1, 4, 1);
    uint64_t sv16 = tobj_set(1, s16, 5, 3, 2, 0x02, 1, 2, 1);
    tobj[1].layered = 1;
    run_tex = &tobj_tex;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    PB(&pb, sv);
    PB(&pb, sv16);
    PB(&pb, (uint32_t)(5 * 4));
    PB(&pb, (uint32_t)2);
    RUN_OK(k, 1, 1, 1, 1, 0, &pb, &m, 1);
    uint32_t *o = tm_host(&m, out);
    assert_int_equal(s[2][5], 0x11223344u);
    assert_int_equal(s[2][6], 0x55667788u);
    assert_int_equal(o[0], 0x11223344u);
    assert_int_equal(o[1], 0x55667788u);
    assert_int_equal(o[2], 0);          /* .zero: out of range reads 0 */
    assert_int_equal(s16[1][2][4], 0xBEEF); /* .clamp: the last texel of the row, layer 1 */
    /* .trap out of range, a forged value, a texture used as a surface: the launch faults */
    char err[320];
    const struct ptx_kernel *kt = kern(p, "surf_trap");
    const uint64_t bad[3] = {sv, TOBJ_BASE + 7, TOBJ_BASE + 2};
    tobj_set(2, s, 8, 3, 1, 0x03, 1, 4, 0);
    for (int i = 0; i < 3; i++) {
        pb_init(&pb, kt);
        PB(&pb, bad[i]);
        assert_int_equal(run(kt, 1, 1, 1, 1, 0, &pb, &m, 1, err, sizeof(err)),
                         PTX_ERR_ILLEGAL_ADDRESS);
        assert_non_null(strstr(err, i ? "no live surface object" : "out of range"));
    }
    run_tex = NULL;
    tm_free(&m);
    ptx_program_free(p);
}

/* A texture value that is no object of the launch (here: no objects at all) faults the
 * launch at the fetch; nothing is read or written. */
static void test_ptx_texture_forged_object(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.ptx");
    const struct ptx_kernel *k = kern(p, "tex_fetch");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    uint64_t o = tm_alloc(&m, 32 * 4);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, o);
    PB(&pb, (unsigned long long)1);
    char err[320];
    int rc = run(k, 1, 1, 32, 1, 0, &pb, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_ILLEGAL_ADDRESS);
    assert_non_null(strstr(err, "no live texture object"));
    assert_non_null(strstr(err, "tex_fetch"));
    const uint8_t *h = tm_host(&m, o);
    for (int i = 0; i < 32 * 4; i++)
        assert_int_equal(h[i], 0xA5);
    tm_free(&m);
    ptx_program_free(p);
}

/* Rounds a float to the nearest bfloat16 value (normal range only, as the test uses). */
static float to_bf16(float x)
{
    if (x == 0.0f)
        return x;
    int e;
    frexpf(x, &e);
    float q = ldexpf(1.0f, e - 8);
    return nearbyintf(x / q) * q;
}

static void test_ptx_cp_async_bf16_sm80(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels80.ptx");
    const struct ptx_kernel *k = kern(p, "async_copy_bf16");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 512, bs = 128;
    uint64_t in = tm_alloc(&m, n * 4), wt = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 4);
    float *hi = tm_host(&m, in), *hw = tm_host(&m, wt), *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++) {
        hi[i] = 1.0f + (float)(rnd() % 120) / 8.0f;
        hw[i] = 1.0f + (float)(rnd() % 120) / 8.0f;
    }
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, wt);
    PB(&pb, out);
    PB(&pb, n);
    RUN_OK(k, n / bs, 1, bs, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        int b = i / bs, t = i % bs;
        float v = hi[b * bs + bs - 1 - t], w = hw[i];
        float a = to_bf16(v), bb = to_bf16(w);
        float c = to_bf16(a * bb + to_bf16(a + bb));
        float want = c + to_bf16(v * v) + to_bf16(w * w);
        if (ho[i] != want)
            fail_msg("out[%d] = %.9g, want %.9g (v=%g w=%g)", i, ho[i], want, v, w);
    }
    tm_free(&m);
    ptx_program_free(p);
}

/* ---- tensor cores (kernels_mma.cu): results against C, in k order with one f32 rounding
 * per addition for f16/bf16/tf32 inputs (their products are exact in f32) ---------------- */

/* A random f16 in [2^-3, 2^2) with either sign, as bits; and its value. */
static uint16_t rnd_f16(void)
{
    return (uint16_t)((rnd() & 1u) << 15 | (12u + rnd() % 5u) << 10 | (rnd() & 0x3ffu));
}

static float f16_val(uint16_t h)
{
    int e = (h >> 10) & 0x1f; /* no infinities or NaNs in these tests */
    float v = e ? ldexpf(1.0f + (float)(h & 0x3ff) / 1024.0f, e - 15)
                : ldexpf((float)(h & 0x3ff), -24);
    return (h >> 15) ? -v : v;
}

/* f16 bits of a value exactly representable as a normal f16 (or zero). */
static uint16_t f16_of(float v)
{
    if (v == 0.0f)
        return 0;
    int e;
    float m = frexpf(fabsf(v), &e); /* v = m * 2^e, m in [0.5, 1) */
    uint16_t h = (uint16_t)((uint16_t)(e - 1 + 15) << 10 | (uint16_t)((m * 2.0f - 1.0f) * 1024.0f));
    return v < 0 ? (uint16_t)(h | 0x8000) : h;
}

static uint16_t rnd_bf16(void)
{
    return (uint16_t)((rnd() & 1u) << 15 | (124u + rnd() % 6u) << 7 | (rnd() & 0x7fu));
}

static float bf16_val(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* Rounds to tf32 (11 significant bits), ties away from zero, as cvt.rna.tf32.f32. */
static float tf32_rna(float x)
{
    if (x == 0.0f)
        return x;
    int e;
    frexpf(x, &e);
    float q = ldexpf(1.0f, e - 11);
    return roundf(x / q) * q;
}

static float rnd_float(void)
{
    return ((float)(rnd() % 2000000u) - 1000000.0f) / 262144.0f;
}

/* A float reference for the tensor-core tests: D = scale * (C + A * B), summed with fmaf in k
 * order; A(r,k) = get(a, r*ars + k*acs), B(k,c) = get(b, k*brs + c*bcs), C row-major M x N
 * (NULL: every element init); checks got (D(r,c) at r*drs + c*dcs) exactly. */
struct mm_ref {
    const char *what;
    int M, N, K;
    float (*get)(const void *v, int i);
    const void *a, *b;
    int ars, acs, brs, bcs, drs, dcs;
    const float *c;
    float init, scale;
};

static float el_f16(const void *v, int i) { return f16_val(((const uint16_t *)v)[i]); }
static float el_bf16(const void *v, int i) { return bf16_val(((const uint16_t *)v)[i]); }
static float el_f32(const void *v, int i) { return ((const float *)v)[i]; }
static float el_tf32(const void *v, int i) { return tf32_rna(((const float *)v)[i]); }

static void check_mm_f32(const struct mm_ref *x, const float *got)
{
    for (int r = 0; r < x->M; r++)
        for (int col = 0; col < x->N; col++) {
            float acc = x->c ? x->c[r * x->N + col] : x->init;
            for (int kk = 0; kk < x->K; kk++)
                acc = fmaf(x->get(x->a, r * x->ars + kk * x->acs),
                           x->get(x->b, kk * x->brs + col * x->bcs), acc);
            float g = got[r * x->drs + col * x->dcs];
            if (g != x->scale * acc)
                fail_msg("%s d[%d][%d] = %.9g, want %.9g", x->what, r, col, g, x->scale * acc);
        }
}

static void test_ptx_wmma_f16(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_mma.ptx");
    const struct ptx_kernel *k = kern(p, "wmma_f16");
    struct tmem m;
    tm_init(&m);
    uint64_t a = tm_alloc(&m, 512), b = tm_alloc(&m, 512), c = tm_alloc(&m, 1024),
             d = tm_alloc(&m, 1024);
    uint16_t *ha = tm_host(&m, a), *hb = tm_host(&m, b);
    float *hc = tm_host(&m, c), *hd = tm_host(&m, d);
    for (int i = 0; i < 256; i++) {
        ha[i] = rnd_f16();
        hb[i] = rnd_f16();
        hc[i] = rnd_float();
    }
    RUN_BUFS(k, 32, &m, a, b, c, d);
    /* A row-major, B column-major, D stored column-major */
    check_mm_f32(&(struct mm_ref){.what = "wmma f16", .M = 16, .N = 16, .K = 16, .get = el_f16,
                                  .a = ha, .b = hb, .ars = 16, .acs = 1, .brs = 1, .bcs = 16,
                                  .drs = 1, .dcs = 16, .c = hc, .scale = 2.0f}, hd);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_wmma_f16_accumulators(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_mma.ptx");
    const struct ptx_kernel *k = kern(p, "wmma_f16acc");
    struct tmem m;
    tm_init(&m);
    /* m32n8k16: A 32x16 column-major with leading dimension 40; values in halves, so every
     * sum is exact in f16 */
    uint64_t a = tm_alloc(&m, 40 * 16 * 2), b = tm_alloc(&m, 16 * 8 * 2),
             c = tm_alloc(&m, 32 * 8 * 2), d = tm_alloc(&m, 32 * 8 * 2);
    uint16_t *ha = tm_host(&m, a), *hb = tm_host(&m, b), *hc = tm_host(&m, c),
             *hd = tm_host(&m, d);
    for (int i = 0; i < 40 * 16; i++)
        ha[i] = f16_of((float)((int)(rnd() % 7u) - 3) / 2.0f);
    for (int i = 0; i < 16 * 8; i++)
        hb[i] = f16_of((float)((int)(rnd() % 7u) - 3) / 2.0f);
    for (int i = 0; i < 32 * 8; i++)
        hc[i] = f16_of((float)((int)(rnd() % 41u) - 20));
    RUN_BUFS(k, 32, &m, a, b, c, d);
    for (int r = 0; r < 32; r++)
        for (int col = 0; col < 8; col++) {
            float acc = f16_val(hc[r * 8 + col]);
            for (int kk = 0; kk < 16; kk++)
                acc += f16_val(ha[kk * 40 + r]) * f16_val(hb[kk * 8 + col]);
            if (hd[r * 8 + col] != f16_of(acc))
                fail_msg("d[%d][%d] = 0x%04x, want %g", r, col, hd[r * 8 + col], acc);
        }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_wmma_bf16_tf32(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_mma.ptx");
    struct tmem m;
    tm_init(&m);
    uint64_t a = tm_alloc(&m, 1024), b = tm_alloc(&m, 1024), d = tm_alloc(&m, 1024);
    uint16_t *ha = tm_host(&m, a), *hb = tm_host(&m, b);
    float *hd = tm_host(&m, d);
    for (int i = 0; i < 256; i++) {
        ha[i] = rnd_bf16();
        hb[i] = rnd_bf16();
    }
    const struct ptx_kernel *k = kern(p, "wmma_bf16");
    RUN_BUFS(k, 32, &m, a, b, d);
    /* both row-major, C fill_fragment(1.0f) */
    check_mm_f32(&(struct mm_ref){.what = "bf16", .M = 16, .N = 16, .K = 16, .get = el_bf16,
                                  .a = ha, .b = hb, .ars = 16, .acs = 1, .brs = 16, .bcs = 1,
                                  .drs = 16, .dcs = 1, .init = 1.0f, .scale = 1.0f}, hd);
    /* tf32: A 16x8 row-major, B 8x16 column-major, rounded in the kernel */
    float *fa = tm_host(&m, a), *fb = tm_host(&m, b);
    for (int i = 0; i < 128; i++) {
        fa[i] = rnd_float();
        fb[i] = rnd_float();
    }
    k = kern(p, "wmma_tf32");
    RUN_BUFS(k, 32, &m, a, b, d);
    check_mm_f32(&(struct mm_ref){.what = "tf32", .M = 16, .N = 16, .K = 8, .get = el_tf32,
                                  .a = fa, .b = fb, .ars = 8, .acs = 1, .brs = 1, .bcs = 8,
                                  .drs = 16, .dcs = 1, .scale = 1.0f}, hd);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_wmma_f64_s8_shared(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_mma.ptx");
    struct tmem m;
    tm_init(&m);
    uint64_t a = tm_alloc(&m, 2048), b = tm_alloc(&m, 2048), c = tm_alloc(&m, 2048),
             d = tm_alloc(&m, 2048);
    double *da = tm_host(&m, a), *db = tm_host(&m, b), *dc = tm_host(&m, c), *dd = tm_host(&m, d);
    for (int i = 0; i < 64; i++) {
        da[i] = rnd_float() / 3.0;
        db[i] = rnd_float() / 7.0;
        dc[i] = rnd_float();
    }
    const struct ptx_kernel *k = kern(p, "wmma_f64");
    RUN_BUFS(k, 32, &m, a, b, c, d);
    for (int r = 0; r < 8; r++)
        for (int col = 0; col < 8; col++) {
            double acc = dc[r * 8 + col];
            for (int kk = 0; kk < 4; kk++) /* A 8x4 row-major, B 4x8 column-major */
                acc = fma(da[r * 4 + kk], db[col * 4 + kk], acc);
            if (dd[r * 8 + col] != acc)
                fail_msg("f64 d[%d][%d] = %.17g, want %.17g", r, col, dd[r * 8 + col], acc);
        }
    /* s8: two warps, each a 16x16 tile */
    int8_t *sa = tm_host(&m, a), *sb = tm_host(&m, b);
    int32_t *sc = tm_host(&m, c), *sd = tm_host(&m, d);
    for (int i = 0; i < 512; i++) {
        sa[i] = (int8_t)rnd();
        sc[i] = (int32_t)rnd();
    }
    for (int i = 0; i < 256; i++)
        sb[i] = (int8_t)rnd();
    k = kern(p, "wmma_s8");
    RUN_BUFS(k, 64, &m, a, b, c, d);
    for (int r = 0; r < 32; r++)
        for (int col = 0; col < 16; col++) {
            uint32_t acc = (uint32_t)sc[r * 16 + col];
            for (int kk = 0; kk < 16; kk++)
                acc += (uint32_t)(sa[r * 16 + kk] * sb[col * 16 + kk]);
            if ((uint32_t)sd[r * 16 + col] != acc)
                fail_msg("s8 d[%d][%d] = %d, want %d", r, col, sd[r * 16 + col], (int)acc);
        }
    /* through shared memory, both row-major */
    uint16_t *ha = tm_host(&m, a), *hb = tm_host(&m, b);
    float *hd = tm_host(&m, d);
    for (int i = 0; i < 256; i++) {
        ha[i] = rnd_f16();
        hb[i] = rnd_f16();
    }
    k = kern(p, "wmma_shared");
    RUN_BUFS(k, 32, &m, a, b, d);
    check_mm_f32(&(struct mm_ref){.what = "shared", .M = 16, .N = 16, .K = 16, .get = el_f16,
                                  .a = ha, .b = hb, .ars = 16, .acs = 1, .brs = 16, .bcs = 1,
                                  .drs = 16, .dcs = 1, .scale = 1.0f}, hd);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_mma_sync_layouts(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_mma.ptx");
    struct tmem m;
    tm_init(&m);
    uint64_t a = tm_alloc(&m, 2048), b = tm_alloc(&m, 2048), c = tm_alloc(&m, 2048),
             d = tm_alloc(&m, 2048);
    /* m16n8k16 f16 -> f32; all matrices row-major */
    uint16_t *ha = tm_host(&m, a), *hb = tm_host(&m, b);
    float *hc = tm_host(&m, c), *hd = tm_host(&m, d);
    for (int i = 0; i < 256; i++)
        ha[i] = rnd_f16();
    for (int i = 0; i < 128; i++) {
        hb[i] = rnd_f16();
        hc[i] = rnd_float();
    }
    const struct ptx_kernel *k = kern(p, "mma_f16");
    RUN_BUFS(k, 32, &m, a, b, c, d);
    check_mm_f32(&(struct mm_ref){.what = "m16n8k16", .M = 16, .N = 8, .K = 16, .get = el_f16,
                                  .a = ha, .b = hb, .ars = 16, .acs = 1, .brs = 8, .bcs = 1,
                                  .drs = 8, .dcs = 1, .c = hc, .scale = 1.0f}, hd);
    /* m16n8k8 tf32 (valid tf32 inputs), C zero */
    float *fa = tm_host(&m, a), *fb = tm_host(&m, b);
    for (int i = 0; i < 128; i++)
        fa[i] = tf32_rna(rnd_float());
    for (int i = 0; i < 64; i++)
        fb[i] = tf32_rna(rnd_float());
    k = kern(p, "mma_tf32");
    RUN_BUFS(k, 32, &m, a, b, d);
    check_mm_f32(&(struct mm_ref){.what = "m16n8k8", .M = 16, .N = 8, .K = 8, .get = el_f32,
                                  .a = fa, .b = fb, .ars = 8, .acs = 1, .brs = 8, .bcs = 1,
                                  .drs = 8, .dcs = 1, .scale = 1.0f}, hd);
    /* m8n8k4 f64 */
    double *da = tm_host(&m, a), *db = tm_host(&m, b), *dc = tm_host(&m, c), *dd = tm_host(&m, d);
    for (int i = 0; i < 64; i++) {
        da[i] = rnd_float() / 3.0;
        db[i] = rnd_float() / 7.0;
        dc[i] = rnd_float();
    }
    k = kern(p, "mma_f64");
    RUN_BUFS(k, 32, &m, a, b, c, d);
    for (int r = 0; r < 8; r++)
        for (int col = 0; col < 8; col++) {
            double acc = dc[r * 8 + col];
            for (int kk = 0; kk < 4; kk++)
                acc = fma(da[r * 4 + kk], db[kk * 8 + col], acc);
            if (dd[r * 8 + col] != acc)
                fail_msg("m8n8k4 d[%d][%d] = %.17g, want %.17g", r, col, dd[r * 8 + col], acc);
        }
    /* m16n8k32 s8 .satfinite: row 0 of C starts near INT32_MAX, row 1 near INT32_MIN */
    int8_t *sa = tm_host(&m, a), *sb = tm_host(&m, b);
    int32_t *sc = tm_host(&m, c), *sd = tm_host(&m, d);
    for (int i = 0; i < 512; i++)
        sa[i] = (int8_t)rnd();
    for (int i = 0; i < 256; i++)
        sb[i] = (int8_t)rnd();
    for (int i = 0; i < 128; i++)
        sc[i] = i < 8 ? INT32_MAX - 1000 : i < 16 ? INT32_MIN + 1000 : (int32_t)(rnd() % 100000u);
    k = kern(p, "mma_s8");
    RUN_BUFS(k, 32, &m, a, b, c, d);
    int saturated = 0;
    for (int r = 0; r < 16; r++)
        for (int col = 0; col < 8; col++) {
            int64_t acc = sc[r * 8 + col];
            for (int kk = 0; kk < 32; kk++)
                acc += sa[r * 32 + kk] * sb[kk * 8 + col];
            int64_t want = acc > INT32_MAX ? INT32_MAX : acc < INT32_MIN ? INT32_MIN : acc;
            saturated += want != acc;
            if (sd[r * 8 + col] != want)
                fail_msg("m16n8k32 d[%d][%d] = %d, want %lld", r, col, sd[r * 8 + col],
                         (long long)want);
        }
    assert_true(saturated > 0);
    tm_free(&m);
    ptx_program_free(p);
}

/* An mma that not all 32 lanes of a warp reach fails the launch instead of guessing. */
static void test_ptx_mma_partial_warp_fails(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_mma.ptx");
    const struct ptx_kernel *k = kern(p, "mma_f64");
    struct tmem m;
    tm_init(&m);
    uint64_t a = tm_alloc(&m, 512), b = tm_alloc(&m, 512), c = tm_alloc(&m, 512),
             d = tm_alloc(&m, 512);
    memset(tm_host(&m, a), 0, 512);
    memset(tm_host(&m, b), 0, 512);
    memset(tm_host(&m, c), 0, 512);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, a);
    PB(&pb, b);
    PB(&pb, c);
    PB(&pb, d);
    char err[320];
    assert_int_equal(run(k, 1, 1, 16, 1, 0, &pb, &m, 1, err, sizeof(err)),
                     PTX_ERR_LAUNCH_FAILED);
    assert_non_null(strstr(err, "all 32 must execute it"));
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_ldmatrix_movmatrix(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_mma.ptx");
    const struct ptx_kernel *k = kern(p, "ldmatrix_x4");
    struct tmem m;
    tm_init(&m);
    uint64_t in = tm_alloc(&m, 512), out = tm_alloc(&m, 32 * 9 * 4);
    uint16_t *hi = tm_host(&m, in);
    for (int i = 0; i < 256; i++)
        hi[i] = (uint16_t)rnd();
    RUN_BUFS(k, 32, &m, in, out);
    const uint32_t *ho = tm_host(&m, out);
    /* matrix i, row q is stored matrix 3-i, row 7-q (the addresses the lanes gave) */
#define MX(i, r, c) ((uint32_t)hi[(3 - (i)) * 64 + (7 - (r)) * 8 + (c)])
    for (int l = 0; l < 32; l++) {
        int q = l / 4, c = (l % 4) * 2;
        for (int i = 0; i < 4; i++) {
            assert_int_equal(ho[l * 9 + i], MX(i, q, c) | MX(i, q, c + 1) << 16);
            assert_int_equal(ho[l * 9 + 4 + i], MX(i, c, q) | MX(i, c + 1, q) << 16);
        }
        /* movmatrix of matrix 0 is its transpose, as ldmatrix.trans loaded it */
        assert_int_equal(ho[l * 9 + 8], ho[l * 9 + 4]);
    }
#undef MX
    tm_free(&m);
    ptx_program_free(p);
}

/* Tensor-core forms the engine does not compute (a shape the ISA does not define for the
 * type, sub-byte types) load, and fail the launch naming the instruction when reached;
 * fragments with the wrong register count fail the load. */
static void test_ptx_mma_unsupported_forms(void **state)
{
    (void)state;
    static const char *const forms[] = {
        "mma.sync.aligned.m16n8k4.row.col.f32.f16.f16.f32 {%f1,%f2,%f3,%f4}, {%r1,%r2}, "
        "{%r3}, {%f1,%f2,%f3,%f4};",
        "mma.sync.aligned.m8n8k32.row.col.s32.s4.s4.s32 {%r1,%r2}, {%r3}, {%r4}, {%r1,%r2};",
        "wmma.mma.sync.aligned.row.col.m16n16k8.f32.f32 {%f1,%f2,%f3,%f4,%f5,%f6,%f7,%f8}, "
        "{%r1,%r2,%r3,%r4}, {%r1,%r2,%r3,%r4}, {%f1,%f2,%f3,%f4,%f5,%f6,%f7,%f8};",
    };
    for (unsigned i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char src[1024];
        snprintf(src, sizeof(src), ".version 9.0\n.target sm_80\n.address_size 64\n"
                 ".visible .entry t()\n{\n  .reg .b32 %%r<8>;\n  .reg .f32 %%f<12>;\n"
                 "  %s\n  ret;\n}\n", forms[i]);
        struct ptx_program *p = NULL;
        char err[320];
        assert_int_equal(ptx_program_load(src, strlen(src) + 1, &p, err, sizeof(err)), PTX_OK);
        struct tmem m;
        tm_init(&m);
        struct pbuf pb;
        pb_init(&pb, kern(p, "t"));
        assert_int_equal(run(kern(p, "t"), 1, 1, 32, 1, 0, &pb, &m, 1, err, sizeof(err)),
                         PTX_ERR_NOT_SUPPORTED);
        assert_non_null(strstr(err, "mma"));
        ptx_program_free(p);
    }
    static const char bad[] =
        ".version 9.0\n.target sm_80\n.address_size 64\n.visible .entry t()\n{\n"
        "  .reg .b32 %r<8>;\n  .reg .f32 %f<12>;\n"
        "  mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%f1,%f2,%f3,%f4}, {%r1,%r2}, "
        "{%r3,%r4}, {%f1,%f2,%f3,%f4};\n  ret;\n}\n";
    struct ptx_program *p = NULL;
    char err[320];
    assert_int_equal(ptx_program_load(bad, sizeof(bad), &p, err, sizeof(err)),
                     PTX_ERR_INVALID_PTX);
    assert_non_null(strstr(err, "does not fit the shape"));
}

static void test_ptx_envreg_reads_zero(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_mma.ptx");
    const struct ptx_kernel *k = kern(p, "envregs");
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 32 * 4);
    RUN_BUFS(k, 32, &m, out);
    const uint32_t *ho = tm_host(&m, out);
    for (int i = 0; i < 32; i++)
        assert_int_equal(ho[i], 7);
    tm_free(&m);
    ptx_program_free(p);
}

/* cp.async with src-size below cp-size fills the rest with zeros; both sides are
 * bounds-checked (the source only for the bytes it reads). */
static void test_ptx_cp_async_zfill_bounds(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels80.ptx");
    const struct ptx_kernel *k = kern(p, "async_zfill");
    struct tmem m;
    tm_init(&m);
    uint64_t in = tm_alloc(&m, 32 * 16), out = tm_alloc(&m, 32 * 16), small = tm_alloc(&m, 16);
    uint8_t *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    for (int i = 0; i < 32 * 16; i++)
        hi[i] = (uint8_t)(i * 7 + 1);
    static const int zfills[] = {0, 4, 8, 14, 16};
    for (unsigned z = 0; z < sizeof(zfills) / sizeof(zfills[0]); z++) {
        struct pbuf pb;
        pb_init(&pb, k);
        PB(&pb, in);
        PB(&pb, out);
        PB(&pb, zfills[z]);
        PB(&pb, 0);
        RUN_OK(k, 1, 1, 32, 1, 0, &pb, &m, 1);
        for (int i = 0; i < 32 * 16; i++)
            if (ho[i] != (i % 16 < 16 - zfills[z] ? hi[i] : 0))
                fail_msg("zfill %d: byte %d = %u", zfills[z], i, ho[i]);
    }
    char err[320];
    struct pbuf pb;
    pb_init(&pb, k); /* the destination past the 512-byte tile */
    PB(&pb, in);
    PB(&pb, out);
    PB(&pb, 0);
    PB(&pb, 32);
    assert_int_equal(run(k, 1, 1, 32, 1, 0, &pb, &m, 1, err, sizeof(err)),
                     PTX_ERR_ILLEGAL_ADDRESS);
    assert_non_null(strstr(err, "shared memory"));
    pb_init(&pb, k); /* a source of 16 bytes read by 32 threads */
    PB(&pb, small);
    PB(&pb, out);
    PB(&pb, 0);
    PB(&pb, 0);
    assert_int_equal(run(k, 1, 1, 32, 1, 0, &pb, &m, 1, err, sizeof(err)),
                     PTX_ERR_ILLEGAL_ADDRESS);
    pb_init(&pb, k); /* a source misaligned for 16 bytes */
    PB(&pb, in + 8);
    PB(&pb, out);
    PB(&pb, 0);
    PB(&pb, 0);
    assert_int_equal(run(k, 1, 1, 32, 1, 0, &pb, &m, 1, err, sizeof(err)),
                     PTX_ERR_LAUNCH_FAILED);
    assert_non_null(strstr(err, "misaligned cp.async"));
    pb_init(&pb, k); /* src-size 0 reads nothing: no fault */
    PB(&pb, small);
    PB(&pb, out);
    PB(&pb, 16);
    PB(&pb, 0);
    RUN_OK(k, 1, 1, 32, 1, 0, &pb, &m, 1);
    for (int i = 0; i < 32 * 16; i++)
        assert_int_equal(ho[i], 0);
    tm_free(&m);
    ptx_program_free(p);
}

/* grid.sync() under a cooperative launch (all blocks co-resident, %envreg1:2 the barrier's
 * workspace); without one it traps, as on a GPU; a grid too large to be co-resident is
 * refused. */
static void test_ptx_cooperative_grid_sync(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels80.ptx");
    const struct ptx_kernel *k = kern(p, "grid_sync_sum");
    struct tmem m;
    tm_init(&m);
    int nb = 12;
    uint64_t x = tm_alloc(&m, 4 * 300), out = tm_alloc(&m, 4 * 300);
    int *hx = tm_host(&m, x), *ho = tm_host(&m, out);
    memset(ho, 0, 4 * 300);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, x);
    PB(&pb, out);
    struct ptx_launch l = {
        .grid = {(uint32_t)nb, 1, 1}, .block = {64, 1, 1}, .params = pb.b,
        .params_size = ptx_kernel_param_bytes(k), .mem = &m.mem, .cooperative = 1,
    };
    char err[320];
    int rc = ptx_launch(k, &l, err, sizeof(err));
    if (rc)
        fail_msg("cooperative launch failed: %d %s", rc, err);
    for (int b = 0; b < nb; b++) {
        assert_int_equal(ho[b], nb * (nb + 1) / 2);
        assert_int_equal(hx[b], 0);
    }
    l.cooperative = 0;
    assert_int_equal(ptx_launch(k, &l, err, sizeof(err)), PTX_ERR_LAUNCH_FAILED);
    assert_non_null(strstr(err, "trap"));
    l.cooperative = 1;
    l.grid[0] = PTX_COOP_MAX_BLOCKS + 1;
    assert_int_equal(ptx_launch(k, &l, err, sizeof(err)), PTX_ERR_COOPERATIVE_TOO_LARGE);
    tm_free(&m);
    ptx_program_free(p);
}

static void heap_launch(const struct ptx_kernel *k, struct tmem *m, struct ptx_heap *h,
                        uint64_t ptrs, uint64_t sums, int bad, int want)
{
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, ptrs);
    if (sums) {
        PB(&pb, sums);
        PB(&pb, bad);
    }
    struct ptx_launch l = {
        .grid = {1, 1, 1}, .block = {32, 1, 1}, .params = pb.b,
        .params_size = ptx_kernel_param_bytes(k), .mem = &m->mem, .heap = h,
    };
    char err[320];
    int rc = ptx_launch(k, &l, err, sizeof(err));
    if (rc != want)
        fail_msg("%s: %d, want %d (%s)", ptx_kernel_name(k), rc, want, err);
    if (want)
        assert_non_null(strstr(err, "free(0x"));
}

/* Device-side malloc/free: ptx_program_uses_heap tells the modules that call them; blocks from
 * the caller's heap, persisting across launches; NULL when it is full or absent; a double free
 * fails the launch. */
static void test_ptx_device_malloc_free(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels80.ptx");
    const struct ptx_kernel *fill = kern(p, "heap_fill"), *sumfree = kern(p, "heap_sum_free");
    struct tmem m;
    tm_init(&m);
    uint64_t hbase = tm_alloc(&m, 4096), ptrs = tm_alloc(&m, 32 * 8),
             sums = tm_alloc(&m, 32 * 8);
    uint64_t *hp = tm_host(&m, ptrs);
    int64_t *hs = tm_host(&m, sums);
    struct ptx_heap *h;
    struct ptx_program *plain = load("ops.ptx");
    assert_int_equal(ptx_program_uses_heap(p), 1);
    assert_int_equal(ptx_program_uses_heap(plain), 0);
    ptx_program_free(plain);
    assert_int_equal(ptx_heap_create(hbase, 4096, &h), 0);
    heap_launch(fill, &m, h, ptrs, 0, 0, PTX_OK);
    /* each block is rounded up to 16 bytes: 16 * 4 * (1 + .. + 8) */
    assert_int_equal(ptx_heap_used(h), 2304);
    for (int t = 0; t < 32; t++) {
        assert_true(hp[t] >= hbase && hp[t] + 4u * (t + 1) <= hbase + 4096);
        assert_int_equal(hp[t] % 16, 0);
    }
    heap_launch(sumfree, &m, h, ptrs, sums, 0, PTX_OK);
    for (int t = 0; t < 32; t++)
        assert_int_equal(hs[t], (int64_t)t * 100 * (t + 1) + t * (t + 1) / 2);
    assert_int_equal(ptx_heap_used(h), 0);
    /* everything freed and coalesced: the whole heap is one block again */
    uint64_t all = ptx_heap_malloc(h, 4096);
    assert_int_equal(all, hbase);
    assert_int_equal(ptx_heap_free(h, all), 0);
    assert_int_equal(ptx_heap_free(h, all), -EINVAL);
    ptx_heap_destroy(h);
    /* a 256-byte heap: the threads that find no room get NULL */
    assert_int_equal(ptx_heap_create(hbase, 256, &h), 0);
    heap_launch(fill, &m, h, ptrs, 0, 0, PTX_OK);
    int nulls = 0;
    for (int t = 0; t < 32; t++)
        nulls += hp[t] == 0;
    assert_true(nulls > 0 && nulls < 32);
    heap_launch(sumfree, &m, h, ptrs, sums, 0, PTX_OK);
    for (int t = 0; t < 32; t++)
        assert_true(hs[t] == (hp[t] ? (int64_t)t * 100 * (t + 1) + t * (t + 1) / 2 : -1));
    assert_int_equal(ptx_heap_used(h), 0);
    heap_launch(fill, &m, h, ptrs, 0, 0, PTX_OK);
    heap_launch(sumfree, &m, h, ptrs, sums, 1, PTX_ERR_LAUNCH_FAILED); /* double free */
    ptx_heap_destroy(h);
    heap_launch(fill, &m, NULL, ptrs, 0, 0, PTX_OK); /* no heap: NULL everywhere */
    for (int t = 0; t < 32; t++)
        assert_int_equal(hp[t], 0);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_generic_spaces(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "spaces");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    uint64_t out = tm_alloc(&m, 4 * 6 * 4);
    int *ho = tm_host(&m, out);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    PB(&pb, 3);
    RUN_OK(k, 1, 1, 4, 1, 0, &pb, &m, 1);
    for (int t = 0; t < 4; t++) {
        int *o = ho + t * 6;
        assert_int_equal(o[0], 1);
        assert_int_equal(o[1], 2);
        assert_int_equal(o[2], 4);
        assert_int_equal(o[3], 3 * 28 + 8 * t);
        assert_int_equal(o[4], 28 + 8 * 3);
        if (t == 0) /* its own o[1], written just before through a global pointer */
            assert_int_equal(o[5], 2);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void test_ptx_cub_block_sort(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_cub.fatbin");
    const struct ptx_kernel *k = kern(p, "cub_block_sort");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int nb = 3, per = 128 * 4, n = nb * per;
    uint64_t in = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 4);
    int *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++)
        hi[i] = (int)(rnd() ^ (rnd() << 16));
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    RUN_OK(k, nb, 1, 128, 1, 0, &pb, &m, 2);
    int *want = malloc(n * sizeof(int));
    assert_non_null(want);
    memcpy(want, hi, n * sizeof(int));
    for (int b = 0; b < nb; b++)
        qsort(want + b * per, per, sizeof(int), cmp_int);
    for (int i = 0; i < n; i++)
        if (ho[i] != want[i])
            fail_msg("out[%d] = %d, want %d", i, ho[i], want[i]);
    free(want);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_cub_scan_reduce(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_cub.fatbin");
    const struct ptx_kernel *k = kern(p, "cub_block_scan_reduce");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int nb = 4, n = nb * 128;
    uint64_t in = tm_alloc(&m, n * 4), scan = tm_alloc(&m, n * 4), sums = tm_alloc(&m, nb * 40);
    int *hi = tm_host(&m, in), *hs = tm_host(&m, scan);
    long long *hr = tm_host(&m, sums);
    for (int i = 0; i < n; i++)
        hi[i] = (int)(rnd() % 20001) - 10000;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, scan);
    PB(&pb, sums);
    RUN_OK(k, nb, 1, 128, 1, 0, &pb, &m, 2);
    for (int b = 0; b < nb; b++) {
        long long tot = 0;
        int acc = 0, ws[4] = {0};
        for (int t = 0; t < 128; t++) {
            int i = b * 128 + t;
            acc += hi[i];
            tot += hi[i];
            ws[t / 32] += hi[i];
            if (hs[i] != acc)
                fail_msg("scan[%d] = %d, want %d", i, hs[i], acc);
        }
        assert_true(hr[b * 5] == tot);
        for (int w = 0; w < 4; w++)
            assert_int_equal((int)hr[b * 5 + 1 + w], ws[w]);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_legacy_warp_synchronous(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "legacy_reduce");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int nb = 5;
    uint64_t in = tm_alloc(&m, nb * 128 * 4), out = tm_alloc(&m, nb * 4);
    int *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    for (int i = 0; i < nb * 128; i++)
        hi[i] = (int)(rnd() % 1000);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    RUN_OK(k, nb, 1, 128, 1, 0, &pb, &m, 2);
    for (int b = 0; b < nb; b++) {
        int want = 0;
        for (int i = 0; i < 128; i++)
            want += hi[b * 128 + i];
        assert_int_equal(ho[b], want);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_spin_wait_in_block(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "flag_wait");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    uint64_t flag = tm_alloc(&m, 4), out = tm_alloc(&m, 8);
    int *hf = tm_host(&m, flag), *ho = tm_host(&m, out);
    *hf = 0;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, flag);
    PB(&pb, out);
    ptx_set_watchdog(200000000); /* a scheduling bug must fail, not hang */
    char err[320];
    int rc = run(k, 1, 1, 64, 1, 0, &pb, &m, 1, err, sizeof(err));
    ptx_set_watchdog(0);
    if (rc)
        fail_msg("flag_wait: %s", err);
    assert_int_equal(ho[0], 42);
    assert_int_equal(ho[1], 1);
    tm_free(&m);
    ptx_program_free(p);
}

/* The same wait between two __syncthreads (phase mode in the translator: its hand-over of
 * the block to the interpreter keeps every thread's registers and where it is). */
static void test_ptx_spin_wait_between_barriers(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "flag_wait_sync");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    uint64_t flag = tm_alloc(&m, 4), out = tm_alloc(&m, 66 * 4);
    int *hf = tm_host(&m, flag), *ho = tm_host(&m, out);
    *hf = 0;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, flag);
    PB(&pb, out);
    ptx_set_watchdog(200000000); /* a scheduling bug must fail, not hang */
    char err[320];
    int rc = run(k, 1, 1, 64, 1, 0, &pb, &m, 1, err, sizeof(err));
    ptx_set_watchdog(0);
    if (rc)
        fail_msg("flag_wait_sync: %s", err);
    assert_int_equal(ho[0], 42 + 3 * 63);
    assert_int_equal(ho[1], 1);
    for (int i = 0; i < 64; i++)
        assert_int_equal(ho[2 + i], 3 * ((i + 1) % 64) + i);
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_dp4a_mul24(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "int_misc");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 256;
    uint64_t a = tm_alloc(&m, n * 4), b = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 24);
    int *ha = tm_host(&m, a), *hb = tm_host(&m, b), *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++) {
        ha[i] = (int)(rnd() ^ (rnd() << 16));
        hb[i] = (int)(rnd() ^ (rnd() << 16));
    }
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, a);
    PB(&pb, b);
    PB(&pb, out);
    RUN_OK(k, 2, 1, 128, 1, 0, &pb, &m, 2);
    for (int i = 0; i < n; i++) {
        unsigned x = (unsigned)ha[i], y = (unsigned)hb[i];
        long long s4 = i, u4 = i, lo = 7, hi = -7;
        for (int j = 0; j < 4; j++) {
            s4 += (long long)(signed char)(x >> (8 * j)) * (signed char)(y >> (8 * j));
            u4 += (long long)(unsigned char)(x >> (8 * j)) * (unsigned char)(y >> (8 * j));
        }
        for (int j = 0; j < 2; j++) {
            lo += (long long)(short)(x >> (16 * j)) * (signed char)(y >> (8 * j));
            hi += (long long)(short)(x >> (16 * j)) * (signed char)(y >> (8 * (2 + j)));
        }
        long long m24 = (long long)((int)(x << 8) >> 8) * ((int)(y << 8) >> 8);
        unsigned long long u24 = (unsigned long long)(x & 0xffffff) * (y & 0xffffff);
        unsigned w[6] = {(unsigned)s4, (unsigned)u4, (unsigned)lo, (unsigned)hi, (unsigned)m24,
                         (unsigned)u24};
        for (int j = 0; j < 6; j++)
            if ((unsigned)ho[i * 6 + j] != w[j])
                fail_msg("i=%d op %d: got 0x%x want 0x%x", i, j, (unsigned)ho[i * 6 + j], w[j]);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_redux_lop3_sm80(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels80.ptx");
    const struct ptx_kernel *k = kern(p, "redux_lop3");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    int n = 128;
    uint64_t in = tm_alloc(&m, n * 4), out = tm_alloc(&m, n * 20);
    unsigned *hi = tm_host(&m, in), *ho = tm_host(&m, out);
    for (int i = 0; i < n; i++)
        hi[i] = rnd() ^ (rnd() << 20);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, in);
    PB(&pb, out);
    RUN_OK(k, 2, 1, 64, 1, 0, &pb, &m, 1);
    for (int i = 0; i < n; i++) {
        int w0 = i / 32 * 32;
        unsigned sum = 0, mx = 0, x = 0;
        int mn = 0x7fffffff;
        for (int l = 0; l < 32; l++) {
            unsigned v = hi[w0 + l];
            sum += v;
            mx = v > mx ? v : mx;
            mn = (int)v < mn ? (int)v : mn;
            x ^= v;
        }
        unsigned a = hi[i], b = hi[i] * 3u, c = hi[i] >> 5;
        unsigned maj = (a & b) | (a & c) | (b & c); /* 0xE8 is the majority function */
        unsigned w[5] = {sum, mx, (unsigned)mn, x, maj};
        for (int j = 0; j < 5; j++)
            if (ho[i * 5 + j] != w[j])
                fail_msg("i=%d op %d: got 0x%x want 0x%x", i, j, ho[i * 5 + j], w[j]);
    }
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_mul24_ptx_text(void **state)
{
    (void)state;
    static const char src[] =
        ".version 9.0\n.target sm_75\n.address_size 64\n"
        ".visible .entry m24(.param .u64 out, .param .u32 a, .param .u32 b)\n{\n"
        "  .reg .b32 %r<8>;\n  .reg .b64 %rd<2>;\n"
        "  ld.param.u64 %rd1, [out];\n  ld.param.u32 %r1, [a];\n  ld.param.u32 %r2, [b];\n"
        "  mul24.lo.s32 %r3, %r1, %r2;\n  st.global.u32 [%rd1], %r3;\n"
        "  mul24.hi.s32 %r4, %r1, %r2;\n  st.global.u32 [%rd1+4], %r4;\n"
        "  mul24.lo.u32 %r5, %r1, %r2;\n  st.global.u32 [%rd1+8], %r5;\n"
        "  mad24.lo.u32 %r6, %r1, %r2, 5;\n  st.global.u32 [%rd1+12], %r6;\n"
        "  ret;\n}\n";
    struct ptx_program *p = NULL;
    char err[320];
    assert_int_equal(ptx_program_load(src, sizeof(src), &p, err, sizeof(err)), PTX_OK);
    const struct ptx_kernel *k = kern(p, "m24");
    assert_int_equal(ptx_kernel_param_bytes(k), 16);
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 16);
    unsigned *ho = tm_host(&m, out);
    unsigned a = 0x7f812345u, b = 0x01ff0010u;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    PB(&pb, a);
    PB(&pb, b);
    RUN_OK(k, 1, 1, 1, 1, 0, &pb, &m, 1);
    long long sa = 0x812345 - 0x1000000, sb = 0xff0010 - 0x1000000;
    unsigned long long ua = 0x812345, ub = 0xff0010;
    assert_int_equal(ho[0], (unsigned)(sa * sb));
    assert_int_equal(ho[1], (unsigned)((unsigned long long)(sa * sb) >> 16));
    assert_int_equal(ho[2], (unsigned)(ua * ub));
    assert_int_equal(ho[3], (unsigned)(ua * ub + 5));
    tm_free(&m);
    ptx_program_free(p);
}

/* A ".ptr [.space] .align N" kernel parameter attribute gives the alignment of the memory the
 * pointer points to, not the parameter's (PTX ISA, "Kernel Parameter Attribute: .ptr"): the
 * u64 after a u32 sits at offset 8 whatever N is, in both spellings (with and without spaces,
 * as LLVM's NVPTX back end writes them). */
static void test_ptx_param_ptr_align(void **state)
{
    (void)state;
    static const char src[] =
        ".version 9.0\n.target sm_75\n.address_size 64\n"
        ".visible .entry pa(.param .u32 n, .param .u64 .ptr .global .align 16 p,\n"
        "    .param .u32 m, .param .u64 .ptr.shared.align 64 q, .param .u16 h,\n"
        "    .param .u64 .ptr .align 1 r, .param .align 16 .b8 blob[16])\n{\n"
        "  .reg .b32 %r<4>;\n  .reg .b64 %rd<4>;\n  .reg .b16 %rs<2>;\n"
        "  ld.param.u32 %r1, [n];\n  ld.param.u64 %rd1, [p];\n  ld.param.u32 %r2, [m];\n"
        "  ld.param.u64 %rd2, [r];\n  ld.param.u16 %rs1, [h];\n  ld.param.u32 %r3, [blob+4];\n"
        "  st.global.u32 [%rd1], %r1;\n  st.global.u32 [%rd1+4], %r2;\n"
        "  st.global.u64 [%rd1+8], %rd2;\n  st.global.u16 [%rd1+16], %rs1;\n"
        "  st.global.u32 [%rd1+20], %r3;\n  ret;\n}\n";
    struct ptx_program *p = NULL;
    char err[320];
    if (ptx_program_load(src, sizeof(src), &p, err, sizeof(err)) != PTX_OK)
        fail_msg("load: %s", err);
    const struct ptx_kernel *k = kern(p, "pa");
    static const uint32_t offs[7] = {0, 8, 16, 24, 32, 40, 48}, sizes[7] = {4, 8, 4, 8, 2, 8, 16};
    assert_int_equal(ptx_kernel_param_count(k), 7);
    for (int i = 0; i < 7; i++) {
        if (ptx_kernel_params(k)[i].offset != offs[i] || ptx_kernel_params(k)[i].size != sizes[i])
            fail_msg("param %d at %u (%u bytes), want %u (%u)", i,
                     ptx_kernel_params(k)[i].offset, ptx_kernel_params(k)[i].size, offs[i],
                     sizes[i]);
    }
    assert_int_equal(ptx_kernel_param_bytes(k), 64);
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 24);
    uint8_t *ho = tm_host(&m, out);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, (uint32_t)77);
    PB(&pb, out);
    PB(&pb, (uint32_t)0xdeadbeefu);
    PB(&pb, (uint64_t)0);
    PB(&pb, (uint16_t)0x1234);
    PB(&pb, (uint64_t)0x0123456789abcdefull);
    uint32_t blob[4] = {1, 0x55aa55aau, 3, 4};
    pb_put(&pb, blob, sizeof(blob));
    RUN_OK(k, 1, 1, 1, 1, 0, &pb, &m, 1);
    uint32_t w0, w1, w5;
    uint64_t w2;
    uint16_t h;
    memcpy(&w0, ho, 4);
    memcpy(&w1, ho + 4, 4);
    memcpy(&w2, ho + 8, 8);
    memcpy(&h, ho + 16, 2);
    memcpy(&w5, ho + 20, 4);
    assert_int_equal(w0, 77);
    assert_int_equal(w1, 0xdeadbeefu);
    assert_int_equal(w2, 0x0123456789abcdefull);
    assert_int_equal(h, 0x1234);
    assert_int_equal(w5, 0x55aa55aau);
    tm_free(&m);
    ptx_program_free(p);
    /* a .ptr attribute with anything else in it is refused, naming it */
    static const char bad[] = ".version 9.0\n.target sm_75\n.address_size 64\n"
                              ".visible .entry b(.param .u64 .ptr.param p)\n{\n  ret;\n}\n";
    p = NULL;
    assert_int_equal(ptx_program_load(bad, sizeof(bad), &p, err, sizeof(err)),
                     PTX_ERR_INVALID_PTX);
    assert_non_null(strstr(err, ".ptr.param"));
}

/* warpSize: nvcc writes it as PTX's predefined constant WARP_SZ (kernels2.cu), which is 32,
 * also negated in a hand-written operand. */
static void test_ptx_warp_sz(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    const struct ptx_kernel *k = kern(p, "warp_size_use");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    uint64_t out = tm_alloc(&m, 96 * 4);
    int *ho = tm_host(&m, out);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    RUN_OK(k, 1, 1, 96, 1, 0, &pb, &m, 1);
    for (int t = 0; t < 96; t++)
        if (ho[t] != 32000 + (t / 32) * 100 + t % 32)
            fail_msg("out[%d] = %d, want %d", t, ho[t], 32000 + (t / 32) * 100 + t % 32);
    tm_free(&m);
    ptx_program_free(p);
    static const char src[] =
        ".version 9.0\n.target sm_75\n.address_size 64\n"
        ".visible .entry w(.param .u64 out)\n{\n  .reg .b32 %r<3>;\n  .reg .b64 %rd<2>;\n"
        "  ld.param.u64 %rd1, [out];\n  mov.u32 %r1, WARP_SZ;\n  add.s32 %r2, %r1, -WARP_SZ;\n"
        "  st.global.u32 [%rd1], %r1;\n  st.global.u32 [%rd1+4], %r2;\n  ret;\n}\n";
    char err[320];
    p = NULL;
    if (ptx_program_load(src, sizeof(src), &p, err, sizeof(err)) != PTX_OK)
        fail_msg("load: %s", err);
    k = kern(p, "w");
    tm_init(&m);
    out = tm_alloc(&m, 8);
    ho = tm_host(&m, out);
    pb_init(&pb, k);
    PB(&pb, out);
    RUN_OK(k, 1, 1, 1, 1, 0, &pb, &m, 1);
    assert_int_equal(ho[0], 32);
    assert_int_equal(ho[1], 0);
    tm_free(&m);
    ptx_program_free(p);
}

/* A fatbin with PTX for compute_75, compute_90 and compute_120 (kernels_arch.cu): the engine
 * runs the compute_90 PTX, as a driver JITs the newest PTX not above the device's sm_90 (the
 * compute_120 one may use instructions the device lacks), reports its version 90 (CUB checks
 * CU_FUNC_ATTRIBUTE_PTX_VERSION against the program's architectures), and that PTX's
 * griddepcontrol.wait/launch_dependents run; a PTX text reports its .target. */
static void test_ptx_fatbin_ptx_choice(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels_arch.fatbin");
    const struct ptx_kernel *k = kern(p, "which_arch");
    assert_int_equal(ptx_kernel_ptx_version(k), 90);
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 4 * 4);
    int *ho = tm_host(&m, out);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    RUN_OK(k, 1, 1, 4, 1, 0, &pb, &m, 1);
    for (int t = 0; t < 4; t++)
        assert_int_equal(ho[t], 900 + t);
    tm_free(&m);
    ptx_program_free(p);
    p = load("kernels80.ptx");
    assert_true(ptx_program_kernel_count(p) > 0);
    assert_int_equal(ptx_kernel_ptx_version(ptx_program_kernel_at(p, 0)), 80);
    ptx_program_free(p);
}

/* ops.ptx: instruction forms nvcc rarely emits, checked one by one. */
static void test_ptx_instruction_forms(void **state)
{
    (void)state;
    struct ptx_program *p = load("ops.ptx");
    const struct ptx_kernel *k = kern(p, "ops");
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 184);
    uint8_t *o = tm_host(&m, out);
    uint32_t a = 0xF1234567u, b = 0x0FEDCBA9u;
    uint64_t c = 0xF00000000000ABCDull;
    float f = 3.7f;
    double d = NAN;
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    PB(&pb, a);
    PB(&pb, b);
    PB(&pb, c);
    PB(&pb, f);
    PB(&pb, d);
    RUN_OK(k, 1, 1, 1, 1, 0, &pb, &m, 1);
#define U32(off) (*(uint32_t *)(o + (off)))
#define U64(off) (*(uint64_t *)(o + (off)))
#define F32(off) (*(float *)(o + (off)))
    uint64_t s = (uint64_t)a + b;
    assert_int_equal(U32(0), (uint32_t)s);
    assert_int_equal(U32(4), (uint32_t)(a + b + (uint32_t)(s >> 32)));
    uint32_t borrow = a < b;
    assert_int_equal(U32(8), a - b);
    assert_int_equal(U32(12), b - a - borrow);
    uint64_t prod = (uint64_t)a * b;
    uint64_t lo = (uint64_t)(uint32_t)prod + a;
    assert_int_equal(U32(16), (uint32_t)lo);
    assert_int_equal(U32(20), (uint32_t)(prod >> 32) + (uint32_t)(lo >> 32));
    assert_int_equal(U32(24), 0xFFFFFFFFu);
    assert_true(F32(28) == 1.0f);
    assert_int_equal(U32(32), b);
    assert_int_equal(U32(36), 3);
    assert_int_equal(U32(40), 31);
    assert_int_equal(U32(44), 27);
    assert_int_equal(U32(48), 0);
    assert_int_equal(U32(52), (a > b ? a - b : b - a) + 3);
    assert_true(F32(56) == 3.0f);
    assert_int_equal(U32(60), (a >> 4) & 0xFFF);
    assert_int_equal(U32(64), (b >> 20) & 0xFFF);
    assert_int_equal(U32(68), (b & ~0x000FFF00u) | ((a & 0xFFF) << 8));
    uint64_t r = 0;
    for (int i = 0; i < 64; i++)
        r |= ((c >> i) & 1) << (63 - i);
    assert_true(U64(72) == r);
    assert_int_equal(U32(80), 0);
    assert_int_equal(U32(84), (uint32_t)__builtin_popcountll(c));
    assert_int_equal(U32(88), 0);
    assert_int_equal(U32(92), 1);
    assert_true(U64(96) == 12345);
    assert_true((int64_t)U64(104) == -5);
    assert_true(U64(112) == (uint64_t)(-(int64_t)c));
    assert_true(U64(120) == c % 1000003);
    assert_true((int64_t)U64(128) == (int64_t)c / -77);
    assert_int_equal(U32(136), 0x67);
    assert_int_equal(U32(140), 255);
    assert_int_equal(U32(144), 0);
    assert_int_equal(U32(148), 4);
    assert_true(F32(152) == 3.69921875f);
    assert_int_equal(U32(156), (uint32_t)(int32_t)((int16_t)(b & 0xffff) >> 3));
    assert_true(U64(160) == (uint64_t)(((unsigned __int128)c * c) >> 64));
    assert_int_equal(U32(168), 16);
    assert_true(U64(176) == 0x7ff8000000000000ull);
#undef U32
#undef U64
#undef F32
    /* a misaligned access faults as on a GPU */
    const struct ptx_kernel *km = kern(p, "misaligned");
    pb_init(&pb, km);
    PB(&pb, out);
    char err[320];
    int rc = run(km, 1, 1, 1, 1, 0, &pb, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_LAUNCH_FAILED);
    assert_non_null(strstr(err, "misaligned"));
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_address_initialisers(void **state)
{
    (void)state;
    struct ptx_program *p = load("kernels2.fatbin");
    int gi = ptx_program_global_find(p, "reloc_p");
    assert_true(gi >= 0);
    struct ptx_global_info g;
    assert_int_equal(ptx_program_global(p, (unsigned)gi, &g), PTX_OK);
    assert_int_equal(g.size, 8);
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    const struct ptx_kernel *k = kern(p, "reloc_read");
    uint64_t out = tm_alloc(&m, 8);
    int *ho = tm_host(&m, out);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    RUN_OK(k, 1, 1, 1, 1, 0, &pb, &m, 1);
    assert_int_equal(ho[0], 30);
    assert_int_equal(ho[1], 40);
    /* a variable holding a function's address cannot be honoured: refused by name */
    const struct ptx_kernel *kf = kern(p, "fptr_call");
    struct pbuf pf;
    pb_init(&pf, kf);
    PB(&pf, out);
    PB(&pf, 4);
    char err[320];
    int rc = run(kf, 1, 1, 1, 1, 0, &pf, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_NOT_SUPPORTED);
    assert_non_null(strstr(err, "reloc_fp"));
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_named_barriers(void **state)
{
    (void)state;
    struct ptx_program *p = load("barriers.ptx");
    const struct ptx_kernel *k = kern(p, "prodcons");
    struct tmem m;
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 32 * 4);
    unsigned *ho = tm_host(&m, out);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    RUN_OK(k, 3, 1, 64, 1, 0, &pb, &m, 1);
    for (unsigned l = 0; l < 32; l++)
        assert_int_equal(ho[l], l * 7);
    /* 32 threads wait for 64 that never come: an error, not a hang or a release */
    const struct ptx_kernel *kn = kern(p, "never");
    pb_init(&pb, kn);
    PB(&pb, out);
    char err[320];
    int rc = run(kn, 1, 1, 32, 1, 0, &pb, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_LAUNCH_FAILED);
    assert_non_null(strstr(err, "barrier deadlock"));
    tm_free(&m);
    ptx_program_free(p);
}

static void test_ptx_watchdog(void **state)
{
    (void)state;
    static const char src[] =
        ".version 9.0\n.target sm_75\n.address_size 64\n"
        ".visible .entry spin()\n{\nLOOP:\n  bra.uni LOOP;\n}\n";
    struct ptx_program *p = NULL;
    char err[320];
    assert_int_equal(ptx_program_load(src, sizeof(src), &p, err, sizeof(err)), PTX_OK);
    const struct ptx_kernel *k = ptx_program_kernel(p, "spin");
    assert_non_null(k);
    assert_int_equal(ptx_kernel_param_bytes(k), 0);
    struct tmem m;
    tm_init(&m);
    struct ptx_launch l = {.grid = {2, 1, 1}, .block = {32, 1, 1}, .mem = &m.mem,
                           .host_threads = 2};
    ptx_set_watchdog(1000000);
    int rc = ptx_launch(k, &l, err, sizeof(err));
    ptx_set_watchdog(0);
    assert_int_equal(rc, PTX_ERR_LAUNCH_FAILED);
    assert_non_null(strstr(err, "watchdog"));
    ptx_program_free(p);
}


/* ---- bounds on host resources, cancellation (limits.ptx) ---- */

static double now_s(void)
{
    struct timespec ts;
    assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ThreadSanitizer's shadow memory grows with the memory the program touches: resident-size
 * bounds are that much looser under it. */
#if defined(__SANITIZE_THREAD__)
#define RSS_FACTOR 5
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RSS_FACTOR 5
#endif
#endif
#ifndef RSS_FACTOR
#define RSS_FACTOR 1
#endif

/* Resident pages of this process, from /proc/self/statm. */
static long rss_pages(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = -1;
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res;
}

/* Samples the resident size every half millisecond while a launch runs: the peak growth
 * over the size at start, in bytes. */
struct rss_watch {
    pthread_t th;
    int stop;
    long base, peak;
};

static void *rss_main(void *arg)
{
    struct rss_watch *r = arg;
    while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
        long p = rss_pages();
        if (p > r->peak)
            r->peak = p;
        usleep(500);
    }
    return NULL;
}

static void rss_start(struct rss_watch *r)
{
    r->stop = 0;
    r->base = r->peak = rss_pages();
    assert_true(r->base > 0);
    assert_int_equal(pthread_create(&r->th, NULL, rss_main, r), 0);
}

static long rss_stop(struct rss_watch *r)
{
    __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
    assert_int_equal(pthread_join(r->th, NULL), 0);
    long p = rss_pages();
    if (p > r->peak)
        r->peak = p;
    return (r->peak - r->base) * sysconf(_SC_PAGESIZE);
}

struct bomb_sink {
    size_t bytes;       /* of printf output, the loss notice not counted */
    int calls, notices;
    size_t first_len;
    char first[PTX_PRINTF_CALL_MAX + 1];
};

static void bomb_sink_fn(void *ctx, const char *kernel, const char *text)
{
    struct bomb_sink *s = ctx;
    assert_true(!strcmp(kernel, "printf_bomb") || !strcmp(kernel, "printf_cut"));
    if (!strcmp(text, PTX_PRINTF_LOST_NOTICE)) {
        s->notices++;
        return;
    }
    size_t n = strlen(text);
    if (s->calls++ == 0) {
        memcpy(s->first, text, n + 1);
        s->first_len = n;
    }
    s->bytes += n;
}

static int bomb_launch(const struct ptx_kernel *k, uint32_t blocks, uint32_t threads,
                       uint32_t n, size_t fifo, struct tmem *m, struct bomb_sink *sk,
                       char *err, size_t errlen)
{
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, n);
    PB(&pb, 1.0 / 3.0);
    struct ptx_launch l = {
        .grid = {blocks, 1, 1}, .block = {threads, 1, 1}, .params = pb.b,
        .params_size = ptx_kernel_param_bytes(k), .mem = &m->mem, .host_threads = 2,
        .printf_fifo_size = fifo,
    };
    memset(sk, 0, sizeof(*sk));
    ptx_set_printf_sink(bomb_sink_fn, sk);
    int rc = ptx_launch(k, &l, err, errlen);
    ptx_set_printf_sink(NULL, NULL);
    return rc;
}

/* A printf of "%.300000000f %300000000d %.99999999999999999999999e" used to take the proxy's
 * memory in proportion to the width; now widths and precisions are bounded, and so is what a
 * launch prints in all. */
static void test_ptx_printf_bomb(void **state)
{
    (void)state;
    struct ptx_program *p = load("limits.ptx");
    const struct ptx_kernel *k = kern(p, "printf_bomb");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    char want[PTX_PRINTF_CALL_MAX + 1], err[320];
    int wl = snprintf(want, sizeof(want), "%.*f %*d %.*e\n", PTX_PRINTF_FIELD_MAX, 1.0 / 3.0,
                      PTX_PRINTF_FIELD_MAX, 0, PTX_PRINTF_FIELD_MAX, 1.0 / 3.0);
    assert_true(wl > 3 * PTX_PRINTF_FIELD_MAX && (size_t)wl < sizeof(want));
    struct bomb_sink sk;
    struct rss_watch rw;

    /* one call: fields taken at their bound, in bounded memory */
    rss_start(&rw);
    int rc = bomb_launch(k, 1, 1, 1, 0, &m, &sk, err, sizeof(err));
    long grew = rss_stop(&rw);
    if (rc)
        fail_msg("printf_bomb: %d %s", rc, err);
    if (grew > RSS_FACTOR * (16l << 20))
        fail_msg("one printf grew the resident size by %ld bytes", grew);
    assert_int_equal(sk.calls, 1);
    assert_int_equal(sk.notices, 0);
    assert_string_equal(sk.first, want);

    /* 64 threads x 200 calls would print 19 MB: the default 1 MiB FIFO keeps the first ones
     * that fit, the loss is reported once */
    rss_start(&rw);
    rc = bomb_launch(k, 2, 32, 200, 0, &m, &sk, err, sizeof(err));
    grew = rss_stop(&rw);
    if (rc)
        fail_msg("printf_bomb: %d %s", rc, err);
    if (grew > RSS_FACTOR * (16l << 20))
        fail_msg("12800 printfs grew the resident size by %ld bytes", grew);
    assert_int_equal(sk.bytes, (size_t)(PTX_PRINTF_FIFO_DEFAULT / wl) * (size_t)wl);
    assert_int_equal(sk.calls, PTX_PRINTF_FIFO_DEFAULT / wl);
    assert_int_equal(sk.notices, 1);

    /* a FIFO set for the launch */
    rc = bomb_launch(k, 1, 4, 10, 10000, &m, &sk, err, sizeof(err));
    if (rc)
        fail_msg("printf_bomb: %d %s", rc, err);
    assert_int_equal(sk.calls, 10000 / wl);
    assert_true(sk.bytes <= 10000);
    assert_int_equal(sk.notices, 1);
    /* and one that holds everything: nothing lost, nothing said */
    rc = bomb_launch(k, 1, 4, 10, 40 * (size_t)wl, &m, &sk, err, sizeof(err));
    if (rc)
        fail_msg("printf_bomb: %d %s", rc, err);
    assert_int_equal(sk.calls, 40);
    assert_int_equal(sk.notices, 0);
    tm_free(&m);
    ptx_program_free(p);
}

/* One call's text fills its buffer up to 5 bytes before the end, then meets a conversion the
 * engine does not know ("%-+ #0123456789.k", printed as it stands): its text used to move the
 * output index past the buffer before the final NUL was stored (a stack overflow that
 * AddressSanitizer reports); it is cut at PTX_PRINTF_CALL_MAX like any other. */
static void test_ptx_printf_cut_at_unknown_conversion(void **state)
{
    (void)state;
    char fmt[1024];
    size_t n = 0;
    for (int i = 0; i < 7; i++)
        n += (size_t)snprintf(fmt + n, sizeof(fmt) - n, "%%512d");
    memset(fmt + n, 'x', 506);
    n += 506;
    n += (size_t)snprintf(fmt + n, sizeof(fmt) - n, "%%-+ #0123456789.k");
    static char src[8192];
    size_t sl = (size_t)snprintf(src, sizeof(src), ".version 9.0\n.target sm_75\n"
                                 ".address_size 64\n.extern .func (.param .b32 r) vprintf"
                                 "(.param .b64 f, .param .b64 a);\n.global .align 1 .b8 "
                                 "fmt[%zu] = {", n + 1);
    for (size_t i = 0; i <= n; i++)
        sl += (size_t)snprintf(src + sl, sizeof(src) - sl, "%s%u", i ? ", " : "",
                               (unsigned)(uint8_t)fmt[i]);
    sl += (size_t)snprintf(src + sl, sizeof(src) - sl, "};\n"
                           ".visible .entry printf_cut()\n{\n"
                           ".local .align 8 .b8 args[28];\n.reg .b32 %%r<3>;\n"
                           ".reg .b64 %%rd<5>;\nmov.u64 %%rd1, args;\n"
                           "cvta.local.u64 %%rd2, %%rd1;\nmov.u32 %%r1, 7;\n"
                           "st.local.v4.u32 [%%rd1], {%%r1, %%r1, %%r1, %%r1};\n"
                           "st.local.v2.u32 [%%rd1+16], {%%r1, %%r1};\n"
                           "st.local.u32 [%%rd1+24], %%r1;\n"
                           "mov.u64 %%rd3, fmt;\ncvta.global.u64 %%rd4, %%rd3;\n{\n"
                           ".param .b64 param0;\nst.param.b64 [param0+0], %%rd4;\n"
                           ".param .b64 param1;\nst.param.b64 [param1+0], %%rd2;\n"
                           ".param .b32 retval0;\n"
                           "call.uni (retval0), vprintf, (param0, param1);\n}\nret;\n}\n");
    assert_true(sl < sizeof(src));
    struct ptx_program *p = NULL;
    char err[320];
    if (ptx_program_load(src, sl + 1, &p, err, sizeof(err)))
        fail_msg("printf_cut: %s", err);
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    const struct ptx_kernel *k = kern(p, "printf_cut");
    struct ptx_launch l = {.grid = {1, 1, 1}, .block = {1, 1, 1}, .mem = &m.mem};
    struct bomb_sink sk;
    memset(&sk, 0, sizeof(sk));
    ptx_set_printf_sink(bomb_sink_fn, &sk);
    int rc = ptx_launch(k, &l, err, sizeof(err));
    ptx_set_printf_sink(NULL, NULL);
    if (rc)
        fail_msg("printf_cut: %d %s", rc, err);
    assert_int_equal(sk.calls, 1);
    assert_int_equal(sk.first_len, PTX_PRINTF_CALL_MAX);
    char want[2 * PTX_PRINTF_CALL_MAX]; /* the whole text, then cut as the engine cuts it */
    snprintf(want, sizeof(want), "%512d%512d%512d%512d%512d%512d%512d%.506s%%-+ #0512.k", 7, 7,
             7, 7, 7, 7, 7, fmt + 35);
    assert_true(strlen(want) > PTX_PRINTF_CALL_MAX);
    want[PTX_PRINTF_CALL_MAX] = 0;
    assert_string_equal(sk.first, want);
    tm_free(&m);
    ptx_program_free(p);
}

static int run_local_big(const struct ptx_kernel *k, uint32_t blocks, uint32_t threads,
                         unsigned host_threads, uint64_t max_host_bytes, struct tmem *m,
                         uint64_t out, char *err, size_t errlen)
{
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, out);
    struct ptx_launch l = {
        .grid = {blocks, 1, 1}, .block = {threads, 1, 1}, .params = pb.b,
        .params_size = ptx_kernel_param_bytes(k), .mem = &m->mem,
        .host_threads = host_threads, .max_host_bytes = max_host_bytes,
    };
    return ptx_launch(k, &l, err, errlen);
}

/* Loads PTX text whose .entry k takes a pointer and a struct of n bytes; 0 or the PTX_ERR_. */
static int load_big_entry(uint32_t n, struct ptx_program **p, char *err, size_t errlen)
{
    char src[1024];

    snprintf(src, sizeof(src), ".version 8.1\n.target sm_90\n.address_size 64\n"
             ".visible .func f(.param .align 4 .b8 a[40000])\n{\nret;\n}\n"
             ".visible .entry k(.param .u64 out, .param .align 4 .b8 s[%u])\n{\n"
             ".reg .b32 %%r<3>;\n.reg .b64 %%rd<3>;\n"
             "ld.param.u64 %%rd1, [out];\ncvta.to.global.u64 %%rd1, %%rd1;\n"
             "ld.param.u32 %%r1, [s];\nld.param.u32 %%r2, [s+%u];\nadd.u32 %%r1, %%r1, %%r2;\n"
             "st.global.u32 [%%rd1], %%r1;\nret;\n}\n", n, n - 4);
    *p = NULL;
    return ptx_program_load(src, strlen(src) + 1, p, err, errlen);
}

/* An .entry's parameters may take 32,764 bytes (CUDA 12.1, PTX ISA 8.1): that loads and runs
 * with the whole buffer; 4 bytes more do not load (as ptxas refuses them), while a .func's
 * parameter area is not bound by it. */
static void test_ptx_entry_param_limit(void **state)
{
    (void)state;
    const uint32_t n = PTX_ENTRY_PARAM_BYTES_MAX - 8; /* after the 8-byte pointer */
    struct ptx_program *p;
    char err[320];
    struct tmem m;
    uint8_t *params = calloc(1, PTX_ENTRY_PARAM_BYTES_MAX);
    uint32_t first = 0x1234, last = 0x50000, got;

    assert_non_null(params);
    assert_int_equal(load_big_entry(n + 4, &p, err, sizeof(err)), PTX_ERR_INVALID_PTX);
    assert_null(p);
    assert_non_null(strstr(err, "entry function 'k' uses too much parameter space (32768 "
                                "bytes, 32764 max)"));
    if (load_big_entry(n, &p, err, sizeof(err)) != 0)
        fail_msg("loading: %s", err);
    const struct ptx_kernel *k = kern(p, "k");
    assert_int_equal(ptx_kernel_param_bytes(k), PTX_ENTRY_PARAM_BYTES_MAX);
    tm_init(&m);
    uint64_t out = tm_alloc(&m, 4);
    memcpy(params, &out, 8);
    memcpy(params + 8, &first, 4);
    memcpy(params + PTX_ENTRY_PARAM_BYTES_MAX - 4, &last, 4);
    struct ptx_launch l = {.grid = {1, 1, 1}, .block = {1, 1, 1}, .params = params,
                           .params_size = PTX_ENTRY_PARAM_BYTES_MAX, .mem = &m.mem,
                           .host_threads = 1};
    if (ptx_launch(k, &l, err, sizeof(err)) != 0)
        fail_msg("launch: %s", err);
    memcpy(&got, tm_host(&m, out), 4);
    assert_int_equal(got, first + last);
    tm_free(&m);
    ptx_program_free(p);
    free(params);
}

/* Local memory: more than 512 KiB per thread does not load (as ptxas refuses it), a call
 * stack past it fails the launch, and what a launch holds for its blocks stays within its
 * host memory budget: fewer host threads, or OUT_OF_RESOURCES when one block does not fit. */
static void test_ptx_local_memory_limits(void **state)
{
    (void)state;
    char src[512], err[320];
    struct ptx_program *q = NULL;
    snprintf(src, sizeof(src), ".version 9.0\n.target sm_75\n.address_size 64\n"
             ".visible .entry huge()\n{\n.local .align 8 .b8 buf[%u];\n"
             ".reg .b64 %%rd<2>;\nmov.u64 %%rd1, buf;\nst.local.u8 [%%rd1], 1;\nret;\n}\n",
             PTX_LOCAL_BYTES_MAX + 8);
    assert_int_equal(ptx_program_load(src, strlen(src) + 1, &q, err, sizeof(err)),
                     PTX_ERR_INVALID_PTX);
    assert_null(q);
    assert_non_null(strstr(err, "too much local data"));

    struct ptx_program *p = load("limits.ptx");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    uint64_t out = tm_alloc(&m, 1 << 16);

    /* 256 KiB in the kernel + 320 KiB in the function it calls */
    const struct ptx_kernel *ko = kern(p, "local_overflow");
    assert_int_equal(ptx_kernel_local_bytes(ko), 256u << 10);
    struct pbuf pb;
    pb_init(&pb, ko);
    PB(&pb, out);
    int rc = run(ko, 1, 1, 2, 1, 0, &pb, &m, 1, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_LAUNCH_FAILED);
    assert_non_null(strstr(err, "call stack overflow"));

    /* exactly 512 KiB loads; 1024 threads of it do not fit the default budget */
    const struct ptx_kernel *kmax = kern(p, "local_max");
    assert_int_equal(ptx_kernel_local_bytes(kmax), PTX_LOCAL_BYTES_MAX);
    struct ptx_launch lm = {.grid = {1, 1, 1}, .block = {1024, 1, 1}, .mem = &m.mem};
    rc = ptx_launch(kmax, &lm, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_LAUNCH_OUT_OF_RESOURCES);
    assert_non_null(strstr(err, "budget"));
    lm.block[0] = 4;
    rc = ptx_launch(kmax, &lm, err, sizeof(err));
    if (rc)
        fail_msg("local_max: %d %s", rc, err);

    /* local_big: 128 KiB per thread, 64 threads: a block needs a bit over 8 MiB */
    const struct ptx_kernel *k = kern(p, "local_big");
    const uint32_t nb = 128, nt = 64;
    const uint64_t block_bytes = (uint64_t)nt * (128u << 10);
    uint32_t *ho = tm_host(&m, out);
    struct rss_watch rw;
    /* a budget below one block */
    rc = run_local_big(k, nb, nt, 8, block_bytes, &m, out, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_LAUNCH_OUT_OF_RESOURCES);
    assert_non_null(strstr(err, "budget"));
    /* a budget of two and a half blocks: at most two host threads of the eight asked for,
     * each holding one block's states */
    /* one block first: the kernel's translation (made once per module, not bounded by the
     * launch budget) is not what this measures */
    rc = run_local_big(k, 1, nt, 1, block_bytes * 5 / 2, &m, out, err, sizeof(err));
    if (rc)
        fail_msg("local_big, one block: %d %s", rc, err);
    memset(ho, 0xA5, 1 << 16);
    rss_start(&rw);
    rc = run_local_big(k, nb, nt, 8, block_bytes * 5 / 2, &m, out, err, sizeof(err));
    long grew = rss_stop(&rw);
    if (rc)
        fail_msg("local_big: %d %s", rc, err);
    for (uint32_t i = 0; i < nb * nt; i++)
        if (ho[i] != 2 * i)
            fail_msg("local_big: out[%u] = %u, want %u", i, ho[i], 2 * i);
    if (grew > RSS_FACTOR * (long)(block_bytes * 5 / 2 + (4u << 20)))
        fail_msg("local_big under a budget of %llu bytes grew the resident size by %ld bytes",
                 (unsigned long long)(block_bytes * 5 / 2), grew);
    tm_free(&m);
    ptx_program_free(p);
}

/* A kernel that zeroes 512 KiB of local memory per block and executes a few instructions
 * in each kept the proxy busy for minutes under the watchdog, which counted only
 * instructions: the zeroing counts too now. */
static void test_ptx_watchdog_counts_local_zeroing(void **state)
{
    (void)state;
    struct ptx_program *p = load("limits.ptx");
    const struct ptx_kernel *k = kern(p, "local_max");
    struct tmem m;
    tm_init(&m);
    /* a million blocks of one thread: about a minute of zeroing */
    struct ptx_launch l = {.grid = {1u << 20, 1, 1}, .block = {1, 1, 1}, .mem = &m.mem,
                           .host_threads = 2};
    char err[320];
    ptx_set_watchdog(1000000);
    double t0 = now_s();
    int rc = ptx_launch(k, &l, err, sizeof(err));
    double took = now_s() - t0;
    ptx_set_watchdog(0);
    assert_int_equal(rc, PTX_ERR_LAUNCH_FAILED);
    assert_non_null(strstr(err, "watchdog"));
    if (took > 2.0)
        fail_msg("the watchdog took %.3f s", took);
    ptx_program_free(p);
}

struct canceller {
    int flag;
    double delay, set_at;
    pthread_t th;
};

static void *cancel_main(void *arg)
{
    struct canceller *c = arg;
    usleep((useconds_t)(c->delay * 1e6));
    c->set_at = now_s();
    __atomic_store_n(&c->flag, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* Launches k with l->cancel set 50 ms after the start; returns how long the launch took to
 * end after the flag was set. */
static double launch_cancelled(const struct ptx_kernel *k, struct ptx_launch *l)
{
    struct canceller c = {.flag = 0, .delay = 0.05};
    char err[320];
    l->cancel = &c.flag;
    assert_int_equal(pthread_create(&c.th, NULL, cancel_main, &c), 0);
    int rc = ptx_launch(k, l, err, sizeof(err));
    double end = now_s();
    assert_int_equal(pthread_join(c.th, NULL), 0);
    l->cancel = NULL;
    if (rc != PTX_ERR_LAUNCH_FAILED || !strstr(err, "cancelled"))
        fail_msg("%s: %d %s, expected a cancelled launch", ptx_kernel_name(k), rc, err);
    return end - c.set_at;
}

/* A launch that would never end (a loop, a barrier that waits for a spinning thread, a loop
 * of barriers) ends soon after its cancel flag is set, and the engine runs launches again. */
static void test_ptx_cancel(void **state)
{
    (void)state;
    struct ptx_program *p = load("limits.ptx");
    struct tmem m;
    tm_init(&m);
    bind_globals(p, &m);
    uint64_t flag = tm_alloc(&m, 4);
    memset(tm_host(&m, flag), 0, 4);
    struct pbuf pb;

    struct ptx_launch l = {.grid = {1024, 1, 1}, .block = {32, 1, 1}, .mem = &m.mem,
                           .host_threads = 2};
    double worst = 0, t;
    ptx_set_watchdog(500000000); /* if cancelling does not work: a failure, not a hang */
    t = launch_cancelled(kern(p, "spin"), &l);
    worst = t > worst ? t : worst;
    l.grid[0] = 1;
    t = launch_cancelled(kern(p, "spin"), &l);
    worst = t > worst ? t : worst;
    l.cooperative = 1; /* every block on a host thread of its own */
    for (uint32_t g = 1; g <= 4; g += 3) {
        l.grid[0] = g;
        t = launch_cancelled(kern(p, "spin"), &l);
        worst = t > worst ? t : worst;
    }
    l.cooperative = 0;
    l.grid[0] = 1;

    const struct ptx_kernel *ks = kern(p, "bar_stuck");
    pb_init(&pb, ks);
    PB(&pb, flag);
    struct ptx_launch lb = {.grid = {512, 1, 1}, .block = {256, 1, 1}, .params = pb.b,
                            .params_size = ptx_kernel_param_bytes(ks), .mem = &m.mem,
                            .host_threads = 2};
    t = launch_cancelled(ks, &lb);
    worst = t > worst ? t : worst;
    lb.grid[0] = 1;
    lb.block[0] = 1024;
    t = launch_cancelled(kern(p, "bar_loop"), &lb);
    worst = t > worst ? t : worst;

    /* a flag set before the launch: nothing runs */
    int set = 1;
    char err[320];
    l.cancel = &set;
    int rc = ptx_launch(kern(p, "spin"), &l, err, sizeof(err));
    assert_int_equal(rc, PTX_ERR_LAUNCH_FAILED);
    assert_non_null(strstr(err, "cancelled"));
    ptx_set_watchdog(0);
    print_message("cancelled launches ended at most %.1f ms after their flag was set\n",
                  worst * 1e3);
    if (worst > 1.0)
        fail_msg("a cancelled launch took %.3f s to end", worst);

    /* the engine still runs launches, on every host thread */
    const struct ptx_kernel *k = kern(p, "local_big");
    uint64_t out = tm_alloc(&m, 256 * 64 * 4);
    rc = run_local_big(k, 256, 64, 2, 0, &m, out, err, sizeof(err));
    if (rc)
        fail_msg("local_big after cancellations: %d %s", rc, err);
    const uint32_t *ho = tm_host(&m, out);
    for (uint32_t i = 0; i < 256 * 64; i++)
        if (ho[i] != 2 * i)
            fail_msg("local_big: out[%u] = %u, want %u", i, ho[i], 2 * i);
    tm_free(&m);
    ptx_program_free(p);
}

/* The suite runs twice (make test): with the translator (the default) and with PTX_JIT=0. In
 * the first run the kernels above ran translated (a translator that quietly fell back to the
 * interpreter everywhere would make that run prove nothing); ptx_set_translator(0) turns it
 * off for later launches, and the same kernel then gives the same result interpreted. */
static void test_ptx_translator_mode(void **state)
{
    (void)state;
    const char *env = getenv("PTX_JIT");
    int on = !(env && strcmp(env, "0") == 0);
    uint64_t before = ptx_launches_translated();
    print_message("translated launches so far: %llu (PTX_JIT=%s)\n",
                  (unsigned long long)before, env ? env : "unset");
    if (on)
        assert_true(before > 0);
    else
        assert_int_equal(before, 0);
    vector_add("kernels.fatbin");
    assert_true(ptx_launches_translated() - before == (uint64_t)on);
    ptx_set_translator(0);
    vector_add("kernels.fatbin");
    assert_true(ptx_launches_translated() - before == (uint64_t)on);
    ptx_set_translator(on);
}

/* vec_add of n elements on the loaded p, checked; whether the launch ran translated. */
static int vec_add_on(const struct ptx_kernel *k, int n)
{
    struct tmem m;
    tm_init(&m);
    uint64_t a = tm_alloc(&m, n * 4), b = tm_alloc(&m, n * 4), c = tm_alloc(&m, n * 4);
    float *ha = tm_host(&m, a), *hb = tm_host(&m, b), *hc = tm_host(&m, c);
    for (int i = 0; i < n; i++)
        ha[i] = (float)i, hb[i] = (float)(3 * i);
    struct pbuf pb;
    pb_init(&pb, k);
    PB(&pb, a);
    PB(&pb, b);
    PB(&pb, c);
    PB(&pb, n);
    uint64_t before = ptx_launches_translated();
    RUN_OK(k, (n + 255) / 256, 1, 256, 1, 0, &pb, &m, 1);
    for (int i = 0; i < n; i++)
        if (hc[i] != 4.0f * i)
            fail_msg("c[%d] = %g, want %g", i, hc[i], 4.0f * i);
    tm_free(&m);
    return ptx_launches_translated() != before;
}

/* The auto mode (the default outside this suite): a kernel runs interpreted until one launch
 * is expected to, or its launches together have, run the threshold's instructions; then it is
 * translated. */
static void test_ptx_translate_auto(void **state)
{
    (void)state;
    if (ptx_jit_enabled() == PTX_TRANSLATE_OFF || strncmp(ptx_translator_state(), "on", 2) != 0)
        skip(); /* PTX_JIT=0 or no translator: nothing is ever translated */
    ptx_set_translator(PTX_TRANSLATE_AUTO);
    ptx_set_translate_threshold(1u << 20);
    struct ptx_program *p = load("kernels.fatbin");
    const struct ptx_kernel *k = kern(p, "vec_add");
    int launches = 1;
    assert_false(vec_add_on(k, 1000)); /* about 16 k instructions: interpreted */
    while (!vec_add_on(k, 1000) && launches < 1000)
        launches++;
    print_message("vec_add of 1000 translated at launch %d\n", launches + 1);
    /* 1 M instructions at no more than a few dozen per thread */
    assert_true(launches >= 20 && launches < 1000);
    ptx_program_free(p);
    /* a fresh program: one launch of 256 k threads is expected to pass 1 M at once */
    p = load("kernels.fatbin");
    k = kern(p, "vec_add");
    assert_true(vec_add_on(k, 256 * 1024));
    ptx_program_free(p);
    ptx_set_translate_threshold(PTX_TRANSLATE_HOT_DEFAULT);
    ptx_set_translator(PTX_TRANSLATE_ALWAYS);
}

/* The translator is a shared object (ptx_jit_load.c): loads that fail say why and leave the
 * translator main() loaded in place; one built for other structures is refused. */
static void test_ptx_translator_load_refusals(void **state)
{
    (void)state;
    char why[PATH_MAX + 256], before[PATH_MAX + 64];
    snprintf(before, sizeof(before), "%s", ptx_translator_state());
    print_message("translator: %s\n", before);
    int on = strncmp(before, "on (", 4) == 0;
    assert_int_equal(on, ptx_jit_enabled()); /* main() loaded it unless PTX_JIT=0 */
    assert_int_equal(ptx_translator_load(KERNELS_DIR "/no-such.so", why, sizeof(why)), -1);
    assert_non_null(strstr(why, on ? "no-such.so" : "PTX_JIT=0"));
    if (on) {
        assert_int_equal(ptx_translator_load("libm.so.6", why, sizeof(why)), -1);
        assert_non_null(strstr(why, "not a PTX translator"));
        assert_int_equal(ptx_translator_load(PTX_JIT_SO_PATH, why, sizeof(why)), 0);
    }
    struct ptx_jit_ops other = {
        .abi = PTX_JIT_ABI + 1, .program_size = sizeof(struct ptx_program),
        .func_size = sizeof(struct pfunc), .frame_size = sizeof(struct jit_frame),
    };
    assert_int_equal(ptx_jit_attach(&other, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "another engine"));
    other.abi = PTX_JIT_ABI;
    other.frame_size++;
    assert_int_equal(ptx_jit_attach(&other, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "another engine"));
    assert_string_equal(ptx_translator_state(), before);
}

int main(void)
{
    char why[PATH_MAX + 256];
    if (ptx_translator_load(PTX_JIT_SO_PATH, why, sizeof(why)) != 0)
        print_message("the translator is off: %s\n", why);
    /* translated runs translate every kernel at its first launch, not only hot ones */
    if (ptx_jit_enabled() != PTX_TRANSLATE_OFF)
        ptx_set_translator(PTX_TRANSLATE_ALWAYS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ptx_image_global_bytes),
        cmocka_unit_test(test_ptx_vector_add_fatbin),
        cmocka_unit_test(test_ptx_translate_auto),
        cmocka_unit_test(test_ptx_lz4_fatbin),
        cmocka_unit_test(test_ptx_saxpy_ptx_text),
        cmocka_unit_test(test_ptx_matmul_shared),
        cmocka_unit_test(test_ptx_block_reduce),
        cmocka_unit_test(test_ptx_histogram_atomics),
        cmocka_unit_test(test_ptx_warp_shuffle_reduce),
        cmocka_unit_test(test_ptx_warp_shfl_vote),
        cmocka_unit_test(test_ptx_warp_divergent_partial),
        cmocka_unit_test(test_ptx_merged_shared_checks),
        cmocka_unit_test(test_ptx_shared_atomics),
        cmocka_unit_test(test_ptx_double_math),
        cmocka_unit_test(test_ptx_float_math),
        cmocka_unit_test(test_ptx_grid_stride),
        cmocka_unit_test(test_ptx_constant_data),
        cmocka_unit_test(test_ptx_dynamic_shared),
        cmocka_unit_test(test_ptx_out_of_bounds),
        cmocka_unit_test(test_ptx_param_layout),
        cmocka_unit_test(test_ptx_calls_and_local),
        cmocka_unit_test(test_ptx_integer_ops),
        cmocka_unit_test(test_ptx_elf_only_not_executable),
        cmocka_unit_test(test_ptx_fatbin_wrapper),
        cmocka_unit_test(test_ptx_unsupported_instruction),
        cmocka_unit_test(test_ptx_atomics_all),
        cmocka_unit_test(test_ptx_barrier_reductions),
        cmocka_unit_test(test_ptx_warp_match_activemask),
        cmocka_unit_test(test_ptx_half_precision),
        cmocka_unit_test(test_ptx_rounding_modes),
        cmocka_unit_test(test_ptx_recursion_3d_grid),
        cmocka_unit_test(test_ptx_int64_ops),
        cmocka_unit_test(test_ptx_printf_and_assert),
        cmocka_unit_test(test_ptx_switch),
        cmocka_unit_test(test_ptx_texture_forged_object),
        cmocka_unit_test(test_ptx_tex_fetch_modes),
        cmocka_unit_test(test_ptx_tex_layered_3d_gather),
        cmocka_unit_test(test_ptx_tex_integer_reads_and_queries),
        cmocka_unit_test(test_ptx_surface_access),
        cmocka_unit_test(test_ptx_cp_async_bf16_sm80),
        cmocka_unit_test(test_ptx_cp_async_zfill_bounds),
        cmocka_unit_test(test_ptx_cooperative_grid_sync),
        cmocka_unit_test(test_ptx_device_malloc_free),
        cmocka_unit_test(test_ptx_generic_spaces),
        cmocka_unit_test(test_ptx_wmma_f16),
        cmocka_unit_test(test_ptx_wmma_f16_accumulators),
        cmocka_unit_test(test_ptx_wmma_bf16_tf32),
        cmocka_unit_test(test_ptx_wmma_f64_s8_shared),
        cmocka_unit_test(test_ptx_mma_sync_layouts),
        cmocka_unit_test(test_ptx_mma_partial_warp_fails),
        cmocka_unit_test(test_ptx_ldmatrix_movmatrix),
        cmocka_unit_test(test_ptx_mma_unsupported_forms),
        cmocka_unit_test(test_ptx_envreg_reads_zero),
        cmocka_unit_test(test_ptx_cub_block_sort),
        cmocka_unit_test(test_ptx_cub_scan_reduce),
        cmocka_unit_test(test_ptx_legacy_warp_synchronous),
        cmocka_unit_test(test_ptx_spin_wait_in_block),
        cmocka_unit_test(test_ptx_spin_wait_between_barriers),
        cmocka_unit_test(test_ptx_dp4a_mul24),
        cmocka_unit_test(test_ptx_redux_lop3_sm80),
        cmocka_unit_test(test_ptx_mul24_ptx_text),
        cmocka_unit_test(test_ptx_param_ptr_align),
        cmocka_unit_test(test_ptx_warp_sz),
        cmocka_unit_test(test_ptx_fatbin_ptx_choice),
        cmocka_unit_test(test_ptx_instruction_forms),
        cmocka_unit_test(test_ptx_address_initialisers),
        cmocka_unit_test(test_ptx_named_barriers),
        cmocka_unit_test(test_ptx_watchdog),
        cmocka_unit_test(test_ptx_printf_bomb),
        cmocka_unit_test(test_ptx_printf_cut_at_unknown_conversion),
        cmocka_unit_test(test_ptx_local_memory_limits),
        cmocka_unit_test(test_ptx_entry_param_limit),
        cmocka_unit_test(test_ptx_watchdog_counts_local_zeroing),
        cmocka_unit_test(test_ptx_cancel),
        cmocka_unit_test(test_ptx_translator_load_refusals),
        cmocka_unit_test(test_ptx_translator_mode), /* last: counts the launches above */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
