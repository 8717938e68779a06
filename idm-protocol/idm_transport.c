/* idm_transport.c - the table of transports and lookup by name (VGPU_TRANSPORT=posix|xen).
 * posix is always in libidm.a; xen is in libidm_xen.a when the program links it, else it is
 * loaded from the plugin libvgpu-xen.so.1 (so libidm.a's users need no Xen libraries). */
#include "idm_transport.h"
#include "idm_log.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Defined in libidm_xen.a (transport_xen.c) when the program links it; NULL otherwise. */
extern const struct idm_transport idm_transport_xen __attribute__((weak));

#define XEN_PLUGIN_NAME "libvgpu-xen.so.1"

/* The plugin's file: $VGPU_XEN_PLUGIN, else XEN_PLUGIN_NAME next to the object that holds this
 * code (libcuda.so.1), else the plain name for the loader's search path. */
static void xen_plugin_path(char *buf, size_t cap)
{
    const char *env = getenv("VGPU_XEN_PLUGIN");
    if (env != NULL && env[0] != '\0') {
        snprintf(buf, cap, "%s", env);
        return;
    }
    Dl_info info;
    if (dladdr((void *)xen_plugin_path, &info) != 0 && info.dli_fname != NULL) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash != NULL && (size_t)(slash - info.dli_fname) + 1 + sizeof XEN_PLUGIN_NAME <= cap) {
            snprintf(buf, cap, "%.*s/%s", (int)(slash - info.dli_fname), info.dli_fname,
                     XEN_PLUGIN_NAME);
            return;
        }
    }
    snprintf(buf, cap, "%s", XEN_PLUGIN_NAME);
}

/* Loads the Xen transport from the plugin (a second dlopen returns the copy already loaded); the
 * handle stays open for the life of the process, since connections run its code. NULL, with one
 * logged line naming the file and dlerror(), on failure. */
static const struct idm_transport *xen_from_plugin(void)
{
    char path[4096];
    xen_plugin_path(path, sizeof path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *why = dlerror();
        idm_log_write(IDM_LOG_ERROR, "idm", "xen transport: cannot load plugin %s: %s", path,
                      why ? why : "unknown error");
        return NULL;
    }
    dlerror();
    const struct idm_transport *t = dlsym(h, "idm_transport_xen");
    if (t == NULL) {
        const char *why = dlerror();
        idm_log_write(IDM_LOG_ERROR, "idm", "xen transport: plugin %s has no idm_transport_xen: %s",
                      path, why ? why : "symbol is NULL");
        dlclose(h);
        return NULL;
    }
    return t;
}

const struct idm_transport *idm_transport_by_name(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, idm_transport_posix.name) == 0)
        return &idm_transport_posix;
    if (strcmp(name, "xen") == 0)
        return &idm_transport_xen != NULL ? &idm_transport_xen : xen_from_plugin();
    return NULL;
}
