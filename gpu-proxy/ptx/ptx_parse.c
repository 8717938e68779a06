/* ptx_parse.c - parses PTX text (as nvcc emits it) into the engine's compact form: functions
 * with instruction arrays whose operands are register-file indices, module variables with their
 * initial bytes, and the module-wide shared memory layout. Errors name the line. */
#include "ptx_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ptx_op_names[OP_COUNT] = {
#define X(n) [OP_##n] = #n,
    PTX_OPS(X)
#undef X
};

/* ---- lexer ---------------------------------------------------------------------------- */

enum { TK_EOF = 0, TK_WORD, TK_STR, TK_PUNCT };

struct tok {
    int kind;
    uint32_t line;
    uint32_t len;
    const char *s;
};

#define MAX_SCOPES 64
#define PTX_WARP_SIZE 32u /* the value of PTX's predefined WARP_SZ */

enum { SYM_REG = 1, SYM_PARAM, SYM_SHARED, SYM_LOCAL, SYM_GLOBAL, SYM_DYNSHARED, SYM_FUNC };

struct sym {
    char *name;
    int kind;
    int32_t reg;       /* SYM_REG: first register; SYM_GLOBAL: global index */
    uint32_t count;    /* SYM_REG range %r<N>: N; else 0 */
    uint32_t bits;     /* SYM_REG: declared width */
    uint64_t off;      /* PARAM/SHARED/LOCAL offset */
    uint32_t size;
    int scope;
    int klocal;        /* SHARED: declared in a kernel body (offset after the module's) */
};

/* A reference to a kernel's own shared variable, fixed once the module region is known. */
struct shfix {
    uint32_t func;
    uint32_t ins;   /* instruction whose aoff gets the module region size, or */
    int32_t reg;    /* register whose initial value does (when >= 0) */
};

struct label {
    char *name;
    uint32_t pc;
};

struct fixup {
    uint32_t ins;
    char *label;
};

struct parser {
    const char *text;
    size_t len;
    size_t pos;
    uint32_t line;
    struct tok t;          /* current token */
    struct ptx_program *p;
    char *err;
    size_t errlen;
    int failed;
    /* symbols: module-level and function-level, with scopes */
    struct sym *syms;
    size_t nsyms, capsyms;
    int scope;
    size_t scope_start[MAX_SCOPES];
    /* current function being built */
    struct pfunc *fn;
    int fn_index;
    size_t capcode, capregs, capparams, caprets, cappatch, capcalls, capmmas;
    struct label *labels;
    size_t nlabels, caplabels;
    struct fixup *fixups;
    size_t nfixups, capfixups;
    uint32_t shared_off;   /* module-wide region: module and .func shared variables */
    uint32_t kshared_off;  /* the current kernel's own shared variables */
    struct shfix *shfixes;
    size_t nshfixes, capshfixes;
    uint32_t addr_size;
};

static int fail(struct parser *ps, uint32_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct parser *ps, uint32_t line, const char *fmt, ...)
{
    if (!ps->failed) {
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (ps->err && ps->errlen)
            snprintf(ps->err, ps->errlen, "PTX line %u: %s", line, msg);
        ps->failed = 1;
    }
    return -EINVAL;
}

static int is_word_char(int c)
{
    return isalnum(c) || c == '_' || c == '.' || c == '$' || c == '%';
}

static void next(struct parser *ps)
{
    const char *s = ps->text;
    for (;;) {
        while (ps->pos < ps->len && isspace((unsigned char)s[ps->pos])) {
            if (s[ps->pos] == '\n')
                ps->line++;
            ps->pos++;
        }
        if (ps->pos + 1 < ps->len && s[ps->pos] == '/' && s[ps->pos + 1] == '/') {
            while (ps->pos < ps->len && s[ps->pos] != '\n')
                ps->pos++;
            continue;
        }
        if (ps->pos + 1 < ps->len && s[ps->pos] == '/' && s[ps->pos + 1] == '*') {
            ps->pos += 2;
            while (ps->pos + 1 < ps->len && !(s[ps->pos] == '*' && s[ps->pos + 1] == '/')) {
                if (s[ps->pos] == '\n')
                    ps->line++;
                ps->pos++;
            }
            ps->pos = ps->pos + 2 <= ps->len ? ps->pos + 2 : ps->len;
            continue;
        }
        break;
    }
    ps->t.line = ps->line;
    ps->t.s = s + ps->pos;
    if (ps->pos >= ps->len || s[ps->pos] == '\0') {
        ps->t.kind = TK_EOF;
        ps->t.len = 0;
        return;
    }
    int c = (unsigned char)s[ps->pos];
    size_t start = ps->pos;
    if (is_word_char(c)) {
        for (;;) {
            while (ps->pos < ps->len && is_word_char((unsigned char)s[ps->pos]))
                ps->pos++;
            /* qualifiers such as .L2::cache_hint stay in the word */
            if (ps->pos + 2 < ps->len && s[ps->pos] == ':' && s[ps->pos + 1] == ':' &&
                is_word_char((unsigned char)s[ps->pos + 2]))
                ps->pos += 2;
            else
                break;
        }
        ps->t.kind = TK_WORD;
    } else if (c == '"') {
        ps->pos++;
        while (ps->pos < ps->len && s[ps->pos] != '"' && s[ps->pos] != '\n')
            ps->pos++;
        if (ps->pos < ps->len && s[ps->pos] == '"')
            ps->pos++;
        ps->t.kind = TK_STR;
    } else {
        ps->pos++;
        ps->t.kind = TK_PUNCT;
    }
    ps->t.len = (uint32_t)(ps->pos - start);
}

static int tok_is(const struct parser *ps, const char *w)
{
    size_t n = strlen(w);
    return ps->t.kind != TK_EOF && ps->t.len == n && memcmp(ps->t.s, w, n) == 0;
}

static int punct(const struct parser *ps, char c)
{
    return ps->t.kind == TK_PUNCT && ps->t.s[0] == c;
}

static int expect(struct parser *ps, char c)
{
    if (!punct(ps, c))
        return fail(ps, ps->t.line, "expected '%c' near '%.*s'", c,
                    (int)(ps->t.len > 40 ? 40 : ps->t.len), ps->t.s);
    next(ps);
    return 0;
}

static char *tok_dup(const struct parser *ps)
{
    return strndup(ps->t.s, ps->t.len);
}

/* Skips to the end of the current statement (past ';'), or to a closing brace. */
static void skip_statement(struct parser *ps)
{
    while (ps->t.kind != TK_EOF && !punct(ps, ';') && !punct(ps, '}'))
        next(ps);
    if (punct(ps, ';'))
        next(ps);
}

/* Skips the rest of the current line (for .version/.target/.address_size/.file/.loc). */
static void skip_line(struct parser *ps)
{
    uint32_t l = ps->t.line;
    while (ps->t.kind != TK_EOF && ps->t.line == l && !punct(ps, ';'))
        next(ps);
    if (punct(ps, ';'))
        next(ps);
}

/* ---- numbers -------------------------------------------------------------------------- */

/* Parses an integer or float literal token (0fXXXXXXXX, 0dXXXXXXXXXXXXXXXX, decimal, hex,
 * octal, binary, optional U suffix, decimal floats). *is_float: 0 int, 1 f32 bits, 2 f64 bits. */
static int parse_number(const char *s, size_t n, uint64_t *out, int *is_float)
{
    char buf[80];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    *is_float = 0;
    if (n == 10 && (buf[1] == 'f' || buf[1] == 'F') && buf[0] == '0') {
        char *end;
        *out = strtoull(buf + 2, &end, 16);
        if (*end)
            return -1;
        *is_float = 1;
        return 0;
    }
    if (n == 18 && (buf[1] == 'd' || buf[1] == 'D') && buf[0] == '0') {
        char *end;
        *out = strtoull(buf + 2, &end, 16);
        if (*end)
            return -1;
        *is_float = 2;
        return 0;
    }
    if (!isdigit((unsigned char)buf[0]))
        return -1;
    if (buf[n - 1] == 'U' || buf[n - 1] == 'u')
        buf[--n] = 0;
    char *end;
    errno = 0;
    if (buf[0] == '0' && (buf[1] == 'b' || buf[1] == 'B'))
        *out = strtoull(buf + 2, &end, 2);
    else if (buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X'))
        *out = strtoull(buf + 2, &end, 16);
    else if (buf[0] == '0' && n > 1 && isdigit((unsigned char)buf[1]))
        *out = strtoull(buf + 1, &end, 8);
    else
        *out = strtoull(buf, &end, 10);
    if (*end == '.' || *end == 'e' || *end == 'E') {
        double d = strtod(buf, &end);
        if (*end)
            return -1;
        memcpy(out, &d, 8);
        *is_float = 2;
        return 0;
    }
    if (*end || errno)
        return -1;
    return 0;
}

/* ---- growable arrays ------------------------------------------------------------------ */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need)
        nc *= 2;
    void *n = realloc(*arr, nc * elem);
    if (!n)
        return -ENOMEM;
    memset((char *)n + *cap * elem, 0, (nc - *cap) * elem);
    *arr = n;
    *cap = nc;
    return 0;
}

static int oom(struct parser *ps)
{
    return fail(ps, ps->t.line, "out of memory");
}

/* ---- symbols -------------------------------------------------------------------------- */

static struct sym *sym_find(struct parser *ps, const char *s, size_t n)
{
    for (size_t i = ps->nsyms; i-- > 0;) {
        struct sym *y = &ps->syms[i];
        if (y->kind == SYM_REG && y->count) {
            size_t ln = strlen(y->name);
            if (n > ln && memcmp(y->name, s, ln) == 0) {
                /* %r<N>: name followed by a decimal index below N */
                uint32_t idx = 0;
                size_t k = ln;
                if (s[k] == '0' && n > ln + 1)
                    continue;
                for (; k < n; k++) {
                    if (!isdigit((unsigned char)s[k]) || idx > 100000000)
                        break;
                    idx = idx * 10 + (uint32_t)(s[k] - '0');
                }
                if (k == n && idx < y->count)
                    return y;
            }
            continue;
        }
        if (strlen(y->name) == n && memcmp(y->name, s, n) == 0)
            return y;
    }
    return NULL;
}

static struct sym *sym_add(struct parser *ps, const char *name, size_t n, int kind)
{
    if (grow((void **)&ps->syms, &ps->capsyms, ps->nsyms + 1, sizeof(*ps->syms))) {
        oom(ps);
        return NULL;
    }
    struct sym *y = &ps->syms[ps->nsyms];
    memset(y, 0, sizeof(*y));
    y->name = strndup(name, n);
    if (!y->name) {
        oom(ps);
        return NULL;
    }
    y->kind = kind;
    y->scope = ps->scope;
    ps->nsyms++;
    return y;
}

static void scope_push(struct parser *ps)
{
    if (ps->scope + 1 >= MAX_SCOPES) {
        fail(ps, ps->t.line, "scopes nested too deeply");
        return;
    }
    ps->scope++;
    ps->scope_start[ps->scope] = ps->nsyms;
}

static void scope_pop(struct parser *ps)
{
    if (ps->scope <= 0)
        return;
    size_t start = ps->scope_start[ps->scope];
    for (size_t i = start; i < ps->nsyms; i++)
        free(ps->syms[i].name);
    ps->nsyms = start;
    ps->scope--;
}

/* ---- types and modifiers -------------------------------------------------------------- */

static int type_of(const char *m, size_t n)
{
    static const struct { const char *s; int t; } types[] = {
        {"b8", PT_B8}, {"b16", PT_B16}, {"b32", PT_B32}, {"b64", PT_B64},
        {"u8", PT_U8}, {"u16", PT_U16}, {"u32", PT_U32}, {"u64", PT_U64},
        {"s8", PT_S8}, {"s16", PT_S16}, {"s32", PT_S32}, {"s64", PT_S64},
        {"f16", PT_F16}, {"f16x2", PT_F16X2}, {"bf16", PT_BF16}, {"bf16x2", PT_BF16X2},
        {"f32", PT_F32},
        {"f64", PT_F64}, {"pred", PT_PRED},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strlen(types[i].s) == n && memcmp(types[i].s, m, n) == 0)
            return types[i].t;
    return PT_NONE;
}

/* ---- register file -------------------------------------------------------------------- */

static int32_t reg_alloc(struct parser *ps, uint32_t count, uint32_t bits, uint64_t init)
{
    struct pfunc *f = ps->fn;
    if (f->nregs + (uint64_t)count > (1u << 20)) {
        fail(ps, ps->t.line, "too many registers");
        return -1;
    }
    size_t cap = ps->capregs;
    if (grow((void **)&f->reg_init, &cap, f->nregs + count, sizeof(uint64_t))) {
        oom(ps);
        return -1;
    }
    cap = ps->capregs;
    if (grow((void **)&f->reg_bits, &cap, f->nregs + count, 1)) {
        oom(ps);
        return -1;
    }
    ps->capregs = cap;
    int32_t r = (int32_t)f->nregs;
    for (uint32_t i = 0; i < count; i++) {
        f->reg_init[r + i] = init;
        f->reg_bits[r + i] = (uint8_t)bits;
    }
    f->nregs += count;
    return r;
}

static int32_t const_reg(struct parser *ps, uint64_t v)
{
    return reg_alloc(ps, 1, 64, v);
}

static int add_patch(struct parser *ps, int32_t reg, int32_t global)
{
    size_t cap = ps->cappatch;
    if (grow((void **)&ps->fn->patches, &cap, ps->fn->npatches + 1, sizeof(struct ppatch)))
        return oom(ps);
    ps->cappatch = cap;
    ps->fn->patches[ps->fn->npatches].reg = reg;
    ps->fn->patches[ps->fn->npatches].global = global;
    ps->fn->npatches++;
    return 0;
}

/* ---- special registers ---------------------------------------------------------------- */

static int sreg_of(const char *s, size_t n)
{
    static const struct { const char *s; int r; } srs[] = {
        {"%tid.x", SR_TID_X}, {"%tid.y", SR_TID_Y}, {"%tid.z", SR_TID_Z},
        {"%ntid.x", SR_NTID_X}, {"%ntid.y", SR_NTID_Y}, {"%ntid.z", SR_NTID_Z},
        {"%ctaid.x", SR_CTAID_X}, {"%ctaid.y", SR_CTAID_Y}, {"%ctaid.z", SR_CTAID_Z},
        {"%nctaid.x", SR_NCTAID_X}, {"%nctaid.y", SR_NCTAID_Y}, {"%nctaid.z", SR_NCTAID_Z},
        {"%laneid", SR_LANEID}, {"%warpid", SR_WARPID}, {"%nwarpid", SR_NWARPID},
        {"%smid", SR_SMID}, {"%nsmid", SR_NSMID}, {"%gridid", SR_GRIDID},
        {"%lanemask_eq", SR_LANEMASK_EQ}, {"%lanemask_lt", SR_LANEMASK_LT},
        {"%lanemask_le", SR_LANEMASK_LE}, {"%lanemask_gt", SR_LANEMASK_GT},
        {"%lanemask_ge", SR_LANEMASK_GE}, {"%dynamic_smem_size", SR_DYNSMEM},
        {"%total_smem_size", SR_TOTALSMEM}, {"%clock", SR_CLOCK}, {"%clock64", SR_CLOCK64},
        {"%globaltimer", SR_GLOBALTIMER}, {"%envreg1", SR_ENVREG1}, {"%envreg2", SR_ENVREG2},
    };
    for (size_t i = 0; i < sizeof(srs) / sizeof(srs[0]); i++)
        if (strlen(srs[i].s) == n && memcmp(srs[i].s, s, n) == 0)
            return srs[i].r;
    return -1;
}

/* ---- declarations --------------------------------------------------------------------- */

struct decl {
    int space;
    uint32_t align;
    uint32_t vec;
    int type;
    char *name;
    uint32_t namelen;
    uint64_t count;   /* array elements (1 for scalars); 0 for "[]" */
    int is_array;
    int unsized;
    uint32_t line;
    uint32_t range;   /* .reg %r<N> */
};

static void decl_free(struct decl *d)
{
    free(d->name);
    d->name = NULL;
}

/* A ".ptr" kernel parameter attribute also comes without spaces (".ptr.global.align 16"),
 * lexed as one word: checks its parts and leaves ".align" for the caller to read with its
 * value (after a .ptr, the pointee's alignment). */
static int parse_ptr_attr(struct parser *ps)
{
    static const char *const parts[] = {"global", "shared", "local", "const"};
    const char *s = ps->t.s + 4, *end = ps->t.s + ps->t.len;
    while (s < end) {
        const char *dot = memchr(s + 1, '.', (size_t)(end - s - 1));
        size_t n = (size_t)((dot ? dot : end) - s) - 1;
        if (*s != '.' || n == 0)
            break;
        if (n == 5 && memcmp(s + 1, "align", 5) == 0 && !dot) {
            ps->t.s = s;   /* the rest of the word is ".align": the loop reads it next */
            ps->t.len = 6;
            return 0;
        }
        size_t i = 0;
        while (i < sizeof(parts) / sizeof(parts[0]) &&
               !(strlen(parts[i]) == n && memcmp(parts[i], s + 1, n) == 0))
            i++;
        if (i == sizeof(parts) / sizeof(parts[0]))
            break;
        s += n + 1;
    }
    if (s != end)
        return fail(ps, ps->t.line, "bad .ptr attribute '%.*s'", (int)ps->t.len, ps->t.s);
    next(ps);
    return 0;
}

/* Parses "[.align N] [.vN] .type name[<N>][[N]]..." after the space directive. A kernel
 * parameter's ".ptr [.space] [.align N]" (PTX ISA, "Kernel Parameter Attribute: .ptr") says
 * where the pointer points and how the memory it points to is aligned: that .align is the
 * pointee's, so it is read and dropped, and the parameter keeps its type's alignment. */
static int parse_decl_body(struct parser *ps, struct decl *d)
{
    int after_ptr = 0;
    d->align = 0;
    d->vec = 1;
    d->type = PT_NONE;
    d->count = 1;
    d->line = ps->t.line;
    for (;;) {
        if (tok_is(ps, ".align")) {
            next(ps);
            uint64_t v;
            int isf;
            if (ps->t.kind != TK_WORD || parse_number(ps->t.s, ps->t.len, &v, &isf) || isf ||
                v == 0 || v > 4096 || (v & (v - 1)))
                return fail(ps, ps->t.line, "bad .align value");
            if (!after_ptr)
                d->align = (uint32_t)v;
            next(ps);
            continue;
        }
        if (tok_is(ps, ".v2") || tok_is(ps, ".v4") || tok_is(ps, ".v8")) {
            d->vec = (uint32_t)(ps->t.s[2] - '0');
            next(ps);
            continue;
        }
        if (ps->t.kind == TK_WORD && ps->t.len >= 4 && memcmp(ps->t.s, ".ptr", 4) == 0) {
            if (parse_ptr_attr(ps))
                return -EINVAL;
            after_ptr = 1;
            continue;
        }
        if (tok_is(ps, ".global") || tok_is(ps, ".shared") || tok_is(ps, ".local") ||
            tok_is(ps, ".const") || tok_is(ps, ".volatile")) {
            /* the state space of a ".ptr .space" attribute written with spaces */
            next(ps);
            continue;
        }
        if (ps->t.kind == TK_WORD && ps->t.s[0] == '.' && ps->t.len > 1) {
            int ty = type_of(ps->t.s + 1, ps->t.len - 1);
            if (ty == PT_NONE)
                return fail(ps, ps->t.line, "unknown type '%.*s'", (int)ps->t.len, ps->t.s);
            d->type = ty;
            next(ps);
            continue;
        }
        break;
    }
    if (d->type == PT_NONE)
        return fail(ps, ps->t.line, "declaration without a type");
    if (ps->t.kind != TK_WORD)
        return fail(ps, ps->t.line, "expected a name in declaration");
    d->name = tok_dup(ps);
    d->namelen = ps->t.len;
    if (!d->name)
        return oom(ps);
    next(ps);
    d->range = 0;
    if (punct(ps, '<')) {
        next(ps);
        uint64_t v;
        int isf;
        if (ps->t.kind != TK_WORD || parse_number(ps->t.s, ps->t.len, &v, &isf) || isf ||
            v > (1u << 20))
            return fail(ps, ps->t.line, "bad register range");
        d->range = (uint32_t)v;
        next(ps);
        if (expect(ps, '>'))
            return -EINVAL;
    }
    while (punct(ps, '[')) {
        next(ps);
        d->is_array = 1;
        if (punct(ps, ']')) {
            d->unsized = 1;
            d->count = 0;
            next(ps);
            continue;
        }
        uint64_t v;
        int isf;
        if (ps->t.kind != TK_WORD || parse_number(ps->t.s, ps->t.len, &v, &isf) || isf ||
            v > (1ull << 32))
            return fail(ps, ps->t.line, "bad array size");
        d->count *= v;
        if (d->count > (1ull << 34))
            return fail(ps, ps->t.line, "array too large");
        next(ps);
        if (expect(ps, ']'))
            return -EINVAL;
    }
    return 0;
}

static uint64_t decl_elem_size(const struct decl *d)
{
    unsigned b = pt_bits((unsigned)d->type);
    if (b < 8)
        b = 8;
    return (uint64_t)(b / 8) * d->vec;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return a ? (v + a - 1) / a * a : v;
}

/* Parses "= value" or "= {v, v, ...}" for a module variable, writing element bytes. */
static int parse_init(struct parser *ps, const struct decl *d, struct pglobal *g)
{
    uint64_t esz = pt_bits((unsigned)d->type) / 8;
    if (esz == 0)
        esz = 1;
    uint64_t cap = g->size;
    if (cap > (64u << 20))
        return fail(ps, ps->t.line, "initialiser too large");
    g->init = calloc(1, cap ? cap : 1);
    if (!g->init)
        return oom(ps);
    uint64_t n = 0;
    int depth = 0;
    for (;;) {
        if (punct(ps, '{')) {
            depth++;
            next(ps);
            continue;
        }
        if (punct(ps, '}')) {
            if (depth == 0)
                return fail(ps, ps->t.line, "unbalanced '}' in initialiser");
            depth--;
            next(ps);
            if (depth == 0)
                break;
            continue;
        }
        if (punct(ps, ',')) {
            next(ps);
            continue;
        }
        if (punct(ps, ';') && depth == 0)
            break;
        int neg = 0;
        if (punct(ps, '-')) {
            neg = 1;
            next(ps);
        }
        uint64_t v;
        int isf;
        if (ps->t.kind == TK_WORD && !neg && !isdigit((unsigned char)ps->t.s[0])) {
            /* generic(sym)+off or sym+off: another variable's address */
            int generic = tok_is(ps, "generic");
            if (generic) {
                next(ps);
                if (expect(ps, '('))
                    return -EINVAL;
            }
            if (ps->t.kind != TK_WORD)
                return fail(ps, ps->t.line, "bad address initialiser for %s", d->name);
            struct sym *y = sym_find(ps, ps->t.s, ps->t.len);
            if (!y || (y->kind != SYM_GLOBAL && y->kind != SYM_FUNC))
                return fail(ps, ps->t.line, "unknown symbol '%.*s' in initialiser of %s",
                            (int)ps->t.len, ps->t.s, d->name);
            next(ps);
            if (generic && expect(ps, ')'))
                return -EINVAL;
            int64_t addend = 0;
            if (punct(ps, '+') || punct(ps, '-')) {
                int minus = punct(ps, '-');
                next(ps);
                if (ps->t.kind != TK_WORD || parse_number(ps->t.s, ps->t.len, &v, &isf) || isf)
                    return fail(ps, ps->t.line, "bad offset in initialiser of %s", d->name);
                addend = minus ? -(int64_t)(v & 0x7fffffffffffffffull)
                               : (int64_t)(v & 0x7fffffffffffffffull);
                next(ps);
            }
            if (esz != 8 || (n + 1) * esz > cap)
                return fail(ps, ps->t.line, "bad address initialiser for %s", d->name);
            if (y->kind == SYM_FUNC) {
                g->bad_init = 1; /* function pointers: no device addresses for functions */
            } else {
                struct preloc *nr = realloc(g->relocs, (g->nrelocs + 1) * sizeof(*nr));
                if (!nr)
                    return oom(ps);
                g->relocs = nr;
                nr[g->nrelocs].offset = n * esz;
                nr[g->nrelocs].target = (uint32_t)y->reg;
                nr[g->nrelocs].addend = addend;
                g->nrelocs++;
                ps->p->has_relocs = 1;
            }
            n++;
            if (depth == 0)
                break;
            continue;
        }
        if (ps->t.kind != TK_WORD || parse_number(ps->t.s, ps->t.len, &v, &isf))
            return fail(ps, ps->t.line, "unsupported initialiser '%.*s' for %s",
                        (int)(ps->t.len > 40 ? 40 : ps->t.len), ps->t.s, d->name);
        next(ps);
        if (d->type == PT_F32) {
            float f;
            if (isf == 1) {
                uint32_t b = (uint32_t)v;
                memcpy(&f, &b, 4);
            } else if (isf == 2) {
                double dd;
                memcpy(&dd, &v, 8);
                f = (float)dd;
            } else {
                f = (float)v;
            }
            if (neg)
                f = -f;
            uint32_t b;
            memcpy(&b, &f, 4);
            v = b;
        } else if (d->type == PT_F64) {
            double dd;
            if (isf == 1) {
                uint32_t b = (uint32_t)v;
                float f;
                memcpy(&f, &b, 4);
                dd = f;
            } else if (isf == 2) {
                memcpy(&dd, &v, 8);
            } else {
                dd = (double)v;
            }
            if (neg)
                dd = -dd;
            memcpy(&v, &dd, 8);
        } else if (neg) {
            v = 0 - v;
        }
        if ((n + 1) * esz > cap)
            return fail(ps, ps->t.line, "too many initialiser values for %s", d->name);
        memcpy(g->init + n * esz, &v, esz); /* little-endian host */
        n++;
        if (depth == 0)
            break;
    }
    g->init_size = n * esz;
    return 0;
}

static int add_global(struct parser *ps, struct decl *d, int space)
{
    struct ptx_program *p = ps->p;
    struct pglobal *ng = realloc(p->globals, (p->nglobals + 1) * sizeof(*ng));
    if (!ng)
        return oom(ps);
    p->globals = ng;
    struct pglobal *g = &p->globals[p->nglobals];
    memset(g, 0, sizeof(*g));
    g->name = strdup(d->name);
    if (!g->name)
        return oom(ps);
    g->space = space == SP_CONST ? PTX_SPACE_CONST : PTX_SPACE_GLOBAL;
    g->size = decl_elem_size(d) * (d->count ? d->count : 1);
    g->align = d->align ? d->align : (uint32_t)decl_elem_size(d) / d->vec;
    if (g->align == 0)
        g->align = 1;
    p->nglobals++;
    struct sym *y = sym_add(ps, d->name, d->namelen, SYM_GLOBAL);
    if (!y)
        return -ENOMEM;
    y->reg = (int32_t)(p->nglobals - 1);
    if (punct(ps, '=')) {
        next(ps);
        return parse_init(ps, d, g);
    }
    return 0;
}

static int add_shared(struct parser *ps, struct decl *d)
{
    if (d->unsized || d->count == 0) {
        struct sym *y = sym_add(ps, d->name, d->namelen, SYM_DYNSHARED);
        return y ? 0 : -ENOMEM;
    }
    uint64_t a = d->align ? d->align : decl_elem_size(d) / d->vec;
    int klocal = ps->fn && ps->fn->is_entry;
    uint64_t off = align_up(klocal ? ps->kshared_off : ps->shared_off, a ? a : 1);
    uint64_t size = decl_elem_size(d) * d->count;
    if (off + size > (1u << 30))
        return fail(ps, d->line, "shared memory too large");
    struct sym *y = sym_add(ps, d->name, d->namelen, SYM_SHARED);
    if (!y)
        return -ENOMEM;
    y->off = off;
    y->klocal = klocal;
    if (klocal)
        ps->kshared_off = (uint32_t)(off + size);
    else
        ps->shared_off = (uint32_t)(off + size);
    return 0;
}

/* ---- functions ------------------------------------------------------------------------ */

static int add_param(struct parser *ps, struct pparam **arr, uint32_t *n, size_t *cap,
                     const struct decl *d, int kind)
{
    struct pfunc *f = ps->fn;
    uint64_t a = d->align ? d->align : decl_elem_size(d) / d->vec;
    if (a == 0)
        a = 1;
    uint64_t size = decl_elem_size(d) * (d->count ? d->count : 1);
    uint64_t off = align_up(f->frame_param, a);
    if (off + size > (1u << 20))
        return fail(ps, d->line, "parameter area too large");
    if (arr) {
        if (grow((void **)arr, cap, *n + 1, sizeof(struct pparam)))
            return oom(ps);
        (*arr)[*n].offset = (uint32_t)off;
        (*arr)[*n].size = (uint32_t)size;
        (*arr)[*n].align = (uint32_t)a;
        (*n)++;
    }
    f->frame_param = (uint32_t)(off + size);
    struct sym *y = sym_add(ps, d->name, d->namelen, kind);
    if (!y)
        return -ENOMEM;
    y->off = off;
    y->size = (uint32_t)size;
    return 0;
}

/* "( .param ... , .param ... )" */
static int parse_param_list(struct parser *ps, int rets)
{
    if (expect(ps, '('))
        return -EINVAL;
    while (!punct(ps, ')')) {
        if (ps->t.kind == TK_EOF)
            return fail(ps, ps->t.line, "unterminated parameter list");
        if (!tok_is(ps, ".param") && !tok_is(ps, ".reg"))
            return fail(ps, ps->t.line, "expected .param in parameter list");
        if (tok_is(ps, ".reg"))
            return fail(ps, ps->t.line, ".reg parameters are not supported");
        next(ps);
        struct decl d = {0};
        int rc = parse_decl_body(ps, &d);
        if (!rc) {
            if (rets)
                rc = add_param(ps, &ps->fn->rets, &ps->fn->nrets, &ps->caprets, &d, SYM_PARAM);
            else
                rc = add_param(ps, &ps->fn->params, &ps->fn->nparams, &ps->capparams, &d,
                               SYM_PARAM);
        }
        decl_free(&d);
        if (rc)
            return rc;
        if (punct(ps, ','))
            next(ps);
    }
    next(ps);
    return 0;
}

static struct pfunc *func_find(struct ptx_program *p, const char *name, size_t n, int *idx)
{
    for (uint32_t i = 0; i < p->nfuncs; i++)
        if (strlen(p->funcs[i].name) == n && memcmp(p->funcs[i].name, name, n) == 0) {
            *idx = (int)i;
            return &p->funcs[i];
        }
    return NULL;
}

/* ---- instructions --------------------------------------------------------------------- */

static struct pins *emit(struct parser *ps, uint32_t line)
{
    struct pfunc *f = ps->fn;
    if (f->ncode >= (1u << 24)) {
        fail(ps, line, "function too long");
        return NULL;
    }
    if (grow((void **)&f->code, &ps->capcode, f->ncode + 1, sizeof(struct pins))) {
        oom(ps);
        return NULL;
    }
    struct pins *in = &f->code[f->ncode++];
    memset(in, 0, sizeof(*in));
    in->guard = -1;
    in->areg = -1;
    in->vec = 1;
    in->line = line;
    for (int i = 0; i < 4; i++)
        in->d[i] = -1;
    for (int i = 0; i < 5; i++)
        in->s[i] = -1;
    return in;
}

static const char *pool_str(struct parser *ps, const char *s, size_t n)
{
    struct ptx_program *p = ps->p;
    char **np = realloc(p->strings, (p->nstrings + 1) * sizeof(char *));
    if (!np)
        return NULL;
    p->strings = np;
    char *c = strndup(s, n);
    if (!c)
        return NULL;
    p->strings[p->nstrings++] = c;
    return c;
}

static int add_shfix(struct parser *ps, uint32_t ins, int32_t reg)
{
    if (grow((void **)&ps->shfixes, &ps->capshfixes, ps->nshfixes + 1, sizeof(*ps->shfixes)))
        return oom(ps);
    ps->shfixes[ps->nshfixes].func = (uint32_t)ps->fn_index;
    ps->shfixes[ps->nshfixes].ins = ins;
    ps->shfixes[ps->nshfixes].reg = reg;
    ps->nshfixes++;
    return 0;
}

/* The register holding the dynamic shared memory base (filled when a frame starts). */
static int32_t dynshared_reg(struct parser *ps)
{
    struct pfunc *f = ps->fn;
    if (f->sreg[SR_DYNBASE] < 0) {
        int32_t r = reg_alloc(ps, 1, 32, 0);
        if (r < 0)
            return -1;
        f->sreg[SR_DYNBASE] = r;
    }
    return f->sreg[SR_DYNBASE];
}

/* Operand kinds produced by parse_operand. */
enum { OPD_REG = 1, OPD_IMM, OPD_ADDR, OPD_VEC, OPD_SYM, OPD_SINK, OPD_LABEL };

struct operand {
    int kind;
    int32_t reg;        /* OPD_REG */
    int neg;            /* !%p */
    uint64_t imm;       /* OPD_IMM */
    int immf;           /* 0 int, 1 f32 bits, 2 f64 bits */
    int32_t vregs[8];   /* OPD_VEC */
    int nv;
    int32_t areg;       /* OPD_ADDR */
    int64_t aoff;
    int asym;           /* symbol kind for address / symbol operand */
    int aklocal;        /* address names a kernel's own shared variable */
    int32_t abits;
    struct sym *sym;    /* OPD_SYM */
    const char *name;   /* OPD_LABEL / unresolved identifier */
    uint32_t namelen;
    int32_t reg2;       /* "a|b" second destination */
};

/* "%envreg0" .. "%envreg31" */
static int is_envreg(const char *s, size_t n)
{
    if (n < 8 || n > 9 || memcmp(s, "%envreg", 7))
        return 0;
    unsigned v = 0;
    for (size_t i = 7; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    return v < 32 && (n == 8 || s[7] != '0');
}

static int lookup_reg(struct parser *ps, const char *s, size_t n, int32_t *reg, uint32_t *bits)
{
    int sr = sreg_of(s, n);
    if (sr >= 0) {
        struct pfunc *f = ps->fn;
        if (f->sreg[sr] < 0) {
            int32_t r = reg_alloc(ps, 1, 32, 0);
            if (r < 0)
                return -ENOMEM;
            f->sreg[sr] = r;
        }
        *reg = f->sreg[sr];
        *bits = 32;
        return 0;
    }
    if (is_envreg(s, n)) {
        /* %envreg0..31 other than 1 and 2 (the cooperative launch's workspace, special
         * registers): the driver's environment registers, which no launch sets here */
        *reg = const_reg(ps, 0);
        *bits = 32;
        return *reg < 0 ? -ENOMEM : 0;
    }
    struct sym *y = sym_find(ps, s, n);
    if (!y || y->kind != SYM_REG)
        return fail(ps, ps->t.line, "unknown register '%.*s'", (int)n, s);
    uint32_t idx = 0;
    if (y->count) {
        for (size_t k = strlen(y->name); k < n; k++)
            idx = idx * 10 + (uint32_t)(s[k] - '0');
    }
    *reg = y->reg + (int32_t)idx;
    *bits = y->bits;
    return 0;
}

static int parse_operand(struct parser *ps, struct operand *o)
{
    memset(o, 0, sizeof(*o));
    o->reg2 = -1;
    o->areg = -1;
    if (punct(ps, '[')) {
        next(ps);
        o->kind = OPD_ADDR;
        int have_base = 0;
        for (;;) {
            int neg = 0;
            if (punct(ps, '+'))
                next(ps);
            if (punct(ps, '-')) {
                neg = 1;
                next(ps);
            }
            if (ps->t.kind != TK_WORD)
                return fail(ps, ps->t.line, "bad address operand");
            uint64_t v;
            int isf;
            if (isdigit((unsigned char)ps->t.s[0])) {
                if (parse_number(ps->t.s, ps->t.len, &v, &isf) || isf)
                    return fail(ps, ps->t.line, "bad address offset");
                o->aoff = (int64_t)((uint64_t)o->aoff + (neg ? 0 - v : v));
            } else if (ps->t.s[0] == '%') {
                if (have_base)
                    return fail(ps, ps->t.line, "two base registers in address");
                uint32_t bits;
                if (lookup_reg(ps, ps->t.s, ps->t.len, &o->areg, &bits))
                    return -EINVAL;
                o->abits = (int32_t)bits;
                have_base = 1;
            } else {
                if (have_base)
                    return fail(ps, ps->t.line, "two bases in address");
                struct sym *y = sym_find(ps, ps->t.s, ps->t.len);
                if (!y)
                    return fail(ps, ps->t.line, "unknown symbol '%.*s'", (int)ps->t.len,
                                ps->t.s);
                have_base = 1;
                o->asym = y->kind;
                if (y->kind == SYM_REG) {
                    uint32_t bits;
                    if (lookup_reg(ps, ps->t.s, ps->t.len, &o->areg, &bits))
                        return -EINVAL;
                    o->abits = (int32_t)bits;
                    o->asym = 0;
                } else if (y->kind == SYM_GLOBAL) {
                    int32_t r = const_reg(ps, 0);
                    if (r < 0 || add_patch(ps, r, y->reg))
                        return -ENOMEM;
                    o->areg = r;
                    o->abits = 64;
                } else if (y->kind == SYM_DYNSHARED) {
                    o->areg = dynshared_reg(ps);
                    if (o->areg < 0)
                        return -ENOMEM;
                    o->abits = 64;
                } else if (y->kind == SYM_FUNC) {
                    return fail(ps, ps->t.line, "function used as an address");
                } else {
                    o->aoff = (int64_t)((uint64_t)o->aoff + y->off);
                    o->aklocal = y->kind == SYM_SHARED && y->klocal;
                }
            }
            next(ps);
            if (punct(ps, ']'))
                break;
            if (!punct(ps, '+') && !punct(ps, '-'))
                return fail(ps, ps->t.line, "bad address expression");
        }
        next(ps);
        return 0;
    }
    if (punct(ps, '{')) {
        next(ps);
        o->kind = OPD_VEC;
        while (!punct(ps, '}')) {
            if (o->nv >= 8)
                return fail(ps, ps->t.line, "vector too long");
            if (ps->t.kind != TK_WORD)
                return fail(ps, ps->t.line, "bad vector operand");
            if (tok_is(ps, "_")) {
                o->vregs[o->nv++] = -1;
            } else {
                uint32_t bits;
                if (isdigit((unsigned char)ps->t.s[0])) {
                    uint64_t v;
                    int isf;
                    if (parse_number(ps->t.s, ps->t.len, &v, &isf))
                        return fail(ps, ps->t.line, "bad vector element");
                    int32_t r = const_reg(ps, v);
                    if (r < 0)
                        return -ENOMEM;
                    o->vregs[o->nv++] = r;
                } else {
                    if (lookup_reg(ps, ps->t.s, ps->t.len, &o->vregs[o->nv], &bits))
                        return -EINVAL;
                    o->nv++;
                }
            }
            next(ps);
            if (punct(ps, ','))
                next(ps);
            else if (!punct(ps, '}'))
                return fail(ps, ps->t.line, "bad vector operand");
        }
        next(ps);
        return 0;
    }
    int neg = 0;
    if (punct(ps, '!')) {
        neg = 1;
        next(ps);
    }
    int minus = 0;
    if (punct(ps, '-')) {
        minus = 1;
        next(ps);
    }
    if (ps->t.kind != TK_WORD)
        return fail(ps, ps->t.line, "bad operand '%.*s'", (int)ps->t.len, ps->t.s);
    if (isdigit((unsigned char)ps->t.s[0])) {
        if (parse_number(ps->t.s, ps->t.len, &o->imm, &o->immf))
            return fail(ps, ps->t.line, "bad number '%.*s'", (int)ps->t.len, ps->t.s);
        if (minus) {
            if (o->immf == 1)
                o->imm ^= 0x80000000u;
            else if (o->immf == 2)
                o->imm ^= 0x8000000000000000ull;
            else
                o->imm = 0 - o->imm;
        }
        o->kind = OPD_IMM;
        next(ps);
        return 0;
    }
    if (tok_is(ps, "WARP_SZ")) {
        /* the PTX ISA's predefined constant: the warp size, as an immediate */
        o->imm = minus ? 0 - (uint64_t)PTX_WARP_SIZE : PTX_WARP_SIZE;
        o->kind = OPD_IMM;
        next(ps);
        return 0;
    }
    if (minus)
        return fail(ps, ps->t.line, "unexpected '-'");
    if (tok_is(ps, "_")) {
        o->kind = OPD_SINK;
        next(ps);
        return 0;
    }
    if (ps->t.s[0] == '%' || (sym_find(ps, ps->t.s, ps->t.len) &&
                              sym_find(ps, ps->t.s, ps->t.len)->kind == SYM_REG)) {
        uint32_t bits;
        if (lookup_reg(ps, ps->t.s, ps->t.len, &o->reg, &bits))
            return -EINVAL;
        o->abits = (int32_t)bits;
        o->kind = OPD_REG;
        o->neg = neg;
        next(ps);
        if (punct(ps, '|')) {
            next(ps);
            if (tok_is(ps, "_")) {
                o->reg2 = -1;
            } else if (ps->t.kind != TK_WORD ||
                       lookup_reg(ps, ps->t.s, ps->t.len, &o->reg2, &bits)) {
                return fail(ps, ps->t.line, "bad second destination");
            }
            next(ps);
        }
        return 0;
    }
    struct sym *y = sym_find(ps, ps->t.s, ps->t.len);
    if (y) {
        o->kind = OPD_SYM;
        o->sym = y;
        o->asym = y->kind;
    } else {
        o->kind = OPD_LABEL;
    }
    o->name = ps->t.s;
    o->namelen = ps->t.len;
    next(ps);
    return 0;
}

/* Turns a value operand into a register index (constants become register-file slots). */
static int32_t opd_reg(struct parser *ps, const struct operand *o, int type)
{
    if (o->kind == OPD_REG)
        return o->reg;
    if (o->kind == OPD_IMM) {
        uint64_t v = o->imm;
        if (type == PT_F32) {
            if (o->immf == 2) {
                double d;
                memcpy(&d, &v, 8);
                float f = (float)d;
                uint32_t b;
                memcpy(&b, &f, 4);
                v = b;
            } else if (o->immf == 0) {
                float f = (float)(int64_t)v;
                uint32_t b;
                memcpy(&b, &f, 4);
                v = b;
            }
        } else if (type == PT_F64) {
            if (o->immf == 1) {
                uint32_t b = (uint32_t)v;
                float f;
                memcpy(&f, &b, 4);
                double d = f;
                memcpy(&v, &d, 8);
            } else if (o->immf == 0) {
                double d = (double)(int64_t)v;
                memcpy(&v, &d, 8);
            }
        }
        return const_reg(ps, v);
    }
    if (o->kind == OPD_SYM) {
        const struct sym *y = o->sym;
        if (y->kind == SYM_GLOBAL) {
            int32_t r = const_reg(ps, 0);
            if (r >= 0 && add_patch(ps, r, y->reg))
                return -1;
            return r;
        }
        if (y->kind == SYM_DYNSHARED)
            return dynshared_reg(ps);
        if (y->kind == SYM_SHARED) {
            int32_t r = const_reg(ps, y->off);
            if (r >= 0 && y->klocal && add_shfix(ps, 0, r))
                return -1;
            return r;
        }
        if (y->kind == SYM_PARAM)
            return const_reg(ps, y->off);
        fail(ps, ps->t.line, "symbol '%s' cannot be used as a value here", y->name);
        return -1;
    }
    fail(ps, ps->t.line, "expected a register or constant operand");
    return -1;
}

struct mods {
    int types[4];
    int ntypes;
    int space;
    int rnd;
    int cmp;
    int vec;
    uint32_t flags;
    char words[16][32];
    int nwords;
};

static int cmp_of(const char *m)
{
    static const char *const names[] = {
        NULL, "eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs",
        "equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan",
    };
    for (int i = 1; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (strcmp(names[i], m) == 0)
            return i;
    return 0;
}

static int has_word(const struct mods *m, const char *w)
{
    for (int i = 0; i < m->nwords; i++)
        if (strcmp(m->words[i], w) == 0)
            return 1;
    return 0;
}

static void parse_mods(const char *s, size_t n, char *base, size_t baselen, struct mods *m)
{
    memset(m, 0, sizeof(*m));
    size_t i = 0;
    size_t bl = 0;
    while (i < n && s[i] != '.') {
        if (bl + 1 < baselen)
            base[bl++] = s[i];
        i++;
    }
    base[bl] = 0;
    while (i < n) {
        i++; /* '.' */
        char w[32];
        size_t wl = 0;
        while (i < n && s[i] != '.') {
            if (wl + 1 < sizeof(w))
                w[wl++] = s[i];
            i++;
        }
        w[wl] = 0;
        /* L1::no_allocate and friends contain "::" but no dot: kept as words, ignored */
        int t = type_of(w, wl);
        if (t != PT_NONE && m->ntypes < 4) {
            m->types[m->ntypes++] = t;
            continue;
        }
        if (!strcmp(w, "global")) m->space = SP_GLOBAL;
        else if (!strcmp(w, "shared")) m->space = SP_SHARED;
        else if (!strcmp(w, "local")) m->space = SP_LOCAL;
        else if (!strcmp(w, "param")) m->space = SP_PARAM;
        else if (!strcmp(w, "const")) m->space = SP_CONST;
        else if (!strcmp(w, "rn")) m->rnd = RND_RN;
        else if (!strcmp(w, "rz")) m->rnd = RND_RZ;
        else if (!strcmp(w, "rm")) m->rnd = RND_RM;
        else if (!strcmp(w, "rp")) m->rnd = RND_RP;
        else if (!strcmp(w, "rni")) m->rnd = RND_RNI;
        else if (!strcmp(w, "rzi")) m->rnd = RND_RZI;
        else if (!strcmp(w, "rmi")) m->rnd = RND_RMI;
        else if (!strcmp(w, "rpi")) m->rnd = RND_RPI;
        else if (!strcmp(w, "ftz")) m->flags |= F_FTZ;
        else if (!strcmp(w, "sat")) m->flags |= F_SAT;
        else if (!strcmp(w, "approx")) m->flags |= F_APPROX;
        else if (!strcmp(w, "full")) m->flags |= F_FULL;
        else if (!strcmp(w, "wide")) m->flags |= F_WIDE;
        else if (!strcmp(w, "cc")) m->flags |= F_CC;
        else if (!strcmp(w, "v2")) m->vec = 2;
        else if (!strcmp(w, "v4")) m->vec = 4;
        else if (!strcmp(w, "v8")) m->vec = 8;
        else if (m->nwords < 16) {
            memcpy(m->words[m->nwords], w, wl + 1);
            m->nwords++;
        }
    }
}

/* Accepts, as no-ops, modifiers that do not change the result on this machine. */
static int benign(const char *w)
{
    static const char *const ok[] = {
        "nc", "volatile", "relaxed", "acquire", "release", "acq_rel", "weak", "mmio",
        "gpu", "cta", "sys", "cluster", "ca", "cg", "cs", "lu", "cv", "wb", "wt", "uni",
        "sync", "aligned", "sc", "gl", "L1::no_allocate", "L1::evict_last",
        "L1::evict_first", "L1::evict_normal", "L1::evict_unchanged", "L2::64B", "L2::128B",
        "L2::256B", "L2::cache_hint", "noftz", "to", "shiftamt", "async", "commit_group",
        "wait_group", "wait_all",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!strcmp(ok[i], w))
            return 1;
    return 0;
}

#define MAXOPS 12

/* Records an instruction the engine cannot execute (it fails the launch if reached). */
static int emit_unsupported(struct parser *ps, struct pins *in, const char *start, size_t n)
{
    in->op = OP_unsupported;
    in->text = pool_str(ps, start, n > 120 ? 120 : n);
    if (!in->text)
        return oom(ps);
    return 0;
}

static int label_ref(struct parser *ps, uint32_t ins, const struct operand *o)
{
    if (grow((void **)&ps->fixups, &ps->capfixups, ps->nfixups + 1, sizeof(*ps->fixups)))
        return oom(ps);
    ps->fixups[ps->nfixups].ins = ins;
    ps->fixups[ps->nfixups].label = strndup(o->name, o->namelen);
    if (!ps->fixups[ps->nfixups].label)
        return oom(ps);
    ps->nfixups++;
    return 0;
}

/* Fills the address fields of in from an address operand for the given state space. */
static int set_address(struct parser *ps, struct pins *in, const struct operand *o, int space)
{
    in->areg = o->areg;
    in->aoff = o->aoff;
    if (o->aklocal && add_shfix(ps, (uint32_t)(in - ps->fn->code), -1))
        return -ENOMEM;
    if (o->areg >= 0 && o->abits && o->abits <= 32)
        in->flags |= F_A32;
    if (o->asym == SYM_LOCAL) {
        in->flags |= F_ALOCAL;
        if (space != SP_LOCAL && space != SP_GENERIC)
            return fail(ps, in->line, "local variable used with another state space");
    } else if (o->asym == SYM_PARAM) {
        if (space != SP_PARAM)
            return fail(ps, in->line, "parameter used with another state space");
    } else if (o->asym == SYM_SHARED || o->asym == SYM_DYNSHARED) {
        if (space == SP_GENERIC)
            in->aoff += (int64_t)0xFE00000000000000ull; /* shared window, see ptx_exec.c */
        else if (space != SP_SHARED)
            return fail(ps, in->line, "shared variable used with another state space");
    }
    return 0;
}

/* Registers of a fragment operand ({r0, ..} or a single register); -1 for anything else. */
static int frag_regs(const struct operand *o, int32_t *regs, unsigned *n)
{
    if (o->kind == OPD_REG) {
        regs[0] = o->reg;
        *n = 1;
        return 0;
    }
    if (o->kind != OPD_VEC || o->nv < 1)
        return -1;
    for (int i = 0; i < o->nv; i++)
        if ((regs[i] = o->vregs[i]) < 0)
            return -1;
    *n = (unsigned)o->nv;
    return 0;
}

/* wmma.load/store/mma, mma.sync, ldmatrix and movmatrix: ptx_mma.c decodes the qualifiers;
 * the fragments' registers go into a pmma record of the function that the instruction's
 * target indexes. */
static int parse_mma(struct parser *ps, struct pins *in, const char *opstart, uint32_t oplen,
                     const struct operand *ops, int nops, int space)
{
    struct pmma mm;
    int32_t regs[8];
    unsigned n;
    if (ptx_mma_decode(opstart, oplen, &mm))
        return emit_unsupported(ps, in, opstart, oplen);
    if (mm.kind == MMA_MOVMATRIX) {
        if (nops != 2 || frag_regs(&ops[0], regs, &n) || ptx_mma_set_regs(&mm, FR_D, regs, n) ||
            frag_regs(&ops[1], regs, &n) || ptx_mma_set_regs(&mm, FR_A, regs, n))
            return fail(ps, in->line, "movmatrix takes two registers");
    } else if (mm.kind == MMA_LDMATRIX) {
        if (nops != 2 || ops[1].kind != OPD_ADDR || frag_regs(&ops[0], regs, &n) ||
            ptx_mma_set_regs(&mm, FR_D, regs, n))
            return fail(ps, in->line, "ldmatrix takes .x1/.x2/.x4 registers and an address");
        in->space = (uint8_t)(space == SP_SHARED ? SP_SHARED : SP_GENERIC);
        if (set_address(ps, in, &ops[1], in->space))
            return -EINVAL;
    } else if (mm.kind == MMA_MMA) {
        static const int order[4] = {FR_D, FR_A, FR_B, FR_C};
        if (nops != 4)
            return fail(ps, in->line, "mma takes 4 operands");
        for (int i = 0; i < 4; i++)
            if (frag_regs(&ops[i], regs, &n) || ptx_mma_set_regs(&mm, order[i], regs, n))
                return fail(ps, in->line, "mma operand %d does not fit the shape", i + 1);
    } else {
        int fi = mm.kind == MMA_LOAD ? 0 : 1, ai = 1 - fi;
        if (nops < 2 || nops > 3 || ops[ai].kind != OPD_ADDR)
            return fail(ps, in->line, "wmma.load/store takes a fragment, an address and a "
                        "stride");
        if (frag_regs(&ops[fi], regs, &n) || ptx_mma_set_regs(&mm, mm.frag, regs, n))
            return fail(ps, in->line, "wmma fragment does not fit the shape");
        if (space != SP_GLOBAL && space != SP_SHARED)
            space = SP_GENERIC;
        in->space = (uint8_t)space;
        if (set_address(ps, in, &ops[ai], space))
            return -EINVAL;
        in->s[0] = nops == 3 ? opd_reg(ps, &ops[2], PT_U32) : -1;
        if (nops == 3 && in->s[0] < 0)
            return -EINVAL;
        in->ns = nops == 3;
    }
    struct pfunc *f = ps->fn;
    size_t cap = ps->capmmas;
    if (grow((void **)&f->mmas, &cap, f->nmmas + 1, sizeof(struct pmma)))
        return oom(ps);
    ps->capmmas = cap;
    f->mmas[f->nmmas] = mm;
    in->op = OP_mma;
    in->target = (int32_t)f->nmmas++;
    return 0;
}

/* cvt.{rna,rn,rz}.tf32.f32 d, a (sm_80: rounds to 10 mantissa bits, low 13 bits zero). */
static int parse_cvt_tf32(struct parser *ps, struct pins *in, const struct mods *m,
                          const struct operand *ops, int nops)
{
    int mode = m->rnd == RND_RN ? TF32_RN : m->rnd == RND_RZ ? TF32_RZ : 0;
    if (m->rnd && !mode)
        return -1;
    for (int i = 0; i < m->nwords; i++) {
        if (!strcmp(m->words[i], "tf32"))
            continue;
        if (strcmp(m->words[i], "rna") || mode)
            return -1;
        mode = TF32_RNA;
    }
    if (!mode || m->flags || m->ntypes != 1 || m->types[0] != PT_F32 || nops != 2 ||
        ops[0].kind != OPD_REG)
        return -1;
    int32_t r = opd_reg(ps, &ops[1], PT_F32);
    if (r < 0)
        return -EINVAL;
    in->op = OP_cvttf32;
    in->mod = (uint8_t)mode;
    in->d[0] = ops[0].reg;
    in->nd = 1;
    in->s[0] = r;
    in->ns = 1;
    return 0;
}

/* ---- texture and surface instructions (executed by ptx_tex.c) ---- */

static int tex_geom_of(const char *w)
{
    static const char *const names[] = {NULL, "1d", "2d", "3d", "a1d", "a2d"};
    for (int i = 1; i < 6; i++)
        if (!strcmp(names[i], w))
            return i;
    return 0;
}

static int tex_query_of(const char *w)
{
    static const char *const names[] = {
        NULL, "width", "height", "depth", "array_size", "normalized_coords", "filter_mode",
        "addr_mode_0", "addr_mode_1", "addr_mode_2", "num_mipmap_levels", "num_samples",
    };
    for (int i = 1; i < (int)(sizeof(names) / sizeof(names[0])); i++)
        if (!strcmp(names[i], w))
            return i;
    return 0;
}

/* Reads the modifiers of a texture or surface instruction into in; -1 for a form the engine
 * does not execute (tex.level/grad, sust.p, cube maps, multisampling, unknown words). */
static int tex_mods(struct pins *in, int op, const struct mods *m)
{
    for (int i = 0; i < m->nwords; i++) {
        const char *w = m->words[i];
        int g = tex_geom_of(w), q = tex_query_of(w);
        if (g && !in->mod)
            in->mod = (uint8_t)g;
        else if (q && (op == OP_txq || op == OP_suq) && !in->mod2)
            in->mod2 = (uint8_t)q;
        else if (op == OP_tld4 && strlen(w) == 1 && strchr("rgba", w[0]))
            in->mod2 = (uint8_t)(strchr("rgba", w[0]) - "rgba");
        else if ((op == OP_suld || op == OP_sust) && !strcmp(w, "b"))
            continue;
        else if ((op == OP_suld || op == OP_sust) && !strcmp(w, "clamp"))
            in->mod2 = SU_CLAMP;
        else if ((op == OP_suld || op == OP_sust) && !strcmp(w, "zero"))
            in->mod2 = SU_ZERO;
        else if (!((op == OP_suld || op == OP_sust) && !strcmp(w, "trap")) && !benign(w))
            return -1;
    }
    in->vec = (uint8_t)(m->vec ? m->vec : 1);
    in->type = (uint8_t)(m->ntypes > 0 ? m->types[0] : PT_NONE);
    in->type2 = (uint8_t)(m->ntypes > 1 ? m->types[1] : PT_NONE);
    if (op == OP_txq || op == OP_suq)
        return in->mod2 && in->type == PT_B32 ? 0 : -1;
    if (!in->mod || (op == OP_tld4 && in->mod != TG_2D) || in->vec > 4 || in->vec == 3)
        return -1;
    if (op == OP_tex || op == OP_tld4)
        return in->vec == 4 && (in->type == PT_F32 || in->type == PT_S32 ||
                                in->type == PT_U32) &&
               (in->type2 == PT_F32 || in->type2 == PT_S32) ? 0 : -1;
    return (in->type == PT_B8 || in->type == PT_B16 || in->type == PT_B32 ||
            in->type == PT_B64) && pt_bits(in->type) * in->vec <= 128 ? 0 : -1;
}

/* "[%handle]" or "[%handle, {coordinates}]": the object register (a .texref/.surfref name,
 * the unified mode, is not executed: -1) and the coordinate vector, if any. */
static int tex_addr(struct parser *ps, int32_t *handle, struct operand *coords)
{
    uint32_t bits;
    memset(coords, 0, sizeof(*coords));
    if (expect(ps, '[') || ps->t.kind != TK_WORD)
        return -EINVAL;
    struct sym *y = sym_find(ps, ps->t.s, ps->t.len);
    if (ps->t.s[0] != '%' && !(y && y->kind == SYM_REG))
        return -1;
    if (lookup_reg(ps, ps->t.s, ps->t.len, handle, &bits))
        return -EINVAL;
    next(ps);
    if (punct(ps, ',')) {
        next(ps);
        if (parse_operand(ps, coords))
            return -EINVAL;
        if (coords->kind == OPD_REG) {
            coords->vregs[0] = coords->reg;
            coords->nv = 1;
        } else if (coords->kind != OPD_VEC) {
            return -1;
        }
    }
    return expect(ps, ']') ? -EINVAL : 0;
}

/* Coordinates a geometry takes (the PTX ISA's vector sizes). */
static int tex_ncoords(int g)
{
    return g == TG_1D ? 1 : g == TG_2D || g == TG_A1D ? 2 : 4;
}

/* A register or vector operand's registers (immediates become constants). */
static int tex_regs(struct parser *ps, const struct operand *o, int32_t *regs, int *n, int max)
{
    if (o->kind == OPD_VEC) {
        if (o->nv > max)
            return -1;
        for (int i = 0; i < o->nv; i++)
            regs[i] = o->vregs[i];
        *n = o->nv;
        return 0;
    }
    if (o->kind != OPD_REG && o->kind != OPD_IMM)
        return -1;
    *n = 1;
    return (regs[0] = opd_reg(ps, o, PT_B64)) < 0 ? -1 : 0;
}

/* Emits "mov.bN t, {regs[0..n)}" (elements of `bits` bits) and returns t, or the register
 * itself when n is 1. */
static int32_t tex_pack(struct parser *ps, uint32_t line, const int32_t *regs, int n,
                        unsigned bits)
{
    static const uint8_t type_of_bits[] = {[16] = PT_B16, [32] = PT_B32, [64] = PT_B64};
    if (n == 1)
        return regs[0];
    int32_t t = reg_alloc(ps, 1, 64, 0);
    struct pins *mv = t < 0 ? NULL : emit(ps, line);
    if (!mv)
        return -1;
    mv->op = OP_mov;
    mv->mod2 = 2; /* pack */
    mv->type = type_of_bits[bits * (unsigned)n];
    mv->vec = (uint8_t)n;
    mv->d[0] = t;
    mv->nd = 1;
    for (int i = 0; i < n; i++) {
        mv->s[i] = regs[i] >= 0 ? regs[i] : const_reg(ps, 0);
        if (mv->s[i] < 0)
            return -1;
    }
    mv->ns = (uint8_t)n;
    return t;
}

/* sust's operands: the coordinates and data packed into sources (see ptx_internal.h). */
static int sust_operands(struct parser *ps, struct pins *in, const int32_t *c, int nc,
                         const int32_t *data, int nd)
{
    unsigned eb = pt_bits(in->type);
    int per = (int)(64 / eb) < nd ? (int)(64 / eb) : nd;
    int32_t lo = tex_pack(ps, in->line, c, nc < 2 ? nc : 2, 32);
    int32_t hi = nc > 2 ? c[2] : -1;
    int32_t d0 = tex_pack(ps, in->line, data, per, eb);
    int32_t d1 = nd > per ? tex_pack(ps, in->line, data + per, nd - per, eb) : -1;
    if (lo < 0 || d0 < 0 || (nc > 2 && hi < 0) || (nd > per && d1 < 0))
        return -EINVAL;
    in->s[1] = lo;
    in->s[2] = hi;
    in->s[3] = d0;
    in->s[4] = d1;
    in->ns = 5;
    return 0;
}

/* Reads a texture or surface instruction's operands through its ';': 0, -1 for a form the
 * engine does not execute (the rest skipped), or a parse error. */
static int tex_operands(struct parser *ps, int op, struct operand *dst, int32_t *handle,
                        struct operand *coords)
{
    int rc = 0;
    if (op == OP_sust) {
        rc = tex_addr(ps, handle, coords);
        if (rc == 0 && (expect(ps, ',') || parse_operand(ps, dst)))
            return -EINVAL;
    } else {
        if (parse_operand(ps, dst))
            return -EINVAL;
        if (punct(ps, '|')) { /* a predicate destination (sparse textures) */
            rc = -1;
            next(ps);
            next(ps);
        }
        if (expect(ps, ','))
            return -EINVAL;
        int a = tex_addr(ps, handle, coords);
        rc = a ? a : rc;
    }
    if (rc < -1)
        return rc;
    if (rc == 0 && !punct(ps, ';'))
        rc = -1; /* tex.level's lod, tex.grad's gradients, an offset, a depth compare */
    while (ps->t.kind != TK_EOF && !punct(ps, ';'))
        next(ps);
    return expect(ps, ';') ? -EINVAL : rc;
}

/* sust: its packing moves first, then the instruction (see ptx_internal.h). */
static int emit_sust(struct parser *ps, const struct pins *probe, int32_t handle, int32_t *c,
                     int nc, const int32_t *d, int nd)
{
    struct pins tmp = *probe;
    struct pins *in;
    if (probe->mod == TG_3D || probe->mod == TG_A2D)
        nc = 3; /* the fourth element is unused */
    if (sust_operands(ps, &tmp, c, nc, d, nd) || !(in = emit(ps, probe->line)))
        return -EINVAL;
    *in = tmp; /* the guard is the caller's, in probe */
    in->op = OP_sust;
    in->areg = -1;
    in->s[0] = handle;
    for (int i = 0; i < 4; i++)
        in->d[i] = -1;
    return 0;
}

/* tex, tld4, suld, sust, txq, suq: their own operand syntax ("[obj, {coords}]"). A form the
 * engine does not execute becomes an unsupported instruction. */
static int parse_texop(struct parser *ps, uint32_t line, int32_t guard, int gneg, int op,
                       const struct mods *m, const char *opstart, uint32_t oplen)
{
    struct pins probe;
    struct operand dst, coords;
    int32_t handle = -1, c[8], d[8];
    int nc = 0, nd = 0, query = op == OP_txq || op == OP_suq;
    memset(&probe, 0, sizeof(probe));
    probe.line = line;
    int form = tex_mods(&probe, op, m);
    int rc = tex_operands(ps, op, &dst, &handle, &coords);
    if (rc < -1)
        return rc;
    if (rc == 0 && form == 0 && !query &&
        (coords.kind != OPD_VEC || coords.nv != tex_ncoords(probe.mod) ||
         tex_regs(ps, &coords, c, &nc, 4)))
        form = -1;
    if (rc == 0 && form == 0 &&
        (tex_regs(ps, &dst, d, &nd, 4) || nd != (query ? 1 : probe.vec)))
        form = -1;
    struct pins *in = NULL;
    if (rc == 0 && form == 0 && op == OP_sust) {
        probe.guard = guard;
        probe.gneg = (uint8_t)gneg;
        return emit_sust(ps, &probe, handle, c, nc, d, nd);
    }
    if (!(in = emit(ps, line)))
        return -ENOMEM;
    in->guard = guard;
    in->gneg = (uint8_t)gneg;
    if (rc != 0 || form != 0)
        return emit_unsupported(ps, in, opstart, oplen);
    in->op = (uint16_t)op;
    in->mod = probe.mod;
    in->mod2 = probe.mod2;
    in->type = probe.type;
    in->type2 = probe.type2;
    in->vec = probe.vec;
    in->s[0] = handle;
    in->ns = 1;
    for (int i = 0; i < nc; i++)
        in->s[in->ns++] = c[i];
    for (int i = 0; i < nd; i++)
        in->d[i] = d[i];
    in->nd = (uint8_t)nd;
    return 0;
}

static int parse_instruction(struct parser *ps)
{
    uint32_t line = ps->t.line;
    int32_t guard = -1;
    int gneg = 0;
    if (punct(ps, '@')) {
        next(ps);
        if (punct(ps, '!')) {
            gneg = 1;
            next(ps);
        }
        uint32_t bits;
        if (ps->t.kind != TK_WORD || lookup_reg(ps, ps->t.s, ps->t.len, &guard, &bits))
            return fail(ps, line, "bad guard predicate");
        next(ps);
    }
    if (ps->t.kind != TK_WORD)
        return fail(ps, line, "expected an instruction near '%.*s'",
                    (int)(ps->t.len > 40 ? 40 : ps->t.len), ps->t.s);
    char base[32];
    struct mods m;
    parse_mods(ps->t.s, ps->t.len, base, sizeof(base), &m);
    const char *opstart = ps->t.s;
    uint32_t oplen = ps->t.len;
    next(ps);

    int op = -1;
    for (int i = 0; i < OP_COUNT; i++)
        if (!strcmp(ptx_op_names[i], base)) {
            op = i;
            break;
        }
    if (!strcmp(base, "barrier"))
        op = OP_bar;
    if (!strcmp(base, "ldu"))
        op = OP_ld;
    if (!strcmp(base, "fence"))
        op = OP_membar;
    /* griddepcontrol.wait/.launch_dependents (programmatic dependent launch, sm_90): the
     * simulated GPU runs a stream's grids one after another, so the grids a kernel would wait
     * for have completed before it starts, and letting dependents start early is a hint */
    if (!strcmp(base, "griddepcontrol") && m.nwords == 1 &&
        (!strcmp(m.words[0], "wait") || !strcmp(m.words[0], "launch_dependents"))) {
        op = OP_nop;
        m.nwords = 0;
    }
    if (!strcmp(base, "cp") && oplen > 8 && !memcmp(opstart, "cp.async", 8))
        op = OP_cpasync;
    if (!strcmp(base, "wmma") || !strcmp(base, "ldmatrix") || !strcmp(base, "movmatrix"))
        op = OP_mma;
    if (op < 0 || op == OP_unsupported || op == OP_movlocal || op == OP_barred ||
        op == OP_cvttf32 ||
        op == OP_warpsync || op == OP_clock) {
        /* an instruction the engine does not know: its operands are not
         * parsed; it fails the launch if it is ever reached */
        int depth = 0;
        while (ps->t.kind != TK_EOF && !(depth == 0 && punct(ps, ';'))) {
            if (punct(ps, '[') || punct(ps, '{') || punct(ps, '('))
                depth++;
            else if ((punct(ps, ']') || punct(ps, '}') || punct(ps, ')')) && depth > 0)
                depth--;
            else if (punct(ps, '}'))
                return fail(ps, line, "unbalanced '}' in instruction");
            next(ps);
        }
        if (expect(ps, ';'))
            return -EINVAL;
        struct pins *un = emit(ps, line);
        if (!un)
            return -ENOMEM;
        un->guard = guard;
        un->gneg = (uint8_t)gneg;
        return emit_unsupported(ps, un, opstart, oplen);
    }

    if (op == OP_tex || op == OP_tld4 || op == OP_suld || op == OP_sust || op == OP_txq ||
        op == OP_suq)
        return parse_texop(ps, line, guard, gneg, op, &m, opstart, oplen);

    struct operand ops[MAXOPS];
    int nops = 0;
    /* call has its own syntax: call[.uni] (rets), func, (args) [, proto]; */
    int is_call = !strcmp(base, "call");
    struct operand callrets[4], callargs[16];
    int ncallrets = 0, ncallargs = 0;
    int callbad = 0;
    if (is_call) {
        if (punct(ps, '(')) {
            next(ps);
            while (!punct(ps, ')')) {
                if (ncallrets >= 4 || parse_operand(ps, &callrets[ncallrets]))
                    return fail(ps, line, "bad call return list");
                ncallrets++;
                if (punct(ps, ','))
                    next(ps);
                else if (!punct(ps, ')'))
                    return fail(ps, line, "bad call return list");
            }
            next(ps);
            if (expect(ps, ','))
                return -EINVAL;
        }
        if (parse_operand(ps, &ops[0]))
            return -EINVAL;
        nops = 1;
        if (punct(ps, ',')) {
            next(ps);
            if (punct(ps, '(')) {
                next(ps);
                while (!punct(ps, ')')) {
                    if (ncallargs >= 16 || parse_operand(ps, &callargs[ncallargs]))
                        return fail(ps, line, "bad call argument list");
                    ncallargs++;
                    if (punct(ps, ','))
                        next(ps);
                    else if (!punct(ps, ')'))
                        return fail(ps, line, "bad call argument list");
                }
                next(ps);
            }
            while (punct(ps, ',')) { /* prototype or target list: indirect call */
                next(ps);
                callbad = 1;
                if (ps->t.kind == TK_WORD)
                    next(ps);
            }
        }
    } else {
        while (!punct(ps, ';')) {
            if (ps->t.kind == TK_EOF)
                return fail(ps, line, "missing ';'");
            if (nops >= MAXOPS)
                return fail(ps, line, "too many operands");
            if (parse_operand(ps, &ops[nops]))
                return -EINVAL;
            nops++;
            if (punct(ps, ','))
                next(ps);
            else if (!punct(ps, ';'))
                return fail(ps, line, "expected ',' or ';' near '%.*s'",
                            (int)(ps->t.len > 40 ? 40 : ps->t.len), ps->t.s);
        }
    }
    if (expect(ps, ';'))
        return -EINVAL;

    struct pins *in = emit(ps, line);
    if (!in)
        return -ENOMEM;
    uint32_t pc = ps->fn->ncode - 1;
    in->guard = guard;
    in->gneg = (uint8_t)gneg;
    in->type = (uint8_t)(m.ntypes > 0 ? m.types[0] : PT_NONE);
    in->type2 = (uint8_t)(m.ntypes > 1 ? m.types[1] : PT_NONE);
    in->space = (uint8_t)m.space;
    in->flags = m.flags;
    in->mod = (uint8_t)m.rnd;
    in->vec = (uint8_t)(m.vec ? m.vec : 1);

#define UNSUP() return emit_unsupported(ps, in, opstart, oplen)
#define REG(i, ty) do { int32_t _r = opd_reg(ps, &ops[i], (ty)); if (_r < 0) return -EINVAL; \
                        in->s[in->ns++] = _r; } while (0)
#define DST(i) do { if (ops[i].kind == OPD_SINK) in->d[in->nd++] = -1; \
                    else if (ops[i].kind != OPD_REG) \
                        return fail(ps, line, "destination must be a register"); \
                    else in->d[in->nd++] = ops[i].reg; } while (0)

    if (op == OP_mma)
        return parse_mma(ps, in, opstart, oplen, ops, nops, m.space);
    if (op == OP_cvt && has_word(&m, "tf32")) {
        int rc = parse_cvt_tf32(ps, in, &m, ops, nops);
        if (rc == -1)
            UNSUP();
        return rc;
    }
    /* reject modifiers we do not understand, so nothing is silently ignored */
    for (int i = 0; i < m.nwords; i++) {
        const char *w = m.words[i];
        if (benign(w) || cmp_of(w) || !strcmp(w, "hi") || !strcmp(w, "lo") ||
            !strcmp(w, "and") || !strcmp(w, "or") || !strcmp(w, "xor") || !strcmp(w, "add") ||
            !strcmp(w, "min") || !strcmp(w, "max") || !strcmp(w, "inc") || !strcmp(w, "dec") ||
            !strcmp(w, "cas") || !strcmp(w, "exch") || !strcmp(w, "up") ||
            !strcmp(w, "down") || !strcmp(w, "bfly") || !strcmp(w, "idx") ||
            !strcmp(w, "all") || !strcmp(w, "any") || !strcmp(w, "ballot") ||
            !strcmp(w, "wrap") || !strcmp(w, "clamp") || !strcmp(w, "l") || !strcmp(w, "r") ||
            !strcmp(w, "popc") || !strcmp(w, "red") || !strcmp(w, "arrive") ||
            !strcmp(w, "warp") || !strcmp(w, "finite") || !strcmp(w, "infinite") ||
            !strcmp(w, "number") || !strcmp(w, "notanumber") || !strcmp(w, "normal") ||
            !strcmp(w, "subnormal") || !strcmp(w, "f4e") || !strcmp(w, "b4e") ||
            !strcmp(w, "rc8") || !strcmp(w, "ecl") || !strcmp(w, "ecr") || !strcmp(w, "rc16") ||
            !strcmp(w, "generic"))
            continue;
        UNSUP();
    }
    if (has_word(&m, "generic") && m.space == SP_NONE)
        m.space = SP_GENERIC;

    in->op = (uint16_t)op;
    int t = in->type;

    switch (op) {
    case OP_mov: {
        if (nops != 2)
            return fail(ps, line, "mov takes 2 operands");
        if (ops[1].kind == OPD_REG && ops[0].kind == OPD_REG) {
            /* %clock / %clock64 / %globaltimer are read when executed */
            const int32_t *sr = ps->fn->sreg;
            int which = ops[1].reg == sr[SR_CLOCK] ? 1 : ops[1].reg == sr[SR_CLOCK64] ? 2
                      : ops[1].reg == sr[SR_GLOBALTIMER] ? 3 : 0;
            if (which) {
                in->op = OP_clock;
                in->mod = (uint8_t)which;
                DST(0);
                return 0;
            }
        }
        if (ops[0].kind == OPD_VEC) {
            /* unpack: mov.b64 {a,b}, x */
            if ((ops[1].kind != OPD_REG && ops[1].kind != OPD_IMM) || ops[0].nv > 4 ||
                ops[0].nv < 1)
                UNSUP();
            REG(1, t);
            in->nd = (uint8_t)ops[0].nv;
            for (int i = 0; i < ops[0].nv; i++)
                in->d[i] = ops[0].vregs[i];
            in->vec = (uint8_t)ops[0].nv;
            in->mod2 = 1; /* unpack */
            return 0;
        }
        DST(0);
        if (ops[1].kind == OPD_VEC) {
            in->ns = (uint8_t)ops[1].nv;
            if (ops[1].nv > 4 || ops[1].nv < 1)
                UNSUP();
            for (int i = 0; i < ops[1].nv; i++) {
                if (ops[1].vregs[i] < 0)
                    return fail(ps, line, "sink in source vector");
                in->s[i] = ops[1].vregs[i];
            }
            in->vec = (uint8_t)ops[1].nv;
            in->mod2 = 2; /* pack */
            return 0;
        }
        if (ops[1].kind == OPD_SYM && ops[1].sym->kind == SYM_LOCAL) {
            in->op = OP_movlocal;
            in->aoff = (int64_t)ops[1].sym->off;
            return 0;
        }
        if (ops[1].kind == OPD_SYM && ops[1].sym->kind == SYM_FUNC)
            UNSUP();
        if (ops[1].kind == OPD_LABEL)
            return fail(ps, line, "unknown symbol '%.*s'", (int)ops[1].namelen, ops[1].name);
        REG(1, t);
        return 0;
    }
    case OP_ld:
    case OP_st: {
        if (nops == 3 && has_word(&m, "L2::cache_hint"))
            nops = 2; /* the cache policy operand */
        if (nops != 2)
            return fail(ps, line, "%s takes 2 operands", base);
        if (in->space == SP_NONE)
            in->space = SP_GENERIC;
        if (t == PT_NONE)
            return fail(ps, line, "%s without a type", base);
        /* volatile shared accesses are how pre-Volta code talks within a warp without
         * __syncwarp: they execute warp-wide, lane by lane, as on a GPU */
        if (has_word(&m, "volatile") && (in->space == SP_SHARED || in->space == SP_GENERIC))
            in->flags |= F_LOCKSTEP;
        const struct operand *a = op == OP_ld ? &ops[1] : &ops[0];
        const struct operand *v = op == OP_ld ? &ops[0] : &ops[1];
        if (a->kind != OPD_ADDR)
            return fail(ps, line, "%s needs an address operand", base);
        if (set_address(ps, in, a, in->space))
            return -EINVAL;
        if (v->kind == OPD_VEC) {
            if (v->nv != in->vec || v->nv > 4)
                UNSUP();
            for (int i = 0; i < v->nv; i++) {
                if (op == OP_ld) {
                    in->d[i] = v->vregs[i];
                } else {
                    if (v->vregs[i] < 0)
                        return fail(ps, line, "sink in st vector");
                    in->s[i] = v->vregs[i];
                }
            }
            if (op == OP_ld)
                in->nd = (uint8_t)v->nv;
            else
                in->ns = (uint8_t)v->nv;
        } else {
            if (in->vec != 1)
                return fail(ps, line, "vector %s needs a vector operand", base);
            if (op == OP_ld) {
                if (v->kind != OPD_REG)
                    return fail(ps, line, "ld destination must be a register");
                in->d[0] = v->reg;
                in->nd = 1;
            } else {
                REG(1, t);
            }
        }
        return 0;
    }
    case OP_cvta: {
        /* cvta.space.size d, a  or  cvta.to.space.size d, a */
        if (nops != 2 || in->space == SP_NONE)
            return fail(ps, line, "bad cvta");
        if (in->space == SP_PARAM)
            UNSUP();
        in->mod2 = has_word(&m, "to") ? 1 : 0;
        DST(0);
        if (ops[1].kind == OPD_SYM && ops[1].sym->kind == SYM_LOCAL) {
            /* cvta.local d, depot: address of a local symbol */
            UNSUP();
        }
        REG(1, t);
        return 0;
    }
    case OP_cvt: {
        if (m.ntypes != 2)
            return fail(ps, line, "bad cvt");
        if (nops == 3 && (t == PT_F16X2 || t == PT_BF16X2) && in->type2 == PT_F32) {
            /* cvt.rn.f16x2.f32 d, a, b: a to the upper half, b to the lower */
            DST(0);
            REG(1, PT_F32);
            REG(2, PT_F32);
            in->mod2 = 1;
            return 0;
        }
        if (nops != 2 || t == PT_F16X2 || t == PT_BF16X2 || in->type2 == PT_F16X2 ||
            in->type2 == PT_BF16X2)
            return fail(ps, line, "bad cvt");
        if (has_word(&m, "relu") || has_word(&m, "satfinite"))
            UNSUP();
        DST(0);
        REG(1, in->type2);
        return 0;
    }
    case OP_cpasync: {
        /* cp.async.ca/cg.shared.global [dst], [src], cp-size{, src-size}{, policy} */
        if (has_word(&m, "commit_group") || has_word(&m, "wait_group") ||
            has_word(&m, "wait_all")) {
            in->op = OP_nop; /* copies complete when issued */
            return 0;
        }
        if (has_word(&m, "bulk") || has_word(&m, "mbarrier") || nops < 3 ||
            ops[0].kind != OPD_ADDR || ops[1].kind != OPD_ADDR || ops[2].kind != OPD_IMM)
            UNSUP();
        if (has_word(&m, "L2::cache_hint"))
            nops--;
        if (nops > 4)
            UNSUP();
        if (set_address(ps, in, &ops[0], SP_SHARED))
            return -EINVAL;
        if (ops[1].asym && ops[1].asym != SYM_GLOBAL)
            UNSUP();
        in->s[0] = ops[1].areg >= 0 ? ops[1].areg : const_reg(ps, 0);
        in->ns = 1;
        if (in->s[0] < 0)
            return -ENOMEM;
        in->target = (int32_t)ops[1].aoff; /* source offset */
        if (ops[1].abits && ops[1].abits <= 32)
            UNSUP();
        if (ops[2].imm != 4 && ops[2].imm != 8 && ops[2].imm != 16)
            return fail(ps, line, "cp.async size must be 4, 8 or 16");
        in->vec = (uint8_t)ops[2].imm;
        if (nops == 4)
            REG(3, PT_U32); /* src-size */
        else
            in->s[1] = -1;
        return 0;
    }
    case OP_add: case OP_sub: case OP_mul: case OP_div: case OP_rem: case OP_min: case OP_max:
    case OP_and: case OP_or: case OP_xor: case OP_shl: case OP_shr: case OP_mul24:
    case OP_copysign: case OP_addc: case OP_subc:
        if (nops != 3)
            return fail(ps, line, "%s takes 3 operands", base);
        if (has_word(&m, "hi"))
            in->flags |= F_HI;
        if (has_word(&m, "lo"))
            in->flags |= F_LO;
        if (pt_half(t) && op != OP_add && op != OP_sub && op != OP_mul && op != OP_min &&
            op != OP_max)
            UNSUP();
        DST(0);
        REG(1, t);
        REG(2, (op == OP_shl || op == OP_shr) ? PT_U32 : t);
        return 0;
    case OP_mad: case OP_fma: case OP_mad24: case OP_madc: case OP_sad: case OP_bfe:
    case OP_prmt: case OP_dp4a: case OP_dp2a:
        if (op == OP_prmt && (has_word(&m, "f4e") || has_word(&m, "b4e") ||
                              has_word(&m, "rc8") || has_word(&m, "ecl") ||
                              has_word(&m, "ecr") || has_word(&m, "rc16")))
            UNSUP();
        if (nops != 4)
            return fail(ps, line, "%s takes 4 operands", base);
        if (op == OP_dp4a || op == OP_dp2a) {
            /* dp4a.atype.btype / dp2a.lo|hi.atype.btype d, a, b, c */
            if (m.ntypes != 2)
                return fail(ps, line, "%s needs two types", base);
            if (op == OP_dp2a && has_word(&m, "hi"))
                in->mod2 = 1;
            DST(0);
            REG(1, PT_U32);
            REG(2, PT_U32);
            REG(3, PT_U32);
            return 0;
        }
        if (op == OP_mad24 && (has_word(&m, "hi") || (in->flags & F_SAT)))
            UNSUP();
        if (has_word(&m, "hi"))
            in->flags |= F_HI;
        if (has_word(&m, "lo"))
            in->flags |= F_LO;
        if (pt_half(t) && op != OP_fma)
            UNSUP();
        DST(0);
        REG(1, t);
        if (op == OP_bfe) {
            REG(2, PT_U32);
            REG(3, PT_U32);
        } else if (op == OP_mad && (in->flags & F_WIDE)) {
            REG(2, t);
            REG(3, t == PT_U32 ? PT_U64 : t == PT_S32 ? PT_S64 : t == PT_U16 ? PT_U32 : PT_S32);
        } else {
            REG(2, t);
            REG(3, t);
        }
        return 0;
    case OP_bfi:
        if (nops != 5)
            return fail(ps, line, "bfi takes 5 operands");
        DST(0);
        REG(1, t);
        REG(2, t);
        REG(3, PT_U32);
        REG(4, PT_U32);
        return 0;
    case OP_lop3:
        if (nops != 5 || t != PT_B32 || ops[4].kind != OPD_IMM)
            UNSUP(); /* the predicate-output form too */
        DST(0);
        REG(1, PT_B32);
        REG(2, PT_B32);
        REG(3, PT_B32);
        in->mod = (uint8_t)ops[4].imm;
        return 0;
    case OP_redux: {
        static const char *const rn[] = {NULL, "add", "min", "max", NULL, NULL, NULL, NULL,
                                         "and", "or", "xor"};
        for (int i = 1; i < 11; i++)
            if (rn[i] && has_word(&m, rn[i]))
                in->mod = (uint8_t)i; /* ATOM_* values */
        if (!in->mod || !has_word(&m, "sync") || nops != 3 ||
            (t != PT_U32 && t != PT_S32 && t != PT_B32))
            UNSUP();
        DST(0);
        REG(1, t);
        REG(2, PT_U32);
        return 0;
    }
    case OP_bmsk:
        if (nops != 3 || t != PT_B32)
            return fail(ps, line, "bad bmsk");
        if (has_word(&m, "wrap"))
            in->flags |= F_WRAP;
        else if (!has_word(&m, "clamp"))
            return fail(ps, line, "bmsk needs .clamp or .wrap");
        DST(0);
        REG(1, PT_U32);
        REG(2, PT_U32);
        return 0;
    case OP_shf:
        if (nops != 4)
            return fail(ps, line, "shf takes 4 operands");
        if (has_word(&m, "l"))
            in->flags |= F_LEFT;
        else if (!has_word(&m, "r"))
            return fail(ps, line, "shf needs .l or .r");
        if (has_word(&m, "wrap"))
            in->flags |= F_WRAP;
        DST(0);
        REG(1, PT_U32);
        REG(2, PT_U32);
        REG(3, PT_U32);
        return 0;
    case OP_abs: case OP_neg: case OP_not: case OP_cnot: case OP_popc: case OP_clz:
    case OP_brev: case OP_bfind: case OP_sqrt: case OP_rsqrt: case OP_rcp: case OP_ex2:
    case OP_lg2: case OP_sin: case OP_cos: case OP_tanh:
        if (nops != 2)
            return fail(ps, line, "%s takes 2 operands", base);
        if (pt_half(t) && op != OP_abs && op != OP_neg)
            UNSUP();
        if (has_word(&m, "shiftamt"))
            in->flags |= F_SHIFTAMT;
        DST(0);
        REG(1, t);
        return 0;
    case OP_testp: {
        if (nops != 2)
            return fail(ps, line, "testp takes 2 operands");
        static const char *const tn[] = {NULL, "finite", "infinite", "number", "notanumber",
                                         "normal", "subnormal"};
        for (int i = 1; i < 7; i++)
            if (has_word(&m, tn[i]))
                in->mod = (uint8_t)i;
        if (!in->mod)
            return fail(ps, line, "testp without a test");
        DST(0);
        REG(1, t);
        return 0;
    }
    case OP_setp:
    case OP_set: {
        int cmp = 0, bop = BOP_NONE;
        for (int i = 0; i < m.nwords; i++) {
            int c = cmp_of(m.words[i]);
            if (c && !cmp) {
                cmp = c;
                continue;
            }
            if (!strcmp(m.words[i], "and")) bop = BOP_AND;
            else if (!strcmp(m.words[i], "or")) bop = BOP_OR;
            else if (!strcmp(m.words[i], "xor")) bop = BOP_XOR;
        }
        if (!cmp)
            return fail(ps, line, "%s without a comparison", base);
        in->mod = (uint8_t)cmp;
        in->mod2 = (uint8_t)bop;
        if (op == OP_set) {
            /* set.cmp.dtype.stype */
            if (m.ntypes != 2)
                return fail(ps, line, "set needs two types");
            in->type = (uint8_t)m.types[1]; /* compare type */
            in->type2 = (uint8_t)m.types[0]; /* destination type */
        }
        int ctype = in->type;
        if (pt_half(ctype))
            UNSUP();
        if (nops != (bop ? 4 : 3))
            return fail(ps, line, "%s: wrong operand count", base);
        if (ops[0].kind != OPD_REG)
            return fail(ps, line, "%s destination must be a predicate", base);
        in->d[0] = ops[0].reg;
        in->d[1] = ops[0].reg2;
        in->nd = 2;
        REG(1, ctype);
        REG(2, ctype);
        if (bop) {
            if (ops[3].kind != OPD_REG)
                return fail(ps, line, "bad predicate operand");
            if (ops[3].neg)
                in->flags |= F_NEGSRC;
            REG(3, PT_PRED);
        }
        return 0;
    }
    case OP_selp:
        if (nops != 4)
            return fail(ps, line, "selp takes 4 operands");
        DST(0);
        REG(1, t);
        REG(2, t);
        if (ops[3].kind == OPD_REG && ops[3].neg)
            in->flags |= F_NEGSRC;
        REG(3, PT_PRED);
        return 0;
    case OP_slct:
        if (nops != 4 || m.ntypes != 2)
            return fail(ps, line, "bad slct");
        DST(0);
        REG(1, t);
        REG(2, t);
        REG(3, in->type2);
        return 0;
    case OP_bra:
        if (nops != 1 || ops[0].kind != OPD_LABEL)
            return fail(ps, line, "bra needs a label");
        return label_ref(ps, pc, &ops[0]);
    case OP_ret:
    case OP_exit:
    case OP_trap:
    case OP_brkpt:
    case OP_nop:
        return 0;
    case OP_membar:
    case OP_prefetch:
    case OP_nanosleep:
        in->op = OP_nop;
        return 0;
    case OP_bar: {
        /* bar.sync / barrier.sync [.aligned] a{, b}; bar.warp.sync m; bar.red.op.pred */
        if (has_word(&m, "warp")) {
            in->op = OP_warpsync;
            return 0;
        }
        if (has_word(&m, "red")) {
            in->op = OP_barred;
            if (has_word(&m, "popc"))
                in->mod = 1;
            else if (has_word(&m, "and"))
                in->mod = 2;
            else if (has_word(&m, "or"))
                in->mod = 3;
            else
                UNSUP();
            /* bar.red.popc.u32 d, a{, b}, {!}c: s0 = c, s1 = barrier, s2 = thread count */
            if (nops < 3 || nops > 4)
                return fail(ps, line, "bad bar.red");
            DST(0);
            if (ops[nops - 1].kind == OPD_REG && ops[nops - 1].neg)
                in->flags |= F_NEGSRC;
            REG(nops - 1, PT_PRED);
            REG(1, PT_U32);
            if (nops == 4)
                REG(2, PT_U32);
            return 0;
        }
        /* bar{.sync|.arrive} a{, b}: s0 = barrier, s1 = thread count */
        int arrive = has_word(&m, "arrive");
        if (nops < 1 || nops > 2 || (arrive && nops != 2))
            return fail(ps, line, "bad %s", base);
        in->mod2 = (uint8_t)arrive;
        REG(0, PT_U32);
        if (nops == 2)
            REG(1, PT_U32);
        return 0;
    }
    case OP_atom:
    case OP_red: {
        int aop = 0;
        static const char *const an[] = {NULL, "add", "min", "max", "inc", "dec", "cas",
                                         "exch", "and", "or", "xor"};
        for (int i = 1; i < 11; i++)
            if (has_word(&m, an[i]))
                aop = i;
        if (!aop)
            return fail(ps, line, "%s without an operation", base);
        in->mod = (uint8_t)aop;
        if (in->space == SP_NONE)
            in->space = SP_GENERIC;
        if (in->vec != 1 || pt_half(t))
            UNSUP();
        if (in->space != SP_GLOBAL && in->space != SP_SHARED && in->space != SP_GENERIC)
            UNSUP();
        int first = op == OP_atom ? 1 : 0;
        int want = first + 2 + (aop == ATOM_CAS);
        if (nops != want)
            return fail(ps, line, "%s: wrong operand count", base);
        if (op == OP_atom)
            DST(0);
        if (ops[first].kind != OPD_ADDR)
            return fail(ps, line, "%s needs an address", base);
        if (set_address(ps, in, &ops[first], in->space))
            return -EINVAL;
        REG(first + 1, t);
        if (aop == ATOM_CAS)
            REG(first + 2, t);
        return 0;
    }
    case OP_shfl: {
        static const char *const sn[] = {NULL, "up", "down", "bfly", "idx"};
        for (int i = 1; i < 5; i++)
            if (has_word(&m, sn[i]))
                in->mod = (uint8_t)i;
        if (!in->mod)
            return fail(ps, line, "shfl without a mode");
        if (!has_word(&m, "sync"))
            UNSUP();
        if (nops != 5)
            return fail(ps, line, "shfl.sync takes 5 operands");
        if (ops[0].kind != OPD_REG)
            return fail(ps, line, "bad shfl destination");
        in->d[0] = ops[0].reg;
        in->d[1] = ops[0].reg2;
        in->nd = 2;
        REG(1, PT_B32);
        REG(2, PT_U32);
        REG(3, PT_U32);
        REG(4, PT_U32);
        return 0;
    }
    case OP_vote: {
        static const char *const vn[] = {NULL, "all", "any", "uni", "ballot"};
        for (int i = 1; i < 5; i++)
            if (has_word(&m, vn[i]))
                in->mod = (uint8_t)i;
        if (!in->mod)
            return fail(ps, line, "vote without a mode");
        if (nops != 3)
            UNSUP();
        DST(0);
        if (ops[1].kind == OPD_REG && ops[1].neg)
            in->flags |= F_NEGSRC;
        REG(1, PT_PRED);
        REG(2, PT_U32);
        return 0;
    }
    case OP_match: {
        if (has_word(&m, "any"))
            in->mod = MATCH_ANY;
        else if (has_word(&m, "all"))
            in->mod = MATCH_ALL;
        else
            return fail(ps, line, "match without a mode");
        if (nops != 3 || ops[0].kind != OPD_REG)
            return fail(ps, line, "bad match");
        in->d[0] = ops[0].reg;
        in->d[1] = ops[0].reg2;
        in->nd = 2;
        REG(1, t);
        REG(2, PT_U32);
        return 0;
    }
    case OP_activemask:
        if (nops != 1)
            return fail(ps, line, "bad activemask");
        DST(0);
        return 0;
    case OP_isspacep:
        if (nops != 2 || (in->space != SP_GLOBAL && in->space != SP_SHARED &&
                          in->space != SP_LOCAL))
            UNSUP();
        DST(0);
        REG(1, PT_U64);
        return 0;
    case OP_call: {
        if (callbad || ops[0].kind != OPD_SYM || ops[0].sym->kind != SYM_FUNC)
            UNSUP();
        struct pfunc *f = ps->fn;
        size_t cap = ps->capcalls;
        if (grow((void **)&f->calls, &cap, f->ncalls + 1, sizeof(struct pcall)))
            return oom(ps);
        ps->capcalls = cap;
        struct pcall *c = &f->calls[f->ncalls];
        memset(c, 0, sizeof(*c));
        c->nargs = (uint32_t)ncallargs;
        c->nrets = (uint32_t)ncallrets;
        for (int i = 0; i < ncallargs; i++) {
            if (callargs[i].kind != OPD_SYM || callargs[i].sym->kind != SYM_PARAM)
                UNSUP();
            c->arg_off[i] = (uint32_t)callargs[i].sym->off;
        }
        for (int i = 0; i < ncallrets; i++) {
            if (callrets[i].kind != OPD_SYM || callrets[i].sym->kind != SYM_PARAM)
                UNSUP();
            c->ret_off[i] = (uint32_t)callrets[i].sym->off;
        }
        c->func = (uint32_t)ops[0].sym->reg;
        in->target = (int32_t)f->ncalls;
        f->ncalls++;
        return 0;
    }
    default:
        UNSUP();
    }
#undef UNSUP
#undef REG
#undef DST
}

/* Parses a body-level declaration (.reg/.local/.shared/.param) after its directive. */
static int parse_body_decl(struct parser *ps, int kind)
{
    struct decl d = {0};
    int rc = parse_decl_body(ps, &d);
    for (;;) {
        if (rc)
            break;
        if (kind == SP_NONE) { /* .reg */
            uint32_t bits = pt_bits((unsigned)d.type);
            if (bits < 8)
                bits = bits ? 8 : 64;
            if (d.vec != 1 || d.is_array) {
                rc = fail(ps, d.line, "vector/array registers are not supported");
                break;
            }
            uint32_t count = d.range ? d.range : 1;
            int32_t r = reg_alloc(ps, count, bits, 0);
            if (r < 0) {
                rc = -EINVAL;
                break;
            }
            struct sym *y = sym_add(ps, d.name, d.namelen, SYM_REG);
            if (!y) {
                rc = -ENOMEM;
                break;
            }
            y->reg = r;
            y->count = d.range;
            y->bits = bits;
        } else if (kind == SP_LOCAL) {
            uint64_t a = d.align ? d.align : decl_elem_size(&d) / d.vec;
            struct pfunc *f = ps->fn;
            uint64_t off = align_up(f->local_bytes, a ? a : 1);
            uint64_t size = decl_elem_size(&d) * (d.count ? d.count : 1);
            if (off + size > PTX_LOCAL_BYTES_MAX) {
                /* ptxas refuses this too, so a JIT load of the PTX fails */
                rc = fail(ps, d.line, "%s '%s' uses too much local data (%llu bytes, %u max)",
                          f->is_entry ? "entry function" : "function", f->name,
                          (unsigned long long)(off + size), (unsigned)PTX_LOCAL_BYTES_MAX);
                break;
            }
            if (a > f->local_align)
                f->local_align = (uint32_t)a;
            f->local_bytes = (uint32_t)(off + size);
            struct sym *y = sym_add(ps, d.name, d.namelen, SYM_LOCAL);
            if (!y) {
                rc = -ENOMEM;
                break;
            }
            y->off = off;
        } else if (kind == SP_SHARED) {
            rc = add_shared(ps, &d);
        } else if (kind == SP_PARAM) {
            rc = add_param(ps, NULL, NULL, NULL, &d, SYM_PARAM);
        }
        if (rc || !punct(ps, ','))
            break;
        /* ".reg .b32 a, b, c;" */
        next(ps);
        decl_free(&d);
        int ty = d.type;
        uint32_t al = d.align, vec = d.vec;
        memset(&d, 0, sizeof(d));
        d.type = ty;
        d.align = al;
        d.vec = vec;
        d.count = 1;
        d.line = ps->t.line;
        if (ps->t.kind != TK_WORD) {
            rc = fail(ps, ps->t.line, "expected a name");
            break;
        }
        d.name = tok_dup(ps);
        d.namelen = ps->t.len;
        next(ps);
        if (punct(ps, '<')) {
            next(ps);
            uint64_t v;
            int isf;
            if (ps->t.kind != TK_WORD || parse_number(ps->t.s, ps->t.len, &v, &isf) || isf ||
                v > (1u << 20)) {
                rc = fail(ps, ps->t.line, "bad register range");
                break;
            }
            d.range = (uint32_t)v;
            next(ps);
            rc = expect(ps, '>');
        }
    }
    decl_free(&d);
    if (rc)
        return rc;
    if (punct(ps, '='))
        return fail(ps, ps->t.line, "initialisers on function-scope variables are not supported");
    return expect(ps, ';');
}

static int resolve_labels(struct parser *ps)
{
    struct pfunc *f = ps->fn;
    for (size_t i = 0; i < ps->nfixups; i++) {
        struct fixup *x = &ps->fixups[i];
        size_t j;
        for (j = 0; j < ps->nlabels; j++)
            if (!strcmp(ps->labels[j].name, x->label))
                break;
        if (j == ps->nlabels)
            return fail(ps, f->code[x->ins].line, "unknown label '%s'", x->label);
        f->code[x->ins].target = (int32_t)ps->labels[j].pc;
    }
    return 0;
}

static void function_scratch_free(struct parser *ps)
{
    for (size_t i = 0; i < ps->nlabels; i++)
        free(ps->labels[i].name);
    ps->nlabels = 0;
    for (size_t i = 0; i < ps->nfixups; i++)
        free(ps->fixups[i].label);
    ps->nfixups = 0;
}

static int parse_body(struct parser *ps)
{
    /* at '{' */
    next(ps);
    scope_push(ps);
    int depth = 1;
    while (!ps->failed) {
        if (ps->t.kind == TK_EOF)
            return fail(ps, ps->t.line, "unexpected end of file in function body");
        if (punct(ps, '}')) {
            next(ps);
            scope_pop(ps);
            if (--depth == 0)
                break;
            continue;
        }
        if (punct(ps, '{')) {
            next(ps);
            scope_push(ps);
            depth++;
            continue;
        }
        if (tok_is(ps, ".reg")) {
            next(ps);
            if (parse_body_decl(ps, SP_NONE))
                return -EINVAL;
            continue;
        }
        if (tok_is(ps, ".local")) {
            next(ps);
            if (parse_body_decl(ps, SP_LOCAL))
                return -EINVAL;
            continue;
        }
        if (tok_is(ps, ".shared")) {
            next(ps);
            if (parse_body_decl(ps, SP_SHARED))
                return -EINVAL;
            continue;
        }
        if (tok_is(ps, ".param")) {
            next(ps);
            if (parse_body_decl(ps, SP_PARAM))
                return -EINVAL;
            continue;
        }
        if (tok_is(ps, ".loc") || tok_is(ps, ".file")) {
            skip_line(ps);
            continue;
        }
        if (tok_is(ps, ".pragma")) {
            skip_statement(ps);
            continue;
        }
        if (ps->t.kind == TK_WORD && ps->t.s[0] == '.') {
            return fail(ps, ps->t.line, "unsupported directive '%.*s' in function body",
                        (int)ps->t.len, ps->t.s);
        }
        if (ps->t.kind == TK_WORD) {
            /* label? */
            size_t save_pos = ps->pos;
            uint32_t save_line = ps->line;
            struct tok save = ps->t;
            next(ps);
            if (punct(ps, ':')) {
                next(ps);
                if (tok_is(ps, ".callprototype")) {
                    skip_statement(ps);
                    continue;
                }
                if (grow((void **)&ps->labels, &ps->caplabels, ps->nlabels + 1,
                         sizeof(*ps->labels)))
                    return oom(ps);
                ps->labels[ps->nlabels].name = strndup(save.s, save.len);
                if (!ps->labels[ps->nlabels].name)
                    return oom(ps);
                ps->labels[ps->nlabels].pc = ps->fn->ncode;
                ps->nlabels++;
                continue;
            }
            ps->pos = save_pos;
            ps->line = save_line;
            ps->t = save;
        }
        if (parse_instruction(ps))
            return -EINVAL;
    }
    return ps->failed ? -EINVAL : 0;
}

/* .entry / .func (after linkage directives). */
static int parse_function(struct parser *ps, int is_entry)
{
    next(ps); /* .entry / .func */
    struct ptx_program *p = ps->p;
    /* return parameters come first for .func */
    int has_rets = 0;
    size_t rets_pos = 0;
    uint32_t rets_line = 0;
    if (!is_entry && punct(ps, '(')) {
        /* remember where: parse after the function record exists */
        has_rets = 1;
        rets_pos = ps->pos;
        rets_line = ps->t.line;
        int depth = 0;
        do {
            if (punct(ps, '('))
                depth++;
            if (punct(ps, ')'))
                depth--;
            next(ps);
        } while (depth > 0 && ps->t.kind != TK_EOF);
    }
    if (ps->t.kind != TK_WORD)
        return fail(ps, ps->t.line, "expected a function name");
    int idx;
    struct pfunc *f = func_find(p, ps->t.s, ps->t.len, &idx);
    if (!f) {
        struct pfunc *nf = realloc(p->funcs, (p->nfuncs + 1) * sizeof(*nf));
        if (!nf)
            return oom(ps);
        p->funcs = nf;
        f = &p->funcs[p->nfuncs];
        memset(f, 0, sizeof(*f));
        f->name = tok_dup(ps);
        if (!f->name)
            return oom(ps);
        idx = (int)p->nfuncs++;
        struct sym *y = sym_add(ps, ps->t.s, ps->t.len, SYM_FUNC);
        if (!y)
            return -ENOMEM;
        y->reg = idx;
    }
    next(ps);
    struct pfunc *saved_fn = ps->fn;
    struct pfunc tmp;
    int defining = 0;
    /* parameters are parsed into a scratch record; kept only if this is the definition */
    memset(&tmp, 0, sizeof(tmp));
    for (int i = 0; i < SR_COUNT; i++)
        tmp.sreg[i] = -1;
    tmp.name = f->name;
    tmp.is_entry = is_entry;
    ps->fn = &tmp;
    ps->fn_index = idx;
    ps->kshared_off = 0;
    ps->capregs = ps->capparams = ps->caprets = ps->cappatch = ps->capcalls = 0;
    ps->capmmas = 0;
    ps->capcode = 0;
    scope_push(ps);
    int rc = 0;
    if (has_rets) {
        size_t pos = ps->pos;
        uint32_t line = ps->line;
        struct tok t = ps->t;
        ps->pos = rets_pos;
        ps->line = rets_line;
        /* re-lex from the '(' */
        ps->pos = rets_pos - 1;
        next(ps);
        rc = parse_param_list(ps, 1);
        ps->pos = pos;
        ps->line = line;
        ps->t = t;
    }
    if (!rc && punct(ps, '('))
        rc = parse_param_list(ps, 0);
    if (!rc) {
        tmp.param_bytes = 0;
        for (uint32_t i = 0; i < tmp.nparams; i++)
            if (tmp.params[i].offset + tmp.params[i].size > tmp.param_bytes)
                tmp.param_bytes = tmp.params[i].offset + tmp.params[i].size;
        if (is_entry && tmp.param_bytes > PTX_ENTRY_PARAM_BYTES_MAX) /* ptxas refuses it too */
            rc = fail(ps, ps->t.line, "entry function '%s' uses too much parameter space (%u "
                      "bytes, %u max)", tmp.name, tmp.param_bytes, PTX_ENTRY_PARAM_BYTES_MAX);
    }
    /* performance directives before the body */
    while (!rc && ps->t.kind == TK_WORD && ps->t.s[0] == '.') {
        if (tok_is(ps, ".noreturn")) {
            next(ps);
            continue;
        }
        /* .maxntid 256, 1, 1 / .reqntid / .minnctapersm / .maxnreg / .pragma ... */
        next(ps);
        while (ps->t.kind == TK_WORD && isdigit((unsigned char)ps->t.s[0])) {
            next(ps);
            if (punct(ps, ','))
                next(ps);
        }
        if (ps->t.kind == TK_STR) {
            next(ps);
            if (punct(ps, ';'))
                next(ps);
        }
    }
    if (!rc && punct(ps, '{')) {
        if (f->has_body) {
            rc = fail(ps, ps->t.line, "function '%s' defined twice", f->name);
        } else {
            defining = 1;
            rc = parse_body(ps);
            tmp.shared_bytes = ps->kshared_off;
            if (!rc)
                rc = resolve_labels(ps);
            if (!rc && tmp.ncode == 0) {
                struct pins *in = emit(ps, ps->t.line);
                if (!in)
                    rc = -ENOMEM;
                else
                    in->op = OP_ret;
            }
            if (!rc) {
                struct pins *in = emit(ps, ps->t.line); /* falling off the end returns */
                if (!in)
                    rc = -ENOMEM;
                else
                    in->op = OP_ret;
            }
        }
    } else if (!rc) {
        rc = expect(ps, ';');
    }
    function_scratch_free(ps);
    scope_pop(ps);
    ps->fn = saved_fn;
    /* f may have moved if p->funcs was reallocated (not during a body: calls don't add) */
    f = &p->funcs[idx];
    if (!rc && (defining || (!f->has_body && f->nparams == 0 && f->nrets == 0))) {
        free(f->code);
        free(f->reg_init);
        free(f->reg_bits);
        free(f->params);
        free(f->rets);
        free(f->patches);
        free(f->calls);
        free(f->mmas);
        tmp.has_body = defining;
        *f = tmp;
        if (!f->reg_init) {
            /* every function gets a non-empty register file */
            f->reg_init = calloc(1, sizeof(uint64_t));
            f->reg_bits = calloc(1, 1);
            if (!f->reg_init || !f->reg_bits)
                return oom(ps);
            f->nregs = 1;
        }
        f->is_entry = is_entry;
        return 0;
    }
    free(tmp.code);
    free(tmp.reg_init);
    free(tmp.reg_bits);
    free(tmp.params);
    free(tmp.rets);
    free(tmp.patches);
    free(tmp.calls);
    free(tmp.mmas);
    return rc;
}

/* ".target sm_XX[a|f][, option]...": records XX (the architecture the PTX was written for,
 * CU_FUNC_ATTRIBUTE_PTX_VERSION); other targets and options are skipped. */
static void parse_target(struct parser *ps)
{
    next(ps);
    uint32_t sm = 0;
    if (ps->t.kind == TK_WORD && ps->t.len > 3 && memcmp(ps->t.s, "sm_", 3) == 0) {
        for (uint32_t i = 3; i < ps->t.len && isdigit((unsigned char)ps->t.s[i]) && sm < 10000;
             i++)
            sm = sm * 10 + (uint32_t)(ps->t.s[i] - '0');
    }
    ps->p->ptx_target = sm;
    skip_line(ps);
}

static int parse_module(struct parser *ps)
{
    next(ps);
    while (!ps->failed && ps->t.kind != TK_EOF) {
        if (tok_is(ps, ".target")) {
            parse_target(ps);
            continue;
        }
        if (tok_is(ps, ".version") || tok_is(ps, ".file") || tok_is(ps, ".loc")) {
            skip_line(ps);
            continue;
        }
        if (tok_is(ps, ".address_size")) {
            next(ps);
            uint64_t v;
            int isf;
            if (ps->t.kind != TK_WORD || parse_number(ps->t.s, ps->t.len, &v, &isf) || v != 64)
                return fail(ps, ps->t.line, "only .address_size 64 is supported");
            next(ps);
            continue;
        }
        if (tok_is(ps, ".pragma")) {
            skip_statement(ps);
            continue;
        }
        if (tok_is(ps, ".section")) {
            /* debug sections: skip the balanced braces */
            while (ps->t.kind != TK_EOF && !punct(ps, '{'))
                next(ps);
            int depth = 0;
            do {
                if (punct(ps, '{'))
                    depth++;
                else if (punct(ps, '}'))
                    depth--;
                next(ps);
            } while (depth > 0 && ps->t.kind != TK_EOF);
            continue;
        }
        if (tok_is(ps, ".visible") || tok_is(ps, ".extern") || tok_is(ps, ".weak") ||
            tok_is(ps, ".common")) {
            next(ps);
            continue;
        }
        if (tok_is(ps, ".entry") || tok_is(ps, ".func")) {
            int is_entry = tok_is(ps, ".entry");
            if (parse_function(ps, is_entry))
                return -EINVAL;
            continue;
        }
        if (tok_is(ps, ".global") || tok_is(ps, ".const") || tok_is(ps, ".shared")) {
            int space = tok_is(ps, ".global") ? SP_GLOBAL : tok_is(ps, ".const") ? SP_CONST
                                                                                  : SP_SHARED;
            next(ps);
            struct decl d = {0};
            int rc = parse_decl_body(ps, &d);
            if (!rc) {
                if (space == SP_SHARED)
                    rc = add_shared(ps, &d);
                else
                    rc = add_global(ps, &d, space);
            }
            decl_free(&d);
            if (rc)
                return rc;
            if (expect(ps, ';'))
                return -EINVAL;
            continue;
        }
        return fail(ps, ps->t.line, "unexpected '%.*s' at module level",
                    (int)(ps->t.len > 40 ? 40 : ps->t.len), ps->t.s);
    }
    return ps->failed ? -EINVAL : 0;
}

void ptx_program_clear(struct ptx_program *p)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->nfuncs; i++) {
        struct pfunc *f = &p->funcs[i];
        free(f->name);
        free(f->code);
        free(f->reg_init);
        free(f->reg_bits);
        free(f->params);
        free(f->rets);
        free(f->patches);
        free(f->calls);
        free(f->mmas);
    }
    free(p->funcs);
    for (uint32_t i = 0; i < p->nglobals; i++) {
        free(p->globals[i].name);
        free(p->globals[i].init);
        free(p->globals[i].relocs);
    }
    free(p->globals);
    for (uint32_t i = 0; i < p->nkernels; i++) {
        free(p->kernels[i].name);
        free(p->kernels[i].params);
    }
    free(p->kernels);
    for (uint32_t i = 0; i < p->nstrings; i++)
        free(p->strings[i]);
    free(p->strings);
    memset(p, 0, sizeof(*p));
}

int ptx_parse(struct ptx_program *p, const char *text, size_t len, char *err, size_t errlen)
{
    struct parser ps;
    memset(&ps, 0, sizeof(ps));
    ps.text = text;
    ps.len = len;
    ps.line = 1;
    ps.p = p;
    ps.err = err;
    ps.errlen = errlen;
    int rc = parse_module(&ps);
    if (!rc) {
        /* kernels' own shared variables follow the module-wide region */
        uint32_t m = (uint32_t)align_up(ps.shared_off, 16);
        p->shared_module = ps.shared_off;
        for (size_t i = 0; i < ps.nshfixes; i++) {
            struct shfix *x = &ps.shfixes[i];
            struct pfunc *f = &p->funcs[x->func];
            if (x->reg >= 0)
                f->reg_init[x->reg] += m;
            else
                f->code[x->ins].aoff += m;
        }
        for (uint32_t i = 0; i < p->nfuncs; i++) {
            struct pfunc *f = &p->funcs[i];
            f->nsr = 0;
            for (int r = 0; r < SR_COUNT; r++)
                if (f->has_body && f->sreg[r] >= 0)
                    f->srlist[f->nsr++] = (uint8_t)r;
        }
        for (uint32_t i = 0; i < p->nfuncs; i++)
            if (p->funcs[i].is_entry)
                p->funcs[i].shared_bytes = p->funcs[i].shared_bytes
                                         ? m + p->funcs[i].shared_bytes : ps.shared_off;
    }
    free(ps.shfixes);
    for (size_t i = 0; i < ps.nsyms; i++)
        free(ps.syms[i].name);
    free(ps.syms);
    function_scratch_free(&ps);
    free(ps.labels);
    free(ps.fixups);
    return rc ? (rc == -ENOMEM ? PTX_ERR_OUT_OF_MEMORY : PTX_ERR_INVALID_PTX) : 0;
}
