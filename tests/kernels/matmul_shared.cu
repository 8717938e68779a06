// matmul_shared.cu - end-to-end: tiled matrix multiply with shared memory and __syncthreads,
// on a size that is not a multiple of the tile, checked against a CPU reference.
#include "check.h"

#define TILE 16

__global__ void matmul(const float *A, const float *B, float *C, int n)
{
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    int row = blockIdx.y * TILE + threadIdx.y, col = blockIdx.x * TILE + threadIdx.x;
    float acc = 0.0f;
    for (int t = 0; t < (n + TILE - 1) / TILE; t++) {
        int ac = t * TILE + threadIdx.x, br = t * TILE + threadIdx.y;
        As[threadIdx.y][threadIdx.x] = (row < n && ac < n) ? A[row * n + ac] : 0.0f;
        Bs[threadIdx.y][threadIdx.x] = (br < n && col < n) ? B[br * n + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < TILE; k++)
            acc += As[threadIdx.y][k] * Bs[k][threadIdx.x];
        __syncthreads();
    }
    if (row < n && col < n)
        C[row * n + col] = acc;
}

int main(void)
{
    const int n = 100;
    struct report r = {"matmul_shared", 0, 0};
    size_t bytes = n * n * sizeof(float);
    float *ha = (float *)malloc(bytes), *hb = (float *)malloc(bytes), *hc = (float *)malloc(bytes);
    if (!ha || !hb || !hc)
        return 1;
    unsigned s = 7;
    for (int i = 0; i < n * n; i++) {
        ha[i] = (float)((int)(lcg(&s) % 201) - 100) / 8.0f;
        hb[i] = (float)((int)(lcg(&s) % 201) - 100) / 16.0f;
    }
    float *da, *db, *dc;
    CK(cudaMalloc(&da, bytes));
    CK(cudaMalloc(&db, bytes));
    CK(cudaMalloc(&dc, bytes));
    CK(cudaMemcpy(da, ha, bytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, hb, bytes, cudaMemcpyHostToDevice));
    poison(dc, bytes);
    dim3 block(TILE, TILE), grid((n + TILE - 1) / TILE, (n + TILE - 1) / TILE);
    matmul<<<grid, block>>>(da, db, dc, n);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hc, dc, bytes, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++, r.checked++) {
            double want = 0;
            for (int k = 0; k < n; k++)
                want += (double)ha[i * n + k] * hb[k * n + j];
            /* inputs are multiples of 1/128 with small magnitude: float sums are exact */
            if (hc[i * n + j] != (float)want)
                report_bad(&r, i * n + j, hc[i * n + j], want);
        }
    CK(cudaFree(da));
    CK(cudaFree(db));
    CK(cudaFree(dc));
    free(ha);
    free(hb);
    free(hc);
    return report_done(&r);
}
