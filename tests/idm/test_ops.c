/* test_ops.c - the op table expanded from idm_ops.def (numbers, names, kinds, sizes), the ops'
 * properties (bulk data, name tails, stream fields) and their readers, the wire header layout,
 * and the trace formatter's output for requests, replies and bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "idm.h"

static void test_ops_header_layout(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct idm_hdr), 32);
    assert_int_equal(offsetof(struct idm_hdr, magic), 0);
    assert_int_equal(offsetof(struct idm_hdr, version), 4);
    assert_int_equal(offsetof(struct idm_hdr, op), 6);
    assert_int_equal(offsetof(struct idm_hdr, flags), 8);
    assert_int_equal(offsetof(struct idm_hdr, zone), 12);
    assert_int_equal(offsetof(struct idm_hdr, seq), 16);
    assert_int_equal(offsetof(struct idm_hdr, len), 24);
    assert_int_equal(offsetof(struct idm_hdr, status), 28);
    /* "VIDM" in memory on a little-endian machine. */
    uint32_t magic = IDM_MAGIC;
    assert_memory_equal(&magic, "VIDM", 4);
}

static void test_ops_table(void **state)
{
    (void)state;
    int count = 0;
    for (uint32_t op = 0; op < IDM_OP_COUNT; op++) {
        const struct idm_op_info *info = idm_op_lookup(op);
        if (!info) {
            assert_null(idm_op_table[op].name);
            assert_string_equal(idm_op_name(op), "UNKNOWN");
            continue;
        }
        count++;
        assert_int_equal(info->op, op);
        assert_true(info->kind == IDM_KIND_SYNC || info->kind == IDM_KIND_ASYNC);
        assert_string_equal(idm_op_name(op), info->name);
        /* Names are unique. */
        for (uint32_t o2 = op + 1; o2 < IDM_OP_COUNT; o2++)
            if (idm_op_table[o2].name)
                assert_string_not_equal(idm_op_table[o2].name, info->name);
    }
    assert_true(count >= 40);
    assert_null(idm_op_lookup(0));
    assert_null(idm_op_lookup(IDM_OP_COUNT));
    assert_null(idm_op_lookup(UINT32_MAX));
    assert_string_equal(idm_op_name(UINT32_MAX), "UNKNOWN");
}

static void test_ops_entries(void **state)
{
    (void)state;
    const struct idm_op_info *a = idm_op_lookup(IDM_OP_MEM_ALLOC);
    assert_non_null(a);
    assert_int_equal(IDM_OP_MEM_ALLOC, 30);
    assert_string_equal(a->name, "MEM_ALLOC");
    assert_int_equal(a->kind, IDM_KIND_SYNC);
    assert_int_equal(a->req_size, sizeof(struct idm_req_MEM_ALLOC));
    assert_int_equal(a->req_size, 16);
    assert_int_equal(a->rep_size, 8);
    const struct idm_op_info *h = idm_op_lookup(IDM_OP_MEMCPY_HTOD);
    assert_int_equal(h->kind, IDM_KIND_ASYNC);
    assert_int_equal(h->req_size, 40);
    assert_int_equal(h->rep_size, 0);
    const struct idm_op_info *l = idm_op_lookup(IDM_OP_LAUNCH);
    assert_int_equal(l->kind, IDM_KIND_ASYNC);
    assert_int_equal(l->req_size, sizeof(struct idm_req_LAUNCH));
    assert_int_equal(idm_op_lookup(IDM_OP_DEVICE_GET_PROPS)->rep_size,
                     8 + 16 + 256 + 4 * IDM_ATTR_COUNT);
}

/* The properties list of idm_ops.def, read back through the info table. */
static void test_ops_props(void **state)
{
    (void)state;
    struct idm_bulk b;
    idm_handle st = 0;
    const struct idm_op_info *htod = idm_op_lookup(IDM_OP_MEMCPY_HTOD);
    const struct idm_op_info *dtoh = idm_op_lookup(IDM_OP_MEMCPY_DTOH);
    const struct idm_op_info *chunk = idm_op_lookup(IDM_OP_IMAGE_CHUNK);
    const struct idm_op_info *alloc = idm_op_lookup(IDM_OP_MEM_ALLOC);

    struct idm_req_MEMCPY_HTOD hq = {.dst = 1, .stream = 0x77, .win_off = 4096, .win_len = 8192,
                                     .len = 100};
    idm_op_bulk(htod, &hq, &b);
    assert_int_equal(b.dir, IDM_BULK_IN);
    assert_true(b.can_inline);
    assert_int_equal(b.win_off, 4096);
    assert_int_equal(b.win_len, 8192);
    assert_int_equal(b.len, 100);
    assert_int_equal(idm_op_stream(htod, &hq, &st), 1);
    assert_int_equal(st, 0x77);
    assert_int_equal(idm_op_inline_max(htod, 4064), 4064 - sizeof(hq));

    struct idm_req_MEMCPY_DTOH dq = {.src = 1, .len = 33};
    idm_op_bulk(dtoh, &dq, &b);
    assert_int_equal(b.dir, IDM_BULK_OUT);
    assert_int_equal(b.win_len, 0);
    assert_int_equal(idm_op_inline_max(dtoh, 4064), 4064 - sizeof(struct idm_rep_MEMCPY_DTOH));

    /* IMAGE_CHUNK has no win_len field: window only, the range is len bytes. */
    struct idm_req_IMAGE_CHUNK cq = {.image = 5, .offset = 0, .win_off = 65536, .len = 512};
    idm_op_bulk(chunk, &cq, &b);
    assert_int_equal(b.dir, IDM_BULK_IN);
    assert_false(b.can_inline);
    assert_int_equal(b.win_off, 65536);
    assert_int_equal(b.win_len, 512);
    assert_int_equal(idm_op_inline_max(chunk, 4064), 0);
    assert_int_equal(idm_op_stream(chunk, &cq, &st), 0);

    struct idm_req_MEM_ALLOC aq = {.ctx = 1, .size = 2};
    idm_op_bulk(alloc, &aq, &b);
    assert_int_equal(b.dir, IDM_BULK_NONE);
    assert_int_equal(idm_op_inline_max(alloc, 4064), 0);
    assert_int_equal(idm_op_stream(alloc, &aq, &st), 0);

    assert_int_equal(idm_op_lookup(IDM_OP_LIBRARY_GET_KERNEL)->props->name_tail, 1);
    assert_int_equal(idm_op_lookup(IDM_OP_LIBRARY_GET_GLOBAL)->props->name_tail, 1);
    assert_int_equal(alloc->props->name_tail, 0);
    struct idm_req_LAUNCH lq = {.func = 1, .stream = 0x99, .win_off = 8192, .win_len = 30000,
                                .param_bytes = 30000};
    const struct idm_op_info *launch = idm_op_lookup(IDM_OP_LAUNCH);
    assert_int_equal(idm_op_stream(launch, &lq, &st), 1);
    assert_int_equal(st, 0x99);
    /* LAUNCH's parameters: inline in the tail, or a window range when they do not fit. */
    idm_op_bulk(launch, &lq, &b);
    assert_int_equal(b.dir, IDM_BULK_IN);
    assert_true(b.can_inline);
    assert_int_equal(b.win_off, 8192);
    assert_int_equal(b.win_len, 30000);
    assert_int_equal(b.len, 30000);
    assert_int_equal(idm_op_inline_max(launch, 4064), 4064 - sizeof(lq));
    /* Which requests may go unanswered (IDM_F_NOREPLY): ASYNC ops whose bulk data, if any,
     * goes towards the server, inline or through the window (released by the mark). */
    lq.win_len = 0;
    lq.param_bytes = 8;
    idm_op_bulk(launch, &lq, &b);
    assert_int_equal(idm_op_noreply(launch, &b), 1);
    lq.win_len = 30000;
    idm_op_bulk(launch, &lq, &b);
    assert_int_equal(idm_op_noreply(launch, &b), 1); /* its range comes back by the mark */
    idm_op_bulk(htod, &hq, &b);
    assert_int_equal(idm_op_noreply(htod, &b), 1);
    hq.win_len = 0;
    idm_op_bulk(htod, &hq, &b);
    assert_int_equal(idm_op_noreply(htod, &b), 1);
    idm_op_bulk(dtoh, &dq, &b);
    assert_int_equal(idm_op_noreply(dtoh, &b), 0); /* its data comes back */
    idm_op_bulk(chunk, &cq, &b);
    assert_int_equal(idm_op_noreply(chunk, &b), 1); /* async, window only: by the mark */
    idm_op_bulk(alloc, &aq, &b);
    assert_int_equal(idm_op_noreply(alloc, &b), 0); /* synchronous */
    const struct idm_op_info *memset_op = idm_op_lookup(IDM_OP_MEMSET);
    struct idm_req_MEMSET mq = {.dst = 1, .count = 4};
    idm_op_bulk(memset_op, &mq, &b);
    assert_int_equal(idm_op_noreply(memset_op, &b), 1);
    assert_int_equal(idm_op_noreply(NULL, &b), 0);
    /* Every op has properties, none or not. */
    for (uint32_t op = 0; op < IDM_OP_COUNT; op++)
        if (idm_op_lookup(op))
            assert_non_null(idm_op_lookup(op)->props);
}

/* Tracing prints where the bulk data travels and the name of a name tail. */
static void test_ops_trace_props(void **state)
{
    (void)state;
    char buf[512];
    uint8_t msg[sizeof(struct idm_req_LIBRARY_GET_KERNEL) + 8];
    struct idm_req_LIBRARY_GET_KERNEL kq = {.library = 0x42};
    struct idm_req_MEMCPY_HTOD hq = {.dst = 1, .win_off = 0, .win_len = 4096, .len = 4096};
    struct idm_hdr h = {.op = IDM_OP_LIBRARY_GET_KERNEL, .seq = 1, .len = sizeof(msg)};

    memcpy(msg, &kq, sizeof(kq));
    memcpy(msg + sizeof(kq), "saxpy\0\0", 8);
    idm_trace_format(&h, msg, buf, sizeof(buf));
    assert_non_null(strstr(buf, " name=\"saxpy\""));
    h = (struct idm_hdr){.op = IDM_OP_MEMCPY_HTOD, .seq = 2, .len = sizeof(hq)};
    idm_trace_format(&h, &hq, buf, sizeof(buf));
    assert_non_null(strstr(buf, " bulk=in:window"));
    h.op = IDM_OP_MEMCPY_DTOH;
    struct idm_req_MEMCPY_DTOH dq = {.src = 1, .len = 8};
    idm_trace_format(&h, &dq, buf, sizeof(buf));
    assert_non_null(strstr(buf, " bulk=out:inline"));
}

static void test_ops_trace_request(void **state)
{
    (void)state;
    char buf[512];
    struct idm_req_MEM_ALLOC req = {.ctx = 0x1234, .size = 4096};
    struct idm_hdr h = {.magic = IDM_MAGIC, .version = IDM_PROTOCOL_VERSION,
                        .op = IDM_OP_MEM_ALLOC, .seq = 17, .zone = 2, .len = sizeof(req)};
    assert_ptr_equal(idm_trace_format(&h, &req, buf, sizeof(buf)), buf);
    assert_string_equal(buf, "MEM_ALLOC req seq=17 zone=2 flags=0 len=16 ctx=0x1234 size=4096");

    struct idm_req_LAUNCH lr = {.func = 0xabc, .stream = 0, .grid = {2, 3, 4}, .block = {128, 1, 1},
                                .shared_bytes = 256, .cluster = {1, 1, 1}, .param_bytes = 24};
    uint8_t params[24] = {0};
    uint8_t msg[sizeof(lr) + sizeof(params)];
    memcpy(msg, &lr, sizeof(lr));
    memcpy(msg + sizeof(lr), params, sizeof(params));
    h = (struct idm_hdr){.op = IDM_OP_LAUNCH, .seq = 5, .flags = IDM_F_ASYNC,
                         .len = sizeof(msg)};
    idm_trace_format(&h, msg, buf, sizeof(buf));
    assert_non_null(strstr(buf, "LAUNCH req seq=5"));
    assert_non_null(strstr(buf, "flags=0x2"));
    assert_non_null(strstr(buf, "func=0xabc"));
    assert_non_null(strstr(buf, "grid=[2,3,4](3)"));
    assert_non_null(strstr(buf, "block=[128,1,1](3)"));
    assert_non_null(strstr(buf, "shared_bytes=256"));
    assert_non_null(strstr(buf, "param_bytes=24"));
    assert_non_null(strstr(buf, "tail=24"));
}

static void test_ops_trace_reply(void **state)
{
    (void)state;
    char buf[1024];
    struct idm_rep_HELLO rep = {.quota = 1ull << 30, .proto_version = 1, .zone_id = 7,
                                .driver_version = 13000, .device_count = 1};
    strcpy(rep.zone_name, "zone-\"a\"");
    struct idm_hdr h = {.op = IDM_OP_HELLO, .seq = 1, .flags = IDM_F_REPLY, .status = 0,
                        .len = sizeof(rep)};
    idm_trace_format(&h, &rep, buf, sizeof(buf));
    assert_non_null(strstr(buf, "HELLO rep seq=1"));
    assert_non_null(strstr(buf, "status=0"));
    assert_non_null(strstr(buf, "quota=1073741824"));
    assert_non_null(strstr(buf, "driver_version=13000"));
    assert_non_null(strstr(buf, "zone_name=\"zone-\\x22a\\x22\""));

    struct idm_rep_DEVICE_GET_PROPS props;
    memset(&props, 0, sizeof(props));
    props.total_mem = 80;
    for (int i = 0; i < 16; i++)
        props.uuid[i] = (uint8_t)(0xa0 + i);
    strcpy(props.name, "Simulated GPU");
    props.attrs[0] = -1;
    props.attrs[1] = 1024;
    h = (struct idm_hdr){.op = IDM_OP_DEVICE_GET_PROPS, .flags = IDM_F_REPLY, .status = 0,
                         .len = sizeof(props)};
    idm_trace_format(&h, &props, buf, sizeof(buf));
    assert_non_null(strstr(buf, "uuid=a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"));
    assert_non_null(strstr(buf, "name=\"Simulated GPU\""));
    assert_non_null(strstr(buf, "attrs=[-1,1024,0,0,...](160)"));

    struct idm_rep_EVENT_ELAPSED_TIME et = {.ms = 1.5f};
    h = (struct idm_hdr){.op = IDM_OP_EVENT_ELAPSED_TIME, .flags = IDM_F_REPLY, .status = 400,
                         .len = sizeof(et)};
    idm_trace_format(&h, &et, buf, sizeof(buf));
    assert_non_null(strstr(buf, "status=400 ms=1.5"));

    /* An op whose reply has no fields. */
    h = (struct idm_hdr){.op = IDM_OP_MEM_FREE, .seq = 3, .flags = IDM_F_REPLY, .len = 0};
    idm_trace_format(&h, NULL, buf, sizeof(buf));
    assert_string_equal(buf, "MEM_FREE rep seq=3 zone=0 flags=0x1 len=0 status=0");
}

static void test_ops_trace_bad_input(void **state)
{
    (void)state;
    char buf[256];
    struct idm_hdr h = {.op = 999, .seq = 1, .len = 4};
    idm_trace_format(&h, "abcd", buf, sizeof(buf));
    assert_non_null(strstr(buf, "op#999 req"));
    /* Shorter than the op's struct: no field is read. */
    uint8_t small[4] = {0};
    h = (struct idm_hdr){.op = IDM_OP_MEM_ALLOC, .len = sizeof(small)};
    idm_trace_format(&h, small, buf, sizeof(buf));
    assert_non_null(strstr(buf, "<short payload: 4 < 16>"));
    h.len = 16;
    idm_trace_format(&h, NULL, buf, sizeof(buf));
    assert_non_null(strstr(buf, "<no payload>"));
    /* A tiny buffer is filled and terminated, never overrun. */
    char tiny[12];
    memset(tiny, 'x', sizeof(tiny));
    struct idm_req_MEM_ALLOC req = {.ctx = 1, .size = 2};
    h = (struct idm_hdr){.op = IDM_OP_MEM_ALLOC, .len = sizeof(req)};
    idm_trace_format(&h, &req, tiny, 8);
    assert_int_equal(strlen(tiny), 7);
    assert_int_equal(tiny[8], 'x');
    assert_ptr_equal(idm_trace_format(&h, &req, tiny, 0), tiny);
    assert_int_equal(tiny[0], 'M');
    idm_trace_format(NULL, NULL, tiny, sizeof(tiny));
    assert_string_equal(tiny, "");
    /* A string field without its NUL stops at the array's end. */
    struct idm_rep_FUNC_GET_NAME fn;
    memset(fn.name, 'k', sizeof(fn.name));
    h = (struct idm_hdr){.op = IDM_OP_FUNC_GET_NAME, .flags = IDM_F_REPLY, .len = sizeof(fn)};
    char big[2048];
    idm_trace_format(&h, &fn, big, sizeof(big));
    assert_non_null(strstr(big, "name=\"kkkk"));
    assert_non_null(strstr(big, "...\""));
}

/* Every op's request and reply format without reading past the fixed struct. */
static void test_ops_trace_every_op(void **state)
{
    (void)state;
    char buf[4096];
    static uint8_t zeros[4096];
    for (uint32_t op = 0; op < IDM_OP_COUNT; op++) {
        const struct idm_op_info *info = idm_op_lookup(op);
        if (!info)
            continue;
        struct idm_hdr h = {.op = (uint16_t)op, .len = info->req_size};
        idm_trace_format(&h, zeros, buf, sizeof(buf));
        assert_int_equal(strncmp(buf, info->name, strlen(info->name)), 0);
        h.flags = IDM_F_REPLY;
        h.len = info->rep_size;
        idm_trace_format(&h, zeros, buf, sizeof(buf));
        assert_non_null(strstr(buf, " rep "));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_header_layout),
        cmocka_unit_test(test_ops_table),
        cmocka_unit_test(test_ops_entries),
        cmocka_unit_test(test_ops_props),
        cmocka_unit_test(test_ops_trace_props),
        cmocka_unit_test(test_ops_trace_request),
        cmocka_unit_test(test_ops_trace_reply),
        cmocka_unit_test(test_ops_trace_bad_input),
        cmocka_unit_test(test_ops_trace_every_op),
    };
    return cmocka_run_group_tests_name("idm_ops", tests, NULL, NULL);
}
