/* driver_facts.c - asks the CUDA driver the questions our isolation design depends on
 * (../../../shared/docs/gpu-isolation-facts.md, "Questions only a GPU answers") and prints one
 * JSON object per answer on stdout:
 *   one process, two contexts: can a kernel in context B read / write context A's cuMemAlloc
 *   memory? After a kernel in B faults, does A still work (and B, and a new context)?
 *   two processes: the same questions across a process boundary;
 *   cuMemAddressReserve: is a fixed address hint honoured, and is the range usable;
 *   cuMemAlloc: does a fresh allocation hand back another allocation's old bytes?
 * Without arguments it is the orchestrator: every question runs in a fresh child process
 * (exec of itself), so a fault (700 poisons a process) cannot touch the next question, and a
 * child that crashes or hangs (60 s) is reported as such. `driver_facts q NAME [ARGS]` runs
 * one question. Linked against the toolkit's libcuda.so stub (no rpath): the libcuda.so.1
 * found at run time (LD_LIBRARY_PATH) is the driver under test, NVIDIA's or libvgpu's. */
#include <cuda.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpucheck.h"

#define PATTERN 0x11223344u
#define MARK 0xCAFEBABEu
#define CHILD_TIMEOUT_S 60

static const char ptx[] =
    ".version 8.0\n.target sm_75\n.address_size 64\n"
    ".visible .entry probe_read(.param .u64 src, .param .u64 dst)\n{\n"
    "  .reg .b64 %rd<5>;\n  .reg .b32 %r<2>;\n"
    "  ld.param.u64 %rd1, [src];\n  ld.param.u64 %rd2, [dst];\n"
    "  cvta.to.global.u64 %rd3, %rd1;\n  cvta.to.global.u64 %rd4, %rd2;\n"
    "  ld.global.u32 %r1, [%rd3];\n  st.global.u32 [%rd4], %r1;\n  ret;\n}\n"
    ".visible .entry probe_write(.param .u64 dst, .param .u32 val)\n{\n"
    "  .reg .b64 %rd<3>;\n  .reg .b32 %r<2>;\n"
    "  ld.param.u64 %rd1, [dst];\n  ld.param.u32 %r1, [val];\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n  st.global.u32 [%rd2], %r1;\n  ret;\n}\n";

/* An address no allocation ever gets: the first page of the GPU's address space. */
#define NULL_PAGE_ADDR ((CUdeviceptr)0x100)

static int g_errors;

/* ---- output: gc_emit and gc_fmt of gpucheck.h ---- */

static const char *cu_name(CUresult rc)
{
    const char *s = NULL;

    if (cuGetErrorName(rc, &s) != CUDA_SUCCESS || s == NULL)
        return "unknown CUresult";
    return s;
}

static const char *rc_str(CUresult rc)
{
    return gc_fmt("%s (%d)", cu_name(rc), (int)rc);
}

/* A CUDA call that must succeed for the question to be answerable: on failure an "error"
 * record names the call and the question ends (exit 1). */
#define MUST(call)                                                                             \
    do {                                                                                       \
        CUresult rc_ = (call);                                                                 \
        if (rc_ != CUDA_SUCCESS) {                                                             \
            gc_emit(gc_fmt("%s.error", g_test), "error", "call", #call, "line",            \
                    gc_fmt("%d", __LINE__), "cuda", rc_str(rc_), NULL);                        \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

/* ---- helpers ---- */

struct probe_mod {
    CUmodule mod;
    CUfunction rd, wr;
};

static void load_probes(struct probe_mod *m)
{
    MUST(cuModuleLoadData(&m->mod, ptx));
    MUST(cuModuleGetFunction(&m->rd, m->mod, "probe_read"));
    MUST(cuModuleGetFunction(&m->wr, m->mod, "probe_write"));
}

static CUresult launch_read(struct probe_mod *m, CUdeviceptr src, CUdeviceptr dst)
{
    void *args[] = {&src, &dst};
    return cuLaunchKernel(m->rd, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL);
}

static CUresult launch_write(struct probe_mod *m, CUdeviceptr dst, unsigned val)
{
    void *args[] = {&dst, &val};
    return cuLaunchKernel(m->wr, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL);
}

/* Launch + synchronise: the first failing result of the two. */
static CUresult run_read(struct probe_mod *m, CUdeviceptr src, CUdeviceptr dst)
{
    CUresult rc = launch_read(m, src, dst);
    return rc != CUDA_SUCCESS ? rc : cuCtxSynchronize();
}

static CUresult run_write(struct probe_mod *m, CUdeviceptr dst, unsigned val)
{
    CUresult rc = launch_write(m, dst, val);
    return rc != CUDA_SUCCESS ? rc : cuCtxSynchronize();
}

static CUcontext new_ctx(CUdevice dev)
{
    CUcontext c;
    MUST(cuCtxCreate(&c, NULL, 0, dev));
    return c;
}

static CUdevice init_dev(void)
{
    CUdevice dev;
    MUST(cuInit(0));
    MUST(cuDeviceGet(&dev, 0));
    return dev;
}

/* Does context `c` still work? Allocate, fill, run a kernel, read back: "yes" or the first
 * failure. */
static const char *ctx_works(CUcontext c, struct probe_mod *m)
{
    CUdeviceptr p = 0;
    unsigned v = 0;
    CUresult rc;

    if ((rc = cuCtxSetCurrent(c)) != CUDA_SUCCESS)
        return gc_fmt("no: cuCtxSetCurrent %s", rc_str(rc));
    if ((rc = cuMemAlloc(&p, 4096)) != CUDA_SUCCESS)
        return gc_fmt("no: cuMemAlloc %s", rc_str(rc));
    if ((rc = cuMemsetD32(p, 0, 1024)) != CUDA_SUCCESS)
        return gc_fmt("no: cuMemsetD32 %s", rc_str(rc));
    if ((rc = run_write(m, p + 64, MARK)) != CUDA_SUCCESS)
        return gc_fmt("no: kernel %s", rc_str(rc));
    if ((rc = cuMemcpyDtoH(&v, p + 64, 4)) != CUDA_SUCCESS)
        return gc_fmt("no: cuMemcpyDtoH %s", rc_str(rc));
    cuMemFree(p);
    if (v != MARK)
        return gc_fmt("no: kernel wrote 0x%08x, expected 0x%08x", v, MARK);
    return "yes";
}

/* ---- questions ---- */

/* One process, contexts A and B: B's kernel reads A's allocation. */
static int q_ctx_read(void)
{
    CUdevice dev = init_dev();
    CUdeviceptr abuf, bout;
    struct probe_mod mb;
    unsigned v = 0;
    CUresult rc;

    new_ctx(dev); /* A, current */
    MUST(cuMemAlloc(&abuf, 2 << 20));
    MUST(cuMemsetD32(abuf, PATTERN, (2 << 20) / 4));
    MUST(cuCtxSynchronize());
    new_ctx(dev); /* B, current from now on */
    MUST(cuMemAlloc(&bout, 4096));
    MUST(cuMemsetD32(bout, 0, 1024));
    load_probes(&mb);
    rc = run_read(&mb, abuf, bout);
    if (rc == CUDA_SUCCESS) {
        MUST(cuMemcpyDtoH(&v, bout, 4));
        gc_emit("one_process.b_reads_a", "answer",
                "answer", v == PATTERN ? "yes: B's kernel read A's data" :
                          "no fault, but B's kernel did not see A's data",
                "value", gc_fmt("0x%08x", v), "expected", gc_fmt("0x%08x", PATTERN),
                "address", gc_fmt("0x%llx", (unsigned long long)abuf), NULL);
    } else {
        gc_emit("one_process.b_reads_a", "answer", "answer", gc_fmt("no: B's kernel failed with %s",
                rc_str(rc)), "address", gc_fmt("0x%llx", (unsigned long long)abuf), NULL);
    }
    return 0;
}

/* One process: B's kernel writes A's allocation; A reads it back. */
static int q_ctx_write(void)
{
    CUdevice dev = init_dev();
    CUcontext a = new_ctx(dev);
    CUdeviceptr abuf;
    struct probe_mod mb;
    unsigned v = 0;
    CUresult rc;

    MUST(cuMemAlloc(&abuf, 2 << 20));
    MUST(cuMemsetD32(abuf, PATTERN, (2 << 20) / 4));
    MUST(cuCtxSynchronize());
    new_ctx(dev); /* B */
    load_probes(&mb);
    rc = run_write(&mb, abuf, MARK);
    MUST(cuCtxSetCurrent(a));
    {
        CUresult rr = cuMemcpyDtoH(&v, abuf, 4);
        const char *seen = rr == CUDA_SUCCESS ? gc_fmt("0x%08x", v)
                                              : gc_fmt("unreadable: %s", rc_str(rr));
        const char *ans;
        if (rc == CUDA_SUCCESS && rr == CUDA_SUCCESS && v == MARK)
            ans = "yes: B's kernel changed A's data";
        else if (rc == CUDA_SUCCESS)
            ans = "no fault, but A's data is unchanged";
        else
            ans = gc_fmt("no: B's kernel failed with %s", rc_str(rc));
        gc_emit("one_process.b_writes_a", "answer", "answer", ans, "a_reads_back", seen,
                "kernel_result", rc_str(rc), NULL);
    }
    return 0;
}

/* One process: B faults (illegal address); then A, B and a new context C are tried. */
static int q_ctx_fault(void)
{
    CUdevice dev = init_dev();
    CUcontext a = new_ctx(dev), b;
    struct probe_mod ma, mb;
    CUresult rc;
    const char *before;

    load_probes(&ma);
    before = ctx_works(a, &ma);
    b = new_ctx(dev);
    load_probes(&mb);
    rc = run_write(&mb, NULL_PAGE_ADDR, MARK);
    gc_emit("one_process.b_fault", "answer", "answer",
            rc == CUDA_ERROR_ILLEGAL_ADDRESS ? "B's kernel faulted with CUDA_ERROR_ILLEGAL_ADDRESS"
                                             : gc_fmt("B's kernel gave %s", rc_str(rc)),
            "cuda", rc_str(rc), "a_worked_before", before, NULL);
    {
        const char *a_after = ctx_works(a, &ma);
        CUdeviceptr p = 0;
        CUresult bmem;
        const char *c_after;

        MUST(cuCtxSetCurrent(b));
        bmem = cuMemAlloc(&p, 4096);
        {
            CUcontext c;
            CUresult rcc = cuCtxCreate(&c, NULL, 0, dev);
            if (rcc != CUDA_SUCCESS) {
                c_after = gc_fmt("no: cuCtxCreate %s", rc_str(rcc));
            } else {
                struct probe_mod mc;
                CUresult lr = cuModuleLoadData(&mc.mod, ptx);
                if (lr == CUDA_SUCCESS)
                    lr = cuModuleGetFunction(&mc.rd, mc.mod, "probe_read");
                if (lr == CUDA_SUCCESS)
                    lr = cuModuleGetFunction(&mc.wr, mc.mod, "probe_write");
                c_after = lr == CUDA_SUCCESS ? ctx_works(c, &mc)
                                             : gc_fmt("no: cuModuleLoadData %s", rc_str(lr));
            }
        }
        gc_emit("one_process.a_after_b_fault", "answer", "answer", a_after,
                "b_alloc_after_fault", rc_str(bmem), "new_context_after_fault", c_after, NULL);
    }
    return 0;
}

/* Two processes, owner side: allocates (after a pad, so that the prober's own first
 * allocation does not land on the same address), fills, writes the address to FILE, waits for
 * a line on stdin, then checks that its data is intact and its context works. */
static int q_proc_owner(const char *file)
{
    CUdevice dev = init_dev();
    CUcontext a = new_ctx(dev);
    CUdeviceptr pad, abuf;
    struct probe_mod m;
    char line[64], tmp[512];
    unsigned v = 0;
    FILE *f;

    MUST(cuMemAlloc(&pad, 64 << 20));
    MUST(cuMemAlloc(&abuf, 2 << 20));
    MUST(cuMemsetD32(abuf, PATTERN, (2 << 20) / 4));
    MUST(cuCtxSynchronize());
    load_probes(&m);
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "0x%llx\n", (unsigned long long)abuf) < 0 || fclose(f) != 0 ||
        rename(tmp, file) != 0) {
        gc_emit("two_process.owner.error", "error", "error",
                gc_fmt("writing %s: %s", file, strerror(errno)), NULL);
        return 1;
    }
    if (fgets(line, sizeof(line), stdin) == NULL) {
        gc_emit("two_process.owner.error", "error", "error", "orchestrator closed stdin", NULL);
        return 1;
    }
    {
        CUresult rr = cuMemcpyDtoH(&v, abuf, 4);
        gc_emit("two_process.a_data_after_b", "answer", "answer",
                rr != CUDA_SUCCESS ? gc_fmt("unreadable: %s", rc_str(rr)) :
                v == PATTERN ? "intact" : gc_fmt("changed to 0x%08x", v), NULL);
    }
    gc_emit("two_process.a_after_b_fault", "answer", "answer", ctx_works(a, &m), NULL);
    (void)pad;
    return 0;
}

/* Two processes, prober side: reads or writes ADDR (the owner's allocation) from its own
 * context; "null" faults on purpose at the first page. */
static int q_proc_probe(const char *what, const char *addr_s)
{
    CUdevice dev = init_dev();
    CUdeviceptr addr = (CUdeviceptr)strtoull(addr_s, NULL, 0), out, base = 0;
    size_t size = 0;
    struct probe_mod m;
    unsigned v = 0;
    CUresult rc, mapped;
    const char *name = strcmp(what, "faults") == 0 ? "two_process.b_faults"
                                                   : gc_fmt("two_process.b_%s_a", what);

    new_ctx(dev);
    MUST(cuMemAlloc(&out, 4096));
    MUST(cuMemsetD32(out, 0, 1024));
    load_probes(&m);
    /* If the owner's address is also mapped in this process, the probe proves nothing. */
    mapped = strcmp(what, "faults") == 0 ? CUDA_ERROR_NOT_FOUND
                                         : cuMemGetAddressRange(&base, &size, addr);
    if (mapped == CUDA_SUCCESS) {
        gc_emit(name, "answer", "answer", "inconclusive: the address is mapped in this process too",
                "address", addr_s, NULL);
        return 0;
    }
    if (strcmp(what, "reads") == 0) {
        rc = run_read(&m, addr, out);
        if (rc == CUDA_SUCCESS) {
            MUST(cuMemcpyDtoH(&v, out, 4));
            gc_emit(name, "answer", "answer", v == PATTERN ? "yes: B's kernel read A's data"
                                                           : "no fault, but not A's data",
                    "value", gc_fmt("0x%08x", v), "address", addr_s, NULL);
        } else {
            gc_emit(name, "answer", "answer", gc_fmt("no: B's kernel failed with %s", rc_str(rc)),
                    "address", addr_s, NULL);
        }
    } else {
        rc = run_write(&m, strcmp(what, "faults") == 0 ? NULL_PAGE_ADDR : addr, MARK);
        gc_emit(name, "answer", "answer",
                rc == CUDA_SUCCESS ? "B's kernel completed without a fault"
                                   : gc_fmt("B's kernel failed with %s", rc_str(rc)),
                "address", strcmp(what, "faults") == 0 ? "0x100" : addr_s, NULL);
    }
    return 0;
}

/* cuMemAddressReserve with fixed hints; the range obtained is then mapped and used. */
static int q_vmm_hint(void)
{
    CUdevice dev = init_dev();
    CUmemAllocationProp prop;
    size_t gran = 0, size;
    CUdeviceptr first = 0;
    struct probe_mod m;
    CUresult rc;
    int supported = 0;

    new_ctx(dev);
    load_probes(&m);
    MUST(cuDeviceGetAttribute(&supported,
                              CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev));
    if (!supported) {
        gc_emit("vmm.hint", "answer", "answer", "virtual memory management is not supported", NULL);
        return 0;
    }
    memset(&prop, 0, sizeof(prop));
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = dev;
    MUST(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM));
    size = 16 * gran;
    MUST(cuMemAddressReserve(&first, size, 0, 0, 0));
    MUST(cuMemAddressFree(first, size));
    gc_emit("vmm.granularity", "answer", "answer", gc_fmt("%zu", gran),
            "first_reservation", gc_fmt("0x%llx", (unsigned long long)first), NULL);
    {
        const CUdeviceptr hints[] = {first, first + 64 * (CUdeviceptr)gran,
                                     (CUdeviceptr)0x200000000000ull,
                                     (CUdeviceptr)0x300000000000ull,
                                     (CUdeviceptr)0x7e0000000000ull};
        for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
            CUdeviceptr got = 0;
            CUmemGenericAllocationHandle h;
            CUmemAccessDesc acc;
            const char *use = "not tried";

            rc = cuMemAddressReserve(&got, size, 0, hints[i], 0);
            if (rc != CUDA_SUCCESS) {
                gc_emit(gc_fmt("vmm.hint_%zu", i), "answer", "hint",
                        gc_fmt("0x%llx", (unsigned long long)hints[i]), "answer",
                        gc_fmt("refused: %s", rc_str(rc)), NULL);
                continue;
            }
            rc = cuMemCreate(&h, size, &prop, 0);
            if (rc == CUDA_SUCCESS) {
                rc = cuMemMap(got, size, 0, h, 0);
                if (rc == CUDA_SUCCESS) {
                    memset(&acc, 0, sizeof(acc));
                    acc.location = prop.location;
                    acc.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
                    rc = cuMemSetAccess(got, size, &acc, 1);
                    if (rc == CUDA_SUCCESS) {
                        unsigned v = 0;
                        rc = run_write(&m, got + size - 64, MARK);
                        if (rc == CUDA_SUCCESS)
                            rc = cuMemcpyDtoH(&v, got + size - 64, 4);
                        use = rc != CUDA_SUCCESS ? gc_fmt("kernel/copy failed: %s", rc_str(rc))
                              : v == MARK ? "yes: mapped, written by a kernel, read back"
                                          : gc_fmt("read back 0x%08x", v);
                    } else {
                        use = gc_fmt("cuMemSetAccess failed: %s", rc_str(rc));
                    }
                    cuMemUnmap(got, size);
                } else {
                    use = gc_fmt("cuMemMap failed: %s", rc_str(rc));
                }
                cuMemRelease(h);
            } else {
                use = gc_fmt("cuMemCreate failed: %s", rc_str(rc));
            }
            gc_emit(gc_fmt("vmm.hint_%zu", i), "answer",
                    "hint", gc_fmt("0x%llx", (unsigned long long)hints[i]),
                    "got", gc_fmt("0x%llx", (unsigned long long)got),
                    "answer", got == hints[i] ? "honoured" : "not honoured", "usable", use, NULL);
            MUST(cuMemAddressFree(got, size));
        }
    }
    return 0;
}

/* Does cuMemAlloc hand back bytes an earlier allocation left (driver level, no proxy)? */
static int q_fresh_alloc(void)
{
    const size_t size = 256u << 20;
    CUdevice dev = init_dev();
    CUdeviceptr p, q;
    unsigned char *h = malloc(size);
    size_t nonzero = 0;

    if (h == NULL) {
        gc_emit("alloc.fresh_is_zero.error", "error", "error", "out of host memory", NULL);
        return 1;
    }
    new_ctx(dev);
    MUST(cuMemAlloc(&p, size));
    MUST(cuMemsetD8(p, 0xA5, size));
    MUST(cuCtxSynchronize());
    MUST(cuMemFree(p));
    MUST(cuMemAlloc(&q, size));
    MUST(cuMemcpyDtoH(h, q, size));
    for (size_t i = 0; i < size; i++)
        nonzero += h[i] != 0;
    gc_emit("alloc.fresh_is_zero", "answer", "answer",
            nonzero == 0 ? "yes: all zero"
                         : gc_fmt("no: %zu of %zu bytes non-zero%s", nonzero, size,
                                  q == p ? " (same address as the freed block)" : ""),
            "same_address", q == p ? "yes" : "no", NULL);
    free(h);
    return 0;
}

static int question(int argc, char **argv)
{
    const char *q = argv[2];

    g_test = q;
    if (strcmp(q, "ctx_read") == 0)
        return q_ctx_read();
    if (strcmp(q, "ctx_write") == 0)
        return q_ctx_write();
    if (strcmp(q, "ctx_fault") == 0)
        return q_ctx_fault();
    if (strcmp(q, "proc_owner") == 0 && argc > 3)
        return q_proc_owner(argv[3]);
    if (strcmp(q, "proc_probe") == 0 && argc > 4)
        return q_proc_probe(argv[3], argv[4]);
    if (strcmp(q, "vmm_hint") == 0)
        return q_vmm_hint();
    if (strcmp(q, "fresh_alloc") == 0)
        return q_fresh_alloc();
    fprintf(stderr, "driver_facts: unknown question '%s'\n", q);
    return 2;
}

/* ---- orchestrator ---- */

static char g_self[4096];

static pid_t spawn(char *const args[], int stdin_fd)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        if (stdin_fd >= 0 && dup2(stdin_fd, 0) < 0)
            _exit(126);
        alarm(CHILD_TIMEOUT_S); /* survives exec: a hung question is killed by SIGALRM */
        execv(g_self, args);
        fprintf(stderr, "driver_facts: exec %s: %s\n", g_self, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Waits for a question's process; a crash, a timeout or an error exit is recorded. */
static void reap(pid_t pid, const char *what)
{
    int st = 0;

    if (pid < 0) {
        gc_emit(gc_fmt("%s.error", what), "error", "error", gc_fmt("fork: %s", strerror(errno)),
                NULL);
        g_errors++;
        return;
    }
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(st)) {
        gc_emit(gc_fmt("%s.error", what), "error", "error",
                WTERMSIG(st) == SIGALRM ? gc_fmt("no answer within %d s", CHILD_TIMEOUT_S)
                                        : gc_fmt("killed by signal %d", WTERMSIG(st)), NULL);
        g_errors++;
    } else if (WEXITSTATUS(st) != 0) {
        g_errors++; /* the child printed its own error record */
    }
}

static void run_simple(const char *q)
{
    char *args[] = {g_self, (char *)"q", (char *)q, NULL};
    reap(spawn(args, -1), q);
}

static void two_process(void)
{
    char file[64], addr[64] = "";
    char *owner_args[] = {g_self, (char *)"q", (char *)"proc_owner", file, NULL};
    int fds[2];
    pid_t owner;
    FILE *f = NULL;

    snprintf(file, sizeof(file), "/tmp/driver_facts.%d.addr", (int)getpid());
    unlink(file);
    if (pipe(fds) != 0) {
        gc_emit("two_process.error", "error", "error", gc_fmt("pipe: %s", strerror(errno)), NULL);
        g_errors++;
        return;
    }
    owner = spawn(owner_args, fds[0]);
    close(fds[0]);
    if (owner < 0) {
        close(fds[1]);
        reap(owner, "two_process.owner");
        return;
    }
    /* The owner publishes its address within the time limit, or it failed. */
    for (int i = 0; i < CHILD_TIMEOUT_S * 10 && addr[0] == '\0'; i++) {
        int st;
        if ((f = fopen(file, "r")) != NULL) {
            if (fgets(addr, sizeof(addr), f) == NULL)
                addr[0] = '\0';
            fclose(f);
            addr[strcspn(addr, "\n")] = '\0';
            break;
        }
        if (waitpid(owner, &st, WNOHANG) == owner) {
            gc_emit("two_process.error", "error", "error",
                    "the owner process ended before publishing its address", NULL);
            g_errors++;
            close(fds[1]);
            unlink(file);
            return;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    unlink(file);
    if (addr[0] == '\0') {
        gc_emit("two_process.error", "error", "error", "the owner never published its address",
                NULL);
        g_errors++;
        kill(owner, SIGKILL);
        close(fds[1]);
        reap(owner, "two_process.owner");
        return;
    }
    {
        char *r[] = {g_self, (char *)"q", (char *)"proc_probe", (char *)"reads", addr, NULL};
        char *w[] = {g_self, (char *)"q", (char *)"proc_probe", (char *)"writes", addr, NULL};
        char *n[] = {g_self, (char *)"q", (char *)"proc_probe", (char *)"faults", addr, NULL};
        reap(spawn(r, -1), "two_process.b_reads_a");
        reap(spawn(w, -1), "two_process.b_writes_a");
        reap(spawn(n, -1), "two_process.b_faults");
    }
    if (write(fds[1], "go\n", 3) != 3)
        gc_emit("two_process.error", "error", "error",
                gc_fmt("write to owner: %s", strerror(errno)), NULL);
    close(fds[1]);
    reap(owner, "two_process.owner");
}

int main(int argc, char **argv)
{
    ssize_t n;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && strcmp(argv[1], "q") == 0)
        return question(argc, argv);
    if (argc != 1) {
        fprintf(stderr, "usage: %s            (all questions, one process each)\n"
                        "       %s q QUESTION [ARGS]\n", argv[0], argv[0]);
        return 2;
    }
    n = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);
    if (n <= 0) {
        fprintf(stderr, "driver_facts: readlink /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    g_self[n] = '\0';
    run_simple("ctx_read");
    run_simple("ctx_write");
    run_simple("ctx_fault");
    two_process();
    run_simple("vmm_hint");
    run_simple("fresh_alloc");
    gc_emit("driver_facts.done", g_errors ? "fail" : "pass", "errors", gc_fmt("%d", g_errors),
            NULL);
    return g_errors ? 1 : 0;
}
