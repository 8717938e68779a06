// grid_stride.cu - end-to-end: a grid-stride loop over a large array (16M elements) with a
// small grid, every element checked.
#include "check.h"

__global__ void scramble(const unsigned *in, unsigned *out, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)blockDim.x * gridDim.x)
        out[i] = in[i] * 2654435761u + (unsigned)(i >> 3);
}

int main(void)
{
    const size_t n = (16u << 20) + 77;
    struct report r = {"grid_stride", 0, 0};
    unsigned *hi = (unsigned *)malloc(n * sizeof(unsigned));
    unsigned *ho = (unsigned *)malloc(n * sizeof(unsigned));
    if (!hi || !ho)
        return 1;
    unsigned s = 13;
    for (size_t i = 0; i < n; i++)
        hi[i] = lcg(&s);
    unsigned *di, *dout;
    CK(cudaMalloc(&di, n * sizeof(unsigned)));
    CK(cudaMalloc(&dout, n * sizeof(unsigned)));
    CK(cudaMemcpy(di, hi, n * sizeof(unsigned), cudaMemcpyHostToDevice));
    poison(dout, n * sizeof(unsigned));
    scramble<<<40, 256>>>(di, dout, n);
    CK(cudaGetLastError());
    CK(cudaMemcpy(ho, dout, n * sizeof(unsigned), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++, r.checked++) {
        unsigned want = hi[i] * 2654435761u + (unsigned)(i >> 3);
        if (ho[i] != want)
            report_bad(&r, (long)i, ho[i], want);
    }
    CK(cudaFree(di));
    CK(cudaFree(dout));
    free(hi);
    free(ho);
    return report_done(&r);
}
