/* test_log.c - the levelled logger: level names, the level filter of the macros, and the
 * format of a line as it reaches stderr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_parse),
        cmocka_unit_test(test_log_filter_and_format),
        cmocka_unit_test(test_log_truncates),
    };
    return cmocka_run_group_tests_name("idm_log", tests, NULL, NULL);
}
