/* test_export.c - cuGetExportTable: every private table of the contract is there with its size
 * header and working slots, unknown tables are refused, and the integrity check gives the
 * documented constants and the HMAC-MD2 of a message built here independently. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "md2.h"
#include "vgpu.h"

static const void *table(const char *hex)
{
    CUuuid id;
    for (int i = 0; i < 16; i++) {
        unsigned b;
        sscanf(hex + 2 * i, "%2x", &b);
        id.bytes[i] = (char)b;
    }
    const void *t = (const void *)1;
    CUresult r = cuGetExportTable(&t, &id);
    return r == CUDA_SUCCESS ? t : NULL;
}

#define CUDART "6bd5fb6c5bf4e74a8987d93912fd9df9"
#define HOOKS "a094798c2e742e7493f20800200c0a66"
#define TLS "42d85a8123f6cb478298f6e78a3aecdc"
#define CLS "c693336e1121df11a8c368f355d89593"
#define CHECKS "263e88607cd2614392f6bbd5006dfa7e"
#define INTEGRITY "d4082055bde6704b8d34ba123c66e1f2"
#define TOOLS_MODULE "6e163fbeb958444d835ce182aff1991e" /* cuFFT's cufftPlan* needs it */

static void test_export_sizes(void **state)
{
    (void)state;
    static const struct { const char *uuid; size_t slots; } t[] = {
        {CUDART, 13}, {HOOKS, 7}, {TLS, 4}, {CHECKS, 4}, {INTEGRITY, 3},
        {"0ca50b8c1004929a89a7d0df10e77286", 2}, {"195bcbf4d67d024aacc51d29cea631ae", 3},
        {"b10541e1f7c7c74a9f64f223be99f1e2", 26}, {"21318c60971432488ca641ff7324c8f2", 95},
        {TOOLS_MODULE, 64},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const uintptr_t *p = table(t[i].uuid);
        assert_non_null(p);
        assert_int_equal(p[0], t[i].slots * sizeof(void *));
        for (size_t s = 1; s < t[i].slots; s++)
            assert_true(p[s] != 0); /* every slot callable */
    }
    const uintptr_t *cls = table(CLS); /* no size header: slot 0 is put() */
    assert_non_null(cls);
    assert_true(cls[0] > 4096);
    const uintptr_t *tm = table(TOOLS_MODULE); /* every slot but 7 fails closed */
    for (size_t s = 1; s < 64; s++)
        if (s != 7)
            assert_int_equal(((CUresult(*)(void))tm[s])(), CUDA_ERROR_NOT_SUPPORTED);
    /* slot 7 walks a module's functions (cuFFT): no callback is a bad value */
    assert_int_equal(((CUresult(*)(void *, void *, void *, void *))tm[7])(NULL, NULL, NULL, NULL),
                     CUDA_ERROR_INVALID_VALUE);
    assert_null(table("f8cff95121468b4eb9e2fb469e7c0dd9")); /* the probe is refused */
    assert_null(table("00000000000000000000000000000000"));
}

static void test_export_hooks_and_checks(void **state)
{
    (void)state;
    const uintptr_t *h = table(HOOKS);
    void *buf = NULL;
    size_t n = 0;
    ((void (*)(void **, size_t *))h[2])(&buf, &n);
    assert_non_null(buf);
    assert_int_equal(n, 1024);
    memset(buf, 0x5a, n * sizeof(void *)); /* writable, whole */
    ((void (*)(void **, size_t *))h[6])(&buf, &n);
    assert_int_equal(n, 14);
    memset(buf, 0x5a, n * 4);
    const uintptr_t *c = table(CHECKS);
    uint32_t out = 77;
    const void *dummy = NULL;
    assert_int_equal(((CUresult(*)(CUcontext, uint32_t *, const void **))c[2])(NULL, &out,
                                                                              &dummy), 0);
    assert_int_equal(out, 0);
    assert_int_equal(((uint32_t(*)(void))c[3])(), 0);
    const uintptr_t *d = table("b10541e1f7c7c74a9f64f223be99f1e2");
    unsigned char flag = 9;
    assert_int_equal(((CUresult(*)(unsigned char *, CUdevice))d[13])(&flag, 0), 0);
    assert_int_equal(flag, 0);
}

/* Without a context nothing is stored (get: absent) and nothing can be (put: no context). */
static void test_export_cls_without_context(void **state)
{
    (void)state;
    const uintptr_t *cls = table(CLS);
    void *value = NULL;
    CUresult r = ((CUresult(*)(void **, CUcontext, void *))cls[2])(&value, NULL, &value);
    assert_int_equal(r, CUDA_ERROR_INVALID_HANDLE);
    r = ((CUresult(*)(CUcontext, void *, void *, void *))cls[0])(NULL, &value, &value, NULL);
    assert_int_equal(r, CUDA_ERROR_INVALID_CONTEXT);
}

static size_t le(uint8_t *b, size_t p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        b[p + i] = (uint8_t)(v >> (8 * i));
    return p + n;
}

static void test_export_integrity(void **state)
{
    (void)state;
    const uintptr_t *ic = table(INTEGRITY);
    const void *rt = table(CUDART);
    typedef CUresult (*check_fn)(uint32_t, uint64_t, uint64_t *);
    check_fn check = (check_fn)ic[1];
    uint64_t out[2];
    uint64_t now = (uint64_t)time(NULL);
    assert_int_equal(check(13000, now, out), 0);
    assert_true(out[0] == 0x3341181C03CB675Cull && out[1] == 0x8ED383AA1F4CD1E8ull);
    assert_int_equal(check(13001, now, out), 0);
    assert_true(out[0] == 0x1841181C03CB675Cull && out[1] == 0x8ED383AA1F4CD1E8ull);
    assert_int_equal(check(13002, now, out), 0);

    /* the message as the contract describes it; no devices before cuInit */
    uint8_t m[64];
    size_t p = 0;
    p = le(m, p, 13000, 4);
    p = le(m, p, 13002, 4);
    p = le(m, p, (uint32_t)getpid(), 4);
    p = le(m, p, (uint32_t)pthread_self(), 4);
    p = le(m, p, (uintptr_t)rt, 8);
    p = le(m, p, (uintptr_t)ic, 8);
    p = le(m, p, ic[1], 8);
    p = le(m, p, now, 8);
    assert_int_equal(p, 48);
    static const uint8_t key[16] = {0x14, 0x6A, 0xDD, 0xAE, 0x53, 0xA9, 0xA7, 0x52,
                                    0xAA, 0x08, 0x41, 0x36, 0x0B, 0xF5, 0x5A, 0x9F};
    uint8_t want[16];
    hmac_md2(key, sizeof key, m, p, want);
    assert_memory_equal(out, want, 16);
    /* another second, another answer */
    uint64_t out2[2];
    assert_int_equal(check(13002, now + 1, out2), 0);
    assert_memory_not_equal(out, out2, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_sizes),
        cmocka_unit_test(test_export_hooks_and_checks),
        cmocka_unit_test(test_export_cls_without_context),
        cmocka_unit_test(test_export_integrity),
    };
    return cmocka_run_group_tests_name("export", tests, NULL, NULL);
}
