/* proxy_client.h - test-side helpers for gpu_proxy's tests: start a proxy process, talk the real
 * IDM protocol to a zone socket as a client (op structs from idm_ops.def), and ask the admin
 * socket. Used only by tests/proxy. */
#ifndef PROXY_CLIENT_H
#define PROXY_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "idm.h"
#include "idm_transport.h"

struct pc {
    struct idm_conn *c;
    uint64_t seq;
    uint8_t *win;
    uint64_t wsize;
    struct idm_msg m;
};

/* Connects to a zone socket; 0 or -errno. */
int pc_connect(struct pc *p, const char *path);
void pc_close(struct pc *p);

/* Sends one request and waits for its reply. Returns the reply's status (a CUresult), or a
 * negative errno when the connection failed. The reply payload (fixed struct and tail) is
 * copied to rep (at most rep_cap bytes); *rep_len gets its full length. */
int pc_call(struct pc *p, uint16_t op, const void *req, size_t req_len, const void *tail,
            size_t tail_len, void *rep, size_t rep_cap, uint32_t *rep_len);

/* Convenience wrappers (return the CUresult). */
int pc_hello(struct pc *p, struct idm_rep_HELLO *out);
int pc_ctx(struct pc *p, idm_handle *ctx);
int pc_alloc(struct pc *p, idm_handle ctx, uint64_t size, idm_dptr *out);
int pc_free(struct pc *p, idm_dptr d);
/* Copies through the window at offset 0. */
int pc_htod(struct pc *p, idm_dptr dst, const void *src, uint64_t len);
int pc_dtoh(struct pc *p, void *dst, idm_dptr src, uint64_t len);

/* Kernels: uploads NUL-terminated PTX text through the window and loads it as a library of
 * context ctx; looks a kernel up by name; launches it on a 1x1x1 grid with one 8-byte
 * parameter on stream st (0: the default stream); synchronises the current context. Each
 * returns the CUresult (or a negative errno when the connection failed). */
int pc_load_ptx(struct pc *p, idm_handle ctx, const char *ptx, idm_handle *library);
int pc_get_kernel(struct pc *p, idm_handle library, const char *name, idm_handle *kernel);
int pc_launch1(struct pc *p, idm_handle kernel, idm_handle st, uint64_t arg);
int pc_sync(struct pc *p);

/* Starts `bin --backend B --listen dir --log-level L extra...` (B: $PROXY_BACKEND or stub; L:
 * $PROXY_LOG_LEVEL or warn), waits until its admin socket answers PING. Returns the pid, or -1. */
pid_t proxy_start(const char *bin, const char *dir, const char *const *extra);
/* The same, with the proxy's stdout and stderr (its workers' too) written to the file `log`
 * (created or truncated) instead of the caller's stderr. */
pid_t proxy_start_log(const char *bin, const char *dir, const char *const *extra,
                      const char *log);
/* Sends SIGTERM, waits, returns the exit status (or -1 if it did not exit normally). */
int proxy_stop(pid_t pid);

/* One admin request; the whole answer (all lines) in out. 0 or -errno. */
int admin_cmd(const char *dir, const char *cmd, char *out, size_t outlen);
/* What LIST says of one zone: the four fixed fields, and the key=value fields found (keys). */
enum { PC_ZONE_STATE = 1, PC_ZONE_PID = 2, PC_ZONE_RESTARTS = 4, PC_ZONE_FAULTS = 8,
       PC_ZONE_ALL = 15, PC_ZONE_CGROUP = 16 };
struct pc_zone {
    unsigned long long quota, used;
    int clients;
    char state[32];
    int pid;
    unsigned restarts, faults;
    char cgroup[8];
    unsigned keys; /* PC_ZONE_* */
};
/* The one LIST parser of the tests: the zone's line; 0, or -1 if the zone is not listed. */
int admin_zone_info(const char *dir, const char *zone, struct pc_zone *out);
/* Values from the admin socket: STATS scrubbed_bytes, and LIST used/clients of a zone (-1 if the
 * zone is not listed). */
long long admin_scrubbed(const char *dir);
int admin_zone(const char *dir, const char *zone, long long *used, int *clients);
/* LIST's pid= and restarts= of a zone's serving worker; 0, or -1 if the zone is not listed or
 * its line lacks them. */
int admin_zone_worker(const char *dir, const char *zone, int *pid, unsigned *restarts);

#endif /* PROXY_CLIENT_H */
