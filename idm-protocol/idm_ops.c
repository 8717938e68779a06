/* idm_ops.c - the op-info table, op-name lookup and message tracing, all expanded from
 * idm_ops.def: once for idm_op_table (designated initialisers indexed by op number) and once more
 * for one formatter per request and reply struct that prints every fixed field as name=value. */
#include "idm.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const struct idm_op_info idm_op_table[IDM_OP_COUNT] = {
#define IDM_OP(name, num, kind, req, rep)                                                       \
    [num] = {#name, num, kind, sizeof(struct idm_req_##name), sizeof(struct idm_rep_##name)},
#include "idm_ops.def"
#undef IDM_OP
};

const struct idm_op_info *idm_op_lookup(uint32_t op)
{
    if (op >= IDM_OP_COUNT || idm_op_table[op].name == NULL)
        return NULL;
    return &idm_op_table[op];
}

const char *idm_op_name(uint32_t op)
{
    const struct idm_op_info *info = idm_op_lookup(op);
    return info ? info->name : "UNKNOWN";
}

/* ---- tracing ---- */

/* Appends to buf at *pos, never past buflen - 1; the string stays NUL-terminated. */
__attribute__((format(printf, 4, 5))) static void tr_put(char *buf, size_t buflen, size_t *pos,
                                                         const char *fmt, ...)
{
    if (*pos + 1 >= buflen)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *pos, buflen - *pos, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *pos += (size_t)n;
    if (*pos >= buflen)
        *pos = buflen - 1;
}

static int tr_is_hex_type(const char *type)
{
    return strcmp(type, "idm_handle") == 0 || strcmp(type, "idm_dptr") == 0;
}

/* " name=" before a field; nothing for an array element (empty name). */
static void tr_name(char *b, size_t n, size_t *pos, const char *name)
{
    if (name[0])
        tr_put(b, n, pos, " %s=", name);
}

static void tr_u(char *b, size_t n, size_t *pos, const char *name, const char *type, uint64_t v)
{
    tr_name(b, n, pos, name);
    if (tr_is_hex_type(type))
        tr_put(b, n, pos, "%#llx", (unsigned long long)v);
    else
        tr_put(b, n, pos, "%llu", (unsigned long long)v);
}

static void tr_i(char *b, size_t n, size_t *pos, const char *name, const char *type, int64_t v)
{
    (void)type;
    tr_name(b, n, pos, name);
    tr_put(b, n, pos, "%lld", (long long)v);
}

static void tr_f(char *b, size_t n, size_t *pos, const char *name, const char *type, double v)
{
    (void)type;
    tr_name(b, n, pos, name);
    tr_put(b, n, pos, "%g", v);
}

/* Picks the formatter by the field's C type (handles and device addresses print in hex). */
#define TR_SCALAR(name, type, x)                                                                \
    _Generic((x), float: tr_f, double: tr_f, char: tr_i, int8_t: tr_i, int16_t: tr_i,          \
             int32_t: tr_i, int64_t: tr_i, default: tr_u)(buf, buflen, &pos, name, type, x)

/* A char array prints as a quoted string (bounded, non-printables escaped). */
static void tr_str(char *b, size_t n, size_t *pos, const char *name, const char *s, size_t cap)
{
    tr_put(b, n, pos, " %s=\"", name);
    for (size_t i = 0; i < cap && s[i] != '\0'; i++) {
        if (i == 64) {
            tr_put(b, n, pos, "...");
            break;
        }
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            tr_put(b, n, pos, "%c", ch);
        else
            tr_put(b, n, pos, "\\x%02x", ch);
    }
    tr_put(b, n, pos, "\"");
}

/* A byte array prints in hex (at most 32 bytes). */
static void tr_bytes(char *b, size_t n, size_t *pos, const char *name, const uint8_t *p,
                     size_t cnt)
{
    tr_put(b, n, pos, " %s=", name);
    for (size_t i = 0; i < cnt && i < 32; i++)
        tr_put(b, n, pos, "%02x", p[i]);
    if (cnt > 32)
        tr_put(b, n, pos, "...");
}

#define TR_ARRAY_CLASS(x) _Generic((x), char: 1, uint8_t: 2, default: 0)

/* Other arrays print their first four elements and their length: name=[a,b,c,d,...](n). */
#define IDM_F(type, name) TR_SCALAR(#name, #type, v.name);
#define IDM_A(type, name, n)                                                                    \
    if (TR_ARRAY_CLASS(v.name[0]) == 1) {                                                       \
        tr_str(buf, buflen, &pos, #name, (const char *)v.name, (n));                            \
    } else if (TR_ARRAY_CLASS(v.name[0]) == 2) {                                                \
        tr_bytes(buf, buflen, &pos, #name, (const uint8_t *)v.name, (n));                       \
    } else {                                                                                    \
        tr_put(buf, buflen, &pos, " " #name "=[");                                              \
        for (size_t i_ = 0; i_ < (size_t)(n) && i_ < 4; i_++) {                                 \
            if (i_)                                                                             \
                tr_put(buf, buflen, &pos, ",");                                                 \
            TR_SCALAR("", #type, v.name[i_]);                                                   \
        }                                                                                       \
        tr_put(buf, buflen, &pos, "%s](%zu)", (size_t)(n) > 4 ? ",..." : "", (size_t)(n));      \
    }

typedef size_t (*tr_fn)(const void *payload, char *buf, size_t buflen, size_t pos);

#define IDM_OP(name, num, kind, req, rep)                                                       \
    static size_t tr_req_##name(const void *payload, char *buf, size_t buflen, size_t pos)      \
    {                                                                                           \
        struct idm_req_##name v;                                                                \
        memcpy(&v, payload, sizeof(v));                                                         \
        req (void)v;                                                                            \
        (void)buf;                                                                              \
        (void)buflen;                                                                           \
        return pos;                                                                             \
    }                                                                                           \
    static size_t tr_rep_##name(const void *payload, char *buf, size_t buflen, size_t pos)      \
    {                                                                                           \
        struct idm_rep_##name v;                                                                \
        memcpy(&v, payload, sizeof(v));                                                         \
        rep (void)v;                                                                            \
        (void)buf;                                                                              \
        (void)buflen;                                                                           \
        return pos;                                                                             \
    }
#include "idm_ops.def"
#undef IDM_OP
#undef IDM_F
#undef IDM_A

static const tr_fn tr_req_table[IDM_OP_COUNT] = {
#define IDM_OP(name, num, kind, req, rep) [num] = tr_req_##name,
#include "idm_ops.def"
#undef IDM_OP
};

static const tr_fn tr_rep_table[IDM_OP_COUNT] = {
#define IDM_OP(name, num, kind, req, rep) [num] = tr_rep_##name,
#include "idm_ops.def"
#undef IDM_OP
};

char *idm_trace_format(const struct idm_hdr *h, const void *payload, char *buf, size_t buflen)
{
    if (!buf || buflen == 0)
        return buf;
    buf[0] = '\0';
    if (!h)
        return buf;
    size_t pos = 0;
    int is_reply = (h->flags & IDM_F_REPLY) != 0;
    const struct idm_op_info *info = idm_op_lookup(h->op);
    if (info)
        tr_put(buf, buflen, &pos, "%s %s", info->name, is_reply ? "rep" : "req");
    else
        tr_put(buf, buflen, &pos, "op#%u %s", (unsigned)h->op, is_reply ? "rep" : "req");
    tr_put(buf, buflen, &pos, " seq=%llu zone=%u flags=%#x len=%u", (unsigned long long)h->seq,
           (unsigned)h->zone, (unsigned)h->flags, (unsigned)h->len);
    if (is_reply)
        tr_put(buf, buflen, &pos, " status=%d", (int)h->status);
    if (!info)
        return buf;
    uint32_t need = is_reply ? info->rep_size : info->req_size;
    if (h->len < need) {
        tr_put(buf, buflen, &pos, " <short payload: %u < %u>", (unsigned)h->len, (unsigned)need);
        return buf;
    }
    if (need > 0 && !payload) {
        tr_put(buf, buflen, &pos, " <no payload>");
        return buf;
    }
    if (need > 0) {
        tr_fn fn = is_reply ? tr_rep_table[h->op] : tr_req_table[h->op];
        pos = fn(payload, buf, buflen, pos);
    }
    if (h->len > need)
        tr_put(buf, buflen, &pos, " tail=%u", (unsigned)(h->len - need));
    return buf;
}
