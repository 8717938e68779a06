/* log.h - the device plugin's names for the one logger (idm-protocol/idm_log.h): one line per
 * event on stderr with a UTC time stamp and the level, so the kubelet's `kubectl logs` shows
 * what happened and why. */
#ifndef VGPU_K8S_LOG_H
#define VGPU_K8S_LOG_H

#include <stddef.h>

#include "idm_log.h"

enum log_level {
    LOG_ERROR = IDM_LOG_ERROR,
    LOG_WARN = IDM_LOG_WARN,
    LOG_INFO = IDM_LOG_INFO,
    LOG_DEBUG = IDM_LOG_DEBUG,
};

/* Sets the threshold; returns 0, or -EINVAL for an unknown name (error/warn/info/debug/trace). */
int log_set_level(const char *name);

/* snprintf for messages where cutting a long path short is fine. */
void fmt_msg(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The plugin's lines carry no tag: the stamp and the level say enough in `kubectl logs`. */
#define log_msg(level, ...) idm_log_msg((level), NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
