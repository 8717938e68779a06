/* xen_guest.c - the guest side of the Xen transport test: connects to the dom0 echo server
 * (xen_echo) with idm_transport_xen and runs one role: ping (round trips, identity, bulk window
 * with checksums), serve-until (keeps pinging until dom0 says stop), reconnect (survives the
 * server's death and comes back), scribble (corrupts its own shared ring, must be cut off;
 * scribble-proxy does the same against gpu_proxy), hostile-offers (bogus xenstore offers, each
 * must be refused), hold (stays connected until dom0 destroys the domain), bench (round trip
 * and throughput).
 * Prints `XENTEST CASE <name> PASS|FAIL ...` lines.
 * Usage: xen_guest ROLE [ARG]; address from VGPU_SOCKET (default: the transport's). */
#include "idm_conn_internal.h"
#include "idm_transport.h"
#include "xentest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xenstore.h>

static const char *address;
static uint64_t next_seq = 1;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int self_domid(void)
{
    struct xs_handle *xs = xs_open(0);
    unsigned int len;
    char *v = xs ? xs_read(xs, XBT_NULL, "domid", &len) : NULL;
    int id = v ? atoi(v) : -1;
    free(v);
    xs_close(xs);
    return id;
}

/* Reads (1) or writes (value != NULL) a key under our own xenstore directory. */
static int xs_key(const char *key, const char *value)
{
    struct xs_handle *xs = xs_open(0);
    if (!xs)
        return -1;
    int rc;
    if (value) {
        rc = xs_write(xs, XBT_NULL, key, value, (unsigned)strlen(value)) ? 0 : -1;
    } else {
        unsigned int len;
        char *v = xs_read(xs, XBT_NULL, key, &len);
        rc = v ? 1 : 0;
        free(v);
    }
    xs_close(xs);
    return rc;
}

static int connect_echo(struct idm_conn **c)
{
    int rc = idm_transport_xen.connect(address, c);
    if (rc < 0)
        printf("guest: connect %s failed: %s\n", address ? address : "(default)", strerror(-rc));
    return rc;
}

/* One request, one reply (the test never has more than one outstanding). */
static int call(struct idm_conn *c, uint16_t op, const void *req, size_t len, struct idm_msg *m,
                int timeout_ms)
{
    struct idm_hdr h = {.op = op, .seq = next_seq++};
    int rc = idm_send(c, &h, req, len, NULL, 0);
    if (rc < 0)
        return rc;
    rc = idm_recv(c, m, timeout_ms);
    if (rc < 0)
        return rc;
    if (!(m->hdr.flags & IDM_F_REPLY) || m->hdr.seq != h.seq || m->hdr.op != op)
        return -EBADMSG;
    return m->hdr.status;
}

static int use_hello; /* talking to gpu_proxy: HELLO instead of the echo server's PING */

static int ping_once(struct idm_conn *c, uint32_t i, struct idm_msg *m)
{
    if (use_hello) {
        struct idm_req_HELLO h = {.proto_version = IDM_PROTOCOL_VERSION, .pid = i};
        return call(c, IDM_OP_HELLO, &h, sizeof(h), m, 30000) == 0 ? 0 : -EBADMSG;
    }
    uint8_t buf[1024];
    size_t len = 1 + (i * 37u) % sizeof(buf);
    xt_pattern(buf, len, i);
    int rc = call(c, XT_OP_PING, buf, len, m, 30000);
    if (rc < 0)
        return rc;
    if (m->hdr.len != len || memcmp(m->payload, buf, len) != 0)
        return -EBADMSG;
    return 0;
}

static int bulk_once(struct idm_conn *c, uint64_t off, uint64_t len, uint32_t seed,
                     struct idm_msg *m, char *why, size_t whylen)
{
    uint64_t wsize;
    uint8_t *w = idm_window(c, &wsize);
    if (off + len > wsize) {
        snprintf(why, whylen, "window of %" PRIu64 " bytes is too small", wsize);
        return -ERANGE;
    }
    xt_pattern(w + off, len, seed);
    uint64_t want = xt_fnv1a(w + off, len);
    struct xt_bulk_req req = {.off = off, .len = len, .seed = seed};
    int rc = call(c, XT_OP_BULK, &req, sizeof(req), m, 60000);
    if (rc < 0 || m->hdr.len != sizeof(struct xt_bulk_rep)) {
        snprintf(why, whylen, "bulk call failed: %s", rc < 0 ? strerror(-rc) : "short reply");
        return rc < 0 ? rc : -EBADMSG;
    }
    struct xt_bulk_rep rep;
    memcpy(&rep, m->payload, sizeof(rep));
    uint64_t back = xt_mismatches(w + off, len, seed + 1);
    if (rep.mismatches != 0 || rep.checksum != want || back != 0) {
        snprintf(why, whylen,
                 "bulk %" PRIu64 " bytes: driver saw %" PRIu64 " wrong bytes, checksum %s, %"
                 PRIu64 " wrong bytes came back", len, rep.mismatches,
                 rep.checksum == want ? "ok" : "differs", back);
        return -EBADMSG;
    }
    return 0;
}

static int role_ping(int count)
{
    struct idm_conn *c;
    struct idm_msg m;
    char why[256] = "";
    int me = self_domid(), ok = 0;
    idm_msg_init(&m);
    if (connect_echo(&c) < 0) {
        XT_VERDICT("transport-ping", 0, "domain %d could not connect", me);
        return 1;
    }
    int rc = call(c, XT_OP_WHOAMI, NULL, 0, &m, 30000);
    struct xt_whoami w = {.domid = -2};
    if (rc == 0 && m.hdr.len == sizeof(w))
        memcpy(&w, m.payload, sizeof(w));
    XT_VERDICT("transport-identity", rc == 0 && w.domid == me,
               "driver sees us as domid %d, we are %d (rc %d)", w.domid, me, rc);
    int i;
    for (i = 0; i < count; i++) {
        rc = ping_once(c, (uint32_t)i, &m);
        if (rc < 0)
            break;
    }
    XT_VERDICT("transport-ping", i == count, "domain %d: %d of %d round trips echoed intact%s%s",
               me, i, count, rc < 0 ? ": " : "", rc < 0 ? strerror(-rc) : "");
    uint64_t wsize;
    idm_window(c, &wsize);
    rc = 0;
    for (uint32_t r = 0; r < 3 && rc == 0; r++)
        rc = bulk_once(c, r * 4096u + 128u, wsize / 2, 1000u * (uint32_t)me + r, &m, why,
                       sizeof(why));
    ok = rc == 0;
    XT_VERDICT("transport-bulk", ok, "domain %d: 3 window round trips of %" PRIu64 " bytes%s%s",
               me, wsize / 2, ok ? " intact both ways" : ": ", why);
    struct xt_bulk_req bad = {.off = wsize - 8, .len = 16};
    rc = call(c, XT_OP_BULK, &bad, sizeof(bad), &m, 30000);
    XT_VERDICT("transport-window-check", rc == -ERANGE,
               "a range past the window's end is refused by the driver (status %d)", rc);
    idm_close(c);
    idm_msg_free(&m);
    return 0;
}

/* Pings until dom0 writes data/test/stop (the other guests' cases run meanwhile). */
static int role_serve_until(const char *name)
{
    struct idm_conn *c;
    struct idm_msg m;
    int me = self_domid(), rc = 0;
    uint32_t i = 0;
    idm_msg_init(&m);
    if (connect_echo(&c) < 0) {
        XT_VERDICT(name, 0, "domain %d could not connect", me);
        return 1;
    }
    xs_key("data/test/serving", "1");
    double end = now_s() + 240; /* a safety net only: dom0's stop normally comes first */
    while (xs_key("data/test/stop", NULL) != 1 && now_s() < end) {
        for (int k = 0; k < 10 && rc == 0; k++, i++)
            rc = ping_once(c, i, &m);
        if (rc < 0)
            break;
        usleep(50000); /* steady traffic, leaving the emulated CPUs to the other guests */
    }
    int stopped = xs_key("data/test/stop", NULL) == 1;
    XT_VERDICT(name, rc == 0 && stopped,
               "domain %d kept being served while the others ran: %u round trips%s%s", me, i,
               rc < 0 ? ", then " : "", rc < 0 ? strerror(-rc) : "");
    idm_close(c);
    idm_msg_free(&m);
    return 0;
}

/* Asks dom0 to kill and restart the echo server, sees the connection die, reconnects. */
static int role_reconnect(void)
{
    struct idm_conn *c;
    struct idm_msg m;
    int me = self_domid(), rc;
    idm_msg_init(&m);
    if (connect_echo(&c) < 0 || ping_once(c, 1, &m) < 0) {
        XT_VERDICT("transport-reconnect", 0, "domain %d: first connection failed", me);
        return 1;
    }
    xs_key("data/test/kill-echo", "1");
    double end = now_s() + 240; /* dom0 first finishes the other guests' cases */
    uint32_t i = 0;
    do {
        rc = ping_once(c, i++, &m);
    } while (rc == 0 && now_s() < end);
    const char *err = idm_conn_error(c);
    XT_VERDICT("transport-driver-death", rc == -EPIPE,
               "domain %d: the driver's death shows as %s (%s)", me, strerror(-rc), err);
    idm_close(c);
    rc = connect_echo(&c);
    if (rc == 0) {
        rc = ping_once(c, 7, &m);
        idm_close(c);
    }
    XT_VERDICT("transport-reconnect", rc == 0, "domain %d: reconnected to the restarted driver%s%s",
               me, rc < 0 ? ": " : "", rc < 0 ? strerror(-rc) : "");
    idm_msg_free(&m);
    return 0;
}

/* Waits for the driver to cut the connection off; 0 when it did. */
static int expect_cut_off(struct idm_conn *c, struct idm_msg *m)
{
    int rc;
    double end = now_s() + 60;
    do {
        rc = idm_recv(c, m, 1000);
    } while (rc == -EAGAIN && now_s() < end);
    return rc == -EPIPE ? 0 : (rc == 0 ? -EBADMSG : rc);
}

static int role_scribble(const char *prefix)
{
    char v1[64], v2[64], v3[64];
    snprintf(v1, sizeof(v1), "%s-ring-index", prefix);
    snprintf(v2, sizeof(v2), "%s-bad-header", prefix);
    snprintf(v3, sizeof(v3), "%s-geometry-then-crash", prefix);
    struct idm_conn *c;
    struct idm_msg m;
    int me = self_domid(), rc;
    idm_msg_init(&m);

    /* 1: an impossible request-ring producer index. */
    if (connect_echo(&c) == 0 && ping_once(c, 1, &m) == 0) {
        struct idm_ctrl *ctrl = (struct idm_ctrl *)c->base;
        atomic_store(&ctrl->req.prod, c->tx.idx + 100000u);
        c->ops->notify(c);
        rc = expect_cut_off(c, &m);
        XT_VERDICT(v1, rc == 0,
                   "domain %d corrupted its request ring index: %s", me,
                   rc == 0 ? "the driver cut it off" : strerror(-rc));
        idm_close(c);
    } else {
        XT_VERDICT(v1, 0, "domain %d could not connect", me);
    }

    /* 2: a message header with a bad magic and a huge length. */
    if (connect_echo(&c) == 0 && ping_once(c, 2, &m) == 0) {
        struct idm_ctrl *ctrl = (struct idm_ctrl *)c->base;
        uint8_t *slot = idm_ring_prod_slot(&c->tx);
        memset(slot, 0xEE, sizeof(struct idm_hdr));
        atomic_store(&ctrl->req.prod, c->tx.idx + 1);
        c->ops->notify(c);
        rc = expect_cut_off(c, &m);
        XT_VERDICT(v2, rc == 0, "domain %d wrote a garbage message header: %s",
                   me, rc == 0 ? "the driver cut it off" : strerror(-rc));
        idm_close(c);
    } else {
        XT_VERDICT(v2, 0, "domain %d could not connect", me);
    }

    /* 3: the control page's geometry rewritten under the driver (it must keep its own copy),
     * then a process that dies holding the connection: its pages go away. */
    pid_t pid = fork();
    if (pid == 0) {
        if (connect_echo(&c) < 0 || ping_once(c, 3, &m) < 0)
            _exit(2);
        struct idm_ctrl *ctrl = (struct idm_ctrl *)c->base;
        ctrl->ring_slots = 1u << 30;
        ctrl->slot_size = 1u << 30;
        ctrl->window_size = 1ull << 50;
        if (ping_once(c, 4, &m) < 0)
            _exit(3);
        _exit(0); /* no idm_close: the kernel releases the grants and the event channel */
    }
    int status = -1;
    rc = pid > 0 && waitpid(pid, &status, 0) == pid ? 0 : -1;
    XT_VERDICT(v3,
               rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "domain %d: a child rewrote the control page geometry (still served) and exited "
               "holding the connection (status %d)", me, status);
    idm_msg_free(&m);
    return 0;
}

/* Writes an offer whose keys are valid-looking except `key` = `val`, and waits for the driver's
 * answer. Returns 1 when it was refused, 0 when accepted, -1 when it never answered. */
static int hostile_offer(struct xs_handle *xs, const char *key, const char *val, unsigned port,
                         char *answer, size_t cap)
{
    char nonce[17], portbuf[16];
    snprintf(nonce, sizeof(nonce), "%08x%08x", (unsigned)rand(), (unsigned)rand());
    snprintf(portbuf, sizeof(portbuf), "%u", port);
    const char *keys[][2] = {
        {"version", "1"},       {"nonce", nonce},          {"ring-slots", "256"},
        {"slot-size", "4096"},  {"window-size", "8388608"}, {"pages", "2561"},
        {"dir-refs", "8,9,10"}, {"meta-ref", "11"},        {"event-channel", portbuf},
        {"backend-id", "0"},    {"backend-state", ""},
    };
    char path[128], base[64], answer_path[128];
    snprintf(base, sizeof(base), "data/vgpu/%s", nonce);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const char *v = strcmp(keys[i][0], key) == 0 ? val : keys[i][1];
        snprintf(path, sizeof(path), "%s/%s", base, keys[i][0]);
        xs_write(xs, XBT_NULL, path, v, (unsigned)strlen(v));
    }
    snprintf(path, sizeof(path), "%s/state", base);
    xs_write(xs, XBT_NULL, path, "offered", 7);
    snprintf(answer_path, sizeof(answer_path), "%s/backend-state", base);
    int r = -1;
    snprintf(answer, cap, "no answer in 30 s");
    for (int i = 0; i < 300 && r < 0; i++) {
        unsigned int len;
        char *v = xs_read(xs, XBT_NULL, answer_path, &len);
        if (v && strncmp(v, "refused ", 8) == 0 && strncmp(v + 8, nonce, 16) == 0) {
            snprintf(answer, cap, "%s", v + 25);
            r = 1;
        } else if (v && strncmp(v, "connected ", 10) == 0) {
            snprintf(answer, cap, "%s", v);
            r = 0;
        } else {
            usleep(100000);
        }
        free(v);
    }
    xs_rm(xs, XBT_NULL, base);
    return r;
}

/* Connects, then waits for dom0 to destroy this domain under the open connection (the driver
 * must notice without any help from the guest). */
static int role_hold(void)
{
    struct idm_conn *c;
    struct idm_msg m;
    idm_msg_init(&m);
    if (connect_echo(&c) < 0 || ping_once(c, 9, &m) < 0) {
        XT_VERDICT("hold-connect", 0, "domain %d could not connect", self_domid());
        return 1;
    }
    xs_key("data/test/holding", "1");
    for (;;)
        pause();
}

/* Offers the driver hostile xenstore values; each offer must be refused with a reason. */
static int role_hostile_offers(void)
{
    struct xs_handle *xs = xs_open(0);
    xenevtchn_handle *xce = xenevtchn_open(NULL, 0);
    int me = self_domid();
    if (!xs || !xce) {
        XT_VERDICT("hostile-offers", 0, "cannot open xenstore or the event channel device");
        return 1;
    }
    /* A real unbound port, so that the cases past the event channel reach the grant mapping. */
    xenevtchn_port_or_error_t port = xenevtchn_bind_unbound_port(xce, 0);
    srand((unsigned)getpid() ^ (unsigned)time(NULL));
    static const struct {
        const char *name, *key, *val;
    } cases[] = {
        {"version", "version", "99"},
        {"geometry", "ring-slots", "3"},
        {"leading-zero", "ring-slots", "0256"},
        {"trailing-space", "slot-size", "4096 "},
        {"overflow", "window-size", "99999999999999999999999"},
        {"pages", "pages", "100"},
        {"dir-count", "dir-refs", "8"},
        {"port", "event-channel", "65535"},
        {"grant-refs", "dir-refs", "900001,900002,900003"},
        {"nonce", "nonce", "0123456789abcdef"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char answer[256], name[64];
        int r = hostile_offer(xs, cases[i].key, cases[i].val, port < 0 ? 1u : (unsigned)port,
                              answer, sizeof(answer));
        snprintf(name, sizeof(name), "hostile-offer-%s", cases[i].name);
        XT_VERDICT(name, r == 1, "domain %d offered %s=\"%s\": %s%s", me, cases[i].key,
                   cases[i].val, r == 1 ? "refused: " : (r == 0 ? "ACCEPTED: " : ""), answer);
        bad += r != 1;
    }
    xenevtchn_close(xce);
    xs_close(xs);
    return bad ? 1 : 0;
}

static int role_bench(void)
{
    struct idm_conn *c;
    struct idm_msg m;
    int me = self_domid();
    idm_msg_init(&m);
    if (connect_echo(&c) < 0) {
        XT_VERDICT("transport-bench", 0, "domain %d could not connect", me);
        return 1;
    }
    uint8_t b[64] = {0};
    int rc = 0, n = 200;
    double t0 = now_s();
    for (int i = 0; i < n && rc == 0; i++)
        rc = call(c, XT_OP_PING, b, sizeof(b), &m, 30000);
    double rtt = (now_s() - t0) / n;
    uint64_t wsize;
    uint8_t *w = idm_window(c, &wsize);
    uint64_t chunk = wsize, total = 0;
    struct xt_bulk_req req = {.off = 0, .len = chunk};
    t0 = now_s();
    for (int i = 0; i < 4 && rc == 0; i++) {
        memset(w, i + 1, chunk);
        rc = call(c, XT_OP_SUM, &req, sizeof(req), &m, 60000);
        uint64_t want = (chunk / 8) * (0x0101010101010101ull * (uint64_t)(i + 1));
        struct xt_bulk_rep rep = {0};
        if (rc == 0 && m.hdr.len == sizeof(rep))
            memcpy(&rep, m.payload, sizeof(rep));
        if (rc == 0 && rep.checksum != want)
            rc = -EBADMSG;
        total += chunk;
    }
    double secs = now_s() - t0;
    printf("XENTEST BENCH round-trip %.1f us (64-byte ping, %d round trips); bulk %.1f MB/s "
           "(%" PRIu64 " MiB through the window, written by the guest and read by the driver); "
           "under TCG emulation\n", rtt * 1e6, n, (double)total / secs / 1e6, total >> 20);
    XT_VERDICT("transport-bench", rc == 0, "measurements done%s%s", rc < 0 ? ": " : "",
               rc < 0 ? strerror(-rc) : "");
    idm_close(c);
    idm_msg_free(&m);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    address = getenv("VGPU_SOCKET");
    if (argc < 2) {
        fprintf(stderr, "usage: xen_guest ping [N] | serve-until NAME | reconnect | "
                        "scribble [PREFIX] | scribble-proxy [PREFIX] | hostile-offers | hold | "
                        "bench\n");
        return 2;
    }
    if (strcmp(argv[1], "ping") == 0)
        return role_ping(argc > 2 ? atoi(argv[2]) : 200);
    if (strcmp(argv[1], "serve-until") == 0)
        return role_serve_until(argc > 2 ? argv[2] : "transport-served");
    if (strcmp(argv[1], "reconnect") == 0)
        return role_reconnect();
    if (strcmp(argv[1], "scribble") == 0)
        return role_scribble(argc > 2 ? argv[2] : "scribble");
    if (strcmp(argv[1], "scribble-proxy") == 0) {
        use_hello = 1;
        return role_scribble(argc > 2 ? argv[2] : "proxy-scribble");
    }
    if (strcmp(argv[1], "hold") == 0)
        return role_hold();
    if (strcmp(argv[1], "hostile-offers") == 0)
        return role_hostile_offers();
    if (strcmp(argv[1], "bench") == 0)
        return role_bench();
    fprintf(stderr, "xen_guest: unknown role %s\n", argv[1]);
    return 2;
}
