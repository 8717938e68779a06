/* metrics_load.c - the workload of the metrics integration test: over the real IDM protocol,
 * zone a allocates 1 + 4 MiB and zone b 3 MiB, zone b tries zone a's context handle once (a
 * refusal), then both keep copying 4 KiB in and out until SIGTERM, holding their memory.
 * Prints "ready" once the state the test checks is in place. Usage: metrics_load LISTEN_DIR */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proxy_client.h"

#define MiB (1ull << 20)

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int open_zone(struct pc *p, const char *dir, const char *zone, idm_handle *ctx)
{
    char path[300];
    struct idm_rep_HELLO h;

    snprintf(path, sizeof(path), "%s/%s.sock", dir, zone);
    if (pc_connect(p, path) != 0 || pc_hello(p, &h) != 0 || pc_ctx(p, ctx) != 0) {
        fprintf(stderr, "metrics_load: cannot open zone %s at %s\n", zone, path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct pc a, b;
    idm_handle xa, xb;
    idm_dptr a1, a2, b1, junk;
    static unsigned char buf[4096];

    if (argc != 2) {
        fprintf(stderr, "usage: metrics_load LISTEN_DIR\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    if (open_zone(&a, argv[1], "a", &xa) != 0 || open_zone(&b, argv[1], "b", &xb) != 0)
        return 1;
    if (pc_alloc(&a, xa, 1 * MiB, &a1) != 0 || pc_alloc(&a, xa, 4 * MiB, &a2) != 0 ||
        pc_alloc(&b, xb, 3 * MiB, &b1) != 0) {
        fprintf(stderr, "metrics_load: an allocation failed\n");
        return 1;
    }
    if (pc_alloc(&b, xa, 1 * MiB, &junk) == 0) {
        fprintf(stderr, "metrics_load: zone b could use zone a's context\n");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    while (!stop) {
        if (pc_htod(&a, a2, buf, sizeof(buf)) != 0 || pc_dtoh(&a, buf, a2, sizeof(buf)) != 0 ||
            pc_htod(&b, b1, buf, sizeof(buf)) != 0) {
            fprintf(stderr, "metrics_load: a copy failed\n");
            return 1;
        }
        usleep(2000);
    }
    pc_close(&a);
    pc_close(&b);
    return 0;
}
