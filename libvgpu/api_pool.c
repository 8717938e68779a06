/* api_pool.c - stream-ordered allocation and memory pools: each device's default pool and pools
 * made by cuMemPoolCreate (device pinned memory, no shareable handles; a maximum size honoured).
 * cuMemAllocAsync allocates at once through MEM_ALLOC (earlier than the stream needs it, which
 * CUDA allows); cuMemFreeAsync waits for the stream's earlier work, then frees, so the memory
 * goes back to the zone at once: a pool keeps nothing (trimming has nothing to do), its release
 * threshold is kept and returned but changes nothing. Pools are local records, handles checked
 * against them (never read through); no proxy op of their own. */
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

struct vgpu_pool *vgpu_pool_check_locked(struct vgpu *v, CUmemoryPool h)
{
    for (int d = 0; d < v->device_count; d++)
        if ((CUmemoryPool)&v->pools[d] == h && v->pools[d].magic == VGPU_POOL_MAGIC)
            return &v->pools[d];
    for (struct vgpu_pool *p = v->created_pools; p != NULL; p = p->next)
        if ((CUmemoryPool)p == h && !p->destroyed)
            return p;
    return NULL;
}

/* The pool behind a handle, or NULL; *dev: its device (read under the lock: a created pool may
 * be destroyed by another thread once it is released). */
static struct vgpu_pool *pool_check(CUmemoryPool h, int *dev)
{
    struct vgpu *v = vgpu_get();
    pthread_mutex_lock(&v->lock);
    struct vgpu_pool *p = vgpu_pool_check_locked(v, h);
    if (p != NULL)
        *dev = p->dev;
    pthread_mutex_unlock(&v->lock);
    return p;
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

/* Allocates from pool p (of device dev) for work on the current context's device. */
static CUresult alloc_from(CUdeviceptr *dptr, size_t bytesize, struct vgpu_pool *p, int dev)
{
    struct vgpu_ctx *cur = vgpu_ctx_current();
    if (cur != NULL && cur->dev != dev) {
        VLOG(VGPU_LOG_WARN, "cuMemAllocFromPoolAsync refused: device %d's pool used from a "
                            "context on device %d is not supported", dev, cur->dev);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return vgpu_mem_alloc(dptr, bytesize, p);
}

static CUresult alloc_async(CUdeviceptr *dptr, size_t bytesize)
{
    struct vgpu_ctx *cur = vgpu_ctx_current();
    if (cur == NULL)
        return vgpu_mem_alloc(dptr, bytesize, NULL); /* fails with the missing context */
    struct vgpu *v = vgpu_get();
    pthread_mutex_lock(&v->lock);
    struct vgpu_pool *p = v->current_pool[cur->dev] ? v->current_pool[cur->dev]
                                                    : &v->pools[cur->dev];
    pthread_mutex_unlock(&v->lock);
    return vgpu_mem_alloc(dptr, bytesize, p); /* checks p again: destroyed meanwhile */
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
    int dev;
    struct vgpu_pool *p = pool_check(pool, &dev);
    if (p == NULL) {
        VLOG(VGPU_LOG_WARN, "cuMemAllocFromPoolAsync refused: %p is not a memory pool", pool);
        return CUDA_ERROR_INVALID_VALUE;
    }
    return alloc_from(dptr, bytesize, p, dev);
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
    CUresult r = cuDeviceGetDefaultMemPool(pool, dev);
    struct vgpu *v = vgpu_get();
    if (r != CUDA_SUCCESS)
        return r;
    pthread_mutex_lock(&v->lock);
    if (v->current_pool[dev] != NULL)
        *pool = (CUmemoryPool)v->current_pool[dev];
    pthread_mutex_unlock(&v->lock);
    return CUDA_SUCCESS;
}

/* The device's default pool or one created for it becomes its current pool
 * (cuMemAllocAsync's). */
CUresult cuDeviceSetMemPool(CUdevice dev, CUmemoryPool pool)
{
    CUresult r;
    struct vgpu *v = vgpu_get();
    struct vgpu_pool *def = pool_of_device(dev, &r);
    if (def == NULL)
        return r;
    pthread_mutex_lock(&v->lock);
    struct vgpu_pool *p = vgpu_pool_check_locked(v, pool);
    int ok = p != NULL && p->dev == dev;
    if (ok)
        v->current_pool[dev] = p == def ? NULL : p;
    pthread_mutex_unlock(&v->lock);
    if (!ok) {
        VLOG(VGPU_LOG_WARN, "cuDeviceSetMemPool(device %d, %p) refused: not a memory pool of "
                            "the device", (int)dev, pool);
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
    pthread_mutex_lock(&v->lock);
    struct vgpu_pool *p = vgpu_pool_check_locked(v, h);
    r = p != NULL && value != NULL ? fn(p, attr, value) : CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&v->lock);
    if (p == NULL || value == NULL) {
        VLOG(VGPU_LOG_WARN, "%s(%p, attribute %d) refused: %s", what, h, (int)attr,
             p ? "no value" : "not a memory pool");
        return CUDA_ERROR_INVALID_VALUE;
    }
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
    int dev;
    if (pool_check(pool, &dev) == NULL) {
        VLOG(VGPU_LOG_WARN, "cuMemPoolTrimTo(%p) refused: not a memory pool", pool);
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

/* ---- created pools: local records like the default pools (memory allocated at
 * cuMemAllocFromPoolAsync, given back at free), with their own attributes, usage figures and
 * maximum size. ---- */

#define VGPU_MAX_CREATED_POOLS 1024u

/* Device pinned memory of one of our devices, no shareable handles, no special usage. */
static CUresult check_pool_props(const struct vgpu *v, const CUmemPoolProps *pp)
{
    if (pp == NULL || pp->allocType != CU_MEM_ALLOCATION_TYPE_PINNED ||
        pp->location.type != CU_MEM_LOCATION_TYPE_DEVICE || pp->location.id < 0 ||
        pp->location.id >= v->device_count || pp->win32SecurityAttributes != NULL) {
        VLOG(VGPU_LOG_WARN, "cuMemPoolCreate refused: only device pinned memory pools of our "
                            "devices are supported");
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (pp->handleTypes != CU_MEM_HANDLE_TYPE_NONE || pp->usage != 0) {
        VLOG(VGPU_LOG_WARN, "cuMemPoolCreate refused: shareable handle types (0x%x) and usage "
                            "hints (0x%x) are not supported: the memory lives behind the proxy",
             (unsigned)pp->handleTypes, (unsigned)pp->usage);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return CUDA_SUCCESS;
}

CUresult cuMemPoolCreate(CUmemoryPool *pool, const CUmemPoolProps *poolProps)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (pool == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = check_pool_props(v, poolProps)) != CUDA_SUCCESS)
        return r;
    struct vgpu_pool *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *p = (struct vgpu_pool){.magic = VGPU_POOL_MAGIC, .dev = poolProps->location.id,
                            .reuse = {1, 1, 1}, .created = 1, .max_size = poolProps->maxSize};
    pthread_mutex_lock(&v->lock);
    if (v->ncreated_pools == VGPU_MAX_CREATED_POOLS) {
        pthread_mutex_unlock(&v->lock);
        free(p);
        VLOG(VGPU_LOG_WARN, "cuMemPoolCreate refused: %u pools exist", VGPU_MAX_CREATED_POOLS);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    p->next = v->created_pools;
    v->created_pools = p;
    v->ncreated_pools++;
    pthread_mutex_unlock(&v->lock);
    *pool = (CUmemoryPool)p;
    return CUDA_SUCCESS;
}

/* Unlinks and frees a created pool. */
static void pool_free_locked(struct vgpu *v, struct vgpu_pool *p)
{
    for (struct vgpu_pool **pp = &v->created_pools; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            v->ncreated_pools--;
            p->magic = 0;
            free(p);
            return;
        }
    }
}

void vgpu_pool_uncount_locked(struct vgpu *v, struct vgpu_pool *p, uint64_t size)
{
    p->used -= size;
    if (p->created && p->destroyed && p->used == 0)
        pool_free_locked(v, p);
}

/* As CUDA documents: a pool with allocations outstanding goes once the last is freed. */
CUresult cuMemPoolDestroy(CUmemoryPool pool)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    pthread_mutex_lock(&v->lock);
    struct vgpu_pool *p = vgpu_pool_check_locked(v, pool);
    int created = p != NULL && p->created;
    if (created) {
        p->destroyed = 1;
        if (v->current_pool[p->dev] == p) /* as CUDA does: the default pool becomes current */
            v->current_pool[p->dev] = NULL;
        if (p->used == 0)
            pool_free_locked(v, p); /* p is not read after this */
    }
    pthread_mutex_unlock(&v->lock);
    if (!created) {
        VLOG(VGPU_LOG_WARN, "cuMemPoolDestroy(%p) refused: %s", pool,
             p ? "a default pool" : "not a created memory pool");
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

/* A pool's memory is accessible from its own device, read-write; that is the only access a
 * pool can be given (no peer access). */
CUresult cuMemPoolSetAccess(CUmemoryPool pool, const CUmemAccessDesc *map, size_t count)
{
    int dev;
    CUresult r = vgpu_ready(vgpu_get());
    if (r != CUDA_SUCCESS)
        return r;
    if (pool_check(pool, &dev) == NULL || (map == NULL && count > 0)) {
        VLOG(VGPU_LOG_WARN, "cuMemPoolSetAccess(%p) refused: not a memory pool", pool);
        return CUDA_ERROR_INVALID_VALUE;
    }
    for (size_t i = 0; i < count; i++) {
        if (map[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || map[i].location.id != dev ||
            map[i].flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE) {
            VLOG(VGPU_LOG_WARN, "cuMemPoolSetAccess(%p) refused: access other than read-write "
                                "from the pool's own device %d is not supported", pool, dev);
            return CUDA_ERROR_NOT_SUPPORTED;
        }
    }
    return CUDA_SUCCESS;
}

/* A default pool's memory is accessible from its own device only (no peer access). */
CUresult cuMemPoolGetAccess(CUmemAccess_flags *flags, CUmemoryPool memPool,
                            CUmemLocation *location)
{
    CUresult r = vgpu_ready(vgpu_get());
    if (r != CUDA_SUCCESS)
        return r;
    int dev;
    const struct vgpu_pool *p = pool_check(memPool, &dev);
    if (p == NULL || flags == NULL || location == NULL) {
        VLOG(VGPU_LOG_WARN, "cuMemPoolGetAccess(%p) refused: %s", memPool,
             p ? "no flags or location" : "not a memory pool");
        return CUDA_ERROR_INVALID_VALUE;
    }
    int own = location->type == CU_MEM_LOCATION_TYPE_DEVICE && location->id == dev;
    *flags = own ? CU_MEM_ACCESS_FLAGS_PROT_READWRITE : CU_MEM_ACCESS_FLAGS_PROT_NONE;
    return CUDA_SUCCESS;
}
