/* test_cdi.c - unit tests of k8s/cdi.c: the rendered spec's content and escaping, the atomic
 * write (no temp file left, mode 0644) and removal. Schema validation is in the integration
 * test (python3-jsonschema against Debian's CDI schema). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cdi.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const ctr_paths[] = {"/usr/lib/x86_64-linux-gnu/libcuda.so.1",
                                        "/usr/lib64/libcuda.so.1"};

static struct cdi_config config(const char *dir)
{
    struct cdi_config c = {
        .dir = dir,
        .kind = "vgpu.dev/zone",
        .libcuda_host = "/opt/vgpu/lib/libcuda.so.1",
        .libcuda_paths = ctr_paths,
        .n_libcuda_paths = 2,
        .socket_dir = "/run/vgpu",
        .socket_name = "gpu.sock",
        .hook_path = "/opt/vgpu/bin/vgpu-cdi-hook",
    };
    return c;
}

static void test_cdi_render_content(void **state)
{
    (void)state;
    struct cdi_config c = config("/var/run/cdi");
    char *spec = NULL;
    assert_int_equal(cdi_render(&c, "k8s-s3-n2", "/run/gpu-proxy/zones/k8s-s3-n2", &spec), 0);
    assert_non_null(strstr(spec, "\"cdiVersion\": \"0.3.0\""));
    assert_non_null(strstr(spec, "\"kind\": \"vgpu.dev/zone\""));
    assert_non_null(strstr(spec, "\"name\": \"k8s-s3-n2\""));
    assert_non_null(strstr(spec, "\"env\": [\"VGPU_SOCKET=/run/vgpu/gpu.sock\", "
                                 "\"VGPU_ZONE=k8s-s3-n2\"]"));
    assert_non_null(strstr(spec, "{\"hostPath\": \"/opt/vgpu/lib/libcuda.so.1\", "
                                 "\"containerPath\": \"/usr/lib64/libcuda.so.1\", "
                                 "\"options\": [\"ro\", \"nosuid\", \"nodev\", \"bind\"]}"));
    assert_non_null(strstr(spec, "{\"hostPath\": \"/run/gpu-proxy/zones/k8s-s3-n2\", "
                                 "\"containerPath\": \"/run/vgpu\""));
    assert_non_null(strstr(spec, "\"hookName\": \"createContainer\", "
                                 "\"path\": \"/opt/vgpu/bin/vgpu-cdi-hook\""));
    assert_null(strstr(spec, "deviceNodes"));
    free(spec);
}

static void test_cdi_render_no_hook_and_escaping(void **state)
{
    (void)state;
    struct cdi_config c = config("/var/run/cdi");
    c.hook_path = "";
    c.libcuda_host = "/odd\"dir\\lib/libcuda.so.1";
    char *spec = NULL;
    assert_int_equal(cdi_render(&c, "z", "/zones/z", &spec), 0);
    assert_null(strstr(spec, "hooks"));
    assert_non_null(strstr(spec, "\"/odd\\\"dir\\\\lib/libcuda.so.1\""));
    free(spec);
}

static void test_cdi_write_atomic_and_remove(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_cdi.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[sizeof(dir) + 8];
    snprintf(sub, sizeof(sub), "%s/cdi", dir);      /* created by cdi_write */
    struct cdi_config c = config(sub);
    char err[256] = "";
    assert_int_equal(cdi_write(&c, "k8s-s0-n1", "/zones/k8s-s0-n1", err, sizeof(err)), 0);
    char path[512];
    cdi_spec_path(&c, "k8s-s0-n1", path, sizeof(path));
    char want[512];
    snprintf(want, sizeof(want), "%s/vgpu.dev-zone_k8s-s0-n1.json", sub);
    assert_string_equal(path, want);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    /* Rewriting replaces the file; no temp file is left in the directory. */
    assert_int_equal(cdi_write(&c, "k8s-s0-n1", "/zones/k8s-s0-n1", err, sizeof(err)), 0);
    DIR *d = opendir(sub);
    assert_non_null(d);
    int entries = 0;
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.' || strstr(de->d_name, "tmp"))
            entries++;
    closedir(d);
    assert_int_equal(entries, 1);
    assert_int_equal(cdi_remove(&c, "k8s-s0-n1"), 0);
    assert_int_equal(stat(path, &sb), -1);
    assert_int_equal(cdi_remove(&c, "k8s-s0-n1"), 0);       /* already gone: fine */
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
}

static void test_cdi_write_error_says_why(void **state)
{
    (void)state;
    struct cdi_config c = config("/dev/null/cdi");
    char err[256] = "";
    int rc = cdi_write(&c, "z", "/zones/z", err, sizeof(err));
    assert_true(rc < 0);
    assert_non_null(strstr(err, "/dev/null/cdi"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cdi_render_content),
        cmocka_unit_test(test_cdi_render_no_hook_and_escaping),
        cmocka_unit_test(test_cdi_write_atomic_and_remove),
        cmocka_unit_test(test_cdi_write_error_says_why),
    };
    return cmocka_run_group_tests_name("k8s cdi", tests, NULL, NULL);
}
