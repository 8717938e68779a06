/* md2.c - MD2 message digest as RFC 1319 specifies it (padding, checksum, 18-round compression
 * over a 48-byte state) and HMAC over it (block size 16, ipad 0x36, opad 0x5c). */
#include "md2.h"

#include <string.h>

#include "gen/md2_sbox.h"

void md2_init(struct md2_ctx *c)
{
    memset(c, 0, sizeof *c);
}

/* One 16-byte block: update the checksum, then the state. */
static void md2_block(struct md2_ctx *c, const uint8_t b[16])
{
    uint8_t l = c->checksum[15];
    for (int j = 0; j < 16; j++) {
        c->checksum[j] ^= md2_sbox[b[j] ^ l];
        l = c->checksum[j];
    }
    for (int j = 0; j < 16; j++) {
        c->state[16 + j] = b[j];
        c->state[32 + j] = (uint8_t)(b[j] ^ c->state[j]);
    }
    uint8_t t = 0;
    for (int r = 0; r < 18; r++) {
        for (int k = 0; k < 48; k++) {
            c->state[k] ^= md2_sbox[t];
            t = c->state[k];
        }
        t = (uint8_t)(t + r);
    }
}

void md2_update(struct md2_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        size_t n = 16 - c->used;
        if (n > len)
            n = len;
        memcpy(c->buf + c->used, p, n);
        c->used += n;
        p += n;
        len -= n;
        if (c->used == 16) {
            md2_block(c, c->buf);
            c->used = 0;
        }
    }
}

void md2_final(struct md2_ctx *c, uint8_t out[16])
{
    uint8_t pad[16];
    size_t n = 16 - c->used; /* 1..16 bytes of value n */
    memset(pad, (int)n, n);
    md2_update(c, pad, n);
    uint8_t sum[16];
    memcpy(sum, c->checksum, 16);
    md2_block(c, sum);
    memcpy(out, c->state, 16);
}

void md2(const void *data, size_t len, uint8_t out[16])
{
    struct md2_ctx c;
    md2_init(&c);
    md2_update(&c, data, len);
    md2_final(&c, out);
}

void hmac_md2(const void *key, size_t keylen, const void *msg, size_t len, uint8_t out[16])
{
    uint8_t k[16] = {0}, pad[16], inner[16];
    if (keylen > 16)
        md2(key, keylen, k);
    else
        memcpy(k, key, keylen);
    struct md2_ctx c;
    for (int i = 0; i < 16; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x36);
    md2_init(&c);
    md2_update(&c, pad, 16);
    md2_update(&c, msg, len);
    md2_final(&c, inner);
    for (int i = 0; i < 16; i++)
        pad[i] = (uint8_t)(k[i] ^ 0x5c);
    md2_init(&c);
    md2_update(&c, pad, 16);
    md2_update(&c, inner, 16);
    md2_final(&c, out);
}
