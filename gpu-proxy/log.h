/* log.h - gpu_proxy's logging: one line per event on stderr with a journald priority prefix
 * ("<3>" error ... "<7>" debug), behind a run-time level so the hot path pays one comparison,
 * and rate-limited lines for what a tenant can trigger at will (refused requests). */
#ifndef GPU_PROXY_LOG_H
#define GPU_PROXY_LOG_H

#include <stdint.h>

enum log_level { LOG_OFF = -1, LOG_ERR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

extern int log_level_current;

/* Parses "error", "warn", "info", "debug", "trace". Returns the level or -EINVAL. */
int log_level_parse(const char *s);
void log_set_level(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A token bucket bounding the lines of one source: LOG_LIMIT_BURST lines at once, then
 * LOG_LIMIT_RATE lines a second. Lines over the limit are counted, not formatted; the next line
 * that passes says how many were dropped. A zeroed bucket is full. Not locked: a bucket belongs
 * to one thread. */
#define LOG_LIMIT_BURST 20
#define LOG_LIMIT_RATE 5
struct log_bucket {
    uint64_t refill_ns;  /* CLOCK_MONOTONIC time the tokens were last topped up; 0: never */
    uint32_t tokens;
    uint32_t dropped;    /* lines refused since the last one written */
};

/* The calling thread's bucket. gpu_proxy serves each session from its own thread and runs each
 * stream on its own worker, so this bounds what one session (or one of its streams) can log. */
extern _Thread_local struct log_bucket log_thread_bucket;

/* log_msg through bucket b: writes the line if level is enabled and b has a token. */
void log_limited(struct log_bucket *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_ENABLED(lvl) ((lvl) <= log_level_current)
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)                                                                          \
    do {                                                                                       \
        if (LOG_ENABLED(LOG_INFO))                                                             \
            log_msg(LOG_INFO, __VA_ARGS__);                                                    \
    } while (0)
#define log_debug(...)                                                                         \
    do {                                                                                       \
        if (LOG_ENABLED(LOG_DEBUG))                                                            \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                   \
    } while (0)
#define log_trace(...)                                                                         \
    do {                                                                                       \
        if (LOG_ENABLED(LOG_TRACE))                                                            \
            log_msg(LOG_TRACE, __VA_ARGS__);                                                   \
    } while (0)

#endif /* GPU_PROXY_LOG_H */
