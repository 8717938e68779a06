/* admin.c - the admin socket of gpu_proxy's supervisor: DIR/admin.sock (mode 0600), served on
 * the supervisor's non-blocking connections (conn.c: bounded line, idle timeout, bounded
 * answer); answers PING, ADD, REMOVE, LIST, STATS and METRICS from the zone registry and the
 * figures the workers publish. REMOVE is answered when the zone's workers have ended, so it
 * never holds up other requests. */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "sup_internal.h"
#include "supervisor.h"
#include "zone.h"

static void admin_serve(struct sup *S, struct sconn *c);

static int line_complete(const char *in, size_t len)
{
    return memchr(in, '\n', len) != NULL;
}

int admin_open(struct sup *S)
{
    struct conn_server *a = &S->admin;
    char path[300];

    conn_server_init(a, "admin");
    a->in_max = ADMIN_LINE_MAX;
    a->out_max = ADMIN_OUT_MAX;
    a->complete = line_complete;
    a->serve = admin_serve;
    a->too_long = "ERR request too long (at most 511 bytes and a newline)\n";
    a->busy = "ERR busy: too many admin connections\n";
    snprintf(path, sizeof(path), "%s/admin.sock", S->cfg->listen_dir);
    return conn_listen_unix(a, path);
}

/* An answer built in a memory stream: sent, or an error when it could not be built. */
static void answer_stream(struct sconn *c, FILE *f, char **out, size_t *outlen, int rc)
{
    if (fclose(f) != 0 || rc != 0)
        conn_answer_str(c, "ERR out of memory\n");
    else if (*outlen > ADMIN_OUT_MAX)
        conn_answer_str(c, "ERR answer too long\n");
    else
        conn_answer(c, *out, *outlen);
    free(*out);
}

static void cmd_list(struct sup *S, struct sconn *c)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    struct zone_snap *zs = malloc(sizeof(*zs));
    unsigned n = 0;

    if (f == NULL || zs == NULL) {
        if (f)
            fclose(f);
        free(out);
        free(zs);
        conn_answer_str(c, "ERR out of memory\n");
        return;
    }
    for (struct szone *z = S->zones; z; z = z->next)
        n++;
    fprintf(f, "OK %u\n", n);
    for (struct szone *z = S->zones; z; z = z->next) {
        struct wproc *w = sup_serving_worker(z);
        sup_zone_snap(z, zs);
        /* The first four fields are the contract; key=value fields may be added after them. */
        fprintf(f, "%s %llu %llu %d state=%s pid=%d restarts=%u faults=%u cgroup=%s xen=%d\n",
                z->name, (unsigned long long)z->quota, (unsigned long long)zs->used,
                zs->clients, zs->state, zs->pid, z->restarts, z->faults,
                cgroup_kind_name(z->cg_made && (w == NULL || w->cg) ? S->cg.kind : CGROUP_NONE),
                (int)z->xen_domid);
    }
    free(zs);
    answer_stream(c, f, &out, &outlen, 0);
}

/* Every figure of the GPU and of every zone at once (metrics.h, docs/CONTRACTS.md). */
static void cmd_metrics(struct sup *S, struct sconn *c)
{
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    struct gpu_snap g;
    struct zone_snap *zs;
    int n;

    if (f == NULL) {
        conn_answer_str(c, "ERR out of memory\n");
        return;
    }
    n = sup_collect(S, &g, &zs);
    if (n < 0) {
        answer_stream(c, f, &out, &outlen, n);
        return;
    }
    answer_stream(c, f, &out, &outlen, metrics_admin_text(f, &g, zs, (unsigned)n));
    free(zs);
}

static void cmd_stats(struct sup *S, struct sconn *c)
{
    uint64_t scrubbed = S->dead_scrubbed, allocated = 0;
    unsigned zones = 0, workers = 0, restarts = 0;
    char buf[256];

    for (struct szone *z = S->zones; z; z = z->next) {
        zones++;
        restarts += z->restarts;
        for (struct wproc *w = z->workers; w; w = w->next) {
            workers++;
            scrubbed += __atomic_load_n(&w->st->scrubbed_bytes, __ATOMIC_RELAXED);
            allocated += __atomic_load_n(&w->st->allocated_bytes, __ATOMIC_RELAXED);
        }
    }
    snprintf(buf, sizeof(buf),
             "OK zones=%u scrubbed_bytes=%llu allocated_bytes=%llu workers=%u restarts=%u\n",
             zones, (unsigned long long)scrubbed, (unsigned long long)allocated, workers,
             restarts);
    conn_answer_str(c, buf);
}

/* ATTACH <zone> xen=<domid> (what binds a Xen guest to its zone) / DETACH <zone> (how). */
static void cmd_bind(struct sup *S, struct sconn *c, const char *name, const char *target)
{
    struct szone *z = sup_zone_get(S, name);
    long domid = -1;
    char *end = NULL;
    int rc;

    if (z == NULL) {
        conn_answer_str(c, "ERR no such zone\n");
        return;
    }
    if (target) {
        if (strncmp(target, "xen=", 4) == 0) {
            errno = 0;
            domid = strtol(target + 4, &end, 10);
        }
        if (end == NULL || *end || end == target + 4 || errno || domid < 1 || domid >= 0x7ff0) {
            conn_answer_str(c, "ERR ATTACH wants <zone> xen=<domid>, a guest's domain id "
                               "(1..32751)\n");
            return;
        }
    }
    rc = sup_zone_bind_xen(S, z, (int32_t)domid);
    switch (rc) {
    case 0:
        conn_answer_str(c, "OK\n");
        break;
    case -EOPNOTSUPP:
        conn_answer_str(c, "ERR this gpu_proxy has no Xen transport (start it with --xen)\n");
        break;
    case -EBUSY:
        conn_answer_str(c, z->removing ? "ERR zone is being removed\n"
                                       : "ERR zone is bound to a domain already (DETACH first)\n");
        break;
    case -ENOENT:
        conn_answer_str(c, "ERR zone is bound to no domain\n");
        break;
    case -EEXIST:
        conn_answer_str(c, "ERR another zone is bound to that domain\n");
        break;
    default:
        conn_answer_str(c, "ERR no worker could be started for the zone (see the log)\n");
        break;
    }
}

static void cmd_add(struct sup *S, struct sconn *c, const char *name, const char *quota_s)
{
    char buf[512];
    uint64_t quota;
    int rc;

    if (!zone_name_valid(name)) {
        conn_answer_str(c, "ERR invalid zone name\n");
        return;
    }
    if (parse_size(quota_s, &quota) != 0) {
        conn_answer_str(c, "ERR invalid quota\n");
        return;
    }
    rc = sup_zone_add(S, name, quota, -1);
    if (rc == -EEXIST) {
        conn_answer_str(c, "ERR zone exists\n");
    } else if (rc != 0) {
        snprintf(buf, sizeof(buf), "ERR cannot add zone: %s\n", strerror(-rc));
        conn_answer_str(c, buf);
    } else {
        snprintf(buf, sizeof(buf), "OK %s/%s.sock\n", S->cfg->listen_dir, name);
        conn_answer_str(c, buf);
        log_info("zone=%s: added through the admin socket", name);
    }
}

/* Answers one request line (REMOVE: once the zone is gone, see sup_zone_remove). */
static void admin_command(struct sup *S, struct sconn *c, char *line)
{
    char *save = NULL, *cmd, *a1, *a2, *extra;
    char buf[512];

    cmd = strtok_r(line, " \t", &save);
    a1 = strtok_r(NULL, " \t", &save);
    a2 = strtok_r(NULL, " \t", &save);
    extra = strtok_r(NULL, " \t", &save);
    if (cmd == NULL) {
        conn_answer_str(c, "ERR empty request\n");
    } else if (strcmp(cmd, "PING") == 0 && a1 == NULL) {
        snprintf(buf, sizeof(buf), "OK gpu_proxy %s backend=%s total_bytes=%llu\n",
                 GPU_PROXY_VERSION, S->cfg->be->name, (unsigned long long)S->total_mem);
        conn_answer_str(c, buf);
    } else if (strcmp(cmd, "ADD") == 0 && a1 && a2 && !extra) {
        cmd_add(S, c, a1, a2);
    } else if (strcmp(cmd, "REMOVE") == 0 && a1 && !a2) {
        struct szone *z = sup_zone_get(S, a1);
        if (z == NULL) {
            conn_answer_str(c, "ERR no such zone\n");
        } else if (z->removing) {
            conn_answer_str(c, "ERR zone is being removed\n");
        } else {
            log_info("zone=%s: removal asked through the admin socket", z->name);
            c->state = SC_WAITING;
            c->deadline_ms = 0;
            sup_zone_remove(S, z, c);
        }
    } else if (strcmp(cmd, "ATTACH") == 0 && a1 && a2 && !extra) {
        cmd_bind(S, c, a1, a2);
    } else if (strcmp(cmd, "DETACH") == 0 && a1 && !a2) {
        cmd_bind(S, c, a1, NULL);
    } else if (strcmp(cmd, "LIST") == 0 && a1 == NULL) {
        cmd_list(S, c);
    } else if (strcmp(cmd, "STATS") == 0 && a1 == NULL) {
        cmd_stats(S, c);
    } else if (strcmp(cmd, "METRICS") == 0 && a1 == NULL) {
        cmd_metrics(S, c);
    } else if (strcmp(cmd, "METRICS") == 0) {
        conn_answer_str(c, "ERR METRICS takes no argument (it answers version=1 with every "
                           "zone)\n");
    } else {
        conn_answer_str(c, "ERR unknown request\n");
    }
}

/* A request line (or what came before the peer's end): answered. */
static void admin_serve(struct sup *S, struct sconn *c)
{
    if (c->in_len == 0) {
        conn_answer_str(c, "ERR empty request\n");
        return;
    }
    c->in[strcspn(c->in, "\r\n")] = 0;
    log_debug("admin: %s", c->in);
    admin_command(S, c, c->in);
}
