/* log.c - writes log lines to stderr with journald priority prefixes; each line is formatted
 * into one buffer and written with a single write(2) so lines from threads do not interleave. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int log_level_current = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};
static const int level_prio[] = {3, 4, 6, 7, 7};

int log_level_parse(const char *s)
{
    for (int i = 0; i <= LOG_TRACE; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -EINVAL;
}

void log_set_level(int level)
{
    if (level >= LOG_OFF && level <= LOG_TRACE)
        log_level_current = level;
}

void log_msg(int level, const char *fmt, ...)
{
    char buf[1024];
    int n;
    va_list ap;

    if (level > log_level_current)
        return;
    n = snprintf(buf, sizeof(buf), "<%d>gpu_proxy: ", level_prio[level]);
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    /* A failed write to stderr has nowhere to be reported. */
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}
