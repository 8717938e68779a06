/* idm_log.h - levelled logging to stderr shared by every component (IDM_LOG=error|warn|info|
 * debug|trace, default warn). Meant for error paths and rare events, never for the hot path:
 * the level test is one load of a cached integer. */
#ifndef IDM_LOG_H
#define IDM_LOG_H

#include <stdarg.h>

enum idm_log_level {
    IDM_LOG_OFF = -1, /* nothing at all (tests that provoke errors on purpose) */
    IDM_LOG_ERROR = 0,
    IDM_LOG_WARN = 1,
    IDM_LOG_INFO = 2,
    IDM_LOG_DEBUG = 3,
    IDM_LOG_TRACE = 4,
};

/* The level in force: set by idm_log_set_level, else read once from $IDM_LOG. */
int idm_log_level(void);
void idm_log_set_level(int level);

/* Parses "off", "error", "warn", "info", "debug", "trace" (or a digit 0-4) into a level;
 * -EINVAL when unknown. */
int idm_log_parse_level(const char *s);

/* Writes "<tag>: <level>: <message>\n" to stderr in one write (no level test: use the macros). */
void idm_log_write(int level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void idm_log_vwrite(int level, const char *tag, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define IDM_LOG_AT(level, tag, ...)                                                             \
    do {                                                                                        \
        if ((level) <= idm_log_level())                                                         \
            idm_log_write((level), (tag), __VA_ARGS__);                                         \
    } while (0)

#define IDM_ERR(...) IDM_LOG_AT(IDM_LOG_ERROR, "idm", __VA_ARGS__)
#define IDM_WARN(...) IDM_LOG_AT(IDM_LOG_WARN, "idm", __VA_ARGS__)
#define IDM_INFO(...) IDM_LOG_AT(IDM_LOG_INFO, "idm", __VA_ARGS__)
#define IDM_DEBUG(...) IDM_LOG_AT(IDM_LOG_DEBUG, "idm", __VA_ARGS__)

#endif /* IDM_LOG_H */
