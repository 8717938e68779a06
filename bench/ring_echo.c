/* ring_echo.c - the IDM echo server of the ring and window benchmarks and its client session:
 * the server is a forked process that listens on a private Unix socket, answers each request on
 * the ring, and treats the window ranges it is given as the transport's contract says. */
#include "ring_echo.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

static uint32_t g_spin_us; /* for the forked server: 0 blocking, SPIN_DEFAULT the default */
static const char *g_sock; /* for the forked server: where to listen */

static int ready_pipe[2] = {-1, -1};

uint64_t echo_fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    /* Sum 8-byte words then mix: fast enough for 64 MiB and position-sensitive. */
    const uint64_t *w = (const uint64_t *)p;
    for (size_t i = 0; i < n / 8; i++)
        h = (h ^ w[i]) * 1099511628211ull + i;
    for (size_t i = n & ~(size_t)7; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int reply(struct idm_conn *c, const struct idm_hdr *req, const struct bench_msg *m)
{
    struct idm_hdr h = {0};
    int rc;

    h.op = req->op;
    h.flags = IDM_F_REPLY;
    h.seq = req->seq;
    rc = idm_send(c, &h, m, sizeof(*m), NULL, 0);
    if (rc != 0)
        fprintf(stderr, "bench: server: idm_send failed: %s\n", strerror(-rc));
    return rc;
}

static int idm_server(void *arg)
{
    struct idm_listener *l = NULL;
    struct idm_conn *c = NULL;
    struct idm_msg m;
    uint8_t *dst = NULL;
    uint8_t *win;
    uint64_t wsize;
    char ok = 'k';
    int rc;

    (void)arg;
    idm_msg_init(&m);
    rc = idm_transport_posix.listen(g_sock, NULL, &l);
    if (rc != 0) {
        fprintf(stderr, "bench: server: listen on %s failed: %s\n", g_sock, strerror(-rc));
        return 1;
    }
    if (write(ready_pipe[1], &ok, 1) != 1) {
        perror("bench: server: ready pipe");
        goto out_listener;
    }
    for (;;) {
        struct pollfd pfd = {.fd = idm_transport_posix.listener_fd(l), .events = POLLIN};
        if (poll(&pfd, 1, 10000) <= 0) {
            fprintf(stderr, "bench: server: no client connected within 10 s\n");
            rc = -ETIMEDOUT;
            goto out_listener;
        }
        rc = idm_transport_posix.accept(l, &c);
        if (rc == 0)
            break;
        if (rc != -EAGAIN) {
            fprintf(stderr, "bench: server: accept failed: %s\n", strerror(-rc));
            goto out_listener;
        }
    }
    if (g_spin_us != SPIN_DEFAULT)
        idm_conn_set_spin(c, g_spin_us);
    win = idm_window(c, &wsize);
    dst = mmap(NULL, WINDOW_MAX_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
               0);
    if (dst == MAP_FAILED) {
        perror("bench: server: mmap destination");
        dst = NULL;
        rc = -ENOMEM;
        goto out_conn;
    }
    memset(dst, 0, WINDOW_MAX_BYTES); /* fault it in before any timing */
    for (;;) {
        struct bench_msg in, out = {0};
        rc = idm_recv(c, &m, -1);
        if (rc != 0) {
            fprintf(stderr, "bench: server: idm_recv failed: %s (%s)\n", strerror(-rc),
                    idm_conn_error(c));
            goto out_dst;
        }
        if (m.hdr.len != sizeof(in)) {
            fprintf(stderr, "bench: server: unexpected payload length %u\n", m.hdr.len);
            rc = -EPROTO;
            goto out_dst;
        }
        memcpy(&in, m.payload, sizeof(in));
        out.cmd = in.cmd;
        switch (in.cmd) {
        case CMD_PING:
            out.a = in.a;
            break;
        case CMD_CHUNK:
            if (idm_window_check(c, in.a, in.b) != 0 || in.c > WINDOW_MAX_BYTES ||
                in.b > WINDOW_MAX_BYTES - in.c) {
                fprintf(stderr, "bench: server: bad chunk %llu+%llu -> %llu\n",
                        (unsigned long long)in.a, (unsigned long long)in.b,
                        (unsigned long long)in.c);
                rc = -EINVAL;
                goto out_dst;
            }
            memcpy(dst + in.c, win + in.a, in.b);
            break;
        case CMD_SUM:
            if (in.a > WINDOW_MAX_BYTES) {
                rc = -EINVAL;
                goto out_dst;
            }
            out.a = echo_fnv1a(dst, in.a);
            break;
        case CMD_STOP:
            rc = reply(c, &m.hdr, &out);
            goto out_dst;
        default:
            fprintf(stderr, "bench: server: unknown command %u\n", in.cmd);
            rc = -EPROTO;
            goto out_dst;
        }
        rc = reply(c, &m.hdr, &out);
        if (rc != 0)
            goto out_dst;
    }
out_dst:
    munmap(dst, WINDOW_MAX_BYTES);
out_conn:
    idm_close(c);
out_listener:
    idm_transport_posix.listener_close(l);
    idm_msg_free(&m);
    return rc == 0 ? 0 : 1;
}


/* Starts a server on srv_cpu and connects to it. */
int session_open(struct session *s, int srv_cpu, uint32_t spin_us)
{
    char ok;
    int rc;

    memset(s, 0, sizeof(*s));
    idm_msg_init(&s->m);
    s->srv_cpu = srv_cpu;
    snprintf(s->dir, sizeof(s->dir), "/tmp/idm-bench-XXXXXX");
    if (!mkdtemp(s->dir)) {
        rc = -errno;
        perror("bench: mkdtemp for the echo server");
        return rc;
    }
    snprintf(s->sock, sizeof(s->sock), "%s/ring.sock", s->dir);
    g_sock = s->sock;
    g_spin_us = spin_us;
    if (pipe(ready_pipe) != 0) {
        rc = -errno;
        perror("bench: pipe");
        goto out_dir;
    }
    s->pid = bh_spawn(srv_cpu, idm_server, NULL);
    close(ready_pipe[1]);
    if (s->pid < 0) {
        rc = s->pid;
        goto out_pipe;
    }
    if (read(ready_pipe[0], &ok, 1) != 1) {
        fprintf(stderr, "bench: IDM server did not start (see above)\n");
        rc = -EIO;
        goto out_server;
    }
    rc = idm_transport_posix.connect(s->sock, &s->c);
    if (rc != 0) {
        fprintf(stderr, "bench: connect to %s failed: %s\n", s->sock, strerror(-rc));
        goto out_server;
    }
    close(ready_pipe[0]);
    if (spin_us != SPIN_DEFAULT)
        idm_conn_set_spin(s->c, spin_us);
    return 0;

out_server:
    kill(s->pid, SIGTERM);
    bh_wait(s->pid);
out_pipe:
    close(ready_pipe[0]);
out_dir:
    unlink(s->sock);
    rmdir(s->dir);
    return rc;
}

/* One request and its reply. */
int session_call(struct session *s, struct bench_msg *msg)
{
    struct idm_hdr h = {0};
    int rc;

    h.op = IDM_OP_HELLO;
    h.seq = ++s->seq;
    rc = idm_send(s->c, &h, msg, sizeof(*msg), NULL, 0);
    if (rc != 0) {
        fprintf(stderr, "bench: idm_send failed: %s\n", strerror(-rc));
        return rc;
    }
    rc = idm_recv(s->c, &s->m, -1);
    if (rc != 0) {
        fprintf(stderr, "bench: idm_recv failed: %s (%s)\n", strerror(-rc),
                idm_conn_error(s->c));
        return rc;
    }
    if (s->m.hdr.seq != h.seq || !(s->m.hdr.flags & IDM_F_REPLY) ||
        s->m.hdr.len != sizeof(*msg)) {
        fprintf(stderr, "bench: bad reply: seq %llu (want %llu), len %u\n",
                (unsigned long long)s->m.hdr.seq, (unsigned long long)h.seq, s->m.hdr.len);
        return -EPROTO;
    }
    memcpy(msg, s->m.payload, sizeof(*msg));
    return 0;
}

int session_close(struct session *s)
{
    struct bench_msg stop = {.cmd = CMD_STOP};
    int rc = session_call(s, &stop);
    int st;

    idm_close(s->c);
    st = bh_wait(s->pid);
    idm_msg_free(&s->m);
    unlink(s->sock); /* normally gone with the server's listener already */
    rmdir(s->dir);
    if (st != 0) {
        fprintf(stderr, "bench: IDM server exited with status %d\n", st);
        return rc ? rc : -EIO;
    }
    return rc;
}
