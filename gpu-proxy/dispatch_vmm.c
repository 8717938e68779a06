/* dispatch_vmm.c - virtual memory management handlers (cuMemAddressReserve, cuMemCreate,
 * cuMemMap and their kin): reserves of zone address space (bounded in number and bytes, not
 * charged), physical allocations charged to the zone's quota and held by handle, and mappings
 * between them, which enter the session's allocation table so that copies and kernels reach them
 * like any allocation (without access until cuMemSetAccess). Every size, offset and address is
 * a multiple of IDM_VMM_GRANULARITY. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define GRAN IDM_VMM_GRANULARITY
#define VMM_ALIGN_MAX (1ull << 30)

static CUresult vmm_supported(struct rq *r)
{
    if (r->s->be->va_reserve == NULL)
        return rq_refuse(r, CUDA_ERROR_NOT_SUPPORTED,
                         "the %s backend has no virtual memory management", r->s->be->name);
    return CUDA_SUCCESS;
}

/* size (not 0) and every other value multiples of the granularity. */
static CUresult vmm_sizes(struct rq *r, uint64_t ptr, uint64_t size, uint64_t offset)
{
    if (size == 0 || size % GRAN || ptr % GRAN || offset % GRAN)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "address 0x%llx, size %llu or offset %llu is not a multiple of the "
                         "granularity (%llu bytes)", (unsigned long long)ptr,
                         (unsigned long long)size, (unsigned long long)offset,
                         (unsigned long long)GRAN);
    if (ptr + size < ptr || offset + size < offset)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "0x%llx+%llu (offset %llu) overflows",
                         (unsigned long long)ptr, (unsigned long long)size,
                         (unsigned long long)offset);
    return CUDA_SUCCESS;
}

/* The reserve of the session that holds [va, va+len), or NULL. */
static struct vmm_reserve *find_reserve(struct session *s, uint64_t va, uint64_t len)
{
    for (uint32_t i = 0; i < s->nres; i++)
        if (va >= s->res[i].va && va - s->res[i].va < s->res[i].size &&
            len <= s->res[i].size - (va - s->res[i].va))
            return &s->res[i];
    return NULL;
}

/* [ptr, ptr+size) must be exactly whole mappings, back to back: the first's index and count. */
static CUresult whole_mappings(struct rq *r, uint64_t ptr, uint64_t size, long *first,
                               uint32_t *n)
{
    const struct alloc_table *t = &r->s->at;
    long i = atab_find_base(t, ptr);
    uint64_t at = ptr;
    uint32_t k = 0;

    while (i >= 0 && (uint64_t)i + k < t->n && t->v[i + k].kind == ALLOC_VMM_MAP &&
           t->v[i + k].va == at && at - ptr < size) {
        at += t->v[i + k].size;
        k++;
    }
    if (i < 0 || k == 0 || at - ptr != size)
        return rq_refuse_as(r, WM_REF_DEVICE_RANGE, CUDA_ERROR_INVALID_VALUE,
                            "0x%llx+%llu is not a run of whole mappings of the zone",
                            (unsigned long long)ptr, (unsigned long long)size);
    *first = i;
    *n = k;
    return CUDA_SUCCESS;
}

/* ---- reserves ---- */

/* The alignment a reserve gets: the granularity, or align when larger (a power of two). */
static CUresult reserve_align(struct rq *r, uint64_t align, uint64_t *out)
{
    if (align != 0 && ((align & (align - 1)) != 0 || align > VMM_ALIGN_MAX))
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "alignment %llu (a power of two up to %llu)",
                         (unsigned long long)align, (unsigned long long)VMM_ALIGN_MAX);
    *out = align > GRAN ? align : GRAN;
    return CUDA_SUCCESS;
}

CUresult h_VMM_RESERVE(struct rq *r, const struct idm_req_VMM_RESERVE *q,
                       struct idm_rep_VMM_RESERVE *p)
{
    struct session *s = r->s;
    int real = s->be->real_addresses;
    uint64_t align, va = 0, baddr;
    CUresult rc;
    int err;

    if ((rc = vmm_supported(r)) || (rc = vmm_sizes(r, 0, q->size, 0)) ||
        (rc = reserve_align(r, q->align, &align)))
        return rc;
    if (s->nres == SESSION_MAX_RESERVES)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "the session holds %u reserves already",
                         SESSION_MAX_RESERVES);
    if ((err = zone_reserve(s->zone, q->size, align, real ? NULL : &va)) != 0)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY,
                         "%llu bytes exceed what the zone may reserve (%llu bytes at once) or "
                         "its address space", (unsigned long long)q->size,
                         (unsigned long long)ZONE_VMM_RESERVE_BYTES);
    rc = s->be->va_reserve(s->bz, q->size, align, &baddr);
    if (rc != CUDA_SUCCESS) {
        zone_unreserve(s->zone, q->size);
        return rq_refuse(r, rc, "the backend could not reserve %llu bytes (CUresult %d)",
                         (unsigned long long)q->size, rc);
    }
    if (real)
        va = baddr;
    s->res[s->nres++] = (struct vmm_reserve){.va = va, .size = q->size, .baddr = baddr};
    p->ptr = va;
    return CUDA_SUCCESS;
}

CUresult h_VMM_FREE(struct rq *r, const struct idm_req_VMM_FREE *q, struct idm_rep_VMM_FREE *p)
{
    struct vmm_reserve *res = find_reserve(r->s, q->ptr, q->size);

    (void)p;
    if (res == NULL || res->va != q->ptr || res->size != q->size)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "0x%llx+%llu is not a reserve of the zone",
                         (unsigned long long)q->ptr, (unsigned long long)q->size);
    if (atab_overlaps(&r->s->at, q->ptr, q->size))
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "the reserve at 0x%llx still has mappings", (unsigned long long)q->ptr);
    session_free_reserve(r->s, (uint32_t)(res - r->s->res));
    return CUDA_SUCCESS;
}

/* ---- physical allocations ---- */

CUresult h_VMM_CREATE(struct rq *r, const struct idm_req_VMM_CREATE *q,
                      struct idm_rep_VMM_CREATE *p)
{
    struct session *s = r->s;
    struct vmem_obj *m;
    CUresult rc;
    int err;

    if ((rc = vmm_supported(r)) || (rc = rq_device(r, q->device)) ||
        (rc = vmm_sizes(r, 0, q->size, 0)))
        return rc;
    if ((err = zone_charge(s->zone, q->size, NULL)) != 0)
        return rq_refuse_as(r, WM_REF_QUOTA, cu_from_errno(err),
                            "%llu bytes exceed the zone's quota of %llu",
                            (unsigned long long)q->size, (unsigned long long)s->zone->quota);
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        rc = rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no host memory for a physical allocation");
        goto uncharge;
    }
    if ((rc = s->be->vmem_create(s->bz, q->size, &m->bv)) != CUDA_SUCCESS) {
        (void)rq_refuse(r, rc, "the backend could not allocate %llu bytes (CUresult %d)",
                        (unsigned long long)q->size, rc);
        goto free_obj;
    }
    m->size = q->size;
    m->device = q->device;
    m->refs = 1;
    if ((err = htab_insert(&s->ht, HT_VMEM, m, &m->handle)) != 0) {
        rc = rq_refuse(r, cu_from_errno(err), "the session's handle table is full");
        s->be->vmem_release(s->bz, m->bv);
        goto free_obj;
    }
    zone_count_alloc(s->zone, +1);
    p->handle = m->handle;
    return CUDA_SUCCESS;

free_obj:
    free(m);
uncharge:
    zone_uncharge(s->zone, q->size);
    return rc;
}

/* Drops one reference; the memory stays while it is mapped (CUDA keeps it until the last
 * unmap). */
CUresult h_VMM_RELEASE(struct rq *r, const struct idm_req_VMM_RELEASE *q,
                       struct idm_rep_VMM_RELEASE *p)
{
    struct vmem_obj *m = rq_lookup(r, q->handle, HT_VMEM);

    (void)p;
    if (m == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (--m->refs > 0)
        return CUDA_SUCCESS;
    if (m->maps > 0) {
        htab_remove(&r->s->ht, m->handle, HT_VMEM);
        m->handle = 0;
        return CUDA_SUCCESS;
    }
    session_free_vmem(r->s, m);
    return CUDA_SUCCESS;
}

CUresult h_VMM_GET_PROPS(struct rq *r, const struct idm_req_VMM_GET_PROPS *q,
                         struct idm_rep_VMM_GET_PROPS *p)
{
    struct vmem_obj *m = rq_lookup(r, q->handle, HT_VMEM);

    if (m == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    p->size = m->size;
    p->device = m->device;
    return CUDA_SUCCESS;
}

/* The mapping at ptr, or -1 (refusal logged). */
static long mapping_at(struct rq *r, uint64_t ptr)
{
    long i = atab_find(&r->s->at, ptr, 1);

    if (i < 0 || r->s->at.v[i].kind != ALLOC_VMM_MAP) {
        (void)rq_refuse_as(r, WM_REF_DEVICE_RANGE, CUDA_ERROR_INVALID_VALUE,
                           "0x%llx lies in no mapping of the zone", (unsigned long long)ptr);
        return -1;
    }
    return i;
}

CUresult h_VMM_RETAIN(struct rq *r, const struct idm_req_VMM_RETAIN *q,
                      struct idm_rep_VMM_RETAIN *p)
{
    long i = mapping_at(r, q->ptr);
    struct vmem_obj *m;
    int err;

    if (i < 0)
        return CUDA_ERROR_INVALID_VALUE;
    m = r->s->at.v[i].vmem;
    if (m->refs == UINT32_MAX)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "too many references");
    if (m->handle == 0 && (err = htab_insert(&r->s->ht, HT_VMEM, m, &m->handle)) != 0)
        return rq_refuse(r, cu_from_errno(err), "the session's handle table is full");
    m->refs++;
    p->handle = m->handle;
    p->size = m->size;
    return CUDA_SUCCESS;
}

/* ---- mappings ---- */

/* Enters a mapping made in the backend into the allocation table (no access yet). */
static CUresult map_record(struct rq *r, uint64_t ptr, uint64_t size, uint64_t baddr,
                           struct vmem_obj *m)
{
    struct session *s = r->s;
    struct alloc a;
    int err;

    memset(&a, 0, sizeof(a));
    a.va = ptr;
    a.size = size;
    a.baddr = baddr;
    a.vmem = m;
    a.kind = ALLOC_VMM_MAP;
    a.no_access = 1;
    a.buffer_id = s->next_buffer_id++;
    pthread_rwlock_wrlock(&s->at_lock);
    err = atab_insert(&s->at, &a);
    pthread_rwlock_unlock(&s->at_lock);
    if (err != 0)
        return rq_refuse(r, cu_from_errno(err), "the allocation table could not grow");
    m->maps++;
    return CUDA_SUCCESS;
}

CUresult h_VMM_MAP(struct rq *r, const struct idm_req_VMM_MAP *q, struct idm_rep_VMM_MAP *p)
{
    struct session *s = r->s;
    struct vmm_reserve *res;
    struct vmem_obj *m;
    uint64_t baddr;
    CUresult rc;

    (void)p;
    if ((rc = vmm_supported(r)) || (rc = vmm_sizes(r, q->ptr, q->size, q->offset)))
        return rc;
    if ((m = rq_lookup(r, q->handle, HT_VMEM)) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (q->offset > m->size || q->size > m->size - q->offset)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "offset %llu + size %llu exceed the physical allocation (%llu bytes)",
                         (unsigned long long)q->offset, (unsigned long long)q->size,
                         (unsigned long long)m->size);
    if ((res = find_reserve(s, q->ptr, q->size)) == NULL)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "0x%llx+%llu lies in no reserve of the zone",
                         (unsigned long long)q->ptr, (unsigned long long)q->size);
    if (atab_overlaps(&s->at, q->ptr, q->size))
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "0x%llx+%llu is mapped already (in part)",
                         (unsigned long long)q->ptr, (unsigned long long)q->size);
    if (m->maps == UINT32_MAX)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "too many mappings");
    baddr = res->baddr + (q->ptr - res->va);
    rc = s->be->vmem_map(s->bz, baddr, q->size, m->bv, q->offset);
    if (rc != CUDA_SUCCESS)
        return rq_refuse(r, rc, "the backend could not map %llu bytes (CUresult %d)",
                         (unsigned long long)q->size, rc);
    if ((rc = map_record(r, q->ptr, q->size, baddr, m)) != CUDA_SUCCESS &&
        s->be->vmem_unmap(s->bz, baddr, q->size) != CUDA_SUCCESS)
        log_error("zone=%s %s: undoing a mapping at 0x%llx failed", ZN(r), PEER(r),
                  (unsigned long long)q->ptr);
    return rc;
}

/* Waits for the work that may use the memory, then unmaps whole mappings (CUDA keeps a
 * released allocation until its last unmap). */
CUresult h_VMM_UNMAP(struct rq *r, const struct idm_req_VMM_UNMAP *q, struct idm_rep_VMM_UNMAP *p)
{
    long first;
    uint32_t n;
    CUresult rc;

    (void)p;
    if ((rc = vmm_sizes(r, q->ptr, q->size, 0)) ||
        (rc = whole_mappings(r, q->ptr, q->size, &first, &n)))
        return rc;
    session_drain(r->s);
    r->s->be->zone_sync(r->s->bz);
    while (n-- > 0)
        session_free_alloc(r->s, first);
    return CUDA_SUCCESS;
}

CUresult h_VMM_SET_ACCESS(struct rq *r, const struct idm_req_VMM_SET_ACCESS *q,
                          struct idm_rep_VMM_SET_ACCESS *p)
{
    struct session *s = r->s;
    int rw = q->flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    long first;
    uint32_t n;
    CUresult rc;

    (void)p;
    if (q->flags == CU_MEM_ACCESS_FLAGS_PROT_READ)
        return rq_refuse(r, CUDA_ERROR_NOT_SUPPORTED, "read-only mappings are not supported");
    if (!rw && q->flags != CU_MEM_ACCESS_FLAGS_PROT_NONE)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "access flags %u", q->flags);
    if ((rc = vmm_sizes(r, q->ptr, q->size, 0)) ||
        (rc = whole_mappings(r, q->ptr, q->size, &first, &n)))
        return rc;
    if (!rw)
        session_drain(s); /* running work keeps the access it started with */
    for (uint32_t k = 0; k < n; k++) {
        struct alloc *a = &s->at.v[first + k];
        if ((rc = s->be->vmem_set_access(s->bz, a->baddr, a->size, rw)) != CUDA_SUCCESS)
            return rq_refuse(r, rc, "the backend could not set access on 0x%llx (CUresult %d)",
                             (unsigned long long)a->va, rc);
        pthread_rwlock_wrlock(&s->at_lock);
        a->no_access = (uint8_t)!rw;
        pthread_rwlock_unlock(&s->at_lock);
    }
    return CUDA_SUCCESS;
}

CUresult h_VMM_GET_ACCESS(struct rq *r, const struct idm_req_VMM_GET_ACCESS *q,
                          struct idm_rep_VMM_GET_ACCESS *p)
{
    long i = mapping_at(r, q->ptr);

    if (i < 0)
        return CUDA_ERROR_INVALID_VALUE;
    p->flags = r->s->at.v[i].no_access ? CU_MEM_ACCESS_FLAGS_PROT_NONE
                                       : CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    return CUDA_SUCCESS;
}
