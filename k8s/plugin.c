/* plugin.c - what the device plugin does: advertises GPU memory as slices, turns an Allocate of
 * N slices into a gpu_proxy zone of N x slice-size (admin socket ADD), a per-zone socket
 * directory, a CDI spec and the equivalent mounts/envs; releases zones whose devices the
 * kubelet's PodResources no longer lists; keeps its zones in a state file across restarts. */
#include "plugin.h"
#include "deviceplugin.pb-c.h"
#include "log.h"
#include "podresources.pb-c.h"
#include "proxy_admin.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PODRES_TIMEOUT_MS 10000

/* ---- device ids ------------------------------------------------------------------------ */

void plugin_device_id(unsigned idx, char *out, size_t outlen)
{
    snprintf(out, outlen, "slice-%04u", idx);
}

int plugin_parse_device_id(const char *id, unsigned *idx)
{
    if (strncmp(id, "slice-", 6) != 0)
        return -EINVAL;
    const char *d = id + 6;
    size_t n = strlen(d);
    if (n < 4 || n > 9 || strspn(d, "0123456789") != n)
        return -EINVAL;
    unsigned long v = strtoul(d, NULL, 10);
    char canon[32];
    plugin_device_id((unsigned)v, canon, sizeof(canon));
    if (strcmp(canon, id) != 0 || v >= PLUGIN_MAX_SLICES)
        return -EINVAL;
    *idx = (unsigned)v;
    return 0;
}

/* ---- zone table and state file (caller holds zones_lock) ------------------------------- */

static void zone_dir_path(const struct plugin *p, const char *zone, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s", p->cfg.zone_dir, zone);
}

static int save_state(struct plugin *p)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->cfg.state_file);
    FILE *f = fopen(tmp, "we");
    if (!f) {
        int rc = -errno;
        log_error("state: cannot write %s: %s", tmp, strerror(errno));
        return rc;
    }
    fprintf(f, "# vgpu-device-plugin zones: <name> <created-unix-time> <quota-bytes> "
               "<slice,slice,...>\n");
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_zones; i++) {
        const struct zone *z = p->zones[i];
        fprintf(f, "%s %lld %llu ", z->name, (long long)z->created,
                (unsigned long long)z->quota);
        for (unsigned d = 0; d < z->n_devs; d++)
            fprintf(f, "%s%u", d ? "," : "", z->devs[d]);
        fputc('\n', f);
    }
    pthread_mutex_unlock(&p->lock);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        int rc = -errno;
        log_error("state: writing %s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        return rc;
    }
    if (fclose(f) != 0 || rename(tmp, p->cfg.state_file) < 0) {
        int rc = -errno;
        log_error("state: replacing %s: %s", p->cfg.state_file, strerror(errno));
        unlink(tmp);
        return rc;
    }
    return 0;
}

static int add_zone_entry(struct plugin *p, struct zone *z)
{
    pthread_mutex_lock(&p->lock);
    struct zone **nz = realloc(p->zones, (p->n_zones + 1) * sizeof(*nz));
    if (!nz) {
        pthread_mutex_unlock(&p->lock);
        return -ENOMEM;
    }
    p->zones = nz;
    p->zones[p->n_zones++] = z;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

static void drop_zone_entry(struct plugin *p, struct zone *z)
{
    pthread_mutex_lock(&p->lock);
    for (size_t i = 0; i < p->n_zones; i++) {
        if (p->zones[i] == z) {
            p->zones[i] = p->zones[--p->n_zones];
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    free(z);
}

static int load_state(struct plugin *p)
{
    FILE *f = fopen(p->cfg.state_file, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        int rc = -errno;
        log_error("state: cannot read %s: %s", p->cfg.state_file, strerror(errno));
        return rc;
    }
    char line[PLUGIN_MAX_SLICES * 6 + 256];
    unsigned lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        char name[64], devs[sizeof(line)];
        long long created;
        unsigned long long quota;
        if (sscanf(line, "%63s %lld %llu %s", name, &created, &quota, devs) != 4) {
            log_warn("state: %s:%u: unreadable line, ignored", p->cfg.state_file, lineno);
            continue;
        }
        unsigned n = 1;
        for (const char *c = devs; *c; c++)
            n += *c == ',';
        struct zone *z = calloc(1, sizeof(*z) + n * sizeof(uint32_t));
        if (!z) {
            fclose(f);
            return -ENOMEM;
        }
        snprintf(z->name, sizeof(z->name), "%s", name);
        z->created = (time_t)created;
        z->quota = quota;
        char *save = NULL;
        for (char *t = strtok_r(devs, ",", &save); t && z->n_devs < n;
             t = strtok_r(NULL, ",", &save))
            z->devs[z->n_devs++] = (uint32_t)strtoul(t, NULL, 10);
        if (add_zone_entry(p, z) < 0) {
            free(z);
            fclose(f);
            return -ENOMEM;
        }
        log_info("state: zone %s (%u slices, quota %llu bytes) carried over from before the "
                 "restart", z->name, z->n_devs, (unsigned long long)z->quota);
    }
    fclose(f);
    return 0;
}

/* Hard-links the proxy's zone socket into the zone's own directory, the one mounted into the
 * container (the proxy's directory also holds admin.sock, which no pod may reach). */
static int make_zone_dir(struct plugin *p, const char *zone, const char *zone_sock, char *err,
                         size_t errlen)
{
    char dir[PATH_MAX], link_path[PATH_MAX + 64];
    zone_dir_path(p, zone, dir, sizeof(dir));
    if (mkdir(p->cfg.zone_dir, 0755) < 0 && errno != EEXIST) {
        int rc = -errno;
        fmt_msg(err, errlen, "creating %s: %s", p->cfg.zone_dir, strerror(errno));
        return rc;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        int rc = -errno;
        fmt_msg(err, errlen, "creating %s: %s", dir, strerror(errno));
        return rc;
    }
    snprintf(link_path, sizeof(link_path), "%s/%s", dir, p->cfg.cdi.socket_name);
    if (unlink(link_path) < 0 && errno != ENOENT) {
        int rc = -errno;
        fmt_msg(err, errlen, "removing stale %s: %s", link_path, strerror(errno));
        return rc;
    }
    if (link(zone_sock, link_path) < 0) {
        int rc = -errno;
        fmt_msg(err, errlen, "linking zone socket %s to %s: %s%s", zone_sock, link_path,
                 strerror(errno),
                 errno == EXDEV ? " (--zone-dir must be on the same mount as the proxy's "
                                  "listen directory)" : "");
        return rc;
    }
    return 0;
}

static void remove_zone_dir(struct plugin *p, const char *zone)
{
    char dir[PATH_MAX], link_path[PATH_MAX + 64];
    zone_dir_path(p, zone, dir, sizeof(dir));
    snprintf(link_path, sizeof(link_path), "%s/%s", dir, p->cfg.cdi.socket_name);
    if (unlink(link_path) < 0 && errno != ENOENT)
        log_warn("zone %s: removing %s: %s", zone, link_path, strerror(errno));
    if (rmdir(dir) < 0 && errno != ENOENT)
        log_warn("zone %s: removing %s: %s", zone, dir, strerror(errno));
}

/* Removes the zone from the proxy, its directory and CDI spec, and forgets it. A zone the
 * proxy no longer knows (it restarted) is forgotten all the same. */
static int release_zone(struct plugin *p, struct zone *z, const char *why)
{
    char err[256];
    int rc = admin_remove(p->cfg.proxy_admin, z->name, err, sizeof(err));
    if (rc < 0 && rc != -EREMOTEIO) {
        log_error("zone %s: REMOVE failed (%s); keeping it to retry later", z->name, err);
        return rc;
    }
    if (rc == -EREMOTEIO)
        log_warn("zone %s: gpu_proxy refused REMOVE (%s); forgetting the zone", z->name, err);
    remove_zone_dir(p, z->name);
    if ((rc = cdi_remove(&p->cfg.cdi, z->name)) < 0)
        log_warn("zone %s: removing its CDI spec: %s", z->name, strerror(-rc));
    log_info("zone %s released (%u slices, %llu bytes): %s", z->name, z->n_devs,
             (unsigned long long)z->quota, why);
    drop_zone_entry(p, z);
    return 0;
}

/* ---- init -------------------------------------------------------------------------------- */

int plugin_init(struct plugin *p, const struct plugin_config *cfg)
{
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    p->cfg.cdi.libcuda_paths = p->cfg.libcuda_paths;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->zones_lock, NULL);
    if (cfg->total_memory)
        p->n_slices = (unsigned)(cfg->total_memory / cfg->slice_size);
    if (p->n_slices > PLUGIN_MAX_SLICES) {
        log_warn("%u slices exceed the limit of %u; advertising %u (raise --slice-size)",
                 p->n_slices, PLUGIN_MAX_SLICES, PLUGIN_MAX_SLICES);
        p->n_slices = PLUGIN_MAX_SLICES;
    }
    char state_dir[PATH_MAX];
    snprintf(state_dir, sizeof(state_dir), "%s", cfg->state_file);
    char *slash = strrchr(state_dir, '/');
    if (slash && slash != state_dir) {
        *slash = '\0';
        if (mkdir(state_dir, 0700) < 0 && errno != EEXIST)
            log_warn("state: cannot create %s: %s", state_dir, strerror(errno));
    }
    int rc = load_state(p);
    if (rc < 0) {
        plugin_fini(p);
        return rc;
    }
    return 0;
}

void plugin_fini(struct plugin *p)
{
    for (size_t i = 0; i < p->n_zones; i++)
        free(p->zones[i]);
    free(p->zones);
    p->zones = NULL;
    p->n_zones = 0;
    pthread_mutex_destroy(&p->zones_lock);
    pthread_mutex_destroy(&p->lock);
}

/* ---- health ------------------------------------------------------------------------------ */

/* After gpu_proxy comes back its zones are gone: create them again (same names, same quota)
 * and re-link their sockets so running pods can reconnect. */
static void restore_zones(struct plugin *p)
{
    struct admin_zone *live = NULL;
    size_t n_live = 0;
    char err[256];
    if (admin_list(p->cfg.proxy_admin, &live, &n_live, err, sizeof(err)) < 0) {
        log_warn("restoring zones: LIST failed: %s", err);
        return;
    }
    pthread_mutex_lock(&p->zones_lock);
    for (size_t i = 0; i < p->n_zones; i++) {
        struct zone *z = p->zones[i];
        bool present = false;
        for (size_t j = 0; j < n_live; j++)
            present |= strcmp(live[j].name, z->name) == 0;
        if (present)
            continue;
        char sock[PATH_MAX];
        if (admin_add(p->cfg.proxy_admin, z->name, z->quota, sock, sizeof(sock), err,
                      sizeof(err)) < 0) {
            log_error("zone %s: re-creating it after a gpu_proxy restart failed: %s", z->name,
                      err);
            continue;
        }
        z->restarts_seen = 0;       /* the new gpu_proxy counts this zone's restarts afresh */
        z->listed = true;
        if (make_zone_dir(p, z->name, sock, err, sizeof(err)) < 0) {
            log_error("zone %s: re-linking its socket failed: %s", z->name, err);
            continue;
        }
        log_info("zone %s re-created in gpu_proxy (quota %llu bytes) after it came back",
                 z->name, (unsigned long long)z->quota);
    }
    pthread_mutex_unlock(&p->zones_lock);
    free(live);
}

/* A zone whose worker is not serving (restarting, down, starting again after a crash) or has
 * restarted since the last check: its slices are Unhealthy for at least one check, so the kubelet
 * sees a crash even when the restart is quicker than the health interval. */
static bool zone_down(struct zone *z, const struct admin_zone *live)
{
    bool restarted = z->listed && live->restarts != z->restarts_seen;
    bool down = strcmp(live->state, "restarting") == 0 || strcmp(live->state, "down") == 0 ||
                (strcmp(live->state, "starting") == 0 && live->restarts > 0) || restarted;
    z->restarts_seen = live->restarts;
    z->listed = true;
    return down;
}

/* Which allocated slices are down, from LIST; false when LIST failed (nothing changes). */
static bool zones_health(struct plugin *p, bool *down)
{
    struct admin_zone *live = NULL;
    size_t n_live = 0;
    char err[256];
    if (admin_list(p->cfg.proxy_admin, &live, &n_live, err, sizeof(err)) < 0) {
        log_warn("zone health: LIST failed: %s", err);
        return false;
    }
    memset(down, 0, PLUGIN_MAX_SLICES * sizeof(*down));
    log_debug("zone health: gpu_proxy lists %zu zones", n_live);
    pthread_mutex_lock(&p->zones_lock);
    for (size_t i = 0; i < p->n_zones; i++) {
        struct zone *z = p->zones[i];
        for (size_t j = 0; j < n_live; j++) {
            if (strcmp(live[j].name, z->name) != 0 || !zone_down(z, &live[j]))
                continue;
            for (unsigned d = 0; d < z->n_devs; d++)
                if (z->devs[d] < PLUGIN_MAX_SLICES)
                    down[z->devs[d]] = true;
            log_info("zone %s: state=%s restarts=%u: its %u slices are Unhealthy", z->name,
                     live[j].state[0] ? live[j].state : "?", live[j].restarts, z->n_devs);
        }
    }
    pthread_mutex_unlock(&p->zones_lock);
    free(live);
    return true;
}

/* Takes the new per-slice health; true when it changed (the caller holds p->lock). */
static bool apply_slice_health(struct plugin *p, const bool *down)
{
    unsigned was = 0, now = 0;
    if (memcmp(p->slice_down, down, sizeof(p->slice_down)) == 0)
        return false;
    for (unsigned i = 0; i < PLUGIN_MAX_SLICES; i++) {
        was += p->slice_down[i];
        now += down[i];
    }
    memcpy(p->slice_down, down, sizeof(p->slice_down));
    log_info("slices whose zone is not serving: %u (were %u)", now, was);
    return true;
}

bool plugin_check_health(struct plugin *p)
{
    static bool down[PLUGIN_MAX_SLICES]; /* only main.c's loop checks health */
    char info[256], err[256];
    bool ok = admin_ping(p->cfg.proxy_admin, info, sizeof(info), err, sizeof(err)) == 0;
    unsigned n = 0;
    if (ok && !p->cfg.total_memory) {
        uint64_t total = admin_total_memory(p->cfg.proxy_admin);
        static bool warned;
        if (total) {
            n = (unsigned)(total / p->cfg.slice_size);
            warned = false;
        } else if (!warned) {
            log_warn("gpu_proxy at %s reports no total memory; pass --total-memory",
                     p->cfg.proxy_admin);
            warned = true;
        }
    }
    if (n > PLUGIN_MAX_SLICES) {
        log_warn("%u slices exceed the limit of %u; advertising %u (raise --slice-size)", n,
                 PLUGIN_MAX_SLICES, PLUGIN_MAX_SLICES);
        n = PLUGIN_MAX_SLICES;
    }
    bool changed = false, came_back = false, zones_known = ok && zones_health(p, down);
    pthread_mutex_lock(&p->lock);
    if (zones_known)
        changed = apply_slice_health(p, down);
    if (!p->health_known || ok != p->healthy) {
        if (ok)
            log_info("gpu_proxy at %s answers PING (%s): slices are Healthy", p->cfg.proxy_admin,
                     info);
        else
            log_warn("gpu_proxy at %s does not answer PING (%s): slices are Unhealthy",
                     p->cfg.proxy_admin, err);
        came_back = ok && p->health_known;
        p->healthy = ok;
        p->health_known = true;
        changed = true;
    }
    if (n && n != p->n_slices) {
        log_info("capacity: %u slices of %llu bytes (was %u)", n,
                 (unsigned long long)p->cfg.slice_size, p->n_slices);
        p->n_slices = n;
        changed = true;
    }
    if (changed)
        p->generation++;
    pthread_mutex_unlock(&p->lock);
    if (came_back)
        restore_zones(p);
    return changed;
}

void plugin_report_orphans(struct plugin *p)
{
    struct admin_zone *live = NULL;
    size_t n_live = 0;
    char err[256];
    if (admin_list(p->cfg.proxy_admin, &live, &n_live, err, sizeof(err)) < 0)
        return;                 /* the health check already says why the proxy is unreachable */
    pthread_mutex_lock(&p->zones_lock);
    for (size_t j = 0; j < n_live; j++) {
        if (strncmp(live[j].name, "k8s-", 4) != 0)
            continue;
        bool known = false;
        for (size_t i = 0; i < p->n_zones; i++)
            known |= strcmp(p->zones[i]->name, live[j].name) == 0;
        if (!known)
            log_warn("zone %s (quota %llu bytes, %u clients) is in gpu_proxy but not in %s: it "
                     "will not be released automatically; remove it with 'REMOVE %s' on %s once "
                     "its pod is gone", live[j].name, (unsigned long long)live[j].quota,
                     live[j].clients, p->cfg.state_file, live[j].name, p->cfg.proxy_admin);
    }
    pthread_mutex_unlock(&p->zones_lock);
    free(live);
}

/* ---- release through PodResources --------------------------------------------------------- */

void plugin_release_unused(struct plugin *p)
{
    V1__ListPodResourcesRequest req = V1__LIST_POD_RESOURCES_REQUEST__INIT;
    uint8_t reqbuf[16];
    size_t reqlen = v1__list_pod_resources_request__pack(&req, reqbuf);
    struct grpc_buf resp = {0};
    struct grpc_status st;
    static bool warned;
    pthread_mutex_lock(&p->zones_lock);
    if (p->n_zones == 0)
        goto unlock;
    int rc = grpc_unary_call(p->cfg.pod_resources, "/v1.PodResourcesLister/List", reqbuf, reqlen,
                             PODRES_TIMEOUT_MS, &resp, &st);
    if (rc < 0 || st.code != GRPC_OK) {
        if (!warned)
            log_warn("PodResources List on %s failed (%s, status %d); zones are kept until it "
                     "answers", p->cfg.pod_resources, st.message, st.code);
        warned = true;
        goto unlock;
    }
    warned = false;
    V1__ListPodResourcesResponse *list =
        v1__list_pod_resources_response__unpack(NULL, resp.len, resp.data);
    if (!list) {
        log_warn("PodResources List on %s: undecodable reply", p->cfg.pod_resources);
        goto unlock;
    }
    static bool assigned[PLUGIN_MAX_SLICES];
    memset(assigned, 0, sizeof(assigned));
    for (size_t i = 0; i < list->n_pod_resources; i++) {
        V1__PodResources *pod = list->pod_resources[i];
        for (size_t c = 0; c < pod->n_containers; c++) {
            V1__ContainerResources *ctr = pod->containers[c];
            for (size_t d = 0; d < ctr->n_devices; d++) {
                V1__ContainerDevices *cd = ctr->devices[d];
                if (strcmp(cd->resource_name, p->cfg.resource_name) != 0)
                    continue;
                for (size_t k = 0; k < cd->n_device_ids; k++) {
                    unsigned idx;
                    if (plugin_parse_device_id(cd->device_ids[k], &idx) == 0)
                        assigned[idx] = true;
                }
            }
        }
    }
    v1__list_pod_resources_response__free_unpacked(list, NULL);
    time_t now = time(NULL);
    bool dirty = false;
    for (size_t i = 0; i < p->n_zones;) {
        struct zone *z = p->zones[i];
        bool used = false;
        for (unsigned d = 0; d < z->n_devs; d++)
            used |= z->devs[d] < PLUGIN_MAX_SLICES && assigned[z->devs[d]];
        if (used || now - z->created < (time_t)p->cfg.release_grace_s) {
            i++;
            continue;
        }
        if (release_zone(p, z, "no container holds its slices any more (PodResources)") == 0)
            dirty = true;       /* the table shrank: same i now holds another zone */
        else
            i++;
    }
    if (dirty)
        save_state(p);
unlock:
    pthread_mutex_unlock(&p->zones_lock);
    grpc_buf_free(&resp);
}

/* ---- gRPC methods ------------------------------------------------------------------------ */

static void pack_reply(const ProtobufCMessage *m, struct grpc_buf *out, struct grpc_status *st)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *dst = grpc_buf_reserve(out, n ? n : 1);
    if (!dst) {
        grpc_status_set(st, GRPC_INTERNAL, "out of memory encoding the reply");
        return;
    }
    out->len += protobuf_c_message_pack(m, dst);
}

static void m_get_options(void *ctx, const uint8_t *req, size_t len, struct grpc_buf *out,
                          struct grpc_status *st)
{
    (void)ctx;
    V1beta1__Empty *e = v1beta1__empty__unpack(NULL, len, req);
    if (!e) {
        grpc_status_set(st, GRPC_INVALID_ARGUMENT, "GetDevicePluginOptions: undecodable request");
        return;
    }
    v1beta1__empty__free_unpacked(e, NULL);
    V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
    o.pre_start_required = 0;
    o.get_preferred_allocation_available = 1;
    pack_reply(&o.base, out, st);
}

static int m_list_and_watch(void *ctx, const uint8_t *req, size_t len, uint64_t *cursor,
                            struct grpc_buf *out, struct grpc_status *st)
{
    struct plugin *p = ctx;
    if (*cursor == 0) {
        V1beta1__Empty *e = v1beta1__empty__unpack(NULL, len, req);
        if (!e) {
            grpc_status_set(st, GRPC_INVALID_ARGUMENT, "ListAndWatch: undecodable request");
            return 0;
        }
        v1beta1__empty__free_unpacked(e, NULL);
    }
    pthread_mutex_lock(&p->lock);
    if (*cursor == p->generation + 1) {
        pthread_mutex_unlock(&p->lock);
        return 0;
    }
    unsigned n = p->n_slices, n_down = 0;
    bool healthy = p->healthy;
    bool *down = malloc(sizeof(p->slice_down));
    if (down)
        memcpy(down, p->slice_down, sizeof(p->slice_down));
    *cursor = p->generation + 1;
    pthread_mutex_unlock(&p->lock);

    V1beta1__Device *devs = calloc(n ? n : 1, sizeof(*devs));
    V1beta1__Device **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    char (*ids)[24] = calloc(n ? n : 1, sizeof(*ids));
    if (!devs || !ptrs || !ids || !down) {
        grpc_status_set(st, GRPC_INTERNAL, "out of memory building the device list");
        goto free_all;
    }
    for (unsigned i = 0; i < n; i++) {
        v1beta1__device__init(&devs[i]);
        plugin_device_id(i, ids[i], sizeof(ids[i]));
        devs[i].id = ids[i];
        devs[i].health = (char *)(healthy && !down[i] ? "Healthy" : "Unhealthy");
        n_down += healthy && down[i];
        ptrs[i] = &devs[i];
    }
    V1beta1__ListAndWatchResponse r = V1BETA1__LIST_AND_WATCH_RESPONSE__INIT;
    r.n_devices = n;
    r.devices = ptrs;
    pack_reply(&r.base, out, st);
    log_info("ListAndWatch: sent %u slices, %u Unhealthy", n, healthy ? n_down : n);
free_all:
    free(down);
    free(ids);
    free(ptrs);
    free(devs);
    return st->code == GRPC_OK;
}

static int cmp_uint(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

/* Prefers the must-include slices, then the lowest-numbered available ones, so a pod's slices
 * tend to be contiguous and zone names stay readable. */
static void m_preferred_allocation(void *ctx, const uint8_t *req, size_t len,
                                   struct grpc_buf *out, struct grpc_status *st)
{
    (void)ctx;
    V1beta1__PreferredAllocationRequest *r =
        v1beta1__preferred_allocation_request__unpack(NULL, len, req);
    if (!r) {
        grpc_status_set(st, GRPC_INVALID_ARGUMENT, "GetPreferredAllocation: undecodable request");
        return;
    }
    size_t nc = r->n_container_requests;
    V1beta1__ContainerPreferredAllocationResponse *cr = calloc(nc ? nc : 1, sizeof(*cr));
    V1beta1__ContainerPreferredAllocationResponse **crp = calloc(nc ? nc : 1, sizeof(*crp));
    char ***chosen = calloc(nc ? nc : 1, sizeof(*chosen));
    if (!cr || !crp || !chosen) {
        grpc_status_set(st, GRPC_INTERNAL, "out of memory");
        goto free_all;
    }
    for (size_t c = 0; c < nc; c++) {
        V1beta1__ContainerPreferredAllocationRequest *q = r->container_requests[c];
        v1beta1__container_preferred_allocation_response__init(&cr[c]);
        crp[c] = &cr[c];
        if (q->allocation_size <= 0 || (size_t)q->allocation_size > q->n_available_deviceids) {
            grpc_status_set(st, GRPC_INVALID_ARGUMENT,
                            "GetPreferredAllocation: allocation_size %d with %zu available",
                            q->allocation_size, q->n_available_deviceids);
            goto free_all;
        }
        size_t want = (size_t)q->allocation_size;
        chosen[c] = calloc(want, sizeof(char *));
        unsigned *avail = calloc(q->n_available_deviceids, sizeof(unsigned));
        if (!chosen[c] || !avail) {
            free(avail);
            grpc_status_set(st, GRPC_INTERNAL, "out of memory");
            goto free_all;
        }
        size_t k = 0;
        for (size_t i = 0; i < q->n_must_include_deviceids && k < want; i++)
            chosen[c][k++] = q->must_include_deviceids[i];
        size_t na = 0;
        for (size_t i = 0; i < q->n_available_deviceids; i++) {
            unsigned idx;
            if (plugin_parse_device_id(q->available_deviceids[i], &idx) == 0)
                avail[na++] = idx;
        }
        qsort(avail, na, sizeof(unsigned), cmp_uint);
        for (size_t i = 0; i < na && k < want; i++) {
            char id[24];
            plugin_device_id(avail[i], id, sizeof(id));
            bool dup = false;
            for (size_t j = 0; j < k; j++)
                dup |= strcmp(chosen[c][j], id) == 0;
            if (dup)
                continue;
            for (size_t j = 0; j < q->n_available_deviceids; j++) {
                if (strcmp(q->available_deviceids[j], id) == 0) {
                    chosen[c][k++] = q->available_deviceids[j];
                    break;
                }
            }
        }
        free(avail);
        cr[c].n_deviceids = k;
        cr[c].deviceids = chosen[c];
    }
    V1beta1__PreferredAllocationResponse resp = V1BETA1__PREFERRED_ALLOCATION_RESPONSE__INIT;
    resp.n_container_responses = nc;
    resp.container_responses = crp;
    pack_reply(&resp.base, out, st);
free_all:
    if (chosen)
        for (size_t c = 0; c < nc; c++)
            free(chosen[c]);
    free(chosen);
    free(crp);
    free(cr);
    v1beta1__preferred_allocation_request__free_unpacked(r, NULL);
}

/* Checks one container's device ids: known, not repeated, at least one. Fills idx (sorted). */
static void validate_ids(struct plugin *p, const V1beta1__ContainerAllocateRequest *q,
                         unsigned *idx, struct grpc_status *st)
{
    pthread_mutex_lock(&p->lock);
    unsigned n_slices = p->n_slices;
    pthread_mutex_unlock(&p->lock);
    if (q->n_devices_ids == 0) {
        grpc_status_set(st, GRPC_INVALID_ARGUMENT, "Allocate: a container request names no "
                        "devices");
        return;
    }
    if (q->n_devices_ids > n_slices) {
        grpc_status_set(st, GRPC_INVALID_ARGUMENT,
                        "Allocate: %zu devices requested, this node has %u slices",
                        q->n_devices_ids, n_slices);
        return;
    }
    for (size_t i = 0; i < q->n_devices_ids; i++) {
        if (plugin_parse_device_id(q->devices_ids[i], &idx[i]) < 0 || idx[i] >= n_slices) {
            grpc_status_set(st, GRPC_INVALID_ARGUMENT,
                            "Allocate: unknown device id '%.64s' (this plugin has slice-0000 "
                            "to slice-%04u)", q->devices_ids[i], n_slices ? n_slices - 1 : 0);
            return;
        }
    }
    qsort(idx, q->n_devices_ids, sizeof(unsigned), cmp_uint);
    for (size_t i = 1; i < q->n_devices_ids; i++) {
        if (idx[i] == idx[i - 1]) {
            grpc_status_set(st, GRPC_INVALID_ARGUMENT, "Allocate: device slice-%04u named twice",
                            idx[i]);
            return;
        }
    }
}

/* Releases zones that still hold any of these slices: the kubelet only hands out free devices,
 * so such a zone belongs to a container that is gone. Caller holds zones_lock. */
static int release_overlapping(struct plugin *p, const unsigned *idx, size_t n)
{
    for (size_t i = 0; i < p->n_zones;) {
        struct zone *z = p->zones[i];
        bool overlap = false;
        for (unsigned d = 0; d < z->n_devs && !overlap; d++)
            for (size_t k = 0; k < n && !overlap; k++)
                overlap = z->devs[d] == idx[k];
        if (!overlap) {
            i++;
            continue;
        }
        int rc = release_zone(p, z, "its slices were allocated again by the kubelet");
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Creates one zone for one container; on success *zp is in the table. Caller holds zones_lock. */
static void create_zone(struct plugin *p, const unsigned *idx, size_t n, struct zone **zp,
                        struct grpc_status *st)
{
    char err[512], sock[PATH_MAX];
    if (release_overlapping(p, idx, n) < 0) {
        grpc_status_set(st, GRPC_UNAVAILABLE, "Allocate: a stale zone holding slice-%04u "
                        "could not be removed from gpu_proxy", idx[0]);
        return;
    }
    struct zone *z = calloc(1, sizeof(*z) + n * sizeof(uint32_t));
    if (!z) {
        grpc_status_set(st, GRPC_INTERNAL, "Allocate: out of memory");
        return;
    }
    snprintf(z->name, sizeof(z->name), "k8s-s%u-n%zu", idx[0], n);
    z->created = time(NULL);
    z->quota = (uint64_t)n * p->cfg.slice_size;
    z->n_devs = (unsigned)n;
    for (size_t i = 0; i < n; i++)
        z->devs[i] = idx[i];
    z->listed = true;               /* a zone gpu_proxy has just made has restarted 0 times */
    int rc = admin_add(p->cfg.proxy_admin, z->name, z->quota, sock, sizeof(sock), err,
                       sizeof(err));
    if (rc < 0) {
        log_error("zone %s: ADD with quota %llu bytes failed: %s", z->name,
                  (unsigned long long)z->quota, err);
        grpc_status_set(st, rc == -EREMOTEIO ? GRPC_FAILED_PRECONDITION : GRPC_UNAVAILABLE,
                        "Allocate: gpu_proxy could not create zone %s: %s", z->name, err);
        goto free_zone;
    }
    char dir[PATH_MAX];
    zone_dir_path(p, z->name, dir, sizeof(dir));
    if ((rc = make_zone_dir(p, z->name, sock, err, sizeof(err))) < 0) {
        log_error("zone %s: %s", z->name, err);
        grpc_status_set(st, GRPC_INTERNAL, "Allocate: zone %s: %s", z->name, err);
        goto remove_zone;
    }
    if (p->cfg.use_cdi && (rc = cdi_write(&p->cfg.cdi, z->name, dir, err, sizeof(err))) < 0) {
        log_error("zone %s: writing its CDI spec failed: %s", z->name, err);
        grpc_status_set(st, GRPC_INTERNAL, "Allocate: zone %s: %s", z->name, err);
        goto remove_dir;
    }
    if (add_zone_entry(p, z) < 0) {
        grpc_status_set(st, GRPC_INTERNAL, "Allocate: out of memory");
        goto remove_cdi;
    }
    log_info("zone %s created: %zu slices (slice-%04u...), quota %llu bytes, socket %s", z->name,
             n, idx[0], (unsigned long long)z->quota, sock);
    *zp = z;
    return;

remove_cdi:
    if (p->cfg.use_cdi)
        cdi_remove(&p->cfg.cdi, z->name);
remove_dir:
    remove_zone_dir(p, z->name);
remove_zone:
    if (admin_remove(p->cfg.proxy_admin, z->name, err, sizeof(err)) < 0)
        log_error("zone %s: rolling back with REMOVE failed: %s", z->name, err);
free_zone:
    free(z);
}

/* The container edits for one zone, as the kubelet's AllocateResponse wants them. */
struct alloc_edits {
    V1beta1__ContainerAllocateResponse resp;
    V1beta1__ContainerAllocateResponse__EnvsEntry env[2];
    V1beta1__ContainerAllocateResponse__EnvsEntry *envp[2];
    V1beta1__Mount mounts[PLUGIN_MAX_LIBCUDA_PATHS + 1];
    V1beta1__Mount *mountp[PLUGIN_MAX_LIBCUDA_PATHS + 1];
    V1beta1__CDIDevice cdi;
    V1beta1__CDIDevice *cdip[1];
    char env_value[PATH_MAX];
    char zone_dir[PATH_MAX];
    char cdi_name[256];
};

static void fill_edits(struct plugin *p, const struct zone *z, struct alloc_edits *e)
{
    v1beta1__container_allocate_response__init(&e->resp);
    for (size_t i = 0; i < 2; i++) {
        v1beta1__container_allocate_response__envs_entry__init(&e->env[i]);
        e->envp[i] = &e->env[i];
    }
    snprintf(e->env_value, sizeof(e->env_value), "%s/%s", p->cfg.cdi.socket_dir,
             p->cfg.cdi.socket_name);
    e->env[0].key = "VGPU_SOCKET";
    e->env[0].value = e->env_value;
    /* The zone's name: a VM runtime (zone-runtime) binds the pod's guest to it. */
    e->env[1].key = "VGPU_ZONE";
    e->env[1].value = (char *)z->name;
    e->resp.n_envs = 2;
    e->resp.envs = e->envp;
    if (p->cfg.use_mounts) {
        size_t m = 0;
        for (size_t i = 0; i < p->cfg.cdi.n_libcuda_paths; i++, m++) {
            v1beta1__mount__init(&e->mounts[m]);
            e->mounts[m].host_path = (char *)p->cfg.cdi.libcuda_host;
            e->mounts[m].container_path = (char *)p->cfg.cdi.libcuda_paths[i];
            e->mounts[m].read_only = 1;
        }
        zone_dir_path(p, z->name, e->zone_dir, sizeof(e->zone_dir));
        v1beta1__mount__init(&e->mounts[m]);
        e->mounts[m].host_path = e->zone_dir;
        e->mounts[m].container_path = (char *)p->cfg.cdi.socket_dir;
        e->mounts[m].read_only = 1;
        m++;
        for (size_t i = 0; i < m; i++)
            e->mountp[i] = &e->mounts[i];
        e->resp.n_mounts = m;
        e->resp.mounts = e->mountp;
    }
    if (p->cfg.use_cdi) {
        v1beta1__cdidevice__init(&e->cdi);
        snprintf(e->cdi_name, sizeof(e->cdi_name), "%s=%s", p->cfg.cdi.kind, z->name);
        e->cdi.name = e->cdi_name;
        e->cdip[0] = &e->cdi;
        e->resp.n_cdi_devices = 1;
        e->resp.cdi_devices = e->cdip;
    }
}

static void m_allocate(void *ctx, const uint8_t *req, size_t len, struct grpc_buf *out,
                       struct grpc_status *st)
{
    struct plugin *p = ctx;
    V1beta1__AllocateRequest *r = v1beta1__allocate_request__unpack(NULL, len, req);
    if (!r) {
        grpc_status_set(st, GRPC_INVALID_ARGUMENT, "Allocate: undecodable request");
        return;
    }
    size_t nc = r->n_container_requests;
    struct zone **made = calloc(nc ? nc : 1, sizeof(*made));
    struct alloc_edits *edits = calloc(nc ? nc : 1, sizeof(*edits));
    V1beta1__ContainerAllocateResponse **crp = calloc(nc ? nc : 1, sizeof(*crp));
    unsigned *idx = calloc(PLUGIN_MAX_SLICES, sizeof(unsigned));
    if (!made || !edits || !crp || !idx) {
        grpc_status_set(st, GRPC_INTERNAL, "Allocate: out of memory");
        goto free_all;
    }
    if (nc == 0) {
        grpc_status_set(st, GRPC_INVALID_ARGUMENT, "Allocate: no container requests");
        goto free_all;
    }
    pthread_mutex_lock(&p->lock);
    bool healthy = p->healthy;
    pthread_mutex_unlock(&p->lock);
    for (size_t c = 0; c < nc; c++) {
        validate_ids(p, r->container_requests[c], idx, st);
        if (st->code != GRPC_OK)
            goto free_all;
    }
    if (!healthy) {
        grpc_status_set(st, GRPC_UNAVAILABLE, "Allocate: gpu_proxy at %s is not answering",
                        p->cfg.proxy_admin);
        goto free_all;
    }
    if (p->cfg.use_mounts && access(p->cfg.cdi.libcuda_host, R_OK) < 0) {
        log_error("Allocate: our libcuda.so.1 is not readable at %s: %s", p->cfg.cdi.libcuda_host,
                  strerror(errno));
        grpc_status_set(st, GRPC_FAILED_PRECONDITION,
                        "Allocate: the vGPU libcuda.so.1 is missing on the node (%s)",
                        p->cfg.cdi.libcuda_host);
        goto free_all;
    }
    pthread_mutex_lock(&p->zones_lock);
    for (size_t c = 0; c < nc; c++) {
        V1beta1__ContainerAllocateRequest *q = r->container_requests[c];
        validate_ids(p, q, idx, st);
        if (st->code == GRPC_OK)
            create_zone(p, idx, q->n_devices_ids, &made[c], st);
        if (st->code != GRPC_OK) {
            /* All or nothing: undo the zones made for earlier containers of this request. */
            for (size_t u = 0; u < c; u++)
                release_zone(p, made[u], "rolled back: another container's allocation failed");
            save_state(p);
            pthread_mutex_unlock(&p->zones_lock);
            goto free_all;
        }
        fill_edits(p, made[c], &edits[c]);
        crp[c] = &edits[c].resp;
    }
    save_state(p);
    pthread_mutex_unlock(&p->zones_lock);
    V1beta1__AllocateResponse resp = V1BETA1__ALLOCATE_RESPONSE__INIT;
    resp.n_container_responses = nc;
    resp.container_responses = crp;
    pack_reply(&resp.base, out, st);
free_all:
    free(idx);
    free(crp);
    free(edits);
    free(made);
    v1beta1__allocate_request__free_unpacked(r, NULL);
}

static void m_pre_start(void *ctx, const uint8_t *req, size_t len, struct grpc_buf *out,
                        struct grpc_status *st)
{
    (void)ctx;
    V1beta1__PreStartContainerRequest *r =
        v1beta1__pre_start_container_request__unpack(NULL, len, req);
    if (!r) {
        grpc_status_set(st, GRPC_INVALID_ARGUMENT, "PreStartContainer: undecodable request");
        return;
    }
    v1beta1__pre_start_container_request__free_unpacked(r, NULL);
    V1beta1__PreStartContainerResponse resp = V1BETA1__PRE_START_CONTAINER_RESPONSE__INIT;
    pack_reply(&resp.base, out, st);
}

const struct grpc_method plugin_methods[] = {
    {.path = "/v1beta1.DevicePlugin/GetDevicePluginOptions", .unary = m_get_options},
    {.path = "/v1beta1.DevicePlugin/ListAndWatch", .stream = m_list_and_watch},
    {.path = "/v1beta1.DevicePlugin/GetPreferredAllocation", .unary = m_preferred_allocation},
    {.path = "/v1beta1.DevicePlugin/Allocate", .unary = m_allocate},
    {.path = "/v1beta1.DevicePlugin/PreStartContainer", .unary = m_pre_start},
};
const size_t plugin_n_methods = sizeof(plugin_methods) / sizeof(plugin_methods[0]);
