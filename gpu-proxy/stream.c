/* stream.c - how an asynchronous op runs: one issue function per op kind, the only place such
 * an op reaches the backend, used inline by the dispatch thread (default stream) and by the
 * worker thread of each stream, which issues its queue in order, sets the session's sticky error
 * on an execution fault and sends each reply itself (or latches the failure of an unanswered
 * request on the stream); the bounded queues, their wake-ups (once per run of requests) and the
 * latches, the window ranges unanswered requests hold until their ops have run (the release
 * mark published to the client), and the recycling of small queued ops between the two
 * threads. Workers read the allocation table only under its read lock (launch address checks).
 * Also the cancellation of a session's running
 * kernels when its client goes or a context is destroyed, with the thread that notices a
 * client's exit while a kernel runs. */
#include "stream.h"

#include <cuda.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "counters.h"
#include "idm_transport.h"
#include "log.h"

#define WATCH_PERIOD_MS 100 /* how often a running kernel's client connection is looked at */

/* A running launch: its cancel flag (the backend polls it) and the context it belongs to. */
struct launch_ticket {
    int cancel;
    idm_handle ctx;
    struct launch_ticket *prev, *next;
};

/* Under run_lock: flags the running launches of ctx (0: all, and the session itself). */
static void cancel_locked(struct session *s, idm_handle ctx)
{
    for (struct launch_ticket *t = s->running; t; t = t->next)
        if (ctx == 0 || t->ctx == ctx)
            __atomic_store_n(&t->cancel, 1, __ATOMIC_RELAXED);
    if (ctx == 0)
        __atomic_store_n(&s->cancelled, 1, __ATOMIC_RELEASE);
}

static void *watch_main(void *arg)
{
    struct session *s = arg;

    pthread_mutex_lock(&s->run_lock);
    while (s->watch == 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCH_PERIOD_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->run_cond, &s->run_lock, &ts);
        if (s->watch != 1 || s->running == NULL || s->cancelled)
            continue;
        pthread_mutex_unlock(&s->run_lock);
        int rc = idm_conn_check(s->conn);
        pthread_mutex_lock(&s->run_lock);
        if (rc < 0) {
            log_info("zone=%s %s: the client is gone (%s) while its kernels run; cancelling "
                     "them", s->zone->name, s->peer, strerror(-rc));
            cancel_locked(s, 0);
        }
    }
    pthread_mutex_unlock(&s->run_lock);
    return NULL;
}

/* Under run_lock: starts the watch thread at the session's first launch (never twice). */
static void watch_start(struct session *s)
{
    int rc;

    if (s->watch != 0 || s->conn == NULL)
        return;
    rc = pthread_create(&s->watch_thread, NULL, watch_main, s);
    if (rc != 0) {
        log_error("zone=%s %s: cannot start the thread that watches the client while its "
                  "kernels run (%s): its exit will not stop them", s->zone->name, s->peer,
                  strerror(rc));
        s->watch = -1;
        return;
    }
    s->watch = 1;
}

/* Registers a launch about to run; -ECANCELED when the session is cancelled. */
static int ticket_take(struct session *s, struct launch_ticket *t, idm_handle ctx)
{
    t->cancel = 0;
    t->ctx = ctx;
    t->prev = NULL;
    pthread_mutex_lock(&s->run_lock);
    if (s->cancelled) {
        pthread_mutex_unlock(&s->run_lock);
        return -ECANCELED;
    }
    t->next = s->running;
    if (t->next)
        t->next->prev = t;
    s->running = t;
    watch_start(s);
    pthread_mutex_unlock(&s->run_lock);
    return 0;
}

static void ticket_drop(struct session *s, struct launch_ticket *t)
{
    pthread_mutex_lock(&s->run_lock);
    if (t->prev)
        t->prev->next = t->next;
    else
        s->running = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&s->run_lock);
}

int session_runs_init(struct session *s)
{
    int rc = pthread_mutex_init(&s->run_lock, NULL);

    if (rc != 0)
        return -rc;
    rc = pthread_cond_init(&s->run_cond, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&s->run_lock);
        return -rc;
    }
    rc = pthread_mutex_init(&s->win_lock, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&s->run_cond);
        pthread_mutex_destroy(&s->run_lock);
        return -rc;
    }
    s->win_head = s->win_n = 0;
    s->win_mark = 0;
    s->running = NULL;
    s->cancelled = 0;
    s->watch = 0;
    return 0;
}

void session_cancel(struct session *s, idm_handle ctx)
{
    struct stream_obj *st;

    pthread_mutex_lock(&s->run_lock);
    cancel_locked(s, ctx);
    pthread_mutex_unlock(&s->run_lock);
    for (uint32_t i = 0; i < s->ht.used; i++)
        if ((st = htab_slot(&s->ht, i, HT_STREAM, NULL)) != NULL && (ctx == 0 || st->ctx == ctx))
            __atomic_store_n(&st->cancel, 1, __ATOMIC_RELEASE);
}

void session_runs_fini(struct session *s)
{
    int joined;

    pthread_mutex_lock(&s->run_lock);
    joined = s->watch == 1;
    if (joined)
        s->watch = 2;
    pthread_cond_broadcast(&s->run_cond);
    pthread_mutex_unlock(&s->run_lock);
    if (joined) {
        int rc = pthread_join(s->watch_thread, NULL);
        if (rc != 0)
            log_error("zone=%s %s: joining the watch thread failed: %s", s->zone->name,
                      s->peer, strerror(rc));
    }
    pthread_cond_destroy(&s->run_cond);
    pthread_mutex_destroy(&s->run_lock);
    pthread_mutex_destroy(&s->win_lock);
}

/* ---- the window release mark ---- */

void session_win_hold(struct session *s, uint64_t idx)
{
    pthread_mutex_lock(&s->win_lock);
    while (s->win_n == SESSION_WIN_HOLDS) {
        /* Every held range belongs to an op queued on a stream: once they have run, all are
         * released. The worker waits for its own streams, never for the client. */
        pthread_mutex_unlock(&s->win_lock);
        session_kick(s);
        session_drain(s);
        pthread_mutex_lock(&s->win_lock);
    }
    uint32_t i = (s->win_head + s->win_n++) % SESSION_WIN_HOLDS;
    s->win_idx[i] = idx;
    s->win_done[i] = 0;
    pthread_mutex_unlock(&s->win_lock);
}

/* Under win_lock: marks idx released; returns the mark the held ranges allow now. */
static uint64_t win_release_locked(struct session *s, uint64_t idx)
{
    uint64_t last = 0;

    for (uint32_t k = 0; k < s->win_n; k++) {
        uint32_t i = (s->win_head + k) % SESSION_WIN_HOLDS;
        if (s->win_idx[i] == idx && !s->win_done[i]) {
            s->win_done[i] = 1;
            break;
        }
    }
    while (s->win_n > 0 && s->win_done[s->win_head]) {
        last = s->win_idx[s->win_head];
        s->win_head = (s->win_head + 1) % SESSION_WIN_HOLDS;
        s->win_n--;
    }
    return s->win_n > 0 ? s->win_idx[s->win_head] - 1 : last;
}

void session_win_release(struct session *s, uint64_t idx)
{
    pthread_mutex_lock(&s->win_lock);
    uint64_t mark = win_release_locked(s, idx);
    if (mark > s->win_mark) {
        s->win_mark = mark;
        /* Under win_lock: publications are serialised, as idm_release_publish asks. A failure
         * means the client is gone; its dispatch thread sees that and tears down. */
        if (s->conn != NULL)
            (void)idm_release_publish(s->conn, mark);
    }
    pthread_mutex_unlock(&s->win_lock);
}

static int launch_translate(void *ctx, uint64_t addr, uint64_t len, uint64_t *baddr,
                            uint64_t *alloc_base, uint64_t *alloc_size)
{
    struct session *s = ctx;
    long i;
    int rc = -EFAULT;

    pthread_rwlock_rdlock(&s->at_lock);
    i = atab_find(&s->at, addr, len);
    if (i >= 0 && !s->at.v[i].no_access) { /* a mapping without access faults */
        *baddr = s->at.v[i].baddr + (addr - s->at.v[i].va);
        *alloc_base = s->at.v[i].va;
        *alloc_size = s->at.v[i].size;
        rc = 0;
    }
    pthread_rwlock_unlock(&s->at_lock);
    return rc;
}

/* ---- one issue function per op kind ---- */

static CUresult issue_htod(struct session *s, struct backend_stream *bs, struct stream_op *op,
                           struct sop_reply *rep)
{
    (void)rep;
    return s->be->memcpy_htod(s->bz, bs, op->dst, op->hsrc, op->len);
}

/* The data goes to the window range, or to the reply tail; the reply says how much came. */
static CUresult issue_dtoh(struct session *s, struct backend_stream *bs, struct stream_op *op,
                           struct sop_reply *rep)
{
    struct idm_rep_MEMCPY_DTOH fixed = {.len = op->len};
    CUresult rc;

    rc = s->be->memcpy_dtoh(s->bz, bs, op->hdst ? op->hdst : rep->tail, op->src, op->len);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (op->hdst == NULL)
        rep->tail_len = (uint32_t)op->len;
    memcpy(rep->fixed, &fixed, sizeof(fixed));
    return CUDA_SUCCESS;
}

static CUresult issue_dtod(struct session *s, struct backend_stream *bs, struct stream_op *op,
                           struct sop_reply *rep)
{
    (void)rep;
    return s->be->memcpy_dtod(s->bz, bs, op->dst, op->src, op->len);
}

static CUresult issue_memset(struct session *s, struct backend_stream *bs, struct stream_op *op,
                             struct sop_reply *rep)
{
    (void)rep;
    return s->be->memset(s->bz, bs, op->dst, op->value, op->elem_size, op->width, op->pitch,
                         op->height);
}

/* Runs a launch with the session's memory view; execution faults become the session's sticky
 * error; faults and refusals are logged with the zone, rate-limited per thread (log.h). */
static CUresult issue_launch(struct session *s, struct backend_stream *bs, struct stream_op *op,
                             struct sop_reply *rep)
{
    struct backend_memview mem = {.ctx = s, .translate = launch_translate};
    struct launch_ticket t;
    char err[256] = "";
    CUresult sticky = (CUresult)__atomic_load_n(&s->sticky, __ATOMIC_ACQUIRE);
    CUresult rc;

    (void)rep;
    if (sticky)
        return sticky;
    if (ticket_take(s, &t, op->ctx) != 0)
        return CUDA_ERROR_CONTEXT_IS_DESTROYED;
    op->l.mem = &mem;
    op->l.cancel = &t.cancel;
    rc = s->be->launch(s->bz, op->k->bk, bs, &op->l, err, sizeof(err));
    op->l.mem = NULL;
    op->l.cancel = NULL;
    ticket_drop(s, &t);
    if (rc != CUDA_SUCCESS && __atomic_load_n(&t.cancel, __ATOMIC_RELAXED)) {
        log_limited(&log_thread_bucket, LOG_INFO, "zone=%s %s: kernel %s cancelled (its client "
                    "or context is gone): %s", s->zone->name, s->peer, op->k->name,
                    err[0] ? err : "no reason given");
        return CUDA_ERROR_CONTEXT_IS_DESTROYED;
    }
    switch (rc) {
    case CUDA_SUCCESS:
        break;
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_ASSERT:
        /* Execution faults poison the context, as on a real GPU. */
        __atomic_store_n(&s->sticky, rc, __ATOMIC_RELEASE);
        log_limited(&log_thread_bucket, LOG_WARN,
                    "zone=%s %s: kernel %s failed (CUresult %d, sticky): %s", s->zone->name,
                    s->peer, op->k->name, rc, err[0] ? err : "no reason given");
        break;
    default:
        /* tests/libvgpu/run-e2e.sh looks for "launch of kernel NAME refused". */
        log_limited(&log_thread_bucket, LOG_WARN,
                    "zone=%s %s: launch of kernel %s refused (CUresult %d): %s", s->zone->name,
                    s->peer, op->k->name, rc, err[0] ? err : "no reason given");
        break;
    }
    return rc;
}

static CUresult issue_event_record(struct session *s, struct backend_stream *bs,
                                   struct stream_op *op, struct sop_reply *rep)
{
    CUresult rc = s->be->event_record(s->bz, op->ev->be, bs);

    (void)rep;
    if (op->ev->ipc != NULL)
        ipc_event_mark(op->ev->ipc, op->ev_ticket);
    return rc;
}

/* The nodes of a graph launch in order; the first failure ends it, and so does the session's
 * cancellation (its client gone or closing). */
static CUresult issue_graph(struct session *s, struct backend_stream *bs, struct stream_op *op,
                            struct sop_reply *rep)
{
    for (uint32_t i = 0; i < op->nsub; i++) {
        CUresult rc;
        if (__atomic_load_n(&s->cancelled, __ATOMIC_ACQUIRE))
            return CUDA_ERROR_CONTEXT_IS_DESTROYED;
        if ((rc = stream_issue(s, bs, &op->sub[i], rep)) != CUDA_SUCCESS)
            return rc;
    }
    return CUDA_SUCCESS;
}

static CUresult issue_kind(struct session *s, struct backend_stream *bs, struct stream_op *op,
                           struct sop_reply *rep)
{
    switch (op->kind) {
    case SOP_HTOD: return issue_htod(s, bs, op, rep);
    case SOP_DTOH: return issue_dtoh(s, bs, op, rep);
    case SOP_DTOD: return issue_dtod(s, bs, op, rep);
    case SOP_MEMSET: return issue_memset(s, bs, op, rep);
    case SOP_LAUNCH: return issue_launch(s, bs, op, rep);
    case SOP_EVENT_RECORD: return issue_event_record(s, bs, op, rep);
    case SOP_GRAPH: return issue_graph(s, bs, op, rep);
    default: return CUDA_ERROR_UNKNOWN;
    }
}

/* Counts what an op that ran moved or launched (counters.h); ns: the simulated GPU's time in
 * a launch (0 for a real GPU's, which only enqueues). */
static void count_issued(struct worker_counters *m, const struct stream_op *op, uint64_t ns)
{
    switch (op->kind) {
    case SOP_HTOD: wm_add(&m->htod_bytes, op->len); break;
    case SOP_DTOH: wm_add(&m->dtoh_bytes, op->len); break;
    case SOP_DTOD: wm_add(&m->dtod_bytes, op->len); break;
    case SOP_LAUNCH:
        wm_add(&m->kernels, 1);
        wm_add(&m->busy_ns, ns);
        break;
    default: break;
    }
}

CUresult stream_issue(struct session *s, struct backend_stream *bs, struct stream_op *op,
                      struct sop_reply *rep)
{
    struct worker_counters *m = s->zone->m;
    /* A real GPU's launch only enqueues: its busy time comes from NVML (nvml.c). */
    uint64_t t0 = m && op->kind == SOP_LAUNCH && s->be->launch_runs_kernel ? wm_now_ns() : 0;
    CUresult rc = issue_kind(s, bs, op, rep);

    if (m && rc == CUDA_SUCCESS)
        count_issued(m, op, t0 ? wm_now_ns() - t0 : 0);
    return rc;
}

/* ---- stream workers ---- */

/* Issues a queued op; its reply payload is left in st->rbuf (*len bytes). After an execution
 * fault nothing but event records runs in the session any more, as on a real GPU. */
static CUresult run_queued(struct stream_obj *st, struct stream_op *op, uint32_t *len)
{
    struct session *s = st->s;
    const struct idm_op_info *info = idm_op_lookup(op->req.op);
    uint32_t rep_size = info ? info->rep_size : 0;
    struct sop_reply rep = {.fixed = st->rbuf, .tail = st->rbuf + rep_size, .tail_len = 0};
    CUresult rc = (CUresult)__atomic_load_n(&s->sticky, __ATOMIC_ACQUIRE);

    memset(st->rbuf, 0, rep_size);
    if (__atomic_load_n(&st->cancel, __ATOMIC_ACQUIRE) ||
        __atomic_load_n(&s->cancelled, __ATOMIC_ACQUIRE)) {
        rc = CUDA_ERROR_CONTEXT_IS_DESTROYED; /* drained without running */
        if (op->kind == SOP_EVENT_RECORD && op->ev->ipc) /* its waiters elsewhere go on */
            ipc_event_mark(op->ev->ipc, op->ev_ticket);
    } else if (rc == CUDA_SUCCESS || op->kind == SOP_EVENT_RECORD) {
        rc = stream_issue(s, st->bs, op, &rep);
    }
    if (rc != CUDA_SUCCESS) {
        /* A failed request answers with zeros, never with half-filled values. */
        memset(st->rbuf, 0, rep_size);
        rep.tail_len = 0;
    }
    *len = rep_size + rep.tail_len;
    return rc;
}

/* The heap bytes of a queued op (what op_copy needs). */
static size_t op_size(const struct stream_op *op)
{
    size_t off = (sizeof(*op) + 15) & ~(size_t)15;

    return off + (op->kind == SOP_LAUNCH ? (op->l.params_size ? op->l.params_size : 1) :
                  op->kind == SOP_GRAPH ? (size_t)op->nsub * sizeof(*op) : 0);
}

/* Ops up to OP_SPARE_SIZE bytes (a launch with up to 256 bytes of parameters, a copy, a
 * memset) are allocated at that size and, once finished, kept on their stream for the next
 * ones (the stream's list takes a run's small ops while it holds fewer than OP_SPARE_MAX, so at
 * most OP_SPARE_MAX + STREAM_PUBLISH_EVERY, and the dispatch thread takes the whole list),
 * so that a run of small ops costs no malloc and no free across the two threads. */
#define OP_SPARE_SIZE (((sizeof(struct stream_op) + 15) & ~(size_t)15) + 256)
#define OP_SPARE_MAX 32u

/* Sorts op onto the chain of small ops to keep (*keep, its last op *keep_tail) or of those to
 * free (*drop). Touches only op's link, which no other thread reads once op has run. */
static void op_sort(struct stream_op *op, struct stream_op **keep, struct stream_op **keep_tail,
                    struct stream_op **drop)
{
    struct stream_op **list = op_size(op) <= OP_SPARE_SIZE ? keep : drop;

    if (list == keep && *keep == NULL)
        *keep_tail = op;
    op->next = *list;
    *list = op;
}

static void op_list_free(struct stream_op *op)
{
    while (op != NULL) {
        struct stream_op *next = op->next;
        free(op);
        op = next;
    }
}

void stream_latch(struct session *s, struct stream_obj *st, CUresult rc)
{
    int expected = 0;

    __atomic_compare_exchange_n(st ? &st->latched : &s->latched, &expected, (int)rc, 0,
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

CUresult stream_take_latched(struct session *s, struct stream_obj *st)
{
    CUresult first, rc;
    struct stream_obj *o;

    if (st != NULL)
        return (CUresult)__atomic_exchange_n(&st->latched, 0, __ATOMIC_ACQ_REL);
    first = (CUresult)__atomic_exchange_n(&s->latched, 0, __ATOMIC_ACQ_REL);
    for (uint32_t i = 0; i < s->ht.used; i++) {
        if ((o = htab_slot(&s->ht, i, HT_STREAM, NULL)) == NULL)
            continue;
        rc = (CUresult)__atomic_exchange_n(&o->latched, 0, __ATOMIC_ACQ_REL);
        if (first == CUDA_SUCCESS)
            first = rc;
    }
    return first;
}

#define STREAM_PUBLISH_EVERY 64 /* unanswered ops run between two progress publications */

/* Under no lock: publishes that every op of the run up to `last` (n ops from *first on,
 * `bytes` heap bytes) is executed and finished, takes them off the queue, wakes whoever waits
 * (a synchronisation, a full queue, an event query) and frees them. */
static void publish_done(struct stream_obj *st, struct stream_op **first, struct stream_op *last,
                         uint32_t n, size_t bytes)
{
    struct stream_op *op = *first, *next, *keep = NULL, *keep_tail = NULL, *drop = NULL;

    /* The run's ops before `last` are sorted outside the lock: their links were written under
     * it before the run was taken, and only this thread reads them. */
    for (uint32_t i = 0; i + 1 < n; i++, op = next) {
        next = op->next;
        op_sort(op, &keep, &keep_tail, &drop);
    }
    pthread_mutex_lock(&st->lock);
    st->exec_seq = last->seq;
    st->done_seq = last->seq;
    st->head = last->next; /* read under the lock: the dispatch thread may be appending */
    if (st->head == NULL)
        st->tail = NULL;
    *first = st->head;
    st->queued_bytes -= bytes;
    op_sort(last, &keep, &keep_tail, &drop);
    if (keep != NULL && st->nspare < OP_SPARE_MAX) { /* the list grows by one run at most */
        keep_tail->next = st->spare;
        st->spare = keep;
        st->nspare += n; /* an upper bound of what was kept */
        keep = NULL;
    }
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    op_list_free(keep);
    op_list_free(drop);
}

/* Under no lock: marks op executed before its reply goes out (a query after the answer finds
 * the op done); its publication as finished comes after the reply (a synchronisation returns
 * only once every earlier reply was sent, so a client never sees a sync overtake the data of an
 * earlier copy). */
static void answer_queued(struct stream_obj *st, struct stream_op *op, CUresult rc,
                          uint32_t len)
{
    pthread_mutex_lock(&st->lock);
    st->exec_seq = op->seq;
    pthread_mutex_unlock(&st->lock);
    /* A failed send means the client is gone; its dispatch thread tears down. */
    if (st->s->send_reply)
        st->s->send_reply(st->s->reply_ctx, &op->req, rc, st->rbuf, len);
}

/* Runs the ops queued from `op` up to `last` (the queue's tail when the run was taken) in
 * order. Unanswered ops only latch their failure and are published as done in groups, so a
 * stream's run of launches costs one lock and one wake-up per group, not per op. */
static void run_ops(struct stream_obj *st, struct stream_op *op, struct stream_op *last)
{
    struct stream_op *first = op;
    uint32_t n = 0;
    size_t bytes = 0;

    for (;;) {
        uint32_t len;
        CUresult rc = run_queued(st, op, &len);
        int end = op == last;

        wm_result(st->s->zone->m, rc); /* the dispatch counted the call, not its answer */
        if (op->win_idx != 0) /* run (or drained): its window range is the client's again */
            session_win_release(st->s, op->win_idx);
        if (!(op->req.flags & IDM_F_NOREPLY))
            answer_queued(st, op, rc, len);
        else if (rc != CUDA_SUCCESS)
            stream_latch(st->s, st, rc);
        n++;
        bytes += op_size(op);
        if (end || n == STREAM_PUBLISH_EVERY || !(op->req.flags & IDM_F_NOREPLY)) {
            publish_done(st, &first, op, n, bytes);
            if (end)
                return;
            op = first;
            n = 0;
            bytes = 0;
        } else {
            op = op->next; /* op is not the run's last: its link was set under the lock */
        }
    }
}

static void *stream_main(void *arg)
{
    struct stream_obj *st = arg;

    for (;;) {
        struct stream_op *first, *last;

        pthread_mutex_lock(&st->lock);
        while (st->head == NULL && !st->stop)
            pthread_cond_wait(&st->cond, &st->lock);
        first = st->head;
        last = st->tail;
        pthread_mutex_unlock(&st->lock);
        if (first == NULL)
            break; /* stopped with an empty queue */
        run_ops(st, first, last);
    }
    return NULL;
}

/* Notes st for session_kick, which wakes its worker once for the run of requests the dispatch
 * thread is draining. */
static void kick_later(struct stream_obj *st)
{
    struct session *s = st->s;

    if (st->kick_pending)
        return;
    if (s->nkick == SESSION_MAX_STREAMS) /* cannot happen: one entry per live stream */
        session_kick(s);
    st->kick_pending = 1;
    s->kick[s->nkick++] = st;
}

/* Queues op (allocated with malloc; the worker frees it) and returns its ticket. */
static uint64_t stream_submit(struct stream_obj *st, struct stream_op *op)
{
    uint64_t seq;

    op->next = NULL;
    pthread_mutex_lock(&st->lock);
    /* Bounded queue: the dispatch thread waits for the stream's own progress, never for the
     * client (an empty queue always takes one op, however large). */
    while (st->head != NULL && (st->enq_seq - st->done_seq >= STREAM_QUEUE_MAX ||
                                st->queued_bytes + op_size(op) > STREAM_QUEUE_BYTES)) {
        pthread_cond_broadcast(&st->cond); /* the worker may not have been woken yet */
        pthread_cond_wait(&st->cond, &st->lock);
    }
    st->queued_bytes += op_size(op);
    seq = op->seq = ++st->enq_seq;
    if (st->tail)
        st->tail->next = op;
    else
        st->head = op;
    st->tail = op;
    if (st->own == NULL) { /* the dispatch thread takes the spares for its next ops */
        st->own = st->spare;
        st->spare = NULL;
        st->nspare = 0;
    }
    pthread_mutex_unlock(&st->lock);
    kick_later(st);
    return seq;
}

void session_kick(struct session *s)
{
    for (uint32_t i = 0; i < s->nkick; i++) {
        struct stream_obj *st = s->kick[i];
        pthread_mutex_lock(&st->lock);
        pthread_cond_broadcast(&st->cond);
        pthread_mutex_unlock(&st->lock);
        st->kick_pending = 0;
    }
    s->nkick = 0;
}

/* A heap copy of a prepared op that answers req, for st's queue (a spare when it is small);
 * a launch's copy carries its own parameters, a graph launch's its own array of node ops
 * (after the struct, 16-byte aligned). */
static struct stream_op *op_copy(struct stream_obj *st, const struct stream_op *op,
                                 const struct idm_hdr *req)
{
    size_t off = (sizeof(*op) + 15) & ~(size_t)15, size = op_size(op);
    struct stream_op *q;

    if (size <= OP_SPARE_SIZE && st->own != NULL) {
        q = st->own;
        st->own = q->next;
    } else {
        q = malloc(size <= OP_SPARE_SIZE ? OP_SPARE_SIZE : size);
    }
    if (q == NULL)
        return NULL;
    *q = *op;
    q->req = *req;
    if (op->kind == SOP_LAUNCH) {
        memcpy((uint8_t *)q + off, op->l.params, op->l.params_size);
        q->l.params = (uint8_t *)q + off;
    } else if (op->kind == SOP_GRAPH) {
        q->sub = (struct stream_op *)((uint8_t *)q + off);
        memcpy(q->sub, op->sub, (size_t)op->nsub * sizeof(*op));
    }
    return q;
}

CUresult stream_queue(struct stream_obj *st, const struct stream_op *op,
                      const struct idm_hdr *req, uint64_t *ticket)
{
    struct stream_op *q = op_copy(st, op, req);

    if (q == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    *ticket = stream_submit(st, q);
    return CUDA_SUCCESS;
}

int stream_start(struct stream_obj *st)
{
    int rc;

    st->rbuf = calloc(1, st->s->max_reply);
    if (st->rbuf == NULL)
        return -ENOMEM;
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cond, NULL);
    rc = pthread_create(&st->thread, NULL, stream_main, st);
    if (rc != 0) {
        log_error("zone=%s %s: cannot start a stream worker: %s", st->s->zone->name,
                  st->s->peer, strerror(rc));
        pthread_mutex_destroy(&st->lock);
        pthread_cond_destroy(&st->cond);
        free(st->rbuf);
        st->rbuf = NULL;
        return -rc;
    }
    return 0;
}

void stream_stop(struct stream_obj *st)
{
    session_kick(st->s); /* also takes st off the list of streams to wake */
    pthread_mutex_lock(&st->lock);
    while (st->head != NULL)
        pthread_cond_wait(&st->cond, &st->lock);
    st->stop = 1;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->thread, NULL);
    pthread_mutex_destroy(&st->lock);
    pthread_cond_destroy(&st->cond);
    free(st->rbuf);
    st->rbuf = NULL;
    op_list_free(st->spare);
    op_list_free(st->own);
    st->spare = st->own = NULL;
    st->nspare = 0;
}

void stream_wait(struct stream_obj *st, uint64_t seq)
{
    pthread_mutex_lock(&st->lock);
    if (st->done_seq < seq)
        pthread_cond_broadcast(&st->cond); /* its worker may not have been woken yet */
    while (st->done_seq < seq)
        pthread_cond_wait(&st->cond, &st->lock);
    pthread_mutex_unlock(&st->lock);
}

int stream_idle(struct stream_obj *st)
{
    int idle;

    pthread_mutex_lock(&st->lock);
    idle = st->exec_seq == st->enq_seq;
    if (!idle)
        pthread_cond_broadcast(&st->cond); /* its worker may not have been woken yet */
    pthread_mutex_unlock(&st->lock);
    return idle;
}

void session_drain(struct session *s)
{
    struct stream_obj *st;

    for (uint32_t i = 0; i < s->ht.used; i++) {
        if ((st = htab_slot(&s->ht, i, HT_STREAM, NULL)) == NULL)
            continue;
        pthread_mutex_lock(&st->lock);
        uint64_t want = st->enq_seq;
        pthread_mutex_unlock(&st->lock);
        stream_wait(st, want);
    }
}

int event_done(const struct event_obj *e)
{
    if (e->ipc != NULL)
        return ipc_event_ready(e->ipc);
    if (!e->recorded || e->rec_stream == NULL)
        return 1;
    pthread_mutex_lock(&e->rec_stream->lock);
    int done = e->rec_stream->done_seq >= e->rec_seq;
    if (!done)
        pthread_cond_broadcast(&e->rec_stream->cond); /* its worker may not be awake yet */
    pthread_mutex_unlock(&e->rec_stream->lock);
    return done;
}
