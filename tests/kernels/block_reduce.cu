// block_reduce.cu - end-to-end: shared-memory tree reduction per block (__syncthreads in a
// loop), 64-bit integer sums checked exactly.
#include "check.h"

#define BS 256

__global__ void block_sum(const int *in, long long *out, int n)
{
    __shared__ long long s[BS];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    s[threadIdx.x] = i < n ? in[i] : 0;
    __syncthreads();
    for (unsigned st = blockDim.x / 2; st > 0; st >>= 1) {
        if (threadIdx.x < st)
            s[threadIdx.x] += s[threadIdx.x + st];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = s[0];
}

int main(void)
{
    const int n = 1000003, blocks = (n + BS - 1) / BS;
    struct report r = {"block_reduce", 0, 0};
    int *hi = (int *)malloc(n * sizeof(int));
    long long *ho = (long long *)malloc(blocks * sizeof(long long));
    if (!hi || !ho)
        return 1;
    unsigned s = 3;
    for (int i = 0; i < n; i++)
        hi[i] = (int)(lcg(&s) % 2000001) - 1000000;
    int *di;
    long long *dout;
    CK(cudaMalloc(&di, n * sizeof(int)));
    CK(cudaMalloc(&dout, blocks * sizeof(long long)));
    CK(cudaMemcpy(di, hi, n * sizeof(int), cudaMemcpyHostToDevice));
    poison(dout, blocks * sizeof(long long));
    block_sum<<<blocks, BS>>>(di, dout, n);
    CK(cudaGetLastError());
    CK(cudaMemcpy(ho, dout, blocks * sizeof(long long), cudaMemcpyDeviceToHost));
    long long total = 0, want_total = 0;
    for (int b = 0; b < blocks; b++, r.checked++) {
        long long want = 0;
        for (int i = b * BS; i < (b + 1) * BS && i < n; i++)
            want += hi[i];
        want_total += want;
        total += ho[b];
        if (ho[b] != want)
            report_bad(&r, b, (double)ho[b], (double)want);
    }
    if (total != want_total)
        report_bad(&r, -1, (double)total, (double)want_total);
    CK(cudaFree(di));
    CK(cudaFree(dout));
    free(hi);
    free(ho);
    return report_done(&r);
}
