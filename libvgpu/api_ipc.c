/* api_ipc.c - CUDA IPC handles: cuIpcGetMemHandle, cuIpcOpenMemHandle(_v2),
 * cuIpcCloseMemHandle, cuIpcGetEventHandle and cuIpcOpenEventHandle, forwarded to the zone's
 * worker, which makes and checks the 64 opaque bytes (gpu-proxy/dispatch_ipc.c); opened memory
 * is recorded locally like an allocation of the current context, an opened event is an event
 * handle like any other (cuEventDestroy frees it). A record of an interprocess event returns
 * once the worker holds it (CUDA: the record is enqueued when cuEventRecord returns), so that
 * the other process's wait that follows sees it. */
#include "vgpu_calls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- this process's interprocess events ---- */

static pthread_mutex_t ipc_events_lock = PTHREAD_MUTEX_INITIALIZER;
static CUevent *ipc_events; /* created with CU_EVENT_INTERPROCESS or opened */
static size_t n_ipc_events, cap_ipc_events;

static long ipc_event_index(CUevent e)
{
    for (size_t i = 0; i < n_ipc_events; i++)
        if (ipc_events[i] == e)
            return (long)i;
    return -1;
}

int vgpu_ipc_event_note(CUevent e, int live)
{
    int rc = 0;
    pthread_mutex_lock(&ipc_events_lock);
    long i = ipc_event_index(e);
    if (!live && i >= 0) {
        ipc_events[i] = ipc_events[--n_ipc_events];
    } else if (live && i < 0) {
        if (n_ipc_events == cap_ipc_events) {
            size_t cap = cap_ipc_events ? cap_ipc_events * 2 : 16;
            CUevent *a = realloc(ipc_events, cap * sizeof *a);
            if (a == NULL) {
                rc = -ENOMEM;
                goto out;
            }
            ipc_events = a;
            cap_ipc_events = cap;
        }
        ipc_events[n_ipc_events++] = e;
    }
out:
    pthread_mutex_unlock(&ipc_events_lock);
    return rc;
}

void vgpu_ipc_event_recorded_locked(struct vgpu *v, CUevent e)
{
    pthread_mutex_lock(&ipc_events_lock);
    int ipc = ipc_event_index(e) >= 0;
    pthread_mutex_unlock(&ipc_events_lock);
    if (!ipc)
        return;
    /* The worker answers requests of one connection in order: once this query is answered, the
     * record before it holds its place, and another process's wait that follows sees it. The
     * query's own answer (NOT_READY while the record waits in its stream) does not matter. */
    struct idm_req_EVENT_QUERY rq = {.event = (idm_handle)(uintptr_t)e};
    struct idm_rep_EVENT_QUERY rp;
    (void)vgpu_call_EVENT_QUERY_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
}

/* ---- memory ---- */

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

/* ---- events ---- */

CUresult cuIpcGetEventHandle(CUipcEventHandle *pHandle, CUevent event)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (pHandle == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_IPC_EVENT_EXPORT rq = {.event = (idm_handle)(uintptr_t)event};
    struct idm_rep_IPC_EVENT_EXPORT rp;
    _Static_assert(sizeof(pHandle->reserved) == sizeof(rp.handle), "64-byte handles");
    r = VGPU_CALL(v, IPC_EVENT_EXPORT, &rq, &rp);
    if (r == CUDA_SUCCESS)
        memcpy(pHandle->reserved, rp.handle, sizeof(rp.handle));
    return r;
}

CUresult cuIpcOpenEventHandle(CUevent *phEvent, CUipcEventHandle handle)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx;
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS || (r = vgpu_cur_ctx_handle(&ctx)) != CUDA_SUCCESS)
        return r;
    if (phEvent == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_IPC_EVENT_OPEN rq = {.ctx = ctx};
    struct idm_rep_IPC_EVENT_OPEN rp;
    memcpy(rq.handle, handle.reserved, sizeof(rq.handle));
    r = VGPU_CALL(v, IPC_EVENT_OPEN, &rq, &rp);
    if (r == CUDA_SUCCESS && vgpu_ipc_event_note((CUevent)(uintptr_t)rp.event, 1) < 0) {
        struct idm_req_EVENT_DESTROY dq = {.event = rp.event};
        struct idm_rep_EVENT_DESTROY dp;
        (void)VGPU_CALL(v, EVENT_DESTROY, &dq, &dp);
        r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (r == CUDA_SUCCESS)
        *phEvent = (CUevent)(uintptr_t)rp.event;
    return r;
}
