/* idm_ring.h - single-producer single-consumer ring of fixed-size slots in shared memory, on C11
 * atomics. The shared part is two indices on separate cache lines plus a "sleeping" flag for
 * each side; everything else (slot count, mask, slot size, where the slots are, this side's own
 * index) is private memory filled once at attach and never re-read from shared memory.
 *
 * Indices are free-running uint32_t, masked only when a slot is addressed; full is
 * prod - cons == nslots. The peer is hostile: an index it publishes that makes prod - cons
 * exceed nslots is a peer fault (-EPROTO), and this side never reads back its own index. */
#ifndef IDM_RING_H
#define IDM_RING_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define IDM_CACHELINE 64

/* Shared indices of one ring (128 bytes, lives in the control page). The producer writes the
 * first line, the consumer the second; the *_sleeping flags are set by their owner before it
 * sleeps and cleared by the other side when it rings the doorbell (atomic exchange). */
struct idm_ring_shared {
    _Alignas(IDM_CACHELINE) _Atomic uint32_t prod; /* next slot the producer will fill */
    _Atomic uint32_t prod_sleeping;                /* producer waits for free space */
    _Alignas(IDM_CACHELINE) _Atomic uint32_t cons; /* next slot the consumer will read */
    _Atomic uint32_t cons_sleeping;                /* consumer waits for a message */
};
_Static_assert(sizeof(struct idm_ring_shared) == 2 * IDM_CACHELINE, "two cache lines");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "shared-memory atomics must be lock-free");

/* This side's private view of one ring. */
struct idm_ring {
    struct idm_ring_shared *sh; /* the shared indices */
    uint8_t *slots;             /* nslots * slot_size bytes of shared memory */
    uint32_t nslots;            /* power of two (private copy) */
    uint32_t mask;              /* nslots - 1 */
    uint32_t slot_size;         /* bytes per slot (private copy) */
    uint32_t idx;               /* producer: its prod; consumer: its cons (private, authoritative) */
    uint32_t peer_idx;          /* last value of the peer's index seen (a cache, validated) */
};

/* Sets up the private view; `start` is the initial value of both indices (0 in production; the
 * tests start near UINT32_MAX to cross the wrap). `init_shared` writes the shared indices (done
 * once, by the side that creates the memory, before the peer can see it). */
static inline void idm_ring_init(struct idm_ring *r, struct idm_ring_shared *sh, void *slots,
                                 uint32_t nslots, uint32_t slot_size, uint32_t start,
                                 int init_shared)
{
    r->sh = sh;
    r->slots = (uint8_t *)slots;
    r->nslots = nslots;
    r->mask = nslots - 1;
    r->slot_size = slot_size;
    r->idx = start;
    r->peer_idx = start;
    if (init_shared) {
        /* Relaxed: the memory is published to the peer later by the transport (fd passing or
         * grant), which orders these stores before any access of the peer. */
        atomic_store_explicit(&sh->prod, start, memory_order_relaxed);
        atomic_store_explicit(&sh->cons, start, memory_order_relaxed);
        atomic_store_explicit(&sh->prod_sleeping, 0, memory_order_relaxed);
        atomic_store_explicit(&sh->cons_sleeping, 0, memory_order_relaxed);
    }
}

/* Where slot `i` lives (the mask is private, so the address is always inside the ring). */
static inline uint8_t *idm_ring_slot(const struct idm_ring *r, uint32_t i)
{
    return r->slots + (size_t)(i & r->mask) * r->slot_size;
}

/* ---- producer ---- */

/* Number of free slots, or -EPROTO when the consumer's published index is impossible. The
 * consumer's index is read again only when the cached one shows fewer than `need` free. */
static inline int64_t idm_ring_prod_space_n(struct idm_ring *r, uint32_t need)
{
    uint32_t used = r->idx - r->peer_idx;
    if (used <= r->nslots && r->nslots - used >= need && need > 0)
        return (int64_t)(r->nslots - used); /* the cached cons already shows the space */
    /* Acquire: pairs with the release store of cons in idm_ring_cons_release, so the
     * consumer's reads of a slot are finished before we overwrite it. */
    uint32_t cons = atomic_load_explicit(&r->sh->cons, memory_order_acquire);
    used = r->idx - cons;
    if (used > r->nslots)
        return -EPROTO; /* cons ahead of prod, or more than a ring behind */
    r->peer_idx = cons;
    return (int64_t)(r->nslots - used);
}

/* Number of free slots (0 when full), or -EPROTO (idm_ring_prod_space_n for one slot). */
static inline int64_t idm_ring_prod_space(struct idm_ring *r)
{
    return idm_ring_prod_space_n(r, 1);
}

/* The slot the producer fills next (call only after prod_space returned > 0). */
static inline uint8_t *idm_ring_prod_slot(const struct idm_ring *r)
{
    return idm_ring_slot(r, r->idx);
}

/* Publishes the n filled slots from idm_ring_prod_slot on (one message), at once. */
static inline void idm_ring_prod_publish_n(struct idm_ring *r, uint32_t n)
{
    r->idx += n;
    /* Release: pairs with the acquire load of prod in idm_ring_cons_avail; the slot's contents
     * are visible before the new index is. */
    atomic_store_explicit(&r->sh->prod, r->idx, memory_order_release);
}

/* Publishes the one filled slot. */
static inline void idm_ring_prod_publish(struct idm_ring *r)
{
    idm_ring_prod_publish_n(r, 1);
}

/* ---- consumer ---- */

/* Number of messages ready, or -EPROTO when the producer's published index is impossible. */
static inline int64_t idm_ring_cons_avail(struct idm_ring *r)
{
    uint32_t avail = r->peer_idx - r->idx;
    if (avail > 0 && avail <= r->nslots)
        return avail; /* the cached prod still shows messages */
    /* Acquire: pairs with the release store of prod in idm_ring_prod_publish; the slot's
     * contents are read only after the index that covers them. */
    uint32_t prod = atomic_load_explicit(&r->sh->prod, memory_order_acquire);
    avail = prod - r->idx;
    if (avail > r->nslots)
        return -EPROTO; /* prod behind cons, or more than a ring ahead */
    r->peer_idx = prod;
    return avail;
}

/* The slot the consumer reads next (call only after cons_avail returned > 0). */
static inline const uint8_t *idm_ring_cons_slot(const struct idm_ring *r)
{
    return idm_ring_slot(r, r->idx);
}

/* Gives n slots (one message) back once their contents have been copied out. */
static inline void idm_ring_cons_release_n(struct idm_ring *r, uint32_t n)
{
    r->idx += n;
    /* Release: pairs with the acquire load of cons in idm_ring_prod_space; our reads of the slot
     * happen before the producer may reuse it. */
    atomic_store_explicit(&r->sh->cons, r->idx, memory_order_release);
}

/* Gives the one slot back once its contents have been copied out. */
static inline void idm_ring_cons_release(struct idm_ring *r)
{
    idm_ring_cons_release_n(r, 1);
}

/* ---- notification hold-off ----
 * A side about to sleep sets its flag, then re-checks the ring (the caller does), then sleeps.
 * The other side, after moving its index, tests the flag and rings the doorbell only if it was
 * set, clearing it. The two seq_cst fences make this a Dekker pair: either the sleeper's
 * re-check sees the new index, or the waker sees the flag. */

static inline void idm_ring_arm(_Atomic uint32_t *flag)
{
    atomic_store_explicit(flag, 1, memory_order_relaxed);
    /* Full fence: pairs with the fence in idm_ring_should_kick; orders the flag store before the
     * caller's re-check of the peer's index. */
    atomic_thread_fence(memory_order_seq_cst);
}

static inline void idm_ring_disarm(_Atomic uint32_t *flag)
{
    /* Relaxed: clearing only saves the peer a doorbell; a stale 1 costs one spurious wake-up. */
    atomic_store_explicit(flag, 0, memory_order_relaxed);
}

/* Called after publishing an index: returns 1 when the peer sleeps on `flag` and must be woken
 * (the flag is cleared then). */
static inline int idm_ring_should_kick(_Atomic uint32_t *flag)
{
    /* Full fence: pairs with the fence in idm_ring_arm; orders our index store before the
     * flag load. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(flag, memory_order_relaxed) == 0)
        return 0;
    /* Relaxed: the exchange only decides who rings once; the fence above did the ordering. */
    return atomic_exchange_explicit(flag, 0, memory_order_relaxed) != 0;
}

#endif /* IDM_RING_H */
