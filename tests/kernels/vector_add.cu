// vector_add.cu - end-to-end: vector add and saxpy through the CUDA runtime, checked against a
// CPU reference (every element, outputs poisoned first).
#include "check.h"

__global__ void vector_add(const float *a, const float *b, float *c, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        c[i] = a[i] + b[i];
}

__global__ void saxpy(int n, float alpha, const float *x, float *y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = alpha * x[i] + y[i];
}

int main(void)
{
    const int n = 100003;
    const float alpha = -1.75f;
    struct report r = {"vector_add+saxpy", 0, 0};
    float *ha = (float *)malloc(n * sizeof(float)), *hb = (float *)malloc(n * sizeof(float));
    float *hc = (float *)malloc(n * sizeof(float)), *hy = (float *)malloc(n * sizeof(float));
    if (!ha || !hb || !hc || !hy) {
        fprintf(stderr, "out of host memory\n");
        return 1;
    }
    unsigned s = 1;
    for (int i = 0; i < n; i++) {
        ha[i] = (float)(lcg(&s) % 100000) / 37.0f;
        hb[i] = (float)(lcg(&s) % 100000) / 91.0f - 500.0f;
    }
    float *da, *db, *dc;
    CK(cudaMalloc(&da, n * sizeof(float)));
    CK(cudaMalloc(&db, n * sizeof(float)));
    CK(cudaMalloc(&dc, n * sizeof(float)));
    CK(cudaMemcpy(da, ha, n * sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, hb, n * sizeof(float), cudaMemcpyHostToDevice));
    poison(dc, n * sizeof(float));
    vector_add<<<(n + 255) / 256, 256>>>(da, db, dc, n);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hc, dc, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++, r.checked++)
        if (hc[i] != ha[i] + hb[i])
            report_bad(&r, i, hc[i], ha[i] + hb[i]);
    /* saxpy in place on b */
    saxpy<<<(n + 127) / 128, 128>>>(n, alpha, da, db);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(hy, db, n * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++, r.checked++) {
        float want = fmaf(alpha, ha[i], hb[i]);
        if (!close_enough(hy[i], want, 1e-6))
            report_bad(&r, i, hy[i], want);
    }
    CK(cudaFree(da));
    CK(cudaFree(db));
    CK(cudaFree(dc));
    free(ha);
    free(hb);
    free(hc);
    free(hy);
    return report_done(&r);
}
