/* admin.c - the admin socket of gpu_proxy's supervisor: binds DIR/admin.sock (mode 0600),
 * keeps up to ADMIN_MAX_CONNS connections in the supervisor's poll set, reads one request line
 * per connection without blocking (bounded line, idle timeout), answers PING, ADD, REMOVE, LIST
 * and STATS from the zone registry and the figures the workers publish, and writes each answer
 * without blocking (bounded; a peer that does not drain it is dropped). REMOVE is answered when
 * the zone's workers have ended, so it never holds up other requests. */
#include "admin.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "monotime.h"
#include "sup_internal.h"
#include "supervisor.h"
#include "zone.h"

int admin_open(struct sup *S)
{
    struct admin_state *a = &S->admin;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    snprintf(a->path, sizeof(a->path), "%s/admin.sock", S->cfg->listen_dir);
    if (strlen(a->path) >= sizeof(sa.sun_path)) {
        log_error("admin socket path %s is too long", a->path);
        return -ENAMETOOLONG;
    }
    if (lstat(a->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_error("%s exists and is not a socket", a->path);
            return -EEXIST;
        }
        if (unlink(a->path) != 0) {
            log_error("removing the stale %s: %s", a->path, strerror(errno));
            return -errno;
        }
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_error("admin socket: %s", strerror(errno));
        return -errno;
    }
    strcpy(sa.sun_path, a->path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        log_error("admin socket: bind %s: %s", a->path, strerror(errno));
        goto close_fd;
    }
    if (chmod(a->path, 0600) != 0) {
        log_error("admin socket: chmod %s: %s", a->path, strerror(errno));
        goto unlink_path;
    }
    if (listen(fd, 16) != 0) {
        log_error("admin socket: listen: %s", strerror(errno));
        goto unlink_path;
    }
    a->fd = fd;
    for (int i = 0; i < ADMIN_MAX_CONNS; i++)
        a->conns[i] = (struct admin_conn){.fd = -1, .pidx = -1};
    return 0;

unlink_path:
    unlink(a->path);
close_fd:
    close(fd);
    return -EIO;
}

/* What admin clients can make the supervisor log (refused or dropped connections, answers
 * they did not take) goes through one bucket: the supervisor is a single thread. */
static struct idm_log_bucket admin_bucket;

/* Closes a connection. Unread input is discarded first (bounded): closing a Unix socket with
 * unread data makes the peer's next read fail with ECONNRESET instead of seeing the end. */
static void conn_close(struct admin_conn *c)
{
    char sink[4096];

    for (int i = 0; i < 16 && recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    if (close(c->fd) != 0)
        log_warn("admin: closing a connection: %s", strerror(errno));
    free(c->out);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->pidx = -1;
}

void admin_close(struct sup *S)
{
    for (int i = 0; i < ADMIN_MAX_CONNS; i++)
        if (S->admin.conns[i].state != AC_FREE)
            conn_close(&S->admin.conns[i]);
    if (S->admin.fd < 0)
        return;
    close(S->admin.fd);
    S->admin.fd = -1;
    if (unlink(S->admin.path) != 0 && errno != ENOENT)
        log_warn("removing %s: %s", S->admin.path, strerror(errno));
}

/* Sends what the peer takes now; the connection ends once the whole answer is out. */
static void conn_flush(struct admin_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (w < 0) {
            log_limited(&admin_bucket, LOG_WARN, "admin: answer not delivered: %s",
                        strerror(errno));
            break;
        }
        c->out_off += (size_t)w;
    }
    conn_close(c);
}

void admin_answer(struct admin_conn *c, const char *text)
{
    size_t n = strlen(text);

    c->out = malloc(n ? n : 1);
    if (c->out == NULL) {
        log_error("admin: no memory for a %zu-byte answer; dropping the connection", n);
        conn_close(c);
        return;
    }
    memcpy(c->out, text, n);
    c->out_len = n;
    c->out_off = 0;
    c->state = AC_WRITING;
    c->deadline_ms = now_ms() + ADMIN_IDLE_MS;
    conn_flush(c);
}

static const char *state_name(struct szone *z)
{
    struct wproc *w;

    if (z->removing)
        return "removing";
    w = sup_serving_worker(z);
    if (w == NULL)
        return z->restart_at ? "restarting" : "down";
    return w->state == WS_READY ? "ready" : "starting";
}

/* The zone's figures, summed over its live workers (a retiring one still holds memory). */
static void zone_figures(struct szone *z, uint64_t *used, int *clients)
{
    *used = 0;
    *clients = 0;
    for (struct wproc *w = z->workers; w; w = w->next) {
        int32_t c = __atomic_load_n(&w->st->clients, __ATOMIC_RELAXED);
        *used += __atomic_load_n(&w->st->used, __ATOMIC_RELAXED);
        *clients += c > 0 && c < 1000000 ? c : 0;
    }
}

static void cmd_list(struct sup *S, struct admin_conn *c)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    unsigned n = 0;

    if (f == NULL) {
        admin_answer(c, "ERR out of memory\n");
        return;
    }
    for (struct szone *z = S->zones; z; z = z->next)
        n++;
    fprintf(f, "OK %u\n", n);
    for (struct szone *z = S->zones; z; z = z->next) {
        struct wproc *w = sup_serving_worker(z);
        uint64_t used;
        int clients;
        zone_figures(z, &used, &clients);
        /* The first four fields are the contract; key=value fields may be added after them. */
        fprintf(f, "%s %llu %llu %d state=%s pid=%d restarts=%u faults=%u cgroup=%s\n",
                z->name, (unsigned long long)z->quota, (unsigned long long)used, clients,
                state_name(z), w ? (int)w->pid : 0, z->restarts, z->faults,
                cgroup_kind_name(z->cg_made && (w == NULL || w->cg) ? S->cg.kind : CGROUP_NONE));
    }
    if (fclose(f) != 0)
        admin_answer(c, "ERR out of memory\n");
    else if (outlen > ADMIN_OUT_MAX)
        admin_answer(c, "ERR answer too long\n");
    else
        admin_answer(c, out);
    free(out);
}

static void cmd_stats(struct sup *S, struct admin_conn *c)
{
    uint64_t scrubbed = S->dead_scrubbed, allocated = 0;
    unsigned zones = 0, workers = 0, restarts = 0;
    char buf[256];

    for (struct szone *z = S->zones; z; z = z->next) {
        zones++;
        restarts += z->restarts;
        for (struct wproc *w = z->workers; w; w = w->next) {
            workers++;
            scrubbed += __atomic_load_n(&w->st->scrubbed_bytes, __ATOMIC_RELAXED);
            allocated += __atomic_load_n(&w->st->allocated_bytes, __ATOMIC_RELAXED);
        }
    }
    snprintf(buf, sizeof(buf),
             "OK zones=%u scrubbed_bytes=%llu allocated_bytes=%llu workers=%u restarts=%u\n",
             zones, (unsigned long long)scrubbed, (unsigned long long)allocated, workers,
             restarts);
    admin_answer(c, buf);
}

static void cmd_add(struct sup *S, struct admin_conn *c, const char *name, const char *quota_s)
{
    char buf[512];
    uint64_t quota;
    int rc;

    if (!zone_name_valid(name)) {
        admin_answer(c, "ERR invalid zone name\n");
        return;
    }
    if (parse_size(quota_s, &quota) != 0) {
        admin_answer(c, "ERR invalid quota\n");
        return;
    }
    rc = sup_zone_add(S, name, quota, -1);
    if (rc == -EEXIST) {
        admin_answer(c, "ERR zone exists\n");
    } else if (rc != 0) {
        snprintf(buf, sizeof(buf), "ERR cannot add zone: %s\n", strerror(-rc));
        admin_answer(c, buf);
    } else {
        snprintf(buf, sizeof(buf), "OK %s/%s.sock\n", S->cfg->listen_dir, name);
        admin_answer(c, buf);
        log_info("zone=%s: added through the admin socket", name);
    }
}

/* Answers one request line (REMOVE: once the zone is gone, see sup_zone_remove). */
static void admin_command(struct sup *S, struct admin_conn *c, char *line)
{
    char *save = NULL, *cmd, *a1, *a2, *extra;
    char buf[512];

    cmd = strtok_r(line, " \t", &save);
    a1 = strtok_r(NULL, " \t", &save);
    a2 = strtok_r(NULL, " \t", &save);
    extra = strtok_r(NULL, " \t", &save);
    if (cmd == NULL) {
        admin_answer(c, "ERR empty request\n");
    } else if (strcmp(cmd, "PING") == 0 && a1 == NULL) {
        snprintf(buf, sizeof(buf), "OK gpu_proxy %s backend=%s total_bytes=%llu\n",
                 GPU_PROXY_VERSION, S->cfg->be->name, (unsigned long long)S->total_mem);
        admin_answer(c, buf);
    } else if (strcmp(cmd, "ADD") == 0 && a1 && a2 && !extra) {
        cmd_add(S, c, a1, a2);
    } else if (strcmp(cmd, "REMOVE") == 0 && a1 && !a2) {
        struct szone *z = sup_zone_get(S, a1);
        if (z == NULL) {
            admin_answer(c, "ERR no such zone\n");
        } else if (z->removing) {
            admin_answer(c, "ERR zone is being removed\n");
        } else {
            log_info("zone=%s: removal asked through the admin socket", z->name);
            c->state = AC_WAITING;
            c->deadline_ms = 0;
            sup_zone_remove(S, z, c);
        }
    } else if (strcmp(cmd, "LIST") == 0 && a1 == NULL) {
        cmd_list(S, c);
    } else if (strcmp(cmd, "STATS") == 0 && a1 == NULL) {
        cmd_stats(S, c);
    } else {
        admin_answer(c, "ERR unknown request\n");
    }
}

/* A refusal the admin client caused, logged through the admin socket's bucket. */
static void refuse(struct admin_conn *c, const char *why, const char *answer)
{
    log_limited(&admin_bucket, LOG_WARN, "admin: connection refused: %s", why);
    if (answer)
        admin_answer(c, answer);
    else
        conn_close(c);
}

/* Takes a pending connection: a free slot reads its request; with none free it is told so. */
static void accept_one(struct sup *S)
{
    struct admin_conn *c = NULL, busy = {.pidx = -1};
    int fd = accept4(S->admin.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            log_warn("admin: accept: %s", strerror(errno));
        return;
    }
    for (int i = 0; i < ADMIN_MAX_CONNS && c == NULL; i++)
        if (S->admin.conns[i].state == AC_FREE)
            c = &S->admin.conns[i];
    if (c == NULL) {
        busy.fd = fd;
        refuse(&busy, "all admin connection slots are taken",
               "ERR busy: too many admin connections\n");
        if (busy.state != AC_FREE) /* the answer did not fit the socket: drop it */
            conn_close(&busy);
        return;
    }
    c->fd = fd;
    c->state = AC_READING;
    c->in_len = 0;
    c->deadline_ms = now_ms() + ADMIN_IDLE_MS;
}

/* Reads what has arrived; a whole line (or the peer's end of sending) becomes the request. */
static void conn_read(struct sup *S, struct admin_conn *c)
{
    char *nl;
    ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, MSG_DONTWAIT);

    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            refuse(c, strerror(errno), NULL);
        return;
    }
    c->in_len += (size_t)r;
    c->in[c->in_len] = 0;
    nl = memchr(c->in, '\n', c->in_len);
    if (nl == NULL && r > 0 && c->in_len == sizeof(c->in) - 1) {
        refuse(c, "request line too long",
               "ERR request too long (at most 511 bytes and a newline)\n");
        return;
    }
    if (nl == NULL && r > 0)
        return; /* more to come */
    if (c->in_len == 0) {
        admin_answer(c, "ERR empty request\n");
        return;
    }
    c->in[strcspn(c->in, "\r\n")] = 0;
    log_debug("admin: %s", c->in);
    admin_command(S, c, c->in);
}

int admin_poll_add(struct sup *S, struct pollfd *pfd, nfds_t *n, nfds_t cap)
{
    uint64_t now = now_ms(), next = UINT64_MAX;

    S->admin.pidx = -1;
    if (S->admin.fd >= 0 && !S->starting && *n < cap) {
        S->admin.pidx = (int)*n;
        pfd[(*n)++] = (struct pollfd){.fd = S->admin.fd, .events = POLLIN};
    }
    for (int i = 0; i < ADMIN_MAX_CONNS; i++) {
        struct admin_conn *c = &S->admin.conns[i];
        c->pidx = -1;
        if (c->state != AC_READING && c->state != AC_WRITING)
            continue;
        if (now >= c->deadline_ms) {
            refuse(c, c->state == AC_READING ? "no request line within the idle timeout"
                                                : "the answer was not read in time", NULL);
            continue;
        }
        if (c->deadline_ms < next)
            next = c->deadline_ms;
        if (*n < cap) {
            c->pidx = (int)*n;
            pfd[(*n)++] = (struct pollfd){
                .fd = c->fd, .events = c->state == AC_READING ? POLLIN : POLLOUT};
        }
    }
    return next == UINT64_MAX ? -1 : (int)(next - now);
}

void admin_poll_done(struct sup *S, const struct pollfd *pfd)
{
    for (int i = 0; i < ADMIN_MAX_CONNS; i++) {
        struct admin_conn *c = &S->admin.conns[i];
        if (c->pidx < 0 || pfd[c->pidx].revents == 0)
            continue;
        if (c->state == AC_READING)
            conn_read(S, c);
        else if (c->state == AC_WRITING)
            conn_flush(c);
    }
    if (S->admin.pidx >= 0 && pfd[S->admin.pidx].revents && !S->stopping)
        accept_one(S);
}
