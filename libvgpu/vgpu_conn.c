/* vgpu_conn.c - libvgpu's connection to gpu_proxy: the process-wide struct vgpu, cuInit's
 * connect + HELLO + device cache, synchronous requests, posted requests (answered later) with
 * their window chunks, unanswered requests (IDM_F_NOREPLY: the worker latches their failures for
 * the next synchronising call; their window chunks come back by the worker's release mark),
 * reply processing (DtoH data copied out, async failures remembered) and the accounting that
 * keeps the undrained replies within half the reply ring. */
#include "vgpu_calls.h"
#include "idm_log.h"
#include "transport_xen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VGPU_DEFAULT_SOCKET "/run/gpu-proxy/default.sock"

static struct vgpu the_vgpu = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

struct vgpu *vgpu_get(void)
{
    return &the_vgpu;
}

CUresult vgpu_errno_to_cu(int err)
{
    switch (err) {
    case 0:
        return CUDA_SUCCESS;
    case -ENOMEM:
        return CUDA_ERROR_OUT_OF_MEMORY;
    case -EINVAL:
    case -EMSGSIZE:
        return CUDA_ERROR_INVALID_VALUE;
    case -ENOENT:
        return CUDA_ERROR_NOT_FOUND;
    case -EPIPE:
    case -EPROTO:
    case -ECONNRESET:
        return CUDA_ERROR_DEVICE_UNAVAILABLE;
    default:
        return CUDA_ERROR_UNKNOWN;
    }
}

/* The connection failed: this call returns the mapped error, every later one
 * CUDA_ERROR_DEVICE_UNAVAILABLE. */
static CUresult conn_dead(struct vgpu *v, const char *what, int rc)
{
    if (!v->dead) {
        const char *why = v->conn ? idm_conn_error(v->conn) : "";
        fprintf(stderr, "libvgpu: connection to gpu proxy at %s lost during %s: %s%s%s\n",
                v->address, what, strerror(-rc), why[0] ? ": " : "", why);
    }
    v->dead = 1;
    return vgpu_errno_to_cu(rc == -EPROTO ? -EPIPE : rc);
}

CUresult vgpu_take_async_error_locked(struct vgpu *v)
{
    CUresult e = v->async_error;
    v->async_error = CUDA_SUCCESS;
    return e;
}

void *vgpu_chunk_ptr(struct vgpu *v, int chunk)
{
    return v->window + (uint64_t)chunk * v->chunk_size;
}

void vgpu_chunk_put_locked(struct vgpu *v, int chunk)
{
    if (chunk >= 0) {
        v->chunk_busy &= ~(1u << chunk);
        v->chunk_mark[chunk] = 0;
    }
}

/* VGPU_LOG=trace: one line per message sent and per reply received. */
static void trace_msg(const char *what, struct idm_hdr h, const void *payload, size_t len)
{
    char buf[768];
    h.len = (uint32_t)len;
    idm_trace_format(&h, payload, buf, sizeof buf);
    vgpu_log(VGPU_LOG_TRACE, "%s %s", what, buf);
}

/* Processes one received reply that belongs to a posted request. Returns 1 if it was one. */
static int finish_posted(struct vgpu *v, const struct idm_msg *m)
{
    for (unsigned i = 0; i < VGPU_MAX_INFLIGHT; i++) {
        struct vgpu_pending *p = &v->pending[i];
        if (p->seq != m->hdr.seq)
            continue;
        if (m->hdr.op != p->op) {
            VLOG(VGPU_LOG_ERROR, "reply seq %llu has op %s, expected %s",
                 (unsigned long long)p->seq, idm_op_name(m->hdr.op), idm_op_name(p->op));
            if (v->async_error == CUDA_SUCCESS)
                v->async_error = CUDA_ERROR_UNKNOWN;
        } else if (m->hdr.status != 0) {
            VLOG(VGPU_LOG_INFO, "async %s (seq %llu) failed: %d", idm_op_name(p->op),
                 (unsigned long long)p->seq, m->hdr.status);
            if (v->async_error == CUDA_SUCCESS)
                v->async_error = (CUresult)m->hdr.status;
        } else if (p->op == IDM_OP_MEMCPY_DTOH && p->dst != NULL) {
            struct idm_rep_MEMCPY_DTOH rep = {.len = 0};
            if (m->hdr.len >= sizeof rep)
                memcpy(&rep, m->payload, sizeof rep);
            size_t tail = m->hdr.len > sizeof rep ? m->hdr.len - sizeof rep : 0;
            if (p->chunk >= 0 && rep.len == p->len) {
                memcpy(p->dst, vgpu_chunk_ptr(v, p->chunk), p->len);
            } else if (p->chunk < 0 && tail == p->len) {
                memcpy(p->dst, m->payload + sizeof rep, p->len);
            } else {
                VLOG(VGPU_LOG_ERROR, "MEMCPY_DTOH reply carries %llu bytes, asked for %llu",
                     (unsigned long long)(p->chunk >= 0 ? rep.len : tail),
                     (unsigned long long)p->len);
                if (v->async_error == CUDA_SUCCESS)
                    v->async_error = CUDA_ERROR_UNKNOWN;
            }
        }
        vgpu_chunk_put_locked(v, p->chunk);
        v->reply_slots -= p->slots;
        memset(p, 0, sizeof *p);
        v->npending--;
        return 1;
    }
    return 0;
}

/* Receives one message and processes it if it answers a posted request. Returns 1 when it is
 * the reply to `want` (left in v->msg), 0 otherwise, or a CUresult error (negative encoded as
 * -1 with *err set). */
static int recv_one(struct vgpu *v, uint64_t want, int timeout_ms, CUresult *err)
{
    int rc = idm_recv(v->conn, &v->msg, timeout_ms);
    if (rc == -EAGAIN)
        return 0;
    if (rc < 0) {
        *err = conn_dead(v, "receive", rc);
        return -1;
    }
    if (!(v->msg.hdr.flags & IDM_F_REPLY)) {
        VLOG(VGPU_LOG_ERROR, "proxy sent a request (%s), not a reply", idm_op_name(v->msg.hdr.op));
        *err = conn_dead(v, "receive", -EPROTO);
        return -1;
    }
    if (vgpu_log_on(VGPU_LOG_TRACE))
        trace_msg("<-", v->msg.hdr, v->msg.payload, v->msg.hdr.len);
    if (want != 0 && v->msg.hdr.seq == want)
        return 1;
    if (!finish_posted(v, &v->msg))
        VLOG(VGPU_LOG_WARN, "reply with unknown seq %llu (%s) ignored",
             (unsigned long long)v->msg.hdr.seq, idm_op_name(v->msg.hdr.op));
    return 0;
}

/* Makes sure another request may be outstanding whose reply takes up to `slots` ring slots:
 * the replies we have not drained never take more than half the reply ring (max_reply_slots,
 * docs/CONTRACTS.md), so the worker can always send them without waiting for us. */
static CUresult make_room(struct vgpu *v, uint32_t slots)
{
    CUresult err = CUDA_SUCCESS;
    while (v->npending >= v->max_inflight ||
           (v->npending > 0 && v->reply_slots + slots > v->max_reply_slots))
        if (recv_one(v, 0, -1, &err) < 0)
            return err;
    return CUDA_SUCCESS;
}

/* The reply ring slots the answer to op takes, with rep_tail bytes after its fixed struct. */
static uint32_t reply_slots(const struct vgpu *v, uint16_t op, uint64_t rep_tail)
{
    const struct idm_op_info *info = idm_op_lookup(op);
    uint64_t len = (info ? info->rep_size : 0) + rep_tail;

    return idm_msg_slots(v->conn, len < v->max_tail_rep ? len : v->max_tail_rep);
}

CUresult vgpu_rpc_locked(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                         const void *tail, size_t tail_len, void *rep, size_t rep_size,
                         void *rep_tail, size_t rep_tail_cap, size_t *rep_tail_len)
{
    CUresult err;
    if (v->dead || v->conn == NULL)
        return CUDA_ERROR_DEVICE_UNAVAILABLE;
    if ((err = make_room(v, reply_slots(v, op, rep_tail_cap))) != CUDA_SUCCESS)
        return err;
    struct idm_hdr h = {.op = op, .flags = 0, .seq = ++v->seq};
    if (vgpu_log_on(VGPU_LOG_TRACE))
        trace_msg("->", h, req, req_size); /* fixed part: the tail is elsewhere */
    int rc = idm_send(v->conn, &h, req, req_size, tail, tail_len);
    if (rc == -EMSGSIZE) {
        VLOG(VGPU_LOG_ERROR, "%s: request of %zu bytes does not fit a message", idm_op_name(op),
             req_size + tail_len);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (rc < 0)
        return conn_dead(v, idm_op_name(op), rc);
    for (;;) {
        rc = recv_one(v, h.seq, -1, &err);
        if (rc < 0)
            return err;
        if (rc == 1)
            break;
    }
    if (v->msg.hdr.op != op) {
        VLOG(VGPU_LOG_ERROR, "reply to %s carries op %s", idm_op_name(op),
             idm_op_name(v->msg.hdr.op));
        return conn_dead(v, idm_op_name(op), -EPROTO);
    }
    size_t n = v->msg.hdr.len < rep_size ? v->msg.hdr.len : rep_size;
    if (rep_size) {
        memcpy(rep, v->msg.payload, n);
        memset((uint8_t *)rep + n, 0, rep_size - n);
    }
    size_t tl = v->msg.hdr.len > rep_size ? v->msg.hdr.len - rep_size : 0;
    if (rep_tail_len)
        *rep_tail_len = tl;
    if (rep_tail && rep_tail_cap)
        memcpy(rep_tail, v->msg.payload + rep_size, tl < rep_tail_cap ? tl : rep_tail_cap);
    if (v->msg.hdr.status != 0)
        VLOG(VGPU_LOG_DEBUG, "%s -> %d", idm_op_name(op), v->msg.hdr.status);
    return (CUresult)v->msg.hdr.status;
}

CUresult vgpu_rpc(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                  const void *tail, size_t tail_len, void *rep, size_t rep_size, void *rep_tail,
                  size_t rep_tail_cap, size_t *rep_tail_len)
{
    pthread_mutex_lock(&v->lock);
    CUresult r = vgpu_rpc_locked(v, op, req, req_size, tail, tail_len, rep, rep_size, rep_tail,
                                 rep_tail_cap, rep_tail_len);
    pthread_mutex_unlock(&v->lock);
    return r;
}

CUresult vgpu_post_locked(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                          const void *tail, size_t tail_len, int chunk, void *dst, uint64_t len)
{
    CUresult err;
    if (v->dead || v->conn == NULL) {
        vgpu_chunk_put_locked(v, chunk);
        return CUDA_ERROR_DEVICE_UNAVAILABLE;
    }
    const struct idm_op_info *info = idm_op_lookup(op);
    /* DtoH data without a window chunk comes back inline, after the reply's fixed struct. */
    int inline_out = info && info->props->bulk == IDM_BULK_OUT && chunk < 0 && dst != NULL;
    uint32_t slots = reply_slots(v, op, inline_out ? len : 0);
    if ((err = make_room(v, slots)) != CUDA_SUCCESS) {
        vgpu_chunk_put_locked(v, chunk);
        return err;
    }
    struct vgpu_pending *p = NULL;
    for (unsigned i = 0; i < VGPU_MAX_INFLIGHT && !p; i++)
        if (v->pending[i].seq == 0)
            p = &v->pending[i];
    struct idm_hdr h = {.op = op, .seq = ++v->seq,
                        .flags = (info && info->kind == IDM_KIND_ASYNC) ? IDM_F_ASYNC : 0};
    *p = (struct vgpu_pending){.seq = h.seq, .op = op, .chunk = chunk, .dst = dst, .len = len,
                               .slots = slots};
    v->npending++;
    v->reply_slots += slots;
    if (vgpu_log_on(VGPU_LOG_TRACE))
        trace_msg("->", h, req, req_size); /* fixed part: the tail is elsewhere */
    int rc = idm_send(v->conn, &h, req, req_size, tail, tail_len);
    if (rc < 0) {
        memset(p, 0, sizeof *p);
        v->npending--;
        v->reply_slots -= slots;
        vgpu_chunk_put_locked(v, chunk);
        if (rc == -EMSGSIZE)
            return CUDA_ERROR_INVALID_VALUE;
        return conn_dead(v, idm_op_name(op), rc);
    }
    return CUDA_SUCCESS;
}

CUresult vgpu_send_locked(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                          const void *tail, size_t tail_len)
{
    struct idm_hdr h = {.op = op, .seq = ++v->seq, .flags = IDM_F_ASYNC | IDM_F_NOREPLY};
    int rc;

    if (v->dead || v->conn == NULL)
        return CUDA_ERROR_DEVICE_UNAVAILABLE;
    if (vgpu_log_on(VGPU_LOG_TRACE))
        trace_msg("->", h, req, req_size); /* fixed part: the tail is elsewhere */
    /* No pending entry, no reply: the ring itself is the flow control (idm_send waits for a
     * free slot while the worker, which never waits for us, drains it). */
    rc = idm_send(v->conn, &h, req, req_size, tail, tail_len);
    if (rc == -EMSGSIZE)
        return CUDA_ERROR_INVALID_VALUE;
    if (rc < 0)
        return conn_dead(v, idm_op_name(op), rc);
    return CUDA_SUCCESS;
}

CUresult vgpu_send_chunk_locked(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                                int chunk)
{
    CUresult r = vgpu_send_locked(v, op, req, req_size, NULL, 0);

    if (r != CUDA_SUCCESS) {
        vgpu_chunk_put_locked(v, chunk);
        return r;
    }
    /* Every send is under v->lock: the count is this request's number. */
    v->chunk_mark[chunk] = idm_tx_count(v->conn);
    return CUDA_SUCCESS;
}

uint64_t vgpu_inline_max(const struct vgpu *v, uint32_t op)
{
    const struct idm_op_info *info = idm_op_lookup(op);
    size_t room = info->props->bulk == IDM_BULK_OUT ? v->max_tail_rep : v->max_tail_req;

    return idm_op_inline_max(info, (uint32_t)room);
}

/* Gives back the chunks of unanswered requests that the release mark has passed; returns the
 * number of the oldest request still holding one (0: none), or -1 with *err set. */
static int64_t reclaim_marked(struct vgpu *v, CUresult *err)
{
    int64_t mark = idm_release_mark(v->conn);
    uint64_t oldest = 0;

    if (mark < 0) {
        *err = conn_dead(v, "window release mark", (int)mark);
        return -1;
    }
    for (unsigned c = 0; c < v->nchunks; c++) {
        if (v->chunk_mark[c] == 0)
            continue;
        if (v->chunk_mark[c] <= (uint64_t)mark)
            vgpu_chunk_put_locked(v, (int)c);
        else if (oldest == 0 || v->chunk_mark[c] < oldest)
            oldest = v->chunk_mark[c];
    }
    return (int64_t)oldest;
}

/* Waits until the release mark reaches want; with replies pending, only briefly (the chunk
 * they hold may come back first). 0 or -1 with *err set. */
static int wait_marked(struct vgpu *v, uint64_t want, CUresult *err)
{
    int rc = idm_release_wait(v->conn, want, v->npending > 0 ? 1 : -1);

    if (rc == -EAGAIN && v->npending > 0)
        return recv_one(v, 0, 0, err) < 0 ? -1 : 0;
    if (rc < 0 && rc != -EAGAIN) {
        *err = conn_dead(v, "window release mark", rc);
        return -1;
    }
    return 0;
}

int vgpu_chunk_get_locked(struct vgpu *v, CUresult *err)
{
    uint32_t all = v->nchunks >= 32 ? 0xffffffffu : ((1u << v->nchunks) - 1);
    while ((v->chunk_busy & all) == all) {
        int64_t oldest = reclaim_marked(v, err);
        if (oldest < 0)
            return -1;
        if ((v->chunk_busy & all) != all)
            break;
        if (oldest > 0) {
            if (wait_marked(v, (uint64_t)oldest, err) < 0)
                return -1;
            continue;
        }
        if (v->npending == 0) { /* cannot happen: a busy chunk belongs to a request */
            *err = CUDA_ERROR_UNKNOWN;
            return -1;
        }
        if (recv_one(v, 0, -1, err) < 0)
            return -1;
    }
    int c = __builtin_ctz(~v->chunk_busy & all);
    v->chunk_busy |= 1u << c;
    return c;
}

CUresult vgpu_drain_locked(struct vgpu *v)
{
    CUresult err = CUDA_SUCCESS;
    while (v->npending > 0)
        if (recv_one(v, 0, -1, &err) < 0)
            return err;
    if (v->dead)
        return CUDA_ERROR_DEVICE_UNAVAILABLE;
    return vgpu_take_async_error_locked(v);
}

/* 1 while a request of op waits for its reply. */
static int op_pending(const struct vgpu *v, uint16_t op)
{
    for (unsigned i = 0; i < VGPU_MAX_INFLIGHT; i++)
        if (v->pending[i].seq != 0 && v->pending[i].op == op)
            return 1;
    return 0;
}

CUresult vgpu_drain_op_locked(struct vgpu *v, uint16_t op)
{
    CUresult err = CUDA_SUCCESS;
    while (v->npending > 0 && op_pending(v, op))
        if (recv_one(v, 0, -1, &err) < 0)
            return err;
    return v->dead ? CUDA_ERROR_DEVICE_UNAVAILABLE : CUDA_SUCCESS;
}

void vgpu_poll_locked(struct vgpu *v)
{
    CUresult err;
    while (v->npending > 0 && !v->dead) {
        int rc = idm_recv(v->conn, &v->msg, 0);
        if (rc == -EAGAIN)
            return;
        if (rc < 0) {
            conn_dead(v, "receive", rc);
            return;
        }
        if (!(v->msg.hdr.flags & IDM_F_REPLY)) {
            conn_dead(v, "receive", -EPROTO);
            return;
        }
        if (!finish_posted(v, &v->msg))
            VLOG(VGPU_LOG_WARN, "reply with unknown seq %llu ignored",
                 (unsigned long long)v->msg.hdr.seq);
    }
    (void)err;
}

/* ---- cuInit ---- */

static CUresult init_locked(struct vgpu *v)
{
    vgpu_log_init();
    idm_msg_init(&v->msg);
    const char *tname = getenv("VGPU_TRANSPORT");
    if (tname == NULL || tname[0] == '\0')
        tname = "posix";
    const char *addr = getenv("VGPU_SOCKET");
    if (addr == NULL || addr[0] == '\0')
        addr = strcmp(tname, "xen") == 0 ? IDM_XEN_DEFAULT_ADDRESS : VGPU_DEFAULT_SOCKET;
    snprintf(v->address, sizeof v->address, "%s", addr);
    /* xen: the transport comes from the plugin libvgpu-xen.so.1 next to this library (libidm
     * logs why when it cannot be loaded), so that libcuda.so.1 itself needs no Xen library. */
    v->transport = idm_transport_by_name(tname);
    if (v->transport == NULL && strcmp(tname, "xen") == 0) {
        fprintf(stderr, "libvgpu: VGPU_TRANSPORT=xen but the Xen transport plugin "
                        "libvgpu-xen.so.1 could not be loaded (see above): no device\n");
        return CUDA_ERROR_NO_DEVICE;
    }
    if (v->transport == NULL) {
        fprintf(stderr, "libvgpu: unknown VGPU_TRANSPORT '%s' (use posix or xen): no device\n",
                tname);
        return CUDA_ERROR_NO_DEVICE;
    }
    /* our own one-line message says why when no proxy answers; keep libidm's quiet then */
    int idm_level = idm_log_level();
    if (getenv("IDM_LOG") == NULL)
        idm_log_set_level(-1);
    int rc = v->transport->connect(addr, &v->conn);
    idm_log_set_level(idm_level);
    if (rc < 0) {
        fprintf(stderr, "libvgpu: cannot connect to gpu proxy at %s (transport %s): %s: no "
                        "device\n", addr, tname, strerror(-rc));
        v->conn = NULL;
        return CUDA_ERROR_NO_DEVICE;
    }
    const struct idm_conn_config *g = idm_conn_geometry(v->conn);
    v->max_tail_req = idm_max_payload(v->conn);
    v->max_tail_rep = idm_max_payload(v->conn);
    v->max_inflight = g->ring_slots / 2 < VGPU_MAX_INFLIGHT ? g->ring_slots / 2
                                                            : VGPU_MAX_INFLIGHT;
    if (v->max_inflight == 0)
        v->max_inflight = 1;
    v->max_reply_slots = g->ring_slots / 2 > idm_msg_slots(v->conn, v->max_tail_rep)
                             ? g->ring_slots / 2
                             : idm_msg_slots(v->conn, v->max_tail_rep);
    v->reply_slots = 0;
    v->window = idm_window(v->conn, &v->window_size);
    v->nchunks = 0;
    if (v->window != NULL && v->window_size >= 4096) {
        uint64_t cs = v->window_size / 8;
        if (cs < 65536)
            cs = v->window_size / 2 >= 4096 ? v->window_size / 2 : v->window_size;
        cs &= ~(uint64_t)4095;
        v->chunk_size = cs;
        v->nchunks = (unsigned)(v->window_size / cs);
        if (v->nchunks > VGPU_MAX_CHUNKS)
            v->nchunks = VGPU_MAX_CHUNKS;
    }
    if (v->nchunks == 0) {
        fprintf(stderr, "libvgpu: gpu proxy at %s offers no usable window: no device\n", addr);
        goto fail_conn;
    }

    struct idm_req_HELLO hq = {.proto_version = IDM_PROTOCOL_VERSION, .pid = (uint32_t)getpid()};
    struct idm_rep_HELLO hr;
    CUresult r = vgpu_rpc_locked(v, IDM_OP_HELLO, &hq, sizeof hq, NULL, 0, &hr, sizeof hr, NULL,
                                 0, NULL);
    if (r != CUDA_SUCCESS) {
        fprintf(stderr, "libvgpu: gpu proxy at %s refused HELLO (CUresult %d): no device\n",
                addr, r);
        goto fail_conn;
    }
    if (hr.proto_version != IDM_PROTOCOL_VERSION) {
        fprintf(stderr, "libvgpu: gpu proxy at %s speaks IDM protocol %u, this library %u: no "
                        "device\n", addr, hr.proto_version, IDM_PROTOCOL_VERSION);
        goto fail_conn;
    }
    if (hr.device_count < 0 || hr.device_count > VGPU_MAX_DEVICES) {
        fprintf(stderr, "libvgpu: gpu proxy at %s reports %d devices: no device\n", addr,
                hr.device_count);
        goto fail_conn;
    }
    v->quota = hr.quota;
    v->zone_id = hr.zone_id;
    memcpy(v->zone_name, hr.zone_name, sizeof v->zone_name);
    v->zone_name[sizeof v->zone_name - 1] = '\0';
    v->device_count = hr.device_count;
    for (int d = 0; d < v->device_count; d++) {
        struct idm_req_DEVICE_GET_PROPS pq = {.device = d};
        struct idm_rep_DEVICE_GET_PROPS pr;
        r = vgpu_rpc_locked(v, IDM_OP_DEVICE_GET_PROPS, &pq, sizeof pq, NULL, 0, &pr, sizeof pr,
                            NULL, 0, NULL);
        if (r != CUDA_SUCCESS) {
            fprintf(stderr, "libvgpu: gpu proxy at %s: DEVICE_GET_PROPS(%d) failed (CUresult "
                            "%d): no device\n", addr, d, r);
            goto fail_conn;
        }
        struct vgpu_device *dev = &v->dev[d];
        dev->total_mem = pr.total_mem;
        memcpy(dev->uuid, pr.uuid, 16);
        memcpy(dev->name, pr.name, sizeof dev->name);
        dev->name[sizeof dev->name - 1] = '\0';
        memcpy(dev->attrs, pr.attrs, sizeof dev->attrs);
        vgpu_pool_init(v, d);
        vgpu_managed_init(v, d);
        vgpu_vmm_init(v, d);
        struct vgpu_ctx *p = &v->primary[d];
        if (p->self == 0 && (p->self = vgpu_handle_new(VGPU_H_CTX, p)) == 0) {
            fprintf(stderr, "libvgpu: no handle for device %d's primary context: no device\n",
                    d);
            goto fail_conn;
        }
        p->primary = 1;
        p->dev = d;
        p->id = (unsigned long long)d + 1;
        pthread_mutex_init(&p->cls_lock, NULL);
    }
    VLOG(VGPU_LOG_INFO, "connected to %s (zone %s, id %u, quota %llu, %d device(s))", addr,
         v->zone_name, v->zone_id, (unsigned long long)v->quota, v->device_count);
    return CUDA_SUCCESS;

fail_conn:
    idm_close(v->conn);
    v->conn = NULL;
    return CUDA_ERROR_NO_DEVICE;
}

/* A forked child shares the parent's rings: it must never touch them. As with the real driver,
 * CUDA is unusable in the child (CUDA_ERROR_NOT_INITIALIZED); the parent is unaffected. */
static void atfork_child(void)
{
    struct vgpu *v = &the_vgpu;
    pthread_mutex_init(&v->lock, NULL);
    if (v->state != 0) {
        v->conn = NULL;
        v->dead = 1;
        v->init_error = CUDA_ERROR_NOT_INITIALIZED;
        __atomic_store_n(&v->state, -1, __ATOMIC_RELEASE);
    }
}

CUresult vgpu_init(struct vgpu *v)
{
    pthread_mutex_lock(&v->lock);
    if (v->state == 0) {
        if (pthread_atfork(NULL, NULL, atfork_child) != 0)
            VLOG(VGPU_LOG_WARN, "pthread_atfork failed: forked children would share the "
                                "connection");
        v->init_error = init_locked(v);
        __atomic_store_n(&v->state, v->init_error == CUDA_SUCCESS ? 1 : -1, __ATOMIC_RELEASE);
    }
    CUresult r = v->init_error;
    pthread_mutex_unlock(&v->lock);
    return r;
}

CUresult vgpu_ready(struct vgpu *v)
{
    int s = __atomic_load_n(&v->state, __ATOMIC_ACQUIRE);
    if (s == 1)
        return CUDA_SUCCESS;
    if (s == 0)
        return CUDA_ERROR_NOT_INITIALIZED;
    return v->init_error;
}
