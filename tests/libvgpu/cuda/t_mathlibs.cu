// t_mathlibs.cu - NVIDIA's math libraries through libvgpu, each result checked on the CPU:
// cuSPARSE SpMV (CSR, float) against a CPU product; cuRAND's generator families (four, and
// MRG32K3A with T_MATHLIBS_ALL=1) on the device against the same generators run on the host (curandCreateGeneratorHost: the same
// sequence bit for bit); cuSOLVER LU factorisation and solve (getrf + getrs, double) of a system
// whose solution is known. (cuBLAS is t_cublas, cuFFT t_cufft.)
#include <cusparse.h>
#include <curand.h>
#include <cusolverDn.h>
#include <cmath>
#include <ctime>
#include <vector>
#include "check.h"

static void spmv(void)
{
    const int n = 300;
    std::vector<int> rp(n + 1), ci;
    std::vector<float> v, x(n), y(n), ref(n);
    for (int i = 0; i < n; i++) { // pentadiagonal
        rp[i] = (int)ci.size();
        for (int j = i - 2; j <= i + 2; j++)
            if (j >= 0 && j < n) {
                ci.push_back(j);
                v.push_back((float)((i + j) % 5) - 2);
            }
        x[i] = (float)(i % 3) + 1;
    }
    rp[n] = (int)ci.size();
    int nnz = rp[n];
    for (int i = 0; i < n; i++) {
        float s = 0;
        for (int k = rp[i]; k < rp[i + 1]; k++)
            s += v[k] * x[ci[k]];
        ref[i] = s;
    }
    int *drp, *dci;
    float *dv, *dx, *dy;
    CHECK(cudaMalloc((void **)&drp, (n + 1) * 4));
    CHECK(cudaMalloc((void **)&dci, nnz * 4));
    CHECK(cudaMalloc((void **)&dv, nnz * 4));
    CHECK(cudaMalloc((void **)&dx, n * 4));
    CHECK(cudaMalloc((void **)&dy, n * 4));
    CHECK(cudaMemcpy(drp, rp.data(), (n + 1) * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dci, ci.data(), nnz * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dv, v.data(), nnz * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dx, x.data(), n * 4, cudaMemcpyHostToDevice));
    cusparseHandle_t h;
    cusparseSpMatDescr_t A;
    cusparseDnVecDescr_t X, Y;
    EXPECT(cusparseCreate(&h) == CUSPARSE_STATUS_SUCCESS, "cusparseCreate");
    EXPECT(cusparseCreateCsr(&A, n, n, nnz, drp, dci, dv, CUSPARSE_INDEX_32I, CUSPARSE_INDEX_32I,
                             CUSPARSE_INDEX_BASE_ZERO, CUDA_R_32F) == CUSPARSE_STATUS_SUCCESS,
           "cusparseCreateCsr");
    EXPECT(cusparseCreateDnVec(&X, n, dx, CUDA_R_32F) == CUSPARSE_STATUS_SUCCESS, "DnVec x");
    EXPECT(cusparseCreateDnVec(&Y, n, dy, CUDA_R_32F) == CUSPARSE_STATUS_SUCCESS, "DnVec y");
    float a = 1, b = 0;
    size_t ws = 0;
    cusparseStatus_t st = cusparseSpMV_bufferSize(h, CUSPARSE_OPERATION_NON_TRANSPOSE, &a, A, X,
                                                  &b, Y, CUDA_R_32F, CUSPARSE_SPMV_ALG_DEFAULT, &ws);
    EXPECT(st == CUSPARSE_STATUS_SUCCESS, "cusparseSpMV_bufferSize: %d", (int)st);
    void *dw = NULL;
    CHECK(cudaMalloc(&dw, ws + 16));
    st = cusparseSpMV(h, CUSPARSE_OPERATION_NON_TRANSPOSE, &a, A, X, &b, Y, CUDA_R_32F,
                      CUSPARSE_SPMV_ALG_DEFAULT, dw);
    EXPECT(st == CUSPARSE_STATUS_SUCCESS, "cusparseSpMV: %d", (int)st);
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(y.data(), dy, n * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(y[i] - ref[i]) > 1e-5f && bad++ < 5)
            fprintf(stderr, "SpMV y[%d] = %g, want %g\n", i, y[i], ref[i]);
    EXPECT(bad == 0, "SpMV: %d of %d wrong", bad, n);
    cusparseDestroySpMat(A);
    cusparseDestroyDnVec(X);
    cusparseDestroyDnVec(Y);
    cusparseDestroy(h);
    cudaFree(drp), cudaFree(dci), cudaFree(dv), cudaFree(dx), cudaFree(dy), cudaFree(dw);
    printf("SPMV-RAN\n");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void rand_families(void)
{
    // MRG32K3A sets up its states with a kernel that takes the simulated GPU 25-45 s on the
    // development machine (STATUS.md): run with T_MATHLIBS_ALL=1 to include it.
    const struct { const char *name; curandRngType_t type; int slow; } gens[] = {
        {"PHILOX", CURAND_RNG_PSEUDO_PHILOX4_32_10, 0}, {"MTGP32", CURAND_RNG_PSEUDO_MTGP32, 0},
        {"SOBOL32", CURAND_RNG_QUASI_SOBOL32, 0},       {"XORWOW", CURAND_RNG_PSEUDO_XORWOW, 0},
        {"MRG32K3A", CURAND_RNG_PSEUDO_MRG32K3A, 1},
    };
    const char *all = getenv("T_MATHLIBS_ALL");
    const int n = 4096;
    std::vector<float> h(n), d(n);
    float *dd;
    CHECK(cudaMalloc((void **)&dd, n * 4));
    for (const auto &g : gens) {
        if (g.slow && !(all && *all == '1'))
            continue;
        double t0 = now();
        curandGenerator_t dev, host;
        EXPECT(curandCreateGenerator(&dev, g.type) == CURAND_STATUS_SUCCESS, "%s device", g.name);
        EXPECT(curandCreateGeneratorHost(&host, g.type) == CURAND_STATUS_SUCCESS, "%s host",
               g.name);
        if (g.type != CURAND_RNG_QUASI_SOBOL32) {
            curandSetPseudoRandomGeneratorSeed(dev, 1234);
            curandSetPseudoRandomGeneratorSeed(host, 1234);
        }
        curandStatus_t s1 = curandGenerateUniform(dev, dd, n);
        curandStatus_t s2 = curandGenerateUniform(host, h.data(), n);
        EXPECT(s1 == CURAND_STATUS_SUCCESS && s2 == CURAND_STATUS_SUCCESS,
               "%s: curandGenerateUniform device %d host %d", g.name, (int)s1, (int)s2);
        CHECK(cudaDeviceSynchronize());
        CHECK(cudaMemcpy(d.data(), dd, n * 4, cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int i = 0; i < n; i++)
            if (d[i] != h[i] && bad++ < 3)
                fprintf(stderr, "%s: [%d] device %.9g host %.9g\n", g.name, i, d[i], h[i]);
        EXPECT(bad == 0, "%s: %d of %d numbers differ from the host generator", g.name, bad, n);
        curandDestroyGenerator(dev);
        curandDestroyGenerator(host);
        printf("CURAND %s %.1f s\n", g.name, now() - t0);
    }
    cudaFree(dd);
    printf("CURAND-RAN\n");
}

static void lu_solve(void)
{
    const int n = 24;
    std::vector<double> A(n * n), b(n), x(n);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++)
            A[i + j * n] = i == j ? n + 1.0 : 1.0 / (1 + i + j);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < n; j++)
            s += A[i + j * n] * (j + 1);
        b[i] = s;
    }
    cusolverDnHandle_t h;
    EXPECT(cusolverDnCreate(&h) == CUSOLVER_STATUS_SUCCESS, "cusolverDnCreate");
    double *dA, *db, *dw;
    int *dp, *di, lw = 0, info = -1;
    CHECK(cudaMalloc((void **)&dA, n * n * 8));
    CHECK(cudaMalloc((void **)&db, n * 8));
    CHECK(cudaMalloc((void **)&dp, n * 4));
    CHECK(cudaMalloc((void **)&di, 4));
    CHECK(cudaMemcpy(dA, A.data(), n * n * 8, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(db, b.data(), n * 8, cudaMemcpyHostToDevice));
    EXPECT(cusolverDnDgetrf_bufferSize(h, n, n, dA, n, &lw) == CUSOLVER_STATUS_SUCCESS, "bufsize");
    CHECK(cudaMalloc((void **)&dw, (size_t)lw * 8 + 8));
    cusolverStatus_t st = cusolverDnDgetrf(h, n, n, dA, n, dw, dp, di);
    EXPECT(st == CUSOLVER_STATUS_SUCCESS, "cusolverDnDgetrf: %d", (int)st);
    st = cusolverDnDgetrs(h, CUBLAS_OP_N, n, 1, dA, n, dp, db, n, di);
    EXPECT(st == CUSOLVER_STATUS_SUCCESS, "cusolverDnDgetrs: %d", (int)st);
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(&info, di, 4, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(x.data(), db, n * 8, cudaMemcpyDeviceToHost));
    EXPECT(info == 0, "getrf/getrs info %d", info);
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (fabs(x[i] - (i + 1)) > 1e-9 && bad++ < 5)
            fprintf(stderr, "LU solve x[%d] = %.12g, want %d\n", i, x[i], i + 1);
    EXPECT(bad == 0, "LU solve: %d of %d wrong", bad, n);
    cusolverDnDestroy(h);
    cudaFree(dA), cudaFree(db), cudaFree(dw), cudaFree(dp), cudaFree(di);
    printf("CUSOLVER-RAN\n");
}

int main(int argc, char **argv)
{
    // an argument picks one part (s, r or l): for timing them apart
    const char *only = argc > 1 ? argv[1] : "srl";
    if (strchr(only, 's'))
        spmv();
    if (strchr(only, 'r'))
        rand_families();
    if (strchr(only, 'l'))
        lu_solve();
    return finish("t_mathlibs");
}
