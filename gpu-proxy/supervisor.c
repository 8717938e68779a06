/* supervisor.c - gpu_proxy's main process (see supervisor.h): zones, their listening sockets
 * and the life cycle of their worker processes (start, ready, retire after a fault, restart
 * after a crash with back-off, stop with a grace before SIGKILL), signals and sd_notify. It is
 * single-threaded, so fork() is safe, and it reads nothing a tenant wrote: a worker's figures
 * come from a page the worker publishes and are only displayed and summed (a worker's counters
 * are kept in its zone when it ends). Each zone's worker is moved into the zone's control group
 * (cgroup.c) before it runs. The admin socket (admin.c) and the metrics listener
 * (metrics_serve.c) are served on conn.c's connections, inside this process's poll loop. */
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "dispatch.h"
#include "idm_transport.h"
#include "log.h"
#include "metrics.h"
#include "monotime.h"
#include "sup_internal.h"
#include "worker.h"
#include "zone.h"

#define STOP_GRACE_MS 2000      /* a worker asked to stop is killed after this */
#define START_TIMEOUT_MS 60000  /* the first workers must be ready within this */
#define BACKOFF_MAX_MS 30000

/* ---- sd_notify, written here so no libsystemd is needed ---- */

static void sd_notify_msg(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t salen;
    size_t n;
    int fd;

    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return;
    n = strlen(path);
    if (n >= sizeof(sa.sun_path)) {
        log_warn("NOTIFY_SOCKET path is too long; not notifying systemd");
        return;
    }
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = 0; /* abstract namespace */
    salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("sd_notify: socket: %s", strerror(errno));
        return;
    }
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
        log_warn("sd_notify(%s): %s", msg, strerror(errno));
    close(fd);
}

/* ---- worker processes ---- */

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* In the child: closes every descriptor but stdio and the ones in keep[]. */
static void close_other_fds(int *keep, int n)
{
    int lo = 3;

    qsort(keep, (size_t)n, sizeof(*keep), cmp_int);
    for (int i = 0; i < n; i++) {
        if (keep[i] < lo)
            continue;
        if (keep[i] > lo && close_range((unsigned)lo, (unsigned)keep[i] - 1, 0) != 0)
            _exit(WORKER_EXIT_INIT);
        lo = keep[i] + 1;
    }
    if (close_range((unsigned)lo, ~0u, 0) != 0)
        _exit(WORKER_EXIT_INIT);
}

#define WORKER_GO 'G' /* supervisor -> new child: placed, go on */

static void child_main(struct sup *S, struct szone *z, int ctl_fd, struct worker_stats *st)
{
    int keep[2], n = 0;
    char go;
    struct worker_spec ws = {
        .cfg = S->cfg,
        .zone_name = z->name,
        .quota = z->quota,
        .zone_id = z->id,
        .posix = S->posix,
        .posix_l = z->l,
        .xen_domid = S->cfg->xen ? z->xen_domid : -1,
        .ctl_fd = ctl_fd,
        .stats = st,
        .generation = z->generation,
    };

    /* Nothing runs before the supervisor has placed this process in the zone's group. */
    if (recv(ctl_fd, &go, 1, 0) != 1 || go != WORKER_GO)
        _exit(WORKER_EXIT_INIT);
    keep[n++] = ctl_fd;
    if (z->l)
        keep[n++] = S->posix->listener_fd(z->l);
    close_other_fds(keep, n);
    worker_run(&ws);
}

/* Moves a new worker (waiting for WORKER_GO) into its zone's group; the kind it is in. */
static int place_child(struct sup *S, struct szone *z, pid_t pid)
{
    char err[PATH_MAX + 128];

    if (!z->cg_made)
        return CGROUP_NONE;
    if (cgroup_zone_attach(&S->cg, z->name, pid, err, sizeof(err)) != 0) {
        log_error("zone=%s: worker %d is not in the zone's cgroup (%s); it runs bounded by "
                  "rlimits only", z->name, (int)pid, err);
        return CGROUP_NONE;
    }
    return S->cg.kind;
}

int sup_spawn_worker(struct sup *S, struct szone *z)
{
    struct wproc *w = calloc(1, sizeof(*w));
    int sv[2];
    pid_t pid;

    if (w == NULL)
        return -ENOMEM;
    w->st = mmap(NULL, sizeof(*w->st), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (w->st == MAP_FAILED) {
        log_error("zone=%s: cannot map a page for the worker's figures: %s", z->name,
                  strerror(errno));
        free(w);
        return -ENOMEM;
    }
    w->st->magic = WORKER_STATS_MAGIC;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        int rc = -errno;
        log_error("zone=%s: socketpair for the worker: %s", z->name, strerror(errno));
        munmap(w->st, sizeof(*w->st));
        free(w);
        return rc;
    }
    pid = fork();
    if (pid < 0) {
        int rc = -errno;
        log_error("zone=%s: cannot fork a worker: %s", z->name, strerror(errno));
        close(sv[0]);
        close(sv[1]);
        munmap(w->st, sizeof(*w->st));
        free(w);
        return rc;
    }
    if (pid == 0) {
        close(sv[0]);
        child_main(S, z, sv[1], w->st);
    }
    close(sv[1]);
    w->cg = place_child(S, z, pid);
    if (send(sv[0], &(char){WORKER_GO}, 1, MSG_NOSIGNAL) != 1) {
        log_error("zone=%s: cannot release worker %d: %s; killing it", z->name, (int)pid,
                  strerror(errno));
        if (kill(pid, SIGKILL) != 0)
            log_error("zone=%s: SIGKILL to worker %d: %s", z->name, (int)pid, strerror(errno));
    }
    if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0)
        log_warn("zone=%s: O_NONBLOCK on the worker's control socket: %s", z->name,
                 strerror(errno));
    w->pid = pid;
    w->ctl_fd = sv[0];
    w->z = z;
    w->generation = z->generation++;
    w->state = WS_STARTING;
    w->started_ms = now_ms();
    w->next = z->workers;
    z->workers = w;
    log_info("zone=%s: worker %d started (generation %u)", z->name, (int)pid, w->generation);
    return 0;
}

void sup_stop_worker(struct wproc *w)
{
    if (w->kill_at)
        return;
    w->state = WS_STOPPING;
    w->kill_at = now_ms() + STOP_GRACE_MS;
    if (kill(w->pid, SIGTERM) != 0 && errno != ESRCH)
        log_error("zone=%s: SIGTERM to worker %d: %s", w->z->name, (int)w->pid,
                  strerror(errno));
}

/* The zone's worker that takes new clients, or NULL. */
struct wproc *sup_serving_worker(struct szone *z)
{
    for (struct wproc *w = z->workers; w; w = w->next)
        if (w->state == WS_STARTING || w->state == WS_READY)
            return w;
    return NULL;
}

static void copy_why(char *dst, size_t cap, const struct worker_stats *st)
{
    char tmp[sizeof(st->why)];

    /* The page is the worker's: copy it once, bound it, and keep printable bytes only. */
    memcpy(tmp, st->why, sizeof(tmp));
    tmp[sizeof(tmp) - 1] = 0;
    for (char *p = tmp; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    snprintf(dst, cap, "%s", tmp);
}

static void handle_note(struct sup *S, struct wproc *w)
{
    struct szone *z = w->z;
    char notes[16];
    ssize_t n = recv(w->ctl_fd, notes, sizeof(notes), MSG_DONTWAIT);

    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(w->ctl_fd); /* the worker is gone; SIGCHLD reaps it */
            w->ctl_fd = -1;
        }
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (notes[i] == WN_READY && w->state == WS_STARTING) {
            w->state = WS_READY;
            z->quick_failures = 0;
            if (S->total_mem == 0)
                S->total_mem = __atomic_load_n(&w->st->total_mem, __ATOMIC_RELAXED);
            sup_gpu_note(S, w);
            log_info("zone=%s: worker %d ready after %llu ms", z->name, (int)w->pid,
                     (unsigned long long)(now_ms() - w->started_ms));
        } else if (notes[i] == WN_RETIRING && w->state == WS_READY) {
            w->state = WS_RETIRING;
            z->faults++;
            copy_why(z->last_fault, sizeof(z->last_fault), w->st);
            log_warn("zone=%s: worker %d retires (%s); starting a fresh worker for new "
                     "connections", z->name, (int)w->pid, z->last_fault);
            if (!z->removing && !S->stopping && sup_spawn_worker(S, z) == 0)
                z->restarts++;
        } else if (notes[i] == WN_INIT_FAILED) {
            copy_why(z->last_fault, sizeof(z->last_fault), w->st);
        }
    }
}

static const char *exit_text(int status, char *buf, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(buf, cap, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "status 0x%x", status);
    return buf;
}

static void forget_worker(struct sup *S, struct wproc *w)
{
    struct szone *z = w->z;
    uint64_t peak = __atomic_load_n(&w->st->peak, __ATOMIC_RELAXED);

    for (struct wproc **pp = &z->workers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    S->dead_scrubbed += __atomic_load_n(&w->st->scrubbed_bytes, __ATOMIC_RELAXED);
    metrics_sum(&z->dead, &w->st->m);
    if (peak > z->dead_peak)
        z->dead_peak = peak;
    if (w->ctl_fd >= 0)
        close(w->ctl_fd);
    munmap(w->st, sizeof(*w->st));
    free(w);
}

/* A worker that was serving ended without being asked: start another (with back-off when it
 * keeps failing quickly). */
static void schedule_restart(struct szone *z, int init_failed, uint64_t lived_ms)
{
    uint64_t delay = 0;

    if (init_failed || lived_ms < 1000) {
        unsigned k = z->quick_failures < 15 ? z->quick_failures : 15;
        delay = 250ull << k;
        if (delay > BACKOFF_MAX_MS)
            delay = BACKOFF_MAX_MS;
        z->quick_failures++;
    }
    z->restart_at = now_ms() + delay;
    if (delay)
        log_warn("zone=%s: restarting its worker in %llu ms", z->name,
                 (unsigned long long)delay);
}

static void reap_children(struct sup *S)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct wproc *w = NULL;
        struct szone *z;
        char how[96];

        for (struct szone *zz = S->zones; zz && !w; zz = zz->next)
            for (struct wproc *ww = zz->workers; ww; ww = ww->next)
                if (ww->pid == pid) {
                    w = ww;
                    break;
                }
        if (w == NULL)
            continue;
        z = w->z;
        exit_text(status, how, sizeof(how));
        if (w->state == WS_STOPPING || w->state == WS_RETIRING) {
            log_info("zone=%s: worker %d ended (%s)", z->name, (int)pid, how);
        } else {
            int init_failed = WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_INIT;
            uint64_t lived = now_ms() - w->started_ms;
            if (!init_failed)
                snprintf(z->last_fault, sizeof(z->last_fault), "worker %s", how);
            log_error("zone=%s: worker %d ended unexpectedly (%s)%s%s", z->name, (int)pid, how,
                      init_failed ? ": " : "", init_failed ? z->last_fault : "");
            z->faults++;
            if (!z->removing && !S->stopping) {
                z->restarts++;
                schedule_restart(z, init_failed, lived);
            }
            if (S->starting && init_failed)
                S->start_failed = 1;
        }
        forget_worker(S, w);
        if (z->removing && z->workers == NULL)
            sup_zone_finish_remove(S, z);
    }
}

/* ---- zones ---- */

static struct szone *zone_find(struct sup *S, const char *name)
{
    for (struct szone *z = S->zones; z; z = z->next)
        if (strcmp(z->name, name) == 0)
            return z;
    return NULL;
}

struct szone *sup_zone_get(struct sup *S, const char *name)
{
    return zone_find(S, name);
}

/* The zone's control group, when the proxy has a hierarchy; a zone without one is logged. */
static void zone_make_cgroup(struct sup *S, struct szone *z)
{
    char err[PATH_MAX + 128];

    if (S->cg.kind == CGROUP_NONE)
        return;
    if (cgroup_zone_create(&S->cg, z->name, S->cfg->sandbox.memory_max, err, sizeof(err)) != 0) {
        log_error("zone=%s: no cgroup for its workers (%s); they run bounded by rlimits only",
                  z->name, err);
        return;
    }
    z->cg_made = 1;
}

int sup_zone_add(struct sup *S, const char *name, uint64_t quota, int32_t xen_domid)
{
    struct szone *z;
    int rc;

    if (!zone_name_valid(name))
        return -EINVAL;
    if (zone_find(S, name))
        return -EEXIST;
    z = calloc(1, sizeof(*z));
    if (z == NULL)
        return -ENOMEM;
    snprintf(z->name, sizeof(z->name), "%s", name);
    z->quota = quota;
    z->xen_domid = xen_domid;
    z->id = S->next_zone_id++;
    if (S->cfg->listen_dir[0]) {
        snprintf(z->path, sizeof(z->path), "%s/%s.sock", S->cfg->listen_dir, name);
        rc = S->posix->listen(z->path, NULL, &z->l);
        if (rc != 0) {
            log_error("zone=%s: cannot listen on %s: %s", name, z->path, strerror(-rc));
            free(z);
            return rc;
        }
    }
    zone_make_cgroup(S, z);
    rc = sup_spawn_worker(S, z);
    if (rc != 0) {
        if (z->cg_made)
            cgroup_zone_remove(&S->cg, z->name);
        if (z->l)
            S->posix->listener_close(z->l);
        free(z);
        return rc;
    }
    z->next = S->zones;
    S->zones = z;
    if (quota)
        log_info("zone=%s: added, quota %llu bytes, socket %s", name,
                 (unsigned long long)quota, z->l ? z->path : "(none)");
    else
        log_info("zone=%s: added, no quota, socket %s", name, z->l ? z->path : "(none)");
    return 0;
}

int sup_zone_bind_xen(struct sup *S, struct szone *z, int32_t domid)
{
    int32_t was = z->xen_domid;
    int rc;

    if (!S->cfg->xen)
        return -EOPNOTSUPP;
    if (z->removing || (domid >= 0 && was >= 0))
        return -EBUSY;
    if (domid < 0 && was < 0)
        return -ENOENT;
    for (struct szone *o = S->zones; o && domid >= 0; o = o->next)
        if (o != z && o->xen_domid == domid)
            return -EEXIST;
    z->xen_domid = domid;
    for (struct wproc *w = z->workers; w; w = w->next)
        sup_stop_worker(w);
    z->restart_at = 0;
    if ((rc = sup_spawn_worker(S, z)) != 0) {
        log_error("zone=%s: no worker for domain %d: %s; the zone has none until it is bound "
                  "again", z->name, (int)domid, strerror(-rc));
        return rc;
    }
    if (domid >= 0)
        log_info("zone=%s: bound to Xen domain %d", z->name, (int)domid);
    else
        log_info("zone=%s: unbound from Xen domain %d", z->name, (int)was);
    return 0;
}

/* No new clients; the workers are asked to stop (killed after a grace). The zone goes once
 * they have all ended; ac (or NULL) then gets the answer. Never waits here. */
void sup_zone_remove(struct sup *S, struct szone *z, struct sconn *ac)
{
    z->removing = 1;
    z->remove_conn = ac;
    z->restart_at = 0;
    if (z->l) {
        S->posix->listener_close(z->l);
        z->l = NULL;
    }
    for (struct wproc *w = z->workers; w; w = w->next)
        sup_stop_worker(w);
    if (z->workers == NULL)
        sup_zone_finish_remove(S, z);
}

void sup_zone_finish_remove(struct sup *S, struct szone *z)
{
    for (struct szone **pp = &S->zones; *pp; pp = &(*pp)->next)
        if (*pp == z) {
            *pp = z->next;
            break;
        }
    if (z->cg_made)
        cgroup_zone_remove(&S->cg, z->name);
    if (z->remove_conn)
        conn_answer_str(z->remove_conn, S->stopping ? "ERR proxy stopping\n" : "OK\n");
    log_info("zone=%s: removed", z->name);
    free(z);
}

/* ---- the main loop ---- */

static void handle_signal(struct sup *S)
{
    struct signalfd_siginfo si;

    while (read(S->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            log_info("signal %u: shutting down", si.ssi_signo);
            S->stopping = 1;
        }
    }
    reap_children(S); /* SIGCHLD, or a worker ended while we looked elsewhere */
}

/* Kills workers past their grace and starts the restarts that are due; returns the poll
 * timeout until the next such deadline (-1: none). */
static int run_timers(struct sup *S)
{
    uint64_t now = now_ms(), next = UINT64_MAX;

    for (struct szone *z = S->zones; z; z = z->next) {
        for (struct wproc *w = z->workers; w; w = w->next) {
            if (w->kill_at && now >= w->kill_at && !w->killed) {
                log_warn("zone=%s: worker %d did not stop within %d ms; killing it", z->name,
                         (int)w->pid, STOP_GRACE_MS);
                if (kill(w->pid, SIGKILL) != 0 && errno != ESRCH)
                    log_error("zone=%s: SIGKILL to worker %d: %s", z->name, (int)w->pid,
                              strerror(errno));
                w->killed = 1;
            } else if (w->kill_at && !w->killed && w->kill_at < next) {
                next = w->kill_at;
            }
        }
        if (z->restart_at && !z->removing && !S->stopping) {
            if (now >= z->restart_at) {
                z->restart_at = 0;
                if (sup_serving_worker(z) == NULL && sup_spawn_worker(S, z) != 0)
                    z->restart_at = now + 1000;
            }
            if (z->restart_at && z->restart_at < next)
                next = z->restart_at;
        }
    }
    if (next == UINT64_MAX)
        return -1;
    return next <= now ? 0 : (int)(next - now);
}

#define MAX_POLL 1024

static int earliest(int a, int b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* One round of waiting: signals, the admin socket and its connections, the workers' notes. */
static void poll_once(struct sup *S, int timeout)
{
    struct pollfd pfd[MAX_POLL];
    struct wproc *ws[MAX_POLL];
    nfds_t n = 0, first_worker;

    timeout = earliest(timeout, run_timers(S));
    pfd[n++] = (struct pollfd){.fd = S->signal_fd, .events = POLLIN};
    timeout = earliest(timeout, conn_poll_add(&S->admin, S->starting, pfd, &n, MAX_POLL));
    timeout = earliest(timeout, conn_poll_add(&S->metrics, S->starting, pfd, &n, MAX_POLL));
    first_worker = n;
    for (struct szone *z = S->zones; z; z = z->next)
        for (struct wproc *w = z->workers; w && n < MAX_POLL; w = w->next)
            if (w->ctl_fd >= 0) {
                ws[n] = w;
                pfd[n++] = (struct pollfd){.fd = w->ctl_fd, .events = POLLIN};
            }
    if (poll(pfd, n, timeout) < 0) {
        if (errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            S->stopping = 1;
        }
        return;
    }
    /* Notes before signals: a worker's last note is read before SIGCHLD forgets it. */
    for (nfds_t i = first_worker; i < n; i++)
        if (pfd[i].revents)
            handle_note(S, ws[i]);
    if (pfd[0].revents)
        handle_signal(S);
    conn_poll_done(S, &S->admin, pfd, !S->stopping);
    conn_poll_done(S, &S->metrics, pfd, !S->stopping);
}

/* Waits until every first worker is ready; 0, or -1 when one failed or took too long. */
static int await_first_workers(struct sup *S)
{
    uint64_t deadline = now_ms() + START_TIMEOUT_MS;

    S->starting = 1;
    for (;;) {
        int waiting = 0;
        uint64_t now = now_ms();
        for (struct szone *z = S->zones; z; z = z->next)
            for (struct wproc *w = z->workers; w; w = w->next)
                waiting += w->state == WS_STARTING;
        if (S->start_failed || S->stopping)
            break;
        if (!waiting) {
            S->starting = 0;
            return 0;
        }
        if (now >= deadline) {
            log_error("the zones' workers were not ready within %d s", START_TIMEOUT_MS / 1000);
            break;
        }
        poll_once(S, (int)(deadline - now));
    }
    S->starting = 0;
    return -1;
}

/* Stops every worker (SIGKILL after the grace) and removes every zone. */
static void shutdown_all(struct sup *S)
{
    S->stopping = 1;
    for (struct szone *z = S->zones, *next; z; z = next) {
        next = z->next;
        sup_zone_remove(S, z, z->remove_conn);
    }
    while (S->zones)
        poll_once(S, 100);
}

static int setup_signals(struct sup *S)
{
    sigset_t mask;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
        log_error("blocking SIGTERM/SIGINT/SIGCHLD failed: %s", strerror(errno));
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    S->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (S->signal_fd < 0) {
        log_error("signalfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int add_configured_zones(struct sup *S)
{
    const struct server_config *cfg = S->cfg;
    int rc;

    for (unsigned i = 0; i < cfg->nzones; i++) {
        int32_t domid = -1;
        for (unsigned k = 0; k < cfg->nxen_zones; k++)
            if (strcmp(cfg->xen_zones[k].name, cfg->zones[i].name) == 0)
                domid = cfg->xen_zones[k].domid;
        rc = sup_zone_add(S, cfg->zones[i].name, cfg->zones[i].quota, domid);
        if (rc != 0) {
            log_error("zone=%s: cannot be created: %s", cfg->zones[i].name,
                      rc == -EEXIST ? "the name is used twice" : strerror(-rc));
            return rc;
        }
    }
    for (unsigned i = 0; i < cfg->nxen_zones; i++) {
        const struct xen_zone_cfg *x = &cfg->xen_zones[i];
        struct szone *z = zone_find(S, x->name);
        if (z) {
            if (z->xen_domid != x->domid) {
                log_error("zone=%s: is bound to domain %d already; one domain per zone", x->name,
                          z->xen_domid);
                return -EEXIST;
            }
            continue;
        }
        rc = sup_zone_add(S, x->name, x->quota, x->domid);
        if (rc != 0) {
            log_error("zone=%s: cannot be created for domain %d: %s", x->name, x->domid,
                      strerror(-rc));
            return rc;
        }
    }
    return 0;
}

int supervisor_run(const struct server_config *cfg)
{
    static struct sup S;
    int status = 1;

    memset(&S, 0, sizeof(S));
    S.cfg = cfg;
    conn_server_init(&S.admin, "admin");
    conn_server_init(&S.metrics, "metrics");
    S.signal_fd = -1;
    S.next_zone_id = 1;
    if (dispatch_selfcheck() != 0)
        return 1;
    S.posix = idm_transport_by_name("posix");
    if (S.posix == NULL) {
        log_error("the POSIX transport is missing from libidm");
        return 1;
    }
    if (cfg->xen && idm_transport_by_name("xen") == NULL) {
        log_error("--xen: this build of libidm has no Xen transport");
        return 1;
    }
    if (setup_signals(&S) != 0)
        return 1;
    if (mkdir(cfg->listen_dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create the listen directory %s: %s", cfg->listen_dir, strerror(errno));
        goto close_signal;
    }
    cgroup_setup(&S.cg, cfg->cgroup);
    if (add_configured_zones(&S) != 0 || await_first_workers(&S) != 0) {
        log_error("gpu_proxy cannot start: %s",
                  S.zones && S.zones->last_fault[0] ? S.zones->last_fault : "see above");
        goto stop_zones;
    }
    if (admin_open(&S) != 0 || metrics_open(&S) != 0)
        goto stop_zones;
    if (S.metrics.fd >= 0)
        log_info("metrics: Prometheus text format at /metrics on %s", cfg->metrics);
    if (cfg->xen)
        log_info("xen: serving guests under xenstore %s", cfg->xen_path);
    log_info("gpu_proxy %s ready: backend=%s, listening in %s", GPU_PROXY_VERSION,
             cfg->be->name, cfg->listen_dir);
    sd_notify_msg("READY=1");
    while (!S.stopping)
        poll_once(&S, -1);
    sd_notify_msg("STOPPING=1");
    log_info("stopping: stopping the workers and releasing zones");
    status = 0;
stop_zones:
    shutdown_all(&S);
    conn_server_close(&S.metrics);
    conn_server_close(&S.admin);
    cgroup_teardown(&S.cg);
close_signal:
    close(S.signal_fd);
    log_info("gpu_proxy exits with status %d (scrubbed %llu bytes in all)", status,
             (unsigned long long)S.dead_scrubbed);
    return status;
}
