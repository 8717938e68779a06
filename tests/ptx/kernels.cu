// kernels.cu - device code for the PTX engine's unit tests (test_ptx.c): compiled by nvcc at
// build time into PTX text and a fatbin, loaded and run by the interpreter, checked on the CPU.
#include <cstdint>

extern "C" __global__ void vec_add(const float *a, const float *b, float *c, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        c[i] = a[i] + b[i];
}

extern "C" __global__ void saxpy(int n, float alpha, const float *x, float *y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = alpha * x[i] + y[i];
}

#define TILE 16
extern "C" __global__ void matmul_tiled(const float *A, const float *B, float *C, int n)
{
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE];
    int row = blockIdx.y * TILE + threadIdx.y;
    int col = blockIdx.x * TILE + threadIdx.x;
    float acc = 0.0f;
    for (int t = 0; t < (n + TILE - 1) / TILE; t++) {
        int ac = t * TILE + threadIdx.x, br = t * TILE + threadIdx.y;
        As[threadIdx.y][threadIdx.x] = (row < n && ac < n) ? A[row * n + ac] : 0.0f;
        Bs[threadIdx.y][threadIdx.x] = (br < n && col < n) ? B[br * n + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < TILE; k++)
            acc += As[threadIdx.y][k] * Bs[k][threadIdx.x];
        __syncthreads();
    }
    if (row < n && col < n)
        C[row * n + col] = acc;
}

extern "C" __global__ void block_reduce(const int *in, long long *out, int n)
{
    __shared__ long long s[256];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    s[threadIdx.x] = i < n ? in[i] : 0;
    __syncthreads();
    for (unsigned st = blockDim.x / 2; st > 0; st >>= 1) {
        if (threadIdx.x < st)
            s[threadIdx.x] += s[threadIdx.x + st];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = s[0];
}

extern "C" __global__ void histogram(const unsigned char *data, int n, unsigned *bins)
{
    __shared__ unsigned local[64];
    for (int b = threadIdx.x; b < 64; b += blockDim.x)
        local[b] = 0;
    __syncthreads();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        atomicAdd(&local[data[i] % 64], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < 64; b += blockDim.x)
        atomicAdd(&bins[b], local[b]);
}

extern "C" __global__ void warp_reduce(const float *in, float *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    float v = i < n ? in[i] : 0.0f;
    for (int off = 16; off > 0; off >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, off);
    if ((threadIdx.x & 31) == 0)
        atomicAdd(out, v);
}

extern "C" __global__ void warp_ops(const int *in, int *out)
{
    int lane = threadIdx.x & 31;
    int v = in[blockIdx.x * blockDim.x + threadIdx.x];
    int base = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
    out[base + 0] = __shfl_sync(0xffffffffu, v, (lane * 7) & 31);
    out[base + 1] = __shfl_up_sync(0xffffffffu, v, 3);
    out[base + 2] = __shfl_xor_sync(0xffffffffu, v, 5);
    out[base + 3] = __shfl_down_sync(0xffffffffu, v, 2, 8);
    out[base + 4] = __ballot_sync(0xffffffffu, v & 1);
    out[base + 5] = __all_sync(0xffffffffu, v >= 0);
    out[base + 6] = __any_sync(0xffffffffu, v == 17);
    int s = v;
    for (int o = 1; o < 32; o <<= 1) {
        int t = __shfl_up_sync(0xffffffffu, s, o);
        if (lane >= o)
            s += t;
    }
    out[base + 7] = s;
}

// Warp collectives in divergent code and partial warps (the translator's phase mode resolves
// them on the lanes' records): odd and even lanes shuffle and vote in two groups, the lower
// half of each warp with a 16-lane mask and width, then (after a barrier) full-mask shuffles
// in warps that a 48-thread block leaves partial, one by a lane delta known only at run time.
// Seven results per thread.
extern "C" __global__ void warp_diverge(const int *in, int *out, int n, int delta)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int v = i < n ? in[i] : -1;
    int *o = out + i * 7;
    if (lane & 1) {
        o[0] = __shfl_xor_sync(0xaaaaaaaau, v, 2);
        o[1] = __ballot_sync(0xaaaaaaaau, v > 500);
    } else {
        o[0] = __shfl_down_sync(0x55555555u, v, 2);
        o[1] = __any_sync(0x55555555u, v > 900);
    }
    if (lane < 16) {
        o[2] = __shfl_sync(0x0000ffffu, v, 15 - lane, 16);
        o[3] = __all_sync(0x0000ffffu, v >= 0);
    } else {
        o[2] = 0;
        o[3] = 0;
    }
    __syncthreads(); // the engine groups lanes by instruction, not by mask: reconverge first
    o[4] = __shfl_up_sync(0xffffffffu, v, 1);
    o[5] = __shfl_down_sync(0xffffffffu, v, 1);
    o[6] = __shfl_down_sync(0xffffffffu, v, delta);
}

// Four shared accesses off one base register per thread (the translator checks their span
// once): stride 5 keeps nvcc from making them one vector access.
extern "C" __global__ void merged_span(int *out)
{
    extern __shared__ int s[];
    int t = threadIdx.x;
    s[t * 5] = t;
    s[t * 5 + 1] = t + 1;
    s[t * 5 + 2] = t + 2;
    s[t * 5 + 3] = t + 3;
    __syncthreads();
    int u = blockDim.x - 1 - t;
    out[blockIdx.x * blockDim.x + t] = s[u * 5] + s[u * 5 + 1] * 10 + s[u * 5 + 2] * 100 +
                                       s[u * 5 + 3] * 1000;
}

// Every kind of atomic on shared memory (the translator makes them plain read-modify-writes:
// a block's shared memory belongs to one host thread); 12 ints and a float per block.
extern "C" __global__ void shared_atomics(const int *in, int *out, float *fout)
{
    __shared__ int si[8];
    __shared__ unsigned su[4];
    __shared__ float sf;
    int t = threadIdx.x;
    if (t < 8)
        si[t] = t == 1 ? 1000000 : t == 2 ? -1000000 : t == 6 ? -1 : 0;
    if (t < 4)
        su[t] = t == 1 ? 0xffffffffu : 0u;
    if (t == 0)
        sf = 0.0f;
    __syncthreads();
    int v = in[blockIdx.x * blockDim.x + t];
    atomicAdd(&si[0], v);
    atomicMin(&si[1], v);
    atomicMax(&si[2], v);
    atomicOr(&si[3], 1 << (t & 31));
    atomicXor(&si[4], v);
    atomicExch(&si[5], t);
    atomicAnd(&si[6], ~(1 << (t & 15)));
    int old = si[7], assumed;
    do {
        assumed = old;
        old = atomicCAS(&si[7], assumed, assumed + 1);
    } while (old != assumed);
    atomicAdd(&su[0], 1u);
    atomicMin(&su[1], (unsigned)v);
    atomicMax(&su[2], (unsigned)v);
    atomicAdd(&sf, 0.5f);
    __syncthreads();
    if (t < 8)
        out[blockIdx.x * 12 + t] = si[t];
    if (t < 4)
        out[blockIdx.x * 12 + 8 + t] = (int)su[t];
    if (t == 0)
        fout[blockIdx.x] = sf;
}

extern "C" __global__ void dmath(const double *x, double *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = sqrt(x[i]) + exp(fmod(x[i], 600.0) * 0.25) + sin(x[i]) * cos(x[i] * 0.5) + log(x[i] + 1.0) + x[i] / 3.0;
}

extern "C" __global__ void fmath(const float *x, float *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = x[i];
        y[i] = sqrtf(v) + expf(v * 0.25f) + sinf(v) * cosf(v * 0.5f) + logf(v + 1.0f) + v / 3.0f
             + rsqrtf(v + 1.0f) + powf(v + 0.5f, 1.5f) + tanhf(v - 4.0f);
    }
}

extern "C" __global__ void grid_stride(const unsigned *in, unsigned *out, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)blockDim.x * gridDim.x)
        out[i] = in[i] * 2654435761u + (unsigned)(i >> 3);
}

__constant__ float coeffs[16];
__constant__ int table[8] = {3, 1, 4, 1, 5, 9, 2, 6};
__device__ int counter = 42;

extern "C" __global__ void const_poly(const float *x, float *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float acc = 0.0f;
        for (int k = 15; k >= 0; k--)
            acc = acc * x[i] + coeffs[k];
        y[i] = acc + table[i & 7] + counter;
    }
}

extern "C" __global__ void dyn_shared(const int *in, int *out, int n)
{
    extern __shared__ int buf[];
    int t = threadIdx.x;
    int i = blockIdx.x * blockDim.x + t;
    buf[t] = i < n ? in[i] : 0;
    __syncthreads();
    int r = buf[blockDim.x - 1 - t];
    if (i < n)
        out[i] = r;
}

extern "C" __global__ void oob_write(int *p, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    p[i + n] = i;
}

struct S3 {
    char c;
    double d;
    int i;
};

extern "C" __global__ void params_mix(char c, short s, int i, double d, long long *p,
                                      struct S3 st, float f, unsigned char u8, long long *out)
{
    out[0] = c;
    out[1] = s;
    out[2] = i;
    out[3] = (long long)(d * 1000.0);
    out[4] = (long long)p;
    out[5] = st.c;
    out[6] = (long long)(st.d * 1000.0);
    out[7] = st.i;
    out[8] = (long long)(f * 1000.0f);
    out[9] = u8;
}

__device__ __noinline__ int collatz_steps(unsigned long long v, int limit)
{
    int s = 0;
    while (v != 1 && s < limit) {
        v = (v & 1) ? 3 * v + 1 : v / 2;
        s++;
    }
    return s;
}

__device__ __noinline__ float2 swap_scale(float2 a, float k)
{
    return make_float2(a.y * k, a.x * k);
}

extern "C" __global__ void calls_local(const int *in, int *out, float *fo, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    int arr[12];
    for (int k = 0; k < 12; k++)
        arr[k] = in[i] * k + (k ^ i);
    int idx = in[i] % 12;
    if (idx < 0) idx += 12;
    out[i] = arr[idx] + collatz_steps((unsigned long long)(in[i] & 0xffff) + 1, 500);
    float2 r = swap_scale(make_float2((float)i, (float)(i + 1)), 0.5f);
    fo[2 * i] = r.x;
    fo[2 * i + 1] = r.y;
}

extern "C" __global__ void int_ops(const unsigned *a, const unsigned *b, unsigned *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    unsigned x = a[i], y = b[i];
    int sx = (int)x, sy = (int)y;
    unsigned *o = out + i * 16;
    o[0] = __popc(x);
    o[1] = __clz(x);
    o[2] = __brev(x);
    o[3] = __umulhi(x, y);
    o[4] = (unsigned)__mulhi(sx, sy);
    o[5] = y ? x / y : 0;
    o[6] = sy ? (unsigned)(sx / sy) : 0;
    o[7] = sy ? (unsigned)(sx % sy) : 0;
    o[8] = __funnelshift_l(x, y, i & 31);
    o[9] = __byte_perm(x, y, 0x5140 + i);
    o[10] = (x >> (i & 31)) | (y << ((i + 3) & 31));
    o[11] = (unsigned)max(sx, sy) ^ min(x, y);
    o[12] = (unsigned)(sx >> (i & 31));
    o[13] = (unsigned)__ffs(x) + (unsigned)__popcll(((unsigned long long)x << 32) | y);
    o[14] = (unsigned)(((unsigned long long)x * y) >> 7);
    o[15] = (unsigned)abs(sx) + (unsigned)(float)sx + (unsigned)(int)((float)y * 0.5f);
}
