/* zone-init.c - /init of a zone guest (static): loads the guest's drivers, mounts the container's
 * root image (/dev/xvda, ext4) and the GPU libraries of a zone, applies the process description
 * the runtime put in /vgpu/process (args, env, cwd, uid/gid/groups, rlimits, hostname), runs the
 * process with the console as its stdout/stderr, writes its exit status to xenstore
 * (data/vgpu-zone/exit: "exit:N" or "signal:N") and powers the guest off. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <xen/io/xs_wire.h>

#include "../xlcfg.h"

#define NEWROOT "/newroot"
#define MAX_RECORDS 8192

struct proc_desc {
    char *args[ZSPEC_MAX_ARGS + 1], *env[ZSPEC_MAX_ENV + 4];
    size_t nargs, nenv;
    const char *cwd, *hostname, *zone;
    uid_t uid;
    gid_t gid, groups[ZSPEC_MAX_GIDS];
    size_t ngroups;
    struct { int res; struct rlimit lim; } rl[ZSPEC_MAX_RLIMITS];
    size_t nrl;
    int readonly;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vgpu-zone-init: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

/* One xenstore write through the xenbus device (relative paths are under the guest's home). */
static int xs_write(const char *path, const char *value)
{
    struct xsd_sockmsg m = {.type = XS_WRITE, .req_id = 1};
    char buf[512];
    size_t plen = strlen(path) + 1, vlen = strlen(value);
    int fd = open("/dev/xen/xenbus", O_RDWR | O_CLOEXEC), rc = -1;
    if (fd < 0 || plen + vlen > sizeof(buf) - sizeof(m))
        return -1;
    m.len = (uint32_t)(plen + vlen);
    memcpy(buf, &m, sizeof(m));
    memcpy(buf + sizeof(m), path, plen);
    memcpy(buf + sizeof(m) + plen, value, vlen);
    if (write(fd, buf, sizeof(m) + plen + vlen) == (ssize_t)(sizeof(m) + plen + vlen) &&
        read(fd, &m, sizeof(m)) == (ssize_t)sizeof(m) && m.type == XS_WRITE)
        rc = 0;
    close(fd);
    return rc;
}

static void load_module(const char *name, const char *params)
{
    char path[128];
    snprintf(path, sizeof(path), "/lib/modules/vgpu/%s.ko", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return; /* built into this kernel */
    if (syscall(SYS_finit_module, fd, params, 0) != 0 && errno != EEXIST)
        say("loading %s failed: %s", name, strerror(errno));
    close(fd);
}

static void load_modules(void)
{
    static const char *const mods[] = {"crc16", "crc32c_generic", "libcrc32c", "mbcache", "jbd2",
                                        "ext4", "xen-blkfront", "xen-evtchn", "xen-gntdev"};
    for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++)
        load_module(mods[i], "");
    /* gntalloc's default (1024 grants) is below one connection's pages. */
    load_module("xen-gntalloc", "limit=65536");
}

static char *read_all(const char *path, size_t *len)
{
    static char buf[1 << 20];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    *len = 0;
    if (fd < 0)
        return NULL;
    while (*len < sizeof(buf) - 1 && (n = read(fd, buf + *len, sizeof(buf) - 1 - *len)) > 0)
        *len += (size_t)n;
    close(fd);
    buf[*len] = 0;
    return buf;
}

static int apply_record(struct proc_desc *p, char *k, char *v)
{
    unsigned long long a, b;
    int res;
    if (strcmp(k, "arg") == 0 && p->nargs < ZSPEC_MAX_ARGS)
        p->args[p->nargs++] = v;
    else if (strcmp(k, "env") == 0 && p->nenv < ZSPEC_MAX_ENV + 3)
        p->env[p->nenv++] = v;
    else if (strcmp(k, "cwd") == 0)
        p->cwd = v;
    else if (strcmp(k, "hostname") == 0)
        p->hostname = v;
    else if (strcmp(k, "zone") == 0)
        p->zone = v;
    else if (strcmp(k, "uid") == 0)
        p->uid = (uid_t)strtoul(v, NULL, 10);
    else if (strcmp(k, "gid") == 0)
        p->gid = (gid_t)strtoul(v, NULL, 10);
    else if (strcmp(k, "group") == 0 && p->ngroups < ZSPEC_MAX_GIDS)
        p->groups[p->ngroups++] = (gid_t)strtoul(v, NULL, 10);
    else if (strcmp(k, "readonly") == 0)
        p->readonly = v[0] == '1';
    else if (strcmp(k, "rlimit") == 0 && p->nrl < ZSPEC_MAX_RLIMITS &&
             sscanf(v, "%d:%llu:%llu", &res, &a, &b) == 3) {
        p->rl[p->nrl].res = res;
        p->rl[p->nrl].lim.rlim_cur = a;
        p->rl[p->nrl++].lim.rlim_max = b;
    } else
        return -1;
    return 0;
}

static int read_process(struct proc_desc *p)
{
    size_t len, off = 0;
    char *buf = read_all(XLCFG_PROCESS_FILE, &len);
    if (!buf)
        return say("no %s in the initramfs", XLCFG_PROCESS_FILE), -1;
    while (off < len) {
        char *rec = buf + off, *eq = strchr(rec, '=');
        off += strlen(rec) + 1;
        if (!eq || (*eq = 0, apply_record(p, rec, eq + 1)) < 0)
            return say("bad record in %s", XLCFG_PROCESS_FILE), -1;
    }
    if (p->nargs == 0 || !p->cwd)
        return say("%s names no program or cwd", XLCFG_PROCESS_FILE), -1;
    return 0;
}

static void mkdirs(const char *path)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(tmp, 0755);
            *s = '/';
        }
    mkdir(tmp, 0755);
}

static int mount_root(const struct proc_desc *p)
{
    int i;
    mkdir(NEWROOT, 0755);
    for (i = 0; i < 400 && access("/dev/xvda", F_OK) != 0; i++)
        usleep(50000);
    if (mount("/dev/xvda", NEWROOT, "ext4", 0, NULL) != 0)
        return say("mounting the root image /dev/xvda failed: %s", strerror(errno)), -1;
    mkdirs(NEWROOT "/proc"), mkdirs(NEWROOT "/sys"), mkdirs(NEWROOT "/dev");
    if (mount("proc", NEWROOT "/proc", "proc", 0, NULL) != 0 ||
        mount("sysfs", NEWROOT "/sys", "sysfs", 0, NULL) != 0 ||
        mount("devtmpfs", NEWROOT "/dev", "devtmpfs", 0, NULL) != 0)
        return say("mounting /proc, /sys or /dev failed: %s", strerror(errno)), -1;
    mkdirs(NEWROOT "/dev/pts"), mkdirs(NEWROOT "/dev/shm");
    mount("devpts", NEWROOT "/dev/pts", "devpts", 0, "newinstance,ptmxmode=0666");
    mount("shm", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    if (p->zone) {
        mkdirs(NEWROOT XLCFG_CONTAINER_LIB_DIR);
        if (mount(XLCFG_GUEST_LIB_DIR, NEWROOT XLCFG_CONTAINER_LIB_DIR, NULL, MS_BIND, NULL) != 0)
            return say("mounting the GPU libraries failed: %s", strerror(errno)), -1;
    }
    if (p->readonly && mount(NULL, NEWROOT, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)
        return say("making the root read-only failed: %s", strerror(errno)), -1;
    return 0;
}

/* The console as stdout/stderr, in raw mode so the output reaches dom0 byte for byte. */
static void console_stdio(void)
{
    struct termios t;
    int con = open("/dev/console", O_RDWR | O_NOCTTY), null = open("/dev/null", O_RDWR);
    if (con < 0)
        return;
    if (tcgetattr(con, &t) == 0) {
        t.c_oflag &= ~(tcflag_t)OPOST;
        tcsetattr(con, TCSANOW, &t);
    }
    dup2(null >= 0 ? null : con, 0);
    dup2(con, 1), dup2(con, 2);
    if (con > 2)
        close(con);
    if (null > 2)
        close(null);
}

static void exec_process(struct proc_desc *p)
{
    extern char **environ;
    for (size_t i = 0; i < p->nrl; i++)
        if (setrlimit(p->rl[i].res, &p->rl[i].lim) != 0)
            say("setrlimit %d failed: %s", p->rl[i].res, strerror(errno));
    if (setgroups(p->ngroups, p->groups) != 0 || setgid(p->gid) != 0 || setuid(p->uid) != 0) {
        say("switching to uid %u gid %u failed: %s", p->uid, p->gid, strerror(errno));
        _exit(126);
    }
    if (chdir(p->cwd) != 0) {
        say("cwd %s: %s", p->cwd, strerror(errno));
        _exit(126);
    }
    p->args[p->nargs] = NULL;
    p->env[p->nenv] = NULL;
    environ = p->env;
    execvp(p->args[0], p->args);
    say("cannot run %s: %s", p->args[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
}

/* Runs the process and reaps every orphan until it ends; returns zone-init's report. */
static void run(struct proc_desc *p, char *report, size_t len)
{
    int status;
    pid_t child = fork(), w;
    if (child < 0) {
        snprintf(report, len, "exit:125");
        return;
    }
    if (child == 0)
        exec_process(p);
    while ((w = wait(&status)) != child)
        if (w < 0 && errno != EINTR) {
            snprintf(report, len, "exit:125");
            return;
        }
    if (WIFSIGNALED(status))
        snprintf(report, len, "signal:%d", WTERMSIG(status));
    else
        snprintf(report, len, "exit:%d", WEXITSTATUS(status));
}

int main(void)
{
    static struct proc_desc p;
    char report[32] = "exit:125";
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    console_stdio();
    load_modules();
    if (read_process(&p) == 0 && mount_root(&p) == 0) {
        if (p.hostname && sethostname(p.hostname, strlen(p.hostname)) != 0)
            say("sethostname failed: %s", strerror(errno));
        if (chdir(NEWROOT) != 0 || chroot(".") != 0)
            say("entering the root failed: %s", strerror(errno));
        else
            run(&p, report, sizeof(report));
    }
    sync();
    /* The kernel's power-off message would be the container's last line: console off first. */
    klogctl(6 /* SYSLOG_ACTION_CONSOLE_OFF */, NULL, 0);
    if (xs_write(XLCFG_EXIT_KEY, report) != 0)
        say("writing %s to xenstore failed", report);
    reboot(RB_POWER_OFF);
    return 0;
}
