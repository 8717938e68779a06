/* vgpu_per_thread.c - the per-thread-default-stream forms (_ptds, _ptsz) of the implemented
 * Driver API names, generated into gen/vgpu_per_thread.h: each calls the implemented name, a
 * stream argument of 0 meaning the calling thread's default stream (CU_STREAM_PER_THREAD). */
#include "vgpu.h"

#include "gen/vgpu_per_thread.h"
