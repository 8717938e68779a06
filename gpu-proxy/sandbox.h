/* sandbox.h - what a zone's worker gives up before it reads a tenant's first byte: root (it runs
 * as an unprivileged user), new privileges (PR_SET_NO_NEW_PRIVS), every system call outside an
 * allow-list (seccomp, through libseccomp), and unbounded resources (rlimits). */
#ifndef GPU_PROXY_SANDBOX_H
#define GPU_PROXY_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

struct sandbox_config {
    int seccomp;          /* 1 (default): apply the system-call allow-list */
    char user[64];        /* started as root: run workers as this user ("" keeps root) */
    uint64_t memory_max;  /* RLIMIT_DATA of a worker in bytes (0: not limited) */
    unsigned max_files;   /* RLIMIT_NOFILE of a worker */
};

#define SANDBOX_DEFAULT_USER "nobody"
#define SANDBOX_DEFAULT_MAX_FILES 1024

/* Applies the sandbox to the calling process (all of its threads must be created after this,
 * or be the only one). backend: "stub" gets the strict profile; "cuda" (NVIDIA's driver opens
 * device files and issues ioctls after initialisation) and Xen workers (grant and event-channel
 * devices) also get open/ioctl. Xen workers stay root (those devices are root's). 0, or -1 with
 * a reason in err. */
int sandbox_enter(const struct sandbox_config *cfg, const char *backend, int xen, char *err,
                  size_t errlen);

/* 1 once the seccomp filter is in force in this process. */
int sandbox_active(void);

#endif /* GPU_PROXY_SANDBOX_H */
