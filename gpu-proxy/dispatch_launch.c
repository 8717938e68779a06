/* dispatch_launch.c - the kernel launch handler: grid, block and parameter checks against the
 * kernel's layout, then the launch inline (default stream) or queued on its stream. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int h_LAUNCH(struct rq *r, const struct idm_req_LAUNCH *q, struct idm_rep_LAUNCH *p)
{
    struct session *s = r->s;
    struct kernel_obj *k = rq_kernel(r, q->func);
    struct backend_launch l;
    struct stream_obj *st;
    uint64_t threads;
    int rc;

    (void)p;
    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (rq_sticky(r))
        return rq_sticky(r);
    for (int i = 0; i < 3; i++)
        if (q->grid[i] == 0 || q->block[i] == 0)
            return CUDA_ERROR_INVALID_VALUE;
    if (q->grid[1] > 65535 || q->grid[2] > 65535 || q->grid[0] > 0x7FFFFFFFu)
        return CUDA_ERROR_INVALID_VALUE;
    threads = (uint64_t)q->block[0] * q->block[1] * q->block[2];
    if (q->block[0] > 1024 || q->block[1] > 1024 || q->block[2] > 64 || threads > 1024)
        return CUDA_ERROR_INVALID_VALUE;
    if (q->param_bytes != k->param_bytes || q->param_bytes > r->tail_len) {
        log_warn("zone=%s %s: launch of %s with %u parameter bytes (kernel takes %u, %u sent)",
                 ZN(r), PEER(r), k->name, q->param_bytes, k->param_bytes, r->tail_len);
        return CUDA_ERROR_INVALID_VALUE;
    }
    memset(&l, 0, sizeof(l));
    memcpy(l.grid, q->grid, sizeof(l.grid));
    memcpy(l.block, q->block, sizeof(l.block));
    memcpy(l.cluster, q->cluster, sizeof(l.cluster));
    l.shared_bytes = q->shared_bytes;
    l.params = r->tail;
    l.params_size = q->param_bytes;
    l.layout = k->params;
    l.param_count = k->param_count;
    if (st != NULL) {
        struct stream_op *op = rq_new_op(SOP_LAUNCH);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        op->params = malloc(q->param_bytes ? q->param_bytes : 1);
        if (op->params == NULL) {
            free(op);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        memcpy(op->params, r->tail, q->param_bytes);
        op->k = k;
        op->l = l;
        return rq_defer(r, st, op);
    }
    rq_default_stream_enter(r);
    return exec_launch(s, k, NULL, &l);
}
