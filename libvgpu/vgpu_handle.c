/* vgpu_handle.c - the table behind the handles libvgpu gives out for its own records
 * (CUcontext, CUmodule = CUlibrary, CUfunction = CUkernel): a handle encodes a slot, the slot's
 * generation and the record's type, and every use looks it up here, so a stale, forged or
 * wrong-type handle is refused without anything being read through it. A slot's generation
 * grows at each free and a slot whose generation is spent is never reused, so no handle value
 * is given out twice in a process's life (libraries such as cuBLAS compare and keep them). */
#include "vgpu.h"

#include <errno.h>
#include <stdlib.h>

/* bits 0-23 slot, 24-47 generation (from 1), 48-55 type, 56-63 VGPU_HANDLE_TAG: never NULL,
 * never a canonical user-space address, so a handle dereferenced by mistake faults at once. */
#define SLOT_BITS 24
#ifndef VGPU_HANDLE_GEN_BITS /* a unit test builds this file with fewer */
#define VGPU_HANDLE_GEN_BITS 24
#endif
#ifndef VGPU_HANDLE_SLOTS   /* at most 1 << SLOT_BITS; a unit test builds it with fewer */
#define VGPU_HANDLE_SLOTS (1u << SLOT_BITS)
#endif
#define GEN_MAX ((1u << VGPU_HANDLE_GEN_BITS) - 1)
#define VGPU_HANDLE_TAG 0xC7ull
#define CHUNK_SLOTS 4096u
#define MAX_CHUNKS (VGPU_HANDLE_SLOTS / CHUNK_SLOTS)

struct slot {
    void *obj;          /* NULL: free */
    uint32_t gen;       /* of the live handle, or the next one to give out */
    uint32_t next_free; /* index + 1 of the next free slot, 0 none */
    uint8_t type;
};

/* Chunks never move once allocated: the table grows without copying. */
static struct {
    pthread_mutex_t lock;
    struct slot *chunk[MAX_CHUNKS];
    uint32_t nslots;    /* slots ever used */
    uint32_t free_head; /* index + 1, 0 none */
    uint32_t live;
} tab = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t encode(uint32_t i, uint32_t gen, enum vgpu_htype t)
{
    return VGPU_HANDLE_TAG << 56 | (uint64_t)t << 48 | (uint64_t)gen << SLOT_BITS | i;
}

static struct slot *slot_at(uint32_t i)
{
    return &tab.chunk[i / CHUNK_SLOTS][i % CHUNK_SLOTS];
}

/* A slot that was never used, the table grown when needed; NULL when full (with errno). */
static struct slot *slot_fresh_locked(uint32_t *index)
{
    if (tab.nslots == VGPU_HANDLE_SLOTS) {
        errno = ENOSPC;
        return NULL;
    }
    uint32_t c = tab.nslots / CHUNK_SLOTS;
    if (tab.chunk[c] == NULL && !(tab.chunk[c] = calloc(CHUNK_SLOTS, sizeof(struct slot))))
        return NULL;
    *index = tab.nslots++;
    struct slot *s = slot_at(*index);
    s->gen = 1;
    return s;
}

uint64_t vgpu_handle_new(enum vgpu_htype t, void *obj)
{
    uint32_t i = 0;
    struct slot *s;
    if (obj == NULL || t == 0)
        return 0;
    pthread_mutex_lock(&tab.lock);
    if (tab.free_head != 0) {
        i = tab.free_head - 1;
        s = slot_at(i);
        tab.free_head = s->next_free;
    } else if ((s = slot_fresh_locked(&i)) == NULL) {
        int err = errno;
        uint32_t live = tab.live;
        pthread_mutex_unlock(&tab.lock);
        VLOG(VGPU_LOG_ERROR, "no handle for a new %s: %s (%u live)", vgpu_htype_name(t),
             err == ENOSPC ? "all handle slots are used" : "out of memory", live);
        return 0;
    }
    s->obj = obj;
    s->type = (uint8_t)t;
    s->next_free = 0;
    tab.live++;
    uint64_t h = encode(i, s->gen, t);
    pthread_mutex_unlock(&tab.lock);
    return h;
}

/* The live slot h names, if it is of type t; caller holds the lock. */
static struct slot *lookup_locked(uint64_t h, enum vgpu_htype t)
{
    uint32_t i = (uint32_t)(h & ((1u << SLOT_BITS) - 1));
    uint32_t gen = (uint32_t)(h >> SLOT_BITS) & ((1u << 24) - 1);
    if (h >> 56 != VGPU_HANDLE_TAG || (h >> 48 & 0xff) != (uint64_t)t || i >= tab.nslots)
        return NULL;
    struct slot *s = slot_at(i);
    return (s->obj != NULL && s->gen == gen && s->type == (uint8_t)t) ? s : NULL;
}

void *vgpu_handle_get(uint64_t h, enum vgpu_htype t)
{
    pthread_mutex_lock(&tab.lock);
    struct slot *s = lookup_locked(h, t);
    void *obj = s ? s->obj : NULL;
    pthread_mutex_unlock(&tab.lock);
    return obj;
}

int vgpu_handle_free(uint64_t h, enum vgpu_htype t)
{
    pthread_mutex_lock(&tab.lock);
    struct slot *s = lookup_locked(h, t);
    if (s == NULL) {
        pthread_mutex_unlock(&tab.lock);
        return -EINVAL;
    }
    s->obj = NULL;
    tab.live--;
    if (s->gen < GEN_MAX) { /* else retired: its every handle value has been given out */
        s->gen++;
        s->next_free = tab.free_head;
        tab.free_head = (uint32_t)(h & ((1u << SLOT_BITS) - 1)) + 1;
    }
    pthread_mutex_unlock(&tab.lock);
    return 0;
}

const char *vgpu_htype_name(enum vgpu_htype t)
{
    switch (t) {
    case VGPU_H_CTX:
        return "context";
    case VGPU_H_LIB:
        return "module";
    case VGPU_H_FUNC:
        return "function";
    }
    return "object";
}
