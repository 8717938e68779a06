// t_memory.cu - memory round trips with checksums from 1 byte to 256 MiB (inline messages of
// one and of several ring slots, single window chunks, many pipelined chunks), copies at offsets
// inside allocations, memsets, device-to-device and unified (cudaMemcpyDefault) copies, and
// many asynchronous DtoH copies whose data comes back inline in their replies.
#include "check.h"

static void round_trip(size_t n, uint64_t seed)
{
    uint8_t *h = (uint8_t *)malloc(n), *back = (uint8_t *)malloc(n);
    EXPECT(h && back, "host allocation of %zu bytes", n);
    if (!h || !back)
        exit(1);
    fill(h, n, seed);
    memset(back, 0, n);
    void *d = nullptr, *d2 = nullptr;
    CHECK(cudaMalloc(&d, n));
    CHECK(cudaMalloc(&d2, n));
    CHECK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d2, d, n, cudaMemcpyDeviceToDevice));
    CHECK(cudaMemcpy(back, d2, n, cudaMemcpyDeviceToHost));
    EXPECT(checksum(back, n) == checksum(h, n), "round trip of %zu bytes", n);
    // unified addressing: the library decides the direction
    memset(back, 0, n);
    CHECK(cudaMemcpy(back, d, n, cudaMemcpyDefault));
    EXPECT(checksum(back, n) == checksum(h, n), "cudaMemcpyDefault of %zu bytes", n);
    CHECK(cudaFree(d));
    CHECK(cudaFree(d2));
    free(h);
    free(back);
}

static void offsets_and_memset()
{
    const size_t n = 3 * 1024 * 1024 + 17;
    uint8_t *h = (uint8_t *)malloc(n), *want = (uint8_t *)malloc(n), *back = (uint8_t *)malloc(n);
    uint8_t *d = nullptr;
    CHECK(cudaMalloc(&d, n));
    // memset the whole allocation, then patch pieces at offsets
    CHECK(cudaMemset(d, 0xA5, n));
    memset(want, 0xA5, n);
    const size_t offs[] = {1, 4095, 4096, 65537, 1048576 + 3, n - 100};
    const size_t lens[] = {7, 1, 8192, 1000000, 2000000, 100};
    for (int i = 0; i < 6; i++) {
        fill(h, lens[i], 100 + i);
        CHECK(cudaMemcpy(d + offs[i], h, lens[i], cudaMemcpyHostToDevice));
        memcpy(want + offs[i], h, lens[i]);
    }
    CHECK(cudaMemset(d + 10, 0x3C, 20000));
    memset(want + 10, 0x3C, 20000);
    CHECK(cudaMemcpy(back, d, n, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(back, want, n) == 0, "patched allocation content");
    // read back a window from the middle
    memset(back, 0, n);
    CHECK(cudaMemcpy(back, d + 12345, 777777, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(back, want + 12345, 777777) == 0, "read at offset 12345");
    // device-to-device between offsets of the same allocation (non-overlapping)
    CHECK(cudaMemcpy(d + 2 * 1024 * 1024, d + 100, 500000, cudaMemcpyDeviceToDevice));
    memmove(want + 2 * 1024 * 1024, want + 100, 500000);
    CHECK(cudaMemcpy(back, d, n, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(back, want, n) == 0, "device-to-device at offsets");
    // 16- and 32-bit memsets through the driver API path of the runtime (cudaMemset2D)
    CHECK(cudaMemset2D(d, 1024, 0x11, 512, 8));
    for (int r = 0; r < 8; r++)
        memset(want + r * 1024, 0x11, 512);
    CHECK(cudaMemcpy(back, d, 8192, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(back, want, 8192) == 0, "2D memset");
    // 2D copy host -> device with pitches
    fill(h, 64 * 100, 7);
    CHECK(cudaMemcpy2D(d, 256, h, 100, 100, 64, cudaMemcpyHostToDevice));
    for (int r = 0; r < 64; r++)
        memcpy(want + r * 256, h + r * 100, 100);
    CHECK(cudaMemcpy(back, d, 64 * 256, cudaMemcpyDeviceToHost));
    EXPECT(memcmp(back, want, 64 * 256) == 0, "2D copy");
    CHECK(cudaFree(d));
    free(h);
    free(want);
    free(back);
}

// 200 asynchronous DtoH copies of 1 byte to 64 KiB (each served inline in its reply: up to 17
// ring slots, more of them pending than half the reply ring holds) into one pageable buffer,
// interleaved with HtoD copies of the same sizes, then one synchronisation: every byte lands.
static void many_async_dtoh()
{
    const size_t per = 65536, n = 200 * per;
    uint8_t *h = (uint8_t *)malloc(n), *back = (uint8_t *)malloc(n);
    uint8_t *d = nullptr;
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    CHECK(cudaMalloc(&d, n));
    fill(h, n, 99);
    memset(back, 0, n);
    for (size_t i = 0; i < 200; i++) {
        size_t len = i % 5 == 0 ? per : (i * 7919) % per + 1;
        CHECK(cudaMemcpyAsync(d + i * per, h + i * per, len, cudaMemcpyHostToDevice, s));
        CHECK(cudaMemcpyAsync(back + i * per, d + i * per, len, cudaMemcpyDeviceToHost, s));
    }
    CHECK(cudaStreamSynchronize(s));
    int bad = 0;
    for (size_t i = 0; i < 200 && !bad; i++) {
        size_t len = i % 5 == 0 ? per : (i * 7919) % per + 1;
        bad = memcmp(back + i * per, h + i * per, len) != 0;
        for (size_t j = len; j < per && !bad; j++)
            bad = back[i * per + j] != 0;
    }
    EXPECT(!bad, "200 async DtoH copies of up to 64 KiB");
    CHECK(cudaFree(d));
    CHECK(cudaStreamDestroy(s));
    free(h);
    free(back);
}

int main()
{
    const size_t sizes[] = {1, 2, 3, 100, 3000, 4000, 4095, 4096, 4097, 36000, 65535, 65536,
                            65537, 73728, 1048576 + 3,
                            8u << 20, (8u << 20) + 1, (64u << 20) + 4093, 256u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        round_trip(sizes[i], i + 1);
    offsets_and_memset();
    many_async_dtoh();
    return finish("t_memory");
}
