/* test_cuda.c - integration test of gpu_proxy's CUDA backend on a real NVIDIA GPU: two zones,
 * round trips, pointer isolation, scrubbed reuse, a PTX kernel (JIT-compiled by the driver)
 * whose pointer parameter the proxy translates from zone to real addresses, and virtual memory
 * management through the driver's own calls (fresh chunks read zero, a copy across two mappings,
 * no access before VMM_SET_ACCESS, another zone refused), and the device heap's size forwarded
 * to the driver and charged (past the quota refused). Without an NVIDIA driver or GPU it exits
 * 77 (skipped). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <cuda.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy_fixture.h"

static struct proxy_fixture fx = {.pid = -1};

static const char ptx_src[] =
    ".version 8.0\n.target sm_52\n.address_size 64\n"
    ".visible .entry store7(.param .u64 p)\n{\n"
    ".reg .b64 %rd<3>;\n.reg .b32 %r<2>;\n"
    "ld.param.u64 %rd1, [p];\ncvta.to.global.u64 %rd2, %rd1;\n"
    "mov.u32 %r1, 7;\nst.global.u32 [%rd2], %r1;\nret;\n}\n";

static int have_gpu(void)
{
    CUresult (*init)(unsigned);
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);

    if (lib == NULL)
        return 0;
    *(void **)&init = dlsym(lib, "cuInit");
    return init != NULL && init(0) == CUDA_SUCCESS;
}

static int group_setup(void **state)
{
    const char *extra[] = {"--zone", "A:256M", "--zone", "B:256M", NULL};

    (void)state;
    setenv("PROXY_BACKEND", "cuda", 1);
    return fx_start(&fx, fx.bin, "cuda", extra);
}

static int group_teardown(void **state)
{
    (void)state;
    return fx_stop(&fx);
}

static void test_cuda_roundtrip_isolation_scrub(void **state)
{
    const uint64_t size = 4 << 20;
    uint8_t *buf = malloc(size), *back = malloc(size);
    struct pc a, b;
    idm_handle actx, bctx;
    idm_dptr da, db;

    (void)state;
    assert_non_null(buf);
    assert_non_null(back);
    fx_connect(&fx, &a, "A");
    fx_connect(&fx, &b, "B");
    assert_int_equal(pc_ctx(&a, &actx), 0);
    assert_int_equal(pc_ctx(&b, &bctx), 0);
    assert_int_equal(pc_alloc(&a, actx, size, &da), 0);
    for (uint64_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i * 13 + 1);
    assert_int_equal(pc_htod(&a, da, buf, size), 0);
    assert_int_equal(pc_dtoh(&a, back, da, size), 0);
    assert_memory_equal(buf, back, size);
    assert_int_equal(pc_dtoh(&b, back, da, 16), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(pc_free(&a, da), 0);
    assert_int_equal(pc_alloc(&b, bctx, size, &db), 0);
    assert_int_equal(pc_dtoh(&b, back, db, size), 0);
    for (uint64_t i = 0; i < size; i++)
        if (back[i] != 0)
            fail_msg("byte %llu of a fresh allocation is not zero", (unsigned long long)i);
    pc_close(&a);
    pc_close(&b);
    free(buf);
    free(back);
}

static void test_cuda_kernel_pointer(void **state)
{
    struct pc a;
    idm_handle ctx, lib, k;
    idm_dptr d;
    uint32_t v = 0;
    uint8_t rep[4096];

    (void)state;
    fx_connect(&fx, &a, "A");
    assert_int_equal(pc_ctx(&a, &ctx), 0);
    assert_int_equal(pc_alloc(&a, ctx, 64, &d), 0);
    {
        struct idm_req_IMAGE_BEGIN ib = {.size = sizeof(ptx_src)};
        struct idm_rep_IMAGE_BEGIN ibr;
        struct idm_req_IMAGE_CHUNK ic = {.offset = 0, .win_off = 0, .len = sizeof(ptx_src)};
        struct idm_req_LIBRARY_LOAD ll = {.ctx = ctx};
        struct idm_rep_LIBRARY_LOAD llr;
        assert_int_equal(pc_call(&a, IDM_OP_IMAGE_BEGIN, &ib, sizeof(ib), NULL, 0, &ibr, sizeof(ibr), NULL), 0);
        memcpy(a.win, ptx_src, sizeof(ptx_src));
        ic.image = ibr.image;
        assert_int_equal(pc_call(&a, IDM_OP_IMAGE_CHUNK, &ic, sizeof(ic), NULL, 0, NULL, 0, NULL), 0);
        ll.image = ibr.image;
        assert_int_equal(pc_call(&a, IDM_OP_LIBRARY_LOAD, &ll, sizeof(ll), NULL, 0, &llr, sizeof(llr), NULL), 0);
        lib = llr.library;
    }
    {
        struct idm_req_LIBRARY_GET_KERNEL q = {.library = lib};
        struct idm_rep_LIBRARY_GET_KERNEL *r = (void *)rep;
        assert_int_equal(pc_call(&a, IDM_OP_LIBRARY_GET_KERNEL, &q, sizeof(q), "store7", 7, rep, sizeof(rep), NULL), 0);
        assert_int_equal(r->param_count, 1);
        assert_int_equal(r->param_bytes, 8);
        k = r->kernel;
    }
    {
        struct idm_req_LAUNCH q;
        struct idm_req_CTX_SYNCHRONIZE cs = {.ctx = ctx};
        idm_dptr arg = d + 4;
        memset(&q, 0, sizeof(q));
        q.func = k;
        q.grid[0] = q.grid[1] = q.grid[2] = q.block[0] = q.block[1] = q.block[2] = 1;
        q.param_bytes = 8;
        assert_int_equal(pc_call(&a, IDM_OP_LAUNCH, &q, sizeof(q), &arg, 8, NULL, 0, NULL), 0);
        assert_int_equal(pc_call(&a, IDM_OP_CTX_SYNCHRONIZE, &cs, sizeof(cs), NULL, 0, NULL, 0, NULL), 0);
    }
    assert_int_equal(pc_dtoh(&a, &v, d + 4, 4), 0);
    assert_int_equal(v, 7);
    pc_close(&a);
}

#define G IDM_VMM_GRANULARITY

static int32_t vmm(struct pc *p, uint16_t op, const void *q, size_t len, void *r, size_t rlen)
{
    return pc_call(p, op, q, len, NULL, 0, r, rlen, NULL);
}

static void test_cuda_vmm(void **state)
{
    uint8_t *buf = malloc(2 * G), *back = malloc(2 * G);
    struct pc a, b;
    struct idm_req_VMM_RESERVE rs = {.size = 4 * G};
    struct idm_rep_VMM_RESERVE rsr;
    struct idm_req_VMM_CREATE cr = {.size = G, .device = 0};
    struct idm_rep_VMM_CREATE c0, c1;
    struct idm_req_VMM_SET_ACCESS sa;
    struct idm_req_VMM_UNMAP um;

    (void)state;
    assert_non_null(buf);
    assert_non_null(back);
    fx_connect(&fx, &a, "A");
    fx_connect(&fx, &b, "B");
    assert_int_equal(vmm(&a, IDM_OP_VMM_RESERVE, &rs, sizeof(rs), &rsr, sizeof(rsr)), 0);
    assert_int_equal(vmm(&a, IDM_OP_VMM_CREATE, &cr, sizeof(cr), &c0, sizeof(c0)), 0);
    assert_int_equal(vmm(&a, IDM_OP_VMM_CREATE, &cr, sizeof(cr), &c1, sizeof(c1)), 0);
    for (int i = 0; i < 2; i++) {
        struct idm_req_VMM_MAP m = {.ptr = rsr.ptr + (uint64_t)i * G, .size = G,
                                    .handle = i ? c1.handle : c0.handle};
        assert_int_equal(vmm(&a, IDM_OP_VMM_MAP, &m, sizeof(m), NULL, 0), 0);
    }
    assert_int_equal(pc_dtoh(&a, back, rsr.ptr, 16), CUDA_ERROR_INVALID_VALUE); /* no access */
    sa = (struct idm_req_VMM_SET_ACCESS){.ptr = rsr.ptr, .size = 2 * G,
                                         .flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE};
    assert_int_equal(vmm(&a, IDM_OP_VMM_SET_ACCESS, &sa, sizeof(sa), NULL, 0), 0);
    assert_int_equal(pc_dtoh(&a, back, rsr.ptr, 2 * G), 0);
    for (uint64_t i = 0; i < 2 * G; i++)
        if (back[i] != 0)
            fail_msg("byte %llu of a fresh physical allocation is not zero", (unsigned long long)i);
    for (uint64_t i = 0; i < 2 * G; i++)
        buf[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(pc_htod(&a, rsr.ptr, buf, 2 * G), 0);
    assert_int_equal(pc_dtoh(&a, back, rsr.ptr + G - 4096, 8192), 0); /* across the boundary */
    assert_memory_equal(buf + G - 4096, back, 8192);
    assert_int_equal(pc_dtoh(&b, back, rsr.ptr, 16), CUDA_ERROR_INVALID_VALUE);
    um = (struct idm_req_VMM_UNMAP){.ptr = rsr.ptr, .size = 2 * G};
    assert_int_equal(vmm(&a, IDM_OP_VMM_UNMAP, &um, sizeof(um), NULL, 0), 0);
    assert_int_equal(pc_dtoh(&a, back, rsr.ptr, 16), CUDA_ERROR_INVALID_VALUE);
    pc_close(&a);
    pc_close(&b);
    free(buf);
    free(back);
}

static uint64_t free_of(struct pc *p, idm_handle ctx)
{
    struct idm_req_MEM_GET_INFO q = {.ctx = ctx};
    struct idm_rep_MEM_GET_INFO r;

    assert_int_equal(pc_call(p, IDM_OP_MEM_GET_INFO, &q, sizeof(q), NULL, 0, &r, sizeof(r), NULL),
                     0);
    return r.free;
}

/* Last: the charge stays with zone A while its worker's context lives. */
static void test_cuda_heap_charged(void **state)
{
    struct pc a;
    idm_handle ctx;
    uint64_t before;
    struct idm_req_CTX_SET_LIMIT q = {.limit = CU_LIMIT_MALLOC_HEAP_SIZE};
    struct idm_req_CTX_GET_LIMIT g = {.limit = CU_LIMIT_MALLOC_HEAP_SIZE};
    struct idm_rep_CTX_GET_LIMIT gr;

    (void)state;
    fx_connect(&fx, &a, "A");
    assert_int_equal(pc_ctx(&a, &ctx), 0);
    q.ctx = g.ctx = ctx;
    before = free_of(&a, ctx);
    q.value = 512ull << 20; /* past the zone's 256 MiB */
    assert_int_equal(pc_call(&a, IDM_OP_CTX_SET_LIMIT, &q, sizeof(q), NULL, 0, NULL, 0, NULL),
                     CUDA_ERROR_OUT_OF_MEMORY);
    q.value = 64ull << 20;
    assert_int_equal(pc_call(&a, IDM_OP_CTX_SET_LIMIT, &q, sizeof(q), NULL, 0, NULL, 0, NULL), 0);
    assert_int_equal(before - free_of(&a, ctx), 64ull << 20);
    assert_int_equal(pc_call(&a, IDM_OP_CTX_GET_LIMIT, &g, sizeof(g), NULL, 0, &gr, sizeof(gr),
                             NULL), 0);
    assert_int_equal(gr.value, 64ull << 20);
    pc_close(&a);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuda_roundtrip_isolation_scrub),
        cmocka_unit_test(test_cuda_kernel_pointer),
        cmocka_unit_test(test_cuda_vmm),
        cmocka_unit_test(test_cuda_heap_charged),
    };

    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH/TO/gpu_proxy\n", argv[0]);
        return 2;
    }
    if (!have_gpu()) {
        printf("test_cuda: skipped: no NVIDIA driver/GPU (dlopen(libcuda.so.1) or cuInit failed)\n");
        return 77;
    }
    snprintf(fx.bin, sizeof(fx.bin), "%s", argv[1]);
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
