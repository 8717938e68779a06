/* vgpu-cdi-hook.c - the OCI createContainer hook named in our CDI specs: `vgpu-cdi-hook
 * update-ldcache` reads the container state from stdin, finds the container's root filesystem
 * through the bundle's config.json, and runs the container's own ldconfig chrooted there, so the
 * bind-mounted libcuda.so.1 is in its ld.so.cache. Images without ldconfig are left alone. */
#include "json_min.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_JSON (4u << 20)

static int read_all(int fd, char **out, size_t *outlen)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_JSON) {
                free(buf);
                return -EFBIG;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int rc = -errno;
            free(buf);
            return rc;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}


static int update_ldcache(void)
{
    char *state, *config;
    size_t slen, clen;
    char bundle[PATH_MAX], root[PATH_MAX], rootfs[PATH_MAX * 2], cfgpath[PATH_MAX + 16];
    int rc = read_all(STDIN_FILENO, &state, &slen);
    if (rc < 0) {
        fprintf(stderr, "vgpu-cdi-hook: reading the container state from stdin: %s\n",
                strerror(-rc));
        return 1;
    }
    rc = json_get_string(json_find_member(state, state + slen, "bundle"), state + slen, bundle,
                    sizeof(bundle));
    free(state);
    if (rc < 0) {
        fprintf(stderr, "vgpu-cdi-hook: the container state on stdin has no usable \"bundle\"\n");
        return 1;
    }
    snprintf(cfgpath, sizeof(cfgpath), "%s/config.json", bundle);
    int fd = open(cfgpath, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "vgpu-cdi-hook: opening %s: %s\n", cfgpath, strerror(errno));
        return 1;
    }
    rc = read_all(fd, &config, &clen);
    close(fd);
    if (rc < 0) {
        fprintf(stderr, "vgpu-cdi-hook: reading %s: %s\n", cfgpath, strerror(-rc));
        return 1;
    }
    const char *rootobj = json_find_member(config, config + clen, "root");
    const char *pathval = rootobj ? json_find_member(rootobj, config + clen, "path") : NULL;
    rc = json_get_string(pathval, config + clen, root, sizeof(root));
    free(config);
    if (rc < 0) {
        fprintf(stderr, "vgpu-cdi-hook: %s has no usable root.path\n", cfgpath);
        return 1;
    }
    if (root[0] == '/')
        snprintf(rootfs, sizeof(rootfs), "%s", root);
    else
        snprintf(rootfs, sizeof(rootfs), "%s/%s", bundle, root);

    static const char *const ldconfigs[] = {"/sbin/ldconfig", "/usr/sbin/ldconfig"};
    const char *ldconfig = NULL;
    for (size_t i = 0; i < 2 && !ldconfig; i++) {
        char probe[PATH_MAX * 2 + 32];
        struct stat sb;
        snprintf(probe, sizeof(probe), "%s%s", rootfs, ldconfigs[i]);
        /* lstat: a symlink would resolve on the host here; it is followed after chroot. */
        if (lstat(probe, &sb) == 0)
            ldconfig = ldconfigs[i];
    }
    if (!ldconfig) {
        fprintf(stderr, "vgpu-cdi-hook: no ldconfig in %s; libcuda.so.1 is found through the "
                        "default library path\n", rootfs);
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "vgpu-cdi-hook: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        if (chroot(rootfs) < 0 || chdir("/") < 0) {
            fprintf(stderr, "vgpu-cdi-hook: chroot %s: %s\n", rootfs, strerror(errno));
            _exit(1);
        }
        char *const argv[] = {(char *)ldconfig, NULL};
        char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        execve(ldconfig, argv, envp);
        fprintf(stderr, "vgpu-cdi-hook: running %s in %s: %s\n", ldconfig, rootfs,
                strerror(errno));
        _exit(1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "vgpu-cdi-hook: waitpid: %s\n", strerror(errno));
            return 1;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "vgpu-cdi-hook: %s in %s failed (status 0x%x)\n", ldconfig, rootfs,
                status);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* OCI runtimes pass args as given in the spec: argv[1] is the sub-command. */
    if (argc == 2 && strcmp(argv[1], "update-ldcache") == 0)
        return update_ldcache();
    fprintf(stderr, "usage: vgpu-cdi-hook update-ldcache   (OCI hook; container state on "
                    "stdin)\n");
    return 2;
}
