/* dispatch_mem.c - device memory handlers: allocation against the zone's quota, free, memory
 * info, address ranges and pointer attributes, and the copies and memsets (default stream inline,
 * other streams queued), every range checked against the session's allocation table. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

CUresult h_MEM_GET_INFO(struct rq *r, const struct idm_req_MEM_GET_INFO *q,
                        struct idm_rep_MEM_GET_INFO *p)
{
    struct zone *z = r->s->zone;
    uint64_t free_b, total_b, used;
    idm_handle ctx;
    CUresult rc;

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

/* Allocates zone memory: quota, zone address (the backend's own address where the backend has
 * real addresses), backend memory (zeroed), allocation-table entry. */
CUresult dispatch_alloc(struct rq *r, uint64_t size, uint8_t kind, idm_handle owner,
                        uint64_t *va, uint64_t *baddr_out)
{
    struct session *s = r->s;
    int real = s->be->real_addresses;
    struct alloc a;
    uint64_t baddr;
    CUresult rc;
    int err;

    err = zone_charge(s->zone, size, real ? NULL : va);
    if (err == -ENOMEM)
        return rq_refuse_as(r, WM_REF_QUOTA, cu_from_errno(err),
                            "%llu bytes exceed the zone's quota of %llu",
                            (unsigned long long)size, (unsigned long long)s->zone->quota);
    if (err != 0)
        return rq_refuse(r, cu_from_errno(err),
                         "%llu bytes do not fit the zone's remaining address space",
                         (unsigned long long)size);
    rc = s->be->mem_alloc(s->bz, size, &baddr);
    if (rc != CUDA_SUCCESS) {
        (void)rq_refuse(r, rc, "the backend could not allocate %llu bytes (CUresult %d)",
                        (unsigned long long)size, rc);
        goto uncharge;
    }
    if (real)
        *va = baddr;
    memset(&a, 0, sizeof(a));
    a.va = *va;
    a.size = size;
    a.charged = size;
    a.baddr = baddr;
    a.owner = owner;
    a.kind = kind;
    a.buffer_id = s->next_buffer_id++;
    pthread_rwlock_wrlock(&s->at_lock);
    err = atab_insert(&s->at, &a);
    pthread_rwlock_unlock(&s->at_lock);
    if (err != 0) {
        rc = cu_from_errno(err);
        goto free_backend;
    }
    if (kind == ALLOC_MEM)
        zone_count_alloc(s->zone, +1);
    if (baddr_out)
        *baddr_out = baddr;
    return CUDA_SUCCESS;

free_backend:
    s->be->mem_free(s->bz, baddr, size);
uncharge:
    zone_uncharge(s->zone, size);
    return rc;
}

CUresult h_MEM_ALLOC(struct rq *r, const struct idm_req_MEM_ALLOC *q,
                     struct idm_rep_MEM_ALLOC *p)
{
    idm_handle ctx;
    CUresult rc;

    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if (q->size == 0)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "an allocation of 0 bytes");
    return dispatch_alloc(r, q->size, ALLOC_MEM, ctx, &p->dptr, NULL);
}

CUresult h_MEM_FREE(struct rq *r, const struct idm_req_MEM_FREE *q, struct idm_rep_MEM_FREE *p)
{
    long i;

    (void)p;
    if (q->dptr == 0)
        return CUDA_SUCCESS;
    i = atab_find_base(&r->s->at, q->dptr);
    if (i < 0 || r->s->at.v[i].kind != ALLOC_MEM)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "0x%llx is not the base of a memory allocation of the zone",
                         (unsigned long long)q->dptr);
    /* cuMemFree waits for the work that may still use the memory. */
    session_drain(r->s);
    r->s->be->zone_sync(r->s->bz);
    session_free_alloc(r->s, i);
    return CUDA_SUCCESS;
}

CUresult h_MEM_GET_ADDRESS_RANGE(struct rq *r, const struct idm_req_MEM_GET_ADDRESS_RANGE *q,
                                 struct idm_rep_MEM_GET_ADDRESS_RANGE *p)
{
    long i = atab_find(&r->s->at, q->dptr, 1);

    if (i < 0)
        return rq_refuse_as(r, WM_REF_DEVICE_RANGE, CUDA_ERROR_NOT_FOUND,
                            "0x%llx lies in no allocation of the zone",
                            (unsigned long long)q->dptr);
    p->base = r->s->at.v[i].va;
    p->size = r->s->at.v[i].size;
    return CUDA_SUCCESS;
}

/* ---- copies and memsets: prepare steps (stream.c issues them) ---- */

/* The source is the window range or the request tail (rq_bulk): inline data lives in the
 * request message, so such a copy is issued inline even on a stream (after its queue). */
static CUresult prep_htod(struct rq *r, const struct idm_req_MEMCPY_HTOD *q, struct stream_op *op,
                          struct stream_obj **st)
{
    CUresult rc;

    if ((rc = rq_stream(r, q->stream, st)) != CUDA_SUCCESS)
        return rc;
    if (q->len == 0)
        return CUDA_SUCCESS;
    if ((rc = rq_bulk(r, &op->hsrc, NULL)) != CUDA_SUCCESS)
        return rc;
    op->inline_only = r->bulk.win_len == 0;
    if ((rc = rq_dev_range(r, q->dst, q->len, &op->dst)) != CUDA_SUCCESS)
        return rc;
    op->kind = SOP_HTOD;
    op->len = q->len;
    return CUDA_SUCCESS;
}

/* The data goes to the window range or, inline, to the reply tail (rq_bulk: hdst NULL). */
static CUresult prep_dtoh(struct rq *r, const struct idm_req_MEMCPY_DTOH *q, struct stream_op *op,
                          struct stream_obj **st)
{
    CUresult rc;

    if ((rc = rq_stream(r, q->stream, st)) != CUDA_SUCCESS)
        return rc;
    if (rq_sticky(r))
        return rq_sticky(r);
    if (q->len == 0)
        return CUDA_SUCCESS; /* the reply's len stays 0 */
    if ((rc = rq_bulk(r, NULL, &op->hdst)) != CUDA_SUCCESS)
        return rc;
    if ((rc = rq_dev_range(r, q->src, q->len, &op->src)) != CUDA_SUCCESS)
        return rc;
    op->kind = SOP_DTOH;
    op->len = q->len;
    return CUDA_SUCCESS;
}

CUresult dispatch_prep_dtod(struct rq *r, const struct idm_req_MEMCPY_DTOD *q,
                           struct stream_op *op, struct stream_obj **st)
{
    CUresult rc;

    if ((rc = rq_stream(r, q->stream, st)) != CUDA_SUCCESS)
        return rc;
    if (q->len == 0)
        return CUDA_SUCCESS;
    if ((rc = rq_dev_range(r, q->dst, q->len, &op->dst)) != CUDA_SUCCESS ||
        (rc = rq_dev_range(r, q->src, q->len, &op->src)) != CUDA_SUCCESS)
        return rc;
    op->kind = SOP_DTOD;
    op->len = q->len;
    return CUDA_SUCCESS;
}

/* count elements of elem_size bytes per row, height rows pitch bytes apart, all inside one
 * allocation. */
CUresult dispatch_prep_memset(struct rq *r, const struct idm_req_MEMSET *q,
                             struct stream_op *op, struct stream_obj **st)
{
    uint64_t row_bytes, span, pitch;
    CUresult rc;

    if ((rc = rq_stream(r, q->stream, st)) != CUDA_SUCCESS)
        return rc;
    if (q->elem_size != 1 && q->elem_size != 2 && q->elem_size != 4)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "element size %u (1, 2 or 4)",
                         q->elem_size);
    if (q->count == 0 || q->height == 0)
        return CUDA_SUCCESS;
    if (q->count > UINT64_MAX / q->elem_size)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "%llu elements of %u bytes overflow",
                         (unsigned long long)q->count, q->elem_size);
    if (q->dst % q->elem_size != 0)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "0x%llx is not aligned to %u bytes",
                         (unsigned long long)q->dst, q->elem_size);
    row_bytes = q->count * q->elem_size;
    if (q->height == 1) {
        pitch = row_bytes;
        span = row_bytes;
    } else {
        pitch = q->pitch;
        if (pitch < row_bytes || q->height - 1 > (UINT64_MAX - row_bytes) / pitch)
            return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                             "pitch %llu for rows of %llu bytes, %llu rows",
                             (unsigned long long)pitch, (unsigned long long)row_bytes,
                             (unsigned long long)q->height);
        span = pitch * (q->height - 1) + row_bytes;
    }
    if ((rc = rq_dev_range(r, q->dst, span, &op->dst)) != CUDA_SUCCESS)
        return rc;
    op->kind = SOP_MEMSET;
    op->value = q->value;
    op->elem_size = q->elem_size;
    op->width = q->count;
    op->pitch = pitch;
    op->height = q->height;
    return CUDA_SUCCESS;
}

DISPATCH_ASYNC(MEMCPY_HTOD, prep_htod)
DISPATCH_ASYNC(MEMCPY_DTOH, prep_dtoh)
DISPATCH_ASYNC(MEMCPY_DTOD, dispatch_prep_dtod)
DISPATCH_ASYNC(MEMSET, dispatch_prep_memset)

CUresult h_POINTER_GET_ATTRIBUTE(struct rq *r, const struct idm_req_POINTER_GET_ATTRIBUTE *q,
                                 struct idm_rep_POINTER_GET_ATTRIBUTE *p)
{
    long i = atab_find(&r->s->at, q->ptr, 1);
    const struct alloc *a;

    if (i < 0)
        return rq_refuse_as(r, WM_REF_DEVICE_RANGE, CUDA_ERROR_INVALID_VALUE,
                            "0x%llx lies in no allocation of the zone",
                            (unsigned long long)q->ptr);
    a = &r->s->at.v[i];
    switch (q->attr) {
    case CU_POINTER_ATTRIBUTE_CONTEXT:
        if (a->kind == ALLOC_MEM || a->kind == ALLOC_HEAP || a->kind == ALLOC_IPC) {
            p->value = a->owner;
        } else {
            struct library_obj *lib = htab_lookup(&r->s->ht, a->owner, HT_LIBRARY);
            p->value = lib ? lib->ctx : 0;
        }
        break;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: p->value = CU_MEMORYTYPE_DEVICE; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: p->value = q->ptr; break;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER:
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "device memory has no host pointer");
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: p->value = 1; break;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID:
    case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID: p->value = a->buffer_id; break;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: p->value = a->kind == ALLOC_MEM; break;
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
    default:
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "unknown attribute %d", q->attr);
    }
    return CUDA_SUCCESS;
}
