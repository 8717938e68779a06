/* vgpu.h - libvgpu's internal interface: the one connection context (struct vgpu), local object
 * records (contexts, libraries, functions, allocations), logging and the helpers the Driver API
 * entry points share. Never installed; the library exports only the Driver API (libcuda.map). */
#ifndef VGPU_H
#define VGPU_H

#define __CUDA_API_VERSION_INTERNAL 1 /* declare every exported name as itself (cuMemAlloc,
                                       * cuMemAlloc_v2, cuMemcpyHtoD_v2_ptds, ...) */
#include <cuda.h>
#include <cudaProfiler.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idm.h"
#include "idm_log.h"
#include "idm_transport.h"

#define VGPU_DRIVER_VERSION 13000
#define VGPU_MAX_DEVICES 16
#define VGPU_CTX_STACK 32
#define VGPU_MAX_INFLIGHT 96   /* posted requests without a reply (< ring slots / 2) */
#define VGPU_MAX_CHUNKS 16     /* window chunks */
#define VGPU_HTOD_INLINE_MAX 65536 /* HtoD copies up to this size travel in the ring itself,
                                    * unanswered (api_mem.c); larger ones through the window */
#define VGPU_DTOH_INLINE_MAX 65536 /* DtoH copies up to this size come back in their reply
                                    * (one message over several slots), no window chunk */
#define VGPU_CLS_MAX 64        /* context-local storage entries per context */
#define VGPU_SYMBOL_MAX 4096   /* longest kernel or global name sent (incl. NUL); the request
                                * tail must also fit one message */

/* ---- logging: libvgpu's names for the one logger (idm_log.h), tag "libvgpu", plain lines;
 * the level is VGPU_LOG=error|warn|info|debug|trace when set, else IDM_LOG, default warn ---- */
enum vgpu_log_level { VGPU_LOG_ERROR = IDM_LOG_ERROR, VGPU_LOG_WARN = IDM_LOG_WARN,
                      VGPU_LOG_INFO = IDM_LOG_INFO, VGPU_LOG_DEBUG = IDM_LOG_DEBUG,
                      VGPU_LOG_TRACE = IDM_LOG_TRACE };
void vgpu_log_init(void); /* reads VGPU_LOG */
#define vgpu_log(level, ...) idm_log_write((level), "libvgpu", __VA_ARGS__)
#define vgpu_log_on(lvl) IDM_LOG_ON(lvl)
#define VLOG(lvl, ...) IDM_LOG_AT((lvl), "libvgpu", __VA_ARGS__)

/* ---- handles of local records (vgpu_handle.c) ----
 * CUcontext, CUmodule/CUlibrary and CUfunction/CUkernel given to the tenant are handles of this
 * table (slot, generation, type), never pointers: every entry point looks them up, and a
 * stale, forged or wrong-type handle is refused (NULL) without being read through. */
enum vgpu_htype { VGPU_H_CTX = 1, VGPU_H_LIB = 2, VGPU_H_FUNC = 3 };
/* A new handle for obj; 0 (logged) when the table is full or memory is short. */
uint64_t vgpu_handle_new(enum vgpu_htype t, void *obj);
/* The record of live handle h of type t, or NULL. */
void *vgpu_handle_get(uint64_t h, enum vgpu_htype t);
/* Ends h: 0, or -EINVAL when h is not a live handle of type t. h is refused from then on. */
int vgpu_handle_free(uint64_t h, enum vgpu_htype t);
const char *vgpu_htype_name(enum vgpu_htype t);

/* ---- local object records ---- */
#define VGPU_POOL_MAGIC 0x56504f4cu /* "VPOL" */

struct vgpu_cls_entry {
    void *key;
    void *value;
    void (*dtor)(CUcontext, void *, void *);
};

struct vgpu_ctx {
    uint64_t self;      /* its CUcontext handle (vgpu_handle.c); freed when destroyed */
    int primary;        /* 1: the device's primary context (lives in struct vgpu) */
    CUdevice dev;
    unsigned flags;
    idm_handle h;       /* proxy handle; 0 while a primary context is inactive */
    unsigned refs;      /* primary: retain count */
    unsigned long long id; /* cuCtxGetId */
    pthread_mutex_t cls_lock;
    unsigned cls_n;
    struct vgpu_cls_entry cls[VGPU_CLS_MAX];
};

struct vgpu_func {
    uint64_t self;            /* its CUfunction / CUkernel handle (vgpu_handle.c) */
    idm_handle h;
    struct vgpu_lib *lib;
    struct vgpu_func *next;   /* in lib->funcs */
    char *name;               /* mangled; C++ template names often exceed IDM_NAME_MAX */
    uint32_t param_count;
    uint32_t param_bytes;
    struct idm_param *params;
};

struct vgpu_lib {
    uint64_t self;            /* its CUmodule / CUlibrary handle */
    idm_handle h;
    int as_module;
    struct vgpu_func *funcs;  /* kernels looked up so far (owned) */
};

/* A device allocation as MEM_ALLOC (or a global lookup) reported it. */
struct vgpu_alloc {
    uint64_t base;
    uint64_t size;
    int global;              /* module global: not freeable */
    idm_handle ctx;          /* the context it belongs to */
    struct vgpu_pool *pool;  /* stream-ordered: the pool it counts in; NULL none */
};

/* A device's default memory pool (the only pool): its attributes and usage figures. Memory is
 * allocated at cuMemAllocAsync and returned to the zone at free, so reserved == used. */
struct vgpu_pool {
    uint32_t magic;
    int dev;
    int created;                 /* 1: cuMemPoolCreate's (heap, on vgpu.created_pools) */
    int destroyed;               /* created: destroyed, freed with its last allocation */
    uint64_t max_size;           /* created: CUmemPoolProps.maxSize (0: none) */
    struct vgpu_pool *next;      /* created: the next created pool */
    uint64_t release_threshold;  /* kept and returned; changes nothing */
    int reuse[3];                /* CU_MEMPOOL_ATTR_REUSE_*: kept and returned */
    uint64_t used, used_high;
};

/* Pinned host memory allocated locally. */
struct vgpu_host {
    void *base;
    size_t size;             /* as requested */
    size_t map_size;         /* page-rounded, 0 for registered memory */
    unsigned flags;
};

struct vgpu_device {
    uint64_t total_mem;
    uint8_t uuid[16];
    char name[256];
    int32_t attrs[IDM_ATTR_COUNT];
};

/* One request waiting for its reply. */
struct vgpu_pending {
    uint64_t seq;        /* 0: free slot */
    uint16_t op;
    int chunk;           /* window chunk it owns, -1 none */
    void *dst;           /* MEMCPY_DTOH: where the bytes go */
    uint64_t len;
    uint32_t slots;      /* reply ring slots its reply takes (counted in reply_slots) */
};

/* The connection context: everything libvgpu knows, one instance per process. */
struct vgpu {
    pthread_mutex_t lock;        /* connection, pending table, window, allocation tables */
    int state;                   /* 0 not initialised, 1 ready, -1 no proxy */
    CUresult init_error;
    const struct idm_transport *transport;
    struct idm_conn *conn;
    char address[256];
    uint64_t seq;
    struct idm_msg msg;          /* the message being received (under lock) */
    size_t max_tail_req;         /* bytes a request tail may carry */
    size_t max_tail_rep;
    int dead;                    /* the connection failed */
    CUresult async_error;        /* first error of an async op, reported at the next sync */

    uint8_t *window;
    uint64_t window_size;
    uint64_t chunk_size;
    unsigned nchunks;
    uint32_t chunk_busy;         /* bit i: chunk i owned by a pending request, or by an
                                  * unanswered one until the release mark passes chunk_mark[i] */
    uint64_t chunk_mark[VGPU_MAX_CHUNKS]; /* unanswered request's number (idm_tx_count); 0: none */
    struct vgpu_pending pending[VGPU_MAX_INFLIGHT];
    unsigned npending;
    unsigned max_inflight;       /* <= VGPU_MAX_INFLIGHT and half the ring: replies always fit */
    uint32_t reply_slots;        /* reply ring slots the pending requests' replies take */
    uint32_t max_reply_slots;    /* their limit: half the ring (or one largest reply) */

    /* from HELLO */
    uint64_t quota;
    uint32_t zone_id;
    char zone_name[64];
    int device_count;
    struct vgpu_device dev[VGPU_MAX_DEVICES];
    struct vgpu_ctx primary[VGPU_MAX_DEVICES];
    struct vgpu_pool pools[VGPU_MAX_DEVICES]; /* default pools, usage under lock */
    struct vgpu_pool *created_pools; /* cuMemPoolCreate's live pools (under lock) */
    struct vgpu_pool *current_pool[VGPU_MAX_DEVICES]; /* cuDeviceSetMemPool's; NULL: default */
    unsigned ncreated_pools;

    struct vgpu_alloc *allocs;   /* sorted by base */
    size_t nallocs, cap_allocs;
    struct vgpu_host *hosts;
    size_t nhosts, cap_hosts;
};

struct vgpu *vgpu_get(void);

/* ---- connection and call layer (vgpu_conn.c) ---- */
/* cuInit's work: connect, HELLO, cache device properties. Idempotent. */
CUresult vgpu_init(struct vgpu *v);
/* CUDA_SUCCESS when initialised and connected, else the error every call returns. */
CUresult vgpu_ready(struct vgpu *v);

/* One synchronous request: sends req (+ tail), waits for its reply and copies its fixed part
 * (rep_size bytes, zero-filled when shorter) and tail. Replies to posted requests met on the way
 * are processed. Caller must NOT hold v->lock. */
CUresult vgpu_rpc(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                  const void *tail, size_t tail_len, void *rep, size_t rep_size, void *rep_tail,
                  size_t rep_tail_cap, size_t *rep_tail_len);
/* The locked forms; caller holds v->lock. */
CUresult vgpu_rpc_locked(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                         const void *tail, size_t tail_len, void *rep, size_t rep_size,
                         void *rep_tail, size_t rep_tail_cap, size_t *rep_tail_len);
/* Sends a request without waiting; its reply is processed later (chunk released, DTOH data
 * copied to dst, a failure remembered in async_error). Caller holds v->lock. */
CUresult vgpu_post_locked(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                          const void *tail, size_t tail_len, int chunk, void *dst, uint64_t len);
/* Sends an ASYNC request that names no window range and returns no data, unanswered
 * (IDM_F_NOREPLY): no pending entry, no reply; the worker latches a failure on the request's
 * stream and the next synchronising call there (STREAM_SYNCHRONIZE, STREAM_QUERY,
 * CTX_SYNCHRONIZE) returns it. Returns once the request is in the ring. Caller holds v->lock. */
CUresult vgpu_send_locked(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                          const void *tail, size_t tail_len);
/* Sends an ASYNC request whose bulk data is in window chunk `chunk`, unanswered: the chunk is
 * ours again once the worker's release mark (idm_release_mark) passes the request's number; a
 * failure is latched as for vgpu_send_locked. The chunk is given back on failure. Caller holds
 * v->lock. */
CUresult vgpu_send_chunk_locked(struct vgpu *v, uint16_t op, const void *req, size_t req_size,
                                int chunk);
/* The most bytes of op's bulk data that travel inline in one message (its properties in
 * idm_ops.def: the request tail for IN ops, the reply tail for OUT ops); larger data goes through
 * a window chunk. */
uint64_t vgpu_inline_max(const struct vgpu *v, uint32_t op);
/* Waits for a free window chunk (processing replies, or waiting for the release mark); returns
 * its index or -1 with *err set. */
int vgpu_chunk_get_locked(struct vgpu *v, CUresult *err);
void *vgpu_chunk_ptr(struct vgpu *v, int chunk);
void vgpu_chunk_put_locked(struct vgpu *v, int chunk);
/* Processes replies until nothing is pending; returns and clears async_error. */
CUresult vgpu_drain_locked(struct vgpu *v);
/* Processes replies until no request of op waits for one (other errors stay remembered). */
CUresult vgpu_drain_op_locked(struct vgpu *v, uint16_t op);
/* Processes the replies already there without waiting. */
void vgpu_poll_locked(struct vgpu *v);
CUresult vgpu_take_async_error_locked(struct vgpu *v);

/* Errors of the internals (-errno) as a CUresult. */
CUresult vgpu_errno_to_cu(int err);

/* ---- contexts (api_ctx.c) ---- */
struct vgpu_ctx *vgpu_ctx_current(void);
/* The current context's proxy handle; CUDA_ERROR_INVALID_CONTEXT if none. */
CUresult vgpu_cur_ctx_handle(idm_handle *out);
struct vgpu_ctx *vgpu_ctx_check(CUcontext c); /* NULL unless a live context of ours */
/* The CUcontext handle of record c (NULL for NULL). */
static inline CUcontext vgpu_ctx_handle(const struct vgpu_ctx *c)
{
    return c ? (CUcontext)(uintptr_t)c->self : NULL;
}
/* Runs and clears every context-local-storage destructor of ctx. */
void vgpu_cls_destroy_all(struct vgpu_ctx *ctx);

/* ---- export tables (vgpu_export.c) ---- */
CUresult vgpu_cls_put(CUcontext ctx, void *key, void *value,
                      void (*dtor)(CUcontext, void *, void *));
/* The message M of the integrity check (for the unit test): writes at most cap bytes, returns
 * the length. */
size_t vgpu_integrity_message(uint8_t *buf, size_t cap, uint32_t version, uint64_t unix_seconds,
                              const void *rt_table, const void *ic_table, const void *ic_fn,
                              uint32_t pid, uint32_t tid);

/* ---- memory bookkeeping (api_mem.c) ---- */
int vgpu_alloc_add_locked(struct vgpu *v, uint64_t base, uint64_t size, int global,
                          idm_handle ctx);
/* Forgets the allocation whose base is base (none: nothing). */
void vgpu_alloc_remove_locked(struct vgpu *v, uint64_t base);
/* Forgets every allocation of a context (destroyed or reset). */
void vgpu_alloc_forget_ctx_locked(struct vgpu *v, idm_handle ctx);
/* The allocation containing [p, p+1), or NULL. */
const struct vgpu_alloc *vgpu_alloc_find_locked(struct vgpu *v, uint64_t p);
const struct vgpu_host *vgpu_host_find_locked(struct vgpu *v, const void *p);
/* MEM_ALLOC in the current context, recorded locally; pool: the pool it counts in (and whose
 * maximum size it must fit), NULL for cuMemAlloc. */
CUresult vgpu_mem_alloc(CUdeviceptr *dptr, size_t bytesize, struct vgpu_pool *pool);

/* ---- virtual memory management (api_vmm.c) ---- */
/* Clears the attributes of what it does not support (shareable handles, RDMA) on device d; the
 * proxy reports VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED as its backend implements it. */
void vgpu_vmm_init(struct vgpu *v, int d);

/* Host to device / device to host copies of len bytes on stream (api_mem.c); a DtoH's bytes
 * land when its replies are processed. Caller holds v->lock. */
CUresult vgpu_htod_locked(struct vgpu *v, uint64_t dst, const void *src, size_t len,
                          idm_handle stream);
CUresult vgpu_dtoh_locked(struct vgpu *v, void *dst, uint64_t src, size_t len,
                          idm_handle stream);

/* ---- managed memory (api_managed.c): host pages at the device address, the host's while no
 * GPU work that may see them is outstanding, the GPU's (PROT_NONE on the host) from the launch
 * that may see them to the synchronisation that ends it. The hooks below are the only places
 * the rest of libvgpu calls; each is called with v->lock held. ---- */
enum { VGPU_SYNC_CTX, VGPU_SYNC_STREAM, VGPU_SYNC_EVENT };
/* Sets device d's attributes: managed memory yes, concurrent access and mapped host memory no. */
void vgpu_managed_init(struct vgpu *v, int d);
/* Before a kernel (or graph) launch on s: sends the dirty pages of the allocations it may see
 * and gives them to the GPU. */
CUresult vgpu_managed_launch_locked(struct vgpu *v, CUstream s);
/* After a synchronisation (what: VGPU_SYNC_*; h: the stream or event handle, 0 for the
 * context) or a query that found the work done: the allocations whose GPU work has ended come
 * back to the host. */
CUresult vgpu_managed_synced_locked(struct vgpu *v, int what, uint64_t h);
void vgpu_managed_event_record_locked(idm_handle event, CUstream s);
void vgpu_managed_event_forget_locked(idm_handle event);
/* 1 when p lies in a managed allocation; *on_device: whether the GPU owns it now. */
int vgpu_managed_on_device_locked(uint64_t p, int *on_device);
/* 1 when p lies in a managed allocation: its pointer and size. */
int vgpu_managed_range_locked(uint64_t p, uint64_t *start, uint64_t *size);
/* cuMemFree of a managed pointer: unmaps it, forgets it, returns 1 and the device allocation
 * to free in *base; 0 when p is not the start of a managed allocation. */
int vgpu_managed_free_locked(uint64_t p, uint64_t *base);
/* A context destroyed or reset: its managed allocations are unmapped and forgotten. */
void vgpu_managed_forget_ctx_locked(idm_handle ctx);
/* Mapped host memory (DEVICEMAP) is refused: logs what (once) and returns NOT_SUPPORTED. */
CUresult vgpu_mapped_host_refuse(const char *what, const void *p);
/* A memset of host-owned managed memory is done on the host (returns 1, *r its result); 0: not
 * managed or the GPU's now, the memset goes to the device. */
int vgpu_managed_memset_locked(struct vgpu *v, uint64_t dst, size_t pitch, uint32_t value,
                               uint32_t elem, size_t width, size_t height, CUresult *r);

/* ---- arrays (api_array.c) ---- */
/* A 2D copy with an array side (what: the entry point, for capture refusals). */
CUresult vgpu_copy2d_array(const CUDA_MEMCPY2D *m, CUstream hs, const char *what);

/* ---- IPC events (api_ipc.c) ---- */
/* Notes e as an interprocess event of this process (created with CU_EVENT_INTERPROCESS or
 * opened; live 1) or forgets it (destroyed; live 0). 0 or -ENOMEM. */
int vgpu_ipc_event_note(CUevent e, int live);
/* After a record of e was sent unanswered: for an interprocess event, returns once the worker
 * has taken it (a round trip behind it), so that another process's wait that follows sees it. */
void vgpu_ipc_event_recorded_locked(struct vgpu *v, CUevent e);

/* ---- memory pools (api_pool.c) ---- */
/* Sets up device d's default pool and the pool attributes its cached properties advertise. */
void vgpu_pool_init(struct vgpu *v, int d);
/* The live pool behind a handle (a default pool or a created one not destroyed), else NULL;
 * compares handles, never reads through one. */
struct vgpu_pool *vgpu_pool_check_locked(struct vgpu *v, CUmemoryPool h);
/* An allocation of pool p was freed: a destroyed created pool goes with its last one. */
void vgpu_pool_uncount_locked(struct vgpu *v, struct vgpu_pool *p, uint64_t size);

/* ---- streams ---- */
static inline idm_handle vgpu_stream_handle(CUstream s)
{
    uintptr_t u = (uintptr_t)s;
    return (u == (uintptr_t)CU_STREAM_LEGACY || u == (uintptr_t)CU_STREAM_PER_THREAD) ? 0 : u;
}
/* A stream argument of a _ptsz entry point (gen/vgpu_per_thread.h): 0 is the calling thread's
 * default stream there. */
static inline CUstream vgpu_per_thread_stream(CUstream s)
{
    return s ? s : CU_STREAM_PER_THREAD;
}

/* ---- graphs and stream capture (api_graph.c) ----
 * A capturing stream records instead of executing: its launches, memsets and device-to-device
 * copies become nodes of the proxy's graph. The entry points of those calls ask
 * vgpu_capture_node (or _copy) first, which answers VGPU_NOT_CAPTURED when their stream is not
 * capturing; synchronous calls ask vgpu_capture_unsafe. vgpu_capture_on() is the cheap test
 * for "some stream of the process captures" that guards both. */
#define VGPU_NOT_CAPTURED ((CUresult)-1)
extern int vgpu_captures_live; /* captures begun and not ended (atomic) */
static inline int vgpu_capture_on(void)
{
    return __atomic_load_n(&vgpu_captures_live, __ATOMIC_ACQUIRE) != 0;
}
struct idm_req_GRAPH_ADD_NODE;
/* 1 when stream s is in a capture (active or invalidated). */
int vgpu_capturing(CUstream s);
/* Records node n (its deps filled here) with params (n->param_bytes bytes, NULL for none) in
 * the capture of stream s; VGPU_NOT_CAPTURED when s does not capture. */
CUresult vgpu_capture_node(CUstream s, struct idm_req_GRAPH_ADD_NODE *n, const void *params);
/* An asynchronous copy of len bytes on s (dst_dev, src_dev: which sides are device memory): a
 * node (a host side is read or written at each launch of the graph); host to host is refused
 * and the capture invalidated. */
CUresult vgpu_capture_copy(CUstream s, int dst_dev, int src_dev, uint64_t dst, uint64_t src,
                           size_t len);
/* An asynchronous call on s that cannot be captured (what: its name): refused with
 * CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED and the capture invalidated when s captures, else
 * VGPU_NOT_CAPTURED. */
CUresult vgpu_capture_refuse(CUstream s, const char *what);
/* A potentially unsafe call (allocation, a synchronous copy or synchronisation): CUDA_SUCCESS,
 * or CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED (the captures that forbid it invalidated) when the
 * calling thread's capture mode forbids it during the captures under way. */
CUresult vgpu_capture_unsafe(const char *what);
/* Synchronising or querying stream s: CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED (and the capture
 * invalidated) when s captures, else CUDA_SUCCESS. */
CUresult vgpu_capture_sync(CUstream s, const char *what);
/* Event record and stream wait during capture: the event takes s's capture dependencies, a
 * wait joins s to the event's capture; VGPU_NOT_CAPTURED when neither is involved. */
CUresult vgpu_capture_record(CUevent e, CUstream s);
CUresult vgpu_capture_wait(CUstream s, CUevent e);
/* The node of a launch of kernel p (api_module.c): n filled (kind, func, geometry,
 * param_bytes), the packed arguments in *params (malloc'd, NULL when none). */
CUresult vgpu_kernel_node(const void *p, const uint32_t grid[3], const uint32_t block[3],
                          const uint32_t cluster[3], uint32_t shared, void **kernelParams,
                          void **extra, struct idm_req_GRAPH_ADD_NODE *n, uint8_t **params);

/* ---- images and parameters (vgpu_image.c, vgpu_params.c; pure, unit-tested) ---- */
/* Finds the bytes to upload for a code image: a fatbin wrapper (its fatbin), a fatbin, an ELF
 * or NUL-terminated PTX text. Returns 0 with *start and *size set, or -EINVAL. */
int vgpu_image_extent(const void *image, const void **start, size_t *size);
/* Packs kernelParams (one pointer per parameter) into buf[param_bytes] by the layout. */
int vgpu_params_pack(const struct idm_param *layout, uint32_t count, uint32_t param_bytes,
                     void **kernel_params, uint8_t *buf);
/* Packs the `extra` form (CU_LAUNCH_PARAM_BUFFER_POINTER/SIZE/END). */
int vgpu_params_pack_extra(uint32_t param_bytes, void **extra, uint8_t *buf);

/* ---- cuGetProcAddress (vgpu_gpa.c) ---- */
CUresult vgpu_gpa_lookup(const char *symbol, int version, cuuint64_t flags, void **pfn,
                         CUdriverProcAddressQueryResult *status);

#endif /* VGPU_H */
