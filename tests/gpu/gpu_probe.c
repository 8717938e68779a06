/* gpu_probe.c - answers "is there a usable CUDA driver here, and which file is it?" for
 * gpu-check.sh: dlopens the libcuda.so.1 it is given (a path, or the name through the
 * loader's search), calls cuInit and cuDeviceGetCount, and prints KEY=VALUE lines:
 *   libcuda=<realpath of the library that answered>   driver=<cuDriverGetVersion>
 *   devices=<count>   name=<device 0's name>   cc=<major.minor>   mem_mib=<total MiB>
 * or error=<why>. Exit 0 when at least one device answered, 1 otherwise, 2 on bad usage.
 * --refuse DIR (repeatable): fail if the library that loaded lives in DIR (our own libvgpu
 * must never be mistaken for NVIDIA's driver). */
#include <cuda.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef CUresult (*init_fn)(unsigned);
typedef CUresult (*count_fn)(int *);
typedef CUresult (*version_fn)(int *);
typedef CUresult (*get_fn)(CUdevice *, int);
typedef CUresult (*name_fn)(char *, int, CUdevice);
typedef CUresult (*attr_fn)(int *, CUdevice_attribute, CUdevice);
typedef CUresult (*mem_fn)(size_t *, CUdevice);
typedef CUresult (*errname_fn)(CUresult, const char **);

static const char *err_name(void *lib, CUresult rc)
{
    errname_fn f;
    const char *s = NULL;

    *(void **)&f = dlsym(lib, "cuGetErrorName");
    if (f != NULL && f(rc, &s) == CUDA_SUCCESS && s != NULL)
        return s;
    switch (rc) { /* a stub library cannot name its own errors */
    case CUDA_ERROR_STUB_LIBRARY:
        return "CUDA_ERROR_STUB_LIBRARY (the toolkit's stub libcuda, not a driver)";
    case CUDA_ERROR_NO_DEVICE:
        return "CUDA_ERROR_NO_DEVICE";
    case CUDA_ERROR_NOT_INITIALIZED:
        return "CUDA_ERROR_NOT_INITIALIZED";
    default:
        return "unknown CUresult";
    }
}

/* 1 if the resolved file `path` lies inside directory `dir`. */
static int inside(const char *path, const char *dir)
{
    char d[PATH_MAX];
    size_t n;

    if (realpath(dir, d) == NULL)
        return 0;
    n = strlen(d);
    return strncmp(path, d, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

int main(int argc, char **argv)
{
    const char *want = "libcuda.so.1";
    const char *refuse[16];
    int nrefuse = 0;
    char real[PATH_MAX];
    Dl_info info;
    init_fn init;
    count_fn count;
    version_fn version;
    get_fn get;
    name_fn name;
    attr_fn attr;
    mem_fn mem;
    CUresult rc;
    CUdevice dev;
    void *lib;
    int n = 0, drv = 0, maj = 0, min = 0;
    size_t total = 0;
    char devname[256];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--refuse") == 0 && i + 1 < argc && nrefuse < 16)
            refuse[nrefuse++] = argv[++i];
        else if (argv[i][0] != '-')
            want = argv[i];
        else {
            fprintf(stderr, "usage: %s [--refuse DIR]... [LIBCUDA_PATH]\n", argv[0]);
            return 2;
        }
    }
    lib = dlopen(want, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        printf("error=dlopen(%s) failed: %s\n", want, dlerror());
        return 1;
    }
    *(void **)&init = dlsym(lib, "cuInit");
    *(void **)&count = dlsym(lib, "cuDeviceGetCount");
    *(void **)&version = dlsym(lib, "cuDriverGetVersion");
    *(void **)&get = dlsym(lib, "cuDeviceGet");
    *(void **)&name = dlsym(lib, "cuDeviceGetName");
    *(void **)&attr = dlsym(lib, "cuDeviceGetAttribute");
    *(void **)&mem = dlsym(lib, "cuDeviceTotalMem_v2");
    if (!init || !count || !version || !get || !name || !attr || !mem) {
        printf("error=%s lacks one of cuInit, cuDeviceGetCount, cuDriverGetVersion, cuDeviceGet, "
               "cuDeviceGetName, cuDeviceGetAttribute, cuDeviceTotalMem_v2\n", want);
        return 1;
    }
    if (dladdr(*(void **)&init, &info) == 0 || info.dli_fname == NULL ||
        realpath(info.dli_fname, real) == NULL) {
        printf("error=cannot tell which file %s was loaded from\n", want);
        return 1;
    }
    printf("libcuda=%s\n", real);
    for (int i = 0; i < nrefuse; i++)
        if (inside(real, refuse[i])) {
            printf("error=libcuda.so.1 resolves to %s, inside %s (our libvgpu, not NVIDIA's "
                   "driver)\n", real, refuse[i]);
            return 1;
        }
    rc = init(0);
    if (rc != CUDA_SUCCESS) {
        printf("error=cuInit(0) failed: %s (%d)\n", err_name(lib, rc), (int)rc);
        return 1;
    }
    rc = version(&drv);
    if (rc != CUDA_SUCCESS) {
        printf("error=cuDriverGetVersion failed: %s (%d)\n", err_name(lib, rc), (int)rc);
        return 1;
    }
    printf("driver=%d\n", drv);
    rc = count(&n);
    if (rc != CUDA_SUCCESS || n < 1) {
        printf("error=cuDeviceGetCount gives %d devices: %s (%d)\n", n, err_name(lib, rc), (int)rc);
        return 1;
    }
    printf("devices=%d\n", n);
    if ((rc = get(&dev, 0)) != CUDA_SUCCESS ||
        (rc = name(devname, (int)sizeof(devname), dev)) != CUDA_SUCCESS ||
        (rc = attr(&maj, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)) != CUDA_SUCCESS ||
        (rc = attr(&min, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)) != CUDA_SUCCESS ||
        (rc = mem(&total, dev)) != CUDA_SUCCESS) {
        printf("error=reading device 0's name, compute capability or memory failed: %s (%d)\n",
               err_name(lib, rc), (int)rc);
        return 1;
    }
    printf("name=%s\ncc=%d.%d\nmem_mib=%zu\n", devname, maj, min, total >> 20);
    return 0;
}
