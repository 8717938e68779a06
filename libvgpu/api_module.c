/* api_module.c - code: libraries and modules (images uploaded through the window, then loaded
 * by the proxy), kernels and functions (one local record each, holding the parameter layout
 * LIBRARY_GET_KERNEL reported), globals, attributes, occupancy and kernel launches
 * (kernelParams or `extra` packed by that layout and posted without waiting). */
#include "vgpu_calls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The records behind CUmodule/CUlibrary and CUfunction/CUkernel handles (vgpu_handle.c):
 * NULL for anything that is not a live handle of that kind. */
static struct vgpu_lib *lib_check(const void *p)
{
    return vgpu_handle_get((uint64_t)(uintptr_t)p, VGPU_H_LIB);
}

static struct vgpu_func *func_check(const void *p)
{
    return vgpu_handle_get((uint64_t)(uintptr_t)p, VGPU_H_FUNC);
}

static void *handle_of(uint64_t self)
{
    return (void *)(uintptr_t)self;
}

/* ---- loading ---- */

static CUresult image_load(const void *image, int as_module, void **out)
{
    struct vgpu *v = vgpu_get();
    idm_handle ctx;
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (out == NULL || image == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    /* A module belongs to the current context. A library needs none (the runtime loads one
     * before any context exists when a launch is its first call): handle 0 asks the proxy for
     * the device's primary context. */
    if ((r = vgpu_cur_ctx_handle(&ctx)) != CUDA_SUCCESS) {
        if (as_module)
            return r;
        ctx = 0;
    }
    const void *start;
    size_t size;
    if (vgpu_image_extent(image, &start, &size) < 0) {
        VLOG(VGPU_LOG_ERROR, "code image at %p refused: not a whole fatbin, ELF or PTX text in "
                             "readable memory (truncated or garbled)", image);
        return CUDA_ERROR_INVALID_IMAGE;
    }
    struct vgpu_lib *lib = calloc(1, sizeof *lib);
    if (lib == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;

    pthread_mutex_lock(&v->lock);
    struct idm_req_IMAGE_BEGIN bq = {.size = size};
    struct idm_rep_IMAGE_BEGIN bp;
    r = vgpu_call_IMAGE_BEGIN_locked(v, &bq, NULL, 0, &bp, NULL, 0, NULL);
    if (r != CUDA_SUCCESS)
        goto fail_unlock;
    const uint8_t *src = start;
    for (size_t off = 0; off < size && r == CUDA_SUCCESS;) {
        size_t n = size - off < v->chunk_size ? size - off : v->chunk_size;
        int c = vgpu_chunk_get_locked(v, &r);
        if (c < 0)
            break;
        memcpy(vgpu_chunk_ptr(v, c), src + off, n);
        struct idm_req_IMAGE_CHUNK cq = {.image = bp.image, .offset = off,
                                         .win_off = (uint64_t)c * v->chunk_size, .len = n};
        r = vgpu_post_IMAGE_CHUNK_locked(v, &cq, NULL, 0, c, NULL, 0);
        off += n;
    }
    /* the proxy needs every chunk before it loads; a chunk's failure fails the load too */
    if (r == CUDA_SUCCESS) {
        struct idm_req_LIBRARY_LOAD lq = {.ctx = ctx, .image = bp.image,
                                          .as_module = (uint32_t)as_module};
        struct idm_rep_LIBRARY_LOAD lp;
        r = vgpu_call_LIBRARY_LOAD_locked(v, &lq, NULL, 0, &lp, NULL, 0, NULL);
        lib->h = lp.library;
    }
    if (r == CUDA_SUCCESS && (lib->self = vgpu_handle_new(VGPU_H_LIB, lib)) == 0) {
        struct idm_req_LIBRARY_UNLOAD uq = {.library = lib->h};
        struct idm_rep_LIBRARY_UNLOAD up;
        (void)vgpu_call_LIBRARY_UNLOAD_locked(v, &uq, NULL, 0, &up, NULL, 0, NULL);
        r = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (r != CUDA_SUCCESS)
        goto fail_unlock;
    pthread_mutex_unlock(&v->lock);
    lib->as_module = as_module;
    VLOG(VGPU_LOG_DEBUG, "loaded a %zu-byte image as %s %#llx", size,
         as_module ? "module" : "library", (unsigned long long)lib->h);
    *out = handle_of(lib->self);
    return CUDA_SUCCESS;

fail_unlock:
    pthread_mutex_unlock(&v->lock);
    VLOG(VGPU_LOG_ERROR, "loading a %zu-byte code image failed: CUresult %d", size, r);
    free(lib);
    return r;
}

CUresult cuLibraryLoadData(CUlibrary *library, const void *code, CUjit_option *jitOptions,
                           void **jitOptionsValues, unsigned int numJitOptions,
                           CUlibraryOption *libraryOptions, void **libraryOptionValues,
                           unsigned int numLibraryOptions)
{
    (void)jitOptions, (void)jitOptionsValues, (void)numJitOptions;
    (void)libraryOptions, (void)libraryOptionValues, (void)numLibraryOptions;
    return image_load(code, 0, (void **)library);
}

CUresult cuModuleLoadData(CUmodule *module, const void *image)
{
    return image_load(image, 1, (void **)module);
}

CUresult cuModuleLoadDataEx(CUmodule *module, const void *image, unsigned int numOptions,
                            CUjit_option *options, void **optionValues)
{
    (void)numOptions, (void)options, (void)optionValues;
    return image_load(image, 1, (void **)module);
}

CUresult cuModuleLoadFatBinary(CUmodule *module, const void *fatCubin)
{
    return image_load(fatCubin, 1, (void **)module);
}

/* Reads a whole file (NUL-terminated, for PTX) into malloc'd memory. */
static CUresult read_file(const char *path, void **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return CUDA_ERROR_FILE_NOT_FOUND;
    struct stat st;
    CUresult r = CUDA_ERROR_INVALID_VALUE;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > (1 << 30))
        goto out_close;
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        r = CUDA_ERROR_OUT_OF_MEMORY;
        goto out_close;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0) {
            free(buf);
            buf = NULL;
            goto out_close;
        }
        got += (size_t)n;
    }
    buf[got] = 0;
    *out = buf;
    r = CUDA_SUCCESS;
out_close:
    close(fd);
    return r;
}

CUresult cuModuleLoad(CUmodule *module, const char *fname)
{
    void *img;
    if (fname == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = read_file(fname, &img);
    if (r != CUDA_SUCCESS)
        return r;
    r = image_load(img, 1, (void **)module);
    free(img);
    return r;
}

CUresult cuLibraryLoadFromFile(CUlibrary *library, const char *fileName, CUjit_option *jitOptions,
                               void **jitOptionsValues, unsigned int numJitOptions,
                               CUlibraryOption *libraryOptions, void **libraryOptionValues,
                               unsigned int numLibraryOptions)
{
    void *img;
    (void)jitOptions, (void)jitOptionsValues, (void)numJitOptions;
    (void)libraryOptions, (void)libraryOptionValues, (void)numLibraryOptions;
    if (fileName == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = read_file(fileName, &img);
    if (r != CUDA_SUCCESS)
        return r;
    r = image_load(img, 0, (void **)library);
    free(img);
    return r;
}

static CUresult lib_unload(void *p)
{
    struct vgpu *v = vgpu_get();
    struct vgpu_lib *lib = lib_check(p);
    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct idm_req_LIBRARY_UNLOAD rq = {.library = lib->h};
    struct idm_rep_LIBRARY_UNLOAD rp;
    pthread_mutex_lock(&v->lock);
    r = vgpu_call_LIBRARY_UNLOAD_locked(v, &rq, NULL, 0, &rp, NULL, 0, NULL);
    (void)vgpu_handle_free(lib->self, VGPU_H_LIB);
    for (struct vgpu_func *f = lib->funcs, *next; f != NULL; f = next) {
        next = f->next;
        (void)vgpu_handle_free(f->self, VGPU_H_FUNC);
        free(f->params);
        free(f->name);
        free(f);
    }
    lib->funcs = NULL;
    pthread_mutex_unlock(&v->lock);
    free(lib);
    return r;
}

CUresult cuLibraryUnload(CUlibrary library)
{
    return lib_unload(library);
}

CUresult cuModuleUnload(CUmodule hmod)
{
    return lib_unload(hmod);
}

CUresult cuLibraryGetModule(CUmodule *pMod, CUlibrary library)
{
    if (pMod == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (lib_check(library) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    *pMod = (CUmodule)library;
    return CUDA_SUCCESS;
}

/* ---- kernels and functions ---- */

/* A kernel or global name must travel in one request tail. */
static CUresult symbol_check(struct vgpu *v, const char *name, size_t *len)
{
    size_t cap = v->max_tail_req - sizeof(struct idm_req_LIBRARY_GET_KERNEL);
    if (cap > VGPU_SYMBOL_MAX)
        cap = VGPU_SYMBOL_MAX;
    size_t n = strnlen(name, cap);
    if (n == 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (n == cap) {
        VLOG(VGPU_LOG_ERROR, "symbol name of %zu+ bytes does not fit a message (max %zu): %.60s...",
             n, cap - 1, name);
        return CUDA_ERROR_NOT_FOUND;
    }
    *len = n;
    return CUDA_SUCCESS;
}

static CUresult get_kernel(void *plib, const char *name, void **out)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (out == NULL || name == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu_lib *lib = lib_check(plib);
    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    size_t nlen;
    if ((r = symbol_check(v, name, &nlen)) != CUDA_SUCCESS)
        return r;

    pthread_mutex_lock(&v->lock);
    for (struct vgpu_func *f = lib->funcs; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0) {
            pthread_mutex_unlock(&v->lock);
            *out = handle_of(f->self);
            return CUDA_SUCCESS;
        }
    struct idm_param params[IDM_PARAMS_MAX];
    size_t tlen = 0;
    struct idm_req_LIBRARY_GET_KERNEL rq = {.library = lib->h};
    struct idm_rep_LIBRARY_GET_KERNEL rp;
    r = vgpu_call_LIBRARY_GET_KERNEL_locked(v, &rq, name, nlen + 1, &rp, params, sizeof params,
                                            &tlen);
    struct vgpu_func *f = NULL;
    if (r != CUDA_SUCCESS)
        goto out_unlock;
    if (rp.param_count > IDM_PARAMS_MAX || tlen != rp.param_count * sizeof params[0]) {
        VLOG(VGPU_LOG_ERROR, "kernel %s: proxy sent %u parameters in %zu bytes", name,
             rp.param_count, tlen);
        r = CUDA_ERROR_INVALID_IMAGE;
        goto out_unlock;
    }
    for (uint32_t i = 0; i < rp.param_count; i++)
        if (params[i].offset > rp.param_bytes ||
            params[i].size > rp.param_bytes - params[i].offset) {
            VLOG(VGPU_LOG_ERROR, "kernel %s: parameter %u lies outside its %u-byte buffer", name,
                 i, rp.param_bytes);
            r = CUDA_ERROR_INVALID_IMAGE;
            goto out_unlock;
        }
    f = calloc(1, sizeof *f);
    if (f == NULL || (rp.param_count && !(f->params = malloc(tlen))) ||
        !(f->name = malloc(nlen + 1)) || (f->self = vgpu_handle_new(VGPU_H_FUNC, f)) == 0) {
        if (f) {
            free(f->name);
            free(f->params);
            free(f);
        }
        f = NULL;
        r = CUDA_ERROR_OUT_OF_MEMORY;
        goto out_unlock;
    }
    f->h = rp.kernel;
    f->lib = lib;
    memcpy(f->name, name, nlen + 1);
    f->param_count = rp.param_count;
    f->param_bytes = rp.param_bytes;
    if (tlen)
        memcpy(f->params, params, tlen);
    f->next = lib->funcs;
    lib->funcs = f;
out_unlock:
    pthread_mutex_unlock(&v->lock);
    if (r == CUDA_SUCCESS)
        *out = handle_of(f->self);
    else
        VLOG(VGPU_LOG_INFO, "kernel lookup '%s' failed: %d", name, r);
    return r;
}

CUresult cuLibraryGetKernel(CUkernel *pKernel, CUlibrary library, const char *name)
{
    return get_kernel(library, name, (void **)pKernel);
}

CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name)
{
    return get_kernel(hmod, name, (void **)hfunc);
}

CUresult cuKernelGetFunction(CUfunction *pFunc, CUkernel kernel)
{
    if (pFunc == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (func_check(kernel) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    *pFunc = (CUfunction)kernel;
    return CUDA_SUCCESS;
}

CUresult cuKernelGetLibrary(CUlibrary *pLib, CUkernel kernel)
{
    struct vgpu_func *f = func_check(kernel);
    if (pLib == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (f == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    *pLib = handle_of(f->lib->self);
    return CUDA_SUCCESS;
}

CUresult cuFuncGetModule(CUmodule *hmod, CUfunction hfunc)
{
    struct vgpu_func *f = func_check(hfunc);
    if (hmod == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (f == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    *hmod = handle_of(f->lib->self);
    return CUDA_SUCCESS;
}

CUresult cuKernelGetName(const char **name, CUkernel hfunc)
{
    struct vgpu_func *f = func_check(hfunc);
    if (name == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (f == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    *name = f->name;
    return CUDA_SUCCESS;
}

CUresult cuFuncGetName(const char **name, CUfunction hfunc)
{
    return cuKernelGetName(name, (CUkernel)hfunc);
}

static CUresult param_info(void *p, size_t index, size_t *offset, size_t *size)
{
    struct vgpu_func *f = func_check(p);
    if (f == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (index >= f->param_count)
        return CUDA_ERROR_INVALID_VALUE;
    if (offset)
        *offset = f->params[index].offset;
    if (size)
        *size = f->params[index].size;
    return CUDA_SUCCESS;
}

CUresult cuKernelGetParamInfo(CUkernel kernel, size_t paramIndex, size_t *paramOffset,
                              size_t *paramSize)
{
    return param_info(kernel, paramIndex, paramOffset, paramSize);
}

CUresult cuFuncGetParamInfo(CUfunction func, size_t paramIndex, size_t *paramOffset,
                            size_t *paramSize)
{
    return param_info(func, paramIndex, paramOffset, paramSize);
}

CUresult cuFuncIsLoaded(CUfunctionLoadingState *state, CUfunction function)
{
    if (state == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (func_check(function) == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    *state = CU_FUNCTION_LOADING_STATE_LOADED;
    return CUDA_SUCCESS;
}

CUresult cuFuncLoad(CUfunction function)
{
    return func_check(function) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* ---- globals ---- */

static CUresult get_global(CUdeviceptr *dptr, size_t *bytes, void *plib, const char *name)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct vgpu_lib *lib = lib_check(plib);
    if (lib == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (name == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    size_t nlen;
    if ((r = symbol_check(v, name, &nlen)) != CUDA_SUCCESS)
        return r;
    idm_handle ctx = 0;
    (void)vgpu_cur_ctx_handle(&ctx);
    struct idm_req_LIBRARY_GET_GLOBAL rq = {.library = lib->h};
    struct idm_rep_LIBRARY_GET_GLOBAL rp;
    pthread_mutex_lock(&v->lock);
    r = vgpu_call_LIBRARY_GET_GLOBAL_locked(v, &rq, name, nlen + 1, &rp, NULL, 0, NULL);
    if (r == CUDA_SUCCESS && rp.size > 0 &&
        vgpu_alloc_add_locked(v, rp.dptr, rp.size, 1, ctx) < 0)
        r = CUDA_ERROR_OUT_OF_MEMORY;
    pthread_mutex_unlock(&v->lock);
    if (r != CUDA_SUCCESS)
        return r;
    if (dptr)
        *dptr = rp.dptr;
    if (bytes)
        *bytes = rp.size;
    return CUDA_SUCCESS;
}

CUresult cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes, CUlibrary library,
                            const char *name)
{
    return get_global(dptr, bytes, library, name);
}

CUresult cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes, CUmodule hmod, const char *name)
{
    return get_global(dptr, bytes, hmod, name);
}

CUresult cuLibraryGetKernelCount(unsigned int *count, CUlibrary lib)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct vgpu_lib *l = lib_check(lib);
    if (l == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (count == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_LIBRARY_GET_KERNEL_COUNT rq = {.library = l->h};
    struct idm_rep_LIBRARY_GET_KERNEL_COUNT rp;
    r = VGPU_CALL(v, LIBRARY_GET_KERNEL_COUNT, &rq, &rp);
    if (r == CUDA_SUCCESS)
        *count = rp.count;
    return r;
}

CUresult cuModuleGetFunctionCount(unsigned int *count, CUmodule mod)
{
    return cuLibraryGetKernelCount(count, (CUlibrary)mod);
}

/* Fills kernels[0 .. min(num, count)) with the library's kernels in the proxy's order: each name
 * is asked for by index, then looked up as cuLibraryGetKernel does (same handle for the same
 * name). */
static CUresult enumerate_kernels(void **kernels, unsigned num, void *plib)
{
    unsigned count = 0;
    CUresult r = cuLibraryGetKernelCount(&count, (CUlibrary)plib);
    if (r != CUDA_SUCCESS)
        return r;
    if (kernels == NULL && num > 0)
        return CUDA_ERROR_INVALID_VALUE;
    struct vgpu *v = vgpu_get();
    struct vgpu_lib *l = lib_check(plib);
    if (l == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    char name[VGPU_SYMBOL_MAX];
    for (unsigned i = 0; i < num && i < count; i++) {
        struct idm_req_LIBRARY_KERNEL_NAME rq = {.library = l->h, .index = i};
        struct idm_rep_LIBRARY_KERNEL_NAME rp;
        size_t len = 0;
        r = vgpu_call_LIBRARY_KERNEL_NAME(v, &rq, NULL, 0, &rp, name, sizeof name - 1, &len);
        if (r != CUDA_SUCCESS)
            return r;
        name[len < sizeof name ? len : sizeof name - 1] = 0;
        if ((r = get_kernel(plib, name, &kernels[i])) != CUDA_SUCCESS)
            return r;
    }
    return CUDA_SUCCESS;
}

CUresult cuLibraryEnumerateKernels(CUkernel *kernels, unsigned int numKernels, CUlibrary lib)
{
    return enumerate_kernels((void **)kernels, numKernels, lib);
}

CUresult cuModuleEnumerateFunctions(CUfunction *functions, unsigned int numFunctions,
                                    CUmodule mod)
{
    return enumerate_kernels((void **)functions, numFunctions, mod);
}

/* ---- attributes ---- */

static CUresult func_get_attr(int *pi, CUfunction_attribute attrib, void *p, CUdevice dev)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct vgpu_func *f = func_check(p);
    if (f == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (pi == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    struct idm_req_FUNC_GET_ATTRIBUTE rq = {.func = f->h, .attr = attrib, .device = dev};
    struct idm_rep_FUNC_GET_ATTRIBUTE rp;
    r = VGPU_CALL(v, FUNC_GET_ATTRIBUTE, &rq, &rp);
    if (r == CUDA_SUCCESS)
        *pi = rp.value;
    return r;
}

static CUresult func_set_attr(void *p, CUfunction_attribute attrib, int value, CUdevice dev)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct vgpu_func *f = func_check(p);
    if (f == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    struct idm_req_FUNC_SET_ATTRIBUTE rq = {.func = f->h, .attr = attrib, .value = value,
                                            .device = dev};
    struct idm_rep_FUNC_SET_ATTRIBUTE rp;
    return VGPU_CALL(v, FUNC_SET_ATTRIBUTE, &rq, &rp);
}

static CUdevice cur_dev(void)
{
    struct vgpu_ctx *c = vgpu_ctx_current();
    return c ? c->dev : 0;
}

CUresult cuKernelGetAttribute(int *pi, CUfunction_attribute attrib, CUkernel kernel,
                              CUdevice dev)
{
    return func_get_attr(pi, attrib, kernel, dev);
}

CUresult cuKernelSetAttribute(CUfunction_attribute attrib, int val, CUkernel kernel,
                              CUdevice dev)
{
    return func_set_attr(kernel, attrib, val, dev);
}

CUresult cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction hfunc)
{
    return func_get_attr(pi, attrib, hfunc, cur_dev());
}

CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value)
{
    return func_set_attr(hfunc, attrib, value, cur_dev());
}

/* Cache and shared-memory preferences: accepted, as hints a device may ignore. */
CUresult cuFuncSetCacheConfig(CUfunction hfunc, CUfunc_cache config)
{
    (void)config;
    return func_check(hfunc) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuKernelSetCacheConfig(CUkernel kernel, CUfunc_cache config, CUdevice dev)
{
    (void)config, (void)dev;
    return func_check(kernel) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/* ---- occupancy ---- */

static CUresult occupancy(void *p, uint32_t which, uint32_t block_size, uint64_t smem,
                          uint32_t num_blocks, uint32_t flags, const uint32_t cluster[3],
                          const uint32_t grid[3], uint64_t *value)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct vgpu_func *f = func_check(p);
    if (f == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    struct idm_req_OCCUPANCY rq = {.func = f->h, .dynamic_smem = smem, .which = which,
                                   .block_size = block_size, .num_blocks = num_blocks,
                                   .flags = flags};
    if (cluster)
        memcpy(rq.cluster_dim, cluster, sizeof rq.cluster_dim);
    if (grid)
        memcpy(rq.grid_dim, grid, sizeof rq.grid_dim);
    struct idm_rep_OCCUPANCY rp;
    r = VGPU_CALL(v, OCCUPANCY, &rq, &rp);
    if (r == CUDA_SUCCESS)
        *value = rp.value;
    return r;
}

CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int *numBlocks, CUfunction func,
                                                              int blockSize,
                                                              size_t dynamicSMemSize,
                                                              unsigned int flags)
{
    uint64_t val;
    if (numBlocks == NULL || blockSize <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = occupancy(func, 0, (uint32_t)blockSize, dynamicSMemSize, 0, flags, NULL, NULL,
                           &val);
    if (r == CUDA_SUCCESS)
        *numBlocks = (int)val;
    return r;
}

CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int *numBlocks, CUfunction func,
                                                     int blockSize, size_t dynamicSMemSize)
{
    return cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(numBlocks, func, blockSize,
                                                                dynamicSMemSize, 0);
}

CUresult cuOccupancyAvailableDynamicSMemPerBlock(size_t *dynamicSmemSize, CUfunction func,
                                                 int numBlocks, int blockSize)
{
    uint64_t val;
    if (dynamicSmemSize == NULL || blockSize <= 0 || numBlocks <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = occupancy(func, 1, (uint32_t)blockSize, 0, (uint32_t)numBlocks, 0, NULL, NULL,
                           &val);
    if (r == CUDA_SUCCESS)
        *dynamicSmemSize = val;
    return r;
}

/* Cluster dimensions of a launch configuration (1,1,1 when it names none). */
static void config_cluster(const CUlaunchConfig *c, uint32_t out[3])
{
    out[0] = out[1] = out[2] = 1;
    for (unsigned i = 0; c->attrs && i < c->numAttrs; i++)
        if (c->attrs[i].id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION) {
            out[0] = c->attrs[i].value.clusterDim.x;
            out[1] = c->attrs[i].value.clusterDim.y;
            out[2] = c->attrs[i].value.clusterDim.z;
        }
}

/* IDM_LAUNCH_* flags of a launch configuration: CU_LAUNCH_ATTRIBUTE_COOPERATIVE with a nonzero
 * value makes it cooperative. */
static uint32_t config_flags(const CUlaunchConfig *c)
{
    uint32_t flags = 0;
    for (unsigned i = 0; c->attrs && i < c->numAttrs; i++)
        if (c->attrs[i].id == CU_LAUNCH_ATTRIBUTE_COOPERATIVE)
            flags = c->attrs[i].value.cooperative ? IDM_LAUNCH_COOPERATIVE : 0;
    return flags;
}

CUresult cuOccupancyMaxActiveClusters(int *numClusters, CUfunction func,
                                      const CUlaunchConfig *config)
{
    uint64_t val;
    if (numClusters == NULL || config == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    uint32_t cluster[3], grid[3] = {config->gridDimX, config->gridDimY, config->gridDimZ};
    config_cluster(config, cluster);
    uint32_t bs = config->blockDimX * config->blockDimY * config->blockDimZ;
    VLOG(VGPU_LOG_DEBUG, "cuOccupancyMaxActiveClusters: grid %ux%ux%u block %u cluster %ux%ux%u "
         "(%u attributes)", grid[0], grid[1], grid[2], bs, cluster[0], cluster[1], cluster[2],
         config->numAttrs);
    CUresult r = occupancy(func, 2, bs, config->sharedMemBytes, 0, 0, cluster, grid, &val);
    if (r == CUDA_SUCCESS)
        *numClusters = (int)val;
    return r;
}

/* Block size with the highest occupancy, tried in warp steps from the largest allowed. */
CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(int *minGridSize, int *blockSize,
                                                   CUfunction func,
                                                   CUoccupancyB2DSize blockSizeToDynamicSMemSize,
                                                   size_t dynamicSMemSize, int blockSizeLimit,
                                                   unsigned int flags)
{
    struct vgpu *v = vgpu_get();
    if (minGridSize == NULL || blockSize == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    int maxt = 0;
    CUresult r = cuFuncGetAttribute(&maxt, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, func);
    if (r != CUDA_SUCCESS)
        return r;
    if (blockSizeLimit > 0 && blockSizeLimit < maxt)
        maxt = blockSizeLimit;
    int best_bs = 0, best_blocks = 0;
    long best_threads = -1;
    for (int bs = (maxt / 32) * 32; bs >= 32; bs -= 32) {
        size_t smem = blockSizeToDynamicSMemSize ? blockSizeToDynamicSMemSize(bs)
                                                 : dynamicSMemSize;
        int blocks = 0;
        r = cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(&blocks, func, bs, smem, flags);
        if (r != CUDA_SUCCESS)
            return r;
        if ((long)blocks * bs > best_threads) {
            best_threads = (long)blocks * bs;
            best_bs = bs;
            best_blocks = blocks;
        }
    }
    if (best_bs == 0) { /* fewer than 32 threads allowed */
        best_bs = maxt > 0 ? maxt : 1;
        best_blocks = 1;
    }
    int sms = v->dev[cur_dev()].attrs[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT];
    *blockSize = best_bs;
    *minGridSize = best_blocks * (sms > 0 ? sms : 1);
    return CUDA_SUCCESS;
}

CUresult cuOccupancyMaxPotentialBlockSize(int *minGridSize, int *blockSize, CUfunction func,
                                          CUoccupancyB2DSize blockSizeToDynamicSMemSize,
                                          size_t dynamicSMemSize, int blockSizeLimit)
{
    return cuOccupancyMaxPotentialBlockSizeWithFlags(minGridSize, blockSize, func,
                                                     blockSizeToDynamicSMemSize,
                                                     dynamicSMemSize, blockSizeLimit, 0);
}

/* ---- launches ---- */

/* Packs f's arguments into buf (f->param_bytes bytes): from kernelParams, else from extra's
 * buffer. 0 or -EINVAL. */
static int pack_args(const struct vgpu_func *f, void **kernelParams, void **extra, uint8_t *buf)
{
    if (kernelParams != NULL)
        return vgpu_params_pack(f->params, f->param_count, f->param_bytes, kernelParams, buf);
    if (extra != NULL)
        return vgpu_params_pack_extra(f->param_bytes, extra, buf);
    return f->param_bytes == 0 ? 0 : -EINVAL;
}

/* Sends the launch rq with f's packed arguments: in the message tail when they fit a message,
 * else packed straight into a window chunk, which the proxy copies out and which comes back
 * with the reply. Caller holds v->lock. */
static CUresult post_launch_locked(struct vgpu *v, const struct vgpu_func *f,
                                   struct idm_req_LAUNCH *rq, void **kernelParams, void **extra)
{
    uint8_t tail[4096], *buf = tail;
    CUresult r = CUDA_SUCCESS;
    int c = -1;

    if (f->param_bytes > sizeof tail || f->param_bytes > vgpu_inline_max(v, IDM_OP_LAUNCH)) {
        if (f->param_bytes > v->chunk_size) {
            VLOG(VGPU_LOG_ERROR, "kernel %s: %u bytes of parameters do not fit a %llu-byte "
                                 "window chunk", f->name, f->param_bytes,
                 (unsigned long long)v->chunk_size);
            return CUDA_ERROR_NOT_SUPPORTED;
        }
        if ((c = vgpu_chunk_get_locked(v, &r)) < 0)
            return r;
        buf = vgpu_chunk_ptr(v, c);
        rq->win_off = (uint64_t)c * v->chunk_size;
        rq->win_len = f->param_bytes;
    }
    if (pack_args(f, kernelParams, extra, buf) < 0) {
        if (c >= 0)
            vgpu_chunk_put_locked(v, c);
        VLOG(VGPU_LOG_ERROR, "kernel %s: its arguments do not match its %u parameters", f->name,
             f->param_count);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (c >= 0)
        return vgpu_post_LAUNCH_locked(v, rq, NULL, 0, c, NULL, 0);
    return vgpu_send_LAUNCH_locked(v, rq, tail, f->param_bytes); /* unanswered */
}

CUresult vgpu_kernel_node(const void *p, const uint32_t grid[3], const uint32_t block[3],
                          const uint32_t cluster[3], uint32_t shared, void **kernelParams,
                          void **extra, struct idm_req_GRAPH_ADD_NODE *n, uint8_t **params)
{
    struct vgpu_func *f = func_check(p);
    if (f == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (f->param_bytes > IDM_PARAM_BYTES_MAX)
        return CUDA_ERROR_INVALID_VALUE;
    *params = NULL;
    if (f->param_bytes > 0 && (*params = malloc(f->param_bytes)) == NULL)
        return CUDA_ERROR_OUT_OF_MEMORY;
    if (pack_args(f, kernelParams, extra, *params) < 0) {
        free(*params);
        *params = NULL;
        VLOG(VGPU_LOG_ERROR, "kernel %s: its arguments do not match its %u parameters", f->name,
             f->param_count);
        return CUDA_ERROR_INVALID_VALUE;
    }
    n->kind = IDM_GNODE_KERNEL;
    n->func = f->h;
    n->param_bytes = f->param_bytes;
    n->shared_bytes = shared;
    memcpy(n->grid, grid, sizeof n->grid);
    memcpy(n->block, block, sizeof n->block);
    memcpy(n->cluster, cluster, sizeof n->cluster);
    return CUDA_SUCCESS;
}

/* A launch on a capturing stream becomes a node of its capture (VGPU_NOT_CAPTURED: s does not
 * capture). */
static CUresult capture_launch(void *p, const uint32_t grid[3], const uint32_t block[3],
                               uint32_t shared, CUstream s, void **kernelParams, void **extra,
                               const uint32_t cluster[3])
{
    struct idm_req_GRAPH_ADD_NODE n = {.kind = IDM_GNODE_KERNEL};
    uint8_t *params = NULL;
    if (!vgpu_capturing(s))
        return VGPU_NOT_CAPTURED;
    CUresult r = vgpu_kernel_node(p, grid, block, cluster, shared, kernelParams, extra, &n,
                                  &params);
    if (r == CUDA_SUCCESS)
        r = vgpu_capture_node(s, &n, params);
    free(params);
    return r;
}

/* A cooperative grid must be co-resident: at most the device's multiprocessors times the
 * blocks of this shape each holds (occupancy), or CUDA refuses the launch call itself with
 * CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE. The worker checks again (the simulated GPU may hold
 * fewer when its host memory budget is short; that refusal comes at the next synchronisation). */
static CUresult coop_fits(void *p, const uint32_t grid[3], const uint32_t block[3],
                          uint32_t shared)
{
    struct vgpu *v = vgpu_get();
    uint64_t blocks = (uint64_t)grid[0] * grid[1] * grid[2];
    int per_sm = 0, sms = v->dev[cur_dev()].attrs[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT];
    CUresult r = cuOccupancyMaxActiveBlocksPerMultiprocessor(
        &per_sm, p, (int)(block[0] * block[1] * block[2]), shared);
    if (r != CUDA_SUCCESS)
        return r;
    if (blocks > (uint64_t)per_sm * (uint64_t)(sms > 0 ? sms : 1)) {
        VLOG(VGPU_LOG_ERROR, "cooperative launch of %llu blocks: at most %d x %d are "
             "co-resident", (unsigned long long)blocks, sms, per_sm);
        return CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE;
    }
    return CUDA_SUCCESS;
}

/* flags: IDM_LAUNCH_* (a cooperative launch is not captured: graph nodes carry no flags). */
static CUresult launch(void *p, const uint32_t grid[3], const uint32_t block[3],
                       uint32_t shared, CUstream s, void **kernelParams, void **extra,
                       const uint32_t cluster[3], uint32_t flags)
{
    if ((flags & IDM_LAUNCH_COOPERATIVE) && vgpu_capture_on() && vgpu_capturing(s)) {
        VLOG(VGPU_LOG_ERROR, "a cooperative launch on a capturing stream is not supported");
        return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
    }
    if (vgpu_capture_on()) { /* a capturing stream records the launch (api_graph.c) */
        CUresult c = capture_launch(p, grid, block, shared, s, kernelParams, extra, cluster);
        if (c != VGPU_NOT_CAPTURED)
            return c;
    }
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    struct vgpu_func *f = func_check(p);
    if (f == NULL)
        return CUDA_ERROR_INVALID_HANDLE;
    if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || block[0] == 0 || block[1] == 0 ||
        block[2] == 0)
        return CUDA_ERROR_INVALID_VALUE;
    if (f->param_bytes > IDM_PARAM_BYTES_MAX) {
        VLOG(VGPU_LOG_ERROR, "kernel %s: %u bytes of parameters, more than CUDA's %u",
             f->name, f->param_bytes, IDM_PARAM_BYTES_MAX);
        return CUDA_ERROR_INVALID_VALUE;
    }
    if ((flags & IDM_LAUNCH_COOPERATIVE) && (r = coop_fits(p, grid, block, shared)) != 0)
        return r;
    struct idm_req_LAUNCH rq = {.func = f->h, .stream = vgpu_stream_handle(s),
                                .shared_bytes = shared, .param_bytes = f->param_bytes,
                                .flags = flags};
    memcpy(rq.grid, grid, sizeof rq.grid);
    memcpy(rq.block, block, sizeof rq.block);
    memcpy(rq.cluster, cluster, sizeof rq.cluster);
    pthread_mutex_lock(&v->lock);
    r = vgpu_managed_launch_locked(v, s); /* managed memory it may see goes to the GPU */
    if (r == CUDA_SUCCESS)
        r = post_launch_locked(v, f, &rq, kernelParams, extra);
    pthread_mutex_unlock(&v->lock);
    return r;
}

static const uint32_t no_cluster[3] = {1, 1, 1};

CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                        unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                        unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                        void **kernelParams, void **extra)
{
    uint32_t g[3] = {gridDimX, gridDimY, gridDimZ}, b[3] = {blockDimX, blockDimY, blockDimZ};
    return launch(f, g, b, sharedMemBytes, hStream, kernelParams, extra, no_cluster, 0);
}

CUresult cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f, void **kernelParams,
                          void **extra)
{
    if (config == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    uint32_t g[3] = {config->gridDimX, config->gridDimY, config->gridDimZ};
    uint32_t b[3] = {config->blockDimX, config->blockDimY, config->blockDimZ};
    uint32_t c[3];
    config_cluster(config, c);
    return launch(f, g, b, config->sharedMemBytes, config->hStream, kernelParams, extra, c,
                  config_flags(config));
}

CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                   unsigned int gridDimZ, unsigned int blockDimX,
                                   unsigned int blockDimY, unsigned int blockDimZ,
                                   unsigned int sharedMemBytes, CUstream hStream,
                                   void **kernelParams)
{
    uint32_t g[3] = {gridDimX, gridDimY, gridDimZ}, b[3] = {blockDimX, blockDimY, blockDimZ};
    return launch(f, g, b, sharedMemBytes, hStream, kernelParams, NULL, no_cluster,
                  IDM_LAUNCH_COOPERATIVE);
}

