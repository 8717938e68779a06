/* dispatch_launch.c - the kernel launch: its prepare step checks grid, block, flags and
 * parameter bytes against the kernel's layout, takes the parameters (the request tail, or a
 * private copy of the window range for buffers that do not fit a message) and fills the launch
 * (with its context's printf FIFO size and device-side malloc heap, made here at the first
 * launch that needs it, the context it belongs to, for cancellation, and the cooperative flag);
 * stream.c issues it (default stream inline, other streams queued with their own copy of the
 * parameters). */
#include "dispatch_internal.h"

#include <cuda.h>
#include <stdlib.h>
#include <string.h>

CUresult dispatch_check_geometry(struct rq *r, const uint32_t grid[3], const uint32_t block[3])
{
    uint64_t threads = (uint64_t)block[0] * block[1] * block[2];

    for (int i = 0; i < 3; i++)
        if (grid[i] == 0 || block[i] == 0)
            return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "grid %ux%ux%u, block %ux%ux%u: a "
                             "dimension is 0", grid[0], grid[1], grid[2], block[0], block[1],
                             block[2]);
    if (grid[1] > 65535 || grid[2] > 65535 || grid[0] > 0x7FFFFFFFu)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "grid %ux%ux%u exceeds the device's",
                         grid[0], grid[1], grid[2]);
    if (block[0] > 1024 || block[1] > 1024 || block[2] > 64 || threads > 1024)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "block %ux%ux%u exceeds 1024x1024x64 or 1024 threads", block[0],
                         block[1], block[2]);
    return CUDA_SUCCESS;
}

/* The context a kernel belongs to (its library's); *c: its record (NULL if none). */
static idm_handle kernel_ctx(struct rq *r, const struct kernel_obj *k, struct ctx_obj **c)
{
    struct library_obj *lib = htab_lookup(&r->s->ht, k->library, HT_LIBRARY);

    *c = lib ? htab_lookup(&r->s->ht, lib->ctx, HT_CTX) : NULL;
    return lib ? lib->ctx : 0;
}

CUresult dispatch_launch_heap(struct rq *r, struct kernel_obj *k)
{
    struct session *s = r->s;
    struct ctx_obj *c;
    idm_handle ctx = kernel_ctx(r, k, &c);
    uint64_t size, va = 0;
    CUresult rc;
    long i;

    if (c == NULL || c->heap_made || s->be->heap_create == NULL ||
        !s->be->kernel_uses_heap(k->bk))
        return CUDA_SUCCESS;
    size = c->limits[CU_LIMIT_MALLOC_HEAP_SIZE];
    if (size == 0) { /* no heap: malloc returns NULL */
        c->heap_made = 1;
        return CUDA_SUCCESS;
    }
    /* On failure the launch fails and a later one tries again. */
    if ((rc = dispatch_alloc(r, size, ALLOC_HEAP, ctx, &va, NULL)) != CUDA_SUCCESS)
        return rq_refuse(r, rc, "kernel %s: no room for the context's %llu-byte device heap",
                         k->name, (unsigned long long)size);
    if ((rc = s->be->heap_create(s->bz, va, size, &c->heap)) != CUDA_SUCCESS) {
        if ((i = atab_find_base(&s->at, va)) >= 0)
            session_free_alloc(s, i);
        return rq_refuse(r, rc, "kernel %s: the backend could not set up a %llu-byte device "
                         "heap (CUresult %d)", k->name, (unsigned long long)size, rc);
    }
    c->heap_made = 1;
    return CUDA_SUCCESS;
}

/* The packed parameters: at most IDM_PARAM_BYTES_MAX bytes, as many as the kernel takes, from
 * the request tail (already a private copy) or the window range named by the op's bulk fields.
 * A window range is copied out before anything reads it (the client can still write there);
 * *own is that copy, which the caller frees once the launch has run or been queued. */
static CUresult take_params(struct rq *r, const struct idm_req_LAUNCH *q,
                            const struct kernel_obj *k, const void **params, void **own)
{
    const void *src;
    CUresult rc;

    *params = NULL;
    if (q->param_bytes > IDM_PARAM_BYTES_MAX)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "kernel %s with %llu parameter bytes (at "
                         "most %u)", k->name, (unsigned long long)q->param_bytes,
                         IDM_PARAM_BYTES_MAX);
    if (q->param_bytes != k->param_bytes)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "kernel %s with %llu parameter bytes (it "
                         "takes %u)", k->name, (unsigned long long)q->param_bytes,
                         k->param_bytes);
    if (q->param_bytes == 0)
        return CUDA_SUCCESS;
    if ((rc = rq_bulk(r, &src, NULL)) != CUDA_SUCCESS)
        return rc;
    if (r->bulk.win_len == 0) {
        *params = src;
        return CUDA_SUCCESS;
    }
    if ((*own = malloc(q->param_bytes)) == NULL)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory for a copy of kernel %s's "
                         "%llu parameter bytes", k->name, (unsigned long long)q->param_bytes);
    memcpy(*own, src, q->param_bytes);
    *params = *own;
    return CUDA_SUCCESS;
}

void dispatch_launch_fill(struct rq *r, struct kernel_obj *k, const uint32_t grid[3],
                          const uint32_t block[3], const uint32_t cluster[3], uint32_t shared,
                          const void *params, struct stream_op *op)
{
    struct ctx_obj *c;

    op->kind = SOP_LAUNCH;
    op->k = k;
    memset(&op->l, 0, sizeof(op->l)); /* fields not named here read as "no" (cooperative...) */
    memcpy(op->l.grid, grid, sizeof(op->l.grid));
    memcpy(op->l.block, block, sizeof(op->l.block));
    memcpy(op->l.cluster, cluster, sizeof(op->l.cluster));
    op->l.shared_bytes = shared;
    op->l.params = params;
    op->l.params_size = k->param_bytes;
    op->l.layout = k->params;
    op->l.param_count = k->param_count;
    op->l.cancel = NULL; /* stream.c gives each running launch its flag (mem: the worker's) */
    op->ctx = kernel_ctx(r, k, &c);
    op->l.printf_fifo_size = c ? c->limits[CU_LIMIT_PRINTF_FIFO_SIZE] : 0; /* 0: default */
    op->l.heap = c ? c->heap : NULL;
}

static CUresult prep_launch(struct rq *r, const struct idm_req_LAUNCH *q, struct stream_op *op,
                            struct stream_obj **st, void **own)
{
    struct kernel_obj *k = rq_kernel(r, q->func);
    const void *params;
    CUresult rc;

    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = rq_stream(r, q->stream, st)) != CUDA_SUCCESS)
        return rc;
    if (rq_sticky(r))
        return rq_sticky(r);
    if ((rc = dispatch_check_geometry(r, q->grid, q->block)) != CUDA_SUCCESS)
        return rc;
    if (q->flags & ~IDM_LAUNCH_COOPERATIVE)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "kernel %s: unknown launch flags 0x%x",
                         k->name, q->flags);
    if ((rc = dispatch_launch_heap(r, k)) != CUDA_SUCCESS)
        return rc;
    if ((rc = take_params(r, q, k, &params, own)) != CUDA_SUCCESS)
        return rc;
    dispatch_launch_fill(r, k, q->grid, q->block, q->cluster, q->shared_bytes, params, op);
    op->l.cooperative = (q->flags & IDM_LAUNCH_COOPERATIVE) != 0;
    return CUDA_SUCCESS;
}

/* DISPATCH_ASYNC's steps, plus freeing the window copy of the parameters: the default stream
 * has run the launch by then, and a queued launch owns a copy of its own (stream.c). */
CUresult h_LAUNCH(struct rq *r, const struct idm_req_LAUNCH *q, struct idm_rep_LAUNCH *p)
{
    struct stream_op op;
    struct stream_obj *st = NULL;
    void *own = NULL;
    CUresult rc;

    (void)p;
    stream_op_init(&op);
    rc = prep_launch(r, q, &op, &st, &own);
    if (rc == CUDA_SUCCESS)
        rc = rq_run(r, st, &op);
    free(own);
    return rc;
}
