/* rlog.h - the runtime's log: --log FILE (default: stderr only) in --log-format text or json
 * (runc's shape, {"level","msg","time"}, which containerd's shim and podman read back on
 * failure). Errors also go to stderr. */
#ifndef VGPU_ZONE_RLOG_H
#define VGPU_ZONE_RLOG_H

enum rlog_level { RLOG_ERROR, RLOG_WARN, RLOG_INFO, RLOG_DEBUG };

/* 0, or -errno when the file cannot be opened (logging then goes to stderr). */
int rlog_open(const char *path, int json, enum rlog_level level);
void rlog(enum rlog_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define rlog_err(...) rlog(RLOG_ERROR, __VA_ARGS__)
#define rlog_warn(...) rlog(RLOG_WARN, __VA_ARGS__)
#define rlog_info(...) rlog(RLOG_INFO, __VA_ARGS__)

#endif
