/* api_stream.c - streams and events. CUstream and CUevent are the proxy's opaque handles; the
 * legacy and per-thread default streams travel as handle 0. Records and waits are posted without
 * waiting; synchronize drains every reply first, so errors of earlier async work surface there.
 * A capturing stream's records and waits are capture bookkeeping (api_graph.c).
 * Stream attributes (cuStreamSetAttribute) are kept here: the ones a stream may carry are
 * performance hints that change no result, so they are checked, remembered and read back. */
#include "vgpu_calls.h"

#include <stdlib.h>
#include <string.h>

static CUresult enter(struct vgpu *v, idm_handle *ctx)
{
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    return vgpu_cur_ctx_handle(ctx);
}

/* ---- streams: what cuStreamCreate was told is remembered locally for the queries ---- */

/* The hints cuStreamSetAttribute accepts; zeroed means the driver's defaults. */
struct stream_attrs {
    CUaccessPolicyWindow window;
    CUsynchronizationPolicy sync_policy; /* 0: never set (reads as CU_SYNC_POLICY_AUTO) */
    CUlaunchMemSyncDomainMap domain_map;
    int domain_map_set;
    CUlaunchMemSyncDomain domain;
    unsigned nvlink_util_centric;
};

struct stream_rec {
    idm_handle h;
    unsigned flags;
    int priority;
    struct vgpu_ctx *ctx;
    unsigned long long id;
    struct stream_attrs attrs;
};

static struct stream_rec *streams;
static size_t nstreams, cap_streams;
static unsigned long long next_stream_id = 3; /* 1 and 2: the legacy and per-thread defaults */
static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;

static void stream_remember(idm_handle h, unsigned flags, int priority)
{
    pthread_mutex_lock(&streams_lock);
    if (nstreams == cap_streams) {
        size_t cap = cap_streams ? cap_streams * 2 : 16;
        struct stream_rec *n = realloc(streams, cap * sizeof *n);
        if (n == NULL) { /* the stream works; only its queries will say INVALID_HANDLE */
            pthread_mutex_unlock(&streams_lock);
            VLOG(VGPU_LOG_WARN, "out of memory recording stream %#llx", (unsigned long long)h);
            return;
        }
        streams = n;
        cap_streams = cap;
    }
    streams[nstreams++] = (struct stream_rec){.h = h, .flags = flags, .priority = priority,
                                              .ctx = vgpu_ctx_current(),
                                              .id = next_stream_id++};
    pthread_mutex_unlock(&streams_lock);
}

static void stream_forget(idm_handle h)
{
    pthread_mutex_lock(&streams_lock);
    for (size_t i = 0; i < nstreams; i++)
        if (streams[i].h == h) {
            streams[i] = streams[--nstreams];
            break;
        }
    pthread_mutex_unlock(&streams_lock);
}

/* The record of a stream (the defaults: flags 0, priority 0, the current context). */
static CUresult stream_lookup(CUstream s, struct stream_rec *out)
{
    idm_handle h = vgpu_stream_handle(s);
    if (h == 0) {
        *out = (struct stream_rec){.ctx = vgpu_ctx_current(),
                                   .id = s == CU_STREAM_PER_THREAD ? 2 : 1};
        return out->ctx ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
    }
    CUresult r = CUDA_ERROR_INVALID_HANDLE;
    pthread_mutex_lock(&streams_lock);
    for (size_t i = 0; i < nstreams; i++)
        if (streams[i].h == h) {
            *out = streams[i];
            r = CUDA_SUCCESS;
            break;
        }
    pthread_mutex_unlock(&streams_lock);
    return r;
}


/* ---- stream attributes ---- */

static struct stream_attrs default_stream_attrs; /* both default streams; under streams_lock */

/* Whether v is a valid value of stream attribute id; the reason goes to the log. */
static CUresult stream_attr_check(CUstreamAttrID id, const CUstreamAttrValue *v)
{
    const char *why = NULL;
    switch (id) {
    case CU_LAUNCH_ATTRIBUTE_ACCESS_POLICY_WINDOW: {
        const CUaccessPolicyWindow *w = &v->accessPolicyWindow;
        if (!(w->hitRatio >= 0.0f && w->hitRatio <= 1.0f) ||
            (unsigned)w->hitProp > CU_ACCESS_PROPERTY_PERSISTING ||
            (unsigned)w->missProp > CU_ACCESS_PROPERTY_PERSISTING)
            why = "hit ratio outside [0, 1] or an unknown access property";
        break;
    }
    case CU_LAUNCH_ATTRIBUTE_SYNCHRONIZATION_POLICY:
        if (v->syncPolicy < CU_SYNC_POLICY_AUTO || v->syncPolicy > CU_SYNC_POLICY_BLOCKING_SYNC)
            why = "unknown synchronization policy";
        break;
    case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN:
        if ((unsigned)v->memSyncDomain > CU_LAUNCH_MEM_SYNC_DOMAIN_REMOTE)
            why = "unknown memory synchronization domain";
        break;
    case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
    case CU_LAUNCH_ATTRIBUTE_NVLINK_UTIL_CENTRIC_SCHEDULING:
        break;
    case CU_LAUNCH_ATTRIBUTE_PRIORITY:
        /* the proxy's stream keeps the priority it was created with */
        VLOG(VGPU_LOG_WARN, "cuStreamSetAttribute: changing a stream's priority is not "
                            "supported (create it with cuStreamCreateWithPriority)");
        return CUDA_ERROR_NOT_SUPPORTED;
    default:
        why = "not an attribute of streams";
    }
    if (why) {
        VLOG(VGPU_LOG_WARN, "cuStreamSetAttribute(attribute %d) refused: %s", (int)id, why);
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

static void stream_attr_put(struct stream_attrs *a, CUstreamAttrID id, const CUstreamAttrValue *v)
{
    switch (id) {
    case CU_LAUNCH_ATTRIBUTE_ACCESS_POLICY_WINDOW: a->window = v->accessPolicyWindow; break;
    case CU_LAUNCH_ATTRIBUTE_SYNCHRONIZATION_POLICY: a->sync_policy = v->syncPolicy; break;
    case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN: a->domain = v->memSyncDomain; break;
    case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
        a->domain_map = v->memSyncDomainMap;
        a->domain_map_set = 1;
        break;
    default: a->nvlink_util_centric = v->nvlinkUtilCentricScheduling; break;
    }
}

/* Reads attribute id of a stream record; the defaults are the driver's. */
static CUresult stream_attr_get(const struct stream_rec *rec, CUstreamAttrID id,
                                CUstreamAttrValue *v)
{
    const struct stream_attrs *a = &rec->attrs;
    memset(v, 0, sizeof(*v));
    switch (id) {
    case CU_LAUNCH_ATTRIBUTE_ACCESS_POLICY_WINDOW: v->accessPolicyWindow = a->window; break;
    case CU_LAUNCH_ATTRIBUTE_SYNCHRONIZATION_POLICY:
        v->syncPolicy = a->sync_policy ? a->sync_policy : CU_SYNC_POLICY_AUTO;
        break;
    case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN: v->memSyncDomain = a->domain; break;
    case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
        if (a->domain_map_set)
            v->memSyncDomainMap = a->domain_map;
        else
            v->memSyncDomainMap.remote = 1; /* default domain 0, remote domain 1 */
        break;
    case CU_LAUNCH_ATTRIBUTE_NVLINK_UTIL_CENTRIC_SCHEDULING:
        v->nvlinkUtilCentricScheduling = a->nvlink_util_centric;
        break;
    case CU_LAUNCH_ATTRIBUTE_PRIORITY: v->priority = rec->priority; break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

CUresult cuStreamSetAttribute(CUstream hStream, CUstreamAttrID attr,
                              const CUstreamAttrValue *value)
{
    struct stream_rec rec;
    if (value == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = stream_lookup(hStream, &rec);
    if (r == CUDA_SUCCESS)
        r = stream_attr_check(attr, value);
    if (r != CUDA_SUCCESS)
        return r;
    idm_handle h = vgpu_stream_handle(hStream);
    pthread_mutex_lock(&streams_lock);
    struct stream_attrs *a = h == 0 ? &default_stream_attrs : NULL;
    for (size_t i = 0; a == NULL && i < nstreams; i++)
        if (streams[i].h == h)
            a = &streams[i].attrs;
    if (a)
        stream_attr_put(a, attr, value);
    pthread_mutex_unlock(&streams_lock);
    return a ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuStreamGetAttribute(CUstream hStream, CUstreamAttrID attr, CUstreamAttrValue *value_out)
{
    struct stream_rec rec;
    if (value_out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = stream_lookup(hStream, &rec);
    if (r != CUDA_SUCCESS)
        return r;
    if (vgpu_stream_handle(hStream) == 0) {
        pthread_mutex_lock(&streams_lock);
        rec.attrs = default_stream_attrs;
        pthread_mutex_unlock(&streams_lock);
    }
    return stream_attr_get(&rec, attr, value_out);
}

CUresult cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags, int priority)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx;
    CUresult r = enter(v, &ctx);
    if (r != CUDA_SUCCESS)
        return r;
    if (phStream == NULL || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_STREAM_CREATE rq = {.ctx = ctx, .flags = flags, .priority = priority};
    struct idm_rep_STREAM_CREATE rp;
    r = VGPU_CALL(v, STREAM_CREATE, &rq, &rp);
    if (r == CUDA_SUCCESS) {
        stream_remember(rp.stream, flags, priority);
        *phStream = (CUstream)(uintptr_t)rp.stream;
    }
    return r;
}

CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags)
{
    return cuStreamCreateWithPriority(phStream, Flags, 0);
}

CUresult cuStreamDestroy_v2(CUstream hStream)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    idm_handle h = vgpu_stream_handle(hStream);
    if (h == 0)
        return CUDA_ERROR_INVALID_HANDLE;
    struct idm_req_STREAM_DESTROY rq = {.stream = h};
    struct idm_rep_STREAM_DESTROY rp;
    r = VGPU_CALL(v, STREAM_DESTROY, &rq, &rp);
    if (r == CUDA_SUCCESS)
        stream_forget(h);
    return r;
}

CUresult cuStreamDestroy(CUstream hStream)
{
    return cuStreamDestroy_v2(hStream);
}

#define STREAM_QUERY_FN(fn, type, arg, expr)                                                    \
    CUresult fn(CUstream hStream, type *arg)                                                    \
    {                                                                                           \
        struct stream_rec rec;                                                                  \
        if (arg == NULL)                                                                        \
            return CUDA_ERROR_INVALID_VALUE;                                                    \
        CUresult r = stream_lookup(hStream, &rec);                                              \
        if (r == CUDA_SUCCESS)                                                                  \
            *arg = (expr);                                                                      \
        return r;                                                                               \
    }
STREAM_QUERY_FN(cuStreamGetFlags, unsigned int, flags, rec.flags)
STREAM_QUERY_FN(cuStreamGetPriority, int, priority, rec.priority)
STREAM_QUERY_FN(cuStreamGetId, unsigned long long, streamId, rec.id)
STREAM_QUERY_FN(cuStreamGetCtx, CUcontext, pctx, vgpu_ctx_handle(rec.ctx))
STREAM_QUERY_FN(cuStreamGetDevice, CUdevice, device, rec.ctx ? rec.ctx->dev : 0)
#undef STREAM_QUERY_FN

CUresult cuStreamGetCtx_v2(CUstream hStream, CUcontext *pCtx, CUgreenCtx *pGreenCtx)
{
    if (pGreenCtx)
        *pGreenCtx = NULL; /* green contexts are not supported */
    return cuStreamGetCtx(hStream, pCtx);
}

static CUresult stream_sync(CUstream s)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS || (r = vgpu_capture_sync(s, "cuStreamSynchronize")) != CUDA_SUCCESS)
        return r;
    pthread_mutex_lock(&v->lock);
    CUresult a = vgpu_drain_locked(v);
    struct idm_req_STREAM_SYNCHRONIZE rq = {.stream = vgpu_stream_handle(s)};
    struct idm_rep_STREAM_SYNCHRONIZE rp;
    r = vgpu_call_STREAM_SYNCHRONIZE_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    CUresult m = vgpu_managed_synced_locked(v, VGPU_SYNC_STREAM, rq.stream);
    pthread_mutex_unlock(&v->lock);
    return a != CUDA_SUCCESS ? a : r != CUDA_SUCCESS ? r : m;
}

CUresult cuStreamSynchronize(CUstream hStream)
{
    return stream_sync(hStream);
}

static CUresult stream_query(CUstream s)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS || (r = vgpu_capture_sync(s, "cuStreamQuery")) != CUDA_SUCCESS)
        return r;
    pthread_mutex_lock(&v->lock);
    vgpu_poll_locked(v);
    if (v->npending > 0) {
        pthread_mutex_unlock(&v->lock);
        return CUDA_ERROR_NOT_READY;
    }
    CUresult a = vgpu_take_async_error_locked(v);
    struct idm_req_STREAM_QUERY rq = {.stream = vgpu_stream_handle(s)};
    struct idm_rep_STREAM_QUERY rp;
    r = vgpu_call_STREAM_QUERY_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    if (a == CUDA_SUCCESS && r == CUDA_SUCCESS) /* done: as a synchronisation */
        r = vgpu_managed_synced_locked(v, VGPU_SYNC_STREAM, rq.stream);
    pthread_mutex_unlock(&v->lock);
    return a != CUDA_SUCCESS ? a : r;
}

CUresult cuStreamQuery(CUstream hStream)
{
    return stream_query(hStream);
}

static CUresult stream_wait_event(CUstream s, CUevent e, unsigned flags)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (e == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((r = vgpu_capture_wait(s, e)) != VGPU_NOT_CAPTURED) /* a capture's join */
        return r;
    struct idm_req_STREAM_WAIT_EVENT rq = {.stream = vgpu_stream_handle(s),
                                           .event = (idm_handle)(uintptr_t)e, .flags = flags};
    pthread_mutex_lock(&v->lock);
    r = vgpu_send_STREAM_WAIT_EVENT_locked(v, &rq, NULL, 0);
    pthread_mutex_unlock(&v->lock);
    return r;
}

CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags)
{
    return stream_wait_event(hStream, hEvent, Flags);
}

/* Stream capture: api_graph.c. */

/* ---- events ---- */

CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx;
    CUresult r = enter(v, &ctx);
    if (r != CUDA_SUCCESS)
        return r;
    if (phEvent == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_EVENT_CREATE rq = {.ctx = ctx, .flags = Flags};
    struct idm_rep_EVENT_CREATE rp;
    r = VGPU_CALL(v, EVENT_CREATE, &rq, &rp);
    if (r == CUDA_SUCCESS && (Flags & CU_EVENT_INTERPROCESS) &&
        vgpu_ipc_event_note((CUevent)(uintptr_t)rp.event, 1) < 0) {
        struct idm_req_EVENT_DESTROY dq = {.event = rp.event};
        struct idm_rep_EVENT_DESTROY dp;
        (void)VGPU_CALL(v, EVENT_DESTROY, &dq, &dp);
        r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (r == CUDA_SUCCESS)
        *phEvent = (CUevent)(uintptr_t)rp.event;
    return r;
}

CUresult cuEventDestroy_v2(CUevent hEvent)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_EVENT_DESTROY rq = {.event = (idm_handle)(uintptr_t)hEvent};
    struct idm_rep_EVENT_DESTROY rp;
    pthread_mutex_lock(&v->lock);
    vgpu_managed_event_forget_locked(rq.event);
    pthread_mutex_unlock(&v->lock);
    r = VGPU_CALL(v, EVENT_DESTROY, &rq, &rp);
    if (r == CUDA_SUCCESS)
        (void)vgpu_ipc_event_note(hEvent, 0);
    return r;
}

CUresult cuEventDestroy(CUevent hEvent)
{
    return cuEventDestroy_v2(hEvent);
}

static CUresult event_record(CUevent e, CUstream s, unsigned flags)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (e == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((r = vgpu_capture_record(e, s)) != VGPU_NOT_CAPTURED) /* a capture's fork */
        return r;
    struct idm_req_EVENT_RECORD rq = {.event = (idm_handle)(uintptr_t)e,
                                      .stream = vgpu_stream_handle(s), .flags = flags};
    pthread_mutex_lock(&v->lock);
    r = vgpu_send_EVENT_RECORD_locked(v, &rq, NULL, 0);
    if (r == CUDA_SUCCESS) { /* its synchronisation ends the GPU work queued before it */
        vgpu_managed_event_record_locked(rq.event, s);
        vgpu_ipc_event_recorded_locked(v, e);
    }
    pthread_mutex_unlock(&v->lock);
    return r;
}

CUresult cuEventRecord(CUevent hEvent, CUstream hStream)
{
    return event_record(hEvent, hStream, 0);
}

CUresult cuEventRecordWithFlags(CUevent hEvent, CUstream hStream, unsigned int flags)
{
    return event_record(hEvent, hStream, flags);
}

CUresult cuEventSynchronize(CUevent hEvent)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    pthread_mutex_lock(&v->lock);
    CUresult a = vgpu_drain_locked(v);
    struct idm_req_EVENT_SYNCHRONIZE rq = {.event = (idm_handle)(uintptr_t)hEvent};
    struct idm_rep_EVENT_SYNCHRONIZE rp;
    r = vgpu_call_EVENT_SYNCHRONIZE_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    CUresult m = vgpu_managed_synced_locked(v, VGPU_SYNC_EVENT, rq.event);
    pthread_mutex_unlock(&v->lock);
    return a != CUDA_SUCCESS ? a : r != CUDA_SUCCESS ? r : m;
}

CUresult cuEventQuery(CUevent hEvent)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    pthread_mutex_lock(&v->lock);
    vgpu_poll_locked(v);
    if (v->npending > 0) {
        pthread_mutex_unlock(&v->lock);
        return CUDA_ERROR_NOT_READY;
    }
    struct idm_req_EVENT_QUERY rq = {.event = (idm_handle)(uintptr_t)hEvent};
    struct idm_rep_EVENT_QUERY rp;
    r = vgpu_call_EVENT_QUERY_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    if (r == CUDA_SUCCESS) /* done: as a synchronisation */
        r = vgpu_managed_synced_locked(v, VGPU_SYNC_EVENT, rq.event);
    pthread_mutex_unlock(&v->lock);
    return r;
}

CUresult cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (pMilliseconds == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_EVENT_ELAPSED_TIME rq = {.start = (idm_handle)(uintptr_t)hStart,
                                            .end = (idm_handle)(uintptr_t)hEnd};
    struct idm_rep_EVENT_ELAPSED_TIME rp;
    pthread_mutex_lock(&v->lock);
    vgpu_poll_locked(v);
    r = vgpu_call_EVENT_ELAPSED_TIME_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    pthread_mutex_unlock(&v->lock);
    if (r == CUDA_SUCCESS)
        *pMilliseconds = rp.ms;
    return r;
}

CUresult cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd)
{
    return cuEventElapsedTime_v2(pMilliseconds, hStart, hEnd);
}

/* ---- host functions: run on the calling thread once the stream's earlier work is done (the
 * order CUDA guarantees; the caller waits for it, which CUDA permits but does not require) ---- */

static CUresult host_call(CUstream s, void (*fn)(CUstream, CUresult, void *), CUhostFn hfn,
                          void *user)
{
    if (fn == NULL && hfn == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = vgpu_capture_refuse(s, "a host function (host nodes)");
    if (r != VGPU_NOT_CAPTURED)
        return r;
    r = stream_sync(s);
    if (hfn != NULL) {
        if (r != CUDA_SUCCESS)
            return r; /* the work before it failed: the function is not run */
        hfn(user);
        return CUDA_SUCCESS;
    }
    fn(s, r, user);
    return CUDA_SUCCESS;
}

CUresult cuLaunchHostFunc(CUstream hStream, CUhostFn fn, void *userData)
{
    return host_call(hStream, NULL, fn, userData);
}

CUresult cuStreamAddCallback(CUstream hStream, CUstreamCallback callback, void *userData,
                             unsigned int flags)
{
    if (flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    return host_call(hStream, callback, NULL, userData);
}

