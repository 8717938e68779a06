/* ptx_image.c - finds the code in a CUDA image: fatbin wrapper -> fatbin -> the PTX entry a
 * driver would pick for the simulated device (zstd- or LZ4-decompressed when flagged), or raw PTX text; ELF cubins (inside fatbins
 * or raw) contribute kernel names and parameter layouts from their .nv.info sections. Every
 * offset and length in the image is checked: the image comes from a guest. */
#include "ptx_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lz4.h>
#include <zstd.h>

#define FATBIN_WRAPPER_MAGIC 0x466243B1u
#define FATBIN_MAGIC 0xBA55ED50u
#define FATBIN_KIND_PTX 1
#define FATBIN_KIND_ELF 2
#define FATBIN_FLAG_LZ4 0x2000u
#define FATBIN_FLAG_ZSTD 0x8000u
#define MAX_PTX_TEXT (128u << 20)

#define EIATTR_PARAM_CBANK 0x0a
#define EIATTR_KPARAM_INFO 0x17

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- ELF cubins: kernel names and parameter layouts ------------------------------------ */

struct elf_kernel {
    char *name;
    uint32_t nparams;
    struct ptx_param *params;
    uint32_t param_bytes;
};

struct elf_info {
    struct elf_kernel *k;
    uint32_t n;
    uint64_t global_bytes; /* .nv.global (zero-filled) and .nv.global.init sections */
};

static void elf_info_free(struct elf_info *e)
{
    for (uint32_t i = 0; i < e->n; i++) {
        free(e->k[i].name);
        free(e->k[i].params);
    }
    free(e->k);
    e->k = NULL;
    e->n = 0;
}

static int elf_parse_info(const uint8_t *d, uint64_t size, uint64_t off, uint64_t len,
                          struct elf_kernel *k)
{
    uint64_t p = off, end = off + len;
    while (p + 4 <= end) {
        uint8_t fmt = d[p], attr = d[p + 1];
        if (fmt == 4) {
            uint16_t l = rd16(d + p + 2);
            if (p + 4 + l > end || p + 4 + l > size)
                return -EINVAL;
            const uint8_t *v = d + p + 4;
            if (attr == EIATTR_KPARAM_INFO && l >= 12) {
                uint16_t ordinal = rd16(v + 4), poff = rd16(v + 6);
                uint32_t psize = rd32(v + 8) >> 18;
                if (ordinal >= 4096)
                    return -EINVAL;
                if (ordinal >= k->nparams) {
                    struct ptx_param *np = realloc(k->params, (ordinal + 1u) * sizeof(*np));
                    if (!np)
                        return -ENOMEM;
                    memset(np + k->nparams, 0, (ordinal + 1u - k->nparams) * sizeof(*np));
                    k->params = np;
                    k->nparams = ordinal + 1u;
                }
                uint32_t a = 1;
                while (a < 8 && a * 2 <= psize && poff % (a * 2) == 0)
                    a *= 2;
                k->params[ordinal].offset = poff;
                k->params[ordinal].size = psize;
                k->params[ordinal].align = a;
                if (poff + psize > k->param_bytes)
                    k->param_bytes = poff + psize;
            } else if (attr == EIATTR_PARAM_CBANK && l >= 8) {
                uint16_t total = rd16(v + 6);
                if (total > k->param_bytes)
                    k->param_bytes = total;
            }
            p += 4 + l;
        } else {
            p += 4;
        }
    }
    return 0;
}

/* Collects kernels from the .nv.info.<name> sections of an ELF64 cubin. */
static int elf_scan(const uint8_t *d, uint64_t size, struct elf_info *out, char *err,
                    size_t errlen)
{
    if (size < 64 || memcmp(d, "\x7f" "ELF", 4) || d[4] != 2 || d[5] != 1) {
        seterr(err, errlen, "cubin is not a little-endian ELF64 file");
        return PTX_ERR_INVALID_IMAGE;
    }
    uint64_t shoff = rd64(d + 0x28);
    uint16_t shentsize = rd16(d + 0x3a), shnum = rd16(d + 0x3c), shstrndx = rd16(d + 0x3e);
    if (shentsize < 64 || shstrndx >= shnum || shoff > size ||
        (uint64_t)shnum * shentsize > size - shoff) {
        seterr(err, errlen, "cubin has a bad section header table");
        return PTX_ERR_INVALID_IMAGE;
    }
    const uint8_t *sh = d + shoff + (uint64_t)shstrndx * shentsize;
    uint64_t stroff = rd64(sh + 0x18), strsize = rd64(sh + 0x20);
    if (stroff > size || strsize > size - stroff) {
        seterr(err, errlen, "cubin has a bad section name table");
        return PTX_ERR_INVALID_IMAGE;
    }
    for (uint16_t i = 0; i < shnum; i++) {
        const uint8_t *s = d + shoff + (uint64_t)i * shentsize;
        uint32_t name = rd32(s);
        uint64_t off = rd64(s + 0x18), len = rd64(s + 0x20);
        if (name >= strsize)
            continue;
        const char *nm = (const char *)d + stroff + name;
        size_t maxn = strsize - name;
        size_t nl = strnlen(nm, maxn);
        if (nl == maxn)
            continue;
        if (strcmp(nm, ".nv.global") == 0 || strcmp(nm, ".nv.global.init") == 0) {
            /* Device memory the driver allocates at load (.nv.global has no file bytes). */
            out->global_bytes = len > UINT64_MAX - out->global_bytes ? UINT64_MAX
                                                                      : out->global_bytes + len;
            continue;
        }
        if (nl <= 9 || strncmp(nm, ".nv.info.", 9) != 0)
            continue;
        if (off > size || len > size - off) {
            seterr(err, errlen, "cubin section %s out of range", nm);
            return PTX_ERR_INVALID_IMAGE;
        }
        struct elf_kernel *nk = realloc(out->k, (out->n + 1) * sizeof(*nk));
        if (!nk)
            return PTX_ERR_OUT_OF_MEMORY;
        out->k = nk;
        struct elf_kernel *k = &out->k[out->n];
        memset(k, 0, sizeof(*k));
        k->name = strndup(nm + 9, nl - 9);
        if (!k->name)
            return PTX_ERR_OUT_OF_MEMORY;
        out->n++;
        int rc = elf_parse_info(d, size, off, len, k);
        if (rc == -ENOMEM)
            return PTX_ERR_OUT_OF_MEMORY;
        if (rc) {
            seterr(err, errlen, "cubin: bad .nv.info for %s", k->name);
            return PTX_ERR_INVALID_IMAGE;
        }
    }
    return 0;
}

/* ---- fatbins -------------------------------------------------------------------------- */

struct found {
    char *ptx;          /* owned PTX text (NUL-terminated) */
    size_t ptx_len;
    uint32_t ptx_sm;
    const uint8_t *elf; /* best ELF entry (into the image, or elf_owned) */
    uint64_t elf_size;
    uint32_t elf_sm;
    uint8_t *elf_owned; /* decompressed ELF */
};

/* How a fatbin entry's payload is stored. */
enum packing { PACK_NONE, PACK_ZSTD, PACK_LZ4 };

static enum packing entry_packing(const uint8_t *e, uint32_t hdr, uint64_t payload,
                                  uint32_t flags)
{
    if ((flags & FATBIN_FLAG_ZSTD) || (payload >= 4 && rd32(e + hdr) == 0xFD2FB528u))
        return PACK_ZSTD;
    return flags & FATBIN_FLAG_LZ4 ? PACK_LZ4 : PACK_NONE;
}

/* Decompresses the zstd or LZ4 (one block) payload of a fatbin entry into a new buffer
 * (NUL-terminated). The header gives the uncompressed size (a zstd frame's own size wins) and
 * the compressed one; LZ4 decoding stops at the uncompressed size, so padding after the block
 * is ignored, and never writes or reads past either buffer. */
static int entry_unpack(const uint8_t *e, uint32_t hdr, uint64_t payload, enum packing how,
                        uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
    const uint8_t *data = e + hdr;
    uint32_t csize = rd32(e + 16);
    uint64_t usize = hdr >= 64 ? rd64(e + 56) : 0;
    uint64_t clen = csize && csize <= payload ? csize : payload;
    if (how == PACK_ZSTD) {
        unsigned long long fsize = ZSTD_getFrameContentSize(data, clen);
        if (fsize != ZSTD_CONTENTSIZE_UNKNOWN && fsize != ZSTD_CONTENTSIZE_ERROR)
            usize = fsize;
    }
    if (usize == 0 || usize > MAX_PTX_TEXT || clen > INT32_MAX) {
        seterr(err, errlen, "fatbin: compressed entry has a bad size (%llu)",
               (unsigned long long)usize);
        return PTX_ERR_INVALID_IMAGE;
    }
    uint8_t *buf = malloc(usize + 1);
    if (!buf)
        return PTX_ERR_OUT_OF_MEMORY;
    size_t r;
    const char *why = NULL;
    if (how == PACK_ZSTD) {
        r = ZSTD_decompress(buf, usize, data, clen);
        if (ZSTD_isError(r))
            why = ZSTD_getErrorName(r);
    } else {
        int n = LZ4_decompress_safe_partial((const char *)data, (char *)buf, (int)clen,
                                            (int)usize, (int)usize);
        r = n < 0 ? 0 : (size_t)n;
        if (n < 0 || (uint64_t)n != usize)
            why = "corrupt or short LZ4 block";
    }
    if (why) {
        seterr(err, errlen, "fatbin: %s: %s", how == PACK_ZSTD ? "zstd" : "lz4", why);
        free(buf);
        return PTX_ERR_INVALID_IMAGE;
    }
    buf[r] = 0;
    *out = buf;
    *outlen = r;
    return 0;
}

static int take_ptx(const uint8_t *e, uint32_t hdr, uint64_t payload, uint32_t flags,
                    struct found *f, char *err, size_t errlen)
{
    const uint8_t *data = e + hdr;
    char *text;
    size_t len;
    enum packing how = entry_packing(e, hdr, payload, flags);
    if (how != PACK_NONE) {
        int rc = entry_unpack(e, hdr, payload, how, (uint8_t **)&text, &len, err, errlen);
        if (rc)
            return rc;
    } else {
        if (payload > MAX_PTX_TEXT) {
            seterr(err, errlen, "fatbin: PTX entry too large");
            return PTX_ERR_INVALID_IMAGE;
        }
        text = malloc(payload + 1);
        if (!text)
            return PTX_ERR_OUT_OF_MEMORY;
        memcpy(text, data, payload);
        len = payload;
    }
    text[len] = 0;
    len = strlen(text);
    free(f->ptx);
    f->ptx = text;
    f->ptx_len = len;
    return 0;
}

/* Whether a fatbin's PTX for sm beats the one for cur: a driver JITs the newest PTX the device
 * can run (sm <= PTX_DEVICE_SM; newer PTX may use instructions the device lacks); the simulated
 * GPU falls back to the oldest newer one when there is none. */
static int ptx_sm_better(uint32_t sm, uint32_t cur)
{
    int fits = sm <= PTX_DEVICE_SM, cur_fits = cur <= PTX_DEVICE_SM;
    if (fits != cur_fits)
        return fits;
    return fits ? sm > cur : sm < cur;
}

static int scan_fatbin(const uint8_t *d, size_t size, struct found *f, char *err,
                       size_t errlen)
{
    size_t pos = 0;
    int nfat = 0;
    while (pos + 16 <= size && rd32(d + pos) == FATBIN_MAGIC) {
        uint16_t hsize = rd16(d + pos + 6);
        uint64_t fsize = rd64(d + pos + 8);
        if (hsize < 16 || hsize > size - pos || fsize > size - pos - hsize) {
            seterr(err, errlen, "fatbin header out of range (header %u, size %llu, image %zu)",
                   hsize, (unsigned long long)fsize, size);
            return PTX_ERR_INVALID_IMAGE;
        }
        const uint8_t *base = d + pos + hsize;
        uint64_t off = 0;
        while (off + 16 <= fsize) {
            const uint8_t *e = base + off;
            uint16_t kind = rd16(e);
            uint32_t hdr = rd32(e + 4);
            uint64_t payload = rd64(e + 8);
            if (hdr < 16 || hdr > fsize - off || payload > fsize - off - hdr) {
                seterr(err, errlen, "fatbin entry at %llu out of range",
                       (unsigned long long)(pos + hsize + off));
                return PTX_ERR_INVALID_IMAGE;
            }
            uint32_t sm = hdr >= 32 ? rd32(e + 28) : 0;
            uint32_t flags = hdr >= 48 ? (uint32_t)rd64(e + 40) : 0;
            if (kind == FATBIN_KIND_PTX && (!f->ptx || ptx_sm_better(sm, f->ptx_sm))) {
                int rc = take_ptx(e, hdr, payload, flags, f, err, errlen);
                if (rc)
                    return rc;
                f->ptx_sm = sm;
            } else if (kind == FATBIN_KIND_ELF && (!f->elf || sm > f->elf_sm)) {
                enum packing how = entry_packing(e, hdr, payload, flags);
                if (how != PACK_NONE) {
                    uint8_t *buf;
                    size_t len;
                    int rc = entry_unpack(e, hdr, payload, how, &buf, &len, err, errlen);
                    if (rc)
                        return rc;
                    free(f->elf_owned);
                    f->elf_owned = buf;
                    f->elf = buf;
                    f->elf_size = len;
                    f->elf_sm = sm;
                } else {
                    f->elf = e + hdr;
                    f->elf_size = payload;
                    f->elf_sm = sm;
                }
            }
            off += hdr + payload;
        }
        nfat++;
        pos += hsize + fsize;
        pos = (pos + 7) & ~(size_t)7;
    }
    if (nfat == 0) {
        seterr(err, errlen, "not a fatbin");
        return PTX_ERR_INVALID_IMAGE;
    }
    return 0;
}

/* ---- program assembly ----------------------------------------------------------------- */

static int add_kernel(struct ptx_program *p, const char *name, int func, uint32_t nparams,
                      const struct ptx_param *params, uint32_t param_bytes)
{
    struct ptx_kernel *nk = realloc(p->kernels, (p->nkernels + 1) * sizeof(*nk));
    if (!nk)
        return PTX_ERR_OUT_OF_MEMORY;
    p->kernels = nk;
    struct ptx_kernel *k = &p->kernels[p->nkernels];
    memset(k, 0, sizeof(*k));
    k->prog = p;
    k->name = strdup(name);
    k->func = func;
    k->nparams = nparams;
    k->param_bytes = param_bytes;
    k->params = calloc(nparams ? nparams : 1, sizeof(*k->params));
    if (!k->name || !k->params) {
        free(k->name);
        free(k->params);
        return PTX_ERR_OUT_OF_MEMORY;
    }
    if (nparams)
        memcpy(k->params, params, nparams * sizeof(*params));
    p->nkernels++;
    return 0;
}

static int build(struct ptx_program *p, const char *ptx, size_t ptx_len,
                 const struct elf_info *elf, char *err, size_t errlen)
{
    if (ptx) {
        int rc = ptx_parse(p, ptx, ptx_len, err, errlen);
        if (rc)
            return rc;
        for (uint32_t i = 0; i < p->nfuncs; i++) {
            struct pfunc *f = &p->funcs[i];
            if (!f->is_entry || !f->has_body)
                continue;
            struct ptx_param *pp = calloc(f->nparams ? f->nparams : 1, sizeof(*pp));
            if (!pp)
                return PTX_ERR_OUT_OF_MEMORY;
            for (uint32_t j = 0; j < f->nparams; j++) {
                pp[j].offset = f->params[j].offset;
                pp[j].size = f->params[j].size;
                pp[j].align = f->params[j].align;
            }
            rc = add_kernel(p, f->name, (int)i, f->nparams, pp, f->param_bytes);
            free(pp);
            if (rc)
                return rc;
        }
    }
    if (elf && !ptx)
        p->elf_global_bytes = elf->global_bytes;
    for (uint32_t i = 0; elf && i < elf->n; i++) {
        if (ptx_program_kernel(p, elf->k[i].name))
            continue;
        int rc = add_kernel(p, elf->k[i].name, -1, elf->k[i].nparams, elf->k[i].params,
                            elf->k[i].param_bytes);
        if (rc)
            return rc;
    }
    return 0; /* a module without kernels is valid (the driver loads it too) */
}

/* A fatbin wrapper's fatbin must follow it inside the image (at offset 24 or 32): the
 * wrapper's data pointer is meaningless here. Moves d and size to it; 0 or a PTX_ERR_ code. */
static int unwrap_fatbin(const uint8_t **d, size_t *size, char *err, size_t errlen)
{
    size_t at = 0;

    if (*size >= 24 + 16 && rd32(*d + 24) == FATBIN_MAGIC)
        at = 24;
    else if (*size >= 32 + 16 && rd32(*d + 32) == FATBIN_MAGIC)
        at = 32;
    if (!at) {
        seterr(err, errlen, "fatbin wrapper without its fatbin in the image (send the fatbin "
               "it points to)");
        return PTX_ERR_INVALID_IMAGE;
    }
    *d += at;
    *size -= at;
    return 0;
}

/* A fatbin: its best PTX and ELF entries into f and elf, then the program (sizing_only with an
 * ELF cubin: only the cubin's global sections). */
static int load_fatbin(struct ptx_program *p, const uint8_t *d, size_t size, int sizing_only,
                       struct found *f, struct elf_info *elf, char *err, size_t errlen)
{
    int rc = scan_fatbin(d, size, f, err, errlen);

    if (rc)
        return rc;
    if (f->elf && (rc = elf_scan(f->elf, f->elf_size, elf, err, errlen)) != 0)
        return rc;
    if (!f->ptx && !f->elf) {
        seterr(err, errlen, "fatbin holds neither PTX nor an ELF cubin");
        return PTX_ERR_NO_BINARY;
    }
    if (sizing_only && f->elf) {
        p->elf_global_bytes = elf->global_bytes;
        return 0;
    }
    return build(p, f->ptx, f->ptx_len, elf, err, errlen);
}

/* PTX text, NUL-terminated or not (then copied into f->ptx). */
static int load_ptx_text(struct ptx_program *p, const uint8_t *d, size_t size, struct found *f,
                         char *err, size_t errlen)
{
    size_t len = strnlen((const char *)d, size);

    if (len == size && size && d[size - 1] != 0) {
        char *text = malloc(size + 1);
        if (!text)
            return PTX_ERR_OUT_OF_MEMORY;
        memcpy(text, d, size);
        text[size] = 0;
        f->ptx = text;
        f->ptx_len = size;
    }
    const char *txt = f->ptx ? f->ptx : (const char *)d;
    size_t tlen = f->ptx ? f->ptx_len : len;
    if (!memmem(txt, tlen, ".version", 8) && !memmem(txt, tlen, ".entry", 6) &&
        !memmem(txt, tlen, ".func", 5)) {
        seterr(err, errlen, "image is neither a fatbin, an ELF cubin nor PTX text (magic "
               "0x%08x)", rd32(d));
        return PTX_ERR_INVALID_IMAGE;
    }
    return build(p, txt, tlen, NULL, err, errlen);
}

/* Loads image into *out; sizing_only: a fatbin with an ELF cubin only records the cubin's
 * global sections (its PTX is not parsed: ptx_image_global_bytes). */
static int load_image(const void *image, size_t size, int sizing_only, struct ptx_program **out,
                      char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!out) {
        seterr(err, errlen, "ptx_program_load: no output pointer");
        return PTX_ERR_INVALID_VALUE;
    }
    *out = NULL;
    if (!image || size < 4) {
        seterr(err, errlen, "image too small (%zu bytes)", size);
        return PTX_ERR_INVALID_IMAGE;
    }
    const uint8_t *d = image;
    struct ptx_program *p = calloc(1, sizeof(*p));
    if (!p) {
        seterr(err, errlen, "out of memory");
        return PTX_ERR_OUT_OF_MEMORY;
    }
    struct found f = {0};
    struct elf_info elf = {0};
    uint32_t magic = rd32(d);
    int rc = 0;
    if (magic == FATBIN_WRAPPER_MAGIC && (rc = unwrap_fatbin(&d, &size, err, errlen)) == 0)
        magic = FATBIN_MAGIC;
    if (rc == 0) {
        if (magic == FATBIN_MAGIC)
            rc = load_fatbin(p, d, size, sizing_only, &f, &elf, err, errlen);
        else if (memcmp(d, "\x7f" "ELF", 4) != 0)
            rc = load_ptx_text(p, d, size, &f, err, errlen);
        else if ((rc = elf_scan(d, size, &elf, err, errlen)) == 0)
            rc = build(p, NULL, 0, &elf, err, errlen);
    }
    free(f.ptx);
    free(f.elf_owned);
    elf_info_free(&elf);
    if (rc) {
        if (err && errlen && !err[0])
            seterr(err, errlen, "loading the image failed (code %d)", rc);
        ptx_program_clear(p);
        free(p);
        return rc;
    }
    *out = p;
    return PTX_OK;
}

int ptx_program_load(const void *image, size_t size, struct ptx_program **out, char *err,
                     size_t errlen)
{
    return load_image(image, size, 0, out, err, errlen);
}

int ptx_image_global_bytes(const void *image, size_t size, uint64_t *bytes, char *err,
                           size_t errlen)
{
    struct ptx_program *p = NULL;
    int rc = load_image(image, size, 1, &p, err, errlen);

    if (rc != PTX_OK)
        return rc;
    *bytes = ptx_program_global_bytes(p);
    ptx_program_free(p);
    return PTX_OK;
}

uint64_t ptx_program_global_bytes(const struct ptx_program *p)
{
    uint64_t sum = p->elf_global_bytes;

    for (uint32_t i = 0; i < p->nglobals; i++) {
        struct ptx_global_info g;
        if (ptx_program_global(p, i, &g) != 0 || g.space != PTX_SPACE_GLOBAL)
            continue; /* constant banks: at most 64 KiB a module, by the hardware */
        sum = g.size > UINT64_MAX - sum ? UINT64_MAX : sum + g.size;
    }
    return sum;
}
