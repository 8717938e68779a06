// histogram.cu - end-to-end: 256-bin histogram with shared-memory atomics merged into global
// memory with atomicAdd, checked exactly.
#include "check.h"

#define BINS 256

__global__ void histogram(const unsigned char *data, int n, unsigned *bins)
{
    __shared__ unsigned local[BINS];
    for (int b = threadIdx.x; b < BINS; b += blockDim.x)
        local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        atomicAdd(&local[data[i]], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < BINS; b += blockDim.x)
        atomicAdd(&bins[b], local[b]);
}

int main(void)
{
    const int n = 2000000;
    struct report r = {"histogram", 0, 0};
    unsigned char *hd = (unsigned char *)malloc(n);
    unsigned hb[BINS], want[BINS] = {0};
    if (!hd)
        return 1;
    unsigned s = 11;
    for (int i = 0; i < n; i++) {
        unsigned v = lcg(&s);
        hd[i] = (unsigned char)((v & 1) ? v % 37 : v); /* skewed, so bins differ */
        want[hd[i]]++;
    }
    unsigned char *dd;
    unsigned *db;
    CK(cudaMalloc(&dd, n));
    CK(cudaMalloc(&db, sizeof(hb)));
    CK(cudaMemcpy(dd, hd, n, cudaMemcpyHostToDevice));
    poison(db, sizeof(hb));
    CK(cudaMemset(db, 0, sizeof(hb)));
    histogram<<<64, 192>>>(dd, n, db);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hb, db, sizeof(hb), cudaMemcpyDeviceToHost));
    for (int b = 0; b < BINS; b++, r.checked++)
        if (hb[b] != want[b])
            report_bad(&r, b, hb[b], want[b]);
    CK(cudaFree(dd));
    CK(cudaFree(db));
    free(hd);
    return report_done(&r);
}
