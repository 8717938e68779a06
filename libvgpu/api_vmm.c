/* api_vmm.c - virtual memory management (cuMemAddressReserve, cuMemCreate, cuMemMap,
 * cuMemSetAccess and their kin) as VMM_* requests: reserves, physical allocations and mappings
 * live in the proxy (gpu-proxy/dispatch_vmm.c); reserves are also recorded locally as device
 * ranges, so that unified copies know them. Granularity: IDM_VMM_GRANULARITY. Shareable handles
 * (export/import) are refused: the memory lives in the GPU's domain, behind the proxy, and no
 * file descriptor or handle of it can be handed to the tenant's process. */
#include <string.h>

#include "vgpu_calls.h"

#define GRAN IDM_VMM_GRANULARITY

void vgpu_vmm_init(struct vgpu *v, int d)
{
    int32_t *a = v->dev[d].attrs;
    a[CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED] = 0;
    a[CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_HANDLE_SUPPORTED] = 0;
    a[CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_KMT_HANDLE_SUPPORTED] = 0;
    a[CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED] = 0;
    a[CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED] = 0;
}

/* The current session, ready; else the error. */
static CUresult ready(struct vgpu **out)
{
    *out = vgpu_get();
    return vgpu_ready(*out);
}

/* A property set we implement: pinned memory of one of our devices, no shareable handle types
 * and no compression. */
static CUresult check_prop(const struct vgpu *v, const CUmemAllocationProp *prop, const char *fn)
{
    if (prop == NULL || prop->type != CU_MEM_ALLOCATION_TYPE_PINNED ||
        prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE || prop->location.id < 0 ||
        prop->location.id >= v->device_count)
        return CUDA_ERROR_INVALID_VALUE;
    if (prop->requestedHandleTypes != CU_MEM_HANDLE_TYPE_NONE) {
        VLOG(VGPU_LOG_WARN, "%s refused: shareable handle types (0x%x) are not supported: the "
                            "memory lives behind the proxy, in another domain", fn,
             (unsigned)prop->requestedHandleTypes);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    if (prop->allocFlags.compressionType != 0) {
        VLOG(VGPU_LOG_WARN, "%s refused: compressible memory is not supported", fn);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return CUDA_SUCCESS;
}

CUresult cuMemGetAllocationGranularity(size_t *granularity, const CUmemAllocationProp *prop,
                                       CUmemAllocationGranularity_flags option)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    if (granularity == NULL || (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM &&
                                option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED))
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = check_prop(v, prop, "cuMemGetAllocationGranularity")) != CUDA_SUCCESS)
        return r;
    *granularity = GRAN;
    return CUDA_SUCCESS;
}

/* ---- reserves ---- */

CUresult cuMemAddressReserve(CUdeviceptr *ptr, size_t size, size_t alignment, CUdeviceptr addr,
                             unsigned long long flags)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    if (ptr == NULL || size == 0 || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_VMM_RESERVE rq = {.size = size, .align = alignment, .hint = addr};
    struct idm_rep_VMM_RESERVE rp;
    pthread_mutex_lock(&v->lock);
    r = vgpu_call_VMM_RESERVE_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    if (r == CUDA_SUCCESS && vgpu_alloc_add_locked(v, rp.ptr, size, 1, 0) < 0) {
        struct idm_req_VMM_FREE fq = {.ptr = rp.ptr, .size = size};
        struct idm_rep_VMM_FREE fp;
        (void)vgpu_call_VMM_FREE_locked(v, &fq, NULL, 0, &fp, NULL, 0, NULL);
        r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&v->lock);
    if (r == CUDA_SUCCESS)
        *ptr = rp.ptr;
    return r;
}

CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_VMM_FREE rq = {.ptr = ptr, .size = size};
    struct idm_rep_VMM_FREE rp;
    pthread_mutex_lock(&v->lock);
    r = vgpu_call_VMM_FREE_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    if (r == CUDA_SUCCESS)
        vgpu_alloc_remove_locked(v, ptr);
    pthread_mutex_unlock(&v->lock);
    return r;
}

/* ---- physical allocations ---- */

CUresult cuMemCreate(CUmemGenericAllocationHandle *handle, size_t size,
                     const CUmemAllocationProp *prop, unsigned long long flags)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    if (handle == NULL || size == 0 || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = check_prop(v, prop, "cuMemCreate")) != CUDA_SUCCESS)
        return r;
    struct idm_req_VMM_CREATE rq = {.size = size, .device = prop->location.id};
    struct idm_rep_VMM_CREATE rp;
    if ((r = VGPU_CALL(v, VMM_CREATE, &rq, &rp)) == CUDA_SUCCESS)
        *handle = rp.handle;
    return r;
}

CUresult cuMemRelease(CUmemGenericAllocationHandle handle)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_VMM_RELEASE rq = {.handle = handle};
    struct idm_rep_VMM_RELEASE rp;
    return VGPU_CALL(v, VMM_RELEASE, &rq, &rp);
}

CUresult cuMemRetainAllocationHandle(CUmemGenericAllocationHandle *handle, void *addr)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    if (handle == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_VMM_RETAIN rq = {.ptr = (uint64_t)(uintptr_t)addr};
    struct idm_rep_VMM_RETAIN rp;
    if ((r = VGPU_CALL(v, VMM_RETAIN, &rq, &rp)) == CUDA_SUCCESS)
        *handle = rp.handle;
    return r;
}

CUresult cuMemGetAllocationPropertiesFromHandle(CUmemAllocationProp *prop,
                                                CUmemGenericAllocationHandle handle)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    if (prop == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_VMM_GET_PROPS rq = {.handle = handle};
    struct idm_rep_VMM_GET_PROPS rp;
    if ((r = VGPU_CALL(v, VMM_GET_PROPS, &rq, &rp)) != CUDA_SUCCESS)
        return r;
    memset(prop, 0, sizeof(*prop));
    prop->type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop->location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop->location.id = rp.device;
    prop->requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
    return CUDA_SUCCESS;
}

CUresult cuMemExportToShareableHandle(void *shareableHandle, CUmemGenericAllocationHandle handle,
                                      CUmemAllocationHandleType handleType,
                                      unsigned long long flags)
{
    (void)shareableHandle;
    (void)flags;
    VLOG(VGPU_LOG_WARN, "cuMemExportToShareableHandle(0x%llx, type 0x%x) refused: the memory "
                        "lives behind the proxy, in another domain; no handle of it can be "
                        "handed to this process", (unsigned long long)handle,
         (unsigned)handleType);
    return CUDA_ERROR_NOT_SUPPORTED;
}

CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *handle, void *osHandle,
                                        CUmemAllocationHandleType shHandleType)
{
    (void)handle;
    (void)osHandle;
    VLOG(VGPU_LOG_WARN, "cuMemImportFromShareableHandle(type 0x%x) refused: memory of another "
                        "process cannot be imported into a zone", (unsigned)shHandleType);
    return CUDA_ERROR_NOT_SUPPORTED;
}

/* ---- mappings ---- */

CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset,
                  CUmemGenericAllocationHandle handle, unsigned long long flags)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_VMM_MAP rq = {.ptr = ptr, .size = size, .offset = offset, .handle = handle};
    struct idm_rep_VMM_MAP rp;
    return VGPU_CALL(v, VMM_MAP, &rq, &rp);
}

CUresult cuMemUnmap(CUdeviceptr ptr, size_t size)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_VMM_UNMAP rq = {.ptr = ptr, .size = size};
    struct idm_rep_VMM_UNMAP rp;
    return VGPU_CALL(v, VMM_UNMAP, &rq, &rp);
}

/* One access descriptor per device; each names one of our devices. */
CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc *desc, size_t count)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    if (desc == NULL || count == 0)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < count && r == CUDA_SUCCESS; i++) {
        if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE || desc[i].location.id < 0 ||
            desc[i].location.id >= v->device_count)
            return CUDA_ERROR_INVALID_DEVICE;
        struct idm_req_VMM_SET_ACCESS rq = {.ptr = ptr, .size = size, .flags = desc[i].flags};
        struct idm_rep_VMM_SET_ACCESS rp;
        r = VGPU_CALL(v, VMM_SET_ACCESS, &rq, &rp);
    }
    return r;
}

CUresult cuMemGetAccess(unsigned long long *flags, const CUmemLocation *location, CUdeviceptr ptr)
{
    struct vgpu *v;
    CUresult r = ready(&v);

    if (r != CUDA_SUCCESS)
        return r;
    if (flags == NULL || location == NULL || location->type != CU_MEM_LOCATION_TYPE_DEVICE ||
        location->id < 0 || location->id >= v->device_count)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_VMM_GET_ACCESS rq = {.ptr = ptr};
    struct idm_rep_VMM_GET_ACCESS rp;
    if ((r = VGPU_CALL(v, VMM_GET_ACCESS, &rq, &rp)) == CUDA_SUCCESS)
        *flags = rp.flags;
    return r;
}
