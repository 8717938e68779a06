/* zone_engine.c - the container engine's part, for the runtime test in dom0: as conmon does for
 * podman, it becomes a child subreaper, runs `RUNTIME create --bundle B --pid-file P ID` with
 * the container's stdout on a pipe of its own, then `start`, relays the container's output
 * (each line prefixed with [ID]), waits for the container's pid and runs `delete`. Works with
 * any OCI runtime (runc for the comparison). Prints
 *   XENTEST ENGINE <id> first-line-ms=<ms from the create command to the first output line>
 *   XENTEST ENGINE <id> exit=<the container's exit status>
 * Usage: zone_engine [--no-pivot] RUNTIME ROOT BUNDLE ID (--no-pivot goes to create: runc needs it
 * when the root filesystem is an initramfs, as in the test's dom0); exit status 0 when the
 * runtime's commands worked. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs RUNTIME --root ROOT args..., stdout to out_fd (-1: ours); returns its exit status. */
static int runtime(const char *rt, const char *root, int out_fd, const char *const *args)
{
    const char *argv[16] = {rt, "--root", root};
    int n = 3, status;
    pid_t pid;
    while (*args && n < 15)
        argv[n++] = *args++;
    argv[n] = NULL;
    if ((pid = fork()) < 0)
        return -1;
    if (pid == 0) {
        if (out_fd >= 0)
            dup2(out_fd, 1);
        execvp(rt, (char *const *)argv);
        fprintf(stderr, "zone_engine: cannot run %s: %s\n", rt, strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void relay(FILE *in, const char *id, double t0)
{
    char line[4096];
    int first = 1;
    while (fgets(line, sizeof(line), in)) {
        if (first) {
            printf("XENTEST ENGINE %s first-line-ms=%.0f\n", id, now_ms() - t0);
            first = 0;
        }
        printf("[%s] %s%s", id, line, strchr(line, '\n') ? "" : "\n");
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    char pid_file[256], buf[32] = {0};
    int fds[2], status, fd, no_pivot = argc > 1 && strcmp(argv[1], "--no-pivot") == 0;
    pid_t pid;
    argc -= no_pivot, argv += no_pivot;
    if (argc != 5) {
        fprintf(stderr, "usage: zone_engine [--no-pivot] RUNTIME ROOT BUNDLE ID\n");
        return 2;
    }
    const char *rt = argv[1], *root = argv[2], *bundle = argv[3], *id = argv[4];
    snprintf(pid_file, sizeof(pid_file), "/run/%s.pid", id);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0 || pipe(fds) != 0) {
        perror("zone_engine: subreaper/pipe");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    double t0 = now_ms();
    const char *create[] = {"create", "--bundle", bundle, "--pid-file", pid_file, id, NULL, NULL};
    if (no_pivot) {
        memmove(create + 2, create + 1, 5 * sizeof(*create));
        create[1] = "--no-pivot";
    }
    if ((status = runtime(rt, root, fds[1], create)) != 0) {
        printf("XENTEST ENGINE %s create failed with status %d\n", id, status);
        return 1;
    }
    close(fds[1]);
    if ((fd = open(pid_file, O_RDONLY)) < 0 || read(fd, buf, sizeof(buf) - 1) <= 0 ||
        (pid = (pid_t)atoi(buf)) <= 0) {
        printf("XENTEST ENGINE %s no pid in %s\n", id, pid_file);
        return 1;
    }
    close(fd);
    printf("XENTEST ENGINE %s created-ms=%.0f pid=%d\n", id, now_ms() - t0, (int)pid);
    const char *start[] = {"start", id, NULL};
    if ((status = runtime(rt, root, -1, start)) != 0) {
        printf("XENTEST ENGINE %s start failed with status %d\n", id, status);
        return 1;
    }
    FILE *in = fdopen(fds[0], "r");
    relay(in, id, t0);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            printf("XENTEST ENGINE %s waitpid %d: %s\n", id, (int)pid, strerror(errno));
            return 1;
        }
    printf("XENTEST ENGINE %s exit=%d\n", id,
           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    const char *del[] = {"delete", id, NULL};
    if ((status = runtime(rt, root, -1, del)) != 0) {
        printf("XENTEST ENGINE %s delete failed with status %d\n", id, status);
        return 1;
    }
    printf("XENTEST ENGINE %s deleted after %.0f ms\n", id, now_ms() - t0);
    return 0;
}
