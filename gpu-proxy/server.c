/* server.c - listeners, client threads, the admin socket and process life cycle of gpu_proxy.
 * The zone of a connection comes from the listener it arrived on (POSIX: the zone's own socket;
 * Xen: the domid Xen reports, mapped by configuration), never from anything the guest sends.
 * Each client is served by its own thread, so zones never wait for each other. */
#include "server.h"

#include <cuda.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "idm_transport.h"
#include "log.h"
#include "zone.h"

struct client {
    struct server *srv;
    struct zone *zone;
    struct idm_conn *conn;
    pthread_t thread;
    int stop;    /* set (atomically) to ask the thread to end */
    int done;    /* set by the thread when it has released everything (under srv->lock) */
    char peer[64];
    struct client *next;
};

#define STOP_POLL_MS 200

struct zone_listener {
    struct idm_listener *l;
    char path[300];
};

struct server {
    const struct server_config *cfg;
    struct zone_registry reg;
    const struct backend_ops *be;
    const struct idm_transport *posix;
    const struct idm_transport *xen;
    struct idm_listener *xen_l;
    int admin_fd;
    char admin_path[300];
    int wake_fd;   /* eventfd: a client ended */
    int signal_fd;
    pthread_mutex_t lock;
    struct client *clients;
    int stopping;
};

/* ---- sd_notify, written here so no libsystemd is needed ---- */

static void sd_notify_msg(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t salen;
    size_t n;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    n = strlen(path);
    if (n >= sizeof(sa.sun_path)) {
        log_warn("NOTIFY_SOCKET path is too long; not notifying systemd");
        return;
    }
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = 0; /* abstract namespace */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("sd_notify: socket: %s", strerror(errno));
        return;
    }
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
        log_warn("sd_notify(%s): %s", msg, strerror(errno));
    close(fd);
}

/* ---- client threads ---- */

/* Replies for requests a stream worker finished (called from the worker's thread). */
static int client_send_reply(void *ctx, const struct idm_hdr *req, int32_t status,
                             const void *payload, uint32_t len)
{
    struct client *cl = ctx;
    struct idm_hdr rh;

    memset(&rh, 0, sizeof(rh));
    rh.op = req->op;
    rh.flags = IDM_F_REPLY | (req->flags & IDM_F_ASYNC);
    rh.zone = cl->zone->id;
    rh.seq = req->seq;
    rh.status = status;
    return idm_send(cl->conn, &rh, payload, len, NULL, 0);
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct server *srv = cl->srv;
    struct session *s = NULL;
    struct idm_msg m;
    uint64_t wsize = 0;
    void *window = idm_window(cl->conn, &wsize);
    const struct idm_conn_config *geo = idm_conn_geometry(cl->conn);
    const char *why = "client disconnected";
    uint64_t one = 1;
    int rc;

    idm_msg_init(&m);
    rc = session_open(cl->zone, cl->conn, window, wsize, geo->slot_size, cl->peer, &s);
    if (rc != 0) {
        log_error("zone=%s %s: cannot open a session: %s", cl->zone->name, cl->peer,
                  strerror(-rc));
        goto out;
    }
    s->send_reply = client_send_reply;
    s->reply_ctx = cl;
    log_info("zone=%s %s: client connected (window %llu bytes)", cl->zone->name, cl->peer,
             (unsigned long long)wsize);
    for (;;) {
        struct idm_hdr rh;
        uint32_t rep_len;
        int32_t status;
        /* A bounded wait, so a stop request is seen within STOP_POLL_MS even when idle. */
        rc = idm_recv(cl->conn, &m, STOP_POLL_MS);
        if (__atomic_load_n(&cl->stop, __ATOMIC_ACQUIRE)) {
            why = "zone removed or proxy stopping";
            break;
        }
        if (rc == -EAGAIN)
            continue;
        if (rc != 0)
            goto conn_done;
        rc = dispatch_request(s, &m.hdr, m.payload, &rep_len, &status);
        if (rc == 1)
            continue; /* a stream worker replies */
        if (rc != 0) {
            why = "protocol violation";
            goto conn_end;
        }
        memset(&rh, 0, sizeof(rh));
        rh.op = m.hdr.op;
        rh.flags = IDM_F_REPLY | (m.hdr.flags & IDM_F_ASYNC);
        rh.zone = cl->zone->id;
        rh.seq = m.hdr.seq;
        rh.status = status;
        rc = idm_send(cl->conn, &rh, s->rbuf, rep_len, NULL, 0);
        if (LOG_ENABLED(LOG_TRACE)) {
            char line[512];
            log_trace("zone=%s %s: reply %s -> %d", cl->zone->name, cl->peer,
                      idm_trace_format(&rh, s->rbuf, line, sizeof(line)), rc);
        }
        if (rc != 0)
            goto conn_done;
    }
    goto conn_end;
conn_done:
    if (rc == -EPROTO)
        why = idm_conn_error(cl->conn)[0] ? idm_conn_error(cl->conn) : "ring corrupted";
    else if (rc != -EPIPE)
        why = strerror(-rc);
conn_end:
    log_info("zone=%s %s: session ends (%s); releasing its objects", cl->zone->name, cl->peer,
             why);
    session_close(s);
out:
    idm_msg_free(&m);
    pthread_mutex_lock(&srv->lock);
    cl->done = 1;
    pthread_mutex_unlock(&srv->lock);
    if (write(srv->wake_fd, &one, sizeof(one)) < 0)
        log_error("waking the main loop failed: %s", strerror(errno));
    return NULL;
}

static int client_start(struct server *srv, struct zone *z, struct idm_conn *c)
{
    const struct idm_peer *peer = idm_conn_peer(c);
    struct client *cl = calloc(1, sizeof(*cl));
    int rc;

    if (cl == NULL) {
        rc = -ENOMEM;
        goto close_conn;
    }
    cl->srv = srv;
    cl->zone = z;
    cl->conn = c;
    if (peer && peer->domid >= 0)
        snprintf(cl->peer, sizeof(cl->peer), "domid=%d", peer->domid);
    else if (peer)
        snprintf(cl->peer, sizeof(cl->peer), "pid=%d uid=%d", peer->pid, peer->uid);
    else
        snprintf(cl->peer, sizeof(cl->peer), "peer=?");
    zone_ref(z);
    pthread_mutex_lock(&srv->lock);
    rc = -pthread_create(&cl->thread, NULL, client_main, cl);
    if (rc == 0) {
        cl->next = srv->clients;
        srv->clients = cl;
    }
    pthread_mutex_unlock(&srv->lock);
    if (rc != 0) {
        log_error("zone=%s %s: cannot start a client thread: %s", z->name, cl->peer,
                  strerror(-rc));
        zone_unref(z);
        goto free_client;
    }
    return 0;

free_client:
    free(cl);
close_conn:
    idm_close(c);
    return rc;
}

/* Joins the threads of clients that have ended. */
static void reap_clients(struct server *srv)
{
    struct client *done = NULL;

    pthread_mutex_lock(&srv->lock);
    for (struct client **pp = &srv->clients; *pp;) {
        struct client *cl = *pp;
        if (cl->done) {
            *pp = cl->next;
            cl->next = done;
            done = cl;
        } else {
            pp = &cl->next;
        }
    }
    pthread_mutex_unlock(&srv->lock);
    while (done) {
        struct client *cl = done;
        done = cl->next;
        pthread_join(cl->thread, NULL);
        idm_close(cl->conn);
        zone_unref(cl->zone);
        free(cl);
    }
}

/* Asks every client of zone z (NULL: all zones) to end. */
static void stop_clients(struct server *srv, struct zone *z)
{
    pthread_mutex_lock(&srv->lock);
    for (struct client *cl = srv->clients; cl; cl = cl->next)
        if (z == NULL || cl->zone == z)
            __atomic_store_n(&cl->stop, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&srv->lock);
}

/* ---- zones ---- */

static int zone_start(struct server *srv, const char *name, uint64_t quota, struct zone **out)
{
    struct zone_listener *zl;
    struct zone *z;
    int rc;

    rc = zreg_add(&srv->reg, name, quota, &z);
    if (rc != 0)
        return rc;
    zl = calloc(1, sizeof(*zl));
    if (zl == NULL) {
        rc = -ENOMEM;
        goto unlink_zone;
    }
    if (srv->cfg->listen_dir[0]) {
        snprintf(zl->path, sizeof(zl->path), "%s/%s.sock", srv->cfg->listen_dir, name);
        rc = srv->posix->listen(zl->path, NULL, &zl->l);
        if (rc != 0) {
            log_error("zone=%s: cannot listen on %s: %s", name, zl->path, strerror(-rc));
            goto free_listener;
        }
    }
    z->listener = zl;
    if (quota)
        log_info("zone=%s: added, quota %llu bytes, socket %s", name,
                 (unsigned long long)quota, zl->l ? zl->path : "(none)");
    else
        log_info("zone=%s: added, no quota, socket %s", name, zl->l ? zl->path : "(none)");
    if (out)
        *out = z;
    else
        zone_unref(z);
    return 0;

free_listener:
    free(zl);
unlink_zone:
    zreg_unlink(&srv->reg, z);
    zone_unref(z);
    return rc;
}

/* Removes a zone: no new clients, its clients disconnected, all their objects released. */
static int zone_stop(struct server *srv, struct zone *z)
{
    struct zone_listener *zl = z->listener;
    struct timespec deadline;
    int rc = 0;

    if (zreg_unlink(&srv->reg, z) != 0)
        return -ENOENT;
    if (zl) {
        if (zl->l)
            srv->posix->listener_close(zl->l);
        z->listener = NULL;
        free(zl);
    }
    stop_clients(srv, z);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 30;
    pthread_mutex_lock(&z->lock);
    while (z->clients > 0 && rc == 0)
        rc = pthread_cond_timedwait(&z->cond, &z->lock, &deadline);
    pthread_mutex_unlock(&z->lock);
    if (rc != 0)
        log_error("zone=%s: clients did not end within 30 s", z->name);
    reap_clients(srv);
    log_info("zone=%s: removed", z->name);
    return rc ? -ETIMEDOUT : 0;
}

/* ---- admin socket ---- */

static int admin_open(struct server *srv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct stat st;
    int fd;

    snprintf(srv->admin_path, sizeof(srv->admin_path), "%s/admin.sock", srv->cfg->listen_dir);
    if (strlen(srv->admin_path) >= sizeof(sa.sun_path)) {
        log_error("admin socket path %s is too long", srv->admin_path);
        return -ENAMETOOLONG;
    }
    if (lstat(srv->admin_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_error("%s exists and is not a socket", srv->admin_path);
            return -EEXIST;
        }
        if (unlink(srv->admin_path) != 0) {
            log_error("removing the stale %s: %s", srv->admin_path, strerror(errno));
            return -errno;
        }
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_error("admin socket: %s", strerror(errno));
        return -errno;
    }
    strcpy(sa.sun_path, srv->admin_path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        log_error("admin socket: bind %s: %s", srv->admin_path, strerror(errno));
        goto close_fd;
    }
    if (chmod(srv->admin_path, 0600) != 0) {
        log_error("admin socket: chmod %s: %s", srv->admin_path, strerror(errno));
        goto unlink_path;
    }
    if (listen(fd, 16) != 0) {
        log_error("admin socket: listen: %s", strerror(errno));
        goto unlink_path;
    }
    srv->admin_fd = fd;
    return 0;

unlink_path:
    unlink(srv->admin_path);
close_fd:
    close(fd);
    return -EIO;
}

static void admin_reply(int fd, const char *text)
{
    size_t off = 0, n = strlen(text);

    while (off < n) {
        ssize_t w = send(fd, text + off, n - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            log_warn("admin: reply not delivered: %s", strerror(errno));
            return;
        }
        off += (size_t)w;
    }
}

static void admin_command(struct server *srv, int fd, char *line)
{
    char *save = NULL, *cmd, *a1, *a2, *extra;
    char buf[512];

    cmd = strtok_r(line, " \t", &save);
    a1 = strtok_r(NULL, " \t", &save);
    a2 = strtok_r(NULL, " \t", &save);
    extra = strtok_r(NULL, " \t", &save);
    if (cmd == NULL) {
        admin_reply(fd, "ERR empty request\n");
        return;
    }
    if (strcmp(cmd, "PING") == 0 && a1 == NULL) {
        uint64_t free_b = 0, total_b = 0;
        if (srv->be->mem_info(&free_b, &total_b) != CUDA_SUCCESS)
            total_b = 0; /* reported as unknown */
        snprintf(buf, sizeof(buf), "OK gpu_proxy %s backend=%s total_bytes=%llu\n",
                 GPU_PROXY_VERSION, srv->be->name, (unsigned long long)total_b);
        admin_reply(fd, buf);
    } else if (strcmp(cmd, "ADD") == 0 && a1 && a2 && !extra) {
        uint64_t quota;
        int rc;
        if (!zone_name_valid(a1)) {
            admin_reply(fd, "ERR invalid zone name\n");
            return;
        }
        if (parse_size(a2, &quota) != 0) {
            admin_reply(fd, "ERR invalid quota\n");
            return;
        }
        rc = zone_start(srv, a1, quota, NULL);
        if (rc == -EEXIST) {
            admin_reply(fd, "ERR zone exists\n");
        } else if (rc != 0) {
            snprintf(buf, sizeof(buf), "ERR cannot add zone: %s\n", strerror(-rc));
            admin_reply(fd, buf);
        } else {
            snprintf(buf, sizeof(buf), "OK %s/%s.sock\n", srv->cfg->listen_dir, a1);
            admin_reply(fd, buf);
            log_info("zone=%s: added through the admin socket", a1);
        }
    } else if (strcmp(cmd, "REMOVE") == 0 && a1 && !a2) {
        struct zone *z = zreg_get(&srv->reg, a1);
        int rc;
        if (z == NULL) {
            admin_reply(fd, "ERR no such zone\n");
            return;
        }
        rc = zone_stop(srv, z);
        zone_unref(z);
        if (rc == 0) {
            admin_reply(fd, "OK\n");
        } else {
            snprintf(buf, sizeof(buf), "ERR cannot remove zone: %s\n", strerror(-rc));
            admin_reply(fd, buf);
        }
    } else if (strcmp(cmd, "LIST") == 0 && a1 == NULL) {
        char *out = NULL;
        size_t outlen = 0;
        FILE *f = open_memstream(&out, &outlen);
        unsigned n = 0;
        if (f == NULL) {
            admin_reply(fd, "ERR out of memory\n");
            return;
        }
        pthread_mutex_lock(&srv->reg.lock);
        for (struct zone *z = srv->reg.zones; z; z = z->next)
            n++;
        fprintf(f, "OK %u\n", n);
        for (struct zone *z = srv->reg.zones; z; z = z->next) {
            pthread_mutex_lock(&z->lock);
            fprintf(f, "%s %llu %llu %d\n", z->name, (unsigned long long)z->quota,
                    (unsigned long long)z->used, z->clients);
            pthread_mutex_unlock(&z->lock);
        }
        pthread_mutex_unlock(&srv->reg.lock);
        if (fclose(f) != 0) {
            admin_reply(fd, "ERR out of memory\n");
        } else {
            admin_reply(fd, out);
        }
        free(out);
    } else if (strcmp(cmd, "STATS") == 0 && a1 == NULL) {
        unsigned n = 0;
        pthread_mutex_lock(&srv->reg.lock);
        for (struct zone *z = srv->reg.zones; z; z = z->next)
            n++;
        pthread_mutex_unlock(&srv->reg.lock);
        snprintf(buf, sizeof(buf), "OK zones=%u scrubbed_bytes=%llu allocated_bytes=%llu\n", n,
                 (unsigned long long)__atomic_load_n(&srv->reg.scrubbed_bytes, __ATOMIC_RELAXED),
                 (unsigned long long)__atomic_load_n(&srv->reg.allocated_bytes,
                                                     __ATOMIC_RELAXED));
        admin_reply(fd, buf);
    } else {
        admin_reply(fd, "ERR unknown request\n");
    }
}

static void admin_accept(struct server *srv)
{
    struct timeval tv = {.tv_sec = 2};
    char line[512];
    size_t n = 0;
    int fd;

    fd = accept4(srv->admin_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            log_warn("admin: accept: %s", strerror(errno));
        return;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        log_warn("admin: setting socket timeouts: %s", strerror(errno));
    /* One line; a client that sends nothing for 2 s is dropped. */
    while (n < sizeof(line) - 1) {
        ssize_t r = recv(fd, line + n, sizeof(line) - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(line, '\n', n))
            break;
    }
    line[n] = 0;
    if (memchr(line, '\n', n) == NULL && n == sizeof(line) - 1) {
        admin_reply(fd, "ERR request too long\n");
    } else if (n == 0) {
        admin_reply(fd, "ERR empty request\n");
    } else {
        line[strcspn(line, "\r\n")] = 0;
        log_debug("admin: %s", line);
        admin_command(srv, fd, line);
    }
    close(fd);
}

/* ---- accepting ---- */

static void accept_zone(struct server *srv, struct zone *z)
{
    struct zone_listener *zl = z->listener;

    for (;;) {
        struct idm_conn *c;
        int rc = srv->posix->accept(zl->l, &c);
        if (rc == -EAGAIN)
            return;
        if (rc != 0) {
            log_warn("zone=%s: accepting a client failed: %s", z->name, strerror(-rc));
            return;
        }
        if (srv->stopping) {
            idm_close(c);
            continue;
        }
        client_start(srv, z, c);
    }
}

static void accept_xen(struct server *srv)
{
    for (;;) {
        struct idm_conn *c;
        const struct idm_peer *peer;
        const struct xen_zone_cfg *map = NULL;
        struct zone *z;
        int rc = srv->xen->accept(srv->xen_l, &c);

        if (rc == -EAGAIN)
            return;
        if (rc != 0) {
            log_warn("xen: accepting a guest failed: %s", strerror(-rc));
            return;
        }
        peer = idm_conn_peer(c);
        for (unsigned i = 0; peer && i < srv->cfg->nxen_zones; i++)
            if (srv->cfg->xen_zones[i].domid == peer->domid)
                map = &srv->cfg->xen_zones[i];
        if (map == NULL || (z = zreg_get(&srv->reg, map->name)) == NULL) {
            log_warn("xen: refusing domain %d: no zone is configured for it (--xen-zone)",
                     peer ? peer->domid : -1);
            idm_close(c);
            continue;
        }
        log_info("zone=%s domid=%d: guest accepted", z->name, peer->domid);
        client_start(srv, z, c);
        zone_unref(z);
    }
}

static void handle_signal(struct server *srv)
{
    struct signalfd_siginfo si;
    ssize_t n = read(srv->signal_fd, &si, sizeof(si));

    if (n != (ssize_t)sizeof(si))
        return;
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
        log_info("signal %u: shutting down", si.ssi_signo);
        srv->stopping = 1;
    }
}

static void drain_eventfd(int fd)
{
    uint64_t v;

    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("reading an eventfd: %s", strerror(errno));
}

#define MAX_POLL (SERVER_MAX_ZONES_CFG * 4 + 8)

static void serve(struct server *srv)
{
    while (!srv->stopping) {
        struct pollfd pfd[MAX_POLL];
        struct zone *zs[MAX_POLL];
        nfds_t n = 0;

        pfd[n++] = (struct pollfd){.fd = srv->signal_fd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = srv->wake_fd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = srv->admin_fd, .events = POLLIN};
        if (srv->xen_l)
            pfd[n++] = (struct pollfd){.fd = srv->xen->listener_fd(srv->xen_l), .events = POLLIN};
        /* Zones are added and removed only by this thread, so the list is stable here. */
        pthread_mutex_lock(&srv->reg.lock);
        for (struct zone *z = srv->reg.zones; z && n < MAX_POLL; z = z->next) {
            struct zone_listener *zl = z->listener;
            if (zl == NULL || zl->l == NULL)
                continue;
            zs[n] = z;
            pfd[n++] = (struct pollfd){.fd = srv->posix->listener_fd(zl->l), .events = POLLIN};
        }
        pthread_mutex_unlock(&srv->reg.lock);
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_error("poll: %s", strerror(errno));
            srv->stopping = 1;
            break;
        }
        if (pfd[0].revents)
            handle_signal(srv);
        if (srv->stopping)
            break;
        if (pfd[1].revents) {
            drain_eventfd(srv->wake_fd);
            reap_clients(srv);
        }
        if (pfd[2].revents)
            admin_accept(srv);
        nfds_t first_zone = 3;
        if (srv->xen_l) {
            if (pfd[3].revents)
                accept_xen(srv);
            first_zone = 4;
        }
        for (nfds_t i = first_zone; i < n; i++) {
            if (!pfd[i].revents)
                continue;
            /* The zone may have been removed by an admin request above. */
            struct zone *z = NULL;
            pthread_mutex_lock(&srv->reg.lock);
            for (struct zone *o = srv->reg.zones; o; o = o->next)
                if (o == zs[i])
                    z = o;
            if (z)
                zone_ref(z);
            pthread_mutex_unlock(&srv->reg.lock);
            if (z) {
                if (z->listener)
                    accept_zone(srv, z);
                zone_unref(z);
            }
        }
    }
}

/* Removes every zone. Returns 0, or -ETIMEDOUT when some client thread would not end (it is
 * then left to the process exit). */
static int shutdown_all(struct server *srv)
{
    for (;;) {
        struct zone *z;
        pthread_mutex_lock(&srv->reg.lock);
        z = srv->reg.zones;
        if (z)
            zone_ref(z);
        pthread_mutex_unlock(&srv->reg.lock);
        if (z == NULL)
            break;
        zone_stop(srv, z);
        zone_unref(z);
    }
    stop_clients(srv, NULL);
    for (int waited = 0;; waited++) {
        int left;
        reap_clients(srv);
        pthread_mutex_lock(&srv->lock);
        left = srv->clients != NULL;
        pthread_mutex_unlock(&srv->lock);
        if (!left)
            return 0;
        if (waited == 10) {
            log_error("some client threads did not end (a client not reading its replies?); "
                      "exiting without them");
            return -ETIMEDOUT;
        }
        struct pollfd p = {.fd = srv->wake_fd, .events = POLLIN};
        if (poll(&p, 1, 1000) > 0)
            drain_eventfd(srv->wake_fd);
    }
}

int server_run(const struct server_config *cfg)
{
    struct server srv;
    char err[256] = "";
    sigset_t mask;
    int status = 1;
    int rc;

    memset(&srv, 0, sizeof(srv));
    srv.cfg = cfg;
    srv.be = cfg->be;
    srv.admin_fd = -1;
    srv.wake_fd = -1;
    srv.signal_fd = -1;
    pthread_mutex_init(&srv.lock, NULL);

    if (dispatch_selfcheck() != 0)
        return 1;
    srv.posix = idm_transport_by_name("posix");
    if (srv.posix == NULL) {
        log_error("the POSIX transport is missing from libidm");
        return 1;
    }
    /* Signals are taken synchronously by the main loop; client threads inherit the mask. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0) {
        log_error("blocking SIGTERM/SIGINT failed");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    srv.signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (srv.signal_fd < 0) {
        log_error("signalfd: %s", strerror(errno));
        return 1;
    }
    srv.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv.wake_fd < 0) {
        log_error("eventfd: %s", strerror(errno));
        goto close_signal;
    }
    rc = srv.be->init(err, sizeof(err));
    if (rc != CUDA_SUCCESS) {
        log_error("backend %s failed to start (CUresult %d): %s", srv.be->name, rc,
                  err[0] ? err : "no reason given");
        goto close_wake;
    }
    {
        struct backend_device_props props;
        if (srv.be->device_props(0, &props) == CUDA_SUCCESS)
            log_info("backend %s: device 0 is \"%s\", %llu MiB, compute capability %d.%d",
                     srv.be->name, props.name, (unsigned long long)(props.total_mem >> 20),
                     props.attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR],
                     props.attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR]);
    }
    zreg_init(&srv.reg, srv.be);
    if (mkdir(cfg->listen_dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create the listen directory %s: %s", cfg->listen_dir, strerror(errno));
        goto shutdown_backend;
    }
    if (admin_open(&srv) != 0)
        goto shutdown_backend;
    for (unsigned i = 0; i < cfg->nzones; i++) {
        rc = zone_start(&srv, cfg->zones[i].name, cfg->zones[i].quota, NULL);
        if (rc != 0) {
            log_error("zone=%s: cannot be created: %s", cfg->zones[i].name,
                      rc == -EEXIST ? "the name is used twice" : strerror(-rc));
            goto stop_zones;
        }
    }
    for (unsigned i = 0; i < cfg->nxen_zones; i++) {
        struct zone *z = zreg_get(&srv.reg, cfg->xen_zones[i].name);
        if (z) {
            zone_unref(z);
            continue;
        }
        rc = zone_start(&srv, cfg->xen_zones[i].name, cfg->xen_zones[i].quota, NULL);
        if (rc != 0) {
            log_error("zone=%s: cannot be created for domain %d: %s", cfg->xen_zones[i].name,
                      cfg->xen_zones[i].domid, strerror(-rc));
            goto stop_zones;
        }
    }
    if (cfg->xen) {
        srv.xen = idm_transport_by_name("xen");
        if (srv.xen == NULL) {
            log_error("--xen: this build of libidm has no Xen transport");
            goto stop_zones;
        }
        rc = srv.xen->listen(cfg->xen_path, NULL, &srv.xen_l);
        if (rc != 0) {
            log_error("--xen: cannot listen for guests under xenstore %s: %s", cfg->xen_path,
                      strerror(-rc));
            goto stop_zones;
        }
        log_info("xen: listening for guests under xenstore %s", cfg->xen_path);
    }
    log_info("gpu_proxy %s ready: backend=%s, listening in %s", GPU_PROXY_VERSION, srv.be->name,
             cfg->listen_dir);
    sd_notify_msg("READY=1");
    serve(&srv);
    sd_notify_msg("STOPPING=1");
    log_info("stopping: disconnecting clients and releasing zones");
    status = 0;

    if (srv.xen_l)
        srv.xen->listener_close(srv.xen_l);
stop_zones:
    if (shutdown_all(&srv) != 0) {
        status = 1;
        close(srv.admin_fd);
        unlink(srv.admin_path);
        goto close_wake; /* threads may still use the backend */
    }
    close(srv.admin_fd);
    if (unlink(srv.admin_path) != 0 && errno != ENOENT)
        log_warn("removing %s: %s", srv.admin_path, strerror(errno));
shutdown_backend:
    srv.be->shutdown();
close_wake:
    close(srv.wake_fd);
close_signal:
    close(srv.signal_fd);
    log_info("gpu_proxy exits with status %d (scrubbed %llu bytes in all)", status,
             (unsigned long long)srv.reg.scrubbed_bytes);
    return status;
}
