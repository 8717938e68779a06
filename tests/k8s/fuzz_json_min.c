/* fuzz_json_min.c - libFuzzer target for k8s/json_min.c, the JSON walker of vgpu-cdi-hook: any
 * bytes as an OCI state / config.json; looks up "bundle" and root.path the way the hook does.
 * The corpus in fuzz_json_min_corpus/ is replayed by `make -C k8s test`; `make -C k8s fuzz`
 * runs the fuzzer. */
#include "json_min.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reads past the end are caught by ASan. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    const char *end = buf + size;
    char out[4096];
    json_get_string(json_find_member(buf, end, "bundle"), end, out, sizeof(out));
    const char *root = json_find_member(buf, end, "root");
    if (root)
        json_get_string(json_find_member(root, end, "path"), end, out, sizeof(out));
    json_get_string(buf, end, out, 8);      /* a short output buffer */
    free(buf);
    return 0;
}
