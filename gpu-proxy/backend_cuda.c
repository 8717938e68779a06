/* backend_cuda.c - the real GPU: NVIDIA's libcuda.so.1 loaded with dlopen at start-up (never
 * linked) and every entry point resolved through cuGetProcAddress. A worker serves one zone and
 * holds exactly one CUcontext (the device's primary context), which all of the zone's clients
 * share; it is renewed when the last of them leaves. Device addresses are the context's own, handed to the zone unchanged: another zone's
 * memory lives in another worker process, in another GPU address space, which the driver
 * enforces; kernel parameters go to the driver as the tenant wrote them. Memory is zeroed before
 * it is handed out and scrubbed when it is freed, on a stream of the worker's own. Every CUDA
 * call is checked. */
#include <cuda.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"
#include "ptx/ptx.h"

/* The driver entry points we use: field, name asked of cuGetProcAddress, prototype. Each is asked
 * at CU_VERSION (13.0), which selects the variant whose prototype cuda.h declares under that
 * name, except cuCtxSynchronize: at 13.0 the driver hands out cuCtxSynchronize_v2(CUcontext), so
 * we ask for the 12.x form, cuCtxSynchronize(void), whose prototype we call (CU_FUNC_VERSION). */
#define CU_VERSION 13000
#define CU_FUNC_VERSION(name) (strcmp((name), "cuCtxSynchronize") == 0 ? 12080 : CU_VERSION)
#define CU_FUNCS(X)                                                                             \
    X(Init, "cuInit", cuInit)                                                                   \
    X(DriverGetVersion, "cuDriverGetVersion", cuDriverGetVersion)                               \
    X(DeviceGet, "cuDeviceGet", cuDeviceGet)                                                    \
    X(DeviceGetCount, "cuDeviceGetCount", cuDeviceGetCount)                                     \
    X(DeviceGetName, "cuDeviceGetName", cuDeviceGetName)                                        \
    X(DeviceTotalMem, "cuDeviceTotalMem", cuDeviceTotalMem)                                     \
    X(DeviceGetUuid, "cuDeviceGetUuid", cuDeviceGetUuid)                                        \
    X(DeviceGetAttribute, "cuDeviceGetAttribute", cuDeviceGetAttribute)                         \
    X(DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain)             \
    X(DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease)          \
    X(CtxSetCurrent, "cuCtxSetCurrent", cuCtxSetCurrent)                                        \
    X(CtxSynchronize, "cuCtxSynchronize", cuCtxSynchronize)                                     \
    X(CtxSetLimit, "cuCtxSetLimit", cuCtxSetLimit)                                              \
    X(MemGetInfo, "cuMemGetInfo", cuMemGetInfo)                                                 \
    X(MemAlloc, "cuMemAlloc", cuMemAlloc)                                                       \
    X(MemFree, "cuMemFree", cuMemFree)                                                          \
    X(MemsetD8Async, "cuMemsetD8Async", cuMemsetD8Async)                                        \
    X(MemcpyHtoDAsync, "cuMemcpyHtoDAsync", cuMemcpyHtoDAsync)                                  \
    X(MemcpyDtoHAsync, "cuMemcpyDtoHAsync", cuMemcpyDtoHAsync)                                  \
    X(MemcpyDtoDAsync, "cuMemcpyDtoDAsync", cuMemcpyDtoDAsync)                                  \
    X(MemsetD2D8Async, "cuMemsetD2D8Async", cuMemsetD2D8Async)                                  \
    X(MemsetD2D16Async, "cuMemsetD2D16Async", cuMemsetD2D16Async)                               \
    X(MemsetD2D32Async, "cuMemsetD2D32Async", cuMemsetD2D32Async)                               \
    X(StreamCreateWithPriority, "cuStreamCreateWithPriority", cuStreamCreateWithPriority)       \
    X(StreamDestroy, "cuStreamDestroy", cuStreamDestroy)                                        \
    X(StreamSynchronize, "cuStreamSynchronize", cuStreamSynchronize)                            \
    X(StreamQuery, "cuStreamQuery", cuStreamQuery)                                              \
    X(StreamWaitEvent, "cuStreamWaitEvent", cuStreamWaitEvent)                                  \
    X(EventCreate, "cuEventCreate", cuEventCreate)                                              \
    X(EventDestroy, "cuEventDestroy", cuEventDestroy)                                           \
    X(EventRecord, "cuEventRecord", cuEventRecord)                                              \
    X(EventSynchronize, "cuEventSynchronize", cuEventSynchronize)                               \
    X(EventQuery, "cuEventQuery", cuEventQuery)                                                 \
    X(EventElapsedTime, "cuEventElapsedTime", cuEventElapsedTime)                               \
    X(LibraryLoadData, "cuLibraryLoadData", cuLibraryLoadData)                                  \
    X(LibraryUnload, "cuLibraryUnload", cuLibraryUnload)                                        \
    X(LibraryGetKernel, "cuLibraryGetKernel", cuLibraryGetKernel)                               \
    X(LibraryGetKernelCount, "cuLibraryGetKernelCount", cuLibraryGetKernelCount)                \
    X(LibraryEnumerateKernels, "cuLibraryEnumerateKernels", cuLibraryEnumerateKernels)          \
    X(KernelGetName, "cuKernelGetName", cuKernelGetName)                                        \
    X(LibraryGetGlobal, "cuLibraryGetGlobal", cuLibraryGetGlobal)                               \
    X(KernelGetParamInfo, "cuKernelGetParamInfo", cuKernelGetParamInfo)                         \
    X(KernelGetAttribute, "cuKernelGetAttribute", cuKernelGetAttribute)                         \
    X(KernelSetAttribute, "cuKernelSetAttribute", cuKernelSetAttribute)                         \
    X(KernelGetFunction, "cuKernelGetFunction", cuKernelGetFunction)                            \
    X(OccupancyMaxActiveBlocks, "cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags",         \
      cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags)                                     \
    X(OccupancyAvailableDynamicSMem, "cuOccupancyAvailableDynamicSMemPerBlock",                 \
      cuOccupancyAvailableDynamicSMemPerBlock)                                                  \
    X(OccupancyMaxActiveClusters, "cuOccupancyMaxActiveClusters", cuOccupancyMaxActiveClusters) \
    X(LaunchKernel, "cuLaunchKernel", cuLaunchKernel)                                           \
    X(LaunchKernelEx, "cuLaunchKernelEx", cuLaunchKernelEx)                                     \
    X(LaunchCooperativeKernel, "cuLaunchCooperativeKernel", cuLaunchCooperativeKernel)          \
    X(GetErrorString, "cuGetErrorString", cuGetErrorString)                                     \
    X(Array3DCreate, "cuArray3DCreate", cuArray3DCreate)                                        \
    X(ArrayDestroy, "cuArrayDestroy", cuArrayDestroy)                                           \
    X(Memcpy3D, "cuMemcpy3D", cuMemcpy3D)                                                       \
    X(TexObjectCreate, "cuTexObjectCreate", cuTexObjectCreate)                                  \
    X(TexObjectDestroy, "cuTexObjectDestroy", cuTexObjectDestroy)                               \
    X(SurfObjectCreate, "cuSurfObjectCreate", cuSurfObjectCreate)                               \
    X(SurfObjectDestroy, "cuSurfObjectDestroy", cuSurfObjectDestroy)                            \
    X(MemAddressReserve, "cuMemAddressReserve", cuMemAddressReserve)                            \
    X(MemAddressFree, "cuMemAddressFree", cuMemAddressFree)                                     \
    X(MemCreate, "cuMemCreate", cuMemCreate)                                                    \
    X(MemRelease, "cuMemRelease", cuMemRelease)                                                 \
    X(MemMap, "cuMemMap", cuMemMap)                                                             \
    X(MemUnmap, "cuMemUnmap", cuMemUnmap)                                                       \
    X(MemSetAccess, "cuMemSetAccess", cuMemSetAccess)

static struct {
    void *lib;
    CUdevice dev;
    CUcontext ctx;         /* the primary context: the worker's one context */
    CUstream zero_stream;  /* non-blocking: zeroes memory before it is handed out or freed */
    pthread_mutex_t views_lock; /* views, and the context's renewal */
    unsigned views;        /* open zone views (clients) */
    int driver_version;
    struct backend_device_props props;
#define X(field, name, proto) __typeof__(proto) *field;
    CU_FUNCS(X)
#undef X
} cu = {.views_lock = PTHREAD_MUTEX_INITIALIZER};

struct backend_zone {
    char name[64];
    CUcontext ctx;
};
struct backend_stream {
    CUstream s;
};
struct backend_event {
    CUevent e;
};
struct backend_library {
    CUlibrary lib;
    struct backend_kernel *kernels;
};
struct backend_kernel {
    CUkernel k;
    struct backend_kernel *next;
};
struct backend_array {
    CUarray a;
    struct backend_array_desc d;
};

static const char *cu_errstr(CUresult rc)
{
    const char *s = NULL;

    if (cu.GetErrorString == NULL || cu.GetErrorString(rc, &s) != CUDA_SUCCESS || s == NULL)
        return "unknown CUDA error";
    return s;
}

/* Logs a failed driver call with the zone it served. */
#define CU_CHECK(zone_name, call)                                                               \
    ({                                                                                          \
        CUresult rc_ = (call);                                                                  \
        if (rc_ != CUDA_SUCCESS)                                                                \
            log_debug("zone=%s cuda backend: %s failed: %s (%d)", (zone_name), #call,          \
                      cu_errstr(rc_), (int)rc_);                                                \
        (int)rc_;                                                                               \
    })

static int use_zone(struct backend_zone *z)
{
    return CU_CHECK(z->name, cu.CtxSetCurrent(z->ctx));
}

/* Resolves every entry point of CU_FUNCS through the driver's cuGetProcAddress. */
static int resolve_entry_points(char *err, size_t errlen)
{
    CUresult (*gpa)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
    CUresult rc;

    *(void **)&gpa = dlsym(cu.lib, "cuGetProcAddress_v2");
    if (gpa == NULL) {
        snprintf(err, errlen, "libcuda.so.1 has no cuGetProcAddress_v2: driver older than CUDA 12.5?");
        return -1;
    }
#define X(field, name, proto)                                                                   \
    {                                                                                           \
        CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;               \
        void *p = NULL;                                                                         \
        rc = gpa(name, &p, CU_FUNC_VERSION(name), CU_GET_PROC_ADDRESS_DEFAULT, &st);            \
        if (rc != CUDA_SUCCESS || p == NULL) {                                                  \
            snprintf(err, errlen, "the NVIDIA driver lacks %s (CUresult %d, status %d)", name,  \
                     (int)rc, (int)st);                                                         \
            return -1;                                                                          \
        }                                                                                       \
        *(void **)&cu.field = p;                                                                \
    }
    CU_FUNCS(X)
#undef X
    return 0;
}

/* Device properties never change: read them once. */
static CUresult read_device_props(char *err, size_t errlen)
{
    size_t total = 0;
    CUuuid uuid;
    CUresult rc;

    if ((rc = cu.DeviceGetName(cu.props.name, sizeof(cu.props.name), cu.dev)) != CUDA_SUCCESS ||
        (rc = cu.DeviceTotalMem(&total, cu.dev)) != CUDA_SUCCESS ||
        (rc = cu.DeviceGetUuid(&uuid, cu.dev)) != CUDA_SUCCESS) {
        snprintf(err, errlen, "reading device 0's identity failed: %s (%d)", cu_errstr(rc), rc);
        return rc;
    }
    cu.props.total_mem = total;
    memcpy(cu.props.uuid, uuid.bytes, sizeof(cu.props.uuid));
    for (int a = 1; a < (int)IDM_ATTR_COUNT && a < CU_DEVICE_ATTRIBUTE_MAX; a++) {
        int v = 0;
        /* Attributes this driver does not know stay 0. */
        if (cu.DeviceGetAttribute(&v, (CUdevice_attribute)a, cu.dev) == CUDA_SUCCESS)
            cu.props.attrs[a] = v;
    }
    return CUDA_SUCCESS;
}

static CUresult cuda_init(char *err, size_t errlen)
{
    CUresult rc;
    int n = 0;

    cu.lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (cu.lib == NULL) {
        snprintf(err, errlen, "no NVIDIA driver/GPU: dlopen(libcuda.so.1) failed: %s", dlerror());
        return CUDA_ERROR_NO_DEVICE;
    }
    if (resolve_entry_points(err, errlen) != 0)
        goto close_lib;
    rc = cu.Init(0);
    if (rc != CUDA_SUCCESS) {
        snprintf(err, errlen, "no NVIDIA driver/GPU: cuInit failed: %s (%d)", cu_errstr(rc), rc);
        goto close_lib;
    }
    if ((rc = cu.DeviceGetCount(&n)) != CUDA_SUCCESS || n < 1) {
        snprintf(err, errlen, "no NVIDIA GPU: cuDeviceGetCount gives %d (%s)", n, cu_errstr(rc));
        goto close_lib;
    }
    if ((rc = cu.DeviceGet(&cu.dev, 0)) != CUDA_SUCCESS ||
        (rc = cu.DriverGetVersion(&cu.driver_version)) != CUDA_SUCCESS ||
        (rc = cu.DevicePrimaryCtxRetain(&cu.ctx, cu.dev)) != CUDA_SUCCESS) {
        snprintf(err, errlen, "setting up device 0 failed: %s (%d)", cu_errstr(rc), rc);
        goto close_lib;
    }
    if ((rc = cu.CtxSetCurrent(cu.ctx)) != CUDA_SUCCESS ||
        (rc = cu.StreamCreateWithPriority(&cu.zero_stream, CU_STREAM_NON_BLOCKING, 0)) !=
            CUDA_SUCCESS) {
        snprintf(err, errlen, "setting up the worker's context failed: %s (%d)", cu_errstr(rc),
                 rc);
        goto release_ctx;
    }
    if (read_device_props(err, errlen) != CUDA_SUCCESS)
        goto release_ctx;
    {
        Dl_info info;
        /* Name the library we got: a libvgpu libcuda.so.1 found first would be a loop. */
        if (dladdr(*(void **)&cu.Init, &info) != 0 && info.dli_fname)
            log_info("cuda backend: %s, driver %d, device 0 \"%s\"", info.dli_fname,
                     cu.driver_version, cu.props.name);
    }
    return CUDA_SUCCESS;

release_ctx:
    cu.DevicePrimaryCtxRelease(cu.dev);
close_lib:
    dlclose(cu.lib);
    cu.lib = NULL;
    return CUDA_ERROR_NO_DEVICE;
}

static void cuda_shutdown(void)
{
    if (cu.lib == NULL)
        return;
    if (CU_CHECK("-", cu.CtxSetCurrent(cu.ctx)) == CUDA_SUCCESS)
        CU_CHECK("-", cu.StreamDestroy(cu.zero_stream));
    CU_CHECK("-", cu.DevicePrimaryCtxRelease(cu.dev));
    /* libcuda is left loaded: unloading the driver library at exit is known to be unsafe. */
}

static int cuda_device_count(void)
{
    return 1;
}

static int cuda_driver_version(void)
{
    return cu.driver_version;
}

static CUresult cuda_device_props(int device, struct backend_device_props *out)
{
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    *out = cu.props;
    return CUDA_SUCCESS;
}

static CUresult cuda_mem_info(uint64_t *free_bytes, uint64_t *total_bytes)
{
    size_t f = 0, t = 0;
    int rc;

    if ((rc = CU_CHECK("-", cu.CtxSetCurrent(cu.ctx))) != CUDA_SUCCESS)
        return rc;
    if ((rc = CU_CHECK("-", cu.MemGetInfo(&f, &t))) != CUDA_SUCCESS)
        return rc;
    *free_bytes = f;
    *total_bytes = t;
    return CUDA_SUCCESS;
}

/* A client's view of the worker's context: every client of the zone shares it. */
static CUresult cuda_zone_open(const char *zone_name, struct backend_zone **out)
{
    struct backend_zone *z = calloc(1, sizeof(*z));

    if (z == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    snprintf(z->name, sizeof(z->name), "%s", zone_name);
    pthread_mutex_lock(&cu.views_lock);
    if (cu.ctx == NULL) {
        pthread_mutex_unlock(&cu.views_lock);
        free(z);
        log_error("zone=%s cuda backend: the worker has no context (its renewal failed)",
                  zone_name);
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    z->ctx = cu.ctx;
    cu.views++;
    pthread_mutex_unlock(&cu.views_lock);
    *out = z;
    return CUDA_SUCCESS;
}

/* The zone has no client left: the primary context is released (the driver destroys it with
 * its heap, local memory and printf FIFO) and retained afresh, so that the zone's next client
 * finds a context in the state a new process would (a device heap size can be set again).
 * Under views_lock: no client can open a view meanwhile. */
static void renew_context_locked(const char *zone_name)
{
    int rc;

    if ((rc = CU_CHECK(zone_name, cu.CtxSetCurrent(cu.ctx))) == CUDA_SUCCESS)
        rc = CU_CHECK(zone_name, cu.StreamDestroy(cu.zero_stream));
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(zone_name, cu.DevicePrimaryCtxRelease(cu.dev));
    cu.ctx = NULL;
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(zone_name, cu.DevicePrimaryCtxRetain(&cu.ctx, cu.dev));
    if (rc == CUDA_SUCCESS && (rc = CU_CHECK(zone_name, cu.CtxSetCurrent(cu.ctx))) == 0)
        rc = CU_CHECK(zone_name, cu.StreamCreateWithPriority(&cu.zero_stream,
                                                             CU_STREAM_NON_BLOCKING, 0));
    if (rc != CUDA_SUCCESS) {
        cu.ctx = NULL; /* later clients are refused; the worker's context is unusable */
        log_error("zone=%s cuda backend: renewing the worker's context failed: %s (%d)",
                  zone_name, cu_errstr(rc), rc);
    }
}

static int cuda_zone_close(struct backend_zone *z)
{
    int last;

    pthread_mutex_lock(&cu.views_lock);
    last = --cu.views == 0 && cu.ctx != NULL;
    if (last)
        renew_context_locked(z->name);
    pthread_mutex_unlock(&cu.views_lock);
    free(z);
    return last;
}

static CUresult cuda_zone_sync(struct backend_zone *z)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.CtxSynchronize());
}

/* Zeroes [baddr, baddr+size) and waits for it: memory never reaches a zone, or goes back to the
 * driver, holding what it held before. */
static CUresult zero_range(struct backend_zone *z, uint64_t baddr, uint64_t size)
{
    int rc = CU_CHECK(z->name, cu.MemsetD8Async(baddr, 0, size, cu.zero_stream));

    return rc ? rc : CU_CHECK(z->name, cu.StreamSynchronize(cu.zero_stream));
}

static CUresult cuda_mem_alloc(struct backend_zone *z, uint64_t size, uint64_t *baddr)
{
    CUdeviceptr p = 0;
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.MemAlloc(&p, size));
    if (rc != CUDA_SUCCESS)
        return rc;
    if ((rc = zero_range(z, p, size)) != CUDA_SUCCESS) {
        log_error("zone=%s cuda backend: zeroing a new allocation of %llu bytes failed: %s (%d)",
                  z->name, (unsigned long long)size, cu_errstr(rc), rc);
        if (CU_CHECK(z->name, cu.MemFree(p)) != CUDA_SUCCESS)
            log_error("zone=%s cuda backend: freeing the unzeroed allocation failed too",
                      z->name);
        return rc;
    }
    *baddr = p;
    return CUDA_SUCCESS;
}

static CUresult cuda_mem_free(struct backend_zone *z, uint64_t baddr, uint64_t size)
{
    int rc = use_zone(z);

    if (rc != CUDA_SUCCESS)
        return rc;
    /* Scrubbed before the driver gets it back: the driver's own allocations for other zones
     * (local memory, printf buffers) are not zeroed for them. */
    if ((rc = zero_range(z, baddr, size)) != CUDA_SUCCESS) {
        log_error("zone=%s cuda backend: scrubbing %llu bytes failed (%s); memory not freed",
                  z->name, (unsigned long long)size, cu_errstr(rc));
        return rc;
    }
    return CU_CHECK(z->name, cu.MemFree(baddr));
}

/* ---- arrays, 3D copies, texture and surface objects ---- */

#define ARRAY_ZERO_CHUNK (8ull << 20)

/* One side of a driver 3D copy. */
static void cu_side(const struct backend_copy_side *c, CUmemorytype *type, const void **host,
                    CUdeviceptr *dev, CUarray *array, size_t *x, size_t *y, size_t *z,
                    size_t *pitch, size_t *height)
{
    *type = c->kind == IDM_SIDE_HOST ? CU_MEMORYTYPE_HOST
            : c->kind == IDM_SIDE_ARRAY ? CU_MEMORYTYPE_ARRAY : CU_MEMORYTYPE_DEVICE;
    *host = c->host;
    *dev = c->kind == IDM_SIDE_DEVICE ? c->baddr : 0;
    *array = c->kind == IDM_SIDE_ARRAY ? c->array->a : NULL;
    *x = c->x;
    *y = c->y;
    *z = c->z;
    *pitch = c->kind == IDM_SIDE_ARRAY ? 0 : c->pitch;
    *height = c->kind == IDM_SIDE_ARRAY ? 0 : c->pitch_h;
}

static CUresult copy3d(struct backend_zone *z, const struct backend_copy3d *c)
{
    CUDA_MEMCPY3D m;
    const void *unused;

    memset(&m, 0, sizeof(m));
    cu_side(&c->src, &m.srcMemoryType, &m.srcHost, &m.srcDevice, &m.srcArray, &m.srcXInBytes,
            &m.srcY, &m.srcZ, &m.srcPitch, &m.srcHeight);
    cu_side(&c->dst, &m.dstMemoryType, &unused, &m.dstDevice, &m.dstArray, &m.dstXInBytes,
            &m.dstY, &m.dstZ, &m.dstPitch, &m.dstHeight);
    m.dstHost = c->dst.host;
    m.WidthInBytes = c->width_bytes;
    m.Height = c->height;
    m.Depth = c->depth;
    return CU_CHECK(z->name, cu.Memcpy3D(&m));
}

/* Zeroes an array (the driver's memory may hold another zone's data): blocks of rows copied
 * from a zeroed scratch allocation. */
static CUresult zero_array(struct backend_zone *z, struct backend_array *a)
{
    uint64_t row = a->d.width * a->d.elem, rows = a->d.height ? a->d.height : 1;
    uint64_t slices = a->d.depth ? a->d.depth : 1, block = ARRAY_ZERO_CHUNK / row;
    struct backend_copy3d c;
    uint64_t scratch;
    CUresult rc;

    block = block < 1 ? 1 : block > rows ? rows : block;
    if ((rc = cuda_mem_alloc(z, row * block, &scratch)) != CUDA_SUCCESS)
        return rc;
    memset(&c, 0, sizeof(c));
    c.src = (struct backend_copy_side){.kind = IDM_SIDE_DEVICE, .baddr = scratch, .pitch = row,
                                       .pitch_h = block};
    c.dst = (struct backend_copy_side){.kind = IDM_SIDE_ARRAY, .array = a};
    c.width_bytes = row;
    c.depth = 1;
    for (uint64_t k = 0; k < slices && rc == CUDA_SUCCESS; k++)
        for (uint64_t j = 0; j < rows && rc == CUDA_SUCCESS; j += block) {
            c.dst.y = j;
            c.dst.z = k;
            c.height = rows - j < block ? rows - j : block;
            rc = copy3d(z, &c);
        }
    if (CU_CHECK(z->name, cu.MemFree(scratch)) != CUDA_SUCCESS)
        log_error("zone=%s cuda backend: freeing the scratch of an array's zeroing failed",
                  z->name);
    return rc;
}

static CUresult cuda_array_create(struct backend_zone *z, const struct backend_array_desc *d,
                                  struct backend_array **out, char *err, size_t errlen)
{
    CUDA_ARRAY3D_DESCRIPTOR ad = {.Width = d->width, .Height = d->height, .Depth = d->depth,
                                  .Format = (CUarray_format)d->format,
                                  .NumChannels = d->channels, .Flags = d->flags};
    struct backend_array *a = calloc(1, sizeof(*a));
    int rc = use_zone(z);

    if (a == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    a->d = *d;
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.Array3DCreate(&a->a, &ad));
    if (rc == CUDA_SUCCESS && (rc = zero_array(z, a)) != CUDA_SUCCESS &&
        CU_CHECK(z->name, cu.ArrayDestroy(a->a)) != CUDA_SUCCESS)
        log_error("zone=%s cuda backend: destroying an array that could not be zeroed failed",
                  z->name);
    if (rc != CUDA_SUCCESS) {
        snprintf(err, errlen, "cuArray3DCreate or its zeroing failed: %s", cu_errstr(rc));
        free(a);
        return rc;
    }
    *out = a;
    return CUDA_SUCCESS;
}

static void cuda_array_destroy(struct backend_zone *z, struct backend_array *a)
{
    if (use_zone(z) != CUDA_SUCCESS || zero_array(z, a) != CUDA_SUCCESS) {
        log_error("zone=%s cuda backend: scrubbing an array failed; it is not freed", z->name);
        free(a);
        return;
    }
    if (CU_CHECK(z->name, cu.ArrayDestroy(a->a)) != CUDA_SUCCESS)
        log_error("zone=%s cuda backend: cuArrayDestroy failed", z->name);
    free(a);
}

static CUresult cuda_memcpy3d(struct backend_zone *z, const struct backend_copy3d *c, char *err,
                              size_t errlen)
{
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = copy3d(z, c);
    if (rc != CUDA_SUCCESS)
        snprintf(err, errlen, "cuMemcpy3D failed: %s", cu_errstr(rc));
    return rc;
}

static void cu_resource(const struct backend_tex_desc *d, CUDA_RESOURCE_DESC *r)
{
    memset(r, 0, sizeof(*r));
    r->resType = (CUresourcetype)d->res_type;
    if (d->res_type == CU_RESOURCE_TYPE_ARRAY) {
        r->res.array.hArray = d->array->a;
    } else if (d->res_type == CU_RESOURCE_TYPE_LINEAR) {
        r->res.linear.devPtr = d->dptr;
        r->res.linear.format = (CUarray_format)d->format;
        r->res.linear.numChannels = d->channels;
        r->res.linear.sizeInBytes = d->size_bytes;
    } else {
        r->res.pitch2D.devPtr = d->dptr;
        r->res.pitch2D.format = (CUarray_format)d->format;
        r->res.pitch2D.numChannels = d->channels;
        r->res.pitch2D.width = d->width;
        r->res.pitch2D.height = d->height;
        r->res.pitch2D.pitchInBytes = d->pitch;
    }
}

static CUresult cuda_tex_create(struct backend_zone *z, const struct backend_tex_desc *d,
                                uint64_t *value, char *err, size_t errlen)
{
    CUDA_RESOURCE_DESC r;
    CUDA_TEXTURE_DESC t;
    int rc = use_zone(z);

    cu_resource(d, &r);
    if (rc == CUDA_SUCCESS && d->surface) {
        CUsurfObject so = 0;
        rc = CU_CHECK(z->name, cu.SurfObjectCreate(&so, &r));
        *value = so;
    } else if (rc == CUDA_SUCCESS) {
        CUtexObject to = 0;
        memset(&t, 0, sizeof(t));
        for (int i = 0; i < 3; i++)
            t.addressMode[i] = (CUaddress_mode)d->address_mode[i];
        t.filterMode = (CUfilter_mode)d->filter_mode;
        t.flags = d->flags;
        memcpy(t.borderColor, d->border_color, sizeof(t.borderColor));
        rc = CU_CHECK(z->name, cu.TexObjectCreate(&to, &r, &t, NULL));
        *value = to;
    }
    if (rc != CUDA_SUCCESS)
        snprintf(err, errlen, "cu%sObjectCreate failed: %s", d->surface ? "Surf" : "Tex",
                 cu_errstr(rc));
    return rc;
}

static void cuda_tex_destroy(struct backend_zone *z, uint64_t value, int surface)
{
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = surface ? CU_CHECK(z->name, cu.SurfObjectDestroy(value))
                     : CU_CHECK(z->name, cu.TexObjectDestroy(value));
    if (rc != CUDA_SUCCESS)
        log_error("zone=%s cuda backend: destroying %s object 0x%llx failed: %s", z->name,
                  surface ? "surface" : "texture", (unsigned long long)value, cu_errstr(rc));
}

/* ---- virtual memory management: the driver's own calls in the worker's context, so reserved
 * addresses are the driver's; physical allocations are pinned device memory of the worker's
 * device, zeroed through a temporary mapping when created and scrubbed the same way when
 * released. ---- */
struct backend_vmem {
    CUmemGenericAllocationHandle h;
    uint64_t size;
};

static CUresult cuda_va_reserve(struct backend_zone *z, uint64_t size, uint64_t align,
                                uint64_t *baddr)
{
    CUdeviceptr p = 0;
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.MemAddressReserve(&p, size, align, 0, 0));
    if (rc == CUDA_SUCCESS)
        *baddr = p;
    return rc;
}

static CUresult cuda_va_free(struct backend_zone *z, uint64_t baddr, uint64_t size)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.MemAddressFree(baddr, size));
}

static CUresult cuda_vmem_set_access(struct backend_zone *z, uint64_t baddr, uint64_t size,
                                     int rw)
{
    CUmemAccessDesc d = {.location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = cu.dev},
                         .flags = rw ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE
                                     : CU_MEM_ACCESS_FLAGS_PROT_NONE};
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.MemSetAccess(baddr, size, &d, 1));
}

/* Zeroes a physical allocation through a mapping of its own. */
static CUresult vmem_zero(struct backend_zone *z, struct backend_vmem *m)
{
    uint64_t va;
    int rc = cuda_va_reserve(z, m->size, 0, &va), rc2;

    if (rc != CUDA_SUCCESS)
        return rc;
    rc = CU_CHECK(z->name, cu.MemMap(va, m->size, 0, m->h, 0));
    if (rc == CUDA_SUCCESS) {
        if ((rc = cuda_vmem_set_access(z, va, m->size, 1)) == CUDA_SUCCESS)
            rc = zero_range(z, va, m->size);
        if ((rc2 = CU_CHECK(z->name, cu.MemUnmap(va, m->size))) != CUDA_SUCCESS && !rc)
            rc = rc2;
    }
    if ((rc2 = cuda_va_free(z, va, m->size)) != CUDA_SUCCESS && !rc)
        rc = rc2;
    return rc;
}

static CUresult cuda_vmem_create(struct backend_zone *z, uint64_t size, struct backend_vmem **out)
{
    CUmemAllocationProp prop = {.type = CU_MEM_ALLOCATION_TYPE_PINNED,
                                .location = {.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = cu.dev}};
    struct backend_vmem *m = calloc(1, sizeof(*m));
    int rc = m ? use_zone(z) : CUDA_ERROR_OUT_OF_MEMORY;

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.MemCreate(&m->h, size, &prop, 0));
    if (rc != CUDA_SUCCESS) {
        free(m);
        return rc;
    }
    m->size = size;
    if ((rc = vmem_zero(z, m)) != CUDA_SUCCESS) {
        log_error("zone=%s cuda backend: zeroing a new physical allocation of %llu bytes failed:"
                  " %s (%d)", z->name, (unsigned long long)size, cu_errstr(rc), rc);
        if (CU_CHECK(z->name, cu.MemRelease(m->h)) != CUDA_SUCCESS)
            log_error("zone=%s cuda backend: releasing the unzeroed allocation failed too",
                      z->name);
        free(m);
        return rc;
    }
    *out = m;
    return CUDA_SUCCESS;
}

static CUresult cuda_vmem_release(struct backend_zone *z, struct backend_vmem *m)
{
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS && (rc = vmem_zero(z, m)) != CUDA_SUCCESS) {
        log_error("zone=%s cuda backend: scrubbing a physical allocation failed (%s); memory "
                  "not released", z->name, cu_errstr(rc));
        free(m);
        return rc;
    }
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.MemRelease(m->h));
    free(m);
    return rc;
}

static CUresult cuda_vmem_map(struct backend_zone *z, uint64_t baddr, uint64_t size,
                              struct backend_vmem *m, uint64_t offset)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.MemMap(baddr, size, offset, m->h, 0));
}

static CUresult cuda_vmem_unmap(struct backend_zone *z, uint64_t baddr, uint64_t size)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.MemUnmap(baddr, size));
}

static CUresult cuda_set_limit(struct backend_zone *z, int32_t limit, uint64_t value)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.CtxSetLimit((CUlimit)limit, value));
}

static CUstream cs(struct backend_stream *s)
{
    return s ? s->s : NULL;
}

static CUresult cuda_memcpy_htod(struct backend_zone *z, struct backend_stream *s, uint64_t dst,
                                 const void *src, uint64_t len)
{
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.MemcpyHtoDAsync(dst, src, len, cs(s)));
    /* The source is the guest's window: it must not be used after we reply. */
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.StreamSynchronize(cs(s)));
    return rc;
}

static CUresult cuda_memcpy_dtoh(struct backend_zone *z, struct backend_stream *s, void *dst,
                                 uint64_t src, uint64_t len)
{
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.MemcpyDtoHAsync(dst, src, len, cs(s)));
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.StreamSynchronize(cs(s)));
    return rc;
}

static CUresult cuda_memcpy_dtod(struct backend_zone *z, struct backend_stream *s, uint64_t dst,
                                 uint64_t src, uint64_t len)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.MemcpyDtoDAsync(dst, src, len, cs(s)));
}

static CUresult cuda_memset(struct backend_zone *z, struct backend_stream *s, uint64_t dst,
                            uint32_t value, uint32_t elem_size, uint64_t width, uint64_t pitch,
                            uint64_t height)
{
    int rc = use_zone(z);

    if (rc != CUDA_SUCCESS)
        return rc;
    switch (elem_size) {
    case 1:
        return CU_CHECK(z->name, cu.MemsetD2D8Async(dst, pitch, (unsigned char)value, width,
                                                    height, cs(s)));
    case 2:
        return CU_CHECK(z->name, cu.MemsetD2D16Async(dst, pitch, (unsigned short)value, width,
                                                     height, cs(s)));
    default:
        return CU_CHECK(z->name, cu.MemsetD2D32Async(dst, pitch, value, width, height, cs(s)));
    }
}

static CUresult cuda_stream_create(struct backend_zone *z, uint32_t flags, int32_t priority,
                                   struct backend_stream **out)
{
    struct backend_stream *s = calloc(1, sizeof(*s));
    int rc;

    if (s == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    rc = use_zone(z);
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.StreamCreateWithPriority(&s->s, flags, priority));
    if (rc != CUDA_SUCCESS) {
        free(s);
        return rc;
    }
    *out = s;
    return CUDA_SUCCESS;
}

static CUresult cuda_stream_destroy(struct backend_zone *z, struct backend_stream *s)
{
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.StreamDestroy(s->s));
    free(s);
    return rc;
}

static CUresult cuda_stream_sync(struct backend_zone *z, struct backend_stream *s)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.StreamSynchronize(cs(s)));
}

static CUresult cuda_stream_query(struct backend_zone *z, struct backend_stream *s)
{
    int rc = use_zone(z);

    return rc ? rc : (int)cu.StreamQuery(cs(s)); /* NOT_READY is an answer, not a failure */
}

static CUresult cuda_stream_wait_event(struct backend_zone *z, struct backend_stream *s,
                                       struct backend_event *e)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.StreamWaitEvent(cs(s), e->e, 0));
}

static CUresult cuda_event_create(struct backend_zone *z, uint32_t flags,
                                  struct backend_event **out)
{
    struct backend_event *e = calloc(1, sizeof(*e));
    int rc;

    if (e == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    rc = use_zone(z);
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.EventCreate(&e->e, flags));
    if (rc != CUDA_SUCCESS) {
        free(e);
        return rc;
    }
    *out = e;
    return CUDA_SUCCESS;
}

static CUresult cuda_event_destroy(struct backend_zone *z, struct backend_event *e)
{
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.EventDestroy(e->e));
    free(e);
    return rc;
}

static CUresult cuda_event_record(struct backend_zone *z, struct backend_event *e,
                                  struct backend_stream *s)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.EventRecord(e->e, cs(s)));
}

static CUresult cuda_event_sync(struct backend_zone *z, struct backend_event *e)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.EventSynchronize(e->e));
}

static CUresult cuda_event_query(struct backend_zone *z, struct backend_event *e)
{
    int rc = use_zone(z);

    return rc ? rc : (int)cu.EventQuery(e->e);
}

static CUresult cuda_event_elapsed(struct backend_zone *z, struct backend_event *a,
                                   struct backend_event *b, float *ms)
{
    int rc = use_zone(z);

    return rc ? rc : CU_CHECK(z->name, cu.EventElapsedTime(ms, a->e, b->e));
}

/* The device memory the driver will allocate for the image's module globals, read from the
 * image by the PTX engine's image reader (a cubin's section headers, else the PTX's variable
 * declarations): charged to the zone before the driver sees the image. An image it cannot read
 * is refused: its globals could not be charged. */
static CUresult image_global_bytes(struct backend_zone *z, const void *image, size_t size,
                                   uint64_t *bytes, char *err, size_t errlen)
{
    char why[200] = "";

    if (ptx_image_global_bytes(image, size, bytes, why, sizeof(why)) != PTX_OK) {
        snprintf(err, errlen, "the image's module globals cannot be sized (%s), so they cannot "
                 "be charged to the zone's quota", why);
        log_warn("zone=%s cuda backend: %s", z->name, err);
        return CUDA_ERROR_INVALID_IMAGE;
    }
    return CUDA_SUCCESS;
}

static CUresult cuda_library_load(struct backend_zone *z, const void *image, size_t size,
                                  const struct backend_allocator *alloc,
                                  struct backend_library **out, char *err, size_t errlen)
{
    struct backend_library *l;
    uint64_t globals = 0;
    int rc;

    if ((rc = image_global_bytes(z, image, size, &globals, err, errlen)) != CUDA_SUCCESS)
        return rc;
    if ((rc = alloc->charge(alloc->ctx, globals)) != CUDA_SUCCESS) {
        snprintf(err, errlen, "its module globals take %llu bytes, over the zone's quota",
                 (unsigned long long)globals);
        return rc;
    }
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    rc = use_zone(z);
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.LibraryLoadData(&l->lib, image, NULL, NULL, 0, NULL, NULL, 0));
    if (rc != CUDA_SUCCESS) {
        snprintf(err, errlen, "cuLibraryLoadData: %s", cu_errstr(rc));
        free(l);
        return rc;
    }
    *out = l;
    return CUDA_SUCCESS;
}

static void cuda_library_unload(struct backend_zone *z, struct backend_library *l)
{
    if (use_zone(z) == CUDA_SUCCESS) {
        int rc = CU_CHECK(z->name, cu.LibraryUnload(l->lib));
        if (rc != CUDA_SUCCESS)
            log_error("zone=%s cuda backend: cuLibraryUnload failed: %s", z->name, cu_errstr(rc));
    }
    while (l->kernels) {
        struct backend_kernel *k = l->kernels;
        l->kernels = k->next;
        free(k);
    }
    free(l);
}

static CUresult cuda_library_kernel_count(struct backend_zone *z, struct backend_library *l,
                                          uint32_t *count)
{
    unsigned n = 0;
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.LibraryGetKernelCount(&n, l->lib));
    if (rc == CUDA_SUCCESS)
        *count = n;
    return rc;
}

/* The driver lists a library's kernels as handles; the name of the one at index. */
static CUresult cuda_library_kernel_name(struct backend_zone *z, struct backend_library *l,
                                         uint32_t index, char *name, size_t cap)
{
    unsigned n = 0;
    CUkernel *ks;
    const char *kn = NULL;
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.LibraryGetKernelCount(&n, l->lib));
    if (rc != CUDA_SUCCESS)
        return rc;
    if (index >= n)
        return CUDA_ERROR_INVALID_VALUE;
    if ((ks = calloc(n, sizeof(*ks))) == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    rc = CU_CHECK(z->name, cu.LibraryEnumerateKernels(ks, n, l->lib));
    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.KernelGetName(&kn, ks[index]));
    free(ks);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (kn == NULL || strlen(kn) >= cap)
        return CUDA_ERROR_NOT_SUPPORTED;
    strcpy(name, kn);
    return CUDA_SUCCESS;
}

static CUresult cuda_library_get_kernel(struct backend_zone *z, struct backend_library *l,
                                        const char *name, struct backend_kernel **out,
                                        struct idm_param *params, uint32_t *param_count,
                                        uint32_t *param_bytes)
{
    struct backend_kernel *k;
    CUkernel ck;
    uint32_t n = 0, bytes = 0;
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.LibraryGetKernel(&ck, l->lib, name));
    if (rc != CUDA_SUCCESS)
        return rc;
    /* The layout: ask for parameters until the driver says there are no more. */
    for (;;) {
        size_t off = 0, sz = 0;
        if (cu.KernelGetParamInfo(ck, n, &off, &sz) != CUDA_SUCCESS)
            break;
        if (n == IDM_PARAMS_MAX)
            return CUDA_ERROR_NOT_SUPPORTED;
        params[n].offset = (uint32_t)off;
        params[n].size = (uint32_t)sz;
        if (off + sz > bytes)
            bytes = (uint32_t)(off + sz);
        n++;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    k->k = ck;
    k->next = l->kernels;
    l->kernels = k;
    *out = k;
    *param_count = n;
    *param_bytes = bytes;
    return CUDA_SUCCESS;
}

static CUresult cuda_library_get_global(struct backend_zone *z, struct backend_library *l,
                                        const char *name, uint64_t *zone_addr, uint64_t *baddr,
                                        uint64_t *size)
{
    CUdeviceptr p = 0;
    size_t sz = 0;
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.LibraryGetGlobal(&p, &sz, l->lib, name));
    if (rc != CUDA_SUCCESS)
        return rc;
    *zone_addr = 0; /* the zone layer maps it */
    *baddr = p;
    *size = sz;
    return CUDA_SUCCESS;
}

static CUresult cuda_func_get_attribute(struct backend_zone *z, struct backend_kernel *k,
                                        int32_t attr, int32_t *value)
{
    int v = 0;
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.KernelGetAttribute(&v, (CUfunction_attribute)attr, k->k, cu.dev));
    if (rc == CUDA_SUCCESS)
        *value = v;
    return rc;
}

static CUresult cuda_func_set_attribute(struct backend_zone *z, struct backend_kernel *k,
                                        int32_t attr, int32_t value)
{
    int rc = use_zone(z);

    return rc ? rc
              : CU_CHECK(z->name,
                         cu.KernelSetAttribute((CUfunction_attribute)attr, value, k->k, cu.dev));
}

static CUresult cuda_occupancy(struct backend_zone *z, struct backend_kernel *k, uint32_t which,
                               uint32_t block_size, uint64_t dynamic_smem, uint32_t num_blocks,
                               const uint32_t cluster_dim[3], const uint32_t grid_dim[3],
                               uint32_t flags, uint64_t *value)
{
    CUfunction f;
    int rc = use_zone(z);

    if (rc == CUDA_SUCCESS)
        rc = CU_CHECK(z->name, cu.KernelGetFunction(&f, k->k));
    if (rc != CUDA_SUCCESS)
        return rc;
    switch (which) {
    case 0: {
        int n = 0;
        rc = CU_CHECK(z->name, cu.OccupancyMaxActiveBlocks(&n, f, (int)block_size, dynamic_smem,
                                                           flags));
        *value = (uint64_t)n;
        return rc;
    }
    case 1: {
        size_t n = 0;
        rc = CU_CHECK(z->name, cu.OccupancyAvailableDynamicSMem(&n, f, (int)num_blocks,
                                                                (int)block_size));
        *value = n;
        return rc;
    }
    case 2: {
        CUlaunchAttribute attr;
        CUlaunchConfig lc;
        int n = 0;
        memset(&lc, 0, sizeof(lc));
        memset(&attr, 0, sizeof(attr));
        lc.gridDimX = grid_dim[0];
        lc.gridDimY = grid_dim[1];
        lc.gridDimZ = grid_dim[2];
        lc.blockDimX = block_size;
        lc.blockDimY = 1;
        lc.blockDimZ = 1;
        lc.sharedMemBytes = (unsigned)dynamic_smem;
        attr.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
        attr.value.clusterDim.x = cluster_dim[0];
        attr.value.clusterDim.y = cluster_dim[1];
        attr.value.clusterDim.z = cluster_dim[2];
        lc.attrs = &attr;
        lc.numAttrs = 1;
        rc = CU_CHECK(z->name, cu.OccupancyMaxActiveClusters(&n, f, &lc));
        *value = (uint64_t)n;
        return rc;
    }
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

/* A launch with a cluster shape: cuLaunchKernelEx, with the cooperative attribute too when the
 * launch is cooperative. */
static CUresult launch_clustered(struct backend_zone *z, struct backend_kernel *k,
                                 struct backend_stream *s, const struct backend_launch *l,
                                 void **argv)
{
    CUlaunchAttribute attr[2];
    CUlaunchConfig lc;

    memset(&lc, 0, sizeof(lc));
    memset(attr, 0, sizeof(attr));
    lc.gridDimX = l->grid[0];
    lc.gridDimY = l->grid[1];
    lc.gridDimZ = l->grid[2];
    lc.blockDimX = l->block[0];
    lc.blockDimY = l->block[1];
    lc.blockDimZ = l->block[2];
    lc.sharedMemBytes = l->shared_bytes;
    lc.hStream = cs(s);
    attr[0].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attr[0].value.clusterDim.x = l->cluster[0] ? l->cluster[0] : 1;
    attr[0].value.clusterDim.y = l->cluster[1] ? l->cluster[1] : 1;
    attr[0].value.clusterDim.z = l->cluster[2] ? l->cluster[2] : 1;
    attr[1].id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
    attr[1].value.cooperative = 1;
    lc.attrs = attr;
    lc.numAttrs = l->cooperative ? 2 : 1;
    return CU_CHECK(z->name, cu.LaunchKernelEx(&lc, (CUfunction)(void *)k->k, argv, NULL));
}

static CUresult launch_plain(struct backend_zone *z, struct backend_kernel *k,
                             struct backend_stream *s, const struct backend_launch *l,
                             void **argv)
{
    CUfunction f = (CUfunction)(void *)k->k;

    if (l->cooperative)
        return CU_CHECK(z->name, cu.LaunchCooperativeKernel(f, l->grid[0], l->grid[1],
                                                            l->grid[2], l->block[0], l->block[1],
                                                            l->block[2], l->shared_bytes, cs(s),
                                                            argv));
    return CU_CHECK(z->name, cu.LaunchKernel(f, l->grid[0], l->grid[1], l->grid[2], l->block[0],
                                             l->block[1], l->block[2], l->shared_bytes, cs(s),
                                             argv, NULL));
}

static CUresult cuda_launch(struct backend_zone *z, struct backend_kernel *k,
                            struct backend_stream *s, const struct backend_launch *l, char *err,
                            size_t errlen)
{
    void **argv;
    int rc;

    /* The parameters go to the driver exactly as the tenant packed them: its pointers are
     * addresses of this worker's own context. */
    argv = calloc(l->param_count ? l->param_count : 1, sizeof(*argv));
    if (argv == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    for (uint32_t i = 0; i < l->param_count; i++) {
        if ((uint64_t)l->layout[i].offset + l->layout[i].size > l->params_size) {
            snprintf(err, errlen, "parameter %u lies outside the %u-byte buffer", i,
                     l->params_size);
            rc = CUDA_ERROR_INVALID_VALUE;
            goto free_bufs;
        }
        argv[i] = (void *)((const uint8_t *)l->params + l->layout[i].offset);
    }
    rc = use_zone(z);
    if (rc != CUDA_SUCCESS)
        goto free_bufs;
    if (l->cluster[0] > 1 || l->cluster[1] > 1 || l->cluster[2] > 1)
        rc = launch_clustered(z, k, s, l, argv);
    else
        rc = launch_plain(z, k, s, l, argv);
    if (rc != CUDA_SUCCESS)
        snprintf(err, errlen, "%s: %s", l->cooperative ? "cooperative launch" : "cuLaunchKernel",
                 cu_errstr(rc));
    /* The driver copied the parameters at launch: the pointer array can go. */
free_bufs:
    free(argv);
    return rc;
}

const struct backend_ops backend_cuda = {
    .name = "cuda",
    .fault_loses_context = 1,
    .real_addresses = 1,
    .kernels_cancellable = 0,
    .launch_runs_kernel = 0,
    .nvml_device = 1,
    .init = cuda_init,
    .shutdown = cuda_shutdown,
    .device_count = cuda_device_count,
    .device_props = cuda_device_props,
    .driver_version = cuda_driver_version,
    .mem_info = cuda_mem_info,
    .zone_open = cuda_zone_open,
    .zone_close = cuda_zone_close,
    .zone_sync = cuda_zone_sync,
    .mem_alloc = cuda_mem_alloc,
    .mem_free = cuda_mem_free,
    .va_reserve = cuda_va_reserve,
    .va_free = cuda_va_free,
    .vmem_create = cuda_vmem_create,
    .vmem_release = cuda_vmem_release,
    .vmem_map = cuda_vmem_map,
    .vmem_unmap = cuda_vmem_unmap,
    .vmem_set_access = cuda_vmem_set_access,
    .set_limit = cuda_set_limit,
    .memcpy_htod = cuda_memcpy_htod,
    .memcpy_dtoh = cuda_memcpy_dtoh,
    .memcpy_dtod = cuda_memcpy_dtod,
    .memset = cuda_memset,
    .stream_create = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .stream_sync = cuda_stream_sync,
    .stream_query = cuda_stream_query,
    .stream_wait_event = cuda_stream_wait_event,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_sync = cuda_event_sync,
    .event_query = cuda_event_query,
    .event_elapsed = cuda_event_elapsed,
    .library_load = cuda_library_load,
    .library_unload = cuda_library_unload,
    .library_kernel_count = cuda_library_kernel_count,
    .library_kernel_name = cuda_library_kernel_name,
    .library_get_kernel = cuda_library_get_kernel,
    .library_get_global = cuda_library_get_global,
    .func_get_attribute = cuda_func_get_attribute,
    .func_set_attribute = cuda_func_set_attribute,
    .occupancy = cuda_occupancy,
    .launch = cuda_launch,
    .array_create = cuda_array_create,
    .array_destroy = cuda_array_destroy,
    .memcpy3d = cuda_memcpy3d,
    .tex_create = cuda_tex_create,
    .tex_destroy = cuda_tex_destroy,
};
