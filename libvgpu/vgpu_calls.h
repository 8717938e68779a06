/* vgpu_calls.h - the generic call layer: one wire stub per op of idm_ops.def, expanded with the
 * X-macro. vgpu_call_X sends struct idm_req_X (+ tail) and waits for struct idm_rep_X (+ tail);
 * vgpu_post_X_locked sends without waiting (its reply is processed later: window chunks, DtoH data,
 * synchronous memsets); vgpu_send_X_locked sends an unanswered ASYNC request. The CUDA entry points
 * only adapt their arguments to these structs. */
#ifndef VGPU_CALLS_H
#define VGPU_CALLS_H

#include "vgpu.h"

#define IDM_OP(name, num, kind, req, rep)                                                       \
    static inline __attribute__((unused)) CUresult vgpu_call_##name(                            \
        struct vgpu *v, const struct idm_req_##name *rq, const void *tail, size_t tail_len,     \
        struct idm_rep_##name *rp, void *rep_tail, size_t rep_tail_cap, size_t *rep_tail_len)   \
    {                                                                                           \
        return vgpu_rpc(v, IDM_OP_##name, rq, sizeof *rq, tail, tail_len, rp, sizeof *rp,       \
                        rep_tail, rep_tail_cap, rep_tail_len);                                  \
    }                                                                                           \
    static inline __attribute__((unused)) CUresult vgpu_call_##name##_locked(                   \
        struct vgpu *v, const struct idm_req_##name *rq, const void *tail, size_t tail_len,     \
        struct idm_rep_##name *rp, void *rep_tail, size_t rep_tail_cap, size_t *rep_tail_len)   \
    {                                                                                           \
        return vgpu_rpc_locked(v, IDM_OP_##name, rq, sizeof *rq, tail, tail_len, rp,            \
                               sizeof *rp, rep_tail, rep_tail_cap, rep_tail_len);               \
    }                                                                                           \
    static inline __attribute__((unused)) CUresult vgpu_post_##name##_locked(                   \
        struct vgpu *v, const struct idm_req_##name *rq, const void *tail, size_t tail_len,     \
        int chunk, void *dst, uint64_t len)                                                     \
    {                                                                                           \
        return vgpu_post_locked(v, IDM_OP_##name, rq, sizeof *rq, tail, tail_len, chunk, dst,   \
                                len);                                                           \
    }                                                                                           \
    static inline __attribute__((unused)) CUresult vgpu_send_##name##_locked(                   \
        struct vgpu *v, const struct idm_req_##name *rq, const void *tail, size_t tail_len)     \
    {                                                                                           \
        return vgpu_send_locked(v, IDM_OP_##name, rq, sizeof *rq, tail, tail_len);              \
    }
#include "idm_ops.def"
#undef IDM_OP

/* The common case: fixed request, fixed reply, no tails. */
#define VGPU_CALL(v, name, rq, rp) vgpu_call_##name((v), (rq), NULL, 0, (rp), NULL, 0, NULL)

#endif /* VGPU_CALLS_H */
