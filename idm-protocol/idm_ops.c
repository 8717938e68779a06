/* idm_ops.c - the op-info table, the ops' properties and the readers of the bulk and stream
 * fields they name, op-name lookup and message tracing, all expanded from idm_ops.def: the
 * properties list once into compile-time checks and once into idm_op_props_table, the ops once
 * for idm_op_table (designated initialisers indexed by op number) and once more for one
 * formatter per request and reply struct that prints every fixed field as name=value. */
#include "idm.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---- properties ---- */

/* The spellings of IDM_PROPS lines: a missing field is the structs' zero-sized idm_empty_. */
#define IDM_NOFIELD idm_empty_
#define IDM_NOBULK NONE, IDM_NOFIELD, IDM_NOFIELD, IDM_NOFIELD
#define IDM_BULK(dir, win_off, win_len, len) dir, win_off, win_len, len

#define FSIZE(name, f) sizeof(((struct idm_req_##name *)0)->f)
#define FOFF(name, f) (FSIZE(name, f) ? (uint16_t)offsetof(struct idm_req_##name, f)         \
                                      : (uint16_t)IDM_PROP_NOFIELD)

/* Every field a property names is a uint64_t of the op's request (an unknown op or field does not
 * compile); a bulk op names its window offset and length. */
#define PROPS_CHECK(...) PROPS_CHECK_(__VA_ARGS__)
#define PROPS_CHECK_(name, dir, off, wlen, len, nt, sf)                                         \
    _Static_assert(IDM_BULK_##dir == IDM_BULK_NONE || (FSIZE(name, off) == 8 &&                 \
                   FSIZE(name, len) == 8), #name ": bulk without win_off/len fields");         \
    _Static_assert(FSIZE(name, wlen) == 0 || FSIZE(name, wlen) == 8, #name ": win_len type");  \
    _Static_assert(FSIZE(name, sf) == 0 || FSIZE(name, sf) == 8, #name ": stream field type"); \
    _Static_assert((nt) == 0 || (nt) == 1, #name ": name_tail is 0 or 1");
#define IDM_PROPS(name, bulk, nt, sf) PROPS_CHECK(name, bulk, nt, sf)
#include "idm_ops.def"
#undef IDM_PROPS

#define PROPS_ROW(...) PROPS_ROW_(__VA_ARGS__)
#define PROPS_ROW_(name, dir, off, wlen, len, nt, sf)                                           \
    [IDM_OP_##name] = {IDM_BULK_##dir, nt, FOFF(name, off), FOFF(name, wlen), FOFF(name, len),  \
                       FOFF(name, sf)},
#define NO_PROPS                                                                                \
    {IDM_BULK_NONE, 0, IDM_PROP_NOFIELD, IDM_PROP_NOFIELD, IDM_PROP_NOFIELD, IDM_PROP_NOFIELD}

/* Indexed by op number: every entry starts as NO_PROPS (a range designator), then the ops with
 * an IDM_PROPS line override theirs, as the Linux system call tables do. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
static const struct idm_op_props idm_op_props_table[IDM_OP_COUNT] = {
    [0 ... IDM_OP_COUNT - 1] = NO_PROPS,
#define IDM_PROPS(name, bulk, nt, sf) PROPS_ROW(name, bulk, nt, sf)
#include "idm_ops.def"
#undef IDM_PROPS
};
#pragma GCC diagnostic pop

const struct idm_op_info idm_op_table[IDM_OP_COUNT] = {
#define IDM_OP(name, num, kind, req, rep)                                                       \
    [num] = {#name, num, kind, sizeof(struct idm_req_##name), sizeof(struct idm_rep_##name),    \
             &idm_op_props_table[num]},
#include "idm_ops.def"
#undef IDM_OP
};

static uint64_t field_u64(const void *req, uint16_t off)
{
    uint64_t v;

    memcpy(&v, (const uint8_t *)req + off, sizeof(v));
    return v;
}

void idm_op_bulk(const struct idm_op_info *info, const void *req, struct idm_bulk *b)
{
    const struct idm_op_props *p = info->props;

    memset(b, 0, sizeof(*b));
    if (p->bulk == IDM_BULK_NONE)
        return;
    b->dir = p->bulk;
    b->can_inline = p->win_len != IDM_PROP_NOFIELD;
    b->win_off = field_u64(req, p->win_off);
    b->len = field_u64(req, p->len);
    b->win_len = b->can_inline ? field_u64(req, p->win_len) : b->len;
}

int idm_op_noreply(const struct idm_op_info *info, const struct idm_bulk *b)
{
    if (info == NULL || info->kind != IDM_KIND_ASYNC)
        return 0;
    return b->dir == IDM_BULK_NONE || b->dir == IDM_BULK_IN;
}

int idm_op_stream(const struct idm_op_info *info, const void *req, idm_handle *stream)
{
    if (info->props->stream == IDM_PROP_NOFIELD)
        return 0;
    *stream = field_u64(req, info->props->stream);
    return 1;
}

uint64_t idm_op_inline_max(const struct idm_op_info *info, uint32_t max_payload)
{
    const struct idm_op_props *p = info->props;
    uint32_t fixed = p->bulk == IDM_BULK_IN ? info->req_size : info->rep_size;

    if (p->bulk == IDM_BULK_NONE || p->win_len == IDM_PROP_NOFIELD || max_payload < fixed)
        return 0;
    return max_payload - fixed;
}

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

/* What a request's op properties say: where its bulk data travels, and the name in its tail. */
static void tr_req_props(char *buf, size_t buflen, size_t *pos, const struct idm_op_info *info,
                         const void *payload, uint32_t len)
{
    struct idm_bulk b;

    idm_op_bulk(info, payload, &b);
    if (b.dir != IDM_BULK_NONE)
        tr_put(buf, buflen, pos, " bulk=%s:%s", b.dir == IDM_BULK_IN ? "in" : "out",
               b.win_len ? "window" : "inline");
    if (info->props->name_tail && len > info->req_size)
        tr_str(buf, buflen, pos, "name", (const char *)payload + info->req_size,
               len - info->req_size);
}

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
        if (!is_reply)
            tr_req_props(buf, buflen, &pos, info, payload, h->len);
    }
    if (h->len > need)
        tr_put(buf, buflen, &pos, " tail=%u", (unsigned)(h->len - need));
    return buf;
}
