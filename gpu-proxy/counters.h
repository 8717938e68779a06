/* counters.h - how a zone's worker counts what it serves into struct worker_counters
 * (worker_ipc.h), on the page the supervisor reads: relaxed atomic adds, no locks, nothing at
 * all when the zone has no counters (z->m NULL: --call-stats off, or no page in unit tests).
 * Which family an op belongs to, and which refusal reason a CUresult stands for by default. */
#ifndef GPU_PROXY_COUNTERS_H
#define GPU_PROXY_COUNTERS_H

#include <cuda.h>
#include <stdint.h>
#include <time.h>

#include "worker_ipc.h"

/* The family of op number op: the sections of idm_ops.def. */
static inline enum wm_family wm_family_of(uint32_t op)
{
    if (op < 10)
        return WM_FAM_DEVICE;
    if (op < 30)
        return WM_FAM_CONTEXT;
    if (op >= 33 && op <= 36)
        return WM_FAM_COPY;
    if (op < 50 || (op >= 100 && op < 110))
        return WM_FAM_MEMORY;
    if (op < 70)
        return WM_FAM_STREAM;
    if (op < 90)
        return WM_FAM_MODULE;
    if (op < 100)
        return WM_FAM_LAUNCH;
    if (op >= 140 && op < 160) /* virtual memory management */
        return WM_FAM_MEMORY;
    return WM_FAM_OTHER;
}

/* The refusal reason a refused request's CUresult stands for, unless its check names one. */
static inline enum wm_refusal wm_refusal_of(CUresult rc)
{
    switch (rc) {
    case CUDA_ERROR_INVALID_HANDLE:
    case CUDA_ERROR_INVALID_CONTEXT:
        return WM_REF_HANDLE;
    case CUDA_ERROR_OUT_OF_MEMORY:
        return WM_REF_LIMIT;
    default:
        return WM_REF_INVALID;
    }
}

static inline void wm_add(uint64_t *c, uint64_t n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static inline uint64_t wm_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A request answered with rc (counted only when it failed). */
static inline void wm_result(struct worker_counters *m, CUresult rc)
{
    if (m && rc != CUDA_SUCCESS)
        wm_add(&m->failures[(unsigned)rc < WM_RESULTS - 1 ? (unsigned)rc : WM_RESULTS - 1], 1);
}

static inline void wm_refused(struct worker_counters *m, enum wm_refusal why)
{
    if (m && (unsigned)why < WM_REFUSALS)
        wm_add(&m->refusals[why], 1);
}

/* One request in WM_TIMED_EVERY per dispatch thread is timed for the latency histogram: a
 * clock read costs about 40 ns here, a tenth of a whole synchronous call (make bench). */
#define WM_TIMED_EVERY 16

/* Whether the calling thread's next request is one to time. */
static inline int wm_timed_next(void)
{
    static __thread unsigned tick;

    return ++tick % WM_TIMED_EVERY == 0;
}

/* One call of op's family; a timed one (ns > 0) spent ns in the dispatch. */
static inline void wm_call(struct worker_counters *m, uint32_t op, uint64_t ns)
{
    static const uint64_t bounds[WM_LAT_BUCKETS - 1] = WM_LAT_BOUNDS_NS;
    enum wm_family f = wm_family_of(op);
    unsigned b = 0;

    wm_add(&m->calls[f], 1);
    if (ns == 0)
        return;
    while (b < WM_LAT_BUCKETS - 1 && ns > bounds[b])
        b++;
    wm_add(&m->lat_sum_ns[f], ns);
    wm_add(&m->lat_bucket[f][b], 1);
}

#endif /* GPU_PROXY_COUNTERS_H */
