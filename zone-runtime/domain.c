/* domain.c - builds what a zone guest boots from and drives xl (see domain.h). Every external
 * command is run with fork/exec (no shell), and its failure is reported with its stderr. */
#include "domain.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/loop.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xlcfg.h"

static void set_why(char *why, size_t len, const char *what, int err)
{
    snprintf(why, len, "%s: %s", what, strerror(err));
}

/* The command's stderr goes to a memfd, not a pipe: xl create leaves a daemon behind that
 * must not keep us waiting for an end of file. */
int dom_run(char *const argv[], char *why, size_t whylen)
{
    char buf[1024];
    ssize_t n;
    off_t size;
    int err, status;
    pid_t pid;
    if ((err = memfd_create("vgpu-zone-stderr", MFD_CLOEXEC)) < 0)
        return set_why(why, whylen, "memfd_create", errno), -1;
    if ((pid = fork()) < 0) {
        set_why(why, whylen, "fork", errno);
        close(err);
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0)
            dup2(null, 0), dup2(null, 1);
        dup2(err, 2);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            close(err);
            return set_why(why, whylen, "waitpid", errno), -1;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        close(err);
        return 0;
    }
    /* Keep the tail: the last error is what matters. */
    size = lseek(err, 0, SEEK_END);
    n = pread(err, buf, sizeof(buf) - 1, size > (off_t)sizeof(buf) - 1 ?
              size - (off_t)sizeof(buf) + 1 : 0);
    close(err);
    buf[n > 0 ? n : 0] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = 0;
    snprintf(why, whylen, "%s %s %d: %s", argv[0], WIFEXITED(status) ? "exit status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), buf);
    return -1;
}

static uint64_t tree_bytes;
static uint64_t tree_inodes;

static int count_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)path, (void)type, (void)ftw;
    tree_bytes += (uint64_t)sb->st_blocks * 512 + 4096;
    tree_inodes++;
    return 0;
}

int dom_make_root_image(const struct zconf *c, const char *rootfs, const char *image, char *why,
                        size_t whylen)
{
    char inodes[32];
    uint64_t size;
    int fd;
    tree_bytes = tree_inodes = 0;
    if (nftw(rootfs, count_entry, 64, FTW_PHYS) != 0)
        return set_why(why, whylen, "reading the bundle's rootfs", errno), -1;
    size = tree_bytes + tree_bytes / 4 + (uint64_t)c->disk_slack_mb * (1u << 20);
    size = (size + 4095) & ~(uint64_t)4095;
    if ((fd = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        return set_why(why, whylen, "creating the root image", errno), -1;
    if (ftruncate(fd, (off_t)size) != 0) {
        set_why(why, whylen, "sizing the root image", errno);
        close(fd);
        return -1;
    }
    close(fd);
    snprintf(inodes, sizeof(inodes), "%llu", (unsigned long long)(tree_inodes * 2 + 1024));
    char *const argv[] = {(char *)c->mkfs, "-q", "-F", "-O", "^has_journal", "-N", inodes,
                          "-d", (char *)rootfs, (char *)image, NULL};
    return dom_run(argv, why, whylen);
}

int dom_loop_attach(const char *image, char *dev, size_t devlen, char *why, size_t whylen)
{
    struct loop_info64 info = {0};
    int ctl, n, lfd = -1, ifd, tries;
    if ((ifd = open(image, O_RDWR | O_CLOEXEC)) < 0)
        return set_why(why, whylen, "opening the root image", errno), -1;
    if ((ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC)) < 0) {
        set_why(why, whylen, "opening /dev/loop-control (is the loop module loaded?)", errno);
        close(ifd);
        return -1;
    }
    /* Another process may take the free device first: EBUSY, then try the next one. */
    for (tries = 0; tries < 16; tries++) {
        if ((n = ioctl(ctl, LOOP_CTL_GET_FREE)) < 0)
            break;
        snprintf(dev, devlen, "/dev/loop%d", n);
        if ((lfd = open(dev, O_RDWR | O_CLOEXEC)) < 0)
            break;
        if (ioctl(lfd, LOOP_SET_FD, ifd) == 0)
            break;
        close(lfd);
        lfd = -1;
        if (errno != EBUSY)
            break;
    }
    if (lfd < 0) {
        set_why(why, whylen, "attaching the root image to a loop device", errno);
    } else {
        snprintf((char *)info.lo_file_name, sizeof(info.lo_file_name), "%s", image);
        if (ioctl(lfd, LOOP_SET_STATUS64, &info) != 0) {
            set_why(why, whylen, "LOOP_SET_STATUS64", errno);
            ioctl(lfd, LOOP_CLR_FD, 0);
            close(lfd);
            lfd = -1;
        }
    }
    close(ctl);
    close(ifd);
    if (lfd < 0)
        return -1;
    close(lfd);
    return 0;
}

int dom_loop_detach(const char *dev)
{
    int fd = open(dev, O_RDWR | O_CLOEXEC), rc = 0;
    if (fd < 0)
        return -errno;
    if (ioctl(fd, LOOP_CLR_FD, 0) != 0 && errno != ENXIO)
        rc = -errno;
    close(fd);
    return rc;
}

static int write_all(int fd, const void *p, size_t len)
{
    const char *b = p;
    while (len) {
        ssize_t n = write(fd, b, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -errno;
        b += n, len -= (size_t)n;
    }
    return 0;
}

static int cpio_one(int fd, const char *name, unsigned mode, const void *data, size_t len,
                    unsigned ino)
{
    static const char zeros[4];
    char hdr[128];
    size_t nlen = strlen(name) + 1;
    int rc;
    snprintf(hdr, sizeof(hdr), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
             ino, mode, 0u, 0u, 1u, 0u, (unsigned)len, 0u, 0u, 0u, 0u, (unsigned)nlen, 0u);
    if ((rc = write_all(fd, hdr, 110)) < 0 || (rc = write_all(fd, name, nlen)) < 0 ||
        (rc = write_all(fd, zeros, (4 - (110 + nlen) % 4) % 4)) < 0 ||
        (rc = write_all(fd, data, len)) < 0 || (rc = write_all(fd, zeros, (4 - len % 4) % 4)) < 0)
        return rc;
    return 0;
}

int dom_cpio_write(int fd, const struct cpio_entry *e, size_t n)
{
    int rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = cpio_one(fd, e[i].name, e[i].mode, e[i].data, e[i].len, (unsigned)i + 1)) < 0)
            return rc;
    return cpio_one(fd, "TRAILER!!!", 0, NULL, 0, 0);
}

static int read_file(const char *path, char **out, size_t *len)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
    ssize_t n;
    size_t got = 0;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size > (256 << 20)) {
        close(fd);
        return -EINVAL;
    }
    if (!(*out = malloc((size_t)sb.st_size + 1))) {
        close(fd);
        return -ENOMEM;
    }
    while (got < (size_t)sb.st_size && (n = read(fd, *out + got, (size_t)sb.st_size - got)) != 0)
        if (n > 0)
            got += (size_t)n;
        else if (errno != EINTR) {
            rc = -errno;
            break;
        }
    close(fd);
    *len = got;
    if (rc < 0)
        free(*out);
    return rc;
}

#define LIBS_MAX 32

/* The GPU library directory's regular files (links followed), as cpio entries. */
static int gpu_lib_entries(const char *dir, struct cpio_entry *e, char **names, char **datas,
                           size_t *n, char *why, size_t whylen)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    int rc = 0;
    if (!d)
        return set_why(why, whylen, "opening the GPU library directory", errno), -1;
    while ((de = readdir(d)) != NULL && rc == 0) {
        char path[PATH_MAX];
        if (de->d_name[0] == '.')
            continue;
        if (*n >= LIBS_MAX || snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
            (int)sizeof(path)) {
            snprintf(why, whylen, "GPU library directory %s: too many files or names too long",
                     dir);
            rc = -1;
            break;
        }
        if (asprintf(&names[*n], "vgpu/lib/%s", de->d_name) < 0 ||
            read_file(path, &datas[*n], &e[*n].len) < 0) {
            snprintf(why, whylen, "reading GPU library %s failed", path);
            rc = -1;
            break;
        }
        e[*n].name = names[*n];
        e[*n].mode = S_IFREG | 0755;
        e[*n].data = datas[*n];
        (*n)++;
    }
    closedir(d);
    return rc;
}

static int copy_base(const char *base, int out, char *why, size_t whylen)
{
    char buf[65536], zeros[4] = {0};
    off_t total = 0;
    ssize_t n;
    int in = open(base, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return set_why(why, whylen, "opening the base initrd", errno), -1;
    while ((n = read(in, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0 && write_all(out, buf, (size_t)n) < 0) {
            close(in);
            return set_why(why, whylen, "writing the guest's initrd", errno), -1;
        }
        total += n > 0 ? n : 0;
    }
    close(in);
    if (n < 0)
        return set_why(why, whylen, "reading the base initrd", errno), -1;
    /* The kernel reads the next archive at a 4-byte boundary and skips NUL bytes. */
    if (write_all(out, zeros, (size_t)((4 - total % 4) % 4)) < 0)
        return set_why(why, whylen, "writing the guest's initrd", errno), -1;
    return 0;
}

int dom_make_initrd(const struct zconf *c, const struct zspec *s, const char *out, char *why,
                    size_t whylen)
{
    struct cpio_entry e[LIBS_MAX + 3];
    char *names[LIBS_MAX] = {0}, *datas[LIBS_MAX] = {0}, *proc = NULL;
    size_t n = 0, nlibs = 0, plen;
    int fd, rc = -1;
    if ((fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        return set_why(why, whylen, "creating the guest's initrd", errno), -1;
    if (copy_base(c->initrd, fd, why, whylen) < 0)
        goto out;
    if (xlcfg_process(s, c, &proc, &plen) < 0) {
        snprintf(why, whylen, "the process description is larger than 1 MiB");
        goto out;
    }
    e[n++] = (struct cpio_entry){"vgpu", S_IFDIR | 0755, NULL, 0};
    e[n++] = (struct cpio_entry){"vgpu/process", S_IFREG | 0400, proc, plen};
    if (s->zone[0]) {
        e[n++] = (struct cpio_entry){"vgpu/lib", S_IFDIR | 0755, NULL, 0};
        if (gpu_lib_entries(c->gpu_lib_dir, e + n, names, datas, &nlibs, why, whylen) < 0)
            goto out;
        n += nlibs;
    }
    if (dom_cpio_write(fd, e, n) < 0 || fsync(fd) != 0) {
        set_why(why, whylen, "writing the guest's initrd", errno);
        goto out;
    }
    rc = 0;
out:
    for (size_t i = 0; i < LIBS_MAX; i++)
        free(names[i]), free(datas[i]);
    free(proc);
    if (close(fd) != 0 && rc == 0)
        rc = -1, set_why(why, whylen, "closing the guest's initrd", errno);
    return rc;
}

int dom_create_paused(const struct zconf *c, const char *cfg, const char *id, int *domid,
                      char *why, size_t whylen)
{
    char name[XLCFG_ID_MAX + 8], buf[64];
    ssize_t n;
    int fds[2], status;
    pid_t pid;
    char *const create[] = {(char *)c->xl, "create", "-q", "-p", (char *)cfg, NULL};
    if (dom_run(create, why, whylen) < 0)
        return -1;
    snprintf(name, sizeof(name), XLCFG_DOMAIN_PREFIX "%s", id);
    if (pipe2(fds, O_CLOEXEC) != 0 || (pid = fork()) < 0)
        return set_why(why, whylen, "running xl domid", errno), -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        execlp(c->xl, c->xl, "domid", name, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    waitpid(pid, &status, 0);
    buf[n > 0 ? n : 0] = 0;
    *domid = (int)strtol(buf, NULL, 10);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || *domid <= 0) {
        snprintf(why, whylen, "xl domid %s gave no domain id (\"%s\")", name, buf);
        return -1;
    }
    return 0;
}

int dom_unpause(const struct zconf *c, int domid, char *why, size_t whylen)
{
    char id[16];
    snprintf(id, sizeof(id), "%d", domid);
    char *const argv[] = {(char *)c->xl, "unpause", id, NULL};
    return dom_run(argv, why, whylen);
}

int dom_destroy(const struct zconf *c, int domid, char *why, size_t whylen)
{
    char id[16], ignored[256];
    snprintf(id, sizeof(id), "%d", domid);
    char *const argv[] = {(char *)c->xl, "destroy", id, NULL};
    char *const list[] = {(char *)c->xl, "list", id, NULL};
    if (dom_run(argv, why, whylen) == 0)
        return 0;
    /* Already gone (xl destroy then fails too): only a domain still listed is a failure. */
    return dom_run(list, ignored, sizeof(ignored)) == 0 ? -1 : 0;
}
