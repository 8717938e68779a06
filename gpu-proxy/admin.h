/* admin.h - gpu_proxy's admin socket (DIR/admin.sock): one request line, one answer, as
 * docs/CONTRACTS.md describes (PING, ADD, REMOVE, LIST, STATS, METRICS). Its connections
 * (S->admin, conn.h) run in the supervisor's poll loop and never block it. */
#ifndef GPU_PROXY_ADMIN_H
#define GPU_PROXY_ADMIN_H

struct sup;

/* Binds DIR/admin.sock and sets up S->admin; close it with conn_server_close. */
int admin_open(struct sup *S);

#endif /* GPU_PROXY_ADMIN_H */
