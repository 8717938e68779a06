/* test_metrics_live.c - the figures of a real gpu_proxy_stub while two zones work: the admin
 * socket's METRICS (memory used equals what the zones hold, a forged handle counted as a
 * refusal), vgpu-smi's table, JSON and zone detail checked against the same state, the
 * Prometheus listener (on a Unix socket) answering GET /metrics and refusing anything else
 * clearly, and bad admin requests answered with a clear error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <cuda.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proxy_fixture.h"

static struct proxy_fixture fx;
static char smi[600], msock[100];
static struct pc ca, cb;

#define MiB (1ull << 20)

static int group_setup(void **state)
{
    const char *extra[] = {"--zone", "a:64M", "--zone", "b:32M", "--metrics", msock, NULL};
    char tmp[512];

    (void)state;
    snprintf(msock, sizeof(msock), "/tmp/gpu-proxy-metrics-%d.sock", (int)getpid());
    snprintf(tmp, sizeof(tmp), "%s", fx.bin);
    snprintf(smi, sizeof(smi), "%s/vgpu-smi", dirname(tmp));
    return fx_start(&fx, fx.bin, "metrics", extra);
}

static int group_teardown(void **state)
{
    (void)state;
    return fx_stop(&fx);
}

/* Zone a holds 1 + 3 MiB and copied 100 bytes in; zone b holds 2 MiB and tried a's context. */
static void make_work(void)
{
    idm_handle xa, xb;
    idm_dptr d1, d2, d3;
    uint8_t data[100] = {1};
    int32_t rc;

    fx_connect(&fx, &ca, "a");
    fx_connect(&fx, &cb, "b");
    assert_int_equal(pc_ctx(&ca, &xa), 0);
    assert_int_equal(pc_ctx(&cb, &xb), 0);
    assert_int_equal(pc_alloc(&ca, xa, 1 * MiB, &d1), 0);
    assert_int_equal(pc_alloc(&ca, xa, 3 * MiB, &d2), 0);
    assert_int_equal(pc_htod(&ca, d1, data, sizeof(data)), 0);
    assert_int_equal(pc_alloc(&cb, xb, 2 * MiB, &d3), 0);
    rc = pc_alloc(&cb, xa, 1 * MiB, &d3); /* zone a's context handle, from zone b */
    assert_true(rc == CUDA_ERROR_INVALID_CONTEXT || rc == CUDA_ERROR_INVALID_HANDLE);
}

/* The value of key= in the METRICS line of zone name, or -1. */
static long long metric(const char *text, const char *zone, const char *key)
{
    char head[128], k[128];
    const char *line, *p, *end;

    snprintf(head, sizeof(head), "\nzone name=%s ", zone);
    line = strstr(text, head);
    if (line == NULL)
        return -1;
    end = strchr(line + 1, '\n');
    snprintf(k, sizeof(k), " %s=", key);
    p = strstr(line, k);
    if (p == NULL || (end && p > end))
        return -1;
    return atoll(p + strlen(k));
}

static void test_metrics_live_admin(void **state)
{
    static char out[1 << 16];

    (void)state;
    make_work();
    assert_int_equal(fx_admin(&fx, "METRICS", out, sizeof(out)), 0);
    assert_memory_equal(out, "OK version=1 zones=2\ngpu backend=stub ", 37);
    assert_int_equal(metric(out, "a", "used"), 4 * MiB);
    assert_int_equal(metric(out, "a", "peak"), 4 * MiB);
    assert_int_equal(metric(out, "a", "allocations"), 2);
    assert_int_equal(metric(out, "a", "clients"), 1);
    assert_int_equal(metric(out, "a", "htod_bytes"), 100);
    assert_int_equal(metric(out, "a", "refused.handle"), 0);
    assert_int_equal(metric(out, "b", "used"), 2 * MiB);
    assert_int_equal(metric(out, "b", "quota"), 32 * MiB);
    assert_int_equal(metric(out, "b", "refused.handle"), 1);
    assert_true(metric(out, "b", "calls.memory") >= 2);
    /* Bad requests get a clear error, and the socket keeps answering. */
    assert_int_equal(fx_admin(&fx, "METRICS all", out, sizeof(out)), 0);
    assert_string_equal(out, "ERR METRICS takes no argument (it answers version=1 with every "
                             "zone)\n");
    assert_int_equal(fx_admin(&fx, "METRIC", out, sizeof(out)), 0);
    assert_string_equal(out, "ERR unknown request\n");
    assert_int_equal(fx_admin(&fx, "", out, sizeof(out)), 0);
    assert_string_equal(out, "ERR empty request\n");
}

/* Runs vgpu-smi with args; its stdout in out, its exit status returned. */
static int run_smi(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    size_t n;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "%s --admin %s/admin.sock %s 2>&1", smi, fx.dir, args);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    return pclose(p);
}

static void test_metrics_live_vgpu_smi(void **state)
{
    static char out[1 << 16];

    (void)state;
    assert_int_equal(run_smi("", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "GPU: vGPU Simulated H100 80GB HBM3 (backend stub)"));
    assert_non_null(strstr(out, "\na                    ready           4 MiB /   64 MiB       1"));
    assert_non_null(strstr(out, "\nb                    ready           2 MiB /   32 MiB       1"));
    assert_int_equal(run_smi("--json -z a", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "{\"version\":1,\"gpu\":{\"backend\":\"stub\""));
    assert_non_null(strstr(out, "\"name\":\"a\",\"quota\":67108864,\"used\":4194304,"));
    assert_null(strstr(out, "\"name\":\"b\""));
    assert_int_equal(run_smi("-q -z b", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "Zone b\n"));
    assert_non_null(strstr(out, "    refused.handle                   : 1\n"));
    assert_int_not_equal(run_smi("-q -z nosuch", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "vgpu-smi: no zone \"nosuch\" (zones: a b)"));
    assert_int_not_equal(run_smi("-l 0", out, sizeof(out)), 0);
    assert_non_null(strstr(out, "-l wants seconds"));
}

/* One HTTP exchange on the metrics socket. */
static void http(const char *req, char *out, size_t cap)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    size_t n = 0;
    ssize_t r;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", msock);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    while (n < cap - 1 && (r = recv(fd, out + n, cap - 1 - n, 0)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(fd);
}

static void test_metrics_live_prometheus(void **state)
{
    static char out[1 << 20];

    (void)state;
    http("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\n", out, sizeof(out));
    assert_memory_equal(out, "HTTP/1.1 200 OK\r\n", 17);
    assert_non_null(strstr(out, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    assert_non_null(strstr(out, "\nvgpu_zone_memory_used_bytes{zone=\"a\"} 4194304\n"));
    assert_non_null(strstr(out, "\nvgpu_zone_memory_used_bytes{zone=\"b\"} 2097152\n"));
    assert_non_null(strstr(out, "\nvgpu_zone_refusals_total{zone=\"b\",reason=\"handle\"} 1\n"));
    assert_non_null(strstr(out, "\nvgpu_zone_copied_bytes_total{zone=\"a\",direction=\"htod\"} "
                                "100\n"));
    http("GET /other HTTP/1.1\r\n\r\n", out, sizeof(out));
    assert_memory_equal(out, "HTTP/1.1 404 Not Found\r\n", 24);
    http("POST /metrics HTTP/1.1\r\n\r\n", out, sizeof(out));
    assert_memory_equal(out, "HTTP/1.1 405 Method Not Allowed\r\n", 33);
    http("hello\n\n", out, sizeof(out));
    assert_memory_equal(out, "HTTP/1.1 400 Bad Request\r\n", 26);
    pc_close(&ca);
    pc_close(&cb);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_live_admin),
        cmocka_unit_test(test_metrics_live_vgpu_smi),
        cmocka_unit_test(test_metrics_live_prometheus),
    };

    if (argc < 2) {
        fprintf(stderr, "usage: %s GPU_PROXY_STUB\n", argv[0]);
        return 2;
    }
    snprintf(fx.bin, sizeof(fx.bin), "%s", argv[1]);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
