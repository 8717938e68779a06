// warp_shuffle.cu - end-to-end: warp-shuffle reduction (__shfl_down_sync) per warp, plus a
// warp prefix sum (__shfl_up_sync) and a ballot, all checked exactly.
#include "check.h"

__global__ void warp_ops(const int *in, int *sums, int *prefix, unsigned *ballots, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int v = i < n ? in[i] : 0;
    int s = v;
    for (int off = 16; off > 0; off >>= 1)
        s += __shfl_down_sync(0xffffffffu, s, off);
    int p = v;
    for (int off = 1; off < 32; off <<= 1) {
        int t = __shfl_up_sync(0xffffffffu, p, off);
        if (lane >= off)
            p += t;
    }
    unsigned b = __ballot_sync(0xffffffffu, v & 1);
    if (i < n)
        prefix[i] = p;
    if (lane == 0) {
        sums[i / 32] = s;
        ballots[i / 32] = b;
    }
}

int main(void)
{
    const int n = 32 * 1000, warps = n / 32;
    struct report r = {"warp_shuffle", 0, 0};
    int *hi = (int *)malloc(n * sizeof(int)), *hp = (int *)malloc(n * sizeof(int));
    int *hs = (int *)malloc(warps * sizeof(int));
    unsigned *hb = (unsigned *)malloc(warps * sizeof(unsigned));
    if (!hi || !hp || !hs || !hb)
        return 1;
    unsigned s = 5;
    for (int i = 0; i < n; i++)
        hi[i] = (int)(lcg(&s) % 20001) - 10000;
    int *di, *ds, *dp;
    unsigned *db;
    CK(cudaMalloc(&di, n * sizeof(int)));
    CK(cudaMalloc(&dp, n * sizeof(int)));
    CK(cudaMalloc(&ds, warps * sizeof(int)));
    CK(cudaMalloc(&db, warps * sizeof(unsigned)));
    CK(cudaMemcpy(di, hi, n * sizeof(int), cudaMemcpyHostToDevice));
    poison(dp, n * sizeof(int));
    poison(ds, warps * sizeof(int));
    poison(db, warps * sizeof(unsigned));
    warp_ops<<<n / 128, 128>>>(di, ds, dp, db, n);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hp, dp, n * sizeof(int), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hs, ds, warps * sizeof(int), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hb, db, warps * sizeof(unsigned), cudaMemcpyDeviceToHost));
    for (int w = 0; w < warps; w++) {
        int sum = 0, pre = 0;
        unsigned ballot = 0;
        for (int l = 0; l < 32; l++) {
            int v = hi[w * 32 + l];
            sum += v;
            pre += v;
            ballot |= (unsigned)(v & 1) << l;
            r.checked++;
            if (hp[w * 32 + l] != pre)
                report_bad(&r, w * 32 + l, hp[w * 32 + l], pre);
        }
        r.checked += 2;
        if (hs[w] != sum)
            report_bad(&r, w, hs[w], sum);
        if (hb[w] != ballot)
            report_bad(&r, w, hb[w], ballot);
    }
    CK(cudaFree(di));
    CK(cudaFree(dp));
    CK(cudaFree(ds));
    CK(cudaFree(db));
    free(hi);
    free(hp);
    free(hs);
    free(hb);
    return report_done(&r);
}
