/* fuzz_worker.c - the dispatch fuzzer's corpus replayed against a real worker: a gpu_proxy_stub
 * process (zones fuzzA and fuzzB, each its own sandboxed worker) gets every record of every
 * corpus file as a request on a real IDM connection to zone fuzzA, and every reply is read.
 * After each file: zone fuzzA's worker is the same process (a crash is a failure, even though
 * the supervisor would restart it), the fuzz session's memory came back, and the proxy's log
 * (its workers' stderr) holds no sanitizer report. At the end: zone fuzzB's data, written
 * before, is intact and its client still works, and so do a second client of zone fuzzA.
 * Record format and handle substitution as in fuzz_dispatch.c: [u16 op][u16 len][payload]; a
 * payload word 0xFFFFFFFFFFFFFFxx becomes the xx-th handle or device address known so far
 * (fuzzB's context, stream and memory first); op 0xFFFF writes its payload after a u32 offset
 * into the connection's window.
 * Usage: fuzz_worker PATH/TO/gpu_proxy_stub [CORPUS_DIR]   (default: tests/proxy/corpus) */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fuzz_records.h"
#include "proxy_client.h"

#ifndef FUZZ_CORPUS_DIR
#error "build with -DFUZZ_CORPUS_DIR=\"<repository>/tests/proxy/corpus\""
#endif

#define OTHER_BYTES 8192u
#define INPUT_MAX_BYTES (1u << 20)
#define SETTLE_MS 5000   /* how long a closed session may take to release its objects */

static char proxy_bin[512];
static const char *corpus_dir = FUZZ_CORPUS_DIR;
static char dir[256], log_path[300];
static pid_t proxy_pid = -1;
static int a_pid, b_pid;

/* A client whose data must survive the fuzzing: zone fuzzB's, and a second one of fuzzA. */
struct other {
    const char *zone;
    uint8_t fill;
    struct pc p;
    idm_handle ctx, stream;
    idm_dptr mem;
};
static struct other zb = {.zone = "fuzzB", .fill = 0xB5};
static struct other za2 = {.zone = "fuzzA", .fill = 0xA5};

static void zone_path(char *out, size_t cap, const char *zone)
{
    snprintf(out, cap, "%s/%s.sock", dir, zone);
}

static int other_setup(struct other *o)
{
    struct idm_req_STREAM_CREATE sc = {.flags = 0};
    struct idm_rep_STREAM_CREATE sr = {.stream = 0};
    uint8_t buf[OTHER_BYTES];
    char path[300];

    zone_path(path, sizeof(path), o->zone);
    memset(buf, o->fill, sizeof(buf));
    if (pc_connect(&o->p, path) != 0 || pc_ctx(&o->p, &o->ctx) != 0 ||
        pc_alloc(&o->p, o->ctx, OTHER_BYTES, &o->mem) != 0 ||
        pc_htod(&o->p, o->mem, buf, OTHER_BYTES) != 0)
        return -1;
    sc.ctx = o->ctx;
    if (pc_call(&o->p, IDM_OP_STREAM_CREATE, &sc, sizeof(sc), NULL, 0, &sr, sizeof(sr), NULL))
        return -1;
    o->stream = sr.stream;
    return 0;
}

/* The other client's memory still holds its fill, and its context, stream and allocator work. */
static void other_check(struct other *o)
{
    struct idm_req_STREAM_QUERY sq = {.stream = o->stream};
    uint8_t buf[OTHER_BYTES];
    idm_dptr d;

    assert_int_equal(pc_dtoh(&o->p, buf, o->mem, OTHER_BYTES), 0);
    for (unsigned i = 0; i < OTHER_BYTES; i++)
        if (buf[i] != o->fill)
            fail_msg("zone %s: byte %u of its allocation is %#x, want %#x", o->zone, i, buf[i],
                     o->fill);
    assert_int_equal(pc_call(&o->p, IDM_OP_STREAM_QUERY, &sq, sizeof(sq), NULL, 0, NULL, 0,
                             NULL), 0);
    assert_int_equal(pc_alloc(&o->p, o->ctx, 4096, &d), 0);
    assert_int_equal(pc_free(&o->p, d), 0);
}

/* The first line of the proxy's log (its workers' stderr) that reports a sanitizer finding or
 * a worker crash, in hit; 1 if there is one. */
static int log_scan(char *hit, size_t cap)
{
    static const char *const bad[] = {"AddressSanitizer", "LeakSanitizer",
                                      "UndefinedBehaviorSanitizer", "runtime error:",
                                      "ended unexpectedly"};
    char line[1024];
    FILE *f = fopen(log_path, "r");

    if (f == NULL) {
        snprintf(hit, cap, "cannot read the proxy's log %s: %s", log_path, strerror(errno));
        return 1;
    }
    hit[0] = '\0';
    while (!hit[0] && fgets(line, sizeof(line), f))
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            if (strstr(line, bad[i]))
                snprintf(hit, cap, "%s", line);
    fclose(f);
    if (hit[0]) {
        char cmd[400];
        snprintf(cmd, sizeof(cmd), "tail -n 60 '%s' >&2", log_path);
        fprintf(stderr, "---- proxy log (%s), last lines ----\n", log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "(could not show it)\n");
    }
    return hit[0] != '\0';
}

static void log_check(const char *after)
{
    char hit[1024];

    if (log_scan(hit, sizeof(hit)))
        fail_msg("after %s the proxy's log says: %s", after, hit);
}

/* Records the handle or device address a successful reply hands out (as fuzz_dispatch.c). */
static void harvest(uint16_t op, const uint8_t *rep, uint32_t rep_len, uint64_t *known,
                    unsigned *nknown)
{
    uint64_t v;

    if (!fuzz_hands_out(op))
        return;
    if (rep_len < sizeof(v) || *nknown >= 256)
        return;
    memcpy(&v, rep, sizeof(v));
    known[(*nknown)++] = v;
}

/* Sends every record of one input to zone fuzzA on a fresh connection. Returns the number of
 * requests answered; stops early when the worker cuts the connection (it may, on a protocol
 * violation; whether it survived is checked by the caller). */
static unsigned replay(const uint8_t *data, size_t size)
{
    uint64_t known[256] = {zb.ctx, zb.stream, zb.mem};
    unsigned nknown = 3, answered = 0;
    char path[300];
    struct pc p;
    struct fuzz_input in = {.data = data, .size = size, .known = known, .nknown = &nknown};
    uint8_t payload[FUZZ_SLOT_SIZE];
    uint16_t op, len;

    zone_path(path, sizeof(path), "fuzzA");
    assert_int_equal(pc_connect(&p, path), 0);
    /* Every record fuzz_dispatch accepts must fit one request slot of the real connection. */
    assert_true(idm_conn_geometry(p.c)->slot_size >= FUZZ_SLOT_SIZE);
    in.window = p.win;
    in.window_size = p.wsize;
    while (fuzz_next(&in, &op, payload, &len)) {
        uint8_t rep[FUZZ_SLOT_SIZE];
        uint32_t rep_len = 0;
        int rc;

        rc = pc_call(&p, op, payload, len, NULL, 0, rep, sizeof(rep), &rep_len);
        if (rc == -ETIMEDOUT || rc == -EAGAIN)
            fail_msg("request %u (op %u, %u bytes) got no reply within 30 s", answered, op, len);
        if (rc < 0)
            break; /* cut off */
        answered++;
        if (rc == 0)
            harvest(op, rep, rep_len < sizeof(rep) ? rep_len : sizeof(rep), known, &nknown);
    }
    pc_close(&p);
    return answered;
}

/* Waits until zone fuzzA holds only its second client's allocation and that one client. */
static void wait_fuzz_session_released(const char *name)
{
    long long used = -1;
    int clients = -1;

    for (int i = 0; i < SETTLE_MS / 20; i++) {
        if (admin_zone(dir, "fuzzA", &used, &clients) == 0 && clients == 1 &&
            used == (long long)OTHER_BYTES)
            return;
        usleep(20000);
    }
    fail_msg("after %s zone fuzzA still holds %lld bytes for %d clients (want %u for 1)", name,
             used, clients, OTHER_BYTES);
}

static void worker_unchanged(const char *zone, int want_pid, const char *after)
{
    unsigned restarts = 0;
    int pid = 0;

    assert_int_equal(admin_zone_worker(dir, zone, &pid, &restarts), 0);
    if (pid != want_pid || restarts != 0)
        fail_msg("after %s zone %s's worker is pid %d with %u restarts (was %d): it crashed",
                 after, zone, pid, restarts, want_pid);
}

static int read_file(const char *path, uint8_t *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        return -errno;
    *len = fread(buf, 1, cap, f);
    fclose(f);
    return 0;
}

static int is_input(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static void test_fuzz_worker_corpus(void **state)
{
    static uint8_t data[INPUT_MAX_BYTES];
    struct dirent **names;
    int n = scandir(corpus_dir, &names, is_input, alphasort);
    unsigned total = 0;

    (void)state;
    if (n < 0)
        fail_msg("cannot list the corpus %s: %s", corpus_dir, strerror(errno));
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
        char path[1024];
        size_t len = 0;

        snprintf(path, sizeof(path), "%s/%s", corpus_dir, names[i]->d_name);
        assert_int_equal(read_file(path, data, sizeof(data), &len), 0);
        total += replay(data, len);
        log_check(names[i]->d_name);
        worker_unchanged("fuzzA", a_pid, names[i]->d_name);
        wait_fuzz_session_released(names[i]->d_name);
        free(names[i]);
    }
    free(names);
    printf("replayed %d corpus files from %s: %u requests answered by zone fuzzA's worker %d\n",
           n, corpus_dir, total, a_pid);
}

static void test_fuzz_worker_others_intact(void **state)
{
    (void)state;
    other_check(&zb);
    other_check(&za2);
    worker_unchanged("fuzzB", b_pid, "the corpus");
    worker_unchanged("fuzzA", a_pid, "the corpus");
    log_check("the corpus");
}

static int group_setup(void **state)
{
    const char *extra[] = {"--zone", "fuzzA:64M", "--zone", "fuzzB:1M", "--kernel-watchdog",
                           "100000000", NULL};
    unsigned r;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/gpu-proxy-fuzzw.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(log_path, sizeof(log_path), "%s/proxy.log", dir);
    proxy_pid = proxy_start_log(proxy_bin, dir, extra, log_path);
    if (proxy_pid <= 0) {
        fprintf(stderr, "the proxy did not start; its log: %s\n", log_path);
        return -1;
    }
    if (other_setup(&zb) != 0 || other_setup(&za2) != 0 ||
        admin_zone_worker(dir, "fuzzA", &a_pid, &r) != 0 ||
        admin_zone_worker(dir, "fuzzB", &b_pid, &r) != 0 || a_pid <= 0 || b_pid <= 0) {
        fprintf(stderr, "setting up zone fuzzB's and fuzzA's second client failed (log %s)\n",
                log_path);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    int rc = 0;

    (void)state;
    pc_close(&zb.p);
    pc_close(&za2.p);
    if (proxy_pid > 0 && proxy_stop(proxy_pid) != 0) {
        fprintf(stderr, "the proxy did not exit cleanly; its log: %s\n", log_path);
        rc = -1;
    }
    if (proxy_pid > 0) {
        char hit[1024];
        if (log_scan(hit, sizeof(hit))) {
            fprintf(stderr, "the proxy's log says: %s", hit);
            rc = -1;
        }
    }
    if (rc == 0 && getenv("FUZZ_KEEP_LOG") == NULL) {
        unlink(log_path);
        rmdir(dir);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz_worker_corpus),
        cmocka_unit_test(test_fuzz_worker_others_intact),
    };

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PATH/TO/gpu_proxy_stub [CORPUS_DIR]\n", argv[0]);
        return 2;
    }
    snprintf(proxy_bin, sizeof(proxy_bin), "%s", argv[1]);
    if (argc == 3)
        corpus_dir = argv[2];
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
