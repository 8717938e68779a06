/* monitor.c - the process an engine waits on (see monitor.h). It opens the guest's console pty
 * (its path is in xenstore, put there by xenconsoled) before the guest runs, so no output is
 * lost, then copies it until zone-init's exit report appears or the domain is gone. */
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xenstore.h>

#include "xlcfg.h"

int monitor_exit_status(const char *r)
{
    char *end;
    long v;
    int sig = strncmp(r, "signal:", 7) == 0;
    if (!sig && strncmp(r, "exit:", 5) != 0)
        return -1;
    errno = 0;
    v = strtol(r + (sig ? 7 : 5), &end, 10);
    if (errno || *end || end == r + (sig ? 7 : 5) || v < 0 || v > (sig ? 64 : 255))
        return -1;
    return sig ? 128 + (int)v : (int)v;
}

static char *xs_get(struct xs_handle *xs, int domid, const char *rel)
{
    char path[128];
    unsigned len;
    snprintf(path, sizeof(path), "/local/domain/%d/%s", domid, rel);
    return xs_read(xs, XBT_NULL, path, &len);
}

static int open_console(struct xs_handle *xs, int domid, char *why, size_t whylen)
{
    struct termios t;
    char *tty = NULL;
    int fd, i;
    for (i = 0; i < 200 && !(tty = xs_get(xs, domid, "console/tty")); i++)
        usleep(50000);
    if (!tty) {
        snprintf(why, whylen, "domain %d has no console/tty in xenstore after 10 s (is "
                 "xenconsoled running?)", domid);
        return -1;
    }
    fd = open(tty, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "opening domain %d's console %s: %s", domid, tty, strerror(errno));
        free(tty);
        return -1;
    }
    free(tty);
    if (tcgetattr(fd, &t) == 0) {
        cfmakeraw(&t);
        tcsetattr(fd, TCSANOW, &t);
    }
    return fd;
}

/* Copies what the console has now; 1 if anything was copied. */
static int relay(int in, int out)
{
    char buf[4096];
    int copied = 0;
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        for (ssize_t off = 0, w; off < n; off += w > 0 ? w : 0)
            if ((w = write(out, buf + off, (size_t)(n - off))) < 0 && errno != EINTR)
                return copied; /* the reader went away: keep waiting for the status */
        copied = 1;
    }
    return copied;
}

static int killed_status(const char *file)
{
    char buf[16] = {0};
    int fd = open(file, O_RDONLY | O_CLOEXEC), sig;
    ssize_t n;
    if (fd < 0)
        return 128 + SIGKILL;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    sig = n > 0 ? atoi(buf) : SIGKILL;
    return 128 + (sig > 0 && sig < 65 ? sig : SIGKILL);
}

static void drain(int con, int out)
{
    struct pollfd p = {.fd = con, .events = POLLIN};
    for (int quiet = 0, i = 0; quiet < 3 && i < 40; i++) {
        poll(&p, 1, 50);
        quiet = relay(con, out) ? 0 : quiet + 1;
    }
}

static void monitor_loop(struct xs_handle *xs, int con, const struct monitor_args *a)
{
    struct pollfd p = {.fd = con, .events = POLLIN};
    for (;;) {
        char *report, *dom;
        int ready = poll(&p, 1, 100) > 0;
        /* A hung-up pty (xenconsoled let go) polls ready at once: do not spin on it. */
        if (!(ready && (p.revents & POLLIN) && relay(con, a->out_fd)) && ready)
            usleep(100000);
        if ((report = xs_get(xs, a->domid, XLCFG_EXIT_KEY)) != NULL) {
            int status = monitor_exit_status(report);
            free(report);
            drain(con, a->out_fd);
            _exit(status < 0 ? 255 : status);
        }
        if (!(dom = xs_get(xs, a->domid, "domid")))
            _exit(killed_status(a->killed_file));
        free(dom);
    }
}

pid_t monitor_start(const struct monitor_args *a, char *why, size_t whylen)
{
    char msg[512] = {0};
    int fds[2], con;
    ssize_t n;
    pid_t pid;
    if (pipe2(fds, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
        snprintf(why, whylen, "starting the monitor: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        struct xs_handle *xs;
        close(fds[0]);
        if (a->close_fd >= 0)
            close(a->close_fd);
        setsid();
        if (a->domid < 0) { /* a pod's sandbox: no guest; it lives until it is signalled */
            if (write(fds[1], "", 1) != 1)
                _exit(125);
            for (;;)
                pause();
        }
        signal(SIGPIPE, SIG_IGN);
        if (!(xs = xs_open(0)))
            snprintf(msg, sizeof(msg), "monitor: cannot open xenstore: %s", strerror(errno));
        else if ((con = open_console(xs, a->domid, msg, sizeof(msg))) >= 0)
            msg[0] = 0;
        if (write(fds[1], msg[0] ? msg : "", msg[0] ? strlen(msg) : 1) < 0 || msg[0])
            _exit(125);
        close(fds[1]);
        monitor_loop(xs, con, a);
    }
    close(fds[1]);
    n = read(fds[0], msg, sizeof(msg) - 1);
    close(fds[0]);
    if (n == 1 && msg[0] == 0)
        return pid;
    snprintf(why, whylen, "%s", n > 0 ? msg : "the monitor exited before it was ready");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}
