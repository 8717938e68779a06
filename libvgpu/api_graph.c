/* api_graph.c - CUDA graphs (issue 16): the explicit graph API and stream capture. Graphs live
 * in the proxy's worker (GRAPH_* ops): CUgraph and CUgraphExec are its handles, a CUgraphNode
 * is its node index + 1, and a launch is one request (its host copy nodes' data travel in one
 * window chunk with it; such a launch waits for the graph). Capture is kept here: which streams and
 * events belong to which capture, each stream's current dependencies, the capture's open ends
 * (to tell an unjoined fork), and the rules of CUDA's capture modes for unsafe calls. */
#include "vgpu_calls.h"

#include <stdlib.h>
#include <string.h>

#define CAP_MAX 16      /* captures under way at once in the process */
#define CAP_STREAMS 128 /* streams taking part in them */
#define CAP_EVENTS 256  /* events recorded in them */
#define CAP_DEPS 64     /* a stream's or event's dependencies */
#define CAP_LEAVES 256  /* a capture's nodes that nothing depends on yet */

#define NODE_OF(i) ((CUgraphNode)(uintptr_t)((uint64_t)(i) + 1))
#define GRAPH_H(g) ((idm_handle)(uintptr_t)(g))

struct dep_set {
    uint32_t n;
    uint32_t v[CAP_DEPS];
};

struct capture {
    int live;
    idm_handle graph;
    idm_handle origin;
    CUstreamCaptureMode mode;
    pthread_t thread;
    unsigned long long id;
    CUresult error; /* CUDA_SUCCESS while valid, else why it was invalidated */
    uint32_t nleaves;
    uint32_t leaves[CAP_LEAVES];
};

/* A stream or an event in a capture (cap: index + 1 into caps; 0 free). */
struct cap_member {
    uint64_t h;
    int cap;
    struct dep_set deps;
};

int vgpu_captures_live;
static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct capture caps[CAP_MAX];
static struct cap_member cap_streams[CAP_STREAMS], cap_events[CAP_EVENTS];
static unsigned long long next_capture_id = 1;
static __thread CUstreamCaptureMode thread_mode = CU_STREAM_CAPTURE_MODE_GLOBAL;

/* ---- sending nodes and edges ---- */

/* Adds count edges from[i] -> to[i] to graph, IDM_GRAPH_EDGES_MAX a request. */
static CUresult send_edges(struct vgpu *v, idm_handle graph, const uint32_t *from,
                           const uint32_t *to, size_t count)
{
    for (size_t i = 0; i < count; i += IDM_GRAPH_EDGES_MAX) {
        struct idm_req_GRAPH_ADD_DEPS rq = {.graph = graph};
        struct idm_rep_GRAPH_ADD_DEPS rp;
        rq.count = (uint32_t)(count - i < IDM_GRAPH_EDGES_MAX ? count - i : IDM_GRAPH_EDGES_MAX);
        memcpy(rq.from, from + i, rq.count * sizeof(uint32_t));
        memcpy(rq.to, to + i, rq.count * sizeof(uint32_t));
        CUresult r = VGPU_CALL(v, GRAPH_ADD_DEPS, &rq, &rp);
        if (r != CUDA_SUCCESS)
            return r;
    }
    return CUDA_SUCCESS;
}

/* A synchronous request rq (req_size bytes) of op that carries n bytes of kernel parameters:
 * in the tail or, when they do not fit, a window chunk (its range in *win_off, *win_len). */
static CUresult call_with_params(struct vgpu *v, uint16_t op, void *rq, size_t req_size,
                                 uint64_t *win_off, uint64_t *win_len, const void *params,
                                 uint64_t n, void *rep, size_t rep_size)
{
    CUresult r = CUDA_SUCCESS;
    pthread_mutex_lock(&v->lock);
    if (n <= vgpu_inline_max(v, op)) {
        r = vgpu_rpc_locked(v, op, rq, req_size, params, n, rep, rep_size, NULL, 0, NULL);
    } else if (n > v->chunk_size) {
        r = CUDA_ERROR_NOT_SUPPORTED;
    } else {
        int c = vgpu_chunk_get_locked(v, &r);
        if (c >= 0) {
            memcpy(vgpu_chunk_ptr(v, c), params, n);
            *win_off = (uint64_t)c * v->chunk_size;
            *win_len = n;
            r = vgpu_rpc_locked(v, op, rq, req_size, NULL, 0, rep, rep_size, NULL, 0, NULL);
            vgpu_chunk_put_locked(v, c);
        }
    }
    pthread_mutex_unlock(&v->lock);
    return r;
}

static CUresult post_node(struct vgpu *v, struct idm_req_GRAPH_ADD_NODE *n, const void *params,
                          uint32_t *node)
{
    struct idm_rep_GRAPH_ADD_NODE rp;
    CUresult r = call_with_params(v, IDM_OP_GRAPH_ADD_NODE, n, sizeof(*n), &n->win_off,
                                  &n->win_len, params, n->param_bytes, &rp, sizeof(rp));
    if (r == CUDA_SUCCESS)
        *node = rp.node;
    return r;
}

/* Adds node n after deps[0..ndeps) to graph; *node gets its index. */
static CUresult send_node(idm_handle graph, struct idm_req_GRAPH_ADD_NODE *n, const void *params,
                          const uint32_t *deps, size_t ndeps, uint32_t *node)
{
    struct vgpu *v = vgpu_get();
    size_t first = ndeps < IDM_GRAPH_DEPS_MAX ? ndeps : IDM_GRAPH_DEPS_MAX;
    CUresult r;

    n->graph = graph;
    n->ndeps = (uint32_t)first;
    memcpy(n->deps, deps, first * sizeof(uint32_t));
    if ((r = post_node(v, n, params, node)) != CUDA_SUCCESS || ndeps == first)
        return r;
    uint32_t *to = malloc((ndeps - first) * sizeof(uint32_t));
    if (to == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    for (size_t i = 0; i < ndeps - first; i++)
        to[i] = *node;
    r = send_edges(v, graph, deps + first, to, ndeps - first);
    free(to);
    return r;
}

/* ---- host memory nodes: which host memory a graph's or executable graph's launches read
 * (HTOD) and write (DTOH), at which offset of the host data the launch carries in one window
 * chunk (so a graph's host copies total at most one chunk) ---- */

struct host_node {
    int dtoh;
    void *host;
    uint64_t off, len;
};

struct host_book {
    uint64_t h;   /* the graph's or executable graph's handle (their type tags differ) */
    uint64_t bytes;
    size_t n, cap;
    struct host_node *v;
};

static pthread_mutex_t book_lock = PTHREAD_MUTEX_INITIALIZER; /* after cap_lock, before v->lock */
static struct host_book *books;
static size_t nbooks, cap_books;

static struct host_book *book_find_locked(uint64_t h)
{
    for (size_t i = 0; i < nbooks; i++)
        if (books[i].h == h)
            return &books[i];
    return NULL;
}

/* h's book, created empty when it has none; NULL when out of memory. */
static struct host_book *book_get_locked(uint64_t h)
{
    struct host_book *b = book_find_locked(h);
    if (b != NULL)
        return b;
    if (nbooks == cap_books) {
        size_t cap = cap_books ? cap_books * 2 : 8;
        struct host_book *n = realloc(books, cap * sizeof(*n));
        if (n == NULL)
            return NULL;
        books = n;
        cap_books = cap;
    }
    books[nbooks] = (struct host_book){.h = h};
    return &books[nbooks++];
}

static int book_push_locked(struct host_book *b, const struct host_node *hn)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        struct host_node *v = realloc(b->v, cap * sizeof(*v));
        if (v == NULL)
            return -1;
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = *hn;
    if (hn->off + hn->len > b->bytes)
        b->bytes = hn->off + hn->len;
    return 0;
}

static void book_drop(uint64_t h)
{
    pthread_mutex_lock(&book_lock);
    struct host_book *b = book_find_locked(h);
    if (b != NULL) {
        free(b->v);
        *b = books[--nbooks];
    }
    pthread_mutex_unlock(&book_lock);
}

/* The executable graph x gets a copy of graph g's book. */
static CUresult book_copy(uint64_t g, uint64_t x)
{
    CUresult r = CUDA_SUCCESS;
    pthread_mutex_lock(&book_lock);
    struct host_book *b = book_find_locked(g);
    if (b != NULL && b->n > 0) {
        size_t bi = (size_t)(b - books); /* book_get may move the table */
        struct host_book *c = book_get_locked(x);
        for (size_t i = 0; c != NULL && i < books[bi].n; i++)
            if (book_push_locked(c, &books[bi].v[i]) < 0)
                c = NULL;
        if (c == NULL)
            r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&book_lock);
    return r;
}

/* Adds a host copy node (n: its device side, kind and count) after deps to graph: its host
 * data goes at the end of the graph's, which must fit one window chunk. */
static CUresult send_host_node(idm_handle graph, struct idm_req_GRAPH_ADD_NODE *n, void *host,
                               const uint32_t *deps, size_t ndeps, uint32_t *node)
{
    struct vgpu *v = vgpu_get();
    CUresult r = CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_lock(&book_lock);
    struct host_book *b = book_get_locked(graph);
    if (b != NULL && b->bytes + n->count > v->chunk_size) {
        VLOG(VGPU_LOG_WARN, "a graph's copies from and to host memory take more than one "
                            "%llu-byte window chunk: not supported",
             (unsigned long long)v->chunk_size);
        r = CUDA_ERROR_NOT_SUPPORTED;
    } else if (b != NULL) {
        struct host_node hn = {.dtoh = n->kind == IDM_GNODE_DTOH, .host = host, .off = b->bytes,
                               .len = n->count};
        n->host_off = hn.off;
        if ((r = send_node(graph, n, NULL, deps, ndeps, node)) == CUDA_SUCCESS &&
            book_push_locked(b, &hn) < 0)
            r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    pthread_mutex_unlock(&book_lock);
    return r;
}

/* ---- capture state (under cap_lock) ---- */

static struct cap_member *member_find(struct cap_member *tab, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        if (tab[i].cap != 0 && tab[i].h == h)
            return &tab[i];
    return NULL;
}

static struct cap_member *member_new(struct cap_member *tab, size_t n, uint64_t h, int cap)
{
    for (size_t i = 0; i < n; i++)
        if (tab[i].cap == 0) {
            tab[i] = (struct cap_member){.h = h, .cap = cap};
            return &tab[i];
        }
    return NULL;
}

/* The capture stream s takes part in, or NULL (the default streams never capture). */
static struct cap_member *stream_member(CUstream s)
{
    idm_handle h = vgpu_stream_handle(s);
    return h == 0 ? NULL : member_find(cap_streams, CAP_STREAMS, h);
}

static struct capture *cap_of(const struct cap_member *m)
{
    return &caps[m->cap - 1];
}

/* Invalidates capture c (the first reason stays). */
static void cap_invalidate(struct capture *c, CUresult why, const char *what)
{
    if (c->error == CUDA_SUCCESS) {
        c->error = why;
        VLOG(VGPU_LOG_INFO, "stream capture %llu invalidated by %s (CUresult %d)", c->id, what,
             why);
    }
}

/* Adds the node set a to b (at most CAP_DEPS); -1 when it does not fit. */
static int deps_union(struct dep_set *b, const struct dep_set *a)
{
    for (uint32_t i = 0; i < a->n; i++) {
        uint32_t j = 0;
        while (j < b->n && b->v[j] != a->v[i])
            j++;
        if (j < b->n)
            continue;
        if (b->n == CAP_DEPS)
            return -1;
        b->v[b->n++] = a->v[i];
    }
    return 0;
}

/* Node was added after deps: they are no longer open ends, node is. */
static void leaves_update(struct capture *c, const struct dep_set *deps, uint32_t node)
{
    for (uint32_t i = 0; i < c->nleaves;) {
        uint32_t j = 0;
        while (j < deps->n && deps->v[j] != c->leaves[i])
            j++;
        if (j < deps->n)
            c->leaves[i] = c->leaves[--c->nleaves];
        else
            i++;
    }
    if (c->nleaves < CAP_LEAVES)
        c->leaves[c->nleaves++] = node;
    else
        cap_invalidate(c, CUDA_ERROR_NOT_SUPPORTED, "more than 256 unjoined branches");
}

/* Ends capture c: its streams and events leave it. */
static void cap_release(int ci)
{
    for (size_t i = 0; i < CAP_STREAMS; i++)
        if (cap_streams[i].cap == ci + 1)
            cap_streams[i].cap = 0;
    for (size_t i = 0; i < CAP_EVENTS; i++)
        if (cap_events[i].cap == ci + 1)
            cap_events[i].cap = 0;
    caps[ci].live = 0;
    __atomic_sub_fetch(&vgpu_captures_live, 1, __ATOMIC_RELEASE);
}

/* ---- the hooks of the other entry points ---- */

int vgpu_capturing(CUstream s)
{
    if (!vgpu_capture_on())
        return 0;
    pthread_mutex_lock(&cap_lock);
    int on = stream_member(s) != NULL;
    pthread_mutex_unlock(&cap_lock);
    return on;
}

/* Records node n in the capture of s: with params, or a host copy node of host memory (host
 * non-NULL). */
static CUresult capture_add(CUstream s, struct idm_req_GRAPH_ADD_NODE *n, const void *params,
                            void *host)
{
    uint32_t node;
    pthread_mutex_lock(&cap_lock);
    struct cap_member *m = stream_member(s);
    CUresult r = m ? CUDA_SUCCESS : VGPU_NOT_CAPTURED;
    if (m && cap_of(m)->error != CUDA_SUCCESS)
        r = CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    if (r == CUDA_SUCCESS) {
        struct capture *c = cap_of(m);
        r = host ? send_host_node(c->graph, n, host, m->deps.v, m->deps.n, &node) :
            send_node(c->graph, n, params, m->deps.v, m->deps.n, &node);
        if (r != CUDA_SUCCESS) {
            cap_invalidate(c, r, "a node that could not be added");
        } else {
            leaves_update(c, &m->deps, node);
            m->deps.n = 1;
            m->deps.v[0] = node;
        }
    }
    pthread_mutex_unlock(&cap_lock);
    return r;
}

CUresult vgpu_capture_node(CUstream s, struct idm_req_GRAPH_ADD_NODE *n, const void *params)
{
    return capture_add(s, n, params, NULL);
}

/* Refuses the call on capturing member m, invalidating its capture. Under cap_lock. */
static CUresult refuse_locked(struct cap_member *m, CUresult why, const char *what)
{
    if (m == NULL)
        return VGPU_NOT_CAPTURED;
    cap_invalidate(cap_of(m), why, what);
    return why;
}

/* Refuses call `what` on stream s if s captures (logged, its capture invalidated with why). */
static CUresult refuse_stream(CUstream s, CUresult why, const char *what)
{
    pthread_mutex_lock(&cap_lock);
    struct cap_member *m = stream_member(s);
    if (m)
        VLOG(VGPU_LOG_WARN, "%s on a capturing stream is not supported", what);
    CUresult r = refuse_locked(m, why, what);
    pthread_mutex_unlock(&cap_lock);
    return r;
}

CUresult vgpu_capture_copy(CUstream s, int dst_dev, int src_dev, uint64_t dst, uint64_t src,
                           size_t len)
{
    struct idm_req_GRAPH_ADD_NODE n = {.kind = IDM_GNODE_MEMCPY, .dst = dst, .src = src,
                                       .count = len};
    if (dst_dev && src_dev)
        return capture_add(s, &n, NULL, NULL);
    if (dst_dev || src_dev) {
        n.kind = dst_dev ? IDM_GNODE_HTOD : IDM_GNODE_DTOH;
        return capture_add(s, &n, NULL, (void *)(uintptr_t)(dst_dev ? src : dst));
    }
    return refuse_stream(s, CUDA_ERROR_NOT_SUPPORTED, "a host-to-host copy");
}

CUresult vgpu_capture_refuse(CUstream s, const char *what)
{
    if (!vgpu_capture_on())
        return VGPU_NOT_CAPTURED;
    return refuse_stream(s, CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, what);
}

CUresult vgpu_capture_sync(CUstream s, const char *what)
{
    if (!vgpu_capture_on())
        return CUDA_SUCCESS;
    pthread_mutex_lock(&cap_lock);
    CUresult r = refuse_locked(stream_member(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, what);
    pthread_mutex_unlock(&cap_lock);
    return r == VGPU_NOT_CAPTURED ? CUDA_SUCCESS : r;
}

/* Whether capture c forbids unsafe calls to this thread (cuThreadExchangeStreamCaptureMode):
 * global: its own non-relaxed captures and every other thread's global ones; thread-local:
 * its own non-relaxed ones; relaxed: none. */
static int forbids(const struct capture *c)
{
    int own = pthread_equal(c->thread, pthread_self()) && c->mode != CU_STREAM_CAPTURE_MODE_RELAXED;
    switch (thread_mode) {
    case CU_STREAM_CAPTURE_MODE_GLOBAL: return own || c->mode == CU_STREAM_CAPTURE_MODE_GLOBAL;
    case CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: return own;
    default: return 0;
    }
}

CUresult vgpu_capture_unsafe(const char *what)
{
    CUresult r = CUDA_SUCCESS;
    if (!vgpu_capture_on())
        return CUDA_SUCCESS;
    pthread_mutex_lock(&cap_lock);
    for (int i = 0; i < CAP_MAX; i++)
        if (caps[i].live && forbids(&caps[i])) {
            cap_invalidate(&caps[i], CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, what);
            r = CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
        }
    pthread_mutex_unlock(&cap_lock);
    if (r != CUDA_SUCCESS)
        VLOG(VGPU_LOG_INFO, "%s refused: not permitted while a stream captures", what);
    return r;
}

/* Runs fn under cap_lock with the capture member of stream s and of event e (each NULL when
 * not captured); VGPU_NOT_CAPTURED without a lock while no capture is live. */
typedef CUresult (*stream_event_fn)(CUstream s, CUevent e, struct cap_member *m,
                                    struct cap_member *ev);
static CUresult with_stream_event(CUstream s, CUevent e, stream_event_fn fn)
{
    if (!vgpu_capture_on())
        return VGPU_NOT_CAPTURED;
    pthread_mutex_lock(&cap_lock);
    CUresult r = fn(s, e, stream_member(s), member_find(cap_events, CAP_EVENTS, (uintptr_t)e));
    pthread_mutex_unlock(&cap_lock);
    return r;
}

static CUresult record_locked(CUstream s, CUevent e, struct cap_member *m, struct cap_member *ev)
{
    (void)s;
    if (m == NULL) {
        if (ev != NULL)
            ev->cap = 0; /* recorded outside the capture again */
        return VGPU_NOT_CAPTURED;
    }
    if (ev == NULL)
        ev = member_new(cap_events, CAP_EVENTS, (uintptr_t)e, m->cap);
    if (ev == NULL)
        return refuse_locked(m, CUDA_ERROR_NOT_SUPPORTED, "more than 256 captured events");
    ev->cap = m->cap;
    ev->deps = m->deps;
    return CUDA_SUCCESS;
}

CUresult vgpu_capture_record(CUevent e, CUstream s)
{
    return with_stream_event(s, e, record_locked);
}

/* Stream s, not capturing, waits for event ev of a capture: s joins it. Under cap_lock. */
static CUresult join_locked(CUstream s, struct cap_member *ev)
{
    idm_handle h = vgpu_stream_handle(s);
    if (h == 0) /* the legacy stream would depend on the capture */
        return refuse_locked(ev, CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, "a default-stream wait");
    struct cap_member *m = member_new(cap_streams, CAP_STREAMS, h, ev->cap);
    if (m == NULL)
        return refuse_locked(ev, CUDA_ERROR_NOT_SUPPORTED, "more than 128 captured streams");
    m->deps = ev->deps;
    return CUDA_SUCCESS;
}

static CUresult wait_locked(CUstream s, CUevent e, struct cap_member *m, struct cap_member *ev)
{
    (void)e;
    if (ev != NULL && m == NULL)
        return join_locked(s, ev);
    if (ev != NULL && m->cap != ev->cap)
        return refuse_locked(m, CUDA_ERROR_STREAM_CAPTURE_ISOLATION, "a wait on another capture");
    if (ev != NULL)
        return deps_union(&m->deps, &ev->deps) == 0 ? CUDA_SUCCESS :
               refuse_locked(m, CUDA_ERROR_NOT_SUPPORTED, "more than 64 dependencies");
    if (m != NULL)
        return refuse_locked(m, CUDA_ERROR_STREAM_CAPTURE_ISOLATION,
                             "a wait on an event recorded outside the capture");
    return VGPU_NOT_CAPTURED;
}

CUresult vgpu_capture_wait(CUstream s, CUevent e)
{
    return with_stream_event(s, e, wait_locked);
}

/* ---- capture entry points ---- */

static CUresult begin_capture(CUstream s, CUstreamCaptureMode mode)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx, h = vgpu_stream_handle(s);
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS || (r = vgpu_cur_ctx_handle(&ctx)) != CUDA_SUCCESS)
        return r;
    if (mode != CU_STREAM_CAPTURE_MODE_GLOBAL && mode != CU_STREAM_CAPTURE_MODE_THREAD_LOCAL &&
        mode != CU_STREAM_CAPTURE_MODE_RELAXED)
        return CUDA_ERROR_INVALID_VALUE;
    if (h == 0) {
        if (s == CU_STREAM_PER_THREAD)
            VLOG(VGPU_LOG_WARN, "capturing the per-thread default stream is not supported");
        return s == CU_STREAM_PER_THREAD ? CUDA_ERROR_NOT_SUPPORTED :
               CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    struct idm_req_GRAPH_CREATE rq = {.ctx = ctx};
    struct idm_rep_GRAPH_CREATE rp;
    pthread_mutex_lock(&cap_lock);
    int ci = 0;
    while (ci < CAP_MAX && caps[ci].live)
        ci++;
    if (member_find(cap_streams, CAP_STREAMS, h) != NULL)
        r = CUDA_ERROR_ILLEGAL_STATE;
    else if (ci == CAP_MAX || member_new(cap_streams, CAP_STREAMS, h, ci + 1) == NULL)
        r = CUDA_ERROR_OUT_OF_MEMORY;
    else if ((r = VGPU_CALL(v, GRAPH_CREATE, &rq, &rp)) != CUDA_SUCCESS)
        member_find(cap_streams, CAP_STREAMS, h)->cap = 0;
    if (r == CUDA_SUCCESS) {
        caps[ci] = (struct capture){.live = 1, .graph = rp.graph, .origin = h, .mode = mode,
                                    .thread = pthread_self(), .id = next_capture_id++};
        __atomic_add_fetch(&vgpu_captures_live, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&cap_lock);
    return r;
}

CUresult cuStreamBeginCapture_v2(CUstream hStream, CUstreamCaptureMode mode)
{
    return begin_capture(hStream, mode);
}

CUresult cuStreamBeginCapture(CUstream hStream)
{
    return begin_capture(hStream, CU_STREAM_CAPTURE_MODE_GLOBAL);
}

/* Why capture c cannot end well: invalidated, or a branch not joined back into the origin
 * stream m (an open end that is not among m's dependencies). */
static CUresult end_status(const struct capture *c, const struct cap_member *m)
{
    if (c->error != CUDA_SUCCESS)
        return c->error == CUDA_ERROR_STREAM_CAPTURE_UNJOINED ? c->error :
               CUDA_ERROR_STREAM_CAPTURE_INVALIDATED;
    for (uint32_t i = 0; i < c->nleaves; i++) {
        uint32_t j = 0;
        while (j < m->deps.n && m->deps.v[j] != c->leaves[i])
            j++;
        if (j == m->deps.n)
            return CUDA_ERROR_STREAM_CAPTURE_UNJOINED;
    }
    return CUDA_SUCCESS;
}

static CUresult end_capture(CUstream s, CUgraph *graph)
{
    if (graph == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    pthread_mutex_lock(&cap_lock);
    struct cap_member *m = stream_member(s);
    CUresult r = m ? CUDA_SUCCESS : CUDA_ERROR_ILLEGAL_STATE;
    struct capture *c = m ? cap_of(m) : NULL;
    if (c && c->origin != vgpu_stream_handle(s))
        r = CUDA_ERROR_STREAM_CAPTURE_UNMATCHED;
    else if (c && c->mode != CU_STREAM_CAPTURE_MODE_RELAXED &&
             !pthread_equal(c->thread, pthread_self()))
        r = CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD;
    if (r != CUDA_SUCCESS) {
        pthread_mutex_unlock(&cap_lock);
        return r;
    }
    idm_handle g = c->graph;
    r = end_status(c, m);
    cap_release((int)(c - caps));
    pthread_mutex_unlock(&cap_lock);
    *graph = NULL;
    if (r == CUDA_SUCCESS) {
        *graph = (CUgraph)(uintptr_t)g;
        return CUDA_SUCCESS;
    }
    struct idm_req_GRAPH_DESTROY dq = {.graph = g};
    struct idm_rep_GRAPH_DESTROY dp;
    (void)VGPU_CALL(vgpu_get(), GRAPH_DESTROY, &dq, &dp);
    book_drop(g);
    return r;
}

CUresult cuStreamEndCapture(CUstream hStream, CUgraph *phGraph)
{
    return end_capture(hStream, phGraph);
}

/* What cuStreamGetCaptureInfo reports of s; deps point to a per-thread copy. */
static CUresult capture_info(CUstream s, CUstreamCaptureStatus *status, cuuint64_t *id,
                             CUgraph *graph, const CUgraphNode **deps, size_t *ndeps)
{
    static __thread CUgraphNode out[CAP_DEPS];
    if (status == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *status = CU_STREAM_CAPTURE_STATUS_NONE;
    pthread_mutex_lock(&cap_lock);
    struct cap_member *m = vgpu_capture_on() ? stream_member(s) : NULL;
    if (m != NULL) {
        const struct capture *c = cap_of(m);
        *status = c->error ? CU_STREAM_CAPTURE_STATUS_INVALIDATED :
                  CU_STREAM_CAPTURE_STATUS_ACTIVE;
        if (id)
            *id = c->id;
        if (graph)
            *graph = (CUgraph)(uintptr_t)c->graph;
        for (uint32_t i = 0; i < m->deps.n; i++)
            out[i] = NODE_OF(m->deps.v[i]);
        if (deps)
            *deps = out;
        if (ndeps)
            *ndeps = m->deps.n;
    }
    pthread_mutex_unlock(&cap_lock);
    return CUDA_SUCCESS;
}

CUresult cuStreamIsCapturing(CUstream hStream, CUstreamCaptureStatus *captureStatus)
{
    return capture_info(hStream, captureStatus, NULL, NULL, NULL, NULL);
}

CUresult cuStreamGetCaptureInfo(CUstream hStream, CUstreamCaptureStatus *status, cuuint64_t *id)
{
    return capture_info(hStream, status, id, NULL, NULL, NULL);
}

CUresult cuStreamGetCaptureInfo_v2(CUstream hStream, CUstreamCaptureStatus *status,
                                   cuuint64_t *id, CUgraph *graph, const CUgraphNode **deps,
                                   size_t *ndeps)
{
    return capture_info(hStream, status, id, graph, deps, ndeps);
}

CUresult cuStreamGetCaptureInfo_v3(CUstream hStream, CUstreamCaptureStatus *status,
                                   cuuint64_t *id, CUgraph *graph, const CUgraphNode **deps,
                                   const CUgraphEdgeData **edges, size_t *ndeps)
{
    if (edges)
        *edges = NULL; /* every edge is a default one */
    return capture_info(hStream, status, id, graph, deps, ndeps);
}

CUresult cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
    if (mode == NULL || (*mode != CU_STREAM_CAPTURE_MODE_GLOBAL &&
                         *mode != CU_STREAM_CAPTURE_MODE_THREAD_LOCAL &&
                         *mode != CU_STREAM_CAPTURE_MODE_RELAXED))
        return CUDA_ERROR_INVALID_VALUE;
    CUstreamCaptureMode old = thread_mode;
    thread_mode = *mode;
    *mode = old;
    return CUDA_SUCCESS;
}

/* ---- the explicit graph API ---- */

static CUresult graph_enter(idm_handle *ctx)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    return ctx ? vgpu_cur_ctx_handle(ctx) : CUDA_SUCCESS;
}

CUresult cuGraphCreate(CUgraph *phGraph, unsigned int flags)
{
    idm_handle ctx;
    CUresult r = graph_enter(&ctx);
    if (r != CUDA_SUCCESS)
        return r;
    if (phGraph == NULL || flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_GRAPH_CREATE rq = {.ctx = ctx};
    struct idm_rep_GRAPH_CREATE rp;
    if ((r = VGPU_CALL(vgpu_get(), GRAPH_CREATE, &rq, &rp)) == CUDA_SUCCESS)
        *phGraph = (CUgraph)(uintptr_t)rp.graph;
    return r;
}

CUresult cuGraphDestroy(CUgraph hGraph)
{
    CUresult r = graph_enter(NULL);
    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_GRAPH_DESTROY rq = {.graph = GRAPH_H(hGraph)};
    struct idm_rep_GRAPH_DESTROY rp;
    if ((r = VGPU_CALL(vgpu_get(), GRAPH_DESTROY, &rq, &rp)) == CUDA_SUCCESS)
        book_drop(rq.graph);
    return r;
}

/* Node indices of deps[0..n) (a NULL node is invalid). */
static CUresult node_indices(const CUgraphNode *deps, size_t n, uint32_t **out)
{
    *out = NULL;
    if (n == 0)
        return CUDA_SUCCESS;
    if (deps == NULL || n > UINT32_MAX || (*out = malloc(n * sizeof(uint32_t))) == NULL)
        return deps == NULL ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; i++) {
        uintptr_t u = (uintptr_t)deps[i];
        if (u == 0 || u - 1 > UINT32_MAX) {
            free(*out);
            *out = NULL;
            return CUDA_ERROR_INVALID_VALUE;
        }
        (*out)[i] = (uint32_t)(u - 1);
    }
    return CUDA_SUCCESS;
}

/* Adds node n (with params, or a host copy node of host memory when host is not NULL) after
 * deps[0..ndeps) to graph g; *out gets it. */
static CUresult add_node_any(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                             struct idm_req_GRAPH_ADD_NODE *n, const void *params, void *host)
{
    uint32_t *idx, node;
    CUresult r = graph_enter(NULL);
    if (r != CUDA_SUCCESS)
        return r;
    if (out == NULL || g == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = node_indices(deps, ndeps, &idx)) != CUDA_SUCCESS)
        return r;
    r = host ? send_host_node(GRAPH_H(g), n, host, idx, ndeps, &node) :
        send_node(GRAPH_H(g), n, params, idx, ndeps, &node);
    free(idx);
    if (r == CUDA_SUCCESS)
        *out = NODE_OF(node);
    return r;
}

static CUresult add_node(CUgraphNode *out, CUgraph g, const CUgraphNode *deps, size_t ndeps,
                         struct idm_req_GRAPH_ADD_NODE *n, const void *params)
{
    return add_node_any(out, g, deps, ndeps, n, params, NULL);
}

static CUresult add_node_host(CUgraphNode *out, CUgraph g, const CUgraphNode *deps,
                              size_t ndeps, struct idm_req_GRAPH_ADD_NODE *n, void *host)
{
    return add_node_any(out, g, deps, ndeps, n, NULL, host);
}

CUresult cuGraphAddEmptyNode(CUgraphNode *phGraphNode, CUgraph hGraph,
                             const CUgraphNode *dependencies, size_t numDependencies)
{
    struct idm_req_GRAPH_ADD_NODE n = {.kind = IDM_GNODE_EMPTY};
    return add_node(phGraphNode, hGraph, dependencies, numDependencies, &n, NULL);
}

static CUresult add_kernel_node(CUgraphNode *out, CUgraph g, const CUgraphNode *deps,
                                size_t ndeps, CUfunction f, const CUDA_KERNEL_NODE_PARAMS_v1 *p)
{
    struct idm_req_GRAPH_ADD_NODE n = {.kind = IDM_GNODE_KERNEL};
    uint8_t *params = NULL;
    uint32_t grid[3] = {p->gridDimX, p->gridDimY, p->gridDimZ};
    uint32_t block[3] = {p->blockDimX, p->blockDimY, p->blockDimZ};
    static const uint32_t cluster[3] = {1, 1, 1};
    CUresult r = vgpu_kernel_node(f, grid, block, cluster, p->sharedMemBytes, p->kernelParams,
                                  p->extra, &n, &params);
    if (r == CUDA_SUCCESS)
        r = add_node(out, g, deps, ndeps, &n, params);
    free(params);
    return r;
}

CUresult cuGraphAddKernelNode(CUgraphNode *phGraphNode, CUgraph hGraph,
                              const CUgraphNode *dependencies, size_t numDependencies,
                              const CUDA_KERNEL_NODE_PARAMS_v1 *nodeParams)
{
    if (nodeParams == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    return add_kernel_node(phGraphNode, hGraph, dependencies, numDependencies,
                           nodeParams->func, nodeParams);
}

CUresult cuGraphAddKernelNode_v2(CUgraphNode *phGraphNode, CUgraph hGraph,
                                 const CUgraphNode *dependencies, size_t numDependencies,
                                 const CUDA_KERNEL_NODE_PARAMS *p)
{
    if (p == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUDA_KERNEL_NODE_PARAMS_v1 v1 = {.func = p->func ? p->func : (CUfunction)p->kern,
                                     .gridDimX = p->gridDimX, .gridDimY = p->gridDimY,
                                     .gridDimZ = p->gridDimZ, .blockDimX = p->blockDimX,
                                     .blockDimY = p->blockDimY, .blockDimZ = p->blockDimZ,
                                     .sharedMemBytes = p->sharedMemBytes,
                                     .kernelParams = p->kernelParams, .extra = p->extra};
    return add_kernel_node(phGraphNode, hGraph, dependencies, numDependencies, v1.func, &v1);
}

CUresult cuGraphAddMemsetNode(CUgraphNode *phGraphNode, CUgraph hGraph,
                              const CUgraphNode *dependencies, size_t numDependencies,
                              const CUDA_MEMSET_NODE_PARAMS *p, CUcontext ctx)
{
    (void)ctx; /* one device: every context's memory is the zone's */
    if (p == NULL || (p->elementSize != 1 && p->elementSize != 2 && p->elementSize != 4) ||
        p->width == 0 || p->height == 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_GRAPH_ADD_NODE n = {.kind = IDM_GNODE_MEMSET, .dst = p->dst,
                                       .count = p->width, .height = p->height,
                                       .pitch = p->height > 1 ? p->pitch : 0,
                                       .value = p->value, .elem_size = p->elementSize};
    return add_node(phGraphNode, hGraph, dependencies, numDependencies, &n, NULL);
}

/* One side of a 3D copy at (x, y, z): its address, and 1 for device memory of ours, 0 for
 * host memory, -1 for arrays. */
static int copy_side(CUmemorytype type, CUdeviceptr dev, const void *host, size_t x, size_t y,
                     size_t z, size_t pitch, size_t height, uint64_t *addr)
{
    struct vgpu *v = vgpu_get();
    int on_device = 0;
    uint64_t base = type == CU_MEMORYTYPE_HOST ? (uint64_t)(uintptr_t)host : dev;
    if (type == CU_MEMORYTYPE_ARRAY)
        return -1;
    if (type != CU_MEMORYTYPE_HOST) {
        pthread_mutex_lock(&v->lock);
        on_device = vgpu_alloc_find_locked(v, dev) != NULL;
        pthread_mutex_unlock(&v->lock);
    }
    *addr = base + x + (y + z * height) * pitch;
    return on_device;
}

/* Whether a copy's rows lie back to back on both sides (or there is one row). */
static int copy_contiguous(const CUDA_MEMCPY3D *c)
{
    size_t w = c->WidthInBytes;
    if (c->Height * c->Depth <= 1)
        return 1;
    if ((c->srcPitch != w && c->srcPitch != 0) || (c->dstPitch != w && c->dstPitch != 0))
        return 0;
    return c->Depth <= 1 || ((c->srcHeight == c->Height || c->srcHeight == 0) &&
                             (c->dstHeight == c->Height || c->dstHeight == 0));
}

/* Memcpy nodes: one contiguous range to another (a 3D copy whose rows are back to back on both
 * sides, or a single row), device to device, or between host and device memory (the host side
 * read or written at each launch). Arrays and host-to-host copies are not supported. */
CUresult cuGraphAddMemcpyNode(CUgraphNode *phGraphNode, CUgraph hGraph,
                              const CUgraphNode *dependencies, size_t numDependencies,
                              const CUDA_MEMCPY3D *c, CUcontext ctx)
{
    uint64_t dst, src;
    (void)ctx;
    if (c == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    int sd = copy_side(c->srcMemoryType, c->srcDevice, c->srcHost, c->srcXInBytes, c->srcY,
                       c->srcZ, c->srcPitch, c->srcHeight, &src);
    int dd = copy_side(c->dstMemoryType, c->dstDevice, c->dstHost, c->dstXInBytes, c->dstY,
                       c->dstZ, c->dstPitch, c->dstHeight, &dst);
    if (sd < 0 || dd < 0 || (sd == 0 && dd == 0) || !copy_contiguous(c)) {
        VLOG(VGPU_LOG_WARN, "cuGraphAddMemcpyNode: only copies of contiguous ranges with device "
                            "memory on at least one side are supported in graphs (no arrays)");
        return CUDA_ERROR_NOT_SUPPORTED;
    }
    size_t rows = c->Height * c->Depth;
    struct idm_req_GRAPH_ADD_NODE n = {.kind = IDM_GNODE_MEMCPY, .dst = dst, .src = src,
                                       .count = (uint64_t)c->WidthInBytes * (rows ? rows : 1)};
    if (sd && dd)
        return add_node(phGraphNode, hGraph, dependencies, numDependencies, &n, NULL);
    n.kind = dd ? IDM_GNODE_HTOD : IDM_GNODE_DTOH;
    return add_node_host(phGraphNode, hGraph, dependencies, numDependencies, &n,
                         (void *)(uintptr_t)(dd ? src : dst));
}

static CUresult add_edges(CUgraph g, const CUgraphNode *from, const CUgraphNode *to,
                          const CUgraphEdgeData *edges, size_t n)
{
    uint32_t *f = NULL, *t = NULL;
    CUresult r = graph_enter(NULL);
    if (r != CUDA_SUCCESS)
        return r;
    if (g == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    for (size_t i = 0; edges != NULL && i < n; i++)
        if (edges[i].from_port != 0 || edges[i].to_port != 0 || edges[i].type != 0)
            return CUDA_ERROR_NOT_SUPPORTED; /* programmatic edges */
    if ((r = node_indices(from, n, &f)) == CUDA_SUCCESS &&
        (r = node_indices(to, n, &t)) == CUDA_SUCCESS)
        r = send_edges(vgpu_get(), GRAPH_H(g), f, t, n);
    free(f);
    free(t);
    return r;
}

CUresult cuGraphAddDependencies(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to,
                                size_t numDependencies)
{
    return add_edges(hGraph, from, to, NULL, numDependencies);
}

CUresult cuGraphAddDependencies_v2(CUgraph hGraph, const CUgraphNode *from,
                                   const CUgraphNode *to, const CUgraphEdgeData *edgeData,
                                   size_t numDependencies)
{
    return add_edges(hGraph, from, to, edgeData, numDependencies);
}

CUresult cuGraphGetNodes(CUgraph hGraph, CUgraphNode *nodes, size_t *numNodes)
{
    CUresult r = graph_enter(NULL);
    if (r != CUDA_SUCCESS)
        return r;
    if (numNodes == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_GRAPH_GET_INFO rq = {.graph = GRAPH_H(hGraph)};
    struct idm_rep_GRAPH_GET_INFO rp;
    if ((r = VGPU_CALL(vgpu_get(), GRAPH_GET_INFO, &rq, &rp)) != CUDA_SUCCESS)
        return r;
    if (nodes == NULL) {
        *numNodes = rp.node_count;
        return CUDA_SUCCESS;
    }
    for (size_t i = 0; i < *numNodes; i++)
        nodes[i] = i < rp.node_count ? NODE_OF(i) : NULL;
    if (*numNodes > rp.node_count)
        *numNodes = rp.node_count;
    return CUDA_SUCCESS;
}

/* ---- executable graphs ---- */

static CUresult instantiate(CUgraphExec *out, CUgraph g, unsigned long long flags)
{
    CUresult r = graph_enter(NULL);
    if (r != CUDA_SUCCESS)
        return r;
    if (out == NULL || g == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_GRAPH_INSTANTIATE rq = {.graph = GRAPH_H(g), .flags = flags};
    struct idm_rep_GRAPH_INSTANTIATE rp;
    if ((r = VGPU_CALL(vgpu_get(), GRAPH_INSTANTIATE, &rq, &rp)) != CUDA_SUCCESS)
        return r;
    if ((r = book_copy(rq.graph, rp.exec)) != CUDA_SUCCESS) {
        struct idm_req_GRAPH_EXEC_DESTROY dq = {.exec = rp.exec};
        struct idm_rep_GRAPH_EXEC_DESTROY dp;
        (void)VGPU_CALL(vgpu_get(), GRAPH_EXEC_DESTROY, &dq, &dp);
        return r;
    }
    *out = (CUgraphExec)(uintptr_t)rp.exec;
    return CUDA_SUCCESS;
}

CUresult cuGraphInstantiateWithFlags(CUgraphExec *phGraphExec, CUgraph hGraph,
                                     unsigned long long flags)
{
    return instantiate(phGraphExec, hGraph, flags);
}

CUresult cuGraphInstantiate_v2(CUgraphExec *phGraphExec, CUgraph hGraph, CUgraphNode *phErrorNode,
                               char *logBuffer, size_t bufferSize)
{
    if (phErrorNode)
        *phErrorNode = NULL;
    if (logBuffer && bufferSize > 0)
        logBuffer[0] = '\0';
    return instantiate(phGraphExec, hGraph, 0);
}

CUresult cuGraphInstantiateWithParams(CUgraphExec *phGraphExec, CUgraph hGraph,
                                      CUDA_GRAPH_INSTANTIATE_PARAMS *p)
{
    if (p == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = instantiate(phGraphExec, hGraph, p->flags);
    p->hErrNode_out = NULL;
    p->result_out = r == CUDA_SUCCESS ? CUDA_GRAPH_INSTANTIATE_SUCCESS :
                    CUDA_GRAPH_INSTANTIATE_ERROR;
    return r;
}

CUresult cuGraphExecDestroy(CUgraphExec hGraphExec)
{
    CUresult r = graph_enter(NULL);
    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_GRAPH_EXEC_DESTROY rq = {.exec = GRAPH_H(hGraphExec)};
    struct idm_rep_GRAPH_EXEC_DESTROY rp;
    if ((r = VGPU_CALL(vgpu_get(), GRAPH_EXEC_DESTROY, &rq, &rp)) == CUDA_SUCCESS)
        book_drop(rq.exec);
    return r;
}

/* A launch of an executable graph with host copy nodes (book b): the work before it has
 * finished its replies (so an earlier copy into a source has landed), the sources go into a
 * window chunk, the launch waits for the graph, and the destinations are filled from the chunk.
 * Caller holds book_lock and v->lock. */
static CUresult launch_with_host_locked(struct vgpu *v, struct idm_req_GRAPH_LAUNCH *rq,
                                        const struct host_book *b)
{
    struct idm_rep_GRAPH_LAUNCH rp;
    CUresult r = vgpu_drain_locked(v);
    if (r != CUDA_SUCCESS)
        return r;
    int c = vgpu_chunk_get_locked(v, &r);
    if (c < 0)
        return r;
    uint8_t *w = vgpu_chunk_ptr(v, c);
    for (size_t i = 0; i < b->n; i++)
        if (!b->v[i].dtoh)
            memcpy(w + b->v[i].off, b->v[i].host, b->v[i].len);
    rq->win_off = (uint64_t)c * v->chunk_size;
    rq->win_len = b->bytes;
    r = vgpu_call_GRAPH_LAUNCH_locked(v, rq, NULL, 0, &rp, NULL, 0, NULL);
    for (size_t i = 0; r == CUDA_SUCCESS && i < b->n; i++)
        if (b->v[i].dtoh)
            memcpy(b->v[i].host, w + b->v[i].off, b->v[i].len);
    vgpu_chunk_put_locked(v, c);
    return r;
}

/* One request; its failure surfaces at the next synchronisation, like any asynchronous op (a
 * graph with host copy nodes: at once, since its launch waits). */
static CUresult graph_launch(CUgraphExec x, CUstream s)
{
    struct vgpu *v = vgpu_get();
    CUresult r = graph_enter(NULL);
    if (r != CUDA_SUCCESS)
        return r;
    if (x == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if ((r = vgpu_capture_refuse(s, "cuGraphLaunch (child graphs)")) != VGPU_NOT_CAPTURED)
        return r;
    struct idm_req_GRAPH_LAUNCH rq = {.exec = GRAPH_H(x), .stream = vgpu_stream_handle(s)};
    pthread_mutex_lock(&book_lock);
    const struct host_book *b = book_find_locked(rq.exec);
    pthread_mutex_lock(&v->lock);
    r = vgpu_managed_launch_locked(v, s); /* managed memory its kernels may see */
    if (r != CUDA_SUCCESS)
        ;
    else if (b != NULL && b->n > 0)
        r = launch_with_host_locked(v, &rq, b);
    else
        r = vgpu_post_GRAPH_LAUNCH_locked(v, &rq, NULL, 0, -1, NULL, 0);
    pthread_mutex_unlock(&v->lock);
    pthread_mutex_unlock(&book_lock);
    return r;
}

CUresult cuGraphLaunch(CUgraphExec hGraphExec, CUstream hStream)
{
    return graph_launch(hGraphExec, hStream);
}

/* Nothing to upload ahead of a launch: the worker holds the graph already. */
CUresult cuGraphUpload(CUgraphExec hGraphExec, CUstream hStream)
{
    (void)hStream;
    CUresult r = graph_enter(NULL);
    return r != CUDA_SUCCESS ? r : hGraphExec ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/* ---- changing an executable graph ---- */

static CUresult exec_set_kernel(CUgraphExec x, CUgraphNode node, CUfunction f,
                                const CUDA_KERNEL_NODE_PARAMS_v1 *p)
{
    struct idm_req_GRAPH_ADD_NODE n = {.kind = IDM_GNODE_KERNEL};
    uint8_t *params = NULL;
    uint32_t grid[3] = {p->gridDimX, p->gridDimY, p->gridDimZ};
    uint32_t block[3] = {p->blockDimX, p->blockDimY, p->blockDimZ};
    static const uint32_t cluster[3] = {1, 1, 1};
    uint32_t idx;
    CUresult r = graph_enter(NULL);
    if (r != CUDA_SUCCESS)
        return r;
    if (x == NULL || node == NULL || (uintptr_t)node - 1 > UINT32_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    idx = (uint32_t)((uintptr_t)node - 1);
    if ((r = vgpu_kernel_node(f, grid, block, cluster, p->sharedMemBytes, p->kernelParams,
                              p->extra, &n, &params)) != CUDA_SUCCESS)
        return r;
    struct idm_req_GRAPH_EXEC_SET_KERNEL rq = {.exec = GRAPH_H(x), .func = n.func,
                                               .param_bytes = n.param_bytes, .node = idx,
                                               .shared_bytes = n.shared_bytes};
    struct idm_rep_GRAPH_EXEC_SET_KERNEL rp;
    memcpy(rq.grid, n.grid, sizeof rq.grid);
    memcpy(rq.block, n.block, sizeof rq.block);
    memcpy(rq.cluster, n.cluster, sizeof rq.cluster);
    r = call_with_params(vgpu_get(), IDM_OP_GRAPH_EXEC_SET_KERNEL, &rq, sizeof rq, &rq.win_off,
                         &rq.win_len, params, n.param_bytes, &rp, sizeof rp);
    free(params);
    return r;
}

CUresult cuGraphExecKernelNodeSetParams(CUgraphExec hGraphExec, CUgraphNode hNode,
                                        const CUDA_KERNEL_NODE_PARAMS_v1 *nodeParams)
{
    if (nodeParams == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    return exec_set_kernel(hGraphExec, hNode, nodeParams->func, nodeParams);
}

CUresult cuGraphExecKernelNodeSetParams_v2(CUgraphExec hGraphExec, CUgraphNode hNode,
                                           const CUDA_KERNEL_NODE_PARAMS *p)
{
    if (p == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUDA_KERNEL_NODE_PARAMS_v1 v1 = {.func = p->func ? p->func : (CUfunction)p->kern,
                                     .gridDimX = p->gridDimX, .gridDimY = p->gridDimY,
                                     .gridDimZ = p->gridDimZ, .blockDimX = p->blockDimX,
                                     .blockDimY = p->blockDimY, .blockDimZ = p->blockDimZ,
                                     .sharedMemBytes = p->sharedMemBytes,
                                     .kernelParams = p->kernelParams, .extra = p->extra};
    return exec_set_kernel(hGraphExec, hNode, v1.func, &v1);
}

/* Takes g's parameters into x when g has x's nodes (the host copies' memory too). */
static CUresult exec_update(CUgraphExec x, CUgraph g, CUgraphExecUpdateResult *result,
                            CUgraphNode *bad)
{
    CUresult r = graph_enter(NULL);
    *result = CU_GRAPH_EXEC_UPDATE_ERROR;
    *bad = NULL;
    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_GRAPH_EXEC_UPDATE rq = {.exec = GRAPH_H(x), .graph = GRAPH_H(g)};
    struct idm_rep_GRAPH_EXEC_UPDATE rp;
    pthread_mutex_lock(&book_lock); /* no launch reads x's book meanwhile */
    r = VGPU_CALL(vgpu_get(), GRAPH_EXEC_UPDATE, &rq, &rp);
    if (r == CUDA_SUCCESS && rp.result == CU_GRAPH_EXEC_UPDATE_SUCCESS) {
        struct host_book *b = book_find_locked(rq.exec);
        if (b != NULL) {
            free(b->v);
            *b = books[--nbooks];
        }
    }
    pthread_mutex_unlock(&book_lock);
    if (r != CUDA_SUCCESS)
        return r;
    *result = (CUgraphExecUpdateResult)rp.result;
    if (rp.result != CU_GRAPH_EXEC_UPDATE_SUCCESS) {
        *bad = rp.node == UINT32_MAX ? NULL : NODE_OF(rp.node);
        return CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE;
    }
    return book_copy(rq.graph, rq.exec);
}

CUresult cuGraphExecUpdate_v2(CUgraphExec hGraphExec, CUgraph hGraph,
                              CUgraphExecUpdateResultInfo *resultInfo)
{
    CUgraphExecUpdateResult res;
    CUgraphNode bad;
    if (resultInfo == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = exec_update(hGraphExec, hGraph, &res, &bad);
    resultInfo->result = res;
    resultInfo->errorNode = bad;
    resultInfo->errorFromNode = NULL;
    return r;
}

CUresult cuGraphExecUpdate(CUgraphExec hGraphExec, CUgraph hGraph, CUgraphNode *hErrorNode_out,
                           CUgraphExecUpdateResult *updateResult_out)
{
    CUgraphExecUpdateResult res;
    CUgraphNode bad;
    if (hErrorNode_out == NULL || updateResult_out == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = exec_update(hGraphExec, hGraph, &res, &bad);
    *updateResult_out = res;
    *hErrorNode_out = bad;
    return r;
}
