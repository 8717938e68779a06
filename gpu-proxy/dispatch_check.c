/* dispatch_check.c - the lookups and checks every handler family uses: a request's context and
 * stream handles, device ranges against the session's allocation table, window ranges against
 * the connection's window, names in the request tail; and running a prepared asynchronous op. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <stdlib.h>
#include <string.h>

#include "idm_transport.h"
#include "log.h"

CUresult rq_ctx(struct rq *r, idm_handle h, idm_handle *out)
{
    if (h == 0) {
        if (r->s->primary_ctx == 0 || r->s->primary_refs == 0)
            return CUDA_ERROR_INVALID_CONTEXT;
        *out = r->s->primary_ctx;
        return CUDA_SUCCESS;
    }
    if (htab_lookup(&r->s->ht, h, HT_CTX) == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    *out = h;
    return CUDA_SUCCESS;
}

CUresult rq_stream(struct rq *r, idm_handle h, struct stream_obj **st)
{
    struct stream_obj *o;

    if (DEFAULT_STREAM(h)) {
        *st = NULL;
        return CUDA_SUCCESS;
    }
    o = htab_lookup(&r->s->ht, h, HT_STREAM);
    if (o == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    *st = o;
    return CUDA_SUCCESS;
}

CUresult rq_run(struct rq *r, struct stream_obj *st, struct stream_op *op)
{
    struct sop_reply rep = {.fixed = r->s->rbuf, .tail = r->rtail, .tail_len = 0};
    CUresult rc = stream_run(r->s, st, op, r->h, &rep);

    r->deferred = op->seq != 0;
    r->rtail_len = rep.tail_len;
    return rc;
}

CUresult rq_dev_range(struct rq *r, uint64_t va, uint64_t len, uint64_t *baddr)
{
    long i = atab_find(&r->s->at, va, len);

    if (i < 0) {
        log_debug("zone=%s %s: device range 0x%llx+%llu is outside every allocation of the zone",
                  ZN(r), PEER(r), (unsigned long long)va, (unsigned long long)len);
        return CUDA_ERROR_INVALID_VALUE;
    }
    *baddr = r->s->at.v[i].baddr + (va - r->s->at.v[i].va);
    return CUDA_SUCCESS;
}

CUresult rq_win_range(struct rq *r, uint64_t off, uint64_t len, uint8_t **p)
{
    struct session *s = r->s;

    if (s->window == NULL || off > s->window_size || len > s->window_size - off ||
        (s->conn != NULL && idm_window_check(s->conn, off, len) != 0)) {
        log_warn("zone=%s %s: window range %llu+%llu is outside the %llu-byte window", ZN(r),
                 PEER(r), (unsigned long long)off, (unsigned long long)len,
                 (unsigned long long)s->window_size);
        return CUDA_ERROR_INVALID_VALUE;
    }
    *p = s->window + off;
    return CUDA_SUCCESS;
}

CUresult rq_tail_name(struct rq *r, const char **name)
{
    if (r->tail_len == 0 || r->tail_len > IDM_SYMBOL_MAX ||
        memchr(r->tail, 0, r->tail_len) == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *name = (const char *)r->tail;
    return CUDA_SUCCESS;
}
