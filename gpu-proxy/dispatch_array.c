/* dispatch_array.c - CUDA arrays, the 3D copies to, from and between arrays and device memory,
 * and texture and surface objects: every shape, range and handle checked against the CUDA
 * limits the device advertises and the session's own objects; arrays charged to the zone's
 * quota, arrays and objects bounded per zone (ZONE_MAX_ARRAYS, ZONE_MAX_TEXOBJS). Copies and
 * destroys run after the session's earlier work on every stream. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The simulated GPU's limits (backend_stub.c advertises the same figures). */
#define TEX1D_MAX 131072u
#define TEX2D_W_MAX 131072u
#define TEX2D_H_MAX 65536u
#define TEX3D_MAX 16384u
#define TEX3D_ALT_WH_MAX 8192u   /* the alternate 3D extents: width and height ... */
#define TEX3D_ALT_D_MAX 32768u   /* ... with a deeper depth */
#define GATHER_MAX 32768u
#define TEX_ALIGN 512u
#define LAYERED_MAX 32768u
#define LAYERS_MAX 2048u
#define SURF1D_MAX 32768u
#define TEX_LINEAR_MAX (1u << 28)
#define TEX_PITCH_ALIGN 32u
#define TEX_LINEAR_H_MAX 65000u
#define TEX_LINEAR_PITCH_MAX 2097120u

static uint32_t format_bytes(uint32_t format)
{
    switch (format) {
    case CU_AD_FORMAT_UNSIGNED_INT8:
    case CU_AD_FORMAT_SIGNED_INT8:
        return 1;
    case CU_AD_FORMAT_UNSIGNED_INT16:
    case CU_AD_FORMAT_SIGNED_INT16:
    case CU_AD_FORMAT_HALF:
        return 2;
    case CU_AD_FORMAT_UNSIGNED_INT32:
    case CU_AD_FORMAT_SIGNED_INT32:
    case CU_AD_FORMAT_FLOAT:
        return 4;
    default:
        return 0;
    }
}

/* Bytes a texel of format x channels, or 0 (refused) for a format or count not supported. */
static uint32_t texel_bytes(struct rq *r, uint32_t format, uint32_t channels)
{
    uint32_t b = format_bytes(format);

    if (b == 0 || (channels != 1 && channels != 2 && channels != 4)) {
        (void)rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                        "array format 0x%x with %u channels (u8/s8/u16/s16/u32/s32/f16/f32 "
                        "with 1, 2 or 4 channels are supported)", format, channels);
        return 0;
    }
    return b * channels;
}

/* The extents a device of the simulated GPU's limits accepts for an array's shape. */
static CUresult check_shape(struct rq *r, const struct idm_req_ARRAY_CREATE *q)
{
    const uint32_t known = CUDA_ARRAY3D_LAYERED | CUDA_ARRAY3D_SURFACE_LDST |
                           CUDA_ARRAY3D_TEXTURE_GATHER;
    int layered = (q->flags & CUDA_ARRAY3D_LAYERED) != 0;
    int surf = (q->flags & CUDA_ARRAY3D_SURFACE_LDST) != 0;
    uint64_t w = q->width, h = q->height, d = q->depth;
    int ok;

    if (q->flags & ~known)
        return rq_refuse(r, CUDA_ERROR_NOT_SUPPORTED, "array flags 0x%x (only LAYERED, "
                         "SURFACE_LDST and TEXTURE_GATHER are supported: no cube maps, "
                         "sparse or deferred arrays)", q->flags);
    if (q->flags & CUDA_ARRAY3D_TEXTURE_GATHER)
        ok = !layered && d == 0 && w >= 1 && h >= 1 && w <= GATHER_MAX && h <= GATHER_MAX;
    else if (layered)
        ok = w >= 1 && w <= LAYERED_MAX && h <= LAYERED_MAX && d >= 1 && d <= LAYERS_MAX;
    else if (d != 0)
        ok = w >= 1 && h >= 1 && ((w <= TEX3D_MAX && h <= TEX3D_MAX && d <= TEX3D_MAX) ||
                                  (!surf && w <= TEX3D_ALT_WH_MAX && h <= TEX3D_ALT_WH_MAX &&
                                   d <= TEX3D_ALT_D_MAX));
    else if (h != 0)
        ok = w >= 1 && w <= TEX2D_W_MAX && h <= TEX2D_H_MAX;
    else
        ok = w >= 1 && w <= (surf ? SURF1D_MAX : TEX1D_MAX);
    if (!ok)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "array extent %llux%llux%llu (flags 0x%x) "
                         "exceeds the device's limits", (unsigned long long)w,
                         (unsigned long long)h, (unsigned long long)d, q->flags);
    return CUDA_SUCCESS;
}

/* Takes one of the zone's count of objects (*n below max), or refuses. */
static CUresult take_count(struct rq *r, uint32_t *n, uint32_t max, const char *what)
{
    if (__atomic_add_fetch(n, 1, __ATOMIC_RELAXED) > max) {
        __atomic_sub_fetch(n, 1, __ATOMIC_RELAXED);
        return rq_refuse_as(r, WM_REF_LIMIT, CUDA_ERROR_OUT_OF_MEMORY,
                            "the zone holds %u %s already", max, what);
    }
    return CUDA_SUCCESS;
}

CUresult h_ARRAY_CREATE(struct rq *r, const struct idm_req_ARRAY_CREATE *q,
                        struct idm_rep_ARRAY_CREATE *p)
{
    struct session *s = r->s;
    struct array_obj *a;
    idm_handle ctx;
    char err[160] = "";
    CUresult rc;
    int e;

    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS || (rc = check_shape(r, q)) != CUDA_SUCCESS)
        return rc;
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    a->ctx = ctx;
    a->d = (struct backend_array_desc){.width = q->width, .height = q->height, .depth = q->depth,
                                       .format = q->format, .channels = q->channels,
                                       .flags = q->flags};
    if ((a->d.elem = texel_bytes(r, q->format, q->channels)) == 0) {
        rc = CUDA_ERROR_INVALID_VALUE;
        goto free_obj;
    }
    a->charged = a->d.elem * q->width * (q->height ? q->height : 1) * (q->depth ? q->depth : 1);
    if ((rc = take_count(r, &s->zone->narrays, ZONE_MAX_ARRAYS, "arrays")) != CUDA_SUCCESS)
        goto free_obj;
    if ((e = zone_charge(s->zone, a->charged, NULL)) != 0) {
        rc = rq_refuse_as(r, WM_REF_QUOTA, cu_from_errno(e), "an array of %llu bytes exceeds "
                          "the zone's quota", (unsigned long long)a->charged);
        goto uncount;
    }
    if ((rc = s->be->array_create(s->bz, &a->d, &a->ba, err, sizeof(err))) != CUDA_SUCCESS) {
        log_error("zone=%s %s: ARRAY_CREATE: the backend failed (CUresult %d): %s", ZN(r),
                  PEER(r), rc, err);
        goto uncharge;
    }
    if ((e = htab_insert(&s->ht, HT_ARRAY, a, &p->array)) != 0) {
        rc = cu_from_errno(e);
        goto destroy;
    }
    return CUDA_SUCCESS;

destroy:
    s->be->array_destroy(s->bz, a->ba);
uncharge:
    zone_uncharge(s->zone, a->charged);
uncount:
    __atomic_sub_fetch(&s->zone->narrays, 1, __ATOMIC_RELAXED);
free_obj:
    free(a);
    return rc;
}

/* Waits for the session's work: every stream, then the backend. */
static CUresult quiesce(struct rq *r)
{
    session_drain(r->s);
    return r->s->be->zone_sync(r->s->bz);
}

CUresult h_ARRAY_DESTROY(struct rq *r, const struct idm_req_ARRAY_DESTROY *q,
                         struct idm_rep_ARRAY_DESTROY *p)
{
    struct array_obj *a = rq_lookup(r, q->array, HT_ARRAY);

    (void)p;
    if (a == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    (void)quiesce(r); /* an execution fault stays the session's sticky error */
    session_free_array(r->s, q->array, a);
    return CUDA_SUCCESS;
}

CUresult h_ARRAY_GET_DESC(struct rq *r, const struct idm_req_ARRAY_GET_DESC *q,
                          struct idm_rep_ARRAY_GET_DESC *p)
{
    struct array_obj *a = rq_lookup(r, q->array, HT_ARRAY);

    if (a == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    p->width = a->d.width;
    p->height = a->d.height;
    p->depth = a->d.depth;
    p->format = a->d.format;
    p->channels = a->d.channels;
    p->flags = a->d.flags;
    return CUDA_SUCCESS;
}

/* ---- copies ---- */

/* The request fields of one side of a copy. */
struct side_req {
    uint32_t kind;
    uint64_t ptr, x, y, z, pitch, pitch_h;
};

/* A device side: the whole span it touches must lie in one allocation; the backend gets the
 * address of its first byte. */
static CUresult device_side(struct rq *r, const struct side_req *q, uint64_t wb, uint64_t h,
                            uint64_t d, struct backend_copy_side *out)
{
    uint64_t ph = q->pitch_h ? q->pitch_h : q->y + h, slice, start, span;
    int bad = q->pitch < q->x + wb || q->x + wb < wb || ph < q->y + h || q->y + h < h;

    bad = bad || __builtin_mul_overflow(q->pitch, ph, &slice) ||
          __builtin_mul_overflow(slice, q->z, &start) ||
          __builtin_add_overflow(start, q->y * q->pitch + q->x, &start) ||
          __builtin_mul_overflow(slice, d - 1, &span) ||
          __builtin_add_overflow(span, (h - 1) * q->pitch + wb, &span) ||
          __builtin_add_overflow(q->ptr, start, &start);
    if (bad)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "a device side of pitch %llu, %llu rows "
                         "a slice, offset (%llu, %llu, %llu) cannot hold %llux%llux%llu",
                         (unsigned long long)q->pitch, (unsigned long long)ph,
                         (unsigned long long)q->x, (unsigned long long)q->y,
                         (unsigned long long)q->z, (unsigned long long)wb,
                         (unsigned long long)h, (unsigned long long)d);
    out->pitch = q->pitch;
    out->pitch_h = ph;
    return rq_dev_range(r, start, span, &out->baddr);
}

static CUresult array_side(struct rq *r, const struct side_req *q, uint64_t wb, uint64_t h,
                           uint64_t d, struct backend_copy_side *out)
{
    struct array_obj *a = rq_lookup(r, q->ptr, HT_ARRAY);
    uint64_t row, rows, slices;

    if (a == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    row = a->d.width * a->d.elem;
    rows = a->d.height ? a->d.height : 1;
    slices = a->d.depth ? a->d.depth : 1;
    if (q->x % a->d.elem || wb % a->d.elem || q->x > row || wb > row - q->x || q->y > rows ||
        h > rows - q->y || q->z > slices || d > slices - q->z)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "%llux%llux%llu at (%llu, %llu, %llu) "
                         "is not inside a %llux%llux%llu-byte array of %u-byte texels",
                         (unsigned long long)wb, (unsigned long long)h, (unsigned long long)d,
                         (unsigned long long)q->x, (unsigned long long)q->y,
                         (unsigned long long)q->z, (unsigned long long)row,
                         (unsigned long long)rows, (unsigned long long)slices, a->d.elem);
    out->array = a->ba;
    out->x = q->x;
    out->y = q->y;
    out->z = q->z;
    return CUDA_SUCCESS;
}

/* One side: host sides get their data from the op's bulk (checked by the caller). */
static CUresult copy_side(struct rq *r, const struct side_req *q, uint64_t wb, uint64_t h,
                          uint64_t d, uint32_t allowed, struct backend_copy_side *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = q->kind;
    if (q->kind != allowed && !(allowed == 0 && q->kind != IDM_SIDE_HOST))
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "a copy side of kind %u here", q->kind);
    switch (q->kind) {
    case IDM_SIDE_DEVICE: return device_side(r, q, wb, h, d, out);
    case IDM_SIDE_ARRAY: return array_side(r, q, wb, h, d, out);
    case IDM_SIDE_HOST:
        out->pitch = wb;
        out->pitch_h = h;
        return CUDA_SUCCESS;
    default:
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "a copy side of kind %u", q->kind);
    }
}

/* The shared part of the three copy ops (they have the same request fields): dst_host and
 * src_host say which side is the host's (0: neither may be). Returns the backend's copy in c,
 * with *nothing set for an empty extent. */
static CUresult copy_prepare(struct rq *r, const struct idm_req_MEMCPY_3D *q, int dst_host,
                             int src_host, struct backend_copy3d *c, int *nothing)
{
    struct side_req dst = {q->dst_kind, q->dst, q->dst_x, q->dst_y, q->dst_z, q->dst_pitch,
                           q->dst_pitch_h};
    struct side_req src = {q->src_kind, q->src, q->src_x, q->src_y, q->src_z, q->src_pitch,
                           q->src_pitch_h};
    uint64_t bytes;
    struct stream_obj *st;
    CUresult rc;

    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (rq_sticky(r))
        return rq_sticky(r);
    *nothing = q->width_bytes == 0 || q->height == 0 || q->depth == 0;
    if (*nothing)
        return CUDA_SUCCESS;
    if (__builtin_mul_overflow(q->width_bytes, q->height, &bytes) ||
        __builtin_mul_overflow(bytes, q->depth, &bytes) ||
        ((dst_host || src_host) && bytes != q->len))
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "%llux%llux%llu bytes with %llu host bytes",
                         (unsigned long long)q->width_bytes, (unsigned long long)q->height,
                         (unsigned long long)q->depth, (unsigned long long)q->len);
    c->width_bytes = q->width_bytes;
    c->height = q->height;
    c->depth = q->depth;
    if ((rc = copy_side(r, &dst, q->width_bytes, q->height, q->depth,
                        dst_host ? IDM_SIDE_HOST : 0, &c->dst)) != CUDA_SUCCESS ||
        (rc = copy_side(r, &src, q->width_bytes, q->height, q->depth,
                        src_host ? IDM_SIDE_HOST : 0, &c->src)) != CUDA_SUCCESS)
        return rc;
    if (dst_host || src_host) {
        const void *in = NULL;
        void *out = NULL;
        if ((rc = rq_bulk(r, &in, &out)) != CUDA_SUCCESS)
            return rc;
        c->src.host = (void *)in;
        c->dst.host = out ? out : (dst_host ? r->rtail : NULL);
    }
    return CUDA_SUCCESS;
}

/* Runs a prepared copy after the session's earlier work. */
static CUresult copy_run(struct rq *r, const struct backend_copy3d *c)
{
    char err[160] = "";
    CUresult rc = quiesce(r);

    if (rc != CUDA_SUCCESS)
        return rc;
    rc = r->s->be->memcpy3d(r->s->bz, c, err, sizeof(err));
    if (rc != CUDA_SUCCESS)
        log_error("zone=%s %s: %s: the backend's copy failed (CUresult %d): %s", ZN(r),
                  PEER(r), idm_op_name(r->h->op), rc, err);
    return rc;
}

_Static_assert(sizeof(struct idm_req_MEMCPY_3D_IN) == sizeof(struct idm_req_MEMCPY_3D) &&
               sizeof(struct idm_req_MEMCPY_3D_OUT) == sizeof(struct idm_req_MEMCPY_3D),
               "the three copy ops share their request fields");

CUresult h_MEMCPY_3D_IN(struct rq *r, const struct idm_req_MEMCPY_3D_IN *q,
                        struct idm_rep_MEMCPY_3D_IN *p)
{
    struct backend_copy3d c;
    int nothing;
    CUresult rc = copy_prepare(r, (const void *)q, 0, 1, &c, &nothing);

    (void)p;
    return rc != CUDA_SUCCESS || nothing ? rc : copy_run(r, &c);
}

CUresult h_MEMCPY_3D_OUT(struct rq *r, const struct idm_req_MEMCPY_3D_OUT *q,
                         struct idm_rep_MEMCPY_3D_OUT *p)
{
    struct backend_copy3d c;
    int nothing;
    CUresult rc = copy_prepare(r, (const void *)q, 1, 0, &c, &nothing);

    if (rc != CUDA_SUCCESS || nothing || (rc = copy_run(r, &c)) != CUDA_SUCCESS)
        return rc;
    p->len = q->len;
    if (r->bulk.win_len == 0)
        r->rtail_len = (uint32_t)q->len;
    return CUDA_SUCCESS;
}

CUresult h_MEMCPY_3D(struct rq *r, const struct idm_req_MEMCPY_3D *q, struct idm_rep_MEMCPY_3D *p)
{
    struct backend_copy3d c;
    int nothing;
    CUresult rc = copy_prepare(r, q, 0, 0, &c, &nothing);

    (void)p;
    return rc != CUDA_SUCCESS || nothing ? rc : copy_run(r, &c);
}

/* ---- texture and surface objects ---- */

/* The resource of a texture or surface object. */
static CUresult tex_resource(struct rq *r, const struct idm_req_TEX_CREATE *q,
                             struct tex_obj *t)
{
    struct backend_tex_desc *d = &t->d;
    struct array_obj *a;
    uint64_t base, last;

    if (q->res_type == CU_RESOURCE_TYPE_ARRAY) {
        if ((a = rq_lookup(r, q->array, HT_ARRAY)) == NULL)
            return CUDA_ERROR_INVALID_HANDLE;
        if (q->surface && !(a->d.flags & CUDA_ARRAY3D_SURFACE_LDST))
            return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "a surface on an array created "
                             "without CUDA_ARRAY3D_SURFACE_LDST");
        t->array = q->array;
        d->array = a->ba;
        d->format = a->d.format;
        d->channels = a->d.channels;
        d->elem = a->d.elem;
        return CUDA_SUCCESS;
    }
    if (q->surface || (q->res_type != CU_RESOURCE_TYPE_LINEAR &&
                       q->res_type != CU_RESOURCE_TYPE_PITCH2D))
        return rq_refuse(r, CUDA_ERROR_NOT_SUPPORTED, "%s on a resource of type %u (arrays, "
                         "and for textures linear and pitch2D memory, are supported)",
                         q->surface ? "a surface" : "a texture", q->res_type);
    if ((d->elem = texel_bytes(r, q->format, q->channels)) == 0)
        return CUDA_ERROR_INVALID_VALUE;
    d->format = q->format;
    d->channels = q->channels;
    d->dptr = q->dptr;
    if (q->res_type == CU_RESOURCE_TYPE_LINEAR) {
        d->size_bytes = q->size_bytes;
        if (q->dptr % TEX_ALIGN || q->size_bytes < d->elem ||
            q->size_bytes / d->elem > TEX_LINEAR_MAX)
            return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "a linear texture of %llu bytes at "
                             "0x%llx (%u-byte texels, at most %u, aligned to %u bytes)",
                             (unsigned long long)q->size_bytes, (unsigned long long)q->dptr,
                             d->elem, TEX_LINEAR_MAX, TEX_ALIGN);
        return rq_dev_range(r, q->dptr, q->size_bytes, &base);
    }
    d->width = q->width;
    d->height = q->height;
    d->pitch = q->pitch;
    if (q->width == 0 || q->width > TEX2D_W_MAX || q->height == 0 ||
        q->height > TEX_LINEAR_H_MAX || q->pitch % TEX_PITCH_ALIGN ||
        q->pitch > TEX_LINEAR_PITCH_MAX || q->pitch < q->width * d->elem || q->dptr % d->elem)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "a pitch2D texture of %llux%llu texels, "
                         "pitch %llu at 0x%llx", (unsigned long long)q->width,
                         (unsigned long long)q->height, (unsigned long long)q->pitch,
                         (unsigned long long)q->dptr);
    last = (q->height - 1) * q->pitch + q->width * d->elem;
    return rq_dev_range(r, q->dptr, last, &base);
}

/* The sampling state of a texture object (ignored for surfaces). */
static CUresult tex_sampling(struct rq *r, const struct idm_req_TEX_CREATE *q,
                             struct backend_tex_desc *d)
{
    const uint32_t known = CU_TRSF_READ_AS_INTEGER | CU_TRSF_NORMALIZED_COORDINATES |
                           CU_TRSF_DISABLE_TRILINEAR_OPTIMIZATION;

    if (q->surface)
        return CUDA_SUCCESS;
    for (int i = 0; i < 3; i++)
        if (q->address_mode[i] > CU_TR_ADDRESS_MODE_BORDER)
            return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "address mode %u", q->address_mode[i]);
    if (q->filter_mode > CU_TR_FILTER_MODE_LINEAR || (q->flags & ~known))
        return rq_refuse(r, CUDA_ERROR_NOT_SUPPORTED, "filter mode %u, flags 0x%x (sRGB, "
                         "seamless cube maps and mipmaps are not supported)", q->filter_mode,
                         q->flags);
    if (q->filter_mode == CU_TR_FILTER_MODE_LINEAR && (q->flags & CU_TRSF_READ_AS_INTEGER) &&
        d->format != CU_AD_FORMAT_FLOAT && d->format != CU_AD_FORMAT_HALF)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "linear filtering of integer texels "
                         "read as integers");
    memcpy(d->address_mode, q->address_mode, sizeof(d->address_mode));
    d->filter_mode = q->filter_mode;
    d->flags = q->flags;
    memcpy(d->border_color, q->border_color, sizeof(d->border_color));
    return CUDA_SUCCESS;
}

CUresult h_TEX_CREATE(struct rq *r, const struct idm_req_TEX_CREATE *q,
                      struct idm_rep_TEX_CREATE *p)
{
    struct session *s = r->s;
    struct tex_obj *t;
    idm_handle h;
    char err[160] = "";
    CUresult rc;
    int e;

    if ((rc = rq_ctx(r, q->ctx, &h)) != CUDA_SUCCESS)
        return rc;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    t->ctx = h;
    t->d.res_type = q->res_type;
    t->d.surface = q->surface != 0;
    if ((rc = tex_resource(r, q, t)) != CUDA_SUCCESS ||
        (rc = tex_sampling(r, q, &t->d)) != CUDA_SUCCESS ||
        (rc = take_count(r, &s->zone->ntexobjs, ZONE_MAX_TEXOBJS, "texture and surface "
                         "objects")) != CUDA_SUCCESS)
        goto free_obj;
    if ((rc = s->be->tex_create(s->bz, &t->d, &t->value, err, sizeof(err))) != CUDA_SUCCESS) {
        log_error("zone=%s %s: TEX_CREATE: the backend failed (CUresult %d): %s", ZN(r),
                  PEER(r), rc, err);
        goto uncount;
    }
    if ((e = htab_insert(&s->ht, HT_TEX, t, &h)) != 0) {
        rc = cu_from_errno(e);
        s->be->tex_destroy(s->bz, t->value, t->d.surface);
        goto uncount;
    }
    p->value = t->value;
    return CUDA_SUCCESS;

uncount:
    __atomic_sub_fetch(&s->zone->ntexobjs, 1, __ATOMIC_RELAXED);
free_obj:
    free(t);
    return rc;
}

/* The session's texture (surface 0) or surface object of that value, or NULL (refused). */
static struct tex_obj *find_tex(struct rq *r, uint64_t value, uint32_t surface, idm_handle *h)
{
    struct tex_obj *t;

    for (uint32_t i = 0; i < r->s->ht.used; i++)
        if ((t = htab_slot(&r->s->ht, i, HT_TEX, h)) != NULL && t->value == value &&
            t->d.surface == (surface != 0))
            return t;
    (void)rq_refuse_as(r, WM_REF_HANDLE, CUDA_ERROR_INVALID_VALUE, "0x%llx is not a live %s "
                       "object of the session", (unsigned long long)value,
                       surface ? "surface" : "texture");
    return NULL;
}

CUresult h_TEX_DESTROY(struct rq *r, const struct idm_req_TEX_DESTROY *q,
                       struct idm_rep_TEX_DESTROY *p)
{
    idm_handle h;
    struct tex_obj *t = find_tex(r, q->value, q->surface, &h);

    (void)p;
    if (t == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    session_free_tex(r->s, h, t);
    return CUDA_SUCCESS;
}

CUresult h_TEX_GET_DESC(struct rq *r, const struct idm_req_TEX_GET_DESC *q,
                        struct idm_rep_TEX_GET_DESC *p)
{
    idm_handle h;
    struct tex_obj *t = find_tex(r, q->value, q->surface, &h);

    if (t == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    p->array = t->array;
    p->dptr = t->d.dptr;
    p->size_bytes = t->d.size_bytes;
    p->width = t->d.width;
    p->height = t->d.height;
    p->pitch = t->d.pitch;
    p->res_type = t->d.res_type;
    p->format = t->d.format;
    p->channels = t->d.channels;
    memcpy(p->address_mode, t->d.address_mode, sizeof(p->address_mode));
    p->filter_mode = t->d.filter_mode;
    p->flags = t->d.flags;
    memcpy(p->border_color, t->d.border_color, sizeof(p->border_color));
    p->surface = (uint32_t)t->d.surface;
    return CUDA_SUCCESS;
}
