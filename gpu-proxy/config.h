/* config.h - gpu_proxy's configuration as main.c parses it: the backend, the listen directory,
 * the zones with their quotas, the Xen domid -> zone mapping, the workers' sandbox and cgroups,
 * the workers' counters and the Prometheus listener.
 * The * supervisor (supervisor.h) runs it; each zone's worker (worker.h) gets a read-only copy. */
#ifndef GPU_PROXY_CONFIG_H
#define GPU_PROXY_CONFIG_H

#include <stdint.h>

#include "backend.h"
#include "sandbox.h"

#define SERVER_MAX_ZONES_CFG 256

struct zone_cfg {
    char name[64];
    uint64_t quota;
};

struct xen_zone_cfg {
    int32_t domid;
    char name[64];
    uint64_t quota;
};

struct server_config {
    const struct backend_ops *be;
    char listen_dir[256];
    struct zone_cfg zones[SERVER_MAX_ZONES_CFG];
    unsigned nzones;
    int xen;
    char xen_path[256];
    struct xen_zone_cfg xen_zones[SERVER_MAX_ZONES_CFG];
    unsigned nxen_zones;
    struct sandbox_config sandbox; /* applied by each worker before it serves */
    char cgroup[256];              /* --cgroup: "off", a NAME or an absolute /PATH */
    int call_stats;                /* --call-stats: workers count calls, latency, failures */
    char metrics[256];             /* --metrics: "" (off), [HOST:]PORT or a Unix socket path */
};

#define GPU_PROXY_DEFAULT_CGROUP "gpu-proxy"

#endif /* GPU_PROXY_CONFIG_H */
