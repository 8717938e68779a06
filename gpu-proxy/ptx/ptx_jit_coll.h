/* ptx_jit_coll.h - phase mode's warp collectives resolved inside the translator (private to
 * libvgpu-ptxjit.so): shuffles and votes computed directly on the lanes' spill records, the
 * rest handed to the interpreter's resolver (ptx_jit_helpers.coll). */
#ifndef PTX_JIT_COLL_H
#define PTX_JIT_COLL_H

#include "ptx_jit.h"

#include <stdint.h>

struct jit_colls;

/* The collectives of f that a translation's warps resolve here, for the spill records of
 * spill[0..nspill); `slow` resolves the others. NULL: out of host memory. */
struct jit_colls *jit_colls_build(const struct pfunc *f, const int32_t *spill, uint32_t nspill,
                                  uint64_t (*slow)(struct jit_frame *f, uint32_t warp));

void jit_colls_free(struct jit_colls *t);

/* Called by translated code when every lane of warp `warp` has stopped and one waits at a
 * collective: resolves each group of lanes waiting at the same instruction (lane order, as
 * the interpreter's jit_coll does) and marks them to run on after it. 0, or nonzero when the
 * interpreter's resolver failed the launch. */
uint64_t jit_warp_coll(struct jit_frame *f, uint32_t warp, const struct jit_colls *t);

#endif /* PTX_JIT_COLL_H */
