/* monitor.h - the container's process as the engine sees it: a small dom0 process that relays
 * the guest's console to the container's stdout (or terminal) and exits with the status
 * zone-init reported through xenstore, or 128+signal when the domain was killed. */
#ifndef VGPU_ZONE_MONITOR_H
#define VGPU_ZONE_MONITOR_H

#include <stddef.h>
#include <sys/types.h>

struct monitor_args {
    int domid;                 /* -1: a pod's sandbox, which has no guest */
    int out_fd;                /* where the console goes (the engine's stdout, or a pty) */
    int close_fd;              /* the state lock, closed in the monitor (-1: none) */
    const char *killed_file;   /* written by `kill` with the signal number */
};

/* Forks the monitor; returns its pid once it holds the guest's console, or -1 with why. */
pid_t monitor_start(const struct monitor_args *a, char *why, size_t whylen);
/* Decodes zone-init's report ("exit:N" or "signal:N") into an exit status; -1 if malformed. */
int monitor_exit_status(const char *report);

#endif
