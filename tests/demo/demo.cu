// demo.cu - the stub-mode demo: an unmodified CUDA runtime program (static cudart, nvcc's
// default) that queries the device, moves data, runs a kernel on a stream with events and
// checks every result against the CPU. `make demo` runs it through bin/vgpu-run.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cuda_runtime.h>

#define CHECK(call)                                                                        \
    do {                                                                                   \
        cudaError_t e_ = (call);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "demo: %s failed: %s (%s)\n", #call, cudaGetErrorName(e_),     \
                    cudaGetErrorString(e_));                                               \
            return 1;                                                                      \
        }                                                                                  \
    } while (0)

__global__ void saxpy(int n, float a, const float *x, float *y)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + y[i];
}

int main(void)
{
    int count = 0;
    CHECK(cudaGetDeviceCount(&count));
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    size_t free_b = 0, total_b = 0;
    CHECK(cudaMemGetInfo(&free_b, &total_b));
    printf("demo: %d device(s); device 0: %s, compute capability %d.%d, %d SMs\n", count,
           prop.name, prop.major, prop.minor, prop.multiProcessorCount);
    printf("demo: this zone may hold %zu MiB of device memory, %zu MiB free\n", total_b >> 20,
           free_b >> 20);

    const int n = 1 << 20;
    const float a = 2.5f;
    float *x = (float *)malloc(n * sizeof(float)), *y = (float *)malloc(n * sizeof(float));
    float *out = (float *)malloc(n * sizeof(float));
    if (!x || !y || !out) {
        fprintf(stderr, "demo: out of host memory\n");
        return 1;
    }
    for (int i = 0; i < n; i++) {
        x[i] = (float)(i % 1000) * 0.5f;
        y[i] = (float)(i % 37);
        out[i] = -12345.0f; // poison
    }
    float *dx, *dy;
    CHECK(cudaMalloc(&dx, n * sizeof(float)));
    CHECK(cudaMalloc(&dy, n * sizeof(float)));
    cudaStream_t s;
    cudaEvent_t start, stop;
    CHECK(cudaStreamCreate(&s));
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&stop));
    CHECK(cudaEventRecord(start, s));
    CHECK(cudaMemcpyAsync(dx, x, n * sizeof(float), cudaMemcpyHostToDevice, s));
    CHECK(cudaMemcpyAsync(dy, y, n * sizeof(float), cudaMemcpyHostToDevice, s));
    saxpy<<<256, 256, 0, s>>>(n, a, dx, dy);
    CHECK(cudaGetLastError());
    CHECK(cudaMemcpyAsync(out, dy, n * sizeof(float), cudaMemcpyDeviceToHost, s));
    CHECK(cudaEventRecord(stop, s));
    CHECK(cudaStreamSynchronize(s));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    printf("demo: copied 2 x %zu KiB to the device, ran saxpy<<<256, 256>>> on %d elements, "
           "copied the result back: %.2f ms on the (simulated) GPU\n",
           n * sizeof(float) >> 10, n, ms);

    int bad = 0;
    for (int i = 0; i < n; i++) {
        float want = a * x[i] + y[i];
        if (out[i] != want) {
            if (bad < 5)
                fprintf(stderr, "demo: y[%d] = %g, expected %g\n", i, out[i], want);
            bad++;
        }
    }
    CHECK(cudaEventDestroy(start));
    CHECK(cudaEventDestroy(stop));
    CHECK(cudaStreamDestroy(s));
    CHECK(cudaFree(dx));
    CHECK(cudaFree(dy));
    free(x);
    free(y);
    free(out);
    if (bad) {
        printf("demo: FAILED: %d of %d results differ from the CPU reference\n", bad, n);
        return 1;
    }
    printf("demo: all %d results match the CPU reference\n", n);
    return 0;
}
