/* admin.h - the two requests the runtime sends to gpu_proxy's admin socket: ATTACH a zone to a
 * guest's domain once it exists, DETACH it when the guest goes (docs/CONTRACTS.md). */
#ifndef VGPU_ZONE_ADMIN_H
#define VGPU_ZONE_ADMIN_H

#include <stddef.h>

/* Sends one request line, reads the answer's first line into answer. 0 for "OK ...", -1 for
 * an "ERR ..." answer or when the socket cannot be used (answer then says why). */
int admin_request(const char *sock, const char *request, char *answer, size_t len);
int admin_attach(const char *sock, const char *zone, int domid, char *answer, size_t len);
int admin_detach(const char *sock, const char *zone, char *answer, size_t len);

#endif
