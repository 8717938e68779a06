/* dispatch_ctx.c - context handlers: primary contexts (retained per session, released with
 * everything they own), regular contexts, synchronisation and limits. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <stdlib.h>

/* The largest device printf FIFO a context may ask for: what one launch may print (into the
 * zone worker's log on the simulated GPU; a real GPU's driver allocates it in device memory). */
#define PRINTF_FIFO_MAX (16ull << 20)

static CUresult new_ctx(struct rq *r, int primary, uint32_t flags, idm_handle *out)
{
    struct ctx_obj *c = calloc(1, sizeof(*c));
    int err;

    if (c == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    c->primary = primary;
    c->flags = flags;
    c->limits[CU_LIMIT_STACK_SIZE] = 1024;
    c->limits[CU_LIMIT_PRINTF_FIFO_SIZE] = 1 << 20;
    c->limits[CU_LIMIT_MALLOC_HEAP_SIZE] = 8 << 20;
    c->limits[CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH] = 2;
    c->limits[CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT] = 2048;
    c->limits[CU_LIMIT_MAX_L2_FETCH_GRANULARITY] = 32;
    c->limits[CU_LIMIT_PERSISTING_L2_CACHE_SIZE] = 0;
    c->limits[CU_LIMIT_SHMEM_SIZE] = 0;  /* not a CIG context */
    c->limits[CU_LIMIT_CIG_ENABLED] = 0;
    c->limits[CU_LIMIT_CIG_SHMEM_FALLBACK_ENABLED] = 1;
    err = htab_insert(&r->s->ht, HT_CTX, c, out);
    if (err != 0)
        free(c);
    return cu_from_errno(err);
}

CUresult h_PRIMARY_CTX_RETAIN(struct rq *r, const struct idm_req_PRIMARY_CTX_RETAIN *q,
                              struct idm_rep_PRIMARY_CTX_RETAIN *p)
{
    struct session *s = r->s;
    CUresult rc;

    if ((rc = rq_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    if (s->primary_ctx == 0) {
        if ((rc = new_ctx(r, 1, s->primary_flags, &s->primary_ctx)) != CUDA_SUCCESS)
            return rc;
        s->primary_refs = 0;
    }
    s->primary_refs++;
    p->ctx = s->primary_ctx;
    return CUDA_SUCCESS;
}

CUresult h_PRIMARY_CTX_RELEASE(struct rq *r, const struct idm_req_PRIMARY_CTX_RELEASE *q,
                               struct idm_rep_PRIMARY_CTX_RELEASE *p)
{
    struct session *s = r->s;
    CUresult rc;

    (void)p;
    if ((rc = rq_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    if (s->primary_ctx == 0 || s->primary_refs <= 0)
        return rq_refuse(r, CUDA_ERROR_INVALID_CONTEXT, "the primary context is not retained");
    if (--s->primary_refs == 0)
        session_release(s, s->primary_ctx); /* the last reference destroys the context */
    return CUDA_SUCCESS;
}

CUresult h_PRIMARY_CTX_RESET(struct rq *r, const struct idm_req_PRIMARY_CTX_RESET *q,
                             struct idm_rep_PRIMARY_CTX_RESET *p)
{
    CUresult rc;

    (void)p;
    if ((rc = rq_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    if (r->s->primary_ctx)
        session_release(r->s, r->s->primary_ctx);
    return CUDA_SUCCESS;
}

CUresult h_PRIMARY_CTX_SET_FLAGS(struct rq *r, const struct idm_req_PRIMARY_CTX_SET_FLAGS *q,
                                 struct idm_rep_PRIMARY_CTX_SET_FLAGS *p)
{
    CUresult rc;

    (void)p;
    if ((rc = rq_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    if (q->flags & ~0x1Fu)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "unknown context flags 0x%x", q->flags);
    r->s->primary_flags = q->flags;
    return CUDA_SUCCESS;
}

CUresult h_PRIMARY_CTX_GET_STATE(struct rq *r, const struct idm_req_PRIMARY_CTX_GET_STATE *q,
                                 struct idm_rep_PRIMARY_CTX_GET_STATE *p)
{
    CUresult rc;

    if ((rc = rq_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    p->flags = r->s->primary_flags;
    p->active = r->s->primary_ctx != 0 && r->s->primary_refs > 0;
    return CUDA_SUCCESS;
}

CUresult h_CTX_CREATE(struct rq *r, const struct idm_req_CTX_CREATE *q,
                      struct idm_rep_CTX_CREATE *p)
{
    CUresult rc;

    if ((rc = rq_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    return new_ctx(r, 0, q->flags, &p->ctx);
}

CUresult h_CTX_DESTROY(struct rq *r, const struct idm_req_CTX_DESTROY *q,
                       struct idm_rep_CTX_DESTROY *p)
{
    struct ctx_obj *c = rq_lookup(r, q->ctx, HT_CTX);

    (void)p;
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (c->primary)
        return rq_refuse(r, CUDA_ERROR_INVALID_CONTEXT,
                         "context 0x%llx is the primary context (released, not destroyed)",
                         (unsigned long long)q->ctx);
    session_release(r->s, q->ctx);
    return CUDA_SUCCESS;
}

CUresult h_CTX_SYNCHRONIZE(struct rq *r, const struct idm_req_CTX_SYNCHRONIZE *q,
                           struct idm_rep_CTX_SYNCHRONIZE *p)
{
    idm_handle ctx;
    CUresult rc;

    (void)p;
    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    session_drain(r->s);
    return rq_sync_latched(r, NULL, r->s->be->zone_sync(r->s->bz));
}

CUresult h_CTX_GET_LIMIT(struct rq *r, const struct idm_req_CTX_GET_LIMIT *q,
                         struct idm_rep_CTX_GET_LIMIT *p)
{
    idm_handle ctx;
    CUresult rc;

    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if (q->limit >= CU_LIMIT_MAX)
        return rq_refuse(r, CUDA_ERROR_UNSUPPORTED_LIMIT, "unknown limit %u", q->limit);
    p->value = ((struct ctx_obj *)htab_lookup(&r->s->ht, ctx, HT_CTX))->limits[q->limit];
    return CUDA_SUCCESS;
}

/* The real backend's device heap: the driver keeps one for the worker's context (all of the
 * zone's clients), sized here; the zone is charged the size before the driver gets it, and the
 * old charge is restored when the driver refuses (a kernel using malloc has run, as CUDA
 * documents). The driver's default heap (8 MiB) is its own until a size is set. */
static CUresult set_driver_heap(struct rq *r, uint64_t bytes)
{
    struct zone *z = r->s->zone;
    uint64_t old;
    CUresult rc;

    pthread_mutex_lock(&z->lock);
    old = z->heap_charged;
    pthread_mutex_unlock(&z->lock);
    if (zone_recharge(z, &z->heap_charged, bytes) != 0)
        return rq_refuse_as(r, WM_REF_QUOTA, CUDA_ERROR_OUT_OF_MEMORY,
                            "a device heap of %llu bytes exceeds the zone's quota of %llu",
                            (unsigned long long)bytes, (unsigned long long)z->quota);
    rc = r->s->be->set_limit(r->s->bz, CU_LIMIT_MALLOC_HEAP_SIZE, bytes);
    if (rc != CUDA_SUCCESS) {
        if (zone_recharge(z, &z->heap_charged, old) != 0)
            log_error("zone=%s %s: restoring the device heap's charge of %llu bytes failed",
                      ZN(r), PEER(r), (unsigned long long)old);
        return rq_refuse(r, rc, "the driver refused a device heap of %llu bytes (CUresult %d)",
                         (unsigned long long)bytes, rc);
    }
    return CUDA_SUCCESS;
}

CUresult h_CTX_SET_LIMIT(struct rq *r, const struct idm_req_CTX_SET_LIMIT *q,
                         struct idm_rep_CTX_SET_LIMIT *p)
{
    struct ctx_obj *c;
    idm_handle ctx;
    CUresult rc;

    (void)p;
    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    /* CU_LIMIT_SHMEM_SIZE and CU_LIMIT_CIG_ENABLED can only be queried */
    if (q->limit >= CU_LIMIT_MAX || q->limit == CU_LIMIT_SHMEM_SIZE ||
        q->limit == CU_LIMIT_CIG_ENABLED)
        return rq_refuse(r, CUDA_ERROR_UNSUPPORTED_LIMIT, "limit %u is unknown or read-only",
                         q->limit);
    if (q->limit == CU_LIMIT_PRINTF_FIFO_SIZE && (q->value == 0 || q->value > PRINTF_FIFO_MAX))
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "a printf FIFO of %llu bytes (1 .. %llu)",
                         (unsigned long long)q->value, PRINTF_FIFO_MAX);
    c = htab_lookup(&r->s->ht, ctx, HT_CTX);
    /* cuCtxSetLimit: the heap size must be set before a kernel that uses malloc/free runs. */
    if (q->limit == CU_LIMIT_MALLOC_HEAP_SIZE && c->heap_made)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "the device heap's size after a kernel "
                         "that uses malloc/free was launched");
    if (q->limit == CU_LIMIT_MALLOC_HEAP_SIZE && r->s->be->set_limit != NULL &&
        (rc = set_driver_heap(r, q->value)) != CUDA_SUCCESS)
        return rc;
    c->limits[q->limit] = q->value;
    return CUDA_SUCCESS;
}
