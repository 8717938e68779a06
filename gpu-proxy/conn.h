/* conn.h - the supervisor's request/answer connections (conn.c), shared by the admin socket
 * (admin.c) and the metrics listener (metrics_serve.c): a listener, up to CONN_MAX connections
 * in the supervisor's poll set, one request read without blocking (bounded, idle timeout), then
 * one answer written without blocking (a peer that does not drain it is dropped). */
#ifndef GPU_PROXY_CONN_H
#define GPU_PROXY_CONN_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "idm_log.h"

struct sup;
struct conn_server;

#define CONN_MAX 16         /* connections per listener; more are told they are busy */
#define CONN_IN_MAX 4096    /* the largest request any listener takes */
#define CONN_IDLE_MS 5000   /* to send the request, and to drain the answer */

enum sconn_state { SC_FREE = 0, SC_READING, SC_WAITING, SC_WRITING };

struct sconn {
    int fd;
    int state;                /* enum sconn_state */
    size_t in_len;
    char in[CONN_IN_MAX];
    char *out;                /* the answer (malloc'd), out_off bytes of it sent */
    size_t out_len, out_off;
    uint64_t deadline_ms;     /* closed at this time (0: none, while an answer waits) */
    int pidx;                 /* its slot in the current poll set, or -1 */
    struct conn_server *srv;
};

struct conn_server {
    const char *what;         /* "admin", "metrics": in log lines */
    int fd;                   /* the listener, or -1 */
    int pidx;                 /* its slot in the current poll set, or -1 */
    char path[300];           /* a Unix socket's path (removed at close), or "" */
    size_t in_max;            /* a request's bytes, its terminator included (<= CONN_IN_MAX) */
    size_t out_max;           /* the largest answer */
    /* Whether in[0..len) holds a whole request (called after each read). */
    int (*complete)(const char *in, size_t len);
    /* Answers the request in c->in (NUL-terminated; at the peer's end, maybe not whole) with
     * conn_answer, or leaves c in SC_WAITING to answer later. */
    void (*serve)(struct sup *S, struct sconn *c);
    const char *too_long;     /* the answer to a request longer than in_max */
    const char *busy;         /* the answer when every connection slot is taken */
    struct idm_log_bucket bucket; /* what its clients can make the supervisor log */
    struct sconn conns[CONN_MAX];
};

/* Sets up a server with no listener yet (fd -1, every slot free). */
void conn_server_init(struct conn_server *srv, const char *what);
/* Binds and listens on a Unix socket at path (mode 0600; a stale socket is replaced). */
int conn_listen_unix(struct conn_server *srv, const char *path);
/* Binds and listens on TCP host:port (host a numeric IPv4 or IPv6 address). */
int conn_listen_tcp(struct conn_server *srv, const char *host, const char *port);
/* Closes the listener (removing a Unix socket's path) and every connection. */
void conn_server_close(struct conn_server *srv);
/* Adds the listener (unless paused) and the connections to pfd[*n .. cap), drops those past
 * their idle time; returns the milliseconds to the next such deadline, or -1. */
int conn_poll_add(struct conn_server *srv, int paused, struct pollfd *pfd, nfds_t *n,
                  nfds_t cap);
/* After poll: reads requests and serves them, writes pending answers, accepts connections. */
void conn_poll_done(struct sup *S, struct conn_server *srv, const struct pollfd *pfd,
                    int accepting);
/* Queues the answer (len bytes) and sends what the peer takes now; the connection closes
 * once it is all sent (or the peer does not take it within CONN_IDLE_MS). */
void conn_answer(struct sconn *c, const char *text, size_t len);
/* conn_answer of a NUL-terminated text. */
void conn_answer_str(struct sconn *c, const char *text);

#endif /* GPU_PROXY_CONN_H */
