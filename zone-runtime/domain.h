/* domain.h - what a zone's guest needs in dom0 and the xl calls that make and end it: the root
 * image (mkfs.ext4 -d of the bundle's rootfs) on a loop device, the per-container initramfs
 * (the base image plus a cpio archive with the process description and, for a GPU zone, the
 * GPU libraries), and xl create/unpause/destroy. */
#ifndef VGPU_ZONE_DOMAIN_H
#define VGPU_ZONE_DOMAIN_H

#include <stddef.h>

#include "conf.h"
#include "spec.h"

/* Runs argv (argv[0] looked up in PATH), waits; its stderr's last bytes go into why. 0, or -1
 * with why filled ("exit status N: ..."). */
int dom_run(char *const argv[], char *why, size_t whylen);
/* Makes image from rootfs: size = rootfs bytes * 5/4 + slack; mkfs.ext4 -d. */
int dom_make_root_image(const struct zconf *c, const char *rootfs, const char *image, char *why,
                        size_t whylen);
/* Attaches image to a free loop device; its path into dev. */
int dom_loop_attach(const char *image, char *dev, size_t devlen, char *why, size_t whylen);
int dom_loop_detach(const char *dev);
/* Writes out = base initrd + cpio(newc) holding /vgpu/process and, with a zone, every file of
 * the GPU library directory under /vgpu/lib. */
int dom_make_initrd(const struct zconf *c, const struct zspec *s, const char *out, char *why,
                    size_t whylen);
/* Appends a newc cpio archive of the given entries to fd (used by dom_make_initrd; exposed for
 * tests). Entries: directories (data NULL, len 0, mode S_IFDIR|...) and regular files. */
struct cpio_entry {
    const char *name;          /* without leading '/' */
    unsigned mode;
    const void *data;
    size_t len;
};
int dom_cpio_write(int fd, const struct cpio_entry *e, size_t n);

int dom_create_paused(const struct zconf *c, const char *cfg, const char *id, int *domid,
                      char *why, size_t whylen);
int dom_unpause(const struct zconf *c, int domid, char *why, size_t whylen);
/* Destroys the domain if it still exists (0 when it is already gone). */
int dom_destroy(const struct zconf *c, int domid, char *why, size_t whylen);

#endif
