/* dispatch_module.c - code handlers: staging images uploaded through the window, libraries and
 * modules (globals allocated in the loading zone), kernels with their parameter layouts, function
 * attributes and occupancy. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define IMAGE_MAX_BYTES (512ull << 20)     /* one code image */
#define STAGING_MAX_BYTES (1024ull << 20)  /* all staging images of one session */

CUresult h_IMAGE_BEGIN(struct rq *r, const struct idm_req_IMAGE_BEGIN *q,
                       struct idm_rep_IMAGE_BEGIN *p)
{
    struct session *s = r->s;
    struct image_obj *im;
    int err = -ENOMEM;

    if (q->size == 0 || q->size > IMAGE_MAX_BYTES)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE, "an image of %llu bytes (at most %llu)",
                         (unsigned long long)q->size, IMAGE_MAX_BYTES);
    if (s->staging_bytes + q->size > STAGING_MAX_BYTES)
        return rq_refuse(r, CUDA_ERROR_OUT_OF_MEMORY,
                         "an image of %llu bytes while %llu bytes are already staged (at most "
                         "%llu)", (unsigned long long)q->size,
                         (unsigned long long)s->staging_bytes, STAGING_MAX_BYTES);
    /* Staged images are host memory of the zone's worker: charged to the zone's quota. */
    if (zone_charge(s->zone, q->size, NULL) != 0)
        return rq_refuse_as(r, WM_REF_QUOTA, CUDA_ERROR_OUT_OF_MEMORY,
                            "an image of %llu bytes does not fit in the zone's quota",
                            (unsigned long long)q->size);
    im = calloc(1, sizeof(*im));
    if (im == NULL)
        goto uncharge;
    im->data = calloc(1, q->size);
    if (im->data == NULL)
        goto free_obj;
    im->size = q->size;
    if ((err = htab_insert(&s->ht, HT_IMAGE, im, &p->image)) != 0)
        goto free_data;
    s->staging_bytes += q->size;
    return CUDA_SUCCESS;

free_data:
    free(im->data);
free_obj:
    free(im);
uncharge:
    zone_uncharge(s->zone, q->size);
    return rq_refuse(r, cu_from_errno(err), "no host memory for an image of %llu bytes",
                     (unsigned long long)q->size);
}

CUresult h_IMAGE_CHUNK(struct rq *r, const struct idm_req_IMAGE_CHUNK *q,
                       struct idm_rep_IMAGE_CHUNK *p)
{
    struct image_obj *im = rq_image(r, q->image);
    const void *w;
    CUresult rc;

    (void)p;
    if (im == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (q->offset > im->size || q->len > im->size - q->offset)
        return rq_refuse(r, CUDA_ERROR_INVALID_VALUE,
                         "chunk %llu+%llu is outside the %llu-byte image",
                         (unsigned long long)q->offset, (unsigned long long)q->len,
                         (unsigned long long)im->size);
    if (q->len == 0)
        return CUDA_SUCCESS;
    if ((rc = rq_bulk(r, &w, NULL)) != CUDA_SUCCESS)
        return rc;
    memcpy(im->data + q->offset, w, q->len);
    return CUDA_SUCCESS;
}

struct lib_alloc_ctx {
    struct rq *r;
    idm_handle lib;
    struct library_obj *obj;
};

static CUresult lib_alloc(void *ctx, uint64_t size, uint64_t *zone_addr, uint64_t *baddr)
{
    struct lib_alloc_ctx *c = ctx;

    return dispatch_alloc(c->r, size, ALLOC_GLOBAL_OWNED, c->lib, zone_addr, baddr);
}

static CUresult lib_charge(void *ctx, uint64_t bytes)
{
    struct lib_alloc_ctx *c = ctx;
    int err;

    if (bytes == 0)
        return CUDA_SUCCESS;
    if ((err = zone_charge(c->r->s->zone, bytes, NULL)) != 0)
        return rq_refuse_as(c->r, WM_REF_QUOTA, cu_from_errno(err),
                            "the image's module globals (%llu bytes) exceed the zone's quota "
                            "of %llu", (unsigned long long)bytes,
                            (unsigned long long)c->r->s->zone->quota);
    c->obj->charged += bytes;
    return CUDA_SUCCESS;
}

/* Loads image im as a new library of context ctx: its handle in *out. Globals the backend
 * allocated before a failure belong to the new handle and go with it. */
static CUresult load_library(struct rq *r, idm_handle ctx, uint32_t as_module,
                             const struct image_obj *im, idm_handle *out)
{
    struct session *s = r->s;
    struct lib_alloc_ctx ac = {.r = r};
    struct backend_allocator alloc = {.ctx = &ac, .alloc = lib_alloc, .charge = lib_charge};
    struct library_obj *lib = calloc(1, sizeof(*lib));
    char why[256] = "";
    CUresult rc;
    int err;

    if (lib == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    ac.obj = lib;
    lib->ctx = ctx;
    lib->as_module = as_module;
    if ((err = htab_insert(&s->ht, HT_LIBRARY, lib, &ac.lib)) != 0) {
        free(lib);
        return cu_from_errno(err);
    }
    rc = s->be->library_load(s->bz, im->data, im->size, &alloc, &lib->bl, why, sizeof(why));
    if (rc != CUDA_SUCCESS) {
        (void)rq_refuse(r, rc, "the %llu-byte image did not load (CUresult %d): %s",
                        (unsigned long long)im->size, rc, why[0] ? why : "no reason given");
        for (long i = (long)s->at.n - 1; i >= 0; i--)
            if (s->at.v[i].owner == ac.lib)
                session_free_alloc(s, i);
        zone_uncharge(s->zone, lib->charged);
        htab_remove(&s->ht, ac.lib, HT_LIBRARY);
        free(lib);
        return rc;
    }
    log_debug("zone=%s %s: loaded a %llu-byte image as %s", ZN(r), PEER(r),
              (unsigned long long)im->size, as_module ? "module" : "library");
    *out = ac.lib;
    return CUDA_SUCCESS;
}

CUresult h_LIBRARY_LOAD(struct rq *r, const struct idm_req_LIBRARY_LOAD *q,
                        struct idm_rep_LIBRARY_LOAD *p)
{
    struct image_obj *im;
    idm_handle ctx;
    CUresult rc;

    if ((rc = rq_ctx(r, q->ctx, &ctx)) != CUDA_SUCCESS)
        return rc;
    im = rq_image(r, q->image);
    if (im == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    rc = load_library(r, ctx, q->as_module, im, &p->library);
    /* The staging image is consumed either way (and uncharged once loaded). */
    session_free_image(r->s, q->image, im);
    return rc;
}

CUresult h_LIBRARY_UNLOAD(struct rq *r, const struct idm_req_LIBRARY_UNLOAD *q,
                          struct idm_rep_LIBRARY_UNLOAD *p)
{
    struct library_obj *lib = rq_library(r, q->library);

    (void)p;
    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    session_drain(r->s);
    r->s->be->zone_sync(r->s->bz);
    session_free_library(r->s, q->library, lib);
    return CUDA_SUCCESS;
}

/* Looks kernel name of lib up in the backend and gives it a handle; the library keeps it. */
static CUresult new_kernel(struct rq *r, idm_handle lh, struct library_obj *lib,
                           const char *name, struct kernel_obj **out)
{
    struct idm_param params[IDM_PARAMS_MAX];
    uint32_t count = 0, bytes = 0;
    struct backend_kernel *bk;
    struct kernel_obj *k;
    CUresult rc;
    int err = -ENOMEM;

    rc = r->s->be->library_get_kernel(r->s->bz, lib->bl, name, &bk, params, &count, &bytes);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (count > IDM_PARAMS_MAX)
        return rq_refuse(r, CUDA_ERROR_NOT_SUPPORTED, "kernel %s has %u parameters (at most %u)",
                         name, count, (unsigned)IDM_PARAMS_MAX);
    k = calloc(1, sizeof(*k));
    if (k == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    k->params = calloc(count ? count : 1, sizeof(*k->params));
    k->name = strdup(name);
    if (k->params == NULL || k->name == NULL)
        goto free_kernel;
    memcpy(k->params, params, count * sizeof(*params));
    k->library = lh;
    k->bk = bk;
    k->param_count = count;
    k->param_bytes = bytes;
    if ((err = htab_insert(&r->s->ht, HT_KERNEL, k, &k->self)) != 0)
        goto free_kernel;
    k->next = lib->kernels;
    lib->kernels = k;
    *out = k;
    return CUDA_SUCCESS;

free_kernel:
    free(k->params);
    free(k->name);
    free(k);
    return cu_from_errno(err);
}

CUresult h_LIBRARY_GET_KERNEL(struct rq *r, const struct idm_req_LIBRARY_GET_KERNEL *q,
                              struct idm_rep_LIBRARY_GET_KERNEL *p)
{
    struct library_obj *lib = rq_library(r, q->library);
    struct kernel_obj *k;
    const char *name;
    CUresult rc;

    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = rq_tail_name(r, &name)) != CUDA_SUCCESS)
        return rc;
    for (k = lib->kernels; k; k = k->next)
        if (strcmp(k->name, name) == 0)
            break;
    if (k == NULL && (rc = new_kernel(r, q->library, lib, name, &k)) != CUDA_SUCCESS)
        return rc;
    if ((uint64_t)k->param_count * sizeof(struct idm_param) > r->rtail_max)
        return rq_refuse(r, CUDA_ERROR_NOT_SUPPORTED,
                         "the layout of kernel %s does not fit a reply slot", k->name);
    memcpy(r->rtail, k->params, k->param_count * sizeof(struct idm_param));
    r->rtail_len = k->param_count * (uint32_t)sizeof(struct idm_param);
    p->kernel = k->self;
    p->param_count = k->param_count;
    p->param_bytes = k->param_bytes;
    return CUDA_SUCCESS;
}

/* Maps a backend-owned global of library lh into the zone, once: its zone address. */
static CUresult map_global(struct rq *r, idm_handle lh, uint64_t baddr, uint64_t size,
                           uint64_t *zaddr)
{
    struct session *s = r->s;
    struct alloc a;
    uint64_t va;
    int err;

    for (uint32_t i = 0; i < s->at.n; i++) {
        if (s->at.v[i].owner == lh && s->at.v[i].baddr == baddr &&
            s->at.v[i].kind == ALLOC_GLOBAL_MAPPED) {
            *zaddr = s->at.v[i].va;
            return CUDA_SUCCESS;
        }
    }
    if (size == 0)
        return rq_refuse(r, CUDA_ERROR_NOT_FOUND, "the global has no size");
    /* A real-address backend's globals were charged when the library was loaded: only the
     * mapping (for copies to and from the global) is added. */
    if (s->be->real_addresses)
        va = baddr;
    else if ((err = zone_charge(s->zone, size, &va)) != 0)
        return rq_refuse_as(r, err == -ENOMEM ? WM_REF_QUOTA : WM_REF_LIMIT,
                            cu_from_errno(err),
                            "a global of %llu bytes exceeds the zone's quota or address space",
                            (unsigned long long)size);
    memset(&a, 0, sizeof(a));
    a.va = va;
    a.size = size;
    a.charged = s->be->real_addresses ? 0 : size;
    a.baddr = baddr;
    a.owner = lh;
    a.kind = ALLOC_GLOBAL_MAPPED;
    a.buffer_id = s->next_buffer_id++;
    pthread_rwlock_wrlock(&s->at_lock);
    err = atab_insert(&s->at, &a);
    pthread_rwlock_unlock(&s->at_lock);
    if (err != 0) {
        zone_uncharge(s->zone, a.charged);
        return cu_from_errno(err);
    }
    *zaddr = va;
    return CUDA_SUCCESS;
}

CUresult h_LIBRARY_GET_GLOBAL(struct rq *r, const struct idm_req_LIBRARY_GET_GLOBAL *q,
                              struct idm_rep_LIBRARY_GET_GLOBAL *p)
{
    struct session *s = r->s;
    struct library_obj *lib = rq_library(r, q->library);
    uint64_t zaddr = 0, baddr = 0, size = 0;
    const char *name;
    CUresult rc;

    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if ((rc = rq_tail_name(r, &name)) != CUDA_SUCCESS)
        return rc;
    rc = s->be->library_get_global(s->bz, lib->bl, name, &zaddr, &baddr, &size);
    if (rc != CUDA_SUCCESS)
        return rc;
    if (zaddr == 0 && (rc = map_global(r, q->library, baddr, size, &zaddr)) != CUDA_SUCCESS)
        return rc;
    p->dptr = zaddr;
    p->size = size;
    return CUDA_SUCCESS;
}

CUresult h_LIBRARY_GET_KERNEL_COUNT(struct rq *r,
                                    const struct idm_req_LIBRARY_GET_KERNEL_COUNT *q,
                                    struct idm_rep_LIBRARY_GET_KERNEL_COUNT *p)
{
    struct library_obj *lib = rq_library(r, q->library);

    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return r->s->be->library_kernel_count(r->s->bz, lib->bl, &p->count);
}

CUresult h_LIBRARY_KERNEL_NAME(struct rq *r, const struct idm_req_LIBRARY_KERNEL_NAME *q,
                               struct idm_rep_LIBRARY_KERNEL_NAME *p)
{
    struct library_obj *lib = rq_library(r, q->library);
    CUresult rc;

    (void)p;
    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    rc = r->s->be->library_kernel_name(r->s->bz, lib->bl, q->index, (char *)r->rtail,
                                       r->rtail_max);
    if (rc == CUDA_ERROR_INVALID_VALUE)
        return rq_refuse(r, rc, "kernel index %u is past the library's last", q->index);
    if (rc == CUDA_ERROR_NOT_SUPPORTED)
        return rq_refuse(r, rc, "the name of kernel %u does not fit a reply slot", q->index);
    if (rc == CUDA_SUCCESS)
        r->rtail_len = (uint32_t)strlen((char *)r->rtail) + 1;
    return rc;
}

CUresult h_FUNC_GET_ATTRIBUTE(struct rq *r, const struct idm_req_FUNC_GET_ATTRIBUTE *q,
                              struct idm_rep_FUNC_GET_ATTRIBUTE *p)
{
    struct kernel_obj *k = rq_kernel(r, q->func);

    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return r->s->be->func_get_attribute(r->s->bz, k->bk, q->attr, &p->value);
}

CUresult h_FUNC_SET_ATTRIBUTE(struct rq *r, const struct idm_req_FUNC_SET_ATTRIBUTE *q,
                              struct idm_rep_FUNC_SET_ATTRIBUTE *p)
{
    struct kernel_obj *k = rq_kernel(r, q->func);

    (void)p;
    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return r->s->be->func_set_attribute(r->s->bz, k->bk, q->attr, q->value);
}

CUresult h_FUNC_GET_NAME(struct rq *r, const struct idm_req_FUNC_GET_NAME *q,
                         struct idm_rep_FUNC_GET_NAME *p)
{
    struct kernel_obj *k = rq_kernel(r, q->func);

    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    snprintf(p->name, sizeof(p->name), "%s", k->name);
    return CUDA_SUCCESS;
}

CUresult h_OCCUPANCY(struct rq *r, const struct idm_req_OCCUPANCY *q,
                     struct idm_rep_OCCUPANCY *p)
{
    struct kernel_obj *k = rq_kernel(r, q->func);

    if (k == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    return r->s->be->occupancy(r->s->bz, k->bk, q->which, q->block_size, q->dynamic_smem,
                               q->num_blocks, q->cluster_dim, q->grid_dim, q->flags, &p->value);
}
