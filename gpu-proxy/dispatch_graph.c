/* dispatch_graph.c - graphs (issue 16): a session's graphs are recorded here, node by node
 * (libvgpu sends the explicit API's nodes and what a capturing stream records alike), checked
 * when added; instantiation copies a graph's nodes into an executable graph in dependency order
 * (a cycle is refused), and a launch prepares every node again (handles and address ranges
 * looked up at that moment, as a stream op would be) and runs them as one stream op, in that
 * order, on either backend. Host copy nodes read and write the launch's window range (the
 * client's host data, which it owns until the reply). Graph memory is bounded per session and
 * per zone (zone.h). */
#include "dispatch_internal.h"

#include <stdlib.h>
#include <string.h>

/* Every executable-graph flag CUDA 13 has that changes nothing here: auto-free on launch (no
 * memory nodes), upload (nothing to upload), node priorities (hints). Device launch is not. */
#define GEXEC_FLAGS_OK (CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH | \
                        CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD |              \
                        CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY)

static struct graph_obj *rq_graph(struct rq *r, idm_handle h)
{
    return rq_lookup(r, h, HT_GRAPH);
}

/* Charges bytes of host memory to g and its zone; refused past ZONE_GRAPH_BYTES. */
static CUresult graph_charge(struct rq *r, struct graph_obj *g, uint64_t bytes)
{
    struct zone *z = r->s->zone;
    uint64_t now = __atomic_add_fetch(&z->graph_bytes, bytes, __ATOMIC_RELAXED);

    if (now > ZONE_GRAPH_BYTES) {
        __atomic_sub_fetch(&z->graph_bytes, bytes, __ATOMIC_RELAXED);
        return rq_refuse_as(r, WM_REF_LIMIT, CUDA_ERROR_OUT_OF_MEMORY, "the zone's graphs would "
                            "take %llu bytes of the proxy's memory (at most %llu)",
                            (unsigned long long)now, (unsigned long long)ZONE_GRAPH_BYTES);
    }
    g->bytes += bytes;
    return CUDA_SUCCESS;
}

/* A new, empty graph object of type HT_GRAPH or HT_GEXEC with its handle. */
static CUresult graph_new(struct rq *r, idm_handle ctx, uint8_t type, struct graph_obj **out,
                          idm_handle *h)
{
    struct graph_obj *g;

    if (r->s->ngraphs >= SESSION_MAX_GRAPHS)
        return rq_refuse_as(r, WM_REF_LIMIT, CUDA_ERROR_OUT_OF_MEMORY, "the session holds %u "
                            "graphs and executable graphs (at most %u)", r->s->ngraphs,
                            SESSION_MAX_GRAPHS);
    if ((g = calloc(1, sizeof(*g))) == NULL)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory for a graph");
    g->ctx = ctx;
    if (graph_charge(r, g, sizeof(*g)) != CUDA_SUCCESS) {
        free(g);
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (htab_insert(&r->s->ht, type, g, h) != 0) {
        __atomic_sub_fetch(&r->s->zone->graph_bytes, g->bytes, __ATOMIC_RELAXED);
        free(g);
        return rq_refuse_as(r, WM_REF_LIMIT, CUDA_ERROR_OUT_OF_MEMORY, "the handle table is "
                            "full");
    }
    r->s->ngraphs++;
    *out = g;
    return CUDA_SUCCESS;
}

CUresult h_GRAPH_CREATE(struct rq *r, const struct idm_req_GRAPH_CREATE *q,
                        struct idm_rep_GRAPH_CREATE *p)
{
    struct graph_obj *g;
    idm_handle ctx;
    CUresult rc;

    if (q->flags != 0)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "flags 0x%x (CUDA takes 0)", q->flags);
    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    return graph_new(r, ctx, HT_GRAPH, &g, &p->graph);
}

CUresult h_GRAPH_DESTROY(struct rq *r, const struct idm_req_GRAPH_DESTROY *q,
                         struct idm_rep_GRAPH_DESTROY *p)
{
    struct graph_obj *g = rq_graph(r, q->graph);

    (void)p;
    if (g == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    session_free_graph(r->s, q->graph, HT_GRAPH, g);
    return CUDA_SUCCESS;
}

/* ---- nodes ---- */

/* A kernel node: a live kernel, the device's geometry, exactly the kernel's parameter bytes
 * (copied out of the tail or window into nd->params, charged to g). */
static CUresult kernel_node(struct rq *r, struct graph_obj *g,
                            const struct idm_req_GRAPH_ADD_NODE *q, struct graph_node *nd)
{
    struct kernel_obj *k = rq_kernel(r, q->func);
    const void *src;
    CUresult rc;

    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = dispatch_check_geometry(r, q->grid, q->block)) != CUDA_SUCCESS)
        return rc;
    if (q->param_bytes != k->param_bytes)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "kernel %s with %llu parameter bytes (it "
                         "takes %u)", k->name, (unsigned long long)q->param_bytes,
                         k->param_bytes);
    nd->func = q->func;
    memcpy(nd->grid, q->grid, sizeof(nd->grid));
    memcpy(nd->block, q->block, sizeof(nd->block));
    memcpy(nd->cluster, q->cluster, sizeof(nd->cluster));
    nd->shared_bytes = q->shared_bytes;
    nd->param_bytes = k->param_bytes;
    if (k->param_bytes == 0)
        return CUDA_SUCCESS;
    if ((rc = rq_bulk(r, &src, NULL)) != CUDA_SUCCESS)
        return rc;
    if ((rc = graph_charge(r, g, k->param_bytes)) != CUDA_SUCCESS)
        return rc;
    if ((nd->params = malloc(k->param_bytes)) == NULL)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory for kernel %s's %u parameter "
                         "bytes", k->name, k->param_bytes);
    memcpy(nd->params, src, k->param_bytes);
    return CUDA_SUCCESS;
}

/* A host copy node: its device range checked and translated; its host side is the launch's
 * host data (host: the window range, or NULL when the node is only checked). */
static CUresult host_copy_op(struct rq *r, const struct graph_node *nd, uint8_t *host,
                             struct stream_op *op)
{
    int htod = nd->kind == IDM_GNODE_HTOD;
    CUresult rc;

    if (nd->count == 0)
        return CUDA_SUCCESS;
    rc = rq_dev_range(r, htod ? nd->dst : nd->src, nd->count, htod ? &op->dst : &op->src);
    if (rc != CUDA_SUCCESS)
        return rc;
    op->kind = htod ? SOP_HTOD : SOP_DTOH;
    op->len = nd->count;
    op->hsrc = host ? host + nd->host_off : NULL;
    op->hdst = host ? host + nd->host_off : NULL;
    return CUDA_SUCCESS;
}

/* The stream op node nd stands for, prepared as its own request would be (stream: the
 * default one; it is only checked here); kind SOP_NONE for an empty node. host: the launch's
 * host data (NULL: the node is only checked, never issued). */
static CUresult node_op(struct rq *r, const struct graph_node *nd, uint8_t *host,
                        struct stream_op *op)
{
    struct stream_obj *st;

    stream_op_init(op);
    switch (nd->kind) {
    case IDM_GNODE_EMPTY:
        return CUDA_SUCCESS;
    case IDM_GNODE_HTOD:
    case IDM_GNODE_DTOH:
        return host_copy_op(r, nd, host, op);
    case IDM_GNODE_MEMSET: {
        struct idm_req_MEMSET m = {.dst = nd->dst, .count = nd->count, .pitch = nd->pitch,
                                   .height = nd->height, .value = nd->value,
                                   .elem_size = nd->elem_size};
        return dispatch_prep_memset(r, &m, op, &st);
    }
    case IDM_GNODE_MEMCPY: {
        struct idm_req_MEMCPY_DTOD c = {.dst = nd->dst, .src = nd->src, .len = nd->count};
        return dispatch_prep_dtod(r, &c, op, &st);
    }
    case IDM_GNODE_KERNEL: {
        struct kernel_obj *k = rq_kernel(r, nd->func);
        if (k == NULL)
            return CUDA_ERROR_INVALID_HANDLE;
        CUresult rc = dispatch_launch_heap(r, k);
        if (rc != CUDA_SUCCESS)
            return rc;
        dispatch_launch_fill(r, k, nd->grid, nd->block, nd->cluster, nd->shared_bytes,
                             nd->params, op);
        return CUDA_SUCCESS;
    }
    default:
        return rq_refuse_as(r, WM_REF_MALFORMED, CUDA_ERROR_INVALID_VALUE, "node kind %u",
                            nd->kind);
    }
}

/* Checks q's dependencies (nodes of g, no repeats) and copies them into nd->deps. */
static CUresult node_deps(struct rq *r, struct graph_obj *g,
                          const struct idm_req_GRAPH_ADD_NODE *q, struct graph_node *nd)
{
    if (q->ndeps > IDM_GRAPH_DEPS_MAX)
        return rq_refuse_as(r, WM_REF_MALFORMED, CUDA_ERROR_INVALID_VALUE, "%u dependencies "
                            "in one request (at most %u)", q->ndeps, IDM_GRAPH_DEPS_MAX);
    for (uint32_t i = 0; i < q->ndeps; i++) {
        if (q->deps[i] >= g->n)
            return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "dependency on node %u of a graph "
                             "of %u nodes", q->deps[i], g->n);
        for (uint32_t j = 0; j < i; j++)
            if (q->deps[j] == q->deps[i])
                return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "node %u named twice as a "
                                 "dependency", q->deps[i]);
    }
    if (q->ndeps == 0)
        return CUDA_SUCCESS;
    if (graph_charge(r, g, q->ndeps * sizeof(uint32_t)) != CUDA_SUCCESS)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if ((nd->deps = malloc(q->ndeps * sizeof(uint32_t))) == NULL)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory for %u dependencies",
                         q->ndeps);
    memcpy(nd->deps, q->deps, q->ndeps * sizeof(uint32_t));
    nd->ndeps = nd->cap_deps = q->ndeps;
    g->edges += q->ndeps;
    return CUDA_SUCCESS;
}

/* Room for one more node in g (at most GRAPH_MAX_NODES), charged. */
static CUresult node_room(struct rq *r, struct graph_obj *g)
{
    uint32_t cap;
    struct graph_node *v;

    if (g->n >= GRAPH_MAX_NODES)
        return rq_refuse_as(r, WM_REF_LIMIT, CUDA_ERROR_OUT_OF_MEMORY, "the graph has %u "
                            "nodes (at most %u)", g->n, GRAPH_MAX_NODES);
    if (g->n < g->cap)
        return CUDA_SUCCESS;
    cap = g->cap ? g->cap * 2 : 16;
    if (graph_charge(r, g, (uint64_t)(cap - g->cap) * sizeof(*v)) != CUDA_SUCCESS)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if ((v = realloc(g->v, (size_t)cap * sizeof(*v))) == NULL)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory for %u graph nodes", cap);
    g->v = v;
    g->cap = cap;
    return CUDA_SUCCESS;
}

/* Fills nd from q and checks it: its fields (each kind as its own request is checked, now;
 * again at each launch) and its dependencies. */
static CUresult node_fill(struct rq *r, struct graph_obj *g,
                          const struct idm_req_GRAPH_ADD_NODE *q, struct graph_node *nd)
{
    struct stream_op op;
    CUresult rc;

    memset(nd, 0, sizeof(*nd));
    nd->kind = q->kind;
    if ((rc = node_deps(r, g, q, nd)) != CUDA_SUCCESS)
        return rc;
    switch (q->kind) {
    case IDM_GNODE_KERNEL:
        return kernel_node(r, g, q, nd);
    case IDM_GNODE_HTOD:
    case IDM_GNODE_DTOH:
        if (q->host_off > IDM_WINDOW_SIZE_MAX || q->count > IDM_WINDOW_SIZE_MAX - q->host_off)
            return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "host data [%llu, +%llu) beyond "
                             "the largest window", (unsigned long long)q->host_off,
                             (unsigned long long)q->count);
        nd->host_off = q->host_off;
        nd->count = q->count;
        nd->dst = q->dst;
        nd->src = q->src;
        if (q->host_off + q->count > g->host_bytes)
            g->host_bytes = q->host_off + q->count;
        return node_op(r, nd, NULL, &op);
    case IDM_GNODE_MEMSET:
        nd->value = q->value;
        nd->elem_size = q->elem_size;
        nd->pitch = q->pitch;
        nd->height = q->height;
        /* fall through */
    case IDM_GNODE_MEMCPY:
        nd->dst = q->dst;
        nd->src = q->src;
        nd->count = q->count;
        /* fall through */
    default:
        return node_op(r, nd, NULL, &op);
    }
}

CUresult h_GRAPH_ADD_NODE(struct rq *r, const struct idm_req_GRAPH_ADD_NODE *q,
                          struct idm_rep_GRAPH_ADD_NODE *p)
{
    struct graph_obj *g = rq_graph(r, q->graph);
    CUresult rc;

    if (g == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = node_room(r, g)) != CUDA_SUCCESS)
        return rc;
    rc = node_fill(r, g, q, &g->v[g->n]);
    if (rc != CUDA_SUCCESS) {
        /* Its charge stays with g until g goes; its memory goes now. */
        free(g->v[g->n].deps);
        free(g->v[g->n].params);
        g->edges -= g->v[g->n].ndeps;
        return rc;
    }
    p->node = g->n++;
    return CUDA_SUCCESS;
}

/* Adds the edge from -> to (to runs after from) to g. */
static CUresult edge_add(struct rq *r, struct graph_obj *g, uint32_t from, uint32_t to)
{
    struct graph_node *nd;
    uint32_t *d;

    if (from >= g->n || to >= g->n || from == to)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "edge %u -> %u in a graph of %u nodes",
                         from, to, g->n);
    nd = &g->v[to];
    for (uint32_t i = 0; i < nd->ndeps; i++)
        if (nd->deps[i] == from)
            return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "edge %u -> %u exists", from, to);
    if (nd->ndeps >= GRAPH_NODE_MAX_DEPS)
        return rq_refuse_as(r, WM_REF_LIMIT, CUDA_ERROR_OUT_OF_MEMORY, "node %u has %u "
                            "dependencies (at most %u)", to, nd->ndeps, GRAPH_NODE_MAX_DEPS);
    if (nd->ndeps == nd->cap_deps) {
        uint32_t cap = nd->cap_deps ? nd->cap_deps * 2 : 4;
        if (graph_charge(r, g, (cap - nd->cap_deps) * sizeof(uint32_t)) != CUDA_SUCCESS)
            return CUDA_ERROR_OUT_OF_MEMORY;
        if ((d = realloc(nd->deps, cap * sizeof(uint32_t))) == NULL)
            return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory for node %u's "
                             "dependencies", to);
        nd->deps = d;
        nd->cap_deps = cap;
    }
    nd->deps[nd->ndeps++] = from;
    g->edges++;
    return CUDA_SUCCESS;
}

/* Edges are added one by one: those before a refused one stay (libvgpu checks them first). */
CUresult h_GRAPH_ADD_DEPS(struct rq *r, const struct idm_req_GRAPH_ADD_DEPS *q,
                          struct idm_rep_GRAPH_ADD_DEPS *p)
{
    struct graph_obj *g = rq_graph(r, q->graph);
    CUresult rc;

    (void)p;
    if (g == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (q->count > IDM_GRAPH_EDGES_MAX)
        return rq_refuse_as(r, WM_REF_MALFORMED, CUDA_ERROR_INVALID_VALUE, "%u edges in one "
                            "request (at most %u)", q->count, IDM_GRAPH_EDGES_MAX);
    for (uint32_t i = 0; i < q->count; i++)
        if ((rc = edge_add(r, g, q->from[i], q->to[i])) != CUDA_SUCCESS)
            return rc;
    return CUDA_SUCCESS;
}

CUresult h_GRAPH_GET_INFO(struct rq *r, const struct idm_req_GRAPH_GET_INFO *q,
                          struct idm_rep_GRAPH_GET_INFO *p)
{
    struct graph_obj *g = rq_graph(r, q->graph);

    if (g == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    p->node_count = g->n;
    p->edge_count = g->edges;
    return CUDA_SUCCESS;
}

/* ---- executable graphs ---- */

/* order[0..g->n): g's nodes in dependency order (Kahn's algorithm), with the scratch arrays
 * indeg[n], first[n + 1] and succ[edges] (every node's successors, first[i] .. first[i + 1]);
 * -1 when g has a cycle. */
static int topo_order(const struct graph_obj *g, uint32_t *order, uint32_t *indeg,
                      uint32_t *first, uint32_t *succ)
{
    uint32_t head = 0, tail = 0;

    memset(first, 0, (g->n + 1) * sizeof(*first));
    for (uint32_t i = 0; i < g->n; i++)
        for (uint32_t j = 0; j < g->v[i].ndeps; j++)
            first[g->v[i].deps[j] + 1]++;
    for (uint32_t i = 0; i < g->n; i++) {
        first[i + 1] += first[i];
        indeg[i] = first[i]; /* the fill cursor of node i's successors */
    }
    for (uint32_t i = 0; i < g->n; i++)
        for (uint32_t j = 0; j < g->v[i].ndeps; j++)
            succ[indeg[g->v[i].deps[j]]++] = i;
    for (uint32_t i = 0; i < g->n; i++)
        if ((indeg[i] = g->v[i].ndeps) == 0)
            order[tail++] = i;
    while (head < tail) {
        uint32_t u = order[head++];
        for (uint32_t e = first[u]; e < first[u + 1]; e++)
            if (--indeg[succ[e]] == 0)
                order[tail++] = succ[e];
    }
    return tail == g->n ? 0 : -1;
}

/* A charged copy of bytes bytes of src in *dst (NULL for none). */
static CUresult copy_charged(struct rq *r, struct graph_obj *x, const void *src, uint64_t bytes,
                             void **dst)
{
    *dst = NULL;
    if (bytes == 0)
        return CUDA_SUCCESS;
    if (graph_charge(r, x, bytes) != CUDA_SUCCESS)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if ((*dst = malloc(bytes)) == NULL)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory for %llu bytes of a graph",
                         (unsigned long long)bytes);
    memcpy(*dst, src, bytes);
    return CUDA_SUCCESS;
}

/* Copies node i of a graph into dst, an executable graph's node (charged to x): its
 * parameters and its dependencies (which GRAPH_EXEC_UPDATE compares). */
static CUresult node_copy(struct rq *r, struct graph_obj *x, const struct graph_node *src,
                          uint32_t i, struct graph_node *dst)
{
    CUresult rc;

    *dst = *src;
    dst->orig = i;
    dst->deps = NULL;
    dst->params = NULL;
    dst->cap_deps = src->ndeps;
    if ((rc = copy_charged(r, x, src->params, src->param_bytes, (void **)&dst->params)) != 0)
        return rc;
    return copy_charged(r, x, src->deps, (uint64_t)src->ndeps * sizeof(uint32_t),
                        (void **)&dst->deps);
}

/* Fills the new executable graph x with g's nodes in the order order[] gives. */
static CUresult exec_fill(struct rq *r, struct graph_obj *x, const struct graph_obj *g,
                          const uint32_t *order)
{
    CUresult rc;

    if (g->n == 0)
        return CUDA_SUCCESS;
    if (graph_charge(r, x, (uint64_t)g->n * sizeof(*x->v)) != CUDA_SUCCESS)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if ((x->v = calloc(g->n, sizeof(*x->v))) == NULL)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory for %u nodes", g->n);
    x->cap = g->n;
    x->host_bytes = g->host_bytes;
    for (uint32_t i = 0; i < g->n; i++) {
        x->n++; /* its memory is freed with x, whatever the copy's outcome */
        if ((rc = node_copy(r, x, &g->v[order[i]], order[i], &x->v[i])) != CUDA_SUCCESS)
            return rc;
    }
    return CUDA_SUCCESS;
}

/* The dependency order of g, or a refusal for a cycle; *order is the caller's to free. */
static CUresult graph_order(struct rq *r, const struct graph_obj *g, uint32_t **order)
{
    size_t n = g->n;
    uint32_t *buf = malloc((3 * n + 1 + g->edges + 1) * sizeof(uint32_t));
    int rc;

    if (buf == NULL)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory to order %u nodes", g->n);
    rc = topo_order(g, buf, buf + n, buf + 2 * n, buf + 3 * n + 1);
    if (rc != 0) {
        free(buf);
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "the graph of %u nodes has a cycle",
                         g->n);
    }
    *order = buf;
    return CUDA_SUCCESS;
}

CUresult h_GRAPH_INSTANTIATE(struct rq *r, const struct idm_req_GRAPH_INSTANTIATE *q,
                             struct idm_rep_GRAPH_INSTANTIATE *p)
{
    struct graph_obj *g = rq_graph(r, q->graph), *x;
    uint32_t *order = NULL;
    idm_handle h;
    CUresult rc;

    if (g == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (q->flags & ~(uint64_t)GEXEC_FLAGS_OK)
        return rq_refuse(r, CUDA_ERROR_NOT_SUPPORTED, "flags 0x%llx (device launch is not "
                         "supported)", (unsigned long long)q->flags);
    if ((rc = graph_order(r, g, &order)) != CUDA_SUCCESS)
        return rc;
    if ((rc = graph_new(r, g->ctx, HT_GEXEC, &x, &h)) == CUDA_SUCCESS &&
        (rc = exec_fill(r, x, g, order)) != CUDA_SUCCESS)
        session_free_graph(r->s, h, HT_GEXEC, x);
    free(order);
    if (rc != CUDA_SUCCESS)
        return rc;
    p->exec = h;
    p->node_count = x->n;
    p->host_bytes = x->host_bytes;
    return CUDA_SUCCESS;
}

CUresult h_GRAPH_EXEC_DESTROY(struct rq *r, const struct idm_req_GRAPH_EXEC_DESTROY *q,
                              struct idm_rep_GRAPH_EXEC_DESTROY *p)
{
    struct graph_obj *x = rq_lookup(r, q->exec, HT_GEXEC);

    (void)p;
    if (x == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    /* Queued launches point into its nodes' parameters: they run first. */
    session_drain(r->s);
    session_free_graph(r->s, q->exec, HT_GEXEC, x);
    return CUDA_SUCCESS;
}

/* The launch's node ops in x's order (empty nodes left out) in *subs (the caller frees it);
 * host: its host data. */
static CUresult launch_ops(struct rq *r, const struct graph_obj *x, uint8_t *host,
                           struct stream_op **subs, uint32_t *n)
{
    struct stream_op *v = malloc((x->n ? x->n : 1) * sizeof(*v));
    CUresult rc;

    if (v == NULL)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY, "no memory to launch %u nodes", x->n);
    *n = 0;
    for (uint32_t i = 0; i < x->n; i++) {
        if ((rc = node_op(r, &x->v[i], host, &v[*n])) != CUDA_SUCCESS) {
            free(v);
            return rc;
        }
        if (v[*n].kind != SOP_NONE)
            (*n)++;
    }
    *subs = v;
    return CUDA_SUCCESS;
}

CUresult h_GRAPH_LAUNCH(struct rq *r, const struct idm_req_GRAPH_LAUNCH *q,
                        struct idm_rep_GRAPH_LAUNCH *p)
{
    struct graph_obj *x = rq_lookup(r, q->exec, HT_GEXEC);
    struct stream_obj *st = NULL;
    struct stream_op op;
    uint8_t *host = NULL;
    CUresult rc;

    (void)p;
    if (x == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = rq_stream(r, q->stream, &st)) != CUDA_SUCCESS)
        return rc;
    if (rq_sticky(r))
        return rq_sticky(r);
    if (x->host_bytes > q->win_len)
        return rq_refuse_as(r, WM_REF_WINDOW, CUDA_ERROR_INVALID_VALUE, "the graph's %llu "
                            "bytes of host data in a %llu-byte window range",
                            (unsigned long long)x->host_bytes, (unsigned long long)q->win_len);
    if (x->host_bytes && (rc = rq_win_range(r, q->win_off, x->host_bytes, &host)) != 0)
        return rc;
    stream_op_init(&op);
    if ((rc = launch_ops(r, x, host, &op.sub, &op.nsub)) != CUDA_SUCCESS)
        return rc;
    if (op.nsub > 0) {
        op.kind = SOP_GRAPH;
        rc = rq_run(r, st, &op);
    }
    free(op.sub);
    return rc;
}

/* ---- changing an executable graph: later launches see the change (queued ones drain
 * first, since they read its nodes) ---- */

/* The node of x that was node orig of its graph, or NULL. */
static struct graph_node *exec_node(struct graph_obj *x, uint32_t orig)
{
    for (uint32_t i = 0; i < x->n; i++)
        if (x->v[i].orig == orig)
            return &x->v[i];
    return NULL;
}

CUresult h_GRAPH_EXEC_SET_KERNEL(struct rq *r, const struct idm_req_GRAPH_EXEC_SET_KERNEL *q,
                                 struct idm_rep_GRAPH_EXEC_SET_KERNEL *p)
{
    struct graph_obj *x = rq_lookup(r, q->exec, HT_GEXEC);
    struct graph_node *nd = x ? exec_node(x, q->node) : NULL;
    struct kernel_obj *k;
    const void *src = NULL;
    CUresult rc;

    (void)p;
    if (x == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (nd == NULL || nd->kind != IDM_GNODE_KERNEL)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "node %u is not a kernel node of the "
                         "executable graph", q->node);
    if ((k = rq_kernel(r, q->func)) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = dispatch_check_geometry(r, q->grid, q->block)) != CUDA_SUCCESS)
        return rc;
    if (q->param_bytes != k->param_bytes || k->param_bytes != nd->param_bytes)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "kernel %s with %llu parameter bytes for "
                         "a node of %u (it takes %u)", k->name,
                         (unsigned long long)q->param_bytes, nd->param_bytes, k->param_bytes);
    if (k->param_bytes && (rc = rq_bulk(r, &src, NULL)) != CUDA_SUCCESS)
        return rc;
    session_drain(r->s);
    nd->func = q->func;
    memcpy(nd->grid, q->grid, sizeof(nd->grid));
    memcpy(nd->block, q->block, sizeof(nd->block));
    memcpy(nd->cluster, q->cluster, sizeof(nd->cluster));
    nd->shared_bytes = q->shared_bytes;
    if (k->param_bytes)
        memcpy(nd->params, src, k->param_bytes);
    return CUDA_SUCCESS;
}

/* How graph g differs from x's graph (CUgraphExecUpdateResult; 0: only in parameters that an
 * update may change), the node in *bad. */
static uint32_t update_check(const struct graph_obj *x, const struct graph_obj *g, uint32_t *bad)
{
    *bad = UINT32_MAX;
    if (g->n != x->n)
        return CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED;
    for (uint32_t i = 0; i < x->n; i++) {
        const struct graph_node *a = &x->v[i], *b = &g->v[a->orig];
        *bad = a->orig;
        if (a->kind != b->kind)
            return CU_GRAPH_EXEC_UPDATE_ERROR_NODE_TYPE_CHANGED;
        if (a->ndeps != b->ndeps ||
            (a->ndeps && memcmp(a->deps, b->deps, a->ndeps * sizeof(uint32_t)) != 0))
            return CU_GRAPH_EXEC_UPDATE_ERROR_TOPOLOGY_CHANGED;
        if (a->kind == IDM_GNODE_KERNEL && a->param_bytes != b->param_bytes)
            return CU_GRAPH_EXEC_UPDATE_ERROR_UNSUPPORTED_FUNCTION_CHANGE;
    }
    *bad = UINT32_MAX;
    return CU_GRAPH_EXEC_UPDATE_SUCCESS;
}

/* Node b's parameters into a (same kind, same parameter size: nothing to allocate). */
static void node_take(struct graph_node *a, const struct graph_node *b)
{
    a->func = b->func;
    memcpy(a->grid, b->grid, sizeof(a->grid));
    memcpy(a->block, b->block, sizeof(a->block));
    memcpy(a->cluster, b->cluster, sizeof(a->cluster));
    a->shared_bytes = b->shared_bytes;
    if (b->param_bytes)
        memcpy(a->params, b->params, b->param_bytes);
    a->dst = b->dst;
    a->src = b->src;
    a->count = b->count;
    a->pitch = b->pitch;
    a->height = b->height;
    a->value = b->value;
    a->elem_size = b->elem_size;
    a->host_off = b->host_off;
}

/* A graph that differs otherwise is not an error of the request: its answer says how (logged
 * and counted as a refusal all the same). */
CUresult h_GRAPH_EXEC_UPDATE(struct rq *r, const struct idm_req_GRAPH_EXEC_UPDATE *q,
                             struct idm_rep_GRAPH_EXEC_UPDATE *p)
{
    struct graph_obj *x = rq_lookup(r, q->exec, HT_GEXEC);
    struct graph_obj *g = x ? rq_graph(r, q->graph) : NULL;

    if (g == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    p->result = update_check(x, g, &p->node);
    if (p->result != CU_GRAPH_EXEC_UPDATE_SUCCESS)
        return rq_refuse_as(r, WM_REF_INVALID, CUDA_SUCCESS, "graph of %u nodes for an "
                            "executable graph of %u: CUgraphExecUpdateResult %u at node %d",
                            g->n, x->n, p->result, (int)p->node);
    session_drain(r->s);
    for (uint32_t i = 0; i < x->n; i++)
        node_take(&x->v[i], &g->v[x->v[i].orig]);
    x->host_bytes = g->host_bytes;
    return CUDA_SUCCESS;
}
