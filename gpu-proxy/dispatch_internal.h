/* dispatch_internal.h - what the handler families of the dispatch (dispatch_*.c) share: the
 * request context a handler gets, the lookups and range checks every handler uses, and one
 * prototype per op of idm_ops.def (the table in dispatch.c indexes them). Private to gpu-proxy. */
#ifndef GPU_PROXY_DISPATCH_INTERNAL_H
#define GPU_PROXY_DISPATCH_INTERNAL_H

#include <cuda.h>
#include <stdint.h>

#include "counters.h"
#include "idm.h"
#include "log.h"
#include "stream.h"
#include "zone.h"

#define DEFAULT_STREAM(h) ((h) == 0 || (h) == (idm_handle)CU_STREAM_LEGACY || \
                           (h) == (idm_handle)CU_STREAM_PER_THREAD)

/* What a handler gets besides its request and reply structs. */
struct rq {
    struct session *s;
    const struct idm_hdr *h;
    const uint8_t *tail;   /* request bytes after the fixed struct */
    uint32_t tail_len;
    uint8_t *rtail;        /* reply bytes after the fixed struct */
    uint32_t rtail_max;
    uint32_t rtail_len;
    int deferred;          /* a stream worker will send the reply */
    struct idm_bulk bulk;  /* the op's bulk data (its properties in idm_ops.def), unchecked */
    const char *name;      /* ops with a name tail: the name, checked before the handler */
    uint8_t refused;       /* 1 + enum wm_refusal of the request's first refusal; 0: none */
    uint64_t win_idx;      /* an unanswered request's held window range (session_win_hold):
                            * released after the handler unless a queued op took it */
};

#define ZN(r) ((r)->s->zone->name)
#define PEER(r) ((r)->s->peer)

/* Refuses the request: logs why ("zone=Z peer: OP refused: why", at warn, through the thread's
 * token bucket so that a flood of bad requests cannot flood the log), notes the reason (enum
 * wm_refusal; the dispatch counts one per refused request) and evaluates to rc. Every check that
 * turns a tenant's request away goes through it; rq_refuse takes the reason rc stands for
 * (wm_refusal_of), rq_refuse_as names it. */
#define rq_refuse_as(r, why, rc, fmt, ...)                                                      \
    ((r)->refused = (r)->refused ? (r)->refused : (uint8_t)(1 + (why)),                         \
     log_limited(&log_thread_bucket, LOG_WARN, "zone=%s %s: %s refused: " fmt, ZN(r), PEER(r), \
                 idm_op_name((r)->h->op), ##__VA_ARGS__),                                       \
     (rc))
#define rq_refuse(r, rc, fmt, ...) rq_refuse_as(r, wm_refusal_of(rc), rc, fmt, ##__VA_ARGS__)

/* One handler per op: h_NAME(r, typed request, typed reply) returns the CUresult. */
#define IDM_OP(name, num, kind, req, rep)                                                       \
    CUresult h_##name(struct rq *r, const struct idm_req_##name *q, struct idm_rep_##name *p);
#include "idm_ops.def"
#undef IDM_OP

/* ---- lookups and checks (dispatch_check.c) ---- */

/* A device ordinal of the backend. */
CUresult rq_device(struct rq *r, int32_t device);
/* A context of the session (0: the primary context, when retained). */
CUresult rq_ctx(struct rq *r, idm_handle h, idm_handle *out);
/* [va, va+len) must lie inside one allocation of this session: its backend address. */
CUresult rq_dev_range(struct rq *r, uint64_t va, uint64_t len, uint64_t *baddr);
/* [off, off+len) of the connection's window. */
CUresult rq_win_range(struct rq *r, uint64_t off, uint64_t len, uint8_t **p);
/* Where the request's bulk data is (r->bulk, from the op's properties), checked: the window
 * range when win_len is not 0, else inline (r->bulk.win_len == 0): an IN op's source (*src) is
 * then the request tail, an OUT op's destination (*dst) NULL, the reply tail. The pointer of the
 * other direction may be NULL. Call with len > 0. */
CUresult rq_bulk(struct rq *r, const void **src, void **dst);
/* Checks the name tail of an op that has one (before its handler; the name in r->name). */
CUresult rq_check_name(struct rq *r);
/* The request's name (checked by the dispatch before the handler, ops with a name tail). */
CUresult rq_tail_name(struct rq *r, const char **name);
/* Logs the refusal of handle h, which is not a live handle of type type in this session. */
void rq_refuse_handle(struct rq *r, idm_handle h, uint8_t type);

/* The live object of type type behind handle h in this session, or NULL (refusal logged: the
 * caller answers CUDA_ERROR_INVALID_HANDLE, or CUDA_ERROR_INVALID_CONTEXT for contexts). */
static inline void *rq_lookup(struct rq *r, idm_handle h, uint8_t type)
{
    void *o = htab_lookup(&r->s->ht, h, type);

    if (__builtin_expect(o == NULL, 0))
        rq_refuse_handle(r, h, type);
    return o;
}

static inline struct event_obj *rq_event(struct rq *r, idm_handle h)
{
    return rq_lookup(r, h, HT_EVENT);
}

static inline struct kernel_obj *rq_kernel(struct rq *r, idm_handle h)
{
    return rq_lookup(r, h, HT_KERNEL);
}

static inline struct library_obj *rq_library(struct rq *r, idm_handle h)
{
    return rq_lookup(r, h, HT_LIBRARY);
}

static inline struct image_obj *rq_image(struct rq *r, idm_handle h)
{
    return rq_lookup(r, h, HT_IMAGE);
}

/* A stream of the session; *st is NULL for the default stream. */
static inline CUresult rq_stream(struct rq *r, idm_handle h, struct stream_obj **st)
{
    if (DEFAULT_STREAM(h)) {
        *st = NULL;
        return CUDA_SUCCESS;
    }
    *st = rq_lookup(r, h, HT_STREAM);
    return *st ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* Runs a prepared asynchronous op on st (NULL: the default stream) through stream_run: inline
 * (its reply in the session's reply buffer) or queued (r->deferred: the worker replies). */
static inline CUresult rq_run(struct rq *r, struct stream_obj *st, struct stream_op *op)
{
    struct sop_reply rep = {.fixed = r->s->rbuf, .tail = r->rtail, .tail_len = 0};
    CUresult rc;

    op->win_idx = stream_op_reads_window(op) ? r->win_idx : 0;
    rc = stream_run(r->s, st, op, r->h, &rep);
    r->deferred = op->seq != 0;
    if (r->deferred && op->win_idx != 0)
        r->win_idx = 0; /* the stream's worker releases it once the op has run */
    r->rtail_len = rep.tail_len;
    return rc;
}

/* The session's sticky error (0: none); stream workers set it. */
static inline CUresult rq_sticky(struct rq *r)
{
    return (CUresult)__atomic_load_n(&r->s->sticky, __ATOMIC_ACQUIRE);
}

/* What a synchronising call returns: the sticky error if there is one, else rc. */
static inline CUresult rq_sync_status(struct rq *r, CUresult rc)
{
    return rq_sticky(r) ? rq_sticky(r) : rc;
}

/* What a synchronising call on st (NULL: the default stream, or a context: all of the
 * session's) returns: the sticky error, else rc when it failed, else the first failure latched
 * by an unanswered request there (taken: the next call does not see it again). */
static inline CUresult rq_sync_latched(struct rq *r, struct stream_obj *st, CUresult rc)
{
    CUresult latched = stream_take_latched(r->s, st);

    if (rq_sticky(r))
        return rq_sticky(r);
    return rc != CUDA_SUCCESS ? rc : latched;
}

/* Work on the default stream runs inline, after every stream of the session has drained
 * (the legacy default stream waits for the others). */
static inline void rq_default_stream_enter(struct rq *r)
{
    session_drain(r->s);
}

/* The handler of an asynchronous op NAME is its prepare step, prepare(r, q, op, &st): the
 * request's checks, in the order a driver makes them, filling the fields of op its kind uses
 * (kind left SOP_NONE when there is nothing to do) and st; then the one execute path, rq_run. */
#define DISPATCH_ASYNC(name, prepare)                                                           \
    CUresult h_##name(struct rq *r, const struct idm_req_##name *q, struct idm_rep_##name *p)  \
    {                                                                                          \
        struct stream_op op;                                                                   \
        struct stream_obj *st = NULL;                                                          \
        CUresult rc;                                                                           \
                                                                                               \
        (void)p;                                                                               \
        stream_op_init(&op);                                                                   \
        rc = prepare(r, q, &op, &st);                                                          \
        if (rc != CUDA_SUCCESS || op.kind == SOP_NONE)                                         \
            return rc;                                                                         \
        return rq_run(r, st, &op);                                                             \
    }

/* ---- shared by families (dispatch_mem.c) ---- */

/* Allocates zone memory: quota, zone address, backend memory, allocation-table entry. */
CUresult dispatch_alloc(struct rq *r, uint64_t size, uint8_t kind, idm_handle owner,
                        uint64_t *va, uint64_t *baddr_out);

/* The prepare steps of a device-to-device copy and a memset (dispatch_mem.c), which graph
 * launches reuse for their nodes. */
CUresult dispatch_prep_dtod(struct rq *r, const struct idm_req_MEMCPY_DTOD *q,
                           struct stream_op *op, struct stream_obj **st);
CUresult dispatch_prep_memset(struct rq *r, const struct idm_req_MEMSET *q,
                             struct stream_op *op, struct stream_obj **st);

/* ---- shared with graphs (dispatch_launch.c) ---- */

/* Grid and block dimensions a device of compute capability 9.0 accepts. */
CUresult dispatch_check_geometry(struct rq *r, const uint32_t grid[3], const uint32_t block[3]);
/* Makes the device-side malloc/free heap of k's context if k's module uses one and it does not
 * exist yet (limits[CU_LIMIT_MALLOC_HEAP_SIZE] bytes of zone memory, charged to the quota);
 * CUDA_ERROR_OUT_OF_MEMORY when the zone has no room for it. */
CUresult dispatch_launch_heap(struct rq *r, struct kernel_obj *k);
/* Fills op as a launch of kernel k with k->param_bytes bytes of params (which must outlive
 * the op's issue or queueing). */
void dispatch_launch_fill(struct rq *r, struct kernel_obj *k, const uint32_t grid[3],
                          const uint32_t block[3], const uint32_t cluster[3], uint32_t shared,
                          const void *params, struct stream_op *op);

#endif /* GPU_PROXY_DISPATCH_INTERNAL_H */
