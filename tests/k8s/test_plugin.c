/* test_plugin.c - unit tests of k8s/plugin.c without a kubelet or gpu_proxy: device ids, the
 * state file carried across restarts, and the DevicePlugin methods called directly with encoded
 * requests (ListAndWatch's change tracking, GetPreferredAllocation, Allocate's validation). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "deviceplugin.pb-c.h"
#include "log.h"
#include "plugin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct grpc_method *method(const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1beta1.DevicePlugin/%s", name);
    for (size_t i = 0; i < plugin_n_methods; i++)
        if (strcmp(plugin_methods[i].path, path) == 0)
            return &plugin_methods[i];
    fail_msg("no method %s", name);
    return NULL;
}

struct fixture {
    char dir[64];
    char state[96];
    struct plugin p;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_plugin.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->state, sizeof(f->state), "%s/zones.state", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->state);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void init_plugin(struct fixture *f, uint64_t total)
{
    struct plugin_config c = {
        .kubelet_dir = f->dir,
        .endpoint = "x.sock",
        .resource_name = "vgpu.dev/memory-slice",
        .proxy_admin = "/nonexistent/admin.sock",
        .zone_dir = "/nonexistent/zones",
        .pod_resources = "/nonexistent/podres.sock",
        .state_file = f->state,
        .slice_size = 1ull << 30,
        .total_memory = total,
        .use_cdi = true,
        .use_mounts = true,
        .cdi = {.dir = f->dir, .kind = "vgpu.dev/zone", .libcuda_host = "/nonexistent",
                .socket_dir = "/run/vgpu", .socket_name = "gpu.sock"},
    };
    assert_int_equal(plugin_init(&f->p, &c), 0);
}

static void test_plugin_device_ids(void **state)
{
    (void)state;
    char id[24];
    unsigned idx;
    plugin_device_id(7, id, sizeof(id));
    assert_string_equal(id, "slice-0007");
    plugin_device_id(12345, id, sizeof(id));
    assert_string_equal(id, "slice-12345");
    assert_int_equal(plugin_parse_device_id("slice-0007", &idx), 0);
    assert_int_equal(idx, 7);
    assert_int_equal(plugin_parse_device_id("slice-4095", &idx), 0);
    assert_int_equal(plugin_parse_device_id("slice-4096", &idx), -EINVAL);   /* > max */
    assert_int_equal(plugin_parse_device_id("slice-7", &idx), -EINVAL);      /* not canonical */
    assert_int_equal(plugin_parse_device_id("slice-00007", &idx), -EINVAL);
    assert_int_equal(plugin_parse_device_id("slice-00x7", &idx), -EINVAL);
    assert_int_equal(plugin_parse_device_id("slice--007", &idx), -EINVAL);
    assert_int_equal(plugin_parse_device_id("gpu-0007", &idx), -EINVAL);
    assert_int_equal(plugin_parse_device_id("", &idx), -EINVAL);
}

static void test_plugin_state_file_loaded(void **state)
{
    struct fixture *f = *state;
    FILE *fp = fopen(f->state, "w");
    assert_non_null(fp);
    fprintf(fp, "# comment\nk8s-s2-n3 1700000000 3221225472 2,3,4\ngarbage\n"
                "k8s-s9-n1 1700000001 1073741824 9\n");
    fclose(fp);
    init_plugin(f, 16ull << 30);
    assert_int_equal(f->p.n_slices, 16);
    assert_int_equal(f->p.n_zones, 2);
    assert_string_equal(f->p.zones[0]->name, "k8s-s2-n3");
    assert_int_equal(f->p.zones[0]->quota, 3ull << 30);
    assert_int_equal(f->p.zones[0]->n_devs, 3);
    assert_int_equal(f->p.zones[0]->devs[2], 4);
    assert_int_equal(f->p.zones[1]->devs[0], 9);
    plugin_fini(&f->p);
}

static V1beta1__ListAndWatchResponse *law(struct plugin *p, uint64_t *cursor, int *produced)
{
    uint8_t empty[1];
    struct grpc_buf out = {0};
    struct grpc_status st = {.code = GRPC_OK};
    *produced = method("ListAndWatch")->stream(p, empty, 0, cursor, &out, &st);
    assert_int_equal(st.code, GRPC_OK);
    V1beta1__ListAndWatchResponse *r =
        *produced ? v1beta1__list_and_watch_response__unpack(NULL, out.len, out.data) : NULL;
    grpc_buf_free(&out);
    return r;
}

static void test_plugin_list_and_watch_tracks_changes(void **state)
{
    struct fixture *f = *state;
    init_plugin(f, 4ull << 30);
    uint64_t cursor = 0;
    int produced;
    V1beta1__ListAndWatchResponse *r = law(&f->p, &cursor, &produced);
    assert_true(produced);
    assert_int_equal(r->n_devices, 4);
    assert_string_equal(r->devices[3]->id, "slice-0003");
    assert_string_equal(r->devices[0]->health, "Unhealthy");      /* never pinged yet */
    v1beta1__list_and_watch_response__free_unpacked(r, NULL);
    /* Nothing changed: nothing sent. */
    r = law(&f->p, &cursor, &produced);
    assert_false(produced);
    /* The proxy is unreachable: the first check settles health, which is a change. */
    assert_true(plugin_check_health(&f->p));
    r = law(&f->p, &cursor, &produced);
    assert_true(produced);
    assert_string_equal(r->devices[0]->health, "Unhealthy");
    v1beta1__list_and_watch_response__free_unpacked(r, NULL);
    assert_false(plugin_check_health(&f->p));                     /* still down: no change */
    r = law(&f->p, &cursor, &produced);
    assert_false(produced);
    plugin_fini(&f->p);
}

static void test_plugin_list_and_watch_empty_list_is_a_message(void **state)
{
    struct fixture *f = *state;
    init_plugin(f, 0);          /* no capacity known yet: an empty list, still a message */
    uint64_t cursor = 0;
    int produced;
    V1beta1__ListAndWatchResponse *r = law(&f->p, &cursor, &produced);
    assert_true(produced);
    assert_int_equal(r->n_devices, 0);
    v1beta1__list_and_watch_response__free_unpacked(r, NULL);
    plugin_fini(&f->p);
}

static void test_plugin_preferred_allocation(void **state)
{
    struct fixture *f = *state;
    init_plugin(f, 16ull << 30);
    char *avail[] = {"slice-0009", "slice-0003", "slice-0004", "slice-0007", "bogus"};
    char *must[] = {"slice-0007"};
    V1beta1__ContainerPreferredAllocationRequest c =
        V1BETA1__CONTAINER_PREFERRED_ALLOCATION_REQUEST__INIT;
    c.n_available_deviceids = 5;
    c.available_deviceids = avail;
    c.n_must_include_deviceids = 1;
    c.must_include_deviceids = must;
    c.allocation_size = 3;
    V1beta1__ContainerPreferredAllocationRequest *cp = &c;
    V1beta1__PreferredAllocationRequest req = V1BETA1__PREFERRED_ALLOCATION_REQUEST__INIT;
    req.n_container_requests = 1;
    req.container_requests = &cp;
    uint8_t buf[256];
    size_t len = v1beta1__preferred_allocation_request__pack(&req, buf);
    struct grpc_buf out = {0};
    struct grpc_status st = {.code = GRPC_OK};
    method("GetPreferredAllocation")->unary(&f->p, buf, len, &out, &st);
    assert_int_equal(st.code, GRPC_OK);
    V1beta1__PreferredAllocationResponse *r =
        v1beta1__preferred_allocation_response__unpack(NULL, out.len, out.data);
    assert_non_null(r);
    assert_int_equal(r->container_responses[0]->n_deviceids, 3);
    assert_string_equal(r->container_responses[0]->deviceids[0], "slice-0007");
    assert_string_equal(r->container_responses[0]->deviceids[1], "slice-0003");
    assert_string_equal(r->container_responses[0]->deviceids[2], "slice-0004");
    v1beta1__preferred_allocation_response__free_unpacked(r, NULL);
    grpc_buf_free(&out);
    /* allocation_size larger than what is available: refused. */
    c.allocation_size = 6;
    len = v1beta1__preferred_allocation_request__pack(&req, buf);
    st.code = GRPC_OK;
    method("GetPreferredAllocation")->unary(&f->p, buf, len, &out, &st);
    assert_int_equal(st.code, GRPC_INVALID_ARGUMENT);
    grpc_buf_free(&out);
    plugin_fini(&f->p);
}

static int allocate_status(struct plugin *p, char **ids, size_t n, size_t containers)
{
    V1beta1__ContainerAllocateRequest c = V1BETA1__CONTAINER_ALLOCATE_REQUEST__INIT;
    c.n_devices_ids = n;
    c.devices_ids = ids;
    V1beta1__ContainerAllocateRequest *cp[2] = {&c, &c};
    V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
    req.n_container_requests = containers;
    req.container_requests = cp;
    uint8_t buf[512];
    size_t len = v1beta1__allocate_request__pack(&req, buf);
    struct grpc_buf out = {0};
    struct grpc_status st = {.code = GRPC_OK};
    method("Allocate")->unary(p, buf, len, &out, &st);
    grpc_buf_free(&out);
    return st.code;
}

static void test_plugin_allocate_validation(void **state)
{
    struct fixture *f = *state;
    init_plugin(f, 4ull << 30);
    char *unknown[] = {"slice-0004"};
    char *bogus[] = {"nvidia0"};
    char *dup[] = {"slice-0001", "slice-0001"};
    char *five[] = {"slice-0000", "slice-0001", "slice-0002", "slice-0003", "slice-0004"};
    char *good[] = {"slice-0001"};
    assert_int_equal(allocate_status(&f->p, unknown, 1, 1), GRPC_INVALID_ARGUMENT);
    assert_int_equal(allocate_status(&f->p, bogus, 1, 1), GRPC_INVALID_ARGUMENT);
    assert_int_equal(allocate_status(&f->p, dup, 2, 1), GRPC_INVALID_ARGUMENT);
    assert_int_equal(allocate_status(&f->p, five, 5, 1), GRPC_INVALID_ARGUMENT);
    assert_int_equal(allocate_status(&f->p, good, 0, 1), GRPC_INVALID_ARGUMENT);
    assert_int_equal(allocate_status(&f->p, good, 1, 0), GRPC_INVALID_ARGUMENT);
    /* Valid ids, but gpu_proxy is down: unavailable, and no zone recorded. */
    plugin_check_health(&f->p);
    assert_int_equal(allocate_status(&f->p, good, 1, 1), GRPC_UNAVAILABLE);
    assert_int_equal(f->p.n_zones, 0);
    /* Garbage bytes. */
    uint8_t junk[] = {0xff, 0xff, 0xff};
    struct grpc_buf out = {0};
    struct grpc_status st = {.code = GRPC_OK};
    method("Allocate")->unary(&f->p, junk, sizeof(junk), &out, &st);
    assert_int_equal(st.code, GRPC_INVALID_ARGUMENT);
    grpc_buf_free(&out);
    plugin_fini(&f->p);
}

int main(void)
{
    log_set_level("error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugin_device_ids),
        cmocka_unit_test_setup_teardown(test_plugin_state_file_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_list_and_watch_tracks_changes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plugin_list_and_watch_empty_list_is_a_message,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_preferred_allocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugin_allocate_validation, setup, teardown),
    };
    return cmocka_run_group_tests_name("k8s plugin", tests, NULL, NULL);
}
