/* proxy_admin.h - client of gpu_proxy's admin socket (docs/CONTRACTS.md): one request line, one
 * reply line (more for LIST), then the proxy closes the connection. */
#ifndef VGPU_K8S_PROXY_ADMIN_H
#define VGPU_K8S_PROXY_ADMIN_H

#include <stddef.h>
#include <stdint.h>

struct admin_zone {
    char name[64];
    uint64_t quota;
    uint64_t used;
    unsigned clients;
    /* Optional key=value fields after the first four (empty / 0 when the proxy sends none). */
    char state[16];                 /* state=: ready, starting, restarting, down, removing */
    unsigned restarts;              /* restarts=: the zone's worker restarts so far */
};

/* Sends `line` (no newline) and reads the whole reply into a malloc'd string (*reply, NUL
 * terminated). Returns 0 if the first line starts with "OK", -EREMOTEIO if it is "ERR ..."
 * (err holds the reason), other -errno when the proxy could not be reached (err says why). */
int admin_request(const char *sock, const char *line, char **reply, char *err, size_t errlen);

/* PING; on success info holds the reply after "OK ". */
int admin_ping(const char *sock, char *info, size_t infolen, char *err, size_t errlen);
/* ADD name quota; on success zone_sock holds the zone's socket path. */
int admin_add(const char *sock, const char *name, uint64_t quota, char *zone_sock,
              size_t zone_sock_len, char *err, size_t errlen);
/* REMOVE name. */
int admin_remove(const char *sock, const char *name, char *err, size_t errlen);
/* LIST; *zones is malloc'd (free it), *n its length. Beyond the four fields of the contract it
 * reads state= and restarts= when present and ignores other key=value fields. */
int admin_list(const char *sock, struct admin_zone **zones, size_t *n, char *err, size_t errlen);
/* The GPU memory the proxy reports (a total_bytes=/memory_bytes=/total_memory=/total= token in
 * the PING or STATS reply), or 0 when it reports none. */
uint64_t admin_total_memory(const char *sock);

/* Parses "<digits>[K|M|G|T][i][B]" (binary multiples) into *out; 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);
/* Reads the optional key=value fields of one LIST line (after its first four fields) into z;
 * tokens it does not know, or cannot parse, are ignored. */
void admin_parse_zone_keys(const char *line, struct admin_zone *z);
/* Finds `key=<size>` among the space-separated tokens of text; 0 when absent or invalid. */
uint64_t find_size_token(const char *text, const char *key);

#endif
