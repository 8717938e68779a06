// constant_mem.cu - end-to-end: a kernel reading __constant__ data set with
// cudaMemcpyToSymbol, a statically initialised __constant__ table and a __device__ variable.
#include "check.h"

__constant__ float coeffs[16];
__constant__ int table[8] = {3, 1, 4, 1, 5, 9, 2, 6};
__device__ int bias = 42;

__global__ void poly(const float *x, float *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float acc = 0.0f;
        for (int k = 15; k >= 0; k--)
            acc = acc * x[i] + coeffs[k];
        y[i] = acc + table[i & 7] + bias;
    }
}

int main(void)
{
    const int n = 50000;
    struct report r = {"constant_mem", 0, 0};
    float c[16];
    for (int k = 0; k < 16; k++)
        c[k] = 1.0f / (float)(k + 1) * (k & 1 ? -1.0f : 1.0f);
    CK(cudaMemcpyToSymbol(coeffs, c, sizeof(c)));
    int newbias = 0;
    CK(cudaMemcpyFromSymbol(&newbias, bias, sizeof(int)));
    if (newbias != 42) {
        fprintf(stderr, "constant_mem: __device__ bias reads %d, expected 42\n", newbias);
        return 1;
    }
    newbias = -7;
    CK(cudaMemcpyToSymbol(bias, &newbias, sizeof(int)));
    static const int table_h[8] = {3, 1, 4, 1, 5, 9, 2, 6};
    float *hx = (float *)malloc(n * sizeof(float)), *hy = (float *)malloc(n * sizeof(float));
    if (!hx || !hy)
        return 1;
    unsigned s = 17;
    for (int i = 0; i < n; i++)
        hx[i] = (float)(lcg(&s) % 2000) / 1000.0f - 1.0f;
    float *dx, *dy;
    CK(cudaMalloc(&dx, n * sizeof(float)));
    CK(cudaMalloc(&dy, n * sizeof(float)));
    CK(cudaMemcpy(dx, hx, n * sizeof(float), cudaMemcpyHostToDevice));
    poison(dy, n * sizeof(float));
    poly<<<(n + 255) / 256, 256>>>(dx, dy, n);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hy, dy, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++, r.checked++) {
        float acc = 0.0f;
        for (int k = 15; k >= 0; k--)
            acc = fmaf(acc, hx[i], c[k]);
        float want = acc + (float)table_h[i & 7] + (float)newbias;
        if (!close_enough(hy[i], want, 1e-6))
            report_bad(&r, i, hy[i], want);
    }
    CK(cudaFree(dx));
    CK(cudaFree(dy));
    free(hx);
    free(hy);
    return report_done(&r);
}
