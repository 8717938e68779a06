/* json_min.c - just enough JSON for the CDI hook: walk values (strings with escapes, nested
 * objects and arrays, bounded depth), find a member of an object, copy a string value. Input is
 * an OCI runtime's state and config.json; every read stays inside [p, end). */
#include "json_min.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Returns the position after the string starting at p ('"'), or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static const char *skip_value(const char *p, const char *end, int depth)
{
    p = skip_ws(p, end);
    if (p >= end || depth > 64)
        return NULL;
    if (*p == '"')
        return skip_string(p, end);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = skip_ws(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                if (p >= end || *p != '"' || !(p = skip_string(p, end)))
                    return NULL;
                p = skip_ws(p, end);
                if (p >= end || *p != ':')
                    return NULL;
                p++;
            }
            if (!(p = skip_value(p, end, depth + 1)))
                return NULL;
            p = skip_ws(p, end);
            if (p < end && *p == ',') {
                p = skip_ws(p + 1, end);
                continue;
            }
            if (p < end && *p == close)
                return p + 1;
            return NULL;
        }
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n')
        p++;
    return p;
}

/* In the object starting at obj ('{'), finds member key; returns where its value starts. */
const char *json_find_member(const char *obj, const char *end, const char *key)
{
    const char *p = skip_ws(obj, end);
    if (p >= end || *p != '{')
        return NULL;
    p = skip_ws(p + 1, end);
    size_t klen = strlen(key);
    while (p < end && *p == '"') {
        const char *kend = skip_string(p, end);
        if (!kend)
            return NULL;
        bool match = (size_t)(kend - p - 2) == klen && memcmp(p + 1, key, klen) == 0;
        p = skip_ws(kend, end);
        if (p >= end || *p != ':')
            return NULL;
        p = skip_ws(p + 1, end);
        if (match)
            return p;
        if (!(p = skip_value(p, end, 0)))
            return NULL;
        p = skip_ws(p, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
    return NULL;
}

/* Copies the JSON string at p (no escapes other than \/ and \" and \\ expected in paths). */
int json_get_string(const char *p, const char *end, char *out, size_t outlen)
{
    if (!p || p >= end || *p != '"')
        return -EINVAL;
    size_t o = 0;
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\') {
            if (++p >= end || (*p != '"' && *p != '\\' && *p != '/'))
                return -EINVAL;
        }
        if (o + 1 >= outlen)
            return -ENAMETOOLONG;
        out[o++] = *p;
    }
    if (p >= end)
        return -EINVAL;
    out[o] = '\0';
    return 0;
}
