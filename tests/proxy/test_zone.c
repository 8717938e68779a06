/* test_zone.c - unit tests of gpu-proxy/zone.c: typed handles with generations, the sorted
 * allocation table, sizes and names, quota charging, and session teardown (stub backend). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zone.h"

static int objs[8];

static void test_zone_handle_roundtrip(void **state)
{
    struct handle_table t;
    idm_handle h1, h2;

    (void)state;
    htab_init(&t, 77);
    assert_int_equal(htab_insert(&t, HT_STREAM, &objs[0], &h1), 0);
    assert_int_equal(htab_insert(&t, HT_EVENT, &objs[1], &h2), 0);
    assert_int_equal(h1 >> 56, HT_STREAM);
    assert_int_equal(h2 >> 56, HT_EVENT);
    assert_ptr_equal(htab_lookup(&t, h1, HT_STREAM), &objs[0]);
    assert_ptr_equal(htab_lookup(&t, h2, HT_EVENT), &objs[1]);
    /* wrong type, wrong tag, guessed values */
    assert_null(htab_lookup(&t, h1, HT_EVENT));
    assert_null(htab_lookup(&t, (h1 & ~(0xFFull << 56)) | ((uint64_t)HT_EVENT << 56), HT_EVENT));
    assert_null(htab_lookup(&t, 0, HT_STREAM));
    assert_null(htab_lookup(&t, h1 + 1, HT_STREAM));
    assert_null(htab_lookup(&t, h1 ^ (1ull << 32), HT_STREAM));
    assert_null(htab_lookup(&t, ((uint64_t)HT_STREAM << 56) | 0xFFFFFFFFu, HT_STREAM));
    assert_null(htab_lookup(&t, h1, HT_NONE));
    htab_destroy(&t);
}

static void test_zone_handle_generation(void **state)
{
    struct handle_table t;
    idm_handle h1, h2;

    (void)state;
    htab_init(&t, 5);
    assert_int_equal(htab_insert(&t, HT_CTX, &objs[0], &h1), 0);
    assert_int_equal(htab_remove(&t, h1, HT_CTX), 0);
    assert_int_equal(htab_remove(&t, h1, HT_CTX), -ENOENT);
    assert_null(htab_lookup(&t, h1, HT_CTX));
    /* The slot is reused with a new generation: the old value stays dead. */
    assert_int_equal(htab_insert(&t, HT_CTX, &objs[1], &h2), 0);
    assert_int_equal((uint32_t)h1, (uint32_t)h2);
    assert_int_not_equal(h1, h2);
    assert_null(htab_lookup(&t, h1, HT_CTX));
    assert_ptr_equal(htab_lookup(&t, h2, HT_CTX), &objs[1]);
    assert_int_equal(t.live, 1);
    htab_destroy(&t);
}

static void test_zone_handle_tables_differ(void **state)
{
    struct handle_table a, b;
    idm_handle ha, hb;

    (void)state;
    htab_init(&a, 1000);
    htab_init(&b, 2000);
    assert_int_equal(htab_insert(&a, HT_CTX, &objs[0], &ha), 0);
    assert_int_equal(htab_insert(&b, HT_CTX, &objs[1], &hb), 0);
    assert_int_not_equal(ha, hb);
    assert_null(htab_lookup(&b, ha, HT_CTX));
    assert_null(htab_lookup(&a, hb, HT_CTX));
    htab_destroy(&a);
    htab_destroy(&b);
}

static void test_zone_handle_many(void **state)
{
    struct handle_table t;
    idm_handle *hs = calloc(5000, sizeof(*hs));

    (void)state;
    assert_non_null(hs);
    htab_init(&t, 9);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(htab_insert(&t, HT_KERNEL, &objs[i % 8], &hs[i]), 0);
    for (int i = 0; i < 5000; i += 2)
        assert_int_equal(htab_remove(&t, hs[i], HT_KERNEL), 0);
    for (int i = 0; i < 5000; i++)
        assert_true((htab_lookup(&t, hs[i], HT_KERNEL) != NULL) == (i % 2 == 1));
    assert_int_equal(t.live, 2500);
    htab_destroy(&t);
    free(hs);
}

static struct alloc mk(uint64_t va, uint64_t size)
{
    struct alloc a;
    memset(&a, 0, sizeof(a));
    a.va = va;
    a.size = size;
    a.baddr = va + 0x1000000;
    a.kind = ALLOC_MEM;
    return a;
}

static void test_zone_alloc_table(void **state)
{
    struct alloc_table t;
    struct alloc a;

    (void)state;
    atab_init(&t);
    /* inserted out of order, kept sorted */
    a = mk(3000, 100);
    assert_int_equal(atab_insert(&t, &a), 0);
    a = mk(1000, 100);
    assert_int_equal(atab_insert(&t, &a), 0);
    a = mk(2000, 100);
    assert_int_equal(atab_insert(&t, &a), 0);
    assert_int_equal(t.v[0].va, 1000);
    assert_int_equal(t.v[1].va, 2000);
    assert_int_equal(t.v[2].va, 3000);
    /* overlaps refused */
    a = mk(2050, 100);
    assert_int_equal(atab_insert(&t, &a), -EEXIST);
    a = mk(1950, 51);
    assert_int_equal(atab_insert(&t, &a), -EEXIST);
    a = mk(UINT64_MAX - 10, 100);
    assert_int_equal(atab_insert(&t, &a), -EINVAL);
    /* inner pointers and boundaries */
    assert_int_equal(atab_find(&t, 2000, 100), 1);
    assert_int_equal(atab_find(&t, 2099, 1), 1);
    assert_int_equal(atab_find(&t, 2050, 50), 1);
    assert_int_equal(atab_find(&t, 2050, 51), -1);
    assert_int_equal(atab_find(&t, 2100, 1), -1);
    assert_int_equal(atab_find(&t, 999, 1), -1);
    assert_int_equal(atab_find(&t, 0, 0), -1);
    assert_int_equal(atab_find(&t, 2010, UINT64_MAX), -1);
    assert_int_equal(atab_find(&t, UINT64_MAX, 1), -1);
    assert_int_equal(atab_find_base(&t, 3000), 2);
    assert_int_equal(atab_find_base(&t, 3001), -1);
    atab_remove(&t, 1);
    assert_int_equal(atab_find(&t, 2000, 1), -1);
    assert_int_equal(atab_find(&t, 3000, 1), 1);
    atab_destroy(&t);
}

/* Mappings of a reserve: a range spans back-to-back mappings only when their backend addresses
 * are back to back too, and only mappings (not plain allocations); overlaps of any kind. */
static void test_zone_alloc_span(void **state)
{
    struct alloc_table t;
    struct alloc a;

    (void)state;
    atab_init(&t);
    for (int i = 0; i < 3; i++) {
        a = mk(1000 + 100 * (uint64_t)i, 100);
        a.kind = ALLOC_VMM_MAP;
        a.baddr = (i == 2 ? 90000 : 50000) + 100 * (uint64_t)i;
        assert_int_equal(atab_insert(&t, &a), 0);
    }
    a = mk(5000, 100);
    a.baddr = 5000;
    assert_int_equal(atab_insert(&t, &a), 0);
    a = mk(5100, 100); /* a plain allocation right after, backend addresses back to back */
    a.baddr = 5100;
    assert_int_equal(atab_insert(&t, &a), 0);
    assert_int_equal(atab_find_span(&t, 1050, 100), 0);
    assert_int_equal(atab_find_span(&t, 1000, 200), 0);
    assert_int_equal(atab_find_span(&t, 1150, 10), 1);
    assert_int_equal(atab_find_span(&t, 1150, 100), -1); /* backend gap before the third */
    assert_int_equal(atab_find_span(&t, 1250, 100), -1); /* past the end */
    assert_int_equal(atab_find_span(&t, 5050, 100), -1); /* plain allocations */
    assert_int_equal(atab_find_span(&t, 1050, UINT64_MAX), -1);
    assert_int_equal(atab_find_span(&t, 1050, 0), -1);
    assert_true(atab_overlaps(&t, 900, 101));
    assert_false(atab_overlaps(&t, 900, 100));
    assert_true(atab_overlaps(&t, 1299, 5));
    assert_false(atab_overlaps(&t, 1300, 3700));
    assert_true(atab_overlaps(&t, 1300, 3701));
    assert_false(atab_overlaps(&t, 5200, UINT64_MAX - 5200));
    atab_destroy(&t);
}

static void test_zone_sizes_and_names(void **state)
{
    uint64_t v;

    (void)state;
    assert_int_equal(parse_size("512M", &v), 0);
    assert_int_equal(v, 512ull << 20);
    assert_int_equal(parse_size("2G", &v), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(parse_size("1k", &v), 0);
    assert_int_equal(v, 1024);
    assert_int_equal(parse_size("3GiB", &v), 0);
    assert_int_equal(v, 3ull << 30);
    assert_int_equal(parse_size("", &v), -EINVAL);
    assert_int_equal(parse_size("-1", &v), -EINVAL);
    assert_int_equal(parse_size("12Q", &v), -EINVAL);
    assert_int_equal(parse_size("99999999999999T", &v), -EINVAL);
    assert_true(zone_name_valid("pod-1.a_b"));
    assert_false(zone_name_valid(""));
    assert_false(zone_name_valid("-x"));
    assert_false(zone_name_valid("../x"));
    assert_false(zone_name_valid("a/b"));
    assert_false(zone_name_valid("0123456789012345678901234567890123456789012345678901234567890123"));
}

static void test_zone_quota(void **state)
{
    struct zone_registry reg;
    struct zone *a, *b, *dup;
    uint64_t va1, va2, vb;

    (void)state;
    zreg_init(&reg, &backend_stub);
    assert_int_equal(zreg_add(&reg, "a", 1000, &a), 0);
    assert_int_equal(zreg_add(&reg, "b", 0, &b), 0);
    assert_int_equal(zreg_add(&reg, "a", 5, &dup), -EEXIST);
    assert_int_equal(zreg_add(&reg, "bad/name", 5, &dup), -EINVAL);
    assert_int_equal(zone_charge(a, 600, &va1), 0);
    assert_int_equal(zone_charge(a, 401, &va2), -ENOMEM);
    assert_int_equal(zone_charge(a, 400, &va2), 0);
    assert_int_equal(zone_charge(a, 1, &va2), -ENOMEM);
    assert_int_equal(zone_charge(b, 1ull << 30, &vb), 0); /* no quota */
    assert_int_equal(a->used, 1000);
    /* address ranges of zones differ */
    assert_true(vb < a->va_next - 2000 || vb > a->va_end);
    zone_uncharge(a, 600);
    assert_int_equal(zone_charge(a, 600, &va1), 0);
    assert_int_equal(reg.allocated_bytes, 1000 + (1ull << 30));
    assert_ptr_equal(zreg_get(&reg, "a"), a);
    zone_unref(a);
    assert_int_equal(zreg_unlink(&reg, a), 0);
    assert_null(zreg_get(&reg, "a"));
    assert_int_equal(zreg_unlink(&reg, b), 0);
    zone_unref(a);
    zone_unref(b);
}

/* A session's teardown releases every object and every byte, and scrubs. */
static void test_zone_session_release(void **state)
{
    struct zone_registry reg;
    struct zone *z;
    struct session *s;
    struct alloc a;
    uint64_t va, baddr;

    (void)state;
    zreg_init(&reg, &backend_stub);
    assert_int_equal(zreg_add(&reg, "z", 0, &z), 0);
    assert_int_equal(session_open(z, NULL, NULL, 0, 4096, "test", &s), 0);
    assert_int_equal(z->clients, 1);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(zone_charge(z, 8192, &va), 0);
        assert_int_equal(backend_stub.mem_alloc(s->bz, 8192, &baddr), 0);
        memset((void *)(uintptr_t)baddr, 0x77, 8192);
        a = mk(va, 8192);
        a.baddr = baddr;
        a.charged = 8192;
        assert_int_equal(atab_insert(&s->at, &a), 0);
    }
    assert_int_equal(z->used, 81920);
    session_close(s);
    assert_int_equal(z->clients, 0);
    assert_int_equal(z->used, 0);
    assert_int_equal(reg.scrubbed_bytes, 81920);
    assert_int_equal(reg.allocated_bytes, 0);
    assert_int_equal(zreg_unlink(&reg, z), 0);
    zone_unref(z);
    backend_stub.shutdown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zone_handle_roundtrip),
        cmocka_unit_test(test_zone_handle_generation),
        cmocka_unit_test(test_zone_handle_tables_differ),
        cmocka_unit_test(test_zone_handle_many),
        cmocka_unit_test(test_zone_alloc_table),
        cmocka_unit_test(test_zone_alloc_span),
        cmocka_unit_test(test_zone_sizes_and_names),
        cmocka_unit_test(test_zone_quota),
        cmocka_unit_test(test_zone_session_release),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
