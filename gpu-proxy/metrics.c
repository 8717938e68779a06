/* metrics.c - renders the GPU's and the zones' figures (metrics.h): the admin socket's METRICS
 * answer and the Prometheus text exposition format 0.0.4, with the names of op families,
 * refusal reasons and CUresults (the list libvgpu generates from cuda.h, gen/vgpu_errors.h). */
#include "metrics.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

static const char *const family_names[WM_FAMILIES] = {
    [WM_FAM_DEVICE] = "device", [WM_FAM_CONTEXT] = "context", [WM_FAM_MEMORY] = "memory",
    [WM_FAM_COPY] = "copy",     [WM_FAM_STREAM] = "stream",   [WM_FAM_MODULE] = "module",
    [WM_FAM_LAUNCH] = "launch", [WM_FAM_OTHER] = "other",
};

static const char *const refusal_names[WM_REFUSALS] = {
    [WM_REF_HANDLE] = "handle",       [WM_REF_DEVICE_RANGE] = "device_range",
    [WM_REF_WINDOW] = "window_range", [WM_REF_QUOTA] = "quota",
    [WM_REF_LIMIT] = "limit",         [WM_REF_MALFORMED] = "malformed",
    [WM_REF_INVALID] = "invalid_value",
};

struct result_row {
    unsigned code;
    const char *name;
};

static const struct result_row result_rows[] = {
#define VGPU_ERR(name, value, text) {value, #name},
#include "vgpu_errors.h"
#undef VGPU_ERR
};

static const uint64_t lat_bounds_ns[WM_LAT_BUCKETS - 1] = WM_LAT_BOUNDS_NS;

_Static_assert(sizeof(struct worker_counters) % sizeof(uint64_t) == 0,
               "struct worker_counters must hold uint64_t words only");

void metrics_sum(struct worker_counters *acc, const struct worker_counters *src)
{
    uint64_t *a = (uint64_t *)acc;
    const uint64_t *s = (const uint64_t *)src;

    for (size_t i = 0; i < sizeof(*acc) / sizeof(uint64_t); i++)
        a[i] += __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

const char *metrics_family_name(unsigned family)
{
    return family < WM_FAMILIES ? family_names[family] : "unknown";
}

const char *metrics_refusal_name(unsigned reason)
{
    return reason < WM_REFUSALS ? refusal_names[reason] : "unknown";
}

const char *metrics_result_name(unsigned code)
{
    for (size_t i = 0; i < sizeof(result_rows) / sizeof(result_rows[0]); i++)
        if (result_rows[i].code == code)
            return result_rows[i].name;
    return NULL;
}

/* ---- METRICS (admin socket, version 1) ---- */

/* key=value with the value percent-encoded: bytes outside '!'..'~', '%' and '='. */
static void put_str(FILE *f, const char *key, const char *v)
{
    fprintf(f, " %s=", key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x21 || *p > 0x7e || *p == '%' || *p == '=')
            fprintf(f, "%%%02X", *p);
        else
            fputc(*p, f);
    }
}

static void put_u(FILE *f, const char *key, uint64_t v)
{
    fprintf(f, " %s=%llu", key, (unsigned long long)v);
}

static void admin_gpu(FILE *f, const struct gpu_snap *g)
{
    fputs("gpu", f);
    put_str(f, "backend", g->backend);
    put_str(f, "device", g->device);
    put_u(f, "total_bytes", g->total_bytes);
    put_u(f, "nvml", (uint64_t)g->nvml);
    if (g->nvml) {
        put_u(f, "age_ms", g->nvml_age_ms);
        if (g->nvml_have & WG_UTIL)
            put_u(f, "util_pct", g->nvml_util_pct);
        if (g->nvml_have & WG_MEM) {
            put_u(f, "mem_used_bytes", g->nvml_mem_used);
            put_u(f, "mem_total_bytes", g->nvml_mem_total);
        }
        if (g->nvml_have & WG_TEMP)
            put_u(f, "temp_c", g->nvml_temp_c);
        if (g->nvml_have & WG_POWER)
            put_u(f, "power_mw", g->nvml_power_mw);
    }
    fputc('\n', f);
}

static uint64_t sum_buckets(const uint64_t *b)
{
    uint64_t t = 0;

    for (unsigned i = 0; i < WM_LAT_BUCKETS; i++)
        t += b[i];
    return t;
}

static void admin_counters(FILE *f, const struct worker_counters *m, int busy_known)
{
    char key[64];

    put_u(f, "connections", m->connections);
    put_u(f, "kernels", m->kernels);
    if (busy_known) /* a real GPU without NVML: unknown, not 0 */
        put_u(f, "busy_ns", m->busy_ns);
    put_u(f, "htod_bytes", m->htod_bytes);
    put_u(f, "dtoh_bytes", m->dtoh_bytes);
    put_u(f, "dtod_bytes", m->dtod_bytes);
    for (unsigned i = 0; i < WM_FAMILIES; i++) {
        snprintf(key, sizeof(key), "calls.%s", family_names[i]);
        put_u(f, key, m->calls[i]);
        snprintf(key, sizeof(key), "lat_ns.%s", family_names[i]);
        put_u(f, key, m->lat_sum_ns[i]);
        snprintf(key, sizeof(key), "timed.%s", family_names[i]);
        put_u(f, key, sum_buckets(m->lat_bucket[i]));
    }
    for (unsigned i = 0; i < WM_REFUSALS; i++) {
        snprintf(key, sizeof(key), "refused.%s", refusal_names[i]);
        put_u(f, key, m->refusals[i]);
    }
    for (unsigned i = 1; i < WM_RESULTS; i++) {
        const char *name = metrics_result_name(i);
        if (m->failures[i] == 0)
            continue;
        if (name && i < WM_RESULTS - 1)
            snprintf(key, sizeof(key), "fail.%s", name);
        else
            snprintf(key, sizeof(key), "fail.%s", i < WM_RESULTS - 1 ? "unnamed" : "other");
        put_u(f, key, m->failures[i]);
    }
}

static void admin_zone(FILE *f, const struct zone_snap *z)
{
    fputs("zone", f);
    put_str(f, "name", z->name);
    put_u(f, "quota", z->quota);
    put_u(f, "used", z->used);
    put_u(f, "peak", z->peak);
    put_u(f, "allocations", z->allocations);
    put_u(f, "clients", (uint64_t)(z->clients > 0 ? z->clients : 0));
    put_str(f, "state", z->state);
    put_u(f, "pid", (uint64_t)(z->pid > 0 ? z->pid : 0));
    put_u(f, "workers", z->workers);
    put_u(f, "restarts", z->restarts);
    put_u(f, "faults", z->faults);
    put_str(f, "last_fault", z->last_fault);
    admin_counters(f, &z->m, z->busy_known);
    fputc('\n', f);
}

int metrics_admin_text(FILE *f, const struct gpu_snap *g, const struct zone_snap *z,
                       unsigned n)
{
    fprintf(f, "OK version=%d zones=%u\n", METRICS_VERSION, n);
    admin_gpu(f, g);
    for (unsigned i = 0; i < n; i++)
        admin_zone(f, &z[i]);
    return ferror(f) ? -EIO : 0;
}

/* ---- Prometheus text exposition 0.0.4 ---- */

static void prom_head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void prom_label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

/* The GPU's own figures (NVML), each rendered only when the sample has it. */
struct gpu_metric {
    unsigned have; /* enum wg_have */
    const char *name, *help;
    size_t offset; /* of a uint64_t in struct gpu_snap */
    double divisor;
};

static const struct gpu_metric gpu_metrics[] = {
    {WG_UTIL, "vgpu_gpu_utilization_ratio",
     "Share of NVML's last sample period in which kernels ran on the GPU, 0 to 1.",
     offsetof(struct gpu_snap, nvml_util_pct), 100},
    {WG_MEM, "vgpu_gpu_memory_used_bytes", "GPU memory in use by all processes (NVML).",
     offsetof(struct gpu_snap, nvml_mem_used), 1},
    {WG_TEMP, "vgpu_gpu_temperature_celsius", "GPU temperature (NVML).",
     offsetof(struct gpu_snap, nvml_temp_c), 1},
    {WG_POWER, "vgpu_gpu_power_watts", "GPU power draw (NVML).",
     offsetof(struct gpu_snap, nvml_power_mw), 1000},
};

static void prom_gpu(FILE *f, const struct gpu_snap *g)
{
    prom_head(f, "vgpu_gpu_info", "gauge", "The GPU gpu_proxy serves (value 1).");
    fputs("vgpu_gpu_info{backend=\"", f);
    prom_label(f, g->backend);
    fputs("\",device=\"", f);
    prom_label(f, g->device);
    fputs("\"} 1\n", f);
    prom_head(f, "vgpu_gpu_memory_total_bytes", "gauge", "The GPU's memory.");
    fprintf(f, "vgpu_gpu_memory_total_bytes %llu\n", (unsigned long long)g->total_bytes);
    for (size_t i = 0; g->nvml && i < sizeof(gpu_metrics) / sizeof(gpu_metrics[0]); i++) {
        const struct gpu_metric *m = &gpu_metrics[i];
        uint64_t v;
        if (!(g->nvml_have & m->have))
            continue;
        memcpy(&v, (const char *)g + m->offset, sizeof(v));
        prom_head(f, m->name, "gauge", m->help);
        fprintf(f, "%s %.15g\n", m->name, (double)v / m->divisor);
    }
}

/* A per-zone metric with one value per zone; has (if set) leaves out zones without it. */
struct zone_metric {
    const char *name, *type, *help;
    double (*get)(const struct zone_snap *z);
    int (*has)(const struct zone_snap *z);
};

static double z_quota(const struct zone_snap *z) { return (double)z->quota; }
static double z_used(const struct zone_snap *z) { return (double)z->used; }
static double z_peak(const struct zone_snap *z) { return (double)z->peak; }
static double z_allocs(const struct zone_snap *z) { return (double)z->allocations; }
static double z_clients(const struct zone_snap *z) { return z->clients > 0 ? z->clients : 0; }
static double z_up(const struct zone_snap *z) { return strcmp(z->state, "ready") == 0; }
static double z_conns(const struct zone_snap *z) { return (double)z->m.connections; }
static double z_kernels(const struct zone_snap *z) { return (double)z->m.kernels; }
static double z_busy(const struct zone_snap *z) { return (double)z->m.busy_ns / 1e9; }
static int z_busy_known(const struct zone_snap *z) { return z->busy_known; }
static double z_faults(const struct zone_snap *z) { return z->faults; }
static double z_restarts(const struct zone_snap *z) { return z->restarts; }

static const struct zone_metric zone_metrics[] = {
    {"vgpu_zone_memory_quota_bytes", "gauge", "The zone's device memory quota (0: none).",
     z_quota, NULL},
    {"vgpu_zone_memory_used_bytes", "gauge", "Device memory charged to the zone.", z_used, NULL},
    {"vgpu_zone_memory_peak_bytes", "gauge",
     "The most device memory charged to the zone at once.", z_peak, NULL},
    {"vgpu_zone_allocations", "gauge", "The zone's live device memory allocations.",
     z_allocs, NULL},
    {"vgpu_zone_clients", "gauge", "Clients connected to the zone.", z_clients, NULL},
    {"vgpu_zone_up", "gauge", "1 when the zone's worker is serving.", z_up, NULL},
    {"vgpu_zone_connections_total", "counter", "Clients the zone accepted.", z_conns, NULL},
    {"vgpu_zone_kernels_launched_total", "counter", "Kernel launches the zone ran.",
     z_kernels, NULL},
    {"vgpu_zone_gpu_busy_seconds_total", "counter",
     "GPU time of the zone's kernels (simulated GPU: time in kernels; real GPU: NVML's "
     "utilisation of the zone's worker process).", z_busy, z_busy_known},
    {"vgpu_zone_faults_total", "counter", "Execution faults and crashes of the zone's workers.",
     z_faults, NULL},
    {"vgpu_zone_worker_restarts_total", "counter", "Workers started again for the zone.",
     z_restarts, NULL},
};

static void prom_zone_metric(FILE *f, const struct zone_metric *zm, const struct zone_snap *z,
                             unsigned n)
{
    prom_head(f, zm->name, zm->type, zm->help);
    for (unsigned i = 0; i < n; i++)
        if (zm->has == NULL || zm->has(&z[i]))
            fprintf(f, "%s{zone=\"%s\"} %.17g\n", zm->name, z[i].name, zm->get(&z[i]));
}

static void prom_labelled(FILE *f, const struct zone_snap *z, unsigned n)
{
    static const char *const dir[3] = {"htod", "dtoh", "dtod"};

    prom_head(f, "vgpu_zone_calls_total", "counter", "Requests of the zone, by op family.");
    for (unsigned i = 0; i < n; i++)
        for (unsigned k = 0; k < WM_FAMILIES; k++)
            fprintf(f, "vgpu_zone_calls_total{zone=\"%s\",family=\"%s\"} %llu\n", z[i].name,
                    family_names[k], (unsigned long long)z[i].m.calls[k]);
    prom_head(f, "vgpu_zone_refusals_total", "counter",
              "Requests the proxy refused, by reason (forged handles, out-of-range pointers, "
              "quota, ...).");
    for (unsigned i = 0; i < n; i++)
        for (unsigned k = 0; k < WM_REFUSALS; k++)
            fprintf(f, "vgpu_zone_refusals_total{zone=\"%s\",reason=\"%s\"} %llu\n", z[i].name,
                    refusal_names[k], (unsigned long long)z[i].m.refusals[k]);
    prom_head(f, "vgpu_zone_copied_bytes_total", "counter",
              "Bytes copied for the zone, by direction.");
    for (unsigned i = 0; i < n; i++) {
        const uint64_t v[3] = {z[i].m.htod_bytes, z[i].m.dtoh_bytes, z[i].m.dtod_bytes};
        for (unsigned k = 0; k < 3; k++)
            fprintf(f, "vgpu_zone_copied_bytes_total{zone=\"%s\",direction=\"%s\"} %llu\n",
                    z[i].name, dir[k], (unsigned long long)v[k]);
    }
}

static void prom_failures(FILE *f, const struct zone_snap *z, unsigned n)
{
    prom_head(f, "vgpu_zone_call_failures_total", "counter",
              "Requests answered with an error, by CUresult.");
    for (unsigned i = 0; i < n; i++)
        for (unsigned k = 1; k < WM_RESULTS; k++) {
            const char *name = k < WM_RESULTS - 1 ? metrics_result_name(k) : "other";
            if (z[i].m.failures[k] == 0)
                continue;
            fprintf(f, "vgpu_zone_call_failures_total{zone=\"%s\",result=\"", z[i].name);
            if (name)
                fputs(name, f);
            else
                fprintf(f, "%u", k);
            fprintf(f, "\"} %llu\n", (unsigned long long)z[i].m.failures[k]);
        }
}

static void prom_histogram(FILE *f, const struct zone_snap *z, unsigned n)
{
    const char *h = "vgpu_zone_call_duration_seconds";

    prom_head(f, h, "histogram",
              "Time a request spent in the zone's dispatch, by op family (one request in 16 "
              "per client thread is timed).");
    for (unsigned i = 0; i < n; i++)
        for (unsigned k = 0; k < WM_FAMILIES; k++) {
            const struct worker_counters *m = &z[i].m;
            uint64_t cum = 0;
            for (unsigned b = 0; b < WM_LAT_BUCKETS; b++) {
                cum += m->lat_bucket[k][b];
                fprintf(f, "%s_bucket{zone=\"%s\",family=\"%s\",le=\"", h, z[i].name,
                        family_names[k]);
                if (b < WM_LAT_BUCKETS - 1)
                    fprintf(f, "%g", lat_bounds_ns[b] / 1e9);
                else
                    fputs("+Inf", f);
                fprintf(f, "\"} %llu\n", (unsigned long long)cum);
            }
            fprintf(f, "%s_sum{zone=\"%s\",family=\"%s\"} %.9g\n", h, z[i].name,
                    family_names[k], m->lat_sum_ns[k] / 1e9);
            fprintf(f, "%s_count{zone=\"%s\",family=\"%s\"} %llu\n", h, z[i].name,
                    family_names[k], (unsigned long long)cum);
        }
}

int metrics_prom_text(FILE *f, const struct gpu_snap *g, const struct zone_snap *z,
                      unsigned n)
{
    prom_gpu(f, g);
    for (size_t i = 0; i < sizeof(zone_metrics) / sizeof(zone_metrics[0]); i++)
        prom_zone_metric(f, &zone_metrics[i], z, n);
    prom_labelled(f, z, n);
    prom_failures(f, z, n);
    prom_histogram(f, z, n);
    return ferror(f) ? -EIO : 0;
}
