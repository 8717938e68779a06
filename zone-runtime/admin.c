/* admin.c - a client of gpu_proxy's admin socket for ATTACH/DETACH: one line out, the first
 * answer line back, within the socket's 5 s limits. */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

int admin_request(const char *sock, const char *request, char *answer, size_t len)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = 10};
    char line[512], *nl;
    size_t got = 0;
    ssize_t n;
    int fd, l = snprintf(line, sizeof(line), "%s\n", request);
    if (l < 0 || (size_t)l >= sizeof(line) || strlen(sock) >= sizeof(sa.sun_path)) {
        snprintf(answer, len, "request or socket path too long");
        return -1;
    }
    memcpy(sa.sun_path, sock, strlen(sock));
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        write(fd, line, (size_t)l) != l) {
        snprintf(answer, len, "gpu_proxy's admin socket %s: %s", sock, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    while (got < len - 1 && (n = read(fd, answer + got, len - 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    answer[got] = 0;
    if ((nl = strchr(answer, '\n')) != NULL)
        *nl = 0;
    if (got == 0)
        snprintf(answer, len, "gpu_proxy's admin socket %s closed without answering", sock);
    return strncmp(answer, "OK", 2) == 0 ? 0 : -1;
}

int admin_attach(const char *sock, const char *zone, int domid, char *answer, size_t len)
{
    char req[128];
    snprintf(req, sizeof(req), "ATTACH %s xen=%d", zone, domid);
    return admin_request(sock, req, answer, len);
}

int admin_detach(const char *sock, const char *zone, char *answer, size_t len)
{
    char req[128];
    snprintf(req, sizeof(req), "DETACH %s", zone);
    return admin_request(sock, req, answer, len);
}
