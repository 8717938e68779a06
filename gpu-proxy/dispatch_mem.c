/* dispatch_mem.c - device memory handlers: allocation against the zone's quota, free, memory
 * info, address ranges and pointer attributes, and the copies and memsets (default stream inline,
 * other streams queued), every range checked against the session's allocation table. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int h_MEM_GET_INFO(struct rq *r, const struct idm_req_MEM_GET_INFO *q,
                   struct idm_rep_MEM_GET_INFO *p)
{
    struct zone *z = r->s->zone;
    uint64_t free_b, total_b, used;
    idm_handle ctx;
    int rc;

    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if ((rc = r->s->be->mem_info(&free_b, &total_b)) != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&z->lock);
    used = z->used;
    pthread_mutex_unlock(&z->lock);
    if (z->quota) {
        p->total = z->quota;
        p->free = used < z->quota ? z->quota - used : 0;
        if (p->free > free_b)
            p->free = free_b;
    } else {
        p->total = total_b;
        p->free = free_b;
    }
    return CUDA_SUCCESS;
}

/* Allocates zone memory: quota, zone address, backend memory, allocation-table entry. */
int dispatch_alloc(struct session *s, uint64_t size, uint8_t kind, idm_handle owner,
                   uint64_t *va, uint64_t *baddr_out)
{
    struct alloc a;
    uint64_t baddr;
    int rc;

    rc = zone_charge(s->zone, size, va);
    if (rc == -ENOMEM) {
        log_warn("zone=%s %s: allocation of %llu bytes refused: quota %llu bytes exceeded",
                 s->zone->name, s->peer, (unsigned long long)size,
                 (unsigned long long)s->zone->quota);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (rc != 0) {
        log_warn("zone=%s %s: allocation of %llu bytes refused: zone address space exhausted",
                 s->zone->name, s->peer, (unsigned long long)size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    rc = s->be->mem_alloc(s->bz, size, &baddr);
    if (rc != CUDA_SUCCESS) {
        log_warn("zone=%s %s: backend could not allocate %llu bytes (CUresult %d)",
                 s->zone->name, s->peer, (unsigned long long)size, rc);
        goto uncharge;
    }
    memset(&a, 0, sizeof(a));
    a.va = *va;
    a.size = size;
    a.charged = size;
    a.baddr = baddr;
    a.owner = owner;
    a.kind = kind;
    a.buffer_id = s->next_buffer_id++;
    pthread_rwlock_wrlock(&s->at_lock);
    rc = atab_insert(&s->at, &a);
    pthread_rwlock_unlock(&s->at_lock);
    if (rc != 0) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto free_backend;
    }
    if (baddr_out)
        *baddr_out = baddr;
    return CUDA_SUCCESS;

free_backend:
    s->be->mem_free(s->bz, baddr, size);
uncharge:
    zone_uncharge(s->zone, size);
    return rc;
}

int h_MEM_ALLOC(struct rq *r, const struct idm_req_MEM_ALLOC *q,
                struct idm_rep_MEM_ALLOC *p)
{
    idm_handle ctx;
    int rc;

    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if (q->size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    return dispatch_alloc(r->s, q->size, ALLOC_MEM, ctx, &p->dptr, NULL);
}

int h_MEM_FREE(struct rq *r, const struct idm_req_MEM_FREE *q, struct idm_rep_MEM_FREE *p)
{
    long i;

    (void)p;
    if (q->dptr == 0)
        return CUDA_SUCCESS;
    i = atab_find_base(&r->s->at, q->dptr);
    if (i < 0 || r->s->at.v[i].kind != ALLOC_MEM)
        return CUDA_ERROR_INVALID_VALUE;
    /* cuMemFree waits for the work that may still use the memory. */
    session_drain(r->s);
    r->s->be->zone_sync(r->s->bz);
    session_free_alloc(r->s, i);
    return CUDA_SUCCESS;
}

int h_MEM_GET_ADDRESS_RANGE(struct rq *r, const struct idm_req_MEM_GET_ADDRESS_RANGE *q,
                            struct idm_rep_MEM_GET_ADDRESS_RANGE *p)
{
    long i = atab_find(&r->s->at, q->dptr, 1);

    if (i < 0)
        return CUDA_ERROR_NOT_FOUND;
    p->base = r->s->at.v[i].va;
    p->size = r->s->at.v[i].size;
    return CUDA_SUCCESS;
}

int h_MEMCPY_HTOD(struct rq *r, const struct idm_req_MEMCPY_HTOD *q,
                  struct idm_rep_MEMCPY_HTOD *p)
{
    struct stream_obj *st;
    const uint8_t *src;
    uint8_t *w;
    uint64_t dst;
    int rc;

    (void)p;
    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (q->len == 0)
        return CUDA_SUCCESS;
    if (q->win_len == 0) {
        if (q->len > r->tail_len)
            return CUDA_ERROR_INVALID_VALUE;
        src = r->tail;
    } else {
        if (q->len > q->win_len)
            return CUDA_ERROR_INVALID_VALUE;
        if ((rc = rq_win_range(r, q->win_off, q->len, &w)) != CUDA_SUCCESS)
            return rc;
        src = w;
    }
    if ((rc = rq_dev_range(r, q->dst, q->len, &dst)) != CUDA_SUCCESS)
        return rc;
    /* Inline data lives in the request message: copy it inline; window data may be queued. */
    if (st != NULL && q->win_len != 0) {
        struct stream_op *op = rq_new_op(SOP_HTOD);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        op->dst = dst;
        op->host = w;
        op->len = q->len;
        return rq_defer(r, st, op);
    }
    if (st != NULL)
        stream_wait(st, st->enq_seq);
    else
        rq_default_stream_enter(r);
    return r->s->be->memcpy_htod(r->s->bz, st ? st->bs : NULL, dst, src, q->len);
}

int h_MEMCPY_DTOH(struct rq *r, const struct idm_req_MEMCPY_DTOH *q,
                  struct idm_rep_MEMCPY_DTOH *p)
{
    struct stream_obj *st;
    uint8_t *dstp;
    uint64_t src;
    int rc;

    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (rq_sticky(r))
        return rq_sticky(r);
    if (q->len == 0) {
        p->len = 0;
        return CUDA_SUCCESS;
    }
    if (q->win_len == 0) {
        if (q->len > r->rtail_max)
            return CUDA_ERROR_INVALID_VALUE;
        dstp = r->rtail;
    } else {
        if (q->len > q->win_len)
            return CUDA_ERROR_INVALID_VALUE;
        if ((rc = rq_win_range(r, q->win_off, q->len, &dstp)) != CUDA_SUCCESS)
            return rc;
    }
    if ((rc = rq_dev_range(r, q->src, q->len, &src)) != CUDA_SUCCESS)
        return rc;
    if (st != NULL) {
        /* Answered by the stream's worker once the data is there. */
        struct stream_op *op = rq_new_op(SOP_DTOH);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        op->src = src;
        op->host = q->win_len ? dstp : NULL;
        op->len = q->len;
        return rq_defer(r, st, op);
    }
    rq_default_stream_enter(r);
    rc = r->s->be->memcpy_dtoh(r->s->bz, NULL, dstp, src, q->len);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (q->win_len == 0)
        r->rtail_len = (uint32_t)q->len;
    p->len = q->len;
    return CUDA_SUCCESS;
}

int h_MEMCPY_DTOD(struct rq *r, const struct idm_req_MEMCPY_DTOD *q,
                  struct idm_rep_MEMCPY_DTOD *p)
{
    struct stream_obj *st;
    uint64_t dst, src;
    int rc;

    (void)p;
    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (q->len == 0)
        return CUDA_SUCCESS;
    if ((rc = rq_dev_range(r, q->dst, q->len, &dst)) != CUDA_SUCCESS ||
        (rc = rq_dev_range(r, q->src, q->len, &src)) != CUDA_SUCCESS)
        return rc;
    if (st != NULL) {
        struct stream_op *op = rq_new_op(SOP_DTOD);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        op->dst = dst;
        op->src = src;
        op->len = q->len;
        return rq_defer(r, st, op);
    }
    rq_default_stream_enter(r);
    return r->s->be->memcpy_dtod(r->s->bz, NULL, dst, src, q->len);
}

int h_MEMSET(struct rq *r, const struct idm_req_MEMSET *q, struct idm_rep_MEMSET *p)
{
    struct stream_obj *st;
    uint64_t row_bytes, span, pitch, dst;
    int rc;

    (void)p;
    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (q->elem_size != 1 && q->elem_size != 2 && q->elem_size != 4)
        return CUDA_ERROR_INVALID_VALUE;
    if (q->count == 0 || q->height == 0)
        return CUDA_SUCCESS;
    if (q->count > UINT64_MAX / q->elem_size)
        return CUDA_ERROR_INVALID_VALUE;
    if (q->dst % q->elem_size != 0)
        return CUDA_ERROR_INVALID_VALUE;
    row_bytes = q->count * q->elem_size;
    if (q->height == 1) {
        pitch = row_bytes;
        span = row_bytes;
    } else {
        pitch = q->pitch;
        if (pitch < row_bytes || q->height - 1 > (UINT64_MAX - row_bytes) / pitch)
            return CUDA_ERROR_INVALID_VALUE;
        span = pitch * (q->height - 1) + row_bytes;
    }
    if ((rc = rq_dev_range(r, q->dst, span, &dst)) != CUDA_SUCCESS)
        return rc;
    if (st != NULL) {
        struct stream_op *op = rq_new_op(SOP_MEMSET);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        op->dst = dst;
        op->value = q->value;
        op->elem_size = q->elem_size;
        op->width = q->count;
        op->pitch = pitch;
        op->height = q->height;
        return rq_defer(r, st, op);
    }
    rq_default_stream_enter(r);
    return r->s->be->memset(r->s->bz, NULL, dst, q->value, q->elem_size, q->count, pitch,
                            q->height);
}

int h_POINTER_GET_ATTRIBUTE(struct rq *r, const struct idm_req_POINTER_GET_ATTRIBUTE *q,
                            struct idm_rep_POINTER_GET_ATTRIBUTE *p)
{
    long i = atab_find(&r->s->at, q->ptr, 1);
    const struct alloc *a;

    if (i < 0)
        return CUDA_ERROR_INVALID_VALUE;
    a = &r->s->at.v[i];
    switch (q->attr) {
    case CU_POINTER_ATTRIBUTE_CONTEXT:
        if (a->kind == ALLOC_MEM) {
            p->value = a->owner;
        } else {
            struct library_obj *lib = htab_lookup(&r->s->ht, a->owner, HT_LIBRARY);
            p->value = lib ? lib->ctx : 0;
        }
        break;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: p->value = CU_MEMORYTYPE_DEVICE; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: p->value = q->ptr; break;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER: return CUDA_ERROR_INVALID_VALUE;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: p->value = 1; break;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID:
    case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID: p->value = a->buffer_id; break;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
    case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR: p->value = a->va; break;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
    case CU_POINTER_ATTRIBUTE_MAPPING_SIZE: p->value = a->size; break;
    case CU_POINTER_ATTRIBUTE_MAPPED: p->value = 1; break;
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
        p->value = CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE;
        break;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE: p->value = 0; break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}
