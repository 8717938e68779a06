/* idm.h - the IDM wire format: message header, size limits, flags and the op numbering.
 * Every message (request or reply) is a struct idm_hdr followed by `len` payload bytes, laid
 * over one or more consecutive ring slots (idm_msg_slots: a small message is one slot; a larger
 * one, up to idm_max_payload, continues in the next slots and is published at once). The payload of op X is `struct idm_req_X` (requests) or `struct idm_rep_X` (replies),
 * optionally followed by a variable-length tail. Both structs come from idm_ops.def. */
#ifndef IDM_H
#define IDM_H

#include <stddef.h>
#include <stdint.h>

#define IDM_MAGIC 0x4D444956u /* "VIDM" little-endian */
#define IDM_PROTOCOL_VERSION 1u

/* Geometry limits (both sides check the peer's geometry against these). */
#define IDM_SLOT_SIZE_MIN 128u
#define IDM_SLOT_SIZE_MAX 65536u
#define IDM_SLOT_SIZE_DEFAULT 4096u
#define IDM_RING_SLOTS_MIN 2u
#define IDM_RING_SLOTS_MAX 4096u
#define IDM_RING_SLOTS_DEFAULT 256u
#define IDM_WINDOW_SIZE_DEFAULT (8u << 20)
#define IDM_WINDOW_SIZE_MAX (1024ull << 20)
#define IDM_MSG_BYTES_MAX (72u << 10) /* the most bytes (header included) a message spans when
                                     * the slots are smaller: 64 KiB of inline bulk data and its
                                     * fixed struct; never more than a quarter of the ring */
#define IDM_NAME_MAX 256u /* device names and FUNC_GET_NAME replies (incl. NUL) */
#define IDM_SYMBOL_MAX 4096u /* kernel and global names in request tails (incl. NUL): C++
                             * template names (Thrust, CUB) are often longer than 256 bytes */
#define IDM_ATTR_COUNT 160u /* >= CU_DEVICE_ATTRIBUTE_MAX of CUDA 13.0 (148) */
#define IDM_PARAMS_MAX 256u /* kernel parameters per function */
#define IDM_VMM_GRANULARITY (2ull << 20) /* virtual memory management (VMM_* ops): sizes,
                                         * offsets and addresses are multiples of it, as NVIDIA
                                         * GPUs' allocation granularity */
#define IDM_PARAM_BYTES_MAX 32764u /* a launch's packed parameter buffer: CUDA 12.1+ on Volta
                                    * and later (ptxas: PTX ISA 8.1+; 4352 bytes before) */

/* Header flags. */
#define IDM_F_REPLY 0x1u /* set on every reply */
#define IDM_F_ASYNC 0x2u /* the sender does not wait for the reply; an error in it is reported
                          * by the next synchronising call */
#define IDM_F_NOREPLY 0x4u /* requests: answer only if needed. Honoured for an IDM_KIND_ASYNC op
                            * that returns no data (idm_op_noreply); the server then sends no
                            * reply, latches a failure on the request's stream, returned by the
                            * next synchronising call there, and releases a window range the
                            * request names through the release mark (docs/CONTRACTS.md).
                            * Ignored (a normal reply) on any other request. */

/* Wire header: 32 bytes, little-endian, naturally aligned. */
struct idm_hdr {
    uint32_t magic;   /* IDM_MAGIC */
    uint16_t version; /* IDM_PROTOCOL_VERSION */
    uint16_t op;      /* enum idm_op */
    uint32_t flags;   /* IDM_F_* */
    uint32_t zone;    /* informational: the server always uses the connection's zone */
    uint64_t seq;     /* chosen by the requester; a reply carries its request's seq */
    uint32_t len;     /* payload bytes after the header */
    int32_t status;   /* replies: a CUresult; requests: 0 */
};
_Static_assert(sizeof(struct idm_hdr) == 32, "idm_hdr is 32 bytes on the wire");

/* Field types usable in idm_ops.def. */
typedef uint64_t idm_handle; /* opaque per-zone handle: type tag, generation, index */
typedef uint64_t idm_dptr;   /* opaque per-zone device address */

/* One kernel parameter as LIBRARY_GET_KERNEL reports it (its reply tail is an array of these). */
struct idm_param {
    uint32_t offset; /* byte offset in the packed parameter buffer */
    uint32_t size;   /* bytes */
};

/* LAUNCH flags. */
#define IDM_LAUNCH_COOPERATIVE 0x1u /* cuLaunchCooperativeKernel */

/* A graph node's kind (GRAPH_ADD_NODE). */
enum idm_graph_node { IDM_GNODE_EMPTY = 0, IDM_GNODE_KERNEL = 1, IDM_GNODE_MEMSET = 2,
                      IDM_GNODE_MEMCPY = 3, IDM_GNODE_HTOD = 4, IDM_GNODE_DTOH = 5,
                      IDM_GNODE_KINDS };
#define IDM_GRAPH_DEPS_MAX 16u  /* dependencies one GRAPH_ADD_NODE names */
#define IDM_GRAPH_EDGES_MAX 32u /* edges one GRAPH_ADD_DEPS adds */
/* The sides of a MEMCPY_3D* copy (idm_ops.def). */
enum idm_copy_side { IDM_SIDE_DEVICE = 1, IDM_SIDE_ARRAY = 2, IDM_SIDE_HOST = 3 };

/* ---- the op table expansions ---- */

/* Op numbers. */
enum idm_op {
    IDM_OP_INVALID = 0,
#define IDM_OP(name, num, kind, req, rep) IDM_OP_##name = num,
#include "idm_ops.def"
#undef IDM_OP
    IDM_OP_COUNT
};

/* Op kinds: SYNC (caller waits), ASYNC (enqueued, reply drained later), LOCAL never travels. */
enum idm_op_kind { IDM_KIND_SYNC = 0, IDM_KIND_ASYNC = 1 };

/* Request and reply payload structs: struct idm_req_NAME / struct idm_rep_NAME. */
#define IDM_FIELDS(...) __VA_ARGS__
#define IDM_NONE
#define IDM_F(type, name) type name;
#define IDM_A(type, name, n) type name[n];
#define IDM_OP(name, num, kind, req, rep)                                                       \
    struct idm_req_##name {                                                                     \
        uint8_t idm_empty_[0];                                                                  \
        req                                                                                     \
    };                                                                                          \
    struct idm_rep_##name {                                                                     \
        uint8_t idm_empty_[0];                                                                  \
        rep                                                                                     \
    };
#include "idm_ops.def"
#undef IDM_OP
#undef IDM_F
#undef IDM_A

/* Direction of an op's bulk data (its IDM_PROPS line in idm_ops.def). */
enum idm_bulk_dir { IDM_BULK_NONE = 0, IDM_BULK_IN = 1, IDM_BULK_OUT = 2 };

#define IDM_PROP_NOFIELD 0xffffu /* an offset below: the op's request has no such field */

/* An op's properties from its IDM_PROPS line (all zero / IDM_PROP_NOFIELD when it has none):
 * byte offsets of the named uint64_t fields in struct idm_req_X. */
struct idm_op_props {
    uint8_t bulk;       /* enum idm_bulk_dir */
    uint8_t name_tail;  /* 1: the request tail is a NUL-terminated name (<= IDM_SYMBOL_MAX) */
    uint16_t win_off;   /* bulk: window offset field */
    uint16_t win_len;   /* bulk: window length field; IDM_PROP_NOFIELD: window only */
    uint16_t len;       /* bulk: data length field */
    uint16_t stream;    /* the stream handle field */
};

/* Static description of every op, indexed by op number (idm_ops.c). */
struct idm_op_info {
    const char *name;  /* "MEM_ALLOC" */
    uint16_t op;
    uint8_t kind;      /* enum idm_op_kind */
    uint32_t req_size; /* sizeof(struct idm_req_X): the minimum request payload */
    uint32_t rep_size; /* sizeof(struct idm_rep_X): the minimum reply payload */
    const struct idm_op_props *props; /* never NULL */
};
extern const struct idm_op_info idm_op_table[IDM_OP_COUNT];

/* Returns the op's info, or NULL for an unknown op number. */
const struct idm_op_info *idm_op_lookup(uint32_t op);
const char *idm_op_name(uint32_t op);

/* The bulk data a request names, read from its fixed struct through the op's properties. */
struct idm_bulk {
    uint8_t dir;         /* enum idm_bulk_dir; IDM_BULK_NONE: the op moves none */
    uint8_t can_inline;  /* the op may carry it inline (it has a win_len field) */
    uint64_t win_off;
    uint64_t win_len;    /* 0: inline (request tail for IN, reply tail for OUT) */
    uint64_t len;
};
/* Fills *b from req (the op's fixed request struct, info->req_size bytes). */
void idm_op_bulk(const struct idm_op_info *info, const void *req, struct idm_bulk *b);
/* The stream handle req names: 1 and *stream, or 0 when the op has no stream field. */
int idm_op_stream(const struct idm_op_info *info, const void *req, idm_handle *stream);
/* 1 when a request of this op with these bulk fields may go unanswered (IDM_F_NOREPLY): an
 * ASYNC op whose bulk data, if any, travels towards the server, inline or through a window
 * range (whose release the server then publishes in the release mark, idm_release_publish). */
int idm_op_noreply(const struct idm_op_info *info, const struct idm_bulk *b);
/* The most bytes of bulk data op can carry inline, given the room for a message's payload in one
 * ring slot (max_payload): 0 for ops without bulk data or with window-only bulk data. */
uint64_t idm_op_inline_max(const struct idm_op_info *info, uint32_t max_payload);

/* Writes a one-line description of a message (op name, seq, flags, then every fixed field of the
 * request or reply as name=value) into buf; used by tracing. Returns buf. */
char *idm_trace_format(const struct idm_hdr *h, const void *payload, char *buf, size_t buflen);

#endif /* IDM_H */
