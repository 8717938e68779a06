/* api_array.c - CUDA arrays, the copies to, from and between arrays and pitched memory
 * (cuMemcpy2D/3D and their async, unaligned and 1D array forms) and texture and surface
 * objects. A CUarray is the proxy's array handle; texture and surface objects are the values
 * the proxy's backend gives kernels. Host data of a copy travels packed (rows of WidthInBytes)
 * in window chunks, or inline when small; copies run after the process's earlier work and
 * return when done, async forms included. Mipmapped arrays, resource views and the 32-bit
 * (v1) entry points stay unsupported. */
#include <stdlib.h>
#include <string.h>

#include "vgpu.h"
#include "vgpu_calls.h"

#define ARRAY_H(a) ((idm_handle)(uintptr_t)(a))

static CUresult array_enter(struct vgpu *v, idm_handle *ctx)
{
    CUresult r = vgpu_ready(v);

    return r != CUDA_SUCCESS ? r : vgpu_cur_ctx_handle(ctx);
}

/* ---- arrays ---- */

static CUresult array_create(CUarray *out, uint64_t w, uint64_t h, uint64_t d, uint32_t format,
                             uint32_t channels, uint32_t flags)
{
    struct vgpu *v = vgpu_get();
    struct idm_req_ARRAY_CREATE rq = {.width = w, .height = h, .depth = d, .format = format,
                                      .channels = channels, .flags = flags};
    struct idm_rep_ARRAY_CREATE rp;
    CUresult r;

    if (out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = array_enter(v, &rq.ctx)) != CUDA_SUCCESS ||
        (r = vgpu_capture_unsafe("cuArrayCreate")) != CUDA_SUCCESS)
        return r;
    if ((r = VGPU_CALL(v, ARRAY_CREATE, &rq, &rp)) == CUDA_SUCCESS)
        *out = (CUarray)(uintptr_t)rp.array;
    return r;
}

CUresult cuArrayCreate_v2(CUarray *pHandle, const CUDA_ARRAY_DESCRIPTOR *d)
{
    if (d == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    return array_create(pHandle, d->Width, d->Height, 0, d->Format, d->NumChannels, 0);
}

CUresult cuArray3DCreate_v2(CUarray *pHandle, const CUDA_ARRAY3D_DESCRIPTOR *d)
{
    if (d == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    return array_create(pHandle, d->Width, d->Height, d->Depth, d->Format, d->NumChannels,
                        d->Flags);
}

CUresult cuArrayDestroy(CUarray a)
{
    struct vgpu *v = vgpu_get();
    struct idm_req_ARRAY_DESTROY rq = {.array = ARRAY_H(a)};
    struct idm_rep_ARRAY_DESTROY rp;
    CUresult r = vgpu_ready(v);

    return r != CUDA_SUCCESS ? r : VGPU_CALL(v, ARRAY_DESTROY, &rq, &rp);
}

static CUresult array_desc(CUarray a, struct idm_rep_ARRAY_GET_DESC *rp)
{
    struct vgpu *v = vgpu_get();
    struct idm_req_ARRAY_GET_DESC rq = {.array = ARRAY_H(a)};
    CUresult r = vgpu_ready(v);

    return r != CUDA_SUCCESS ? r : VGPU_CALL(v, ARRAY_GET_DESC, &rq, rp);
}

CUresult cuArrayGetDescriptor_v2(CUDA_ARRAY_DESCRIPTOR *out, CUarray a)
{
    struct idm_rep_ARRAY_GET_DESC rp;
    CUresult r;

    if (out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = array_desc(a, &rp)) != CUDA_SUCCESS)
        return r;
    *out = (CUDA_ARRAY_DESCRIPTOR){.Width = rp.width, .Height = rp.height,
                                   .Format = (CUarray_format)rp.format,
                                   .NumChannels = rp.channels};
    return CUDA_SUCCESS;
}

CUresult cuArray3DGetDescriptor_v2(CUDA_ARRAY3D_DESCRIPTOR *out, CUarray a)
{
    struct idm_rep_ARRAY_GET_DESC rp;
    CUresult r;

    if (out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = array_desc(a, &rp)) != CUDA_SUCCESS)
        return r;
    *out = (CUDA_ARRAY3D_DESCRIPTOR){.Width = rp.width, .Height = rp.height, .Depth = rp.depth,
                                     .Format = (CUarray_format)rp.format,
                                     .NumChannels = rp.channels, .Flags = rp.flags};
    return CUDA_SUCCESS;
}

/* ---- copies ---- */

/* A side of a copy as the proxy takes it; host sides keep their pointer here. */
struct side {
    uint32_t kind;
    uint64_t ptr;           /* device address or array handle */
    uint8_t *host;
    uint64_t x, y, z, pitch, pitch_h;
};

/* CU_MEMORYTYPE_UNIFIED: device memory when the address lies in one of our allocations. */
static CUresult side_of(struct vgpu *v, CUmemorytype t, const void *host, CUdeviceptr dev,
                        CUarray array, size_t x, size_t y, size_t z, size_t pitch,
                        size_t pitch_h, struct side *s)
{
    *s = (struct side){.x = x, .y = y, .z = z, .pitch = pitch, .pitch_h = pitch_h};
    if (t == CU_MEMORYTYPE_UNIFIED) {
        pthread_mutex_lock(&v->lock);
        t = vgpu_alloc_find_locked(v, dev) ? CU_MEMORYTYPE_DEVICE : CU_MEMORYTYPE_HOST;
        pthread_mutex_unlock(&v->lock);
        host = (const void *)(uintptr_t)dev;
    }
    switch (t) {
    case CU_MEMORYTYPE_HOST:
        s->kind = IDM_SIDE_HOST;
        s->host = (uint8_t *)(uintptr_t)host;
        return host ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    case CU_MEMORYTYPE_DEVICE:
        s->kind = IDM_SIDE_DEVICE;
        s->ptr = dev;
        return CUDA_SUCCESS;
    case CU_MEMORYTYPE_ARRAY:
        s->kind = IDM_SIDE_ARRAY;
        s->ptr = ARRAY_H(array);
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

/* The host address of row (y, z) of a host side, x included. */
static uint8_t *host_row(const struct side *s, uint64_t y, uint64_t z)
{
    return s->host + (s->z + z) * s->pitch * s->pitch_h + (s->y + y) * s->pitch + s->x;
}

static void fill_side(const struct side *s, uint64_t dx, uint64_t dy, uint64_t dz,
                      uint32_t *kind, uint64_t *ptr, uint64_t *x, uint64_t *y, uint64_t *z,
                      uint64_t *pitch, uint64_t *pitch_h)
{
    *kind = s->kind;
    *ptr = s->ptr;
    *x = s->kind == IDM_SIDE_HOST ? 0 : s->x + dx;
    *y = s->kind == IDM_SIDE_HOST ? 0 : s->y + dy;
    *z = s->kind == IDM_SIDE_HOST ? 0 : s->z + dz;
    *pitch = s->pitch;
    *pitch_h = s->pitch_h;
}

/* The request for the box of w x h rows x 1 slice at (dx, dy, dz) of the copy. */
static void box_req(struct idm_req_MEMCPY_3D *q, const struct side *dst, const struct side *src,
                    uint64_t dx, uint64_t dy, uint64_t dz, uint64_t w, uint64_t h, uint64_t d)
{
    memset(q, 0, sizeof(*q));
    fill_side(dst, dx, dy, dz, &q->dst_kind, &q->dst, &q->dst_x, &q->dst_y, &q->dst_z,
              &q->dst_pitch, &q->dst_pitch_h);
    fill_side(src, dx, dy, dz, &q->src_kind, &q->src, &q->src_x, &q->src_y, &q->src_z,
              &q->src_pitch, &q->src_pitch_h);
    q->width_bytes = w;
    q->height = h;
    q->depth = d;
}

/* A copy with a host side: boxes of whole rows (row pieces for rows longer than a chunk, cut
 * at multiples of 16 bytes so that array texels stay whole), the host bytes packed. */
static CUresult copy_host_locked(struct vgpu *v, const struct side *dst, const struct side *src,
                                 uint64_t wb, uint64_t h, uint64_t d, idm_handle stream)
{
    int in = src->kind == IDM_SIDE_HOST;
    const struct side *hs = in ? src : dst;
    uint64_t cap = v->nchunks ? v->chunk_size : vgpu_inline_max(v, in ? IDM_OP_MEMCPY_3D_IN
                                                                      : IDM_OP_MEMCPY_3D_OUT);
    uint64_t cw = wb <= cap ? wb : cap & ~(uint64_t)15;
    CUresult r = CUDA_SUCCESS;

    if (cw == 0)
        return CUDA_ERROR_NOT_SUPPORTED;
    for (uint64_t k = 0; k < d && r == CUDA_SUCCESS; k++)
        for (uint64_t x0 = 0; x0 < wb && r == CUDA_SUCCESS; x0 += cw) {
            uint64_t w = wb - x0 < cw ? wb - x0 : cw, rows = cap / w;
            for (uint64_t j = 0; j < h && r == CUDA_SUCCESS; j += rows) {
                uint64_t n = h - j < rows ? h - j : rows;
                struct idm_req_MEMCPY_3D q;
                int c = v->nchunks ? vgpu_chunk_get_locked(v, &r) : -1;
                uint8_t *buf = c >= 0 ? vgpu_chunk_ptr(v, c) : NULL, *tmp = NULL;
                if (v->nchunks && c < 0)
                    break;
                if (buf == NULL && (buf = tmp = malloc(n * w)) == NULL) {
                    r = CUDA_ERROR_OUT_OF_MEMORY;
                    break;
                }
                box_req(&q, dst, src, x0, j, k, w, n, 1);
                q.stream = stream;
                q.len = n * w;
                q.win_off = c >= 0 ? (uint64_t)c * v->chunk_size : 0;
                q.win_len = c >= 0 ? n * w : 0;
                if (in) {
                    for (uint64_t i = 0; i < n; i++)
                        memcpy(buf + i * w, host_row(hs, j + i, k) + x0, w);
                    r = vgpu_rpc_locked(v, IDM_OP_MEMCPY_3D_IN, &q, sizeof(q), c >= 0 ? NULL : buf,
                                        c >= 0 ? 0 : n * w, NULL, 0, NULL, 0, NULL);
                } else {
                    struct idm_rep_MEMCPY_3D_OUT rp;
                    size_t got = 0;
                    r = vgpu_rpc_locked(v, IDM_OP_MEMCPY_3D_OUT, &q, sizeof(q), NULL, 0, &rp,
                                        sizeof(rp), c >= 0 ? NULL : buf, c >= 0 ? 0 : n * w,
                                        &got);
                    if (r == CUDA_SUCCESS && c < 0 && got != n * w)
                        r = CUDA_ERROR_UNKNOWN;
                    for (uint64_t i = 0; i < n && r == CUDA_SUCCESS; i++)
                        memcpy(host_row(hs, j + i, k) + x0, buf + i * w, w);
                }
                if (c >= 0)
                    vgpu_chunk_put_locked(v, c);
                free(tmp);
            }
        }
    return r;
}

/* Host to host: row by row, after the earlier work. */
static void copy_hh(const struct side *dst, const struct side *src, uint64_t wb, uint64_t h,
                    uint64_t d)
{
    for (uint64_t k = 0; k < d; k++)
        for (uint64_t j = 0; j < h; j++)
            memmove(host_row(dst, j, k), host_row(src, j, k), wb);
}

static CUresult copy3d(const CUDA_MEMCPY3D *m, CUstream hs, const char *what)
{
    struct vgpu *v = vgpu_get();
    struct side dst, src;
    idm_handle ctx, stream = vgpu_stream_handle(hs);
    CUresult r;

    if (m == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = array_enter(v, &ctx)) != CUDA_SUCCESS)
        return r;
    if (vgpu_capture_on() && (r = vgpu_capture_refuse(hs, what)) != VGPU_NOT_CAPTURED)
        return r;
    if ((r = vgpu_capture_unsafe(what)) != CUDA_SUCCESS)
        return r;
    if ((r = side_of(v, m->dstMemoryType, m->dstHost, m->dstDevice, m->dstArray, m->dstXInBytes,
                     m->dstY, m->dstZ, m->dstPitch, m->dstHeight, &dst)) != CUDA_SUCCESS ||
        (r = side_of(v, m->srcMemoryType, m->srcHost, m->srcDevice, m->srcArray, m->srcXInBytes,
                     m->srcY, m->srcZ, m->srcPitch, m->srcHeight, &src)) != CUDA_SUCCESS)
        return r;
    if (m->WidthInBytes == 0 || m->Height == 0 || m->Depth == 0)
        return CUDA_SUCCESS;
    pthread_mutex_lock(&v->lock);
    r = vgpu_drain_locked(v); /* earlier copies' bytes have landed, their errors come first */
    if (r == CUDA_SUCCESS && dst.kind == IDM_SIDE_HOST && src.kind == IDM_SIDE_HOST) {
        copy_hh(&dst, &src, m->WidthInBytes, m->Height, m->Depth);
    } else if (r == CUDA_SUCCESS && (dst.kind == IDM_SIDE_HOST || src.kind == IDM_SIDE_HOST)) {
        r = copy_host_locked(v, &dst, &src, m->WidthInBytes, m->Height, m->Depth, stream);
    } else if (r == CUDA_SUCCESS) {
        struct idm_req_MEMCPY_3D q;
        struct idm_rep_MEMCPY_3D rp;
        box_req(&q, &dst, &src, 0, 0, 0, m->WidthInBytes, m->Height, m->Depth);
        q.stream = stream;
        r = vgpu_call_MEMCPY_3D_locked(v, &q, NULL, 0, &rp, NULL, 0, NULL);
    }
    pthread_mutex_unlock(&v->lock);
    return r;
}

/* A 2D copy is a 3D copy of one slice. */
CUresult vgpu_copy2d_array(const CUDA_MEMCPY2D *m, CUstream hs, const char *what)
{
    CUDA_MEMCPY3D c;

    if (m == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    memset(&c, 0, sizeof(c));
    c.srcXInBytes = m->srcXInBytes;
    c.srcY = m->srcY;
    c.srcMemoryType = m->srcMemoryType;
    c.srcHost = m->srcHost;
    c.srcDevice = m->srcDevice;
    c.srcArray = m->srcArray;
    c.srcPitch = m->srcPitch;
    c.srcHeight = m->srcY + m->Height;
    c.dstXInBytes = m->dstXInBytes;
    c.dstY = m->dstY;
    c.dstMemoryType = m->dstMemoryType;
    c.dstHost = m->dstHost;
    c.dstDevice = m->dstDevice;
    c.dstArray = m->dstArray;
    c.dstPitch = m->dstPitch;
    c.dstHeight = m->dstY + m->Height;
    c.WidthInBytes = m->WidthInBytes;
    c.Height = m->Height;
    c.Depth = 1;
    return copy3d(&c, hs, what);
}

/* A 1D copy with an array side: bytes at a byte offset of its first row. */
static CUresult copy1d(CUmemorytype dt, void *dh, CUdeviceptr dd, CUarray da, size_t doff,
                       CUmemorytype st, const void *sh, CUdeviceptr sd, CUarray sa, size_t soff,
                       size_t n, CUstream hs, const char *what)
{
    CUDA_MEMCPY3D c;

    memset(&c, 0, sizeof(c));
    c.dstMemoryType = dt;
    c.dstHost = dh;
    c.dstDevice = dd;
    c.dstArray = da;
    c.dstXInBytes = doff;
    c.dstPitch = doff + n;
    c.srcMemoryType = st;
    c.srcHost = sh;
    c.srcDevice = sd;
    c.srcArray = sa;
    c.srcXInBytes = soff;
    c.srcPitch = soff + n;
    c.WidthInBytes = n;
    c.Height = 1;
    c.Depth = 1;
    return copy3d(&c, hs, what);
}


CUresult cuMemcpy3D_v2(const CUDA_MEMCPY3D *m) { return copy3d(m, NULL, "cuMemcpy3D"); }
CUresult cuMemcpy3DAsync_v2(const CUDA_MEMCPY3D *m, CUstream s)
{
    return copy3d(m, s, "cuMemcpy3DAsync");
}

#define HOST CU_MEMORYTYPE_HOST
#define DEV CU_MEMORYTYPE_DEVICE
#define ARR CU_MEMORYTYPE_ARRAY

CUresult cuMemcpyHtoA_v2(CUarray a, size_t off, const void *src, size_t n)
{
    return copy1d(ARR, NULL, 0, a, off, HOST, src, 0, NULL, 0, n, NULL, "cuMemcpyHtoA");
}
CUresult cuMemcpyHtoAAsync_v2(CUarray a, size_t off, const void *src, size_t n, CUstream s)
{
    return copy1d(ARR, NULL, 0, a, off, HOST, src, 0, NULL, 0, n, s, "cuMemcpyHtoAAsync");
}
CUresult cuMemcpyAtoH_v2(void *dst, CUarray a, size_t off, size_t n)
{
    return copy1d(HOST, dst, 0, NULL, 0, ARR, NULL, 0, a, off, n, NULL, "cuMemcpyAtoH");
}
CUresult cuMemcpyAtoHAsync_v2(void *dst, CUarray a, size_t off, size_t n, CUstream s)
{
    return copy1d(HOST, dst, 0, NULL, 0, ARR, NULL, 0, a, off, n, s, "cuMemcpyAtoHAsync");
}
CUresult cuMemcpyAtoD_v2(CUdeviceptr dst, CUarray a, size_t off, size_t n)
{
    return copy1d(DEV, NULL, dst, NULL, 0, ARR, NULL, 0, a, off, n, NULL, "cuMemcpyAtoD");
}
CUresult cuMemcpyDtoA_v2(CUarray a, size_t off, CUdeviceptr src, size_t n)
{
    return copy1d(ARR, NULL, 0, a, off, DEV, NULL, src, NULL, 0, n, NULL, "cuMemcpyDtoA");
}
CUresult cuMemcpyAtoA_v2(CUarray d, size_t doff, CUarray s, size_t soff, size_t n)
{
    return copy1d(ARR, NULL, 0, d, doff, ARR, NULL, 0, s, soff, n, NULL, "cuMemcpyAtoA");
}

/* ---- texture and surface objects ---- */

/* The resource of a texture or surface object, as TEX_CREATE carries it. */
static CUresult resource_req(const CUDA_RESOURCE_DESC *rd, struct idm_req_TEX_CREATE *q)
{
    if (rd == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    q->res_type = rd->resType;
    switch (rd->resType) {
    case CU_RESOURCE_TYPE_ARRAY:
        q->array = ARRAY_H(rd->res.array.hArray);
        return CUDA_SUCCESS;
    case CU_RESOURCE_TYPE_LINEAR:
        q->dptr = rd->res.linear.devPtr;
        q->format = rd->res.linear.format;
        q->channels = rd->res.linear.numChannels;
        q->size_bytes = rd->res.linear.sizeInBytes;
        return CUDA_SUCCESS;
    case CU_RESOURCE_TYPE_PITCH2D:
        q->dptr = rd->res.pitch2D.devPtr;
        q->format = rd->res.pitch2D.format;
        q->channels = rd->res.pitch2D.numChannels;
        q->width = rd->res.pitch2D.width;
        q->height = rd->res.pitch2D.height;
        q->pitch = rd->res.pitch2D.pitchInBytes;
        return CUDA_SUCCESS;
    default: /* mipmapped arrays are not supported */
        vgpu_log(VGPU_LOG_WARN, "texture/surface on a resource of type %d: not supported",
                 (int)rd->resType);
        return CUDA_ERROR_NOT_SUPPORTED;
    }
}

static CUresult object_create(unsigned long long *out, struct idm_req_TEX_CREATE *q)
{
    struct vgpu *v = vgpu_get();
    struct idm_rep_TEX_CREATE rp;
    CUresult r;

    if (out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = array_enter(v, &q->ctx)) != CUDA_SUCCESS)
        return r;
    if ((r = VGPU_CALL(v, TEX_CREATE, q, &rp)) == CUDA_SUCCESS)
        *out = rp.value;
    return r;
}

CUresult cuTexObjectCreate(CUtexObject *pTexObject, const CUDA_RESOURCE_DESC *pResDesc,
                           const CUDA_TEXTURE_DESC *pTexDesc,
                           const CUDA_RESOURCE_VIEW_DESC *pResViewDesc)
{
    struct idm_req_TEX_CREATE q;
    CUresult r;

    memset(&q, 0, sizeof(q));
    if (pTexDesc == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (pResViewDesc != NULL) {
        vgpu_log(VGPU_LOG_WARN, "cuTexObjectCreate with a resource view: not supported");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    if ((r = resource_req(pResDesc, &q)) != CUDA_SUCCESS)
        return r;
    for (int i = 0; i < 3; i++)
        q.address_mode[i] = pTexDesc->addressMode[i];
    q.filter_mode = pTexDesc->filterMode;
    q.flags = pTexDesc->flags;
    memcpy(q.border_color, pTexDesc->borderColor, sizeof(q.border_color));
    return object_create(pTexObject, &q);
}

CUresult cuSurfObjectCreate(CUsurfObject *pSurfObject, const CUDA_RESOURCE_DESC *pResDesc)
{
    struct idm_req_TEX_CREATE q;
    CUresult r;

    memset(&q, 0, sizeof(q));
    q.surface = 1;
    if ((r = resource_req(pResDesc, &q)) != CUDA_SUCCESS)
        return r;
    return object_create(pSurfObject, &q);
}

static CUresult object_destroy(uint64_t value, uint32_t surface)
{
    struct vgpu *v = vgpu_get();
    struct idm_req_TEX_DESTROY rq = {.value = value, .surface = surface};
    struct idm_rep_TEX_DESTROY rp;
    CUresult r = vgpu_ready(v);

    return r != CUDA_SUCCESS ? r : VGPU_CALL(v, TEX_DESTROY, &rq, &rp);
}

CUresult cuTexObjectDestroy(CUtexObject t) { return object_destroy(t, 0); }
CUresult cuSurfObjectDestroy(CUsurfObject s) { return object_destroy(s, 1); }

static CUresult object_desc(uint64_t value, uint32_t surface, struct idm_rep_TEX_GET_DESC *rp)
{
    struct vgpu *v = vgpu_get();
    struct idm_req_TEX_GET_DESC rq = {.value = value, .surface = surface};
    CUresult r = vgpu_ready(v);

    return r != CUDA_SUCCESS ? r : VGPU_CALL(v, TEX_GET_DESC, &rq, rp);
}

static void resource_desc(const struct idm_rep_TEX_GET_DESC *p, CUDA_RESOURCE_DESC *rd)
{
    memset(rd, 0, sizeof(*rd));
    rd->resType = (CUresourcetype)p->res_type;
    if (p->res_type == CU_RESOURCE_TYPE_ARRAY) {
        rd->res.array.hArray = (CUarray)(uintptr_t)p->array;
    } else if (p->res_type == CU_RESOURCE_TYPE_LINEAR) {
        rd->res.linear.devPtr = p->dptr;
        rd->res.linear.format = (CUarray_format)p->format;
        rd->res.linear.numChannels = p->channels;
        rd->res.linear.sizeInBytes = p->size_bytes;
    } else {
        rd->res.pitch2D.devPtr = p->dptr;
        rd->res.pitch2D.format = (CUarray_format)p->format;
        rd->res.pitch2D.numChannels = p->channels;
        rd->res.pitch2D.width = p->width;
        rd->res.pitch2D.height = p->height;
        rd->res.pitch2D.pitchInBytes = p->pitch;
    }
}

/* The resource of a texture (surface 0) or surface object. */
static CUresult object_resource_desc(CUDA_RESOURCE_DESC *out, uint64_t value, int surface)
{
    struct idm_rep_TEX_GET_DESC p;
    CUresult r;

    if (out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = object_desc(value, surface, &p)) == CUDA_SUCCESS)
        resource_desc(&p, out);
    return r;
}

CUresult cuTexObjectGetResourceDesc(CUDA_RESOURCE_DESC *out, CUtexObject t)
{
    return object_resource_desc(out, t, 0);
}

CUresult cuSurfObjectGetResourceDesc(CUDA_RESOURCE_DESC *out, CUsurfObject s)
{
    return object_resource_desc(out, s, 1);
}

CUresult cuTexObjectGetTextureDesc(CUDA_TEXTURE_DESC *out, CUtexObject t)
{
    struct idm_rep_TEX_GET_DESC p;
    CUresult r;

    if (out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = object_desc(t, 0, &p)) != CUDA_SUCCESS)
        return r;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < 3; i++)
        out->addressMode[i] = (CUaddress_mode)p.address_mode[i];
    out->filterMode = (CUfilter_mode)p.filter_mode;
    out->flags = p.flags;
    memcpy(out->borderColor, p.border_color, sizeof(out->borderColor));
    return CUDA_SUCCESS;
}
