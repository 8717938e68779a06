/* admin.c - the admin socket of gpu_proxy's supervisor: binds DIR/admin.sock (mode 0600), reads
 * one request line per connection (2 s to send it), and answers PING, ADD, REMOVE, LIST and
 * STATS from the supervisor's zone registry and the figures the workers publish. REMOVE is
 * answered when the zone's workers have ended, so it never holds up other requests. */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
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
    return 0;

unlink_path:
    unlink(a->path);
close_fd:
    close(fd);
    return -EIO;
}

void admin_close(struct sup *S)
{
    if (S->admin.fd < 0)
        return;
    close(S->admin.fd);
    S->admin.fd = -1;
    if (unlink(S->admin.path) != 0 && errno != ENOENT)
        log_warn("removing %s: %s", S->admin.path, strerror(errno));
}

void admin_reply(int fd, const char *text)
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

static void cmd_list(struct sup *S, int fd)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    unsigned n = 0;

    if (f == NULL) {
        admin_reply(fd, "ERR out of memory\n");
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
        fprintf(f, "%s %llu %llu %d state=%s pid=%d restarts=%u faults=%u\n", z->name,
                (unsigned long long)z->quota, (unsigned long long)used, clients, state_name(z),
                w ? (int)w->pid : 0, z->restarts, z->faults);
    }
    if (fclose(f) != 0)
        admin_reply(fd, "ERR out of memory\n");
    else
        admin_reply(fd, out);
    free(out);
}

static void cmd_stats(struct sup *S, int fd)
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
    admin_reply(fd, buf);
}

static void cmd_add(struct sup *S, int fd, const char *name, const char *quota_s)
{
    char buf[512];
    uint64_t quota;
    int rc;

    if (!zone_name_valid(name)) {
        admin_reply(fd, "ERR invalid zone name\n");
        return;
    }
    if (parse_size(quota_s, &quota) != 0) {
        admin_reply(fd, "ERR invalid quota\n");
        return;
    }
    rc = sup_zone_add(S, name, quota, -1);
    if (rc == -EEXIST) {
        admin_reply(fd, "ERR zone exists\n");
    } else if (rc != 0) {
        snprintf(buf, sizeof(buf), "ERR cannot add zone: %s\n", strerror(-rc));
        admin_reply(fd, buf);
    } else {
        snprintf(buf, sizeof(buf), "OK %s/%s.sock\n", S->cfg->listen_dir, name);
        admin_reply(fd, buf);
        log_info("zone=%s: added through the admin socket", name);
    }
}

/* Returns 1 when fd was handed over (REMOVE answers later), else 0. */
static int admin_command(struct sup *S, int fd, char *line)
{
    char *save = NULL, *cmd, *a1, *a2, *extra;
    char buf[512];

    cmd = strtok_r(line, " \t", &save);
    a1 = strtok_r(NULL, " \t", &save);
    a2 = strtok_r(NULL, " \t", &save);
    extra = strtok_r(NULL, " \t", &save);
    if (cmd == NULL) {
        admin_reply(fd, "ERR empty request\n");
    } else if (strcmp(cmd, "PING") == 0 && a1 == NULL) {
        snprintf(buf, sizeof(buf), "OK gpu_proxy %s backend=%s total_bytes=%llu\n",
                 GPU_PROXY_VERSION, S->cfg->be->name, (unsigned long long)S->total_mem);
        admin_reply(fd, buf);
    } else if (strcmp(cmd, "ADD") == 0 && a1 && a2 && !extra) {
        cmd_add(S, fd, a1, a2);
    } else if (strcmp(cmd, "REMOVE") == 0 && a1 && !a2) {
        struct szone *z = sup_zone_get(S, a1);
        if (z == NULL) {
            admin_reply(fd, "ERR no such zone\n");
        } else if (z->removing) {
            admin_reply(fd, "ERR zone is being removed\n");
        } else {
            log_info("zone=%s: removal asked through the admin socket", z->name);
            sup_zone_remove(S, z, fd);
            return 1;
        }
    } else if (strcmp(cmd, "LIST") == 0 && a1 == NULL) {
        cmd_list(S, fd);
    } else if (strcmp(cmd, "STATS") == 0 && a1 == NULL) {
        cmd_stats(S, fd);
    } else {
        admin_reply(fd, "ERR unknown request\n");
    }
    return 0;
}

void admin_accept(struct sup *S)
{
    struct timeval tv = {.tv_sec = 2};
    char line[512];
    size_t n = 0;
    int fd;

    fd = accept4(S->admin.fd, NULL, NULL, SOCK_CLOEXEC);
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
        if (admin_command(S, fd, line))
            return;
    }
    close(fd);
}
