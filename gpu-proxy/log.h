/* log.h - gpu_proxy's names for the one logger (idm-protocol/idm_log.h): one line per event on
 * stderr with a journald priority prefix ("<3>" error ... "<7>" debug) once log_init has run,
 * behind a run-time level so the hot path pays one comparison, and rate-limited lines
 * (log_limited) for what a tenant can trigger at will (refused requests). */
#ifndef GPU_PROXY_LOG_H
#define GPU_PROXY_LOG_H

#include "idm_log.h"

enum log_level {
    LOG_OFF = IDM_LOG_OFF,
    LOG_ERR = IDM_LOG_ERROR,
    LOG_WARN = IDM_LOG_WARN,
    LOG_INFO = IDM_LOG_INFO,
    LOG_DEBUG = IDM_LOG_DEBUG,
    LOG_TRACE = IDM_LOG_TRACE,
};

#define LOG_TAG "gpu_proxy"
#define LOG_LIMIT_BURST IDM_LOG_LIMIT_BURST
#define LOG_LIMIT_RATE IDM_LOG_LIMIT_RATE

/* gpu_proxy's defaults, first thing in main: journald prefixes (libidm's lines too), level info. */
static inline void log_init(void)
{
    idm_log_set_format(IDM_LOG_FMT_JOURNAL);
    idm_log_set_level(IDM_LOG_INFO);
}

/* Parses "error", "warn", "info", "debug", "trace" (or "off"). Returns the level or -EINVAL. */
static inline int log_level_parse(const char *s)
{
    return idm_log_parse_level(s);
}

static inline void log_set_level(int level)
{
    idm_log_set_level(level);
}

/* The calling thread's token bucket: each session is served by its own thread and each stream
 * by its own worker, so this bounds what one session (or one of its streams) can log. */
#define log_thread_bucket idm_log_thread_bucket

#define LOG_ENABLED(lvl) IDM_LOG_ON(lvl)
#define log_msg(level, ...) idm_log_msg((level), LOG_TAG, __VA_ARGS__)
/* log_msg through bucket b (a struct idm_log_bucket): written if b has a token. */
#define log_limited(b, level, ...) idm_log_limited((b), (level), LOG_TAG, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
/* The verbose levels skip evaluating their arguments when disabled. */
#define log_info(...) IDM_LOG_AT(LOG_INFO, LOG_TAG, __VA_ARGS__)
#define log_debug(...) IDM_LOG_AT(LOG_DEBUG, LOG_TAG, __VA_ARGS__)
#define log_trace(...) IDM_LOG_AT(LOG_TRACE, LOG_TAG, __VA_ARGS__)

#endif /* GPU_PROXY_LOG_H */
