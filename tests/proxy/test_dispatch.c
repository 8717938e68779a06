/* test_dispatch.c - unit tests of gpu-proxy/dispatch*.c driven in-process with the stub backend
 * and the PTX engine (real modules, no transport): length checks, kernel load and launch, a
 * launch that touches another zone's memory (ILLEGAL_ADDRESS, sticky, the other zone
 * untouched), module globals charged to the zone, context teardown, replies of queued ops,
 * kernel parameters through the window (and their bounds), the errno-to-CUresult mapping,
 * rate-limited refusal logs, graphs (dependency order, checks at launch, bounds), arrays and
 * texture objects (copies, another zone's and forged handles and values, bounds), virtual
 * memory management (mappings reached by copies and kernels, access, faults, quota, hostile
 * maps and reserves), IPC memory and event handles between sessions of a zone (sharing,
 * lifetime, refusals, bounds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"
#include "ptx/ptx.h"
#include "stream.h"
#include "zone.h"

#define WIN (1u << 20)

static const char ptx_src[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".global .align 4 .u32 counter = 5;\n"
    ".visible .entry store7(.param .u64 p)\n{\n"
    ".reg .b64 %rd<3>;\n.reg .b32 %r<2>;\n"
    "ld.param.u64 %rd1, [p];\ncvta.to.global.u64 %rd2, %rd1;\n"
    "mov.u32 %r1, 7;\nst.global.u32 [%rd2], %r1;\nret;\n}\n";

/* Sums the 4000 words of a 16,000-byte struct parameter (more than one ring slot of 4 KiB). */
static const char ptx_bigsum[] =
    ".version 8.1\n.target sm_90\n.address_size 64\n"
    ".visible .entry bigsum(.param .align 4 .b8 s[16000], .param .u64 out)\n{\n"
    ".reg .b32 %r<4>;\n.reg .b64 %rd<5>;\n.reg .pred %p<2>;\n"
    "ld.param.u64 %rd1, [out];\ncvta.to.global.u64 %rd1, %rd1;\nmov.b64 %rd2, s;\n"
    "mov.u32 %r1, 0;\nmov.u32 %r2, 0;\n"
    "LOOP:\ncvt.u64.u32 %rd3, %r1;\nadd.u64 %rd4, %rd2, %rd3;\nld.param.u32 %r3, [%rd4];\n"
    "add.u32 %r2, %r2, %r3;\nadd.u32 %r1, %r1, 4;\nsetp.lt.u32 %p1, %r1, 16000;\n"
    "@%p1 bra LOOP;\nst.global.u32 [%rd1], %r2;\nret;\n}\n";
#define BIGSUM_PARAMS 16008u

struct fixture {
    struct zone_registry reg;
    struct zone *za, *zb;
    struct session *a, *b;
    uint8_t *win;
};

/* One request with header flags; returns its status, or -1000 when no reply comes now (a
 * stream worker answers later, or the request goes unanswered). */
static int32_t call_flags(struct session *s, uint16_t op, uint32_t flags, const void *req,
                          size_t len, const void *tail, size_t tail_len)
{
    static uint8_t buf[IDM_MSG_BYTES_MAX]; /* one message of several slots */
    struct idm_hdr h;
    uint32_t rep_len;
    int32_t status = -1;

    memset(&h, 0, sizeof(h));
    h.op = op;
    h.flags = flags;
    h.len = (uint32_t)(len + tail_len);
    memcpy(buf, req, len);
    if (tail_len)
        memcpy(buf + len, tail, tail_len);
    int rc = dispatch_request(s, &h, buf, &rep_len, &status);
    assert_true(rc == 0 || rc == 1);
    return rc == 1 ? -1000 : status;
}

static int32_t call(struct session *s, uint16_t op, const void *req, size_t len, const void *tail,
                    size_t tail_len)
{
    return call_flags(s, op, 0, req, len, tail, tail_len);
}

#define REP(s, op) ((struct idm_rep_##op *)(s)->rbuf)

/* Zones A and B with quota bytes each. */
static int setup_quota(void **state, uint64_t quota)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    log_set_level(LOG_ERR);
    zreg_init(&f->reg, &backend_stub);
    f->win = calloc(1, WIN);
    if (f->win == NULL || zreg_add(&f->reg, "A", quota, &f->za) != 0 ||
        zreg_add(&f->reg, "B", quota, &f->zb) != 0 ||
        session_open(f->za, NULL, f->win, WIN, 4096, "a", &f->a) != 0 ||
        session_open(f->zb, NULL, f->win, WIN, 4096, "b", &f->b) != 0)
        return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_quota(state, 1u << 20);
}

static int setup_vmm(void **state)
{
    return setup_quota(state, 8 * IDM_VMM_GRANULARITY);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    session_close(f->a);
    session_close(f->b);
    zreg_unlink(&f->reg, f->za);
    zreg_unlink(&f->reg, f->zb);
    zone_unref(f->za);
    zone_unref(f->zb);
    free(f->win);
    free(f);
    return 0;
}

static idm_handle ctx_of(struct session *s)
{
    struct idm_req_PRIMARY_CTX_RETAIN q = {.device = 0};

    assert_int_equal(call(s, IDM_OP_PRIMARY_CTX_RETAIN, &q, sizeof(q), NULL, 0), 0);
    return REP(s, PRIMARY_CTX_RETAIN)->ctx;
}

static idm_dptr alloc_in(struct session *s, idm_handle ctx, uint64_t size)
{
    struct idm_req_MEM_ALLOC q = {.ctx = ctx, .size = size};

    assert_int_equal(call(s, IDM_OP_MEM_ALLOC, &q, sizeof(q), NULL, 0), 0);
    return REP(s, MEM_ALLOC)->dptr;
}

static idm_handle load_ptx_text(struct fixture *f, struct session *s, idm_handle ctx,
                                const char *src, size_t size)
{
    struct idm_req_IMAGE_BEGIN ib = {.size = size};
    struct idm_req_IMAGE_CHUNK ic;
    struct idm_req_LIBRARY_LOAD ll;

    assert_int_equal(call(s, IDM_OP_IMAGE_BEGIN, &ib, sizeof(ib), NULL, 0), 0);
    memset(&ic, 0, sizeof(ic));
    ic.image = REP(s, IMAGE_BEGIN)->image;
    ic.len = size;
    memcpy(f->win, src, size);
    assert_int_equal(call(s, IDM_OP_IMAGE_CHUNK, &ic, sizeof(ic), NULL, 0), 0);
    memset(&ll, 0, sizeof(ll));
    ll.ctx = ctx;
    ll.image = ic.image;
    assert_int_equal(call(s, IDM_OP_LIBRARY_LOAD, &ll, sizeof(ll), NULL, 0), 0);
    return REP(s, LIBRARY_LOAD)->library;
}

static idm_handle load_ptx(struct fixture *f, struct session *s, idm_handle ctx)
{
    return load_ptx_text(f, s, ctx, ptx_src, sizeof(ptx_src));
}

static int32_t launch(struct session *s, idm_handle k, idm_dptr arg)
{
    struct idm_req_LAUNCH q;

    memset(&q, 0, sizeof(q));
    q.func = k;
    q.grid[0] = q.grid[1] = q.grid[2] = 1;
    q.block[0] = q.block[1] = q.block[2] = 1;
    q.param_bytes = 8;
    return call(s, IDM_OP_LAUNCH, &q, sizeof(q), &arg, 8);
}

static void test_dispatch_short_and_unknown(void **state)
{
    struct fixture *f = *state;
    uint8_t z[512] = {0}; /* longer than every request struct (dispatch.c: REQ_STRUCT_MAX) */

    assert_int_equal(dispatch_selfcheck(), 0);
    for (uint16_t op = 1; op < IDM_OP_COUNT; op++) {
        const struct idm_op_info *info = idm_op_lookup(op);
        if (info == NULL || info->req_size == 0)
            continue;
        assert_true(info->req_size <= sizeof(z));
        assert_int_equal(call(f->a, op, z, info->req_size - 1, NULL, 0), CUDA_ERROR_INVALID_VALUE);
    }
    assert_int_equal(call(f->a, 999, z, 8, NULL, 0), CUDA_ERROR_NOT_SUPPORTED);
    assert_int_equal(call(f->a, 0, z, 8, NULL, 0), CUDA_ERROR_NOT_SUPPORTED);
}

/* What the ops' properties in idm_ops.def make the dispatch check before any handler: a name
 * tail without its NUL (refused even with a library handle that is not live), and the bulk data
 * of a copy: inline data longer than the tail or the reply, a window range shorter than len. */
static void test_dispatch_op_properties(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a);
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_LIBRARY_GET_KERNEL gk = {.library = 0x1234};
    struct idm_req_MEMCPY_HTOD wr = {.dst = d, .win_len = 0, .len = 8};
    struct idm_req_MEMCPY_DTOH rd = {.src = d, .win_len = 0, .len = 8};
    uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};

    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "abc", 3),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "abc", 4),
                     CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_HTOD, &wr, sizeof(wr), data, 7),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_HTOD, &wr, sizeof(wr), data, 8), 0);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    assert_memory_equal(f->a->rbuf + sizeof(struct idm_rep_MEMCPY_DTOH), data, 8);
    rd.len = f->a->max_reply; /* more than the reply can hold inline */
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    rd.len = 8;
    rd.win_len = 4;
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
}

static void test_dispatch_kernel_launch(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), lib, k;
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_LIBRARY_GET_KERNEL gk = {.library = 0};
    struct idm_req_LIBRARY_GET_GLOBAL gg = {.library = 0};
    struct idm_req_MEMCPY_DTOH rd = {.src = d, .win_len = 0, .len = 4};
    uint32_t v = 0;
    uint64_t used_before;

    used_before = f->za->used;
    lib = load_ptx(f, f->a, ctx);
    /* The module global lives in zone A and is charged to it. */
    assert_true(f->za->used > used_before);
    gg.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_GLOBAL, &gg, sizeof(gg), "counter", 8), 0);
    rd.src = REP(f->a, LIBRARY_GET_GLOBAL)->dptr;
    assert_int_equal(REP(f->a, LIBRARY_GET_GLOBAL)->size, 4);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    memcpy(&v, f->a->rbuf + sizeof(struct idm_rep_MEMCPY_DTOH), 4);
    assert_int_equal(v, 5);

    gk.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "nope", 5),
                     CUDA_ERROR_NOT_FOUND);
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "store7", 7), 0);
    k = REP(f->a, LIBRARY_GET_KERNEL)->kernel;
    assert_int_equal(REP(f->a, LIBRARY_GET_KERNEL)->param_count, 1);
    assert_int_equal(REP(f->a, LIBRARY_GET_KERNEL)->param_bytes, 8);
    assert_int_equal(launch(f->a, k, d + 8), 0);
    rd.src = d + 8;
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    memcpy(&v, f->a->rbuf + sizeof(struct idm_rep_MEMCPY_DTOH), 4);
    assert_int_equal(v, 7);
    /* wrong parameter size */
    {
        struct idm_req_LAUNCH q;
        memset(&q, 0, sizeof(q));
        q.func = k;
        q.grid[0] = q.grid[1] = q.grid[2] = q.block[0] = q.block[1] = q.block[2] = 1;
        q.param_bytes = 4;
        assert_int_equal(call(f->a, IDM_OP_LAUNCH, &q, sizeof(q), &d, 4), CUDA_ERROR_INVALID_VALUE);
    }
    /* unloading gives the global's memory back */
    {
        struct idm_req_LIBRARY_UNLOAD q = {.library = lib};
        assert_int_equal(call(f->a, IDM_OP_LIBRARY_UNLOAD, &q, sizeof(q), NULL, 0), 0);
        assert_int_equal(f->za->used, used_before);
        assert_int_equal(launch(f->a, k, d), CUDA_ERROR_INVALID_HANDLE);
    }
}

/* A kernel of zone A given zone B's pointer: ILLEGAL_ADDRESS, sticky in A; B unchanged. */
static void test_dispatch_launch_foreign_pointer(void **state)
{
    struct fixture *f = *state;
    idm_handle actx = ctx_of(f->a), bctx = ctx_of(f->b), lib, k;
    idm_dptr bd = alloc_in(f->b, bctx, 64);
    struct idm_req_MEMSET ms = {.dst = bd, .count = 64, .height = 1, .value = 0x33, .elem_size = 1};
    struct idm_req_MEMCPY_DTOH rd = {.src = bd, .win_len = 0, .len = 64};
    struct idm_req_CTX_SYNCHRONIZE cs = {.ctx = 0};
    struct idm_req_LIBRARY_GET_KERNEL gk;

    assert_int_equal(call(f->b, IDM_OP_MEMSET, &ms, sizeof(ms), NULL, 0), 0);
    lib = load_ptx(f, f->a, actx);
    gk.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "store7", 7), 0);
    k = REP(f->a, LIBRARY_GET_KERNEL)->kernel;
    assert_int_equal(launch(f->a, k, bd), CUDA_ERROR_ILLEGAL_ADDRESS);
    /* sticky: the next synchronisation and launch report it too */
    assert_int_equal(call(f->a, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0),
                     CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_int_equal(launch(f->a, k, bd), CUDA_ERROR_ILLEGAL_ADDRESS);
    /* zone B is unaffected */
    assert_int_equal(call(f->b, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0), 0);
    assert_int_equal(call(f->b, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(f->b->rbuf[sizeof(struct idm_rep_MEMCPY_DTOH) + i], 0x33);
    /* resetting the primary context clears the error and frees its objects */
    {
        struct idm_req_PRIMARY_CTX_RESET q = {.device = 0};
        assert_int_equal(call(f->a, IDM_OP_PRIMARY_CTX_RESET, &q, sizeof(q), NULL, 0), 0);
        assert_int_equal(f->za->used, 0);
        assert_int_equal(call(f->a, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0),
                         CUDA_ERROR_INVALID_CONTEXT);
    }
    (void)actx;
}

static void test_dispatch_ctx_destroy_releases(void **state)
{
    struct fixture *f = *state;
    struct idm_req_CTX_CREATE cc = {.flags = 0, .device = 0};
    struct idm_req_CTX_DESTROY cd;
    struct idm_req_STREAM_CREATE sc;
    struct idm_req_STREAM_SYNCHRONIZE ss;
    idm_handle ctx, stream;
    uint32_t live;

    live = f->a->ht.live;
    assert_int_equal(call(f->a, IDM_OP_CTX_CREATE, &cc, sizeof(cc), NULL, 0), 0);
    ctx = REP(f->a, CTX_CREATE)->ctx;
    alloc_in(f->a, ctx, 4096);
    memset(&sc, 0, sizeof(sc));
    sc.ctx = ctx;
    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    stream = REP(f->a, STREAM_CREATE)->stream;
    assert_int_equal(f->za->used, 4096);
    cd.ctx = ctx;
    assert_int_equal(call(f->a, IDM_OP_CTX_DESTROY, &cd, sizeof(cd), NULL, 0), 0);
    assert_int_equal(f->za->used, 0);
    assert_int_equal(f->a->ht.live, live);
    ss.stream = stream;
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0),
                     CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(call(f->a, IDM_OP_CTX_DESTROY, &cd, sizeof(cd), NULL, 0),
                     CUDA_ERROR_INVALID_CONTEXT);
}

/* A faulting kernel queued on a stream: the fault is sticky and reported by the stream's
 * synchronisation; work queued behind it does not run. */
static void test_dispatch_stream_fault(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), lib, k, st;
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_STREAM_CREATE sc;
    struct idm_req_STREAM_SYNCHRONIZE ss;
    struct idm_req_LIBRARY_GET_KERNEL gk;
    struct idm_req_LAUNCH q;
    struct idm_req_MEMSET ms;
    struct idm_req_MEMCPY_DTOH rd = {.src = d, .win_len = 0, .len = 4};

    lib = load_ptx(f, f->a, ctx);
    gk.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "store7", 7), 0);
    k = REP(f->a, LIBRARY_GET_KERNEL)->kernel;
    memset(&sc, 0, sizeof(sc));
    sc.ctx = ctx;
    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    st = REP(f->a, STREAM_CREATE)->stream;
    memset(&q, 0, sizeof(q));
    q.func = k;
    q.stream = st;
    q.grid[0] = q.grid[1] = q.grid[2] = q.block[0] = q.block[1] = q.block[2] = 1;
    q.param_bytes = 8;
    {
        idm_dptr bad = d + 4096; /* outside every allocation */
        assert_int_equal(call(f->a, IDM_OP_LAUNCH, &q, sizeof(q), &bad, 8), -1000);
    }
    memset(&ms, 0, sizeof(ms));
    ms.dst = d;
    ms.stream = st;
    ms.count = 4;
    ms.height = 1;
    ms.value = 0x99;
    ms.elem_size = 1;
    assert_int_equal(call(f->a, IDM_OP_MEMSET, &ms, sizeof(ms), NULL, 0), -1000);
    ss.stream = st;
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0),
                     CUDA_ERROR_ILLEGAL_ADDRESS);
    /* the memset behind the fault did not run */
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0),
                     CUDA_ERROR_ILLEGAL_ADDRESS);
    {
        uint8_t buf[4];
        long i = atab_find(&f->a->at, d, 4);
        assert_true(i >= 0);
        assert_int_equal(backend_stub.memcpy_dtoh(f->a->bz, NULL, buf, f->a->at.v[i].baddr, 4), 0);
        assert_int_equal(buf[0], 0);
    }
    /* zone B knows nothing of it */
    {
        struct idm_req_CTX_SYNCHRONIZE cs = {.ctx = 0};
        ctx_of(f->b);
        assert_int_equal(call(f->b, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0), 0);
    }
}

/* Streams cost a thread each: a client gets at most SESSION_MAX_STREAMS of them. */
static void test_dispatch_stream_limit(void **state)
{
    struct fixture *f = *state;
    struct idm_req_STREAM_CREATE sc;
    struct idm_req_STREAM_DESTROY sd;

    memset(&sc, 0, sizeof(sc));
    sc.ctx = ctx_of(f->a);
    for (int i = 0; i < SESSION_MAX_STREAMS; i++)
        assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    sd.stream = REP(f->a, STREAM_CREATE)->stream;
    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0),
                     CUDA_ERROR_OUT_OF_MEMORY);
    assert_int_equal(call(f->a, IDM_OP_STREAM_DESTROY, &sd, sizeof(sd), NULL, 0), 0);
    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    /* zone B is not limited by A's streams */
    sc.ctx = ctx_of(f->b);
    assert_int_equal(call(f->b, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
}

/* Regression: cluster dimensions whose product wraps to 0 in 64 bits once divided by zero. */
static void test_dispatch_occupancy_cluster_overflow(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), lib, k;
    struct idm_req_LIBRARY_GET_KERNEL gk;
    struct idm_req_OCCUPANCY q;

    lib = load_ptx(f, f->a, ctx);
    gk.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "store7", 7), 0);
    k = REP(f->a, LIBRARY_GET_KERNEL)->kernel;
    memset(&q, 0, sizeof(q));
    q.func = k;
    q.which = 2;
    q.block_size = 32;
    q.cluster_dim[0] = 1u << 31;
    q.cluster_dim[1] = 1u << 31;
    q.cluster_dim[2] = 4;
    assert_int_equal(call(f->a, IDM_OP_OCCUPANCY, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_CLUSTER_SIZE);
    q.cluster_dim[0] = 2;
    q.cluster_dim[1] = 2;
    q.cluster_dim[2] = 1;
    assert_int_equal(call(f->a, IDM_OP_OCCUPANCY, &q, sizeof(q), NULL, 0), 0);
    assert_int_equal(REP(f->a, OCCUPANCY)->value, 33);
    q.which = 0;
    assert_int_equal(call(f->a, IDM_OP_OCCUPANCY, &q, sizeof(q), NULL, 0), 0);
    assert_true(REP(f->a, OCCUPANCY)->value >= 1);
    q.block_size = 0;
    assert_int_equal(call(f->a, IDM_OP_OCCUPANCY, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    q.which = 1;
    q.block_size = 32;
    q.num_blocks = 0;
    assert_int_equal(call(f->a, IDM_OP_OCCUPANCY, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
}

/* Regression: C++ template kernels (Thrust, CUB) have mangled names longer than 256 bytes;
 * the proxy refused them with NOT_FOUND. */
static void test_dispatch_long_kernel_name(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), lib;
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_LIBRARY_GET_KERNEL gk;
    struct idm_req_MEMCPY_DTOH rd = {.src = d, .win_len = 0, .len = 4};
    char name[301], src[1024];
    uint32_t v = 0;
    int n;

    memset(name, 'k', sizeof(name) - 1);
    name[sizeof(name) - 1] = 0;
    n = snprintf(src, sizeof(src),
                 ".version 8.0\n.target sm_90\n.address_size 64\n"
                 ".visible .entry %s(.param .u64 p)\n{\n.reg .b64 %%rd<3>;\n.reg .b32 %%r<2>;\n"
                 "ld.param.u64 %%rd1, [p];\ncvta.to.global.u64 %%rd2, %%rd1;\n"
                 "mov.u32 %%r1, 9;\nst.global.u32 [%%rd2], %%r1;\nret;\n}\n",
                 name);
    assert_true(n > 0 && (size_t)n < sizeof(src));
    lib = load_ptx_text(f, f->a, ctx, src, (size_t)n + 1);
    memset(&gk, 0, sizeof(gk));
    gk.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), name, sizeof(name)),
                     0);
    assert_int_equal(launch(f->a, REP(f->a, LIBRARY_GET_KERNEL)->kernel, d), 0);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    memcpy(&v, f->a->rbuf + sizeof(struct idm_rep_MEMCPY_DTOH), 4);
    assert_int_equal(v, 9);
}

/* LIBRARY_KERNEL_NAME lists a library's kernels by index (cuLibraryEnumerateKernels, cuFFT's
 * TOOLS_MODULE walk): the one kernel's name, then the index past it and another zone's library
 * refused. */
static void test_dispatch_library_kernel_name(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), lib = load_ptx(f, f->a, ctx);
    struct idm_req_LIBRARY_KERNEL_NAME q = {.library = lib, .index = 0};
    const char *name = (const char *)f->a->rbuf + sizeof(struct idm_rep_LIBRARY_KERNEL_NAME);

    assert_int_equal(call(f->a, IDM_OP_LIBRARY_KERNEL_NAME, &q, sizeof(q), NULL, 0), 0);
    assert_string_equal(name, "store7");
    q.index = 1;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_KERNEL_NAME, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    q.index = UINT32_MAX;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_KERNEL_NAME, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    q.index = 0;
    assert_int_equal(call(f->b, IDM_OP_LIBRARY_KERNEL_NAME, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_HANDLE);
}

/* Every CUlimit of CUDA 13 can be queried (cuBLAS asks for CU_LIMIT_CIG_ENABLED); the
 * query-only ones cannot be set. */
static void test_dispatch_ctx_limits(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a);
    struct idm_req_CTX_GET_LIMIT g = {.ctx = ctx};
    struct idm_req_CTX_SET_LIMIT st = {.ctx = ctx, .value = 1};

    for (uint32_t l = 0; l < CU_LIMIT_MAX; l++) {
        g.limit = l;
        assert_int_equal(call(f->a, IDM_OP_CTX_GET_LIMIT, &g, sizeof(g), NULL, 0), 0);
    }
    g.limit = CU_LIMIT_CIG_ENABLED;
    assert_int_equal(call(f->a, IDM_OP_CTX_GET_LIMIT, &g, sizeof(g), NULL, 0), 0);
    assert_int_equal(REP(f->a, CTX_GET_LIMIT)->value, 0);
    g.limit = CU_LIMIT_MAX;
    assert_int_equal(call(f->a, IDM_OP_CTX_GET_LIMIT, &g, sizeof(g), NULL, 0),
                     CUDA_ERROR_UNSUPPORTED_LIMIT);
    st.limit = CU_LIMIT_CIG_ENABLED;
    assert_int_equal(call(f->a, IDM_OP_CTX_SET_LIMIT, &st, sizeof(st), NULL, 0),
                     CUDA_ERROR_UNSUPPORTED_LIMIT);
    st.limit = CU_LIMIT_STACK_SIZE;
    st.value = 4096;
    assert_int_equal(call(f->a, IDM_OP_CTX_SET_LIMIT, &st, sizeof(st), NULL, 0), 0);
    g.limit = CU_LIMIT_STACK_SIZE;
    assert_int_equal(call(f->a, IDM_OP_CTX_GET_LIMIT, &g, sizeof(g), NULL, 0), 0);
    assert_int_equal(REP(f->a, CTX_GET_LIMIT)->value, 4096);
}

/* A kernel that never ends fails with LAUNCH_FAILED once the watchdog fires, in its own zone
 * only (gpu_proxy sets the watchdog at start-up; --kernel-watchdog). */
static void test_dispatch_watchdog_ends_endless_kernel(void **state)
{
    static const char spin_src[] = ".version 8.0\n.target sm_90\n.address_size 64\n"
                                   ".visible .entry spin(.param .u64 p)\n{\n"
                                   "$L_top:\nbra.uni $L_top;\n}\n";
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), bctx = ctx_of(f->b), lib;
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_LIBRARY_GET_KERNEL gk;
    struct idm_req_CTX_SYNCHRONIZE cs = {.ctx = 0};
    int32_t rc;

    (void)bctx;
    ptx_set_watchdog(1000000);
    lib = load_ptx_text(f, f->a, ctx, spin_src, sizeof(spin_src));
    memset(&gk, 0, sizeof(gk));
    gk.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "spin", 5), 0);
    rc = launch(f->a, REP(f->a, LIBRARY_GET_KERNEL)->kernel, d);
    assert_true(rc == CUDA_ERROR_LAUNCH_FAILED || rc == 0);
    assert_int_equal(call(f->a, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0),
                     CUDA_ERROR_LAUNCH_FAILED);
    assert_int_equal(call(f->b, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0), 0);
    ptx_set_watchdog(0);
}

/* What a stream worker sent for a queued request. */
struct captured {
    uint16_t op;
    int32_t status;
    uint32_t len;
    uint8_t payload[64];
};

static int capture_reply(void *ctx, const struct idm_hdr *req, int32_t status,
                         const void *payload, uint32_t len)
{
    struct captured *c = ctx;

    c->op = req->op;
    c->status = status;
    c->len = len;
    memcpy(c->payload, payload, len < sizeof(c->payload) ? len : sizeof(c->payload));
    return 0;
}

/* A DtoH copy into the reply answers the same way inline (default stream) and from a stream's
 * worker: both go through the one issue function of the op. */
static void test_dispatch_stream_reply_matches_inline(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a);
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_MEMSET ms = {.dst = d, .count = 64, .height = 1, .value = 0x5A,
                                .elem_size = 1};
    struct idm_req_STREAM_CREATE sc = {.ctx = ctx};
    struct idm_req_STREAM_SYNCHRONIZE ss;
    struct idm_req_MEMCPY_DTOH rd = {.src = d + 8, .len = 16};
    struct captured c = {0};
    struct idm_rep_MEMCPY_DTOH rep;

    assert_int_equal(call(f->a, IDM_OP_MEMSET, &ms, sizeof(ms), NULL, 0), 0);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    assert_int_equal(REP(f->a, MEMCPY_DTOH)->len, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(f->a->rbuf[sizeof(rep) + i], 0x5A);

    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    rd.stream = ss.stream = REP(f->a, STREAM_CREATE)->stream;
    f->a->reply_ctx = &c;
    f->a->send_reply = capture_reply;
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), -1000);
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0), 0);
    f->a->send_reply = NULL;
    assert_int_equal(c.op, IDM_OP_MEMCPY_DTOH);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.len, sizeof(rep) + 16);
    memcpy(&rep, c.payload, sizeof(rep));
    assert_int_equal(rep.len, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(c.payload[sizeof(rep) + i], 0x5A);
}

/* Keeps a whole reply (up to a 64 KiB DtoH inline and its fixed struct). */
struct captured_big {
    int32_t status;
    uint32_t len;
    uint8_t payload[IDM_MSG_BYTES_MAX];
};

static int capture_big(void *ctx, const struct idm_hdr *req, int32_t status, const void *payload,
                       uint32_t len)
{
    struct captured_big *c = ctx;

    (void)req;
    c->status = status;
    c->len = len;
    memcpy(c->payload, payload, len < sizeof(c->payload) ? len : sizeof(c->payload));
    return 0;
}

/* With a connection whose messages span several slots (the default geometry's 73,696 payload
 * bytes), 64 KiB travel inline both ways: an HtoD in the request, a DtoH in the reply, on the
 * default stream and from a stream's worker (whose reply buffer is as large); a DtoH inline of
 * one byte more than the reply holds is refused, the session stays usable. */
static void test_dispatch_dtoh_inline_multislot(void **state)
{
    struct fixture *f = *state;
    const uint32_t max = IDM_MSG_BYTES_MAX - sizeof(struct idm_hdr), n = 65536;
    struct session *s;
    static uint8_t data[65536];
    static struct captured_big c;
    struct idm_rep_MEMCPY_DTOH rep;

    assert_int_equal(session_open(f->za, NULL, f->win, WIN, max, "big", &s), 0);
    idm_handle ctx = ctx_of(s);
    idm_dptr d = alloc_in(s, ctx, n);
    for (uint32_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 13 + 1);
    struct idm_req_MEMCPY_HTOD wr = {.dst = d, .len = n};
    struct idm_req_MEMCPY_DTOH rd = {.src = d, .len = n};
    assert_int_equal(call(s, IDM_OP_MEMCPY_HTOD, &wr, sizeof(wr), data, n), 0);
    assert_int_equal(call(s, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    assert_int_equal(REP(s, MEMCPY_DTOH)->len, n);
    assert_memory_equal(s->rbuf + sizeof(rep), data, n);

    struct idm_req_STREAM_CREATE sc = {.ctx = ctx};
    assert_int_equal(call(s, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    struct idm_req_STREAM_SYNCHRONIZE ss = {.stream = REP(s, STREAM_CREATE)->stream};
    rd.stream = ss.stream;
    s->reply_ctx = &c;
    s->send_reply = capture_big;
    assert_int_equal(call(s, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), -1000);
    assert_int_equal(call(s, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0), 0);
    s->send_reply = NULL;
    assert_int_equal(c.status, 0);
    assert_int_equal(c.len, sizeof(rep) + n);
    assert_memory_equal(c.payload + sizeof(rep), data, n);

    /* hostile: more than the reply can carry inline, and more than the allocation */
    rd.stream = 0;
    rd.len = max - sizeof(rep) + 1;
    assert_int_equal(call(s, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    rd.len = UINT64_MAX;
    assert_int_equal(call(s, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    rd.len = 16;
    assert_int_equal(call(s, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    assert_memory_equal(s->rbuf + sizeof(rep), data, 16);
    struct session *none = NULL;
    assert_int_equal(session_open(f->za, NULL, f->win, WIN, max + 1, "too-big", &none), -EINVAL);
    session_close(s);
}

/* Counts the replies stream workers send. */
static int count_reply(void *ctx, const struct idm_hdr *req, int32_t status, const void *payload,
                       uint32_t len)
{
    (void)req;
    (void)status;
    (void)payload;
    (void)len;
    (*(int *)ctx)++;
    return 0;
}

/* The window release mark: unanswered HtoD copies through window ranges get no reply; the mark
 * (the number before the oldest request still holding its range) moves only once the ops have
 * run, out of order across streams; a refused request's range is released at once and its
 * failure latched; more requests than SESSION_WIN_HOLDS wait for the worker's own streams. */
static void test_dispatch_release_mark(void **state)
{
    struct fixture *f = *state;
    const uint32_t nr = IDM_F_ASYNC | IDM_F_NOREPLY;
    idm_handle ctx = ctx_of(f->a), sa, sb;
    idm_dptr d = alloc_in(f->a, ctx, 8192);
    struct idm_req_STREAM_CREATE sc = {.ctx = ctx};
    struct idm_req_STREAM_SYNCHRONIZE ss;
    struct idm_req_MEMCPY_HTOD wr = {.dst = d, .win_off = 4096, .win_len = 4096, .len = 4096};
    uint64_t idx;
    int replies = 0;

    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    sa = REP(f->a, STREAM_CREATE)->stream;
    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    sb = REP(f->a, STREAM_CREATE)->stream;
    memset(f->win + 4096, 0x42, 4096);
    f->a->reply_ctx = &replies;
    f->a->send_reply = count_reply;
    /* the mark's rule, on its own: released out of order, it moves past the oldest held */
    session_win_hold(f->a, 101);
    session_win_hold(f->a, 102);
    session_win_release(f->a, 102);
    assert_int_equal(f->a->win_mark, 100);
    session_win_release(f->a, 101);
    assert_int_equal(f->a->win_mark, 102);
    idx = 102;
    /* through the dispatch: one copy on each stream, no reply; both released once run */
    f->a->rx_idx = ++idx;
    wr.stream = sa;
    assert_int_equal(call_flags(f->a, IDM_OP_MEMCPY_HTOD, nr, &wr, sizeof(wr), NULL, 0), -1000);
    f->a->rx_idx = ++idx;
    wr.stream = sb;
    assert_int_equal(call_flags(f->a, IDM_OP_MEMCPY_HTOD, nr, &wr, sizeof(wr), NULL, 0), -1000);
    ss.stream = sb;
    f->a->rx_idx = ++idx;
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0), 0);
    assert_true(f->a->win_mark == 102 || f->a->win_mark == 104); /* 103 may not have run */
    ss.stream = sa;
    f->a->rx_idx = ++idx;
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0), 0);
    assert_int_equal(f->a->win_mark, 104);
    /* hostile: a range outside the window, refused, released at once, latched on sa */
    wr.win_off = WIN - 100;
    wr.stream = sa;
    f->a->rx_idx = ++idx;
    assert_int_equal(call_flags(f->a, IDM_OP_MEMCPY_HTOD, nr, &wr, sizeof(wr), NULL, 0), -1000);
    assert_int_equal(f->a->win_mark, idx);
    f->a->rx_idx = ++idx;
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    /* more than SESSION_WIN_HOLDS queued: the dispatch waits for its own stream */
    wr.win_off = 4096;
    for (unsigned i = 0; i < SESSION_WIN_HOLDS + 50; i++) {
        f->a->rx_idx = ++idx;
        assert_int_equal(call_flags(f->a, IDM_OP_MEMCPY_HTOD, nr, &wr, sizeof(wr), NULL, 0),
                         -1000);
    }
    assert_true(f->a->win_mark >= idx - SESSION_WIN_HOLDS);
    f->a->rx_idx = ++idx;
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0), 0);
    assert_int_equal(f->a->win_mark, idx - 1);
    f->a->send_reply = NULL;
    assert_int_equal(replies, 0);
    {
        uint8_t buf[4];
        long i = atab_find(&f->a->at, d, 4);
        assert_true(i >= 0);
        assert_int_equal(backend_stub.memcpy_dtoh(f->a->bz, NULL, buf, f->a->at.v[i].baddr, 4), 0);
        assert_int_equal(buf[0], 0x42);
    }
}

/* Unanswered requests (IDM_F_NOREPLY): no reply, inline or from a stream worker, even when they
 * fail; a failure is latched on its own stream (the default stream's on the session) and
 * returned once by the next synchronisation there; the flag is ignored where the op needs an
 * answer; a stream's bounded queue makes the dispatch wait for room, never hang. */
static void test_dispatch_noreply_latched(void **state)
{
    struct fixture *f = *state;
    const uint32_t nr = IDM_F_ASYNC | IDM_F_NOREPLY;
    idm_handle ctx = ctx_of(f->a), sa, sb;
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_STREAM_CREATE sc = {.ctx = ctx};
    struct idm_req_STREAM_SYNCHRONIZE ss;
    struct idm_req_CTX_SYNCHRONIZE cs = {.ctx = ctx};
    struct idm_req_MEMSET ms = {.count = 4, .height = 1, .value = 0x77, .elem_size = 1};
    struct idm_req_MEM_GET_INFO mi = {.ctx = ctx};
    int replies = 0;

    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    sa = REP(f->a, STREAM_CREATE)->stream;
    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    sb = REP(f->a, STREAM_CREATE)->stream;
    f->a->reply_ctx = &replies;
    f->a->send_reply = count_reply;
    ms.dst = d + 4096; /* outside every allocation: refused */
    ms.stream = sa;
    assert_int_equal(call_flags(f->a, IDM_OP_MEMSET, nr, &ms, sizeof(ms), NULL, 0), -1000);
    ms.stream = 0;
    assert_int_equal(call_flags(f->a, IDM_OP_MEMSET, nr, &ms, sizeof(ms), NULL, 0), -1000);
    ms.dst = d;
    ms.stream = sa;
    for (unsigned i = 0; i < STREAM_QUEUE_MAX + 16; i++)
        assert_int_equal(call_flags(f->a, IDM_OP_MEMSET, nr, &ms, sizeof(ms), NULL, 0), -1000);
    /* the other stream's synchronisation does not see sa's failure */
    ss.stream = sb;
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0), 0);
    ss.stream = sa;
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0), 0);
    /* the default stream's failure, at the context's synchronisation, once */
    assert_int_equal(call(f->a, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(call(f->a, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0), 0);
    assert_int_equal(replies, 0);
    /* a synchronous op is answered whatever its flags say */
    assert_int_equal(call_flags(f->a, IDM_OP_MEM_GET_INFO, nr, &mi, sizeof(mi), NULL, 0), 0);
    f->a->send_reply = NULL;
    {
        uint8_t buf[4];
        long i = atab_find(&f->a->at, d, 4);
        assert_true(i >= 0);
        assert_int_equal(backend_stub.memcpy_dtoh(f->a->bz, NULL, buf, f->a->at.v[i].baddr, 4), 0);
        assert_int_equal(buf[3], 0x77);
    }
}

/* The one mapping of internal -errno values to CUresult. */
static void test_dispatch_errno_mapping(void **state)
{
    (void)state;
    assert_int_equal(cu_from_errno(0), CUDA_SUCCESS);
    assert_int_equal(cu_from_errno(-ENOMEM), CUDA_ERROR_OUT_OF_MEMORY);
    assert_int_equal(cu_from_errno(-ENOSPC), CUDA_ERROR_OUT_OF_MEMORY);
    assert_int_equal(cu_from_errno(-EAGAIN), CUDA_ERROR_OUT_OF_MEMORY);
    assert_int_equal(cu_from_errno(-EINVAL), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(cu_from_errno(-ENOENT), CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(cu_from_errno(-EXDEV), CUDA_ERROR_UNKNOWN);
}

/* Sends stderr (where the log goes) to a temporary file until log_capture_end, which reads it
 * into buf (NUL-terminated) and restores stderr; the thread's token bucket starts full. */
struct log_capture {
    int fd, saved;
};

static void log_capture_begin(struct log_capture *lc)
{
    char path[] = "/tmp/test_dispatch_log_XXXXXX";

    lc->fd = mkstemp(path);
    lc->saved = dup(STDERR_FILENO);
    assert_true(lc->fd >= 0 && lc->saved >= 0);
    unlink(path);
    memset(&log_thread_bucket, 0, sizeof(log_thread_bucket));
    log_set_level(LOG_WARN);
    assert_int_equal(dup2(lc->fd, STDERR_FILENO), STDERR_FILENO);
}

static void log_capture_end(struct log_capture *lc, char *buf, size_t cap)
{
    ssize_t n;

    dup2(lc->saved, STDERR_FILENO);
    close(lc->saved);
    log_set_level(LOG_ERR);
    n = pread(lc->fd, buf, cap - 1, 0);
    close(lc->fd);
    assert_true(n >= 0);
    buf[n] = 0;
}

/* A kernel's parameters that do not fit one slot come through the window range the request
 * names: copied out before the launch uses them (a queued launch runs with what the window held
 * when it was sent, whatever the client writes there afterwards); a range outside the window, a
 * window range shorter than the parameters, a missing inline tail and more than 32,764 bytes
 * are refused with INVALID_VALUE, the last with its reason in the log. */
static void test_dispatch_launch_params_window(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), lib, k;
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_LIBRARY_GET_KERNEL gk;
    struct idm_req_STREAM_CREATE sc = {.ctx = ctx};
    struct idm_req_STREAM_SYNCHRONIZE ss;
    struct idm_req_MEMCPY_DTOH rd = {.src = d, .win_len = 0, .len = 4};
    struct idm_req_LAUNCH q;
    uint32_t words[BIGSUM_PARAMS / 4], want = 0, got;
    struct log_capture lc;
    char log[4096];

    lib = load_ptx_text(f, f->a, ctx, ptx_bigsum, sizeof(ptx_bigsum));
    gk.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "bigsum", 7), 0);
    k = REP(f->a, LIBRARY_GET_KERNEL)->kernel;
    assert_int_equal(REP(f->a, LIBRARY_GET_KERNEL)->param_bytes, BIGSUM_PARAMS);
    for (uint32_t i = 0; i < 4000; i++)
        want += words[i] = i * 3 + 1;
    memcpy(&words[4000], &d, 8);
    memset(&q, 0, sizeof(q));
    q.func = k;
    q.grid[0] = q.grid[1] = q.grid[2] = q.block[0] = q.block[1] = q.block[2] = 1;
    q.win_off = 8192;
    q.win_len = q.param_bytes = BIGSUM_PARAMS;
    memcpy(f->win + q.win_off, words, BIGSUM_PARAMS);
    assert_int_equal(call(f->a, IDM_OP_LAUNCH, &q, sizeof(q), NULL, 0), 0);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    memcpy(&got, f->a->rbuf + sizeof(struct idm_rep_MEMCPY_DTOH), 4);
    assert_int_equal(got, want);

    /* queued: the window is overwritten as soon as the request is in */
    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    q.stream = ss.stream = REP(f->a, STREAM_CREATE)->stream;
    want = 0;
    for (uint32_t i = 0; i < 4000; i++)
        want += words[i] = i ^ 0x5555u;
    memcpy(f->win + q.win_off, words, BIGSUM_PARAMS);
    assert_int_equal(call(f->a, IDM_OP_LAUNCH, &q, sizeof(q), NULL, 0), -1000);
    memset(f->win + q.win_off, 0xEE, BIGSUM_PARAMS);
    assert_int_equal(call(f->a, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0), 0);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    memcpy(&got, f->a->rbuf + sizeof(struct idm_rep_MEMCPY_DTOH), 4);
    assert_int_equal(got, want);

    q.stream = 0;
    q.win_off = WIN - 4096; /* runs past the end of the window */
    assert_int_equal(call(f->a, IDM_OP_LAUNCH, &q, sizeof(q), NULL, 0), CUDA_ERROR_INVALID_VALUE);
    q.win_off = UINT64_MAX - 100; /* wraps around */
    assert_int_equal(call(f->a, IDM_OP_LAUNCH, &q, sizeof(q), NULL, 0), CUDA_ERROR_INVALID_VALUE);
    q.win_off = 0;
    q.win_len = 100; /* shorter than the parameters */
    assert_int_equal(call(f->a, IDM_OP_LAUNCH, &q, sizeof(q), NULL, 0), CUDA_ERROR_INVALID_VALUE);
    q.win_len = 0; /* inline, but the tail holds 4 bytes */
    assert_int_equal(call(f->a, IDM_OP_LAUNCH, &q, sizeof(q), words, 4), CUDA_ERROR_INVALID_VALUE);
    log_capture_begin(&lc);
    q.win_len = q.param_bytes = IDM_PARAM_BYTES_MAX + 1;
    assert_int_equal(call(f->a, IDM_OP_LAUNCH, &q, sizeof(q), NULL, 0), CUDA_ERROR_INVALID_VALUE);
    log_capture_end(&lc, log, sizeof(log));
    assert_non_null(strstr(log, "LAUNCH refused: kernel bigsum with 32765 parameter bytes (at "
                                "most 32764)"));
}

/* Refusals are logged with the check that failed, through a token bucket: a flood of bad
 * requests writes at most a burst of lines, and the next line after a pause counts the rest. */
static void test_dispatch_refusal_log_rate_limited(void **state)
{
    struct fixture *f = *state;
    struct idm_req_EVENT_QUERY eq = {.event = 0x3300000100000007ull};
    struct log_capture lc;
    char buf[16384];
    int lines = 0;

    log_capture_begin(&lc);
    for (int i = 0; i < 200; i++)
        assert_int_equal(call(f->a, IDM_OP_EVENT_QUERY, &eq, sizeof(eq), NULL, 0),
                         CUDA_ERROR_INVALID_HANDLE);
    usleep(2 * 1000000 / LOG_LIMIT_RATE);
    assert_int_equal(call(f->a, IDM_OP_EVENT_QUERY, &eq, sizeof(eq), NULL, 0),
                     CUDA_ERROR_INVALID_HANDLE);
    log_capture_end(&lc, buf, sizeof(buf));
    assert_true(buf[0] != 0);
    for (char *l = buf; (l = strchr(l, '\n')) != NULL; l++)
        lines++;
    assert_true(lines > 1 && lines <= LOG_LIMIT_BURST + 2);
    assert_non_null(strstr(buf, "zone=A a: EVENT_QUERY refused: event handle 0x3300000100000007 "
                                "is not live in this session"));
    assert_non_null(strstr(buf, "similar lines dropped)"));
}

/* ---- graphs (dispatch_graph.c) ---- */

static idm_handle graph_new(struct session *s, idm_handle ctx)
{
    struct idm_req_GRAPH_CREATE q = {.ctx = ctx};

    assert_int_equal(call(s, IDM_OP_GRAPH_CREATE, &q, sizeof(q), NULL, 0), 0);
    return REP(s, GRAPH_CREATE)->graph;
}

static int32_t graph_node(struct session *s, struct idm_req_GRAPH_ADD_NODE *q, idm_handle g,
                          const void *params, uint32_t *node)
{
    int32_t rc;

    q->graph = g;
    rc = call(s, IDM_OP_GRAPH_ADD_NODE, q, sizeof(*q), params, q->param_bytes);
    if (rc == 0 && node)
        *node = REP(s, GRAPH_ADD_NODE)->node;
    return rc;
}

static int32_t graph_edge(struct session *s, idm_handle g, uint32_t from, uint32_t to)
{
    struct idm_req_GRAPH_ADD_DEPS q;

    memset(&q, 0, sizeof(q));
    q.graph = g;
    q.count = 1;
    q.from[0] = from;
    q.to[0] = to;
    return call(s, IDM_OP_GRAPH_ADD_DEPS, &q, sizeof(q), NULL, 0);
}

static uint32_t read_u32(struct session *s, idm_dptr d)
{
    struct idm_req_MEMCPY_DTOH rd = {.src = d, .win_len = 0, .len = 4};
    uint32_t v;

    assert_int_equal(call(s, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    memcpy(&v, s->rbuf + sizeof(struct idm_rep_MEMCPY_DTOH), 4);
    return v;
}

/* Fetches texel (2, 1) of the 2D texture object t into out[0]. */
static const char ptx_fetch[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".visible .entry fetch(.param .u64 out, .param .u64 t)\n{\n"
    ".reg .b64 %rd<3>;\n.reg .f32 %f<5>;\n"
    "ld.param.u64 %rd1, [out];\nld.param.u64 %rd2, [t];\ncvta.to.global.u64 %rd1, %rd1;\n"
    "mov.f32 %f1, 0f40200000;\nmov.f32 %f2, 0f3FC00000;\n"
    "tex.2d.v4.f32.f32 {%f1, %f2, %f3, %f4}, [%rd2, {%f1, %f2}];\n"
    "st.global.f32 [%rd1], %f1;\nret;\n}\n";

static idm_handle array_new(struct session *s, idm_handle ctx, uint64_t w, uint64_t h)
{
    struct idm_req_ARRAY_CREATE q = {.ctx = ctx, .width = w, .height = h,
                                     .format = CU_AD_FORMAT_FLOAT, .channels = 1};

    assert_int_equal(call(s, IDM_OP_ARRAY_CREATE, &q, sizeof(q), NULL, 0), 0);
    return REP(s, ARRAY_CREATE)->array;
}

/* A box of an array as a 3D copy request (host side: the other). */
static struct idm_req_MEMCPY_3D array_box(idm_handle a, int to_array, uint64_t x, uint64_t y,
                                         uint64_t wb, uint64_t h)
{
    struct idm_req_MEMCPY_3D q;

    memset(&q, 0, sizeof(q));
    q.width_bytes = wb;
    q.height = h;
    q.depth = 1;
    q.len = wb * h;
    if (to_array) {
        q.dst_kind = IDM_SIDE_ARRAY, q.dst = a, q.dst_x = x, q.dst_y = y;
        q.src_kind = IDM_SIDE_HOST;
    } else {
        q.src_kind = IDM_SIDE_ARRAY, q.src = a, q.src_x = x, q.src_y = y;
        q.dst_kind = IDM_SIDE_HOST;
    }
    return q;
}

static int32_t fetch_launch(struct session *s, idm_handle k, idm_dptr out, uint64_t tex)
{
    struct idm_req_LAUNCH q;
    uint64_t params[2] = {out, tex};

    memset(&q, 0, sizeof(q));
    q.func = k;
    q.grid[0] = q.grid[1] = q.grid[2] = 1;
    q.block[0] = q.block[1] = q.block[2] = 1;
    q.param_bytes = sizeof(params);
    return call(s, IDM_OP_LAUNCH, &q, sizeof(q), params, sizeof(params));
}

/* Arrays and texture objects: data in and out through array copies, the quota charged and
 * given back; another zone's array handles and texture values, forged ones and boxes outside
 * the array are refused, and a kernel given another zone's texture value faults. */
static void test_dispatch_array_texture_isolation(void **state)
{
    struct fixture *f = *state;
    idm_handle actx = ctx_of(f->a), bctx = ctx_of(f->b), arr, lib, kb, ka;
    float in[4][8], back[4][8];
    struct idm_req_LIBRARY_GET_KERNEL gk;
    struct idm_req_MEMCPY_3D q;

    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 8; x++)
            in[y][x] = (float)(y * 8 + x) + 0.5f;
    arr = array_new(f->a, actx, 8, 4);
    assert_int_equal(f->za->used, sizeof(in));
    q = array_box(arr, 1, 0, 0, sizeof(in[0]), 4);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_3D_IN, &q, sizeof(q), in, sizeof(in)), 0);
    q = array_box(arr, 0, 0, 0, sizeof(in[0]), 4);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_3D_OUT, &q, sizeof(q), NULL, 0), 0);
    memcpy(back, f->a->rbuf + sizeof(struct idm_rep_MEMCPY_3D_OUT), sizeof(back));
    assert_memory_equal(in, back, sizeof(in));
    /* zone B: A's handle is not B's; a forged generation is nobody's */
    assert_int_equal(call(f->b, IDM_OP_MEMCPY_3D_OUT, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_HANDLE);
    q.src ^= 1ull << 32;
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_3D_OUT, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_HANDLE);
    /* a box past the row's end, a misaligned one, a host size that does not match */
    q = array_box(arr, 0, 4, 0, sizeof(in[0]), 1);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_3D_OUT, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    q = array_box(arr, 0, 2, 0, 8, 1);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_3D_OUT, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    q = array_box(arr, 1, 0, 3, 8, 1);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_3D_IN, &q, sizeof(q), in, 4),
                     CUDA_ERROR_INVALID_VALUE);
    /* a texture object of A; B can neither name its array nor use, query or destroy it */
    struct idm_req_TEX_CREATE tc;
    memset(&tc, 0, sizeof(tc));
    tc.ctx = actx;
    tc.res_type = CU_RESOURCE_TYPE_ARRAY;
    tc.array = arr;
    tc.address_mode[0] = tc.address_mode[1] = CU_TR_ADDRESS_MODE_CLAMP;
    assert_int_equal(call(f->a, IDM_OP_TEX_CREATE, &tc, sizeof(tc), NULL, 0), 0);
    uint64_t tex = REP(f->a, TEX_CREATE)->value;
    tc.ctx = bctx;
    assert_int_equal(call(f->b, IDM_OP_TEX_CREATE, &tc, sizeof(tc), NULL, 0),
                     CUDA_ERROR_INVALID_HANDLE);
    struct idm_req_TEX_GET_DESC td = {.value = tex};
    assert_int_equal(call(f->b, IDM_OP_TEX_GET_DESC, &td, sizeof(td), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(call(f->a, IDM_OP_TEX_GET_DESC, &td, sizeof(td), NULL, 0), 0);
    assert_true(REP(f->a, TEX_GET_DESC)->array == arr);
    struct idm_req_TEX_DESTROY tdd = {.value = tex};
    assert_int_equal(call(f->b, IDM_OP_TEX_DESTROY, &tdd, sizeof(tdd), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    /* the kernel in A reads texel (2, 1); in B the same value faults, as a forged one in A */
    idm_dptr aout = alloc_in(f->a, actx, 4), bout = alloc_in(f->b, bctx, 4);
    lib = load_ptx_text(f, f->a, actx, ptx_fetch, sizeof(ptx_fetch));
    gk.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "fetch", 6), 0);
    ka = REP(f->a, LIBRARY_GET_KERNEL)->kernel;
    lib = load_ptx_text(f, f->b, bctx, ptx_fetch, sizeof(ptx_fetch));
    gk.library = lib;
    assert_int_equal(call(f->b, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "fetch", 6), 0);
    kb = REP(f->b, LIBRARY_GET_KERNEL)->kernel;
    assert_int_equal(fetch_launch(f->a, ka, aout, tex), 0);
    float got;
    uint32_t bits = read_u32(f->a, aout);
    memcpy(&got, &bits, 4);
    assert_true(got == in[1][2]);
    assert_int_equal(fetch_launch(f->b, kb, bout, tex), CUDA_ERROR_ILLEGAL_ADDRESS);
    struct idm_req_CTX_SYNCHRONIZE cs = {.ctx = 0};
    assert_int_equal(call(f->b, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0),
                     CUDA_ERROR_ILLEGAL_ADDRESS); /* B's sticky fault; A is unaffected */
    assert_int_equal(call(f->a, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0), 0);
    /* destroying the array takes its texture object and gives the quota back */
    struct idm_req_ARRAY_DESTROY ad = {.array = arr};
    assert_int_equal(call(f->a, IDM_OP_ARRAY_DESTROY, &ad, sizeof(ad), NULL, 0), 0);
    assert_int_equal(f->za->used, 4); /* aout only: the array is uncharged */
    assert_int_equal(call(f->a, IDM_OP_TEX_GET_DESC, &td, sizeof(td), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(fetch_launch(f->a, ka, aout, tex), CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_int_equal(call(f->a, IDM_OP_ARRAY_DESTROY, &ad, sizeof(ad), NULL, 0),
                     CUDA_ERROR_INVALID_HANDLE);
}

/* Shapes, formats and flags the device does not take, and the zone's bound on arrays. */
static void test_dispatch_array_limits(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a);
    struct idm_req_ARRAY_CREATE q = {.ctx = ctx, .width = 131073, .format = CU_AD_FORMAT_FLOAT,
                                     .channels = 1};

    assert_int_equal(call(f->a, IDM_OP_ARRAY_CREATE, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    q.width = 16;
    q.channels = 3;
    assert_int_equal(call(f->a, IDM_OP_ARRAY_CREATE, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    q.channels = 1;
    q.flags = CUDA_ARRAY3D_CUBEMAP;
    assert_int_equal(call(f->a, IDM_OP_ARRAY_CREATE, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_NOT_SUPPORTED);
    q.flags = 0;
    q.width = 1u << 17; /* 512 KiB of the zone's 1 MiB quota */
    q.height = 1;
    assert_int_equal(call(f->a, IDM_OP_ARRAY_CREATE, &q, sizeof(q), NULL, 0), 0);
    assert_int_equal(call(f->a, IDM_OP_ARRAY_CREATE, &q, sizeof(q), NULL, 0), 0);
    assert_int_equal(call(f->a, IDM_OP_ARRAY_CREATE, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_OUT_OF_MEMORY);
    f->za->narrays = ZONE_MAX_ARRAYS; /* as if the zone held as many as it may */
    q.width = 1;
    assert_int_equal(call(f->a, IDM_OP_ARRAY_CREATE, &q, sizeof(q), NULL, 0),
                     CUDA_ERROR_OUT_OF_MEMORY);
    f->za->narrays = 2;
}

/* A kernel node added before a memset node, with the edge memset -> kernel: the kernel's 7
 * must win over the memset's 5 at every launch (insertion order would leave 5). After the
 * memory is freed the same launch is refused, the range checked again; the executable graph
 * outlives its graph. */
static void test_dispatch_graph_dependency_order(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), k, g, x;
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_LIBRARY_GET_KERNEL gk = {.library = load_ptx(f, f->a, ctx)};
    struct idm_req_GRAPH_ADD_NODE kn, mn;
    struct idm_req_GRAPH_INSTANTIATE gi;
    struct idm_req_GRAPH_LAUNCH gl;
    uint32_t kid = 0, mid = 0;

    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "store7", 7), 0);
    k = REP(f->a, LIBRARY_GET_KERNEL)->kernel;
    g = graph_new(f->a, ctx);
    memset(&kn, 0, sizeof(kn));
    kn.kind = IDM_GNODE_KERNEL;
    kn.func = k;
    kn.grid[0] = kn.grid[1] = kn.grid[2] = kn.block[0] = kn.block[1] = kn.block[2] = 1;
    kn.param_bytes = 8;
    assert_int_equal(graph_node(f->a, &kn, g, &d, &kid), 0);
    memset(&mn, 0, sizeof(mn));
    mn.kind = IDM_GNODE_MEMSET;
    mn.dst = d;
    mn.count = 16;
    mn.height = 1;
    mn.value = 5;
    mn.elem_size = 4;
    assert_int_equal(graph_node(f->a, &mn, g, NULL, &mid), 0);
    assert_int_equal(graph_edge(f->a, g, mid, kid), 0);
    assert_int_equal(graph_edge(f->a, g, mid, kid), CUDA_ERROR_INVALID_VALUE); /* twice */
    /* the kernel's word to the launch's host data at offset 8 */
    memset(&mn, 0, sizeof(mn));
    mn.kind = IDM_GNODE_DTOH;
    mn.src = d;
    mn.count = 4;
    mn.host_off = 8;
    mn.ndeps = 1;
    mn.deps[0] = kid;
    assert_int_equal(graph_node(f->a, &mn, g, NULL, NULL), 0);
    memset(&gi, 0, sizeof(gi));
    gi.graph = g;
    assert_int_equal(call(f->a, IDM_OP_GRAPH_INSTANTIATE, &gi, sizeof(gi), NULL, 0), 0);
    x = REP(f->a, GRAPH_INSTANTIATE)->exec;
    assert_int_equal(REP(f->a, GRAPH_INSTANTIATE)->node_count, 3);
    assert_int_equal(REP(f->a, GRAPH_INSTANTIATE)->host_bytes, 12);
    {
        struct idm_req_GRAPH_DESTROY q = {.graph = g};
        assert_int_equal(call(f->a, IDM_OP_GRAPH_DESTROY, &q, sizeof(q), NULL, 0), 0);
    }
    memset(&gl, 0, sizeof(gl));
    gl.exec = x;
    assert_int_equal(call(f->a, IDM_OP_GRAPH_LAUNCH, &gl, sizeof(gl), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE); /* no window range for its host data */
    gl.win_off = WIN - 8;
    gl.win_len = 12;
    assert_int_equal(call(f->a, IDM_OP_GRAPH_LAUNCH, &gl, sizeof(gl), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE); /* past the window */
    gl.win_off = 64;
    for (int i = 0; i < 3; i++) {
        uint32_t v = 0;
        memset(f->win + 64, 0, 12);
        assert_int_equal(call(f->a, IDM_OP_GRAPH_LAUNCH, &gl, sizeof(gl), NULL, 0), 0);
        memcpy(&v, f->win + 64 + 8, 4);
        assert_int_equal(v, 7);
        assert_int_equal(read_u32(f->a, d), 7);
        assert_int_equal(read_u32(f->a, d + 4), 5);
    }
    /* zone B cannot launch A's executable graph */
    assert_int_equal(call(f->b, IDM_OP_GRAPH_LAUNCH, &gl, sizeof(gl), NULL, 0),
                     CUDA_ERROR_INVALID_HANDLE);
    {
        struct idm_req_MEM_FREE q = {.dptr = d};
        assert_int_equal(call(f->a, IDM_OP_MEM_FREE, &q, sizeof(q), NULL, 0), 0);
    }
    assert_int_equal(call(f->a, IDM_OP_GRAPH_LAUNCH, &gl, sizeof(gl), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    {
        struct idm_req_GRAPH_EXEC_DESTROY q = {.exec = x};
        assert_int_equal(call(f->a, IDM_OP_GRAPH_EXEC_DESTROY, &q, sizeof(q), NULL, 0), 0);
        assert_int_equal(call(f->a, IDM_OP_GRAPH_EXEC_DESTROY, &q, sizeof(q), NULL, 0),
                         CUDA_ERROR_INVALID_HANDLE);
    }
}

/* Cycles, bad nodes and the per-graph and per-session bounds are refused; a zone's graph
 * memory goes back when its session closes. */
static void test_dispatch_graph_bounds(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), g = graph_new(f->a, ctx);
    struct idm_req_GRAPH_ADD_NODE en;
    struct idm_req_GRAPH_INSTANTIATE gi;
    uint32_t n;
    int created = 1;

    memset(&en, 0, sizeof(en));
    en.kind = IDM_GNODE_EMPTY;
    for (uint32_t i = 0; i < GRAPH_MAX_NODES; i++) {
        en.ndeps = i > 0;
        en.deps[0] = i - 1;
        assert_int_equal(graph_node(f->a, &en, g, NULL, &n), 0);
        assert_int_equal(n, i);
    }
    assert_int_equal(graph_node(f->a, &en, g, NULL, NULL), CUDA_ERROR_OUT_OF_MEMORY);
    en.ndeps = 1;
    en.deps[0] = GRAPH_MAX_NODES; /* no such node */
    assert_int_equal(graph_node(f->b, &en, graph_new(f->b, ctx_of(f->b)), NULL, NULL),
                     CUDA_ERROR_INVALID_VALUE);
    en.kind = 77;
    en.ndeps = 0;
    assert_int_equal(graph_node(f->a, &en, graph_new(f->a, ctx), NULL, NULL),
                     CUDA_ERROR_INVALID_VALUE);
    created++;
    /* a chain of 16,384 nodes orders; closing it into a cycle does not */
    memset(&gi, 0, sizeof(gi));
    gi.graph = g;
    assert_int_equal(call(f->a, IDM_OP_GRAPH_INSTANTIATE, &gi, sizeof(gi), NULL, 0), 0);
    created++;
    assert_int_equal(graph_edge(f->a, g, GRAPH_MAX_NODES - 1, 0), 0);
    assert_int_equal(call(f->a, IDM_OP_GRAPH_INSTANTIATE, &gi, sizeof(gi), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    gi.flags = CUDA_GRAPH_INSTANTIATE_FLAG_DEVICE_LAUNCH;
    assert_int_equal(call(f->a, IDM_OP_GRAPH_INSTANTIATE, &gi, sizeof(gi), NULL, 0),
                     CUDA_ERROR_NOT_SUPPORTED);
    assert_true(f->za->graph_bytes > GRAPH_MAX_NODES * sizeof(struct graph_node));
    while (created < SESSION_MAX_GRAPHS) {
        graph_new(f->a, ctx);
        created++;
    }
    {
        struct idm_req_GRAPH_CREATE q = {.ctx = ctx};
        assert_int_equal(call(f->a, IDM_OP_GRAPH_CREATE, &q, sizeof(q), NULL, 0),
                         CUDA_ERROR_OUT_OF_MEMORY);
    }
    session_close(f->a);
    assert_int_equal(f->za->graph_bytes, 0);
    assert_int_equal(session_open(f->za, NULL, f->win, WIN, 4096, "a", &f->a), 0);
}

/* An executable graph takes another graph's parameters when it has the same nodes; one of
 * another kind is answered with the reason and changes nothing; a memset node is no kernel. */
static void test_dispatch_graph_exec_update(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), g[3], x;
    idm_dptr d = alloc_in(f->a, ctx, 64);
    struct idm_req_GRAPH_ADD_NODE mn;
    struct idm_req_GRAPH_INSTANTIATE gi;
    struct idm_req_GRAPH_LAUNCH gl;
    struct idm_req_GRAPH_EXEC_UPDATE up;
    struct idm_req_GRAPH_EXEC_SET_KERNEL sk;

    for (int i = 0; i < 3; i++) {
        g[i] = graph_new(f->a, ctx);
        memset(&mn, 0, sizeof(mn));
        mn.kind = i == 2 ? IDM_GNODE_EMPTY : IDM_GNODE_MEMSET;
        mn.dst = d;
        mn.count = 1;
        mn.height = 1;
        mn.value = i == 0 ? 5 : 9;
        mn.elem_size = 4;
        assert_int_equal(graph_node(f->a, &mn, g[i], NULL, NULL), 0);
    }
    memset(&gi, 0, sizeof(gi));
    gi.graph = g[0];
    assert_int_equal(call(f->a, IDM_OP_GRAPH_INSTANTIATE, &gi, sizeof(gi), NULL, 0), 0);
    x = REP(f->a, GRAPH_INSTANTIATE)->exec;
    memset(&gl, 0, sizeof(gl));
    gl.exec = x;
    up.exec = x;
    up.graph = g[2];
    assert_int_equal(call(f->a, IDM_OP_GRAPH_EXEC_UPDATE, &up, sizeof(up), NULL, 0), 0);
    assert_int_equal(REP(f->a, GRAPH_EXEC_UPDATE)->result,
                     CU_GRAPH_EXEC_UPDATE_ERROR_NODE_TYPE_CHANGED);
    assert_int_equal(REP(f->a, GRAPH_EXEC_UPDATE)->node, 0);
    assert_int_equal(call(f->a, IDM_OP_GRAPH_LAUNCH, &gl, sizeof(gl), NULL, 0), 0);
    assert_int_equal(read_u32(f->a, d), 5);
    up.graph = g[1];
    assert_int_equal(call(f->a, IDM_OP_GRAPH_EXEC_UPDATE, &up, sizeof(up), NULL, 0), 0);
    assert_int_equal(REP(f->a, GRAPH_EXEC_UPDATE)->result, CU_GRAPH_EXEC_UPDATE_SUCCESS);
    assert_int_equal(call(f->a, IDM_OP_GRAPH_LAUNCH, &gl, sizeof(gl), NULL, 0), 0);
    assert_int_equal(read_u32(f->a, d), 9);
    memset(&sk, 0, sizeof(sk));
    sk.exec = x;
    assert_int_equal(call(f->a, IDM_OP_GRAPH_EXEC_SET_KERNEL, &sk, sizeof(sk), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
}

/* ---- virtual memory management ---- */

#define G IDM_VMM_GRANULARITY

static idm_dptr vmm_reserve(struct session *s, uint64_t size)
{
    struct idm_req_VMM_RESERVE q = {.size = size};

    assert_int_equal(call(s, IDM_OP_VMM_RESERVE, &q, sizeof(q), NULL, 0), 0);
    return REP(s, VMM_RESERVE)->ptr;
}

static idm_handle vmm_create(struct session *s, uint64_t size)
{
    struct idm_req_VMM_CREATE q = {.size = size, .device = 0};

    assert_int_equal(call(s, IDM_OP_VMM_CREATE, &q, sizeof(q), NULL, 0), 0);
    return REP(s, VMM_CREATE)->handle;
}

static int32_t vmm_map(struct session *s, idm_dptr va, uint64_t size, uint64_t off, idm_handle h)
{
    struct idm_req_VMM_MAP q = {.ptr = va, .size = size, .offset = off, .handle = h};

    return call(s, IDM_OP_VMM_MAP, &q, sizeof(q), NULL, 0);
}

static int32_t vmm_op2(struct session *s, uint16_t op, idm_dptr va, uint64_t size, uint32_t fl)
{
    struct idm_req_VMM_SET_ACCESS q = {.ptr = va, .size = size, .flags = fl};

    /* VMM_UNMAP and VMM_FREE share SET_ACCESS's first two fields */
    return call(s, op, &q, op == IDM_OP_VMM_SET_ACCESS ? sizeof(q) : 16, NULL, 0);
}

/* Two chunks mapped back to back: no access before cuMemSetAccess; then a memset and a copy
 * across the boundary, a kernel in the second chunk; the second unmapped, a kernel there faults;
 * the quota follows cuMemCreate and the last unmap of a released chunk. */
static void test_dispatch_vmm_map_copy_launch(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->a), lib, k, c0, c1;
    idm_dptr va = vmm_reserve(f->a, 3 * G);
    struct idm_req_MEMSET ms = {.dst = va + G - 32, .count = 64, .height = 1, .value = 0x5a,
                                .elem_size = 1};
    struct idm_req_MEMCPY_DTOH rd = {.src = va + G - 32, .win_len = 0, .len = 64};
    struct idm_req_VMM_RELEASE rl;
    struct idm_req_LIBRARY_GET_KERNEL gk;
    uint64_t used;

    c0 = vmm_create(f->a, G);
    c1 = vmm_create(f->a, G);
    assert_int_equal(f->za->used, 2 * G);
    assert_int_equal(vmm_map(f->a, va, G, 0, c0), 0);
    assert_int_equal(vmm_map(f->a, va + G, G, 0, c1), 0);
    assert_int_equal(call(f->a, IDM_OP_MEMSET, &ms, sizeof(ms), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE); /* no access yet */
    assert_int_equal(vmm_op2(f->a, IDM_OP_VMM_SET_ACCESS, va, 2 * G,
                             CU_MEM_ACCESS_FLAGS_PROT_READWRITE), 0);
    assert_int_equal(call(f->a, IDM_OP_MEMSET, &ms, sizeof(ms), NULL, 0), 0);
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    for (int i = 0; i < 64; i++)
        assert_int_equal(f->a->rbuf[sizeof(struct idm_rep_MEMCPY_DTOH) + i], 0x5a);
    /* a copy running past the mapped part of the reserve */
    rd.src = va + 2 * G - 32;
    assert_int_equal(call(f->a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);

    lib = load_ptx(f, f->a, ctx);
    gk.library = lib;
    assert_int_equal(call(f->a, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "store7", 7), 0);
    k = REP(f->a, LIBRARY_GET_KERNEL)->kernel;
    assert_int_equal(launch(f->a, k, va + G + 8), 0);
    assert_int_equal(read_u32(f->a, va + G + 8), 7);
    used = f->za->used; /* the chunks and the module's global */

    /* released while mapped: still charged and readable until the unmap */
    rl.handle = c1;
    assert_int_equal(call(f->a, IDM_OP_VMM_RELEASE, &rl, sizeof(rl), NULL, 0), 0);
    assert_int_equal(f->za->used, used);
    assert_int_equal(read_u32(f->a, va + G + 8), 7);
    assert_int_equal(call(f->a, IDM_OP_VMM_RELEASE, &rl, sizeof(rl), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(vmm_op2(f->a, IDM_OP_VMM_UNMAP, va + G, G, 0), 0);
    assert_int_equal(f->za->used, used - G);
    assert_int_equal(launch(f->a, k, va + G + 8), CUDA_ERROR_ILLEGAL_ADDRESS);
}

/* What a tenant may not do: another zone's handle or reserve, overlapping or misaligned maps,
 * maps past the allocation, partial unmaps, freeing a reserve with mappings, reserves beyond the
 * zone's bound (bytes and count), read-only access; and a zone's objects go with its session. */
static void test_dispatch_vmm_hostile(void **state)
{
    struct fixture *f = *state;
    idm_dptr va = vmm_reserve(f->a, 4 * G), vb = vmm_reserve(f->b, 2 * G);
    idm_handle ha = vmm_create(f->a, 2 * G), hb = vmm_create(f->b, G);
    struct idm_req_VMM_RESERVE big = {.size = 1ull << 40};
    struct idm_req_VMM_CREATE over = {.size = 8 * G, .device = 0};
    uint32_t n = 1;

    assert_int_equal(vmm_map(f->a, va, G, 0, hb), CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(vmm_map(f->a, vb, G, 0, ha), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(vmm_map(f->a, va + 1, G, 0, ha), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(vmm_map(f->a, va, G, 4096, ha), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(vmm_map(f->a, va, 2 * G, G, ha), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(vmm_map(f->a, va, G, UINT64_MAX - G + 1, ha), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(vmm_map(f->a, va + 3 * G, 2 * G, 0, ha), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(vmm_map(f->a, va, 2 * G, 0, ha), 0);
    assert_int_equal(vmm_map(f->a, va + G, G, 0, ha), CUDA_ERROR_INVALID_VALUE); /* overlap */
    assert_int_equal(vmm_op2(f->a, IDM_OP_VMM_UNMAP, va, G, 0), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(vmm_op2(f->a, IDM_OP_VMM_FREE, va, 4 * G, 0), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(vmm_op2(f->a, IDM_OP_VMM_SET_ACCESS, va, 2 * G,
                             CU_MEM_ACCESS_FLAGS_PROT_READ), CUDA_ERROR_NOT_SUPPORTED);
    assert_int_equal(vmm_op2(f->a, IDM_OP_VMM_SET_ACCESS, va, 4 * G,
                             CU_MEM_ACCESS_FLAGS_PROT_READWRITE), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(call(f->a, IDM_OP_VMM_CREATE, &over, sizeof(over), NULL, 0),
                     CUDA_ERROR_OUT_OF_MEMORY); /* quota */
    assert_int_equal(call(f->a, IDM_OP_VMM_RESERVE, &big, sizeof(big), NULL, 0),
                     CUDA_ERROR_OUT_OF_MEMORY);
    big.size = G;
    while (call(f->a, IDM_OP_VMM_RESERVE, &big, sizeof(big), NULL, 0) == 0)
        n++;
    assert_int_equal(n, SESSION_MAX_RESERVES);
    /* B's session is untouched; A's session close gives everything back */
    assert_int_equal(f->zb->used, G);
    session_close(f->a);
    assert_int_equal(f->za->used, 0);
    assert_int_equal(f->za->vmm_reserved, 0);
    assert_int_equal(session_open(f->za, NULL, f->win, WIN, 4096, "a", &f->a), 0);
}

/* ---- IPC memory handles (dispatch_ipc.c) ---- */

static void ipc_export(struct session *s, idm_dptr d, uint8_t handle[64])
{
    struct idm_req_IPC_MEM_EXPORT q = {.dptr = d};

    assert_int_equal(call(s, IDM_OP_IPC_MEM_EXPORT, &q, sizeof(q), NULL, 0), 0);
    memcpy(handle, REP(s, IPC_MEM_EXPORT)->handle, 64);
}

/* IPC_MEM_OPEN's status; *d the address on success. */
static int32_t ipc_open(struct session *s, idm_handle ctx, const uint8_t handle[64], uint32_t flags,
                        idm_dptr *d)
{
    struct idm_req_IPC_MEM_OPEN q = {.ctx = ctx, .flags = flags};
    int32_t rc;

    memcpy(q.handle, handle, 64);
    rc = call(s, IDM_OP_IPC_MEM_OPEN, &q, sizeof(q), NULL, 0);
    if (rc == 0 && d != NULL)
        *d = REP(s, IPC_MEM_OPEN)->dptr;
    return rc;
}

static int32_t ipc_close(struct session *s, idm_dptr d)
{
    struct idm_req_IPC_MEM_CLOSE q = {.dptr = d};

    return call(s, IDM_OP_IPC_MEM_CLOSE, &q, sizeof(q), NULL, 0);
}

static int32_t mem_free(struct session *s, idm_dptr d)
{
    struct idm_req_MEM_FREE q = {.dptr = d};

    return call(s, IDM_OP_MEM_FREE, &q, sizeof(q), NULL, 0);
}

static void put_u32(struct session *s, idm_dptr d, uint32_t v)
{
    struct idm_req_MEMCPY_HTOD q = {.dst = d, .win_len = 0, .len = 4};

    assert_int_equal(call(s, IDM_OP_MEMCPY_HTOD, &q, sizeof(q), &v, 4), 0);
}

static uint32_t get_u32(struct session *s, idm_dptr d)
{
    struct idm_req_MEMCPY_DTOH q = {.src = d, .win_len = 0, .len = 4};
    uint32_t v;

    assert_int_equal(call(s, IDM_OP_MEMCPY_DTOH, &q, sizeof(q), NULL, 0), 0);
    memcpy(&v, s->rbuf + sizeof(struct idm_rep_MEMCPY_DTOH), 4);
    return v;
}

/* Two sessions of zone A share memory: copies and a kernel of the importer reach the exporter's
 * allocation; the memory outlives the exporter's free (charged once, until the last close). */
static void test_dispatch_ipc_mem_shared(void **state)
{
    struct fixture *f = *state;
    struct session *a2;
    idm_handle ctx = ctx_of(f->a), ctx2, lib, k;
    idm_dptr d = alloc_in(f->a, ctx, 4096), d2, again;
    struct idm_req_LIBRARY_GET_KERNEL gk;
    uint8_t h[64], h_again[64];
    uint64_t used;

    assert_int_equal(session_open(f->za, NULL, f->win, WIN, 4096, "a2", &a2), 0);
    ctx2 = ctx_of(a2);
    put_u32(f->a, d + 16, 0x1234);
    ipc_export(f->a, d, h);
    ipc_export(f->a, d, h_again);
    assert_memory_equal(h, h_again, 64); /* exporting again: the same handle */
    used = f->za->used;
    assert_int_equal(ipc_open(a2, ctx2, h, CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS, &d2), 0);
    assert_int_equal(f->za->used, used); /* not charged again */
    assert_int_equal(get_u32(a2, d2 + 16), 0x1234);
    put_u32(a2, d2 + 20, 0xbeef);
    assert_int_equal(get_u32(f->a, d + 20), 0xbeef);
    lib = load_ptx(f, a2, ctx2);
    gk.library = lib;
    assert_int_equal(call(a2, IDM_OP_LIBRARY_GET_KERNEL, &gk, sizeof(gk), "store7", 7), 0);
    k = REP(a2, LIBRARY_GET_KERNEL)->kernel;
    assert_int_equal(launch(a2, k, d2 + 24), 0);
    assert_int_equal(get_u32(f->a, d + 24), 7);
    /* Opened twice: the same address, two closes. */
    assert_int_equal(ipc_open(a2, ctx2, h, 0, &again), 0);
    assert_int_equal(again, d2);
    assert_int_equal(ipc_close(a2, d2), 0);
    assert_int_equal(REP(a2, IPC_MEM_CLOSE)->opens, 1);
    /* The exporter frees: the import still reads the data; the handle opens no more. */
    used = f->za->used;
    assert_int_equal(mem_free(f->a, d), 0);
    assert_int_equal(f->za->used, used);
    assert_int_equal(get_u32(a2, d2 + 16), 0x1234);
    assert_int_equal(launch(a2, k, d2 + 28), 0);
    assert_int_equal(get_u32(a2, d2 + 28), 7);
    assert_int_equal(ipc_open(f->b, ctx_of(f->b), h, 0, NULL), CUDA_ERROR_INVALID_HANDLE);
    /* The last close frees it and gives the quota back; a second close is refused. */
    assert_int_equal(ipc_close(a2, d2), 0);
    assert_int_equal(REP(a2, IPC_MEM_CLOSE)->opens, 0);
    assert_int_equal(f->za->used, used - 4096);
    assert_int_equal(ipc_close(a2, d2), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(launch(a2, k, d2 + 28), CUDA_ERROR_ILLEGAL_ADDRESS);
    session_close(a2);
}

/* The exporter's process ends while an import is open: the memory stays until the importer
 * closes (here: its session ends, which closes its imports). */
static void test_dispatch_ipc_exporter_exits(void **state)
{
    struct fixture *f = *state;
    struct session *e;
    idm_handle ctx = ctx_of(f->a);
    idm_dptr d, d2;
    uint64_t used = f->za->used;
    uint8_t h[64];

    assert_int_equal(session_open(f->za, NULL, f->win, WIN, 4096, "exporter", &e), 0);
    d = alloc_in(e, ctx_of(e), 8192);
    put_u32(e, d + 4096, 42);
    ipc_export(e, d, h);
    assert_int_equal(ipc_open(f->a, ctx, h, 0, &d2), 0);
    session_close(e);
    assert_int_equal(f->za->used, used + 8192);
    assert_int_equal(get_u32(f->a, d2 + 4096), 42);
    assert_int_equal(ipc_open(f->a, ctx, h, 0, NULL), CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(f->za->ipc_imports, 1);
    {
        struct idm_req_PRIMARY_CTX_RESET q = {.device = 0};
        assert_int_equal(call(f->a, IDM_OP_PRIMARY_CTX_RESET, &q, sizeof(q), NULL, 0), 0);
    }
    assert_int_equal(f->za->ipc_imports, 0);
    assert_int_equal(f->za->used, used);
}

/* Refused: another zone's session, a forged or random handle, the exporter itself, unknown
 * flags, exports of what is not the base of a cuMemAlloc allocation, cuMemFree of an import. */
static void test_dispatch_ipc_refusals(void **state)
{
    struct fixture *f = *state;
    struct session *a2;
    idm_handle ctx = ctx_of(f->a), ctx2;
    idm_dptr d = alloc_in(f->a, ctx, 256), d2;
    uint8_t h[64], forged[64];
    struct idm_req_IPC_MEM_EXPORT ex = {.dptr = d + 8};

    assert_int_equal(session_open(f->za, NULL, f->win, WIN, 4096, "a2", &a2), 0);
    ctx2 = ctx_of(a2);
    ipc_export(f->a, d, h);
    assert_int_equal(ipc_open(f->b, ctx_of(f->b), h, 0, NULL), CUDA_ERROR_INVALID_HANDLE);
    for (int i = 16; i < 32; i++) { /* every token byte matters */
        memcpy(forged, h, 64);
        forged[i] ^= 0x01;
        assert_int_equal(ipc_open(a2, ctx2, forged, 0, NULL), CUDA_ERROR_INVALID_HANDLE);
    }
    memcpy(forged, h, 64);
    forged[12] ^= 0x01; /* another slot, the same token */
    assert_int_equal(ipc_open(a2, ctx2, forged, 0, NULL), CUDA_ERROR_INVALID_HANDLE);
    memset(forged, 0xff, sizeof(forged));
    assert_int_equal(ipc_open(a2, ctx2, forged, 0, NULL), CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(ipc_open(f->a, ctx, h, 0, NULL), CUDA_ERROR_INVALID_CONTEXT);
    assert_int_equal(ipc_open(a2, ctx2, h, 2, NULL), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(call(f->a, IDM_OP_IPC_MEM_EXPORT, &ex, sizeof(ex), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    ex.dptr = 0x1000;
    assert_int_equal(call(f->a, IDM_OP_IPC_MEM_EXPORT, &ex, sizeof(ex), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(ipc_open(a2, ctx2, h, 0, &d2), 0);
    ex.dptr = d2; /* an import is not exported again */
    assert_int_equal(call(a2, IDM_OP_IPC_MEM_EXPORT, &ex, sizeof(ex), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(mem_free(a2, d2), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(ipc_close(a2, d), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(ipc_close(f->a, d), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(ipc_close(a2, d2), 0);
    assert_int_equal(ipc_close(a2, d2), CUDA_ERROR_INVALID_VALUE);
    session_close(a2);
}

/* At most ZONE_MAX_IPC_EXPORTS exports and ZONE_MAX_IPC_IMPORTS open imports per zone. */
static void test_dispatch_ipc_bounds(void **state)
{
    struct fixture *f = *state;
    enum { NS = ZONE_MAX_IPC_IMPORTS / ZONE_MAX_IPC_EXPORTS + 1 };
    static uint8_t h[ZONE_MAX_IPC_EXPORTS][64];
    struct session *s[NS];
    idm_handle ctx = ctx_of(f->a);
    struct idm_req_IPC_MEM_EXPORT ex;
    idm_dptr d;

    for (uint32_t i = 0; i < ZONE_MAX_IPC_EXPORTS; i++)
        ipc_export(f->a, alloc_in(f->a, ctx, 1), h[i]);
    ex.dptr = alloc_in(f->a, ctx, 1);
    assert_int_equal(call(f->a, IDM_OP_IPC_MEM_EXPORT, &ex, sizeof(ex), NULL, 0),
                     CUDA_ERROR_OUT_OF_MEMORY);
    for (int j = 0; j < NS; j++) {
        assert_int_equal(session_open(f->za, NULL, f->win, WIN, 4096, "imp", &s[j]), 0);
        idm_handle c = ctx_of(s[j]);
        for (uint32_t i = 0; i < ZONE_MAX_IPC_EXPORTS; i++) {
            int32_t rc = ipc_open(s[j], c, h[i], 0, &d);
            if (j < NS - 1)
                assert_int_equal(rc, 0);
            else
                assert_int_equal(rc, CUDA_ERROR_OUT_OF_MEMORY);
        }
    }
    assert_int_equal(f->za->ipc_imports, ZONE_MAX_IPC_IMPORTS);
    session_close(s[0]);
    assert_int_equal(ipc_open(s[NS - 1], ctx_of(s[NS - 1]), h[0], 0, &d), 0);
    for (int j = 1; j < NS; j++)
        session_close(s[j]);
    assert_int_equal(f->za->ipc_imports, 0);
}

static idm_handle event_new(struct session *s, idm_handle ctx, uint32_t flags)
{
    struct idm_req_EVENT_CREATE q = {.ctx = ctx, .flags = flags};

    assert_int_equal(call(s, IDM_OP_EVENT_CREATE, &q, sizeof(q), NULL, 0), 0);
    return REP(s, EVENT_CREATE)->event;
}

static int32_t event_op(struct session *s, uint16_t op, idm_handle ev)
{
    struct idm_req_EVENT_QUERY q = {.event = ev}; /* QUERY, SYNCHRONIZE, DESTROY: one field */

    _Static_assert(sizeof(struct idm_req_EVENT_SYNCHRONIZE) == sizeof(q), "one field");
    _Static_assert(sizeof(struct idm_req_EVENT_DESTROY) == sizeof(q), "one field");
    return call(s, op, &q, sizeof(q), NULL, 0);
}

static int32_t event_record(struct session *s, idm_handle ev, idm_handle stream)
{
    struct idm_req_EVENT_RECORD q = {.event = ev, .stream = stream};

    return call(s, IDM_OP_EVENT_RECORD, &q, sizeof(q), NULL, 0);
}

static int32_t ipc_event_open(struct session *s, idm_handle ctx, const uint8_t handle[64],
                              idm_handle *ev)
{
    struct idm_req_IPC_EVENT_OPEN q = {.ctx = ctx};
    int32_t rc;

    memcpy(q.handle, handle, 64);
    rc = call(s, IDM_OP_IPC_EVENT_OPEN, &q, sizeof(q), NULL, 0);
    if (rc == 0 && ev != NULL)
        *ev = REP(s, IPC_EVENT_OPEN)->event;
    return rc;
}

/* An interprocess event shared by two sessions of zone A: a record by either is what the other
 * waits for (a record handed out and not yet run keeps the other's query NOT_READY); the
 * exporter's destroy leaves the opened event working; refusals as for memory. */
static void test_dispatch_ipc_event(void **state)
{
    struct fixture *f = *state;
    const uint32_t ipc_flags = CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING;
    struct idm_req_EVENT_CREATE bad = {.ctx = 0, .flags = CU_EVENT_INTERPROCESS};
    struct idm_req_STREAM_CREATE sc = {.ctx = 0};
    struct idm_req_STREAM_WAIT_EVENT sw = {.stream = 0};
    struct idm_req_IPC_EVENT_EXPORT ex;
    struct session *a2;
    idm_handle ctx = ctx_of(f->a), ctx2, ev, ev2, plain, st;
    struct event_obj *eo;
    uint8_t h[64], forged[64];
    uint64_t t;

    assert_int_equal(session_open(f->za, NULL, f->win, WIN, 4096, "a2", &a2), 0);
    ctx2 = ctx_of(a2);
    assert_int_equal(call(f->a, IDM_OP_EVENT_CREATE, &bad, sizeof(bad), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE); /* CUDA: interprocess needs DISABLE_TIMING */
    plain = event_new(f->a, ctx, CU_EVENT_DISABLE_TIMING);
    ex.event = plain;
    assert_int_equal(call(f->a, IDM_OP_IPC_EVENT_EXPORT, &ex, sizeof(ex), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    ev = event_new(f->a, ctx, ipc_flags);
    ex.event = ev;
    assert_int_equal(call(f->a, IDM_OP_IPC_EVENT_EXPORT, &ex, sizeof(ex), NULL, 0), 0);
    memcpy(h, REP(f->a, IPC_EVENT_EXPORT)->handle, 64);
    assert_int_equal(ipc_event_open(f->b, ctx_of(f->b), h, NULL), CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(ipc_event_open(f->a, ctx, h, NULL), CUDA_ERROR_INVALID_CONTEXT);
    memcpy(forged, h, 64);
    forged[31] ^= 0x80;
    assert_int_equal(ipc_event_open(a2, ctx2, forged, NULL), CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(ipc_open(a2, ctx2, h, 0, NULL), CUDA_ERROR_INVALID_HANDLE); /* not memory */
    assert_int_equal(ipc_event_open(a2, ctx2, h, &ev2), 0);
    ex.event = ev2; /* an opened event is not exported again */
    assert_int_equal(call(a2, IDM_OP_IPC_EVENT_EXPORT, &ex, sizeof(ex), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);

    /* A record of a's that has not run yet: a2's query is NOT_READY until it has. */
    eo = htab_lookup(&f->a->ht, ev, HT_EVENT);
    assert_non_null(eo);
    t = ipc_event_ticket(eo->ipc);
    assert_int_equal(event_op(a2, IDM_OP_EVENT_QUERY, ev2), CUDA_ERROR_NOT_READY);
    ipc_event_mark(eo->ipc, t);
    assert_int_equal(event_op(a2, IDM_OP_EVENT_QUERY, ev2), 0);
    /* Records on a stream and inline, by either side; waits on the other side. */
    assert_int_equal(call(f->a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0), 0);
    st = REP(f->a, STREAM_CREATE)->stream;
    assert_int_equal(event_record(f->a, ev, st), -1000); /* queued: its worker answers */
    assert_int_equal(event_op(a2, IDM_OP_EVENT_SYNCHRONIZE, ev2), 0);
    assert_int_equal(event_record(f->a, ev, st), -1000); /* the recorder's own wait, at once */
    assert_int_equal(event_op(f->a, IDM_OP_EVENT_SYNCHRONIZE, ev), 0);
    assert_int_equal(event_op(a2, IDM_OP_EVENT_QUERY, ev2), 0);
    sw.event = ev2;
    assert_int_equal(call(a2, IDM_OP_STREAM_WAIT_EVENT, &sw, sizeof(sw), NULL, 0), 0);
    assert_int_equal(event_record(a2, ev2, 0), 0);
    assert_int_equal(event_op(f->a, IDM_OP_EVENT_SYNCHRONIZE, ev), 0);
    /* The exporter destroys its event: the opened one still works; the handle opens no more. */
    assert_int_equal(event_op(f->a, IDM_OP_EVENT_DESTROY, ev), 0);
    assert_int_equal(ipc_event_open(a2, ctx2, h, NULL), CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(event_record(a2, ev2, 0), 0);
    assert_int_equal(event_op(a2, IDM_OP_EVENT_SYNCHRONIZE, ev2), 0);
    assert_int_equal(f->za->ipc_imports, 1);
    assert_int_equal(event_op(a2, IDM_OP_EVENT_DESTROY, ev2), 0);
    assert_int_equal(f->za->ipc_imports, 0);
    /* An opened event is released with its session. */
    ev = event_new(f->a, ctx, ipc_flags);
    ex.event = ev;
    assert_int_equal(call(f->a, IDM_OP_IPC_EVENT_EXPORT, &ex, sizeof(ex), NULL, 0), 0);
    assert_int_equal(ipc_event_open(a2, ctx2, REP(f->a, IPC_EVENT_EXPORT)->handle, &ev2), 0);
    assert_int_equal(f->za->ipc_imports, 1);
    session_close(a2);
    assert_int_equal(f->za->ipc_imports, 0);
    assert_int_equal(event_record(f->a, ev, 0), 0);
    assert_int_equal(event_op(f->a, IDM_OP_EVENT_SYNCHRONIZE, ev), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dispatch_short_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_library_kernel_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_kernel_launch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_long_kernel_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_ctx_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_watchdog_ends_endless_kernel, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_launch_foreign_pointer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_ctx_destroy_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_stream_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_stream_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_occupancy_cluster_overflow, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_dtoh_inline_multislot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_release_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_stream_reply_matches_inline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_noreply_latched, setup, teardown),
        cmocka_unit_test(test_dispatch_errno_mapping),
        cmocka_unit_test_setup_teardown(test_dispatch_op_properties, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_launch_params_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_refusal_log_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_graph_dependency_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_graph_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_graph_exec_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_array_texture_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_array_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_vmm_map_copy_launch, setup_vmm, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_vmm_hostile, setup_vmm, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_ipc_mem_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_ipc_exporter_exits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_ipc_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_ipc_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_ipc_event, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    backend_stub.shutdown();
    return rc;
}
