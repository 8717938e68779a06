/* fuzz_dispatch.c - libFuzzer target for gpu_proxy's dispatch: arbitrary request sequences
 * against one zone's session (stub backend, in-process, no transport), checking after each
 * input that another zone's memory, allocations, handles and quota are untouched. Leaks are
 * caught by LeakSanitizer because every input's session is closed again.
 * Input: the records of fuzz_records.h (shared with fuzz_worker.c, which replays the corpus
 * against a live worker); every other request is sent unanswered (IDM_F_NOREPLY). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dispatch.h"
#include "fuzz_records.h"
#include "log.h"
#include "ptx/ptx.h"
#include "zone.h"

#define WINDOW_SIZE (64u << 10)
#define SLOT_SIZE FUZZ_SLOT_SIZE
#define B_BYTES 8192u

static struct zone_registry reg;
static struct zone *za, *zb;
static struct session *sb;
static uint8_t *window;
static idm_dptr b_mem;
static idm_handle b_ctx, b_stream;
static uint32_t b_live, b_allocs;
static uint64_t b_used;

static int32_t call(struct session *s, uint16_t op, const void *req, uint32_t len)
{
    struct idm_hdr h;
    uint32_t rep_len;
    int32_t status = -1;

    memset(&h, 0, sizeof(h));
    h.op = op;
    h.len = len;
    if (dispatch_request(s, &h, req, &rep_len, &status) != 0)
        return -1;
    return status;
}

static void setup_zone_b(void)
{
    struct idm_req_PRIMARY_CTX_RETAIN pr = {.device = 0};
    struct idm_req_MEM_ALLOC ma;
    struct idm_req_STREAM_CREATE sc;
    struct idm_req_MEMSET ms;

    if (call(sb, IDM_OP_PRIMARY_CTX_RETAIN, &pr, sizeof(pr)) != 0)
        abort();
    b_ctx = ((struct idm_rep_PRIMARY_CTX_RETAIN *)sb->rbuf)->ctx;
    memset(&ma, 0, sizeof(ma));
    ma.ctx = b_ctx;
    ma.size = B_BYTES;
    if (call(sb, IDM_OP_MEM_ALLOC, &ma, sizeof(ma)) != 0)
        abort();
    b_mem = ((struct idm_rep_MEM_ALLOC *)sb->rbuf)->dptr;
    memset(&ms, 0, sizeof(ms));
    ms.dst = b_mem;
    ms.count = B_BYTES;
    ms.height = 1;
    ms.value = 0xB5;
    ms.elem_size = 1;
    if (call(sb, IDM_OP_MEMSET, &ms, sizeof(ms)) != 0)
        abort();
    memset(&sc, 0, sizeof(sc));
    sc.ctx = b_ctx;
    if (call(sb, IDM_OP_STREAM_CREATE, &sc, sizeof(sc)) != 0)
        abort();
    b_stream = ((struct idm_rep_STREAM_CREATE *)sb->rbuf)->stream;
    b_live = sb->ht.live;
    b_allocs = sb->at.n;
    b_used = zb->used;
}

static void check_zone_b(void)
{
    uint8_t buf[B_BYTES];
    long i = atab_find(&sb->at, b_mem, B_BYTES);

    if (sb->ht.live != b_live || sb->at.n != b_allocs || zb->used != b_used || i < 0 ||
        htab_lookup(&sb->ht, b_ctx, HT_CTX) == NULL ||
        htab_lookup(&sb->ht, b_stream, HT_STREAM) == NULL || sb->sticky != 0) {
        fprintf(stderr, "zone B's state changed\n");
        abort();
    }
    if (backend_stub.memcpy_dtoh(sb->bz, NULL, buf, sb->at.v[i].baddr, B_BYTES) != 0)
        abort();
    for (unsigned k = 0; k < B_BYTES; k++) {
        if (buf[k] != 0xB5) {
            fprintf(stderr, "zone B's memory changed at byte %u\n", k);
            abort();
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(getenv("FUZZ_LOG") ? LOG_TRACE : LOG_OFF);
    zreg_init(&reg, &backend_stub);
    char why[4096]; /* the kernels it launches run translated, as in a stub worker */
    if (ptx_translator_load(PTX_JIT_SO_PATH, why, sizeof(why)) != 0 && getenv("FUZZ_LOG"))
        fprintf(stderr, "fuzz_dispatch: the translator is off: %s\n", why);
    if (zreg_add(&reg, "fuzzA", 64u << 20, &za) != 0 || zreg_add(&reg, "fuzzB", 1u << 20, &zb) != 0)
        abort();
    window = calloc(1, WINDOW_SIZE);
    if (window == NULL || dispatch_selfcheck() != 0)
        abort();
    if (session_open(zb, NULL, NULL, 0, SLOT_SIZE, "fuzz-B", &sb) != 0)
        abort();
    setup_zone_b();
    return 0;
}

/* Records the handles and device addresses a reply hands out. */
static void harvest(struct session *s, uint16_t op, uint64_t *known, unsigned *nknown)
{
    uint64_t v = 0;

    if (!fuzz_hands_out(op))
        return;
    memcpy(&v, s->rbuf, sizeof(v));
    if (*nknown < 256)
        known[(*nknown)++] = v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session *sa;
    uint64_t known[256];
    unsigned nknown = 0;
    struct fuzz_input in = {.data = data, .size = size, .window = window,
                            .window_size = WINDOW_SIZE, .known = known, .nknown = &nknown};
    uint8_t payload[FUZZ_SLOT_SIZE];
    uint16_t op, len;

    if (session_open(za, NULL, window, WINDOW_SIZE, SLOT_SIZE, "fuzz-A", &sa) != 0)
        abort();
    /* Zone A also knows B's values, as a hostile guest could guess them. */
    known[nknown++] = b_ctx;
    known[nknown++] = b_stream;
    known[nknown++] = b_mem;
    while (fuzz_next(&in, &op, payload, &len)) {
        struct idm_hdr h;
        uint32_t rep_len;
        int32_t status;

        memset(&h, 0, sizeof(h));
        h.op = op;
        h.len = len;
        h.seq = in.off;
        /* every other request unanswered (IDM_F_NOREPLY): latches, and the flag ignored where
         * the op needs an answer */
        h.flags = (in.off & 1) ? IDM_F_ASYNC | IDM_F_NOREPLY : 0;
        int rc = dispatch_request(sa, &h, payload, &rep_len, &status);
        if (rc == 1)
            continue; /* queued on a stream (its reply goes nowhere here) or unanswered */
        if (rc != 0)
            break; /* the connection would be cut */
        if (rep_len > sa->max_reply)
            abort();
        if (status == 0)
            harvest(sa, op, known, &nknown);
    }
    session_close(sa);
    if (za->used != 0) {
        fprintf(stderr, "zone A still holds %llu bytes after its session closed\n",
                (unsigned long long)za->used);
        abort();
    }
    check_zone_b();
    return 0;
}
