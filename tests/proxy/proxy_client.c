/* proxy_client.c - the test client of gpu_proxy: real IDM connections (POSIX transport), real
 * proxy processes, real admin-socket requests. */
#include "proxy_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int pc_connect(struct pc *p, const char *path)
{
    int rc;

    memset(p, 0, sizeof(*p));
    idm_msg_init(&p->m);
    rc = idm_transport_posix.connect(path, &p->c);
    if (rc != 0)
        return rc;
    p->win = idm_window(p->c, &p->wsize);
    p->seq = 1;
    return 0;
}

void pc_close(struct pc *p)
{
    if (p->c)
        idm_close(p->c);
    p->c = NULL;
    idm_msg_free(&p->m);
}

int pc_call(struct pc *p, uint16_t op, const void *req, size_t req_len, const void *tail,
            size_t tail_len, void *rep, size_t rep_cap, uint32_t *rep_len)
{
    struct idm_hdr h;
    uint64_t seq = p->seq++;
    int rc;

    memset(&h, 0, sizeof(h));
    h.op = op;
    h.seq = seq;
    rc = idm_send(p->c, &h, req, req_len, tail, tail_len);
    if (rc != 0)
        return rc;
    for (;;) {
        rc = idm_recv(p->c, &p->m, 30000);
        if (rc != 0)
            return rc;
        if (p->m.hdr.seq != seq)
            continue; /* a reply to something older */
        if (!(p->m.hdr.flags & IDM_F_REPLY) || p->m.hdr.op != op)
            return -EPROTO;
        if (rep) {
            size_t n = p->m.hdr.len < rep_cap ? p->m.hdr.len : rep_cap;
            memcpy(rep, p->m.payload, n);
        }
        if (rep_len)
            *rep_len = p->m.hdr.len;
        return p->m.hdr.status;
    }
}

int pc_hello(struct pc *p, struct idm_rep_HELLO *out)
{
    struct idm_req_HELLO q = {.proto_version = IDM_PROTOCOL_VERSION, .pid = (uint32_t)getpid()};

    return pc_call(p, IDM_OP_HELLO, &q, sizeof(q), NULL, 0, out, sizeof(*out), NULL);
}

int pc_ctx(struct pc *p, idm_handle *ctx)
{
    struct idm_req_PRIMARY_CTX_RETAIN q = {.device = 0};
    struct idm_rep_PRIMARY_CTX_RETAIN r = {.idm_empty_ = {}};
    int rc = pc_call(p, IDM_OP_PRIMARY_CTX_RETAIN, &q, sizeof(q), NULL, 0, &r, sizeof(r), NULL);

    *ctx = r.ctx;
    return rc;
}

int pc_alloc(struct pc *p, idm_handle ctx, uint64_t size, idm_dptr *out)
{
    struct idm_req_MEM_ALLOC q = {.ctx = ctx, .size = size};
    struct idm_rep_MEM_ALLOC r = {.idm_empty_ = {}};
    int rc = pc_call(p, IDM_OP_MEM_ALLOC, &q, sizeof(q), NULL, 0, &r, sizeof(r), NULL);

    *out = r.dptr;
    return rc;
}

int pc_free(struct pc *p, idm_dptr d)
{
    struct idm_req_MEM_FREE q = {.dptr = d};

    return pc_call(p, IDM_OP_MEM_FREE, &q, sizeof(q), NULL, 0, NULL, 0, NULL);
}

int pc_htod(struct pc *p, idm_dptr dst, const void *src, uint64_t len)
{
    struct idm_req_MEMCPY_HTOD q = {.dst = dst, .win_off = 0, .win_len = len, .len = len};

    if (len > p->wsize)
        return -E2BIG;
    memcpy(p->win, src, len);
    return pc_call(p, IDM_OP_MEMCPY_HTOD, &q, sizeof(q), NULL, 0, NULL, 0, NULL);
}

int pc_dtoh(struct pc *p, void *dst, idm_dptr src, uint64_t len)
{
    struct idm_req_MEMCPY_DTOH q = {.src = src, .win_off = 0, .win_len = len, .len = len};
    int rc;

    if (len > p->wsize)
        return -E2BIG;
    rc = pc_call(p, IDM_OP_MEMCPY_DTOH, &q, sizeof(q), NULL, 0, NULL, 0, NULL);
    if (rc == 0)
        memcpy(dst, p->win, len);
    return rc;
}

int pc_load_ptx(struct pc *p, idm_handle ctx, const char *ptx, idm_handle *library)
{
    size_t len = strlen(ptx) + 1;
    struct idm_req_IMAGE_BEGIN ib = {.size = len};
    struct idm_rep_IMAGE_BEGIN ibr = {.idm_empty_ = {}};
    struct idm_req_IMAGE_CHUNK ic = {.len = len};
    struct idm_req_LIBRARY_LOAD ll = {.ctx = ctx};
    struct idm_rep_LIBRARY_LOAD llr = {.idm_empty_ = {}};
    int rc;

    if (len > p->wsize)
        return -E2BIG;
    rc = pc_call(p, IDM_OP_IMAGE_BEGIN, &ib, sizeof(ib), NULL, 0, &ibr, sizeof(ibr), NULL);
    if (rc != 0)
        return rc;
    memcpy(p->win, ptx, len);
    ic.image = ibr.image;
    rc = pc_call(p, IDM_OP_IMAGE_CHUNK, &ic, sizeof(ic), NULL, 0, NULL, 0, NULL);
    if (rc != 0)
        return rc;
    ll.image = ibr.image;
    rc = pc_call(p, IDM_OP_LIBRARY_LOAD, &ll, sizeof(ll), NULL, 0, &llr, sizeof(llr), NULL);
    *library = llr.library;
    return rc;
}

int pc_get_kernel(struct pc *p, idm_handle library, const char *name, idm_handle *kernel)
{
    struct idm_req_LIBRARY_GET_KERNEL q = {.library = library};
    uint8_t rep[4096];
    struct idm_rep_LIBRARY_GET_KERNEL r;
    int rc = pc_call(p, IDM_OP_LIBRARY_GET_KERNEL, &q, sizeof(q), name, strlen(name) + 1, rep,
                     sizeof(rep), NULL);

    memcpy(&r, rep, sizeof(r));
    *kernel = r.kernel;
    return rc;
}

int pc_launch1(struct pc *p, idm_handle kernel, idm_handle st, uint64_t arg)
{
    struct idm_req_LAUNCH q;

    memset(&q, 0, sizeof(q));
    q.func = kernel;
    q.stream = st;
    q.grid[0] = q.grid[1] = q.grid[2] = q.block[0] = q.block[1] = q.block[2] = 1;
    q.param_bytes = 8;
    return pc_call(p, IDM_OP_LAUNCH, &q, sizeof(q), &arg, 8, NULL, 0, NULL);
}

int pc_sync(struct pc *p)
{
    struct idm_req_CTX_SYNCHRONIZE q = {.ctx = 0};

    return pc_call(p, IDM_OP_CTX_SYNCHRONIZE, &q, sizeof(q), NULL, 0, NULL, 0, NULL);
}

int admin_cmd(const char *dir, const char *cmd, char *out, size_t outlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = 0;
    int fd, rc = 0;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/admin.sock", dir);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rc = -errno;
        goto close_fd;
    }
    if (send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) < 0 || send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
        rc = -errno;
        goto close_fd;
    }
    for (;;) {
        ssize_t r = recv(fd, out + n, outlen - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0 || (n += (size_t)r) == outlen - 1)
            break;
    }
    out[n] = 0;
close_fd:
    close(fd);
    return rc;
}

long long admin_scrubbed(const char *dir)
{
    char buf[512];
    const char *p;

    if (admin_cmd(dir, "STATS", buf, sizeof(buf)) != 0 || (p = strstr(buf, "scrubbed_bytes=")) == NULL)
        return -1;
    return atoll(p + strlen("scrubbed_bytes="));
}

/* A key=value field of a LIST line (" key=" must be present); 1 if found. */
static int list_key(const char *line, const char *key, char *val, size_t cap)
{
    char pat[32];
    const char *p;
    size_t n = 0;

    snprintf(pat, sizeof(pat), " %s=", key);
    if ((p = strstr(line, pat)) == NULL)
        return 0;
    p += strlen(pat);
    while (p[n] && p[n] != ' ' && n + 1 < cap) {
        val[n] = p[n];
        n++;
    }
    val[n] = 0;
    return 1;
}

int admin_zone_info(const char *dir, const char *zone, struct pc_zone *out)
{
    char buf[8192], *save = NULL;

    if (admin_cmd(dir, "LIST", buf, sizeof(buf)) != 0 || strncmp(buf, "OK ", 3) != 0)
        return -1;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128], v[32];
        struct pc_zone z;
        memset(&z, 0, sizeof(z));
        if (sscanf(line, "%127s %llu %llu %d", name, &z.quota, &z.used, &z.clients) != 4 ||
            strcmp(name, zone) != 0)
            continue;
        if (list_key(line, "state", z.state, sizeof(z.state)))
            z.keys |= PC_ZONE_STATE;
        if (list_key(line, "pid", v, sizeof(v)) && (z.keys |= PC_ZONE_PID))
            z.pid = atoi(v);
        if (list_key(line, "restarts", v, sizeof(v)) && (z.keys |= PC_ZONE_RESTARTS))
            z.restarts = (unsigned)strtoul(v, NULL, 10);
        if (list_key(line, "faults", v, sizeof(v)) && (z.keys |= PC_ZONE_FAULTS))
            z.faults = (unsigned)strtoul(v, NULL, 10);
        if (list_key(line, "cgroup", z.cgroup, sizeof(z.cgroup)))
            z.keys |= PC_ZONE_CGROUP;
        *out = z;
        return 0;
    }
    return -1;
}

int admin_zone(const char *dir, const char *zone, long long *used, int *clients)
{
    struct pc_zone z;

    if (admin_zone_info(dir, zone, &z) != 0)
        return -1;
    *used = (long long)z.used;
    *clients = z.clients;
    return 0;
}

int admin_zone_worker(const char *dir, const char *zone, int *pid, unsigned *restarts)
{
    struct pc_zone z;

    if (admin_zone_info(dir, zone, &z) != 0 || (~z.keys & (PC_ZONE_PID | PC_ZONE_RESTARTS)))
        return -1;
    *pid = z.pid;
    *restarts = z.restarts;
    return 0;
}

pid_t proxy_start(const char *bin, const char *dir, const char *const *extra)
{
    return proxy_start_log(bin, dir, extra, NULL);
}

pid_t proxy_start_log(const char *bin, const char *dir, const char *const *extra,
                      const char *log)
{
    const char *argv[64];
    int n = 0, logfd = -1;
    pid_t pid;

    argv[n++] = bin;
    argv[n++] = "--backend";
    argv[n++] = getenv("PROXY_BACKEND") ? getenv("PROXY_BACKEND") : "stub";
    argv[n++] = "--listen";
    argv[n++] = dir;
    argv[n++] = "--log-level";
    argv[n++] = getenv("PROXY_LOG_LEVEL") ? getenv("PROXY_LOG_LEVEL") : "warn";
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    if (log) {
        logfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (logfd < 0) {
            fprintf(stderr, "proxy log %s: %s\n", log, strerror(errno));
            return -1;
        }
    }
    pid = fork();
    if (pid < 0) {
        if (logfd >= 0)
            close(logfd);
        return -1;
    }
    if (pid == 0) {
        /* A test that fails (or dies) must not leave its proxy behind. */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
            _exit(126);
        if (logfd >= 0 && (dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0))
            _exit(126);
        execv(bin, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    if (logfd >= 0)
        close(logfd);
    /* Wait for readiness (the admin socket answers), or for the process to die. */
    for (int i = 0; i < 600; i++) {
        char buf[256];
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "proxy %s exited during start-up (status 0x%x)\n", bin, st);
            return -1;
        }
        if (admin_cmd(dir, "PING", buf, sizeof(buf)) == 0 && strncmp(buf, "OK", 2) == 0)
            return pid;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int proxy_stop(pid_t pid)
{
    int st;

    if (kill(pid, SIGTERM) != 0)
        return -1;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    if (!WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}
