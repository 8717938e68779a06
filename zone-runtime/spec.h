/* spec.h - the part of an OCI bundle's config.json that a zone runs: the process (args, env,
 * cwd, user, terminal, rlimits), hostname, root, the memory and CPU limits, and the GPU zone
 * named by the VGPU_ZONE variable of the process's environment. */
#ifndef VGPU_ZONE_SPEC_H
#define VGPU_ZONE_SPEC_H

#include <stddef.h>
#include <stdint.h>

#define ZSPEC_MAX_ARGS 4096
#define ZSPEC_MAX_ENV 4096
#define ZSPEC_MAX_GIDS 64
#define ZSPEC_MAX_RLIMITS 16
#define ZSPEC_NAME_MAX 64      /* zone names: [A-Za-z0-9][A-Za-z0-9_.-]{0,62} */
#define ZSPEC_ZONE_ENV "VGPU_ZONE"

struct zspec_rlimit {
    int resource;              /* RLIMIT_* */
    uint64_t soft, hard;
};

struct zspec {
    char **args;               /* NULL-terminated, nargs >= 1 */
    size_t nargs;
    char **env;                /* NULL-terminated "K=V" */
    size_t nenv;
    char *cwd;                 /* absolute */
    uint32_t uid, gid;
    uint32_t gids[ZSPEC_MAX_GIDS];
    size_t ngids;
    struct zspec_rlimit rlimits[ZSPEC_MAX_RLIMITS];
    size_t nrlimits;
    int terminal;
    char *hostname;            /* may be NULL */
    char *root;                /* absolute path of the root filesystem */
    int root_readonly;
    uint64_t memory_limit;     /* bytes, 0: none given */
    unsigned vcpus;            /* from cpu quota/period, 0: none given */
    char zone[ZSPEC_NAME_MAX]; /* "" without VGPU_ZONE */
    int sandbox;               /* a Kubernetes pod's sandbox (pause) container: no guest */
};

/* Parses BUNDLE/config.json (or the file `config` when not NULL) into s. On failure returns
 * -errno-style code and writes why into err (errlen bytes). */
int zspec_load(const char *bundle, const char *config, struct zspec *s, char *err, size_t errlen);
/* Parses JSON text (len bytes) with bundle for relative root paths. */
int zspec_parse(const char *text, size_t len, const char *bundle, struct zspec *s, char *err,
                size_t errlen);
void zspec_free(struct zspec *s);
/* 1 if name is a valid zone name (the admin socket's rule). */
int zspec_valid_name(const char *name);
/* Maps "RLIMIT_NOFILE" etc. to the resource number, -1 if unknown. */
int zspec_rlimit_by_name(const char *name);

#endif
