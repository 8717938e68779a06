/* idm_test_util.h - helpers shared by the IDM tests: a scratch directory for sockets and a
 * connected client/server pair over the real POSIX transport inside one process. */
#ifndef IDM_TEST_UTIL_H
#define IDM_TEST_UTIL_H

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "idm_transport.h"

/* Makes a fresh directory under $TMPDIR (or /tmp) and a socket path in it. */
static inline void test_sock_path(char *buf, size_t len, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    char dir[160];
    snprintf(dir, sizeof(dir), "%.120s/idm-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
        abort();
    }
    snprintf(buf, len, "%s/%.32s.sock", dir, name);
}

/* Removes the socket file and its directory. */
static inline void test_sock_cleanup(const char *path)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    unlink(path);
    if (slash) {
        *slash = '\0';
        rmdir(dir);
    }
}

struct test_connector {
    const char *path;
    struct idm_conn *conn;
    int rc;
};

static inline void *test_connect_thread(void *arg)
{
    struct test_connector *tc = arg;
    tc->rc = idm_transport_posix.connect(tc->path, &tc->conn);
    return NULL;
}

/* Accepts one connection on l, waiting up to 10 s for it to arrive. */
static inline int test_accept(struct idm_listener *l, struct idm_conn **out)
{
    for (int i = 0; i < 1000; i++) {
        struct pollfd pfd = {.fd = idm_transport_posix.listener_fd(l), .events = POLLIN};
        int n = poll(&pfd, 1, 10);
        if (n < 0 && errno != EINTR)
            return -errno;
        int rc = idm_transport_posix.accept(l, out);
        if (rc != -EAGAIN)
            return rc;
    }
    return -ETIMEDOUT;
}

/* Connects a client to l (path) from a helper thread and accepts it here. */
static inline int test_pair(struct idm_listener *l, const char *path, struct idm_conn **srv,
                            struct idm_conn **cli)
{
    struct test_connector tc = {.path = path};
    pthread_t th;
    if (pthread_create(&th, NULL, test_connect_thread, &tc) != 0)
        return -EAGAIN;
    int rc = test_accept(l, srv);
    pthread_join(th, NULL);
    if (rc < 0) {
        if (tc.rc == 0)
            idm_close(tc.conn);
        return rc;
    }
    if (tc.rc < 0) {
        idm_close(*srv);
        return tc.rc;
    }
    *cli = tc.conn;
    return 0;
}

#endif /* IDM_TEST_UTIL_H */
