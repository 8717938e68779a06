// double_math.cu - end-to-end: double precision with sqrt, exp, sin (and cos, log, division),
// including arguments large enough for the slow trigonometric reduction path.
#include "check.h"

__global__ void dmath(const double *x, double *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = sqrt(x[i]) + exp(fmod(x[i], 600.0) * 0.25) + sin(x[i]) * cos(x[i] * 0.5) +
               log(x[i] + 1.0) + x[i] / 3.0;
}

int main(void)
{
    const int n = 20000;
    struct report r = {"double_math", 0, 0};
    double *hx = (double *)malloc(n * sizeof(double)), *hy = (double *)malloc(n * sizeof(double));
    if (!hx || !hy)
        return 1;
    unsigned s = 9;
    for (int i = 0; i < n; i++)
        hx[i] = i < n / 2 ? (double)(lcg(&s) % 1000000) / 997.0
                          : (double)lcg(&s) * (double)lcg(&s) * (i % 3 ? 1.0 : 1e6);
    double *dx, *dy;
    CK(cudaMalloc(&dx, n * sizeof(double)));
    CK(cudaMalloc(&dy, n * sizeof(double)));
    CK(cudaMemcpy(dx, hx, n * sizeof(double), cudaMemcpyHostToDevice));
    poison(dy, n * sizeof(double));
    dmath<<<(n + 127) / 128, 128>>>(dx, dy, n);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hy, dy, n * sizeof(double), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++, r.checked++) {
        double v = hx[i];
        double want = sqrt(v) + exp(fmod(v, 600.0) * 0.25) + sin(v) * cos(v * 0.5) +
                      log(v + 1.0) + v / 3.0;
        /* CUDA's double functions are within 2 ulp; the sum stays well inside 1e-12 */
        if (!close_enough(hy[i], want, 1e-12))
            report_bad(&r, i, hy[i], want);
    }
    CK(cudaFree(dx));
    CK(cudaFree(dy));
    free(hx);
    free(hy);
    return report_done(&r);
}
