/* test_bounds.c - the simulated GPU's host resources stay bounded per zone, against a real
 * gpu_proxy_stub with two zones: a device printf bomb on three streams at once, kernels asking
 * for 1 GiB of local memory and the largest allowed local memory on three streams, a
 * never-ending kernel whose client is killed (its worker's CPU use stops, the zone forgets the
 * client), staged images charged to the quota, clients that leak memory and images on their
 * way out, PING answered while a REMOVE of a zone with a running kernel is pending, and LAUNCH
 * flags (unknown bits, a cooperative grid too large to be co-resident).
 * Throughout, the proxy's processes stay within their budgets (RSS; not checked under ASan,
 * whose shadow memory makes RSS meaningless) and zone b's results stay correct. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cuda.h>

#include "proxy_fixture.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define MiB (1ull << 20)
#define QUOTA_A (256 * MiB)
#define QUOTA_B (64 * MiB)
/* What a worker may hold: its zone's quota, the PTX engine's host pool (512 MiB) and states
 * cached between launches (64 MiB), plus 96 MiB for code, stacks and tables. */
#define WORKER_BUDGET(quota) ((quota) + 512 * MiB + 64 * MiB + 96 * MiB)
#define SUPERVISOR_BUDGET (64 * MiB)

static struct proxy_fixture fx = {.pid = -1};

/* Every thread prints a 300-million-digit number (capped at 512 characters) 8 times. */
static const char ptx_bomb[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".extern .func (.param .b32 func_retval0) vprintf(.param .b64 a, .param .b64 b);\n"
    ".global .align 1 .b8 fmt[15] = {37, 46, 51, 48, 48, 48, 48, 48, 48, 48, 48, 102, 10, 0, 0};\n"
    ".visible .entry bomb(.param .u64 p)\n{\n"
    ".local .align 8 .b8 args[8];\n.reg .pred %p<2>;\n.reg .b32 %r<3>;\n.reg .b64 %rd<5>;\n"
    "mov.u64 %rd1, args;\ncvta.local.u64 %rd2, %rd1;\n"
    "mov.b64 %rd3, 0x400921FB54442D18;\nst.local.u64 [%rd1], %rd3;\n"
    "mov.u64 %rd4, fmt;\ncvta.global.u64 %rd4, %rd4;\nmov.u32 %r1, 0;\n"
    "$L_loop:\n{\n.param .b64 param0;\nst.param.b64 [param0+0], %rd4;\n"
    ".param .b64 param1;\nst.param.b64 [param1+0], %rd2;\n.param .b32 retval0;\n"
    "call.uni (retval0), vprintf, (param0, param1);\n}\n"
    "add.u32 %r1, %r1, 1;\nsetp.lt.u32 %p1, %r1, 8;\n@%p1 bra $L_loop;\nret;\n}\n";

/* 1 GiB of local memory per thread: more than any GPU gives a thread. */
static const char ptx_local_1g[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".visible .entry local1g(.param .u64 p)\n{\n"
    ".local .align 8 .b8 buf[1073741824];\n.reg .b64 %rd<3>;\n"
    "mov.u64 %rd1, buf;\nmov.u64 %rd2, 1;\nst.local.u64 [%rd1+1073741816], %rd2;\nret;\n}\n";

/* 512 KiB of local memory per thread (the most a thread may have), touched at both ends. */
static const char ptx_local_max[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".visible .entry localmax(.param .u64 p)\n{\n"
    ".local .align 8 .b8 buf[524288];\n.reg .b64 %rd<3>;\n"
    "mov.u64 %rd1, buf;\nmov.u64 %rd2, 1;\nst.local.u64 [%rd1], %rd2;\n"
    "st.local.u64 [%rd1+524280], %rd2;\nret;\n}\n";

static const char ptx_spin[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".visible .entry spin(.param .u64 p)\n{\n"
    "$L_top:\nbra.uni $L_top;\nret;\n}\n";

/* c[i] = a[i] + b[i] for 256 ints: a at p, b at p + 1024, c at p + 2048 (one thread). */
static const char ptx_vadd[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".visible .entry vadd(.param .u64 p)\n{\n"
    ".reg .pred %p<2>;\n.reg .b32 %r<5>;\n.reg .b64 %rd<4>;\n"
    "ld.param.u64 %rd1, [p];\ncvta.to.global.u64 %rd1, %rd1;\nmov.u32 %r1, 0;\n"
    "$L_loop:\nmul.wide.u32 %rd2, %r1, 4;\nadd.u64 %rd3, %rd1, %rd2;\n"
    "ld.global.u32 %r2, [%rd3];\nld.global.u32 %r3, [%rd3+1024];\nadd.u32 %r4, %r2, %r3;\n"
    "st.global.u32 [%rd3+2048], %r4;\nadd.u32 %r1, %r1, 1;\nsetp.lt.u32 %p1, %r1, 256;\n"
    "@%p1 bra $L_loop;\nret;\n}\n";

static int group_setup(void **state)
{
    const char *extra[] = {"--zone", "a:256M", "--zone", "b:64M", "--worker-memory", "4G",
                           NULL};
    const char *asan_extra[] = {"--zone", "a:256M", "--zone", "b:64M", NULL};

    (void)state;
    if (UNDER_ASAN)
        printf("   (built with ASan: RSS budgets and --worker-memory are not checked)\n");
    return fx_start(&fx, fx.bin, "bounds", UNDER_ASAN ? asan_extra : extra);
}

static int group_teardown(void **state)
{
    (void)state;
    return fx_stop(&fx);
}

static int worker_pid(const char *zone)
{
    struct pc_zone z;

    assert_int_equal(fx_zone_info(&fx, zone, &z), 0);
    return z.pid;
}

/* The proxy's processes within their budgets: each worker and the supervisor, and their sum. */
static void check_rss(const char *when)
{
    long sup = fx_rss_kib(fx.pid), a = fx_rss_kib(worker_pid("a")), b = fx_rss_kib(worker_pid("b"));

    printf("   RSS %s: supervisor %ld KiB, worker a %ld KiB, worker b %ld KiB\n", when, sup, a, b);
    if (UNDER_ASAN)
        return;
    assert_true(sup > 0 && a > 0 && b > 0);
    assert_true((uint64_t)sup * 1024 <= SUPERVISOR_BUDGET);
    assert_true((uint64_t)a * 1024 <= WORKER_BUDGET(QUOTA_A));
    assert_true((uint64_t)b * 1024 <= WORKER_BUDGET(QUOTA_B));
}

/* Zone b computes correctly: a vector add on a fresh client. */
static void check_zone_b(void)
{
    struct pc b;
    idm_handle ctx, lib, k;
    idm_dptr d;
    uint32_t in[512], out[256];

    fx_connect(&fx, &b, "b");
    assert_int_equal(pc_ctx(&b, &ctx), 0);
    for (int i = 0; i < 512; i++)
        in[i] = (uint32_t)(i * 3 + 1);
    assert_int_equal(pc_alloc(&b, ctx, 3072, &d), 0);
    assert_int_equal(pc_htod(&b, d, in, sizeof(in)), 0);
    assert_int_equal(pc_load_ptx(&b, ctx, ptx_vadd, &lib), 0);
    assert_int_equal(pc_get_kernel(&b, lib, "vadd", &k), 0);
    assert_int_equal(pc_launch1(&b, k, 0, d), 0);
    assert_int_equal(pc_sync(&b), 0);
    assert_int_equal(pc_dtoh(&b, out, d + 2048, sizeof(out)), 0);
    for (int i = 0; i < 256; i++)
        assert_int_equal(out[i], in[i] + in[256 + i]);
    pc_close(&b);
}

/* A client of zone with a stream and kernel `name` of ptx loaded. */
struct client {
    struct pc p;
    idm_handle ctx, lib, k, stream;
    uint32_t grid, block;
    int rc;
};

static int open_client(struct client *c, const char *zone, const char *ptx, const char *name)
{
    struct idm_req_STREAM_CREATE q;
    struct idm_rep_STREAM_CREATE r = {.idm_empty_ = {}};
    int rc;

    fx_connect(&fx, &c->p, zone);
    assert_int_equal(pc_ctx(&c->p, &c->ctx), 0);
    memset(&q, 0, sizeof(q));
    q.ctx = c->ctx;
    assert_int_equal(pc_call(&c->p, IDM_OP_STREAM_CREATE, &q, sizeof(q), NULL, 0, &r, sizeof(r),
                             NULL), 0);
    c->stream = r.stream;
    rc = pc_load_ptx(&c->p, c->ctx, ptx, &c->lib);
    if (rc == 0)
        assert_int_equal(pc_get_kernel(&c->p, c->lib, name, &c->k), 0);
    return rc;
}

static int set_limit(struct client *c, uint32_t limit, uint64_t value)
{
    struct idm_req_CTX_SET_LIMIT q;

    memset(&q, 0, sizeof(q));
    q.ctx = c->ctx;
    q.limit = limit;
    q.value = value;
    return pc_call(&c->p, IDM_OP_CTX_SET_LIMIT, &q, sizeof(q), NULL, 0, NULL, 0, NULL);
}

/* Launches c's kernel on its stream (grid x block threads) and waits for the reply. */
static void *launch_thread(void *arg)
{
    struct client *c = arg;
    struct idm_req_LAUNCH q;
    uint64_t param = 0;

    memset(&q, 0, sizeof(q));
    q.func = c->k;
    q.stream = c->stream;
    q.grid[0] = c->grid;
    q.block[0] = c->block;
    q.grid[1] = q.grid[2] = q.block[1] = q.block[2] = 1;
    q.param_bytes = 8;
    c->rc = pc_call(&c->p, IDM_OP_LAUNCH, &q, sizeof(q), &param, 8, NULL, 0, NULL);
    return NULL;
}

/* Runs the three clients' launches at once, sampling the RSS meanwhile. */
static void run_three(struct client c[3], const char *what)
{
    pthread_t t[3];

    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, launch_thread, &c[i]), 0);
    usleep(300000);
    check_rss(what);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
}

/* The printf bomb on three streams at once: each launch's output stops at its context's FIFO
 * size, the launches succeed, the worker's memory stays bounded. The FIFO size is bounded. */
static void test_bounds_printf_bomb(void **state)
{
    struct client c[3];

    (void)state;
    check_rss("at start");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(open_client(&c[i], "a", ptx_bomb, "bomb"), 0);
        assert_int_equal(set_limit(&c[i], CU_LIMIT_PRINTF_FIFO_SIZE, 1ull << 40),
                         CUDA_ERROR_INVALID_VALUE);
        assert_int_equal(set_limit(&c[i], CU_LIMIT_PRINTF_FIFO_SIZE, 16384), 0);
        c[i].grid = 4;
        c[i].block = 64;
    }
    run_three(c, "during the printf bombs");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].rc, 0);
        pc_close(&c[i].p);
    }
    check_zone_b();
}

/* 1 GiB of local memory per thread is refused at load, three times over; three launches with
 * 512 KiB per thread and 256-thread blocks (128 MiB of states a block) at once share the
 * worker's host pool and all complete. */
static void test_bounds_local_memory(void **state)
{
    struct client c[3];

    (void)state;
    for (int i = 0; i < 3; i++) {
        struct client big;
        assert_int_equal(open_client(&big, "a", ptx_local_1g, "local1g"),
                         CUDA_ERROR_INVALID_PTX);
        pc_close(&big.p);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(open_client(&c[i], "a", ptx_local_max, "localmax"), 0);
        c[i].grid = 3;
        c[i].block = 256;
    }
    run_three(c, "during three 128 MiB-a-block launches");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].rc, 0);
        pc_close(&c[i].p);
    }
    check_rss("after them");
    check_zone_b();
}

/* Waits (up to 5 s) until zone has `want` clients; returns the count last seen. */
static int wait_clients(const char *zone, int want)
{
    struct pc_zone z = {.clients = -1};

    for (int i = 0; i < 100; i++) {
        if (fx_zone_info(&fx, zone, &z) == 0 && z.clients == want)
            break;
        usleep(50000);
    }
    return z.clients;
}

/* A client process starts a never-ending kernel and is killed: the kernel stops (the worker's
 * CPU time stops growing), LIST shows no client, and the worker goes on serving zone a. */
static void test_bounds_kernel_stops_with_client(void **state)
{
    int wpid = worker_pid("a");
    long long t0, t1, t2;
    pid_t child;
    int status;

    (void)state;
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct pc p;
        idm_handle ctx, lib, k;
        char path[300];
        snprintf(path, sizeof(path), "%s/a.sock", fx.dir);
        if (pc_connect(&p, path) != 0 || pc_ctx(&p, &ctx) != 0 ||
            pc_load_ptx(&p, ctx, ptx_spin, &lib) != 0 || pc_get_kernel(&p, lib, "spin", &k) != 0)
            _exit(1);
        pc_launch1(&p, k, 0, 0); /* never answers */
        _exit(2);
    }
    usleep(700000);
    assert_int_equal(waitpid(child, &status, WNOHANG), 0); /* still waiting on its kernel */
    t0 = fx_cpu_ticks(wpid);
    usleep(300000);
    t1 = fx_cpu_ticks(wpid);
    printf("   worker a CPU while the kernel runs: %lld ticks in 0.3 s\n", t1 - t0);
    assert_true(t1 - t0 >= 5); /* it spins */
    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(wait_clients("a", 0), 0);
    t1 = fx_cpu_ticks(wpid);
    usleep(1000000);
    t2 = fx_cpu_ticks(wpid);
    printf("   worker a CPU after its client was killed: %lld ticks in 1 s\n", t2 - t1);
    assert_true(t2 - t1 <= 10);
    assert_int_equal(worker_pid("a"), wpid); /* the same worker */
    {
        struct client c;
        assert_int_equal(open_client(&c, "a", ptx_vadd, "vadd"), 0);
        pc_close(&c.p);
    }
    check_zone_b();
}

/* Staged images are charged to the quota; clients that leave memory and images behind give it
 * all back, however often. */
static void test_bounds_leaks_returned(void **state)
{
    struct idm_req_IMAGE_BEGIN ib = {.size = 40 * MiB};
    struct idm_rep_IMAGE_BEGIN ibr = {.idm_empty_ = {}};
    struct pc_zone z;
    struct pc b;

    (void)state;
    fx_connect(&fx, &b, "b");
    assert_int_equal(pc_call(&b, IDM_OP_IMAGE_BEGIN, &ib, sizeof(ib), NULL, 0, &ibr, sizeof(ibr),
                             NULL), 0);
    assert_int_equal(fx_zone_info(&fx, "b", &z), 0);
    assert_true(z.used >= 40 * MiB);
    assert_int_equal(pc_call(&b, IDM_OP_IMAGE_BEGIN, &ib, sizeof(ib), NULL, 0, &ibr, sizeof(ibr),
                             NULL), CUDA_ERROR_OUT_OF_MEMORY);
    pc_close(&b);
    for (int i = 0; i < 12; i++) {
        struct pc p;
        idm_handle ctx;
        idm_dptr d;
        struct idm_req_IMAGE_BEGIN small = {.size = 4 * MiB};
        fx_connect(&fx, &p, "a");
        assert_int_equal(pc_ctx(&p, &ctx), 0);
        assert_int_equal(pc_alloc(&p, ctx, 32 * MiB, &d), 0);
        assert_int_equal(pc_htod(&p, d, "leak", 4), 0);
        assert_int_equal(pc_call(&p, IDM_OP_IMAGE_BEGIN, &small, sizeof(small), NULL, 0, &ibr,
                                 sizeof(ibr), NULL), 0);
        pc_close(&p); /* without freeing anything */
    }
    assert_int_equal(wait_clients("a", 0), 0);
    assert_int_equal(wait_clients("b", 0), 0);
    assert_int_equal(fx_zone_info(&fx, "a", &z), 0);
    assert_int_equal(z.used, 0);
    assert_int_equal(fx_zone_info(&fx, "b", &z), 0);
    assert_int_equal(z.used, 0);
    check_rss("after 12 leaking clients");
    check_zone_b();
}

struct admin_arg {
    const char *cmd;
    char out[256];
    int rc;
};

static void *admin_thread(void *arg)
{
    struct admin_arg *a = arg;

    a->rc = fx_admin(&fx, a->cmd, a->out, sizeof(a->out));
    return NULL;
}

static void *spin_thread(void *arg)
{
    struct client *c = arg;

    c->rc = pc_launch1(&c->p, c->k, 0, 0);
    return NULL;
}

/* REMOVE of zone a while its kernel runs: PING answers within 0.5 s meanwhile, zone b is
 * unharmed. (Last: zone a is gone afterwards.) */
static void test_bounds_remove_pending(void **state)
{
    struct admin_arg rm = {.cmd = "REMOVE a"};
    struct client c;
    pthread_t st, rt;
    char buf[256];

    (void)state;
    assert_int_equal(open_client(&c, "a", ptx_spin, "spin"), 0);
    assert_int_equal(pthread_create(&st, NULL, spin_thread, &c), 0);
    usleep(200000);
    assert_int_equal(pthread_create(&rt, NULL, admin_thread, &rm), 0);
    usleep(100000);
    for (int i = 0; i < 5; i++) {
        unsigned long long t0 = fx_now_ms();
        assert_int_equal(fx_admin(&fx, "PING", buf, sizeof(buf)), 0);
        assert_int_equal(strncmp(buf, "OK ", 3), 0);
        assert_true(fx_now_ms() - t0 < 500);
        usleep(100000);
    }
    assert_int_equal(pthread_join(rt, NULL), 0);
    assert_int_equal(rm.rc, 0);
    assert_string_equal(rm.out, "OK\n");
    assert_int_equal(pthread_join(st, NULL), 0);
    assert_true(c.rc != 0);
    pc_close(&c.p);
    check_zone_b();
}

/* LAUNCH's flags: a bit other than IDM_LAUNCH_COOPERATIVE is refused; a cooperative grid
 * larger than the simulated GPU's co-resident blocks is refused as too large without poisoning
 * the context; a cooperative launch that fits runs. */
static void launch_flagged(struct pc *p, idm_handle k, idm_dptr d, uint32_t blocks,
                           uint32_t flags, int want)
{
    struct idm_req_LAUNCH q;

    memset(&q, 0, sizeof(q));
    q.func = k;
    q.grid[0] = blocks;
    q.grid[1] = q.grid[2] = q.block[0] = q.block[1] = q.block[2] = 1;
    q.param_bytes = 8;
    q.flags = flags;
    assert_int_equal(pc_call(p, IDM_OP_LAUNCH, &q, sizeof(q), &d, 8, NULL, 0, NULL), want);
}

static void test_bounds_launch_flags(void **state)
{
    struct pc b;
    idm_handle ctx, lib, k;
    idm_dptr d;
    uint32_t in[512], out[256];

    (void)state;
    fx_connect(&fx, &b, "b");
    assert_int_equal(pc_ctx(&b, &ctx), 0);
    for (int i = 0; i < 512; i++)
        in[i] = (uint32_t)(i * 7 + 2);
    assert_int_equal(pc_alloc(&b, ctx, 3072, &d), 0);
    assert_int_equal(pc_htod(&b, d, in, sizeof(in)), 0);
    assert_int_equal(pc_load_ptx(&b, ctx, ptx_vadd, &lib), 0);
    assert_int_equal(pc_get_kernel(&b, lib, "vadd", &k), 0);
    launch_flagged(&b, k, d, 1, 0x2, CUDA_ERROR_INVALID_VALUE);
    launch_flagged(&b, k, d, 1, 0x80000001u, CUDA_ERROR_INVALID_VALUE);
    launch_flagged(&b, k, d, 100000, IDM_LAUNCH_COOPERATIVE,
                   CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE);
    launch_flagged(&b, k, d, 2, IDM_LAUNCH_COOPERATIVE, 0);
    assert_int_equal(pc_sync(&b), 0);
    assert_int_equal(pc_dtoh(&b, out, d + 2048, sizeof(out)), 0);
    for (int i = 0; i < 256; i++)
        assert_int_equal(out[i], in[i] + in[256 + i]);
    pc_close(&b);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds_printf_bomb),
        cmocka_unit_test(test_bounds_local_memory),
        cmocka_unit_test(test_bounds_kernel_stops_with_client),
        cmocka_unit_test(test_bounds_leaks_returned),
        cmocka_unit_test(test_bounds_remove_pending),
        cmocka_unit_test(test_bounds_launch_flags),
    };

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/gpu_proxy_stub\n", argv[0]);
        return 2;
    }
    snprintf(fx.bin, sizeof(fx.bin), "%s", argv[1]);
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
