/* test_metrics.c - unit tests of the proxy's figures: the counters the dispatch keeps on a
 * zone's page (calls per family, latency buckets, failures per CUresult, refusals by reason,
 * bytes copied, allocations, peak), driven in-process with the stub backend, and the two
 * renderings of metrics.c (the admin socket's METRICS answer and the Prometheus text format). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <cuda.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "dispatch.h"
#include "log.h"
#include "metrics.h"
#include "zone.h"

#define WIN (1u << 20)

struct fixture {
    struct zone_registry reg;
    struct zone *z;
    struct session *s;
    struct worker_stats page;
    uint8_t *win;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    log_set_level(LOG_OFF);
    zreg_init(&f->reg, &backend_stub);
    f->win = calloc(1, WIN);
    if (f->win == NULL || zreg_add(&f->reg, "A", 1u << 20, &f->z) != 0)
        return -1;
    f->z->pub = &f->page;
    f->z->m = &f->page.m;
    if (session_open(f->z, NULL, f->win, WIN, 4096, "a", &f->s) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    session_close(f->s);
    zreg_unlink(&f->reg, f->z);
    zone_unref(f->z);
    free(f->win);
    free(f);
    return 0;
}

static int32_t call(struct session *s, uint16_t op, const void *req, size_t len, const void *tail,
                    size_t tail_len)
{
    uint8_t buf[4096];
    struct idm_hdr h = {.op = op, .len = (uint32_t)(len + tail_len)};
    uint32_t rep_len;
    int32_t status = -1;

    memcpy(buf, req, len);
    if (tail_len)
        memcpy(buf + len, tail, tail_len);
    assert_int_equal(dispatch_request(s, &h, buf, &rep_len, &status), 0);
    return status;
}

static idm_handle ctx_of(struct session *s)
{
    struct idm_req_PRIMARY_CTX_RETAIN q = {.device = 0};

    assert_int_equal(call(s, IDM_OP_PRIMARY_CTX_RETAIN, &q, sizeof(q), NULL, 0), 0);
    return ((struct idm_rep_PRIMARY_CTX_RETAIN *)s->rbuf)->ctx;
}

static idm_dptr alloc(struct session *s, idm_handle ctx, uint64_t size, int32_t want)
{
    struct idm_req_MEM_ALLOC q = {.ctx = ctx, .size = size};

    assert_int_equal(call(s, IDM_OP_MEM_ALLOC, &q, sizeof(q), NULL, 0), want);
    return ((struct idm_rep_MEM_ALLOC *)s->rbuf)->dptr;
}

static uint64_t sum(const uint64_t *v, unsigned n)
{
    uint64_t t = 0;

    for (unsigned i = 0; i < n; i++)
        t += v[i];
    return t;
}

/* Calls land in their family, one in WM_TIMED_EVERY in a latency bucket; failures by
 * CUresult. */
static void test_metrics_calls_and_failures(void **state)
{
    struct fixture *f = *state;
    struct worker_counters *m = &f->page.m;
    idm_handle ctx = ctx_of(f->s);
    struct idm_req_MEM_GET_INFO gi = {.ctx = ctx};

    for (int i = 0; i < 2 * WM_TIMED_EVERY - 1; i++)
        assert_int_equal(call(f->s, IDM_OP_MEM_GET_INFO, &gi, sizeof(gi), NULL, 0), 0);
    gi.ctx = ctx ^ 0x100000000ull; /* a stale generation */
    assert_int_equal(call(f->s, IDM_OP_MEM_GET_INFO, &gi, sizeof(gi), NULL, 0),
                     CUDA_ERROR_INVALID_CONTEXT);
    assert_int_equal(m->calls[WM_FAM_DEVICE], 2 * WM_TIMED_EVERY);
    assert_int_equal(m->calls[WM_FAM_CONTEXT], 1);
    /* 2 x WM_TIMED_EVERY calls in a row on one thread: exactly two were timed. */
    assert_int_equal(sum(m->lat_bucket[WM_FAM_DEVICE], WM_LAT_BUCKETS), 2);
    assert_true(m->lat_sum_ns[WM_FAM_DEVICE] > 0);
    assert_int_equal(m->failures[CUDA_ERROR_INVALID_CONTEXT], 1);
    assert_int_equal(sum(m->failures, WM_RESULTS), 1);
}

/* Each refused request counts once, under the reason of the check that refused it. */
static void test_metrics_refusals_by_reason(void **state)
{
    struct fixture *f = *state;
    struct worker_counters *m = &f->page.m;
    idm_handle ctx = ctx_of(f->s);
    idm_dptr d = alloc(f->s, ctx, 4096, 0);
    struct idm_req_MEMCPY_HTOD wr = {.dst = d + 4096, .len = 8};
    struct idm_req_STREAM_SYNCHRONIZE ss = {.stream = 0x2200000100000005ull}; /* forged */
    uint8_t data[8] = {0};
    struct idm_hdr bad = {.op = 999, .len = 0};
    uint32_t rep_len;
    int32_t status;

    assert_int_equal(call(f->s, IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0),
                     CUDA_ERROR_INVALID_HANDLE);
    assert_int_equal(call(f->s, IDM_OP_MEMCPY_HTOD, &wr, sizeof(wr), data, 8),
                     CUDA_ERROR_INVALID_VALUE);
    wr.dst = d;
    wr.win_off = WIN;
    wr.win_len = 8;
    assert_int_equal(call(f->s, IDM_OP_MEMCPY_HTOD, &wr, sizeof(wr), NULL, 0),
                     CUDA_ERROR_INVALID_VALUE);
    alloc(f->s, ctx, 2u << 20, CUDA_ERROR_OUT_OF_MEMORY); /* past the 1 MiB quota */
    assert_int_equal(dispatch_request(f->s, &bad, (const uint8_t *)"", &rep_len, &status), 0);
    assert_int_equal(m->refusals[WM_REF_HANDLE], 1);
    assert_int_equal(m->refusals[WM_REF_DEVICE_RANGE], 1);
    assert_int_equal(m->refusals[WM_REF_WINDOW], 1);
    assert_int_equal(m->refusals[WM_REF_QUOTA], 1);
    assert_int_equal(m->refusals[WM_REF_MALFORMED], 1);
    assert_int_equal(sum(m->refusals, WM_REFUSALS), 5);
    assert_int_equal(m->calls[WM_FAM_OTHER], 1);
}

/* Bytes copied each way, live allocations, memory used and its peak on the page. */
static void test_metrics_bytes_allocations_peak(void **state)
{
    struct fixture *f = *state;
    idm_handle ctx = ctx_of(f->s);
    idm_dptr a = alloc(f->s, ctx, 4096, 0), b = alloc(f->s, ctx, 8192, 0);
    struct idm_req_MEMCPY_HTOD wr = {.dst = a, .len = 100};
    struct idm_req_MEMCPY_DTOH rd = {.src = a, .len = 60};
    struct idm_req_MEM_FREE fr = {.dptr = b};
    uint8_t data[100] = {1};

    assert_int_equal(call(f->s, IDM_OP_MEMCPY_HTOD, &wr, sizeof(wr), data, 100), 0);
    assert_int_equal(call(f->s, IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0), 0);
    assert_int_equal(f->page.allocations, 2);
    assert_int_equal(f->page.used, 4096 + 8192);
    assert_int_equal(call(f->s, IDM_OP_MEM_FREE, &fr, sizeof(fr), NULL, 0), 0);
    assert_int_equal(f->page.allocations, 1);
    assert_int_equal(f->page.used, 4096);
    assert_int_equal(f->page.peak, 4096 + 8192);
    assert_int_equal(f->page.m.htod_bytes, 100);
    assert_int_equal(f->page.m.dtoh_bytes, 60);
    assert_int_equal(f->page.m.calls[WM_FAM_COPY], 2);
    assert_int_equal(f->page.m.connections, 1);
}

/* Without counters (--call-stats off) nothing is counted. */
static void test_metrics_off_counts_nothing(void **state)
{
    struct fixture *f = *state;
    struct worker_counters zero;
    idm_handle ctx;

    f->z->m = NULL;
    ctx = ctx_of(f->s);
    alloc(f->s, ctx, 2u << 20, CUDA_ERROR_OUT_OF_MEMORY);
    memset(&zero, 0, sizeof(zero));
    zero.connections = 1; /* counted when the session opened */
    assert_memory_equal(&f->page.m, &zero, sizeof(zero));
}

static void snaps(struct gpu_snap *g, struct zone_snap z[2])
{
    memset(g, 0, sizeof(*g));
    memset(z, 0, 2 * sizeof(*z));
    snprintf(g->backend, sizeof(g->backend), "stub");
    snprintf(g->device, sizeof(g->device), "Sim \"GPU\" 80=GB");
    g->total_bytes = 1ull << 30;
    snprintf(z[0].name, sizeof(z[0].name), "a");
    snprintf(z[1].name, sizeof(z[1].name), "b");
    z[0].state = "ready";
    z[1].state = "restarting";
    z[0].used = 12345;
    z[0].quota = 1u << 20;
    z[1].faults = 2;
    snprintf(z[1].last_fault, sizeof(z[1].last_fault), "worker killed by signal 9 (Killed)");
    z[0].m.calls[WM_FAM_MEMORY] = 3;
    z[0].m.lat_bucket[WM_FAM_MEMORY][0] = 2;
    z[0].m.lat_bucket[WM_FAM_MEMORY][WM_LAT_BUCKETS - 1] = 1;
    z[0].m.lat_sum_ns[WM_FAM_MEMORY] = 2000000000;
    z[1].m.refusals[WM_REF_HANDLE] = 7;
    z[1].m.failures[CUDA_ERROR_INVALID_HANDLE] = 7;
    z[1].m.failures[WM_RESULTS - 1] = 1;
}

static char *render(int prom)
{
    struct gpu_snap g;
    struct zone_snap z[2];
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    assert_non_null(f);
    snaps(&g, z);
    assert_int_equal(prom ? metrics_prom_text(f, &g, z, 2) : metrics_admin_text(f, &g, z, 2), 0);
    assert_int_equal(fclose(f), 0);
    return out;
}

/* The Prometheus text: HELP and TYPE once per metric, its samples together, escaped labels,
 * counters named _total, a cumulative histogram whose +Inf bucket equals _count. */
static void test_metrics_prometheus_text(void **state)
{
    char *t = render(1);
    const char *used = strstr(t, "# TYPE vgpu_zone_memory_used_bytes gauge\n");

    (void)state;
    assert_non_null(strstr(t, "vgpu_gpu_info{backend=\"stub\",device=\"Sim \\\"GPU\\\" 80=GB\"} 1\n"));
    assert_non_null(used);
    assert_non_null(strstr(used, "\nvgpu_zone_memory_used_bytes{zone=\"a\"} 12345\n"
                                 "vgpu_zone_memory_used_bytes{zone=\"b\"} 0\n"));
    assert_non_null(strstr(t, "vgpu_zone_refusals_total{zone=\"b\",reason=\"handle\"} 7\n"));
    assert_non_null(strstr(t, "vgpu_zone_refusals_total{zone=\"a\",reason=\"quota\"} 0\n"));
    assert_non_null(strstr(t, "vgpu_zone_call_failures_total{zone=\"b\","
                              "result=\"CUDA_ERROR_INVALID_HANDLE\"} 7\n"));
    assert_non_null(strstr(t, "vgpu_zone_call_failures_total{zone=\"b\",result=\"other\"} 1\n"));
    assert_null(strstr(t, "vgpu_zone_call_failures_total{zone=\"a\""));
    assert_non_null(strstr(t, "vgpu_zone_call_duration_seconds_bucket{zone=\"a\","
                              "family=\"memory\",le=\"1e-06\"} 2\n"));
    assert_non_null(strstr(t, "vgpu_zone_call_duration_seconds_bucket{zone=\"a\","
                              "family=\"memory\",le=\"1\"} 2\n"));
    assert_non_null(strstr(t, "vgpu_zone_call_duration_seconds_bucket{zone=\"a\","
                              "family=\"memory\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(t, "vgpu_zone_call_duration_seconds_sum{zone=\"a\","
                              "family=\"memory\"} 2\n"));
    assert_non_null(strstr(t, "vgpu_zone_call_duration_seconds_count{zone=\"a\","
                              "family=\"memory\"} 3\n"));
    assert_non_null(strstr(t, "vgpu_zone_up{zone=\"b\"} 0\n"));
    assert_non_null(strstr(t, "vgpu_zone_faults_total{zone=\"b\"} 2\n"));
    /* Each metric's HELP appears once. */
    assert_non_null(strstr(t, "# HELP vgpu_zone_calls_total"));
    assert_null(strstr(strstr(t, "# HELP vgpu_zone_calls_total") + 1,
                       "# HELP vgpu_zone_calls_total"));
    free(t);
}

/* METRICS: versioned first line, a gpu line, a zone line each, strings percent-encoded. */
static void test_metrics_admin_text(void **state)
{
    char *t = render(0);
    const char *head = "OK version=1 zones=2\ngpu backend=stub device=Sim%20\"GPU\"%2080%3DGB "
                       "total_bytes=1073741824 nvml=0\nzone name=a quota=1048576 used=12345 ";

    (void)state;
    assert_memory_equal(t, head, strlen(head));
    assert_non_null(strstr(t, " last_fault=worker%20killed%20by%20signal%209%20(Killed) "));
    assert_non_null(strstr(t, " calls.memory=3 lat_ns.memory=2000000000 timed.memory=3 "));
    assert_non_null(strstr(t, " refused.handle=7 "));
    assert_non_null(strstr(t, " fail.CUDA_ERROR_INVALID_HANDLE=7 fail.other=1\n"));
    assert_int_equal(t[strlen(t) - 1], '\n');
    free(t);
}

static char *render_gpu(const struct gpu_snap *g, int prom)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);

    assert_non_null(f);
    assert_int_equal(prom ? metrics_prom_text(f, g, NULL, 0) : metrics_admin_text(f, g, NULL, 0),
                     0);
    assert_int_equal(fclose(f), 0);
    return out;
}

/* NVML's figures: only those the sample has, in both renderings; none at all with nvml=0. */
static void test_metrics_nvml_figures(void **state)
{
    struct gpu_snap g;
    struct zone_snap z[2];
    char *a, *p;

    (void)state;
    snaps(&g, z);
    g.nvml = 1;
    g.nvml_have = WG_UTIL | WG_MEM | WG_POWER; /* no temperature */
    g.nvml_age_ms = 250;
    g.nvml_util_pct = 37;
    g.nvml_mem_used = 1234ull << 20;
    g.nvml_mem_total = 80ull << 30;
    g.nvml_temp_c = 99;
    g.nvml_power_mw = 123456;
    a = render_gpu(&g, 0);
    assert_non_null(strstr(a, " nvml=1 age_ms=250 util_pct=37 mem_used_bytes=1293942784 "
                              "mem_total_bytes=85899345920 power_mw=123456\n"));
    p = render_gpu(&g, 1);
    assert_non_null(strstr(p, "\nvgpu_gpu_utilization_ratio 0.37\n"));
    assert_non_null(strstr(p, "\nvgpu_gpu_memory_used_bytes 1293942784\n"));
    assert_non_null(strstr(p, "\nvgpu_gpu_power_watts 123.456\n"));
    assert_non_null(strstr(p, "# TYPE vgpu_gpu_power_watts gauge\n"));
    assert_null(strstr(p, "temperature"));
    free(a);
    free(p);
    g.nvml = 0;
    a = render_gpu(&g, 0);
    p = render_gpu(&g, 1);
    assert_non_null(strstr(a, " nvml=0\n"));
    assert_null(strstr(a, "util_pct"));
    assert_null(strstr(p, "vgpu_gpu_utilization_ratio"));
    assert_null(strstr(p, "vgpu_gpu_memory_used_bytes"));
    assert_null(strstr(p, "vgpu_gpu_power_watts"));
    free(a);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_calls_and_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_refusals_by_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_bytes_allocations_peak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_off_counts_nothing, setup, teardown),
        cmocka_unit_test(test_metrics_prometheus_text),
        cmocka_unit_test(test_metrics_admin_text),
        cmocka_unit_test(test_metrics_nvml_figures),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
