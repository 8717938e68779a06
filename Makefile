# Top-level Makefile: delegates to each component's Makefile (see docs/CONTRACTS.md).
#   make            build everything (real CUDA backend included, against /usr/local/cuda/include)
#   make stub       the stub-mode binaries: gpu-proxy/gpu_proxy_stub, libvgpu, bin/vgpu-run
#   make test       every test (unit, integration, fuzz replay, Xen under QEMU, kernel check)
#   make test SANITIZE=address,undefined   the same with ASan/UBSan builds
#   make demo       builds and runs the stub-mode demo end to end
#   make bench      the benchmarks (never part of pass/fail)
#   make vgpu-smi   gpu-proxy/vgpu-smi, the figures of a running gpu_proxy (also built by make)
#   make test-metrics  Debian's prometheus scraping a gpu_proxy_stub (tests/metrics)
#   make gpu-check  the real-GPU check of tests/gpu (writes to $$GPU_CHECK_OUT; skips without a GPU)
#   make test-fresh the README's set-up lines up to make demo in a fresh Debian 12 root (root,
#                   network); FULL=1 runs make test there too (tests/fresh/run.sh)
# Missing Debian build dependencies (mk/deps.txt) are installed when running as root.
TOP := $(CURDIR)
export SANITIZE V

COMPONENTS := idm-protocol gpu-proxy/ptx gpu-proxy libvgpu k8s zone-runtime

.PHONY: all stub test test-xen test-kernel test-fresh demo bench deps clean regen kernel gpu-check \
        vgpu-smi test-metrics

all: deps
	@for c in $(COMPONENTS); do $(MAKE) --no-print-directory -C $$c all || exit 1; done

deps:
	@$(TOP)/mk/deps.sh

stub: deps
	@$(MAKE) --no-print-directory -C gpu-proxy all
	@$(MAKE) --no-print-directory -C libvgpu all

# Every suite runs even when an earlier one fails; the summary's last line counts them.
test: deps
	@$(TOP)/tests/run-all.sh

vgpu-smi:
	@$(MAKE) --no-print-directory -C gpu-proxy SANITIZE= vgpu-smi

test-metrics: deps
	@$(MAKE) --no-print-directory -C tests/metrics test

test-xen: deps
	@$(MAKE) --no-print-directory -C tests/xen test

# The one-go real-GPU check (tests/gpu/README.md); skips cleanly without a GPU. No deps: the
# GPU machine has no network.
gpu-check:
	@$(MAKE) --no-print-directory -C tests/gpu check

test-fresh: deps
	@FULL=$(FULL) $(TOP)/tests/fresh/run.sh

test-kernel: deps
	@$(MAKE) --no-print-directory -C kernel check

kernel: deps
	@$(MAKE) --no-print-directory -C kernel

demo: deps stub
	@$(MAKE) --no-print-directory -C tests/demo run

bench: deps stub
	@$(MAKE) --no-print-directory -C bench bench

regen:
	@$(MAKE) --no-print-directory -C libvgpu regen

clean:
	@for c in $(COMPONENTS) bench tests/demo; do \
	    [ -f $$c/Makefile ] && $(MAKE) --no-print-directory -C $$c clean; done; true
