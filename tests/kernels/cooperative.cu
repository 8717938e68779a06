// cooperative.cu - end-to-end: cooperative launches (issue 16). A kernel that sums its input
// in two phases separated by cooperative_groups::this_grid().sync(), launched with
// cudaLaunchCooperativeKernel over the largest grid occupancy says is co-resident (as NVIDIA's
// samples size it) and with cudaLaunchKernelEx's cooperative attribute over a smaller one;
// every block's result is checked. A grid one block larger is refused with
// cudaErrorCooperativeLaunchTooLarge, and the context stays usable.
#include <cooperative_groups.h>

#include "check.h"

namespace cg = cooperative_groups;

#define THREADS 128

// Phase 1: each block sums its slice into partial[blockIdx.x]. grid.sync(). Phase 2: every
// block sums all partials (visible only after the grid-wide barrier) into out[blockIdx.x];
// a second barrier, then each block checks its right neighbour agrees (flag[blockIdx.x]).
__global__ void two_phase(const unsigned *in, size_t n, unsigned *partial, unsigned *out,
                          unsigned *agree)
{
    cg::grid_group grid = cg::this_grid();
    __shared__ unsigned acc;
    if (threadIdx.x == 0)
        acc = 0;
    __syncthreads();
    unsigned mine = 0;
    for (size_t i = grid.thread_rank(); i < n; i += grid.size())
        mine += in[i];
    atomicAdd(&acc, mine);
    __syncthreads();
    if (threadIdx.x == 0)
        partial[blockIdx.x] = acc;
    grid.sync();
    if (threadIdx.x == 0) {
        unsigned total = 0;
        for (unsigned b = 0; b < gridDim.x; b++)
            total += ((volatile unsigned *)partial)[b];
        out[blockIdx.x] = total;
    }
    grid.sync();
    if (threadIdx.x == 0)
        agree[blockIdx.x] = ((volatile unsigned *)out)[(blockIdx.x + 1) % gridDim.x] ==
                            out[blockIdx.x];
}

struct bufs {
    unsigned *in, *partial, *out, *agree;
    size_t n;
    unsigned want;
};

static cudaError_t launch_coop(struct bufs *b, unsigned blocks, int use_ex)
{
    void *args[] = {&b->in, &b->n, &b->partial, &b->out, &b->agree};
    if (!use_ex)
        return cudaLaunchCooperativeKernel((void *)two_phase, dim3(blocks), dim3(THREADS), args,
                                           0, 0);
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeCooperative;
    attr.val.cooperative = 1;
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(THREADS);
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, two_phase, (const unsigned *)b->in, b->n, b->partial, b->out,
                              b->agree);
}

static void run_checked(struct bufs *b, unsigned blocks, int use_ex, struct report *r)
{
    unsigned *out = (unsigned *)malloc(blocks * sizeof(unsigned));
    unsigned *agree = (unsigned *)malloc(blocks * sizeof(unsigned));
    if (!out || !agree)
        exit(1);
    poison(b->out, blocks * sizeof(unsigned));
    poison(b->agree, blocks * sizeof(unsigned));
    CK(launch_coop(b, blocks, use_ex));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(out, b->out, blocks * sizeof(unsigned), cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(agree, b->agree, blocks * sizeof(unsigned), cudaMemcpyDeviceToHost));
    for (unsigned i = 0; i < blocks; i++, r->checked += 2) {
        if (out[i] != b->want)
            report_bad(r, (long)i, out[i], b->want);
        if (agree[i] != 1)
            report_bad(r, (long)i, agree[i], 1);
    }
    printf("cooperative: %u blocks (%s): sum %u\n", blocks,
           use_ex ? "cudaLaunchKernelEx" : "cudaLaunchCooperativeKernel", out[0]);
    free(out);
    free(agree);
}

int main(void)
{
    struct report r = {"cooperative", 0, 0};
    int dev = 0, coop = 0, sms = 0, per_sm = 0;
    CK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, two_phase, THREADS, 0));
    if (!coop || sms <= 0 || per_sm <= 0) {
        fprintf(stderr, "cooperative: attribute %d, %d SMs, %d blocks per SM\n", coop, sms,
                per_sm);
        return 1;
    }
    unsigned most = (unsigned)(sms * per_sm);
    struct bufs b;
    b.n = 1u << 18;
    unsigned *h = (unsigned *)malloc(b.n * sizeof(unsigned)), s = 5;
    if (!h)
        return 1;
    b.want = 0;
    for (size_t i = 0; i < b.n; i++)
        b.want += (h[i] = lcg(&s) & 0xFFFF);
    CK(cudaMalloc(&b.in, b.n * sizeof(unsigned)));
    CK(cudaMalloc(&b.partial, (most + 1) * sizeof(unsigned)));
    CK(cudaMalloc(&b.out, (most + 1) * sizeof(unsigned)));
    CK(cudaMalloc(&b.agree, (most + 1) * sizeof(unsigned)));
    CK(cudaMemcpy(b.in, h, b.n * sizeof(unsigned), cudaMemcpyHostToDevice));

    run_checked(&b, most, 0, &r);
    run_checked(&b, 7, 1, &r);

    cudaError_t e = launch_coop(&b, most + 1, 0);
    r.checked++;
    if (e != cudaErrorCooperativeLaunchTooLarge) {
        fprintf(stderr, "cooperative: %u blocks (%d SMs x %d) gave %s, expected "
                "cudaErrorCooperativeLaunchTooLarge\n", most + 1, sms, per_sm,
                cudaGetErrorString(e));
        r.bad++;
    }
    (void)cudaGetLastError();
    run_checked(&b, 3, 0, &r); // the refusal left the context usable

    CK(cudaFree(b.in));
    CK(cudaFree(b.partial));
    CK(cudaFree(b.out));
    CK(cudaFree(b.agree));
    free(h);
    return report_done(&r);
}
