/* idm_transport.c - the table of transports compiled into libidm and lookup by name
 * (VGPU_TRANSPORT=posix|xen). A transport added to the build adds one line here. */
#include "idm_transport.h"

#include <stddef.h>
#include <string.h>

static const struct idm_transport *const transports[] = {
    &idm_transport_posix,
    &idm_transport_xen,
};

const struct idm_transport *idm_transport_by_name(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++)
        if (strcmp(transports[i]->name, name) == 0)
            return transports[i];
    return NULL;
}
