/* nvml_fixture.c - stands in for NVIDIA's libnvidia-ml.so.1 in tests/chain/run.sh (built as
 * that name, found through LD_LIBRARY_PATH): the entry points gpu-proxy/nvml.c calls, with
 * NVML's documented types and return codes, answering fixed figures for one device, the
 * simulated GPU's UUID (gpu-proxy/backend_stub.c's stub_uuid, as cuDeviceGetUuid gives it
 * through the chain), and the calling process 50% busy. Anything else is refused as NVML
 * refuses it. */
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define NVML_SUCCESS 0
#define NVML_ERROR_UNINITIALIZED 1
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_FOUND 6
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25

typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int pid;
    unsigned long long timeStamp;
    unsigned int smUtil, memUtil, encUtil, decUtil;
} nvmlProcessUtilizationSample_t;

#define UUID "GPU-5a6e4750-552d-5349-4d2d-483130300001"
#define MEM_TOTAL (80ull << 30)
#define MEM_USED (1234ull << 20)

static int initialised;
static char device; /* its address is the one handle */

int nvmlInit_v2(void)
{
    initialised++;
    return NVML_SUCCESS;
}

int nvmlShutdown(void)
{
    if (initialised == 0)
        return NVML_ERROR_UNINITIALIZED;
    initialised--;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(int rc)
{
    return rc == NVML_ERROR_NOT_FOUND ? "Not Found" : rc ? "fixture error" : "Success";
}

int nvmlDeviceGetHandleByUUID(const char *uuid, nvmlDevice_t *dev)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    if (uuid == NULL || dev == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (strcmp(uuid, UUID) != 0)
        return NVML_ERROR_NOT_FOUND;
    *dev = (nvmlDevice_t)&device;
    return NVML_SUCCESS;
}

static int check(nvmlDevice_t dev, const void *out)
{
    if (!initialised)
        return NVML_ERROR_UNINITIALIZED;
    return dev == (nvmlDevice_t)&device && out ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

int nvmlDeviceGetUtilizationRates(nvmlDevice_t dev, nvmlUtilization_t *u)
{
    int rc = check(dev, u);

    if (rc == NVML_SUCCESS)
        *u = (nvmlUtilization_t){.gpu = 37, .memory = 12};
    return rc;
}

int nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *m)
{
    int rc = check(dev, m);

    if (rc != NVML_SUCCESS)
        return rc;
    if (m->version != (unsigned)(sizeof(*m) | (2u << 24)))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    m->total = MEM_TOTAL;
    m->reserved = 512ull << 20;
    m->used = MEM_USED;
    m->free = MEM_TOTAL - MEM_USED - m->reserved;
    return NVML_SUCCESS;
}

int nvmlDeviceGetTemperature(nvmlDevice_t dev, int sensor, unsigned int *t)
{
    int rc = check(dev, t);

    if (rc == NVML_SUCCESS && sensor != 0) /* NVML_TEMPERATURE_GPU */
        return NVML_ERROR_INVALID_ARGUMENT;
    if (rc == NVML_SUCCESS)
        *t = 51;
    return rc;
}

int nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *mw)
{
    int rc = check(dev, mw);

    if (rc == NVML_SUCCESS)
        *mw = 123456;
    return rc;
}

/* One sample, for the calling process (a worker of the chain's outer proxy), 50% SM busy,
 * stamped now; none when lastSeen is not older (NVML's NOT_FOUND). */
int nvmlDeviceGetProcessUtilization(nvmlDevice_t dev, nvmlProcessUtilizationSample_t *u,
                                    unsigned int *count, unsigned long long lastSeen)
{
    int rc = check(dev, count);
    struct timeval tv;
    unsigned long long now;

    if (rc != NVML_SUCCESS)
        return rc;
    gettimeofday(&tv, NULL);
    now = (unsigned long long)tv.tv_sec * 1000000ull + (unsigned long long)tv.tv_usec;
    if (now <= lastSeen)
        return NVML_ERROR_NOT_FOUND;
    if (u == NULL || *count < 1) {
        *count = 1;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    *count = 1;
    u[0] = (nvmlProcessUtilizationSample_t){.pid = (unsigned int)getpid(), .timeStamp = now,
                                            .smUtil = 50, .memUtil = 10};
    return NVML_SUCCESS;
}
