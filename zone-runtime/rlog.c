/* rlog.c - the runtime's log (see rlog.h) on the one logger, idm_log: where its lines go and in
 * which shape, chosen from the global --log and --log-format options. */
#include "rlog.h"

#include "idm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

int rlog_open(const char *path, int json, enum rlog_level level)
{
    int fd;

    idm_log_set_level((int)level);
    if (!path || !*path)
        return 0;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    /* Kept open until the process ends: idm_log writes to it from then on. */
    idm_log_set_format(json ? IDM_LOG_FMT_JSON : IDM_LOG_FMT_STAMPED);
    idm_log_set_fd(fd, 1);
    return 0;
}

void rlog(enum rlog_level level, const char *fmt, ...)
{
    va_list ap;

    if (!IDM_LOG_ON((int)level))
        return;
    va_start(ap, fmt);
    idm_log_vwrite((int)level, "vgpu-zone-runtime", fmt, ap);
    va_end(ap);
}
