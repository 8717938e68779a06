/* proxy_ctl.c - a private gpu_proxy for the benchmarks: start pinned, admin requests, re-pin,
 * stop. The proxy is always started by us and stopped by its pid. */
#include "proxy_ctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One admin request; the answer, up to len-1 bytes, in reply: only its first line when
 * `all` is 0 (the server closes the connection after its answer either way). */
static int admin_exchange(const struct proxy *p, const char *request, char *reply, size_t len,
                          int all)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t got = 0;
    int fd, rc = 0;

    if (len == 0)
        return -EINVAL;
    reply[0] = '\0';
    if (strlen(p->admin) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, p->admin);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rc = -errno;
        goto out_fd;
    }
    {
        char line[512];
        int n = snprintf(line, sizeof(line), "%s\n", request);
        if (n < 0 || (size_t)n >= sizeof(line)) {
            rc = -EINVAL;
            goto out_fd;
        }
        ssize_t w = write(fd, line, (size_t)n);
        if (w != n) {
            rc = w < 0 ? -errno : -EIO;
            goto out_fd;
        }
    }
    while (got + 1 < len) {
        ssize_t r = read(fd, reply + got, len - 1 - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out_fd;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        reply[got] = '\0';
        if (!all && strchr(reply, '\n'))
            break;
    }
    reply[got] = '\0';
    if (!all)
        reply[strcspn(reply, "\n")] = '\0';
    rc = strncmp(reply, "OK", 2) == 0 ? 0 : -EREMOTEIO;
out_fd:
    close(fd);
    return rc;
}

int proxy_admin(const struct proxy *p, const char *request, char *reply, size_t len)
{
    return admin_exchange(p, request, reply, len, 0);
}

int proxy_zone_pid(const struct proxy *p, const char *zone, int *pid)
{
    char list[16384], *save = NULL;
    int rc = admin_exchange(p, "LIST", list, sizeof(list), 1);

    if (rc != 0)
        return rc;
    /* "<name> <quota> <used> <clients> key=value..." per zone (docs/CONTRACTS.md) */
    for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t nl = strlen(zone);
        const char *f = strstr(line, " pid=");
        if (strncmp(line, zone, nl) == 0 && line[nl] == ' ' && f) {
            *pid = atoi(f + 5);
            return *pid > 0 ? 0 : -ESRCH;
        }
    }
    return -ENOENT;
}

int proxy_start(struct proxy *p, const char *binary, const char *args, int cpu)
{
    char *argv[32];
    char *extra = NULL, joined[1024];
    int argc = 0, logfd;
    char reply[256];

    memset(p, 0, sizeof(*p));
    p->pid = -1;
    snprintf(p->dir, sizeof(p->dir), "/tmp/vgpu-bench-XXXXXX");
    if (!mkdtemp(p->dir)) {
        int e = errno;
        fprintf(stderr, "bench: mkdtemp for the proxy failed: %s\n", strerror(e));
        return -e;
    }
    snprintf(p->admin, sizeof(p->admin), "%s/admin.sock", p->dir);
    snprintf(p->log, sizeof(p->log), "%s/proxy.log", p->dir);
    argv[argc++] = (char *)binary;
    argv[argc++] = (char *)"--listen";
    argv[argc++] = p->dir;
    snprintf(joined, sizeof(joined), "%s %s", args ? args : "",
             getenv("BENCH_PROXY_ARGS") ? getenv("BENCH_PROXY_ARGS") : "");
    extra = strdup(joined);
    if (!extra)
        return -ENOMEM;
    for (char *save = NULL, *t = strtok_r(extra, " ", &save); t && argc < 30;
         t = strtok_r(NULL, " ", &save))
        argv[argc++] = t;
    argv[argc] = NULL;
    logfd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (logfd < 0) {
        int e = errno;
        fprintf(stderr, "bench: cannot create %s: %s\n", p->log, strerror(e));
        free(extra);
        return -e;
    }
    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0) {
        int e = errno;
        fprintf(stderr, "bench: fork for the proxy failed: %s\n", strerror(e));
        close(logfd);
        free(extra);
        return -e;
    }
    if (p->pid == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0 ||
            prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
            _exit(126);
        if (dup2(logfd, 2) < 0 || dup2(logfd, 1) < 0)
            _exit(126);
        execv(binary, argv);
        fprintf(stderr, "bench: exec %s failed: %s\n", binary, strerror(errno));
        _exit(127);
    }
    close(logfd);
    free(extra);
    for (int i = 0; i < 200; i++) {
        int st;
        if (proxy_admin(p, "PING", reply, sizeof(reply)) == 0)
            return 0;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            fprintf(stderr, "bench: %s exited at start-up (log %s)\n", binary, p->log);
            p->pid = -1;
            return -ECHILD;
        }
        sleep_ms(50);
    }
    fprintf(stderr, "bench: %s did not answer PING on %s within 10 s (log %s)\n", binary,
            p->admin, p->log);
    proxy_stop(p);
    return -ETIMEDOUT;
}

int proxy_add_zone(const struct proxy *p, const char *name, const char *quota, char *sock,
                   size_t len)
{
    char req[256], reply[512];
    int rc;

    snprintf(req, sizeof(req), "ADD %s %s", name, quota);
    rc = proxy_admin(p, req, reply, sizeof(reply));
    if (rc != 0) {
        fprintf(stderr, "bench: admin '%s' failed: %s\n", req,
                rc == -EREMOTEIO ? reply : strerror(-rc));
        return rc;
    }
    if (strlen(reply) < 4 || strlen(reply + 3) >= len)
        return -EPROTO;
    snprintf(sock, len, "%s", reply + 3);
    return 0;
}

/* Pins every thread of process pid to cpu; a process or thread that has just ended is no
 * error. */
static int pin_threads(pid_t pid, int cpu)
{
    char path[64];
    struct dirent *e;
    cpu_set_t set;
    DIR *d;
    int rc = 0;

    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    while ((e = readdir(d))) {
        int tid = atoi(e->d_name);
        if (tid <= 0)
            continue;
        if (sched_setaffinity(tid, sizeof(set), &set) != 0 && errno != ESRCH) {
            rc = -errno;
            fprintf(stderr, "bench: pinning proxy thread %d to cpu%d failed: %s\n", tid, cpu,
                    strerror(errno));
        }
    }
    closedir(d);
    return rc;
}

/* The parent pid from /proc/PID/stat ("pid (comm) state ppid ..."; comm may hold spaces and
 * parentheses, so parse after the last ')'), or -1. */
static pid_t parent_of(int pid)
{
    char path[64], buf[512];
    FILE *f;
    size_t n;
    char *rp;
    int ppid;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    rp = strrchr(buf, ')');
    if (!rp || sscanf(rp + 1, " %*c %d", &ppid) != 1)
        return -1;
    return ppid;
}

/* Pins the proxy: the supervisor's threads and every thread of its worker processes (the
 * supervisor forks one per zone; workers forked later inherit the supervisor's CPU). */
int proxy_pin(const struct proxy *p, int cpu)
{
    struct dirent *e;
    DIR *d;
    int rc = pin_threads(p->pid, cpu);

    d = opendir("/proc");
    if (!d)
        return -errno;
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid > 0 && parent_of(pid) == p->pid) {
            int r = pin_threads(pid, cpu);
            rc = rc ? rc : r;
        }
    }
    closedir(d);
    return rc;
}

void proxy_stop(struct proxy *p)
{
    char path[512];

    if (p->pid > 0) {
        int st;
        if (kill(p->pid, SIGTERM) != 0 && errno != ESRCH)
            fprintf(stderr, "bench: kill(%d) failed: %s\n", (int)p->pid, strerror(errno));
        for (int i = 0; i < 100; i++) {
            if (waitpid(p->pid, &st, WNOHANG) == p->pid)
                goto reaped;
            sleep_ms(50);
        }
        fprintf(stderr, "bench: proxy %d ignored SIGTERM for 5 s; killing it\n", (int)p->pid);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &st, 0);
reaped:
        p->pid = -1;
    }
    if (p->dir[0]) {
        /* Keep the log when it says something went wrong; remove the rest. */
        DIR *d = opendir(p->dir);
        struct dirent *e;
        int keep = 0;
        if (d) {
            while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                    continue;
                snprintf(path, sizeof(path), "%s/%s", p->dir, e->d_name);
                if (strcmp(e->d_name, "proxy.log") == 0 && getenv("BENCH_KEEP_LOGS")) {
                    keep = 1;
                    continue;
                }
                unlink(path);
            }
            closedir(d);
        }
        if (!keep)
            rmdir(p->dir);
        p->dir[0] = '\0';
    }
}
