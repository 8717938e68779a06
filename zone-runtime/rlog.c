/* rlog.c - writes the runtime's log lines (see rlog.h); a JSON line escapes its message. */
#include "rlog.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static FILE *log_file;
static int log_json;
static enum rlog_level log_level = RLOG_INFO;
static const char *const level_names[] = {"error", "warning", "info", "debug"};

int rlog_open(const char *path, int json, enum rlog_level level)
{
    log_json = json;
    log_level = level;
    if (!path || !*path)
        return 0;
    if (!(log_file = fopen(path, "ae")))
        return -errno;
    setvbuf(log_file, NULL, _IOLBF, 0);
    return 0;
}

static void json_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}

void rlog(enum rlog_level level, const char *fmt, ...)
{
    char msg[2048], when[64];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    if (level > log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    if (level == RLOG_ERROR || !log_file)
        fprintf(stderr, "vgpu-zone-runtime: %s: %s\n", level_names[level], msg);
    if (!log_file)
        return;
    if (log_json) {
        fprintf(log_file, "{\"level\":\"%s\",\"msg\":\"", level_names[level]);
        json_escaped(log_file, msg);
        fprintf(log_file, "\",\"time\":\"%s.%09ldZ\"}\n", when, ts.tv_nsec);
    } else {
        fprintf(log_file, "%s.%09ldZ %s [%d] %s\n", when, ts.tv_nsec, level_names[level],
                (int)getpid(), msg);
    }
}
