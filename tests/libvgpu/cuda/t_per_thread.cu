// t_per_thread.cu - t_streams.cu built with --default-stream per-thread (run-e2e.sh): the
// runtime then calls the _ptds/_ptsz entry points (generated in libvgpu/gen/vgpu_per_thread.h),
// the default stream being each thread's own.
#include "t_streams.cu"
