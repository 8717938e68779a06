/* sup_internal.h - the supervisor's own state, shared by supervisor.c (zones and worker
 * processes), admin.c (the admin socket) and metrics_serve.c (the metrics listener). Not used
 * by workers. */
#ifndef GPU_PROXY_SUP_INTERNAL_H
#define GPU_PROXY_SUP_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "config.h"
#include "conn.h"
#include "idm_transport.h"
#include "worker_ipc.h"

struct szone;

/* One worker process of a zone. */
struct wproc {
    pid_t pid;
    int ctl_fd;               /* the worker's notes; -1 once it closed */
    struct worker_stats *st;  /* the page it publishes (untrusted) */
    unsigned generation;
    int state;                /* enum worker_state, as the supervisor sees it */
    uint64_t started_ms;
    uint64_t kill_at;         /* SIGKILL at this time if still alive (0: not stopping) */
    int killed;
    int cg;                   /* enum cgroup_kind it was moved into (NONE: not) */
    struct szone *z;
    struct wproc *next;
};

/* A zone as the supervisor knows it. */
struct szone {
    char name[64];
    uint64_t quota;
    uint32_t id;
    int32_t xen_domid;        /* -1: none */
    struct idm_listener *l;   /* DIR/NAME.sock, bound here, accepted on by the worker */
    char path[300];
    struct wproc *workers;    /* at most one STARTING/READY; others retiring or stopping */
    unsigned generation;      /* workers started so far */
    unsigned restarts, faults, quick_failures;
    char last_fault[160];
    uint64_t restart_at;      /* start a worker at this time (0: none due) */
    int removing;
    int cg_made;              /* its group exists in S->cg (removed after its workers) */
    struct sconn *remove_conn; /* the admin connection waiting for REMOVE's answer */
    struct worker_counters dead; /* the counters of its workers that have ended */
    uint64_t dead_peak;       /* the highest peak of those workers */
    struct szone *next;
};

/* The admin socket's bounds (admin.c, on the connections of conn.h). */
#define ADMIN_MAX_CONNS CONN_MAX /* more are answered "ERR busy" and closed */
#define ADMIN_LINE_MAX 512    /* a request line, newline included */
#define ADMIN_OUT_MAX (1u << 20)
#define ADMIN_IDLE_MS CONN_IDLE_MS /* to send the line, and to drain the answer */

struct sup {
    const struct server_config *cfg;
    const struct idm_transport *posix;
    struct szone *zones;
    uint32_t next_zone_id;
    struct conn_server admin;   /* DIR/admin.sock (admin.c) */
    struct conn_server metrics; /* --metrics (metrics_serve.c); fd -1 when off */
    struct cgroup_ctx cg;
    int signal_fd;
    int stopping;
    int starting, start_failed;
    uint64_t total_mem;       /* the device's memory, from the first ready worker */
    uint64_t dead_scrubbed;   /* bytes scrubbed by workers that have ended */
    int gpu_noted;            /* sup_gpu_note has logged */
};

int sup_spawn_worker(struct sup *S, struct szone *z);
void sup_stop_worker(struct wproc *w);
struct wproc *sup_serving_worker(struct szone *z);
struct szone *sup_zone_get(struct sup *S, const char *name);
/* Adds a zone and starts its worker: 0, -EEXIST, -EINVAL (name) or another -errno. */
int sup_zone_add(struct sup *S, const char *name, uint64_t quota, int32_t xen_domid);
/* Starts removing a zone; ac (or NULL) gets "OK" once its workers have ended. */
void sup_zone_remove(struct sup *S, struct szone *z, struct sconn *ac);
/* Binds zone z to Xen domain domid, or unbinds it (domid -1): the zone's workers are stopped
 * and a fresh one takes that domain's offers only (its clients reconnect). 0, -EOPNOTSUPP (no
 * Xen transport), -EBUSY (removing, or already bound: unbind first), -ENOENT (not bound),
 * -EEXIST (another zone has that domain), or the error of starting the worker. */
int sup_zone_bind_xen(struct sup *S, struct szone *z, int32_t domid);
void sup_zone_finish_remove(struct sup *S, struct szone *z);

struct gpu_snap;
struct zone_snap;
/* The zone's figures: its own, its live workers' pages (copied and bounded) and those of the
 * workers that ended (metrics_serve.c). */
void sup_zone_snap(struct szone *z, struct zone_snap *out);
/* Every zone's snapshot (*out: an array to free) and the GPU's; the zone count or -ENOMEM. */
int sup_collect(struct sup *S, struct gpu_snap *g, struct zone_snap **out);
/* Binds the --metrics listener (S->metrics) when one is configured; 0 or -errno. */
int metrics_open(struct sup *S);
/* Logs once, for the first worker ready, whether the GPU's own figures are read through NVML
 * and, if not, why (the worker's reason, from its page). */
void sup_gpu_note(struct sup *S, struct wproc *w);

#endif /* GPU_PROXY_SUP_INTERNAL_H */
