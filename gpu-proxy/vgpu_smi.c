/* vgpu_smi.c - vgpu-smi, gpu_proxy's answer to nvidia-smi: reads every figure at once through
 * the admin socket's METRICS command (version 1, docs/CONTRACTS.md) and shows the GPU and a
 * table of zones (memory used/quota, clients, kernels/s, refusals, last fault), repeatedly
 * with -l SECONDS, as JSON with --json, or one zone in detail with -q -z ZONE. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_ADMIN "/run/gpu-proxy/admin.sock"
#define REPLY_MAX (16u << 20)
#define MAX_KEYS 256
#define MAX_ZONES 1024

struct kv {
    char *key, *value;
};

/* One line of the answer ("gpu" or "zone"): its key=value fields, values decoded. */
struct rec {
    unsigned n;
    struct kv kv[MAX_KEYS];
};

struct snapshot {
    char *text;             /* the answer, parsed in place */
    struct rec gpu;
    struct rec *zones;
    unsigned nzones;
    double t;               /* when it was read (CLOCK_MONOTONIC seconds) */
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sends "METRICS\n" and reads the whole answer (the proxy closes after it). */
static char *ask(const char *path, char *err, size_t cap)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = 0, size = 65536;
    char *buf;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, cap, "admin socket path %s is too long", path);
        return NULL;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, cap, "cannot reach gpu_proxy at %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    buf = malloc(size);
    if (buf == NULL || send(fd, "METRICS\n", 8, MSG_NOSIGNAL) != 8) {
        snprintf(err, cap, "sending the request to %s: %s", path,
                 buf ? strerror(errno) : "out of memory");
        goto fail;
    }
    for (;;) {
        ssize_t r;
        if (len + 1 == size) {
            char *nb = size < REPLY_MAX ? realloc(buf, size * 2) : NULL;
            if (nb == NULL) {
                snprintf(err, cap, "the answer is larger than %u bytes", REPLY_MAX);
                goto fail;
            }
            buf = nb;
            size *= 2;
        }
        r = recv(fd, buf + len, size - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, cap, "reading the answer: %s", strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    return buf;

fail:
    close(fd);
    free(buf);
    return NULL;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes %XX in place. */
static void unescape(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (s[0] == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            *o++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = 0;
}

/* Splits the fields after the line's first word into r. */
static void parse_rec(char *line, struct rec *r)
{
    char *save = NULL, *tok = strtok_r(line, " ", &save);

    r->n = 0;
    while ((tok = strtok_r(NULL, " ", &save)) != NULL && r->n < MAX_KEYS) {
        char *eq = strchr(tok, '=');
        if (eq == NULL)
            continue;
        *eq = 0;
        unescape(eq + 1);
        r->kv[r->n++] = (struct kv){tok, eq + 1};
    }
}

static const char *get(const struct rec *r, const char *key)
{
    for (unsigned i = 0; i < r->n; i++)
        if (strcmp(r->kv[i].key, key) == 0)
            return r->kv[i].value;
    return NULL;
}

static unsigned long long getu(const struct rec *r, const char *key)
{
    const char *v = get(r, key);

    return v ? strtoull(v, NULL, 10) : 0;
}

/* Reads and parses one snapshot; 0, or -1 with the reason in err. */
static int snap_read(const char *admin, struct snapshot *s, char *err, size_t cap)
{
    char *save = NULL, *line;
    unsigned version = 0, n = 0;

    memset(s, 0, sizeof(*s));
    s->text = ask(admin, err, cap);
    if (s->text == NULL)
        return -1;
    s->t = now_s();
    line = strtok_r(s->text, "\n", &save);
    if (line == NULL || strncmp(line, "OK ", 3) != 0) {
        snprintf(err, cap, "gpu_proxy answered: %s", line ? line : "(nothing)");
        return -1;
    }
    if (sscanf(line, "OK version=%u zones=%u", &version, &n) != 2 || version != 1 ||
        n > MAX_ZONES) {
        snprintf(err, cap, "unexpected answer \"%s\" (this vgpu-smi reads METRICS version 1)",
                 line);
        return -1;
    }
    s->zones = calloc(n ? n : 1, sizeof(*s->zones));
    if (s->zones == NULL) {
        snprintf(err, cap, "out of memory");
        return -1;
    }
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        if (strncmp(line, "gpu ", 4) == 0)
            parse_rec(line, &s->gpu);
        else if (strncmp(line, "zone ", 5) == 0 && s->nzones < n)
            parse_rec(line, &s->zones[s->nzones++]);
    }
    return 0;
}

static void snap_free(struct snapshot *s)
{
    free(s->text);
    free(s->zones);
    memset(s, 0, sizeof(*s));
}

static const struct rec *zone_of(const struct snapshot *s, const char *name)
{
    for (unsigned i = 0; s && i < s->nzones; i++) {
        const char *z = get(&s->zones[i], "name");
        if (z && strcmp(z, name) == 0)
            return &s->zones[i];
    }
    return NULL;
}

static unsigned long long refusals(const struct rec *z)
{
    unsigned long long sum = 0;

    for (unsigned i = 0; i < z->n; i++)
        if (strncmp(z->kv[i].key, "refused.", 8) == 0)
            sum += strtoull(z->kv[i].value, NULL, 10);
    return sum;
}

static void mib(char *buf, size_t cap, unsigned long long b)
{
    snprintf(buf, cap, "%llu MiB", b >> 20);
}

/* The GPU's own figures (NVML), those the proxy has: "-" for the others. */
static void show_nvml(const struct rec *g)
{
    char util[16] = "-", mem[48] = "-", temp[16] = "-", power[24] = "-";

    if (getu(g, "nvml") == 0) {
        printf("     NVML: not read (the proxy's log says why)\n");
        return;
    }
    if (get(g, "util_pct"))
        snprintf(util, sizeof(util), "%llu%%", getu(g, "util_pct"));
    if (get(g, "mem_used_bytes"))
        snprintf(mem, sizeof(mem), "%llu / %llu MiB", getu(g, "mem_used_bytes") >> 20,
                 getu(g, "mem_total_bytes") >> 20);
    if (get(g, "temp_c"))
        snprintf(temp, sizeof(temp), "%llu C", getu(g, "temp_c"));
    if (get(g, "power_mw"))
        snprintf(power, sizeof(power), "%.1f W", getu(g, "power_mw") / 1000.0);
    printf("     utilisation %s, memory %s, %s, %s (NVML)\n", util, mem, temp, power);
}

/* The screen: the GPU, then a row per zone; rates against prev (NULL: "-"). */
static void show_table(const struct snapshot *s, const struct snapshot *prev)
{
    char used[32], quota[32], rate[32];
    time_t t = time(NULL);

    printf("vgpu-smi  %s", ctime(&t));
    printf("GPU: %s (backend %s), %llu MiB\n", get(&s->gpu, "device") ?: "?",
           get(&s->gpu, "backend") ?: "?", getu(&s->gpu, "total_bytes") >> 20);
    show_nvml(&s->gpu);
    printf("%-20s %-10s %21s %7s %9s %8s  %s\n", "ZONE", "STATE", "MEMORY USED / QUOTA",
           "CLIENTS", "KERNELS/s", "REFUSED", "LAST FAULT");
    for (unsigned i = 0; i < s->nzones; i++) {
        const struct rec *z = &s->zones[i], *p = prev ? zone_of(prev, get(z, "name")) : NULL;
        const char *fault = get(z, "last_fault");
        mib(used, sizeof(used), getu(z, "used"));
        if (getu(z, "quota"))
            mib(quota, sizeof(quota), getu(z, "quota"));
        else
            snprintf(quota, sizeof(quota), "none");
        if (p && s->t > prev->t)
            snprintf(rate, sizeof(rate), "%.1f",
                     (double)(getu(z, "kernels") - getu(p, "kernels")) / (s->t - prev->t));
        else
            snprintf(rate, sizeof(rate), "-");
        printf("%-20s %-10s %10s / %8s %7llu %9s %8llu  %s\n", get(z, "name") ?: "?",
               get(z, "state") ?: "?", used, quota, getu(z, "clients"), rate, refusals(z),
               fault && fault[0] ? fault : "-");
    }
    fflush(stdout);
}

/* A JSON string. */
static void json_str(const char *v)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void json_rec(const struct rec *r)
{
    putchar('{');
    for (unsigned i = 0; i < r->n; i++) {
        const char *v = r->kv[i].value;
        int num = v[0] && strspn(v, "0123456789") == strlen(v) && (v[0] != '0' || !v[1]);
        if (i)
            putchar(',');
        json_str(r->kv[i].key);
        putchar(':');
        if (num)
            fputs(v, stdout);
        else
            json_str(v);
    }
    putchar('}');
}

static void show_json(const struct snapshot *s, const char *zone)
{
    printf("{\"version\":1,\"gpu\":");
    json_rec(&s->gpu);
    printf(",\"zones\":[");
    for (unsigned i = 0, k = 0; i < s->nzones; i++) {
        if (zone && strcmp(get(&s->zones[i], "name") ?: "", zone) != 0)
            continue;
        if (k++)
            putchar(',');
        json_rec(&s->zones[i]);
    }
    printf("]}\n");
    fflush(stdout);
}

/* -q -z ZONE: every figure of one zone, one per line. */
static int show_zone(const struct snapshot *s, const char *name)
{
    const struct rec *z = zone_of(s, name);

    if (z == NULL) {
        fprintf(stderr, "vgpu-smi: no zone \"%s\" (zones:", name);
        for (unsigned i = 0; i < s->nzones; i++)
            fprintf(stderr, " %s", get(&s->zones[i], "name") ?: "?");
        fprintf(stderr, ")\n");
        return -1;
    }
    printf("Zone %s\n", name);
    for (unsigned i = 1; i < z->n; i++)
        printf("    %-32s : %s\n", z->kv[i].key, z->kv[i].value[0] ? z->kv[i].value : "-");
    fflush(stdout);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: vgpu-smi [--admin PATH] [-l SECONDS] [--json] [-q -z ZONE]\n"
               "Shows gpu_proxy's GPU and zones (the admin socket's METRICS).\n\n"
               "  --admin PATH   gpu_proxy's admin socket (default " DEFAULT_ADMIN ")\n"
               "  -l SECONDS     repeat every SECONDS until interrupted\n"
               "  --json         one JSON object per sample (with -z: that zone only)\n"
               "  -q -z ZONE     every figure of one zone\n"
               "  -h, --help     this text\n");
}

struct opts {
    const char *admin, *zone;
    double every;
    int json, query;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"admin", required_argument, NULL, 'a'}, {"json", no_argument, NULL, 'j'},
        {"loop", required_argument, NULL, 'l'},  {"query", no_argument, NULL, 'q'},
        {"zone", required_argument, NULL, 'z'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    char *end;
    int c;

    *o = (struct opts){.admin = DEFAULT_ADMIN};
    while ((c = getopt_long(argc, argv, "l:qz:h", lo, NULL)) != -1) {
        switch (c) {
        case 'a': o->admin = optarg; break;
        case 'j': o->json = 1; break;
        case 'q': o->query = 1; break;
        case 'z': o->zone = optarg; break;
        case 'l':
            o->every = strtod(optarg, &end);
            if (*end || o->every < 0.1 || o->every > 86400) {
                fprintf(stderr, "vgpu-smi: -l wants seconds between 0.1 and 86400, not "
                                "\"%s\"\n", optarg);
                return -1;
            }
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc || (o->query && o->zone == NULL)) {
        fprintf(stderr, "vgpu-smi: %s\n", optind < argc ? "unexpected argument"
                                                       : "-q needs -z ZONE");
        usage(stderr);
        return -1;
    }
    return 0;
}

static int show(const struct opts *o, const struct snapshot *s, const struct snapshot *prev)
{
    if (o->json)
        show_json(s, o->zone);
    else if (o->query)
        return show_zone(s, o->zone);
    else
        show_table(s, prev);
    return 0;
}

int main(int argc, char **argv)
{
    struct snapshot cur, prev = {0};
    struct opts o;
    char err[512];

    if (parse_args(argc, argv, &o) != 0)
        return 2;
    for (;;) {
        if (snap_read(o.admin, &cur, err, sizeof(err)) != 0) {
            fprintf(stderr, "vgpu-smi: %s\n", err);
            snap_free(&cur);
            snap_free(&prev);
            return 1;
        }
        if (show(&o, &cur, prev.text ? &prev : NULL) != 0) {
            snap_free(&cur);
            snap_free(&prev);
            return 1;
        }
        snap_free(&prev);
        prev = cur;
        if (o.every == 0)
            break;
        usleep((useconds_t)(o.every * 1e6));
        if (!o.json && !o.query)
            putchar('\n');
    }
    snap_free(&prev);
    return 0;
}
