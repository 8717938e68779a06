/* plugin.h - the device plugin's state and behaviour: memory slices advertised as devices, their
 * health (gpu_proxy answering PING; a slice's zone serving, per LIST's state=), zones created on Allocate and released when PodResources no
 * longer lists their devices, and the DevicePlugin gRPC methods. main.c drives it. */
#ifndef VGPU_K8S_PLUGIN_H
#define VGPU_K8S_PLUGIN_H

#include "cdi.h"
#include "grpc_h2.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define PLUGIN_MAX_SLICES 4096
#define PLUGIN_MAX_LIBCUDA_PATHS 8

struct plugin_config {
    const char *kubelet_dir;        /* the kubelet's device-plugin directory */
    const char *endpoint;           /* our socket's name in it */
    const char *resource_name;      /* e.g. vgpu.dev/memory-slice */
    const char *proxy_admin;        /* gpu_proxy's admin socket */
    const char *zone_dir;           /* per-zone socket directories (same mount as the proxy's) */
    const char *pod_resources;      /* the kubelet's PodResources socket */
    const char *state_file;         /* zones this plugin created, across restarts */
    uint64_t slice_size;
    uint64_t total_memory;          /* 0: ask gpu_proxy */
    bool use_cdi;
    bool use_mounts;
    unsigned release_grace_s;       /* a zone younger than this is never released */
    struct cdi_config cdi;
    const char *libcuda_paths[PLUGIN_MAX_LIBCUDA_PATHS];
};

struct zone {
    char name[64];
    time_t created;                 /* wall clock, survives restarts through the state file */
    uint64_t quota;
    unsigned restarts_seen;         /* LIST's restarts= at the last health check */
    bool listed;                    /* restarts_seen is known (set when we ADD the zone, or at
                                     * the first check after loading it from the state file) */
    unsigned n_devs;
    uint32_t devs[];                /* slice indices */
};

struct plugin {
    struct plugin_config cfg;
    pthread_mutex_t lock;           /* everything below */
    pthread_mutex_t zones_lock;     /* serialises zone changes (held across admin-socket calls) */
    unsigned n_slices;
    bool healthy;                   /* gpu_proxy answers PING */
    bool health_known;
    bool slice_down[PLUGIN_MAX_SLICES]; /* its zone's worker is not serving, or restarted */
    uint64_t generation;            /* bumped whenever the advertised device list changes */
    struct zone **zones;
    size_t n_zones;
    struct grpc_server *srv;        /* set by main.c, for notify */
};

/* The DevicePlugin service's methods (paths /v1beta1.DevicePlugin/...). */
extern const struct grpc_method plugin_methods[];
extern const size_t plugin_n_methods;

int plugin_init(struct plugin *p, const struct plugin_config *cfg);
void plugin_fini(struct plugin *p);

/* Pings gpu_proxy, refreshes the slice count and health (the whole proxy's, and each allocated
 * slice's from its zone's LIST state); restores zones after the proxy comes back. Returns true when the advertised list changed (main.c then notifies the streams). */
bool plugin_check_health(struct plugin *p);
/* Warns about zones named like ours (k8s-...) that gpu_proxy has but the state file does not:
 * nobody will release them (a lost state file); the operator removes them with REMOVE. */
void plugin_report_orphans(struct plugin *p);
/* Lists the kubelet's pod resources and removes zones whose devices no longer belong to any
 * container (older than the grace period). */
void plugin_release_unused(struct plugin *p);

/* Device id of a slice: "slice-0007". */
void plugin_device_id(unsigned idx, char *out, size_t outlen);
/* Parses a device id back; 0 or -EINVAL. */
int plugin_parse_device_id(const char *id, unsigned *idx);

#endif
