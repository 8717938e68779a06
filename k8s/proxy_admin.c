/* proxy_admin.c - talks to gpu_proxy's admin socket (PING, ADD, REMOVE, LIST, STATS; see
 * docs/CONTRACTS.md) with a bounded wait, and parses its replies. */
#include "proxy_admin.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_TIMEOUT_MS 5000
#define ADMIN_MAX_REPLY (1u << 20)

int parse_size(const char *s, uint64_t *out)
{
    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    default: break;
    }
    if (shift && *end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end != '\0')
        return -EINVAL;
    if (shift && v > (UINT64_MAX >> shift))
        return -EINVAL;
    *out = (uint64_t)v << shift;
    return 0;
}

uint64_t find_size_token(const char *text, const char *key)
{
    size_t klen = strlen(key);
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\n' || *p == '\t')
            p++;
        const char *tok = p;
        while (*p && *p != ' ' && *p != '\n' && *p != '\t')
            p++;
        size_t tlen = (size_t)(p - tok);
        if (tlen > klen + 1 && memcmp(tok, key, klen) == 0 && tok[klen] == '=') {
            char val[32];
            size_t vlen = tlen - klen - 1;
            if (vlen >= sizeof(val))
                continue;
            memcpy(val, tok + klen + 1, vlen);
            val[vlen] = '\0';
            uint64_t v;
            if (parse_size(val, &v) == 0)
                return v;
        }
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int admin_request(const char *sock, const char *line, char **reply, char *err, size_t errlen)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc;
    *reply = NULL;
    if (strlen(sock) >= sizeof(addr.sun_path)) {
        fmt_msg(err, errlen, "admin socket path too long: %s", sock);
        return -ENAMETOOLONG;
    }
    strcpy(addr.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        fmt_msg(err, errlen, "socket: %s", strerror(errno));
        return rc;
    }
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        rc = -errno;
        fmt_msg(err, errlen, "connect %s: %s", sock, strerror(errno));
        goto close_fd;
    }
    size_t llen = strlen(line);
    char *req = malloc(llen + 2);
    if (!req) {
        rc = -ENOMEM;
        fmt_msg(err, errlen, "out of memory");
        goto close_fd;
    }
    memcpy(req, line, llen);
    req[llen] = '\n';
    size_t off = 0;
    while (off < llen + 1) {
        ssize_t n = send(fd, req + off, llen + 1 - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            fmt_msg(err, errlen, "sending '%s' to %s: %s", line, sock, strerror(errno));
            free(req);
            goto close_fd;
        }
        off += (size_t)n;
    }
    free(req);
    int64_t deadline = now_ms() + ADMIN_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = left > 0 ? poll(&pfd, 1, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            rc = -errno;
            fmt_msg(err, errlen, "poll on %s: %s", sock, strerror(errno));
            goto free_buf;
        }
        if (pr == 0) {
            rc = -ETIMEDOUT;
            fmt_msg(err, errlen, "no complete reply to '%s' from %s within %d ms", line, sock,
                     ADMIN_TIMEOUT_MS);
            goto free_buf;
        }
        if (len + 4096 + 1 > cap) {
            if (cap >= ADMIN_MAX_REPLY) {
                rc = -EMSGSIZE;
                fmt_msg(err, errlen, "reply from %s exceeds %u bytes", sock, ADMIN_MAX_REPLY);
                goto free_buf;
            }
            size_t ncap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                rc = -ENOMEM;
                fmt_msg(err, errlen, "out of memory");
                goto free_buf;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            fmt_msg(err, errlen, "reading the reply from %s: %s", sock, strerror(errno));
            goto free_buf;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (!buf || len == 0) {
        rc = -EPROTO;
        fmt_msg(err, errlen, "%s closed the connection without replying to '%s'", sock, line);
        goto free_buf;
    }
    buf[len] = '\0';
    if (strncmp(buf, "OK", 2) == 0 && (buf[2] == ' ' || buf[2] == '\n' || buf[2] == '\0')) {
        *reply = buf;
        close(fd);
        return 0;
    }
    if (strncmp(buf, "ERR", 3) == 0) {
        const char *why = buf[3] == ' ' ? buf + 4 : buf + 3;
        size_t wl = strcspn(why, "\n");
        fmt_msg(err, errlen, "%.*s", (int)wl, why);
        rc = -EREMOTEIO;
    } else {
        size_t wl = strcspn(buf, "\n");
        fmt_msg(err, errlen, "unexpected reply from %s: %.*s", sock, (int)(wl > 200 ? 200 : wl),
                 buf);
        rc = -EPROTO;
    }
free_buf:
    free(buf);
close_fd:
    close(fd);
    return rc;
}

/* The first reply line after "OK" and its space, without the newline. */
static void first_line_rest(const char *reply, char *out, size_t outlen)
{
    const char *p = reply + 2;
    if (*p == ' ')
        p++;
    size_t n = strcspn(p, "\n");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

int admin_ping(const char *sock, char *info, size_t infolen, char *err, size_t errlen)
{
    char *reply;
    int rc = admin_request(sock, "PING", &reply, err, errlen);
    if (rc < 0)
        return rc;
    if (info && infolen)
        first_line_rest(reply, info, infolen);
    free(reply);
    return 0;
}

int admin_add(const char *sock, const char *name, uint64_t quota, char *zone_sock,
              size_t zone_sock_len, char *err, size_t errlen)
{
    char line[160];
    char *reply;
    snprintf(line, sizeof(line), "ADD %s %llu", name, (unsigned long long)quota);
    int rc = admin_request(sock, line, &reply, err, errlen);
    if (rc < 0)
        return rc;
    first_line_rest(reply, zone_sock, zone_sock_len);
    free(reply);
    if (zone_sock[0] != '/') {
        fmt_msg(err, errlen, "ADD %s: the proxy's reply names no socket path", name);
        return -EPROTO;
    }
    return 0;
}

int admin_remove(const char *sock, const char *name, char *err, size_t errlen)
{
    char line[96];
    char *reply;
    snprintf(line, sizeof(line), "REMOVE %s", name);
    int rc = admin_request(sock, line, &reply, err, errlen);
    if (rc == 0)
        free(reply);
    return rc;
}

void admin_parse_zone_keys(const char *line, struct admin_zone *z)
{
    const char *p = line;
    z->state[0] = 0;
    z->restarts = 0;
    for (int field = 0; *p; field++) {
        p += strspn(p, " \t\n");
        size_t tlen = strcspn(p, " \t\n");
        const char *tok = p;
        p += tlen;
        if (field < 4 || tlen == 0)
            continue;
        if (tlen > 6 && memcmp(tok, "state=", 6) == 0 && tlen - 6 < sizeof(z->state) &&
            strspn(tok + 6, "abcdefghijklmnopqrstuvwxyz") == tlen - 6) {
            memcpy(z->state, tok + 6, tlen - 6);
            z->state[tlen - 6] = 0;
        } else if (tlen > 9 && tlen <= 29 && memcmp(tok, "restarts=", 9) == 0 &&
                   strspn(tok + 9, "0123456789") == tlen - 9) {
            unsigned long long v = strtoull(tok + 9, NULL, 10);
            z->restarts = v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
        }
    }
}

int admin_list(const char *sock, struct admin_zone **zones, size_t *n, char *err, size_t errlen)
{
    char *reply;
    *zones = NULL;
    *n = 0;
    int rc = admin_request(sock, "LIST", &reply, err, errlen);
    if (rc < 0)
        return rc;
    unsigned long count = 0;
    if (sscanf(reply, "OK %lu", &count) != 1 || count > 65536) {
        fmt_msg(err, errlen, "LIST: bad first line from %s", sock);
        free(reply);
        return -EPROTO;
    }
    struct admin_zone *z = calloc(count ? count : 1, sizeof(*z));
    if (!z) {
        free(reply);
        fmt_msg(err, errlen, "out of memory");
        return -ENOMEM;
    }
    char *save = NULL;
    char *line = strtok_r(reply, "\n", &save);     /* the OK line */
    size_t got = 0;
    while (got < count && (line = strtok_r(NULL, "\n", &save))) {
        char name[64];
        char quota[32], used[32];
        unsigned clients;
        if (sscanf(line, "%63s %31s %31s %u", name, quota, used, &clients) != 4 ||
            parse_size(quota, &z[got].quota) < 0 || parse_size(used, &z[got].used) < 0) {
            fmt_msg(err, errlen, "LIST: cannot parse line '%.80s' from %s", line, sock);
            free(z);
            free(reply);
            return -EPROTO;
        }
        snprintf(z[got].name, sizeof(z[got].name), "%s", name);
        z[got].clients = clients;
        admin_parse_zone_keys(line, &z[got]);
        got++;
    }
    free(reply);
    if (got != count) {
        fmt_msg(err, errlen, "LIST: %lu zones announced, %zu listed by %s", count, got, sock);
        free(z);
        return -EPROTO;
    }
    *zones = z;
    *n = got;
    return 0;
}

uint64_t admin_total_memory(const char *sock)
{
    static const char *const keys[] = {"total_bytes", "memory_bytes", "total_memory", "total",
                                       "memory"};
    static const char *const cmds[] = {"PING", "STATS"};
    char err[256];
    for (size_t c = 0; c < 2; c++) {
        char *reply;
        if (admin_request(sock, cmds[c], &reply, err, sizeof(err)) < 0)
            continue;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            uint64_t v = find_size_token(reply, keys[k]);
            if (v) {
                free(reply);
                return v;
            }
        }
        free(reply);
    }
    return 0;
}
