/* idm_log.h - the one logger of every component (libidm, gpu_proxy, libvgpu, the device plugin):
 * levelled lines on stderr, one write(2) each, in the line format the process chose (plain,
 * journald priority prefix, or UTC time stamp), and token buckets that bound what a peer can make
 * us log. Meant for error paths and rare events: the level test is one load of a cached integer.
 * Components keep their own call-site names as thin wrappers (gpu-proxy/log.h, k8s/log.h,
 * libvgpu/vgpu.h, zone-runtime/rlog.h). */
#ifndef IDM_LOG_H
#define IDM_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum idm_log_level {
    IDM_LOG_OFF = -1, /* nothing at all (tests that provoke errors on purpose) */
    IDM_LOG_ERROR = 0,
    IDM_LOG_WARN = 1,
    IDM_LOG_INFO = 2,
    IDM_LOG_DEBUG = 3,
    IDM_LOG_TRACE = 4,
};

/* How a line looks; one per process, chosen by its main component before it logs. */
enum idm_log_format {
    IDM_LOG_FMT_PLAIN = 0, /* "tag: level: message" (the default: libidm, libvgpu) */
    IDM_LOG_FMT_JOURNAL,   /* "<prio>tag: message", a journald priority (gpu_proxy) */
    IDM_LOG_FMT_STAMPED,   /* "2026-12-03T10:00:00.123Z level tag: message", UTC (k8s) */
    IDM_LOG_FMT_JSON,      /* {"level":"error","msg":"message","time":"...Z"} (no tag): the shape
                              runc writes with --log-format json (zone-runtime) */
};

/* The level in force: set by idm_log_set_level, else read once from $IDM_LOG (default warn). */
int idm_log_level(void);
/* Sets the level; values outside [IDM_LOG_OFF, IDM_LOG_TRACE] are clamped. */
void idm_log_set_level(int level);
void idm_log_set_format(enum idm_log_format format);
/* Lines go to fd instead of stderr (the caller keeps fd open for the process's life); with
 * errors_to_stderr, error lines also go to stderr in the plain format (an OCI runtime's --log
 * file, whose errors the engine also reads from stderr). fd < 0: back to stderr alone. */
void idm_log_set_fd(int fd, int errors_to_stderr);

/* Parses "off", "error", "warn", "info", "debug", "trace" (or a digit 0-4) into a level;
 * -EINVAL when unknown. */
int idm_log_parse_level(const char *s);

#define IDM_LOG_ON(level) ((level) <= idm_log_level())

/* Writes one line (no level test: use idm_log_msg or the macros). A NULL or empty tag is left
 * out. Lines longer than 1 KiB are cut, keeping their newline. */
void idm_log_write(int level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void idm_log_vwrite(int level, const char *tag, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* idm_log_write if level is enabled. */
void idm_log_msg(int level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- rate limiting ----
 * A token bucket bounds the lines of one source: IDM_LOG_LIMIT_BURST lines at once, then
 * IDM_LOG_LIMIT_RATE lines a second. Lines over the limit are counted, not formatted; the next
 * line that passes ends with "(N similar lines dropped)". A zeroed bucket is full. Not locked:
 * a bucket belongs to one thread. */
#define IDM_LOG_LIMIT_BURST 20
#define IDM_LOG_LIMIT_RATE 5
struct idm_log_bucket {
    uint64_t refill_ns; /* CLOCK_MONOTONIC time the tokens were last topped up; 0: never */
    uint32_t tokens;
    uint32_t dropped;   /* lines refused since the last one written */
};

/* The calling thread's bucket, for sources that are threads (gpu_proxy serves each session from
 * its own thread and each stream from its own worker). */
extern _Thread_local struct idm_log_bucket idm_log_thread_bucket;

/* Tops b up for the time up to now_ns and takes a token: 1, or 0 when b is empty. */
int idm_log_bucket_take(struct idm_log_bucket *b, uint64_t now_ns);

/* idm_log_msg through bucket b: written if level is enabled and b has a token. */
void idm_log_limited(struct idm_log_bucket *b, int level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* libidm's own lines. */
#define IDM_LOG_AT(level, tag, ...)                                                             \
    do {                                                                                        \
        if (IDM_LOG_ON(level))                                                                  \
            idm_log_write((level), (tag), __VA_ARGS__);                                         \
    } while (0)

#define IDM_ERR(...) IDM_LOG_AT(IDM_LOG_ERROR, "idm", __VA_ARGS__)
#define IDM_WARN(...) IDM_LOG_AT(IDM_LOG_WARN, "idm", __VA_ARGS__)
#define IDM_INFO(...) IDM_LOG_AT(IDM_LOG_INFO, "idm", __VA_ARGS__)
#define IDM_DEBUG(...) IDM_LOG_AT(IDM_LOG_DEBUG, "idm", __VA_ARGS__)

#endif /* IDM_LOG_H */
