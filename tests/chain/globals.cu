// globals.cu - module globals count against the zone's quota: this program's module declares
// a 512 MiB __device__ array, more than the 256 MiB quota the test gives its zone, so loading
// it must fail with an out-of-memory error (the driver would otherwise allocate it outside the
// quota), and an ordinary allocation afterwards still works. Exit 0 when both hold.
#include <cuda_runtime.h>
#include <stdio.h>

__device__ char big[512u << 20];

__global__ void touch(unsigned long long i)
{
    big[i] = 1;
}

int main(void)
{
    void *p = NULL;
    cudaError_t e;

    touch<<<1, 1>>>((512ull << 20) - 1);
    e = cudaDeviceSynchronize();
    if (e == cudaSuccess)
        e = cudaGetLastError();
    if (e != cudaErrorMemoryAllocation) {
        fprintf(stderr, "globals: a module with a 512 MiB global gave %s (%d), not "
                "cudaErrorMemoryAllocation\n", cudaGetErrorName(e), (int)e);
        return 1;
    }
    printf("globals: a 512 MiB module global was refused: %s\n", cudaGetErrorName(e));
    if ((e = cudaMalloc(&p, 1 << 20)) != cudaSuccess || (e = cudaFree(p)) != cudaSuccess) {
        fprintf(stderr, "globals: an allocation afterwards failed: %s\n", cudaGetErrorName(e));
        return 1;
    }
    printf("globals: an allocation afterwards works\n");
    return 0;
}
