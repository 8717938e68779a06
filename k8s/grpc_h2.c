/* grpc_h2.c - gRPC over HTTP/2 (libnghttp2) on Unix sockets: a server with one thread per
 * connection serving unary and server-streaming methods, and a one-shot unary client. Owns the
 * gRPC framing (1-byte flag, 4-byte big-endian length), status trailers, trailers-only errors and
 * percent-encoding of grpc-message; message contents are the caller's. */
#include "grpc_h2.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- buffers and status ------------------------------------------------------------------ */

uint8_t *grpc_buf_reserve(struct grpc_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len)
        return NULL;
    if (b->len + n > b->cap || !b->data) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            return NULL;
        b->data = p;
        b->cap = cap;
    }
    return b->data + b->len;
}

int grpc_buf_append(struct grpc_buf *b, const void *p, size_t n)
{
    uint8_t *dst = grpc_buf_reserve(b, n);
    if (!dst)
        return -ENOMEM;
    if (n)
        memcpy(dst, p, n);
    b->len += n;
    return 0;
}

void grpc_buf_free(struct grpc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void grpc_status_set(struct grpc_status *st, int code, const char *fmt, ...)
{
    va_list ap;
    st->code = code;
    va_start(ap, fmt);
    vsnprintf(st->message, sizeof(st->message), fmt, ap);
    va_end(ap);
}

/* Appends the 5-byte gRPC message prefix and the message. */
static int frame_message(struct grpc_buf *dst, const struct grpc_buf *msg)
{
    uint8_t hdr[5] = {0, (uint8_t)(msg->len >> 24), (uint8_t)(msg->len >> 16),
                      (uint8_t)(msg->len >> 8), (uint8_t)msg->len};
    if (grpc_buf_append(dst, hdr, sizeof(hdr)) < 0 || grpc_buf_append(dst, msg->data, msg->len) < 0)
        return -ENOMEM;
    return 0;
}

/* Checks that body holds exactly one uncompressed message; points msg and len at it. */
static void unframe_message(const struct grpc_buf *body, const uint8_t **msg, size_t *len,
                            struct grpc_status *st)
{
    if (body->len < 5) {
        grpc_status_set(st, GRPC_INTERNAL, "message framing: %zu bytes, need at least 5",
                        body->len);
        return;
    }
    if (body->data[0] != 0) {
        grpc_status_set(st, GRPC_UNIMPLEMENTED, "compressed messages are not supported");
        return;
    }
    size_t n = ((size_t)body->data[1] << 24) | ((size_t)body->data[2] << 16) |
               ((size_t)body->data[3] << 8) | body->data[4];
    if (n != body->len - 5) {
        grpc_status_set(st, GRPC_INTERNAL,
                        "message framing: length prefix %zu but %zu bytes follow", n,
                        body->len - 5);
        return;
    }
    *msg = body->data + 5;
    *len = n;
}

/* grpc-message is percent-encoded: everything outside printable ASCII, and '%'. */
static void percent_encode(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < cap; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void percent_decode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        if (in[i] == '%' && i + 2 < len && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
            out[o++] = (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2]));
            i += 2;
        } else {
            out[o++] = (char)in[i];
        }
    }
    out[o] = '\0';
}

#define NV(n, v)                                                                               \
    {                                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME \
    }

/* ---- server ---------------------------------------------------------------------------- */

struct server_stream {
    int32_t id;
    struct server_stream *next;
    const struct grpc_method *method;
    bool bad_content_type;
    bool dispatched;
    bool too_big;
    struct grpc_buf req;        /* request body as received (framed) */
    struct grpc_buf out;        /* framed reply bytes not yet handed to nghttp2 */
    size_t out_off;
    bool finishing;             /* send trailers once out is drained */
    bool deferred;              /* data provider returned DEFERRED */
    struct grpc_status final;   /* status sent in the trailers */
    char status_str[12];
    char message_enc[800];
    uint64_t cursor;            /* the stream method's own position */
};

struct server_conn {
    struct grpc_server *srv;
    int fd;
    int wake_fd;                /* eventfd: grpc_server_notify() */
    nghttp2_session *session;
    struct server_stream *streams;
    struct server_conn *next;   /* srv->conns */
};

struct grpc_server {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const struct grpc_method *methods;
    size_t n_methods;
    void *ctx;
    int listen_fd;
    int stop_fd;                /* eventfd, readable once stopping (never drained) */
    dev_t sock_dev;
    ino_t sock_ino;
    pthread_t accept_thread;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    struct server_conn *conns;
    unsigned live_conns;
};

static struct server_stream *find_stream(struct server_conn *c, int32_t id)
{
    for (struct server_stream *s = c->streams; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static void free_stream(struct server_stream *s)
{
    grpc_buf_free(&s->req);
    grpc_buf_free(&s->out);
    free(s);
}

static ssize_t srv_send_cb(nghttp2_session *session, const uint8_t *data, size_t length,
                           int flags, void *user_data)
{
    (void)session;
    (void)flags;
    struct server_conn *c = user_data;
    ssize_t n = send(c->fd, data, length, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return NGHTTP2_ERR_WOULDBLOCK;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return n;
}

static int submit_trailers(nghttp2_session *session, struct server_stream *s)
{
    snprintf(s->status_str, sizeof(s->status_str), "%d", s->final.code);
    nghttp2_nv trailers[2] = {NV("grpc-status", s->status_str), NV("grpc-message", "")};
    size_t n = 1;
    if (s->final.code != GRPC_OK && s->final.message[0]) {
        percent_encode(s->final.message, s->message_enc, sizeof(s->message_enc));
        trailers[1].value = (uint8_t *)s->message_enc;
        trailers[1].valuelen = strlen(s->message_enc);
        n = 2;
    }
    return nghttp2_submit_trailer(session, s->id, trailers, n);
}

static ssize_t srv_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                           size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                           void *user_data)
{
    (void)stream_id;
    (void)user_data;
    struct server_stream *s = source->ptr;
    size_t avail = s->out.len - s->out_off;
    size_t n = avail < length ? avail : length;
    if (n) {
        memcpy(buf, s->out.data + s->out_off, n);
        s->out_off += n;
        if (s->out_off == s->out.len)
            s->out.len = s->out_off = 0;
    }
    if (s->out.len - s->out_off == 0) {
        if (s->finishing) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
            if (submit_trailers(session, s) != 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        } else if (n == 0) {
            s->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

/* Trailers-only response: one HEADERS frame with the status, ending the stream. */
static void respond_error(nghttp2_session *session, struct server_stream *s,
                          const struct grpc_status *st)
{
    s->final = *st;
    snprintf(s->status_str, sizeof(s->status_str), "%d", st->code);
    percent_encode(st->message, s->message_enc, sizeof(s->message_enc));
    nghttp2_nv hdrs[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                         NV("grpc-status", s->status_str), NV("grpc-message", s->message_enc)};
    if (nghttp2_submit_response(session, s->id, hdrs, 4, NULL) != 0)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
}

static int start_response(nghttp2_session *session, struct server_stream *s)
{
    nghttp2_nv hdrs[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = srv_read_cb};
    return nghttp2_submit_response(session, s->id, hdrs, 2, &prd);
}

/* Runs a stream method once more and hands what it produced to nghttp2. */
static void pump_stream(struct server_conn *c, struct server_stream *s, const uint8_t *msg,
                        size_t len)
{
    struct grpc_buf reply = {0};
    struct grpc_status st = {.code = GRPC_OK};
    int produced = s->method->stream(c->srv->ctx, msg, len, &s->cursor, &reply, &st);
    if (st.code != GRPC_OK) {
        s->final = st;
        s->finishing = true;
    } else if (produced) {
        if (reply.len > GRPC_MAX_MESSAGE || frame_message(&s->out, &reply) < 0) {
            grpc_status_set(&s->final, GRPC_RESOURCE_EXHAUSTED, "stream message too large");
            s->finishing = true;
        }
    }
    grpc_buf_free(&reply);
    if (s->deferred && (s->finishing || s->out.len > s->out_off)) {
        s->deferred = false;
        nghttp2_session_resume_data(c->session, s->id);
    }
}

static void dispatch(struct server_conn *c, struct server_stream *s)
{
    struct grpc_status st = {.code = GRPC_OK};
    const uint8_t *msg = NULL;
    size_t len = 0;
    s->dispatched = true;
    if (!s->method) {
        grpc_status_set(&st, GRPC_UNIMPLEMENTED, "unknown method");
    } else if (s->bad_content_type) {
        grpc_status_set(&st, GRPC_INTERNAL, "content-type is not application/grpc");
    } else if (s->too_big) {
        grpc_status_set(&st, GRPC_RESOURCE_EXHAUSTED, "request larger than %u bytes",
                        GRPC_MAX_MESSAGE);
    } else {
        unframe_message(&s->req, &msg, &len, &st);
    }
    if (st.code != GRPC_OK) {
        log_debug("grpc: stream %d: %s", s->id, st.message);
        respond_error(c->session, s, &st);
        return;
    }
    if (s->method->unary) {
        struct grpc_buf reply = {0};
        s->method->unary(c->srv->ctx, msg, len, &reply, &st);
        if (st.code == GRPC_OK &&
            (reply.len > GRPC_MAX_MESSAGE || frame_message(&s->out, &reply) < 0))
            grpc_status_set(&st, GRPC_RESOURCE_EXHAUSTED, "reply too large");
        grpc_buf_free(&reply);
        if (st.code != GRPC_OK) {
            respond_error(c->session, s, &st);
            return;
        }
        s->final = st;
        s->finishing = true;
        if (start_response(c->session, s) != 0)
            nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    /* Server streaming: the request stays in s->req for later calls of the method. */
    size_t off = (size_t)(msg - s->req.data);
    if (start_response(c->session, s) != 0) {
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    pump_stream(c, s, s->req.data + off, len);
}

static int srv_begin_headers_cb(nghttp2_session *session, const nghttp2_frame *frame,
                                void *user_data)
{
    (void)session;
    struct server_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct server_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    s->id = frame->hd.stream_id;
    s->bad_content_type = true;     /* until a content-type header says otherwise */
    s->next = c->streams;
    c->streams = s;
    return 0;
}

static int srv_header_cb(nghttp2_session *session, const nghttp2_frame *frame,
                         const uint8_t *name, size_t namelen, const uint8_t *value,
                         size_t valuelen, uint8_t flags, void *user_data)
{
    (void)session;
    (void)flags;
    struct server_conn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct server_stream *s = find_stream(c, frame->hd.stream_id);
    if (!s)
        return 0;
    if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        for (size_t i = 0; i < c->srv->n_methods; i++) {
            const char *p = c->srv->methods[i].path;
            if (strlen(p) == valuelen && memcmp(p, value, valuelen) == 0)
                s->method = &c->srv->methods[i];
        }
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        /* application/grpc, optionally followed by +proto or ;params */
        s->bad_content_type = !(valuelen >= 16 && memcmp(value, "application/grpc", 16) == 0 &&
                                (valuelen == 16 || value[16] == '+' || value[16] == ';'));
    }
    return 0;
}

static int srv_data_chunk_cb(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                             const uint8_t *data, size_t len, void *user_data)
{
    (void)session;
    (void)flags;
    struct server_conn *c = user_data;
    struct server_stream *s = find_stream(c, stream_id);
    if (!s || s->dispatched || s->too_big)
        return 0;
    if (s->req.len + len > GRPC_MAX_MESSAGE + 5) {
        s->too_big = true;
        grpc_buf_free(&s->req);
        return 0;
    }
    if (grpc_buf_append(&s->req, data, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static int srv_frame_recv_cb(nghttp2_session *session, const nghttp2_frame *frame,
                             void *user_data)
{
    (void)session;
    struct server_conn *c = user_data;
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct server_stream *s = find_stream(c, frame->hd.stream_id);
        if (s && !s->dispatched)
            dispatch(c, s);
    }
    return 0;
}

static int srv_stream_close_cb(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                               void *user_data)
{
    (void)session;
    (void)error_code;
    struct server_conn *c = user_data;
    for (struct server_stream **pp = &c->streams; *pp; pp = &(*pp)->next) {
        if ((*pp)->id == stream_id) {
            struct server_stream *s = *pp;
            *pp = s->next;
            free_stream(s);
            break;
        }
    }
    return 0;
}

static void conn_wake(struct server_conn *c)
{
    uint64_t v;
    if (read(c->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("grpc: reading the wake-up eventfd failed: %s", strerror(errno));
    for (struct server_stream *s = c->streams; s; s = s->next) {
        if (s->dispatched && s->method && s->method->stream && !s->finishing &&
            s->req.len >= 5)
            pump_stream(c, s, s->req.data + 5, s->req.len - 5);
    }
}

static void *conn_thread(void *arg)
{
    struct server_conn *c = arg;
    struct grpc_server *srv = c->srv;
    nghttp2_session_callbacks *cbs = NULL;
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        log_error("grpc: out of memory for a connection");
        goto out;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, srv_send_cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, srv_begin_headers_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, srv_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, srv_data_chunk_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, srv_frame_recv_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, srv_stream_close_cb);
    /* No HTTP messaging checks: grpc-go clients dialling a Unix socket send the socket path as
     * :authority, which nghttp2 would reset as a protocol error. We check what we use. */
    nghttp2_option *opt = NULL;
    int rv = nghttp2_option_new(&opt);
    if (rv == 0) {
        nghttp2_option_set_no_http_messaging(opt, 1);
        rv = nghttp2_session_server_new2(&c->session, cbs, c, opt);
        nghttp2_option_del(opt);
    }
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        log_error("grpc: nghttp2 server session: %s", nghttp2_strerror(rv));
        goto out;
    }
    nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 256}};
    if ((rv = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, 1)) != 0) {
        log_error("grpc: submitting SETTINGS: %s", nghttp2_strerror(rv));
        goto out;
    }
    for (;;) {
        if ((rv = nghttp2_session_send(c->session)) != 0) {
            log_debug("grpc: connection send: %s", nghttp2_strerror(rv));
            break;
        }
        if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
            break;
        struct pollfd pfd[3] = {
            {.fd = c->fd,
             .events = POLLIN | (nghttp2_session_want_write(c->session) ? POLLOUT : 0)},
            {.fd = c->wake_fd, .events = POLLIN},
            {.fd = srv->stop_fd, .events = POLLIN},
        };
        if (poll(pfd, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("grpc: poll on a connection failed: %s", strerror(errno));
            break;
        }
        if (pfd[2].revents)
            break;
        if (pfd[1].revents & POLLIN)
            conn_wake(c);
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t buf[16384];
            ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
            if (n == 0)
                break;
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                log_debug("grpc: connection recv: %s", strerror(errno));
                break;
            }
            ssize_t used = nghttp2_session_mem_recv(c->session, buf, (size_t)n);
            if (used < 0) {
                log_warn("grpc: bad HTTP/2 from a client: %s", nghttp2_strerror((int)used));
                break;
            }
        }
    }
out:
    pthread_mutex_lock(&srv->lock);
    for (struct server_conn **pp = &srv->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    if (c->session)
        nghttp2_session_del(c->session);    /* frees streams through the close callback */
    while (c->streams) {
        struct server_stream *s = c->streams;
        c->streams = s->next;
        free_stream(s);
    }
    close(c->fd);
    close(c->wake_fd);
    free(c);
    pthread_mutex_lock(&srv->lock);
    srv->live_conns--;
    pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

static void *accept_thread(void *arg)
{
    struct grpc_server *srv = arg;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                                {.fd = srv->stop_fd, .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("grpc: poll on the listening socket %s failed: %s", srv->path,
                      strerror(errno));
            return NULL;
        }
        if (pfd[1].revents)
            return NULL;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warn("grpc: accept on %s failed: %s", srv->path, strerror(errno));
            continue;
        }
        struct server_conn *c = calloc(1, sizeof(*c));
        if (!c) {
            log_error("grpc: out of memory accepting a connection on %s", srv->path);
            close(fd);
            continue;
        }
        c->srv = srv;
        c->fd = fd;
        c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (c->wake_fd < 0) {
            log_error("grpc: eventfd for a connection failed: %s", strerror(errno));
            close(fd);
            free(c);
            continue;
        }
        pthread_mutex_lock(&srv->lock);
        c->next = srv->conns;
        srv->conns = c;
        srv->live_conns++;
        pthread_mutex_unlock(&srv->lock);
        pthread_attr_t attr;
        pthread_t th;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rv = pthread_create(&th, &attr, conn_thread, c);
        pthread_attr_destroy(&attr);
        if (rv != 0) {
            log_error("grpc: creating a connection thread failed: %s", strerror(rv));
            pthread_mutex_lock(&srv->lock);
            srv->conns = c->next;   /* still first: only this thread adds */
            srv->live_conns--;
            pthread_mutex_unlock(&srv->lock);
            close(c->fd);
            close(c->wake_fd);
            free(c);
        }
    }
}

int grpc_server_start(const char *socket_path, const struct grpc_method *methods, size_t n,
                      void *ctx, struct grpc_server **out)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof(addr.sun_path)) {
        log_error("grpc: socket path too long: %s", socket_path);
        return -ENAMETOOLONG;
    }
    strcpy(addr.sun_path, socket_path);
    struct grpc_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    int err;
    strcpy(srv->path, socket_path);
    srv->methods = methods;
    srv->n_methods = n;
    srv->ctx = ctx;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->idle, NULL);
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->stop_fd < 0) {
        err = -errno;
        log_error("grpc: eventfd: %s", strerror(errno));
        goto free_srv;
    }
    srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (srv->listen_fd < 0) {
        err = -errno;
        log_error("grpc: socket: %s", strerror(errno));
        goto close_stop;
    }
    if (unlink(socket_path) < 0 && errno != ENOENT) {
        err = -errno;
        log_error("grpc: removing the old socket %s: %s", socket_path, strerror(errno));
        goto close_listen;
    }
    mode_t old = umask(0177);
    int rv = bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
    umask(old);
    if (rv < 0) {
        err = -errno;
        log_error("grpc: bind %s: %s", socket_path, strerror(errno));
        goto close_listen;
    }
    struct stat sb;
    if (stat(socket_path, &sb) < 0) {
        err = -errno;
        log_error("grpc: stat %s after bind: %s", socket_path, strerror(errno));
        goto unlink_sock;
    }
    srv->sock_dev = sb.st_dev;
    srv->sock_ino = sb.st_ino;
    if (listen(srv->listen_fd, 64) < 0) {
        err = -errno;
        log_error("grpc: listen %s: %s", socket_path, strerror(errno));
        goto unlink_sock;
    }
    if ((rv = pthread_create(&srv->accept_thread, NULL, accept_thread, srv)) != 0) {
        err = -rv;
        log_error("grpc: creating the accept thread: %s", strerror(rv));
        goto unlink_sock;
    }
    *out = srv;
    return 0;

unlink_sock:
    unlink(socket_path);
close_listen:
    close(srv->listen_fd);
close_stop:
    close(srv->stop_fd);
free_srv:
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
    return err;
}

void grpc_server_notify(struct grpc_server *srv)
{
    uint64_t one = 1;
    pthread_mutex_lock(&srv->lock);
    for (struct server_conn *c = srv->conns; c; c = c->next)
        if (write(c->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("grpc: waking a connection failed: %s", strerror(errno));
    pthread_mutex_unlock(&srv->lock);
}

void grpc_server_stop(struct grpc_server *srv)
{
    if (!srv)
        return;
    uint64_t one = 1;
    if (write(srv->stop_fd, &one, sizeof(one)) < 0)
        log_error("grpc: signalling stop failed: %s", strerror(errno));
    pthread_join(srv->accept_thread, NULL);
    pthread_mutex_lock(&srv->lock);
    while (srv->live_conns)
        pthread_cond_wait(&srv->idle, &srv->lock);
    pthread_mutex_unlock(&srv->lock);
    close(srv->listen_fd);
    /* Remove the socket only if it is still ours (the kubelet may have replaced the dir). */
    struct stat sb;
    if (stat(srv->path, &sb) == 0 && sb.st_dev == srv->sock_dev && sb.st_ino == srv->sock_ino &&
        unlink(srv->path) < 0)
        log_warn("grpc: removing socket %s: %s", srv->path, strerror(errno));
    close(srv->stop_fd);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

/* ---- client ---------------------------------------------------------------------------- */

struct client_call {
    int fd;
    int32_t stream_id;
    bool closed;
    bool have_status;
    int http_status;
    struct grpc_status st;
    struct grpc_buf body;
    struct grpc_buf req;        /* framed request */
    size_t req_off;
    bool too_big;
};

static ssize_t cli_send_cb(nghttp2_session *session, const uint8_t *data, size_t length,
                           int flags, void *user_data)
{
    (void)session;
    (void)flags;
    struct client_call *call = user_data;
    ssize_t n = send(call->fd, data, length, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return NGHTTP2_ERR_WOULDBLOCK;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return n;
}

static ssize_t cli_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                           size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                           void *user_data)
{
    (void)session;
    (void)stream_id;
    (void)source;
    struct client_call *call = user_data;
    size_t avail = call->req.len - call->req_off;
    size_t n = avail < length ? avail : length;
    memcpy(buf, call->req.data + call->req_off, n);
    call->req_off += n;
    if (call->req_off == call->req.len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int cli_header_cb(nghttp2_session *session, const nghttp2_frame *frame,
                         const uint8_t *name, size_t namelen, const uint8_t *value,
                         size_t valuelen, uint8_t flags, void *user_data)
{
    (void)session;
    (void)flags;
    struct client_call *call = user_data;
    if (frame->hd.stream_id != call->stream_id)
        return 0;
    char v[32];
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        size_t n = valuelen < sizeof(v) - 1 ? valuelen : sizeof(v) - 1;
        memcpy(v, value, n);
        v[n] = '\0';
        call->http_status = atoi(v);
    } else if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        size_t n = valuelen < sizeof(v) - 1 ? valuelen : sizeof(v) - 1;
        memcpy(v, value, n);
        v[n] = '\0';
        call->st.code = atoi(v);
        call->have_status = true;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        percent_decode(value, valuelen, call->st.message, sizeof(call->st.message));
    }
    return 0;
}

static int cli_data_chunk_cb(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                             const uint8_t *data, size_t len, void *user_data)
{
    (void)session;
    (void)flags;
    struct client_call *call = user_data;
    if (stream_id != call->stream_id || call->too_big)
        return 0;
    if (call->body.len + len > GRPC_MAX_MESSAGE + 5) {
        call->too_big = true;
        return 0;
    }
    return grpc_buf_append(&call->body, data, len) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int cli_stream_close_cb(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                               void *user_data)
{
    (void)session;
    struct client_call *call = user_data;
    if (stream_id == call->stream_id) {
        call->closed = true;
        if (error_code != NGHTTP2_NO_ERROR && !call->have_status)
            grpc_status_set(&call->st, GRPC_UNAVAILABLE, "stream reset by the server (%s)",
                            nghttp2_http2_strerror(error_code));
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int grpc_unary_call(const char *socket_path, const char *method_path, const uint8_t *req,
                    size_t len, int timeout_ms, struct grpc_buf *resp, struct grpc_status *st)
{
    struct client_call call = {.fd = -1};
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    nghttp2_session *session = NULL;
    nghttp2_session_callbacks *cbs = NULL;
    int err = 0;
    st->code = GRPC_UNKNOWN;
    st->message[0] = '\0';
    if (strlen(socket_path) >= sizeof(addr.sun_path)) {
        grpc_status_set(st, GRPC_UNAVAILABLE, "socket path too long: %s", socket_path);
        return -ENAMETOOLONG;
    }
    strcpy(addr.sun_path, socket_path);
    struct grpc_buf msg = {.data = (uint8_t *)req, .len = len, .cap = len};
    if (frame_message(&call.req, &msg) < 0) {
        grpc_status_set(st, GRPC_INTERNAL, "out of memory framing the request");
        return -ENOMEM;
    }
    call.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (call.fd < 0) {
        err = -errno;
        grpc_status_set(st, GRPC_UNAVAILABLE, "socket: %s", strerror(errno));
        goto free_req;
    }
    if (connect(call.fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        err = -errno;
        grpc_status_set(st, GRPC_UNAVAILABLE, "connect %s: %s", socket_path, strerror(errno));
        goto close_fd;
    }
    int fl = fcntl(call.fd, F_GETFL);
    if (fl < 0 || fcntl(call.fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        err = -errno;
        grpc_status_set(st, GRPC_UNAVAILABLE, "fcntl O_NONBLOCK: %s", strerror(errno));
        goto close_fd;
    }
    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        err = -ENOMEM;
        grpc_status_set(st, GRPC_INTERNAL, "out of memory");
        goto close_fd;
    }
    nghttp2_session_callbacks_set_send_callback(cbs, cli_send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cli_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cli_data_chunk_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cli_stream_close_cb);
    int rv = nghttp2_session_client_new(&session, cbs, &call);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) {
        err = -ENOMEM;
        grpc_status_set(st, GRPC_INTERNAL, "nghttp2 client session: %s", nghttp2_strerror(rv));
        goto close_fd;
    }
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, NULL, 0);
    nghttp2_nv hdrs[] = {
        NV(":method", "POST"), NV(":scheme", "http"), NV(":path", method_path),
        NV(":authority", "localhost"), NV("content-type", "application/grpc"),
        NV("te", "trailers"), NV("user-agent", "vgpu-device-plugin"),
    };
    nghttp2_data_provider prd = {.read_callback = cli_read_cb};
    call.stream_id = nghttp2_submit_request(session, NULL, hdrs, sizeof(hdrs) / sizeof(hdrs[0]),
                                            &prd, &call);
    if (call.stream_id < 0) {
        err = -EIO;
        grpc_status_set(st, GRPC_INTERNAL, "submitting the request: %s",
                        nghttp2_strerror(call.stream_id));
        goto del_session;
    }
    int64_t deadline = now_ms() + timeout_ms;
    while (!call.closed) {
        if ((rv = nghttp2_session_send(session)) != 0) {
            err = -EIO;
            grpc_status_set(st, GRPC_UNAVAILABLE, "sending to %s: %s", socket_path,
                            nghttp2_strerror(rv));
            goto del_session;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            err = -ETIMEDOUT;
            grpc_status_set(st, GRPC_DEADLINE_EXCEEDED, "%s on %s: no answer within %d ms",
                            method_path, socket_path, timeout_ms);
            goto del_session;
        }
        short ev = POLLIN | (nghttp2_session_want_write(session) ? POLLOUT : 0);
        struct pollfd pfd = {.fd = call.fd, .events = ev};
        if (poll(&pfd, 1, (int)left) < 0) {
            if (errno == EINTR)
                continue;
            err = -errno;
            grpc_status_set(st, GRPC_UNAVAILABLE, "poll: %s", strerror(errno));
            goto del_session;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t buf[16384];
            ssize_t n = recv(call.fd, buf, sizeof(buf), 0);
            if (n == 0) {
                err = -ECONNRESET;
                grpc_status_set(st, GRPC_UNAVAILABLE, "%s closed the connection during %s",
                                socket_path, method_path);
                goto del_session;
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    continue;
                err = -errno;
                grpc_status_set(st, GRPC_UNAVAILABLE, "recv from %s: %s", socket_path,
                                strerror(errno));
                goto del_session;
            }
            ssize_t used = nghttp2_session_mem_recv(session, buf, (size_t)n);
            if (used < 0) {
                err = -EPROTO;
                grpc_status_set(st, GRPC_INTERNAL, "bad HTTP/2 from %s: %s", socket_path,
                                nghttp2_strerror((int)used));
                goto del_session;
            }
        }
    }
    if (!call.have_status) {
        err = -EPROTO;
        grpc_status_set(st, call.st.code == GRPC_UNAVAILABLE ? GRPC_UNAVAILABLE : GRPC_INTERNAL,
                        "%s: no grpc-status from %s (HTTP status %d)%s%s", method_path,
                        socket_path, call.http_status, call.st.message[0] ? ": " : "",
                        call.st.message);
        goto del_session;
    }
    *st = call.st;
    if (st->code == GRPC_OK) {
        const uint8_t *m = NULL;
        size_t mlen = 0;
        if (call.too_big) {
            grpc_status_set(st, GRPC_RESOURCE_EXHAUSTED, "reply larger than %u bytes",
                            GRPC_MAX_MESSAGE);
        } else {
            unframe_message(&call.body, &m, &mlen, st);
            if (st->code == GRPC_OK && grpc_buf_append(resp, m, mlen) < 0)
                grpc_status_set(st, GRPC_INTERNAL, "out of memory");
        }
    }
del_session:
    nghttp2_session_del(session);
close_fd:
    close(call.fd);
free_req:
    grpc_buf_free(&call.req);
    grpc_buf_free(&call.body);
    return err;
}
