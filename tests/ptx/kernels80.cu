// kernels80.cu - device code for test_ptx.c built for compute_80: cp.async copies into shared
// memory (cuda_pipeline.h) and bfloat16 arithmetic.
#include <cuda_bf16.h>
#include <cuda_pipeline.h>
#include <cooperative_groups.h>

extern "C" __global__ void async_copy_bf16(const float *in, const float *w, float *out, int n)
{
    __shared__ float tile[256];
    int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    if (i < n)
        __pipeline_memcpy_async(&tile[t], &in[i], sizeof(float));
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncthreads();
    if (i < n) {
        float v = tile[blockDim.x - 1 - t < blockDim.x ? blockDim.x - 1 - t : 0];
        __nv_bfloat16 a = __float2bfloat16(v), b = __float2bfloat16(w[i]);
        __nv_bfloat16 c = __hfma(a, b, __hadd(a, b));
        __nv_bfloat162 p = __floats2bfloat162_rn(v, w[i]);
        __nv_bfloat162 q = __hmul2(p, p);
        out[i] = __bfloat162float(c) + __low2float(q) + __high2float(q);
    }
}

extern "C" __global__ void redux_lop3(const unsigned *in, unsigned *out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned v = in[i];
    unsigned *o = out + i * 5;
    o[0] = __reduce_add_sync(0xffffffffu, v);
    o[1] = __reduce_max_sync(0xffffffffu, v);
    o[2] = (unsigned)__reduce_min_sync(0xffffffffu, (int)v);
    o[3] = __reduce_xor_sync(0xffffffffu, v);
    unsigned r;
    asm("lop3.b32 %0, %1, %2, %3, 0xE8;" : "=r"(r) : "r"(v), "r"(v * 3u), "r"(v >> 5));
    o[4] = r;
}

// cp.async with src-size < cp-size (zero fill): __pipeline_memcpy_async's zfill argument; the
// destination index is shifted by `dshift` (out of the shared tile when large).
extern "C" __global__ void async_zfill(const float4 *in, float4 *out, int zfill, int dshift)
{
    __shared__ float4 tile[32];
    int t = threadIdx.x;
    __pipeline_memcpy_async(&tile[t] + dshift, &in[t], sizeof(float4), zfill);
    __pipeline_commit();
    __pipeline_wait_prior(0);
    __syncthreads();
    out[t] = tile[t];
}

// cooperative groups' grid.sync() (needs a cooperative launch): every block publishes a value,
// then reads all the others' twice, with a second grid barrier between.
extern "C" __global__ void grid_sync_sum(int *x, int *out)
{
    cooperative_groups::grid_group g = cooperative_groups::this_grid();
    int b = blockIdx.x, n = gridDim.x;
    if (threadIdx.x == 0)
        x[b] = b + 1;
    g.sync();
    int s = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        s += x[i];
    atomicAdd(&out[b], s);
    g.sync();
    if (threadIdx.x == 0)
        x[(b + 1) % n] = 0; /* after everyone's reads */
}

// Device-side malloc/free: each thread allocates (t + 1) ints and fills them; the pointers
// outlive the launch; a second launch sums and frees them (bad != 0: frees one twice).
extern "C" __global__ void heap_fill(int **ptrs)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    int *p = (int *)malloc((t + 1) * sizeof(int));
    if (p)
        for (int i = 0; i <= t; i++)
            p[i] = t * 100 + i;
    ptrs[t] = p;
}

extern "C" __global__ void heap_sum_free(int **ptrs, long long *sums, int bad)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    int *p = ptrs[t];
    long long s = -1;
    if (p) {
        s = 0;
        for (int i = 0; i <= t; i++)
            s += p[i];
    }
    sums[t] = s;
    free(p);
    if (bad && t == 0)
        free(p);
}
