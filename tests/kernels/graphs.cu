// graphs.cu - end-to-end: CUDA graphs (issue 16). Stream capture (memset, kernels and a
// device-to-device copy, a fork and join through events), launched many times on a stream and
// on the default stream; the explicit API with a dependency that runs a node added later
// before one added earlier; copies from and to host memory in both (read and written at each
// launch); a kernel node's arguments changed in an executable graph and a whole executable
// graph updated from another capture (one of another shape refused); the capture rules
// (cudaMalloc during a global capture refused and the capture invalidated, allowed in relaxed
// mode, the legacy stream refused); every result checked element by element.
#include "check.h"

#define N 4099
#define LAUNCHES 200

__global__ void add_one(int *a, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        a[i] += 1;
}

__global__ void scale(int *a, int k, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        a[i] *= k;
}

__global__ void accumulate(long long *acc, const int *b, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        acc[i] += b[i] + i;
}

__global__ void combine(int *out, const int *x, const int *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = x[i] * 1000 + y[i];
}

__global__ void set_value(int *a, int v, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        a[i] = v + i;
}

static const int B = 256, G = (N + 255) / 256;

static int check_ints(struct report *r, const int *d, int (*want)(int))
{
    static int h[N];
    CK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N; i++, r->checked++)
        if (h[i] != want(i))
            report_bad(r, i, h[i], want(i));
    return r->bad != 0;
}

/* memset a = 0, add_one x3 (a = 3), copy b = a, scale b by 2 (6), acc += b + i. */
static void linear_capture(struct report *r, cudaStream_t s, int *a, int *b, long long *acc)
{
    cudaGraph_t g;
    cudaGraphExec_t x;
    cudaStreamCaptureStatus st;
    static long long h[N];

    CK(cudaMemset(acc, 0, N * sizeof(long long)));
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    CK(cudaStreamIsCapturing(s, &st));
    if (st != cudaStreamCaptureStatusActive)
        report_bad(r, -1, st, cudaStreamCaptureStatusActive);
    CK(cudaMemsetAsync(a, 0, N * sizeof(int), s));
    for (int k = 0; k < 3; k++)
        add_one<<<G, B, 0, s>>>(a, N);
    CK(cudaGetLastError());
    CK(cudaMemcpyAsync(b, a, N * sizeof(int), cudaMemcpyDeviceToDevice, s));
    scale<<<G, B, 0, s>>>(b, 2, N);
    accumulate<<<G, B, 0, s>>>(acc, b, N);
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaStreamIsCapturing(s, &st));
    if (st != cudaStreamCaptureStatusNone)
        report_bad(r, -2, st, cudaStreamCaptureStatusNone);
    size_t nodes = 0;
    CK(cudaGraphGetNodes(g, NULL, &nodes));
    if (nodes != 7)
        report_bad(r, -3, (double)nodes, 7);
    CK(cudaGraphInstantiate(&x, g, 0));
    CK(cudaGraphDestroy(g)); /* the executable graph does not need it */
    for (int k = 0; k < LAUNCHES; k++)
        CK(cudaGraphLaunch(x, k % 4 == 3 ? (cudaStream_t)0 : s));
    CK(cudaStreamSynchronize(s));
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(h, acc, sizeof(h), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N; i++, r->checked++)
        if (h[i] != (long long)LAUNCHES * (6 + i))
            report_bad(r, i, (double)h[i], (double)LAUNCHES * (6 + i));
    CK(cudaGraphExecDestroy(x));
}

static int want_fork(int i)
{
    return (7 + i) * 3 * 1000 + (7 + i + 1);
}

/* s1: x = 7 + i; fork: s2 waits, y = x + 1 on s2 while s1 scales x by 3; join; out = x*1000+y. */
static void fork_join_capture(struct report *r, cudaStream_t s1, cudaStream_t s2, int *x, int *y,
                              int *out)
{
    cudaGraph_t g;
    cudaGraphExec_t ge;
    cudaEvent_t fork, join;

    CK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
    CK(cudaEventCreateWithFlags(&join, cudaEventDisableTiming));
    CK(cudaStreamBeginCapture(s1, cudaStreamCaptureModeThreadLocal));
    set_value<<<G, B, 0, s1>>>(x, 7, N);
    CK(cudaEventRecord(fork, s1));
    CK(cudaStreamWaitEvent(s2, fork, 0));
    CK(cudaMemcpyAsync(y, x, N * sizeof(int), cudaMemcpyDeviceToDevice, s2));
    add_one<<<G, B, 0, s2>>>(y, N);
    scale<<<G, B, 0, s1>>>(x, 3, N);
    CK(cudaEventRecord(join, s2));
    CK(cudaStreamWaitEvent(s1, join, 0));
    combine<<<G, B, 0, s1>>>(out, x, y, N);
    CK(cudaStreamEndCapture(s1, &g));
    CK(cudaGraphInstantiate(&ge, g, 0));
    for (int k = 0; k < 20; k++) {
        CK(cudaMemset(out, 0xA7, N * sizeof(int)));
        CK(cudaGraphLaunch(ge, s2));
        CK(cudaStreamSynchronize(s2));
    }
    check_ints(r, out, want_fork);
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
    CK(cudaEventDestroy(fork));
    CK(cudaEventDestroy(join));
}

static int want_explicit(int i)
{
    return (40 + i + 1) * 2;
}

/* Nodes added in the order: second (y = ... from x), first (x = 40 + i): an edge
 * first -> second must make the second run after the first. Then a memset node before both. */
static void explicit_graph(struct report *r, cudaStream_t s, int *x, int *y)
{
    cudaGraph_t g;
    cudaGraphExec_t ge;
    cudaGraphNode_t clear, first, second, inc, tail, join;
    int n = N, v = 40, k = 2;

    CK(cudaGraphCreate(&g, 0));
    cudaKernelNodeParams kp = {};
    kp.gridDim = dim3(G);
    kp.blockDim = dim3(B);
    void *second_args[] = {&y, &k, &n};
    kp.func = (void *)scale;
    kp.kernelParams = second_args;
    CK(cudaGraphAddKernelNode(&second, g, NULL, 0, &kp));
    void *first_args[] = {&x, &v, &n};
    kp.func = (void *)set_value;
    kp.kernelParams = first_args;
    CK(cudaGraphAddKernelNode(&first, g, NULL, 0, &kp));
    void *inc_args[] = {&x, &n};
    kp.func = (void *)add_one;
    kp.kernelParams = inc_args;
    CK(cudaGraphAddKernelNode(&inc, g, &first, 1, &kp));
    cudaMemsetParams mp = {};
    mp.dst = y;
    mp.value = 0x55;
    mp.elementSize = 1;
    mp.width = N * sizeof(int);
    mp.height = 1;
    CK(cudaGraphAddMemsetNode(&clear, g, NULL, 0, &mp));
    CK(cudaGraphAddDependencies(g, &clear, &first, NULL, 1));
    CK(cudaGraphAddMemcpyNode1D(&tail, g, &inc, 1, y, x, N * sizeof(int),
                                cudaMemcpyDeviceToDevice));
    CK(cudaGraphAddDependencies(g, &tail, &second, NULL, 1));
    CK(cudaGraphAddEmptyNode(&join, g, &second, 1));
    size_t nodes = 0;
    CK(cudaGraphGetNodes(g, NULL, &nodes));
    if (nodes != 6)
        report_bad(r, -4, (double)nodes, 6);
    CK(cudaGraphInstantiate(&ge, g, 0));
    for (int i = 0; i < 50; i++)
        CK(cudaGraphLaunch(ge, s));
    CK(cudaStreamSynchronize(s));
    check_ints(r, y, want_explicit);
    /* a cycle cannot be instantiated */
    cudaGraphExec_t bad;
    CK(cudaGraphAddDependencies(g, &join, &clear, NULL, 1));
    if (cudaGraphInstantiate(&bad, g, 0) == cudaSuccess)
        report_bad(r, -5, 0, 1);
    (void)cudaGetLastError();
    CK(cudaGraphExecDestroy(ge));
    CK(cudaGraphDestroy(g));
}

/* Copies between host and device memory in a captured graph and an explicit one: each launch
 * reads the host source as it is at that launch and fills the host destination. */
static void host_nodes(struct report *r, cudaStream_t s, int *a)
{
    cudaGraph_t g, e;
    cudaGraphExec_t x, ex;
    cudaGraphNode_t up, k, down;
    int *hin, *hout, n = N, three = 3;

    CK(cudaMallocHost(&hin, N * sizeof(int)));
    CK(cudaMallocHost(&hout, N * sizeof(int)));
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    CK(cudaMemcpyAsync(a, hin, N * sizeof(int), cudaMemcpyHostToDevice, s));
    add_one<<<G, B, 0, s>>>(a, N);
    scale<<<G, B, 0, s>>>(a, 3, N);
    CK(cudaMemcpyAsync(hout, a, N * sizeof(int), cudaMemcpyDeviceToHost, s));
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphInstantiate(&x, g, 0));
    /* the same by hand: in -> a, a *= 3, a -> out */
    CK(cudaGraphCreate(&e, 0));
    CK(cudaGraphAddMemcpyNode1D(&up, e, NULL, 0, a, hin, N * sizeof(int),
                                cudaMemcpyHostToDevice));
    cudaKernelNodeParams kp = {};
    void *args[] = {&a, &three, &n};
    kp.gridDim = dim3(G);
    kp.blockDim = dim3(B);
    kp.func = (void *)scale;
    kp.kernelParams = args;
    CK(cudaGraphAddKernelNode(&k, e, &up, 1, &kp));
    CK(cudaGraphAddMemcpyNode1D(&down, e, &k, 1, hout, a, N * sizeof(int),
                                cudaMemcpyDeviceToHost));
    CK(cudaGraphInstantiate(&ex, e, 0));
    for (int l = 0; l < 30; l++) {
        for (int i = 0; i < N; i++)
            hin[i] = l * 7 + i;
        memset(hout, 0xA7, N * sizeof(int));
        CK(cudaGraphLaunch(l % 2 ? x : ex, s));
        CK(cudaStreamSynchronize(s));
        for (int i = 0; i < N; i++, r->checked++) {
            int want = l % 2 ? (l * 7 + i + 1) * 3 : (l * 7 + i) * 3;
            if (hout[i] != want)
                report_bad(r, i, hout[i], want);
        }
    }
    CK(cudaGraphExecDestroy(x));
    CK(cudaGraphExecDestroy(ex));
    CK(cudaGraphDestroy(g));
    CK(cudaGraphDestroy(e));
    CK(cudaFreeHost(hin));
    CK(cudaFreeHost(hout));
}

static void expect_ints(struct report *r, const int *d, int mul, int add)
{
    static int h[N];
    CK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N; i++, r->checked++)
        if (h[i] != (add + i) * mul)
            report_bad(r, i, h[i], (add + i) * mul);
}

/* An executable graph changed after instantiation: a kernel node's arguments, then every
 * node's from a graph captured the same way; a graph of another shape is refused. */
static void exec_updates(struct report *r, cudaStream_t s, int *a)
{
    cudaGraph_t g, g2, g3;
    cudaGraphExec_t x;
    cudaGraphNode_t k;
    cudaGraphExecUpdateResultInfo info;
    int n = N, v = 10;

    CK(cudaGraphCreate(&g, 0));
    cudaKernelNodeParams kp = {};
    void *args[] = {&a, &v, &n};
    kp.gridDim = dim3(G);
    kp.blockDim = dim3(B);
    kp.func = (void *)set_value;
    kp.kernelParams = args;
    CK(cudaGraphAddKernelNode(&k, g, NULL, 0, &kp));
    CK(cudaGraphInstantiate(&x, g, 0));
    CK(cudaGraphLaunch(x, s));
    CK(cudaStreamSynchronize(s));
    expect_ints(r, a, 1, 10);
    v = 20;
    CK(cudaGraphExecKernelNodeSetParams(x, k, &kp));
    CK(cudaGraphLaunch(x, s));
    CK(cudaStreamSynchronize(s));
    expect_ints(r, a, 1, 20);
    CK(cudaGraphExecDestroy(x));
    CK(cudaGraphDestroy(g));

    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    set_value<<<G, B, 0, s>>>(a, 30, N);
    scale<<<G, B, 0, s>>>(a, 2, N);
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaGraphInstantiate(&x, g, 0));
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    set_value<<<G, B, 0, s>>>(a, 40, N);
    scale<<<G, B, 0, s>>>(a, 3, N);
    CK(cudaStreamEndCapture(s, &g2));
    CK(cudaGraphExecUpdate(x, g2, &info));
    CK(cudaGraphLaunch(x, s));
    CK(cudaStreamSynchronize(s));
    expect_ints(r, a, 3, 40);
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    set_value<<<G, B, 0, s>>>(a, 50, N);
    CK(cudaStreamEndCapture(s, &g3));
    if (cudaGraphExecUpdate(x, g3, &info) != cudaErrorGraphExecUpdateFailure ||
        info.result != cudaGraphExecUpdateErrorTopologyChanged)
        report_bad(r, -20, info.result, cudaGraphExecUpdateErrorTopologyChanged);
    (void)cudaGetLastError();
    CK(cudaGraphLaunch(x, s)); /* unchanged */
    CK(cudaStreamSynchronize(s));
    expect_ints(r, a, 3, 40);
    CK(cudaGraphExecDestroy(x));
    CK(cudaGraphDestroy(g));
    CK(cudaGraphDestroy(g2));
    CK(cudaGraphDestroy(g3));
}

/* The capture rules CUDA documents. */
static void capture_rules(struct report *r, cudaStream_t s, int *a)
{
    cudaGraph_t g = NULL;
    void *p = NULL;
    cudaError_t e;

    /* cudaMalloc is not permitted during a global capture and invalidates it */
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
    add_one<<<G, B, 0, s>>>(a, N);
    e = cudaMalloc(&p, 64);
    if (e != cudaErrorStreamCaptureUnsupported)
        report_bad(r, -10, e, cudaErrorStreamCaptureUnsupported);
    e = cudaStreamEndCapture(s, &g);
    if (e != cudaErrorStreamCaptureInvalidated || g != NULL)
        report_bad(r, -11, e, cudaErrorStreamCaptureInvalidated);
    (void)cudaGetLastError();
    /* ... and is in relaxed mode */
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
    add_one<<<G, B, 0, s>>>(a, N);
    CK(cudaMalloc(&p, 64));
    CK(cudaStreamEndCapture(s, &g));
    CK(cudaFree(p));
    CK(cudaGraphDestroy(g));
    /* synchronising a capturing stream is not permitted */
    CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
    e = cudaStreamSynchronize(s);
    if (e != cudaErrorStreamCaptureUnsupported)
        report_bad(r, -12, e, cudaErrorStreamCaptureUnsupported);
    e = cudaStreamEndCapture(s, &g);
    if (e != cudaErrorStreamCaptureInvalidated)
        report_bad(r, -13, e, cudaErrorStreamCaptureInvalidated);
    (void)cudaGetLastError();
    /* the legacy default stream cannot capture; ending a capture never begun fails */
    if (cudaStreamBeginCapture(0, cudaStreamCaptureModeGlobal) == cudaSuccess)
        report_bad(r, -14, 0, 1);
    (void)cudaGetLastError();
    if (cudaStreamEndCapture(s, &g) == cudaSuccess)
        report_bad(r, -15, 0, 1);
    (void)cudaGetLastError();
    r->checked += 6;
}

int main(void)
{
    struct report r = {"graphs", 0, 0};
    cudaStream_t s1, s2;
    int *a, *b, *c;
    long long *acc;

    CK(cudaStreamCreate(&s1));
    CK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    CK(cudaMalloc(&a, N * sizeof(int)));
    CK(cudaMalloc(&b, N * sizeof(int)));
    CK(cudaMalloc(&c, N * sizeof(int)));
    CK(cudaMalloc(&acc, N * sizeof(long long)));
    linear_capture(&r, s1, a, b, acc);
    fork_join_capture(&r, s1, s2, a, b, c);
    explicit_graph(&r, s2, a, b);
    host_nodes(&r, s1, a);
    exec_updates(&r, s2, a);
    capture_rules(&r, s1, a);
    CK(cudaStreamDestroy(s1));
    CK(cudaStreamDestroy(s2));
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(c));
    CK(cudaFree(acc));
    return report_done(&r);
}
