// t_cublas.cu - cuBLAS through libvgpu: cublasCreate/cublasDestroy and a cublasSgemm that reaches
// the proxy's launch path. If the simulated GPU can run the kernel, the result is checked
// against the CPU; if it cannot (no PTX for it), the error must surface at the synchronising
// call and the program prints "SGEMM-LAUNCH-ERROR <name>" for the runner, which then checks
// that the proxy's log names the launch.
#include <cublas_v2.h>
#include "check.h"

int main()
{
    cublasHandle_t h;
    cublasStatus_t st = cublasCreate(&h);
    EXPECT(st == CUBLAS_STATUS_SUCCESS, "cublasCreate: %d", (int)st);
    if (st != CUBLAS_STATUS_SUCCESS)
        return finish("t_cublas");
    const int n = 64;
    float *A = (float *)malloc(n * n * 4), *B = (float *)malloc(n * n * 4),
          *C = (float *)malloc(n * n * 4), *R = (float *)malloc(n * n * 4);
    for (int i = 0; i < n * n; i++) {
        A[i] = (float)(i % 7) - 3;
        B[i] = (float)(i % 5) - 2;
        C[i] = 0;
    }
    float *dA, *dB, *dC;
    CHECK(cudaMalloc((void **)&dA, n * n * 4));
    CHECK(cudaMalloc((void **)&dB, n * n * 4));
    CHECK(cudaMalloc((void **)&dC, n * n * 4));
    CHECK(cudaMemcpy(dA, A, n * n * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dB, B, n * n * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemset(dC, 0, n * n * 4));
    const float one = 1.0f, zero = 0.0f;
    st = cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, dA, n, dB, n, &zero, dC, n);
    cudaError_t e = cudaDeviceSynchronize();
    if (st == CUBLAS_STATUS_SUCCESS && e == cudaSuccess) {
        CHECK(cudaMemcpy(R, dC, n * n * 4, cudaMemcpyDeviceToHost));
        int bad = 0;
        for (int j = 0; j < n; j++)
            for (int i = 0; i < n; i++) {
                float s = 0;
                for (int k = 0; k < n; k++)
                    s += A[k * n + i] * B[j * n + k];
                if (R[j * n + i] != s && bad++ < 5)
                    fprintf(stderr, "C[%d,%d] = %f, want %f\n", i, j, R[j * n + i], s);
            }
        EXPECT(bad == 0, "%d wrong sgemm results", bad);
        printf("SGEMM-RAN\n");
    } else {
        // the launch reached the proxy and failed there: the error must be a launch-time
        // failure of the simulated device, reported by the synchronising call
        EXPECT(st == CUBLAS_STATUS_SUCCESS || st == CUBLAS_STATUS_EXECUTION_FAILED,
               "cublasSgemm status %d", (int)st);
        EXPECT(e == cudaErrorNotSupported || e == cudaErrorInvalidDeviceFunction ||
                   e == cudaErrorNoKernelImageForDevice || e == cudaErrorLaunchFailure,
               "cudaDeviceSynchronize returned %s", cudaGetErrorName(e));
        printf("SGEMM-LAUNCH-ERROR %s\n", cudaGetErrorName(e));
    }
    st = cublasDestroy(h);
    EXPECT(st == CUBLAS_STATUS_SUCCESS, "cublasDestroy: %d", (int)st);
    return finish("t_cublas");
}
