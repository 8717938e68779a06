/* ptx_mma.c - tensor-core instructions of the simulated GPU: decoding `wmma.load/store/mma`
 * and `mma.sync` qualifiers, the fragment layouts (which lane holds which matrix element), the
 * warp-wide matrix multiply-accumulate, `ldmatrix`/`movmatrix` distribution and
 * `cvt.*.tf32.f32` rounding. Memory access and
 * scheduling stay in ptx_exec.c; this file only maps fragments and computes. */
#include "ptx_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static unsigned mt_bits(unsigned t)
{
    switch (t) {
    case MT_S8: case MT_U8: return 8;
    case MT_F16: case MT_BF16: return 16;
    case MT_F64: return 64;
    default: return 32;
    }
}

static int mt_of(const char *w)
{
    static const char *const names[MT_COUNT] = {
        [MT_F16] = "f16", [MT_BF16] = "bf16", [MT_TF32] = "tf32", [MT_F32] = "f32",
        [MT_F64] = "f64", [MT_S8] = "s8", [MT_U8] = "u8", [MT_S32] = "s32",
    };
    for (int i = 1; i < MT_COUNT; i++)
        if (!strcmp(names[i], w))
            return i;
    return 0;
}

/* Splits "a.b.c" into at most 16 words of at most 15 characters; -1 if longer. */
static int split_words(const char *s, size_t n, char w[16][16])
{
    int nw = 0;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && s[j] != '.')
            j++;
        if (nw >= 16 || j - i >= 16)
            return -1;
        memcpy(w[nw], s + i, j - i);
        w[nw++][j - i] = 0;
        i = j + 1;
    }
    return nw;
}

/* Rows and columns of fragment f (A: m x k, B: k x n, C and D: m x n). */
static void frag_dims(const struct pmma *m, int f, unsigned *rows, unsigned *cols)
{
    *rows = f == FR_B ? m->k : m->m;
    *cols = f == FR_A ? m->k : m->n;
}

unsigned ptx_mma_elem_bytes(const struct pmma *m, int f)
{
    return mt_bits(m->type[f]) / 8;
}

/* Elements held in one register of fragment f: 64-bit registers hold one f64, 32-bit ones
 * 32 / element width. */
static unsigned per_reg(const struct pmma *m, int f)
{
    unsigned b = mt_bits(m->type[f]);
    return b >= 32 ? 1 : 32 / b;
}

unsigned ptx_mma_lane_elems(const struct pmma *m, int f)
{
    return m->nr[f] * per_reg(m, f);
}

void ptx_mma_coord(const struct pmma *m, int f, unsigned lane, unsigned e, unsigned *row,
                   unsigned *col)
{
    unsigned rows, cols;
    frag_dims(m, f, &rows, &cols);
    if (!m->sync) {
        /* wmma: the element distribution is unspecified by the PTX ISA; here lane l holds
         * the row-major elements [l' * n, l' * n + n) with l' = l mod (elements / n), so
         * fragments with more slots than elements (f16 A/B) repeat in the upper lanes */
        unsigned n = ptx_mma_lane_elems(m, f), groups = rows * cols / n;
        unsigned idx = (lane % groups) * n + e;
        *row = idx / cols;
        *col = idx % cols;
        return;
    }
    /* mma.sync: the layouts of the PTX ISA ("Matrix Fragments for mma.m16n8kK" and
     * "mma.m8n8k4/k16"), written per 32-bit register r and element j in it */
    unsigned g = lane >> 2, t = lane & 3, per = per_reg(m, f);
    unsigned r = e / per, j = e % per;
    if (f == FR_C || f == FR_D) {
        *row = g + (m->m == 16 && e >= 2 ? 8 : 0);
        *col = t * 2 + (e & 1);
    } else if (f == FR_A) {
        *row = g + (m->m == 16 ? 8 * (r & 1) : 0);
        *col = t * per + j + (m->m == 16 ? (r >> 1) : r) * 4 * per;
    } else {
        *row = t * per + j + r * 4 * per;
        *col = g;
    }
}

/* Checks that the operand register counts fit the shape and types; -1 if they do not. */
static int check_regs(const struct pmma *m)
{
    for (int f = 0; f < 4; f++) {
        if (!m->nr[f])
            continue;
        unsigned rows, cols, n = ptx_mma_lane_elems(m, f);
        frag_dims(m, f, &rows, &cols);
        unsigned total = rows * cols;
        if (total % n || 32 % (total / n) || total > PTX_MMA_MAX_ELEMS)
            return -1;
        if (m->sync && total / n != 32)
            return -1;
    }
    return 0;
}

static int parse_shape(const char *w, struct pmma *m)
{
    unsigned a, b, c;
    char tail;
    if (sscanf(w, "m%un%uk%u%c", &a, &b, &c, &tail) != 3 || a > 32 || b > 32 || c > 32)
        return -1;
    m->m = (uint8_t)a;
    m->n = (uint8_t)b;
    m->k = (uint8_t)c;
    return 0;
}

/* Types of an mma: t[] as written after the shape (dtype ctype for f16 wmma, else
 * dtype atype btype ctype). */
static int set_mma_types(struct pmma *m, const int *t, int nt)
{
    if (nt == 2 && (t[0] == MT_F16 || t[0] == MT_F32) && (t[1] == MT_F16 || t[1] == MT_F32)) {
        m->type[FR_A] = m->type[FR_B] = MT_F16;
        m->type[FR_D] = (uint8_t)t[0];
        m->type[FR_C] = (uint8_t)t[1];
        return 0;
    }
    int ints = (t[1] == MT_S8 || t[1] == MT_U8) && (t[2] == MT_S8 || t[2] == MT_U8);
    if (nt != 4 || (t[1] != t[2] && !ints))
        return -1;
    m->type[FR_D] = (uint8_t)t[0];
    m->type[FR_A] = (uint8_t)t[1];
    m->type[FR_B] = (uint8_t)t[2];
    m->type[FR_C] = (uint8_t)t[3];
    return 0;
}

/* Input and accumulator type pairs the engine computes (the tensor cores' combinations). */
static int types_ok(const struct pmma *m)
{
    unsigned a = m->type[FR_A], c = m->type[FR_C], d = m->type[FR_D];
    switch (a) {
    case MT_F16: return (c == MT_F16 || c == MT_F32) && (d == MT_F16 || d == MT_F32);
    case MT_BF16: case MT_TF32: return c == MT_F32 && d == MT_F32;
    case MT_F64: return c == MT_F64 && d == MT_F64;
    case MT_S8: case MT_U8: return c == MT_S32 && d == MT_S32;
    default: return 0;
    }
}

static int decode_ldst(struct pmma *m, char w[16][16], int nw, int i)
{
    m->kind = !strcmp(w[1], "load") ? MMA_LOAD : MMA_STORE;
    if (!strcmp(w[i], "a")) m->frag = FR_A;
    else if (!strcmp(w[i], "b")) m->frag = FR_B;
    else if (!strcmp(w[i], "c") && m->kind == MMA_LOAD) m->frag = FR_C;
    else if (!strcmp(w[i], "d") && m->kind == MMA_STORE) m->frag = FR_D;
    else return -1;
    int type = 0;
    for (i++; i < nw; i++) {
        if (!strcmp(w[i], "sync") || !strcmp(w[i], "aligned") || !strcmp(w[i], "global") ||
            !strcmp(w[i], "shared") || !strcmp(w[i], "cta") || !strcmp(w[i], "row"))
            continue;
        if (!strcmp(w[i], "col"))
            m->col = 1;
        else if (w[i][0] == 'm' && !m->m && !parse_shape(w[i], m))
            continue;
        else if (!type && (type = mt_of(w[i])))
            continue;
        else
            return -1;
    }
    if (!m->m || !type)
        return -1;
    /* the fragment's element type; the other fragments' only fix the shape's bounds */
    for (int f = 0; f < 4; f++)
        m->type[f] = (uint8_t)type;
    return 0;
}

static int decode_mma(struct pmma *m, char w[16][16], int nw, int i)
{
    int t[4], nt = 0, nlayout = 0;
    m->kind = MMA_MMA;
    for (; i < nw; i++) {
        int ty;
        if (!strcmp(w[i], "sync") || !strcmp(w[i], "aligned") || !strcmp(w[i], "rn"))
            continue;
        if (!strcmp(w[i], "row") || !strcmp(w[i], "col")) {
            /* mma.sync takes A row-major and B column-major (the other layouts are m8n8k4
             * f16 only); wmma's fragments are layout-independent here */
            if (m->sync && strcmp(w[i], nlayout ? "col" : "row"))
                return -1;
            nlayout++;
        } else if (!strcmp(w[i], "satfinite")) {
            m->satfinite = 1;
        } else if (w[i][0] == 'm' && !m->m && !parse_shape(w[i], m)) {
            continue;
        } else if ((ty = mt_of(w[i])) && nt < 4) {
            t[nt++] = ty;
        } else {
            return -1;
        }
    }
    if (!m->m || nlayout != 2 || set_mma_types(m, t, nt) || !types_ok(m))
        return -1;
    if (m->satfinite && m->type[FR_D] != MT_S32)
        return -1;
    return 0;
}

/* ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}{.shared{::cta}}.b16 and
 * movmatrix.sync.aligned.m8n8.trans.b16 */
static int decode_matrix(struct pmma *m, char w[16][16], int nw)
{
    int b16 = 0;
    m->kind = w[0][0] == 'l' ? MMA_LDMATRIX : MMA_MOVMATRIX;
    m->nmat = 1;
    for (int i = 1; i < nw; i++) {
        if (!strcmp(w[i], "sync") || !strcmp(w[i], "aligned") || !strcmp(w[i], "m8n8") ||
            (m->kind == MMA_LDMATRIX && (!strcmp(w[i], "shared") ||
                                         !strcmp(w[i], "shared::cta"))))
            continue;
        if (!strcmp(w[i], "trans"))
            m->col = 1;
        else if (!strcmp(w[i], "b16"))
            b16 = 1;
        else if (m->kind == MMA_LDMATRIX && (!strcmp(w[i], "x1") || !strcmp(w[i], "x2") ||
                                             !strcmp(w[i], "x4")))
            m->nmat = (uint8_t)(w[i][1] - '0');
        else
            return -1;
    }
    m->m = m->n = 8;
    return b16 && (m->kind == MMA_LDMATRIX || m->col) ? 0 : -1;
}

/* The shapes the ISA defines for the input type a (0: any of wmma's, for load/store). */
static int shape_ok(const struct pmma *m, unsigned a)
{
    unsigned sh = (unsigned)m->m << 16 | (unsigned)m->n << 8 | m->k;
#define SH(x, y, z) ((x) << 16 | (y) << 8 | (z))
    if (!m->sync) {
        int k16 = sh == SH(16, 16, 16) || sh == SH(32, 8, 16) || sh == SH(8, 32, 16);
        if (a == MT_TF32)
            return sh == SH(16, 16, 8);
        if (a == MT_F64)
            return sh == SH(8, 8, 4);
        return k16 || (!a && (sh == SH(16, 16, 8) || sh == SH(8, 8, 4)));
    }
    switch (a) {
    case MT_F16: case MT_BF16: return sh == SH(16, 8, 8) || sh == SH(16, 8, 16);
    case MT_TF32: return sh == SH(16, 8, 4) || sh == SH(16, 8, 8);
    case MT_F64: return sh == SH(8, 8, 4);
    default: return sh == SH(16, 8, 16) || sh == SH(16, 8, 32) || sh == SH(8, 8, 16);
    }
#undef SH
}

int ptx_mma_decode(const char *op, size_t n, struct pmma *m)
{
    char w[16][16];
    memset(m, 0, sizeof(*m));
    int nw = split_words(op, n, w);
    if (nw < 3)
        return -1;
    if (!strcmp(w[0], "ldmatrix") || !strcmp(w[0], "movmatrix"))
        return decode_matrix(m, w, nw);
    if (!strcmp(w[0], "wmma") && (!strcmp(w[1], "load") || !strcmp(w[1], "store"))) {
        if (decode_ldst(m, w, nw, 2))
            return -1;
        unsigned t = m->type[FR_A];
        return shape_ok(m, m->frag == FR_A || m->frag == FR_B ? t : 0) ? 0 : -1;
    }
    if (!strcmp(w[0], "wmma") && !strcmp(w[1], "mma"))
        return decode_mma(m, w, nw, 2) || !shape_ok(m, m->type[FR_A]) ? -1 : 0;
    if (!strcmp(w[0], "mma")) {
        m->sync = 1; /* the shapes whose layouts ptx_mma_coord knows */
        return decode_mma(m, w, nw, 1) || !shape_ok(m, m->type[FR_A]) ? -1 : 0;
    }
    return -1;
}

int ptx_mma_set_regs(struct pmma *m, int f, const int32_t *regs, unsigned nregs)
{
    if (nregs == 0 || nregs > 8)
        return -1;
    m->nr[f] = (uint8_t)nregs;
    for (unsigned i = 0; i < nregs; i++)
        m->r[f][i] = regs[i];
    if (m->kind == MMA_LDMATRIX)
        return nregs == m->nmat ? 0 : -1;
    if (m->kind == MMA_MOVMATRIX)
        return nregs == 1 ? 0 : -1;
    return check_regs(m);
}

/* ---- values ------------------------------------------------------------------------- */

static uint64_t elem_bits(uint64_t reg, unsigned bits, unsigned j)
{
    return bits == 64 ? reg : (reg >> (j * bits)) & ((1ull << bits) - 1);
}

/* Element j of a register of type t as a double (floats) or an integer (i). */
static double elem_get(uint64_t reg, unsigned t, unsigned j, int64_t *i)
{
    uint64_t v = elem_bits(reg, mt_bits(t), j);
    uint32_t u = (uint32_t)v;
    float f;
    switch (t) {
    case MT_F16: return ptx_f16_to_f32((uint16_t)v);
    case MT_BF16: u <<= 16; break;
    case MT_TF32: u &= ~0x1fffu; break; /* the tensor cores read 10 mantissa bits */
    case MT_F64: { double d; memcpy(&d, &v, 8); return d; }
    case MT_S8: *i = (int8_t)v; return 0;
    case MT_U8: *i = (uint8_t)v; return 0;
    case MT_S32: *i = (int32_t)u; return 0;
    default: break;
    }
    memcpy(&f, &u, 4);
    return f;
}

static uint64_t elem_put(unsigned t, double d, int64_t i, int sat)
{
    float f = (float)d;
    uint32_t u;
    switch (t) {
    case MT_F16: return ptx_f32_to_f16(f);
    case MT_F64: { uint64_t v; memcpy(&v, &d, 8); return v; }
    case MT_S32:
        if (sat)
            i = i > INT32_MAX ? INT32_MAX : i < INT32_MIN ? INT32_MIN : i;
        return (uint32_t)(int32_t)(uint32_t)(uint64_t)i;
    default:
        memcpy(&u, &f, 4);
        return u;
    }
}

/* ---- the warp's multiply-accumulate --------------------------------------------------- */

struct mat {
    double f[PTX_MMA_MAX_ELEMS];
    int64_t i[PTX_MMA_MAX_ELEMS];
};

static void gather(const struct pmma *m, int f, uint64_t *const regs[32], struct mat *x)
{
    unsigned rows, cols, n = ptx_mma_lane_elems(m, f), per = per_reg(m, f);
    frag_dims(m, f, &rows, &cols);
    for (unsigned l = 0; l < 32; l++)
        for (unsigned e = 0; e < n; e++) {
            unsigned r, c;
            ptx_mma_coord(m, f, l, e, &r, &c);
            int64_t iv = 0;
            double v = elem_get(regs[l][m->r[f][e / per]], m->type[f], e % per, &iv);
            x->f[r * cols + c] = v;
            x->i[r * cols + c] = iv;
        }
}

static void scatter(const struct pmma *m, uint64_t *const regs[32], const struct mat *x)
{
    unsigned n = ptx_mma_lane_elems(m, FR_D), per = per_reg(m, FR_D);
    unsigned bits = mt_bits(m->type[FR_D]);
    for (unsigned l = 0; l < 32; l++) {
        uint64_t out[8] = {0};
        for (unsigned e = 0; e < n; e++) {
            unsigned r, c;
            ptx_mma_coord(m, FR_D, l, e, &r, &c);
            uint64_t v = elem_put(m->type[FR_D], x->f[r * m->n + c], x->i[r * m->n + c],
                                  m->satfinite);
            out[e / per] |= bits == 64 ? v : v << ((e % per) * bits);
        }
        for (unsigned k = 0; k < m->nr[FR_D]; k++)
            if (m->r[FR_D][k] >= 0)
                regs[l][m->r[FR_D][k]] = out[k];
    }
}

static void multiply(const struct pmma *m, const struct mat *a, const struct mat *b,
                     struct mat *c)
{
    unsigned ta = m->type[FR_A];
    for (unsigned r = 0; r < m->m; r++)
        for (unsigned col = 0; col < m->n; col++) {
            unsigned o = r * m->n + col;
            if (ta == MT_S8 || ta == MT_U8) {
                int64_t acc = c->i[o];
                for (unsigned k = 0; k < m->k; k++)
                    acc += a->i[r * m->k + k] * b->i[k * m->n + col];
                c->i[o] = acc;
            } else if (ta == MT_F64) {
                double acc = c->f[o];
                for (unsigned k = 0; k < m->k; k++)
                    acc = fma(a->f[r * m->k + k], b->f[k * m->n + col], acc);
                c->f[o] = acc;
            } else {
                /* f16, bf16 and tf32 products are exact in f32: one rounding per addition,
                 * in k order */
                float acc = (float)c->f[o];
                for (unsigned k = 0; k < m->k; k++)
                    acc = fmaf((float)a->f[r * m->k + k], (float)b->f[k * m->n + col], acc);
                c->f[o] = acc;
            }
        }
}

void ptx_mma_warp(const struct pmma *m, uint64_t *const regs[32])
{
    static _Thread_local struct mat a, b, c;
    gather(m, FR_A, regs, &a);
    gather(m, FR_B, regs, &b);
    gather(m, FR_C, regs, &c);
    multiply(m, &a, &b, &c);
    scatter(m, regs, &c);
}

void ptx_ldmatrix_warp(const struct pmma *m, const uint16_t rows[32][8], uint64_t *const regs[32])
{
    /* lane l gets, of each matrix, row l/4, columns 2(l%4) and 2(l%4)+1 (low half first);
     * with .trans, column l/4 of rows 2(l%4) and 2(l%4)+1 */
    for (unsigned l = 0; l < 32; l++)
        for (unsigned i = 0; i < m->nmat; i++) {
            const uint16_t(*x)[8] = &rows[i * 8];
            unsigned q = l / 4, c = (l % 4) * 2;
            uint32_t lo = m->col ? x[c][q] : x[q][c], hi = m->col ? x[c + 1][q] : x[q][c + 1];
            if (m->r[FR_D][i] >= 0)
                regs[l][m->r[FR_D][i]] = lo | hi << 16;
        }
}

void ptx_movmatrix_warp(const struct pmma *m, uint64_t *const regs[32])
{
    uint16_t x[8][8];
    for (unsigned l = 0; l < 32; l++) {
        uint32_t v = (uint32_t)regs[l][m->r[FR_A][0]];
        x[l / 4][(l % 4) * 2] = (uint16_t)v;
        x[l / 4][(l % 4) * 2 + 1] = (uint16_t)(v >> 16);
    }
    for (unsigned l = 0; l < 32; l++) {
        unsigned q = l / 4, c = (l % 4) * 2;
        if (m->r[FR_D][0] >= 0)
            regs[l][m->r[FR_D][0]] = (uint32_t)x[c][q] | (uint32_t)x[c + 1][q] << 16;
    }
}

uint64_t ptx_mma_frag_get(const struct pmma *m, const uint64_t *regs, unsigned e)
{
    unsigned per = per_reg(m, m->frag), bits = mt_bits(m->type[m->frag]);
    return elem_bits(regs[m->r[m->frag][e / per]], bits, e % per);
}

void ptx_mma_frag_put(const struct pmma *m, uint64_t *regs, unsigned e, uint64_t v)
{
    unsigned per = per_reg(m, m->frag), bits = mt_bits(m->type[m->frag]);
    uint64_t *r = &regs[m->r[m->frag][e / per]];
    if (bits == 64 || per == 1) {
        *r = v;
        return;
    }
    unsigned sh = (e % per) * bits;
    uint64_t mask = ((1ull << bits) - 1) << sh;
    *r = (*r & ~mask & 0xffffffffull) | (v << sh);
}

uint32_t ptx_cvt_tf32(uint32_t x, int mode)
{
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return 0x7fffffffu; /* canonical NaN */
    if ((x & 0x7fffffffu) == 0x7f800000u)
        return x;
    uint32_t r = x;
    if (mode == TF32_RNA)
        r = x + 0x1000u;
    else if (mode == TF32_RN)
        r = x + 0xfffu + ((x >> 13) & 1);
    return r & ~0x1fffu;
}
