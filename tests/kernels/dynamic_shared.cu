// dynamic_shared.cu - end-to-end: extern __shared__ memory sized at launch: each block reverses
// its slice through shared memory, at two different dynamic sizes.
#include "check.h"

__global__ void reverse_block(const int *in, int *out, int n)
{
    extern __shared__ int buf[];
    int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    buf[t] = i < n ? in[i] : -1;
    __syncthreads();
    int v = buf[blockDim.x - 1 - t];
    if (i < n)
        out[i] = v;
}

static int check(struct report *r, const int *hi, const int *ho, int n, int bs)
{
    for (int i = 0; i < n; i++, r->checked++) {
        int b = i / bs, t = i % bs, src = b * bs + (bs - 1 - t);
        int want = src < n ? hi[src] : -1;
        if (ho[i] != want)
            report_bad(r, i, ho[i], want);
    }
    return 0;
}

int main(void)
{
    const int n = 100000;
    struct report r = {"dynamic_shared", 0, 0};
    int *hi = (int *)malloc(n * sizeof(int)), *ho = (int *)malloc(n * sizeof(int));
    if (!hi || !ho)
        return 1;
    unsigned s = 19;
    for (int i = 0; i < n; i++)
        hi[i] = (int)lcg(&s);
    int *di, *dout;
    CK(cudaMalloc(&di, n * sizeof(int)));
    CK(cudaMalloc(&dout, n * sizeof(int)));
    CK(cudaMemcpy(di, hi, n * sizeof(int), cudaMemcpyHostToDevice));
    const int sizes[2] = {128, 1000};
    for (int k = 0; k < 2; k++) {
        int bs = sizes[k];
        poison(dout, n * sizeof(int));
        reverse_block<<<(n + bs - 1) / bs, bs, bs * sizeof(int)>>>(di, dout, n);
        CK(cudaGetLastError());
        CK(cudaMemcpy(ho, dout, n * sizeof(int), cudaMemcpyDeviceToHost));
        check(&r, hi, ho, n, bs);
    }
    CK(cudaFree(di));
    CK(cudaFree(dout));
    free(hi);
    free(ho);
    return report_done(&r);
}
