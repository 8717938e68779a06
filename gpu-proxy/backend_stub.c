/* backend_stub.c - the simulated GPU: device memory is host memory (anonymous mappings, zeroed
 * when handed out, scrubbed on free, recycled through a small cache), work runs in submission
 * order when it is submitted, events carry real CLOCK_MONOTONIC timestamps, and kernels run on
 * the PTX engine (gpu-proxy/ptx) with every global access checked against the launching zone's
 * allocations; a launch stops when its cancel flag is set (client gone, context destroyed).
 * Its workers load the engine's translator (libvgpu-ptxjit.so, beside the executable).
 * CUDA arrays are host memory with rows packed; texture and surface objects are entries of a
 * per-session table whose values kernels resolve at every fetch (ptx/ptx_tex.c). */
#include <cuda.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "ptx/ptx.h"

#define STUB_TOTAL_MEM (80ull << 30)
#define STUB_PAGE 4096ull
#define STUB_CACHE_SLOTS 32
#define STUB_CACHE_MAX_BYTES (1ull << 30)
#define STUB_SMS 132u
/* Blocks one multiprocessor holds at once, as occupancy reports it: a cooperative grid sized
 * from it (occupancy x STUB_SMS, as cudart's samples do) must fit the simulated GPU's
 * co-resident blocks (PTX_COOP_MAX_BLOCKS), or it is refused as too large. */
#define STUB_BLOCKS_PER_SM (PTX_COOP_MAX_BLOCKS / STUB_SMS)
_Static_assert(STUB_BLOCKS_PER_SM >= 1, "a multiprocessor holds at least one block");

/* A texture or surface object of a session (its slot in the session's table). */
struct stub_tex {
    struct backend_tex_desc d; /* d.array NULL once its array is gone */
    uint32_t gen;              /* 24 bits; 0: the slot is free */
};
struct backend_zone {
    char name[64];
    pthread_rwlock_t tex_lock; /* the table below: launches read it, the dispatch writes it */
    struct stub_tex *tex;
    uint32_t ntex, cap_tex;
    uint32_t tex_gen;
};
struct backend_array {
    uint64_t baddr; /* host memory, texels packed: rows of width * elem bytes */
    uint64_t size;
    struct backend_array_desc d;
};
struct backend_stream {
    uint32_t flags;
    int32_t priority;
};
struct backend_event {
    uint32_t flags;
    int recorded;
    struct timespec t;
};
struct backend_kernel {
    const struct ptx_kernel *k;
    struct backend_library *lib;
    int32_t max_dynamic_smem;
    int32_t carveout;
    int32_t cluster_attrs[6]; /* CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET .. +5 */
};
struct backend_heap {
    struct ptx_heap *h;
};
struct stub_global {
    char *name;
    uint64_t zone_addr;
    uint64_t size;
};
struct backend_library {
    void *image;
    size_t image_size;
    struct ptx_program *prog;
    unsigned nkernels;
    struct backend_kernel *kernels;
    unsigned nglobals;
    struct stub_global *globals;
};

/* Freed, already scrubbed mappings kept for reuse by any zone. */
static struct {
    pthread_mutex_t lock;
    uint64_t allocated; /* bytes of simulated device memory handed out */
    void *cache_ptr[STUB_CACHE_SLOTS];
    uint64_t cache_len[STUB_CACHE_SLOTS];
    uint64_t cache_bytes;
    unsigned cpus; /* host threads a launch may use (the CPUs at start-up); 1 if unknown */
} stub = {.lock = PTHREAD_MUTEX_INITIALIZER, .cpus = 1};

static uint64_t round_page(uint64_t n)
{
    return (n + STUB_PAGE - 1) & ~(STUB_PAGE - 1);
}

/* The translator (and LLVM with it) is mapped by the stub's workers only, loaded here, before
 * the worker enters its sandbox; without it kernels are interpreted, which the log says. */
static void stub_load_translator(void)
{
    char why[PATH_MAX + 256];
    if (ptx_translator_load_beside_exe(why, sizeof(why)) == 0)
        log_info("stub backend: translator=%s", ptx_translator_state());
    else
        log_warn("stub backend: translator=off, kernels run in the interpreter: %s", why);
}

static CUresult stub_init(char *err, size_t errlen)
{
    cpu_set_t set;

    (void)err;
    (void)errlen;
    /* counted once: the engine would otherwise ask the kernel at every launch */
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        stub.cpus = (unsigned)CPU_COUNT(&set);
    stub_load_translator();
    return CUDA_SUCCESS;
}

static void stub_shutdown(void)
{
    pthread_mutex_lock(&stub.lock);
    for (int i = 0; i < STUB_CACHE_SLOTS; i++) {
        if (stub.cache_ptr[i] && munmap(stub.cache_ptr[i], stub.cache_len[i]) != 0)
            log_error("stub backend: munmap of cached device memory failed: %s",
                      strerror(errno));
        stub.cache_ptr[i] = NULL;
    }
    stub.cache_bytes = 0;
    pthread_mutex_unlock(&stub.lock);
}

static int stub_device_count(void)
{
    return 1;
}

static int stub_driver_version(void)
{
    return 13000;
}

/* Attribute values of the simulated device (an H100 SXM5-like part, compute capability 9.0). */
/* The texture and surface limits are those dispatch_array.c enforces (cube maps and mipmapped
 * arrays are not supported: 0). */
static const struct { int attr; int value; } stub_attrs[] = {
    {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK, 1024},
    {CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X, 1024},
    {CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y, 1024},
    {CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z, 64},
    {CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X, 2147483647},
    {CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y, 65535},
    {CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z, 65535},
    {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK, 49152},
    {CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY, 65536},
    {CU_DEVICE_ATTRIBUTE_WARP_SIZE, 32},
    {CU_DEVICE_ATTRIBUTE_MAX_PITCH, 2147483647},
    {CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK, 65536},
    {CU_DEVICE_ATTRIBUTE_CLOCK_RATE, 1980000},
    {CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT, 512},
    {CU_DEVICE_ATTRIBUTE_GPU_OVERLAP, 1},
    {CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, STUB_SMS},
    {CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT, 0},
    {CU_DEVICE_ATTRIBUTE_INTEGRATED, 0},
    {CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY, 0}, /* no kernel reaches a tenant's host memory */
    {CU_DEVICE_ATTRIBUTE_COMPUTE_MODE, 0},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_WIDTH, 131072},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_WIDTH, 131072},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_HEIGHT, 65536},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH, 16384},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT, 16384},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH, 16384},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_WIDTH, 32768},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_HEIGHT, 32768},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LAYERED_LAYERS, 2048},
    {CU_DEVICE_ATTRIBUTE_SURFACE_ALIGNMENT, 512},
    {CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS, 1},
    {CU_DEVICE_ATTRIBUTE_ECC_ENABLED, 1},
    {CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, 0x1b},
    {CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, 0},
    {CU_DEVICE_ATTRIBUTE_TCC_DRIVER, 0},
    {CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE, 2619000},
    {CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH, 5120},
    {CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, 52428800},
    {CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR, 2048},
    {CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT, 3},
    {CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, 1},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_WIDTH, 32768},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LAYERED_LAYERS, 2048},
    {CU_DEVICE_ATTRIBUTE_CAN_TEX2D_GATHER, 1},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_WIDTH, 32768},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_GATHER_HEIGHT, 32768},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_WIDTH_ALTERNATE, 8192},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_HEIGHT_ALTERNATE, 8192},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE3D_DEPTH_ALTERNATE, 32768},
    {CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, 0},
    {CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT, 32},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_WIDTH, 0},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_WIDTH, 0},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURECUBEMAP_LAYERED_LAYERS, 0},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_WIDTH, 32768},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_WIDTH, 131072},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_HEIGHT, 65536},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_WIDTH, 16384},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_HEIGHT, 16384},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE3D_DEPTH, 16384},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_WIDTH, 32768},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE1D_LAYERED_LAYERS, 2048},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_WIDTH, 32768},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_HEIGHT, 32768},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACE2D_LAYERED_LAYERS, 2048},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_WIDTH, 0},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_WIDTH, 0},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_SURFACECUBEMAP_LAYERED_LAYERS, 0},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_LINEAR_WIDTH, 268435456},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_WIDTH, 131072},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_HEIGHT, 65000},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_LINEAR_PITCH, 2097120},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_WIDTH, 0},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE2D_MIPMAPPED_HEIGHT, 0},
    {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, PTX_DEVICE_SM / 10},
    {CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, PTX_DEVICE_SM % 10},
    {CU_DEVICE_ATTRIBUTE_MAXIMUM_TEXTURE1D_MIPMAPPED_WIDTH, 0},
    {CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_LOCAL_L1_CACHE_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR, 233472},
    {CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR, 65536},
    {CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, 0},
    {CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD, 0},
    {CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD_GROUP_ID, 0},
    {CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED, 0},
    {CU_DEVICE_ATTRIBUTE_SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO, 2},
    {CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS, 0},
    {CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS, 0},
    {CU_DEVICE_ATTRIBUTE_COMPUTE_PREEMPTION_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM, 0},
    {CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH, 1},
    {CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, 232448},
    {CU_DEVICE_ATTRIBUTE_CAN_FLUSH_REMOTE_WRITES, 0},
    {CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES, 0},
    {CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST, 0},
    {CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR, 32},
    {CU_DEVICE_ATTRIBUTE_GENERIC_COMPRESSION_SUPPORTED, 0},
    {CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE, 32505856},
    {CU_DEVICE_ATTRIBUTE_MAX_ACCESS_POLICY_WINDOW_SIZE, 134213632},
    {CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK, 1024},
    {CU_DEVICE_ATTRIBUTE_SPARSE_CUDA_ARRAY_SUPPORTED, 0},
    {CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED, 0},
    {CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, 0},
    {CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH, 1},
    {CU_DEVICE_ATTRIBUTE_DEFERRED_MAPPING_CUDA_ARRAY_SUPPORTED, 0},
    {CU_DEVICE_ATTRIBUTE_MEM_SYNC_DOMAIN_COUNT, 4},
    {CU_DEVICE_ATTRIBUTE_TENSOR_MAP_ACCESS_SUPPORTED, 1},
    {CU_DEVICE_ATTRIBUTE_UNIFIED_FUNCTION_POINTERS, 0},
    {CU_DEVICE_ATTRIBUTE_NUMA_CONFIG, 0},
    {CU_DEVICE_ATTRIBUTE_NUMA_ID, -1},
    {CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID, -1},
    {CU_DEVICE_ATTRIBUTE_GPU_PCI_DEVICE_ID, 0x233010DE},
    {CU_DEVICE_ATTRIBUTE_GPU_PCI_SUBSYSTEM_ID, 0x16C110DE},
};

static const uint8_t stub_uuid[16] = {0x5a, 0x6e, 0x47, 0x50, 0x55, 0x2d, 0x53, 0x49,
                                      0x4d, 0x2d, 0x48, 0x31, 0x30, 0x30, 0x00, 0x01};

static CUresult stub_device_props(int device, struct backend_device_props *out)
{
    if (device != 0)
        return CUDA_ERROR_INVALID_DEVICE;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "vGPU Simulated H100 80GB HBM3");
    memcpy(out->uuid, stub_uuid, sizeof(out->uuid));
    out->total_mem = STUB_TOTAL_MEM;
    for (size_t i = 0; i < sizeof(stub_attrs) / sizeof(stub_attrs[0]); i++)
        if (stub_attrs[i].attr >= 0 && stub_attrs[i].attr < (int)IDM_ATTR_COUNT)
            out->attrs[stub_attrs[i].attr] = stub_attrs[i].value;
    return CUDA_SUCCESS;
}

static CUresult stub_mem_info(uint64_t *free_bytes, uint64_t *total_bytes)
{
    pthread_mutex_lock(&stub.lock);
    *free_bytes = STUB_TOTAL_MEM - stub.allocated;
    pthread_mutex_unlock(&stub.lock);
    *total_bytes = STUB_TOTAL_MEM;
    return CUDA_SUCCESS;
}

static CUresult stub_zone_open(const char *zone_name, struct backend_zone **out)
{
    struct backend_zone *z = calloc(1, sizeof(*z));
    int e;

    if (z == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if ((e = pthread_rwlock_init(&z->tex_lock, NULL)) != 0) {
        log_error("zone=%s stub backend: pthread_rwlock_init failed: %s", zone_name,
                  strerror(e));
        free(z);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    snprintf(z->name, sizeof(z->name), "%s", zone_name);
    *out = z;
    return CUDA_SUCCESS;
}

static int stub_zone_close(struct backend_zone *z)
{
    pthread_rwlock_destroy(&z->tex_lock);
    free(z->tex);
    free(z);
    return 0;
}

static CUresult stub_zone_sync(struct backend_zone *z)
{
    (void)z; /* work runs when it is submitted: nothing is ever pending */
    return CUDA_SUCCESS;
}

/* Zeroes a mapping: small ranges in place; larger ones are handed back to the kernel with
 * MADV_DONTNEED, after which a private anonymous mapping reads as zeros (and holds no RSS). */
static void zero_pages(struct backend_zone *z, void *p, uint64_t len)
{
    if (len <= (64u << 10)) {
        memset(p, 0, len);
    } else if (madvise(p, len, MADV_DONTNEED) != 0) {
        log_error("zone=%s stub backend: madvise(DONTNEED) failed (%s); zeroing by hand",
                  z->name, strerror(errno));
        memset(p, 0, len);
    }
}

static CUresult stub_mem_alloc(struct backend_zone *z, uint64_t size, uint64_t *baddr)
{
    uint64_t len = round_page(size ? size : 1);
    void *p = NULL;

    (void)z;
    if (len < size)
        return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&stub.lock);
    if (len > STUB_TOTAL_MEM - stub.allocated) {
        pthread_mutex_unlock(&stub.lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    for (int i = 0; i < STUB_CACHE_SLOTS; i++) {
        if (stub.cache_ptr[i] && stub.cache_len[i] == len) {
            p = stub.cache_ptr[i];
            stub.cache_ptr[i] = NULL;
            stub.cache_bytes -= len;
            break;
        }
    }
    stub.allocated += len;
    pthread_mutex_unlock(&stub.lock);
    /* Zero on allocation, whatever the scrub at free did: memory handed to a zone is fresh
     * pages (mmap) or a cached mapping zeroed again here. */
    if (p != NULL)
        zero_pages(z, p, len);
    if (p == NULL) {
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
        if (p == MAP_FAILED) {
            log_warn("zone=%s stub backend: mmap of %llu bytes failed: %s", z->name,
                     (unsigned long long)len, strerror(errno));
            pthread_mutex_lock(&stub.lock);
            stub.allocated -= len;
            pthread_mutex_unlock(&stub.lock);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    *baddr = (uint64_t)(uintptr_t)p;
    return CUDA_SUCCESS;
}

static CUresult stub_mem_free(struct backend_zone *z, uint64_t baddr, uint64_t size)
{
    uint64_t len = round_page(size ? size : 1);
    void *p = (void *)(uintptr_t)baddr;
    int cached = 0;

    zero_pages(z, p, len); /* the scrub at free: no old data waits in the cache */
    pthread_mutex_lock(&stub.lock);
    stub.allocated -= len;
    if (stub.cache_bytes + len <= STUB_CACHE_MAX_BYTES) {
        for (int i = 0; i < STUB_CACHE_SLOTS; i++) {
            if (stub.cache_ptr[i] == NULL) {
                stub.cache_ptr[i] = p;
                stub.cache_len[i] = len;
                stub.cache_bytes += len;
                cached = 1;
                break;
            }
        }
    }
    pthread_mutex_unlock(&stub.lock);
    if (!cached && munmap(p, len) != 0) {
        log_error("zone=%s stub backend: munmap failed: %s", z->name, strerror(errno));
        return CUDA_ERROR_UNKNOWN;
    }
    return CUDA_SUCCESS;
}

static CUresult stub_memcpy_htod(struct backend_zone *z, struct backend_stream *s, uint64_t dst,
                                 const void *src, uint64_t len)
{
    (void)z;
    (void)s;
    memcpy((void *)(uintptr_t)dst, src, len);
    return CUDA_SUCCESS;
}

static CUresult stub_memcpy_dtoh(struct backend_zone *z, struct backend_stream *s, void *dst,
                                 uint64_t src, uint64_t len)
{
    (void)z;
    (void)s;
    memcpy(dst, (const void *)(uintptr_t)src, len);
    return CUDA_SUCCESS;
}

static CUresult stub_memcpy_dtod(struct backend_zone *z, struct backend_stream *s, uint64_t dst,
                                 uint64_t src, uint64_t len)
{
    (void)z;
    (void)s;
    memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, len);
    return CUDA_SUCCESS;
}

static CUresult stub_memset(struct backend_zone *z, struct backend_stream *s, uint64_t dst,
                            uint32_t value, uint32_t elem_size, uint64_t width, uint64_t pitch,
                            uint64_t height)
{
    (void)z;
    (void)s;
    for (uint64_t row = 0; row < height; row++) {
        uint8_t *p = (uint8_t *)(uintptr_t)(dst + row * pitch);
        if (elem_size == 1) {
            memset(p, (int)(value & 0xFF), width);
        } else if (elem_size == 2) {
            uint16_t v = (uint16_t)value;
            for (uint64_t i = 0; i < width; i++)
                memcpy(p + 2 * i, &v, 2);
        } else {
            for (uint64_t i = 0; i < width; i++)
                memcpy(p + 4 * i, &value, 4);
        }
    }
    return CUDA_SUCCESS;
}

/* ---- arrays, 3D copies, texture and surface objects ---- */

static CUresult stub_array_create(struct backend_zone *z, const struct backend_array_desc *d,
                                  struct backend_array **out, char *err, size_t errlen)
{
    struct backend_array *a = calloc(1, sizeof(*a));
    CUresult rc;

    if (a == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    a->d = *d;
    a->size = d->width * d->elem * (d->height ? d->height : 1) * (d->depth ? d->depth : 1);
    if ((rc = stub_mem_alloc(z, a->size, &a->baddr)) != CUDA_SUCCESS) {
        snprintf(err, errlen, "no memory for an array of %llu bytes",
                 (unsigned long long)a->size);
        free(a);
        return rc;
    }
    *out = a;
    return CUDA_SUCCESS;
}

static void stub_array_destroy(struct backend_zone *z, struct backend_array *a)
{
    /* The zone layer destroys the objects on it first; should one remain, it faults. */
    pthread_rwlock_wrlock(&z->tex_lock);
    for (uint32_t i = 0; i < z->ntex; i++)
        if (z->tex[i].gen && z->tex[i].d.array == a)
            z->tex[i].d.array = NULL;
    pthread_rwlock_unlock(&z->tex_lock);
    if (stub_mem_free(z, a->baddr, a->size) != CUDA_SUCCESS)
        log_error("zone=%s stub backend: freeing an array of %llu bytes failed", z->name,
                  (unsigned long long)a->size);
    free(a);
}

/* The host address of row (y, z) of a copy side, x included. */
static uint8_t *side_row(const struct backend_copy_side *c, uint64_t y, uint64_t z)
{
    uint64_t pitch = c->pitch, slice = c->pitch * c->pitch_h;
    uint8_t *base = c->kind == IDM_SIDE_HOST ? c->host : (uint8_t *)(uintptr_t)c->baddr;

    if (c->kind == IDM_SIDE_ARRAY) {
        const struct backend_array_desc *d = &c->array->d;
        pitch = d->width * d->elem;
        slice = pitch * (d->height ? d->height : 1);
        base = (uint8_t *)(uintptr_t)c->array->baddr;
    }
    return base + (c->z + z) * slice + (c->y + y) * pitch + c->x;
}

static CUresult stub_memcpy3d(struct backend_zone *z, const struct backend_copy3d *c, char *err,
                              size_t errlen)
{
    (void)z;
    (void)err;
    (void)errlen;
    for (uint64_t k = 0; k < c->depth; k++)
        for (uint64_t j = 0; j < c->height; j++)
            memmove(side_row(&c->dst, j, k), side_row(&c->src, j, k), c->width_bytes);
    return CUDA_SUCCESS;
}

/* Texture and surface object values: bits 63..56 a tag, 55..32 the slot's generation, 31..0
 * its index in the session's table; anything else resolves to nothing. */
#define STUB_TEX_TAG 0x7eull

static CUresult stub_tex_create(struct backend_zone *z, const struct backend_tex_desc *d,
                                uint64_t *value, char *err, size_t errlen)
{
    uint32_t i;

    pthread_rwlock_wrlock(&z->tex_lock);
    for (i = 0; i < z->ntex && z->tex[i].gen; i++)
        ;
    if (i == z->cap_tex) {
        uint32_t cap = z->cap_tex ? z->cap_tex * 2 : 16;
        struct stub_tex *t = realloc(z->tex, cap * sizeof(*t));
        if (t == NULL) {
            pthread_rwlock_unlock(&z->tex_lock);
            snprintf(err, errlen, "no memory for %u texture objects", cap);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        z->tex = t;
        z->cap_tex = cap;
    }
    if (i == z->ntex)
        z->ntex++;
    z->tex_gen = (z->tex_gen + 1) & 0xffffffu;
    if (z->tex_gen == 0)
        z->tex_gen = 1;
    z->tex[i].d = *d;
    z->tex[i].gen = z->tex_gen;
    *value = STUB_TEX_TAG << 56 | (uint64_t)z->tex_gen << 32 | i;
    pthread_rwlock_unlock(&z->tex_lock);
    return CUDA_SUCCESS;
}

static void stub_tex_destroy(struct backend_zone *z, uint64_t value, int surface)
{
    uint32_t i = (uint32_t)value;

    (void)surface;
    pthread_rwlock_wrlock(&z->tex_lock);
    if (i < z->ntex && z->tex[i].gen == (uint32_t)(value >> 32 & 0xffffffu))
        z->tex[i].gen = 0;
    pthread_rwlock_unlock(&z->tex_lock);
}

/* What a launch's texture resolver needs: the session's table and its memory. */
struct stub_texview {
    struct backend_zone *z;
    const struct backend_memview *mem;
};

/* A linear or pitch2D resource: its bytes resolved in the zone's memory now. */
static int texref_linear(const struct stub_texview *v, const struct backend_tex_desc *d,
                         struct ptx_texref *out)
{
    uint64_t baddr, base, size;
    int pitched = d->res_type == CU_RESOURCE_TYPE_PITCH2D;

    out->width = pitched ? d->width : d->size_bytes / d->elem;
    out->height = pitched ? d->height : 1;
    out->depth = 1;
    out->pitch = pitched ? d->pitch : out->width * d->elem;
    out->slice = out->pitch * out->height;
    out->bytes = pitched ? (d->height - 1) * d->pitch + d->width * d->elem : d->size_bytes;
    if (v->mem == NULL || v->mem->translate(v->mem->ctx, d->dptr, out->bytes, &baddr, &base,
                                            &size) != 0)
        return -1;
    out->data = (uint8_t *)(uintptr_t)baddr;
    return 0;
}

static int stub_tex_resolve(void *ctx, uint64_t value, int surface, struct ptx_texref *out)
{
    const struct stub_texview *v = ctx;
    struct backend_zone *z = v->z;
    uint32_t i = (uint32_t)value;
    struct backend_tex_desc d;
    int ok;

    pthread_rwlock_rdlock(&z->tex_lock);
    ok = value >> 56 == STUB_TEX_TAG && i < z->ntex && z->tex[i].gen != 0 &&
         z->tex[i].gen == (uint32_t)(value >> 32 & 0xffffffu) &&
         z->tex[i].d.surface == surface;
    if (ok)
        d = z->tex[i].d;
    pthread_rwlock_unlock(&z->tex_lock);
    if (!ok || (d.res_type == CU_RESOURCE_TYPE_ARRAY && d.array == NULL))
        return -1;
    memset(out, 0, sizeof(*out));
    out->format = d.format;
    out->channels = d.channels;
    out->elem = d.elem;
    memcpy(out->address_mode, d.address_mode, sizeof(out->address_mode));
    out->filter_mode = d.filter_mode;
    out->flags = d.flags;
    memcpy(out->border, d.border_color, sizeof(out->border));
    if (d.res_type != CU_RESOURCE_TYPE_ARRAY)
        return texref_linear(v, &d, out);
    /* The array cannot go while a launch runs: its destroy waits for the session's work. */
    out->data = (uint8_t *)(uintptr_t)d.array->baddr;
    out->bytes = d.array->size;
    out->width = d.array->d.width;
    out->height = d.array->d.height ? d.array->d.height : 1;
    out->depth = d.array->d.depth ? d.array->d.depth : 1;
    out->pitch = out->width * d.elem;
    out->slice = out->pitch * out->height;
    out->layered = (d.array->d.flags & CUDA_ARRAY3D_LAYERED) != 0;
    return 0;
}

/* ---- virtual memory management: a reserve is an inaccessible anonymous mapping; a physical
 * allocation a memfd (zero pages; its pages go back to the kernel with its last mapping and
 * descriptor); a map puts the memfd's pages in place of part of a reserve, so that back-to-back
 * mappings are one range of host addresses. Access is the zone layer's (its table's no_access,
 * checked on every copy and kernel access). ---- */
struct backend_vmem {
    int fd;
    uint64_t size;
};

static CUresult stub_va_reserve(struct backend_zone *z, uint64_t size, uint64_t align,
                                uint64_t *baddr)
{
    void *p;

    (void)align; /* zone addresses carry the alignment; host addresses need none */
    p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        log_warn("zone=%s stub backend: reserving %llu bytes of addresses failed: %s", z->name,
                 (unsigned long long)size, strerror(errno));
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *baddr = (uint64_t)(uintptr_t)p;
    return CUDA_SUCCESS;
}

static CUresult stub_va_free(struct backend_zone *z, uint64_t baddr, uint64_t size)
{
    if (munmap((void *)(uintptr_t)baddr, size) != 0) {
        log_error("zone=%s stub backend: freeing a reserve failed: %s", z->name, strerror(errno));
        return CUDA_ERROR_UNKNOWN;
    }
    return CUDA_SUCCESS;
}

static CUresult stub_vmem_create(struct backend_zone *z, uint64_t size, struct backend_vmem **out)
{
    struct backend_vmem *m = malloc(sizeof(*m));

    if (m == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&stub.lock);
    if (size > STUB_TOTAL_MEM - stub.allocated) {
        pthread_mutex_unlock(&stub.lock);
        free(m);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    stub.allocated += size;
    pthread_mutex_unlock(&stub.lock);
    m->size = size;
    m->fd = memfd_create("vgpu-vmem", MFD_CLOEXEC);
    if (m->fd < 0 || ftruncate(m->fd, (off_t)size) != 0) {
        log_warn("zone=%s stub backend: a physical allocation of %llu bytes failed: %s",
                 z->name, (unsigned long long)size, strerror(errno));
        if (m->fd >= 0)
            close(m->fd);
        free(m);
        pthread_mutex_lock(&stub.lock);
        stub.allocated -= size;
        pthread_mutex_unlock(&stub.lock);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *out = m;
    return CUDA_SUCCESS;
}

/* Closing the memfd with no mapping left gives its pages back to the kernel (the scrub). */
static CUresult stub_vmem_release(struct backend_zone *z, struct backend_vmem *m)
{
    CUresult rc = CUDA_SUCCESS;

    if (close(m->fd) != 0) {
        log_error("zone=%s stub backend: closing a physical allocation failed: %s", z->name,
                  strerror(errno));
        rc = CUDA_ERROR_UNKNOWN;
    }
    pthread_mutex_lock(&stub.lock);
    stub.allocated -= m->size;
    pthread_mutex_unlock(&stub.lock);
    free(m);
    return rc;
}

static CUresult stub_vmem_map(struct backend_zone *z, uint64_t baddr, uint64_t size,
                              struct backend_vmem *m, uint64_t offset)
{
    void *p = mmap((void *)(uintptr_t)baddr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                   m->fd, (off_t)offset);

    if (p == MAP_FAILED) {
        log_warn("zone=%s stub backend: mapping %llu bytes failed: %s", z->name,
                 (unsigned long long)size, strerror(errno));
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    return CUDA_SUCCESS;
}

/* The range becomes part of the inaccessible reserve again. */
static CUresult stub_vmem_unmap(struct backend_zone *z, uint64_t baddr, uint64_t size)
{
    void *p = mmap((void *)(uintptr_t)baddr, size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);

    if (p == MAP_FAILED) {
        log_error("zone=%s stub backend: unmapping %llu bytes failed: %s", z->name,
                  (unsigned long long)size, strerror(errno));
        return CUDA_ERROR_UNKNOWN;
    }
    return CUDA_SUCCESS;
}

static CUresult stub_vmem_set_access(struct backend_zone *z, uint64_t baddr, uint64_t size,
                                     int rw)
{
    (void)z;
    (void)baddr;
    (void)size;
    (void)rw;
    return CUDA_SUCCESS;
}

static CUresult stub_stream_create(struct backend_zone *z, uint32_t flags, int32_t priority,
                                   struct backend_stream **out)
{
    struct backend_stream *s = calloc(1, sizeof(*s));

    (void)z;
    if (s == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    s->flags = flags;
    s->priority = priority;
    *out = s;
    return CUDA_SUCCESS;
}

static CUresult stub_stream_destroy(struct backend_zone *z, struct backend_stream *s)
{
    (void)z;
    free(s);
    return CUDA_SUCCESS;
}

static CUresult stub_stream_sync(struct backend_zone *z, struct backend_stream *s)
{
    (void)z;
    (void)s;
    return CUDA_SUCCESS;
}

static CUresult stub_stream_wait_event(struct backend_zone *z, struct backend_stream *s,
                                       struct backend_event *e)
{
    (void)z;
    (void)s;
    (void)e; /* the recorded work is complete when the record is processed */
    return CUDA_SUCCESS;
}

static CUresult stub_event_create(struct backend_zone *z, uint32_t flags,
                                  struct backend_event **out)
{
    struct backend_event *e = calloc(1, sizeof(*e));

    (void)z;
    if (e == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    e->flags = flags;
    *out = e;
    return CUDA_SUCCESS;
}

static CUresult stub_event_destroy(struct backend_zone *z, struct backend_event *e)
{
    (void)z;
    free(e);
    return CUDA_SUCCESS;
}

static CUresult stub_event_record(struct backend_zone *z, struct backend_event *e,
                                  struct backend_stream *s)
{
    (void)z;
    (void)s;
    if (clock_gettime(CLOCK_MONOTONIC, &e->t) != 0)
        return CUDA_ERROR_UNKNOWN;
    e->recorded = 1;
    return CUDA_SUCCESS;
}

static CUresult stub_event_sync(struct backend_zone *z, struct backend_event *e)
{
    (void)z;
    (void)e;
    return CUDA_SUCCESS;
}

static CUresult stub_event_elapsed(struct backend_zone *z, struct backend_event *a,
                                   struct backend_event *b, float *ms)
{
    double d;

    (void)z;
    if ((a->flags & CU_EVENT_DISABLE_TIMING) || (b->flags & CU_EVENT_DISABLE_TIMING))
        return CUDA_ERROR_INVALID_HANDLE;
    if (!a->recorded || !b->recorded)
        return CUDA_ERROR_INVALID_HANDLE;
    d = (double)(b->t.tv_sec - a->t.tv_sec) * 1e3 + (double)(b->t.tv_nsec - a->t.tv_nsec) / 1e6;
    *ms = (float)d;
    return CUDA_SUCCESS;
}

/* ---- libraries and kernels ---- */

static void free_library(struct backend_library *l)
{
    for (unsigned i = 0; i < l->nglobals; i++)
        free(l->globals[i].name);
    free(l->globals);
    free(l->kernels);
    if (l->prog)
        ptx_program_free(l->prog);
    free(l->image);
    free(l);
}

static CUresult stub_library_load(struct backend_zone *z, const void *image, size_t size,
                                  const struct backend_allocator *alloc,
                                  struct backend_library **out, char *err, size_t errlen)
{
    struct backend_library *l;
    int rc;

    l = calloc(1, sizeof(*l));
    if (l == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    /* Keep our own copy of the image: the PTX engine may refer into it. */
    l->image = malloc(size ? size : 1);
    if (l->image == NULL) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto free_lib;
    }
    memcpy(l->image, image, size);
    l->image_size = size;
    rc = ptx_program_load(l->image, size, &l->prog, err, errlen);
    if (rc != PTX_OK) {
        l->prog = NULL;
        goto free_lib;
    }
    l->nkernels = ptx_program_kernel_count(l->prog);
    l->kernels = calloc(l->nkernels ? l->nkernels : 1, sizeof(*l->kernels));
    l->nglobals = ptx_program_global_count(l->prog);
    l->globals = calloc(l->nglobals ? l->nglobals : 1, sizeof(*l->globals));
    if (l->kernels == NULL || l->globals == NULL) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto free_lib;
    }
    for (unsigned i = 0; i < l->nkernels; i++) {
        l->kernels[i].k = ptx_program_kernel_at(l->prog, i);
        l->kernels[i].lib = l;
        l->kernels[i].max_dynamic_smem = 49152 - (int32_t)ptx_kernel_static_shared(l->kernels[i].k);
        l->kernels[i].carveout = -1;
    }
    /* Module globals live in the loading zone's memory, charged to its quota. */
    for (unsigned i = 0; i < l->nglobals; i++) {
        struct ptx_global_info gi;
        uint64_t zaddr, baddr;

        rc = ptx_program_global(l->prog, i, &gi);
        if (rc != PTX_OK) {
            snprintf(err, errlen, "global %u of the image is unreadable", i);
            goto free_lib;
        }
        l->globals[i].name = strdup(gi.name ? gi.name : "");
        l->globals[i].size = gi.size;
        if (l->globals[i].name == NULL) {
            rc = CUDA_ERROR_OUT_OF_MEMORY;
            goto free_lib;
        }
        rc = alloc->alloc(alloc->ctx, gi.size ? gi.size : 1, &zaddr, &baddr);
        if (rc != CUDA_SUCCESS) {
            snprintf(err, errlen, "no zone memory for global %s (%llu bytes)", gi.name,
                     (unsigned long long)gi.size);
            goto free_lib;
        }
        if (gi.init && gi.init_size)
            memcpy((void *)(uintptr_t)baddr, gi.init,
                   gi.init_size < gi.size ? gi.init_size : gi.size);
        l->globals[i].zone_addr = zaddr;
        rc = ptx_program_bind_global(l->prog, i, zaddr);
        if (rc != PTX_OK) {
            snprintf(err, errlen, "binding global %s failed", gi.name);
            goto free_lib;
        }
    }
    (void)z;
    *out = l;
    return CUDA_SUCCESS;

free_lib:
    /* Globals already allocated are owned by the library handle the zone layer frees. */
    free_library(l);
    return rc;
}

static void stub_library_unload(struct backend_zone *z, struct backend_library *l)
{
    (void)z;
    free_library(l);
}

static CUresult stub_library_kernel_count(struct backend_zone *z, struct backend_library *l,
                                          uint32_t *count)
{
    (void)z;
    *count = l->nkernels;
    return CUDA_SUCCESS;
}

static CUresult stub_library_kernel_name(struct backend_zone *z, struct backend_library *l,
                                         uint32_t index, char *name, size_t cap)
{
    const char *n;
    (void)z;
    if (index >= l->nkernels)
        return CUDA_ERROR_INVALID_VALUE;
    n = ptx_kernel_name(ptx_program_kernel_at(l->prog, index));
    if (strlen(n) >= cap)
        return CUDA_ERROR_NOT_SUPPORTED;
    strcpy(name, n);
    return CUDA_SUCCESS;
}

static CUresult stub_library_get_kernel(struct backend_zone *z, struct backend_library *l,
                                        const char *name, struct backend_kernel **out,
                                        struct idm_param *params, uint32_t *param_count,
                                        uint32_t *param_bytes)
{
    const struct ptx_param *pp;
    unsigned n;

    (void)z;
    for (unsigned i = 0; i < l->nkernels; i++) {
        if (strcmp(ptx_kernel_name(l->kernels[i].k), name) != 0)
            continue;
        n = ptx_kernel_param_count(l->kernels[i].k);
        if (n > IDM_PARAMS_MAX)
            return CUDA_ERROR_NOT_SUPPORTED;
        pp = ptx_kernel_params(l->kernels[i].k);
        for (unsigned j = 0; j < n; j++) {
            params[j].offset = pp[j].offset;
            params[j].size = pp[j].size;
        }
        *param_count = n;
        *param_bytes = ptx_kernel_param_bytes(l->kernels[i].k);
        *out = &l->kernels[i];
        return CUDA_SUCCESS;
    }
    return CUDA_ERROR_NOT_FOUND;
}

static CUresult stub_library_get_global(struct backend_zone *z, struct backend_library *l,
                                        const char *name, uint64_t *zone_addr, uint64_t *baddr,
                                        uint64_t *size)
{
    (void)z;
    for (unsigned i = 0; i < l->nglobals; i++) {
        if (strcmp(l->globals[i].name, name) == 0) {
            *zone_addr = l->globals[i].zone_addr;
            *baddr = 0;
            *size = l->globals[i].size;
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_NOT_FOUND;
}

static CUresult stub_func_get_attribute(struct backend_zone *z, struct backend_kernel *k,
                                        int32_t attr, int32_t *value)
{
    (void)z;
    switch (attr) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *value = 1024; break;
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *value = (int32_t)ptx_kernel_static_shared(k->k); break;
    case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: *value = 0; break;
    case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: *value = (int32_t)ptx_kernel_local_bytes(k->k); break;
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *value = 32; break;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION:
        /* the PTX's own target, as a driver says (CUB checks it against the program's
         * architectures); a kernel without PTX: the device's */
        *value = (int32_t)(ptx_kernel_ptx_version(k->k) ? ptx_kernel_ptx_version(k->k)
                                                        : PTX_DEVICE_SM);
        break;
    case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *value = PTX_DEVICE_SM; break; /* JIT for the device */
    case CU_FUNC_ATTRIBUTE_CACHE_MODE_CA: *value = 0; break;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *value = k->max_dynamic_smem; break;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: *value = k->carveout; break;
    case CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH:
    case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED:
    case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
        *value = k->cluster_attrs[attr - CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET];
        break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

static CUresult stub_func_set_attribute(struct backend_zone *z, struct backend_kernel *k,
                                        int32_t attr, int32_t value)
{
    (void)z;
    switch (attr) {
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES:
        if (value < 0 || value > 232448 - (int32_t)ptx_kernel_static_shared(k->k))
            return CUDA_ERROR_INVALID_VALUE;
        k->max_dynamic_smem = value;
        return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
        if (value < -1 || value > 100)
            return CUDA_ERROR_INVALID_VALUE;
        k->carveout = value;
        return CUDA_SUCCESS;
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT:
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH:
    case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED:
    case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
        k->cluster_attrs[attr - CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET] = value;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static CUresult stub_occupancy(struct backend_zone *z, struct backend_kernel *k, uint32_t which,
                               uint32_t block_size, uint64_t dynamic_smem, uint32_t num_blocks,
                               const uint32_t cluster_dim[3], const uint32_t grid_dim[3],
                               uint32_t flags, uint64_t *value)
{
    uint64_t smem_block = ptx_kernel_static_shared(k->k) + dynamic_smem;
    uint64_t by_threads, by_smem, blocks;

    (void)z;
    (void)grid_dim;
    (void)flags;
    switch (which) {
    case 0:
        if (block_size == 0 || block_size > 1024)
            return CUDA_ERROR_INVALID_VALUE;
        by_threads = 2048 / (((block_size + 31) / 32) * 32);
        by_smem = smem_block ? 233472 / (smem_block + 1024) : 32;
        blocks = by_threads < by_smem ? by_threads : by_smem;
        *value = blocks < STUB_BLOCKS_PER_SM ? blocks : STUB_BLOCKS_PER_SM;
        return CUDA_SUCCESS;
    case 1:
        if (block_size == 0 || num_blocks == 0)
            return CUDA_ERROR_INVALID_VALUE;
        blocks = 233472 / num_blocks;
        blocks = blocks > 1024 + ptx_kernel_static_shared(k->k)
                     ? blocks - 1024 - ptx_kernel_static_shared(k->k) : 0;
        *value = blocks < 232448 ? blocks : 232448;
        return CUDA_SUCCESS;
    case 2: {
        uint64_t csize = 1;
        /* Each dimension is bounded before multiplying, so the product cannot wrap to 0. */
        for (int i = 0; i < 3; i++) {
            if (cluster_dim[i] > 16)
                return CUDA_ERROR_INVALID_CLUSTER_SIZE;
            csize *= cluster_dim[i] ? cluster_dim[i] : 1;
        }
        if (csize > 16)
            return CUDA_ERROR_INVALID_CLUSTER_SIZE;
        *value = STUB_SMS / csize;
        return CUDA_SUCCESS;
    }
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static void *stub_resolve(void *ctx, uint64_t addr, uint64_t len, uint64_t *alloc_base,
                          uint64_t *alloc_size)
{
    const struct backend_memview *mem = ctx;
    uint64_t baddr;

    if (mem->translate(mem->ctx, addr, len, &baddr, alloc_base, alloc_size) != 0)
        return NULL;
    return (void *)(uintptr_t)baddr;
}

static CUresult stub_launch(struct backend_zone *z, struct backend_kernel *k,
                            struct backend_stream *s, const struct backend_launch *l, char *err,
                            size_t errlen)
{
    struct ptx_memory mem = {.ctx = (void *)l->mem, .resolve = stub_resolve};
    struct stub_texview tv = {.z = z, .mem = l->mem};
    struct ptx_textures tex = {.ctx = &tv, .resolve = stub_tex_resolve};
    struct ptx_launch pl;

    (void)s;
    if (!ptx_kernel_executable(k->k)) {
        snprintf(err, errlen, "kernel %s has no PTX the simulated GPU can run",
                 ptx_kernel_name(k->k));
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    if (l->shared_bytes > (uint32_t)k->max_dynamic_smem) {
        snprintf(err, errlen, "kernel %s: %u bytes of dynamic shared memory exceed its limit %d",
                 ptx_kernel_name(k->k), l->shared_bytes, k->max_dynamic_smem);
        return CUDA_ERROR_INVALID_VALUE;
    }
    memset(&pl, 0, sizeof(pl));
    memcpy(pl.grid, l->grid, sizeof(pl.grid));
    memcpy(pl.block, l->block, sizeof(pl.block));
    pl.dynamic_shared = l->shared_bytes;
    pl.params = l->params;
    pl.params_size = l->params_size;
    pl.mem = &mem;
    pl.tex = &tex;
    pl.printf_fifo_size = l->printf_fifo_size;
    pl.cancel = l->cancel;
    pl.cooperative = l->cooperative;
    pl.heap = l->heap ? l->heap->h : NULL;
    pl.host_threads = stub.cpus;
    return ptx_launch(k->k, &pl, err, errlen);
}

static int stub_kernel_uses_heap(struct backend_kernel *k)
{
    return ptx_program_uses_heap(k->lib->prog);
}

static CUresult stub_heap_create(struct backend_zone *z, uint64_t zone_addr, uint64_t size,
                                 struct backend_heap **out)
{
    struct backend_heap *bh = calloc(1, sizeof(*bh));
    int err;

    (void)z;
    *out = NULL;
    if (bh == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if ((err = ptx_heap_create(zone_addr, size, &bh->h)) != 0) {
        free(bh);
        return cu_from_errno(err);
    }
    *out = bh;
    return CUDA_SUCCESS;
}

static void stub_heap_destroy(struct backend_zone *z, struct backend_heap *h)
{
    (void)z;
    if (h == NULL)
        return;
    ptx_heap_destroy(h->h);
    free(h);
}

const struct backend_ops backend_stub = {
    .name = "stub",
    .fault_loses_context = 0,
    .kernels_cancellable = 1,
    .launch_runs_kernel = 1,
    .init = stub_init,
    .shutdown = stub_shutdown,
    .device_count = stub_device_count,
    .device_props = stub_device_props,
    .driver_version = stub_driver_version,
    .mem_info = stub_mem_info,
    .zone_open = stub_zone_open,
    .zone_close = stub_zone_close,
    .zone_sync = stub_zone_sync,
    .mem_alloc = stub_mem_alloc,
    .mem_free = stub_mem_free,
    .memcpy_htod = stub_memcpy_htod,
    .memcpy_dtoh = stub_memcpy_dtoh,
    .memcpy_dtod = stub_memcpy_dtod,
    .memset = stub_memset,
    .stream_create = stub_stream_create,
    .stream_destroy = stub_stream_destroy,
    .stream_sync = stub_stream_sync,
    .stream_query = stub_stream_sync,
    .stream_wait_event = stub_stream_wait_event,
    .event_create = stub_event_create,
    .event_destroy = stub_event_destroy,
    .event_record = stub_event_record,
    .event_sync = stub_event_sync,
    .event_query = stub_event_sync,
    .event_elapsed = stub_event_elapsed,
    .library_load = stub_library_load,
    .library_unload = stub_library_unload,
    .library_kernel_count = stub_library_kernel_count,
    .library_kernel_name = stub_library_kernel_name,
    .library_get_kernel = stub_library_get_kernel,
    .library_get_global = stub_library_get_global,
    .func_get_attribute = stub_func_get_attribute,
    .func_set_attribute = stub_func_set_attribute,
    .occupancy = stub_occupancy,
    .kernel_uses_heap = stub_kernel_uses_heap,
    .heap_create = stub_heap_create,
    .heap_destroy = stub_heap_destroy,
    .launch = stub_launch,
    .array_create = stub_array_create,
    .array_destroy = stub_array_destroy,
    .memcpy3d = stub_memcpy3d,
    .tex_create = stub_tex_create,
    .tex_destroy = stub_tex_destroy,
    .va_reserve = stub_va_reserve,
    .va_free = stub_va_free,
    .vmem_create = stub_vmem_create,
    .vmem_release = stub_vmem_release,
    .vmem_map = stub_vmem_map,
    .vmem_unmap = stub_vmem_unmap,
    .vmem_set_access = stub_vmem_set_access,
};
