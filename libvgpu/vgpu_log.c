/* vgpu_log.c - libvgpu's levelled logging to stderr (VGPU_LOG=error|warn|info|debug|trace,
 * default warn), and the once-per-name report of Driver API calls that are not supported. The
 * level test is one load of a cached integer, so disabled levels cost nothing on hot paths. */
#include "vgpu.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int vgpu_log_level_ = VGPU_LOG_WARN;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void vgpu_log_init(void)
{
    const char *s = getenv("VGPU_LOG");
    if (s == NULL || s[0] == '\0')
        return;
    for (int i = 0; i <= VGPU_LOG_TRACE; i++)
        if (strcmp(s, level_names[i]) == 0 || (s[0] == '0' + i && s[1] == '\0')) {
            vgpu_log_level_ = i;
            return;
        }
    fprintf(stderr, "libvgpu: warn: VGPU_LOG='%s' is not one of error, warn, info, debug, "
                    "trace; keeping warn\n", s);
}

void vgpu_log(int level, const char *fmt, ...)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "libvgpu: %s: ",
                     level_names[level < 0 ? 0 : level > 4 ? 4 : level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof buf - 2)
        len = sizeof buf - 2;
    buf[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len);
    (void)w; /* nothing sensible to do if stderr is gone */
}

/* Called by every generated NOT_SUPPORTED stub (vgpu_stubs.c). */
void vgpu_stub_called(const char *name, int *once);
void vgpu_stub_called(const char *name, int *once)
{
    if (__atomic_exchange_n(once, 1, __ATOMIC_RELAXED) == 0)
        vgpu_log(VGPU_LOG_WARN, "%s is not supported by libvgpu: returning "
                                "CUDA_ERROR_NOT_SUPPORTED", name);
}
