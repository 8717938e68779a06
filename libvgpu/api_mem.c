/* api_mem.c - memory: device allocations (through the proxy, recorded locally so unified-address
 * copies can tell device from host, and counted in the memory pool they came from, api_pool.c),
 * pinned host memory (local page-aligned memory), copies and memsets. Bulk copies go through the
 * window in chunks with several in flight; small ones travel inline in the message. HtoD copies
 * up to VGPU_HTOD_INLINE_MAX and asynchronous memsets and DtoD copies go unanswered
 * (vgpu_send_locked); a synchronous HtoD returns once its bytes are in the ring or the window
 * (CUDA's pageable-memory semantics), its range checked against our allocations first. Other
 * synchronous forms drain every reply and report earlier async errors that replies carried. */
#include "vgpu_calls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- local tables ---- */

int vgpu_alloc_add_locked(struct vgpu *v, uint64_t base, uint64_t size, int global,
                          idm_handle ctx)
{
    if (v->nallocs == v->cap_allocs) {
        size_t cap = v->cap_allocs ? v->cap_allocs * 2 : 64;
        struct vgpu_alloc *a = realloc(v->allocs, cap * sizeof *a);
        if (a == NULL)
            return -ENOMEM;
        v->allocs = a;
        v->cap_allocs = cap;
    }
    size_t i = v->nallocs;
    while (i > 0 && v->allocs[i - 1].base > base)
        i--;
    if (i > 0 && v->allocs[i - 1].base == base) { /* a global looked up twice */
        v->allocs[i - 1].size = size;
        return 0;
    }
    memmove(&v->allocs[i + 1], &v->allocs[i], (v->nallocs - i) * sizeof v->allocs[0]);
    v->allocs[i] = (struct vgpu_alloc){.base = base, .size = size, .global = global, .ctx = ctx};
    v->nallocs++;
    return 0;
}

static long alloc_index_locked(struct vgpu *v, uint64_t p)
{
    size_t lo = 0, hi = v->nallocs;
    while (lo < hi) { /* first allocation with base > p */
        size_t mid = lo + (hi - lo) / 2;
        if (v->allocs[mid].base <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const struct vgpu_alloc *a = &v->allocs[lo - 1];
    return p - a->base < a->size ? (long)(lo - 1) : -1;
}

const struct vgpu_alloc *vgpu_alloc_find_locked(struct vgpu *v, uint64_t p)
{
    long i = alloc_index_locked(v, p);
    return i < 0 ? NULL : &v->allocs[i];
}

/* Counts a new allocation (at base) in default pool `pool` - 1. */
static void pool_count_locked(struct vgpu *v, uint64_t base, int pool)
{
    long i = alloc_index_locked(v, base);
    struct vgpu_pool *p = &v->pools[pool - 1];
    v->allocs[i].pool = pool;
    p->used += v->allocs[i].size;
    if (p->used > p->used_high)
        p->used_high = p->used;
}

static void pool_uncount_locked(struct vgpu *v, const struct vgpu_alloc *a)
{
    if (a->pool > 0)
        v->pools[a->pool - 1].used -= a->size;
}

void vgpu_alloc_remove_locked(struct vgpu *v, uint64_t base)
{
    long i = alloc_index_locked(v, base);
    if (i < 0 || v->allocs[i].base != base)
        return;
    pool_uncount_locked(v, &v->allocs[i]);
    memmove(&v->allocs[i], &v->allocs[i + 1], (v->nallocs - (size_t)i - 1) * sizeof v->allocs[0]);
    v->nallocs--;
}

void vgpu_alloc_forget_ctx_locked(struct vgpu *v, idm_handle ctx)
{
    size_t keep = 0;
    for (size_t i = 0; i < v->nallocs; i++)
        if (v->allocs[i].ctx != ctx)
            v->allocs[keep++] = v->allocs[i];
        else
            pool_uncount_locked(v, &v->allocs[i]);
    v->nallocs = keep;
}

const struct vgpu_host *vgpu_host_find_locked(struct vgpu *v, const void *p)
{
    for (size_t i = 0; i < v->nhosts; i++) {
        const struct vgpu_host *h = &v->hosts[i];
        if ((const uint8_t *)p >= (const uint8_t *)h->base &&
            (size_t)((const uint8_t *)p - (const uint8_t *)h->base) < (h->size ? h->size : 1))
            return h;
    }
    return NULL;
}

static int host_add_locked(struct vgpu *v, const struct vgpu_host *h)
{
    if (v->nhosts == v->cap_hosts) {
        size_t cap = v->cap_hosts ? v->cap_hosts * 2 : 32;
        struct vgpu_host *a = realloc(v->hosts, cap * sizeof *a);
        if (a == NULL)
            return -ENOMEM;
        v->hosts = a;
        v->cap_hosts = cap;
    }
    v->hosts[v->nhosts++] = *h;
    return 0;
}

static void host_remove_locked(struct vgpu *v, const struct vgpu_host *h)
{
    size_t i = (size_t)(h - v->hosts);
    v->hosts[i] = v->hosts[--v->nhosts];
}

/* Common entry check: initialised and a current context. */
static CUresult mem_enter(struct vgpu *v, idm_handle *ctx)
{
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    return vgpu_cur_ctx_handle(ctx);
}

/* ---- device memory ---- */

CUresult vgpu_mem_alloc(CUdeviceptr *dptr, size_t bytesize, int pool)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx;
    CUresult r = mem_enter(v, &ctx);
    if (r != CUDA_SUCCESS || (pool == 0 && (r = vgpu_capture_unsafe("cuMemAlloc")) != 0))
        return r;
    if (dptr == NULL || bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_MEM_ALLOC rq = {.ctx = ctx, .size = bytesize};
    struct idm_rep_MEM_ALLOC rp;
    pthread_mutex_lock(&v->lock);
    r = vgpu_call_MEM_ALLOC_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    if (r == CUDA_SUCCESS && vgpu_alloc_add_locked(v, rp.dptr, bytesize, 0, ctx) < 0) {
        struct idm_req_MEM_FREE fq = {.dptr = rp.dptr};
        struct idm_rep_MEM_FREE fp;
        (void)vgpu_call_MEM_FREE_locked(v, &fq, NULL, 0, &fp, NULL, 0, NULL);
        r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (r == CUDA_SUCCESS && pool > 0)
        pool_count_locked(v, rp.dptr, pool);
    pthread_mutex_unlock(&v->lock);
    if (r == CUDA_SUCCESS)
        *dptr = rp.dptr;
    else
        VLOG(VGPU_LOG_INFO, "%s(%zu) failed: %d", pool ? "cuMemAllocAsync" : "cuMemAlloc",
             bytesize, r);
    return r;
}

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    return vgpu_mem_alloc(dptr, bytesize, 0);
}

CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch, size_t WidthInBytes,
                            size_t Height, unsigned int ElementSizeBytes)
{
    if (pPitch == NULL || WidthInBytes == 0 || Height == 0 ||
        (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16))
        return CUDA_ERROR_INVALID_VALUE;
    size_t pitch = (WidthInBytes + 511) & ~(size_t)511;
    CUresult r = cuMemAlloc_v2(dptr, pitch * Height);
    if (r == CUDA_SUCCESS)
        *pPitch = pitch;
    return r;
}

CUresult cuMemFree_v2(CUdeviceptr dptr)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS || (r = vgpu_capture_unsafe("cuMemFree")) != CUDA_SUCCESS)
        return r;
    if (dptr == 0)
        return CUDA_SUCCESS;
    struct idm_req_MEM_FREE rq = {.dptr = dptr};
    struct idm_rep_MEM_FREE rp;
    pthread_mutex_lock(&v->lock);
    r = vgpu_call_MEM_FREE_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    if (r == CUDA_SUCCESS)
        vgpu_alloc_remove_locked(v, dptr);
    pthread_mutex_unlock(&v->lock);
    return r;
}

CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_MEM_GET_ADDRESS_RANGE rq = {.dptr = dptr};
    struct idm_rep_MEM_GET_ADDRESS_RANGE rp;
    r = VGPU_CALL(v, MEM_GET_ADDRESS_RANGE, &rq, &rp);
    if (r == CUDA_SUCCESS) {
        if (pbase)
            *pbase = rp.base;
        if (psize)
            *psize = rp.size;
    }
    return r;
}

CUresult cuMemGetInfo_v2(size_t *free, size_t *total)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx;
    CUresult r = mem_enter(v, &ctx);
    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_MEM_GET_INFO rq = {.ctx = ctx};
    struct idm_rep_MEM_GET_INFO rp;
    r = VGPU_CALL(v, MEM_GET_INFO, &rq, &rp);
    if (r == CUDA_SUCCESS) {
        if (free)
            *free = rp.free;
        if (total)
            *total = rp.total;
    }
    return r;
}

/* ---- pinned host memory: local, page-aligned ---- */

CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (pp == NULL || bytesize == 0 ||
        (Flags & ~(unsigned)(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP |
                             CU_MEMHOSTALLOC_WRITECOMBINED)))
        return CUDA_ERROR_INVALID_VALUE;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t map = (bytesize + page - 1) & ~(page - 1);
    void *p = mmap(NULL, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        VLOG(VGPU_LOG_ERROR, "cuMemHostAlloc(%zu): mmap: %s", bytesize, strerror(errno));
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    struct vgpu_host h = {.base = p, .size = bytesize, .map_size = map, .flags = Flags};
    pthread_mutex_lock(&v->lock);
    int rc = host_add_locked(v, &h);
    pthread_mutex_unlock(&v->lock);
    if (rc < 0) {
        munmap(p, map);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *pp = p;
    return CUDA_SUCCESS;
}

CUresult cuMemAllocHost_v2(void **pp, size_t bytesize)
{
    return cuMemHostAlloc(pp, bytesize, 0);
}

CUresult cuMemAllocHost(void **pp, unsigned int bytesize)
{
    return cuMemHostAlloc(pp, bytesize, 0);
}

CUresult cuMemFreeHost(void *p)
{
    struct vgpu *v = vgpu_get();
    pthread_mutex_lock(&v->lock);
    const struct vgpu_host *h = vgpu_host_find_locked(v, p);
    if (h == NULL || h->base != p || h->map_size == 0) {
        pthread_mutex_unlock(&v->lock);
        return CUDA_ERROR_INVALID_VALUE;
    }
    size_t map = h->map_size;
    host_remove_locked(v, h);
    pthread_mutex_unlock(&v->lock);
    if (munmap(p, map) != 0)
        VLOG(VGPU_LOG_ERROR, "cuMemFreeHost(%p): munmap: %s", p, strerror(errno));
    return CUDA_SUCCESS;
}

CUresult cuMemHostGetFlags(unsigned int *pFlags, void *p)
{
    struct vgpu *v = vgpu_get();
    if (pFlags == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&v->lock);
    const struct vgpu_host *h = vgpu_host_find_locked(v, p);
    if (h)
        *pFlags = h->flags;
    pthread_mutex_unlock(&v->lock);
    return h ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int Flags)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (p == NULL || bytesize == 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&v->lock);
    if (vgpu_host_find_locked(v, p) != NULL) {
        pthread_mutex_unlock(&v->lock);
        return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
    }
    struct vgpu_host h = {.base = p, .size = bytesize, .map_size = 0, .flags = Flags};
    int rc = host_add_locked(v, &h);
    pthread_mutex_unlock(&v->lock);
    return rc < 0 ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_SUCCESS;
}

CUresult cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags)
{
    return cuMemHostRegister_v2(p, bytesize, Flags);
}

CUresult cuMemHostUnregister(void *p)
{
    struct vgpu *v = vgpu_get();
    pthread_mutex_lock(&v->lock);
    const struct vgpu_host *h = vgpu_host_find_locked(v, p);
    CUresult r = CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
    if (h && h->base == p && h->map_size == 0) {
        host_remove_locked(v, h);
        r = CUDA_SUCCESS;
    }
    pthread_mutex_unlock(&v->lock);
    return r;
}

/* ---- copies ---- */

/* How much of a window chunk each step of a len-byte copy uses: a copy of a few chunk sizes or
 * less is split in about four steps (at least 64 KiB), so that the proxy copies one step while
 * the next is filled, instead of the whole copy waiting on one round trip. */
static size_t copy_step(const struct vgpu *v, size_t len)
{
    size_t step = (len / 4 + 4095) & ~(size_t)4095;
    if (step < 65536)
        step = 65536;
    return step < v->chunk_size ? step : v->chunk_size;
}

/* Up to VGPU_HTOD_INLINE_MAX bytes, unanswered requests that carry the bytes in the ring (one
 * slot's worth each): the copy returns once they are there (the source may be reused, as
 * CUDA's pageable HtoD allows). */
static CUresult htod_inline_locked(struct vgpu *v, uint64_t dst, const uint8_t *src, size_t len,
                                   idm_handle stream)
{
    size_t step = vgpu_inline_max(v, IDM_OP_MEMCPY_HTOD);
    CUresult r = CUDA_SUCCESS;

    for (size_t off = 0; off < len && r == CUDA_SUCCESS; off += step) {
        size_t n = len - off < step ? len - off : step;
        struct idm_req_MEMCPY_HTOD rq = {.dst = dst + off, .stream = stream, .len = n};
        r = vgpu_send_MEMCPY_HTOD_locked(v, &rq, src + off, n);
    }
    return r;
}

/* Host to device: inline when small, else window chunks (the next chunk is filled while the
 * proxy works on the previous ones). */
static CUresult htod_locked(struct vgpu *v, uint64_t dst, const void *src, size_t len,
                            idm_handle stream)
{
    const uint8_t *s = src;
    CUresult r = CUDA_SUCCESS;
    if (len == 0)
        return CUDA_SUCCESS;
    /* Checked here: a synchronous HtoD returns before the worker has looked at it. */
    const struct vgpu_alloc *a = vgpu_alloc_find_locked(v, dst);
    if (a == NULL || len > a->base + a->size - dst)
        return CUDA_ERROR_INVALID_VALUE;
    if (len <= VGPU_HTOD_INLINE_MAX && vgpu_inline_max(v, IDM_OP_MEMCPY_HTOD) > 0)
        return htod_inline_locked(v, dst, s, len, stream);
    size_t step = copy_step(v, len);
    for (size_t off = 0; off < len && r == CUDA_SUCCESS;) {
        size_t n = len - off < step ? len - off : step;
        int c = vgpu_chunk_get_locked(v, &r);
        if (c < 0)
            break;
        memcpy(vgpu_chunk_ptr(v, c), s + off, n);
        struct idm_req_MEMCPY_HTOD rq = {.dst = dst + off, .stream = stream,
                                         .win_off = (uint64_t)c * v->chunk_size, .win_len = n,
                                         .len = n};
        r = vgpu_post_MEMCPY_HTOD_locked(v, &rq, NULL, 0, c, NULL, 0);
        off += n;
    }
    return r;
}

/* Device to host: the reply handler copies each chunk out when its reply arrives. */
static CUresult dtoh_locked(struct vgpu *v, void *dst, uint64_t src, size_t len,
                            idm_handle stream)
{
    uint8_t *d = dst;
    CUresult r = CUDA_SUCCESS;
    if (len == 0)
        return CUDA_SUCCESS;
    if (len <= vgpu_inline_max(v, IDM_OP_MEMCPY_DTOH)) {
        struct idm_req_MEMCPY_DTOH rq = {.src = src, .stream = stream, .len = len};
        return vgpu_post_MEMCPY_DTOH_locked(v, &rq, NULL, 0, -1, dst, len);
    }
    size_t step = copy_step(v, len);
    for (size_t off = 0; off < len && r == CUDA_SUCCESS;) {
        size_t n = len - off < step ? len - off : step;
        int c = vgpu_chunk_get_locked(v, &r);
        if (c < 0)
            break;
        struct idm_req_MEMCPY_DTOH rq = {.src = src + off, .stream = stream,
                                         .win_off = (uint64_t)c * v->chunk_size, .win_len = n,
                                         .len = n};
        r = vgpu_post_MEMCPY_DTOH_locked(v, &rq, NULL, 0, c, d + off, n);
        off += n;
    }
    return r;
}

/* Asynchronous: unanswered. Synchronous: answered (the caller drains), so the copy's own
 * failure is its result. */
static CUresult dtod_locked(struct vgpu *v, uint64_t dst, uint64_t src, size_t len,
                            idm_handle stream, int sync)
{
    if (len == 0)
        return CUDA_SUCCESS;
    struct idm_req_MEMCPY_DTOD rq = {.dst = dst, .src = src, .stream = stream, .len = len};
    if (!sync)
        return vgpu_send_MEMCPY_DTOD_locked(v, &rq, NULL, 0);
    return vgpu_post_MEMCPY_DTOD_locked(v, &rq, NULL, 0, -1, NULL, 0);
}

enum dir { HTOD, DTOH, DTOD, HTOH };

/* One copy; sync drains every reply and returns the first error, earlier async ones included. */
static CUresult copy(enum dir d, uint64_t dst, uint64_t src, size_t len, CUstream hs, int sync)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx;
    CUresult r = mem_enter(v, &ctx);
    if (r != CUDA_SUCCESS)
        return r;
    if (len > 0 && (dst == 0 || src == 0))
        return CUDA_ERROR_INVALID_VALUE;
    if (sync && (r = vgpu_capture_unsafe("a synchronous copy")) != CUDA_SUCCESS)
        return r;
    if (!sync && vgpu_capture_on() &&
        (r = vgpu_capture_copy(hs, d == HTOD || d == DTOD, d == DTOH || d == DTOD, dst, src,
                               len)) != VGPU_NOT_CAPTURED)
        return r; /* recorded by the stream's capture, or refused */
    idm_handle stream = vgpu_stream_handle(hs);
    pthread_mutex_lock(&v->lock);
    switch (d) {
    case HTOD:
        /* CUDA's HtoD from pageable memory synchronises before it starts (earlier DtoH bytes
         * have landed when it returns) and returns once the source is staged: here once the
         * bytes are in the ring or the window; chunk replies are drained later. */
        if (sync)
            r = vgpu_drain_op_locked(v, IDM_OP_MEMCPY_DTOH);
        if (r == CUDA_SUCCESS)
            r = htod_locked(v, dst, (const void *)(uintptr_t)src, len, stream);
        break;
    case DTOH:
        r = dtoh_locked(v, (void *)(uintptr_t)dst, src, len, stream);
        break;
    case DTOD:
        r = dtod_locked(v, dst, src, len, stream, sync);
        break;
    case HTOH: /* ordered after everything before it, as on a real stream */
        r = vgpu_drain_locked(v);
        if (r == CUDA_SUCCESS)
            memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, len);
        break;
    }
    if (sync) {
        /* An async DtoH's bytes land when its reply is processed: at the latest by the next
         * synchronising call, which drains every reply. */
        CUresult a = d == HTOD ? vgpu_take_async_error_locked(v) : vgpu_drain_locked(v);
        if (r == CUDA_SUCCESS)
            r = a;
    }
    pthread_mutex_unlock(&v->lock);
    return r;
}

/* Unified addressing: an address is the device's when it lies in one of our allocations. */
static enum dir classify(uint64_t dst, uint64_t src)
{
    struct vgpu *v = vgpu_get();
    pthread_mutex_lock(&v->lock);
    int dd = vgpu_alloc_find_locked(v, dst) != NULL;
    int sd = vgpu_alloc_find_locked(v, src) != NULL;
    pthread_mutex_unlock(&v->lock);
    return dd ? (sd ? DTOD : HTOD) : (sd ? DTOH : HTOH);
}

#define H2U(p) ((uint64_t)(uintptr_t)(p))

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
    return copy(HTOD, dst, H2U(src), n, NULL, 1);
}
CUresult cuMemcpyHtoD_v2_ptds(CUdeviceptr dst, const void *src, size_t n)
{
    return copy(HTOD, dst, H2U(src), n, CU_STREAM_PER_THREAD, 1);
}
CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
    return copy(DTOH, H2U(dst), src, n, NULL, 1);
}
CUresult cuMemcpyDtoH_v2_ptds(void *dst, CUdeviceptr src, size_t n)
{
    return copy(DTOH, H2U(dst), src, n, CU_STREAM_PER_THREAD, 1);
}
CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
    return copy(DTOD, dst, src, n, NULL, 1);
}
CUresult cuMemcpyDtoD_v2_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
    return copy(DTOD, dst, src, n, CU_STREAM_PER_THREAD, 1);
}
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s)
{
    return copy(HTOD, dst, H2U(src), n, s, 0);
}
CUresult cuMemcpyHtoDAsync_v2_ptsz(CUdeviceptr dst, const void *src, size_t n, CUstream s)
{
    return copy(HTOD, dst, H2U(src), n, s ? s : CU_STREAM_PER_THREAD, 0);
}
CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
    return copy(DTOH, H2U(dst), src, n, s, 0);
}
CUresult cuMemcpyDtoHAsync_v2_ptsz(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
    return copy(DTOH, H2U(dst), src, n, s ? s : CU_STREAM_PER_THREAD, 0);
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
    return copy(DTOD, dst, src, n, s, 0);
}
CUresult cuMemcpyDtoDAsync_v2_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
    return copy(DTOD, dst, src, n, s ? s : CU_STREAM_PER_THREAD, 0);
}
CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
    return copy(classify(dst, src), dst, src, n, NULL, 1);
}
CUresult cuMemcpy_ptds(CUdeviceptr dst, CUdeviceptr src, size_t n)
{
    return copy(classify(dst, src), dst, src, n, CU_STREAM_PER_THREAD, 1);
}
CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
    return copy(classify(dst, src), dst, src, n, s, 0);
}
CUresult cuMemcpyAsync_ptsz(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s)
{
    return copy(classify(dst, src), dst, src, n, s ? s : CU_STREAM_PER_THREAD, 0);
}

/* 2D copies between host and device memory (arrays are not supported): row by row, or as one
 * copy when both sides are contiguous. */
static CUresult copy2d(const CUDA_MEMCPY2D *p, CUstream s, int sync)
{
    CUresult c = sync ? vgpu_capture_unsafe("a synchronous 2D copy") :
                 vgpu_capture_refuse(s, "cuMemcpy2DAsync (2D copy nodes)");
    if (c != CUDA_SUCCESS && c != VGPU_NOT_CAPTURED)
        return c;
    if (p == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    uint64_t src, dst;
    int sdev, ddev;
    switch (p->srcMemoryType) {
    case CU_MEMORYTYPE_HOST:
        src = H2U(p->srcHost), sdev = 0;
        break;
    case CU_MEMORYTYPE_DEVICE:
        src = p->srcDevice, sdev = 1;
        break;
    case CU_MEMORYTYPE_UNIFIED:
        src = p->srcDevice, sdev = classify(0, src) == DTOH;
        break;
    default:
        VLOG(VGPU_LOG_WARN, "cuMemcpy2D: array copies are not supported");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    switch (p->dstMemoryType) {
    case CU_MEMORYTYPE_HOST:
        dst = H2U(p->dstHost), ddev = 0;
        break;
    case CU_MEMORYTYPE_DEVICE:
        dst = p->dstDevice, ddev = 1;
        break;
    case CU_MEMORYTYPE_UNIFIED:
        dst = p->dstDevice, ddev = classify(dst, 0) == HTOD;
        break;
    default:
        VLOG(VGPU_LOG_WARN, "cuMemcpy2D: array copies are not supported");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    if ((p->srcPitch && p->srcPitch < p->WidthInBytes) ||
        (p->dstPitch && p->dstPitch < p->WidthInBytes))
        return CUDA_ERROR_INVALID_VALUE;
    enum dir d = ddev ? (sdev ? DTOD : HTOD) : (sdev ? DTOH : HTOH);
    size_t sp = p->srcPitch ? p->srcPitch : p->WidthInBytes;
    size_t dp = p->dstPitch ? p->dstPitch : p->WidthInBytes;
    src += p->srcY * sp + p->srcXInBytes;
    dst += p->dstY * dp + p->dstXInBytes;
    if (sp == p->WidthInBytes && dp == p->WidthInBytes)
        return copy(d, dst, src, p->WidthInBytes * p->Height, s, sync);
    CUresult r = CUDA_SUCCESS;
    for (size_t y = 0; y < p->Height && r == CUDA_SUCCESS; y++)
        r = copy(d, dst + y * dp, src + y * sp, p->WidthInBytes, s,
                 sync && y + 1 == p->Height);
    return r;
}

CUresult cuMemcpy2D_v2(const CUDA_MEMCPY2D *p)
{
    return copy2d(p, NULL, 1);
}
CUresult cuMemcpy2D_v2_ptds(const CUDA_MEMCPY2D *p)
{
    return copy2d(p, CU_STREAM_PER_THREAD, 1);
}
CUresult cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *p)
{
    return copy2d(p, NULL, 1);
}
CUresult cuMemcpy2DUnaligned_v2_ptds(const CUDA_MEMCPY2D *p)
{
    return copy2d(p, CU_STREAM_PER_THREAD, 1);
}
CUresult cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *p, CUstream s)
{
    return copy2d(p, s, 0);
}
CUresult cuMemcpy2DAsync_v2_ptsz(const CUDA_MEMCPY2D *p, CUstream s)
{
    return copy2d(p, s ? s : CU_STREAM_PER_THREAD, 0);
}

/* ---- memsets ---- */

static CUresult memset_op(uint64_t dst, size_t pitch, uint32_t value, uint32_t elem,
                          size_t width, size_t height, CUstream s, int sync)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx;
    CUresult r = mem_enter(v, &ctx);
    if (r != CUDA_SUCCESS)
        return r;
    if (width == 0 || height == 0)
        return CUDA_SUCCESS;
    if (sync && (r = vgpu_capture_unsafe("a synchronous memset")) != CUDA_SUCCESS)
        return r;
    if (!sync && vgpu_capture_on()) { /* recorded by the stream's capture */
        struct idm_req_GRAPH_ADD_NODE n = {.kind = IDM_GNODE_MEMSET, .dst = dst, .count = width,
                                           .pitch = height > 1 ? pitch : 0, .height = height,
                                           .value = value, .elem_size = elem};
        if ((r = vgpu_capture_node(s, &n, NULL)) != VGPU_NOT_CAPTURED)
            return r;
    }
    struct idm_req_MEMSET rq = {.dst = dst, .stream = vgpu_stream_handle(s), .count = width,
                                .pitch = height > 1 ? pitch : 0, .height = height,
                                .value = value, .elem_size = elem};
    pthread_mutex_lock(&v->lock);
    /* asynchronous: unanswered; synchronous: answered, its failure is the call's result */
    if (!sync)
        r = vgpu_send_MEMSET_locked(v, &rq, NULL, 0);
    else
        r = vgpu_post_MEMSET_locked(v, &rq, NULL, 0, -1, NULL, 0);
    if (sync) {
        CUresult a = vgpu_drain_locked(v);
        if (r == CUDA_SUCCESS)
            r = a;
    }
    pthread_mutex_unlock(&v->lock);
    return r;
}

#define PTS CU_STREAM_PER_THREAD
CUresult cuMemsetD8_v2(CUdeviceptr d, unsigned char uc, size_t n)
{
    return memset_op(d, 0, uc, 1, n, 1, NULL, 1);
}
CUresult cuMemsetD8_v2_ptds(CUdeviceptr d, unsigned char uc, size_t n)
{
    return memset_op(d, 0, uc, 1, n, 1, PTS, 1);
}
CUresult cuMemsetD16_v2(CUdeviceptr d, unsigned short us, size_t n)
{
    return memset_op(d, 0, us, 2, n, 1, NULL, 1);
}
CUresult cuMemsetD16_v2_ptds(CUdeviceptr d, unsigned short us, size_t n)
{
    return memset_op(d, 0, us, 2, n, 1, PTS, 1);
}
CUresult cuMemsetD32_v2(CUdeviceptr d, unsigned int ui, size_t n)
{
    return memset_op(d, 0, ui, 4, n, 1, NULL, 1);
}
CUresult cuMemsetD32_v2_ptds(CUdeviceptr d, unsigned int ui, size_t n)
{
    return memset_op(d, 0, ui, 4, n, 1, PTS, 1);
}
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char uc, size_t n, CUstream s)
{
    return memset_op(d, 0, uc, 1, n, 1, s, 0);
}
CUresult cuMemsetD8Async_ptsz(CUdeviceptr d, unsigned char uc, size_t n, CUstream s)
{
    return memset_op(d, 0, uc, 1, n, 1, s ? s : PTS, 0);
}
CUresult cuMemsetD16Async(CUdeviceptr d, unsigned short us, size_t n, CUstream s)
{
    return memset_op(d, 0, us, 2, n, 1, s, 0);
}
CUresult cuMemsetD16Async_ptsz(CUdeviceptr d, unsigned short us, size_t n, CUstream s)
{
    return memset_op(d, 0, us, 2, n, 1, s ? s : PTS, 0);
}
CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int ui, size_t n, CUstream s)
{
    return memset_op(d, 0, ui, 4, n, 1, s, 0);
}
CUresult cuMemsetD32Async_ptsz(CUdeviceptr d, unsigned int ui, size_t n, CUstream s)
{
    return memset_op(d, 0, ui, 4, n, 1, s ? s : PTS, 0);
}
CUresult cuMemsetD2D8_v2(CUdeviceptr d, size_t pitch, unsigned char uc, size_t w, size_t h)
{
    return memset_op(d, pitch, uc, 1, w, h, NULL, 1);
}
CUresult cuMemsetD2D8_v2_ptds(CUdeviceptr d, size_t pitch, unsigned char uc, size_t w, size_t h)
{
    return memset_op(d, pitch, uc, 1, w, h, PTS, 1);
}
CUresult cuMemsetD2D16_v2(CUdeviceptr d, size_t pitch, unsigned short us, size_t w, size_t h)
{
    return memset_op(d, pitch, us, 2, w, h, NULL, 1);
}
CUresult cuMemsetD2D16_v2_ptds(CUdeviceptr d, size_t pitch, unsigned short us, size_t w,
                               size_t h)
{
    return memset_op(d, pitch, us, 2, w, h, PTS, 1);
}
CUresult cuMemsetD2D32_v2(CUdeviceptr d, size_t pitch, unsigned int ui, size_t w, size_t h)
{
    return memset_op(d, pitch, ui, 4, w, h, NULL, 1);
}
CUresult cuMemsetD2D32_v2_ptds(CUdeviceptr d, size_t pitch, unsigned int ui, size_t w, size_t h)
{
    return memset_op(d, pitch, ui, 4, w, h, PTS, 1);
}
CUresult cuMemsetD2D8Async(CUdeviceptr d, size_t pitch, unsigned char uc, size_t w, size_t h,
                           CUstream s)
{
    return memset_op(d, pitch, uc, 1, w, h, s, 0);
}
CUresult cuMemsetD2D8Async_ptsz(CUdeviceptr d, size_t pitch, unsigned char uc, size_t w,
                                size_t h, CUstream s)
{
    return memset_op(d, pitch, uc, 1, w, h, s ? s : PTS, 0);
}
CUresult cuMemsetD2D16Async(CUdeviceptr d, size_t pitch, unsigned short us, size_t w, size_t h,
                            CUstream s)
{
    return memset_op(d, pitch, us, 2, w, h, s, 0);
}
CUresult cuMemsetD2D16Async_ptsz(CUdeviceptr d, size_t pitch, unsigned short us, size_t w,
                                 size_t h, CUstream s)
{
    return memset_op(d, pitch, us, 2, w, h, s ? s : PTS, 0);
}
CUresult cuMemsetD2D32Async(CUdeviceptr d, size_t pitch, unsigned int ui, size_t w, size_t h,
                            CUstream s)
{
    return memset_op(d, pitch, ui, 4, w, h, s, 0);
}
CUresult cuMemsetD2D32Async_ptsz(CUdeviceptr d, size_t pitch, unsigned int ui, size_t w,
                                 size_t h, CUstream s)
{
    return memset_op(d, pitch, ui, 4, w, h, s ? s : PTS, 0);
}

/* ---- pointer attributes: answered from the local tables ---- */

/* Writes one attribute; known: the pointer is ours (device or pinned host). */
static CUresult pointer_attr(void *data, CUpointer_attribute attr, CUdeviceptr ptr, int lenient)
{
    struct vgpu *v = vgpu_get();
    pthread_mutex_lock(&v->lock);
    const struct vgpu_alloc *a = vgpu_alloc_find_locked(v, ptr);
    struct vgpu_alloc ac = a ? *a : (struct vgpu_alloc){0};
    const struct vgpu_host *h = a ? NULL : vgpu_host_find_locked(v, (const void *)(uintptr_t)ptr);
    struct vgpu_host hc = h ? *h : (struct vgpu_host){0};
    pthread_mutex_unlock(&v->lock);
    struct vgpu_ctx *cur = vgpu_ctx_current();
    if (a == NULL && h == NULL && !lenient)
        return CUDA_ERROR_INVALID_VALUE;
    switch (attr) {
    case CU_POINTER_ATTRIBUTE_CONTEXT:
        *(CUcontext *)data = (a || h) ? (CUcontext)cur : NULL;
        break;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
        *(unsigned *)data = a ? CU_MEMORYTYPE_DEVICE : h ? CU_MEMORYTYPE_HOST : 0;
        break;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
        if (!a && !lenient)
            return CUDA_ERROR_INVALID_VALUE;
        *(CUdeviceptr *)data = a ? ptr : 0;
        break;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER:
        if (!h && !lenient)
            return CUDA_ERROR_INVALID_VALUE;
        *(void **)data = h ? (void *)(uintptr_t)ptr : NULL;
        break;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED:
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
    case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
        *(int *)data = 0;
        break;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
    case CU_POINTER_ATTRIBUTE_MAPPED:
        *(int *)data = (a || h) ? 1 : 0;
        break;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
        *(int *)data = (a || h) ? (cur ? cur->dev : 0) : -2;
        break;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID:
        *(unsigned long long *)data = a ? ac.base : h ? (uintptr_t)hc.base : 0;
        break;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
        *(CUdeviceptr *)data = a ? ac.base : h ? (uintptr_t)hc.base : 0;
        break;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
        *(size_t *)data = a ? ac.size : h ? hc.size : 0;
        break;
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES:
        *(unsigned long long *)data = 0;
        break;
    case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
        *(unsigned *)data = CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE;
        break;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
        *(CUmemoryPool *)data = ac.pool > 0 ? (CUmemoryPool)&v->pools[ac.pool - 1] : NULL;
        break;
    default:
        if (lenient)
            return CUDA_SUCCESS;
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr)
{
    CUresult r = vgpu_ready(vgpu_get());
    if (r != CUDA_SUCCESS)
        return r;
    if (data == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    return pointer_attr(data, attribute, ptr, 0);
}

/* Unlike cuPointerGetAttribute, an unknown pointer is no error: defaults are returned. */
CUresult cuPointerGetAttributes(unsigned int numAttributes, CUpointer_attribute *attributes,
                                void **data, CUdeviceptr ptr)
{
    CUresult r = vgpu_ready(vgpu_get());
    if (r != CUDA_SUCCESS)
        return r;
    if (attributes == NULL || data == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    for (unsigned i = 0; i < numAttributes; i++) {
        if (data[i] == NULL)
            return CUDA_ERROR_INVALID_VALUE;
        if ((r = pointer_attr(data[i], attributes[i], ptr, 1)) != CUDA_SUCCESS)
            return r;
    }
    return CUDA_SUCCESS;
}

/* ---- peer copies: every context lives on one of our devices, and the proxy addresses all of a
 * zone's memory alike, so a peer copy is a device-to-device copy ---- */

static CUresult peer_check(CUcontext a, CUcontext b)
{
    return (vgpu_ctx_check(a) && vgpu_ctx_check(b)) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_CONTEXT;
}

CUresult cuMemcpyPeer(CUdeviceptr dstDevice, CUcontext dstContext, CUdeviceptr srcDevice,
                      CUcontext srcContext, size_t ByteCount)
{
    CUresult r = peer_check(dstContext, srcContext);
    return r != CUDA_SUCCESS ? r : copy(DTOD, dstDevice, srcDevice, ByteCount, NULL, 1);
}

CUresult cuMemcpyPeer_ptds(CUdeviceptr dstDevice, CUcontext dstContext, CUdeviceptr srcDevice,
                           CUcontext srcContext, size_t ByteCount)
{
    CUresult r = peer_check(dstContext, srcContext);
    return r != CUDA_SUCCESS ? r : copy(DTOD, dstDevice, srcDevice, ByteCount, PTS, 1);
}

CUresult cuMemcpyPeerAsync(CUdeviceptr dstDevice, CUcontext dstContext, CUdeviceptr srcDevice,
                           CUcontext srcContext, size_t ByteCount, CUstream hStream)
{
    CUresult r = peer_check(dstContext, srcContext);
    return r != CUDA_SUCCESS ? r : copy(DTOD, dstDevice, srcDevice, ByteCount, hStream, 0);
}

CUresult cuMemcpyPeerAsync_ptsz(CUdeviceptr dstDevice, CUcontext dstContext,
                                CUdeviceptr srcDevice, CUcontext srcContext, size_t ByteCount,
                                CUstream hStream)
{
    CUresult r = peer_check(dstContext, srcContext);
    if (r != CUDA_SUCCESS)
        return r;
    return copy(DTOD, dstDevice, srcDevice, ByteCount, hStream ? hStream : PTS, 0);
}
