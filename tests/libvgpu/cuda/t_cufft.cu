// t_cufft.cu - cuFFT through libvgpu, each transform checked point by point against a DFT
// computed on the CPU in double precision: a 1-D complex-to-complex plan of 256 points (forward,
// then inverse back to the input x n), a 1-D real-to-complex plan of 1000 points (not a power of
// two: another kernel family) and a 2-D 48 x 64 complex-to-complex plan. cuFFT plans need the
// driver's TOOLS_MODULE table (slot 7 lists a module's functions); if planning fails the program
// prints "CUFFT-PLAN-ERROR <status>" and fails.
#include <cufft.h>
#include <cmath>
#include "check.h"

// out[k] = sum_j in[j] e^(sign 2 pi i jk/n), over a strided line of a complex array
static void dft_line(const double *re, const double *im, size_t stride, int n, int sign,
                     double *ore, double *oim)
{
    for (int k = 0; k < n; k++) {
        double sr = 0, si = 0;
        for (int j = 0; j < n; j++) {
            double a = sign * 2 * M_PI * (double)j * k / n;
            sr += re[j * stride] * cos(a) - im[j * stride] * sin(a);
            si += re[j * stride] * sin(a) + im[j * stride] * cos(a);
        }
        ore[k] = sr, oim[k] = si;
    }
}

// compares n complex values with a reference, tolerance relative to the largest magnitude
static int compare(const char *what, const cufftComplex *got, const double *re, const double *im,
                   int n)
{
    double big = 1;
    for (int i = 0; i < n; i++)
        big = fmax(big, fmax(fabs(re[i]), fabs(im[i])));
    int bad = 0;
    for (int i = 0; i < n; i++)
        if ((fabs(got[i].x - re[i]) > 1e-4 * big || fabs(got[i].y - im[i]) > 1e-4 * big) &&
            bad++ < 5)
            fprintf(stderr, "%s: [%d] = (%g, %g), want (%g, %g)\n", what, i, got[i].x, got[i].y,
                    re[i], im[i]);
    EXPECT(bad == 0, "%s: %d of %d points wrong", what, bad, n);
    return bad;
}

static void c2c_1d(void)
{
    const int n = 256;
    cufftHandle plan;
    cufftResult st = cufftPlan1d(&plan, n, CUFFT_C2C, 1);
    if (st != CUFFT_SUCCESS) {
        printf("CUFFT-PLAN-ERROR %d\n", (int)st);
        exit(1);
    }
    cufftComplex *h = (cufftComplex *)malloc(n * sizeof(cufftComplex));
    cufftComplex *got = (cufftComplex *)malloc(n * sizeof(cufftComplex));
    double *re = (double *)malloc(n * 8), *im = (double *)malloc(n * 8);
    double *ore = (double *)malloc(n * 8), *oim = (double *)malloc(n * 8);
    for (int i = 0; i < n; i++) {
        h[i].x = sinf(0.1f * i) + 0.25f, h[i].y = cosf(0.3f * i);
        re[i] = h[i].x, im[i] = h[i].y;
    }
    cufftComplex *d;
    CHECK(cudaMalloc((void **)&d, n * sizeof(cufftComplex)));
    CHECK(cudaMemcpy(d, h, n * sizeof(cufftComplex), cudaMemcpyHostToDevice));
    st = cufftExecC2C(plan, d, d, CUFFT_FORWARD);
    EXPECT(st == CUFFT_SUCCESS, "cufftExecC2C forward: %d", (int)st);
    CHECK(cudaMemcpy(got, d, n * sizeof(cufftComplex), cudaMemcpyDeviceToHost));
    dft_line(re, im, 1, n, -1, ore, oim);
    compare("C2C 256 forward", got, ore, oim, n);
    st = cufftExecC2C(plan, d, d, CUFFT_INVERSE);
    EXPECT(st == CUFFT_SUCCESS, "cufftExecC2C inverse: %d", (int)st);
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(got, d, n * sizeof(cufftComplex), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++)
        re[i] *= n, im[i] *= n;
    compare("C2C 256 inverse", got, re, im, n);
    CHECK(cudaFree(d));
    EXPECT(cufftDestroy(plan) == CUFFT_SUCCESS, "cufftDestroy");
    free(h), free(got), free(re), free(im), free(ore), free(oim);
}

static void r2c_1d(void)
{
    const int n = 1000, m = n / 2 + 1;
    cufftHandle plan;
    cufftResult st = cufftPlan1d(&plan, n, CUFFT_R2C, 1);
    EXPECT(st == CUFFT_SUCCESS, "cufftPlan1d R2C %d: %d", n, (int)st);
    if (st != CUFFT_SUCCESS)
        return;
    float *h = (float *)malloc(n * 4);
    double *re = (double *)calloc(n, 8), *im = (double *)calloc(n, 8);
    double *ore = (double *)malloc(n * 8), *oim = (double *)malloc(n * 8);
    cufftComplex *got = (cufftComplex *)malloc(m * sizeof(cufftComplex));
    for (int i = 0; i < n; i++)
        h[i] = (float)((i * 37) % 101) / 50.0f - 1.0f, re[i] = h[i];
    float *din;
    cufftComplex *dout;
    CHECK(cudaMalloc((void **)&din, n * 4));
    CHECK(cudaMalloc((void **)&dout, m * sizeof(cufftComplex)));
    CHECK(cudaMemcpy(din, h, n * 4, cudaMemcpyHostToDevice));
    st = cufftExecR2C(plan, din, dout);
    EXPECT(st == CUFFT_SUCCESS, "cufftExecR2C: %d", (int)st);
    CHECK(cudaMemcpy(got, dout, m * sizeof(cufftComplex), cudaMemcpyDeviceToHost));
    dft_line(re, im, 1, n, -1, ore, oim);
    compare("R2C 1000", got, ore, oim, m);
    CHECK(cudaFree(din));
    CHECK(cudaFree(dout));
    EXPECT(cufftDestroy(plan) == CUFFT_SUCCESS, "cufftDestroy");
    free(h), free(re), free(im), free(ore), free(oim), free(got);
}

static void c2c_2d(void)
{
    const int nx = 48, ny = 64, n = nx * ny; // row-major: nx rows of ny
    cufftHandle plan;
    cufftResult st = cufftPlan2d(&plan, nx, ny, CUFFT_C2C);
    EXPECT(st == CUFFT_SUCCESS, "cufftPlan2d %dx%d: %d", nx, ny, (int)st);
    if (st != CUFFT_SUCCESS)
        return;
    cufftComplex *h = (cufftComplex *)malloc(n * sizeof(cufftComplex));
    cufftComplex *got = (cufftComplex *)malloc(n * sizeof(cufftComplex));
    double *re = (double *)malloc(n * 8), *im = (double *)malloc(n * 8);
    double *tre = (double *)malloc(n * 8), *tim = (double *)malloc(n * 8);
    double *ore = (double *)malloc(n * 8), *oim = (double *)malloc(n * 8);
    for (int i = 0; i < n; i++) {
        h[i].x = (float)((i * 13) % 17) / 8.0f - 1.0f, h[i].y = (float)((i * 7) % 11) / 5.0f - 1.0f;
        re[i] = h[i].x, im[i] = h[i].y;
    }
    for (int r = 0; r < nx; r++) // rows, then columns
        dft_line(re + r * ny, im + r * ny, 1, ny, -1, tre + r * ny, tim + r * ny);
    double *cre = (double *)malloc(nx * 8), *cim = (double *)malloc(nx * 8);
    for (int c = 0; c < ny; c++) {
        dft_line(tre + c, tim + c, ny, nx, -1, cre, cim);
        for (int r = 0; r < nx; r++)
            ore[r * ny + c] = cre[r], oim[r * ny + c] = cim[r];
    }
    cufftComplex *d;
    CHECK(cudaMalloc((void **)&d, n * sizeof(cufftComplex)));
    CHECK(cudaMemcpy(d, h, n * sizeof(cufftComplex), cudaMemcpyHostToDevice));
    st = cufftExecC2C(plan, d, d, CUFFT_FORWARD);
    EXPECT(st == CUFFT_SUCCESS, "cufftExecC2C 2-D: %d", (int)st);
    CHECK(cudaMemcpy(got, d, n * sizeof(cufftComplex), cudaMemcpyDeviceToHost));
    compare("C2C 48x64", got, ore, oim, n);
    CHECK(cudaFree(d));
    EXPECT(cufftDestroy(plan) == CUFFT_SUCCESS, "cufftDestroy");
    free(h), free(got), free(re), free(im), free(tre), free(tim), free(ore), free(oim);
    free(cre), free(cim);
}

int main()
{
    c2c_1d();
    r2c_1d();
    c2c_2d();
    if (g_failures == 0)
        printf("CUFFT-RAN\n");
    return finish("t_cufft");
}
