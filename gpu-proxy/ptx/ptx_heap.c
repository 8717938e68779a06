/* ptx_heap.c - the device-side malloc/free heap of the simulated GPU: a range of device memory
 * the caller owns (and charges), carved first-fit in 16-byte units. The bookkeeping (free
 * extents and live blocks, both sorted by offset) lives on the host, so a kernel writing over
 * its heap cannot corrupt it; calls from several host threads are serialised by a mutex. */
#include "ptx.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ext {
    uint64_t off, len;
};

struct ptx_heap {
    pthread_mutex_t lock;
    uint64_t base, size, used;
    struct ext *free_ext, *live; /* sorted by offset; free extents never touch each other */
    uint32_t nfree, nlive, cap;  /* cap: entries of each array */
};

int ptx_heap_create(uint64_t base, uint64_t size, struct ptx_heap **out)
{
    *out = NULL;
    if (size < 16 || base + size < base || (base & 15))
        return -EINVAL;
    struct ptx_heap *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->cap = 64;
    h->free_ext = calloc(h->cap, sizeof(struct ext));
    h->live = calloc(h->cap, sizeof(struct ext));
    int prc = h->free_ext && h->live ? pthread_mutex_init(&h->lock, NULL) : ENOMEM;
    if (prc) {
        free(h->free_ext);
        free(h->live);
        free(h);
        return -prc;
    }
    h->base = base;
    h->size = size & ~15ull;
    h->free_ext[0] = (struct ext){0, h->size};
    h->nfree = 1;
    *out = h;
    return 0;
}

void ptx_heap_destroy(struct ptx_heap *h)
{
    if (!h)
        return;
    pthread_mutex_destroy(&h->lock);
    free(h->free_ext);
    free(h->live);
    free(h);
}

uint64_t ptx_heap_used(struct ptx_heap *h)
{
    pthread_mutex_lock(&h->lock);
    uint64_t u = h->used;
    pthread_mutex_unlock(&h->lock);
    return u;
}

/* Room for one more entry in each array (both grow together); -1 past PTX_HEAP_MAX_BLOCKS. */
static int reserve(struct ptx_heap *h)
{
    if (h->nfree < h->cap && h->nlive < h->cap)
        return 0;
    if (h->cap >= PTX_HEAP_MAX_BLOCKS)
        return -1;
    uint32_t cap = h->cap * 2;
    struct ext *f = realloc(h->free_ext, cap * sizeof(*f));
    if (!f)
        return -1;
    h->free_ext = f;
    struct ext *l = realloc(h->live, cap * sizeof(*l));
    if (!l)
        return -1;
    h->live = l;
    h->cap = cap;
    return 0;
}

/* First index of a[0..n) whose offset is >= off. */
static uint32_t lower(const struct ext *a, uint32_t n, uint64_t off)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid].off < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void insert_at(struct ext *a, uint32_t *n, uint32_t i, struct ext e)
{
    memmove(&a[i + 1], &a[i], (*n - i) * sizeof(*a));
    a[i] = e;
    (*n)++;
}

static void remove_at(struct ext *a, uint32_t *n, uint32_t i)
{
    memmove(&a[i], &a[i + 1], (*n - i - 1) * sizeof(*a));
    (*n)--;
}

uint64_t ptx_heap_malloc(struct ptx_heap *h, uint64_t size)
{
    if (size == 0 || size > h->size)
        return 0;
    uint64_t len = (size + 15) & ~15ull;
    uint64_t addr = 0;
    pthread_mutex_lock(&h->lock);
    for (uint32_t i = 0; i < h->nfree && !addr; i++) {
        if (h->free_ext[i].len < len || reserve(h)) /* reserve may move the arrays */
            continue;
        struct ext *f = &h->free_ext[i];
        struct ext blk = {f->off, len};
        f->off += len;
        f->len -= len;
        if (f->len == 0)
            remove_at(h->free_ext, &h->nfree, i);
        insert_at(h->live, &h->nlive, lower(h->live, h->nlive, blk.off), blk);
        h->used += len;
        addr = h->base + blk.off;
    }
    pthread_mutex_unlock(&h->lock);
    return addr;
}

int ptx_heap_free(struct ptx_heap *h, uint64_t addr)
{
    if (addr == 0)
        return 0;
    pthread_mutex_lock(&h->lock);
    uint64_t off = addr - h->base;
    uint32_t i = lower(h->live, h->nlive, off);
    if (addr < h->base || i == h->nlive || h->live[i].off != off) {
        pthread_mutex_unlock(&h->lock);
        return -EINVAL;
    }
    struct ext e = h->live[i];
    remove_at(h->live, &h->nlive, i);
    h->used -= e.len;
    uint32_t j = lower(h->free_ext, h->nfree, e.off);
    int prev = j > 0 && h->free_ext[j - 1].off + h->free_ext[j - 1].len == e.off;
    int next = j < h->nfree && e.off + e.len == h->free_ext[j].off;
    if (prev && next) {
        h->free_ext[j - 1].len += e.len + h->free_ext[j].len;
        remove_at(h->free_ext, &h->nfree, j);
    } else if (prev) {
        h->free_ext[j - 1].len += e.len;
    } else if (next) {
        h->free_ext[j].off = e.off;
        h->free_ext[j].len += e.len;
    } else {
        /* a live block came out of the arrays, so there is room for one free extent */
        insert_at(h->free_ext, &h->nfree, j, e);
    }
    pthread_mutex_unlock(&h->lock);
    return 0;
}
