/* admin.h - gpu_proxy's admin socket (DIR/admin.sock): one request line, one answer, as
 * docs/CONTRACTS.md describes (PING, ADD, REMOVE, LIST, STATS). Runs in the supervisor. */
#ifndef GPU_PROXY_ADMIN_H
#define GPU_PROXY_ADMIN_H

struct sup;

int admin_open(struct sup *S);
void admin_close(struct sup *S);
/* Accepts one connection and answers its request (REMOVE answers later, see sup_zone_remove). */
void admin_accept(struct sup *S);
/* Writes a whole answer (best effort, logged on failure). */
void admin_reply(int fd, const char *text);

#endif /* GPU_PROXY_ADMIN_H */
