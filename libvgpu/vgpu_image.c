/* vgpu_image.c - how many bytes a code image handed to cuLibraryLoadData / cuModuleLoadData
 * spans, since the API passes only a pointer: a fatbin wrapper leads to its fatbin, a fatbin
 * header states its payload size, an ELF ends with its last section or header table, PTX text
 * ends at its NUL. Pure functions (unit-tested in tests/libvgpu/test_image.c). */
#include "vgpu.h"

#include <errno.h>
#include <string.h>

#define FATBIN_WRAPPER_MAGIC 0x466243B1u
#define FATBIN_MAGIC 0xBA55ED50u
#define IMAGE_MAX (1ull << 30)

static uint64_t rd(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* End of an ELF image: the furthest of its header tables and its sections' contents. */
static int elf_extent(const uint8_t *p, size_t *size)
{
    int is64 = p[4] == 2;
    if (p[4] != 1 && p[4] != 2)
        return -EINVAL;
    uint64_t phoff = is64 ? rd(p + 0x20, 8) : rd(p + 0x1C, 4);
    uint64_t shoff = is64 ? rd(p + 0x28, 8) : rd(p + 0x20, 4);
    uint64_t phentsize = rd(p + (is64 ? 0x36 : 0x2A), 2);
    uint64_t phnum = rd(p + (is64 ? 0x38 : 0x2C), 2);
    uint64_t shentsize = rd(p + (is64 ? 0x3A : 0x2E), 2);
    uint64_t shnum = rd(p + (is64 ? 0x3C : 0x30), 2);
    uint64_t end = is64 ? 64 : 52;
    if (phoff > IMAGE_MAX || shoff > IMAGE_MAX)
        return -EINVAL;
    if (phnum && phoff + phnum * phentsize > end)
        end = phoff + phnum * phentsize;
    if (shnum && shoff + shnum * shentsize > end)
        end = shoff + shnum * shentsize;
    if (shnum && shentsize >= (is64 ? 64u : 40u))
        for (uint64_t i = 0; i < shnum; i++) {
            const uint8_t *sh = p + shoff + i * shentsize;
            uint32_t type = (uint32_t)rd(sh + 4, 4);
            uint64_t off = is64 ? rd(sh + 0x18, 8) : rd(sh + 0x10, 4);
            uint64_t sz = is64 ? rd(sh + 0x20, 8) : rd(sh + 0x14, 4);
            if (type == 8 /* SHT_NOBITS */ || off > IMAGE_MAX || sz > IMAGE_MAX)
                continue;
            if (off + sz > end)
                end = off + sz;
        }
    if (end > IMAGE_MAX)
        return -EINVAL;
    *size = end;
    return 0;
}

static int extent(const uint8_t *p, const void **start, size_t *size, int depth)
{
    if (p == NULL)
        return -EINVAL;
    /* no magic contains a zero byte: a string shorter than 4 bytes can only be text */
    size_t short_len = strnlen((const char *)p, 4);
    if (short_len < 4) {
        if (short_len == 0)
            return -EINVAL;
        *start = p;
        *size = short_len + 1;
        return 0;
    }
    uint32_t magic = (uint32_t)rd(p, 4);
    if (magic == FATBIN_WRAPPER_MAGIC) {
        /* struct { int magic; int version; const void *data; void *filename_or_fatbins; } */
        const void *data;
        memcpy(&data, p + 8, sizeof data);
        if (depth > 0 || data == NULL || rd(data, 4) != FATBIN_MAGIC)
            return -EINVAL;
        return extent(data, start, size, depth + 1);
    }
    if (magic == FATBIN_MAGIC) {
        uint64_t hdr = rd(p + 6, 2), payload = rd(p + 8, 8);
        if (hdr < 16 || payload > IMAGE_MAX)
            return -EINVAL;
        *start = p;
        *size = (size_t)(hdr + payload);
        return 0;
    }
    if (memcmp(p, "\x7f" "ELF", 4) == 0) {
        *start = p;
        return elf_extent(p, size);
    }
    size_t n = strnlen((const char *)p, IMAGE_MAX);
    if (n == 0 || n == IMAGE_MAX)
        return -EINVAL;
    *start = p;
    *size = n + 1;
    return 0;
}

int vgpu_image_extent(const void *image, const void **start, size_t *size)
{
    return extent(image, start, size, 0);
}
