// libs.cu - CUDA libraries through whichever libcuda.so.1 is loaded (NVIDIA's or libvgpu's),
// each result checked against a CPU reference. One test per process (a fault poisons the
// process): `libs TEST` with TEST one of
//   sgemm          cublasSgemm 256x192x128
//   gemmex_bf16    cublasGemmEx, CUDA_R_16BF inputs, fp32 output and compute
//   sgemm_batched  cublasSgemmBatched, 8 matrices, the pointer arrays in device memory (the
//                  library's kernel reads device pointers out of device memory)
//   fft_c2c        cufftExecC2C, 1024 points forward, against a direct DFT
//   rand_uniform   curandGenerateUniform, 1M values in (0, 1], mean near 0.5
// Prints one JSON line (gpucheck.h) naming the failing call and its status on failure.
#include "gpucheck.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cufft.h>
#include <curand.h>
#include <math.h>
#include <stdint.h>

#define CUBLAS(call)                                                                           \
    do {                                                                                       \
        cublasStatus_t s_ = (call);                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                     \
            gc_emit(g_test, "fail", "call", #call, "line", gc_fmt("%d", __LINE__), "error",    \
                    gc_fmt("%s (%d)", cublasGetStatusName(s_), (int)s_), "cuda_last_error",   \
                    gc_cuda_err(cudaGetLastError()), "libcuda", gc_libcuda(), NULL);           \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

static const char *cufft_name(cufftResult r)
{
    switch (r) {
    case CUFFT_SUCCESS: return "CUFFT_SUCCESS";
    case CUFFT_INVALID_PLAN: return "CUFFT_INVALID_PLAN";
    case CUFFT_ALLOC_FAILED: return "CUFFT_ALLOC_FAILED";
    case CUFFT_INVALID_TYPE: return "CUFFT_INVALID_TYPE";
    case CUFFT_INVALID_VALUE: return "CUFFT_INVALID_VALUE";
    case CUFFT_INTERNAL_ERROR: return "CUFFT_INTERNAL_ERROR";
    case CUFFT_EXEC_FAILED: return "CUFFT_EXEC_FAILED";
    case CUFFT_SETUP_FAILED: return "CUFFT_SETUP_FAILED";
    case CUFFT_INVALID_SIZE: return "CUFFT_INVALID_SIZE";
    default: return "cufftResult";
    }
}

#define CUFFT(call)                                                                            \
    do {                                                                                       \
        cufftResult r_ = (call);                                                               \
        if (r_ != CUFFT_SUCCESS) {                                                             \
            gc_emit(g_test, "fail", "call", #call, "line", gc_fmt("%d", __LINE__), "error",    \
                    gc_fmt("%s (%d)", cufft_name(r_), (int)r_), "cuda_last_error",            \
                    gc_cuda_err(cudaGetLastError()), "libcuda", gc_libcuda(), NULL);           \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

static const char *curand_name(curandStatus_t r)
{
    switch (r) {
    case CURAND_STATUS_NOT_INITIALIZED: return "CURAND_STATUS_NOT_INITIALIZED";
    case CURAND_STATUS_ALLOCATION_FAILED: return "CURAND_STATUS_ALLOCATION_FAILED";
    case CURAND_STATUS_TYPE_ERROR: return "CURAND_STATUS_TYPE_ERROR";
    case CURAND_STATUS_OUT_OF_RANGE: return "CURAND_STATUS_OUT_OF_RANGE";
    case CURAND_STATUS_LAUNCH_FAILURE: return "CURAND_STATUS_LAUNCH_FAILURE";
    case CURAND_STATUS_PREEXISTING_FAILURE: return "CURAND_STATUS_PREEXISTING_FAILURE";
    case CURAND_STATUS_INITIALIZATION_FAILED: return "CURAND_STATUS_INITIALIZATION_FAILED";
    case CURAND_STATUS_ARCH_MISMATCH: return "CURAND_STATUS_ARCH_MISMATCH";
    case CURAND_STATUS_INTERNAL_ERROR: return "CURAND_STATUS_INTERNAL_ERROR";
    default: return "curandStatus";
    }
}

#define CURAND(call)                                                                           \
    do {                                                                                       \
        curandStatus_t r_ = (call);                                                            \
        if (r_ != CURAND_STATUS_SUCCESS) {                                                     \
            gc_emit(g_test, "fail", "call", #call, "line", gc_fmt("%d", __LINE__), "error",    \
                    gc_fmt("%s (%d)", curand_name(r_), (int)r_), "cuda_last_error",           \
                    gc_cuda_err(cudaGetLastError()), "libcuda", gc_libcuda(), NULL);           \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

static float frand(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xFFFF) / 32768.0f - 1.0f; // [-1, 1)
}

// Column-major C(m x n) = A(m x k) * B(k x n) in double; returns the largest error relative to
// sum |a||b| of that element (the scale of rounding errors).
static double gemm_check(const float *A, const float *B, const float *C, int m, int n, int k,
                         double *worst_abs)
{
    double worst = 0;
    *worst_abs = 0;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double ref = 0, scale = 0;
            for (int l = 0; l < k; l++) {
                ref += (double)A[i + l * m] * B[l + j * k];
                scale += fabs((double)A[i + l * m] * B[l + j * k]);
            }
            double err = fabs(C[i + j * m] - ref);
            if (err > *worst_abs)
                *worst_abs = err;
            if (scale > 0 && err / scale > worst)
                worst = err / scale;
            if (isnan(C[i + j * m]))
                worst = INFINITY;
        }
    return worst;
}

static int t_sgemm(void)
{
    g_test = "libs.sgemm";
    const int m = 256, n = 192, k = 128;
    const float alpha = 1.0f, beta = 0.0f;
    float *hA = (float *)malloc(sizeof(float) * m * k), *hB = (float *)malloc(sizeof(float) * k * n),
          *hC = (float *)malloc(sizeof(float) * m * n);
    float *A, *B, *C;
    uint32_t s = 1;
    for (int i = 0; i < m * k; i++)
        hA[i] = frand(&s);
    for (int i = 0; i < k * n; i++)
        hB[i] = frand(&s);
    cublasHandle_t h;
    CUBLAS(cublasCreate(&h));
    RT(cudaMalloc(&A, sizeof(float) * m * k));
    RT(cudaMalloc(&B, sizeof(float) * k * n));
    RT(cudaMalloc(&C, sizeof(float) * m * n));
    RT(cudaMemset(C, 0xFF, sizeof(float) * m * n));
    RT(cudaMemcpy(A, hA, sizeof(float) * m * k, cudaMemcpyHostToDevice));
    RT(cudaMemcpy(B, hB, sizeof(float) * k * n, cudaMemcpyHostToDevice));
    CUBLAS(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, A, m, B, k, &beta, C, m));
    RT(cudaDeviceSynchronize());
    RT(cudaMemcpy(hC, C, sizeof(float) * m * n, cudaMemcpyDeviceToHost));
    double wa, w = gemm_check(hA, hB, hC, m, n, k, &wa);
    int ok = w < 1e-4;
    gc_emit(g_test, ok ? "pass" : "fail", "detail",
            gc_fmt("%dx%dx%d, worst error %.3g of the element's scale (limit 1e-4), %.3g absolute",
                   m, n, k, w, wa), "libcuda", gc_libcuda(), NULL);
    CUBLAS(cublasDestroy(h));
    return ok ? 0 : 1;
}

static int t_gemmex_bf16(void)
{
    g_test = "libs.gemmex_bf16";
    const int m = 128, n = 128, k = 256;
    const float alpha = 1.0f, beta = 0.0f;
    __nv_bfloat16 *hA = (__nv_bfloat16 *)malloc(sizeof(__nv_bfloat16) * m * k),
                  *hB = (__nv_bfloat16 *)malloc(sizeof(__nv_bfloat16) * k * n);
    float *fA = (float *)malloc(sizeof(float) * m * k), *fB = (float *)malloc(sizeof(float) * k * n),
          *hC = (float *)malloc(sizeof(float) * m * n);
    __nv_bfloat16 *A, *B;
    float *C;
    uint32_t s = 7;
    // The reference uses the bf16-rounded inputs, so only accumulation error remains.
    for (int i = 0; i < m * k; i++) {
        hA[i] = __float2bfloat16(frand(&s));
        fA[i] = __bfloat162float(hA[i]);
    }
    for (int i = 0; i < k * n; i++) {
        hB[i] = __float2bfloat16(frand(&s));
        fB[i] = __bfloat162float(hB[i]);
    }
    cublasHandle_t h;
    CUBLAS(cublasCreate(&h));
    RT(cudaMalloc(&A, sizeof(__nv_bfloat16) * m * k));
    RT(cudaMalloc(&B, sizeof(__nv_bfloat16) * k * n));
    RT(cudaMalloc(&C, sizeof(float) * m * n));
    RT(cudaMemset(C, 0xFF, sizeof(float) * m * n));
    RT(cudaMemcpy(A, hA, sizeof(__nv_bfloat16) * m * k, cudaMemcpyHostToDevice));
    RT(cudaMemcpy(B, hB, sizeof(__nv_bfloat16) * k * n, cudaMemcpyHostToDevice));
    CUBLAS(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, A, CUDA_R_16BF, m, B,
                        CUDA_R_16BF, k, &beta, C, CUDA_R_32F, m, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT));
    RT(cudaDeviceSynchronize());
    RT(cudaMemcpy(hC, C, sizeof(float) * m * n, cudaMemcpyDeviceToHost));
    double wa, w = gemm_check(fA, fB, hC, m, n, k, &wa);
    int ok = w < 1e-4;
    gc_emit(g_test, ok ? "pass" : "fail", "detail",
            gc_fmt("%dx%dx%d bf16 in, fp32 out, worst error %.3g of the element's scale (limit "
                   "1e-4), %.3g absolute", m, n, k, w, wa), "libcuda", gc_libcuda(), NULL);
    CUBLAS(cublasDestroy(h));
    return ok ? 0 : 1;
}

static int t_sgemm_batched(void)
{
    g_test = "libs.sgemm_batched";
    const int m = 64, n = 64, k = 64, batch = 8;
    const float alpha = 1.0f, beta = 0.0f;
    const size_t ea = (size_t)m * k, eb = (size_t)k * n, ec = (size_t)m * n;
    float *hA = (float *)malloc(sizeof(float) * ea * batch), *hB = (float *)malloc(sizeof(float) * eb * batch),
          *hC = (float *)malloc(sizeof(float) * ec * batch);
    float *A, *B, *C;
    const float *hpa[batch], *hpb[batch];
    float *hpc[batch];
    const float **dpa;
    const float **dpb;
    float **dpc;
    uint32_t s = 3;
    for (size_t i = 0; i < ea * batch; i++)
        hA[i] = frand(&s);
    for (size_t i = 0; i < eb * batch; i++)
        hB[i] = frand(&s);
    cublasHandle_t h;
    CUBLAS(cublasCreate(&h));
    RT(cudaMalloc(&A, sizeof(float) * ea * batch));
    RT(cudaMalloc(&B, sizeof(float) * eb * batch));
    RT(cudaMalloc(&C, sizeof(float) * ec * batch));
    RT(cudaMemset(C, 0xFF, sizeof(float) * ec * batch));
    RT(cudaMemcpy(A, hA, sizeof(float) * ea * batch, cudaMemcpyHostToDevice));
    RT(cudaMemcpy(B, hB, sizeof(float) * eb * batch, cudaMemcpyHostToDevice));
    for (int b = 0; b < batch; b++) {
        hpa[b] = A + b * ea;
        hpb[b] = B + b * eb;
        hpc[b] = C + b * ec;
    }
    RT(cudaMalloc(&dpa, sizeof(hpa)));
    RT(cudaMalloc(&dpb, sizeof(hpb)));
    RT(cudaMalloc(&dpc, sizeof(hpc)));
    RT(cudaMemcpy(dpa, hpa, sizeof(hpa), cudaMemcpyHostToDevice));
    RT(cudaMemcpy(dpb, hpb, sizeof(hpb), cudaMemcpyHostToDevice));
    RT(cudaMemcpy(dpc, hpc, sizeof(hpc), cudaMemcpyHostToDevice));
    CUBLAS(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dpa, m, dpb, k, &beta,
                              dpc, m, batch));
    RT(cudaDeviceSynchronize());
    RT(cudaMemcpy(hC, C, sizeof(float) * ec * batch, cudaMemcpyDeviceToHost));
    double worst = 0, worst_abs = 0;
    for (int b = 0; b < batch; b++) {
        double wa, w = gemm_check(hA + b * ea, hB + b * eb, hC + b * ec, m, n, k, &wa);
        if (w > worst)
            worst = w;
        if (wa > worst_abs)
            worst_abs = wa;
    }
    int ok = worst < 1e-4;
    gc_emit(g_test, ok ? "pass" : "fail", "detail",
            gc_fmt("%d x %dx%dx%d, pointer arrays in device memory, worst error %.3g of the "
                   "element's scale (limit 1e-4)", batch, m, n, k, worst),
            "libcuda", gc_libcuda(), NULL);
    CUBLAS(cublasDestroy(h));
    return ok ? 0 : 1;
}

static int t_fft_c2c(void)
{
    g_test = "libs.fft_c2c";
    const int n = 1024;
    cufftComplex *h = (cufftComplex *)malloc(sizeof(cufftComplex) * n),
                 *back = (cufftComplex *)malloc(sizeof(cufftComplex) * n), *d;
    uint32_t s = 11;
    for (int i = 0; i < n; i++) {
        h[i].x = frand(&s);
        h[i].y = frand(&s);
    }
    cufftHandle plan;
    RT(cudaMalloc(&d, sizeof(cufftComplex) * n));
    RT(cudaMemcpy(d, h, sizeof(cufftComplex) * n, cudaMemcpyHostToDevice));
    CUFFT(cufftPlan1d(&plan, n, CUFFT_C2C, 1));
    CUFFT(cufftExecC2C(plan, d, d, CUFFT_FORWARD));
    RT(cudaDeviceSynchronize());
    RT(cudaMemcpy(back, d, sizeof(cufftComplex) * n, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int kk = 0; kk < n; kk++) {
        double re = 0, im = 0;
        for (int j = 0; j < n; j++) {
            double a = -2.0 * M_PI * (double)kk * j / n;
            re += h[j].x * cos(a) - h[j].y * sin(a);
            im += h[j].x * sin(a) + h[j].y * cos(a);
        }
        double e = hypot(back[kk].x - re, back[kk].y - im);
        if (e > worst || isnan(e))
            worst = isnan(e) ? INFINITY : e;
    }
    // Inputs in [-1, 1): |X_k| is about sqrt(n); single precision FFT errors are ~1e-5 of that.
    int ok = worst < 1e-3 * sqrt((double)n);
    gc_emit(g_test, ok ? "pass" : "fail", "detail",
            gc_fmt("%d-point forward C2C, worst absolute error %.3g (limit %.3g)", n, worst,
                   1e-3 * sqrt((double)n)), "libcuda", gc_libcuda(), NULL);
    CUFFT(cufftDestroy(plan));
    return ok ? 0 : 1;
}

static int t_rand_uniform(void)
{
    g_test = "libs.rand_uniform";
    const size_t n = 1u << 20;
    float *d, *h = (float *)malloc(sizeof(float) * n);
    curandGenerator_t g;
    RT(cudaMalloc(&d, sizeof(float) * n));
    CURAND(curandCreateGenerator(&g, CURAND_RNG_PSEUDO_DEFAULT));
    CURAND(curandSetPseudoRandomGeneratorSeed(g, 1234ull));
    CURAND(curandGenerateUniform(g, d, n));
    RT(cudaDeviceSynchronize());
    RT(cudaMemcpy(h, d, sizeof(float) * n, cudaMemcpyDeviceToHost));
    double sum = 0;
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        sum += h[i];
        out += !(h[i] > 0.0f && h[i] <= 1.0f);
    }
    double mean = sum / n;
    int ok = out == 0 && fabs(mean - 0.5) < 0.01;
    gc_emit(g_test, ok ? "pass" : "fail", "detail",
            gc_fmt("%zu values, %zu outside (0, 1], mean %.5f", n, out, mean), "libcuda",
            gc_libcuda(), NULL);
    CURAND(curandDestroyGenerator(g));
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *t = argc > 1 ? argv[1] : "";
    if (strcmp(t, "sgemm") == 0)
        return t_sgemm();
    if (strcmp(t, "gemmex_bf16") == 0)
        return t_gemmex_bf16();
    if (strcmp(t, "sgemm_batched") == 0)
        return t_sgemm_batched();
    if (strcmp(t, "fft_c2c") == 0)
        return t_fft_c2c();
    if (strcmp(t, "rand_uniform") == 0)
        return t_rand_uniform();
    fprintf(stderr, "usage: %s sgemm|gemmex_bf16|sgemm_batched|fft_c2c|rand_uniform\n", argv[0]);
    return 2;
}
