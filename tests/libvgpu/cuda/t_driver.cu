// t_driver.cu - the Driver API used directly (linked against cuda.h's libcuda, run on libvgpu):
// contexts (create, push/pop, both cuCtxGetDevice forms), a module from PTX text, parameter
// info, cuLaunchKernel with kernelParams and with `extra` (also with 20,008 bytes of parameters,
// more than one ring slot), cuLaunchKernelEx, globals, pointer attributes, error names,
// fail-closed unsupported calls, stale, forged and wrong-type handles refused, and malformed
// code images refused without crashing the program (issue 16).
#include <cuda.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sys/mman.h>

static int failures = 0;
#define CK(call)                                                                               \
    do {                                                                                       \
        CUresult r_ = (call);                                                                  \
        if (r_ != CUDA_SUCCESS) {                                                              \
            const char *n_ = "?";                                                              \
            cuGetErrorName(r_, &n_);                                                           \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, n_);          \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)
#define EXPECT(cond, ...)                                                                      \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: expected %s: ", __FILE__, __LINE__, #cond);                \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
            failures++;                                                                        \
        }                                                                                      \
    } while (0)

static const char *ptx =
    ".version 8.1\n" /* 8.1: kernel parameters beyond 4352 bytes */
    ".target sm_75\n"
    ".address_size 64\n"
    ".global .align 4 .u32 counter = 7;\n"
    ".visible .entry add(.param .u64 out, .param .u32 n, .param .u32 k)\n"
    "{\n"
    "  .reg .b32 %r<6>;\n"
    "  .reg .b64 %rd<5>;\n"
    "  .reg .pred %p<2>;\n"
    "  ld.param.u64 %rd1, [out];\n"
    "  ld.param.u32 %r1, [n];\n"
    "  ld.param.u32 %r2, [k];\n"
    "  mov.u32 %r3, %ctaid.x;\n"
    "  mov.u32 %r4, %ntid.x;\n"
    "  mov.u32 %r5, %tid.x;\n"
    "  mad.lo.s32 %r3, %r3, %r4, %r5;\n"
    "  setp.ge.s32 %p1, %r3, %r1;\n"
    "  @%p1 bra DONE;\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  mul.wide.s32 %rd3, %r3, 4;\n"
    "  add.s64 %rd4, %rd2, %rd3;\n"
    "  add.s32 %r5, %r3, %r2;\n"
    "  st.global.u32 [%rd4], %r5;\n"
    "DONE:\n"
    "  ret;\n"
    "}\n"
    ".visible .entry big(.param .u64 out, .param .align 4 .b8 s[20000])\n"
    "{\n"
    "  .reg .b32 %r<4>;\n"
    "  .reg .b64 %rd<3>;\n"
    "  ld.param.u64 %rd1, [out];\n"
    "  ld.param.u32 %r1, [s];\n"
    "  ld.param.u32 %r2, [s+19996];\n"
    "  add.u32 %r3, %r1, %r2;\n"
    "  cvta.to.global.u64 %rd2, %rd1;\n"
    "  st.global.u32 [%rd2], %r3;\n"
    "  ret;\n"
    "}\n";

// Parameters of more than one ring slot travel through the window: kernelParams and `extra`.
static void test_big_params(CUmodule mod, CUdeviceptr out)
{
    struct Big {
        CUdeviceptr out;
        unsigned w[5000];
    };
    static Big big;
    CUfunction f;
    unsigned v = 0;
    size_t size = sizeof big;
    void *args[] = {&big.out, big.w};
    void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &big, CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
                     CU_LAUNCH_PARAM_END};

    CK(cuModuleGetFunction(&f, mod, "big"));
    big.out = out;
    big.w[0] = 11;
    big.w[4999] = 31;
    CK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, args, NULL));
    CK(cuCtxSynchronize());
    CK(cuMemcpyDtoH(&v, out, 4));
    EXPECT(v == 42, "big parameters through kernelParams: %u", v);
    big.w[0] = 100;
    CK(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra));
    CK(cuCtxSynchronize());
    CK(cuMemcpyDtoH(&v, out, 4));
    EXPECT(v == 131, "big parameters through extra: %u", v);
}

// Context-local storage (the runtime's private table): values live per context and their
// destructors run when the primary context is finally released.
static int dtor_calls = 0;
static void *dtor_key = nullptr, *dtor_value = nullptr;
static void cls_dtor(CUcontext c, void *key, void *value)
{
    (void)c;
    dtor_calls++;
    dtor_key = key;
    dtor_value = value;
}

static void test_cls(CUdevice dev)
{
    static const unsigned char id[16] = {0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11,
                                         0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93};
    CUuuid u;
    memcpy(u.bytes, id, 16);
    const void *tp = nullptr;
    CK(cuGetExportTable(&tp, &u));
    const uintptr_t *t = (const uintptr_t *)tp;
    typedef CUresult (*put_fn)(CUcontext, void *, void *, void (*)(CUcontext, void *, void *));
    typedef CUresult (*del_fn)(CUcontext, void *);
    typedef CUresult (*get_fn)(void **, CUcontext, void *);
    put_fn put = (put_fn)t[0];
    del_fn del = (del_fn)t[1];
    get_fn get = (get_fn)t[2];
    CUcontext p;
    CK(cuDevicePrimaryCtxRetain(&p, dev));
    CK(cuCtxPushCurrent(p));
    static int key1, key2, val1, val2;
    void *v = nullptr;
    EXPECT(get(&v, nullptr, &key1) == CUDA_ERROR_INVALID_HANDLE, "absent key");
    CK(put(nullptr, &key1, &val1, cls_dtor)); // NULL context: the current one
    CK(put(p, &key2, &val2, nullptr));
    CK(get(&v, p, &key1));
    EXPECT(v == &val1, "value of key1");
    CK(get(&v, nullptr, &key2));
    EXPECT(v == &val2, "value of key2");
    CK(del(p, &key2));
    EXPECT(get(&v, p, &key2) == CUDA_ERROR_INVALID_HANDLE, "deleted key");
    CUcontext popped;
    CK(cuCtxPopCurrent(&popped));
    EXPECT(dtor_calls == 0, "no destructor before the release");
    CK(cuDevicePrimaryCtxRelease(dev));
    EXPECT(dtor_calls == 1 && dtor_key == &key1 && dtor_value == &val1,
           "destructor ran once with key and value (%d calls)", dtor_calls);
    CK(cuDevicePrimaryCtxRetain(&p, dev));
    EXPECT(get(&v, p, &key1) == CUDA_ERROR_INVALID_HANDLE, "storage is empty after release");
    CK(put(p, &key1, &val1, cls_dtor));
    CK(cuDevicePrimaryCtxReset(dev));
    EXPECT(dtor_calls == 2, "destructor ran on reset (%d calls)", dtor_calls);
}

static void check_out(CUdeviceptr d, int n, unsigned k, const char *what)
{
    unsigned *h = (unsigned *)malloc(n * 4);
    CK(cuMemcpyDtoH(h, d, n * 4));
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (h[i] != (unsigned)i + k && bad++ < 3)
            fprintf(stderr, "%s: out[%d] = %u, want %u\n", what, i, h[i], i + k);
    EXPECT(bad == 0, "%s: %d wrong", what, bad);
    free(h);
}

// Handles: a stale kernel (its library unloaded), forged and wrong-type handles, a destroyed
// context are refused with the error CUDA documents, nothing read through them.
static void test_bad_handles(CUmodule mod, CUfunction f, CUkernel stale_kern, CUlibrary stale_lib)
{
    CUfunction g;
    CUkernel k;
    const char *name;
    EXPECT(cuLibraryGetKernel(&k, stale_lib, "add") == CUDA_ERROR_INVALID_HANDLE, "stale library");
    EXPECT(cuKernelGetFunction(&g, stale_kern) == CUDA_ERROR_INVALID_HANDLE, "stale kernel");
    EXPECT(cuFuncGetName(&name, (CUfunction)stale_kern) == CUDA_ERROR_INVALID_HANDLE,
           "stale kernel as a function");
    EXPECT(cuModuleGetFunction(&g, (CUmodule)0x1000, "add") == CUDA_ERROR_INVALID_HANDLE,
           "forged module");
    EXPECT(cuModuleGetFunction(&g, (CUmodule)f, "add") == CUDA_ERROR_INVALID_HANDLE,
           "a function as a module");
    EXPECT(cuFuncGetName(&name, (CUfunction)mod) == CUDA_ERROR_INVALID_HANDLE,
           "a module as a function");
    CUcontext c1, c2, cur;
    CK(cuCtxGetCurrent(&cur));
    CK(cuCtxCreate(&c1, NULL, 0, 0));
    CK(cuCtxDestroy(c1));
    EXPECT(cuCtxPushCurrent(c1) == CUDA_ERROR_INVALID_CONTEXT, "destroyed context");
    EXPECT(cuCtxPushCurrent((CUcontext)mod) == CUDA_ERROR_INVALID_CONTEXT, "a module as context");
    CK(cuCtxCreate(&c2, NULL, 0, 0));
    EXPECT(c2 != c1 && c2 != NULL, "a new context gets a new handle");
    CK(cuCtxDestroy(c2));
    CK(cuCtxSetCurrent(cur));
}

// Malformed images at the end of readable memory (a PROT_NONE page after them): refused with
// CUDA_ERROR_INVALID_IMAGE, never read past (they crashed the program inside libcuda.so.1).
static void test_bad_images()
{
    long pg = 4096;
    unsigned char *m = (unsigned char *)mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
                                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT(m != MAP_FAILED && mprotect(m + pg, pg, PROT_NONE) == 0, "guard page");
    if (m == MAP_FAILED)
        return;
    CUmodule bad;
    unsigned char *elf = m + pg - 64; // an ELF header whose section headers lie beyond it
    memset(elf, 0, 64);
    memcpy(elf, "\x7f" "ELF", 4);
    elf[4] = 2;
    elf[0x28] = 64;  // e_shoff
    elf[0x3A] = 64;  // e_shentsize
    elf[0x3C] = 200; // e_shnum
    EXPECT(cuModuleLoadData(&bad, elf) == CUDA_ERROR_INVALID_IMAGE, "truncated ELF");
    unsigned char *fb = m + pg - 32; // a fatbin header promising 1 MiB
    memset(fb, 0, 32);
    const unsigned char fbh[16] = {0x50, 0xED, 0x55, 0xBA, 1, 0, 16, 0, 0, 0, 0x10, 0};
    memcpy(fb, fbh, 16);
    EXPECT(cuModuleLoadData(&bad, fb) == CUDA_ERROR_INVALID_IMAGE, "truncated fatbin");
    memset(m, 'x', pg); // text without a NUL
    EXPECT(cuModuleLoadData(&bad, m) == CUDA_ERROR_INVALID_IMAGE, "unterminated text");
    munmap(m, 2 * pg);
}

int main()
{
    CK(cuInit(0));
    int ver = 0;
    CK(cuDriverGetVersion(&ver));
    EXPECT(ver == 13000, "version %d", ver);
    CUdevice dev;
    CK(cuDeviceGet(&dev, 0));
    CUcontext ctx, cur;
    CK(cuCtxCreate(&ctx, NULL, 0, dev));
    CK(cuCtxGetCurrent(&cur));
    EXPECT(cur == ctx, "new context is current");
    CUdevice d2 = -1;
    CK(cuCtxGetDevice(&d2));
    EXPECT(d2 == dev, "cuCtxGetDevice %d", d2);
    CUcontext popped;
    CK(cuCtxPopCurrent(&popped));
    EXPECT(popped == ctx, "popped the new context");
    CK(cuCtxGetCurrent(&cur));
    EXPECT(cur == NULL, "no current context after pop");
    test_cls(dev);
    CK(cuCtxPushCurrent(ctx));

    CUmodule mod;
    CK(cuModuleLoadData(&mod, ptx));
    CUfunction f;
    CK(cuModuleGetFunction(&f, mod, "add"));
    size_t off = 99, sz = 99;
    CK(cuFuncGetParamInfo(f, 0, &off, &sz));
    EXPECT(off == 0 && sz == 8, "param 0 at %zu size %zu", off, sz);
    CK(cuFuncGetParamInfo(f, 2, &off, &sz));
    EXPECT(off == 12 && sz == 4, "param 2 at %zu size %zu", off, sz);
    EXPECT(cuFuncGetParamInfo(f, 3, &off, &sz) == CUDA_ERROR_INVALID_VALUE, "param 3 refused");

    const int n = 1000;
    CUdeviceptr out;
    CK(cuMemAlloc(&out, n * 4));
    unsigned un = n, k = 5;
    void *args[] = {&out, &un, &k};
    CK(cuLaunchKernel(f, (n + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, args, NULL));
    CK(cuCtxSynchronize());
    check_out(out, n, 5, "kernelParams");

    struct { CUdeviceptr out; unsigned n, k; } buf = {out, (unsigned)n, 40};
    size_t bsz = sizeof buf;
    void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &bsz,
                     CU_LAUNCH_PARAM_END};
    CK(cuLaunchKernel(f, (n + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, NULL, extra));
    CK(cuCtxSynchronize());
    check_out(out, n, 40, "extra");
    test_big_params(mod, out);

    CUstream s;
    CK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CUlaunchConfig cfg = {};
    cfg.gridDimX = (n + 255) / 256;
    cfg.gridDimY = cfg.gridDimZ = 1;
    cfg.blockDimX = 256;
    cfg.blockDimY = cfg.blockDimZ = 1;
    cfg.hStream = s;
    k = 1234;
    CK(cuLaunchKernelEx(&cfg, f, args, NULL));
    CK(cuStreamSynchronize(s));
    check_out(out, n, 1234, "cuLaunchKernelEx");
    CK(cuStreamDestroy(s));

    CUdeviceptr g;
    size_t gsz = 0;
    CK(cuModuleGetGlobal(&g, &gsz, mod, "counter"));
    EXPECT(gsz == 4, "global size %zu", gsz);
    unsigned gv = 0;
    CK(cuMemcpyDtoH(&gv, g, 4));
    EXPECT(gv == 7, "global initial value %u", gv);

    unsigned mt = 0;
    CK(cuPointerGetAttribute(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, out + 100));
    EXPECT(mt == CU_MEMORYTYPE_DEVICE, "memory type %u", mt);
    CUdeviceptr base = 0;
    CK(cuPointerGetAttribute(&base, CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, out + 100));
    EXPECT(base == out, "range start");
    int x;
    EXPECT(cuPointerGetAttribute(&mt, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, (CUdeviceptr)&x) ==
               CUDA_ERROR_INVALID_VALUE, "host stack pointer is not ours");

    const char *name = NULL, *str = NULL;
    CK(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &name));
    EXPECT(strcmp(name, "CUDA_ERROR_OUT_OF_MEMORY") == 0, "name %s", name);
    CK(cuGetErrorString(CUDA_ERROR_INVALID_VALUE, &str));
    EXPECT(str && strlen(str) > 5, "string");
    EXPECT(cuGetErrorName((CUresult)123456, &name) == CUDA_ERROR_INVALID_VALUE, "unknown code");

    CUgraph graph, clone;
    CK(cuGraphCreate(&graph, 0));
    EXPECT(cuGraphClone(&clone, graph) == CUDA_ERROR_NOT_SUPPORTED, "cloning fails closed");
    CK(cuGraphDestroy(graph));
    CUmoduleLoadingMode mode;
    CK(cuModuleGetLoadingMode(&mode));
    EXPECT(mode == CU_MODULE_LAZY_LOADING, "lazy loading");

    // attributes and occupancy of a function
    int regs = -1, maxt = 0;
    CK(cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, f));
    CK(cuFuncGetAttribute(&maxt, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, f));
    EXPECT(regs >= 0 && maxt >= 128 && maxt <= 1024, "regs %d max threads %d", regs, maxt);
    CK(cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 1024));
    int dyn = 0;
    CK(cuFuncGetAttribute(&dyn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, f));
    EXPECT(dyn == 1024, "dynamic shared size %d after setting 1024", dyn);
    CK(cuFuncSetCacheConfig(f, CU_FUNC_CACHE_PREFER_L1));
    int blocks = 0;
    CK(cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, f, 128, 0));
    EXPECT(blocks > 0, "max active blocks %d", blocks);
    int mingrid = 0, bs = 0;
    CK(cuOccupancyMaxPotentialBlockSize(&mingrid, &bs, f, NULL, 0, 0));
    EXPECT(bs >= 32 && bs <= maxt && mingrid > 0, "potential block size %d grid %d", bs, mingrid);
    const char *fname = nullptr;
    CK(cuFuncGetName(&fname, f));
    EXPECT(fname && strcmp(fname, "add") == 0, "function name %s", fname ? fname : "(null)");

    // the library path the runtime uses: library -> kernel -> function
    CUlibrary lib;
    CK(cuLibraryLoadData(&lib, ptx, NULL, NULL, 0, NULL, NULL, 0));
    CUkernel kern;
    CK(cuLibraryGetKernel(&kern, lib, "add"));
    CUfunction kf;
    CK(cuKernelGetFunction(&kf, kern));
    int kmax = 0;
    CK(cuKernelGetAttribute(&kmax, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, kern, dev));
    EXPECT(kmax == maxt, "kernel attribute %d vs function attribute %d", kmax, maxt);
    CK(cuKernelGetParamInfo(kern, 1, &off, &sz));
    EXPECT(off == 8 && sz == 4, "kernel param 1 at %zu size %zu", off, sz);
    EXPECT(cuLibraryGetKernel(&kern, lib, "no_such_kernel") != CUDA_SUCCESS, "unknown kernel");
    CUdeviceptr lg;
    CK(cuLibraryGetGlobal(&lg, &gsz, lib, "counter"));
    EXPECT(gsz == 4 && lg != g, "library global is its own (%zu bytes)", gsz);
    k = 77;
    void *kargs[] = {&out, &un, &k};
    CK(cuLaunchKernel((CUfunction)kern, (n + 127) / 128, 1, 1, 128, 1, 1, 0, NULL, kargs,
                      NULL));
    CK(cuCtxSynchronize());
    check_out(out, n, 77, "CUkernel as CUfunction");
    CK(cuLibraryUnload(lib));
    test_bad_handles(mod, f, kern, lib);
    test_bad_images();

    // memsets, address ranges, unified copies, pitched memory, limits
    CUdeviceptr base2 = 0;
    size_t size2 = 0;
    CK(cuMemGetAddressRange(&base2, &size2, out + 123));
    EXPECT(base2 == out && size2 >= (size_t)n * 4, "address range %zu", size2);
    CK(cuMemsetD32(out, 0xdeadbeef, n));
    CK(cuMemsetD16(out, 0x1234, 2)); // the first 4 bytes
    unsigned w[2];
    CK(cuMemcpyDtoH(w, out, 8));
    EXPECT(w[0] == 0x12341234 && w[1] == 0xdeadbeef, "memsets %08x %08x", w[0], w[1]);
    CUdeviceptr other;
    CK(cuMemAlloc(&other, 64));
    CK(cuMemcpyPeer(other + 8, ctx, out, ctx, 8)); // one device: a device-to-device copy
    unsigned w3[2] = {0, 0};
    CK(cuMemcpyDtoH(w3, other + 8, 8));
    EXPECT(w3[0] == w[0] && w3[1] == w[1], "peer copy %08x %08x", w3[0], w3[1]);
    unsigned long long cid = 0;
    CK(cuCtxGetId(ctx, &cid));
    EXPECT(cid > 16, "regular context id %llu", cid);
    unsigned nfun = 0;
    CK(cuModuleGetFunctionCount(&nfun, mod));
    EXPECT(nfun == 2, "module function count %u", nfun); // add, big
    CK(cuMemcpy(other, out, 8));                  // device to device, by address
    unsigned w2[2] = {0, 0};
    CK(cuMemcpy((CUdeviceptr)w2, other, 8));      // device to host, by address
    EXPECT(w2[0] == w[0] && w2[1] == w[1], "unified copies %08x %08x", w2[0], w2[1]);
    CK(cuMemFree(other));
    CUdeviceptr pitched;
    size_t pitch = 0;
    CK(cuMemAllocPitch(&pitched, &pitch, 100, 10, 4));
    EXPECT(pitch >= 100, "pitch %zu", pitch);
    unsigned char rows[10][100], back[10][100];
    for (int r = 0; r < 10; r++)
        for (int c = 0; c < 100; c++)
            rows[r][c] = (unsigned char)(r * 100 + c);
    CUDA_MEMCPY2D c2 = {};
    c2.srcMemoryType = CU_MEMORYTYPE_HOST;
    c2.srcHost = rows;
    c2.srcPitch = 100;
    c2.dstMemoryType = CU_MEMORYTYPE_DEVICE;
    c2.dstDevice = pitched;
    c2.dstPitch = pitch;
    c2.WidthInBytes = 100;
    c2.Height = 10;
    CK(cuMemcpy2D(&c2));
    CUDA_MEMCPY2D c3 = {};
    c3.srcMemoryType = CU_MEMORYTYPE_DEVICE;
    c3.srcDevice = pitched;
    c3.srcPitch = pitch;
    c3.dstMemoryType = CU_MEMORYTYPE_HOST;
    c3.dstHost = back;
    c3.dstPitch = 100;
    c3.WidthInBytes = 100;
    c3.Height = 10;
    CK(cuMemcpy2D(&c3));
    EXPECT(memcmp(rows, back, sizeof rows) == 0, "pitched 2D round trip");
    CK(cuMemFree(pitched));
    size_t stack = 0;
    CK(cuCtxSetLimit(CU_LIMIT_STACK_SIZE, 4096));
    CK(cuCtxGetLimit(&stack, CU_LIMIT_STACK_SIZE));
    EXPECT(stack >= 4096, "stack limit %zu", stack);
    size_t fr = 0, tot = 0;
    CK(cuMemGetInfo(&fr, &tot));
    EXPECT(fr > 0 && fr <= tot, "memory info %zu of %zu", fr, tot);

    CK(cuMemFree(out));
    EXPECT(cuMemFree(out) == CUDA_ERROR_INVALID_VALUE, "double free refused");
    CK(cuModuleUnload(mod));
    CK(cuCtxDestroy(ctx));
    if (failures) {
        fprintf(stderr, "t_driver: %d check(s) failed\n", failures);
        return 1;
    }
    printf("t_driver: all checks passed\n");
    return 0;
}
