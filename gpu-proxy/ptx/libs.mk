# libs.mk - link flags for users of gpu-proxy/ptx/libptx.a (include, then add $(PTX_LIBS)).
# libptx.a does not link LLVM: the translator is libvgpu-ptxjit.so ($(PTX_JIT_SO)), which
# programs that run kernels load at run time (ptx_translator_load*); PTX_JIT_LIBS is what it,
# or a program that builds ptx_jit.c in (the fuzzer), links.
LLVM_CONFIG ?= llvm-config-14
PTX_DIR_ABS := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
PTX_JIT_SO := $(PTX_DIR_ABS)/libvgpu-ptxjit.so
PTX_LIBS := $(shell pkg-config --libs libzstd liblz4) -ldl -lm -pthread
# the translator (ptx_jit.c) uses LLVM's C API and its ORC JIT
PTX_LLVM_CFLAGS := -isystem $(shell $(LLVM_CONFIG) --includedir)
PTX_JIT_LIBS := $(shell $(LLVM_CONFIG) --ldflags) $(shell $(LLVM_CONFIG) --libs) -lm -pthread
