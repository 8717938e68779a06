/* backend.h - the interface between gpu_proxy's zone layer and a GPU: a const table of function
 * pointers (backend_stub.c: a simulated GPU in host memory; backend_cuda.c: NVIDIA's driver).
 * Backends see backend addresses and backend objects only; zones, handles and the translation of
 * zone-virtual addresses live in zone.c and dispatch*.c. Every status is a CUresult;
 * cu_from_errno() maps the proxy's internal -errno values to one. */
#ifndef GPU_PROXY_BACKEND_H
#define GPU_PROXY_BACKEND_H

#include <cuda.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "idm.h"

struct backend_zone;    /* one client's state on the GPU (cuda: a view of the worker's context) */
struct backend_stream;  /* NULL everywhere means the zone's default stream */
struct backend_event;
struct backend_library;
struct backend_kernel;
struct backend_array;   /* a CUDA array (cuda: a CUarray; stub: host memory) */
struct backend_vmem;    /* a physical allocation (cuMemCreate) */
struct backend_heap;    /* the device-side malloc/free heap of a context (stub) */

struct backend_device_props {
    char name[IDM_NAME_MAX];
    uint8_t uuid[16];
    uint64_t total_mem;
    int32_t attrs[IDM_ATTR_COUNT]; /* indexed by CUdevice_attribute */
};

/* How a backend sees the launching zone's memory: translate() maps [addr, addr+len) of zone
 * address space to a backend address when it lies inside one allocation of the zone, and reports
 * that allocation's zone base and size; -EFAULT otherwise. */
struct backend_memview {
    void *ctx;
    int (*translate)(void *ctx, uint64_t addr, uint64_t len, uint64_t *baddr,
                     uint64_t *alloc_base, uint64_t *alloc_size);
};

/* Lets a backend allocate zone memory while loading a library (module globals): the zone layer
 * charges the zone's quota and records the allocation as owned by the library. charge() only
 * charges the quota, for memory the driver allocates itself at load (the real GPU's module
 * globals); the library gives it back when it is unloaded. */
struct backend_allocator {
    void *ctx;
    CUresult (*alloc)(void *ctx, uint64_t size, uint64_t *zone_addr, uint64_t *baddr);
    CUresult (*charge)(void *ctx, uint64_t bytes);
};

struct backend_launch {
    uint32_t grid[3];
    uint32_t block[3];
    uint32_t cluster[3];
    uint32_t shared_bytes;
    const void *params; /* packed parameter buffer, as the tenant wrote it */
    uint32_t params_size;
    const struct idm_param *layout; /* the kernel's parameter layout */
    uint32_t param_count;
    const struct backend_memview *mem; /* resolves zone addresses (stub) */
    /* Device printf output the launch may produce (the context's CU_LIMIT_PRINTF_FIFO_SIZE). */
    uint64_t printf_fifo_size;
    /* Nonzero (relaxed atomic load) asks a running launch to stop: the simulated GPU ends it
     * within milliseconds with CUDA_ERROR_LAUNCH_FAILED; a real GPU's kernels cannot be
     * stopped this way (the cuda backend ignores it: its worker is retired instead). NULL: not
     * cancellable. */
    const int *cancel;
    /* 1: a cooperative launch (every block co-resident, grid-wide sync allowed); a grid larger
     * than the device holds at once fails with CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE. */
    int cooperative;
    /* The context's device-side malloc/free heap (backend_ops.heap_create); NULL: none, device
     * malloc returns NULL (the cuda backend: the driver keeps the heap). */
    struct backend_heap *heap;
};

/* A CUDA array's shape (ARRAY_CREATE, checked): height 0 for 1D, depth 0 for 1D and 2D. */
struct backend_array_desc {
    uint64_t width, height, depth;
    uint32_t format;   /* CUarray_format */
    uint32_t channels; /* 1, 2 or 4 */
    uint32_t flags;    /* CUDA_ARRAY3D_LAYERED, CUDA_ARRAY3D_SURFACE_LDST */
    uint32_t elem;     /* bytes a texel (format size x channels) */
};

/* One side of a 3D copy, checked by the zone layer: device memory (baddr, pitch bytes a row,
 * pitch_h rows a slice), an array or host memory (packed: pitch width_bytes, pitch_h height). */
struct backend_copy_side {
    uint32_t kind; /* enum idm_copy_side */
    uint64_t baddr;
    struct backend_array *array;
    void *host;
    uint64_t x, y, z; /* x in bytes */
    uint64_t pitch, pitch_h;
};
struct backend_copy3d {
    struct backend_copy_side dst, src;
    uint64_t width_bytes, height, depth;
};

/* A texture or surface object (TEX_CREATE, checked). The resource is an array, or linear
 * memory at zone address dptr (the stub resolves it through the launch's memview at each
 * fetch; the cuda backend's zone addresses are its own). */
struct backend_tex_desc {
    uint32_t res_type; /* CU_RESOURCE_TYPE_ARRAY, _LINEAR, _PITCH2D */
    struct backend_array *array;
    uint64_t dptr, size_bytes, width, height, pitch;
    uint32_t format, channels, elem;
    uint32_t address_mode[3], filter_mode, flags;
    float border_color[4];
    int surface;
};

struct backend_ops {
    const char *name; /* "stub", "cuda" */
    /* 1: after a sticky execution fault the backend instance is unusable (a real GPU's context
     * is lost, and a worker has one), so the zone's worker retires; 0: the fault stays the
     * faulting session's sticky error (the simulated GPU gives each session its own context). */
    int fault_loses_context;
    /* 1: the backend's device addresses are handed to the zone unchanged (cuda: the worker's own
     * context, a GPU address space no other zone shares); 0: the zone layer gives each
     * allocation a zone address and launches resolve them through backend_launch.mem (stub). */
    int real_addresses;
    /* 1: backend_launch.cancel stops a running kernel (stub); 0: a kernel runs until it ends
     * (a real GPU): a worker whose client left with kernels still running ends, and its
     * context with them (worker.c). */
    int kernels_cancellable;
    /* 1: a launch call runs the kernel to its end (the simulated GPU), so its time is the
     * zone's GPU busy time; 0: it only enqueues (a real GPU: busy time comes from NVML's
     * per-process utilisation, nvml.c). */
    int launch_runs_kernel;
    /* 1: the device is an NVIDIA GPU that NVML knows by its UUID (device_props' uuid): its
     * worker publishes the GPU's own figures (nvml.c); 0: none (the simulated GPU). */
    int nvml_device;
    /* Process-wide set-up; err gets a one-line reason on failure. */
    CUresult (*init)(char *err, size_t errlen);
    void (*shutdown)(void);
    int (*device_count)(void);
    CUresult (*device_props)(int device, struct backend_device_props *out);
    int (*driver_version)(void);
    /* Free and total device memory of the whole GPU. */
    CUresult (*mem_info)(uint64_t *free_bytes, uint64_t *total_bytes);

    CUresult (*zone_open)(const char *zone_name, struct backend_zone **out);
    /* 1 when this was the backend's last open zone view and it dropped the state its clients
     * shared (cuda: the worker's context is renewed, and the driver's device heap, local
     * memory and printf FIFO go with it), else 0. */
    int (*zone_close)(struct backend_zone *z);
    /* Waits until all work of the zone is done; returns the first execution error seen. */
    CUresult (*zone_sync)(struct backend_zone *z);

    CUresult (*mem_alloc)(struct backend_zone *z, uint64_t size, uint64_t *baddr);
    /* Scrubs (zeroes) the memory, then frees it. */
    CUresult (*mem_free)(struct backend_zone *z, uint64_t baddr, uint64_t size);
    /* Copies return once host memory is no longer needed (HtoD) or holds the data (DtoH). */
    CUresult (*memcpy_htod)(struct backend_zone *z, struct backend_stream *s, uint64_t dst,
                            const void *src, uint64_t len);
    CUresult (*memcpy_dtoh)(struct backend_zone *z, struct backend_stream *s, void *dst,
                            uint64_t src, uint64_t len);
    CUresult (*memcpy_dtod)(struct backend_zone *z, struct backend_stream *s, uint64_t dst,
                            uint64_t src, uint64_t len);
    /* elem_size 1, 2 or 4; width elements per row, height rows, pitch bytes between rows. */
    CUresult (*memset)(struct backend_zone *z, struct backend_stream *s, uint64_t dst,
                       uint32_t value, uint32_t elem_size, uint64_t width, uint64_t pitch,
                       uint64_t height);

    CUresult (*stream_create)(struct backend_zone *z, uint32_t flags, int32_t priority,
                              struct backend_stream **out);
    CUresult (*stream_destroy)(struct backend_zone *z, struct backend_stream *s);
    CUresult (*stream_sync)(struct backend_zone *z, struct backend_stream *s);
    CUresult (*stream_query)(struct backend_zone *z, struct backend_stream *s);
    CUresult (*stream_wait_event)(struct backend_zone *z, struct backend_stream *s,
                                  struct backend_event *e);

    CUresult (*event_create)(struct backend_zone *z, uint32_t flags, struct backend_event **out);
    CUresult (*event_destroy)(struct backend_zone *z, struct backend_event *e);
    CUresult (*event_record)(struct backend_zone *z, struct backend_event *e,
                             struct backend_stream *s);
    CUresult (*event_sync)(struct backend_zone *z, struct backend_event *e);
    CUresult (*event_query)(struct backend_zone *z, struct backend_event *e);
    CUresult (*event_elapsed)(struct backend_zone *z, struct backend_event *start,
                              struct backend_event *end, float *ms);

    /* Loads a code image (the backend keeps its own copy). */
    CUresult (*library_load)(struct backend_zone *z, const void *image, size_t size,
                             const struct backend_allocator *alloc, struct backend_library **out,
                             char *err, size_t errlen);
    void (*library_unload)(struct backend_zone *z, struct backend_library *l);
    CUresult (*library_kernel_count)(struct backend_zone *z, struct backend_library *l,
                                     uint32_t *count);
    /* The name of kernel index (0 .. count - 1) into name[cap], NUL-terminated;
     * CUDA_ERROR_INVALID_VALUE past the last, CUDA_ERROR_NOT_SUPPORTED if it does not fit. */
    CUresult (*library_kernel_name)(struct backend_zone *z, struct backend_library *l,
                                    uint32_t index, char *name, size_t cap);
    /* params receives up to IDM_PARAMS_MAX entries. */
    CUresult (*library_get_kernel)(struct backend_zone *z, struct backend_library *l,
                                   const char *name, struct backend_kernel **out,
                                   struct idm_param *params, uint32_t *param_count,
                                   uint32_t *param_bytes);
    /* A global by name: either already a zone address (*zone_addr != 0, allocated through the
     * allocator at load) or a backend address the zone layer must map (*zone_addr == 0). */
    CUresult (*library_get_global)(struct backend_zone *z, struct backend_library *l,
                                   const char *name, uint64_t *zone_addr, uint64_t *baddr,
                                   uint64_t *size);

    CUresult (*func_get_attribute)(struct backend_zone *z, struct backend_kernel *k, int32_t attr,
                                   int32_t *value);
    CUresult (*func_set_attribute)(struct backend_zone *z, struct backend_kernel *k, int32_t attr,
                                   int32_t value);
    /* which: 0 max active blocks per SM, 1 available dynamic shared memory per block,
     * 2 max active clusters. */
    CUresult (*occupancy)(struct backend_zone *z, struct backend_kernel *k, uint32_t which,
                          uint32_t block_size, uint64_t dynamic_smem, uint32_t num_blocks,
                          const uint32_t cluster_dim[3], const uint32_t grid_dim[3], uint32_t flags,
                          uint64_t *value);
    /* Virtual memory management (sizes, offsets and addresses multiples of
     * IDM_VMM_GRANULARITY, checked by the zone layer). va_reserve takes a range of backend
     * addresses (aligned to align) with no memory behind it; vmem_create a physical allocation
     * (zeroed), which vmem_release scrubs and frees once it is mapped nowhere; vmem_map makes
     * [baddr, baddr+size) of a reserve resolve to the physical allocation from offset on,
     * without access, which vmem_set_access grants (rw 1) or takes back (rw 0); vmem_unmap
     * undoes a whole mapping. */
    CUresult (*va_reserve)(struct backend_zone *z, uint64_t size, uint64_t align,
                           uint64_t *baddr);
    CUresult (*va_free)(struct backend_zone *z, uint64_t baddr, uint64_t size);
    CUresult (*vmem_create)(struct backend_zone *z, uint64_t size, struct backend_vmem **out);
    CUresult (*vmem_release)(struct backend_zone *z, struct backend_vmem *m);
    CUresult (*vmem_map)(struct backend_zone *z, uint64_t baddr, uint64_t size,
                         struct backend_vmem *m, uint64_t offset);
    CUresult (*vmem_unmap)(struct backend_zone *z, uint64_t baddr, uint64_t size);
    CUresult (*vmem_set_access)(struct backend_zone *z, uint64_t baddr, uint64_t size, int rw);

    /* Device-side malloc/free (NULL: the driver provides the heap itself, as cuda's does).
     * kernel_uses_heap: 1 when k's module calls malloc or free. heap_create: a heap over
     * [zone_addr, zone_addr + size) of zone memory the caller allocated and charged (the
     * addresses kernels see); heap_destroy frees its bookkeeping (not the memory). */
    int (*kernel_uses_heap)(struct backend_kernel *k);
    CUresult (*heap_create)(struct backend_zone *z, uint64_t zone_addr, uint64_t size,
                            struct backend_heap **out);
    void (*heap_destroy)(struct backend_zone *z, struct backend_heap *h);
    /* A limit of the zone's context set in the driver (cuCtxSetLimit); NULL: limits are the
     * zone layer's alone (stub). The cuda backend forwards CU_LIMIT_MALLOC_HEAP_SIZE, the heap
     * its driver keeps for the worker's one context, which the zone layer charges. */
    CUresult (*set_limit)(struct backend_zone *z, int32_t limit, uint64_t value);
    /* Runs (stub) or enqueues (cuda) a launch. err names the kernel/instruction on failure. */
    CUresult (*launch)(struct backend_zone *z, struct backend_kernel *k, struct backend_stream *s,
                       const struct backend_launch *l, char *err, size_t errlen);

    /* Arrays, copies to and from them, texture and surface objects. The zone layer has checked
     * every argument, waits for the zone's work before a copy or a destroy, and destroys a
     * session's objects before the arrays they use; err gets a one-line reason on failure.
     * tex_create's *value is what kernels are given. */
    CUresult (*array_create)(struct backend_zone *z, const struct backend_array_desc *d,
                             struct backend_array **out, char *err, size_t errlen);
    void (*array_destroy)(struct backend_zone *z, struct backend_array *a);
    CUresult (*memcpy3d)(struct backend_zone *z, const struct backend_copy3d *c, char *err,
                         size_t errlen);
    CUresult (*tex_create)(struct backend_zone *z, const struct backend_tex_desc *d,
                           uint64_t *value, char *err, size_t errlen);
    void (*tex_destroy)(struct backend_zone *z, uint64_t value, int surface);
};

/* The one mapping from the proxy's internal errors (0 or -errno, as zone.c and stream.c return
 * them) to the CUresult a tenant sees. */
static inline CUresult cu_from_errno(int err)
{
    switch (err) {
    case 0:
        return CUDA_SUCCESS;
    case -ENOMEM:  /* out of host memory, or a table is full */
    case -ENOSPC:  /* the zone's address space is used up */
    case -EAGAIN:  /* no thread could be started */
        return CUDA_ERROR_OUT_OF_MEMORY;
    case -EINVAL:
    case -ERANGE:
    case -EFAULT:  /* a range outside the zone's allocations */
        return CUDA_ERROR_INVALID_VALUE;
    case -ENOENT:  /* not a live handle */
        return CUDA_ERROR_INVALID_HANDLE;
    case -ENOSYS:
    case -EOPNOTSUPP:
        return CUDA_ERROR_NOT_SUPPORTED;
    case -EPERM:
    case -EACCES:
        return CUDA_ERROR_NOT_PERMITTED;
    case -ENODEV:
        return CUDA_ERROR_NO_DEVICE;
    case -ETIMEDOUT:
        return CUDA_ERROR_TIMEOUT;
    default:
        return CUDA_ERROR_UNKNOWN;
    }
}

extern const struct backend_ops backend_stub;
extern const struct backend_ops backend_cuda;

/* Returns the backend by name ("stub", "cuda"), or NULL. */
const struct backend_ops *backend_by_name(const char *name);

#endif /* GPU_PROXY_BACKEND_H */
