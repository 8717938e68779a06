/* vgpu_gpa.c - cuGetProcAddress / cuGetProcAddress_v2 over the generated table
 * (gen/vgpu_gpa_table.h): a name's newest version not newer than the request selects the
 * signature, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM selects its _ptds/_ptsz form. */
#include "vgpu.h"

#include <string.h>

struct gpa_row {
    const char *name;
    int version;
    int ptds_version;
    void *fn;
    void *fn_ptds;
};

static const struct gpa_row gpa_rows[] = {
#define VGPU_GPA(name, ver, sym, pver, psym) {#name, ver, pver, (void *)sym, (void *)psym},
#include "gen/vgpu_gpa_table.h"
#undef VGPU_GPA
};
#define GPA_NROWS (sizeof gpa_rows / sizeof gpa_rows[0])

CUresult vgpu_gpa_lookup(const char *symbol, int version, cuuint64_t flags, void **pfn,
                         CUdriverProcAddressQueryResult *status)
{
    if (symbol == NULL || pfn == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *pfn = NULL;
    /* first row of the name (rows are sorted by name, then version) */
    size_t lo = 0, hi = GPA_NROWS;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(gpa_rows[mid].name, symbol) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == GPA_NROWS || strcmp(gpa_rows[lo].name, symbol) != 0) {
        if (status)
            *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        VLOG(VGPU_LOG_DEBUG, "cuGetProcAddress(%s, %d, %llu): no such symbol", symbol, version,
             (unsigned long long)flags);
        return CUDA_ERROR_NOT_FOUND;
    }
    const struct gpa_row *best = NULL;
    for (size_t i = lo; i < GPA_NROWS && strcmp(gpa_rows[i].name, symbol) == 0; i++)
        if (gpa_rows[i].version <= version)
            best = &gpa_rows[i];
    if (best == NULL) {
        if (status)
            *status = CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT;
        VLOG(VGPU_LOG_DEBUG, "cuGetProcAddress(%s, %d): needs version %d", symbol, version,
             gpa_rows[lo].version);
        return CUDA_ERROR_NOT_FOUND;
    }
    if ((flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) && best->fn_ptds != NULL &&
        version >= best->ptds_version)
        *pfn = best->fn_ptds;
    else
        *pfn = best->fn;
    if (status)
        *status = CU_GET_PROC_ADDRESS_SUCCESS;
    return CUDA_SUCCESS;
}

CUresult cuGetProcAddress_v2(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags,
                             CUdriverProcAddressQueryResult *symbolStatus)
{
    return vgpu_gpa_lookup(symbol, cudaVersion, flags, pfn, symbolStatus);
}

CUresult cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion, cuuint64_t flags)
{
    return vgpu_gpa_lookup(symbol, cudaVersion, flags, pfn, NULL);
}
