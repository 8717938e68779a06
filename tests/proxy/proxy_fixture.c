/* proxy_fixture.c - the integration tests' shared set-up (see proxy_fixture.h): start and stop a
 * gpu_proxy in a fresh directory, connect to its zones, read LIST and /proc. */
#include "proxy_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

int fx_start(struct proxy_fixture *f, const char *bin, const char *tag,
             const char *const *extra)
{
    if (bin != f->bin)
        snprintf(f->bin, sizeof(f->bin), "%s", bin);
    snprintf(f->dir, sizeof(f->dir), "/tmp/gpu-proxy-%s.XXXXXX", tag);
    f->pid = -1;
    if (mkdtemp(f->dir) == NULL) {
        perror("mkdtemp");
        return -1;
    }
    f->pid = proxy_start(f->bin, f->dir, extra);
    return f->pid > 0 ? 0 : -1;
}

int fx_stop(struct proxy_fixture *f)
{
    int rc = 0;

    if (f->pid > 0 && proxy_stop(f->pid) != 0)
        rc = -1;
    f->pid = -1;
    if (rmdir(f->dir) != 0)
        perror(f->dir);
    return rc;
}

void fx_connect(const struct proxy_fixture *f, struct pc *p, const char *zone)
{
    char path[300];

    snprintf(path, sizeof(path), "%s/%s.sock", f->dir, zone);
    assert_int_equal(pc_connect(p, path), 0);
}

int fx_admin(const struct proxy_fixture *f, const char *cmd, char *out, size_t outlen)
{
    return admin_cmd(f->dir, cmd, out, outlen);
}

int fx_zone_info(const struct proxy_fixture *f, const char *zone, struct pc_zone *out)
{
    if (admin_zone_info(f->dir, zone, out) != 0 || (~out->keys & PC_ZONE_ALL))
        return -1;
    return 0;
}

int fx_wait_worker(const struct proxy_fixture *f, const char *zone, int old_pid)
{
    for (int i = 0; i < 200; i++) {
        struct pc_zone z;
        if (fx_zone_info(f, zone, &z) == 0 && z.pid > 0 && z.pid != old_pid &&
            strcmp(z.state, "ready") == 0)
            return z.pid;
        usleep(25000);
    }
    return -1;
}

int fx_proc_field(int pid, const char *key, char *out, size_t cap)
{
    char path[64], line[256];
    FILE *fp;
    size_t kl = strlen(key);

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    fp = fopen(path, "r");
    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            snprintf(out, cap, "%s", line + kl + 1 + strspn(line + kl + 1, " \t"));
            out[strcspn(out, "\n")] = 0;
            fclose(fp);
            return 0;
        }
    }
    fclose(fp);
    return -1;
}

long fx_rss_kib(int pid)
{
    char v[64];

    return fx_proc_field(pid, "VmRSS", v, sizeof(v)) == 0 ? atol(v) : -1;
}

long long fx_cpu_ticks(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    FILE *fp;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    fp = fopen(path, "r");
    if (fp == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, fp);
    fclose(fp);
    buf[n] = 0;
    /* after "pid (comm) ": state is field 3, utime 14, stime 15 */
    p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

unsigned long long fx_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
}
