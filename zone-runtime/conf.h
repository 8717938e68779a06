/* conf.h - the runtime's own settings (not in the OCI command line): where the guest kernel,
 * the base initramfs and the GPU libraries are, gpu_proxy's admin socket and domain, defaults
 * for guest memory. Read from /etc/vgpu-zone/runtime.conf (key = value lines) or the file named
 * by $VGPU_ZONE_RUNTIME_CONFIG. */
#ifndef VGPU_ZONE_CONF_H
#define VGPU_ZONE_CONF_H

#include <limits.h>
#include <stddef.h>

#define ZCONF_DEFAULT_PATH "/etc/vgpu-zone/runtime.conf"

struct zconf {
    char kernel[PATH_MAX];      /* the guest kernel */
    char initrd[PATH_MAX];      /* base initramfs holding zone-init and the guest's modules */
    char gpu_lib_dir[PATH_MAX]; /* libcuda.so.1, libvgpu-xen.so.1 and their libraries */
    char hotplug[PATH_MAX];     /* the disk hotplug script (vgpu-zone-block) */
    char proxy_admin[PATH_MAX]; /* gpu_proxy's admin socket */
    char xl[PATH_MAX];          /* the xl binary */
    char mkfs[PATH_MAX];        /* mkfs.ext4 */
    unsigned proxy_domid;       /* the driver domain serving the zones (0: dom0) */
    unsigned default_memory_mb; /* guest memory without a limit in the spec */
    unsigned min_memory_mb;     /* floor: kernel + init */
    unsigned overhead_mb;       /* added to the spec's limit for the guest kernel */
    unsigned disk_slack_mb;     /* free space in the root image beyond the rootfs */
    char extra[256];            /* added to the guest kernel's command line */
};

void zconf_defaults(struct zconf *c);
/* Reads path (NULL: $VGPU_ZONE_RUNTIME_CONFIG, else the default path; a missing default file
 * leaves the defaults). 0 or -errno with why in err. */
int zconf_load(struct zconf *c, const char *path, char *err, size_t errlen);
/* Applies one "key = value" line; -EINVAL for an unknown key or bad value. */
int zconf_set(struct zconf *c, const char *key, const char *value);

#endif
