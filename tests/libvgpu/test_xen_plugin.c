/* test_xen_plugin.c - the Xen transport plugin libvgpu-xen.so.1: it loads on its own and gives
 * idm_transport_xen; the built libcuda.so.1 finds it next to itself for VGPU_TRANSPORT=xen (and
 * says which file it could not load when VGPU_XEN_PLUGIN names a missing one). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cuda.h>

#include "idm_transport.h"

static const char *lib_dir(void)
{
    const char *dir = getenv("VGPU_LIB_DIR");
    return dir ? dir : "../../libvgpu";
}

static void test_xen_plugin_dlopen(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/libvgpu-xen.so.1", lib_dir());
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
    assert_non_null(h);
    const struct idm_transport *t = dlsym(h, "idm_transport_xen");
    assert_non_null(t);
    assert_string_equal(t->name, "xen");
    assert_non_null(t->connect);
    assert_non_null(t->listen);
    assert_non_null(t->accept);
    /* nothing of the plugin's own libidm copy is visible */
    assert_null(dlsym(h, "idm_send"));
    assert_null(dlsym(h, "idm_transport_by_name"));
    assert_int_equal(dlclose(h), 0);
}

/* In a child (cuInit's outcome is per process): sets env (NAME=VALUE pairs, NULL-terminated),
 * dlopens libcuda.so.1 and calls cuInit(0), its stderr going to a file read into out. Returns
 * cuInit's result. */
static int cuinit_in_child(const char *const *env, char *out, size_t cap)
{
    char tmpl[] = "/tmp/test_xen_plugin.XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    unlink(tmpl);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(fd, STDERR_FILENO) < 0)
            _exit(200);
        for (size_t i = 0; env[i] != NULL; i += 2)
            if (setenv(env[i], env[i + 1], 1) != 0)
                _exit(201);
        char path[4096];
        snprintf(path, sizeof path, "%s/libcuda.so.1", lib_dir());
        void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL) {
            fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
            _exit(202);
        }
        CUresult (*init)(unsigned int) = (CUresult (*)(unsigned int))dlsym(lib, "cuInit");
        if (init == NULL)
            _exit(203);
        _exit((int)init(0) & 0xff);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    ssize_t n = pread(fd, out, cap - 1, 0);
    assert_true(n >= 0);
    out[n] = '\0';
    close(fd);
    fprintf(stderr, "   (child's stderr: %s)\n", out);
    return WEXITSTATUS(st);
}

/* VGPU_TRANSPORT=xen with no VGPU_SOCKET: the plugin next to libcuda.so.1 is loaded and asked to
 * connect to the Xen default address (no Xen here, so the connection fails: no device). */
static void test_xen_plugin_found_by_libcuda(void **state)
{
    (void)state;
    const char *env[] = {"VGPU_TRANSPORT", "xen", "IDM_XEN_CONNECT_TIMEOUT_MS", "100", NULL};
    char err[8192];
    assert_int_equal(cuinit_in_child(env, err, sizeof err), CUDA_ERROR_NO_DEVICE);
    assert_non_null(strstr(err, "cannot connect to gpu proxy at 0:data/vgpu (transport xen)"));
    assert_null(strstr(err, "plugin"));
}

/* VGPU_XEN_PLUGIN naming a missing file: one line saying which file, and no device. */
static void test_xen_plugin_missing(void **state)
{
    (void)state;
    const char *env[] = {"VGPU_TRANSPORT", "xen", "VGPU_XEN_PLUGIN",
                         "/nonexistent/libvgpu-xen.so.1", NULL};
    char err[8192];
    assert_int_equal(cuinit_in_child(env, err, sizeof err), CUDA_ERROR_NO_DEVICE);
    assert_non_null(strstr(err, "cannot load plugin /nonexistent/libvgpu-xen.so.1"));
    assert_non_null(strstr(err, "libvgpu-xen.so.1 could not be loaded"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xen_plugin_dlopen),
        cmocka_unit_test(test_xen_plugin_found_by_libcuda),
        cmocka_unit_test(test_xen_plugin_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
