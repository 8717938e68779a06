/* transport_xen.h - address format and limits of the Xen transport (idm_transport_xen), for its
 * users (gpu_proxy --xen, libvgpu with VGPU_TRANSPORT=xen). The calls are those of
 * idm_transport.h; the xenstore protocol is described in docs/XEN.md. */
#ifndef TRANSPORT_XEN_H
#define TRANSPORT_XEN_H

/* Addresses.
 *   server (listen):  "<rel>"                e.g. "data/vgpu"
 *   guest (connect):  "[<backend-domid>:]<rel>"  e.g. "0:data/vgpu" or "data/vgpu"
 * <rel> is a xenstore path relative to each guest's own domain path (/local/domain/<domid>/);
 * it matches [A-Za-z0-9_-]+ components separated by single '/', at most IDM_XEN_REL_MAX bytes.
 * NULL or "" selects IDM_XEN_DEFAULT_ADDRESS; the backend domid defaults to 0. */
#define IDM_XEN_DEFAULT_PATH "data/vgpu"
#define IDM_XEN_DEFAULT_ADDRESS "0:data/vgpu"
#define IDM_XEN_REL_MAX 64

/* A connection's shared memory is at most this many pages (control page, both rings, window);
 * larger geometries are refused by both sides. */
#define IDM_XEN_MAX_PAGES 16384u

/* The guest waits this long for the driver domain to take its offer (milliseconds; the
 * environment variable IDM_XEN_CONNECT_TIMEOUT_MS overrides it). */
#define IDM_XEN_CONNECT_TIMEOUT_MS 30000

#endif /* TRANSPORT_XEN_H */
