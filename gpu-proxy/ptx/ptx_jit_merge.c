/* ptx_jit_merge.c - plans merged shared-memory checks for the translator: in a straight run
 * of instructions (no branch target inside, no branch, barrier, collective or exit before the
 * end), the unguarded ld/st.shared at [r + k] with the same 32-bit base register r, the same
 * size and offsets k in one residue class of that size form a group while r is not written.
 * Translated code checks the group's whole span once at its first member and remembers the
 * base it checked; a member whose base equals it skips its own check (ptx_jit.c), so safety
 * rests on that comparison, not on this plan. */
#include "ptx_jit_merge.h"

#include <stdlib.h>

uint64_t jit_access_len(const struct pins *in)
{
    unsigned eb = pt_bits(in->type) / 8;
    return (uint64_t)(eb ? eb : 1) * in->vec;
}

/* offsets below 2^24: with a 32-bit base, base + offset cannot wrap */
#define MERGE_MAX_OFF (1ll << 24)

static int mergeable(const struct pins *in)
{
    return (in->op == OP_ld || in->op == OP_st) && in->space == SP_SHARED && in->areg >= 0 &&
           (in->flags & F_A32) && !(in->flags & (F_LOCKSTEP | F_ALOCAL)) && in->guard < 0 &&
           in->aoff >= 0 && in->aoff < MERGE_MAX_OFF;
}

/* Control may leave the run after this instruction, or other threads run in between. */
static int ends_run(const struct pins *in)
{
    switch (in->op) {
    case OP_bra: case OP_exit: case OP_ret: case OP_bar: case OP_call: case OP_shfl:
    case OP_vote: case OP_redux: case OP_activemask: case OP_warpsync: case OP_match:
    case OP_mma: case OP_unsupported:
        return 1;
    default:
        return (in->flags & F_LOCKSTEP) != 0;
    }
}

static int writes(const struct pins *in, int32_t r)
{
    for (unsigned j = 0; j < 4; j++)
        if (in->d[j] == r)
            return 1;
    return 0;
}

/* The group led by instruction i, its members marked in m->grp as group m->n; how many. */
static unsigned collect(const struct pfunc *f, const uint8_t *target, uint32_t i,
                        struct jit_merge *m)
{
    const struct pins *a = &f->code[i];
    uint64_t len = jit_access_len(a);
    struct jit_mgroup g = {.lo = (uint64_t)a->aoff, .hi = (uint64_t)a->aoff, .len = len,
                           .leader = i};
    unsigned n = 1;
    m->grp[i] = (int32_t)m->n;
    for (uint32_t j = i; j < f->ncode; j++) {
        const struct pins *in = &f->code[j];
        if (j > i && target[j])
            break;
        if (j > i && mergeable(in) && m->grp[j] < 0 && in->areg == a->areg &&
            jit_access_len(in) == len && ((uint64_t)(in->aoff - a->aoff)) % len == 0) {
            m->grp[j] = (int32_t)m->n;
            n++;
            if ((uint64_t)in->aoff < g.lo)
                g.lo = (uint64_t)in->aoff;
            if ((uint64_t)in->aoff > g.hi)
                g.hi = (uint64_t)in->aoff;
        }
        if (writes(in, a->areg) || ends_run(in))
            break;
    }
    m->g[m->n] = g;
    return n;
}

int jit_merge_plan(const struct pfunc *f, struct jit_merge *m)
{
    uint32_t nc = f->ncode ? f->ncode : 1;
    uint8_t *target = calloc(nc, 1);
    m->grp = malloc(nc * sizeof(int32_t));
    m->g = malloc(nc * sizeof(*m->g));
    if (!target || !m->grp || !m->g) {
        free(target);
        jit_merge_free(m);
        return -1;
    }
    for (uint32_t i = 0; i < f->ncode; i++) {
        m->grp[i] = -1;
        if (f->code[i].op == OP_bra && (uint32_t)f->code[i].target < f->ncode)
            target[f->code[i].target] = 1;
    }
    for (uint32_t i = 0; i < f->ncode; i++) {
        if (m->grp[i] >= 0 || !mergeable(&f->code[i]))
            continue;
        if (collect(f, target, i, m) >= 2) {
            m->n++;
            continue;
        }
        m->grp[i] = -1; /* alone: checked as before */
    }
    free(target);
    return 0;
}

void jit_merge_free(struct jit_merge *m)
{
    free(m->grp);
    free(m->g);
    m->grp = NULL;
    m->g = NULL;
    m->n = 0;
}
