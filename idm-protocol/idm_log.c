/* idm_log.c - the levelled stderr logger of idm_log.h: level cached from $IDM_LOG at first use,
 * each line formatted into a local buffer and written with a single write(2). */
#include "idm_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LEVEL_UNSET (-100)

static _Atomic int log_level = LEVEL_UNSET;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

int idm_log_parse_level(const char *s)
{
    if (!s || !*s)
        return -EINVAL;
    if (strcasecmp(s, "off") == 0 || strcasecmp(s, "none") == 0)
        return IDM_LOG_OFF;
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return IDM_LOG_WARN;
    if (s[0] >= '0' && s[0] <= '4' && s[1] == '\0')
        return s[0] - '0';
    return -EINVAL;
}

int idm_log_level(void)
{
    int lvl = atomic_load_explicit(&log_level, memory_order_relaxed);
    if (lvl != LEVEL_UNSET)
        return lvl;
    const char *env = getenv("IDM_LOG");
    lvl = idm_log_parse_level(env);
    if (lvl == -EINVAL)
        lvl = IDM_LOG_WARN;
    /* Racing first callers compute the same value; any of them may win. */
    atomic_store_explicit(&log_level, lvl, memory_order_relaxed);
    return lvl;
}

void idm_log_set_level(int level)
{
    if (level < IDM_LOG_OFF)
        level = IDM_LOG_OFF;
    if (level > IDM_LOG_TRACE)
        level = IDM_LOG_TRACE;
    atomic_store_explicit(&log_level, level, memory_order_relaxed);
}

void idm_log_vwrite(int level, const char *tag, const char *fmt, va_list ap)
{
    char buf[1024];
    if (level < 0)
        level = 0;
    if (level > IDM_LOG_TRACE)
        level = IDM_LOG_TRACE;
    int n = snprintf(buf, sizeof(buf), "%s: %s: ", tag ? tag : "idm", level_names[level]);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(buf)) {
        int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof(buf) - 1)
        n = (int)sizeof(buf) - 2; /* truncated: keep the newline */
    buf[n++] = '\n';
    /* Best effort: a logger has nowhere to report its own failure. */
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}

void idm_log_write(int level, const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    idm_log_vwrite(level, tag, fmt, ap);
    va_end(ap);
}
