/* state.c - the container records under --root (see state.h): atomic writes (temporary file,
 * fsync, rename), a lock file per container, and the status derived from the monitor process
 * (identified by pid and start time, so a reused pid is not mistaken for it). */
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int zstate_path(const char *root, const char *id, const char *name, char *buf, size_t len)
{
    int n = name ? snprintf(buf, len, "%s/%s/%s", root, id, name)
                 : snprintf(buf, len, "%s/%s", root, id);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Takes the container's lock. Only create makes the lock file: another command (state, kill,
 * delete) opens the existing one, so it can never put a lock file back into a directory that a
 * concurrent delete is emptying; one that got the lock after that delete unlinked the file
 * finds the container gone (-ENOENT). */
static int lock_dir(const char *root, const char *id, int create)
{
    char path[PATH_MAX];
    struct stat sb;
    int fd, rc = zstate_path(root, id, "lock", path, sizeof(path));
    if (rc < 0)
        return rc;
    if ((fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600)) < 0)
        return -errno;
    if (flock(fd, LOCK_EX) != 0 || fstat(fd, &sb) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    if (sb.st_nlink == 0) {
        close(fd);
        return -ENOENT;
    }
    return fd;
}

int zstate_create_dir(const char *root, const char *id)
{
    char path[PATH_MAX];
    int rc = zstate_path(root, id, NULL, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (mkdir(root, 0700) != 0 && errno != EEXIST)
        return -errno;
    if (mkdir(path, 0700) != 0)
        return -errno;
    return lock_dir(root, id, 1);
}

int zstate_lock(const char *root, const char *id)
{
    char path[PATH_MAX];
    struct stat sb;
    int rc = zstate_path(root, id, NULL, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (stat(path, &sb) != 0)
        return -errno;
    return lock_dir(root, id, 0);
}

int zstate_save(const char *root, const struct zstate *st)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    FILE *f;
    int rc;
    if ((rc = zstate_path(root, st->id, "state", path, sizeof(path))) < 0 ||
        (rc = zstate_path(root, st->id, "state.tmp", tmp, sizeof(tmp))) < 0)
        return rc;
    if (!(f = fopen(tmp, "we")))
        return -errno;
    fprintf(f, "id=%s\nbundle=%s\nzone=%s\nloopdev=%s\npid=%d\npid_start=%" PRIu64
               "\ndomid=%d\nstarted=%d\nattached=%d\ncreated=%" PRId64 "\n",
            st->id, st->bundle, st->zone, st->loopdev, (int)st->pid, st->pid_start, st->domid,
            st->started, st->attached, st->created);
    rc = fflush(f) != 0 || fsync(fileno(f)) != 0 ? -errno : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static int copy_field(char *dst, size_t len, const char *v)
{
    if (strlen(v) >= len)
        return -EINVAL;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int parse_line(struct zstate *st, const char *k, const char *v)
{
    if (strcmp(k, "id") == 0)
        return copy_field(st->id, sizeof(st->id), v);
    if (strcmp(k, "bundle") == 0)
        return copy_field(st->bundle, sizeof(st->bundle), v);
    if (strcmp(k, "zone") == 0)
        return copy_field(st->zone, sizeof(st->zone), v);
    if (strcmp(k, "loopdev") == 0)
        return copy_field(st->loopdev, sizeof(st->loopdev), v);
    if (strcmp(k, "pid") == 0)
        return st->pid = (pid_t)strtol(v, NULL, 10), 0;
    if (strcmp(k, "pid_start") == 0)
        return st->pid_start = strtoull(v, NULL, 10), 0;
    if (strcmp(k, "domid") == 0)
        return st->domid = (int)strtol(v, NULL, 10), 0;
    if (strcmp(k, "started") == 0)
        return st->started = v[0] == '1', 0;
    if (strcmp(k, "attached") == 0)
        return st->attached = v[0] == '1', 0;
    if (strcmp(k, "created") == 0)
        return st->created = strtoll(v, NULL, 10), 0;
    return 0; /* keys of later versions */
}

int zstate_load(const char *root, const char *id, struct zstate *st)
{
    char path[PATH_MAX], line[PATH_MAX + 32];
    FILE *f;
    int rc = zstate_path(root, id, "state", path, sizeof(path));
    if (rc < 0)
        return rc;
    memset(st, 0, sizeof(*st));
    st->domid = -1;
    if (!(f = fopen(path, "re")))
        return -errno;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        char *eq = strchr(line, '='), *nl = strchr(line, '\n');
        if (nl)
            *nl = 0;
        if (!eq)
            rc = -EINVAL;
        else
            *eq = 0, rc = parse_line(st, line, eq + 1);
    }
    fclose(f);
    if (rc == 0 && strcmp(st->id, id) != 0)
        rc = -EINVAL;
    return rc;
}

int zstate_remove(const char *root, const char *id)
{
    char path[PATH_MAX], file[PATH_MAX];
    struct dirent *de;
    DIR *d;
    int rc = zstate_path(root, id, NULL, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (!(d = opendir(path)))
        return errno == ENOENT ? 0 : -errno;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (zstate_path(root, id, de->d_name, file, sizeof(file)) == 0 && unlink(file) != 0 &&
            rc == 0)
            rc = -errno;
    }
    closedir(d);
    if (rmdir(path) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

uint64_t zstate_proc_start(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long start = 0;
    ssize_t n;
    int fd, field;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    /* Fields after the command name, which ends at the last ')': state (3) ... start (22). */
    if (!(p = strrchr(buf, ')')) || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')
        return 0;
    for (field = 2, p++; *p && field < 22; p++)
        if (*p == ' ')
            field++;
    sscanf(p, "%llu", &start);
    return start;
}

enum zstatus zstate_status(const struct zstate *st)
{
    if (st->pid <= 0)
        return ZS_CREATING;
    if (zstate_proc_start(st->pid) != st->pid_start || st->pid_start == 0)
        return ZS_STOPPED;
    return st->started ? ZS_RUNNING : ZS_CREATED;
}

const char *zstate_status_name(enum zstatus s)
{
    static const char *const names[] = {"creating", "created", "running", "stopped"};
    return names[s];
}
