/* test_proxy_admin.c - unit tests of k8s/proxy_admin.c's parsing (sizes, key=value tokens) and
 * of its error reporting when gpu_proxy is not there. The exchanges with a real gpu_proxy_stub
 * are covered by the integration test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy_admin.h"

#include <errno.h>
#include <string.h>

static void test_proxy_admin_parse_size(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(parse_size("4096", &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(parse_size("1G", &v), 0);
    assert_int_equal(v, 1ull << 30);
    assert_int_equal(parse_size("64Mi", &v), 0);
    assert_int_equal(v, 64ull << 20);
    assert_int_equal(parse_size("2GiB", &v), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(parse_size("3t", &v), 0);
    assert_int_equal(v, 3ull << 40);
    assert_int_equal(parse_size("", &v), -EINVAL);
    assert_int_equal(parse_size("-1", &v), -EINVAL);
    assert_int_equal(parse_size("1X", &v), -EINVAL);
    assert_int_equal(parse_size("1G ", &v), -EINVAL);
    assert_int_equal(parse_size("99999999999T", &v), -EINVAL);     /* overflows 64 bits */
    assert_int_equal(parse_size("99999999999999999999999", &v), -EINVAL);
}

static void test_proxy_admin_find_size_token(void **state)
{
    (void)state;
    const char *ping = "OK gpu_proxy 0.1 backend=stub total_bytes=8589934592\n";
    assert_int_equal(find_size_token(ping, "total_bytes"), 8589934592ull);
    assert_int_equal(find_size_token("OK zones=2 total=16G", "total"), 16ull << 30);
    assert_int_equal(find_size_token("OK gpu_proxy 0.1 backend=stub", "total_bytes"), 0);
    assert_int_equal(find_size_token("OK total_bytes=abc", "total_bytes"), 0);
    /* A longer key with the same prefix is not a match. */
    assert_int_equal(find_size_token("OK total_bytes_free=5", "total_bytes"), 0);
}

static void test_proxy_admin_unreachable(void **state)
{
    (void)state;
    char err[256] = "", info[64];
    int rc = admin_ping("/nonexistent-dir/admin.sock", info, sizeof(info), err, sizeof(err));
    assert_int_equal(rc, -ENOENT);
    assert_non_null(strstr(err, "/nonexistent-dir/admin.sock"));
    char sock[64];
    rc = admin_add("/nonexistent-dir/admin.sock", "z", 1, sock, sizeof(sock), err, sizeof(err));
    assert_int_equal(rc, -ENOENT);
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(admin_remove(longpath, "z", err, sizeof(err)), -ENAMETOOLONG);
    assert_int_equal(admin_total_memory("/nonexistent-dir/admin.sock"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_admin_parse_size),
        cmocka_unit_test(test_proxy_admin_find_size_token),
        cmocka_unit_test(test_proxy_admin_unreachable),
    };
    return cmocka_run_group_tests_name("k8s proxy_admin", tests, NULL, NULL);
}
