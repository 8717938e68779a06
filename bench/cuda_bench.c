/* cuda_bench.c - figures 3 to 6: a program calling the CUDA Driver API directly, linked against
 * libvgpu's libcuda.so.1 and talking to a private gpu_proxy_stub it starts itself. Synchronous
 * call latency (against the ring floor), asynchronous enqueue rates, bulk copies (against memcpy
 * in the same run) and scaling over 1..16 zones (separate processes, one zone each).
 * Usage: cuda_bench PROXY_BINARY [3|4|5|6]   (internal: cuda_bench --scale-child REP_NS REPS) */
#include "harness.h"
#include "proxy_ctl.h"
#include "ring_echo.h"

#include <cuda.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static char g_err[256]; /* reason of the last CUDA failure, for "unavailable" rows */

static int cu_check(CUresult r, const char *what)
{
    const char *name = NULL, *desc = NULL;

    if (r == CUDA_SUCCESS)
        return 0;
    cuGetErrorName(r, &name);
    cuGetErrorString(r, &desc);
    snprintf(g_err, sizeof(g_err), "%s failed: %s (%d)%s%s", what, name ? name : "?", (int)r,
             desc ? ": " : "", desc ? desc : "");
    fprintf(stderr, "bench: %s\n", g_err);
    return -EIO;
}

#define CU(call) cu_check((call), #call)

/* A trivial kernel, PTX text: stores its second argument into *p. */
static const char k_ptx[] = ".version 7.0\n"
                            ".target sm_50\n"
                            ".address_size 64\n"
                            ".visible .entry bench_store(.param .u64 p, .param .u32 v)\n"
                            "{\n"
                            "    .reg .b64 %rd<3>;\n"
                            "    .reg .b32 %r<2>;\n"
                            "    ld.param.u64 %rd1, [p];\n"
                            "    ld.param.u32 %r1, [v];\n"
                            "    cvta.to.global.u64 %rd2, %rd1;\n"
                            "    st.global.u32 [%rd2], %r1;\n"
                            "    ret;\n"
                            "}\n";

/* ---------------------------------------------------------------------------------------- */
/* Figure 3: synchronous calls. */

enum sync_kind { SYNC_MEMINFO, SYNC_ALLOCFREE, SYNC_HTOD };

static CUdeviceptr g_small;     /* 4 KiB scratch allocation */
static uint8_t g_small_host[4096];

static int sync_call(enum sync_kind k)
{
    switch (k) {
    case SYNC_MEMINFO: {
        size_t fr, tot;
        return CU(cuMemGetInfo(&fr, &tot));
    }
    case SYNC_ALLOCFREE: {
        CUdeviceptr d;
        if (CU(cuMemAlloc(&d, 4096)))
            return -EIO;
        return CU(cuMemFree(d));
    }
    case SYNC_HTOD:
        return CU(cuMemcpyHtoD(g_small, g_small_host, 64));
    }
    return -EINVAL;
}

/* Runs one kind of call for `ns`; per-call latencies go to rs (if not NULL), the count to *n. */
static int sync_loop(int kind, struct session *floor, uint64_t ns, struct bh_samples *rs,
                     uint64_t *n, uint64_t *elapsed)
{
    uint64_t start = bh_now_ns(), now = start;
    int rc = 0;

    *n = 0;
    while (now - start < ns) {
        uint64_t t0 = now;
        if (kind < 0) {
            struct bench_msg msg = {.cmd = CMD_PING};
            rc = session_call(floor, &msg);
        } else {
            rc = sync_call((enum sync_kind)kind);
        }
        if (rc)
            break;
        now = bh_now_ns();
        (*n)++;
        if (rs)
            bh_samples_add(rs, (double)(now - t0) / 1000.0);
    }
    *elapsed = now - start;
    return rc;
}

/* The three calls, and beside them the raw IDM ring round trip to an echo server on the proxy's
 * CPU (figure 1's floor, measured again here with the repetitions interleaved so the ratio is
 * not moved by load changes between the two programs). */
static int sync_figure(struct proxy *px, int same_core)
{
    static const struct {
        int k;
        const char *name, *label;
    } kinds[] = {
        {-1, "floor", "IDM ring round trip 64 B (floor, interleaved)"},
        {SYNC_MEMINFO, "meminfo", "cuMemGetInfo (forwarded query)"},
        {SYNC_ALLOCFREE, "allocfree", "cuMemAlloc+cuMemFree 4 KiB pair (2 calls)"},
        {SYNC_HTOD, "htod64", "cuMemcpyHtoD 64 B, synchronous (returns once in the ring)"},
    };
    enum { NK = sizeof(kinds) / sizeof(kinds[0]) };
    const char *pl = same_core ? "same" : "cross";
    int srv_cpu = same_core ? bh_cpu_a() : bh_cpu_b();
    int reps = bh_reps();
    uint64_t rep_ns = bh_rep_ns();
    static double rep_med[NK][1000], rep_rate[NK][1000];
    struct bh_samples all[NK];
    char cpus[96], floor_id[32];
    int rc[NK] = {0}, fails = 0;

    if (proxy_pin(px, srv_cpu) != 0)
        return -EIO;
    snprintf(cpus, sizeof(cpus), "client cpu%d, server cpu%d", bh_cpu_a(), srv_cpu);
    snprintf(floor_id, sizeof(floor_id), "sync.floor.%s", pl);
    for (int i = 0; i < NK; i++)
        if (bh_samples_init(&all[i], 4000000) != 0)
            rc[i] = -ENOMEM;
    for (int r = -1; r < reps; r++) {
        uint64_t ns = r < 0 ? rep_ns / 4 : rep_ns;
        for (int i = 0; i < NK; i++) {
            struct bh_samples rs;
            struct session floor;
            uint64_t n = 0, el = 0;

            if (rc[i] != 0)
                continue;
            if (kinds[i].k < 0) {
                rc[i] = session_open(&floor, srv_cpu, SPIN_DEFAULT);
                if (rc[i] != 0) {
                    snprintf(g_err, sizeof(g_err), "the IDM echo server did not start");
                    continue;
                }
                /* warm the fresh connection up before measuring */
                rc[i] = sync_loop(-1, &floor, rep_ns / 10, NULL, &n, &el);
            }
            if (rc[i] == 0 && bh_samples_init(&rs, 4000000) == 0) {
                rc[i] = sync_loop(kinds[i].k, &floor, ns, &rs, &n, &el);
                if (rc[i] == 0 && r >= 0 && rs.n > 0) {
                    struct bh_stats st;
                    for (size_t j = 0; j < rs.n; j++)
                        bh_samples_add(&all[i], rs.v[j]);
                    bh_stats(rs.v, rs.n, &st);
                    rep_med[i][r] = st.median;
                    rep_rate[i][r] = (double)n * 1e9 / (double)el;
                }
                bh_samples_free(&rs);
            }
            if (kinds[i].k < 0) {
                int rc2 = session_close(&floor);
                if (rc[i] == 0)
                    rc[i] = rc2;
                if (rc[i] != 0)
                    snprintf(g_err, sizeof(g_err), "the IDM echo round trip failed: %s",
                             strerror(-rc[i]));
            }
        }
    }
    for (int i = 0; i < NK; i++) {
        char id[64];
        snprintf(id, sizeof(id), "sync.%s.%s", kinds[i].name, pl);
        if (rc[i] == 0) {
            struct bh_row row = {0};
            struct bh_stats calls, rates;
            bh_row_reps(&row, rep_med[i], (size_t)reps);
            bh_stats(all[i].v, all[i].n, &calls);
            bh_stats(rep_rate[i], (size_t)reps, &rates);
            row.id = id;
            row.fig = "3";
            row.label = kinds[i].label;
            row.cpus = cpus;
            row.unit = "us";
            row.has_call = 1;
            row.call_p50 = calls.median;
            row.call_p99 = calls.p99;
            row.rate = rates.median;
            if (kinds[i].k >= 0) {
                row.ref = floor_id;
                row.paired = 1; /* repetitions interleaved with the floor's */
                row.ref_what = "ring floor";
                row.goal = kinds[i].k == SYNC_ALLOCFREE ? "ratio<=3" : "ratio<=1.5";
            }
            row.note = kinds[i].k == SYNC_ALLOCFREE ? "goal 1.5x per call = 3x for the pair"
                       : kinds[i].k < 0 ? "echo server pinned where the proxy runs; "
                                          "repetitions interleaved with the calls below"
                                        : "calls/s = median over repetitions";
            bh_emit(&row);
        } else {
            bh_emit_missing(id, "3", kinds[i].label, "unavailable", g_err);
            fails++;
        }
        bh_samples_free(&all[i]);
    }
    return fails ? -EIO : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Figure 4: asynchronous enqueue. */

enum async_kind { ASYNC_LAUNCH, ASYNC_MEMSET };

static int async_figure(void)
{
    int reps = bh_reps();
    uint64_t rep_ns = bh_rep_ns();
    char cpus[96], launch_err[300] = "";
    CUmodule mod = NULL;
    CUfunction fn = NULL;
    CUstream st = NULL;
    CUdeviceptr buf;
    int fails = 0;

    snprintf(cpus, sizeof(cpus), "client cpu%d, server cpu%d", bh_cpu_a(), bh_cpu_b());
    if (CU(cuMemAlloc(&buf, 1 * MIB)))
        return -EIO;
    if (CU(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING)))
        st = NULL; /* the default stream will do */
    if (CU(cuModuleLoadData(&mod, k_ptx)) || CU(cuModuleGetFunction(&fn, mod, "bench_store")))
        snprintf(launch_err, sizeof(launch_err), "kernel not loadable: %s", g_err);

    for (int kind = ASYNC_LAUNCH; kind <= ASYNC_MEMSET; kind++) {
        const char *id = kind == ASYNC_LAUNCH ? "async.launch" : "async.memset";
        const char *sid = kind == ASYNC_LAUNCH ? "async.launch.sync" : "async.memset.sync";
        const char *label = kind == ASYNC_LAUNCH ? "cuLaunchKernel (1x1 grid) enqueue rate"
                                                 : "cuMemsetD32Async (1 KiB) enqueue rate";
        const char *slabel = kind == ASYNC_LAUNCH ? "final cuStreamSynchronize after launches"
                                                  : "final cuStreamSynchronize after memsets";
        double rate[1000], sync_ms[1000], total_rate[1000];
        uint32_t value = 0;
        int rc = 0;

        if (kind == ASYNC_LAUNCH && launch_err[0]) {
            bh_emit_missing(id, "4", label, "unavailable", launch_err);
            bh_emit_missing(sid, "4", slabel, "unavailable", launch_err);
            fails++;
            continue;
        }
        for (int r = -1; r < reps && rc == 0; r++) {
            uint64_t start = bh_now_ns(), now = start, t_sync, n = 0;
            /* Enqueue for one repetition's time, then synchronise once. */
            while (now - start < (r < 0 ? rep_ns / 4 : rep_ns)) {
                for (int b = 0; b < 64 && rc == 0; b++) {
                    value++;
                    if (kind == ASYNC_LAUNCH) {
                        void *params[] = {&buf, &value};
                        rc = CU(cuLaunchKernel(fn, 1, 1, 1, 1, 1, 1, 0, st, params, NULL));
                    } else {
                        rc = CU(cuMemsetD32Async(buf, value, 256, st));
                    }
                }
                if (rc)
                    break;
                n += 64;
                now = bh_now_ns();
            }
            if (rc)
                break;
            t_sync = bh_now_ns();
            rc = CU(cuStreamSynchronize(st));
            if (rc)
                break;
            uint64_t end = bh_now_ns();
            if (r >= 0) {
                rate[r] = (double)n * 1e9 / (double)(t_sync - start);
                sync_ms[r] = (double)(end - t_sync) / 1e6;
                total_rate[r] = (double)n * 1e9 / (double)(end - start);
            }
        }
        if (rc == 0) {
            uint32_t got = 0;
            /* The last enqueued operation wrote `value` at the start of buf. */
            rc = CU(cuMemcpyDtoH(&got, buf, sizeof(got)));
            if (rc == 0 && got != value) {
                snprintf(g_err, sizeof(g_err), "device holds %u after the last %s, want %u", got,
                         kind == ASYNC_LAUNCH ? "launch" : "memset", value);
                fprintf(stderr, "bench: %s\n", g_err);
                rc = -EIO;
            }
        }
        if (rc == 0) {
            struct bh_row row = {0};
            struct bh_stats tot;
            char note[160], detail[64];
            bh_stats(total_rate, (size_t)reps, &tot);
            snprintf(note, sizeof(note), "enqueue rate; including the final sync: %.0f calls/s",
                     tot.median);
            char r1[24];
            snprintf(detail, sizeof(detail), "incl. sync %s",
                     bh_fmt_rate(r1, sizeof(r1), tot.median));
            bh_stats(rate, (size_t)reps, &row.rep);
            row.id = id;
            row.fig = "4";
            row.label = label;
            row.cpus = cpus;
            row.unit = "calls/s";
            row.goal = "value>=2000000";
            row.note = note;
            row.detail = detail;
            bh_emit(&row);
            memset(&row, 0, sizeof(row));
            bh_stats(sync_ms, (size_t)reps, &row.rep);
            row.id = sid;
            row.fig = "4";
            row.label = slabel;
            row.cpus = cpus;
            row.unit = "ms";
            row.note = "time for the proxy to drain one repetition's queue";
            bh_emit(&row);
        } else {
            bh_emit_missing(id, "4", label, "unavailable", g_err);
            bh_emit_missing(sid, "4", slabel, "unavailable", g_err);
            fails++;
        }
    }
    if (mod)
        CU(cuModuleUnload(mod));
    if (st)
        CU(cuStreamDestroy(st));
    CU(cuMemFree(buf));
    return fails ? -EIO : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Figure 5: bulk copies vs memcpy. */

static int bulk_figure(void)
{
    static const uint64_t sizes[] = {4096, 64 * 1024, 1 * MIB, 64 * MIB, 256 * MIB};
    const uint64_t maxsz = 256 * MIB;
    int reps = bh_reps();
    uint64_t rep_ns = bh_rep_ns();
    char cpus[96], cpus_mem[32];
    uint8_t *src, *dst;
    CUdeviceptr dev = 0;
    int fails = 0;

    snprintf(cpus, sizeof(cpus), "client cpu%d, server cpu%d", bh_cpu_a(), bh_cpu_b());
    snprintf(cpus_mem, sizeof(cpus_mem), "cpu%d", bh_cpu_a());
    src = mmap(NULL, maxsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    dst = mmap(NULL, maxsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (src == MAP_FAILED || dst == MAP_FAILED) {
        perror("bench: mmap copy buffers");
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < maxsz / 8; i++)
        ((uint64_t *)src)[i] = i * 0x9E3779B97F4A7C15ull + 7;
    memset(dst, 0, maxsz);
    if (CU(cuMemAlloc(&dev, maxsz))) {
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            char id[48];
            snprintf(id, sizeof(id), "copy.htod.%llu", (unsigned long long)sizes[k]);
            bh_emit_missing(id, "5", "bulk copies", "unavailable", g_err);
        }
        fails++;
        goto out_bufs;
    }
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint64_t size = sizes[k];
        double g_mem[1000], g_h2d[1000], g_d2h[1000];
        char sz[32], id_mem[48], id_h2d[48], id_d2h[48], l_mem[64], l_h2d[64], l_d2h[64];
        int rc = 0;

        if (size >= MIB)
            snprintf(sz, sizeof(sz), "%llu MiB", (unsigned long long)(size / MIB));
        else
            snprintf(sz, sizeof(sz), "%llu KiB", (unsigned long long)(size / 1024));
        snprintf(id_mem, sizeof(id_mem), "copy.memcpy.%llu", (unsigned long long)size);
        snprintf(id_h2d, sizeof(id_h2d), "copy.htod.%llu", (unsigned long long)size);
        snprintf(id_d2h, sizeof(id_d2h), "copy.dtoh.%llu", (unsigned long long)size);
        snprintf(l_mem, sizeof(l_mem), "memcpy %s (same run)", sz);
        snprintf(l_h2d, sizeof(l_h2d), "cuMemcpyHtoD %s, pageable", sz);
        snprintf(l_d2h, sizeof(l_d2h), "cuMemcpyDtoH %s, pageable", sz);
        /* Interleave the three so each sees the same machine load. */
        for (int r = -1; r < reps && rc == 0; r++) {
            uint64_t budget = r < 0 ? rep_ns / 4 : rep_ns;
            uint64_t start, now, bytes;

            start = now = bh_now_ns();
            bytes = 0;
            do {
                /* Batches of at least 1 MiB between clock reads, so that the clock does not
                 * count against small copies; the barrier keeps every copy. */
                for (uint64_t done = 0; done < MIB; done += size) {
                    memcpy(dst, src, size);
                    __asm__ volatile("" ::: "memory");
                    bytes += size;
                }
                now = bh_now_ns();
            } while (now - start < budget);
            if (r >= 0)
                g_mem[r] = (double)bytes / (double)(now - start);

            start = now = bh_now_ns();
            bytes = 0;
            do {
                rc = CU(cuMemcpyHtoD(dev, src, size));
                bytes += size;
                now = bh_now_ns();
            } while (rc == 0 && now - start < budget);
            if (rc == 0)
                rc = CU(cuCtxSynchronize());
            now = bh_now_ns();
            if (r >= 0)
                g_h2d[r] = (double)bytes / (double)(now - start);

            start = now = bh_now_ns();
            bytes = 0;
            do {
                rc = rc ? rc : CU(cuMemcpyDtoH(dst, dev, size));
                bytes += size;
                now = bh_now_ns();
            } while (rc == 0 && now - start < budget);
            if (r >= 0)
                g_d2h[r] = (double)bytes / (double)(now - start);
        }
        if (rc == 0 && memcmp(dst, src, size) != 0) {
            snprintf(g_err, sizeof(g_err), "data read back after %s differs from what was "
                     "written", l_h2d);
            fprintf(stderr, "bench: %s\n", g_err);
            rc = -EIO;
        }
        if (rc == 0) {
            struct bh_row row = {0};
            bh_row_reps(&row, g_mem, (size_t)reps);
            row.id = id_mem;
            row.fig = "5";
            row.label = l_mem;
            row.cpus = cpus_mem;
            row.unit = "GB/s";
            row.note = "no-op floor";
            bh_emit(&row);
            for (int dir = 0; dir < 2; dir++) {
                memset(&row, 0, sizeof(row));
                bh_row_reps(&row, dir ? g_d2h : g_h2d, (size_t)reps);
                row.paired = 1; /* memcpy and copy repetitions alternate */
                row.id = dir ? id_d2h : id_h2d;
                row.fig = "5";
                row.label = dir ? l_d2h : l_h2d;
                row.cpus = cpus;
                row.unit = "GB/s";
                row.ref = id_mem;
                row.ref_what = "memcpy";
                /* issue 18's goals for small copies; the earlier one for 64 MiB */
                row.goal = size == 4096 ? "ratio>=0.5" : size == 64 * 1024 ? "ratio>=0.8"
                           : size == MIB ? "ratio>=0.9" : size == 64 * MIB ? "ratio>=0.8" : NULL;
                bh_emit(&row);
            }
        } else {
            bh_emit_missing(id_h2d, "5", l_h2d, "unavailable", g_err);
            bh_emit_missing(id_d2h, "5", l_d2h, "unavailable", g_err);
            fails++;
        }
    }
    CU(cuMemFree(dev));
out_bufs:
    munmap(src, maxsz);
    munmap(dst, maxsz);
    return fails ? -EIO : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Figure 6: scaling over zones. Each zone is a child process (this program re-executed with
 * --scale-child and VGPU_SOCKET set): it initialises, says "ready", waits for the start time
 * on stdin, runs REPS repetitions of mixed calls and prints one count per repetition. */

#define SCALE_GAP_NS 50000000ull /* pause between repetitions */

static int mixed_iteration(CUdeviceptr buf, CUstream st, uint32_t i, const uint8_t *host)
{
    size_t fr, tot;
    CUdeviceptr d;

    if (CU(cuMemGetInfo(&fr, &tot)) || CU(cuMemsetD32Async(buf, i, 64, st)) ||
        CU(cuMemcpyHtoD(buf, host, 256)) || CU(cuMemAlloc(&d, 4096)) || CU(cuMemFree(d)) ||
        CU(cuStreamSynchronize(st)))
        return -EIO;
    return 0;
}
#define MIXED_CALLS 6

static int scale_child(uint64_t rep_ns, int reps)
{
    CUdevice dev;
    CUcontext ctx;
    CUdeviceptr buf;
    CUstream st = NULL;
    uint8_t host[256] = {1};
    unsigned long long start;
    uint64_t counts[1000];
    char line[64];

    if (CU(cuInit(0)) || CU(cuDeviceGet(&dev, 0)) || CU(cuDevicePrimaryCtxRetain(&ctx, dev)) ||
        CU(cuCtxSetCurrent(ctx)) || CU(cuMemAlloc(&buf, 4096)) ||
        CU(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING))) {
        printf("error %s\n", g_err);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin) || sscanf(line, "%llu", &start) != 1) {
        fprintf(stderr, "bench: scale child: no start time\n");
        return 1;
    }
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = start + (uint64_t)r * (rep_ns + SCALE_GAP_NS), n = 0;
        while (bh_now_ns() < t0)
            usleep(100);
        while (bh_now_ns() - t0 < rep_ns) {
            if (mixed_iteration(buf, st, (uint32_t)n, host)) {
                printf("error %s\n", g_err);
                return 1;
            }
            n += MIXED_CALLS;
        }
        counts[r] = n;
    }
    printf("counts");
    for (int r = 0; r < reps; r++)
        printf(" %llu", (unsigned long long)counts[r]);
    printf("\n");
    fflush(stdout);
    CU(cuStreamDestroy(st));
    CU(cuMemFree(buf));
    CU(cuDevicePrimaryCtxRelease(dev));
    return 0;
}

struct child {
    pid_t pid;
    FILE *in, *out;
};

static int spawn_child(const char *self, const char *mode, const char *sock, int cpu,
                       uint64_t rep_ns, int reps, struct child *c)
{
    int to[2], from[2];
    char a1[32], a2[32];

    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0)
        return -errno;
    snprintf(a1, sizeof(a1), "%llu", (unsigned long long)rep_ns);
    snprintf(a2, sizeof(a2), "%d", reps);
    fflush(NULL);
    c->pid = fork();
    if (c->pid < 0)
        return -errno;
    if (c->pid == 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || bh_pin(cpu) != 0 || dup2(to[0], 0) < 0 ||
            dup2(from[1], 1) < 0)
            _exit(126);
        setenv("VGPU_SOCKET", sock, 1);
        execl(self, self, mode, a1, a2, (char *)NULL);
        fprintf(stderr, "bench: exec %s failed: %s\n", self, strerror(errno));
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    c->in = fdopen(to[1], "w");
    c->out = fdopen(from[0], "r");
    if (!c->in || !c->out)
        return -ENOMEM;
    return 0;
}

/* sfx: "" for the adaptive wait, ".block" for IDM_SPIN_US=0 on both sides (the proxy and the
 * children inherit it from the environment). */
static int scale_figure(struct proxy *px, const char *self, const char *sfx)
{
    static const int zone_counts[] = {1, 2, 4, 8, 16};
    int reps = bh_reps();
    uint64_t rep_ns = bh_rep_ns();
    char socks[16][256];
    char cpus[96];
    int fails = 0;

    /* every zone client on the client CPU, the proxy on the other */
    snprintf(cpus, sizeof(cpus), "client cpu%d, server cpu%d", bh_cpu_a(), bh_cpu_b());
    if (proxy_pin(px, bh_cpu_b()) != 0)
        return -EIO;
    for (int z = 0; z < 16; z++) {
        char name[16];
        snprintf(name, sizeof(name), "scale%02d", z);
        if (proxy_add_zone(px, name, "64M", socks[z], sizeof(socks[z])) != 0) {
            for (size_t k = 0; k < sizeof(zone_counts) / sizeof(zone_counts[0]); k++) {
                char id[32];
                snprintf(id, sizeof(id), "scale.%d%s", zone_counts[k], sfx);
                bh_emit_missing(id, "6", "zones", "unavailable",
                                "the proxy refused ADD for the scaling zones");
            }
            return -EIO;
        }
    }
    for (size_t k = 0; k < sizeof(zone_counts) / sizeof(zone_counts[0]); k++) {
        int nz = zone_counts[k];
        struct child ch[16];
        uint64_t counts[16][1000];
        char id[32], fid[32], ref[32], label[96], flabel[96], err[300] = "";
        const char *wait = sfx[0] ? ", IDM_SPIN_US=0" : "";
        int started = 0;

        snprintf(id, sizeof(id), "scale.%d%s", nz, sfx);
        snprintf(fid, sizeof(fid), "scale.%d%s.fair", nz, sfx);
        snprintf(ref, sizeof(ref), "scale.1%s", sfx);
        snprintf(label, sizeof(label), "%2d zone%s: aggregate calls/s%s", nz, nz > 1 ? "s" : "",
                 wait);
        snprintf(flabel, sizeof(flabel), "%2d zone%s: fairness slowest/fastest%s", nz,
                 nz > 1 ? "s" : "", wait);
        for (int z = 0; z < nz; z++) {
            if (spawn_child(self, "--scale-child", socks[z], bh_cpu_a(), rep_ns, reps,
                            &ch[z]) != 0) {
                snprintf(err, sizeof(err), "could not start zone client %d", z);
                break;
            }
            started++;
        }
        for (int z = 0; z < started && !err[0]; z++) {
            char line[400];
            if (!fgets(line, sizeof(line), ch[z].out)) {
                snprintf(err, sizeof(err), "zone client %d exited before it was ready (see "
                         "its messages above)", z);
            } else if (strncmp(line, "ready", 5) != 0) {
                line[strcspn(line, "\n")] = '\0';
                snprintf(err, sizeof(err), "zone client %d did not start: %.200s", z, line);
            }
        }
        if (!err[0]) {
            unsigned long long start = bh_now_ns() + 100000000ull;
            for (int z = 0; z < started; z++) {
                fprintf(ch[z].in, "%llu\n", start);
                fflush(ch[z].in);
            }
        }
        for (int z = 0; z < started; z++) {
            char line[8192];
            if (!err[0]) {
                char *p = line, *end;
                if (!fgets(line, sizeof(line), ch[z].out))
                    snprintf(line, sizeof(line), "exited without results");
                if (strncmp(line, "counts", 6) != 0) {
                    line[strcspn(line, "\n")] = '\0';
                    snprintf(err, sizeof(err), "zone client %d failed: %.200s", z, line);
                } else {
                    p += 6;
                    for (int r = 0; r < reps; r++) {
                        counts[z][r] = strtoull(p, &end, 10);
                        p = end;
                    }
                }
            }
            fclose(ch[z].in);
            fclose(ch[z].out);
            if (err[0])
                kill(ch[z].pid, SIGTERM);
            bh_wait(ch[z].pid);
        }
        if (err[0]) {
            bh_emit_missing(id, "6", label, "unavailable", err);
            fails++;
            continue;
        }
        {
            double agg[1000], fair[1000], zmin[1000], zmax[1000];
            struct bh_row row = {0};
            struct bh_stats smin, smax;
            char note[200], detail[64];
            for (int r = 0; r < reps; r++) {
                uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
                for (int z = 0; z < nz; z++) {
                    sum += counts[z][r];
                    lo = counts[z][r] < lo ? counts[z][r] : lo;
                    hi = counts[z][r] > hi ? counts[z][r] : hi;
                }
                agg[r] = (double)sum * 1e9 / (double)rep_ns;
                zmin[r] = (double)lo * 1e9 / (double)rep_ns;
                zmax[r] = (double)hi * 1e9 / (double)rep_ns;
                fair[r] = hi ? (double)lo / (double)hi : 0;
            }
            bh_stats(zmin, (size_t)reps, &smin);
            bh_stats(zmax, (size_t)reps, &smax);
            bh_stats(agg, (size_t)reps, &row.rep);
            snprintf(note, sizeof(note), "per zone: slowest %.0f/s, fastest %.0f/s (medians); "
                     "mix: MemGetInfo, MemsetD32Async, HtoD 256 B, Alloc, Free, StreamSync", 
                     smin.median, smax.median);
            row.id = id;
            row.fig = "6";
            row.label = label;
            row.cpus = cpus;
            row.unit = "calls/s";
            row.ref = ref;
            row.ref_what = "1 zone";
            row.note = note;
            bh_emit(&row);
            memset(&row, 0, sizeof(row));
            bh_stats(fair, (size_t)reps, &row.rep);
            row.id = fid;
            row.fig = "6";
            row.label = flabel;
            row.cpus = cpus;
            row.unit = "ratio";
            row.note = "1.0 = every zone got the same rate";
            char r1[24], r2[24];
            snprintf(detail, sizeof(detail), "slowest %s, fastest %s",
                     bh_fmt_rate(r1, sizeof(r1), smin.median),
                     bh_fmt_rate(r2, sizeof(r2), smax.median));
            row.detail = detail;
            bh_emit(&row);
        }
    }
    return fails ? -EIO : 0;
}

/* ---------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------- */
/* Figure 3, last rows: the cost of the per-zone counters (issue 17). Two proxies, one with
 * --call-stats on and a --metrics listener, one with --call-stats off; a child process per
 * proxy calls cuMemGetInfo for one repetition each time it is told to, alternately, so the two
 * rows' repetitions run side by side in the same minutes. */

/* Child: after "ready", each "go" line runs cuMemGetInfo for rep_ns and answers
 * "MEDIAN_US CALLS". */
static int meminfo_child(uint64_t rep_ns, int reps)
{
    CUdevice dev;
    CUcontext ctx;
    char line[64];

    if (CU(cuInit(0)) || CU(cuDeviceGet(&dev, 0)) || CU(cuDevicePrimaryCtxRetain(&ctx, dev)) ||
        CU(cuCtxSetCurrent(ctx))) {
        printf("error %s\n", g_err);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (int r = 0; r < reps && fgets(line, sizeof(line), stdin); r++) {
        struct bh_samples rs;
        struct bh_stats st;
        uint64_t n = 0, el = 0;
        if (bh_samples_init(&rs, 4000000) != 0 ||
            sync_loop(SYNC_MEMINFO, NULL, rep_ns, &rs, &n, &el) != 0 || rs.n == 0) {
            printf("error %s\n", g_err);
            return 1;
        }
        bh_stats(rs.v, rs.n, &st);
        printf("%.6f %llu\n", st.median, (unsigned long long)n);
        fflush(stdout);
        bh_samples_free(&rs);
    }
    CU(cuDevicePrimaryCtxRelease(dev));
    return 0;
}

/* One repetition of child c: its median call latency in us, or a negative value. */
static double child_rep(struct child *c)
{
    char line[256];
    double med;

    if (fprintf(c->in, "go\n") < 0 || fflush(c->in) != 0 || !fgets(line, sizeof(line), c->out))
        return -1;
    if (sscanf(line, "%lf", &med) != 1) {
        snprintf(g_err, sizeof(g_err), "child: %.200s", line);
        return -1;
    }
    return med;
}

static void emit_metrics_rows(double v[2][1000], int reps)
{
    static const char *const ids[2] = {"sync.metrics.off", "sync.metrics.on"};
    static const char *const labels[2] = {
        "cuMemGetInfo, proxy with --call-stats off",
        "cuMemGetInfo, proxy with --call-stats on and --metrics"};
    char cpus[96];

    snprintf(cpus, sizeof(cpus), "client cpu%d, server cpu%d", bh_cpu_a(), bh_cpu_b());
    for (int i = 0; i < 2; i++) {
        struct bh_row row = {0};
        bh_row_reps(&row, v[i], (size_t)reps);
        row.id = ids[i];
        row.fig = "3";
        row.label = labels[i];
        row.cpus = cpus;
        row.unit = "us";
        if (i == 1) {
            row.ref = ids[0];
            row.paired = 1;
            row.ref_what = "counters off";
            row.goal = "ratio<=1.1";
        }
        row.note = "two proxies, repetitions alternated between them in the same run";
        bh_emit(&row);
    }
}

/* Starts the two proxies and a child on each; measures reps alternated repetitions. */
static int metrics_figure(const char *proxy_bin, const char *self)
{
    static const char *const args[2] = {"--call-stats off", "--call-stats on --metrics 127.0.0.1:0"};
    static double v[2][1000];
    struct proxy px[2];
    struct child ch[2] = {{.pid = -1}, {.pid = -1}};
    char sock[256], line[256];
    int reps = bh_reps(), started = 0, rc = 0;

    for (; started < 2 && rc == 0; started++) {
        rc = proxy_start(&px[started], proxy_bin, args[started], bh_cpu_b());
        if (rc != 0)
            break;
        if (proxy_add_zone(&px[started], "bench", "2G", sock, sizeof(sock)) != 0 ||
            spawn_child(self, "--meminfo-child", sock, bh_cpu_a(), bh_rep_ns(), reps,
                        &ch[started]) != 0 ||
            !fgets(line, sizeof(line), ch[started].out) || strncmp(line, "ready", 5) != 0)
            rc = -EIO;
    }
    for (int r = 0; r < reps && rc == 0; r++)
        for (int i = 0; i < 2 && rc == 0; i++)
            if ((v[i][r] = child_rep(&ch[i])) < 0)
                rc = -EIO;
    for (int i = 0; i < 2; i++) {
        if (ch[i].pid > 0) {
            fclose(ch[i].in);
            fclose(ch[i].out);
            bh_wait(ch[i].pid);
        }
        if (i < started)
            proxy_stop(&px[i]);
    }
    if (rc != 0) {
        bh_emit_missing("sync.metrics", "3", "cuMemGetInfo with the counters on vs off",
                        "unavailable", g_err[0] ? g_err : "a proxy or child did not start");
        return rc;
    }
    emit_metrics_rows(v, reps);
    return 0;
}

static void all_missing(const char *reason, int only)
{
    static const struct {
        const char *id, *fig, *label;
    } rows[] = {
        {"sync", "3", "synchronous remoted calls"},
        {"async", "4", "asynchronous enqueue"},
        {"copy", "5", "bulk copies"},
        {"scale", "6", "scaling over zones"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (only == 0 || only == atoi(rows[i].fig))
            bh_emit_missing(rows[i].id, rows[i].fig, rows[i].label, "unavailable", reason);
}

int main(int argc, char **argv)
{
    const char *proxy_bin;
    char self[4096], sock[256], reason[400];
    struct proxy px;
    CUdevice dev;
    CUcontext ctx;
    Dl_info info;
    int only, fails = 0;
    ssize_t n;

    if (argc == 4 && strcmp(argv[1], "--scale-child") == 0)
        return scale_child(strtoull(argv[2], NULL, 10), atoi(argv[3]));
    if (argc == 4 && strcmp(argv[1], "--meminfo-child") == 0)
        return meminfo_child(strtoull(argv[2], NULL, 10), atoi(argv[3]));
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROXY_BINARY [3|4|5|6]\n", argv[0]);
        return 2;
    }
    proxy_bin = argv[1];
    only = argc > 2 ? atoi(argv[2]) : 0;
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        perror("bench: readlink /proc/self/exe");
        return 1;
    }
    self[n] = '\0';
    /* Make sure the Driver API we call is libvgpu's, never NVIDIA's. */
    if (!dladdr((void *)cuInit, &info) || !info.dli_fname || !strstr(info.dli_fname, "libvgpu")) {
        snprintf(reason, sizeof(reason), "cuInit resolves to %s, not libvgpu's libcuda.so.1",
                 info.dli_fname ? info.dli_fname : "?");
        all_missing(reason, only);
        return 1;
    }
    if (access(proxy_bin, X_OK) != 0) {
        snprintf(reason, sizeof(reason), "%s is not built: %s", proxy_bin, strerror(errno));
        all_missing(reason, only);
        return 1;
    }
    if (bh_pin(bh_cpu_a()) != 0)
        return 1;
    if (proxy_start(&px, proxy_bin, NULL, bh_cpu_b()) != 0) {
        snprintf(reason, sizeof(reason), "%s did not start (stderr names its log)", proxy_bin);
        all_missing(reason, only);
        return 1;
    }
    bh_log("remoted-call benchmarks: %s (pid %d, dir %s), client on cpu%d", proxy_bin,
           (int)px.pid, px.dir, bh_cpu_a());
    if (proxy_add_zone(&px, "bench", "2G", sock, sizeof(sock)) != 0) {
        all_missing("the proxy refused ADD bench 2G", only);
        proxy_stop(&px);
        return 1;
    }
    setenv("VGPU_SOCKET", sock, 1);
    if (CU(cuInit(0)) || CU(cuDeviceGet(&dev, 0)) || CU(cuDevicePrimaryCtxRetain(&ctx, dev)) ||
        CU(cuCtxSetCurrent(ctx)) || CU(cuMemAlloc(&g_small, 4096))) {
        snprintf(reason, sizeof(reason), "set-up through libvgpu failed: %s", g_err);
        all_missing(reason, only);
        proxy_stop(&px);
        return 1;
    }
    if (only == 0 || only == 3) {
        fails += sync_figure(&px, 0) != 0;
        fails += sync_figure(&px, 1) != 0;
        proxy_pin(&px, bh_cpu_b());
    }
    if (only == 0 || only == 4)
        fails += async_figure() != 0;
    if (only == 0 || only == 5)
        fails += bulk_figure() != 0;
    if (only == 0 || only == 6)
        fails += scale_figure(&px, self, "") != 0;
    CU(cuMemFree(g_small));
    CU(cuDevicePrimaryCtxRelease(dev));
    proxy_stop(&px);
    if (only == 0 || only == 3)
        fails += metrics_figure(proxy_bin, self) != 0;
    if (only == 0 || only == 6) {
        /* The same scaling figure with blocking waits everywhere: a second proxy started with
         * IDM_SPIN_US=0, which the zone clients inherit as well. */
        const char *old = getenv("IDM_SPIN_US");
        char *saved = old ? strdup(old) : NULL;
        setenv("IDM_SPIN_US", "0", 1);
        if (proxy_start(&px, proxy_bin, NULL, bh_cpu_b()) == 0) {
            fails += scale_figure(&px, self, ".block") != 0;
            proxy_stop(&px);
        } else {
            bh_emit_missing("scale.block", "6", "scaling, IDM_SPIN_US=0", "unavailable",
                            "the second proxy did not start");
            fails++;
        }
        if (saved)
            setenv("IDM_SPIN_US", saved, 1);
        else
            unsetenv("IDM_SPIN_US");
        free(saved);
    }
    if (fails)
        fprintf(stderr, "bench: cuda_bench: %d figure(s) incomplete\n", fails);
    return fails ? 1 : 0;
}
