/* dispatch_stream.c - stream and event handlers: streams with their worker threads, waits,
 * queries, and events that remember where their last record was queued. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <stdlib.h>

#include "log.h"

CUresult h_STREAM_CREATE(struct rq *r, const struct idm_req_STREAM_CREATE *q,
                         struct idm_rep_STREAM_CREATE *p)
{
    struct stream_obj *o;
    idm_handle ctx;
    CUresult rc;
    int err;

    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if (q->flags & ~(uint32_t)CU_STREAM_NON_BLOCKING)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "unknown stream flags 0x%x", q->flags);
    if (r->s->nstreams >= SESSION_MAX_STREAMS)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "the client already has %u streams",
                         r->s->nstreams);
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    o->ctx = ctx;
    o->s = r->s;
    rc = r->s->be->stream_create(r->s->bz, q->flags, q->priority, &o->bs);
    if (rc != CUDA_SUCCESS)
        goto free_obj;
    if ((err = stream_start(o)) != 0) {
        rc = cu_from_errno(err);
        goto destroy_stream;
    }
    if ((err = htab_insert(&r->s->ht, HT_STREAM, o, &p->stream)) != 0) {
        rc = cu_from_errno(err);
        goto stop_worker;
    }
    r->s->nstreams++;
    return CUDA_SUCCESS;

stop_worker:
    stream_stop(o);
destroy_stream:
    r->s->be->stream_destroy(r->s->bz, o->bs);
free_obj:
    free(o);
    return rc;
}

CUresult h_STREAM_DESTROY(struct rq *r, const struct idm_req_STREAM_DESTROY *q,
                          struct idm_rep_STREAM_DESTROY *p)
{
    struct stream_obj *o = rq_lookup(r, q->stream, HT_STREAM);
    CUresult rc;

    (void)p;
    if (o == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    stream_stop(o); /* runs what is queued first, as cuStreamDestroy lets it complete */
    session_forget_stream(r->s, o);
    /* a failure nobody synchronised on yet: the context's next synchronisation reports it */
    stream_latch(r->s, NULL, stream_take_latched(r->s, o));
    rc = r->s->be->stream_sync(r->s->bz, o->bs);
    if (rc != CUDA_SUCCESS)
        log_debug("zone=%s %s: stream ended with CUresult %d before destruction", ZN(r),
                  PEER(r), rc);
    r->s->be->stream_destroy(r->s->bz, o->bs);
    htab_remove(&r->s->ht, q->stream, HT_STREAM);
    free(o);
    r->s->nstreams--;
    return CUDA_SUCCESS;
}

CUresult h_STREAM_SYNCHRONIZE(struct rq *r, const struct idm_req_STREAM_SYNCHRONIZE *q,
                              struct idm_rep_STREAM_SYNCHRONIZE *p)
{
    struct stream_obj *st;
    CUresult rc;

    (void)p;
    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (st)
        stream_wait(st, st->enq_seq);
    else
        rq_default_stream_enter(r);
    return rq_sync_latched(r, st, r->s->be->stream_sync(r->s->bz, st ? st->bs : NULL));
}

CUresult h_STREAM_QUERY(struct rq *r, const struct idm_req_STREAM_QUERY *q,
                        struct idm_rep_STREAM_QUERY *p)
{
    struct stream_obj *st, *o;
    CUresult rc;

    (void)p;
    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (st && !stream_idle(st))
        return rq_sync_status(r, CUDA_ERROR_NOT_READY);
    if (st == NULL) {
        for (uint32_t i = 0; i < r->s->ht.used; i++)
            if ((o = htab_slot(&r->s->ht, i, HT_STREAM, NULL)) != NULL && !stream_idle(o))
                return rq_sync_status(r, CUDA_ERROR_NOT_READY);
    }
    rc = r->s->be->stream_query(r->s->bz, st ? st->bs : NULL);
    return rc == CUDA_ERROR_NOT_READY ? rq_sync_status(r, rc) : rq_sync_latched(r, st, rc);
}

/* Waits (in the dispatch thread) until the event's last record has run (an interprocess
 * event: the last record of any session; this session's streams are woken first, as
 * stream_wait does for its stream, since one of them may hold that record). */
static void event_wait(struct session *s, struct event_obj *e)
{
    if (e->ipc) {
        session_kick(s);
        ipc_event_wait(e->ipc);
    } else if (e->recorded && e->rec_stream)
        stream_wait(e->rec_stream, e->rec_seq);
}

/* Recorded at least once, by any session. */
static int event_recorded(struct event_obj *e)
{
    return e->ipc ? 1 : e->recorded;
}

CUresult h_STREAM_WAIT_EVENT(struct rq *r, const struct idm_req_STREAM_WAIT_EVENT *q,
                             struct idm_rep_STREAM_WAIT_EVENT *p)
{
    struct stream_obj *st;
    struct event_obj *e;
    CUresult rc;

    (void)p;
    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if ((e = rq_event(r, q->event)) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!event_recorded(e))
        return CUDA_SUCCESS; /* waiting for a never-recorded event completes at once */
    /* Work queued on st after this point must follow the record: the simplest order that
     * guarantees it is to let the record happen before anything else is queued. */
    event_wait(r->s, e);
    return r->s->be->stream_wait_event(r->s->bz, st ? st->bs : NULL, e->be);
}

/* Checks event creation flags: CU_EVENT_INTERPROCESS needs CU_EVENT_DISABLE_TIMING (CUDA). */
static CUresult event_flags_check(struct rq *r, uint32_t flags)
{
    const uint32_t known = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING | CU_EVENT_INTERPROCESS;

    if (flags & ~known)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "event flags 0x%x", flags);
    if ((flags & CU_EVENT_INTERPROCESS) && !(flags & CU_EVENT_DISABLE_TIMING))
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "an interprocess event without CU_EVENT_DISABLE_TIMING");
    return CUDA_SUCCESS;
}

CUresult h_EVENT_CREATE(struct rq *r, const struct idm_req_EVENT_CREATE *q,
                        struct idm_rep_EVENT_CREATE *p)
{
    struct event_obj *e;
    idm_handle ctx;
    CUresult rc;
    int err;

    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS ||
        (rc = event_flags_check(r, q->flags)) != CUDA_SUCCESS)
        return rc;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    e->ctx = ctx;
    e->flags = q->flags;
    /* One context per zone: an interprocess event needs no driver IPC, only sharing here. */
    rc = r->s->be->event_create(r->s->bz, q->flags & ~(uint32_t)CU_EVENT_INTERPROCESS, &e->be);
    if (rc != CUDA_SUCCESS)
        goto free_obj;
    if ((q->flags & CU_EVENT_INTERPROCESS) && (e->ipc = ipc_event_new(e->be)) == NULL) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto destroy_event;
    }
    if ((err = htab_insert(&r->s->ht, HT_EVENT, e, &p->event)) != 0) {
        rc = cu_from_errno(err);
        goto destroy_event;
    }
    return CUDA_SUCCESS;

destroy_event:
    free(e->ipc);
    r->s->be->event_destroy(r->s->bz, e->be);
free_obj:
    free(e);
    return rc;
}

CUresult h_EVENT_DESTROY(struct rq *r, const struct idm_req_EVENT_DESTROY *q,
                         struct idm_rep_EVENT_DESTROY *p)
{
    struct event_obj *e = rq_event(r, q->event);

    (void)p;
    if (e == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    event_wait(r->s, e); /* a queued record still refers to it */
    session_free_event(r->s, q->event, e);
    return CUDA_SUCCESS;
}

static CUresult prep_event_record(struct rq *r, const struct idm_req_EVENT_RECORD *q,
                                  struct stream_op *op, struct stream_obj **st)
{
    struct event_obj *e;
    CUresult rc;

    if ((e = rq_event(r, q->event)) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = rq_stream(r, q->stream, st)) != CUDA_SUCCESS)
        return rc;
    /* A previous record still queued elsewhere happens first. */
    event_wait(r->s, e);
    op->kind = SOP_EVENT_RECORD;
    op->ev = e;
    if (e->ipc)
        op->ev_ticket = ipc_event_ticket(e->ipc);
    return CUDA_SUCCESS;
}

/* The one asynchronous handler with a step after the execute path: the event remembers where
 * its record went (queued: the stream and ticket; inline: done once it succeeded). */
CUresult h_EVENT_RECORD(struct rq *r, const struct idm_req_EVENT_RECORD *q,
                        struct idm_rep_EVENT_RECORD *p)
{
    struct stream_op op;
    struct stream_obj *st = NULL;
    CUresult rc;

    (void)p;
    stream_op_init(&op);
    if ((rc = prep_event_record(r, q, &op, &st)) != CUDA_SUCCESS)
        return rc;
    rc = rq_run(r, st, &op);
    if (op.ev->ipc && op.seq == 0 && rc != CUDA_SUCCESS)
        ipc_event_mark(op.ev->ipc, op.ev_ticket); /* not issued: nobody waits for it */
    if (op.seq != 0) {
        op.ev->recorded = 1;
        op.ev->rec_stream = st;
        op.ev->rec_seq = op.seq;
    } else if (rc == CUDA_SUCCESS) {
        op.ev->recorded = 1;
        op.ev->rec_stream = NULL;
    }
    return rc;
}

CUresult h_EVENT_SYNCHRONIZE(struct rq *r, const struct idm_req_EVENT_SYNCHRONIZE *q,
                             struct idm_rep_EVENT_SYNCHRONIZE *p)
{
    struct event_obj *e = rq_event(r, q->event);

    (void)p;
    if (e == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!event_recorded(e))
        return rq_sync_status(r, CUDA_SUCCESS);
    event_wait(r->s, e);
    return rq_sync_status(r, r->s->be->event_sync(r->s->bz, e->be));
}

CUresult h_EVENT_QUERY(struct rq *r, const struct idm_req_EVENT_QUERY *q,
                       struct idm_rep_EVENT_QUERY *p)
{
    struct event_obj *e = rq_event(r, q->event);

    (void)p;
    if (e == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!event_recorded(e))
        return rq_sync_status(r, CUDA_SUCCESS);
    if (!event_done(e))
        return rq_sync_status(r, CUDA_ERROR_NOT_READY);
    return rq_sync_status(r, r->s->be->event_query(r->s->bz, e->be));
}

CUresult h_EVENT_ELAPSED_TIME(struct rq *r, const struct idm_req_EVENT_ELAPSED_TIME *q,
                              struct idm_rep_EVENT_ELAPSED_TIME *p)
{
    struct event_obj *a = rq_event(r, q->start), *b = rq_event(r, q->end);

    if (a == NULL || b == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!a->recorded || !b->recorded)
        return rq_refuse(r, CUDA_ERROR_INVALID_HANDLE, "the %s event was never recorded",
                         a->recorded ? "end" : "start");
    if (!event_done(a) || !event_done(b))
        return CUDA_ERROR_NOT_READY;
    return r->s->be->event_elapsed(r->s->bz, a->be, b->be, &p->ms);
}
