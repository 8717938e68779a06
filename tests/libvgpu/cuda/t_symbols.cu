// t_symbols.cu - module globals and constants through the runtime (cudaMemcpyToSymbol /
// FromSymbol / GetSymbolAddress / GetSymbolSize -> cuLibraryGetGlobal), a kernel using them with
// atomics, and dynamic shared memory sized at launch.
#include "check.h"

__device__ int counter;
__constant__ float coef[16];

__global__ void weigh(const float *in, float *out, int n)
{
    extern __shared__ float tile[];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    tile[threadIdx.x] = i < n ? in[i] : 0.0f;
    __syncthreads();
    if (i < n) {
        out[i] = tile[threadIdx.x] * coef[i % 16];
        atomicAdd(&counter, 1);
    }
}

int main()
{
    float c[16];
    for (int i = 0; i < 16; i++)
        c[i] = (float)(i + 1);
    CHECK(cudaMemcpyToSymbol(coef, c, sizeof c));
    int zero = 0;
    CHECK(cudaMemcpyToSymbol(counter, &zero, sizeof zero));
    size_t sz = 0;
    CHECK(cudaGetSymbolSize(&sz, coef));
    EXPECT(sz == sizeof c, "symbol size %zu", sz);
    int *counter_addr = nullptr;
    CHECK(cudaGetSymbolAddress((void **)&counter_addr, counter));
    EXPECT(counter_addr != nullptr, "symbol address");

    const int n = 3000;
    float *h = (float *)malloc(n * 4), *o = (float *)malloc(n * 4), *din, *dout;
    for (int i = 0; i < n; i++)
        h[i] = (float)(i % 10);
    CHECK(cudaMalloc((void **)&din, n * 4));
    CHECK(cudaMalloc((void **)&dout, n * 4));
    CHECK(cudaMemcpy(din, h, n * 4, cudaMemcpyHostToDevice));
    weigh<<<(n + 127) / 128, 128, 128 * sizeof(float)>>>(din, dout, n);
    CHECK(cudaGetLastError());
    CHECK(cudaMemcpy(o, dout, n * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (o[i] != h[i] * c[i % 16] && bad++ < 3)
            fprintf(stderr, "out[%d] = %f, want %f\n", i, o[i], h[i] * c[i % 16]);
    EXPECT(bad == 0, "%d wrong results", bad);
    int count = -1;
    CHECK(cudaMemcpyFromSymbol(&count, counter, sizeof count));
    EXPECT(count == n, "atomic counter %d, want %d", count, n);
    int via_addr = -1; // the address from cudaGetSymbolAddress is a device pointer like any other
    CHECK(cudaMemcpy(&via_addr, counter_addr, sizeof via_addr, cudaMemcpyDefault));
    EXPECT(via_addr == n, "counter through its address %d", via_addr);
    CHECK(cudaFree(din));
    CHECK(cudaFree(dout));
    free(h);
    free(o);
    return finish("t_symbols");
}
