/* xlcfg.h - what a zone's guest is made of, derived from the spec and the runtime's settings:
 * the xl domain configuration text and the process description zone-init reads in the guest. */
#ifndef VGPU_ZONE_XLCFG_H
#define VGPU_ZONE_XLCFG_H

#include <stddef.h>

#include "conf.h"
#include "spec.h"

#define XLCFG_DOMAIN_PREFIX "vz-"
/* Where zone-init finds things in the guest's initramfs, and where the GPU libraries appear in
 * the container. */
#define XLCFG_PROCESS_FILE "/vgpu/process"
#define XLCFG_GUEST_LIB_DIR "/vgpu/lib"
#define XLCFG_CONTAINER_LIB_DIR "/run/vgpu-zone/lib"
/* The xenstore key (under the guest's data/) where zone-init leaves the exit status. */
#define XLCFG_EXIT_KEY "data/vgpu-zone/exit"

struct xlcfg_disk {
    const char *target;        /* the loop device holding the root image */
    const char *hotplug;       /* the hotplug script libxl runs for it */
};

/* The guest's memory in MiB: the spec's limit plus the overhead, else the default; at least
 * the floor. */
unsigned xlcfg_memory_mb(const struct zspec *s, const struct zconf *c);
/* Renders the xl configuration of container id into buf. Returns the length, or -ENOSPC /
 * -EINVAL (id not usable as a domain name). */
int xlcfg_render(const char *id, const struct zspec *s, const struct zconf *c,
                 const char *initrd, const struct xlcfg_disk *disk, char *buf, size_t len);
/* Renders the process description (key=value records, each ended by a NUL byte) into a
 * malloc()ed buffer; *len gets its size. The GPU variables are added when s->zone is set.
 * Returns 0 or -ENOMEM/-E2BIG. */
int xlcfg_process(const struct zspec *s, const struct zconf *c, char **out, size_t *len);
/* Container ids (engines use 64 hex digits) name the domain too: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}. */
#define XLCFG_ID_MAX 129
int xlcfg_valid_id(const char *id);

#endif
