// device_pointers.cu - end-to-end: device addresses used the way real programs use them. A
// pointer array stored in device memory (cuBLAS batched GEMM, CUTLASS grouped kernels), an end
// pointer indexed with negative offsets, a pointer inside a struct passed by value, an integer
// argument that happens to equal a device address (must reach the kernel unchanged), a kernel
// that writes its own pointer parameter back (it must see the address the host holds), and fresh
// allocations read before anything wrote them (zeroed on allocation).
#include "check.h"

#include <stdint.h>

struct span {
    const float *p;
    int n;
};

__global__ void sum_arrays(const float *const *arrays, int k, float *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float s = 0;
    for (int j = 0; j < k; j++)
        s += arrays[j][i];
    out[i] = s;
}

__global__ void reverse_from_end(const float *end, float *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = end[-1 - i];
}

__global__ void scale_span(struct span in, float f, float *out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < in.n)
        out[i] = in.p[i] * f;
}

__global__ void echo_words(unsigned long long v, const float *p, unsigned long long *out)
{
    out[0] = v;
    out[1] = (unsigned long long)(uintptr_t)p;
}

__global__ void read_fresh(const unsigned *p, size_t n, unsigned *nonzero)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)blockDim.x * gridDim.x)
        if (p[i] != 0)
            atomicAdd(nonzero, 1u);
}

static void check_floats(struct report *r, const float *got, const float *want, int n)
{
    for (int i = 0; i < n; i++, r->checked++)
        if (!close_enough(got[i], want[i], 1e-6))
            report_bad(r, i, got[i], want[i]);
}

int main(void)
{
    enum { N = 4099, K = 5 };
    struct report r = {"device_pointers", 0, 0};
    static float h[K][N], want[N], got[N];
    float *d[K], *out, **darrays;
    unsigned long long *dwords, words[2];
    unsigned seed = 7;

    for (int j = 0; j < K; j++) {
        for (int i = 0; i < N; i++)
            h[j][i] = (float)(lcg(&seed) % 1000) / 8.0f;
        CK(cudaMalloc(&d[j], N * sizeof(float)));
        CK(cudaMemcpy(d[j], h[j], N * sizeof(float), cudaMemcpyHostToDevice));
    }
    CK(cudaMalloc(&out, N * sizeof(float)));
    CK(cudaMalloc(&darrays, K * sizeof(float *)));
    CK(cudaMalloc(&dwords, sizeof(words)));
    CK(cudaMemcpy(darrays, d, sizeof(d), cudaMemcpyHostToDevice));

    // 1. pointers stored in device memory
    poison(out, N * sizeof(float));
    sum_arrays<<<(N + 255) / 256, 256>>>(darrays, K, out, N);
    CK(cudaGetLastError());
    CK(cudaMemcpy(got, out, sizeof(got), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N; i++) {
        want[i] = 0;
        for (int j = 0; j < K; j++)
            want[i] += h[j][i];
    }
    check_floats(&r, got, want, N);

    // 2. an end pointer (p + n) indexed backwards
    poison(out, N * sizeof(float));
    reverse_from_end<<<(N + 255) / 256, 256>>>(d[1] + N, out, N);
    CK(cudaGetLastError());
    CK(cudaMemcpy(got, out, sizeof(got), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N; i++)
        want[i] = h[1][N - 1 - i];
    check_floats(&r, got, want, N);

    // 3. a pointer inside a struct passed by value, at an offset into its allocation
    struct span sp = {d[2] + 3, N - 3};
    poison(out, N * sizeof(float));
    scale_span<<<(N + 255) / 256, 256>>>(sp, 2.0f, out);
    CK(cudaGetLastError());
    CK(cudaMemcpy(got, out, sizeof(got), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N - 3; i++)
        want[i] = h[2][i + 3] * 2.0f;
    check_floats(&r, got, want, N - 3);

    // 4. an integer equal to a device address stays an integer; a pointer is what the host has
    unsigned long long lookalike = (unsigned long long)(uintptr_t)(d[0] + 16);
    echo_words<<<1, 1>>>(lookalike, d[3], dwords);
    CK(cudaGetLastError());
    CK(cudaMemcpy(words, dwords, sizeof(words), cudaMemcpyDeviceToHost));
    r.checked += 2;
    if (words[0] != lookalike)
        report_bad(&r, 0, (double)words[0], (double)lookalike);
    if (words[1] != (unsigned long long)(uintptr_t)d[3])
        report_bad(&r, 1, (double)words[1], (double)(uintptr_t)d[3]);

    // 5. fresh allocations hold zeros, also where freed memory held data before
    for (int j = 0; j < K; j++)
        CK(cudaMemset(d[j], 0xff, N * sizeof(float)));
    for (int j = 0; j < K; j++)
        CK(cudaFree(d[j]));
    unsigned *fresh, *nonzero, count = 0;
    const size_t fresh_n = (size_t)K * N;
    CK(cudaMalloc(&fresh, fresh_n * sizeof(unsigned)));
    CK(cudaMalloc(&nonzero, sizeof(unsigned)));
    CK(cudaMemset(nonzero, 0, sizeof(unsigned)));
    read_fresh<<<32, 256>>>(fresh, fresh_n, nonzero);
    CK(cudaGetLastError());
    CK(cudaMemcpy(&count, nonzero, sizeof(count), cudaMemcpyDeviceToHost));
    r.checked++;
    if (count != 0)
        report_bad(&r, -1, count, 0);

    CK(cudaFree(fresh));
    CK(cudaFree(nonzero));
    CK(cudaFree(out));
    CK(cudaFree(darrays));
    CK(cudaFree(dwords));
    return report_done(&r);
}
