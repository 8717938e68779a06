/* fuzz_decode.c - libFuzzer target for everything that decodes peer-written bytes: a request
 * ring whose slots and producer index are the input (idm_recv's copy-out and validation), a
 * control page that is the input (idm_conn_attach's geometry checks), and idm_trace_format
 * over arbitrary headers and payloads. Input byte 0 picks the mode; see each mode's comment. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "idm.h"
#include "idm_conn_internal.h"
#include "idm_log.h"

#define FZ_SLOTS 4u
#define FZ_SLOT_SIZE 128u
#define FZ_WINDOW 4096u
#define FZ_REGION (4 * 4096)

static _Alignas(4096) uint8_t region[FZ_REGION];

/* Transport hooks of a peer that never rings and never dies: idm_recv sees only the memory. */
static int fz_notify(struct idm_conn *c)
{
    (void)c;
    return 0;
}

static int fz_wait(struct idm_conn *c, int timeout_ms)
{
    (void)c;
    (void)timeout_ms;
    return -EAGAIN;
}

static int fz_fd(struct idm_conn *c)
{
    (void)c;
    return -1;
}

static void fz_close(struct idm_conn *c)
{
    (void)c;
}

static const struct idm_conn_ops fz_ops = {
    .name = "fuzz", .notify = fz_notify, .wait = fz_wait, .fd = fz_fd, .close = fz_close};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Receives until the ring is empty or the connection dies, checking what idm_recv promises. */
static void drain(struct idm_conn *c)
{
    struct idm_msg m;
    idm_msg_init(&m);
    char line[512];
    for (int i = 0; i < 16; i++) {
        int rc = idm_recv(c, &m, 0);
        if (rc == 0) {
            if (m.hdr.magic != IDM_MAGIC || m.hdr.version != IDM_PROTOCOL_VERSION ||
                m.hdr.len > c->geo.slot_size - sizeof(struct idm_hdr))
                abort(); /* idm_recv accepted something invalid */
            idm_trace_format(&m.hdr, m.payload, line, sizeof(line));
            continue;
        }
        if (rc == -EPROTO) {
            if (idm_conn_error(c)[0] == '\0' || idm_recv(c, &m, 0) != -EPROTO)
                abort(); /* a fault must be sticky and explained */
        } else if (rc != -EAGAIN) {
            abort();
        }
        break;
    }
    idm_msg_free(&m);
}

/* Mode 0: [1..4] start index, [5] prod selector (< 0x80: start + [5] % 9, else [6..9] raw),
 * [6..9] raw prod, [10..] the slot bytes. */
static void fuzz_ring(const uint8_t *d, size_t n)
{
    if (n < 10)
        return;
    struct idm_conn_config cfg = {
        .ring_slots = FZ_SLOTS, .slot_size = FZ_SLOT_SIZE, .window_size = FZ_WINDOW};
    uint32_t start = le32(d + 1);
    if (idm_shm_init(region, sizeof(region), &cfg, start) != 0)
        abort();
    struct idm_conn *c;
    if (idm_conn_attach(region, sizeof(region), IDM_ROLE_SERVER, &fz_ops, NULL, &c) != 0)
        abort();
    struct idm_ctrl *ctrl = (struct idm_ctrl *)region;
    uint32_t prod = d[5] < 0x80 ? start + d[5] % 9u : le32(d + 6);
    atomic_store(&ctrl->req.prod, prod);
    size_t body = n - 10;
    if (body > FZ_SLOTS * FZ_SLOT_SIZE)
        body = FZ_SLOTS * FZ_SLOT_SIZE;
    memcpy(region + c->layout.req_off, d + 10, body);
    drain(c);
    /* The window check never admits a range past the window. */
    if (body >= 16) {
        uint64_t off, len;
        memcpy(&off, d + 10, 8);
        memcpy(&len, d + 18, 8);
        if (idm_window_check(c, off, len) == 0 && (off > FZ_WINDOW || len > FZ_WINDOW - off))
            abort();
    }
    idm_close(c);
}

/* Mode 1: [1..] the control page as the peer wrote it. */
static void fuzz_ctrl(const uint8_t *d, size_t n)
{
    memset(region, 0, sizeof(region));
    size_t len = n - 1 > 4096 ? 4096 : n - 1;
    memcpy(region, d + 1, len);
    struct idm_conn *c;
    if (idm_conn_attach(region, sizeof(region), IDM_ROLE_CLIENT, &fz_ops, NULL, &c) != 0)
        return;
    const struct idm_conn_config *g = idm_conn_geometry(c);
    if (g->ring_slots < IDM_RING_SLOTS_MIN || g->ring_slots > IDM_RING_SLOTS_MAX ||
        g->slot_size < IDM_SLOT_SIZE_MIN || c->layout.total > sizeof(region))
        abort();
    drain(c);
    idm_close(c);
}

/* Mode 2: [1..32] a header, [33..] its payload (len clamped to what is there). */
static void fuzz_trace(const uint8_t *d, size_t n)
{
    if (n < 1 + sizeof(struct idm_hdr))
        return;
    struct idm_hdr h;
    memcpy(&h, d + 1, sizeof(h));
    size_t plen = n - 1 - sizeof(h);
    if (h.len > plen)
        h.len = (uint32_t)plen;
    /* A private, exactly sized copy so ASan sees any over-read. */
    uint8_t *p = malloc(plen ? plen : 1);
    if (!p)
        return;
    memcpy(p, d + 1 + sizeof(h), plen);
    char line[4096];
    idm_trace_format(&h, p, line, sizeof(line));
    if (strlen(line) >= sizeof(line))
        abort();
    char small[16];
    idm_trace_format(&h, p, small, sizeof(small));
    free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    idm_log_set_level(IDM_LOG_OFF);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_ring(data, size);
        break;
    case 1:
        fuzz_ctrl(data, size);
        break;
    default:
        fuzz_trace(data, size);
        break;
    }
    return 0;
}
