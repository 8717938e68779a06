/* metrics_serve.c - the supervisor's view of the zones' figures and the Prometheus listener.
 * Snapshots are built from the supervisor's own records and the workers' pages (untrusted:
 * copied with relaxed loads, strings bounded and made printable, values only displayed and
 * summed; the GPU's NVML figures are the freshest sample of any worker, read under the
 * page's sequence lock); `--metrics ADDR` serves them at GET /metrics in the text exposition format 0.0.4 on
 * the supervisor's non-blocking connections (conn.c), never from anything a tenant sent. */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "monotime.h"
#include "sup_internal.h"

#define METRICS_OUT_MAX (16u << 20)
#define NVML_STALE_MS 10000 /* an NVML sample older than this is not shown */
#define NVML_AHEAD_MS 1000  /* nor one stamped later than now (clock skew cannot explain it) */

static const char *state_name(struct szone *z)
{
    struct wproc *w;

    if (z->removing)
        return "removing";
    w = sup_serving_worker(z);
    if (w == NULL)
        return z->restart_at ? "restarting" : "down";
    return w->state == WS_READY ? "ready" : "starting";
}

void sup_zone_snap(struct szone *z, struct zone_snap *out)
{
    struct wproc *serving = sup_serving_worker(z);

    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "%s", z->name);
    snprintf(out->last_fault, sizeof(out->last_fault), "%s", z->last_fault);
    out->state = state_name(z);
    out->pid = serving ? (int)serving->pid : 0;
    out->restarts = z->restarts;
    out->faults = z->faults;
    out->quota = z->quota;
    out->peak = z->dead_peak;
    out->m = z->dead;
    for (struct wproc *w = z->workers; w; w = w->next) {
        int32_t c = __atomic_load_n(&w->st->clients, __ATOMIC_RELAXED);
        uint64_t peak = __atomic_load_n(&w->st->peak, __ATOMIC_RELAXED);
        out->workers++;
        out->used += __atomic_load_n(&w->st->used, __ATOMIC_RELAXED);
        out->allocations += __atomic_load_n(&w->st->allocations, __ATOMIC_RELAXED);
        out->clients += c > 0 && c < 1000000 ? c : 0;
        out->busy_known |= __atomic_load_n(&w->st->busy_known, __ATOMIC_RELAXED) == 1;
        if (peak > out->peak)
            out->peak = peak;
        metrics_sum(&out->m, &w->st->m);
    }
}

/* A string from a worker's page: bounded, printable bytes only. */
static void page_string(char *dst, size_t cap, const char *src, size_t srclen)
{
    size_t n = 0;

    while (n < srclen && n + 1 < cap && src[n]) {
        dst[n] = src[n] < 0x20 || src[n] > 0x7e ? '?' : src[n];
        n++;
    }
    dst[n] = 0;
}

/* The device's name from a serving worker's page. */
static void device_name(struct sup *S, char *dst, size_t cap)
{
    snprintf(dst, cap, "unknown");
    for (struct szone *z = S->zones; z; z = z->next) {
        struct wproc *w = sup_serving_worker(z);
        char tmp[sizeof(w->st->device)];
        if (w == NULL || w->state != WS_READY)
            continue;
        page_string(tmp, sizeof(tmp), w->st->device, sizeof(w->st->device));
        if (tmp[0]) {
            snprintf(dst, cap, "%s", tmp);
            return;
        }
    }
}

/* The reader's half of the page's sequence lock (nvml.c writes): a consistent copy of a
 * worker's GPU sample, or -1 (being written; a worker that keeps seq odd is skipped). */
static int gpu_read(const struct worker_gpu *p, struct worker_gpu *out)
{
    for (int tries = 0; tries < 4; tries++) {
        /* Pairs with the worker's release store of the even seq that ends its write. */
        uint64_t seq = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);
        if (seq & 1) {
            sched_yield();
            continue;
        }
        out->at_ms = __atomic_load_n(&p->at_ms, __ATOMIC_RELAXED);
        out->have = __atomic_load_n(&p->have, __ATOMIC_RELAXED);
        out->util_pct = __atomic_load_n(&p->util_pct, __ATOMIC_RELAXED);
        out->mem_used = __atomic_load_n(&p->mem_used, __ATOMIC_RELAXED);
        out->mem_total = __atomic_load_n(&p->mem_total, __ATOMIC_RELAXED);
        out->temp_c = __atomic_load_n(&p->temp_c, __ATOMIC_RELAXED);
        out->power_mw = __atomic_load_n(&p->power_mw, __ATOMIC_RELAXED);
        /* Pairs with the worker's release fence after it made seq odd: if a field read
         * above was being rewritten, the read below sees the changed seq. */
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&p->seq, __ATOMIC_RELAXED) == seq)
            return 0;
    }
    return -1;
}

/* The freshest NVML sample of the zones' workers (each samples the same GPU). Samples older
 * than NVML_STALE_MS (a stuck or dead worker) or from the future are not shown. */
static void gpu_figures(struct sup *S, struct gpu_snap *g)
{
    uint64_t now = now_ms(), best = 0;
    struct worker_gpu s, pick;

    for (struct szone *z = S->zones; z; z = z->next)
        for (struct wproc *w = z->workers; w; w = w->next) {
            if (gpu_read(&w->st->gpu, &s) != 0 || s.at_ms <= best ||
                s.at_ms > now + NVML_AHEAD_MS || now > s.at_ms + NVML_STALE_MS)
                continue;
            best = s.at_ms;
            pick = s;
        }
    if (best == 0)
        return;
    g->nvml = 1;
    g->nvml_have = (unsigned)(pick.have & (WG_UTIL | WG_MEM | WG_TEMP | WG_POWER));
    if (pick.util_pct > 100)
        g->nvml_have &= ~(unsigned)WG_UTIL;
    g->nvml_age_ms = now > best ? now - best : 0;
    g->nvml_util_pct = pick.util_pct;
    g->nvml_mem_used = pick.mem_used;
    g->nvml_mem_total = pick.mem_total;
    g->nvml_temp_c = pick.temp_c;
    g->nvml_power_mw = pick.power_mw;
}

void sup_gpu_note(struct sup *S, struct wproc *w)
{
    struct worker_gpu s;
    char why[sizeof(w->st->gpu.why)];

    if (S->gpu_noted)
        return;
    S->gpu_noted = 1;
    if (gpu_read(&w->st->gpu, &s) == 0 && s.at_ms != 0) {
        log_info("GPU figures: the workers read the GPU's utilisation, memory, temperature and "
                 "power through NVML (METRICS nvml=1)");
        return;
    }
    page_string(why, sizeof(why), w->st->gpu.why, sizeof(w->st->gpu.why));
    if (S->cfg->be->nvml_device)
        log_warn("GPU figures: NVML is not used: %s; METRICS shows nvml=0 and the GPU's own "
                 "utilisation, memory, temperature and power are not shown",
                 why[0] ? why : "the worker gave no reason");
    else
        log_info("GPU figures: NVML is not used: %s", why[0] ? why : "no reason given");
}

int sup_collect(struct sup *S, struct gpu_snap *g, struct zone_snap **out)
{
    unsigned n = 0, i = 0;

    memset(g, 0, sizeof(*g));
    snprintf(g->backend, sizeof(g->backend), "%s", S->cfg->be->name);
    device_name(S, g->device, sizeof(g->device));
    g->total_bytes = S->total_mem;
    gpu_figures(S, g);
    for (struct szone *z = S->zones; z; z = z->next)
        n++;
    *out = calloc(n ? n : 1, sizeof(**out));
    if (*out == NULL) {
        log_error("metrics: no memory for the figures of %u zones", n);
        return -ENOMEM;
    }
    /* Listed in the order the zones were added. */
    for (struct szone *z = S->zones; z; z = z->next, i++)
        sup_zone_snap(z, &(*out)[n - 1 - i]);
    return (int)n;
}

/* ---- the HTTP listener ---- */

static int http_complete(const char *in, size_t len)
{
    return memmem(in, len, "\r\n\r\n", 4) != NULL || memmem(in, len, "\n\n", 2) != NULL;
}

static void http_answer(struct sconn *c, const char *status, const char *type,
                        const char *body, size_t len)
{
    char *msg = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&msg, &n);

    if (f == NULL) {
        log_error("metrics: no memory for an answer");
        conn_answer_str(c, "");
        return;
    }
    fprintf(f, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
               "Connection: close\r\n\r\n", status, type, len);
    fwrite(body, 1, len, f);
    if (fclose(f) != 0) {
        log_error("metrics: no memory for a %zu-byte answer", len);
        conn_answer_str(c, "");
    } else {
        conn_answer(c, msg, n);
    }
    free(msg);
}

static void http_error(struct sconn *c, const char *status, const char *why)
{
    log_limited(&c->srv->bucket, LOG_WARN, "metrics: request refused (%s): %.*s", status,
                (int)strcspn(why, "\n"), why);
    http_answer(c, status, "text/plain; charset=utf-8", why, strlen(why));
}

static void serve_metrics(struct sup *S, struct sconn *c)
{
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    struct gpu_snap g;
    struct zone_snap *zs = NULL;
    int n = f ? sup_collect(S, &g, &zs) : -ENOMEM;
    int rc = n < 0 ? n : metrics_prom_text(f, &g, zs, (unsigned)n);

    if (f && fclose(f) != 0)
        rc = -ENOMEM;
    if (rc != 0)
        http_error(c, "500 Internal Server Error", "the figures could not be gathered\n");
    else
        http_answer(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, len);
    free(body);
    free(zs);
}

/* GET /metrics (a query string is ignored); anything else gets a clear error. */
static void http_serve(struct sup *S, struct sconn *c)
{
    char method[16], path[256];

    if (sscanf(c->in, "%15s %255s HTTP/1.%*c", method, path) != 2 ||
        !http_complete(c->in, c->in_len)) {
        http_error(c, "400 Bad Request", "expected \"GET /metrics HTTP/1.x\" and headers\n");
        return;
    }
    path[strcspn(path, "?")] = 0;
    if (strcmp(method, "GET") != 0)
        http_error(c, "405 Method Not Allowed", "only GET is served\n");
    else if (strcmp(path, "/metrics") != 0)
        http_error(c, "404 Not Found", "the metrics are at /metrics\n");
    else
        serve_metrics(S, c);
}

/* "/PATH" or "unix:/PATH": a Unix socket; "[HOST:]PORT" ("[v6]:PORT" too): TCP, HOST default
 * 127.0.0.1 (only the node sees the figures unless an address is given). */
int metrics_open(struct sup *S)
{
    struct conn_server *m = &S->metrics;
    const char *a = S->cfg->metrics, *colon;
    char host[128];

    conn_server_init(m, "metrics");
    if (a[0] == 0)
        return 0;
    m->in_max = CONN_IN_MAX;
    m->out_max = METRICS_OUT_MAX;
    m->complete = http_complete;
    m->serve = http_serve;
    m->too_long = "HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
                  "Content-Length: 0\r\n\r\n";
    m->busy = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
              "Content-Length: 0\r\n\r\n";
    if (strncmp(a, "unix:", 5) == 0)
        a += 5;
    if (a[0] == '/')
        return conn_listen_unix(m, a);
    colon = strrchr(a, ':');
    if (colon == NULL)
        return conn_listen_tcp(m, "127.0.0.1", a);
    if (a[0] == '[' && colon > a + 1 && colon[-1] == ']')
        snprintf(host, sizeof(host), "%.*s", (int)(colon - a - 2), a + 1);
    else
        snprintf(host, sizeof(host), "%.*s", (int)(colon - a), a);
    return conn_listen_tcp(m, host, colon + 1);
}
