// t_cufft.cu - cuFFT through libvgpu: a 1-D complex-to-complex plan of 256 points, a forward
// and an inverse transform, and the round trip checked against the input (x n). If planning
// fails, the program prints "CUFFT-PLAN-ERROR <status>" for the runner, which then checks that
// libvgpu named the private driver interface cuFFT stopped at (today TOOLS_MODULE slot 7: cuFFT
// reads the driver's internal function objects, which a remoted driver does not have). No
// result is faked: the transforms run only after a plan succeeds.
#include <cufft.h>
#include <cmath>
#include "check.h"

int main()
{
    const int n = 256;
    cufftHandle plan;
    cufftResult st = cufftPlan1d(&plan, n, CUFFT_C2C, 1);
    if (st != CUFFT_SUCCESS) {
        printf("CUFFT-PLAN-ERROR %d\n", (int)st);
        return finish("t_cufft");
    }
    cufftComplex *h = (cufftComplex *)malloc(n * sizeof(cufftComplex));
    cufftComplex *back = (cufftComplex *)malloc(n * sizeof(cufftComplex));
    for (int i = 0; i < n; i++) {
        h[i].x = sinf(0.1f * i) + 0.25f;
        h[i].y = cosf(0.3f * i);
    }
    cufftComplex *d;
    CHECK(cudaMalloc((void **)&d, n * sizeof(cufftComplex)));
    CHECK(cudaMemcpy(d, h, n * sizeof(cufftComplex), cudaMemcpyHostToDevice));
    st = cufftExecC2C(plan, d, d, CUFFT_FORWARD);
    EXPECT(st == CUFFT_SUCCESS, "cufftExecC2C forward: %d", (int)st);
    cufftComplex dc;
    CHECK(cudaMemcpy(&dc, d, sizeof dc, cudaMemcpyDeviceToHost));
    float sx = 0, sy = 0; // bin 0 is the sum of the input
    for (int i = 0; i < n; i++)
        sx += h[i].x, sy += h[i].y;
    EXPECT(fabsf(dc.x - sx) < 1e-2f * n && fabsf(dc.y - sy) < 1e-2f * n,
           "DC bin (%g, %g), want (%g, %g)", dc.x, dc.y, sx, sy);
    st = cufftExecC2C(plan, d, d, CUFFT_INVERSE);
    EXPECT(st == CUFFT_SUCCESS, "cufftExecC2C inverse: %d", (int)st);
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(back, d, n * sizeof(cufftComplex), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < n; i++)
        if ((fabsf(back[i].x / n - h[i].x) > 1e-4f || fabsf(back[i].y / n - h[i].y) > 1e-4f) &&
            bad++ < 5)
            fprintf(stderr, "x[%d] came back as (%g, %g), want (%g, %g)\n", i, back[i].x / n,
                    back[i].y / n, h[i].x, h[i].y);
    EXPECT(bad == 0, "%d points wrong after forward + inverse", bad);
    printf("CUFFT-RAN\n");
    CHECK(cudaFree(d));
    EXPECT(cufftDestroy(plan) == CUFFT_SUCCESS, "cufftDestroy");
    free(h);
    free(back);
    return finish("t_cufft");
}
