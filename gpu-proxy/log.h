/* log.h - gpu_proxy's logging: one line per event on stderr with a journald priority prefix
 * ("<3>" error ... "<7>" debug), behind a run-time level so the hot path pays one comparison. */
#ifndef GPU_PROXY_LOG_H
#define GPU_PROXY_LOG_H

enum log_level { LOG_OFF = -1, LOG_ERR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

extern int log_level_current;

/* Parses "error", "warn", "info", "debug", "trace". Returns the level or -EINVAL. */
int log_level_parse(const char *s);
void log_set_level(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

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
