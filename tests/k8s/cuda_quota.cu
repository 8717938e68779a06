// cuda_quota.cu - runs inside the podman container of the k8s test: through the mounted
// libcuda.so.1 (static cudart loads it) and the zone's socket, it fills its zone with
// allocations of one slice each, checks that exactly QUOTA bytes fit and that the next
// allocation fails with cudaErrorMemoryAllocation, and round-trips data through the GPU.
// Usage: cuda_quota QUOTA_BYTES SLICE_BYTES. Prints "QUOTA_OK <bytes>" and exits 0 on success.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                        \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "cuda_quota: %s failed: %s (%d)\n", #call, cudaGetErrorString(e_), \
                    (int)e_);                                                              \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cuda_quota QUOTA_BYTES SLICE_BYTES\n");
        return 2;
    }
    size_t quota = strtoull(argv[1], NULL, 10), slice = strtoull(argv[2], NULL, 10);
    if (!quota || !slice || quota % slice) {
        fprintf(stderr, "cuda_quota: bad sizes\n");
        return 2;
    }
    int n = 0;
    CHECK(cudaGetDeviceCount(&n));
    printf("devices %d\n", n);
    size_t count = quota / slice;
    void **ptrs = (void **)calloc(count + 1, sizeof(void *));
    for (size_t i = 0; i < count; i++) {
        cudaError_t e = cudaMalloc(&ptrs[i], slice);
        if (e != cudaSuccess) {
            fprintf(stderr, "cuda_quota: allocation %zu of %zu (%zu bytes each) failed inside "
                    "the quota: %s\n", i + 1, count, slice, cudaGetErrorString(e));
            return 1;
        }
    }
    printf("allocated %zu bytes in %zu allocations\n", quota, count);
    void *extra = NULL;
    cudaError_t e = cudaMalloc(&extra, 1 << 20);
    if (e != cudaErrorMemoryAllocation) {
        fprintf(stderr, "cuda_quota: 1 MiB beyond the quota gave %s (%d), want "
                "cudaErrorMemoryAllocation\n", cudaGetErrorString(e), (int)e);
        return 1;
    }
    printf("beyond quota: %s\n", cudaGetErrorString(e));
    // Data goes through the proxy and back.
    size_t len = 1 << 20;
    unsigned char *host = (unsigned char *)malloc(len), *back = (unsigned char *)malloc(len);
    for (size_t i = 0; i < len; i++)
        host[i] = (unsigned char)(i * 7 + 3);
    CHECK(cudaMemcpy(ptrs[count - 1], host, len, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(back, ptrs[count - 1], len, cudaMemcpyDeviceToHost));
    if (memcmp(host, back, len) != 0) {
        fprintf(stderr, "cuda_quota: data changed on the round trip\n");
        return 1;
    }
    // Freeing one slice makes room for exactly one slice again.
    CHECK(cudaFree(ptrs[0]));
    CHECK(cudaMalloc(&ptrs[0], slice));
    for (size_t i = 0; i < count; i++)
        CHECK(cudaFree(ptrs[i]));
    printf("QUOTA_OK %zu\n", quota);
    return 0;
}
