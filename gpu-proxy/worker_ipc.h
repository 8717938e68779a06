/* worker_ipc.h - what a zone's worker process and the supervisor share: a page of figures the
 * worker publishes (memory charged, clients, state, why it retired, and the counters of
 * struct worker_counters: calls, latency, failures, refusals, kernels, bytes copied) and the
 * one-byte notifications it sends on its control socket; a cuda worker adds the GPU's own
 * figures read through NVML (struct worker_gpu). The supervisor treats every value it reads
 * from the page as untrusted: it only displays and sums them, copies strings out with a bound,
 * and never lets them decide anything about another zone. */
#ifndef GPU_PROXY_WORKER_IPC_H
#define GPU_PROXY_WORKER_IPC_H

#include <stdint.h>

#define WORKER_STATS_MAGIC 0x5753504bu /* "KPSW" */

enum worker_state {
    WS_STARTING = 0, /* forked, backend not yet up */
    WS_READY = 1,    /* serving the zone's clients */
    WS_RETIRING = 2, /* a sticky fault: no new clients, current ones get the error */
    WS_STOPPING = 3, /* asked to stop (REMOVE, shutdown) */
};

/* Notifications on the control socket (worker -> supervisor), one byte each. */
enum worker_note { WN_READY = 'R', WN_RETIRING = 'F', WN_INIT_FAILED = 'X' };

/* Op families: the sections of idm_ops.def, by op number (wm_family_of). */
enum wm_family {
    WM_FAM_DEVICE, WM_FAM_CONTEXT, WM_FAM_MEMORY, WM_FAM_COPY, WM_FAM_STREAM, WM_FAM_MODULE,
    WM_FAM_LAUNCH, WM_FAM_OTHER, WM_FAMILIES
};

/* Why a request was refused (rq_refuse and the frame checks). */
enum wm_refusal {
    WM_REF_HANDLE,       /* a forged, freed, foreign or wrong-type handle */
    WM_REF_DEVICE_RANGE, /* a device address range outside the zone's allocations */
    WM_REF_WINDOW,       /* a bulk-window range outside the connection's window */
    WM_REF_QUOTA,        /* past the zone's quota */
    WM_REF_LIMIT,        /* past another bound (streams, staging, clients, address space) */
    WM_REF_MALFORMED,    /* unknown op, short request, bad name tail */
    WM_REF_INVALID,      /* any other invalid argument */
    WM_REFUSALS
};

/* Upper bounds of the call-latency buckets, in nanoseconds; a last bucket takes the rest. */
#define WM_LAT_BOUNDS_NS                                                                        \
    {1000, 2500, 5000, 10000, 25000, 100000, 1000000, 10000000, 100000000, 1000000000}
#define WM_LAT_BUCKETS 11  /* the bounds above and +Inf */
#define WM_RESULTS 1024    /* failures by CUresult 0..1022; 1023 counts any other value */

/* Monotonic counters, every field a uint64_t (summed word by word by the supervisor). The
 * worker adds with relaxed atomics: no locks on the request path. */
struct worker_counters {
    uint64_t calls[WM_FAMILIES];
    uint64_t lat_sum_ns[WM_FAMILIES];  /* time in the dispatch of the timed calls (one in
                                        * WM_TIMED_EVERY per client thread, counters.h) */
    uint64_t lat_bucket[WM_FAMILIES][WM_LAT_BUCKETS]; /* the timed calls; not cumulative */
    uint64_t refusals[WM_REFUSALS];
    uint64_t kernels;          /* launches that ran (or were issued, real GPU) successfully */
    uint64_t busy_ns;          /* GPU busy time (see worker_stats.busy_known) */
    uint64_t htod_bytes, dtoh_bytes, dtod_bytes;
    uint64_t connections;      /* clients accepted */
    uint64_t failures[WM_RESULTS]; /* requests answered with this CUresult (not 0) */
};

/* The figures of struct worker_gpu that NVML gave (a GPU may not support some). */
enum wg_have { WG_UTIL = 1, WG_MEM = 2, WG_TEMP = 4, WG_POWER = 8 };

/* The GPU's own figures (real backend, NVML), sampled by the worker's NVML thread (nvml.c)
 * about once a second. A sequence lock: seq is odd while the worker writes; a reader copies
 * the fields between two equal, even reads of seq (metrics_serve.c). why is written once,
 * before the worker reports ready, when NVML is not read. */
struct worker_gpu {
    uint64_t seq;
    uint64_t at_ms;           /* CLOCK_MONOTONIC ms of the sample; 0: none */
    uint64_t have;            /* enum wg_have */
    uint64_t util_pct;        /* kernels running, % of NVML's last sample period */
    uint64_t mem_used, mem_total; /* bytes, the whole GPU (all processes) */
    uint64_t temp_c;
    uint64_t power_mw;
    char why[160];            /* why NVML is not read ("": it is) */
};

struct worker_stats {
    uint32_t magic;
    uint32_t state;           /* enum worker_state */
    int32_t clients;          /* connected clients */
    uint32_t faults;          /* sticky faults seen */
    uint64_t used;            /* device bytes charged to the zone's quota */
    uint64_t allocated_bytes; /* all charges ever made */
    uint64_t scrubbed_bytes;  /* bytes zeroed on free */
    uint64_t total_mem;       /* the device's memory, as the backend reports it */
    char device[64];          /* the device's name */
    char why[160];            /* why the worker retired or failed to start */
    uint64_t peak;            /* the highest `used` seen */
    uint64_t allocations;     /* live device allocations */
    /* 1 when m.busy_ns is the zone's GPU busy time: the simulated GPU's time in kernels, or
     * (real GPU) NVML's utilisation of this worker process, added by the NVML thread. */
    uint32_t busy_known;
    uint32_t pad_;
    struct worker_counters m;
    struct worker_gpu gpu;
};

#endif /* GPU_PROXY_WORKER_IPC_H */
