/* vgpu_stub_log.h - the one call the generated fail-closed stubs (vgpu_stubs.c) make into
 * libvgpu; kept apart from vgpu.h, which vgpu_stubs.c must not include (cuda.h's prototypes
 * differ from the stubs'). */
#ifndef VGPU_STUB_LOG_H
#define VGPU_STUB_LOG_H

/* Logs once per name (*once set on the first call) that name is not supported. */
void vgpu_stub_called(const char *name, int *once);

#endif /* VGPU_STUB_LOG_H */
