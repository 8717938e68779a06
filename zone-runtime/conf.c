/* conf.c - the runtime's settings file (see conf.h): defaults, then key = value lines; '#'
 * starts a comment. Operator input: every line is checked, an unknown key is an error. */
#include "conf.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void zconf_defaults(struct zconf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->kernel, sizeof(c->kernel), "/usr/lib/vgpu-zone/kernel");
    snprintf(c->initrd, sizeof(c->initrd), "/usr/lib/vgpu-zone/initrd");
    snprintf(c->gpu_lib_dir, sizeof(c->gpu_lib_dir), "/usr/lib/vgpu-zone/gpu");
    snprintf(c->hotplug, sizeof(c->hotplug), "/usr/lib/vgpu-zone/vgpu-zone-block");
    snprintf(c->proxy_admin, sizeof(c->proxy_admin), "/run/gpu-proxy/admin.sock");
    snprintf(c->xl, sizeof(c->xl), "xl");
    snprintf(c->mkfs, sizeof(c->mkfs), "mkfs.ext4");
    c->default_memory_mb = 256;
    c->min_memory_mb = 96;
    c->overhead_mb = 64;
    c->disk_slack_mb = 64;
}

static int set_path(char *dst, size_t len, const char *v)
{
    if (!*v || strlen(v) >= len)
        return -EINVAL;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int set_uint(unsigned *dst, const char *v, unsigned max)
{
    char *end;
    unsigned long n;
    errno = 0;
    n = strtoul(v, &end, 10);
    if (errno || end == v || *end || n > max)
        return -EINVAL;
    *dst = (unsigned)n;
    return 0;
}

int zconf_set(struct zconf *c, const char *k, const char *v)
{
    static const struct { const char *key; size_t off; } paths[] = {
        {"kernel", offsetof(struct zconf, kernel)},
        {"initrd", offsetof(struct zconf, initrd)},
        {"gpu_lib_dir", offsetof(struct zconf, gpu_lib_dir)},
        {"hotplug", offsetof(struct zconf, hotplug)},
        {"proxy_admin", offsetof(struct zconf, proxy_admin)},
        {"xl", offsetof(struct zconf, xl)},
        {"mkfs", offsetof(struct zconf, mkfs)},
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        if (strcmp(k, paths[i].key) == 0)
            return set_path((char *)c + paths[i].off, PATH_MAX, v);
    if (strcmp(k, "proxy_domid") == 0)
        return set_uint(&c->proxy_domid, v, 32751);
    if (strcmp(k, "default_memory_mb") == 0)
        return set_uint(&c->default_memory_mb, v, 1u << 20);
    if (strcmp(k, "min_memory_mb") == 0)
        return set_uint(&c->min_memory_mb, v, 1u << 20);
    if (strcmp(k, "overhead_mb") == 0)
        return set_uint(&c->overhead_mb, v, 1u << 20);
    if (strcmp(k, "disk_slack_mb") == 0)
        return set_uint(&c->disk_slack_mb, v, 1u << 20);
    if (strcmp(k, "extra") == 0)
        return strlen(v) < sizeof(c->extra) && !strchr(v, '"')
                   ? (memcpy(c->extra, v, strlen(v) + 1), 0) : -EINVAL;
    return -EINVAL;
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

int zconf_load(struct zconf *c, const char *path, char *err, size_t errlen)
{
    char line[1024];
    int lineno = 0, explicit = path != NULL;
    FILE *f;
    if (!path && (path = getenv("VGPU_ZONE_RUNTIME_CONFIG")) != NULL && *path)
        explicit = 1;
    if (!explicit)
        path = ZCONF_DEFAULT_PATH;
    if (!(f = fopen(path, "re"))) {
        if (errno == ENOENT && !explicit)
            return 0;
        snprintf(err, errlen, "cannot open the runtime's settings %s: %s", path, strerror(errno));
        return -errno;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s, *eq;
        lineno++;
        if ((s = strchr(line, '#')) != NULL)
            *s = 0;
        s = trim(line);
        if (!*s)
            continue;
        if (!(eq = strchr(s, '=')) ||
            (*eq = 0, zconf_set(c, trim(s), trim(eq + 1)) < 0)) {
            snprintf(err, errlen, "%s line %d: not a known \"key = value\" setting", path,
                     lineno);
            fclose(f);
            return -EINVAL;
        }
    }
    fclose(f);
    return 0;
}
