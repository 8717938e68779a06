/* dispatch_launch.c - the kernel launch: its prepare step checks grid, block and parameter bytes
 * against the kernel's layout and fills the launch (with its context's printf FIFO size and
 * the context it belongs to, for cancellation); stream.c issues it (default stream inline,
 * other streams queued with a copy of the parameters). */
#include "dispatch_internal.h"

#include <cuda.h>
#include <string.h>

/* Grid and block dimensions a device of compute capability 9.0 accepts. */
static CUresult check_geometry(struct rq *r, const struct idm_req_LAUNCH *q)
{
    uint64_t threads = (uint64_t)q->block[0] * q->block[1] * q->block[2];

    for (int i = 0; i < 3; i++)
        if (q->grid[i] == 0 || q->block[i] == 0)
            return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "grid %ux%ux%u, block %ux%ux%u: a "
                             "dimension is 0", q->grid[0], q->grid[1], q->grid[2],
                             q->block[0], q->block[1], q->block[2]);
    if (q->grid[1] > 65535 || q->grid[2] > 65535 || q->grid[0] > 0x7FFFFFFFu)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "grid %ux%ux%u exceeds the device's",
                         q->grid[0], q->grid[1], q->grid[2]);
    if (q->block[0] > 1024 || q->block[1] > 1024 || q->block[2] > 64 || threads > 1024)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "block %ux%ux%u exceeds 1024x1024x64 or 1024 threads", q->block[0],
                         q->block[1], q->block[2]);
    return CUDA_SUCCESS;
}

/* The context a kernel belongs to (its library's) and that context's printf FIFO size. */
static idm_handle kernel_ctx(struct rq *r, const struct kernel_obj *k, uint64_t *printf_fifo)
{
    struct library_obj *lib = htab_lookup(&r->s->ht, k->library, HT_LIBRARY);
    struct ctx_obj *c = lib ? htab_lookup(&r->s->ht, lib->ctx, HT_CTX) : NULL;

    *printf_fifo = c ? c->limits[CU_LIMIT_PRINTF_FIFO_SIZE] : 0; /* 0: the backend's default */
    return lib ? lib->ctx : 0;
}

static CUresult prep_launch(struct rq *r, const struct idm_req_LAUNCH *q, struct stream_op *op,
                            struct stream_obj **st)
{
    struct kernel_obj *k = rq_kernel(r, q->func);
    CUresult rc;

    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = rq_stream(r, q->stream, st)) != CUDA_SUCCESS)
        return rc;
    if (rq_sticky(r))
        return rq_sticky(r);
    if ((rc = check_geometry(r, q)) != CUDA_SUCCESS)
        return rc;
    if (q->param_bytes != k->param_bytes || q->param_bytes > r->tail_len)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "kernel %s with %u parameter bytes (it takes %u, %u sent)", k->name,
                         q->param_bytes, k->param_bytes, r->tail_len);
    op->kind = SOP_LAUNCH;
    op->k = k;
    memcpy(op->l.grid, q->grid, sizeof(op->l.grid));
    memcpy(op->l.block, q->block, sizeof(op->l.block));
    memcpy(op->l.cluster, q->cluster, sizeof(op->l.cluster));
    op->l.shared_bytes = q->shared_bytes;
    op->l.params = r->tail;
    op->l.params_size = q->param_bytes;
    op->l.layout = k->params;
    op->l.param_count = k->param_count;
    op->l.mem = NULL;
    op->l.cancel = NULL; /* stream.c gives each running launch its flag */
    op->ctx = kernel_ctx(r, k, &op->l.printf_fifo_size);
    return CUDA_SUCCESS;
}

DISPATCH_ASYNC(LAUNCH, prep_launch)
