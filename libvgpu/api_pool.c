/* api_pool.c - stream-ordered allocation and memory pools: each device has its default pool
 * and no other (cuMemPoolCreate is not supported). cuMemAllocAsync allocates at once through
 * MEM_ALLOC (earlier than the stream needs it, which CUDA allows); cuMemFreeAsync waits for the
 * stream's earlier work, then frees, so the memory goes back to the zone at once: a pool keeps
 * nothing, its release threshold is kept and returned but changes nothing. Pools are local
 * records; no proxy op of their own. */
#include "vgpu_calls.h"

/* Device d's default pool, or NULL (with *err) for a bad device. */
static struct vgpu_pool *pool_of_device(CUdevice d, CUresult *err)
{
    struct vgpu *v = vgpu_get();
    *err = vgpu_ready(v);
    if (*err != CUDA_SUCCESS)
        return NULL;
    if (d < 0 || d >= v->device_count) {
        *err = CUDA_ERROR_INVALID_DEVICE;
        return NULL;
    }
    return &v->pools[d];
}

/* The pool behind a handle: one of our default pools, else NULL. */
static struct vgpu_pool *pool_check(CUmemoryPool h)
{
    struct vgpu *v = vgpu_get();
    for (int d = 0; d < v->device_count; d++)
        if ((CUmemoryPool)&v->pools[d] == h && v->pools[d].magic == VGPU_POOL_MAGIC)
            return &v->pools[d];
    return NULL;
}

void vgpu_pool_init(struct vgpu *v, int d)
{
    v->pools[d] = (struct vgpu_pool){.magic = VGPU_POOL_MAGIC, .dev = d, .reuse = {1, 1, 1}};
    int32_t *a = v->dev[d].attrs;
    a[CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED] = 1;
    a[CU_DEVICE_ATTRIBUTE_MEMPOOL_SUPPORTED_HANDLE_TYPES] = 0; /* no IPC */
    a[CU_DEVICE_ATTRIBUTE_HOST_NUMA_MEMORY_POOLS_SUPPORTED] = 0;
    a[CU_DEVICE_ATTRIBUTE_HOST_MEMORY_POOLS_SUPPORTED] = 0;
}

/* ---- allocation and free ---- */

/* Allocates from pool p for work on the current context's device. */
static CUresult alloc_from(CUdeviceptr *dptr, size_t bytesize, const struct vgpu_pool *p)
{
    struct vgpu_ctx *cur = vgpu_ctx_current();
    if (cur != NULL && cur->dev != p->dev) {
        VLOG(VGPU_LOG_WARN, "cuMemAllocFromPoolAsync refused: device %d's pool used from a "
                            "context on device %d is not supported", p->dev, cur->dev);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return vgpu_mem_alloc(dptr, bytesize, p->dev + 1);
}

static CUresult alloc_async(CUdeviceptr *dptr, size_t bytesize)
{
    struct vgpu_ctx *cur = vgpu_ctx_current();
    if (cur == NULL)
        return vgpu_mem_alloc(dptr, bytesize, 0); /* fails with the missing context */
    return vgpu_mem_alloc(dptr, bytesize, cur->dev + 1);
}

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream)
{
    CUresult r = vgpu_capture_refuse(hStream, "cuMemAllocAsync (memory nodes)");
    return r != VGPU_NOT_CAPTURED ? r : alloc_async(dptr, bytesize);
}

CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytesize, CUmemoryPool pool,
                                 CUstream hStream)
{
    CUresult r = vgpu_capture_refuse(hStream, "cuMemAllocFromPoolAsync (memory nodes)");
    if (r != VGPU_NOT_CAPTURED)
        return r;
    if ((r = vgpu_ready(vgpu_get())) != CUDA_SUCCESS)
        return r;
    const struct vgpu_pool *p = pool_check(pool);
    if (p == NULL) {
        VLOG(VGPU_LOG_WARN, "cuMemAllocFromPoolAsync refused: %p is not a memory pool", pool);
        return CUDA_ERROR_INVALID_VALUE;
    }
    return alloc_from(dptr, bytesize, p);
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    CUresult r = cuStreamSynchronize(hStream);
    return r != CUDA_SUCCESS ? r : cuMemFree_v2(dptr);
}

/* ---- which pool ---- */

CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool_out, CUdevice dev)
{
    CUresult r;
    struct vgpu_pool *p = pool_of_device(dev, &r);
    if (p == NULL)
        return r;
    if (pool_out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pool_out = (CUmemoryPool)p;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev)
{
    return cuDeviceGetDefaultMemPool(pool, dev);
}

/* Only the default pool can be a device's current pool. */
CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool pool)
{
    CUresult r;
    struct vgpu_pool *p = pool_of_device(dev, &r);
    if (p == NULL)
        return r;
    if ((CUmemoryPool)p != pool) {
        VLOG(VGPU_LOG_WARN, "cuDeviceSetMemPool(device %d, %p) refused: only the device's "
                            "default pool is supported", (int)dev, pool);
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

/* The CUDA 13 forms by location: a device's pinned memory only. */
static CUresult location_device(const CUmemLocation *loc, CUmemAllocationType type,
                                CUdevice *dev)
{
    if (loc == NULL || loc->type != CU_MEM_LOCATION_TYPE_DEVICE ||
        type != CU_MEM_ALLOCATION_TYPE_PINNED) {
        VLOG(VGPU_LOG_WARN, "memory pool of location type %d, allocation type %d refused: only "
                            "device memory pools are supported", loc ? (int)loc->type : -1,
             (int)type);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    *dev = loc->id;
    return CUDA_SUCCESS;
}

CUresult cuMemGetDefaultMemPool(CUmemoryPool *pool_out, CUmemLocation *location,
                                CUmemAllocationType type)
{
    CUdevice d;
    CUresult r = location_device(location, type, &d);
    return r != CUDA_SUCCESS ? r : cuDeviceGetDefaultMemPool(pool_out, d);
}

CUresult cuMemGetMemPool(CUmemoryPool *pool, CUmemLocation *location, CUmemAllocationType type)
{
    return cuMemGetDefaultMemPool(pool, location, type);
}

CUresult cuMemSetMemPool(CUmemLocation *location, CUmemAllocationType type, CUmemoryPool pool)
{
    CUdevice d;
    CUresult r = location_device(location, type, &d);
    return r != CUDA_SUCCESS ? r : cuDeviceSetMemPool(d, pool);
}

/* ---- attributes ---- */

/* Runs fn on the pool behind h under the connection lock. */
static CUresult with_pool(CUmemoryPool h, const char *what, CUmemPool_attribute attr, void *value,
                          CUresult (*fn)(struct vgpu_pool *, CUmemPool_attribute, void *))
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct vgpu_pool *p = pool_check(h);
    if (p == NULL || value == NULL) {
        VLOG(VGPU_LOG_WARN, "%s(%p, attribute %d) refused: %s", what, h, (int)attr,
             p ? "no value" : "not a memory pool");
        return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&v->lock);
    r = fn(p, attr, value);
    pthread_mutex_unlock(&v->lock);
    if (r != CUDA_SUCCESS)
        VLOG(VGPU_LOG_WARN, "%s(%p, attribute %d) refused: unknown attribute or bad value", what,
             h, (int)attr);
    return r;
}

static CUresult attr_get(struct vgpu_pool *p, CUmemPool_attribute attr, void *value)
{
    switch (attr) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
        *(int *)value = p->reuse[attr - CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES];
        return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
        *(cuuint64_t *)value = p->release_threshold;
        return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: /* nothing is kept beyond what is in use */
    case CU_MEMPOOL_ATTR_USED_MEM_CURRENT:
        *(cuuint64_t *)value = p->used;
        return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH:
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
        *(cuuint64_t *)value = p->used_high;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

static CUresult attr_set(struct vgpu_pool *p, CUmemPool_attribute attr, void *value)
{
    switch (attr) {
    case CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_OPPORTUNISTIC:
    case CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES:
        p->reuse[attr - CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES] = *(int *)value != 0;
        return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD:
        p->release_threshold = *(cuuint64_t *)value;
        return CUDA_SUCCESS;
    case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: /* only a reset (to the current figure) */
    case CU_MEMPOOL_ATTR_USED_MEM_HIGH:
        if (*(cuuint64_t *)value != 0)
            return CUDA_ERROR_INVALID_VALUE;
        p->used_high = p->used;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
    return with_pool(pool, "cuMemPoolGetAttribute", attr, value, attr_get);
}

CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
    return with_pool(pool, "cuMemPoolSetAttribute", attr, value, attr_set);
}

/* A pool keeps no freed memory, so there is never anything to trim. */
CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t minBytesToKeep)
{
    (void)minBytesToKeep;
    CUresult r = vgpu_ready(vgpu_get());
    if (r != CUDA_SUCCESS)
        return r;
    if (pool_check(pool) == NULL) {
        VLOG(VGPU_LOG_WARN, "cuMemPoolTrimTo(%p) refused: not a memory pool", pool);
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

/* Only default pools exist: a created pool would need its own properties (location, handle
 * types, maximum size) honoured. */
CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps)
{
    (void)pool;
    (void)poolProps;
    VLOG(VGPU_LOG_WARN, "cuMemPoolCreate refused: only each device's default memory pool is "
                        "supported");
    return CUDA_ERROR_NOT_SUPPORTED;
}

/* A default pool's memory is accessible from its own device only (no peer access). */
CUresult cuMemPoolGetAccess(CUmemAccess_flags *flags, CUmemoryPool memPool,
                            CUmemLocation *location)
{
    CUresult r = vgpu_ready(vgpu_get());
    if (r != CUDA_SUCCESS)
        return r;
    const struct vgpu_pool *p = pool_check(memPool);
    if (p == NULL || flags == NULL || location == NULL) {
        VLOG(VGPU_LOG_WARN, "cuMemPoolGetAccess(%p) refused: %s", memPool,
             p ? "no flags or location" : "not a memory pool");
        return CUDA_ERROR_INVALID_VALUE;
    }
    int own = location->type == CU_MEM_LOCATION_TYPE_DEVICE && location->id == p->dev;
    *flags = own ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE : CU_MEM_ACCESS_FLAGS_PROT_NONE;
    return CUDA_SUCCESS;
}
