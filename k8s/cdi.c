/* cdi.c - renders and writes the CDI spec of a zone: environment (VGPU_SOCKET, VGPU_ZONE), read-only bind
 * mounts of our libcuda.so.1 and of the zone's socket directory, and the ld.so.cache hook. The
 * file appears complete or not at all (temp file in the same directory, fsync, rename). */
#include "cdi.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cdi_version(void)
{
    return "0.3.0";
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_mount(FILE *f, const char *host, const char *ctr, int last)
{
    fputs("          {\"hostPath\": ", f);
    json_string(f, host);
    fputs(", \"containerPath\": ", f);
    json_string(f, ctr);
    fprintf(f, ", \"options\": [\"ro\", \"nosuid\", \"nodev\", \"bind\"]}%s\n", last ? "" : ",");
}

int cdi_render(const struct cdi_config *cfg, const char *zone, const char *zone_dir, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    char env[512];
    snprintf(env, sizeof(env), "VGPU_SOCKET=%s/%s", cfg->socket_dir, cfg->socket_name);
    fputs("{\n  \"cdiVersion\": ", f);
    json_string(f, cdi_version());
    fputs(",\n  \"kind\": ", f);
    json_string(f, cfg->kind);
    fputs(",\n  \"devices\": [\n    {\n      \"name\": ", f);
    json_string(f, zone);
    fputs(",\n      \"containerEdits\": {\n        \"env\": [", f);
    json_string(f, env);
    snprintf(env, sizeof(env), "VGPU_ZONE=%s", zone);
    fputs(", ", f);
    json_string(f, env);
    fputs("],\n        \"mounts\": [\n", f);
    for (size_t i = 0; i < cfg->n_libcuda_paths; i++)
        json_mount(f, cfg->libcuda_host, cfg->libcuda_paths[i], 0);
    json_mount(f, zone_dir, cfg->socket_dir, 1);
    fputs("        ]", f);
    if (cfg->hook_path && cfg->hook_path[0]) {
        fputs(",\n        \"hooks\": [\n          "
              "{\"hookName\": \"createContainer\", \"path\": ", f);
        json_string(f, cfg->hook_path);
        fputs(", \"args\": [\"vgpu-cdi-hook\", \"update-ldcache\"]}\n        ]", f);
    }
    fputs("\n      }\n    }\n  ]\n}\n", f);
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    return 0;
}

void cdi_spec_path(const struct cdi_config *cfg, const char *zone, char *out, size_t outlen)
{
    /* <vendor>-<class>_<zone>.json: the vendor's files stay together and never collide. */
    char kind[128];
    snprintf(kind, sizeof(kind), "%s", cfg->kind);
    for (char *p = kind; *p; p++)
        if (*p == '/')
            *p = '-';
    snprintf(out, outlen, "%s/%s_%s.json", cfg->dir, kind, zone);
}

int cdi_write(const struct cdi_config *cfg, const char *zone, const char *zone_dir, char *err,
              size_t errlen)
{
    char path[4096], tmp[4200];
    char *spec;
    int rc;
    cdi_spec_path(cfg, zone, path, sizeof(path));
    if (mkdir(cfg->dir, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        fmt_msg(err, errlen, "creating CDI directory %s: %s", cfg->dir, strerror(errno));
        return rc;
    }
    if ((rc = cdi_render(cfg, zone, zone_dir, &spec)) < 0) {
        fmt_msg(err, errlen, "rendering the CDI spec of zone %s: out of memory", zone);
        return rc;
    }
    /* The temp name does not end in .json, so CDI registries never load it half-written. */
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmpXXXXXX", cfg->dir, strrchr(path, '/') + 1);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        fmt_msg(err, errlen, "creating %s: %s", tmp, strerror(errno));
        goto free_spec;
    }
    size_t len = strlen(spec), off = 0;
    while (off < len) {
        ssize_t n = write(fd, spec + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            fmt_msg(err, errlen, "writing %s: %s", tmp, strerror(errno));
            goto unlink_tmp;
        }
        off += (size_t)n;
    }
    if (fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
        rc = -errno;
        fmt_msg(err, errlen, "chmod/fsync %s: %s", tmp, strerror(errno));
        goto unlink_tmp;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = -errno;
        fmt_msg(err, errlen, "closing %s: %s", tmp, strerror(errno));
        goto unlink_tmp;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = -errno;
        fmt_msg(err, errlen, "renaming %s to %s: %s", tmp, path, strerror(errno));
        goto unlink_tmp;
    }
    int dfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);     /* best effort: the rename is what makes the spec visible */
        close(dfd);
    }
    free(spec);
    return 0;

unlink_tmp:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
free_spec:
    free(spec);
    return rc;
}

int cdi_remove(const struct cdi_config *cfg, const char *zone)
{
    char path[4096];
    cdi_spec_path(cfg, zone, path, sizeof(path));
    if (unlink(path) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}
