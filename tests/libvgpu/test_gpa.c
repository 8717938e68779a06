/* test_gpa.c - cuGetProcAddress of the built libcuda.so.1 (dlopen'd as the runtime does):
 * version selection, per-thread-stream forms, refusals, "cuGetProcAddress" itself, a replay of
 * every request the real libcudart 13 makes at start-up, and the exported surface (every Driver
 * API name present, unimplemented ones fail closed, nothing internal visible). */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cuda.h>

typedef CUresult (*gpa_fn)(const char *, void **, int, cuuint64_t,
                           CUdriverProcAddressQueryResult *);

static void *lib;
static gpa_fn gpa;

static int setup(void **state)
{
    (void)state;
    const char *dir = getenv("VGPU_LIB_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/libcuda.so.1", dir ? dir : "../../libvgpu");
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return -1;
    }
    gpa = (gpa_fn)dlsym(lib, "cuGetProcAddress_v2");
    return gpa ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    dlclose(lib);
    return 0;
}

/* gpa(name, version, flags) must give exactly the exported symbol `want`. */
static void expect(const char *name, int version, cuuint64_t flags, const char *want)
{
    void *pfn = (void *)1;
    CUdriverProcAddressQueryResult st = (CUdriverProcAddressQueryResult)-1;
    assert_int_equal(gpa(name, &pfn, version, flags, &st), CUDA_SUCCESS);
    assert_int_equal(st, CU_GET_PROC_ADDRESS_SUCCESS);
    void *sym = dlsym(lib, want);
    assert_non_null(sym);
    if (pfn != sym) {
        Dl_info di;
        fprintf(stderr, "%s@%d flags %llu: got %s, want %s\n", name, version,
                (unsigned long long)flags, dladdr(pfn, &di) && di.dli_sname ? di.dli_sname : "?",
                want);
    }
    assert_ptr_equal(pfn, sym);
}

static void test_gpa_versions(void **state)
{
    (void)state;
    expect("cuCtxGetDevice", 2000, 0, "cuCtxGetDevice");
    expect("cuCtxGetDevice", 12090, 0, "cuCtxGetDevice");
    expect("cuCtxGetDevice", 13000, 0, "cuCtxGetDevice_v2");
    expect("cuCtxSynchronize", 13000, 0, "cuCtxSynchronize_v2");
    expect("cuMemAlloc", 2000, 0, "cuMemAlloc");
    expect("cuMemAlloc", 3020, 0, "cuMemAlloc_v2");
    expect("cuMemAlloc", 13000, 0, "cuMemAlloc_v2");
    expect("cuMemcpyHtoD", 3020, 0, "cuMemcpyHtoD_v2");
    expect("cuStreamGetCaptureInfo", 10010, 0, "cuStreamGetCaptureInfo");
    expect("cuStreamGetCaptureInfo", 11030, 0, "cuStreamGetCaptureInfo_v2");
    expect("cuStreamGetCaptureInfo", 12030, 0, "cuStreamGetCaptureInfo_v3");
    expect("cuCtxCreate", 12050, 0, "cuCtxCreate_v4");
    expect("cuDeviceTotalMem", 3020, 0, "cuDeviceTotalMem_v2");
    expect("cuLaunchKernel", 4000, 0, "cuLaunchKernel");
}

static void test_gpa_per_thread(void **state)
{
    (void)state;
    const cuuint64_t PT = CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM;
    expect("cuMemcpyHtoD", 7000, PT, "cuMemcpyHtoD_v2_ptds");
    expect("cuMemcpyHtoD", 7000, CU_GET_PROC_ADDRESS_LEGACY_STREAM, "cuMemcpyHtoD_v2");
    expect("cuMemcpyHtoD", 3020, PT, "cuMemcpyHtoD_v2"); /* before per-thread forms existed */
    expect("cuLaunchKernel", 7000, PT, "cuLaunchKernel_ptsz");
    expect("cuStreamGetCaptureInfo", 10010, PT, "cuStreamGetCaptureInfo_ptsz");
    expect("cuStreamGetCaptureInfo", 11030, PT, "cuStreamGetCaptureInfo_v2_ptsz");
    expect("cuStreamGetCaptureInfo", 12030, PT, "cuStreamGetCaptureInfo_v3_ptsz");
    expect("cuMemAllocAsync", 11020, PT, "cuMemAllocAsync_ptsz");
    expect("cuMemAlloc", 3020, PT, "cuMemAlloc_v2"); /* no per-thread form: the legacy one */
}

static void test_gpa_self_and_refusals(void **state)
{
    (void)state;
    expect("cuGetProcAddress", 11030, 0, "cuGetProcAddress");
    expect("cuGetProcAddress", 12000, 0, "cuGetProcAddress_v2");
    void *pfn = (void *)1;
    CUdriverProcAddressQueryResult st = CU_GET_PROC_ADDRESS_SUCCESS;
    assert_int_equal(gpa("cuNoSuchFunction", &pfn, 13000, 0, &st), CUDA_ERROR_NOT_FOUND);
    assert_int_equal(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    assert_null(pfn);
    pfn = (void *)1;
    assert_int_equal(gpa("", &pfn, 0, 0, &st), CUDA_ERROR_NOT_FOUND);
    assert_int_equal(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    assert_null(pfn);
    pfn = (void *)1;
    assert_int_equal(gpa("cuMemAllocAsync", &pfn, 11000, 0, &st), CUDA_ERROR_NOT_FOUND);
    assert_int_equal(st, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
    assert_null(pfn);
    assert_int_equal(gpa("cuMemAlloc_v2", &pfn, 13000, 0, &st), CUDA_ERROR_NOT_FOUND);
    assert_int_equal(gpa(NULL, &pfn, 13000, 0, &st), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(gpa("cuInit", NULL, 13000, 0, &st), CUDA_ERROR_INVALID_VALUE);
    /* the v1 entry point answers the same without a status */
    typedef CUresult (*gpa1_fn)(const char *, void **, int, cuuint64_t);
    gpa1_fn gpa1 = (gpa1_fn)dlsym(lib, "cuGetProcAddress");
    assert_non_null(gpa1);
    assert_int_equal(gpa1("cuMemAlloc", &pfn, 3020, 0), CUDA_SUCCESS);
    assert_ptr_equal(pfn, dlsym(lib, "cuMemAlloc_v2"));
}

/* "cuMemcpyHtoD_v2_ptds" -> "cuMemcpyHtoD" */
static void base_name(const char *sym, char *out, size_t cap)
{
    snprintf(out, cap, "%s", sym);
    size_t n = strlen(out);
    if (n > 5 && (strcmp(out + n - 5, "_ptds") == 0 || strcmp(out + n - 5, "_ptsz") == 0))
        out[n -= 5] = '\0';
    char *v = strrchr(out, '_');
    if (v && v[1] == 'v' && v[2] >= '0' && v[2] <= '9')
        *v = '\0';
}

/* Every request the real runtime makes at start-up resolves to a symbol of that name, except
 * the empty probe name and names that are not Driver API exports (graphics interop), which
 * get SYMBOL_NOT_FOUND. */
static void test_gpa_runtime_requests(void **state)
{
    (void)state;
    const char *dir = getenv("VGPU_TEST_DATA");
    char path[4096], line[512];
    snprintf(path, sizeof path, "%s/gpa_requests.txt", dir ? dir : ".");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0, bad = 0, unknown = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        char name[256] = "";
        int ver = 0;
        unsigned long long flags = 0;
        if (line[0] == ' ') {
            if (sscanf(line, "%d %llu", &ver, &flags) != 2)
                continue;
        } else if (sscanf(line, "%255s %d %llu", name, &ver, &flags) != 3) {
            continue;
        }
        n++;
        void *pfn = NULL;
        CUdriverProcAddressQueryResult st;
        CUresult r = gpa(name, &pfn, ver, flags, &st);
        if (name[0] == '\0') {
            if (r != CUDA_ERROR_NOT_FOUND)
                bad++;
            continue;
        }
        Dl_info di;
        char base[256], v2[300];
        snprintf(v2, sizeof v2, "%s_v2", name);
        if (r == CUDA_ERROR_NOT_FOUND && st == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND &&
            dlsym(lib, name) == NULL && dlsym(lib, v2) == NULL) {
            unknown++; /* graphics interop (GL, EGL, VDPAU): not part of the exported API */
            continue;
        }
        if (r != CUDA_SUCCESS || pfn == NULL || !dladdr(pfn, &di) || di.dli_sname == NULL) {
            fprintf(stderr, "request %s %d %llu: CUresult %d\n", name, ver, flags, r);
            bad++;
            continue;
        }
        base_name(di.dli_sname, base, sizeof base);
        if (strcmp(base, name) != 0) {
            fprintf(stderr, "request %s %d %llu: got %s\n", name, ver, flags, di.dli_sname);
            bad++;
        }
    }
    fclose(f);
    assert_int_equal(n, 440);
    assert_int_equal(bad, 0);
    assert_in_range(unknown, 0, 40);
}

/* Each of the Driver API names is exported; one the library does not implement fails closed. */
static void test_gpa_surface(void **state)
{
    (void)state;
    const char *dir = getenv("VGPU_LIB_DIR");
    char path[4096], name[256];
    snprintf(path, sizeof path, "%s/driver_symbols.txt", dir ? dir : ".");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0;
    while (fscanf(f, "%255s", name) == 1) {
        if (dlsym(lib, name) == NULL)
            fprintf(stderr, "%s is not exported\n", name);
        assert_non_null(dlsym(lib, name));
        n++;
    }
    fclose(f);
    assert_int_equal(n, 637);
    typedef CUresult (*graph_clone_fn)(CUgraph *, CUgraph);
    graph_clone_fn gc = (graph_clone_fn)dlsym(lib, "cuGraphClone"); /* a fail-closed stub */
    CUgraph g;
    assert_int_equal(gc(&g, NULL), CUDA_ERROR_NOT_SUPPORTED);
    assert_null(dlsym(lib, "vgpu_get"));
    assert_null(dlsym(lib, "idm_send"));
    assert_null(dlsym(lib, "md2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpa_versions),
        cmocka_unit_test(test_gpa_per_thread),
        cmocka_unit_test(test_gpa_self_and_refusals),
        cmocka_unit_test(test_gpa_runtime_requests),
        cmocka_unit_test(test_gpa_surface),
    };
    return cmocka_run_group_tests_name("gpa", tests, setup, teardown);
}
