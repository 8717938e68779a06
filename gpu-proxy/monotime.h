/* monotime.h - the proxy's one reading of the monotonic clock in milliseconds, for deadlines
 * and back-off in the supervisor and the workers. */
#ifndef GPU_PROXY_MONOTIME_H
#define GPU_PROXY_MONOTIME_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC cannot fail with a valid timespec (clock_gettime(2)): no error path. */
static inline uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif /* GPU_PROXY_MONOTIME_H */
