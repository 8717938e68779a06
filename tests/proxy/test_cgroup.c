/* test_cgroup.c - gpu_proxy's per-zone control groups against a real gpu_proxy_stub started as
 * root: each zone's worker sits in its own group (and a restarted worker in the same one), the
 * limit files hold the configured values, a removed zone's group is gone and the proxy's parent
 * group goes at shutdown. Exits 77 (skipped, with the reason) when not root or when the proxy
 * finds no writable hierarchy. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cgroup.h"
#include "proxy_client.h"

/* Also the workers' RLIMIT_DATA, which counts the terabytes of shadow address space that a
 * sanitizer-built worker reserves: so a large value. */
#define WORKER_MEMORY "64T"
#define WORKER_MEMORY_BYTES (64ull << 40)

static char proxy_bin[512];
static char dir[256];
static char parent[64];         /* --cgroup NAME, unique to this run */
static pid_t proxy_pid = -1;
static char kind[8];            /* "v1" or "v2", from LIST */

/* LIST fields of one zone: worker pid and cgroup kind; 0 if listed with both. */
static int zone_info(const char *zone, int *pid, char cg[8])
{
    struct pc_zone z;

    if (admin_zone_info(dir, zone, &z) != 0 || (~z.keys & (PC_ZONE_PID | PC_ZONE_CGROUP)))
        return -1;
    *pid = z.pid;
    memcpy(cg, z.cgroup, sizeof(z.cgroup));
    return 0;
}

/* The group of pid in hierarchy ctrl ("memory", "cpu", "pids"; NULL: v2), as a directory. */
static int group_dir(int pid, const char *ctrl, char *out, size_t cap)
{
    char path[64], line[4096];
    FILE *f;
    int rc = -1;

    snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (rc != 0 && fgets(line, sizeof(line), f)) {
        char *list = strchr(line, ':'), *grp = list ? strchr(list + 1, ':') : NULL;
        if (grp == NULL)
            continue;
        *list++ = 0;
        *grp++ = 0;
        grp[strcspn(grp, "\n")] = 0;
        if (ctrl == NULL && strcmp(line, "0") == 0 && *list == 0) {
            struct stat st;
            snprintf(out, cap, "/sys/fs/cgroup%s", grp);
            if (stat(out, &st) != 0)
                snprintf(out, cap, "/sys/fs/cgroup/unified%s", grp);
            rc = 0;
        } else if (ctrl) {
            char *save = NULL;
            for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
                if (strcmp(t, ctrl) == 0)
                    rc = 0;
            if (rc == 0)
                snprintf(out, cap, "/sys/fs/cgroup/%s%s", ctrl, grp);
        }
    }
    fclose(f);
    return rc;
}

static unsigned long long read_value(const char *gdir, const char *file)
{
    char path[4200], text[64] = "";
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", gdir, file);
    f = fopen(path, "r");
    if (f == NULL)
        return ~0ull;
    if (fgets(text, sizeof(text), f) == NULL)
        text[0] = 0;
    fclose(f);
    return strcmp(text, "max\n") == 0 ? 0 : strtoull(text, NULL, 10);
}

static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The zone's group directories of worker pid (1 for v2, 3 for v1); checks they are the zone's. */
static int zone_dirs(int pid, const char *zone, char dirs[3][4096])
{
    static const char *const ctrl[3] = {"memory", "cpu", "pids"};
    char want[160];
    int n = strcmp(kind, "v2") == 0 ? 1 : 3;

    snprintf(want, sizeof(want), "/%s/zone-%s", parent, zone);
    for (int i = 0; i < n; i++) {
        size_t len;
        assert_int_equal(group_dir(pid, n == 1 ? NULL : ctrl[i], dirs[i], sizeof(dirs[i])), 0);
        len = strlen(dirs[i]);
        if (len < strlen(want) || strcmp(dirs[i] + len - strlen(want), want) != 0)
            fail_msg("worker %d of zone %s is in %s, not in a group ending %s", pid, zone,
                     dirs[i], want);
        assert_true(is_dir(dirs[i]));
    }
    return n;
}

static void check_limits(int n, char dirs[3][4096])
{
    if (n == 1) {
        assert_int_equal(read_value(dirs[0], "memory.max"), WORKER_MEMORY_BYTES);
        assert_int_equal(read_value(dirs[0], "cpu.weight"), CGROUP_V2_CPU_WEIGHT);
        assert_int_equal(read_value(dirs[0], "pids.max"), CGROUP_ZONE_PIDS_MAX);
    } else {
        assert_int_equal(read_value(dirs[0], "memory.limit_in_bytes"), WORKER_MEMORY_BYTES);
        assert_int_equal(read_value(dirs[1], "cpu.shares"), CGROUP_V1_CPU_SHARES);
        assert_int_equal(read_value(dirs[2], "pids.max"), CGROUP_ZONE_PIDS_MAX);
    }
}

/* Each zone's worker is in its own group, with the limits asked for. */
static void test_cgroup_zone_groups(void **state)
{
    char da[3][4096], db[3][4096];
    int pa, pb, n;
    char cg[8];

    (void)state;
    assert_int_equal(zone_info("A", &pa, cg), 0);
    assert_string_equal(cg, kind);
    assert_int_equal(zone_info("B", &pb, cg), 0);
    assert_string_equal(cg, kind);
    assert_true(pa > 0 && pb > 0 && pa != pb);
    n = zone_dirs(pa, "A", da);
    assert_int_equal(zone_dirs(pb, "B", db), n);
    for (int i = 0; i < n; i++)
        assert_string_not_equal(da[i], db[i]);
    check_limits(n, da);
    check_limits(n, db);
}

/* A worker killed with SIGKILL is replaced by one in the same group. */
static void test_cgroup_restart_same_group(void **state)
{
    char before[3][4096], after[3][4096], cg[8];
    int pid, fresh = 0, n;

    (void)state;
    assert_int_equal(zone_info("B", &pid, cg), 0);
    n = zone_dirs(pid, "B", before);
    assert_int_equal(kill(pid, SIGKILL), 0);
    for (int i = 0; i < 200 && (fresh <= 0 || fresh == pid); i++) {
        usleep(25000);
        if (zone_info("B", &fresh, cg) != 0 || strcmp(cg, kind) != 0)
            fresh = 0;
    }
    assert_true(fresh > 0 && fresh != pid);
    assert_int_equal(zone_dirs(fresh, "B", after), n);
    for (int i = 0; i < n; i++)
        assert_string_equal(before[i], after[i]);
}

/* REMOVE takes the zone's group with it; the other zone's stays. */
static void test_cgroup_remove(void **state)
{
    char da[3][4096], db[3][4096], buf[256], cg[8];
    int pa, pb, n;

    (void)state;
    assert_int_equal(zone_info("A", &pa, cg), 0);
    assert_int_equal(zone_info("B", &pb, cg), 0);
    n = zone_dirs(pa, "A", da);
    zone_dirs(pb, "B", db);
    assert_int_equal(admin_cmd(dir, "REMOVE A", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "OK\n");
    for (int i = 0; i < n; i++) {
        assert_false(is_dir(da[i]));
        assert_true(is_dir(db[i]));
    }
}

/* SIGTERM: the last zone's group and the proxy's parent group are gone. */
static void test_cgroup_shutdown(void **state)
{
    char db[3][4096], cg[8];
    int pb, n;

    (void)state;
    assert_int_equal(zone_info("B", &pb, cg), 0);
    n = zone_dirs(pb, "B", db);
    assert_int_equal(proxy_stop(proxy_pid), 0);
    proxy_pid = -1;
    for (int i = 0; i < n; i++) {
        char *slash;
        assert_false(is_dir(db[i]));
        slash = strrchr(db[i], '/');
        *slash = 0; /* the parent group */
        assert_false(is_dir(db[i]));
    }
}

static int group_teardown(void **state)
{
    (void)state;
    if (proxy_pid > 0)
        proxy_stop(proxy_pid);
    rmdir(dir);
    return 0;
}

/* Starts the proxy; 0, 77 (skip: printed why) or 1. */
static int start_proxy(void)
{
    const char *extra[] = {"--zone", "A:64M", "--zone", "B:64M", "--worker-memory",
                           WORKER_MEMORY, "--cgroup", parent, NULL};
    int pid;

    if (geteuid() != 0) {
        printf("test_cgroup: skipped: not root (cgroups need root)\n");
        return 77;
    }
    snprintf(parent, sizeof(parent), "gpu-proxy-test-%d", (int)getpid());
    snprintf(dir, sizeof(dir), "/tmp/gpu-proxy-cgroup.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    proxy_pid = proxy_start(proxy_bin, dir, extra);
    if (proxy_pid <= 0 || zone_info("A", &pid, kind) != 0) {
        fprintf(stderr, "test_cgroup: the proxy did not start\n");
        return 1;
    }
    if (strcmp(kind, "none") == 0) {
        printf("test_cgroup: skipped: gpu_proxy found no writable cgroup hierarchy (its log "
               "above says which it tried and why)\n");
        group_teardown(NULL);
        return 77;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cgroup_zone_groups),
        cmocka_unit_test(test_cgroup_restart_same_group),
        cmocka_unit_test(test_cgroup_remove),
        cmocka_unit_test(test_cgroup_shutdown),
    };
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/gpu_proxy_stub\n", argv[0]);
        return 2;
    }
    snprintf(proxy_bin, sizeof(proxy_bin), "%s", argv[1]);
    rc = start_proxy();
    if (rc != 0)
        return rc;
    return cmocka_run_group_tests(tests, NULL, group_teardown);
}
