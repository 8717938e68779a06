// t_mempool.cu - stream-ordered allocation and the default memory pool: the device advertises
// pools; cudaMallocAsync on a non-default stream, a kernel and copies ordered after it, a free
// ordered after the kernel, results read back; the default pool's attributes (release
// threshold kept and read back, usage figures follow allocations and frees, high-water reset,
// bad attributes refused); cudaMallocFromPoolAsync with the default pool, the pointer's pool
// attribute; a created pool: the same kernel and attributes through it, as the device's current
// pool (cudaMallocAsync's), its maximum size honoured, trimmed, access from its device, destroyed
// with an allocation outstanding (freed after), shareable handle types refused.
#include "check.h"

__global__ void affine(int n, int a, const int *x, int *y)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        y[i] = a * x[i] + i;
}

static const int N = 1 << 16;

// x -> kernel -> y on stream s, both stream-ordered; y read back and checked.
static void ordered_kernel(cudaStream_t s, int *host, int *out, int *(*alloc)(cudaStream_t))
{
    int *x = alloc(s), *y = alloc(s);
    CHECK(cudaMemcpyAsync(x, host, N * sizeof(int), cudaMemcpyHostToDevice, s));
    affine<<<64, 256, 0, s>>>(N, 3, x, y);
    CHECK(cudaGetLastError());
    CHECK(cudaFreeAsync(x, s)); // ordered after the kernel that reads x
    CHECK(cudaMemcpyAsync(out, y, N * sizeof(int), cudaMemcpyDeviceToHost, s));
    CHECK(cudaFreeAsync(y, s));
    CHECK(cudaStreamSynchronize(s));
    int wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += out[i] != 3 * host[i] + i;
    EXPECT(wrong == 0, "%d of %d results wrong", wrong, N);
}

static int *alloc_async(cudaStream_t s)
{
    int *p = nullptr;
    CHECK(cudaMallocAsync((void **)&p, N * sizeof(int), s));
    EXPECT(p != nullptr, "cudaMallocAsync gave no pointer");
    return p;
}

static cudaMemPool_t g_pool;

static int *alloc_from_pool(cudaStream_t s)
{
    int *p = nullptr;
    CHECK(cudaMallocFromPoolAsync((void **)&p, N * sizeof(int), g_pool, s));
    EXPECT(p != nullptr, "cudaMallocFromPoolAsync gave no pointer");
    return p;
}

static unsigned long long pool_attr(cudaMemPoolAttr a)
{
    unsigned long long v = ~0ull;
    CHECK(cudaMemPoolGetAttribute(g_pool, a, &v));
    return v;
}

// The pool an allocation came from, through the driver's pointer attribute (17: MEMPOOL_HANDLE).
static cudaMemPool_t pointer_pool(const void *p)
{
    typedef int (*get_attr_fn)(void *, int, unsigned long long);
    void *fn = nullptr;
    cudaDriverEntryPointQueryResult q;
    CHECK(cudaGetDriverEntryPointByVersion("cuPointerGetAttribute", &fn, 13000, cudaEnableDefault,
                                           &q));
    cudaMemPool_t of = nullptr;
    int r = ((get_attr_fn)fn)(&of, 17, (unsigned long long)(uintptr_t)p);
    EXPECT(r == 0, "cuPointerGetAttribute(MEMPOOL_HANDLE) returned %d", r);
    return of;
}

// Attributes: threshold read back, usage follows one allocation and its free, high-water reset.
static void pool_attributes(cudaStream_t s)
{
    unsigned long long thr = 1ull << 30;
    CHECK(cudaMemPoolSetAttribute(g_pool, cudaMemPoolAttrReleaseThreshold, &thr));
    EXPECT(pool_attr(cudaMemPoolAttrReleaseThreshold) == thr, "release threshold not kept");
    unsigned long long used0 = pool_attr(cudaMemPoolAttrUsedMemCurrent);
    int *p = alloc_from_pool(s);
    unsigned long long used1 = pool_attr(cudaMemPoolAttrUsedMemCurrent);
    EXPECT(used1 >= used0 + N * sizeof(int), "used %llu -> %llu after an allocation", used0,
           used1);
    EXPECT(pool_attr(cudaMemPoolAttrUsedMemHigh) >= used1, "high-water mark below use");
    cudaMemPool_t of = pointer_pool(p);
    EXPECT(of == g_pool, "the allocation's pool is %p, not the default %p", (void *)of,
           (void *)g_pool);
    CHECK(cudaFreeAsync(p, s));
    CHECK(cudaStreamSynchronize(s));
    EXPECT(pool_attr(cudaMemPoolAttrUsedMemCurrent) == used0, "used after free %llu, want %llu",
           pool_attr(cudaMemPoolAttrUsedMemCurrent), used0);
    unsigned long long zero = 0;
    CHECK(cudaMemPoolSetAttribute(g_pool, cudaMemPoolAttrUsedMemHigh, &zero));
    EXPECT(pool_attr(cudaMemPoolAttrUsedMemHigh) == used0, "high-water mark not reset");
    EXPECT_ERR(cudaMemPoolSetAttribute(g_pool, cudaMemPoolAttrUsedMemCurrent, &zero),
               cudaErrorInvalidValue);
    (void)cudaGetLastError(); // the refusal above is the runtime's last error: clear it
    CHECK(cudaMemPoolTrimTo(g_pool, 0));
}

// A pool of our own: everything the default pool does, plus its maximum size and destruction.
static void created_pool(cudaStream_t s, int dev, int *host, int *out)
{
    cudaMemPoolProps props = {};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = dev;
    props.maxSize = 3 * N * sizeof(int);
    cudaMemPool_t own = nullptr, def = g_pool, cur = nullptr;
    CHECK(cudaMemPoolCreate(&own, &props));
    EXPECT(own != nullptr && own != def, "created pool %p", (void *)own);
    g_pool = own;
    pool_attributes(s);
    ordered_kernel(s, host, out, alloc_from_pool);
    CHECK(cudaDeviceSetMemPool(dev, own));
    CHECK(cudaDeviceGetMemPool(&cur, dev));
    EXPECT(cur == own, "current pool %p, want the created %p", (void *)cur, (void *)own);
    int *p = alloc_async(s), *q = alloc_async(s), *r = nullptr;
    EXPECT(pointer_pool(p) == own, "cudaMallocAsync did not use the current pool");
    EXPECT_ERR(cudaMallocFromPoolAsync((void **)&r, 2 * N * sizeof(int), own, s),
               cudaErrorMemoryAllocation); // past maxSize
    (void)cudaGetLastError();
    CHECK(cudaFreeAsync(q, s));
    cudaMemAccessDesc acc = {};
    acc.location.type = cudaMemLocationTypeDevice;
    acc.location.id = dev;
    acc.flags = cudaMemAccessFlagsProtReadWrite;
    CHECK(cudaMemPoolSetAccess(own, &acc, 1));
    CHECK(cudaMemPoolTrimTo(own, 0));
    // destroyed with p outstanding: the default pool is current again; p is freed after
    CHECK(cudaMemPoolDestroy(own));
    CHECK(cudaDeviceGetMemPool(&cur, dev));
    EXPECT(cur == def, "current pool %p after destroy, want the default %p", (void *)cur,
           (void *)def);
    EXPECT_ERR(cudaMallocFromPoolAsync((void **)&r, 64, own, s), cudaErrorInvalidValue);
    (void)cudaGetLastError();
    CHECK(cudaFreeAsync(p, s));
    CHECK(cudaStreamSynchronize(s));
    EXPECT_ERR(cudaMemPoolDestroy(def), cudaErrorInvalidValue);
    (void)cudaGetLastError();
    props.handleTypes = cudaMemHandleTypePosixFileDescriptor;
    EXPECT_ERR(cudaMemPoolCreate(&own, &props), cudaErrorNotSupported);
    (void)cudaGetLastError();
    g_pool = def;
}

int main()
{
    int dev = 0, pools = 0;
    CHECK(cudaSetDevice(dev));
    CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, dev));
    EXPECT(pools == 1, "memory pools supported: %d", pools);
    cudaStream_t s;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    int *host, *out;
    CHECK(cudaMallocHost((void **)&host, N * sizeof(int)));
    CHECK(cudaMallocHost((void **)&out, N * sizeof(int)));
    for (int i = 0; i < N; i++)
        host[i] = i * 7 - 1000;

    ordered_kernel(s, host, out, alloc_async);
    CHECK(cudaDeviceGetDefaultMemPool(&g_pool, dev));
    cudaMemPool_t cur = nullptr;
    CHECK(cudaDeviceGetMemPool(&cur, dev));
    EXPECT(cur == g_pool, "current pool %p is not the default %p", (void *)cur, (void *)g_pool);
    CHECK(cudaDeviceSetMemPool(dev, g_pool));
    pool_attributes(s);
    ordered_kernel(s, host, out, alloc_from_pool);

    created_pool(s, dev, host, out);
    CHECK(cudaStreamDestroy(s));
    CHECK(cudaFreeHost(host));
    CHECK(cudaFreeHost(out));
    return finish("t_mempool");
}
