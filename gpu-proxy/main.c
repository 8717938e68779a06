/* main.c - gpu_proxy's command line and configuration file: picks the backend, the listen
 * directory, the zones and their quotas, the Xen settings and the log level, then runs the
 * server in the foreground. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "log.h"
#include "ptx/ptx.h"
#include "supervisor.h"
#include "zone.h"

#ifndef GPU_PROXY_DEFAULT_BACKEND
#define GPU_PROXY_DEFAULT_BACKEND "cuda"
#endif

const struct backend_ops *backend_by_name(const char *name)
{
    if (strcmp(name, "stub") == 0)
        return &backend_stub;
    if (strcmp(name, "cuda") == 0)
        return &backend_cuda;
    return NULL;
}

#define GPU_PROXY_KERNEL_WATCHDOG_DEFAULT 100000000000ull

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpu_proxy [options]\n"
            "Serves isolated GPU zones to libvgpu clients over IDM.\n\n"
            "  --backend stub|cuda      GPU backend (default " GPU_PROXY_DEFAULT_BACKEND ")\n"
            "  --listen DIR             socket directory: DIR/NAME.sock per zone, DIR/admin.sock\n"
            "                           (default /run/gpu-proxy)\n"
            "  --zone NAME[:QUOTA]      add a zone; QUOTA like 512M, 2G (default: no quota);\n"
            "                           repeatable. Without any zone, a zone \"default\" is made.\n"
            "  --config FILE            read options from FILE, one \"key = value\" per line\n"
            "                           (keys are the option names without dashes; # comments)\n"
            "  --log-level LEVEL        error|warn|info|debug|trace (default info)\n"
            "  --kernel-watchdog N      stub backend: a kernel launch in which one host thread\n"
            "                           interprets more than N instructions fails with\n"
            "                           CUDA_ERROR_LAUNCH_FAILED (default 100000000000, about\n"
            "                           8 minutes; 0 disables it)\n"
            "  --xen                    also serve Xen guests (grant tables, event channels)\n"
            "  --xen-path PATH          xenstore base path the Xen transport watches\n"
            "                           (default data/vgpu)\n"
            "  --xen-zone DOMID:NAME[:QUOTA]  serve domain DOMID as zone NAME; repeatable;\n"
            "                           guests of other domains are refused\n"
            "  --worker-user USER       started as root: each zone's worker runs as USER\n"
            "                           (default nobody; \"\" keeps root)\n"
            "  --sandbox on|off         the workers' seccomp allow-list (default on)\n"
            "  --worker-memory SIZE     RLIMIT_DATA of each worker, e.g. 4G (default: none)\n"
            "  --worker-files N         RLIMIT_NOFILE of each worker (default 1024)\n"
            "  --cgroup NAME|/PATH|off  started as root: a control group per zone under NAME\n"
            "                           (inside the proxy's own group) or /PATH (from the\n"
            "                           hierarchy's root), cgroup v2 or v1 (memory, cpu, pids):\n"
            "                           memory limit = --worker-memory, equal CPU weight,\n"
            "                           bounded tasks (default " GPU_PROXY_DEFAULT_CGROUP ")\n"
            "  --call-stats on|off      workers count calls per op family, their latency,\n"
            "                           failures and refusals for METRICS and --metrics\n"
            "                           (default on)\n"
            "  --metrics ADDR           serve Prometheus metrics (text format 0.0.4) at\n"
            "                           /metrics on ADDR: PORT or HOST:PORT (TCP, HOST\n"
            "                           default 127.0.0.1) or a Unix socket /PATH; \"off\"\n"
            "                           (the default) serves none\n"
            "  --help                   this text\n");
}

/* "NAME[:QUOTA]" -> name (64 bytes) and quota. */
static int parse_zone_spec(const char *spec, char name[64], uint64_t *quota)
{
    const char *colon = strchr(spec, ':');
    size_t n = colon ? (size_t)(colon - spec) : strlen(spec);

    *quota = 0;
    if (n >= 64) {
        fprintf(stderr, "gpu_proxy: zone name in \"%s\" is too long\n", spec);
        return -EINVAL;
    }
    memcpy(name, spec, n);
    name[n] = 0;
    if (!zone_name_valid(name)) {
        fprintf(stderr, "gpu_proxy: invalid zone name \"%s\" (letters, digits, _ . -)\n", name);
        return -EINVAL;
    }
    if (colon && parse_size(colon + 1, quota) != 0) {
        fprintf(stderr, "gpu_proxy: invalid quota \"%s\" for zone %s\n", colon + 1, name);
        return -EINVAL;
    }
    return 0;
}

static int add_zone(struct server_config *cfg, const char *spec)
{
    if (cfg->nzones == SERVER_MAX_ZONES_CFG) {
        fprintf(stderr, "gpu_proxy: too many zones\n");
        return -E2BIG;
    }
    if (parse_zone_spec(spec, cfg->zones[cfg->nzones].name, &cfg->zones[cfg->nzones].quota))
        return -EINVAL;
    cfg->nzones++;
    return 0;
}

static int add_xen_zone(struct server_config *cfg, const char *spec)
{
    struct xen_zone_cfg *x;
    char *end;
    long domid;

    errno = 0;
    domid = strtol(spec, &end, 10);
    if (errno || end == spec || *end != ':' || domid < 0 || domid > 0x7FEF) {
        fprintf(stderr, "gpu_proxy: --xen-zone wants DOMID:NAME[:QUOTA], got \"%s\"\n", spec);
        return -EINVAL;
    }
    if (cfg->nxen_zones == SERVER_MAX_ZONES_CFG) {
        fprintf(stderr, "gpu_proxy: too many Xen zones\n");
        return -E2BIG;
    }
    x = &cfg->xen_zones[cfg->nxen_zones];
    if (parse_zone_spec(end + 1, x->name, &x->quota))
        return -EINVAL;
    x->domid = (int32_t)domid;
    cfg->nxen_zones++;
    return 0;
}

static int read_config(struct server_config *cfg, const char *path, int depth);

/* Applies one option (key without dashes). value is NULL for flags. */
static int apply_option(struct server_config *cfg, const char *key, const char *value,
                        int depth)
{
    if (strcmp(key, "xen") == 0) {
        if (value && strcmp(value, "true") != 0 && strcmp(value, "yes") != 0 &&
            strcmp(value, "1") != 0) {
            cfg->xen = 0;
            return 0;
        }
        cfg->xen = 1;
        return 0;
    }
    if (value == NULL) {
        fprintf(stderr, "gpu_proxy: option %s needs a value\n", key);
        return -EINVAL;
    }
    if (strcmp(key, "backend") == 0) {
        cfg->be = backend_by_name(value);
        if (cfg->be == NULL) {
            fprintf(stderr, "gpu_proxy: unknown backend \"%s\" (stub or cuda)\n", value);
            return -EINVAL;
        }
    } else if (strcmp(key, "listen") == 0) {
        if (strlen(value) >= 100) {
            fprintf(stderr, "gpu_proxy: listen directory path is too long\n");
            return -EINVAL;
        }
        snprintf(cfg->listen_dir, sizeof(cfg->listen_dir), "%s", value);
    } else if (strcmp(key, "zone") == 0) {
        return add_zone(cfg, value);
    } else if (strcmp(key, "xen-zone") == 0) {
        return add_xen_zone(cfg, value);
    } else if (strcmp(key, "xen-path") == 0) {
        snprintf(cfg->xen_path, sizeof(cfg->xen_path), "%s", value);
    } else if (strcmp(key, "log-level") == 0) {
        int l = log_level_parse(value);
        if (l < 0) {
            fprintf(stderr, "gpu_proxy: unknown log level \"%s\"\n", value);
            return -EINVAL;
        }
        log_set_level(l);
    } else if (strcmp(key, "kernel-watchdog") == 0) {
        char *end;
        unsigned long long n;
        errno = 0;
        n = strtoull(value, &end, 10);
        if (errno != 0 || end == value || *end != 0 || value[0] == '-') {
            fprintf(stderr, "gpu_proxy: kernel-watchdog needs an instruction count, not \"%s\"\n",
                    value);
            return -EINVAL;
        }
        ptx_set_watchdog(n);
    } else if (strcmp(key, "worker-user") == 0) {
        if (strlen(value) >= sizeof(cfg->sandbox.user)) {
            fprintf(stderr, "gpu_proxy: worker user name is too long\n");
            return -EINVAL;
        }
        snprintf(cfg->sandbox.user, sizeof(cfg->sandbox.user), "%s", value);
    } else if (strcmp(key, "sandbox") == 0) {
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
            fprintf(stderr, "gpu_proxy: --sandbox wants on or off, not \"%s\"\n", value);
            return -EINVAL;
        }
        cfg->sandbox.seccomp = strcmp(value, "on") == 0;
    } else if (strcmp(key, "worker-memory") == 0) {
        if (parse_size(value, &cfg->sandbox.memory_max) != 0) {
            fprintf(stderr, "gpu_proxy: invalid --worker-memory \"%s\"\n", value);
            return -EINVAL;
        }
    } else if (strcmp(key, "worker-files") == 0) {
        uint64_t n;
        if (parse_size(value, &n) != 0 || n < 64 || n > 1048576) {
            fprintf(stderr, "gpu_proxy: --worker-files wants 64..1048576, not \"%s\"\n", value);
            return -EINVAL;
        }
        cfg->sandbox.max_files = (unsigned)n;
    } else if (strcmp(key, "cgroup") == 0) {
        if (strlen(value) >= 200 || value[0] == 0 || strstr(value, "..") != NULL) {
            fprintf(stderr, "gpu_proxy: --cgroup wants off, a name or /path (no \"..\"), not "
                    "\"%s\"\n", value);
            return -EINVAL;
        }
        snprintf(cfg->cgroup, sizeof(cfg->cgroup), "%s", value);
    } else if (strcmp(key, "call-stats") == 0) {
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
            fprintf(stderr, "gpu_proxy: --call-stats wants on or off, not \"%s\"\n", value);
            return -EINVAL;
        }
        cfg->call_stats = strcmp(value, "on") == 0;
    } else if (strcmp(key, "metrics") == 0) {
        if (strlen(value) >= 100 || value[0] == 0) {
            fprintf(stderr, "gpu_proxy: --metrics wants [HOST:]PORT, /PATH or off, not \"%s\"\n",
                    value);
            return -EINVAL;
        }
        snprintf(cfg->metrics, sizeof(cfg->metrics), "%s",
                 strcmp(value, "off") == 0 ? "" : value);
    } else if (strcmp(key, "config") == 0) {
        return read_config(cfg, value, depth + 1);
    } else {
        fprintf(stderr, "gpu_proxy: unknown option \"%s\"\n", key);
        return -EINVAL;
    }
    return 0;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = 0;
    return s;
}

static int read_config(struct server_config *cfg, const char *path, int depth)
{
    char line[1024];
    unsigned lineno = 0;
    FILE *f;
    int rc = 0;

    if (depth > 4) {
        fprintf(stderr, "gpu_proxy: config files nest too deeply at %s\n", path);
        return -ELOOP;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "gpu_proxy: cannot read config file %s: %s\n", path, strerror(errno));
        return -errno;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s = trim(line), *eq, *key, *value = NULL;
        lineno++;
        if (*s == 0 || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (eq) {
            *eq = 0;
            value = trim(eq + 1);
        }
        key = trim(s);
        rc = apply_option(cfg, key, value, depth);
        if (rc != 0) {
            fprintf(stderr, "gpu_proxy: %s:%u: invalid line\n", path, lineno);
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "gpu_proxy: reading %s failed\n", path);
        rc = -EIO;
    }
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    static struct server_config cfg;

    log_init();
    cfg.be = backend_by_name(GPU_PROXY_DEFAULT_BACKEND);
    /* A kernel that never ends must not hold a proxy thread for ever (the stub backend). */
    ptx_set_watchdog(GPU_PROXY_KERNEL_WATCHDOG_DEFAULT);
    snprintf(cfg.listen_dir, sizeof(cfg.listen_dir), "/run/gpu-proxy");
    snprintf(cfg.xen_path, sizeof(cfg.xen_path), "data/vgpu");
    snprintf(cfg.sandbox.user, sizeof(cfg.sandbox.user), "%s", SANDBOX_DEFAULT_USER);
    cfg.sandbox.seccomp = 1;
    cfg.sandbox.max_files = SANDBOX_DEFAULT_MAX_FILES;
    snprintf(cfg.cgroup, sizeof(cfg.cgroup), "%s", GPU_PROXY_DEFAULT_CGROUP);
    cfg.call_stats = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char key[64];
        const char *value = NULL;
        const char *eq;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "gpu_proxy: unexpected argument \"%s\"\n", a);
            usage(stderr);
            return 2;
        }
        a += 2;
        eq = strchr(a, '=');
        if (eq) {
            snprintf(key, sizeof(key), "%.*s", (int)(eq - a), a);
            value = eq + 1;
        } else {
            snprintf(key, sizeof(key), "%s", a);
            if (strcmp(key, "xen") != 0) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "gpu_proxy: --%s needs a value\n", key);
                    return 2;
                }
                value = argv[++i];
            }
        }
        if (apply_option(&cfg, key, value, 0) != 0) {
            usage(stderr);
            return 2;
        }
    }
    if (cfg.nzones == 0 && cfg.nxen_zones == 0)
        add_zone(&cfg, "default");
    umask(0077); /* sockets and anything else we create are private to the proxy's user */
    return supervisor_run(&cfg);
}
