/* admin.h - gpu_proxy's admin socket (DIR/admin.sock): one request line, one answer, as
 * docs/CONTRACTS.md describes (PING, ADD, REMOVE, LIST, STATS). Runs in the supervisor's poll
 * loop and never blocks it. */
#ifndef GPU_PROXY_ADMIN_H
#define GPU_PROXY_ADMIN_H

#include <poll.h>

struct sup;
struct admin_conn;

int admin_open(struct sup *S);
/* Closes the listener and every connection (answers not yet sent are lost). */
void admin_close(struct sup *S);
/* Adds the listener (not while starting) and the connections to pfd[*n .. cap), drops those
 * past their idle time; returns the milliseconds to the next such deadline, or -1. */
int admin_poll_add(struct sup *S, struct pollfd *pfd, nfds_t *n, nfds_t cap);
/* After poll: reads requests, answers them, writes pending answers, accepts connections. */
void admin_poll_done(struct sup *S, const struct pollfd *pfd);
/* Queues the whole answer and sends what the peer takes now; the connection closes once it
 * is all sent (or the peer does not take it within ADMIN_IDLE_MS). */
void admin_answer(struct admin_conn *c, const char *text);

#endif /* GPU_PROXY_ADMIN_H */
