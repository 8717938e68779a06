/* check.h - shared helpers of the end-to-end kernel programs: CUDA call checking, poison
 * filling and result reporting. Each program exits 0 when every element matched. */
#ifndef KERNELS_CHECK_H
#define KERNELS_CHECK_H

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(call)                                                                        \
    do {                                                                                \
        cudaError_t _e = (call);                                                        \
        if (_e != cudaSuccess) {                                                        \
            fprintf(stderr, "%s:%d: %s failed: %s (%d)\n", __FILE__, __LINE__, #call,   \
                    cudaGetErrorString(_e), (int)_e);                                   \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

#define POISON_BYTE 0xA7

/* Fills a device buffer with the poison byte so unwritten outputs cannot pass. */
static inline void poison(void *dev, size_t bytes)
{
    CK(cudaMemset(dev, POISON_BYTE, bytes));
}

static inline unsigned lcg(unsigned *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static inline int close_enough(double got, double want, double rel)
{
    if (isnan(want))
        return isnan(got);
    if (got == want)
        return 1;
    return fabs(got - want) <= rel * fabs(want) || fabs(got - want) <= rel;
}

/* Counts and prints (the first few) mismatches; returns the process exit status. */
struct report {
    const char *name;
    long bad, checked;
};

static inline void report_bad(struct report *r, long idx, double got, double want)
{
    if (r->bad < 10)
        fprintf(stderr, "%s: element %ld = %.17g, expected %.17g\n", r->name, idx, got, want);
    r->bad++;
}

static inline int report_done(const struct report *r)
{
    if (r->bad) {
        fprintf(stderr, "%s: FAILED, %ld of %ld elements wrong\n", r->name, r->bad,
                r->checked);
        return 1;
    }
    printf("%s: OK, %ld elements checked\n", r->name, r->checked);
    return 0;
}

#endif
