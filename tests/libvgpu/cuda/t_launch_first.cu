// t_launch_first.cu - regression: a kernel launch as the program's very first CUDA call. The
// runtime then loads the library before any context exists; libvgpu used to refuse that
// (CUDA_ERROR_INVALID_CONTEXT, seen as cudaErrorDeviceUninitialized on every launch).
#include "check.h"

__device__ int result[64];

__global__ void square(int base)
{
    result[threadIdx.x] = (base + (int)threadIdx.x) * (base + (int)threadIdx.x);
}

int main()
{
    square<<<1, 64>>>(3); // first CUDA call of the process
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    int h[64];
    CHECK(cudaMemcpyFromSymbol(h, result, sizeof h));
    int bad = 0;
    for (int i = 0; i < 64; i++)
        bad += h[i] != (3 + i) * (3 + i);
    EXPECT(bad == 0, "%d wrong squares", bad);
    return finish("t_launch_first");
}
