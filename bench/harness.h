/* harness.h - the measuring harness every benchmark program links: clocks, CPU pinning,
 * repetition statistics and the record lines that bench_report turns into the one table and
 * the JSON file. Each figure is measured next to its floor (a no-op baseline) by the same code. */
#ifndef BENCH_HARNESS_H
#define BENCH_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic clock in nanoseconds. */
uint64_t bh_now_ns(void);

/* Number of CPUs this process may run on (its affinity mask). */
int bh_ncpus(void);

/* Pins the calling thread (and what it forks or execs later) to one CPU; 0 or -errno. */
int bh_pin(int cpu);

/* The two CPUs the figures use: the client always runs on bh_cpu_a(), the server on bh_cpu_a()
 * (same-core placement) or bh_cpu_b() (cross-core; equal to a on a one-CPU machine). */
int bh_cpu_a(void);
int bh_cpu_b(void);

/* Statistics of n samples (the array is sorted in place). */
struct bh_stats {
    size_t n;
    double median, min, max, p10, p90, p99, mean;
};
void bh_stats(double *v, size_t n, struct bh_stats *out);

/* Per-call latency samples kept in a growable array (capped; further samples are dropped). */
struct bh_samples {
    double *v;
    size_t n, cap, max;
};
int bh_samples_init(struct bh_samples *s, size_t max);
void bh_samples_add(struct bh_samples *s, double x);
void bh_samples_free(struct bh_samples *s);

/* Repetition settings from the environment: BENCH_REPS (default 5) repetitions of
 * BENCH_REP_MS (default 200) milliseconds each. */
int bh_reps(void);
uint64_t bh_rep_ns(void);

/* One row of the table. Fields that do not apply stay NULL / 0. */
struct bh_row {
    const char *id;     /* unique key, e.g. "ring.idm.spin.cross"; other rows refer to it */
    const char *fig;    /* "1" .. "7" */
    const char *label;  /* what was measured */
    const char *cpus;   /* placement, e.g. "client cpu0, server cpu1" */
    const char *unit;   /* "us", "GB/s", "calls/s", "ms" */
    struct bh_stats rep; /* one value per repetition: median and spread */
    int has_call;        /* per-call latency percentiles (unit us) below are valid */
    double call_p50, call_p99;
    double rate;         /* calls per second (median over repetitions), 0 if not given */
    const char *ref;     /* ratio = rep.median / (row ref).rep.median, computed by the report */
    const double *values; /* the per-repetition values in repetition order (bh_row_reps) */
    int paired;          /* repetition i of this row ran next to repetition i of ref: the
                          * report then gives the median of the per-repetition ratios */
    const char *ref_what; /* what the ratio is against, e.g. "floor", "memcpy" */
    const char *goal;    /* "ratio<=1.5", "ratio>=0.8", "value>=2000000" or NULL */
    const char *detail;  /* short text printed at the end of the table row */
    const char *note;    /* free text (JSON only) */
};

/* Sets r->rep from n per-repetition values (left in order) and keeps them for the record. */
void bh_row_reps(struct bh_row *r, const double *v, size_t n);

/* Where records go: the file named by BENCH_RECORDS (appended), else stdout. */
void bh_emit(const struct bh_row *r);
/* A row that could not be measured, with the reason (status "unavailable" or "skipped"). */
void bh_emit_missing(const char *id, const char *fig, const char *label, const char *status,
                     const char *reason);

/* Formats a rate as "850/s", "12.3k/s" or "1.63M/s". Returns buf. */
char *bh_fmt_rate(char *buf, size_t len, double per_s);

/* Prints a progress line on stderr ("bench: ..."). */
void bh_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Forks a child pinned to `cpu` that runs fn(arg) and exits with its return value. Returns the
 * pid or -errno. */
pid_t bh_spawn(int cpu, int (*fn)(void *), void *arg);
/* Waits for a child; returns its exit status (0..255), or -errno, or 128+signal. */
int bh_wait(pid_t pid);

#ifdef __cplusplus
}
#endif

#endif /* BENCH_HARNESS_H */
