/* test_transport_xen.c - cmocka tests of the Xen transport that need no hypervisor: address
 * validation on both sides (refused before anything is touched) and clean failures when the
 * machine is not a Xen domain. The transport itself is exercised on real Xen by scenario.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "idm_transport.h"
#include "transport_xen.h"

static void test_transport_xen_registered(void **state)
{
    (void)state;
    const struct idm_transport *t = idm_transport_by_name("xen");
    assert_non_null(t);
    assert_ptr_equal(t, &idm_transport_xen);
    assert_string_equal(t->name, "xen");
    assert_non_null(t->listen);
    assert_non_null(t->listener_fd);
    assert_non_null(t->accept);
    assert_non_null(t->listener_close);
    assert_non_null(t->connect);
}

/* Addresses a guest must not be able to use, refused before xenstore is opened. */
static void test_transport_xen_connect_bad_address(void **state)
{
    (void)state;
    static const char *bad[] = {
        "/run/gpu-proxy/default.sock", /* a POSIX socket path */
        "0:",                          /* no path */
        ":data/vgpu",                  /* empty domid */
        "32752:data/vgpu",             /* DOMID_FIRST_RESERVED */
        "01:data/vgpu",                /* leading zero */
        "-1:data/vgpu",                /* sign */
        "0:data//vgpu",                /* empty component */
        "0:data/vgpu/",                /* trailing slash */
        "0:data/../vgpu",              /* dots */
        "0:data/vgpu:x",               /* a second colon */
        "0:data/v gpu",                /* space */
        "0:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 bytes */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct idm_conn *c = (struct idm_conn *)0x1;
        assert_int_equal(idm_transport_xen.connect(bad[i], &c), -EINVAL);
        assert_ptr_equal(c, (struct idm_conn *)0x1); /* untouched on failure */
    }
}

static void test_transport_xen_listen_bad_address(void **state)
{
    (void)state;
    /* "<guest-domid>:<path>" is valid (one guest's offers only); a bad domid is not. */
    static const char *bad[] = {"/local/domain", "x:data/vgpu", ":data/vgpu",  "99999:data/vgpu",
                                "data//vgpu",    "data/vgpu/",  "../vgpu",     "data/vgpu*",
                                "3:data//vgpu"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct idm_listener *l = NULL;
        assert_int_equal(idm_transport_xen.listen(bad[i], NULL, &l), -EINVAL);
        assert_null(l);
    }
}

/* Outside Xen (no xenstored, no /dev/xen/xenbus) both sides fail with an error, never hang. */
static void test_transport_xen_not_a_xen_domain(void **state)
{
    (void)state;
    if (access("/dev/xen/xenbus", F_OK) == 0 || access("/proc/xen/xenbus", F_OK) == 0 ||
        access("/var/run/xenstored/socket", F_OK) == 0) {
        skip(); /* this host is a Xen domain: the QEMU test covers it */
    }
    struct idm_conn *c = NULL;
    int rc = idm_transport_xen.connect(NULL, &c);
    assert_true(rc < 0);
    assert_null(c);
    struct idm_listener *l = NULL;
    rc = idm_transport_xen.listen(NULL, NULL, &l);
    assert_true(rc < 0);
    assert_null(l);
}

int main(void)
{
    setenv("IDM_LOG", "error", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_xen_registered),
        cmocka_unit_test(test_transport_xen_connect_bad_address),
        cmocka_unit_test(test_transport_xen_listen_bad_address),
        cmocka_unit_test(test_transport_xen_not_a_xen_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
