/* vgpu_log.c - libvgpu's logging set-up on the one logger (idm_log.h): the level from VGPU_LOG
 * (off|error|warn|info|debug|trace; unset: IDM_LOG, else warn, so a tenant program stays quiet by
 * default), and the once-per-name report of Driver API calls that are not supported. */
#include "vgpu.h"
#include "vgpu_stub_log.h"

#include <errno.h>
#include <stdlib.h>

void vgpu_log_init(void)
{
    const char *s = getenv("VGPU_LOG");
    int level;

    if (s == NULL || s[0] == '\0')
        return;
    level = idm_log_parse_level(s);
    if (level != -EINVAL) {
        idm_log_set_level(level);
        return;
    }
    idm_log_set_level(VGPU_LOG_WARN);
    vgpu_log(VGPU_LOG_WARN, "VGPU_LOG='%s' is not one of off, error, warn, info, debug, trace; "
                            "keeping warn", s);
}

/* Called by every generated NOT_SUPPORTED stub (vgpu_stubs.c). */
void vgpu_stub_called(const char *name, int *once)
{
    if (__atomic_exchange_n(once, 1, __ATOMIC_RELAXED) == 0)
        VLOG(VGPU_LOG_WARN, "%s is not supported by libvgpu: returning "
                            "CUDA_ERROR_NOT_SUPPORTED", name);
}
