/* transport_xen.c - the Xen transport. A guest (client) shares the connection's memory (control
 * page, rings, window) with the driver domain as grant pages (gntalloc), plus one event channel,
 * and announces them in xenstore under its own domain's path; the driver domain (server) watches
 * xenstore, validates each offer as hostile input, maps the grants (gntdev) and serves the guest
 * under the domain id that the xenstore path names. The rings themselves are idm_conn.c's. */
#include "transport_xen.h"

#include "idm_conn_internal.h"
#include "idm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

/* ---- wire format: the meta page and the xenstore keys ----
 *
 * The guest shares, with the backend domain:
 *   data:  `pages` pages, read-write: the IDM region (idm_conn_internal.h's layout);
 *   dir:   ceil(pages / 1024) pages, read-only: the grant references of the data pages, in order;
 *   meta:  one page, read-write, shared with an unmap notification on `guest_live`; the driver
 *          maps it with an unmap notification on `driver_live`. When either side's process lets
 *          go of the page (close, exit, crash) its kernel zeroes that side's byte and signals the
 *          event channel, so the peer learns it at once.
 * and writes, in a directory of its own per connection, /local/domain/<guest>/<rel>/<nonce>/
 * (<nonce>: 16 random hex digits; the guest owns the keys, the backend may read them and may
 * also write backend-state):
 *   version, nonce, ring-slots, slot-size, window-size, pages, dir-refs ("r,r,..."), meta-ref,
 *   event-channel, backend-id, backend-state (""), and last `state` = "offered".
 * The backend examines an offer whose backend-state is still empty and answers there:
 * "connected <nonce>", "refused <nonce> <reason>" or, when it lets go, "closed <nonce>". The guest
 * removes the directory when it lets go (and, at its next connect, directories its crashed
 * processes left with a "closed" or "refused" answer). */

#define XEN_META_MAGIC 0x4E455856u /* "VXEN" */
#define XEN_META_VERSION 1u
#define XEN_REFS_PER_PAGE (IDM_PAGE_SIZE / sizeof(uint32_t))
#define XEN_MAX_DIR ((IDM_XEN_MAX_PAGES + XEN_REFS_PER_PAGE - 1) / XEN_REFS_PER_PAGE)
#define XEN_DOMID_FIRST_RESERVED 0x7FF0u
#define XEN_ANY_DOMAIN UINT32_MAX /* a listener that takes every guest's offers */
#define XEN_NONCE_LEN 16
#define XEN_VALUE_MAX 256 /* longest xenstore value we accept (dir-refs: 16 * 11 bytes) */
#define XEN_PATH_MAX 160

struct xen_meta {
    uint32_t magic;   /* XEN_META_MAGIC */
    uint32_t version; /* XEN_META_VERSION */
    uint8_t guest_live;  /* 1 while the guest holds the page; zeroed by gntalloc's notification */
    uint8_t driver_live; /* 1 while the driver maps it; zeroed by gntdev's notification */
    uint8_t pad_[6];
};
#define XEN_GUEST_LIVE_OFF 8u
#define XEN_DRIVER_LIVE_OFF 9u
_Static_assert(offsetof(struct xen_meta, guest_live) == XEN_GUEST_LIVE_OFF, "meta layout");
_Static_assert(offsetof(struct xen_meta, driver_live) == XEN_DRIVER_LIVE_OFF, "meta layout");

/* Transport-private state of one connection, either side. */
struct xen_conn {
    int role; /* enum idm_role */
    struct xs_handle *xs;
    xenevtchn_handle *xce;
    xengntshr_handle *xgs; /* guest */
    xengnttab_handle *xgt; /* driver */
    evtchn_port_t port;    /* local port */
    int port_bound;
    int epfd;
    uint32_t peer_domid; /* guest: the backend; driver: the guest (from the xenstore path) */
    char base[XEN_PATH_MAX]; /* the offer: /local/domain/<guest>/<rel>/<nonce> */
    char nonce[XEN_NONCE_LEN + 1];
    uint8_t *data;
    uint32_t npages;
    uint8_t *dir; /* guest only */
    uint32_t ndir;
    struct xen_meta *meta;
};

struct xen_listener {
    struct idm_listener base; /* first member (idm_conn_internal.h) */
    struct xs_handle *xs;
    int epfd;
    int evfd; /* readable while offers are queued */
    uint32_t self;
    uint32_t only;  /* the one guest domain whose offers are taken, or XEN_ANY_DOMAIN */
    char rel[IDM_XEN_REL_MAX + 1];
    char token[32];
    struct offer_ref {
        uint32_t domid;
        char nonce[XEN_NONCE_LEN + 1];
    } *queue; /* offers whose state key changed, not yet examined */
    size_t nqueue, capqueue;
};

/* ---- small helpers ---- */

static int neg_errno(int fallback)
{
    return errno > 0 ? -errno : -fallback;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parses a decimal number with no sign, spaces or leading zeros (except "0"), <= max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || (s[0] == '0' && s[1] != '\0'))
        return -EINVAL;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* A relative xenstore path: components of [A-Za-z0-9_-], single '/' between them. */
static int valid_rel(const char *rel)
{
    size_t n = strlen(rel);
    if (n == 0 || n > IDM_XEN_REL_MAX || rel[0] == '/' || rel[n - 1] == '/')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = rel[i];
        if (ch == '/') {
            if (rel[i + 1] == '/')
                return 0;
            continue;
        }
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* Reads a xenstore value into buf (NUL-terminated). -ENOENT when absent, -EPROTO when longer
 * than the buffer or holding a NUL byte: the value comes from a hostile peer. */
static int xs_get(struct xs_handle *xs, const char *path, char *buf, size_t cap)
{
    unsigned int len = 0;
    char *v = xs_read(xs, XBT_NULL, path, &len);
    if (!v)
        return neg_errno(EIO);
    int rc = 0;
    if (len >= cap || strlen(v) != len)
        rc = -EPROTO;
    else
        memcpy(buf, v, (size_t)len + 1);
    free(v);
    return rc;
}

static int xs_get_key(struct xs_handle *xs, const char *base, const char *key, char *buf,
                      size_t cap)
{
    char path[XEN_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", base, key);
    return xs_get(xs, path, buf, cap);
}

static int xs_put_key(struct xs_handle *xs, const char *base, const char *key, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
static int xs_put_key(struct xs_handle *xs, const char *base, const char *key, const char *fmt,
                      ...)
{
    char path[XEN_PATH_MAX + 32], val[XEN_VALUE_MAX];
    snprintf(path, sizeof(path), "%s/%s", base, key);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(val, sizeof(val), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(val))
        return -EOVERFLOW;
    if (!xs_write(xs, XBT_NULL, path, val, (unsigned)n))
        return neg_errno(EIO);
    return 0;
}

/* Drains pending watch events; returns how many there were. */
static int xs_drain(struct xs_handle *xs)
{
    int n = 0;
    char **ev;
    while ((ev = xs_check_watch(xs)) != NULL) {
        free(ev);
        n++;
    }
    return n;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return neg_errno(EIO);
    return 0;
}

static int epoll_of(int a, int b)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return neg_errno(EMFILE);
    int fds[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fds[i]};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
            int rc = neg_errno(EIO);
            close(ep);
            return rc;
        }
    }
    return ep;
}

/* Reads the peer's liveness byte in the meta page (zeroed by the peer's kernel). */
static int peer_live(const struct xen_conn *x)
{
    const uint8_t *b = (const uint8_t *)x->meta +
                       (x->role == IDM_ROLE_CLIENT ? XEN_DRIVER_LIVE_OFF : XEN_GUEST_LIVE_OFF);
    /* Acquire: pairs with the kernel's store when the peer's mapping goes away; nothing after
     * it depends on ring contents, so acquire only keeps the check from being hoisted. */
    return __atomic_load_n(b, __ATOMIC_ACQUIRE) != 0;
}

/* Looks at xenstore after a watch fired: -EPIPE when the peer has gone (domain destroyed, offer
 * withdrawn or replaced, backend closed), 0 otherwise. */
static int peer_gone_xs(struct idm_conn *c, struct xen_conn *x)
{
    char v[XEN_VALUE_MAX];
    if (x->role == IDM_ROLE_SERVER) {
        if (!xs_is_domain_introduced(x->xs, x->peer_domid)) {
            idm_conn_fail(c, -EPIPE, "guest domain %u was destroyed", x->peer_domid);
            return -EPIPE;
        }
        if (xs_get_key(x->xs, x->base, "state", v, sizeof(v)) < 0 || strcmp(v, "offered") != 0) {
            char dom[32];
            unsigned int n = 0;
            snprintf(dom, sizeof(dom), "/local/domain/%u", x->peer_domid);
            char **ents = xs_directory(x->xs, XBT_NULL, dom, &n);
            free(ents);
            if (!ents) /* the toolstack removes a domain's directory when it destroys it */
                idm_conn_fail(c, -EPIPE, "guest domain %u was destroyed", x->peer_domid);
            else
                idm_conn_fail(c, -EPIPE, "guest domain %u withdrew its offer (%s)",
                              x->peer_domid, x->base);
            return -EPIPE;
        }
        return 0;
    }
    if (x->peer_domid != 0) {
        errno = 0; /* a guest may not be allowed to ask: only a clear "no" counts */
        if (!xs_is_domain_introduced(x->xs, x->peer_domid) && errno == 0) {
            idm_conn_fail(c, -EPIPE, "driver domain %u was destroyed", x->peer_domid);
            return -EPIPE;
        }
    }
    char want[XEN_VALUE_MAX];
    snprintf(want, sizeof(want), "connected %s", x->nonce);
    if (xs_get_key(x->xs, x->base, "backend-state", v, sizeof(v)) < 0 || strcmp(v, want) != 0) {
        idm_conn_fail(c, -EPIPE, "driver domain %u closed the connection", x->peer_domid);
        return -EPIPE;
    }
    return 0;
}

/* ---- connection hooks (idm_conn_ops) ---- */

static int xen_notify(struct idm_conn *c)
{
    struct xen_conn *x = c->tp;
    if (xenevtchn_notify(x->xce, x->port) < 0)
        return neg_errno(EPIPE);
    return 0;
}

static int xen_wait(struct idm_conn *c, int timeout_ms)
{
    struct xen_conn *x = c->tp;
    if (!peer_live(x))
        goto gone;
    struct epoll_event evs[2];
    int n = epoll_wait(x->epfd, evs, 2, timeout_ms);
    if (n < 0) {
        if (errno == EINTR)
            return 0; /* spurious: the caller re-checks the rings */
        return neg_errno(EIO);
    }
    int rang = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == xs_fileno(x->xs)) {
            if (xs_drain(x->xs) > 0 && peer_gone_xs(c, x) < 0)
                return -EPIPE;
            continue;
        }
        for (;;) {
            xenevtchn_port_or_error_t p = xenevtchn_pending(x->xce);
            if (p < 0)
                break; /* EAGAIN: nothing more pending (the descriptor is non-blocking) */
            if (xenevtchn_unmask(x->xce, (evtchn_port_t)p) < 0)
                return neg_errno(EIO);
            rang = 1;
        }
    }
    if (!peer_live(x))
        goto gone;
    if (rang || n > 0)
        return 0;
    return -EAGAIN;
gone:
    if (x->role == IDM_ROLE_SERVER)
        idm_conn_fail(c, -EPIPE, "guest domain %u let go of the shared pages (process exited or "
                                 "closed the connection)", x->peer_domid);
    else
        idm_conn_fail(c, -EPIPE, "the driver in domain %u let go of our pages (it exited or "
                                 "closed the connection)", x->peer_domid);
    return -EPIPE;
}

static int xen_fd(struct idm_conn *c)
{
    struct xen_conn *x = c->tp;
    return x->epfd;
}

/* Driver side: writes the answer `val` into an offer's backend-state, in one transaction, only
 * while it still reads `expect`: nothing is written into a directory the guest has removed
 * (which would recreate it), nor over a newer answer. 0 when written, -ESTALE when backend-state
 * no longer reads `expect`, else -errno. */
static int answer_if(struct xs_handle *xs, const char *base, const char *expect, const char *val)
{
    char path[XEN_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/backend-state", base);
    for (int tries = 0; tries < 5; tries++) {
        xs_transaction_t t = xs_transaction_start(xs);
        if (t == XBT_NULL)
            return neg_errno(EIO);
        unsigned int len = 0;
        char *cur = xs_read(xs, t, path, &len);
        int match = cur && strlen(cur) == len && strcmp(cur, expect) == 0;
        free(cur);
        if (!match) {
            xs_transaction_end(xs, t, true);
            return -ESTALE;
        }
        if (!xs_write(xs, t, path, val, (unsigned)strlen(val))) {
            int rc = neg_errno(EIO);
            xs_transaction_end(xs, t, true);
            return rc;
        }
        if (xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            return neg_errno(EIO);
    }
    return -EAGAIN;
}

static void answer_closed(struct xen_conn *x)
{
    char want[64], val[64];
    snprintf(want, sizeof(want), "connected %s", x->nonce);
    snprintf(val, sizeof(val), "closed %s", x->nonce);
    answer_if(x->xs, x->base, want, val);
}

/* Releases everything in x (either side); safe on a partly set-up x. */
static void xen_conn_release(struct xen_conn *x)
{
    if (!x)
        return;
    if (x->epfd >= 0)
        close(x->epfd);
    if (x->role == IDM_ROLE_CLIENT) {
        /* Withdraws the offer: the driver's watch on its state key fires. */
        if (x->xs && x->base[0])
            xs_rm(x->xs, XBT_NULL, x->base);
        /* The meta page first: its notification tells the driver at once. */
        if (x->meta && xengntshr_unshare(x->xgs, x->meta, 1) < 0)
            IDM_WARN("xen client: unsharing the meta page failed: %s", strerror(errno));
        if (x->dir && xengntshr_unshare(x->xgs, x->dir, x->ndir) < 0)
            IDM_WARN("xen client: unsharing the grant directory failed: %s", strerror(errno));
        if (x->data && xengntshr_unshare(x->xgs, x->data, x->npages) < 0)
            IDM_WARN("xen client: unsharing %u data pages failed: %s", x->npages,
                     strerror(errno));
    } else {
        if (x->xs && x->base[0] && x->nonce[0])
            answer_closed(x); /* best effort: the guest may be gone */
        if (x->meta && xengnttab_unmap(x->xgt, x->meta, 1) < 0)
            IDM_WARN("xen server: unmapping the meta page of domain %u failed: %s",
                     x->peer_domid, strerror(errno));
        if (x->data && xengnttab_unmap(x->xgt, x->data, x->npages) < 0)
            IDM_WARN("xen server: unmapping %u pages of domain %u failed: %s", x->npages,
                     x->peer_domid, strerror(errno));
    }
    if (x->port_bound && xenevtchn_unbind(x->xce, x->port) < 0)
        IDM_WARN("xen: unbinding event channel port %u failed: %s", x->port, strerror(errno));
    if (x->xce)
        xenevtchn_close(x->xce);
    if (x->xgs)
        xengntshr_close(x->xgs);
    if (x->xgt)
        xengnttab_close(x->xgt);
    if (x->xs)
        xs_close(x->xs);
    free(x);
}

static void xen_close(struct idm_conn *c)
{
    xen_conn_release(c->tp);
    c->tp = NULL;
}

static const struct idm_conn_ops xen_ops = {
    .name = "xen",
    .notify = xen_notify,
    .wait = xen_wait,
    .fd = xen_fd,
    .close = xen_close,
};

static struct xen_conn *xen_conn_new(int role)
{
    struct xen_conn *x = calloc(1, sizeof(*x));
    if (x) {
        x->role = role;
        x->epfd = -1;
    }
    return x;
}

/* ---- guest side ---- */

/* Splits "[<domid>:]<rel>" (NULL or "": the default). */
static int parse_client_address(const char *address, uint32_t *backend, char *rel, size_t cap)
{
    if (!address || !*address)
        address = IDM_XEN_DEFAULT_ADDRESS;
    const char *colon = strchr(address, ':');
    *backend = 0;
    if (colon) {
        char num[16];
        size_t n = (size_t)(colon - address);
        uint64_t v;
        if (n == 0 || n >= sizeof(num))
            return -EINVAL;
        memcpy(num, address, n);
        num[n] = '\0';
        if (parse_u64(num, XEN_DOMID_FIRST_RESERVED - 1, &v) < 0)
            return -EINVAL;
        *backend = (uint32_t)v;
        address = colon + 1;
    }
    if (!valid_rel(address) || strlen(address) >= cap)
        return -EINVAL;
    strcpy(rel, address);
    return 0;
}

static int read_self_domid(struct xs_handle *xs, uint32_t *out)
{
    char v[16];
    uint64_t id;
    int rc = xs_get(xs, "domid", v, sizeof(v));
    if (rc < 0)
        return rc;
    if (parse_u64(v, XEN_DOMID_FIRST_RESERVED - 1, &id) < 0)
        return -EPROTO;
    *out = (uint32_t)id;
    return 0;
}

static int connect_timeout_ms(void)
{
    const char *s = getenv("IDM_XEN_CONNECT_TIMEOUT_MS");
    uint64_t v;
    if (s && *s) {
        if (parse_u64(s, 3600000, &v) == 0)
            return (int)v;
        IDM_WARN("IDM_XEN_CONNECT_TIMEOUT_MS=\"%s\" is not a number of milliseconds; using %d",
                 s, IDM_XEN_CONNECT_TIMEOUT_MS);
    }
    return IDM_XEN_CONNECT_TIMEOUT_MS;
}

/* Removes the directories that earlier connections of this domain left behind with a final
 * answer (their process died before it could remove them). Live offers are left alone. */
static void remove_dead_offers(struct xs_handle *xs, const char *dir)
{
    unsigned int n = 0;
    char **ents = xs_directory(xs, XBT_NULL, dir, &n);
    if (!ents)
        return;
    for (unsigned int i = 0; i < n; i++) {
        char base[XEN_PATH_MAX + XEN_NONCE_LEN + 2], v[XEN_VALUE_MAX];
        snprintf(base, sizeof(base), "%s/%s", dir, ents[i]);
        if (xs_get_key(xs, base, "backend-state", v, sizeof(v)) == 0 &&
            (strncmp(v, "closed ", 7) == 0 || strncmp(v, "refused ", 8) == 0))
            xs_rm(xs, XBT_NULL, base);
    }
    free(ents);
}

/* Writes the offer's keys under x->base; `state` last. */
static int publish_offer(struct xen_conn *x, uint32_t self, const struct idm_conn_config *cfg,
                         const uint32_t *dirrefs, uint32_t metaref)
{
    struct xs_handle *xs = x->xs;
    char path[XEN_PATH_MAX + 32];
    if (!xs_mkdir(xs, XBT_NULL, x->base))
        return neg_errno(EIO);
    struct xs_permissions perms[2] = {
        {.id = self, .perms = XS_PERM_NONE},
        {.id = x->peer_domid, .perms = XS_PERM_READ},
    };
    if (!xs_set_permissions(xs, XBT_NULL, x->base, perms, x->peer_domid == self ? 1 : 2))
        return neg_errno(EIO);
    char refs[XEN_VALUE_MAX];
    size_t off = 0;
    for (uint32_t i = 0; i < x->ndir; i++)
        off += (size_t)snprintf(refs + off, sizeof(refs) - off, "%s%" PRIu32, i ? "," : "",
                                dirrefs[i]);
    int rc;
    if ((rc = xs_put_key(xs, x->base, "version", "%u", IDM_PROTOCOL_VERSION)) < 0 ||
        (rc = xs_put_key(xs, x->base, "nonce", "%s", x->nonce)) < 0 ||
        (rc = xs_put_key(xs, x->base, "ring-slots", "%" PRIu32, cfg->ring_slots)) < 0 ||
        (rc = xs_put_key(xs, x->base, "slot-size", "%" PRIu32, cfg->slot_size)) < 0 ||
        (rc = xs_put_key(xs, x->base, "window-size", "%" PRIu64, cfg->window_size)) < 0 ||
        (rc = xs_put_key(xs, x->base, "pages", "%" PRIu32, x->npages)) < 0 ||
        (rc = xs_put_key(xs, x->base, "dir-refs", "%s", refs)) < 0 ||
        (rc = xs_put_key(xs, x->base, "meta-ref", "%" PRIu32, metaref)) < 0 ||
        (rc = xs_put_key(xs, x->base, "event-channel", "%u", (unsigned)x->port)) < 0 ||
        (rc = xs_put_key(xs, x->base, "backend-id", "%" PRIu32, x->peer_domid)) < 0 ||
        (rc = xs_put_key(xs, x->base, "backend-state", "%s", "")) < 0)
        return rc;
    snprintf(path, sizeof(path), "%s/backend-state", x->base);
    perms[1].perms = XS_PERM_READ | XS_PERM_WRITE;
    if (!xs_set_permissions(xs, XBT_NULL, path, perms, x->peer_domid == self ? 1 : 2))
        return neg_errno(EIO);
    if (!xs_watch(xs, path, "vgpu-backend"))
        return neg_errno(EIO);
    /* Tells when a driver domain other than dom0 dies; a guest may not be allowed to watch it,
     * and the meta page's notification covers the driver's process anyway. */
    if (x->peer_domid != 0 && !xs_watch(xs, "@releaseDomain", "vgpu-release"))
        IDM_DEBUG("xen connect: cannot watch @releaseDomain: %s", strerror(errno));
    return xs_put_key(xs, x->base, "state", "%s", "offered");
}

/* Waits until the backend answers our offer. */
static int await_backend(struct xen_conn *x, const char *address)
{
    char want[64], v[XEN_VALUE_MAX];
    snprintf(want, sizeof(want), "connected %s", x->nonce);
    size_t refused_len = strlen("refused ") + XEN_NONCE_LEN;
    int timeout = connect_timeout_ms();
    int64_t deadline = now_ms() + timeout;
    for (;;) {
        xs_drain(x->xs);
        int rc = xs_get_key(x->xs, x->base, "backend-state", v, sizeof(v));
        if (rc == 0 && strcmp(v, want) == 0)
            return 0;
        if (rc == 0 && strncmp(v, "refused ", 8) == 0 && strlen(v) >= refused_len &&
            strncmp(v + 8, x->nonce, XEN_NONCE_LEN) == 0) {
            IDM_ERR("xen connect %s: driver domain %u refused our offer:%s", address,
                    x->peer_domid, v + refused_len);
            return -ECONNREFUSED;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            IDM_ERR("xen connect %s: no driver in domain %u took our offer at %s within %d ms "
                    "(is gpu_proxy --xen running there?)", address, x->peer_domid, x->base,
                    timeout);
            return -ETIMEDOUT;
        }
        struct pollfd pfd = {.fd = xs_fileno(x->xs), .events = POLLIN};
        if (poll(&pfd, 1, left > 1000 ? 1000 : (int)left) < 0 && errno != EINTR)
            return neg_errno(EIO);
    }
}

static int xen_connect(const char *address, struct idm_conn **out)
{
    char rel[IDM_XEN_REL_MAX + 1];
    uint32_t backend, self;
    if (!out)
        return -EINVAL;
    if (parse_client_address(address, &backend, rel, sizeof(rel)) < 0) {
        IDM_ERR("xen connect: address \"%s\" is not [<backend-domid>:]<xenstore-relative-path> "
                "(e.g. %s)", address, IDM_XEN_DEFAULT_ADDRESS);
        return -EINVAL;
    }
    if (!address || !*address)
        address = IDM_XEN_DEFAULT_ADDRESS;
    struct idm_conn_config cfg = {0};
    idm_conn_config_defaults(&cfg);
    struct idm_layout lay;
    int rc = idm_layout_compute(&cfg, &lay);
    if (rc < 0)
        return rc;
    if (lay.total / IDM_PAGE_SIZE > IDM_XEN_MAX_PAGES) {
        IDM_ERR("xen connect %s: geometry needs %llu pages, more than the %u the transport allows",
                address, (unsigned long long)(lay.total / IDM_PAGE_SIZE), IDM_XEN_MAX_PAGES);
        return -EINVAL;
    }

    struct xen_conn *x = xen_conn_new(IDM_ROLE_CLIENT);
    if (!x)
        return -ENOMEM;
    uint32_t *refs = NULL;
    x->peer_domid = backend;
    x->xs = xs_open(0);
    if (!x->xs) {
        rc = neg_errno(ENOENT);
        IDM_ERR("xen connect %s: cannot open xenstore: %s (is this a Xen guest with "
                "/dev/xen/xenbus?)", address, strerror(-rc));
        goto release;
    }
    rc = read_self_domid(x->xs, &self);
    if (rc < 0) {
        IDM_ERR("xen connect %s: reading our domain id from xenstore failed: %s", address,
                strerror(-rc));
        goto release;
    }
    uint64_t rnd;
    if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd)) {
        rc = neg_errno(EIO);
        IDM_ERR("xen connect %s: getrandom: %s", address, strerror(-rc));
        goto release;
    }
    snprintf(x->nonce, sizeof(x->nonce), "%016" PRIx64, rnd);
    char dir[XEN_PATH_MAX - XEN_NONCE_LEN - 1]; /* 20 + IDM_XEN_REL_MAX bytes at most */
    snprintf(dir, sizeof(dir), "/local/domain/%" PRIu32 "/%s", self, rel);
    snprintf(x->base, sizeof(x->base), "%s/%s", dir, x->nonce);
    remove_dead_offers(x->xs, dir);

    x->xce = xenevtchn_open(NULL, 0);
    if (!x->xce) {
        rc = neg_errno(ENOENT);
        IDM_ERR("xen connect %s: opening the event channel device failed: %s (module "
                "xen-evtchn loaded?)", address, strerror(-rc));
        goto release;
    }
    xenevtchn_port_or_error_t port = xenevtchn_bind_unbound_port(x->xce, backend);
    if (port < 0) {
        rc = neg_errno(EIO);
        IDM_ERR("xen connect %s: allocating an event channel for domain %u failed: %s", address,
                backend, strerror(-rc));
        goto release;
    }
    x->port = (evtchn_port_t)port;
    x->port_bound = 1;
    if ((rc = set_nonblock(xenevtchn_fd(x->xce))) < 0)
        goto release;

    x->xgs = xengntshr_open(NULL, 0);
    if (!x->xgs) {
        rc = neg_errno(ENOENT);
        IDM_ERR("xen connect %s: opening the grant-sharing device failed: %s (module "
                "xen-gntalloc loaded?)", address, strerror(-rc));
        goto release;
    }
    x->npages = (uint32_t)(lay.total / IDM_PAGE_SIZE);
    x->ndir = (uint32_t)((x->npages + XEN_REFS_PER_PAGE - 1) / XEN_REFS_PER_PAGE);
    refs = calloc(x->npages, sizeof(*refs));
    if (!refs) {
        rc = -ENOMEM;
        goto release;
    }
    x->data = xengntshr_share_pages(x->xgs, backend, (int)x->npages, refs, 1);
    if (!x->data) {
        rc = neg_errno(ENOMEM);
        IDM_ERR("xen connect %s: sharing %u pages with domain %u failed: %s (gntalloc allows "
                "/sys/module/xen_gntalloc/parameters/limit grants in all; it needs at least "
                "%u)", address, x->npages, backend, strerror(-rc), x->npages + x->ndir + 1);
        goto release;
    }
    rc = idm_shm_init(x->data, (size_t)x->npages * IDM_PAGE_SIZE, &cfg, 0);
    if (rc < 0)
        goto release;
    uint32_t dirrefs[XEN_MAX_DIR];
    x->dir = xengntshr_share_pages(x->xgs, backend, (int)x->ndir, dirrefs, 0);
    if (!x->dir) {
        rc = neg_errno(ENOMEM);
        IDM_ERR("xen connect %s: sharing the grant directory (%u pages) failed: %s", address,
                x->ndir, strerror(-rc));
        goto release;
    }
    memset(x->dir, 0, (size_t)x->ndir * IDM_PAGE_SIZE);
    memcpy(x->dir, refs, (size_t)x->npages * sizeof(*refs));
    uint32_t metaref;
    x->meta = xengntshr_share_page_notify(x->xgs, backend, &metaref, 1, XEN_GUEST_LIVE_OFF,
                                          x->port);
    if (!x->meta) {
        rc = neg_errno(ENOMEM);
        IDM_ERR("xen connect %s: sharing the meta page failed: %s", address, strerror(-rc));
        goto release;
    }
    memset(x->meta, 0, IDM_PAGE_SIZE);
    x->meta->magic = XEN_META_MAGIC;
    x->meta->version = XEN_META_VERSION;
    x->meta->guest_live = 1;

    /* Release: the pages' contents are written before xenstore (a system call) announces them;
     * the driver reads them only after it has seen the announcement. */
    atomic_thread_fence(memory_order_release);
    rc = publish_offer(x, self, &cfg, dirrefs, metaref);
    if (rc < 0) {
        IDM_ERR("xen connect %s: publishing the offer under %s failed: %s", address, x->base,
                strerror(-rc));
        goto release;
    }
    rc = await_backend(x, address);
    if (rc < 0)
        goto release;
    if (!peer_live(x)) {
        rc = -EPIPE;
        IDM_ERR("xen connect %s: driver domain %u said connected but does not map our pages",
                address, backend);
        goto release;
    }
    x->epfd = epoll_of(xenevtchn_fd(x->xce), xs_fileno(x->xs));
    if (x->epfd < 0) {
        rc = x->epfd;
        IDM_ERR("xen connect %s: epoll set-up: %s", address, strerror(-rc));
        goto release;
    }
    struct idm_conn *c;
    rc = idm_conn_attach(x->data, (size_t)x->npages * IDM_PAGE_SIZE, IDM_ROLE_CLIENT, &xen_ops,
                         x, &c);
    if (rc < 0)
        goto release;
    c->peer.domid = (int32_t)backend;
    snprintf(c->label, sizeof(c->label), "xen client domid %" PRIu32 " -> %" PRIu32, self,
             backend);
    IDM_DEBUG("%s: connected at %s (%u pages, event channel %u)", c->label, x->base, x->npages,
              x->port);
    free(refs);
    *out = c;
    return 0;

release:
    free(refs);
    xen_conn_release(x);
    return rc;
}

/* ---- driver-domain side ---- */

static int xen_listener_fd(struct idm_listener *base)
{
    return ((struct xen_listener *)base)->epfd;
}

static void xen_listener_close(struct idm_listener *base)
{
    struct xen_listener *l = (struct xen_listener *)base;
    if (!l)
        return;
    if (l->xs) {
        xs_unwatch(l->xs, "/local/domain", l->token);
        xs_close(l->xs);
    }
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->evfd >= 0)
        close(l->evfd);
    free(l->queue);
    free(l);
}

static int valid_nonce(const char *s)
{
    if (strlen(s) != XEN_NONCE_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

static int queue_push(struct xen_listener *l, uint32_t domid, const char *nonce)
{
    if (!valid_nonce(nonce))
        return 0; /* not an offer directory of ours */
    if (l->only != XEN_ANY_DOMAIN && domid != l->only)
        return 0; /* another zone's guest: its own listener takes it */
    for (size_t i = 0; i < l->nqueue; i++)
        if (l->queue[i].domid == domid && strcmp(l->queue[i].nonce, nonce) == 0)
            return 0;
    if (l->nqueue == l->capqueue) {
        size_t cap = l->capqueue ? l->capqueue * 2 : 16;
        struct offer_ref *q = realloc(l->queue, cap * sizeof(*q));
        if (!q)
            return -ENOMEM;
        l->queue = q;
        l->capqueue = cap;
    }
    l->queue[l->nqueue].domid = domid;
    strcpy(l->queue[l->nqueue].nonce, nonce);
    l->nqueue++;
    return 0;
}

/* Queues every offer present (on the first watch event, which xenstored sends at once). */
static void queue_all(struct xen_listener *l)
{
    unsigned int n = 0;
    char **doms = xs_directory(l->xs, XBT_NULL, "/local/domain", &n);
    if (!doms)
        return;
    for (unsigned int i = 0; i < n; i++) {
        uint64_t d;
        if (parse_u64(doms[i], XEN_DOMID_FIRST_RESERVED - 1, &d) < 0 || d == l->self)
            continue;
        char dir[XEN_PATH_MAX];
        unsigned int m = 0;
        snprintf(dir, sizeof(dir), "/local/domain/%" PRIu64 "/%s", d, l->rel);
        char **offers = xs_directory(l->xs, XBT_NULL, dir, &m);
        for (unsigned int k = 0; offers && k < m; k++)
            queue_push(l, (uint32_t)d, offers[k]);
        free(offers);
    }
    free(doms);
}

/* Turns watch events into queued offers: "/local/domain/<id>/<rel>/<nonce>/state" only. */
static void listener_collect(struct xen_listener *l)
{
    char **ev;
    const char *prefix = "/local/domain/";
    size_t plen = strlen(prefix), rl = strlen(l->rel);
    while ((ev = xs_check_watch(l->xs)) != NULL) {
        const char *p = ev[XS_WATCH_PATH];
        if (strcmp(p, "/local/domain") == 0) {
            queue_all(l);
        } else if (strncmp(p, prefix, plen) == 0) {
            const char *d = p + plen, *slash = strchr(d, '/');
            char num[16], nonce[XEN_NONCE_LEN + 1];
            uint64_t id;
            if (slash && (size_t)(slash - d) < sizeof(num)) {
                memcpy(num, d, (size_t)(slash - d));
                num[slash - d] = '\0';
                const char *rest = slash + 1; /* "<rel>/<nonce>/state" */
                if (parse_u64(num, XEN_DOMID_FIRST_RESERVED - 1, &id) == 0 && id != l->self &&
                    strncmp(rest, l->rel, rl) == 0 && rest[rl] == '/' &&
                    strlen(rest + rl + 1) == XEN_NONCE_LEN + strlen("/state") &&
                    strcmp(rest + rl + 1 + XEN_NONCE_LEN, "/state") == 0) {
                    memcpy(nonce, rest + rl + 1, XEN_NONCE_LEN);
                    nonce[XEN_NONCE_LEN] = '\0';
                    queue_push(l, (uint32_t)id, nonce);
                }
            }
        }
        free(ev);
    }
}

/* Reads one numeric key of an offer. */
static int offer_num(struct xs_handle *xs, const char *base, const char *key, uint64_t max,
                     uint64_t *out, char *why, size_t whylen)
{
    char v[32];
    int rc = xs_get_key(xs, base, key, v, sizeof(v));
    if (rc == 0)
        rc = parse_u64(v, max, out);
    if (rc < 0)
        snprintf(why, whylen, "key %s missing or not a number <= %llu", key,
                 (unsigned long long)max);
    return rc;
}

/* Parses "r,r,...": exactly `n` grant references. */
static int parse_refs(const char *s, uint32_t *refs, uint32_t n)
{
    char buf[XEN_VALUE_MAX];
    if (strlen(s) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, s);
    uint32_t i = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (i == n || parse_u64(tok, UINT32_MAX, &v) < 0)
            return -EINVAL;
        refs[i++] = (uint32_t)v;
    }
    return i == n ? 0 : -EINVAL;
}

/* Examines the offer in domain `domid`'s directory <rel>/<nonce>; on success returns a
 * connection. -EAGAIN: nothing to take (no offer there, or one already answered); -EPROTO:
 * refused (logged, and told to the guest). */
static int try_offer(struct xen_listener *l, uint32_t domid, const char *nonce,
                     struct idm_conn **out)
{
    char base[XEN_PATH_MAX], v[XEN_VALUE_MAX], why[200] = "";
    snprintf(base, sizeof(base), "/local/domain/%" PRIu32 "/%s/%s", domid, l->rel, nonce);
    if (xs_get_key(l->xs, base, "state", v, sizeof(v)) < 0 || strcmp(v, "offered") != 0)
        return -EAGAIN;
    /* An answered offer (by us, or by an earlier driver) is never examined again. */
    if (xs_get_key(l->xs, base, "backend-state", v, sizeof(v)) < 0 || v[0] != '\0')
        return -EAGAIN;

    /* The node must belong to the domain its path names (the guest, not a third party it let
     * write there). */
    char statepath[XEN_PATH_MAX + 16];
    snprintf(statepath, sizeof(statepath), "%s/state", base);
    unsigned int nperms = 0;
    struct xs_permissions *perms = xs_get_permissions(l->xs, XBT_NULL, statepath, &nperms);
    uint32_t owner = perms && nperms > 0 ? perms[0].id : UINT32_MAX;
    free(perms);

    struct xen_conn *x = NULL;
    uint32_t *refs = NULL;
    struct idm_conn *c = NULL;
    uint64_t version, slots, slot_size, window, pages, metaref, rport;
    int rc = -EPROTO;
    if (xs_get_key(l->xs, base, "nonce", v, sizeof(v)) < 0 || strcmp(v, nonce) != 0) {
        snprintf(why, sizeof(why), "its nonce key does not name its directory");
        goto refuse;
    }
    if (owner != domid) {
        snprintf(why, sizeof(why), "its state key is owned by domain %d, not %u",
                 owner == UINT32_MAX ? -1 : (int)owner, domid);
        goto refuse;
    }
    if (offer_num(l->xs, base, "version", UINT32_MAX, &version, why, sizeof(why)) < 0)
        goto refuse;
    if (version != IDM_PROTOCOL_VERSION) {
        snprintf(why, sizeof(why), "protocol version %llu, this driver speaks %u",
                 (unsigned long long)version, IDM_PROTOCOL_VERSION);
        goto refuse;
    }
    if (offer_num(l->xs, base, "ring-slots", UINT32_MAX, &slots, why, sizeof(why)) < 0 ||
        offer_num(l->xs, base, "slot-size", UINT32_MAX, &slot_size, why, sizeof(why)) < 0 ||
        offer_num(l->xs, base, "window-size", IDM_WINDOW_SIZE_MAX, &window, why, sizeof(why)) <
            0 ||
        offer_num(l->xs, base, "pages", IDM_XEN_MAX_PAGES, &pages, why, sizeof(why)) < 0 ||
        offer_num(l->xs, base, "meta-ref", UINT32_MAX, &metaref, why, sizeof(why)) < 0 ||
        offer_num(l->xs, base, "event-channel", UINT32_MAX, &rport, why, sizeof(why)) < 0)
        goto refuse;
    struct idm_conn_config geo = {.ring_slots = (uint32_t)slots,
                                  .slot_size = (uint32_t)slot_size,
                                  .window_size = window};
    struct idm_layout lay;
    if (idm_layout_compute(&geo, &lay) < 0) {
        snprintf(why, sizeof(why), "geometry out of range: %llu slots of %llu bytes, window %llu",
                 (unsigned long long)slots, (unsigned long long)slot_size,
                 (unsigned long long)window);
        goto refuse;
    }
    if (lay.total / IDM_PAGE_SIZE != pages) {
        snprintf(why, sizeof(why), "pages %llu does not match the geometry (%llu pages)",
                 (unsigned long long)pages, (unsigned long long)(lay.total / IDM_PAGE_SIZE));
        goto refuse;
    }
    uint32_t ndir = (uint32_t)((pages + XEN_REFS_PER_PAGE - 1) / XEN_REFS_PER_PAGE);
    uint32_t dirrefs[XEN_MAX_DIR];
    if (xs_get_key(l->xs, base, "dir-refs", v, sizeof(v)) < 0 || parse_refs(v, dirrefs, ndir) < 0) {
        snprintf(why, sizeof(why), "dir-refs is not a list of %u grant references", ndir);
        goto refuse;
    }

    x = xen_conn_new(IDM_ROLE_SERVER);
    refs = calloc(pages, sizeof(*refs));
    if (!x || !refs) {
        rc = -ENOMEM;
        snprintf(why, sizeof(why), "out of memory");
        goto refuse;
    }
    x->peer_domid = domid;
    strcpy(x->base, base);
    strcpy(x->nonce, nonce);
    x->xce = xenevtchn_open(NULL, 0);
    if (!x->xce) {
        snprintf(why, sizeof(why), "opening the event channel device: %s", strerror(errno));
        goto refuse;
    }
    xenevtchn_port_or_error_t port = xenevtchn_bind_interdomain(x->xce, domid,
                                                                (evtchn_port_t)rport);
    if (port < 0) {
        snprintf(why, sizeof(why), "binding its event channel %llu: %s",
                 (unsigned long long)rport, strerror(errno));
        goto refuse;
    }
    x->port = (evtchn_port_t)port;
    x->port_bound = 1;
    if (set_nonblock(xenevtchn_fd(x->xce)) < 0) {
        snprintf(why, sizeof(why), "making the event channel non-blocking: %s", strerror(errno));
        goto refuse;
    }
    x->xgt = xengnttab_open(NULL, 0);
    if (!x->xgt) {
        snprintf(why, sizeof(why), "opening the grant-mapping device: %s", strerror(errno));
        goto refuse;
    }
    /* The directory: copied into private memory at once, then unmapped. */
    void *dir = xengnttab_map_domain_grant_refs(x->xgt, ndir, domid, dirrefs, PROT_READ);
    if (!dir) {
        snprintf(why, sizeof(why), "mapping its %u directory pages: %s", ndir, strerror(errno));
        goto refuse;
    }
    memcpy(refs, dir, (size_t)pages * sizeof(*refs));
    xengnttab_unmap(x->xgt, dir, ndir);
    x->data = xengnttab_map_domain_grant_refs(x->xgt, (uint32_t)pages, domid, refs,
                                              PROT_READ | PROT_WRITE);
    if (!x->data) {
        snprintf(why, sizeof(why), "mapping its %llu data pages: %s", (unsigned long long)pages,
                 strerror(errno));
        goto refuse;
    }
    x->npages = (uint32_t)pages;
    x->meta = xengnttab_map_grant_ref_notify(x->xgt, domid, (uint32_t)metaref,
                                             PROT_READ | PROT_WRITE, XEN_DRIVER_LIVE_OFF,
                                             x->port);
    if (!x->meta) {
        snprintf(why, sizeof(why), "mapping its meta page: %s", strerror(errno));
        goto refuse;
    }
    struct xen_meta mh;
    memcpy(&mh, x->meta, sizeof(mh));
    if (mh.magic != XEN_META_MAGIC || mh.version != XEN_META_VERSION || !peer_live(x)) {
        snprintf(why, sizeof(why), "meta page has magic %#x version %u live %u", mh.magic,
                 mh.version, mh.guest_live);
        goto refuse;
    }
    rc = idm_conn_attach(x->data, (size_t)pages * IDM_PAGE_SIZE, IDM_ROLE_SERVER, &xen_ops, x,
                         &c);
    if (rc < 0) {
        snprintf(why, sizeof(why), "its control page is invalid");
        rc = -EPROTO;
        goto refuse;
    }
    if (c->geo.ring_slots != geo.ring_slots || c->geo.slot_size != geo.slot_size ||
        c->geo.window_size != geo.window_size) {
        snprintf(why, sizeof(why), "control page geometry differs from the one in xenstore");
        goto refuse;
    }
    /* A xenstore connection of its own, watching this guest's offer and domain deaths. */
    x->xs = xs_open(0);
    if (!x->xs || !xs_watch(x->xs, statepath, "vgpu-state") ||
        !xs_watch(x->xs, "@releaseDomain", "vgpu-release")) {
        snprintf(why, sizeof(why), "xenstore watch: %s", strerror(errno));
        goto refuse;
    }
    x->epfd = epoll_of(xenevtchn_fd(x->xce), xs_fileno(x->xs));
    if (x->epfd < 0) {
        snprintf(why, sizeof(why), "epoll set-up: %s", strerror(-x->epfd));
        goto refuse;
    }
    c->peer.domid = (int32_t)domid;
    snprintf(c->label, sizeof(c->label), "xen server domid %" PRIu32, domid);
    /* Release: the flag is visible to the guest before the xenstore answer it waits for. */
    __atomic_store_n(&x->meta->driver_live, 1, __ATOMIC_RELEASE);
    char answer[64];
    snprintf(answer, sizeof(answer), "connected %s", nonce);
    rc = answer_if(l->xs, base, "", answer);
    if (rc < 0) {
        snprintf(why, sizeof(why), "answering in backend-state: %s",
                 rc == -ESTALE ? "the guest withdrew the offer meanwhile" : strerror(-rc));
        rc = -EPROTO;
        goto refuse;
    }
    IDM_INFO("xen accept: domain %u connected (%llu pages, event channel %u)", domid,
             (unsigned long long)pages, x->port);
    free(refs);
    *out = c;
    return 0;

refuse:
    IDM_ERR("xen accept: refusing the offer of domain %u at %s: %s", domid, base, why);
    char refusal[XEN_VALUE_MAX];
    snprintf(refusal, sizeof(refusal), "refused %s %s", nonce, why);
    answer_if(l->xs, base, "", refusal);
    if (c) {
        c->tp = NULL;
        idm_conn_free(c);
    }
    xen_conn_release(x);
    free(refs);
    return rc == -ENOMEM ? -ENOMEM : -EPROTO;
}

static int xen_accept(struct idm_listener *base, struct idm_conn **out)
{
    struct xen_listener *l = (struct xen_listener *)base;
    if (!l || !out)
        return -EINVAL;
    uint64_t cnt;
    if (read(l->evfd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
        IDM_WARN("xen accept: reading the listener's eventfd: %s", strerror(errno));
    listener_collect(l);
    int rc = -EAGAIN;
    while (l->nqueue > 0) {
        struct offer_ref o = l->queue[0];
        memmove(l->queue, l->queue + 1, (l->nqueue - 1) * sizeof(*l->queue));
        l->nqueue--;
        if (try_offer(l, o.domid, o.nonce, out) == 0) {
            rc = 0;
            break;
        }
    }
    if (l->nqueue > 0) {
        cnt = 1; /* more offers queued: keep the listener readable */
        if (write(l->evfd, &cnt, sizeof(cnt)) < 0)
            IDM_WARN("xen accept: writing the listener's eventfd: %s", strerror(errno));
    }
    return rc;
}

static int xen_listen(const char *address, const struct idm_conn_config *cfg,
                      struct idm_listener **out)
{
    (void)cfg; /* the guest chooses the geometry; the driver checks it against idm.h's limits */
    if (!out)
        return -EINVAL;
    if (!address || !*address)
        address = IDM_XEN_DEFAULT_PATH;
    /* "<guest-domid>:<rel>" takes that guest's offers only (a zone's worker); "<rel>" all. */
    uint32_t only = XEN_ANY_DOMAIN;
    char rel[IDM_XEN_REL_MAX + 1];
    if (strchr(address, ':') ? parse_client_address(address, &only, rel, sizeof(rel)) < 0
                             : (!valid_rel(address) || strlen(address) >= sizeof(rel))) {
        IDM_ERR("xen listen: address \"%s\" is not [<guest-domid>:]<relative xenstore path> "
                "such as %s", address, IDM_XEN_DEFAULT_PATH);
        return -EINVAL;
    }
    if (!strchr(address, ':'))
        strcpy(rel, address);
    struct xen_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->base.transport = &idm_transport_xen;
    l->epfd = -1;
    l->evfd = -1;
    l->only = only;
    strcpy(l->rel, rel);
    int rc;
    l->xs = xs_open(0);
    if (!l->xs) {
        rc = neg_errno(ENOENT);
        IDM_ERR("xen listen %s: cannot open xenstore: %s (xenstored running, xenfs mounted?)",
                address, strerror(-rc));
        goto close_listener;
    }
    if (read_self_domid(l->xs, &l->self) < 0)
        l->self = 0; /* dom0 may have no "domid" key */
    snprintf(l->token, sizeof(l->token), "vgpu-offer-%d", (int)getpid());
    if (!xs_watch(l->xs, "/local/domain", l->token)) {
        rc = neg_errno(EIO);
        IDM_ERR("xen listen %s: watching /local/domain failed: %s", address, strerror(-rc));
        goto close_listener;
    }
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->evfd < 0) {
        rc = neg_errno(EMFILE);
        IDM_ERR("xen listen %s: eventfd: %s", address, strerror(-rc));
        goto close_listener;
    }
    l->epfd = epoll_of(xs_fileno(l->xs), l->evfd);
    if (l->epfd < 0) {
        rc = l->epfd;
        IDM_ERR("xen listen %s: epoll set-up: %s", address, strerror(-rc));
        goto close_listener;
    }
    if (l->only == XEN_ANY_DOMAIN)
        IDM_INFO("xen listen: watching /local/domain/*/%s for offers (domain %u)", l->rel,
                 l->self);
    else
        IDM_INFO("xen listen: watching /local/domain/%u/%s for offers (domain %u)", l->only,
                 l->rel, l->self);
    *out = &l->base;
    return 0;

close_listener:
    xen_listener_close(&l->base);
    return rc;
}

const struct idm_transport idm_transport_xen = {
    .name = "xen",
    .listen = xen_listen,
    .listener_fd = xen_listener_fd,
    .accept = xen_accept,
    .listener_close = xen_listener_close,
    .connect = xen_connect,
};
