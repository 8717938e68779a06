// t_threads.cu - several host threads share libvgpu's one connection: each has its own stream
// and buffers and checks its own round trips (sync and async, inline-sized and chunked).
#include <pthread.h>
#include "check.h"

static int thread_failures[4];

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    CHECK(cudaSetDevice(0));
    cudaStream_t s;
    CHECK(cudaStreamCreate(&s));
    const size_t sizes[] = {1, 777, 4096, 100000, 3 << 20};
    for (int rep = 0; rep < 5; rep++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            uint8_t *h, *back;
            CHECK(cudaMallocHost((void **)&h, n));
            CHECK(cudaMallocHost((void **)&back, n));
            fill(h, n, id * 1000 + rep * 10 + i);
            void *d;
            CHECK(cudaMalloc(&d, n));
            if (rep % 2) {
                CHECK(cudaMemcpyAsync(d, h, n, cudaMemcpyHostToDevice, s));
                CHECK(cudaMemcpyAsync(back, d, n, cudaMemcpyDeviceToHost, s));
                CHECK(cudaStreamSynchronize(s));
            } else {
                CHECK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
                CHECK(cudaMemcpy(back, d, n, cudaMemcpyDeviceToHost));
            }
            if (checksum(h, n) != checksum(back, n)) {
                fprintf(stderr, "thread %d: round trip of %zu bytes differs\n", id, n);
                thread_failures[id]++;
            }
            CHECK(cudaFree(d));
            CHECK(cudaFreeHost(h));
            CHECK(cudaFreeHost(back));
        }
    CHECK(cudaStreamDestroy(s));
    return nullptr;
}

int main()
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        EXPECT(pthread_create(&t[i], nullptr, worker, (void *)(intptr_t)i) == 0, "thread %d", i);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], nullptr);
        EXPECT(thread_failures[i] == 0, "thread %d had %d failures", i, thread_failures[i]);
    }
    return finish("t_threads");
}
