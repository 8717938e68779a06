/* test_sandbox.c - the worker sandbox (gpu-proxy/sandbox.c) applied for real in a child
 * process, with the stub backend's profile: threads still start, but opening a file, exec,
 * creating a socket to connect anywhere, fork and signalling another process all fail with the
 * errno the profile promises. When run as root the child also stops being root. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sandbox.h"

static void *nop_thread(void *arg)
{
    return arg;
}

/* Child side: one check per bit of the exit status (0 means all held). */
static int child_checks(const char *backend)
{
    struct sandbox_config cfg = {.seccomp = 1, .max_files = 256};
    char err[256];
    int bad = 0, fd;
    pthread_t t;
    char *const argv[] = {"/bin/true", NULL};

    snprintf(cfg.user, sizeof(cfg.user), "%s", SANDBOX_DEFAULT_USER);
    if (sandbox_enter(&cfg, backend, 0, err, sizeof(err)) != 0) {
        fprintf(stderr, "sandbox_enter: %s\n", err);
        return 0x80;
    }
    if (pthread_create(&t, NULL, nop_thread, NULL) != 0 || pthread_join(t, NULL) != 0)
        bad |= 0x01; /* threads must still work */
    errno = 0;
    fd = open("/etc/hostname", O_RDONLY);
    if (fd >= 0 || errno != EACCES)
        bad |= 0x02;
    errno = 0;
    execv("/bin/true", argv);
    if (errno != EPERM)
        bad |= 0x04;
    errno = 0;
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 || errno != EPERM)
        bad |= 0x08;
    errno = 0;
    if (syscall(SYS_fork) != -1 || errno != EPERM)
        bad |= 0x10; /* clone without CLONE_THREAD: a new process */
    errno = 0;
    if (kill(1, 0) != -1 || errno != EPERM)
        bad |= 0x20;
    if (geteuid() == 0 || getuid() == 0)
        bad |= 0x40;
    return bad;
}

static void test_sandbox_stub_profile(void **state)
{
    int status;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_checks("stub")); /* no exit handlers under seccomp */
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (geteuid() != 0 && WEXITSTATUS(status) == 0x40)
        return; /* not root: nothing to drop */
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sandbox_stub_profile),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
