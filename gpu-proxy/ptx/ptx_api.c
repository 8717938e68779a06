/* ptx_api.c - the public accessors of ptx.h: kernels, their parameter layouts, module
 * variables and their binding to device addresses. Loading is in ptx_image.c, execution in
 * ptx_exec.c. */
#include "ptx_internal.h"
#include "ptx_jit.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

void ptx_program_free(struct ptx_program *p)
{
    if (!p)
        return;
    ptx_jit_free(p);
    ptx_program_clear(p);
    free(p);
}

unsigned ptx_program_kernel_count(const struct ptx_program *p)
{
    return p ? p->nkernels : 0;
}

int ptx_program_uses_heap(const struct ptx_program *p)
{
    for (uint32_t i = 0; p && i < p->nfuncs; i++)
        if (!p->funcs[i].has_body &&
            (!strcmp(p->funcs[i].name, "malloc") || !strcmp(p->funcs[i].name, "free")))
            return 1;
    return 0;
}

const struct ptx_kernel *ptx_program_kernel_at(const struct ptx_program *p, unsigned i)
{
    return p && i < p->nkernels ? &p->kernels[i] : NULL;
}

const struct ptx_kernel *ptx_program_kernel(const struct ptx_program *p, const char *name)
{
    if (!p || !name)
        return NULL;
    for (uint32_t i = 0; i < p->nkernels; i++)
        if (!strcmp(p->kernels[i].name, name))
            return &p->kernels[i];
    return NULL;
}

const char *ptx_kernel_name(const struct ptx_kernel *k)
{
    return k ? k->name : "";
}

unsigned ptx_kernel_param_count(const struct ptx_kernel *k)
{
    return k ? k->nparams : 0;
}

const struct ptx_param *ptx_kernel_params(const struct ptx_kernel *k)
{
    return k ? k->params : NULL;
}

uint32_t ptx_kernel_param_bytes(const struct ptx_kernel *k)
{
    return k ? k->param_bytes : 0;
}

uint32_t ptx_kernel_static_shared(const struct ptx_kernel *k)
{
    return k && k->func >= 0 ? k->prog->funcs[k->func].shared_bytes : 0;
}

uint32_t ptx_kernel_local_bytes(const struct ptx_kernel *k)
{
    return k && k->func >= 0 ? k->prog->funcs[k->func].local_bytes : 0;
}

int ptx_kernel_executable(const struct ptx_kernel *k)
{
    return k && k->func >= 0;
}

uint32_t ptx_kernel_ptx_version(const struct ptx_kernel *k)
{
    return k && k->func >= 0 ? k->prog->ptx_target : 0;
}

unsigned ptx_program_global_count(const struct ptx_program *p)
{
    return p ? p->nglobals : 0;
}

int ptx_program_global(const struct ptx_program *p, unsigned i, struct ptx_global_info *out)
{
    if (!p || !out || i >= p->nglobals)
        return PTX_ERR_NOT_FOUND;
    const struct pglobal *g = &p->globals[i];
    out->name = g->name;
    out->size = g->size;
    out->align = g->align;
    out->space = g->space;
    out->init = g->init_size ? g->init : NULL;
    out->init_size = g->init_size;
    return PTX_OK;
}

int ptx_program_global_find(const struct ptx_program *p, const char *name)
{
    if (!p || !name)
        return -1;
    for (uint32_t i = 0; i < p->nglobals; i++)
        if (!strcmp(p->globals[i].name, name))
            return (int)i;
    return -1;
}

int ptx_program_bind_global(struct ptx_program *p, unsigned i, uint64_t device_address)
{
    if (!p || i >= p->nglobals)
        return PTX_ERR_NOT_FOUND;
    p->globals[i].addr = device_address;
    p->globals[i].bound = 1;
    if (p->has_relocs)
        atomic_store(&p->relocated, 0);
    for (uint32_t f = 0; f < p->nfuncs; f++) {
        struct pfunc *fn = &p->funcs[f];
        for (uint32_t j = 0; j < fn->npatches; j++)
            if (fn->patches[j].global == (int32_t)i)
                fn->reg_init[fn->patches[j].reg] = device_address;
    }
    return PTX_OK;
}
