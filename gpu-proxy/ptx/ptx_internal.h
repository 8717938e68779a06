/* ptx_internal.h - the PTX engine's private data model: the parsed program (functions as
 * compact instruction arrays whose operands are register-file indices), shared between the
 * image loader, the parser and the interpreter. Not part of the public interface. */
#ifndef PTX_INTERNAL_H
#define PTX_INTERNAL_H

#include "ptx.h"

#include <stdint.h>

/* Data types of instructions (suffixes such as .u32 or .f64). */
enum pt {
    PT_NONE = 0,
    PT_B8, PT_B16, PT_B32, PT_B64,
    PT_U8, PT_U16, PT_U32, PT_U64,
    PT_S8, PT_S16, PT_S32, PT_S64,
    PT_F16, PT_F16X2, PT_BF16, PT_BF16X2, PT_F32, PT_F64,
    PT_PRED,
    PT_COUNT
};

/* State spaces. */
enum psp { SP_NONE = 0, SP_GENERIC, SP_GLOBAL, SP_SHARED, SP_LOCAL, SP_PARAM, SP_CONST };

/* Opcodes; PTX_OPS lists name and enum suffix once (names are used in error messages). */
#define PTX_OPS(X) \
    X(unsupported) X(nop) X(mov) X(movlocal) X(ld) X(st) X(cvta) X(cvt) \
    X(add) X(sub) X(mul) X(mad) X(mul24) X(mad24) X(div) X(rem) X(abs) X(neg) X(min) X(max) \
    X(and) X(or) X(xor) X(not) X(cnot) X(shl) X(shr) X(setp) X(selp) X(set) X(slct) \
    X(bra) X(ret) X(exit) X(call) X(bar) X(barred) X(membar) X(atom) X(red) \
    X(shfl) X(vote) X(activemask) X(warpsync) X(match) \
    X(popc) X(clz) X(brev) X(bfe) X(bfi) X(bfind) X(prmt) X(shf) X(fma) X(sqrt) X(rsqrt) \
    X(rcp) X(ex2) X(lg2) X(sin) X(cos) X(tanh) X(testp) X(copysign) X(trap) X(clock) \
    X(addc) X(subc) X(madc) X(sad) X(isspacep) X(prefetch) X(nanosleep) X(dp4a) X(dp2a) \
    X(lop3) X(brkpt) X(cpasync) X(bmsk) X(redux) X(mma) X(cvttf32) \
    X(tex) X(tld4) X(suld) X(sust) X(txq) X(suq)

enum pop {
#define X(n) OP_##n,
    PTX_OPS(X)
#undef X
    OP_COUNT
};

/* Modifier values. */
enum { RND_NONE = 0, RND_RN, RND_RZ, RND_RM, RND_RP, RND_RNI, RND_RZI, RND_RMI, RND_RPI };
enum {
    CMP_EQ = 1, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_LO, CMP_LS, CMP_HI, CMP_HS,
    CMP_EQU, CMP_NEU, CMP_LTU, CMP_LEU, CMP_GTU, CMP_GEU, CMP_NUM, CMP_NAN
};
enum { BOP_NONE = 0, BOP_AND, BOP_OR, BOP_XOR };
enum { SHFL_UP = 1, SHFL_DOWN, SHFL_BFLY, SHFL_IDX };
enum { VOTE_ALL = 1, VOTE_ANY, VOTE_UNI, VOTE_BALLOT };
enum {
    ATOM_ADD = 1, ATOM_MIN, ATOM_MAX, ATOM_INC, ATOM_DEC, ATOM_CAS, ATOM_EXCH, ATOM_AND,
    ATOM_OR, ATOM_XOR
};
enum { TESTP_FINITE = 1, TESTP_INFINITE, TESTP_NUMBER, TESTP_NOTANUMBER, TESTP_NORMAL,
       TESTP_SUBNORMAL };
enum { MATCH_ANY = 1, MATCH_ALL };

/* Instruction flags. */
#define F_FTZ      0x0001
#define F_SAT      0x0002
#define F_HI       0x0004
#define F_LO       0x0008
#define F_WIDE     0x0010
#define F_CC       0x0020 /* writes the carry flag */
#define F_APPROX   0x0040
#define F_SHIFTAMT 0x0080
#define F_WRAP     0x0100
#define F_LEFT     0x0200
#define F_ALOCAL   0x0400 /* address: add the frame's local base */
#define F_A32      0x0800 /* address base register is 32-bit */
#define F_FULL     0x1000
#define F_NEGSRC   0x2000 /* last source predicate negated (setp/selp bool operand) */
#define F_NEGSRC0  0x4000 /* first source predicate negated */
#define F_NEGSRC1  0x8000 /* second source predicate negated */
#define F_LOCKSTEP 0x10000 /* volatile shared/generic ld/st: executed warp-wide in lane order */

struct pins {
    uint16_t op;
    uint8_t type;   /* main type */
    uint8_t type2;  /* cvt source type, setp/set/slct compare type */
    uint8_t mod;    /* rounding / compare / shfl / vote / atom / testp mode */
    uint8_t mod2;   /* setp/set boolean combine op; atom cas etc. */
    uint8_t space;
    uint8_t vec;    /* 1, 2, 4 for ld/st/atom */
    uint32_t flags;
    uint8_t nd, ns;
    uint8_t gneg;   /* guard negated */
    int32_t guard;  /* register index of guard predicate, -1 none */
    int32_t d[4];   /* destinations (register indices; -1 for a sink) */
    int32_t s[5];   /* sources (register indices; constants live in the register file) */
    int32_t areg;   /* address base register, -1 none */
    int64_t aoff;   /* address offset */
    int32_t target; /* branch target instruction, called function index, call frame info */
    uint32_t line;  /* source line */
    const char *text; /* OP_unsupported: what it was (owned by the program's string pool) */
};

/* Special registers that are filled into a frame when it starts. */
enum {
    SR_TID_X, SR_TID_Y, SR_TID_Z, SR_NTID_X, SR_NTID_Y, SR_NTID_Z,
    SR_CTAID_X, SR_CTAID_Y, SR_CTAID_Z, SR_NCTAID_X, SR_NCTAID_Y, SR_NCTAID_Z,
    SR_LANEID, SR_WARPID, SR_NWARPID, SR_SMID, SR_NSMID, SR_GRIDID,
    SR_LANEMASK_EQ, SR_LANEMASK_LT, SR_LANEMASK_LE, SR_LANEMASK_GT, SR_LANEMASK_GE,
    SR_DYNSMEM, SR_TOTALSMEM, SR_CLOCK, SR_CLOCK64, SR_GLOBALTIMER, SR_DYNBASE,
    SR_ENVREG1, SR_ENVREG2, SR_COUNT
};

struct pparam {
    uint32_t offset, size, align;
};

/* A call argument list: caller param-area offsets of the arguments and return values. */
struct pcall {
    uint32_t func;
    uint32_t nargs, nrets;
    uint32_t arg_off[16], ret_off[4];
};

/* A register slot to patch with a module address (global variable or dynamic shared base). */
struct ppatch {
    int32_t reg;
    int32_t global; /* index into program globals */
};

/* Tensor-core instructions (ptx_mma.c): `wmma.load`/`wmma.store` (per lane),
 * `wmma.mma`/`mma.sync`, `ldmatrix` and `movmatrix` (warp-wide); an OP_mma instruction's
 * target indexes pfunc.mmas. */
enum { MT_NONE = 0, MT_F16, MT_BF16, MT_TF32, MT_F32, MT_F64, MT_S8, MT_U8, MT_S32, MT_COUNT };
enum { MMA_LOAD = 1, MMA_STORE, MMA_MMA, MMA_LDMATRIX, MMA_MOVMATRIX };
enum { FR_A = 0, FR_B, FR_C, FR_D };
enum { TF32_RNA = 1, TF32_RN, TF32_RZ };
#define PTX_MMA_MAX_ELEMS 512 /* elements of the largest fragment (m16n8k32's A, 16 x 32) */

struct pmma {
    uint8_t kind;       /* MMA_LOAD, MMA_STORE, MMA_MMA, MMA_LDMATRIX, MMA_MOVMATRIX */
    uint8_t sync;       /* mma.sync (documented layouts) rather than wmma */
    uint8_t frag;       /* load/store: the fragment (FR_A, FR_B, FR_C; FR_D for store) */
    uint8_t col;        /* load/store: column-major in memory; ldmatrix: .trans */
    uint8_t m, n, k;
    uint8_t satfinite;
    uint8_t nmat;       /* ldmatrix: matrices (.x1, .x2, .x4) */
    uint8_t type[4];    /* element type (MT_*) of A, B, C, D */
    uint8_t nr[4];      /* registers of each fragment operand */
    int32_t r[4][8];    /* their register indices */
};

/* Decodes the qualifiers of a wmma/mma instruction ("wmma.load.a.sync...."); -1 for a form
 * the engine does not compute. */
int ptx_mma_decode(const char *op, size_t n, struct pmma *m);
/* Sets fragment f's registers and checks their number against the shape; -1 if wrong. */
int ptx_mma_set_regs(struct pmma *m, int f, const int32_t *regs, unsigned nregs);
/* Elements of fragment f one lane holds, and their size in memory. */
unsigned ptx_mma_lane_elems(const struct pmma *m, int f);
unsigned ptx_mma_elem_bytes(const struct pmma *m, int f);
/* Row and column of element e of fragment f in lane `lane`. */
void ptx_mma_coord(const struct pmma *m, int f, unsigned lane, unsigned e, unsigned *row,
                   unsigned *col);
/* A load/store fragment's element e in a lane's register file (bits), and setting it. */
uint64_t ptx_mma_frag_get(const struct pmma *m, const uint64_t *regs, unsigned e);
void ptx_mma_frag_put(const struct pmma *m, uint64_t *regs, unsigned e, uint64_t v);
/* D = A * B + C over the register files of a whole warp's 32 lanes. */
void ptx_mma_warp(const struct pmma *m, uint64_t *const regs[32]);
/* ldmatrix: rows[i * 8 + q] holds row q (eight b16) of matrix i, read by the caller from
 * the address lane i * 8 + q gave; distributes them to the lanes' destination registers. */
void ptx_ldmatrix_warp(const struct pmma *m, const uint16_t rows[32][8], uint64_t *const regs[32]);
/* movmatrix.sync.aligned.m8n8.trans.b16: transposes the warp's 8x8 b16 matrix. */
void ptx_movmatrix_warp(const struct pmma *m, uint64_t *const regs[32]);
/* cvt.{rna,rn,rz}.tf32.f32 on f32 bits. */
uint32_t ptx_cvt_tf32(uint32_t x, int mode);

/* Texture and surface instructions (ptx_tex.c). mod: the geometry (TG_*); type: the
 * destination type (tex, tld4: f32/s32/u32; suld, sust: b8..b64); type2: the coordinate type
 * (tex, tld4: s32/f32); vec: components (tex, tld4: 4; suld, sust: 1, 2, 4); mod2: tld4's
 * component (0..3), suld/sust's out-of-range mode (SU_*), txq/suq's query (TQ_*).
 * Operands: s[0] the object; tex, tld4, suld: s[1..4] the coordinates in PTX order (a1d, a2d:
 * the layer first), d[0..vec) the results; sust: s[1] the first two coordinates packed (low,
 * high 32 bits), s[2] the third, s[3] and s[4] the data packed into 64-bit words (element i
 * at bit i * bits, across both), so that every register it reads is a source; txq, suq: d[0]. */
enum { TG_1D = 1, TG_2D, TG_3D, TG_A1D, TG_A2D };
enum { SU_TRAP = 0, SU_CLAMP, SU_ZERO };
enum { TQ_WIDTH = 1, TQ_HEIGHT, TQ_DEPTH, TQ_ARRAY_SIZE, TQ_NORMALIZED, TQ_FILTER, TQ_ADDR0,
       TQ_ADDR1, TQ_ADDR2, TQ_MIPMAP_LEVELS, TQ_SAMPLES };
/* Runs one texture or surface instruction of a thread on its registers, resolving the object
 * through tex (NULL: none). 0, or a PTX_ERR_* code with the reason in why. */
int ptx_tex_exec(const struct ptx_textures *tex, const struct pins *in, uint64_t *regs,
                 char *why, size_t whylen);

/* ptx_exec.c: IEEE half precision to float and back (round to nearest even). */
float ptx_f16_to_f32(uint16_t h);
uint16_t ptx_f32_to_f16(float f);

struct pfunc {
    char *name;
    int is_entry;
    int has_body;
    struct pins *code;
    uint32_t ncode;
    _Atomic uint64_t interp_work; /* instructions its interpreted launches ran (auto mode) */
    uint32_t nregs;
    uint64_t *reg_init;  /* template: constants, zeros */
    uint8_t *reg_bits;   /* declared width in bits of each register (8..64), for addresses */
    int32_t sreg[SR_COUNT];
    uint8_t srlist[SR_COUNT]; /* the special registers this function reads */
    uint8_t nsr;
    uint32_t nparams;
    struct pparam *params;
    uint32_t nrets;
    struct pparam *rets;
    uint32_t param_bytes;  /* input parameters (the packed kernel parameter buffer) */
    uint32_t frame_param;  /* whole param area: inputs, returns, call temporaries */
    uint32_t local_bytes;  /* local depot */
    uint32_t local_align;
    uint32_t shared_bytes; /* kernels: static shared memory (module region + own variables) */
    struct ppatch *patches;
    uint32_t npatches;
    struct pcall *calls;
    uint32_t ncalls;
    struct pmma *mmas;
    uint32_t nmmas;
};

/* An initialiser element holding another variable's address: generic(x)+addend. */
struct preloc {
    uint64_t offset;  /* in the variable */
    uint32_t target;  /* global index */
    int64_t addend;
};

struct pglobal {
    char *name;
    uint64_t size;
    uint32_t align;
    enum ptx_space space;
    uint8_t *init;
    uint64_t init_size;
    uint64_t addr;
    int bound;
    struct preloc *relocs; /* applied in device memory before the first launch */
    uint32_t nrelocs;
    int bad_init;          /* an initialiser the engine cannot honour (function addresses) */
};

struct ptx_kernel {
    struct ptx_program *prog;
    char *name;
    int func;          /* index in prog->funcs, or -1 when the image had no PTX for it */
    uint32_t nparams;
    struct ptx_param *params;
    uint32_t param_bytes;
    _Atomic int globals_ok; /* 1 once ptx_launch found every module variable it reaches bound
                             * and honourable (a variable stays bound: checked once) */
};

struct ptx_program {
    struct pfunc *funcs;
    uint32_t nfuncs;
    struct pglobal *globals;
    uint32_t nglobals;
    uint32_t shared_module; /* shared variables of the module and of .func bodies */
    struct ptx_kernel *kernels;
    uint32_t nkernels;
    char **strings; /* pool of owned strings (unsupported instruction texts) */
    uint32_t nstrings;
    int has_relocs;
    _Atomic int relocated;
    uint64_t elf_global_bytes; /* an image without PTX: its cubin's global sections */
    uint32_t ptx_target;       /* the PTX's ".target sm_XX": XX; 0 if none */
    struct ptx_jit *jit;       /* translations (ptx_jit.c), made at first launch */
    int jit_failed;            /* the translator could not start for it (logged once) */
};

/* ptx_parse.c: parses NUL-terminated PTX text into p (which starts zeroed). */
int ptx_parse(struct ptx_program *p, const char *text, size_t len, char *err, size_t errlen);
/* Frees everything p owns, not p itself. */
void ptx_program_clear(struct ptx_program *p);

/* Helpers shared by parser and interpreter. */
static inline unsigned pt_bits(unsigned t)
{
    switch (t) {
    case PT_B8: case PT_U8: case PT_S8: return 8;
    case PT_B16: case PT_U16: case PT_S16: case PT_F16: case PT_BF16: return 16;
    case PT_B32: case PT_U32: case PT_S32: case PT_F32: case PT_F16X2: case PT_BF16X2:
        return 32;
    case PT_B64: case PT_U64: case PT_S64: case PT_F64: return 64;
    case PT_PRED: return 1;
    default: return 0;
    }
}
static inline int pt_signed(unsigned t)
{
    return t == PT_S8 || t == PT_S16 || t == PT_S32 || t == PT_S64;
}
static inline int pt_half(unsigned t)
{
    return t == PT_F16 || t == PT_F16X2 || t == PT_BF16 || t == PT_BF16X2;
}
static inline int pt_float(unsigned t)
{
    return t == PT_F16 || t == PT_F16X2 || t == PT_BF16 || t == PT_BF16X2 || t == PT_F32 ||
           t == PT_F64;
}

extern const char *const ptx_op_names[OP_COUNT];

#endif /* PTX_INTERNAL_H */
