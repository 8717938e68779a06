/* test_xlcfg.c - unit tests of zone-runtime/xlcfg.c (the xl configuration and the process
 * description of a guest) and of the initramfs archive domain.c appends (newc cpio, checked by
 * reading it back with Debian's cpio). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "domain.h"
#include "spec.h"
#include "xlcfg.h"

static const char *doc =
    "{\"ociVersion\":\"1.0.2\",\"process\":{\"args\":[\"/bin/prog\",\"a b\"],"
    "\"env\":[\"PATH=/bin\",\"VGPU_ZONE=za\",\"VGPU_SOCKET=/evil\",\"LD_LIBRARY_PATH=/opt/lib\"],"
    "\"cwd\":\"/\",\"user\":{\"uid\":7,\"gid\":8}},\"root\":{\"path\":\"rootfs\"},"
    "\"linux\":{\"resources\":{\"memory\":{\"limit\":134217728}}}}";

static void load(struct zspec *s, const char *text)
{
    char err[256];
    if (zspec_parse(text, strlen(text), "/b", s, err, sizeof(err)) != 0)
        fail_msg("parse: %s", err);
}

static void test_xlcfg_render(void **state)
{
    struct xlcfg_disk disk = {.target = "/dev/loop3", .hotplug = "/usr/lib/vgpu-zone/blk"};
    struct zconf c;
    struct zspec s;
    char buf[4096];
    (void)state;
    zconf_defaults(&c);
    load(&s, doc);
    assert_true(xlcfg_render("c1", &s, &c, "/run/x/c1/initrd", &disk, buf, sizeof(buf)) > 0);
    assert_non_null(strstr(buf, "name = \"vz-c1\"\n"));
    assert_non_null(strstr(buf, "type = \"pv\"\n"));
    assert_non_null(strstr(buf, "kernel = \"/usr/lib/vgpu-zone/kernel\"\n"));
    assert_non_null(strstr(buf, "ramdisk = \"/run/x/c1/initrd\"\n"));
    assert_non_null(strstr(buf, "memory = 192\n")); /* 128 MiB limit + 64 overhead */
    assert_non_null(strstr(buf, "vcpus = 1\n"));
    assert_non_null(strstr(buf, "access=rw, backendtype=phy, script=/usr/lib/vgpu-zone/blk, "
                                "target=/dev/loop3\""));
    assert_non_null(strstr(buf, "on_poweroff = \"preserve\"\n"));
    /* Quotes, newlines or commas from anywhere would change the file's meaning. */
    disk.target = "/dev/loop3\", kernel=\"/x";
    assert_int_equal(xlcfg_render("c1", &s, &c, "/i", &disk, buf, sizeof(buf)), -EINVAL);
    disk.target = "/dev/loop3,script=/x";
    assert_int_equal(xlcfg_render("c1", &s, &c, "/i", &disk, buf, sizeof(buf)), -EINVAL);
    disk.target = "/dev/loop3";
    assert_int_equal(xlcfg_render("c\n1", &s, &c, "/i", &disk, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(xlcfg_render("c1", &s, &c, "/i\nx", &disk, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(xlcfg_render("c1", &s, &c, "/i", &disk, buf, 64), -ENOSPC);
    zspec_free(&s);
}

static void test_xlcfg_memory(void **state)
{
    struct zconf c;
    struct zspec s = {0};
    (void)state;
    zconf_defaults(&c);
    assert_int_equal(xlcfg_memory_mb(&s, &c), 256);
    s.memory_limit = 1;
    assert_int_equal(xlcfg_memory_mb(&s, &c), 96);   /* the floor */
    s.memory_limit = (512ull << 20) + 1;
    assert_int_equal(xlcfg_memory_mb(&s, &c), 513 + 64);
    s.memory_limit = UINT64_MAX;
    assert_int_equal(xlcfg_memory_mb(&s, &c), 1u << 22);
}

/* The records, in order; the zone's variables replace the spec's. */
static void test_xlcfg_process_zone(void **state)
{
    static const char *const want[] = {
        "arg=/bin/prog", "arg=a b", "env=PATH=/bin", "env=VGPU_ZONE=za",
        "env=VGPU_TRANSPORT=xen", "env=VGPU_SOCKET=0:data/vgpu",
        "env=LD_LIBRARY_PATH=/run/vgpu-zone/lib:/opt/lib", "cwd=/", "uid=7", "gid=8",
        "readonly=0", "zone=za",
    };
    struct zconf c;
    struct zspec s;
    char *out;
    size_t len, off = 0, i;
    (void)state;
    zconf_defaults(&c);
    load(&s, doc);
    assert_int_equal(xlcfg_process(&s, &c, &out, &len), 0);
    for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_true(off < len);
        assert_string_equal(out + off, want[i]);
        off += strlen(out + off) + 1;
    }
    assert_int_equal(off, len);
    free(out);
    zspec_free(&s);
}

static void test_xlcfg_process_no_zone(void **state)
{
    struct zconf c;
    struct zspec s;
    char *out;
    size_t len;
    (void)state;
    zconf_defaults(&c);
    load(&s, "{\"ociVersion\":\"1.0\",\"process\":{\"args\":[\"x\"],\"cwd\":\"/\","
              "\"env\":[\"VGPU_TRANSPORT=xen\"]},\"root\":{\"path\":\"r\"}}");
    assert_int_equal(xlcfg_process(&s, &c, &out, &len), 0);
    /* The image's own variables stay; nothing of ours is added. */
    assert_non_null(memmem(out, len, "env=VGPU_TRANSPORT=xen", 23));
    assert_null(memmem(out, len, "VGPU_SOCKET", 11));
    assert_null(memmem(out, len, "zone=", 5));
    free(out);
    zspec_free(&s);
}

/* The archive domain.c appends, extracted by cpio(1): names, modes and contents survive. */
static void test_xlcfg_cpio_roundtrip(void **state)
{
    char dir[] = "/tmp/test_xlcfg.XXXXXX", path[256], cmd[512], got[64] = {0};
    static const char payload[] = "arg=/bin/prog\0cwd=/";
    struct cpio_entry e[] = {
        {"vgpu", S_IFDIR | 0755, NULL, 0},
        {"vgpu/process", S_IFREG | 0400, payload, sizeof(payload)},
        {"vgpu/odd-sized", S_IFREG | 0644, "abcde", 5},
    };
    struct stat sb;
    int fd;
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/a.cpio", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(dom_cpio_write(fd, e, 3), 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "cd %s && cpio -id --quiet < a.cpio", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/vgpu/process", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0400);
    assert_int_equal(sb.st_size, sizeof(payload));
    snprintf(path, sizeof(path), "%s/vgpu/odd-sized", dir);
    fd = open(path, O_RDONLY);
    assert_int_equal(read(fd, got, sizeof(got)), 5);
    close(fd);
    assert_string_equal(got, "abcde");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_xlcfg_conf_lines(void **state)
{
    char dir[] = "/tmp/test_conf.XXXXXX", path[256], err[256];
    struct zconf c;
    FILE *f;
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/runtime.conf", dir);
    f = fopen(path, "w");
    fputs("# comment\nkernel = /k\n  proxy_domid=3 \nextra = vgpu.x=1\n", f);
    fclose(f);
    zconf_defaults(&c);
    assert_int_equal(zconf_load(&c, path, err, sizeof(err)), 0);
    assert_string_equal(c.kernel, "/k");
    assert_int_equal(c.proxy_domid, 3);
    assert_string_equal(c.extra, "vgpu.x=1");
    f = fopen(path, "w");
    fputs("kernel = /k\nbogus = 1\n", f);
    fclose(f);
    assert_int_equal(zconf_load(&c, path, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "line 2"));
    assert_int_equal(zconf_set(&c, "proxy_domid", "40000"), -EINVAL);
    assert_int_equal(zconf_set(&c, "extra", "a\"b"), -EINVAL);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xlcfg_render),
        cmocka_unit_test(test_xlcfg_memory),
        cmocka_unit_test(test_xlcfg_process_zone),
        cmocka_unit_test(test_xlcfg_process_no_zone),
        cmocka_unit_test(test_xlcfg_cpio_roundtrip),
        cmocka_unit_test(test_xlcfg_conf_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
