/* transport_posix.c - the POSIX transport: a Unix socket per zone; on accept the server creates
 * a sealed memfd holding the shared layout plus two eventfd doorbells (one per direction) and
 * passes the three descriptors with SCM_RIGHTS. The socket stays open only to tell when the
 * peer is gone (EOF/HUP), so a wait never outlives the peer. */
#include "idm_conn_internal.h"
#include "idm_log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define POSIX_HELLO_MAGIC 0x4F4C4548u /* "HELO" */
#define POSIX_HELLO_TIMEOUT_MS 10000
#define POSIX_NFDS 3 /* memfd, client->server doorbell, server->client doorbell */

/* Sent by the server with the descriptors, in the same sendmsg. */
struct posix_hello {
    uint32_t magic;   /* POSIX_HELLO_MAGIC */
    uint32_t version; /* IDM_PROTOCOL_VERSION */
    uint64_t shm_size;
};

struct posix_listener {
    struct idm_listener base; /* first: idm_listener pointers are posix_listener pointers */
    int fd;
    dev_t dev;
    ino_t ino;
    struct idm_conn_config cfg;
    struct idm_layout layout;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct posix_conn {
    int sock;     /* peer-death detection only */
    int efd_in;   /* our doorbell: the peer writes, we poll and read */
    int efd_out;  /* the peer's doorbell */
    int epfd;     /* idm_conn_fd: efd_in + sock */
};

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* ---- connection hooks ---- */

static int posix_notify(struct idm_conn *c)
{
    struct posix_conn *p = c->tp;
    uint64_t one = 1;
    for (;;) {
        ssize_t n = write(p->efd_out, &one, sizeof(one));
        if (n == (ssize_t)sizeof(one))
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0; /* counter saturated: the doorbell is already pending */
        return n < 0 ? -errno : -EIO;
    }
}

static int posix_kick_self(struct idm_conn *c)
{
    struct posix_conn *p = c->tp;
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(p->efd_in, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

/* Looks at the socket after poll flagged it: -EPIPE when the peer closed, -EPROTO when it sent
 * bytes it never should, 0 otherwise. */
static int posix_sock_state(struct posix_conn *p, short revents)
{
    if (revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL))
        return -EPIPE;
    if (revents & POLLIN) {
        char byte;
        ssize_t n = recv(p->sock, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0)
            return -EPIPE;
        if (n > 0)
            return -EPROTO;
        if (errno != EAGAIN && errno != EINTR)
            return -EPIPE;
    }
    return 0;
}

static int posix_wait(struct idm_conn *c, int timeout_ms)
{
    struct posix_conn *p = c->tp;
    struct pollfd pfd[2] = {
        {.fd = p->efd_in, .events = POLLIN},
        {.fd = p->sock, .events = POLLIN | POLLRDHUP},
    };
    int n = poll(pfd, 2, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n == 0)
        return -EAGAIN;
    if (pfd[0].revents & POLLIN) {
        uint64_t cnt;
        ssize_t r = read(p->efd_in, &cnt, sizeof(cnt));
        if (r < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
    }
    if (pfd[1].revents) {
        int rc = posix_sock_state(p, pfd[1].revents);
        if (rc == -EPROTO)
            IDM_ERR("%s: peer wrote unexpected bytes on the control socket", c->label);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int posix_fd(struct idm_conn *c)
{
    struct posix_conn *p = c->tp;
    return p->epfd;
}

static void posix_disconnect(struct idm_conn *c)
{
    struct posix_conn *p = c->tp;
    /* EOF for the peer, and POLLHUP for our own poll in posix_wait. */
    if (shutdown(p->sock, SHUT_RDWR) != 0 && errno != ENOTCONN)
        IDM_WARN("%s: shutdown of the socket failed: %s", c->label, strerror(errno));
}

static void posix_conn_release(struct posix_conn *p)
{
    if (!p)
        return;
    close_fd(&p->epfd);
    close_fd(&p->efd_in);
    close_fd(&p->efd_out);
    if (p->sock >= 0)
        shutdown(p->sock, SHUT_RDWR); /* EOF for the peer even if a fork kept a copy */
    close_fd(&p->sock);
    free(p);
}

static void posix_close(struct idm_conn *c)
{
    if (c->base && munmap(c->base, c->map_size) != 0)
        IDM_WARN("%s: munmap of the shared region failed: %s", c->label, strerror(errno));
    c->base = NULL;
    posix_conn_release(c->tp);
    c->tp = NULL;
}

static const struct idm_conn_ops posix_ops = {
    .name = "posix",
    .notify = posix_notify,
    .wait = posix_wait,
    .fd = posix_fd,
    .kick_self = posix_kick_self,
    .disconnect = posix_disconnect,
    .close = posix_close,
};

static struct posix_conn *posix_conn_new(void)
{
    struct posix_conn *p = malloc(sizeof(*p));
    if (p)
        *p = (struct posix_conn){.sock = -1, .efd_in = -1, .efd_out = -1, .epfd = -1};
    return p;
}

/* Builds the pollable fd: readable when our doorbell is pending or the socket hangs up. */
static int posix_make_epoll(struct posix_conn *p)
{
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = p->efd_in};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->efd_in, &ev) != 0)
        return -errno;
    ev = (struct epoll_event){.events = EPOLLIN | EPOLLRDHUP, .data.fd = p->sock};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->sock, &ev) != 0)
        return -errno;
    return 0;
}

static void posix_fill_peer(struct idm_conn *c, int sock)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        c->peer.pid = cred.pid;
        c->peer.uid = (int32_t)cred.uid;
    } else {
        IDM_WARN("%s: SO_PEERCRED failed: %s", c->label, strerror(errno));
    }
    c->peer.domid = -1;
    snprintf(c->label, sizeof(c->label), "posix %s, peer pid %d uid %d",
             c->role == IDM_ROLE_SERVER ? "server" : "client", c->peer.pid, c->peer.uid);
}

/* ---- server ---- */

static int posix_listen(const char *address, const struct idm_conn_config *cfg,
                        struct idm_listener **out)
{
    if (!address || !out)
        return -EINVAL;
    struct posix_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    int rc;
    l->base.transport = &idm_transport_posix;
    l->fd = -1;
    /* One byte spare: the socket is bound at "<address>~" and renamed once it listens. */
    if (strlen(address) + 1 >= sizeof(l->path)) {
        IDM_ERR("posix listen %s: socket path longer than %zu bytes", address,
                sizeof(l->path) - 2);
        rc = -ENAMETOOLONG;
        goto free_listener;
    }
    strcpy(l->path, address);
    if (cfg)
        l->cfg = *cfg;
    idm_conn_config_defaults(&l->cfg);
    rc = idm_layout_compute(&l->cfg, &l->layout);
    if (rc < 0) {
        IDM_ERR("posix listen %s: invalid geometry (%u slots of %u bytes, window %llu bytes)",
                address, l->cfg.ring_slots, l->cfg.slot_size,
                (unsigned long long)l->cfg.window_size);
        goto free_listener;
    }
    struct stat st;
    if (lstat(address, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            IDM_ERR("posix listen %s: path exists and is not a socket; not removing it", address);
            rc = -EEXIST;
            goto free_listener;
        }
        if (unlink(address) != 0) {
            rc = -errno;
            IDM_ERR("posix listen %s: removing the stale socket failed: %s", address,
                    strerror(errno));
            goto free_listener;
        }
        IDM_INFO("posix listen %s: removed a stale socket", address);
    }
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (l->fd < 0) {
        rc = -errno;
        IDM_ERR("posix listen %s: socket: %s", address, strerror(errno));
        goto free_listener;
    }
    /* Bound and made to listen under a temporary name, then renamed: a client never finds a
     * socket at the address that does not accept yet (it would get ECONNREFUSED). */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s~", l->path);
    if (lstat(sa.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(sa.sun_path); /* a server that died between bind and rename left it */
    if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        rc = -errno;
        IDM_ERR("posix listen %s: bind %s: %s", address, sa.sun_path, strerror(errno));
        goto close_fd;
    }
    /* Before listen(): nobody can connect while the mode is still the umask's. */
    if (chmod(sa.sun_path, 0600) != 0) {
        rc = -errno;
        IDM_ERR("posix listen %s: chmod 0600: %s", address, strerror(errno));
        goto unlink_tmp;
    }
    if (lstat(sa.sun_path, &st) != 0) {
        rc = -errno;
        IDM_ERR("posix listen %s: stat after bind: %s", address, strerror(errno));
        goto unlink_tmp;
    }
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    if (listen(l->fd, 64) != 0) {
        rc = -errno;
        IDM_ERR("posix listen %s: listen: %s", address, strerror(errno));
        goto unlink_tmp;
    }
    if (rename(sa.sun_path, address) != 0) {
        rc = -errno;
        IDM_ERR("posix listen %s: rename from %s: %s", address, sa.sun_path, strerror(errno));
        goto unlink_tmp;
    }
    *out = &l->base;
    return 0;

unlink_tmp:
    unlink(sa.sun_path);
close_fd:
    close(l->fd);
free_listener:
    free(l);
    return rc;
}

static int posix_listener_fd(struct idm_listener *base)
{
    struct posix_listener *l = (struct posix_listener *)base;
    return l ? l->fd : -EINVAL;
}

static void posix_listener_close(struct idm_listener *base)
{
    struct posix_listener *l = (struct posix_listener *)base;
    if (!l)
        return;
    struct stat st;
    /* Remove the path only if it is still our socket (a new server may have replaced it). */
    if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->path);
    close(l->fd);
    free(l);
}

static int posix_accept(struct idm_listener *base, struct idm_conn **out)
{
    struct posix_listener *l = (struct posix_listener *)base;
    if (!l || !out)
        return -EINVAL;
    int sock = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (sock < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
            return -EAGAIN;
        int rc = -errno;
        IDM_ERR("posix accept on %s: %s", l->path, strerror(errno));
        return rc;
    }
    const size_t size = (size_t)l->layout.total;
    int rc;
    struct idm_conn *c = NULL;
    void *base_addr = MAP_FAILED;
    struct posix_conn *p = posix_conn_new();
    if (!p) {
        rc = -ENOMEM;
        goto close_sock;
    }
    p->sock = sock;
    int memfd = memfd_create("idm-conn", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0) {
        rc = -errno;
        IDM_ERR("posix accept on %s: memfd_create: %s", l->path, strerror(errno));
        goto free_conn_state;
    }
    if (ftruncate(memfd, (off_t)size) != 0) {
        rc = -errno;
        IDM_ERR("posix accept on %s: ftruncate memfd to %zu bytes: %s", l->path, size,
                strerror(errno));
        goto close_memfd;
    }
    /* Sealed: the client cannot shrink the memory under us (SIGBUS) or grow it. */
    if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        rc = -errno;
        IDM_ERR("posix accept on %s: sealing the memfd: %s", l->path, strerror(errno));
        goto close_memfd;
    }
    base_addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (base_addr == MAP_FAILED) {
        rc = -errno;
        IDM_ERR("posix accept on %s: mmap %zu bytes: %s", l->path, size, strerror(errno));
        goto close_memfd;
    }
    rc = idm_shm_init(base_addr, size, &l->cfg, 0);
    if (rc < 0)
        goto unmap;
    int efd_c2s = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd_c2s < 0) {
        rc = -errno;
        IDM_ERR("posix accept on %s: eventfd: %s", l->path, strerror(errno));
        goto unmap;
    }
    p->efd_in = efd_c2s;
    int efd_s2c = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd_s2c < 0) {
        rc = -errno;
        IDM_ERR("posix accept on %s: eventfd: %s", l->path, strerror(errno));
        goto unmap;
    }
    p->efd_out = efd_s2c;
    rc = posix_make_epoll(p);
    if (rc < 0) {
        IDM_ERR("posix accept on %s: epoll set-up: %s", l->path, strerror(-rc));
        goto unmap;
    }
    rc = idm_conn_attach(base_addr, size, IDM_ROLE_SERVER, &posix_ops, p, &c);
    if (rc < 0)
        goto unmap;
    posix_fill_peer(c, sock);

    struct posix_hello hello = {
        .magic = POSIX_HELLO_MAGIC,
        .version = IDM_PROTOCOL_VERSION,
        .shm_size = size,
    };
    struct iovec iov = {.iov_base = &hello, .iov_len = sizeof(hello)};
    union {
        char buf[CMSG_SPACE(sizeof(int) * POSIX_NFDS)];
        struct cmsghdr align;
    } cm;
    memset(&cm, 0, sizeof(cm));
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = cm.buf,
        .msg_controllen = sizeof(cm.buf),
    };
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * POSIX_NFDS);
    int fds[POSIX_NFDS] = {memfd, efd_c2s, efd_s2c};
    memcpy(CMSG_DATA(cmsg), fds, sizeof(fds));
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(hello)) {
        rc = n < 0 ? -errno : -EIO;
        IDM_ERR("%s: sending the shared memory to the client failed: %s", c->label,
                n < 0 ? strerror(errno) : "short write");
        goto free_idm_conn;
    }
    close(memfd); /* the mapping keeps the memory */
    IDM_DEBUG("%s: connected (%u slots of %u bytes, window %llu bytes)", c->label,
              c->geo.ring_slots, c->geo.slot_size, (unsigned long long)c->geo.window_size);
    *out = c;
    return 0;

free_idm_conn:
    idm_conn_free(c);
unmap:
    munmap(base_addr, size);
close_memfd:
    close(memfd);
free_conn_state:
    posix_conn_release(p);
    return rc; /* posix_conn_release closed sock */
close_sock:
    close(sock);
    return rc;
}

/* ---- client ---- */

/* Receives the hello and exactly three descriptors. */
static int posix_recv_hello(int sock, const char *address, struct posix_hello *hello,
                            int fds[POSIX_NFDS])
{
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    int n = poll(&pfd, 1, POSIX_HELLO_TIMEOUT_MS);
    if (n < 0)
        return -errno;
    if (n == 0) {
        IDM_ERR("posix connect %s: no answer from the server within %d ms", address,
                POSIX_HELLO_TIMEOUT_MS);
        return -ETIMEDOUT;
    }
    struct iovec iov = {.iov_base = hello, .iov_len = sizeof(*hello)};
    union {
        char buf[CMSG_SPACE(sizeof(int) * POSIX_NFDS) + CMSG_SPACE(sizeof(int) * 8)];
        struct cmsghdr align;
    } cm;
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = cm.buf,
        .msg_controllen = sizeof(cm.buf),
    };
    ssize_t r;
    do {
        r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int rc = -errno;
        IDM_ERR("posix connect %s: receiving the hello: %s", address, strerror(errno));
        return rc;
    }
    int got = 0;
    int rc = 0;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
            continue;
        size_t nfd = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            if (got < POSIX_NFDS)
                fds[got] = fd;
            else
                close(fd); /* more than we asked for */
            got++;
        }
    }
    if (r == 0) {
        IDM_ERR("posix connect %s: server closed the connection before the hello", address);
        rc = -ECONNRESET;
    } else if ((size_t)r != sizeof(*hello) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        IDM_ERR("posix connect %s: malformed hello (%zd bytes, flags %#x)", address, r,
                (unsigned)msg.msg_flags);
        rc = -EPROTO;
    } else if (got != POSIX_NFDS) {
        IDM_ERR("posix connect %s: hello carried %d descriptors, want %d", address, got,
                POSIX_NFDS);
        rc = -EPROTO;
    } else if (hello->magic != POSIX_HELLO_MAGIC || hello->version != IDM_PROTOCOL_VERSION) {
        IDM_ERR("posix connect %s: hello magic %#x version %u (want %#x, %u)", address,
                hello->magic, hello->version, POSIX_HELLO_MAGIC, IDM_PROTOCOL_VERSION);
        rc = -EPROTO;
    }
    if (rc < 0) {
        for (int i = 0; i < got && i < POSIX_NFDS; i++)
            close(fds[i]);
    }
    return rc;
}

static int posix_connect(const char *address, struct idm_conn **out)
{
    if (!address || !out)
        return -EINVAL;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(address) >= sizeof(sa.sun_path)) {
        IDM_ERR("posix connect %s: socket path longer than %zu bytes", address,
                sizeof(sa.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, address, strlen(address) + 1);
    int rc;
    struct posix_conn *p = posix_conn_new();
    if (!p)
        return -ENOMEM;
    p->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->sock < 0) {
        rc = -errno;
        IDM_ERR("posix connect %s: socket: %s", address, strerror(errno));
        goto free_conn_state;
    }
    int r;
    do {
        r = connect(p->sock, (struct sockaddr *)&sa, sizeof(sa));
    } while (r != 0 && errno == EINTR);
    if (r != 0) {
        rc = -errno;
        IDM_ERR("posix connect %s: connect: %s", address, strerror(errno));
        goto free_conn_state;
    }
    struct posix_hello hello;
    int fds[POSIX_NFDS];
    rc = posix_recv_hello(p->sock, address, &hello, fds);
    if (rc < 0)
        goto free_conn_state;
    int memfd = fds[0];
    p->efd_out = fds[1]; /* client -> server */
    p->efd_in = fds[2];  /* server -> client */
    struct stat st;
    if (fstat(memfd, &st) != 0) {
        rc = -errno;
        IDM_ERR("posix connect %s: fstat of the shared memory: %s", address, strerror(errno));
        goto close_memfd;
    }
    const uint64_t max_size = IDM_PAGE_SIZE + 2ull * IDM_RING_SLOTS_MAX * IDM_SLOT_SIZE_MAX +
                              IDM_WINDOW_SIZE_MAX;
    if (st.st_size < (off_t)IDM_PAGE_SIZE || (uint64_t)st.st_size > max_size ||
        (uint64_t)st.st_size != hello.shm_size) {
        IDM_ERR("posix connect %s: shared memory of %lld bytes (hello says %llu, limit %llu)",
                address, (long long)st.st_size, (unsigned long long)hello.shm_size,
                (unsigned long long)max_size);
        rc = -EPROTO;
        goto close_memfd;
    }
    int seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        IDM_ERR("posix connect %s: shared memory is not sealed against shrinking", address);
        rc = -EPROTO;
        goto close_memfd;
    }
    size_t size = (size_t)st.st_size;
    void *base_addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (base_addr == MAP_FAILED) {
        rc = -errno;
        IDM_ERR("posix connect %s: mmap %zu bytes: %s", address, size, strerror(errno));
        goto close_memfd;
    }
    close(memfd);
    memfd = -1;
    int fl = fcntl(p->sock, F_GETFL);
    if (fl < 0 || fcntl(p->sock, F_SETFL, fl | O_NONBLOCK) != 0) {
        rc = -errno;
        IDM_ERR("posix connect %s: making the socket non-blocking: %s", address,
                strerror(errno));
        goto unmap;
    }
    rc = posix_make_epoll(p);
    if (rc < 0) {
        IDM_ERR("posix connect %s: epoll set-up: %s", address, strerror(-rc));
        goto unmap;
    }
    struct idm_conn *c;
    rc = idm_conn_attach(base_addr, size, IDM_ROLE_CLIENT, &posix_ops, p, &c);
    if (rc < 0) {
        IDM_ERR("posix connect %s: the server's shared memory is invalid", address);
        goto unmap;
    }
    posix_fill_peer(c, p->sock);
    *out = c;
    return 0;

unmap:
    munmap(base_addr, size);
close_memfd:
    if (memfd >= 0)
        close(memfd);
free_conn_state:
    posix_conn_release(p);
    return rc;
}

const struct idm_transport idm_transport_posix = {
    .name = "posix",
    .listen = posix_listen,
    .listener_fd = posix_listener_fd,
    .accept = posix_accept,
    .listener_close = posix_listener_close,
    .connect = posix_connect,
};
