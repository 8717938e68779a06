/* gpucheck.h - shared by the programs of tests/gpu (isolation, libs, bench_gpu, driver_facts):
 * one JSON object per result on stdout ({"name":..., "status":..., ...}), checked CUDA runtime calls
 * that name the call and the error, and which libcuda.so.1 the process actually loaded (so a
 * run meant to go through libvgpu can prove it did, and a native one that it did not). */
#ifndef GPUCHECK_H
#define GPUCHECK_H

#include <cuda_runtime.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline void gc_json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* gc_emit(name, status, "key", "value", ..., NULL): string values. */
static inline void gc_emit(const char *name, const char *status, ...)
{
    va_list ap;
    const char *k;

    printf("{\"name\":");
    gc_json_str(name);
    printf(",\"status\":");
    gc_json_str(status);
    va_start(ap, status);
    while ((k = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        printf(",");
        gc_json_str(k);
        putchar(':');
        gc_json_str(v ? v : "");
    }
    va_end(ap);
    printf("}\n");
    fflush(stdout);
}

/* A measurement: numeric value, unit, and which direction is better ("higher"/"lower"). */
static inline void gc_value(const char *name, double v, const char *unit, const char *better,
                            const char *detail)
{
    printf("{\"name\":");
    gc_json_str(name);
    printf(",\"status\":\"value\",\"value\":%.6g,\"unit\":", v);
    gc_json_str(unit);
    printf(",\"better\":");
    gc_json_str(better);
    if (detail) {
        printf(",\"detail\":");
        gc_json_str(detail);
    }
    printf("}\n");
    fflush(stdout);
}

static inline const char *gc_fmt(const char *f, ...)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ & 7];
    va_list ap;

    va_start(ap, f);
    vsnprintf(b, sizeof(bufs[0]), f, ap);
    va_end(ap);
    return b;
}

static inline const char *gc_cuda_err(cudaError_t e)
{
    return gc_fmt("%s (%d): %s", cudaGetErrorName(e), (int)e, cudaGetErrorString(e));
}

/* The libcuda.so.1 mapped into this process (from /proc/self/maps), or "none". */
static inline const char *gc_libcuda(void)
{
    static char path[512];
    char line[1024];
    FILE *f = fopen("/proc/self/maps", "r");

    snprintf(path, sizeof(path), "none");
    if (f == NULL)
        return path;
    while (fgets(line, sizeof(line), f)) {
        char *p = strchr(line, '/');
        if (p && strstr(p, "/libcuda.so")) {
            p[strcspn(p, "\n")] = '\0';
            snprintf(path, sizeof(path), "%s", p);
            break;
        }
    }
    fclose(f);
    return path;
}

static inline double gc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int gc_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double gc_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), gc_cmp_double);
    return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

/* Checked runtime call inside a function returning int: records "<test>.error" with the call
 * and the error, then returns 1. `g_test` names the test being run. */
static const char *g_test = "?";
#define RT(call)                                                                               \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            gc_emit(g_test, "fail", "call", #call, "line", gc_fmt("%d", __LINE__), "error",    \
                    gc_cuda_err(e_), "libcuda", gc_libcuda(), NULL);                           \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

#endif
