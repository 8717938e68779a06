/* sandbox.c - the worker sandbox (see sandbox.h): rlimits, dropping root for an unprivileged
 * user, PR_SET_NO_NEW_PRIVS and a seccomp allow-list built with libseccomp. A denied system
 * call raises SIGSYS; the handler logs the call's number (rate-limited, async-signal-safe) and
 * makes it fail with EPERM, so a denial is visible in the log and never silent. */
#include "sandbox.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static int active;

int sandbox_active(void)
{
    return active;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- SIGSYS: log and fail the call ---- */

static unsigned denials;

static void put_num(char *buf, size_t *n, long v)
{
    char tmp[24];
    int k = 0;
    unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;

    do {
        tmp[k++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[(*n)++] = '-';
    while (k)
        buf[(*n)++] = tmp[--k];
}

static void on_sigsys(int sig, siginfo_t *si, void *uc_)
{
    unsigned k = __atomic_add_fetch(&denials, 1, __ATOMIC_RELAXED);
    ucontext_t *uc = uc_;
    char line[160];
    size_t n = 0;
    int saved = errno;

    (void)sig;
    /* The first 16 denials, then one in 1024: a tenant cannot flood the log through us. */
    if (k <= 16 || (k & 1023) == 0) {
        static const char a[] = "<4>gpu_proxy worker ";
        static const char b[] = ": seccomp denied system call ";
        static const char c[] = " (EPERM); denials so far: ";
        memcpy(line + n, a, sizeof(a) - 1);
        n += sizeof(a) - 1;
        put_num(line, &n, getpid());
        memcpy(line + n, b, sizeof(b) - 1);
        n += sizeof(b) - 1;
        put_num(line, &n, si->si_syscall);
        /* The number only: resolving the name allocates, which a signal handler must not. */
        memcpy(line + n, c, sizeof(c) - 1);
        n += sizeof(c) - 1;
        put_num(line, &n, k);
        line[n++] = '\n';
        if (write(2, line, n) < 0) {
            /* nothing else can be done from a signal handler */
        }
    }
#if defined(__x86_64__)
    uc->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
    uc->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#else
    (void)uc;
#endif
    errno = saved;
}

/* ---- the allow-list ---- */

/* System calls every worker needs once it serves: memory, threads, time, its sockets and the
 * memfd/eventfd/epoll descriptors of new connections. */
static const int allow_common[] = {
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
    SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(lseek), SCMP_SYS(mmap),
    SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(brk),
    SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list), SCMP_SYS(rseq),
    SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack), SCMP_SYS(getpid), SCMP_SYS(gettid),
    SCMP_SYS(getppid), SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
    SCMP_SYS(getegid), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
    SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday),
    SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity), SCMP_SYS(getrandom), SCMP_SYS(poll),
    SCMP_SYS(ppoll), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
    SCMP_SYS(epoll_create1), SCMP_SYS(eventfd2), SCMP_SYS(memfd_create), SCMP_SYS(ftruncate),
    SCMP_SYS(fcntl), SCMP_SYS(accept4), SCMP_SYS(accept), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg),
    SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt),
    SCMP_SYS(shutdown), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64), SCMP_SYS(uname),
    SCMP_SYS(sysinfo), SCMP_SYS(membarrier), SCMP_SYS(restart_syscall), SCMP_SYS(dup),
    SCMP_SYS(getsockname), SCMP_SYS(getpeername),
};

/* NVIDIA's driver (and Xen's grant/event-channel libraries) open device files and issue ioctls
 * after initialisation; seccomp cannot tell paths apart, so these workers rely on the
 * unprivileged user and the device files' permissions for what they may open. */
static const int allow_devices[] = {
    SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(ioctl), SCMP_SYS(newfstatat), SCMP_SYS(stat),
    SCMP_SYS(lstat), SCMP_SYS(readlink), SCMP_SYS(readlinkat), SCMP_SYS(getdents64),
    SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(sched_setaffinity), SCMP_SYS(mlock),
    SCMP_SYS(munlock), SCMP_SYS(getcwd), SCMP_SYS(dup2), SCMP_SYS(dup3), SCMP_SYS(pipe2),
    SCMP_SYS(statfs), SCMP_SYS(fstatfs),
};

static int add_list(scmp_filter_ctx f, const int *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, calls[i], 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int build_filter(scmp_filter_ctx f, int devices)
{
    int rc = add_list(f, allow_common, sizeof(allow_common) / sizeof(allow_common[0]));

    if (rc == 0 && devices)
        rc = add_list(f, allow_devices, sizeof(allow_devices) / sizeof(allow_devices[0]));
    /* The strict profile opens nothing. glibc itself tries (malloc reads
     * /proc/sys/vm/overcommit_memory when it trims a thread's heap, and copes without it), so
     * opening fails quietly with EACCES instead of being logged as an attack. */
    if (rc == 0 && !devices)
        rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0);
    if (rc == 0 && !devices)
        rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0);
    /* Threads only: clone without CLONE_THREAD would be a new process. */
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    /* clone3's flags live in memory seccomp cannot read: ENOSYS makes glibc use clone. */
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* Signals to this process only (abort, raise, thread cancellation). */
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                              SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
                              SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    /* Reading this process's own memory, which fails instead of faulting (a driver library may
     * check a buffer that way: our libcuda.so.1 does for code images, and the chain runs the
     * cuda profile over it); never another process's. */
    if (rc == 0 && devices)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(process_vm_readv), 1,
                              SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    /* prctl: thread names and the parent-death signal only. */
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                              SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                              SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
    return rc;
}

static int apply_seccomp(int devices, char *err, size_t errlen)
{
    struct sigaction sa;
    sigset_t set;
    scmp_filter_ctx f;
    int rc;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        return fail(err, errlen, "sigaction(SIGSYS): %s", strerror(errno));
    sigemptyset(&set);
    sigaddset(&set, SIGSYS);
    if (sigprocmask(SIG_UNBLOCK, &set, NULL) != 0)
        return fail(err, errlen, "unblocking SIGSYS: %s", strerror(errno));
    f = seccomp_init(SCMP_ACT_TRAP);
    if (f == NULL)
        return fail(err, errlen, "seccomp_init failed");
    rc = build_filter(f, devices);
    if (rc == 0)
        rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0)
        rc = seccomp_load(f);
    seccomp_release(f);
    if (rc != 0)
        return fail(err, errlen, "loading the seccomp filter: %s", strerror(-rc));
    active = 1;
    return 0;
}

static int drop_root(const char *user, char *err, size_t errlen)
{
    struct passwd pw, *res = NULL;
    char buf[1024];
    int rc = getpwnam_r(user, &pw, buf, sizeof(buf), &res);

    if (rc != 0 || res == NULL)
        return fail(err, errlen, "worker user \"%s\" not found%s%s", user, rc ? ": " : "",
                    rc ? strerror(rc) : "");
    if (pw.pw_uid == 0)
        return fail(err, errlen, "worker user \"%s\" is root", user);
    if (setgroups(0, NULL) != 0 || setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) != 0 ||
        setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) != 0)
        return fail(err, errlen, "switching to user %s (uid %u): %s", user,
                    (unsigned)pw.pw_uid, strerror(errno));
    if (setuid(0) == 0)
        return fail(err, errlen, "root could be regained after switching to %s", user);
    /* Changing credentials clears the parent-death signal: set it again. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        return fail(err, errlen, "prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
    return 0;
}

static int set_limit(int res, uint64_t v, const char *name, char *err, size_t errlen)
{
    struct rlimit rl = {.rlim_cur = v, .rlim_max = v};

    if (setrlimit(res, &rl) != 0)
        return fail(err, errlen, "setrlimit(%s, %llu): %s", name, (unsigned long long)v,
                    strerror(errno));
    return 0;
}

int sandbox_enter(const struct sandbox_config *cfg, const char *backend, int xen, char *err,
                  size_t errlen)
{
    int devices = xen || strcmp(backend, "stub") != 0;

    if (set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE", err, errlen) != 0)
        return -1;
    if (cfg->max_files &&
        set_limit(RLIMIT_NOFILE, cfg->max_files, "RLIMIT_NOFILE", err, errlen) != 0)
        return -1;
    if (cfg->memory_max &&
        set_limit(RLIMIT_DATA, cfg->memory_max, "RLIMIT_DATA", err, errlen) != 0)
        return -1;
    /* Xen workers keep root: every new guest's connection opens the grant and event-channel
     * devices (/dev/xen/gntdev, /dev/xen/evtchn), which are root's. */
    if (geteuid() == 0 && cfg->user[0] && !xen && drop_root(cfg->user, err, errlen) != 0)
        return -1;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return fail(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
    if (cfg->seccomp)
        return apply_seccomp(devices, err, errlen);
    return 0;
}
