/* grpc_h2.h - a small gRPC server (unary and server-streaming methods) and a unary client over
 * Unix stream sockets, on libnghttp2 for HTTP/2. Messages are opaque bytes here; callers encode
 * and decode them (protobuf-c). Enough of gRPC for the kubelet's device-plugin and PodResources
 * APIs: no compression, no TLS, one message per request. */
#ifndef VGPU_K8S_GRPC_H2_H
#define VGPU_K8S_GRPC_H2_H

#include <stddef.h>
#include <stdint.h>

enum grpc_code {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_ALREADY_EXISTS = 6,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
};

/* Largest request or response message accepted. */
#define GRPC_MAX_MESSAGE (4u << 20)

struct grpc_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
};

/* Appends n bytes; 0 or -ENOMEM. */
int grpc_buf_append(struct grpc_buf *b, const void *p, size_t n);
/* Makes room for n more bytes and returns where they go (len unchanged), or NULL. */
uint8_t *grpc_buf_reserve(struct grpc_buf *b, size_t n);
void grpc_buf_free(struct grpc_buf *b);

struct grpc_status {
    int code;              /* enum grpc_code */
    char message[256];
};

/* Sets st to code + formatted message. */
void grpc_status_set(struct grpc_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A unary method: decode req (one message, unframed), append the reply message to out, or set
 * st->code to an error. st starts as GRPC_OK. */
typedef void (*grpc_unary_fn)(void *ctx, const uint8_t *req, size_t len, struct grpc_buf *out,
                              struct grpc_status *st);
/* A server-streaming method: called when the stream opens and again after every
 * grpc_server_notify(); when there is something new since *cursor (starts at 0, the method's to
 * keep) it appends one message to out (possibly empty) and returns 1, else returns 0; setting
 * st->code ends the stream with that status. */
typedef int (*grpc_stream_fn)(void *ctx, const uint8_t *req, size_t len, uint64_t *cursor,
                               struct grpc_buf *out, struct grpc_status *st);

struct grpc_method {
    const char *path;          /* "/package.Service/Method" */
    grpc_unary_fn unary;       /* exactly one of unary/stream */
    grpc_stream_fn stream;
};

struct grpc_server;

/* Listens on socket_path (an existing file there is replaced; mode 0600) and serves methods
 * from a thread per connection. methods and ctx must outlive the server. 0 or -errno. */
int grpc_server_start(const char *socket_path, const struct grpc_method *methods, size_t n,
                      void *ctx, struct grpc_server **out);
/* Wakes every open stream so its method can push a new message. */
void grpc_server_notify(struct grpc_server *srv);
/* Stops accepting, closes every connection, waits for their threads, removes the socket file
 * (only if it is still the one this server created). */
void grpc_server_stop(struct grpc_server *srv);

/* One unary call on a fresh connection to socket_path. Returns 0 when the server answered (its
 * status in *st; on GRPC_OK the reply message in *resp), or -errno when no answer came
 * (connection refused, timeout, protocol error; st->message says which). */
int grpc_unary_call(const char *socket_path, const char *method_path, const uint8_t *req,
                    size_t len, int timeout_ms, struct grpc_buf *resp, struct grpc_status *st);

#endif
