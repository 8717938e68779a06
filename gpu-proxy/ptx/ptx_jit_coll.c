/* ptx_jit_coll.c - phase mode's warp collectives inside the translator: shfl.sync (up, down,
 * bfly, idx) and vote.sync (all, any, uni, ballot) computed on the lanes' spill records, with
 * the interpreter's semantics (resolve_group in ptx_exec.c: the group is the lanes waiting at
 * the same instruction; the mask operand is not consulted; a shuffle from a lane outside the
 * group reads the lane's own value). Other collectives go to the interpreter's resolver. */
#include "ptx_jit_coll.h"

#include <stdlib.h>

/* One collective instruction: where its operands and results live in a lane's record. */
struct coll_op {
    uint16_t op;
    uint8_t mod, neg;
    int32_t src[3];  /* record slot (JIT_REC_HEAD + k), or -1: the constant in kval */
    uint64_t kval[3];
    int32_t dst[2];  /* record slot, or -1: not kept (dead after the instruction) */
    /* shfl whose lane and clamp operands are, or are expected to be (registers only ever
     * set from constants), kb and kc: for a whole warp at it with those values, each lane's
     * source lane (its own where the shuffle is out of range) and predicate result */
    uint8_t konst, pv[32];
    uint32_t kb, kc;
    int8_t from[32];
};

struct jit_colls {
    uint64_t (*slow)(struct jit_frame *f, uint32_t warp);
    uint32_t ncode, stride;
    int32_t *at;     /* per instruction: index in ops, or -1 (the interpreter resolves it) */
    struct coll_op *ops;
};

static int fast_op(const struct pins *in)
{
    return (in->op == OP_shfl && in->mod >= SHFL_UP && in->mod <= SHFL_IDX) ||
           (in->op == OP_vote && in->mod >= VOTE_ALL && in->mod <= VOTE_BALLOT);
}

/* The interpreter's shuffle formula for lane l: its source lane, or -1 out of range (the
 * lane keeps its own value); *pval the predicate result. */
static int32_t shfl_src(unsigned mod, uint32_t l, uint32_t b, uint32_t c, int *pval)
{
    b &= 31;
    uint32_t seg = (c >> 8) & 31, clampv = c & 31;
    uint32_t maxl = (l & seg) | (clampv & ~seg), minl = l & seg;
    int32_t j;
    switch (mod) {
    case SHFL_UP: j = (int32_t)l - (int32_t)b; *pval = j >= (int32_t)maxl; break;
    case SHFL_DOWN: j = (int32_t)(l + b); *pval = j <= (int32_t)maxl; break;
    case SHFL_BFLY: j = (int32_t)(l ^ b); *pval = j <= (int32_t)maxl; break;
    default: j = (int32_t)(minl | (b & ~seg)); *pval = j <= (int32_t)maxl; break;
    }
    return *pval && j >= 0 && j <= 31 ? j : -1;
}

/* The value register r is expected to hold: its constant, or the constant the first mov
 * writing it copies (translated code checks that each lane holds it before relying on it). */
static uint64_t expected(const struct pfunc *f, int32_t r)
{
    for (uint32_t i = 0; i < f->ncode; i++) {
        const struct pins *in = &f->code[i];
        if (in->d[0] == r || in->d[1] == r || in->d[2] == r || in->d[3] == r)
            return in->op == OP_mov && in->s[0] >= 0 ? f->reg_init[in->s[0]] : 0;
    }
    return f->reg_init[r];
}

static void describe(struct coll_op *o, const struct pins *in, const struct pfunc *f,
                     const int32_t *slot_of)
{
    o->op = in->op;
    o->mod = in->mod;
    o->neg = (in->flags & F_NEGSRC) != 0;
    for (unsigned j = 0; j < 3; j++) {
        int32_t r = in->s[j];
        o->src[j] = r >= 0 && slot_of[r] >= 0 ? JIT_REC_HEAD + slot_of[r] : -1;
        o->kval[j] = r >= 0 && slot_of[r] < 0 ? f->reg_init[r] : 0;
    }
    for (unsigned j = 0; j < 2; j++) {
        int32_t r = in->d[j];
        o->dst[j] = r >= 0 && slot_of[r] >= 0 ? JIT_REC_HEAD + slot_of[r] : -1;
    }
    o->konst = in->op == OP_shfl && in->s[1] >= 0 && in->s[2] >= 0;
    if (o->konst) {
        o->kb = (uint32_t)expected(f, in->s[1]);
        o->kc = (uint32_t)expected(f, in->s[2]);
    }
    for (uint32_t l = 0; o->konst && l < 32; l++) {
        int pval;
        int32_t j = shfl_src(o->mod, l, o->kb, o->kc, &pval);
        o->from[l] = (int8_t)(j >= 0 ? j : (int32_t)l);
        o->pv[l] = (uint8_t)pval;
    }
}

struct jit_colls *jit_colls_build(const struct pfunc *f, const int32_t *spill, uint32_t nspill,
                                  uint64_t (*slow)(struct jit_frame *f, uint32_t warp))
{
    struct jit_colls *t = calloc(1, sizeof(*t));
    int32_t *slot_of = malloc((f->nregs ? f->nregs : 1) * sizeof(int32_t));
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->ncode; i++)
        n += fast_op(&f->code[i]);
    if (t) {
        t->at = malloc((f->ncode ? f->ncode : 1) * sizeof(int32_t));
        t->ops = calloc(n ? n : 1, sizeof(*t->ops));
    }
    if (!t || !slot_of || !t->at || !t->ops) {
        free(slot_of);
        jit_colls_free(t);
        return NULL;
    }
    for (uint32_t r = 0; r < f->nregs; r++)
        slot_of[r] = -1;
    for (uint32_t k = 0; k < nspill; k++)
        slot_of[spill[k]] = (int32_t)k;
    t->slow = slow;
    t->ncode = f->ncode;
    t->stride = nspill + JIT_REC_HEAD;
    n = 0;
    for (uint32_t i = 0; i < f->ncode; i++) {
        t->at[i] = fast_op(&f->code[i]) ? (int32_t)n : -1;
        if (t->at[i] >= 0)
            describe(&t->ops[n++], &f->code[i], f, slot_of);
    }
    free(slot_of);
    return t;
}

void jit_colls_free(struct jit_colls *t)
{
    if (!t)
        return;
    free(t->at);
    free(t->ops);
    free(t);
}

static uint64_t src_of(const struct coll_op *o, uint64_t *const rec[32], uint32_t l, unsigned j)
{
    return o->src[j] >= 0 ? rec[l][o->src[j]] : o->kval[j];
}

/* shfl.sync for the lanes in group: results into d[] and p[] (the interpreter's formulas) */
static void shfl(const struct coll_op *o, uint64_t *const rec[32], uint32_t group,
                 uint64_t d[32], uint64_t p[32])
{
    for (uint32_t l = 0; l < 32; l++) {
        if (!((group >> l) & 1))
            continue;
        int pval;
        int32_t j = shfl_src(o->mod, l, (uint32_t)src_of(o, rec, l, 1),
                             (uint32_t)src_of(o, rec, l, 2), &pval);
        if (j < 0 || !((group >> j) & 1))
            j = (int32_t)l;
        d[l] = (uint32_t)src_of(o, rec, (uint32_t)j, 0);
        p[l] = (uint64_t)pval;
    }
}

/* vote.sync: one value for every lane of the group */
static uint64_t vote(const struct coll_op *o, uint64_t *const rec[32], uint32_t group)
{
    uint32_t ballot = 0;
    for (uint32_t l = 0; l < 32; l++)
        if (((group >> l) & 1) && ((src_of(o, rec, l, 0) & 1) ^ o->neg))
            ballot |= 1u << l;
    switch (o->mod) {
    case VOTE_ALL: return ballot == group;
    case VOTE_ANY: return ballot != 0;
    case VOTE_UNI: return ballot == group || ballot == 0;
    default: return ballot;
    }
}

/* Resolves the group waiting at o (every result computed before any is written: a result may
 * overwrite another lane's operand) and lets its lanes run on at pc + 1. */
static void resolve(const struct coll_op *o, uint64_t *const rec[32], uint32_t group,
                    uint64_t pc)
{
    uint64_t d[32], p[32];
    if (o->op == OP_shfl) {
        shfl(o, rec, group, d, p);
    } else {
        uint64_t v = vote(o, rec, group);
        for (uint32_t l = 0; l < 32; l++)
            d[l] = v;
    }
    for (uint32_t l = 0; l < 32; l++) {
        if (!((group >> l) & 1))
            continue;
        if (o->dst[0] >= 0)
            rec[l][o->dst[0]] = d[l];
        if (o->dst[1] >= 0 && o->op == OP_shfl)
            rec[l][o->dst[1]] = p[l];
        rec[l][0] = JIT_SPILL_RUN;
        rec[l][1] = pc + 1;
    }
}

/* A whole warp at a shuffle whose every lane holds the expected lane and clamp operands:
 * the source lanes are known. 0, or -1 when a lane holds others. */
static int shfl_warp(const struct coll_op *o, uint64_t *const rec[32], uint64_t pc)
{
    uint64_t d[32];
    for (uint32_t l = 0; l < 32; l++)
        if ((uint32_t)src_of(o, rec, l, 1) != o->kb || (uint32_t)src_of(o, rec, l, 2) != o->kc)
            return -1;
    for (uint32_t l = 0; l < 32; l++)
        d[l] = (uint32_t)src_of(o, rec, (uint32_t)o->from[l], 0);
    for (uint32_t l = 0; l < 32; l++) {
        if (o->dst[0] >= 0)
            rec[l][o->dst[0]] = d[l];
        if (o->dst[1] >= 0)
            rec[l][o->dst[1]] = o->pv[l];
        rec[l][0] = JIT_SPILL_RUN;
        rec[l][1] = pc + 1;
    }
    return 0;
}

uint64_t jit_warp_coll(struct jit_frame *f, uint32_t warp, const struct jit_colls *t)
{
    uint64_t *rec[32] = {0};
    uint32_t base = warp * 32, pending = 0, deferred = 0, same = 1;
    uint64_t pc0 = UINT64_MAX;
    for (uint32_t l = 0; l < 32 && base + l < f->nthreads; l++) {
        rec[l] = f->spill + (size_t)(base + l) * t->stride;
        if (rec[l][0] != JIT_SPILL_COLL)
            continue;
        pending |= 1u << l;
        if (pc0 == UINT64_MAX)
            pc0 = rec[l][1];
        same &= rec[l][1] == pc0;
    }
    if (pending == 0xffffffffu && same && pc0 < t->ncode && t->at[pc0] >= 0 &&
        t->ops[t->at[pc0]].konst && shfl_warp(&t->ops[t->at[pc0]], rec, pc0) == 0)
        return 0;
    while (pending) {
        uint32_t l0 = (uint32_t)__builtin_ctz(pending), group = 0;
        uint64_t pc = rec[l0][1];
        for (uint32_t l = l0; l < 32; l++)
            if (((pending >> l) & 1) && rec[l][1] == pc)
                group |= 1u << l;
        pending &= ~group;
        if (pc < t->ncode && t->at[pc] >= 0)
            resolve(&t->ops[t->at[pc]], rec, group, pc);
        else
            deferred |= group;
    }
    return deferred ? t->slow(f, warp) : 0;
}
