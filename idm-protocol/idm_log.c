/* idm_log.c - the logger of idm_log.h: the level (cached from $IDM_LOG at first use unless set),
 * the line format and destination of the process, each line formatted into a local buffer and written with a
 * single write(2) so that lines of different threads never interleave, and the token buckets of
 * rate-limited lines. */
#include "idm_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LEVEL_UNSET (-100)
#define LINE_MAX_BYTES 1024

static _Atomic int log_level = LEVEL_UNSET;
static _Atomic int log_format = IDM_LOG_FMT_PLAIN;
static _Atomic int log_fd = STDERR_FILENO;
static _Atomic int log_errors_to_stderr;
_Thread_local struct idm_log_bucket idm_log_thread_bucket;

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};
static const int level_prio[] = {3, 4, 6, 7, 7}; /* syslog priorities, as journald reads them */

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

void idm_log_set_format(enum idm_log_format format)
{
    atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

void idm_log_set_fd(int fd, int errors_to_stderr)
{
    atomic_store_explicit(&log_fd, fd < 0 ? STDERR_FILENO : fd, memory_order_relaxed);
    atomic_store_explicit(&log_errors_to_stderr, fd >= 0 && errors_to_stderr,
                          memory_order_relaxed);
}

/* The UTC time now (a line without a usable time beats no line). */
static void utc_now(struct timespec *ts, struct tm *tm)
{
    if (clock_gettime(CLOCK_REALTIME, ts) != 0 || gmtime_r(&ts->tv_sec, tm) == NULL) {
        *ts = (struct timespec){0, 0};
        memset(tm, 0, sizeof(*tm));
    }
}

/* The line's prefix for level (already clamped to 0..4) in format (JSON: up to the message). */
static int put_prefix(char *buf, size_t len, int format, int level, const char *tag)
{
    const char *sep = tag && tag[0] ? ": " : "";

    if (!tag)
        tag = "";
    switch (format) {
    case IDM_LOG_FMT_JSON:
        /* As runc writes it: the message alone, without the program's tag. */
        return snprintf(buf, len, "{\"level\":\"%s\",\"msg\":\"",
                        level == IDM_LOG_WARN ? "warning" : level_names[level]);
    case IDM_LOG_FMT_JOURNAL:
        return snprintf(buf, len, "<%d>%s%s", level_prio[level], tag, sep);
    case IDM_LOG_FMT_STAMPED: {
        struct timespec ts;
        struct tm tm;
        utc_now(&ts, &tm);
        return snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s%s",
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], tag, sep);
    }
    default:
        return snprintf(buf, len, "%s%s%s: ", tag, sep, level_names[level]);
    }
}

/* Appends msg to buf[n..] as the inside of a JSON string; returns the new length (at most
 * len - 1, so a truncated line still has room for its end). */
static size_t put_json_escaped(char *buf, size_t len, size_t n, const char *msg)
{
    for (; *msg && n + 7 < len; msg++) {
        unsigned char c = (unsigned char)*msg;
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(buf + n, len - n, "\\u%04x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    return n;
}

/* Writes one line of msg in format to fd, with one write(2). */
static void emit(int fd, int format, int level, const char *tag, const char *msg)
{
    char buf[LINE_MAX_BYTES + 256];
    const size_t room = LINE_MAX_BYTES;
    int p = put_prefix(buf, room, format, level, tag);
    size_t n;

    if (p < 0)
        return;
    n = (size_t)p < room ? (size_t)p : room - 1;
    if (format == IDM_LOG_FMT_JSON) {
        struct timespec ts;
        struct tm tm;
        n = put_json_escaped(buf, room, n, msg);
        utc_now(&ts, &tm);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n,
                              "\",\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ\"}",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                              tm.tm_min, tm.tm_sec, ts.tv_nsec);
    } else {
        int m = snprintf(buf + n, room - n, "%s", msg);
        if (m > 0)
            n += (size_t)m;
        if (n >= room - 1)
            n = room - 2; /* truncated: keep the newline */
    }
    buf[n++] = '\n';
    /* Best effort: a logger has nowhere to report its own failure. */
    ssize_t w = write(fd, buf, n);
    (void)w;
}

/* Formats one line (and a note of dropped lines, if any) and writes it where lines go. */
static void write_line(int level, const char *tag, uint32_t dropped, const char *fmt,
                       va_list ap)
{
    char msg[LINE_MAX_BYTES];
    int n, m;
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    int format = atomic_load_explicit(&log_format, memory_order_relaxed);

    level = level < 0 ? 0 : level > IDM_LOG_TRACE ? IDM_LOG_TRACE : level;
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    if (dropped && (size_t)n < sizeof(msg) &&
        (m = snprintf(msg + n, sizeof(msg) - (size_t)n, " (%u similar lines dropped)",
                      dropped)) > 0)
        n += m;
    emit(fd, format, level, tag, msg);
    if (level == IDM_LOG_ERROR && fd != STDERR_FILENO &&
        atomic_load_explicit(&log_errors_to_stderr, memory_order_relaxed))
        emit(STDERR_FILENO, IDM_LOG_FMT_PLAIN, level, tag, msg);
}

void idm_log_vwrite(int level, const char *tag, const char *fmt, va_list ap)
{
    write_line(level, tag, 0, fmt, ap);
}

void idm_log_write(int level, const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(level, tag, 0, fmt, ap);
    va_end(ap);
}

void idm_log_msg(int level, const char *tag, const char *fmt, ...)
{
    va_list ap;

    if (!IDM_LOG_ON(level))
        return;
    va_start(ap, fmt);
    write_line(level, tag, 0, fmt, ap);
    va_end(ap);
}

int idm_log_bucket_take(struct idm_log_bucket *b, uint64_t now)
{
    const uint64_t per_token = 1000000000ull / IDM_LOG_LIMIT_RATE;
    uint64_t earned;

    if (b->refill_ns == 0 || now < b->refill_ns) {
        b->tokens = IDM_LOG_LIMIT_BURST;
        b->refill_ns = now;
    }
    earned = (now - b->refill_ns) / per_token;
    if (earned >= IDM_LOG_LIMIT_BURST - b->tokens) {
        b->tokens = IDM_LOG_LIMIT_BURST;
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

void idm_log_limited(struct idm_log_bucket *b, int level, const char *tag, const char *fmt, ...)
{
    struct timespec ts;
    va_list ap;

    if (!IDM_LOG_ON(level))
        return;
    /* The coarse clock is enough for 200 ms tokens and costs no system call. */
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        ts = (struct timespec){0, 0};
    if (!idm_log_bucket_take(b, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec)) {
        b->dropped++;
        return;
    }
    va_start(ap, fmt);
    write_line(level, tag, b->dropped, fmt, ap);
    va_end(ap);
    b->dropped = 0;
}
