/* test_spec.c - unit tests of zone-runtime/spec.c: a full config.json, each field's checks,
 * the VGPU_ZONE variable, limits, and malformed input (never a crash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "spec.h"

static const char *full =
    "{\"ociVersion\":\"1.0.2\",\"hostname\":\"zone-a\","
    "\"process\":{\"terminal\":false,\"user\":{\"uid\":1000,\"gid\":100,"
    "\"additionalGids\":[5,6]},\"args\":[\"/bin/cuda_zone\",\"za\"],"
    "\"env\":[\"PATH=/bin\",\"VGPU_ZONE=za\"],\"cwd\":\"/work\","
    "\"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"hard\":1024,\"soft\":512}]},"
    "\"root\":{\"path\":\"rootfs\",\"readonly\":true},"
    "\"linux\":{\"resources\":{\"memory\":{\"limit\":268435456},"
    "\"cpu\":{\"quota\":150000,\"period\":100000}}}}";

static int parse(const char *text, struct zspec *s, char *err)
{
    return zspec_parse(text, strlen(text), "/b", s, err, 256);
}

static void test_spec_full(void **state)
{
    struct zspec s;
    char err[256];
    (void)state;
    assert_int_equal(parse(full, &s, err), 0);
    assert_int_equal(s.nargs, 2);
    assert_string_equal(s.args[0], "/bin/cuda_zone");
    assert_null(s.args[2]);
    assert_int_equal(s.nenv, 2);
    assert_string_equal(s.cwd, "/work");
    assert_int_equal(s.uid, 1000);
    assert_int_equal(s.gid, 100);
    assert_int_equal(s.ngids, 2);
    assert_int_equal(s.gids[1], 6);
    assert_int_equal(s.nrlimits, 1);
    assert_int_equal(s.rlimits[0].resource, RLIMIT_NOFILE);
    assert_int_equal(s.rlimits[0].soft, 512);
    assert_string_equal(s.hostname, "zone-a");
    assert_string_equal(s.root, "/b/rootfs");
    assert_true(s.root_readonly);
    assert_int_equal(s.memory_limit, 268435456);
    assert_int_equal(s.vcpus, 2);
    assert_string_equal(s.zone, "za");
    zspec_free(&s);
}

static void test_spec_minimal_has_no_zone(void **state)
{
    struct zspec s;
    char err[256];
    (void)state;
    assert_int_equal(parse("{\"ociVersion\":\"1.0.0\",\"process\":{\"args\":[\"sh\"],"
                           "\"cwd\":\"/\"},\"root\":{\"path\":\"/abs\"}}", &s, err), 0);
    assert_string_equal(s.zone, "");
    assert_int_equal(s.nenv, 0);
    assert_non_null(s.env);
    assert_string_equal(s.root, "/abs");
    assert_int_equal(s.memory_limit, 0);
    assert_int_equal(s.vcpus, 0);
    zspec_free(&s);
}

/* Each document is refused and the message names the field. */
static void test_spec_refusals(void **state)
{
    static const struct { const char *doc, *field; } cases[] = {
        {"[]", "object"},
        {"{\"process\":{}}", "ociVersion"},
        {"{\"ociVersion\":\"2.0\"}", "ociVersion"},
        {"{\"ociVersion\":\"1.0\"}", "process"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[],\"cwd\":\"/\"}}", "args"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[1],\"cwd\":\"/\"}}", "args[0]"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[\"a\\u0000b\"],\"cwd\":\"/\"}}",
         "u0000"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[\"a\"],\"cwd\":\"rel\"}}", "cwd"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\","
         "\"user\":{\"uid\":-1}}}", "uid"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\","
         "\"env\":[\"VGPU_ZONE=../x\"]}}", "VGPU_ZONE"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\","
         "\"rlimits\":[{\"type\":\"RLIMIT_NOPE\",\"soft\":1,\"hard\":1}]}}", "rlimits[0]"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\","
         "\"rlimits\":[{\"type\":\"RLIMIT_CORE\",\"soft\":2,\"hard\":1}]}}", "soft above hard"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"}}", "root.path"},
        {"{\"ociVersion\":\"1.0\",\"process\":{\"args\":[\"a\"],\"cwd\":\"/\"},"
         "\"root\":{\"path\":\"r\"},\"linux\":{\"resources\":{\"memory\":{\"limit\":\"x\"}}}}",
         "memory.limit"},
        {"{\"ociVersion\":\"1.0\",\"ociVersion\":\"1.0\"}", "duplicate"},
        {"{\"ociVersion\":\"1.0\",", "line 1"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct zspec s;
        char err[256] = "";
        assert_true(parse(cases[i].doc, &s, err) < 0);
        if (!strstr(err, cases[i].field))
            fail_msg("case %zu: \"%s\" does not name %s", i, err, cases[i].field);
    }
}

/* Every prefix of a valid document, and byte flips of it: refused or parsed, never a crash
 * (run under ASan by `make test SANITIZE=address,undefined`). */
static void test_spec_truncations_and_flips(void **state)
{
    size_t len = strlen(full);
    char *buf = malloc(len + 1);
    (void)state;
    for (size_t cut = 0; cut < len; cut++) {
        struct zspec s;
        char err[256];
        if (zspec_parse(full, cut, "/b", &s, err, sizeof(err)) == 0)
            zspec_free(&s);
    }
    srand(7);
    for (int i = 0; i < 4000; i++) {
        struct zspec s;
        char err[256];
        memcpy(buf, full, len + 1);
        buf[rand() % len] = (char)(rand() & 0xff);
        if (zspec_parse(buf, len, "/b", &s, err, sizeof(err)) == 0)
            zspec_free(&s);
    }
    free(buf);
}

static void test_spec_names(void **state)
{
    (void)state;
    assert_true(zspec_valid_name("za"));
    assert_true(zspec_valid_name("k8s-s0-n4"));
    assert_false(zspec_valid_name(""));
    assert_false(zspec_valid_name("-x"));
    assert_false(zspec_valid_name("a b"));
    assert_false(zspec_valid_name("a/b"));
    assert_false(zspec_valid_name("0123456789012345678901234567890123456789012345678901234567890123"));
    assert_int_equal(zspec_rlimit_by_name("RLIMIT_STACK"), RLIMIT_STACK);
    assert_int_equal(zspec_rlimit_by_name("STACK"), -1);
}

static void test_spec_sandbox_annotations(void **state)
{
    static const char *const docs[] = {
        "{\"ociVersion\":\"1.0\",\"annotations\":{\"io.kubernetes.cri.container-type\":"
        "\"sandbox\"},\"process\":{\"args\":[\"/pause\"],\"cwd\":\"/\"},\"root\":{\"path\":\"r\"}}",
        "{\"ociVersion\":\"1.0\",\"annotations\":{\"io.kubernetes.cri-o.ContainerType\":"
        "\"sandbox\"},\"process\":{\"args\":[\"/pause\"],\"cwd\":\"/\"},\"root\":{\"path\":\"r\"}}",
        "{\"ociVersion\":\"1.0\",\"annotations\":{\"io.kubernetes.cri.container-type\":"
        "\"container\"},\"process\":{\"args\":[\"/app\"],\"cwd\":\"/\"},\"root\":{\"path\":\"r\"}}",
    };
    struct zspec s;
    char err[256];
    (void)state;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(parse(docs[i], &s, err), 0);
        assert_int_equal(s.sandbox, i < 2);
        zspec_free(&s);
    }
    assert_true(parse("{\"ociVersion\":\"1.0\",\"annotations\":[]}", &s, err) < 0);
    assert_non_null(strstr(err, "annotations"));
}

static void test_spec_load_missing_file(void **state)
{
    struct zspec s;
    char err[256];
    (void)state;
    assert_true(zspec_load("/nonexistent-bundle", NULL, &s, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "/nonexistent-bundle/config.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_full),
        cmocka_unit_test(test_spec_minimal_has_no_zone),
        cmocka_unit_test(test_spec_refusals),
        cmocka_unit_test(test_spec_truncations_and_flips),
        cmocka_unit_test(test_spec_names),
        cmocka_unit_test(test_spec_sandbox_annotations),
        cmocka_unit_test(test_spec_load_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
