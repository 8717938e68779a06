/* stream.h - streams of a session: each non-default stream has a worker thread that runs its
 * queued operations in submission order and sends each one's reply when it is done (an HtoD
 * copy when the window range is no longer needed, a DtoH copy when the data is there). The
 * default stream runs work inline after every stream of the session has drained. */
#ifndef GPU_PROXY_STREAM_H
#define GPU_PROXY_STREAM_H

#include <stdint.h>

#include "backend.h"
#include "idm.h"
#include "zone.h"

enum sop_kind { SOP_HTOD = 1, SOP_DTOH, SOP_DTOD, SOP_MEMSET, SOP_LAUNCH, SOP_EVENT_RECORD };

struct stream_op {
    struct stream_op *next;
    uint64_t seq;         /* ticket in its stream */
    struct idm_hdr req;   /* the request it answers (op, seq, flags) */
    int kind;
    uint64_t dst, src, len; /* backend addresses and byte count */
    void *host;           /* HtoD source / DtoH destination in the window; NULL: reply tail */
    uint32_t value, elem_size;
    uint64_t width, pitch, height;
    struct kernel_obj *k;
    struct backend_launch l;
    void *params;         /* owned copy of the launch parameters */
    struct event_obj *ev;
};

/* Starts the worker of a new stream object (st->s, st->bs set). 0 or -errno. */
int stream_start(struct stream_obj *st);
/* Drains the queue, stops and joins the worker. */
void stream_stop(struct stream_obj *st);
/* Queues op (allocated with malloc; the stream frees it) and returns its ticket. */
uint64_t stream_submit(struct stream_obj *st, struct stream_op *op);
/* Waits until ticket seq of st has finished. */
void stream_wait(struct stream_obj *st, uint64_t seq);
/* 1 when every queued op of st has finished. */
int stream_idle(struct stream_obj *st);
/* Waits until every stream of the session is idle (the dispatch thread only). */
void session_drain(struct session *s);
/* 1 when the event's last record has happened. */
int event_done(const struct event_obj *e);

/* Runs a launch with the session's memory view; execution faults become the session's sticky
 * error and are logged with the zone. Returns the CUresult. */
int exec_launch(struct session *s, struct kernel_obj *k, struct backend_stream *bs,
                struct backend_launch *l);

#endif /* GPU_PROXY_STREAM_H */
