/* xen_echo.c - the dom0 side of the Xen transport test: listens with idm_transport_xen and
 * answers the XT_OP_* requests of xentest.h from any number of guests, one connection each, in
 * one thread. Prints a line per connection accepted and per connection cut off (with the
 * transport's reason); the scenario reads them. Stops on SIGTERM or SIGINT. */
#include "idm_transport.h"
#include "xentest.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CONNS 64
#define REPLY_TIMEOUT_MS 2000 /* a guest that never drains its replies is cut off */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Answers one request; returns 0 or the connection error. */
static int serve(struct idm_conn *c, struct idm_msg *m)
{
    struct idm_hdr h = {.op = m->hdr.op, .flags = IDM_F_REPLY, .seq = m->hdr.seq};
    switch (m->hdr.op) {
    case XT_OP_PING:
        return idm_send_timed(c, &h, m->payload, m->hdr.len, NULL, 0, REPLY_TIMEOUT_MS);
    case XT_OP_WHOAMI: {
        const struct idm_peer *p = idm_conn_peer(c);
        struct xt_whoami w = {.domid = p->domid, .pid = p->pid};
        return idm_send_timed(c, &h, &w, sizeof(w), NULL, 0, REPLY_TIMEOUT_MS);
    }
    case XT_OP_BULK: {
        struct xt_bulk_req req;
        struct xt_bulk_rep rep = {0};
        if (m->hdr.len != sizeof(req)) {
            h.status = -EINVAL;
            return idm_send_timed(c, &h, NULL, 0, NULL, 0, REPLY_TIMEOUT_MS);
        }
        memcpy(&req, m->payload, sizeof(req));
        if (idm_window_check(c, req.off, req.len) < 0) {
            h.status = -ERANGE;
            return idm_send_timed(c, &h, NULL, 0, NULL, 0, REPLY_TIMEOUT_MS);
        }
        uint8_t *w = (uint8_t *)idm_window(c, NULL) + req.off;
        rep.mismatches = xt_mismatches(w, req.len, req.seed);
        rep.checksum = xt_fnv1a(w, req.len);
        xt_pattern(w, req.len, req.seed + 1);
        return idm_send_timed(c, &h, &rep, sizeof(rep), NULL, 0, REPLY_TIMEOUT_MS);
    }
    case XT_OP_SUM: {
        struct xt_bulk_req req;
        if (m->hdr.len != sizeof(req)) {
            h.status = -EINVAL;
            return idm_send_timed(c, &h, NULL, 0, NULL, 0, REPLY_TIMEOUT_MS);
        }
        memcpy(&req, m->payload, sizeof(req));
        if (idm_window_check(c, req.off, req.len) < 0 || req.len % 8 != 0) {
            h.status = -ERANGE;
            return idm_send_timed(c, &h, NULL, 0, NULL, 0, REPLY_TIMEOUT_MS);
        }
        const uint64_t *w = (const uint64_t *)((uint8_t *)idm_window(c, NULL) + req.off);
        struct xt_bulk_rep rep = {0};
        for (uint64_t i = 0; i < req.len / 8; i++)
            rep.checksum += w[i];
        return idm_send_timed(c, &h, &rep, sizeof(rep), NULL, 0, REPLY_TIMEOUT_MS);
    }
    default:
        h.status = -ENOSYS;
        return idm_send_timed(c, &h, NULL, 0, NULL, 0, REPLY_TIMEOUT_MS);
    }
}

int main(int argc, char **argv)
{
    const char *address = argc > 1 ? argv[1] : NULL;
    const struct idm_transport *t = &idm_transport_xen;
    struct idm_listener *l;
    struct idm_conn *conns[MAX_CONNS] = {0};
    struct idm_msg m;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int rc = t->listen(address, NULL, &l);
    if (rc < 0) {
        printf("ECHO listen failed: %s\n", strerror(-rc));
        return 1;
    }
    printf("ECHO listening pid %d\n", (int)getpid());
    idm_msg_init(&m);
    while (!stop) {
        struct pollfd pfd[MAX_CONNS + 1];
        int idx[MAX_CONNS + 1], n = 0;
        pfd[n] = (struct pollfd){.fd = t->listener_fd(l), .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < MAX_CONNS; i++) {
            if (conns[i]) {
                pfd[n] = (struct pollfd){.fd = idm_conn_fd(conns[i]), .events = POLLIN};
                idx[n++] = i;
            }
        }
        if (poll(pfd, (nfds_t)n, 1000) < 0) {
            if (errno == EINTR)
                continue;
            printf("ECHO poll failed: %s\n", strerror(errno));
            break;
        }
        if (pfd[0].revents) {
            struct idm_conn *c;
            while (t->accept(l, &c) == 0) {
                int slot = -1;
                for (int i = 0; i < MAX_CONNS && slot < 0; i++)
                    if (!conns[i])
                        slot = i;
                if (slot < 0) {
                    printf("ECHO too many connections: dropping domid %d\n",
                           idm_conn_peer(c)->domid);
                    idm_close(c);
                    continue;
                }
                conns[slot] = c;
                printf("ECHO accepted domid %d\n", idm_conn_peer(c)->domid);
            }
        }
        for (int k = 1; k < n; k++) {
            struct idm_conn *c = conns[idx[k]];
            if (!pfd[k].revents)
                continue;
            for (;;) {
                rc = idm_recv(c, &m, 0);
                if (rc == -EAGAIN)
                    break;
                if (rc == 0)
                    rc = serve(c, &m);
                if (rc < 0) {
                    printf("ECHO cut-off domid %d: %s: %s\n", idm_conn_peer(c)->domid,
                           rc == -EPROTO   ? "protocol error"
                           : rc == -EAGAIN ? "reply ring full"
                                           : "gone",
                           idm_conn_error(c));
                    idm_close(c);
                    conns[idx[k]] = NULL;
                    break;
                }
            }
        }
    }
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i])
            idm_close(conns[i]);
    idm_msg_free(&m);
    t->listener_close(l);
    printf("ECHO stopped\n");
    return 0;
}
