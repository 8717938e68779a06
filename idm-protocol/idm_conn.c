/* idm_conn.c - the transport-independent half of a connection: shared-memory layout, attach,
 * sending and receiving over the two rings with validation of everything the peer wrote,
 * adaptive waiting (spin, then sleep on the transport's doorbell with notification hold-off),
 * the window range check and the connection's error state. */
#include "idm_conn_internal.h"
#include "idm_log.h"

#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IDM_SPIN_US_DEFAULT 50u
#define IDM_SPIN_US_MAX 1000000u

/* Copies bytes the peer may be rewriting into private memory. The compiler barrier after the
 * copy keeps the compiler from re-reading shared memory in place of the private copy later
 * (a compiler-made double fetch); only the copy is validated and used. */
static void copy_from_shared(void *dst, const void *src, size_t n)
{
    memcpy(dst, src, n);
    atomic_signal_fence(memory_order_seq_cst);
}

/* ---- geometry and layout ---- */

static int is_pow2_u64(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static uint64_t page_align(uint64_t x)
{
    return (x + IDM_PAGE_SIZE - 1) & ~(uint64_t)(IDM_PAGE_SIZE - 1);
}

void idm_conn_config_defaults(struct idm_conn_config *cfg)
{
    if (cfg->ring_slots == 0)
        cfg->ring_slots = IDM_RING_SLOTS_DEFAULT;
    if (cfg->slot_size == 0)
        cfg->slot_size = IDM_SLOT_SIZE_DEFAULT;
    if (cfg->window_size == 0)
        cfg->window_size = IDM_WINDOW_SIZE_DEFAULT;
}

int idm_layout_compute(const struct idm_conn_config *cfg, struct idm_layout *out)
{
    if (!cfg || !out)
        return -EINVAL;
    if (!is_pow2_u64(cfg->ring_slots) || cfg->ring_slots < IDM_RING_SLOTS_MIN ||
        cfg->ring_slots > IDM_RING_SLOTS_MAX) {
        IDM_DEBUG("geometry: ring_slots %u is not a power of two in [%u, %u]",
                  (unsigned)cfg->ring_slots, IDM_RING_SLOTS_MIN, IDM_RING_SLOTS_MAX);
        return -EINVAL;
    }
    if (!is_pow2_u64(cfg->slot_size) || cfg->slot_size < IDM_SLOT_SIZE_MIN ||
        cfg->slot_size > IDM_SLOT_SIZE_MAX) {
        IDM_DEBUG("geometry: slot_size %u is not a power of two in [%u, %u]",
                  (unsigned)cfg->slot_size, IDM_SLOT_SIZE_MIN, IDM_SLOT_SIZE_MAX);
        return -EINVAL;
    }
    if (cfg->window_size < IDM_PAGE_SIZE || cfg->window_size % IDM_PAGE_SIZE != 0 ||
        cfg->window_size > IDM_WINDOW_SIZE_MAX) {
        IDM_DEBUG("geometry: window_size %llu is not a multiple of %u in [%u, %llu]",
                  (unsigned long long)cfg->window_size, IDM_PAGE_SIZE, IDM_PAGE_SIZE,
                  (unsigned long long)IDM_WINDOW_SIZE_MAX);
        return -EINVAL;
    }
    /* At most 4096 * 65536 = 256 MiB per ring: no overflow below. */
    out->ring_bytes = (uint64_t)cfg->ring_slots * cfg->slot_size;
    out->req_off = IDM_PAGE_SIZE;
    out->rep_off = out->req_off + page_align(out->ring_bytes);
    out->win_off = out->rep_off + page_align(out->ring_bytes);
    out->total = out->win_off + cfg->window_size;
    return 0;
}

int idm_shm_init(void *base, size_t size, const struct idm_conn_config *cfg, uint32_t start)
{
    struct idm_layout lay;
    int rc = idm_layout_compute(cfg, &lay);
    if (rc < 0)
        return rc;
    if (!base || size < lay.total)
        return -EINVAL;
    struct idm_ctrl *ctrl = base;
    memset(ctrl, 0, IDM_PAGE_SIZE);
    ctrl->magic = IDM_CTRL_MAGIC;
    ctrl->version = IDM_CTRL_VERSION;
    ctrl->proto = IDM_PROTOCOL_VERSION;
    ctrl->ring_slots = cfg->ring_slots;
    ctrl->slot_size = cfg->slot_size;
    ctrl->window_size = cfg->window_size;
    ctrl->req_off = lay.req_off;
    ctrl->rep_off = lay.rep_off;
    ctrl->win_off = lay.win_off;
    ctrl->total_size = lay.total;
    struct idm_ring scratch;
    idm_ring_init(&scratch, &ctrl->req, (uint8_t *)base + lay.req_off, cfg->ring_slots,
                  cfg->slot_size, start, 1);
    idm_ring_init(&scratch, &ctrl->rep, (uint8_t *)base + lay.rep_off, cfg->ring_slots,
                  cfg->slot_size, start, 1);
    /* Both consumers start asleep: the first message of each direction rings the doorbell,
     * so a server polling idm_conn_fd of a fresh connection hears it. */
    atomic_store_explicit(&ctrl->req.cons_sleeping, 1, memory_order_relaxed);
    atomic_store_explicit(&ctrl->rep.cons_sleeping, 1, memory_order_relaxed);
    return 0;
}

/* ---- connection state ---- */

static uint32_t spin_default(void)
{
    static _Atomic int64_t cached = -1;
    int64_t v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v >= 0)
        return (uint32_t)v;
    const char *env = getenv("IDM_SPIN_US");
    if (env && *env) {
        char *end = NULL;
        errno = 0;
        unsigned long long x = strtoull(env, &end, 10);
        if (errno == 0 && end && *end == '\0') {
            v = x > IDM_SPIN_US_MAX ? IDM_SPIN_US_MAX : (int64_t)x;
        } else {
            IDM_WARN("IDM_SPIN_US=\"%s\" is not a number of microseconds; using the default",
                     env);
        }
    }
    if (v < 0) {
        /* The machine's online CPUs, not this process's affinity: a peer on another CPU answers
         * while we spin even when we are pinned to one (a proxy under CPUAffinity=, a pod with
         * a one-CPU cpuset). sysconf reads /sys, so this runs at load (spin_init), before a
         * server enters its sandbox. */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        v = ncpu > 1 ? IDM_SPIN_US_DEFAULT : 0;
    }
    atomic_store_explicit(&cached, v, memory_order_relaxed);
    return (uint32_t)v;
}

/* Settles the default spin budget when the library is loaded, while files can still be read. */
__attribute__((constructor)) static void spin_init(void)
{
    (void)spin_default();
}

/* Slots one message may span in this geometry: a quarter of the ring at most (a sender waiting
 * for that many is woken once a quarter is free: rx_kick_producer), at least one, and beyond
 * one slot no more than IDM_MSG_BYTES_MAX bytes. */
static uint32_t msg_slots_max(const struct idm_conn_config *g)
{
    uint32_t n = g->ring_slots / 4;
    uint32_t by_bytes = IDM_MSG_BYTES_MAX / g->slot_size;

    if (n > by_bytes)
        n = by_bytes;
    return n > 0 ? n : 1;
}

int idm_conn_attach(void *base, size_t size, int role, const struct idm_conn_ops *ops, void *tp,
                    struct idm_conn **out)
{
    if (!base || !ops || !out || (role != IDM_ROLE_CLIENT && role != IDM_ROLE_SERVER))
        return -EINVAL;
    if (size < IDM_PAGE_SIZE) {
        IDM_ERR("%s: shared region of %zu bytes is smaller than the control page", ops->name,
                size);
        return -EPROTO;
    }
    /* Copy the control page header once; only the copy is used from here on. */
    struct idm_ctrl *ctrl = base;
    struct {
        uint32_t magic, version, proto, ring_slots, slot_size, reserved0;
        uint64_t window_size;
    } hdr;
    _Static_assert(sizeof(hdr) == offsetof(struct idm_ctrl, req_off), "control header copy");
    copy_from_shared(&hdr, ctrl, sizeof(hdr));
    if (hdr.magic != IDM_CTRL_MAGIC || hdr.version != IDM_CTRL_VERSION ||
        hdr.proto != IDM_PROTOCOL_VERSION) {
        IDM_ERR("%s: control page has magic %#x version %u protocol %u (want %#x, %u, %u)",
                ops->name, hdr.magic, hdr.version, hdr.proto, IDM_CTRL_MAGIC, IDM_CTRL_VERSION,
                IDM_PROTOCOL_VERSION);
        return -EPROTO;
    }
    struct idm_conn_config geo = {
        .ring_slots = hdr.ring_slots,
        .slot_size = hdr.slot_size,
        .window_size = hdr.window_size,
    };
    struct idm_layout lay;
    if (idm_layout_compute(&geo, &lay) < 0) {
        IDM_ERR("%s: control page geometry out of range: %u slots of %u bytes, window %llu",
                ops->name, geo.ring_slots, geo.slot_size, (unsigned long long)geo.window_size);
        return -EPROTO;
    }
    if (lay.total > size) {
        IDM_ERR("%s: geometry needs %llu bytes but the shared region has %zu", ops->name,
                (unsigned long long)lay.total, size);
        return -EPROTO;
    }

    struct idm_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int rc = -ENOMEM;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        goto free_conn;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&c->wait_cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto free_conn;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_mutex_init(&c->send_mu, NULL) != 0)
        goto destroy_cv;
    if (pthread_mutex_init(&c->recv_mu, NULL) != 0)
        goto destroy_send_mu;
    if (pthread_mutex_init(&c->wait_mu, NULL) != 0)
        goto destroy_recv_mu;
    if (pthread_mutex_init(&c->err_mu, NULL) != 0)
        goto destroy_wait_mu;

    c->ops = ops;
    c->tp = tp;
    c->role = role;
    snprintf(c->label, sizeof(c->label), "%s %s", ops->name,
             role == IDM_ROLE_SERVER ? "server" : "client");
    c->peer = (struct idm_peer){.pid = -1, .uid = -1, .domid = -1};
    c->geo = geo;
    c->layout = lay;
    c->msg_slots_max = msg_slots_max(&geo);
    c->mark = &ctrl->mark;
    c->base = base;
    c->map_size = size;
    c->window = (uint8_t *)base + lay.win_off;

    struct idm_ring_shared *tx_sh = role == IDM_ROLE_CLIENT ? &ctrl->req : &ctrl->rep;
    struct idm_ring_shared *rx_sh = role == IDM_ROLE_CLIENT ? &ctrl->rep : &ctrl->req;
    uint64_t tx_off = role == IDM_ROLE_CLIENT ? lay.req_off : lay.rep_off;
    uint64_t rx_off = role == IDM_ROLE_CLIENT ? lay.rep_off : lay.req_off;
    /* Each side takes its own starting index from shared memory once (relaxed: the transport's
     * hand-over of the memory ordered the creator's stores); it never reads it back. */
    uint32_t tx_start = atomic_load_explicit(&tx_sh->prod, memory_order_relaxed);
    uint32_t rx_start = atomic_load_explicit(&rx_sh->cons, memory_order_relaxed);
    idm_ring_init(&c->tx, tx_sh, (uint8_t *)base + tx_off, geo.ring_slots, geo.slot_size,
                  tx_start, 0);
    idm_ring_init(&c->rx, rx_sh, (uint8_t *)base + rx_off, geo.ring_slots, geo.slot_size,
                  rx_start, 0);
    atomic_store_explicit(&c->spin_us, spin_default(), memory_order_relaxed);
    c->rx_armed = 1; /* idm_shm_init starts every consumer asleep */
    *out = c;
    return 0;

destroy_wait_mu:
    pthread_mutex_destroy(&c->wait_mu);
destroy_recv_mu:
    pthread_mutex_destroy(&c->recv_mu);
destroy_send_mu:
    pthread_mutex_destroy(&c->send_mu);
destroy_cv:
    pthread_cond_destroy(&c->wait_cv);
free_conn:
    free(c);
    return rc;
}

void idm_conn_free(struct idm_conn *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->err_mu);
    pthread_mutex_destroy(&c->wait_mu);
    pthread_mutex_destroy(&c->recv_mu);
    pthread_mutex_destroy(&c->send_mu);
    pthread_cond_destroy(&c->wait_cv);
    free(c);
}

int idm_conn_fail(struct idm_conn *c, int err, const char *fmt, ...)
{
    int first = 0;
    pthread_mutex_lock(&c->err_mu);
    if (atomic_load_explicit(&c->dead, memory_order_relaxed) == 0) {
        first = 1;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error, sizeof(c->error), fmt, ap);
        va_end(ap);
        /* Release: pairs with the acquire load in idm_conn_error; the text is complete before
         * the connection reads as dead. */
        atomic_store_explicit(&c->dead, err, memory_order_release);
        if (err == -EPIPE)
            IDM_INFO("%s%s%s: connection closed: %s", c->name, c->name[0] ? ": " : "", c->label,
                     c->error);
        else
            IDM_ERR("%s%s%s: disconnecting: %s", c->name, c->name[0] ? ": " : "", c->label,
                    c->error);
    }
    pthread_mutex_unlock(&c->err_mu);
    /* A faulty peer is cut off: it sees the connection gone, and our own sleeper returns. */
    if (first && err == -EPROTO && c->ops->disconnect)
        c->ops->disconnect(c);
    /* Wake threads parked in conn_wait so they notice. */
    pthread_mutex_lock(&c->wait_mu);
    c->wake_gen++;
    pthread_cond_broadcast(&c->wait_cv);
    pthread_mutex_unlock(&c->wait_mu);
    return err;
}

static int conn_dead(const struct idm_conn *c)
{
    return atomic_load_explicit(&((struct idm_conn *)c)->dead, memory_order_acquire);
}

/* ---- waiting ---- */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Deadline from a timeout in ms (-1: none, encoded as INT64_MAX). */
static int64_t deadline_of(int timeout_ms)
{
    if (timeout_ms < 0)
        return INT64_MAX;
    return now_ns() + (int64_t)timeout_ms * 1000000;
}

/* Milliseconds left until deadline, rounded up; -1 for none. */
static int remaining_ms(int64_t deadline)
{
    if (deadline == INT64_MAX)
        return -1;
    int64_t left = deadline - now_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* The wake generation, taken before arming and re-checking (see conn_wait). */
static uint64_t wake_gen_snapshot(struct idm_conn *c)
{
    pthread_mutex_lock(&c->wait_mu);
    uint64_t g = c->wake_gen;
    pthread_mutex_unlock(&c->wait_mu);
    return g;
}

/* Sleeps on the doorbell. One thread at a time sleeps in ops->wait (it consumes the doorbell);
 * others park on wait_cv until that sleeper returns, then re-check their own condition. This
 * keeps a receiving thread from swallowing the doorbell meant for a thread waiting for ring
 * space, and vice versa. `gen` is the wake generation the caller saw before its re-check: if a
 * sleeper has returned since, the doorbell the caller needs may already be consumed, so it
 * returns at once for another re-check. Returns ops->wait's result, or 0 / -EAGAIN for a parked
 * thread; *rang is set when this thread consumed a doorbell (ops->wait returned 0). */
static int conn_wait(struct idm_conn *c, int timeout_ms, uint64_t gen, int *rang)
{
    *rang = 0;
    pthread_mutex_lock(&c->wait_mu);
    if (c->wake_gen != gen) {
        pthread_mutex_unlock(&c->wait_mu);
        return 0;
    }
    if (!c->sleeper) {
        c->sleeper = 1;
        pthread_mutex_unlock(&c->wait_mu);
        int rc = c->ops->wait(c, timeout_ms);
        pthread_mutex_lock(&c->wait_mu);
        c->sleeper = 0;
        c->wake_gen++;
        pthread_cond_broadcast(&c->wait_cv);
        pthread_mutex_unlock(&c->wait_mu);
        *rang = rc == 0;
        return rc;
    }
    int rc = 0;
    if (timeout_ms == 0) {
        pthread_mutex_unlock(&c->wait_mu);
        return -EAGAIN;
    }
    struct timespec abs;
    if (timeout_ms > 0) {
        clock_gettime(CLOCK_MONOTONIC, &abs);
        abs.tv_sec += timeout_ms / 1000;
        abs.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (abs.tv_nsec >= 1000000000) {
            abs.tv_sec++;
            abs.tv_nsec -= 1000000000;
        }
    }
    while (c->wake_gen == gen) {
        int e = timeout_ms < 0 ? pthread_cond_wait(&c->wait_cv, &c->wait_mu)
                               : pthread_cond_timedwait(&c->wait_cv, &c->wait_mu, &abs);
        if (e == ETIMEDOUT) {
            rc = -EAGAIN;
            break;
        }
    }
    pthread_mutex_unlock(&c->wait_mu);
    return rc;
}

/* ---- sending ---- */

/* A sender's wait consumed a doorbell; if messages are waiting in the receive ring, that
 * doorbell may have been meant for a receiver that polls idm_conn_fd (a server loop), so make
 * it pending again. Reads only shared indices (the receiver's private state is not ours); a
 * peer faking a non-empty ring costs us a spurious wake-up, nothing more. */
static void pass_doorbell_on(struct idm_conn *c)
{
    if (!c->ops->kick_self)
        return;
    /* Acquire: pairs with the producer's release of prod (idm_ring_prod_publish). */
    uint32_t prod = atomic_load_explicit(&c->rx.sh->prod, memory_order_acquire);
    uint32_t cons = atomic_load_explicit(&c->rx.sh->cons, memory_order_relaxed);
    if (prod != cons)
        c->ops->kick_self(c);
}

/* Every 64 spins: has the spin budget run out? If not, yield the CPU once, so that a peer
 * that shares this CPU (more runnable threads than CPUs: many zones on few cores) gets to run
 * and answer instead of waiting for the spin budget to expire; with a free CPU the yield
 * returns at once. */
static int spin_slice_over(int64_t spin_end)
{
    if (now_ns() >= spin_end)
        return 1;
    sched_yield();
    return 0;
}

/* 1 when a probe value ends a wait for `need` slots: enough of them, or a fault (< 0). */
static int probe_done(int64_t v, uint32_t need)
{
    return v < 0 || v >= (int64_t)need;
}

/* The spin phase of a wait: polls probe(r) until it shows `need` slots (or a fault) or the
 * connection's spin budget (cut at the deadline) runs out. Returns the last probe value (below
 * need: not yet). */
static int64_t spin_phase(struct idm_conn *c, int timeout_ms, int64_t deadline,
                          int64_t (*probe)(struct idm_ring *, uint32_t), struct idm_ring *r,
                          uint32_t need)
{
    uint32_t spin = atomic_load_explicit(&c->spin_us, memory_order_relaxed);
    if (spin == 0 || timeout_ms == 0)
        return 0;
    int64_t spin_end = now_ns() + (int64_t)spin * 1000;
    if (spin_end > deadline)
        spin_end = deadline;
    for (unsigned i = 1;; i++) {
        int64_t v = probe(r, need);
        if (probe_done(v, need))
            return v;
        cpu_relax();
        if ((i & 63) == 0 && spin_slice_over(spin_end))
            return 0;
    }
}

/* Waits (spin, then sleep) until tx has `need` free slots. Called with send_mu held. */
static int wait_tx_space(struct idm_conn *c, int timeout_ms, uint32_t need)
{
    int64_t deadline = deadline_of(timeout_ms);
    int64_t space = spin_phase(c, timeout_ms, deadline, idm_ring_prod_space_n, &c->tx, need);
    if (probe_done(space, need))
        goto checked;
    for (;;) {
        uint64_t gen = wake_gen_snapshot(c);
        idm_ring_arm(&c->tx.sh->prod_sleeping);
        space = idm_ring_prod_space_n(&c->tx, need); /* re-check after arming (lost wake-up) */
        if (probe_done(space, need))
            break;
        if (remaining_ms(deadline) == 0)
            return -EAGAIN; /* not even a look at the doorbell: it may be the receiver's */
        int rang;
        int rc = conn_wait(c, remaining_ms(deadline), gen, &rang);
        if (rang)
            pass_doorbell_on(c);
        int dead = conn_dead(c);
        if (dead)
            return dead;
        if (rc == -EPIPE || rc == -EPROTO)
            return idm_conn_fail(c, rc, "%s while waiting for space in the %s ring",
                                 rc == -EPIPE ? "peer went away" : "transport protocol error",
                                 c->role == IDM_ROLE_CLIENT ? "request" : "reply");
        if (rc < 0 && rc != -EAGAIN)
            return idm_conn_fail(c, -EPIPE, "waiting for the doorbell failed: %s",
                                 strerror(-rc));
        if (rc == -EAGAIN && remaining_ms(deadline) == 0) {
            space = idm_ring_prod_space_n(&c->tx, need);
            if (probe_done(space, need))
                break;
            return -EAGAIN; /* the flag stays armed: harmless, the peer clears it */
        }
    }
    idm_ring_disarm(&c->tx.sh->prod_sleeping);
checked:
    if (space < 0)
        return idm_conn_fail(c, -EPROTO,
                             "%s ring: consumer index impossible (producer at %u, %u slots)",
                             c->role == IDM_ROLE_CLIENT ? "request" : "reply", c->tx.idx,
                             c->tx.nslots);
    return 0;
}

/* Copies n bytes into the message that starts at the producer's next slot, at byte pos of it
 * (the message's bytes run on from one slot into the next; the ring's private mask wraps). */
static void tx_put(struct idm_ring *r, size_t pos, const void *src, size_t n)
{
    const uint8_t *p = src;

    while (n > 0) {
        size_t in_slot = pos % r->slot_size;
        size_t k = r->slot_size - in_slot < n ? r->slot_size - in_slot : n;
        memcpy(idm_ring_slot(r, r->idx + (uint32_t)(pos / r->slot_size)) + in_slot, p, k);
        pos += k;
        p += k;
        n -= k;
    }
}

int idm_send_timed(struct idm_conn *c, struct idm_hdr *hdr, const void *a, size_t alen,
                   const void *b, size_t blen, int timeout_ms)
{
    if (!c || !hdr || (alen && !a) || (blen && !b))
        return -EINVAL;
    size_t room = idm_max_payload(c);
    if (alen > room || blen > room - alen)
        return -EMSGSIZE;
    hdr->magic = IDM_MAGIC;
    hdr->version = IDM_PROTOCOL_VERSION;
    hdr->len = (uint32_t)(alen + blen);
    uint32_t need = idm_msg_slots(c, hdr->len);

    pthread_mutex_lock(&c->send_mu);
    int rc = conn_dead(c);
    if (rc)
        goto unlock;
    int64_t space = idm_ring_prod_space_n(&c->tx, need);
    if (space < 0) {
        rc = idm_conn_fail(c, -EPROTO,
                           "%s ring: consumer index impossible (producer at %u, %u slots)",
                           c->role == IDM_ROLE_CLIENT ? "request" : "reply", c->tx.idx,
                           c->tx.nslots);
        goto unlock;
    }
    if (space < need) {
        rc = wait_tx_space(c, timeout_ms, need);
        if (rc < 0)
            goto unlock;
    }
    tx_put(&c->tx, 0, hdr, sizeof(*hdr));
    if (alen)
        tx_put(&c->tx, sizeof(*hdr), a, alen);
    if (blen)
        tx_put(&c->tx, sizeof(*hdr) + alen, b, blen);
    idm_ring_prod_publish_n(&c->tx, need);
    c->tx_count++;
    int kick = idm_ring_should_kick(&c->tx.sh->cons_sleeping);
    pthread_mutex_unlock(&c->send_mu);
    if (kick) {
        rc = c->ops->notify(c);
        if (rc < 0)
            return idm_conn_fail(c, rc == -EPROTO ? -EPROTO : -EPIPE,
                                 "ringing the peer's doorbell failed: %s", strerror(-rc));
    }
    return 0;
unlock:
    pthread_mutex_unlock(&c->send_mu);
    return rc;
}

int idm_send(struct idm_conn *c, struct idm_hdr *hdr, const void *a, size_t alen, const void *b,
             size_t blen)
{
    return idm_send_timed(c, hdr, a, alen, b, blen, -1);
}

/* ---- receiving ---- */

void idm_msg_init(struct idm_msg *m)
{
    memset(m, 0, sizeof(*m));
}

void idm_msg_free(struct idm_msg *m)
{
    if (!m)
        return;
    free(m->payload);
    memset(m, 0, sizeof(*m));
}

static int rx_fault(struct idm_conn *c, const char *what, unsigned long long v)
{
    return idm_conn_fail(c, -EPROTO, "%s ring slot %u: %s (%#llx)",
                         c->role == IDM_ROLE_CLIENT ? "reply" : "request", c->rx.idx, what, v);
}

/* spin_phase's probe of the receive ring (one published message is all a receiver waits for:
 * its sender publishes every slot of it at once). */
static int64_t rx_avail(struct idm_ring *r, uint32_t need)
{
    (void)need;
    return idm_ring_cons_avail(r);
}

/* Copies n bytes out of the message that starts at the consumer's next slot, from byte pos of
 * it on (tx_put's counterpart), into private memory. */
static void rx_get(const struct idm_ring *r, size_t pos, void *dst, size_t n)
{
    uint8_t *p = dst;

    while (n > 0) {
        size_t in_slot = pos % r->slot_size;
        size_t k = r->slot_size - in_slot < n ? r->slot_size - in_slot : n;
        copy_from_shared(p, idm_ring_slot(r, r->idx + (uint32_t)(pos / r->slot_size)) + in_slot,
                         k);
        pos += k;
        p += k;
        n -= k;
    }
}

/* Waits (spin, then sleep) until rx has a message. Called with recv_mu held. Returns the number
 * available (> 0), -EAGAIN, or a connection error. */
static int64_t wait_rx(struct idm_conn *c, int timeout_ms)
{
    int64_t deadline = deadline_of(timeout_ms);
    int64_t avail = spin_phase(c, timeout_ms, deadline, rx_avail, &c->rx, 1);
    if (avail != 0)
        return avail;
    for (;;) {
        uint64_t gen = wake_gen_snapshot(c);
        /* Armed even if rx_armed says so already: the peer clears the flag when it rings. */
        idm_ring_arm(&c->rx.sh->cons_sleeping);
        c->rx_armed = 1;
        avail = idm_ring_cons_avail(&c->rx); /* re-check after arming (lost wake-up race) */
        if (avail != 0)
            return avail;
        int rang;
        int rc = conn_wait(c, remaining_ms(deadline), gen, &rang);
        int dead = conn_dead(c);
        if (dead)
            return dead;
        avail = idm_ring_cons_avail(&c->rx);
        if (avail != 0)
            return avail; /* deliver what the peer sent before it went away */
        if (rc == -EPIPE || rc == -EPROTO)
            return idm_conn_fail(c, rc, "%s",
                                 rc == -EPIPE ? "peer went away"
                                              : "transport protocol error on the doorbell");
        if (rc < 0 && rc != -EAGAIN)
            return idm_conn_fail(c, -EPIPE, "waiting for the doorbell failed: %s",
                                 strerror(-rc));
        if (rc == -EAGAIN && remaining_ms(deadline) == 0)
            return -EAGAIN; /* stays armed: the next message rings the doorbell (idm_conn_fd) */
    }
}

/* After a slot was released: 1 when the peer sleeps waiting for space in this ring and must be
 * woken. Only once a quarter of the ring is free (or, as far as we know, all of it): a producer
 * that filled the ring then sends a run of messages per wake-up instead of one per slot freed,
 * which would cost both sides a doorbell per message. We keep consuming while messages are
 * there, so that point always comes. Under recv_mu. */
static int rx_kick_producer(struct idm_conn *c)
{
    uint32_t used = c->rx.peer_idx - c->rx.idx; /* cached: at most the real count */

    if (used > c->rx.nslots - c->rx.nslots / 4)
        return 0;
    return idm_ring_should_kick(&c->rx.sh->prod_sleeping);
}

int idm_recv_ready(struct idm_conn *c)
{
    int64_t avail;

    pthread_mutex_lock(&c->recv_mu);
    avail = idm_ring_cons_avail(&c->rx);
    pthread_mutex_unlock(&c->recv_mu);
    return avail != 0; /* an impossible index too: idm_recv reports it */
}

int idm_recv(struct idm_conn *c, struct idm_msg *m, int timeout_ms)
{
    if (!c || !m)
        return -EINVAL;
    pthread_mutex_lock(&c->recv_mu);
    int64_t avail;
    int rc = conn_dead(c);
    if (rc)
        goto unlock;
    avail = idm_ring_cons_avail(&c->rx);
    if (avail == 0)
        avail = wait_rx(c, timeout_ms);
    if (avail == -EPROTO && !conn_dead(c)) {
        rc = idm_conn_fail(c, -EPROTO,
                           "%s ring: producer index impossible (consumer at %u, %u slots)",
                           c->role == IDM_ROLE_CLIENT ? "reply" : "request", c->rx.idx,
                           c->rx.nslots);
        goto unlock;
    }
    if (avail < 0) {
        rc = (int)avail;
        goto unlock;
    }
    if (c->rx_armed) {
        idm_ring_disarm(&c->rx.sh->cons_sleeping);
        c->rx_armed = 0;
    }

    /* Copy the header out of shared memory first; validate only the private copy. */
    const uint8_t *slot = idm_ring_cons_slot(&c->rx);
    struct idm_hdr h;
    copy_from_shared(&h, slot, sizeof(h));
    if (h.magic != IDM_MAGIC) {
        rc = rx_fault(c, "bad magic", h.magic);
        goto unlock;
    }
    if (h.version != IDM_PROTOCOL_VERSION) {
        rc = rx_fault(c, "unsupported protocol version", h.version);
        goto unlock;
    }
    size_t room = idm_max_payload(c);
    if (h.len > room) {
        rc = rx_fault(c, "payload length larger than a message may be", h.len);
        goto unlock;
    }
    uint32_t need = idm_msg_slots(c, h.len);
    if (avail < need) { /* its sender publishes every slot of a message at once */
        rc = rx_fault(c, "message published without all its slots", need);
        goto unlock;
    }
    if (!m->payload || m->cap < room) {
        /* Sized for the largest message once, so a busy receiver never reallocates. */
        uint8_t *p = realloc(m->payload, room);
        if (!p) {
            rc = -ENOMEM; /* the message stays in the ring */
            goto unlock;
        }
        m->payload = p;
        m->cap = room;
    }
    rx_get(&c->rx, sizeof(h), m->payload, h.len);
    m->hdr = h;
    m->idx = ++c->rx_count;
    idm_ring_cons_release_n(&c->rx, need);
    int kick = rx_kick_producer(c);
    pthread_mutex_unlock(&c->recv_mu);
    if (kick) {
        rc = c->ops->notify(c);
        if (rc < 0)
            idm_conn_fail(c, rc == -EPROTO ? -EPROTO : -EPIPE,
                          "ringing the peer's doorbell failed: %s", strerror(-rc));
        /* The message itself was received; the failure shows on the next call. */
    }
    return 0;
unlock:
    pthread_mutex_unlock(&c->recv_mu);
    return rc;
}

/* ---- the window release mark ---- */

uint64_t idm_tx_count(const struct idm_conn *c)
{
    return c->tx_count;
}

int idm_release_publish(struct idm_conn *c, uint64_t mark)
{
    int rc = conn_dead(c);

    if (rc)
        return rc;
    if (mark <= c->mark_pub)
        return 0;
    c->mark_pub = mark;
    /* Release: pairs with the acquire load in idm_release_mark; the server's last access of
     * the released ranges happens before the client may see them free. */
    atomic_store_explicit(&c->mark->released, mark, memory_order_release);
    if (!idm_ring_should_kick(&c->mark->waiting))
        return 0;
    rc = c->ops->notify(c);
    if (rc < 0)
        return idm_conn_fail(c, rc == -EPROTO ? -EPROTO : -EPIPE,
                             "ringing the peer's doorbell failed: %s", strerror(-rc));
    return 0;
}

int64_t idm_release_mark(struct idm_conn *c)
{
    int rc = conn_dead(c);

    if (rc)
        return rc;
    /* Acquire: pairs with the release store in idm_release_publish. */
    uint64_t m = atomic_load_explicit(&c->mark->released, memory_order_acquire);
    if (m < c->mark_seen || m > c->tx_count)
        return idm_conn_fail(c, -EPROTO,
                             "window release mark %llu impossible (last %llu, %llu requests "
                             "sent)", (unsigned long long)m, (unsigned long long)c->mark_seen,
                             (unsigned long long)c->tx_count);
    c->mark_seen = m;
    return (int64_t)m;
}

/* The release mark has reached want (1), not yet (0), or the connection failed (< 0). */
static int64_t mark_reached(struct idm_conn *c, uint64_t want)
{
    int64_t m = idm_release_mark(c);

    return m < 0 ? m : (uint64_t)m >= want;
}

/* The spin phase of idm_release_wait (as spin_phase for the rings). */
static int64_t mark_spin(struct idm_conn *c, uint64_t want, int timeout_ms, int64_t deadline)
{
    uint32_t spin = atomic_load_explicit(&c->spin_us, memory_order_relaxed);
    int64_t v = mark_reached(c, want);

    if (v != 0 || spin == 0 || timeout_ms == 0)
        return v;
    int64_t spin_end = now_ns() + (int64_t)spin * 1000;
    if (spin_end > deadline)
        spin_end = deadline;
    for (unsigned i = 1; v == 0; i++) {
        cpu_relax();
        if ((i & 63) == 0 && spin_slice_over(spin_end))
            return 0;
        v = mark_reached(c, want);
    }
    return v;
}

int idm_release_wait(struct idm_conn *c, uint64_t want, int timeout_ms)
{
    int64_t deadline = deadline_of(timeout_ms);
    int64_t v = mark_spin(c, want, timeout_ms, deadline);

    while (v == 0) {
        uint64_t gen = wake_gen_snapshot(c);
        idm_ring_arm(&c->mark->waiting);
        if ((v = mark_reached(c, want)) != 0) /* re-check after arming (lost wake-up race) */
            break;
        if (remaining_ms(deadline) == 0)
            return -EAGAIN; /* the flag stays armed: harmless, the server clears it */
        int rang;
        int rc = conn_wait(c, remaining_ms(deadline), gen, &rang);
        if (rang)
            pass_doorbell_on(c); /* it may have been meant for a receiver too */
        if ((v = mark_reached(c, want)) != 0)
            break;
        if (rc == -EPIPE || rc == -EPROTO)
            return idm_conn_fail(c, rc, "%s while waiting for the window release mark",
                                 rc == -EPIPE ? "peer went away" : "transport protocol error");
        if (rc < 0 && rc != -EAGAIN)
            return idm_conn_fail(c, -EPIPE, "waiting for the doorbell failed: %s",
                                 strerror(-rc));
    }
    idm_ring_disarm(&c->mark->waiting);
    return v < 0 ? (int)v : 0;
}

/* ---- window, accessors ---- */

void *idm_window(struct idm_conn *c, uint64_t *size)
{
    if (!c) {
        if (size)
            *size = 0;
        return NULL;
    }
    if (size)
        *size = c->geo.window_size;
    return c->window;
}

int idm_window_check(const struct idm_conn *c, uint64_t off, uint64_t len)
{
    if (!c)
        return -EINVAL;
    uint64_t size = c->geo.window_size;
    if (off > size || len > size - off)
        return -ERANGE;
    return 0;
}

uint32_t idm_max_payload(const struct idm_conn *c)
{
    return c->msg_slots_max * c->geo.slot_size - (uint32_t)sizeof(struct idm_hdr);
}

uint32_t idm_msg_slots(const struct idm_conn *c, uint64_t payload_len)
{
    uint64_t bytes = sizeof(struct idm_hdr) + payload_len;
    return (uint32_t)((bytes + c->geo.slot_size - 1) / c->geo.slot_size);
}

const struct idm_conn_config *idm_conn_geometry(const struct idm_conn *c)
{
    return c ? &c->geo : NULL;
}

const struct idm_peer *idm_conn_peer(const struct idm_conn *c)
{
    return c ? &c->peer : NULL;
}

int idm_conn_fd(struct idm_conn *c)
{
    if (!c)
        return -EINVAL;
    return c->ops->fd(c);
}

int idm_conn_check(struct idm_conn *c)
{
    int rang, rc = conn_dead(c);

    if (rc)
        return rc;
    /* A look without sleeping; a doorbell it consumes is made pending again when messages
     * wait (the receiver may poll the fd), and a thread already asleep is left to notice. */
    rc = conn_wait(c, 0, wake_gen_snapshot(c), &rang);
    if (rang)
        pass_doorbell_on(c);
    /* The connection is not marked dead here: the receiver still gets what the peer sent
     * before it went, then the same error. */
    return rc == -EPIPE || rc == -EPROTO ? rc : 0;
}

const char *idm_conn_error(const struct idm_conn *c)
{
    if (!c)
        return "no connection";
    return conn_dead(c) ? c->error : "";
}

void idm_conn_set_spin(struct idm_conn *c, uint32_t spin_us)
{
    if (!c)
        return;
    if (spin_us > IDM_SPIN_US_MAX)
        spin_us = IDM_SPIN_US_MAX;
    atomic_store_explicit(&c->spin_us, spin_us, memory_order_relaxed);
}

void idm_conn_set_name(struct idm_conn *c, const char *name)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->err_mu);
    snprintf(c->name, sizeof(c->name), "%s", name ? name : "");
    pthread_mutex_unlock(&c->err_mu);
}

void idm_close(struct idm_conn *c)
{
    if (!c)
        return;
    c->ops->close(c);
    idm_conn_free(c);
}
