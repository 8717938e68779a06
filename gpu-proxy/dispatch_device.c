/* dispatch_device.c - handlers that need no context: the session's hello and device
 * properties. */
#include "dispatch_internal.h"

#include <cuda.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

CUresult h_HELLO(struct rq *r, const struct idm_req_HELLO *q, struct idm_rep_HELLO *p)
{
    struct session *s = r->s;
    uint64_t free_b, total_b;

    if (q->proto_version != IDM_PROTOCOL_VERSION)
        log_warn("zone=%s %s: client speaks protocol %u, proxy %u", ZN(r), PEER(r),
                 q->proto_version, IDM_PROTOCOL_VERSION);
    if (s->be->mem_info(&free_b, &total_b) != CUDA_SUCCESS)
        total_b = 0;
    p->quota = s->zone->quota ? s->zone->quota : total_b;
    p->proto_version = IDM_PROTOCOL_VERSION;
    p->zone_id = s->zone->id;
    p->driver_version = s->be->driver_version();
    p->device_count = s->be->device_count();
    snprintf(p->zone_name, sizeof(p->zone_name), "%s", s->zone->name);
    log_info("zone=%s %s: hello (client pid %u, protocol %u)", ZN(r), PEER(r), q->pid,
             q->proto_version);
    return CUDA_SUCCESS;
}

CUresult h_DEVICE_GET_PROPS(struct rq *r, const struct idm_req_DEVICE_GET_PROPS *q,
                            struct idm_rep_DEVICE_GET_PROPS *p)
{
    struct backend_device_props props;
    CUresult rc;

    if ((rc = rq_device(r, q->device)) != CUDA_SUCCESS)
        return rc;
    rc = r->s->be->device_props(q->device, &props);
    if (rc != CUDA_SUCCESS)
        return rc;
    p->total_mem = props.total_mem;
    memcpy(p->uuid, props.uuid, sizeof(p->uuid));
    memcpy(p->name, props.name, sizeof(p->name));
    p->name[sizeof(p->name) - 1] = 0;
    memcpy(p->attrs, props.attrs, sizeof(p->attrs));
    return CUDA_SUCCESS;
}
