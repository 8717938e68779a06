/* idm_transport.h - connections between a guest (client) and the driver domain (server).
 * A connection is a request ring, a reply ring and a bulk window in memory shared with the
 * peer. The rings and message validation are common code (idm_conn.c over idm_ring.h); a
 * transport (POSIX shared memory, Xen grants) only sets the memory up, rings the peer's doorbell
 * and tells when the peer is gone. Transports are `const struct idm_transport` tables. */
#ifndef IDM_TRANSPORT_H
#define IDM_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "idm.h"

struct idm_conn;     /* one connection, either side */
struct idm_listener; /* server side: where new connections arrive */

/* Geometry of a connection; the server (POSIX) or guest (Xen) chooses it, the peer checks it
 * against the IDM_* limits in idm.h and keeps a private copy. */
struct idm_conn_config {
    uint32_t ring_slots;  /* power of two, default IDM_RING_SLOTS_DEFAULT */
    uint32_t slot_size;   /* power of two, default IDM_SLOT_SIZE_DEFAULT */
    uint64_t window_size; /* multiple of 4096, default IDM_WINDOW_SIZE_DEFAULT */
};

/* Who is on the other side, as the transport (not the peer) establishes it. */
struct idm_peer {
    int32_t pid;   /* POSIX: SO_PEERCRED pid; Xen: -1 */
    int32_t uid;   /* POSIX: SO_PEERCRED uid; Xen: -1 */
    int32_t domid; /* Xen: the guest's domain id as Xen reports it; POSIX: -1 */
};

/* A received message, copied out of shared memory and validated (magic, version, len). */
struct idm_msg {
    struct idm_hdr hdr;
    uint64_t idx;     /* its number on the connection, in its direction: 1 for the first (the
                       * number idm_tx_count gave its sender, which the release mark counts) */
    uint8_t *payload; /* hdr.len bytes, private memory owned by the idm_msg */
    size_t cap;
};

struct idm_transport {
    const char *name; /* "posix", "xen" */
    /* Server side. `address`: POSIX: a Unix socket path; Xen: a xenstore path relative to each
     * guest's home, optionally "<guest-domid>:<path>" to take that one guest's offers only. */
    int (*listen)(const char *address, const struct idm_conn_config *cfg,
                  struct idm_listener **out);
    int (*listener_fd)(struct idm_listener *l); /* pollable: readable when accept may proceed */
    /* Accepts one connection (-EAGAIN if none is pending). */
    int (*accept)(struct idm_listener *l, struct idm_conn **out);
    void (*listener_close)(struct idm_listener *l);
    /* Client side. */
    int (*connect)(const char *address, struct idm_conn **out);
};

extern const struct idm_transport idm_transport_posix;
extern const struct idm_transport idm_transport_xen;

/* Returns the transport by name, or NULL. */
const struct idm_transport *idm_transport_by_name(const char *name);

/* ---- connection calls, the same for every transport; all return 0 or -errno ---- */

/* Sends one message: hdr (its magic, version and len are filled in here) then `len` payload
 * bytes gathered from up to two pieces (b may be NULL), over as many consecutive slots as it
 * needs (idm_msg_slots), all published at once. Waits (adaptive) while the ring has fewer free
 * slots. Thread-safe: several threads may send on one connection.
 * -EPIPE: the peer is gone; -EPROTO: the peer corrupted the ring (the connection is dead);
 * -EMSGSIZE: the payload is larger than idm_max_payload. */
int idm_send(struct idm_conn *c, struct idm_hdr *hdr, const void *a, size_t alen, const void *b,
             size_t blen);

/* idm_send with a limit on how long it waits for a free slot (timeout_ms: -1 no limit, 0 do not
 * wait). -EAGAIN when the ring stayed full; nothing was sent then. A server replying to a client
 * that does not drain its reply ring uses this so it is never blocked by that client. */
int idm_send_timed(struct idm_conn *c, struct idm_hdr *hdr, const void *a, size_t alen,
                   const void *b, size_t blen, int timeout_ms);

/* Receives the next message into *m (copied out before it is validated; the slot is released
 * at once). timeout_ms: -1 waits for ever, 0 polls. -EAGAIN on timeout, -EPIPE when the peer is
 * gone, -EPROTO when the peer wrote something invalid (the connection is then dead and the
 * reason is logged). Thread-safe against concurrent idm_send; one receiving thread at a time. */
int idm_recv(struct idm_conn *c, struct idm_msg *m, int timeout_ms);

/* 1 when idm_recv would not wait: a message is in the receive ring (or the ring is broken,
 * which idm_recv reports). No wait, no doorbell armed, nothing consumed; one receiving thread. */
int idm_recv_ready(struct idm_conn *c);

void idm_msg_init(struct idm_msg *m);
void idm_msg_free(struct idm_msg *m);

/* The bulk window as mapped locally, and its size (private copy, never re-read from shared
 * memory). */
void *idm_window(struct idm_conn *c, uint64_t *size);

/* Checks that [off, off+len) lies inside the window (overflow-safe). */
int idm_window_check(const struct idm_conn *c, uint64_t off, uint64_t len);

/* ---- the window release mark ----
 * A request that names a window range may go unanswered (IDM_F_NOREPLY, idm_op_noreply): the
 * server then says when it no longer needs the range by publishing a release mark, the number
 * of requests (idm_msg.idx, idm_tx_count) up to which every such range is released, instead of
 * a reply per request. Only the server writes it, and it never reads it back. */

/* Client: the number of messages sent so far (the idx of the last one). */
uint64_t idm_tx_count(const struct idm_conn *c);

/* Server: publishes that every window range named by requests 1..mark is released; rings the
 * client's doorbell when it waits for the mark (idm_release_wait). Marks only grow (a smaller
 * one is ignored); the server keeps its own copy and never reads the shared one, so a client
 * that rewrites it fools only itself. One thread at a time (the caller serialises).
 * 0 or -EPIPE/-EPROTO. */
int idm_release_publish(struct idm_conn *c, uint64_t mark);

/* Client: the release mark as last published (no wait). -EPROTO (and the connection dead) when
 * the server published a mark that went backwards or beyond the requests sent. Called by the
 * thread that sends (or with sends serialised by the caller), since it checks idm_tx_count. */
int64_t idm_release_mark(struct idm_conn *c);

/* Client: waits (spin, then sleep on the doorbell) until the release mark reaches want.
 * timeout_ms as idm_recv. 0, -EAGAIN on timeout, -EPIPE/-EPROTO. One thread at a time per
 * connection may wait for the mark (others may send and receive meanwhile). */
int idm_release_wait(struct idm_conn *c, uint64_t want, int timeout_ms);

/* The most payload bytes one message may carry on this connection (either direction): the
 * messages span at most a quarter of the ring (at least one slot) and, beyond one slot, at most
 * IDM_MSG_BYTES_MAX bytes with their header. The same value on both sides (from the geometry). */
uint32_t idm_max_payload(const struct idm_conn *c);

/* How many ring slots a message of payload_len bytes occupies on this connection. */
uint32_t idm_msg_slots(const struct idm_conn *c, uint64_t payload_len);

/* The geometry in force and the peer's identity. */
const struct idm_conn_config *idm_conn_geometry(const struct idm_conn *c);
const struct idm_peer *idm_conn_peer(const struct idm_conn *c);

/* Pollable descriptor that becomes readable when a message may have arrived or the peer has
 * gone (use idm_recv with timeout 0 after it fires). */
int idm_conn_fd(struct idm_conn *c);

/* Looks whether the peer is still there without receiving anything (any thread, any time):
 * 0 while it is, -EPIPE when it is gone, -EPROTO after a fault; it does not mark the
 * connection dead (idm_recv then delivers what is left, then fails the same way). A server uses it to notice a client's exit while the client's own thread is busy. */
int idm_conn_check(struct idm_conn *c);

/* Why the connection died (empty string while it is alive). */
const char *idm_conn_error(const struct idm_conn *c);

/* Spin budget before sleeping, in microseconds (default: IDM_SPIN_US from the environment, else
 * 50 when more than one CPU is online, else 0). */
void idm_conn_set_spin(struct idm_conn *c, uint32_t spin_us);

/* Names the connection in the library's log lines (e.g. "zone a"); the transport's own label
 * (peer pid/uid or domid) follows it. Call before sharing the connection between threads. */
void idm_conn_set_name(struct idm_conn *c, const char *name);

void idm_close(struct idm_conn *c);

#endif /* IDM_TRANSPORT_H */
