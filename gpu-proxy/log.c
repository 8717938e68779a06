/* log.c - writes log lines to stderr with journald priority prefixes; each line is formatted
 * into one buffer and written with a single write(2) so lines from threads do not interleave.
 * Rate-limited lines go through a token bucket first. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int log_level_current = LOG_INFO;
_Thread_local struct log_bucket log_thread_bucket;

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

/* Formats one line (plus a note of dropped lines, if any) and writes it. */
static void log_write(int level, uint32_t dropped, const char *fmt, va_list ap)
{
    char buf[1024];
    int n;

    n = snprintf(buf, sizeof(buf), "<%d>gpu_proxy: ", level_prio[level]);
    n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    if (dropped && n < (int)sizeof(buf))
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, " (%u similar lines dropped)", dropped);
    if (n > (int)sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    /* A failed write to stderr has nowhere to be reported. */
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;

    if (level > log_level_current)
        return;
    va_start(ap, fmt);
    log_write(level, 0, fmt, ap);
    va_end(ap);
}

/* Tops the bucket up for the time since its last refill; 1 if a token was taken. */
static int bucket_take(struct log_bucket *b)
{
    const uint64_t per_token = 1000000000ull / LOG_LIMIT_RATE;
    struct timespec ts;
    uint64_t now, earned;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (b->refill_ns == 0 || now < b->refill_ns) {
        b->tokens = LOG_LIMIT_BURST;
        b->refill_ns = now;
    }
    earned = (now - b->refill_ns) / per_token;
    if (earned >= LOG_LIMIT_BURST - b->tokens) {
        b->tokens = LOG_LIMIT_BURST;
        b->refill_ns = now;
    } else if (earned) {
        b->tokens += (uint32_t)earned;
        b->refill_ns += earned * per_token;
    }
    if (b->tokens == 0)
        return 0;
    b->tokens--;
    return 1;
}

void log_limited(struct log_bucket *b, int level, const char *fmt, ...)
{
    va_list ap;

    if (level > log_level_current)
        return;
    if (!bucket_take(b)) {
        b->dropped++;
        return;
    }
    va_start(ap, fmt);
    log_write(level, b->dropped, fmt, ap);
    va_end(ap);
    b->dropped = 0;
}
