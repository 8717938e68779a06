// t_props.cu - device properties as the runtime reports them through libvgpu: internally
// consistent, and printed as "PROPS name=... mem_mib=... cc=X.Y" for the runner to compare with
// what gpu_proxy_stub says it advertises.
#include "check.h"

int main()
{
    int n = 0;
    CHECK(cudaGetDeviceCount(&n));
    EXPECT(n == 1, "device count %d", n);
    int drv = 0, rt = 0;
    CHECK(cudaDriverGetVersion(&drv));
    CHECK(cudaRuntimeGetVersion(&rt));
    EXPECT(drv == 13000, "driver version %d", drv);
    cudaDeviceProp p;
    CHECK(cudaGetDeviceProperties(&p, 0));
    int major = 0, minor = 0, sms = 0, warp = 0, maxt = 0;
    CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
    CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
    CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    CHECK(cudaDeviceGetAttribute(&warp, cudaDevAttrWarpSize, 0));
    CHECK(cudaDeviceGetAttribute(&maxt, cudaDevAttrMaxThreadsPerBlock, 0));
    EXPECT(p.major == major && p.minor == minor, "cc %d.%d vs %d.%d", p.major, p.minor, major,
           minor);
    EXPECT(p.multiProcessorCount == sms && sms > 0, "SMs %d vs %d", p.multiProcessorCount, sms);
    EXPECT(p.warpSize == 32 && warp == 32, "warp size %d", p.warpSize);
    EXPECT(p.maxThreadsPerBlock == maxt && maxt >= 256, "max threads %d", maxt);
    size_t free_b = 0, total_b = 0;
    CHECK(cudaMemGetInfo(&free_b, &total_b));
    EXPECT(total_b == p.totalGlobalMem, "cudaMemGetInfo total %zu vs totalGlobalMem %zu",
           total_b, p.totalGlobalMem);
    EXPECT(free_b <= total_b && free_b > 0, "free %zu of %zu", free_b, total_b);
    char bus[32];
    CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, 0));
    int dev = -1;
    CHECK(cudaDeviceGetByPCIBusId(&dev, bus));
    EXPECT(dev == 0, "device by bus id %s is %d", bus, dev);
    int cur = -1;
    CHECK(cudaGetDevice(&cur));
    EXPECT(cur == 0, "current device %d", cur);
    printf("PROPS name=%s mem_mib=%zu cc=%d.%d sms=%d\n", p.name, p.totalGlobalMem >> 20,
           p.major, p.minor, p.multiProcessorCount);
    return finish("t_props");
}
