/* xen_admin.c - sends one request line to gpu_proxy's admin socket in dom0 and prints the
 * answer (busybox's nc has no Unix sockets). Used by scenario.sh to bind a zone to a guest at
 * run time (ATTACH/DETACH). Usage: xen_admin SOCKET 'REQUEST'; exit 0 when the answer starts
 * with "OK", 1 for an "ERR" answer, 2 when the socket could not be used. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char line[512], out[4096];
    size_t got = 0;
    ssize_t n;
    int fd, len;

    if (argc != 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "usage: xen_admin SOCKET 'REQUEST'\n");
        return 2;
    }
    len = snprintf(line, sizeof(line), "%s\n", argv[2]);
    if (len < 0 || (size_t)len >= sizeof(line)) {
        fprintf(stderr, "xen_admin: request too long\n");
        return 2;
    }
    memcpy(sa.sun_path, argv[1], strlen(argv[1]));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "xen_admin: %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    if (write(fd, line, (size_t)len) != len) {
        fprintf(stderr, "xen_admin: sending the request: %s\n", strerror(errno));
        return 2;
    }
    while (got < sizeof(out) - 1 && (n = read(fd, out + got, sizeof(out) - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = 0;
    close(fd);
    fputs(out, stdout);
    return strncmp(out, "OK", 2) == 0 ? 0 : 1;
}
