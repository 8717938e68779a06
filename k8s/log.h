/* log.h - leveled logging of the device plugin to stderr (one line per event, with a UTC time
 * stamp and the level), so the kubelet's `kubectl logs` shows what happened and why. */
#ifndef VGPU_K8S_LOG_H
#define VGPU_K8S_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Sets the threshold; returns 0, or -EINVAL for an unknown name (error/warn/info/debug). */
int log_set_level(const char *name);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* snprintf for messages where cutting a long path short is fine. */
void fmt_msg(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
