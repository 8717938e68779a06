/* api_ctx.c - contexts: primary contexts (retain counts kept here, the proxy holds one
 * reference while any is held), regular contexts, the per-thread current-context stack (local
 * only), synchronisation, limits. Context-local storage destructors run when a primary context
 * is reset or finally released, and when a regular context is destroyed. */
#include "vgpu_calls.h"

#include <stdlib.h>
#include <string.h>

static __thread struct vgpu_ctx *ctx_stack[VGPU_CTX_STACK];
static __thread int ctx_depth;

/* Regular contexts ever created. A destroyed one's handle is refused from then on, but its
 * record is kept (h 0): another thread may still have it current (its calls then fail with
 * CUDA_ERROR_INVALID_CONTEXT). */
#define MAX_REGULAR 256
static struct vgpu_ctx *regular[MAX_REGULAR];
static unsigned nregular;
static pthread_mutex_t regular_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long long next_ctx_id = VGPU_MAX_DEVICES; /* 1..VGPU_MAX_DEVICES: primaries */

struct vgpu_ctx *vgpu_ctx_current(void)
{
    return ctx_depth > 0 ? ctx_stack[ctx_depth - 1] : NULL;
}

struct vgpu_ctx *vgpu_ctx_check(CUcontext c)
{
    return vgpu_handle_get((uint64_t)(uintptr_t)c, VGPU_H_CTX);
}

CUresult vgpu_cur_ctx_handle(idm_handle *out)
{
    struct vgpu_ctx *c = vgpu_ctx_current();
    if (c == NULL || c->h == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    *out = c->h;
    return CUDA_SUCCESS;
}

/* ---- the current-context stack ---- */

CUresult cuCtxGetCurrent(CUcontext *pctx)
{
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pctx = vgpu_ctx_handle(vgpu_ctx_current());
    VLOG(VGPU_LOG_TRACE, "cuCtxGetCurrent -> %p", (void *)*pctx);
    return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext ctx)
{
    VLOG(VGPU_LOG_TRACE, "cuCtxSetCurrent(%p), stack depth %d", (void *)ctx, ctx_depth);
    if (ctx == NULL) {
        if (ctx_depth > 0)
            ctx_depth--;
        return CUDA_SUCCESS;
    }
    struct vgpu_ctx *c = vgpu_ctx_check(ctx);
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx_depth == 0)
        ctx_depth = 1;
    ctx_stack[ctx_depth - 1] = c;
    return CUDA_SUCCESS;
}

CUresult cuCtxPushCurrent_v2(CUcontext ctx)
{
    struct vgpu_ctx *c = vgpu_ctx_check(ctx);
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (ctx_depth == VGPU_CTX_STACK)
        return CUDA_ERROR_OUT_OF_MEMORY;
    ctx_stack[ctx_depth++] = c;
    return CUDA_SUCCESS;
}

CUresult cuCtxPushCurrent(CUcontext ctx)
{
    return cuCtxPushCurrent_v2(ctx);
}

CUresult cuCtxPopCurrent_v2(CUcontext *pctx)
{
    if (ctx_depth == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    struct vgpu_ctx *c = ctx_stack[--ctx_depth];
    if (pctx)
        *pctx = vgpu_ctx_handle(c);
    return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent(CUcontext *pctx)
{
    return cuCtxPopCurrent_v2(pctx);
}

CUresult cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx)
{
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_ctx *c = ctx == NULL ? vgpu_ctx_current() : vgpu_ctx_check(ctx);
    VLOG(VGPU_LOG_TRACE, "cuCtxGetDevice(%p): context %p", (void *)ctx, (void *)c);
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    *device = c->dev;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice(CUdevice *device)
{
    return cuCtxGetDevice_v2(device, NULL);
}

CUresult cuCtxGetFlags(unsigned int *flags)
{
    struct vgpu_ctx *c = vgpu_ctx_current();
    if (flags == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    *flags = c->flags;
    return CUDA_SUCCESS;
}

/* Context ids: unique for the process's lifetime, as CUDA promises (primary: device + 1). */
CUresult cuCtxGetId(CUcontext ctx, unsigned long long *ctxId)
{
    struct vgpu_ctx *c = ctx == NULL ? vgpu_ctx_current() : vgpu_ctx_check(ctx);
    if (ctxId == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    *ctxId = c->id;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int *version)
{
    struct vgpu_ctx *c = ctx == NULL ? vgpu_ctx_current() : vgpu_ctx_check(ctx);
    if (version == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    *version = 3020; /* every context of a v2-API driver reports 3020 */
    return CUDA_SUCCESS;
}

CUresult cuCtxGetStreamPriorityRange(int *leastPriority, int *greatestPriority)
{
    if (leastPriority)
        *leastPriority = 0;
    if (greatestPriority)
        *greatestPriority = -5;
    return CUDA_SUCCESS;
}

CUresult cuCtxGetCacheConfig(CUfunc_cache *pconfig)
{
    if (pconfig == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pconfig = CU_FUNC_CACHE_PREFER_NONE;
    return CUDA_SUCCESS;
}

CUresult cuCtxSetCacheConfig(CUfunc_cache config)
{
    (void)config; /* a preference; the simulated and the real device may ignore it */
    return vgpu_ctx_current() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

/* ---- synchronisation and limits ---- */

static CUresult ctx_sync(struct vgpu_ctx *c)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS || (r = vgpu_capture_unsafe("cuCtxSynchronize")) != CUDA_SUCCESS)
        return r;
    if (c == NULL || c->h == 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    pthread_mutex_lock(&v->lock);
    CUresult a = vgpu_drain_locked(v);
    struct idm_req_CTX_SYNCHRONIZE rq = {.ctx = c->h};
    struct idm_rep_CTX_SYNCHRONIZE rp;
    r = vgpu_call_CTX_SYNCHRONIZE_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    CUresult m = vgpu_managed_synced_locked(v, VGPU_SYNC_CTX, 0); /* managed memory back */
    pthread_mutex_unlock(&v->lock);
    return a != CUDA_SUCCESS ? a : r != CUDA_SUCCESS ? r : m;
}

CUresult cuCtxSynchronize(void)
{
    return ctx_sync(vgpu_ctx_current());
}

CUresult cuCtxSynchronize_v2(CUcontext ctx)
{
    return ctx_sync(ctx == NULL ? vgpu_ctx_current() : vgpu_ctx_check(ctx));
}

CUresult cuCtxGetLimit(size_t *pvalue, CUlimit limit)
{
    struct vgpu *v = vgpu_get();
    idm_handle h;
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (pvalue == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = vgpu_cur_ctx_handle(&h)) != CUDA_SUCCESS)
        return r;
    if (limit == CU_LIMIT_CIG_ENABLED) { /* cuCtxCreate refuses CIG parameters: never one */
        *pvalue = 0;
        return CUDA_SUCCESS;
    }
    struct idm_req_CTX_GET_LIMIT rq = {.ctx = h, .limit = (uint32_t)limit};
    struct idm_rep_CTX_GET_LIMIT rp;
    r = VGPU_CALL(v, CTX_GET_LIMIT, &rq, &rp);
    if (r == CUDA_SUCCESS)
        *pvalue = rp.value;
    else
        VLOG(VGPU_LOG_DEBUG, "cuCtxGetLimit(%d) -> %d", (int)limit, r);
    return r;
}

CUresult cuCtxSetLimit(CUlimit limit, size_t value)
{
    struct vgpu *v = vgpu_get();
    idm_handle h;
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if ((r = vgpu_cur_ctx_handle(&h)) != CUDA_SUCCESS)
        return r;
    struct idm_req_CTX_SET_LIMIT rq = {.ctx = h, .value = value, .limit = (uint32_t)limit};
    struct idm_rep_CTX_SET_LIMIT rp;
    return VGPU_CALL(v, CTX_SET_LIMIT, &rq, &rp);
}

/* ---- primary contexts ---- */

static struct vgpu_ctx *primary_of(CUdevice dev, CUresult *err)
{
    struct vgpu *v = vgpu_get();
    if ((*err = vgpu_ready(v)) != CUDA_SUCCESS)
        return NULL;
    if (dev < 0 || dev >= v->device_count) {
        *err = CUDA_ERROR_INVALID_DEVICE;
        return NULL;
    }
    return &v->primary[dev];
}

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    struct vgpu *v = vgpu_get();
    CUresult r;
    struct vgpu_ctx *p = primary_of(dev, &r);
    if (p == NULL)
        return r;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&v->lock);
    if (p->refs == 0) {
        struct idm_req_PRIMARY_CTX_RETAIN rq = {.device = dev};
        struct idm_rep_PRIMARY_CTX_RETAIN rp;
        r = vgpu_call_PRIMARY_CTX_RETAIN_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
        if (r != CUDA_SUCCESS) {
            pthread_mutex_unlock(&v->lock);
            VLOG(VGPU_LOG_ERROR, "primary context of device %d: retain failed (%d)", dev, r);
            return r;
        }
        p->h = rp.ctx;
    }
    p->refs++;
    VLOG(VGPU_LOG_TRACE, "cuDevicePrimaryCtxRetain(%d) -> %p, %u references", dev, (void *)p,
         p->refs);
    pthread_mutex_unlock(&v->lock);
    *pctx = vgpu_ctx_handle(p);
    return CUDA_SUCCESS;
}

/* Ends the proxy's primary context after the last local reference: destructors first (they may
 * still call the driver), then the release or reset message. */
static CUresult primary_end(struct vgpu *v, struct vgpu_ctx *p, CUdevice dev, int reset)
{
    vgpu_cls_destroy_all(p);
    pthread_mutex_lock(&v->lock);
    CUresult a = vgpu_drain_locked(v);
    CUresult r;
    if (reset) {
        struct idm_req_PRIMARY_CTX_RESET rq = {.device = dev};
        struct idm_rep_PRIMARY_CTX_RESET rp;
        r = vgpu_call_PRIMARY_CTX_RESET_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    } else {
        struct idm_req_PRIMARY_CTX_RELEASE rq = {.device = dev};
        struct idm_rep_PRIMARY_CTX_RELEASE rp;
        r = vgpu_call_PRIMARY_CTX_RELEASE_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    }
    if (p->refs == 0) {
        /* the proxy freed the context's memory: forget our records of it */
        vgpu_alloc_forget_ctx_locked(v, p->h);
        p->h = 0;
    }
    pthread_mutex_unlock(&v->lock);
    (void)a; /* errors of abandoned work die with the context */
    return r;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    struct vgpu *v = vgpu_get();
    CUresult r;
    struct vgpu_ctx *p = primary_of(dev, &r);
    if (p == NULL)
        return r;
    pthread_mutex_lock(&v->lock);
    if (p->refs == 0) {
        pthread_mutex_unlock(&v->lock);
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    unsigned left = --p->refs;
    pthread_mutex_unlock(&v->lock);
    VLOG(VGPU_LOG_TRACE, "cuDevicePrimaryCtxRelease(%d): %u references left", dev, left);
    return left == 0 ? primary_end(v, p, dev, 0) : CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease(CUdevice dev)
{
    return cuDevicePrimaryCtxRelease_v2(dev);
}

CUresult cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
    struct vgpu *v = vgpu_get();
    CUresult r;
    struct vgpu_ctx *p = primary_of(dev, &r);
    if (p == NULL)
        return r;
    pthread_mutex_lock(&v->lock);
    int active = p->refs > 0;
    p->refs = 0;
    pthread_mutex_unlock(&v->lock);
    if (!active)
        return CUDA_SUCCESS;
    return primary_end(v, p, dev, 1);
}

CUresult cuDevicePrimaryCtxReset(CUdevice dev)
{
    return cuDevicePrimaryCtxReset_v2(dev);
}

CUresult cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
    struct vgpu *v = vgpu_get();
    CUresult r;
    struct vgpu_ctx *p = primary_of(dev, &r);
    if (p == NULL)
        return r;
    struct idm_req_PRIMARY_CTX_SET_FLAGS rq = {.device = dev, .flags = flags};
    struct idm_rep_PRIMARY_CTX_SET_FLAGS rp;
    r = VGPU_CALL(v, PRIMARY_CTX_SET_FLAGS, &rq, &rp);
    if (r == CUDA_SUCCESS)
        p->flags = flags;
    return r;
}

CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags)
{
    return cuDevicePrimaryCtxSetFlags_v2(dev, flags);
}

CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags, int *active)
{
    struct vgpu *v = vgpu_get();
    CUresult r;
    struct vgpu_ctx *p = primary_of(dev, &r);
    if (p == NULL)
        return r;
    if (flags == NULL || active == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_PRIMARY_CTX_GET_STATE rq = {.device = dev};
    struct idm_rep_PRIMARY_CTX_GET_STATE rp;
    r = VGPU_CALL(v, PRIMARY_CTX_GET_STATE, &rq, &rp);
    if (r == CUDA_SUCCESS) {
        *flags = rp.flags;
        *active = rp.active;
    }
    return r;
}

/* ---- regular contexts ---- */

static CUresult ctx_create(CUcontext *pctx, unsigned flags, CUdevice dev)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (pctx == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (dev < 0 || dev >= v->device_count)
        return CUDA_ERROR_INVALID_DEVICE;
    struct vgpu_ctx *c = calloc(1, sizeof *c);
    if (c == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    struct idm_req_CTX_CREATE rq = {.flags = flags, .device = dev};
    struct idm_rep_CTX_CREATE rp;
    r = VGPU_CALL(v, CTX_CREATE, &rq, &rp);
    if (r != CUDA_SUCCESS)
        goto fail_free;
    c->dev = dev;
    c->flags = flags;
    c->id = __atomic_add_fetch(&next_ctx_id, 1, __ATOMIC_RELAXED);
    c->h = rp.ctx;
    pthread_mutex_init(&c->cls_lock, NULL);
    pthread_mutex_lock(&regular_lock);
    if (nregular == MAX_REGULAR || (c->self = vgpu_handle_new(VGPU_H_CTX, c)) == 0) {
        pthread_mutex_unlock(&regular_lock);
        if (nregular == MAX_REGULAR)
            VLOG(VGPU_LOG_ERROR, "too many contexts created (%d)", MAX_REGULAR);
        struct idm_req_CTX_DESTROY dq = {.ctx = rp.ctx};
        struct idm_rep_CTX_DESTROY dp;
        (void)VGPU_CALL(v, CTX_DESTROY, &dq, &dp);
        r = CUDA_ERROR_OUT_OF_MEMORY;
        goto fail_free;
    }
    regular[nregular++] = c;
    pthread_mutex_unlock(&regular_lock);
    if ((r = cuCtxPushCurrent_v2(vgpu_ctx_handle(c))) != CUDA_SUCCESS)
        return r;
    *pctx = vgpu_ctx_handle(c);
    return CUDA_SUCCESS;

fail_free:
    free(c);
    return r;
}

CUresult cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    return ctx_create(pctx, flags, dev);
}

CUresult cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    return ctx_create(pctx, flags, dev);
}

CUresult cuCtxCreate_v3(CUcontext *pctx, CUexecAffinityParam *paramsArray, int numParams,
                        unsigned int flags, CUdevice dev)
{
    if (numParams > 0 || paramsArray != NULL) {
        VLOG(VGPU_LOG_WARN, "cuCtxCreate_v3: execution affinity is not supported");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return ctx_create(pctx, flags, dev);
}

CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams, unsigned int flags,
                        CUdevice dev)
{
    if (ctxCreateParams != NULL &&
        (ctxCreateParams->numExecAffinityParams > 0 || ctxCreateParams->cigParams != NULL)) {
        VLOG(VGPU_LOG_WARN, "cuCtxCreate: affinity and CIG parameters are not supported");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    return ctx_create(pctx, flags, dev);
}

CUresult cuCtxDestroy_v2(CUcontext ctx)
{
    struct vgpu *v = vgpu_get();
    struct vgpu_ctx *c = vgpu_ctx_check(ctx);
    if (c == NULL || c->primary)
        return CUDA_ERROR_INVALID_CONTEXT;
    vgpu_cls_destroy_all(c);
    pthread_mutex_lock(&v->lock);
    (void)vgpu_drain_locked(v);
    struct idm_req_CTX_DESTROY rq = {.ctx = c->h};
    struct idm_rep_CTX_DESTROY rp;
    CUresult r = vgpu_call_CTX_DESTROY_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    vgpu_alloc_forget_ctx_locked(v, c->h);
    pthread_mutex_unlock(&v->lock);
    (void)vgpu_handle_free(c->self, VGPU_H_CTX); /* record kept: see `regular` */
    c->h = 0;
    for (int i = 0; i < ctx_depth; i++)
        if (ctx_stack[i] == c) {
            memmove(&ctx_stack[i], &ctx_stack[i + 1],
                    (size_t)(ctx_depth - i - 1) * sizeof ctx_stack[0]);
            ctx_depth--;
            i--;
        }
    return r;
}

CUresult cuCtxDestroy(CUcontext ctx)
{
    return cuCtxDestroy_v2(ctx);
}

/* Profiler ranges: no profiler can attach through libvgpu, and a driver with none attached
 * accepts these and does nothing, so they succeed as no-ops (programs call them
 * unconditionally around the work they time). */
CUresult cuProfilerStart(void)
{
    return CUDA_SUCCESS;
}

CUresult cuProfilerStop(void)
{
    return CUDA_SUCCESS;
}
