/* worker_ipc.h - what a zone's worker process and the supervisor share: a page of figures the
 * worker publishes (memory charged, clients, state, why it retired) and the one-byte
 * notifications it sends on its control socket. The supervisor treats every value it reads
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
};

#endif /* GPU_PROXY_WORKER_IPC_H */
