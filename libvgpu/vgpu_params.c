/* vgpu_params.c - kernel argument serialisation: cuLaunchKernel passes one pointer per
 * parameter and no sizes, so the packed buffer is built from the parameter layout that
 * LIBRARY_GET_KERNEL reported (offset and size of each). Pure functions, unit-tested. */
#include "vgpu.h"

#include <errno.h>
#include <string.h>

int vgpu_params_pack(const struct idm_param *layout, uint32_t count, uint32_t param_bytes,
                     void **kernel_params, uint8_t *buf)
{
    if (count > 0 && kernel_params == NULL)
        return -EINVAL;
    memset(buf, 0, param_bytes);
    for (uint32_t i = 0; i < count; i++) {
        if (layout[i].offset > param_bytes || layout[i].size > param_bytes - layout[i].offset)
            return -EINVAL;
        if (layout[i].size == 0)
            continue;
        if (kernel_params[i] == NULL)
            return -EINVAL;
        memcpy(buf + layout[i].offset, kernel_params[i], layout[i].size);
    }
    return 0;
}

int vgpu_params_pack_extra(uint32_t param_bytes, void **extra, uint8_t *buf)
{
    const void *src = NULL;
    size_t len = (size_t)-1;
    if (extra == NULL)
        return -EINVAL;
    for (unsigned i = 0; i < 64; i += 2) {
        void *key = extra[i];
        if (key == CU_LAUNCH_PARAM_END)
            break;
        if (key == CU_LAUNCH_PARAM_BUFFER_POINTER)
            src = extra[i + 1];
        else if (key == CU_LAUNCH_PARAM_BUFFER_SIZE && extra[i + 1] != NULL)
            len = *(const size_t *)extra[i + 1];
        else
            return -EINVAL;
    }
    if (src == NULL && param_bytes > 0)
        return -EINVAL;
    if (len == (size_t)-1 || len < param_bytes)
        return -EINVAL;
    if (param_bytes)
        memcpy(buf, src, param_bytes);
    return 0;
}
