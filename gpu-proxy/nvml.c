/* nvml.c - the GPU's own figures through NVIDIA's NVML (see nvml.h): libnvidia-ml.so.1 loaded
 * with dlopen (never linked; the few types and prototypes of NVIDIA's documented API are
 * declared here, the toolkit ships no nvml.h), the device found by its CUDA UUID, and the
 * worker's sampling thread, which publishes into the worker's page under a sequence lock. */
#include "nvml.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "log.h"
#include "monotime.h"

/* From NVIDIA's NVML API reference. */
typedef int nvmlReturn_t; /* NVML_SUCCESS is 0 */
typedef struct nvmlDevice_st *nvmlDevice_t;
typedef struct {
    unsigned int gpu, memory; /* % of the last sample period */
} nvmlUtilization_t;
typedef struct {
    unsigned int version; /* NVML_MEMORY_V2 */
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
#define NVML_MEMORY_V2 ((unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
typedef struct {
    unsigned int pid;
    unsigned long long timeStamp; /* us, CPU time of the sample */
    unsigned int smUtil, memUtil, encUtil, decUtil; /* % of the sample period */
} nvmlProcessUtilizationSample_t;
#define NVML_ERROR_NOT_FOUND 6
#define NVML_PROC_SAMPLES 256
#define LOGGED_BUSY 0x100 /* beside enum wg_have's bits in nv.logged */
#define NVML_TEMPERATURE_GPU 0

/* The entry points: field, exported (versioned) name, 1 if NVML is unusable without it. A
 * missing figure's entry point only leaves that figure out. */
#define NVML_FUNCS(X)                                                                           \
    X(Init, "nvmlInit_v2", 1, (void))                                                           \
    X(Shutdown, "nvmlShutdown", 1, (void))                                                      \
    X(HandleByUUID, "nvmlDeviceGetHandleByUUID", 1, (const char *, nvmlDevice_t *))             \
    X(Utilization, "nvmlDeviceGetUtilizationRates", 0, (nvmlDevice_t, nvmlUtilization_t *))     \
    X(Memory, "nvmlDeviceGetMemoryInfo_v2", 0, (nvmlDevice_t, nvmlMemory_v2_t *))               \
    X(Temperature, "nvmlDeviceGetTemperature", 0, (nvmlDevice_t, int, unsigned int *))          \
    X(Power, "nvmlDeviceGetPowerUsage", 0, (nvmlDevice_t, unsigned int *))                     \
    X(ProcessUtil, "nvmlDeviceGetProcessUtilization", 0,                                        \
      (nvmlDevice_t, nvmlProcessUtilizationSample_t *, unsigned int *, unsigned long long))

static struct {
    void *lib;
    const char *(*ErrorString)(nvmlReturn_t);
#define X(field, name, required, args) nvmlReturn_t (*field) args;
    NVML_FUNCS(X)
#undef X
    nvmlDevice_t dev;
    struct worker_gpu *pub;
    struct worker_stats *st;
    unsigned long long proc_seen; /* NVML timestamp of the last per-process sample used */
    uint64_t proc_at_ms;          /* when the busy time was last added */
    nvmlProcessUtilizationSample_t proc[NVML_PROC_SAMPLES];
    const char *zone;
    unsigned logged;          /* enum wg_have: figures whose absence was logged */
    pthread_t thread;
    int running;
    int stop;                 /* under lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;      /* CLOCK_MONOTONIC */
} nv = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *nv_err(nvmlReturn_t rc)
{
    const char *s = nv.ErrorString ? nv.ErrorString(rc) : NULL;

    return s ? s : "unknown NVML error";
}

static int resolve(char *err, size_t errlen)
{
    *(void **)&nv.ErrorString = dlsym(nv.lib, "nvmlErrorString");
#define X(field, name, required, args)                                                          \
    *(void **)&nv.field = dlsym(nv.lib, name);                                                  \
    if (nv.field == NULL && (required)) {                                                       \
        snprintf(err, errlen, "libnvidia-ml.so.1 has no %s", name);                             \
        return -1;                                                                              \
    }
    NVML_FUNCS(X)
#undef X
    return 0;
}

/* The device by "MIG-..." (a MIG instance) or "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx". */
static nvmlReturn_t find_device(const uint8_t u[16], char *name, size_t cap)
{
    static const char *const prefix[2] = {"GPU", "MIG"};
    nvmlReturn_t rc = 0;

    for (int i = 1; i >= 0; i--) { /* ends with the GPU- form in name, for the log */
        snprintf(name, cap,
                 "%s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 prefix[i], u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
                 u[11], u[12], u[13], u[14], u[15]);
        rc = nv.HandleByUUID(name, &nv.dev);
        if (rc == 0)
            return 0;
    }
    return rc;
}

int nvml_open(const uint8_t uuid[16], char *err, size_t errlen)
{
    char name[64];
    nvmlReturn_t rc;

    nv.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (nv.lib == NULL) {
        snprintf(err, errlen, "dlopen(libnvidia-ml.so.1) failed: %s", dlerror());
        return -1;
    }
    if (resolve(err, errlen) != 0)
        goto close_lib;
    rc = nv.Init();
    if (rc != 0) {
        snprintf(err, errlen, "nvmlInit_v2 failed: %s (%d)", nv_err(rc), rc);
        goto close_lib;
    }
    rc = find_device(uuid, name, sizeof(name));
    if (rc != 0) {
        snprintf(err, errlen, "NVML knows no device with the CUDA device's UUID %s: %s (%d)",
                 name, nv_err(rc), rc);
        nv.Shutdown();
        goto close_lib;
    }
    log_debug("NVML: device %s", name);
    return 0;

close_lib:
    dlclose(nv.lib);
    nv.lib = NULL;
    return -1;
}

/* Notes a figure NVML did not give, once per worker. */
static void missing(unsigned bit, const char *what, nvmlReturn_t rc)
{
    if (nv.logged & bit)
        return;
    nv.logged |= bit;
    log_info("zone=%s: NVML gives no %s (%s); it is left out of the figures", nv.zone, what,
             rc < 0 ? "the library lacks the function" : nv_err(rc));
}

/* One sample of every figure NVML gives. */
static void sample(struct worker_gpu *s)
{
    nvmlUtilization_t u;
    nvmlMemory_v2_t m = {.version = NVML_MEMORY_V2};
    unsigned int t = 0, p = 0;
    nvmlReturn_t rc;

    memset(s, 0, sizeof(*s));
    if ((rc = nv.Utilization ? nv.Utilization(nv.dev, &u) : -1) == 0) {
        s->have |= WG_UTIL;
        s->util_pct = u.gpu;
    } else {
        missing(WG_UTIL, "utilisation", rc);
    }
    if ((rc = nv.Memory ? nv.Memory(nv.dev, &m) : -1) == 0) {
        s->have |= WG_MEM;
        s->mem_used = m.used;
        s->mem_total = m.total;
    } else {
        missing(WG_MEM, "memory use", rc);
    }
    if ((rc = nv.Temperature ? nv.Temperature(nv.dev, NVML_TEMPERATURE_GPU, &t) : -1) == 0) {
        s->have |= WG_TEMP;
        s->temp_c = t;
    } else {
        missing(WG_TEMP, "temperature", rc);
    }
    if ((rc = nv.Power ? nv.Power(nv.dev, &p) : -1) == 0) {
        s->have |= WG_POWER;
        s->power_mw = p;
    } else {
        missing(WG_POWER, "power draw", rc);
    }
    s->at_ms = now_ms();
}

/* The writer's half of the sequence lock (this thread is the only writer). */
static void publish(struct worker_gpu *p, const struct worker_gpu *s)
{
    uint64_t seq = __atomic_load_n(&p->seq, __ATOMIC_RELAXED);

    __atomic_store_n(&p->seq, seq + 1, __ATOMIC_RELAXED);
    /* Pairs with the reader's acquire fence before its second read of seq: a reader that
     * sees any field below also sees seq odd. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&p->at_ms, s->at_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&p->have, s->have, __ATOMIC_RELAXED);
    __atomic_store_n(&p->util_pct, s->util_pct, __ATOMIC_RELAXED);
    __atomic_store_n(&p->mem_used, s->mem_used, __ATOMIC_RELAXED);
    __atomic_store_n(&p->mem_total, s->mem_total, __ATOMIC_RELAXED);
    __atomic_store_n(&p->temp_c, s->temp_c, __ATOMIC_RELAXED);
    __atomic_store_n(&p->power_mw, s->power_mw, __ATOMIC_RELAXED);
    /* Pairs with the reader's acquire load of seq: the fields are written before it. */
    __atomic_store_n(&p->seq, seq + 2, __ATOMIC_RELEASE);
}

/* The zone's GPU busy time on a real GPU: NVML's SM utilisation of this worker process (the
 * zone's one context) since the last call, times the time since then. A worker in a PID
 * namespace other than the driver's finds no samples of its own (busy time stays unknown). */
static void add_busy_time(void)
{
    unsigned int n = NVML_PROC_SAMPLES, pid = (unsigned int)getpid(), sum = 0, mine = 0;
    unsigned long long newest = nv.proc_seen;
    uint64_t now = now_ms();
    nvmlReturn_t rc;

    if (nv.ProcessUtil == NULL) {
        missing(LOGGED_BUSY, "per-process utilisation", -1);
        return;
    }
    rc = nv.ProcessUtil(nv.dev, nv.proc, &n, nv.proc_seen);
    if (rc == NVML_ERROR_NOT_FOUND) {
        n = 0; /* no sample since proc_seen: nothing ran */
    } else if (rc != 0) {
        missing(LOGGED_BUSY, "per-process utilisation", rc);
        return;
    }
    for (unsigned int i = 0; i < n && i < NVML_PROC_SAMPLES; i++) {
        if (nv.proc[i].timeStamp > newest)
            newest = nv.proc[i].timeStamp;
        if (nv.proc[i].pid != pid)
            continue;
        sum += nv.proc[i].smUtil > 100 ? 100 : nv.proc[i].smUtil;
        mine++;
    }
    if (nv.proc_at_ms && mine)
        wm_add(&nv.st->m.busy_ns, (uint64_t)sum * (now - nv.proc_at_ms) * 1000000ull /
                                      (100ull * mine));
    nv.proc_seen = newest;
    nv.proc_at_ms = now;
    __atomic_store_n(&nv.st->busy_known, 1, __ATOMIC_RELAXED);
}

static void sample_and_publish(void)
{
    struct worker_gpu s;

    sample(&s);
    publish(nv.pub, &s);
    add_busy_time();
}

static void *sampler(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&nv.lock);
    while (!nv.stop) {
        struct timespec next;
        int rc = 0;
        clock_gettime(CLOCK_MONOTONIC, &next);
        next.tv_sec += NVML_PERIOD_MS / 1000;
        next.tv_nsec += (NVML_PERIOD_MS % 1000) * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        while (!nv.stop && rc == 0)
            rc = pthread_cond_timedwait(&nv.cond, &nv.lock, &next);
        if (nv.stop)
            break;
        if (rc != ETIMEDOUT) {
            log_error("zone=%s: NVML sampling thread: waiting failed: %s; sampling stops",
                      nv.zone, strerror(rc));
            break;
        }
        pthread_mutex_unlock(&nv.lock);
        sample_and_publish();
        pthread_mutex_lock(&nv.lock);
    }
    pthread_mutex_unlock(&nv.lock);
    return NULL;
}

int nvml_start(struct worker_stats *st, const char *zone)
{
    pthread_condattr_t ca;
    int rc;

    nv.st = st;
    nv.pub = &st->gpu;
    nv.zone = zone;
    sample_and_publish();
    if ((rc = pthread_condattr_init(&ca)) != 0 ||
        (rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) != 0 ||
        (rc = pthread_cond_init(&nv.cond, &ca)) != 0) {
        log_error("zone=%s: NVML sampling thread: condition variable: %s", zone, strerror(rc));
        return -rc;
    }
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&nv.thread, NULL, sampler, NULL);
    if (rc != 0) {
        log_error("zone=%s: cannot start the NVML sampling thread: %s; the GPU's figures stay "
                  "those of the first sample", zone, strerror(rc));
        pthread_cond_destroy(&nv.cond);
        return -rc;
    }
    nv.running = 1;
    return 0;
}

void nvml_stop(void)
{
    nvmlReturn_t rc;

    if (nv.running) {
        pthread_mutex_lock(&nv.lock);
        nv.stop = 1;
        pthread_cond_signal(&nv.cond);
        pthread_mutex_unlock(&nv.lock);
        pthread_join(nv.thread, NULL);
        pthread_cond_destroy(&nv.cond);
        nv.running = 0;
    }
    if (nv.lib == NULL)
        return;
    rc = nv.Shutdown();
    if (rc != 0)
        log_warn("zone=%s: nvmlShutdown failed: %s (%d)", nv.zone ? nv.zone : "-", nv_err(rc),
                 rc);
    /* libnvidia-ml is left loaded, as libcuda is. */
    nv.lib = NULL;
}
