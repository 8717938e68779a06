// out_of_bounds.cu - end-to-end: a kernel that writes far outside its allocation must end
// with cudaErrorIllegalAddress, reported at the next synchronisation (and not at launch).
#include "check.h"

__global__ void write_far(int *p, long long offset)
{
    p[threadIdx.x + offset] = 1234;
}

int main(void)
{
    int *d;
    CK(cudaMalloc(&d, 1024 * sizeof(int)));
    poison(d, 1024 * sizeof(int));
    /* 8 GiB past the start: outside any allocation on a real GPU as on the simulated one */
    write_far<<<1, 32>>>(d, 2ll << 30);
    cudaError_t launch = cudaGetLastError();
    if (launch != cudaSuccess) {
        fprintf(stderr, "out_of_bounds: FAILED, the launch itself returned %s\n",
                cudaGetErrorString(launch));
        return 1;
    }
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaErrorIllegalAddress) {
        fprintf(stderr, "out_of_bounds: FAILED, synchronisation returned %s (%d), expected "
                "cudaErrorIllegalAddress\n", cudaGetErrorString(e), (int)e);
        return 1;
    }
    printf("out_of_bounds: OK, got cudaErrorIllegalAddress at synchronisation\n");
    return 0;
}
