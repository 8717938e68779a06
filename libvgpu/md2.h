/* md2.h - MD2 (RFC 1319) and HMAC-MD2 (RFC 2104 with MD2: 16-byte blocks), the hash of the
 * runtime's integrity check. Internal to libvgpu. */
#ifndef VGPU_MD2_H
#define VGPU_MD2_H

#include <stddef.h>
#include <stdint.h>

struct md2_ctx {
    uint8_t state[48];
    uint8_t checksum[16];
    uint8_t buf[16];
    size_t used; /* bytes in buf */
};

void md2_init(struct md2_ctx *c);
void md2_update(struct md2_ctx *c, const void *data, size_t len);
void md2_final(struct md2_ctx *c, uint8_t out[16]);
void md2(const void *data, size_t len, uint8_t out[16]);
void hmac_md2(const void *key, size_t keylen, const void *msg, size_t len, uint8_t out[16]);

#endif /* VGPU_MD2_H */
