/* api_ipc.c - CUDA IPC memory handles: cuIpcGetMemHandle, cuIpcOpenMemHandle(_v2) and
 * cuIpcCloseMemHandle, forwarded to the zone's worker, which makes and checks the 64 opaque
 * bytes (gpu-proxy/dispatch_ipc.c); opened memory is recorded locally like an allocation of the
 * current context. IPC event handles stay fail-closed stubs (CUDA_ERROR_NOT_SUPPORTED). */
#include "vgpu_calls.h"

#include <string.h>

CUresult cuIpcGetMemHandle(CUipcMemHandle *pHandle, CUdeviceptr dptr)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (pHandle == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_IPC_MEM_EXPORT rq = {.dptr = dptr};
    struct idm_rep_IPC_MEM_EXPORT rp;
    _Static_assert(sizeof(pHandle->reserved) == sizeof(rp.handle), "64-byte handles");
    r = VGPU_CALL(v, IPC_MEM_EXPORT, &rq, &rp);
    if (r == CUDA_SUCCESS)
        memcpy(pHandle->reserved, rp.handle, sizeof(rp.handle));
    return r;
}

CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx;
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS || (r = vgpu_cur_ctx_handle(&ctx)) != CUDA_SUCCESS)
        return r;
    if (pdptr == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_IPC_MEM_OPEN rq = {.ctx = ctx, .flags = Flags};
    struct idm_rep_IPC_MEM_OPEN rp;
    memcpy(rq.handle, handle.reserved, sizeof(rq.handle));
    pthread_mutex_lock(&v->lock);
    r = vgpu_call_IPC_MEM_OPEN_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    if (r == CUDA_SUCCESS && vgpu_alloc_add_locked(v, rp.dptr, rp.size, 0, ctx) < 0) {
        struct idm_req_IPC_MEM_CLOSE cq = {.dptr = rp.dptr};
        struct idm_rep_IPC_MEM_CLOSE cp;
        (void)vgpu_call_IPC_MEM_CLOSE_locked(v, &cq, NULL, 0, &cp, NULL, 0, NULL);
        r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&v->lock);
    if (r == CUDA_SUCCESS)
        *pdptr = rp.dptr;
    return r;
}

CUresult cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int Flags)
{
    return cuIpcOpenMemHandle_v2(pdptr, handle, Flags);
}

CUresult cuIpcCloseMemHandle(CUdeviceptr dptr)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_IPC_MEM_CLOSE rq = {.dptr = dptr};
    struct idm_rep_IPC_MEM_CLOSE rp;
    pthread_mutex_lock(&v->lock);
    r = vgpu_call_IPC_MEM_CLOSE_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    if (r == CUDA_SUCCESS && rp.opens == 0)
        vgpu_alloc_remove_locked(v, dptr);
    pthread_mutex_unlock(&v->lock);
    return r;
}
