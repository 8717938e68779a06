# bench/sim.mk - figure 9 (the simulated GPU against plain C): sim_bench and the PTX of
# sim_kernels.cu (nvcc -ptx at build time). run.sh builds it with `make -f sim.mk`.
TOP := ..
include $(TOP)/mk/common.mk
include $(TOP)/gpu-proxy/ptx/libs.mk
PTX_DIR := $(TOP)/gpu-proxy/ptx

all: sim_bench sim_kernels.ptx

$(PTX_DIR)/libptx.a: FORCE
	$(Q)$(MAKE) --no-print-directory -C $(PTX_DIR) libptx.a libvgpu-ptxjit.so

# the translator is loaded at run time from where gpu-proxy/ptx built it
sim_bench.o: CPPFLAGS += -I$(PTX_DIR) -DPTX_JIT_SO_PATH='"$(PTX_JIT_SO)"'
sim_bench: sim_bench.o harness.o $(PTX_DIR)/libptx.a
	@echo "  CCLD    $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ sim_bench.o harness.o $(PTX_DIR)/libptx.a \
	    $(PTX_LIBS) -lm

sim_kernels.ptx: sim_kernels.cu
	@echo "  NVCC    $@"
	$(Q)$(NVCC) -ptx -o $@ $<

%.o: %.c
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

FORCE:
.PHONY: all FORCE
-include sim_bench.d
