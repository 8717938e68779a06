/* ptx_tex.c - the simulated GPU's texture and surface units: tex (1d, 2d, 3d, a1d, a2d),
 * tld4, txq, suld.b, sust.b and suq on the object a kernel names, resolved through the
 * launch's ptx_textures at every instruction (a value that is no live object of the launching
 * session faults the launch). Fetches follow the CUDA Programming Guide's texture fetching
 * appendix: addressing modes wrap, clamp, mirror and border (wrap and mirror with normalised
 * coordinates only, as clamp otherwise), point and linear filtering with the weights in 9-bit
 * fixed point (8 fractional bits), normalised coordinates, integer texels read as normalised
 * floats unless TRSF_READ_AS_INTEGER. Integer coordinates (tex1Dfetch) read unfiltered and
 * read zero out of range. Every texel address is checked against the object's bytes. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ptx_internal.h"

/* CUDA's values (cuda.h; the engine does not include it): CUarray_format, CUaddress_mode,
 * CUfilter_mode, CU_TRSF_*. */
enum { FMT_U8 = 0x01, FMT_U16 = 0x02, FMT_U32 = 0x03, FMT_S8 = 0x08, FMT_S16 = 0x09,
       FMT_S32 = 0x0a, FMT_F16 = 0x10, FMT_F32 = 0x20 };
enum { AM_WRAP = 0, AM_CLAMP = 1, AM_MIRROR = 2, AM_BORDER = 3 };
enum { FILTER_LINEAR = 1 };
enum { TRSF_READ_AS_INTEGER = 0x01, TRSF_NORMALIZED = 0x02 };

/* One thread's fetch: the object and where the instruction's result goes. */
struct fetch {
    const struct ptx_texref *t;
    char *why;
    size_t whylen;
};

static float f32_of(uint64_t v)
{
    float f;
    uint32_t b = (uint32_t)v;
    memcpy(&f, &b, 4);
    return f;
}

static uint64_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static int fault(struct fetch *f, int code, const char *what)
{
    snprintf(f->why, f->whylen, "%s", what);
    return code;
}

/* Channel c of the texel at byte offset off, as a float (normalised for 8- and 16-bit integer
 * formats unless read as integers) or, with raw, the integer it holds. */
static double channel(const struct ptx_texref *t, const uint8_t *p, unsigned c, int raw)
{
    unsigned cb = t->elem / t->channels;
    uint8_t b1;
    uint16_t b2;
    uint32_t b4;
    const uint8_t *q = p + c * cb;
    int norm = !raw && !(t->flags & TRSF_READ_AS_INTEGER);

    switch (t->format) {
    case FMT_U8: memcpy(&b1, q, 1); return norm ? b1 / 255.0 : b1;
    case FMT_S8:
        memcpy(&b1, q, 1);
        return norm ? fmax((int8_t)b1 / 127.0, -1.0) : (int8_t)b1;
    case FMT_U16: memcpy(&b2, q, 2); return norm ? b2 / 65535.0 : b2;
    case FMT_S16:
        memcpy(&b2, q, 2);
        return norm ? fmax((int16_t)b2 / 32767.0, -1.0) : (int16_t)b2;
    case FMT_U32: memcpy(&b4, q, 4); return b4;
    case FMT_S32: memcpy(&b4, q, 4); return (int32_t)b4;
    case FMT_F16: memcpy(&b2, q, 2); return ptx_f16_to_f32(b2);
    default: memcpy(&b4, q, 4); return f32_of(b4);
    }
}

/* The texel at integer coordinates (already addressed), all four components; missing
 * channels read 0, a missing alpha 1. -1 when it lies outside the object's bytes. */
static int texel(struct fetch *f, uint64_t x, uint64_t y, uint64_t z, double v[4])
{
    const struct ptx_texref *t = f->t;
    uint64_t off = z * t->slice + y * t->pitch + x * t->elem;

    if (x >= t->width || y >= t->height || z >= t->depth || off > t->bytes ||
        t->bytes - off < t->elem)
        return -1;
    for (unsigned c = 0; c < 4; c++)
        v[c] = c < t->channels ? channel(t, t->data + off, c, 0) : c == 3 ? 1.0 : 0.0;
    return 0;
}

/* Applies addressing mode m to texel index i of an axis of n texels: 0 and the index, or 1
 * when it falls on the border. */
static int address(int64_t *i, uint64_t n, uint32_t m)
{
    int64_t s = (int64_t)n, k = *i;

    switch (m) {
    case AM_WRAP: k = ((k % s) + s) % s; break;
    case AM_MIRROR:
        k = ((k % (2 * s)) + 2 * s) % (2 * s);
        k = k < s ? k : 2 * s - 1 - k;
        break;
    case AM_BORDER:
        if (k < 0 || k >= s)
            return 1;
        break;
    default: k = k < 0 ? 0 : k >= s ? s - 1 : k; break;
    }
    *i = k;
    return 0;
}

/* A float coordinate as texel space, clamped to what an int64 index holds. */
static double scaled(const struct ptx_texref *t, float u, uint64_t n)
{
    double x = (t->flags & TRSF_NORMALIZED) ? (double)u * (double)n : u;

    if (isnan(x))
        return 0.0;
    return x < -1e15 ? -1e15 : x > 1e15 ? 1e15 : x;
}

/* The texel at (i[0], i[1], i[2]) of the axes in use (dims), layer `layer`, addressed. */
static int addressed(struct fetch *f, const int64_t i[3], unsigned dims, uint64_t layer,
                     double v[4])
{
    const struct ptx_texref *t = f->t;
    const uint64_t n[3] = {t->width, t->height, t->depth};
    int norm = (t->flags & TRSF_NORMALIZED) != 0;
    int64_t k[3] = {0, 0, (int64_t)layer};

    for (unsigned a = 0; a < dims; a++) {
        uint32_t m = t->address_mode[a];
        if (!norm && (m == AM_WRAP || m == AM_MIRROR))
            m = AM_CLAMP;
        k[a] = i[a];
        if (address(&k[a], n[a], m)) {
            for (unsigned c = 0; c < 4; c++)
                v[c] = t->border[c];
            return 0;
        }
    }
    if (texel(f, (uint64_t)k[0], (uint64_t)k[1], (uint64_t)k[2], v))
        return fault(f, PTX_ERR_ILLEGAL_ADDRESS, "texture fetch outside its object");
    return 0;
}

/* The linear filter's weight: frac in 9-bit fixed point with 8 fractional bits. */
static double weight(double x)
{
    return floor((x - floor(x)) * 256.0 + 0.5) / 256.0;
}

/* A filtered fetch at texel-space coordinates x[0..dims), layer `layer`. */
static int sample(struct fetch *f, const double x[3], unsigned dims, uint64_t layer,
                  double out[4])
{
    int64_t base[3] = {0, 0, 0}, i[3];
    double w[3] = {0, 0, 0}, v[4];
    int rc;

    if (f->t->filter_mode != FILTER_LINEAR ||
        (f->t->flags & TRSF_READ_AS_INTEGER)) {
        for (unsigned a = 0; a < dims; a++)
            i[a] = (int64_t)floor(x[a]);
        return addressed(f, i, dims, layer, out);
    }
    for (unsigned a = 0; a < dims; a++) {
        base[a] = (int64_t)floor(x[a] - 0.5);
        w[a] = weight(x[a] - 0.5);
    }
    memset(out, 0, 4 * sizeof(double));
    for (unsigned corner = 0; corner < (1u << dims); corner++) {
        double wt = 1.0;
        for (unsigned a = 0; a < dims; a++) {
            unsigned hi = (corner >> a) & 1;
            i[a] = base[a] + hi;
            wt *= hi ? w[a] : 1.0 - w[a];
        }
        if ((rc = addressed(f, i, dims, layer, v)) != 0)
            return rc;
        for (unsigned c = 0; c < 4; c++)
            out[c] += wt * v[c];
    }
    return 0;
}

/* Writes four components as the destination type. */
static void put4(const struct pins *in, uint64_t *regs, const double v[4])
{
    for (unsigned c = 0; c < 4; c++) {
        uint64_t r;
        if (in->d[c] < 0)
            continue;
        if (in->type == PT_F32)
            r = bits_of((float)v[c]);
        else
            r = (uint32_t)(int32_t)(int64_t)v[c];
        regs[in->d[c]] = r;
    }
}

/* The layer of an a1d/a2d fetch: clamped to the layers there are. */
static uint64_t layer_of(const struct ptx_texref *t, uint64_t reg)
{
    int64_t l = (int32_t)(uint32_t)reg;

    return l < 0 ? 0 : (uint64_t)l >= t->depth ? t->depth - 1 : (uint64_t)l;
}

/* tex: coordinates s[1..] (a1d/a2d: the layer first). */
static int do_tex(struct fetch *f, const struct pins *in, uint64_t *regs)
{
    const struct ptx_texref *t = f->t;
    int layered = in->mod == TG_A1D || in->mod == TG_A2D;
    unsigned dims = in->mod == TG_1D || in->mod == TG_A1D ? 1 : in->mod == TG_3D ? 3 : 2;
    unsigned first = layered ? 2 : 1;
    uint64_t layer = layered ? layer_of(t, regs[in->s[1]]) : 0;
    const uint64_t n[3] = {t->width, t->height, t->depth};
    double x[3], v[4];
    int rc;

    if (in->type2 == PT_S32) { /* integer coordinates: unfiltered, zero out of range */
        uint64_t k[3] = {0, 0, layer};
        int out = 0;
        for (unsigned a = 0; a < dims; a++) {
            int32_t c = (int32_t)(uint32_t)regs[in->s[first + a]];
            out |= c < 0 || (uint64_t)c >= n[a];
            k[a] = (uint64_t)c;
        }
        if (out)
            memset(v, 0, sizeof(v));
        else if (texel(f, k[0], k[1], k[2], v))
            return fault(f, PTX_ERR_ILLEGAL_ADDRESS, "texture fetch outside its object");
        put4(in, regs, v);
        return 0;
    }
    for (unsigned a = 0; a < dims; a++)
        x[a] = scaled(t, f32_of(regs[in->s[first + a]]), n[a]);
    if ((rc = sample(f, x, dims, layer, v)) != 0)
        return rc;
    put4(in, regs, v);
    return 0;
}

/* tld4: component mod2 of the 2x2 footprint a bilinear fetch would read, in the order the
 * PTX ISA gives: (i, j+1), (i+1, j+1), (i+1, j), (i, j). */
static int do_tld4(struct fetch *f, const struct pins *in, uint64_t *regs)
{
    static const int dx[4] = {0, 1, 1, 0}, dy[4] = {1, 1, 0, 0};
    const struct ptx_texref *t = f->t;
    double x = scaled(t, f32_of(regs[in->s[1]]), t->width) - 0.5;
    double y = scaled(t, f32_of(regs[in->s[2]]), t->height) - 0.5;
    double v[4], out[4];
    int rc;

    for (unsigned k = 0; k < 4; k++) {
        int64_t i[3] = {(int64_t)floor(x) + dx[k], (int64_t)floor(y) + dy[k], 0};
        if ((rc = addressed(f, i, 2, 0, v)) != 0)
            return rc;
        out[k] = v[in->mod2];
    }
    put4(in, regs, out);
    return 0;
}

static uint64_t query(const struct ptx_texref *t, int q, int surface)
{
    int layered = t->layered;

    switch (q) {
    case TQ_WIDTH: return t->width;
    case TQ_HEIGHT: return t->height;
    case TQ_DEPTH: return layered ? 1 : t->depth;
    case TQ_ARRAY_SIZE: return layered ? t->depth : 0;
    case TQ_NORMALIZED: return !surface && (t->flags & TRSF_NORMALIZED);
    case TQ_FILTER: return surface ? 0 : t->filter_mode;
    case TQ_ADDR0: return surface ? 0 : t->address_mode[0];
    case TQ_ADDR1: return surface ? 0 : t->address_mode[1];
    case TQ_ADDR2: return surface ? 0 : t->address_mode[2];
    case TQ_MIPMAP_LEVELS: return 1;
    default: return 0;
    }
}

/* A surface access's coordinates: bx (bytes), y, layer or z, from the packed sources (sust)
 * or the plain ones (suld). */
static void surf_coords(const struct pins *in, const uint64_t *regs, int64_t c[3])
{
    int64_t raw[4] = {0, 0, 0, 0};
    int layered = in->mod == TG_A1D || in->mod == TG_A2D;
    unsigned n = in->mod == TG_1D ? 1 : in->mod == TG_2D || in->mod == TG_A1D ? 2 : 3;

    for (unsigned i = 0; i < n; i++) {
        uint64_t r;
        if (in->op == OP_sust)
            r = i < 2 ? regs[in->s[1]] >> (32 * i) : regs[in->s[2]];
        else
            r = regs[in->s[1 + i]];
        raw[i] = (int32_t)(uint32_t)r;
    }
    /* (x, y, z) with the layer as z */
    c[0] = layered ? raw[1] : raw[0];
    c[1] = in->mod == TG_A2D ? raw[2] : layered || in->mod == TG_1D ? 0 : raw[1];
    c[2] = layered ? raw[0] : in->mod == TG_3D ? raw[2] : 0;
}

/* Where a surface access of `size` bytes at c lands: 0 with *off set, 1 when it is dropped
 * (.zero), or the fault (.trap). .clamp moves it to the nearest texel in range. */
static int surf_place(struct fetch *f, const struct pins *in, int64_t c[3], uint64_t size,
                      uint64_t *off)
{
    const struct ptx_texref *t = f->t;
    const int64_t lim[3] = {(int64_t)(t->width * t->elem), (int64_t)t->height,
                            (int64_t)t->depth};
    int out = c[0] < 0 || c[0] + (int64_t)size > lim[0] || c[1] < 0 || c[1] >= lim[1] ||
              c[2] < 0 || c[2] >= lim[2];

    if (size > (uint64_t)lim[0] || c[0] % (int64_t)(size < t->elem ? size : t->elem))
        return fault(f, PTX_ERR_LAUNCH_FAILED, "misaligned surface access");
    if (out && in->mod2 == SU_ZERO)
        return 1;
    if (out && in->mod2 == SU_TRAP)
        return fault(f, PTX_ERR_ILLEGAL_ADDRESS, "surface access out of range (.trap)");
    if (out) {
        c[0] = c[0] < 0 ? 0 : c[0] + (int64_t)size > lim[0] ? lim[0] - (int64_t)size : c[0];
        for (int a = 1; a < 3; a++)
            c[a] = c[a] < 0 ? 0 : c[a] >= lim[a] ? lim[a] - 1 : c[a];
    }
    *off = (uint64_t)c[2] * t->slice + (uint64_t)c[1] * t->pitch + (uint64_t)c[0];
    if (*off > t->bytes || t->bytes - *off < size)
        return fault(f, PTX_ERR_ILLEGAL_ADDRESS, "surface access outside its object");
    return 0;
}

static int do_surface(struct fetch *f, const struct pins *in, uint64_t *regs)
{
    unsigned eb = pt_bits(in->type) / 8;
    uint64_t size = (uint64_t)eb * in->vec, off;
    int64_t c[3];
    uint8_t buf[16];
    int rc;

    surf_coords(in, regs, c);
    if ((rc = surf_place(f, in, c, size, &off)) < 0 || rc > 1)
        return rc;
    if (in->op == OP_sust) {
        if (rc == 1)
            return 0;
        for (unsigned i = 0; i < in->vec; i++) {
            unsigned bit = i * eb * 8;
            uint64_t v = regs[in->s[3 + bit / 64]] >> (bit % 64);
            memcpy(buf + i * eb, &v, eb);
        }
        memcpy(f->t->data + off, buf, size);
        return 0;
    }
    if (rc == 1)
        memset(buf, 0, size);
    else
        memcpy(buf, f->t->data + off, size);
    for (unsigned i = 0; i < in->vec; i++) {
        uint64_t v = 0;
        memcpy(&v, buf + i * eb, eb);
        if (in->d[i] >= 0)
            regs[in->d[i]] = v;
    }
    return 0;
}

int ptx_tex_exec(const struct ptx_textures *tex, const struct pins *in, uint64_t *regs,
                 char *why, size_t whylen)
{
    struct ptx_texref t;
    struct fetch f = {.t = &t, .why = why, .whylen = whylen};
    int surface = in->op == OP_suld || in->op == OP_sust || in->op == OP_suq;
    uint64_t value = regs[in->s[0]];

    if (tex == NULL || tex->resolve(tex->ctx, value, surface, &t) != 0) {
        snprintf(why, whylen, "%s names 0x%llx, no live %s object of the zone",
                 ptx_op_names[in->op], (unsigned long long)value,
                 surface ? "surface" : "texture");
        return PTX_ERR_ILLEGAL_ADDRESS;
    }
    if (t.elem == 0 || t.channels == 0 || t.width == 0 || t.height == 0 || t.depth == 0)
        return fault(&f, PTX_ERR_ILLEGAL_ADDRESS, "an empty texture or surface object");
    switch (in->op) {
    case OP_tex: return do_tex(&f, in, regs);
    case OP_tld4: return do_tld4(&f, in, regs);
    case OP_txq:
    case OP_suq:
        if (in->d[0] >= 0)
            regs[in->d[0]] = (uint32_t)query(&t, in->mod2, surface);
        return 0;
    default: return do_surface(&f, in, regs);
    }
}
