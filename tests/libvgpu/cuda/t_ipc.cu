// t_ipc.cu - CUDA IPC memory and event handles between two processes of one zone. The parent
// allocates and fills memory, exports it and an interprocess event, and execs itself as the
// child (a fresh process: CUDA cannot be used across fork); the child opens both, checks the
// data with a kernel and writes it back, records the event after the kernel and tells the
// parent so at once; the parent waits for the event and sees the change, then frees its
// allocation while the child's import is still open: the child still reads the data (the proxy
// keeps the memory until the last close; CUDA calls that case undefined), closes, and a second
// close is refused. A forged handle and the exporter opening its own handle are refused.
#include <sys/wait.h>
#include <unistd.h>
#include "check.h"

static const int N = 1 << 18;

__global__ void check_and_bump(int *p, int n, int *bad)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        if (p[i] != i)
            atomicAdd(bad, 1);
        p[i] = 2 * i + 1;
    }
}

static void put(int fd, char c)
{
    EXPECT(write(fd, &c, 1) == 1, "pipe write");
}

static char get(int fd)
{
    char c = 0;
    EXPECT(read(fd, &c, 1) == 1, "pipe read");
    return c;
}

static void to_hex(const void *p, char out[129])
{
    for (int i = 0; i < 64; i++)
        snprintf(out + 2 * i, 3, "%02x", ((const unsigned char *)p)[i]);
}

static void from_hex(const char *hex, void *p)
{
    for (int i = 0; i < 64; i++)
        EXPECT(sscanf(hex + 2 * i, "%2hhx", (unsigned char *)p + i) == 1, "handle byte %d", i);
}

static int child(const char *hex, const char *ehex, int rfd, int wfd)
{
    cudaIpcMemHandle_t h;
    cudaIpcEventHandle_t eh;
    cudaEvent_t ev;
    from_hex(hex, &h);
    from_hex(ehex, &eh);
    CHECK(cudaIpcOpenEventHandle(&ev, eh));
    cudaIpcMemHandle_t forged = h;
    forged.reserved[20] ^= 1;
    int *p = nullptr, *bad = nullptr, nbad = -1;
    EXPECT(cudaIpcOpenMemHandle((void **)&p, forged, cudaIpcMemLazyEnablePeerAccess) != cudaSuccess,
           "a forged handle is refused");
    (void)cudaGetLastError();
    CHECK(cudaIpcOpenMemHandle((void **)&p, h, cudaIpcMemLazyEnablePeerAccess));
    CHECK(cudaMalloc(&bad, sizeof(int)));
    CHECK(cudaMemset(bad, 0, sizeof(int)));
    cudaStream_t s;
    CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    check_and_bump<<<64, 256, 0, s>>>(p, N, bad);
    CHECK(cudaGetLastError());
    CHECK(cudaEventRecord(ev, s));
    put(wfd, 'r'); // recorded, maybe not run yet: the parent waits for the event
    CHECK(cudaMemcpyAsync(&nbad, bad, sizeof(int), cudaMemcpyDeviceToHost, s));
    CHECK(cudaStreamSynchronize(s));
    EXPECT(nbad == 0, "%d elements differ from what the parent wrote", nbad);
    EXPECT(get(rfd) == 'f', "the parent freed");
    int *back = (int *)malloc(N * sizeof(int));
    CHECK(cudaMemcpy(back, p, N * sizeof(int), cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += back[i] != 2 * i + 1;
    EXPECT(wrong == 0, "%d elements wrong after the exporter's free", wrong);
    free(back);
    CHECK(cudaIpcCloseMemHandle(p));
    EXPECT(cudaIpcCloseMemHandle(p) != cudaSuccess, "a second close is refused");
    CHECK(cudaFree(bad));
    CHECK(cudaEventDestroy(ev));
    CHECK(cudaStreamDestroy(s));
    return finish("t_ipc child");
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "child") == 0)
        return child(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
    int *d = nullptr;
    int *host = (int *)malloc(N * sizeof(int));
    for (int i = 0; i < N; i++)
        host[i] = i;
    CHECK(cudaMalloc(&d, N * sizeof(int)));
    CHECK(cudaMemcpy(d, host, N * sizeof(int), cudaMemcpyHostToDevice));
    cudaIpcMemHandle_t h, h2;
    CHECK(cudaIpcGetMemHandle(&h, d));
    CHECK(cudaIpcGetMemHandle(&h2, d));
    EXPECT(memcmp(&h, &h2, sizeof(h)) == 0, "exporting twice gives the same handle");
    void *own = nullptr;
    EXPECT(cudaIpcOpenMemHandle(&own, h, cudaIpcMemLazyEnablePeerAccess) != cudaSuccess,
           "the exporting process cannot open its own handle");
    (void)cudaGetLastError();
    cudaEvent_t ev, timed;
    cudaIpcEventHandle_t eh;
    CHECK(cudaEventCreate(&timed));
    EXPECT(cudaIpcGetEventHandle(&eh, timed) != cudaSuccess,
           "an event without cudaEventInterprocess is not exported");
    (void)cudaGetLastError();
    CHECK(cudaEventCreateWithFlags(&ev, cudaEventInterprocess | cudaEventDisableTiming));
    CHECK(cudaIpcGetEventHandle(&eh, ev));

    char hex[129], ehex[129], rs[16], ws[16];
    to_hex(&h, hex);
    to_hex(&eh, ehex);
    int to_child[2], from_child[2];
    EXPECT(pipe(to_child) == 0 && pipe(from_child) == 0, "pipe");
    snprintf(rs, sizeof rs, "%d", to_child[0]);
    snprintf(ws, sizeof ws, "%d", from_child[1]);
    fflush(stdout);
    pid_t pid = fork();
    EXPECT(pid >= 0, "fork");
    if (pid == 0) {
        close(to_child[1]);
        close(from_child[0]);
        execl("/proc/self/exe", argv[0], "child", hex, ehex, rs, ws, (char *)nullptr);
        _exit(127);
    }
    close(to_child[0]);
    close(from_child[1]);
    EXPECT(get(from_child[0]) == 'r', "the child recorded the event");
    CHECK(cudaEventSynchronize(ev)); // the child's kernel has run
    CHECK(cudaMemcpy(host, d, N * sizeof(int), cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += host[i] != 2 * i + 1;
    EXPECT(wrong == 0, "%d elements the child wrote are wrong here", wrong);
    CHECK(cudaFree(d));
    put(to_child[1], 'f');
    int st = 0;
    EXPECT(waitpid(pid, &st, 0) == pid, "waitpid");
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d",
           WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    CHECK(cudaEventDestroy(ev));
    CHECK(cudaEventDestroy(timed));
    free(host);
    return finish("t_ipc");
}
