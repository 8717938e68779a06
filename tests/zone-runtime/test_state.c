/* test_state.c - unit tests of zone-runtime/state.c: records written and read back, one
 * container per id, the status derived from the monitor process (alive, gone, a zombie, a
 * reused pid), removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state.h"

static char root[64];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/test_state.XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd);
}

static void test_state_roundtrip(void **state)
{
    struct zstate a = {.pid = 42, .pid_start = 99, .domid = 7, .started = 1, .attached = 1,
                       .created = 1700000000}, b;
    int lock;
    (void)state;
    snprintf(a.id, sizeof(a.id), "c1");
    snprintf(a.bundle, sizeof(a.bundle), "/srv/bundle one");
    snprintf(a.zone, sizeof(a.zone), "za");
    snprintf(a.loopdev, sizeof(a.loopdev), "/dev/loop3");
    lock = zstate_create_dir(root, "c1");
    assert_true(lock >= 0);
    assert_int_equal(zstate_save(root, &a), 0);
    assert_int_equal(zstate_load(root, "c1", &b), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(zstate_create_dir(root, "c1"), -EEXIST);
    close(lock);
    assert_int_equal(zstate_remove(root, "c1"), 0);
    assert_int_equal(zstate_lock(root, "c1"), -ENOENT);
    assert_int_equal(zstate_load(root, "c1", &b), -ENOENT);
}

static void test_state_status(void **state)
{
    struct zstate st = {.domid = 3};
    pid_t child;
    int status;
    (void)state;
    assert_int_equal(zstate_status(&st), ZS_CREATING);
    child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    st.pid = child;
    for (int i = 0; i < 100 && !(st.pid_start = zstate_proc_start(child)); i++)
        usleep(10000);
    assert_true(st.pid_start > 0);
    assert_int_equal(zstate_status(&st), ZS_CREATED);
    st.started = 1;
    assert_int_equal(zstate_status(&st), ZS_RUNNING);
    st.pid_start++; /* the pid now names another process */
    assert_int_equal(zstate_status(&st), ZS_STOPPED);
    st.pid_start--;
    kill(child, SIGKILL);
    usleep(100000); /* not reaped yet: a zombie counts as stopped */
    assert_int_equal(zstate_status(&st), ZS_STOPPED);
    waitpid(child, &status, 0);
    assert_int_equal(zstate_status(&st), ZS_STOPPED);
    assert_string_equal(zstate_status_name(ZS_RUNNING), "running");
}

static void test_state_bad_record(void **state)
{
    char path[128];
    struct zstate st;
    FILE *f;
    int lock;
    (void)state;
    lock = zstate_create_dir(root, "c2");
    assert_true(lock >= 0);
    snprintf(path, sizeof(path), "%s/c2/state", root);
    f = fopen(path, "w");
    fputs("id=other\n", f); /* a record of another container */
    fclose(f);
    assert_int_equal(zstate_load(root, "c2", &st), -EINVAL);
    f = fopen(path, "w");
    fputs("no equals sign\n", f);
    fclose(f);
    assert_int_equal(zstate_load(root, "c2", &st), -EINVAL);
    close(lock);
    assert_int_equal(zstate_remove(root, "c2"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_state_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_bad_record, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
