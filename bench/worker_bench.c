/* worker_bench.c - figure 8: how long a zone waits for its worker process. Worker start: from an
 * admin ADD of a new zone to the first successful call of a client in it; restart: from SIGKILL
 * of the zone's worker (pid from LIST) to a new client's first successful call. Two kinds of
 * first call: the raw IDM connect + HELLO (in this process), and a new process calling cuInit +
 * cuMemGetInfo through libvgpu (this program re-executed). Floor of each, measured in the same
 * repetition: the same first call against a zone whose worker is already serving.
 * Usage: worker_bench PROXY_BINARY   (internal: worker_bench --first-call, with VGPU_SOCKET) */
#include "harness.h"
#include "proxy_ctl.h"

#include <cuda.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "idm.h"
#include "idm_transport.h"

#define FLOOR_CALLS 9          /* first calls against a serving worker per repetition */
#define MIN_LIFE_NS 1200000000ull /* a worker younger than 1 s that dies is restarted with back-off */
#define RETRY_NS 10000000000ull /* how long a first call keeps retrying */

static char g_self[4096];

/* --first-call: what a CUDA program does first, through libvgpu. Exit 0 when it worked. */
static int first_call_child(void)
{
    CUdevice dev;
    CUcontext ctx;
    size_t fr, tot;

    if (cuInit(0) != CUDA_SUCCESS || cuDeviceGet(&dev, 0) != CUDA_SUCCESS ||
        cuDevicePrimaryCtxRetain(&ctx, dev) != CUDA_SUCCESS ||
        cuCtxSetCurrent(ctx) != CUDA_SUCCESS || cuMemGetInfo(&fr, &tot) != CUDA_SUCCESS) {
        fprintf(stderr, "bench: first call through libvgpu to %s failed\n",
                getenv("VGPU_SOCKET") ? getenv("VGPU_SOCKET") : "?");
        return 1;
    }
    return 0;
}

/* One IDM connection and its HELLO; 0 when the reply said CUDA_SUCCESS. */
static int hello_once(const char *sock)
{
    struct idm_req_HELLO q = {.proto_version = IDM_PROTOCOL_VERSION, .pid = (uint32_t)getpid()};
    struct idm_conn *c;
    struct idm_hdr h;
    struct idm_msg m;
    int rc;

    rc = idm_transport_posix.connect(sock, &c);
    if (rc != 0)
        return rc;
    memset(&h, 0, sizeof(h));
    h.op = IDM_OP_HELLO;
    h.seq = 1;
    idm_msg_init(&m);
    rc = idm_send(c, &h, &q, sizeof(q), NULL, 0);
    if (rc == 0)
        rc = idm_recv(c, &m, 10000);
    if (rc == 0 && (m.hdr.seq != 1 || m.hdr.op != IDM_OP_HELLO || m.hdr.status != 0))
        rc = -EPROTO;
    idm_msg_free(&m);
    idm_close(c);
    return rc;
}

static int exec_child(void *sock)
{
    setenv("VGPU_SOCKET", sock, 1);
    execl(g_self, g_self, "--first-call", (char *)NULL);
    fprintf(stderr, "bench: exec %s failed: %s\n", g_self, strerror(errno));
    return 127;
}

/* The first successful call of a client of `sock`, retried until RETRY_NS after t0 (the zone's
 * worker may not accept yet); proc: a new process through libvgpu, else connect + HELLO here.
 * Returns the time from t0 in ms, or a negative errno. */
static double first_call(const char *sock, int proc, uint64_t t0)
{
    int rc;

    do {
        if (proc) {
            pid_t pid = bh_spawn(bh_cpu_a(), exec_child, (void *)sock);
            rc = pid < 0 ? pid : bh_wait(pid) == 0 ? 0 : -EIO;
        } else {
            rc = hello_once(sock);
        }
        if (rc == 0)
            return (double)(bh_now_ns() - t0) / 1e6;
        usleep(1000);
    } while (bh_now_ns() - t0 < RETRY_NS);
    return rc;
}

/* Median of FLOOR_CALLS first calls against a serving worker, in ms (negative: failed). */
static double floor_call(const char *sock, int proc)
{
    double v[FLOOR_CALLS];
    struct bh_stats st;

    for (int i = 0; i < FLOOR_CALLS; i++) {
        v[i] = first_call(sock, proc, bh_now_ns());
        if (v[i] < 0)
            return v[i];
    }
    bh_stats(v, FLOOR_CALLS, &st);
    return st.median;
}

static void sleep_until(uint64_t t)
{
    uint64_t now = bh_now_ns();

    if (now < t) {
        struct timespec ts = {.tv_sec = (time_t)((t - now) / 1000000000ull),
                              .tv_nsec = (long)((t - now) % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

/* SIGKILLs the zone's worker once it has lived MIN_LIFE_NS (born at `born`) and times the
 * next first call; checks that LIST then names another pid. */
static double restart_once(const struct proxy *px, const char *zone, const char *sock, int proc,
                           uint64_t born, char *err, size_t errlen)
{
    int pid = 0, pid2 = 0, rc;
    uint64_t t0;
    double ms;

    sleep_until(born + MIN_LIFE_NS);
    rc = proxy_zone_pid(px, zone, &pid);
    if (rc != 0) {
        snprintf(err, errlen, "LIST has no worker pid for zone %s: %s", zone, strerror(-rc));
        return -EIO;
    }
    t0 = bh_now_ns();
    if (kill(pid, SIGKILL) != 0) {
        snprintf(err, errlen, "kill(%d, SIGKILL) of zone %s's worker: %s", pid, zone,
                 strerror(errno));
        return -EIO;
    }
    ms = first_call(sock, proc, t0);
    if (ms < 0) {
        snprintf(err, errlen, "no call succeeded in zone %s within 10 s of killing its worker",
                 zone);
        return ms;
    }
    if (proxy_zone_pid(px, zone, &pid2) != 0 || pid2 == pid) {
        snprintf(err, errlen, "zone %s: LIST still names the killed worker %d", zone, pid);
        return -EIO;
    }
    return ms;
}

enum { F_FLOOR_RAW, F_START_RAW, F_RESTART_RAW, F_FLOOR_PROC, F_START_PROC, F_RESTART_PROC, NF };

/* One repetition: every value of the figure, in ms. */
static int one_rep(const struct proxy *px, int rep, double v[NF], char *err, size_t errlen)
{
    for (int proc = 0; proc < 2; proc++) {
        char zone[32], sock[256], req[64], reply[256];
        uint64_t t0;
        double *out = v + (proc ? F_FLOOR_PROC : F_FLOOR_RAW);

        snprintf(zone, sizeof(zone), "wstart%d%s", rep + 1, proc ? "p" : "r");
        t0 = bh_now_ns();
        if (proxy_add_zone(px, zone, "64M", sock, sizeof(sock)) != 0) {
            snprintf(err, errlen, "the proxy refused ADD %s", zone);
            return -EIO;
        }
        out[1] = first_call(sock, proc, t0);
        if (out[1] < 0) {
            snprintf(err, errlen, "no first call in the new zone %s within 10 s", zone);
            return -EIO;
        }
        out[0] = floor_call(sock, proc);
        if (out[0] < 0) {
            snprintf(err, errlen, "first calls against zone %s's serving worker failed", zone);
            return -EIO;
        }
        out[2] = restart_once(px, zone, sock, proc, t0, err, errlen);
        if (out[2] < 0)
            return -EIO;
        snprintf(req, sizeof(req), "REMOVE %s", zone);
        if (proxy_admin(px, req, reply, sizeof(reply)) != 0) {
            snprintf(err, errlen, "%s failed: %s", req, reply);
            return -EIO;
        }
    }
    return 0;
}

static void emit(int i, const double *vals, int reps)
{
    static const struct {
        const char *id, *label, *ref, *note;
    } rows[NF] = {
        {"wstart.floor.raw", "floor: connect + HELLO, worker already serving", NULL,
         "median of 9 per repetition"},
        {"wstart.raw", "worker start: ADD -> first HELLO reply", "wstart.floor.raw",
         "a new zone: the supervisor forks its worker, which starts the backend, enters the "
         "sandbox and accepts"},
        {"wrestart.raw", "restart: SIGKILL worker -> first HELLO reply", "wstart.floor.raw",
         "the worker had served for 1.2 s (younger ones restart with back-off)"},
        {"wstart.floor.proc", "floor: new process cuInit+cuMemGetInfo, serving", NULL,
         "fork+exec of this program, libvgpu connects; median of 9 per repetition"},
        {"wstart.proc", "worker start: ADD -> new process's cuMemGetInfo", "wstart.floor.proc",
         NULL},
        {"wrestart.proc", "restart: SIGKILL -> new process's cuMemGetInfo", "wstart.floor.proc",
         NULL},
    };
    char cpus[96];
    struct bh_row row = {0};

    snprintf(cpus, sizeof(cpus), "client cpu%d, server cpu%d", bh_cpu_a(), bh_cpu_b());
    bh_row_reps(&row, vals, (size_t)reps);
    row.id = rows[i].id;
    row.fig = "8";
    row.label = rows[i].label;
    row.cpus = cpus;
    row.unit = "ms";
    row.ref = rows[i].ref;
    row.paired = rows[i].ref != NULL; /* measured in the same repetition as its floor */
    row.ref_what = rows[i].ref ? "floor" : NULL;
    row.note = rows[i].note;
    bh_emit(&row);
}

static void all_missing(const char *reason)
{
    bh_emit_missing("wstart", "8", "worker start and restart", "unavailable", reason);
}

int main(int argc, char **argv)
{
    static double vals[NF][1000];
    struct proxy px;
    char err[400] = "";
    int reps = bh_reps();
    ssize_t n;

    if (argc == 2 && strcmp(argv[1], "--first-call") == 0)
        return first_call_child();
    if (argc != 2) {
        fprintf(stderr, "usage: %s PROXY_BINARY\n", argv[0]);
        return 2;
    }
    n = readlink("/proc/self/exe", g_self, sizeof(g_self) - 1);
    if (n <= 0) {
        perror("bench: readlink /proc/self/exe");
        return 1;
    }
    g_self[n] = '\0';
    if (bh_pin(bh_cpu_a()) != 0)
        return 1;
    if (proxy_start(&px, argv[1], NULL, bh_cpu_b()) != 0) {
        snprintf(err, sizeof(err), "%s did not start (stderr names its log)", argv[1]);
        all_missing(err);
        return 1;
    }
    bh_log("worker start/restart: %s (pid %d, dir %s)", argv[1], (int)px.pid, px.dir);
    for (int r = -1; r < reps; r++) {
        double v[NF];
        if (one_rep(&px, r, v, err, sizeof(err)) != 0) {
            fprintf(stderr, "bench: %s (proxy log %s)\n", err, px.log);
            all_missing(err);
            proxy_stop(&px);
            return 1;
        }
        for (int i = 0; r >= 0 && i < NF; i++)
            vals[i][r] = v[i];
    }
    proxy_stop(&px);
    for (int i = 0; i < NF; i++)
        emit(i, vals[i], reps);
    bh_emit_missing("wrestart.fault", "8", "restart after a context-losing fault", "skipped",
                    "the simulated GPU keeps a kernel fault to the faulting session "
                    "(fault_loses_context = 0): its workers are never retired, so SIGKILL is "
                    "the stub's restart case; with --backend cuda a fault retires the worker");
    return 0;
}
