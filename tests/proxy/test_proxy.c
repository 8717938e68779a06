/* test_proxy.c - integration tests of gpu_proxy: a real gpu_proxy_stub process with two zones,
 * spoken to over the real IDM protocol by real client connections: handle and pointer
 * isolation, quotas, scrubbing, a client killed mid-call, the admin socket, SIGTERM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <cuda.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy_fixture.h"

static struct proxy_fixture fx = {.pid = -1};

#define QUOTA_A (64ull << 20)
#define QUOTA_B (16ull << 20)

static int group_setup(void **state)
{
    const char *extra[] = {"--zone", "A:64M", "--zone", "B:16M", NULL};

    (void)state;
    return fx_start(&fx, fx.bin, "test", extra);
}

static int group_teardown(void **state)
{
    (void)state;
    return fx_stop(&fx);
}

/* The objects zone A creates, for zone B to try. */
struct a_objects {
    idm_handle ctx, stream, event, image, library;
    idm_dptr mem;
};

static void test_proxy_hello_and_props(void **state)
{
    struct idm_rep_HELLO hello;
    struct idm_req_DEVICE_GET_PROPS q = {.device = 0};
    struct idm_rep_DEVICE_GET_PROPS props;
    struct pc a;

    (void)state;
    fx_connect(&fx, &a, "A");
    assert_int_equal(pc_hello(&a, &hello), CUDA_SUCCESS);
    assert_string_equal(hello.zone_name, "A");
    assert_int_equal(hello.quota, QUOTA_A);
    assert_true(hello.driver_version >= 13000);
    assert_int_equal(hello.device_count, 1);
    assert_int_equal(pc_call(&a, IDM_OP_DEVICE_GET_PROPS, &q, sizeof(q), NULL, 0, &props,
                             sizeof(props), NULL),
                     CUDA_SUCCESS);
    assert_non_null(strstr(props.name, "Simulated"));
    assert_int_equal(props.attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR], 9);
    assert_int_equal(props.attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR], 0);
    assert_int_equal(props.attrs[CU_DEVICE_ATTRIBUTE_WARP_SIZE], 32);
    assert_true(props.attrs[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT] > 0);
    assert_true(props.total_mem >= (1ull << 30));
    q.device = 1;
    assert_int_equal(pc_call(&a, IDM_OP_DEVICE_GET_PROPS, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                     CUDA_ERROR_INVALID_DEVICE);
    pc_close(&a);
}

static void test_proxy_roundtrip(void **state)
{
    struct pc a;
    idm_handle ctx;
    idm_dptr d;
    uint8_t *buf = malloc(1 << 20), *back = malloc(1 << 20);
    struct idm_req_MEMSET ms;
    struct idm_req_MEM_GET_INFO mi;
    struct idm_rep_MEM_GET_INFO info;

    (void)state;
    assert_non_null(buf);
    assert_non_null(back);
    fx_connect(&fx, &a, "A");
    assert_int_equal(pc_ctx(&a, &ctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&a, ctx, 1 << 20, &d), CUDA_SUCCESS);
    for (int i = 0; i < (1 << 20); i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(pc_htod(&a, d, buf, 1 << 20), CUDA_SUCCESS);
    assert_int_equal(pc_dtoh(&a, back, d, 1 << 20), CUDA_SUCCESS);
    assert_memory_equal(buf, back, 1 << 20);
    /* ptr + offset inside the allocation works; past its end does not. */
    assert_int_equal(pc_dtoh(&a, back, d + 4096, 100), CUDA_SUCCESS);
    assert_memory_equal(buf + 4096, back, 100);
    assert_int_equal(pc_dtoh(&a, back, d + (1 << 20) - 50, 100), CUDA_ERROR_INVALID_VALUE);
    /* memset 32-bit over a 2D region */
    memset(&ms, 0, sizeof(ms));
    ms.dst = d;
    ms.count = 4;
    ms.pitch = 64;
    ms.height = 3;
    ms.value = 0xA1B2C3D4u;
    ms.elem_size = 4;
    assert_int_equal(pc_call(&a, IDM_OP_MEMSET, &ms, sizeof(ms), NULL, 0, NULL, 0, NULL), 0);
    assert_int_equal(pc_dtoh(&a, back, d, 192), CUDA_SUCCESS);
    for (int row = 0; row < 3; row++) {
        uint32_t v;
        memcpy(&v, back + row * 64 + 12, 4);
        assert_int_equal(v, 0xA1B2C3D4u);
        assert_int_equal(back[row * 64 + 16], buf[row * 64 + 16]);
    }
    /* MEM_GET_INFO answers with the zone's quota. */
    mi.ctx = ctx;
    assert_int_equal(pc_call(&a, IDM_OP_MEM_GET_INFO, &mi, sizeof(mi), NULL, 0, &info,
                             sizeof(info), NULL),
                     CUDA_SUCCESS);
    assert_int_equal(info.total, QUOTA_A);
    assert_int_equal(info.free, QUOTA_A - (1 << 20));
    assert_int_equal(pc_free(&a, d), CUDA_SUCCESS);
    assert_int_equal(pc_free(&a, d), CUDA_ERROR_INVALID_VALUE);
    pc_close(&a);
    free(buf);
    free(back);
}

static void make_a_objects(struct pc *a, struct a_objects *o)
{
    struct idm_req_STREAM_CREATE sc = {.idm_empty_ = {}};
    struct idm_rep_STREAM_CREATE scr;
    struct idm_req_EVENT_CREATE ec = {.idm_empty_ = {}};
    struct idm_rep_EVENT_CREATE ecr;
    struct idm_req_IMAGE_BEGIN ib = {.size = 4096};
    struct idm_rep_IMAGE_BEGIN ibr;
    const uint8_t pattern[16] = "zone A secret!!";

    assert_int_equal(pc_ctx(a, &o->ctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(a, o->ctx, 4096, &o->mem), CUDA_SUCCESS);
    assert_int_equal(pc_htod(a, o->mem, pattern, sizeof(pattern)), CUDA_SUCCESS);
    sc.ctx = o->ctx;
    assert_int_equal(pc_call(a, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0, &scr,
                             sizeof(scr), NULL), CUDA_SUCCESS);
    o->stream = scr.stream;
    ec.ctx = o->ctx;
    assert_int_equal(pc_call(a, IDM_OP_EVENT_CREATE, &ec, sizeof(ec), NULL, 0, &ecr,
                             sizeof(ecr), NULL), CUDA_SUCCESS);
    o->event = ecr.event;
    assert_int_equal(pc_call(a, IDM_OP_IMAGE_BEGIN, &ib, sizeof(ib), NULL, 0, &ibr,
                             sizeof(ibr), NULL), CUDA_SUCCESS);
    o->image = ibr.image;
}

/* Every handle of A, used in every op that takes that kind of handle, fails in B. */
static void try_handle_everywhere(struct pc *b, idm_handle h, idm_handle own_ctx)
{
    uint8_t rep[4096];
    {
        struct idm_req_MEM_ALLOC q = {.ctx = h, .size = 64};
        assert_int_not_equal(pc_call(b, IDM_OP_MEM_ALLOC, &q, sizeof(q), NULL, 0, rep, sizeof(rep), NULL), 0);
    }
    {
        struct idm_req_CTX_SYNCHRONIZE q = {.ctx = h};
        assert_int_equal(pc_call(b, IDM_OP_CTX_SYNCHRONIZE, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_CONTEXT);
    }
    {
        struct idm_req_CTX_DESTROY q = {.ctx = h};
        assert_int_not_equal(pc_call(b, IDM_OP_CTX_DESTROY, &q, sizeof(q), NULL, 0, NULL, 0, NULL), 0);
    }
    {
        struct idm_req_STREAM_SYNCHRONIZE q = {.stream = h};
        assert_int_equal(pc_call(b, IDM_OP_STREAM_SYNCHRONIZE, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    {
        struct idm_req_STREAM_DESTROY q = {.stream = h};
        assert_int_equal(pc_call(b, IDM_OP_STREAM_DESTROY, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    {
        struct idm_req_EVENT_RECORD q = {.event = h, .stream = 0};
        assert_int_equal(pc_call(b, IDM_OP_EVENT_RECORD, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    {
        struct idm_req_EVENT_DESTROY q = {.event = h};
        assert_int_equal(pc_call(b, IDM_OP_EVENT_DESTROY, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    {
        struct idm_req_IMAGE_CHUNK q = {.image = h, .offset = 0, .win_off = 0, .len = 16};
        assert_int_equal(pc_call(b, IDM_OP_IMAGE_CHUNK, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    {
        struct idm_req_LIBRARY_LOAD q = {.ctx = own_ctx, .image = h};
        assert_int_equal(pc_call(b, IDM_OP_LIBRARY_LOAD, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    {
        struct idm_req_LIBRARY_GET_KERNEL q = {.library = h};
        assert_int_equal(pc_call(b, IDM_OP_LIBRARY_GET_KERNEL, &q, sizeof(q), "k", 2, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    {
        struct idm_req_FUNC_GET_ATTRIBUTE q = {.func = h, .attr = 0};
        assert_int_equal(pc_call(b, IDM_OP_FUNC_GET_ATTRIBUTE, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    {
        struct idm_req_LAUNCH q = {.func = h, .grid = {1, 1, 1}, .block = {1, 1, 1}};
        assert_int_equal(pc_call(b, IDM_OP_LAUNCH, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
}

/* Every device address of A (and around it) is refused in B, and nothing of A is read. */
static void try_pointer_everywhere(struct pc *b, idm_dptr d)
{
    uint8_t back[64];
    memset(back, 0xEE, sizeof(back));
    assert_int_equal(pc_dtoh(b, back, d, 16), CUDA_ERROR_INVALID_VALUE);
    for (size_t i = 0; i < sizeof(back); i++)
        assert_int_equal(back[i], 0xEE);
    assert_int_equal(pc_htod(b, d, "overwrite", 9), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(pc_free(b, d), CUDA_ERROR_INVALID_VALUE);
    {
        struct idm_req_MEMSET q = {.dst = d, .count = 16, .height = 1, .elem_size = 1};
        assert_int_equal(pc_call(b, IDM_OP_MEMSET, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_VALUE);
    }
    {
        struct idm_req_MEM_GET_ADDRESS_RANGE q = {.dptr = d};
        assert_int_equal(pc_call(b, IDM_OP_MEM_GET_ADDRESS_RANGE, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_NOT_FOUND);
    }
    {
        struct idm_req_POINTER_GET_ATTRIBUTE q = {.ptr = d, .attr = CU_POINTER_ATTRIBUTE_MEMORY_TYPE};
        assert_int_equal(pc_call(b, IDM_OP_POINTER_GET_ATTRIBUTE, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_VALUE);
    }
}

static void test_proxy_isolation(void **state)
{
    struct pc a, b;
    struct a_objects o;
    idm_handle bctx;
    idm_dptr bmem;
    uint8_t check[16];

    (void)state;
    fx_connect(&fx, &a, "A");
    fx_connect(&fx, &b, "B");
    make_a_objects(&a, &o);
    assert_int_equal(pc_ctx(&b, &bctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&b, bctx, 4096, &bmem), CUDA_SUCCESS);
    /* Zones get different values for their first objects. */
    assert_int_not_equal(bctx, o.ctx);
    assert_int_not_equal(bmem, o.mem);

    idm_handle hs[] = {o.ctx, o.stream, o.event, o.image};
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++)
        try_handle_everywhere(&b, hs[i], bctx);
    try_pointer_everywhere(&b, o.mem);
    try_pointer_everywhere(&b, o.mem + 8);
    /* Random values: handles and pointers. */
    srand(12345);
    for (int i = 0; i < 200; i++) {
        uint64_t v = ((uint64_t)rand() << 40) ^ ((uint64_t)rand() << 20) ^ (uint64_t)rand();
        if (v == 0 || (v >= bmem && v < bmem + 4096))
            continue;
        try_pointer_everywhere(&b, v);
        if (i % 10 == 0)
            try_handle_everywhere(&b, v, bctx);
    }
    /* A's objects are intact after all that. */
    assert_int_equal(pc_dtoh(&a, check, o.mem, sizeof(check)), CUDA_SUCCESS);
    assert_memory_equal(check, "zone A secret!!", 16);
    {
        struct idm_req_STREAM_SYNCHRONIZE q = {.stream = o.stream};
        assert_int_equal(pc_call(&a, IDM_OP_STREAM_SYNCHRONIZE, &q, sizeof(q), NULL, 0, NULL, 0, NULL), 0);
    }
    /* A freed handle is refused in its own zone too (generation). */
    {
        struct idm_req_EVENT_DESTROY q = {.event = o.event};
        assert_int_equal(pc_call(&a, IDM_OP_EVENT_DESTROY, &q, sizeof(q), NULL, 0, NULL, 0, NULL), 0);
        assert_int_equal(pc_call(&a, IDM_OP_EVENT_DESTROY, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    pc_close(&b);
    pc_close(&a);
}

/* Waits (bounded) until zone's LIST line shows `clients` clients and `used` bytes. */
static int wait_zone_state(const char *zone, long long want_used, int want_clients)
{
    for (int i = 0; i < 400; i++) {
        long long used;
        int clients;
        if (admin_zone(fx.dir, zone, &used, &clients) == 0 && used == want_used &&
            clients == want_clients)
            return 0;
        usleep(50000);
    }
    return -1;
}

static void test_proxy_quota(void **state)
{
    struct pc a, b;
    idm_handle actx, bctx;
    idm_dptr d[8], big;
    struct idm_req_MEM_GET_INFO mi;
    struct idm_rep_MEM_GET_INFO info;

    (void)state;
    /* An earlier test's client of B may still be being released by B's worker: its memory
     * counts until then, and this test fills B's quota exactly. */
    assert_int_equal(wait_zone_state("B", 0, 0), 0);
    fx_connect(&fx, &a, "A");
    fx_connect(&fx, &b, "B");
    assert_int_equal(pc_ctx(&a, &actx), CUDA_SUCCESS);
    assert_int_equal(pc_ctx(&b, &bctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&b, bctx, QUOTA_B + 1, &big), CUDA_ERROR_OUT_OF_MEMORY);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pc_alloc(&b, bctx, 4 << 20, &d[i]), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&b, bctx, 1, &big), CUDA_ERROR_OUT_OF_MEMORY);
    mi.ctx = bctx;
    assert_int_equal(pc_call(&b, IDM_OP_MEM_GET_INFO, &mi, sizeof(mi), NULL, 0, &info,
                             sizeof(info), NULL), CUDA_SUCCESS);
    assert_int_equal(info.free, 0);
    assert_int_equal(info.total, QUOTA_B);
    /* A keeps allocating while B is full. */
    for (int i = 4; i < 8; i++)
        assert_int_equal(pc_alloc(&a, actx, 8 << 20, &d[i]), CUDA_SUCCESS);
    for (int i = 4; i < 8; i++)
        assert_int_equal(pc_free(&a, d[i]), CUDA_SUCCESS);
    /* B freeing makes room again. */
    assert_int_equal(pc_free(&b, d[0]), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&b, bctx, 4 << 20, &d[0]), CUDA_SUCCESS);
    pc_close(&a);
    pc_close(&b);
}

static void test_proxy_scrub(void **state)
{
    const uint64_t size = 1 << 20;
    uint8_t *buf = malloc(size);
    struct pc a, b;
    idm_handle actx, bctx;
    idm_dptr da, db;
    long long before, after;

    (void)state;
    assert_non_null(buf);
    fx_connect(&fx, &a, "A");
    fx_connect(&fx, &b, "B");
    assert_int_equal(pc_ctx(&a, &actx), CUDA_SUCCESS);
    assert_int_equal(pc_ctx(&b, &bctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&a, actx, size, &da), CUDA_SUCCESS);
    memset(buf, 0x5A, size);
    assert_int_equal(pc_htod(&a, da, buf, size), CUDA_SUCCESS);
    before = admin_scrubbed(fx.dir);
    assert_true(before >= 0);
    assert_int_equal(pc_free(&a, da), CUDA_SUCCESS);
    after = admin_scrubbed(fx.dir);
    assert_true(after >= before + (long long)size);
    assert_int_equal(pc_alloc(&b, bctx, size, &db), CUDA_SUCCESS);
    memset(buf, 0xFF, size);
    assert_int_equal(pc_dtoh(&b, buf, db, size), CUDA_SUCCESS);
    for (uint64_t i = 0; i < size; i++)
        if (buf[i] != 0)
            fail_msg("byte %llu of zone B's new allocation is 0x%02x, not 0",
                     (unsigned long long)i, buf[i]);
    pc_close(&a);
    pc_close(&b);
    free(buf);
}

static void test_proxy_client_killed(void **state)
{
    char buf[512];
    int pipefd[2];
    pid_t child;
    long long used;
    int clients;
    struct pc a;
    idm_handle ctx;
    idm_dptr d;
    uint8_t x = 0;

    (void)state;
    assert_int_equal(admin_cmd(fx.dir, "ADD C 1G", buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "OK ", 3), 0);
    assert_int_equal(pipe(pipefd), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct pc c;
        idm_handle cctx;
        idm_dptr cd;
        char path[300];
        snprintf(path, sizeof(path), "%s/C.sock", fx.dir);
        if (pc_connect(&c, path) != 0 || pc_ctx(&c, &cctx) != 0 ||
            pc_alloc(&c, cctx, 256 << 20, &cd) != 0)
            _exit(1);
        if (write(pipefd[1], "r", 1) != 1)
            _exit(1);
        /* Large copies for ever: the parent kills us in the middle of one. */
        for (;;) {
            struct idm_req_MEMCPY_HTOD q = {.dst = cd, .win_off = 0, .win_len = c.wsize, .len = c.wsize};
            struct idm_hdr h = {.op = IDM_OP_MEMCPY_HTOD, .seq = c.seq++, .flags = IDM_F_ASYNC};
            if (idm_send(c.c, &h, &q, sizeof(q), NULL, 0) != 0)
                _exit(1);
        }
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &x, 1), 1);
    close(pipefd[0]);
    assert_int_equal(admin_zone(fx.dir, "C", &used, &clients), 0);
    assert_int_equal(used, 256 << 20);
    assert_int_equal(clients, 1);
    kill(child, SIGKILL);
    assert_int_equal(waitpid(child, NULL, 0), child);
    /* The dead client's memory comes back and the proxy serves the others. */
    assert_int_equal(wait_zone_state("C", 0, 0), 0);
    fx_connect(&fx, &a, "A");
    assert_int_equal(pc_ctx(&a, &ctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&a, ctx, 4096, &d), CUDA_SUCCESS);
    assert_int_equal(pc_free(&a, d), CUDA_SUCCESS);
    pc_close(&a);
    assert_int_equal(admin_cmd(fx.dir, "REMOVE C", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "OK\n");
}

static void test_proxy_admin(void **state)
{
    char buf[4096], path[300];
    struct stat st;
    struct pc d;
    idm_handle ctx;
    idm_dptr mem;
    long long used;
    int clients;

    (void)state;
    assert_int_equal(admin_cmd(fx.dir, "PING", buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "OK gpu_proxy ", 13), 0);
    assert_non_null(strstr(buf, "backend=stub"));
    /* the simulated GPU's memory size, for the device plugin's capacity */
    assert_non_null(strstr(buf, " total_bytes=85899345920\n"));
    assert_int_equal(admin_cmd(fx.dir, "ADD D 2G", buf, sizeof(buf)), 0);
    snprintf(path, sizeof(path), "OK %s/D.sock\n", fx.dir);
    assert_string_equal(buf, path);
    snprintf(path, sizeof(path), "%s/D.sock", fx.dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(admin_cmd(fx.dir, "ADD D 1G", buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "ERR", 3), 0);
    assert_int_equal(admin_cmd(fx.dir, "ADD ../evil 1G", buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "ERR", 3), 0);
    assert_int_equal(admin_cmd(fx.dir, "ADD E 12Q", buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "ERR", 3), 0);
    assert_int_equal(admin_cmd(fx.dir, "FROB", buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "ERR", 3), 0);
    assert_int_equal(admin_zone(fx.dir, "D", &used, &clients), 0);
    assert_int_equal(used, 0);
    /* A client of D holding memory; REMOVE disconnects it and frees everything. */
    fx_connect(&fx, &d, "D");
    assert_int_equal(pc_ctx(&d, &ctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&d, ctx, 1 << 20, &mem), CUDA_SUCCESS);
    assert_int_equal(admin_zone(fx.dir, "D", &used, &clients), 0);
    assert_int_equal(used, 1 << 20);
    assert_int_equal(clients, 1);
    assert_int_equal(admin_cmd(fx.dir, "REMOVE D", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "OK\n");
    assert_int_equal(admin_zone(fx.dir, "D", &used, &clients), -1);
    assert_int_not_equal(stat(path, &st), 0);
    assert_true(pc_alloc(&d, ctx, 16, &mem) < 0); /* the connection is gone */
    pc_close(&d);
    assert_int_equal(admin_cmd(fx.dir, "REMOVE D", buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "ERR", 3), 0);
    assert_int_equal(admin_cmd(fx.dir, "STATS", buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "OK zones=2 scrubbed_bytes=", 26), 0);
}

static void test_proxy_bad_requests(void **state)
{
    struct pc a;
    idm_handle ctx;
    idm_dptr d;
    uint8_t rep[64];

    (void)state;
    fx_connect(&fx, &a, "A");
    assert_int_equal(pc_ctx(&a, &ctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&a, ctx, 4096, &d), CUDA_SUCCESS);
    /* Too short for its struct. */
    assert_int_equal(pc_call(&a, IDM_OP_MEM_ALLOC, &ctx, 4, NULL, 0, rep, sizeof(rep), NULL),
                     CUDA_ERROR_INVALID_VALUE);
    /* Unknown op: still one reply. */
    assert_int_equal(pc_call(&a, 250, NULL, 0, NULL, 0, NULL, 0, NULL), CUDA_ERROR_NOT_SUPPORTED);
    /* Window range outside the window. */
    {
        struct idm_req_MEMCPY_HTOD q = {.dst = d, .win_off = a.wsize - 8, .win_len = 16, .len = 16};
        assert_int_equal(pc_call(&a, IDM_OP_MEMCPY_HTOD, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_VALUE);
        q.win_off = UINT64_MAX - 4;
        assert_int_equal(pc_call(&a, IDM_OP_MEMCPY_HTOD, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_VALUE);
    }
    /* Inline data shorter than len. */
    {
        struct idm_req_MEMCPY_HTOD q = {.dst = d, .win_len = 0, .len = 100};
        assert_int_equal(pc_call(&a, IDM_OP_MEMCPY_HTOD, &q, sizeof(q), "abc", 3, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_VALUE);
    }
    /* Overflowing memset geometry. */
    {
        struct idm_req_MEMSET q = {.dst = d, .count = UINT64_MAX / 2, .height = 1, .elem_size = 4};
        assert_int_equal(pc_call(&a, IDM_OP_MEMSET, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_VALUE);
        q.count = 8;
        q.pitch = UINT64_MAX / 2;
        q.height = 4;
        assert_int_equal(pc_call(&a, IDM_OP_MEMSET, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_VALUE);
    }
    /* Inline small copies round trip through the reply tail. */
    {
        struct idm_req_MEMCPY_HTOD q = {.dst = d + 10, .win_len = 0, .len = 5};
        struct idm_req_MEMCPY_DTOH r = {.src = d + 10, .win_len = 0, .len = 5};
        uint8_t out[64];
        uint32_t n = 0;
        assert_int_equal(pc_call(&a, IDM_OP_MEMCPY_HTOD, &q, sizeof(q), "hello", 5, NULL, 0, NULL), 0);
        assert_int_equal(pc_call(&a, IDM_OP_MEMCPY_DTOH, &r, sizeof(r), NULL, 0, out, sizeof(out), &n), 0);
        assert_int_equal(n, sizeof(struct idm_rep_MEMCPY_DTOH) + 5);
        assert_memory_equal(out + sizeof(struct idm_rep_MEMCPY_DTOH), "hello", 5);
    }
    /* A launch in the stub with a library that failed to load never succeeds silently. */
    {
        struct idm_req_IMAGE_BEGIN ib = {.size = 64};
        struct idm_rep_IMAGE_BEGIN ibr;
        struct idm_req_LIBRARY_LOAD ll = {.ctx = ctx};
        assert_int_equal(pc_call(&a, IDM_OP_IMAGE_BEGIN, &ib, sizeof(ib), NULL, 0, &ibr, sizeof(ibr), NULL), 0);
        ll.image = ibr.image;
        memset(a.win, 0x11, 64);
        assert_int_not_equal(pc_call(&a, IDM_OP_LIBRARY_LOAD, &ll, sizeof(ll), NULL, 0, NULL, 0, NULL), 0);
        /* the image was consumed */
        assert_int_equal(pc_call(&a, IDM_OP_LIBRARY_LOAD, &ll, sizeof(ll), NULL, 0, NULL, 0, NULL),
                         CUDA_ERROR_INVALID_HANDLE);
    }
    pc_close(&a);
}

static void test_proxy_events(void **state)
{
    struct pc a;
    idm_handle ctx, ev[2];
    struct idm_req_EVENT_ELAPSED_TIME et;
    struct idm_rep_EVENT_ELAPSED_TIME etr;

    (void)state;
    fx_connect(&fx, &a, "A");
    assert_int_equal(pc_ctx(&a, &ctx), CUDA_SUCCESS);
    for (int i = 0; i < 2; i++) {
        struct idm_req_EVENT_CREATE q = {.ctx = ctx};
        struct idm_rep_EVENT_CREATE r;
        assert_int_equal(pc_call(&a, IDM_OP_EVENT_CREATE, &q, sizeof(q), NULL, 0, &r, sizeof(r), NULL), 0);
        ev[i] = r.event;
    }
    et.start = ev[0];
    et.end = ev[1];
    assert_int_equal(pc_call(&a, IDM_OP_EVENT_ELAPSED_TIME, &et, sizeof(et), NULL, 0, &etr, sizeof(etr), NULL),
                     CUDA_ERROR_INVALID_HANDLE); /* not recorded yet */
    for (int i = 0; i < 2; i++) {
        struct idm_req_EVENT_RECORD q = {.event = ev[i]};
        struct idm_req_EVENT_SYNCHRONIZE s = {.event = ev[i]};
        assert_int_equal(pc_call(&a, IDM_OP_EVENT_RECORD, &q, sizeof(q), NULL, 0, NULL, 0, NULL), 0);
        assert_int_equal(pc_call(&a, IDM_OP_EVENT_SYNCHRONIZE, &s, sizeof(s), NULL, 0, NULL, 0, NULL), 0);
    }
    assert_int_equal(pc_call(&a, IDM_OP_EVENT_ELAPSED_TIME, &et, sizeof(et), NULL, 0, &etr, sizeof(etr), NULL), 0);
    assert_true(etr.ms >= 0.0f);
    pc_close(&a);
}

/* Streams: queued work runs in order on the stream's worker, replies come when it is done. */
static void test_proxy_streams(void **state)
{
    struct pc a;
    idm_handle ctx, st, ev[2];
    idm_dptr d;
    const uint64_t chunk = 64 << 10;
    uint8_t *expect = malloc(8 * chunk);

    (void)state;
    assert_non_null(expect);
    fx_connect(&fx, &a, "A");
    assert_int_equal(pc_ctx(&a, &ctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&a, ctx, 8 * chunk, &d), CUDA_SUCCESS);
    {
        struct idm_req_STREAM_CREATE q = {.ctx = ctx, .flags = CU_STREAM_NON_BLOCKING};
        struct idm_rep_STREAM_CREATE r;
        assert_int_equal(pc_call(&a, IDM_OP_STREAM_CREATE, &q, sizeof(q), NULL, 0, &r,
                                 sizeof(r), NULL), 0);
        st = r.stream;
    }
    for (int i = 0; i < 2; i++) {
        struct idm_req_EVENT_CREATE q = {.ctx = ctx};
        struct idm_rep_EVENT_CREATE r;
        assert_int_equal(pc_call(&a, IDM_OP_EVENT_CREATE, &q, sizeof(q), NULL, 0, &r,
                                 sizeof(r), NULL), 0);
        ev[i] = r.event;
    }
    /* Eight HtoD copies from eight window ranges, a record, a memset, a record and a DtoH,
     * all sent without waiting; then every reply is collected. */
    {
        uint64_t seq0 = a.seq;
        int got = 0;
        for (int i = 0; i < 8; i++) {
            struct idm_req_MEMCPY_HTOD q = {.dst = d + i * chunk, .stream = st,
                                            .win_off = i * chunk, .win_len = chunk,
                                            .len = chunk};
            struct idm_hdr h = {.op = IDM_OP_MEMCPY_HTOD, .seq = a.seq++, .flags = IDM_F_ASYNC};
            memset(a.win + i * chunk, 0x10 + i, chunk);
            memset(expect + i * chunk, 0x10 + i, chunk);
            assert_int_equal(idm_send(a.c, &h, &q, sizeof(q), NULL, 0), 0);
        }
        {
            struct idm_req_EVENT_RECORD q = {.event = ev[0], .stream = st};
            struct idm_hdr h = {.op = IDM_OP_EVENT_RECORD, .seq = a.seq++, .flags = IDM_F_ASYNC};
            assert_int_equal(idm_send(a.c, &h, &q, sizeof(q), NULL, 0), 0);
        }
        {
            struct idm_req_MEMSET q = {.dst = d + chunk, .stream = st, .count = 100,
                                       .height = 1, .value = 0x7E, .elem_size = 1};
            struct idm_hdr h = {.op = IDM_OP_MEMSET, .seq = a.seq++, .flags = IDM_F_ASYNC};
            memset(expect + chunk, 0x7E, 100);
            assert_int_equal(idm_send(a.c, &h, &q, sizeof(q), NULL, 0), 0);
        }
        {
            struct idm_req_EVENT_RECORD q = {.event = ev[1], .stream = st};
            struct idm_hdr h = {.op = IDM_OP_EVENT_RECORD, .seq = a.seq++, .flags = IDM_F_ASYNC};
            assert_int_equal(idm_send(a.c, &h, &q, sizeof(q), NULL, 0), 0);
        }
        while (got < 11) {
            assert_int_equal(idm_recv(a.c, &a.m, 30000), 0);
            assert_true(a.m.hdr.flags & IDM_F_REPLY);
            assert_true(a.m.hdr.seq >= seq0 && a.m.hdr.seq < a.seq);
            assert_int_equal(a.m.hdr.status, 0);
            got++;
        }
    }
    {
        struct idm_req_MEMCPY_DTOH q = {.src = d, .stream = st, .win_off = 0,
                                        .win_len = 8 * chunk, .len = 8 * chunk};
        struct idm_rep_MEMCPY_DTOH r;
        memset(a.win, 0, 8 * chunk);
        assert_int_equal(pc_call(&a, IDM_OP_MEMCPY_DTOH, &q, sizeof(q), NULL, 0, &r, sizeof(r),
                                 NULL), 0);
        assert_int_equal(r.len, 8 * chunk);
        assert_memory_equal(a.win, expect, 8 * chunk);
    }
    {
        struct idm_req_EVENT_SYNCHRONIZE q = {.event = ev[1]};
        struct idm_req_EVENT_ELAPSED_TIME et = {.start = ev[0], .end = ev[1]};
        struct idm_rep_EVENT_ELAPSED_TIME etr;
        struct idm_req_STREAM_QUERY sq = {.stream = st};
        assert_int_equal(pc_call(&a, IDM_OP_EVENT_SYNCHRONIZE, &q, sizeof(q), NULL, 0, NULL, 0,
                                 NULL), 0);
        assert_int_equal(pc_call(&a, IDM_OP_EVENT_ELAPSED_TIME, &et, sizeof(et), NULL, 0, &etr,
                                 sizeof(etr), NULL), 0);
        assert_true(etr.ms >= 0.0f);
        assert_int_equal(pc_call(&a, IDM_OP_STREAM_QUERY, &sq, sizeof(sq), NULL, 0, NULL, 0,
                                 NULL), 0);
    }
    {
        struct idm_req_STREAM_DESTROY q = {.stream = st};
        struct idm_req_EVENT_RECORD er = {.event = ev[0], .stream = st};
        assert_int_equal(pc_call(&a, IDM_OP_STREAM_DESTROY, &q, sizeof(q), NULL, 0, NULL, 0,
                                 NULL), 0);
        assert_int_equal(pc_call(&a, IDM_OP_EVENT_RECORD, &er, sizeof(er), NULL, 0, NULL, 0,
                                 NULL), CUDA_ERROR_INVALID_HANDLE);
    }
    pc_close(&a);
    free(expect);
}

static const char ptx_store7[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".visible .entry store7(.param .u64 p)\n{\n"
    ".reg .b64 %rd<3>;\n.reg .b32 %r<2>;\n"
    "ld.param.u64 %rd1, [p];\ncvta.to.global.u64 %rd2, %rd1;\n"
    "mov.u32 %r1, 7;\nst.global.u32 [%rd2], %r1;\nret;\n}\n";

/* A PTX kernel uploaded through the window, launched on a stream of zone A; zone B's pointer
 * given to the same kernel faults in A only. */
static void test_proxy_kernel(void **state)
{
    struct pc a, b;
    idm_handle ctx, bctx, lib, k, st;
    idm_dptr d, bd;
    uint8_t rep[4096];
    uint32_t v = 0;

    (void)state;
    fx_connect(&fx, &a, "A");
    fx_connect(&fx, &b, "B");
    assert_int_equal(pc_ctx(&a, &ctx), 0);
    assert_int_equal(pc_ctx(&b, &bctx), 0);
    assert_int_equal(pc_alloc(&a, ctx, 64, &d), 0);
    assert_int_equal(pc_alloc(&b, bctx, 64, &bd), 0);
    assert_int_equal(pc_htod(&b, bd, "BBBB", 4), 0);
    assert_int_equal(pc_load_ptx(&a, ctx, ptx_store7, &lib), 0);
    {
        struct idm_req_LIBRARY_GET_KERNEL q = {.library = lib};
        struct idm_rep_LIBRARY_GET_KERNEL *r = (void *)rep;
        uint32_t n = 0;
        struct idm_param prm;
        assert_int_equal(pc_call(&a, IDM_OP_LIBRARY_GET_KERNEL, &q, sizeof(q), "store7", 7, rep,
                                 sizeof(rep), &n), 0);
        assert_int_equal(r->param_count, 1);
        assert_int_equal(n, sizeof(*r) + sizeof(struct idm_param));
        memcpy(&prm, rep + sizeof(*r), sizeof(prm));
        assert_int_equal(prm.offset, 0);
        assert_int_equal(prm.size, 8);
        k = r->kernel;
        /* B cannot use A's kernel */
        struct idm_req_FUNC_GET_NAME fq = {.func = k};
        assert_int_equal(pc_call(&b, IDM_OP_FUNC_GET_NAME, &fq, sizeof(fq), NULL, 0, NULL, 0,
                                 NULL), CUDA_ERROR_INVALID_HANDLE);
    }
    {
        struct idm_req_STREAM_CREATE q = {.ctx = ctx};
        struct idm_rep_STREAM_CREATE r;
        assert_int_equal(pc_call(&a, IDM_OP_STREAM_CREATE, &q, sizeof(q), NULL, 0, &r,
                                 sizeof(r), NULL), 0);
        st = r.stream;
    }
    {
        struct idm_req_LAUNCH q;
        struct idm_req_MEMCPY_DTOH rd = {.src = d + 8, .stream = st, .win_len = 0, .len = 4};
        idm_dptr arg = d + 8;
        uint8_t out[64];
        memset(&q, 0, sizeof(q));
        q.func = k;
        q.stream = st;
        q.grid[0] = q.grid[1] = q.grid[2] = q.block[0] = q.block[1] = q.block[2] = 1;
        q.param_bytes = 8;
        assert_int_equal(pc_call(&a, IDM_OP_LAUNCH, &q, sizeof(q), &arg, 8, NULL, 0, NULL), 0);
        assert_int_equal(pc_call(&a, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0, out,
                                 sizeof(out), NULL), 0);
        memcpy(&v, out + sizeof(struct idm_rep_MEMCPY_DTOH), 4);
        assert_int_equal(v, 7);
        /* zone B's pointer: the kernel faults, in zone A only */
        arg = bd;
        q.stream = 0;
        assert_int_equal(pc_call(&a, IDM_OP_LAUNCH, &q, sizeof(q), &arg, 8, NULL, 0, NULL),
                         CUDA_ERROR_ILLEGAL_ADDRESS);
    }
    {
        struct idm_req_CTX_SYNCHRONIZE cs = {.ctx = 0};
        uint8_t back[4];
        assert_int_equal(pc_call(&a, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0, NULL, 0,
                                 NULL), CUDA_ERROR_ILLEGAL_ADDRESS);
        assert_int_equal(pc_call(&b, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0, NULL, 0,
                                 NULL), 0);
        assert_int_equal(pc_dtoh(&b, back, bd, 4), 0);
        assert_memory_equal(back, "BBBB", 4);
    }
    pc_close(&a);
    pc_close(&b);
}

/* SIGTERM: exit 0, every socket removed, clients disconnected. Runs its own proxy. */
static void test_proxy_sigterm(void **state)
{
    char tdir[64], path[300], conf[300];
    const char *extra[] = {"--config", conf, NULL};
    FILE *f;
    struct stat st;
    struct pc c;
    idm_handle ctx;
    idm_dptr d;
    pid_t pid;

    (void)state;
    snprintf(tdir, sizeof(tdir), "/tmp/gpu-proxy-term.XXXXXX");
    assert_non_null(mkdtemp(tdir));
    /* The zones come from a configuration file this time. */
    snprintf(conf, sizeof(conf), "%s/proxy.conf", tdir);
    f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "# test configuration\nzone = T1:1G\n  zone=T2\nlog-level = warn\n");
    assert_int_equal(fclose(f), 0);
    /* systemd's notification socket, played by us */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char note[64];
    int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(nfd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", tdir);
    assert_int_equal(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    pid = proxy_start(fx.bin, tdir, extra);
    unsetenv("NOTIFY_SOCKET");
    assert_true(pid > 0);
    memset(note, 0, sizeof(note));
    assert_int_equal(recv(nfd, note, sizeof(note) - 1, MSG_DONTWAIT), 7);
    assert_string_equal(note, "READY=1");
    snprintf(path, sizeof(path), "%s/T1.sock", tdir);
    assert_int_equal(pc_connect(&c, path), 0);
    assert_int_equal(pc_ctx(&c, &ctx), CUDA_SUCCESS);
    assert_int_equal(pc_alloc(&c, ctx, 1 << 20, &d), CUDA_SUCCESS);
    assert_int_equal(proxy_stop(pid), 0);
    memset(note, 0, sizeof(note));
    assert_int_equal(recv(nfd, note, sizeof(note) - 1, MSG_DONTWAIT), 10);
    assert_string_equal(note, "STOPPING=1");
    close(nfd);
    unlink(sa.sun_path);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/T2.sock", tdir);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/admin.sock", tdir);
    assert_int_not_equal(stat(path, &st), 0);
    assert_true(pc_alloc(&c, ctx, 16, &d) < 0);
    pc_close(&c);
    assert_int_equal(unlink(conf), 0);
    assert_int_equal(rmdir(tdir), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_hello_and_props),
        cmocka_unit_test(test_proxy_roundtrip),
        cmocka_unit_test(test_proxy_isolation),
        cmocka_unit_test(test_proxy_quota),
        cmocka_unit_test(test_proxy_scrub),
        cmocka_unit_test(test_proxy_client_killed),
        cmocka_unit_test(test_proxy_admin),
        cmocka_unit_test(test_proxy_bad_requests),
        cmocka_unit_test(test_proxy_events),
        cmocka_unit_test(test_proxy_streams),
        cmocka_unit_test(test_proxy_kernel),
        cmocka_unit_test(test_proxy_sigterm),
    };

    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH/TO/gpu_proxy_stub\n", argv[0]);
        return 2;
    }
    snprintf(fx.bin, sizeof(fx.bin), "%s", argv[1]);
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
