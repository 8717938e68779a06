/* test_params.c - kernel argument packing by a parameter layout (kernelParams and the `extra`
 * CU_LAUNCH_PARAM_BUFFER_POINTER form), including the refusals. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vgpu.h"

/* (int n, float *p, double d, char c) as CUDA packs it: 0/4, 8/8, 16/8, 24/1 -> 32 bytes */
static const struct idm_param layout[] = {{0, 4}, {8, 8}, {16, 8}, {24, 1}};

static void test_params_kernel_params(void **state)
{
    (void)state;
    int n = 0x11223344;
    void *p = (void *)(uintptr_t)0xdeadbeefcafe;
    double d = 2.5;
    char c = 'x';
    void *args[] = {&n, &p, &d, &c};
    uint8_t buf[32];
    memset(buf, 0xee, sizeof buf);
    assert_int_equal(vgpu_params_pack(layout, 4, 32, args, buf), 0);
    int n2;
    void *p2;
    double d2;
    memcpy(&n2, buf, 4);
    memcpy(&p2, buf + 8, 8);
    memcpy(&d2, buf + 16, 8);
    assert_int_equal(n2, n);
    assert_ptr_equal(p2, p);
    assert_true(d2 == 2.5);
    assert_int_equal(buf[24], 'x');
    for (int i = 4; i < 8; i++) /* padding is zeroed, not left over */
        assert_int_equal(buf[i], 0);
    assert_int_equal(buf[31], 0);
}

static void test_params_refusals(void **state)
{
    (void)state;
    uint8_t buf[32];
    int n = 1;
    void *args[] = {&n, NULL, &n, &n};
    assert_int_equal(vgpu_params_pack(layout, 4, 32, NULL, buf), -EINVAL);
    assert_int_equal(vgpu_params_pack(layout, 4, 32, args, buf), -EINVAL); /* NULL argument */
    static const struct idm_param bad[] = {{30, 4}};
    void *one[] = {&n};
    assert_int_equal(vgpu_params_pack(bad, 1, 32, one, buf), -EINVAL); /* outside the buffer */
    assert_int_equal(vgpu_params_pack(NULL, 0, 0, NULL, buf), 0);      /* no parameters */
}

static void test_params_extra(void **state)
{
    (void)state;
    uint8_t src[32], buf[32];
    for (int i = 0; i < 32; i++)
        src[i] = (uint8_t)(i * 7);
    size_t size = sizeof src;
    void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, src, CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
                     CU_LAUNCH_PARAM_END};
    assert_int_equal(vgpu_params_pack_extra(32, extra, buf), 0);
    assert_memory_equal(buf, src, 32);
    size_t small = 16;
    void *short_extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, src, CU_LAUNCH_PARAM_BUFFER_SIZE,
                           &small, CU_LAUNCH_PARAM_END};
    assert_int_equal(vgpu_params_pack_extra(32, short_extra, buf), -EINVAL);
    void *no_size[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, src, CU_LAUNCH_PARAM_END};
    assert_int_equal(vgpu_params_pack_extra(32, no_size, buf), -EINVAL);
    void *unknown[] = {(void *)(uintptr_t)0x77, src, CU_LAUNCH_PARAM_END};
    assert_int_equal(vgpu_params_pack_extra(32, unknown, buf), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_kernel_params),
        cmocka_unit_test(test_params_refusals),
        cmocka_unit_test(test_params_extra),
    };
    return cmocka_run_group_tests_name("params", tests, NULL, NULL);
}
