/* dispatch.h - turns one IDM request of a session into exactly one reply: the handler table is
 * generated from idm_ops.def, every request is length-checked before its handler sees it, and
 * every handle, device address and window range is validated against the session's own tables. */
#ifndef GPU_PROXY_DISPATCH_H
#define GPU_PROXY_DISPATCH_H

#include <stdint.h>

#include "idm.h"
#include "zone.h"

/* Start-up check: every op of idm_ops.def has a handler. 0 or -ENOSYS (logged). */
int dispatch_selfcheck(void);

/* Handles one request (h and payload already copied out of shared memory). On return 0 the
 * reply payload is s->rbuf[0 .. *rep_len) with status *status (a CUresult). 1: no reply now:
 * the request was queued on a stream and its worker sends the reply (s->send_reply) when it is
 * done, or it goes unanswered (IDM_F_NOREPLY; a failure, *status, is latched). -EPROTO:
 * the peer broke the protocol and its connection must be closed. */
int dispatch_request(struct session *s, const struct idm_hdr *h, const uint8_t *payload,
                     uint32_t *rep_len, int32_t *status);

#endif /* GPU_PROXY_DISPATCH_H */
