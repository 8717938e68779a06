/* fuzz_ptx.c - libFuzzer target for the PTX engine: image scanning and the PTX parser
 * (ptx_program_load) on arbitrary bytes, and the translator and the interpreter on whatever
 * loads (every kernel runs 2 blocks of 32 threads over a small memory, under the watchdog;
 * translated for inputs of odd length, interpreted for even ones). Loading must fail
 * cleanly or succeed and launches must end with a result code: never read out of bounds,
 * leak, hang or crash, since the PTX comes from a guest. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ptx.h"
#include "ptx_jit.h"

#define MEM_BASE 0x10000ull
#define MEM_SIZE 65536u

static uint8_t g_mem[MEM_SIZE];

static void *fz_resolve(void *ctx, uint64_t addr, uint64_t len, uint64_t *base, uint64_t *size)
{
    (void)ctx;
    if (addr < MEM_BASE || addr - MEM_BASE > MEM_SIZE || len > MEM_SIZE - (addr - MEM_BASE))
        return NULL;
    *base = MEM_BASE;
    *size = MEM_SIZE;
    return g_mem + (addr - MEM_BASE);
}

static void quiet_sink(void *ctx, const char *kernel, const char *text)
{
    (void)ctx;
    (void)kernel;
    (void)text;
}

static void run_kernels(struct ptx_program *p)
{
    for (unsigned i = 0; i < ptx_program_global_count(p); i++)
        ptx_program_bind_global(p, i, MEM_BASE + 64u * (i % 512));
    uint8_t params[4096];
    for (size_t i = 0; i < sizeof(params); i += 8) {
        uint64_t v = MEM_BASE + 128;
        memcpy(params + i, &v, 8);
    }
    struct ptx_memory mem = {.ctx = NULL, .resolve = fz_resolve};
    unsigned n = ptx_program_kernel_count(p);
    for (unsigned i = 0; i < n && i < 4; i++) {
        const struct ptx_kernel *k = ptx_program_kernel_at(p, i);
        if (!ptx_kernel_executable(k) || ptx_kernel_param_bytes(k) > sizeof(params))
            continue;
        struct ptx_launch l = {
            .grid = {2, 1, 1}, .block = {32, 1, 1}, .dynamic_shared = 256, .params = params,
            .params_size = ptx_kernel_param_bytes(k), .mem = &mem, .host_threads = 1,
        };
        char err[320];
        (void)ptx_launch(k, &l, err, sizeof(err));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        ptx_set_watchdog(200000);
        ptx_set_printf_sink(quiet_sink, NULL);
        char why[256];
        if (ptx_jit_attach(&ptx_jit_ops, why, sizeof(why)) != 0)
            abort(); /* the translator built in must be the one fuzzed */
        init = 1;
    }
    ptx_set_translator(size & 1);
    char err[256];
    struct ptx_program *p = NULL;
    uint64_t global_bytes;
    /* as given (binary images): sized as the real backend sizes them, then loaded */
    (void)ptx_image_global_bytes(data, size, &global_bytes, err, sizeof(err));
    if (ptx_program_load(data, size, &p, err, sizeof(err)) == PTX_OK) {
        for (unsigned i = 0; i < ptx_program_kernel_count(p); i++)
            (void)ptx_kernel_param_bytes(ptx_program_kernel_at(p, i));
        ptx_program_free(p);
    }
    /* and as PTX text behind a valid header, so the parser sees most inputs; run what loads */
    static const char hdr[] = ".version 9.0\n.target sm_75\n.address_size 64\n";
    char *txt = malloc(sizeof(hdr) + size + 1);
    if (!txt)
        return 0;
    memcpy(txt, hdr, sizeof(hdr) - 1);
    memcpy(txt + sizeof(hdr) - 1, data, size);
    txt[sizeof(hdr) - 1 + size] = 0;
    p = NULL;
    if (ptx_program_load(txt, sizeof(hdr) + size, &p, err, sizeof(err)) == PTX_OK) {
        run_kernels(p);
        ptx_program_free(p);
    }
    free(txt);
    return 0;
}
