/* stream.c - the stream workers of a session. The dispatch thread validates a request,
 * translates its addresses and queues it; the stream's worker runs the queue in order, sets
 * the session's sticky error on an execution fault and sends each reply itself. Workers read
 * the allocation table only under its read lock (launch address checks). */
#include "stream.h"

#include <cuda.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int launch_translate(void *ctx, uint64_t addr, uint64_t len, uint64_t *baddr,
                            uint64_t *alloc_base, uint64_t *alloc_size)
{
    struct session *s = ctx;
    long i;
    int rc = -EFAULT;

    pthread_rwlock_rdlock(&s->at_lock);
    i = atab_find(&s->at, addr, len);
    if (i >= 0) {
        *baddr = s->at.v[i].baddr + (addr - s->at.v[i].va);
        *alloc_base = s->at.v[i].va;
        *alloc_size = s->at.v[i].size;
        rc = 0;
    }
    pthread_rwlock_unlock(&s->at_lock);
    return rc;
}

int exec_launch(struct session *s, struct kernel_obj *k, struct backend_stream *bs,
                struct backend_launch *l)
{
    struct backend_memview mem = {.ctx = s, .translate = launch_translate};
    char err[256] = "";
    int sticky = __atomic_load_n(&s->sticky, __ATOMIC_ACQUIRE);
    int rc;

    if (sticky)
        return sticky;
    l->mem = &mem;
    rc = s->be->launch(s->bz, k->bk, bs, l, err, sizeof(err));
    l->mem = NULL;
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
        log_warn("zone=%s %s: kernel %s failed (CUresult %d, sticky): %s", s->zone->name,
                 s->peer, k->name, rc, err[0] ? err : "no reason given");
        break;
    default:
        log_warn("zone=%s %s: launch of kernel %s refused (CUresult %d): %s", s->zone->name,
                 s->peer, k->name, rc, err[0] ? err : "no reason given");
        break;
    }
    return rc;
}

static int run_op(struct stream_obj *st, struct stream_op *op, uint32_t *tail_len)
{
    struct session *s = st->s;
    int sticky = __atomic_load_n(&s->sticky, __ATOMIC_ACQUIRE);

    *tail_len = 0;
    /* After an execution fault nothing more runs in this session, as on a real GPU. */
    if (sticky && op->kind != SOP_EVENT_RECORD)
        return sticky;
    switch (op->kind) {
    case SOP_HTOD:
        return s->be->memcpy_htod(s->bz, st->bs, op->dst, op->host, op->len);
    case SOP_DTOH: {
        void *dst = op->host ? op->host : st->rbuf + sizeof(struct idm_rep_MEMCPY_DTOH);
        int rc = s->be->memcpy_dtoh(s->bz, st->bs, dst, op->src, op->len);
        if (rc == CUDA_SUCCESS && op->host == NULL)
            *tail_len = (uint32_t)op->len;
        return rc;
    }
    case SOP_DTOD:
        return s->be->memcpy_dtod(s->bz, st->bs, op->dst, op->src, op->len);
    case SOP_MEMSET:
        return s->be->memset(s->bz, st->bs, op->dst, op->value, op->elem_size, op->width,
                             op->pitch, op->height);
    case SOP_LAUNCH:
        op->l.params = op->params;
        return exec_launch(s, op->k, st->bs, &op->l);
    case SOP_EVENT_RECORD:
        return s->be->event_record(s->bz, op->ev->be, st->bs);
    default:
        return CUDA_ERROR_UNKNOWN;
    }
}

static void *stream_main(void *arg)
{
    struct stream_obj *st = arg;
    struct session *s = st->s;

    for (;;) {
        struct stream_op *op;
        uint32_t tail_len, rep_len;
        int rc;

        pthread_mutex_lock(&st->lock);
        while (st->head == NULL && !st->stop)
            pthread_cond_wait(&st->cond, &st->lock);
        op = st->head;
        pthread_mutex_unlock(&st->lock);
        if (op == NULL)
            break; /* stopped with an empty queue */
        rc = run_op(st, op, &tail_len);
        if (s->send_reply) {
            rep_len = 0;
            if (op->kind == SOP_DTOH) {
                struct idm_rep_MEMCPY_DTOH rep = {.len = rc == CUDA_SUCCESS ? op->len : 0};
                memcpy(st->rbuf, &rep, sizeof(rep));
                rep_len = (uint32_t)sizeof(rep) + tail_len;
            }
            /* A failed send means the client is gone; its dispatch thread tears down. */
            s->send_reply(s->reply_ctx, &op->req, rc, st->rbuf, rep_len);
        }
        pthread_mutex_lock(&st->lock);
        st->head = op->next;
        if (st->head == NULL)
            st->tail = NULL;
        st->done_seq = op->seq;
        pthread_cond_broadcast(&st->cond);
        pthread_mutex_unlock(&st->lock);
        free(op->params);
        free(op);
    }
    return NULL;
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
}

uint64_t stream_submit(struct stream_obj *st, struct stream_op *op)
{
    uint64_t seq;

    op->next = NULL;
    pthread_mutex_lock(&st->lock);
    seq = op->seq = ++st->enq_seq;
    if (st->tail)
        st->tail->next = op;
    else
        st->head = op;
    st->tail = op;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    return seq;
}

void stream_wait(struct stream_obj *st, uint64_t seq)
{
    pthread_mutex_lock(&st->lock);
    while (st->done_seq < seq)
        pthread_cond_wait(&st->cond, &st->lock);
    pthread_mutex_unlock(&st->lock);
}

int stream_idle(struct stream_obj *st)
{
    int idle;

    pthread_mutex_lock(&st->lock);
    idle = st->done_seq == st->enq_seq;
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
    if (!e->recorded || e->rec_stream == NULL)
        return 1;
    pthread_mutex_lock(&e->rec_stream->lock);
    int done = e->rec_stream->done_seq >= e->rec_seq;
    pthread_mutex_unlock(&e->rec_stream->lock);
    return done;
}
