/* worker.h - one zone's worker process: it owns the zone's backend instance (on a real GPU its
 * CUDA context, in stub mode its own simulated GPU), accepts the zone's clients and decodes and
 * executes all of their requests. The supervisor (supervisor.c) forks it and never sees a
 * tenant's bytes. */
#ifndef GPU_PROXY_WORKER_H
#define GPU_PROXY_WORKER_H

#include <stdint.h>

#include "config.h"
#include "idm_transport.h"
#include "worker_ipc.h"

/* Exit statuses of a worker process. */
enum {
    WORKER_EXIT_OK = 0,        /* stopped on request */
    WORKER_EXIT_INIT = 3,      /* the backend or the sandbox could not be set up */
    WORKER_EXIT_RETIRED = 4,   /* ended after a sticky fault (the supervisor starts a new one) */
    WORKER_EXIT_STUCK = 5,     /* some client threads would not end; left to the exit */
};

struct worker_spec {
    const struct server_config *cfg;
    const char *zone_name;
    uint64_t quota;
    uint32_t zone_id;                 /* stable across restarts of the zone's worker */
    const struct idm_transport *posix;
    struct idm_listener *posix_l;     /* the zone's socket, bound by the supervisor, or NULL */
    int32_t xen_domid;                /* the zone's Xen guest, or -1 */
    int ctl_fd;                       /* notifications to the supervisor (worker_ipc.h) */
    struct worker_stats *stats;       /* the page shared with the supervisor */
    unsigned generation;              /* how many workers the zone had before this one */
};

/* Runs in the forked child and never returns: the process exits with a WORKER_EXIT_* status. */
void worker_run(const struct worker_spec *ws) __attribute__((noreturn));

#endif /* GPU_PROXY_WORKER_H */
