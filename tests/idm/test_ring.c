/* test_ring.c - the SPSC ring of idm_ring.h on its own, over ordinary memory: empty and full,
 * wrap-around of the free-running 32-bit indices, impossible peer indices, and the
 * notification hold-off flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "idm_ring.h"

struct pair {
    struct idm_ring_shared sh;
    uint8_t slots[8 * 64];
    struct idm_ring prod, cons;
};

static struct pair *make_pair(uint32_t nslots, uint32_t start)
{
    struct pair *p = aligned_alloc(64, sizeof(struct pair));
    assert_non_null(p);
    memset(p, 0, sizeof(*p));
    idm_ring_init(&p->prod, &p->sh, p->slots, nslots, 64, start, 1);
    idm_ring_init(&p->cons, &p->sh, p->slots, nslots, 64, start, 0);
    return p;
}

static void push(struct pair *p, uint64_t v)
{
    assert_true(idm_ring_prod_space(&p->prod) > 0);
    memcpy(idm_ring_prod_slot(&p->prod), &v, sizeof(v));
    idm_ring_prod_publish(&p->prod);
}

static uint64_t pop(struct pair *p)
{
    assert_true(idm_ring_cons_avail(&p->cons) > 0);
    uint64_t v;
    memcpy(&v, idm_ring_cons_slot(&p->cons), sizeof(v));
    idm_ring_cons_release(&p->cons);
    return v;
}

static void test_ring_empty_and_full(void **state)
{
    (void)state;
    struct pair *p = make_pair(8, 0);
    assert_int_equal(idm_ring_cons_avail(&p->cons), 0);
    assert_int_equal(idm_ring_prod_space(&p->prod), 8);
    for (uint64_t i = 0; i < 8; i++) {
        push(p, i);
        assert_int_equal(idm_ring_prod_space(&p->prod), 7 - (int64_t)i);
    }
    assert_int_equal(idm_ring_prod_space(&p->prod), 0);
    assert_int_equal(idm_ring_cons_avail(&p->cons), 8);
    assert_int_equal(pop(p), 0);
    assert_int_equal(idm_ring_prod_space(&p->prod), 1);
    push(p, 8);
    for (uint64_t i = 1; i <= 8; i++)
        assert_int_equal(pop(p), i);
    assert_int_equal(idm_ring_cons_avail(&p->cons), 0);
    assert_int_equal(idm_ring_prod_space(&p->prod), 8);
    free(p);
}

/* Indices start 5 below UINT32_MAX and run far past the wrap; order and contents survive. */
static void test_ring_wraparound(void **state)
{
    (void)state;
    struct pair *p = make_pair(4, UINT32_MAX - 5);
    uint64_t next_in = 0, next_out = 0;
    for (int round = 0; round < 1000; round++) {
        int n = 1 + round % 4;
        for (int i = 0; i < n; i++)
            push(p, next_in++);
        assert_int_equal(idm_ring_cons_avail(&p->cons), n);
        for (int i = 0; i < n; i++)
            assert_int_equal(pop(p), next_out++);
    }
    assert_true(p->prod.idx < 10000); /* wrapped */
    assert_int_equal(atomic_load(&p->sh.prod), p->prod.idx);
    assert_int_equal(atomic_load(&p->sh.cons), p->cons.idx);
    /* Full exactly at the wrap. */
    free(p);
    p = make_pair(4, UINT32_MAX - 1);
    for (uint64_t i = 0; i < 4; i++)
        push(p, i);
    assert_int_equal(idm_ring_prod_space(&p->prod), 0);
    assert_int_equal(idm_ring_cons_avail(&p->cons), 4);
    for (uint64_t i = 0; i < 4; i++)
        assert_int_equal(pop(p), i);
    free(p);
}

/* Slot addresses come from the private mask, whatever the index. */
static void test_ring_slot_bounds(void **state)
{
    (void)state;
    struct pair *p = make_pair(8, 0);
    for (uint64_t i = 0; i < 100000; i += 7919) {
        uint8_t *s = idm_ring_slot(&p->prod, (uint32_t)(i * 2654435761u));
        assert_true(s >= p->slots && s + 64 <= p->slots + 8 * 64);
    }
    free(p);
}

static void test_ring_bad_prod(void **state)
{
    (void)state;
    struct pair *p = make_pair(8, 100);
    atomic_store(&p->sh.prod, 100 + 9); /* more than a ring ahead */
    assert_int_equal(idm_ring_cons_avail(&p->cons), -EPROTO);
    atomic_store(&p->sh.prod, 99); /* behind the consumer */
    assert_int_equal(idm_ring_cons_avail(&p->cons), -EPROTO);
    atomic_store(&p->sh.prod, 100 + 8); /* exactly full is fine */
    assert_int_equal(idm_ring_cons_avail(&p->cons), 8);
    free(p);
}

static void test_ring_bad_cons(void **state)
{
    (void)state;
    struct pair *p = make_pair(8, 0);
    for (uint64_t i = 0; i < 8; i++)
        push(p, i);
    atomic_store(&p->sh.cons, 9); /* ahead of the producer */
    assert_int_equal(idm_ring_prod_space(&p->prod), -EPROTO);
    atomic_store(&p->sh.cons, UINT32_MAX); /* more than a ring behind */
    assert_int_equal(idm_ring_prod_space(&p->prod), -EPROTO);
    atomic_store(&p->sh.cons, 3);
    assert_int_equal(idm_ring_prod_space(&p->prod), 3);
    free(p);
}

/* The producer reads its own index from private memory: rewriting the shared copy does not move
 * it. */
static void test_ring_own_index_private(void **state)
{
    (void)state;
    struct pair *p = make_pair(8, 0);
    push(p, 1);
    atomic_store(&p->sh.prod, 12345);
    assert_int_equal(p->prod.idx, 1);
    push(p, 2);
    assert_int_equal(atomic_load(&p->sh.prod), 2);
    assert_int_equal(pop(p), 1);
    assert_int_equal(pop(p), 2);
    free(p);
}

static void test_ring_kick_holdoff(void **state)
{
    (void)state;
    struct pair *p = make_pair(8, 0);
    assert_int_equal(idm_ring_should_kick(&p->sh.cons_sleeping), 0);
    idm_ring_arm(&p->sh.cons_sleeping);
    assert_int_equal(idm_ring_should_kick(&p->sh.cons_sleeping), 1);
    assert_int_equal(idm_ring_should_kick(&p->sh.cons_sleeping), 0); /* cleared by the kick */
    idm_ring_arm(&p->sh.prod_sleeping);
    idm_ring_disarm(&p->sh.prod_sleeping);
    assert_int_equal(idm_ring_should_kick(&p->sh.prod_sleeping), 0);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_empty_and_full),
        cmocka_unit_test(test_ring_wraparound),
        cmocka_unit_test(test_ring_slot_bounds),
        cmocka_unit_test(test_ring_bad_prod),
        cmocka_unit_test(test_ring_bad_cons),
        cmocka_unit_test(test_ring_own_index_private),
        cmocka_unit_test(test_ring_kick_holdoff),
    };
    return cmocka_run_group_tests_name("idm_ring", tests, NULL, NULL);
}
