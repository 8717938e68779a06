/* test_conn.c - connections over the real POSIX transport: round trips, full and empty rings,
 * wrap-around, many requests in flight answered out of order, concurrent senders, the pollable
 * fd rule, the window and its range checks, and hostile rewrites of indices and headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "idm.h"
#include "idm_conn_internal.h"
#include "idm_log.h"
#include "idm_test_util.h"

struct fixture {
    char path[256];
    struct idm_listener *l;
    struct idm_conn *srv, *cli;
};

static int setup_with(void **state, uint32_t slots, uint32_t slot_size, uint64_t window)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    test_sock_path(f->path, sizeof(f->path), "conn");
    struct idm_conn_config cfg = {
        .ring_slots = slots, .slot_size = slot_size, .window_size = window};
    assert_int_equal(idm_transport_posix.listen(f->path, &cfg, &f->l), 0);
    assert_int_equal(test_pair(f->l, f->path, &f->srv, &f->cli), 0);
    *state = f;
    return 0;
}

static int setup_default(void **state)
{
    return setup_with(state, 0, 0, 0);
}

static int setup_small(void **state)
{
    return setup_with(state, 4, 128, 8192);
}

/* 16 slots of 128 bytes: a message may span a quarter of the ring, 4 slots (480 payload bytes). */
static int setup_multi(void **state)
{
    return setup_with(state, 16, 128, 8192);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    idm_close(f->cli);
    idm_close(f->srv);
    idm_transport_posix.listener_close(f->l);
    test_sock_cleanup(f->path);
    free(f);
    return 0;
}

static void send_u64(struct idm_conn *c, uint16_t op, uint64_t seq, uint64_t v)
{
    struct idm_hdr h = {.op = op, .seq = seq};
    assert_int_equal(idm_send(c, &h, &v, sizeof(v), NULL, 0), 0);
}

static uint64_t recv_u64(struct idm_conn *c, uint64_t want_seq)
{
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(c, &m, 10000), 0);
    assert_int_equal(m.hdr.seq, want_seq);
    assert_int_equal(m.hdr.len, sizeof(uint64_t));
    uint64_t v;
    memcpy(&v, m.payload, sizeof(v));
    idm_msg_free(&m);
    return v;
}

/* A request travels client -> server and its reply back, every header field intact. */
static void test_conn_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct idm_req_MEM_ALLOC req = {.ctx = 0x1100000000000007ull, .size = 1 << 20};
    struct idm_hdr h = {.op = IDM_OP_MEM_ALLOC, .seq = 42, .zone = 3};
    assert_int_equal(idm_send(f->cli, &h, &req, sizeof(req), NULL, 0), 0);
    assert_int_equal(h.magic, IDM_MAGIC);
    assert_int_equal(h.len, sizeof(req));

    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(f->srv, &m, 10000), 0);
    assert_int_equal(m.hdr.magic, IDM_MAGIC);
    assert_int_equal(m.hdr.version, IDM_PROTOCOL_VERSION);
    assert_int_equal(m.hdr.op, IDM_OP_MEM_ALLOC);
    assert_int_equal(m.hdr.seq, 42);
    assert_int_equal(m.hdr.zone, 3);
    assert_int_equal(m.hdr.flags, 0);
    assert_int_equal(m.hdr.len, sizeof(req));
    struct idm_req_MEM_ALLOC got;
    memcpy(&got, m.payload, sizeof(got));
    assert_int_equal(got.ctx, req.ctx);
    assert_int_equal(got.size, req.size);

    struct idm_rep_MEM_ALLOC rep = {.dptr = 0xdead0000};
    struct idm_hdr rh = {.op = m.hdr.op, .seq = m.hdr.seq, .flags = IDM_F_REPLY, .status = 2};
    assert_int_equal(idm_send(f->srv, &rh, &rep, sizeof(rep), NULL, 0), 0);
    assert_int_equal(idm_recv(f->cli, &m, 10000), 0);
    assert_int_equal(m.hdr.op, IDM_OP_MEM_ALLOC);
    assert_int_equal(m.hdr.seq, 42);
    assert_int_equal(m.hdr.flags, IDM_F_REPLY);
    assert_int_equal(m.hdr.status, 2);
    struct idm_rep_MEM_ALLOC grep;
    memcpy(&grep, m.payload, sizeof(grep));
    assert_int_equal(grep.dptr, 0xdead0000);
    idm_msg_free(&m);
    assert_string_equal(idm_conn_error(f->srv), "");
    assert_string_equal(idm_conn_error(f->cli), "");
}

/* Both sides see the geometry the server chose, and the transport names the peer. */
static void test_conn_geometry_and_peer(void **state)
{
    struct fixture *f = *state;
    const struct idm_conn_config *gs = idm_conn_geometry(f->srv);
    const struct idm_conn_config *gc = idm_conn_geometry(f->cli);
    assert_int_equal(gs->ring_slots, 4);
    assert_int_equal(gs->slot_size, 128);
    assert_int_equal(gs->window_size, 8192);
    assert_memory_equal(gs, gc, sizeof(*gs));
    const struct idm_peer *ps = idm_conn_peer(f->srv);
    assert_int_equal(ps->pid, getpid());
    assert_int_equal(ps->uid, (int32_t)getuid());
    assert_int_equal(ps->domid, -1);
    assert_int_equal(idm_conn_peer(f->cli)->pid, getpid());
    assert_true(idm_conn_fd(f->srv) >= 0);
    assert_true(idm_conn_fd(f->cli) >= 0);
}

static void test_conn_defaults(void **state)
{
    struct fixture *f = *state;
    const struct idm_conn_config *g = idm_conn_geometry(f->cli);
    assert_int_equal(g->ring_slots, IDM_RING_SLOTS_DEFAULT);
    assert_int_equal(g->slot_size, IDM_SLOT_SIZE_DEFAULT);
    assert_int_equal(g->window_size, IDM_WINDOW_SIZE_DEFAULT);
}

/* An empty ring polls as -EAGAIN, with and without a timeout, on both sides. */
static void test_conn_empty(void **state)
{
    struct fixture *f = *state;
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(f->srv, &m, 0), -EAGAIN);
    assert_int_equal(idm_recv(f->cli, &m, 0), -EAGAIN);
    assert_int_equal(idm_recv(f->srv, &m, 5), -EAGAIN);
    send_u64(f->cli, IDM_OP_HELLO, 1, 11);
    assert_int_equal(idm_recv(f->srv, &m, 0), 0);
    assert_int_equal(idm_recv(f->srv, &m, 0), -EAGAIN);
    idm_msg_free(&m);
    assert_string_equal(idm_conn_error(f->srv), "");
}

/* A full ring refuses a non-waiting send, and takes it once one slot is consumed. */
static void test_conn_full(void **state)
{
    struct fixture *f = *state;
    for (uint64_t i = 0; i < 4; i++) {
        struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = i};
        assert_int_equal(idm_send_timed(f->cli, &h, &i, sizeof(i), NULL, 0, 0), 0);
    }
    struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = 4};
    uint64_t v = 4;
    assert_int_equal(idm_send_timed(f->cli, &h, &v, sizeof(v), NULL, 0, 0), -EAGAIN);
    assert_int_equal(idm_send_timed(f->cli, &h, &v, sizeof(v), NULL, 0, 3), -EAGAIN);
    assert_int_equal(recv_u64(f->srv, 0), 0);
    assert_int_equal(idm_send_timed(f->cli, &h, &v, sizeof(v), NULL, 0, 0), 0);
    for (uint64_t i = 1; i <= 4; i++)
        assert_int_equal(recv_u64(f->srv, i), i);
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(f->srv, &m, 0), -EAGAIN);
    idm_msg_free(&m);
    assert_string_equal(idm_conn_error(f->cli), "");
}

/* Thousands of messages through a 4-slot ring wrap its indices many times, in order. */
static void test_conn_wraparound(void **state)
{
    struct fixture *f = *state;
    for (uint64_t i = 0; i < 5000; i++) {
        send_u64(f->cli, IDM_OP_HELLO, i, i * 3);
        if (i % 3 == 2) {
            for (uint64_t j = i - 2; j <= i; j++)
                assert_int_equal(recv_u64(f->srv, j), j * 3);
        }
    }
    for (uint64_t j = 4998; j < 5000; j++)
        assert_int_equal(recv_u64(f->srv, j), j * 3);
}

/* In a ring of 4 slots messages are one slot each: up to exactly a slot go through, gathered
 * from two pieces; one byte more does not. */
static void test_conn_msgsize(void **state)
{
    struct fixture *f = *state;
    const size_t room = 128 - sizeof(struct idm_hdr);
    uint8_t a[200], b[200];
    for (size_t i = 0; i < sizeof(a); i++) {
        a[i] = (uint8_t)i;
        b[i] = (uint8_t)(255 - i);
    }
    struct idm_hdr h = {.op = IDM_OP_LAUNCH, .seq = 9};
    assert_int_equal(idm_send(f->cli, &h, a, room + 1, NULL, 0), -EMSGSIZE);
    assert_int_equal(idm_send(f->cli, &h, a, 50, b, room - 49), -EMSGSIZE);
    assert_int_equal(idm_send(f->cli, &h, a, SIZE_MAX, b, 2), -EMSGSIZE);
    assert_int_equal(idm_send(f->cli, &h, a, 50, b, room - 50), 0);
    assert_int_equal(idm_send(f->cli, &h, NULL, 0, NULL, 0), 0);
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(f->srv, &m, 10000), 0);
    assert_int_equal(m.hdr.len, room);
    assert_memory_equal(m.payload, a, 50);
    assert_memory_equal(m.payload + 50, b, room - 50);
    assert_int_equal(idm_recv(f->srv, &m, 10000), 0);
    assert_int_equal(m.hdr.len, 0);
    idm_msg_free(&m);
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 31u + i * 7u);
}

/* Messages longer than a slot span consecutive slots (up to a quarter of the ring), across the
 * ring's wrap many times over, gathered from two pieces, and arrive intact; one byte more than
 * idm_max_payload is refused, and the limit is the same on both sides. */
static void test_conn_multislot(void **state)
{
    struct fixture *f = *state;
    const uint32_t room = idm_max_payload(f->cli);
    static const size_t sizes[] = {480, 97, 0, 96, 200, 479, 1, 384, 385};
    uint8_t a[600], b[600];
    struct idm_msg m;

    assert_int_equal(room, 4 * 128 - sizeof(struct idm_hdr));
    assert_int_equal(idm_max_payload(f->srv), room);
    assert_int_equal(idm_msg_slots(f->cli, 96), 1);
    assert_int_equal(idm_msg_slots(f->cli, 97), 2);
    assert_int_equal(idm_msg_slots(f->cli, room), 4);
    struct idm_hdr h = {.op = IDM_OP_MEMCPY_HTOD, .seq = 1};
    assert_int_equal(idm_send(f->cli, &h, a, room + 1, NULL, 0), -EMSGSIZE);
    assert_int_equal(idm_send(f->cli, &h, a, 100, b, room - 99), -EMSGSIZE);
    idm_msg_init(&m);
    for (unsigned i = 0; i < 200; i++) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])], split = n / 3;
        fill_pattern(a, n, i);
        h = (struct idm_hdr){.op = IDM_OP_MEMCPY_HTOD, .seq = i};
        assert_int_equal(idm_send(f->cli, &h, a, split, a + split, n - split), 0);
        assert_int_equal(idm_recv(f->srv, &m, 10000), 0);
        assert_int_equal(m.hdr.seq, i);
        assert_int_equal(m.hdr.len, n);
        assert_memory_equal(m.payload, a, n);
        /* and back, as a reply would come */
        h = (struct idm_hdr){.op = IDM_OP_MEMCPY_DTOH, .seq = i, .flags = IDM_F_REPLY};
        assert_int_equal(idm_send(f->srv, &h, m.payload, n, NULL, 0), 0);
        assert_int_equal(idm_recv(f->cli, &m, 10000), 0);
        assert_int_equal(m.hdr.len, n);
        assert_memory_equal(m.payload, a, n);
    }
    idm_msg_free(&m);
}

/* A message needs all its slots free: with 13 of 16 used a 4-slot message waits (and a timed
 * send gives up with nothing sent), a 3-slot one goes (the ring is full); the 4-slot one goes
 * once four slots are consumed, not three, and everything arrives in order. */
static void test_conn_multislot_full(void **state)
{
    struct fixture *f = *state;
    const uint32_t room = idm_max_payload(f->cli);
    uint8_t a[600];
    struct idm_msg m;

    fill_pattern(a, sizeof a, 5);
    for (uint64_t i = 0; i < 13; i++)
        send_u64(f->cli, IDM_OP_HELLO, i, i);
    struct idm_hdr h = {.op = IDM_OP_MEMCPY_HTOD, .seq = 100};
    assert_int_equal(idm_send_timed(f->cli, &h, a, room, NULL, 0, 0), -EAGAIN);
    assert_int_equal(idm_send_timed(f->cli, &h, a, room, NULL, 0, 20), -EAGAIN);
    h.seq = 101;
    assert_int_equal(idm_send_timed(f->cli, &h, a, 3 * 128 - sizeof h, NULL, 0, 0), 0);
    for (uint64_t i = 0; i < 3; i++)
        assert_int_equal(recv_u64(f->srv, i), i);
    h.seq = 102;
    assert_int_equal(idm_send_timed(f->cli, &h, a, room, NULL, 0, 0), -EAGAIN); /* 3 free */
    assert_int_equal(recv_u64(f->srv, 3), 3);
    assert_int_equal(idm_send_timed(f->cli, &h, a, room, NULL, 0, 0), 0);
    for (uint64_t i = 4; i < 13; i++)
        assert_int_equal(recv_u64(f->srv, i), i);
    idm_msg_init(&m);
    assert_int_equal(idm_recv(f->srv, &m, 10000), 0);
    assert_int_equal(m.hdr.seq, 101);
    assert_memory_equal(m.payload, a, 3 * 128 - sizeof h);
    assert_int_equal(idm_recv(f->srv, &m, 10000), 0);
    assert_int_equal(m.hdr.seq, 102);
    assert_int_equal(m.hdr.len, room);
    assert_memory_equal(m.payload, a, room);
    assert_int_equal(idm_recv(f->srv, &m, 0), -EAGAIN);
    idm_msg_free(&m);
}

static void *publish_later(void *arg)
{
    struct idm_conn *srv = arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(idm_release_publish(srv, 3), 0);
    return NULL;
}

/* The window release mark: messages are numbered 1, 2, 3 on both sides; the server's mark is
 * what the client reads, never more than it sent; a client waiting for a mark not yet there
 * times out, or sleeps (no spinning) until the server publishes it and rings its doorbell. */
static void test_conn_release_mark(void **state)
{
    struct fixture *f = *state;
    struct idm_msg m;
    pthread_t t;

    idm_msg_init(&m);
    assert_int_equal(idm_release_mark(f->cli), 0);
    for (uint64_t i = 1; i <= 3; i++) {
        send_u64(f->cli, IDM_OP_MEMCPY_HTOD, 10 + i, i);
        assert_int_equal(idm_tx_count(f->cli), i);
        assert_int_equal(idm_recv(f->srv, &m, 10000), 0);
        assert_int_equal(m.idx, i);
    }
    assert_int_equal(idm_release_publish(f->srv, 2), 0);
    assert_int_equal(idm_release_publish(f->srv, 1), 0); /* never backwards */
    assert_int_equal(idm_release_mark(f->cli), 2);
    assert_int_equal(idm_release_wait(f->cli, 2, 0), 0);
    assert_int_equal(idm_release_wait(f->cli, 3, 0), -EAGAIN);
    assert_int_equal(idm_release_wait(f->cli, 3, 30), -EAGAIN);
    idm_conn_set_spin(f->cli, 0);
    assert_int_equal(pthread_create(&t, NULL, publish_later, f->srv), 0);
    assert_int_equal(idm_release_wait(f->cli, 3, 10000), 0);
    pthread_join(t, NULL);
    assert_int_equal(idm_release_mark(f->cli), 3);
    /* the connection still carries messages both ways */
    send_u64(f->srv, IDM_OP_HELLO, 7, 7);
    assert_int_equal(recv_u64(f->cli, 7), 7);
    idm_msg_free(&m);
}

/* A client that rewrites the shared mark fools only itself: the server never reads it (its
 * next mark is its own), and the client, seeing a mark beyond the requests it sent, takes it
 * for a peer fault and stops. */
static void test_conn_hostile_release_mark(void **state)
{
    struct fixture *f = *state;
    struct idm_ctrl *ctrl = (struct idm_ctrl *)f->cli->base;

    send_u64(f->cli, IDM_OP_MEMCPY_HTOD, 1, 1);
    assert_int_equal(recv_u64(f->srv, 1), 1);
    atomic_store(&ctrl->mark.released, UINT64_MAX);
    assert_int_equal(idm_release_publish(f->srv, 1), 0);
    assert_int_equal(atomic_load(&ctrl->mark.released), 1);
    assert_int_equal(idm_release_mark(f->cli), 1);
    atomic_store(&ctrl->mark.released, 5); /* beyond the one request sent */
    assert_int_equal(idm_release_mark(f->cli), -EPROTO);
    assert_non_null(strstr(idm_conn_error(f->cli), "release mark"));
    assert_int_equal(idm_release_wait(f->cli, 1, 0), -EPROTO);
}

/* 200 requests in flight, answered in a scrambled order; the client matches replies by seq. */
static void test_conn_inflight_out_of_order(void **state)
{
    struct fixture *f = *state;
    enum { N = 200 };
    for (uint64_t s = 1; s <= N; s++) {
        struct idm_req_MEM_ALLOC req = {.ctx = 1, .size = s * 4096};
        struct idm_hdr h = {.op = IDM_OP_MEM_ALLOC, .seq = s, .flags = IDM_F_ASYNC};
        assert_int_equal(idm_send(f->cli, &h, &req, sizeof(req), NULL, 0), 0);
    }
    struct idm_msg m;
    idm_msg_init(&m);
    uint64_t seqs[N], sizes[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(idm_recv(f->srv, &m, 10000), 0);
        struct idm_req_MEM_ALLOC req;
        memcpy(&req, m.payload, sizeof(req));
        seqs[i] = m.hdr.seq;
        sizes[i] = req.size;
        assert_int_equal(seqs[i], (uint64_t)i + 1);
    }
    /* Reply in the order 7k mod 200 (a permutation since gcd(7, 200) = 1). */
    for (int k = 0; k < N; k++) {
        int i = (k * 7) % N;
        struct idm_rep_MEM_ALLOC rep = {.dptr = sizes[i] + 1};
        struct idm_hdr h = {.op = IDM_OP_MEM_ALLOC, .seq = seqs[i], .flags = IDM_F_REPLY};
        assert_int_equal(idm_send(f->srv, &h, &rep, sizeof(rep), NULL, 0), 0);
    }
    int seen[N + 1] = {0};
    for (int k = 0; k < N; k++) {
        assert_int_equal(idm_recv(f->cli, &m, 10000), 0);
        assert_true(m.hdr.flags & IDM_F_REPLY);
        uint64_t s = m.hdr.seq;
        assert_true(s >= 1 && s <= N);
        assert_int_equal(s, (uint64_t)((k * 7) % N) + 1);
        struct idm_rep_MEM_ALLOC rep;
        memcpy(&rep, m.payload, sizeof(rep));
        assert_int_equal(rep.dptr, s * 4096 + 1);
        seen[s]++;
    }
    for (int s = 1; s <= N; s++)
        assert_int_equal(seen[s], 1);
    assert_int_equal(idm_recv(f->cli, &m, 0), -EAGAIN);
    idm_msg_free(&m);
}

struct sender_arg {
    struct idm_conn *c;
    uint32_t id;
    int rc;
};

enum { SENDERS = 4, PER_SENDER = 5000 };

static void *sender_main(void *arg)
{
    struct sender_arg *sa = arg;
    for (uint64_t i = 0; i < PER_SENDER; i++) {
        uint64_t v[2] = {sa->id, i};
        struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = ((uint64_t)sa->id << 32) | i};
        int rc = idm_send(sa->c, &h, v, sizeof(v), NULL, 0);
        if (rc < 0) {
            sa->rc = rc;
            return NULL;
        }
    }
    return NULL;
}

/* Several threads send on one connection (through a small ring, so they wait for space); every
 * message arrives once, each thread's in its own order. */
static void test_conn_concurrent_senders(void **state)
{
    struct fixture *f = *state;
    pthread_t th[SENDERS];
    struct sender_arg sa[SENDERS];
    for (uint32_t t = 0; t < SENDERS; t++) {
        sa[t] = (struct sender_arg){.c = f->cli, .id = t};
        assert_int_equal(pthread_create(&th[t], NULL, sender_main, &sa[t]), 0);
    }
    uint64_t next[SENDERS] = {0};
    struct idm_msg m;
    idm_msg_init(&m);
    for (int n = 0; n < SENDERS * PER_SENDER; n++) {
        assert_int_equal(idm_recv(f->srv, &m, 10000), 0);
        uint64_t v[2];
        assert_int_equal(m.hdr.len, sizeof(v));
        memcpy(v, m.payload, sizeof(v));
        assert_true(v[0] < SENDERS);
        assert_int_equal(v[1], next[v[0]]);
        assert_int_equal(m.hdr.seq, (v[0] << 32) | v[1]);
        next[v[0]]++;
    }
    for (uint32_t t = 0; t < SENDERS; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(sa[t].rc, 0);
        assert_int_equal(next[t], PER_SENDER);
    }
    assert_int_equal(idm_recv(f->srv, &m, 0), -EAGAIN);
    idm_msg_free(&m);
}

struct echo_arg {
    struct idm_conn *c;
    int n;
    int rc;
};

static void *echo_server_main(void *arg)
{
    struct echo_arg *ea = arg;
    struct idm_msg m;
    idm_msg_init(&m);
    for (int i = 0; i < ea->n; i++) {
        int rc = idm_recv(ea->c, &m, 10000);
        if (rc == 0) {
            m.hdr.flags |= IDM_F_REPLY;
            rc = idm_send(ea->c, &m.hdr, m.payload, m.hdr.len, NULL, 0);
        }
        if (rc < 0) {
            ea->rc = rc;
            break;
        }
    }
    idm_msg_free(&m);
    return NULL;
}

static void *client_sender_main(void *arg)
{
    struct echo_arg *ea = arg;
    for (int i = 0; i < ea->n; i++) {
        uint64_t v = (uint64_t)i * 11;
        struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = (uint64_t)i};
        int rc = idm_send(ea->c, &h, &v, sizeof(v), NULL, 0);
        if (rc < 0) {
            ea->rc = rc;
            break;
        }
    }
    return NULL;
}

/* One client thread sends (often blocked on the full 4-slot ring) while another receives
 * replies (often asleep) on the same connection: both sleep on the one doorbell, and neither
 * may miss its wake-up. */
static void test_conn_send_recv_threads(void **state)
{
    struct fixture *f = *state;
    enum { N = 20000 };
    idm_conn_set_spin(f->cli, 0); /* sleep at once: exercises the doorbell hand-off */
    idm_conn_set_spin(f->srv, 0);
    struct echo_arg srv = {.c = f->srv, .n = N}, snd = {.c = f->cli, .n = N};
    pthread_t ts, tc;
    assert_int_equal(pthread_create(&ts, NULL, echo_server_main, &srv), 0);
    assert_int_equal(pthread_create(&tc, NULL, client_sender_main, &snd), 0);
    struct idm_msg m;
    idm_msg_init(&m);
    for (int i = 0; i < N; i++) {
        assert_int_equal(idm_recv(f->cli, &m, 10000), 0);
        assert_int_equal(m.hdr.seq, (uint64_t)i);
        assert_true(m.hdr.flags & IDM_F_REPLY);
        uint64_t v;
        memcpy(&v, m.payload, sizeof(v));
        assert_int_equal(v, (uint64_t)i * 11);
    }
    pthread_join(tc, NULL);
    pthread_join(ts, NULL);
    assert_int_equal(snd.rc, 0);
    assert_int_equal(srv.rc, 0);
    idm_msg_free(&m);
}

/* The same through a 256-slot ring: a sender sleeping on the full ring is woken once a quarter
 * of it is free, never left asleep (the receiver's timeouts would fail the test). */
static void test_conn_send_recv_threads_full_ring(void **state)
{
    test_conn_send_recv_threads(state);
}

/* idm_recv_ready says whether a message waits, without consuming it. */
static void test_conn_recv_ready(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(idm_recv_ready(f->srv), 0);
    send_u64(f->cli, IDM_OP_HELLO, 1, 11);
    assert_int_equal(idm_recv_ready(f->srv), 1);
    assert_int_equal(idm_recv_ready(f->srv), 1);
    assert_int_equal(recv_u64(f->srv, 1), 11);
    assert_int_equal(idm_recv_ready(f->srv), 0);
}

static int fd_readable(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms);
    assert_true(n >= 0);
    return n > 0 && (pfd.revents & POLLIN);
}

/* The server-loop rule: poll idm_conn_fd, then drain with idm_recv(0) until -EAGAIN; after
 * that the fd is quiet until the next message, and it fires for peer death too. */
static void test_conn_fd_rule(void **state)
{
    struct fixture *f = *state;
    int fd = idm_conn_fd(f->srv);
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(f->srv, &m, 0), -EAGAIN); /* arms the doorbell */
    assert_false(fd_readable(fd, 0));
    for (int round = 0; round < 50; round++) {
        send_u64(f->cli, IDM_OP_HELLO, (uint64_t)round, 1);
        send_u64(f->cli, IDM_OP_HELLO, (uint64_t)round, 2);
        assert_true(fd_readable(fd, 10000));
        int got = 0, rc;
        while ((rc = idm_recv(f->srv, &m, 0)) == 0)
            got++;
        assert_int_equal(rc, -EAGAIN);
        assert_int_equal(got, 2);
        assert_false(fd_readable(fd, 0));
    }
    /* The client goes away: the fd fires and the server reads -EPIPE. */
    idm_close(f->cli);
    f->cli = NULL;
    assert_true(fd_readable(fd, 10000));
    assert_int_equal(idm_recv(f->srv, &m, 0), -EPIPE);
    assert_int_equal(idm_recv(f->srv, &m, -1), -EPIPE);
    struct idm_hdr h = {.op = IDM_OP_HELLO};
    assert_int_equal(idm_send(f->srv, &h, NULL, 0, NULL, 0), -EPIPE);
    assert_true(strlen(idm_conn_error(f->srv)) > 0);
    idm_msg_free(&m);
}

/* A fresh connection's fd fires for the first message, before the server ever called
 * idm_recv on it. */
static void test_conn_fd_first_message(void **state)
{
    struct fixture *f = *state;
    int fd = idm_conn_fd(f->srv);
    assert_false(fd_readable(fd, 0));
    send_u64(f->cli, IDM_OP_HELLO, 1, 2);
    assert_true(fd_readable(fd, 10000));
    assert_int_equal(recv_u64(f->srv, 1), 2);
    /* The same holds for the client's first reply. */
    int cfd = idm_conn_fd(f->cli);
    assert_false(fd_readable(cfd, 0));
    send_u64(f->srv, IDM_OP_HELLO, 1, 3);
    assert_true(fd_readable(cfd, 10000));
    assert_int_equal(recv_u64(f->cli, 1), 3);
}

/* A single-threaded server that waits for reply space (the client is slow to drain) must not
 * swallow the doorbell of a request that arrives meanwhile: its fd stays readable. */
static void test_conn_fd_rule_send_wait(void **state)
{
    struct fixture *f = *state;
    int fd = idm_conn_fd(f->srv);
    struct idm_msg m;
    idm_msg_init(&m);
    idm_conn_set_spin(f->srv, 0);
    assert_int_equal(idm_recv(f->srv, &m, 0), -EAGAIN); /* armed, as in a server loop */
    for (uint64_t i = 0; i < 4; i++)
        send_u64(f->srv, IDM_OP_HELLO, i, i); /* the reply ring is now full */
    send_u64(f->cli, IDM_OP_HELLO, 100, 5);  /* rings the server's doorbell */
    struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = 4, .flags = IDM_F_REPLY};
    assert_int_equal(idm_send_timed(f->srv, &h, NULL, 0, NULL, 0, 20), -EAGAIN);
    assert_true(fd_readable(fd, 0));
    assert_int_equal(recv_u64(f->srv, 100), 5);
    assert_int_equal(idm_recv(f->srv, &m, 0), -EAGAIN);
    assert_false(fd_readable(fd, 0));
    idm_msg_free(&m);
    assert_string_equal(idm_conn_error(f->srv), "");
}

/* Both sides map the same window; the range check refuses everything outside it. */
static void test_conn_window(void **state)
{
    struct fixture *f = *state;
    uint64_t ssize = 0, csize = 0;
    uint8_t *sw = idm_window(f->srv, &ssize);
    uint8_t *cw = idm_window(f->cli, &csize);
    assert_non_null(sw);
    assert_non_null(cw);
    assert_int_equal(ssize, 8192);
    assert_int_equal(csize, 8192);
    for (size_t i = 0; i < csize; i++)
        cw[i] = (uint8_t)(i * 13);
    for (size_t i = 0; i < ssize; i++)
        assert_int_equal(sw[i], (uint8_t)(i * 13));

    const uint64_t W = 8192;
    assert_int_equal(idm_window_check(f->srv, 0, W), 0);
    assert_int_equal(idm_window_check(f->srv, 0, 0), 0);
    assert_int_equal(idm_window_check(f->srv, W, 0), 0);
    assert_int_equal(idm_window_check(f->srv, W - 1, 1), 0);
    assert_int_equal(idm_window_check(f->srv, 100, W - 100), 0);
    assert_int_equal(idm_window_check(f->srv, W, 1), -ERANGE);
    assert_int_equal(idm_window_check(f->srv, W + 1, 0), -ERANGE);
    assert_int_equal(idm_window_check(f->srv, 1, W), -ERANGE);
    assert_int_equal(idm_window_check(f->srv, 0, W + 1), -ERANGE);
    assert_int_equal(idm_window_check(f->srv, UINT64_MAX, 2), -ERANGE);
    assert_int_equal(idm_window_check(f->srv, 2, UINT64_MAX), -ERANGE);
    assert_int_equal(idm_window_check(f->srv, UINT64_MAX, UINT64_MAX), -ERANGE);
    assert_int_equal(idm_window_check(f->srv, UINT64_MAX - W + 2, W), -ERANGE);
    assert_int_equal(idm_window_check(NULL, 0, 0), -EINVAL);
}

/* ---- hostile peers: the client's side of the shared memory is rewritten behind its back ---- */

static struct idm_ctrl *ctrl_of(struct idm_conn *c)
{
    return (struct idm_ctrl *)c->base;
}

/* After the victim died, a second connection on the same listener still works. */
static void check_other_connection_works(struct fixture *f)
{
    struct idm_conn *srv2 = NULL, *cli2 = NULL;
    assert_int_equal(test_pair(f->l, f->path, &srv2, &cli2), 0);
    send_u64(cli2, IDM_OP_HELLO, 77, 1234);
    assert_int_equal(recv_u64(srv2, 77), 1234);
    send_u64(srv2, IDM_OP_HELLO, 78, 4321);
    assert_int_equal(recv_u64(cli2, 78), 4321);
    idm_close(cli2);
    idm_close(srv2);
}

static void expect_dead(struct idm_conn *srv, const char *why)
{
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(srv, &m, 0), -EPROTO);
    assert_non_null(strstr(idm_conn_error(srv), why));
    assert_int_equal(idm_recv(srv, &m, 0), -EPROTO);
    struct idm_hdr h = {.op = IDM_OP_HELLO};
    assert_int_equal(idm_send(srv, &h, NULL, 0, NULL, 0), -EPROTO);
    idm_msg_free(&m);
}

/* The faulty peer is cut off: it sees the connection gone. */
static void expect_cut_off(struct idm_conn *cli)
{
    struct idm_msg m;
    idm_msg_init(&m);
    int rc;
    while ((rc = idm_recv(cli, &m, 10000)) == 0)
        ; /* replies sent before the fault */
    assert_int_equal(rc, -EPIPE);
    idm_msg_free(&m);
}

static void test_conn_hostile_prod_index(void **state)
{
    struct fixture *f = *state;
    send_u64(f->cli, IDM_OP_HELLO, 1, 1);
    assert_int_equal(recv_u64(f->srv, 1), 1);
    /* The producer claims more messages than the ring holds. */
    atomic_store(&ctrl_of(f->cli)->req.prod, 1 + 4 + 1);
    expect_dead(f->srv, "impossible");
    expect_cut_off(f->cli);
    check_other_connection_works(f);
}

static void test_conn_hostile_prod_behind(void **state)
{
    struct fixture *f = *state;
    send_u64(f->cli, IDM_OP_HELLO, 1, 1);
    assert_int_equal(recv_u64(f->srv, 1), 1);
    atomic_store(&ctrl_of(f->cli)->req.prod, 0); /* behind the consumer */
    expect_dead(f->srv, "impossible");
    expect_cut_off(f->cli);
    check_other_connection_works(f);
}

static void test_conn_hostile_magic(void **state)
{
    struct fixture *f = *state;
    send_u64(f->cli, IDM_OP_HELLO, 1, 1);
    uint8_t *slot = f->cli->base + f->cli->layout.req_off; /* slot 0 */
    uint32_t bad = 0x12345678;
    memcpy(slot + offsetof(struct idm_hdr, magic), &bad, sizeof(bad));
    expect_dead(f->srv, "magic");
    expect_cut_off(f->cli);
    check_other_connection_works(f);
}

static void test_conn_hostile_version(void **state)
{
    struct fixture *f = *state;
    send_u64(f->cli, IDM_OP_HELLO, 1, 1);
    uint8_t *slot = f->cli->base + f->cli->layout.req_off;
    uint16_t bad = 99;
    memcpy(slot + offsetof(struct idm_hdr, version), &bad, sizeof(bad));
    expect_dead(f->srv, "version");
}

static void test_conn_hostile_len(void **state)
{
    struct fixture *f = *state;
    send_u64(f->cli, IDM_OP_HELLO, 1, 1);
    send_u64(f->cli, IDM_OP_HELLO, 2, 2);
    assert_int_equal(recv_u64(f->srv, 1), 1);
    uint8_t *slot = f->cli->base + f->cli->layout.req_off + 128; /* slot 1 */
    uint32_t bad = 128 - 32 + 1;
    memcpy(slot + offsetof(struct idm_hdr, len), &bad, sizeof(bad));
    expect_dead(f->srv, "length");
    expect_cut_off(f->cli);
    check_other_connection_works(f);
}

/* A header that claims more slots than its producer published (a one-slot message rewritten to
 * a two-slot length): the receiver does not read past the published index, it cuts the peer. */
static void test_conn_hostile_multislot_unpublished(void **state)
{
    struct fixture *f = *state;
    send_u64(f->cli, IDM_OP_HELLO, 1, 1);
    uint8_t *slot = f->cli->base + f->cli->layout.req_off;
    uint32_t bad = 200; /* within idm_max_payload, two slots */
    memcpy(slot + offsetof(struct idm_hdr, len), &bad, sizeof(bad));
    expect_dead(f->srv, "without all its slots");
    expect_cut_off(f->cli);
    check_other_connection_works(f);
}

/* One byte over the multi-slot limit is a peer fault, like one over a slot in one-slot rings. */
static void test_conn_hostile_multislot_len(void **state)
{
    struct fixture *f = *state;
    uint8_t a[480] = {0};
    struct idm_hdr h = {.op = IDM_OP_MEMCPY_HTOD, .seq = 1};
    assert_int_equal(idm_send(f->cli, &h, a, sizeof a, NULL, 0), 0);
    uint8_t *slot = f->cli->base + f->cli->layout.req_off;
    uint32_t bad = 481;
    memcpy(slot + offsetof(struct idm_hdr, len), &bad, sizeof(bad));
    expect_dead(f->srv, "length");
}

static void test_conn_hostile_len_huge(void **state)
{
    struct fixture *f = *state;
    send_u64(f->cli, IDM_OP_HELLO, 1, 1);
    uint8_t *slot = f->cli->base + f->cli->layout.req_off;
    uint32_t bad = UINT32_MAX;
    memcpy(slot + offsetof(struct idm_hdr, len), &bad, sizeof(bad));
    expect_dead(f->srv, "length");
}

/* The consumer of the reply ring (the client) publishes an impossible index: the server's send
 * that must look at it fails with -EPROTO. */
static void test_conn_hostile_cons_index(void **state)
{
    struct fixture *f = *state;
    for (uint64_t i = 0; i < 4; i++)
        send_u64(f->srv, IDM_OP_HELLO, i, i);
    atomic_store(&ctrl_of(f->cli)->rep.cons, 4 + 100);
    struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = 5};
    assert_int_equal(idm_send_timed(f->srv, &h, NULL, 0, NULL, 0, 0), -EPROTO);
    assert_non_null(strstr(idm_conn_error(f->srv), "impossible"));
    struct idm_msg m;
    idm_msg_init(&m);
    assert_int_equal(idm_recv(f->srv, &m, 0), -EPROTO);
    idm_msg_free(&m);
    expect_cut_off(f->cli);
    check_other_connection_works(f);
}

/* Geometry in the control page is rewritten after attach: the private copy is what counts, so
 * traffic goes on unaffected. */
static void test_conn_hostile_geometry_ignored(void **state)
{
    struct fixture *f = *state;
    ctrl_of(f->cli)->ring_slots = 1u << 30;
    ctrl_of(f->cli)->slot_size = 7;
    ctrl_of(f->cli)->window_size = UINT64_MAX;
    for (uint64_t i = 0; i < 20; i++) {
        send_u64(f->cli, IDM_OP_HELLO, i, i + 5);
        assert_int_equal(recv_u64(f->srv, i), i + 5);
    }
    assert_int_equal(idm_conn_geometry(f->srv)->ring_slots, 4);
    assert_int_equal(idm_window_check(f->srv, 8192, 1), -ERANGE);
}

struct scribbler {
    struct idm_conn *cli;
    atomic_int stop;
};

static void *scribble_main(void *arg)
{
    struct scribbler *s = arg;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    uint8_t *ring = s->cli->base + s->cli->layout.req_off;
    struct idm_ctrl *ctrl = ctrl_of(s->cli);
    while (!atomic_load(&s->stop)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        switch (x % 3) {
        case 0:
            atomic_store(&ctrl->req.prod, (uint32_t)(x >> 32));
            break;
        case 1:
            memcpy(ring + ((x >> 8) % (4 * 128 - 8)), &x, sizeof(x));
            break;
        default:
            atomic_store(&ctrl->req.prod, atomic_load(&ctrl->req.cons) + (uint32_t)(x >> 61));
            break;
        }
    }
    return NULL;
}

/* A thread scribbles over the request ring and its producer index while the server receives:
 * the server never crashes, and the connection ends with -EPROTO. */
static void test_conn_hostile_scribbler(void **state)
{
    struct fixture *f = *state;
    struct scribbler s = {.cli = f->cli};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, scribble_main, &s), 0);
    struct idm_msg m;
    idm_msg_init(&m);
    int rc;
    long i = 0;
    do {
        rc = idm_recv(f->srv, &m, 1);
        if (rc == 0) {
            assert_true(m.hdr.len <= 128 - 32);
            assert_int_equal(m.hdr.magic, IDM_MAGIC);
        }
    } while ((rc == 0 || rc == -EAGAIN) && ++i < 10000000);
    atomic_store(&s.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(rc, -EPROTO);
    assert_true(strlen(idm_conn_error(f->srv)) > 0);
    idm_msg_free(&m);
    check_other_connection_works(f);
}

/* ---- listener and connect errors ---- */

static void test_conn_listen_errors(void **state)
{
    (void)state;
    char path[256];
    test_sock_path(path, sizeof(path), "err");
    struct idm_listener *l;
    struct idm_conn_config bad = {.ring_slots = 3};
    assert_int_equal(idm_transport_posix.listen(path, &bad, &l), -EINVAL);
    bad = (struct idm_conn_config){.slot_size = 64};
    assert_int_equal(idm_transport_posix.listen(path, &bad, &l), -EINVAL);
    bad = (struct idm_conn_config){.window_size = 4097};
    assert_int_equal(idm_transport_posix.listen(path, &bad, &l), -EINVAL);
    /* No server: connect fails cleanly. */
    struct idm_conn *c;
    assert_true(idm_transport_posix.connect(path, &c) < 0);
    /* A stale socket is replaced; the socket is private to the owner. */
    assert_int_equal(idm_transport_posix.listen(path, NULL, &l), 0);
    struct idm_listener *l2;
    assert_int_equal(idm_transport_posix.listen(path, NULL, &l2), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    idm_transport_posix.listener_close(l);  /* not its socket any more: leaves the path */
    assert_int_equal(stat(path, &st), 0);
    idm_transport_posix.listener_close(l2);
    assert_int_equal(stat(path, &st), -1);
    /* A path that is not a socket is left alone. */
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(idm_transport_posix.listen(path, NULL, &l), -EEXIST);
    assert_int_equal(idm_transport_posix.accept == NULL, 0);
    assert_ptr_equal(idm_transport_by_name("posix"), &idm_transport_posix);
    assert_null(idm_transport_by_name("nope"));
    test_sock_cleanup(path);
}

/* ---- a fake server hands the client bad shared memory: connect refuses it ---- */

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

enum fake_kind { FAKE_BAD_GEOMETRY, FAKE_UNSEALED, FAKE_TWO_FDS, FAKE_SIZE_MISMATCH, FAKE_OK };

struct fake_server {
    char path[256];
    int lfd;
    enum fake_kind kind;
};

static void *fake_server_main(void *arg)
{
    struct fake_server *fs = arg;
    int s = accept(fs->lfd, NULL, NULL);
    if (s < 0)
        return NULL;
    struct idm_conn_config cfg = {.ring_slots = 4, .slot_size = 128, .window_size = 4096};
    struct idm_layout lay;
    if (idm_layout_compute(&cfg, &lay) != 0)
        abort();
    int memfd = memfd_create("fake", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0 || ftruncate(memfd, (off_t)lay.total) != 0)
        abort();
    void *base = mmap(NULL, lay.total, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (base == MAP_FAILED || idm_shm_init(base, lay.total, &cfg, 0) != 0)
        abort();
    if (fs->kind == FAKE_BAD_GEOMETRY)
        ((struct idm_ctrl *)base)->slot_size = 3;
    if (fs->kind != FAKE_UNSEALED && fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) != 0)
        abort();
    int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC);
    struct {
        uint32_t magic, version;
        uint64_t size;
    } hello = {0x4F4C4548u, IDM_PROTOCOL_VERSION,
               fs->kind == FAKE_SIZE_MISMATCH ? lay.total + 4096 : lay.total};
    struct iovec iov = {.iov_base = &hello, .iov_len = sizeof(hello)};
    union {
        char buf[CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } cm;
    memset(&cm, 0, sizeof(cm));
    int nfd = fs->kind == FAKE_TWO_FDS ? 2 : 3;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                         .msg_controllen = CMSG_SPACE(nfd * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfd * sizeof(int));
    int fds[3] = {memfd, e1, e2};
    memcpy(CMSG_DATA(c), fds, nfd * sizeof(int));
    if (sendmsg(s, &msg, MSG_NOSIGNAL) < 0)
        abort();
    /* Wait for the client to give up, then clean up. */
    char b;
    while (read(s, &b, 1) > 0)
        ;
    munmap(base, lay.total);
    close(memfd);
    close(e1);
    close(e2);
    close(s);
    return NULL;
}

static int fake_connect(enum fake_kind kind)
{
    struct fake_server fs = {.kind = kind};
    test_sock_path(fs.path, sizeof(fs.path), "fake");
    fs.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fs.lfd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, fs.path);
    assert_int_equal(bind(fs.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fs.lfd, 1), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fake_server_main, &fs), 0);
    struct idm_conn *c = NULL;
    int rc = idm_transport_posix.connect(fs.path, &c);
    if (rc == 0)
        idm_close(c);
    pthread_join(th, NULL);
    close(fs.lfd);
    test_sock_cleanup(fs.path);
    return rc;
}

static void test_conn_connect_validates(void **state)
{
    (void)state;
    assert_int_equal(fake_connect(FAKE_OK), 0); /* the fake server itself is right */
    assert_int_equal(fake_connect(FAKE_BAD_GEOMETRY), -EPROTO);
    assert_int_equal(fake_connect(FAKE_UNSEALED), -EPROTO);
    assert_int_equal(fake_connect(FAKE_TWO_FDS), -EPROTO);
    assert_int_equal(fake_connect(FAKE_SIZE_MISMATCH), -EPROTO);
}

int main(void)
{
    if (!getenv("IDM_LOG"))
        idm_log_set_level(IDM_LOG_OFF); /* hostile tests log errors by design; IDM_LOG=warn shows them */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conn_roundtrip, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_conn_geometry_and_peer, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_defaults, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_conn_empty, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_full, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_wraparound, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_msgsize, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_multislot, setup_multi, teardown),
        cmocka_unit_test_setup_teardown(test_conn_multislot_full, setup_multi, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_multislot_unpublished, setup_multi,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_multislot_len, setup_multi, teardown),
        cmocka_unit_test_setup_teardown(test_conn_release_mark, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_release_mark, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_inflight_out_of_order, setup_default, teardown),
        cmocka_unit_test_setup_teardown(test_conn_concurrent_senders, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_send_recv_threads, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_send_recv_threads_full_ring, setup_default,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_recv_ready, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_fd_first_message, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_fd_rule, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_fd_rule_send_wait, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_window, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_prod_index, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_prod_behind, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_magic, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_version, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_len, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_len_huge, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_cons_index, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_geometry_ignored, setup_small,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_hostile_scribbler, setup_small, teardown),
        cmocka_unit_test(test_conn_listen_errors),
        cmocka_unit_test(test_conn_connect_validates),
    };
    return cmocka_run_group_tests_name("idm_conn", tests, NULL, NULL);
}
