/* dispatch.c - the request handlers of gpu_proxy, one per op of idm_ops.def, and the table that
 * indexes them by op number. Everything a request names (handles, device addresses, window
 * ranges, lengths, names) is checked here against the session's own tables before any backend
 * call; a bad value gets the CUresult a real driver would give and never reaches the backend. */
#include "dispatch.h"

#include <cuda.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idm_transport.h"
#include "log.h"
#include "stream.h"

#define IMAGE_MAX_BYTES (512ull << 20)     /* one code image */
#define STAGING_MAX_BYTES (1024ull << 20)  /* all staging images of one session */
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
};

#define ZN(r) ((r)->s->zone->name)
#define PEER(r) ((r)->s->peer)

/* ---- lookups shared by the handlers ---- */

static int get_ctx(struct rq *r, idm_handle h, idm_handle *out)
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

/* *st is NULL for the default stream. */
static int get_stream(struct rq *r, idm_handle h, struct stream_obj **st)
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

/* Work on the default stream runs inline, after every stream of the session has drained
 * (the legacy default stream waits for the others). */
static void default_stream_enter(struct rq *r)
{
    session_drain(r->s);
}

/* Queues op on stream st; its worker sends the reply. */
static int defer(struct rq *r, struct stream_obj *st, struct stream_op *op)
{
    op->req = *r->h;
    stream_submit(st, op);
    r->deferred = 1;
    return CUDA_SUCCESS;
}

static struct stream_op *new_op(int kind)
{
    struct stream_op *op = calloc(1, sizeof(*op));

    if (op)
        op->kind = kind;
    return op;
}

static struct event_obj *get_event(struct rq *r, idm_handle h)
{
    return htab_lookup(&r->s->ht, h, HT_EVENT);
}

static struct kernel_obj *get_kernel(struct rq *r, idm_handle h)
{
    return htab_lookup(&r->s->ht, h, HT_KERNEL);
}

/* [va, va+len) must lie inside one allocation of this session: its backend address. */
static int dev_range(struct rq *r, uint64_t va, uint64_t len, uint64_t *baddr)
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

/* [off, off+len) of the connection's window. */
static int win_range(struct rq *r, uint64_t off, uint64_t len, uint8_t **p)
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

/* A NUL-terminated name in the request tail. */
static int tail_name(struct rq *r, const char **name)
{
    if (r->tail_len == 0 || r->tail_len > IDM_SYMBOL_MAX ||
        memchr(r->tail, 0, r->tail_len) == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *name = (const char *)r->tail;
    return CUDA_SUCCESS;
}

static int sticky(struct rq *r)
{
    return __atomic_load_n(&r->s->sticky, __ATOMIC_ACQUIRE);
}

static int sync_status(struct rq *r, int rc)
{
    return sticky(r) ? sticky(r) : rc;
}

/* ---- session and device ---- */

static int h_HELLO(struct rq *r, const struct idm_req_HELLO *q, struct idm_rep_HELLO *p)
{
    struct session *s = r->s;
    uint64_t free_b, total_b;

    if (q->proto_version != IDM_PROTOCOL_VERSION)
        log_warn("zone=%s %s: client speaks protocol %u, proxy %u", ZN(r), PEER(r),
                 q->proto_version, IDM_PROTOCOL_VERSION);
    if (s->be->mem_info(&free_b, &total_b) != CUDA_SUCCESS)
        total_b = 0;
    p->quota = s->zone->quota ? s->zone->quota : total_b;
    p->proto_version = IDM_PROTOCOL_VERSION;
    p->zone_id = s->zone->id;
    p->driver_version = s->be->driver_version();
    p->device_count = s->be->device_count();
    snprintf(p->zone_name, sizeof(p->zone_name), "%s", s->zone->name);
    log_info("zone=%s %s: hello (client pid %u, protocol %u)", ZN(r), PEER(r), q->pid,
             q->proto_version);
    return CUDA_SUCCESS;
}

static int h_DEVICE_GET_PROPS(struct rq *r, const struct idm_req_DEVICE_GET_PROPS *q,
                              struct idm_rep_DEVICE_GET_PROPS *p)
{
    struct backend_device_props props;
    int rc;

    if (q->device < 0 || q->device >= r->s->be->device_count())
        return CUDA_ERROR_INVALID_DEVICE;
    rc = r->s->be->device_props(q->device, &props);
    if (rc != CUDA_SUCCESS)
        return rc;
    p->total_mem = props.total_mem;
    memcpy(p->uuid, props.uuid, sizeof(p->uuid));
    memcpy(p->name, props.name, sizeof(p->name));
    p->name[sizeof(p->name) - 1] = 0;
    memcpy(p->attrs, props.attrs, sizeof(p->attrs));
    return CUDA_SUCCESS;
}

static int h_MEM_GET_INFO(struct rq *r, const struct idm_req_MEM_GET_INFO *q,
                          struct idm_rep_MEM_GET_INFO *p)
{
    struct zone *z = r->s->zone;
    uint64_t free_b, total_b, used;
    idm_handle ctx;
    int rc;

    if ((rc = get_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if ((rc = r->s->be->mem_info(&free_b, &total_b)) != CUDA_SUCCESS)
        return rc;
    pthread_mutex_lock(&z->lock);
    used = z->used;
    pthread_mutex_unlock(&z->lock);
    if (z->quota) {
        p->total = z->quota;
        p->free = used < z->quota ? z->quota - used : 0;
        if (p->free > free_b)
            p->free = free_b;
    } else {
        p->total = total_b;
        p->free = free_b;
    }
    return CUDA_SUCCESS;
}

/* ---- contexts ---- */

static int check_device(struct rq *r, int32_t device)
{
    return device >= 0 && device < r->s->be->device_count() ? CUDA_SUCCESS
                                                             : CUDA_ERROR_INVALID_DEVICE;
}

static int new_ctx(struct rq *r, int primary, uint32_t flags, idm_handle *out)
{
    struct ctx_obj *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    c->primary = primary;
    c->flags = flags;
    c->limits[CU_LIMIT_STACK_SIZE] = 1024;
    c->limits[CU_LIMIT_PRINTF_FIFO_SIZE] = 1 << 20;
    c->limits[CU_LIMIT_MALLOC_HEAP_SIZE] = 8 << 20;
    c->limits[CU_LIMIT_DEV_RUNTIME_SYNC_DEPTH] = 2;
    c->limits[CU_LIMIT_DEV_RUNTIME_PENDING_LAUNCH_COUNT] = 2048;
    c->limits[CU_LIMIT_MAX_L2_FETCH_GRANULARITY] = 32;
    c->limits[CU_LIMIT_PERSISTING_L2_CACHE_SIZE] = 0;
    c->limits[CU_LIMIT_SHMEM_SIZE] = 0;  /* not a CIG context */
    c->limits[CU_LIMIT_CIG_ENABLED] = 0;
    c->limits[CU_LIMIT_CIG_SHMEM_FALLBACK_ENABLED] = 1;
    if (htab_insert(&r->s->ht, HT_CTX, c, out) != 0) {
        free(c);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    return CUDA_SUCCESS;
}

static int h_PRIMARY_CTX_RETAIN(struct rq *r, const struct idm_req_PRIMARY_CTX_RETAIN *q,
                                struct idm_rep_PRIMARY_CTX_RETAIN *p)
{
    struct session *s = r->s;
    int rc;

    if ((rc = check_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    if (s->primary_ctx == 0) {
        if ((rc = new_ctx(r, 1, s->primary_flags, &s->primary_ctx)) != CUDA_SUCCESS)
            return rc;
        s->primary_refs = 0;
    }
    s->primary_refs++;
    p->ctx = s->primary_ctx;
    return CUDA_SUCCESS;
}

static int h_PRIMARY_CTX_RELEASE(struct rq *r, const struct idm_req_PRIMARY_CTX_RELEASE *q,
                                 struct idm_rep_PRIMARY_CTX_RELEASE *p)
{
    struct session *s = r->s;
    int rc;

    (void)p;
    if ((rc = check_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    if (s->primary_ctx == 0 || s->primary_refs <= 0)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (--s->primary_refs == 0)
        session_release(s, s->primary_ctx); /* the last reference destroys the context */
    return CUDA_SUCCESS;
}

static int h_PRIMARY_CTX_RESET(struct rq *r, const struct idm_req_PRIMARY_CTX_RESET *q,
                               struct idm_rep_PRIMARY_CTX_RESET *p)
{
    int rc;

    (void)p;
    if ((rc = check_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    if (r->s->primary_ctx)
        session_release(r->s, r->s->primary_ctx);
    return CUDA_SUCCESS;
}

static int h_PRIMARY_CTX_SET_FLAGS(struct rq *r, const struct idm_req_PRIMARY_CTX_SET_FLAGS *q,
                                   struct idm_rep_PRIMARY_CTX_SET_FLAGS *p)
{
    int rc;

    (void)p;
    if ((rc = check_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    if (q->flags & ~0x1Fu)
        return CUDA_ERROR_INVALID_VALUE;
    r->s->primary_flags = q->flags;
    return CUDA_SUCCESS;
}

static int h_PRIMARY_CTX_GET_STATE(struct rq *r, const struct idm_req_PRIMARY_CTX_GET_STATE *q,
                                   struct idm_rep_PRIMARY_CTX_GET_STATE *p)
{
    int rc;

    if ((rc = check_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    p->flags = r->s->primary_flags;
    p->active = r->s->primary_ctx != 0 && r->s->primary_refs > 0;
    return CUDA_SUCCESS;
}

static int h_CTX_CREATE(struct rq *r, const struct idm_req_CTX_CREATE *q,
                        struct idm_rep_CTX_CREATE *p)
{
    int rc;

    if ((rc = check_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    return new_ctx(r, 0, q->flags, &p->ctx);
}

static int h_CTX_DESTROY(struct rq *r, const struct idm_req_CTX_DESTROY *q,
                         struct idm_rep_CTX_DESTROY *p)
{
    struct ctx_obj *c = htab_lookup(&r->s->ht, q->ctx, HT_CTX);

    (void)p;
    if (c == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    if (c->primary)
        return CUDA_ERROR_INVALID_CONTEXT;
    session_release(r->s, q->ctx);
    return CUDA_SUCCESS;
}

static int h_CTX_SYNCHRONIZE(struct rq *r, const struct idm_req_CTX_SYNCHRONIZE *q,
                             struct idm_rep_CTX_SYNCHRONIZE *p)
{
    idm_handle ctx;
    int rc;

    (void)p;
    if ((rc = get_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    session_drain(r->s);
    return sync_status(r, r->s->be->zone_sync(r->s->bz));
}

static int h_CTX_GET_LIMIT(struct rq *r, const struct idm_req_CTX_GET_LIMIT *q,
                           struct idm_rep_CTX_GET_LIMIT *p)
{
    idm_handle ctx;
    int rc;

    if ((rc = get_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if (q->limit >= CU_LIMIT_MAX)
        return CUDA_ERROR_UNSUPPORTED_LIMIT;
    p->value = ((struct ctx_obj *)htab_lookup(&r->s->ht, ctx, HT_CTX))->limits[q->limit];
    return CUDA_SUCCESS;
}

static int h_CTX_SET_LIMIT(struct rq *r, const struct idm_req_CTX_SET_LIMIT *q,
                           struct idm_rep_CTX_SET_LIMIT *p)
{
    idm_handle ctx;
    int rc;

    (void)p;
    if ((rc = get_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    /* CU_LIMIT_SHMEM_SIZE and CU_LIMIT_CIG_ENABLED can only be queried */
    if (q->limit >= CU_LIMIT_MAX || q->limit == CU_LIMIT_SHMEM_SIZE ||
        q->limit == CU_LIMIT_CIG_ENABLED)
        return CUDA_ERROR_UNSUPPORTED_LIMIT;
    ((struct ctx_obj *)htab_lookup(&r->s->ht, ctx, HT_CTX))->limits[q->limit] = q->value;
    return CUDA_SUCCESS;
}

/* ---- device memory ---- */

/* Allocates zone memory: quota, zone address, backend memory, allocation-table entry. */
static int zone_alloc(struct session *s, uint64_t size, uint8_t kind, idm_handle owner,
                      uint64_t *va, uint64_t *baddr_out)
{
    struct alloc a;
    uint64_t baddr;
    int rc;

    rc = zone_charge(s->zone, size, va);
    if (rc == -ENOMEM) {
        log_warn("zone=%s %s: allocation of %llu bytes refused: quota %llu bytes exceeded",
                 s->zone->name, s->peer, (unsigned long long)size,
                 (unsigned long long)s->zone->quota);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (rc != 0) {
        log_warn("zone=%s %s: allocation of %llu bytes refused: zone address space exhausted",
                 s->zone->name, s->peer, (unsigned long long)size);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    rc = s->be->mem_alloc(s->bz, size, &baddr);
    if (rc != CUDA_SUCCESS) {
        log_warn("zone=%s %s: backend could not allocate %llu bytes (CUresult %d)",
                 s->zone->name, s->peer, (unsigned long long)size, rc);
        goto uncharge;
    }
    memset(&a, 0, sizeof(a));
    a.va = *va;
    a.size = size;
    a.charged = size;
    a.baddr = baddr;
    a.owner = owner;
    a.kind = kind;
    a.buffer_id = s->next_buffer_id++;
    pthread_rwlock_wrlock(&s->at_lock);
    rc = atab_insert(&s->at, &a);
    pthread_rwlock_unlock(&s->at_lock);
    if (rc != 0) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto free_backend;
    }
    if (baddr_out)
        *baddr_out = baddr;
    return CUDA_SUCCESS;

free_backend:
    s->be->mem_free(s->bz, baddr, size);
uncharge:
    zone_uncharge(s->zone, size);
    return rc;
}

static int h_MEM_ALLOC(struct rq *r, const struct idm_req_MEM_ALLOC *q,
                       struct idm_rep_MEM_ALLOC *p)
{
    idm_handle ctx;
    int rc;

    if ((rc = get_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if (q->size == 0)
        return CUDA_ERROR_INVALID_VALUE;
    return zone_alloc(r->s, q->size, ALLOC_MEM, ctx, &p->dptr, NULL);
}

static int h_MEM_FREE(struct rq *r, const struct idm_req_MEM_FREE *q, struct idm_rep_MEM_FREE *p)
{
    long i;

    (void)p;
    if (q->dptr == 0)
        return CUDA_SUCCESS;
    i = atab_find_base(&r->s->at, q->dptr);
    if (i < 0 || r->s->at.v[i].kind != ALLOC_MEM)
        return CUDA_ERROR_INVALID_VALUE;
    /* cuMemFree waits for the work that may still use the memory. */
    session_drain(r->s);
    r->s->be->zone_sync(r->s->bz);
    session_free_alloc(r->s, i);
    return CUDA_SUCCESS;
}

static int h_MEM_GET_ADDRESS_RANGE(struct rq *r, const struct idm_req_MEM_GET_ADDRESS_RANGE *q,
                                   struct idm_rep_MEM_GET_ADDRESS_RANGE *p)
{
    long i = atab_find(&r->s->at, q->dptr, 1);

    if (i < 0)
        return CUDA_ERROR_NOT_FOUND;
    p->base = r->s->at.v[i].va;
    p->size = r->s->at.v[i].size;
    return CUDA_SUCCESS;
}

static int h_MEMCPY_HTOD(struct rq *r, const struct idm_req_MEMCPY_HTOD *q,
                         struct idm_rep_MEMCPY_HTOD *p)
{
    struct stream_obj *st;
    const uint8_t *src;
    uint8_t *w;
    uint64_t dst;
    int rc;

    (void)p;
    if ((rc = get_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (q->len == 0)
        return CUDA_SUCCESS;
    if (q->win_len == 0) {
        if (q->len > r->tail_len)
            return CUDA_ERROR_INVALID_VALUE;
        src = r->tail;
    } else {
        if (q->len > q->win_len)
            return CUDA_ERROR_INVALID_VALUE;
        if ((rc = win_range(r, q->win_off, q->len, &w)) != CUDA_SUCCESS)
            return rc;
        src = w;
    }
    if ((rc = dev_range(r, q->dst, q->len, &dst)) != CUDA_SUCCESS)
        return rc;
    /* Inline data lives in the request message: copy it inline; window data may be queued. */
    if (st != NULL && q->win_len != 0) {
        struct stream_op *op = new_op(SOP_HTOD);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        op->dst = dst;
        op->host = w;
        op->len = q->len;
        return defer(r, st, op);
    }
    if (st != NULL)
        stream_wait(st, st->enq_seq);
    else
        default_stream_enter(r);
    return r->s->be->memcpy_htod(r->s->bz, st ? st->bs : NULL, dst, src, q->len);
}

static int h_MEMCPY_DTOH(struct rq *r, const struct idm_req_MEMCPY_DTOH *q,
                         struct idm_rep_MEMCPY_DTOH *p)
{
    struct stream_obj *st;
    uint8_t *dstp;
    uint64_t src;
    int rc;

    if ((rc = get_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (sticky(r))
        return sticky(r);
    if (q->len == 0) {
        p->len = 0;
        return CUDA_SUCCESS;
    }
    if (q->win_len == 0) {
        if (q->len > r->rtail_max)
            return CUDA_ERROR_INVALID_VALUE;
        dstp = r->rtail;
    } else {
        if (q->len > q->win_len)
            return CUDA_ERROR_INVALID_VALUE;
        if ((rc = win_range(r, q->win_off, q->len, &dstp)) != CUDA_SUCCESS)
            return rc;
    }
    if ((rc = dev_range(r, q->src, q->len, &src)) != CUDA_SUCCESS)
        return rc;
    if (st != NULL) {
        /* Answered by the stream's worker once the data is there. */
        struct stream_op *op = new_op(SOP_DTOH);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        op->src = src;
        op->host = q->win_len ? dstp : NULL;
        op->len = q->len;
        return defer(r, st, op);
    }
    default_stream_enter(r);
    rc = r->s->be->memcpy_dtoh(r->s->bz, NULL, dstp, src, q->len);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (q->win_len == 0)
        r->rtail_len = (uint32_t)q->len;
    p->len = q->len;
    return CUDA_SUCCESS;
}

static int h_MEMCPY_DTOD(struct rq *r, const struct idm_req_MEMCPY_DTOD *q,
                         struct idm_rep_MEMCPY_DTOD *p)
{
    struct stream_obj *st;
    uint64_t dst, src;
    int rc;

    (void)p;
    if ((rc = get_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (q->len == 0)
        return CUDA_SUCCESS;
    if ((rc = dev_range(r, q->dst, q->len, &dst)) != CUDA_SUCCESS ||
        (rc = dev_range(r, q->src, q->len, &src)) != CUDA_SUCCESS)
        return rc;
    if (st != NULL) {
        struct stream_op *op = new_op(SOP_DTOD);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        op->dst = dst;
        op->src = src;
        op->len = q->len;
        return defer(r, st, op);
    }
    default_stream_enter(r);
    return r->s->be->memcpy_dtod(r->s->bz, NULL, dst, src, q->len);
}

static int h_MEMSET(struct rq *r, const struct idm_req_MEMSET *q, struct idm_rep_MEMSET *p)
{
    struct stream_obj *st;
    uint64_t row_bytes, span, pitch, dst;
    int rc;

    (void)p;
    if ((rc = get_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (q->elem_size != 1 && q->elem_size != 2 && q->elem_size != 4)
        return CUDA_ERROR_INVALID_VALUE;
    if (q->count == 0 || q->height == 0)
        return CUDA_SUCCESS;
    if (q->count > UINT64_MAX / q->elem_size)
        return CUDA_ERROR_INVALID_VALUE;
    if (q->dst % q->elem_size != 0)
        return CUDA_ERROR_INVALID_VALUE;
    row_bytes = q->count * q->elem_size;
    if (q->height == 1) {
        pitch = row_bytes;
        span = row_bytes;
    } else {
        pitch = q->pitch;
        if (pitch < row_bytes || q->height - 1 > (UINT64_MAX - row_bytes) / pitch)
            return CUDA_ERROR_INVALID_VALUE;
        span = pitch * (q->height - 1) + row_bytes;
    }
    if ((rc = dev_range(r, q->dst, span, &dst)) != CUDA_SUCCESS)
        return rc;
    if (st != NULL) {
        struct stream_op *op = new_op(SOP_MEMSET);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        op->dst = dst;
        op->value = q->value;
        op->elem_size = q->elem_size;
        op->width = q->count;
        op->pitch = pitch;
        op->height = q->height;
        return defer(r, st, op);
    }
    default_stream_enter(r);
    return r->s->be->memset(r->s->bz, NULL, dst, q->value, q->elem_size, q->count, pitch,
                            q->height);
}

/* ---- streams and events ---- */

static int h_STREAM_CREATE(struct rq *r, const struct idm_req_STREAM_CREATE *q,
                           struct idm_rep_STREAM_CREATE *p)
{
    struct stream_obj *o;
    idm_handle ctx;
    int rc;

    if ((rc = get_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if (q->flags & ~(uint32_t)CU_STREAM_NON_BLOCKING)
        return CUDA_ERROR_INVALID_VALUE;
    if (r->s->nstreams >= SESSION_MAX_STREAMS) {
        log_warn("zone=%s %s: stream refused: the client already has %u streams", ZN(r),
                 PEER(r), r->s->nstreams);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    o->ctx = ctx;
    o->s = r->s;
    rc = r->s->be->stream_create(r->s->bz, q->flags, q->priority, &o->bs);
    if (rc != CUDA_SUCCESS)
        goto free_obj;
    if (stream_start(o) != 0) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto destroy_stream;
    }
    if (htab_insert(&r->s->ht, HT_STREAM, o, &p->stream) != 0) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
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

static int h_STREAM_DESTROY(struct rq *r, const struct idm_req_STREAM_DESTROY *q,
                            struct idm_rep_STREAM_DESTROY *p)
{
    struct stream_obj *o = htab_lookup(&r->s->ht, q->stream, HT_STREAM);
    int rc;

    (void)p;
    if (o == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    stream_stop(o); /* runs what is queued first, as cuStreamDestroy lets it complete */
    session_forget_stream(r->s, o);
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

static int h_STREAM_SYNCHRONIZE(struct rq *r, const struct idm_req_STREAM_SYNCHRONIZE *q,
                                struct idm_rep_STREAM_SYNCHRONIZE *p)
{
    struct stream_obj *st;
    int rc;

    (void)p;
    if ((rc = get_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (st)
        stream_wait(st, st->enq_seq);
    else
        default_stream_enter(r);
    return sync_status(r, r->s->be->stream_sync(r->s->bz, st ? st->bs : NULL));
}

static int h_STREAM_QUERY(struct rq *r, const struct idm_req_STREAM_QUERY *q,
                          struct idm_rep_STREAM_QUERY *p)
{
    struct stream_obj *st, *o;
    int rc;

    (void)p;
    if ((rc = get_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (st && !stream_idle(st))
        return sync_status(r, CUDA_ERROR_NOT_READY);
    if (st == NULL) {
        for (uint32_t i = 0; i < r->s->ht.used; i++)
            if ((o = htab_slot(&r->s->ht, i, HT_STREAM, NULL)) != NULL && !stream_idle(o))
                return sync_status(r, CUDA_ERROR_NOT_READY);
    }
    return sync_status(r, r->s->be->stream_query(r->s->bz, st ? st->bs : NULL));
}

/* Waits (in the dispatch thread) until the event's last record has run. */
static void event_wait(struct event_obj *e)
{
    if (e->recorded && e->rec_stream)
        stream_wait(e->rec_stream, e->rec_seq);
}

static int h_STREAM_WAIT_EVENT(struct rq *r, const struct idm_req_STREAM_WAIT_EVENT *q,
                               struct idm_rep_STREAM_WAIT_EVENT *p)
{
    struct stream_obj *st;
    struct event_obj *e;
    int rc;

    (void)p;
    if ((rc = get_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if ((e = get_event(r, q->event)) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!e->recorded)
        return CUDA_SUCCESS; /* waiting for a never-recorded event completes at once */
    /* Work queued on st after this point must follow the record: the simplest order that
     * guarantees it is to let the record happen before anything else is queued. */
    event_wait(e);
    return r->s->be->stream_wait_event(r->s->bz, st ? st->bs : NULL, e->be);
}

static int h_EVENT_CREATE(struct rq *r, const struct idm_req_EVENT_CREATE *q,
                          struct idm_rep_EVENT_CREATE *p)
{
    struct event_obj *e;
    idm_handle ctx;
    int rc;

    if ((rc = get_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    if (q->flags & ~(uint32_t)(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING))
        return q->flags & CU_EVENT_INTERPROCESS ? CUDA_ERROR_NOT_SUPPORTED
                                                : CUDA_ERROR_INVALID_VALUE;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    e->ctx = ctx;
    e->flags = q->flags;
    rc = r->s->be->event_create(r->s->bz, q->flags, &e->be);
    if (rc != CUDA_SUCCESS)
        goto free_obj;
    if (htab_insert(&r->s->ht, HT_EVENT, e, &p->event) != 0) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto destroy_event;
    }
    return CUDA_SUCCESS;

destroy_event:
    r->s->be->event_destroy(r->s->bz, e->be);
free_obj:
    free(e);
    return rc;
}

static int h_EVENT_DESTROY(struct rq *r, const struct idm_req_EVENT_DESTROY *q,
                           struct idm_rep_EVENT_DESTROY *p)
{
    struct event_obj *e = get_event(r, q->event);

    (void)p;
    if (e == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    event_wait(e); /* a queued record still refers to it */
    r->s->be->event_destroy(r->s->bz, e->be);
    htab_remove(&r->s->ht, q->event, HT_EVENT);
    free(e);
    return CUDA_SUCCESS;
}

static int h_EVENT_RECORD(struct rq *r, const struct idm_req_EVENT_RECORD *q,
                          struct idm_rep_EVENT_RECORD *p)
{
    struct stream_obj *st;
    struct event_obj *e;
    int rc;

    (void)p;
    if ((e = get_event(r, q->event)) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = get_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (st != NULL) {
        struct stream_op *op = new_op(SOP_EVENT_RECORD);
        if (op == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        /* A previous record still queued elsewhere happens first. */
        event_wait(e);
        op->ev = e;
        e->recorded = 1;
        e->rec_stream = st;
        op->req = *r->h;
        e->rec_seq = stream_submit(st, op);
        r->deferred = 1;
        return CUDA_SUCCESS;
    }
    event_wait(e);
    default_stream_enter(r);
    rc = r->s->be->event_record(r->s->bz, e->be, NULL);
    if (rc == CUDA_SUCCESS) {
        e->recorded = 1;
        e->rec_stream = NULL;
    }
    return rc;
}

static int h_EVENT_SYNCHRONIZE(struct rq *r, const struct idm_req_EVENT_SYNCHRONIZE *q,
                               struct idm_rep_EVENT_SYNCHRONIZE *p)
{
    struct event_obj *e = get_event(r, q->event);

    (void)p;
    if (e == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!e->recorded)
        return sync_status(r, CUDA_SUCCESS);
    event_wait(e);
    return sync_status(r, r->s->be->event_sync(r->s->bz, e->be));
}

static int h_EVENT_QUERY(struct rq *r, const struct idm_req_EVENT_QUERY *q,
                         struct idm_rep_EVENT_QUERY *p)
{
    struct event_obj *e = get_event(r, q->event);

    (void)p;
    if (e == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!e->recorded)
        return sync_status(r, CUDA_SUCCESS);
    if (!event_done(e))
        return sync_status(r, CUDA_ERROR_NOT_READY);
    return sync_status(r, r->s->be->event_query(r->s->bz, e->be));
}

static int h_EVENT_ELAPSED_TIME(struct rq *r, const struct idm_req_EVENT_ELAPSED_TIME *q,
                                struct idm_rep_EVENT_ELAPSED_TIME *p)
{
    struct event_obj *a = get_event(r, q->start), *b = get_event(r, q->end);

    if (a == NULL || b == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!a->recorded || !b->recorded)
        return CUDA_ERROR_INVALID_HANDLE;
    if (!event_done(a) || !event_done(b))
        return CUDA_ERROR_NOT_READY;
    return r->s->be->event_elapsed(r->s->bz, a->be, b->be, &p->ms);
}

/* ---- code images, libraries, kernels ---- */

static int h_IMAGE_BEGIN(struct rq *r, const struct idm_req_IMAGE_BEGIN *q,
                         struct idm_rep_IMAGE_BEGIN *p)
{
    struct session *s = r->s;
    struct image_obj *im;

    if (q->size == 0 || q->size > IMAGE_MAX_BYTES)
        return CUDA_ERROR_INVALID_VALUE;
    if (s->staging_bytes + q->size > STAGING_MAX_BYTES) {
        log_warn("zone=%s %s: image of %llu bytes refused: %llu bytes already staged", ZN(r),
                 PEER(r), (unsigned long long)q->size, (unsigned long long)s->staging_bytes);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    im = calloc(1, sizeof(*im));
    if (im == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    im->data = calloc(1, q->size);
    if (im->data == NULL)
        goto free_obj;
    im->size = q->size;
    if (htab_insert(&s->ht, HT_IMAGE, im, &p->image) != 0)
        goto free_data;
    s->staging_bytes += q->size;
    return CUDA_SUCCESS;

free_data:
    free(im->data);
free_obj:
    free(im);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

static int h_IMAGE_CHUNK(struct rq *r, const struct idm_req_IMAGE_CHUNK *q,
                         struct idm_rep_IMAGE_CHUNK *p)
{
    struct image_obj *im = htab_lookup(&r->s->ht, q->image, HT_IMAGE);
    uint8_t *w;
    int rc;

    (void)p;
    if (im == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (q->offset > im->size || q->len > im->size - q->offset)
        return CUDA_ERROR_INVALID_VALUE;
    if (q->len == 0)
        return CUDA_SUCCESS;
    if ((rc = win_range(r, q->win_off, q->len, &w)) != CUDA_SUCCESS)
        return rc;
    memcpy(im->data + q->offset, w, q->len);
    return CUDA_SUCCESS;
}

struct lib_alloc_ctx {
    struct session *s;
    idm_handle lib;
};

static int lib_alloc(void *ctx, uint64_t size, uint64_t *zone_addr, uint64_t *baddr)
{
    struct lib_alloc_ctx *c = ctx;

    return zone_alloc(c->s, size, ALLOC_GLOBAL_OWNED, c->lib, zone_addr, baddr);
}

static int h_LIBRARY_LOAD(struct rq *r, const struct idm_req_LIBRARY_LOAD *q,
                          struct idm_rep_LIBRARY_LOAD *p)
{
    struct session *s = r->s;
    struct image_obj *im;
    struct library_obj *lib;
    struct lib_alloc_ctx ac;
    struct backend_allocator alloc = {.ctx = &ac, .alloc = lib_alloc};
    char err[256] = "";
    idm_handle ctx, h;
    int rc;

    if ((rc = get_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    im = htab_lookup(&s->ht, q->image, HT_IMAGE);
    if (im == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    /* The staging image is consumed either way. */
    htab_remove(&s->ht, q->image, HT_IMAGE);
    s->staging_bytes -= im->size;

    lib = calloc(1, sizeof(*lib));
    if (lib == NULL) {
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto free_image;
    }
    lib->ctx = ctx;
    lib->as_module = q->as_module;
    if (htab_insert(&s->ht, HT_LIBRARY, lib, &h) != 0) {
        free(lib);
        rc = CUDA_ERROR_OUT_OF_MEMORY;
        goto free_image;
    }
    ac.s = s;
    ac.lib = h;
    rc = s->be->library_load(s->bz, im->data, im->size, &alloc, &lib->bl, err, sizeof(err));
    if (rc != CUDA_SUCCESS) {
        log_warn("zone=%s %s: loading a %llu-byte image failed (CUresult %d): %s", ZN(r),
                 PEER(r), (unsigned long long)im->size, rc, err[0] ? err : "no reason given");
        /* Globals allocated before the failure belong to h. */
        for (long i = (long)s->at.n - 1; i >= 0; i--)
            if (s->at.v[i].owner == h)
                session_free_alloc(s, i);
        htab_remove(&s->ht, h, HT_LIBRARY);
        free(lib);
        goto free_image;
    }
    log_debug("zone=%s %s: loaded a %llu-byte image as %s", ZN(r), PEER(r),
              (unsigned long long)im->size, q->as_module ? "module" : "library");
    p->library = h;

free_image:
    free(im->data);
    free(im);
    return rc;
}

static int h_LIBRARY_UNLOAD(struct rq *r, const struct idm_req_LIBRARY_UNLOAD *q,
                            struct idm_rep_LIBRARY_UNLOAD *p)
{
    struct library_obj *lib = htab_lookup(&r->s->ht, q->library, HT_LIBRARY);

    (void)p;
    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    session_drain(r->s);
    r->s->be->zone_sync(r->s->bz);
    session_free_library(r->s, q->library, lib);
    return CUDA_SUCCESS;
}

static int h_LIBRARY_GET_KERNEL(struct rq *r, const struct idm_req_LIBRARY_GET_KERNEL *q,
                                struct idm_rep_LIBRARY_GET_KERNEL *p)
{
    struct library_obj *lib = htab_lookup(&r->s->ht, q->library, HT_LIBRARY);
    struct idm_param params[IDM_PARAMS_MAX];
    struct kernel_obj *k;
    const char *name;
    uint32_t count = 0, bytes = 0;
    struct backend_kernel *bk;
    int rc;

    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = tail_name(r, &name)) != CUDA_SUCCESS)
        return rc;
    for (k = lib->kernels; k; k = k->next)
        if (strcmp(k->name, name) == 0)
            break;
    if (k == NULL) {
        rc = r->s->be->library_get_kernel(r->s->bz, lib->bl, name, &bk, params, &count, &bytes);
        if (rc != CUDA_SUCCESS)
            return rc;
        if (count > IDM_PARAMS_MAX)
            return CUDA_ERROR_NOT_SUPPORTED;
        k = calloc(1, sizeof(*k));
        if (k == NULL)
            return CUDA_ERROR_OUT_OF_MEMORY;
        k->params = calloc(count ? count : 1, sizeof(*k->params));
        k->name = strdup(name);
        if (k->params == NULL || k->name == NULL) {
            free(k->params);
            free(k->name);
            free(k);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        memcpy(k->params, params, count * sizeof(*params));
        k->library = q->library;
        k->bk = bk;
        k->param_count = count;
        k->param_bytes = bytes;
        if (htab_insert(&r->s->ht, HT_KERNEL, k, &k->self) != 0) {
            free(k->params);
            free(k->name);
            free(k);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        k->next = lib->kernels;
        lib->kernels = k;
    }
    if ((uint64_t)k->param_count * sizeof(struct idm_param) > r->rtail_max) {
        log_warn("zone=%s %s: the layout of kernel %s does not fit a reply slot", ZN(r),
                 PEER(r), k->name);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    memcpy(r->rtail, k->params, k->param_count * sizeof(struct idm_param));
    r->rtail_len = k->param_count * (uint32_t)sizeof(struct idm_param);
    p->kernel = k->self;
    p->param_count = k->param_count;
    p->param_bytes = k->param_bytes;
    return CUDA_SUCCESS;
}

static int h_LIBRARY_GET_GLOBAL(struct rq *r, const struct idm_req_LIBRARY_GET_GLOBAL *q,
                                struct idm_rep_LIBRARY_GET_GLOBAL *p)
{
    struct session *s = r->s;
    struct library_obj *lib = htab_lookup(&s->ht, q->library, HT_LIBRARY);
    uint64_t zaddr = 0, baddr = 0, size = 0, va;
    const char *name;
    struct alloc a;
    int rc;

    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = tail_name(r, &name)) != CUDA_SUCCESS)
        return rc;
    rc = s->be->library_get_global(s->bz, lib->bl, name, &zaddr, &baddr, &size);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (zaddr == 0) {
        /* A backend-owned global: map it into the zone once. */
        for (uint32_t i = 0; i < s->at.n; i++) {
            if (s->at.v[i].owner == q->library && s->at.v[i].baddr == baddr &&
                s->at.v[i].kind == ALLOC_GLOBAL_MAPPED) {
                zaddr = s->at.v[i].va;
                break;
            }
        }
    }
    if (zaddr == 0) {
        if (size == 0)
            return CUDA_ERROR_NOT_FOUND;
        if (zone_charge(s->zone, size, &va) != 0)
            return CUDA_ERROR_OUT_OF_MEMORY;
        memset(&a, 0, sizeof(a));
        a.va = va;
        a.size = size;
        a.charged = size;
        a.baddr = baddr;
        a.owner = q->library;
        a.kind = ALLOC_GLOBAL_MAPPED;
        a.buffer_id = s->next_buffer_id++;
        pthread_rwlock_wrlock(&s->at_lock);
        rc = atab_insert(&s->at, &a);
        pthread_rwlock_unlock(&s->at_lock);
        if (rc != 0) {
            zone_uncharge(s->zone, size);
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
        zaddr = va;
    }
    p->dptr = zaddr;
    p->size = size;
    return CUDA_SUCCESS;
}

static int h_LIBRARY_GET_KERNEL_COUNT(struct rq *r,
                                      const struct idm_req_LIBRARY_GET_KERNEL_COUNT *q,
                                      struct idm_rep_LIBRARY_GET_KERNEL_COUNT *p)
{
    struct library_obj *lib = htab_lookup(&r->s->ht, q->library, HT_LIBRARY);

    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return r->s->be->library_kernel_count(r->s->bz, lib->bl, &p->count);
}

static int h_FUNC_GET_ATTRIBUTE(struct rq *r, const struct idm_req_FUNC_GET_ATTRIBUTE *q,
                                struct idm_rep_FUNC_GET_ATTRIBUTE *p)
{
    struct kernel_obj *k = get_kernel(r, q->func);

    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return r->s->be->func_get_attribute(r->s->bz, k->bk, q->attr, &p->value);
}

static int h_FUNC_SET_ATTRIBUTE(struct rq *r, const struct idm_req_FUNC_SET_ATTRIBUTE *q,
                                struct idm_rep_FUNC_SET_ATTRIBUTE *p)
{
    struct kernel_obj *k = get_kernel(r, q->func);

    (void)p;
    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return r->s->be->func_set_attribute(r->s->bz, k->bk, q->attr, q->value);
}

static int h_FUNC_GET_NAME(struct rq *r, const struct idm_req_FUNC_GET_NAME *q,
                           struct idm_rep_FUNC_GET_NAME *p)
{
    struct kernel_obj *k = get_kernel(r, q->func);

    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    snprintf(p->name, sizeof(p->name), "%s", k->name);
    return CUDA_SUCCESS;
}

static int h_OCCUPANCY(struct rq *r, const struct idm_req_OCCUPANCY *q,
                       struct idm_rep_OCCUPANCY *p)
{
    struct kernel_obj *k = get_kernel(r, q->func);

    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return r->s->be->occupancy(r->s->bz, k->bk, q->which, q->block_size, q->dynamic_smem,
                               q->num_blocks, q->cluster_dim, q->grid_dim, q->flags, &p->value);
}

static int h_LAUNCH(struct rq *r, const struct idm_req_LAUNCH *q, struct idm_rep_LAUNCH *p)
{
    struct session *s = r->s;
    struct kernel_obj *k = get_kernel(r, q->func);
    struct backend_launch l;
    struct stream_obj *st;
    uint64_t threads;
    int rc;

    (void)p;
    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = get_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (sticky(r))
        return sticky(r);
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
        struct stream_op *op = new_op(SOP_LAUNCH);
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
        return defer(r, st, op);
    }
    default_stream_enter(r);
    return exec_launch(s, k, NULL, &l);
}

static int h_POINTER_GET_ATTRIBUTE(struct rq *r, const struct idm_req_POINTER_GET_ATTRIBUTE *q,
                                   struct idm_rep_POINTER_GET_ATTRIBUTE *p)
{
    long i = atab_find(&r->s->at, q->ptr, 1);
    const struct alloc *a;

    if (i < 0)
        return CUDA_ERROR_INVALID_VALUE;
    a = &r->s->at.v[i];
    switch (q->attr) {
    case CU_POINTER_ATTRIBUTE_CONTEXT:
        if (a->kind == ALLOC_MEM) {
            p->value = a->owner;
        } else {
            struct library_obj *lib = htab_lookup(&r->s->ht, a->owner, HT_LIBRARY);
            p->value = lib ? lib->ctx : 0;
        }
        break;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: p->value = CU_MEMORYTYPE_DEVICE; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: p->value = q->ptr; break;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER: return CUDA_ERROR_INVALID_VALUE;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS: p->value = 1; break;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID:
    case CU_POINTER_ATTRIBUTE_MEMORY_BLOCK_ID: p->value = a->buffer_id; break;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
    case CU_POINTER_ATTRIBUTE_MAPPING_BASE_ADDR: p->value = a->va; break;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
    case CU_POINTER_ATTRIBUTE_MAPPING_SIZE: p->value = a->size; break;
    case CU_POINTER_ATTRIBUTE_MAPPED: p->value = 1; break;
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
        p->value = CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE;
        break;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE: p->value = 0; break;
    case CU_POINTER_ATTRIBUTE_IS_HW_DECOMPRESS_CAPABLE: p->value = 0; break;
    default: return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

/* ---- the table ---- */

typedef int (*handler_fn)(struct rq *r, const void *req, void *rep);

/* One thunk per op gives every handler its typed request and reply. */
#define IDM_OP(name, num, kind, req, rep)                                                       \
    static int t_##name(struct rq *r, const void *q, void *p)                                   \
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

int dispatch_request(struct session *s, const struct idm_hdr *h, const uint8_t *payload,
                     uint32_t *rep_len, int32_t *status)
{
    /* Fixed structs are copied to aligned private memory before they are looked at. */
    union {
        uint64_t align;
        uint8_t b[512];
    } req;
    const struct idm_op_info *info;
    struct rq r;
    int rc;

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
    if (info == NULL || h->op >= IDM_OP_COUNT || handlers[h->op] == NULL) {
        log_warn("zone=%s %s: unknown op %u", s->zone->name, s->peer, h->op);
        *status = CUDA_ERROR_NOT_SUPPORTED;
        return 0;
    }
    if (h->len < info->req_size || info->req_size > sizeof(req.b) ||
        info->rep_size > s->max_reply) {
        log_warn("zone=%s %s: %s request of %u bytes is shorter than its %u-byte struct",
                 s->zone->name, s->peer, info->name, h->len, info->req_size);
        *status = CUDA_ERROR_INVALID_VALUE;
        return 0;
    }
    memset(req.b, 0, sizeof(req.b));
    memcpy(req.b, payload, info->req_size);
    memset(s->rbuf, 0, info->rep_size);

    r.s = s;
    r.h = h;
    r.tail = payload + info->req_size;
    r.tail_len = h->len - info->req_size;
    r.rtail = s->rbuf + info->rep_size;
    r.rtail_max = s->max_reply - info->rep_size;
    r.rtail_len = 0;
    r.deferred = 0;
    rc = handlers[h->op](&r, req.b, s->rbuf);
    *status = rc;
    if (r.deferred)
        return 1;
    if (rc != CUDA_SUCCESS) {
        log_debug("zone=%s %s: %s seq=%llu -> CUresult %d", s->zone->name, s->peer, info->name,
                  (unsigned long long)h->seq, rc);
        /* A failed request answers with zeros, never with half-filled values. */
        memset(s->rbuf, 0, info->rep_size);
        r.rtail_len = 0;
    }
    *rep_len = info->rep_size + r.rtail_len;
    return 0;
}
