/* ring_bench.c - figures 1 and 2: the IDM ring round trip (64-byte messages, no proxy logic)
 * and bulk streaming through the IDM window, each next to its floor measured by the same code in
 * the same run: a bare shared-memory flag / eventfd ping-pong for the ring, memcpy for the window.
 * Two processes (client and server) talk over the POSIX transport, each pinned to a CPU. */
#include "harness.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "idm.h"
#include "idm_transport.h"
#include "ring_echo.h"

/* ---------------------------------------------------------------------------------------- */
/* Floors: a bare shared-memory flag ping-pong and an eventfd ping-pong between two processes. */

struct flag_page {
    _Alignas(64) _Atomic uint64_t ping;
    _Alignas(64) _Atomic uint64_t pong;
    _Alignas(64) _Atomic int yield; /* same-core placement: yield inside the spin loop */
};

static struct flag_page *g_flags;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int flag_server(void *arg)
{
    uint64_t seen = 0;
    int yield = atomic_load_explicit(&g_flags->yield, memory_order_relaxed);

    (void)arg;
    for (;;) {
        uint64_t v;
        /* Pairs with the client's store-release of ping. */
        while ((v = atomic_load_explicit(&g_flags->ping, memory_order_acquire)) == seen) {
            if (yield)
                sched_yield();
            else
                cpu_relax();
        }
        if (v == UINT64_MAX)
            return 0;
        seen = v;
        /* Pairs with the client's load-acquire of pong. */
        atomic_store_explicit(&g_flags->pong, v, memory_order_release);
    }
}

static int efd_req = -1, efd_rep = -1;

static int efd_server(void *arg)
{
    (void)arg;
    for (;;) {
        uint64_t v;
        if (read(efd_req, &v, sizeof(v)) != sizeof(v)) {
            perror("bench: eventfd server: read");
            return 1;
        }
        if (v >= 1000000)
            return 0; /* stop */
        v = 1;
        if (write(efd_rep, &v, sizeof(v)) != sizeof(v)) {
            perror("bench: eventfd server: write");
            return 1;
        }
    }
}


/* Figure 1. Each variant (a floor or the IDM ring, in one placement) runs one repetition at a
 * time with a fresh server; repetitions of all variants are interleaved, so each floor and the
 * ring it is compared with see the same machine load. */
enum { V_FLAG, V_EFD, V_IDM };

struct variant {
    const char *id, *label, *ref;
    int kind, same_core, yield; /* yield: the flag variant's spin loops call sched_yield */
    uint32_t spin;              /* V_IDM: spin budget, SPIN_DEFAULT for the transport's */
    double rep_med[1000];
    int nrep;
    struct bh_samples all;
    int rc;
};

/* Runs the round-trip loop for `ns`; adds samples to rs when it is not NULL. */
static int rt_loop(struct variant *v, struct session *s, uint64_t ns, struct bh_samples *rs)
{
    uint64_t start = bh_now_ns(), now = start;
    static uint64_t seq;

    while (now - start < ns) {
        uint64_t t0 = now;
        seq++;
        if (v->kind == V_EFD) {
            uint64_t x = 1;
            if (write(efd_req, &x, sizeof(x)) != sizeof(x) ||
                read(efd_rep, &x, sizeof(x)) != sizeof(x)) {
                perror("bench: eventfd client");
                return -EIO;
            }
        } else if (v->kind == V_FLAG) {
            /* Pairs with the server's load-acquire of ping. */
            atomic_store_explicit(&g_flags->ping, seq, memory_order_release);
            /* Pairs with the server's store-release of pong. */
            while (atomic_load_explicit(&g_flags->pong, memory_order_acquire) != seq) {
                if (v->yield)
                    sched_yield();
                else
                    cpu_relax();
            }
        } else {
            struct bench_msg msg = {.cmd = CMD_PING, .a = seq};
            int rc = session_call(s, &msg);
            if (rc != 0)
                return rc;
            if (msg.a != seq) {
                fprintf(stderr, "bench: ping %llu answered with %llu\n",
                        (unsigned long long)seq, (unsigned long long)msg.a);
                return -EPROTO;
            }
        }
        now = bh_now_ns();
        if (rs)
            bh_samples_add(rs, (double)(now - t0) / 1000.0);
    }
    return 0;
}

/* One repetition: start the server, warm up, measure, stop the server. */
static int variant_rep(struct variant *v, uint64_t warm_ns, uint64_t rep_ns)
{
    int srv_cpu = v->same_core ? bh_cpu_a() : bh_cpu_b();
    struct bh_samples rs;
    struct session s;
    pid_t pid = -1;
    int rc, rc2 = 0;

    memset(&s, 0, sizeof(s));
    if (v->kind == V_IDM) {
        rc = session_open(&s, srv_cpu, v->spin);
        if (rc != 0)
            return rc;
    } else {
        if (v->kind == V_EFD) {
            efd_req = eventfd(0, EFD_CLOEXEC);
            efd_rep = eventfd(0, EFD_CLOEXEC);
            if (efd_req < 0 || efd_rep < 0) {
                rc = -errno;
                perror("bench: eventfd");
                goto out_fds;
            }
        } else {
            atomic_store(&g_flags->ping, 0);
            atomic_store(&g_flags->pong, 0);
            atomic_store(&g_flags->yield, v->yield);
        }
        pid = bh_spawn(srv_cpu, v->kind == V_EFD ? efd_server : flag_server, NULL);
        if (pid < 0) {
            rc = pid;
            goto out_fds;
        }
    }
    rc = bh_samples_init(&rs, 4000000);
    if (rc == 0) {
        rc = rt_loop(v, &s, warm_ns, NULL);
        if (rc == 0)
            rc = rt_loop(v, &s, rep_ns, &rs);
        if (rc == 0 && rs.n > 0) {
            struct bh_stats st;
            for (size_t i = 0; i < rs.n; i++)
                bh_samples_add(&v->all, rs.v[i]);
            bh_stats(rs.v, rs.n, &st);
            v->rep_med[v->nrep++] = st.median;
        }
        bh_samples_free(&rs);
    }
    /* stop the server */
    if (v->kind == V_IDM) {
        rc2 = session_close(&s);
    } else {
        if (v->kind == V_EFD) {
            uint64_t x = 1000000;
            if (write(efd_req, &x, sizeof(x)) != sizeof(x))
                perror("bench: eventfd stop");
        } else {
            atomic_store_explicit(&g_flags->ping, UINT64_MAX, memory_order_release);
        }
        if (bh_wait(pid) != 0) {
            fprintf(stderr, "bench: floor server for %s failed\n", v->id);
            rc2 = -EIO;
        }
    }
out_fds:
    if (efd_req >= 0)
        close(efd_req);
    if (efd_rep >= 0)
        close(efd_rep);
    efd_req = efd_rep = -1;
    return rc ? rc : rc2;
}

static void variant_emit(struct variant *v)
{
    struct bh_row row = {0};
    struct bh_stats calls;
    char cpus[96], note[160];
    const char *env = getenv("IDM_SPIN_US");

    if (v->rc != 0 || v->nrep == 0) {
        bh_emit_missing(v->id, "1", v->label, "unavailable",
                        v->rc ? strerror(-v->rc) : "no repetition completed");
        return;
    }
    snprintf(cpus, sizeof(cpus), "client cpu%d, server cpu%d", bh_cpu_a(),
             v->same_core ? bh_cpu_a() : bh_cpu_b());
    if (v->kind != V_IDM)
        snprintf(note, sizeof(note), "no-op floor (no ring)");
    else if (v->spin == SPIN_DEFAULT)
        snprintf(note, sizeof(note), "spin budget: %s%s", env ? "IDM_SPIN_US=" : "",
                 env ? env : "transport default (IDM_SPIN_US unset)");
    else
        snprintf(note, sizeof(note), "spin budget %u us (blocking wait)", v->spin);
    bh_row_reps(&row, v->rep_med, (size_t)v->nrep);
    row.paired = v->ref != NULL; /* interleaved with its floor, repetition by repetition */
    bh_stats(v->all.v, v->all.n, &calls);
    row.id = v->id;
    row.fig = "1";
    row.label = v->label;
    row.cpus = cpus;
    row.unit = "us";
    row.has_call = 1;
    row.call_p50 = calls.median;
    row.call_p99 = calls.p99;
    row.rate = row.rep.median > 0 ? 1e6 / row.rep.median : 0;
    row.ref = v->ref;
    row.ref_what = v->ref ? "no-op floor" : NULL;
    row.note = note;
    bh_emit(&row);
}

static int ring_figure(void)
{
    static struct variant vs[] = {
        {.id = "floor.spin.cross", .label = "floor: shared-memory flag ping-pong, spin",
         .kind = V_FLAG},
        {.id = "floor.yield.cross", .label = "floor: shared-memory flag ping-pong, spin+yield",
         .kind = V_FLAG, .yield = 1},
        {.id = "floor.spin.same", .label = "floor: shared-memory flag ping-pong, spin+yield",
         .kind = V_FLAG, .same_core = 1, .yield = 1},
        {.id = "floor.efd.cross", .label = "floor: eventfd ping-pong (blocking)", .kind = V_EFD},
        {.id = "floor.efd.same", .label = "floor: eventfd ping-pong (blocking)", .kind = V_EFD,
         .same_core = 1},
        {.id = "ring.spin.cross", .label = "IDM ring round trip 64 B, adaptive wait",
         .kind = V_IDM, .spin = SPIN_DEFAULT, .ref = "floor.spin.cross"},
        {.id = "ring.spin.same", .label = "IDM ring round trip 64 B, adaptive wait",
         .kind = V_IDM, .spin = SPIN_DEFAULT, .same_core = 1, .ref = "floor.spin.same"},
        {.id = "ring.block.cross", .label = "IDM ring round trip 64 B, IDM_SPIN_US=0",
         .kind = V_IDM, .spin = 0, .ref = "floor.efd.cross"},
        {.id = "ring.block.same", .label = "IDM ring round trip 64 B, IDM_SPIN_US=0",
         .kind = V_IDM, .spin = 0, .same_core = 1, .ref = "floor.efd.same"},
    };
    const size_t nv = sizeof(vs) / sizeof(vs[0]);
    int reps = bh_reps();
    uint64_t rep_ns = bh_rep_ns();
    int fails = 0;

    for (size_t i = 0; i < nv; i++) {
        vs[i].nrep = 0;
        vs[i].rc = bh_samples_init(&vs[i].all, 4000000);
    }
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < nv; i++)
            if (vs[i].rc == 0)
                vs[i].rc = variant_rep(&vs[i], r == 0 ? rep_ns / 4 : rep_ns / 10, rep_ns);
    for (size_t i = 0; i < nv; i++) {
        variant_emit(&vs[i]);
        fails += vs[i].rc != 0;
        bh_samples_free(&vs[i].all);
    }
    return fails ? -EIO : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Figure 2: streaming through the window vs memcpy. */

/* Chunk size: BENCH_CHUNK_KB, else a quarter of the transfer between 64 KiB and 1 MiB (at
 * least four chunks in flight for small transfers, cache-sized chunks for large ones). */
static uint64_t chunk_bytes(uint64_t size)
{
    const char *s = getenv("BENCH_CHUNK_KB");
    long kb = s ? atol(s) : 0;
    uint64_t c = size / 4;

    if (kb > 0)
        return (uint64_t)kb * 1024;
    if (c < 64 * 1024)
        c = 64 * 1024;
    if (c > MIB)
        c = MIB;
    return c;
}

static void emit_gbps(const char *id, const char *label, const char *cpus, double *gbps,
                      int reps, const char *ref, const char *detail, const char *note)
{
    struct bh_row row = {0};

    bh_row_reps(&row, gbps, (size_t)reps);
    row.paired = ref != NULL; /* window and memcpy repetitions alternate */
    row.id = id;
    row.fig = "2";
    row.label = label;
    row.cpus = cpus;
    row.unit = "GB/s";
    row.ref = ref;
    row.ref_what = ref ? "memcpy" : NULL;
    row.detail = detail;
    row.note = note;
    bh_emit(&row);
}

/* One transfer of `size` bytes from src through the window into the server's buffer, in
 * pipelined chunks: up to window/chunk chunks in flight. */
static int stream_once(struct session *s, const uint8_t *src, uint64_t size, uint8_t *win,
                       uint64_t wsize, uint64_t chunk)
{
    uint32_t slots = (uint32_t)(wsize / chunk);
    uint32_t ring = idm_conn_geometry(s->c)->ring_slots;
    uint64_t sent = 0, inflight = 0, first_seq = s->seq + 1, next_reply = first_seq;
    uint64_t nchunks = (size + chunk - 1) / chunk;
    int rc;

    if (slots > ring - 1)
        slots = ring - 1;
    if (slots == 0)
        return -EINVAL;
    for (uint64_t i = 0; i < nchunks || inflight > 0;) {
        if (i < nchunks && inflight < slots) {
            uint64_t len = size - sent < chunk ? size - sent : chunk;
            uint64_t off = (i % slots) * chunk;
            struct bench_msg msg = {.cmd = CMD_CHUNK, .a = off, .b = len, .c = sent};
            struct idm_hdr h = {0};
            memcpy(win + off, src + sent, len);
            h.op = IDM_OP_HELLO;
            h.seq = ++s->seq;
            rc = idm_send(s->c, &h, &msg, sizeof(msg), NULL, 0);
            if (rc != 0) {
                fprintf(stderr, "bench: idm_send (chunk) failed: %s\n", strerror(-rc));
                return rc;
            }
            sent += len;
            inflight++;
            i++;
            continue;
        }
        rc = idm_recv(s->c, &s->m, -1);
        if (rc != 0) {
            fprintf(stderr, "bench: idm_recv (chunk) failed: %s (%s)\n", strerror(-rc),
                    idm_conn_error(s->c));
            return rc;
        }
        if (s->m.hdr.seq != next_reply) {
            fprintf(stderr, "bench: chunk reply out of order: %llu, want %llu\n",
                    (unsigned long long)s->m.hdr.seq, (unsigned long long)next_reply);
            return -EPROTO;
        }
        next_reply++;
        inflight--;
    }
    return 0;
}

static int window_figure(void)
{
    static const uint64_t sizes[] = {1 * MIB, 64 * MIB};
    int reps = bh_reps();
    uint64_t rep_ns = bh_rep_ns();
    uint8_t *src, *dst, *win;
    uint64_t wsize;
    struct session s;
    char cpus_memcpy[64], cpus[96], note[160], detail[48];
    int rc;

    src = mmap(NULL, WINDOW_MAX_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
               0);
    dst = mmap(NULL, WINDOW_MAX_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
               0);
    if (src == MAP_FAILED || dst == MAP_FAILED) {
        perror("bench: mmap buffers");
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < WINDOW_MAX_BYTES / 8; i++)
        ((uint64_t *)src)[i] = i * 0x9E3779B97F4A7C15ull;
    memset(dst, 1, WINDOW_MAX_BYTES);

    rc = session_open(&s, bh_cpu_b(), SPIN_DEFAULT);
    if (rc != 0)
        goto out_bufs;
    win = idm_window(s.c, &wsize);
    snprintf(cpus_memcpy, sizeof(cpus_memcpy), "cpu%d", bh_cpu_a());
    snprintf(cpus, sizeof(cpus), "client cpu%d, server cpu%d", bh_cpu_a(), bh_cpu_b());

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]) && rc == 0; k++) {
        uint64_t size = sizes[k];
        uint64_t chunk = chunk_bytes(size) < wsize ? chunk_bytes(size) : wsize;
        double g_mem[1000], g_win[1000];
        char id_mem[32], id_win[32], l_mem[64], l_win[80];
        struct bench_msg sum = {.cmd = CMD_SUM, .a = size};

        snprintf(note, sizeof(note), "window %llu KiB, %llu KiB chunks pipelined; client copies "
                 "in, server copies out", (unsigned long long)(wsize / 1024),
                 (unsigned long long)(chunk / 1024));
        snprintf(detail, sizeof(detail), "%llu KiB chunks", (unsigned long long)(chunk / 1024));
        snprintf(id_mem, sizeof(id_mem), "memcpy.%lluM", (unsigned long long)(size / MIB));
        snprintf(id_win, sizeof(id_win), "window.%lluM", (unsigned long long)(size / MIB));
        snprintf(l_mem, sizeof(l_mem), "memcpy %llu MiB (same run)",
                 (unsigned long long)(size / MIB));
        snprintf(l_win, sizeof(l_win), "IDM window stream %llu MiB",
                 (unsigned long long)(size / MIB));
        /* Alternate memcpy and window repetitions so both see the same machine load. */
        for (int r = -1; r < reps && rc == 0; r++) {
            uint64_t start = bh_now_ns(), now = start, bytes = 0;
            uint64_t budget = r < 0 ? rep_ns / 4 : rep_ns;
            do {
                memcpy(dst, src, size);
                __asm__ volatile("" ::: "memory"); /* keep every copy */
                bytes += size;
                now = bh_now_ns();
            } while (now - start < budget);
            if (r >= 0)
                g_mem[r] = (double)bytes / (double)(now - start);
            start = bh_now_ns();
            now = start;
            bytes = 0;
            do {
                rc = stream_once(&s, src, size, win, wsize, chunk);
                if (rc != 0)
                    break;
                bytes += size;
                now = bh_now_ns();
            } while (now - start < budget);
            if (r >= 0)
                g_win[r] = (double)bytes / (double)(now - start);
        }
        if (rc != 0)
            break;
        rc = session_call(&s, &sum);
        if (rc != 0)
            break;
        if (sum.a != echo_fnv1a(src, size)) {
            fprintf(stderr, "bench: window stream of %llu bytes arrived corrupted\n",
                    (unsigned long long)size);
            rc = -EIO;
            break;
        }
        emit_gbps(id_mem, l_mem, cpus_memcpy, g_mem, reps, NULL, NULL,
                  "no-op floor: one memcpy of the whole buffer");
        emit_gbps(id_win, l_win, cpus, g_win, reps, id_mem, detail, note);
    }
    {
        int rc2 = session_close(&s);
        if (rc == 0)
            rc = rc2;
    }
out_bufs:
    munmap(src, WINDOW_MAX_BYTES);
    munmap(dst, WINDOW_MAX_BYTES);
    return rc;
}

int main(int argc, char **argv)
{
    int fails = 0;
    int only = argc > 1 ? atoi(argv[1]) : 0; /* 1 or 2: one figure only */

    g_flags = mmap(NULL, sizeof(*g_flags), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
                   0);
    if (g_flags == MAP_FAILED) {
        perror("bench: mmap flag page");
        return 1;
    }
    if (bh_pin(bh_cpu_a()) != 0)
        return 1;
    bh_log("ring/window benchmarks: client on cpu%d, cross-core server on cpu%d, %d x %llu ms",
           bh_cpu_a(), bh_cpu_b(), bh_reps(), (unsigned long long)(bh_rep_ns() / 1000000));

    if (only == 0 || only == 1)
        fails += ring_figure() != 0;
    if ((only == 0 || only == 2) && window_figure() != 0) {
        bh_emit_missing("window", "2", "IDM window streaming", "unavailable",
                        "a window measurement failed (its messages are on stderr)");
        fails++;
    }
    if (fails)
        fprintf(stderr, "bench: ring_bench: %d measurement(s) failed\n", fails);
    return fails ? 1 : 0;
}
