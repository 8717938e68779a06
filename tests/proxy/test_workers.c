/* test_workers.c - gpu_proxy's process model against a real gpu_proxy_stub: one sandboxed worker
 * process per zone, a sticky fault or a crash contained to its zone (the zone's next client is
 * served by a fresh worker), REMOVE of a zone whose kernel never ends answered without holding
 * up other admin requests, and SIGTERM with a kernel running. */
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cuda.h>

#include "proxy_fixture.h"

static struct proxy_fixture fx = {.pid = -1};

static const char ptx_store7[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".visible .entry store7(.param .u64 p)\n{\n"
    ".reg .b64 %rd<3>;\n.reg .b32 %r<2>;\n"
    "ld.param.u64 %rd1, [p];\ncvta.to.global.u64 %rd2, %rd1;\n"
    "mov.u32 %r1, 7;\nst.global.u32 [%rd2], %r1;\nret;\n}\n";

/* Never ends (the proxy's watchdog is far away at its default). */
static const char ptx_spin[] =
    ".version 8.0\n.target sm_90\n.address_size 64\n"
    ".visible .entry spin(.param .u64 p)\n{\n"
    "$L_top:\nbra.uni $L_top;\nret;\n}\n";

static int group_setup(void **state)
{
    const char *extra[] = {"--zone", "A:64M", "--zone", "B:64M", NULL};

    (void)state;
    return fx_start(&fx, fx.bin, "workers", extra);
}

static int group_teardown(void **state)
{
    (void)state;
    return fx_stop(&fx);
}

/* A round trip through a fresh allocation of the connection's zone. */
static void roundtrip(struct pc *p, idm_handle ctx, uint8_t seed)
{
    uint8_t in[4096], out[4096];
    idm_dptr d;

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(seed + i * 7);
    assert_int_equal(pc_alloc(p, ctx, sizeof(in), &d), 0);
    assert_int_equal(pc_htod(p, d, in, sizeof(in)), 0);
    memset(out, 0, sizeof(out));
    assert_int_equal(pc_dtoh(p, out, d, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));
    assert_int_equal(pc_free(p, d), 0);
}

/* Each zone has its own worker process, neither is the supervisor, and each runs sandboxed:
 * seccomp filter, no new privileges, not root when the proxy was started as root. */
static void test_workers_one_process_per_zone(void **state)
{
    struct pc_zone za, zb;
    int pa, pb;
    char v[128];

    (void)state;
    assert_int_equal(fx_zone_info(&fx, "A", &za), 0);
    assert_string_equal(za.state, "ready");
    assert_int_equal(fx_zone_info(&fx, "B", &zb), 0);
    pa = za.pid;
    pb = zb.pid;
    assert_true(pa > 0 && pb > 0);
    assert_int_not_equal(pa, pb);
    assert_int_not_equal(pa, fx.pid);
    assert_int_not_equal(pb, fx.pid);
    assert_int_equal(fx_proc_field(pa, "PPid", v, sizeof(v)), 0);
    assert_int_equal(atoi(v), fx.pid);
    assert_int_equal(fx_proc_field(pa, "Seccomp", v, sizeof(v)), 0);
    assert_string_equal(v, "2");
    assert_int_equal(fx_proc_field(pa, "NoNewPrivs", v, sizeof(v)), 0);
    assert_string_equal(v, "1");
    if (geteuid() == 0) {
        assert_int_equal(fx_proc_field(pa, "Uid", v, sizeof(v)), 0);
        assert_int_not_equal(atoi(v), 0);
    }
}

/* A kernel fault in zone A: the faulting client gets it (the simulated GPU gives each session
 * its own context, so A's other client goes on), B keeps its data and keeps computing, and A's
 * next client works. (The retiring of a worker whose real context is lost is exercised through
 * the chain, tests/chain.) */
static void test_workers_fault_contained(void **state)
{
    struct pc a1, a2, b, a3;
    idm_handle actx, a2ctx, bctx, a3ctx, lib, k, blib, bk;
    idm_dptr bd, ad;
    struct pc_zone z0, z1;
    uint32_t v = 0;

    (void)state;
    assert_int_equal(fx_zone_info(&fx, "A", &z0), 0);
    fx_connect(&fx, &a1, "A");
    fx_connect(&fx, &a2, "A");
    fx_connect(&fx, &b, "B");
    assert_int_equal(pc_ctx(&a1, &actx), 0);
    assert_int_equal(pc_ctx(&a2, &a2ctx), 0);
    assert_int_equal(pc_ctx(&b, &bctx), 0);
    assert_int_equal(pc_alloc(&b, bctx, 64, &bd), 0);
    assert_int_equal(pc_htod(&b, bd, "BBBB", 4), 0);
    assert_int_equal(pc_load_ptx(&a1, actx, ptx_store7, &lib), 0);
    assert_int_equal(pc_get_kernel(&a1, lib, "store7", &k), 0);
    /* B's pointer means nothing in A: the kernel faults. */
    assert_int_equal(pc_launch1(&a1, k, 0, bd), CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_int_equal(pc_sync(&a1), CUDA_ERROR_ILLEGAL_ADDRESS);
    /* Zone A's other client has its own simulated context. */
    assert_int_equal(pc_alloc(&a2, a2ctx, 64, &ad), 0);
    assert_int_equal(pc_free(&a2, ad), 0);
    /* Zone B: its data intact, its own kernel runs. */
    {
        uint8_t back[4];
        assert_int_equal(pc_dtoh(&b, back, bd, 4), 0);
        assert_memory_equal(back, "BBBB", 4);
        assert_int_equal(pc_load_ptx(&b, bctx, ptx_store7, &blib), 0);
        assert_int_equal(pc_get_kernel(&b, blib, "store7", &bk), 0);
        assert_int_equal(pc_launch1(&b, bk, 0, bd + 4), 0);
        assert_int_equal(pc_sync(&b), 0);
        assert_int_equal(pc_dtoh(&b, &v, bd + 4, 4), 0);
        assert_int_equal(v, 7);
        roundtrip(&b, bctx, 3);
    }
    pc_close(&a1);
    pc_close(&a2);
    /* A new client of zone A works, served by the same worker. */
    fx_connect(&fx, &a3, "A");
    assert_int_equal(pc_ctx(&a3, &a3ctx), 0);
    roundtrip(&a3, a3ctx, 9);
    assert_int_equal(fx_zone_info(&fx, "A", &z1), 0);
    assert_int_equal(z1.pid, z0.pid);
    assert_int_equal(z1.restarts, z0.restarts);
    assert_int_equal(z1.faults, z0.faults);
    pc_close(&a3);
    pc_close(&b);
}

/* A worker killed from outside (as a crash would end it): the zone gets a new worker, B never
 * notices. */
static void test_workers_crash_restart(void **state)
{
    struct pc a, b, a2;
    idm_handle actx, bctx, a2ctx;
    idm_dptr d;
    struct pc_zone z0, z1;
    int pid, new_pid;

    (void)state;
    fx_connect(&fx, &a, "A");
    fx_connect(&fx, &b, "B");
    assert_int_equal(pc_ctx(&a, &actx), 0);
    assert_int_equal(pc_ctx(&b, &bctx), 0);
    assert_int_equal(fx_zone_info(&fx, "A", &z0), 0);
    pid = z0.pid;
    assert_int_equal(kill(pid, SIGKILL), 0);
    /* The killed worker's client sees its connection gone, as an error, never a hang. */
    assert_true(pc_alloc(&a, actx, 64, &d) < 0);
    roundtrip(&b, bctx, 5);
    new_pid = fx_wait_worker(&fx, "A", pid);
    assert_true(new_pid > 0);
    fx_connect(&fx, &a2, "A");
    assert_int_equal(pc_ctx(&a2, &a2ctx), 0);
    roundtrip(&a2, a2ctx, 1);
    assert_int_equal(fx_zone_info(&fx, "A", &z1), 0);
    assert_int_equal(z1.restarts, z0.restarts + 1);
    assert_int_equal(z1.faults, z0.faults + 1);
    pc_close(&a);
    pc_close(&a2);
    pc_close(&b);
}

struct spin_arg {
    struct pc p;
    idm_handle k;
    int rc;
};

static void *spin_thread(void *arg)
{
    struct spin_arg *s = arg;

    s->rc = pc_launch1(&s->p, s->k, 0, 0);
    return NULL;
}

/* Starts a never-ending kernel on the default stream of a new client of zone. */
static void start_spinner(const char *zone, struct spin_arg *s, pthread_t *t)
{
    idm_handle ctx, lib;

    fx_connect(&fx, &s->p, zone);
    assert_int_equal(pc_ctx(&s->p, &ctx), 0);
    assert_int_equal(pc_load_ptx(&s->p, ctx, ptx_spin, &lib), 0);
    assert_int_equal(pc_get_kernel(&s->p, lib, "spin", &s->k), 0);
    assert_int_equal(pthread_create(t, NULL, spin_thread, s), 0);
    usleep(200000); /* the launch is running in the worker */
}

struct admin_arg {
    const char *cmd;
    char out[256];
    int rc;
    uint64_t took_ms;
};

static void *admin_thread(void *arg)
{
    struct admin_arg *a = arg;
    uint64_t t0 = fx_now_ms();

    a->rc = fx_admin(&fx, a->cmd, a->out, sizeof(a->out));
    a->took_ms = fx_now_ms() - t0;
    return NULL;
}

/* REMOVE of a zone whose kernel never ends: PING is answered meanwhile, REMOVE answers once
 * the worker is gone (killed after its grace), the kernel's client sees an error. */
static void test_workers_remove_stuck_zone(void **state)
{
    struct spin_arg s;
    struct admin_arg rm = {.cmd = "REMOVE C"};
    pthread_t st, rt;
    struct pc_zone zc;
    char buf[256];
    int pid;

    (void)state;
    assert_int_equal(fx_admin(&fx, "ADD C 16M", buf, sizeof(buf)), 0);
    assert_int_equal(strncmp(buf, "OK ", 3), 0);
    start_spinner("C", &s, &st);
    assert_int_equal(fx_zone_info(&fx, "C", &zc), 0);
    assert_int_equal(pthread_create(&rt, NULL, admin_thread, &rm), 0);
    usleep(100000);
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = fx_now_ms();
        assert_int_equal(fx_admin(&fx, "PING", buf, sizeof(buf)), 0);
        assert_int_equal(strncmp(buf, "OK ", 3), 0);
        assert_true(fx_now_ms() - t0 < 1000);
    }
    assert_int_equal(pthread_join(rt, NULL), 0);
    assert_int_equal(rm.rc, 0);
    assert_string_equal(rm.out, "OK\n");
    assert_true(rm.took_ms < 10000);
    assert_int_equal(pthread_join(st, NULL), 0);
    assert_true(s.rc < 0); /* the connection went with the worker */
    pc_close(&s.p);
    pid = zc.pid;
    assert_int_not_equal(fx_zone_info(&fx, "C", &zc), 0);
    assert_int_equal(kill(pid, 0), -1); /* the worker process is gone */
    assert_int_equal(errno, ESRCH);
}

/* SIGTERM with a kernel running: the proxy exits 0 within a few seconds. Own proxy. */
static void test_workers_sigterm_busy(void **state)
{
    const char *extra[] = {"--zone", "D:16M", NULL};
    struct proxy_fixture saved = fx;
    struct spin_arg s;
    pthread_t st;
    pid_t pid;
    uint64_t t0;
    int status;

    (void)state;
    assert_int_equal(fx_start(&fx, saved.bin, "workers-term", extra), 0);
    pid = fx.pid;
    start_spinner("D", &s, &st);
    t0 = fx_now_ms();
    assert_int_equal(kill(pid, SIGTERM), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(fx_now_ms() - t0 < 5000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(pthread_join(st, NULL), 0);
    assert_true(s.rc < 0);
    pc_close(&s.p);
    fx.pid = -1; /* reaped above */
    assert_int_equal(fx_stop(&fx), 0);
    fx = saved;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_one_process_per_zone),
        cmocka_unit_test(test_workers_fault_contained),
        cmocka_unit_test(test_workers_crash_restart),
        cmocka_unit_test(test_workers_remove_stuck_zone),
        cmocka_unit_test(test_workers_sigterm_busy),
    };

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/gpu_proxy_stub\n", argv[0]);
        return 2;
    }
    snprintf(fx.bin, sizeof(fx.bin), "%s", argv[1]);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
