/* xen_probe.c - a hostile guest of the Xen test, speaking raw IDM to gpu_proxy (no libvgpu):
 * given another guest's device address and stream handle, it first proves its own objects work
 * (the control), then tries the other guest's values in every op that takes them; each attempt
 * must be refused. Prints `XENTEST CASE <name>-<what> PASS|FAIL ...` lines.
 * Usage: xen_probe NAME DPTR STREAM   (address from VGPU_SOCKET, default the transport's;
 * VGPU_TRANSPORT=posix for a local proxy) */
#include "idm.h"
#include "idm_transport.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct idm_conn *conn;
static struct idm_msg msg;
static uint64_t seq;
static const char *name;
static int failures;

/* Sends one request and waits for its reply; returns the reply's status (a CUresult), or a
 * negative errno when the connection failed. */
static int call(uint16_t op, const void *req, size_t len, void *rep, size_t replen)
{
    struct idm_hdr h = {.op = op, .seq = ++seq};
    int rc = idm_send(conn, &h, req, len, NULL, 0);
    if (rc < 0)
        return rc;
    rc = idm_recv(conn, &msg, 60000);
    if (rc < 0)
        return rc;
    if (msg.hdr.seq != h.seq || msg.hdr.op != op || !(msg.hdr.flags & IDM_F_REPLY))
        return -EBADMSG;
    if (rep && msg.hdr.status == 0) {
        if (msg.hdr.len < replen)
            return -EBADMSG;
        memcpy(rep, msg.payload, replen);
    }
    return msg.hdr.status;
}

static void verdict(const char *what, int ok, const char *detail, int status)
{
    printf("XENTEST CASE %s-%s %s %s (status %d)\n", name, what, ok ? "PASS" : "FAIL", detail,
           status);
    fflush(stdout);
    failures += !ok;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 4) {
        fprintf(stderr, "usage: xen_probe NAME DPTR STREAM\n");
        return 2;
    }
    name = argv[1];
    uint64_t their_dptr = strtoull(argv[2], NULL, 0), their_stream = strtoull(argv[3], NULL, 0);
    idm_msg_init(&msg);
    /* VGPU_TRANSPORT=posix runs the same probe against a local gpu_proxy (for debugging). */
    const char *tname = getenv("VGPU_TRANSPORT");
    const struct idm_transport *t = idm_transport_by_name(tname && *tname ? tname : "xen");
    int rc = t ? t->connect(getenv("VGPU_SOCKET"), &conn) : -EINVAL;
    if (rc < 0) {
        verdict("probe-connect", 0, "cannot connect to gpu_proxy", rc);
        return 1;
    }
    struct idm_req_HELLO hello = {.proto_version = IDM_PROTOCOL_VERSION, .pid = (uint32_t)getpid()};
    struct idm_rep_HELLO hrep;
    rc = call(IDM_OP_HELLO, &hello, sizeof(hello), &hrep, sizeof(hrep));
    struct idm_req_PRIMARY_CTX_RETAIN pr = {.device = 0};
    struct idm_rep_PRIMARY_CTX_RETAIN prep;
    memset(&prep, 0, sizeof(prep));
    if (rc == 0)
        rc = call(IDM_OP_PRIMARY_CTX_RETAIN, &pr, sizeof(pr), &prep, sizeof(prep));
    struct idm_req_MEM_ALLOC ma = {.ctx = prep.ctx, .size = 65536};
    struct idm_rep_MEM_ALLOC marep;
    memset(&marep, 0, sizeof(marep));
    if (rc == 0)
        rc = call(IDM_OP_MEM_ALLOC, &ma, sizeof(ma), &marep, sizeof(marep));
    struct idm_req_STREAM_CREATE sc = {.ctx = prep.ctx};
    struct idm_rep_STREAM_CREATE screp;
    memset(&screp, 0, sizeof(screp));
    if (rc == 0)
        rc = call(IDM_OP_STREAM_CREATE, &sc, sizeof(sc), &screp, sizeof(screp));
    /* The control: our own objects work with the very same ops. */
    struct idm_req_MEMCPY_DTOH own = {.src = marep.dptr, .len = 64};
    if (rc == 0)
        rc = call(IDM_OP_MEMCPY_DTOH, &own, sizeof(own), NULL, 0);
    struct idm_req_STREAM_SYNCHRONIZE ss = {.stream = screp.stream};
    if (rc == 0)
        rc = call(IDM_OP_STREAM_SYNCHRONIZE, &ss, sizeof(ss), NULL, 0);
    int distinct = marep.dptr != their_dptr && screp.stream != their_stream;
    char d[256];
    snprintf(d, sizeof(d), "own session works: zone %.64s, dptr 0x%" PRIx64 ", stream 0x%" PRIx64
             "; the other guest's dptr 0x%" PRIx64 ", stream 0x%" PRIx64,
             rc == 0 ? hrep.zone_name : "?",
             marep.dptr, screp.stream, their_dptr, their_stream);
    verdict("probe-control", rc == 0 && distinct, d, rc);
    if (rc != 0)
        return 1;

    struct idm_req_MEMCPY_DTOH rd = {.src = their_dptr, .len = 64};
    rc = call(IDM_OP_MEMCPY_DTOH, &rd, sizeof(rd), NULL, 0);
    verdict("probe-read", rc > 0, "reading the other guest's memory is refused", rc);
    struct idm_req_MEMCPY_DTOH rd2 = {.src = their_dptr + 4096, .len = 4096, .win_len = 4096};
    rc = call(IDM_OP_MEMCPY_DTOH, &rd2, sizeof(rd2), NULL, 0);
    verdict("probe-read-window", rc > 0, "reading it through the window is refused", rc);
    struct idm_req_MEMSET ms = {.dst = their_dptr, .count = 64, .height = 1, .value = 0,
                                .elem_size = 1};
    rc = call(IDM_OP_MEMSET, &ms, sizeof(ms), NULL, 0);
    verdict("probe-write", rc > 0, "overwriting the other guest's memory is refused", rc);
    struct idm_req_MEMCPY_DTOD dd = {.dst = marep.dptr, .src = their_dptr, .len = 64};
    rc = call(IDM_OP_MEMCPY_DTOD, &dd, sizeof(dd), NULL, 0);
    verdict("probe-copy", rc > 0, "copying the other guest's memory into ours is refused", rc);
    struct idm_req_MEM_GET_ADDRESS_RANGE ar = {.dptr = their_dptr};
    rc = call(IDM_OP_MEM_GET_ADDRESS_RANGE, &ar, sizeof(ar), NULL, 0);
    verdict("probe-range", rc > 0, "asking about the other guest's allocation is refused", rc);
    struct idm_req_MEM_FREE mf = {.dptr = their_dptr};
    rc = call(IDM_OP_MEM_FREE, &mf, sizeof(mf), NULL, 0);
    verdict("probe-free", rc > 0, "freeing the other guest's memory is refused", rc);
    struct idm_req_STREAM_SYNCHRONIZE ts = {.stream = their_stream};
    rc = call(IDM_OP_STREAM_SYNCHRONIZE, &ts, sizeof(ts), NULL, 0);
    verdict("probe-stream", rc > 0, "using the other guest's stream is refused", rc);
    struct idm_req_STREAM_DESTROY sd = {.stream = their_stream};
    rc = call(IDM_OP_STREAM_DESTROY, &sd, sizeof(sd), NULL, 0);
    verdict("probe-stream-destroy", rc > 0, "destroying the other guest's stream is refused", rc);
    idm_close(conn);
    idm_msg_free(&msg);
    return failures ? 1 : 0;
}
