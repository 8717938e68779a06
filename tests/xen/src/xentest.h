/* xentest.h - what the Xen transport test's programs share: the ops the dom0 echo server
 * answers (numbers outside idm_ops.def's range, payloads defined here), the window pattern both
 * sides check, and the verdict line format read back from the serial console. */
#ifndef XENTEST_H
#define XENTEST_H

#include <stdint.h>
#include <stdio.h>

enum {
    XT_OP_PING = 0x7F01,   /* payload echoed back */
    XT_OP_WHOAMI = 0x7F02, /* reply: struct xt_whoami, the peer as the transport reports it */
    XT_OP_BULK = 0x7F03,   /* struct xt_bulk_req -> struct xt_bulk_rep */
    XT_OP_SUM = 0x7F04,    /* struct xt_bulk_req -> xt_bulk_rep.checksum = sum of the 64-bit
                            * words of window[off, off+len) (the throughput measurement) */
};

struct xt_whoami {
    int32_t domid;
    int32_t pid;
};

/* The server checks that window[off, off+len) holds pattern(seed), then overwrites it with
 * pattern(seed + 1) and replies with what it found. */
struct xt_bulk_req {
    uint64_t off;
    uint64_t len;
    uint32_t seed;
    uint32_t pad;
};

struct xt_bulk_rep {
    uint64_t mismatches; /* bytes that differed from pattern(seed) */
    uint64_t checksum;   /* FNV-1a of what the server read */
};

/* A byte pattern that differs with position and seed. */
static inline void xt_pattern(uint8_t *p, uint64_t len, uint32_t seed)
{
    uint64_t x = 0x9E3779B97F4A7C15ull ^ seed;
    for (uint64_t i = 0; i < len; i++) {
        if ((i & 7) == 0)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(x >> (8 * (i & 7)));
    }
}

static inline uint64_t xt_mismatches(const uint8_t *p, uint64_t len, uint32_t seed)
{
    uint64_t x = 0x9E3779B97F4A7C15ull ^ seed, bad = 0;
    for (uint64_t i = 0; i < len; i++) {
        if ((i & 7) == 0)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        bad += p[i] != (uint8_t)(x >> (8 * (i & 7)));
    }
    return bad;
}

static inline uint64_t xt_fnv1a(const uint8_t *p, uint64_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint64_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* One verdict line; run.sh counts these on the serial console. */
#define XT_VERDICT(name, ok, ...)                                                               \
    do {                                                                                        \
        printf("XENTEST CASE %s %s ", (name), (ok) ? "PASS" : "FAIL");                          \
        printf(__VA_ARGS__);                                                                    \
        printf("\n");                                                                           \
        fflush(stdout);                                                                         \
    } while (0)

#endif /* XENTEST_H */
