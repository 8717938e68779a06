/* test_handle.c - the handle table behind CUcontext, CUmodule and CUfunction (vgpu_handle.c),
 * built here with 3 generation bits and 8192 slots so that retirement and a full table are
 * reached quickly: live handles resolve to their record, stale (freed), forged and wrong-type
 * handles are refused, no handle value is given out twice, a full table says so. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define VGPU_HANDLE_GEN_BITS 3
#define VGPU_HANDLE_SLOTS 8192u
#include "vgpu_handle.c"

static int rec_a, rec_b, rec_c;

static void test_handle_live(void **state)
{
    (void)state;
    uint64_t a = vgpu_handle_new(VGPU_H_LIB, &rec_a);
    uint64_t b = vgpu_handle_new(VGPU_H_FUNC, &rec_b);
    assert_true(a != 0 && b != 0 && a != b);
    assert_true(a >> 56 == VGPU_HANDLE_TAG); /* not an address: a dereference faults */
    assert_ptr_equal(vgpu_handle_get(a, VGPU_H_LIB), &rec_a);
    assert_ptr_equal(vgpu_handle_get(b, VGPU_H_FUNC), &rec_b);
    assert_int_equal(vgpu_handle_free(a, VGPU_H_LIB), 0);
    assert_int_equal(vgpu_handle_free(b, VGPU_H_FUNC), 0);
    assert_int_equal(vgpu_handle_new(VGPU_H_CTX, NULL), 0);
}

static void test_handle_wrong_type(void **state)
{
    (void)state;
    uint64_t f = vgpu_handle_new(VGPU_H_FUNC, &rec_a);
    assert_null(vgpu_handle_get(f, VGPU_H_LIB));
    assert_null(vgpu_handle_get(f, VGPU_H_CTX));
    /* the type bits rewritten: the slot's own type still decides */
    uint64_t as_ctx = (f & ~(0xffull << 48)) | (uint64_t)VGPU_H_CTX << 48;
    assert_null(vgpu_handle_get(as_ctx, VGPU_H_CTX));
    assert_int_equal(vgpu_handle_free(f, VGPU_H_LIB), -EINVAL);
    assert_ptr_equal(vgpu_handle_get(f, VGPU_H_FUNC), &rec_a); /* untouched */
    assert_int_equal(vgpu_handle_free(f, VGPU_H_FUNC), 0);
}

static void test_handle_stale(void **state)
{
    (void)state;
    uint64_t old = vgpu_handle_new(VGPU_H_CTX, &rec_a);
    assert_int_equal(vgpu_handle_free(old, VGPU_H_CTX), 0);
    assert_null(vgpu_handle_get(old, VGPU_H_CTX));
    assert_int_equal(vgpu_handle_free(old, VGPU_H_CTX), -EINVAL); /* freed twice */
    uint64_t now = vgpu_handle_new(VGPU_H_CTX, &rec_b); /* the same slot, a new generation */
    assert_true(now != old);
    assert_int_equal(now & 0xffffff, old & 0xffffff);
    assert_null(vgpu_handle_get(old, VGPU_H_CTX));
    assert_ptr_equal(vgpu_handle_get(now, VGPU_H_CTX), &rec_b);
    assert_int_equal(vgpu_handle_free(now, VGPU_H_CTX), 0);
}

static void test_handle_forged(void **state)
{
    (void)state;
    uint64_t h = vgpu_handle_new(VGPU_H_LIB, &rec_c);
    uint64_t forged[] = {
        0, 1, (uint64_t)(uintptr_t)&rec_c,           /* NULL, small, a real record's address */
        h ^ (1ull << 56),                            /* wrong tag */
        h + (1ull << SLOT_BITS),                     /* a generation not yet given out */
        (h & ~0xffffffull) | (VGPU_HANDLE_SLOTS - 1), /* a slot never used */
        (h & ~0xffffffull) | 0xffffff,               /* beyond the table */
        ~0ull,
    };
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        assert_null(vgpu_handle_get(forged[i], VGPU_H_LIB));
        assert_int_equal(vgpu_handle_free(forged[i], VGPU_H_LIB), -EINVAL);
    }
    assert_ptr_equal(vgpu_handle_get(h, VGPU_H_LIB), &rec_c);
    assert_int_equal(vgpu_handle_free(h, VGPU_H_LIB), 0);
}

/* A slot gives out generations 1..7 and is then retired: no value is ever given out twice. */
static void test_handle_never_reused(void **state)
{
    (void)state;
    uint64_t seen[64];
    size_t n = 0;
    for (int i = 0; i < 40; i++) {
        uint64_t h = vgpu_handle_new(VGPU_H_FUNC, &rec_a);
        assert_true(h != 0);
        for (size_t j = 0; j < n; j++)
            assert_true(seen[j] != h);
        seen[n++] = h;
        assert_int_equal(vgpu_handle_free(h, VGPU_H_FUNC), 0);
        for (size_t j = 0; j < n; j++)
            assert_null(vgpu_handle_get(seen[j], VGPU_H_FUNC));
    }
    assert_true(tab.nslots >= 40 / 7); /* spent slots were retired, fresh ones used */
}

static void test_handle_table_full(void **state)
{
    (void)state;
    uint32_t live = tab.live, made = 0;
    while (vgpu_handle_new(VGPU_H_CTX, &rec_a) != 0)
        made++;
    assert_true(made > 0 && tab.nslots == VGPU_HANDLE_SLOTS);
    assert_int_equal(tab.live, live + made);
    assert_int_equal(vgpu_handle_new(VGPU_H_LIB, &rec_b), 0); /* refused, logged */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handle_live),         cmocka_unit_test(test_handle_wrong_type),
        cmocka_unit_test(test_handle_stale),        cmocka_unit_test(test_handle_forged),
        cmocka_unit_test(test_handle_never_reused), cmocka_unit_test(test_handle_table_full),
    };
    return cmocka_run_group_tests_name("handle", tests, NULL, NULL);
}
