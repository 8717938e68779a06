/* test_md2.c - MD2 against the test suite of RFC 1319 (appendix A.5) and HMAC-MD2 against
 * values computed by an independent implementation (Python, itself checked against RFC 1319). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "md2.h"

static void hex(const uint8_t d[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void check_md2(const char *msg, const char *want)
{
    uint8_t d[16];
    char h[33];
    md2(msg, strlen(msg), d);
    hex(d, h);
    assert_string_equal(h, want);
}

static void test_md2_rfc1319_suite(void **state)
{
    (void)state;
    check_md2("", "8350e5a3e24c153df2275c9f80692773");
    check_md2("a", "32ec01ec4a6dac72c0ab96fb34c0b5d1");
    check_md2("abc", "da853b0d3f88d99b30283a69e6ded6bb");
    check_md2("message digest", "ab4f496bfb2a530b219ff33031fe06b0");
    check_md2("abcdefghijklmnopqrstuvwxyz", "4e8ddff3650292ab5a4108c3aa47940b");
    check_md2("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
              "da33def2a42df13975352846c30338cd");
    check_md2("1234567890123456789012345678901234567890123456789012345678901234567890123456"
              "7890", "d5976f79d83d3a0dc9806c3c66f3efd8");
}

/* Feeding the message in odd pieces gives the same digest as one update. */
static void test_md2_incremental(void **state)
{
    (void)state;
    const char *msg = "1234567890123456789012345678901234567890123456789012345678901234567890"
                      "1234567890";
    struct md2_ctx c;
    uint8_t d[16];
    char h[33];
    md2_init(&c);
    size_t len = strlen(msg);
    for (size_t off = 0, step = 1; off < len; off += step, step = step % 7 + 1)
        md2_update(&c, msg + off, off + step > len ? len - off : step);
    md2_final(&c, d);
    hex(d, h);
    assert_string_equal(h, "d5976f79d83d3a0dc9806c3c66f3efd8");
}

static void check_hmac(const void *key, size_t klen, const char *msg, const char *want)
{
    uint8_t d[16];
    char h[33];
    hmac_md2(key, klen, msg, strlen(msg), d);
    hex(d, h);
    assert_string_equal(h, want);
}

static void test_md2_hmac(void **state)
{
    (void)state;
    static const uint8_t k[16] = {0x14, 0x6A, 0xDD, 0xAE, 0x53, 0xA9, 0xA7, 0x52,
                                  0xAA, 0x08, 0x41, 0x36, 0x0B, 0xF5, 0x5A, 0x9F};
    uint8_t k20[20];
    memset(k20, 0x0b, sizeof k20);
    check_hmac(k, sizeof k, "what do ya want for nothing?", "615cf17da5c1fc3bd1197d34d6fa231c");
    check_hmac(k20, sizeof k20, "Hi There", "dc1923ef5f161d35bef839ca8c807808"); /* key > block */
    check_hmac("Jefe", 4, "", "e6b87185f45ad59d0901564e92e71b67");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_md2_rfc1319_suite),
        cmocka_unit_test(test_md2_incremental),
        cmocka_unit_test(test_md2_hmac),
    };
    return cmocka_run_group_tests_name("md2", tests, NULL, NULL);
}
