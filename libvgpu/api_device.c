/* api_device.c - Driver API entry points that need no context: cuInit, versions, device queries
 * (answered from the property cache filled by cuInit's DEVICE_GET_PROPS), error names and
 * strings, the module loading mode. */
#include "vgpu_calls.h"

#include <stdio.h>
#include <string.h>

CUresult cuInit(unsigned int Flags)
{
    if (Flags != 0)
        return CUDA_ERROR_INVALID_VALUE;
    return vgpu_init(vgpu_get());
}

CUresult cuDriverGetVersion(int *driverVersion)
{
    if (driverVersion == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *driverVersion = VGPU_DRIVER_VERSION;
    return CUDA_SUCCESS;
}

/* The cached device, or NULL with *err set. */
static struct vgpu_device *device_of(CUdevice d, CUresult *err)
{
    struct vgpu *v = vgpu_get();
    if ((*err = vgpu_ready(v)) != CUDA_SUCCESS)
        return NULL;
    if (d < 0 || d >= v->device_count) {
        *err = CUDA_ERROR_INVALID_DEVICE;
        return NULL;
    }
    return &v->dev[d];
}

CUresult cuDeviceGetCount(int *count)
{
    struct vgpu *v = vgpu_get();
    if (count == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    *count = v->device_count;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
    CUresult r;
    if (device == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    if (device_of(ordinal, &r) == NULL)
        return r;
    *device = ordinal;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
    CUresult r;
    struct vgpu_device *d = device_of(dev, &r);
    if (d == NULL)
        return r;
    if (name == NULL || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    snprintf(name, (size_t)len, "%s", d->name);
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    CUresult r;
    struct vgpu_device *d = device_of(dev, &r);
    if (d == NULL)
        return r;
    if (bytes == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *bytes = d->total_mem;
    return CUDA_SUCCESS;
}

CUresult cuDeviceTotalMem(unsigned int *bytes, CUdevice dev)
{
    size_t b;
    CUresult r = cuDeviceTotalMem_v2(&b, dev);
    if (r == CUDA_SUCCESS)
        *bytes = b > 0xffffffffu ? 0xffffffffu : (unsigned)b;
    return r;
}

CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
    CUresult r;
    struct vgpu_device *d = device_of(dev, &r);
    if (d == NULL)
        return r;
    if (pi == NULL || (unsigned)attrib >= IDM_ATTR_COUNT)
        return CUDA_ERROR_INVALID_VALUE;
    *pi = d->attrs[attrib];
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
    CUresult r;
    struct vgpu_device *d = device_of(dev, &r);
    if (d == NULL)
        return r;
    if (uuid == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    memcpy(uuid->bytes, d->uuid, 16);
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
    return cuDeviceGetUuid_v2(uuid, dev);
}

CUresult cuDeviceComputeCapability(int *major, int *minor, CUdevice dev)
{
    CUresult r;
    struct vgpu_device *d = device_of(dev, &r);
    if (d == NULL)
        return r;
    if (major == NULL || minor == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *major = d->attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR];
    *minor = d->attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR];
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev)
{
    CUresult r;
    struct vgpu_device *d = device_of(dev, &r);
    if (d == NULL)
        return r;
    if (pciBusId == NULL || len <= 0)
        return CUDA_ERROR_INVALID_VALUE;
    snprintf(pciBusId, (size_t)len, "%08x:%02x:%02x.0",
             (unsigned)d->attrs[CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID],
             (unsigned)d->attrs[CU_DEVICE_ATTRIBUTE_PCI_BUS_ID],
             (unsigned)d->attrs[CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID]);
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetByPCIBusId(CUdevice *dev, const char *pciBusId)
{
    struct vgpu *v = vgpu_get();
    CUresult r = vgpu_ready(v);
    if (r != CUDA_SUCCESS)
        return r;
    if (dev == NULL || pciBusId == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    unsigned dom = 0, bus, slot;
    if (sscanf(pciBusId, "%x:%x:%x", &dom, &bus, &slot) != 3) {
        dom = 0;
        if (sscanf(pciBusId, "%x:%x", &bus, &slot) != 2)
            return CUDA_ERROR_INVALID_VALUE;
    }
    for (int i = 0; i < v->device_count; i++)
        if ((unsigned)v->dev[i].attrs[CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID] == dom &&
            (unsigned)v->dev[i].attrs[CU_DEVICE_ATTRIBUTE_PCI_BUS_ID] == bus &&
            (unsigned)v->dev[i].attrs[CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID] == slot) {
            *dev = i;
            return CUDA_SUCCESS;
        }
    return CUDA_ERROR_INVALID_DEVICE;
}

CUresult cuDeviceCanAccessPeer(int *canAccessPeer, CUdevice dev, CUdevice peerDev)
{
    CUresult r;
    if (device_of(dev, &r) == NULL || device_of(peerDev, &r) == NULL)
        return r;
    if (canAccessPeer == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *canAccessPeer = 0;
    return CUDA_SUCCESS;
}

CUresult cuDeviceGetP2PAttribute(int *value, CUdevice_P2PAttribute attrib, CUdevice srcDevice,
                                 CUdevice dstDevice)
{
    CUresult r;
    (void)attrib;
    if (device_of(srcDevice, &r) == NULL || device_of(dstDevice, &r) == NULL)
        return r;
    if (value == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *value = 0;
    return CUDA_SUCCESS;
}

CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode *mode)
{
    if (mode == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    *mode = CU_MODULE_LAZY_LOADING;
    return CUDA_SUCCESS;
}

/* ---- error names and strings (gen/vgpu_errors.h) ---- */

struct err_row {
    int value;
    const char *name;
    const char *text;
};

static const struct err_row err_rows[] = {
#define VGPU_ERR(name, value, text) {value, #name, text},
#include "gen/vgpu_errors.h"
#undef VGPU_ERR
};

static const struct err_row *err_find(CUresult e)
{
    for (size_t i = 0; i < sizeof err_rows / sizeof err_rows[0]; i++)
        if (err_rows[i].value == (int)e)
            return &err_rows[i];
    return NULL;
}

CUresult cuGetErrorName(CUresult error, const char **pStr)
{
    if (pStr == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    const struct err_row *r = err_find(error);
    *pStr = r ? r->name : NULL;
    return r ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult error, const char **pStr)
{
    if (pStr == NULL)
        return CUDA_ERROR_INVALID_VALUE;
    const struct err_row *r = err_find(error);
    *pStr = r ? r->text : NULL;
    return r ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
