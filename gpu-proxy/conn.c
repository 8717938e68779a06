/* conn.c - the supervisor's request/answer connections (conn.h): listeners on a Unix socket or
 * a TCP address, connections read and written without blocking inside the supervisor's poll
 * loop, bounded in number, request size and time, with every refusal logged through the
 * server's token bucket. The admin socket and the metrics listener are two such servers. */
#include "conn.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "monotime.h"

static void slot_reset(struct conn_server *srv, struct sconn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->pidx = -1;
    c->srv = srv;
}

void conn_server_init(struct conn_server *srv, const char *what)
{
    srv->what = what;
    srv->fd = -1;
    srv->pidx = -1;
    srv->path[0] = 0;
    for (int i = 0; i < CONN_MAX; i++)
        slot_reset(srv, &srv->conns[i]);
}

static int listen_on(struct conn_server *srv, int fd, const char *where)
{
    if (listen(fd, 16) != 0) {
        int rc = -errno;
        log_error("%s socket: listen on %s: %s", srv->what, where, strerror(errno));
        return rc;
    }
    srv->fd = fd;
    return 0;
}

/* Removes a stale socket at path; anything else there is an error. */
static int unlink_stale(const char *what, const char *path)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        log_error("%s socket: %s exists and is not a socket", what, path);
        return -EEXIST;
    }
    if (unlink(path) != 0) {
        int rc = -errno;
        log_error("%s socket: removing the stale %s: %s", what, path, strerror(errno));
        return rc;
    }
    return 0;
}

int conn_listen_unix(struct conn_server *srv, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, rc;

    if (strlen(path) >= sizeof(sa.sun_path) || strlen(path) >= sizeof(srv->path)) {
        log_error("%s socket: path %s is too long", srv->what, path);
        return -ENAMETOOLONG;
    }
    if ((rc = unlink_stale(srv->what, path)) != 0)
        return rc;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        log_error("%s socket: %s", srv->what, strerror(errno));
        return rc;
    }
    strcpy(sa.sun_path, path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rc = -errno;
        log_error("%s socket: bind %s: %s", srv->what, path, strerror(errno));
        goto close_fd;
    }
    if (chmod(path, 0600) != 0) {
        rc = -errno;
        log_error("%s socket: chmod %s: %s", srv->what, path, strerror(errno));
        goto unlink_path;
    }
    if ((rc = listen_on(srv, fd, path)) != 0)
        goto unlink_path;
    snprintf(srv->path, sizeof(srv->path), "%s", path);
    return 0;

unlink_path:
    unlink(path);
close_fd:
    close(fd);
    return rc;
}

int conn_listen_tcp(struct conn_server *srv, const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai;
    int fd, rc, one = 1;

    rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        log_error("%s socket: %s port %s: %s (a numeric address and port are needed)",
                  srv->what, host, port, gai_strerror(rc));
        return -EINVAL;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = -errno;
        log_error("%s socket: %s", srv->what, strerror(errno));
        goto free_ai;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
        log_warn("%s socket: SO_REUSEADDR: %s", srv->what, strerror(errno));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        rc = -errno;
        log_error("%s socket: bind %s port %s: %s", srv->what, host, port, strerror(errno));
        close(fd);
        goto free_ai;
    }
    if ((rc = listen_on(srv, fd, host)) != 0)
        close(fd);
free_ai:
    freeaddrinfo(ai);
    return rc;
}

/* Closes a connection. Unread input is discarded first (bounded): closing a socket with
 * unread data makes the peer's next read fail with ECONNRESET instead of seeing the end. */
static void conn_close(struct sconn *c)
{
    char sink[4096];

    for (int i = 0; i < 16 && recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    if (close(c->fd) != 0)
        log_warn("%s: closing a connection: %s", c->srv->what, strerror(errno));
    free(c->out);
    slot_reset(c->srv, c);
}

void conn_server_close(struct conn_server *srv)
{
    for (int i = 0; i < CONN_MAX; i++)
        if (srv->conns[i].state != SC_FREE)
            conn_close(&srv->conns[i]);
    if (srv->fd < 0)
        return;
    close(srv->fd);
    srv->fd = -1;
    if (srv->path[0] && unlink(srv->path) != 0 && errno != ENOENT)
        log_warn("removing %s: %s", srv->path, strerror(errno));
}

/* Sends what the peer takes now; the connection ends once the whole answer is out. */
static void conn_flush(struct sconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w < 0) {
            log_limited(&c->srv->bucket, LOG_WARN, "%s: answer not delivered: %s",
                        c->srv->what, strerror(errno));
            break;
        }
        c->out_off += (size_t)w;
    }
    conn_close(c);
}

void conn_answer(struct sconn *c, const char *text, size_t len)
{
    if (len > c->srv->out_max) {
        log_error("%s: a %zu-byte answer is over the limit of %zu; dropping the connection",
                  c->srv->what, len, c->srv->out_max);
        conn_close(c);
        return;
    }
    c->out = malloc(len ? len : 1);
    if (c->out == NULL) {
        log_error("%s: no memory for a %zu-byte answer; dropping the connection",
                  c->srv->what, len);
        conn_close(c);
        return;
    }
    memcpy(c->out, text, len);
    c->out_len = len;
    c->out_off = 0;
    c->state = SC_WRITING;
    c->deadline_ms = now_ms() + CONN_IDLE_MS;
    conn_flush(c);
}

void conn_answer_str(struct sconn *c, const char *text)
{
    conn_answer(c, text, strlen(text));
}

/* A refusal the client caused, logged through the server's bucket. */
static void refuse(struct sconn *c, const char *why, const char *answer)
{
    log_limited(&c->srv->bucket, LOG_WARN, "%s: connection refused: %s", c->srv->what, why);
    if (answer)
        conn_answer_str(c, answer);
    else
        conn_close(c);
}

/* Takes a pending connection: a free slot reads its request; with none free it is told so. */
static void accept_one(struct conn_server *srv)
{
    struct sconn *c = NULL, busy;
    int fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            log_warn("%s: accept: %s", srv->what, strerror(errno));
        return;
    }
    for (int i = 0; i < CONN_MAX && c == NULL; i++)
        if (srv->conns[i].state == SC_FREE)
            c = &srv->conns[i];
    if (c == NULL) {
        slot_reset(srv, &busy);
        busy.fd = fd;
        refuse(&busy, "all connection slots are taken", srv->busy);
        if (busy.state != SC_FREE) /* the answer did not fit the socket: drop it */
            conn_close(&busy);
        return;
    }
    c->fd = fd;
    c->state = SC_READING;
    c->in_len = 0;
    c->deadline_ms = now_ms() + CONN_IDLE_MS;
}

/* Reads what has arrived; a whole request (or the peer's end of sending) is served. */
static void conn_read(struct sup *S, struct sconn *c)
{
    struct conn_server *srv = c->srv;
    ssize_t r = recv(c->fd, c->in + c->in_len, srv->in_max - 1 - c->in_len, MSG_DONTWAIT);

    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            refuse(c, strerror(errno), NULL);
        return;
    }
    c->in_len += (size_t)r;
    c->in[c->in_len] = 0;
    if (r > 0 && !srv->complete(c->in, c->in_len)) {
        if (c->in_len == srv->in_max - 1)
            refuse(c, "request too long", srv->too_long);
        return; /* more to come */
    }
    srv->serve(S, c);
}

int conn_poll_add(struct conn_server *srv, int paused, struct pollfd *pfd, nfds_t *n,
                  nfds_t cap)
{
    uint64_t now = now_ms(), next = UINT64_MAX;

    srv->pidx = -1;
    if (srv->fd >= 0 && !paused && *n < cap) {
        srv->pidx = (int)*n;
        pfd[(*n)++] = (struct pollfd){.fd = srv->fd, .events = POLLIN};
    }
    for (int i = 0; i < CONN_MAX; i++) {
        struct sconn *c = &srv->conns[i];
        c->pidx = -1;
        if (c->state != SC_READING && c->state != SC_WRITING)
            continue;
        if (now >= c->deadline_ms) {
            refuse(c, c->state == SC_READING ? "no whole request within the idle timeout"
                                              : "the answer was not read in time", NULL);
            continue;
        }
        if (c->deadline_ms < next)
            next = c->deadline_ms;
        if (*n < cap) {
            c->pidx = (int)*n;
            pfd[(*n)++] = (struct pollfd){
                .fd = c->fd, .events = c->state == SC_READING ? POLLIN : POLLOUT};
        }
    }
    return next == UINT64_MAX ? -1 : (int)(next - now);
}

void conn_poll_done(struct sup *S, struct conn_server *srv, const struct pollfd *pfd,
                    int accepting)
{
    for (int i = 0; i < CONN_MAX; i++) {
        struct sconn *c = &srv->conns[i];
        if (c->pidx < 0 || pfd[c->pidx].revents == 0)
            continue;
        if (c->state == SC_READING)
            conn_read(S, c);
        else if (c->state == SC_WRITING)
            conn_flush(c);
    }
    if (srv->pidx >= 0 && pfd[srv->pidx].revents && accepting)
        accept_one(srv);
}
