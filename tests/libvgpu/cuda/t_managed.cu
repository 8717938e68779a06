// t_managed.cu - managed memory as CUDA documents it for a device without concurrent managed
// access: one pointer for host and kernels, data moved at launches and synchronisations (only
// the pages the host changed go to the device), host access during GPU work faults (SIGSEGV,
// checked in a forked child), stream attachment, copies and memsets on managed pointers,
// pointer and range attributes, prefetch/advice, and mapped host memory refused.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string>
#include "check.h"

__global__ void add(int *a, int n, int k)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        a[i] += k;
}

static void launch_add(int *a, int n, int k, cudaStream_t s = 0)
{
    add<<<(n + 255) / 256, 256, 0, s>>>(a, n, k);
    CHECK(cudaGetLastError());
}

static void properties()
{
    cudaDeviceProp p;
    CHECK(cudaGetDeviceProperties(&p, 0));
    EXPECT(p.managedMemory == 1, "managedMemory %d", p.managedMemory);
    EXPECT(p.concurrentManagedAccess == 0, "concurrentManagedAccess %d",
           p.concurrentManagedAccess);
    EXPECT(p.canMapHostMemory == 0, "canMapHostMemory %d", p.canMapHostMemory);
    EXPECT(p.pageableMemoryAccess == 0, "pageableMemoryAccess %d", p.pageableMemoryAccess);
}

// host init, kernel, synchronise, host reads; then many rounds with host edits between
static void basic()
{
    const int n = 10000;
    int *a = nullptr;
    CHECK(cudaMallocManaged(&a, n * sizeof(int)));
    for (int i = 0; i < n; i++)
        a[i] = i;
    launch_add(a, n, 1);
    CHECK(cudaDeviceSynchronize());
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += a[i] != i + 1;
    EXPECT(bad == 0, "%d of %d elements wrong after one kernel", bad, n);
    for (int round = 0; round < 50; round++) {
        a[(round * 997) % n] += 1000; // host edit between kernels
        launch_add(a, n, 2);
        launch_add(a, n, 3);
        CHECK(cudaStreamSynchronize(0));
    }
    long long want = 0, got = 0;
    for (int i = 0; i < n; i++) {
        want += i + 1 + 50 * 5;
        got += a[i];
    }
    for (int round = 0; round < 50; round++)
        want += 1000;
    EXPECT(got == want, "sum after 50 rounds %lld, want %lld", got, want);
    CHECK(cudaFree(a));
}

// Runs fn with fd 2 going to a file; returns what was written there.
static std::string stderr_of(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/t_managed.XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    EXPECT(fd >= 0 && saved >= 0, "mkstemp/dup");
    fflush(stderr);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    std::string out;
    char buf[4096];
    ssize_t k;
    lseek(fd, 0, SEEK_SET);
    while ((k = read(fd, buf, sizeof buf)) > 0)
        out.append(buf, (size_t)k);
    close(fd);
    unlink(path);
    return out;
}

static void one_launch(void *p)
{
    launch_add((int *)p, 16, 1);
    CHECK(cudaDeviceSynchronize());
}

// 8 MiB of which the host changes one page: only that page goes to the device (libvgpu's
// debug line says how many pages it sent) and the result is right everywhere.
static void dirty_page()
{
    const size_t bytes = 8u << 20, n = bytes / sizeof(int);
    int *a = nullptr;
    CHECK(cudaMallocManaged(&a, bytes));
    for (size_t i = 0; i < n; i++)
        a[i] = (int)i;
    launch_add(a, 16, 1);
    CHECK(cudaDeviceSynchronize());
    a[n / 2] = -5; // one page
    std::string log = stderr_of(one_launch, a);
    size_t pages = bytes / (size_t)sysconf(_SC_PAGESIZE);
    char want[128];
    snprintf(want, sizeof want, ": 1 of %zu pages to the device", pages);
    EXPECT(log.find(want) != std::string::npos, "libvgpu's log during the launch lacks '%s':\n%s",
           want, log.c_str());
    EXPECT(a[0] == 2 && a[15] == 17 && a[16] == 16, "kernel results %d %d %d", a[0], a[15],
           a[16]);
    EXPECT(a[n / 2] == -5 && a[n - 1] == (int)(n - 1), "untouched data %d %d", a[n / 2],
           a[n - 1]);
    CHECK(cudaFree(a));
}

static void copies_and_memset()
{
    const int n = 4096;
    int *m = nullptr, *d = nullptr;
    static int h[n], back[n];
    CHECK(cudaMallocManaged(&m, n * sizeof(int)));
    CHECK(cudaMalloc(&d, n * sizeof(int)));
    for (int i = 0; i < n; i++)
        h[i] = 3 * i;
    CHECK(cudaMemcpy(m, h, sizeof h, cudaMemcpyHostToDevice));
    EXPECT(m[7] == 21, "host view after cudaMemcpy into managed: %d", m[7]);
    launch_add(m, n, 1);
    CHECK(cudaMemcpy(back, m, sizeof back, cudaMemcpyDeviceToHost)); // GPU's turn: from the device
    EXPECT(back[7] == 22 && back[n - 1] == 3 * (n - 1) + 1, "cudaMemcpy from managed %d %d",
           back[7], back[n - 1]);
    CHECK(cudaMemcpy(d, m, sizeof h, cudaMemcpyDefault)); // device to device
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemset(m, 0, sizeof h)); // host's turn: set on the host
    EXPECT(m[0] == 0 && m[n - 1] == 0, "memset of managed %d %d", m[0], m[n - 1]);
    CHECK(cudaMemcpy(m, d, sizeof h, cudaMemcpyDefault)); // device to managed
    EXPECT(m[7] == 22, "managed after a copy from device memory: %d", m[7]);
    launch_add(m, n, 1);
    CHECK(cudaDeviceSynchronize());
    EXPECT(m[7] == 23, "kernel after the copy: %d", m[7]);
    CHECK(cudaFree(d));
    CHECK(cudaFree(m));
}

static void attributes()
{
    int *m = nullptr;
    CHECK(cudaMallocManaged(&m, 1000));
    cudaPointerAttributes pa;
    CHECK(cudaPointerGetAttributes(&pa, m + 10));
    EXPECT(pa.type == cudaMemoryTypeManaged, "type %d", (int)pa.type);
    EXPECT(pa.devicePointer == m + 10 && pa.hostPointer == m + 10, "pointers %p %p",
           pa.devicePointer, pa.hostPointer);
    cudaMemLocation dev = {cudaMemLocationTypeDevice, 0}, host = {cudaMemLocationTypeHost, 0};
    EXPECT_ERR(cudaMemPrefetchAsync(m, 1000, dev, 0, 0), cudaErrorInvalidDevice);
    CHECK(cudaMemPrefetchAsync(m, 1000, host, 0, 0));
    CHECK(cudaMemAdvise(m, 1000, cudaMemAdviseSetReadMostly, dev));
    int rm = 0, pref = 5;
    CHECK(cudaMemRangeGetAttribute(&rm, sizeof rm, cudaMemRangeAttributeReadMostly, m, 1000));
    EXPECT(rm == 1, "read mostly %d", rm);
    CHECK(cudaMemRangeGetAttribute(&pref, sizeof pref, cudaMemRangeAttributePreferredLocation,
                                   m, 1000));
    EXPECT(pref == cudaInvalidDeviceId, "preferred location %d", pref);
    EXPECT_ERR(cudaMallocManaged(&m, 16, 7), cudaErrorInvalidValue);
    (void)cudaGetLastError(); // the refusals above are the last error
    CHECK(cudaFree(m));
}

// A child forked while a kernel is outstanding touches the managed memory: SIGSEGV, as CUDA
// documents for such devices. Memory attached to the host stays the host's.
static void fault_during_kernel()
{
    int *a = nullptr, *h = nullptr;
    CHECK(cudaMallocManaged(&a, 4096));
    CHECK(cudaMallocManaged(&h, 4096, cudaMemAttachHost));
    a[0] = 41;
    launch_add(a, 1, 1);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); // a sanitizer's handler would turn the fault into exit(1)
        h[0] = 1; // attached to the host: allowed
        volatile int x = a[0];
        (void)x;
        _exit(0);
    }
    int st = 0;
    EXPECT(pid > 0 && waitpid(pid, &st, 0) == pid, "fork/waitpid");
    EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "child status %#x: want SIGSEGV", st);
    h[1] = 2;
    CHECK(cudaDeviceSynchronize());
    EXPECT(a[0] == 42 && h[1] == 2, "after synchronising %d %d", a[0], h[1]);
    CHECK(cudaFree(h));
    CHECK(cudaFree(a));
}

// Memory attached to one stream is the host's while another stream's kernel is outstanding,
// and comes back at that stream's synchronisation.
static void stream_attach()
{
    cudaStream_t s1, s2;
    CHECK(cudaStreamCreateWithFlags(&s1, cudaStreamNonBlocking));
    CHECK(cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking));
    int *a = nullptr, *b = nullptr;
    CHECK(cudaMallocManaged(&a, 256 * sizeof(int)));
    CHECK(cudaMallocManaged(&b, 256 * sizeof(int)));
    CHECK(cudaStreamAttachMemAsync(s1, a, 0, cudaMemAttachSingle));
    CHECK(cudaStreamAttachMemAsync(s2, b, 0, cudaMemAttachSingle));
    CHECK(cudaStreamSynchronize(s1));
    CHECK(cudaStreamSynchronize(s2));
    for (int i = 0; i < 256; i++)
        a[i] = b[i] = i;
    launch_add(a, 256, 10, s1);
    for (int i = 0; i < 256; i++) // s1 works on a; b is s2's and the host's meanwhile
        b[i] += 1;
    launch_add(b, 256, 100, s2);
    CHECK(cudaStreamSynchronize(s1));
    EXPECT(a[5] == 15, "a after s1: %d", a[5]);
    cudaEvent_t e;
    CHECK(cudaEventCreate(&e));
    CHECK(cudaEventRecord(e, s2));
    CHECK(cudaEventSynchronize(e));
    EXPECT(b[5] == 106, "b after s2's event: %d", b[5]);
    CHECK(cudaEventDestroy(e));
    CHECK(cudaFree(a));
    CHECK(cudaFree(b));
    CHECK(cudaStreamDestroy(s1));
    CHECK(cudaStreamDestroy(s2));
}

// Mapped host memory cannot be honest across the domain boundary: refused, not faked.
static void mapped_host_refused()
{
    void *p = nullptr, *d = nullptr;
    static char reg[8192];
    EXPECT(cudaHostAlloc(&p, 4096, cudaHostAllocMapped) != cudaSuccess,
           "cudaHostAlloc(cudaHostAllocMapped) succeeded");
    EXPECT(cudaHostRegister(reg, sizeof reg, cudaHostRegisterMapped) != cudaSuccess,
           "cudaHostRegister(cudaHostRegisterMapped) succeeded");
    CHECK(cudaHostAlloc(&p, 4096, cudaHostAllocDefault));
    EXPECT(cudaHostGetDevicePointer(&d, p, 0) != cudaSuccess,
           "cudaHostGetDevicePointer succeeded without a device mapping");
    (void)cudaGetLastError();
    CHECK(cudaFreeHost(p));
    CHECK(cudaHostRegister(reg, sizeof reg, cudaHostRegisterDefault));
    CHECK(cudaHostUnregister(reg));
}

int main()
{
    setenv("VGPU_LOG", "debug", 1); // for dirty_page's count of pages sent (read at cuInit)
    properties();
    basic();
    dirty_page();
    copies_and_memset();
    attributes();
    fault_during_kernel();
    stream_attach();
    mapped_host_refused();
    return finish("t_managed");
}
