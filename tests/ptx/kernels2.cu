// kernels2.cu - more device code for test_ptx.c: atomics of every kind, barrier reductions,
// warp match/activemask, half precision, rounding intrinsics, recursion, 3D grids, printf.
#include <cstdint>
#include <cstdio>
#include <cuda_fp16.h>

extern "C" __global__ void atomics_all(int *ib, unsigned *ub, unsigned long long *lb,
                                       float *fb, double *db, int *cas_out)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(&ib[0], t);
    atomicSub(&ib[1], t);
    atomicMax(&ib[2], t * 7 % 1001);
    atomicMin(&ib[3], -(t * 13 % 997));
    atomicAnd(&ub[0], ~(1u << (t % 32)));
    atomicOr(&ub[1], 1u << (t % 29));
    atomicXor(&ub[2], (unsigned)t * 2654435761u);
    atomicInc(&ub[3], 100u);
    atomicDec(&ub[4], 1000u);
    atomicMax(&ub[5], (unsigned)t * 3u);
    atomicAdd(&lb[0], (unsigned long long)t << 33);
    atomicMax(&lb[1], (unsigned long long)t * 1000000007ull);
    atomicAdd(&fb[0], 0.5f);
    atomicAdd(&db[0], 0.25);
    int old = atomicExch(&ib[4], t);
    (void)old;
    /* a ticket lock with atomicCAS: every thread takes exactly one ticket */
    int expected, got;
    do {
        expected = ib[5];
        got = atomicCAS(&ib[5], expected, expected + 1);
    } while (got != expected);
    cas_out[t] = got;
    __shared__ unsigned long long s64;
    __shared__ float sf;
    if (threadIdx.x == 0) {
        s64 = 0;
        sf = 0;
    }
    __syncthreads();
    atomicAdd(&s64, (unsigned long long)threadIdx.x);
    atomicAdd(&sf, 1.0f);
    __syncthreads();
    if (threadIdx.x == 0) {
        atomicAdd(&lb[2], s64);
        atomicAdd(&fb[1], sf);
    }
}

extern "C" __global__ void barrier_reduce(const int *in, int *out)
{
    int v = in[blockIdx.x * blockDim.x + threadIdx.x];
    int c = __syncthreads_count(v > 0);
    int a = __syncthreads_and(v > -50);
    int o = __syncthreads_or(v == 42);
    if (threadIdx.x == 0) {
        out[blockIdx.x * 3 + 0] = c;
        out[blockIdx.x * 3 + 1] = a;
        out[blockIdx.x * 3 + 2] = o;
    }
}

extern "C" __global__ void warp_match(const int *in, unsigned *out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int v = in[i];
    unsigned m = __match_any_sync(0xffffffffu, v);
    unsigned act = 0;
    if (v & 1)
        act = __activemask();
    __syncwarp();
    out[i * 2] = m;
    out[i * 2 + 1] = act;
}

extern "C" __global__ void halfs(const float *x, float *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        __half a = __float2half(x[i]);
        __half b = __float2half(0.5f * x[i] + 1.0f);
        __half c = __hadd(__hmul(a, b), __hsub(b, a));
        __half2 p = __halves2half2(a, b);
        __half2 q = __hmul2(p, p);
        y[i] = __half2float(c) + __low2float(q) + __high2float(q);
    }
}

extern "C" __global__ void rounding(const float *x, const double *xd, float *y, int *yi,
                                    double *yd, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float v = x[i], w = x[(i + 1) % n];
    double d = xd[i];
    float *o = y + i * 12;
    o[0] = __fadd_rz(v, w);
    o[1] = __fmul_rd(v, w);
    o[2] = __fdiv_ru(v, w);
    o[3] = __fsqrt_rd(fabsf(v));
    o[4] = rintf(v);
    o[5] = roundf(v);
    o[6] = truncf(v) + floorf(w) + ceilf(v);
    o[7] = fminf(v, w) - fmaxf(v, w) + fabsf(v);
    o[8] = __saturatef(v);
    o[9] = __double2float_rz(d);
    o[10] = __int2float_rd(i * 16777219);
    o[11] = __fmaf_rz(v, w, 1.0f);
    int *oi = yi + i * 6;
    oi[0] = __float2int_rn(v * 1000.0f);
    oi[1] = (int)__float2uint_rz(v * 1e9f);
    oi[2] = __double2int_rd(d);
    oi[3] = (int)(long long)(d * 1e12);
    oi[4] = (int)(signed char)(i * 37);
    oi[5] = (int)(short)(i * 4099);
    double *od = yd + i * 4;
    od[0] = __dadd_rz(d, (double)v);
    od[1] = fma(d, d, -1.0);
    od[2] = (double)(unsigned long long)(d * d * 1e6);
    od[3] = rint(d) + trunc(d) + floor(d) + ceil(d);
}

__device__ __noinline__ unsigned long long fib(int n)
{
    return n < 2 ? (unsigned long long)n : fib(n - 1) + fib(n - 2);
}

extern "C" __global__ void recursion3d(unsigned long long *out)
{
    int bx = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    int tx = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    int g = bx * blockDim.x * blockDim.y * blockDim.z + tx;
    out[g] = fib(tx % 15) * 1000000ull + (unsigned long long)(blockIdx.z * 10000 + blockIdx.y * 100 + blockIdx.x) * 1000 + threadIdx.z * 100 + threadIdx.y * 10 + threadIdx.x;
}

extern "C" __global__ void int64_ops(const long long *a, const long long *b, long long *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    long long x = a[i], y = b[i];
    unsigned long long ux = (unsigned long long)x, uy = (unsigned long long)y;
    long long *o = out + i * 8;
    o[0] = y ? x / y : 0;
    o[1] = y ? x % y : 0;
    o[2] = uy ? (long long)(ux / uy) : 0;
    o[3] = (long long)__umul64hi(ux, uy);
    o[4] = __mul64hi(x, y);
    o[5] = (long long)__brevll(ux) ^ __clzll(x) ^ ((long long)__ffsll(y) << 40);
    o[6] = x >> (i & 63);
    o[7] = (long long)(ux >> (i & 63)) + (x << (i & 31));
}

extern "C" __global__ void say_hello(int v)
{
    printf("hello %d from %d\n", v, threadIdx.x);
}

__device__ int switchy(int k, int v)
{
    switch (k) {
    case 0: return v + 1;
    case 1: return v * 3;
    case 2: return v ^ 0x55;
    case 3: return v - 100;
    case 4: return v << 2;
    case 5: return v / 7;
    case 6: return -v;
    case 7: return v & 0xf0;
    default: return 0;
    }
}

extern "C" __global__ void switch_kernel(const int *in, int *out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = switchy(in[i] & 7, in[i]) + switchy((in[i] >> 3) & 15, i);
}

extern "C" __global__ void tex_fetch(float *o, cudaTextureObject_t to)
{
    o[threadIdx.x] = tex1Dfetch<float>(to, threadIdx.x);
}

extern "C" __global__ void printf_mix(int v, double d, const char *s)
{
    printf("t%d v=%d d=%.3f s=%s c=%c ll=%lld x=%08x%%\n", (int)threadIdx.x, v, d * threadIdx.x,
           s, 'A' + threadIdx.x, (long long)v << 33, 255u);
}

#include <cassert>
extern "C" __global__ void checked(const int *p, int limit)
{
    assert(p[threadIdx.x] < limit);
}

__device__ __noinline__ int space_of(const void *p)
{
    return __isShared(p) + 2 * __isGlobal(p) + 4 * __isLocal(p);
}

__device__ __noinline__ int sum_generic(const int *p, int n)
{
    int s = 0;
    for (int i = 0; i < n; i++)
        s += p[i];
    return s;
}

extern "C" __global__ void spaces(int *out, int k)
{
    __shared__ int s[8];
    int l[8];
    for (int i = 0; i < 8; i++) {
        l[i] = i * k + (int)threadIdx.x;
        s[i] = i + k;
    }
    __syncthreads();
    int *o = out + threadIdx.x * 6;
    o[0] = space_of(s);
    o[1] = space_of(out);
    o[2] = space_of(l);
    o[3] = sum_generic(l, 8);
    o[4] = sum_generic(s, 8);
    o[5] = sum_generic(out + 1, 1);
}

// The pre-Volta warp-synchronous idiom: volatile shared memory, no __syncwarp.
__device__ void warp_reduce_legacy(volatile int *s, int tid)
{
    s[tid] += s[tid + 32];
    s[tid] += s[tid + 16];
    s[tid] += s[tid + 8];
    s[tid] += s[tid + 4];
    s[tid] += s[tid + 2];
    s[tid] += s[tid + 1];
}

extern "C" __global__ void legacy_reduce(const int *in, int *out)
{
    __shared__ int s[128];
    int tid = threadIdx.x;
    s[tid] = in[blockIdx.x * 128 + tid];
    __syncthreads();
    if (tid < 64)
        s[tid] += s[tid + 64];
    __syncthreads();
    if (tid < 32)
        warp_reduce_legacy(s, tid);
    if (tid == 0)
        out[blockIdx.x] = s[0];
}

// Thread 0 waits for a flag that the block's last thread sets: needs fair scheduling of the
// threads of a block (independent thread scheduling), not run-to-completion.
extern "C" __global__ void flag_wait(volatile int *flag, int *out)
{
    if (threadIdx.x == 0) {
        int spins = 0;
        while (*flag == 0)
            spins++;
        out[0] = *flag;
        out[1] = spins > 0;
    }
    if (threadIdx.x == blockDim.x - 1)
        *flag = 42;
}

// flag_wait with __syncthreads around it: the translator runs such a kernel in phase mode (the
// block's threads round after round) and must hand the block to the interpreter when thread 0
// spins, with every thread's state (the first barrier passed, shared memory written).
extern "C" __global__ void flag_wait_sync(volatile int *flag, int *out)
{
    __shared__ int s[64];
    s[threadIdx.x] = 3 * threadIdx.x;
    __syncthreads();
    if (threadIdx.x == 0) {
        int spins = 0;
        while (*flag == 0)
            spins++;
        out[0] = *flag + s[63];
        out[1] = spins > 0;
    }
    if (threadIdx.x == blockDim.x - 1)
        *flag = 42;
    __syncthreads();
    out[2 + threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x] + threadIdx.x;
}

extern "C" __global__ void int_misc(const int *a, const int *b, int *out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int x = a[i], y = b[i];
    int *o = out + i * 6;
    o[0] = __dp4a(x, y, i);
    o[1] = (int)__dp4a((unsigned)x, (unsigned)y, (unsigned)i);
    o[2] = __dp2a_lo(x, y, 7);
    o[3] = __dp2a_hi(x, y, -7);
    o[4] = __mul24(x, y);
    o[5] = (int)__umul24((unsigned)x, (unsigned)y);
}

// Module variables initialised with addresses of other variables and of a function.
__device__ int reloc_x[4] = {10, 20, 30, 40};
__device__ int *reloc_p = &reloc_x[2];
__device__ int twice(int v)
{
    return 2 * v;
}
__device__ int (*reloc_fp)(int) = twice;

extern "C" __global__ void reloc_read(int *out)
{
    out[0] = *reloc_p;
    out[1] = reloc_p[1];
}

extern "C" __global__ void fptr_call(int *out, int v)
{
    out[0] = reloc_fp(v);
}

// warpSize: nvcc writes PTX's predefined constant WARP_SZ as an operand.
extern "C" __global__ void warp_size_use(int *out)
{
    int t = threadIdx.x;
    out[t] = warpSize * 1000 + (t / warpSize) * 100 + t % warpSize;
}
