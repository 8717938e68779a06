/* cgroup.c - the zones' control groups (cgroup.h): finds a writable hierarchy at start-up (v2 at
 * /sys/fs/cgroup or /sys/fs/cgroup/unified with the memory, cpu and pids controllers, else the
 * v1 memory, cpu and pids hierarchies), makes the proxy's parent group, and per zone a group
 * "zone-NAME" with memory.max / memory.limit_in_bytes, an equal cpu.weight / cpu.shares and
 * pids.max; the supervisor moves each worker in before it runs (see supervisor.c). */
#include "cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define CG_ROOT "/sys/fs/cgroup"
#define CG_MAGIC_V1 0x27e0eb
#define CG_MAGIC_V2 0x63677270

static const char *const v1_ctrl[CGROUP_NDIRS] = {"memory", "cpu", "pids"};

const char *cgroup_kind_name(int kind)
{
    return kind == CGROUP_V2 ? "v2" : kind == CGROUP_V1 ? "v1" : "none";
}

static void fmt(char *out, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *out, size_t cap, const char *f, ...)
{
    va_list ap;

    va_start(ap, f);
    vsnprintf(out, cap, f, ap);
    va_end(ap);
}

/* Writes text to an existing control file; 0 or -errno (err says which file and why). */
static int write_ctl(const char *dir, const char *file, const char *text, char *err, size_t cap)
{
    char path[PATH_MAX + 64];
    size_t n = strlen(text);
    ssize_t w;
    int fd, rc = 0;

    fmt(path, sizeof(path), "%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        fmt(err, cap, "open %s: %s", path, strerror(errno));
        return rc;
    }
    w = write(fd, text, n);
    if (w != (ssize_t)n) {
        rc = w < 0 ? -errno : -EIO;
        fmt(err, cap, "writing \"%s\" to %s: %s", text, path, strerror(-rc));
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
        fmt(err, cap, "writing \"%s\" to %s: %s", text, path, strerror(errno));
    }
    return rc;
}

static int read_small(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = read(fd, out, cap - 1);
    close(fd);
    if (n < 0)
        return -EIO;
    out[n] = 0;
    return 0;
}

static int fs_magic_is(const char *path, long magic)
{
    struct statfs s;

    return statfs(path, &s) == 0 && (long)s.f_type == magic;
}

/* 1 when a /proc/self/cgroup line's fields (id, controller list) name the hierarchy: ctrl in
 * the comma-separated list, or (ctrl NULL) v2's "0::". */
static int line_matches(const char *id, char *list, const char *ctrl)
{
    char *save = NULL;

    if (ctrl == NULL)
        return strcmp(id, "0") == 0 && *list == 0;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (strcmp(t, ctrl) == 0)
            return 1;
    return 0;
}

/* The proxy's own group in the hierarchy of controller ctrl (NULL: v2), "" for the root. */
static int own_group(const char *ctrl, char *out, size_t cap)
{
    char line[PATH_MAX + 64];
    FILE *f = fopen("/proc/self/cgroup", "re");
    int rc = -ENOENT;

    if (f == NULL)
        return -errno;
    while (rc != 0 && fgets(line, sizeof(line), f)) {
        char *list = strchr(line, ':'), *path = list ? strchr(list + 1, ':') : NULL;
        if (path == NULL)
            continue;
        *list++ = 0;
        *path++ = 0;
        path[strcspn(path, "\n")] = 0;
        if (line_matches(line, list, ctrl)) {
            fmt(out, cap, "%s", strcmp(path, "/") == 0 ? "" : path);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

/* mount + (spec absolute ? spec : own group + "/" + spec). */
static int parent_path(const char *mount, const char *ctrl, const char *spec, char *out,
                       size_t cap, char *why, size_t whycap)
{
    char own[PATH_MAX];

    if (spec[0] == '/') {
        fmt(out, cap, "%s%s", mount, spec);
        return 0;
    }
    if (own_group(ctrl, own, sizeof(own)) != 0) {
        fmt(why, whycap, "this process's %s group is not in /proc/self/cgroup",
            ctrl ? ctrl : "v2");
        return -ENOENT;
    }
    fmt(out, cap, "%s%s/%s", mount, own, spec);
    return 0;
}

/* mkdir that accepts an existing directory; *made says whether it was created here. */
static int make_dir(const char *path, int *made, char *why, size_t whycap)
{
    *made = 0;
    if (mkdir(path, 0755) == 0) {
        *made = 1;
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    fmt(why, whycap, "mkdir %s: %s", path, strerror(errno));
    return -errno;
}

static void drop_parents(struct cgroup_ctx *cg, int n)
{
    for (int i = 0; i < n; i++)
        if (cg->made_parent[i] && rmdir(cg->parent[i]) != 0)
            log_warn("cgroup: removing %s: %s", cg->parent[i], strerror(errno));
}

static int setup_v1(struct cgroup_ctx *cg, const char *spec, char *why, size_t whycap)
{
    for (int i = 0; i < CGROUP_NDIRS; i++) {
        char mount[64];
        fmt(mount, sizeof(mount), CG_ROOT "/%s", v1_ctrl[i]);
        if (!fs_magic_is(mount, CG_MAGIC_V1)) {
            fmt(why, whycap, "%s is not a cgroup v1 mount", mount);
            drop_parents(cg, i);
            return -ENOENT;
        }
        if (parent_path(mount, v1_ctrl[i], spec, cg->parent[i], sizeof(cg->parent[i]), why,
                        whycap) != 0 ||
            make_dir(cg->parent[i], &cg->made_parent[i], why, whycap) != 0) {
            drop_parents(cg, i);
            return -EACCES;
        }
    }
    cg->ndirs = CGROUP_NDIRS;
    return 0;
}

static int v2_has_controllers(const char *dir, const char *file)
{
    char path[PATH_MAX + 32], text[512], *save = NULL;
    int found = 0;

    fmt(path, sizeof(path), "%s/%s", dir, file);
    if (read_small(path, text, sizeof(text)) != 0)
        return 0;
    for (char *t = strtok_r(text, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
        found |= strcmp(t, "memory") == 0 ? 1 : strcmp(t, "cpu") == 0 ? 2
                 : strcmp(t, "pids") == 0 ? 4 : 0;
    return found == 7;
}

/* Enables memory, cpu and pids for the children of dir. A group with processes of its own
 * cannot (v2's no-internal-processes rule): when dir is the proxy's own group, the proxy moves
 * itself into parent/supervisor first. */
static int v2_enable(struct cgroup_ctx *cg, const char *dir, char *why, size_t whycap)
{
    char leaf[PATH_MAX + 16], pid[32];
    int made;

    if (v2_has_controllers(dir, "cgroup.subtree_control"))
        return 0;
    if (write_ctl(dir, "cgroup.subtree_control", "+memory +cpu +pids", why, whycap) != -EBUSY)
        return v2_has_controllers(dir, "cgroup.subtree_control") ? 0 : -EACCES;
    fmt(leaf, sizeof(leaf), "%s/supervisor", cg->parent[0]);
    fmt(pid, sizeof(pid), "%d", (int)getpid());
    if (make_dir(leaf, &made, why, whycap) != 0 ||
        write_ctl(leaf, "cgroup.procs", pid, why, whycap) != 0)
        return -EACCES;
    log_info("cgroup: moved the supervisor into %s (v2 allows controllers only for groups "
             "without processes of their own)", leaf);
    cg->made_parent[0] = 0; /* it holds the supervisor now: left to the service manager */
    return write_ctl(dir, "cgroup.subtree_control", "+memory +cpu +pids", why, whycap);
}

static int setup_v2(struct cgroup_ctx *cg, const char *mount, const char *spec, char *why,
                    size_t whycap)
{
    char up[PATH_MAX];
    char *slash;

    if (!v2_has_controllers(mount, "cgroup.controllers")) {
        fmt(why, whycap, "%s offers no memory, cpu and pids controllers (v1 holds them?)", mount);
        return -ENOENT;
    }
    if (parent_path(mount, NULL, spec, cg->parent[0], sizeof(cg->parent[0]), why, whycap) != 0 ||
        make_dir(cg->parent[0], &cg->made_parent[0], why, whycap) != 0)
        return -EACCES;
    fmt(up, sizeof(up), "%s", cg->parent[0]);
    slash = strrchr(up, '/');
    *slash = 0;
    if (v2_enable(cg, up, why, whycap) != 0 || v2_enable(cg, cg->parent[0], why, whycap) != 0) {
        drop_parents(cg, 1);
        return -EACCES;
    }
    cg->ndirs = 1;
    return 0;
}

void cgroup_setup(struct cgroup_ctx *cg, const char *spec)
{
    char why_v2[PATH_MAX + 128] = "", why_v1[PATH_MAX + 128] = "";
    const char *v2 = fs_magic_is(CG_ROOT, CG_MAGIC_V2) ? CG_ROOT
                     : fs_magic_is(CG_ROOT "/unified", CG_MAGIC_V2) ? CG_ROOT "/unified" : NULL;

    memset(cg, 0, sizeof(*cg));
    if (strcmp(spec, "off") == 0) {
        log_info("cgroup: off (--cgroup off): workers are bounded by rlimits only");
        return;
    }
    if (v2 == NULL)
        fmt(why_v2, sizeof(why_v2), "no cgroup2 mount at " CG_ROOT " or " CG_ROOT "/unified");
    else if (setup_v2(cg, v2, spec, why_v2, sizeof(why_v2)) == 0)
        cg->kind = CGROUP_V2;
    if (cg->kind == CGROUP_NONE && setup_v1(cg, spec, why_v1, sizeof(why_v1)) == 0)
        cg->kind = CGROUP_V1;
    if (cg->kind == CGROUP_NONE) {
        log_warn("cgroup: no writable hierarchy, workers are bounded by rlimits only (v2: %s; "
                 "v1: %s)", why_v2, why_v1);
        return;
    }
    if (why_v2[0])
        log_info("cgroup: not v2 (%s)", why_v2);
    log_info("cgroup: %s, zones' groups under %s%s%s%s%s", cgroup_kind_name(cg->kind),
             cg->parent[0], cg->ndirs > 1 ? ", " : "", cg->ndirs > 1 ? cg->parent[1] : "",
             cg->ndirs > 1 ? ", " : "", cg->ndirs > 1 ? cg->parent[2] : "");
}

void cgroup_teardown(struct cgroup_ctx *cg)
{
    /* Another proxy may share the parent (same --cgroup): it goes with the last one out. */
    for (int i = 0; i < cg->ndirs; i++) {
        if (rmdir(cg->parent[i]) == 0 || errno == ENOENT)
            continue;
        if (errno == EBUSY || errno == ENOTEMPTY)
            log_debug("cgroup: %s stays (still in use)", cg->parent[i]);
        else
            log_warn("cgroup: removing %s: %s", cg->parent[i], strerror(errno));
    }
    cg->kind = CGROUP_NONE;
    cg->ndirs = 0;
}

void cgroup_zone_path(const struct cgroup_ctx *cg, int i, const char *zone, char *out,
                      size_t cap)
{
    fmt(out, cap, "%s/zone-%s", cg->parent[i], zone);
}

/* rmdir, waiting briefly while the group still counts a task that has just exited. */
static int remove_dir(const char *path)
{
    for (int tries = 0;; tries++) {
        if (rmdir(path) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY || tries == 20)
            return -errno;
        nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);
    }
}

void cgroup_zone_remove(const struct cgroup_ctx *cg, const char *zone)
{
    char path[PATH_MAX + 80];

    for (int i = 0; i < cg->ndirs; i++) {
        cgroup_zone_path(cg, i, zone, path, sizeof(path));
        if (remove_dir(path) != 0)
            log_warn("zone=%s: cannot remove its cgroup %s: %s", zone, path, strerror(errno));
    }
}

static int zone_limits(const struct cgroup_ctx *cg, const char *zone, uint64_t memory_max,
                       char *err, size_t errlen)
{
    char dir[CGROUP_NDIRS][PATH_MAX + 80], mem[32], pids[32], cpu[32];
    int rc;

    for (int i = 0; i < cg->ndirs; i++)
        cgroup_zone_path(cg, i, zone, dir[i], sizeof(dir[i]));
    fmt(pids, sizeof(pids), "%d", CGROUP_ZONE_PIDS_MAX);
    if (cg->kind == CGROUP_V2) {
        fmt(mem, sizeof(mem), memory_max ? "%llu" : "max", (unsigned long long)memory_max);
        fmt(cpu, sizeof(cpu), "%d", CGROUP_V2_CPU_WEIGHT);
        rc = write_ctl(dir[0], "memory.max", mem, err, errlen);
        rc = rc ? rc : write_ctl(dir[0], "cpu.weight", cpu, err, errlen);
        return rc ? rc : write_ctl(dir[0], "pids.max", pids, err, errlen);
    }
    fmt(mem, sizeof(mem), memory_max ? "%llu" : "-1", (unsigned long long)memory_max);
    fmt(cpu, sizeof(cpu), "%d", CGROUP_V1_CPU_SHARES);
    rc = write_ctl(dir[0], "memory.limit_in_bytes", mem, err, errlen);
    rc = rc ? rc : write_ctl(dir[1], "cpu.shares", cpu, err, errlen);
    return rc ? rc : write_ctl(dir[2], "pids.max", pids, err, errlen);
}

static void remove_zone_dirs(const struct cgroup_ctx *cg, const char *zone, int n)
{
    char path[PATH_MAX + 80];

    for (int k = 0; k < n; k++) {
        cgroup_zone_path(cg, k, zone, path, sizeof(path));
        if (rmdir(path) != 0 && errno != ENOENT)
            log_warn("zone=%s: removing %s after a failure: %s", zone, path, strerror(errno));
    }
}

int cgroup_zone_create(const struct cgroup_ctx *cg, const char *zone, uint64_t memory_max,
                       char *err, size_t errlen)
{
    char path[PATH_MAX + 80];
    int made, rc = 0;

    for (made = 0; made < cg->ndirs; made++) {
        cgroup_zone_path(cg, made, zone, path, sizeof(path));
        /* A group left behind by a proxy that died is empty: it goes. One in use stays. */
        if (mkdir(path, 0755) != 0 && (errno != EEXIST || remove_dir(path) != 0 ||
                                       mkdir(path, 0755) != 0)) {
            rc = -errno;
            fmt(err, errlen, "mkdir %s: %s", path, strerror(errno));
            break;
        }
    }
    if (rc == 0)
        rc = zone_limits(cg, zone, memory_max, err, errlen);
    if (rc != 0)
        remove_zone_dirs(cg, zone, made);
    return rc;
}

int cgroup_zone_attach(const struct cgroup_ctx *cg, const char *zone, pid_t pid, char *err,
                       size_t errlen)
{
    char path[PATH_MAX + 80], text[32];

    fmt(text, sizeof(text), "%d", (int)pid);
    for (int i = 0; i < cg->ndirs; i++) {
        int rc;
        cgroup_zone_path(cg, i, zone, path, sizeof(path));
        rc = write_ctl(path, "cgroup.procs", text, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}
