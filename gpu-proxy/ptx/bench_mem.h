/* bench_mem.h - the simulated zone memory the PTX benchmarks (gpu-proxy/ptx/bench_ptx.c,
 * bench/sim_bench.c) launch against: up to BMEM_NBUF host buffers at fixed fake device
 * addresses, and the resolver ptx_launch calls to map a device range onto them. Header only;
 * out of memory ends the program (a benchmark has nothing to fall back to). */
#ifndef BENCH_MEM_H
#define BENCH_MEM_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BMEM_NBUF 4
struct bmem {
    uint64_t dev[BMEM_NBUF];
    size_t size[BMEM_NBUF];
    void *host[BMEM_NBUF];
    int n;
};

/* ptx_resolve_fn: the host bytes behind [addr, addr+len), or NULL outside every buffer. */
static inline void *bresolve(void *ctx, uint64_t addr, uint64_t len, uint64_t *base,
                             uint64_t *size)
{
    struct bmem *m = ctx;
    for (int i = 0; i < m->n; i++)
        if (addr >= m->dev[i] && addr - m->dev[i] <= m->size[i] &&
            len <= m->size[i] - (addr - m->dev[i])) {
            *base = m->dev[i];
            *size = m->size[i];
            return (char *)m->host[i] + (addr - m->dev[i]);
        }
    return NULL;
}

static inline void *bmem_calloc(const char *prog, size_t n)
{
    void *p = calloc(1, n);
    if (!p) {
        fprintf(stderr, "%s: out of memory (%zu bytes)\n", prog, n);
        exit(1);
    }
    return p;
}

/* A zeroed device buffer; returns its device address, *host (if not NULL) its bytes. */
static inline uint64_t bmem_alloc(struct bmem *m, const char *prog, size_t size, void **host)
{
    if (m->n == BMEM_NBUF) {
        fprintf(stderr, "%s: more than %d buffers in one workload\n", prog, BMEM_NBUF);
        exit(1);
    }
    m->host[m->n] = bmem_calloc(prog, size);
    m->dev[m->n] = 0x100000000000ull + (uint64_t)m->n * 0x100000000ull;
    m->size[m->n] = size;
    if (host)
        *host = m->host[m->n];
    return m->dev[m->n++];
}

static inline void bmem_free(struct bmem *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->host[i]);
    m->n = 0;
}

#endif
