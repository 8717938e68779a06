/* api_managed.c - managed memory (cuMemAllocManaged) with CUDA's semantics for devices without
 * concurrent managed access (CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS = 0): the pointer is a
 * device allocation of the zone (MEM_ALLOC, charged to its quota) and, at the same numeric
 * address, anonymous host memory mapped with MAP_FIXED_NOREPLACE. The host copy is the one that
 * counts until GPU work may use the allocation: a launch (or a memset of it) first sends the
 * pages that differ from a shadow copy of what the device holds (per-page comparison), then
 * makes the host pages PROT_NONE, so host access while the GPU owns them faults as CUDA
 * documents (SIGSEGV). The synchronising call that ends the GPU work that could see it
 * (cuCtxSynchronize; cuStreamSynchronize, cuEventSynchronize or a successful query of the
 * stream it is attached to, or of every stream for globally attached memory) copies it back
 * and gives the host access again. Also here: cuStreamAttachMemAsync, prefetch, advice, range
 * attributes, and the device attributes that advertise all this. Every table is under v->lock.
 *
 * Why a shadow copy and not write protection for the dirty tracking: a write-protected page
 * that a system call writes (read(2) into a managed buffer) fails with EFAULT instead of
 * faulting, a SIGSEGV handler would have to share the process with the program's own, and
 * soft-dirty bits need /proc and a kernel option the zone's guest kernel may lack. The cost is
 * host memory the size of the allocation and one memcmp of it per launch that finds it on the
 * host. The way back is whole allocations: what a kernel wrote is not visible to libvgpu. */
#include "vgpu_calls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MANAGED_TRIES 4    /* device allocations tried when the host address is taken */
#define BUSY_MAX 256       /* streams with GPU work not yet synchronised */

struct managed {
    uint64_t ptr;          /* host and device address (page-aligned) */
    uint64_t size;         /* as requested */
    uint64_t len;          /* host mapping: size rounded up to pages */
    uint64_t base;         /* the device allocation holding [ptr, ptr + len) */
    idm_handle ctx;        /* the context it was allocated in */
    uint8_t *shadow;       /* what the device holds, as far as libvgpu wrote or read it */
    int on_device;         /* 1: the GPU owns it (host pages PROT_NONE) */
    unsigned attach;       /* CU_MEM_ATTACH_GLOBAL, _HOST or _SINGLE */
    idm_handle stream;     /* _HOST, _SINGLE: the stream it was attached through */
    int read_mostly;       /* advice, kept for cuMemRangeGetAttribute */
    CUmemLocation preferred;
    uint32_t accessed_by;  /* bit d: device d; bit 31: the host */
    int prefetched_host;
};

struct busy {
    idm_handle stream;
    int nonblocking;       /* created with CU_STREAM_NON_BLOCKING: the legacy stream's
                            * synchronisation does not wait for it */
    uint64_t seq;          /* launch counter at its last launch */
};

struct recorded {
    idm_handle event, stream;
    uint64_t seq;          /* launch counter when it was recorded */
};

static struct managed *mtab;
static size_t nm, cap_m;
static struct busy busy[BUSY_MAX];
static size_t nbusy;
static int busy_overflow;  /* a stream found no room in busy[]: idle only at a context sync */
static struct recorded *rec;
static size_t nrec, cap_rec;
static uint64_t launch_seq;
static size_t page_size;

/* ---- tables ---- */

static struct managed *managed_find(uint64_t p)
{
    for (size_t i = 0; i < nm; i++)
        if (p - mtab[i].ptr < mtab[i].size)
            return &mtab[i];
    return NULL;
}

static int managed_add(const struct managed *m)
{
    if (nm == cap_m) {
        size_t cap = cap_m ? cap_m * 2 : 16;
        struct managed *n = realloc(mtab, cap * sizeof *n);
        if (n == NULL)
            return -ENOMEM;
        mtab = n;
        cap_m = cap;
    }
    mtab[nm++] = *m;
    return 0;
}

static struct busy *busy_find(idm_handle s)
{
    for (size_t i = 0; i < nbusy; i++)
        if (busy[i].stream == s)
            return &busy[i];
    return NULL;
}

static int stream_nonblocking(CUstream s)
{
    unsigned flags = 0;
    if (vgpu_stream_handle(s) == 0 || cuStreamGetFlags(s, &flags) != CUDA_SUCCESS)
        return 0;
    return (flags & CU_STREAM_NON_BLOCKING) != 0;
}

/* GPU work was queued on s. With no room left for it (256 streams with work not synchronised),
 * every allocation stays the GPU's until the next context synchronisation. */
static void busy_mark(CUstream s)
{
    idm_handle h = vgpu_stream_handle(s);
    struct busy *b = busy_find(h);
    ++launch_seq;
    if (b == NULL && nbusy == BUSY_MAX) {
        busy_overflow = 1;
        return;
    }
    if (b == NULL) {
        b = &busy[nbusy++];
        *b = (struct busy){.stream = h, .nonblocking = stream_nonblocking(s)};
    }
    b->seq = launch_seq;
}

/* Stream h's work up to launch counter `upto` is done; the legacy stream's completion includes
 * every blocking stream's earlier work. */
static void busy_done(idm_handle h, uint64_t upto)
{
    for (size_t i = 0; i < nbusy;) {
        struct busy *b = &busy[i];
        if ((b->stream == h || (h == 0 && !b->nonblocking)) && b->seq <= upto)
            *b = busy[--nbusy];
        else
            i++;
    }
}

/* ---- moving data ---- */

static int visible(const struct managed *m, idm_handle stream)
{
    if (m->attach == CU_MEM_ATTACH_GLOBAL)
        return 1;
    return m->attach == CU_MEM_ATTACH_SINGLE && m->stream == stream;
}

static CUresult protect(const struct managed *m, int prot, const char *why)
{
    if (mprotect((void *)(uintptr_t)m->ptr, m->len, prot) == 0)
        return CUDA_SUCCESS;
    VLOG(VGPU_LOG_ERROR, "managed memory %#llx (%llu bytes): mprotect for %s: %s",
         (unsigned long long)m->ptr, (unsigned long long)m->len, why, strerror(errno));
    return CUDA_ERROR_UNKNOWN;
}

/* Sends the pages that differ from the shadow (runs of them as one copy), then hands the
 * allocation to the GPU. */
static CUresult push(struct vgpu *v, struct managed *m, idm_handle stream)
{
    const uint8_t *host = (const uint8_t *)(uintptr_t)m->ptr;
    size_t pages = m->len / page_size, sent = 0;
    CUresult r = CUDA_SUCCESS;

    for (size_t p = 0; p < pages && r == CUDA_SUCCESS;) {
        size_t off = p * page_size;
        if (memcmp(host + off, m->shadow + off, page_size) == 0) {
            p++;
            continue;
        }
        size_t q = p + 1;
        while (q < pages && memcmp(host + q * page_size, m->shadow + q * page_size,
                                   page_size) != 0)
            q++;
        size_t n = (q - p) * page_size;
        r = vgpu_htod_locked(v, m->ptr + off, host + off, n, stream);
        if (r == CUDA_SUCCESS)
            memcpy(m->shadow + off, host + off, n);
        sent += q - p;
        p = q;
    }
    if (r != CUDA_SUCCESS) {
        VLOG(VGPU_LOG_ERROR, "managed memory %#llx: copy to the device failed (%d)",
             (unsigned long long)m->ptr, r);
        return r;
    }
    VLOG(VGPU_LOG_DEBUG, "managed memory %#llx: %zu of %zu pages to the device",
         (unsigned long long)m->ptr, sent, pages);
    if ((r = protect(m, PROT_NONE, "the GPU's turn")) == CUDA_SUCCESS)
        m->on_device = 1;
    return r;
}

/* Copies the allocation back and gives the host access again. */
static CUresult pull(struct vgpu *v, struct managed *m, idm_handle stream)
{
    CUresult r = protect(m, PROT_READ | PROT_WRITE, "the host's turn");
    if (r != CUDA_SUCCESS)
        return r;
    m->on_device = 0;
    r = vgpu_dtoh_locked(v, (void *)(uintptr_t)m->ptr, m->ptr, m->size, stream);
    if (r == CUDA_SUCCESS)
        r = vgpu_drain_op_locked(v, IDM_OP_MEMCPY_DTOH);
    if (r != CUDA_SUCCESS) {
        VLOG(VGPU_LOG_ERROR, "managed memory %#llx: copy back to the host failed (%d): the "
             "host sees what it held before the GPU work", (unsigned long long)m->ptr, r);
        return r;
    }
    memcpy(m->shadow, (const void *)(uintptr_t)m->ptr, m->size);
    VLOG(VGPU_LOG_DEBUG, "managed memory %#llx: %llu bytes back to the host",
         (unsigned long long)m->ptr, (unsigned long long)m->size);
    return CUDA_SUCCESS;
}

/* The allocations whose GPU work has ended come back to the host. */
static CUresult pull_idle(struct vgpu *v)
{
    CUresult first = CUDA_SUCCESS;
    for (size_t i = 0; i < nm; i++) {
        struct managed *m = &mtab[i];
        int idle = m->attach == CU_MEM_ATTACH_GLOBAL ? nbusy == 0 : busy_find(m->stream) == NULL;
        if (!m->on_device || !idle || busy_overflow)
            continue;
        CUresult r = pull(v, m, nbusy == 0 ? 0 : m->stream);
        if (first == CUDA_SUCCESS)
            first = r;
    }
    return first;
}

/* ---- hooks (vgpu.h) ---- */

CUresult vgpu_managed_launch_locked(struct vgpu *v, CUstream s)
{
    if (nm == 0)
        return CUDA_SUCCESS;
    idm_handle stream = vgpu_stream_handle(s);
    int drained = 0;
    busy_mark(s);
    for (size_t i = 0; i < nm; i++) {
        struct managed *m = &mtab[i];
        if (m->on_device || !visible(m, stream))
            continue;
        if (!drained) { /* DtoH copies into managed host pages land before the comparison */
            CUresult r = vgpu_drain_op_locked(v, IDM_OP_MEMCPY_DTOH);
            if (r != CUDA_SUCCESS)
                return r;
            drained = 1;
        }
        CUresult r = push(v, m, stream);
        if (r != CUDA_SUCCESS)
            return r;
    }
    return CUDA_SUCCESS;
}

CUresult vgpu_managed_synced_locked(struct vgpu *v, int what, uint64_t h)
{
    if (nm == 0 && nbusy == 0)
        return CUDA_SUCCESS;
    switch (what) {
    case VGPU_SYNC_CTX:
        nbusy = 0;
        busy_overflow = 0;
        break;
    case VGPU_SYNC_STREAM:
        busy_done(h, UINT64_MAX);
        break;
    case VGPU_SYNC_EVENT:
        for (size_t i = 0; i < nrec; i++)
            if (rec[i].event == h)
                busy_done(rec[i].stream, rec[i].seq);
        break;
    }
    return pull_idle(v);
}

void vgpu_managed_event_record_locked(idm_handle event, CUstream s)
{
    size_t i = 0;
    while (i < nrec && rec[i].event != event)
        i++;
    if (i == nrec) {
        if (nrec == cap_rec) {
            size_t cap = cap_rec ? cap_rec * 2 : 16;
            struct recorded *n = realloc(rec, cap * sizeof *n);
            if (n == NULL) /* its synchronisation will then not end any GPU work here */
                return;
            rec = n;
            cap_rec = cap;
        }
        nrec++;
    }
    rec[i] = (struct recorded){.event = event, .stream = vgpu_stream_handle(s),
                               .seq = launch_seq};
}

void vgpu_managed_event_forget_locked(idm_handle event)
{
    for (size_t i = 0; i < nrec; i++)
        if (rec[i].event == event) {
            rec[i] = rec[--nrec];
            return;
        }
}

int vgpu_managed_on_device_locked(uint64_t p, int *on_device)
{
    const struct managed *m = managed_find(p);
    if (m != NULL)
        *on_device = m->on_device;
    return m != NULL;
}

int vgpu_managed_range_locked(uint64_t p, uint64_t *start, uint64_t *size)
{
    const struct managed *m = managed_find(p);
    if (m == NULL)
        return 0;
    *start = m->ptr;
    *size = m->size;
    return 1;
}

/* Fills width elements of elem bytes in each of height rows, pitch bytes apart. */
static void fill_rows(uint8_t *d, size_t pitch, uint32_t value, uint32_t elem, size_t width,
                      size_t height)
{
    for (size_t y = 0; y < height; y++, d += pitch)
        for (size_t x = 0; x < width; x++)
            memcpy(d + x * elem, &value, elem); /* little-endian: the low elem bytes */
}

int vgpu_managed_memset_locked(struct vgpu *v, uint64_t dst, size_t pitch, uint32_t value,
                               uint32_t elem, size_t width, size_t height, CUresult *r)
{
    const struct managed *m = managed_find(dst);
    if (m == NULL || m->on_device)
        return 0; /* device memory, or the GPU's turn: the memset goes to the device */
    if (width > SIZE_MAX / elem || (height > 1 && pitch > SIZE_MAX / height)) {
        *r = CUDA_ERROR_INVALID_VALUE;
        return 1;
    }
    size_t row = width * elem, span = (height - 1) * (height > 1 ? pitch : 0) + row;
    if ((height > 1 && pitch < row) || span > m->ptr + m->size - dst) {
        *r = CUDA_ERROR_INVALID_VALUE;
        return 1;
    }
    /* ordered after earlier copies into these pages */
    if ((*r = vgpu_drain_op_locked(v, IDM_OP_MEMCPY_DTOH)) == CUDA_SUCCESS)
        fill_rows((uint8_t *)(uintptr_t)dst, pitch, value, elem, width, height);
    return 1;
}

/* ---- allocation ---- */

/* Maps len bytes of host memory at exactly p: 0, or -errno (EEXIST: something is there). */
static int map_at(uint64_t p, size_t len)
{
    void *want = (void *)(uintptr_t)p;
    void *got = mmap(want, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (got == MAP_FAILED)
        return -errno;
    if (got != want) { /* a kernel before 4.17 takes the flag as a hint */
        munmap(got, len);
        return -EEXIST;
    }
    return 0;
}

static void device_free(uint64_t base)
{
    CUresult r = cuMemFree_v2(base);
    if (r != CUDA_SUCCESS)
        VLOG(VGPU_LOG_ERROR, "managed memory: freeing device allocation %#llx failed (%d)",
             (unsigned long long)base, r);
}

/* A device allocation one page larger than len, and host memory at its first page boundary. */
static CUresult managed_map(size_t len, uint64_t *base, uint64_t *ptr)
{
    uint64_t taken[MANAGED_TRIES];
    int ntaken = 0, err = 0;
    CUresult r = CUDA_SUCCESS;

    while (ntaken < MANAGED_TRIES) {
        CUdeviceptr d;
        if ((r = vgpu_mem_alloc(&d, len + page_size, 0)) != CUDA_SUCCESS)
            break;
        *base = d;
        *ptr = (*base + page_size - 1) & ~(uint64_t)(page_size - 1);
        if ((err = map_at(*ptr, len)) == 0)
            break;
        taken[ntaken++] = *base;
    }
    for (int i = 0; i < ntaken; i++) /* device ranges whose host addresses were taken */
        device_free(taken[i]);
    if (r == CUDA_SUCCESS && err != 0) {
        VLOG(VGPU_LOG_ERROR, "cuMemAllocManaged(%zu): host address %#llx of the device "
             "allocation is not free (%s, %d tries): out of memory", len,
             (unsigned long long)*ptr, strerror(-err), ntaken);
        r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    return r;
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (dptr == NULL || bytesize == 0 ||
        (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST))
        return CUDA_ERROR_INVALID_VALUE;
    size_t len = (bytesize + page_size - 1) & ~(page_size - 1);
    if (len < bytesize)
        return CUDA_ERROR_INVALID_VALUE;
    struct managed m = {.size = bytesize, .len = len, .attach = flags,
                        .preferred = {.type = CU_MEM_LOCATION_TYPE_INVALID}};
    if ((r = vgpu_cur_ctx_handle(&m.ctx)) != CUDA_SUCCESS ||
        (r = managed_map(len, &m.base, &m.ptr)) != CUDA_SUCCESS)
        return r;
    m.shadow = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m.shadow == MAP_FAILED) {
        VLOG(VGPU_LOG_ERROR, "cuMemAllocManaged(%zu): mmap of the shadow copy: %s", bytesize,
             strerror(errno));
        m.shadow = NULL;
    }
    pthread_mutex_lock(&v->lock);
    int rc = m.shadow ? managed_add(&m) : -ENOMEM;
    pthread_mutex_unlock(&v->lock);
    if (rc < 0) {
        if (m.shadow)
            munmap(m.shadow, len);
        munmap((void *)(uintptr_t)m.ptr, len);
        device_free(m.base);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    *dptr = m.ptr;
    return CUDA_SUCCESS;
}

static void managed_unmap(struct managed *m)
{
    if (munmap((void *)(uintptr_t)m->ptr, m->len) != 0 || munmap(m->shadow, m->len) != 0)
        VLOG(VGPU_LOG_ERROR, "managed memory %#llx: munmap: %s", (unsigned long long)m->ptr,
             strerror(errno));
    *m = mtab[--nm];
}

int vgpu_managed_free_locked(uint64_t p, uint64_t *base)
{
    struct managed *m = managed_find(p);
    if (m == NULL || m->ptr != p)
        return 0;
    *base = m->base;
    managed_unmap(m);
    return 1;
}

void vgpu_managed_forget_ctx_locked(idm_handle ctx)
{
    for (size_t i = 0; i < nm;)
        if (mtab[i].ctx == ctx)
            managed_unmap(&mtab[i]); /* moves the last record here */
        else
            i++;
}

/* ---- attachment, prefetch, advice ---- */

static CUresult attach(CUstream s, CUdeviceptr dptr, size_t length, unsigned flags)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST &&
        flags != CU_MEM_ATTACH_SINGLE)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&v->lock);
    struct managed *m = managed_find(dptr);
    if (m != NULL && m->ptr == dptr && (length == 0 || length == m->size)) {
        m->attach = flags;
        m->stream = vgpu_stream_handle(s);
    } else {
        r = CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_unlock(&v->lock);
    if (r != CUDA_SUCCESS)
        VLOG(VGPU_LOG_WARN, "cuStreamAttachMemAsync(%#llx, %zu): not the start and whole size "
             "of a managed allocation", (unsigned long long)dptr, length);
    return r;
}

CUresult cuStreamAttachMemAsync(CUstream hStream, CUdeviceptr dptr, size_t length,
                                unsigned int flags)
{
    return attach(hStream, dptr, length, flags);
}

/* [p, p + n) inside one managed allocation: it, else NULL. */
static struct managed *range_find(uint64_t p, size_t n)
{
    struct managed *m = managed_find(p);
    return (m != NULL && n > 0 && n <= m->ptr + m->size - p) ? m : NULL;
}

static CUresult prefetch(CUdeviceptr p, size_t n, CUmemLocation loc)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    pthread_mutex_lock(&v->lock);
    struct managed *m = range_find(p, n);
    if (m == NULL)
        r = CUDA_ERROR_INVALID_VALUE;
    else if (loc.type == CU_MEM_LOCATION_TYPE_DEVICE)
        r = CUDA_ERROR_INVALID_DEVICE;
    else if (loc.type == CU_MEM_LOCATION_TYPE_HOST || loc.type == CU_MEM_LOCATION_TYPE_HOST_NUMA ||
             loc.type == CU_MEM_LOCATION_TYPE_HOST_NUMA_CURRENT)
        m->prefetched_host = 1; /* it comes to the host at the synchronisation anyway */
    else
        r = CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&v->lock);
    if (r == CUDA_ERROR_INVALID_DEVICE)
        VLOG(VGPU_LOG_INFO, "cuMemPrefetchAsync to a device: refused, as CUDA does for a device "
             "without concurrent managed access");
    return r;
}

CUresult cuMemPrefetchAsync_v2(CUdeviceptr devPtr, size_t count, CUmemLocation location,
                               unsigned int flags, CUstream hStream)
{
    (void)hStream;
    return flags != 0 ? CUDA_ERROR_INVALID_VALUE : prefetch(devPtr, count, location);
}

static CUmemLocation dev_location(CUdevice d)
{
    if (d == CU_DEVICE_CPU)
        return (CUmemLocation){.type = CU_MEM_LOCATION_TYPE_HOST};
    return (CUmemLocation){.type = CU_MEM_LOCATION_TYPE_DEVICE, .id = d};
}

CUresult cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice,
                            CUstream hStream)
{
    (void)hStream;
    return prefetch(devPtr, count, dev_location(dstDevice));
}

static CUresult advise(CUdeviceptr p, size_t n, CUmem_advise advice, CUmemLocation loc)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    int host = loc.type == CU_MEM_LOCATION_TYPE_HOST;
    if (!host && (loc.type != CU_MEM_LOCATION_TYPE_DEVICE || loc.id < 0 ||
                  loc.id >= v->device_count) &&
        advice != CU_MEM_ADVISE_SET_READ_MOSTLY && advice != CU_MEM_ADVISE_UNSET_READ_MOSTLY)
        return CUDA_ERROR_INVALID_DEVICE;
    uint32_t bit = host ? 1u << 31 : (loc.id >= 0 && loc.id < 31) ? 1u << loc.id : 0;
    pthread_mutex_lock(&v->lock);
    struct managed *m = range_find(p, n);
    if (m == NULL)
        r = CUDA_ERROR_INVALID_VALUE;
    else if (advice == CU_MEM_ADVISE_SET_READ_MOSTLY || advice == CU_MEM_ADVISE_UNSET_READ_MOSTLY)
        m->read_mostly = advice == CU_MEM_ADVISE_SET_READ_MOSTLY;
    else if (advice == CU_MEM_ADVISE_SET_PREFERRED_LOCATION)
        m->preferred = loc;
    else if (advice == CU_MEM_ADVISE_UNSET_PREFERRED_LOCATION)
        m->preferred = (CUmemLocation){.type = CU_MEM_LOCATION_TYPE_INVALID};
    else if (advice == CU_MEM_ADVISE_SET_ACCESSED_BY)
        m->accessed_by |= bit;
    else if (advice == CU_MEM_ADVISE_UNSET_ACCESSED_BY)
        m->accessed_by &= ~bit;
    else
        r = CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&v->lock);
    return r; /* advice changes no data movement here: it happens at launches and syncs */
}

CUresult cuMemAdvise_v2(CUdeviceptr devPtr, size_t count, CUmem_advise advice,
                        CUmemLocation location)
{
    return advise(devPtr, count, advice, location);
}

CUresult cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device)
{
    return advise(devPtr, count, advice, dev_location(device));
}

/* A location as the legacy device-ordinal attributes give it. */
static int location_ordinal(CUmemLocation l)
{
    if (l.type == CU_MEM_LOCATION_TYPE_DEVICE)
        return l.id;
    return l.type == CU_MEM_LOCATION_TYPE_HOST ? CU_DEVICE_CPU : CU_DEVICE_INVALID;
}

static CUresult range_attr(const struct managed *m, void *data, size_t size,
                           CUmem_range_attribute a)
{
    int *out = data, n = (int)(size / sizeof(int)), k = 0;
    if (size < sizeof(int) || size % sizeof(int) != 0)
        return CUDA_ERROR_INVALID_VALUE;
    switch (a) {
    case CU_MEM_RANGE_ATTRIBUTE_READ_MOSTLY:
        *out = m->read_mostly;
        return CUDA_SUCCESS;
    case CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION:
        *out = location_ordinal(m->preferred);
        return CUDA_SUCCESS;
    case CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_TYPE:
        *out = m->preferred.type;
        return CUDA_SUCCESS;
    case CU_MEM_RANGE_ATTRIBUTE_PREFERRED_LOCATION_ID:
        *out = m->preferred.id;
        return CUDA_SUCCESS;
    case CU_MEM_RANGE_ATTRIBUTE_ACCESSED_BY:
        for (int d = 0; d < 31 && k < n; d++)
            if (m->accessed_by & (1u << d))
                out[k++] = d;
        if ((m->accessed_by & (1u << 31)) && k < n)
            out[k++] = CU_DEVICE_CPU;
        while (k < n)
            out[k++] = CU_DEVICE_INVALID;
        return CUDA_SUCCESS;
    case CU_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION:
        *out = m->prefetched_host ? CU_DEVICE_CPU : CU_DEVICE_INVALID;
        return CUDA_SUCCESS;
    case CU_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_TYPE:
        *out = m->prefetched_host ? CU_MEM_LOCATION_TYPE_HOST : CU_MEM_LOCATION_TYPE_INVALID;
        return CUDA_SUCCESS;
    case CU_MEM_RANGE_ATTRIBUTE_LAST_PREFETCH_LOCATION_ID:
        *out = 0;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

CUresult cuMemRangeGetAttributes(void **data, size_t *dataSizes,
                                 CUmem_range_attribute *attributes, size_t numAttributes,
                                 CUdeviceptr devPtr, size_t count)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (data == NULL || dataSizes == NULL || attributes == NULL || numAttributes == 0)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&v->lock);
    const struct managed *m = range_find(devPtr, count);
    r = m ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; i < numAttributes && r == CUDA_SUCCESS; i++)
        r = data[i] ? range_attr(m, data[i], dataSizes[i], attributes[i]) :
            CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_unlock(&v->lock);
    return r;
}

CUresult cuMemRangeGetAttribute(void *data, size_t dataSize, CUmem_range_attribute attribute,
                                CUdeviceptr devPtr, size_t count)
{
    return cuMemRangeGetAttributes(&data, &dataSize, &attribute, 1, devPtr, count);
}

/* ---- mapped host memory: not offered (STATUS.md): a kernel cannot see the tenant's host
 * memory across the domain boundary while it runs ---- */

CUresult vgpu_mapped_host_refuse(const char *what, const void *p)
{
    static int once;
    if (__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED) == 0)
        VLOG(VGPU_LOG_WARN, "%s(%p): mapped host memory is not supported "
             "(CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY is 0: a kernel on the GPU cannot reach "
             "this process's host memory); returning CUDA_ERROR_NOT_SUPPORTED", what, p);
    return CUDA_ERROR_NOT_SUPPORTED;
}

CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned int Flags)
{
    (void)pdptr;
    (void)Flags;
    return vgpu_mapped_host_refuse("cuMemHostGetDevicePointer", p);
}

/* ---- device attributes ---- */

void vgpu_managed_init(struct vgpu *v, int d)
{
    int32_t *a = v->dev[d].attrs;
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    a[CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY] = 1;
    a[CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS] = 0;
    a[CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS] = 0;
    a[CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES] = 0;
    a[CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST] = 0;
    a[CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY] = 0;
    a[CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM] = 0;
}
