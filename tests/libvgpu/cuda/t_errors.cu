// t_errors.cu - error paths surface as the right cudaError in the program: an invalid device
// pointer, a freed pointer, an allocation beyond the zone's quota (run with --quota 64M), and
// the library keeps working afterwards.
#include "check.h"

int main()
{
    char host[64];
    void *bogus = (void *)(uintptr_t)0x7000deadbee0ull;
    EXPECT_ERR(cudaMemcpy(host, bogus, sizeof host, cudaMemcpyDeviceToHost),
               cudaErrorInvalidValue);
    EXPECT_ERR(cudaMemcpy(bogus, host, sizeof host, cudaMemcpyHostToDevice),
               cudaErrorInvalidValue);
    EXPECT_ERR(cudaMemset(bogus, 0, 64), cudaErrorInvalidValue);
    cudaGetLastError();

    // an async operation's failure is reported by the next synchronising call, once
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    EXPECT_ERR(cudaMemsetAsync(bogus, 0, 64, s), cudaSuccess);
    EXPECT_ERR(cudaStreamSynchronize(s), cudaErrorInvalidValue);
    cudaGetLastError();
    EXPECT_ERR(cudaStreamSynchronize(s), cudaSuccess);
    CHECK(cudaStreamDestroy(s));

    void *d = nullptr;
    CHECK(cudaMalloc(&d, 1 << 20));
    CHECK(cudaFree(d));
    EXPECT_ERR(cudaFree(d), cudaErrorInvalidValue);
    cudaGetLastError();
    EXPECT_ERR(cudaMemcpy(host, d, sizeof host, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
    cudaGetLastError();
    // a copy running past the end of a live allocation
    void *small = nullptr;
    CHECK(cudaMalloc(&small, 4096));
    static char big[8192];
    EXPECT_ERR(cudaMemcpy(small, big, sizeof big, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    cudaGetLastError();

    // quota: the zone holds 64 MiB
    void *q = nullptr;
    EXPECT_ERR(cudaMalloc(&q, 128u << 20), cudaErrorMemoryAllocation);
    cudaGetLastError();
    void *parts[4] = {};
    for (int i = 0; i < 3; i++)
        CHECK(cudaMalloc(&parts[i], 16u << 20));
    EXPECT_ERR(cudaMalloc(&parts[3], 32u << 20), cudaErrorMemoryAllocation);
    cudaGetLastError();
    CHECK(cudaFree(parts[0]));
    CHECK(cudaMalloc(&parts[3], 16u << 20)); // freed memory is available again

    // still working
    char msg[] = "still alive";
    char back[sizeof msg] = {};
    CHECK(cudaMemcpy(small, msg, sizeof msg, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(back, small, sizeof msg, cudaMemcpyDeviceToHost));
    EXPECT(strcmp(back, msg) == 0, "round trip after errors: '%s'", back);
    // a device reset releases everything the context held: the whole quota is free again
    CHECK(cudaDeviceReset());
    void *most = nullptr;
    CHECK(cudaMalloc(&most, 60u << 20));
    CHECK(cudaMemcpy(most, msg, sizeof msg, cudaMemcpyHostToDevice));
    memset(back, 0, sizeof back);
    CHECK(cudaMemcpy(back, most, sizeof msg, cudaMemcpyDeviceToHost));
    EXPECT(strcmp(back, msg) == 0, "round trip after reset: '%s'", back);
    EXPECT_ERR(cudaFree(small), cudaErrorInvalidValue); // gone with the reset
    cudaGetLastError();
    CHECK(cudaFree(most));
    return finish("t_errors");
}
