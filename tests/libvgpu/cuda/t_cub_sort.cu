// t_cub_sort.cu - cub::DeviceMergeSort and cub::DeviceRadixSort through libvgpu. CUB asks the
// driver for its EmptyKernel's PTX version (CU_FUNC_ATTRIBUTE_PTX_VERSION) and refuses with
// cudaErrorInvalidDeviceFunction unless it is one of the architectures the program was built
// for; built (run-e2e.sh) with sm_75 SASS and compute_90 PTX, whose merge-sort kernels use
// sm_90's griddepcontrol. The sorted keys are checked on the host.
#include <algorithm>
#include <cub/cub.cuh>
#include "check.h"

struct Less {
    __device__ bool operator()(int a, int b) const { return a < b; }
};

static void check_sorted(const char *what, const int *d, const int *orig, int n)
{
    int *h = (int *)malloc(n * sizeof(int)), *want = (int *)malloc(n * sizeof(int));
    CHECK(cudaMemcpy(h, d, n * sizeof(int), cudaMemcpyDeviceToHost));
    memcpy(want, orig, n * sizeof(int));
    std::sort(want, want + n);
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (h[i] != want[i] && bad++ < 5)
            fprintf(stderr, "%s: key[%d] = %d, want %d\n", what, i, h[i], want[i]);
    EXPECT(bad == 0, "%s: %d keys out of place", what, bad);
    free(h);
    free(want);
}

int main()
{
    const int n = 5000;
    int *keys = (int *)malloc(n * sizeof(int));
    for (int i = 0; i < n; i++)
        keys[i] = (int)((i * 7919u) % 10007u) - 5000;
    int *d, *d_out;
    CHECK(cudaMalloc((void **)&d, n * sizeof(int)));
    CHECK(cudaMalloc((void **)&d_out, n * sizeof(int)));
    CHECK(cudaMemcpy(d, keys, n * sizeof(int), cudaMemcpyHostToDevice));

    size_t bytes = 0;
    CHECK(cub::DeviceMergeSort::SortKeys(nullptr, bytes, d, n, Less()));
    void *tmp;
    CHECK(cudaMalloc(&tmp, bytes));
    CHECK(cub::DeviceMergeSort::SortKeys(tmp, bytes, d, n, Less()));
    CHECK(cudaDeviceSynchronize());
    check_sorted("merge sort", d, keys, n);
    CHECK(cudaFree(tmp));

    CHECK(cudaMemcpy(d, keys, n * sizeof(int), cudaMemcpyHostToDevice));
    bytes = 0;
    CHECK(cub::DeviceRadixSort::SortKeys(nullptr, bytes, d, d_out, n));
    CHECK(cudaMalloc(&tmp, bytes));
    CHECK(cub::DeviceRadixSort::SortKeys(tmp, bytes, d, d_out, n));
    CHECK(cudaDeviceSynchronize());
    check_sorted("radix sort", d_out, keys, n);
    CHECK(cudaFree(tmp));
    CHECK(cudaFree(d));
    CHECK(cudaFree(d_out));
    free(keys);
    return finish("t_cub_sort");
}
