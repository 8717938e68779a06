/* cdi.h - Container Device Interface specs for zones: one spec file per zone in the CDI
 * directory, written atomically (temp file + rename), naming the device <kind>=<zone>. */
#ifndef VGPU_K8S_CDI_H
#define VGPU_K8S_CDI_H

#include <stddef.h>

struct cdi_config {
    const char *dir;                    /* e.g. /var/run/cdi */
    const char *kind;                   /* <vendor>/<class>, e.g. vgpu.dev/zone */
    const char *libcuda_host;           /* our libcuda.so.1 on the host */
    const char *const *libcuda_paths;   /* where it is mounted in the container */
    size_t n_libcuda_paths;
    const char *socket_dir;             /* where the zone's socket directory appears inside */
    const char *socket_name;            /* the socket's name in that directory */
    const char *hook_path;              /* host path of vgpu-cdi-hook; NULL or "" for no hook */
};

/* The lowest cdiVersion that can express what cdi_render writes (env, mounts with options,
 * hooks: all in CDI 0.3.0; no mount type, annotations or intel RDT). */
const char *cdi_version(void);

/* Renders the spec of one zone into a malloc'd NUL-terminated string (*out). zone_dir is the
 * zone's socket directory on the host. 0 or -ENOMEM. */
int cdi_render(const struct cdi_config *cfg, const char *zone, const char *zone_dir, char **out);
/* The spec file's path for a zone. */
void cdi_spec_path(const struct cdi_config *cfg, const char *zone, char *out, size_t outlen);
/* Renders and writes the zone's spec atomically. 0 or -errno (err says what failed). */
int cdi_write(const struct cdi_config *cfg, const char *zone, const char *zone_dir, char *err,
              size_t errlen);
/* Removes the zone's spec; a missing file is not an error. 0 or -errno. */
int cdi_remove(const struct cdi_config *cfg, const char *zone);

#endif
