/* zone.c - zones and their sessions: typed handle tables with generations, sorted allocation
 * tables of zone-virtual ranges, quota accounting, and the one teardown path that releases a
 * session's objects in dependency order (work drained, events, streams, graphs, kernels,
 * libraries, images, memory, contexts). */
#include "zone.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"
#include "log.h"
#include "stream.h"

/* ---- handle table ---- */

#define H_TYPE(h) ((uint8_t)((h) >> 56))
#define H_GEN(h) ((uint32_t)(((h) >> 32) & 0xFFFFFFu))
#define H_IDX(h) ((uint32_t)(h))

void htab_init(struct handle_table *t, uint32_t gen_seed)
{
    memset(t, 0, sizeof(*t));
    t->free_head = UINT32_MAX;
    t->gen_seed = (gen_seed & 0xFFFFFFu) ? (gen_seed & 0xFFFFFFu) : 1;
}

void htab_destroy(struct handle_table *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
    t->free_head = UINT32_MAX;
}

int htab_insert(struct handle_table *t, uint8_t type, void *obj, idm_handle *out)
{
    uint32_t i;

    if (obj == NULL || type == HT_NONE)
        return -EINVAL;
    if (t->free_head != UINT32_MAX) {
        i = t->free_head;
        t->free_head = t->slots[i].next_free;
    } else {
        if (t->used == t->cap) {
            uint32_t ncap = t->cap ? t->cap * 2 : 64;
            struct handle_slot *ns;
            if (t->cap >= HTAB_MAX_OBJECTS)
                return -ENOMEM;
            if (ncap > HTAB_MAX_OBJECTS)
                ncap = HTAB_MAX_OBJECTS;
            ns = realloc(t->slots, (size_t)ncap * sizeof(*ns));
            if (ns == NULL)
                return -ENOMEM;
            t->slots = ns;
            t->cap = ncap;
        }
        i = t->used++;
        /* Each table starts its generations at its own seed, so equal slot numbers in two
         * sessions still give different handle values. */
        t->slots[i].gen = (t->gen_seed + i * 7919u) & 0xFFFFFFu;
        if (t->slots[i].gen == 0)
            t->slots[i].gen = 1;
    }
    t->slots[i].obj = obj;
    t->slots[i].type = type;
    t->slots[i].next_free = UINT32_MAX;
    t->live++;
    *out = ((uint64_t)type << 56) | ((uint64_t)t->slots[i].gen << 32) | i;
    return 0;
}

void *htab_lookup(const struct handle_table *t, idm_handle h, uint8_t type)
{
    uint32_t i = H_IDX(h);

    if (type == HT_NONE || H_TYPE(h) != type || i >= t->used)
        return NULL;
    if (t->slots[i].obj == NULL || t->slots[i].type != type || t->slots[i].gen != H_GEN(h))
        return NULL;
    return t->slots[i].obj;
}

int htab_remove(struct handle_table *t, idm_handle h, uint8_t type)
{
    uint32_t i = H_IDX(h);

    if (htab_lookup(t, h, type) == NULL)
        return -ENOENT;
    t->slots[i].obj = NULL;
    t->slots[i].type = HT_NONE;
    /* A freed value must never name a live object again: bump the generation. */
    t->slots[i].gen = (t->slots[i].gen + 1) & 0xFFFFFFu;
    if (t->slots[i].gen == 0)
        t->slots[i].gen = 1;
    t->slots[i].next_free = t->free_head;
    t->free_head = i;
    t->live--;
    return 0;
}

void *htab_slot(const struct handle_table *t, uint32_t i, uint8_t type, idm_handle *h)
{
    const struct handle_slot *s;

    if (i >= t->used)
        return NULL;
    s = &t->slots[i];
    if (s->obj == NULL || (type != HT_NONE && s->type != type))
        return NULL;
    if (h)
        *h = ((uint64_t)s->type << 56) | ((uint64_t)s->gen << 32) | i;
    return s->obj;
}

/* ---- allocation table ---- */

void atab_init(struct alloc_table *t)
{
    memset(t, 0, sizeof(*t));
}

void atab_destroy(struct alloc_table *t)
{
    free(t->v);
    memset(t, 0, sizeof(*t));
}

/* First index whose va is > key. */
static uint32_t atab_upper(const struct alloc_table *t, uint64_t key)
{
    uint32_t lo = 0, hi = t->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->v[mid].va <= key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int atab_insert(struct alloc_table *t, const struct alloc *a)
{
    uint32_t pos;

    if (a->size == 0 || a->va + a->size < a->va)
        return -EINVAL;
    pos = atab_upper(t, a->va);
    /* Refuse overlaps with the neighbours. */
    if (pos > 0 && t->v[pos - 1].va + t->v[pos - 1].size > a->va)
        return -EEXIST;
    if (pos < t->n && a->va + a->size > t->v[pos].va)
        return -EEXIST;
    if (t->n == t->cap) {
        uint32_t ncap = t->cap ? t->cap * 2 : 64;
        struct alloc *nv = realloc(t->v, (size_t)ncap * sizeof(*nv));
        if (nv == NULL)
            return -ENOMEM;
        t->v = nv;
        t->cap = ncap;
    }
    memmove(&t->v[pos + 1], &t->v[pos], (size_t)(t->n - pos) * sizeof(*t->v));
    t->v[pos] = *a;
    t->n++;
    return 0;
}

long atab_find(const struct alloc_table *t, uint64_t va, uint64_t len)
{
    uint32_t pos;
    const struct alloc *a;

    if (len == 0)
        len = 1;
    if (va + len < va)
        return -1;
    pos = atab_upper(t, va);
    if (pos == 0)
        return -1;
    a = &t->v[pos - 1];
    /* va >= a->va here; check the end without overflow. */
    if (va - a->va >= a->size || len > a->size - (va - a->va))
        return -1;
    return (long)(pos - 1);
}

long atab_find_base(const struct alloc_table *t, uint64_t va)
{
    long i = atab_find(t, va, 1);

    if (i < 0 || t->v[i].va != va)
        return -1;
    return i;
}

long atab_find_span(const struct alloc_table *t, uint64_t va, uint64_t len)
{
    long first = atab_find(t, va, 1);
    uint64_t end = va + len;

    if (first < 0 || len == 0 || end < va)
        return -1;
    for (uint32_t i = (uint32_t)first; i < t->n && t->v[i].kind == ALLOC_VMM_MAP; i++) {
        const struct alloc *a = &t->v[i];
        if (i > (uint32_t)first && (a->va != a[-1].va + a[-1].size ||
                                    a->baddr != a[-1].baddr + a[-1].size))
            return -1;
        if (end - a->va <= a->size)
            return first;
    }
    return -1;
}

int atab_overlaps(const struct alloc_table *t, uint64_t va, uint64_t len)
{
    uint32_t pos = atab_upper(t, va);

    if (pos > 0 && t->v[pos - 1].va + t->v[pos - 1].size > va)
        return 1;
    return pos < t->n && t->v[pos].va - va < len;
}

void atab_remove(struct alloc_table *t, long i)
{
    if (i < 0 || (uint64_t)i >= t->n)
        return;
    memmove(&t->v[i], &t->v[i + 1], (size_t)(t->n - (uint32_t)i - 1) * sizeof(*t->v));
    t->n--;
}

/* ---- sizes and names ---- */

int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    unsigned shift = 0;

    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return -EINVAL;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': shift = 10; end++; break;
    case 'M': shift = 20; end++; break;
    case 'G': shift = 30; end++; break;
    case 'T': shift = 40; end++; break;
    default: return -EINVAL;
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end != 0)
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

int zone_name_valid(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > 63 || !isalnum((unsigned char)name[0]))
        return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '_' && c != '.' && c != '-')
            return 0;
    }
    return 1;
}

/* ---- registry ---- */

/* Each zone owns 1 TiB of zone-virtual address space; bases differ between zones. */
#define ZONE_VA_FIRST 0x200000000000ull
#define ZONE_VA_SPAN (1ull << 40)
#define ZONE_VA_SLOTS 64u
#define ZONE_VA_ALIGN 512ull

void zreg_init(struct zone_registry *r, const struct backend_ops *be)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->be = be;
    r->next_id = 1;
    r->next_seed = 0x5a17u;
}

int zreg_add(struct zone_registry *r, const char *name, uint64_t quota, struct zone **out)
{
    struct zone *z;

    if (!zone_name_valid(name))
        return -EINVAL;
    z = calloc(1, sizeof(*z));
    if (z == NULL)
        return -ENOMEM;
    strcpy(z->name, name);
    z->reg = r;
    z->quota = quota;
    z->refs = 2; /* the registry's and the caller's */
    pthread_mutex_init(&z->lock, NULL);
    pthread_cond_init(&z->cond, NULL);

    pthread_mutex_lock(&r->lock);
    for (struct zone *o = r->zones; o; o = o->next) {
        if (strcmp(o->name, name) == 0) {
            pthread_mutex_unlock(&r->lock);
            pthread_mutex_destroy(&z->lock);
            pthread_cond_destroy(&z->cond);
            free(z);
            return -EEXIST;
        }
    }
    z->id = r->next_id++;
    z->va_next = ZONE_VA_FIRST + (uint64_t)(z->id % ZONE_VA_SLOTS) * ZONE_VA_SPAN +
                 (uint64_t)(z->id & 0xFF) * 0x100000ull;
    z->va_end = ZONE_VA_FIRST + (uint64_t)(z->id % ZONE_VA_SLOTS + 1) * ZONE_VA_SPAN;
    z->next = r->zones;
    r->zones = z;
    pthread_mutex_unlock(&r->lock);
    *out = z;
    return 0;
}

struct zone *zreg_get(struct zone_registry *r, const char *name)
{
    struct zone *found = NULL;

    pthread_mutex_lock(&r->lock);
    for (struct zone *z = r->zones; z; z = z->next) {
        if (strcmp(z->name, name) == 0) {
            found = z;
            zone_ref(z);
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    return found;
}

int zreg_unlink(struct zone_registry *r, struct zone *z)
{
    int rc = -ENOENT;

    pthread_mutex_lock(&r->lock);
    for (struct zone **pp = &r->zones; *pp; pp = &(*pp)->next) {
        if (*pp == z) {
            *pp = z->next;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (rc == 0) {
        pthread_mutex_lock(&z->lock);
        z->removed = 1;
        pthread_mutex_unlock(&z->lock);
        zone_unref(z);
    }
    return rc;
}

void zone_ref(struct zone *z)
{
    pthread_mutex_lock(&z->lock);
    z->refs++;
    pthread_mutex_unlock(&z->lock);
}

void zone_publish(struct zone *z)
{
    struct worker_stats *p = z->pub;

    if (p == NULL)
        return;
    pthread_mutex_lock(&z->lock);
    __atomic_store_n(&p->used, z->used, __ATOMIC_RELAXED);
    __atomic_store_n(&p->clients, z->clients, __ATOMIC_RELAXED);
    __atomic_store_n(&p->peak, z->peak, __ATOMIC_RELAXED);
    __atomic_store_n(&p->allocations, z->allocs, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&z->lock);
    __atomic_store_n(&p->allocated_bytes,
                     __atomic_load_n(&z->reg->allocated_bytes, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    __atomic_store_n(&p->scrubbed_bytes,
                     __atomic_load_n(&z->reg->scrubbed_bytes, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}

void zone_unref(struct zone *z)
{
    int last;

    pthread_mutex_lock(&z->lock);
    last = --z->refs == 0;
    pthread_mutex_unlock(&z->lock);
    if (last) {
        pthread_mutex_destroy(&z->lock);
        pthread_cond_destroy(&z->cond);
        free(z);
    }
}

/* Takes span bytes of zone address space (under the lock); -ENOSPC. */
static int zone_take_va_locked(struct zone *z, uint64_t span, uint64_t *va)
{
    if (span > z->va_end - z->va_next)
        return -ENOSPC;
    *va = z->va_next;
    /* Leave a one-alignment gap so one allocation's end is never another's start. */
    z->va_next += span + ZONE_VA_ALIGN;
    if (z->va_next > z->va_end)
        z->va_next = z->va_end;
    return 0;
}

static uint64_t zone_span(uint64_t bytes)
{
    return (bytes + ZONE_VA_ALIGN - 1) & ~(ZONE_VA_ALIGN - 1);
}

int zone_charge(struct zone *z, uint64_t bytes, uint64_t *va)
{
    uint64_t span = zone_span(bytes);
    int rc = 0;

    if (span < bytes)
        return -ENOMEM;
    pthread_mutex_lock(&z->lock);
    if (z->quota && (bytes > z->quota || z->used > z->quota - bytes))
        rc = -ENOMEM; /* counted as a refusal (WM_REF_QUOTA) where the request is refused */
    else if (va != NULL)
        rc = zone_take_va_locked(z, span, va);
    if (rc == 0)
        z->used += bytes;
    if (z->used > z->peak)
        z->peak = z->used;
    pthread_mutex_unlock(&z->lock);
    if (rc == 0) {
        __atomic_add_fetch(&z->reg->allocated_bytes, bytes, __ATOMIC_RELAXED);
        zone_publish(z);
    }
    return rc;
}

int zone_recharge(struct zone *z, uint64_t *held, uint64_t bytes)
{
    uint64_t old;
    int rc = 0;

    pthread_mutex_lock(&z->lock);
    old = *held;
    if (bytes > old && z->quota &&
        (bytes - old > z->quota || z->used > z->quota - (bytes - old))) {
        rc = -ENOMEM;
    } else {
        z->used = z->used - old + bytes;
        *held = bytes;
        if (z->used > z->peak)
            z->peak = z->used;
    }
    pthread_mutex_unlock(&z->lock);
    if (rc == 0) {
        if (bytes >= old)
            __atomic_add_fetch(&z->reg->allocated_bytes, bytes - old, __ATOMIC_RELAXED);
        else
            __atomic_sub_fetch(&z->reg->allocated_bytes, old - bytes, __ATOMIC_RELAXED);
        zone_publish(z);
    }
    return rc;
}

int zone_reserve(struct zone *z, uint64_t bytes, uint64_t align, uint64_t *va)
{
    int rc = 0;

    pthread_mutex_lock(&z->lock);
    if (bytes > ZONE_VMM_RESERVE_BYTES - z->vmm_reserved) {
        rc = -ENOSPC;
    } else if (va != NULL) {
        uint64_t base = (z->va_next + align - 1) & ~(align - 1);
        if (base < z->va_next || base > z->va_end || bytes > z->va_end - base) {
            rc = -ENOSPC;
        } else {
            *va = base;
            z->va_next = base + bytes + ZONE_VA_ALIGN < z->va_end ? base + bytes + ZONE_VA_ALIGN
                                                                  : z->va_end;
        }
    }
    if (rc == 0)
        z->vmm_reserved += bytes;
    pthread_mutex_unlock(&z->lock);
    return rc;
}

int zone_reserve_va(struct zone *z, uint64_t bytes, uint64_t *va)
{
    uint64_t span = zone_span(bytes);
    int rc;

    if (span < bytes)
        return -ENOSPC;
    pthread_mutex_lock(&z->lock);
    rc = zone_take_va_locked(z, span, va);
    pthread_mutex_unlock(&z->lock);
    return rc;
}

void zone_unreserve(struct zone *z, uint64_t bytes)
{
    pthread_mutex_lock(&z->lock);
    z->vmm_reserved = bytes > z->vmm_reserved ? 0 : z->vmm_reserved - bytes;
    pthread_mutex_unlock(&z->lock);
}

void zone_uncharge(struct zone *z, uint64_t bytes)
{
    pthread_mutex_lock(&z->lock);
    z->used = bytes > z->used ? 0 : z->used - bytes;
    pthread_mutex_unlock(&z->lock);
    __atomic_sub_fetch(&z->reg->allocated_bytes, bytes, __ATOMIC_RELAXED);
    zone_publish(z);
}

void zone_count_alloc(struct zone *z, int delta)
{
    pthread_mutex_lock(&z->lock);
    if (delta > 0)
        z->allocs++;
    else if (z->allocs > 0)
        z->allocs--;
    pthread_mutex_unlock(&z->lock);
    zone_publish(z);
}

/* ---- sessions ---- */

/* Closes the session's backend view; when the backend dropped what its clients shared (the
 * real GPU's context, with the driver's device heap), the heap's charge goes back. */
static void close_view(struct session *s)
{
    struct zone *z = s->zone;

    if (s->be->zone_close(s->bz) == 1 && zone_recharge(z, &z->heap_charged, 0) != 0)
        log_error("zone=%s %s: giving back the device heap's charge failed", z->name, s->peer);
}

int session_open(struct zone *z, struct idm_conn *conn, void *window, uint64_t window_size,
                 uint32_t max_payload, const char *peer, struct session **out)
{
    struct session *s;
    int rc;

    if (max_payload < IDM_SLOT_SIZE_MIN - sizeof(struct idm_hdr) ||
        max_payload > (IDM_MSG_BYTES_MAX > IDM_SLOT_SIZE_MAX ? IDM_MSG_BYTES_MAX
                                                             : IDM_SLOT_SIZE_MAX) -
                          sizeof(struct idm_hdr))
        return -EINVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->max_reply = max_payload;
    s->rbuf = calloc(1, s->max_reply);
    if (s->rbuf == NULL) {
        rc = -ENOMEM;
        goto free_session;
    }
    s->zone = z;
    s->be = z->reg->be;
    s->conn = conn;
    s->window = window;
    s->window_size = window ? window_size : 0;
    s->next_buffer_id = 1;
    snprintf(s->peer, sizeof(s->peer), "%s", peer ? peer : "-");
    pthread_mutex_lock(&z->reg->lock);
    htab_init(&s->ht, z->reg->next_seed);
    z->reg->next_seed = (z->reg->next_seed * 1103515245u + 12345u) & 0xFFFFFFu;
    pthread_mutex_unlock(&z->reg->lock);
    atab_init(&s->at);
    rc = -pthread_rwlock_init(&s->at_lock, NULL);
    if (rc != 0)
        goto free_rbuf;
    rc = session_runs_init(s);
    if (rc != 0)
        goto destroy_lock;
    rc = s->be->zone_open(z->name, &s->bz);
    if (rc != 0) {
        log_error("zone=%s %s: the %s backend refused a new client context (CUresult %d)",
                  z->name, s->peer, s->be->name, rc);
        rc = -EIO;
        goto fini_runs;
    }
    pthread_mutex_lock(&z->lock);
    if (z->clients >= ZONE_MAX_CLIENTS || z->removed) {
        pthread_mutex_unlock(&z->lock);
        log_warn("zone=%s %s: client refused: %s", z->name, s->peer,
                 z->removed ? "the zone is being removed" : "too many clients in the zone");
        if (!z->removed)
            wm_refused(z->m, WM_REF_LIMIT);
        rc = -EBUSY;
        goto close_backend;
    }
    z->refs++;
    z->clients++;
    pthread_mutex_unlock(&z->lock);
    if (z->m)
        wm_add(&z->m->connections, 1);
    zone_publish(z);
    *out = s;
    return 0;

close_backend:
    close_view(s);
fini_runs:
    session_runs_fini(s);
destroy_lock:
    pthread_rwlock_destroy(&s->at_lock);
free_rbuf:
    free(s->rbuf);
free_session:
    free(s);
    return rc;
}

/* Unmaps one mapping of a physical allocation (already out of the table); the allocation goes
 * with its last mapping once it has no references left. */
static void free_mapping(struct session *s, const struct alloc *a)
{
    struct vmem_obj *m = a->vmem;
    CUresult rc = s->be->vmem_unmap(s->bz, a->baddr, a->size);

    if (rc != CUDA_SUCCESS)
        log_error("zone=%s %s: backend failed to unmap %llu bytes at 0x%llx (CUresult %d)",
                  s->zone->name, s->peer, (unsigned long long)a->size,
                  (unsigned long long)a->va, rc);
    if (--m->maps == 0 && m->refs == 0)
        session_free_vmem(s, m);
}

void session_free_vmem(struct session *s, struct vmem_obj *m)
{
    CUresult rc = s->be->vmem_release(s->bz, m->bv);

    if (rc != CUDA_SUCCESS)
        log_error("zone=%s %s: backend failed to scrub/release a physical allocation of %llu "
                  "bytes (CUresult %d)", s->zone->name, s->peer, (unsigned long long)m->size, rc);
    else
        __atomic_add_fetch(&s->zone->reg->scrubbed_bytes, m->size, __ATOMIC_RELAXED);
    if (m->handle != 0)
        htab_remove(&s->ht, m->handle, HT_VMEM);
    zone_count_alloc(s->zone, -1);
    zone_uncharge(s->zone, m->size);
    free(m);
}

void session_free_reserve(struct session *s, uint32_t i)
{
    struct vmm_reserve r = s->res[i];
    CUresult rc = s->be->va_free(s->bz, r.baddr, r.size);

    if (rc != CUDA_SUCCESS)
        log_error("zone=%s %s: backend failed to free a reserve of %llu bytes at 0x%llx "
                  "(CUresult %d)", s->zone->name, s->peer, (unsigned long long)r.size,
                  (unsigned long long)r.va, rc);
    s->res[i] = s->res[--s->nres];
    zone_unreserve(s->zone, r.size);
}

/* Scrubs and frees backend memory, then gives its quota back. */
static void session_free_backend(struct session *s, uint64_t va, uint64_t baddr, uint64_t size,
                                 uint64_t charged)
{
    int rc = s->be->mem_free(s->bz, baddr, size);

    if (rc != 0) {
        log_error("zone=%s %s: backend failed to scrub/free %llu bytes at 0x%llx (CUresult %d)",
                  s->zone->name, s->peer, (unsigned long long)size, (unsigned long long)va, rc);
    } else {
        __atomic_add_fetch(&s->zone->reg->scrubbed_bytes, size, __ATOMIC_RELAXED);
    }
    zone_uncharge(s->zone, charged);
}

/* ---- interprocess events ---- */

struct ipc_event *ipc_event_new(struct backend_event *be)
{
    struct ipc_event *x = calloc(1, sizeof(*x));

    if (x == NULL)
        return NULL;
    x->be = be;
    x->refs = 1;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cond, NULL);
    return x;
}

uint64_t ipc_event_ticket(struct ipc_event *x)
{
    pthread_mutex_lock(&x->lock);
    uint64_t t = ++x->issued;
    pthread_mutex_unlock(&x->lock);
    return t;
}

void ipc_event_mark(struct ipc_event *x, uint64_t ticket)
{
    pthread_mutex_lock(&x->lock);
    if (ticket > x->done) {
        x->done = ticket;
        pthread_cond_broadcast(&x->cond);
    }
    pthread_mutex_unlock(&x->lock);
}

int ipc_event_ready(struct ipc_event *x)
{
    pthread_mutex_lock(&x->lock);
    int ready = x->done >= x->issued;
    pthread_mutex_unlock(&x->lock);
    return ready;
}

void ipc_event_wait(struct ipc_event *x)
{
    pthread_mutex_lock(&x->lock);
    uint64_t want = x->issued;
    while (x->done < want)
        pthread_cond_wait(&x->cond, &x->lock);
    pthread_mutex_unlock(&x->lock);
}

/* Retires the zone's exports of m or x (under the zone's lock). */
static void zone_retire_exports_locked(struct zone *z, const struct ipc_mem *m,
                                       const struct ipc_event *x)
{
    for (uint32_t i = 0; i < ZONE_MAX_IPC_EXPORTS; i++) {
        if (z->ipc[i] && ((m && z->ipc[i]->mem == m) || (x && z->ipc[i]->ev == x))) {
            free(z->ipc[i]);
            z->ipc[i] = NULL;
        }
    }
}

void session_free_event(struct session *s, idm_handle h, struct event_obj *e)
{
    struct zone *z = s->zone;
    struct ipc_event *x = e->ipc;
    uint32_t left = 0;

    htab_remove(&s->ht, h, HT_EVENT);
    if (x != NULL) {
        pthread_mutex_lock(&z->lock);
        if (e->imported)
            z->ipc_imports--;
        else
            zone_retire_exports_locked(z, NULL, x);
        left = --x->refs;
        pthread_mutex_unlock(&z->lock);
    }
    if (x == NULL || left == 0)
        s->be->event_destroy(s->bz, e->be);
    if (x != NULL && left == 0) {
        pthread_mutex_destroy(&x->lock);
        pthread_cond_destroy(&x->cond);
        free(x);
    }
    free(e);
}

void session_put_ipc(struct session *s, const struct alloc *a)
{
    struct zone *z = s->zone;
    struct ipc_mem *m = a->ipc;
    uint32_t left;

    pthread_mutex_lock(&z->lock);
    if (a->kind == ALLOC_IPC)
        z->ipc_imports--;
    else
        zone_retire_exports_locked(z, m, NULL);
    left = --m->refs;
    pthread_mutex_unlock(&z->lock);
    if (left == 0) {
        session_free_backend(s, a->va, m->baddr, m->size, m->charged);
        free(m);
    }
}

void session_free_alloc(struct session *s, long i)
{
    struct alloc a = s->at.v[i];

    pthread_rwlock_wrlock(&s->at_lock);
    atab_remove(&s->at, i);
    pthread_rwlock_unlock(&s->at_lock);
    if (a.kind == ALLOC_MEM)
        zone_count_alloc(s->zone, -1);
    if (a.kind == ALLOC_VMM_MAP) {
        free_mapping(s, &a);
        return;
    }
    if (a.ipc != NULL) {
        session_put_ipc(s, &a);
        return;
    }
    if (a.kind == ALLOC_GLOBAL_MAPPED) {
        /* The backend's library owns the memory; only the zone's mapping goes. */
        zone_uncharge(s->zone, a.charged);
        return;
    }
    session_free_backend(s, a.va, a.baddr, a.size, a.charged);
}

void session_free_image(struct session *s, idm_handle h, struct image_obj *im)
{
    htab_remove(&s->ht, h, HT_IMAGE);
    s->staging_bytes -= im->size;
    zone_uncharge(s->zone, im->size);
    free(im->data);
    free(im);
}

void session_free_graph(struct session *s, idm_handle h, uint8_t type, struct graph_obj *g)
{
    for (uint32_t i = 0; i < g->n; i++) {
        free(g->v[i].deps);
        free(g->v[i].params);
    }
    free(g->v);
    __atomic_sub_fetch(&s->zone->graph_bytes, g->bytes, __ATOMIC_RELAXED);
    htab_remove(&s->ht, h, type);
    s->ngraphs--;
    free(g);
}

void session_free_library(struct session *s, idm_handle h, struct library_obj *lib)
{
    /* Kernels first (they point into the library), then the library's own globals. */
    while (lib->kernels) {
        struct kernel_obj *k = lib->kernels;
        lib->kernels = k->next;
        htab_remove(&s->ht, k->self, HT_KERNEL);
        free(k->params);
        free(k->name);
        free(k);
    }
    for (long i = (long)s->at.n - 1; i >= 0; i--)
        if (s->at.v[i].owner == h &&
            (s->at.v[i].kind == ALLOC_GLOBAL_OWNED || s->at.v[i].kind == ALLOC_GLOBAL_MAPPED))
            session_free_alloc(s, i);
    s->be->library_unload(s->bz, lib->bl);
    zone_uncharge(s->zone, lib->charged);
    htab_remove(&s->ht, h, HT_LIBRARY);
    free(lib);
}

void session_free_tex(struct session *s, idm_handle h, struct tex_obj *t)
{
    s->be->tex_destroy(s->bz, t->value, t->d.surface);
    htab_remove(&s->ht, h, HT_TEX);
    __atomic_sub_fetch(&s->zone->ntexobjs, 1, __ATOMIC_RELAXED);
    free(t);
}

void session_free_array(struct session *s, idm_handle h, struct array_obj *a)
{
    struct tex_obj *t;
    idm_handle th;

    for (uint32_t i = 0; i < s->ht.used; i++)
        if ((t = htab_slot(&s->ht, i, HT_TEX, &th)) != NULL && t->array == h)
            session_free_tex(s, th, t);
    s->be->array_destroy(s->bz, a->ba);
    zone_uncharge(s->zone, a->charged);
    htab_remove(&s->ht, h, HT_ARRAY);
    __atomic_sub_fetch(&s->zone->narrays, 1, __ATOMIC_RELAXED);
    free(a);
}

/* Texture and surface objects, then arrays, of context ctx (0: all). */
static void session_release_arrays(struct session *s, idm_handle ctx)
{
    idm_handle h;
    void *o;

    for (uint32_t i = 0; i < s->ht.used; i++)
        if ((o = htab_slot(&s->ht, i, HT_TEX, &h)) != NULL &&
            (ctx == 0 || ((struct tex_obj *)o)->ctx == ctx))
            session_free_tex(s, h, o);
    for (uint32_t i = 0; i < s->ht.used; i++)
        if ((o = htab_slot(&s->ht, i, HT_ARRAY, &h)) != NULL &&
            (ctx == 0 || ((struct array_obj *)o)->ctx == ctx))
            session_free_array(s, h, o);
}

void session_release(struct session *s, idm_handle ctx)
{
    idm_handle h;
    void *o;
    int rc;
    int clears_sticky = ctx == 0 || ctx == s->primary_ctx;

    /* 1. Stop the kernels that belong to what goes, then drain the rest of the work (stream
     * workers, then the backend); cancelled queued ops drain without running. */
    session_cancel(s, ctx);
    session_drain(s);
    rc = s->be->zone_sync(s->bz);
    if (rc != 0)
        log_debug("zone=%s %s: pending work ended with CUresult %d during release",
                  s->zone->name, s->peer, rc);
    /* 2. events, 3. streams */
    for (uint32_t i = 0; i < s->ht.used; i++) {
        if ((o = htab_slot(&s->ht, i, HT_EVENT, &h)) != NULL) {
            struct event_obj *e = o;
            if (ctx && e->ctx != ctx)
                continue;
            session_free_event(s, h, e);
        }
    }
    for (uint32_t i = 0; i < s->ht.used; i++) {
        if ((o = htab_slot(&s->ht, i, HT_STREAM, &h)) != NULL) {
            struct stream_obj *st = o;
            if (ctx && st->ctx != ctx)
                continue;
            session_forget_stream(s, st);
            stream_stop(st);
            s->be->stream_destroy(s->bz, st->bs);
            htab_remove(&s->ht, h, HT_STREAM);
            free(st);
            s->nstreams--;
        }
    }
    /* 4. graphs (they name kernels and memory by handle and address only) */
    for (uint32_t i = 0; i < s->ht.used; i++) {
        uint8_t t = HT_GRAPH;
        if ((o = htab_slot(&s->ht, i, t, &h)) == NULL)
            o = htab_slot(&s->ht, i, t = HT_GEXEC, &h);
        if (o != NULL && (ctx == 0 || ((struct graph_obj *)o)->ctx == ctx))
            session_free_graph(s, h, t, o);
    }
    /* 5. libraries (with their kernels and globals) */
    for (uint32_t i = 0; i < s->ht.used; i++) {
        if ((o = htab_slot(&s->ht, i, HT_LIBRARY, &h)) != NULL) {
            struct library_obj *lib = o;
            if (ctx && lib->ctx != ctx)
                continue;
            session_free_library(s, h, lib);
        }
    }
    /* 6. staging images (not bound to a context) */
    if (ctx == 0) {
        for (uint32_t i = 0; i < s->ht.used; i++) {
            if ((o = htab_slot(&s->ht, i, HT_IMAGE, &h)) != NULL)
                session_free_image(s, h, o);
        }
    }
    /* 7. texture and surface objects, arrays, then memory (objects may name it) */
    session_release_arrays(s, ctx);
    for (long i = (long)s->at.n - 1; i >= 0; i--)
        if (ctx == 0 || s->at.v[i].owner == ctx)
            session_free_alloc(s, i);
    /* 7b. physical allocations (their mappings went with the memory), then reserves: neither
     * belongs to a context */
    if (ctx == 0) {
        for (uint32_t i = 0; i < s->ht.used; i++)
            if ((o = htab_slot(&s->ht, i, HT_VMEM, &h)) != NULL)
                session_free_vmem(s, o);
        while (s->nres > 0)
            session_free_reserve(s, s->nres - 1);
    }
    /* 8. contexts */
    for (uint32_t i = 0; i < s->ht.used; i++) {
        if ((o = htab_slot(&s->ht, i, HT_CTX, &h)) != NULL) {
            if (ctx && h != ctx)
                continue;
            if (h == s->primary_ctx) {
                s->primary_ctx = 0;
                s->primary_refs = 0;
            }
            htab_remove(&s->ht, h, HT_CTX);
            if (s->be->heap_destroy)
                s->be->heap_destroy(s->bz, ((struct ctx_obj *)o)->heap);
            free(o);
        }
    }
    if (clears_sticky)
        s->sticky = 0;
}

void session_forget_stream(struct session *s, struct stream_obj *st)
{
    struct event_obj *e;

    /* Events recorded there have happened (the stream is drained): forget the stream. */
    for (uint32_t i = 0; i < s->ht.used; i++)
        if ((e = htab_slot(&s->ht, i, HT_EVENT, NULL)) != NULL && e->rec_stream == st)
            e->rec_stream = NULL;
}

void session_close(struct session *s)
{
    struct zone *z = s->zone;
    uint64_t bytes = 0;
    uint32_t allocs = s->at.n, objects = s->ht.live;

    for (uint32_t i = 0; i < s->at.n; i++)
        bytes += s->at.v[i].size;
    session_release(s, 0);
    log_info("zone=%s %s: released %u objects and %u allocations (%llu bytes, scrubbed)",
             z->name, s->peer, objects, allocs, (unsigned long long)bytes);
    session_runs_fini(s);
    close_view(s);
    htab_destroy(&s->ht);
    atab_destroy(&s->at);
    pthread_rwlock_destroy(&s->at_lock);
    free(s->rbuf);
    free(s);
    pthread_mutex_lock(&z->lock);
    z->clients--;
    pthread_cond_broadcast(&z->cond);
    pthread_mutex_unlock(&z->lock);
    zone_publish(z);
    zone_unref(z);
}
