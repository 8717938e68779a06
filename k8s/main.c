/* main.c - vgpu-device-plugin: command line, the kubelet life cycle (serve the DevicePlugin
 * socket, then Registration.Register on kubelet.sock; re-register when the kubelet deletes our
 * socket or recreates its own), periodic health and PodResources checks, clean SIGTERM. */
#include "deviceplugin.pb-c.h"
#include "grpc_h2.h"
#include "log.h"
#include "plugin.h"
#include "proxy_admin.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REGISTER_TIMEOUT_MS 15000

static void usage(FILE *f)
{
    fprintf(f,
        "usage: vgpu-device-plugin [options]\n"
        "Advertises GPU memory as slices to the kubelet (device-plugin API v1beta1) and turns\n"
        "each allocation into a gpu_proxy zone with that much memory.\n"
        "  --kubelet-dir DIR         kubelet device-plugin dir [/var/lib/kubelet/device-plugins]\n"
        "  --endpoint NAME           our socket's name there [vgpu-memory-slice.sock]\n"
        "  --resource-name NAME      resource [vgpu.dev/memory-slice]\n"
        "  --slice-size SIZE         bytes per device, K/M/G/T suffixes [1G]\n"
        "  --total-memory SIZE       GPU memory to divide (default: as reported by gpu_proxy)\n"
        "  --proxy-admin PATH        gpu_proxy admin socket [/run/gpu-proxy/admin.sock]\n"
        "  --zone-dir DIR            per-zone socket dirs, same mount as the proxy's\n"
        "                            [<dir of --proxy-admin>/zones]\n"
        "  --pod-resources PATH      kubelet PodResources socket\n"
        "                            [/var/lib/kubelet/pod-resources/kubelet.sock]\n"
        "  --state-file PATH         zones kept across restarts\n"
        "                            [/var/lib/vgpu-device-plugin/zones.state]\n"
        "  --cdi-dir DIR             where CDI specs are written [/var/run/cdi]\n"
        "  --cdi-kind KIND           CDI vendor/class [vgpu.dev/zone]\n"
        "  --libcuda PATH            our libcuda.so.1 on the host [/opt/vgpu/lib/libcuda.so.1]\n"
        "  --container-libcuda LIST  comma-separated paths it covers inside containers\n"
        "                            [/usr/lib/x86_64-linux-gnu/libcuda.so.1,\n"
        "                             /usr/lib64/libcuda.so.1]\n"
        "  --container-socket-dir D  where the zone's socket dir appears [/run/vgpu]\n"
        "  --cdi-hook PATH           createContainer hook refreshing ld.so.cache, '' for none\n"
        "                            [/opt/vgpu/bin/vgpu-cdi-hook]\n"
        "  --allocate-mode MODE      cdi+mounts, cdi or mounts [cdi+mounts]\n"
        "  --health-interval SEC     gpu_proxy PING period [5]\n"
        "  --pod-poll-interval SEC   PodResources List period [10]\n"
        "  --release-grace SEC       never release a zone younger than this [60]\n"
        "  --log-level LEVEL         error, warn, info, debug [info]\n"
        "  --help\n");
}

struct opts {
    struct plugin_config cfg;
    unsigned health_interval_s;
    unsigned pod_poll_interval_s;
    char zone_dir_buf[PATH_MAX];
    char libcuda_list[PATH_MAX * 2];
};

static int parse_seconds(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > 86400)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    enum { O_KDIR = 256, O_EP, O_RES, O_SLICE, O_TOTAL, O_ADMIN, O_ZDIR, O_PODRES, O_STATE,
           O_CDIDIR, O_KIND, O_LIBCUDA, O_CLIB, O_CSOCK, O_HOOK, O_MODE, O_HEALTH, O_POLL,
           O_GRACE, O_LOG, O_HELP };
    static const struct option longopts[] = {
        {"kubelet-dir", required_argument, NULL, O_KDIR},
        {"endpoint", required_argument, NULL, O_EP},
        {"resource-name", required_argument, NULL, O_RES},
        {"slice-size", required_argument, NULL, O_SLICE},
        {"total-memory", required_argument, NULL, O_TOTAL},
        {"proxy-admin", required_argument, NULL, O_ADMIN},
        {"zone-dir", required_argument, NULL, O_ZDIR},
        {"pod-resources", required_argument, NULL, O_PODRES},
        {"state-file", required_argument, NULL, O_STATE},
        {"cdi-dir", required_argument, NULL, O_CDIDIR},
        {"cdi-kind", required_argument, NULL, O_KIND},
        {"libcuda", required_argument, NULL, O_LIBCUDA},
        {"container-libcuda", required_argument, NULL, O_CLIB},
        {"container-socket-dir", required_argument, NULL, O_CSOCK},
        {"cdi-hook", required_argument, NULL, O_HOOK},
        {"allocate-mode", required_argument, NULL, O_MODE},
        {"health-interval", required_argument, NULL, O_HEALTH},
        {"pod-poll-interval", required_argument, NULL, O_POLL},
        {"release-grace", required_argument, NULL, O_GRACE},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {0},
    };
    struct plugin_config *c = &o->cfg;
    const char *zone_dir = NULL;
    const char *libcuda_list = "/usr/lib/x86_64-linux-gnu/libcuda.so.1,/usr/lib64/libcuda.so.1";
    const char *mode = "cdi+mounts";
    c->kubelet_dir = "/var/lib/kubelet/device-plugins";
    c->endpoint = "vgpu-memory-slice.sock";
    c->resource_name = "vgpu.dev/memory-slice";
    c->slice_size = 1ull << 30;
    c->proxy_admin = "/run/gpu-proxy/admin.sock";
    c->pod_resources = "/var/lib/kubelet/pod-resources/kubelet.sock";
    c->state_file = "/var/lib/vgpu-device-plugin/zones.state";
    c->release_grace_s = 60;
    c->cdi.dir = "/var/run/cdi";
    c->cdi.kind = "vgpu.dev/zone";
    c->cdi.libcuda_host = "/opt/vgpu/lib/libcuda.so.1";
    c->cdi.socket_dir = "/run/vgpu";
    c->cdi.socket_name = "gpu.sock";
    c->cdi.hook_path = "/opt/vgpu/bin/vgpu-cdi-hook";
    o->health_interval_s = 5;
    o->pod_poll_interval_s = 10;
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_KDIR: c->kubelet_dir = optarg; break;
        case O_EP: c->endpoint = optarg; break;
        case O_RES: c->resource_name = optarg; break;
        case O_SLICE:
            if (parse_size(optarg, &c->slice_size) < 0 || c->slice_size < (1u << 20)) {
                fprintf(stderr, "vgpu-device-plugin: --slice-size %s: need a size of at least "
                                "1M\n", optarg);
                return -EINVAL;
            }
            break;
        case O_TOTAL:
            if (parse_size(optarg, &c->total_memory) < 0) {
                fprintf(stderr, "vgpu-device-plugin: --total-memory %s: not a size\n", optarg);
                return -EINVAL;
            }
            break;
        case O_ADMIN: c->proxy_admin = optarg; break;
        case O_ZDIR: zone_dir = optarg; break;
        case O_PODRES: c->pod_resources = optarg; break;
        case O_STATE: c->state_file = optarg; break;
        case O_CDIDIR: c->cdi.dir = optarg; break;
        case O_KIND: c->cdi.kind = optarg; break;
        case O_LIBCUDA: c->cdi.libcuda_host = optarg; break;
        case O_CLIB: libcuda_list = optarg; break;
        case O_CSOCK: c->cdi.socket_dir = optarg; break;
        case O_HOOK: c->cdi.hook_path = optarg; break;
        case O_MODE: mode = optarg; break;
        case O_HEALTH:
            if (parse_seconds(optarg, &o->health_interval_s) < 0 || !o->health_interval_s) {
                fprintf(stderr, "vgpu-device-plugin: --health-interval %s: 1..86400\n", optarg);
                return -EINVAL;
            }
            break;
        case O_POLL:
            if (parse_seconds(optarg, &o->pod_poll_interval_s) < 0 || !o->pod_poll_interval_s) {
                fprintf(stderr, "vgpu-device-plugin: --pod-poll-interval %s: 1..86400\n", optarg);
                return -EINVAL;
            }
            break;
        case O_GRACE:
            if (parse_seconds(optarg, &c->release_grace_s) < 0) {
                fprintf(stderr, "vgpu-device-plugin: --release-grace %s: 0..86400\n", optarg);
                return -EINVAL;
            }
            break;
        case O_LOG:
            if (log_set_level(optarg) < 0) {
                fprintf(stderr, "vgpu-device-plugin: --log-level %s: error, warn, info or "
                                "debug\n", optarg);
                return -EINVAL;
            }
            break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -EINVAL;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "vgpu-device-plugin: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (strcmp(mode, "cdi+mounts") == 0) {
        c->use_cdi = c->use_mounts = true;
    } else if (strcmp(mode, "cdi") == 0) {
        c->use_cdi = true;
    } else if (strcmp(mode, "mounts") == 0) {
        c->use_mounts = true;
    } else {
        fprintf(stderr, "vgpu-device-plugin: --allocate-mode %s: cdi+mounts, cdi or mounts\n",
                mode);
        return -EINVAL;
    }
    if (!strchr(c->resource_name, '/') || !strchr(c->cdi.kind, '/')) {
        fprintf(stderr, "vgpu-device-plugin: --resource-name and --cdi-kind need the form "
                        "domain/name\n");
        return -EINVAL;
    }
    if (!zone_dir) {
        const char *slash = strrchr(c->proxy_admin, '/');
        size_t n = slash ? (size_t)(slash - c->proxy_admin) : 1;
        snprintf(o->zone_dir_buf, sizeof(o->zone_dir_buf), "%.*s/zones", (int)n,
                 slash ? c->proxy_admin : ".");
        zone_dir = o->zone_dir_buf;
    }
    c->zone_dir = zone_dir;
    snprintf(o->libcuda_list, sizeof(o->libcuda_list), "%s", libcuda_list);
    char *save = NULL;
    for (char *t = strtok_r(o->libcuda_list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (c->cdi.n_libcuda_paths == PLUGIN_MAX_LIBCUDA_PATHS || t[0] != '/') {
            fprintf(stderr, "vgpu-device-plugin: --container-libcuda: at most %d absolute "
                            "paths\n", PLUGIN_MAX_LIBCUDA_PATHS);
            return -EINVAL;
        }
        c->libcuda_paths[c->cdi.n_libcuda_paths++] = t;
    }
    return 0;
}

/* Registration.Register on kubelet.sock. The kubelet dials our socket back before answering,
 * so the server must already be running. 0 or -errno. */
static int register_with_kubelet(const struct plugin_config *c)
{
    char kubelet_sock[PATH_MAX];
    snprintf(kubelet_sock, sizeof(kubelet_sock), "%s/kubelet.sock", c->kubelet_dir);
    V1beta1__DevicePluginOptions opts = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
    opts.get_preferred_allocation_available = 1;
    V1beta1__RegisterRequest req = V1BETA1__REGISTER_REQUEST__INIT;
    req.version = "v1beta1";
    req.endpoint = (char *)c->endpoint;
    req.resource_name = (char *)c->resource_name;
    req.options = &opts;
    uint8_t buf[1024];
    if (v1beta1__register_request__get_packed_size(&req) > sizeof(buf))
        return -ENAMETOOLONG;
    size_t len = v1beta1__register_request__pack(&req, buf);
    struct grpc_buf resp = {0};
    struct grpc_status st;
    int rc = grpc_unary_call(kubelet_sock, "/v1beta1.Registration/Register", buf, len,
                             REGISTER_TIMEOUT_MS, &resp, &st);
    grpc_buf_free(&resp);
    if (rc < 0) {
        log_warn("register: kubelet at %s not reachable: %s", kubelet_sock, st.message);
        return rc;
    }
    if (st.code != GRPC_OK) {
        log_error("register: kubelet refused %s (status %d): %s", c->resource_name, st.code,
                  st.message);
        return -EPERM;
    }
    log_info("registered %s with the kubelet (endpoint %s)", c->resource_name, c->endpoint);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool socket_is_ours(const char *path, const struct stat *ours)
{
    struct stat sb;
    return stat(path, &sb) == 0 && sb.st_ino == ours->st_ino && sb.st_dev == ours->st_dev;
}

int main(int argc, char **argv)
{
    struct opts o = {0};
    if (parse_args(argc, argv, &o) < 0)
        return 2;
    struct plugin_config *c = &o.cfg;

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    /* Blocked before any thread starts, so only the signalfd sees them. */
    if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0) {
        log_error("blocking signals failed");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        log_error("signalfd: %s", strerror(errno));
        return 1;
    }
    int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ifd < 0) {
        log_error("inotify_init1: %s", strerror(errno));
        return 1;
    }
    if (inotify_add_watch(ifd, c->kubelet_dir, IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                          IN_MOVED_TO | IN_DELETE_SELF) < 0) {
        log_error("watching the kubelet directory %s: %s (does it exist?)", c->kubelet_dir,
                  strerror(errno));
        return 1;
    }

    struct plugin p;
    if (plugin_init(&p, c) < 0) {
        log_error("initialisation failed (state file %s)", c->state_file);
        return 1;
    }
    log_info("vgpu-device-plugin: resource %s, slices of %llu bytes, gpu_proxy %s, kubelet dir "
             "%s, CDI %s (%s), mounts %s", c->resource_name,
             (unsigned long long)c->slice_size, c->proxy_admin, c->kubelet_dir,
             c->use_cdi ? c->cdi.dir : "off", c->cdi.kind, c->use_mounts ? "on" : "off");
    if (plugin_check_health(&p) && p.healthy)
        plugin_report_orphans(&p);

    char sock_path[PATH_MAX];
    snprintf(sock_path, sizeof(sock_path), "%s/%s", c->kubelet_dir, c->endpoint);
    struct stat sock_st = {0};
    bool need_start = true, need_register = false;
    int64_t now = now_ms();
    int64_t next_health = now + o.health_interval_s * 1000;
    int64_t next_poll = now + o.pod_poll_interval_s * 1000;
    int64_t next_register = now;
    unsigned register_failures = 0;
    int exit_code = 0;

    for (;;) {
        if (need_start) {
            grpc_server_stop(p.srv);
            p.srv = NULL;
            int rc = grpc_server_start(sock_path, plugin_methods, plugin_n_methods, &p, &p.srv);
            if (rc < 0 || stat(sock_path, &sock_st) < 0) {
                log_error("cannot serve on %s: %s", sock_path, strerror(rc < 0 ? -rc : errno));
                exit_code = 1;
                break;
            }
            log_info("serving the DevicePlugin API on %s", sock_path);
            need_start = false;
            need_register = true;
            next_register = now_ms();
        }
        now = now_ms();
        if (need_register && now >= next_register) {
            if (register_with_kubelet(c) == 0) {
                need_register = false;
                register_failures = 0;
            } else {
                /* 1 s, 2 s, 4 s ... up to 16 s between attempts; kubelet.sock appearing
                 * triggers an attempt at once. */
                unsigned shift = register_failures < 4 ? register_failures : 4;
                register_failures++;
                next_register = now_ms() + (1000 << shift);
            }
        }
        now = now_ms();
        if (now >= next_health) {
            if (plugin_check_health(&p) && p.srv)
                grpc_server_notify(p.srv);
            if (!socket_is_ours(sock_path, &sock_st)) {
                log_warn("our socket %s is gone or replaced (kubelet restart?): serving again "
                         "and re-registering", sock_path);
                need_start = true;
                continue;
            }
            next_health = now + o.health_interval_s * 1000;
        }
        if (now >= next_poll) {
            plugin_release_unused(&p);
            next_poll = now_ms() + o.pod_poll_interval_s * 1000;
        }
        int64_t wake = next_health < next_poll ? next_health : next_poll;
        if (need_register && next_register < wake)
            wake = next_register;
        int64_t timeout = wake - now_ms();
        struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN}, {.fd = ifd, .events = POLLIN}};
        int pr = poll(pfd, 2, timeout < 0 ? 0 : (int)timeout);
        if (pr < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            exit_code = 1;
            break;
        }
        if (pr > 0 && (pfd[0].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
                log_info("signal %u (%s): shutting down", si.ssi_signo,
                         strsignal((int)si.ssi_signo));
                break;
            }
        }
        if (pr > 0 && (pfd[1].revents & POLLIN)) {
            char evbuf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
            ssize_t n;
            while ((n = read(ifd, evbuf, sizeof(evbuf))) > 0) {
                for (char *q = evbuf; q < evbuf + n;) {
                    const struct inotify_event *ev = (const struct inotify_event *)q;
                    q += sizeof(*ev) + ev->len;
                    if (ev->mask & IN_DELETE_SELF) {
                        log_error("the kubelet directory %s was removed", c->kubelet_dir);
                        continue;
                    }
                    if (!ev->len)
                        continue;
                    if ((ev->mask & (IN_DELETE | IN_MOVED_FROM)) &&
                        strcmp(ev->name, c->endpoint) == 0 && p.srv &&
                        !socket_is_ours(sock_path, &sock_st)) {
                        log_warn("our socket %s was deleted (kubelet restart?): serving again "
                                 "and re-registering", sock_path);
                        need_start = true;
                    } else if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) &&
                               strcmp(ev->name, "kubelet.sock") == 0) {
                        log_info("kubelet.sock (re)appeared: registering again");
                        need_register = true;
                        register_failures = 0;
                        next_register = now_ms();
                    }
                }
            }
        }
    }
    grpc_server_stop(p.srv);    /* removes our socket */
    log_info("stopped; %zu zones stay in gpu_proxy for running pods (state in %s)", p.n_zones,
             c->state_file);
    plugin_fini(&p);
    close(ifd);
    close(sfd);
    return exit_code;
}
