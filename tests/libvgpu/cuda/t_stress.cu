// t_stress.cu - the asynchronous fast path under load: many tiny kernels, each incrementing its
// stream's counter, on two streams, with errors injected at random positions (a launch whose
// block is too large, a memset of an address outside every allocation: both refused by the
// proxy, whose failure of an unanswered request is latched on its stream). Every error must
// surface exactly once, at the first synchronisation of its own stream after it (never at the
// other stream's), and no increment may be lost. VGPU_STRESS_LAUNCHES sets how many kernels
// (default 100000; `make test` runs the program twice, static and shared cudart);
// VGPU_STRESS_SEED the random sequence (default 18).
#include "check.h"

__global__ void inc(unsigned *counter)
{
    *counter += 1;
}

struct lane {
    cudaStream_t s;
    unsigned *counter;
    unsigned long long good;  // kernels launched that must have run
    int pending_error;        // an injected error not yet seen at a synchronisation
};

static unsigned long long env_ull(const char *name, unsigned long long dflt)
{
    const char *e = getenv(name);
    return e && *e ? strtoull(e, nullptr, 10) : dflt;
}

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)(((rng_state * 0x2545F4914F6CDD1Dull) >> 32) % n);
}

// Injects one error on l; returns 1 when the call itself reported it (then nothing is pending).
static int inject(struct lane *l, int kind)
{
    cudaError_t e;
    if (kind == 0) {
        inc<<<1, 2048, 0, l->s>>>(l->counter); // more threads per block than CUDA allows
        e = cudaGetLastError();
    } else {
        void *bogus = (void *)(uintptr_t)0x7000deadbee0ull;
        e = cudaMemsetAsync(bogus, 0, 64, l->s);
        cudaGetLastError();
    }
    if (e != cudaSuccess) {
        EXPECT(e == cudaErrorInvalidValue || e == cudaErrorInvalidConfiguration,
               "injected error %d reported at once as %s", kind, cudaGetErrorName(e));
        return 1;
    }
    l->pending_error = 1;
    return 0;
}

// Synchronises l: the result must be an error exactly when one was injected since the last one.
static void sync_lane(struct lane *l, int idx, unsigned long long at)
{
    cudaError_t e = cudaStreamSynchronize(l->s);
    cudaGetLastError();
    if (l->pending_error)
        EXPECT(e == cudaErrorInvalidValue || e == cudaErrorInvalidConfiguration,
               "stream %d, kernel %llu: the injected error did not surface (got %s)", idx, at,
               cudaGetErrorName(e));
    else
        EXPECT(e == cudaSuccess, "stream %d, kernel %llu: synchronisation returned %s with no "
               "error injected", idx, at, cudaGetErrorName(e));
    l->pending_error = 0;
}

static void check_counter(struct lane *l, int idx)
{
    unsigned got = 0;
    CHECK(cudaMemcpy(&got, l->counter, sizeof got, cudaMemcpyDeviceToHost));
    EXPECT(got == (unsigned)l->good, "stream %d: counter %u, %llu kernels launched", idx, got,
           l->good);
}

int main()
{
    unsigned long long total = env_ull("VGPU_STRESS_LAUNCHES", 100000);
    rng_state = env_ull("VGPU_STRESS_SEED", 18) * 0x9E3779B97F4A7C15ull + 1;
    struct lane lanes[2] = {};
    for (int i = 0; i < 2; i++) {
        CHECK(cudaStreamCreateWithFlags(&lanes[i].s, cudaStreamNonBlocking));
        CHECK(cudaMalloc(&lanes[i].counter, sizeof(unsigned)));
        CHECK(cudaMemset(lanes[i].counter, 0, sizeof(unsigned)));
    }
    unsigned long long launched = 0, injected = 0, at_once = 0, syncs = 0;
    while (launched < total) {
        // a burst on one stream, maybe with an error somewhere in it, then a synchronisation
        struct lane *l = &lanes[rnd(2)];
        int idx = (int)(l - lanes);
        uint32_t burst = 1 + rnd(1000);
        uint32_t err_at = rnd(3) == 0 ? rnd(burst) : UINT32_MAX;
        for (uint32_t k = 0; k < burst && launched < total; k++) {
            if (k == err_at) {
                injected++;
                at_once += inject(l, (int)rnd(2));
            }
            inc<<<1, 1, 0, l->s>>>(l->counter);
            cudaError_t e = cudaGetLastError();
            EXPECT(e == cudaSuccess, "launch %llu: %s", launched, cudaGetErrorName(e));
            l->good++;
            launched++;
        }
        // the other stream first: an error of this one must not surface there
        sync_lane(&lanes[1 - idx], 1 - idx, launched);
        sync_lane(l, idx, launched);
        syncs += 2;
        if (rnd(8) == 0)
            check_counter(l, idx);
        if (g_failures > 10)
            break;
    }
    CHECK(cudaDeviceSynchronize()); // nothing left latched anywhere
    for (int i = 0; i < 2; i++) {
        check_counter(&lanes[i], i);
        CHECK(cudaStreamDestroy(lanes[i].s));
        CHECK(cudaFree(lanes[i].counter));
    }
    printf("t_stress: %llu kernels on 2 streams, %llu errors injected (%llu reported at the "
           "call), %llu synchronisations, counters %llu + %llu\n", launched, injected, at_once,
           syncs, lanes[0].good, lanes[1].good);
    return finish("t_stress");
}
