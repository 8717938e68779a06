/* vgpu_stubs.c - the fail-closed floor of the exported surface: every Driver API name that
 * libvgpu neither implements (implemented.txt) nor derives (gen/vgpu_per_thread.h) is listed in
 * gen/vgpu_stubs.h and becomes a function that logs its own name once and returns
 * CUDA_ERROR_NOT_SUPPORTED. Deliberately does not include cuda.h: the stubs take no arguments
 * (the caller's are ignored), so their prototypes differ from cuda.h's. */
#include "vgpu_stub_log.h"

#define VGPU_NOT_SUPPORTED 801 /* CUDA_ERROR_NOT_SUPPORTED */

#define VGPU_STUB(name)                                                                        \
    int name(void);                                                                            \
    int name(void)                                                                             \
    {                                                                                          \
        static int once_;                                                                      \
        vgpu_stub_called(#name, &once_);                                                       \
        return VGPU_NOT_SUPPORTED;                                                             \
    }
#include "gen/vgpu_stubs.h"
#undef VGPU_STUB
