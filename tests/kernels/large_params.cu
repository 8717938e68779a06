// large_params.cu - end-to-end: kernels taking structs of 8 KiB and of 30,000 bytes by value
// (CUDA 12.1+ allows 32,764 bytes of parameters; more than one ring slot, so they travel
// through the connection's window), a parameter after the big one, dynamic indexing into the
// struct, and several launches queued on a non-default stream, each with its own contents,
// before one synchronisation.
#include "check.h"

struct Big8k {
    unsigned int w[2048]; // 8192 bytes
};

struct Big30k {
    unsigned int w[7500]; // 30000 bytes
};

// Each of 256 threads sums its 8 words, weighted, from a struct indexed by thread.
__global__ void sum8k(Big8k s, unsigned int *out)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int acc = 0;
    for (int i = 0; i < 8; i++)
        acc += s.w[t * 8 + i] * (unsigned int)(i + 1);
    out[t] = acc;
}

// Parameters before and after the big one: their offsets come from the kernel's layout.
__global__ void sum30k(int scale, Big30k s, unsigned int *out, int n)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n)
        return;
    unsigned int acc = 0;
    for (int i = t; i < 7500; i += n)
        acc += s.w[i];
    out[t] = acc * (unsigned int)scale;
}

static unsigned int want8k(const Big8k &s, int t)
{
    unsigned int acc = 0;
    for (int i = 0; i < 8; i++)
        acc += s.w[t * 8 + i] * (unsigned int)(i + 1);
    return acc;
}

static unsigned int want30k(const Big30k &s, int t, int n, int scale)
{
    unsigned int acc = 0;
    for (int i = t; i < 7500; i += n)
        acc += s.w[i];
    return acc * (unsigned int)scale;
}

static void check(struct report *r, const unsigned int *got, int t, unsigned int want, long base)
{
    if (got[t] != want)
        report_bad(r, base + t, got[t], want);
    r->checked++;
}

int main(void)
{
    enum { N30 = 300, LAUNCHES = 6 };
    struct report r = {"large_params", 0, 0};
    static Big8k a;
    static Big30k b;
    static unsigned int h[LAUNCHES * N30];
    unsigned int *d8, *d30;
    unsigned s = 7;

    for (int i = 0; i < 2048; i++)
        a.w[i] = lcg(&s);
    CK(cudaMalloc(&d8, 256 * sizeof(unsigned int)));
    poison(d8, 256 * sizeof(unsigned int));
    sum8k<<<2, 128>>>(a, d8);
    CK(cudaGetLastError());
    CK(cudaMemcpy(h, d8, 256 * sizeof(unsigned int), cudaMemcpyDeviceToHost));
    for (int t = 0; t < 256; t++)
        check(&r, h, t, want8k(a, t), 0);

    // Six launches queued on a stream, the struct changed between them: each launch must run
    // with the contents it was given.
    cudaStream_t st;
    CK(cudaStreamCreate(&st));
    CK(cudaMalloc(&d30, sizeof(h)));
    poison(d30, sizeof(h));
    static Big30k given[LAUNCHES];
    for (int l = 0; l < LAUNCHES; l++) {
        for (int i = 0; i < 7500; i++)
            b.w[i] = lcg(&s) & 0xffff;
        given[l] = b;
        sum30k<<<(N30 + 127) / 128, 128, 0, st>>>(l + 1, b, d30 + l * N30, N30);
        CK(cudaGetLastError());
    }
    CK(cudaStreamSynchronize(st));
    CK(cudaMemcpy(h, d30, sizeof(h), cudaMemcpyDeviceToHost));
    for (int l = 0; l < LAUNCHES; l++)
        for (int t = 0; t < N30; t++)
            check(&r, h + l * N30, t, want30k(given[l], t, N30, l + 1), 256 + l * N30);

    // The same kernel on the default stream after the queued ones.
    sum30k<<<1, 64>>>(3, b, d30, 64);
    CK(cudaGetLastError());
    CK(cudaMemcpy(h, d30, 64 * sizeof(unsigned int), cudaMemcpyDeviceToHost));
    for (int t = 0; t < 64; t++)
        check(&r, h, t, want30k(b, t, 64, 3), 256 + LAUNCHES * N30);

    CK(cudaStreamDestroy(st));
    CK(cudaFree(d8));
    CK(cudaFree(d30));
    return report_done(&r);
}
