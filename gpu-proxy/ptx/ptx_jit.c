/* ptx_jit.c - translates a kernel's parsed PTX into LLVM IR (LLVM's C API), optimizes it and
 * compiles it with ORC LLJIT, once per kernel and module. The code works on the interpreter's
 * thread states: registers live in SSA values between the points where it hands back, every
 * memory access is range-checked against the block's areas or a resolved allocation of the
 * zone, and what it does not translate is executed by the interpreter, one instruction at a
 * time (helpers in ptx_exec.c). Threads run one at a time, not warp-wide: a loop over the
 * block's threads (block and phase modes) or one call per thread (per-thread mode). Built as
 * libvgpu-ptxjit.so (only the stub backend's workers load it, with ptx_jit_load.c), so no other
 * process maps LLVM; its one export is ptx_jit_ops. */
#include "ptx_jit.h"
#include "ptx_jit_coll.h"
#include "ptx_jit_merge.h"

#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassManagerBuilder.h>

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SH_WIN 0xFE00000000000000ull /* the interpreter's generic windows */
#define LO_WIN 0xFD00000000000000ull

#define FOFF(f) offsetof(struct jit_frame, f)

enum { K_UNTRIED = 0, K_DONE, K_REFUSED };

struct jit_kernel {
    int state;
    int mode;          /* JIT_THREAD, JIT_BLOCK, JIT_PHASES */
    ptx_jit_fn fn;
    int32_t *spill;    /* JIT_PHASES: the registers a thread's spill record holds */
    int32_t *slot_of;  /* and the inverse map */
    uint32_t nspill;
    struct jit_colls *colls; /* JIT_PHASES: its warp collectives */
};

struct ptx_jit {
    LLVMOrcLLJITRef lljit;
    struct jit_kernel *k; /* per function of the program */
};

static pthread_mutex_t g_jit_lock = PTHREAD_MUTEX_INITIALIZER;
static LLVMTargetMachineRef g_tm; /* for the optimizer's target information */

/* ---- code generation state ------------------------------------------------------------ */

struct cg {
    LLVMContextRef cx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    const struct pfunc *pf;
    const struct ptx_jit_helpers *h;
    int block_mode;
    LLVMTypeRef i1, i8, i16, i32, i64, f32, f64, p8, p64;
    LLVMValueRef frame;       /* i8* */
    LLVMValueRef *ra;         /* per register: alloca, or NULL for a constant */
    LLVMBasicBlockRef *bb;    /* per instruction, and one past the end */
    LLVMValueRef cnt, ret;    /* allocas: instructions run, return value */
    LLVMValueRef gc[JIT_GSLOTS][3]; /* allocas: the allocation cache */
    LLVMValueRef shared, shared_size, local, local_size, param, param_size, regs;
    LLVMValueRef lin;         /* block mode: alloca of the linear thread index */
    LLVMBasicBlockRef exit_plain, next_thread;
    uint8_t *entry;           /* per instruction: may be resumed at (per-thread mode) */
    uint64_t *live;           /* per instruction: registers live before it (lwords each) */
    uint32_t lwords;
    int32_t *spill;           /* phase mode: registers kept across a barrier or a yield */
    uint32_t nspill;
    LLVMValueRef sp, waiting; /* phase mode: allocas: the thread's spill record, a barrier */
    LLVMValueRef coll, round; /* phase mode: a lane of the warp waits at a collective; round */
    struct jit_colls *colls;  /* phase mode: the collectives jit_warp_coll resolves */
    unsigned gaccess;         /* global accesses emitted so far */
    struct jit_merge merge;   /* shared accesses whose checks are merged */
    LLVMValueRef *gbase;      /* per merged group: alloca of the base its leader checked */
};

static LLVMValueRef k64(struct cg *c, uint64_t v) { return LLVMConstInt(c->i64, v, 0); }
static LLVMValueRef k32(struct cg *c, uint32_t v) { return LLVMConstInt(c->i32, v, 0); }

static LLVMBasicBlockRef new_bb(struct cg *c, const char *name)
{
    return LLVMAppendBasicBlockInContext(c->cx, c->fn, name);
}

/* A field of the frame (all 8 bytes). */
static LLVMValueRef frame_at(struct cg *c, size_t off, LLVMTypeRef ty)
{
    LLVMValueRef idx = k64(c, off);
    LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->i8, c->frame, &idx, 1, "");
    return LLVMBuildBitCast(c->b, p, LLVMPointerType(ty, 0), "");
}

static LLVMValueRef frame_ld(struct cg *c, size_t off, LLVMTypeRef ty)
{
    return LLVMBuildLoad2(c->b, ty, frame_at(c, off, ty), "");
}

static LLVMValueRef reg_slot(struct cg *c, int32_t r)
{
    LLVMValueRef idx = k64(c, (uint64_t)r);
    return LLVMBuildInBoundsGEP2(c->b, c->i64, c->regs, &idx, 1, "");
}

/* ---- registers ------------------------------------------------------------------------ */

static LLVMValueRef rd(struct cg *c, int32_t r)
{
    if (r < 0)
        return k64(c, 0);
    if (!c->ra[r])
        return k64(c, c->pf->reg_init[r]);
    return LLVMBuildLoad2(c->b, c->i64, c->ra[r], "");
}

static void wr(struct cg *c, int32_t r, LLVMValueRef v)
{
    if (r >= 0 && c->ra[r])
        LLVMBuildStore(c->b, v, c->ra[r]);
}

static LLVMTypeRef ity(struct cg *c, unsigned bits)
{
    return LLVMIntTypeInContext(c->cx, bits);
}

static LLVMValueRef trunc_to(struct cg *c, LLVMValueRef v, unsigned bits)
{
    return bits >= 64 ? v : LLVMBuildTrunc(c->b, v, ity(c, bits), "");
}

static LLVMValueRef zx(struct cg *c, LLVMValueRef v, unsigned bits)
{
    return bits >= 64 || bits == 0 ? v : LLVMBuildZExt(c->b, trunc_to(c, v, bits), c->i64, "");
}

static LLVMValueRef sx(struct cg *c, LLVMValueRef v, unsigned bits)
{
    return bits >= 64 || bits == 0 ? v : LLVMBuildSExt(c->b, trunc_to(c, v, bits), c->i64, "");
}

static LLVMValueRef ext(struct cg *c, LLVMValueRef v, unsigned t)
{
    return pt_signed(t) ? sx(c, v, pt_bits(t)) : zx(c, v, pt_bits(t));
}

static LLVMValueRef as_f32(struct cg *c, LLVMValueRef v)
{
    return LLVMBuildBitCast(c->b, trunc_to(c, v, 32), c->f32, "");
}

static LLVMValueRef as_f64(struct cg *c, LLVMValueRef v)
{
    return LLVMBuildBitCast(c->b, v, c->f64, "");
}

static LLVMValueRef of_f32(struct cg *c, LLVMValueRef f)
{
    return LLVMBuildZExt(c->b, LLVMBuildBitCast(c->b, f, c->i32, ""), c->i64, "");
}

static LLVMValueRef of_f64(struct cg *c, LLVMValueRef f)
{
    return LLVMBuildBitCast(c->b, f, c->i64, "");
}

static LLVMValueRef pred(struct cg *c, int32_t r, int neg)
{
    LLVMValueRef p = trunc_to(c, rd(c, r), 1);
    return neg ? LLVMBuildNot(c->b, p, "") : p;
}

static LLVMValueRef intrinsic(struct cg *c, const char *name, LLVMTypeRef ty,
                              LLVMValueRef *args, unsigned n)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->mod, id, &ty, 1);
    LLVMTypeRef fty = LLVMIntrinsicGetType(c->cx, id, &ty, 1);
    return LLVMBuildCall2(c->b, fty, f, args, n, "");
}

/* ---- exits and helpers ---------------------------------------------------------------- */

static void store_reg(struct cg *c, int32_t r);

/* Leaves the code; with `store`, the registers the interpreter may read from pc on (live
 * before pc or after it) go back to the register file first. */
static void exit_to(struct cg *c, unsigned status, uint32_t pc, int store)
{
    if (store && pc < c->pf->ncode) {
        const uint64_t *a = &c->live[(size_t)pc * c->lwords];
        const uint64_t *b = &c->live[(size_t)(pc + 1) * c->lwords];
        for (uint32_t r = 0; r < c->pf->nregs; r++)
            if (((a[r / 64] | b[r / 64]) >> (r % 64)) & 1)
                store_reg(c, (int32_t)r);
    }
    LLVMBuildStore(c->b, k64(c, ((uint64_t)status << 32) | pc), c->ret);
    LLVMBuildBr(c->b, c->exit_plain);
}

static void reload_cache(struct cg *c)
{
    LLVMValueRef gc = frame_ld(c, offsetof(struct jit_frame, gc), c->p64);
    for (unsigned i = 0; i < JIT_GSLOTS; i++)
        for (unsigned j = 0; j < 3; j++) {
            LLVMValueRef idx = k64(c, i * 3 + j);
            LLVMValueRef p = LLVMBuildInBoundsGEP2(c->b, c->i64, gc, &idx, 1, "");
            LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->i64, p, ""), c->gc[i][j]);
        }
}

static LLVMValueRef helper(struct cg *c, void *fp, LLVMTypeRef ret, LLVMTypeRef *pt,
                           unsigned n, LLVMValueRef *args)
{
    LLVMTypeRef fty = LLVMFunctionType(ret, pt, n, 0);
    LLVMValueRef f = LLVMConstIntToPtr(k64(c, (uint64_t)(uintptr_t)fp),
                                       LLVMPointerType(fty, 0));
    if (c->block_mode)
        LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->i64, c->lin, ""),
                       frame_at(c, offsetof(struct jit_frame, lin), c->i64));
    LLVMValueRef r = LLVMBuildCall2(c->b, fty, f, args, n, "");
    reload_cache(c);
    return r;
}

/* After a helper returned r: nonzero stops the code (registers stored for the interpreter). */
static void stop_if(struct cg *c, LLVMValueRef r, uint32_t pc, LLVMBasicBlockRef next)
{
    LLVMBasicBlockRef stop = new_bb(c, "stop");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, r, k64(c, 0), ""), stop, next);
    LLVMPositionBuilderAtEnd(c->b, stop);
    exit_to(c, JIT_STOP, pc, 1);
}

static void store_reg(struct cg *c, int32_t r)
{
    if (r >= 0 && c->ra[r])
        LLVMBuildStore(c->b, rd(c, r), reg_slot(c, r));
}

/* The interpreter executes instruction pc: its operands go to the register file first, its
 * results come back. */
static void emit_step(struct cg *c, uint32_t pc, const struct pins *in, LLVMBasicBlockRef next)
{
    for (unsigned i = 0; i < 5; i++)
        store_reg(c, in->s[i]);
    store_reg(c, in->areg);
    store_reg(c, in->guard);
    LLVMTypeRef pt[2] = {c->p8, c->i32};
    LLVMValueRef args[2] = {c->frame, k32(c, pc)};
    LLVMValueRef r = helper(c, (void *)c->h->step, c->i64, pt, 2, args);
    for (unsigned i = 0; i < 4; i++)
        if (in->d[i] >= 0 && c->ra[in->d[i]])
            LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->i64, reg_slot(c, in->d[i]), ""),
                           c->ra[in->d[i]]);
    stop_if(c, r, pc, next);
}

/* Counts `n` instructions; at backward branches, polls when the budget is spent. */
static void count(struct cg *c, uint64_t n)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, c->i64, c->cnt, "");
    LLVMBuildStore(c->b, LLVMBuildAdd(c->b, v, k64(c, n), ""), c->cnt);
}

static void spill_out(struct cg *c, uint64_t state, uint32_t pc);

/* Polls when the budget is spent; pc is where a yield resumes (UINT32_MAX: between two
 * threads of a block, where nothing yields). */
static void poll_point(struct cg *c, uint32_t pc, LLVMBasicBlockRef next)
{
    LLVMValueRef v = LLVMBuildLoad2(c->b, c->i64, c->cnt, "");
    LLVMValueRef budget = frame_ld(c, offsetof(struct jit_frame, budget), c->i64);
    LLVMBasicBlockRef slow = new_bb(c, "poll"), go = new_bb(c, "go");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntUGE, v, budget, ""), slow, next);
    LLVMPositionBuilderAtEnd(c->b, slow);
    LLVMTypeRef pt[3] = {c->p8, c->i32, c->i64};
    LLVMValueRef args[3] = {c->frame, k32(c, pc), v};
    LLVMValueRef r = helper(c, (void *)c->h->poll, c->i64, pt, 3, args);
    LLVMBuildStore(c->b, k64(c, 0), c->cnt);
    if (c->block_mode == JIT_PHASES) { /* the interpreter may go on with the block */
        LLVMBasicBlockRef stop = new_bb(c, "yield");
        LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntNE, r, k64(c, 0), ""), stop, go);
        LLVMPositionBuilderAtEnd(c->b, stop);
        if (pc != UINT32_MAX)
            spill_out(c, JIT_SPILL_RUN, pc);
        exit_to(c, JIT_STOP, pc, 0);
    } else {
        stop_if(c, r, pc, go);
    }
    LLVMPositionBuilderAtEnd(c->b, go);
    LLVMBuildBr(c->b, next);
}

/* ---- memory --------------------------------------------------------------------------- */

static LLVMValueRef addr_of(struct cg *c, const struct pins *in)
{
    LLVMValueRef a = k64(c, (uint64_t)in->aoff);
    if (in->areg >= 0) {
        LLVMValueRef r = rd(c, in->areg);
        a = LLVMBuildAdd(c->b, a, (in->flags & F_A32) ? zx(c, r, 32) : r, "");
    }
    if ((in->flags & F_ALOCAL) && in->space == SP_GENERIC) /* depth 1: local base 0 */
        a = LLVMBuildAdd(c->b, a, k64(c, LO_WIN), "");
    return a;
}

/* [base, base+size) holds [a, a+len) */
static LLVMValueRef in_range(struct cg *c, LLVMValueRef a, uint64_t len, LLVMValueRef base,
                             LLVMValueRef size)
{
    LLVMValueRef off = LLVMBuildSub(c->b, a, base, "");
    LLVMValueRef fits = LLVMBuildICmp(c->b, LLVMIntUGE, size, k64(c, len), "");
    LLVMValueRef lim = LLVMBuildSub(c->b, size, k64(c, len), "");
    return LLVMBuildAnd(c->b, fits, LLVMBuildICmp(c->b, LLVMIntULE, off, lim, ""), "");
}

static LLVMValueRef host_at(struct cg *c, LLVMValueRef host, LLVMValueRef off)
{
    return LLVMBuildInBoundsGEP2(c->b, c->i8, host, &off, 1, "");
}

/* The fast paths of an access of len bytes at a: aligned and inside the block's shared,
 * local or parameter area, or inside one of the cached global allocations; each branches to
 * `access` with its host pointer (added to the phi's lists), the rest goes on to the block
 * the builder is left in. */
static unsigned fast_paths(struct cg *c, int sp, LLVMValueRef a, uint64_t len,
                           LLVMValueRef aligned, LLVMBasicBlockRef access, LLVMValueRef *ptrs,
                           LLVMBasicBlockRef *from)
{
    unsigned n = 0;
    if (sp == SP_SHARED || sp == SP_LOCAL || sp == SP_PARAM) {
        LLVMValueRef base = sp == SP_SHARED ? c->shared : sp == SP_LOCAL ? c->local : c->param;
        LLVMValueRef size = sp == SP_SHARED ? c->shared_size
                          : sp == SP_LOCAL ? c->local_size : c->param_size;
        LLVMValueRef ok = LLVMBuildAnd(c->b, aligned, in_range(c, a, len, k64(c, 0), size), "");
        LLVMBasicBlockRef hit = new_bb(c, "in"), miss = new_bb(c, "out");
        LLVMBuildCondBr(c->b, ok, hit, miss);
        LLVMPositionBuilderAtEnd(c->b, hit);
        ptrs[n] = host_at(c, base, a);
        from[n++] = hit;
        LLVMBuildBr(c->b, access);
        LLVMPositionBuilderAtEnd(c->b, miss);
        return n;
    }
    /* the worker fills slots in the order the first thread reaches new allocations: the
     * k-th global access of the code tries slot k first */
    unsigned first = c->gaccess++;
    for (unsigned j = 0; j < JIT_GSLOTS; j++) {
        unsigned i = (first + j) % JIT_GSLOTS;
        LLVMValueRef base = LLVMBuildLoad2(c->b, c->i64, c->gc[i][0], "");
        LLVMValueRef size = LLVMBuildLoad2(c->b, c->i64, c->gc[i][1], "");
        LLVMValueRef ok = LLVMBuildAnd(c->b, aligned, in_range(c, a, len, base, size), "");
        LLVMBasicBlockRef hit = new_bb(c, "in"), miss = new_bb(c, "out");
        LLVMBuildCondBr(c->b, ok, hit, miss);
        LLVMPositionBuilderAtEnd(c->b, hit);
        LLVMValueRef host = LLVMBuildIntToPtr(
            c->b, LLVMBuildLoad2(c->b, c->i64, c->gc[i][2], ""), c->p8, "");
        ptrs[n] = host_at(c, host, LLVMBuildSub(c->b, a, base, ""));
        from[n++] = hit;
        LLVMBuildBr(c->b, access);
        LLVMPositionBuilderAtEnd(c->b, miss);
    }
    return n;
}

/* A member of a merged group (ptx_jit_merge.c): its leader checks the group's whole span
 * (aligned, inside the block's shared memory) for the base it sees and keeps that base, or
 * UINT64_MAX if the check fails (a 32-bit base never equals it); a member whose base equals
 * the one kept is inside the checked span, so it needs no check of its own. */
static LLVMValueRef merged_ok(struct cg *c, uint32_t pc, const struct pins *in)
{
    const struct jit_mgroup *g = &c->merge.g[c->merge.grp[pc]];
    LLVMValueRef kept = c->gbase[c->merge.grp[pc]];
    LLVMValueRef base = zx(c, rd(c, in->areg), 32);
    if (g->leader == pc) {
        LLVMValueRef lo = LLVMBuildAdd(c->b, base, k64(c, g->lo), "");
        LLVMValueRef hi = LLVMBuildAdd(c->b, base, k64(c, g->hi), "");
        LLVMValueRef ok = in_range(c, hi, g->len, k64(c, 0), c->shared_size);
        if (g->len > 1)
            ok = LLVMBuildAnd(c->b, ok, LLVMBuildICmp(c->b, LLVMIntEQ, LLVMBuildAnd(
                     c->b, lo, k64(c, g->len - 1), ""), k64(c, 0), ""), "");
        LLVMBuildStore(c->b, LLVMBuildSelect(c->b, ok, base, k64(c, UINT64_MAX), ""), kept);
    }
    return LLVMBuildICmp(c->b, LLVMIntEQ, base, LLVMBuildLoad2(c->b, c->i64, kept, ""), "");
}

/* Host pointer for the access of instruction pc (len bytes at a); off the fast paths, a
 * misaligned access is stepped by the interpreter (which reports it), any other is resolved
 * by the interpreter's memory check (which fills the cache, or fails the launch: the code
 * stops). The builder is left in the block that performs the access. */
static LLVMValueRef mem_ptr(struct cg *c, uint32_t pc, const struct pins *in, LLVMValueRef a,
                            uint64_t len, LLVMBasicBlockRef next)
{
    uint64_t off = (uint64_t)in->aoff;
    if (in->areg < 0 && !(in->flags & F_ALOCAL) && off % len == 0 &&
        ((in->space == SP_PARAM && off <= c->pf->frame_param &&
          len <= c->pf->frame_param - off) ||
         (in->space == SP_SHARED && off <= c->pf->shared_bytes &&
          len <= c->pf->shared_bytes - off))) /* inside an area of a size known here */
        return host_at(c, in->space == SP_PARAM ? c->param : c->shared, a);
    LLVMValueRef ptrs[JIT_GSLOTS + 2];
    LLVMBasicBlockRef from[JIT_GSLOTS + 2];
    LLVMBasicBlockRef access = new_bb(c, "access");
    unsigned n = 0;
    if (c->merge.grp[pc] >= 0) {
        LLVMBasicBlockRef hit = new_bb(c, "merged"), rest = new_bb(c, "unmerged");
        LLVMBuildCondBr(c->b, merged_ok(c, pc, in), hit, rest);
        LLVMPositionBuilderAtEnd(c->b, hit);
        ptrs[n] = host_at(c, c->shared, a);
        from[n++] = hit;
        LLVMBuildBr(c->b, access);
        LLVMPositionBuilderAtEnd(c->b, rest);
    }
    LLVMValueRef aligned = LLVMConstInt(c->i1, 1, 0);
    if (len > 1)
        aligned = LLVMBuildICmp(c->b, LLVMIntEQ, LLVMBuildAnd(c->b, a, k64(c, len - 1), ""),
                                k64(c, 0), "");
    n += fast_paths(c, in->space, a, len, aligned, access, ptrs + n, from + n);
    LLVMBasicBlockRef bad = new_bb(c, "misaligned"), resolve = new_bb(c, "resolve");
    LLVMBuildCondBr(c->b, aligned, resolve, bad);
    LLVMPositionBuilderAtEnd(c->b, bad);
    emit_step(c, pc, in, next);
    LLVMPositionBuilderAtEnd(c->b, resolve);
    LLVMTypeRef pt[5] = {c->p8, c->i32, c->i64, c->i64, c->i32};
    LLVMValueRef args[5] = {c->frame, k32(c, pc), a, k64(c, len), k32(c, in->space)};
    LLVMValueRef p = helper(c, (void *)c->h->mem, c->p8, pt, 5, args);
    LLVMBasicBlockRef fault = new_bb(c, "fault"), ok = new_bb(c, "resolved");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, p, LLVMConstNull(c->p8), ""), fault,
                    ok);
    LLVMPositionBuilderAtEnd(c->b, fault);
    exit_to(c, JIT_STOP, pc, 0);
    LLVMPositionBuilderAtEnd(c->b, ok);
    ptrs[n] = p;
    from[n++] = ok;
    LLVMBuildBr(c->b, access);
    LLVMPositionBuilderAtEnd(c->b, access);
    LLVMValueRef phi = LLVMBuildPhi(c->b, c->p8, "host");
    LLVMAddIncoming(phi, ptrs, from, n);
    return phi;
}

/* Parameters and constants do not change while a kernel runs (kernels with calls, the only
 * writers of the parameter space, are not translated): their loads may be hoisted. */
static void mark_invariant(struct cg *c, LLVMValueRef load)
{
    unsigned kind = LLVMGetMDKindIDInContext(c->cx, "invariant.load", 14);
    LLVMSetMetadata(load, kind, LLVMMDNodeInContext(c->cx, NULL, 0));
}

static void emit_ldst(struct cg *c, uint32_t pc, const struct pins *in, LLVMBasicBlockRef next)
{
    unsigned eb = pt_bits(in->type) / 8;
    if (eb == 0)
        eb = 1;
    uint64_t len = jit_access_len(in);
    LLVMValueRef p = mem_ptr(c, pc, in, addr_of(c, in), len, next);
    LLVMTypeRef et = ity(c, eb * 8);
    for (unsigned i = 0; i < in->vec; i++) {
        LLVMValueRef idx = k64(c, (uint64_t)i * eb);
        LLVMValueRef ep = LLVMBuildBitCast(c->b, host_at(c, p, idx), LLVMPointerType(et, 0), "");
        if (in->op == OP_ld) {
            LLVMValueRef v = LLVMBuildLoad2(c->b, et, ep, "");
            LLVMSetAlignment(v, eb);
            if (in->space == SP_PARAM || in->space == SP_CONST)
                mark_invariant(c, v);
            if (eb < 8)
                v = pt_signed(in->type) ? LLVMBuildSExt(c->b, v, c->i64, "")
                                        : LLVMBuildZExt(c->b, v, c->i64, "");
            wr(c, in->d[i], v);
        } else {
            LLVMValueRef s = LLVMBuildStore(c->b, trunc_to(c, rd(c, in->s[i]), eb * 8), ep);
            LLVMSetAlignment(s, eb);
        }
    }
    LLVMBuildBr(c->b, next);
}

/* Atomics the host does in one instruction: integer add/and/or/xor/exch/min/max/cas and
 * f32/f64 add, 32 or 64 bits (inc/dec and the rest are stepped). */
static int atom_native(const struct pins *in)
{
    unsigned t = in->type, bits = pt_bits(t);
    if ((bits != 32 && bits != 64) || pt_half(t) || in->vec > 1)
        return 0;
    switch (in->mod) {
    case ATOM_ADD: return 1;
    case ATOM_AND: case ATOM_OR: case ATOM_XOR: case ATOM_EXCH: case ATOM_CAS:
    case ATOM_MIN: case ATOM_MAX:
        return !pt_float(t);
    default: return 0;
    }
}

static LLVMAtomicRMWBinOp atom_op(const struct pins *in)
{
    int s = pt_signed(in->type);
    switch (in->mod) {
    case ATOM_ADD: return pt_float(in->type) ? LLVMAtomicRMWBinOpFAdd : LLVMAtomicRMWBinOpAdd;
    case ATOM_AND: return LLVMAtomicRMWBinOpAnd;
    case ATOM_OR: return LLVMAtomicRMWBinOpOr;
    case ATOM_XOR: return LLVMAtomicRMWBinOpXor;
    case ATOM_MIN: return s ? LLVMAtomicRMWBinOpMin : LLVMAtomicRMWBinOpUMin;
    case ATOM_MAX: return s ? LLVMAtomicRMWBinOpMax : LLVMAtomicRMWBinOpUMax;
    default: return LLVMAtomicRMWBinOpXchg;
    }
}

/* The new value of a plain read-modify-write (atom_op's operation on old and v). */
static LLVMValueRef rmw_value(struct cg *c, const struct pins *in, LLVMValueRef old,
                              LLVMValueRef v)
{
    int s = pt_signed(in->type);
    switch (in->mod) {
    case ATOM_ADD:
        return pt_float(in->type) ? LLVMBuildFAdd(c->b, old, v, "")
                                  : LLVMBuildAdd(c->b, old, v, "");
    case ATOM_AND: return LLVMBuildAnd(c->b, old, v, "");
    case ATOM_OR: return LLVMBuildOr(c->b, old, v, "");
    case ATOM_XOR: return LLVMBuildXor(c->b, old, v, "");
    case ATOM_MIN:
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, s ? LLVMIntSLT : LLVMIntULT, v, old, ""),
                               v, old, "");
    case ATOM_MAX:
        return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, s ? LLVMIntSGT : LLVMIntUGT, v, old, ""),
                               v, old, "");
    default: return v; /* exch */
    }
}

/* An atomic on shared memory: a block's shared memory is only ever touched by the one host
 * thread that runs the block (blocks are never split between host threads), and that thread
 * runs the block's threads one at a time, so a plain load and store is atomic here. */
static LLVMValueRef plain_atom(struct cg *c, const struct pins *in, LLVMValueRef q,
                               LLVMValueRef v, LLVMTypeRef vt, unsigned bits)
{
    LLVMValueRef old = LLVMBuildLoad2(c->b, vt, q, "");
    LLVMSetAlignment(old, bits / 8);
    LLVMValueRef nv;
    if (in->mod == ATOM_CAS) {
        LLVMValueRef n = trunc_to(c, rd(c, in->s[1]), bits);
        nv = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, old, v, ""), n, old, "");
    } else {
        nv = rmw_value(c, in, old, v);
    }
    LLVMSetAlignment(LLVMBuildStore(c->b, nv, q), bits / 8);
    return old;
}

/* atom/red: the interpreter's compare-and-swap loop as one host atomic (sequentially
 * consistent, as its CAS), or on shared memory a plain read-modify-write; the old value,
 * zero-extended, to d[0]. */
static void emit_atom(struct cg *c, uint32_t pc, const struct pins *in, LLVMBasicBlockRef next)
{
    unsigned bits = pt_bits(in->type);
    LLVMValueRef p = mem_ptr(c, pc, in, addr_of(c, in), bits / 8, next);
    LLVMTypeRef it = ity(c, bits);
    LLVMTypeRef vt = in->type == PT_F32 ? c->f32 : in->type == PT_F64 ? c->f64 : it;
    LLVMValueRef q = LLVMBuildBitCast(c->b, p, LLVMPointerType(vt, 0), "");
    LLVMValueRef v = trunc_to(c, rd(c, in->s[0]), bits), old;
    if (vt != it)
        v = LLVMBuildBitCast(c->b, v, vt, "");
    if (in->space == SP_SHARED) {
        old = plain_atom(c, in, q, v, vt, bits);
    } else if (in->mod == ATOM_CAS) {
        LLVMValueRef n = trunc_to(c, rd(c, in->s[1]), bits);
        LLVMValueRef x = LLVMBuildAtomicCmpXchg(c->b, q, v, n,
                                                LLVMAtomicOrderingSequentiallyConsistent,
                                                LLVMAtomicOrderingMonotonic, 0);
        old = LLVMBuildExtractValue(c->b, x, 0, "");
    } else {
        old = LLVMBuildAtomicRMW(c->b, atom_op(in), q, v,
                                 LLVMAtomicOrderingSequentiallyConsistent, 0);
    }
    if (vt != it)
        old = LLVMBuildBitCast(c->b, old, it, "");
    if (in->op == OP_atom)
        wr(c, in->d[0], bits < 64 ? LLVMBuildZExt(c->b, old, c->i64, "") : old);
    LLVMBuildBr(c->b, next);
}

/* ---- arithmetic ----------------------------------------------------------------------- */

static int directed(int rnd) { return rnd == RND_RZ || rnd == RND_RM || rnd == RND_RP; }

/* f32 without ftz/sat and f64, round-to-nearest: what LLVM's float ops do */
static int plain_float(const struct pins *in)
{
    if (directed(in->mod))
        return 0;
    if (in->type == PT_F64)
        return 1;
    return in->type == PT_F32 && !(in->flags & (F_FTZ | F_SAT));
}

static LLVMValueRef fop(struct cg *c, const struct pins *in)
{
    int d = in->type == PT_F64;
    LLVMValueRef x = d ? as_f64(c, rd(c, in->s[0])) : as_f32(c, rd(c, in->s[0]));
    LLVMValueRef y = d ? as_f64(c, rd(c, in->s[1])) : as_f32(c, rd(c, in->s[1]));
    LLVMValueRef r;
    switch (in->op) {
    case OP_add: r = LLVMBuildFAdd(c->b, x, y, ""); break;
    case OP_sub: r = LLVMBuildFSub(c->b, x, y, ""); break;
    case OP_mul: r = LLVMBuildFMul(c->b, x, y, ""); break;
    case OP_div: r = LLVMBuildFDiv(c->b, x, y, ""); break;
    case OP_min: case OP_max: {
        LLVMValueRef a[2] = {x, y};
        r = intrinsic(c, in->op == OP_min ? "llvm.minnum" : "llvm.maxnum", d ? c->f64 : c->f32,
                      a, 2);
        break;
    }
    default: { /* fma, mad */
        LLVMValueRef a[3] = {x, y, d ? as_f64(c, rd(c, in->s[2])) : as_f32(c, rd(c, in->s[2]))};
        r = intrinsic(c, "llvm.fma", d ? c->f64 : c->f32, a, 3);
        break;
    }
    }
    return d ? of_f64(c, r) : of_f32(c, r);
}

/* mul.hi / mul.wide / mul.lo on the interpreter's 64-bit values */
static LLVMValueRef imul(struct cg *c, const struct pins *in)
{
    LLVMValueRef a = rd(c, in->s[0]), b = rd(c, in->s[1]);
    unsigned bits = pt_bits(in->type);
    int s = pt_signed(in->type);
    if (!(in->flags & (F_HI | F_WIDE)))
        return LLVMBuildMul(c->b, a, b, "");
    if (bits == 64) { /* hi only */
        LLVMTypeRef i128 = ity(c, 128);
        LLVMValueRef x = s ? LLVMBuildSExt(c->b, a, i128, "") : LLVMBuildZExt(c->b, a, i128, "");
        LLVMValueRef y = s ? LLVMBuildSExt(c->b, b, i128, "") : LLVMBuildZExt(c->b, b, i128, "");
        LLVMValueRef p = LLVMBuildMul(c->b, x, y, "");
        return LLVMBuildTrunc(c->b, LLVMBuildLShr(c->b, p, LLVMConstInt(i128, 64, 0), ""),
                              c->i64, "");
    }
    LLVMValueRef x = s ? sx(c, a, bits) : zx(c, a, bits);
    LLVMValueRef y = s ? sx(c, b, bits) : zx(c, b, bits);
    LLVMValueRef p = LLVMBuildMul(c->b, x, y, "");
    if (in->flags & F_WIDE)
        return p;
    return s ? LLVMBuildAShr(c->b, p, k64(c, bits), "") : LLVMBuildLShr(c->b, p, k64(c, bits), "");
}

static LLVMValueRef shift(struct cg *c, const struct pins *in)
{
    unsigned bits = pt_bits(in->type);
    LLVMValueRef n = zx(c, rd(c, in->s[1]), 32);
    LLVMValueRef big = LLVMBuildICmp(c->b, LLVMIntUGE, n, k64(c, bits), "");
    LLVMValueRef a = rd(c, in->s[0]);
    if (in->op == OP_shl) {
        LLVMValueRef sh = LLVMBuildSelect(c->b, big, k64(c, 0), n, "");
        return LLVMBuildSelect(c->b, big, k64(c, 0), LLVMBuildShl(c->b, a, sh, ""), "");
    }
    if (pt_signed(in->type)) {
        LLVMValueRef sh = LLVMBuildSelect(c->b, big, k64(c, bits - 1), n, "");
        return LLVMBuildAShr(c->b, sx(c, a, bits), sh, "");
    }
    LLVMValueRef sh = LLVMBuildSelect(c->b, big, k64(c, 0), n, "");
    return LLVMBuildSelect(c->b, big, k64(c, 0), LLVMBuildLShr(c->b, zx(c, a, bits), sh, ""),
                           "");
}

static LLVMValueRef minmax(struct cg *c, const struct pins *in)
{
    unsigned bits = pt_bits(in->type);
    int s = pt_signed(in->type);
    LLVMValueRef a = s ? sx(c, rd(c, in->s[0]), bits) : zx(c, rd(c, in->s[0]), bits);
    LLVMValueRef b = s ? sx(c, rd(c, in->s[1]), bits) : zx(c, rd(c, in->s[1]), bits);
    LLVMIntPredicate p = in->op == OP_max ? (s ? LLVMIntSGT : LLVMIntUGT)
                                          : (s ? LLVMIntSLT : LLVMIntULT);
    return LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, p, a, b, ""), a, b, "");
}

static LLVMValueRef compare(struct cg *c, int cmp, unsigned t, LLVMValueRef a, LLVMValueRef b)
{
    if (t == PT_F32 || t == PT_F64) {
        static const LLVMRealPredicate fp[] = {
            [CMP_EQ] = LLVMRealOEQ, [CMP_NE] = LLVMRealONE, [CMP_LT] = LLVMRealOLT,
            [CMP_LE] = LLVMRealOLE, [CMP_GT] = LLVMRealOGT, [CMP_GE] = LLVMRealOGE,
            [CMP_EQU] = LLVMRealUEQ, [CMP_NEU] = LLVMRealUNE, [CMP_LTU] = LLVMRealULT,
            [CMP_LEU] = LLVMRealULE, [CMP_GTU] = LLVMRealUGT, [CMP_GEU] = LLVMRealUGE,
            [CMP_NUM] = LLVMRealORD, [CMP_NAN] = LLVMRealUNO,
        };
        if (cmp < CMP_EQ || cmp > CMP_NAN || (cmp >= CMP_LO && cmp <= CMP_HS))
            return LLVMConstInt(c->i1, 0, 0);
        int d = t == PT_F64;
        return LLVMBuildFCmp(c->b, fp[cmp], d ? as_f64(c, a) : as_f32(c, a),
                             d ? as_f64(c, b) : as_f32(c, b), "");
    }
    unsigned bits = pt_bits(t);
    if (pt_signed(t) && cmp >= CMP_EQ && cmp <= CMP_GE) {
        static const LLVMIntPredicate sp[] = {
            [CMP_EQ] = LLVMIntEQ, [CMP_NE] = LLVMIntNE, [CMP_LT] = LLVMIntSLT,
            [CMP_LE] = LLVMIntSLE, [CMP_GT] = LLVMIntSGT, [CMP_GE] = LLVMIntSGE,
        };
        return LLVMBuildICmp(c->b, sp[cmp], sx(c, a, bits), sx(c, b, bits), "");
    }
    static const LLVMIntPredicate up[] = {
        [CMP_EQ] = LLVMIntEQ, [CMP_NE] = LLVMIntNE, [CMP_LT] = LLVMIntULT,
        [CMP_LE] = LLVMIntULE, [CMP_GT] = LLVMIntUGT, [CMP_GE] = LLVMIntUGE,
        [CMP_LO] = LLVMIntULT, [CMP_LS] = LLVMIntULE, [CMP_HI] = LLVMIntUGT,
        [CMP_HS] = LLVMIntUGE,
    };
    if (cmp < CMP_EQ || cmp > CMP_HS)
        return LLVMConstInt(c->i1, 0, 0);
    return LLVMBuildICmp(c->b, up[cmp], zx(c, a, bits), zx(c, b, bits), "");
}

static LLVMValueRef bop(struct cg *c, int op, LLVMValueRef a, LLVMValueRef b)
{
    switch (op) {
    case BOP_AND: return LLVMBuildAnd(c->b, a, b, "");
    case BOP_OR: return LLVMBuildOr(c->b, a, b, "");
    case BOP_XOR: return LLVMBuildXor(c->b, a, b, "");
    default: return a;
    }
}

static void emit_setp(struct cg *c, const struct pins *in)
{
    LLVMValueRef p = compare(c, in->mod, in->type, rd(c, in->s[0]), rd(c, in->s[1]));
    LLVMValueRef q = LLVMBuildNot(c->b, p, "");
    LLVMValueRef k = LLVMConstInt(c->i1, 1, 0);
    if (in->mod2)
        k = pred(c, in->s[2], (in->flags & F_NEGSRC) != 0);
    wr(c, in->d[0], LLVMBuildZExt(c->b, bop(c, in->mod2, p, k), c->i64, ""));
    wr(c, in->d[1], LLVMBuildZExt(c->b, bop(c, in->mod2, q, k), c->i64, ""));
}

static LLVMValueRef cvt(struct cg *c, const struct pins *in)
{
    unsigned dt = in->type, st = in->type2;
    LLVMValueRef v = rd(c, in->s[0]);
    if (!pt_float(dt) && !pt_float(st))
        return pt_bits(dt) < pt_bits(st) ? ext(c, v, dt) : ext(c, v, st);
    if (!pt_float(st)) { /* int -> f32/f64 */
        LLVMTypeRef ft = dt == PT_F64 ? c->f64 : c->f32;
        LLVMValueRef f = pt_signed(st) ? LLVMBuildSIToFP(c->b, ext(c, v, st), ft, "")
                                       : LLVMBuildUIToFP(c->b, ext(c, v, st), ft, "");
        return dt == PT_F64 ? of_f64(c, f) : of_f32(c, f);
    }
    if (st == PT_F32) /* to f64 */
        return of_f64(c, LLVMBuildFPExt(c->b, as_f32(c, v), c->f64, ""));
    return of_f32(c, LLVMBuildFPTrunc(c->b, as_f64(c, v), c->f32, "")); /* f64 -> f32 */
}

static int cvt_native(const struct pins *in)
{
    unsigned dt = in->type, st = in->type2;
    if (in->mod2 || (in->flags & (F_FTZ | F_SAT)))
        return 0;
    if (!pt_float(dt) && !pt_float(st))
        return pt_bits(dt) && pt_bits(st) && dt != PT_PRED && st != PT_PRED;
    if (in->mod != RND_NONE && in->mod != RND_RN)
        return 0;
    if (!pt_float(st))
        return (dt == PT_F32 || dt == PT_F64) && pt_bits(st) && st != PT_PRED;
    return (st == PT_F32 && dt == PT_F64) || (st == PT_F64 && dt == PT_F32);
}

static int int_type(unsigned t)
{
    return !pt_float(t) && pt_bits(t) >= 8;
}

/* Whether the instruction is translated (else the interpreter steps it). */
static int native(const struct pins *in)
{
    unsigned t = in->type;
    switch (in->op) {
    case OP_nop:
        return 1;
    case OP_mov:
        return in->mod2 == 0 || (in->vec >= 1 && in->vec <= 4 && pt_bits(t) >= in->vec);
    case OP_ld: case OP_st:
        return in->vec >= 1 && in->vec <= 4 && in->space != SP_NONE;
    case OP_cvta:
        return in->space == SP_SHARED || in->space == SP_LOCAL || in->space == SP_GLOBAL ||
               in->space == SP_CONST;
    case OP_cvt:
        return cvt_native(in);
    case OP_add: case OP_sub:
        return pt_float(t) ? plain_float(in) : int_type(t) && !(in->flags & (F_SAT | F_CC));
    case OP_mul:
        return pt_float(t) ? plain_float(in) : int_type(t);
    case OP_mad:
        return pt_float(t) ? plain_float(in) : int_type(t) && !(in->flags & (F_SAT | F_CC));
    case OP_fma:
        return plain_float(in);
    case OP_div:
        return pt_float(t) && plain_float(in);
    case OP_min: case OP_max:
        return pt_float(t) ? plain_float(in) : int_type(t);
    case OP_abs: case OP_neg:
        return t == PT_F32 || t == PT_F64 || int_type(t);
    case OP_and: case OP_or: case OP_xor: case OP_not: case OP_cnot:
        return pt_bits(t) != 0;
    case OP_shl: case OP_shr:
        return int_type(t);
    case OP_setp:
        return t == PT_F32 || t == PT_F64 || int_type(t);
    case OP_selp:
        return 1;
    default:
        return 0;
    }
}

static LLVMValueRef absneg(struct cg *c, const struct pins *in)
{
    LLVMValueRef v = rd(c, in->s[0]);
    unsigned t = in->type;
    if (in->op == OP_abs) {
        if (t == PT_F32)
            return LLVMBuildAnd(c->b, v, k64(c, 0x7fffffffu), "");
        if (t == PT_F64)
            return LLVMBuildAnd(c->b, v, k64(c, 0x7fffffffffffffffull), "");
        LLVMValueRef a = sx(c, v, pt_bits(t));
        LLVMValueRef neg = LLVMBuildICmp(c->b, LLVMIntSLT, a, k64(c, 0), "");
        return LLVMBuildSelect(c->b, neg, LLVMBuildSub(c->b, k64(c, 0), a, ""), a, "");
    }
    if (t == PT_F32)
        return LLVMBuildAnd(c->b, LLVMBuildXor(c->b, v, k64(c, 0x80000000u), ""),
                            k64(c, 0xffffffffu), "");
    if (t == PT_F64)
        return LLVMBuildXor(c->b, v, k64(c, 0x8000000000000000ull), "");
    return LLVMBuildSub(c->b, k64(c, 0), v, "");
}

static void emit_mov(struct cg *c, const struct pins *in)
{
    if (in->mod2 == 0) {
        wr(c, in->d[0], rd(c, in->s[0]));
        return;
    }
    unsigned eb = pt_bits(in->type) / in->vec;
    if (in->mod2 == 2) { /* pack */
        LLVMValueRef v = k64(c, 0);
        for (unsigned i = 0; i < in->vec; i++)
            v = LLVMBuildOr(c->b, v, LLVMBuildShl(c->b, zx(c, rd(c, in->s[i]), eb),
                                                  k64(c, i * eb), ""), "");
        wr(c, in->d[0], v);
        return;
    }
    LLVMValueRef v = rd(c, in->s[0]);
    for (unsigned i = 0; i < in->vec; i++)
        wr(c, in->d[i], zx(c, LLVMBuildLShr(c->b, v, k64(c, i * eb), ""), eb));
}

/* One translated ALU instruction (native(in) said yes; not ld/st). */
static void emit_alu(struct cg *c, const struct pins *in)
{
    unsigned t = in->type;
    LLVMValueRef r = NULL;
    switch (in->op) {
    case OP_nop: return;
    case OP_mov: emit_mov(c, in); return;
    case OP_setp: emit_setp(c, in); return;
    case OP_cvta: {
        LLVMValueRef a = rd(c, in->s[0]);
        uint64_t base = in->space == SP_SHARED ? SH_WIN : in->space == SP_LOCAL ? LO_WIN : 0;
        if (pt_bits(t) == 32)
            a = zx(c, a, 32);
        r = in->mod2 ? LLVMBuildSub(c->b, a, k64(c, base), "")
                     : LLVMBuildAdd(c->b, a, k64(c, base), "");
        break;
    }
    case OP_cvt: r = cvt(c, in); break;
    case OP_add: case OP_sub:
        if (pt_float(t))
            r = fop(c, in);
        else if (in->op == OP_add)
            r = LLVMBuildAdd(c->b, rd(c, in->s[0]), rd(c, in->s[1]), "");
        else
            r = LLVMBuildSub(c->b, rd(c, in->s[0]), rd(c, in->s[1]), "");
        break;
    case OP_mul: r = pt_float(t) ? fop(c, in) : imul(c, in); break;
    case OP_mad:
        r = pt_float(t) ? fop(c, in) : LLVMBuildAdd(c->b, imul(c, in), rd(c, in->s[2]), "");
        break;
    case OP_fma: case OP_div: r = fop(c, in); break;
    case OP_min: case OP_max: r = pt_float(t) ? fop(c, in) : minmax(c, in); break;
    case OP_abs: case OP_neg: r = absneg(c, in); break;
    case OP_and: r = LLVMBuildAnd(c->b, rd(c, in->s[0]), rd(c, in->s[1]), ""); break;
    case OP_or: r = LLVMBuildOr(c->b, rd(c, in->s[0]), rd(c, in->s[1]), ""); break;
    case OP_xor: r = LLVMBuildXor(c->b, rd(c, in->s[0]), rd(c, in->s[1]), ""); break;
    case OP_not:
        r = LLVMBuildNot(c->b, rd(c, in->s[0]), "");
        if (t == PT_PRED)
            r = LLVMBuildAnd(c->b, r, k64(c, 1), "");
        break;
    case OP_cnot:
        r = LLVMBuildZExt(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, zx(c, rd(c, in->s[0]),
                                              pt_bits(t)), k64(c, 0), ""), c->i64, "");
        break;
    case OP_shl: case OP_shr: r = shift(c, in); break;
    case OP_selp:
        r = LLVMBuildSelect(c->b, pred(c, in->s[2], (in->flags & F_NEGSRC) != 0),
                            rd(c, in->s[0]), rd(c, in->s[1]), "");
        break;
    default: return;
    }
    wr(c, in->d[0], r);
}

/* ---- control flow and the instruction loop -------------------------------------------- */

/* Instructions a thread executes on its own registers, its carry and memory alone, so that
 * translated code may run them (natively, or stepped by the interpreter on its registers): an
 * allow-list, so an opcode added to the engine later (or one whose semantics become more than
 * that, as cp.async's may with asynchronous groups) hands back to the interpreter until it is
 * added here. Not here: barriers and warp collectives (modes handle them), calls (refused),
 * cp.async, unsupported instructions. */
static int per_thread(unsigned op)
{
    switch (op) {
    case OP_nop: case OP_mov: case OP_movlocal: case OP_ld: case OP_st: case OP_cvta:
    case OP_cvt: case OP_add: case OP_sub: case OP_mul: case OP_mad: case OP_mul24:
    case OP_mad24: case OP_div: case OP_rem: case OP_abs: case OP_neg: case OP_min:
    case OP_max: case OP_and: case OP_or: case OP_xor: case OP_not: case OP_cnot: case OP_shl:
    case OP_shr: case OP_setp: case OP_selp: case OP_set: case OP_slct: case OP_bra:
    case OP_ret: case OP_exit: case OP_membar: case OP_atom: case OP_red: case OP_popc:
    case OP_clz: case OP_brev: case OP_bfe: case OP_bfi: case OP_bfind: case OP_prmt:
    case OP_shf: case OP_fma: case OP_sqrt: case OP_rsqrt: case OP_rcp: case OP_ex2:
    case OP_lg2: case OP_sin: case OP_cos: case OP_tanh: case OP_testp: case OP_copysign:
    case OP_trap: case OP_clock: case OP_addc: case OP_subc: case OP_madc: case OP_sad:
    case OP_isspacep: case OP_prefetch: case OP_nanosleep: case OP_dp4a: case OP_dp2a:
    case OP_lop3: case OP_brkpt: case OP_bmsk:
        return 1;
    default:
        return 0;
    }
}

/* Whether translated code hands the instruction to the interpreter (JIT_INTERP): it waits for
 * other threads, or it is not on the allow-list above. */
static int blocking(const struct pins *in)
{
    switch (in->op) {
    case OP_bar: return in->mod2 == 0;
    case OP_ld: case OP_st: return (in->flags & F_LOCKSTEP) != 0;
    default: return !per_thread(in->op);
    }
}

/* ---- phase mode: spill records ------------------------------------------------------ */

static LLVMValueRef spill_slot(struct cg *c, uint64_t k)
{
    LLVMValueRef sp = LLVMBuildLoad2(c->b, c->p64, c->sp, "");
    LLVMValueRef idx = k64(c, k);
    return LLVMBuildInBoundsGEP2(c->b, c->i64, sp, &idx, 1, "");
}

/* Whether register r is live before instruction pc (none past the end). */
static int live_at(struct cg *c, uint32_t pc, int32_t r)
{
    return pc <= c->pf->ncode && ((c->live[(size_t)pc * c->lwords + r / 64] >> (r % 64)) & 1);
}

/* The thread stops in `state`, its record saying pc: the record keeps the registers live
 * there (a collective: also those live after it, its results aside); the others are dead,
 * so neither the code nor the interpreter (jit_coll, jit_handoff_phases) reads them. */
static void spill_out(struct cg *c, uint64_t state, uint32_t pc)
{
    for (uint32_t k = 0; k < c->nspill; k++)
        if (live_at(c, pc, c->spill[k]) ||
            (state == JIT_SPILL_COLL && live_at(c, pc + 1, c->spill[k])))
            LLVMBuildStore(c->b, rd(c, c->spill[k]), spill_slot(c, JIT_REC_HEAD + k));
    LLVMBuildStore(c->b, k64(c, pc), spill_slot(c, 1));
    LLVMBuildStore(c->b, k64(c, state), spill_slot(c, 0));
}

/* Resuming at pc: the registers live there come back from the record. */
static void spill_in(struct cg *c, uint32_t pc)
{
    for (uint32_t k = 0; k < c->nspill; k++)
        if (live_at(c, pc, c->spill[k]))
            LLVMBuildStore(c->b,
                           LLVMBuildLoad2(c->b, c->i64, spill_slot(c, JIT_REC_HEAD + k), ""),
                           c->ra[c->spill[k]]);
}

static void emit_exit(struct cg *c, uint32_t pc)
{
    if (c->block_mode == JIT_PHASES)
        LLVMBuildStore(c->b, k64(c, JIT_SPILL_EXITED), spill_slot(c, 0));
    if (c->block_mode)
        LLVMBuildBr(c->b, c->next_thread);
    else
        exit_to(c, JIT_EXIT, pc, 0);
}

/* Phase mode: the thread waits at the block's barrier; the next round resumes it. */
static void emit_phase_bar(struct cg *c, uint32_t pc)
{
    spill_out(c, JIT_SPILL_BAR, pc + 1);
    LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->i64, c->round, ""), spill_slot(c, 2));
    LLVMBuildStore(c->b, LLVMConstInt(c->i1, 1, 0), c->waiting);
    LLVMBuildBr(c->b, c->next_thread);
}

/* Phase mode: the lane waits at a warp collective, resolved (by the interpreter's code, on
 * the lanes' records) when every lane of its warp has stopped. */
static void emit_phase_coll(struct cg *c, uint32_t pc)
{
    spill_out(c, JIT_SPILL_COLL, pc);
    LLVMBuildStore(c->b, LLVMConstInt(c->i1, 1, 0), c->coll);
    LLVMBuildBr(c->b, c->next_thread);
}

static int collective(const struct pins *in)
{
    switch (in->op) {
    case OP_shfl: case OP_vote: case OP_redux: case OP_activemask: case OP_warpsync:
    case OP_match:
        return 1;
    default:
        return 0;
    }
}

static void emit_ins(struct cg *c, uint32_t pc)
{
    const struct pins *in = &c->pf->code[pc];
    LLVMBasicBlockRef next = c->bb[pc + 1];
    count(c, 1);
    if (in->guard >= 0) {
        LLVMBasicBlockRef body = new_bb(c, "do");
        LLVMBuildCondBr(c->b, pred(c, in->guard, in->gneg), body, next);
        LLVMPositionBuilderAtEnd(c->b, body);
    }
    if (in->op == OP_bra) {
        uint32_t tgt = (uint32_t)in->target;
        if (tgt <= pc) /* a yield there resumes at the target */
            poll_point(c, tgt, c->bb[tgt]);
        else
            LLVMBuildBr(c->b, c->bb[tgt]);
    } else if (in->op == OP_exit || in->op == OP_ret) {
        emit_exit(c, pc);
    } else if (in->op == OP_bar && c->block_mode == JIT_PHASES) {
        emit_phase_bar(c, pc);
    } else if (collective(in) && c->block_mode == JIT_PHASES) {
        emit_phase_coll(c, pc);
    } else if (in->op == OP_bar && in->mod2 == 0) {
        LLVMValueRef id = LLVMBuildAnd(c->b, rd(c, in->s[0]), k64(c, 15), "");
        LLVMBuildStore(c->b, id, frame_at(c, FOFF(bar_id), c->i64));
        LLVMValueRef n = in->s[1] >= 0 ? zx(c, rd(c, in->s[1]), 32) : k64(c, 0);
        LLVMBuildStore(c->b, n, frame_at(c, FOFF(bar_count), c->i64));
        exit_to(c, JIT_BAR, pc, 1);
    } else if (blocking(in)) {
        exit_to(c, JIT_INTERP, pc, 1);
    } else if (in->op == OP_ld || in->op == OP_st) {
        emit_ldst(c, pc, in, next);
    } else if ((in->op == OP_atom || in->op == OP_red) && atom_native(in)) {
        emit_atom(c, pc, in, next);
    } else if (native(in)) {
        emit_alu(c, in);
        LLVMBuildBr(c->b, next);
    } else {
        emit_step(c, pc, in, next);
    }
}

/* ---- whole functions ------------------------------------------------------------------ */

/* Registers never written by an instruction, nor filled at thread start, are constants. */
static uint8_t *written_regs(const struct pfunc *f)
{
    uint8_t *w = calloc(f->nregs ? f->nregs : 1, 1);
    if (!w)
        return NULL;
    for (uint32_t i = 0; i < f->ncode; i++)
        for (unsigned j = 0; j < 4; j++)
            if (f->code[i].d[j] >= 0 && (uint32_t)f->code[i].d[j] < f->nregs)
                w[f->code[i].d[j]] = 1;
    for (unsigned i = 0; i < f->nsr; i++)
        w[f->sreg[f->srlist[i]]] = 2; /* special: filled at start */
    for (uint32_t i = 0; i < f->npatches; i++)
        w[f->patches[i].reg] = 3;     /* module addresses: bound after load */
    return w;
}

/* A plain __syncthreads: bar.sync/barrier.sync 0 without a thread count. */
static int plain_barrier(const struct pfunc *f, const struct pins *in, const uint8_t *w)
{
    return in->op == OP_bar && in->mod2 == 0 && in->s[1] < 0 && in->s[0] >= 0 &&
           !w[in->s[0]] && f->reg_init[in->s[0]] == 0;
}

/* A warp collective phase mode hands to the interpreter's code: its operands are registers
 * the code writes, or constants (the lanes' records hold the first). */
static int phase_collective(const struct pins *in, const uint8_t *w)
{
    if (!collective(in))
        return 0;
    for (unsigned j = 0; j < 5; j++)
        if (in->s[j] >= 0 && w[in->s[j]] > 1)
            return 0;
    for (unsigned j = 0; j < 4; j++)
        if (in->d[j] >= 0 && w[in->d[j]] != 1)
            return 0;
    return in->guard < 0 || w[in->guard] <= 1;
}

/* Kernels longer than this stay in the interpreter: LLVM's time and memory grow with the
 * code (a few tenths of a CPU second for the hundred-odd instructions of a tiled matmul, whose
 * unrolled shared-memory accesses each carry a check) and nothing interrupts a compilation. */
#define JIT_MAX_INSTRUCTIONS 20000u

/* Why the kernel stays in the interpreter, or NULL; *mode: how its translation runs. */
static const char *refusal(const struct pfunc *f, int *mode)
{
    if (f->ncode > JIT_MAX_INSTRUCTIONS)
        return "more than 20000 instructions";
    int block = f->local_bytes == 0, barriers = 0;
    uint8_t *w = written_regs(f);
    if (!w)
        return "out of host memory";
    for (uint32_t i = 0; i < f->ncode; i++) {
        const struct pins *in = &f->code[i];
        if (in->op == OP_call) {
            free(w);
            return "calls";
        }
        /* Warp-wide tensor-core forms wait for the whole warp and keep their fragment
         * registers in pfunc.mmas, which the single-instruction hand-over does not sync. */
        if (in->op == OP_mma) {
            free(w);
            return "tensor-core instructions";
        }
        if (plain_barrier(f, in, w) || phase_collective(in, w))
            barriers = 1;
        else if (blocking(in) || in->op == OP_bar || in->op == OP_movlocal ||
                 in->op == OP_clock || in->space == SP_LOCAL || (in->flags & F_ALOCAL))
            block = 0;
    }
    for (unsigned i = 0; i < f->nsr; i++) {
        int s = f->srlist[i];
        if (!(s <= SR_NCTAID_Z || s == SR_DYNSMEM || s == SR_TOTALSMEM || s == SR_DYNBASE))
            block = 0;
    }
    free(w);
    *mode = !block ? JIT_THREAD : barriers ? JIT_PHASES : JIT_BLOCK;
    return NULL;
}

static void make_types(struct cg *c)
{
    c->i1 = LLVMInt1TypeInContext(c->cx);
    c->i8 = LLVMInt8TypeInContext(c->cx);
    c->i16 = LLVMInt16TypeInContext(c->cx);
    c->i32 = LLVMInt32TypeInContext(c->cx);
    c->i64 = LLVMInt64TypeInContext(c->cx);
    c->f32 = LLVMFloatTypeInContext(c->cx);
    c->f64 = LLVMDoubleTypeInContext(c->cx);
    c->p8 = LLVMPointerType(c->i8, 0);
    c->p64 = LLVMPointerType(c->i64, 0);
}

/* Entry block: allocas and the frame's invariant fields. */
static void emit_prologue(struct cg *c, const uint8_t *w)
{
    const struct pfunc *f = c->pf;
    c->cnt = LLVMBuildAlloca(c->b, c->i64, "cnt");
    c->ret = LLVMBuildAlloca(c->b, c->i64, "ret");
    c->lin = LLVMBuildAlloca(c->b, c->i64, "lin");
    for (unsigned i = 0; i < JIT_GSLOTS; i++)
        for (unsigned j = 0; j < 3; j++)
            c->gc[i][j] = LLVMBuildAlloca(c->b, c->i64, "gc");
    for (uint32_t r = 0; r < f->nregs; r++)
        c->ra[r] = w[r] ? LLVMBuildAlloca(c->b, c->i64, "r") : NULL;
    for (uint32_t g = 0; g < c->merge.n; g++) {
        c->gbase[g] = LLVMBuildAlloca(c->b, c->i64, "merged_base");
        LLVMBuildStore(c->b, k64(c, UINT64_MAX), c->gbase[g]);
    }
    LLVMBuildStore(c->b, k64(c, 0), c->cnt);
    LLVMBuildStore(c->b, k64(c, 0), c->lin);
    c->regs = frame_ld(c, FOFF(regs), c->p64);
    c->shared = frame_ld(c, FOFF(shared), c->p8);
    c->shared_size = frame_ld(c, FOFF(shared_size), c->i64);
    c->local = frame_ld(c, FOFF(local), c->p8);
    c->local_size = frame_ld(c, FOFF(local_size), c->i64);
    c->param = frame_ld(c, FOFF(param), c->p8);
    c->param_size = frame_ld(c, FOFF(param_size), c->i64);
    reload_cache(c);
}

static void emit_exits(struct cg *c)
{
    c->exit_plain = new_bb(c, "exit");
    LLVMPositionBuilderAtEnd(c->b, c->exit_plain);
    LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->i64, c->cnt, ""),
                   frame_at(c, FOFF(icount), c->i64));
    LLVMBuildRet(c->b, LLVMBuildLoad2(c->b, c->i64, c->ret, ""));
}

/* Per-thread mode: registers from the register file, then to the instruction at pc (pc 0,
 * after a blocking instruction, at a backward branch's target); elsewhere the interpreter. */
static void emit_dispatch(struct cg *c, const uint8_t *w)
{
    const struct pfunc *f = c->pf;
    LLVMBasicBlockRef other = new_bb(c, "no_entry");
    LLVMValueRef pc = LLVMGetParam(c->fn, 1);
    unsigned n = 0;
    for (uint32_t i = 0; i <= f->ncode; i++)
        n += c->entry[i];
    LLVMValueRef sw = LLVMBuildSwitch(c->b, pc, other, n);
    for (uint32_t i = 0; i <= f->ncode; i++) {
        if (!c->entry[i])
            continue;
        LLVMBasicBlockRef in = new_bb(c, "enter");
        LLVMAddCase(sw, k32(c, i), in);
        LLVMPositionBuilderAtEnd(c->b, in);
        const uint64_t *lv = &c->live[(size_t)i * c->lwords];
        for (uint32_t r = 0; r < f->nregs; r++)
            if (w[r] && ((lv[r / 64] >> (r % 64)) & 1))
                LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->i64, reg_slot(c, (int32_t)r), ""),
                               c->ra[r]);
        LLVMBuildBr(c->b, c->bb[i]);
    }
    LLVMPositionBuilderAtEnd(c->b, other);
    LLVMBuildStore(c->b, LLVMBuildOr(c->b, LLVMBuildZExt(c->b, pc, c->i64, ""),
                                     k64(c, (uint64_t)JIT_INTERP << 32), ""), c->ret);
    LLVMBuildBr(c->b, c->exit_plain);
}

/* Block modes: what a thread starts (or resumes) with: module addresses, its special
 * registers (from its index) and, when it starts, the register file's template. */
static void emit_thread_regs(struct cg *c, const uint8_t *w, LLVMValueRef *tid, int start)
{
    const struct pfunc *f = c->pf;
    for (uint32_t r = 0; r < f->nregs; r++) {
        if (w[r] == 3)
            LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->i64, reg_slot(c, (int32_t)r), ""),
                           c->ra[r]);
        else if (w[r] == 1 && start)
            LLVMBuildStore(c->b, k64(c, f->reg_init[r]), c->ra[r]);
    }
    for (unsigned k = 0; k < f->nsr; k++) {
        int s = f->srlist[k];
        LLVMValueRef v;
        if (s <= SR_TID_Z)
            v = LLVMBuildLoad2(c->b, c->i64, tid[s - SR_TID_X], "");
        else if (s == SR_DYNSMEM)
            v = frame_ld(c, FOFF(dynsmem), c->i64);
        else if (s == SR_TOTALSMEM)
            v = frame_ld(c, FOFF(totalsmem), c->i64);
        else if (s == SR_DYNBASE)
            v = frame_ld(c, FOFF(dynbase), c->i64);
        else
            v = frame_ld(c, FOFF(ntid) + 8 * (size_t)(s - SR_NTID_X), c->i64);
        LLVMBuildStore(c->b, v, c->ra[f->sreg[s]]);
    }
}

/* Phase mode: the thread's spill record says whether it starts, resumes (after a barrier of
 * an earlier round, or a resolved collective: at the pc it records), waits or has exited. */
static void emit_phase_dispatch(struct cg *c, const uint8_t *w, LLVMValueRef *tid)
{
    const struct pfunc *f = c->pf;
    LLVMValueRef sp = frame_ld(c, FOFF(spill), c->p64);
    LLVMValueRef idx = LLVMBuildMul(c->b, LLVMBuildLoad2(c->b, c->i64, c->lin, ""),
                                    k64(c, c->nspill + JIT_REC_HEAD), "");
    LLVMBuildStore(c->b, LLVMBuildInBoundsGEP2(c->b, c->i64, sp, &idx, 1, ""), c->sp);
    LLVMValueRef st = LLVMBuildLoad2(c->b, c->i64, spill_slot(c, 0), "");
    LLVMBasicBlockRef fresh = new_bb(c, "fresh"), resume = new_bb(c, "resume");
    LLVMBasicBlockRef at_bar = new_bb(c, "at_barrier");
    LLVMValueRef sw = LLVMBuildSwitch(c->b, st, c->next_thread, 3);
    LLVMAddCase(sw, k64(c, JIT_SPILL_FRESH), fresh);
    LLVMAddCase(sw, k64(c, JIT_SPILL_BAR), at_bar);
    LLVMAddCase(sw, k64(c, JIT_SPILL_RUN), resume);
    LLVMPositionBuilderAtEnd(c->b, at_bar); /* released unless it arrived in this round */
    LLVMValueRef arrived = LLVMBuildLoad2(c->b, c->i64, spill_slot(c, 2), "");
    LLVMValueRef now = LLVMBuildLoad2(c->b, c->i64, c->round, "");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntULT, arrived, now, ""), resume,
                    c->next_thread);
    LLVMPositionBuilderAtEnd(c->b, fresh);
    emit_thread_regs(c, w, tid, 1);
    LLVMBuildBr(c->b, c->bb[0]);
    LLVMPositionBuilderAtEnd(c->b, resume);
    emit_thread_regs(c, w, tid, 0);
    LLVMBasicBlockRef lost = new_bb(c, "lost");
    unsigned n = 0;
    for (uint32_t i = 0; i < f->ncode; i++)
        n += f->code[i].op == OP_bar || collective(&f->code[i]);
    LLVMValueRef pw = LLVMBuildSwitch(c->b, LLVMBuildLoad2(c->b, c->i64, spill_slot(c, 1), ""),
                                      lost, n);
    for (uint32_t i = 0; i < f->ncode; i++) {
        if (!(f->code[i].op == OP_bar || collective(&f->code[i])))
            continue;
        LLVMBasicBlockRef at = new_bb(c, "resume_at");
        LLVMAddCase(pw, k64(c, i + 1), at);
        LLVMPositionBuilderAtEnd(c->b, at);
        spill_in(c, i + 1);
        LLVMBuildBr(c->b, c->bb[i + 1]);
    }
    LLVMPositionBuilderAtEnd(c->b, lost); /* cannot happen: only the code writes records */
    exit_to(c, JIT_STOP, 0, 0);
}

/* tid of linear thread index l (at the start of a warp); a one-dimensional block (the usual
 * case, where a warp starts many times per block in phase mode) needs no division. */
static void split_tid(struct cg *c, LLVMValueRef l, LLVMValueRef *ntid, LLVMValueRef *tid)
{
    LLVMBasicBlockRef flat = new_bb(c, "tid_1d"), dims = new_bb(c, "tid_3d");
    LLVMBasicBlockRef done = new_bb(c, "tid_done");
    LLVMValueRef yz = LLVMBuildMul(c->b, ntid[1], ntid[2], "");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntEQ, yz, k64(c, 1), ""), flat, dims);
    LLVMPositionBuilderAtEnd(c->b, flat);
    LLVMBuildStore(c->b, l, tid[0]);
    LLVMBuildStore(c->b, k64(c, 0), tid[1]);
    LLVMBuildStore(c->b, k64(c, 0), tid[2]);
    LLVMBuildBr(c->b, done);
    LLVMPositionBuilderAtEnd(c->b, dims);
    LLVMValueRef xy = LLVMBuildMul(c->b, ntid[0], ntid[1], "");
    LLVMBuildStore(c->b, LLVMBuildURem(c->b, l, ntid[0], ""), tid[0]);
    LLVMBuildStore(c->b, LLVMBuildURem(c->b, LLVMBuildUDiv(c->b, l, ntid[0], ""), ntid[1], ""),
                   tid[1]);
    LLVMBuildStore(c->b, LLVMBuildUDiv(c->b, l, xy, ""), tid[2]);
    LLVMBuildBr(c->b, done);
    LLVMPositionBuilderAtEnd(c->b, done);
}

/* Phase mode, after the lanes of a warp: resolve its collectives and run it again, or go on
 * to the next warp; after the last warp, another round while threads wait at the barrier. */
static void emit_warp_end(struct cg *c, LLVMValueRef wbase, LLVMValueRef nthreads,
                          LLVMBasicBlockRef warp_start, LLVMBasicBlockRef round,
                          LLVMBasicBlockRef done)
{
    LLVMBasicBlockRef resolve = new_bb(c, "resolve_warp"), next = new_bb(c, "next_warp");
    LLVMBasicBlockRef again = new_bb(c, "warp_again"), end = new_bb(c, "round_end");
    LLVMBuildCondBr(c->b, LLVMBuildLoad2(c->b, c->i1, c->coll, ""), resolve, next);
    LLVMPositionBuilderAtEnd(c->b, resolve);
    LLVMValueRef wb = LLVMBuildLoad2(c->b, c->i64, wbase, "");
    LLVMTypeRef pt[3] = {c->p8, c->i32, c->p8};
    LLVMValueRef args[3] = {c->frame, LLVMBuildTrunc(c->b, LLVMBuildLShr(c->b, wb, k64(c, 5), ""),
                                                     c->i32, ""),
                            LLVMConstIntToPtr(k64(c, (uint64_t)(uintptr_t)c->colls), c->p8)};
    LLVMValueRef r = helper(c, (void *)jit_warp_coll, c->i64, pt, 3, args);
    stop_if(c, r, 0, again);
    LLVMPositionBuilderAtEnd(c->b, again);
    LLVMBuildBr(c->b, warp_start);
    LLVMPositionBuilderAtEnd(c->b, next);
    LLVMValueRef nb = LLVMBuildAdd(c->b, LLVMBuildLoad2(c->b, c->i64, wbase, ""), k64(c, 32), "");
    LLVMBuildStore(c->b, nb, wbase);
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntULT, nb, nthreads, ""), warp_start, end);
    LLVMPositionBuilderAtEnd(c->b, end);
    LLVMBasicBlockRef more = new_bb(c, "next_round");
    LLVMBuildCondBr(c->b, LLVMBuildLoad2(c->b, c->i1, c->waiting, ""), more, done);
    LLVMPositionBuilderAtEnd(c->b, more);
    LLVMBuildStore(c->b, LLVMBuildAdd(c->b, LLVMBuildLoad2(c->b, c->i64, c->round, ""),
                                      k64(c, 1), ""), c->round);
    LLVMBuildBr(c->b, round);
}

/* Block modes: a loop over the block's threads, x fastest, then y, then z; in phase mode,
 * warp by warp (a warp again after its collectives are resolved), in rounds until no thread
 * waits at the barrier. */
static void emit_thread_loop(struct cg *c, const uint8_t *w)
{
    int phases = c->block_mode == JIT_PHASES;
    LLVMValueRef tid[3];
    for (int i = 0; i < 3; i++)
        tid[i] = LLVMBuildAlloca(c->b, c->i64, "tid");
    c->sp = LLVMBuildAlloca(c->b, c->p64, "sp");
    c->waiting = LLVMBuildAlloca(c->b, c->i1, "waiting");
    c->coll = LLVMBuildAlloca(c->b, c->i1, "coll");
    c->round = LLVMBuildAlloca(c->b, c->i64, "round");
    LLVMValueRef wbase = LLVMBuildAlloca(c->b, c->i64, "warp_base");
    LLVMValueRef ntid[3];
    for (int i = 0; i < 3; i++)
        ntid[i] = frame_ld(c, FOFF(ntid) + 8 * (size_t)i, c->i64);
    LLVMValueRef nthreads = frame_ld(c, FOFF(nthreads), c->i64);
    LLVMBasicBlockRef round = new_bb(c, "round"), warp_start = new_bb(c, "warp");
    LLVMBasicBlockRef start = new_bb(c, "thread"), done = new_bb(c, "block_done");
    c->next_thread = new_bb(c, "next_thread");
    LLVMBuildStore(c->b, k64(c, 0), c->round);
    LLVMBuildBr(c->b, round);
    LLVMPositionBuilderAtEnd(c->b, round);
    LLVMBuildStore(c->b, LLVMBuildLoad2(c->b, c->i64, c->round, ""),
                   frame_at(c, FOFF(round), c->i64));
    LLVMBuildStore(c->b, k64(c, 0), wbase);
    LLVMBuildStore(c->b, LLVMConstInt(c->i1, 0, 0), c->waiting);
    LLVMBuildBr(c->b, warp_start);
    LLVMPositionBuilderAtEnd(c->b, warp_start);
    LLVMValueRef wb = LLVMBuildLoad2(c->b, c->i64, wbase, "");
    LLVMBuildStore(c->b, wb, c->lin);
    split_tid(c, wb, ntid, tid);
    LLVMBuildStore(c->b, LLVMConstInt(c->i1, 0, 0), c->coll);
    LLVMBuildBr(c->b, start);
    LLVMPositionBuilderAtEnd(c->b, start);
    if (phases) {
        emit_phase_dispatch(c, w, tid);
    } else {
        emit_thread_regs(c, w, tid, 1);
        LLVMBuildBr(c->b, c->bb[0]);
    }
    LLVMPositionBuilderAtEnd(c->b, c->next_thread);
    LLVMValueRef l = LLVMBuildAdd(c->b, LLVMBuildLoad2(c->b, c->i64, c->lin, ""), k64(c, 1), "");
    LLVMBuildStore(c->b, l, c->lin);
    LLVMValueRef carry = LLVMConstInt(c->i1, 1, 0);
    for (int i = 0; i < 3; i++) {
        LLVMValueRef v = LLVMBuildLoad2(c->b, c->i64, tid[i], "");
        LLVMValueRef inc = LLVMBuildAdd(c->b, v, LLVMBuildZExt(c->b, carry, c->i64, ""), "");
        LLVMValueRef wrap = LLVMBuildICmp(c->b, LLVMIntEQ, inc, ntid[i], "");
        LLVMBuildStore(c->b, LLVMBuildSelect(c->b, wrap, k64(c, 0), inc, ""), tid[i]);
        carry = LLVMBuildAnd(c->b, carry, wrap, "");
    }
    /* block mode: one warp of all the threads; phase mode: warps of 32 */
    LLVMValueRef lim = nthreads;
    if (phases) {
        LLVMValueRef e = LLVMBuildAdd(c->b, LLVMBuildLoad2(c->b, c->i64, wbase, ""), k64(c, 32),
                                      "");
        lim = LLVMBuildSelect(c->b, LLVMBuildICmp(c->b, LLVMIntULT, e, nthreads, ""), e,
                              nthreads, "");
    }
    LLVMBasicBlockRef more = new_bb(c, "more"), wend = new_bb(c, "warp_end");
    LLVMBuildCondBr(c->b, LLVMBuildICmp(c->b, LLVMIntULT, l, lim, ""), more, wend);
    LLVMPositionBuilderAtEnd(c->b, more);
    poll_point(c, UINT32_MAX, start);
    LLVMPositionBuilderAtEnd(c->b, wend);
    if (phases)
        emit_warp_end(c, wbase, nthreads, warp_start, round, done);
    else
        LLVMBuildBr(c->b, done);
    LLVMPositionBuilderAtEnd(c->b, done);
    exit_to(c, JIT_EXIT, 0, 0);
}

/* Phase mode: the registers written by the code that are live where a thread resumes after
 * a barrier or the interpreter takes it over after a yield (a backward branch's target). */
static int spill_set(struct cg *c, const uint8_t *w)
{
    const struct pfunc *f = c->pf;
    c->spill = calloc(f->nregs ? f->nregs : 1, sizeof(int32_t));
    if (!c->spill)
        return -1;
    for (uint32_t r = 0; r < f->nregs; r++) {
        int keep = 0;
        for (uint32_t i = 0; i < f->ncode && !keep && w[r] == 1; i++) {
            const struct pins *in = &f->code[i];
            uint32_t at = in->op == OP_bar || collective(in) ? i + 1
                        : in->op == OP_bra && (uint32_t)in->target <= i ? (uint32_t)in->target
                        : UINT32_MAX;
            if (at != UINT32_MAX)
                keep = (c->live[(size_t)at * c->lwords + r / 64] >> (r % 64)) & 1;
            if (collective(in)) /* its operands, read from the records */
                keep |= (c->live[(size_t)i * c->lwords + r / 64] >> (r % 64)) & 1;
        }
        if (keep)
            c->spill[c->nspill++] = (int32_t)r;
    }
    return 0;
}

static void mark_entries(struct cg *c)
{
    const struct pfunc *f = c->pf;
    c->entry[0] = 1;
    for (uint32_t i = 0; i < f->ncode; i++) {
        const struct pins *in = &f->code[i];
        if (blocking(in) || !native(in))
            c->entry[i + 1] = 1; /* after a block or a step that stopped */
        if (in->op == OP_bra && (uint32_t)in->target <= i)
            c->entry[in->target] = 1;
    }
}

/* ---- liveness ------------------------------------------------------------------------- */

static void bit_set(uint64_t *v, int32_t r)
{
    if (r >= 0)
        v[r / 64] |= 1ull << (r % 64);
}

/* live[pc] = uses(pc) | (live after pc minus what pc always writes); iterated to a fixed
 * point. live[ncode] (past the end) is empty. */
static int liveness(struct cg *c)
{
    const struct pfunc *f = c->pf;
    uint32_t lw = (f->nregs + 63) / 64;
    if (lw == 0)
        lw = 1;
    c->lwords = lw;
    c->live = calloc((size_t)(f->ncode + 1) * lw, sizeof(uint64_t));
    uint64_t *tmp = calloc(lw, sizeof(uint64_t));
    if (!c->live || !tmp) {
        free(tmp);
        return -1;
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (uint32_t pc = f->ncode; pc-- > 0;) {
            const struct pins *in = &f->code[pc];
            int ends = in->op == OP_exit || in->op == OP_ret;
            int jumps = in->op == OP_bra;
            memset(tmp, 0, lw * sizeof(uint64_t));
            if (!((ends || jumps) && in->guard < 0)) /* falls through */
                memcpy(tmp, &c->live[(size_t)(pc + 1) * lw], lw * sizeof(uint64_t));
            if (jumps && (uint32_t)in->target <= f->ncode)
                for (uint32_t i = 0; i < lw; i++)
                    tmp[i] |= c->live[(size_t)in->target * lw + i];
            if (in->guard < 0)
                for (unsigned j = 0; j < 4; j++)
                    if (in->d[j] >= 0)
                        tmp[in->d[j] / 64] &= ~(1ull << (in->d[j] % 64));
            for (unsigned j = 0; j < 5; j++)
                bit_set(tmp, in->s[j]);
            bit_set(tmp, in->areg);
            bit_set(tmp, in->guard);
            uint64_t *cur = &c->live[(size_t)pc * lw];
            if (memcmp(cur, tmp, lw * sizeof(uint64_t))) {
                memcpy(cur, tmp, lw * sizeof(uint64_t));
                changed = 1;
            }
        }
    }
    free(tmp);
    return 0;
}

static int build(struct cg *c, const char *name)
{
    const struct pfunc *f = c->pf;
    uint8_t *w = written_regs(f);
    c->ra = calloc(f->nregs ? f->nregs : 1, sizeof(*c->ra));
    c->bb = calloc(f->ncode + 1, sizeof(*c->bb));
    c->entry = calloc(f->ncode + 1, 1);
    if (!w || !c->ra || !c->bb || !c->entry || liveness(c) || jit_merge_plan(f, &c->merge) ||
        !(c->gbase = calloc(c->merge.n ? c->merge.n : 1, sizeof(*c->gbase))) ||
        (c->block_mode == JIT_PHASES && spill_set(c, w))) {
        free(w);
        return -1;
    }
    if (c->block_mode == JIT_PHASES &&
        !(c->colls = jit_colls_build(f, c->spill, c->nspill, c->h->coll))) {
        free(w);
        return -1;
    }
    LLVMTypeRef pt[2] = {c->p8, c->i32};
    c->fn = LLVMAddFunction(c->mod, name, LLVMFunctionType(c->i64, pt, 2, 0));
    c->frame = LLVMGetParam(c->fn, 0);
    /* the frame is the worker's: no memory the kernel reaches (global, shared, local, param
     * areas, register files, spill records) overlaps its fields, so they stay in registers
     * across the kernel's stores (helpers get the frame, and are assumed to change it) */
    unsigned noalias = LLVMGetEnumAttributeKindForName("noalias", 7);
    LLVMAddAttributeAtIndex(c->fn, 1, LLVMCreateEnumAttribute(c->cx, noalias, 0));
    LLVMBasicBlockRef entry = new_bb(c, "entry");
    for (uint32_t i = 0; i <= f->ncode; i++)
        c->bb[i] = new_bb(c, "i");
    LLVMPositionBuilderAtEnd(c->b, entry);
    emit_prologue(c, w);
    emit_exits(c);
    LLVMPositionBuilderAtEnd(c->b, entry);
    if (c->block_mode) {
        emit_thread_loop(c, w);
    } else {
        mark_entries(c);
        emit_dispatch(c, w);
    }
    for (uint32_t pc = 0; pc < f->ncode; pc++) {
        LLVMPositionBuilderAtEnd(c->b, c->bb[pc]);
        emit_ins(c, pc);
    }
    LLVMPositionBuilderAtEnd(c->b, c->bb[f->ncode]); /* past the end: the thread is done */
    emit_exit(c, f->ncode);
    free(w);
    return 0;
}

/* ---- LLVM set-up, optimization, compilation ------------------------------------------- */

static char *error_text(LLVMErrorRef e)
{
    char *m = LLVMGetErrorMessage(e);
    char *s = strdup(m ? m : "unknown LLVM error");
    LLVMDisposeErrorMessage(m);
    return s;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_ok;

static void llvm_init(void)
{
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter())
        return;
    char *triple = LLVMGetDefaultTargetTriple();
    char *cpu = LLVMGetHostCPUName(), *feat = LLVMGetHostCPUFeatures();
    LLVMTargetRef t;
    char *msg = NULL;
    if (!LLVMGetTargetFromTriple(triple, &t, &msg)) {
        g_tm = LLVMCreateTargetMachine(t, triple, cpu, feat, LLVMCodeGenLevelDefault,
                                       LLVMRelocDefault, LLVMCodeModelJITDefault);
        g_init_ok = g_tm != NULL;
    }
    LLVMDisposeMessage(msg);
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(feat);
}

static void optimize(LLVMModuleRef mod)
{
    char *triple = LLVMGetTargetMachineTriple(g_tm);
    LLVMSetTarget(mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(g_tm);
    LLVMSetModuleDataLayout(mod, td);
    LLVMDisposeTargetData(td);
    LLVMPassManagerBuilderRef pmb = LLVMPassManagerBuilderCreate();
    LLVMPassManagerBuilderSetOptLevel(pmb, 2);
    LLVMPassManagerRef pm = LLVMCreatePassManager();
    LLVMAddAnalysisPasses(g_tm, pm);
    LLVMPassManagerBuilderPopulateModulePassManager(pmb, pm);
    LLVMRunPassManager(pm, mod);
    LLVMDisposePassManager(pm);
    LLVMPassManagerBuilderDispose(pmb);
}

static LLVMOrcLLJITRef make_lljit(char **why)
{
    LLVMOrcJITTargetMachineBuilderRef jtmb;
    LLVMErrorRef e = LLVMOrcJITTargetMachineBuilderDetectHost(&jtmb);
    if (e) {
        *why = error_text(e);
        return NULL;
    }
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, jtmb);
    LLVMOrcLLJITRef j;
    e = LLVMOrcCreateLLJIT(&j, jb);
    if (e) {
        *why = error_text(e);
        return NULL;
    }
    return j;
}

/* Translates and compiles function `func` (k->mode set) into k; NULL with *why on failure. */
static ptx_jit_fn compile(struct ptx_jit *jit, const struct pfunc *f, uint32_t func,
                          const struct ptx_jit_helpers *h, struct jit_kernel *k, char **why)
{
    int block_mode = k->mode;
    char name[32];
    snprintf(name, sizeof(name), "k%u_%d", func, block_mode);
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    struct cg c = {0};
    c.cx = LLVMOrcThreadSafeContextGetContext(tsc);
    c.mod = LLVMModuleCreateWithNameInContext(f->name, c.cx); /* named in PTX_JIT_DUMP */
    c.b = LLVMCreateBuilderInContext(c.cx);
    c.pf = f;
    c.h = h;
    c.block_mode = block_mode;
    make_types(&c);
    int rc = build(&c, name);
    LLVMDisposeBuilder(c.b);
    free(c.ra);
    free(c.bb);
    free(c.entry);
    free(c.live);
    free(c.gbase);
    jit_merge_free(&c.merge);
    k->spill = c.spill;
    k->nspill = c.nspill;
    k->colls = c.colls;
    if (c.spill && !rc) {
        k->slot_of = malloc((f->nregs ? f->nregs : 1) * sizeof(int32_t));
        if (!k->slot_of)
            rc = -1;
        for (uint32_t r = 0; k->slot_of && r < f->nregs; r++)
            k->slot_of[r] = -1;
        for (uint32_t i = 0; k->slot_of && i < c.nspill; i++)
            k->slot_of[c.spill[i]] = (int32_t)i;
    }
    ptx_jit_fn fn = NULL;
    if (rc) {
        *why = strdup("out of host memory");
        LLVMDisposeModule(c.mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return NULL;
    }
    optimize(c.mod);
    if (getenv("PTX_JIT_DUMP"))
        LLVMDumpModule(c.mod);
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(c.mod, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc);
    LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModule(jit->lljit,
                                                 LLVMOrcLLJITGetMainJITDylib(jit->lljit), tsm);
    if (e) {
        LLVMOrcDisposeThreadSafeModule(tsm);
        *why = error_text(e);
        return NULL;
    }
    LLVMOrcExecutorAddress addr = 0;
    e = LLVMOrcLLJITLookup(jit->lljit, &addr, name);
    if (e) {
        *why = error_text(e);
        return NULL;
    }
    fn = (ptx_jit_fn)(uintptr_t)addr;
    return fn;
}

static struct ptx_jit *jit_of(struct ptx_program *p, char **why)
{
    if (p->jit)
        return p->jit;
    pthread_once(&g_once, llvm_init);
    if (!g_init_ok) {
        *why = strdup("LLVM's native target could not be initialised");
        return NULL;
    }
    struct ptx_jit *j = calloc(1, sizeof(*j));
    if (!j || !(j->k = calloc(p->nfuncs ? p->nfuncs : 1, sizeof(*j->k)))) {
        free(j);
        *why = strdup("out of host memory");
        return NULL;
    }
    j->lljit = make_lljit(why);
    if (!j->lljit) {
        free(j->k);
        free(j);
        return NULL;
    }
    p->jit = j;
    return j;
}

static ptx_jit_fn jit_get(struct ptx_program *p, uint32_t func, const struct ptx_jit_helpers *h,
                          struct ptx_jit_info *info)
{
    if (func >= p->nfuncs)
        return NULL;
    pthread_mutex_lock(&g_jit_lock);
    char *why = NULL;
    const char *refused = NULL;
    ptx_jit_fn fn = NULL;
    struct ptx_jit *j = jit_of(p, &why);
    struct jit_kernel *k = j ? &j->k[func] : NULL;
    if (k && k->state == K_UNTRIED) {
        const struct pfunc *f = &p->funcs[func];
        refused = refusal(f, &k->mode);
        if (!refused)
            k->fn = compile(j, f, func, h, k, &why);
        k->state = k->fn ? K_DONE : K_REFUSED;
        if (refused || why)
            fprintf(stderr, "ptx: kernel %s runs in the interpreter: %s\n", f->name,
                    refused ? refused : why);
    } else if (!k && why && !p->jit_failed) {
        fprintf(stderr, "ptx: the translator is off for this module: %s\n", why);
        p->jit_failed = 1;
    }
    if (k && k->state == K_DONE) {
        fn = k->fn;
        info->mode = k->mode;
        info->nspill = k->nspill;
        info->spill = k->spill;
        info->slot_of = k->slot_of;
    }
    pthread_mutex_unlock(&g_jit_lock);
    free(why);
    return fn;
}

static void jit_free(struct ptx_program *p)
{
    struct ptx_jit *j = p->jit;
    if (!j)
        return;
    LLVMErrorRef e = LLVMOrcDisposeLLJIT(j->lljit);
    if (e) {
        char *m = error_text(e);
        fprintf(stderr, "ptx: freeing a module's translations: %s\n", m);
        free(m);
    }
    for (uint32_t i = 0; i < p->nfuncs; i++) {
        free(j->k[i].spill);
        free(j->k[i].slot_of);
        jit_colls_free(j->k[i].colls);
    }
    free(j->k);
    free(j);
    p->jit = NULL;
}

/* The one symbol libvgpu-ptxjit.so exports (everything else is hidden): ptx_jit_load.c checks
 * that it was built against the same structures as the program that loads it. */
__attribute__((visibility("default"))) const struct ptx_jit_ops ptx_jit_ops = {
    .abi = PTX_JIT_ABI,
    .program_size = sizeof(struct ptx_program),
    .func_size = sizeof(struct pfunc),
    .frame_size = sizeof(struct jit_frame),
    .get = jit_get,
    .free = jit_free,
};
