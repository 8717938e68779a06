/* ptx_jit_merge.h - merged shared-memory checks (private to libvgpu-ptxjit.so): which
 * accesses of a straight run share one range check (same 32-bit base register, offsets in one
 * residue class of the access size), planned from the parsed PTX before translation. */
#ifndef PTX_JIT_MERGE_H
#define PTX_JIT_MERGE_H

#include "ptx_internal.h"

#include <stdint.h>

/* One group: the accesses [base + lo, base + hi + len) at offsets lo..hi, all aligned when
 * base + lo is; its first member (leader) checks the whole span once. */
struct jit_mgroup {
    uint64_t lo, hi, len;
    uint32_t leader;
};

struct jit_merge {
    int32_t *grp;            /* per instruction: its group, or -1 (checked alone) */
    struct jit_mgroup *g;
    uint32_t n;
};

/* Plans f's groups into m (zeroed by the caller); -1: out of host memory. */
int jit_merge_plan(const struct pfunc *f, struct jit_merge *m);

void jit_merge_free(struct jit_merge *m);

/* The byte length of an ld/st (elements times vector width). */
uint64_t jit_access_len(const struct pins *in);

#endif /* PTX_JIT_MERGE_H */
