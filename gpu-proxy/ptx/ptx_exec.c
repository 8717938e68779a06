/* ptx_exec.c - runs a parsed kernel over a grid on the host: blocks are shared out among host
 * threads; the threads of a block are interpreter states run round-robin until they reach a
 * barrier or a warp-collective instruction, which is then resolved for the block or warp.
 * Kernels the translator compiled (ptx_jit.c) run its code instead, with the helpers below. */
#include "ptx_internal.h"
#include "ptx_jit.h"

#include <errno.h>
#include <sched.h>
#include <fenv.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Generic-address windows for shared and local memory (global addresses are the zone's). */
#define SH_WIN 0xFE00000000000000ull
#define LO_WIN 0xFD00000000000000ull
#define WIN_SIZE (1ull << 40)
/* a cooperative launch's grid barrier workspace (%envreg1:%envreg2), in the global space */
#define COOP_WS 0xFC00000000000000ull
#define COOP_WS_SIZE 64u

#define MAX_CALL_DEPTH 512
#define MAX_LOCAL_STACK PTX_LOCAL_BYTES_MAX /* local memory per thread, all frames */
#define MAX_REG_STACK (4u << 20)          /* register bytes per thread, all frames */
#define MAX_PARAM_STACK (1u << 20)        /* parameter bytes per thread, all frames */
#define MAX_CALL_GROWTH (256ull << 20)    /* what calls may add, per block */
#define MAX_SHARED_PER_BLOCK (4u << 20)
#define MAX_BLOCK_STATE (1ull << 30)      /* host memory for one block's thread states */
#define TIME_SLICE 65536 /* instructions before a thread in a loop lets the others run */
/* A host thread looks at the cancel flag and the watchdog before each block and at least every
 * POLL_INTERVAL of work, instructions and charged host work together (checked at backward
 * branches, calls, thread starts and scheduling rounds). */
#define POLL_INTERVAL 16384
/* Host work that is not an instruction (zeroing, copying, allocating thread states; printf
 * formatting) counts toward the watchdog as one instruction per 2^CHARGE_SHIFT bytes. */
#define CHARGE_SHIFT 6

enum { TS_RUN = 0, TS_BAR, TS_COLL, TS_EXIT };

struct frame {
    const struct pfunc *fn;
    uint32_t ret_pc;
    uint32_t call;       /* caller's pcall index */
    size_t reg_base;
    size_t local_base;
    size_t local_prev;   /* caller's local top */
    size_t param_base;
};

struct thr {
    uint64_t *regs;
    const struct pfunc *fn;
    uint32_t pc;
    uint8_t state;
    uint8_t carry;
    uint8_t released;    /* may execute the lockstep access it waits at */
    uint32_t depth;
    struct frame *frames;
    size_t framecap;
    uint64_t *regstack;
    size_t regcap, regtop;
    uint8_t *local;
    size_t localcap, localtop;
    uint8_t *param;
    size_t paramcap, paramtop;
    uint32_t tid[3];
    uint32_t linear;
    uint32_t barval;
    uint32_t bar_id;     /* the barrier it waits at, and the thread count it named (0: all) */
    uint32_t bar_count;
};

struct launch_ctx {
    const struct ptx_program *prog;
    const struct ptx_kernel *kernel;
    const struct pfunc *kfn;
    const struct ptx_launch *l;
    uint64_t nblocks;
    uint32_t nthreads;
    uint32_t shared_size;
    uint32_t dyn_base;
    _Atomic uint64_t next_block;
    _Atomic int failed;
    uint64_t watchdog;
    const int *cancel;     /* never NULL: points to a zero when the launch is not cancellable */
    uint64_t allow;        /* host bytes one host thread's states may hold */
    uint64_t start_charge; /* watchdog charge for starting a thread (see CHARGE_SHIFT) */
    uint64_t printf_cap;   /* printf FIFO size */
    _Atomic uint64_t printf_used;
    _Atomic int printf_lost; /* the loss has been reported */
    _Alignas(8) uint8_t coop_ws[COOP_WS_SIZE]; /* cooperative: the grid barrier's counters */
    pthread_mutex_t lock;
    pthread_cond_t done;   /* signalled when the last pool helper finished */
    unsigned pending;      /* pool helpers still running (under lock) */
    int code;
    char err[320];
    ptx_jit_fn jit;        /* the kernel's translation, or NULL: interpreted */
    int jit_block;         /* the translation runs whole blocks (JIT_BLOCK, JIT_PHASES) */
    struct ptx_jit_info jit_info;
};

/* A host thread keeps its thread states and shared buffer between launches, so a stream of
 * small launches does not allocate every time (freed when the host thread ends, or after a
 * launch when they hold more than CACHE_MAX_BYTES). */
struct state_cache {
    struct thr *threads;
    size_t nthreads;       /* allocated and zero-initialised */
    uint8_t *shared;
    size_t shared_cap;
    uint64_t bytes;        /* everything above and what the threads' buffers hold */
    int at_rest;           /* kept between launches: its bytes count in g_pool.cached */
};

struct worker {
    struct launch_ctx *L;
    struct thr *threads;
    uint32_t nthreads;
    uint8_t *shared;
    struct state_cache *cache; /* where threads and shared come from */
    int cache_owned;           /* not the host thread's cache: free it after the launch */
    uint64_t cbase, csize;
    uint8_t *chost;
    uint64_t icount;
    uint64_t charged;     /* host work counted for the watchdog (see CHARGE_SHIFT) */
    uint64_t poll_at;     /* icount at which run_thread next polls (see POLL_INTERVAL) */
    uint32_t ctaid[3];
    uint32_t arrived[16]; /* bar.arrive arrivals not yet consumed, per barrier */
    uint64_t call_bytes;  /* stack bytes the block's calls have taken so far */
    int single;           /* run_thread executes one instruction (for translated code) */
    struct jit_gslot jit_gc[JIT_GSLOTS]; /* allocations translated code reaches directly */
    unsigned jit_gnext;
    uint64_t jit_slice;   /* instructions translated code ran since the thread was scheduled */
    uint64_t jit_lin;     /* block mode: the thread jit_slice counts for */
    struct jit_frame jit_frame;
    uint64_t *jit_spill;  /* phase mode: the threads' spill records (freed by worker_run) */
    size_t jit_spill_cap;
    uint64_t *jit_lregs;  /* phase mode: stand-in register files of a warp (in jit_spill) */
};

static _Atomic uint64_t g_icount;
static _Atomic uint64_t g_watchdog;
static _Atomic uint64_t g_translated;

static void default_printf_sink(void *ctx, const char *kernel, const char *text)
{
    (void)ctx;
    fprintf(stderr, "[kernel %s] %s", kernel, text);
}

static pthread_mutex_t g_printf_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*g_printf_sink)(void *, const char *, const char *) = default_printf_sink;
static void *g_printf_ctx;

void ptx_set_printf_sink(void (*sink)(void *ctx, const char *kernel, const char *text),
                         void *ctx)
{
    pthread_mutex_lock(&g_printf_lock);
    g_printf_sink = sink ? sink : default_printf_sink;
    g_printf_ctx = sink ? ctx : NULL;
    pthread_mutex_unlock(&g_printf_lock);
}

void ptx_set_watchdog(uint64_t max_instructions)
{
    atomic_store(&g_watchdog, max_instructions);
}

uint64_t ptx_launches_translated(void)
{
    return atomic_load(&g_translated);
}

uint64_t ptx_instructions_executed(void)
{
    return atomic_load(&g_icount);
}

/* ---- errors --------------------------------------------------------------------------- */

static int launch_fail(struct worker *w, const struct thr *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int launch_fail(struct worker *w, const struct thr *t, int code, const char *fmt, ...)
{
    struct launch_ctx *L = w->L;
    pthread_mutex_lock(&L->lock);
    if (!atomic_load(&L->failed)) {
        char msg[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        uint32_t line = 0;
        if (t && t->fn && t->pc < t->fn->ncode)
            line = t->fn->code[t->pc].line;
        snprintf(L->err, sizeof(L->err), "kernel %s: %s (block %u,%u,%u thread %u,%u,%u, "
                 "PTX line %u)", L->kernel->name, msg, w->ctaid[0], w->ctaid[1], w->ctaid[2],
                 t ? t->tid[0] : 0, t ? t->tid[1] : 0, t ? t->tid[2] : 0, line);
        L->code = code;
        atomic_store(&L->failed, 1);
    }
    pthread_mutex_unlock(&L->lock);
    return code;
}

/* The periodic check of a host thread: ends the launch when it was cancelled, when this host
 * thread's work (instructions, count of them not yet added to icount, and charged host work)
 * passed the watchdog, or returns the error when another host thread ended it; otherwise
 * sets when run_thread looks next and returns 0. */
__attribute__((noinline)) static int poll_launch(struct worker *w, const struct thr *t,
                                                 uint64_t count)
{
    struct launch_ctx *L = w->L;
    if (__atomic_load_n(L->cancel, __ATOMIC_RELAXED))
        return launch_fail(w, t, PTX_ERR_LAUNCH_FAILED, "launch cancelled");
    uint64_t work = w->icount + count + w->charged;
    if (L->watchdog && work > L->watchdog)
        return launch_fail(w, t, PTX_ERR_LAUNCH_FAILED, "watchdog: more than %llu instructions",
                           (unsigned long long)L->watchdog);
    if (atomic_load_explicit(&L->failed, memory_order_acquire)) /* L->code is set then */
        return L->code;
    uint64_t step = POLL_INTERVAL;
    if (L->watchdog && L->watchdog - work < step)
        step = L->watchdog - work + 1;
    w->poll_at = w->icount + count + step;
    /* A cooperative launch runs a host thread per block, usually more than there are cores,
     * and grid.sync() spins on the barrier's counters: give the core to the blocks that still
     * have to arrive rather than spin out the scheduler's whole time slice. */
    if (L->l->cooperative)
        sched_yield();
    return 0;
}

/* Counts host work other than instructions for the watchdog, and brings the next poll
 * closer by as much, so that polls come at least every POLL_INTERVAL of work. */
static inline void charge(struct worker *w, uint64_t units)
{
    w->charged += units;
    w->poll_at = w->poll_at > units ? w->poll_at - units : 0;
}

/* ---- value helpers -------------------------------------------------------------------- */

static const uint8_t TBITS[PT_COUNT] = {
    [PT_B8] = 8, [PT_B16] = 16, [PT_B32] = 32, [PT_B64] = 64,
    [PT_U8] = 8, [PT_U16] = 16, [PT_U32] = 32, [PT_U64] = 64,
    [PT_S8] = 8, [PT_S16] = 16, [PT_S32] = 32, [PT_S64] = 64,
    [PT_F16] = 16, [PT_F16X2] = 32, [PT_BF16] = 16, [PT_BF16X2] = 32, [PT_F32] = 32,
    [PT_F64] = 64,
    [PT_PRED] = 1,
};

/* Sign/zero extension from `bits` (0, for an instruction without a type, means 64). */
static inline int64_t sx(uint64_t v, unsigned bits)
{
    return bits >= 64 || bits == 0 ? (int64_t)v : (int64_t)(v << (64 - bits)) >> (64 - bits);
}

static inline uint64_t zx(uint64_t v, unsigned bits)
{
    return bits >= 64 || bits == 0 ? v : v & ((1ull << bits) - 1);
}

static inline uint64_t ext(uint64_t v, unsigned t)
{
    return pt_signed(t) ? (uint64_t)sx(v, TBITS[t]) : zx(v, TBITS[t]);
}

static inline float as_f(uint64_t v)
{
    uint32_t b = (uint32_t)v;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static inline uint64_t of_f(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static inline double as_d(uint64_t v)
{
    double d;
    memcpy(&d, &v, 8);
    return d;
}

static inline uint64_t of_d(double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    return v;
}

static inline float ftzf(float x)
{
    return fpclassify(x) == FP_SUBNORMAL ? copysignf(0.0f, x) : x;
}

float ptx_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            float f = ldexpf((float)man, -24);
            return sign ? -f : f;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t ptx_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u)
        return sign | 0x7e00;
    if (ax >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return sign | 0x7c00;
    if (ax < 0x33000001u) /* < 2^-25 (half the smallest subnormal) rounds to zero */
        return sign;
    float a;
    memcpy(&a, &ax, 4);
    if (ax < 0x38800000u) { /* subnormal half: quantum 2^-24 */
        float q = nearbyintf(a * 16777216.0f);
        return sign | (uint16_t)q;
    }
    uint32_t e = (ax >> 23) - 112;
    uint32_t m = ax & 0x7fffff;
    uint32_t hm = m >> 13, rest = m & 0x1fff;
    uint32_t h = (e << 10) | hm;
    if (rest > 0x1000 || (rest == 0x1000 && (hm & 1)))
        h++;
    return sign | (uint16_t)h;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t b = (uint32_t)h << 16;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static uint16_t float_to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((b >> 16) | 0x40); /* quiet NaN */
    b += 0x7fffu + ((b >> 16) & 1);
    return (uint16_t)(b >> 16);
}

/* One 16-bit lane of a half-precision type to float and back (f16 or bf16). */
static inline float lane_to_float(uint64_t v, int sh, unsigned t)
{
    uint16_t h = (uint16_t)(v >> sh);
    return (t == PT_BF16 || t == PT_BF16X2) ? bf16_to_float(h) : ptx_f16_to_f32(h);
}

static inline uint64_t lane_of_float(float f, int sh, unsigned t)
{
    return (uint64_t)((t == PT_BF16 || t == PT_BF16X2) ? float_to_bf16(f) : ptx_f32_to_f16(f))
           << sh;
}

static inline double to_double(uint64_t v, unsigned t)
{
    switch (t) {
    case PT_BF16: return bf16_to_float((uint16_t)v);
    case PT_F32: return as_f(v);
    case PT_F64: return as_d(v);
    case PT_F16: return ptx_f16_to_f32((uint16_t)v);
    default: return pt_signed(t) ? (double)sx(v, TBITS[t]) : (double)zx(v, TBITS[t]);
    }
}

static int set_round(int rnd)
{
    int old = fegetround();
    switch (rnd) {
    case RND_RZ: case RND_RZI: fesetround(FE_TOWARDZERO); break;
    case RND_RM: case RND_RMI: fesetround(FE_DOWNWARD); break;
    case RND_RP: case RND_RPI: fesetround(FE_UPWARD); break;
    default: fesetround(FE_TONEAREST); break;
    }
    return old;
}

/* Float arithmetic in a directed rounding mode (noinline + volatile keep it in the mode). */
enum { FOP_ADD, FOP_SUB, FOP_MUL, FOP_DIV, FOP_FMA, FOP_SQRT, FOP_RCP, FOP_CVT32 };

__attribute__((noinline)) static double fop_round(int fop, int rnd, int f32, double a, double b,
                                                  double c)
{
    int old = set_round(rnd);
    volatile double r;
    if (f32) {
        volatile float x = (float)a, y = (float)b, z = (float)c;
        switch (fop) {
        case FOP_ADD: r = x + y; break;
        case FOP_SUB: r = x - y; break;
        case FOP_MUL: r = x * y; break;
        case FOP_DIV: r = x / y; break;
        case FOP_FMA: r = fmaf(x, y, z); break;
        case FOP_SQRT: r = sqrtf(x); break;
        case FOP_RCP: r = 1.0f / x; break;
        default: { volatile double dd = a; volatile float ff = (float)dd; r = ff; } break;
        }
        volatile float rf = (float)r;
        r = rf;
    } else {
        volatile double x = a, y = b, z = c;
        switch (fop) {
        case FOP_ADD: r = x + y; break;
        case FOP_SUB: r = x - y; break;
        case FOP_MUL: r = x * y; break;
        case FOP_DIV: r = x / y; break;
        case FOP_FMA: r = fma(x, y, z); break;
        case FOP_SQRT: r = sqrt(x); break;
        case FOP_RCP: r = 1.0 / x; break;
        default: r = x; break;
        }
    }
    double out = r;
    fesetround(old);
    return out;
}

static inline int directed(int rnd)
{
    return rnd == RND_RZ || rnd == RND_RM || rnd == RND_RP;
}

static int cmp_eval(int cmp, uint64_t a, uint64_t b, unsigned t)
{
    if (pt_float(t)) {
        double x = to_double(a, t), y = to_double(b, t);
        int un = isnan(x) || isnan(y);
        switch (cmp) {
        case CMP_EQ: return !un && x == y;
        case CMP_NE: return !un && x != y;
        case CMP_LT: return !un && x < y;
        case CMP_LE: return !un && x <= y;
        case CMP_GT: return !un && x > y;
        case CMP_GE: return !un && x >= y;
        case CMP_EQU: return un || x == y;
        case CMP_NEU: return un || x != y;
        case CMP_LTU: return un || x < y;
        case CMP_LEU: return un || x <= y;
        case CMP_GTU: return un || x > y;
        case CMP_GEU: return un || x >= y;
        case CMP_NUM: return !un;
        case CMP_NAN: return un;
        default: return 0;
        }
    }
    unsigned bits = TBITS[t];
    if (pt_signed(t)) {
        int64_t x = sx(a, bits), y = sx(b, bits);
        switch (cmp) {
        case CMP_EQ: return x == y;
        case CMP_NE: return x != y;
        case CMP_LT: return x < y;
        case CMP_LE: return x <= y;
        case CMP_GT: return x > y;
        case CMP_GE: return x >= y;
        default: break;
        }
    }
    uint64_t x = zx(a, bits), y = zx(b, bits);
    switch (cmp) {
    case CMP_EQ: return x == y;
    case CMP_NE: return x != y;
    case CMP_LT: case CMP_LO: return x < y;
    case CMP_LE: case CMP_LS: return x <= y;
    case CMP_GT: case CMP_HI: return x > y;
    case CMP_GE: case CMP_HS: return x >= y;
    default: return 0;
    }
}

static inline int bop(int op, int a, int b)
{
    switch (op) {
    case BOP_AND: return a && b;
    case BOP_OR: return a || b;
    case BOP_XOR: return a != b;
    default: return a;
    }
}

/* float -> integer with PTX saturation (NaN -> 0) */
static uint64_t f2i(double v, int rnd, unsigned dt)
{
    switch (rnd) {
    case RND_RZI: case RND_RZ: v = trunc(v); break;
    case RND_RMI: case RND_RM: v = floor(v); break;
    case RND_RPI: case RND_RP: v = ceil(v); break;
    default: v = nearbyint(v); break;
    }
    if (isnan(v))
        return 0;
    unsigned bits = TBITS[dt];
    if (pt_signed(dt)) {
        double lo = -ldexp(1.0, (int)bits - 1), hi = ldexp(1.0, (int)bits - 1);
        if (v < lo)
            return zx(1ull << (bits - 1), bits) | (bits == 64 ? 0 : zx(~0ull << (bits - 1), bits));
        if (v >= hi)
            return bits == 64 ? 0x7fffffffffffffffull : (1ull << (bits - 1)) - 1;
        return zx((uint64_t)(int64_t)v, bits);
    }
    double hi = ldexp(1.0, (int)bits);
    if (v <= 0)
        return 0;
    if (v >= hi)
        return bits == 64 ? ~0ull : (1ull << bits) - 1;
    return (uint64_t)v;
}

static uint64_t int_sat(uint64_t v, unsigned st, unsigned dt)
{
    /* clamp value of source type st to the range of dt */
    unsigned db = TBITS[dt];
    if (pt_signed(st)) {
        int64_t x = sx(v, TBITS[st]);
        if (pt_signed(dt)) {
            int64_t lo = db == 64 ? INT64_MIN : -(int64_t)(1ull << (db - 1));
            int64_t hi = db == 64 ? INT64_MAX : (int64_t)((1ull << (db - 1)) - 1);
            return (uint64_t)(x < lo ? lo : x > hi ? hi : x);
        }
        uint64_t hi = db == 64 ? ~0ull : (1ull << db) - 1;
        return x < 0 ? 0 : (uint64_t)x > hi ? hi : (uint64_t)x;
    }
    uint64_t x = zx(v, TBITS[st]);
    uint64_t hi = pt_signed(dt) ? (db == 64 ? (uint64_t)INT64_MAX : (1ull << (db - 1)) - 1)
                                : (db == 64 ? ~0ull : (1ull << db) - 1);
    return x > hi ? hi : x;
}

static uint64_t do_cvt(const struct pins *in, uint64_t v, int *bad)
{
    unsigned dt = in->type, st = in->type2;
    int rnd = in->mod;
    int ftz = in->flags & F_FTZ, sat = in->flags & F_SAT;
    if (!pt_float(dt) && !pt_float(st)) {
        if (sat)
            return int_sat(v, st, dt);
        /* narrowing chops to the destination, widening extends as the source says */
        return TBITS[dt] < TBITS[st] ? ext(v, dt) : ext(v, st);
    }
    if (!pt_float(dt)) { /* float -> int */
        double x = to_double(v, st);
        if (ftz && st == PT_F32)
            x = ftzf((float)x);
        return f2i(x, rnd, dt);
    }
    if (dt == PT_F16X2 || dt == PT_BF16X2 || st == PT_F16X2 || st == PT_BF16X2) {
        *bad = 1;
        return 0;
    }
    double x;
    if (pt_float(st)) {
        x = to_double(v, st);
        if (ftz && st == PT_F32)
            x = ftzf((float)x);
        if (rnd == RND_RNI) x = nearbyint(x);
        else if (rnd == RND_RZI) x = trunc(x);
        else if (rnd == RND_RMI) x = floor(x);
        else if (rnd == RND_RPI) x = ceil(x);
    } else {
        /* int -> float */
        if (dt == PT_F32 || dt == PT_F64) {
            int64_t s = sx(v, TBITS[st]);
            uint64_t u = zx(v, TBITS[st]);
            if (directed(rnd)) {
                int old = set_round(rnd);
                volatile double r;
                if (dt == PT_F32) {
                    volatile float f = pt_signed(st) ? (float)s : (float)u;
                    r = f;
                } else {
                    r = pt_signed(st) ? (double)s : (double)u;
                }
                x = r;
                fesetround(old);
            } else if (dt == PT_F32) {
                x = pt_signed(st) ? (float)s : (float)u;
            } else {
                x = pt_signed(st) ? (double)s : (double)u;
            }
        } else {
            x = to_double(v, st);
        }
    }
    uint64_t out;
    if (dt == PT_F32) {
        float f;
        if (directed(rnd) && st == PT_F64)
            f = (float)fop_round(FOP_CVT32, rnd, 1, x, 0, 0);
        else
            f = (float)x;
        if (ftz)
            f = ftzf(f);
        if (sat)
            f = isnan(f) ? 0.0f : f < 0.0f ? 0.0f : f > 1.0f ? 1.0f : f;
        out = of_f(f);
    } else if (dt == PT_F64) {
        if (sat)
            x = isnan(x) ? 0.0 : x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x;
        out = of_d(x);
    } else { /* f16, bf16 */
        if (sat)
            x = isnan(x) ? 0.0 : x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x;
        if (directed(rnd)) {
            *bad = 1;
            return 0;
        }
        /* via float: exact for f16 sources; a double rounds twice (rare in nvcc output) */
        out = lane_of_float((float)x, 0, dt);
    }
    return out;
}

/* ---- memory --------------------------------------------------------------------------- */

static inline uint8_t *global_ptr(struct worker *w, uint64_t addr, uint64_t len)
{
    uint64_t off = addr - w->cbase;
    if (addr >= w->cbase && off <= w->csize && len <= w->csize - off)
        return w->chost + off;
    const struct ptx_memory *m = w->L->l->mem;
    uint64_t base = 0, size = 0;
    if (addr + len < addr)
        return NULL;
    if (addr - COOP_WS < COOP_WS_SIZE && w->L->l->cooperative)
        return len <= COOP_WS_SIZE - (addr - COOP_WS) ? w->L->coop_ws + (addr - COOP_WS) : NULL;
    void *h = m->resolve(m->ctx, addr, len, &base, &size);
    if (!h)
        return NULL;
    if (base <= addr && addr + len <= base + size && base + size >= base) {
        w->cbase = base;
        w->csize = size;
        w->chost = (uint8_t *)h - (addr - base);
    }
    return h;
}

/* The common cases (shared memory, the cached global allocation) inline; NULL: ask mem_ptr. */
static inline uint8_t *fast_ptr(struct worker *w, const struct thr *t, int space, uint64_t a,
                               uint64_t len)
{
    if (space == SP_PARAM) {
        const struct frame *f = &t->frames[t->depth - 1];
        uint64_t size = f->fn->frame_param;
        return a <= size && len <= size - a ? t->param + f->param_base + a : NULL;
    }
    if (space == SP_SHARED) {
        uint64_t size = w->L->shared_size;
        return a <= size && len <= size - a ? w->shared + a : NULL;
    }
    if (space == SP_GLOBAL) {
        uint64_t off = a - w->cbase;
        if (a >= w->cbase && off <= w->csize && len <= w->csize - off)
            return w->chost + off;
    }
    return NULL;
}

/* Host address of [addr, addr+len) in the given space for thread t, or NULL (error set). */
static uint8_t *mem_ptr(struct worker *w, struct thr *t, int space, uint64_t addr,
                        uint64_t len)
{
    switch (space) {
    case SP_GENERIC:
        if (addr - SH_WIN < WIN_SIZE) {
            addr -= SH_WIN;
            goto shared;
        }
        if (addr - LO_WIN < WIN_SIZE) {
            addr -= LO_WIN;
            goto local;
        }
        /* fall through */
    case SP_GLOBAL:
    case SP_CONST: {
        uint8_t *p = global_ptr(w, addr, len);
        if (!p)
            launch_fail(w, t, PTX_ERR_ILLEGAL_ADDRESS, "illegal address 0x%llx (%llu bytes)",
                        (unsigned long long)addr, (unsigned long long)len);
        return p;
    }
    case SP_SHARED:
    shared:
        if (addr > w->L->shared_size || len > w->L->shared_size - addr) {
            launch_fail(w, t, PTX_ERR_ILLEGAL_ADDRESS,
                        "shared memory access at offset 0x%llx (%llu bytes) outside %u bytes",
                        (unsigned long long)addr, (unsigned long long)len, w->L->shared_size);
            return NULL;
        }
        return w->shared + addr;
    case SP_LOCAL:
    local:
        if (addr > t->localtop || len > t->localtop - addr) {
            launch_fail(w, t, PTX_ERR_ILLEGAL_ADDRESS,
                        "local memory access at 0x%llx (%llu bytes) outside the stack",
                        (unsigned long long)addr, (unsigned long long)len);
            return NULL;
        }
        return t->local + addr;
    case SP_PARAM: {
        const struct frame *f = &t->frames[t->depth - 1];
        if (addr > f->fn->frame_param || len > f->fn->frame_param - addr) {
            launch_fail(w, t, PTX_ERR_ILLEGAL_ADDRESS,
                        "parameter access at offset %llu (%llu bytes) outside %u bytes",
                        (unsigned long long)addr, (unsigned long long)len, f->fn->frame_param);
            return NULL;
        }
        return t->param + f->param_base + addr;
    }
    default:
        launch_fail(w, t, PTX_ERR_NOT_SUPPORTED, "memory access in an unknown state space");
        return NULL;
    }
}

/* ---- thread stacks -------------------------------------------------------------------- */

/* Grows one of a worker's state buffers to at least `need` elements within the host thread's
 * share of the launch's host memory budget: with `slack` (call stacks) to twice its size when
 * that fits, else to exactly `need` (what the launch sized its host threads by). The growth is
 * charged to the watchdog. 0, -E2BIG (over the budget) or -ENOMEM. */
static int grow_slow(struct worker *w, void **buf, size_t *cap, size_t need, size_t elem,
                     int slack)
{
    struct state_cache *c = w->cache;
    uint64_t allow = w->L->allow;
    size_t nc = slack && *cap * 2 > need ? *cap * 2 : need;
    if (c->bytes + (uint64_t)(nc - *cap) * elem > allow)
        nc = need;
    uint64_t add = (uint64_t)(nc - *cap) * elem;
    if (c->bytes + add > allow)
        return -E2BIG;
    void *n = realloc(*buf, nc * elem);
    if (!n)
        return -ENOMEM;
    *buf = n;
    *cap = nc;
    c->bytes += add;
    charge(w, add >> CHARGE_SHIFT);
    return 0;
}

static inline int grow(struct worker *w, void **buf, size_t *cap, size_t need, size_t elem,
                       int slack)
{
    return need <= *cap ? 0 : grow_slow(w, buf, cap, need, elem, slack);
}

/* Ends the launch for a failed grow(). */
static int grow_fail(struct worker *w, const struct thr *t, int e, const char *what)
{
    if (e == -E2BIG)
        return launch_fail(w, t, PTX_ERR_LAUNCH_OUT_OF_RESOURCES, "%s would take this host "
                           "thread past its %llu bytes of the launch's host memory budget",
                           what, (unsigned long long)w->L->allow);
    return launch_fail(w, t, PTX_ERR_OUT_OF_MEMORY, "out of host memory for %s", what);
}

static void fill_sregs(struct worker *w, struct thr *t, const struct pfunc *fn, uint64_t *regs)
{
    const struct ptx_launch *l = w->L->l;
    for (unsigned k = 0; k < fn->nsr; k++) {
        int i = fn->srlist[k];
        int32_t r = fn->sreg[i];
        uint32_t lane = t->linear & 31;
        uint64_t v = 0;
        switch (i) {
        case SR_TID_X: v = t->tid[0]; break;
        case SR_TID_Y: v = t->tid[1]; break;
        case SR_TID_Z: v = t->tid[2]; break;
        case SR_NTID_X: v = l->block[0]; break;
        case SR_NTID_Y: v = l->block[1]; break;
        case SR_NTID_Z: v = l->block[2]; break;
        case SR_CTAID_X: v = w->ctaid[0]; break;
        case SR_CTAID_Y: v = w->ctaid[1]; break;
        case SR_CTAID_Z: v = w->ctaid[2]; break;
        case SR_NCTAID_X: v = l->grid[0]; break;
        case SR_NCTAID_Y: v = l->grid[1]; break;
        case SR_NCTAID_Z: v = l->grid[2]; break;
        case SR_LANEID: v = lane; break;
        case SR_WARPID: v = t->linear / 32; break;
        case SR_NWARPID: v = (w->L->nthreads + 31) / 32; break;
        case SR_LANEMASK_EQ: v = 1u << lane; break;
        case SR_LANEMASK_LT: v = (1u << lane) - 1; break;
        case SR_LANEMASK_LE: v = (uint32_t)((2ull << lane) - 1); break;
        case SR_LANEMASK_GT: v = (uint32_t)~((2ull << lane) - 1); break;
        case SR_LANEMASK_GE: v = (uint32_t)~((1u << lane) - 1); break;
        case SR_DYNSMEM: v = l->dynamic_shared; break;
        case SR_TOTALSMEM: v = w->L->shared_size; break;
        case SR_NSMID: v = 1; break;
        case SR_CLOCK: case SR_CLOCK64: v = w->icount; break;
        case SR_DYNBASE: v = w->L->dyn_base; break;
        case SR_ENVREG1: v = l->cooperative ? (uint32_t)(COOP_WS >> 32) : 0; break;
        case SR_ENVREG2: v = l->cooperative ? (uint32_t)COOP_WS : 0; break;
        default: v = 0; break;
        }
        regs[r] = v;
    }
}

static int thread_start(struct worker *w, struct thr *t)
{
    struct launch_ctx *L = w->L;
    const struct pfunc *k = L->kfn;
    int e;
    if ((e = grow(w, (void **)&t->regstack, &t->regcap, k->nregs + 1, sizeof(uint64_t), 0)) ||
        (e = grow(w, (void **)&t->param, &t->paramcap, k->frame_param + 1, 1, 0)) ||
        (e = grow(w, (void **)&t->local, &t->localcap, (size_t)k->local_bytes + 1, 1, 0)) ||
        (e = grow(w, (void **)&t->frames, &t->framecap, 1, sizeof(struct frame), 0)))
        return grow_fail(w, t, e, "the block's threads");
    charge(w, L->start_charge);
    memcpy(t->regstack, k->reg_init, k->nregs * sizeof(uint64_t));
    t->regtop = k->nregs;
    memset(t->param, 0, k->frame_param);
    if (k->param_bytes)
        memcpy(t->param, L->l->params, k->param_bytes);
    t->paramtop = k->frame_param;
    t->localtop = k->local_bytes;
    memset(t->local, 0, k->local_bytes); /* never show a previous user's bytes */
    t->frames[0].fn = k;
    t->frames[0].reg_base = 0;
    t->frames[0].local_base = 0;
    t->frames[0].local_prev = 0;
    t->frames[0].param_base = 0;
    t->depth = 1;
    t->regs = t->regstack;
    t->fn = k;
    t->pc = 0;
    t->state = TS_RUN;
    t->carry = 0;
    t->released = 0;
    t->barval = 0;
    fill_sregs(w, t, k, t->regs);
    return 0;
}

/* Reads a NUL-terminated string at a generic address (at most max-1 bytes). */
static int read_cstr(struct worker *w, struct thr *t, uint64_t addr, char *buf, size_t max)
{
    size_t n = 0;
    if (!addr) {
        snprintf(buf, max, "(null)");
        return 0;
    }
    while (n + 1 < max) {
        uint8_t *p = mem_ptr(w, t, SP_GENERIC, addr + n, 1);
        if (!p)
            return -EFAULT;
        if (!*p)
            break;
        buf[n++] = (char)*p;
    }
    buf[n] = 0;
    return 0;
}

/* Reads the flags, field width and precision of a printf conversion at *fp (just after its
 * '%') into spec, '%' first, and moves *fp past them. Repeated flags are kept once, and widths
 * and precisions above PTX_PRINTF_FIELD_MAX are taken as PTX_PRINTF_FIELD_MAX: the C
 * library's formatting takes time and memory in proportion to them. Writes at most 14 bytes
 * with the NUL (the caller appends up to three characters: "ll" and the conversion). */
static size_t printf_spec(const char **fp, char *spec)
{
    const char *f = *fp;
    size_t sl = 0;
    spec[sl++] = '%';
    for (; *f && strchr("-+ #0", *f); f++)
        if (!memchr(spec + 1, *f, sl - 1))
            spec[sl++] = *f;
    for (int part = 0; part < 2; part++) {
        if (part == 1) {
            if (*f != '.')
                break;
            spec[sl++] = '.';
            f++;
        }
        if (*f < '0' || *f > '9')
            continue;
        unsigned v = 0;
        for (; *f >= '0' && *f <= '9'; f++)
            if (v <= PTX_PRINTF_FIELD_MAX)
                v = v * 10 + (unsigned)(*f - '0');
        if (v > PTX_PRINTF_FIELD_MAX)
            v = PTX_PRINTF_FIELD_MAX;
        sl += (size_t)snprintf(spec + sl, 5, "%u", v);
    }
    spec[sl] = 0;
    *fp = f;
    return sl;
}

/* Hands one printf call's text to the sink if the launch's printf FIFO has room for it; the
 * first text that does not fit is replaced by PTX_PRINTF_LOST_NOTICE, later ones vanish. */
static void printf_emit(struct worker *w, const char *out, size_t len)
{
    struct launch_ctx *L = w->L;
    uint64_t used = atomic_fetch_add_explicit(&L->printf_used, len, memory_order_relaxed);
    const char *text = out;
    if (used + len > L->printf_cap) {
        if (atomic_exchange_explicit(&L->printf_lost, 1, memory_order_relaxed))
            return;
        text = PTX_PRINTF_LOST_NOTICE;
    }
    pthread_mutex_lock(&g_printf_lock);
    g_printf_sink(g_printf_ctx, L->kernel->name, text);
    pthread_mutex_unlock(&g_printf_lock);
}

/* Device printf: formats like the CUDA runtime does, from the packed argument buffer, in
 * bounded time and memory (see printf_spec; the text is cut at PTX_PRINTF_CALL_MAX bytes). */
static int builtin_vprintf(struct worker *w, struct thr *t, uint64_t fmtaddr, uint64_t args,
                           int32_t *nargs)
{
    char fmt[1024], out[PTX_PRINTF_CALL_MAX + 1], spec[24], sarg[1024];
    size_t o = 0, read = 0;
    uint64_t off = 0;
    *nargs = 0;
    if (read_cstr(w, t, fmtaddr, fmt, sizeof(fmt)))
        return -EFAULT;
    read += strlen(fmt);
    for (const char *f = fmt; *f && o + 1 < sizeof(out);) {
        if (*f != '%') {
            out[o++] = *f++;
            continue;
        }
        if (f[1] == '%') {
            out[o++] = '%';
            f += 2;
            continue;
        }
        f++;
        size_t sl = printf_spec(&f, spec);
        int longs = 0;
        while (*f && strchr("hlLzjt", *f)) {
            if (*f == 'l' || *f == 'z' || *f == 'j' || *f == 't' || *f == 'L')
                longs++;
            f++;
        }
        char conv = *f;
        if (!conv)
            break;
        f++;
        unsigned size = 4;
        if (strchr("fFeEgGaA", conv) || conv == 's' || conv == 'p' || longs)
            size = 8;
        if (!strchr("diouxXcfFeEgGaAsp", conv)) {
            o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%c", spec, conv);
            if (o >= sizeof(out))
                o = sizeof(out) - 1;
            continue;
        }
        off = (off + size - 1) / size * size;
        uint8_t *p = mem_ptr(w, t, SP_GENERIC, args + off, size);
        if (!p)
            return -EFAULT;
        uint64_t v = 0;
        memcpy(&v, p, size);
        off += size;
        (*nargs)++;
        int n;
        if (strchr("fFeEgGaA", conv)) {
            spec[sl++] = conv;
            spec[sl] = 0;
            n = snprintf(out + o, sizeof(out) - o, spec, as_d(v));
        } else if (conv == 's') {
            if (read_cstr(w, t, v, sarg, sizeof(sarg)))
                return -EFAULT;
            read += strlen(sarg);
            spec[sl++] = 's';
            spec[sl] = 0;
            n = snprintf(out + o, sizeof(out) - o, spec, sarg);
        } else if (conv == 'p') {
            spec[sl++] = 'p';
            spec[sl] = 0;
            n = snprintf(out + o, sizeof(out) - o, spec, (void *)(uintptr_t)v);
        } else if (conv == 'c') {
            spec[sl++] = 'c';
            spec[sl] = 0;
            n = snprintf(out + o, sizeof(out) - o, spec, (int)(uint8_t)v);
        } else {
            spec[sl++] = 'l';
            spec[sl++] = 'l';
            spec[sl++] = conv;
            spec[sl] = 0;
            int sgn = conv == 'd' || conv == 'i';
            if (size == 4)
                v = sgn ? (uint64_t)(int64_t)(int32_t)v : (uint32_t)v;
            n = sgn ? snprintf(out + o, sizeof(out) - o, spec, (long long)v)
                    : snprintf(out + o, sizeof(out) - o, spec, (unsigned long long)v);
        }
        if (n > 0)
            o += (size_t)n;
        if (o >= sizeof(out))
            o = sizeof(out) - 1;
    }
    out[o] = 0;
    /* measured: a byte read one by one through the memory checks, or formatted, costs about
     * as much as an instruction */
    charge(w, 64 + read + o);
    printf_emit(w, out, o);
    return 0;
}

/* Device-side malloc(size) and free(ptr) from the launch's heap; the result, if any, is
 * written to the call's return parameter. */
static int builtin_heap(struct worker *w, struct thr *t, const struct pfunc *fn,
                        const struct pcall *c, uint64_t arg)
{
    const struct frame *cf = &t->frames[t->depth - 1];
    struct ptx_heap *h = w->L->l->heap;
    if (!strcmp(fn->name, "free")) {
        if (arg && (!h || ptx_heap_free(h, arg)))
            return launch_fail(w, t, PTX_ERR_LAUNCH_FAILED, "free(0x%llx): not a block from "
                               "the device heap", (unsigned long long)arg);
        return 0;
    }
    uint64_t p = h ? ptx_heap_malloc(h, arg) : 0;
    if (c->nrets == 1 && (uint64_t)c->ret_off[0] + 8 <= cf->fn->frame_param)
        memcpy(t->param + cf->param_base + c->ret_off[0], &p, 8);
    return 0;
}

/* Functions the CUDA runtime provides without PTX: vprintf, __assertfail, malloc and free.
 * Returns 1 when the call was handled (0: not a builtin), or an error code through *rc. */
static int call_builtin(struct worker *w, struct thr *t, const struct pfunc *fn,
                        const struct pcall *c, int *rc)
{
    const struct frame *cf = &t->frames[t->depth - 1];
    const struct pfunc *caller = cf->fn;
    uint64_t a[5] = {0};
    if (strcmp(fn->name, "vprintf") && strcmp(fn->name, "__assertfail") &&
        strcmp(fn->name, "malloc") && strcmp(fn->name, "free"))
        return 0;
    for (uint32_t i = 0; i < c->nargs && i < 5 && i < fn->nparams; i++) {
        uint32_t sz = fn->params[i].size > 8 ? 8 : fn->params[i].size;
        if ((uint64_t)c->arg_off[i] + sz > caller->frame_param) {
            *rc = launch_fail(w, t, PTX_ERR_INVALID_PTX, "call argument out of range");
            return 1;
        }
        memcpy(&a[i], t->param + cf->param_base + c->arg_off[i], sz);
    }
    if (!strcmp(fn->name, "malloc") || !strcmp(fn->name, "free")) {
        *rc = builtin_heap(w, t, fn, c, a[0]);
        if (!*rc)
            t->pc++;
        return 1;
    }
    if (!strcmp(fn->name, "vprintf")) {
        int32_t n;
        if (builtin_vprintf(w, t, a[0], a[1], &n)) {
            *rc = w->L->code;
            return 1;
        }
        if (c->nrets == 1 && (uint64_t)c->ret_off[0] + 4 <= caller->frame_param)
            memcpy(t->param + cf->param_base + c->ret_off[0], &n, 4);
        t->pc++;
        *rc = 0;
        return 1;
    }
    char msg[256], file[256], func[128];
    if (read_cstr(w, t, a[0], msg, sizeof(msg)) || read_cstr(w, t, a[1], file, sizeof(file)) ||
        read_cstr(w, t, a[3], func, sizeof(func))) {
        *rc = w->L->code;
        return 1;
    }
    *rc = launch_fail(w, t, PTX_ERR_ASSERT, "device assertion failed: %s (%s:%u, %s)", msg,
                      file, (unsigned)a[2], func);
    return 1;
}

static int do_call(struct worker *w, struct thr *t, const struct pins *in)
{
    const struct ptx_program *prog = w->L->prog;
    const struct pfunc *caller = t->fn;
    const struct pcall *c = &caller->calls[in->target];
    const struct pfunc *fn = &prog->funcs[c->func];
    if (!fn->has_body) {
        int rc;
        if (call_builtin(w, t, fn, c, &rc))
            return rc;
        return launch_fail(w, t, PTX_ERR_NOT_SUPPORTED, "call to function '%s', which has no "
                           "PTX body (not supported)", fn->name);
    }
    if (t->depth >= MAX_CALL_DEPTH)
        return launch_fail(w, t, PTX_ERR_LAUNCH_FAILED, "call stack overflow");
    size_t reg_base = t->regtop;
    size_t la = fn->local_align ? fn->local_align : 1;
    size_t local_base = (t->localtop + la - 1) / la * la;
    size_t param_base = (t->paramtop + 15) & ~(size_t)15;
    if (local_base + fn->local_bytes > MAX_LOCAL_STACK ||
        (reg_base + fn->nregs) * sizeof(uint64_t) > MAX_REG_STACK ||
        param_base + fn->frame_param > MAX_PARAM_STACK)
        return launch_fail(w, t, PTX_ERR_LAUNCH_FAILED, "call stack overflow (calling %s)",
                           fn->name);
    /* every thread of a block may recurse: bound what the block as a whole takes */
    w->call_bytes += (uint64_t)fn->nregs * 8 + fn->local_bytes + fn->frame_param;
    if (w->call_bytes > MAX_CALL_GROWTH)
        return launch_fail(w, t, PTX_ERR_LAUNCH_OUT_OF_RESOURCES, "the block's calls need more "
                           "than %llu MiB of stack", (unsigned long long)(MAX_CALL_GROWTH >> 20));
    int e;
    if ((e = grow(w, (void **)&t->regstack, &t->regcap, reg_base + fn->nregs,
                  sizeof(uint64_t), 1)) ||
        (e = grow(w, (void **)&t->local, &t->localcap, local_base + fn->local_bytes + 1, 1,
                  1)) ||
        (e = grow(w, (void **)&t->param, &t->paramcap, param_base + fn->frame_param + 1, 1,
                  1)) ||
        (e = grow(w, (void **)&t->frames, &t->framecap, t->depth + 1, sizeof(struct frame),
                  1)))
        return grow_fail(w, t, e, "a call");
    charge(w, ((uint64_t)fn->nregs * 8 + fn->frame_param + local_base + fn->local_bytes -
               t->localtop) >> CHARGE_SHIFT);
    const struct frame *cf = &t->frames[t->depth - 1];
    uint8_t *cp = t->param + cf->param_base;
    uint8_t *np = t->param + param_base;
    memset(np, 0, fn->frame_param);
    memset(t->local + t->localtop, 0, local_base + fn->local_bytes - t->localtop);
    if (c->nargs != fn->nparams)
        return launch_fail(w, t, PTX_ERR_INVALID_PTX, "call to '%s' with %u arguments, "
                           "expected %u", fn->name, c->nargs, fn->nparams);
    for (uint32_t i = 0; i < c->nargs; i++) {
        uint32_t sz = fn->params[i].size;
        if ((uint64_t)c->arg_off[i] + sz > caller->frame_param)
            return launch_fail(w, t, PTX_ERR_INVALID_PTX, "call argument out of range");
        memcpy(np + fn->params[i].offset, cp + c->arg_off[i], sz);
    }
    struct frame *f = &t->frames[t->depth];
    f->fn = fn;
    f->ret_pc = t->pc + 1;
    f->call = (uint32_t)in->target;
    f->reg_base = reg_base;
    f->local_base = local_base;
    f->local_prev = t->localtop;
    f->param_base = param_base;
    t->depth++;
    t->regtop = reg_base + fn->nregs;
    t->localtop = local_base + fn->local_bytes;
    t->paramtop = param_base + fn->frame_param;
    t->regs = t->regstack + reg_base;
    memcpy(t->regs, fn->reg_init, fn->nregs * sizeof(uint64_t));
    fill_sregs(w, t, fn, t->regs);
    t->fn = fn;
    t->pc = 0;
    return 0;
}

/* Returns 1 when the thread's kernel frame returned (the thread exits). */
static int do_ret(struct worker *w, struct thr *t)
{
    if (t->depth <= 1) {
        t->state = TS_EXIT;
        return 1;
    }
    const struct frame *f = &t->frames[t->depth - 1];
    const struct frame *cf = &t->frames[t->depth - 2];
    const struct pfunc *fn = f->fn;
    const struct pfunc *caller = cf->fn;
    const struct pcall *c = &caller->calls[f->call];
    for (uint32_t i = 0; i < c->nrets && i < fn->nrets; i++) {
        uint32_t sz = fn->rets[i].size;
        if ((uint64_t)c->ret_off[i] + sz > caller->frame_param) {
            launch_fail(w, t, PTX_ERR_INVALID_PTX, "call return value out of range");
            return 1;
        }
        memcpy(t->param + cf->param_base + c->ret_off[i],
               t->param + f->param_base + fn->rets[i].offset, sz);
    }
    uint64_t frame_bytes = (uint64_t)fn->nregs * 8 + fn->local_bytes + fn->frame_param;
    w->call_bytes -= frame_bytes < w->call_bytes ? frame_bytes : w->call_bytes;
    t->regtop = f->reg_base;
    t->localtop = f->local_prev;
    t->paramtop = f->param_base;
    t->pc = f->ret_pc;
    t->depth--;
    t->fn = caller;
    t->regs = t->regstack + cf->reg_base;
    return 0;
}

/* ---- atomics -------------------------------------------------------------------------- */

static uint64_t atom_apply(int aop, unsigned t, uint64_t old, uint64_t v, uint64_t c)
{
    unsigned bits = TBITS[t];
    switch (aop) {
    case ATOM_ADD:
        if (t == PT_F32)
            return of_f(as_f(old) + as_f(v));
        if (t == PT_F64)
            return of_d(as_d(old) + as_d(v));
        return zx(old + v, bits);
    case ATOM_MIN:
        if (pt_signed(t))
            return sx(old, bits) < sx(v, bits) ? old : zx(v, bits);
        if (t == PT_F32)
            return of_f(fminf(as_f(old), as_f(v)));
        return zx(old, bits) < zx(v, bits) ? old : zx(v, bits);
    case ATOM_MAX:
        if (pt_signed(t))
            return sx(old, bits) > sx(v, bits) ? old : zx(v, bits);
        if (t == PT_F32)
            return of_f(fmaxf(as_f(old), as_f(v)));
        return zx(old, bits) > zx(v, bits) ? old : zx(v, bits);
    case ATOM_INC:
        return zx(old, bits) >= zx(v, bits) ? 0 : zx(old + 1, bits);
    case ATOM_DEC:
        return (zx(old, bits) == 0 || zx(old, bits) > zx(v, bits)) ? zx(v, bits)
                                                                   : zx(old - 1, bits);
    case ATOM_CAS:
        return zx(old, bits) == zx(v, bits) ? zx(c, bits) : old;
    case ATOM_EXCH:
        return zx(v, bits);
    case ATOM_AND: return old & v;
    case ATOM_OR: return old | v;
    case ATOM_XOR: return zx(old ^ v, bits);
    default: return old;
    }
}

static int do_atom(struct worker *w, struct thr *t, const struct pins *in, uint64_t addr,
                   uint64_t *result)
{
    unsigned bits = TBITS[in->type];
    unsigned size = bits / 8;
    if (size != 4 && size != 8)
        return launch_fail(w, t, PTX_ERR_NOT_SUPPORTED, "%s of %u bits not supported",
                           ptx_op_names[in->op], bits);
    if (addr % size)
        return launch_fail(w, t, PTX_ERR_LAUNCH_FAILED, "misaligned atomic address 0x%llx",
                           (unsigned long long)addr);
    uint8_t *p = mem_ptr(w, t, in->space, addr, size);
    if (!p)
        return w->L->code;
    uint64_t v = t->regs[in->s[0]];
    uint64_t c = in->mod == ATOM_CAS ? t->regs[in->s[1]] : 0;
    if (size == 4) {
        uint32_t *q = (uint32_t *)p;
        uint32_t old = __atomic_load_n(q, __ATOMIC_RELAXED);
        uint32_t nv;
        do {
            nv = (uint32_t)atom_apply(in->mod, in->type, old, v, c);
        } while (!__atomic_compare_exchange_n(q, &old, nv, 1, __ATOMIC_SEQ_CST,
                                              __ATOMIC_RELAXED));
        *result = old;
    } else {
        uint64_t *q = (uint64_t *)p;
        uint64_t old = __atomic_load_n(q, __ATOMIC_RELAXED);
        uint64_t nv;
        do {
            nv = atom_apply(in->mod, in->type, old, v, c);
        } while (!__atomic_compare_exchange_n(q, &old, nv, 1, __ATOMIC_SEQ_CST,
                                              __ATOMIC_RELAXED));
        *result = old;
    }
    return 0;
}

/* ---- the interpreter ------------------------------------------------------------------ */

static inline uint64_t addr_of(const struct thr *t, const struct pins *in)
{
    uint64_t a = (uint64_t)in->aoff;
    if (in->areg >= 0) {
        uint64_t r = t->regs[in->areg];
        a += (in->flags & F_A32) ? (uint32_t)r : r;
    }
    if (in->flags & F_ALOCAL) {
        a += t->frames[t->depth - 1].local_base;
        if (in->space == SP_GENERIC)
            a += LO_WIN;
    }
    return a;
}

static int unsupported(struct worker *w, struct thr *t, const struct pins *in)
{
    const char *what = in->op == OP_unsupported && in->text ? in->text : ptx_op_names[in->op];
    return launch_fail(w, t, PTX_ERR_NOT_SUPPORTED, "instruction '%s' (type %u) is not "
                       "supported by the PTX interpreter", what, in->type);
}

static inline uint64_t mulhi(uint64_t a, uint64_t b, unsigned t)
{
    unsigned bits = TBITS[t];
    if (bits == 64) {
        if (pt_signed(t))
            return (uint64_t)(((__int128)(int64_t)a * (int64_t)b) >> 64);
        return (uint64_t)(((unsigned __int128)a * b) >> 64);
    }
    if (pt_signed(t))
        return (uint64_t)((sx(a, bits) * sx(b, bits)) >> bits);
    return (zx(a, bits) * zx(b, bits)) >> bits;
}

static inline uint64_t mulwide(uint64_t a, uint64_t b, unsigned t)
{
    unsigned bits = TBITS[t];
    if (pt_signed(t))
        return (uint64_t)(sx(a, bits) * sx(b, bits));
    return zx(a, bits) * zx(b, bits);
}

/* Float binary op for f32/f64/f16 with rounding modes and ftz. */
static uint64_t fbin(int fop, const struct pins *in, uint64_t a, uint64_t b, uint64_t c)
{
    unsigned t = in->type;
    int rnd = in->mod;
    if (t == PT_F64) {
        double x = as_d(a), y = as_d(b), z = as_d(c), r;
        if (directed(rnd))
            return of_d(fop_round(fop, rnd, 0, x, y, z));
        switch (fop) {
        case FOP_ADD: r = x + y; break;
        case FOP_SUB: r = x - y; break;
        case FOP_MUL: r = x * y; break;
        case FOP_DIV: r = x / y; break;
        case FOP_FMA: r = fma(x, y, z); break;
        default: r = 0; break;
        }
        return of_d(r);
    }
    if (pt_half(t)) {
        uint64_t out = 0;
        for (int lane = 0; lane < (t == PT_F16X2 || t == PT_BF16X2 ? 2 : 1); lane++) {
            int sh = lane * 16;
            float x = lane_to_float(a, sh, t), y = lane_to_float(b, sh, t);
            float r;
            switch (fop) {
            case FOP_ADD: r = x + y; break;
            case FOP_SUB: r = x - y; break;
            case FOP_MUL: r = x * y; break;
            default: r = fmaf(x, y, lane_to_float(c, sh, t)); break;
            }
            if (in->flags & F_SAT)
                r = isnan(r) ? 0.0f : r < 0.0f ? 0.0f : r > 1.0f ? 1.0f : r;
            out |= lane_of_float(r, sh, t);
        }
        return out;
    }
    float x = as_f(a), y = as_f(b), z = as_f(c), r;
    int ftz = in->flags & F_FTZ;
    if (ftz) {
        x = ftzf(x);
        y = ftzf(y);
        z = ftzf(z);
    }
    if (directed(rnd)) {
        r = (float)fop_round(fop, rnd, 1, x, y, z);
    } else {
        switch (fop) {
        case FOP_ADD: r = x + y; break;
        case FOP_SUB: r = x - y; break;
        case FOP_MUL: r = x * y; break;
        case FOP_DIV: r = x / y; break;
        case FOP_FMA: r = fmaf(x, y, z); break;
        default: r = 0; break;
        }
    }
    if (ftz)
        r = ftzf(r);
    if (in->flags & F_SAT)
        r = isnan(r) ? 0.0f : r < 0.0f ? 0.0f : r > 1.0f ? 1.0f : r;
    return of_f(r);
}

/* wmma.load/wmma.store for one lane: its fragment elements, at the rows and columns
 * ptx_mma.c assigns it, from or to the matrix at the address with the given stride (in
 * elements; default: the row length of the stored layout). */
static int wmma_ldst(struct worker *w, struct thr *t, const struct pins *in,
                     const struct pmma *m)
{
    uint64_t base = addr_of(t, in);
    unsigned rows = m->frag == FR_B ? m->k : m->m, cols = m->frag == FR_A ? m->k : m->n;
    uint64_t stride = in->s[0] >= 0 ? (uint32_t)t->regs[in->s[0]] : m->col ? rows : cols;
    unsigned esz = ptx_mma_elem_bytes(m, m->frag), n = ptx_mma_lane_elems(m, m->frag);
    for (unsigned e = 0; e < n; e++) {
        unsigned r, c;
        ptx_mma_coord(m, m->frag, t->linear & 31, e, &r, &c);
        uint64_t off = m->col ? (uint64_t)c * stride + r : (uint64_t)r * stride + c;
        uint8_t *p = mem_ptr(w, t, in->space, base + off * esz, esz);
        if (!p)
            return w->L->code;
        uint64_t v = 0;
        if (m->kind == MMA_LOAD) {
            memcpy(&v, p, esz);
            ptx_mma_frag_put(m, t->regs, e, v);
        } else {
            v = ptx_mma_frag_get(m, t->regs, e);
            memcpy(p, &v, esz);
        }
    }
    return 0;
}

/* Runs thread t until it exits, blocks at a barrier/collective, or the launch fails. */
/* What every ld and st does before touching memory. Returns the host address of the access
 * (*eb_out: the element size in bytes), or NULL with *rc = 0 when the thread parks for a
 * lockstep (volatile shared) access, or NULL with *rc = the launch error when the address is
 * misaligned or outside the memory the launch may touch. */
static inline uint8_t *ldst_begin(struct worker *w, struct thr *t, const struct pins *in,
                                  uint32_t pc, unsigned *eb_out, int *rc)
{
    if ((in->flags & F_LOCKSTEP) && !t->released) {
        t->state = TS_COLL;
        t->pc = pc;
        *rc = 0;
        return NULL;
    }
    t->released = 0;
    uint64_t a = addr_of(t, in);
    unsigned eb = TBITS[in->type] / 8;
    if (eb == 0)
        eb = 1;
    *eb_out = eb;
    if (a & ((uint64_t)eb * in->vec - 1)) { /* sizes are powers of two */
        t->pc = pc;
        *rc = launch_fail(w, t, PTX_ERR_LAUNCH_FAILED, "misaligned address 0x%llx for a "
                          "%u-byte access", (unsigned long long)a, eb * in->vec);
        return NULL;
    }
    uint8_t *p = fast_ptr(w, t, in->space, a, (uint64_t)eb * in->vec);
    if (!p) {
        t->pc = pc;
        p = mem_ptr(w, t, in->space, a, (uint64_t)eb * in->vec);
        if (!p)
            *rc = w->L->code;
    }
    return p;
}

static int run_thread(struct worker *w, struct thr *t)
{
    const struct pins *code = t->fn->code;
    uint64_t *regs = t->regs;
    uint32_t pc = t->pc;
    uint64_t count = 0;
    int rc = 0;
#define S(i) regs[in->s[i]]
#define D(i, v) do { int32_t _d = in->d[i]; if (_d >= 0) regs[_d] = (v); } while (0)
    for (;;) {
        const struct pins *in = &code[pc];
        if (__builtin_expect(w->single, 0) && count) { /* a step for translated code */
            t->pc = pc;
            goto out;
        }
        count++;
        if (in->guard >= 0 && (int)(regs[in->guard] & 1) == (int)in->gneg) {
            pc++;
            continue;
        }
        unsigned ty = in->type;
        switch (in->op) {
        case OP_nop:
            break;
        case OP_mov:
            if (in->mod2 == 0) {
                D(0, S(0));
            } else if (in->mod2 == 2) { /* pack */
                unsigned eb = TBITS[ty] / in->vec;
                uint64_t v = 0;
                for (unsigned i = 0; i < in->vec; i++)
                    v |= zx(regs[in->s[i]], eb) << (i * eb);
                D(0, v);
            } else { /* unpack */
                unsigned eb = TBITS[ty] / in->vec;
                uint64_t v = S(0);
                for (unsigned i = 0; i < in->vec; i++)
                    D(i, zx(v >> (i * eb), eb));
            }
            break;
        case OP_movlocal:
            D(0, t->frames[t->depth - 1].local_base + (uint64_t)in->aoff);
            break;
        case OP_clock:
            if (in->mod == 3) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                D(0, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
            } else {
                D(0, w->icount + count);
            }
            break;
        case OP_ld: {
            unsigned eb;
            uint8_t *p = ldst_begin(w, t, in, pc, &eb, &rc);
            if (!p)
                goto out;
            if (in->vec == 1 && eb == 4) {
                uint32_t v;
                memcpy(&v, p, 4);
                D(0, pt_signed(ty) ? (uint64_t)(int64_t)(int32_t)v : v);
                break;
            }
            if (in->vec == 1 && eb == 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                D(0, v);
                break;
            }
            for (unsigned i = 0; i < in->vec; i++) {
                uint64_t v = 0;
                memcpy(&v, p + i * eb, eb);
                if (pt_signed(ty))
                    v = (uint64_t)sx(v, eb * 8);
                D(i, v);
            }
            break;
        }
        case OP_st: {
            unsigned eb;
            uint8_t *p = ldst_begin(w, t, in, pc, &eb, &rc);
            if (!p)
                goto out;
            if (in->vec == 1 && eb == 4) {
                uint32_t v = (uint32_t)S(0);
                memcpy(p, &v, 4);
                break;
            }
            for (unsigned i = 0; i < in->vec; i++) {
                uint64_t v = regs[in->s[i]];
                memcpy(p + i * eb, &v, eb);
            }
            break;
        }
        case OP_cvta: {
            uint64_t a = S(0);
            uint64_t base = in->space == SP_SHARED ? SH_WIN : in->space == SP_LOCAL ? LO_WIN : 0;
            if (TBITS[ty] == 32)
                a = (uint32_t)a;
            D(0, in->mod2 ? a - base : a + base);
            break;
        }
        case OP_cvt: {
            if (in->mod2 == 1) { /* two f32 into f16x2/bf16x2 */
                if (in->mod != RND_RN && in->mod != RND_NONE) {
                    t->pc = pc;
                    rc = unsupported(w, t, in);
                    goto out;
                }
                D(0, lane_of_float(as_f(S(0)), 16, ty) | lane_of_float(as_f(S(1)), 0, ty));
                break;
            }
            int bad = 0;
            uint64_t v = do_cvt(in, S(0), &bad);
            if (bad) {
                t->pc = pc;
                rc = unsupported(w, t, in);
                goto out;
            }
            D(0, v);
            break;
        }
        case OP_add:
            if (ty == PT_F32 && !(in->flags & (F_FTZ | F_SAT)) && !directed(in->mod)) {
                D(0, of_f(as_f(S(0)) + as_f(S(1))));
            } else if (ty == PT_F64 && !directed(in->mod)) {
                D(0, of_d(as_d(S(0)) + as_d(S(1))));
            } else if (pt_float(ty)) {
                D(0, fbin(FOP_ADD, in, S(0), S(1), 0));
            } else if (in->flags & F_SAT) {
                int64_t r = (int64_t)(int32_t)S(0) + (int64_t)(int32_t)S(1);
                D(0, (uint32_t)(r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : r));
            } else if (in->flags & F_CC) {
                if (TBITS[ty] == 64) {
                    unsigned __int128 r = (unsigned __int128)S(0) + S(1);
                    t->carry = (uint8_t)(r >> 64);
                    D(0, (uint64_t)r);
                } else {
                    uint64_t r = (uint64_t)(uint32_t)S(0) + (uint32_t)S(1);
                    t->carry = (uint8_t)(r >> 32);
                    D(0, (uint32_t)r);
                }
            } else {
                D(0, S(0) + S(1));
            }
            break;
        case OP_addc:
            if (TBITS[ty] == 64) {
                unsigned __int128 r = (unsigned __int128)S(0) + S(1) + t->carry;
                if (in->flags & F_CC)
                    t->carry = (uint8_t)(r >> 64);
                D(0, (uint64_t)r);
            } else {
                uint64_t r = (uint64_t)(uint32_t)S(0) + (uint32_t)S(1) + t->carry;
                if (in->flags & F_CC)
                    t->carry = (uint8_t)(r >> 32);
                D(0, (uint32_t)r);
            }
            break;
        case OP_sub:
            if (pt_float(ty)) {
                D(0, fbin(FOP_SUB, in, S(0), S(1), 0));
            } else if (in->flags & F_SAT) {
                int64_t r = (int64_t)(int32_t)S(0) - (int64_t)(int32_t)S(1);
                D(0, (uint32_t)(r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : r));
            } else if (in->flags & F_CC) {
                uint64_t a = zx(S(0), TBITS[ty]), b = zx(S(1), TBITS[ty]);
                t->carry = a < b;
                D(0, a - b);
            } else {
                D(0, S(0) - S(1));
            }
            break;
        case OP_subc: {
            uint64_t a = zx(S(0), TBITS[ty]), b = zx(S(1), TBITS[ty]);
            uint64_t r = a - b - t->carry;
            if (in->flags & F_CC)
                t->carry = (a < b) || (a - b < t->carry);
            D(0, r);
            break;
        }
        case OP_mul:
            if (ty == PT_F32 && !(in->flags & (F_FTZ | F_SAT)) && !directed(in->mod))
                D(0, of_f(as_f(S(0)) * as_f(S(1))));
            else if (ty == PT_F64 && !directed(in->mod))
                D(0, of_d(as_d(S(0)) * as_d(S(1))));
            else if (pt_float(ty))
                D(0, fbin(FOP_MUL, in, S(0), S(1), 0));
            else if (in->flags & F_HI)
                D(0, mulhi(S(0), S(1), ty));
            else if (in->flags & F_WIDE)
                D(0, mulwide(S(0), S(1), ty));
            else
                D(0, S(0) * S(1));
            break;
        case OP_mad:
            if (pt_float(ty)) {
                D(0, fbin(FOP_FMA, in, S(0), S(1), S(2)));
                break;
            }
            {
                uint64_t p;
                if (in->flags & F_HI)
                    p = mulhi(S(0), S(1), ty);
                else if (in->flags & F_WIDE)
                    p = mulwide(S(0), S(1), ty);
                else
                    p = S(0) * S(1);
                if (in->flags & F_CC) {
                    unsigned bits = TBITS[ty];
                    if (bits == 64) {
                        unsigned __int128 r = (unsigned __int128)p + S(2);
                        t->carry = (uint8_t)(r >> 64);
                        D(0, (uint64_t)r);
                    } else {
                        uint64_t r = zx(p, 32) + zx(S(2), 32);
                        t->carry = (uint8_t)(r >> 32);
                        D(0, (uint32_t)r);
                    }
                } else if (in->flags & F_SAT) {
                    int64_t r = (int64_t)(int32_t)p + (int64_t)(int32_t)S(2);
                    D(0, (uint32_t)(r > INT32_MAX ? INT32_MAX : r < INT32_MIN ? INT32_MIN : r));
                } else {
                    D(0, p + S(2));
                }
            }
            break;
        case OP_madc: {
            uint64_t p = (in->flags & F_HI) ? mulhi(S(0), S(1), ty) : S(0) * S(1);
            if (TBITS[ty] == 64) {
                unsigned __int128 r = (unsigned __int128)p + S(2) + t->carry;
                if (in->flags & F_CC)
                    t->carry = (uint8_t)(r >> 64);
                D(0, (uint64_t)r);
            } else {
                uint64_t r = zx(p, 32) + zx(S(2), 32) + t->carry;
                if (in->flags & F_CC)
                    t->carry = (uint8_t)(r >> 32);
                D(0, (uint32_t)r);
            }
            break;
        }
        case OP_fma:
            if (ty == PT_F32 && !(in->flags & (F_FTZ | F_SAT)) && !directed(in->mod))
                D(0, of_f(fmaf(as_f(S(0)), as_f(S(1)), as_f(S(2)))));
            else if (ty == PT_F64 && !directed(in->mod))
                D(0, of_d(fma(as_d(S(0)), as_d(S(1)), as_d(S(2)))));
            else
                D(0, fbin(FOP_FMA, in, S(0), S(1), S(2)));
            break;
        case OP_div:
            if (pt_float(ty)) {
                D(0, fbin(FOP_DIV, in, S(0), S(1), 0));
            } else if (pt_signed(ty)) {
                unsigned bits = TBITS[ty];
                int64_t a = sx(S(0), bits), b = sx(S(1), bits);
                if (b == 0)
                    D(0, ~0ull);
                else if (b == -1)
                    D(0, (uint64_t)0 - (uint64_t)a);
                else
                    D(0, (uint64_t)(a / b));
            } else {
                unsigned bits = TBITS[ty];
                uint64_t a = zx(S(0), bits), b = zx(S(1), bits);
                D(0, b ? a / b : ~0ull);
            }
            break;
        case OP_rem:
            if (pt_signed(ty)) {
                unsigned bits = TBITS[ty];
                int64_t a = sx(S(0), bits), b = sx(S(1), bits);
                D(0, b == 0 ? (uint64_t)a : b == -1 ? 0 : (uint64_t)(a % b));
            } else {
                unsigned bits = TBITS[ty];
                uint64_t a = zx(S(0), bits), b = zx(S(1), bits);
                D(0, b ? a % b : a);
            }
            break;
        case OP_abs:
            if (ty == PT_F16 || ty == PT_BF16) D(0, S(0) & 0x7fffu);
            else if (ty == PT_F16X2 || ty == PT_BF16X2) D(0, S(0) & 0x7fff7fffu);
            else if (ty == PT_F32) D(0, S(0) & 0x7fffffffu);
            else if (ty == PT_F64) D(0, S(0) & 0x7fffffffffffffffull);
            else {
                int64_t a = sx(S(0), TBITS[ty]);
                D(0, (uint64_t)(a < 0 ? -(uint64_t)a : (uint64_t)a));
            }
            break;
        case OP_neg:
            if (ty == PT_F16 || ty == PT_BF16) D(0, (S(0) ^ 0x8000u) & 0xffffu);
            else if (ty == PT_F16X2 || ty == PT_BF16X2)
                D(0, (S(0) ^ 0x80008000u) & 0xffffffffu);
            else if (ty == PT_F32) D(0, (S(0) ^ 0x80000000u) & 0xffffffffu);
            else if (ty == PT_F64) D(0, S(0) ^ 0x8000000000000000ull);
            else D(0, (uint64_t)0 - S(0));
            break;
        case OP_min:
        case OP_max: {
            int mx = in->op == OP_max;
            if (ty == PT_F32) {
                float a = as_f(S(0)), b = as_f(S(1));
                if (in->flags & F_FTZ) {
                    a = ftzf(a);
                    b = ftzf(b);
                }
                D(0, of_f(mx ? fmaxf(a, b) : fminf(a, b)));
            } else if (ty == PT_F64) {
                double a = as_d(S(0)), b = as_d(S(1));
                D(0, of_d(mx ? fmax(a, b) : fmin(a, b)));
            } else if (pt_half(ty)) {
                uint64_t r = 0;
                for (int sh = 0; sh < (TBITS[ty] == 32 ? 32 : 16); sh += 16) {
                    float a = lane_to_float(S(0), sh, ty), b = lane_to_float(S(1), sh, ty);
                    r |= lane_of_float(mx ? fmaxf(a, b) : fminf(a, b), sh, ty);
                }
                D(0, r);
            } else if (pt_signed(ty)) {
                int64_t a = sx(S(0), TBITS[ty]), b = sx(S(1), TBITS[ty]);
                D(0, (uint64_t)(mx ? (a > b ? a : b) : (a < b ? a : b)));
            } else {
                uint64_t a = zx(S(0), TBITS[ty]), b = zx(S(1), TBITS[ty]);
                D(0, mx ? (a > b ? a : b) : (a < b ? a : b));
            }
            break;
        }
        case OP_and:
            D(0, S(0) & S(1));
            break;
        case OP_or:
            D(0, S(0) | S(1));
            break;
        case OP_xor:
            D(0, S(0) ^ S(1));
            break;
        case OP_not:
            D(0, ty == PT_PRED ? (~S(0) & 1) : ~S(0));
            break;
        case OP_cnot:
            D(0, zx(S(0), TBITS[ty]) == 0);
            break;
        case OP_shl: {
            uint32_t n = (uint32_t)S(1);
            D(0, n >= TBITS[ty] ? 0 : S(0) << n);
            break;
        }
        case OP_shr: {
            uint32_t n = (uint32_t)S(1);
            unsigned bits = TBITS[ty];
            if (pt_signed(ty)) {
                int64_t a = sx(S(0), bits);
                D(0, (uint64_t)(a >> (n >= bits ? bits - 1 : n)));
            } else {
                D(0, n >= bits ? 0 : zx(S(0), bits) >> n);
            }
            break;
        }
        case OP_setp: {
            int p = cmp_eval(in->mod, S(0), S(1), ty);
            int c = 1;
            if (in->mod2) {
                c = (int)(S(2) & 1);
                if (in->flags & F_NEGSRC)
                    c = !c;
            }
            D(0, (uint64_t)bop(in->mod2, p, c));
            D(1, (uint64_t)bop(in->mod2, !p, c));
            break;
        }
        case OP_set: {
            int p = cmp_eval(in->mod, S(0), S(1), ty);
            if (in->mod2) {
                int c = (int)(S(2) & 1);
                if (in->flags & F_NEGSRC)
                    c = !c;
                p = bop(in->mod2, p, c);
            }
            if (in->type2 == PT_F32)
                D(0, p ? of_f(1.0f) : 0);
            else
                D(0, p ? zx(~0ull, TBITS[in->type2]) : 0);
            break;
        }
        case OP_selp: {
            int c = (int)(S(2) & 1);
            if (in->flags & F_NEGSRC)
                c = !c;
            D(0, c ? S(0) : S(1));
            break;
        }
        case OP_slct: {
            int ge = in->type2 == PT_F32 ? as_f(S(2)) >= 0.0f : (int32_t)S(2) >= 0;
            D(0, ge ? S(0) : S(1));
            break;
        }
        case OP_bra:
            if ((uint32_t)in->target <= pc && w->icount + count >= w->poll_at) {
                t->pc = pc;
                rc = poll_launch(w, t, count);
                if (rc)
                    goto out;
            }
            pc = (uint32_t)in->target;
            if (pc <= (uint32_t)(in - code) && count >= TIME_SLICE) {
                /* a long loop (maybe waiting for another thread): let the others run */
                t->pc = pc;
                goto out;
            }
            continue;
        case OP_call:
            t->pc = pc;
            if (w->icount + count >= w->poll_at) {
                rc = poll_launch(w, t, count);
                if (rc)
                    goto out;
            }
            if (do_call(w, t, in)) {
                rc = w->L->code;
                goto out;
            }
            code = t->fn->code;
            regs = t->regs;
            pc = t->pc;
            continue;
        case OP_ret:
            t->pc = pc;
            if (do_ret(w, t)) {
                rc = atomic_load(&w->L->failed) ? w->L->code : 0;
                goto out;
            }
            code = t->fn->code;
            regs = t->regs;
            pc = t->pc;
            continue;
        case OP_exit:
            t->state = TS_EXIT;
            t->pc = pc;
            goto out;
        case OP_trap:
        case OP_brkpt:
            t->pc = pc;
            rc = launch_fail(w, t, PTX_ERR_LAUNCH_FAILED, "%s executed", ptx_op_names[in->op]);
            goto out;
        case OP_bar:
            if (in->mod2) { /* bar.arrive: counts, does not wait */
                w->arrived[S(0) & 15]++;
                break;
            }
            t->bar_id = (uint32_t)S(0) & 15;
            t->bar_count = in->s[1] >= 0 ? (uint32_t)S(1) : 0;
            t->state = TS_BAR;
            t->pc = pc;
            goto out;
        case OP_barred: {
            int c = (int)(S(0) & 1);
            if (in->flags & F_NEGSRC)
                c = !c;
            t->barval = (uint32_t)c;
            t->bar_id = (uint32_t)S(1) & 15;
            t->bar_count = in->s[2] >= 0 ? (uint32_t)S(2) : 0;
            t->state = TS_BAR;
            t->pc = pc;
            goto out;
        }
        case OP_cvttf32:
            D(0, ptx_cvt_tf32((uint32_t)S(0), in->mod));
            break;
        case OP_mma:
            if (t->fn->mmas[in->target].kind == MMA_LOAD ||
                t->fn->mmas[in->target].kind == MMA_STORE) {
                t->pc = pc;
                rc = wmma_ldst(w, t, in, &t->fn->mmas[in->target]);
                if (rc)
                    goto out;
                break;
            }
            t->state = TS_COLL; /* the others are warp-wide */
            t->pc = pc;
            goto out;
        case OP_tex:
        case OP_tld4:
        case OP_suld:
        case OP_sust:
        case OP_txq:
        case OP_suq: {
            char why[160];
            t->pc = pc;
            rc = ptx_tex_exec(w->L->l->tex, in, regs, why, sizeof(why));
            if (rc) {
                rc = launch_fail(w, t, rc, "%s", why);
                goto out;
            }
            break;
        }
        case OP_shfl:
        case OP_vote:
        case OP_redux:
        case OP_activemask:
        case OP_warpsync:
        case OP_match:
            t->state = TS_COLL;
            t->pc = pc;
            goto out;
        case OP_atom:
        case OP_red: {
            uint64_t old = 0;
            t->pc = pc;
            if (do_atom(w, t, in, addr_of(t, in), &old)) {
                rc = w->L->code;
                goto out;
            }
            if (in->op == OP_atom)
                D(0, old);
            break;
        }
        case OP_isspacep: {
            uint64_t a = S(0);
            int sh = a - SH_WIN < WIN_SIZE, lo = a - LO_WIN < WIN_SIZE;
            D(0, (uint64_t)(in->space == SP_SHARED ? sh : in->space == SP_LOCAL ? lo
                                                                              : !sh && !lo));
            break;
        }
        case OP_cpasync: {
            uint64_t dst = addr_of(t, in);
            uint64_t src = S(0) + (uint64_t)(int64_t)in->target;
            uint32_t size = in->vec, n = size;
            if (in->s[1] >= 0 && (uint32_t)S(1) < size)
                n = (uint32_t)S(1);
            t->pc = pc;
            if ((dst | src) & (size - 1)) { /* both sides aligned to cp-size, as a GPU faults */
                rc = launch_fail(w, t, PTX_ERR_LAUNCH_FAILED, "misaligned cp.async of %u bytes "
                                 "from 0x%llx to shared offset 0x%llx", size,
                                 (unsigned long long)src, (unsigned long long)dst);
                goto out;
            }
            uint8_t *d = mem_ptr(w, t, SP_SHARED, dst, size);
            uint8_t *s = n ? mem_ptr(w, t, SP_GLOBAL, src, n) : d;
            if (!d || !s) {
                rc = w->L->code;
                goto out;
            }
            memmove(d, s, n);
            memset(d + n, 0, size - n);
            break;
        }
        case OP_popc:
            D(0, (uint64_t)__builtin_popcountll(zx(S(0), TBITS[ty])));
            break;
        case OP_clz: {
            unsigned bits = TBITS[ty];
            uint64_t v = zx(S(0), bits);
            D(0, v ? (uint64_t)(__builtin_clzll(v) - (64 - (int)bits)) : bits);
            break;
        }
        case OP_brev: {
            unsigned bits = TBITS[ty];
            uint64_t v = S(0), r = 0;
            for (unsigned i = 0; i < bits; i++)
                r |= ((v >> i) & 1) << (bits - 1 - i);
            D(0, r);
            break;
        }
        case OP_bfind: {
            unsigned bits = TBITS[ty];
            uint64_t v = pt_signed(ty) && sx(S(0), bits) < 0 ? zx(~S(0), bits) : zx(S(0), bits);
            uint32_t r;
            if (!v)
                r = 0xffffffffu;
            else {
                r = 63u - (uint32_t)__builtin_clzll(v);
                if (in->flags & F_SHIFTAMT)
                    r = bits - 1 - r;
            }
            D(0, r);
            break;
        }
        case OP_bfe: {
            unsigned bits = TBITS[ty];
            uint32_t pos = (uint32_t)S(1) & 0xff, len = (uint32_t)S(2) & 0xff;
            uint64_t a = zx(S(0), bits);
            uint64_t r = 0;
            int sbit = 0;
            if (pt_signed(ty) && len > 0) {
                unsigned sb = pos + len - 1 >= bits - 1 ? bits - 1 : pos + len - 1;
                sbit = (int)((a >> sb) & 1);
            }
            for (unsigned i = 0; i < bits; i++) {
                uint64_t b = (i < len && pos + i <= bits - 1) ? (a >> (pos + i)) & 1
                                                               : (uint64_t)sbit;
                r |= b << i;
            }
            D(0, r);
            break;
        }
        case OP_bfi: {
            unsigned bits = TBITS[ty];
            uint32_t pos = (uint32_t)S(2) & 0xff, len = (uint32_t)S(3) & 0xff;
            uint64_t a = S(0), r = zx(S(1), bits);
            for (unsigned i = 0; i < len && pos + i < bits; i++) {
                r &= ~(1ull << (pos + i));
                r |= ((a >> i) & 1) << (pos + i);
            }
            D(0, r);
            break;
        }
        case OP_prmt: {
            uint64_t v = ((uint64_t)(uint32_t)S(1) << 32) | (uint32_t)S(0);
            uint32_t c = (uint32_t)S(2), r = 0;
            for (int i = 0; i < 4; i++) {
                uint32_t n = (c >> (4 * i)) & 0xf;
                uint32_t byte = (uint32_t)(v >> (8 * (n & 7))) & 0xff;
                if (n & 8)
                    byte = (byte & 0x80) ? 0xff : 0;
                r |= byte << (8 * i);
            }
            D(0, r);
            break;
        }
        case OP_mul24:
        case OP_mad24: {
            int64_t p = pt_signed(ty) ? sx(S(0), 24) * sx(S(1), 24)
                                      : (int64_t)(zx(S(0), 24) * zx(S(1), 24));
            uint64_t r = (in->flags & F_HI) ? (uint64_t)(p >> 16) : (uint64_t)p;
            if (in->op == OP_mad24)
                r += S(2);
            D(0, (uint32_t)r);
            break;
        }
        case OP_dp4a:
        case OP_dp2a: {
            int as = pt_signed(in->type), bs = pt_signed(in->type2);
            uint32_t a = (uint32_t)S(0), b = (uint32_t)S(1);
            int64_t acc = 0;
            if (in->op == OP_dp4a) {
                for (int i = 0; i < 4; i++) {
                    int64_t x = as ? (int8_t)(a >> (8 * i)) : (uint8_t)(a >> (8 * i));
                    int64_t y = bs ? (int8_t)(b >> (8 * i)) : (uint8_t)(b >> (8 * i));
                    acc += x * y;
                }
            } else {
                int base = in->mod2 ? 2 : 0;
                for (int i = 0; i < 2; i++) {
                    int64_t x = as ? (int16_t)(a >> (16 * i)) : (uint16_t)(a >> (16 * i));
                    int64_t y = bs ? (int8_t)(b >> (8 * (base + i)))
                                   : (uint8_t)(b >> (8 * (base + i)));
                    acc += x * y;
                }
            }
            D(0, (uint32_t)((uint64_t)acc + S(2)));
            break;
        }
        case OP_lop3: {
            uint32_t a = (uint32_t)S(0), b = (uint32_t)S(1), c = (uint32_t)S(2), r = 0;
            for (int i = 0; i < 8; i++)
                if ((in->mod >> i) & 1)
                    r |= ((i & 4) ? a : ~a) & ((i & 2) ? b : ~b) & ((i & 1) ? c : ~c);
            D(0, r);
            break;
        }
        case OP_bmsk: {
            /* b ones starting at bit a */
            uint32_t a = (uint32_t)S(0), b = (uint32_t)S(1);
            if (in->flags & F_WRAP) {
                a &= 31;
                b &= 31;
            } else {
                a = a > 32 ? 32 : a;
                b = b > 32 ? 32 : b;
            }
            uint64_t mask = ((1ull << b) - 1) << a;
            D(0, (uint32_t)mask);
            break;
        }
        case OP_shf: {
            uint64_t v = ((uint64_t)(uint32_t)S(1) << 32) | (uint32_t)S(0);
            uint32_t n = (uint32_t)S(2);
            n = (in->flags & F_WRAP) ? n & 31 : (n > 32 ? 32 : n);
            if (in->flags & F_LEFT)
                D(0, (uint32_t)((v << n) >> 32));
            else
                D(0, (uint32_t)(v >> n));
            break;
        }
        case OP_sad: {
            unsigned bits = TBITS[ty];
            uint64_t r;
            if (pt_signed(ty)) {
                int64_t a = sx(S(0), bits), b = sx(S(1), bits);
                r = (uint64_t)(a > b ? a - b : b - a);
            } else {
                uint64_t a = zx(S(0), bits), b = zx(S(1), bits);
                r = a > b ? a - b : b - a;
            }
            D(0, r + S(2));
            break;
        }
        case OP_copysign:
            if (ty == PT_F32)
                D(0, of_f(copysignf(as_f(S(1)), as_f(S(0)))));
            else
                D(0, of_d(copysign(as_d(S(1)), as_d(S(0)))));
            break;
        case OP_testp: {
            double x = to_double(S(0), ty);
            int r = 0;
            switch (in->mod) {
            case TESTP_FINITE: r = isfinite(x); break;
            case TESTP_INFINITE: r = isinf(x); break;
            case TESTP_NUMBER: r = !isnan(x); break;
            case TESTP_NOTANUMBER: r = isnan(x); break;
            case TESTP_NORMAL:
                r = ty == PT_F32 ? fpclassify(as_f(S(0))) == FP_NORMAL
                                 : fpclassify(x) == FP_NORMAL;
                break;
            case TESTP_SUBNORMAL:
                r = ty == PT_F32 ? fpclassify(as_f(S(0))) == FP_SUBNORMAL
                                 : fpclassify(x) == FP_SUBNORMAL;
                break;
            }
            D(0, (uint64_t)(r != 0));
            break;
        }
        case OP_sqrt: case OP_rsqrt: case OP_rcp: case OP_ex2: case OP_lg2: case OP_sin:
        case OP_cos: case OP_tanh:
            if (ty == PT_F64) {
                double x = as_d(S(0)), r;
                switch (in->op) {
                case OP_sqrt:
                    r = directed(in->mod) ? fop_round(FOP_SQRT, in->mod, 0, x, 0, 0) : sqrt(x);
                    break;
                case OP_rsqrt: r = 1.0 / sqrt(x); break;
                case OP_rcp:
                    r = directed(in->mod) ? fop_round(FOP_RCP, in->mod, 0, x, 0, 0) : 1.0 / x;
                    break;
                case OP_ex2: r = exp2(x); break;
                case OP_lg2: r = log2(x); break;
                case OP_sin: r = sin(x); break;
                case OP_cos: r = cos(x); break;
                default: r = tanh(x); break;
                }
                D(0, of_d(r));
            } else if (ty == PT_F32) {
                float x = as_f(S(0)), r;
                if (in->flags & F_FTZ)
                    x = ftzf(x);
                switch (in->op) {
                case OP_sqrt:
                    r = directed(in->mod) ? (float)fop_round(FOP_SQRT, in->mod, 1, x, 0, 0)
                                          : sqrtf(x);
                    break;
                case OP_rsqrt: r = 1.0f / sqrtf(x); break;
                case OP_rcp:
                    r = directed(in->mod) ? (float)fop_round(FOP_RCP, in->mod, 1, x, 0, 0)
                                          : 1.0f / x;
                    break;
                case OP_ex2: r = exp2f(x); break;
                case OP_lg2: r = log2f(x); break;
                case OP_sin: r = sinf(x); break;
                case OP_cos: r = cosf(x); break;
                default: r = tanhf(x); break;
                }
                if (in->flags & F_FTZ)
                    r = ftzf(r);
                D(0, of_f(r));
            } else {
                t->pc = pc;
                rc = unsupported(w, t, in);
                goto out;
            }
            break;
        default:
            t->pc = pc;
            rc = unsupported(w, t, in);
            goto out;
        }
        pc++;
    }
out:
#undef S
#undef D
    w->icount += count;
    return rc;
}

/* ---- block scheduling ----------------------------------------------------------------- */

/* ldmatrix: lane i * 8 + q gives the address of row q of matrix i (16 bytes); every row is
 * read, bounds-checked for the lane that gave it, before any register is written. */
static int ldmatrix_rows(struct worker *w, struct thr *const lanes[32], const struct pins *in,
                         const struct pmma *m, uint64_t *const regs[32])
{
    uint16_t rows[32][8];
    for (unsigned q = 0; q < 8u * m->nmat; q++) {
        uint8_t *p = mem_ptr(w, lanes[q], in->space, addr_of(lanes[q], in), 16);
        if (!p)
            return w->L->code;
        memcpy(rows[q], p, 16);
    }
    ptx_ldmatrix_warp(m, (const uint16_t(*)[8])rows, regs);
    return 0;
}

/* Executes the collective instruction at which the lanes in `group` (a lane mask of warp
 * `warp`) are waiting. */
static int resolve_group(struct worker *w, uint32_t warp, uint32_t group)
{
    struct thr *lanes[32] = {0};
    uint32_t base = warp * 32;
    for (uint32_t l = 0; l < 32; l++)
        if ((group >> l) & 1)
            lanes[l] = &w->threads[base + l];
    struct thr *first = NULL;
    for (uint32_t l = 0; l < 32 && !first; l++)
        first = lanes[l];
    const struct pins *in = &first->fn->code[first->pc];
    uint64_t res[32], res2[32];
    if (in->op == OP_ld || in->op == OP_st) {
        /* a lockstep access: every lane performs it, in lane order, before any lane goes on
         * to the next one (each runs until its next blocking point) */
        for (uint32_t l = 0; l < 32; l++) {
            if (!lanes[l])
                continue;
            lanes[l]->released = 1;
            lanes[l]->state = TS_RUN;
            int rc = run_thread(w, lanes[l]);
            if (rc)
                return rc;
        }
        return 0;
    }
    switch (in->op) {
    case OP_shfl: {
        for (uint32_t l = 0; l < 32; l++) {
            if (!lanes[l])
                continue;
            uint64_t *r = lanes[l]->regs;
            uint32_t b = (uint32_t)r[in->s[1]] & 31, c = (uint32_t)r[in->s[2]];
            uint32_t seg = (c >> 8) & 31, clampv = c & 31;
            uint32_t maxl = (l & seg) | (clampv & ~seg), minl = l & seg;
            int32_t j;
            int pval;
            switch (in->mod) {
            case SHFL_UP: j = (int32_t)l - (int32_t)b; pval = j >= (int32_t)maxl; break;
            case SHFL_DOWN: j = (int32_t)(l + b); pval = j <= (int32_t)maxl; break;
            case SHFL_BFLY: j = (int32_t)(l ^ b); pval = j <= (int32_t)maxl; break;
            default: j = (int32_t)(minl | (b & ~seg)); pval = j <= (int32_t)maxl; break;
            }
            if (!pval || j < 0 || j > 31 || !lanes[j])
                j = (int32_t)l;
            res[l] = (uint32_t)lanes[j]->regs[in->s[0]];
            res2[l] = (uint64_t)pval;
        }
        for (uint32_t l = 0; l < 32; l++) {
            if (!lanes[l])
                continue;
            if (in->d[0] >= 0)
                lanes[l]->regs[in->d[0]] = res[l];
            if (in->d[1] >= 0)
                lanes[l]->regs[in->d[1]] = res2[l];
        }
        break;
    }
    case OP_vote: {
        uint32_t ballot = 0;
        for (uint32_t l = 0; l < 32; l++) {
            if (!lanes[l])
                continue;
            int p = (int)(lanes[l]->regs[in->s[0]] & 1);
            if (in->flags & F_NEGSRC)
                p = !p;
            if (p)
                ballot |= 1u << l;
        }
        uint64_t v;
        switch (in->mod) {
        case VOTE_ALL: v = ballot == group; break;
        case VOTE_ANY: v = ballot != 0; break;
        case VOTE_UNI: v = ballot == group || ballot == 0; break;
        default: v = ballot; break;
        }
        for (uint32_t l = 0; l < 32; l++)
            if (lanes[l] && in->d[0] >= 0)
                lanes[l]->regs[in->d[0]] = v;
        break;
    }
    case OP_redux: {
        uint64_t acc = 0;
        int have = 0;
        for (uint32_t l = 0; l < 32; l++) {
            if (!lanes[l])
                continue;
            uint64_t v = zx(lanes[l]->regs[in->s[0]], 32);
            acc = have ? atom_apply(in->mod, in->type, acc, v, 0) : v;
            have = 1;
        }
        for (uint32_t l = 0; l < 32; l++)
            if (lanes[l] && in->d[0] >= 0)
                lanes[l]->regs[in->d[0]] = acc;
        break;
    }
    case OP_activemask:
        for (uint32_t l = 0; l < 32; l++)
            if (lanes[l] && in->d[0] >= 0)
                lanes[l]->regs[in->d[0]] = group;
        break;
    case OP_warpsync:
        break;
    case OP_mma: {
        /* .sync.aligned: every lane of the warp executes the same mma */
        if (group != 0xffffffffu)
            return launch_fail(w, first, PTX_ERR_LAUNCH_FAILED, "mma reached by lanes 0x%x "
                               "of warp %u only (all 32 must execute it)", group, warp);
        const struct pmma *mm = &first->fn->mmas[in->target];
        uint64_t *regs[32];
        for (uint32_t l = 0; l < 32; l++)
            regs[l] = lanes[l]->regs;
        if (mm->kind == MMA_LDMATRIX) {
            int rc = ldmatrix_rows(w, lanes, in, mm, regs);
            if (rc)
                return rc;
        } else if (mm->kind == MMA_MOVMATRIX) {
            ptx_movmatrix_warp(mm, regs);
        } else {
            ptx_mma_warp(mm, regs);
        }
        break;
    }
    case OP_match: {
        unsigned bits = TBITS[in->type];
        for (uint32_t l = 0; l < 32; l++) {
            if (!lanes[l])
                continue;
            uint64_t v = zx(lanes[l]->regs[in->s[0]], bits);
            uint32_t m = 0;
            for (uint32_t k = 0; k < 32; k++)
                if (lanes[k] && zx(lanes[k]->regs[in->s[0]], bits) == v)
                    m |= 1u << k;
            res[l] = m;
        }
        int all = 1;
        for (uint32_t l = 0; l < 32; l++)
            if (lanes[l] && res[l] != group)
                all = 0;
        for (uint32_t l = 0; l < 32; l++) {
            if (!lanes[l])
                continue;
            uint64_t v = in->mod == MATCH_ANY ? res[l] : (all ? group : 0);
            if (in->d[0] >= 0)
                lanes[l]->regs[in->d[0]] = v;
            if (in->d[1] >= 0)
                lanes[l]->regs[in->d[1]] = (uint64_t)all;
        }
        break;
    }
    default:
        return unsupported(w, first, in);
    }
    for (uint32_t l = 0; l < 32; l++) {
        if (!lanes[l])
            continue;
        lanes[l]->pc++;
        lanes[l]->state = TS_RUN;
    }
    w->icount += (uint64_t)__builtin_popcount(group);
    return 0;
}

/* ---- translated code (ptx_jit.c) ------------------------------------------------------ */

/* Whether a launch of kfn with `threads` threads in all runs translated: always, except in the
 * auto mode (ptx_set_translator), where a kernel is translated once this launch is expected to
 * run the threshold's instructions (threads x its instruction count: a kernel with loops runs
 * more) or its earlier interpreted launches have run that many. Libraries launch many kernels
 * a few times each, which LLVM's compile time (0.05-2 s a kernel) would dominate. */
static _Atomic uint64_t *interp_work(const struct pfunc *kfn)
{
    /* launches share the program read-only, apart from counters such as this one */
    return &((struct pfunc *)kfn)->interp_work;
}

static int worth_translating(const struct pfunc *kfn, uint64_t threads)
{
    int mode = ptx_jit_enabled();
    if (mode != PTX_TRANSLATE_AUTO)
        return mode != PTX_TRANSLATE_OFF;
    uint64_t hot = ptx_jit_threshold();
    if (atomic_load_explicit(interp_work(kfn), memory_order_relaxed) >= hot)
        return 1;
    return kfn->ncode && threads >= hot / kfn->ncode;
}

/* The frame translated code runs with: the block's fields, set when the block starts. */
static void jit_frame_block(struct worker *w)
{
    struct launch_ctx *L = w->L;
    const struct ptx_launch *l = L->l;
    struct jit_frame *f = &w->jit_frame;
    memset(f, 0, sizeof(*f));
    f->gc = w->jit_gc;
    f->shared = w->shared;
    f->shared_size = L->shared_size;
    f->param_size = L->kfn->frame_param;
    f->nthreads = L->nthreads;
    for (int i = 0; i < 3; i++) {
        f->ntid[i] = l->block[i];
        f->ctaid[i] = w->ctaid[i];
        f->nctaid[i] = l->grid[i];
    }
    f->dynsmem = l->dynamic_shared;
    f->totalsmem = L->shared_size;
    f->dynbase = L->dyn_base;
    f->w = w;
}

/* ... and thread t's (block mode: thread 0's, whose parameter area and register template
 * every thread of the block shares). */
static struct jit_frame *jit_frame_thread(struct worker *w, struct thr *t)
{
    struct jit_frame *f = &w->jit_frame;
    f->regs = t->regs;
    f->local = t->local;
    f->local_size = t->localtop;
    f->param = t->param;
    f->icount = 0;
    f->budget = w->poll_at > w->icount ? w->poll_at - w->icount : 0;
    f->t = t;
    return f;
}

/* In block mode one thread state stands for the thread the code is at (error messages). */
static struct thr *jit_thr(struct jit_frame *f)
{
    struct worker *w = f->w;
    struct thr *t = f->t;
    if (w->L->jit_block) {
        const struct ptx_launch *l = w->L->l;
        t->linear = (uint32_t)f->lin;
        t->tid[0] = t->linear % l->block[0];
        t->tid[1] = (t->linear / l->block[0]) % l->block[1];
        t->tid[2] = t->linear / (l->block[0] * l->block[1]);
    }
    return t;
}

static uint64_t jit_step(struct jit_frame *f, uint32_t pc)
{
    struct worker *w = f->w;
    struct thr *t = jit_thr(f);
    t->pc = pc;
    w->single = 1;
    int rc = run_thread(w, t);
    w->single = 0;
    return rc || t->state != TS_RUN || t->pc != pc + 1;
}

static uint8_t *jit_mem(struct jit_frame *f, uint32_t pc, uint64_t a, uint64_t len,
                        uint32_t space)
{
    struct worker *w = f->w;
    struct thr *t = jit_thr(f);
    t->pc = pc;
    uint8_t *p = mem_ptr(w, t, (int)space, a, len);
    int global = space == SP_GLOBAL || space == SP_CONST ||
                 (space == SP_GENERIC && a - SH_WIN >= WIN_SIZE && a - LO_WIN >= WIN_SIZE);
    if (p && global && a - w->cbase < w->csize) { /* mem_ptr cached its allocation */
        struct jit_gslot *s = &w->jit_gc[w->jit_gnext++ % JIT_GSLOTS];
        s->base = w->cbase;
        s->size = w->csize;
        s->host = w->chost;
    }
    return p;
}

static uint64_t jit_poll(struct jit_frame *f, uint32_t pc, uint64_t count)
{
    struct worker *w = f->w;
    struct thr *t = jit_thr(f);
    w->icount += count;
    if (w->jit_lin != f->lin) { /* block mode: a new thread's loop */
        w->jit_lin = f->lin;
        w->jit_slice = 0;
    }
    w->jit_slice += count;
    if (pc != UINT32_MAX) /* else between two threads of a block */
        t->pc = pc;
    if (poll_launch(w, t, 0))
        return 1;
    f->budget = w->poll_at > w->icount ? w->poll_at - w->icount : 0;
    /* a long loop (maybe waiting for another thread): let the others run from pc (block
     * modes: the interpreter runs the rest of the block) */
    return pc != UINT32_MAX && w->jit_slice >= TIME_SLICE;
}

static uint64_t jit_coll(struct jit_frame *f, uint32_t warp);

static const struct ptx_jit_helpers jit_helpers = {
    .step = jit_step, .mem = jit_mem, .poll = jit_poll, .coll = jit_coll,
};

/* Runs thread t in its translation until it exits or blocks (the interpreter when it is in
 * a call or parked at a lockstep access). */
static int jit_thread(struct worker *w, struct thr *t)
{
    struct launch_ctx *L = w->L;
    if (t->depth != 1 || t->released)
        return run_thread(w, t);
    struct jit_frame *f = jit_frame_thread(w, t);
    w->jit_slice = 0;
    uint64_t r = L->jit(f, t->pc);
    w->icount += f->icount;
    switch ((unsigned)(r >> 32)) {
    case JIT_EXIT:
        t->state = TS_EXIT;
        t->pc = (uint32_t)r;
        return 0;
    case JIT_STOP:
        return atomic_load_explicit(&L->failed, memory_order_acquire) ? L->code : 0;
    case JIT_BAR: /* as run_thread's OP_bar */
        t->bar_id = (uint32_t)f->bar_id;
        t->bar_count = (uint32_t)f->bar_count;
        t->state = TS_BAR;
        t->pc = (uint32_t)r;
        return 0;
    default:
        t->pc = (uint32_t)r;
        return run_thread(w, t);
    }
}

/* Starts threads [from, n) of the block for the interpreter. */
static int start_threads(struct worker *w, uint32_t from)
{
    const struct ptx_launch *l = w->L->l;
    for (uint32_t i = from; i < w->L->nthreads; i++) {
        struct thr *t = &w->threads[i];
        t->linear = i;
        t->tid[0] = i % l->block[0];
        t->tid[1] = (i / l->block[0]) % l->block[1];
        t->tid[2] = i / (l->block[0] * l->block[1]);
        int rc = thread_start(w, t);
        if (!rc && w->icount >= w->poll_at) /* zeroing local memory may take a while */
            rc = poll_launch(w, t, 0);
        if (rc)
            return rc;
    }
    return 0;
}

/* A thread of a block-mode translation looped past its time slice (it may wait for a later
 * thread of its block): the interpreter takes over the rest of the block, that thread from
 * where it is (its registers are in thread 0's), the threads after it from their start. */
static int jit_handoff(struct worker *w, uint32_t cur)
{
    struct thr *t0 = &w->threads[0], *tc = &w->threads[cur];
    uint32_t pc = t0->pc;
    int rc = start_threads(w, cur == 0 ? 1 : cur);
    if (rc)
        return rc;
    if (cur != 0)
        memcpy(tc->regs, t0->regs, w->L->kfn->nregs * sizeof(uint64_t));
    for (uint32_t i = 0; i < cur; i++)
        w->threads[i].state = TS_EXIT;
    tc->pc = pc;
    tc->state = TS_RUN;
    return 0;
}

/* The same for phase mode, where every thread's state is in its spill record: threads that
 * reached the barrier in this round wait there, those at a collective wait at it, the others
 * run from where their record says (thread cur from the yield), or start. */
static int jit_handoff_phases(struct worker *w, uint32_t cur)
{
    (void)cur;
    const struct ptx_jit_info *ji = &w->L->jit_info;
    uint64_t round = w->jit_frame.round;
    int rc = start_threads(w, 0);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < w->L->nthreads; i++) {
        struct thr *t = &w->threads[i];
        const uint64_t *rec = &w->jit_spill[(size_t)i * (ji->nspill + JIT_REC_HEAD)];
        if (rec[0] == JIT_SPILL_FRESH)
            continue;
        if (rec[0] == JIT_SPILL_EXITED) {
            t->state = TS_EXIT;
            continue;
        }
        for (uint32_t k = 0; k < ji->nspill; k++)
            t->regs[ji->spill[k]] = rec[JIT_REC_HEAD + k];
        t->pc = (uint32_t)rec[1];
        if (rec[0] == JIT_SPILL_BAR && rec[2] == round) { /* at the barrier before pc */
            t->pc--;
            t->bar_id = 0;
            t->bar_count = 0;
            t->state = TS_BAR;
        } else if (rec[0] == JIT_SPILL_COLL) {
            t->state = TS_COLL;
        }
    }
    return 0;
}

/* Phase mode: the collectives the lanes of a warp wait at, resolved by resolve_group on
 * stand-in register files (the operands from the lanes' records, the results back to them),
 * groups of lanes at the same instruction in lane order, as run_block does. */
static uint64_t jit_coll(struct jit_frame *f, uint32_t warp)
{
    struct worker *w = f->w;
    struct launch_ctx *L = w->L;
    const struct ptx_jit_info *ji = &L->jit_info;
    const struct pfunc *fn = L->kfn;
    size_t stride = ji->nspill + JIT_REC_HEAD;
    uint32_t base = warp * 32, pending = 0;
    uint64_t *saved[32];
    for (uint32_t l = 0; l < 32 && base + l < L->nthreads; l++)
        if (w->jit_spill[(base + l) * stride] == JIT_SPILL_COLL)
            pending |= 1u << l;
    while (pending) {
        uint32_t l0 = (uint32_t)__builtin_ctz(pending), group = 0;
        uint64_t pc = w->jit_spill[(base + l0) * stride + 1];
        for (uint32_t l = l0; l < 32; l++)
            if (((pending >> l) & 1) && w->jit_spill[(base + l) * stride + 1] == pc)
                group |= 1u << l;
        pending &= ~group;
        const struct pins *in = &fn->code[pc];
        for (uint32_t l = 0; l < 32; l++) {
            if (!((group >> l) & 1))
                continue;
            struct thr *t = &w->threads[base + l];
            const uint64_t *rec = &w->jit_spill[(base + l) * stride];
            saved[l] = t->regs;
            t->regs = &w->jit_lregs[(size_t)l * fn->nregs];
            for (unsigned j = 0; j < 5; j++) {
                int32_t r = in->s[j];
                if (r >= 0)
                    t->regs[r] = ji->slot_of[r] >= 0 ? rec[JIT_REC_HEAD + ji->slot_of[r]]
                                                     : fn->reg_init[r];
            }
            t->fn = fn;
            t->pc = (uint32_t)pc;
            t->state = TS_COLL;
        }
        int rc = resolve_group(w, warp, group);
        for (uint32_t l = 0; l < 32; l++) {
            if (!((group >> l) & 1))
                continue;
            struct thr *t = &w->threads[base + l];
            uint64_t *rec = &w->jit_spill[(base + l) * stride];
            for (unsigned j = 0; j < 4; j++) {
                int32_t r = in->d[j];
                if (r >= 0 && ji->slot_of[r] >= 0)
                    rec[JIT_REC_HEAD + ji->slot_of[r]] = t->regs[r];
            }
            rec[0] = JIT_SPILL_RUN;
            rec[1] = pc + 1;
            t->regs = saved[l];
        }
        if (rc)
            return 1;
    }
    return 0;
}

/* Phase mode's spill records, one per thread, and 32 stand-in register files for the
 * collectives, within the host thread's share of the launch budget (else the block runs in
 * the interpreter). */
static int jit_spill_records(struct worker *w, struct jit_frame *f)
{
    struct launch_ctx *L = w->L;
    size_t stride = L->jit_info.nspill + JIT_REC_HEAD;
    size_t n = (size_t)L->nthreads * stride, nl = (size_t)32 * L->kfn->nregs;
    if ((n + nl) * sizeof(uint64_t) > L->allow)
        return -1;
    if (w->jit_spill_cap < n + nl) {
        uint64_t *p = realloc(w->jit_spill, (n + nl) * sizeof(uint64_t));
        if (!p)
            return -1;
        w->jit_spill = p;
        w->jit_spill_cap = n + nl;
    }
    w->jit_lregs = w->jit_spill + n;
    for (uint32_t i = 0; i < L->nthreads; i++)
        w->jit_spill[(size_t)i * stride] = JIT_SPILL_FRESH;
    f->spill = w->jit_spill;
    return 0;
}

/* Block modes: the translation runs every thread of the block. 0: the block is done; 1: the
 * interpreter goes on with it (jit_handoff*, or no room for spill records); else the launch
 * error. */
static int jit_block(struct worker *w)
{
    struct launch_ctx *L = w->L;
    struct thr *t = &w->threads[0];
    memset(t->tid, 0, sizeof(t->tid));
    t->linear = 0;
    int rc = thread_start(w, t);
    if (rc)
        return rc;
    struct jit_frame *f = jit_frame_thread(w, t);
    int phases = L->jit_info.mode == JIT_PHASES;
    if (phases && jit_spill_records(w, f)) {
        rc = start_threads(w, 0);
        return rc ? rc : 1;
    }
    w->jit_lin = 0;
    w->jit_slice = 0;
    uint64_t r = L->jit(f, 0);
    w->icount += f->icount;
    if ((unsigned)(r >> 32) == JIT_EXIT)
        return 0;
    if (atomic_load_explicit(&L->failed, memory_order_acquire))
        return L->code;
    rc = phases ? jit_handoff_phases(w, (uint32_t)f->lin) : jit_handoff(w, (uint32_t)f->lin);
    return rc ? rc : 1;
}

static int run_block(struct worker *w)
{
    struct launch_ctx *L = w->L;
    uint32_t n = L->nthreads;
    memset(w->shared, 0, L->shared_size);
    memset(w->arrived, 0, sizeof(w->arrived));
    charge(w, L->shared_size >> CHARGE_SHIFT);
    w->call_bytes = 0;
    if (L->jit)
        jit_frame_block(w);
    int rc0 = L->jit_block ? jit_block(w) : start_threads(w, 0);
    if (rc0 != (L->jit_block ? 1 : 0))
        return rc0;
    for (;;) {
        int any_run = 0;
        if (w->icount >= w->poll_at) {
            int prc = poll_launch(w, NULL, 0);
            if (prc)
                return prc;
        }
        for (uint32_t i = 0; i < n; i++) {
            struct thr *t = &w->threads[i];
            if (t->state != TS_RUN)
                continue;
            int rc = L->jit && !L->jit_block ? jit_thread(w, t) : run_thread(w, t);
            if (rc || atomic_load_explicit(&L->failed, memory_order_relaxed))
                return rc ? rc : L->code;
            if (t->state == TS_RUN) /* its time slice ended */
                any_run = 1;
        }
        /* collectives of warps whose lanes are all blocked or done */
        int progressed = 0;
        for (uint32_t wb = 0; wb < n; wb += 32) {
            uint32_t warp = wb / 32;
            uint32_t pending = 0, running = 0;
            for (uint32_t l2 = 0; l2 < 32 && wb + l2 < n; l2++) {
                if (w->threads[wb + l2].state == TS_COLL)
                    pending |= 1u << l2;
                else if (w->threads[wb + l2].state == TS_RUN)
                    running = 1;
            }
            if (running)
                continue;
            while (pending) {
                uint32_t l0 = (uint32_t)__builtin_ctz(pending);
                const struct thr *t0 = &w->threads[wb + l0];
                uint32_t group = 0;
                for (uint32_t l2 = l0; l2 < 32; l2++) {
                    if (!((pending >> l2) & 1))
                        continue;
                    const struct thr *t2 = &w->threads[wb + l2];
                    if (t2->fn == t0->fn && t2->pc == t0->pc && t2->depth == t0->depth)
                        group |= 1u << l2;
                }
                pending &= ~group;
                int rc = resolve_group(w, warp, group);
                if (rc)
                    return rc;
                progressed = 1;
            }
        }
        if (progressed || any_run)
            continue;
        /* every live thread waits at a barrier: release those that are complete (a barrier
         * without a thread count waits for every thread that has not exited) */
        uint32_t waiting[16] = {0}, popc[16] = {0}, count[16] = {0}, live = 0;
        for (uint32_t i = 0; i < n; i++) {
            const struct thr *t = &w->threads[i];
            if (t->state == TS_EXIT)
                continue;
            live++;
            if (t->state == TS_BAR) {
                waiting[t->bar_id]++;
                popc[t->bar_id] += t->barval;
                if (t->bar_count)
                    count[t->bar_id] = t->bar_count;
            }
        }
        if (live == 0)
            return 0; /* all exited */
        uint32_t done = 0;
        for (uint32_t id = 0; id < 16; id++) {
            uint32_t expected = count[id] ? count[id] : live;
            if (waiting[id] && waiting[id] + w->arrived[id] >= expected) {
                done |= 1u << id;
                uint32_t from_arrive = expected > waiting[id] ? expected - waiting[id] : 0;
                w->arrived[id] -= from_arrive < w->arrived[id] ? from_arrive : w->arrived[id];
            }
        }
        if (!done)
            return launch_fail(w, NULL, PTX_ERR_LAUNCH_FAILED, "barrier deadlock: %u threads "
                               "wait at barriers that cannot complete", live);
        for (uint32_t i = 0; i < n; i++) {
            struct thr *t = &w->threads[i];
            if (t->state != TS_BAR || !((done >> t->bar_id) & 1))
                continue;
            const struct pins *in = &t->fn->code[t->pc];
            if (in->op == OP_barred && in->d[0] >= 0) {
                uint32_t p = popc[t->bar_id], wt = waiting[t->bar_id];
                t->regs[in->d[0]] = in->mod == 1 ? p : in->mod == 2 ? p == wt : p != 0;
            }
            t->barval = 0;
            t->pc++;
            t->state = TS_RUN;
        }
    }
}

static int worker_from_cache(struct worker *w);
static void worker_release(struct worker *w, int drop);

/* Runs blocks until none is left (or the launch failed), on the calling host thread, with
 * that thread's cached thread states. */
static void worker_run(struct worker *w)
{
    struct launch_ctx *L = w->L;
    const struct ptx_launch *l = L->l;
    int e = worker_from_cache(w);
    if (e) {
        grow_fail(w, NULL, e, "the block's threads");
        worker_release(w, 1);
        return;
    }
    for (;;) {
        if (poll_launch(w, NULL, 0))
            break;
        uint64_t b = atomic_fetch_add(&L->next_block, 1);
        if (b >= L->nblocks)
            break;
        w->ctaid[0] = (uint32_t)(b % l->grid[0]);
        w->ctaid[1] = (uint32_t)((b / l->grid[0]) % l->grid[1]);
        w->ctaid[2] = (uint32_t)(b / ((uint64_t)l->grid[0] * l->grid[1]));
        if (run_block(w))
            break;
    }
    free(w->jit_spill);
    w->jit_spill = NULL;
    /* a cancelled launch frees what its host threads hold */
    worker_release(w, __atomic_load_n(L->cancel, __ATOMIC_RELAXED) != 0);
}

/* ---- host thread pool ----------------------------------------------------------------- */

/* Helpers stay alive between launches (starting threads for every launch costs more than a
 * small grid takes to run); a launch borrows idle ones and starts more up to POOL_MAX. */
#define POOL_MAX 256

struct pool_thread {
    pthread_cond_t cv;
    struct worker *job;
    struct pool_thread *next;
};

static pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pool_thread *g_pool_idle;
static unsigned g_pool_count, g_pool_nidle;
/* signalled when a helper goes back to the idle list (a cooperative launch may be waiting) */
static pthread_cond_t g_pool_freed = PTHREAD_COND_INITIALIZER;

static void *pool_main(void *arg)
{
    struct pool_thread *pt = arg;
    pthread_mutex_lock(&g_pool_lock);
    for (;;) {
        while (!pt->job)
            pthread_cond_wait(&pt->cv, &g_pool_lock);
        struct worker *w = pt->job;
        pthread_mutex_unlock(&g_pool_lock);
        worker_run(w);
        struct launch_ctx *L = w->L;
        pthread_mutex_lock(&g_pool_lock);
        pt->job = NULL;
        pt->next = g_pool_idle;
        g_pool_idle = pt;
        g_pool_nidle++;
        pthread_cond_broadcast(&g_pool_freed);
        pthread_mutex_unlock(&g_pool_lock);
        /* the last access to the launch: it may return as soon as the lock is released */
        pthread_mutex_lock(&L->lock);
        if (--L->pending == 0)
            pthread_cond_signal(&L->done);
        pthread_mutex_unlock(&L->lock);
        pthread_mutex_lock(&g_pool_lock);
    }
    return NULL;
}

/* Hands each of ws[0..n) to a pool thread; returns how many were handed out. all (cooperative
 * launches, whose blocks must all run at once): first waits until the pool can give n at once
 * (other launches' helpers come back when their grids end; n <= POOL_MAX), instead of failing
 * because another launch holds them. */
static unsigned pool_dispatch(struct worker *ws, unsigned n, struct launch_ctx *L, int all)
{
    unsigned given = 0;
    pthread_mutex_lock(&g_pool_lock);
    while (all && n <= POOL_MAX && g_pool_nidle + (POOL_MAX - g_pool_count) < n)
        pthread_cond_wait(&g_pool_freed, &g_pool_lock);
    for (; given < n; given++) {
        struct pool_thread *pt = g_pool_idle;
        if (pt) {
            g_pool_idle = pt->next;
            g_pool_nidle--;
        } else {
            if (g_pool_count >= POOL_MAX)
                break;
            pt = calloc(1, sizeof(*pt));
            if (!pt)
                break;
            if (pthread_cond_init(&pt->cv, NULL)) {
                free(pt);
                break;
            }
            pthread_t tid;
            pthread_attr_t attr;
            sigset_t all, old;
            int ok = pthread_attr_init(&attr) == 0;
            if (ok && pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED)) {
                pthread_attr_destroy(&attr);
                ok = 0;
            }
            if (ok) {
                /* helpers never take the process's signals */
                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                ok = pthread_create(&tid, &attr, pool_main, pt) == 0;
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                pthread_attr_destroy(&attr);
            }
            if (!ok) {
                pthread_cond_destroy(&pt->cv);
                free(pt);
                break;
            }
            g_pool_count++;
        }
        pthread_mutex_lock(&L->lock);
        L->pending++;
        pthread_mutex_unlock(&L->lock);
        pt->job = &ws[given];
        pthread_cond_signal(&pt->cv);
    }
    pthread_mutex_unlock(&g_pool_lock);
    return given;
}

static void threads_free(struct thr *threads, size_t n)
{
    if (!threads)
        return;
    for (size_t i = 0; i < n; i++) {
        free(threads[i].regstack);
        free(threads[i].local);
        free(threads[i].param);
        free(threads[i].frames);
    }
    free(threads);
}

#define CACHE_MAX_BYTES (16u << 20) /* larger states are freed after their launch */
#define CACHE_TOTAL_MAX (64u << 20) /* all host threads' caches between launches together */

static pthread_key_t g_cache_key;
static pthread_once_t g_cache_once = PTHREAD_ONCE_INIT;
static int g_cache_ok;

/* The process's host memory for launches: each running launch holds a reservation from `cap`
 * (its budget, see pool_reserve); states cached between launches are counted in `cached`, at
 * most CACHE_TOTAL_MAX beside the cap. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    uint64_t cap, reserved, cached;
} g_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTX_HOST_POOL_DEFAULT, 0, 0};

void ptx_set_host_pool(uint64_t bytes)
{
    pthread_mutex_lock(&g_pool.lock);
    g_pool.cap = bytes ? bytes : PTX_HOST_POOL_DEFAULT;
    pthread_cond_broadcast(&g_pool.freed);
    pthread_mutex_unlock(&g_pool.lock);
}

/* Moves a cache in (rest 1) or out of the at-rest count; 0 when it may not rest (full). */
static int cache_rest(struct state_cache *c, int rest)
{
    int ok = 1;
    if (c->at_rest == rest)
        return 1;
    pthread_mutex_lock(&g_pool.lock);
    if (!rest)
        g_pool.cached -= c->bytes;
    else if (g_pool.cached + c->bytes <= CACHE_TOTAL_MAX)
        g_pool.cached += c->bytes;
    else
        ok = 0;
    pthread_mutex_unlock(&g_pool.lock);
    if (ok)
        c->at_rest = rest;
    return ok;
}

static void cache_destroy(void *p)
{
    struct state_cache *c = p;
    cache_rest(c, 0);
    threads_free(c->threads, c->nthreads);
    free(c->shared);
    free(c);
}

/* Takes the launch's host budget out of the pool: up to `want` bytes, at least `need` (one
 * block's states), waiting while other launches hold too much of it; a cancelled launch stops
 * waiting. 0 (*got set), or -ECANCELED. `need` is at most the cap (checked by the caller). */
static int pool_reserve(const struct launch_ctx *L, uint64_t need, uint64_t want, uint64_t *got)
{
    int rc = 0;
    pthread_mutex_lock(&g_pool.lock);
    while (g_pool.reserved + need > g_pool.cap) {
        struct timespec ts;
        if (__atomic_load_n(L->cancel, __ATOMIC_RELAXED)) {
            rc = -ECANCELED;
            break;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000; /* a cancel is seen within 20 ms */
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&g_pool.freed, &g_pool.lock, &ts);
    }
    if (rc == 0) {
        uint64_t left = g_pool.cap > g_pool.reserved ? g_pool.cap - g_pool.reserved : 0;
        *got = want < left ? want : left;
        g_pool.reserved += *got;
    }
    pthread_mutex_unlock(&g_pool.lock);
    return rc;
}

static void pool_release(uint64_t bytes)
{
    pthread_mutex_lock(&g_pool.lock);
    g_pool.reserved -= bytes;
    pthread_cond_broadcast(&g_pool.freed);
    pthread_mutex_unlock(&g_pool.lock);
}

static uint64_t pool_cap(void)
{
    pthread_mutex_lock(&g_pool.lock);
    uint64_t cap = g_pool.cap;
    pthread_mutex_unlock(&g_pool.lock);
    return cap;
}

static void cache_init(void)
{
    g_cache_ok = pthread_key_create(&g_cache_key, cache_destroy) == 0;
}

/* Host bytes cache c holds once grown to run a block of the launch: what it holds, and what
 * its threads' buffers, its thread array and its shared buffer still lack. */
static uint64_t cache_fit(const struct state_cache *c, const struct launch_ctx *L)
{
    const struct pfunc *k = L->kfn;
    uint64_t need = c->bytes;
    size_t n = L->nthreads;
    for (size_t i = 0; i < n && i < c->nthreads; i++) {
        const struct thr *t = &c->threads[i];
        if (t->regcap < (size_t)k->nregs + 1)
            need += ((uint64_t)k->nregs + 1 - t->regcap) * sizeof(uint64_t);
        if (t->paramcap < (size_t)k->frame_param + 1)
            need += (size_t)k->frame_param + 1 - t->paramcap;
        if (t->localcap < (size_t)k->local_bytes + 1)
            need += (size_t)k->local_bytes + 1 - t->localcap;
        if (t->framecap < 1)
            need += sizeof(struct frame);
    }
    if (n > c->nthreads)
        need += (uint64_t)(n - c->nthreads) *
                (sizeof(struct thr) + ((uint64_t)k->nregs + 1) * sizeof(uint64_t) +
                 k->frame_param + 1 + k->local_bytes + 1 + sizeof(struct frame));
    size_t sh = L->shared_size ? L->shared_size : 1;
    if (c->shared_cap < sh)
        need += sh - c->shared_cap;
    return need;
}

/* Gives the worker its host thread's cached states, grown for the launch's blocks within the
 * host thread's share of the budget (a cache that cannot grow within it is freed first and
 * started afresh); 0, -E2BIG or -ENOMEM. */
static int worker_from_cache(struct worker *w)
{
    struct launch_ctx *L = w->L;
    pthread_once(&g_cache_once, cache_init);
    struct state_cache *c = g_cache_ok ? pthread_getspecific(g_cache_key) : NULL;
    if (c)
        cache_rest(c, 0); /* from here on inside this launch's budget */
    if (c && cache_fit(c, L) > L->allow) {
        pthread_setspecific(g_cache_key, NULL); /* cannot fail for a key that has a value */
        cache_destroy(c);
        c = NULL;
    }
    w->cache_owned = 0;
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c)
            return -ENOMEM;
        if (!g_cache_ok || pthread_setspecific(g_cache_key, c))
            w->cache_owned = 1; /* used for this launch only */
    }
    w->cache = c;
    size_t old = c->nthreads;
    int e = grow(w, (void **)&c->threads, &c->nthreads, L->nthreads, sizeof(struct thr), 0);
    if (e)
        return e;
    memset(c->threads + old, 0, (c->nthreads - old) * sizeof(struct thr));
    e = grow(w, (void **)&c->shared, &c->shared_cap, L->shared_size ? L->shared_size : 1, 1,
             0);
    if (e)
        return e;
    w->threads = c->threads;
    w->shared = c->shared;
    return 0;
}

/* After the worker's last block: keeps its states in its host thread's cache, unless asked to
 * drop them, they hold more than CACHE_MAX_BYTES, all caches at rest would then hold more than
 * CACHE_TOTAL_MAX, or they were not the host thread's. */
static void worker_release(struct worker *w, int drop)
{
    struct state_cache *c = w->cache;
    w->threads = NULL;
    w->shared = NULL;
    w->cache = NULL;
    if (!c)
        return;
    if (!w->cache_owned && !drop && c->bytes <= CACHE_MAX_BYTES && cache_rest(c, 1))
        return;
    if (!w->cache_owned)
        pthread_setspecific(g_cache_key, NULL);
    cache_destroy(c);
}

/* Before the first launch: variables initialised with other variables' addresses get them in
 * device memory (the backend copied their initial bytes, zeros there, before all addresses were
 * known). A slot the program already changed is left alone. */
static int apply_relocations(struct ptx_program *prog, const struct ptx_memory *mem, char *err,
                             size_t errlen)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    int rc = PTX_OK;
    pthread_mutex_lock(&lock);
    if (atomic_load(&prog->relocated))
        goto unlock;
    for (uint32_t i = 0; i < prog->nglobals && rc == PTX_OK; i++) {
        const struct pglobal *g = &prog->globals[i];
        for (uint32_t j = 0; j < g->nrelocs; j++) {
            const struct preloc *r = &g->relocs[j];
            const struct pglobal *t = &prog->globals[r->target];
            uint64_t base, size;
            if (!g->bound || !t->bound) {
                if (err && errlen)
                    snprintf(err, errlen, "module variable %s has no device address",
                             g->bound ? t->name : g->name);
                rc = PTX_ERR_INVALID_VALUE;
                break;
            }
            uint8_t *h = mem->resolve(mem->ctx, g->addr + r->offset, 8, &base, &size);
            if (!h) {
                if (err && errlen)
                    snprintf(err, errlen, "module variable %s: its device memory is gone",
                             g->name);
                rc = PTX_ERR_ILLEGAL_ADDRESS;
                break;
            }
            uint64_t v;
            memcpy(&v, h, 8);
            if (v == 0) {
                v = t->addr + (uint64_t)r->addend;
                memcpy(h, &v, 8);
            }
        }
    }
    if (rc == PTX_OK)
        atomic_store(&prog->relocated, 1);
unlock:
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Index of a module variable used by the kernel (or a function it calls) that has no device
 * address yet or an initialiser the engine cannot honour; -1 if none; -ENOMEM. */
static int unbound_global(const struct ptx_program *prog, uint32_t kfunc)
{
    uint8_t *seen = calloc(prog->nfuncs, 1);
    uint32_t *stack = calloc(prog->nfuncs, sizeof(uint32_t));
    int found = -1;
    if (!seen || !stack) {
        free(seen);
        free(stack);
        return -ENOMEM;
    }
    uint32_t sp = 0;
    stack[sp++] = kfunc;
    seen[kfunc] = 1;
    while (sp && found < 0) {
        const struct pfunc *f = &prog->funcs[stack[--sp]];
        for (uint32_t j = 0; j < f->npatches && found < 0; j++) {
            int32_t g = f->patches[j].global;
            if (g >= 0 && (!prog->globals[g].bound || prog->globals[g].bad_init))
                found = g;
        }
        for (uint32_t c = 0; c < f->ncalls; c++) {
            uint32_t t = f->calls[c].func;
            if (t < prog->nfuncs && !seen[t]) {
                seen[t] = 1;
                stack[sp++] = t;
            }
        }
    }
    free(seen);
    free(stack);
    return found;
}

/* Before a kernel's first launch: every module variable it (or a function it calls) uses has a
 * device address and an initialiser the engine honours. Variables are bound once and stay so,
 * so a kernel that passed is not walked again (its globals_ok). PTX_OK or the error. */
static int kernel_globals_check(const struct ptx_kernel *k, char *err, size_t errlen)
{
    const struct ptx_program *prog = k->prog;
    int unbound = unbound_global(prog, (uint32_t)k->func);
    if (unbound == -ENOMEM) {
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: out of host memory", k->name);
        return PTX_ERR_OUT_OF_MEMORY;
    }
    if (unbound >= 0 && prog->globals[unbound].bad_init) {
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: module variable %s is initialised with a function "
                     "address (not supported)", k->name, prog->globals[unbound].name);
        return PTX_ERR_NOT_SUPPORTED;
    }
    if (unbound >= 0) {
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: module variable %s has no device address",
                     k->name, prog->globals[unbound].name);
        return PTX_ERR_INVALID_VALUE;
    }
    /* the kernel lives in its program's (mutable) kernel table; only this flag changes */
    atomic_store_explicit(&((struct ptx_kernel *)k)->globals_ok, 1, memory_order_release);
    return PTX_OK;
}

int ptx_launch(const struct ptx_kernel *k, const struct ptx_launch *l, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = 0;
    if (!k || !l || !l->mem || !l->mem->resolve) {
        if (err && errlen)
            snprintf(err, errlen, "ptx_launch: missing kernel, launch or memory");
        return PTX_ERR_INVALID_VALUE;
    }
    if (k->func < 0) {
        if (err && errlen)
            snprintf(err, errlen, "no PTX for kernel %s (the image holds only SASS for it)",
                     k->name);
        return PTX_ERR_NOT_SUPPORTED;
    }
    const struct ptx_program *prog = k->prog;
    const struct pfunc *kfn = &prog->funcs[k->func];
    uint64_t nthreads = (uint64_t)l->block[0] * l->block[1] * l->block[2];
    uint64_t nblocks = (uint64_t)l->grid[0] * l->grid[1] * l->grid[2];
    if (nthreads == 0 || nthreads > 1024 || nblocks == 0 || l->grid[1] > 65535 ||
        l->grid[2] > 65535 || l->block[2] > 64) {
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: invalid launch configuration grid %ux%ux%u "
                     "block %ux%ux%u", k->name, l->grid[0], l->grid[1], l->grid[2],
                     l->block[0], l->block[1], l->block[2]);
        return PTX_ERR_INVALID_VALUE;
    }
    if (kfn->param_bytes && (!l->params || l->params_size < kfn->param_bytes)) {
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: %zu parameter bytes given, %u expected",
                     k->name, l->params ? l->params_size : 0, kfn->param_bytes);
        return PTX_ERR_INVALID_VALUE;
    }
    if (!atomic_load_explicit(&k->globals_ok, memory_order_acquire)) {
        int grc = kernel_globals_check(k, err, errlen);
        if (grc)
            return grc;
    }
    if (prog->has_relocs && !atomic_load(&k->prog->relocated)) {
        int rrc = apply_relocations(k->prog, l->mem, err, errlen);
        if (rrc)
            return rrc;
    }
    uint32_t dyn_base = (kfn->shared_bytes + 15u) & ~15u;
    uint64_t shared = (uint64_t)dyn_base + l->dynamic_shared;
    if (shared > MAX_SHARED_PER_BLOCK) {
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: %llu bytes of shared memory requested", k->name,
                     (unsigned long long)shared);
        return PTX_ERR_LAUNCH_OUT_OF_RESOURCES;
    }
    if (kfn->local_bytes > MAX_LOCAL_STACK) { /* the parser refuses these */
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: %u bytes of local memory per thread, %u max",
                     k->name, kfn->local_bytes, (unsigned)MAX_LOCAL_STACK);
        return PTX_ERR_LAUNCH_OUT_OF_RESOURCES;
    }
    struct launch_ctx L;
    memset(&L, 0, sizeof(L));
    L.prog = prog;
    L.kernel = k;
    L.kfn = kfn;
    L.l = l;
    L.nblocks = nblocks;
    L.nthreads = (uint32_t)nthreads;
    L.shared_size = (uint32_t)shared;
    L.dyn_base = dyn_base;
    L.watchdog = atomic_load(&g_watchdog);
    L.start_charge = 1 + (((uint64_t)kfn->nregs * 8 + kfn->frame_param + kfn->local_bytes) >>
                          CHARGE_SHIFT);
    static const int never;
    L.cancel = l->cancel ? l->cancel : &never;
    L.printf_cap = l->printf_fifo_size ? l->printf_fifo_size : PTX_PRINTF_FIFO_DEFAULT;
    atomic_init(&L.printf_used, 0);
    atomic_init(&L.printf_lost, 0);
    atomic_init(&L.next_block, 0);
    atomic_init(&L.failed, 0);
    /* what a host thread holds to run one block: its thread states and shared memory */
    uint64_t budget = l->max_host_bytes ? l->max_host_bytes : PTX_MAX_HOST_BYTES_DEFAULT;
    const struct state_cache none = {0};
    uint64_t per_block = cache_fit(&none, &L);
    uint64_t cap = pool_cap();
    if (budget > cap)
        budget = cap;
    if (per_block > budget || per_block > MAX_BLOCK_STATE) {
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: a block needs %llu bytes of host memory (%u "
                     "threads with %u bytes of local memory each, %llu of shared memory), "
                     "more than the launch's budget of %llu", k->name,
                     (unsigned long long)per_block, L.nthreads, kfn->local_bytes,
                     (unsigned long long)shared,
                     (unsigned long long)(budget < MAX_BLOCK_STATE ? budget : MAX_BLOCK_STATE));
        return PTX_ERR_LAUNCH_OUT_OF_RESOURCES;
    }
    if (pool_reserve(&L, per_block, budget, &budget) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: launch cancelled while it waited for host memory",
                     k->name);
        return PTX_ERR_LAUNCH_FAILED;
    }
    uint64_t reserved = budget;
    if (pthread_mutex_init(&L.lock, NULL)) {
        pool_release(reserved);
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: pthread_mutex_init failed", k->name);
        return PTX_ERR_OUT_OF_MEMORY;
    }
    unsigned nw = l->host_threads;
    if (nw == 0 && nblocks * nthreads < 8192)
        nw = 1; /* a small grid runs on one host thread anyway (below): no system call */
    if (nw == 0) {
        /* The CPUs this process may run on: no file is read, as the sandboxed worker that
         * runs the engine may not open any. */
        cpu_set_t set;
        int c = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
        nw = c > 0 ? (unsigned)c : 1;
    }
    if (nw > 256)
        nw = 256;
    if (nw > budget / per_block)
        nw = (unsigned)(budget / per_block); /* each host thread holds a block's states */
    if (nw > nblocks)
        nw = (unsigned)nblocks;
    /* starting host threads costs more than a small grid takes to run */
    if (nblocks * nthreads < 8192)
        nw = 1;
    if (l->cooperative) { /* every block co-resident: a host thread each */
        uint64_t most = budget / per_block < PTX_COOP_MAX_BLOCKS ? budget / per_block
                                                                  : PTX_COOP_MAX_BLOCKS;
        if (nblocks > most) {
            pthread_mutex_destroy(&L.lock);
            pool_release(reserved);
            if (err && errlen)
                snprintf(err, errlen, "kernel %s: cooperative launch of %llu blocks, at most "
                         "%llu can be co-resident", k->name, (unsigned long long)nblocks,
                         (unsigned long long)most);
            return PTX_ERR_COOPERATIVE_TOO_LARGE;
        }
        nw = (unsigned)nblocks;
    }
    L.allow = budget / nw;
    int rc = PTX_OK;
    if (pthread_cond_init(&L.done, NULL)) {
        pthread_mutex_destroy(&L.lock);
        pool_release(reserved);
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: pthread_cond_init failed", k->name);
        return PTX_ERR_OUT_OF_MEMORY;
    }
    L.jit = worth_translating(kfn, nblocks * L.nthreads)
                ? ptx_jit_get((struct ptx_program *)prog, (uint32_t)k->func, &jit_helpers,
                              &L.jit_info)
                : NULL;
    L.jit_block = L.jit && L.jit_info.mode != JIT_THREAD;
    if (L.jit)
        atomic_fetch_add(&g_translated, 1);
    struct worker one; /* a one-thread launch (most small ones) needs no heap */
    struct worker *ws = nw == 1 ? memset(&one, 0, sizeof(one)) : calloc(nw, sizeof(*ws));
    if (!ws) {
        rc = PTX_ERR_OUT_OF_MEMORY;
        if (err && errlen)
            snprintf(err, errlen, "kernel %s: out of host memory", k->name);
        goto destroy;
    }
    for (unsigned i = 0; i < nw; i++) {
        ws[i].L = &L;
        ws[i].nthreads = L.nthreads;
    }
    /* the calling thread is worker 0; helpers from the pool run the others (fewer if the
     * pool cannot grow: the grid still completes) */
    unsigned helpers = nw > 1 ? pool_dispatch(ws + 1, nw - 1, &L, l->cooperative) : 0;
    if (l->cooperative && helpers < nw - 1) /* its blocks would wait for each other forever */
        launch_fail(&ws[0], NULL, PTX_ERR_COOPERATIVE_TOO_LARGE, "cooperative launch of %u "
                    "blocks, host threads for only %u (the process's pool is busy)", nw,
                    helpers + 1);
    worker_run(&ws[0]);
    pthread_mutex_lock(&L.lock);
    while (L.pending)
        pthread_cond_wait(&L.done, &L.lock);
    pthread_mutex_unlock(&L.lock);
    uint64_t total = 0;
    for (unsigned i = 0; i <= helpers; i++)
        total += ws[i].icount;
    atomic_fetch_add(&g_icount, total);
    if (!L.jit)
        atomic_fetch_add_explicit(interp_work(kfn), total, memory_order_relaxed);
    if (atomic_load(&L.failed)) {
        rc = L.code;
        if (err && errlen)
            snprintf(err, errlen, "%s", L.err);
    }
    if (ws != &one)
        free(ws);
destroy:
    pthread_cond_destroy(&L.done);
    pthread_mutex_destroy(&L.lock);
    pool_release(reserved);
    return rc;
}
