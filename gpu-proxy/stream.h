/* stream.h - asynchronous ops and the streams that run them. The dispatch prepares an op
 * (validates the request, translates its addresses into a struct stream_op); stream_run then
 * issues it through the one issue function of its kind: inline in the dispatch thread for the
 * default stream (after every stream of the session has drained), or queued on a stream whose
 * worker thread issues its ops in submission order and sends each one's reply when it is done
 * (an HtoD copy when the window range is no longer needed, a DtoH copy when the data is there),
 * or, for an unanswered request (IDM_F_NOREPLY), latches its failure on the stream. A stream
 * holds at most STREAM_QUEUE_MAX ops and STREAM_QUEUE_BYTES of them; the dispatch thread waits
 * for room (the client's requests then wait in the ring: flow control without replies). */
#ifndef GPU_PROXY_STREAM_H
#define GPU_PROXY_STREAM_H

#include <cuda.h>
#include <stdint.h>

#include "backend.h"
#include "idm.h"
#include "zone.h"

#define STREAM_QUEUE_MAX 1024u           /* queued ops per stream */
#define STREAM_QUEUE_BYTES (8ull << 20)   /* their heap bytes per stream (launch parameters) */

enum sop_kind {
    SOP_NONE = 0, /* nothing to issue (a zero-length copy) */
    SOP_HTOD,
    SOP_DTOH,
    SOP_DTOD,
    SOP_MEMSET,
    SOP_LAUNCH,
    SOP_EVENT_RECORD,
    SOP_GRAPH, /* a graph launch: nsub prepared ops in dependency order */
    SOP_COUNT
};

/* A prepared op. The dispatch fills one on its stack (stream_op_init, then the fields its kind
 * uses: the rest stay unset, so the synchronous path does not clear the whole struct);
 * stream_run queues a heap copy of it. */
struct stream_op {
    struct stream_op *next;
    uint64_t seq;          /* ticket in its stream; 0 while not queued */
    struct idm_hdr req;    /* the request it answers (queued ops) */
    int kind;              /* enum sop_kind */
    int inline_only;       /* refers into the request message: never queued */
    uint64_t win_idx;      /* an unanswered request's window range it reads (its request's
                            * number, released by session_win_release once run); 0: none */
    uint64_t dst, src, len; /* backend addresses and byte count */
    const void *hsrc;      /* HtoD source: the window or the request tail (inline_only) */
    void *hdst;            /* DtoH destination in the window; NULL: the reply tail */
    uint32_t value, elem_size;
    uint64_t width, pitch, height;
    struct kernel_obj *k;
    idm_handle ctx;          /* a launch: the context of its kernel's library */
    struct backend_launch l; /* l.params: the request tail or the dispatch's copy of the
                              * window range; a queued copy owns its own */
    struct event_obj *ev;
    uint64_t ev_ticket;      /* a record of an interprocess event: its ticket (zone.h) */
    struct stream_op *sub;   /* SOP_GRAPH: the dispatch's array; a queued copy owns its own */
    uint32_t nsub;
};

static inline void stream_op_init(struct stream_op *op)
{
    op->seq = 0;
    op->kind = SOP_NONE;
    op->inline_only = 0;
    op->win_idx = 0;
}

/* 1 when a prepared op reads the connection's window when it runs (an HtoD copy's source). */
static inline int stream_op_reads_window(const struct stream_op *op)
{
    return op->kind == SOP_HTOD && !op->inline_only;
}

/* Where an issued op writes its reply payload: the fixed struct (zeroed by the caller) and the
 * tail after it (room for the session's max_reply minus the fixed struct). */
struct sop_reply {
    void *fixed;
    uint8_t *tail;
    uint32_t tail_len;
};

/* Issues op through the issue function of its kind on backend stream bs (NULL: the zone's
 * default stream), filling rep: the one execute path of every asynchronous op, inline and in
 * the stream workers. Returns the CUresult. */
CUresult stream_issue(struct session *s, struct backend_stream *bs, struct stream_op *op,
                      struct sop_reply *rep);
/* Queues a heap copy of op that answers request req on st; *ticket gets its ticket. Returns
 * CUDA_SUCCESS or CUDA_ERROR_OUT_OF_MEMORY. The dispatch thread only (the copies of small ops
 * come from st's spares, which that thread takes without a lock). */
CUresult stream_queue(struct stream_obj *st, const struct stream_op *op,
                      const struct idm_hdr *req, uint64_t *ticket);
/* Unanswered requests (IDM_F_NOREPLY): a failure is latched, the first one kept, on the
 * stream it ran on (st; NULL: the default stream, or a request that named no live stream), and
 * returned by the next synchronising call there. stream_take_latched(s, st) returns and clears
 * st's latch; with st NULL the session's and every stream's (the legacy default stream and a
 * context synchronise with all of them). Any thread. */
void stream_latch(struct session *s, struct stream_obj *st, CUresult rc);
CUresult stream_take_latched(struct session *s, struct stream_obj *st);
/* The window release mark (idm_release_publish). An unanswered request that names a window
 * range is held by its number idx (idm_msg.idx) from its dispatch until its op has run, or at
 * once when it is refused or runs inline; session_win_release publishes, as the mark, the
 * number before the oldest request still held (or the last one released when none is). The
 * dispatch thread holds (waiting for its own streams when SESSION_WIN_HOLDS are held); any
 * thread releases. */
void session_win_hold(struct session *s, uint64_t idx);
void session_win_release(struct session *s, uint64_t idx);
/* Wakes the worker of every stream given ops since it was last woken. The dispatch thread
 * queues a run of requests without waking anyone and calls this when its ring is empty or
 * every STREAM_KICK_BATCH requests; every wait for a stream and every query of one wakes that
 * stream first, so nothing queued is left asleep. Dispatch thread only. */
void session_kick(struct session *s);
#define STREAM_KICK_BATCH 64u
/* Waits until ticket seq of st has finished. */
void stream_wait(struct stream_obj *st, uint64_t seq);
/* Waits until every stream of the session is idle (the dispatch thread only). */
void session_drain(struct session *s);

/* Runs a prepared op (kind != SOP_NONE) on stream st (NULL: the default stream). Inline (the
 * default stream after every stream of the session has drained, or an inline_only op after st
 * has drained): issues it at once, fills rep and returns the CUresult; op->seq stays 0.
 * Otherwise queues a copy that answers request req, sets op->seq to its ticket and returns
 * CUDA_SUCCESS (or CUDA_ERROR_OUT_OF_MEMORY); the stream's worker sends the reply. Inline here
 * so that the synchronous path costs no more calls than issuing the op directly would. */
static inline CUresult stream_run(struct session *s, struct stream_obj *st, struct stream_op *op,
                                  const struct idm_hdr *req, struct sop_reply *rep)
{
    op->seq = 0;
    if (st != NULL && !op->inline_only)
        return stream_queue(st, op, req, &op->seq);
    if (st == NULL)
        session_drain(s);
    else
        stream_wait(st, st->enq_seq);
    return stream_issue(s, st ? st->bs : NULL, op, rep);
}

/* Cancelling a session's kernels. Every launch holds a ticket while it runs; while one does,
 * a watch thread of the session (started at its first launch) looks every 100 ms whether the
 * client is still connected, since the client's own thread may be the one running the kernel.
 * session_cancel(s, 0): the client is gone or the session closes: running launches stop,
 * queued ops of every stream drain without running, later launches fail at once.
 * session_cancel(s, ctx): context ctx is destroyed or reset: launches of its kernels stop and
 * its streams' queued ops drain without running. Dispatch thread only. */
int session_runs_init(struct session *s);
void session_cancel(struct session *s, idm_handle ctx);
/* Stops the watch thread; after everything has drained (session_close). */
void session_runs_fini(struct session *s);

/* Starts the worker of a new stream object (st->s, st->bs set). 0 or -errno. */
int stream_start(struct stream_obj *st);
/* Drains the queue, stops and joins the worker. */
void stream_stop(struct stream_obj *st);
/* 1 when every queued op of st has executed (stream and context queries). */
int stream_idle(struct stream_obj *st);
/* 1 when the event's last record has happened. */
int event_done(const struct event_obj *e);

#endif /* GPU_PROXY_STREAM_H */
