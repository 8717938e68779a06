/* state.h - a container's record under --root: <root>/<id>/state (key=value lines, written
 * atomically), the files made for its guest, and the lock every command takes on it. */
#ifndef VGPU_ZONE_STATE_H
#define VGPU_ZONE_STATE_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "spec.h"

struct zstate {
    char id[129];                  /* XLCFG_ID_MAX */
    char bundle[PATH_MAX];
    char zone[ZSPEC_NAME_MAX];     /* "" without a GPU zone */
    char loopdev[64];              /* "" when none is attached */
    pid_t pid;                     /* the monitor */
    uint64_t pid_start;            /* its start time (/proc/PID/stat field 22) */
    int domid;                     /* -1 before the domain exists */
    int started;
    int attached;                  /* the zone was ATTACHed */
    int64_t created;               /* seconds since the epoch */
};

enum zstatus { ZS_CREATING, ZS_CREATED, ZS_RUNNING, ZS_STOPPED };

/* <root>/<id>[/name] into buf. -ENAMETOOLONG if it does not fit. */
int zstate_path(const char *root, const char *id, const char *name, char *buf, size_t len);
/* Creates <root>/<id> (-EEXIST when the container exists) and locks it. Returns the lock fd. */
int zstate_create_dir(const char *root, const char *id);
/* Locks an existing container's directory; -ENOENT when there is no such container. */
int zstate_lock(const char *root, const char *id);
int zstate_save(const char *root, const struct zstate *st);
int zstate_load(const char *root, const char *id, struct zstate *st);
/* Removes the container's directory and everything in it. */
int zstate_remove(const char *root, const char *id);
enum zstatus zstate_status(const struct zstate *st);
const char *zstate_status_name(enum zstatus s);
/* The start time of process pid (0 if it is gone). */
uint64_t zstate_proc_start(pid_t pid);

#endif
