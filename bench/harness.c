/* harness.c - clocks, pinning, statistics and record output shared by every benchmark program.
 * A record is one line: "ROW" then tab-separated key=value fields (values never hold tabs or
 * newlines); bench_report reads them back. */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

uint64_t bh_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cpu_list(int *out, int max)
{
    cpu_set_t set;
    int n = 0;

    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -errno;
    for (int i = 0; i < CPU_SETSIZE && n < max; i++)
        if (CPU_ISSET(i, &set))
            out[n++] = i;
    return n;
}

int bh_ncpus(void)
{
    int cpus[CPU_SETSIZE];
    int n = cpu_list(cpus, CPU_SETSIZE);
    return n > 0 ? n : 1;
}

/* The CPUs allowed when the program started (before any pinning). */
static int g_cpu_a = -1, g_cpu_b = -1;

static void cpus_init(void)
{
    int cpus[CPU_SETSIZE];
    int n;

    if (g_cpu_a >= 0)
        return;
    n = cpu_list(cpus, CPU_SETSIZE);
    if (n <= 0) {
        g_cpu_a = g_cpu_b = 0;
        return;
    }
    g_cpu_a = cpus[0];
    g_cpu_b = n > 1 ? cpus[1] : cpus[0];
}

int bh_cpu_a(void)
{
    cpus_init();
    return g_cpu_a;
}

int bh_cpu_b(void)
{
    cpus_init();
    return g_cpu_b;
}

int bh_pin(int cpu)
{
    cpu_set_t set;

    cpus_init();
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
        int e = errno;
        fprintf(stderr, "bench: sched_setaffinity(cpu %d) failed: %s\n", cpu, strerror(e));
        return -e;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v. */
static double pct(const double *v, size_t n, double p)
{
    size_t k;

    if (n == 0)
        return NAN;
    k = (size_t)ceil(p / 100.0 * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

void bh_stats(double *v, size_t n, struct bh_stats *out)
{
    double sum = 0;

    memset(out, 0, sizeof(*out));
    out->n = n;
    if (n == 0) {
        out->median = out->min = out->max = out->p10 = out->p90 = out->p99 = out->mean = NAN;
        return;
    }
    qsort(v, n, sizeof(*v), cmp_double);
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    out->mean = sum / (double)n;
    out->min = v[0];
    out->max = v[n - 1];
    out->median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
    out->p10 = pct(v, n, 10);
    out->p90 = pct(v, n, 90);
    out->p99 = pct(v, n, 99);
}

void bh_row_reps(struct bh_row *r, const double *v, size_t n)
{
    double copy[1000];

    if (n > sizeof(copy) / sizeof(copy[0]))
        n = sizeof(copy) / sizeof(copy[0]);
    memcpy(copy, v, n * sizeof(double));
    bh_stats(copy, n, &r->rep);
    r->values = v;
}

int bh_samples_init(struct bh_samples *s, size_t max)
{
    s->n = 0;
    s->max = max;
    s->cap = max < 65536 ? max : 65536;
    s->v = malloc(s->cap * sizeof(double));
    if (!s->v) {
        fprintf(stderr, "bench: out of memory for %zu latency samples\n", s->cap);
        return -ENOMEM;
    }
    return 0;
}

void bh_samples_add(struct bh_samples *s, double x)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap * 2;
        double *nv;

        if (ncap > s->max)
            ncap = s->max;
        if (ncap <= s->cap)
            return; /* capped: keep the first max samples */
        nv = realloc(s->v, ncap * sizeof(double));
        if (!nv)
            return;
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = x;
}

void bh_samples_free(struct bh_samples *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *s = getenv(name);
    char *end;
    long v;

    if (!s || !*s)
        return def;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) {
        fprintf(stderr, "bench: ignoring %s=%s (want %ld..%ld)\n", name, s, lo, hi);
        return def;
    }
    return v;
}

int bh_reps(void)
{
    return (int)env_long("BENCH_REPS", 5, 1, 1000);
}

uint64_t bh_rep_ns(void)
{
    return (uint64_t)env_long("BENCH_REP_MS", 200, 1, 600000) * 1000000ull;
}

/* Copies s into a record value: tabs and newlines become spaces. */
static void put_val(FILE *f, const char *key, const char *s)
{
    if (!s)
        return;
    fprintf(f, "\t%s=", key);
    for (; *s; s++)
        fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, f);
}

static void put_num(FILE *f, const char *key, double v)
{
    if (isfinite(v))
        fprintf(f, "\t%s=%.9g", key, v);
}

static FILE *records_open(void)
{
    const char *path = getenv("BENCH_RECORDS");
    FILE *f;

    if (!path || !*path)
        return stdout;
    f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "bench: cannot append to %s: %s; writing records to stdout\n", path,
                strerror(errno));
        return stdout;
    }
    return f;
}

static void records_close(FILE *f)
{
    if (f == stdout) {
        fflush(f);
        return;
    }
    if (fclose(f) != 0)
        fprintf(stderr, "bench: writing records failed: %s\n", strerror(errno));
}

void bh_emit(const struct bh_row *r)
{
    FILE *f = records_open();

    fputs("ROW", f);
    put_val(f, "id", r->id);
    put_val(f, "fig", r->fig);
    put_val(f, "status", "ok");
    put_val(f, "label", r->label);
    put_val(f, "cpus", r->cpus);
    put_val(f, "unit", r->unit);
    fprintf(f, "\treps=%zu", r->rep.n);
    put_num(f, "median", r->rep.median);
    put_num(f, "min", r->rep.min);
    put_num(f, "max", r->rep.max);
    if (r->has_call) {
        put_num(f, "call_p50", r->call_p50);
        put_num(f, "call_p99", r->call_p99);
    }
    if (r->rate > 0)
        put_num(f, "rate", r->rate);
    put_val(f, "ref", r->ref);
    if (r->values && r->rep.n > 0) {
        fputs("\tvalues=", f);
        for (size_t i = 0; i < r->rep.n; i++)
            fprintf(f, "%s%.9g", i ? "," : "", r->values[i]);
    }
    if (r->paired)
        fputs("\tpaired=1", f);
    put_val(f, "ref_what", r->ref_what);
    put_val(f, "goal", r->goal);
    put_val(f, "detail", r->detail);
    put_val(f, "note", r->note);
    fputc('\n', f);
    records_close(f);
    bh_log("[fig %s] %s: median %.4g %s (min %.4g, max %.4g)", r->fig, r->label, r->rep.median,
           r->unit, r->rep.min, r->rep.max);
}

void bh_emit_missing(const char *id, const char *fig, const char *label, const char *status,
                     const char *reason)
{
    FILE *f = records_open();

    fputs("ROW", f);
    put_val(f, "id", id);
    put_val(f, "fig", fig);
    put_val(f, "status", status);
    put_val(f, "label", label);
    put_val(f, "note", reason);
    fputc('\n', f);
    records_close(f);
    bh_log("%s: %s: %s", label, status, reason);
}

char *bh_fmt_rate(char *buf, size_t len, double per_s)
{
    if (per_s >= 1e6)
        snprintf(buf, len, "%.2fM/s", per_s / 1e6);
    else if (per_s >= 1e3)
        snprintf(buf, len, "%.1fk/s", per_s / 1e3);
    else
        snprintf(buf, len, "%.0f/s", per_s);
    return buf;
}

void bh_log(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

pid_t bh_spawn(int cpu, int (*fn)(void *), void *arg)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        int e = errno;
        fprintf(stderr, "bench: fork failed: %s\n", strerror(e));
        return -e;
    }
    if (pid == 0) {
        /* Never outlive the benchmark, even when it is killed by a timeout. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
            _exit(1);
        if (cpu >= 0 && bh_pin(cpu) != 0)
            _exit(1);
        _exit(fn(arg) & 0xff);
    }
    return pid;
}

int bh_wait(pid_t pid)
{
    int st;

    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            int e = errno;
            fprintf(stderr, "bench: waitpid(%d) failed: %s\n", (int)pid, strerror(e));
            return -e;
        }
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -EINVAL;
}
