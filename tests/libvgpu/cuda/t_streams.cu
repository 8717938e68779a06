// t_streams.cu - streams and events with async copies and kernels: producer stream, an event,
// a consumer stream waiting on it, elapsed time, queries after synchronisation; stream
// attributes (hints kept and read back, invalid values and priority changes refused) and
// profiler ranges (no-ops that succeed).
#include <cuda_profiler_api.h>
#include "check.h"

__global__ void scale(int n, float a, float *x)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x)
        x[i] = a * x[i] + 1.0f;
}

static int host_calls = 0;
static void CUDART_CB host_fn(void *arg)
{
    // runs after the stream's earlier copy: the data it produced is in place
    host_calls += *(float *)arg == 3.0f ? 1 : 100;
}

// Stream attributes: an L2 access policy window and a synchronisation policy are accepted and
// read back, on a created stream and on the default stream; bad values and attributes that are
// not a stream's are refused with cudaErrorInvalidValue, a priority change with
// cudaErrorNotSupported (the stream keeps the priority it was created with).
static void stream_attributes(cudaStream_t s, void *dev, size_t bytes)
{
    cudaStreamAttrValue v = {}, got = {};
    v.accessPolicyWindow.base_ptr = dev;
    v.accessPolicyWindow.num_bytes = bytes;
    v.accessPolicyWindow.hitRatio = 0.6f;
    v.accessPolicyWindow.hitProp = cudaAccessPropertyPersisting;
    v.accessPolicyWindow.missProp = cudaAccessPropertyStreaming;
    for (cudaStream_t st : {s, (cudaStream_t)0}) {
        CHECK(cudaStreamSetAttribute(st, cudaStreamAttributeAccessPolicyWindow, &v));
        CHECK(cudaStreamGetAttribute(st, cudaStreamAttributeAccessPolicyWindow, &got));
        EXPECT(got.accessPolicyWindow.base_ptr == dev && got.accessPolicyWindow.num_bytes == bytes &&
                   got.accessPolicyWindow.hitRatio == 0.6f &&
                   got.accessPolicyWindow.hitProp == cudaAccessPropertyPersisting,
               "access policy window read back as %p %zu %g", got.accessPolicyWindow.base_ptr,
               got.accessPolicyWindow.num_bytes, got.accessPolicyWindow.hitRatio);
    }
    CHECK(cudaStreamGetAttribute(s, cudaStreamAttributeSynchronizationPolicy, &got));
    EXPECT(got.syncPolicy == cudaSyncPolicyAuto, "default sync policy %d", (int)got.syncPolicy);
    v.syncPolicy = cudaSyncPolicyBlockingSync;
    CHECK(cudaStreamSetAttribute(s, cudaStreamAttributeSynchronizationPolicy, &v));
    CHECK(cudaStreamGetAttribute(s, cudaStreamAttributeSynchronizationPolicy, &got));
    EXPECT(got.syncPolicy == cudaSyncPolicyBlockingSync, "sync policy %d", (int)got.syncPolicy);
    cudaStreamAttrValue bad = v;
    bad.accessPolicyWindow.hitRatio = 2.0f;
    EXPECT_ERR(cudaStreamSetAttribute(s, cudaStreamAttributeAccessPolicyWindow, &bad),
               cudaErrorInvalidValue);
    EXPECT_ERR(cudaStreamSetAttribute(s, cudaLaunchAttributeCooperative, &v),
               cudaErrorInvalidValue);
    v.priority = -1;
    EXPECT_ERR(cudaStreamSetAttribute(s, cudaStreamAttributePriority, &v), cudaErrorNotSupported);
    CHECK(cudaStreamGetAttribute(s, cudaStreamAttributePriority, &got));
    EXPECT(got.priority == 0, "priority %d", got.priority);
    cudaGetLastError(); // the refusals above are not sticky
}

int main()
{
    CHECK(cudaProfilerStart());
    const int n = 1 << 20;
    const size_t bytes = n * sizeof(float);
    float *h = nullptr, *out = nullptr, *d = nullptr, *d2 = nullptr;
    CHECK(cudaMallocHost((void **)&h, bytes));
    CHECK(cudaMallocHost((void **)&out, bytes));
    for (int i = 0; i < n; i++)
        h[i] = (float)(i % 1000);
    CHECK(cudaMalloc((void **)&d, bytes));
    CHECK(cudaMalloc((void **)&d2, bytes));
    cudaStream_t s1, s2;
    CHECK(cudaStreamCreate(&s1));
    CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    unsigned sflags = 99;
    CHECK(cudaStreamGetFlags(s2, &sflags));
    EXPECT(sflags == cudaStreamNonBlocking, "stream flags %u", sflags);
    int lo = 0, hi = 0, prio = 99;
    CHECK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    cudaStream_t s3;
    CHECK(cudaStreamCreateWithPriority(&s3, cudaStreamDefault, hi));
    CHECK(cudaStreamGetPriority(s3, &prio));
    EXPECT(prio == hi, "stream priority %d, want %d", prio, hi);
    unsigned long long id2 = 0, id3 = 0;
    CHECK(cudaStreamGetId(s2, &id2));
    CHECK(cudaStreamGetId(s3, &id3));
    EXPECT(id2 != id3 && id2 != 0 && id3 != 0, "stream ids %llu %llu", id2, id3);
    CHECK(cudaStreamDestroy(s3));
    cudaEvent_t start, produced, end;
    CHECK(cudaEventCreate(&start));
    CHECK(cudaEventCreate(&produced));
    CHECK(cudaEventCreate(&end));
    CHECK(cudaEventRecord(start, s1));
    CHECK(cudaMemcpyAsync(d, h, bytes, cudaMemcpyHostToDevice, s1));
    scale<<<64, 256, 0, s1>>>(n, 2.0f, d);
    CHECK(cudaGetLastError());
    CHECK(cudaEventRecord(produced, s1));
    CHECK(cudaStreamWaitEvent(s2, produced, 0));
    CHECK(cudaMemcpyAsync(d2, d, bytes, cudaMemcpyDeviceToDevice, s2));
    scale<<<64, 256, 0, s2>>>(n, 0.5f, d2);
    CHECK(cudaMemcpyAsync(out, d2, bytes, cudaMemcpyDeviceToHost, s2));
    CHECK(cudaEventRecord(end, s2));
    CHECK(cudaEventSynchronize(end));
    int bad = 0;
    for (int i = 0; i < n; i++) {
        float want = 0.5f * (2.0f * (float)(i % 1000) + 1.0f) + 1.0f;
        if (out[i] != want && bad++ < 5)
            fprintf(stderr, "out[%d] = %f, want %f\n", i, out[i], want);
    }
    EXPECT(bad == 0, "%d wrong results", bad);
    float ms = -1;
    CHECK(cudaEventElapsedTime(&ms, start, end));
    EXPECT(ms >= 0, "elapsed %f ms", ms);
    CHECK(cudaStreamSynchronize(s1));
    CHECK(cudaStreamSynchronize(s2));
    EXPECT_ERR(cudaStreamQuery(s1), cudaSuccess);
    EXPECT_ERR(cudaEventQuery(end), cudaSuccess);
    // many small async copies in flight on the legacy default stream
    for (int k = 0; k < 300; k++)
        CHECK(cudaMemcpyAsync(d + k, h + k, sizeof(float), cudaMemcpyHostToDevice, 0));
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(out, d, 300 * sizeof(float), cudaMemcpyDeviceToHost));
    EXPECT(memcmp(out, h, 300 * sizeof(float)) == 0, "300 small async copies");
    // a host function enqueued after an async copy sees the copy's result
    float three = 3.0f, *slot = nullptr;
    CHECK(cudaMallocHost((void **)&slot, sizeof(float)));
    *slot = 0;
    CHECK(cudaMemcpyAsync(d, &three, sizeof three, cudaMemcpyHostToDevice, s1));
    CHECK(cudaMemcpyAsync(slot, d, sizeof three, cudaMemcpyDeviceToHost, s1));
    CHECK(cudaLaunchHostFunc(s1, host_fn, slot));
    CHECK(cudaStreamSynchronize(s1));
    EXPECT(host_calls == 1, "host function calls %d", host_calls);
    CHECK(cudaFreeHost(slot));
    // stream-ordered allocation
    unsigned char *pa = nullptr, pattern[4096];
    CHECK(cudaMallocAsync((void **)&pa, sizeof pattern, s2));
    CHECK(cudaMemsetAsync(pa, 0x5e, sizeof pattern, s2));
    CHECK(cudaMemcpyAsync(pattern, pa, sizeof pattern, cudaMemcpyDeviceToHost, s2));
    CHECK(cudaFreeAsync(pa, s2));
    CHECK(cudaStreamSynchronize(s2));
    int wrong = 0;
    for (size_t i = 0; i < sizeof pattern; i++)
        wrong += pattern[i] != 0x5e;
    EXPECT(wrong == 0, "%d bytes of the stream-ordered allocation wrong", wrong);
    CHECK(cudaEventDestroy(start));
    CHECK(cudaEventDestroy(produced));
    CHECK(cudaEventDestroy(end));
    stream_attributes(s1, d, sizeof(float));
    CHECK(cudaProfilerStop());
    CHECK(cudaStreamDestroy(s1));
    CHECK(cudaStreamDestroy(s2));
    CHECK(cudaFree(d));
    CHECK(cudaFree(d2));
    CHECK(cudaFreeHost(h));
    CHECK(cudaFreeHost(out));
    return finish("t_streams");
}
