/* cgroup.h - one control group per zone for gpu_proxy's workers: the hierarchy found at start-up
 * (cgroup v2, or the v1 memory, cpu and pids controllers), the zone's limits (memory, an equal CPU
 * weight, a task count), moving a worker in before it runs, removing the group after the zone.
 * Used by the supervisor only. */
#ifndef GPU_PROXY_CGROUP_H
#define GPU_PROXY_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "zone.h"

enum cgroup_kind { CGROUP_NONE = 0, CGROUP_V1 = 1, CGROUP_V2 = 2 };

/* v1: one directory per controller; v2: dirs[0] only. */
#define CGROUP_NDIRS 3

/* Tasks (threads) of one worker at most: a thread per client (ZONE_MAX_CLIENTS), one per stream
 * (SESSION_MAX_STREAMS per client), a few the CUDA driver starts per context (4 allowed per
 * client), the PTX engine's pool (256, POOL_MAX in ptx/ptx_exec.c) and 16 for the main thread
 * and the rest. A zone's group holds a retiring worker and its successor at once: twice that. */
#define CGROUP_TASKS_PER_WORKER (ZONE_MAX_CLIENTS * (1 + SESSION_MAX_STREAMS + 4) + 256 + 16)
#define CGROUP_ZONE_PIDS_MAX (2 * CGROUP_TASKS_PER_WORKER)
#define CGROUP_V2_CPU_WEIGHT 100  /* the same for every zone (v2's default) */
#define CGROUP_V1_CPU_SHARES 1024 /* the same for every zone (v1's default) */

struct cgroup_ctx {
    int kind;                              /* enum cgroup_kind */
    int ndirs;                             /* 1 (v2) or 3 (v1: memory, cpu, pids) */
    char parent[CGROUP_NDIRS][PATH_MAX];   /* the proxy's parent group in each hierarchy */
    int made_parent[CGROUP_NDIRS];         /* created by us: removed if set-up fails */
};

/* Finds a writable hierarchy and makes the parent group. spec: "off", a NAME (made under the
 * proxy's own group in each hierarchy) or an absolute /PATH inside each hierarchy. Without a
 * usable hierarchy kind stays CGROUP_NONE and one line says what was tried and why not. */
void cgroup_setup(struct cgroup_ctx *cg, const char *spec);
/* Removes the parent groups when empty (another proxy with the same parent may still use them). */
void cgroup_teardown(struct cgroup_ctx *cg);

/* Makes the zone's group with its limits (memory_max 0: no memory limit). 0, or -errno with
 * the reason in err; on failure nothing is left behind. */
int cgroup_zone_create(const struct cgroup_ctx *cg, const char *zone, uint64_t memory_max,
                       char *err, size_t errlen);
/* Moves process pid into the zone's group. 0, or -errno with the reason in err. */
int cgroup_zone_attach(const struct cgroup_ctx *cg, const char *zone, pid_t pid, char *err,
                       size_t errlen);
/* Removes the zone's group once its processes have ended (logged when it cannot). */
void cgroup_zone_remove(const struct cgroup_ctx *cg, const char *zone);
/* The zone's group directory in hierarchy i (< cg->ndirs). */
void cgroup_zone_path(const struct cgroup_ctx *cg, int i, const char *zone, char *out,
                      size_t cap);

const char *cgroup_kind_name(int kind);

#endif /* GPU_PROXY_CGROUP_H */
