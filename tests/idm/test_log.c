/* test_log.c - the one logger (idm_log): level names, the level filter of the macros and of
 * idm_log_msg, the line formats as they reach stderr (JSON into a file), and the token bucket of rate-limited
 * lines (its refill driven by explicit times, so no result depends on the clock). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>
#include <unistd.h>

#include "idm_log.h"

/* Runs fn with stderr redirected into buf (NUL-terminated). */
static void capture_stderr(void (*fn)(void), char *buf, size_t len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(p[1], STDERR_FILENO) >= 0);
    close(p[1]);
    fn();
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    ssize_t n = read(p[0], buf, len - 1);
    close(p[0]);
    buf[n > 0 ? n : 0] = '\0';
}

static void test_log_parse(void **state)
{
    (void)state;
    assert_int_equal(idm_log_parse_level("error"), IDM_LOG_ERROR);
    assert_int_equal(idm_log_parse_level("WARN"), IDM_LOG_WARN);
    assert_int_equal(idm_log_parse_level("warning"), IDM_LOG_WARN);
    assert_int_equal(idm_log_parse_level("info"), IDM_LOG_INFO);
    assert_int_equal(idm_log_parse_level("debug"), IDM_LOG_DEBUG);
    assert_int_equal(idm_log_parse_level("trace"), IDM_LOG_TRACE);
    assert_int_equal(idm_log_parse_level("off"), IDM_LOG_OFF);
    assert_int_equal(idm_log_parse_level("3"), IDM_LOG_DEBUG);
    assert_int_equal(idm_log_parse_level("verbose"), -EINVAL);
    assert_int_equal(idm_log_parse_level(""), -EINVAL);
    assert_int_equal(idm_log_parse_level(NULL), -EINVAL);
    assert_int_equal(idm_log_parse_level("5"), -EINVAL);
}

static void emit_some(void)
{
    IDM_ERR("e %d", 1);
    IDM_WARN("w %s", "two");
    IDM_INFO("i");
    IDM_DEBUG("d");
    IDM_LOG_AT(IDM_LOG_WARN, "vgpu", "tagged");
}

static void test_log_filter_and_format(void **state)
{
    (void)state;
    char buf[1024];
    idm_log_set_level(IDM_LOG_WARN);
    assert_int_equal(idm_log_level(), IDM_LOG_WARN);
    capture_stderr(emit_some, buf, sizeof(buf));
    assert_string_equal(buf, "idm: error: e 1\nidm: warn: w two\nvgpu: warn: tagged\n");
    idm_log_set_level(IDM_LOG_DEBUG);
    capture_stderr(emit_some, buf, sizeof(buf));
    assert_non_null(strstr(buf, "idm: info: i\nidm: debug: d\n"));
    idm_log_set_level(IDM_LOG_OFF);
    capture_stderr(emit_some, buf, sizeof(buf));
    assert_string_equal(buf, "");
    idm_log_set_level(99);
    assert_int_equal(idm_log_level(), IDM_LOG_TRACE);
}

static void emit_long(void)
{
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    idm_log_write(IDM_LOG_ERROR, "idm", "%s", big);
}

/* A line longer than the buffer is cut, still one line with its newline. */
static void test_log_truncates(void **state)
{
    (void)state;
    char buf[4096];
    capture_stderr(emit_long, buf, sizeof(buf));
    size_t n = strlen(buf);
    assert_true(n > 100 && n <= 1024);
    assert_int_equal(buf[n - 1], '\n');
    assert_ptr_equal(strchr(buf, '\n'), buf + n - 1); /* exactly one newline, at the end */
}

static void emit_formats(void)
{
    idm_log_write(IDM_LOG_ERROR, "gpu_proxy", "e");
    idm_log_write(IDM_LOG_INFO, "idm", "i");
    idm_log_write(IDM_LOG_DEBUG, NULL, "d");
}

/* Each format of the process, with a tag and without one. */
static void test_log_formats(void **state)
{
    (void)state;
    char buf[1024];
    regex_t re;

    idm_log_set_format(IDM_LOG_FMT_JOURNAL);
    capture_stderr(emit_formats, buf, sizeof(buf));
    assert_string_equal(buf, "<3>gpu_proxy: e\n<6>idm: i\n<7>d\n");
    idm_log_set_format(IDM_LOG_FMT_PLAIN);
    capture_stderr(emit_formats, buf, sizeof(buf));
    assert_string_equal(buf, "gpu_proxy: error: e\nidm: info: i\ndebug: d\n");
    idm_log_set_format(IDM_LOG_FMT_STAMPED);
    capture_stderr(emit_formats, buf, sizeof(buf));
    idm_log_set_format(IDM_LOG_FMT_PLAIN);
    assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                                  "\\.[0-9]{3}Z error gpu_proxy: e\n"
                                  "[0-9T:.Z-]{24} info  idm: i\n"
                                  "[0-9T:.Z-]{24} debug d\n$", REG_EXTENDED), 0);
    assert_int_equal(regexec(&re, buf, 0, NULL, 0), 0);
    regfree(&re);
}

static int json_fd = -1;

static void emit_json(void)
{
    idm_log_set_format(IDM_LOG_FMT_JSON);
    idm_log_set_fd(json_fd, 1);
    idm_log_write(IDM_LOG_ERROR, "rt", "bad \"x\"\n\tend");
    idm_log_write(IDM_LOG_WARN, "rt", "w");
    idm_log_set_fd(-1, 0);
    idm_log_set_format(IDM_LOG_FMT_PLAIN);
    idm_log_write(IDM_LOG_INFO, "rt", "back");
}

/* The JSON shape (runc's --log-format json) into a file, escaped; errors also on stderr in
 * the plain format; idm_log_set_fd(-1) goes back to stderr. */
static void test_log_json_to_fd(void **state)
{
    (void)state;
    char path[] = "/tmp/test_log_jsonXXXXXX", buf[1024], file[1024];
    regex_t re;

    json_fd = mkstemp(path);
    assert_true(json_fd >= 0);
    capture_stderr(emit_json, buf, sizeof(buf));
    assert_string_equal(buf, "rt: error: bad \"x\"\n\tend\nrt: info: back\n");
    ssize_t n = pread(json_fd, file, sizeof(file) - 1, 0);
    assert_true(n > 0);
    file[n] = '\0';
    close(json_fd);
    unlink(path);
    assert_int_equal(regcomp(&re, "^\\{\"level\":\"error\",\"msg\":\"bad \\\\\"x\\\\\""
                                  "\\\\u000a\\\\u0009end\",\"time\":\"[0-9T:.-]{29}Z\"\\}\n"
                                  "\\{\"level\":\"warning\",\"msg\":\"w\",\"time\":\"[^\"]+\"\\}\n$",
                             REG_EXTENDED), 0);
    assert_int_equal(regexec(&re, file, 0, NULL, 0), 0);
    regfree(&re);
}

static void emit_msg_levels(void)
{
    idm_log_msg(IDM_LOG_WARN, "t", "shown");
    idm_log_msg(IDM_LOG_INFO, "t", "hidden");
}

/* idm_log_msg (the components' log_msg) tests the level itself. */
static void test_log_msg_filters(void **state)
{
    (void)state;
    char buf[256];
    idm_log_set_level(IDM_LOG_WARN);
    capture_stderr(emit_msg_levels, buf, sizeof(buf));
    assert_string_equal(buf, "t: warn: shown\n");
}

/* A full bucket gives a burst, then one token per 1/IDM_LOG_LIMIT_RATE s, never more than the
 * burst however long it waited; time going backwards refills it (a fresh start). */
static void test_log_bucket(void **state)
{
    (void)state;
    const uint64_t t0 = 1000000000ull, tick = 1000000000ull / IDM_LOG_LIMIT_RATE;
    struct idm_log_bucket b = {0};
    int taken = 0;

    for (int i = 0; i < 3 * IDM_LOG_LIMIT_BURST; i++)
        taken += idm_log_bucket_take(&b, t0);
    assert_int_equal(taken, IDM_LOG_LIMIT_BURST);
    assert_int_equal(idm_log_bucket_take(&b, t0 + tick - 1), 0);
    assert_int_equal(idm_log_bucket_take(&b, t0 + tick), 1);
    assert_int_equal(idm_log_bucket_take(&b, t0 + tick), 0);
    assert_int_equal(idm_log_bucket_take(&b, t0 + 3 * tick), 1);
    assert_int_equal(idm_log_bucket_take(&b, t0 + 3 * tick), 1);
    assert_int_equal(idm_log_bucket_take(&b, t0 + 3 * tick), 0);
    taken = 0;
    for (int i = 0; i < 3 * IDM_LOG_LIMIT_BURST; i++)
        taken += idm_log_bucket_take(&b, t0 + 3600 * 1000000000ull);
    assert_int_equal(taken, IDM_LOG_LIMIT_BURST);
    assert_int_equal(idm_log_bucket_take(&b, t0), 1);
}

static struct idm_log_bucket flood_bucket;

static void emit_flood(void)
{
    for (int i = 0; i < IDM_LOG_LIMIT_BURST + 30; i++)
        idm_log_limited(&flood_bucket, IDM_LOG_WARN, "gpu_proxy", "refused %d", i);
    idm_log_limited(&flood_bucket, IDM_LOG_INFO, "gpu_proxy", "below the level: not counted");
    flood_bucket.tokens = 0;
    flood_bucket.refill_ns -= 10ull * 1000000000ull; /* as if ten seconds had passed */
    idm_log_limited(&flood_bucket, IDM_LOG_WARN, "gpu_proxy", "after the pause");
}

/* A flood through one bucket writes at most a burst of lines; the first line after a pause says
 * how many were dropped, and every one of the flood is either written or counted. */
static void test_log_limited(void **state)
{
    (void)state;
    char buf[8192];
    int lines = 0, dropped = -1;

    idm_log_set_level(IDM_LOG_WARN);
    capture_stderr(emit_flood, buf, sizeof(buf));
    for (char *l = buf; (l = strchr(l, '\n')) != NULL; l++)
        lines++;
    const char *last = strstr(buf, "gpu_proxy: warn: after the pause (");
    assert_non_null(last);
    assert_int_equal(sscanf(last, "gpu_proxy: warn: after the pause (%d similar lines dropped)",
                            &dropped), 1);
    assert_true(lines - 1 >= IDM_LOG_LIMIT_BURST && lines - 1 < IDM_LOG_LIMIT_BURST + 30);
    assert_int_equal(lines - 1 + dropped, IDM_LOG_LIMIT_BURST + 30);
    assert_non_null(strstr(buf, "gpu_proxy: warn: refused 0\n"));
    assert_null(strstr(buf, "below the level"));
    assert_int_equal(flood_bucket.dropped, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_parse),
        cmocka_unit_test(test_log_filter_and_format),
        cmocka_unit_test(test_log_truncates),
        cmocka_unit_test(test_log_formats),
        cmocka_unit_test(test_log_json_to_fd),
        cmocka_unit_test(test_log_msg_filters),
        cmocka_unit_test(test_log_bucket),
        cmocka_unit_test(test_log_limited),
    };
    return cmocka_run_group_tests_name("idm_log", tests, NULL, NULL);
}
