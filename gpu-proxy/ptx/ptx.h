/* ptx.h - the simulated GPU's kernel engine: finds the PTX inside a CUDA code image (fatbin
 * wrapper, fatbin, or PTX text), parses it once, reports each kernel's parameter layout, and
 * executes a grid on the host with every global access checked by the caller's resolver.
 * Used by the stub backend only; it knows nothing of zones, handles or transports. */
#ifndef PTX_H
#define PTX_H

#include <stddef.h>
#include <stdint.h>

struct ptx_program; /* one loaded image: kernels and module-scope variables */
struct ptx_kernel;  /* one .entry */

/* Result codes use CUresult values so the backend can pass them through. */
enum {
    PTX_OK = 0,                  /* CUDA_SUCCESS */
    PTX_ERR_INVALID_VALUE = 1,   /* CUDA_ERROR_INVALID_VALUE */
    PTX_ERR_OUT_OF_MEMORY = 2,   /* CUDA_ERROR_OUT_OF_MEMORY */
    PTX_ERR_INVALID_IMAGE = 200, /* CUDA_ERROR_INVALID_IMAGE */
    PTX_ERR_NO_BINARY = 209,     /* CUDA_ERROR_NO_BINARY_FOR_GPU: no PTX in the image */
    PTX_ERR_INVALID_PTX = 218,   /* CUDA_ERROR_INVALID_PTX */
    PTX_ERR_NOT_FOUND = 500,     /* CUDA_ERROR_NOT_FOUND */
    PTX_ERR_ILLEGAL_ADDRESS = 700,  /* CUDA_ERROR_ILLEGAL_ADDRESS */
    PTX_ERR_LAUNCH_OUT_OF_RESOURCES = 701,
    PTX_ERR_ASSERT = 710,        /* CUDA_ERROR_ASSERT: a device-side assert() failed */
    PTX_ERR_LAUNCH_FAILED = 719, /* CUDA_ERROR_LAUNCH_FAILED (trap, misaligned access) */
    PTX_ERR_COOPERATIVE_TOO_LARGE = 720, /* CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE */
    PTX_ERR_NOT_SUPPORTED = 801, /* CUDA_ERROR_NOT_SUPPORTED: an instruction not implemented */
};

struct ptx_param {
    uint32_t offset; /* in the packed parameter buffer (natural alignment, as CUDA packs it) */
    uint32_t size;
    uint32_t align;
};

enum ptx_space { PTX_SPACE_GLOBAL = 1, PTX_SPACE_CONST = 2 };

struct ptx_global_info {
    const char *name;
    uint64_t size;
    uint32_t align;
    enum ptx_space space;
    const void *init;   /* initial bytes (init_size of them; the rest is zero), or NULL */
    uint64_t init_size;
};

/* Local memory per thread, as on current GPUs: ptxas refuses a function whose local data
 * exceeds it, so a load whose PTX declares more in one .entry or .func fails with
 * PTX_ERR_INVALID_PTX (CUDA_ERROR_INVALID_PTX, "PTX JIT compilation failed"), and a launch whose
 * call stack would take a thread past it fails with PTX_ERR_LAUNCH_FAILED. */
#define PTX_LOCAL_BYTES_MAX (512u << 10)

/* An .entry's parameter area (the packed kernel parameter buffer), as ptxas allows it for sm_70
 * and later with PTX ISA 8.1+ (CUDA 12.1): a load whose PTX declares more fails with
 * PTX_ERR_INVALID_PTX, as its JIT compilation would. (ptxas allows only 4352 bytes to older PTX
 * ISA versions; the engine does not tell versions apart.) */
#define PTX_ENTRY_PARAM_BYTES_MAX 32764u

/* The compute capability the simulated GPU reports (major * 10 + minor). */
#define PTX_DEVICE_SM 90

/* Loads an image: a fatbin wrapper (magic 0x466243B1), a fatbin (0xBA55ED50; of its PTX entries
 * the one a driver would JIT for a PTX_DEVICE_SM device, the highest sm not above it, else the
 * lowest above it; zstd-decompressed when flagged), or NUL-terminated PTX text. An image with
 * only ELF cubins loads with kernels known by name and parameter layout (from .nv.info) but not
 * executable (ptx_launch then fails with PTX_ERR_NOT_SUPPORTED naming the kernel).
 * err receives a one-line reason on failure. */
int ptx_program_load(const void *image, size_t size, struct ptx_program **out, char *err,
                     size_t errlen);
void ptx_program_free(struct ptx_program *p);

unsigned ptx_program_kernel_count(const struct ptx_program *p);
const struct ptx_kernel *ptx_program_kernel_at(const struct ptx_program *p, unsigned i);
/* By (mangled) name; NULL if absent. */
const struct ptx_kernel *ptx_program_kernel(const struct ptx_program *p, const char *name);

/* 1 when the module calls device-side malloc or free (nvcc's `.extern .func malloc/free`): its
 * launches need a ptx_launch.heap. */
int ptx_program_uses_heap(const struct ptx_program *p);

const char *ptx_kernel_name(const struct ptx_kernel *k);
unsigned ptx_kernel_param_count(const struct ptx_kernel *k);
const struct ptx_param *ptx_kernel_params(const struct ptx_kernel *k);
uint32_t ptx_kernel_param_bytes(const struct ptx_kernel *k); /* size of the packed buffer */
uint32_t ptx_kernel_static_shared(const struct ptx_kernel *k);
uint32_t ptx_kernel_local_bytes(const struct ptx_kernel *k);
int ptx_kernel_executable(const struct ptx_kernel *k); /* 1 if PTX was found for it */
/* The architecture its PTX was written for (".target sm_75": 75), as a driver reports it in
 * CU_FUNC_ATTRIBUTE_PTX_VERSION (CUB picks its tuning policy from it and refuses to run when
 * it is not one of the architectures the program was built for); 0 without PTX. */
uint32_t ptx_kernel_ptx_version(const struct ptx_kernel *k);

/* Module-scope variables (.global / .const). The backend allocates device memory for each one
 * (in the loading zone), copies init data in, and binds the address before any launch. */
unsigned ptx_program_global_count(const struct ptx_program *p);
int ptx_program_global(const struct ptx_program *p, unsigned i, struct ptx_global_info *out);
/* Global memory a driver allocates for the image's module-scope variables when it loads it:
 * the sizes of the PTX's .global variables or, for an image without PTX, of its cubin's
 * .nv.global and .nv.global.init sections (saturating; constant banks, at most 64 KiB a module,
 * are not counted). The real backend charges it to the zone's quota. */
uint64_t ptx_program_global_bytes(const struct ptx_program *p);
/* The same figure for an image that is not loaded: a fatbin's cubin sections when it has a
 * cubin (the driver's SASS and its PTX declare the same globals; the PTX is not parsed), else
 * the PTX's variables. PTX_OK, or the error ptx_program_load would give. */
int ptx_image_global_bytes(const void *image, size_t size, uint64_t *bytes, char *err,
                           size_t errlen);
/* By name; returns the index or -1. */
int ptx_program_global_find(const struct ptx_program *p, const char *name);
int ptx_program_bind_global(struct ptx_program *p, unsigned i, uint64_t device_address);

/* The zone's memory as the interpreter sees it. resolve() returns the host address of device
 * address `addr` if [addr, addr+len) lies inside one allocation of the zone, and that
 * allocation's bounds (so the caller may cache them); NULL otherwise, which ends the launch
 * with PTX_ERR_ILLEGAL_ADDRESS. Called from several host threads at once. */
struct ptx_memory {
    void *ctx;
    void *(*resolve)(void *ctx, uint64_t addr, uint64_t len, uint64_t *alloc_base,
                     uint64_t *alloc_size);
};

/* A texture or surface object as a fetch sees it (ptx_tex.c): texel (x, y, z) of an array
 * or pitch2D memory is at data + z * slice + y * pitch + x * elem, and every texel a fetch
 * reads or a surface store writes lies in [data, data + bytes) (checked at each access).
 * Layered arrays keep their layers as slices. format is a CUarray_format, address_mode a
 * CUaddress_mode, filter_mode a CUfilter_mode, flags CU_TRSF_* (READ_AS_INTEGER,
 * NORMALIZED_COORDINATES). */
struct ptx_texref {
    uint8_t *data;
    uint64_t bytes;
    uint64_t width, height, depth; /* texels; 1 for a dimension the resource lacks */
    uint64_t pitch, slice;
    uint32_t format, channels, elem;
    uint32_t address_mode[3], filter_mode, flags;
    float border[4];
    uint32_t layered; /* a layered array: depth counts its layers */
};

/* Resolves the 64-bit texture (surface 0) or surface object value a kernel names: fills *out
 * and returns 0, or -1 for a value that is no live object of the launching session, which
 * ends the launch with PTX_ERR_ILLEGAL_ADDRESS. Called from several host threads at once. */
struct ptx_textures {
    void *ctx;
    int (*resolve)(void *ctx, uint64_t value, int surface, struct ptx_texref *out);
};

/* Defaults of the ptx_launch fields below that take 0 for "default". */
#define PTX_PRINTF_FIFO_DEFAULT (1u << 20)   /* CUDA's default CU_LIMIT_PRINTF_FIFO_SIZE */
#define PTX_MAX_HOST_BYTES_DEFAULT (256ull << 20)

#define PTX_COOP_MAX_BLOCKS 256u /* co-resident blocks of a cooperative launch */

/* Device-side malloc/free (nvcc's `.extern .func malloc/free`): a heap the caller places in
 * device memory it owns and has charged (CU_LIMIT_MALLOC_HEAP_SIZE), handed to launches in
 * ptx_launch.heap; blocks persist across launches until freed. The bookkeeping stays on the
 * host, out of the kernel's reach; thread-safe. At most PTX_HEAP_MAX_BLOCKS live blocks. */
#define PTX_HEAP_MAX_BLOCKS (1u << 20)
struct ptx_heap;
/* base 16-byte aligned; 0, -EINVAL or -ENOMEM. */
int ptx_heap_create(uint64_t base, uint64_t size, struct ptx_heap **out);
void ptx_heap_destroy(struct ptx_heap *h);
/* A 16-byte aligned block of at least size bytes, or 0 when the heap has no room. */
uint64_t ptx_heap_malloc(struct ptx_heap *h, uint64_t size);
/* 0, or -EINVAL when addr is not a live block's start (0 is a no-op). */
int ptx_heap_free(struct ptx_heap *h, uint64_t addr);
/* Bytes in live blocks. */
uint64_t ptx_heap_used(struct ptx_heap *h);

struct ptx_launch {
    uint32_t grid[3];
    uint32_t block[3];
    uint32_t dynamic_shared;
    const void *params; /* packed as ptx_kernel_params() says */
    size_t params_size;
    const struct ptx_memory *mem;
    /* Texture and surface objects (tex, tld4, txq, suld, sust, suq); NULL: every fetch
     * faults. */
    const struct ptx_textures *tex;
    unsigned host_threads; /* blocks run on up to this many host threads; 0: default */
    /* A cooperative launch (cuLaunchCooperativeKernel): every block runs at once, each on a
     * host thread of its own, and %envreg1/%envreg2 give the grid's barrier workspace, so
     * cooperative groups' grid.sync() works. At most PTX_COOP_MAX_BLOCKS blocks, fewer when
     * max_host_bytes holds fewer blocks' states: more fails with PTX_ERR_COOPERATIVE_TOO_LARGE.
     * Otherwise %envreg* read zero and grid.sync() traps, as on a GPU. */
    int cooperative;
    /* The heap of device-side malloc/free; NULL: malloc returns NULL (and free of anything
     * but NULL fails the launch). */
    struct ptx_heap *heap;
    /* Device printf output this launch may produce, in bytes of formatted text, as the
     * context's CU_LIMIT_PRINTF_FIFO_SIZE bounds a GPU's printf buffer; 0: 1 MiB
     * (PTX_PRINTF_FIFO_DEFAULT). A printf call whose text does not fit in what is left is lost,
     * and so is every later one of the launch; the first loss is reported once per launch
     * through the printf sink (see ptx_set_printf_sink). */
    size_t printf_fifo_size;
    /* Host memory the launch may hold for its blocks' thread states (registers, local memory,
     * parameter space, call stacks) and shared memory, over all its host threads together;
     * 0: 256 MiB (PTX_MAX_HOST_BYTES_DEFAULT). Each host thread holds the states of the one
     * block it runs, so the engine runs at most max_host_bytes / (one block's states) host
     * threads, and each may then hold max_host_bytes divided by their number. The launch fails
     * with PTX_ERR_LAUNCH_OUT_OF_RESOURCES, naming the budget, when one block does not fit
     * (e.g. 1024 threads with 512 KiB of local memory each under the default), or when calls
     * would grow a host thread's states past its share. The budget is taken out of the
     * process's host pool (ptx_set_host_pool) for the launch's duration: a launch gets what
     * is left of the pool if that is less, and waits (cancellably) while other launches hold
     * so much that not even one of its blocks fits. */
    uint64_t max_host_bytes;
    /* Cancellation: while the launch runs, its host threads read *cancel (a relaxed atomic
     * load, __atomic_load_n) before each block, while starting a block's threads, and at least
     * every 16384 instructions' worth of work (at backward branches, calls and between the
     * block's scheduling rounds); so a launch ends within milliseconds of *cancel becoming
     * nonzero, loops and barrier waits included, with PTX_ERR_LAUNCH_FAILED and "launch
     * cancelled" in err. Its host threads have then stopped and freed their thread states.
     * Set it from any thread with __atomic_store_n(flag, 1, __ATOMIC_RELAXED) (or release);
     * a flag already set makes the launch fail before running a block. NULL: not cancellable.
     */
    const int *cancel;
};

/* The host memory all launches of this process together may hold for thread states and
 * shared memory (their max_host_bytes budgets); 0: PTX_HOST_POOL_DEFAULT. States host threads
 * keep between launches (to spare small launches the allocation) are at most 16 MiB per host
 * thread and 64 MiB in all, beside the pool. So concurrent launches on many streams never hold
 * more than pool + 64 MiB, however many there are. */
#define PTX_HOST_POOL_DEFAULT (512ull << 20)
void ptx_set_host_pool(uint64_t bytes);

/* Runs the whole grid and returns when it is done (or failed, or was cancelled). Returns
 * PTX_OK or an error code, with a one-line reason naming the kernel (and the instruction, for
 * PTX_ERR_NOT_SUPPORTED) in err. */
int ptx_launch(const struct ptx_kernel *k, const struct ptx_launch *l, char *err, size_t errlen);

/* Instructions executed since start-up, all launches together (for benchmarks). */
uint64_t ptx_instructions_executed(void);
/* Launches that ran translated code (see ptx_jit.c; PTX_JIT=0 in the environment turns the
 * translator off), all launches together. */
uint64_t ptx_launches_translated(void);
/* When later launches use the translator: PTX_TRANSLATE_OFF runs every kernel in the
 * interpreter; PTX_TRANSLATE_ALWAYS translates each kernel at its first launch; PTX_TRANSLATE_AUTO
 * (the default) translates a kernel once it is worth LLVM's compile time (0.05-2 s a kernel): when
 * one launch is expected to run at least the threshold's instructions (threads x the kernel's
 * instruction count), or its interpreted launches together have run that many; until then it
 * is interpreted. The environment's PTX_JIT sets the mode at start-up: "0" off, "1" always,
 * unset or "auto" auto. */
enum { PTX_TRANSLATE_OFF = 0, PTX_TRANSLATE_ALWAYS = 1, PTX_TRANSLATE_AUTO = 2 };
void ptx_set_translator(int mode);
/* The auto mode's threshold in instructions (default PTX_TRANSLATE_HOT_DEFAULT: about 0.1 s of
 * interpretation on the development machine). */
#define PTX_TRANSLATE_HOT_DEFAULT (16ull << 20)
void ptx_set_translate_threshold(uint64_t instructions);

/* The translator is a shared object, PTX_JIT_SO_NAME (it links LLVM), that only programs that
 * run kernels load, so no other process maps LLVM. Without it every kernel is interpreted.
 * ptx_translator_load loads it from path (dlopen, no search); ptx_translator_load_beside_exe
 * from the directory of /proc/self/exe, then from ../lib/gpu-proxy/ beside it (where `make
 * install` puts it). Call before the first launch, before any sandbox forbids opening files.
 * 0: loaded (or loaded already); -1: not loaded, with why (a failed load changes nothing). */
#define PTX_JIT_SO_NAME "libvgpu-ptxjit.so"
int ptx_translator_load(const char *path, char *why, size_t whylen);
int ptx_translator_load_beside_exe(char *why, size_t whylen);
/* Whether launches can be translated: "on (PATH)", or "off: " and why. */
const char *ptx_translator_state(void);

/* Device printf: the text of each vprintf call goes to sink (called from the launch's host
 * threads, one call at a time); NULL restores the default, which writes "[kernel NAME] text"
 * to stderr. Formatting is bounded whatever the format says: field widths and precisions
 * above PTX_PRINTF_FIELD_MAX are taken as PTX_PRINTF_FIELD_MAX, and the text of one call is
 * cut at PTX_PRINTF_CALL_MAX bytes. When a launch's printf output passes its FIFO size
 * (ptx_launch.printf_fifo_size), the sink receives, once for that launch, the text
 * PTX_PRINTF_LOST_NOTICE (not counted in the FIFO size) instead of the lost output. */
#define PTX_PRINTF_FIELD_MAX 512
#define PTX_PRINTF_CALL_MAX 4095
#define PTX_PRINTF_LOST_NOTICE "printf FIFO full: later output of this launch is lost\n"
void ptx_set_printf_sink(void (*sink)(void *ctx, const char *kernel, const char *text),
                         void *ctx);

/* Watchdog for later launches: a launch in which one host thread executes more than
 * max_instructions ends with PTX_ERR_LAUNCH_FAILED ("watchdog"), as a GPU's watchdog ends a
 * kernel that runs too long. Host work that is not an instruction counts too, as one
 * instruction per 64 bytes: zeroing each block's local and shared memory, starting its
 * threads, growing call stacks, formatting printf output. 0 (the default) disables it. */
void ptx_set_watchdog(uint64_t max_instructions);

#endif /* PTX_H */
