/* proxy_fixture.h - the set-up the integration tests share: a gpu_proxy started with zones in a
 * fresh directory, connections to its zones, its admin socket's LIST answer, its processes'
 * /proc figures, and the stop. Test code only (tests/proxy); it asserts through cmocka. */
#ifndef PROXY_FIXTURE_H
#define PROXY_FIXTURE_H

#include <stddef.h>
#include <sys/types.h>

#include "proxy_client.h"

struct proxy_fixture {
    char bin[512]; /* the gpu_proxy program */
    char dir[256]; /* its --listen directory */
    pid_t pid;     /* -1 while not started */
};


/* Makes /tmp/gpu-proxy-TAG.XXXXXX and starts bin there with extra arguments (proxy_start);
 * waits until it answers PING. 0 or -1. */
int fx_start(struct proxy_fixture *f, const char *bin, const char *tag,
             const char *const *extra);
/* Stops it (SIGTERM; it must exit 0) and removes the directory. 0 or -1. */
int fx_stop(struct proxy_fixture *f);
/* Connects p to the zone's socket (asserts that it worked). */
void fx_connect(const struct proxy_fixture *f, struct pc *p, const char *zone);
/* One admin request (admin_cmd). */
int fx_admin(const struct proxy_fixture *f, const char *cmd, char *out, size_t outlen);
/* The zone's LIST line with state=, pid=, restarts= and faults= (admin_zone_info); 0, or -1
 * when the zone is not listed or its line lacks one of them. */
int fx_zone_info(const struct proxy_fixture *f, const char *zone, struct pc_zone *out);
/* Waits (up to 5 s) until the zone has a ready worker other than old_pid; its pid, or -1. */
int fx_wait_worker(const struct proxy_fixture *f, const char *zone, int old_pid);
/* A field of /proc/PID/status ("VmRSS", "PPid", ...), without the key; 0 or -1. */
int fx_proc_field(int pid, const char *key, char *out, size_t cap);
/* VmRSS of a process in KiB, or -1. */
long fx_rss_kib(int pid);
/* User plus system CPU time of a process in clock ticks (/proc/PID/stat), or -1. */
long long fx_cpu_ticks(int pid);
/* Milliseconds of CLOCK_MONOTONIC. */
unsigned long long fx_now_ms(void);

#endif /* PROXY_FIXTURE_H */
