/* dispatch.c - the entry of the dispatch: the table that indexes the handlers (one per op of
 * idm_ops.def, in the dispatch_*.c families) by op number, the start-up check that it is full,
 * and the framing of one request: reply flag, op, length checked before any handler sees it, the
 * fixed struct copied to aligned memory, what the op's properties say decoded for the handler
 * (bulk data fields, the name tail checked), the reply zeroed when a handler fails, and the
 * zone's counters (counters.h): each request's family, time in the dispatch, CUresult (a
 * deferred one's when its stream worker answers) and refusal reason; and which requests go
 * unanswered (IDM_F_NOREPLY where the op allows it: a failure is latched on its stream). */
#include "dispatch.h"

#include <cuda.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dispatch_internal.h"
#include "log.h"

#define REQ_STRUCT_MAX 512 /* the largest fixed request struct dispatch_request copies */

typedef CUresult (*handler_fn)(struct rq *r, const void *req, void *rep);

/* One thunk per op gives every handler its typed request and reply. */
#define IDM_OP(name, num, kind, req, rep)                                                       \
    static CUresult t_##name(struct rq *r, const void *q, void *p)                              \
    {                                                                                           \
        return h_##name(r, (const struct idm_req_##name *)q, (struct idm_rep_##name *)p);       \
    }
#include "idm_ops.def"
#undef IDM_OP

static const handler_fn handlers[IDM_OP_COUNT] = {
#define IDM_OP(name, num, kind, req, rep) [IDM_OP_##name] = t_##name,
#include "idm_ops.def"
#undef IDM_OP
};

int dispatch_selfcheck(void)
{
    int missing = 0;

    for (uint32_t op = 1; op < IDM_OP_COUNT; op++) {
        const struct idm_op_info *info = idm_op_lookup(op);
        if (info == NULL)
            continue;
        if (handlers[op] == NULL) {
            log_error("dispatch: op %s (%u) has no handler", info->name, op);
            missing++;
        }
    }
    return missing ? -ENOSYS : 0;
}

/* Refuses (logged, rate-limited) an op without a handler and a request shorter than its struct
 * or whose reply struct does not fit a reply slot. */
static CUresult frame_check(struct session *s, const struct idm_hdr *h,
                            const struct idm_op_info *info)
{
    if (info == NULL || h->op >= IDM_OP_COUNT || handlers[h->op] == NULL) {
        log_limited(&log_thread_bucket, LOG_WARN, "zone=%s %s: op %u refused: unknown op",
                    s->zone->name, s->peer, h->op);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    if (h->len < info->req_size || info->req_size > REQ_STRUCT_MAX) {
        log_limited(&log_thread_bucket, LOG_WARN,
                    "zone=%s %s: %s refused: the request of %u bytes is shorter than its "
                    "%u-byte struct", s->zone->name, s->peer, info->name, h->len,
                    info->req_size);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (info->rep_size > s->max_reply) {
        log_limited(&log_thread_bucket, LOG_WARN,
                    "zone=%s %s: %s refused: its %u-byte reply does not fit a %u-byte slot",
                    s->zone->name, s->peer, info->name, info->rep_size, s->max_reply);
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

/* Sets up the handler's context for request h: its tails, and what the op's properties give
 * it (bulk fields; the name tail, checked here for every op that has one). */
static CUresult rq_setup(struct rq *r, struct session *s, const struct idm_hdr *h,
                         const uint8_t *payload, const struct idm_op_info *info, const void *req)
{
    memset(r, 0, sizeof(*r));
    r->s = s;
    r->h = h;
    r->tail = payload + info->req_size;
    r->tail_len = h->len - info->req_size;
    r->rtail = s->rbuf + info->rep_size;
    r->rtail_max = s->max_reply - info->rep_size;
    idm_op_bulk(info, req, &r->bulk);
    return info->props->name_tail ? rq_check_name(r) : CUDA_SUCCESS;
}

/* The failure of a request, at debug, with the stream it named if its op has one. */
static void log_failure(struct session *s, const struct idm_hdr *h,
                        const struct idm_op_info *info, const void *req, CUresult rc)
{
    char on[32] = "";
    idm_handle stream;

    if (!LOG_ENABLED(LOG_DEBUG))
        return;
    if (idm_op_stream(info, req, &stream))
        snprintf(on, sizeof(on), " stream=0x%llx", (unsigned long long)stream);
    log_debug("zone=%s %s: %s seq=%llu%s -> CUresult %d", s->zone->name, s->peer, info->name,
              (unsigned long long)h->seq, on, rc);
}

/* Counts a request that left the dispatch (t0: when a timed one came in, else 0; refused:
 * 1 + enum wm_refusal, or 0). */
static void count_request(struct worker_counters *m, const struct idm_hdr *h, uint64_t t0,
                          int deferred, CUresult rc, uint8_t refused)
{
    uint64_t ns = t0 ? wm_now_ns() - t0 : 0;

    wm_call(m, h->op, t0 && ns == 0 ? 1 : ns);
    if (!deferred)
        wm_result(m, rc);
    if (refused)
        wm_refused(m, (enum wm_refusal)(refused - 1));
}

/* The header the handlers see: IDM_F_NOREPLY kept only where the op may go unanswered. */
static void noreply_filter(struct idm_hdr *hh, const struct idm_op_info *info, const void *req)
{
    struct idm_bulk b;

    if (!(hh->flags & IDM_F_NOREPLY))
        return;
    idm_op_bulk(info, req, &b);
    if (!idm_op_noreply(info, &b))
        hh->flags &= ~IDM_F_NOREPLY; /* answered as usual */
}

/* An unanswered request failed in the dispatch: latched on the stream it names when that is a
 * live stream of the session, else on the session (the default stream's latch). */
static void latch_failure(struct session *s, const struct idm_op_info *info, const void *req,
                          CUresult rc)
{
    idm_handle h;
    struct stream_obj *st = NULL;

    if (idm_op_stream(info, req, &h) && !DEFAULT_STREAM(h))
        st = htab_lookup(&s->ht, h, HT_STREAM);
    stream_latch(s, st, rc);
}

int dispatch_request(struct session *s, const struct idm_hdr *h, const uint8_t *payload,
                     uint32_t *rep_len, int32_t *status)
{
    struct worker_counters *m = s->zone->m;
    uint64_t t0 = m && wm_timed_next() ? wm_now_ns() : 0;
    /* Fixed structs are copied to aligned private memory before they are looked at. */
    union {
        uint64_t align;
        uint8_t b[REQ_STRUCT_MAX];
    } req;
    const struct idm_op_info *info;
    struct idm_hdr hh;
    struct rq r;
    CUresult rc;

    *rep_len = 0;
    if (h->flags & IDM_F_REPLY) {
        log_warn("zone=%s %s: client sent a reply (op %u); disconnecting", s->zone->name,
                 s->peer, h->op);
        return -EPROTO;
    }
    if (LOG_ENABLED(LOG_TRACE)) {
        char line[512];
        log_trace("zone=%s %s: %s", s->zone->name, s->peer,
                  idm_trace_format(h, payload, line, sizeof(line)));
    }
    info = idm_op_lookup(h->op);
    if ((*status = frame_check(s, h, info)) != CUDA_SUCCESS) {
        if (m)
            count_request(m, h, t0, 0, *status, 1 + WM_REF_MALFORMED);
        return 0;
    }
    memset(req.b, 0, sizeof(req.b));
    memcpy(req.b, payload, info->req_size);
    memset(s->rbuf, 0, info->rep_size);
    hh = *h;
    noreply_filter(&hh, info, req.b);

    rc = rq_setup(&r, s, &hh, payload, info, req.b);
    if ((hh.flags & IDM_F_NOREPLY) && r.bulk.dir == IDM_BULK_IN && r.bulk.win_len != 0 &&
        s->rx_idx != 0) { /* 0: a caller that numbers no requests (in-process tests) */
        session_win_hold(s, s->rx_idx); /* no reply returns its window range: the mark does */
        r.win_idx = s->rx_idx;
    }
    if (rc == CUDA_SUCCESS)
        rc = handlers[h->op](&r, req.b, s->rbuf);
    *status = rc;
    if (r.win_idx != 0) /* refused, run inline, or its data copied out (a launch's params) */
        session_win_release(s, r.win_idx);
    if (m)
        count_request(m, h, t0, r.deferred, rc, r.refused);
    if (r.deferred)
        return 1;
    if (hh.flags & IDM_F_NOREPLY) {
        if (rc != CUDA_SUCCESS) {
            log_failure(s, h, info, req.b, rc);
            latch_failure(s, info, req.b, rc);
        }
        return 1;
    }
    if (rc != CUDA_SUCCESS) {
        log_failure(s, h, info, req.b, rc);
        /* A failed request answers with zeros, never with half-filled values. */
        memset(s->rbuf, 0, info->rep_size);
        r.rtail_len = 0;
    }
    *rep_len = info->rep_size + r.rtail_len;
    return 0;
}
