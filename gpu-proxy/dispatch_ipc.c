/* dispatch_ipc.c - CUDA IPC handles between the sessions (processes) of one zone. Export: a
 * 64-byte handle naming a slot of the zone's export table and a random token. Memory: open adds
 * the exporter's backend memory to the opener's allocation table (not charged again, at an
 * address of the opener's own), close drops it; the memory is reference counted (zone.h: struct
 * ipc_mem) and stays alive while any import is open, whatever its exporter frees. Events: open
 * gives the opener an event that shares the exporter's (zone.h: struct ipc_event). Handles of
 * another zone mean nothing here: each zone has its own table (and, in the daemon, its own
 * worker process). */
#include "dispatch_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"

/* The handle's layout (CUipcMemHandle's and CUipcEventHandle's 64 bytes; the rest zero). */
#define IPC_MAGIC_MEM "vgpuIPCm"
#define IPC_MAGIC_EVENT "vgpuIPCe"
struct ipc_wire {
    char magic[8];
    uint32_t zone_id;
    uint32_t slot;
    uint8_t token[IPC_TOKEN_BYTES];
    uint8_t zero[64 - 8 - 4 - 4 - IPC_TOKEN_BYTES];
};
_Static_assert(sizeof(struct ipc_wire) == 64, "an IPC handle is 64 bytes");

/* Equal tokens, in time that does not depend on where they differ. */
static int token_equal(const uint8_t *a, const uint8_t *b)
{
    uint8_t d = 0;

    for (int i = 0; i < IPC_TOKEN_BYTES; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

static void ipc_encode(const struct zone *z, uint32_t slot, const struct ipc_export *e,
                       uint8_t out[64])
{
    struct ipc_wire w;

    memset(&w, 0, sizeof(w));
    memcpy(w.magic, e->ev ? IPC_MAGIC_EVENT : IPC_MAGIC_MEM, sizeof(w.magic));
    w.zone_id = z->id;
    w.slot = slot;
    memcpy(w.token, e->token, sizeof(w.token));
    memcpy(out, &w, sizeof(w));
}

/* The zone's export of m or x (under the zone's lock), or -1. */
static long ipc_find_export_locked(const struct zone *z, const struct ipc_mem *m,
                                   const struct ipc_event *x)
{
    for (uint32_t i = 0; i < ZONE_MAX_IPC_EXPORTS; i++)
        if (z->ipc[i] && ((m && z->ipc[i]->mem == m) || (x && z->ipc[i]->ev == x)))
            return i;
    return -1;
}

/* Adds an export of m or x to the zone's table: its slot, or -ENOSPC (table full), -ENOMEM,
 * -EIO (no random bytes). */
static long ipc_add_export(struct rq *r, struct ipc_mem *m, struct ipc_event *x, uint64_t size)
{
    struct zone *z = r->s->zone;
    struct ipc_export *e = calloc(1, sizeof(*e));
    long slot = -ENOSPC;

    if (e == NULL)
        return -ENOMEM;
    if (getrandom(e->token, sizeof(e->token), 0) != (ssize_t)sizeof(e->token)) {
        log_error("zone=%s %s: getrandom for an IPC handle failed: %s", ZN(r), PEER(r),
                  strerror(errno));
        free(e);
        return -EIO;
    }
    e->owner = r->s;
    e->mem = m;
    e->ev = x;
    e->size = size;
    pthread_mutex_lock(&z->lock);
    for (uint32_t i = 0; i < ZONE_MAX_IPC_EXPORTS && slot < 0; i++)
        if (z->ipc[i] == NULL)
            z->ipc[slot = i] = e;
    pthread_mutex_unlock(&z->lock);
    if (slot < 0)
        free(e);
    return slot;
}

/* The handle of the zone's export of m or x, made on the first export (exporting again gives
 * the same handle: CUDA's "may be called multiple times"). */
static CUresult ipc_handle_for(struct rq *r, struct ipc_mem *m, struct ipc_event *x,
                               uint64_t size, uint8_t handle[64])
{
    struct zone *z = r->s->zone;
    long slot;

    pthread_mutex_lock(&z->lock);
    slot = ipc_find_export_locked(z, m, x);
    if (slot >= 0)
        ipc_encode(z, (uint32_t)slot, z->ipc[slot], handle);
    pthread_mutex_unlock(&z->lock);
    if (slot >= 0)
        return CUDA_SUCCESS;
    slot = ipc_add_export(r, m, x, size);
    if (slot == -ENOSPC)
        return rq_refuse_as(r, WM_REF_LIMIT, CUDA_ERROR_OUT_OF_MEMORY,
                            "the zone already has %u exports", ZONE_MAX_IPC_EXPORTS);
    if (slot < 0)
        return slot == -EIO ? CUDA_ERROR_OPERATING_SYSTEM : CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&z->lock);
    ipc_encode(z, (uint32_t)slot, z->ipc[slot], handle);
    pthread_mutex_unlock(&z->lock);
    return CUDA_SUCCESS;
}

/* Makes allocation a shareable: its memory becomes reference counted (the allocation's
 * reference) and takes over its quota charge. */
static CUresult ipc_share(struct rq *r, struct alloc *a)
{
    struct ipc_mem *m;

    if (a->ipc != NULL)
        return CUDA_SUCCESS;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    m->baddr = a->baddr;
    m->size = a->size;
    m->charged = a->charged;
    m->refs = 1;
    pthread_rwlock_wrlock(&r->s->at_lock);
    a->ipc = m;
    pthread_rwlock_unlock(&r->s->at_lock);
    return CUDA_SUCCESS;
}

CUresult h_IPC_MEM_EXPORT(struct rq *r, const struct idm_req_IPC_MEM_EXPORT *q,
                          struct idm_rep_IPC_MEM_EXPORT *p)
{
    long i = atab_find_base(&r->s->at, q->dptr);
    struct alloc *a;
    CUresult rc;

    if (i < 0 || r->s->at.v[i].kind != ALLOC_MEM)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "0x%llx is not the base of a memory allocation of the session",
                         (unsigned long long)q->dptr);
    a = &r->s->at.v[i];
    if ((rc = ipc_share(r, a)) != CUDA_SUCCESS)
        return rc;
    return ipc_handle_for(r, a->ipc, NULL, a->size, p->handle);
}

/* The export of the given kind (magic) a handle names in this zone, checked (under the zone's
 * lock), or NULL with *rc set and the refusal logged. */
static const struct ipc_export *ipc_lookup_locked(struct rq *r, const uint8_t handle[64],
                                                  const char *magic, CUresult *rc)
{
    struct zone *z = r->s->zone;
    struct ipc_export *e;
    struct ipc_wire w;

    memcpy(&w, handle, sizeof(w));
    *rc = CUDA_ERROR_INVALID_HANDLE;
    if (memcmp(w.magic, magic, sizeof(w.magic)) != 0) {
        (void)rq_refuse(r, *rc, "not an IPC %s handle of this proxy",
                        magic[7] == 'e' ? "event" : "memory");
        return NULL;
    }
    if (w.zone_id != z->id) {
        (void)rq_refuse(r, *rc, "an IPC handle of another zone (id %u)", w.zone_id);
        return NULL;
    }
    e = w.slot < ZONE_MAX_IPC_EXPORTS ? z->ipc[w.slot] : NULL;
    if (e == NULL || !token_equal(e->token, w.token)) {
        (void)rq_refuse(r, *rc, "IPC handle %u names no live export (freed, forged or guessed)",
                        w.slot);
        return NULL;
    }
    if (e->owner == r->s) {
        *rc = CUDA_ERROR_INVALID_CONTEXT;
        (void)rq_refuse(r, *rc, "an IPC handle opened in the process that exported it");
        return NULL;
    }
    return e;
}

/* Counts one more import of the zone (under its lock), or refuses past the bound. */
static CUresult ipc_count_import_locked(struct rq *r)
{
    struct zone *z = r->s->zone;

    if (z->ipc_imports >= ZONE_MAX_IPC_IMPORTS)
        return rq_refuse_as(r, WM_REF_LIMIT, CUDA_ERROR_OUT_OF_MEMORY,
                            "the zone already has %u IPC imports open", ZONE_MAX_IPC_IMPORTS);
    z->ipc_imports++;
    return CUDA_SUCCESS;
}

/* This session's import of m, or -1. */
static long ipc_find_import(const struct session *s, const struct ipc_mem *m)
{
    for (uint32_t i = 0; i < s->at.n; i++)
        if (s->at.v[i].kind == ALLOC_IPC && s->at.v[i].ipc == m)
            return i;
    return -1;
}

/* Adds one open to import i of the session (at most IPC_MAX_OPENS). */
#define IPC_MAX_OPENS (1u << 20)
static CUresult ipc_reopen(struct rq *r, long i, struct idm_rep_IPC_MEM_OPEN *p)
{
    struct session *s = r->s;

    if (s->at.v[i].opens >= IPC_MAX_OPENS)
        return rq_refuse_as(r, WM_REF_LIMIT, CUDA_ERROR_OUT_OF_MEMORY,
                            "0x%llx is already open %u times", (unsigned long long)s->at.v[i].va,
                            IPC_MAX_OPENS);
    pthread_rwlock_wrlock(&s->at_lock);
    s->at.v[i].opens++;
    pthread_rwlock_unlock(&s->at_lock);
    p->dptr = s->at.v[i].va;
    p->size = s->at.v[i].size;
    return CUDA_SUCCESS;
}

/* Adds the import to the session's table (the reference to its memory taken): at an address of
 * the session's own (real backend: the device address, valid in the zone's one context). */
static CUresult ipc_map(struct rq *r, struct alloc *a, struct idm_rep_IPC_MEM_OPEN *p)
{
    struct session *s = r->s;
    int err = 0;

    a->baddr = a->ipc->baddr;
    a->buffer_id = s->next_buffer_id++;
    if (s->be->real_addresses)
        a->va = a->baddr;
    else
        err = zone_reserve_va(s->zone, a->size, &a->va);
    if (err == 0) {
        pthread_rwlock_wrlock(&s->at_lock);
        err = atab_insert(&s->at, a);
        pthread_rwlock_unlock(&s->at_lock);
    }
    if (err != 0) {
        log_warn("zone=%s %s: an IPC import of %llu bytes failed: %s", ZN(r), PEER(r),
                 (unsigned long long)a->size, strerror(-err));
        session_put_ipc(s, a);
        return cu_from_errno(err);
    }
    p->dptr = a->va;
    p->size = a->size;
    return CUDA_SUCCESS;
}

CUresult h_IPC_MEM_OPEN(struct rq *r, const struct idm_req_IPC_MEM_OPEN *q,
                        struct idm_rep_IPC_MEM_OPEN *p)
{
    struct zone *z = r->s->zone;
    struct alloc a = {.kind = ALLOC_IPC, .opens = 1};
    const struct ipc_export *e;
    CUresult rc;
    long i = -1;

    if ((rc = rq_ctx(r, q->ctx, &a.owner)) != CUDA_SUCCESS)
        return rc;
    if (q->flags & ~(uint32_t)CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "IPC open flags 0x%x", q->flags);
    pthread_mutex_lock(&z->lock);
    if ((e = ipc_lookup_locked(r, q->handle, IPC_MAGIC_MEM, &rc)) != NULL) {
        a.ipc = e->mem;
        a.size = e->size;
        /* Opened again by this session: the same address, one more open to close (CUDA). */
        if ((i = ipc_find_import(r->s, a.ipc)) < 0 &&
            (rc = ipc_count_import_locked(r)) == CUDA_SUCCESS)
            a.ipc->refs++;
    }
    pthread_mutex_unlock(&z->lock);
    if (e == NULL || (i < 0 && rc != CUDA_SUCCESS))
        return rc;
    if (i >= 0)
        return ipc_reopen(r, i, p);
    return ipc_map(r, &a, p);
}

CUresult h_IPC_MEM_CLOSE(struct rq *r, const struct idm_req_IPC_MEM_CLOSE *q,
                         struct idm_rep_IPC_MEM_CLOSE *p)
{
    long i = atab_find_base(&r->s->at, q->dptr);

    if (i < 0 || r->s->at.v[i].kind != ALLOC_IPC)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "0x%llx is not memory the session opened with cuIpcOpenMemHandle",
                         (unsigned long long)q->dptr);
    pthread_rwlock_wrlock(&r->s->at_lock);
    p->opens = --r->s->at.v[i].opens;
    pthread_rwlock_unlock(&r->s->at_lock);
    if (p->opens > 0)
        return CUDA_SUCCESS;
    /* As cuMemFree: the session's work that may still use the memory ends first. */
    session_drain(r->s);
    r->s->be->zone_sync(r->s->bz);
    session_free_alloc(r->s, i);
    return CUDA_SUCCESS;
}

/* ---- events ---- */

CUresult h_IPC_EVENT_EXPORT(struct rq *r, const struct idm_req_IPC_EVENT_EXPORT *q,
                            struct idm_rep_IPC_EVENT_EXPORT *p)
{
    struct event_obj *e = rq_event(r, q->event);

    if (e == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (e->ipc == NULL || e->imported)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "%s",
                         e->ipc ? "an opened IPC event is not exported again"
                                : "an event created without CU_EVENT_INTERPROCESS");
    return ipc_handle_for(r, NULL, e->ipc, 0, p->handle);
}

CUresult h_IPC_EVENT_OPEN(struct rq *r, const struct idm_req_IPC_EVENT_OPEN *q,
                          struct idm_rep_IPC_EVENT_OPEN *p)
{
    struct zone *z = r->s->zone;
    const struct ipc_export *x;
    struct event_obj *e;
    CUresult rc;
    int err;

    if ((e = calloc(1, sizeof(*e))) == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if ((rc = rq_ctx(r, q->ctx, &e->ctx)) != CUDA_SUCCESS)
        goto free_obj;
    pthread_mutex_lock(&z->lock);
    if ((x = ipc_lookup_locked(r, q->handle, IPC_MAGIC_EVENT, &rc)) != NULL &&
        (rc = ipc_count_import_locked(r)) == CUDA_SUCCESS) {
        x->ev->refs++;
        e->ipc = x->ev;
        e->be = x->ev->be;
    }
    pthread_mutex_unlock(&z->lock);
    if (e->ipc == NULL)
        goto free_obj;
    e->imported = 1;
    e->flags = CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING;
    if ((err = htab_insert(&r->s->ht, HT_EVENT, e, &p->event)) != 0) {
        session_free_event(r->s, 0, e); /* drops the reference; handle 0 is no live handle */
        return cu_from_errno(err);
    }
    return CUDA_SUCCESS;

free_obj:
    free(e);
    return rc;
}
