/* vgpu_stubs.c - the fail-closed floor of the exported surface: every Driver API name of
 * gen/vgpu_stubs.h becomes a weak function that logs its own name once and returns
 * CUDA_ERROR_NOT_SUPPORTED; a strong definition in the hand-written sources replaces it.
 * Deliberately does not include cuda.h: the stubs take no arguments (the caller's are ignored),
 * so their prototypes differ from cuda.h's. */
void vgpu_stub_called(const char *name, int *once);

#define VGPU_NOT_SUPPORTED 801 /* CUDA_ERROR_NOT_SUPPORTED */

#define VGPU_STUB(name)                                                                        \
    __attribute__((weak)) int name(void);                                                      \
    int name(void)                                                                             \
    {                                                                                          \
        static int once_;                                                                      \
        vgpu_stub_called(#name, &once_);                                                       \
        return VGPU_NOT_SUPPORTED;                                                             \
    }
#include "gen/vgpu_stubs.h"
#undef VGPU_STUB
