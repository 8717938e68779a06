/* zone.h - tenants: zones (name, quota, usage, address range), the sessions of their clients,
 * per-session handle tables (typed 64-bit handles with generations) and allocation tables
 * (zone-virtual address ranges mapped to backend addresses, sorted for O(log n) lookup). */
#ifndef GPU_PROXY_ZONE_H
#define GPU_PROXY_ZONE_H

#include <cuda.h>
#include <pthread.h>
#include <stdint.h>

#include "backend.h"
#include "idm.h"
#include "worker_ipc.h"

#define ZONE_NAME_MAX 64

/* ---- handles: bits 63..56 type, 55..32 generation, 31..0 slot index ---- */
enum htype { HT_NONE = 0, HT_CTX = 0x11, HT_STREAM = 0x22, HT_EVENT = 0x33, HT_LIBRARY = 0x44,
             HT_KERNEL = 0x55, HT_IMAGE = 0x66, HT_GRAPH = 0x77, HT_GEXEC = 0x88,
             HT_ARRAY = 0x99, HT_TEX = 0xaa, HT_VMEM = 0xbb };

#define HTAB_MAX_OBJECTS (1u << 20)
#define SESSION_MAX_STREAMS 256 /* each stream has a worker thread */
#define SESSION_WIN_HOLDS 256   /* window ranges of unanswered requests in use at once */
#define ZONE_MAX_CLIENTS 64
/* Graphs (dispatch_graph.c): graphs and executable graphs a session holds at once, nodes in one
 * graph, dependencies of one node, and the host memory all of a zone's graphs may take (nodes,
 * edges, kernel parameters; graphs and executable graphs alike). */
#define SESSION_MAX_GRAPHS 1024
#define GRAPH_MAX_NODES 16384
#define GRAPH_NODE_MAX_DEPS 1024
#define ZONE_GRAPH_BYTES (64ull << 20)
/* Arrays, and texture and surface objects together, a zone holds at once (dispatch_array.c). */
#define ZONE_MAX_ARRAYS 4096
#define ZONE_MAX_TEXOBJS 4096
/* Virtual memory management (dispatch_vmm.c): address ranges a session holds reserved at once,
 * and the bytes all of a zone's reserves may span (address space only: reserves take no memory
 * and are not charged; the physical allocations mapped into them are). */
#define SESSION_MAX_RESERVES 1024
#define ZONE_VMM_RESERVE_BYTES (256ull << 30)
/* IPC (dispatch_ipc.c): allocations exported at once, and opened imports, per zone. */
#define ZONE_MAX_IPC_EXPORTS 1024
#define ZONE_MAX_IPC_IMPORTS 4096
#define IPC_TOKEN_BYTES 16

/* An exported allocation: what a 64-byte CUipcMemHandle names (slot and random token). Owned by
 * the zone's table; retired when its allocation is freed. */
struct session;
struct ipc_event;
struct ipc_export {
    uint8_t token[IPC_TOKEN_BYTES]; /* getrandom(2): a guessed or forged handle is refused */
    const struct session *owner;    /* the exporter, which may not open its own handle */
    struct ipc_mem *mem;            /* an allocation's export, or */
    struct ipc_event *ev;           /* an event's */
    uint64_t size;
};

/* An interprocess event (CU_EVENT_INTERPROCESS): the backend event and the record tickets that
 * every session's handle to it shares. A record takes the next ticket when it is queued and
 * marks it done when it has run (or was drained without running); a wait waits for the last
 * ticket handed out, whichever session recorded it. refs: the exporter's event and each
 * opened one (under the zone's lock); the last one destroys the backend event. */
struct ipc_event {
    struct backend_event *be;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* done grew */
    uint64_t issued;     /* the last ticket handed out (under lock) */
    uint64_t done;       /* the highest ticket that has run (under lock) */
    uint32_t refs;
};

struct handle_slot {
    void *obj;     /* NULL when free */
    uint32_t gen;  /* 24 bits, never 0 */
    uint8_t type;
    uint32_t next_free;
};

struct handle_table {
    struct handle_slot *slots;
    uint32_t used;  /* slots ever handed out */
    uint32_t cap;
    uint32_t free_head; /* UINT32_MAX: none */
    uint32_t live;
    uint32_t gen_seed;
};

void htab_init(struct handle_table *t, uint32_t gen_seed);
void htab_destroy(struct handle_table *t);
/* 0 or -ENOMEM (also when HTAB_MAX_OBJECTS is reached). */
int htab_insert(struct handle_table *t, uint8_t type, void *obj, idm_handle *out);
/* The object, or NULL for a handle that is not a live handle of this table and type. */
void *htab_lookup(const struct handle_table *t, idm_handle h, uint8_t type);
/* Removes a live handle; 0 or -ENOENT. */
int htab_remove(struct handle_table *t, idm_handle h, uint8_t type);
/* Iteration helper: the object at slot i if it has the given type (type 0: any), else NULL. */
void *htab_slot(const struct handle_table *t, uint32_t i, uint8_t type, idm_handle *h);

/* ---- allocations ---- */
/* ALLOC_VMM_MAP: one mapping of a physical allocation (vmem) into a reserve; charged 0 (the
 * physical allocation carries the charge); no_access until the tenant grants access.
 * ALLOC_HEAP: a context's device-side malloc/free heap (owner: the context; not the tenant's to
 * free). */
/* ALLOC_IPC: memory another session of the zone exported, opened here (dispatch_ipc.c). */
enum alloc_kind { ALLOC_MEM = 1, ALLOC_GLOBAL_OWNED = 2, ALLOC_GLOBAL_MAPPED = 3,
                  ALLOC_VMM_MAP = 4, ALLOC_HEAP = 5, ALLOC_IPC = 6 };
struct vmem_obj;

/* Backend memory shared through IPC: the exporting allocation and every session that opened it
 * hold one reference each (under the zone's lock); the last one scrubs and frees it and gives
 * its quota back, so the memory outlives its exporter's cuMemFree while an import is open. */
struct ipc_mem {
    uint64_t baddr, size, charged;
    uint32_t refs;
};

struct alloc {
    uint64_t va;    /* zone-virtual base */
    uint64_t size;  /* bytes the guest asked for */
    uint64_t charged; /* bytes charged to the quota */
    uint64_t baddr; /* backend address */
    idm_handle owner; /* context (memory) or library (globals) */
    uint64_t buffer_id;
    struct vmem_obj *vmem; /* ALLOC_VMM_MAP: the physical allocation mapped (baddr is inside it) */
    struct ipc_mem *ipc; /* set once exported (ALLOC_MEM) or opened (ALLOC_IPC), else NULL */
    uint32_t opens;      /* ALLOC_IPC: cuIpcOpenMemHandle calls not yet closed */
    uint8_t kind;
    uint8_t no_access; /* 1: mapped without access (ALLOC_VMM_MAP before cuMemSetAccess) */
};

struct alloc_table {
    struct alloc *v; /* sorted by va, non-overlapping */
    uint32_t n, cap;
};

void atab_init(struct alloc_table *t);
void atab_destroy(struct alloc_table *t);
int atab_insert(struct alloc_table *t, const struct alloc *a);
/* Index of the allocation containing [va, va+len) (len 0 counts as 1), or -1. */
long atab_find(const struct alloc_table *t, uint64_t va, uint64_t len);
/* Index of the allocation whose base is exactly va, or -1. */
long atab_find_base(const struct alloc_table *t, uint64_t va);
/* Index of the first of the ALLOC_VMM_MAP mappings that together cover [va, va+len) back to
 * back, in zone and in backend addresses alike (so one backend range), or -1. */
long atab_find_span(const struct alloc_table *t, uint64_t va, uint64_t len);
/* Whether any allocation overlaps [va, va+len). */
int atab_overlaps(const struct alloc_table *t, uint64_t va, uint64_t len);
void atab_remove(struct alloc_table *t, long i);

/* ---- zones ---- */
struct zone_registry;
struct session;

struct zone {
    struct zone_registry *reg;
    char name[ZONE_NAME_MAX];
    uint32_t id;
    uint64_t quota;   /* bytes; 0: the whole device */
    uint64_t used;    /* bytes charged, all sessions (under lock) */
    uint64_t peak;    /* the highest used (under lock) */
    uint64_t allocs;  /* live device allocations (under lock) */
    uint64_t va_next, va_end;
    int clients;
    int removed;
    int refs;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when clients drops */
    struct zone *next;
    struct worker_stats *pub; /* figures published to the supervisor (worker_ipc.h), or NULL */
    struct worker_counters *m; /* counters.h: &pub->m while counting, else NULL */
    uint64_t graph_bytes; /* host memory of the zone's graphs (atomic), <= ZONE_GRAPH_BYTES */
    uint32_t narrays;     /* live arrays, all sessions (atomic), <= ZONE_MAX_ARRAYS */
    uint32_t ntexobjs;    /* live texture and surface objects (atomic), <= ZONE_MAX_TEXOBJS */
    uint64_t vmm_reserved; /* bytes of the zone's reserves (under lock), <= ZONE_VMM_RESERVE_BYTES */
    uint64_t heap_charged; /* real backend: the driver's device heap size last set, charged
                            * (under lock; held while the worker's context lives) */
    struct ipc_export *ipc[ZONE_MAX_IPC_EXPORTS]; /* live exports, by slot (under lock) */
    uint32_t ipc_imports; /* ALLOC_IPC entries of all sessions (under lock) */
};

struct zone_registry {
    pthread_mutex_t lock;
    struct zone *zones;
    uint32_t next_id;
    uint32_t next_seed;
    const struct backend_ops *be;
    uint64_t scrubbed_bytes;  /* atomics */
    uint64_t allocated_bytes;
};

void zreg_init(struct zone_registry *r, const struct backend_ops *be);
/* Adds a zone; -EEXIST if the name is taken, -EINVAL for a bad name. *out holds a reference. */
int zreg_add(struct zone_registry *r, const char *name, uint64_t quota, struct zone **out);
/* Finds a zone by name and takes a reference, or NULL. */
struct zone *zreg_get(struct zone_registry *r, const char *name);
/* Unlinks a zone from the registry (its sessions must be stopped by the caller). */
int zreg_unlink(struct zone_registry *r, struct zone *z);
void zone_ref(struct zone *z);
/* Copies the zone's usage, peak, allocations and client count to z->pub (if set), for the
 * supervisor to read. */
void zone_publish(struct zone *z);
void zone_unref(struct zone *z);
int zone_name_valid(const char *name);
/* "512M", "2G", "1048576" -> bytes; 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);

/* Charges/uncharges the zone's quota; -ENOMEM (quota) or -ENOSPC (address space). va NULL:
 * charges bytes that get no zone address (staged images, real-backend memory whose addresses
 * are the device's own). */
int zone_charge(struct zone *z, uint64_t bytes, uint64_t *va);
void zone_uncharge(struct zone *z, uint64_t bytes);
/* Changes a charge of the zone held at *held (a field of the zone, under its lock) to bytes:
 * 0, or -ENOMEM when the growth exceeds the quota (nothing changed). */
int zone_recharge(struct zone *z, uint64_t *held, uint64_t bytes);
/* Counts a reserve of bytes against ZONE_VMM_RESERVE_BYTES (-ENOSPC past it) and, when va is not
 * NULL, gives it a zone address range aligned to align (a power of two); not charged to the
 * quota. zone_unreserve gives the count back (the address range is not reused). */
int zone_reserve(struct zone *z, uint64_t bytes, uint64_t align, uint64_t *va);
void zone_unreserve(struct zone *z, uint64_t bytes);
/* Takes zone address space for bytes without charging the quota (-ENOSPC). */
int zone_reserve_va(struct zone *z, uint64_t bytes, uint64_t *va);
/* A device allocation of the zone made (+1) or freed (-1). */
void zone_count_alloc(struct zone *z, int delta);

/* ---- sessions: one connected client of a zone ---- */
struct ctx_obj {
    int primary;
    uint32_t flags;
    uint64_t limits[CU_LIMIT_MAX];
    /* The device-side malloc/free heap, made at the first launch of a kernel whose module
     * uses it (dispatch_ctx_heap): limits[CU_LIMIT_MALLOC_HEAP_SIZE] bytes of zone memory (an
     * ALLOC_HEAP allocation); NULL before, and always with a backend that keeps its own. */
    struct backend_heap *heap;
    int heap_made; /* the heap exists (its size can no longer be set) */
};
struct stream_op;
/* A stream: its backend stream and the worker thread that runs its queue in order (stream.c). */
struct stream_obj {
    idm_handle ctx;
    struct backend_stream *bs;
    struct session *s;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;  /* queue grew, an op finished, or stop */
    struct stream_op *head, *tail;
    uint64_t enq_seq;     /* tickets handed out (dispatch thread, under lock) */
    uint64_t exec_seq;    /* last ticket executed, its reply maybe not yet sent (under lock) */
    uint64_t done_seq;    /* last ticket finished: executed and answered (under lock) */
    int stop;
    int cancel;           /* atomic: its context is going: queued ops drain without running */
    int latched;          /* atomic: first failure of an unanswered request on it (CUresult) */
    uint64_t queued_bytes; /* heap bytes of its queued ops (under lock) */
    int kick_pending;     /* ops queued since its worker was last woken (dispatch thread) */
    uint8_t *rbuf;        /* the worker's reply buffer (session max_reply bytes) */
    struct stream_op *spare; /* small finished ops kept for reuse (under lock, stream.c) */
    uint32_t nspare;      /* how many (under lock; at most OP_SPARE_MAX) */
    struct stream_op *own; /* spares the dispatch thread took (its own, no lock) */
};
/* An event remembers where its last record was queued, to tell when it has happened. */
struct event_obj {
    idm_handle ctx;
    struct backend_event *be;
    struct ipc_event *ipc; /* interprocess events (exported or opened), else NULL */
    int imported;          /* opened with cuIpcOpenEventHandle */
    uint32_t flags;
    int recorded;
    struct stream_obj *rec_stream; /* NULL: the record ran inline (complete) */
    uint64_t rec_seq;
};
struct image_obj { uint8_t *data; uint64_t size; };
/* A physical allocation (cuMemCreate): charged to the quota; lives while its handle has
 * references (handle != 0) or it is mapped (maps > 0), as CUDA keeps released memory that is
 * still mapped. */
struct vmem_obj {
    struct backend_vmem *bv;
    uint64_t size;
    idm_handle handle; /* HT_VMEM; 0 once every reference is released */
    uint32_t refs;     /* cuMemCreate and cuMemRetainAllocationHandle references */
    uint32_t maps;     /* live mappings (ALLOC_VMM_MAP entries) */
    int32_t device;
};
/* A reserved range of zone addresses (backend addresses from baddr on). */
struct vmm_reserve {
    uint64_t va, size, baddr;
};
struct kernel_obj;
struct library_obj {
    idm_handle ctx;
    struct backend_library *bl;
    uint32_t as_module;
    uint64_t charged; /* quota charged for globals the backend's driver allocated */
    struct kernel_obj *kernels; /* looked-up kernels, freed with the library */
};
struct kernel_obj {
    idm_handle library;
    idm_handle self;
    struct backend_kernel *bk;
    char *name; /* owned, up to IDM_SYMBOL_MAX bytes */
    uint32_t param_count, param_bytes;
    struct idm_param *params;
    struct kernel_obj *next;
};

/* A graph node (GRAPH_ADD_NODE's fields, checked; addresses stay the zone's own and are
 * translated at each launch). Its dependencies are the indices of earlier-added or later-added
 * nodes of the same graph; an executable graph's nodes are in dependency order. */
struct graph_node {
    uint32_t kind;         /* enum idm_graph_node */
    uint32_t ndeps, cap_deps;
    uint32_t *deps;
    idm_handle func;       /* kernel nodes */
    uint32_t grid[3], block[3], cluster[3], shared_bytes, param_bytes;
    uint8_t *params;       /* owned, param_bytes */
    uint64_t dst, src, count, pitch, height; /* memset and memcpy nodes */
    uint64_t host_off;     /* host copy nodes: where in the launch's host data */
    uint32_t orig;         /* executable graphs: the node's index in its graph */
    uint32_t value, elem_size;
};
/* A graph (HT_GRAPH) or an executable graph (HT_GEXEC, nodes in dependency order, no deps). */
struct graph_obj {
    idm_handle ctx;
    uint32_t n, cap, edges;
    struct graph_node *v;
    uint64_t host_bytes;   /* the host data its launches carry (host copy nodes) */
    uint64_t bytes;        /* charged to the zone's graph_bytes */
};

/* A CUDA array (HT_ARRAY): its backend array, shape and the quota it holds. */
struct array_obj {
    idm_handle ctx;
    struct backend_array *ba;
    struct backend_array_desc d;
    uint64_t charged;
};
/* A texture or surface object (HT_TEX; tenants name it by value, the backend's). */
struct tex_obj {
    idm_handle ctx;
    uint64_t value;
    idm_handle array;          /* res_type ARRAY: the array's handle */
    struct backend_tex_desc d; /* as created (d.array: the array's backend object) */
};

struct session {
    struct zone *zone;
    const struct backend_ops *be;
    struct backend_zone *bz;
    struct handle_table ht;
    struct alloc_table at;
    idm_handle primary_ctx;
    int primary_refs;
    uint32_t primary_flags;
    int sticky;          /* CUresult of a failed execution (atomic: stream workers set it) */
    int latched;         /* atomic: first failure of an unanswered request on the default
                          * stream, or naming no live stream (stream.c: stream_latch) */
    pthread_rwlock_t at_lock; /* the allocation table: written by the dispatch thread only
                               * (under the write lock), read by stream workers (read lock) */
    /* Sends the reply of a request whose answer was deferred to a stream worker (NULL: replies
     * of deferred requests are dropped, as in the in-process tests). */
    int (*send_reply)(void *ctx, const struct idm_hdr *req, int32_t status, const void *payload,
                      uint32_t len);
    void *reply_ctx;
    /* Kernels running for the session, to cancel them (stream.c): their tickets, whether the
     * session is cancelled (atomic: client gone or closing), and the thread that watches the
     * client's connection while a kernel runs (watch: 0 none, 1 running, 2 stopping). */
    pthread_mutex_t run_lock;
    pthread_cond_t run_cond;
    struct launch_ticket *running;
    int cancelled;
    int watch;
    pthread_t watch_thread;
    uint64_t staging_bytes;
    uint64_t next_buffer_id;
    uint32_t nstreams;
    uint32_t ngraphs;       /* graphs and executable graphs */
    struct vmm_reserve res[SESSION_MAX_RESERVES]; /* reserved ranges, unordered */
    uint32_t nres;
    /* Streams given ops since their workers were last woken (stream.c: session_kick): a run of
     * requests is handed over at once, not one wake-up per op. Dispatch thread only. */
    struct stream_obj *kick[SESSION_MAX_STREAMS];
    uint32_t nkick;
    /* Window ranges named by unanswered requests and still in use (stream.c: session_win_hold):
     * the requests' numbers in arrival order, released in any order by the streams; the
     * release mark published to the client is the number before the oldest one still held. */
    pthread_mutex_t win_lock;
    uint64_t win_idx[SESSION_WIN_HOLDS];
    uint8_t win_done[SESSION_WIN_HOLDS];
    uint32_t win_head, win_n;
    uint64_t win_mark;      /* the last mark published */
    uint64_t rx_idx;        /* the number of the request being dispatched (idm_msg.idx) */
    /* the connection's bulk window (private copy of its geometry) */
    struct idm_conn *conn;
    uint8_t *window;
    uint64_t window_size;
    uint32_t max_reply; /* payload bytes one reply may carry (idm_max_payload) */
    uint8_t *rbuf;      /* reply payload buffer, max_reply bytes */
    char peer[64];      /* "pid=123" / "domid=5" for logs */
};

/* Creates a session of zone z (takes a zone reference and counts a client). window may be NULL.
 * max_payload: the most payload bytes one message of the connection carries (idm_max_payload),
 * which bounds the replies, DtoH data inline in them included. */
int session_open(struct zone *z, struct idm_conn *conn, void *window, uint64_t window_size,
                 uint32_t max_payload, const char *peer, struct session **out);
/* Releases every object of the session in dependency order, then the session. */
void session_close(struct session *s);
/* Releases the objects that belong to context ctx (0: all objects). */
void session_release(struct session *s, idm_handle ctx);

/* Frees one allocation (scrub + uncharge); the index is into s->at. Exported or opened IPC
 * memory: retires the export (exporter) and drops one reference; the last frees the memory. */
void session_free_alloc(struct session *s, long i);
/* Drops allocation a's reference to its IPC memory (a->ipc; an exporter's allocation also
 * retires its export, so its handle opens no more); the last reference scrubs and frees the
 * memory and gives its quota back. a is no longer (or not yet) in the session's table. */
void session_put_ipc(struct session *s, const struct alloc *a);
/* Destroys an event of the session: its handle, and its backend event, or its reference to an
 * interprocess event (an exporter's event also retires its export). Its records have run. */
void session_free_event(struct session *s, idm_handle h, struct event_obj *e);
/* Interprocess events: a new one for backend event be (NULL: out of memory); the next record
 * ticket; a ticket that has run (or never will); waiting for the last ticket handed out. */
struct ipc_event *ipc_event_new(struct backend_event *be);
uint64_t ipc_event_ticket(struct ipc_event *x);
void ipc_event_mark(struct ipc_event *x, uint64_t ticket);
int ipc_event_ready(struct ipc_event *x);
void ipc_event_wait(struct ipc_event *x);
/* Clears every event's reference to a stream that is about to be destroyed (drained). */
void session_forget_stream(struct session *s, struct stream_obj *st);
/* Frees a staging image and uncharges it from the zone's quota. */
void session_free_image(struct session *s, idm_handle h, struct image_obj *im);
/* Frees a graph or executable graph (type HT_GRAPH or HT_GEXEC), its handle and its charge;
 * an executable graph only once the session's streams are drained. */
void session_free_graph(struct session *s, idm_handle h, uint8_t type, struct graph_obj *g);
/* Destroys a texture or surface object (backend, handle, the zone's count). */
void session_free_tex(struct session *s, idm_handle h, struct tex_obj *t);
/* Destroys an array: the texture and surface objects on it first, then the backend array,
 * its quota and handle. */
void session_free_array(struct session *s, idm_handle h, struct array_obj *a);
/* Frees a physical allocation that has neither references nor mappings left (backend memory,
 * charge). */
void session_free_vmem(struct session *s, struct vmem_obj *m);
/* Gives a reserve back (index into s->res): its backend range and its count; no mapping may be
 * left in it. */
void session_free_reserve(struct session *s, uint32_t i);
/* Unloads a library: its kernels, its globals, then the backend library and the handle. */
void session_free_library(struct session *s, idm_handle h, struct library_obj *lib);

#endif /* GPU_PROXY_ZONE_H */
