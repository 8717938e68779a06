/* report.c - bench_report: reads the record lines the benchmark programs wrote in this run,
 * computes each ratio from the two measured rows it names, checks the goals, prints the one
 * table and writes the same figures as JSON.
 * Usage: bench_report RECORDS JSON_OUT */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROWS 512
#define MAX_FIELDS 24

struct row {
    char *key[MAX_FIELDS];
    char *val[MAX_FIELDS];
    int nf;
    int fig;
    int order;
};

static struct row rows[MAX_ROWS];
static int nrows;

static const char *get(const struct row *r, const char *key)
{
    for (int i = 0; i < r->nf; i++)
        if (strcmp(r->key[i], key) == 0)
            return r->val[i];
    return NULL;
}

static double getnum(const struct row *r, const char *key)
{
    const char *s = get(r, key);
    char *end;
    double v;

    if (!s)
        return NAN;
    v = strtod(s, &end);
    return end != s ? v : NAN;
}

static const struct row *find(const char *id)
{
    for (int i = 0; i < nrows; i++) {
        const char *s = get(&rows[i], "id");
        if (s && strcmp(s, id) == 0)
            return &rows[i];
    }
    return NULL;
}

static int parse_line(char *line, struct row *r)
{
    char *save = NULL, *tok;

    if (strncmp(line, "ROW\t", 4) != 0)
        return -EINVAL;
    memset(r, 0, sizeof(*r));
    for (tok = strtok_r(line + 4, "\t\n", &save); tok && r->nf < MAX_FIELDS;
         tok = strtok_r(NULL, "\t\n", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        r->key[r->nf] = strdup(tok);
        r->val[r->nf] = strdup(eq + 1);
        if (!r->key[r->nf] || !r->val[r->nf])
            return -ENOMEM;
        r->nf++;
    }
    r->fig = get(r, "fig") ? atoi(get(r, "fig")) : 0;
    return 0;
}

static int cmp_rows(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->fig != y->fig)
        return x->fig - y->fig;
    return x->order - y->order;
}

/* Parses "1.5,2,3" into v (at most max values); returns the count. */
static size_t parse_values(const char *s, double *v, size_t max)
{
    size_t n = 0;
    char *end;

    while (s && *s && n < max) {
        v[n++] = strtod(s, &end);
        if (end == s)
            return 0;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Paired rows: the median of the per-repetition ratios (repetition i of the row ran next to
 * repetition i of its reference); NAN when the values do not pair up. */
static double paired_ratio(const struct row *r, const struct row *o)
{
    static double a[1000], b[1000], q[1000];
    size_t na = parse_values(get(r, "values"), a, 1000);
    size_t nb = parse_values(get(o, "values"), b, 1000);

    if (na == 0 || na != nb)
        return NAN;
    for (size_t i = 0; i < na; i++) {
        if (b[i] == 0)
            return NAN;
        q[i] = a[i] / b[i];
    }
    qsort(q, na, sizeof(q[0]), cmp_double);
    return na % 2 ? q[na / 2] : (q[na / 2 - 1] + q[na / 2]) / 2.0;
}

/* ratio = median / ref median (or the paired ratio), when both rows were measured. */
static double ratio_of(const struct row *r)
{
    const char *ref = get(r, "ref");
    const struct row *o;
    double a, b;

    if (!ref)
        return NAN;
    o = find(ref);
    if (!o || !get(o, "status") || strcmp(get(o, "status"), "ok") != 0)
        return NAN;
    if (get(r, "paired")) {
        double p = paired_ratio(r, o);
        if (isfinite(p))
            return p;
    }
    a = getnum(r, "median");
    b = getnum(o, "median");
    if (!isfinite(a) || !isfinite(b) || b == 0)
        return NAN;
    return a / b;
}

/* Goal check: 1 met, 0 missed, -1 no goal or not measurable. */
static int goal_met(const struct row *r, double ratio)
{
    const char *g = get(r, "goal");
    double lim, v;
    const char *op;

    if (!g)
        return -1;
    if (strncmp(g, "ratio", 5) == 0) {
        v = ratio;
        op = g + 5;
    } else if (strncmp(g, "value", 5) == 0) {
        v = getnum(r, "median");
        op = g + 5;
    } else {
        return -1;
    }
    if (!isfinite(v))
        return -1;
    lim = strtod(op + 2, NULL);
    if (strncmp(op, "<=", 2) == 0)
        return v <= lim;
    if (strncmp(op, ">=", 2) == 0)
        return v >= lim;
    return -1;
}

static void fmt_num(char *buf, size_t n, double v, const char *unit)
{
    if (!isfinite(v)) {
        snprintf(buf, n, "-");
        return;
    }
    if (unit && strcmp(unit, "calls/s") == 0) {
        if (v >= 1e6)
            snprintf(buf, n, "%.2fM", v / 1e6);
        else if (v >= 1e3)
            snprintf(buf, n, "%.1fk", v / 1e3);
        else
            snprintf(buf, n, "%.0f", v);
        return;
    }
    if (fabs(v) >= 100)
        snprintf(buf, n, "%.0f", v);
    else if (fabs(v) >= 10)
        snprintf(buf, n, "%.1f", v);
    else if (fabs(v) >= 1)
        snprintf(buf, n, "%.2f", v);
    else
        snprintf(buf, n, "%.3f", v);
}

/* "client cpu0, server cpu1" -> "c0/s1"; anything else unchanged. */
static void fmt_cpus(char *buf, size_t n, const char *s)
{
    int a, b;
    if (!s) {
        snprintf(buf, n, "-");
        return;
    }
    if (sscanf(s, "client cpu%d, server cpu%d", &a, &b) == 2)
        snprintf(buf, n, "c%d/s%d", a, b);
    else
        snprintf(buf, n, "%s", s);
}

/* "ratio<=1.5" -> "<=1.5x met"; "value>=2000000" (calls/s) -> ">=2.00M calls/s MISSED". */
static void fmt_goal(char *buf, size_t n, const char *g, const char *unit, int met)
{
    const char *verdict = met > 0 ? " met" : met == 0 ? " MISSED" : "";
    char lim[32];

    if (!g) {
        buf[0] = '\0';
        return;
    }
    if (strncmp(g, "ratio", 5) == 0 && strlen(g) > 7) {
        snprintf(buf, n, "%.2s%sx%s", g + 5, g + 7, verdict);
    } else if (strncmp(g, "value", 5) == 0 && strlen(g) > 7) {
        fmt_num(lim, sizeof(lim), strtod(g + 7, NULL), unit);
        snprintf(buf, n, "%.2s%s %s%s", g + 5, lim, unit ? unit : "", verdict);
    } else {
        snprintf(buf, n, "%s%s", g, verdict);
    }
}

static const char *fig_title(int fig)
{
    switch (fig) {
    case 1: return "1. Raw IDM ring round trip, 64-byte message (the floor), us";
    case 2: return "2. Bulk window streaming vs memcpy (same run)";
    case 3: return "3. Synchronous remoted calls: libvgpu libcuda.so.1 -> gpu_proxy_stub";
    case 4: return "4. Asynchronous enqueue, no round trip per call";
    case 5: return "5. Bulk copies through the window vs memcpy (same run)";
    case 6: return "6. Scaling: zones (separate processes) in one proxy, mixed calls";
    case 7: return "7. Real GPU: remoted (gpu_proxy --backend cuda) / native";
    case 8: return "8. Worker processes: a new zone's first call, and after its worker is killed";
    case 9: return "9. Simulated GPU (gpu-proxy/ptx), one host thread: PTX translated / interpreted vs plain C";
    default: return "other";
    }
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

static void cpu_model(char *buf, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];

    snprintf(buf, n, "unknown");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                p++;
                while (*p == ' ')
                    p++;
                p[strcspn(p, "\n")] = '\0';
                snprintf(buf, n, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

/* The first three fields of /proc/loadavg, or "unknown". */
static void load_average(char *buf, size_t n)
{
    FILE *f = fopen("/proc/loadavg", "r");
    double a, b, c;

    snprintf(buf, n, "unknown");
    if (!f)
        return;
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
        snprintf(buf, n, "%.2f %.2f %.2f", a, b, c);
    fclose(f);
}

int main(int argc, char **argv)
{
    FILE *in, *out;
    char line[8192], model[256], when[64], host_desc[512], loadavg[64];
    struct utsname u;
    time_t now = time(NULL);
    int last_fig = -1;
    char dash[181];

    memset(dash, '-', sizeof(dash) - 1);
    dash[sizeof(dash) - 1] = '\0';
    if (argc != 3) {
        fprintf(stderr, "usage: %s RECORDS JSON_OUT\n", argv[0]);
        return 2;
    }
    in = fopen(argv[1], "r");
    if (!in) {
        fprintf(stderr, "bench_report: cannot open records %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    while (fgets(line, sizeof(line), in) && nrows < MAX_ROWS) {
        if (parse_line(line, &rows[nrows]) == 0) {
            rows[nrows].order = nrows;
            nrows++;
        }
    }
    fclose(in);
    qsort(rows, (size_t)nrows, sizeof(rows[0]), cmp_rows);

    cpu_model(model, sizeof(model));
    if (uname(&u) != 0)
        memset(&u, 0, sizeof(u));
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(host_desc, sizeof(host_desc), "%s, %ld CPUs online, Linux %s, %s", model,
             sysconf(_SC_NPROCESSORS_ONLN), u.release, when);

    load_average(loadavg, sizeof(loadavg));
    printf("\nIDM / vGPU benchmarks (%s)\n", host_desc);
    printf("load average at the end of the run (1, 5, 15 min): %s; other work on these CPUs "
           "moves every figure\n", loadavg);
    printf("median and spread are over repetitions; p99 is over individual calls; ratio = median / "
           "the named row's median (for rows run alternately with it: the median of the "
           "per-repetition ratios), both from this run\n");
    printf("%-3s %-50s %-9s %17s %-19s %9s %9s %-20s %-22s %s\n", "fig", "measurement", "cpus",
           "median", " spread (min..max)", "p99 call", "calls/s", "ratio", "goal", "detail");
    for (int i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        const char *status = get(r, "status");
        const char *unit = get(r, "unit");
        char cpus[64], med[32], lo[32], hi[32], p99[32], rate[32], rat[48], spread[80];
        char goal[64];
        double ratio = ratio_of(r);
        int met = goal_met(r, ratio);

        if (r->fig != last_fig) {
            printf("%s\n%s\n", dash, fig_title(r->fig));
            last_fig = r->fig;
        }
        if (!status || strcmp(status, "ok") != 0) {
            printf("%-3d %-50s %s: %s\n", r->fig, get(r, "label") ? get(r, "label") : "?",
                   status ? status : "?", get(r, "note") ? get(r, "note") : "");
            continue;
        }
        fmt_cpus(cpus, sizeof(cpus), get(r, "cpus"));
        fmt_num(med, sizeof(med), getnum(r, "median"), unit);
        fmt_num(lo, sizeof(lo), getnum(r, "min"), unit);
        fmt_num(hi, sizeof(hi), getnum(r, "max"), unit);
        snprintf(spread, sizeof(spread), " %s..%s", lo, hi);
        fmt_num(p99, sizeof(p99), getnum(r, "call_p99"), "us");
        fmt_num(rate, sizeof(rate), getnum(r, "rate"), "calls/s");
        if (isfinite(ratio))
            snprintf(rat, sizeof(rat), ratio < 10 ? "%.2fx %s" : "%.0fx %s", ratio,
                     get(r, "ref_what") ? get(r, "ref_what") : get(r, "ref"));
        else if (get(r, "ref"))
            snprintf(rat, sizeof(rat), "(no %s)", get(r, "ref"));
        else
            snprintf(rat, sizeof(rat), "-");
        fmt_goal(goal, sizeof(goal), get(r, "goal"), unit, met);
        snprintf(line, sizeof(line), "%-3d %-50.50s %-9s %9s %-7s %-19s %9s %9s %-20s %-22s %s",
                 r->fig, get(r, "label") ? get(r, "label") : "?", cpus, med, unit ? unit : "",
                 spread, p99, rate, rat, goal, get(r, "detail") ? get(r, "detail") : "");
        for (size_t e = strlen(line); e > 0 && line[e - 1] == ' ';)
            line[--e] = '\0';
        puts(line);
    }
    printf("%s\n", dash);

    out = fopen(argv[2], "w");
    if (!out) {
        fprintf(stderr, "bench_report: cannot write %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    fprintf(out, "{\n  \"generated_utc\": ");
    json_str(out, when);
    fprintf(out, ",\n  \"machine\": {\"cpu_model\": ");
    json_str(out, model);
    fprintf(out, ", \"cpus_online\": %ld, \"kernel\": ", sysconf(_SC_NPROCESSORS_ONLN));
    json_str(out, u.release);
    fprintf(out, ", \"hostname\": ");
    json_str(out, u.nodename);
    fprintf(out, ", \"loadavg_at_end\": ");
    json_str(out, loadavg);
    fprintf(out, "},\n  \"settings\": {\"reps\": %d, \"rep_ms\": %d",
            getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 5,
            getenv("BENCH_REP_MS") ? atoi(getenv("BENCH_REP_MS")) : 200);
    fprintf(out, ", \"command\": \"make -C bench bench\", \"idm_spin_us\": ");
    json_str(out, getenv("IDM_SPIN_US") ? getenv("IDM_SPIN_US") : "default");
    fprintf(out, "},\n  \"rows\": [");
    for (int i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        double ratio = ratio_of(r);
        int met = goal_met(r, ratio);
        static const char *num_keys[] = {"median", "min", "max", "call_p50", "call_p99", "rate"};

        fprintf(out, "%s\n    {\"fig\": %d", i ? "," : "", r->fig);
        for (int k = 0; k < r->nf; k++) {
            int numeric = strcmp(r->key[k], "reps") == 0;
            if (strcmp(r->key[k], "fig") == 0)
                continue;
            for (size_t j = 0; j < sizeof(num_keys) / sizeof(num_keys[0]); j++)
                numeric |= strcmp(r->key[k], num_keys[j]) == 0;
            fprintf(out, ", ");
            json_str(out, r->key[k]);
            fprintf(out, ": ");
            if (strcmp(r->key[k], "values") == 0) {
                static double v[1000];
                size_t nv = parse_values(r->val[k], v, 1000);
                fputc('[', out);
                for (size_t j = 0; j < nv; j++) {
                    fputs(j ? ", " : "", out);
                    json_num(out, v[j]);
                }
                fputc(']', out);
            } else if (strcmp(r->key[k], "paired") == 0) {
                fputs("true", out);
            } else if (numeric)
                json_num(out, strtod(r->val[k], NULL));
            else
                json_str(out, r->val[k]);
        }
        if (get(r, "ref")) {
            fprintf(out, ", \"ratio\": ");
            json_num(out, ratio);
        }
        if (met >= 0)
            fprintf(out, ", \"goal_met\": %s", met ? "true" : "false");
        fputc('}', out);
    }
    fprintf(out, "\n  ]\n}\n");
    if (fclose(out) != 0) {
        fprintf(stderr, "bench_report: writing %s failed: %s\n", argv[2], strerror(errno));
        return 1;
    }
    printf("JSON: %s\n", argv[2]);
    return 0;
}
