/* main.c - vgpu-zone-runtime's command line: the OCI runtime commands an engine calls (create,
 * start, state, kill, delete, features, --version) with runc's global flags (--root, --log,
 * --log-format, --systemd-cgroup), each command a small function over the pieces in spec.c,
 * xlcfg.c, domain.c, admin.c, monitor.c and state.c. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "conf.h"
#include "domain.h"
#include "monitor.h"
#include "rlog.h"
#include "spec.h"
#include "state.h"
#include "xlcfg.h"

#define RUNTIME_VERSION "0.1.0"
#define OCI_VERSION "1.0.2"

struct ctx {
    const char *root;
    struct zconf conf;
};

struct opts {
    const char *bundle, *pid_file, *console_socket;
    int force, all;
    const char *pos[2];
    int npos;
};

/* Matches "--name VALUE" and "--name=VALUE" (also "-x VALUE" when short is given). */
static int opt_value(int argc, char **argv, int *i, const char *name, const char *shrt,
                     const char **out)
{
    size_t len = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, len) == 0 && a[len] == '=') {
        *out = a + len + 1;
        return 1;
    }
    if (strcmp(a, name) != 0 && !(shrt && strcmp(a, shrt) == 0))
        return 0;
    if (*i + 1 >= argc) {
        rlog_err("%s needs a value", name);
        exit(1);
    }
    *out = argv[++*i];
    return 1;
}

static int is_flag(const char *a, const char *name, const char *shrt)
{
    return strcmp(a, name) == 0 || (shrt && strcmp(a, shrt) == 0);
}

/* Command options; the flags engines pass that do not apply to a guest are accepted. */
static void parse_opts(int argc, char **argv, struct opts *o)
{
    const char *ignored;
    memset(o, 0, sizeof(*o));
    for (int i = 0; i < argc; i++) {
        if (opt_value(argc, argv, &i, "--bundle", "-b", &o->bundle) ||
            opt_value(argc, argv, &i, "--pid-file", NULL, &o->pid_file) ||
            opt_value(argc, argv, &i, "--console-socket", NULL, &o->console_socket) ||
            opt_value(argc, argv, &i, "--preserve-fds", NULL, &ignored))
            continue;
        if (is_flag(argv[i], "--force", "-f"))
            o->force = 1;
        else if (is_flag(argv[i], "--all", "-a"))
            o->all = 1;
        else if (is_flag(argv[i], "--no-pivot", NULL) || is_flag(argv[i], "--no-new-keyring", NULL))
            continue;
        else if (argv[i][0] == '-' && argv[i][1]) {
            rlog_err("unknown option %s", argv[i]);
            exit(1);
        } else if (o->npos < 2) {
            o->pos[o->npos++] = argv[i];
        } else {
            rlog_err("unexpected argument %s", argv[i]);
            exit(1);
        }
    }
}

static const char *need_id(const struct opts *o, const char *cmd)
{
    if (o->npos < 1 || !xlcfg_valid_id(o->pos[0])) {
        rlog_err("%s: a container id ([A-Za-z0-9][A-Za-z0-9_.-]{0,127}) is required", cmd);
        exit(1);
    }
    return o->pos[0];
}

static int write_pid_file(const char *path, pid_t pid)
{
    char tmp[PATH_MAX];
    FILE *f;
    int rc = 0;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    if (!(f = fopen(tmp, "we")))
        return -errno;
    fprintf(f, "%d", (int)pid);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        rc = -errno;
    return rc;
}

/* Sends the pty's master to the engine's console socket, as runc does. */
static int send_console(const char *sock, int master)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char cbuf[CMSG_SPACE(sizeof(int))] = {0}, name[] = "/dev/ptmx";
    struct iovec iov = {.iov_base = name, .iov_len = sizeof(name) - 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    int fd, rc = 0;
    if (strlen(sock) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, sock, strlen(sock));
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &master, sizeof(int));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || sendmsg(fd, &mh, 0) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Undoes whatever create got to, newest first; used by a failed create and by delete. */
static void release(struct ctx *g, struct zstate *st)
{
    char why[512];
    if (st->domid > 0 && dom_destroy(&g->conf, st->domid, why, sizeof(why)) < 0)
        rlog_err("container %s: destroying domain %d failed: %s", st->id, st->domid, why);
    if (st->pid > 0 && zstate_status(st) != ZS_STOPPED)
        kill(st->pid, SIGKILL);
    if (st->attached && admin_detach(g->conf.proxy_admin, st->zone, why, sizeof(why)) < 0)
        rlog_err("container %s: DETACH of zone %s failed: %s", st->id, st->zone, why);
    if (st->loopdev[0] && dom_loop_detach(st->loopdev) < 0)
        rlog_err("container %s: detaching %s failed: %s", st->id, st->loopdev, strerror(errno));
    if (zstate_remove(g->root, st->id) < 0)
        rlog_err("container %s: removing its state under %s failed", st->id, g->root);
}

struct create_files {
    char image[PATH_MAX], initrd[PATH_MAX], cfg[PATH_MAX], killed[PATH_MAX];
};

static int create_files(const char *root, const char *id, struct create_files *f)
{
    return zstate_path(root, id, "root.img", f->image, sizeof(f->image)) ||
           zstate_path(root, id, "initrd", f->initrd, sizeof(f->initrd)) ||
           zstate_path(root, id, "xl.cfg", f->cfg, sizeof(f->cfg)) ||
           zstate_path(root, id, "killed", f->killed, sizeof(f->killed)) ? -ENAMETOOLONG : 0;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    int rc = 0;
    if (!f)
        return -errno;
    if (fputs(text, f) < 0)
        rc = -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* The guest: root image on a loop device, initrd, xl config, paused domain, zone bound. */
static int build_guest(struct ctx *g, struct zstate *st, const struct zspec *s,
                       const struct create_files *f)
{
    struct xlcfg_disk disk = {.target = st->loopdev, .hotplug = g->conf.hotplug};
    char why[1024], cfg[4096];
    if (dom_make_root_image(&g->conf, s->root, f->image, why, sizeof(why)) < 0)
        return rlog_err("container %s: making its root image failed: %s", st->id, why), -1;
    if (dom_loop_attach(f->image, st->loopdev, sizeof(st->loopdev), why, sizeof(why)) < 0)
        return rlog_err("container %s: %s", st->id, why), -1;
    if (zstate_save(g->root, st) < 0 ||
        dom_make_initrd(&g->conf, s, f->initrd, why, sizeof(why)) < 0)
        return rlog_err("container %s: making its initrd failed: %s", st->id, why), -1;
    if (xlcfg_render(st->id, s, &g->conf, f->initrd, &disk, cfg, sizeof(cfg)) < 0 ||
        write_text(f->cfg, cfg) < 0)
        return rlog_err("container %s: writing its xl configuration failed", st->id), -1;
    if (dom_create_paused(&g->conf, f->cfg, st->id, &st->domid, why, sizeof(why)) < 0)
        return rlog_err("container %s: xl create failed: %s", st->id, why), -1;
    if (zstate_save(g->root, st) < 0)
        return rlog_err("container %s: saving its state failed", st->id), -1;
    if (!s->zone[0])
        return 0;
    if (admin_attach(g->conf.proxy_admin, s->zone, st->domid, why, sizeof(why)) < 0)
        return rlog_err("container %s: ATTACH %s xen=%d failed: %s", st->id, s->zone,
                        st->domid, why), -1;
    st->attached = 1;
    return zstate_save(g->root, st) < 0 ? -1 : 0;
}

/* The monitor, writing to stdout or to a pty whose master went to the console socket. */
static int start_monitor(struct zstate *st, const struct zspec *s,
                         const struct opts *o, const struct create_files *f, int lock)
{
    struct monitor_args ma = {.domid = st->domid, .out_fd = 1, .close_fd = lock,
                              .killed_file = f->killed};
    char why[512];
    int master = -1, slave = -1, rc;
    if (s->terminal) {
        if (openpty(&master, &slave, NULL, NULL, NULL) != 0 ||
            (rc = send_console(o->console_socket, master)) < 0)
            return rlog_err("container %s: handing a terminal to %s failed: %s", st->id,
                            o->console_socket, strerror(errno)), -1;
        ma.out_fd = slave;
    }
    st->pid = monitor_start(&ma, why, sizeof(why));
    if (master >= 0)
        close(master), close(slave);
    if (st->pid < 0)
        return st->pid = 0, rlog_err("container %s: %s", st->id, why), -1;
    st->pid_start = zstate_proc_start(st->pid);
    return 0;
}

static int cmd_create(struct ctx *g, int argc, char **argv)
{
    struct create_files f;
    struct zstate st = {.domid = -1};
    struct zspec s;
    struct opts o;
    char err[512], bundle[PATH_MAX];
    int lock;
    parse_opts(argc, argv, &o);
    const char *id = need_id(&o, "create");
    if (!realpath(o.bundle ? o.bundle : ".", bundle))
        return rlog_err("create %s: bundle %s: %s", id, o.bundle ? o.bundle : ".",
                        strerror(errno)), 1;
    if (zspec_load(bundle, NULL, &s, err, sizeof(err)) < 0)
        return rlog_err("create %s: bundle %s: %s", id, bundle, err), 1;
    if (s.terminal && !o.console_socket) {
        zspec_free(&s);
        return rlog_err("create %s: process.terminal needs --console-socket", id), 1;
    }
    if ((lock = zstate_create_dir(g->root, id)) < 0) {
        zspec_free(&s);
        return rlog_err("create %s: %s", id, lock == -EEXIST ? "container exists"
                        : strerror(-lock)), 1;
    }
    snprintf(st.id, sizeof(st.id), "%s", id);
    snprintf(st.bundle, sizeof(st.bundle), "%s", bundle);
    snprintf(st.zone, sizeof(st.zone), "%s", s.zone);
    st.created = (int64_t)time(NULL);
    if (create_files(g->root, id, &f) < 0 || (!s.sandbox && build_guest(g, &st, &s, &f) < 0) ||
        start_monitor(&st, &s, &o, &f, lock) < 0 || zstate_save(g->root, &st) < 0 ||
        (o.pid_file && write_pid_file(o.pid_file, st.pid) < 0)) {
        release(g, &st);
        zspec_free(&s);
        close(lock);
        return 1;
    }
    rlog_info("created container %s: domain %d, zone %s, monitor pid %d", id, st.domid,
              s.zone[0] ? s.zone : "(none)", (int)st.pid);
    zspec_free(&s);
    close(lock);
    return 0;
}

/* Locks and loads a container; exits with a message when it does not exist. */
static int open_container(struct ctx *g, const char *id, struct zstate *st, int quiet_missing)
{
    int lock = zstate_lock(g->root, id), rc;
    if (lock < 0) {
        if (!(quiet_missing && lock == -ENOENT))
            rlog_err("container %s does not exist", id);
        return -1;
    }
    if ((rc = zstate_load(g->root, id, st)) < 0) {
        rlog_err("container %s: its state cannot be read: %s", id, strerror(-rc));
        close(lock);
        return -1;
    }
    return lock;
}

static int cmd_start(struct ctx *g, int argc, char **argv)
{
    struct zstate st;
    struct opts o;
    char why[512];
    int lock, rc = 1;
    parse_opts(argc, argv, &o);
    if ((lock = open_container(g, need_id(&o, "start"), &st, 0)) < 0)
        return 1;
    if (zstate_status(&st) != ZS_CREATED)
        rlog_err("start %s: the container is %s, not created", st.id,
                 zstate_status_name(zstate_status(&st)));
    else if (st.domid > 0 && dom_unpause(&g->conf, st.domid, why, sizeof(why)) < 0)
        rlog_err("start %s: xl unpause %d failed: %s", st.id, st.domid, why);
    else if ((st.started = 1, zstate_save(g->root, &st)) < 0)
        rlog_err("start %s: saving its state failed", st.id);
    else
        rc = 0;
    close(lock);
    return rc;
}

static int cmd_state(struct ctx *g, int argc, char **argv)
{
    struct zstate st;
    struct opts o;
    enum zstatus status;
    json_t *j;
    char *text;
    int lock;
    parse_opts(argc, argv, &o);
    if ((lock = open_container(g, need_id(&o, "state"), &st, 0)) < 0)
        return 1;
    status = zstate_status(&st);
    close(lock);
    j = json_pack("{s:s, s:s, s:s, s:i, s:s, s:{}}", "ociVersion", OCI_VERSION, "id", st.id,
                  "status", zstate_status_name(status), "pid",
                  status == ZS_STOPPED ? 0 : (int)st.pid, "bundle", st.bundle, "annotations");
    if (!j || !(text = json_dumps(j, JSON_INDENT(2))))
        return rlog_err("state %s: out of memory", st.id), 1;
    printf("%s\n", text);
    free(text);
    json_decref(j);
    return 0;
}

static int parse_signal(const char *s)
{
    static const struct { const char *name; int sig; } names[] = {
        {"KILL", SIGKILL}, {"TERM", SIGTERM}, {"INT", SIGINT}, {"QUIT", SIGQUIT},
        {"HUP", SIGHUP}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"STOP", SIGSTOP},
        {"CONT", SIGCONT}, {"WINCH", SIGWINCH},
    };
    char *end;
    long v = strtol(s, &end, 10);
    if (*s && !*end)
        return v > 0 && v < 65 ? (int)v : -1;
    if (strncmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(names[i].name, s) == 0)
            return names[i].sig;
    return -1;
}

/* Signals that end a process by default end the guest: the domain is destroyed. */
static int ends_guest(int sig)
{
    return sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGQUIT ||
           sig == SIGHUP || sig == SIGUSR1 || sig == SIGUSR2;
}

static int cmd_kill(struct ctx *g, int argc, char **argv)
{
    struct create_files f;
    struct zstate st;
    struct opts o;
    char why[512] = "", num[16];
    int lock, sig, rc = 1;
    parse_opts(argc, argv, &o);
    const char *id = need_id(&o, "kill");
    if ((sig = parse_signal(o.npos > 1 ? o.pos[1] : "TERM")) < 0)
        return rlog_err("kill %s: unknown signal %s", id, o.pos[1]), 1;
    if ((lock = open_container(g, id, &st, 0)) < 0)
        return 1;
    if (zstate_status(&st) == ZS_STOPPED && !o.all) {
        rlog_err("kill %s: container not running", id);
    } else if (st.domid < 0) { /* a pod's sandbox: its monitor is all there is */
        rc = kill(st.pid, sig) == 0 || errno == ESRCH ? 0 : 1;
        if (rc)
            rlog_err("kill %s: signalling pid %d failed: %s", id, (int)st.pid, strerror(errno));
    } else if (!ends_guest(sig)) {
        rlog_warn("kill %s: signal %d is not delivered into a zone guest; ignored", id, sig);
        rc = 0;
    } else if (create_files(g->root, id, &f) == 0 &&
               (snprintf(num, sizeof(num), "%d", sig), write_text(f.killed, num)) == 0 &&
               dom_destroy(&g->conf, st.domid, why, sizeof(why)) == 0) {
        rlog_info("kill %s: signal %d: domain %d destroyed", id, sig, st.domid);
        rc = 0;
    } else {
        rlog_err("kill %s: destroying domain %d failed: %s", id, st.domid, why);
    }
    close(lock);
    return rc;
}

static int cmd_delete(struct ctx *g, int argc, char **argv)
{
    struct zstate st;
    struct opts o;
    int lock;
    parse_opts(argc, argv, &o);
    const char *id = need_id(&o, "delete");
    if ((lock = open_container(g, id, &st, o.force)) < 0)
        return o.force ? 0 : 1;
    if (!o.force && zstate_status(&st) == ZS_RUNNING) {
        close(lock);
        return rlog_err("delete %s: the container is running (kill it first, or --force)", id), 1;
    }
    release(g, &st);
    rlog_info("deleted container %s (domain %d)", id, st.domid);
    close(lock);
    return 0;
}

static int cmd_features(void)
{
    printf("{\n  \"ociVersionMin\": \"1.0.0\",\n  \"ociVersionMax\": \"" OCI_VERSION "\",\n"
           "  \"hooks\": [],\n  \"mountOptions\": [],\n"
           "  \"linux\": {\n    \"namespaces\": [],\n    \"capabilities\": [],\n"
           "    \"cgroup\": {\"v1\": false, \"v2\": false, \"systemd\": false},\n"
           "    \"seccomp\": {\"enabled\": false},\n    \"apparmor\": {\"enabled\": false},\n"
           "    \"selinux\": {\"enabled\": false}\n  },\n"
           "  \"annotations\": {\"dev.vgpu.zone.isolation\": \"xen-guest\"}\n}\n");
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: vgpu-zone-runtime [--root DIR] [--log FILE] [--log-format text|json] "
               "[--systemd-cgroup] COMMAND ...\n"
               "commands: create [--bundle DIR] [--pid-file FILE] [--console-socket SOCK] ID\n"
               "          start ID | state ID | kill ID [SIGNAL] | delete [--force] ID\n"
               "          features | --version\n");
}

int main(int argc, char **argv)
{
    struct ctx g = {.root = "/run/vgpu-zone-runtime"};
    const char *log = NULL, *fmt = "text", *ignored;
    char err[512];
    int i;
    zconf_defaults(&g.conf);
    for (i = 1; i < argc && argv[i][0] == '-'; i++) {
        if (opt_value(argc, argv, &i, "--root", NULL, &g.root) ||
            opt_value(argc, argv, &i, "--log", NULL, &log) ||
            opt_value(argc, argv, &i, "--log-format", NULL, &fmt) ||
            opt_value(argc, argv, &i, "--log-level", NULL, &ignored) ||
            opt_value(argc, argv, &i, "--criu", NULL, &ignored) ||
            opt_value(argc, argv, &i, "--rootless", NULL, &ignored))
            continue;
        if (is_flag(argv[i], "--version", "-v"))
            return printf("vgpu-zone-runtime version " RUNTIME_VERSION "\nspec: " OCI_VERSION
                          "\n"), 0;
        if (is_flag(argv[i], "--help", "-h"))
            return usage(stdout), 0;
        if (!is_flag(argv[i], "--systemd-cgroup", NULL) && !is_flag(argv[i], "--debug", NULL))
            return fprintf(stderr, "vgpu-zone-runtime: unknown global option %s\n", argv[i]), 1;
    }
    if (rlog_open(log, strcmp(fmt, "json") == 0, RLOG_INFO) < 0)
        fprintf(stderr, "vgpu-zone-runtime: cannot open log %s: %s\n", log, strerror(errno));
    if (i >= argc)
        return usage(stderr), 1;
    const char *cmd = argv[i++];
    if (strcmp(cmd, "features") == 0)
        return cmd_features();
    if (strcmp(cmd, "version") == 0)
        return printf("vgpu-zone-runtime version " RUNTIME_VERSION "\n"), 0;
    if (zconf_load(&g.conf, NULL, err, sizeof(err)) < 0)
        return rlog_err("%s", err), 1;
    static const struct { const char *name; int (*fn)(struct ctx *, int, char **); } cmds[] = {
        {"create", cmd_create}, {"start", cmd_start}, {"state", cmd_state},
        {"kill", cmd_kill},     {"delete", cmd_delete},
    };
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++)
        if (strcmp(cmd, cmds[k].name) == 0)
            return cmds[k].fn(&g, argc - i, argv + i);
    rlog_err("unknown command %s", cmd);
    return usage(stderr), 1;
}
