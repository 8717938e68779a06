/* worker.c - one zone's worker process (see worker.h): starts the zone's backend instance,
 * accepts the zone's clients (POSIX: on the socket the supervisor bound; Xen: the offers of the
 * zone's domain only, whose grants it maps itself), serves each client on its own thread, and
 * publishes its figures to the supervisor. When a sticky execution fault loses the backend's
 * context (a real GPU), the worker retires: it stops accepting, every later call of its clients
 * gets the fault, the supervisor starts a fresh worker for new connections, and this one exits
 * once its clients have gone (or after a grace). */
#include "worker.h"

#include <cuda.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dispatch.h"
#include "log.h"
#include "monotime.h"
#include "nvml.h"
#include "sandbox.h"
#include "stream.h"
#include "zone.h"

#define STOP_POLL_MS 200         /* how soon an idle client thread sees a stop request */
#define REPLY_TIMEOUT_MS 5000    /* a client that drains no reply for this long is cut off */
#define RETIRE_GRACE_MS 10000    /* a retired worker waits this long for its clients to leave */
#define STOP_GRACE_MS 1500       /* client threads get this long to end at a stop */
#define ORPHAN_GRACE_MS 2000     /* a gone client's work may run this long before the worker
                                  * ends to stop it (backends that cannot cancel kernels) */
#define ORPHAN_RETIRE_MS 500     /* ... and the other clients this long to hear why */

struct worker;

struct client {
    struct worker *w;
    struct idm_conn *conn;
    pthread_t thread;
    int stop;  /* atomic: asks the thread to end */
    int done;  /* set by the thread when it has released everything (under w->lock) */
    int busy;            /* atomic: serving a request or releasing its session (set only
                          * where the backend cannot cancel kernels: check_orphans) */
    int closing;         /* atomic: the client is gone and its session is being released */
    uint64_t gone_since; /* main thread: when check_orphans first saw it gone while busy */
    char peer[64];
    struct client *next;
};

struct worker {
    const struct worker_spec *ws;
    const struct backend_ops *be;
    struct zone_registry reg;
    struct zone *zone;
    const struct idm_transport *xen;
    struct idm_listener *xen_l;
    int wake_fd;   /* eventfd: a client ended or hit a sticky fault */
    int signal_fd;
    pthread_mutex_t lock;
    struct client *clients;
    int fatal;     /* atomic: the sticky CUresult that retired the worker, 0 while healthy */
    char fatal_why[160];
    int retire_grace_ms; /* how long a retiring worker waits for its clients to leave */
    int stopping;
    int nvml;      /* NVML is open for the device (nvml.c) */
};

static void notify_supervisor(struct worker *w, char note)
{
    ssize_t n;

    do {
        n = send(w->ws->ctl_fd, &note, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        log_warn("zone=%s: telling the supervisor '%c' failed: %s", w->ws->zone_name, note,
                 n < 0 ? strerror(errno) : "short write");
}

static void wake_main(struct worker *w)
{
    uint64_t one = 1;

    if (write(w->wake_fd, &one, sizeof(one)) < 0)
        log_error("zone=%s: waking the worker's main loop failed: %s", w->ws->zone_name,
                  strerror(errno));
}

static void retire(struct worker *w, struct client *cl, int status, const char *why);

/* The CUresults after which CUDA documents the context (on a real GPU, the process's use of
 * the device) as lost: "the process must be terminated and relaunched". */
static int loses_context(int32_t status)
{
    switch (status) {
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
    case CUDA_ERROR_ASSERT:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_LAUNCH_FAILED:
        return 1;
    default:
        return 0;
    }
}

/* ---- replies: one send path for every reply, with a timeout ---- */

static int reply_send(struct client *cl, const struct idm_hdr *req, int32_t status,
                      const void *payload, uint32_t len)
{
    struct idm_hdr rh;
    int rc;

    memset(&rh, 0, sizeof(rh));
    rh.op = req->op;
    rh.flags = IDM_F_REPLY | (req->flags & IDM_F_ASYNC);
    rh.zone = cl->w->zone->id;
    rh.seq = req->seq;
    rh.status = status;
    /* Whichever call reports it (a launch, a synchronisation, a copy), such a fault has cost
     * this worker its context when the backend is a real GPU. */
    if (loses_context(status) && cl->w->be->fault_loses_context)
        retire(cl->w, cl, status, "a sticky fault");
    rc = idm_send_timed(cl->conn, &rh, payload, len, NULL, 0, REPLY_TIMEOUT_MS);
    if (rc == -EAGAIN) {
        log_warn("zone=%s %s: the client drained no reply for %d ms; cutting it off",
                 cl->w->ws->zone_name, cl->peer, REPLY_TIMEOUT_MS);
        __atomic_store_n(&cl->stop, 1, __ATOMIC_RELEASE);
        rc = -ETIMEDOUT;
    }
    if (LOG_ENABLED(LOG_TRACE)) {
        char line[512];
        log_trace("zone=%s %s: reply %s -> %d", cl->w->ws->zone_name, cl->peer,
                  idm_trace_format(&rh, payload, line, sizeof(line)), rc);
    }
    return rc;
}

/* Replies for requests a stream worker finished (called from the stream's thread). */
static int deferred_reply(void *ctx, const struct idm_hdr *req, int32_t status,
                          const void *payload, uint32_t len)
{
    return reply_send(ctx, req, status, payload, len);
}

/* On a real GPU a sticky fault in any session retires the whole worker: the context (and with
 * it the process's use of the device) is lost, and the zone has one context. So does a kernel
 * left running by a client that has gone: only ending the context stops it. */
static void retire(struct worker *w, struct client *cl, int status, const char *why)
{
    int expected = 0;

    if (!__atomic_compare_exchange_n(&w->fatal, &expected, status, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&w->lock);
    snprintf(w->fatal_why, sizeof(w->fatal_why), "%s (CUresult %d) in client %s", why, status,
             cl->peer);
    pthread_mutex_unlock(&w->lock);
    log_error("zone=%s %s: %s (CUresult %d): this worker retires; its clients get the error, new "
              "connections go to a fresh worker", w->ws->zone_name, cl->peer, why, status);
    wake_main(w);
}

/* A backend that cannot cancel kernels (a real GPU): a client seen gone while its request or
 * its session's release still waits on the GPU, and still so ORPHAN_GRACE_MS later, left a
 * kernel running; the worker retires so that its context, and the kernel, end. */
static void check_orphans(struct worker *w)
{
    uint64_t now = now_ms();

    if (w->be->kernels_cancellable || __atomic_load_n(&w->fatal, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&w->lock);
    for (struct client *cl = w->clients; cl; cl = cl->next) {
        int gone = !cl->done && __atomic_load_n(&cl->busy, __ATOMIC_ACQUIRE) &&
                   (__atomic_load_n(&cl->closing, __ATOMIC_ACQUIRE) ||
                    idm_conn_check(cl->conn) != 0);
        if (!gone) {
            cl->gone_since = 0; /* idle, done, or waiting for its own work while connected */
            continue;
        }
        if (cl->gone_since == 0)
            cl->gone_since = now;
        if (now - cl->gone_since < ORPHAN_GRACE_MS)
            continue;
        pthread_mutex_unlock(&w->lock);
        w->retire_grace_ms = ORPHAN_RETIRE_MS;
        retire(w, cl, CUDA_ERROR_LAUNCH_TIMEOUT,
               "the client left with work still running on the GPU, which cannot be stopped "
               "but by ending the context");
        return;
    }
    pthread_mutex_unlock(&w->lock);
}

static int serve_one(struct client *cl, struct session *s, struct idm_msg *m)
{
    struct worker *w = cl->w;
    int fatal = __atomic_load_n(&w->fatal, __ATOMIC_ACQUIRE);
    uint32_t rep_len = 0;
    int32_t status;
    int rc;

    if (fatal && (m->hdr.flags & IDM_F_NOREPLY)) {
        /* its next synchronising call gets the fault, as every answered call does; a window
         * range it names is the client's again at once */
        session_win_hold(s, m->idx);
        session_win_release(s, m->idx);
        return 0;
    }
    if (fatal)
        return reply_send(cl, &m->hdr, fatal, NULL, 0);
    s->rx_idx = m->idx;
    rc = dispatch_request(s, &m->hdr, m->payload, &rep_len, &status);
    if (rc == 1)
        return 0; /* a stream worker replies, or the request goes unanswered */
    if (rc != 0)
        return -EPROTO;
    return reply_send(cl, &m->hdr, status, s->rbuf, rep_len);
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct worker *w = cl->w;
    struct session *s = NULL;
    struct idm_msg m;
    uint64_t wsize = 0;
    void *window = idm_window(cl->conn, &wsize);
    const char *why = "client disconnected";
    int watch = !w->be->kernels_cancellable; /* check_orphans looks at this client */
    unsigned batch = 0;
    int rc;

    idm_msg_init(&m);
    rc = session_open(w->zone, cl->conn, window, wsize, idm_max_payload(cl->conn), cl->peer, &s);
    if (rc != 0) {
        log_error("zone=%s %s: cannot open a session: %s", w->ws->zone_name, cl->peer,
                  strerror(-rc));
        goto out;
    }
    s->send_reply = deferred_reply;
    s->reply_ctx = cl;
    log_info("zone=%s %s: client connected (window %llu bytes)", w->ws->zone_name, cl->peer,
             (unsigned long long)wsize);
    for (;;) {
        int sticky;
        /* Requests are drained in runs: the streams given work are woken once the ring is
         * empty (or every STREAM_KICK_BATCH requests), not once per request. A bounded wait,
         * so a stop request is seen within STOP_POLL_MS even when idle. */
        if (!idm_recv_ready(cl->conn) || ++batch >= STREAM_KICK_BATCH) {
            session_kick(s);
            batch = 0;
        }
        rc = idm_recv(cl->conn, &m, STOP_POLL_MS);
        if (__atomic_load_n(&cl->stop, __ATOMIC_ACQUIRE)) {
            why = "the client was cut off, or the zone is stopping";
            break;
        }
        if (rc == 0) {
            if (watch)
                __atomic_store_n(&cl->busy, 1, __ATOMIC_RELEASE);
            rc = serve_one(cl, s, &m);
            if (watch)
                __atomic_store_n(&cl->busy, 0, __ATOMIC_RELEASE);
        }
        sticky = __atomic_load_n(&s->sticky, __ATOMIC_ACQUIRE);
        if (sticky && w->be->fault_loses_context)
            retire(w, cl, sticky, "a sticky fault"); /* e.g. a stream's, not yet reported */
        if (rc == -EAGAIN)
            continue;
        if (rc == -EPROTO && idm_conn_error(cl->conn)[0] == 0) {
            why = "protocol violation";
            break;
        }
        if (rc == -ETIMEDOUT) {
            why = "it stopped draining its replies";
            break;
        }
        if (rc != 0) {
            why = rc == -EPROTO ? idm_conn_error(cl->conn)
                  : rc == -EPIPE ? "client disconnected" : strerror(-rc);
            break;
        }
    }
    log_info("zone=%s %s: session ends (%s); releasing its objects", w->ws->zone_name,
             cl->peer, why);
    __atomic_store_n(&cl->closing, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&cl->busy, watch, __ATOMIC_RELEASE);
    session_close(s);
out:
    idm_msg_free(&m);
    pthread_mutex_lock(&w->lock);
    cl->done = 1;
    pthread_mutex_unlock(&w->lock);
    wake_main(w);
    return NULL;
}

static void client_start(struct worker *w, struct idm_conn *c)
{
    const struct idm_peer *peer = idm_conn_peer(c);
    struct client *cl = calloc(1, sizeof(*cl));
    int rc;

    if (cl == NULL) {
        log_error("zone=%s: no memory for a new client; closing its connection",
                  w->ws->zone_name);
        idm_close(c);
        return;
    }
    cl->w = w;
    cl->conn = c;
    if (peer && peer->domid >= 0)
        snprintf(cl->peer, sizeof(cl->peer), "domid=%d", peer->domid);
    else if (peer)
        snprintf(cl->peer, sizeof(cl->peer), "pid=%d uid=%d", peer->pid, peer->uid);
    else
        snprintf(cl->peer, sizeof(cl->peer), "peer=?");
    pthread_mutex_lock(&w->lock);
    rc = pthread_create(&cl->thread, NULL, client_main, cl);
    if (rc == 0) {
        cl->next = w->clients;
        w->clients = cl;
    }
    pthread_mutex_unlock(&w->lock);
    if (rc != 0) {
        log_error("zone=%s %s: cannot start a client thread: %s", w->ws->zone_name, cl->peer,
                  strerror(rc));
        idm_close(c);
        free(cl);
    }
}

/* Joins the threads of clients that have ended; returns how many clients remain. */
static int reap_clients(struct worker *w)
{
    struct client *done = NULL;
    int left = 0;

    pthread_mutex_lock(&w->lock);
    for (struct client **pp = &w->clients; *pp;) {
        struct client *cl = *pp;
        if (cl->done) {
            *pp = cl->next;
            cl->next = done;
            done = cl;
        } else {
            pp = &cl->next;
            left++;
        }
    }
    pthread_mutex_unlock(&w->lock);
    while (done) {
        struct client *cl = done;
        done = cl->next;
        pthread_join(cl->thread, NULL);
        idm_close(cl->conn);
        free(cl);
    }
    return left;
}

/* ---- accepting ---- */

static void accept_posix(struct worker *w)
{
    for (;;) {
        struct idm_conn *c;
        int rc = w->ws->posix->accept(w->ws->posix_l, &c);
        if (rc == -EAGAIN)
            return;
        if (rc != 0) {
            log_warn("zone=%s: accepting a client failed: %s", w->ws->zone_name, strerror(-rc));
            return;
        }
        client_start(w, c);
    }
}

static void accept_xen(struct worker *w)
{
    for (;;) {
        struct idm_conn *c;
        const struct idm_peer *peer;
        int rc = w->xen->accept(w->xen_l, &c);

        if (rc == -EAGAIN)
            return;
        if (rc != 0) {
            log_warn("zone=%s: accepting a guest failed: %s", w->ws->zone_name, strerror(-rc));
            return;
        }
        peer = idm_conn_peer(c);
        if (peer == NULL || peer->domid != w->ws->xen_domid) {
            /* The listener only queues this domain's offers; anything else is a bug. */
            log_error("zone=%s: refusing a guest of domain %d (the zone is bound to %d)",
                      w->ws->zone_name, peer ? peer->domid : -1, w->ws->xen_domid);
            idm_close(c);
            continue;
        }
        log_info("zone=%s domid=%d: guest accepted", w->ws->zone_name, peer->domid);
        client_start(w, c);
    }
}

/* ---- set-up and the main loop ---- */

static void drain_fd(int fd)
{
    uint64_t v;

    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("reading an eventfd: %s", strerror(errno));
}

static void handle_signal(struct worker *w)
{
    struct signalfd_siginfo si;

    if (read(w->signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return;
    if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
        log_debug("zone=%s: worker asked to stop (signal %u)", w->ws->zone_name, si.ssi_signo);
        w->stopping = 1;
    }
}

static void fail_init(const struct worker_spec *ws, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void fail_init(const struct worker_spec *ws, const char *fmt, ...)
{
    va_list ap;
    char why[sizeof(ws->stats->why)];

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    log_error("zone=%s: worker cannot start: %s", ws->zone_name, why);
    memcpy(ws->stats->why, why, sizeof(why));
    if (send(ws->ctl_fd, &(char){WN_INIT_FAILED}, 1, MSG_NOSIGNAL) != 1)
        log_warn("zone=%s: telling the supervisor about the failure failed: %s", ws->zone_name,
                 strerror(errno));
    _exit(WORKER_EXIT_INIT);
}

/* NVML for the backend's device, opened before the sandbox as the driver is; or why not, on
 * the page (the supervisor logs it once). */
static void open_nvml(struct worker *w)
{
    struct worker_gpu *g = &w->ws->stats->gpu;
    struct backend_device_props props;
    CUresult rc;

    if (!w->be->nvml_device) {
        snprintf(g->why, sizeof(g->why), "the %s backend's GPU is simulated; NVML has no "
                 "device to read", w->be->name);
        return;
    }
    rc = w->be->device_props(0, &props);
    if (rc != CUDA_SUCCESS) {
        snprintf(g->why, sizeof(g->why), "the device's UUID could not be read (CUresult %d)",
                 rc);
        return;
    }
    w->nvml = nvml_open(props.uuid, g->why, sizeof(g->why)) == 0;
    if (!w->nvml)
        log_debug("zone=%s: NVML not used: %s", w->ws->zone_name, g->why);
}

/* Signals, the wake-up eventfd, the backend, NVML, the zone and the Xen listener. */
static void worker_setup(struct worker *w)
{
    const struct worker_spec *ws = w->ws;
    char err[256] = "";
    sigset_t mask;
    int rc;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        fail_init(ws, "prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    w->signal_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->signal_fd < 0 || w->wake_fd < 0)
        fail_init(ws, "signalfd/eventfd: %s", strerror(errno));
    pthread_mutex_init(&w->lock, NULL);
    w->be = ws->cfg->be;
    rc = w->be->init(err, sizeof(err));
    if (rc != CUDA_SUCCESS)
        fail_init(ws, "backend %s failed to start (CUresult %d): %s", w->be->name, rc,
                  err[0] ? err : "no reason given");
    open_nvml(w);
    zreg_init(&w->reg, w->be);
    w->reg.next_id = ws->zone_id;
    w->reg.next_seed = ws->zone_id * 0x9E3779B9u + ws->generation * 0x85EBCA6Bu;
    rc = zreg_add(&w->reg, ws->zone_name, ws->quota, &w->zone);
    if (rc != 0)
        fail_init(ws, "cannot create the zone: %s", strerror(-rc));
    w->zone->pub = ws->stats;
    w->zone->m = ws->cfg->call_stats ? &ws->stats->m : NULL;
    if (ws->xen_domid >= 0) {
        char address[300];
        w->xen = idm_transport_by_name("xen");
        if (w->xen == NULL)
            fail_init(ws, "this build of libidm has no Xen transport");
        snprintf(address, sizeof(address), "%d:%s", ws->xen_domid, ws->cfg->xen_path);
        rc = w->xen->listen(address, NULL, &w->xen_l);
        if (rc != 0)
            fail_init(ws, "cannot listen for domain %d under xenstore %s: %s", ws->xen_domid,
                      ws->cfg->xen_path, strerror(-rc));
    }
}

static void publish_ready(struct worker *w)
{
    struct backend_device_props props;
    uint64_t free_b = 0, total_b = 0;
    struct worker_stats *st = w->ws->stats;

    if (w->be->device_props(0, &props) == CUDA_SUCCESS) {
        snprintf(st->device, sizeof(st->device), "%.63s", props.name);
        log_info("zone=%s: backend %s: device 0 is \"%s\", %llu MiB, compute capability %d.%d",
                 w->ws->zone_name, w->be->name, props.name,
                 (unsigned long long)(props.total_mem >> 20),
                 props.attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR],
                 props.attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR]);
    }
    if (w->be->mem_info(&free_b, &total_b) == CUDA_SUCCESS)
        __atomic_store_n(&st->total_mem, total_b, __ATOMIC_RELAXED);
    zone_publish(w->zone);
    /* The simulated GPU's busy time is its time in launches; a real GPU's comes from NVML. */
    __atomic_store_n(&st->busy_known, (uint32_t)w->be->launch_runs_kernel, __ATOMIC_RELAXED);
    if (w->nvml)
        nvml_start(st, w->ws->zone_name); /* failures logged; figures then go stale */
    __atomic_store_n(&st->state, WS_READY, __ATOMIC_RELEASE);
    notify_supervisor(w, WN_READY);
    log_info("zone=%s: worker %d ready (backend %s, generation %u)", w->ws->zone_name,
             (int)getpid(), w->be->name, w->ws->generation);
}

static void start_retiring(struct worker *w)
{
    struct worker_stats *st = w->ws->stats;

    pthread_mutex_lock(&w->lock);
    memcpy(st->why, w->fatal_why, sizeof(st->why));
    pthread_mutex_unlock(&w->lock);
    __atomic_add_fetch(&st->faults, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&st->state, WS_RETIRING, __ATOMIC_RELEASE);
    notify_supervisor(w, WN_RETIRING);
}

/* Serves until asked to stop, or until a retired worker's clients have gone. */
static int serve(struct worker *w)
{
    uint64_t retire_deadline = 0;

    while (!w->stopping) {
        struct pollfd pfd[4];
        nfds_t n = 0, i_posix = 0, i_xen = 0;
        int timeout = -1, left;

        pfd[n++] = (struct pollfd){.fd = w->signal_fd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = w->wake_fd, .events = POLLIN};
        if (!retire_deadline && w->ws->posix_l) {
            i_posix = n;
            pfd[n++] = (struct pollfd){.fd = w->ws->posix->listener_fd(w->ws->posix_l),
                                       .events = POLLIN};
        }
        if (!retire_deadline && w->xen_l) {
            i_xen = n;
            pfd[n++] = (struct pollfd){.fd = w->xen->listener_fd(w->xen_l), .events = POLLIN};
        }
        if (retire_deadline) {
            uint64_t now = now_ms();
            timeout = now >= retire_deadline ? 0 : (int)(retire_deadline - now);
        } else if (!w->be->kernels_cancellable) {
            timeout = ORPHAN_GRACE_MS / 4; /* check_orphans */
        }
        if (poll(pfd, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            log_error("zone=%s: worker poll: %s", w->ws->zone_name, strerror(errno));
            return WORKER_EXIT_OK;
        }
        if (pfd[0].revents)
            handle_signal(w);
        if (pfd[1].revents)
            drain_fd(w->wake_fd);
        left = reap_clients(w);
        check_orphans(w);
        if (!retire_deadline && __atomic_load_n(&w->fatal, __ATOMIC_ACQUIRE)) {
            start_retiring(w);
            retire_deadline = now_ms() + (uint64_t)w->retire_grace_ms;
        }
        if (retire_deadline && (left == 0 || now_ms() >= retire_deadline))
            return WORKER_EXIT_RETIRED;
        if (w->stopping)
            break;
        if (i_posix && pfd[i_posix].revents)
            accept_posix(w);
        if (i_xen && pfd[i_xen].revents)
            accept_xen(w);
    }
    return WORKER_EXIT_OK;
}

/* Asks every client thread to end and waits up to STOP_GRACE_MS; 0, or -ETIMEDOUT. */
static int stop_clients(struct worker *w)
{
    uint64_t deadline = now_ms() + STOP_GRACE_MS;

    pthread_mutex_lock(&w->lock);
    for (struct client *cl = w->clients; cl; cl = cl->next)
        __atomic_store_n(&cl->stop, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&w->lock);
    while (reap_clients(w) > 0) {
        uint64_t now = now_ms();
        struct pollfd p = {.fd = w->wake_fd, .events = POLLIN};
        if (now >= deadline)
            return -ETIMEDOUT;
        if (poll(&p, 1, (int)(deadline - now)) > 0)
            drain_fd(w->wake_fd);
    }
    return 0;
}

void worker_run(const struct worker_spec *ws)
{
    static struct worker w;
    char err[256] = "";
    int status;

    w.ws = ws;
    w.signal_fd = w.wake_fd = -1;
    w.retire_grace_ms = RETIRE_GRACE_MS;
    worker_setup(&w);
    if (sandbox_enter(&ws->cfg->sandbox, w.be->name, ws->xen_domid >= 0, err, sizeof(err)) != 0)
        fail_init(ws, "sandbox: %s", err);
    if (ws->xen_domid >= 0 && geteuid() == 0 && ws->cfg->sandbox.user[0])
        log_warn("zone=%s: this Xen zone's worker keeps root (each guest connection opens the "
                 "root-only grant and event-channel devices); seccomp and no-new-privs apply",
                 ws->zone_name);
    publish_ready(&w);
    status = serve(&w);
    __atomic_store_n(&ws->stats->state, status == WORKER_EXIT_RETIRED ? WS_RETIRING : WS_STOPPING,
                     __ATOMIC_RELEASE);
    if (stop_clients(&w) != 0) {
        log_error("zone=%s: some client threads did not end within %d ms (a kernel still "
                  "running?); the worker exits without them", ws->zone_name, STOP_GRACE_MS);
        _exit(WORKER_EXIT_STUCK);
    }
    if (w.xen_l)
        w.xen->listener_close(w.xen_l);
    zreg_unlink(&w.reg, w.zone);
    zone_unref(w.zone);
    nvml_stop();
    w.be->shutdown();
    log_info("zone=%s: worker %d exits (%s)", ws->zone_name, (int)getpid(),
             status == WORKER_EXIT_RETIRED ? "retired after a sticky fault" : "stopped");
    /* Under seccomp, exit handlers that need more than the allow-list (LeakSanitizer's
     * stop-the-world uses ptrace) would fail: end without them. */
    if (sandbox_active())
        _exit(status);
    exit(status);
}
