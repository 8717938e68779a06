/* guest_app.c - the application tests/kernel/guest-image.sh puts in a guest image: proves that
 * the dynamic loader, the libraries mkguest.sh copied and our libcuda.so.1 all load inside the
 * guest, and that the kernel gives it what libvgpu's transport needs (memfd, eventfd, epoll). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;

static void report(const char *what, int ok, int err)
{
    if (ok) {
        printf("vgpu-guest-app: ok %s\n", what);
    } else {
        printf("vgpu-guest-app: FAIL %s: %s\n", what, strerror(err));
        failures++;
    }
}

int main(void)
{
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        printf("vgpu-guest-app: FAIL dlopen libcuda.so.1: %s\n", dlerror());
        failures++;
    } else {
        report("dlopen libcuda.so.1", 1, 0);
        report("libcuda.so.1 exports cuInit", dlsym(lib, "cuInit") != NULL, ENOENT);
        if (dlclose(lib) != 0) {
            printf("vgpu-guest-app: FAIL dlclose: %s\n", dlerror());
            failures++;
        }
    }

    int mfd = memfd_create("vgpu-probe", MFD_CLOEXEC);
    report("memfd_create", mfd >= 0, errno);
    if (mfd >= 0) {
        report("ftruncate memfd", ftruncate(mfd, 1 << 20) == 0, errno);
        void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        report("mmap memfd shared", p != MAP_FAILED, errno);
        if (p != MAP_FAILED && munmap(p, 1 << 20) != 0)
            report("munmap memfd", 0, errno);
        if (close(mfd) != 0)
            report("close memfd", 0, errno);
    }

    int efd = eventfd(0, EFD_CLOEXEC);
    report("eventfd", efd >= 0, errno);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    report("epoll_create1", ep >= 0, errno);
    if (efd >= 0 && ep >= 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = efd };
        report("epoll_ctl add eventfd", epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0, errno);
        unsigned long long one = 1;
        report("eventfd write", write(efd, &one, sizeof(one)) == (ssize_t)sizeof(one), errno);
        struct epoll_event got;
        int n = epoll_wait(ep, &got, 1, 0);
        report("epoll_wait sees the eventfd", n == 1 && got.data.fd == efd, n < 0 ? errno : EAGAIN);
    }
    if (efd >= 0 && close(efd) != 0)
        report("close eventfd", 0, errno);
    if (ep >= 0 && close(ep) != 0)
        report("close epoll", 0, errno);

    /* Under Xen (/sys/hypervisor/type says so), the built-in drivers' device nodes. */
    char hv[16] = "";
    FILE *f = fopen("/sys/hypervisor/type", "r");
    if (f != NULL) {
        if (fgets(hv, sizeof(hv), f) == NULL)
            hv[0] = '\0';
        fclose(f);
    }
    if (strncmp(hv, "xen", 3) == 0) {
        static const char *const nodes[] = { "/dev/xen/evtchn", "/dev/xen/gntdev",
                                             "/dev/xen/gntalloc", "/dev/xen/xenbus",
                                             "/proc/xen/capabilities" };
        for (size_t i = 0; i < sizeof(nodes) / sizeof(nodes[0]); i++) {
            char what[64];
            snprintf(what, sizeof(what), "xen: %s", nodes[i]);
            report(what, access(nodes[i], F_OK) == 0, errno);
        }
    } else {
        printf("vgpu-guest-app: not under Xen, Xen device checks left out\n");
    }

    printf("vgpu-guest-app: %s\n", failures == 0 ? "all ok" : "failures");
    return failures == 0 ? 0 : 1;
}
