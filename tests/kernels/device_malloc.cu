// device_malloc.cu - end-to-end: device-side malloc/free (issue 16). With a 64 KiB heap set by
// cudaDeviceSetLimit before the first launch, each of 256 threads mallocs a block, fills it,
// sums it back and frees it (every result checked); one thread then allocates 4 KiB blocks
// until malloc returns NULL (the heap is exhausted within its size), frees them and allocates
// again. The heap is charged to the zone: cudaMemGetInfo's free bytes drop by at least its size
// between before the size is set and after the first malloc-using launch (the simulated GPU
// makes it of zone memory at that launch; the real backend charges it when the driver is given
// the size), and setting the heap size after that launch is refused with cudaErrorInvalidValue,
// as CUDA documents.
#include "check.h"

#define THREADS 256
#define WORDS 16
#define HEAP_BYTES (64u << 10)
#define CHUNK 4096

__global__ void per_thread(unsigned *out)
{
    unsigned t = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned *p = (unsigned *)malloc(WORDS * sizeof(unsigned));
    if (p == NULL) {
        out[t] = 0xFFFFFFFFu;
        return;
    }
    for (unsigned i = 0; i < WORDS; i++)
        p[i] = t * 3 + i;
    unsigned sum = 0;
    for (unsigned i = 0; i < WORDS; i++)
        sum += p[i];
    free(p);
    out[t] = sum;
}

// res[0]: whether a block larger than the heap was NULL; res[1]: 4 KiB blocks obtained before
// NULL; res[2]: whether a block could be had again after freeing them all.
__global__ void exhaust(unsigned *res)
{
    void *blocks[64];
    unsigned n = 0;
    res[0] = malloc(2 * HEAP_BYTES) == NULL;
    while (n < 64 && (blocks[n] = malloc(CHUNK)) != NULL)
        n++;
    res[1] = n;
    for (unsigned i = 0; i < n; i++)
        free(blocks[i]);
    void *again = malloc(CHUNK);
    res[2] = again != NULL;
    free(again);
}

int main(void)
{
    unsigned *d_out, *d_res, out[THREADS], res[3];
    size_t free0, free1, total, limit = 0;
    int bad = 0;

    CK(cudaMalloc(&d_out, sizeof(out)));
    CK(cudaMalloc(&d_res, sizeof(res)));
    CK(cudaMemGetInfo(&free0, &total));
    CK(cudaDeviceSetLimit(cudaLimitMallocHeapSize, HEAP_BYTES));
    CK(cudaDeviceGetLimit(&limit, cudaLimitMallocHeapSize));
    poison(d_out, sizeof(out));
    per_thread<<<THREADS / 64, 64>>>(d_out);
    CK(cudaGetLastError());
    CK(cudaMemcpy(out, d_out, sizeof(out), cudaMemcpyDeviceToHost));
    for (unsigned t = 0; t < THREADS; t++) {
        unsigned want = t * 3 * WORDS + WORDS * (WORDS - 1) / 2;
        if (out[t] != want && bad++ < 5)
            fprintf(stderr, "thread %u: got 0x%x, want 0x%x\n", t, out[t], want);
    }
    CK(cudaMemGetInfo(&free1, &total));
    if (free1 > free0 || free0 - free1 < limit) {
        fprintf(stderr, "free memory %zu -> %zu: the %zu-byte heap is not counted\n", free0,
                free1, limit);
        bad++;
    }
    poison(d_res, sizeof(res));
    exhaust<<<1, 1>>>(d_res);
    CK(cudaGetLastError());
    CK(cudaMemcpy(res, d_res, sizeof(res), cudaMemcpyDeviceToHost));
    if (res[0] != 1 || res[1] < 1 || res[1] > HEAP_BYTES / CHUNK || res[2] != 1) {
        fprintf(stderr, "exhaustion: oversized NULL %u, %u blocks of %u (at most %u), again %u\n",
                res[0], res[1], CHUNK, HEAP_BYTES / CHUNK, res[2]);
        bad++;
    }
    cudaError_t e = cudaDeviceSetLimit(cudaLimitMallocHeapSize, 2 * HEAP_BYTES);
    if (e != cudaErrorInvalidValue) {
        fprintf(stderr, "setting the heap size after a launch: %s, want cudaErrorInvalidValue\n",
                cudaGetErrorString(e));
        bad++;
    }
    (void)cudaGetLastError();
    CK(cudaFree(d_out));
    CK(cudaFree(d_res));
    printf("device_malloc: %u threads, heap %zu bytes, free %zu -> %zu, %u blocks of %u: %s\n",
           THREADS, limit, free0, free1, res[1], CHUNK, bad ? "FAIL" : "ok");
    return bad ? 1 : 0;
}
