/* test_admin.c - gpu_proxy's admin socket against a real gpu_proxy_stub: a client that sends
 * half a line and stalls does not hold up another client's PING, an over-long line gets a
 * clear error, connections past the limit are told the proxy is busy, a stalled client is
 * dropped after the idle timeout, and binding a zone to a Xen domain is refused with the reason
 * where it cannot be done (the Xen suite binds one for real). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proxy_client.h"
#include "sup_internal.h"

static char proxy_bin[512];
static char dir[64];
static pid_t proxy_pid = -1;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int group_setup(void **state)
{
    const char *extra[] = {"--zone", "A:64M", NULL};

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/gpu-proxy-admin.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    proxy_pid = proxy_start(proxy_bin, dir, extra);
    return proxy_pid > 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (proxy_pid > 0 && proxy_stop(proxy_pid) != 0)
        return -1;
    rmdir(dir);
    return 0;
}

/* A connected admin socket that has sent text (which may lack its newline). */
static int open_admin(const char *text)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/admin.sock", dir);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (text[0])
        assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
    return fd;
}

/* Everything the proxy sends until it closes (bounded by a 20 s receive timeout). */
static void read_all(int fd, char *out, size_t cap)
{
    struct timeval tv = {.tv_sec = 20};
    size_t n = 0;

    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    for (;;) {
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        assert_true(r >= 0);
        if (r == 0 || (n += (size_t)r) == cap - 1)
            break;
    }
    out[n] = 0;
}

/* PING's latency while another client holds half a line: no more than scheduling noise (the
 * old synchronous read held it for 2 s; a stall now would last the 5 s idle timeout). */
static void test_admin_stalled_client(void **state)
{
    int stalled = open_admin("LI");
    char buf[256];
    double t0, ms;

    (void)state;
    usleep(100000); /* the proxy has accepted it and read "LI" */
    t0 = now_ms();
    assert_int_equal(admin_cmd(dir, "PING", buf, sizeof(buf)), 0);
    ms = now_ms() - t0;
    assert_memory_equal(buf, "OK gpu_proxy", 12);
    printf("test_admin: PING answered in %.2f ms while another client stalls mid-line\n", ms);
    assert_true(ms < 1000.0);
    /* The stalled client finishes its line and is answered as usual. */
    assert_int_equal(send(stalled, "ST\n", 3, MSG_NOSIGNAL), 3);
    read_all(stalled, buf, sizeof(buf));
    assert_memory_equal(buf, "OK 1\nA ", 7);
    close(stalled);
}

static void test_admin_long_line(void **state)
{
    char line[ADMIN_LINE_MAX * 4], buf[256];
    int fd;

    (void)state;
    memset(line, 'X', sizeof(line) - 1);
    line[sizeof(line) - 1] = 0;
    fd = open_admin(line);
    read_all(fd, buf, sizeof(buf));
    assert_string_equal(buf, "ERR request too long (at most 511 bytes and a newline)\n");
    close(fd);
    assert_int_equal(admin_cmd(dir, "PING", buf, sizeof(buf)), 0);
    assert_memory_equal(buf, "OK gpu_proxy", 12);
}

/* ADMIN_MAX_CONNS stalled clients: the next is told so at once; PING works again once they go. */
static void test_admin_too_many(void **state)
{
    int fds[ADMIN_MAX_CONNS], extra;
    char buf[256];

    (void)state;
    for (int i = 0; i < ADMIN_MAX_CONNS; i++)
        fds[i] = open_admin("PI");
    usleep(100000);
    extra = open_admin(""); /* answered and closed at once: sending could meet EPIPE */
    read_all(extra, buf, sizeof(buf));
    assert_string_equal(buf, "ERR busy: too many admin connections\n");
    close(extra);
    for (int i = 0; i < ADMIN_MAX_CONNS; i++)
        close(fds[i]);
    usleep(100000);
    assert_int_equal(admin_cmd(dir, "PING", buf, sizeof(buf)), 0);
    assert_memory_equal(buf, "OK gpu_proxy", 12);
}

/* A client that never finishes its line is closed after the idle timeout, without an answer. */
static void test_admin_idle_timeout(void **state)
{
    int fd = open_admin("PI");
    char buf[64];
    double t0 = now_ms(), ms;

    (void)state;
    read_all(fd, buf, sizeof(buf));
    ms = now_ms() - t0;
    assert_string_equal(buf, "");
    assert_true(ms >= ADMIN_IDLE_MS - 100);
    close(fd);
}

/* ATTACH/DETACH: wrong forms and a proxy without the Xen transport get their reasons; the
 * zone keeps serving and LIST shows it bound to no domain. */
static void test_admin_attach_refusals(void **state)
{
    static const struct {
        const char *req, *want;
    } cases[] = {
        {"ATTACH A xen=5", "ERR this gpu_proxy has no Xen transport"},
        {"ATTACH A xen=0", "ERR ATTACH wants <zone> xen=<domid>"},
        {"ATTACH A xen=5x", "ERR ATTACH wants <zone> xen=<domid>"},
        {"ATTACH A domid=5", "ERR ATTACH wants <zone> xen=<domid>"},
        {"ATTACH A xen=99999", "ERR ATTACH wants <zone> xen=<domid>"},
        {"ATTACH nosuch xen=5", "ERR no such zone"},
        {"ATTACH A", "ERR unknown request"},
        {"DETACH A", "ERR this gpu_proxy has no Xen transport"},
        {"DETACH nosuch", "ERR no such zone"},
    };
    char buf[512];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(admin_cmd(dir, cases[i].req, buf, sizeof(buf)), 0);
        if (strncmp(buf, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("%s: answered \"%s\", want \"%s...\"", cases[i].req, buf, cases[i].want);
    }
    assert_int_equal(admin_cmd(dir, "LIST", buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, "state=ready"));
    assert_non_null(strstr(buf, " xen=-1"));
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_stalled_client),
        cmocka_unit_test(test_admin_long_line),
        cmocka_unit_test(test_admin_too_many),
        cmocka_unit_test(test_admin_idle_timeout),
        cmocka_unit_test(test_admin_attach_refusals),
    };

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/gpu_proxy_stub\n", argv[0]);
        return 2;
    }
    snprintf(proxy_bin, sizeof(proxy_bin), "%s", argv[1]);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
