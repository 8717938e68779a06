/* idm_conn_internal.h - what a transport needs to build a connection: the shared-memory layout
 * common to every transport (control page, request ring, reply ring, window), struct idm_conn,
 * and the hooks a transport implements (ring the peer's doorbell, wait for ours, close).
 * Only transports (transport_*.c), idm_conn.c and tests include this; users see idm_transport.h. */
#ifndef IDM_CONN_INTERNAL_H
#define IDM_CONN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "idm.h"
#include "idm_ring.h"
#include "idm_transport.h"

/* ---- shared-memory layout (the same for every transport) ----
 *
 *   offset 0            control page (4096 bytes): struct idm_ctrl
 *   req_off  = 4096     request ring: ring_slots * slot_size bytes (client -> server)
 *   rep_off             reply ring:   ring_slots * slot_size bytes (server -> client)
 *   win_off             window: window_size bytes
 *   total               end
 * Every region starts on a 4096-byte boundary. The side that creates the memory writes the
 * control page with idm_shm_init before the peer can see it; both sides then attach with
 * idm_conn_attach, which copies the geometry once, checks it against the limits of idm.h and
 * recomputes every offset itself (the offsets in the control page are informational). */

#define IDM_PAGE_SIZE 4096u
#define IDM_CTRL_MAGIC 0x4C52544Du /* "MTRL" */
#define IDM_CTRL_VERSION 1u

/* The window release mark (idm_release_publish / idm_release_wait): the server writes
 * `released`, the number of requests it no longer needs window ranges of; the client sets
 * `waiting` before it sleeps for it and the server clears it when it rings the doorbell. */
struct idm_mark_shared {
    _Alignas(IDM_CACHELINE) _Atomic uint64_t released;
    _Atomic uint32_t waiting;
};
_Static_assert(sizeof(struct idm_mark_shared) == IDM_CACHELINE, "one cache line");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the 64-bit mark must be lock-free");

struct idm_ctrl {
    uint32_t magic;       /* IDM_CTRL_MAGIC */
    uint32_t version;     /* IDM_CTRL_VERSION */
    uint32_t proto;       /* IDM_PROTOCOL_VERSION */
    uint32_t ring_slots;  /* geometry as chosen by the creator */
    uint32_t slot_size;
    uint32_t reserved0;
    uint64_t window_size;
    uint64_t req_off, rep_off, win_off, total_size; /* informational */
    uint8_t pad_[128 - 64];
    struct idm_mark_shared mark; /* at 128: the window release mark */
    uint8_t pad2_[256 - 192];
    struct idm_ring_shared req; /* at 256: request ring indices */
    struct idm_ring_shared rep; /* at 384: reply ring indices */
};
_Static_assert(sizeof(struct idm_ctrl) <= IDM_PAGE_SIZE, "control page fits one page");
_Static_assert(offsetof(struct idm_ctrl, req) == 256, "ring indices at 256");
_Static_assert(offsetof(struct idm_ctrl, mark) == 128, "release mark at 128");

struct idm_layout {
    uint64_t req_off;
    uint64_t rep_off;
    uint64_t win_off;
    uint64_t total;
    uint64_t ring_bytes; /* ring_slots * slot_size */
};

/* Fills zero fields of *cfg with the defaults of idm.h. */
void idm_conn_config_defaults(struct idm_conn_config *cfg);

/* Checks cfg against the limits of idm.h (powers of two, ranges, window a multiple of 4096) and
 * computes the layout. -EINVAL with a logged reason when cfg is out of range. */
int idm_layout_compute(const struct idm_conn_config *cfg, struct idm_layout *out);

/* Writes the control page, sets the ring indices and marks both consumers asleep (so each
 * direction's first message rings the doorbell) in a fresh region of at least
 * layout.total bytes (the creator's side, before the peer can see it). `start` is the initial
 * value of every ring index: 0 normally; tests use values near UINT32_MAX to cross the wrap. */
int idm_shm_init(void *base, size_t size, const struct idm_conn_config *cfg, uint32_t start);

/* ---- transport hooks ---- */

enum idm_role { IDM_ROLE_CLIENT = 0, IDM_ROLE_SERVER = 1 };

/* Implemented by each transport; called by idm_conn.c. All return 0 or -errno. */
struct idm_conn_ops {
    const char *name; /* "posix", "xen": for log lines */

    /* Rings the peer's doorbell (one edge). Called only when the peer's sleeping flag was set,
     * i.e. rarely on a busy connection. Must not block; a doorbell that is already pending
     * counts as success (POSIX: eventfd write returning EAGAIN). -EPIPE when the peer is gone. */
    int (*notify)(struct idm_conn *c);

    /* Sleeps until this side's doorbell rings, the peer goes away, or timeout_ms passes
     * (-1: no limit; 0: do not sleep, just look). Consumes (clears) the pending doorbell so the
     * next call sleeps again and fd() stops polling readable (the server-loop drain rule in
     * README.md depends on this, also for timeout 0). Returns 0 when the doorbell rang (or on a spurious wake-up: the
     * caller always re-checks the rings), -EAGAIN on timeout with nothing pending, -EPIPE when
     * the peer is gone (POSIX: socket EOF/HUP; Xen: the peer's xenstore state or the event
     * channel closing), -EPROTO when the peer misbehaved at the transport level. Never hangs
     * past timeout_ms when the peer dies. Only one thread calls it at a time per connection
     * (idm_conn.c elects the sleeper). */
    int (*wait)(struct idm_conn *c, int timeout_ms);

    /* Pollable descriptor: readable when the doorbell is pending or the peer is gone. */
    int (*fd)(struct idm_conn *c);

    /* Optional (may be NULL, then a server loop may miss a wake-up in the case below). Makes
     * this side's own doorbell pending, so that fd() polls readable and a wait returns.
     * idm_conn.c calls it when a thread waiting for ring space consumed a doorbell while
     * messages are waiting in the receive ring (the doorbell may have been meant for a
     * receiver that polls fd()). POSIX: an eventfd write to our own doorbell. */
    int (*kick_self)(struct idm_conn *c);

    /* Optional (may be NULL). Cuts the link after idm_conn.c declared the connection dead
     * (peer fault): the peer must see the connection gone, and a thread of ours sleeping in
     * wait must return. Must not free anything (close does). POSIX: shutdown(2) of the
     * socket. Called once, from any thread, without locks held. */
    void (*disconnect)(struct idm_conn *c);

    /* Releases everything the transport set up for c: unmaps the shared memory, closes
     * descriptors / event channels / grants, frees c->tp. Does not free c itself. */
    void (*close)(struct idm_conn *c);
};

/* One connection. Transports allocate it with idm_conn_attach, fill peer and tp, and hand it
 * out; everything below "private geometry" is never re-read from shared memory. */
struct idm_conn {
    const struct idm_conn_ops *ops;
    void *tp; /* transport-private state */
    int role; /* enum idm_role */
    char label[64]; /* set by the transport for log lines: what and who the peer is */
    char name[64];  /* set by the user (idm_conn_set_name), e.g. the zone; may be empty */
    struct idm_peer peer;

    /* private geometry, copied once at attach */
    struct idm_conn_config geo;
    struct idm_layout layout;
    uint32_t msg_slots_max; /* slots one message may span (idm_max_payload) */
    struct idm_mark_shared *mark; /* in the control page */

    /* message counts (private): the n-th message of a direction is its number n */
    uint64_t tx_count;      /* sent (under send_mu) */
    uint64_t rx_count;      /* received (under recv_mu) */
    uint64_t mark_seen;     /* client: the last release mark read and checked */
    uint64_t mark_pub;      /* server: the last release mark published */
    uint8_t *base; /* mapping of the whole region */
    size_t map_size;
    uint8_t *window;

    /* tx: the ring this side produces into; rx: the ring it consumes */
    struct idm_ring tx, rx;
    pthread_mutex_t send_mu; /* serialises producers on tx */
    pthread_mutex_t recv_mu; /* serialises consumers on rx */
    int rx_armed;            /* this side set rx.sh->cons_sleeping (under recv_mu) */

    /* sleeper election: one thread sleeps in ops->wait, others wait on wait_cv */
    pthread_mutex_t wait_mu;
    pthread_cond_t wait_cv;
    int sleeper;       /* a thread is inside ops->wait */
    uint64_t wake_gen; /* bumped whenever a sleeper returns (it may have consumed a doorbell) */

    _Atomic uint32_t spin_us;
    _Atomic int dead;      /* 0 alive, else -EPIPE or -EPROTO */
    pthread_mutex_t err_mu;
    char error[256];
};

/* Allocates a connection over base[0..size) (already mapped, control page written), copies the
 * geometry out of the control page once, validates it and sets up both rings for `role`.
 * ops and tp are stored as given. Returns 0 or -errno (-EPROTO when the control page is
 * invalid, with a logged reason). */
int idm_conn_attach(void *base, size_t size, int role, const struct idm_conn_ops *ops, void *tp,
                    struct idm_conn **out);

/* Frees what idm_conn_attach allocated, without calling ops->close (for a transport's error
 * path before it hands the connection out). */
void idm_conn_free(struct idm_conn *c);

/* Marks the connection dead with err (-EPIPE or -EPROTO) and a reason; the first reason wins
 * and is logged, and the first -EPROTO calls ops->disconnect. Callable from inside ops->wait.
 * Returns err. */
int idm_conn_fail(struct idm_conn *c, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Listener base: each transport's listener embeds this as its first member. */
struct idm_listener {
    const struct idm_transport *transport;
};

#endif /* IDM_CONN_INTERNAL_H */
