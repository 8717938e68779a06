/* nvml.h - the GPU's own figures (utilisation, memory, temperature, power) read through
 * NVIDIA's NVML in a cuda worker: libnvidia-ml.so.1 loaded with dlopen and initialised before
 * the sandbox (like the driver), the device found by its CUDA UUID, and a thread that samples
 * it about once a second into the page the worker shares with the supervisor (struct
 * worker_gpu, worker_ipc.h). The supervisor never loads NVML. */
#ifndef GPU_PROXY_NVML_H
#define GPU_PROXY_NVML_H

#include <stddef.h>
#include <stdint.h>

#include "worker_ipc.h"

#define NVML_PERIOD_MS 1000

/* Loads and initialises NVML and finds the device whose UUID (cuDeviceGetUuid's bytes) is
 * uuid. 0, or -1 with a one-line reason in err (nothing is left loaded). */
int nvml_open(const uint8_t uuid[16], char *err, size_t errlen);

/* Publishes a first sample into st->gpu, then starts the thread that publishes one every
 * NVML_PERIOD_MS; where NVML gives this process's utilisation it also adds the zone's GPU busy
 * time to st->m.busy_ns (and sets st->busy_known). zone names the worker in the log. 0 or
 * -errno (no thread). */
int nvml_start(struct worker_stats *st, const char *zone);

/* Stops the thread (if started) and shuts NVML down (if opened). */
void nvml_stop(void);

#endif /* GPU_PROXY_NVML_H */
