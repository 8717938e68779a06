/* dispatch_check.c - the lookups and checks every handler family uses: typed handles of the
 * session, device ranges against its allocation table, window ranges against the connection's
 * window, the bulk data and the name tail an op's properties (idm_ops.def) give it (each failure
 * logged as a refusal). */
#include "dispatch_internal.h"

#include <cuda.h>
#include <stdlib.h>
#include <string.h>

#include "idm_transport.h"

static const char *htype_name(uint8_t type)
{
    switch (type) {
    case HT_CTX: return "context";
    case HT_STREAM: return "stream";
    case HT_EVENT: return "event";
    case HT_LIBRARY: return "library";
    case HT_KERNEL: return "kernel";
    case HT_IMAGE: return "image";
    case HT_GRAPH: return "graph";
    case HT_GEXEC: return "executable graph";
    case HT_VMEM: return "physical allocation";
    default: return "unknown";
    }
}

void rq_refuse_handle(struct rq *r, idm_handle h, uint8_t type)
{
    const char *tag = htype_name((uint8_t)(h >> 56));

    if ((uint8_t)(h >> 56) != type)
        (void)rq_refuse_as(r, WM_REF_HANDLE, 0, "%s handle 0x%llx has the type tag of a%s %s",
                           htype_name(type), (unsigned long long)h,
                           strchr("aeiou", tag[0]) ? "n" : "", tag);
    else
        (void)rq_refuse_as(r, WM_REF_HANDLE, 0, "%s handle 0x%llx is not live in this session "
                           "(freed, stale generation or another session's)", htype_name(type),
                           (unsigned long long)h);
}

CUresult rq_device(struct rq *r, int32_t device)
{
    int count = r->s->be->device_count();

    if (device < 0 || device >= count)
        return rq_refuse(r, CUDA_ERROR_INVALID_DEVICE, "device %d does not exist (%d devices)",
                         device, count);
    return CUDA_SUCCESS;
}

CUresult rq_ctx(struct rq *r, idm_handle h, idm_handle *out)
{
    if (h == 0) {
        if (r->s->primary_ctx == 0 || r->s->primary_refs == 0)
            return rq_refuse(r, CUDA_ERROR_INVALID_CONTEXT,
                             "context 0 names the primary context, which is not retained");
        *out = r->s->primary_ctx;
        return CUDA_SUCCESS;
    }
    if (rq_lookup(r, h, HT_CTX) == NULL)
        return CUDA_ERROR_INVALID_CONTEXT;
    *out = h;
    return CUDA_SUCCESS;
}

/* Whether allocation i, or one after it that starts inside [va, va+len), was mapped without
 * access. */
static int range_no_access(const struct alloc_table *t, long i, uint64_t va, uint64_t len)
{
    if (t->v[i].no_access)
        return 1;
    for (uint32_t k = (uint32_t)i + 1; k < t->n && t->v[k].va - va < len; k++)
        if (t->v[k].no_access)
            return 1;
    return 0;
}

CUresult rq_dev_range(struct rq *r, uint64_t va, uint64_t len, uint64_t *baddr)
{
    long i = atab_find(&r->s->at, va, len);

    if (i < 0)
        i = atab_find_span(&r->s->at, va, len); /* back-to-back mappings of a reserve */
    if (i < 0)
        return rq_refuse_as(r, WM_REF_DEVICE_RANGE, CUDA_ERROR_INVALID_VALUE,
                            "device range 0x%llx+%llu is not inside one allocation of the zone",
                            (unsigned long long)va, (unsigned long long)len);
    if (range_no_access(&r->s->at, i, va, len))
        return rq_refuse_as(r, WM_REF_DEVICE_RANGE, CUDA_ERROR_INVALID_VALUE,
                            "device range 0x%llx+%llu is mapped without access "
                            "(cuMemSetAccess not called)", (unsigned long long)va,
                            (unsigned long long)len);
    *baddr = r->s->at.v[i].baddr + (va - r->s->at.v[i].va);
    return CUDA_SUCCESS;
}

CUresult rq_win_range(struct rq *r, uint64_t off, uint64_t len, uint8_t **p)
{
    struct session *s = r->s;

    if (s->window == NULL || off > s->window_size || len > s->window_size - off ||
        (s->conn != NULL && idm_window_check(s->conn, off, len) != 0))
        return rq_refuse_as(r, WM_REF_WINDOW, CUDA_ERROR_INVALID_VALUE,
                            "window range %llu+%llu is outside the %llu-byte window",
                            (unsigned long long)off, (unsigned long long)len,
                            (unsigned long long)s->window_size);
    *p = s->window + off;
    return CUDA_SUCCESS;
}

/* Inline data must fit the request tail (IN) or the room left in the reply (OUT). */
static CUresult bulk_inline(struct rq *r, const void **src)
{
    const struct idm_bulk *b = &r->bulk;
    uint32_t room = b->dir == IDM_BULK_IN ? r->tail_len : r->rtail_max;

    if (!b->can_inline || b->len > room)
        return rq_refuse_as(r, WM_REF_MALFORMED, CUDA_ERROR_INVALID_VALUE,
                            "%llu bytes to copy, room for %u inline",
                            (unsigned long long)b->len, b->can_inline ? room : 0);
    if (b->dir == IDM_BULK_IN)
        *src = r->tail;
    return CUDA_SUCCESS;
}

CUresult rq_bulk(struct rq *r, const void **src, void **dst)
{
    const struct idm_bulk *b = &r->bulk;
    uint8_t *w;
    CUresult rc;

    if (b->dir == IDM_BULK_NONE)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "the op carries no bulk data");
    if (b->dir == IDM_BULK_OUT)
        *dst = NULL;
    if (b->win_len == 0)
        return bulk_inline(r, src);
    if (b->len > b->win_len)
        return rq_refuse_as(r, WM_REF_WINDOW, CUDA_ERROR_INVALID_VALUE,
                            "%llu bytes to copy through a %llu-byte window range",
                            (unsigned long long)b->len, (unsigned long long)b->win_len);
    if ((rc = rq_win_range(r, b->win_off, b->len, &w)) != CUDA_SUCCESS)
        return rc;
    if (b->dir == IDM_BULK_IN)
        *src = w;
    else
        *dst = w;
    return CUDA_SUCCESS;
}

CUresult rq_check_name(struct rq *r)
{
    if (r->tail_len == 0 || r->tail_len > IDM_SYMBOL_MAX ||
        memchr(r->tail, 0, r->tail_len) == NULL)
        return rq_refuse_as(r, WM_REF_MALFORMED, CUDA_ERROR_INVALID_VALUE,
                            "the name in the %u-byte tail is empty, longer than %u bytes or not "
                            "NUL-terminated", r->tail_len, (unsigned)IDM_SYMBOL_MAX);
    r->name = (const char *)r->tail;
    return CUDA_SUCCESS;
}

CUresult rq_tail_name(struct rq *r, const char **name)
{
    if (r->name == NULL) /* an op without a name tail in idm_ops.def */
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "the op carries no name");
    *name = r->name;
    return CUDA_SUCCESS;
}
