/* test_proc.c - IDM between real processes: a two-process stress test (millions of messages
 * each way with checksums, no loss, no reordering) and peer death (the survivor gets -EPIPE,
 * whether it was idle, blocked receiving, or blocked on a full ring). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "idm.h"
#include "idm_log.h"
#include "idm_test_util.h"

#define STRESS_SLOTS 256
#define STRESS_SLOT_SIZE 256
#define ROOM (STRESS_SLOT_SIZE - 32)
#define SAFETY_MS 60000 /* only so a broken build fails instead of hanging */

/* ---- message contents: seq, checksum, then bytes generated from the seq ---- */

struct stress_head {
    uint64_t seq;
    uint32_t sum; /* FNV-1a of the data after the head */
    uint32_t dlen;
};

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static size_t data_len(uint64_t seq, int reply)
{
    return (size_t)((seq * (reply ? 53 : 37)) % (ROOM - sizeof(struct stress_head) + 1));
}

static void fill(uint8_t *d, size_t n, uint64_t seq, int reply)
{
    uint64_t x = seq * 0x9e3779b97f4a7c15ull + (reply ? 0x5555 : 1);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d[i] = (uint8_t)x;
    }
}

static int stress_send(struct idm_conn *c, uint64_t seq, int reply)
{
    uint8_t data[ROOM];
    struct stress_head sh = {.seq = seq, .dlen = (uint32_t)data_len(seq, reply)};
    fill(data, sh.dlen, seq, reply);
    sh.sum = fnv1a(data, sh.dlen);
    struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = seq, .flags = reply ? IDM_F_REPLY : 0};
    return idm_send(c, &h, &sh, sizeof(sh), data, sh.dlen);
}

/* Checks one received message; returns 0 or a line number naming the failed check. */
static int stress_check(const struct idm_msg *m, uint64_t want_seq, int reply)
{
    struct stress_head sh;
    if (m->hdr.seq != want_seq)
        return __LINE__;
    if (m->hdr.len < sizeof(sh))
        return __LINE__;
    memcpy(&sh, m->payload, sizeof(sh));
    if (sh.seq != want_seq || sh.dlen != data_len(want_seq, reply) ||
        m->hdr.len != sizeof(sh) + sh.dlen)
        return __LINE__;
    if (fnv1a(m->payload + sizeof(sh), sh.dlen) != sh.sum)
        return __LINE__;
    uint8_t want[ROOM];
    fill(want, sh.dlen, want_seq, reply);
    if (memcmp(want, m->payload + sizeof(sh), sh.dlen) != 0)
        return __LINE__;
    if (!!(m->hdr.flags & IDM_F_REPLY) != reply)
        return __LINE__;
    return 0;
}

static uint64_t stress_count(void)
{
    const char *e = getenv("IDM_STRESS_MSGS");
    if (e && *e)
        return strtoull(e, NULL, 10);
    return 2000000;
}

/* Client: keeps up to STRESS_SLOTS requests in flight, checks every reply in order. */
static int stress_client(const char *path, uint64_t n)
{
    struct idm_conn *c;
    int rc = idm_transport_posix.connect(path, &c);
    if (rc < 0) {
        fprintf(stderr, "stress client: connect: %s\n", strerror(-rc));
        return 10;
    }
    struct idm_msg m;
    idm_msg_init(&m);
    uint64_t sent = 0, got = 0;
    int ret = 0;
    while (got < n) {
        while (sent < n && sent - got < STRESS_SLOTS) {
            rc = stress_send(c, sent, 0);
            if (rc < 0) {
                fprintf(stderr, "stress client: send %llu: %s\n", (unsigned long long)sent,
                        strerror(-rc));
                ret = 11;
                goto out;
            }
            sent++;
        }
        rc = idm_recv(c, &m, SAFETY_MS);
        if (rc < 0) {
            fprintf(stderr, "stress client: recv %llu: %s\n", (unsigned long long)got,
                    strerror(-rc));
            ret = 12;
            goto out;
        }
        int line = stress_check(&m, got, 1);
        if (line) {
            fprintf(stderr, "stress client: reply %llu failed check at line %d\n",
                    (unsigned long long)got, line);
            ret = 13;
            goto out;
        }
        got++;
    }
    /* Nothing extra may arrive. */
    if (idm_recv(c, &m, 0) != -EAGAIN)
        ret = 14;
out:
    idm_msg_free(&m);
    idm_close(c);
    return ret;
}

static void test_proc_stress(void **state)
{
    (void)state;
    uint64_t n = stress_count();
    char path[256];
    test_sock_path(path, sizeof(path), "stress");
    struct idm_listener *l;
    struct idm_conn_config cfg = {
        .ring_slots = STRESS_SLOTS, .slot_size = STRESS_SLOT_SIZE, .window_size = 1 << 16};
    assert_int_equal(idm_transport_posix.listen(path, &cfg, &l), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(stress_client(path, n));
    struct idm_conn *c;
    assert_int_equal(test_accept(l, &c), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct idm_msg m;
    idm_msg_init(&m);
    for (uint64_t i = 0; i < n; i++) {
        int rc = idm_recv(c, &m, SAFETY_MS);
        if (rc < 0)
            fail_msg("server: recv %llu: %s", (unsigned long long)i, strerror(-rc));
        int line = stress_check(&m, i, 0);
        if (line)
            fail_msg("server: request %llu failed check at line %d", (unsigned long long)i,
                     line);
        rc = stress_send(c, i, 1);
        if (rc < 0)
            fail_msg("server: send %llu: %s", (unsigned long long)i, strerror(-rc));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* The client closed after its last reply: nothing more, then -EPIPE. */
    assert_int_equal(idm_recv(c, &m, SAFETY_MS), -EPIPE);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("    stress: %llu requests + %llu replies checked in %.2f s (informational)\n",
           (unsigned long long)n, (unsigned long long)n, s);
    idm_msg_free(&m);
    idm_close(c);
    idm_transport_posix.listener_close(l);
    test_sock_cleanup(path);
}

/* ---- peer death ---- */

struct killer {
    pid_t pid;
    int delay_ms;
};

static void *killer_main(void *arg)
{
    struct killer *k = arg;
    struct timespec ts = {.tv_sec = k->delay_ms / 1000, .tv_nsec = (k->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    kill(k->pid, SIGKILL);
    return NULL;
}

/* The client process is killed while the server is blocked in idm_recv(-1). */
static void test_proc_client_killed(void **state)
{
    (void)state;
    char path[256];
    test_sock_path(path, sizeof(path), "death");
    struct idm_listener *l;
    assert_int_equal(idm_transport_posix.listen(path, NULL, &l), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct idm_conn *c;
        if (idm_transport_posix.connect(path, &c) < 0)
            _exit(1);
        struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = 1};
        if (idm_send(c, &h, NULL, 0, NULL, 0) < 0)
            _exit(2);
        for (;;)
            pause();
    }
    struct idm_conn *c;
    assert_int_equal(test_accept(l, &c), 0);
    assert_int_equal(idm_conn_peer(c)->pid, pid);
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(c, &m, SAFETY_MS), 0);
    assert_int_equal(m.hdr.seq, 1);
    struct killer k = {.pid = pid, .delay_ms = 50};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, killer_main, &k), 0);
    assert_int_equal(idm_recv(c, &m, -1), -EPIPE);
    pthread_join(th, NULL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_non_null(strstr(idm_conn_error(c), "peer went away"));
    struct idm_hdr h = {.op = IDM_OP_HELLO, .flags = IDM_F_REPLY};
    assert_int_equal(idm_send(c, &h, NULL, 0, NULL, 0), -EPIPE);
    idm_msg_free(&m);
    idm_close(c);
    idm_transport_posix.listener_close(l);
    test_sock_cleanup(path);
}

/* Starts a server process that accepts one client and then does nothing. */
static pid_t spawn_idle_server(const char *path, const struct idm_conn_config *cfg)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        struct idm_listener *l;
        if (idm_transport_posix.listen(path, cfg, &l) < 0)
            _exit(1);
        if (write(p[1], "r", 1) != 1)
            _exit(2);
        struct idm_conn *c;
        if (test_accept(l, &c) < 0)
            _exit(3);
        for (;;)
            pause();
    }
    close(p[1]);
    char ch;
    assert_int_equal(read(p[0], &ch, 1), 1);
    close(p[0]);
    return pid;
}

/* The server process is killed while the client waits for a reply. */
static void test_proc_server_killed(void **state)
{
    (void)state;
    char path[256];
    test_sock_path(path, sizeof(path), "death");
    pid_t pid = spawn_idle_server(path, NULL);
    struct idm_conn *c;
    assert_int_equal(idm_transport_posix.connect(path, &c), 0);
    assert_int_equal(idm_conn_peer(c)->pid, pid);
    struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = 1};
    assert_int_equal(idm_send(c, &h, NULL, 0, NULL, 0), 0);
    struct killer k = {.pid = pid, .delay_ms = 50};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, killer_main, &k), 0);
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(c, &m, -1), -EPIPE);
    pthread_join(th, NULL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_int_equal(idm_recv(c, &m, 0), -EPIPE);
    idm_msg_free(&m);
    idm_close(c);
    test_sock_cleanup(path);
}

/* The server process is killed while the client is blocked on a full request ring. */
static void test_proc_server_killed_ring_full(void **state)
{
    (void)state;
    char path[256];
    test_sock_path(path, sizeof(path), "death");
    struct idm_conn_config cfg = {.ring_slots = 4, .slot_size = 128, .window_size = 4096};
    pid_t pid = spawn_idle_server(path, &cfg);
    struct idm_conn *c;
    assert_int_equal(idm_transport_posix.connect(path, &c), 0);
    for (uint64_t i = 0; i < 4; i++) {
        struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = i};
        assert_int_equal(idm_send(c, &h, NULL, 0, NULL, 0), 0);
    }
    struct killer k = {.pid = pid, .delay_ms = 50};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, killer_main, &k), 0);
    struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = 4};
    assert_int_equal(idm_send(c, &h, NULL, 0, NULL, 0), -EPIPE);
    pthread_join(th, NULL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(c, &m, -1), -EPIPE);
    idm_msg_free(&m);
    idm_close(c);
    test_sock_cleanup(path);
}

/* ---- a hostile client process next to a well-behaved one ---- */

#include "idm_conn_internal.h"

/* Connects, then scribbles over its request ring and producer index until the server cuts it
 * off (seen as -EPIPE). */
static int hostile_client(const char *path)
{
    struct idm_conn *c;
    if (idm_transport_posix.connect(path, &c) < 0)
        return 1;
    struct idm_ctrl *ctrl = (struct idm_ctrl *)c->base;
    uint8_t *ring = c->base + c->layout.req_off;
    uint64_t ring_bytes = c->layout.ring_bytes;
    uint64_t x = 88172645463325252ull;
    struct idm_msg m;
    idm_msg_init(&m);
    for (long i = 0; i < 100000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (i % 2)
            memcpy(ring + (x >> 20) % (ring_bytes - 8), &x, sizeof(x));
        else
            atomic_store(&ctrl->req.prod, (uint32_t)x);
        /* Ring the server's doorbell as a real sender would. */
        if (i % 64 == 0) {
            struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = (uint64_t)i};
            (void)idm_send_timed(c, &h, NULL, 0, NULL, 0, 0);
        }
        if (i % 1024 == 0 && idm_recv(c, &m, 0) == -EPIPE) {
            idm_msg_free(&m);
            idm_close(c);
            return 0;
        }
    }
    fprintf(stderr, "hostile: never cut off: recv says %d (%s)\n", idm_recv(c, &m, 0), idm_conn_error(c));
    return 2; /* never cut off */
}

static int good_client(const char *path, int n)
{
    struct idm_conn *c;
    if (idm_transport_posix.connect(path, &c) < 0)
        return 1;
    struct idm_msg m;
    idm_msg_init(&m);
    for (int i = 0; i < n; i++) {
        uint64_t v = (uint64_t)i * 3 + 1;
        struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = (uint64_t)i};
        if (idm_send(c, &h, &v, sizeof(v), NULL, 0) < 0)
            return 2;
        if (idm_recv(c, &m, SAFETY_MS) < 0 || m.hdr.seq != (uint64_t)i || m.hdr.len != 8)
            return 3;
        uint64_t r;
        memcpy(&r, m.payload, sizeof(r));
        if (r != v + 1)
            return 4;
    }
    idm_msg_free(&m);
    idm_close(c);
    return 0;
}

/* The server polls both connections as a server loop does (poll the fds, drain each until
 * -EAGAIN); the hostile one ends with -EPROTO, the good one is served to its end. */
static void test_proc_hostile_client_process(void **state)
{
    (void)state;
    enum { N = 2000 };
    char path[256];
    test_sock_path(path, sizeof(path), "hostile");
    struct idm_listener *l;
    assert_int_equal(idm_transport_posix.listen(path, NULL, &l), 0);
    pid_t bad = fork();
    assert_true(bad >= 0);
    if (bad == 0)
        _exit(hostile_client(path));
    pid_t good = fork();
    assert_true(good >= 0);
    if (good == 0)
        _exit(good_client(path, N));
    struct idm_conn *conns[2];
    assert_int_equal(test_accept(l, &conns[0]), 0);
    assert_int_equal(test_accept(l, &conns[1]), 0);
    int bad_rc = 0, good_rc = 0, served = 0;
    struct idm_msg m;
    idm_msg_init(&m);
    while (conns[0] || conns[1]) {
        struct pollfd pfd[2];
        for (int i = 0; i < 2; i++)
            pfd[i] = (struct pollfd){.fd = conns[i] ? idm_conn_fd(conns[i]) : -1,
                                     .events = POLLIN};
        int n = poll(pfd, 2, SAFETY_MS);
        assert_true(n > 0);
        for (int i = 0; i < 2; i++) {
            if (!conns[i] || !(pfd[i].revents & POLLIN))
                continue;
            int is_bad = idm_conn_peer(conns[i])->pid == bad;
            int rc;
            while ((rc = idm_recv(conns[i], &m, 0)) == 0) {
                if (is_bad)
                    continue; /* whatever got through validation: ignored */
                uint64_t v;
                assert_int_equal(m.hdr.len, sizeof(v));
                memcpy(&v, m.payload, sizeof(v));
                v++;
                m.hdr.flags = IDM_F_REPLY;
                assert_int_equal(idm_send_timed(conns[i], &m.hdr, &v, sizeof(v), NULL, 0, 1000),
                                 0);
                served++;
            }
            if (rc != -EAGAIN) {
                if (is_bad)
                    bad_rc = rc;
                else
                    good_rc = rc;
                idm_close(conns[i]);
                conns[i] = NULL;
            }
        }
    }
    int status;
    assert_int_equal(waitpid(bad, &status, 0), bad);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* it saw itself cut off */
    assert_int_equal(waitpid(good, &status, 0), good);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(bad_rc, -EPROTO);
    assert_int_equal(good_rc, -EPIPE); /* it finished and closed */
    assert_int_equal(served, N);
    idm_msg_free(&m);
    idm_transport_posix.listener_close(l);
    test_sock_cleanup(path);
}

int main(void)
{
    if (!getenv("IDM_LOG"))
        idm_log_set_level(IDM_LOG_OFF);
    signal(SIGPIPE, SIG_DFL); /* the library must not need SIGPIPE ignored */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proc_stress),
        cmocka_unit_test(test_proc_client_killed),
        cmocka_unit_test(test_proc_server_killed),
        cmocka_unit_test(test_proc_server_killed_ring_full),
        cmocka_unit_test(test_proc_hostile_client_process),
    };
    return cmocka_run_group_tests_name("idm_proc", tests, NULL, NULL);
}
