/* fuzz_records.h - the dispatch fuzzers' input format, read the same way by fuzz_dispatch.c
 * (in-process, libFuzzer) and fuzz_worker.c (the corpus replayed against a live worker):
 * records of [u16 op][u16 len][len payload bytes], len taken modulo what fits one request slot;
 * op 0xFFFF writes its payload after a u32 offset into the window; a payload word
 * 0xFFFFFFFFFFFFFFxx is replaced by the xx-th handle or device address the zone has received;
 * launches and graph kernel nodes of more than 4096 threads are skipped (the simulated GPU
 * really runs them). */
#ifndef TESTS_PROXY_FUZZ_RECORDS_H
#define TESTS_PROXY_FUZZ_RECORDS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "idm.h"

#define FUZZ_SLOT_SIZE 4096u

struct fuzz_input {
    const uint8_t *data;
    size_t size, off;
    uint8_t *window; /* where 0xFFFF records write */
    size_t window_size;
    const uint64_t *known; /* values received so far, for substitution */
    const unsigned *nknown;
};

/* 1 when a successful reply of op starts with a handle or device address it hands out (the
 * fuzzers remember those for substitution). */
static inline int fuzz_hands_out(uint16_t op)
{
    switch (op) {
    case IDM_OP_PRIMARY_CTX_RETAIN: case IDM_OP_CTX_CREATE: case IDM_OP_MEM_ALLOC:
    case IDM_OP_STREAM_CREATE: case IDM_OP_EVENT_CREATE: case IDM_OP_IMAGE_BEGIN:
    case IDM_OP_LIBRARY_LOAD: case IDM_OP_LIBRARY_GET_KERNEL: case IDM_OP_LIBRARY_GET_GLOBAL:
    case IDM_OP_GRAPH_CREATE: case IDM_OP_GRAPH_INSTANTIATE: case IDM_OP_ARRAY_CREATE:
    case IDM_OP_TEX_CREATE:
    case IDM_OP_VMM_RESERVE: case IDM_OP_VMM_CREATE: case IDM_OP_VMM_RETAIN:
        return 1;
    default:
        return 0;
    }
}

/* More than 4096 threads in grid x block (dimensions of 0 pass: the dispatch refuses them). */
static inline int fuzz_threads_too_many(const uint32_t grid[3], const uint32_t block[3])
{
    uint64_t threads = 1;

    for (int i = 0; i < 3; i++)
        if (grid[i] == 0 || block[i] == 0)
            return 0; /* sent, and refused by the dispatch */
    for (int i = 0; i < 3; i++) {
        threads *= grid[i];
        if (threads > 4096)
            return 1;
        threads *= block[i];
        if (threads > 4096)
            return 1;
    }
    return 0;
}

/* A launch, or a graph's kernel node as added or changed (each GRAPH_LAUNCH runs it), that is
 * too big. */
static inline int fuzz_launch_too_big(uint16_t op, const uint8_t *payload, uint16_t len)
{
    if (op == IDM_OP_LAUNCH && len >= sizeof(struct idm_req_LAUNCH)) {
        struct idm_req_LAUNCH q;
        memcpy(&q, payload, sizeof(q));
        return fuzz_threads_too_many(q.grid, q.block);
    }
    if (op == IDM_OP_GRAPH_ADD_NODE && len >= sizeof(struct idm_req_GRAPH_ADD_NODE)) {
        struct idm_req_GRAPH_ADD_NODE q;
        memcpy(&q, payload, sizeof(q));
        return fuzz_threads_too_many(q.grid, q.block);
    }
    if (op == IDM_OP_GRAPH_EXEC_SET_KERNEL && len >= sizeof(struct idm_req_GRAPH_EXEC_SET_KERNEL)) {
        struct idm_req_GRAPH_EXEC_SET_KERNEL q;
        memcpy(&q, payload, sizeof(q));
        return fuzz_threads_too_many(q.grid, q.block);
    }
    return 0;
}

/* The next request of the input in op/payload/len (payload: FUZZ_SLOT_SIZE bytes); window
 * writes and oversized launches are handled on the way. 1, or 0 at the end of the input. */
static inline int fuzz_next(struct fuzz_input *in, uint16_t *op, uint8_t *payload, uint16_t *len)
{
    while (in->off + 4 <= in->size) {
        memcpy(op, in->data + in->off, 2);
        memcpy(len, in->data + in->off + 2, 2);
        in->off += 4;
        *len %= FUZZ_SLOT_SIZE - sizeof(struct idm_hdr) + 1;
        if (*len > in->size - in->off)
            *len = (uint16_t)(in->size - in->off);
        memcpy(payload, in->data + in->off, *len);
        in->off += *len;
        if (*op == 0xFFFF) {
            uint32_t woff;
            if (*len < 4)
                continue;
            memcpy(&woff, payload, 4);
            woff %= (uint32_t)in->window_size;
            memcpy(in->window + woff, payload + 4,
                   *len - 4u < in->window_size - woff ? *len - 4u : in->window_size - woff);
            continue;
        }
        for (uint32_t w = 0; w + 8 <= *len; w += 8) {
            uint64_t v;
            memcpy(&v, payload + w, 8);
            if ((v >> 8) == 0xFFFFFFFFFFFFFFull && (v & 0xFF) < *in->nknown)
                memcpy(payload + w, &in->known[v & 0xFF], 8);
        }
        if (fuzz_launch_too_big(*op, payload, *len))
            continue;
        return 1;
    }
    return 0;
}

#endif /* TESTS_PROXY_FUZZ_RECORDS_H */
