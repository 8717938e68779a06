/* test_image.c - the extent of code images: fatbin wrapper -> fatbin (16-byte header + payload),
 * a bare fatbin, 64- and 32-bit ELF (last section or header table), PTX text (strlen + 1), and
 * the refusals (a wrapper that leads nowhere, an implausible fatbin). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vgpu.h"

static void put(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t fatbin[16 + 200];

static void make_fatbin(void)
{
    memset(fatbin, 0xab, sizeof fatbin);
    put(fatbin, 0xBA55ED50u, 4);
    put(fatbin + 4, 1, 2);
    put(fatbin + 6, 16, 2);
    put(fatbin + 8, 200, 8);
}

static void test_image_fatbin(void **state)
{
    (void)state;
    make_fatbin();
    const void *start;
    size_t size;
    assert_int_equal(vgpu_image_extent(fatbin, &start, &size), 0);
    assert_ptr_equal(start, fatbin);
    assert_int_equal(size, 216);
}

static void test_image_wrapper(void **state)
{
    (void)state;
    make_fatbin();
    struct { int magic; int version; const void *data; void *filename; } w = {
        0x466243B1, 1, fatbin, NULL};
    const void *start;
    size_t size;
    assert_int_equal(vgpu_image_extent(&w, &start, &size), 0);
    assert_ptr_equal(start, fatbin); /* the fatbin travels, not the wrapper */
    assert_int_equal(size, 216);
    w.data = "not a fatbin";
    assert_int_equal(vgpu_image_extent(&w, &start, &size), -EINVAL);
}

static void test_image_bad_fatbin(void **state)
{
    (void)state;
    make_fatbin();
    put(fatbin + 6, 8, 2); /* header smaller than itself */
    const void *start;
    size_t size;
    assert_int_equal(vgpu_image_extent(fatbin, &start, &size), -EINVAL);
    make_fatbin();
    put(fatbin + 8, 1ull << 40, 8); /* 1 TiB payload */
    assert_int_equal(vgpu_image_extent(fatbin, &start, &size), -EINVAL);
}

static void test_image_elf64(void **state)
{
    (void)state;
    static uint8_t elf[4096];
    memset(elf, 0, sizeof elf);
    memcpy(elf, "\x7f" "ELF", 4);
    elf[4] = 2;
    put(elf + 0x20, 64, 8);     /* e_phoff */
    put(elf + 0x28, 1000, 8);   /* e_shoff */
    put(elf + 0x36, 56, 2);     /* e_phentsize */
    put(elf + 0x38, 2, 2);      /* e_phnum */
    put(elf + 0x3A, 64, 2);     /* e_shentsize */
    put(elf + 0x3C, 3, 2);      /* e_shnum: headers end at 1192 */
    uint8_t *sh = elf + 1000 + 64; /* section 1: PROGBITS at 300, 200 bytes */
    put(sh + 4, 1, 4);
    put(sh + 0x18, 300, 8);
    put(sh + 0x20, 200, 8);
    const void *start;
    size_t size;
    assert_int_equal(vgpu_image_extent(elf, &start, &size), 0);
    assert_int_equal(size, 1192);
    sh = elf + 1000 + 128; /* section 2: PROGBITS beyond the headers, ends at 3000 */
    put(sh + 4, 1, 4);
    put(sh + 0x18, 2000, 8);
    put(sh + 0x20, 1000, 8);
    assert_int_equal(vgpu_image_extent(elf, &start, &size), 0);
    assert_int_equal(size, 3000);
    put(sh + 4, 8, 4); /* NOBITS occupies no file bytes */
    assert_int_equal(vgpu_image_extent(elf, &start, &size), 0);
    assert_int_equal(size, 1192);
}

static void test_image_elf32(void **state)
{
    (void)state;
    static uint8_t elf[512];
    memset(elf, 0, sizeof elf);
    memcpy(elf, "\x7f" "ELF", 4);
    elf[4] = 1;
    put(elf + 0x20, 100, 4);    /* e_shoff */
    put(elf + 0x2E, 40, 2);     /* e_shentsize */
    put(elf + 0x30, 2, 2);      /* e_shnum */
    const void *start;
    size_t size;
    assert_int_equal(vgpu_image_extent(elf, &start, &size), 0);
    assert_int_equal(size, 180);
}

static void test_image_ptx(void **state)
{
    (void)state;
    const char *ptx = ".version 8.1\n.target sm_75\n.address_size 64\n";
    const void *start;
    size_t size;
    assert_int_equal(vgpu_image_extent(ptx, &start, &size), 0);
    assert_ptr_equal(start, ptx);
    assert_int_equal(size, strlen(ptx) + 1);
    assert_int_equal(vgpu_image_extent("", &start, &size), -EINVAL);
    assert_int_equal(vgpu_image_extent(NULL, &start, &size), -EINVAL);
}

/* Regression (found by ASan): a text image shorter than 4 bytes was read past its end while
 * its magic number was checked. */
static void test_image_regression_short_text(void **state)
{
    (void)state;
    static const char ab[3] = "ab";
    const void *start;
    size_t size;
    assert_int_equal(vgpu_image_extent(ab, &start, &size), 0);
    assert_int_equal(size, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_fatbin),     cmocka_unit_test(test_image_wrapper),
        cmocka_unit_test(test_image_bad_fatbin), cmocka_unit_test(test_image_elf64),
        cmocka_unit_test(test_image_elf32),      cmocka_unit_test(test_image_ptx),
        cmocka_unit_test(test_image_regression_short_text),
    };
    return cmocka_run_group_tests_name("image", tests, NULL, NULL);
}
