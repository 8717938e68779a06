/* vgpu_image.c - how many bytes a code image handed to cuLibraryLoadData / cuModuleLoadData
 * spans, since the API passes only a pointer: a fatbin wrapper leads to its fatbin, a fatbin
 * header states its payload size, an ELF ends with its last section or header table, PTX text
 * ends at its NUL. The image is the tenant's and may be truncated or garbled: every byte is read
 * through peek() (process_vm_readv on this process, which fails instead of faulting), and the
 * whole extent is checked readable before it is returned for upload. Pure functions otherwise
 * (unit-tested in tests/libvgpu/test_image.c). */
#include "vgpu.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define FATBIN_WRAPPER_MAGIC 0x466243B1u
#define FATBIN_MAGIC 0xBA55ED50u
#define IMAGE_MAX (1ull << 30)
#define GRAIN 4096u  /* readability is probed per 4 KiB: every page size is a multiple */
#define PROBES 1024u /* pages probed per system call (IOV_MAX) */

static uint64_t rd(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Where this process cannot read its own memory (process_vm_readv refused by a seccomp filter
 * or missing): plain reads, as a driver would do; logged once. */
static int peek_fallback(int err)
{
    static int once;
    if (err != ENOSYS && err != EPERM)
        return 0;
    if (__atomic_exchange_n(&once, 1, __ATOMIC_RELAXED) == 0)
        VLOG(VGPU_LOG_WARN, "process_vm_readv unavailable (%s): code images are read without "
                            "a check that they lie in readable memory", strerror(err));
    return 1;
}

/* Copies n bytes at src into dst; -EFAULT (nothing faults) when any of them is unreadable. */
static int peek(void *dst, const void *src, size_t n)
{
    struct iovec l = {.iov_base = dst, .iov_len = n};
    struct iovec r = {.iov_base = (void *)(uintptr_t)src, .iov_len = n};
    if (n == 0)
        return 0;
    ssize_t got = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
    if (got == (ssize_t)n)
        return 0;
    if (got < 0 && peek_fallback(errno)) {
        memcpy(dst, src, n);
        return 0;
    }
    return -EFAULT;
}

/* Copies the leading readable bytes of [src, src + n) into dst; returns how many. */
static size_t peek_some(uint8_t *dst, const uint8_t *src, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t step = GRAIN - (size_t)((uintptr_t)(src + got) % GRAIN);
        if (step > n - got)
            step = n - got;
        if (peek(dst + got, src + got, step) < 0)
            break;
        got += step;
    }
    return got;
}

/* 0 when every byte of [p, p + n) is readable (one byte probed per 4 KiB), else -EINVAL. */
static int readable(const uint8_t *p, uint64_t n)
{
    uint8_t sink[PROBES];
    struct iovec remote[PROBES];
    uintptr_t a = (uintptr_t)p, end = (uintptr_t)p + n;
    if (n == 0 || end < a)
        return n == 0 ? 0 : -EINVAL;
    while (a < end) {
        unsigned k = 0;
        for (; k < PROBES && a < end; k++, a = (a / GRAIN + 1) * GRAIN)
            remote[k] = (struct iovec){.iov_base = (void *)a, .iov_len = 1};
        struct iovec local = {.iov_base = sink, .iov_len = k};
        ssize_t got = process_vm_readv(getpid(), &local, 1, remote, k, 0);
        if (got < 0 && peek_fallback(errno))
            return 0;
        if (got != (ssize_t)k)
            return -EINVAL;
    }
    return 0;
}

/* The end of the ELF's section contents (sections read one by one), at least end. */
static int elf_sections_end(const uint8_t *p, int is64, uint64_t shoff, uint64_t shnum,
                            uint64_t shentsize, uint64_t *end)
{
    uint8_t sh[64];
    unsigned need = is64 ? 64u : 40u;
    if (shentsize < need)
        return 0;
    for (uint64_t i = 0; i < shnum; i++) {
        if (peek(sh, p + shoff + i * shentsize, need) < 0)
            return -EINVAL;
        uint32_t type = (uint32_t)rd(sh + 4, 4);
        uint64_t off = is64 ? rd(sh + 0x18, 8) : rd(sh + 0x10, 4);
        uint64_t sz = is64 ? rd(sh + 0x20, 8) : rd(sh + 0x14, 4);
        if (type == 8 /* SHT_NOBITS */ || off > IMAGE_MAX || sz > IMAGE_MAX)
            continue;
        if (off + sz > *end)
            *end = off + sz;
    }
    return 0;
}

/* End of an ELF image (hdr: its first have bytes): the furthest of its header tables and its
 * sections' contents. */
static int elf_extent(const uint8_t *p, const uint8_t *hdr, size_t have, size_t *size)
{
    int is64 = hdr[4] == 2;
    if ((hdr[4] != 1 && hdr[4] != 2) || have < (is64 ? 64u : 52u))
        return -EINVAL;
    uint64_t phoff = is64 ? rd(hdr + 0x20, 8) : rd(hdr + 0x1C, 4);
    uint64_t shoff = is64 ? rd(hdr + 0x28, 8) : rd(hdr + 0x20, 4);
    uint64_t phentsize = rd(hdr + (is64 ? 0x36 : 0x2A), 2);
    uint64_t phnum = rd(hdr + (is64 ? 0x38 : 0x2C), 2);
    uint64_t shentsize = rd(hdr + (is64 ? 0x3A : 0x2E), 2);
    uint64_t shnum = rd(hdr + (is64 ? 0x3C : 0x30), 2);
    uint64_t end = is64 ? 64 : 52;
    if (phoff > IMAGE_MAX || shoff > IMAGE_MAX)
        return -EINVAL;
    if (phnum && phoff + phnum * phentsize > end)
        end = phoff + phnum * phentsize;
    if (shnum && shoff + shnum * shentsize > end)
        end = shoff + shnum * shentsize;
    if (shnum && elf_sections_end(p, is64, shoff, shnum, shentsize, &end) < 0)
        return -EINVAL;
    if (end > IMAGE_MAX || readable(p, end) < 0)
        return -EINVAL;
    *size = end;
    return 0;
}

/* NUL-terminated text: its length + 1, the terminator found within IMAGE_MAX readable bytes. */
static int text_extent(const uint8_t *p, size_t *size)
{
    uint8_t buf[GRAIN];
    for (size_t n = 0; n < IMAGE_MAX;) {
        size_t step = GRAIN - (size_t)((uintptr_t)(p + n) % GRAIN);
        if (peek(buf, p + n, step) < 0)
            return -EINVAL;
        const uint8_t *z = memchr(buf, 0, step);
        if (z != NULL) {
            n += (size_t)(z - buf);
            if (n == 0)
                return -EINVAL;
            *size = n + 1;
            return 0;
        }
        n += step;
    }
    return -EINVAL;
}

static int extent(const uint8_t *p, const void **start, size_t *size, int depth)
{
    uint8_t hdr[64];
    if (p == NULL)
        return -EINVAL;
    size_t have = peek_some(hdr, p, sizeof hdr);
    /* no magic contains a zero byte: a string shorter than 4 bytes can only be text */
    size_t short_len = strnlen((const char *)hdr, have < 4 ? have : 4);
    if (short_len < 4) {
        if (short_len == 0 || short_len == have) /* empty, or unreadable before its NUL */
            return -EINVAL;
        *start = p;
        *size = short_len + 1;
        return 0;
    }
    uint32_t magic = (uint32_t)rd(hdr, 4);
    if (magic == FATBIN_WRAPPER_MAGIC) {
        /* struct { int magic; int version; const void *data; void *filename_or_fatbins; } */
        const uint8_t *data;
        if (depth > 0 || have < 16)
            return -EINVAL;
        memcpy(&data, hdr + 8, sizeof data);
        uint8_t m[4];
        if (data == NULL || peek(m, data, 4) < 0 || rd(m, 4) != FATBIN_MAGIC)
            return -EINVAL;
        return extent(data, start, size, depth + 1);
    }
    if (magic == FATBIN_MAGIC) {
        if (have < 16)
            return -EINVAL;
        uint64_t h = rd(hdr + 6, 2), payload = rd(hdr + 8, 8);
        if (h < 16 || payload > IMAGE_MAX || readable(p, h + payload) < 0)
            return -EINVAL;
        *start = p;
        *size = (size_t)(h + payload);
        return 0;
    }
    *start = p;
    if (memcmp(hdr, "\x7f" "ELF", 4) == 0)
        return elf_extent(p, hdr, have, size);
    return text_extent(p, size);
}

int vgpu_image_extent(const void *image, const void **start, size_t *size)
{
    return extent(image, start, size, 0);
}
