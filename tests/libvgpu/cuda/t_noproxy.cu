// t_noproxy.cu - with no proxy answering, the runtime reports no device (the runner checks the
// one-line message libvgpu prints on stderr).
#include "check.h"

int main()
{
    int n = -1;
    cudaError_t e = cudaGetDeviceCount(&n);
    EXPECT(e == cudaErrorNoDevice, "cudaGetDeviceCount returned %s", cudaGetErrorName(e));
    void *d = nullptr;
    e = cudaMalloc(&d, 16);
    EXPECT(e == cudaErrorNoDevice, "cudaMalloc returned %s", cudaGetErrorName(e));
    return finish("t_noproxy");
}
