// kernels_cub.cu - CUB block and warp primitives for test_ptx.c: the PTX nvcc makes of them
// (shuffles, bmsk, bfe/bfi, prmt, vote, shared-memory scans) runs in the interpreter.
#include <cub/cub.cuh>

#define BT 128
#define IPT 4

extern "C" __global__ void cub_block_sort(const int *in, int *out)
{
    typedef cub::BlockRadixSort<int, BT, IPT> Sort;
    __shared__ typename Sort::TempStorage tmp;
    int keys[IPT];
    int base = blockIdx.x * BT * IPT;
    for (int i = 0; i < IPT; i++)
        keys[i] = in[base + threadIdx.x * IPT + i];
    Sort(tmp).Sort(keys);
    for (int i = 0; i < IPT; i++)
        out[base + threadIdx.x * IPT + i] = keys[i];
}

extern "C" __global__ void cub_block_scan_reduce(const int *in, int *scan, long long *sums)
{
    typedef cub::BlockScan<int, BT> Scan;
    typedef cub::BlockReduce<long long, BT> Reduce;
    typedef cub::WarpReduce<int> WarpRed;
    __shared__ typename Scan::TempStorage st;
    __shared__ typename Reduce::TempStorage rt;
    __shared__ typename WarpRed::TempStorage wt[BT / 32];
    int i = blockIdx.x * BT + threadIdx.x;
    int v = in[i], s;
    Scan(st).InclusiveSum(v, s);
    scan[i] = s;
    long long total = Reduce(rt).Sum((long long)v);
    int wsum = WarpRed(wt[threadIdx.x / 32]).Sum(v);
    if (threadIdx.x == 0)
        sums[blockIdx.x * 5] = total;
    if (threadIdx.x % 32 == 0)
        sums[blockIdx.x * 5 + 1 + threadIdx.x / 32] = wsum;
}
