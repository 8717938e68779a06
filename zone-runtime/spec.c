/* spec.c - reads an OCI bundle's config.json (operator/engine input, parsed with jansson and
 * checked field by field: a malformed or oversized field is an error naming the field, never a
 * crash) into struct zspec, the subset a zone guest needs. */
#include "spec.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define CONFIG_MAX_BYTES (4u << 20)

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

int zspec_valid_name(const char *n)
{
    size_t i, len = strlen(n);
    if (len == 0 || len >= ZSPEC_NAME_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        char c = n[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return 0;
    }
    return 1;
}

static const struct {
    const char *name;
    int resource;
} rlimit_names[] = {
    {"RLIMIT_AS", RLIMIT_AS},         {"RLIMIT_CORE", RLIMIT_CORE},
    {"RLIMIT_CPU", RLIMIT_CPU},       {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_FSIZE", RLIMIT_FSIZE},   {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
    {"RLIMIT_NICE", RLIMIT_NICE},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},
    {"RLIMIT_NPROC", RLIMIT_NPROC},   {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO}, {"RLIMIT_RTTIME", RLIMIT_RTTIME},
    {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING}, {"RLIMIT_STACK", RLIMIT_STACK},
};

int zspec_rlimit_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof(rlimit_names) / sizeof(rlimit_names[0]); i++)
        if (strcmp(rlimit_names[i].name, name) == 0)
            return rlimit_names[i].resource;
    return -1;
}

/* A NULL-terminated copy of a JSON array of strings (NUL bytes refused). */
static int string_array(json_t *a, size_t max, char ***out, size_t *n, const char *what,
                        char *err, size_t errlen)
{
    size_t i, count;
    char **v;
    if (!json_is_array(a))
        return fail(err, errlen, -EINVAL, "%s is not an array of strings", what);
    count = json_array_size(a);
    if (count > max)
        return fail(err, errlen, -E2BIG, "%s has %zu entries (at most %zu)", what, count, max);
    v = calloc(count + 1, sizeof(*v));
    if (!v)
        return fail(err, errlen, -ENOMEM, "%s: out of memory", what);
    for (i = 0; i < count; i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e)) {
            *out = v; *n = i;
            return fail(err, errlen, -EINVAL, "%s[%zu] is not a string without NUL bytes",
                        what, i);
        }
        if (!(v[i] = strdup(json_string_value(e)))) {
            *out = v; *n = i;
            return fail(err, errlen, -ENOMEM, "%s: out of memory", what);
        }
    }
    *out = v;
    *n = count;
    return 0;
}

static int get_u32(json_t *o, const char *key, uint32_t *out, const char *what, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > UINT32_MAX)
        return fail(err, errlen, -EINVAL, "%s.%s is not an integer in 0..%u", what, key,
                    UINT32_MAX);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int parse_user(json_t *user, struct zspec *s, char *err, size_t errlen)
{
    json_t *g;
    size_t i;
    int rc;
    if (!user)
        return 0;
    if (!json_is_object(user))
        return fail(err, errlen, -EINVAL, "process.user is not an object");
    if ((rc = get_u32(user, "uid", &s->uid, "process.user", err, errlen)) < 0 ||
        (rc = get_u32(user, "gid", &s->gid, "process.user", err, errlen)) < 0)
        return rc;
    if (json_object_get(user, "username"))
        return fail(err, errlen, -ENOTSUP, "process.user.username is Windows-only");
    g = json_object_get(user, "additionalGids");
    if (!g)
        return 0;
    if (!json_is_array(g) || json_array_size(g) > ZSPEC_MAX_GIDS)
        return fail(err, errlen, -EINVAL, "process.user.additionalGids is not an array of at "
                    "most %d ids", ZSPEC_MAX_GIDS);
    for (i = 0; i < json_array_size(g); i++) {
        json_t *e = json_array_get(g, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 ||
            json_integer_value(e) > UINT32_MAX)
            return fail(err, errlen, -EINVAL, "process.user.additionalGids[%zu] is not a gid", i);
        s->gids[s->ngids++] = (uint32_t)json_integer_value(e);
    }
    return 0;
}

static int parse_rlimits(json_t *rl, struct zspec *s, char *err, size_t errlen)
{
    size_t i;
    if (!rl)
        return 0;
    if (!json_is_array(rl) || json_array_size(rl) > ZSPEC_MAX_RLIMITS)
        return fail(err, errlen, -EINVAL, "process.rlimits is not an array of at most %d entries",
                    ZSPEC_MAX_RLIMITS);
    for (i = 0; i < json_array_size(rl); i++) {
        json_t *e = json_array_get(rl, i), *t = json_object_get(e, "type");
        json_t *soft = json_object_get(e, "soft"), *hard = json_object_get(e, "hard");
        int res = json_is_string(t) ? zspec_rlimit_by_name(json_string_value(t)) : -1;
        if (res < 0)
            return fail(err, errlen, -EINVAL, "process.rlimits[%zu].type is not a known RLIMIT_*",
                        i);
        if (!json_is_integer(soft) || !json_is_integer(hard) || json_integer_value(soft) < 0 ||
            json_integer_value(hard) < 0)
            return fail(err, errlen, -EINVAL, "process.rlimits[%zu]: soft and hard must be "
                        "non-negative integers", i);
        s->rlimits[s->nrlimits].resource = res;
        s->rlimits[s->nrlimits].soft = (uint64_t)json_integer_value(soft);
        s->rlimits[s->nrlimits].hard = (uint64_t)json_integer_value(hard);
        if (s->rlimits[s->nrlimits].soft > s->rlimits[s->nrlimits].hard)
            return fail(err, errlen, -EINVAL, "process.rlimits[%zu]: soft above hard", i);
        s->nrlimits++;
    }
    return 0;
}

/* VGPU_ZONE=<name> in the environment names the GPU zone; the last one counts, as for getenv. */
static int find_zone(struct zspec *s, char *err, size_t errlen)
{
    const size_t klen = strlen(ZSPEC_ZONE_ENV);
    s->zone[0] = 0;
    for (size_t i = 0; i < s->nenv; i++) {
        const char *e = s->env[i];
        if (strncmp(e, ZSPEC_ZONE_ENV, klen) != 0 || e[klen] != '=')
            continue;
        if (!zspec_valid_name(e + klen + 1))
            return fail(err, errlen, -EINVAL, "process.env %s=\"%.80s\" is not a zone name "
                        "([A-Za-z0-9][A-Za-z0-9_.-]{0,62})", ZSPEC_ZONE_ENV, e + klen + 1);
        snprintf(s->zone, sizeof(s->zone), "%s", e + klen + 1);
    }
    return 0;
}

static int parse_process(json_t *p, struct zspec *s, char *err, size_t errlen)
{
    json_t *cwd, *term;
    int rc;
    if (!json_is_object(p))
        return fail(err, errlen, -EINVAL, "process is missing or not an object");
    if ((rc = string_array(json_object_get(p, "args"), ZSPEC_MAX_ARGS, &s->args, &s->nargs,
                           "process.args", err, errlen)) < 0)
        return rc;
    if (s->nargs == 0 || s->args[0][0] == 0)
        return fail(err, errlen, -EINVAL, "process.args is empty");
    if (json_object_get(p, "env")) {
        if ((rc = string_array(json_object_get(p, "env"), ZSPEC_MAX_ENV, &s->env, &s->nenv,
                               "process.env", err, errlen)) < 0)
            return rc;
    } else if (!(s->env = calloc(1, sizeof(char *)))) {
        return fail(err, errlen, -ENOMEM, "process.env: out of memory");
    }
    cwd = json_object_get(p, "cwd");
    if (!json_is_string(cwd) || json_string_value(cwd)[0] != '/' ||
        json_string_length(cwd) >= PATH_MAX)
        return fail(err, errlen, -EINVAL, "process.cwd is missing or not an absolute path");
    if (!(s->cwd = strdup(json_string_value(cwd))))
        return fail(err, errlen, -ENOMEM, "process.cwd: out of memory");
    term = json_object_get(p, "terminal");
    if (term && !json_is_boolean(term))
        return fail(err, errlen, -EINVAL, "process.terminal is not a boolean");
    s->terminal = json_is_true(term);
    if ((rc = parse_user(json_object_get(p, "user"), s, err, errlen)) < 0 ||
        (rc = parse_rlimits(json_object_get(p, "rlimits"), s, err, errlen)) < 0)
        return rc;
    return find_zone(s, err, errlen);
}

static int parse_root(json_t *r, const char *bundle, struct zspec *s, char *err, size_t errlen)
{
    json_t *path = json_object_get(r, "path"), *ro = json_object_get(r, "readonly");
    const char *p;
    if (!json_is_object(r) || !json_is_string(path) || json_string_length(path) == 0 ||
        json_string_length(path) >= PATH_MAX)
        return fail(err, errlen, -EINVAL, "root.path is missing or not a path");
    p = json_string_value(path);
    if (p[0] == '/')
        s->root = strdup(p);
    else if (asprintf(&s->root, "%s/%s", bundle, p) < 0)
        s->root = NULL;
    if (!s->root)
        return fail(err, errlen, -ENOMEM, "root.path: out of memory");
    if (ro && !json_is_boolean(ro))
        return fail(err, errlen, -EINVAL, "root.readonly is not a boolean");
    s->root_readonly = json_is_true(ro);
    return 0;
}

/* linux.resources.memory.limit and cpu quota/period; absent or -1 means none. */
static int parse_resources(json_t *linux_, struct zspec *s, char *err, size_t errlen)
{
    json_t *res = json_object_get(linux_, "resources"), *mem, *cpu, *v, *q, *per;
    if (!res)
        return 0;
    mem = json_object_get(res, "memory");
    if ((v = json_object_get(mem, "limit")) != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < -1)
            return fail(err, errlen, -EINVAL, "linux.resources.memory.limit is not an integer");
        s->memory_limit = json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    }
    cpu = json_object_get(res, "cpu");
    q = json_object_get(cpu, "quota");
    per = json_object_get(cpu, "period");
    if (json_is_integer(q) && json_is_integer(per) && json_integer_value(q) > 0 &&
        json_integer_value(per) > 0) {
        uint64_t n = ((uint64_t)json_integer_value(q) + (uint64_t)json_integer_value(per) - 1) /
                     (uint64_t)json_integer_value(per);
        s->vcpus = n > 128 ? 128 : (unsigned)n;
    }
    return 0;
}

/* containerd and CRI-O mark a pod's sandbox (pause) container with an annotation. */
static int parse_annotations(json_t *a, struct zspec *s, char *err, size_t errlen)
{
    static const char *const keys[] = {"io.kubernetes.cri.container-type",
                                       "io.kubernetes.cri-o.ContainerType"};
    if (!a)
        return 0;
    if (!json_is_object(a))
        return fail(err, errlen, -EINVAL, "annotations is not an object");
    for (size_t i = 0; i < 2; i++) {
        json_t *v = json_object_get(a, keys[i]);
        if (json_is_string(v) && strcmp(json_string_value(v), "sandbox") == 0)
            s->sandbox = 1;
    }
    return 0;
}

static int parse_doc(json_t *doc, const char *bundle, struct zspec *s, char *err, size_t errlen)
{
    json_t *ver = json_object_get(doc, "ociVersion"), *host, *linux_;
    int rc;
    if (!json_is_object(doc))
        return fail(err, errlen, -EINVAL, "config.json is not a JSON object");
    if (!json_is_string(ver) || strncmp(json_string_value(ver), "1.", 2) != 0)
        return fail(err, errlen, -EINVAL, "ociVersion is missing or not 1.x");
    if ((rc = parse_annotations(json_object_get(doc, "annotations"), s, err, errlen)) < 0 ||
        (rc = parse_process(json_object_get(doc, "process"), s, err, errlen)) < 0 ||
        (rc = parse_root(json_object_get(doc, "root"), bundle, s, err, errlen)) < 0)
        return rc;
    host = json_object_get(doc, "hostname");
    if (host) {
        if (!json_is_string(host) || json_string_length(host) > 64 ||
            strlen(json_string_value(host)) != json_string_length(host))
            return fail(err, errlen, -EINVAL, "hostname is not a string of at most 64 bytes");
        if (!(s->hostname = strdup(json_string_value(host))))
            return fail(err, errlen, -ENOMEM, "hostname: out of memory");
    }
    linux_ = json_object_get(doc, "linux");
    if (linux_ && !json_is_object(linux_))
        return fail(err, errlen, -EINVAL, "linux is not an object");
    return parse_resources(linux_, s, err, errlen);
}

int zspec_parse(const char *text, size_t len, const char *bundle, struct zspec *s, char *err,
                size_t errlen)
{
    json_error_t je;
    json_t *doc;
    int rc;
    memset(s, 0, sizeof(*s));
    doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return fail(err, errlen, -EINVAL, "config.json line %d column %d: %s", je.line,
                    je.column, je.text);
    rc = parse_doc(doc, bundle, s, err, errlen);
    json_decref(doc);
    if (rc < 0)
        zspec_free(s);
    return rc;
}

int zspec_load(const char *bundle, const char *config, struct zspec *s, char *err, size_t errlen)
{
    char path[PATH_MAX], *buf;
    size_t len = 0;
    FILE *f;
    int rc;
    if (!config) {
        if (snprintf(path, sizeof(path), "%s/config.json", bundle) >= (int)sizeof(path))
            return fail(err, errlen, -ENAMETOOLONG, "bundle path too long");
        config = path;
    }
    if (!(f = fopen(config, "re")))
        return fail(err, errlen, -errno, "cannot open %s: %s", config, strerror(errno));
    buf = malloc(CONFIG_MAX_BYTES + 1);
    if (buf)
        len = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
    rc = !buf ? -ENOMEM : ferror(f) ? -EIO : len > CONFIG_MAX_BYTES ? -EFBIG : 0;
    fclose(f);
    if (rc == 0)
        rc = zspec_parse(buf, len, bundle, s, err, errlen);
    else
        fail(err, errlen, rc, "reading %s: %s", config,
             rc == -EFBIG ? "larger than 4 MiB" : strerror(-rc));
    free(buf);
    return rc;
}

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void zspec_free(struct zspec *s)
{
    free_strv(s->args, s->nargs);
    free_strv(s->env, s->nenv);
    free(s->cwd);
    free(s->hostname);
    free(s->root);
    memset(s, 0, sizeof(*s));
}
