/* ptx_jit.h - the PTX translator's interface to the interpreter (private to libptx): a kernel
 * is translated once per module into native code with LLVM; the code runs on the interpreter's
 * thread states and calls back into the interpreter for what it does not translate. */
#ifndef PTX_JIT_H
#define PTX_JIT_H

#include "ptx_internal.h"

#include <stddef.h>
#include <stdint.h>

/* The worker's small cache of resolved global allocations, read by translated code. */
#define JIT_GSLOTS 4
struct jit_gslot {
    uint64_t base, size;
    uint8_t *host;
};

/* What translated code sees of one host thread running a kernel (laid out for the code's
 * loads: keep every field 8 bytes). */
struct jit_frame {
    uint64_t *regs;         /* the thread's register file (block mode: thread 0's) */
    struct jit_gslot *gc;   /* JIT_GSLOTS entries */
    uint8_t *shared;
    uint64_t shared_size;
    uint8_t *local;
    uint64_t local_size;
    uint8_t *param;
    uint64_t param_size;
    uint64_t icount;        /* out: instructions the code ran (stepped ones not included) */
    uint64_t budget;        /* instructions before the code must call poll */
    uint64_t lin;           /* block mode: the linear thread index helpers act for */
    uint64_t nthreads;      /* block mode: the block's threads and its special registers */
    uint64_t ntid[3], ctaid[3], nctaid[3];
    uint64_t dynsmem, totalsmem, dynbase;
    uint64_t bar_id, bar_count; /* out, JIT_BAR: the barrier and the thread count it named */
    uint64_t *spill;        /* phase mode: per thread, a record (JIT_REC_HEAD, registers) */
    uint64_t round;         /* phase mode: the current round (barrier phase) */
    void *w, *t;            /* the interpreter's worker and thread */
};

/* Translated code returns (status << 32) | pc. */
enum {
    JIT_EXIT = 0,   /* the thread (block mode: every thread of the block) exited */
    JIT_STOP = 1,   /* a helper stopped it: t->state and t->pc say where, or the launch failed */
    JIT_INTERP = 2, /* run the interpreter from pc (a blocking instruction, or no entry there) */
    JIT_BAR = 3,    /* the thread waits at the bar.sync/barrier.sync at pc (bar_id, bar_count) */
};

/* Callbacks into the interpreter; each returns 0 to go on, nonzero to stop (JIT_STOP). */
struct ptx_jit_helpers {
    /* executes instruction pc with the interpreter on f->regs */
    uint64_t (*step)(struct jit_frame *f, uint32_t pc);
    /* host address of [addr, addr+len) in `space`, filling f->gc; NULL: the launch failed */
    uint8_t *(*mem)(struct jit_frame *f, uint32_t pc, uint64_t addr, uint64_t len,
                    uint32_t space);
    /* `count` more instructions ran: polls the launch and sets f->budget */
    uint64_t (*poll)(struct jit_frame *f, uint32_t pc, uint64_t count);
    /* phase mode: resolves the warp collectives the lanes of warp `warp` wait at */
    uint64_t (*coll)(struct jit_frame *f, uint32_t warp);
};

typedef uint64_t (*ptx_jit_fn)(struct jit_frame *f, uint32_t pc);

/* How a translation runs. */
enum {
    JIT_THREAD = 0, /* one thread from pc until it exits or blocks, on the interpreter's states */
    JIT_BLOCK = 1,  /* every thread of the block, one after another (no barrier in the kernel) */
    JIT_PHASES = 2, /* every thread of the block up to each __syncthreads, round after round */
};

/* Phase mode: a thread's spill record is f->spill[lin * (nspill + JIT_REC_HEAD) ...]: its
 * state, its pc (BAR: after the barrier; COLL: the collective; RUN: where it goes on), the
 * round it reached a barrier in, then the registers spill[0..nspill) (those live where a
 * thread stops or resumes). */
enum {
    JIT_SPILL_FRESH = 0, JIT_SPILL_EXITED = 1, JIT_SPILL_RUN = 2, JIT_SPILL_BAR = 3,
    JIT_SPILL_COLL = 4,
};
#define JIT_REC_HEAD 3

struct ptx_jit_info {
    int mode;
    uint32_t nspill;
    const int32_t *spill;   /* the registers of a record */
    const int32_t *slot_of; /* per register: its index in spill, or -1 */
};

/* The translator's entry points: the one symbol libvgpu-ptxjit.so exports (ptx_jit.c). The
 * loader (ptx_jit_load.c) refuses a translator built with another PTX_JIT_ABI or other sizes of
 * the structures the two share; bump PTX_JIT_ABI when their meaning changes. */
#define PTX_JIT_ABI 1
struct ptx_jit_ops {
    uint32_t abi;
    uint32_t program_size, func_size, frame_size;
    ptx_jit_fn (*get)(struct ptx_program *p, uint32_t func, const struct ptx_jit_helpers *h,
                      struct ptx_jit_info *info);
    void (*free)(struct ptx_program *p);
};
extern const struct ptx_jit_ops ptx_jit_ops;

/* Programs that link ptx_jit.c itself (the fuzzer): use that translator. 0, or -1 with why
 * (its ABI differs, or a translator is already in use). */
int ptx_jit_attach(const struct ptx_jit_ops *ops, char *why, size_t whylen);

/* Translation of function `func` of p (an .entry) by the loaded translator, compiled at the
 * first call; *info says how it runs (block modes need no barrier other than a plain bar.sync 0, no lockstep access or
 * bar.red, no local memory; phase mode takes warp collectives). NULL: run the kernel in the interpreter (translator off, or the kernel uses
 * what it does not translate; logged once per kernel). Thread-safe. */
ptx_jit_fn ptx_jit_get(struct ptx_program *p, uint32_t func, const struct ptx_jit_helpers *h,
                       struct ptx_jit_info *info);

/* Frees p's translations (ptx_program_free). */
void ptx_jit_free(struct ptx_program *p);

/* The translation mode (ptx.h: PTX_TRANSLATE_*), from PTX_JIT in the environment until
 * ptx_set_translator: "0" off (and no translator is loaded), "1" always, unset or "auto" auto.
 * Non-zero: translation is on, once a translator is loaded. */
int ptx_jit_enabled(void);
/* The auto mode's threshold (ptx_set_translate_threshold). */
uint64_t ptx_jit_threshold(void);

#endif /* PTX_JIT_H */
