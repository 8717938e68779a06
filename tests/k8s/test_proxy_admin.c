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

/* LIST's optional key=value fields: read when well-formed, ignored otherwise. */
static void test_proxy_admin_zone_keys(void **state)
{
    (void)state;
    struct admin_zone z;
    admin_parse_zone_keys("k8s-a 1024 0 2 state=ready pid=41 restarts=3 faults=1 cgroup=v1", &z);
    assert_string_equal(z.state, "ready");
    assert_int_equal(z.restarts, 3);
    admin_parse_zone_keys("k8s-a 1024 0 2", &z); /* an older proxy: the four fields only */
    assert_string_equal(z.state, "");
    assert_int_equal(z.restarts, 0);
    admin_parse_zone_keys("k8s-a 1024 0 2 future=x restarts=7 state=restarting", &z);
    assert_string_equal(z.state, "restarting");
    assert_int_equal(z.restarts, 7);
    /* A name or field that looks like a key does not count; bad values are ignored. */
    admin_parse_zone_keys("state=down 1 2 3 state=ReAdY restarts=-1 restarts=1x", &z);
    assert_string_equal(z.state, "");
    assert_int_equal(z.restarts, 0);
    admin_parse_zone_keys("a 1 2 3 state=averyveryverylongstate restarts=99999999999999", &z);
    assert_string_equal(z.state, "");
    assert_int_equal(z.restarts, UINT32_MAX);
    admin_parse_zone_keys("a 1 2 3\tstate=down\t\n", &z);
    assert_string_equal(z.state, "down");
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
        cmocka_unit_test(test_proxy_admin_zone_keys),
        cmocka_unit_test(test_proxy_admin_unreachable),
    };
    return cmocka_run_group_tests_name("k8s proxy_admin", tests, NULL, NULL);
}
