/* test_image.c - the extent of code images: fatbin wrapper -> fatbin (16-byte header + payload),
 * a bare fatbin, 64- and 32-bit ELF (last section or header table), PTX text (strlen + 1), and
 * the refusals (a wrapper that leads nowhere, an implausible fatbin), and malformed images placed
 * at the end of readable memory (a guard page after them), which must be refused, not crash. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sys/mman.h>

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

/* n bytes that end where readable memory ends: the page after them is PROT_NONE. */
static uint8_t *guarded(size_t n)
{
    static uint8_t *pages;
    if (pages == NULL) {
        pages = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(pages != MAP_FAILED);
        assert_int_equal(mprotect(pages + 2 * 4096, 4096, PROT_NONE), 0);
    }
    assert_true(n <= 2 * 4096);
    memset(pages, 0, 2 * 4096);
    return pages + 2 * 4096 - n;
}

static void assert_refused(const void *image)
{
    const void *start;
    size_t size;
    assert_int_equal(vgpu_image_extent(image, &start, &size), -EINVAL);
}

/* Regression (issue 16): a truncated or garbled ELF image crashed the tenant's process inside
 * libcuda.so.1 (cuModuleLoadData), its header tables and sections read wherever they pointed. */
static void test_image_regression_truncated_elf(void **state)
{
    (void)state;
    uint8_t *p = guarded(5); /* cut inside the ELF header */
    memcpy(p, "\x7f" "ELF\x02", 5);
    assert_refused(p);
    p = guarded(64); /* a whole header, its section headers beyond the end */
    memcpy(p, "\x7f" "ELF", 4);
    p[4] = 2;
    put(p + 0x28, 64, 8);   /* e_shoff */
    put(p + 0x3A, 64, 2);   /* e_shentsize */
    put(p + 0x3C, 40, 2);   /* e_shnum */
    assert_refused(p);
    p = guarded(128); /* one section header inside, its contents far beyond the end */
    memcpy(p, "\x7f" "ELF", 4);
    p[4] = 2;
    put(p + 0x28, 64, 8);
    put(p + 0x3A, 64, 2);
    put(p + 0x3C, 1, 2);
    put(p + 64 + 4, 1, 4);          /* PROGBITS */
    put(p + 64 + 0x18, 1 << 20, 8); /* at 1 MiB */
    put(p + 64 + 0x20, 16, 8);
    assert_refused(p);
    p = guarded(52); /* 32-bit: section headers at a garbled offset */
    memcpy(p, "\x7f" "ELF", 4);
    p[4] = 1;
    put(p + 0x20, 0x7ffffff0, 4);
    put(p + 0x2E, 40, 2);
    put(p + 0x30, 3, 2);
    assert_refused(p);
}

/* The same for fatbins and wrappers: a payload longer than the memory, a wrapper whose fatbin
 * pointer leads to unreadable memory, and text that is not NUL-terminated before it ends. */
static void test_image_regression_truncated_fatbin_and_text(void **state)
{
    (void)state;
    uint8_t *p = guarded(64);
    put(p, 0xBA55ED50u, 4);
    put(p + 6, 16, 2);
    put(p + 8, 4096, 8); /* 4 KiB payload, 48 bytes present */
    assert_refused(p);
    p = guarded(16);
    put(p, 0x466243B1u, 4);
    const void *nowhere = p + 16; /* the guard page */
    memcpy(p + 8, &nowhere, sizeof nowhere);
    assert_refused(p);
    p = guarded(6); /* a fatbin header cut short */
    put(p, 0xBA55ED50u, 4);
    assert_refused(p);
    p = guarded(100);
    memset(p, 'x', 100); /* text without its NUL */
    assert_refused(p);
    p = guarded(3);
    memcpy(p, "ab", 3); /* a short text that ends at the end of memory is still fine */
    const void *start;
    size_t size;
    assert_int_equal(vgpu_image_extent(p, &start, &size), 0);
    assert_int_equal(size, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_fatbin),     cmocka_unit_test(test_image_wrapper),
        cmocka_unit_test(test_image_bad_fatbin), cmocka_unit_test(test_image_elf64),
        cmocka_unit_test(test_image_elf32),      cmocka_unit_test(test_image_ptx),
        cmocka_unit_test(test_image_regression_short_text),
        cmocka_unit_test(test_image_regression_truncated_elf),
        cmocka_unit_test(test_image_regression_truncated_fatbin_and_text),
    };
    return cmocka_run_group_tests_name("image", tests, NULL, NULL);
}
