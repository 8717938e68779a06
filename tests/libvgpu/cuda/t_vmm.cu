// t_vmm.cu - virtual memory management through the Driver API (as NVIDIA's vectorAddMMAP and
// memMapIPCDrv samples use it), with kernels and copies from the runtime: the device advertises
// it; a reserve, two physical chunks mapped back to back, no access until cuMemSetAccess, a
// kernel writing across the boundary, one copy reading across it; the handle retained from an
// address and its properties; a chunk released while mapped keeps its memory until unmapped;
// bad maps, frees and shareable handles refused; the quota charged by cuMemCreate and given back;
// last (it poisons the context), a kernel touching an unmapped part of a reserve faults.
#include <cuda.h>

#include "check.h"

#define CK(call)                                                                               \
    do {                                                                                       \
        CUresult r_ = (call);                                                                  \
        if (r_ != CUDA_SUCCESS) {                                                              \
            const char *n_ = "?";                                                              \
            cuGetErrorName(r_, &n_);                                                           \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, n_);          \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)
#define EXPECT_CU(call, want)                                                                  \
    do {                                                                                       \
        CUresult r_ = (call);                                                                  \
        EXPECT(r_ == (want), "%s returned %d, want %d", #call, (int)r_, (int)(want));          \
    } while (0)

__global__ void pattern(unsigned *p, size_t n, unsigned k)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)blockDim.x * gridDim.x)
        p[i] = (unsigned)i * k + 1;
}

static CUmemAllocationProp device_prop()
{
    CUmemAllocationProp prop;
    memset(&prop, 0, sizeof(prop));
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = 0;
    return prop;
}

static size_t g_gran;

static CUmemGenericAllocationHandle create_chunk(size_t size)
{
    CUmemAllocationProp prop = device_prop();
    CUmemGenericAllocationHandle h = 0;
    CK(cuMemCreate(&h, size, &prop, 0));
    return h;
}

static void set_rw(CUdeviceptr p, size_t size)
{
    CUmemAccessDesc d;
    memset(&d, 0, sizeof(d));
    d.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    d.location.id = 0;
    d.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    CK(cuMemSetAccess(p, size, &d, 1));
}

static unsigned long long access_of(CUdeviceptr p)
{
    CUmemLocation loc = {CU_MEM_LOCATION_TYPE_DEVICE, 0};
    unsigned long long f = ~0ull;
    CK(cuMemGetAccess(&f, &loc, p));
    return f;
}

static size_t free_mem()
{
    size_t f = 0, t = 0;
    CHECK(cudaMemGetInfo(&f, &t));
    return f;
}

// Checks the pattern k over n words at device address p with one copy.
static void expect_pattern(CUdeviceptr p, size_t n, unsigned k, const char *what)
{
    unsigned *h = (unsigned *)malloc(n * sizeof(unsigned));
    CHECK(cudaMemcpy(h, (void *)p, n * sizeof(unsigned), cudaMemcpyDeviceToHost));
    size_t wrong = 0;
    for (size_t i = 0; i < n; i++)
        wrong += h[i] != (unsigned)i * k + 1;
    EXPECT(wrong == 0, "%s: %zu of %zu words wrong", what, wrong, n);
    free(h);
}

// Two chunks back to back, written across the boundary by one kernel, read by one copy.
static void across_boundary(size_t before)
{
    size_t g = g_gran, n = 2 * g / sizeof(unsigned);
    CUdeviceptr va = 0;
    CK(cuMemAddressReserve(&va, 4 * g, 0, 0, 0));
    EXPECT(va % g == 0, "reserve 0x%llx not aligned to %zu", (unsigned long long)va, g);
    CUmemGenericAllocationHandle a = create_chunk(g), b = create_chunk(g);
    size_t charged = before - free_mem();
    EXPECT(charged >= 2 * g, "two chunks of %zu bytes charged %zu bytes", g, charged);
    CK(cuMemMap(va, g, 0, a, 0));
    CK(cuMemMap(va + g, g, 0, b, 0));
    EXPECT(access_of(va) == CU_MEM_ACCESS_FLAGS_PROT_NONE, "access before cuMemSetAccess: %llu",
           access_of(va));
    set_rw(va, 2 * g);
    EXPECT(access_of(va + g) == CU_MEM_ACCESS_FLAGS_PROT_READWRITE, "access after: %llu",
           access_of(va + g));

    pattern<<<64, 256>>>((unsigned *)va, n, 3);
    CHECK(cudaGetLastError());
    CHECK(cudaDeviceSynchronize());
    expect_pattern(va, n, 3, "kernel across two chunks");

    // the handle behind an address, and its properties
    CUmemGenericAllocationHandle r = 0;
    CK(cuMemRetainAllocationHandle(&r, (void *)(va + g + 4096)));
    EXPECT(r == b, "retained handle 0x%llx, want 0x%llx", (unsigned long long)r,
           (unsigned long long)b);
    CK(cuMemRelease(r));
    CUmemAllocationProp p;
    CK(cuMemGetAllocationPropertiesFromHandle(&p, a));
    EXPECT(p.type == CU_MEM_ALLOCATION_TYPE_PINNED && p.location.id == 0, "props of a");

    // hostile: a map over a mapping, a misaligned offset, freeing a reserve with mappings
    EXPECT_CU(cuMemMap(va + g, g, 0, a, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_CU(cuMemMap(va + 2 * g, g, 4096, a, 0), CUDA_ERROR_INVALID_VALUE);
    EXPECT_CU(cuMemMap(va + 2 * g, 2 * g, 0, a, 0), CUDA_ERROR_INVALID_VALUE); // past a's end
    EXPECT_CU(cuMemAddressFree(va, 4 * g), CUDA_ERROR_INVALID_VALUE);

    // released while mapped: the memory stays until the unmap
    CK(cuMemRelease(a));
    CK(cuMemRelease(b));
    expect_pattern(va, n, 3, "after release, still mapped");
    // the same chunk mapped a second time sees the same memory
    CK(cuMemRetainAllocationHandle(&r, (void *)va));
    CK(cuMemMap(va + 3 * g, g, 0, r, 0));
    set_rw(va + 3 * g, g);
    expect_pattern(va + 3 * g, g / sizeof(unsigned), 3, "a chunk mapped twice");
    CK(cuMemRelease(r));
    CK(cuMemUnmap(va + 3 * g, g));
    CK(cuMemUnmap(va, 2 * g));
    EXPECT_CU(cuMemUnmap(va, g), CUDA_ERROR_INVALID_VALUE);
    CK(cuMemAddressFree(va, 4 * g));
    size_t back = free_mem();
    EXPECT(back + g / 2 >= before, "free memory %zu after the unmaps, %zu before", back, before);
}

// Shareable handles cannot cross the domain boundary: refused.
static void refusals()
{
    CUmemAllocationProp prop = device_prop();
    CUmemGenericAllocationHandle h = 0;
    prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR;
    EXPECT_CU(cuMemCreate(&h, g_gran, &prop, 0), CUDA_ERROR_NOT_SUPPORTED);
    h = create_chunk(g_gran);
    int fd = -1;
    EXPECT_CU(cuMemExportToShareableHandle(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0),
              CUDA_ERROR_NOT_SUPPORTED);
    prop = device_prop();
    CUmemGenericAllocationHandle odd = 0;
    EXPECT_CU(cuMemCreate(&odd, g_gran + 1, &prop, 0), CUDA_ERROR_INVALID_VALUE);
    CK(cuMemRelease(h));
    EXPECT_CU(cuMemRelease(h), CUDA_ERROR_INVALID_VALUE);
    int attr = -1;
    CK(cuDeviceGetAttribute(&attr, CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED,
                            0));
    EXPECT(attr == 0, "POSIX fd handles advertised (%d)", attr);
}

// A kernel touching the unmapped half of a reserve faults (the context is lost: last).
static void unmapped_faults()
{
    size_t g = g_gran;
    CUdeviceptr va = 0;
    CK(cuMemAddressReserve(&va, 2 * g, 0, 0, 0));
    CUmemGenericAllocationHandle a = create_chunk(g), b = create_chunk(g);
    CK(cuMemMap(va, g, 0, a, 0));
    CK(cuMemMap(va + g, g, 0, b, 0));
    set_rw(va, 2 * g);
    CK(cuMemUnmap(va + g, g));
    CK(cuMemRelease(b));
    pattern<<<64, 256>>>((unsigned *)va, 2 * g / sizeof(unsigned), 5);
    cudaError_t e = cudaDeviceSynchronize();
    EXPECT(e == cudaErrorIllegalAddress, "a kernel writing an unmapped range: %s",
           cudaGetErrorName(e));
}

int main()
{
    CHECK(cudaFree(0));
    int vmm = 0;
    CK(cuDeviceGetAttribute(&vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, 0));
    EXPECT(vmm == 1, "virtual memory management not advertised (%d)", vmm);
    CUmemAllocationProp prop = device_prop();
    CK(cuMemGetAllocationGranularity(&g_gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    EXPECT(g_gran > 0 && (g_gran & (g_gran - 1)) == 0, "granularity %zu", g_gran);
    size_t before = free_mem();
    across_boundary(before);
    refusals();
    unmapped_faults();
    if (g_failures) {
        fprintf(stderr, "t_vmm: %d failures\n", g_failures);
        return 1;
    }
    printf("t_vmm: ok (granularity %zu)\n", g_gran);
    return 0;
}
