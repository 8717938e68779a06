/* proxy_ctl.h - runs a private gpu_proxy for a benchmark: starts it pinned to a CPU in its own
 * listen directory, talks to its admin socket (docs/CONTRACTS.md), moves it between CPUs and
 * stops it. */
#ifndef BENCH_PROXY_CTL_H
#define BENCH_PROXY_CTL_H

#include <stddef.h>
#include <sys/types.h>

struct proxy {
    pid_t pid;
    char dir[128];   /* listen directory (mkdtemp) */
    char admin[192]; /* <dir>/admin.sock */
    char log[192];   /* <dir>/proxy.log: the proxy's stderr */
};

/* Starts `binary --listen DIR [args] [$BENCH_PROXY_ARGS]` (args: space-separated, may be
 * NULL) pinned to cpu and waits (up to 10 s) until its admin socket answers PING. */
int proxy_start(struct proxy *p, const char *binary, const char *args, int cpu);

/* One admin request line; the first reply line goes to reply. 0 if the reply starts with "OK",
 * -EREMOTEIO with the ERR line in reply otherwise, -errno on socket errors. */
int proxy_admin(const struct proxy *p, const char *request, char *reply, size_t len);

/* The pid of the zone's serving worker (LIST's pid= field): 0, -ESRCH while it has none,
 * -ENOENT if the zone is not listed, or the error of the request. */
int proxy_zone_pid(const struct proxy *p, const char *zone, int *pid);

/* Adds a zone and returns its socket path. */
int proxy_add_zone(const struct proxy *p, const char *name, const char *quota, char *sock,
                   size_t len);

/* Pins every thread of the proxy to cpu: the supervisor's and its worker processes'. */
int proxy_pin(const struct proxy *p, int cpu);

/* Stops the proxy (SIGTERM, then SIGKILL after 5 s) and removes its directory. */
void proxy_stop(struct proxy *p);

#endif /* BENCH_PROXY_CTL_H */
