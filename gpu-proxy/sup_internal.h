/* sup_internal.h - the supervisor's own state, shared by supervisor.c (zones and worker
 * processes) and admin.c (the admin socket). Not used by workers. */
#ifndef GPU_PROXY_SUP_INTERNAL_H
#define GPU_PROXY_SUP_INTERNAL_H

#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "config.h"
#include "idm_transport.h"
#include "worker_ipc.h"

struct szone;
struct admin_conn;

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
    struct admin_conn *remove_conn; /* the admin connection waiting for REMOVE's answer */
    struct szone *next;
};

/* One admin connection: a request line read without blocking, then its answer written
 * without blocking (admin.c). */
#define ADMIN_MAX_CONNS 16    /* more are answered "ERR busy" and closed */
#define ADMIN_LINE_MAX 512    /* a request line, newline included */
#define ADMIN_OUT_MAX (1u << 20)
#define ADMIN_IDLE_MS 5000    /* to send the line, and to drain the answer */

enum admin_conn_state { AC_FREE = 0, AC_READING, AC_WAITING, AC_WRITING };

struct admin_conn {
    int fd;
    int state;                /* enum admin_conn_state */
    size_t in_len;
    char in[ADMIN_LINE_MAX];
    char *out;                /* the answer (malloc'd), out_off bytes of it sent */
    size_t out_len, out_off;
    uint64_t deadline_ms;     /* closed at this time (0: none, while REMOVE waits) */
    int pidx;                 /* its slot in the current poll set, or -1 */
};

struct admin_state {
    int fd;
    int pidx;                 /* the listener's slot in the current poll set, or -1 */
    char path[300];
    struct admin_conn conns[ADMIN_MAX_CONNS];
};

struct sup {
    const struct server_config *cfg;
    const struct idm_transport *posix;
    struct szone *zones;
    uint32_t next_zone_id;
    struct admin_state admin;
    struct cgroup_ctx cg;
    int signal_fd;
    int stopping;
    int starting, start_failed;
    uint64_t total_mem;       /* the device's memory, from the first ready worker */
    uint64_t dead_scrubbed;   /* bytes scrubbed by workers that have ended */
};

int sup_spawn_worker(struct sup *S, struct szone *z);
void sup_stop_worker(struct wproc *w);
struct wproc *sup_serving_worker(struct szone *z);
struct szone *sup_zone_get(struct sup *S, const char *name);
/* Adds a zone and starts its worker: 0, -EEXIST, -EINVAL (name) or another -errno. */
int sup_zone_add(struct sup *S, const char *name, uint64_t quota, int32_t xen_domid);
/* Starts removing a zone; ac (or NULL) gets "OK" once its workers have ended. */
void sup_zone_remove(struct sup *S, struct szone *z, struct admin_conn *ac);
void sup_zone_finish_remove(struct sup *S, struct szone *z);

#endif /* GPU_PROXY_SUP_INTERNAL_H */
