// t_pinned.cu - pinned host memory (cudaHostAlloc / cudaMallocHost / cudaHostRegister) and
// pointer attributes of host and device memory; async copies out of and into pinned buffers.
#include "check.h"

int main()
{
    const size_t n = 5 * 1024 * 1024 + 3;
    uint8_t *a = nullptr, *b = nullptr;
    CHECK(cudaHostAlloc((void **)&a, n, cudaHostAllocPortable));
    CHECK(cudaMallocHost((void **)&b, n));
    EXPECT(((uintptr_t)a & 4095) == 0 && ((uintptr_t)b & 4095) == 0, "page-aligned %p %p", a, b);
    unsigned flags = 99;
    CHECK(cudaHostGetFlags(&flags, a));
    EXPECT(flags == cudaHostAllocPortable, "flags %u", flags);
    fill(a, n, 42);
    void *d = nullptr;
    CHECK(cudaMalloc(&d, n));
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    CHECK(cudaMemcpyAsync(d, a, n, cudaMemcpyHostToDevice, s));
    CHECK(cudaMemcpyAsync(b, d, n, cudaMemcpyDeviceToHost, s));
    CHECK(cudaStreamSynchronize(s));
    EXPECT(checksum(a, n) == checksum(b, n), "pinned round trip");

    cudaPointerAttributes at;
    CHECK(cudaPointerGetAttributes(&at, d));
    EXPECT(at.type == cudaMemoryTypeDevice, "device pointer type %d", (int)at.type);
    EXPECT(at.devicePointer == d, "devicePointer %p", at.devicePointer);
    CHECK(cudaPointerGetAttributes(&at, a));
    EXPECT(at.type == cudaMemoryTypeHost, "pinned pointer type %d", (int)at.type);
    int on_stack = 0;
    CHECK(cudaPointerGetAttributes(&at, &on_stack));
    EXPECT(at.type == cudaMemoryTypeUnregistered, "stack pointer type %d", (int)at.type);

    // registered memory
    uint8_t *r = (uint8_t *)aligned_alloc(4096, 1 << 20);
    CHECK(cudaHostRegister(r, 1 << 20, cudaHostRegisterDefault));
    EXPECT_ERR(cudaHostRegister(r, 1 << 20, cudaHostRegisterDefault),
               cudaErrorHostMemoryAlreadyRegistered);
    cudaGetLastError();
    CHECK(cudaMemcpy(r, d, 1 << 20, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(r, a, 1 << 20) == 0, "copy into registered memory");
    CHECK(cudaHostUnregister(r));
    free(r);

    CHECK(cudaStreamDestroy(s));
    CHECK(cudaFree(d));
    CHECK(cudaFreeHost(a));
    CHECK(cudaFreeHost(b));
    return finish("t_pinned");
}
