/* supervisor.h - gpu_proxy's main process: it keeps the configuration, the admin socket, the
 * zones' listening sockets and the zone registry, and runs one worker process per zone
 * (worker.h). It never decodes a tenant's request. */
#ifndef GPU_PROXY_SUPERVISOR_H
#define GPU_PROXY_SUPERVISOR_H

#include "config.h"

#define GPU_PROXY_VERSION "0.2.0"

/* Runs until SIGTERM/SIGINT; returns the process exit status. */
int supervisor_run(const struct server_config *cfg);

#endif /* GPU_PROXY_SUPERVISOR_H */
