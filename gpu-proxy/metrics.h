/* metrics.h - the figures gpu_proxy shows about its GPU and zones, as snapshots the supervisor
 * collects from the workers' pages (metrics_serve.c), and their two renderings: the admin
 * socket's METRICS answer (version 1, docs/CONTRACTS.md) and the Prometheus text exposition
 * format 0.0.4 (`--metrics`). Pure formatting: no sockets, no shared memory. */
#ifndef GPU_PROXY_METRICS_H
#define GPU_PROXY_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "worker_ipc.h"

#define METRICS_VERSION 1

/* The GPU as the backend and (real backend, when present) NVML see it. */
struct gpu_snap {
    char backend[16];
    char device[64];
    uint64_t total_bytes;
    int nvml;                  /* 1: a fresh NVML sample; nvml_have says which figures */
    unsigned nvml_have;        /* enum wg_have */
    uint64_t nvml_age_ms;      /* how old the sample is */
    uint64_t nvml_util_pct;    /* GPU utilisation over NVML's last sample period */
    uint64_t nvml_mem_used, nvml_mem_total;
    uint64_t nvml_temp_c;
    uint64_t nvml_power_mw;
};

/* One zone: the supervisor's own figures, its live workers' pages and those that ended. */
struct zone_snap {
    char name[64];
    const char *state;         /* as LIST's state= */
    int pid;                   /* the serving worker, 0: none */
    unsigned workers, restarts, faults;
    char last_fault[160];      /* printable ASCII, "" when none */
    uint64_t quota, used, peak, allocations;
    int clients;
    int busy_known;            /* m.busy_ns is GPU busy time (simulated GPU, or NVML) */
    struct worker_counters m;  /* summed over the zone's workers, past and present */
};

/* Adds src to acc word by word (relaxed loads: src may be a live worker's page). */
void metrics_sum(struct worker_counters *acc, const struct worker_counters *src);

const char *metrics_family_name(unsigned family);
const char *metrics_refusal_name(unsigned reason);
/* "CUDA_ERROR_INVALID_VALUE", ... for a CUresult of cuda.h, else NULL. */
const char *metrics_result_name(unsigned code);

/* The admin socket's METRICS answer: "OK version=1 zones=N", a "gpu" line, a "zone" line per
 * zone, each of space-separated key=value fields (strings percent-encoded). 0 or -EIO. */
int metrics_admin_text(FILE *f, const struct gpu_snap *g, const struct zone_snap *z,
                       unsigned n);
/* The Prometheus text exposition (0.0.4) of the same figures. 0 or -EIO. */
int metrics_prom_text(FILE *f, const struct gpu_snap *g, const struct zone_snap *z,
                      unsigned n);

#endif /* GPU_PROXY_METRICS_H */
