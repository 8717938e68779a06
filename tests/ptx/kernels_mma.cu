// kernels_mma.cu - device code for test_ptx.c built for sm_80: tensor-core instructions.
// The wmma kernels use the CUDA wmma API (nvcc emits wmma.load/mma/store); the mma.sync
// kernels gather their fragments with the layouts of the PTX ISA ("Matrix Fragments for
// mma.m16n8k16 / m16n8k8 / m8n8k4 / m16n8k32"), written here independently of the engine.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>
using namespace nvcuda;

// D (col-major, 16x16) = 2 * (A (row-major 16x16) * B (col-major 16x16) + C (row-major)).
extern "C" __global__ void wmma_f16(const half *a, const half *b, const float *c, float *d)
{
    wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
    wmma::load_matrix_sync(fa, a, 16);
    wmma::load_matrix_sync(fb, b, 16);
    wmma::load_matrix_sync(fc, c, 16, wmma::mem_row_major);
    wmma::mma_sync(fc, fa, fb, fc);
    for (int i = 0; i < fc.num_elements; i++)
        fc.x[i] *= 2.0f;
    wmma::store_matrix_sync(d, fc, 16, wmma::mem_col_major);
}

// Half accumulators, m32n8k16, A column-major with leading dimension 40 (a sub-matrix).
extern "C" __global__ void wmma_f16acc(const half *a, const half *b, const half *c, half *d)
{
    wmma::fragment<wmma::matrix_a, 32, 8, 16, half, wmma::col_major> fa;
    wmma::fragment<wmma::matrix_b, 32, 8, 16, half, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 32, 8, 16, half> fc;
    wmma::load_matrix_sync(fa, a, 40);
    wmma::load_matrix_sync(fb, b, 8);
    wmma::load_matrix_sync(fc, c, 8, wmma::mem_row_major);
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::store_matrix_sync(d, fc, 8, wmma::mem_row_major);
}

extern "C" __global__ void wmma_bf16(const __nv_bfloat16 *a, const __nv_bfloat16 *b, float *d)
{
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
    wmma::fill_fragment(fc, 1.0f);
    wmma::load_matrix_sync(fa, a, 16);
    wmma::load_matrix_sync(fb, b, 16);
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::store_matrix_sync(d, fc, 16, wmma::mem_row_major);
}

// tf32: inputs rounded with __float_to_tf32 (cvt.rna.tf32.f32), as the CUDA samples do.
extern "C" __global__ void wmma_tf32(const float *a, const float *b, float *d)
{
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> fc;
    wmma::fill_fragment(fc, 0.0f);
    wmma::load_matrix_sync(fa, a, 8);
    wmma::load_matrix_sync(fb, b, 8);
    for (int i = 0; i < fa.num_elements; i++)
        fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
    for (int i = 0; i < fb.num_elements; i++)
        fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::store_matrix_sync(d, fc, 16, wmma::mem_row_major);
}

extern "C" __global__ void wmma_f64(const double *a, const double *b, const double *c,
                                   double *d)
{
    wmma::fragment<wmma::matrix_a, 8, 8, 4, double, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 8, 8, 4, double, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 8, 8, 4, double> fc;
    wmma::load_matrix_sync(fa, a, 4);
    wmma::load_matrix_sync(fb, b, 4);
    wmma::load_matrix_sync(fc, c, 8, wmma::mem_row_major);
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::store_matrix_sync(d, fc, 8, wmma::mem_row_major);
}

// s8 with s32 accumulators, one warp per 16x16 tile of a 32x16 result (two warps).
extern "C" __global__ void wmma_s8(const signed char *a, const signed char *b, const int *c,
                                  int *d)
{
    int wp = threadIdx.x / 32;
    wmma::fragment<wmma::matrix_a, 16, 16, 16, signed char, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, signed char, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, int> fc;
    wmma::load_matrix_sync(fa, a + wp * 16 * 16, 16);
    wmma::load_matrix_sync(fb, b, 16);
    wmma::load_matrix_sync(fc, c + wp * 16 * 16, 16, wmma::mem_row_major);
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::store_matrix_sync(d + wp * 16 * 16, fc, 16, wmma::mem_row_major);
}

// wmma through shared memory (the samples stage tiles there).
extern "C" __global__ void wmma_shared(const half *a, const half *b, float *d)
{
    __shared__ half sa[16 * 16], sb[16 * 16];
    __shared__ float sd[16 * 16];
    for (int i = threadIdx.x; i < 256; i += 32) {
        sa[i] = a[i];
        sb[i] = b[i];
    }
    __syncwarp();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> fc;
    wmma::fill_fragment(fc, 0.0f);
    wmma::load_matrix_sync(fa, sa, 16);
    wmma::load_matrix_sync(fb, sb, 16);
    wmma::mma_sync(fc, fa, fb, fc);
    wmma::store_matrix_sync(sd, fc, 16, wmma::mem_row_major);
    __syncwarp();
    for (int i = threadIdx.x; i < 256; i += 32)
        d[i] = sd[i];
}

// ---- mma.sync with the documented fragment layouts --------------------------------------
// A is M x K row-major, B is K x N row-major, C and D are M x N row-major, all in global memory.

__device__ static void c_rc(int lane, int i, int *r, int *c)
{
    *r = (lane >> 2) + (i >= 2 ? 8 : 0);
    *c = (lane & 3) * 2 + (i & 1);
}

// The four accumulators of this lane (m16n8 C/D fragment) from / to an M x 8 row-major matrix.
template <typename T> __device__ static void load_c(int lane, const T *c, T rc[4])
{
    for (int i = 0; i < 4; i++) {
        int r, cc;
        c_rc(lane, i, &r, &cc);
        rc[i] = c[r * 8 + cc];
    }
}

template <typename T> __device__ static void store_d(int lane, const T rd[4], T *d)
{
    for (int i = 0; i < 4; i++) {
        int r, cc;
        c_rc(lane, i, &r, &cc);
        d[r * 8 + cc] = rd[i];
    }
}

extern "C" __global__ void mma_f16(const half *a, const half *b, const float *c, float *d)
{
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    unsigned ra[4], rb[2];
    float rc[4], rd[4];
    for (int i = 0; i < 8; i++) { // a0..a7: two per register
        int row = g + ((i < 2 || (i >= 4 && i < 6)) ? 0 : 8);
        int col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
        unsigned short h = __half_as_ushort(a[row * 16 + col]);
        ra[i / 2] = (i & 1) ? (ra[i / 2] | (unsigned)h << 16) : h;
    }
    for (int i = 0; i < 4; i++) { // b0..b3
        int row = t * 2 + (i & 1) + (i >= 2 ? 8 : 0), col = g;
        unsigned short h = __half_as_ushort(b[row * 8 + col]);
        rb[i / 2] = (i & 1) ? (rb[i / 2] | (unsigned)h << 16) : h;
    }
    load_c(lane, c, rc);
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
                 : "=f"(rd[0]), "=f"(rd[1]), "=f"(rd[2]), "=f"(rd[3])
                 : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]),
                   "f"(rc[0]), "f"(rc[1]), "f"(rc[2]), "f"(rc[3]));
    store_d(lane, rd, d);
}

extern "C" __global__ void mma_tf32(const float *a, const float *b, float *d)
{
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    unsigned ra[4], rb[2];
    float rd[4];
    for (int i = 0; i < 4; i++) { // m16n8k8 .tf32: a0..a3
        int row = g + ((i & 1) ? 8 : 0), col = t + (i >= 2 ? 4 : 0);
        ra[i] = __float_as_uint(a[row * 8 + col]);
    }
    for (int i = 0; i < 2; i++) { // b0, b1
        int row = t + (i ? 4 : 0), col = g;
        rb[i] = __float_as_uint(b[row * 8 + col]);
    }
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%10,%10,%10,%10};"
                 : "=f"(rd[0]), "=f"(rd[1]), "=f"(rd[2]), "=f"(rd[3])
                 : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]),
                   "f"(0.0f));
    store_d(lane, rd, d);
}

extern "C" __global__ void mma_f64(const double *a, const double *b, const double *c, double *d)
{
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    double ra = a[g * 4 + t], rb = b[t * 8 + g], rc0 = c[g * 8 + t * 2], rc1 = c[g * 8 + t * 2 + 1];
    double d0, d1;
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%4,%5};"
                 : "=d"(d0), "=d"(d1)
                 : "d"(ra), "d"(rb), "d"(rc0), "d"(rc1));
    d[g * 8 + t * 2] = d0;
    d[g * 8 + t * 2 + 1] = d1;
}

extern "C" __global__ void mma_s8(const signed char *a, const signed char *b, const int *c, int *d)
{
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    unsigned ra[4] = {0, 0, 0, 0}, rb[2] = {0, 0};
    int rc[4], rd[4];
    for (int i = 0; i < 16; i++) { // m16n8k32 .s8: a0..a15, four per register
        int row = g + ((i < 4 || (i >= 8 && i < 12)) ? 0 : 8);
        int col = t * 4 + (i & 3) + (i >= 8 ? 16 : 0);
        ra[i / 4] |= (unsigned)(unsigned char)a[row * 32 + col] << (8 * (i & 3));
    }
    for (int i = 0; i < 8; i++) { // b0..b7
        int row = t * 4 + (i & 3) + (i >= 4 ? 16 : 0), col = g;
        rb[i / 4] |= (unsigned)(unsigned char)b[row * 8 + col] << (8 * (i & 3));
    }
    load_c(lane, c, rc);
    asm volatile("mma.sync.aligned.m16n8k32.row.col.satfinite.s32.s8.s8.s32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
                 : "=r"(rd[0]), "=r"(rd[1]), "=r"(rd[2]), "=r"(rd[3])
                 : "r"(ra[0]), "r"(ra[1]), "r"(ra[2]), "r"(ra[3]), "r"(rb[0]), "r"(rb[1]),
                   "r"(rc[0]), "r"(rc[1]), "r"(rc[2]), "r"(rc[3]));
    store_d(lane, rd, d);
}

// ldmatrix.x4 (plain and .trans) from shared memory, lane i*8+q naming row 7-q of stored
// matrix 3-i; then movmatrix of the first plain register. out: 9 words per lane.
extern "C" __global__ void ldmatrix_x4(const unsigned short *in, unsigned *out)
{
    __shared__ unsigned short tile[4][8][8];
    int lane = threadIdx.x;
    for (int i = lane; i < 256; i += 32)
        (&tile[0][0][0])[i] = in[i];
    __syncwarp();
    int i = lane / 8, q = lane % 8;
    unsigned addr = (unsigned)__cvta_generic_to_shared(&tile[3 - i][7 - q][0]);
    unsigned r[4], t[4], mv;
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(t[0]), "=r"(t[1]), "=r"(t[2]), "=r"(t[3]) : "r"(addr));
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;" : "=r"(mv) : "r"(r[0]));
    for (int k = 0; k < 4; k++) {
        out[lane * 9 + k] = r[k];
        out[lane * 9 + 4 + k] = t[k];
    }
    out[lane * 9 + 8] = mv;
}

// %envreg: read as zero (no cooperative launch workspace), as a non-cooperative launch sees.
extern "C" __global__ void envregs(unsigned *out)
{
    unsigned a, b;
    asm("mov.u32 %0, %%envreg1;" : "=r"(a));
    asm("mov.u32 %0, %%envreg31;" : "=r"(b));
    out[threadIdx.x] = a + b + 7;
}
