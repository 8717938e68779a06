/* ptx_jit_load.c - finds and loads the translator (libvgpu-ptxjit.so, built from ptx_jit.c with
 * LLVM), checks that it was built against this engine's structures, and routes the
 * interpreter's ptx_jit_get/ptx_jit_free to it; with none loaded every kernel is interpreted.
 * Also owns the translation mode (PTX_JIT, ptx_set_translator: off, always, auto) and the auto
 * mode's threshold. */
#include "ptx_jit.h"
#include "ptx.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OPS_SYMBOL "ptx_jit_ops"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct ptx_jit_ops *g_ops; /* set once, under g_lock; read with acquire */
/* "on (FROM)" or "off: WHY", under g_lock */
static char g_state[PATH_MAX + 64] = "off: no translator loaded";
static int g_mode = -1; /* PTX_TRANSLATE_*; -1: not decided yet */
static uint64_t g_threshold = PTX_TRANSLATE_HOT_DEFAULT;

int ptx_jit_enabled(void)
{
    if (__atomic_load_n(&g_mode, __ATOMIC_RELAXED) < 0) {
        const char *e = getenv("PTX_JIT");
        int mode = !e || strcmp(e, "auto") == 0 ? PTX_TRANSLATE_AUTO
                   : strcmp(e, "0") == 0        ? PTX_TRANSLATE_OFF
                                                : PTX_TRANSLATE_ALWAYS;
        int unset = -1;
        __atomic_compare_exchange_n(&g_mode, &unset, mode, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
    }
    return __atomic_load_n(&g_mode, __ATOMIC_RELAXED);
}

void ptx_set_translator(int mode)
{
    if (mode != PTX_TRANSLATE_OFF && mode != PTX_TRANSLATE_AUTO)
        mode = PTX_TRANSLATE_ALWAYS;
    __atomic_store_n(&g_mode, mode, __ATOMIC_RELAXED);
}

void ptx_set_translate_threshold(uint64_t instructions)
{
    __atomic_store_n(&g_threshold, instructions, __ATOMIC_RELAXED);
}

uint64_t ptx_jit_threshold(void)
{
    return __atomic_load_n(&g_threshold, __ATOMIC_RELAXED);
}

const char *ptx_translator_state(void)
{
    return g_state;
}

static int ops_mismatch(const struct ptx_jit_ops *ops, char *why, size_t whylen)
{
    if (ops->abi == PTX_JIT_ABI && ops->program_size == sizeof(struct ptx_program) &&
        ops->func_size == sizeof(struct pfunc) && ops->frame_size == sizeof(struct jit_frame))
        return 0;
    snprintf(why, whylen, "built for another engine (ABI %u, structures %u/%u/%u bytes; this "
             "program: ABI %u, %zu/%zu/%zu): install the one built with it", ops->abi,
             ops->program_size, ops->func_size, ops->frame_size, PTX_JIT_ABI,
             sizeof(struct ptx_program), sizeof(struct pfunc), sizeof(struct jit_frame));
    return -1;
}

/* Records why launches are not translated, unless a translator is in use. */
static void note_off(const char *why)
{
    pthread_mutex_lock(&g_lock);
    if (!g_ops)
        snprintf(g_state, sizeof(g_state), "off: %s", why);
    pthread_mutex_unlock(&g_lock);
}

/* Makes ops (checked) the translator, named `from` in the state; the one in use stays. */
static int install(const struct ptx_jit_ops *ops, const char *from, char *why, size_t whylen)
{
    int rc = 0;
    pthread_mutex_lock(&g_lock);
    if (!g_ops) {
        snprintf(g_state, sizeof(g_state), "on (%s)", from);
        /* pairs with the acquire in ptx_jit_get/ptx_jit_free */
        __atomic_store_n(&g_ops, ops, __ATOMIC_RELEASE);
    } else if (g_ops != ops) {
        snprintf(why, whylen, "another translator is in use (%s)", g_state);
        rc = -1;
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

int ptx_jit_attach(const struct ptx_jit_ops *ops, char *why, size_t whylen)
{
    if (ops_mismatch(ops, why, whylen) != 0)
        return -1;
    return install(ops, "linked in", why, whylen);
}

/* dlopen and check; *h stays open on success (never closed: translations point into it). */
static const struct ptx_jit_ops *open_ops(const char *path, void **h, char *why, size_t whylen)
{
    *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*h) {
        const char *e = dlerror();
        snprintf(why, whylen, "dlopen: %s", e ? e : path);
        return NULL;
    }
    const struct ptx_jit_ops *ops = dlsym(*h, OPS_SYMBOL);
    if (!ops)
        snprintf(why, whylen, "%s: no symbol %s (not a PTX translator)", path, OPS_SYMBOL);
    else if (ops_mismatch(ops, why, whylen) == 0)
        return ops;
    if (dlclose(*h) != 0) {
        const char *e = dlerror();
        fprintf(stderr, "ptx: dlclose of %s: %s\n", path, e ? e : "failed");
    }
    return NULL;
}

int ptx_translator_load(const char *path, char *why, size_t whylen)
{
    void *h;
    if (!ptx_jit_enabled()) {
        snprintf(why, whylen, "PTX_JIT=0 (the interpreter only)");
        note_off(why);
        return -1;
    }
    const struct ptx_jit_ops *ops = open_ops(path, &h, why, whylen);
    if (!ops) {
        note_off(why);
        return -1;
    }
    if (install(ops, path, why, whylen) != 0) {
        if (dlclose(h) != 0)
            fprintf(stderr, "ptx: dlclose of %s failed\n", path);
        return -1;
    }
    return 0;
}

int ptx_translator_load_beside_exe(char *why, size_t whylen)
{
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        snprintf(why, whylen, "readlink /proc/self/exe: %s", n < 0 ? strerror(errno) : "empty");
        note_off(why);
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(path, sizeof(path), "%s/%s", exe, PTX_JIT_SO_NAME);
    if (access(path, F_OK) != 0)
        snprintf(path, sizeof(path), "%s/../lib/gpu-proxy/%s", exe, PTX_JIT_SO_NAME);
    if (ptx_jit_enabled() && access(path, F_OK) != 0) {
        snprintf(why, whylen, "no %s in %s or %s/../lib/gpu-proxy", PTX_JIT_SO_NAME, exe, exe);
        note_off(why);
        return -1;
    }
    return ptx_translator_load(path, why, whylen);
}

ptx_jit_fn ptx_jit_get(struct ptx_program *p, uint32_t func, const struct ptx_jit_helpers *h,
                       struct ptx_jit_info *info)
{
    const struct ptx_jit_ops *ops = __atomic_load_n(&g_ops, __ATOMIC_ACQUIRE);
    if (!ops || !ptx_jit_enabled())
        return NULL;
    return ops->get(p, func, h, info);
}

void ptx_jit_free(struct ptx_program *p)
{
    const struct ptx_jit_ops *ops = __atomic_load_n(&g_ops, __ATOMIC_ACQUIRE);
    if (p->jit && ops)
        ops->free(p);
}
