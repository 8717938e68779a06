// check.h - helpers shared by the CUDA test programs: every CUDA call is checked, every failed
// expectation prints what and where and makes the program exit non-zero.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

static int g_failures = 0;

#define CHECK(call)                                                                            \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,          \
                    cudaGetErrorName(e_), cudaGetErrorString(e_));                             \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

#define EXPECT(cond, ...)                                                                      \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: expected %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
            g_failures++;                                                                      \
        }                                                                                      \
    } while (0)

#define EXPECT_ERR(call, want)                                                                 \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        EXPECT(e_ == (want), "%s returned %s, want %s", #call, cudaGetErrorName(e_),           \
               cudaGetErrorName(want));                                                        \
    } while (0)

// Deterministic bytes from a seed (xorshift64*).
static void fill(void *p, size_t n, uint64_t seed)
{
    uint8_t *b = (uint8_t *)p;
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        b[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
    }
}

// FNV-1a 64.
static uint64_t checksum(const void *p, size_t n)
{
    const uint8_t *b = (const uint8_t *)p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int finish(const char *name)
{
    if (g_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, g_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}
