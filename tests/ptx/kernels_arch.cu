// kernels_arch.cu - built into a fatbin holding only PTX, for compute_75, compute_90 and
// compute_120: test_ptx.c checks that the engine runs the PTX a driver would JIT for the
// simulated sm_90 device (the newest not above it) and reports its version, and that the
// programmatic-dependent-launch instructions (griddepcontrol, sm_90) run.
extern "C" __global__ void which_arch(int *out)
{
#if __CUDA_ARCH__ >= 900
    cudaGridDependencySynchronize();
    cudaTriggerProgrammaticLaunchCompletion();
#endif
    out[threadIdx.x] = __CUDA_ARCH__ + threadIdx.x;
}
