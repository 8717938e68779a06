/* ring_echo.h - the IDM peer the ring and window benchmarks talk to: a server process (pinned
 * to a CPU) that echoes 64-byte pings, copies window chunks out into private memory and
 * checksums what it received, and the client session that drives it over the POSIX transport. */
#ifndef BENCH_RING_ECHO_H
#define BENCH_RING_ECHO_H

#include <stdint.h>
#include <sys/types.h>

#include "idm_transport.h"

/* The 32-byte payload of every benchmark message (header 32 + payload 32 = 64 bytes). */
enum { CMD_PING = 1, CMD_CHUNK = 2, CMD_SUM = 3, CMD_STOP = 4 };
struct bench_msg {
    uint32_t cmd;
    uint32_t pad;
    uint64_t a, b, c; /* CMD_CHUNK: window offset, length, destination offset; CMD_SUM: length */
};
_Static_assert(sizeof(struct bench_msg) == 32, "64-byte messages with the 32-byte header");

#define MIB (1024ull * 1024ull)
#define WINDOW_MAX_BYTES (64 * MIB) /* the largest streamed transfer */
#define SPIN_DEFAULT UINT32_MAX      /* keep the transport's default spin budget */

struct session {
    pid_t pid;
    int srv_cpu;
    char dir[64];   /* private directory of the server's socket */
    char sock[128];
    struct idm_conn *c;
    struct idm_msg m;
    uint64_t seq;
};

/* Starts an echo server pinned to srv_cpu and connects to it; spin_us applies to both ends
 * (SPIN_DEFAULT: the transport's default). 0 or -errno. */
int session_open(struct session *s, int srv_cpu, uint32_t spin_us);

/* One request and its reply (the reply's payload replaces *msg). */
int session_call(struct session *s, struct bench_msg *msg);

/* Stops the server and closes the connection. */
int session_close(struct session *s);

/* Position-sensitive checksum (what CMD_SUM returns). */
uint64_t echo_fnv1a(const uint8_t *p, size_t n);

#endif /* BENCH_RING_ECHO_H */
