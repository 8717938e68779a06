/* log.c - the device plugin's logging set-up on the one logger (idm_log): time-stamped lines at
 * level info from the start (before main parses --log-level), the level by name, and fmt_msg. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/* Runs before main, so that no line of the plugin or of its tests comes out in another format. */
__attribute__((constructor)) static void log_defaults(void)
{
    idm_log_set_format(IDM_LOG_FMT_STAMPED);
    idm_log_set_level(IDM_LOG_INFO);
}

int log_set_level(const char *name)
{
    int level = idm_log_parse_level(name);

    if (level < 0)
        return -EINVAL;
    idm_log_set_level(level);
    return 0;
}

void fmt_msg(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}
