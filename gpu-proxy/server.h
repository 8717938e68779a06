/* server.h - gpu_proxy's serving side: one listener per zone (POSIX sockets DIR/NAME.sock, and
 * optionally the Xen transport with domid -> zone mapping), one thread per connected client,
 * the admin socket, signals and sd_notify. */
#ifndef GPU_PROXY_SERVER_H
#define GPU_PROXY_SERVER_H

#include <stdint.h>

#include "backend.h"

#define SERVER_MAX_ZONES_CFG 256
#define GPU_PROXY_VERSION "0.1.0"

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
};

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int server_run(const struct server_config *cfg);

#endif /* GPU_PROXY_SERVER_H */
